//! Each scenario's assertions as a Rust test: run it on a fresh embedded chain, assert that the
//! system held and that the evidence shows the figures the attack should leave.

use sealbridge_sandbox::{ChainSpec, ScenarioReport, find, run};
use serde_json::Value;

fn scenario(name: &str) -> ScenarioReport {
    let s = find(name).unwrap_or_else(|| panic!("no scenario {name}"));
    let r = run(s, &ChainSpec::Embedded, &|line| {
        eprintln!("[{name}] {line}")
    });
    assert_eq!(r.name, name);
    assert!(r.held, "{name} did not hold: {:#}", r.evidence);
    // Every check the scenario made is in the evidence, and passed.
    let checks = r.evidence["checks"].as_object().expect("checks");
    assert!(!checks.is_empty());
    assert!(checks.values().all(|v| v == &Value::Bool(true)));
    r
}

#[test]
fn withdraw_then_pay() {
    let e = scenario("withdraw-then-pay").evidence;
    assert_eq!(e["reason"], "full");
    assert_eq!(e["granted"], e["escrow_before"]);
    assert_eq!(e["claimed"], e["escrow_before"]);
    assert_eq!(e["payment_after_exit"]["accepted"], false);
    assert_eq!(e["payment_after_exit"]["rejected_as"], "program-rejected");
    assert_eq!(e["attacker_escrow_after"], 0);
    assert_eq!(e["statements_settled"], serde_json::json!([1, 2]));
    assert_eq!(e["totals"]["conserved"], true);
}

#[test]
fn withdraw_after_accept() {
    let e = scenario("withdraw-after-accept").evidence;
    assert_eq!(e["reason"], "partial");
    assert_eq!(
        e["granted"].as_u64().unwrap(),
        e["escrow_before"].as_u64().unwrap() - e["payment"].as_u64().unwrap()
    );
    assert_eq!(e["claimed"], e["granted"]);
    assert_eq!(e["statement"]["exits"], 1);
    assert_eq!(e["statement"]["inputs"], 1);
    assert!(e["settle_refused"].is_null());
    assert_eq!(e["totals"]["conserved"], true);
}

#[test]
fn governor_drain() {
    let e = scenario("governor-drain").evidence;
    for r in e["direct_calls"].as_array().unwrap() {
        assert_eq!(r, "AccessControlUnauthorizedAccount");
    }
    assert_eq!(e["deployer_call"], "AccessControlUnauthorizedAccount");
    assert_eq!(e["schedule_with_exit_delay"], "TimelockInsufficientDelay");
    assert_eq!(
        e["execute_before_delay"],
        "TimelockUnexpectedOperationState"
    );
    let (eta, hatch, exited) = (
        e["eta"].as_u64().unwrap(),
        e["hatch_opens_at"].as_u64().unwrap(),
        e["participants_exited_at"].as_u64().unwrap(),
    );
    assert!(exited < hatch && hatch < eta, "{e:#}");
    assert!(eta >= e["scheduled_at"].as_u64().unwrap() + e["timelock_delay"].as_u64().unwrap());
    assert!(e["timelock_delay"].as_u64().unwrap() > e["exit_delay"].as_u64().unwrap());
    assert_eq!(
        e["claimed"],
        serde_json::json!([1_000_000, 1_000_000, 1_000_000, 1_000_000])
    );
    assert!(e["execute_after_delay"].is_null());
    assert_eq!(e["rogue_enclave_active"], true);
    // The deployment is bound to its first signer: the governor's enclave signs nothing that
    // settles.
    assert_eq!(e["drain_statement"], "NotCurrentEnclave");
    assert_eq!(e["attacker_could_move"], 0);
    assert_eq!(e["attacker_gained"], 0);
}

#[test]
fn pay_outsider() {
    let e = scenario("pay-outsider").evidence;
    assert_eq!(e["rogue_active"], true);
    let reverts = e["reverts"].as_object().unwrap();
    assert_eq!(reverts.len(), 4);
    assert_eq!(reverts["effect crediting the outsider"], "NotAParticipant");
    assert_eq!(reverts["exit granted to the outsider"], "NotAParticipant");
    assert_eq!(reverts["effects in a foreign token"], "TokenNotAllowed");
    assert_eq!(reverts["exit in a foreign token"], "TokenNotAllowed");
    assert_eq!(e["outsider_request_withdrawal"], "NotAParticipant");
    assert_eq!(
        e["outsider_got"],
        serde_json::json!({"escrow": 0, "claimable": 0, "wallet": 0})
    );
    assert_eq!(e["victim_escrow"]["after"], e["victim_escrow"]["before"]);
}

#[test]
fn foreign_token_deposit() {
    let e = scenario("foreign-token-deposit").evidence;
    assert_eq!(e["foreign_token_deposit"], "TokenNotAllowed");
    assert_eq!(e["outsider_deposit"], "NotAParticipant");
    assert_eq!(
        e["deposited_events"]["after"],
        e["deposited_events"]["before"]
    );
    for v in e["credited"].as_object().unwrap().values() {
        assert_eq!(v, 0);
    }
    assert_eq!(e["wallets_after"]["outsider"], e["amount"]);
}

#[test]
fn fee_on_transfer_deposit() {
    let e = scenario("fee-on-transfer-deposit").evidence;
    assert_eq!(e["received"], 990_000, "1% of 1,000,000 burnt in transit");
    assert_eq!(
        e["deposited_events"],
        serde_json::json!([990_000, 990_000, 990_000])
    );
    assert_eq!(e["enclave_credit"], e["deposited_events"]);
    assert_eq!(e["payment_above_received"]["accepted"], false);
    assert_eq!(e["payment_within"]["accepted"], true);
    assert_eq!(e["exit"]["granted"], 1_490_000);
    assert_eq!(e["exit"]["claimed"], 1_490_000);
    assert_eq!(
        e["exit"]["wallet_gain"], 1_475_100,
        "the token burns 1% on the way out too"
    );
    assert_eq!(e["statements_settled"], serde_json::json!([1, 2]));
    assert_eq!(e["totals"]["conserved"], true);
}

#[test]
fn stale_evidence() {
    let e = scenario("stale-evidence").evidence;
    assert_eq!(e["result_too_old"], "ResultTooOld");
    assert_eq!(e["challenge_300_blocks_back"], "StaleChallenge");
    assert_eq!(e["lifetime_too_long"], "LifetimeTooLong");
    assert_eq!(e["active_after_refusals"], false);
    assert!(e["fresh_result"].is_null());
    assert_eq!(e["active_after_fresh"], true);
}

#[test]
fn zero_challenge() {
    let e = scenario("zero-challenge").evidence;
    assert_eq!(e["verifier_refused_block_0"], true);
    assert_eq!(e["challenge_block_0"], "ZeroChallenge");
    assert_eq!(e["challenge_block_0_empty_challenge"], "ZeroChallenge");
    assert_eq!(e["active_after_refusals"], false);
    assert!(e["fresh_result"].is_null());
}

#[test]
fn front_run_registration() {
    let e = scenario("front-run-registration").evidence;
    assert_eq!(e["copies_landed"], 1);
    assert_eq!(e["node_register_tx"], "NotARenewal");
    assert!(e["node_registration"].is_null(), "{e:#}");
    assert_eq!(e["result_hash_on_chain"], e["node_result_hash"]);
    assert_eq!(e["attestation_results_logged"], 1);
    assert_eq!(e["logged_matching_chain"], 1);
    assert_eq!(e["settled"], serde_json::json!([1]));
}

#[test]
fn oversized_statement() {
    let e = scenario("oversized-statement").evidence;
    assert_eq!(e["participants"], 2_000);
    assert_eq!(e["accepted"], 1_000);
    assert_eq!(e["inputs_settled"], 1_000);
    let cap = e["effects_cap"].as_u64().unwrap();
    let entries = e["entries_per_statement"].as_array().unwrap();
    let gas = e["gas_per_statement"].as_array().unwrap();
    assert_eq!(entries.len(), gas.len());
    assert_eq!(e["statements"].as_u64().unwrap() as usize, gas.len());
    assert!(gas.len() as u64 >= 2_000 / cap, "{e:#}");
    assert_eq!(
        entries.iter().map(|n| n.as_u64().unwrap()).sum::<u64>(),
        2_000,
        "every pair's effect settled once"
    );
    assert!(entries.iter().all(|n| n.as_u64().unwrap() <= cap));
    let ceiling = e["gas_ceiling"].as_u64().unwrap();
    assert!(gas.iter().all(|g| g.as_u64().unwrap() <= ceiling), "{e:#}");
}

#[test]
fn exit_hatch() {
    let e = scenario("exit-hatch").evidence;
    assert_eq!(e["freeze_before_delay"], "HatchNotOpen");
    assert!(e["freeze_after_delay"].is_null());
    assert_eq!(e["settle_after_freeze"], "DeploymentFrozen");
    assert_eq!(e["request_after_freeze"], "DeploymentFrozen");
    assert_eq!(e["deposit_after_freeze"], "DeploymentFrozen");
    assert_eq!(e["escaped"], e["last_settled_escrow"]);
    assert_eq!(
        e["last_settled_escrow"],
        serde_json::json!([700_000, 1_300_000, 900_000, 1_050_000])
    );
    assert_eq!(e["claimed_after_freeze"], 50_000);
    assert_eq!(e["second_escape"], "NothingToClaim");
    assert_eq!(e["sum_out"], e["contract_balance_before"]);
    assert_eq!(e["totals"]["contract_balance"], 0);
}

#[test]
fn relayer_replay() {
    let e = scenario("relayer-replay").evidence;
    assert_eq!(e["statement_2_before_1"], "SequenceGap");
    assert_eq!(e["statement_3_before_1"], "SequenceGap");
    assert!(e["statement_1"].is_null());
    assert_eq!(e["statement_1_again"], "AlreadySettled");
    assert_eq!(e["renewed_statement_1"], "SequenceConflict");
    assert_eq!(e["altered_statement_1"], "SequenceConflict");
    assert_eq!(e["statement_2_tampered_effects"], "EffectsHashMismatch");
    assert_eq!(e["statement_2_added_exit"], "EffectsHashMismatch");
    assert_eq!(e["settled_sequences"], serde_json::json!([1, 2, 3]));
    assert_eq!(e["already_settled_events"], serde_json::json!([1]));
}

#[test]
fn withhold_withdrawal() {
    let e = scenario("withhold-withdrawal").evidence;
    assert_eq!(e["requests_decided_on_chain"], 0);
    assert!(e["statements_settled_after_request"].as_u64().unwrap() >= 3);
    let requested = e["requested_at"].as_u64().unwrap();
    let delay = e["exit_delay"].as_u64().unwrap();
    assert!(e["last_settled_at"].as_u64().unwrap() > requested);
    assert_eq!(e["hatch_opens_at"].as_u64().unwrap(), requested + delay);
    assert!(e["freeze"].is_null());
    assert_eq!(e["escaped"], e["escrow_before"]);
    assert_eq!(e["totals"]["conserved"], true);
}

#[test]
fn suite_sunset() {
    let e = scenario("suite-sunset").evidence;
    assert_eq!(e["before_t"], "accepted");
    assert_eq!(e["kept_envelope_after_t"], "suite-deprecated");
    assert_eq!(e["fresh_envelope_after_t"], "suite-deprecated");
    assert_eq!(e["kept_envelope_at_lied_time"], "suite-deprecated");
    assert!(e["enclave_time_after_lie"].as_u64().unwrap() >= e["sunset_at"].as_u64().unwrap());
    assert!(e["host_reported_time"].as_u64().unwrap() < e["sunset_at"].as_u64().unwrap());
    assert_eq!(e["log_size_before_after"][0], e["log_size_before_after"][1]);
    assert_eq!(
        e["replay_pairs_before_after"][0],
        e["replay_pairs_before_after"][1]
    );
    assert_eq!(e["xwing_after_t"], "accepted");
    assert_eq!(e["preferred_after_t"], "accepted");
    assert_eq!(e["settled_inputs"], serde_json::json!([1, 2]));
    assert_eq!(e["escrow_mismatches"], serde_json::json!([]));
}

#[test]
fn previous_version_client() {
    let e = scenario("previous-version-client").evidence;
    assert_eq!(e["current_envelope_version"], 2);
    assert_eq!(e["pinned_client_version"], 1);
    assert_eq!(e["first_submission"], "accepted");
    assert_eq!(e["resubmission"], "replayed");
    assert_eq!(
        e["claimed_versions"],
        serde_json::json!([
            {"version": 3, "answer": "unsupported-version"},
            {"version": 0, "answer": "unsupported-version"}
        ])
    );
    assert_eq!(e["settled_inputs"], serde_json::json!([2]));
    assert_eq!(e["escrow_mismatches"], serde_json::json!([]));
}

#[test]
fn upgrade_handover() {
    let e = scenario("upgrade-handover").evidence;
    assert_eq!(e["m2_allowed_before"], false);
    assert_eq!(e["m2_allowed_after"], true);
    assert_eq!(e["handover"]["sequence"], 3);
    assert_eq!(e["handover"]["settle"], Value::Null);
    assert_eq!(e["handover"]["replay"], "AlreadySettled");
    assert_eq!(e["current_enclave"], e["successor"]);
    assert_eq!(e["open_batch_moved"], 5);
    assert_eq!(e["successor_statement"]["sequence"], 4);
    assert_eq!(e["successor_statement"]["moved_receipts"], 5);
    assert_eq!(e["successor_statement"]["signer"], e["successor"]);
    assert_eq!(e["settled_sequences"], serde_json::json!([1, 2, 3, 4]));
    assert_eq!(e["inputs_settled"], e["inputs_accepted"]);
    let fork = e["fork_statements"].as_array().unwrap();
    assert_eq!(fork.last().unwrap()["revert"], "NotCurrentEnclave");
}

#[test]
fn handover_to_unallowed_measurement() {
    let e = scenario("handover-to-unallowed-measurement").evidence;
    assert_eq!(e["successor_active"], true);
    assert_eq!(e["m3_allowed_on_settlement"], false);
    assert_eq!(e["m3_in_policy"], false);
    assert_eq!(e["log_entries_added"], 0);
    assert_eq!(e["status_unchanged"], true);
    assert_eq!(e["contract"]["to_m3"], "NotCurrentEnclave");
    assert_eq!(e["contract"]["to_unregistered"], "NotCurrentEnclave");
    assert_ne!(
        e["current_enclave"],
        "0x0000000000000000000000000000000000000000"
    );
}

#[test]
fn lost_enclave_and_data() {
    let e = scenario("lost-enclave-and-data").evidence;
    let report = &e["loss_report"];
    assert_eq!(report["settled_receipts"], 4);
    assert_eq!(report["unrecovered"].as_array().unwrap().len(), 5);
    assert_eq!(report["unsettled_statements"], serde_json::json!([2]));
    assert_eq!(e["kept_receipts"]["settled"].as_array().unwrap().len(), 4);
    assert_eq!(
        e["kept_receipts"]["unrecovered"].as_array().unwrap().len(),
        5
    );
    assert!(
        e["kept_receipts"]["failures"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        e["governance"]["non_governor"],
        "AccessControlUnauthorizedAccount"
    );
    assert_eq!(
        e["governance"]["unallowed_measurement"],
        "MeasurementNotAllowedHere"
    );
    assert_eq!(e["governance"]["resume"], Value::Null);
    assert_eq!(e["governance"]["freeze_after_resume"], "HatchNotOpen");
    assert_eq!(
        e["lost_statement_2"]["before_successor_settles"],
        "NotCurrentEnclave"
    );
    assert_eq!(e["lost_statement_2"]["after"], "SequenceConflict");
    assert_eq!(e["misled_successor"], "PrevRootMismatch");
    assert_eq!(e["successor_statement"]["sequence"], 2);
    assert_eq!(e["last_sequence"], 2);
    assert_eq!(e["escaped"]["successor_view_of_2"], 0);
    assert_eq!(e["withdrawal_request_1"]["granted_by_successor"], 500);
    assert_eq!(e["withdrawal_request_1"]["claimed"], 500);
}

#[test]
fn effect_mismatch() {
    let e = scenario("effect-mismatch").evidence;
    assert_eq!(e["honest_audit"]["ok"], true);
    assert_eq!(e["settle_revert"], Value::Null);
    assert_eq!(e["state_root_kept"], true);
    assert_eq!(e["signer_is_the_enclave"], true);
    assert_eq!(
        e["participant_1"]["chain_escrow_after"].as_u64().unwrap(),
        e["participant_1"]["chain_escrow_before"].as_u64().unwrap() + 5
    );
    assert_eq!(e["audit"]["failed"], serde_json::json!(["effects"]));
    let detail = e["audit"]["details"]["effects"].as_str().unwrap();
    assert!(detail.contains("statement 2"), "{detail}");
}

#[test]
fn phantom_deposit() {
    let e = scenario("phantom-deposit").evidence;
    assert_eq!(e["honest_audit"]["ok"], true);
    assert_eq!(e["deposit_entries_logged"], 5);
    assert_eq!(e["deposited_events_on_chain"], 4);
    assert_eq!(e["spending_statement"]["revert"], "InsufficientEscrow");
    assert_eq!(e["audit"]["failed"], serde_json::json!(["deposits"]));
    let detail = e["audit"]["details"]["deposits"].as_str().unwrap();
    assert!(detail.contains("a deposit of 777"), "{detail}");
}

#[test]
fn split_view() {
    let e = scenario("split-view").evidence;
    assert_eq!(e["auditors_audit_without_witnesses"]["ok"], true);
    for w in e["clients_cosigning"].as_object().unwrap().values() {
        assert_eq!(w["status"], 200);
    }
    for w in e["auditors_cosigning"].as_object().unwrap().values() {
        assert_eq!(w["status"], 422);
    }
    assert_eq!(
        e["auditors_audit_with_witnesses"]["failed"],
        serde_json::json!(["checkpoint"])
    );
    assert_eq!(
        e["lifted_cosignatures"]["audit"]["failed"],
        serde_json::json!(["checkpoint"])
    );
}

#[test]
fn forked_log_witnesses() {
    let e = scenario("forked-log-witnesses").evidence;
    for a in e["fork_asked_from_0"].as_array().unwrap() {
        assert_eq!(a["status"], 409);
    }
    for w in e["fork_round"].as_object().unwrap().values() {
        assert_eq!(w["status"], 422);
    }
    assert_eq!(e["fork_cosignatures"], 0);
    assert_eq!(e["client_without_witnesses_on_fork"]["accepted"], true);
    assert_eq!(e["client_2_of_3_on_fork"]["accepted"], false);
    assert_eq!(
        e["client_2_of_3_on_fork_with_lifted_lines"]["accepted"],
        false
    );
    assert_eq!(e["client_2_of_3_on_honest"]["accepted"], true);
    assert_eq!(e["client_2_of_3_after"]["accepted"], true);
}

#[test]
fn forged_simulated_quote() {
    let e = scenario("forged-simulated-quote").evidence;
    assert_eq!(e["posture"], "production");
    assert_eq!(e["registry_allow_simulated"], false);
    assert_eq!(e["forgery_verifies_under_the_published_root"], true);
    assert_eq!(
        e["verifier_refusals"],
        serde_json::json!(["allow_simulated", "allow_simulated", "allow_simulated"])
    );
    assert_eq!(e["verifiers_signed"], 0);
    assert_eq!(e["registry"], "SimulatedNotAllowed");
    assert_eq!(e["attacker_registered"], false);
    assert_eq!(e["shares_released"], 0);
    for r in e["keyholder_refusals"].as_array().unwrap() {
        let r = r.as_str().unwrap();
        assert!(
            r.contains("422 refused") && r.contains("allow_simulated"),
            "{r}"
        );
    }
    assert_eq!(e["attacker_recovered_root"], false);
    // One line per attempt: three verifiers, the registry, three keyholders, the recombination.
    assert_eq!(e["attempts"].as_array().unwrap().len(), 8);
}

#[test]
fn stale_collateral() {
    let e = scenario("stale-collateral").evidence;
    assert_eq!(e["policy"]["min_tcb_evaluation_data_number"], 18);
    assert_eq!(e["served_collateral"]["tcb_evaluation_data_number"], 17);
    assert_eq!(e["current_collateral"]["tcb_evaluation_data_number"], 18);
    assert_eq!(
        e["platform_under_current_collateral"]["tcb_status"],
        "OutOfDate"
    );
    assert_eq!(
        e["platform_under_current_collateral"]["advisories"]
            .as_array()
            .unwrap()
            .len(),
        5
    );
    assert_eq!(
        e["platform_under_served_collateral"],
        serde_json::json!({"tcb_status": "UpToDate", "advisories": []})
    );
    for r in e["verifiers_inside_validity"].as_array().unwrap() {
        assert_eq!(r, "min_tcb_evaluation_data_number");
    }
    for r in e["verifiers_past_validity"].as_array().unwrap() {
        assert_eq!(r, "collateral_validity");
    }
    assert!(
        e["appraisal_with_served_collateral"]
            .as_str()
            .unwrap()
            .contains("below the floor 18"),
        "{e:#}"
    );
}

#[test]
fn snapshot_other_build() {
    let e = scenario("snapshot-other-build").evidence;
    assert_eq!(
        e["other_allowed"],
        serde_json::json!({"settlement": true, "registry": true})
    );
    assert_eq!(e["control_same_build"]["restored"], true);
    assert_eq!(
        e["control_same_build"]["measurement"],
        e["snapshot"]["measurement"]
    );
    assert_eq!(e["other_build_restore"]["restored"], false);
    assert!(
        e["other_build_restore"]["refused"]
            .as_str()
            .unwrap()
            .contains("another measurement"),
        "{e:#}"
    );
    assert_eq!(e["statements_settled_before"], 1);
}

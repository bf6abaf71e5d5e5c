//! Issue 11 part 2, verifying clients: the four scenarios hold with the figures their attacks
//! leave, and `verify_enclave_on_chain` refuses each way an enclave can fail to be the one the
//! chain trusts (not registered, another Ed25519 key or measurement, another policy, another
//! program id).

use alloy_primitives::B256;
use sealbridge_client::verify::{VerifyError, verify_enclave_on_chain};
use sealbridge_sandbox::{ChainSpec, ScenarioReport, World, WorldConfig, find, run};
use serde_json::Value;

fn scenario(name: &str) -> ScenarioReport {
    let s = find(name).unwrap_or_else(|| panic!("no scenario {name}"));
    let r = run(s, &ChainSpec::Embedded, &|line| {
        eprintln!("[{name}] {line}")
    });
    assert!(r.held, "{name} did not hold: {:#}", r.evidence);
    let checks = r.evidence["checks"].as_object().expect("checks");
    assert!(checks.len() >= 4, "{name}: {checks:?}");
    assert!(checks.values().all(|v| v == &Value::Bool(true)));
    r
}

#[test]
fn forged_receipts_are_refused_by_name() {
    let e = scenario("forged-receipt").evidence;
    assert_eq!(e["genuine"]["verdict"], "accepted", "{e:#}");
    let text = |k: &str| e[k].as_str().unwrap_or_default().to_string();
    assert!(
        text("another_envelope_receipt").contains("not the envelope sent"),
        "{e:#}"
    );
    assert!(text("self_signed").contains("does not verify"), "{e:#}");
    assert_eq!(e["edited_rejection"]["reason"], "program-rejected", "{e:#}");
}

#[test]
fn forged_checkpoints_are_refused_though_the_old_client_took_them() {
    let e = scenario("forged-checkpoint").evidence;
    assert_eq!(e["made_up"]["old_client_would_accept"], true, "{e:#}");
    assert_eq!(e["genuine_inclusion"], "accepted", "{e:#}");
    assert!(
        e["made_up"]["verdict"]
            .as_str()
            .unwrap()
            .contains("not signed by")
    );
}

#[test]
fn a_foreign_policy_enclave_is_registered_yet_refused() {
    let e = scenario("foreign-policy-enclave").evidence;
    assert_eq!(e["registered_and_active"], true, "{e:#}");
    assert_eq!(e["same_measurement"], true, "{e:#}");
    assert_ne!(e["chain_policy_hash"], e["foreign_policy_hash"]);
    // The client that did not check had its obligation accepted where it cannot settle.
    assert_eq!(
        e["unverifying_client"]["accepted_by_foreign_enclave"], true,
        "{e:#}"
    );
    assert!(
        e["unverifying_client"]["settle_reverted_with"].is_string(),
        "{e:#}"
    );
}

#[test]
fn a_rollback_is_caught_by_the_kept_receipts_and_the_kept_checkpoint() {
    let e = scenario("host-rollback").evidence;
    // The dropped position holds the restarted session's `SessionStart`, the next envelope the
    // one after it.
    assert_eq!(
        e["dropped_sequence"].as_u64().unwrap() + 1,
        e["next_envelope_sequence"].as_u64().unwrap(),
        "{e:#}"
    );
    assert_eq!(
        e["rolled_back"]["missing"].as_array().unwrap().len(),
        1,
        "{e:#}"
    );
    assert_eq!(
        e["rolled_back"]["missing"][0]["sequence"],
        e["dropped_sequence"]
    );
    assert!(
        e["honest_restart"]["missing"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert!(e["kept_checkpoint_vs_served"].is_string(), "{e:#}");
}

fn world(cfg: &WorldConfig) -> World<'static> {
    World::build(&ChainSpec::Embedded, cfg, &|_| {}).unwrap()
}

#[test]
fn an_enclave_the_chain_does_not_trust_is_refused() {
    let w = world(&WorldConfig::default());
    let tie = verify_enclave_on_chain(&w.sb, &w.description).unwrap();
    assert_eq!(tie.address, w.description.key_bundle.address);
    assert_eq!(tie.tokens, vec![w.token]);
    let mut accounts: Vec<_> = w.participants.iter().map(|p| p.account).collect();
    accounts.sort();
    assert_eq!(tie.participants, accounts);

    let refused = |edit: &dyn Fn(&mut sealbridge_enclave::boundary::Description)| {
        let mut d = w.description.clone();
        edit(&mut d);
        verify_enclave_on_chain(&w.sb, &d).unwrap_err()
    };
    let e = refused(&|d| d.key_bundle.ed25519[0] ^= 1);
    assert!(matches!(e, VerifyError::Ed25519Mismatch { .. }), "{e}");
    let e = refused(&|d| d.measurement = B256::repeat_byte(7));
    assert!(matches!(e, VerifyError::MeasurementMismatch { .. }), "{e}");
    let e = refused(&|d| d.policy_hash = B256::repeat_byte(8));
    assert!(matches!(e, VerifyError::PolicyHashMismatch { .. }), "{e}");
    assert!(
        e.to_string().contains("the chain's settlement holds"),
        "{e}"
    );
    let e = refused(&|d| d.program_id = B256::repeat_byte(9));
    assert!(matches!(e, VerifyError::ProgramIdMismatch { .. }), "{e}");
    let e = refused(&|d| d.key_bundle.address = alloy_primitives::Address::repeat_byte(3));
    assert!(matches!(e, VerifyError::EnclaveNotActive { .. }), "{e}");

    // Not registered at all.
    let w = world(&WorldConfig {
        register: false,
        deposit: 0,
        ..WorldConfig::default()
    });
    let e = verify_enclave_on_chain(&w.sb, &w.description).unwrap_err();
    assert!(matches!(e, VerifyError::EnclaveNotActive { .. }), "{e}");
    assert!(
        e.to_string()
            .contains("is not active in the registry (NotRegistered)"),
        "{e}"
    );
}

/// A host that replays a client's accepted envelope to the enclave gets a genuine, signed,
/// unlogged `replayed` rejection for it; handing that to the client as the envelope's outcome
/// would have it pay again. `audit --receipts` refuses such a kept receipt: the log accepts
/// the same envelope.
#[test]
fn an_unlogged_rejection_for_an_accepted_envelope_fails_the_kept_receipts_check() {
    use sealbridge_audit::kept::{KeptReceipt, check_kept_receipts};
    let mut w = world(&WorldConfig::default());
    let (to, token) = (w.account(1), w.token);
    let envelope = w.seal_payment(0, to, token, 5).unwrap();
    let accepted = w.submit_envelope(envelope.clone()).unwrap();
    assert!(accepted.rejected.is_none() && accepted.logged);
    let replayed = w.submit_envelope(envelope).unwrap();
    assert!(!replayed.logged, "a replay is an unlogged rejection");
    let kept = |name: &str, receipt: &[u8]| KeptReceipt {
        name: name.into(),
        receipt: receipt.to_vec(),
    };
    let honest = check_kept_receipts(&w.log, &[kept("accepted", &accepted.receipt)]);
    assert!(honest.ok(), "{honest:?}");
    let misled = check_kept_receipts(&w.log, &[kept("replayed", &replayed.receipt)]);
    assert_eq!(misled.failures.len(), 1, "{misled:?}");
    assert_eq!(misled.failures[0].sequence, Some(accepted.sequence));
    assert!(
        misled.failures[0].why.contains("does not decide it"),
        "{misled:?}"
    );
    // A client that holds the acceptance too was not misled (a re-send answered `replayed`).
    let both = check_kept_receipts(
        &w.log,
        &[
            kept("accepted", &accepted.receipt),
            kept("replayed", &replayed.receipt),
        ],
    );
    assert!(both.ok(), "{both:?}");
    assert_eq!((both.in_log, both.unlogged), (1, 1));
}

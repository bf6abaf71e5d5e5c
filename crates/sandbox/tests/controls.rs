//! Negative controls: the same scenarios in a deployment without the protection they test must
//! be reported broken. A verdict comes from what the chain and the enclave show, so taking a
//! defence away changes it.

use sealbridge_sandbox::{
    ChainSpec, Governance, ScenarioReport, TokenKind, WorldConfig, find, run_with,
};

fn weakened(name: &str, tweak: &dyn Fn(&mut WorldConfig)) -> ScenarioReport {
    let s = find(name).unwrap();
    let r = run_with(s, &ChainSpec::Embedded, tweak, &|_| {});
    assert!(!r.held, "{name} held in a weakened world: {:#}", r.evidence);
    r
}

/// The checks that failed.
fn failed(r: &ScenarioReport) -> Vec<String> {
    r.evidence["checks"]
        .as_object()
        .map(|c| {
            c.iter()
                .filter(|(_, v)| v.as_bool() != Some(true))
                .map(|(k, _)| k.clone())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_timelock_shorter_than_the_exit_delay_is_reported() {
    // Governance that can act within exitDelay: the change is scheduled and executable before
    // the escape hatch could open.
    let r = weakened("governor-drain", &|c| {
        c.governance = Governance::Timelock { delay: 3_600 }
    });
    let failed = failed(&r);
    assert!(
        failed.contains(&"a timelock delay of only exitDelay is refused".to_string()),
        "{failed:?}"
    );
    assert!(
        failed.contains(&"the escape hatch would open before the changes take effect".to_string()),
        "{failed:?}"
    );
}

#[test]
fn a_token_without_a_fee_is_not_a_fee_on_transfer_deposit() {
    let r = weakened("fee-on-transfer-deposit", &|c| c.token = TokenKind::Test);
    assert_eq!(r.evidence["received"], 1_000_000);
    assert!(
        failed(&r).contains(&"escrow credits what arrived, less than asked".to_string()),
        "{:?}",
        failed(&r)
    );
}

#[test]
fn statements_from_an_unregistered_enclave_are_reported() {
    // The honest path needs a registered enclave: without one, nothing settles and the
    // scenarios that rely on settlement say so.
    for name in [
        "withdraw-then-pay",
        "withdraw-after-accept",
        "exit-hatch",
        "relayer-replay",
    ] {
        let r = weakened(name, &|c| c.register = false);
        assert!(
            !failed(&r).is_empty() || r.evidence.get("error").is_some(),
            "{name}: {:#}",
            r.evidence
        );
    }
}

#[test]
fn a_cap_too_large_for_a_block_is_reported() {
    // An effects cap of 2,000 entries puts every payment in one statement, whose settle needs
    // far more gas than the ceiling (or a block).
    let r = weakened("oversized-statement", &|c| {
        c.max_effects_per_statement = Some(4_000)
    });
    assert!(
        r.evidence.get("error").is_some() || !failed(&r).is_empty(),
        "{:#}",
        r.evidence
    );
}

/// Issue 14: each attack succeeds once its defence is taken away.
fn without(name: &str, off: fn(&mut sealbridge_sandbox::Defences)) -> ScenarioReport {
    weakened(name, &|c| off(&mut c.defences))
}

#[test]
fn a_forged_simulated_quote_registers_and_recovers_the_root_under_a_development_policy() {
    let r = without("forged-simulated-quote", |d| d.production_policy = false);
    let e = &r.evidence;
    assert_eq!(e["posture"], "development");
    assert_eq!(e["verifiers_signed"], 3, "{e:#}");
    assert!(e["registry"].is_null(), "{e:#}");
    assert_eq!(e["attacker_registered"], true);
    assert_eq!(e["shares_released"], 3);
    assert_eq!(e["attacker_recovered_root"], true);
    let failed = failed(&r);
    assert!(
        failed.contains(&"the attacker's key is not registered".to_string())
            && failed.contains(&"the attacker recombines no sealing root".to_string()),
        "{failed:?}"
    );
    // The forgery itself is the same either way.
    assert!(!failed.iter().any(|f| f.starts_with("the forgery is sound")));
}

#[test]
fn stale_collateral_passes_appraisal_without_a_tcb_r_floor() {
    let r = without("stale-collateral", |d| d.tcb_r_floor = false);
    let e = &r.evidence;
    assert!(e["policy"]["min_tcb_evaluation_data_number"].is_null());
    assert_eq!(e["appraisal_with_served_collateral"], "accepted: UpToDate");
    // Only the binding stops a signature: the vector quote binds another party's report data.
    for rule in e["verifiers_inside_validity"].as_array().unwrap() {
        assert_eq!(rule, "report_data_binding");
    }
    let mut failed = failed(&r);
    failed.sort();
    assert_eq!(
        failed,
        [
            "every verifier refuses the pre-recovery collateral: min_tcb_evaluation_data_number",
            "the verifiers' appraisal does not take the platform for UpToDate",
        ],
        "{e:#}"
    );
}

#[test]
fn a_snapshot_runs_under_another_build_without_the_measurement_check() {
    let r = without("snapshot-other-build", |d| d.snapshot_measurement = false);
    let e = &r.evidence;
    assert_eq!(e["other_build_restore"]["restored"], true, "{e:#}");
    assert_eq!(
        e["other_build_restore"]["measurement"],
        e["other_measurement"]
    );
    assert_eq!(e["other_build_restore"]["signing_key"], e["instance"]);
    let mut failed = failed(&r);
    failed.sort();
    assert_eq!(
        failed,
        [
            "a process of the other build refuses it: taken by another measurement",
            "the instance's keys do not run under the other build",
        ]
    );
}

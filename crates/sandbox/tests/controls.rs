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

//! `sealbridge sandbox`: named adversarial scenarios run against the real contract bytecode, the
//! real in-process enclave and the real verifier library (DESIGN §11b).
//!
//! Each scenario ([`Scenario`]) is an attack or a fault with the invariant of DESIGN §12 it
//! threatens. The runner gives it a fresh [`World`] — a chain (embedded by default, or a JSON-RPC
//! node such as anvil), a new deployment of the committed contracts, an enclave booted with a
//! netting policy and registered through 2-of-3 verifier signatures over a block-hash challenge,
//! funded participants — and the scenario performs the attack, then decides whether the system
//! held from what the chain and the enclave show afterwards, never from what it expected. Its
//! [`Outcome`] carries the figures that show it (amounts, sequences, revert names, counts).
//!
//! Not part of the TCB: this crate drives the enclave from outside, as a host would.
#![forbid(unsafe_code)]

pub mod auditor;
pub mod chain;
pub mod client;
pub mod custody;
pub mod deploy;
pub mod host;
pub mod registration;
pub mod rogue;
pub mod scenarios;
pub mod witnesses;
pub mod world;

use serde::Serialize;
use serde_json::Value;

pub use chain::{ChainSpec, SandboxChain};
pub use deploy::TokenKind;
pub use scenarios::scenarios;
pub use world::{Defences, Governance, HandoverWorld, World, WorldConfig};

/// Errors of the harness itself (a scenario that cannot be carried out, not one that found the
/// system broken: that is an [`Outcome`] with `held: false`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SandboxError {
    /// A contract call failed where the scenario needed it to succeed.
    #[error("contract: {0}")]
    Contract(#[from] sealbridge_chain::ContractError),
    /// The chain refused or failed a request.
    #[error("chain: {0}")]
    Chain(#[from] sealbridge_chain::ChainError),
    /// The enclave answered something the harness cannot use.
    #[error("enclave: {0}")]
    Enclave(String),
    /// A verifier refused to appraise or sign.
    #[error("verifier: {0}")]
    Verifier(#[from] sealbridge_attest::Error),
    /// The world could not be set up.
    #[error("setup: {0}")]
    Setup(String),
}

/// What a scenario found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outcome {
    /// Whether every invariant the scenario checks held.
    pub held: bool,
    /// The figures that show it.
    pub evidence: Value,
}

/// One adversarial scenario. Implementations live in [`scenarios`], one file each.
pub trait Scenario: Sync {
    /// Stable kebab-case name (`--scenario NAME`).
    fn name(&self) -> &'static str;
    /// One sentence: the attack or fault, and the DESIGN §12 invariants it threatens.
    fn threat(&self) -> &'static str;
    /// The world the scenario needs (participants, token, governance, …).
    fn world(&self) -> WorldConfig {
        WorldConfig::default()
    }
    /// Perform the attack and judge it from what the chain and the enclave show.
    fn run(&self, world: &mut World) -> Result<Outcome, SandboxError>;
}

/// A scenario's line in the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScenarioReport {
    /// Its name.
    pub name: &'static str,
    /// Its threat.
    pub threat: &'static str,
    /// Whether the system held.
    pub held: bool,
    /// The figures; `{"error": …}` when the harness could not carry the scenario out.
    pub evidence: Value,
}

/// The whole report (`sealbridge sandbox --json`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// One entry per scenario run, in registry order.
    pub scenarios: Vec<ScenarioReport>,
    /// How many held.
    pub held: usize,
    /// How many did not (including those the harness could not carry out).
    pub broken: usize,
}

impl Report {
    /// A report from scenario lines.
    pub fn new(scenarios: Vec<ScenarioReport>) -> Self {
        let held = scenarios.iter().filter(|s| s.held).count();
        Self {
            broken: scenarios.len() - held,
            held,
            scenarios,
        }
    }
}

/// The scenario named `name`.
pub fn find(name: &str) -> Option<&'static dyn Scenario> {
    scenarios().into_iter().find(|s| s.name() == name)
}

/// Every scenario's name, in registry order.
pub fn names() -> Vec<&'static str> {
    scenarios().iter().map(|s| s.name()).collect()
}

/// Run one scenario in a fresh world on `spec`; `progress` receives its step lines. A harness
/// failure is reported as not held, with the error as evidence.
pub fn run(scenario: &dyn Scenario, spec: &ChainSpec, progress: &dyn Fn(&str)) -> ScenarioReport {
    run_with(scenario, spec, &|_| {}, progress)
}

/// [`run`] in a world changed by `tweak` from the one the scenario asks for (negative controls:
/// a weaker deployment must be reported broken).
pub fn run_with(
    scenario: &dyn Scenario,
    spec: &ChainSpec,
    tweak: &dyn Fn(&mut WorldConfig),
    progress: &dyn Fn(&str),
) -> ScenarioReport {
    let mut config = scenario.world();
    tweak(&mut config);
    let outcome =
        World::build(spec, &config, progress).and_then(|mut world| scenario.run(&mut world));
    let (held, evidence) = match outcome {
        Ok(o) => (o.held, o.evidence),
        Err(e) => (false, serde_json::json!({ "error": e.to_string() })),
    };
    ScenarioReport {
        name: scenario.name(),
        threat: scenario.threat(),
        held,
        evidence,
    }
}

/// Named checks that make up a scenario's verdict: it held iff every check passed. The checks
/// go into the evidence, so a broken scenario says which invariant failed.
#[derive(Debug, Default, Clone)]
pub struct Checks {
    list: Vec<(String, bool)>,
}

impl Checks {
    /// No checks yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Record check `name`.
    pub fn check(&mut self, name: impl Into<String>, passed: bool) -> &mut Self {
        self.list.push((name.into(), passed));
        self
    }

    /// Whether every check passed (and there was at least one).
    pub fn held(&self) -> bool {
        !self.list.is_empty() && self.list.iter().all(|(_, ok)| *ok)
    }

    /// The outcome: `evidence` with a `checks` object (name → passed) added.
    pub fn outcome(&self, mut evidence: Value) -> Outcome {
        let checks: serde_json::Map<String, Value> = self
            .list
            .iter()
            .map(|(n, ok)| (n.clone(), Value::Bool(*ok)))
            .collect();
        if let Value::Object(map) = &mut evidence {
            map.insert("checks".into(), Value::Object(checks));
        }
        Outcome {
            held: self.held(),
            evidence,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_names_are_the_issue_s_and_unique() {
        let names = names();
        let want = [
            "withdraw-then-pay",
            "withdraw-after-accept",
            "governor-drain",
            "pay-outsider",
            "foreign-token-deposit",
            "fee-on-transfer-deposit",
            "stale-evidence",
            "zero-challenge",
            "front-run-registration",
            "oversized-statement",
            "exit-hatch",
            "relayer-replay",
            "withhold-withdrawal",
            "tile-path-escape",
            "power-loss-tiles",
            "forged-receipt",
            "forged-checkpoint",
            "foreign-policy-enclave",
            "host-rollback",
            "second-session",
            "lone-obligation",
            "host-cut-batch-of-one",
            "time-jump",
            "tick-max",
            "replay-set-flood",
            "log-spam",
            "settled-inputs-at-rest",
            "replay-refused-envelope",
            "suite-sunset",
            "previous-version-client",
            "keyholder-minority",
            "lost-enclave",
            "lost-enclave-and-data",
            "root-rotation",
            "upgrade-handover",
            "handover-to-unallowed-measurement",
            "policy-change-midload",
            "effect-mismatch",
            "phantom-deposit",
            "split-view",
            "forked-log-witnesses",
            "forged-simulated-quote",
            "stale-collateral",
            "snapshot-other-build",
        ];
        assert_eq!(names, want);
        for s in scenarios() {
            assert!(s.threat().ends_with('.'), "{}: one sentence", s.name());
            assert!(s.threat().contains('§') || s.threat().contains("invariant"));
            assert!(find(s.name()).is_some());
        }
        assert!(find("no-such-scenario").is_none());
    }

    #[test]
    fn checks_hold_only_when_all_pass_and_there_is_one() {
        assert!(!Checks::new().held());
        let mut c = Checks::new();
        c.check("a", true);
        assert!(c.held());
        c.check("b", false);
        let o = c.outcome(serde_json::json!({"x": 1}));
        assert!(!o.held);
        assert_eq!(o.evidence["checks"]["a"], true);
        assert_eq!(o.evidence["checks"]["b"], false);
        assert_eq!(o.evidence["x"], 1);
    }

    #[test]
    fn report_counts() {
        let line = |held| ScenarioReport {
            name: "x",
            threat: "t.",
            held,
            evidence: Value::Null,
        };
        let r = Report::new(vec![line(true), line(false), line(true)]);
        assert_eq!((r.held, r.broken), (2, 1));
    }
}

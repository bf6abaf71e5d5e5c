//! `snapshot-other-build`: the host takes an instance's sealed snapshot and restores it in an
//! enclave process of another build that the deployment also allows, to move the instance — its
//! signing keys, registered on chain, its epoch keys, its state — to that build without a
//! handover (which the current enclave signs, and the chain and the policy's successor list
//! check). The other build can open the snapshot: keyholders release the sealing root to every
//! build `Settlement.measurementAllowed` says yes to, and the simulated TEE's root is a file any
//! build on the machine reads; here it gets the world's root.
//!
//! Before issue 14 (review fix be5225f) a snapshot did not say which measurement took it, and any
//! build that held the root restored it. Now it records the measurement and the restoring
//! enclave refuses a snapshot of another one ("a change of build is a handover"). The simulated
//! TEE has no hardware measurement — a process restoring a snapshot takes the snapshot's build
//! label — so the sandbox names the restoring process's build through the enclave's
//! sandbox-only `DangerRestoreAs`. Negative control ([`crate::Defences::snapshot_measurement`]
//! off): the enclave without that check, which runs the instance's keys under the other build.

use sealbridge_enclave::{
    DangerRestoreAs,
    boundary::{Request, Response},
};
use serde_json::{Value, json};

use super::upgrade_handover::netting_build;
use crate::{Checks, HandoverWorld, Outcome, SandboxError, Scenario, World, WorldConfig};

/// See the module documentation.
#[derive(Debug)]
pub struct SnapshotOtherBuild;

/// The other build the deployment allows.
const OTHER_BUILD: &str = "v2";

impl Scenario for SnapshotOtherBuild {
    fn name(&self) -> &'static str {
        "snapshot-other-build"
    }

    fn threat(&self) -> &'static str {
        "The host restores an instance's sealed snapshot under another build the deployment also \
         allows, so that the instance's keys and state move to that build without a handover \
         (DESIGN §12 invariant 2, only the deployment's enclave signs)."
    }

    fn world(&self) -> WorldConfig {
        WorldConfig {
            // A durable enclave (the host holds sealed snapshots); the registry allows the
            // other build too.
            handover: Some(HandoverWorld {
                successors: Vec::new(),
                registry_also: vec![netting_build(OTHER_BUILD)],
            }),
            ..WorldConfig::default()
        }
    }

    fn run(&self, w: &mut World<'_>) -> Result<Outcome, SandboxError> {
        let own = w.description.measurement;
        let other = netting_build(OTHER_BUILD);
        let instance = w.description.key_bundle.address;

        w.step("honest traffic: two payments settle (statement 1)");
        w.pay(0, 1, 100)?;
        w.pay(2, 3, 200)?;
        let settled = w.cut_and_settle()?.settled.len();

        w.step("governance allows the other build on Settlement too");
        let admin = w.admin;
        w.unlock(admin)?;
        w.sb.allow_measurement_here(admin, other)?;
        let allowed_settlement = w.allowed_on_settlement(other)?;
        let allowed_registry = w.sb.measurement_allowed(other)?;

        w.step("the host takes the instance's sealed snapshot");
        let snapshot = w.snapshot()?;
        let mut attempts = Vec::new();

        w.step("control: a process of the instance's own build restores it");
        let same = DangerRestoreAs {
            build: None,
            check_measurement: w.defences.snapshot_measurement,
        };
        let control = w.restore_copy_as(&snapshot, &same)?;
        let control = restored(control)?;
        attempts.push(attempt(
            "restore the snapshot in a process of its own build",
            &control,
        ));

        w.step("the host restores the snapshot in a process of the other build");
        let how = DangerRestoreAs {
            build: Some(OTHER_BUILD.to_string()),
            check_measurement: w.defences.snapshot_measurement,
        };
        let moved = w.restore_copy_as(&snapshot, &how)?;
        let moved = restored(moved)?;
        attempts.push(attempt(
            &format!("restore the snapshot in a process of build {OTHER_BUILD}"),
            &moved,
        ));

        let mut c = Checks::new();
        c.check(
            "the deployment allows the other build (Settlement and registry)",
            allowed_settlement && allowed_registry && other != own,
        )
        .check(
            "control: the snapshot restores under the measurement that took it",
            control
                .as_ref()
                .is_ok_and(|(m, key)| *m == own && *key == instance),
        )
        .check(
            "a process of the other build refuses it: taken by another measurement",
            moved
                .as_ref()
                .is_err_and(|why| why.contains("another measurement")),
        )
        .check(
            "the instance's keys do not run under the other build",
            !moved
                .as_ref()
                .is_ok_and(|(m, key)| *m == other && *key == instance),
        );
        Ok(c.outcome(json!({
            "instance": format!("{instance:#x}"),
            "statements_settled_before": settled,
            "snapshot": {
                "next_record": snapshot.0.next_record,
                "chunks": snapshot.0.chunks,
                "measurement": own.to_string(),
            },
            "other_build": OTHER_BUILD,
            "other_measurement": other.to_string(),
            "other_allowed": { "settlement": allowed_settlement, "registry": allowed_registry },
            "check_in_place": w.defences.snapshot_measurement,
            "control_same_build": outcome(&control),
            "other_build_restore": outcome(&moved),
            "attempts": attempts,
        })))
    }
}

/// A restore's measurement and signing address, or its refusal.
type Restored = Result<(alloy_primitives::B256, alloy_primitives::Address), String>;

/// What a restored enclave describes itself as.
fn restored(
    r: Result<sealbridge_enclave::Enclave<sealbridge_programs::netting::Netting>, String>,
) -> Result<Restored, SandboxError> {
    match r {
        Err(why) => Ok(Err(why)),
        Ok(mut e) => match e.handle(Request::Describe) {
            Response::Description(d) => Ok(Ok((d.measurement, d.key_bundle.address))),
            other => Err(SandboxError::Enclave(format!("Describe: {other:?}"))),
        },
    }
}

fn outcome(r: &Restored) -> Value {
    match r {
        Ok((m, key)) => json!({
            "restored": true,
            "measurement": m.to_string(),
            "signing_key": format!("{key:#x}"),
        }),
        Err(why) => json!({ "restored": false, "refused": why }),
    }
}

fn attempt(attempted: &str, r: &Restored) -> Value {
    json!({
        "attempted": attempted,
        "outcome": match r {
            Ok((m, key)) => format!("restored: the instance's key {key:#x} runs under measurement {m}"),
            Err(why) => format!("refused by the restoring enclave: {why}"),
        },
    })
}

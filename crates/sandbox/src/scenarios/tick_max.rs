//! `tick-max`: the host sends `Tick { now: u64::MAX }`.
//!
//! Before issue 11 the enclave rotated its epoch key once per elapsed epoch in a loop: from
//! 2026 to `u64::MAX` that is about 5·10¹⁵ key generations, so the request never returned and
//! the instance hung. Now a step over the policy's `max_clock_step_secs` is refused at once
//! (`ClockStep`), and even under a policy that lets the clock step anywhere the new epoch is
//! computed, not iterated: the tick returns promptly with one announcement.

use std::time::Instant;

use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use sealbridge_enclave::{
    Enclave, SettlementTarget,
    boundary::{BoundaryError, Request, Response},
    epochs::EpochAnnouncement,
};
use sealbridge_programs::netting::Netting;
use sealbridge_seal::keys::Ed25519PublicKey;
use serde_json::json;

use crate::{Checks, Outcome, SandboxError, Scenario, World};

/// See the module documentation.
#[derive(Debug)]
pub struct TickMax;

/// Far more than the computed rotation takes, far less than the loop it replaces.
const PROMPT_MS: u128 = 2_000;

impl Scenario for TickMax {
    fn name(&self) -> &'static str {
        "tick-max"
    }

    fn threat(&self) -> &'static str {
        "The host ticks the enclave to the end of time (u64::MAX) so that a loop proportional \
         to the time difference never returns and the instance hangs (DESIGN §12 invariant 6; issue 11 part 5)."
    }

    fn run(&self, w: &mut World<'_>) -> Result<Outcome, SandboxError> {
        w.step("Tick(u64::MAX) to the registered enclave (policy: one epoch per step)");
        let before = (w.enclave.enclave_time(), w.enclave.log_head());
        let started = Instant::now();
        let answer = w.enclave.handle(Request::Tick { now: u64::MAX });
        let refused_ms = started.elapsed().as_millis();
        let refused = matches!(answer, Response::Error(BoundaryError::ClockStep { .. }));
        let unchanged = before == (w.enclave.enclave_time(), w.enclave.log_head());
        let still_works = w.pay(0, 1, 10)?.accepted;

        w.step("Tick(u64::MAX) to an enclave whose policy lets the clock step anywhere");
        let mut policy = w.policy.clone();
        policy.max_clock_step_secs = u64::MAX;
        let now = w.now()?;
        let target = SettlementTarget {
            chain_id: w.sb.deployment.chain_id,
            settlement: w.sb.deployment.settlement,
        };
        let mut open = Enclave::boot(
            policy.clone(),
            Netting::new(&policy.netting),
            target,
            Box::new(ChaCha20Rng::seed_from_u64(0x71c4)),
            now,
        )
        .map_err(|e| SandboxError::Enclave(format!("boot: {e}")))?;
        let key = Ed25519PublicKey::from_bytes(open.describe().key_bundle.ed25519);
        let started = Instant::now();
        let answer = open.handle(Request::Tick { now: u64::MAX });
        let ticked_ms = started.elapsed().as_millis();
        let announced = match &answer {
            Response::Ticked { announcements } => announcements
                .iter()
                .filter_map(|a| EpochAnnouncement::verify(a, &key).ok())
                .collect::<Vec<_>>(),
            _ => Vec::new(),
        };
        let epochs_elapsed = (u64::MAX - now) / policy.epoch_secs;
        let new_epoch = announced.first().map(|a| a.epoch.0);

        let mut c = Checks::new();
        c.check(
            "the registered enclave refused the step at once and changed nothing",
            refused && unchanged && refused_ms < PROMPT_MS,
        )
        .check("it kept accepting payments", still_works)
        .check(
            "the permissive enclave's tick returned promptly",
            ticked_ms < PROMPT_MS,
        )
        .check(
            "with one announcement of the epoch u64::MAX falls in",
            announced.len() == 1 && new_epoch == Some(1 + epochs_elapsed),
        )
        .check("its clock is at u64::MAX", open.enclave_time() == u64::MAX);
        Ok(c.outcome(json!({
            "refused_in_ms": refused_ms,
            "permissive_tick_ms": ticked_ms,
            "epochs_skipped": epochs_elapsed,
            "new_epoch": new_epoch,
            "announcements": announced.len(),
        })))
    }
}

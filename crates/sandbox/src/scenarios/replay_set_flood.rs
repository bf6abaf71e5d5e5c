//! `replay-set-flood`: a participant sends envelope after envelope, each with a fresh nonce and
//! the longest expiry allowed, to pin entries in the enclave's replay set; strangers flood too.
//!
//! Before issue 11 every accepted envelope stayed in the replay set until it expired, however
//! many one sender had there: one participant could grow enclave memory without bound. Now the
//! policy's `max_pending_per_sender` (here 50) caps one sender's live nonces; the next input is
//! rejected `quota-exceeded` (signed and logged: a participant signed it), others are not
//! affected, strangers never reach the set, and the sender may send again once its nonces
//! expire.

use sealbridge_enclave::{EnclavePolicy, boundary::Request};
use sealbridge_programs::netting::Obligation;
use sealbridge_seal::keys::Ed25519SigningKey;
use serde_json::json;

use crate::{
    Checks, Outcome, SandboxError, Scenario, World, WorldConfig,
    client::{Addressing, seal_obligation},
};

/// See the module documentation.
#[derive(Debug)]
pub struct ReplaySetFlood;

const QUOTA: u32 = 50;
const FLOOD: usize = 200;
const STRANGERS: usize = 300;

fn quota(mut p: EnclavePolicy) -> EnclavePolicy {
    p.max_pending_per_sender = QUOTA;
    p.batch_size = 1_000;
    p
}

impl Scenario for ReplaySetFlood {
    fn name(&self) -> &'static str {
        "replay-set-flood"
    }

    fn threat(&self) -> &'static str {
        "A participant (or anyone) floods the enclave with fresh nonces so that the replay set, \
         kept in enclave memory until each envelope expires, grows without bound (DESIGN §12 \
         invariant 6; issue 11 part 6)."
    }

    fn world(&self) -> WorldConfig {
        WorldConfig {
            policy: Some(quota),
            ..WorldConfig::default()
        }
    }

    fn run(&self, w: &mut World<'_>) -> Result<Outcome, SandboxError> {
        w.step(&format!(
            "participant 0 sends {FLOOD} payments of 1 with fresh nonces"
        ));
        let (mut accepted, mut quota_exceeded, mut other) = (0, 0, 0);
        let log_before = w.enclave.log_head().0;
        for _ in 0..FLOOD {
            let p = w.pay(0, 1, 1)?;
            match (p.accepted, p.reason) {
                (true, _) => accepted += 1,
                (false, Some("quota-exceeded")) => quota_exceeded += 1,
                _ => other += 1,
            }
        }
        let after_flood = w.enclave.growth_counters();
        let log_after_flood = w.enclave.log_head().0;
        let others_ok = w.pay(1, 2, 5)?.accepted && w.pay(2, 0, 5)?.accepted;

        w.step(&format!(
            "{STRANGERS} envelopes signed by keys no participant holds"
        ));
        let addressing = Addressing::from_description(&w.description)?;
        let mut strangers_refused = 0;
        for _ in 0..STRANGERS {
            let key = Ed25519SigningKey::generate(&mut w.rng);
            let expires = w.now()? + 600;
            let header = addressing.header(&mut w.rng, expires);
            let ob = Obligation {
                to: w.account(1),
                token: w.token,
                amount: 1,
            };
            let envelope = seal_obligation(&addressing, &header, &key, &ob, &mut w.rng)?;
            let now = w.now()?;
            if let sealbridge_enclave::boundary::Response::Submitted(o) =
                w.enclave.handle(Request::Submit { envelope, now })
                && o.rejected.map(|r| r.as_str()) == Some("unauthorised-sender")
            {
                strangers_refused += 1;
            }
        }
        let after_strangers = w.enclave.growth_counters();

        w.step("the sender's nonces expire (10 min): it may send again");
        w.advance_time(601)?;
        let after_expiry = w.enclave.growth_counters();
        let again = w.pay(0, 1, 1)?;
        let relayed = w.cut_and_settle()?;

        let mut c = Checks::new();
        c.check(
            "the sender's first 50 were accepted, the rest refused quota-exceeded",
            accepted == QUOTA as usize && quota_exceeded == FLOOD - QUOTA as usize && other == 0,
        )
        .check(
            "quota refusals are logged (a participant signed them)",
            log_after_flood - log_before == FLOOD as u64,
        )
        .check(
            "the replay set holds at most the quota for that sender",
            after_flood.replay_pairs == u64::from(QUOTA) && after_flood.replay_senders == 1,
        )
        .check("other participants are not affected", others_ok)
        .check(
            "strangers never reach the replay set",
            strangers_refused == STRANGERS
                && after_strangers.replay_pairs == after_flood.replay_pairs + 2,
        )
        .check(
            "after expiry the set is empty and the sender is accepted again",
            after_expiry.replay_pairs == 0 && again.accepted,
        )
        .check(
            "the accepted inputs settled",
            relayed.refused.is_none()
                && relayed.settled.iter().map(|s| s.inputs).sum::<u32>() == QUOTA + 3,
        );
        Ok(c.outcome(json!({
            "quota": QUOTA,
            "log_entries_for_the_flood": log_after_flood - log_before,
            "sent": FLOOD,
            "accepted": accepted,
            "quota_exceeded": quota_exceeded,
            "replay_pairs_after_flood": after_flood.replay_pairs,
            "replay_senders_after_flood": after_flood.replay_senders,
            "strangers_sent": STRANGERS,
            "strangers_refused": strangers_refused,
            "replay_pairs_after_strangers": after_strangers.replay_pairs,
            "replay_pairs_after_expiry": after_expiry.replay_pairs,
            "unlogged_rejections_counted": after_strangers.unlogged_in_window,
            "settled_inputs": relayed.settled.iter().map(|s| s.inputs).sum::<u32>(),
        })))
    }
}

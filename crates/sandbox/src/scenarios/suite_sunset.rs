//! `suite-sunset`: the policy deprecates a suite (X25519/ChaCha20-Poly1305) after a date T. Before
//! T an envelope sealed with it is accepted and settles; from T on, enclave time decides: the
//! host submits an envelope of that suite it kept from before T, and a fresh one, and both are
//! refused `suite-deprecated` with nothing changed (escrow, replay set, log: the rejection is an
//! unlogged one, a signed receipt counted into the next rejection summary), while X-Wing and the
//! preferred suite still settle. Then the host lies about time, reporting a time before T, and
//! resubmits: the enclave's clock does not go back, and the envelope is still refused.
//!
//! The lifecycle is in the policy bytes, hence in the policy hash the chain holds; clients read
//! it from the enclave's signed X-Wing announcement.

use sealbridge_enclave::{
    EnclavePolicy,
    boundary::{Request, Response},
};
use sealbridge_programs::netting::Obligation;
use sealbridge_proto::{Suite, SuitePolicy, SuiteState};
use serde_json::json;

use crate::{
    Checks, Outcome, SandboxError, Scenario, World, WorldConfig,
    client::{Addressing, seal_obligation},
};

/// See the module documentation.
#[derive(Debug)]
pub struct SuiteSunset;

/// T is this long after deployment.
const SUNSET_AFTER: u64 = 1_800;
const DEPRECATED: Suite = Suite::X25519Sha256ChaCha20Poly1305;

fn sunset(p: EnclavePolicy, now: u64) -> EnclavePolicy {
    p.with_suites(
        SuitePolicy::default().with(DEPRECATED, SuiteState::DeprecatedAfter(now + SUNSET_AFTER)),
    )
}

impl Scenario for SuiteSunset {
    fn name(&self) -> &'static str {
        "suite-sunset"
    }

    fn threat(&self) -> &'static str {
        "A suite the policy deprecates after a date keeps being accepted after it (kept envelopes \
         sealed before the date, fresh ones, or a host that reports an earlier time), or its \
         refusal changes state, or the sunset also stops the suites still allowed (DESIGN §12 \
         invariants 2 and 5; issue 12 part 4)."
    }

    fn world(&self) -> WorldConfig {
        WorldConfig {
            policy_at: Some(sunset),
            ..WorldConfig::default()
        }
    }

    fn run(&self, w: &mut World<'_>) -> Result<Outcome, SandboxError> {
        let sunset_at = match w.policy.suites.state(DEPRECATED) {
            SuiteState::DeprecatedAfter(t) => t,
            other => return Err(SandboxError::Setup(format!("lifecycle: {other:?}"))),
        };
        let seal = |w: &mut World<'_>, suite: Suite, i: usize, j: usize, amount: u128| {
            let addressing = Addressing::from_description(&w.description)?.with_suite(suite);
            let now = w.now()?;
            let ob = Obligation {
                to: w.account(j),
                token: w.token,
                amount,
            };
            // Long enough to outlive T (within the policy's envelope lifetime).
            let header = addressing.header(&mut w.rng, now + 2 * SUNSET_AFTER + 600);
            let env = seal_obligation(
                &addressing,
                &header,
                &w.participants[i].key,
                &ob,
                &mut w.rng,
            )?;
            Ok::<_, SandboxError>((ob, env, addressing.suites))
        };
        let reason = |o: &sealbridge_enclave::boundary::SubmitOutcome| {
            o.rejected.map(|r| r.as_str()).unwrap_or("accepted")
        };

        w.step("before T: participant 0 seals with the deprecated suite; accepted and settled");
        let (ob, env, announced) = seal(w, DEPRECATED, 0, 1, 100)?;
        let now = w.now()?;
        let before_t = w.submit_obligation_at(0, &ob, env, now)?;
        let settled_before = w.cut_and_settle()?;
        let (kept_ob, kept, _) = seal(w, DEPRECATED, 2, 3, 70)?;

        w.step("enclave time passes T (the honest host walks the clock)");
        w.advance_time(SUNSET_AFTER + 600)?;
        let enclave_time = w.enclave.enclave_time();
        let state_before = (
            w.enclave.log_head(),
            w.enclave.growth_counters().replay_pairs,
            (0..4).map(|i| w.enclave_escrow(i)).collect::<Vec<_>>(),
        );
        w.step("after T: the kept envelope (sealed before T) and a fresh one of that suite");
        let now = w.now()?;
        let kept_after = w.submit_obligation_at(2, &kept_ob, kept.clone(), now)?;
        let (fresh_ob, fresh, _) = seal(w, DEPRECATED, 1, 0, 30)?;
        let fresh_after = w.submit_obligation_at(1, &fresh_ob, fresh, now)?;
        let state_after = (
            w.enclave.log_head(),
            w.enclave.growth_counters().replay_pairs,
            (0..4).map(|i| w.enclave_escrow(i)).collect::<Vec<_>>(),
        );

        w.step("the host reports a time before T and resubmits the kept envelope");
        let lie = sunset_at - 60;
        let ticked = w.enclave.handle(Request::Tick { now: lie });
        let lied = w.submit_obligation_at(2, &kept_ob, kept, lie)?;
        let time_after_lie = w.enclave.enclave_time();

        w.step("X-Wing and the preferred suite still work after T");
        let (x_ob, x_env, _) = seal(w, Suite::XWingAes256Gcm, 3, 2, 40)?;
        let now = w.now()?;
        let xwing = w.submit_obligation_at(3, &x_ob, x_env, now)?;
        let preferred = w.pay(0, 3, 10)?;
        let settled_after = w.cut_and_settle()?;
        let mismatches = w.escrow_mismatches()?;
        let receipts_verify = [&kept_after, &fresh_after, &lied].iter().all(|o| {
            sealbridge_seal::receipt::Receipt::verify(
                &o.receipt,
                &sealbridge_seal::keys::Ed25519PublicKey::from_bytes(
                    w.description.key_bundle.ed25519,
                ),
            )
            .is_ok_and(|r| {
                r.status
                    == sealbridge_seal::receipt::ReceiptStatus::Rejected(
                        sealbridge_proto::ReasonCode::SuiteDeprecated,
                    )
            })
        });

        let mut c = Checks::new();
        c.check(
            "the clients read the dated lifecycle from the enclave's signed announcement",
            announced.state(DEPRECATED) == SuiteState::DeprecatedAfter(sunset_at),
        )
        .check(
            "before T the deprecated suite was accepted and its statement settled",
            before_t.rejected.is_none()
                && settled_before.refused.is_none()
                && settled_before.settled.iter().map(|s| s.inputs).sum::<u32>() == 1,
        )
        .check("enclave time passed T", enclave_time >= sunset_at)
        .check(
            "after T the kept and the fresh envelope were refused suite-deprecated (signed receipts)",
            reason(&kept_after) == "suite-deprecated"
                && reason(&fresh_after) == "suite-deprecated"
                && receipts_verify,
        )
        .check(
            "the refusals changed nothing: log, replay set, escrow",
            state_before == state_after,
        )
        .check(
            "a host time before T did not move the enclave's clock back; still refused",
            matches!(ticked, Response::Ticked { .. })
                && time_after_lie >= sunset_at
                && reason(&lied) == "suite-deprecated",
        )
        .check(
            "X-Wing and the preferred suite were accepted after T and settled",
            xwing.rejected.is_none()
                && preferred.accepted
                && settled_after.refused.is_none()
                && settled_after.settled.iter().map(|s| s.inputs).sum::<u32>() == 2,
        )
        .check(
            "on-chain escrow is exactly what the clients' accepted obligations say",
            mismatches.is_empty(),
        );
        Ok(c.outcome(json!({
            "deprecated_suite": DEPRECATED.as_str(),
            "sunset_at": sunset_at,
            "lifecycle": w.policy.suites,
            "policy_hash": w.policy.hash().to_string(),
            "before_t": reason(&before_t),
            "enclave_time_after_advance": enclave_time,
            "kept_envelope_after_t": reason(&kept_after),
            "fresh_envelope_after_t": reason(&fresh_after),
            "log_size_before_after": [state_before.0.0, state_after.0.0],
            "replay_pairs_before_after": [state_before.1, state_after.1],
            "host_reported_time": lie,
            "enclave_time_after_lie": time_after_lie,
            "kept_envelope_at_lied_time": reason(&lied),
            "xwing_after_t": reason(&xwing),
            "preferred_after_t": preferred.reason.unwrap_or("accepted"),
            "settled_inputs": settled_before.settled.iter().chain(&settled_after.settled).map(|s| s.inputs).collect::<Vec<_>>(),
            "escrow_mismatches": mismatches,
        })))
    }
}

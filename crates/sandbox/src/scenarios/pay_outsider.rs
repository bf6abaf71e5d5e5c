//! `pay-outsider`: a registered enclave key signs statements that pay an address outside the
//! deployment, or move a token the deployment does not settle.
//!
//! Before issue 9 `settle` checked conservation and cover but not who was paid, so any key that
//! could sign a statement paid a non-participant, who then withdrew. The signer here is a rogue
//! key registered with the deployment's own measurement through two verifier signatures (a
//! broken TEE whose verifiers were fooled): every check before the effects passes, and the
//! contract still refuses each payment by name.

use alloy_primitives::{Address, I256, U256};
use sealbridge_chain::{Effect, Exit, embedded::dev_key, embedded::key_address};
use serde_json::json;

use super::{amount, revert};
use crate::{Checks, Outcome, SandboxError, Scenario, World, rogue, world::revert_of};

/// See the module documentation.
#[derive(Debug)]
pub struct PayOutsider;

const AMOUNT: u64 = 250_000;

impl Scenario for PayOutsider {
    fn name(&self) -> &'static str {
        "pay-outsider"
    }

    fn threat(&self) -> &'static str {
        "A registered enclave key signs a statement that pays an address outside the deployment \
         or moves a token the deployment does not settle, taking escrow out to someone who \
         never deposited (DESIGN §12 invariants 2 and 6)."
    }

    fn run(&self, w: &mut World<'_>) -> Result<Outcome, SandboxError> {
        let outsider = key_address(&dev_key("sandbox/outsider"));
        let rogue_key = dev_key("sandbox/rogue-enclave");
        let (victim, other) = (w.account(0), w.account(1));
        let token = w.token;
        let foreign = w.deploy_foreign_token()?;
        let victim_before = w.escrow(0)?;

        // The honest enclave refuses an obligation to an outsider or in a foreign token.
        let to_outsider = w.pay_to(0, outsider, token, 100)?;
        let in_foreign = w.pay_to(0, other, foreign, 100)?;

        w.step("a rogue key gets registered with the deployment's measurement (2 verifiers)");
        let (v0, v1) = (w.verifiers[0].clone(), w.verifiers[1].clone());
        let measurement = w.description.measurement;
        let relayer = w.relayer;
        let registered = rogue::register(w, relayer, &rogue_key, measurement, &[&v0, &v1])?;
        let signer_active = w.sb.is_active(key_address(&rogue_key))?;

        w.step("the rogue key signs statements paying the outsider and moving a foreign token");
        let debit = |account: Address, token: Address| Effect {
            account,
            token,
            delta: -I256::try_from(AMOUNT).unwrap_or_default(),
        };
        let credit = |account: Address, token: Address| Effect {
            account,
            token,
            delta: I256::try_from(AMOUNT).unwrap_or_default(),
        };
        let attempts = [
            (
                "effect crediting the outsider",
                vec![debit(victim, token), credit(outsider, token)],
                vec![],
            ),
            (
                "effects in a foreign token",
                vec![debit(victim, foreign), credit(other, foreign)],
                vec![],
            ),
            (
                "exit granted to the outsider",
                vec![],
                vec![Exit {
                    account: outsider,
                    token,
                    amount: U256::from(AMOUNT),
                }],
            ),
            (
                "exit in a foreign token",
                vec![],
                vec![Exit {
                    account: victim,
                    token: foreign,
                    amount: U256::from(AMOUNT),
                }],
            ),
        ];
        let mut reverts = serde_json::Map::new();
        let mut all_refused = true;
        for (what, effects, exits) in attempts {
            let f = rogue::forge(w, &rogue_key, effects, exits)?;
            let r = rogue::settle(w, relayer, &f)?;
            let want = if what.contains("foreign") {
                "TokenNotAllowed"
            } else {
                "NotAParticipant"
            };
            all_refused &= r.as_deref() == Some(want);
            reverts.insert(what.into(), revert(&r));
        }
        // And the outsider cannot ask for anything itself.
        w.unlock(outsider)?;
        let outsider_request =
            revert_of(w.sb.request_withdrawal(outsider, token, U256::from(AMOUNT)))?;

        let outsider_escrow = w.escrow_of(outsider)?;
        let outsider_claimable = w.sb.claimable(outsider, token)?;
        let outsider_wallet = w.wallet(outsider)?;
        let victim_after = w.escrow(0)?;
        let t = w.totals()?;

        let mut c = Checks::new();
        c.check(
            "the honest enclave refuses to pay an outsider or in a foreign token",
            !to_outsider.accepted && !in_foreign.accepted,
        )
        .check(
            "the rogue signer is registered and active (the attack is real)",
            registered.is_none() && signer_active,
        )
        .check(
            "every forged payment refused by name (NotAParticipant / TokenNotAllowed)",
            all_refused,
        )
        .check(
            "the outsider cannot request a withdrawal",
            outsider_request.as_deref() == Some("NotAParticipant"),
        )
        .check(
            "the outsider got nothing",
            outsider_escrow.is_zero() && outsider_claimable.is_zero() && outsider_wallet.is_zero(),
        )
        .check(
            "the victim's escrow is untouched",
            victim_after == victim_before,
        )
        .check("nothing settled", w.sb.last_sequence()? == 0)
        .check("totals conserved", t.conserved());
        Ok(c.outcome(json!({
            "outsider": outsider.to_string(),
            "foreign_token": foreign.to_string(),
            "honest_enclave": {
                "to_outsider": to_outsider.reason,
                "in_foreign_token": in_foreign.reason,
            },
            "rogue_signer": key_address(&rogue_key).to_string(),
            "rogue_registered": registered.is_none(),
            "rogue_active": signer_active,
            "amount_attempted": AMOUNT,
            "reverts": reverts,
            "outsider_request_withdrawal": revert(&outsider_request),
            "outsider_got": {
                "escrow": amount(outsider_escrow),
                "claimable": amount(outsider_claimable),
                "wallet": amount(outsider_wallet),
            },
            "victim_escrow": { "before": amount(victim_before), "after": amount(victim_after) },
        })))
    }
}

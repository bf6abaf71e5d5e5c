//! `foreign-token-deposit`: a participant deposits a token the deployment does not settle, and an
//! outsider deposits the deployment's token.
//!
//! Before issue 9 both deposits were credited: the host forwarded the events and the enclave
//! credited escrow in a token no statement may touch, or to an account that is no participant.
//! Now `deposit` refuses both by name and nothing reaches escrow or the enclave.

use alloy_primitives::U256;
use sealbridge_chain::{bindings::Settlement, embedded::dev_key, embedded::key_address};
use serde_json::json;

use super::{amount, revert};
use crate::{Checks, Outcome, SandboxError, Scenario, World, world::revert_of};

/// See the module documentation.
#[derive(Debug)]
pub struct ForeignTokenDeposit;

const AMOUNT: u128 = 50_000;

impl Scenario for ForeignTokenDeposit {
    fn name(&self) -> &'static str {
        "foreign-token-deposit"
    }

    fn threat(&self) -> &'static str {
        "A participant deposits a token the deployment does not settle and an outsider deposits \
         its token, so that escrow is credited outside the committed accounts and tokens \
         (DESIGN §12 invariants 5 and 6)."
    }

    fn run(&self, w: &mut World<'_>) -> Result<Outcome, SandboxError> {
        let participant = w.account(0);
        let outsider = key_address(&dev_key("sandbox/outsider"));
        let (token, settlement) = (w.token, w.sb.deployment.settlement);
        let foreign = w.deploy_foreign_token()?;
        let deposits_before = w.events::<Settlement::Deposited>()?.len();
        let enclave_before = w.enclave_escrow(0);
        let escrow_before = w.escrow(0)?;

        w.step("a participant deposits a foreign token; an outsider deposits the real one");
        w.mint(foreign, participant, AMOUNT)?;
        let foreign_deposit = revert_of(w.sb.deposit(participant, foreign, U256::from(AMOUNT)))?;
        w.unlock(outsider)?;
        w.mint(token, outsider, AMOUNT)?;
        let outsider_deposit = revert_of(w.sb.deposit(outsider, token, U256::from(AMOUNT)))?;
        // The host forwards whatever the chain shows; there must be nothing.
        w.sync()?;

        let deposits_after = w.events::<Settlement::Deposited>()?.len();
        let foreign_escrow = w.sb.escrow_balance(participant, foreign)?;
        let outsider_escrow = w.escrow_of(outsider)?;
        let foreign_held = w.sb.token_balance(foreign, settlement)?;
        let participant_wallet = w.sb.token_balance(foreign, participant)?;
        let outsider_wallet = w.wallet(outsider)?;
        let enclave_after = w.enclave_escrow(0);
        let enclave_outsider = w.enclave.program().escrow_of(outsider, token);
        let t = w.totals()?;

        let mut c = Checks::new();
        c.check(
            "foreign-token deposit refused: TokenNotAllowed",
            foreign_deposit.as_deref() == Some("TokenNotAllowed"),
        )
        .check(
            "outsider's deposit refused: NotAParticipant",
            outsider_deposit.as_deref() == Some("NotAParticipant"),
        )
        .check("no Deposited event", deposits_after == deposits_before)
        .check(
            "nothing credited on chain",
            foreign_escrow.is_zero() && outsider_escrow.is_zero() && foreign_held.is_zero(),
        )
        .check(
            "nothing credited in the enclave",
            enclave_after == enclave_before && enclave_outsider == 0,
        )
        .check(
            "the tokens stayed in their owners' wallets",
            participant_wallet == U256::from(AMOUNT) && outsider_wallet == U256::from(AMOUNT),
        )
        .check(
            "the participant's escrow is unchanged",
            w.escrow(0)? == escrow_before,
        )
        .check("totals conserved", t.conserved());
        Ok(c.outcome(json!({
            "foreign_token": foreign.to_string(),
            "outsider": outsider.to_string(),
            "amount": AMOUNT,
            "foreign_token_deposit": revert(&foreign_deposit),
            "outsider_deposit": revert(&outsider_deposit),
            "deposited_events": { "before": deposits_before, "after": deposits_after },
            "credited": {
                "participant_foreign_escrow": amount(foreign_escrow),
                "outsider_escrow": amount(outsider_escrow),
                "contract_foreign_balance": amount(foreign_held),
                "enclave_outsider": super::amount128(enclave_outsider),
            },
            "wallets_after": {
                "participant_foreign": amount(participant_wallet),
                "outsider": amount(outsider_wallet),
            },
        })))
    }
}

//! `fee-on-transfer-deposit`: the deployment's token burns 1% of every transfer, so a deposit of
//! `amount` delivers less.
//!
//! Before issue 9 the contract credited `amount` and the enclave, told the same, accepted
//! payments against escrow the contract never received: the last withdrawals or statements
//! failed for lack of tokens. Now both credit what arrived, a payment above it is refused, and
//! the statements settle.

use alloy_primitives::U256;
use sealbridge_chain::bindings::Settlement;
use serde_json::json;

use super::{amount, amount128, totals};
use crate::{Checks, Outcome, SandboxError, Scenario, TokenKind, World, WorldConfig};

/// See the module documentation.
#[derive(Debug)]
pub struct FeeOnTransferDeposit;

const DEPOSIT: u128 = 1_000_000;
const PAYMENT: u128 = 500_000;

impl Scenario for FeeOnTransferDeposit {
    fn name(&self) -> &'static str {
        "fee-on-transfer-deposit"
    }

    fn threat(&self) -> &'static str {
        "A deposit in a fee-on-transfer token delivers less than the amount asked, so that \
         escrow and the enclave would credit tokens the contract never received and a payment or \
         an exit would be backed by nothing (DESIGN §12 invariants 1 and 6)."
    }

    fn world(&self) -> WorldConfig {
        WorldConfig {
            participants: 3,
            deposit: 0,
            token: TokenKind::FeeOnTransfer,
            ..WorldConfig::default()
        }
    }

    fn run(&self, w: &mut World<'_>) -> Result<Outcome, SandboxError> {
        let settlement = w.sb.deployment.settlement;
        w.step("every participant deposits 1,000,000 of a token that burns 1% in transit");
        let mut credited = Vec::new();
        for i in 0..w.participants.len() {
            let before = w.wallet(settlement)?;
            let c = w.fund(i, DEPOSIT)?;
            let arrived = w.wallet(settlement)? - before;
            credited.push((c, arrived));
        }
        w.sync()?;
        let received = credited[0].0;
        let enclave_credit: Vec<u128> = (0..w.participants.len())
            .map(|i| w.enclave_escrow(i))
            .collect();
        let chain_escrow: Vec<U256> = (0..w.participants.len())
            .map(|i| w.escrow(i))
            .collect::<Result<_, _>>()?;
        let event_amounts: Vec<U256> = w
            .events::<Settlement::Deposited>()?
            .into_iter()
            .map(|e| e.amount)
            .collect();

        w.step("a payment above what arrived, then one within it, then an exit of the rest");
        let over = w.pay(0, 1, received + 1)?;
        let within = w.pay(0, 1, PAYMENT)?;
        let first = w.cut_and_settle()?;
        let payee_escrow = w.enclave_escrow(1);
        let wallet_before = w.wallet(w.account(1))?;
        let decision = w.withdraw(1, payee_escrow)?;
        let second = w.cut_and_settle()?;
        let claimed = w.claim(1)?;
        let wallet_gain = w.wallet(w.account(1))? - wallet_before;
        let mismatches = w.escrow_mismatches()?;
        let enclave_matches_chain = (0..w.participants.len())
            .map(|i| Ok(U256::from(w.enclave_escrow(i)) == w.escrow(i)?))
            .collect::<Result<Vec<bool>, SandboxError>>()?
            .into_iter()
            .all(|b| b);
        let t = w.totals()?;

        let mut c = Checks::new();
        c.check(
            "escrow credits what arrived, less than asked",
            credited
                .iter()
                .all(|&(c, arrived)| U256::from(c) == arrived && c < DEPOSIT)
                && chain_escrow.iter().all(|&e| e == U256::from(received))
                && event_amounts.iter().all(|&e| e == U256::from(received)),
        )
        .check(
            "the enclave credits what arrived",
            enclave_credit.iter().all(|&e| e == received),
        )
        .check(
            "a payment above what arrived is refused",
            !over.accepted && over.reason == Some("program-rejected"),
        )
        .check("a payment within it is accepted", within.accepted)
        .check(
            "statements settle",
            first.refused.is_none()
                && second.refused.is_none()
                && w.sb.last_sequence()? == w.enclave.last_sequence()
                && w.sb.last_sequence()? == 2,
        )
        .check(
            "the payee's whole escrow exits",
            decision.granted == payee_escrow && claimed == U256::from(payee_escrow),
        )
        .check(
            "escrow equals the clients' expectations",
            mismatches.is_empty(),
        )
        .check("enclave escrow equals chain escrow", enclave_matches_chain)
        .check("totals conserved", t.conserved());
        Ok(c.outcome(json!({
            "deposit_requested": amount128(DEPOSIT),
            "received": amount128(received),
            "fee": amount128(DEPOSIT - received),
            "deposited_events": event_amounts.iter().map(|&a| amount(a)).collect::<Vec<_>>(),
            "enclave_credit": enclave_credit.iter().map(|&a| amount128(a)).collect::<Vec<_>>(),
            "payment_above_received": {
                "amount": amount128(received + 1),
                "accepted": over.accepted,
                "rejected_as": over.reason,
            },
            "payment_within": { "amount": amount128(PAYMENT), "accepted": within.accepted },
            "exit": {
                "requested": amount128(decision.requested),
                "granted": amount128(decision.granted),
                "claimed": amount(claimed),
                "wallet_gain": amount(wallet_gain),
            },
            "statements_settled": w.settled.iter().map(|s| s.sequence).collect::<Vec<_>>(),
            "settle_refused": first.refused.or(second.refused).map(|r| r.error),
            "mismatches": mismatches,
            "totals": totals(&t),
        })))
    }
}

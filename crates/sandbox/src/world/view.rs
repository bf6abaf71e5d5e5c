//! What a scenario reads to judge the outcome: escrow, wallets, events, where every token is.

use alloy_primitives::{Address, I256, U256};
use alloy_sol_types::SolEvent;
use sealbridge_chain::{Chain, bindings::Settlement};

use super::World;
use crate::SandboxError;

/// Where the deployment's tokens are (see [`World::totals`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    /// Sum of `Deposited` amounts (what arrived).
    pub deposited: U256,
    /// Sum of the participants' escrow now.
    pub escrow: U256,
    /// Sum of granted exits not yet claimed.
    pub claimable: U256,
    /// Sum of `Claimed` amounts.
    pub claimed: U256,
    /// Sum of `EscapeWithdrawn` amounts.
    pub escaped: U256,
    /// The settlement contract's token balance.
    pub contract_balance: U256,
}

impl Totals {
    /// Nothing created or lost: the contract holds exactly escrow plus claimable, and that plus
    /// what left (claimed, escaped) is what was deposited.
    pub fn conserved(&self) -> bool {
        self.contract_balance == self.escrow + self.claimable
            && self.deposited == self.escrow + self.claimable + self.claimed + self.escaped
    }
}

impl World<'_> {
    /// Per participant whose on-chain escrow differs from what the clients expect (deposits
    /// credited plus accepted obligations minus granted exits): `account: chain X, expected Y`.
    pub fn escrow_mismatches(&self) -> Result<Vec<String>, SandboxError> {
        let deposits = self.events::<Settlement::Deposited>()?;
        let mut out = Vec::new();
        // Every token the deployment settles (a policy change may have added some).
        for token in self.sb.tokens()? {
            for p in &self.participants {
                let deposited = deposits
                    .iter()
                    .filter(|e| e.account == p.account && e.token == token)
                    .fold(U256::ZERO, |a, e| a + e.amount);
                let want = I256::try_from(deposited)
                    .ok()
                    .and_then(|d| d.checked_add(self.expected.net(p.account, token)));
                let got = self.sb.escrow_balance(p.account, token)?;
                if want.map(|w| w.into_raw()) != Some(got) {
                    out.push(format!(
                        "{} in {token}: chain {got}, expected {}",
                        p.account,
                        want.map(|w| w.to_string()).unwrap_or_else(|| "?".into())
                    ));
                }
            }
        }
        Ok(out)
    }

    /// Escrow of `account` on chain.
    pub fn escrow_of(&self, account: Address) -> Result<U256, SandboxError> {
        Ok(self.sb.escrow_balance(account, self.token)?)
    }

    /// Escrow of participant `i` on chain.
    pub fn escrow(&self, i: usize) -> Result<U256, SandboxError> {
        self.escrow_of(self.account(i))
    }

    /// Token balance of `account`'s wallet.
    pub fn wallet(&self, account: Address) -> Result<U256, SandboxError> {
        Ok(self.sb.token_balance(self.token, account)?)
    }

    /// The enclave's view of participant `i`'s escrow (settled batches and forwarded deposits).
    pub fn enclave_escrow(&self, i: usize) -> u128 {
        self.enclave
            .program()
            .escrow_of(self.account(i), self.token)
    }

    /// Settlement events of type `E` of this deployment so far, in chain order.
    pub fn events<E: SolEvent>(&self) -> Result<Vec<E>, SandboxError> {
        let head = self.sb.chain().block_number()?;
        Ok(self
            .sb
            .chain()
            .logs(self.sb.deployment.settlement, self.deploy_block, head)?
            .iter()
            .filter_map(|l| E::decode_log(&l.inner).ok())
            .map(|l| l.data)
            .collect())
    }

    /// Where the deployment's tokens are now.
    pub fn totals(&self) -> Result<Totals, SandboxError> {
        let sum = |v: Vec<U256>| v.into_iter().fold(U256::ZERO, |a, b| a + b);
        let mut escrow = U256::ZERO;
        let mut claimable = U256::ZERO;
        for p in &self.participants {
            escrow += self.escrow_of(p.account)?;
            claimable += self.sb.claimable(p.account, self.token)?;
        }
        Ok(Totals {
            deposited: sum(self
                .events::<Settlement::Deposited>()?
                .into_iter()
                .filter(|e| e.token == self.token)
                .map(|e| e.amount)
                .collect()),
            escrow,
            claimable,
            claimed: sum(self
                .events::<Settlement::Claimed>()?
                .into_iter()
                .filter(|e| e.token == self.token)
                .map(|e| e.amount)
                .collect()),
            escaped: sum(self
                .events::<Settlement::EscapeWithdrawn>()?
                .into_iter()
                .filter(|e| e.token == self.token)
                .map(|e| e.amount)
                .collect()),
            contract_balance: self.wallet(self.sb.deployment.settlement)?,
        })
    }
}

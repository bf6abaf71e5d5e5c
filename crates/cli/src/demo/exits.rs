//! Exits in the demo: participants request withdrawals during the run, the host forwards each
//! request to the enclave like a deposit, the granted amounts settle with the next statement,
//! and the participants claim them into their wallets. The escape hatch is read at the end: it
//! opens `exitDelay` after the last settlement and was never needed.

use std::collections::BTreeMap;

use alloy_primitives::{Address, U256};
use anyhow::Context;
use sealbridge_chain::{Chain, Sealbridge, bindings::Settlement};
use sealbridge_sandbox::host::ExitDecision;
use serde::Serialize;

/// What happened to the withdrawal requests of the run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ExitsReport {
    /// Withdrawal requests made on chain.
    pub requested: u64,
    /// Decisions by reason code (`full`, `partial`, `refused-…`).
    pub reasons: BTreeMap<String, u64>,
    /// Sum requested.
    pub amount_requested: u128,
    /// Sum the enclave granted.
    pub amount_granted: u128,
    /// Sum the participants claimed (`Claimed` events).
    pub amount_claimed: u128,
    /// Participants who claimed.
    pub claimants: u64,
    /// Every claimant's wallet grew by exactly what it was granted.
    pub wallets_match: bool,
    /// What differs, if anything.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub wallet_mismatches: Vec<String>,
}

impl ExitsReport {
    /// Record a decision.
    pub fn decided(&mut self, d: &ExitDecision) {
        self.requested += 1;
        self.amount_requested += d.requested;
        self.amount_granted += d.granted;
        *self
            .reasons
            .entry(d.reason.as_str().to_string())
            .or_default() += 1;
    }

    /// Every granted amount was claimed into the wallets.
    pub fn ok(&self) -> bool {
        self.wallets_match && self.amount_claimed == self.amount_granted
    }
}

/// The escape hatch at the end of the run.
#[derive(Debug, Clone, Serialize)]
pub struct HatchReport {
    /// `exitDelay` of the deployment.
    pub exit_delay: u64,
    /// When anyone may freeze if nothing settles before then (`hatchOpensAt`).
    pub opens_at: u64,
    /// Chain time at the end of the run.
    pub chain_time: u64,
    /// Whether the deployment was frozen.
    pub frozen: bool,
}

impl HatchReport {
    /// Read it from the chain.
    pub fn read<C: Chain>(sb: &Sealbridge<C>) -> anyhow::Result<Self> {
        let opens_at = sb.view(sb.deployment.settlement, &Settlement::hatchOpensAtCall {})?;
        Ok(Self {
            exit_delay: sb.exit_delay()?,
            opens_at: u64::try_from(opens_at).context("hatchOpensAt out of range")?,
            chain_time: sb.chain().block_timestamp()?,
            frozen: sb.frozen()?,
        })
    }

    /// Never needed: not frozen, and settlement kept it closed.
    pub fn never_needed(&self) -> bool {
        !self.frozen && self.chain_time < self.opens_at
    }
}

/// Every participant granted an exit claims it; check each wallet grew by what it was granted.
pub fn claim_all<C: Chain>(
    sb: &mut Sealbridge<C>,
    token: Address,
    decisions: &[ExitDecision],
    report: &mut ExitsReport,
) -> anyhow::Result<()> {
    let mut granted: BTreeMap<Address, u128> = BTreeMap::new();
    for d in decisions.iter().filter(|d| d.granted > 0) {
        *granted.entry(d.account).or_default() += d.granted;
    }
    let mut mismatches = Vec::new();
    for (&account, &amount) in &granted {
        let before = sb.token_balance(token, account)?;
        let r = sb
            .claim(account, token)
            .with_context(|| format!("{account} claiming its exit"))?;
        let claimed: U256 = r
            .logs
            .iter()
            .filter_map(|l| {
                alloy_sol_types::SolEvent::decode_log(&l.inner)
                    .ok()
                    .map(|e: alloy_primitives::Log<Settlement::Claimed>| e.data.amount)
            })
            .sum();
        let gained = sb.token_balance(token, account)? - before;
        report.amount_claimed += u128::try_from(claimed).context("claimed amount")?;
        if gained != U256::from(amount) || claimed != U256::from(amount) {
            mismatches.push(format!(
                "{account}: granted {amount}, claimed {claimed}, wallet +{gained}"
            ));
        }
    }
    report.claimants = granted.len() as u64;
    report.wallets_match = mismatches.is_empty();
    report.wallet_mismatches = mismatches;
    Ok(())
}

//! `deposits` and `effects` (issue 13: every interaction logged, so the auditor recomputes the
//! enclave's public view).
//!
//! - `deposits`: the deposits the host reported to the enclave (kind-14 entries, in log order)
//!   are the chain's `Deposited` events, in chain order, each at most once: a deposit credited
//!   that the chain does not have, or one credited twice, fails.
//! - `effects`: each settled statement's `settle` calldata (read from the transaction that
//!   emitted its `StatementSettled`) carries the statement of that sequence, effects and exits
//!   that hash to its `effectsHash`, sorted, non-zero, naming only the deployment's participants
//!   and tokens, conserving value per token; and the escrow recomputed from public data — the
//!   credited deposits logged before the statement's entry, then each statement's effects and
//!   exits in order, no balance below zero — has the statement's `newStateRoot` (the netting
//!   program's escrow root). So an enclave (or a key) that signs a root its effects do not give,
//!   or credits a deposit nobody made, is caught from public data.

use std::collections::BTreeMap;

use alloy_primitives::{Address, B256, I256, U256};
use alloy_sol_types::SolCall;
use sealbridge_chain::bindings::Settlement::{Deposited, StatementSettled, settleCall};
use sealbridge_proto::eip712::effects_hash;

use super::{LogView, Tally};
use crate::chain::Calldata;
use crate::{Error, Summary};

/// `deposits`: the logged deposits are a subsequence of the chain's, in order.
pub(super) fn check_deposits(
    view: &LogView,
    chain: &[Deposited],
    summary: &mut Summary,
    t: &mut Tally,
) {
    summary.deposits_logged = view.deposits.len() as u64;
    summary.deposits_on_chain = chain.len() as u64;
    let mut next = 0usize;
    for (index, d) in &view.deposits {
        let found = chain
            .iter()
            .enumerate()
            .skip(next)
            .find(|(_, c)| {
                c.account == d.account && c.token == d.token && c.amount == U256::from(d.amount)
            })
            .map(|(i, _)| i);
        match found {
            Some(i) => {
                next = i + 1;
                t.ok();
            }
            None => t.fail(format!(
                "entry {index}: a deposit of {} of token {} by {} was reported to the enclave{} \
                 but the chain has no such Deposited event after the ones matched before it (a \
                 deposit the chain does not have, or one reported twice)",
                d.amount,
                d.token,
                d.account,
                if d.credited { " and credited" } else { "" }
            )),
        }
    }
}

/// `effects`, for the settlements `settled` (in order) with the transactions that emitted them.
pub(super) fn check_effects<C: Calldata + ?Sized>(
    chain: &C,
    view: &LogView,
    settled: &[(StatementSettled, B256)],
    chain_deposits_empty: bool,
    members: Option<(&[Address], &[Address])>,
    t: &mut Tally,
) -> Result<Option<String>, Error> {
    let mut escrow: BTreeMap<(Address, Address), u128> = BTreeMap::new();
    let mut credited = 0usize;
    // Recomputation starts from zero and follows the log. It stops (the statements are still
    // checked one by one) at a `Resumed` entry (issue 12: the successor's escrow comes from the
    // chain's balances, which this check does not read), and after a statement whose effects
    // could not be read (every later root would differ).
    let resumed_at = view.resumed.first().map(|r| r.index);
    let mut roots = true;
    // A log that records no deposit although the chain has some was written by an enclave
    // before issue 13 (deposit entries, kind 14): its escrow cannot be recomputed.
    let mut warning = None;
    if view.deposits.is_empty() && !chain_deposits_empty && !settled.is_empty() {
        roots = false;
        warning = Some(
            "the log records no deposit although the chain has some: it was written by an \
             enclave before deposit entries (issue 13), or deposits were withheld from it; \
             statement roots were not recomputed"
                .to_string(),
        );
    }
    for (e, tx) in settled {
        let seq = e.sequence;
        let Some(input) = chain.transaction_input(*tx)? else {
            t.fail(format!(
                "statement {seq}: the input of its transaction {tx} is not available (the \
                 endpoint does not serve it), so its effects cannot be checked"
            ));
            roots = false;
            continue;
        };
        let Ok(call) = settleCall::abi_decode(&input) else {
            t.fail(format!(
                "statement {seq}: transaction {tx} is not a direct settle call (a contract or \
                 wallet settled it), so its effects cannot be read from its calldata"
            ));
            roots = false;
            continue;
        };
        let s = &call.s;
        if !t.expect(s.sequence == seq && s.newStateRoot == e.newStateRoot, || {
            format!(
                "statement {seq}: the settle calldata of {tx} carries statement {} with root {}",
                s.sequence, s.newStateRoot
            )
        }) {
            continue;
        }
        let effects: Vec<sealbridge_proto::eip712::Effect> =
            call.effects.iter().map(Into::into).collect();
        let all_exits: Vec<sealbridge_proto::eip712::Exit> =
            call.exits.iter().map(Into::into).collect();
        t.expect(effects_hash(&effects, &all_exits) == s.effectsHash, || {
            format!("statement {seq}: its effects and exits do not hash to its effectsHash")
        });
        // The request marker (PROTOCOL §8b: a first entry with zero token and account, the
        // number of requests decided) is no exit.
        let exits = match all_exits.split_first() {
            Some((m, rest)) if m.token.is_zero() && m.account.is_zero() => rest,
            _ => all_exits.as_slice(),
        };
        let sorted = effects
            .windows(2)
            .all(|w| matches!(w, [a, b] if (a.token, a.account) < (b.token, b.account)))
            && exits
                .windows(2)
                .all(|w| matches!(w, [a, b] if (a.token, a.account) < (b.token, b.account)));
        t.expect(sorted, || {
            format!(
                "statement {seq}: effects or exits are not strictly ascending by (token, account)"
            )
        });
        t.expect(
            effects.iter().all(|x| !x.delta.is_zero()) && exits.iter().all(|x| !x.amount.is_zero()),
            || format!("statement {seq}: a zero effect or exit"),
        );
        if let Some((accounts, tokens)) = members {
            let outsider = effects
                .iter()
                .map(|x| (x.account, x.token))
                .chain(exits.iter().map(|x| (x.account, x.token)))
                .find(|(a, tk)| !accounts.contains(a) || !tokens.contains(tk));
            t.expect(outsider.is_none(), || {
                let (a, tk) = outsider.unwrap_or_default();
                format!(
                    "statement {seq}: an effect or exit of {a} in token {tk}, which are not the \
                     deployment's committed participant and token"
                )
            });
        }
        let mut net: BTreeMap<Address, I256> = BTreeMap::new();
        for x in &effects {
            let sum = net.entry(x.token).or_insert(I256::ZERO);
            *sum = sum.saturating_add(x.delta);
        }
        t.expect(net.values().all(|v| v.is_zero()), || {
            format!("statement {seq}: its effects do not conserve value per token")
        });

        // The escrow the statement's root commits to.
        let Some(logged) = view.statements.get(&seq) else {
            // `statements` reports a settled statement the log lacks.
            roots = false;
            continue;
        };
        if !roots || resumed_at.is_some_and(|r| logged.index > r) {
            continue;
        }
        for (_, d) in view
            .deposits
            .get(credited..logged.deposits_before)
            .unwrap_or_default()
        {
            if d.credited {
                let b = escrow.entry((d.token, d.account)).or_insert(0);
                *b = b.saturating_add(d.amount);
            }
        }
        credited = credited.max(logged.deposits_before);
        let mut negative = None;
        for x in &effects {
            let b = escrow.entry((x.token, x.account)).or_insert(0);
            let after = i128::try_from(x.delta)
                .ok()
                .and_then(|d| i128::try_from(*b).ok()?.checked_add(d))
                .and_then(|v| u128::try_from(v).ok());
            match after {
                Some(v) => *b = v,
                None => negative = negative.or(Some((x.account, x.token))),
            }
        }
        for x in exits {
            let b = escrow.entry((x.token, x.account)).or_insert(0);
            match u128::try_from(x.amount).ok().and_then(|a| b.checked_sub(a)) {
                Some(v) => *b = v,
                None => negative = negative.or(Some((x.account, x.token))),
            }
        }
        t.expect(negative.is_none(), || {
            let (a, tk) = negative.unwrap_or_default();
            format!(
                "statement {seq}: it takes {a}'s escrow of {tk} below zero by the deposits logged \
                 and the statements before it"
            )
        });
        escrow.retain(|_, b| *b != 0);
        let root = sealbridge_programs::netting::escrow_root(
            escrow.iter().map(|(&(tk, a), &b)| (tk, a, b)),
        );
        t.expect(root == e.newStateRoot, || {
            format!(
                "statement {seq}: the escrow recomputed from the logged deposits and the settled \
                 effects and exits has root {root}, the statement says {}: its effects do not \
                 match the log",
                e.newStateRoot
            )
        });
    }
    Ok(warning)
}

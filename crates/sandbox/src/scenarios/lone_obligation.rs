//! `lone-obligation`: at low traffic one participant pays another, and the host cuts the batch
//! at once, as its timer would.
//!
//! Before issue 11 the enclave signed a batch of one: the statement's effects `{A: −x, B: +x}`
//! published payer, payee, token and amount on chain — by default, whenever traffic was low.
//! Now the policy's anonymity set (here the production one: 8 inputs from 3 senders) holds the
//! input back: every cut is answered "nothing", the enclave's status says why, heartbeats sign
//! empty statements that leave the batch open (so settlement, and the chain's escape hatch, never
//! wait for the set), and the input settles only inside a statement whose effects are the net of
//! at least 8 inputs.

use std::collections::BTreeSet;

use alloy_primitives::{Address, I256};
use sealbridge_enclave::{
    EnclavePolicy,
    boundary::{Request, Response},
    policy::{PRODUCTION_MIN_BATCH_INPUTS, PRODUCTION_MIN_BATCH_SENDERS},
};
use serde_json::json;

use crate::{Checks, Outcome, SandboxError, Scenario, World, WorldConfig};

/// See the module documentation.
#[derive(Debug)]
pub struct LoneObligation;

fn production_set(p: EnclavePolicy) -> EnclavePolicy {
    p.with_anonymity_set(PRODUCTION_MIN_BATCH_INPUTS, PRODUCTION_MIN_BATCH_SENDERS, 0)
}

impl Scenario for LoneObligation {
    fn name(&self) -> &'static str {
        "lone-obligation"
    }

    fn threat(&self) -> &'static str {
        "At low traffic the host cuts a batch holding one obligation, so that the statement's \
         effects publish who paid whom how much (DESIGN §12 invariant 7; issue 11 part 1)."
    }

    fn world(&self) -> WorldConfig {
        WorldConfig {
            participants: 5,
            policy: Some(production_set),
            ..WorldConfig::default()
        }
    }

    fn run(&self, w: &mut World<'_>) -> Result<Outcome, SandboxError> {
        let (payer, payee, amount) = (0, 1, 4_321u128);
        w.step("one participant pays another; the host cuts at once, and again later");
        let lone = w.pay(payer, payee, amount)?;
        let mut cuts = 0;
        let mut statements = 0;
        // Heartbeats below the set sign empty statements that leave the batch open, so
        // settlement (and the chain's escape hatch) never waits for the set.
        let mut beats = 0u64;
        let mut carried_while_alone = 0usize;
        for _ in 0..5 {
            cuts += 1;
            if w.cut()? {
                statements += 1;
            }
            let now = w.now()?;
            cuts += 1;
            match w.enclave.handle(Request::Heartbeat { now }) {
                Response::Batch(Some(s)) => {
                    beats += 1;
                    carried_while_alone +=
                        s.statement.inputCount as usize + s.effects.len() + s.exits.len();
                    w.pending.push_back(*s);
                }
                Response::Batch(None) => {}
                other => return Err(SandboxError::Enclave(format!("Heartbeat: {other:?}"))),
            }
            w.advance_time(600)?;
        }
        let waiting = match w.enclave.handle(Request::Status) {
            Response::Status(s) => s.waiting,
            other => return Err(SandboxError::Enclave(format!("Status: {other:?}"))),
        };
        let relayed_alone = w.settle_pending()?;
        let settled_while_alone = w.sb.last_sequence()?;

        w.step("traffic picks up: seven more payments from other participants");
        let mut senders = BTreeSet::from([payer]);
        for (i, (from, to)) in [(2, 3), (3, 4), (4, 2), (2, 0), (3, 1), (4, 0), (1, 2)]
            .into_iter()
            .enumerate()
        {
            let p = w.pay(from, to, 100 + i as u128)?;
            if !p.accepted {
                return Err(SandboxError::Enclave(format!("payment {i} refused")));
            }
            senders.insert(from);
        }
        let cut = w.cut()?;
        // What the chain will publish: the statement's effects.
        let mut published: Vec<Vec<(Address, I256)>> = Vec::new();
        for st in w.pending() {
            let mut e: Vec<(Address, I256)> =
                st.effects.iter().map(|e| (e.account, e.delta)).collect();
            e.sort();
            published.push(e);
        }
        let relayed = w.settle_pending()?;
        let settled = relayed.settled.last().copied();
        let mut single: Vec<(Address, I256)> = vec![
            (
                w.account(payer),
                -I256::try_from(amount).unwrap_or_default(),
            ),
            (w.account(payee), I256::try_from(amount).unwrap_or_default()),
        ];
        single.sort();
        let chain_sequence = w.sb.last_sequence()?;

        let mut c = Checks::new();
        c.check("the lone obligation was accepted", lone.accepted)
            .check(
                "no cut signed a statement while it was alone",
                statements == 0,
            )
            .check(
                "heartbeats settled while it waited, each empty: no input, effect or exit",
                beats == 5
                    && carried_while_alone == 0
                    && relayed_alone.refused.is_none()
                    && settled_while_alone == beats,
            )
            .check(
                "the enclave's status said the batch waits for the anonymity set",
                waiting.as_ref().is_some_and(|w| {
                    w.inputs == 1
                        && w.min_inputs == u64::from(PRODUCTION_MIN_BATCH_INPUTS)
                        && w.flush_at.is_none()
                }),
            )
            .check(
                "it settled on chain inside one statement of at least 8 inputs",
                cut && relayed.refused.is_none()
                    && chain_sequence == beats + 1
                    && settled.is_some_and(|s| s.inputs >= PRODUCTION_MIN_BATCH_INPUTS),
            )
            .check(
                "no published effects are the single obligation {payer: −x, payee: +x}",
                !published.is_empty() && published.iter().all(|e| *e != single),
            );
        Ok(c.outcome(json!({
            "lone_amount": amount,
            "host_cut_requests": cuts,
            "statements_cut_while_alone": statements,
            "empty_heartbeats_settled_while_alone": settled_while_alone,
            "waiting": waiting.map(|w| json!({
                "inputs": w.inputs, "senders": w.senders,
                "min_inputs": w.min_inputs, "min_senders": w.min_senders,
                "since": w.since, "flush_at": w.flush_at,
            })),
            "later_senders": senders.len(),
            "published_effects": published.iter().map(|e| e.len()).collect::<Vec<_>>(),
            "settled_statement": settled.map(|s| json!({
                "sequence": s.sequence, "inputs": s.inputs, "effects": s.effects,
            })),
            "chain_sequence": chain_sequence,
        })))
    }
}

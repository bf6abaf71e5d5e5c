//! `log-spam`: anyone sends 100,000 junk envelopes — garbage, replays of accepted envelopes,
//! envelopes signed by strangers, tampered ciphertexts — to a durable enclave.
//!
//! Before issue 11 every one of them became a signed rejected receipt appended to the
//! append-only log, one sealed journal record and (at the node) one database row: 100,000 log
//! entries and 100,000 journal records, for nothing any participant signed. Now such
//! rejections are not logged one by one: the sender gets a signed receipt with sequence
//! `UNLOGGED_SEQUENCE`, the enclave counts it per reason and chains its envelope id into a
//! digest, and one `RejectionSummary` entry per minute (and before each statement) records the
//! window. Junk leaves no journal record of its own; only the summaries are journaled.

use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use sealbridge_enclave::{
    Enclave, SettlementTarget,
    boundary::{ChainEvent, Request, Response},
    log_entry::{self, EntryKind, RejectionSummaryEntry},
};
use sealbridge_programs::netting::{Netting, Obligation};
use sealbridge_seal::{
    at_rest::RootSecret,
    keys::{Ed25519PublicKey, Ed25519SigningKey},
    receipt::{Receipt, UNLOGGED_SEQUENCE},
};
use serde_json::json;

use crate::{
    Checks, Outcome, SandboxError, Scenario, World,
    client::{Addressing, seal_obligation},
};

/// See the module documentation.
#[derive(Debug)]
pub struct LogSpam;

const JUNK: usize = 100_000;
const ACCEPTED: usize = 20;

/// What one journaled request produced at the host.
#[derive(Default)]
struct Growth {
    records: u64,
    record_bytes: u64,
    entries: Vec<Vec<u8>>,
}

fn journaled(
    e: &mut Enclave<Netting>,
    r: Request,
    g: &mut Growth,
) -> Result<Response, SandboxError> {
    match e.handle(Request::Journaled(Box::new(r))) {
        Response::Journaled {
            response,
            record,
            log_entries,
            ..
        } => {
            if let Some(rec) = record {
                g.records += 1;
                g.record_bytes += rec.blob.len() as u64;
            }
            g.entries.extend(log_entries);
            Ok(*response)
        }
        other => Err(SandboxError::Enclave(format!("Journaled: {other:?}"))),
    }
}

impl Scenario for LogSpam {
    fn name(&self) -> &'static str {
        "log-spam"
    }

    fn threat(&self) -> &'static str {
        "Anyone, without a participant key, grows the permanent log, the journal and the \
         database by one signed entry per junk envelope (DESIGN §12 invariants 4 and 5; issue 11 part 6)."
    }

    fn run(&self, w: &mut World<'_>) -> Result<Outcome, SandboxError> {
        w.step("booting a durable enclave under the deployment's policy");
        let policy = w.policy.clone();
        let target = SettlementTarget {
            chain_id: w.sb.deployment.chain_id,
            settlement: w.sb.deployment.settlement,
        };
        let t0 = w.now()?;
        let mut e = Enclave::boot_durable(
            policy.clone(),
            Netting::new(&policy.netting),
            target,
            Box::new(ChaCha20Rng::seed_from_u64(0x10b5)),
            t0,
            &RootSecret::from_bytes([0x5b; 32]),
        )
        .map_err(|err| SandboxError::Enclave(format!("boot: {err}")))?;
        let description = e.describe();
        let key = Ed25519PublicKey::from_bytes(description.key_bundle.ed25519);
        let addressing = Addressing::from_description(&description)?;
        let mut setup = Growth::default();
        journaled(&mut e, Request::LogEntries, &mut setup)?;
        for p in &w.participants {
            journaled(
                &mut e,
                Request::Chain(ChainEvent::Deposit {
                    account: p.account,
                    token: w.token,
                    amount: 1_000_000,
                }),
                &mut setup,
            )?;
        }
        let mut rng = ChaCha20Rng::seed_from_u64(0x5a11);
        let n = w.participants.len();
        let seal = |from: &Ed25519SigningKey, to: usize, rng: &mut ChaCha20Rng| {
            let header = addressing.header(rng, t0 + 600);
            let ob = Obligation {
                to: w.participants[to].account,
                token: w.token,
                amount: 1,
            };
            seal_obligation(&addressing, &header, from, &ob, rng)
        };
        let mut accepted = Vec::new();
        for i in 0..ACCEPTED {
            let env = seal(&w.participants[i % n].key, (i + 1) % n, &mut rng)?;
            let out = journaled(
                &mut e,
                Request::Submit {
                    envelope: env.clone(),
                    now: t0,
                },
                &mut setup,
            )?;
            if matches!(&out, Response::Submitted(o) if o.rejected.is_none()) {
                accepted.push(env);
            }
        }
        let strangers: Vec<Vec<u8>> = (0..100)
            .map(|i| seal(&Ed25519SigningKey::generate(&mut rng), i % n, &mut rng))
            .collect::<Result<_, _>>()?;
        let tampered: Vec<Vec<u8>> = accepted
            .iter()
            .map(|a| {
                let mut t = a.clone();
                if let Some(b) = t.last_mut() {
                    *b ^= 1;
                }
                t
            })
            .collect();
        let log_before = e.log_head().0;
        let counters_before = e.growth_counters();

        w.step(&format!(
            "{JUNK} junk envelopes over 100 s: garbage, replays, strangers, tampered"
        ));
        let started = Instant::now();
        let mut junk = Growth::default();
        let (mut unlogged, mut logged, mut receipts_checked) = (0usize, 0usize, 0usize);
        for i in 0..JUNK {
            let now = t0 + (i / 1_000) as u64;
            let envelope = match i % 10 {
                7 => accepted[i % accepted.len().max(1)].clone(),
                8 => strangers[i % strangers.len()].clone(),
                9 => tampered[i % tampered.len().max(1)].clone(),
                _ => {
                    let len = rng.gen_range(1..300);
                    (0..len).map(|_| rng.r#gen::<u8>()).collect()
                }
            };
            match journaled(&mut e, Request::Submit { envelope, now }, &mut junk)? {
                Response::Submitted(o) if !o.logged && o.sequence == UNLOGGED_SEQUENCE => {
                    unlogged += 1;
                    // Spot-check that the client still gets a receipt it can verify.
                    if i % 10_000 == 0
                        && Receipt::verify(&o.receipt, &key)
                            .is_ok_and(|r| r.sequence == UNLOGGED_SEQUENCE)
                    {
                        receipts_checked += 1;
                    }
                }
                Response::Submitted(_) => logged += 1,
                other => return Err(SandboxError::Enclave(format!("Submit: {other:?}"))),
            }
        }
        let elapsed_ms = started.elapsed().as_millis();
        let counters_after = e.growth_counters();
        let log_after_junk = e.log_head().0;

        w.step("the host cuts: a summary is logged before the statement");
        let mut cut = Growth::default();
        let statement = journaled(
            &mut e,
            Request::CutBatch {
                now: t0 + (JUNK / 1_000) as u64,
            },
            &mut cut,
        )?;
        let summaries: Vec<RejectionSummaryEntry> = junk
            .entries
            .iter()
            .chain(&cut.entries)
            .filter_map(|b| match log_entry::decode(b) {
                Some((EntryKind::RejectionSummary, body)) => RejectionSummaryEntry::decode(body),
                _ => None,
            })
            .collect();
        let summarised: u64 = summaries.iter().map(|s| s.total).sum();
        let junk_entries_not_summaries = junk.entries.len()
            - junk
                .entries
                .iter()
                .filter(|b| matches!(log_entry::decode(b), Some((EntryKind::RejectionSummary, _))))
                .count();
        let cut_kinds: Vec<&str> = cut
            .entries
            .iter()
            .filter_map(|b| log_entry::decode(b))
            .map(|(k, _)| match k {
                EntryKind::RejectionSummary => "rejection-summary",
                EntryKind::Statement => "statement",
                _ => "other",
            })
            .collect();

        let mut c = Checks::new();
        c.check(
            "every junk envelope got an unlogged, verifiable rejection",
            unlogged == JUNK && logged == 0 && receipts_checked == JUNK / 10_000,
        )
        .check(
            "the log grew only by summaries during the flood (≤ 2 for 100 s)",
            junk_entries_not_summaries == 0 && log_after_junk - log_before <= 2,
        )
        .check(
            "junk left no journal record but the summaries'",
            junk.records <= (log_after_junk - log_before),
        )
        .check(
            "the summaries count every junk envelope",
            summarised == JUNK as u64,
        )
        .check(
            "a summary precedes the statement",
            matches!(statement, Response::Batch(Some(_)))
                && cut_kinds == ["rejection-summary", "statement"],
        )
        .check(
            "enclave memory: the replay set holds the accepted inputs only",
            counters_after.replay_pairs == counters_before.replay_pairs
                && counters_before.replay_pairs == ACCEPTED as u64,
        );
        Ok(c.outcome(json!({
            "junk_sent": JUNK,
            "unlogged_rejections": unlogged,
            "log_entries_added": log_after_junk - log_before,
            "log_bytes_added": junk.entries.iter().map(|b| b.len()).sum::<usize>(),
            "journal_records_added": junk.records,
            "journal_bytes_added": junk.record_bytes,
            "summaries": summaries.iter().map(|s| json!({
                "window": [s.window_start, s.window_end],
                "total": s.total,
                "by_reason": s.counts.iter().map(|(r, n)| json!([r, n])).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "replay_set_pairs": counters_after.replay_pairs,
            "replay_set_senders": counters_after.replay_senders,
            "unlogged_in_window_after_cut": e.growth_counters().unlogged_in_window,
            "before_issue_11": {"log_entries": JUNK, "journal_records": JUNK},
            "elapsed_ms": elapsed_ms,
            "envelopes_per_s": (JUNK as u128 * 1000) / elapsed_ms.max(1),
        })))
    }
}

//! `sealbridge load`: a load generator. Seals obligations between the development participants
//! (after appraising the enclave), submits them at a target rate from several connections,
//! retries safely (a re-submission returns the original receipt), shows progress and prints a
//! receipt-latency histogram.
//!
//! Before submitting it funds the participants' escrow from the chain's prefunded accounts
//! (`--chain`, a development chain such as anvil, by default anvil's `http://127.0.0.1:8545`
//! if it answers; `--no-fund` skips it): it plans every
//! obligation first, so it knows what each participant will owe, reads the escrow the
//! settlement contract holds for it, and tops up only the shortfall (mint the test token from
//! the first `eth_accounts` account, deposit from the participant's account unlocked with
//! `anvil_impersonateAccount`). Then it waits until the node's relayer has credited the
//! deposits to the enclave (its deposit cursor passed the last deposit's block), mining empty
//! blocks if the node waits for more confirmations than the chain has produced, so the first
//! obligations are not refused for want of escrow.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alloy_primitives::Address;
use anyhow::{Context, bail};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use sealbridge_client::NodeClient;
use sealbridge_deploy::dev::participants;
use sealbridge_node::unix_now;
use sealbridge_programs::netting::Obligation;
use sealbridge_proto::ReasonCode;
use serde_json::json;

use crate::client_cmd::PolicyArgs;

mod fund;

/// Arguments of `sealbridge load`.
#[derive(Debug, Clone, clap::Args)]
pub struct LoadArgs {
    /// The node's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub node: String,
    /// Target envelopes per second (0: as fast as possible).
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Envelopes to submit.
    #[arg(long, default_value_t = 1000)]
    pub count: u64,
    /// Concurrent connections.
    #[arg(long, default_value_t = 16)]
    pub concurrency: u32,
    /// Retries per envelope on transport errors and 503.
    #[arg(long, default_value_t = 50)]
    pub retries: u32,
    /// Write each accepted envelope id to this file (one hex id per line).
    #[arg(long)]
    pub ids_out: Option<std::path::PathBuf>,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
    /// The node's chain (a development JSON-RPC endpoint such as anvil), to fund the
    /// participants' escrow from its prefunded accounts [default: http://127.0.0.1:8545, and
    /// if nothing answers there, no funding: a node on its embedded chain funds at setup].
    #[arg(long)]
    pub chain: Option<String>,
    /// Do not fund: submit against the escrow the participants already have.
    #[arg(long)]
    pub no_fund: bool,
    /// Longest wait, in seconds, for an earlier run's inputs to settle, and then for the node to
    /// credit the deposits.
    #[arg(long, default_value_t = 120)]
    pub fund_timeout: u64,
    #[command(flatten)]
    pub policy: PolicyArgs,
}

/// Stop when each of the first this many answers was a refusal: the rest would be refused too.
const EARLY_STOP: u64 = 32;

/// Why envelopes were not accepted, by count: the node's reason from the receipt (a 422
/// answer), else its error code, else the client's error.
type Refusals = BTreeMap<String, u64>;

/// The reason one submission was not accepted.
fn refusal(answer: Result<(u16, &serde_json::Value), String>) -> String {
    match answer {
        Ok((_, v)) if v["reason"].is_string() => v["reason"].as_str().unwrap_or_default().into(),
        Ok((code, v)) => match v["error"].as_str() {
            Some(e) => format!("HTTP {code} {e}"),
            None => format!("HTTP {code}"),
        },
        Err(e) => e,
    }
}

/// "300 × insufficient escrow, 2 × HTTP 503 busy", most frequent first.
fn by_count(refused: &Refusals) -> String {
    let mut v: Vec<_> = refused.iter().collect();
    v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    v.iter()
        .map(|(r, n)| format!("{n} × {r}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What to do about refusals, when the reasons say. The receipt's code for an obligation the
/// netting program refuses is `program-rejected`; with nothing funded, that is escrow.
fn advice(refused: &Refusals, funded: bool) -> &'static str {
    let program = refused
        .keys()
        .any(|r| r == ReasonCode::ProgramRejected.as_str());
    match (program, funded) {
        (true, false) => {
            " — the program refuses an obligation its sender's escrow does not cover, and \
             nothing funded the participants' escrow: pass the node's chain with --chain URL \
             (a development chain such as anvil) so load can fund them"
        }
        _ => "",
    }
}

/// One planned obligation: sender index, receiver index, amount.
type Planned = (u32, u32, u128);

/// Every obligation of the run, drawn before anything is sent so that funding knows what each
/// participant will owe.
fn plan(n: u32, count: u64, rng: &mut impl Rng) -> Vec<Planned> {
    (0..count)
        .map(|_| {
            let from = rng.gen_range(0..n);
            let to = (from + rng.gen_range(1..n)) % n;
            (from, to, rng.gen_range(1..=100))
        })
        .collect()
}

/// What each participant sends in total: the escrow it needs whatever the order of settlement.
fn owed(n: u32, planned: &[Planned]) -> Vec<u128> {
    let mut owed = vec![0u128; n as usize];
    for (from, _, amount) in planned {
        owed[*from as usize] = owed[*from as usize].saturating_add(*amount);
    }
    owed
}

/// Run the load.
pub fn run(args: &LoadArgs) -> anyhow::Result<ExitCode> {
    let client = NodeClient::new(&args.node);
    let mut rng = ChaCha20Rng::from_entropy();
    let attested = client
        .attest(&args.policy.policy()?, unix_now(), &mut rng)
        .context("appraising the enclave before sealing")?;
    let n = attested.info["participants"]
        .as_u64()
        .context("participants")? as u32;
    if n < 2 {
        bail!("the node has {n} participant(s); obligations need two");
    }
    let token: Address = crate::common::field(&attested.info, "token")?;
    let show = !args.json;
    let planned = Arc::new(plan(n, args.count, &mut rng));
    let funding = fund::prepare(&client, &attested.info, args, &owed(n, &planned), show)?;
    let attested = Arc::new(attested);
    let next = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let accepted = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(Mutex::new(Refusals::new()));
    let latencies = Arc::new(Mutex::new(Vec::<f64>::with_capacity(args.count as usize)));
    let ids = Arc::new(Mutex::new(Vec::<String>::new()));
    let started = Instant::now();
    let mut workers = Vec::new();
    for w in 0..args.concurrency.max(1) {
        let (client, attested, planned, next, done, accepted, failed, refused, latencies, ids) = (
            client.clone(),
            attested.clone(),
            planned.clone(),
            next.clone(),
            done.clone(),
            accepted.clone(),
            failed.clone(),
            refused.clone(),
            latencies.clone(),
            ids.clone(),
        );
        let (count, rate, retries) = (args.count, args.rate, args.retries);
        workers.push(std::thread::spawn(move || {
            let mut rng = ChaCha20Rng::from_entropy();
            let ps = participants(n);
            let _ = w;
            loop {
                let i = next.fetch_add(1, Relaxed);
                if i >= count {
                    break;
                }
                if rate > 0 {
                    let due = started + Duration::from_secs_f64(i as f64 / rate as f64);
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                }
                let (from, to, amount) = planned[i as usize];
                let from = from as usize;
                let ob = Obligation {
                    to: ps[to as usize].account,
                    token,
                    amount,
                };
                let t0 = Instant::now();
                let answer = attested
                    .seal(&ps[from].key, &ob.encode(), unix_now(), 3600, &mut rng)
                    .map_err(|e| format!("sealing failed: {e}"))
                    .and_then(|env| {
                        client
                            .submit(&env, retries)
                            .map_err(|e| format!("no answer: {e}"))
                    });
                match answer {
                    Ok((200, v)) => {
                        accepted.fetch_add(1, Relaxed);
                        if let Ok(mut l) = latencies.lock() {
                            l.push(t0.elapsed().as_secs_f64());
                        }
                        if let (Some(id), Ok(mut ids)) = (v["envelope_id"].as_str(), ids.lock()) {
                            ids.push(id.to_string());
                        }
                    }
                    other => {
                        let why =
                            refusal(other.as_ref().map(|(c, v)| (*c, v)).map_err(Clone::clone));
                        if let Ok(mut r) = refused.lock() {
                            *r.entry(why).or_default() += 1;
                        }
                        failed.fetch_add(1, Relaxed);
                    }
                }
                let answered = done.fetch_add(1, Relaxed) + 1;
                if count > EARLY_STOP && answered >= EARLY_STOP && accepted.load(Relaxed) == 0 {
                    // Every answer so far was a refusal: stop handing out work.
                    next.fetch_max(count, Relaxed);
                }
            }
        }));
    }
    // Progress bar on stderr.
    while done.load(Relaxed) < args.count && workers.iter().any(|w| !w.is_finished()) {
        if show {
            let d = done.load(Relaxed);
            let width = 40;
            let filled = (d * width / args.count.max(1)) as usize;
            eprint!(
                "\r[{}{}] {d}/{} {:.0}/s",
                "#".repeat(filled),
                "-".repeat(width as usize - filled),
                args.count,
                d as f64 / started.elapsed().as_secs_f64().max(1e-9)
            );
            let _ = std::io::stderr().flush();
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    for w in workers {
        let _ = w.join();
    }
    let elapsed = started.elapsed().as_secs_f64();
    if show {
        eprintln!();
    }
    let mut l = latencies.lock().map(|l| l.clone()).unwrap_or_default();
    l.sort_by(f64::total_cmp);
    let pct = |p: f64| -> f64 {
        if l.is_empty() {
            return 0.0;
        }
        let i = ((p * l.len() as f64).ceil() as usize).clamp(1, l.len()) - 1;
        l[i] * 1000.0
    };
    let acc = accepted.load(Relaxed);
    let refused = refused.lock().map(|r| r.clone()).unwrap_or_default();
    let answered = done.load(Relaxed);
    if answered < args.count && acc == 0 {
        bail!(
            "the node refused each of the first {answered} envelopes ({}); stopped before \
             submitting the other {}{}",
            by_count(&refused),
            args.count - answered,
            advice(&refused, !funding.is_null())
        );
    }
    let summary = json!({
        "submitted": args.count,
        "accepted": acc,
        "failed": failed.load(Relaxed),
        "refused": refused,
        "elapsed_s": elapsed,
        "envelopes_per_s": acc as f64 / elapsed.max(1e-9),
        "latency_ms": {"p50": pct(0.50), "p90": pct(0.90), "p99": pct(0.99), "max": pct(1.0)},
        "funding": funding,
    });
    if let Some(path) = &args.ids_out {
        let ids = ids.lock().map(|i| i.join("\n")).unwrap_or_default();
        std::fs::write(path, ids + "\n")?;
    }
    if args.json {
        println!("{summary}");
    } else {
        if !funding.is_null() {
            println!(
                "funding: {} participant(s) topped up, {} deposited (owed in total: {}), credited by the node after {:.2} s; {:.2} s in all",
                funding["participants_topped_up"],
                funding["deposited"].as_str().unwrap_or("0"),
                funding["owed_total"].as_str().unwrap_or("0"),
                funding["credited_after_s"].as_f64().unwrap_or(0.0),
                funding["elapsed_s"].as_f64().unwrap_or(0.0)
            );
        }
        println!(
            "accepted {acc}/{} in {elapsed:.2} s: {:.0} envelopes/s",
            args.count,
            acc as f64 / elapsed.max(1e-9)
        );
        if !refused.is_empty() {
            println!(
                "refused {}: {}{}",
                failed.load(Relaxed),
                by_count(&refused),
                advice(&refused, !funding.is_null())
            );
        }
        println!(
            "receipt latency (ms): p50 {:.1}  p90 {:.1}  p99 {:.1}  max {:.1}",
            pct(0.5),
            pct(0.9),
            pct(0.99),
            pct(1.0)
        );
        histogram(&l);
    }
    Ok(if failed.load(Relaxed) == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// A text histogram of latencies on log-spaced buckets.
fn histogram(sorted: &[f64]) {
    let bounds_ms = [
        1.0,
        2.0,
        5.0,
        10.0,
        20.0,
        50.0,
        100.0,
        200.0,
        500.0,
        1000.0,
        f64::INFINITY,
    ];
    let mut counts = vec![0u64; bounds_ms.len()];
    for v in sorted {
        let ms = v * 1000.0;
        let i = bounds_ms
            .iter()
            .position(|b| ms <= *b)
            .unwrap_or(bounds_ms.len() - 1);
        counts[i] += 1;
    }
    let max = counts.iter().copied().max().unwrap_or(1).max(1);
    let mut lo = 0.0;
    for (b, c) in bounds_ms.iter().zip(&counts) {
        let label = if b.is_infinite() {
            format!(">{lo:.0} ms")
        } else {
            format!("{lo:.0}-{b:.0} ms")
        };
        println!(
            "{label:>14} | {:<50} {c}",
            "#".repeat((c * 50 / max) as usize)
        );
        lo = *b;
    }
}

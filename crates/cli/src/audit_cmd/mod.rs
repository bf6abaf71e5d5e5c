//! `sealbridge audit` (the auditor, from public data) and `sealbridge log …` (receipt inclusion
//! proofs). See `docs/AUDIT.md`.
//!
//! Exit codes: 0 every check passed / the proof verifies; 1 a check failed / the proof does not
//! verify; 2 usage or I/O error, or input too malformed to judge (via `main`).

mod live;
pub(crate) mod log;
mod serve;
mod state;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use sealbridge_audit::{
    Attestations, AuditInput, RecordedChain, Report, audit, read_published_receipts,
};

pub use log::{LogArgs, run as run_log};

/// `sealbridge audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Directory of published data: `chain.json`, `log/` (C2SP tiles and `checkpoint`),
    /// `evidence/`, `appraisal-policies.json` and optionally `receipts.jsonl` (what
    /// `sealbridge demo --export DIR` writes). With --rpc: only where --log and --evidence
    /// default to.
    #[arg(long, required_unless_present = "rpc")]
    pub dir: Option<PathBuf>,
    /// Audit a live deployment: read the chain over this JSON-RPC endpoint (every event of the
    /// registry and the settlement, block hashes and timestamps) instead of `chain.json`.
    #[arg(long, conflicts_with = "chain")]
    pub rpc: Option<String>,
    /// The deployment's Settlement contract (with --rpc); its registry is read from it.
    /// Without it, the one --node names (`/v1/enclave`): pin it, the node is not trusted.
    #[arg(long, requires = "rpc")]
    pub settlement: Option<alloy_primitives::Address>,
    /// A node of the deployment (base URL): with --rpc, the log (`/checkpoint`, `/tile/…`) and
    /// the evidence and appraisal policies (`/v1/evidence`, `/v1/policies`) are read from it
    /// unless --log or --evidence say otherwise.
    #[arg(long, requires = "rpc")]
    pub node: Option<String>,
    /// The log's tiles: a directory or an `http://` URL prefix (default `DIR/log`, or the
    /// node's).
    #[arg(long)]
    pub log: Option<String>,
    /// Published evidence and appraisal policies: a node's base URL or a directory laid out as
    /// an export (default DIR, or the node).
    #[arg(long)]
    pub evidence: Option<String>,
    /// A witness whose cosignature the checkpoint must carry (its vkey, as `sealbridge witness
    /// init` prints it); repeat for each. With --witnesses-required K, K of them suffice.
    #[arg(long = "witness", value_name = "VKEY")]
    pub witnesses: Vec<String>,
    /// How many of the --witness keys must have cosigned the checkpoint (default: all).
    #[arg(long, value_name = "K", requires = "witnesses")]
    pub witnesses_required: Option<usize>,
    /// With --rpc: the last audited checkpoint is kept in FILE (created if missing), and the
    /// next run requires the log it audits to extend it (same root at the kept size): a host
    /// that rewrote what was audited before fails, whatever it shows now.
    #[arg(long, value_name = "FILE", requires = "rpc")]
    pub state: Option<PathBuf>,
    /// With --rpc: keep auditing as the chain and the log grow (every --interval seconds, when
    /// the checkpoint changed); exit 1 on the first failure.
    #[arg(long, requires = "rpc")]
    pub follow: bool,
    /// Seconds between two audits with --follow or --serve.
    #[arg(long, default_value_t = 10)]
    pub interval: u64,
    /// With --rpc: serve the web audit view on ADDR (HOST:PORT) and audit again every
    /// --interval seconds (a failure turns the page red; it does not stop the auditor).
    #[arg(long, value_name = "ADDR", requires = "rpc", conflicts_with = "follow")]
    pub serve: Option<std::net::SocketAddr>,
    /// Recorded chain data (default `DIR/chain.json`).
    #[arg(long)]
    pub chain: Option<PathBuf>,
    /// A client's kept receipts (what `sealbridge client --receipts DIR` keeps): each must be
    /// in the log at its sequence, byte for byte (unlogged rejections are skipped). A host that
    /// rolled the enclave back below a receipt it handed out fails here.
    #[arg(long, value_name = "DIR")]
    pub receipts: Option<PathBuf>,
    /// Print one JSON object (each check's status and first failure).
    #[arg(long)]
    pub json: bool,
    /// After the enclave and the host's data were lost (issue 12, docs/OPERATIONS.md "Lost data
    /// directory"): instead of the audit, name every accepted receipt of the (lost enclave's)
    /// published log that never settled, against the chain's last settled statement; with
    /// `--receipts`, each kept receipt must be settled or named. Exit 1 if one is neither.
    #[arg(long, conflicts_with = "rpc")]
    pub unrecovered: bool,
}

/// Run `sealbridge audit`.
pub fn run(args: &AuditArgs) -> anyhow::Result<ExitCode> {
    if let Some(rpc) = &args.rpc {
        return run_live(args, rpc);
    }
    let Some(dir) = args.dir.as_deref() else {
        anyhow::bail!("--dir DIR (an export) or --rpc URL --settlement ADDR is required");
    };
    let chain_path = args.chain.clone().unwrap_or_else(|| dir.join("chain.json"));
    let chain = RecordedChain::open(&chain_path)?;
    let witnesses = witness_requirement(args)?;
    let attestations = match &args.evidence {
        Some(source) => live::attestations(source)?,
        None => Attestations::read(dir)?,
    };
    let receipts = published_receipts(Some(dir))?;
    let (log_dir, _fetched) = log_source(args.log.as_deref(), dir.join("log"))?;
    if args.unrecovered {
        return unrecovered(args, &chain, &log_dir);
    }
    let report = audit(&AuditInput {
        chain: &chain,
        contracts: chain.record().contracts(),
        log_dir: &log_dir,
        attestations: &attestations,
        published_receipts: receipts.as_deref(),
        witnesses: witnesses.as_ref(),
    })?;
    finish(args, &report, &log_dir)
}

/// `--rpc URL --settlement ADDR`: everything from public sources, the chain live.
fn run_live(args: &AuditArgs, rpc: &str) -> anyhow::Result<ExitCode> {
    let settlement = match (args.settlement, args.node.as_deref()) {
        (Some(s), _) => s,
        (None, Some(node)) => {
            let (status, info) = sealbridge_client::NodeClient::new(node)
                .get_json("/v1/enclave")
                .with_context(|| format!("asking {node} which deployment it serves"))?;
            anyhow::ensure!(status == 200, "GET {node}/v1/enclave: HTTP {status}");
            let s: alloy_primitives::Address = info["settlement"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .with_context(|| format!("{node}/v1/enclave names no settlement contract"))?;
            eprintln!(
                "auditing settlement {s}, the deployment {node} names (pin it with --settlement)"
            );
            s
        }
        (None, None) => anyhow::bail!("--rpc needs --settlement ADDR (or --node URL)"),
    };
    let chain =
        sealbridge_chain::RpcChain::connect(rpc).with_context(|| format!("connecting to {rpc}"))?;
    let contracts = sealbridge_audit::contracts_of(&chain, settlement)?;
    let witnesses = witness_requirement(args)?;
    let node = args.node.as_deref().map(|n| n.trim_end_matches('/'));
    let log = match (args.log.as_deref(), node, args.dir.as_deref()) {
        (Some(l), _, _) => l.to_string(),
        (None, Some(n), _) => n.to_string(),
        (None, None, Some(d)) => d.join("log").display().to_string(),
        (None, None, None) => anyhow::bail!("where is the log? pass --node URL or --log URL|DIR"),
    };
    let attestations = match (args.evidence.as_deref(), node, args.dir.as_deref()) {
        (Some(e), _, _) => live::attestations(e)?,
        (None, Some(n), _) => live::attestations(n)?,
        (None, None, Some(d)) => Attestations::read(d)?,
        (None, None, None) => {
            anyhow::bail!("where is the evidence? pass --node URL or --evidence URL|DIR")
        }
    };
    let receipts = published_receipts(args.dir.as_deref())?;
    let mut kept = match &args.state {
        Some(path) => state::read(path, &contracts)?,
        None => None,
    };
    let web = match args.serve {
        Some(addr) => {
            let state = sealbridge_audit::web::ViewState::new();
            let server = serve::serve(addr, state.clone(), node.map(str::to_string))?;
            eprintln!(
                "sealbridge audit: the audit view is at {}/ (auditing every {} s)",
                server.url(),
                args.interval.max(1)
            );
            Some((state, server))
        }
        None => None,
    };
    let mut gas: std::collections::BTreeMap<alloy_primitives::B256, u64> = Default::default();
    let repeat = args.follow || web.is_some();
    let pause = || std::thread::sleep(std::time::Duration::from_secs(args.interval.max(1)));
    // What the last audit saw: the checkpoint note and the chain's head.
    let mut last_seen: Option<(String, u64)> = None;
    loop {
        // Nothing new (same checkpoint, same chain head): no need to fetch the log again.
        if repeat
            && let Some((note, head)) = &last_seen
            && peek_checkpoint(&log).as_deref() == Some(note.as_str())
            && sealbridge_chain::Chain::block_number(&chain).ok() == Some(*head)
        {
            pause();
            continue;
        }
        let head = sealbridge_chain::Chain::block_number(&chain).unwrap_or_default();
        let round = (|| -> anyhow::Result<_> {
            let (log_dir, fetched) = log_source(Some(&log), PathBuf::new())?;
            let note = std::fs::read_to_string(log_dir.join("checkpoint")).unwrap_or_default();
            let report = audit(&AuditInput {
                chain: &chain,
                contracts,
                log_dir: &log_dir,
                attestations: &attestations,
                published_receipts: receipts.as_deref(),
                witnesses: witnesses.as_ref(),
            })?;
            Ok((log_dir, fetched, note, report))
        })();
        let (log_dir, _fetched, note, report) = match (round, &web) {
            (Ok(r), _) => r,
            // Serving: a round that could not run is shown (the page goes grey, not green) and
            // the auditor goes on.
            (Err(e), Some((state, _))) => {
                println!("audit could not run: {e:#}");
                state.error(format!("{e:#}"));
                pause();
                continue;
            }
            (Err(e), None) => return Err(e),
        };
        let continuity = state::continuity(kept.as_ref(), &log_dir, &report);
        let ok = report.ok && continuity.as_ref().is_none_or(|c| c.ok);
        if let Some((state, _)) = &web {
            sealbridge_audit::web::settled_gas(&chain, &report, &mut gas);
            let cosigned = witnesses
                .as_ref()
                .and_then(|w| sealbridge_log::cosign::verify_cosignatures(&note, &w.keys).ok())
                .unwrap_or_default();
            state.publish(&sealbridge_audit::web::Audited {
                contracts: &contracts,
                policy_hash: sealbridge_audit::web::policy_hash(&chain, contracts.settlement),
                report: &report,
                continuity: continuity
                    .as_ref()
                    .and_then(|c| serde_json::to_value(c).ok()),
                checkpoint: &note,
                cosignatures: &cosigned,
                gas: &gas,
            });
            if ok {
                println!(
                    "audit passed: log size {}, {} statements settled, {} inputs settled",
                    report.summary.log_size,
                    report.summary.statements_settled,
                    report.summary.inputs_settled
                );
            } else {
                let mut failed = report.failed();
                if continuity.as_ref().is_some_and(|c| !c.ok) {
                    failed.push("continuity");
                }
                println!("AUDIT FAILED: {}", failed.join(", "));
            }
        } else if !args.follow {
            let code = finish_with(args, &report, &log_dir, continuity.as_ref())?;
            if ok && let Some(path) = &args.state {
                state::save(path, &contracts, &log_dir)?;
            }
            return Ok(code);
        } else if !ok {
            // --follow: the full report of the first failure.
            finish_with(args, &report, &log_dir, continuity.as_ref())?;
            return Ok(ExitCode::from(1));
        } else if args.json {
            println!(
                "{}",
                serde_json::json!({"ok": true, "log_size": report.summary.log_size,
                    "statements_settled": report.summary.statements_settled,
                    "inputs_settled": report.summary.inputs_settled,
                    "at": sealbridge_net::unix_now()})
            );
        } else {
            println!(
                "audit passed: log size {}, {} statements settled, {} inputs settled",
                report.summary.log_size,
                report.summary.statements_settled,
                report.summary.inputs_settled
            );
        }
        // Each later audit must extend the last one that passed (kept in --state FILE too).
        if ok {
            kept = match &args.state {
                Some(path) => state::save(path, &contracts, &log_dir)?,
                None => state::of_dir(&log_dir),
            };
        }
        last_seen = Some((note, head));
        pause();
    }
}

/// The checkpoint note at a log source (URL or directory), without fetching any tile.
fn peek_checkpoint(source: &str) -> Option<String> {
    if live::is_url(source) {
        let bytes = log::get(&format!("{}/checkpoint", source.trim_end_matches('/'))).ok()?;
        String::from_utf8(bytes).ok()
    } else {
        std::fs::read_to_string(Path::new(source).join("checkpoint")).ok()
    }
}

/// `--witness VKEY…` and `--witnesses-required K`.
fn witness_requirement(
    args: &AuditArgs,
) -> anyhow::Result<Option<sealbridge_audit::WitnessRequirement>> {
    if args.witnesses.is_empty() {
        return Ok(None);
    }
    let keys = args
        .witnesses
        .iter()
        .map(|v| {
            sealbridge_log::cosign::WitnessKey::from_vkey(v)
                .with_context(|| format!("--witness {v:?}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    for (i, k) in keys.iter().enumerate() {
        anyhow::ensure!(
            !keys
                .iter()
                .skip(i + 1)
                .any(|o| o.public_key() == k.public_key()),
            "--witness: the key of {} is given twice (one key counts once, whatever its name)",
            k.name()
        );
    }
    let required = args.witnesses_required.unwrap_or(keys.len());
    anyhow::ensure!(
        (1..=keys.len()).contains(&required),
        "--witnesses-required {required}: between 1 and the {} --witness keys given",
        keys.len()
    );
    Ok(Some(sealbridge_audit::WitnessRequirement {
        keys,
        required,
    }))
}

/// `DIR/receipts.jsonl` if there is one.
fn published_receipts(
    dir: Option<&Path>,
) -> anyhow::Result<Option<Vec<sealbridge_audit::PublishedReceipt>>> {
    match dir.map(|d| d.join("receipts.jsonl")) {
        Some(p) if p.exists() => Ok(Some(read_published_receipts(&p)?)),
        _ => Ok(None),
    }
}

/// The log directory: `source` (a directory, or a URL fetched into a temporary directory kept
/// alive by the second value), or `default`.
fn log_source(
    source: Option<&str>,
    default: PathBuf,
) -> anyhow::Result<(PathBuf, Option<tempfile::TempDir>)> {
    match source {
        None => Ok((default, None)),
        Some(url) if live::is_url(url) => {
            let tmp = tempfile::tempdir().context("temporary directory")?;
            log::fetch(url, tmp.path()).with_context(|| format!("fetching the log from {url}"))?;
            Ok((tmp.path().to_path_buf(), Some(tmp)))
        }
        Some(url) if url.contains("://") => {
            anyhow::bail!("unsupported log URL scheme (http://, https:// or a directory): {url}")
        }
        Some(dir) => Ok((PathBuf::from(dir), None)),
    }
}

/// Print the report (with the kept receipts' check under --receipts) and choose the exit code.
fn finish(args: &AuditArgs, report: &Report, log_dir: &Path) -> anyhow::Result<ExitCode> {
    finish_with(args, report, log_dir, None)
}

/// [`finish`], with the `--state` continuity verdict (`continuity` in JSON).
fn finish_with(
    args: &AuditArgs,
    report: &Report,
    log_dir: &Path,
    continuity: Option<&state::Continuity>,
) -> anyhow::Result<ExitCode> {
    let kept = match &args.receipts {
        Some(dir) => {
            let kept = sealbridge_audit::read_kept_receipts(dir)?;
            let (_, k) = sealbridge_audit::kept::check_log_dir(log_dir, &kept)
                .with_context(|| format!("checking the kept receipts in {}", dir.display()))?;
            Some(k)
        }
        None => None,
    };
    if args.json {
        let mut v = serde_json::to_value(report)?;
        if let Some(k) = &kept {
            v["kept_receipts"] = serde_json::to_value(k)?;
        }
        if let Some(c) = continuity {
            v["continuity"] = serde_json::to_value(c)?;
        }
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print!("{}", report.to_human());
        if let Some(k) = &kept {
            print_kept(k);
        }
        if let Some(c) = continuity {
            state::print(c);
        }
    }
    let ok = report.ok && kept.as_ref().is_none_or(|k| k.ok()) && continuity.is_none_or(|c| c.ok);
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `sealbridge audit --unrecovered`: the loss report, and the kept receipts against it.
fn unrecovered(
    args: &AuditArgs,
    chain: &RecordedChain,
    log_dir: &Path,
) -> anyhow::Result<ExitCode> {
    use sealbridge_audit::unrecovered as u;
    let anchor = u::anchor_from_chain(chain, chain.record().contracts().settlement)?;
    let (entries, report) = u::loss_report_dir(log_dir, &anchor)?;
    let kept = match &args.receipts {
        Some(dir) => Some(u::check_kept(
            &report,
            &entries,
            &sealbridge_audit::read_kept_receipts(dir)?,
        )),
        None => None,
    };
    if args.json {
        let mut v = serde_json::to_value(&report)?;
        if let Some(k) = &kept {
            v["kept_receipts"] = serde_json::to_value(k)?;
        }
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!(
            "settled: statement {} anchoring log size {}; the published log has {} entries ({} \
             void); {} accepted receipts settled, {} never settled:",
            anchor.sequence,
            anchor.log_size,
            report.published_log_size,
            report.void_entries,
            report.settled_receipts,
            report.unrecovered.len()
        );
        for r in &report.unrecovered {
            println!(
                "  entry {} envelope {}: {:?}",
                r.index, r.envelope_id, r.why
            );
        }
        if let Some(k) = &kept {
            println!(
                "kept receipts: {} checked: {} settled, {} named unrecovered, {} unrecovered past \
                 the published log, {} rejected, {} FAILED",
                k.checked,
                k.settled.len(),
                k.unrecovered.len(),
                k.unrecovered_unpublished.len(),
                k.rejected,
                k.failures.len()
            );
            for f in &k.failures {
                println!("  FAIL {}: {}", f.name, f.why);
            }
        }
    }
    Ok(if kept.as_ref().is_none_or(|k| k.ok()) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The kept receipts' check, for people.
pub fn print_kept(k: &sealbridge_audit::KeptReport) {
    println!(
        "kept receipts: {} checked against a log of {} entries: {} in the log ({} accepted), {} \
         unlogged rejections skipped, {} NOT in the log",
        k.checked,
        k.log_size,
        k.in_log,
        k.accepted_in_log,
        k.unlogged,
        k.failures.len()
    );
    for f in &k.failures {
        match f.sequence {
            Some(s) => println!("  FAIL {} (sequence {s}): {}", f.name, f.why),
            None => println!("  FAIL {}: {}", f.name, f.why),
        }
    }
}

/// `DIR/log` if it is a log directory of an export, else `DIR` itself.
fn log_dir_of(dir: &Path) -> PathBuf {
    let sub = dir.join("log");
    if sub.join("checkpoint").exists() {
        sub
    } else {
        dir.to_path_buf()
    }
}

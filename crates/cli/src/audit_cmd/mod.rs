//! `sealbridge audit` (the auditor, from public data) and `sealbridge log …` (receipt inclusion
//! proofs). See `docs/AUDIT.md`.
//!
//! Exit codes: 0 every check passed / the proof verifies; 1 a check failed / the proof does not
//! verify; 2 usage or I/O error, or input too malformed to judge (via `main`).

mod log;

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
    /// `sealbridge demo --export DIR` writes).
    #[arg(long)]
    pub dir: PathBuf,
    /// The log's tiles: a directory or an `http://` URL prefix (default `DIR/log`).
    #[arg(long)]
    pub log: Option<String>,
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
}

/// Run `sealbridge audit`.
pub fn run(args: &AuditArgs) -> anyhow::Result<ExitCode> {
    let chain_path = args
        .chain
        .clone()
        .unwrap_or_else(|| args.dir.join("chain.json"));
    let chain = RecordedChain::open(&chain_path)?;
    let attestations = Attestations::read(&args.dir)?;
    let receipts_path = args.dir.join("receipts.jsonl");
    let receipts = if receipts_path.exists() {
        Some(read_published_receipts(&receipts_path)?)
    } else {
        None
    };
    let _fetched;
    let log_dir: PathBuf = match args.log.as_deref() {
        None => args.dir.join("log"),
        Some(url) if url.starts_with("http://") || url.starts_with("https://") => {
            let tmp = tempfile::tempdir().context("temporary directory")?;
            log::fetch(url, tmp.path()).with_context(|| format!("fetching the log from {url}"))?;
            let p = tmp.path().to_path_buf();
            _fetched = tmp;
            p
        }
        Some(url) if url.contains("://") => {
            anyhow::bail!("unsupported log URL scheme (http://, https:// or a directory): {url}")
        }
        Some(dir) => PathBuf::from(dir),
    };
    let report = audit(&AuditInput {
        chain: &chain,
        contracts: chain.record().contracts(),
        log_dir: &log_dir,
        attestations: &attestations,
        published_receipts: receipts.as_deref(),
    })?;
    let Some(dir) = &args.receipts else {
        print(&report, args.json)?;
        return Ok(exit(&report));
    };
    let kept = sealbridge_audit::read_kept_receipts(dir)?;
    let (_, k) = sealbridge_audit::kept::check_log_dir(&log_dir, &kept)
        .with_context(|| format!("checking the kept receipts in {}", dir.display()))?;
    if args.json {
        let mut v = serde_json::to_value(&report)?;
        v["kept_receipts"] = serde_json::to_value(&k)?;
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print!("{}", report.to_human());
        print_kept(&k);
    }
    Ok(if report.ok && k.ok() {
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

/// Print a report, human or JSON.
pub fn print(report: &Report, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        print!("{}", report.to_human());
    }
    Ok(())
}

fn exit(report: &Report) -> ExitCode {
    if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
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

//! `sealbridge attest …`: verify, inspect and check the collateral of attestation evidence.
//!
//! Exit codes: 0 valid under the policy, 1 rejected, 2 usage or I/O error (via `main`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;
use clap::{Args, Subcommand};
use sealbridge_attest::fetch::{CollateralSource, SourceConfig};
use sealbridge_attest::{Claims, Collateral, Evidence, Policy, collateral, inspect, verify_claims};
use serde_json::json;

use crate::common::read_file;
use crate::evidence::{EvidenceArgs, Tee, collateral_for, load, parse_time, tag};

/// Where missing collateral is fetched from (`--pcs`, `--kds`), shared with `sealbridge verifier`.
#[derive(Debug, Args, Default)]
pub struct FetchArgs {
    /// Intel PCS v4 or PCCS base URL for SGX/TDX collateral the evidence comes without
    /// (repeat for fallbacks, tried in order), e.g. https://api.trustedservices.intel.com.
    #[arg(long = "pcs", value_name = "URL")]
    pub pcs: Vec<String>,
    /// AMD KDS base URL for SEV-SNP VCEKs and chains (repeat for fallbacks), e.g.
    /// https://kdsintf.amd.com.
    #[arg(long = "kds", value_name = "URL")]
    pub kds: Vec<String>,
    /// Keep fetched collateral here (content-addressed; reused while valid).
    #[arg(long, value_name = "DIR")]
    pub collateral_cache: Option<PathBuf>,
}

impl FetchArgs {
    /// Whether any service is configured.
    pub fn any(&self) -> bool {
        !self.pcs.is_empty() || !self.kds.is_empty()
    }

    /// The collateral source, if any service is configured. Every URL must be http(s).
    pub fn source(&self) -> anyhow::Result<Option<CollateralSource>> {
        if !self.any() {
            return Ok(None);
        }
        for (flag, url) in self
            .pcs
            .iter()
            .map(|u| ("--pcs", u))
            .chain(self.kds.iter().map(|u| ("--kds", u)))
        {
            check_service_url(flag, url)?;
        }
        Ok(Some(CollateralSource::new(SourceConfig {
            pcs: self.pcs.clone(),
            kds: self.kds.clone(),
            cache_dir: self.collateral_cache.clone(),
            ..SourceConfig::default()
        })?))
    }
}

/// A collateral service URL is `http://HOST…` or `https://HOST…` (a PCCS on a LAN may be plain
/// HTTP; what it serves is verified against Intel's and AMD's roots either way).
fn check_service_url(flag: &str, url: &str) -> anyhow::Result<()> {
    let rest = url
        .split_once("://")
        .filter(|(scheme, _)| {
            scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")
        })
        .map(|(_, rest)| rest);
    match rest {
        Some(rest) if !rest.split(['/', '?', '#']).next().unwrap_or("").is_empty() => Ok(()),
        _ => bail!(
            "{flag} `{url}` is not an http(s) base URL (e.g. {})",
            if flag == "--kds" {
                sealbridge_attest::fetch::AMD_KDS
            } else {
                sealbridge_attest::fetch::INTEL_PCS
            }
        ),
    }
}

/// Evidence and collateral of `input`, fetching what `--collateral` does not supply.
/// `sealbridge attest verify`, `attest collateral-status` and `verifier attest` all load through
/// this.
pub fn load_fetching(
    input: &EvidenceArgs,
    fetch: &FetchArgs,
) -> anyhow::Result<(Evidence, Collateral)> {
    let Some(src) = fetch.source()? else {
        return load(input);
    };
    let evidence = tag(input.tee, read_file(&input.evidence)?)?;
    let supplied = if input.collateral.is_none() && input.cert_chain.is_none() {
        Collateral::None
    } else {
        collateral_for(
            evidence.tee(),
            input.collateral.as_deref(),
            input.cert_chain.as_deref(),
        )?
    };
    let col = src.resolve(&evidence, &supplied, input.at)?;
    Ok((evidence, col))
}

/// `sealbridge attest`.
#[derive(Debug, Args)]
pub struct AttestArgs {
    #[command(subcommand)]
    command: AttestCommand,
}

#[derive(Debug, Subcommand)]
enum AttestCommand {
    /// Verify evidence with its collateral at an explicit time and appraise it under a policy.
    Verify(VerifyArgs),
    /// Print the parsed fields of evidence without verifying anything.
    Inspect(InspectArgs),
    /// When each piece of collateral expires or is due for an update.
    CollateralStatus(StatusArgs),
}

#[derive(Debug, Args)]
struct VerifyArgs {
    #[command(flatten)]
    input: EvidenceArgs,
    /// Appraisal policy (JSON, docs/ATTESTATION.md). Default: any measurement, every other rule.
    #[arg(long)]
    policy: Option<PathBuf>,
    /// Accept debug enclaves (insecure).
    #[arg(long)]
    allow_debug: bool,
    /// Accept OutOfDate platforms (never Revoked).
    #[arg(long)]
    allow_out_of_date: bool,
    #[command(flatten)]
    fetch: FetchArgs,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct InspectArgs {
    /// The evidence file.
    file: PathBuf,
    /// Evidence format.
    #[arg(long, value_enum, default_value_t = Tee::Auto)]
    tee: Tee,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct StatusArgs {
    /// SGX/TDX: QuoteCollateralV3 JSON. SNP: the VCEK/VLEK certificate.
    #[arg(long)]
    collateral: Option<PathBuf>,
    /// SNP: ASK/ARK chain. Nitro: a root certificate.
    #[arg(long)]
    cert_chain: Option<PathBuf>,
    /// Evidence whose collateral to fetch (with --pcs/--kds) instead of --collateral.
    #[arg(long)]
    evidence: Option<PathBuf>,
    /// Which TEE the collateral is for.
    #[arg(long, value_enum, default_value_t = Tee::Auto)]
    tee: Tee,
    /// Warn (state `due`, exit 3) when a piece expires within this many days.
    #[arg(long, default_value_t = 7)]
    warn_days: u64,
    #[command(flatten)]
    fetch: FetchArgs,
    /// Evaluate at this time: unix seconds or RFC 3339.
    #[arg(long, value_parser = parse_time)]
    at: u64,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// Run `sealbridge attest`.
pub fn run(args: &AttestArgs) -> anyhow::Result<ExitCode> {
    match &args.command {
        AttestCommand::Verify(a) => verify(a),
        AttestCommand::Inspect(a) => {
            let ev = tag(a.tee, read_file(&a.file)?)?;
            let fields = inspect::inspect(&ev)?;
            if a.json {
                let map: serde_json::Map<String, serde_json::Value> = fields
                    .into_iter()
                    .map(|(k, v)| (k, serde_json::Value::String(v)))
                    .collect();
                println!("{}", serde_json::Value::Object(map));
            } else {
                for (k, v) in fields {
                    println!("{k:<14} {v}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        AttestCommand::CollateralStatus(a) => collateral_status(a),
    }
}

fn collateral_status(a: &StatusArgs) -> anyhow::Result<ExitCode> {
    let col = match &a.evidence {
        Some(ev) => {
            let input = EvidenceArgs {
                evidence: ev.clone(),
                collateral: a.collateral.clone(),
                cert_chain: a.cert_chain.clone(),
                tee: a.tee,
                at: a.at,
            };
            if !a.fetch.any() && a.collateral.is_none() {
                bail!("--evidence needs --pcs or --kds (or give --collateral)");
            }
            load_fetching(&input, &a.fetch)?.1
        }
        None => {
            let tee = match a.tee {
                Tee::Sgx => sealbridge_attest::TeeKind::Sgx,
                Tee::Tdx => sealbridge_attest::TeeKind::Tdx,
                Tee::Snp => sealbridge_attest::TeeKind::Snp,
                Tee::Nitro => sealbridge_attest::TeeKind::Nitro,
                Tee::Auto | Tee::Sim => bail!("--tee must be sgx, tdx, snp or nitro"),
            };
            collateral_for(tee, a.collateral.as_deref(), a.cert_chain.as_deref())?
        }
    };
    let warn = a.warn_days.saturating_mul(86_400);
    let mut pieces = collateral::status(&col, a.at)?;
    for p in &mut pieces {
        if p.state == "valid" && p.expires_at <= a.at.saturating_add(warn) {
            p.state = "due";
        }
    }
    let facts = collateral::facts(&col)?;
    let bad = pieces
        .iter()
        .any(|p| p.state == "expired" || p.state == "not_yet_valid");
    let due = collateral::expiring(&pieces, a.at, warn).len();
    if a.json {
        println!(
            "{}",
            json!({
                "at": a.at,
                "warn_days": a.warn_days,
                "expiring": due,
                "tcb_evaluation_data_number": facts.tcb_evaluation_data_number,
                "tcb_recovery_at": facts.tcb_recovery_at,
                "pieces": pieces,
            })
        );
    } else {
        for p in &pieces {
            println!(
                "{:<14} expires {} ({}s from now)  {}",
                p.state,
                p.expires_at,
                i128::from(p.expires_at) - i128::from(a.at),
                p.what
            );
        }
        if let Some(n) = facts.tcb_evaluation_data_number {
            println!("tcb_evaluation_data_number {n}");
        }
    }
    Ok(if bad {
        ExitCode::from(1)
    } else if due > 0 {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    })
}

fn claims_json(c: &Claims) -> serde_json::Value {
    let regs: serde_json::Map<String, serde_json::Value> = c
        .registers
        .iter()
        .map(|r| (r.name.clone(), json!(hex::encode(&r.value))))
        .collect();
    json!({
        "tee": c.tee.name(),
        "tcb_status": c.tcb_status,
        "advisory_ids": c.advisory_ids,
        "measurement": c.measurement.to_hex(),
        "measurements": regs,
        "debug": c.debug,
        "report_data": hex::encode(&c.report_data),
        "platform_id": hex::encode(&c.platform_id),
        "valid_until": c.valid_until,
    })
}

fn verify(a: &VerifyArgs) -> anyhow::Result<ExitCode> {
    let (evidence, collateral) = load_fetching(&a.input, &a.fetch)?;
    let mut policy = match &a.policy {
        Some(p) => Policy::from_json(&read_file(p)?)?,
        None => Policy::default(),
    };
    policy.allow_debug |= a.allow_debug;
    policy.allow_out_of_date |= a.allow_out_of_date;
    let now = a.input.at;
    let (claims, outcome) = match verify_claims(&evidence, &collateral, now) {
        Ok(c) => {
            let facts = match &collateral {
                Collateral::None => None,
                col => Some(collateral::facts(col)?),
            };
            let r = policy.appraise_with(&c, facts.as_ref(), now);
            (Some(c), r)
        }
        Err(e) => (None, Err(e)),
    };
    let mut out = match &claims {
        Some(c) => claims_json(c),
        None => json!({ "tee": evidence.tee().name(), "tcb_status": null, "advisory_ids": [],
                        "measurements": {}, "debug": null, "report_data": null }),
    };
    let valid = outcome.is_ok();
    if let Some(o) = out.as_object_mut() {
        o.insert(
            "verdict".into(),
            json!(if valid { "valid" } else { "invalid" }),
        );
        o.insert(
            "reason".into(),
            outcome
                .as_ref()
                .err()
                .map_or(json!(null), |e| json!(e.to_string())),
        );
        o.insert(
            "rule".into(),
            outcome
                .as_ref()
                .err()
                .map_or(json!(null), |e| json!(e.rule())),
        );
    }
    if a.json {
        println!("{out}");
    } else {
        match (&claims, &outcome) {
            (_, Ok(())) => println!("valid"),
            (_, Err(e)) => println!("invalid: {e} [rule: {}]", e.rule()),
        }
        if let Some(c) = &claims {
            println!("tee            {}", c.tee.name());
            println!("tcb_status     {:?} {:?}", c.tcb_status, c.advisory_ids);
            println!("measurement    {}", c.measurement.to_hex());
            println!("debug          {}", c.debug);
            println!("report_data    {}", hex::encode(&c.report_data));
        }
    }
    Ok(if valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

#[cfg(test)]
mod tests {
    use super::check_service_url;

    #[test]
    fn collateral_services_are_http_or_https_base_urls() {
        for ok in [
            "https://api.trustedservices.intel.com",
            "http://127.0.0.1:8081",
            "HTTPS://pccs.lan:8081/",
        ] {
            assert!(check_service_url("--pcs", ok).is_ok(), "{ok}");
        }
        for bad in [
            "ftp://pcs.example",
            "127.0.0.1:8081",
            "https://",
            "file:///x",
        ] {
            let e = check_service_url("--kds", bad).unwrap_err().to_string();
            assert!(e.contains("--kds") && e.contains(bad), "{e}");
        }
    }
}

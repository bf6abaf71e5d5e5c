//! `sealbridge attest …`: verify, inspect and check the collateral of attestation evidence.
//!
//! Exit codes: 0 valid under the policy, 1 rejected, 2 usage or I/O error (via `main`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;
use clap::{Args, Subcommand};
use sealbridge_attest::{Claims, Policy, collateral, inspect, verify_claims};
use serde_json::json;

use crate::common::read_file;
use crate::evidence::{EvidenceArgs, Tee, collateral_for, load, parse_time, tag};

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
    /// Which TEE the collateral is for.
    #[arg(long, value_enum)]
    tee: Tee,
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
        AttestCommand::CollateralStatus(a) => {
            let tee = match a.tee {
                Tee::Sgx => sealbridge_attest::TeeKind::Sgx,
                Tee::Tdx => sealbridge_attest::TeeKind::Tdx,
                Tee::Snp => sealbridge_attest::TeeKind::Snp,
                Tee::Nitro => sealbridge_attest::TeeKind::Nitro,
                Tee::Auto | Tee::Sim => bail!("--tee must be sgx, tdx, snp or nitro"),
            };
            let col = collateral_for(tee, a.collateral.as_deref(), a.cert_chain.as_deref())?;
            let pieces = collateral::status(&col, a.at)?;
            if a.json {
                println!("{}", json!({ "at": a.at, "pieces": pieces }));
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
            }
            let bad = pieces
                .iter()
                .any(|p| p.state == "expired" || p.state == "not_yet_valid");
            Ok(if bad {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
    }
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
    let (evidence, collateral) = load(&a.input)?;
    let mut policy = match &a.policy {
        Some(p) => Policy::from_json(&read_file(p)?)?,
        None => Policy::default(),
    };
    policy.allow_debug |= a.allow_debug;
    policy.allow_out_of_date |= a.allow_out_of_date;
    let now = a.input.at;
    let (claims, outcome) = match verify_claims(&evidence, &collateral, now) {
        Ok(c) => {
            let r = policy.appraise(&c, now);
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

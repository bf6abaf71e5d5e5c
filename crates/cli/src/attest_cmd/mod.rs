//! `sealbridge attest …`: verify, inspect and check the collateral of attestation evidence.
//!
//! Exit codes: 0 valid under the policy, 1 rejected, 2 usage or I/O error (via `main`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use sealbridge_attest::{Claims, Collateral, Evidence, Policy, collateral, inspect, verify_claims};
use serde_json::json;

/// Largest file read (evidence, collateral, chains, policy): 1 MiB.
const MAX_FILE: u64 = 1 << 20;

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

/// Which verifier to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Tee {
    /// Tell from the bytes.
    Auto,
    /// Intel SGX DCAP quote v3.
    Sgx,
    /// Intel TDX DCAP quote v4/v5.
    Tdx,
    /// AMD SEV-SNP report.
    Snp,
    /// AWS Nitro attestation document.
    Nitro,
    /// Simulated quote (insecure).
    Sim,
}

/// Evidence and collateral files, shared with `sealbridge verifier`.
#[derive(Debug, Args)]
pub struct EvidenceArgs {
    /// Evidence: raw SGX/TDX quote, raw SNP report, Nitro COSE_Sign1 document, simulated quote.
    #[arg(long)]
    pub evidence: PathBuf,
    /// SGX/TDX: QuoteCollateralV3 JSON. SNP: the VCEK or VLEK certificate (DER or PEM).
    #[arg(long)]
    pub collateral: Option<PathBuf>,
    /// SNP: ASK/ARK or ASVK/ARK PEM. Nitro: a root certificate to pin instead of AWS's.
    #[arg(long)]
    pub cert_chain: Option<PathBuf>,
    /// Evidence format.
    #[arg(long, value_enum, default_value_t = Tee::Auto)]
    pub tee: Tee,
    /// Verification time: unix seconds or RFC 3339.
    #[arg(long, value_parser = parse_time)]
    pub at: u64,
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

/// Unix seconds or RFC 3339.
pub fn parse_time(s: &str) -> Result<u64, String> {
    if let Ok(n) = s.parse::<u64>() {
        return Ok(n);
    }
    collateral::parse_rfc3339(s)
        .ok_or_else(|| format!("`{s}` is neither unix seconds nor an RFC 3339 time"))
}

/// Read a file with a size limit.
pub fn read_file(path: &Path) -> anyhow::Result<Vec<u8>> {
    let meta = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    if meta.len() > MAX_FILE {
        bail!("{} is larger than {MAX_FILE} bytes", path.display());
    }
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

fn tag(tee: Tee, bytes: Vec<u8>) -> anyhow::Result<Evidence> {
    Ok(match tee {
        Tee::Auto => Evidence::detect(bytes)?,
        Tee::Sgx => Evidence::Sgx(bytes),
        Tee::Tdx => Evidence::Tdx(bytes),
        Tee::Snp => Evidence::Snp(bytes),
        Tee::Nitro => Evidence::Nitro(bytes),
        Tee::Sim => Evidence::Simulated(bytes),
    })
}

fn collateral_for(
    tee: sealbridge_attest::TeeKind,
    collateral: Option<&Path>,
    chain: Option<&Path>,
) -> anyhow::Result<Collateral> {
    use sealbridge_attest::TeeKind as K;
    let col = collateral.map(read_file).transpose()?;
    let chain = chain.map(read_file).transpose()?;
    Ok(match tee {
        K::Sgx | K::Tdx => {
            if chain.is_some() {
                bail!("--cert-chain is not used for SGX/TDX (the chains are in the collateral)");
            }
            Collateral::Dcap(col.context("SGX/TDX need --collateral (QuoteCollateralV3 JSON)")?)
        }
        K::Snp => Collateral::Snp {
            vek: col.context("SEV-SNP needs --collateral (the VCEK or VLEK certificate)")?,
            chain,
        },
        K::Nitro => {
            if col.is_some() {
                bail!("Nitro takes no --collateral; pin a root with --cert-chain");
            }
            chain.map_or(Collateral::None, |root| Collateral::Nitro { root })
        }
        K::Simulated => Collateral::None,
    })
}

/// Evidence and collateral from the files of `args`.
pub fn load(args: &EvidenceArgs) -> anyhow::Result<(Evidence, Collateral)> {
    let evidence = tag(args.tee, read_file(&args.evidence)?)?;
    let collateral = collateral_for(
        evidence.tee(),
        args.collateral.as_deref(),
        args.cert_chain.as_deref(),
    )?;
    Ok((evidence, collateral))
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

//! Evidence and collateral files as `sealbridge attest` and `sealbridge verifier` take them.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use sealbridge_attest::{Collateral, Evidence, collateral};

use crate::common::read_file;

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

/// Unix seconds or RFC 3339.
pub fn parse_time(s: &str) -> Result<u64, String> {
    if let Ok(n) = s.parse::<u64>() {
        return Ok(n);
    }
    collateral::parse_rfc3339(s)
        .ok_or_else(|| format!("`{s}` is neither unix seconds nor an RFC 3339 time"))
}

pub(crate) fn tag(tee: Tee, bytes: Vec<u8>) -> anyhow::Result<Evidence> {
    Ok(match tee {
        Tee::Auto => Evidence::detect(bytes)?,
        Tee::Sgx => Evidence::Sgx(bytes),
        Tee::Tdx => Evidence::Tdx(bytes),
        Tee::Snp => Evidence::Snp(bytes),
        Tee::Nitro => Evidence::Nitro(bytes),
        Tee::Sim => Evidence::Simulated(bytes),
    })
}

pub(crate) fn collateral_for(
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

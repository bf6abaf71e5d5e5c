//! `sealbridge measure` (issue 14 part 5): the measurement a deployment's registry must allow
//! for a build, per TEE recipe, computed offline — "measurement → source" in one command.
//!
//! - simulated: `keccak256("sealbridge/v1/INSECURE-simulated-measurement" ‖ program ‖ version
//!   [‖ build])`, as the simulated TEE reports it;
//! - SGX (Gramine): MRENCLAVE from the SIGSTRUCT `gramine-sgx-sign` writes (its layout: Intel
//!   SDM Vol. 3D §38.13; MRENCLAVE at byte 960);
//! - TDX: SHA-256(MRTD ‖ RTMR0 ‖ RTMR1 ‖ RTMR2 ‖ RTMR3), from the registers of the image;
//! - SEV-SNP: SHA-256(launch MEASUREMENT), the launch digest `sev-snp-measure` computes;
//! - Nitro: SHA-256(PCR0 ‖ PCR1 ‖ PCR2), the PCRs `nitro-cli build-enclave` prints, or of an
//!   EIF through `nitro-cli describe-eif` where that tool is installed (`--nitro-eif`; we do not
//!   re-implement AWS's image hashing).
//!
//! These are the verifier's normalisations (docs/ATTESTATION.md), so the value printed is what
//! the registry's allowlist holds. The allowlist entry it prints records `--source-commit`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use sealbridge_attest::Measurement;
use serde_json::json;

/// Arguments of `sealbridge measure`.
#[derive(Debug, clap::Args)]
pub struct MeasureArgs {
    /// The simulated TEE: this build label (`sealbridge node --build`, simulated only).
    #[arg(long)]
    pub build: Option<String>,
    /// SGX (Gramine): the SIGSTRUCT file `gramine-sgx-sign` wrote (`*.sig`).
    #[arg(long, value_name = "FILE")]
    pub sgx_sigstruct: Option<PathBuf>,
    /// TDX: MRTD (48 bytes, hex).
    #[arg(long, value_name = "HEX", requires = "tdx_rtmr")]
    pub tdx_mrtd: Option<String>,
    /// TDX: RTMR0, RTMR1, RTMR2, RTMR3 (48 bytes each, hex), in order.
    #[arg(long, value_name = "HEX", num_args = 1)]
    pub tdx_rtmr: Vec<String>,
    /// SEV-SNP: the launch MEASUREMENT (48 bytes, hex).
    #[arg(long, value_name = "HEX")]
    pub snp_launch_measurement: Option<String>,
    /// Nitro: PCR0 (48 bytes, hex).
    #[arg(long, value_name = "HEX", requires_all = ["nitro_pcr1", "nitro_pcr2"])]
    pub nitro_pcr0: Option<String>,
    /// Nitro: PCR1.
    #[arg(long, value_name = "HEX")]
    pub nitro_pcr1: Option<String>,
    /// Nitro: PCR2.
    #[arg(long, value_name = "HEX")]
    pub nitro_pcr2: Option<String>,
    /// Nitro: an enclave image file; its PCRs come from `nitro-cli describe-eif` (must be on
    /// PATH: the AWS Nitro Enclaves CLI).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["nitro_pcr0", "nitro_pcr1", "nitro_pcr2"])]
    pub nitro_eif: Option<PathBuf>,
    /// The source commit of the build (40 hex digits), recorded in the allowlist entry.
    #[arg(long, value_name = "SHA")]
    pub source_commit: Option<String>,
    /// One JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

fn hex48(what: &str, s: &str) -> anyhow::Result<Vec<u8>> {
    let b = hex::decode(s.trim().trim_start_matches("0x"))
        .with_context(|| format!("{what}: not hex"))?;
    if b.len() != 48 {
        bail!("{what}: {} bytes, a register is 48", b.len());
    }
    Ok(b)
}

/// SIGSTRUCT header (Intel SDM Vol. 3D, Table 38-19): the first 16 bytes are fixed.
const SIGSTRUCT_HEADER: [u8; 16] = [6, 0, 0, 0, 0xe1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0];
const SIGSTRUCT_LEN: usize = 1808;
const SIGSTRUCT_MRENCLAVE: usize = 960;

/// PCR0..2 of `eif` as `nitro-cli describe-eif --eif-path EIF` reports them (its JSON
/// `Measurements` object).
fn describe_eif(eif: &std::path::Path) -> anyhow::Result<(String, String, String)> {
    if !eif.is_file() {
        bail!("--nitro-eif {}: no such file", eif.display());
    }
    let out = std::process::Command::new("nitro-cli")
        .args(["describe-eif", "--eif-path"])
        .arg(eif)
        .output()
        .map_err(|e| {
            anyhow::anyhow!(
                "--nitro-eif: running nitro-cli describe-eif: {e} (install the AWS Nitro Enclaves \
                 CLI, or pass --nitro-pcr0/1/2 as `nitro-cli build-enclave` printed them)"
            )
        })?;
    if !out.status.success() {
        bail!(
            "nitro-cli describe-eif {}: {}",
            eif.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("nitro-cli describe-eif printed no JSON")?;
    let pcr = |n: &str| {
        v["Measurements"][n]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("nitro-cli describe-eif: no Measurements.{n}"))
    };
    Ok((pcr("PCR0")?, pcr("PCR1")?, pcr("PCR2")?))
}

pub fn run(a: &MeasureArgs) -> anyhow::Result<ExitCode> {
    if let Some(c) = &a.source_commit
        && !(c.len() == 40 && c.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        bail!("--source-commit: a commit is 40 hex digits, not {c:?}");
    }
    let chosen = [
        a.sgx_sigstruct.is_some(),
        a.tdx_mrtd.is_some(),
        a.snp_launch_measurement.is_some(),
        a.nitro_pcr0.is_some() || a.nitro_eif.is_some(),
    ]
    .iter()
    .filter(|x| **x)
    .count();
    if chosen > 1 {
        bail!("name one TEE's artefacts (--sgx-sigstruct, --tdx-*, --snp-*, --nitro-*)");
    }
    if a.nitro_pcr0.is_none() && (a.nitro_pcr1.is_some() || a.nitro_pcr2.is_some()) {
        bail!("--nitro-pcr1/--nitro-pcr2 need --nitro-pcr0");
    }
    let (tee, measurement, registers): (&str, Measurement, Vec<(String, String)>) =
        if let Some(path) = &a.sgx_sigstruct {
            let s = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            if s.len() != SIGSTRUCT_LEN || s[..16] != SIGSTRUCT_HEADER {
                bail!(
                    "{}: not an SGX SIGSTRUCT ({} bytes; a SIGSTRUCT is {SIGSTRUCT_LEN} with a \
                     fixed header)",
                    path.display(),
                    s.len()
                );
            }
            let mut m = [0u8; 32];
            m.copy_from_slice(&s[SIGSTRUCT_MRENCLAVE..SIGSTRUCT_MRENCLAVE + 32]);
            (
                "sgx",
                Measurement(m),
                vec![("mrenclave".into(), hex::encode(m))],
            )
        } else if let Some(mrtd) = &a.tdx_mrtd {
            if a.tdx_rtmr.len() != 4 {
                bail!(
                    "--tdx-rtmr: give RTMR0..RTMR3, four times ({} given)",
                    a.tdx_rtmr.len()
                );
            }
            let mut regs = vec![("mrtd".to_string(), hex48("--tdx-mrtd", mrtd)?)];
            for (i, r) in a.tdx_rtmr.iter().enumerate() {
                regs.push((
                    format!("rtmr{i}"),
                    hex48(&format!("--tdx-rtmr #{}", i + 1), r)?,
                ));
            }
            let parts: Vec<&[u8]> = regs.iter().map(|(_, v)| v.as_slice()).collect();
            let m = Measurement::of_registers(&parts);
            (
                "tdx",
                m,
                regs.into_iter().map(|(n, v)| (n, hex::encode(v))).collect(),
            )
        } else if let Some(l) = &a.snp_launch_measurement {
            let v = hex48("--snp-launch-measurement", l)?;
            (
                "snp",
                Measurement::of_registers(&[&v]),
                vec![("measurement".into(), hex::encode(&v))],
            )
        } else if a.nitro_pcr0.is_some() || a.nitro_eif.is_some() {
            let (p0, p1, p2) = match &a.nitro_eif {
                Some(eif) => describe_eif(eif)?,
                None => (
                    a.nitro_pcr0.clone().unwrap_or_default(),
                    a.nitro_pcr1.clone().unwrap_or_default(),
                    a.nitro_pcr2.clone().unwrap_or_default(),
                ),
            };
            let regs = [
                ("pcr0", hex48("--nitro-pcr0", &p0)?),
                ("pcr1", hex48("--nitro-pcr1", &p1)?),
                ("pcr2", hex48("--nitro-pcr2", &p2)?),
            ];
            let m = Measurement::of_registers(&[&regs[0].1, &regs[1].1, &regs[2].1]);
            (
                "nitro",
                m,
                regs.iter()
                    .map(|(n, v)| (n.to_string(), hex::encode(v)))
                    .collect(),
            )
        } else {
            // The netting program's name (`Program::name`), which the simulated measurement hashes.
            let m = sealbridge_enclave::policy::simulated_measurement_of(
                "sealbridge/netting/v1",
                a.build.as_deref(),
            );
            ("simulated", Measurement(m.0), Vec::new())
        };
    let m = format!("0x{}", hex::encode(measurement.0));
    let mut entry = json!({ "measurement": m });
    if let Some(c) = &a.source_commit {
        entry["source_commit"] = json!(c.to_lowercase());
    }
    if a.json {
        println!(
            "{}",
            json!({
                "tee": tee,
                "measurement": m,
                "registers": registers.iter().map(|(n, v)| (n.clone(), json!(v))).collect::<serde_json::Map<_, _>>(),
                "allowlist_entry": entry,
            })
        );
    } else {
        println!("{tee} measurement {m}");
        for (n, v) in &registers {
            println!("  {n} {v}");
        }
        println!("deployment allowlist entry (\"measurements\"): {entry}");
        if tee == "simulated" {
            println!("INSECURE: the simulated TEE; allowed only with allow_simulated");
        }
    }
    Ok(ExitCode::SUCCESS)
}

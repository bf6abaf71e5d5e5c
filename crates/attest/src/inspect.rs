//! Parse evidence without verifying anything (`sealbridge attest inspect`): the fields, as the
//! format names them. Nothing here is trustworthy; it is for looking.

use crate::danger::SimulatedQuote;
use crate::{Error, Evidence, dcap, nitro, snp};

/// `(field, value)` pairs; binary values in hex.
pub fn inspect(evidence: &Evidence) -> Result<Vec<(String, String)>, Error> {
    let mut out: Vec<(String, String)> = vec![("tee".into(), evidence.tee().name().into())];
    let mut put = |k: &str, v: String| out.push((k.into(), v));
    match evidence {
        Evidence::Simulated(b) => {
            let q = SimulatedQuote::parse(b)?;
            put("measurement", q.measurement.to_hex());
            put("report_data", hex::encode(q.report_data));
            put("issued_at", q.issued_at.to_string());
            put("debug", q.debug.to_string());
        }
        Evidence::Sgx(b) | Evidence::Tdx(b) => {
            let q = dcap::parse_quote(b)?;
            put("version", q.header.version.to_string());
            put("tee_type", format!("{:#x}", q.header.tee_type));
            put("qe_vendor_id", hex::encode(q.header.qe_vendor_id));
            let (m, regs, debug, service_td, rd) =
                dcap::report_fields(&q.report).ok_or(Error::Malformed("unknown report body"))?;
            put("measurement", m.to_hex());
            for r in regs {
                put(&r.name, hex::encode(r.value));
            }
            put("debug", debug.to_string());
            put("service_td", service_td.to_string());
            put("report_data", hex::encode(rd));
        }
        Evidence::Snp(b) => {
            let r = snp::SnpReport::parse(b)?;
            put("version", r.version.to_string());
            put("policy", format!("{:#x}", r.policy));
            put("vmpl", r.vmpl.to_string());
            put(
                "signing_key",
                if r.signing_key == 0 { "vcek" } else { "vlek" }.into(),
            );
            put("measurement", hex::encode(r.measurement));
            put("host_data", hex::encode(r.host_data));
            put("reported_tcb", hex::encode(r.reported_tcb));
            put("chip_id", hex::encode(r.chip_id));
            put("debug", r.debug().to_string());
            put("report_data", hex::encode(r.report_data));
        }
        Evidence::Nitro(b) => {
            let d = nitro::NitroDocument::parse(b)?;
            put("module_id", d.module_id.clone());
            put("timestamp_ms", d.timestamp_ms.to_string());
            for (i, v) in &d.pcrs {
                put(&format!("pcr{i}"), hex::encode(v));
            }
            put("cabundle_len", d.cabundle.len().to_string());
            for (k, v) in [
                ("public_key", &d.public_key),
                ("user_data", &d.user_data),
                ("nonce", &d.nonce),
            ] {
                if let Some(v) = v {
                    put(k, hex::encode(v));
                }
            }
        }
    }
    Ok(out)
}

/// The measurement `evidence` claims, computed as the verifier computes it from a verified
/// report (SGX: MRENCLAVE; TDX: SHA-256(MRTD ‖ RTMR0..3); SEV-SNP: SHA-256(MEASUREMENT); Nitro:
/// SHA-256(PCR0 ‖ PCR1 ‖ PCR2); simulated: its measurement field) — **unverified**. An enclave
/// process reads its own with it at start (issue 14): what it then describes is only a claim the
/// verifiers' appraisal of its evidence confirms or refutes at registration.
///
/// # Errors
/// Evidence that does not parse, or a Nitro document without PCR 0, 1 or 2.
pub fn claimed_measurement(evidence: &Evidence) -> Result<crate::Measurement, Error> {
    Ok(match evidence {
        Evidence::Simulated(b) => SimulatedQuote::parse(b)?.measurement,
        Evidence::Sgx(b) | Evidence::Tdx(b) => {
            let q = dcap::parse_quote(b)?;
            dcap::report_fields(&q.report)
                .ok_or(Error::Malformed("unknown report body"))?
                .0
        }
        Evidence::Snp(b) => {
            crate::Measurement::of_registers(&[&snp::SnpReport::parse(b)?.measurement])
        }
        Evidence::Nitro(b) => {
            let d = nitro::NitroDocument::parse(b)?;
            let pcr = |i: u64| {
                d.pcrs
                    .iter()
                    .find(|(n, _)| *n == i)
                    .map(|(_, v)| v.as_slice())
                    .ok_or(Error::Malformed("a Nitro document without PCR 0, 1 or 2"))
            };
            crate::Measurement::of_registers(&[pcr(0)?, pcr(1)?, pcr(2)?])
        }
    })
}

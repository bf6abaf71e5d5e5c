//! `previous-version-client`: a client pinned to the previous release seals an obligation as
//! envelope version 1 (byte for byte as that release did: X25519/AES-128-GCM, 32-byte `ek`) to
//! an enclave of the current version (2). Inside the N−1 window (docs/PROTOCOL.md "Versions and
//! the N−1 window") it is accepted and settles exactly once: the host's resubmission of the same
//! bytes is refused `replayed` and the chain's escrow is what the clients' plaintext says. An
//! envelope claiming version 3 (a future one) or version 0 (never defined) is refused
//! `unsupported-version` and changes nothing.

use sealbridge_programs::netting::Obligation;
use serde_json::json;

use crate::{
    Checks, Outcome, SandboxError, Scenario, World,
    client::{Addressing, seal_obligation_v1},
};

/// See the module documentation.
#[derive(Debug)]
pub struct PreviousVersionClient;

/// The envelope with its protected `version` entry (`-65537: 1`) set to `v` (< 24). The CBOR stays
/// canonical, so the refusal is about the version and nothing else.
fn claim_version(v1: &[u8], v: u8) -> Option<Vec<u8>> {
    let pos = v1
        .windows(6)
        .position(|w| w == [0x3a, 0x00, 0x01, 0x00, 0x00, 0x01])?;
    let mut out = v1.to_vec();
    *out.get_mut(pos + 5)? = v;
    Some(out)
}

impl Scenario for PreviousVersionClient {
    fn name(&self) -> &'static str {
        "previous-version-client"
    }

    fn threat(&self) -> &'static str {
        "An upgrade strands clients of the previous release (their envelopes refused), or lets \
         their envelopes count twice, or the compatibility window lets envelopes of unknown or \
         retired versions in (DESIGN §12 invariants 1 and 5; issue 12 part 4)."
    }

    fn run(&self, w: &mut World<'_>) -> Result<Outcome, SandboxError> {
        w.step("a client of the previous release seals a version-1 envelope");
        let addressing = Addressing::from_description(&w.description)?;
        let now = w.now()?;
        let ob = Obligation {
            to: w.account(1),
            token: w.token,
            amount: 250,
        };
        let header = addressing.header(&mut w.rng, now + 600);
        let v1 = seal_obligation_v1(
            &addressing,
            &header,
            &w.participants[0].key,
            &ob,
            &mut w.rng,
        )?;
        let parsed_version = sealbridge_seal::envelope::SealedEnvelope::parse(&v1)
            .map(|e| e.header().version)
            .ok();
        let accepted = w.submit_obligation_at(0, &ob, v1.clone(), now)?;

        w.step("the host submits the same bytes again");
        let again = w.submit_obligation_at(0, &ob, v1.clone(), now)?;

        w.step("envelopes claiming version 3 (future) and version 0 are submitted");
        let log_before = w.enclave.log_head();
        let escrow_before: Vec<u128> = (0..4).map(|i| w.enclave_escrow(i)).collect();
        let mut unknown = Vec::new();
        for v in [3u8, 0] {
            let bytes = claim_version(&v1, v)
                .ok_or_else(|| SandboxError::Setup("no version entry in the v1 envelope".into()))?;
            let out = w.submit_obligation_at(0, &ob, bytes, now)?;
            unknown.push((v, out.rejected.map(|r| r.as_str())));
        }
        let unchanged = w.enclave.log_head() == log_before
            && (0..4).map(|i| w.enclave_escrow(i)).collect::<Vec<_>>() == escrow_before;

        w.step("a current client pays too; the batch settles");
        let current = w.pay(2, 3, 40)?;
        let relayed = w.cut_and_settle()?;
        let mismatches = w.escrow_mismatches()?;

        let mut c = Checks::new();
        c.check(
            "the pinned client's envelope is version 1",
            parsed_version == Some(1),
        )
        .check(
            "the version-1 envelope was accepted",
            accepted.rejected.is_none(),
        )
        .check(
            "its resubmission was refused (replayed): it counts once",
            again.rejected.map(|r| r.as_str()) == Some("replayed"),
        )
        .check(
            "versions 3 and 0 were refused unsupported-version, changing nothing",
            unknown
                .iter()
                .all(|(_, r)| *r == Some("unsupported-version"))
                && unchanged,
        )
        .check(
            "one statement settled both inputs (the old client's and a current one's)",
            current.accepted
                && relayed.refused.is_none()
                && relayed.settled.iter().map(|s| s.inputs).sum::<u32>() == 2,
        )
        .check(
            "on-chain escrow is exactly what the clients' accepted obligations say",
            mismatches.is_empty(),
        );
        Ok(c.outcome(json!({
            "current_envelope_version": sealbridge_proto::ENVELOPE_VERSION,
            "pinned_client_version": parsed_version,
            "pinned_envelope_bytes": v1.len(),
            "first_submission": accepted.rejected.map(|r| r.as_str()).unwrap_or("accepted"),
            "resubmission": again.rejected.map(|r| r.as_str()).unwrap_or("accepted"),
            "claimed_versions": unknown.iter().map(|(v, r)| json!({"version": v, "answer": r})).collect::<Vec<_>>(),
            "min_envelope_version": w.policy.min_envelope_version,
            "settled_inputs": relayed.settled.iter().map(|s| s.inputs).collect::<Vec<_>>(),
            "escrow_mismatches": mismatches,
        })))
    }
}

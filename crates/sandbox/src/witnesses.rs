//! Witnesses of the world's log (issue 13): `sealbridge-witness` services on loopback, each with
//! its own data directory and key, configured with the log's origin and the enclave's Ed25519
//! key (what `sealbridge witness serve --log VKEY` runs), and the node's own code asking them to
//! cosign (`sealbridge_node::witnessing::Cosigner`, as `sealbridge node --witness VKEY@URL`
//! does).

use std::path::Path;

use sealbridge_audit::WitnessRequirement;
use sealbridge_log::{NoteVerifier, cosign::WitnessKey};
use sealbridge_node::witnessing::{Cosigner, RoundReport, WitnessTarget};
use sealbridge_witness::{AddCheckpointError, Served, Witness};
use serde_json::{Value, json};

use crate::{SandboxError, auditor::TempDir};

/// Running witnesses; dropping them stops the services and removes their state.
#[derive(Debug)]
pub struct Witnesses {
    served: Vec<Served>,
    keys: Vec<WitnessKey>,
    _dir: TempDir,
}

impl Witnesses {
    /// `n` witnesses (`witness-<i>.sandbox`) of the log `origin` signed by `log_key`, each served
    /// on a loopback port.
    pub fn start(n: usize, origin: &str, log_key: &[u8; 32]) -> Result<Self, SandboxError> {
        let err = |e: &dyn std::fmt::Display| SandboxError::Setup(format!("witness: {e}"));
        let dir = TempDir::new("witnesses")?;
        let log = NoteVerifier::new(origin, log_key).map_err(|e| err(&e))?;
        let mut served = Vec::new();
        let mut keys = Vec::new();
        for i in 0..n {
            let data = dir.path().join(format!("w{i}"));
            sealbridge_witness::init(&data, &format!("witness-{i}.sandbox"))
                .map_err(|e| err(&e))?;
            let w = Witness::open(&data, std::slice::from_ref(&log)).map_err(|e| err(&e))?;
            keys.push(w.key().clone());
            let listen = "127.0.0.1:0".parse().map_err(|e| err(&e))?;
            served.push(sealbridge_witness::serve(w, listen, None).map_err(|e| err(&e))?);
        }
        Ok(Self {
            served,
            keys,
            _dir: dir,
        })
    }

    /// Their cosigning keys.
    pub fn keys(&self) -> &[WitnessKey] {
        &self.keys
    }

    /// `required` of them, as an auditor requires them (`--witness VKEY… --witnesses-required`).
    pub fn requirement(&self, required: usize) -> WitnessRequirement {
        WitnessRequirement {
            keys: self.keys.clone(),
            required,
        }
    }

    /// A node's cosigner asking every witness, with consistency proofs from the tiles in `tiles`
    /// (a node that starts knowing no witness state: it learns each one's size from its 409).
    pub fn cosigner(&self, tiles: &Path) -> Cosigner {
        let targets = self
            .served
            .iter()
            .zip(&self.keys)
            .map(|(s, key)| WitnessTarget {
                key: key.clone(),
                url: s.url(),
            })
            .collect();
        Cosigner::new(targets, tiles.to_path_buf())
    }

    /// Witness `i`'s base URL.
    pub fn url(&self, i: usize) -> Option<String> {
        self.served.get(i).map(Served::url)
    }
}

/// Valid cosignatures by `keys` on `note`.
pub fn cosignatures(note: &str, keys: &[WitnessKey]) -> usize {
    sealbridge_log::cosign::verify_cosignatures(note, keys).map_or(0, |c| c.len())
}

/// A witness's answer as evidence: `200` with the line, or the refusal's status and what it said
/// (409: the size it last cosigned; 422: why the checkpoint is inconsistent).
pub fn answer(a: &Result<String, AddCheckpointError>) -> Value {
    match a {
        Ok(_) => json!({"status": 200}),
        Err(AddCheckpointError::Conflict(size)) => json!({"status": 409, "cosigned_size": size}),
        Err(AddCheckpointError::Inconsistent(why)) => json!({"status": 422, "why": why}),
        Err(AddCheckpointError::Refused { status, body }) => {
            json!({"status": status, "why": body})
        }
        Err(e) => json!({"status": null, "why": e.to_string()}),
    }
}

/// A cosigning round's answers as evidence, witness by witness.
pub fn round(report: &RoundReport) -> Value {
    report
        .iter()
        .map(|(name, a)| (name.clone(), answer(a)))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// The HTTP status of each witness's answer in a round.
pub fn statuses(report: &RoundReport) -> Vec<Option<u16>> {
    report
        .iter()
        .map(|(_, a)| match a {
            Ok(_) => Some(200),
            Err(AddCheckpointError::Conflict(_)) => Some(409),
            Err(AddCheckpointError::Inconsistent(_)) => Some(422),
            Err(AddCheckpointError::Refused { status, .. }) => Some(*status),
            Err(_) => None,
        })
        .collect()
}

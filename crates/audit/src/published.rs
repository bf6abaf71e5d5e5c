//! Published attestation material: the evidence behind every registration and the appraisal
//! policies in force over time.
//!
//! - `evidence/<evidenceHash, 64 lower-case hex>.json`:
//!   `{"tee": "sim"|"sgx"|"tdx"|"snp"|"nitro", "evidence": "0x…", "collateral": null |
//!   {"dcap": "0x…"} | {"snp": {"vek": "0x…", "chain": "0x…"|null}} | {"nitro": {"root": "0x…"}}}`;
//! - `appraisal-policies.json`: `{"policies": [{"from": <unix secs>, "policy": {…}}]}` where each
//!   `policy` is an appraisal policy in the format of `docs/ATTESTATION.md`; the policy in force
//!   at time `t` is the one with the largest `from <= t`.

use std::collections::BTreeMap;
use std::path::Path;

use alloy_primitives::{B256, Bytes};
use sealbridge_attest::{Collateral, Evidence, Policy, TeeKind};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Error;

/// Largest evidence file (evidence ≤ 64 KiB and collateral ≤ 256 KiB, hex-encoded).
pub const MAX_EVIDENCE_FILE_BYTES: u64 = 1024 * 1024;
/// Largest policy file.
pub const MAX_POLICY_FILE_BYTES: u64 = 1024 * 1024;
/// The appraisal policy the demo's verifiers use (`Policy::insecure_dev()`), as JSON.
pub const INSECURE_DEV_POLICY_JSON: &str =
    r#"{"allow_simulated": true, "max_evidence_age_secs": 3600}"#;

/// Collateral as published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum PublishedCollateral {
    /// SGX/TDX `QuoteCollateralV3` JSON bytes.
    Dcap(Bytes),
    /// SEV-SNP VEK and optional chain.
    Snp {
        /// VCEK/VLEK.
        vek: Bytes,
        /// ASK/ARK PEM.
        chain: Option<Bytes>,
    },
    /// Nitro pinned root.
    Nitro {
        /// Root certificate.
        root: Bytes,
    },
}

/// One published piece of evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishedEvidence {
    /// TEE kind.
    pub tee: TeeKind,
    /// Raw evidence.
    pub evidence: Bytes,
    /// Collateral, if any.
    pub collateral: Option<PublishedCollateral>,
}

impl PublishedEvidence {
    /// Publish `evidence` with `collateral`.
    pub fn new(evidence: &Evidence, collateral: &Collateral) -> Result<Self, Error> {
        let collateral = match collateral {
            Collateral::None => None,
            Collateral::Dcap(b) => Some(PublishedCollateral::Dcap(b.clone().into())),
            Collateral::Snp { vek, chain } => Some(PublishedCollateral::Snp {
                vek: vek.clone().into(),
                chain: chain.clone().map(Into::into),
            }),
            Collateral::Nitro { root } => Some(PublishedCollateral::Nitro {
                root: root.clone().into(),
            }),
            _ => return Err(Error::Input("unknown collateral kind".into())),
        };
        Ok(Self {
            tee: evidence.tee(),
            evidence: evidence.bytes().to_vec().into(),
            collateral,
        })
    }

    /// The evidence, tagged with its kind.
    pub fn evidence(&self) -> Evidence {
        let b = self.evidence.to_vec();
        match self.tee {
            TeeKind::Simulated => Evidence::Simulated(b),
            TeeKind::Sgx => Evidence::Sgx(b),
            TeeKind::Tdx => Evidence::Tdx(b),
            TeeKind::Snp => Evidence::Snp(b),
            TeeKind::Nitro => Evidence::Nitro(b),
        }
    }

    /// The collateral.
    pub fn collateral(&self) -> Collateral {
        match &self.collateral {
            None => Collateral::None,
            Some(PublishedCollateral::Dcap(b)) => Collateral::Dcap(b.to_vec()),
            Some(PublishedCollateral::Snp { vek, chain }) => Collateral::Snp {
                vek: vek.to_vec(),
                chain: chain.as_ref().map(|c| c.to_vec()),
            },
            Some(PublishedCollateral::Nitro { root }) => Collateral::Nitro {
                root: root.to_vec(),
            },
        }
    }

    /// SHA-256 of the evidence bytes: the file name and the result's `evidenceHash`.
    pub fn hash(&self) -> B256 {
        B256::from(sealbridge_attest::evidence_hash(&self.evidence))
    }
}

/// Appraisal policies over time.
#[derive(Debug, Clone, Default)]
pub struct PolicySchedule {
    policies: BTreeMap<u64, (Policy, Value)>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    policies: Vec<PolicyAt>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyAt {
    from: u64,
    policy: Value,
}

impl PolicySchedule {
    /// Add the policy (JSON, `docs/ATTESTATION.md`) in force from `from`.
    pub fn insert(&mut self, from: u64, policy_json: &str) -> Result<(), Error> {
        let policy = Policy::from_json(policy_json.as_bytes())
            .map_err(|e| Error::Input(format!("appraisal policy from {from}: {e}")))?;
        let value: Value = serde_json::from_str(policy_json).map_err(|source| Error::Json {
            what: format!("appraisal policy from {from}"),
            source,
        })?;
        if self.policies.insert(from, (policy, value)).is_some() {
            return Err(Error::Input(format!("two appraisal policies from {from}")));
        }
        Ok(())
    }

    /// The policy in force at `t`.
    pub fn at(&self, t: u64) -> Option<&Policy> {
        self.policies.range(..=t).next_back().map(|(_, (p, _))| p)
    }

    /// Parse `appraisal-policies.json`.
    pub fn from_json(bytes: &[u8]) -> Result<Self, Error> {
        let file: PolicyFile = serde_json::from_slice(bytes).map_err(|source| Error::Json {
            what: "appraisal policies".into(),
            source,
        })?;
        let mut me = Self::default();
        for p in file.policies {
            me.insert(p.from, &p.policy.to_string())?;
        }
        Ok(me)
    }

    /// Serialise as `appraisal-policies.json`.
    pub fn to_json(&self) -> String {
        let file = PolicyFile {
            policies: self
                .policies
                .iter()
                .map(|(from, (_, v))| PolicyAt {
                    from: *from,
                    policy: v.clone(),
                })
                .collect(),
        };
        serde_json::to_string_pretty(&serde_json::to_value(file).unwrap_or_default())
            .unwrap_or_default()
            + "\n"
    }
}

/// Everything published about attestation: evidence by hash, and the policies.
#[derive(Debug, Clone, Default)]
pub struct Attestations {
    /// Evidence by `evidenceHash`.
    pub evidence: BTreeMap<B256, PublishedEvidence>,
    /// Appraisal policies over time.
    pub policies: PolicySchedule,
}

impl Attestations {
    /// Write `DIR/evidence/*.json` and `DIR/appraisal-policies.json`.
    pub fn write(&self, dir: &Path) -> Result<(), Error> {
        let ev_dir = dir.join("evidence");
        std::fs::create_dir_all(&ev_dir).map_err(|e| Error::io(&ev_dir, e))?;
        for (hash, ev) in &self.evidence {
            let path = ev_dir.join(format!("{}.json", hex::encode(hash)));
            let json = serde_json::to_string_pretty(ev)
                .map_err(|e| Error::Input(format!("evidence: {e}")))?;
            std::fs::write(&path, json + "\n").map_err(|e| Error::io(&path, e))?;
        }
        let path = dir.join("appraisal-policies.json");
        std::fs::write(&path, self.policies.to_json()).map_err(|e| Error::io(&path, e))
    }

    /// Read what [`Attestations::write`] wrote. A missing `evidence/` directory is an empty set
    /// (registrations then fail their check); a missing policy file is an error.
    pub fn read(dir: &Path) -> Result<Self, Error> {
        let path = dir.join("appraisal-policies.json");
        let policies =
            PolicySchedule::from_json(&crate::read_limited(&path, MAX_POLICY_FILE_BYTES)?)?;
        let mut evidence = BTreeMap::new();
        let ev_dir = dir.join("evidence");
        if ev_dir.is_dir() {
            let rd = std::fs::read_dir(&ev_dir).map_err(|e| Error::io(&ev_dir, e))?;
            for ent in rd {
                let path = ent.map_err(|e| Error::io(&ev_dir, e))?.path();
                if path.extension().and_then(|e| e.to_str()) != Some("json") {
                    continue;
                }
                let bytes = crate::read_limited(&path, MAX_EVIDENCE_FILE_BYTES)?;
                let ev: PublishedEvidence = serde_json::from_slice(&bytes)
                    .map_err(|e| Error::Input(format!("{}: {e}", path.display())))?;
                let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
                if name != hex::encode(ev.hash()) {
                    return Err(Error::Input(format!(
                        "{}: file name is not the SHA-256 of the evidence",
                        path.display()
                    )));
                }
                evidence.insert(ev.hash(), ev);
            }
        }
        Ok(Self { evidence, policies })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_policy_json_is_insecure_dev() {
        assert_eq!(
            Policy::from_json(INSECURE_DEV_POLICY_JSON.as_bytes()).unwrap(),
            Policy::insecure_dev()
        );
    }

    #[test]
    fn policies_apply_from_their_time() {
        let mut s = PolicySchedule::default();
        s.insert(100, INSECURE_DEV_POLICY_JSON).unwrap();
        s.insert(200, "{}").unwrap();
        assert!(s.at(99).is_none());
        assert!(s.at(100).unwrap().allow_simulated);
        assert!(s.at(199).unwrap().allow_simulated);
        assert!(!s.at(200).unwrap().allow_simulated);
        assert!(s.insert(200, "{}").is_err(), "two policies from one time");
        assert!(s.insert(300, r#"{"allow_everything": true}"#).is_err());
        let back = PolicySchedule::from_json(s.to_json().as_bytes()).unwrap();
        assert_eq!(back.at(150), s.at(150));
        assert!(PolicySchedule::from_json(b"{\"policies\": 1}").is_err());
    }

    #[test]
    fn evidence_files_are_content_addressed() {
        let dir = std::env::temp_dir().join(format!("sealbridge-audit-pub-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut a = Attestations::default();
        let ev = PublishedEvidence::new(
            &Evidence::Nitro(vec![1, 2, 3]),
            &Collateral::Nitro { root: vec![4] },
        )
        .unwrap();
        a.evidence.insert(ev.hash(), ev.clone());
        a.policies.insert(0, "{}").unwrap();
        a.write(&dir).unwrap();
        let back = Attestations::read(&dir).unwrap();
        assert_eq!(back.evidence.get(&ev.hash()), Some(&ev));
        assert_eq!(ev.collateral(), Collateral::Nitro { root: vec![4] });
        assert_eq!(ev.evidence(), Evidence::Nitro(vec![1, 2, 3]));
        // A file whose name is not its evidence's hash is refused.
        let name = format!("{}.json", hex::encode(ev.hash()));
        std::fs::rename(
            dir.join("evidence").join(&name),
            dir.join("evidence/00.json"),
        )
        .unwrap();
        assert!(Attestations::read(&dir).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

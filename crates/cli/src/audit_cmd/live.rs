//! `sealbridge audit --rpc URL --settlement ADDR`: what a live audit reads from public sources
//! (issue 13) — the evidence and appraisal policies a node publishes (`/v1/evidence`,
//! `/v1/policies`) or an export directory holds.

use std::path::Path;

use anyhow::{Context, bail};
use sealbridge_audit::{Attestations, PolicySchedule, PublishedEvidence};

use super::log::get;

/// Most pieces of evidence fetched from one node (one per registration and renewal).
const MAX_EVIDENCE: usize = 100_000;

/// `--evidence URL|DIR`: a node's base URL (its `/v1/evidence` and `/v1/policies`) or a
/// directory laid out as an export (`evidence/`, `appraisal-policies.json`).
pub fn attestations(source: &str) -> anyhow::Result<Attestations> {
    if is_url(source) {
        return fetch(source.trim_end_matches('/'));
    }
    if source.contains("://") {
        bail!("unsupported evidence URL scheme (http://, https:// or a directory): {source}");
    }
    Ok(Attestations::read(Path::new(source))?)
}

pub fn is_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

/// Every piece of evidence a node lists and its policies. Each piece is filed under the hash
/// of the bytes it holds, not the one asked for: a node serving other evidence under a hash only
/// withholds that hash's (`registrations` names it).
fn fetch(base: &str) -> anyhow::Result<Attestations> {
    let list: sealbridge_api::EvidenceList = json(&format!("{base}/v1/evidence"))?;
    if list.evidence.len() > MAX_EVIDENCE {
        bail!(
            "{base}/v1/evidence lists {} pieces of evidence, more than {MAX_EVIDENCE}",
            list.evidence.len()
        );
    }
    let mut a = Attestations::default();
    for hash in &list.evidence {
        if !hash
            .strip_prefix("0x")
            .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            bail!("{base}/v1/evidence lists {hash:?}, not a 0x-hex SHA-256");
        }
        let url = format!("{base}/v1/evidence/{hash}");
        let e: PublishedEvidence = serde_json::from_slice(&get(&url)?)
            .with_context(|| format!("GET {url}: not published evidence"))?;
        a.evidence.insert(e.hash(), e);
    }
    let url = format!("{base}/v1/policies");
    let bytes = get(&url).with_context(|| {
        "the node publishes no appraisal policies: pass --evidence DIR with an \
         appraisal-policies.json"
    })?;
    a.policies = PolicySchedule::from_json(&bytes).with_context(|| format!("GET {url}"))?;
    Ok(a)
}

fn json<T: serde::de::DeserializeOwned>(url: &str) -> anyhow::Result<T> {
    serde_json::from_slice(&get(url)?).with_context(|| format!("GET {url}: unexpected answer"))
}

//! `sealbridge audit --state FILE` and `--follow`: the last audited checkpoint, and the
//! requirement that every later audit's log extends it.
//!
//! FILE (JSON): `{"chain_id", "settlement", "size", "root" (0x-hex), "checkpoint" (the note)}`,
//! written (temporary file and rename) only after an audit that passed.

use std::path::Path;

use anyhow::Context;
use sealbridge_audit::{Contracts, Report};
use sealbridge_log::{Checkpoint, HashReader, TileReader, root_at};
use serde::{Deserialize, Serialize};

/// The last audited checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Kept {
    chain_id: u64,
    settlement: alloy_primitives::Address,
    size: u64,
    root: alloy_primitives::B256,
    checkpoint: String,
}

/// Whether the audited log extends the kept checkpoint.
#[derive(Debug, Serialize)]
pub struct Continuity {
    /// It does.
    pub ok: bool,
    /// The size audited before.
    pub kept_size: u64,
    /// What failed.
    pub detail: Option<String>,
}

/// Read FILE (none yet: `None`), refusing one of another deployment.
pub fn read(path: &Path, c: &Contracts) -> anyhow::Result<Option<Kept>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("--state {}", path.display())),
    };
    let k: Kept = serde_json::from_slice(&bytes)
        .with_context(|| format!("--state {}: not an audit state file", path.display()))?;
    anyhow::ensure!(
        k.chain_id == c.chain_id && k.settlement == c.settlement,
        "--state {}: kept for settlement {} on chain {}, not {} on chain {}",
        path.display(),
        k.settlement,
        k.chain_id,
        c.settlement,
        c.chain_id
    );
    Ok(Some(k))
}

/// The checkpoint of the log in `dir` as a kept state (no deployment named).
pub fn of_dir(dir: &Path) -> Option<Kept> {
    let note = std::fs::read_to_string(dir.join("checkpoint")).ok()?;
    let body = note.get(..=note.find("\n\n")?)?;
    let cp = Checkpoint::from_note_body(body).ok()?;
    Some(Kept {
        chain_id: 0,
        settlement: alloy_primitives::Address::ZERO,
        size: cp.size,
        root: alloy_primitives::B256::from(cp.root.0),
        checkpoint: note,
    })
}

/// Keep the checkpoint of the (audited, passed) log in `dir` in FILE.
pub fn save(path: &Path, c: &Contracts, dir: &Path) -> anyhow::Result<Option<Kept>> {
    let Some(mut k) = of_dir(dir) else {
        return Ok(None);
    };
    k.chain_id = c.chain_id;
    k.settlement = c.settlement;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(&k)?)
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(Some(k))
}

/// Does the log in `dir` (whose tiles `report` verified) extend `kept`? `None` without a kept
/// checkpoint.
pub fn continuity(kept: Option<&Kept>, dir: &Path, report: &Report) -> Option<Continuity> {
    let k = kept?;
    let fail = |detail: String| Continuity {
        ok: false,
        kept_size: k.size,
        detail: Some(detail),
    };
    if report
        .check("log_tiles")
        .is_none_or(|c| c.status != sealbridge_audit::Status::Pass)
    {
        return Some(fail(
            "the log's tiles did not verify, so it cannot be compared with the one audited before"
                .into(),
        ));
    }
    let size = report.summary.log_size;
    if size < k.size {
        return Some(fail(format!(
            "the log has {size} entries; {} were audited before: the host shrank the log",
            k.size
        )));
    }
    let root = TileReader::open(dir)
        .ok()
        .map(|r| r.at(size))
        .filter(|at| at.size() == size)
        .and_then(|at| root_at(&at, k.size).ok());
    Some(match root {
        Some(r) if r.0 == k.root.0 => Continuity {
            ok: true,
            kept_size: k.size,
            detail: None,
        },
        Some(r) => fail(format!(
            "the log's root at size {} is 0x{}, the audited checkpoint's 0x{}: the host \
             rewrote history audited before",
            k.size,
            hex::encode(r.0),
            hex::encode(k.root)
        )),
        None => fail(format!("no root at size {} from the tiles", k.size)),
    })
}

/// Print the continuity verdict for people.
pub fn print(c: &Continuity) {
    if c.ok {
        println!(
            "continuity: the log extends the checkpoint audited before (size {})",
            c.kept_size
        );
    } else {
        println!(
            "continuity: FAIL — {}",
            c.detail
                .as_deref()
                .unwrap_or("the log does not extend the audited checkpoint")
        );
    }
}

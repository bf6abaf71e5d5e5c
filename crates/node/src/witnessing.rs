//! Gathering witness cosignatures (issue 13 part 2, docs/AUDIT.md "Witnesses"): after each new
//! checkpoint the node asks every configured witness (`--witness VKEY@URL`) to cosign it with a
//! consistency proof from the size that witness last cosigned (c2sp.org/tlog-witness), and
//! serves the checkpoint with the cosignatures it got at `/checkpoint`.
//!
//! The node keeps no witness state: a witness that answers 409 names the size it last cosigned,
//! and the node asks again from there (a restart costs one round trip). A witness that refuses a
//! checkpoint as inconsistent (422) has cosigned another history of this log: that is logged as
//! an error, since only a fork (or a lost witness database) causes it.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

use sealbridge_core::{Shared, health::NodeState};
use sealbridge_log::{
    Checkpoint, TileReader, consistency_proof,
    cosign::{AddCheckpoint, WitnessKey, add_signature_lines},
};
use sealbridge_witness::{AddCheckpointError, add_checkpoint};

/// One witness: its cosigning key and base URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WitnessTarget {
    /// The witness's key (`name+keyid+base64(0x04 || key)`).
    pub key: WitnessKey,
    /// Its base URL (`POST <url>/add-checkpoint`).
    pub url: String,
}

impl std::str::FromStr for WitnessTarget {
    type Err = String;

    /// `VKEY@URL`.
    fn from_str(s: &str) -> Result<Self, String> {
        let (vkey, url) = s
            .split_once('@')
            .ok_or_else(|| format!("a witness is VKEY@URL, not {s:?}"))?;
        let key = WitnessKey::from_vkey(vkey).map_err(|e| format!("witness {vkey:?}: {e}"))?;
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!("witness URL {url:?}: http:// or https://"));
        }
        Ok(Self {
            key,
            url: url.trim_end_matches('/').to_string(),
        })
    }
}

/// Asks the witnesses to cosign each new checkpoint.
#[derive(Debug)]
pub struct Cosigner {
    witnesses: Vec<WitnessTarget>,
    /// The size each witness last cosigned, as far as the node knows (0 at start).
    sizes: Vec<u64>,
    tiles: PathBuf,
}

/// What one round did, per witness: its name and its line or why not.
pub type RoundReport = Vec<(String, Result<String, AddCheckpointError>)>;

impl Cosigner {
    /// Witnesses `witnesses`, proofs from the tiles in `tiles`.
    pub fn new(witnesses: Vec<WitnessTarget>, tiles: PathBuf) -> Self {
        let sizes = vec![0; witnesses.len()];
        Self {
            witnesses,
            sizes,
            tiles,
        }
    }

    /// Ask every witness to cosign `note` (the enclave's signed checkpoint): the note with the
    /// cosignatures gathered, and what each witness answered.
    pub fn round(&mut self, note: &str) -> Result<(String, RoundReport), String> {
        let sep = note
            .find("\n\n")
            .ok_or("the checkpoint is not a signed note")?;
        let cp = Checkpoint::from_note_body(note.get(..=sep).unwrap_or_default())
            .map_err(|e| format!("checkpoint: {e}"))?;
        let reader = TileReader::open(&self.tiles).map_err(|e| format!("tiles: {e}"))?;
        let at = reader.at(cp.size);
        let mut report = Vec::new();
        let mut lines = Vec::new();
        for (w, size) in self.witnesses.iter().zip(self.sizes.iter_mut()) {
            let mut answer = Err(AddCheckpointError::Conflict(*size));
            // At most one retry: from the size a 409 names.
            for _ in 0..2 {
                if *size > cp.size {
                    // The witness cosigned a larger tree than this one: nothing to ask.
                    break;
                }
                let proof = if *size == 0 || *size == cp.size {
                    Vec::new()
                } else {
                    match consistency_proof(&at, *size, cp.size) {
                        Ok(p) => p,
                        Err(e) => {
                            answer = Err(AddCheckpointError::Refused {
                                status: 0,
                                body: format!("no consistency proof from the tiles: {e}"),
                            });
                            break;
                        }
                    }
                };
                let req = AddCheckpoint {
                    old_size: *size,
                    proof,
                    checkpoint: note.to_string(),
                };
                answer = add_checkpoint(&w.url, &w.key, &req);
                match &answer {
                    Ok(_) => {
                        *size = cp.size;
                        break;
                    }
                    Err(AddCheckpointError::Conflict(s)) => *size = *s,
                    Err(_) => break,
                }
            }
            if let Ok(line) = &answer {
                lines.push(line.clone());
            }
            report.push((w.key.name().to_string(), answer));
        }
        let cosigned = add_signature_lines(note, &lines).map_err(|e| e.to_string())?;
        Ok((cosigned, report))
    }
}

/// Until `stop`: after each new checkpoint in `shared`, a round; the cosigned note is put in
/// `shared.cosigned_checkpoint`, the round's time and cosignatures in `state`.
pub fn run(
    mut cosigner: Cosigner,
    shared: &Arc<Shared>,
    stop: &AtomicBool,
    poll: Duration,
    state: &NodeState,
) {
    // The note of the last round every witness answered, and when to ask the others again.
    let mut last: Option<String> = None;
    let mut retry_at = Instant::now();
    while !stop.load(Relaxed) {
        let note = shared.checkpoint.read().ok().and_then(|c| c.clone());
        let due = match &note {
            Some(n) => last.as_ref() != Some(n) && Instant::now() >= retry_at,
            None => false,
        };
        let Some(note) = note.filter(|_| due) else {
            std::thread::sleep(poll);
            continue;
        };
        let started = Instant::now();
        match cosigner.round(&note) {
            Ok((cosigned, report)) => {
                let mut complete = true;
                for (name, a) in &report {
                    match a {
                        Ok(_) => {}
                        Err(AddCheckpointError::Inconsistent(why)) => tracing::error!(
                            witness = %name, %why,
                            "a witness refuses the log as inconsistent with what it cosigned: a \
                             fork of this log was shown to it, or it lost its state"
                        ),
                        Err(e) => {
                            complete = false;
                            tracing::warn!(witness = %name, error = %e, "no cosignature; will retry");
                        }
                    }
                }
                state.witness_round_micros.store(
                    u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
                    Relaxed,
                );
                let got = report.iter().filter(|(_, a)| a.is_ok()).count();
                state
                    .witness_cosignatures
                    .store(u64::try_from(got).unwrap_or(u64::MAX), Relaxed);
                if let Ok(mut c) = shared.cosigned_checkpoint.write() {
                    *c = Some(cosigned);
                }
                if complete {
                    last = Some(note);
                } else {
                    // An unreachable witness is asked again (about the newest checkpoint then).
                    retry_at = Instant::now() + RETRY;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "witness round failed; will retry");
                retry_at = Instant::now() + RETRY;
            }
        }
    }
}

/// How long after a round some witness did not answer the node asks again.
const RETRY: Duration = Duration::from_secs(1);

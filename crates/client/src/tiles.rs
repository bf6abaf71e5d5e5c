//! The log's C2SP tiles read from the node (`GET /tile/…`) as a [`HashReader`], so the client
//! computes its own inclusion and consistency proofs with `sealbridge-log` — nothing the node
//! computed is trusted, only checked: a wrong tile gives a proof that does not verify against
//! the signed checkpoint or the chain's anchor. And [`wait_final`]: a receipt is final once an
//! on-chain statement anchors a log that holds it.

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use sealbridge_chain::{Chain, Sealbridge};
use sealbridge_log::{
    Error as LogError, Hash, HashReader, consistency_proof, inclusion_proof, merkle_root,
    tile::{TILE_WIDTH, parse_tile, tile_path, tile_width},
};

use crate::verify::{self, Checkpoint, Receipt, UNLOGGED_SEQUENCE, VerifyError};
use crate::{ClientError, NodeClient};

/// The node's tiles for the tree of `size` leaves (cached per tile while it lives).
#[derive(Debug)]
pub struct HttpTiles<'a> {
    node: &'a NodeClient,
    size: u64,
    cache: RefCell<HashMap<(u8, u64), Vec<Hash>>>,
}

impl<'a> HttpTiles<'a> {
    /// The tree of `size` leaves (the size of a verified checkpoint).
    pub fn new(node: &'a NodeClient, size: u64) -> Self {
        Self {
            node,
            size,
            cache: RefCell::default(),
        }
    }

    /// Hashes of tile (`level`, `index`), `width` of them: the partial tile, or the prefix of
    /// the full tile once the log grew past it.
    fn hashes(&self, level: u8, index: u64, width: u64) -> Result<Vec<Hash>, LogError> {
        if let Some(h) = self.cache.borrow().get(&(level, index)) {
            return Ok(h.clone());
        }
        let unavailable = LogError::NodeUnavailable { level, index };
        let mut tries = vec![width];
        if width < TILE_WIDTH {
            tries.push(TILE_WIDTH);
        }
        for w in tries {
            let path = format!("/{}", tile_path(level, index, w));
            let Ok((200, bytes)) = self.node.get_bytes(&path) else {
                continue;
            };
            let mut hashes = parse_tile(&bytes, w)?;
            hashes.truncate(usize::try_from(width).map_err(|_| unavailable)?);
            self.cache
                .borrow_mut()
                .insert((level, index), hashes.clone());
            return Ok(hashes);
        }
        Err(unavailable)
    }
}

impl HashReader for HttpTiles<'_> {
    fn size(&self) -> u64 {
        self.size
    }

    fn node(&self, level: u8, index: u64) -> Result<Hash, LogError> {
        index
            .checked_add(1)
            .and_then(|i| i.checked_shl(u32::from(level)))
            .filter(|e| *e <= self.size && level < 64)
            .ok_or(LogError::NodeUnavailable { level, index })?;
        // Tree level `level` = 8·tl + r: 2^r consecutive hashes of tile level tl.
        let (tl, r) = (level / 8, level % 8);
        let first = index << r;
        let (n, off) = (first / TILE_WIDTH, first % TILE_WIDTH);
        let hashes = self.hashes(tl, n, tile_width(self.size, tl, n))?;
        let span = usize::try_from(off)
            .ok()
            .and_then(|o| hashes.get(o..o.checked_add(1usize << r)?))
            .ok_or(LogError::NodeUnavailable { level, index })?;
        Ok(merkle_root(span))
    }
}

/// A receipt the chain has made final.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Final {
    /// The receipt (verified under the attested key).
    pub receipt: Receipt,
    /// The checkpoint the inclusion was shown against (verified under the attested key).
    pub checkpoint: Checkpoint,
    /// The settlement contract's `logSize` when it was shown.
    pub anchor_size: u64,
    /// Its `logRoot`.
    pub anchor_root: Hash,
    /// The settlement contract's last settled statement then.
    pub statement_sequence: u64,
}

/// Wait (up to `timeout`, running `wait` between polls) until the chain anchors the receipt of
/// `envelope_id`: the settlement contract's `(logSize, logRoot)` covers the receipt's sequence,
/// and — with proofs computed from the node's tiles — the receipt is in the tree of a checkpoint
/// signed by the attested key, of which the anchored tree is a prefix (consistency proof). The
/// node must have been attested first ([`NodeClient::attest`]) and `sb` tied to it
/// ([`verify::verify_enclave_on_chain`]).
///
/// # Errors
/// [`ClientError::Verify`] as soon as anything fails to verify (a lie is not waited out: an
/// unlogged rejection, a receipt that does not verify, a proof that does not lead to the signed
/// checkpoint or an anchor that is not its prefix); [`ClientError::Timeout`].
pub fn wait_final<C: Chain>(
    node: &NodeClient,
    sb: &mut Sealbridge<C>,
    envelope_id: &[u8; 32],
    timeout: Duration,
    mut wait: impl FnMut(&mut Sealbridge<C>),
) -> Result<Final, ClientError> {
    let deadline = Instant::now() + timeout;
    loop {
        let info = node.receipt_info_raw(envelope_id)?;
        let (receipt, bytes, _) = node.verify_receipt_info(envelope_id, &info)?;
        let seq = receipt.sequence;
        if seq == UNLOGGED_SEQUENCE {
            return Err(VerifyError::Unlogged.into());
        }
        let chain = |what: &str, e: sealbridge_chain::ContractError| {
            ClientError::Chain(format!("{what}: {e}"))
        };
        let anchor_size = sb.log_size().map_err(|e| chain("logSize", e))?;
        if anchor_size > seq {
            let anchor_root = Hash(sb.log_root().map_err(|e| chain("logRoot", e))?.0);
            let statement_sequence = sb.last_sequence().map_err(|e| chain("lastSequence", e))?;
            let checkpoint = node.checkpoint()?;
            if checkpoint.size >= anchor_size {
                let tiles = HttpTiles::new(node, checkpoint.size);
                let proofs = inclusion_proof(&tiles, seq, checkpoint.size).and_then(|i| {
                    let c = if anchor_size == checkpoint.size {
                        Vec::new()
                    } else {
                        consistency_proof(&tiles, anchor_size, checkpoint.size)?
                    };
                    Ok((i, c))
                });
                // Tiles that cannot be read now (the log moving on) are tried again.
                if let Ok((inclusion, consistency)) = proofs {
                    verify::verify_receipt_inclusion(
                        &receipt,
                        &bytes,
                        seq,
                        &inclusion,
                        &checkpoint,
                    )?;
                    verify::verify_anchor(anchor_size, &anchor_root, &consistency, &checkpoint)?;
                    return Ok(Final {
                        receipt,
                        checkpoint,
                        anchor_size,
                        anchor_root,
                        statement_sequence,
                    });
                }
            }
        }
        if Instant::now() >= deadline {
            return Err(ClientError::Timeout(format!(
                "receipt {} (log entry {seq}): no on-chain anchor covers it after {} s (the \
                 chain anchors {anchor_size} entries)",
                hex::encode(envelope_id),
                timeout.as_secs()
            )));
        }
        wait(sb);
        std::thread::sleep(Duration::from_millis(200));
    }
}

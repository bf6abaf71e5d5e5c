//! Kept receipts: the client's own copy of every verified receipt, the defence against a host
//! that rolls the log back before it is anchored (`sealbridge audit --receipts DIR` checks each
//! against the log the host serves).
//!
//! Format: one file per envelope in the directory, named `<envelope id, 64 hex>.receipt`,
//! holding the receipt's COSE_Sign1 bytes exactly as the enclave signed them. A file is written
//! to a temporary name and renamed, so a crash never leaves half a receipt under the final name.
//! A receipt already kept is never replaced: re-submitting an envelope answered with the same
//! bytes leaves the file as it is, and a *different* receipt for the same envelope (say an
//! unlogged `expired` or `replayed` rejection after an acceptance the host later rolled back) is
//! kept beside it as `<envelope id>.<n>.receipt`, so the audit still sees the first one.

use std::path::{Path, PathBuf};

use crate::ClientError;
use crate::verify::Receipt;

/// File name suffix of a kept receipt.
pub const SUFFIX: &str = ".receipt";

/// The file a receipt is kept in.
pub fn path(dir: &Path, receipt: &Receipt) -> PathBuf {
    dir.join(format!(
        "{}{SUFFIX}",
        hex::encode(receipt.envelope_id.as_bytes())
    ))
}

/// Keep `bytes` (the verified receipt `receipt`) in `dir`, creating it if needed.
pub fn keep(dir: &Path, bytes: &[u8], receipt: &Receipt) -> Result<PathBuf, ClientError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ClientError::Keep { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let stem = hex::encode(receipt.envelope_id.as_bytes());
    let mut path = path(dir, receipt);
    for n in 1u32.. {
        match std::fs::read(&path) {
            Ok(existing) if existing == bytes => return Ok(path),
            Ok(_) => path = dir.join(format!("{stem}.{n}{SUFFIX}")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
            Err(e) => return Err(io(&path)(e)),
        }
    }
    let tmp = path.with_extension("receipt.tmp");
    std::fs::write(&tmp, bytes).map_err(io(&tmp))?;
    std::fs::rename(&tmp, &path).map_err(io(&path))?;
    Ok(path)
}

/// Every kept receipt in `dir`: (file, bytes), in file name order.
pub fn read(dir: &Path) -> Result<Vec<(PathBuf, Vec<u8>)>, ClientError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ClientError::Keep { path, source }
    };
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).map_err(io(dir))? {
        let p = e.map_err(io(dir))?.path();
        if p.to_string_lossy().ends_with(SUFFIX) {
            let bytes = std::fs::read(&p).map_err(io(&p))?;
            out.push((p, bytes));
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use sealbridge_proto::{EnvelopeId, Epoch, ReasonCode};
    use sealbridge_seal::receipt::{Receipt, ReceiptStatus, UNLOGGED_SEQUENCE};

    use super::*;

    #[test]
    fn a_kept_receipt_is_never_replaced_by_another_for_the_same_envelope() {
        let dir = tempfile::tempdir().unwrap();
        let id = EnvelopeId::of(b"envelope");
        let accepted = Receipt {
            envelope_id: id,
            sequence: 7,
            status: ReceiptStatus::Accepted,
            epoch: Epoch(1),
            enclave_time: 100,
        };
        let later = Receipt {
            sequence: UNLOGGED_SEQUENCE,
            status: ReceiptStatus::Rejected(ReasonCode::Expired),
            ..accepted
        };
        let first = keep(dir.path(), b"accepted bytes", &accepted).unwrap();
        // The same bytes again: the same file, untouched.
        assert_eq!(
            keep(dir.path(), b"accepted bytes", &accepted).unwrap(),
            first
        );
        // Another receipt for the same envelope: kept beside it, the first one stays.
        let second = keep(dir.path(), b"expired bytes", &later).unwrap();
        assert_ne!(second, first);
        assert_eq!(std::fs::read(&first).unwrap(), b"accepted bytes");
        let all = read(dir.path()).unwrap();
        assert_eq!(all.len(), 2, "{all:?}");
        assert_eq!(keep(dir.path(), b"expired bytes", &later).unwrap(), second);
    }
}

//! Kept receipts: the client's own copy of every verified receipt, the defence against a host
//! that rolls the log back before it is anchored (`sealbridge audit --receipts DIR` checks each
//! against the log the host serves).
//!
//! Format: one file per envelope in the directory, named `<envelope id, 64 hex>.receipt`,
//! holding the receipt's COSE_Sign1 bytes exactly as the enclave signed them. A file is written
//! to a temporary name and renamed, so a crash never leaves half a receipt under the final name.
//! Re-submitting an envelope rewrites the same file with the same bytes.

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
    let path = path(dir, receipt);
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

//! The crate's one error type.

/// Errors from `sealbridge-log`.
///
/// Caller mistakes (`InvalidArgument`, `InvalidName`, `TreeFull`) are kept apart from bad input
/// (`Malformed*`, `*ProofInvalid`, `BadSignature`, `Tile*`). Proof and signature failures do
/// not say which check failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The caller passed arguments that cannot describe a valid request
    /// (e.g. a leaf index beyond the tree size, `size1 > size2`).
    #[error("invalid argument: {0}")]
    InvalidArgument(&'static str),
    /// The tree reached its maximum size (2^63 leaves).
    #[error("tree is full")]
    TreeFull,
    /// A key name or checkpoint origin that the signed-note format cannot carry.
    #[error("invalid name: {0}")]
    InvalidName(&'static str),
    /// An inclusion proof did not verify.
    #[error("inclusion proof does not verify")]
    InclusionProofInvalid,
    /// A consistency proof did not verify.
    #[error("consistency proof does not verify")]
    ConsistencyProofInvalid,
    /// Serialized compact range, hash or key bytes were malformed.
    #[error("malformed encoding: {0}")]
    Malformed(&'static str),
    /// A signed note was larger than [`crate::MAX_NOTE_LEN`] or carried more than
    /// [`crate::MAX_NOTE_SIGNATURES`] signatures.
    #[error("note too large")]
    NoteTooLarge,
    /// A signed note or checkpoint body did not follow C2SP signed-note / tlog-checkpoint.
    #[error("malformed note: {0}")]
    MalformedNote(&'static str),
    /// No signature by the expected key verified (or one by the expected key failed).
    #[error("note signature does not verify")]
    BadSignature,
    /// The checkpoint's origin is not the one the caller expected.
    #[error("unexpected checkpoint origin")]
    WrongOrigin,
    /// A hash needed for a proof or root is not available from the reader.
    #[error("node not available: level {level}, index {index}")]
    NodeUnavailable {
        /// Level of the subtree (0 = leaves).
        level: u8,
        /// Index of the subtree within its level.
        index: u64,
    },
    /// A tile or entry bundle is malformed or does not hash to what the tree above commits to.
    #[error("tile {path} is corrupt: {reason}")]
    TileCorrupt {
        /// The tile's path relative to the log directory.
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The tiles do not produce the checkpoint's root hash.
    #[error("tiles do not match the checkpoint root")]
    RootMismatch,
    /// An entry is too large for a tlog-tiles entry bundle (max 65535 bytes).
    #[error("entry too large: {0} bytes (max 65535)")]
    EntryTooLarge(usize),
    /// A filesystem error in the host-side tile store.
    #[cfg(feature = "tiles-fs")]
    #[error("tile store I/O: {0}")]
    Io(#[from] std::io::Error),
}

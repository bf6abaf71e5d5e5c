//! The enclave signs transparency-log checkpoints (C2SP tlog-checkpoint in the C2SP signed-note
//! format) with its instance Ed25519 key. The note's key name is the log origin, which names the
//! deployment (chain id and settlement contract), so a checkpoint of one deployment can never be
//! passed off as another's.

use alloy_primitives::Address;
use sealbridge_log::{Checkpoint, Hash, NoteSigner, sign_checkpoint};
use sealbridge_seal::keys::Ed25519SigningKey;

use crate::Error;

/// The log origin of a deployment: `sealbridge/<chain id>/<settlement address, lower-case hex>`.
pub fn log_origin(chain_id: u64, settlement: Address) -> String {
    format!("sealbridge/{chain_id}/{settlement:#x}")
}

struct InstanceNoteSigner<'a> {
    name: &'a str,
    key: &'a Ed25519SigningKey,
}

impl NoteSigner for InstanceNoteSigner<'_> {
    fn name(&self) -> &str {
        self.name
    }

    fn public_key(&self) -> [u8; 32] {
        self.key.public().0
    }

    fn sign(&self, msg: &[u8]) -> [u8; 64] {
        // C2SP signed-note: Ed25519 over the note text as is; the key name (the origin) and the
        // key id in the signature line are its domain separation.
        self.key.sign_raw(msg).0
    }
}

/// Sign the checkpoint `(origin, size, root)` as a C2SP signed note.
pub fn sign(key: &Ed25519SigningKey, origin: &str, size: u64, root: Hash) -> Result<String, Error> {
    sign_checkpoint(
        &Checkpoint::new(origin, size, root),
        &InstanceNoteSigner { name: origin, key },
    )
    .map_err(|_| Error::Malformed("checkpoint origin"))
}

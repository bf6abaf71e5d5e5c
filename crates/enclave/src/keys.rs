//! Instance keys (DESIGN §3): generated inside the enclave at boot, never exported.
//!
//! - Ed25519: receipts, checkpoints, epoch announcements.
//! - secp256k1: settlement statements; its Ethereum address is the on-chain identity.

use alloy_primitives::{Address, B256};
use k256::ecdsa::SigningKey as Secp256k1SigningKey;
use rand_core::CryptoRngCore;
use sealbridge_proto::InstanceId;
use sealbridge_seal::keys::{Ed25519PublicKey, Ed25519SigningKey};

use crate::Error;

/// Version byte of the canonical key bundle encoding.
pub const KEY_BUNDLE_VERSION: u8 = 1;
/// Magic of the canonical key bundle encoding.
pub const KEY_BUNDLE_MAGIC: &[u8; 4] = b"SBKB";

/// The public half of the instance keys, as bound into attestation evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KeyBundle {
    /// Ed25519 public key (receipts, checkpoints, announcements).
    pub ed25519: [u8; 32],
    /// Ethereum address of the secp256k1 statement key.
    pub address: Address,
}

impl KeyBundle {
    /// Canonical bytes: `"SBKB" ‖ version (1) ‖ ed25519 (32) ‖ address (20)` — 57 bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(57);
        out.extend_from_slice(KEY_BUNDLE_MAGIC);
        out.push(KEY_BUNDLE_VERSION);
        out.extend_from_slice(&self.ed25519);
        out.extend_from_slice(self.address.as_slice());
        out
    }

    /// Strict parse of [`KeyBundle::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.len() != 57 {
            return Err(Error::Malformed("key bundle length"));
        }
        let (magic, rest) = bytes.split_at(4);
        let (version, rest) = rest.split_at(1);
        if magic != KEY_BUNDLE_MAGIC || version != [KEY_BUNDLE_VERSION] {
            return Err(Error::Malformed("key bundle magic or version"));
        }
        let (ed, addr) = rest.split_at(32);
        let mut ed25519 = [0u8; 32];
        ed25519.copy_from_slice(ed);
        Ok(Self {
            ed25519,
            address: Address::from_slice(addr),
        })
    }

    /// SHA-256 of the canonical bytes (the `keyBundleHash` of an attestation result).
    pub fn hash(&self) -> B256 {
        B256::from(sealbridge_attest::evidence_hash(&self.to_bytes()))
    }

    /// The instance id: SHA-256 of the Ed25519 public key.
    pub fn instance_id(&self) -> InstanceId {
        Ed25519PublicKey::from_bytes(self.ed25519).instance_id()
    }
}

/// The private instance keys. Neither key can be printed (both types redact `Debug`).
pub struct InstanceKeys {
    pub(crate) ed25519: Ed25519SigningKey,
    pub(crate) secp256k1: Secp256k1SigningKey,
}

impl std::fmt::Debug for InstanceKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstanceKeys")
            .field("bundle", &self.bundle())
            .finish_non_exhaustive()
    }
}

impl InstanceKeys {
    /// Generate fresh keys from the enclave's randomness.
    pub fn generate(rng: &mut impl CryptoRngCore) -> Self {
        Self {
            ed25519: Ed25519SigningKey::generate(rng),
            secp256k1: Secp256k1SigningKey::random(rng),
        }
    }

    /// The public key bundle.
    pub fn bundle(&self) -> KeyBundle {
        KeyBundle {
            ed25519: *self.ed25519.public().as_bytes(),
            address: Address::from_public_key(self.secp256k1.verifying_key()),
        }
    }

    /// Sign an EIP-712 digest: 65 bytes `r ‖ s ‖ v` with `v ∈ {27, 28}` and low `s`, the form
    /// OpenZeppelin's `ECDSA.recover` and `eth_signTypedData_v4` use.
    pub fn sign_eip712(&self, digest: &B256) -> Result<[u8; 65], Error> {
        let (sig, recid) = self
            .secp256k1
            .sign_prehash_recoverable(digest.as_slice())
            .map_err(|_| Error::Signing)?;
        // k256 produces low-s signatures; normalise defensively and flip the recovery id if needed.
        let (sig, recid) = match sig.normalize_s() {
            Some(normalised) => (
                normalised,
                k256::ecdsa::RecoveryId::new(!recid.is_y_odd(), recid.is_x_reduced()),
            ),
            None => (sig, recid),
        };
        let mut out = [0u8; 65];
        out[..64].copy_from_slice(&sig.to_bytes());
        out[64] = 27 + recid.to_byte();
        Ok(out)
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::{b256, keccak256};

    /// EIP-712 spec example (`vectors/eip712/eip712_spec_example_mail.json`): the
    /// key keccak256("cow") signs digest 0xbe60…7bd2 as v = 28, r = 0x4355…1c9d,
    /// s = 0x0729…1562 (RFC 6979, low s) — our signer must produce exactly that.
    #[test]
    fn signs_the_eip712_spec_example() {
        let secret = keccak256(b"cow");
        let keys = InstanceKeys {
            ed25519: Ed25519SigningKey::from_seed([1; 32]),
            secp256k1: Secp256k1SigningKey::from_slice(secret.as_slice()).unwrap(),
        };
        assert_eq!(
            format!("{:?}", keys.bundle().address).to_lowercase(),
            "0xcd2a3d9f938e13cd947ec05abc7fe734df8dd826"
        );
        let digest = b256!("be609aee343fb3c4b28e1df9e632fca64fcfaede20f02e86244efddf30957bd2");
        let sig = keys.sign_eip712(&digest).unwrap();
        assert_eq!(
            alloy_primitives::hex::encode(sig),
            "4355c47d63924e8a72e509b65029052eb6c299d53a04e167c5775fd466751c9d\
             07299936d304c153f6443dfa05f40ff007d72911b6f72307f996231605b915621c"
        );
    }

    #[test]
    fn key_bundle_round_trips_and_rejects_bad_bytes() {
        let bundle = KeyBundle {
            ed25519: [3; 32],
            address: Address::repeat_byte(4),
        };
        let bytes = bundle.to_bytes();
        assert_eq!(KeyBundle::from_bytes(&bytes).unwrap(), bundle);
        assert!(KeyBundle::from_bytes(&bytes[..56]).is_err());
        let mut bad = bytes.clone();
        bad[0] ^= 1;
        assert!(KeyBundle::from_bytes(&bad).is_err());
        let mut bad = bytes;
        bad[4] = 2;
        assert!(KeyBundle::from_bytes(&bad).is_err());
    }
}

//! Signed receipts (DESIGN §5): the enclave's proof that it received an envelope, and whether
//! it accepted it.
//!
//! A receipt is a tagged COSE_Sign1 (RFC 9052 §4.2, tag 18), deterministically encoded:
//!
//! ```text
//! 18([
//!   protected:   bstr .cbor { 1 (alg): -8 (EdDSA), 4 (kid): bstr(32) instance id },
//!   unprotected: {},
//!   payload:     bstr .cbor [ 1 (version), bstr(32) envelope id, uint sequence,
//!                             uint status (0 accepted, 1 rejected),
//!                             uint reason (0 if accepted, else the ReasonCode),
//!                             uint epoch, uint enclave_time (unix seconds) ],
//!   signature:   bstr(64) Ed25519 over
//!                Sig_structure = ["Signature1", protected, external_aad, payload]
//! ])
//! ```
//!
//! with `external_aad = "sealbridge/v1/receipt"` ([`RECEIPT_CONTEXT`]), so that a receipt
//! signature can never be taken for a signature over anything else (RFC 9052 §4.4).

use sealbridge_proto::{
    EnvelopeId, Epoch, InstanceId, ReasonCode,
    cbor::{Decoder, Encoder},
    contexts::RECEIPT_CONTEXT,
};

use crate::{
    Error,
    keys::{Ed25519PublicKey, Ed25519SigningKey},
};

/// Receipt payload format version.
pub const RECEIPT_VERSION: u64 = 1;
/// COSE_Sign1 tag (RFC 9052 §2).
pub const COSE_SIGN1_TAG: u64 = 18;
/// COSE algorithm EdDSA (RFC 9053 §2.2).
pub const COSE_ALG_EDDSA: i64 = -8;
/// Receipts are small; anything bigger is rejected before decoding.
pub const MAX_RECEIPT_BYTES: usize = 512;
/// The `sequence` of a rejected receipt the enclave did not append to its log (a rejection of
/// nothing a participant signed fresh: it is counted into a rejection summary entry instead).
/// No log index ever reaches it.
pub const UNLOGGED_SEQUENCE: u64 = u64::MAX;

/// Accepted, or rejected with a reason.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum ReceiptStatus {
    /// The envelope is durable and will be settled exactly once.
    Accepted,
    /// The envelope was rejected and changed nothing.
    Rejected(ReasonCode),
}

/// The content of a receipt.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Receipt {
    /// SHA-256 of the envelope bytes.
    pub envelope_id: EnvelopeId,
    /// Log index of the receipt.
    pub sequence: u64,
    /// Outcome.
    pub status: ReceiptStatus,
    /// Epoch of the key the envelope was addressed to (or the current one).
    pub epoch: Epoch,
    /// Enclave time (unix seconds) when the receipt was issued.
    pub enclave_time: u64,
}

fn protected_header(instance: &InstanceId) -> Vec<u8> {
    let mut e = Encoder::with_capacity(40);
    e.map(2)
        .int(1)
        .int(COSE_ALG_EDDSA)
        .int(4)
        .bytes(instance.as_bytes());
    e.into_bytes()
}

/// `Sig_structure` for COSE_Sign1 (RFC 9052 §4.4).
fn sig_structure(protected: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut e = Encoder::with_capacity(32 + protected.len() + payload.len());
    e.array(4)
        .text("Signature1")
        .bytes(protected)
        .bytes(RECEIPT_CONTEXT)
        .bytes(payload);
    e.into_bytes()
}

impl Receipt {
    /// The deterministic CBOR payload (module docs).
    #[must_use]
    pub fn payload_bytes(&self) -> Vec<u8> {
        let (status, reason) = match self.status {
            ReceiptStatus::Accepted => (0, 0),
            ReceiptStatus::Rejected(r) => (1, u64::from(r.code())),
        };
        let mut e = Encoder::with_capacity(64);
        e.array(7)
            .uint(RECEIPT_VERSION)
            .bytes(self.envelope_id.as_bytes())
            .uint(self.sequence)
            .uint(status)
            .uint(reason)
            .uint(self.epoch.0)
            .uint(self.enclave_time);
        e.into_bytes()
    }

    fn from_payload(payload: &[u8]) -> Result<Self, Error> {
        let mut d = Decoder::new(payload);
        d.array_of(7)?;
        let version = d.uint()?;
        if version != RECEIPT_VERSION {
            return Err(Error::UnsupportedVersion(version));
        }
        let envelope_id = EnvelopeId(d.bytes_fixed()?);
        let sequence = d.uint()?;
        let status = d.uint()?;
        let reason = d.uint()?;
        let epoch = Epoch(d.uint()?);
        let enclave_time = d.uint()?;
        d.finish()?;
        let status = match (status, reason) {
            (0, 0) => ReceiptStatus::Accepted,
            (1, r) => ReceiptStatus::Rejected(
                u16::try_from(r)
                    .ok()
                    .and_then(|r| ReasonCode::from_code(r).ok())
                    .ok_or(Error::Malformed("unknown receipt reason code"))?,
            ),
            _ => return Err(Error::Malformed("invalid receipt status")),
        };
        Ok(Self {
            envelope_id,
            sequence,
            status,
            epoch,
            enclave_time,
        })
    }

    /// Signs the receipt with the instance key, producing the COSE_Sign1 bytes.
    #[must_use]
    pub fn sign(&self, key: &Ed25519SigningKey) -> Vec<u8> {
        let protected = protected_header(&key.public().instance_id());
        let payload = self.payload_bytes();
        let sig = key.sign_raw(&sig_structure(&protected, &payload));
        let mut e = Encoder::with_capacity(protected.len() + payload.len() + 80);
        e.tag(COSE_SIGN1_TAG)
            .array(4)
            .bytes(&protected)
            .map(0)
            .bytes(&payload)
            .bytes(sig.as_bytes());
        e.into_bytes()
    }

    /// Parses and verifies a receipt issued by the holder of `key`.
    ///
    /// # Errors
    /// [`Error::Oversized`], [`Error::Malformed`] (including any non-deterministic encoding),
    /// [`Error::BadSignature`] (also when the `kid` names another instance),
    /// [`Error::UnsupportedVersion`].
    pub fn verify(bytes: &[u8], key: &Ed25519PublicKey) -> Result<Receipt, Error> {
        if bytes.len() > MAX_RECEIPT_BYTES {
            return Err(Error::Oversized {
                len: bytes.len(),
                max: MAX_RECEIPT_BYTES,
            });
        }
        let mut d = Decoder::new(bytes);
        if d.tag()? != COSE_SIGN1_TAG {
            return Err(Error::Malformed("not a COSE_Sign1"));
        }
        d.array_of(4)?;
        let protected = d.bytes()?;
        if d.map()? != 0 {
            return Err(Error::Malformed("receipt unprotected header must be empty"));
        }
        let payload = d.bytes()?;
        let sig: [u8; 64] = d.bytes_fixed()?;
        d.finish()?;

        let mut h = Decoder::new(protected);
        if h.map()? != 2 || h.int()? != 1 || h.int()? != COSE_ALG_EDDSA || h.int()? != 4 {
            return Err(Error::Malformed("receipt protected header"));
        }
        let kid = InstanceId(h.bytes_fixed()?);
        h.finish()?;
        if kid != key.instance_id() {
            return Err(Error::BadSignature);
        }
        key.verify_raw(&sig_structure(protected, payload), sig)?;
        Self::from_payload(payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_is_as_documented() {
        let key = Ed25519SigningKey::from_seed([1; 32]);
        let r = Receipt {
            envelope_id: EnvelopeId([0xee; 32]),
            sequence: 5,
            status: ReceiptStatus::Rejected(ReasonCode::Replayed),
            epoch: Epoch(2),
            enclave_time: 1_700_000_000,
        };
        assert_eq!(
            hex::encode(r.payload_bytes()),
            format!("87015820{}050109021a6553f100", "ee".repeat(32))
        );
        let bytes = r.sign(&key);
        // d2 (tag 18) 84 (array 4) 58 26 (bstr 38) a2 01 27 04 58 20 …
        assert!(hex::encode(&bytes).starts_with("d2845826a20127045820"));
        assert_eq!(Receipt::verify(&bytes, &key.public()).unwrap(), r);
        assert_eq!(r.sign(&key), bytes, "deterministic");
    }

    #[test]
    fn wrong_key_rejected() {
        let key = Ed25519SigningKey::from_seed([1; 32]);
        let other = Ed25519SigningKey::from_seed([2; 32]);
        let r = Receipt {
            envelope_id: EnvelopeId([1; 32]),
            sequence: 0,
            status: ReceiptStatus::Accepted,
            epoch: Epoch(0),
            enclave_time: 0,
        };
        assert_eq!(
            Receipt::verify(&r.sign(&key), &other.public()),
            Err(Error::BadSignature)
        );
    }
}

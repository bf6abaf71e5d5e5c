//! Sealed envelopes (DESIGN §5): a tagged COSE_Encrypt0 (RFC 9052 §5.2, tag 16) whose content
//! is encrypted with HPKE integrated encryption (draft-ietf-cose-hpke §3.1.1 "HPKE Integrated
//! Encryption Mode"), sign-then-encrypt.
//!
//! ```text
//! 16([
//!   protected:   bstr .cbor header map (see `header` module docs: alg, kid, version, suite,
//!                instance, epoch, program, nonce, expires_at, trace_id),
//!   unprotected: { -4 (ek): bstr HPKE enc: 32 bytes for the X25519 suites, 1120 for X-Wing },
//!   ciphertext:  bstr  HPKE Seal(pkR, info = h'', aad = Enc_structure, pt)
//! ])
//! Enc_structure = ["Encrypt0", protected, external_aad = h'']        (RFC 9052 §5.3)
//! pt            = [sender_id bstr(32), signature bstr(64), payload bstr]
//! signature     = Ed25519(sender, ["sealbridge/v1/envelope-sender", protected, payload])
//! ```
//!
//! Every CBOR item is deterministically encoded (RFC 8949 §4.2.1) and parsing rejects anything
//! else, so an envelope has exactly one encoding and [`EnvelopeId`] (SHA-256 of the bytes) is
//! a stable identifier. The host sees the header but never the sender or the payload.
//!
//! Versions (docs/PROTOCOL.md "Versions and the N−1 window"): version 2 (this code) lets `ek`
//! be as long as the suite's `Nenc` and adds the X-Wing suite; version 1, sealed by the
//! previous release with the X25519 suites only, has exactly the same layout, is still read,
//! and can still be sealed (a header with `version: 1`) for clients pinned to it.

mod header;

use core::fmt;

use rand_core::CryptoRngCore;
use sealbridge_proto::{
    EnvelopeHeader, EnvelopeId, KemKeyId, MAX_ENVELOPE_BYTES, SenderId, Suite,
    cbor::{Decoder, Encoder},
    contexts::ENVELOPE_SENDER_CONTEXT,
};
use zeroize::Zeroizing;

pub use header::{
    LABEL_ALG, LABEL_EK, LABEL_EPOCH, LABEL_EXPIRES_AT, LABEL_INSTANCE, LABEL_KID, LABEL_NONCE,
    LABEL_PROGRAM, LABEL_SUITE, LABEL_TRACE_ID, LABEL_VERSION,
};

use crate::{
    Error, OpenError, hpke,
    hpke::xwing::{XWING_N_ENC, XWingPublicKey, XWingSecretKey},
    keys::{Ed25519PublicKey, Ed25519SigningKey, KemPublicKey, KemSecretKey},
};

/// COSE_Encrypt0 tag (RFC 9052 §2).
pub const COSE_ENCRYPT0_TAG: u64 = 16;
/// AEAD tag length of every implemented suite.
const TAG_LEN: usize = 16;

/// The HPKE AEAD of an implemented suite; `None` for registered-but-unimplemented suites.
pub(crate) fn hpke_aead(suite: Suite) -> Option<hpke::Aead> {
    match suite {
        Suite::X25519Sha256Aes128Gcm => Some(hpke::Aead::Aes128Gcm),
        Suite::X25519Sha256ChaCha20Poly1305 => Some(hpke::Aead::ChaCha20Poly1305),
        Suite::XWingAes256Gcm => Some(hpke::Aead::Aes256Gcm),
        _ => None,
    }
}

/// Whether `suite` uses the X-Wing KEM (else DHKEM(X25519)).
const fn is_xwing(suite: Suite) -> bool {
    matches!(suite, Suite::XWingAes256Gcm)
}

/// The HPKE `Nenc` of a suite's KEM: the length of `ek`.
#[must_use]
pub const fn enc_len(suite: Suite) -> usize {
    if is_xwing(suite) {
        XWING_N_ENC
    } else {
        hpke::N_ENC
    }
}

/// The epoch public key an envelope is sealed to: the KEM of the header's suite decides which.
#[derive(Debug, Clone, Copy)]
pub enum Recipient<'a> {
    /// DHKEM(X25519) key (suites 1 and 2).
    X25519(&'a KemPublicKey),
    /// X-Wing key (suite 3).
    XWing(&'a XWingPublicKey),
}

impl Recipient<'_> {
    /// The `kid` envelopes sealed to this key carry.
    #[must_use]
    pub fn key_id(&self) -> KemKeyId {
        match self {
            Recipient::X25519(k) => k.key_id(),
            Recipient::XWing(k) => k.key_id(),
        }
    }
}

/// The epoch private key an envelope is opened with.
#[derive(Debug, Clone, Copy)]
pub enum RecipientSecret<'a> {
    /// DHKEM(X25519) key.
    X25519(&'a KemSecretKey),
    /// X-Wing key.
    XWing(&'a XWingSecretKey),
}

/// `Enc_structure` for COSE_Encrypt0 with empty external_aad (RFC 9052 §5.3): the HPKE aad.
fn enc_structure(protected: &[u8]) -> Vec<u8> {
    let mut e = Encoder::with_capacity(protected.len() + 16);
    e.array(3).text("Encrypt0").bytes(protected).bytes(&[]);
    e.into_bytes()
}

/// The structure the sender signs: `["sealbridge/v1/envelope-sender", protected, payload]`.
fn sender_sig_structure(protected: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut e = Encoder::with_capacity(protected.len() + payload.len() + 48);
    e.array(3)
        .text_bytes(ENVELOPE_SENDER_CONTEXT)
        .bytes(protected)
        .bytes(payload);
    e.into_bytes()
}

/// Seals `payload` from `sender` to the epoch key `recipient` (module docs).
///
/// # Errors
/// [`Error::UnsupportedVersion`] / [`Error::UnsupportedSuite`] for a header this code cannot
/// produce; [`Error::Oversized`] if the envelope would exceed [`MAX_ENVELOPE_BYTES`];
/// [`Error::InvalidKey`] for a low-order recipient key.
pub fn seal(
    header: &EnvelopeHeader,
    recipient: &KemPublicKey,
    sender: &Ed25519SigningKey,
    payload: &[u8],
    rng: &mut impl CryptoRngCore,
) -> Result<Vec<u8>, Error> {
    seal_inner(
        header,
        Recipient::X25519(recipient),
        sender,
        sender.public().sender_id(),
        payload,
        rng,
    )
}

/// [`seal`] to a key of either KEM: the header's suite must use the recipient's KEM.
///
/// # Errors
/// As [`seal`]; [`Error::UnsupportedSuite`] when the suite's KEM is not the recipient's, or
/// for X-Wing in a version-1 header (version 1 had only the X25519 suites).
pub fn seal_to(
    header: &EnvelopeHeader,
    recipient: Recipient<'_>,
    sender: &Ed25519SigningKey,
    payload: &[u8],
    rng: &mut impl CryptoRngCore,
) -> Result<Vec<u8>, Error> {
    seal_inner(
        header,
        recipient,
        sender,
        sender.public().sender_id(),
        payload,
        rng,
    )
}

/// Deliberately invalid envelopes, for tests and demos of the rejection paths.
pub mod danger {
    use super::*;

    /// [`seal`], but the plaintext names `claimed` as the sender while `signer` signs: the
    /// enclave must answer `bad-sender-signature`. Anyone can build such an envelope (it needs no
    /// secret of the claimed sender), so exposing this weakens nothing.
    ///
    /// # Errors
    /// As [`seal`].
    pub fn seal_claiming_sender(
        header: &EnvelopeHeader,
        recipient: &KemPublicKey,
        signer: &Ed25519SigningKey,
        claimed: SenderId,
        payload: &[u8],
        rng: &mut impl CryptoRngCore,
    ) -> Result<Vec<u8>, Error> {
        seal_inner(
            header,
            Recipient::X25519(recipient),
            signer,
            claimed,
            payload,
            rng,
        )
    }
}

/// [`seal_to`] for [`danger::seal_claiming_sender`]: any KEM.
pub mod danger_to {
    use super::*;

    /// [`danger::seal_claiming_sender`] to a key of either KEM.
    ///
    /// # Errors
    /// As [`seal_to`].
    pub fn seal_claiming_sender(
        header: &EnvelopeHeader,
        recipient: Recipient<'_>,
        signer: &Ed25519SigningKey,
        claimed: SenderId,
        payload: &[u8],
        rng: &mut impl CryptoRngCore,
    ) -> Result<Vec<u8>, Error> {
        seal_inner(header, recipient, signer, claimed, payload, rng)
    }
}

/// [`seal`], but claiming `claimed` as the sender id (tests use it to forge a mismatch).
fn seal_inner(
    header: &EnvelopeHeader,
    recipient: Recipient<'_>,
    signer: &Ed25519SigningKey,
    claimed: SenderId,
    payload: &[u8],
    rng: &mut impl CryptoRngCore,
) -> Result<Vec<u8>, Error> {
    header::check_version_and_suite(u64::from(header.version), header.suite)?;
    let aead =
        hpke_aead(header.suite).ok_or(Error::UnsupportedSuite(i64::from(header.suite.id())))?;
    if is_xwing(header.suite) != matches!(recipient, Recipient::XWing(_)) {
        return Err(Error::UnsupportedSuite(i64::from(header.suite.id())));
    }
    if payload.len() > MAX_ENVELOPE_BYTES {
        return Err(Error::Oversized {
            len: payload.len(),
            max: MAX_ENVELOPE_BYTES,
        });
    }
    let protected = header::encode(header, &recipient.key_id());
    let sig = signer.sign_raw(&sender_sig_structure(&protected, payload));
    let mut pt = Encoder::with_capacity(payload.len() + 110);
    pt.array(3)
        .bytes(claimed.as_bytes())
        .bytes(sig.as_bytes())
        .bytes(payload);
    let pt = Zeroizing::new(pt.into_bytes());
    let aad = enc_structure(&protected);
    let (enc, ct): (Vec<u8>, Vec<u8>) = match recipient {
        Recipient::X25519(pk) => {
            let (enc, ct) = hpke::seal_base(aead, pk, b"", &aad, &pt, rng)?;
            (enc.to_vec(), ct)
        }
        Recipient::XWing(pk) => {
            let (enc, ct) = hpke::xwing_seal_base(aead, pk, b"", &aad, &pt, rng)?;
            (enc.to_vec(), ct)
        }
    };

    let mut e = Encoder::with_capacity(protected.len() + ct.len() + 64);
    e.tag(COSE_ENCRYPT0_TAG)
        .array(3)
        .bytes(&protected)
        .map(1)
        .int(LABEL_EK)
        .bytes(&enc)
        .bytes(&ct);
    let out = e.into_bytes();
    if out.len() > MAX_ENVELOPE_BYTES {
        return Err(Error::Oversized {
            len: out.len(),
            max: MAX_ENVELOPE_BYTES,
        });
    }
    Ok(out)
}

/// A structurally valid envelope whose header can be inspected before decryption.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedEnvelope {
    header: EnvelopeHeader,
    kid: KemKeyId,
    protected: Vec<u8>,
    enc: Vec<u8>,
    ciphertext: Vec<u8>,
    id: EnvelopeId,
}

impl SealedEnvelope {
    /// Parses untrusted envelope bytes.
    ///
    /// # Errors
    /// [`Error::Oversized`] above [`MAX_ENVELOPE_BYTES`]; [`Error::UnsupportedVersion`];
    /// [`Error::UnsupportedSuite`]; [`Error::Malformed`] for everything else (bad or
    /// non-deterministic CBOR, missing/duplicate/unknown parameters, wrong lengths — including
    /// an `ek` that is not the suite's `Nenc` — trailing bytes).
    pub fn parse(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.len() > MAX_ENVELOPE_BYTES {
            return Err(Error::Oversized {
                len: bytes.len(),
                max: MAX_ENVELOPE_BYTES,
            });
        }
        let mut d = Decoder::new(bytes);
        if d.tag()? != COSE_ENCRYPT0_TAG {
            return Err(Error::Malformed("not a COSE_Encrypt0"));
        }
        d.array_of(3)?;
        let protected = d.bytes()?;
        if d.map()? != 1 || d.int()? != LABEL_EK {
            return Err(Error::Malformed("unprotected header must be exactly {ek}"));
        }
        let enc = d.bytes()?;
        let ciphertext = d.bytes()?;
        d.finish()?;
        let (header, kid) = header::decode(protected)?;
        if enc.len() != enc_len(header.suite) {
            return Err(Error::Malformed("ek length is not the suite's Nenc"));
        }
        if ciphertext.len() < TAG_LEN {
            return Err(Error::Malformed("ciphertext shorter than the AEAD tag"));
        }
        Ok(Self {
            header,
            kid,
            protected: protected.to_vec(),
            enc: enc.to_vec(),
            ciphertext: ciphertext.to_vec(),
            id: EnvelopeId::of(bytes),
        })
    }

    /// The header (authenticated only once [`open`](Self::open) succeeds).
    #[must_use]
    pub fn header(&self) -> &EnvelopeHeader {
        &self.header
    }

    /// SHA-256 of the complete envelope bytes.
    #[must_use]
    pub fn id(&self) -> EnvelopeId {
        self.id
    }

    /// The `kid`: which epoch KEM key the sender used ([`KemPublicKey::key_id`]).
    #[must_use]
    pub fn kid(&self) -> KemKeyId {
        self.kid
    }

    /// The encoded protected header (the COSE `protected` bstr content).
    #[must_use]
    pub fn protected_bytes(&self) -> &[u8] {
        &self.protected
    }

    /// Decrypts with the epoch key and checks the sender signature.
    ///
    /// # Errors
    /// [`OpenError::Undecryptable`] for any KEM, AEAD or plaintext-structure failure
    /// (including a `kid` that is not `sk`'s); [`OpenError::BadSenderSignature`] if the
    /// plaintext is well formed but its signature does not verify for the claimed sender.
    pub fn open(&self, sk: &KemSecretKey) -> Result<OpenedEnvelope, OpenError> {
        self.open_with(RecipientSecret::X25519(sk))
    }

    /// [`open`](Self::open) with a key of either KEM; a key whose KEM is not the suite's is
    /// [`OpenError::Undecryptable`].
    ///
    /// # Errors
    /// As [`open`](Self::open).
    pub fn open_with(&self, sk: RecipientSecret<'_>) -> Result<OpenedEnvelope, OpenError> {
        let aead = hpke_aead(self.header.suite).ok_or(OpenError::Undecryptable)?;
        let aad = enc_structure(&self.protected);
        let pt = match sk {
            RecipientSecret::X25519(sk) if !is_xwing(self.header.suite) => {
                if sk.public().key_id() != self.kid {
                    return Err(OpenError::Undecryptable);
                }
                hpke::open_base(aead, &self.enc, sk, b"", &aad, &self.ciphertext)
            }
            RecipientSecret::XWing(sk) if is_xwing(self.header.suite) => {
                if sk.public().key_id() != self.kid {
                    return Err(OpenError::Undecryptable);
                }
                hpke::xwing_open_base(aead, &self.enc, sk, b"", &aad, &self.ciphertext)
            }
            _ => return Err(OpenError::Undecryptable),
        }
        .map_err(|_| OpenError::Undecryptable)?;
        let (sender, sig, payload) = decode_plaintext(&pt).ok_or(OpenError::Undecryptable)?;
        Ed25519PublicKey::from(sender)
            .verify_raw(&sender_sig_structure(&self.protected, payload), sig)
            .map_err(|_| OpenError::BadSenderSignature)?;
        Ok(OpenedEnvelope {
            sender,
            payload: Zeroizing::new(payload.to_vec()),
        })
    }
}

fn decode_plaintext(pt: &[u8]) -> Option<(SenderId, [u8; 64], &[u8])> {
    let mut d = Decoder::new(pt);
    d.array_of(3).ok()?;
    let sender = SenderId(d.bytes_fixed().ok()?);
    let sig: [u8; 64] = d.bytes_fixed().ok()?;
    let payload = d.bytes().ok()?;
    d.finish().ok()?;
    Some((sender, sig, payload))
}

impl fmt::Debug for SealedEnvelope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealedEnvelope")
            .field("id", &self.id)
            .field("header", &self.header)
            .field("kid", &self.kid)
            .field("ciphertext_len", &self.ciphertext.len())
            .finish()
    }
}

/// A decrypted envelope whose sender signature verified. The payload is zeroised on drop and
/// never printed.
pub struct OpenedEnvelope {
    /// The authenticated sender (Ed25519 public key).
    pub sender: SenderId,
    /// The plaintext payload.
    pub payload: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for OpenedEnvelope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenedEnvelope")
            .field("sender", &self.sender)
            .field(
                "payload",
                &format_args!("[REDACTED; {} bytes]", self.payload.len()),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests;

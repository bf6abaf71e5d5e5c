//! Fixed-size identifiers. Each is its own type so that an instance id can never be passed
//! where a program id is expected ("parse, don't validate").
//!
//! Every identifier:
//! - is `Copy`, `Eq`, `Ord`, `Hash`;
//! - serialises with serde as a `0x`-prefixed lowercase hex string (the `0x` is optional
//!   when deserialising);
//! - prints with `Debug` as a short prefix (`InstanceId(0x1a2b3c4d…)`) and with `Display` in
//!   full `0x` hex;
//! - is built from untrusted bytes only through [`from_slice`](InstanceId::from_slice), which
//!   checks the length.

use core::fmt;
use core::str::FromStr;

use crate::Error;

/// Decodes hex with an optional `0x` prefix into exactly `N` bytes.
fn decode_hex<const N: usize>(s: &str) -> Result<[u8; N], Error> {
    let digits = s.strip_prefix("0x").unwrap_or(s);
    if digits.len() != 2 * N {
        return Err(Error::InvalidLength {
            expected: N,
            actual: digits.len() / 2,
        });
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(digits, &mut out).map_err(|_| Error::InvalidHex)?;
    Ok(out)
}

/// Copies `bytes` into an array of exactly `N` bytes.
fn array_from_slice<const N: usize>(bytes: &[u8]) -> Result<[u8; N], Error> {
    <[u8; N]>::try_from(bytes).map_err(|_| Error::InvalidLength {
        expected: N,
        actual: bytes.len(),
    })
}

/// Writes at most the first four bytes as `0x…` hex, for `Debug`.
fn short_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    f.write_str("0x")?;
    for b in bytes.iter().take(4) {
        write!(f, "{b:02x}")?;
    }
    f.write_str("…")
}

macro_rules! byte_id {
    ($(#[$meta:meta])* $name:ident, $len:literal) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        pub struct $name(pub [u8; $len]);

        impl $name {
            /// Length in bytes.
            pub const LEN: usize = $len;

            /// Wraps an array.
            #[must_use]
            pub const fn new(bytes: [u8; $len]) -> Self {
                Self(bytes)
            }

            /// Parses from a slice that must be exactly the right length.
            ///
            /// # Errors
            /// [`Error::InvalidLength`] if `bytes` has the wrong length.
            pub fn from_slice(bytes: &[u8]) -> Result<Self, Error> {
                array_from_slice(bytes).map(Self)
            }

            /// The raw bytes.
            #[must_use]
            pub const fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }

            /// Lowercase hex with a `0x` prefix (the same text serde produces).
            #[must_use]
            pub fn to_hex(&self) -> String {
                format!("0x{}", hex::encode(self.0))
            }

            /// Parses hex, with or without a `0x` prefix.
            ///
            /// # Errors
            /// [`Error::InvalidHex`] or [`Error::InvalidLength`].
            pub fn from_hex(s: &str) -> Result<Self, Error> {
                decode_hex(s).map(Self)
            }
        }

        impl From<[u8; $len]> for $name {
            fn from(bytes: [u8; $len]) -> Self {
                Self(bytes)
            }
        }

        impl AsRef<[u8]> for $name {
            fn as_ref(&self) -> &[u8] {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "("))?;
                short_hex(f, &self.0)?;
                f.write_str(")")
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self, Error> {
                Self::from_hex(s)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_hex())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                Self::from_hex(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

byte_id!(
    /// An enclave instance: SHA-256 of the instance Ed25519 public key (DESIGN §3).
    InstanceId, 32
);
byte_id!(
    /// A program: hash of its code and policy version (DESIGN §6).
    ProgramId, 32
);
byte_id!(
    /// An envelope: SHA-256 of the complete encoded envelope bytes (DESIGN §5).
    EnvelopeId, 32
);
byte_id!(
    /// A sender: the sender's Ed25519 public key bytes.
    SenderId, 32
);
byte_id!(
    /// The 16 random bytes a sender puts in each envelope header; (sender, nonce) is the
    /// replay key.
    Nonce, 16
);
byte_id!(
    /// Trace id carried end to end for observability (DESIGN §11).
    TraceId, 16
);
byte_id!(
    /// A generic SHA-256 (or other 32-byte) digest.
    Digest32, 32
);
byte_id!(
    /// Identifies an epoch KEM public key: the first 16 bytes of SHA-256 of the raw public key.
    /// Carried as the COSE `kid` of an envelope so the enclave can pick the epoch key.
    KemKeyId, 16
);

/// SHA-256 (FIPS 180-4) of `data`.
fn sha256(data: &[u8]) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data);
    let mut out = [0u8; 32];
    for (o, b) in out.iter_mut().zip(d.as_ref()) {
        *o = *b;
    }
    out
}

impl InstanceId {
    /// The instance id of an Ed25519 public key: SHA-256 of its 32 raw bytes.
    #[must_use]
    pub fn of_ed25519(public_key: &[u8; 32]) -> Self {
        Self(sha256(public_key))
    }
}

impl EnvelopeId {
    /// The id of an envelope: SHA-256 of its complete encoded bytes.
    #[must_use]
    pub fn of(envelope_bytes: &[u8]) -> Self {
        Self(sha256(envelope_bytes))
    }
}

impl Digest32 {
    /// SHA-256 of `data`.
    #[must_use]
    pub fn sha256(data: &[u8]) -> Self {
        Self(sha256(data))
    }
}

impl KemKeyId {
    /// The key id of a raw KEM public key: the first 16 bytes of its SHA-256.
    #[must_use]
    pub fn of_public_key(public_key: &[u8]) -> Self {
        let h = sha256(public_key);
        let mut out = [0u8; 16];
        for (o, b) in out.iter_mut().zip(h.iter()) {
            *o = *b;
        }
        Self(out)
    }
}

/// A key epoch number (DESIGN §3: a new KEM key pair every epoch).
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    Debug,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(transparent)]
pub struct Epoch(pub u64);

impl Epoch {
    /// The epoch after this one, or `None` on overflow.
    #[must_use]
    pub fn next(self) -> Option<Self> {
        self.0.checked_add(1).map(Self)
    }
}

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_prefix() {
        let id = InstanceId([0xab; 32]);
        let h = id.to_hex();
        assert!(h.starts_with("0xabab"));
        assert_eq!(InstanceId::from_hex(&h).unwrap(), id);
        assert_eq!(InstanceId::from_hex(&h[2..]).unwrap(), id);
        assert_eq!(h.parse::<InstanceId>().unwrap(), id);
    }

    #[test]
    fn from_slice_checks_length() {
        assert!(Nonce::from_slice(&[0u8; 16]).is_ok());
        assert_eq!(
            Nonce::from_slice(&[0u8; 15]),
            Err(Error::InvalidLength {
                expected: 16,
                actual: 15
            })
        );
        assert!(ProgramId::from_slice(&[0u8; 33]).is_err());
    }

    #[test]
    fn bad_hex_rejected() {
        assert_eq!(TraceId::from_hex(&"zz".repeat(16)), Err(Error::InvalidHex));
        assert!(TraceId::from_hex("0x00").is_err());
    }

    #[test]
    fn debug_is_short() {
        let s = format!("{:?}", SenderId([0x12; 32]));
        assert_eq!(s, "SenderId(0x12121212…)");
    }

    #[test]
    fn sha256_ids() {
        // FIPS 180-2 test: SHA-256("abc").
        let want = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(hex::encode(EnvelopeId::of(b"abc").0), want);
        assert_eq!(hex::encode(Digest32::sha256(b"abc").0), want);
        assert_eq!(hex::encode(KemKeyId::of_public_key(b"abc").0), &want[..32]);
    }

    #[test]
    fn serde_json_as_hex_string() {
        let id = EnvelopeId([7; 32]);
        let j = serde_json::to_string(&id).unwrap();
        assert_eq!(j, format!("\"0x{}\"", "07".repeat(32)));
        let back: EnvelopeId = serde_json::from_str(&j).unwrap();
        assert_eq!(back, id);
        let e: Epoch = serde_json::from_str("42").unwrap();
        assert_eq!(e, Epoch(42));
        assert!(serde_json::from_str::<EnvelopeId>("\"0x00\"").is_err());
    }
}

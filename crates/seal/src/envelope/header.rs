//! The envelope's COSE protected header: its labels and its strict decoder.
//!
//! Labels (RFC 9052 §3.1; draft-ietf-cose-hpke; private use ≤ -65537, where the IANA "COSE
//! Header Parameters" registry reserves integer labels less than -65536 for private use):
//!
//! | label   | name       | value                                                        |
//! |---------|------------|--------------------------------------------------------------|
//! | 1       | alg        | int: 41 HPKE-3, 42 HPKE-4 (draft-ietf-cose-hpke "assumed"),  |
//! |         |            | -65537 X-Wing/AES-256-GCM (private use; version 2 only)      |
//! | 4       | kid        | bstr(16): first 16 bytes of SHA-256(epoch KEM public key)    |
//! | -65537  | version    | uint: 2 (this code), 1 (previous release, still read)         |
//! | -65538  | suite      | uint: Sealbridge suite id (must agree with `alg`)            |
//! | -65539  | instance   | bstr(32): instance id                                        |
//! | -65540  | epoch      | uint                                                         |
//! | -65541  | program    | bstr(32): program id                                         |
//! | -65542  | nonce      | bstr(16)                                                     |
//! | -65543  | expires_at | uint: unix seconds                                           |
//! | -65544  | trace_id   | bstr(16)                                                     |
//!
//! The unprotected header holds only `-4` (`ek`, draft-ietf-cose-hpke "assumed" label): the
//! HPKE `enc`, bstr(32) for the X25519 suites and bstr(1120) for X-Wing.
//!
//! All ten protected entries are required, in deterministic key order (RFC 8949 §4.2.1:
//! `1, 4, -65537, …, -65544`); any other label is rejected (we understand no optional
//! parameters, so every unknown one is treated as critical).

use sealbridge_proto::{
    EnvelopeHeader, Epoch, InstanceId, KemKeyId, Nonce, PREVIOUS_ENVELOPE_VERSION, ProgramId,
    Suite, TraceId,
    cbor::{Decoder, Encoder},
    envelope_version_supported,
};

use crate::Error;

/// COSE `alg` (RFC 9052 §3.1).
pub const LABEL_ALG: i64 = 1;
/// COSE `kid` (RFC 9052 §3.1).
pub const LABEL_KID: i64 = 4;
/// COSE-HPKE `ek`, the encapsulated key (draft-ietf-cose-hpke; "assumed" value -4).
pub const LABEL_EK: i64 = -4;
/// Sealbridge envelope version (private use).
pub const LABEL_VERSION: i64 = -65_537;
/// Sealbridge suite id (private use).
pub const LABEL_SUITE: i64 = -65_538;
/// Instance id (private use).
pub const LABEL_INSTANCE: i64 = -65_539;
/// Epoch (private use).
pub const LABEL_EPOCH: i64 = -65_540;
/// Program id (private use).
pub const LABEL_PROGRAM: i64 = -65_541;
/// Nonce (private use).
pub const LABEL_NONCE: i64 = -65_542;
/// Expiry, unix seconds (private use).
pub const LABEL_EXPIRES_AT: i64 = -65_543;
/// Trace id (private use).
pub const LABEL_TRACE_ID: i64 = -65_544;

/// Number of protected header entries.
const ENTRIES: usize = 10;

/// Encodes the protected header (a deterministic CBOR map, the COSE `protected` bstr content).
pub(crate) fn encode(h: &EnvelopeHeader, kid: &KemKeyId) -> Vec<u8> {
    let mut e = Encoder::with_capacity(160);
    e.map(ENTRIES)
        .int(LABEL_ALG)
        .int(h.suite.cose_alg())
        .int(LABEL_KID)
        .bytes(kid.as_bytes())
        .int(LABEL_VERSION)
        .uint(u64::from(h.version))
        .int(LABEL_SUITE)
        .uint(u64::from(h.suite.id()))
        .int(LABEL_INSTANCE)
        .bytes(h.instance.as_bytes())
        .int(LABEL_EPOCH)
        .uint(h.epoch.0)
        .int(LABEL_PROGRAM)
        .bytes(h.program.as_bytes())
        .int(LABEL_NONCE)
        .bytes(h.nonce.as_bytes())
        .int(LABEL_EXPIRES_AT)
        .uint(h.expires_at)
        .int(LABEL_TRACE_ID)
        .bytes(h.trace_id.as_bytes());
    e.into_bytes()
}

/// The raw entries of a header map, checked for deterministic order and no duplicates.
struct Entries<'a>(Vec<(i64, &'a [u8])>);

impl<'a> Entries<'a> {
    fn read(bytes: &'a [u8]) -> Result<Self, Error> {
        let mut d = Decoder::new(bytes);
        let n = d.map()?;
        if n > 2 * ENTRIES {
            return Err(Error::Malformed("too many header parameters"));
        }
        let mut out = Vec::with_capacity(n);
        let mut prev: Option<&[u8]> = None;
        for _ in 0..n {
            let (label, raw) = d.int_with_raw()?;
            if prev.is_some_and(|p| p >= raw) {
                return Err(Error::Malformed(
                    "header labels duplicated or not in deterministic order",
                ));
            }
            prev = Some(raw);
            out.push((label, d.skip()?));
        }
        d.finish()?;
        Ok(Self(out))
    }

    fn get(&self, label: i64) -> Result<Decoder<'a>, Error> {
        self.0
            .iter()
            .find(|(l, _)| *l == label)
            .map(|(_, raw)| Decoder::new(raw))
            .ok_or(Error::Malformed("missing header parameter"))
    }

    fn uint(&self, label: i64) -> Result<u64, Error> {
        let mut d = self.get(label)?;
        let v = d.uint()?;
        d.finish()?;
        Ok(v)
    }

    fn fixed<const N: usize>(&self, label: i64) -> Result<[u8; N], Error> {
        let mut d = self.get(label)?;
        let v = d.bytes_fixed()?;
        d.finish()?;
        Ok(v)
    }
}

/// The version is one this code reads ([`envelope_version_supported`]) and the suite is
/// implemented and was defined at that version (version 1 had only the X25519 suites).
pub(crate) fn check_version_and_suite(version: u64, suite: Suite) -> Result<(), Error> {
    if !envelope_version_supported(version) {
        return Err(Error::UnsupportedVersion(version));
    }
    let in_version =
        version != u64::from(PREVIOUS_ENVELOPE_VERSION) || suite != Suite::XWingAes256Gcm;
    if super::hpke_aead(suite).is_none() || !in_version {
        return Err(Error::UnsupportedSuite(i64::from(suite.id())));
    }
    Ok(())
}

/// Decodes the protected header. Checks, in order: well-formed deterministic map; version
/// (→ [`Error::UnsupportedVersion`]); `alg` and suite known, consistent and implemented
/// (→ [`Error::UnsupportedSuite`]); then exactly the ten known labels with the right types.
pub(crate) fn decode(bytes: &[u8]) -> Result<(EnvelopeHeader, KemKeyId), Error> {
    let entries = Entries::read(bytes)?;

    let version = entries.uint(LABEL_VERSION)?;
    if !envelope_version_supported(version) {
        return Err(Error::UnsupportedVersion(version));
    }

    let alg = {
        let mut d = entries.get(LABEL_ALG)?;
        let v = d.int()?;
        d.finish()?;
        v
    };
    let by_alg = Suite::from_cose_alg(alg).ok_or(Error::UnsupportedSuite(alg))?;
    let suite_id = entries.uint(LABEL_SUITE)?;
    let suite = u16::try_from(suite_id)
        .ok()
        .and_then(|id| Suite::from_id(id).ok())
        .ok_or(Error::UnsupportedSuite(
            i64::try_from(suite_id).unwrap_or(i64::MAX),
        ))?;
    if suite != by_alg {
        return Err(Error::Malformed("alg and suite disagree"));
    }
    check_version_and_suite(version, suite)?;

    if entries.0.len() != ENTRIES {
        return Err(Error::Malformed("unknown or missing header parameter"));
    }
    let header = EnvelopeHeader {
        // Supported versions fit a byte (checked above).
        version: u8::try_from(version).map_err(|_| Error::UnsupportedVersion(version))?,
        suite,
        instance: InstanceId(entries.fixed(LABEL_INSTANCE)?),
        epoch: Epoch(entries.uint(LABEL_EPOCH)?),
        program: ProgramId(entries.fixed(LABEL_PROGRAM)?),
        nonce: Nonce(entries.fixed(LABEL_NONCE)?),
        expires_at: entries.uint(LABEL_EXPIRES_AT)?,
        trace_id: TraceId(entries.fixed(LABEL_TRACE_ID)?),
    };
    let kid = KemKeyId(entries.fixed(LABEL_KID)?);
    Ok((header, kid))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> EnvelopeHeader {
        EnvelopeHeader::new(
            InstanceId([1; 32]),
            Epoch(7),
            ProgramId([2; 32]),
            Nonce([3; 16]),
            1_000,
            TraceId([4; 16]),
        )
    }

    fn with_entry(extra_label: i64) -> Vec<u8> {
        // Re-encode the standard header plus one extra uint entry, in deterministic order.
        let h = header();
        let std = encode(&h, &KemKeyId([9; 16]));
        let entries = Entries::read(&std).unwrap();
        let mut all: Vec<(Vec<u8>, Vec<u8>)> = entries
            .0
            .iter()
            .map(|(l, raw)| {
                let mut e = Encoder::new();
                e.int(*l);
                (e.into_bytes(), raw.to_vec())
            })
            .collect();
        let mut k = Encoder::new();
        k.int(extra_label);
        all.push((k.into_bytes(), vec![0x00]));
        all.sort();
        let mut e = Encoder::new();
        e.map(all.len());
        for (k, v) in all {
            e.raw(&k).raw(&v);
        }
        e.into_bytes()
    }

    #[test]
    fn round_trip() {
        let h = header();
        let kid = KemKeyId([9; 16]);
        let b = encode(&h, &kid);
        assert_eq!(decode(&b).unwrap(), (h, kid));
    }

    #[test]
    fn unknown_and_crit_labels_rejected() {
        for label in [2, 3, 5, -1, -65_536, -65_545] {
            assert!(
                matches!(decode(&with_entry(label)), Err(Error::Malformed(_))),
                "label {label}"
            );
        }
    }

    #[test]
    fn version_and_suite_errors_are_distinct() {
        // Version 0 (never defined) and 3 (a future one) are refused; 1 and 2 are read.
        for v in [0u8, 3, 255] {
            let mut h = header();
            h.version = v;
            let b = encode(&h, &KemKeyId([0; 16]));
            assert_eq!(decode(&b), Err(Error::UnsupportedVersion(u64::from(v))));
        }
        for v in [1u8, 2] {
            let mut h = header();
            h.version = v;
            let b = encode(&h, &KemKeyId([0; 16]));
            assert_eq!(decode(&b).unwrap().0.version, v);
        }
        // X-Wing is a version-2 suite: a version-1 header naming it is refused.
        let mut h = header();
        h.suite = Suite::XWingAes256Gcm;
        assert!(decode(&encode(&h, &KemKeyId([0; 16]))).is_ok());
        h.version = 1;
        let b = encode(&h, &KemKeyId([0; 16]));
        assert_eq!(decode(&b), Err(Error::UnsupportedSuite(3)));
    }

    #[test]
    fn out_of_order_rejected() {
        let h = header();
        let b = encode(&h, &KemKeyId([0; 16]));
        let entries = Entries::read(&b).unwrap();
        let mut e = Encoder::new();
        e.map(ENTRIES);
        let mut rev: Vec<_> = entries.0.clone();
        rev.swap(0, 1);
        for (l, raw) in rev {
            e.int(l).raw(raw);
        }
        assert!(matches!(decode(&e.into_bytes()), Err(Error::Malformed(_))));
    }
}

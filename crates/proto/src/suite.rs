//! The cipher-suite registry and its governance lifecycle (DESIGN §5, §10).

use core::fmt;
use std::collections::BTreeMap;

use crate::Error;

/// An envelope cipher suite. The numeric value is the on-wire suite id.
///
/// The HPKE identifiers are those of the IANA HPKE registry (RFC 9180 §7); the COSE
/// algorithm values are those of draft-ietf-cose-hpke (HPKE-3, HPKE-4 integrated encryption;
/// "assumed" values until IANA assigns them) or private-use values where no draft exists.
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Debug,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
#[repr(u16)]
#[non_exhaustive]
pub enum Suite {
    /// DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-128-GCM. The default.
    #[default]
    #[serde(rename = "x25519-sha256-aes128gcm")]
    X25519Sha256Aes128Gcm = 1,
    /// DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305.
    #[serde(rename = "x25519-sha256-chacha20poly1305")]
    X25519Sha256ChaCha20Poly1305 = 2,
    /// X-Wing (ML-KEM-768 + X25519, draft-connolly-cfrg-xwing-kem) with HKDF-SHA256 and
    /// AES-256-GCM: hybrid post-quantum (harvest-now-decrypt-later).
    #[serde(rename = "xwing-aes256gcm")]
    XWingAes256Gcm = 3,
}

/// COSE algorithm value for [`Suite::X25519Sha256Aes128Gcm`]: HPKE-3 of draft-ietf-cose-hpke
/// (integrated encryption; value "assumed" by the draft pending IANA assignment).
pub const COSE_ALG_HPKE_3: i64 = 41;
/// COSE algorithm value for [`Suite::X25519Sha256ChaCha20Poly1305`]: HPKE-4 of
/// draft-ietf-cose-hpke (integrated encryption; "assumed" value).
pub const COSE_ALG_HPKE_4: i64 = 42;
/// COSE algorithm value for [`Suite::XWingAes256Gcm`]: private use (in the IANA "COSE
/// Algorithms" registry, values less than -65536 are private use). No draft assigns one yet.
pub const COSE_ALG_XWING_AES256GCM: i64 = -65_537;

impl Suite {
    /// All registered suites, in id order.
    pub const ALL: [Suite; 3] = [
        Suite::X25519Sha256Aes128Gcm,
        Suite::X25519Sha256ChaCha20Poly1305,
        Suite::XWingAes256Gcm,
    ];

    /// The on-wire suite id.
    #[must_use]
    pub const fn id(self) -> u16 {
        self as u16
    }

    /// Looks up a suite by on-wire id.
    ///
    /// # Errors
    /// [`Error::UnknownSuite`] for unregistered ids.
    pub const fn from_id(id: u16) -> Result<Self, Error> {
        match id {
            1 => Ok(Suite::X25519Sha256Aes128Gcm),
            2 => Ok(Suite::X25519Sha256ChaCha20Poly1305),
            3 => Ok(Suite::XWingAes256Gcm),
            other => Err(Error::UnknownSuite(other)),
        }
    }

    /// Stable kebab-case name (the serde representation).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Suite::X25519Sha256Aes128Gcm => "x25519-sha256-aes128gcm",
            Suite::X25519Sha256ChaCha20Poly1305 => "x25519-sha256-chacha20poly1305",
            Suite::XWingAes256Gcm => "xwing-aes256gcm",
        }
    }

    /// HPKE `(kem_id, kdf_id, aead_id)` (RFC 9180 §7.1–7.3). X-Wing's KEM id is the one
    /// requested by draft-connolly-cfrg-xwing-kem (0x647a).
    #[must_use]
    pub const fn hpke_ids(self) -> (u16, u16, u16) {
        match self {
            Suite::X25519Sha256Aes128Gcm => (0x0020, 0x0001, 0x0001),
            Suite::X25519Sha256ChaCha20Poly1305 => (0x0020, 0x0001, 0x0003),
            Suite::XWingAes256Gcm => (0x647a, 0x0001, 0x0002),
        }
    }

    /// The COSE `alg` value used in envelope protected headers.
    #[must_use]
    pub const fn cose_alg(self) -> i64 {
        match self {
            Suite::X25519Sha256Aes128Gcm => COSE_ALG_HPKE_3,
            Suite::X25519Sha256ChaCha20Poly1305 => COSE_ALG_HPKE_4,
            Suite::XWingAes256Gcm => COSE_ALG_XWING_AES256GCM,
        }
    }

    /// Inverse of [`cose_alg`](Self::cose_alg).
    #[must_use]
    pub const fn from_cose_alg(alg: i64) -> Option<Self> {
        match alg {
            COSE_ALG_HPKE_3 => Some(Suite::X25519Sha256Aes128Gcm),
            COSE_ALG_HPKE_4 => Some(Suite::X25519Sha256ChaCha20Poly1305),
            COSE_ALG_XWING_AES256GCM => Some(Suite::XWingAes256Gcm),
            _ => None,
        }
    }
}

impl fmt::Display for Suite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Lifecycle state of a suite, set by governance (DESIGN §10).
#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SuiteState {
    /// Accepted; senders should use it.
    Preferred,
    /// Accepted.
    Allowed,
    /// Accepted strictly before the given unix time (seconds), refused from then on.
    DeprecatedAfter(u64),
    /// Refused.
    Forbidden,
}

/// Which suites are acceptable, and until when. Suites absent from the map are forbidden.
///
/// Canonical: a forbidden suite is never stored (setting `Forbidden` removes it, JSON
/// `"forbidden"` entries are dropped on reading, the bytes refuse it), so one meaning has one
/// encoding and one policy hash; setting a suite `Preferred` demotes the previous preferred one
/// to `Allowed`. [`SuitePolicy::validate`] (and the byte parser) require exactly one preferred.
#[derive(Clone, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
#[serde(
    from = "BTreeMap<Suite, SuiteState>",
    into = "BTreeMap<Suite, SuiteState>"
)]
pub struct SuitePolicy {
    states: BTreeMap<Suite, SuiteState>,
}

impl From<BTreeMap<Suite, SuiteState>> for SuitePolicy {
    /// Drops explicit `Forbidden` entries (absent means forbidden). Several `Preferred` are
    /// kept, for [`SuitePolicy::validate`] to refuse.
    fn from(mut states: BTreeMap<Suite, SuiteState>) -> Self {
        states.retain(|_, s| *s != SuiteState::Forbidden);
        Self { states }
    }
}

impl From<SuitePolicy> for BTreeMap<Suite, SuiteState> {
    fn from(p: SuitePolicy) -> Self {
        p.states
    }
}

impl Default for SuitePolicy {
    /// Suite 1 (X25519/AES-128-GCM) preferred, suite 2 (X25519/ChaCha20) allowed, suite 3
    /// (X-Wing/AES-256-GCM) allowed.
    fn default() -> Self {
        let mut states = BTreeMap::new();
        states.insert(Suite::X25519Sha256Aes128Gcm, SuiteState::Preferred);
        states.insert(Suite::X25519Sha256ChaCha20Poly1305, SuiteState::Allowed);
        states.insert(Suite::XWingAes256Gcm, SuiteState::Allowed);
        Self { states }
    }
}

/// Encoding tags of [`SuiteState`] in [`SuitePolicy::to_bytes`].
const STATE_PREFERRED: u8 = 1;
const STATE_ALLOWED: u8 = 2;
const STATE_DEPRECATED_AFTER: u8 = 3;
const STATE_FORBIDDEN: u8 = 4;

impl SuiteState {
    /// Stable kebab-case name (`deprecated-after` for a dated deprecation).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            SuiteState::Preferred => "preferred",
            SuiteState::Allowed => "allowed",
            SuiteState::DeprecatedAfter(_) => "deprecated-after",
            SuiteState::Forbidden => "forbidden",
        }
    }
}

impl SuitePolicy {
    /// A policy that forbids everything; add suites with [`set`](Self::set).
    #[must_use]
    pub fn empty() -> Self {
        Self {
            states: BTreeMap::new(),
        }
    }

    /// Sets the state of one suite, returning the updated policy.
    #[must_use]
    pub fn with(mut self, suite: Suite, state: SuiteState) -> Self {
        self.set(suite, state);
        self
    }

    /// Sets the state of one suite: `Forbidden` removes it; `Preferred` demotes any other
    /// preferred suite to `Allowed` (one preferred suite at most).
    pub fn set(&mut self, suite: Suite, state: SuiteState) {
        match state {
            SuiteState::Forbidden => {
                self.states.remove(&suite);
            }
            SuiteState::Preferred => {
                for s in self.states.values_mut() {
                    if *s == SuiteState::Preferred {
                        *s = SuiteState::Allowed;
                    }
                }
                self.states.insert(suite, state);
            }
            _ => {
                self.states.insert(suite, state);
            }
        }
    }

    /// Whether this is a usable, canonical lifecycle: exactly one preferred suite and no
    /// explicit forbidden entry.
    ///
    /// # Errors
    /// [`Error::Cbor`]`("suite policy")` otherwise.
    pub fn validate(&self) -> Result<(), Error> {
        let preferred = self
            .states
            .values()
            .filter(|s| **s == SuiteState::Preferred)
            .count();
        let forbidden = self.states.values().any(|s| *s == SuiteState::Forbidden);
        if preferred == 1 && !forbidden {
            Ok(())
        } else {
            Err(Error::Cbor("suite policy"))
        }
    }

    /// The state of a suite (`Forbidden` if absent).
    #[must_use]
    pub fn state(&self, suite: Suite) -> SuiteState {
        self.states
            .get(&suite)
            .copied()
            .unwrap_or(SuiteState::Forbidden)
    }

    /// Every suite with an explicit state, in id order.
    pub fn iter(&self) -> impl Iterator<Item = (Suite, SuiteState)> + '_ {
        self.states.iter().map(|(s, st)| (*s, *st))
    }

    /// Canonical bytes (part of the enclave policy's bytes, hence of its hash): `n u8`, then per
    /// suite in id order `suite id u16 BE ‖ state u8 (1 preferred, 2 allowed, 3
    /// deprecated-after, 4 forbidden) ‖ date u64 BE (0 unless deprecated-after)`.
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + self.states.len() * 11);
        // At most `Suite::ALL.len()` entries: fits a byte.
        out.push(u8::try_from(self.states.len()).unwrap_or(u8::MAX));
        for (suite, state) in &self.states {
            out.extend_from_slice(&suite.id().to_be_bytes());
            let (tag, date) = match state {
                SuiteState::Preferred => (STATE_PREFERRED, 0),
                SuiteState::Allowed => (STATE_ALLOWED, 0),
                SuiteState::DeprecatedAfter(t) => (STATE_DEPRECATED_AFTER, *t),
                SuiteState::Forbidden => (STATE_FORBIDDEN, 0),
            };
            out.push(tag);
            out.extend_from_slice(&date.to_be_bytes());
        }
        out
    }

    /// Strict parse of [`to_bytes`](Self::to_bytes) at the front of `bytes`: returns the policy
    /// and the rest. Suites must be registered, ascending, each once; a date only with
    /// `deprecated-after`; exactly one preferred and no explicit forbidden entry (canonical:
    /// [`SuitePolicy::validate`]).
    ///
    /// # Errors
    /// [`Error::Cbor`]`("suite policy")` for anything else (kept as a `&'static str` like the
    /// crate's other decoding errors); [`Error::UnknownSuite`] for an unregistered suite id.
    pub fn from_bytes_prefix(bytes: &[u8]) -> Result<(Self, &[u8]), Error> {
        let bad = Error::Cbor("suite policy");
        let (&n, mut rest) = bytes.split_first().ok_or(bad.clone())?;
        let mut states = BTreeMap::new();
        let mut prev: Option<Suite> = None;
        for _ in 0..n {
            let (entry, tail) = rest.split_at_checked(11).ok_or(bad.clone())?;
            rest = tail;
            let (id, entry) = entry.split_at(2);
            let (tag, date) = entry.split_at(1);
            let id = u16::from_be_bytes(id.try_into().map_err(|_| bad.clone())?);
            let date = u64::from_be_bytes(date.try_into().map_err(|_| bad.clone())?);
            let suite = Suite::from_id(id)?;
            if prev.is_some_and(|p| p >= suite) {
                return Err(bad);
            }
            prev = Some(suite);
            let state = match (tag, date) {
                ([STATE_PREFERRED], 0) => SuiteState::Preferred,
                ([STATE_ALLOWED], 0) => SuiteState::Allowed,
                ([STATE_DEPRECATED_AFTER], t) => SuiteState::DeprecatedAfter(t),
                _ => return Err(bad),
            };
            states.insert(suite, state);
        }
        let policy = Self { states };
        policy.validate()?;
        Ok((policy, rest))
    }

    /// The suite a client should seal with at `now`: the preferred one if it is acceptable
    /// then, else the first acceptable suite in id order.
    #[must_use]
    pub fn sealing_suite(&self, now: u64) -> Option<Suite> {
        self.preferred()
            .filter(|s| self.check(*s, now).is_ok())
            .or_else(|| {
                self.states
                    .keys()
                    .copied()
                    .find(|s| self.check(*s, now).is_ok())
            })
    }

    /// The first suite (in id order) marked preferred, if any.
    #[must_use]
    pub fn preferred(&self) -> Option<Suite> {
        self.states
            .iter()
            .find(|(_, s)| **s == SuiteState::Preferred)
            .map(|(suite, _)| *suite)
    }

    /// Whether `suite` is acceptable at unix time `now` (seconds).
    ///
    /// # Errors
    /// [`Error::SuiteForbidden`] if forbidden or absent; [`Error::SuiteDeprecated`] if its
    /// deprecation time is `<= now`.
    pub fn check(&self, suite: Suite, now: u64) -> Result<(), Error> {
        match self.state(suite) {
            SuiteState::Preferred | SuiteState::Allowed => Ok(()),
            SuiteState::DeprecatedAfter(after) if now < after => Ok(()),
            SuiteState::DeprecatedAfter(after) => Err(Error::SuiteDeprecated { suite, after }),
            SuiteState::Forbidden => Err(Error::SuiteForbidden(suite)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip() {
        for s in Suite::ALL {
            assert_eq!(Suite::from_id(s.id()).unwrap(), s);
            assert_eq!(Suite::from_cose_alg(s.cose_alg()), Some(s));
            let j = serde_json::to_string(&s).unwrap();
            assert_eq!(j, format!("\"{}\"", s.as_str()));
        }
        assert_eq!(Suite::from_id(0), Err(Error::UnknownSuite(0)));
        assert_eq!(Suite::from_id(4), Err(Error::UnknownSuite(4)));
        assert_eq!(Suite::default(), Suite::X25519Sha256Aes128Gcm);
    }

    #[test]
    fn default_policy() {
        // Issue 12: X-Wing works, so the default allows it (it was forbidden while unimplemented).
        let p = SuitePolicy::default();
        assert!(p.check(Suite::X25519Sha256Aes128Gcm, 0).is_ok());
        assert!(p.check(Suite::X25519Sha256ChaCha20Poly1305, 0).is_ok());
        assert!(p.check(Suite::XWingAes256Gcm, 0).is_ok());
        assert_eq!(p.preferred(), Some(Suite::X25519Sha256Aes128Gcm));
        assert_eq!(p.sealing_suite(0), Some(Suite::X25519Sha256Aes128Gcm));
        let f = SuitePolicy::default().with(Suite::XWingAes256Gcm, SuiteState::Forbidden);
        assert_eq!(
            f.check(Suite::XWingAes256Gcm, 0),
            Err(Error::SuiteForbidden(Suite::XWingAes256Gcm))
        );
    }

    #[test]
    fn sealing_suite_skips_a_preferred_suite_past_its_date() {
        let p = SuitePolicy::empty()
            .with(
                Suite::X25519Sha256Aes128Gcm,
                SuiteState::DeprecatedAfter(50),
            )
            .with(Suite::XWingAes256Gcm, SuiteState::Allowed);
        assert_eq!(p.sealing_suite(0), Some(Suite::X25519Sha256Aes128Gcm));
        let q = p.clone().with(Suite::XWingAes256Gcm, SuiteState::Preferred);
        assert_eq!(q.sealing_suite(0), Some(Suite::XWingAes256Gcm));
        assert_eq!(p.sealing_suite(50), Some(Suite::XWingAes256Gcm));
        assert_eq!(SuitePolicy::empty().sealing_suite(0), None);
    }

    #[test]
    fn policy_bytes_round_trip_and_are_strict() {
        let p = SuitePolicy::default()
            .with(
                Suite::X25519Sha256ChaCha20Poly1305,
                SuiteState::DeprecatedAfter(1_900_000_000),
            )
            .with(Suite::XWingAes256Gcm, SuiteState::Preferred);
        let b = p.to_bytes();
        assert_eq!(b.len(), 1 + 3 * 11);
        let with_tail = [b.as_slice(), &[9]].concat();
        let (back, rest) = SuitePolicy::from_bytes_prefix(&with_tail).unwrap();
        assert_eq!((back, rest), (p.clone(), &[9u8][..]));
        for cut in 0..b.len() {
            assert!(SuitePolicy::from_bytes_prefix(&b[..cut]).is_err(), "{cut}");
        }
        // Unknown suite id, unknown state tag, a date on a state without one, out of order.
        let mut unknown = b.clone();
        unknown[2] = 9;
        assert_eq!(
            SuitePolicy::from_bytes_prefix(&unknown),
            Err(Error::UnknownSuite(9))
        );
        let mut tag = b.clone();
        tag[3] = 5;
        assert!(SuitePolicy::from_bytes_prefix(&tag).is_err());
        let mut dated = b.clone();
        dated[11] = 1;
        assert!(SuitePolicy::from_bytes_prefix(&dated).is_err());
        let mut swapped = b.clone();
        swapped[1..12].copy_from_slice(&b[12..23]);
        swapped[12..23].copy_from_slice(&b[1..12]);
        assert!(SuitePolicy::from_bytes_prefix(&swapped).is_err());
        // No preferred suite (the empty lifecycle included), two preferred, an explicit
        // forbidden entry: refused (one meaning, one encoding).
        assert!(SuitePolicy::from_bytes_prefix(&[0]).is_err());
        let mut none = b.clone();
        none[23 + 3] = STATE_ALLOWED;
        assert!(SuitePolicy::from_bytes_prefix(&none).is_err());
        let mut two = b.clone();
        two[3] = STATE_PREFERRED;
        assert!(SuitePolicy::from_bytes_prefix(&two).is_err());
        let mut forbidden = b.clone();
        forbidden[3] = STATE_FORBIDDEN;
        assert!(SuitePolicy::from_bytes_prefix(&forbidden).is_err());
    }

    #[test]
    fn one_meaning_one_encoding() {
        // Forbidding a suite explicitly and leaving it out are the same policy, in bytes and JSON.
        let explicit = SuitePolicy::default().with(Suite::XWingAes256Gcm, SuiteState::Forbidden);
        let absent: SuitePolicy = serde_json::from_str(
            r#"{"x25519-sha256-aes128gcm":"preferred","x25519-sha256-chacha20poly1305":"allowed"}"#,
        )
        .unwrap();
        let from_json: SuitePolicy = serde_json::from_str(
            r#"{"x25519-sha256-aes128gcm":"preferred","x25519-sha256-chacha20poly1305":"allowed","xwing-aes256gcm":"forbidden"}"#,
        )
        .unwrap();
        assert_eq!(explicit.to_bytes(), absent.to_bytes());
        assert_eq!(from_json.to_bytes(), absent.to_bytes());
        assert_eq!(explicit, absent);
        // Preferring a second suite demotes the first: still exactly one.
        let p = SuitePolicy::default().with(Suite::XWingAes256Gcm, SuiteState::Preferred);
        assert_eq!(p.state(Suite::X25519Sha256Aes128Gcm), SuiteState::Allowed);
        assert!(p.validate().is_ok());
        // Two preferred from JSON: read, then refused by validate.
        let two: SuitePolicy = serde_json::from_str(
            r#"{"x25519-sha256-aes128gcm":"preferred","xwing-aes256gcm":"preferred"}"#,
        )
        .unwrap();
        assert!(two.validate().is_err());
        assert!(SuitePolicy::empty().validate().is_err());
    }

    #[test]
    fn deprecation_is_exclusive_at_the_date() {
        let p = SuitePolicy::empty().with(
            Suite::X25519Sha256ChaCha20Poly1305,
            SuiteState::DeprecatedAfter(100),
        );
        assert!(p.check(Suite::X25519Sha256ChaCha20Poly1305, 99).is_ok());
        assert!(p.check(Suite::X25519Sha256ChaCha20Poly1305, 100).is_err());
        assert!(p.check(Suite::X25519Sha256Aes128Gcm, 0).is_err());
    }

    #[test]
    fn policy_serde() {
        let p = SuitePolicy::default().with(
            Suite::X25519Sha256ChaCha20Poly1305,
            SuiteState::DeprecatedAfter(7),
        );
        let j = serde_json::to_string(&p).unwrap();
        assert!(j.contains("\"x25519-sha256-chacha20poly1305\":{\"deprecated-after\":7}"));
        let back: SuitePolicy = serde_json::from_str(&j).unwrap();
        assert_eq!(back, p);
    }
}

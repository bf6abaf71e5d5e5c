//! Witness cosignatures: C2SP tlog-cosignature v1 (Ed25519, signature type 0x04) and the body of
//! a C2SP tlog-witness `add-checkpoint` request.
//!
//! ```text
//! cosigned message = "cosignature/v1\n" "time " <decimal seconds> "\n" <checkpoint note text>
//! signature line   = "— " <witness name> " " base64(key ID (4) || timestamp u64 BE (8) || Ed25519 signature (64)) "\n"
//! key ID           = SHA-256(name || 0x0A || 0x04 || public key)[:4]
//! vkey             = <name> "+" <8 hex digits of key ID> "+" base64(0x04 || public key)
//!
//! add-checkpoint body = "old " <decimal size> "\n"
//!                       (base64(consistency proof hash) "\n"){0,63}
//!                       "\n"
//!                       <the checkpoint, a signed note>
//! ```
//!
//! Pure functions: no I/O. The witness service and the clients that count cosignatures are host
//! code built on them.

use aws_lc_rs::signature::{ED25519, UnparsedPublicKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use crate::{Error, HASH_LEN, Hash, MAX_NOTE_LEN, MAX_NOTE_SIGNATURES};

/// Signature type byte of a timestamped Ed25519 cosignature (tlog-cosignature v1).
pub const COSIGNATURE_SIG_TYPE: u8 = 0x04;
/// Most consistency-proof hashes an `add-checkpoint` request carries (tlog-witness).
pub const MAX_PROOF_HASHES: usize = 63;
/// Largest `add-checkpoint` body accepted.
pub const MAX_ADD_CHECKPOINT_LEN: usize = MAX_NOTE_LEN + 64 * 48 + 32;

const SIG_PREFIX: &str = "\u{2014} ";

/// The key ID of a witness's cosigning key: SHA-256(name || 0x0A || 0x04 || key)[:4], BE.
pub fn cosignature_key_id(name: &str, public_key: &[u8; 32]) -> u32 {
    crate::note::typed_key_id(name, COSIGNATURE_SIG_TYPE, public_key)
}

/// What a witness signs: `cosignature/v1\ntime <timestamp>\n` followed by the note text
/// (the checkpoint body, ending in a newline).
pub fn cosignature_message(timestamp: u64, text: &str) -> Vec<u8> {
    format!("cosignature/v1\ntime {timestamp}\n{text}").into_bytes()
}

/// A witness's cosigning key: name, Ed25519 public key, key ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WitnessKey {
    name: String,
    key_id: u32,
    public_key: [u8; 32],
}

impl WitnessKey {
    /// The key of witness `name`.
    pub fn new(name: &str, public_key: &[u8; 32]) -> Result<Self, Error> {
        crate::note::check_key_name(name)?;
        Ok(Self {
            name: name.to_owned(),
            key_id: cosignature_key_id(name, public_key),
            public_key: *public_key,
        })
    }

    /// The witness's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The Ed25519 public key.
    pub fn public_key(&self) -> &[u8; 32] {
        &self.public_key
    }

    /// `<name>+<key ID hex>+<base64(0x04 || key)>`.
    pub fn to_vkey(&self) -> String {
        crate::note::format_vkey(&self.name, COSIGNATURE_SIG_TYPE, &self.public_key)
    }

    /// Parse a witness vkey (strictly: type 0x04, key ID matching the key).
    pub fn from_vkey(vkey: &str) -> Result<Self, Error> {
        let (name, public_key) = crate::note::parse_vkey(
            vkey,
            COSIGNATURE_SIG_TYPE,
            Error::Malformed("witness vkey (name+keyid+base64(0x04 || key))"),
        )?;
        Self::new(name, &public_key)
    }

    /// The signature line of a cosignature by this key at `timestamp`.
    pub fn signature_line(&self, timestamp: u64, signature: &[u8; 64]) -> String {
        let mut raw = Vec::with_capacity(76);
        raw.extend_from_slice(&self.key_id.to_be_bytes());
        raw.extend_from_slice(&timestamp.to_be_bytes());
        raw.extend_from_slice(signature);
        format!("{SIG_PREFIX}{} {}\n", self.name, B64.encode(raw))
    }
}

/// One verified cosignature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cosigned {
    /// The witness's name.
    pub witness: String,
    /// When it cosigned (unix seconds).
    pub timestamp: u64,
}

/// The signature lines of a note: `(key name, decoded bytes)`.
pub type SignatureLines<'a> = Vec<(&'a str, Vec<u8>)>;

/// A signed note split into its text (ending in a newline) and its signature lines
/// `(name, raw bytes)`, parsed strictly as `verify_note` does.
pub fn split_note(note: &str) -> Result<(&str, SignatureLines<'_>), Error> {
    if note.len() > MAX_NOTE_LEN {
        return Err(Error::NoteTooLarge);
    }
    if note.bytes().any(|b| b < 0x20 && b != b'\n') {
        return Err(Error::MalformedNote("control character"));
    }
    let sep = note
        .rfind("\n\n")
        .ok_or(Error::MalformedNote("no signature block"))?;
    let (text, sigs) = note.split_at(sep + 1);
    let sigs = sigs
        .strip_prefix('\n')
        .and_then(|s| s.strip_suffix('\n'))
        .ok_or(Error::MalformedNote("signature block"))?;
    let mut out = Vec::new();
    for (n, line) in sigs.split('\n').enumerate() {
        if n >= MAX_NOTE_SIGNATURES {
            return Err(Error::NoteTooLarge);
        }
        let (name, b64) = line
            .strip_prefix(SIG_PREFIX)
            .and_then(|r| r.split_once(' '))
            .ok_or(Error::MalformedNote("signature line"))?;
        crate::note::check_key_name(name).map_err(|_| Error::MalformedNote("key name"))?;
        let raw = B64
            .decode(b64)
            .map_err(|_| Error::MalformedNote("signature base64"))?;
        if raw.len() < 5 {
            return Err(Error::MalformedNote("signature length"));
        }
        out.push((name, raw));
    }
    Ok((text, out))
}

/// The witnesses in `witnesses` whose cosignature on `note` verifies, one entry per witness
/// (and per public key: one key listed under two names counts once). Lines of other keys are
/// ignored (the log's own signature, unknown witnesses), and so are lines naming one of
/// `witnesses` that do not verify: whoever can add lines to a note (the host, another witness)
/// must not be able to cancel a valid cosignature by adding a bad one beside it. `Err` only for
/// a note that does not parse.
pub fn verify_cosignatures(note: &str, witnesses: &[WitnessKey]) -> Result<Vec<Cosigned>, Error> {
    let (text, sigs) = split_note(note)?;
    let mut out: Vec<Cosigned> = Vec::new();
    for (name, raw) in sigs {
        let Some((id, rest)) = raw.split_first_chunk::<4>() else {
            continue;
        };
        let id = u32::from_be_bytes(*id);
        let Some(w) = witnesses.iter().find(|w| w.name == name && w.key_id == id) else {
            continue;
        };
        let (Some((ts, sig)), true) = (rest.split_first_chunk::<8>(), rest.len() == 72) else {
            continue;
        };
        let timestamp = u64::from_be_bytes(*ts);
        if UnparsedPublicKey::new(&ED25519, &w.public_key)
            .verify(&cosignature_message(timestamp, text), sig)
            .is_err()
        {
            continue;
        }
        let key_counted = witnesses
            .iter()
            .filter(|k| k.public_key == w.public_key)
            .any(|k| out.iter().any(|c| c.witness == k.name));
        if !key_counted {
            out.push(Cosigned {
                witness: w.name.clone(),
                timestamp,
            });
        }
    }
    Ok(out)
}

/// `note` with `lines` (signature lines, each ending in a newline) appended, refusing a result
/// that is not a well-formed note within the limits.
pub fn add_signature_lines(note: &str, lines: &[String]) -> Result<String, Error> {
    let mut out = note.to_owned();
    for l in lines {
        out.push_str(l);
    }
    split_note(&out)?;
    Ok(out)
}

/// A C2SP tlog-witness `add-checkpoint` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddCheckpoint {
    /// The size of the checkpoint the witness last cosigned for this log (0: none).
    pub old_size: u64,
    /// RFC 6962 consistency proof from `old_size` to the checkpoint's size.
    pub proof: Vec<Hash>,
    /// The checkpoint: a signed note.
    pub checkpoint: String,
}

impl AddCheckpoint {
    /// The request body.
    pub fn to_body(&self) -> String {
        let mut s = format!("old {}\n", self.old_size);
        for h in &self.proof {
            s.push_str(&B64.encode(h));
            s.push('\n');
        }
        s.push('\n');
        s.push_str(&self.checkpoint);
        s
    }

    /// Parse a request body strictly (decimal size without leading zeros, at most
    /// [`MAX_PROOF_HASHES`] canonical base64 hashes, a blank line, the note).
    pub fn parse(body: &str) -> Result<Self, Error> {
        const BAD: Error = Error::Malformed("add-checkpoint body");
        if body.len() > MAX_ADD_CHECKPOINT_LEN {
            return Err(Error::NoteTooLarge);
        }
        let (first, mut rest) = body.split_once('\n').ok_or(BAD)?;
        let size = first.strip_prefix("old ").ok_or(BAD)?;
        if size.is_empty()
            || !size.bytes().all(|b| b.is_ascii_digit())
            || (size.len() > 1 && size.starts_with('0'))
        {
            return Err(BAD);
        }
        let old_size = size.parse().map_err(|_| BAD)?;
        let mut proof = Vec::new();
        loop {
            let (line, after) = rest.split_once('\n').ok_or(BAD)?;
            rest = after;
            if line.is_empty() {
                break;
            }
            if proof.len() == MAX_PROOF_HASHES {
                return Err(BAD);
            }
            let raw = B64.decode(line).map_err(|_| BAD)?;
            if raw.len() != HASH_LEN {
                return Err(BAD);
            }
            proof.push(Hash::from_slice(&raw).map_err(|_| BAD)?);
        }
        Ok(Self {
            old_size,
            proof,
            checkpoint: rest.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> (aws_lc_rs::signature::Ed25519KeyPair, WitnessKey) {
        use aws_lc_rs::signature::KeyPair as _;
        let kp = aws_lc_rs::signature::Ed25519KeyPair::from_seed_unchecked(&[7u8; 32]).unwrap();
        let pk: [u8; 32] = kp.public_key().as_ref().try_into().unwrap();
        (kp, WitnessKey::new(name, &pk).unwrap())
    }

    /// A note with a (not verified here) log signature line.
    fn log_note() -> String {
        format!(
            "example.com/log\n5\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n\u{2014} example.com/log {}\n",
            B64.encode([1u8; 68])
        )
    }

    #[test]
    fn a_cosignature_verifies_and_a_changed_timestamp_or_text_does_not() {
        let (kp, w) = key("witness.example");
        let text = "example.com/log\n5\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n";
        let sig: [u8; 64] = kp
            .sign(&cosignature_message(1_700_000_000, text))
            .as_ref()
            .try_into()
            .unwrap();
        let note =
            add_signature_lines(&log_note(), &[w.signature_line(1_700_000_000, &sig)]).unwrap();
        assert_eq!(
            verify_cosignatures(&note, std::slice::from_ref(&w)).unwrap(),
            [Cosigned {
                witness: "witness.example".into(),
                timestamp: 1_700_000_000
            }]
        );
        // Another witness's key: nothing counted, nothing refused.
        let (_, other) = key("other.example");
        assert!(verify_cosignatures(&note, &[other]).unwrap().is_empty());
        // The timestamp is signed: a line with another one does not count.
        let forged =
            add_signature_lines(&log_note(), &[w.signature_line(1_700_000_001, &sig)]).unwrap();
        assert!(
            verify_cosignatures(&forged, std::slice::from_ref(&w))
                .unwrap()
                .is_empty()
        );
        // The text is signed.
        let other_text = note.replace("\n5\n", "\n6\n");
        assert!(
            verify_cosignatures(&other_text, std::slice::from_ref(&w))
                .unwrap()
                .is_empty()
        );
        // A bad line beside a good one cancels nothing; one key under two names counts once.
        let both = add_signature_lines(&note, &[w.signature_line(1_700_000_001, &sig)]).unwrap();
        assert_eq!(
            verify_cosignatures(&both, std::slice::from_ref(&w))
                .unwrap()
                .len(),
            1
        );
        let alias = WitnessKey::new("alias.example", w.public_key()).unwrap();
        assert_eq!(
            verify_cosignatures(&note, &[w.clone(), alias])
                .unwrap()
                .len(),
            1
        );
        assert_eq!(WitnessKey::from_vkey(&w.to_vkey()).unwrap(), w);
        let log_vkey = crate::NoteVerifier::new("x", w.public_key())
            .unwrap()
            .to_vkey();
        assert!(
            WitnessKey::from_vkey(&log_vkey).is_err(),
            "a type-0x01 key is no witness key"
        );
    }

    #[test]
    fn vkeys_whose_base64_holds_a_plus_round_trip() {
        // Base64's alphabet has '+': a key must not be split there (names cannot hold '+').
        let mut found = 0;
        for b in 0..=255u8 {
            let pk = [b; 32];
            let w = WitnessKey::new("w.example", &pk).unwrap();
            let n = crate::NoteVerifier::new("log.example", &pk).unwrap();
            let (wv, nv) = (w.to_vkey(), n.to_vkey());
            if wv.matches('+').count() > 2 || nv.matches('+').count() > 2 {
                found += 1;
            }
            assert_eq!(WitnessKey::from_vkey(&wv).unwrap(), w, "{wv}");
            assert_eq!(crate::NoteVerifier::from_vkey(&nv).unwrap(), n, "{nv}");
        }
        assert!(found > 0, "some key's base64 holds a '+'");
    }

    #[test]
    fn add_checkpoint_bodies_round_trip_and_malformed_ones_are_refused() {
        let req = AddCheckpoint {
            old_size: 3,
            proof: vec![Hash([1u8; 32]), Hash([2u8; 32])],
            checkpoint: log_note(),
        };
        assert_eq!(AddCheckpoint::parse(&req.to_body()).unwrap(), req);
        let empty = AddCheckpoint {
            old_size: 0,
            proof: vec![],
            checkpoint: log_note(),
        };
        assert_eq!(AddCheckpoint::parse(&empty.to_body()).unwrap(), empty);
        for bad in [
            "old 03\n\n".to_string(),
            "old -1\n\n".into(),
            "old 3\n".into(),
            "new 3\n\n".into(),
            format!("old 3\n{}\n\n", B64.encode([1u8; 31])),
            format!("old 3\n{}\n\n", "a".repeat(44)),
            format!(
                "old 3\n{}\n",
                format!("{}\n", B64.encode([1u8; 32])).repeat(64)
            ),
        ] {
            assert!(AddCheckpoint::parse(&bad).is_err(), "{bad:?}");
        }
    }
}

//! C2SP signed-note (c2sp.org/signed-note) with Ed25519 signatures, and C2SP `vkey` strings.
//!
//! ```text
//! <text, ending in "\n">
//! "\n"
//! "— " <key name> " " base64(key ID (4 bytes, big-endian) || Ed25519 signature (64 bytes)) "\n"
//! ```
//!
//! key ID = SHA-256(key name || 0x0A || 0x01 || 32-byte public key)[:4] (signed-note
//! §"Ed25519 signatures").

use aws_lc_rs::digest;
use aws_lc_rs::signature::{ED25519, UnparsedPublicKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use crate::Error;

/// Signature type identifier byte for Ed25519 (signed-note §"Signature types").
pub const ED25519_SIG_TYPE: u8 = 0x01;
/// Largest signed note accepted, in bytes. Signed-note §Format asks verifiers to accept at
/// least 16 signatures, including post-quantum ones of up to ~5 kB (~6.7 kB in base64).
pub const MAX_NOTE_LEN: usize = 128 * 1024;
/// Largest number of signature lines accepted in one note.
pub const MAX_NOTE_SIGNATURES: usize = 64;

const SIG_PREFIX: &str = "\u{2014} ";
const ED25519_PUBLIC_KEY_LEN: usize = 32;
const ED25519_SIGNATURE_LEN: usize = 64;

/// A key that signs notes with Ed25519. The enclave implements it for its own key type, so the
/// private key never leaves it.
pub trait NoteSigner {
    /// The key name (non-empty, no Unicode spaces, no `+`). It SHOULD equal the log origin.
    fn name(&self) -> &str;
    /// The RFC 8032 encoding of the Ed25519 public key.
    fn public_key(&self) -> [u8; 32];
    /// An RFC 8032 Ed25519 signature over `msg`.
    fn sign(&self, msg: &[u8]) -> [u8; 64];
}

/// Signed-note key ID for an Ed25519 key: the first four bytes, big-endian, of
/// SHA-256(name || 0x0A || 0x01 || public key).
pub fn key_id(name: &str, public_key: &[u8; 32]) -> u32 {
    typed_key_id(name, ED25519_SIG_TYPE, public_key)
}

/// The key ID of a key of signature type `sig_type`: SHA-256(name || 0x0A || type || key)[:4]
/// (signed-note; tlog-cosignature uses type 0x04).
pub(crate) fn typed_key_id(name: &str, sig_type: u8, public_key: &[u8; 32]) -> u32 {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(name.as_bytes());
    ctx.update(&[0x0A, sig_type]);
    ctx.update(public_key);
    let d = ctx.finish();
    let mut id = [0u8; 4];
    for (o, b) in id.iter_mut().zip(d.as_ref()) {
        *o = *b;
    }
    u32::from_be_bytes(id)
}

/// `<name>+<8 lower-case hex digits of the key ID>+<base64(type || public key)>`.
pub(crate) fn format_vkey(name: &str, sig_type: u8, public_key: &[u8; 32]) -> String {
    let mut raw = Vec::with_capacity(1 + ED25519_PUBLIC_KEY_LEN);
    raw.push(sig_type);
    raw.extend_from_slice(public_key);
    format!(
        "{name}+{:08x}+{}",
        typed_key_id(name, sig_type, public_key),
        B64.encode(raw)
    )
}

/// Parse a vkey of signature type `sig_type` strictly (the name valid, the key ID the key's;
/// base64 may hold '+', names cannot): the name and the public key.
pub(crate) fn parse_vkey(vkey: &str, sig_type: u8, bad: Error) -> Result<(&str, [u8; 32]), Error> {
    let mut parts = vkey.splitn(3, '+');
    let (Some(name), Some(id_hex), Some(key_b64)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(bad);
    };
    check_key_name(name)?;
    if id_hex.len() != 8
        || !id_hex
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Err(bad);
    }
    let Ok(id) = u32::from_str_radix(id_hex, 16) else {
        return Err(bad);
    };
    let Ok(raw) = B64.decode(key_b64) else {
        return Err(bad);
    };
    let Some((ty, key)) = raw.split_first() else {
        return Err(bad);
    };
    let Ok(public_key) = <[u8; 32]>::try_from(key) else {
        return Err(bad);
    };
    if *ty != sig_type || typed_key_id(name, sig_type, &public_key) != id {
        return Err(bad);
    }
    Ok((name, public_key))
}

/// Signed-note §Format: key names are non-empty and contain no Unicode spaces and no `+`.
/// Control characters are rejected too, since a note may not contain them.
pub(crate) fn check_key_name(name: &str) -> Result<(), Error> {
    if name.is_empty() {
        return Err(Error::InvalidName("key name is empty"));
    }
    if name
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '+')
    {
        return Err(Error::InvalidName(
            "key name contains a space, control character or '+'",
        ));
    }
    Ok(())
}

/// Signed-note §Format: valid UTF-8 (guaranteed by `str`), no control characters but newline.
fn has_forbidden_control(s: &str) -> bool {
    s.bytes().any(|b| b < 0x20 && b != b'\n')
}

/// An Ed25519 note verifier: a key name and public key, with its key ID.
#[derive(Clone, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    key_id: u32,
    public_key: [u8; 32],
}

impl core::fmt::Debug for NoteVerifier {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.to_vkey())
    }
}

impl NoteVerifier {
    /// A verifier for `name` and an Ed25519 public key.
    pub fn new(name: &str, public_key: &[u8; 32]) -> Result<Self, Error> {
        check_key_name(name)?;
        Ok(Self {
            name: name.to_owned(),
            key_id: key_id(name, public_key),
            public_key: *public_key,
        })
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The signed-note key ID.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The Ed25519 public key.
    pub fn public_key(&self) -> &[u8; 32] {
        &self.public_key
    }

    /// The C2SP verifier key string: `<name>+<8 lowercase hex digits of key ID>+<base64(0x01 ||
    /// public key)>`.
    pub fn to_vkey(&self) -> String {
        format_vkey(&self.name, ED25519_SIG_TYPE, &self.public_key)
    }

    /// Parses a verifier key string (strictly: Ed25519 only, key ID must match the key).
    pub fn from_vkey(vkey: &str) -> Result<Self, Error> {
        let (name, public_key) = parse_vkey(vkey, ED25519_SIG_TYPE, Error::Malformed("vkey"))?;
        Self::new(name, &public_key)
    }
}

/// Signs `text` (which must end in a newline and contain no control characters other than
/// newline) and returns the signed note: text, blank line, one signature line.
pub fn sign_note(text: &str, signer: &dyn NoteSigner) -> Result<String, Error> {
    let name = signer.name();
    check_key_name(name)?;
    if !text.ends_with('\n') || has_forbidden_control(text) {
        return Err(Error::InvalidArgument(
            "note text must end in a newline, no control chars",
        ));
    }
    let public_key = signer.public_key();
    let sig = signer.sign(text.as_bytes());
    let mut raw = Vec::with_capacity(4 + ED25519_SIGNATURE_LEN);
    raw.extend_from_slice(&key_id(name, &public_key).to_be_bytes());
    raw.extend_from_slice(&sig);
    let note = format!("{text}\n{SIG_PREFIX}{name} {}\n", B64.encode(raw));
    if note.len() > MAX_NOTE_LEN {
        return Err(Error::NoteTooLarge);
    }
    Ok(note)
}

/// Verifies a signed note against one Ed25519 key and returns its text (including the final
/// newline).
///
/// Strict parsing: the whole note must be well formed (size limit, no control characters,
/// every signature line `— <name> <base64>` with a valid name and a canonical base64 payload of
/// at least 5 bytes). Signatures by other keys are ignored, as signed-note §Signatures
/// requires (witness cosignatures, key rotation); a signature line matching the verifier's name
/// and key ID must verify, and at least one must be present.
pub fn verify_note<'a>(note: &'a str, verifier: &NoteVerifier) -> Result<&'a str, Error> {
    if note.len() > MAX_NOTE_LEN {
        return Err(Error::NoteTooLarge);
    }
    if has_forbidden_control(note) {
        return Err(Error::MalformedNote("control character"));
    }
    // The text is separated from the signatures by the last empty line.
    let sep = note
        .rfind("\n\n")
        .ok_or(Error::MalformedNote("no signature block"))?;
    let (text, sigs) = note.split_at(sep + 1);
    let sigs = sigs
        .strip_prefix('\n')
        .ok_or(Error::MalformedNote("no signature block"))?;
    let sigs = sigs
        .strip_suffix('\n')
        .ok_or(Error::MalformedNote("missing final newline"))?;
    if sigs.is_empty() {
        return Err(Error::MalformedNote("no signatures"));
    }
    let mut verified = false;
    for (n, line) in sigs.split('\n').enumerate() {
        if n >= MAX_NOTE_SIGNATURES {
            return Err(Error::NoteTooLarge);
        }
        let rest = line
            .strip_prefix(SIG_PREFIX)
            .ok_or(Error::MalformedNote("signature line"))?;
        let (name, b64) = rest
            .split_once(' ')
            .ok_or(Error::MalformedNote("signature line"))?;
        check_key_name(name).map_err(|_| Error::MalformedNote("signature key name"))?;
        let raw = B64
            .decode(b64)
            .map_err(|_| Error::MalformedNote("signature base64"))?;
        let (id, sig) = raw
            .split_at_checked(4)
            .ok_or(Error::MalformedNote("signature length"))?;
        if sig.is_empty() {
            return Err(Error::MalformedNote("signature length"));
        }
        let id = u32::from_be_bytes(id.try_into().map_err(|_| Error::MalformedNote("key ID"))?);
        if name != verifier.name || id != verifier.key_id {
            continue; // unknown key: ignored
        }
        if sig.len() != ED25519_SIGNATURE_LEN {
            return Err(Error::BadSignature);
        }
        UnparsedPublicKey::new(&ED25519, &verifier.public_key)
            .verify(text.as_bytes(), sig)
            .map_err(|_| Error::BadSignature)?;
        verified = true;
    }
    if verified {
        Ok(text)
    } else {
        Err(Error::BadSignature)
    }
}

pub(crate) mod danger {
    use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};

    use super::{NoteSigner, check_key_name};
    use crate::Error;

    /// An Ed25519 note signer from a caller-supplied seed, for tests and benches only.
    pub struct TestSigner {
        name: String,
        key: Ed25519KeyPair,
    }

    impl core::fmt::Debug for TestSigner {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            f.debug_struct("TestSigner")
                .field("name", &self.name)
                .finish_non_exhaustive()
        }
    }

    impl TestSigner {
        /// A signer named `name` with the Ed25519 key derived from `seed`.
        pub fn new(name: &str, seed: &[u8; 32]) -> Result<Self, Error> {
            check_key_name(name)?;
            let key = Ed25519KeyPair::from_seed_unchecked(seed)
                .map_err(|_| Error::Malformed("ed25519 seed"))?;
            Ok(Self {
                name: name.to_owned(),
                key,
            })
        }
    }

    impl NoteSigner for TestSigner {
        fn name(&self) -> &str {
            &self.name
        }
        fn public_key(&self) -> [u8; 32] {
            let mut pk = [0u8; 32];
            for (o, b) in pk.iter_mut().zip(self.key.public_key().as_ref()) {
                *o = *b;
            }
            pk
        }
        fn sign(&self, msg: &[u8]) -> [u8; 64] {
            let mut sig = [0u8; 64];
            for (o, b) in sig.iter_mut().zip(self.key.sign(msg).as_ref()) {
                *o = *b;
            }
            sig
        }
    }
}

#[cfg(test)]
mod tests {
    use super::danger::TestSigner;
    use super::*;

    fn signer() -> TestSigner {
        TestSigner::new("example.com/log", &[7u8; 32]).unwrap()
    }

    #[test]
    fn sign_verify_round_trip() {
        let s = signer();
        let v = NoteVerifier::new(s.name(), &s.public_key()).unwrap();
        let note = sign_note("hello\nworld\n", &s).unwrap();
        assert!(note.starts_with("hello\nworld\n\n\u{2014} example.com/log "));
        assert_eq!(verify_note(&note, &v).unwrap(), "hello\nworld\n");
        // Unknown signatures are ignored; a known one is still required.
        let other = TestSigner::new("witness.example", &[9u8; 32]).unwrap();
        let cosig = sign_note("hello\nworld\n", &other).unwrap();
        let cosig_line = cosig.rsplit_once("\n\n").unwrap().1;
        let both = format!("{note}{cosig_line}");
        assert_eq!(verify_note(&both, &v).unwrap(), "hello\nworld\n");
        let only_other = verify_note(&cosig, &v);
        assert!(matches!(only_other, Err(Error::BadSignature)));
    }

    #[test]
    fn rejects_bad_inputs() {
        let s = signer();
        assert!(sign_note("no newline", &s).is_err());
        assert!(sign_note("tab\there\n", &s).is_err());
        assert!(TestSigner::new("bad name", &[1; 32]).is_err());
        assert!(TestSigner::new("bad+name", &[1; 32]).is_err());
        assert!(TestSigner::new("", &[1; 32]).is_err());
        let v = NoteVerifier::new(s.name(), &s.public_key()).unwrap();
        let note = sign_note("x\n", &s).unwrap();
        assert!(verify_note(&format!("{note}junk\n"), &v).is_err());
        assert!(verify_note(note.trim_end_matches('\n'), &v).is_err());
        assert!(verify_note(&"a".repeat(MAX_NOTE_LEN + 1), &v).is_err());
        let wrong = NoteVerifier::new(s.name(), &[3u8; 32]).unwrap();
        assert!(verify_note(&note, &wrong).is_err());
    }

    #[test]
    fn vkey_round_trip() {
        let s = signer();
        let v = NoteVerifier::new(s.name(), &s.public_key()).unwrap();
        let vk = v.to_vkey();
        assert!(vk.starts_with("example.com/log+"));
        assert_eq!(NoteVerifier::from_vkey(&vk).unwrap(), v);
        // Wrong key ID, wrong type byte, extra field.
        let mut parts: Vec<String> = vk.split('+').map(str::to_owned).collect();
        let good_id = parts[1].clone();
        parts[1] = "00000000".into();
        assert!(NoteVerifier::from_vkey(&parts.join("+")).is_err());
        parts[1] = good_id;
        assert!(NoteVerifier::from_vkey(&format!("{vk}+x")).is_err());
        let mut raw = vec![0x02];
        raw.extend_from_slice(&s.public_key());
        parts[2] = B64.encode(raw);
        assert!(NoteVerifier::from_vkey(&parts.join("+")).is_err());
    }

    /// Known answer from golang.org/x/mod/sumdb/note's documentation example: the verifier key
    /// `PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW` has key ID c74f20a3.
    #[test]
    fn vkey_known_answer() {
        let v = NoteVerifier::from_vkey(
            "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        )
        .unwrap();
        assert_eq!(v.key_id(), 0xc74f20a3);
        assert_eq!(v.name(), "PeterNeumann");
    }

    /// Known answer from golang.org/x/mod/sumdb/note (package documentation example): the
    /// signer key `PRIVATE+KEY+PeterNeumann+c74f20a3+<base64(0x01 || seed)>` signs the text
    /// below into exactly this note (Ed25519 is deterministic), and the vkey verifies it.
    #[test]
    fn go_sumdb_note_known_answer() {
        const TEXT: &str = "If you think cryptography is the answer to your problem,\n\
                            then you don't know what your problem is.\n";
        const NOTE_SIG: &str = "\n\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
        let seed_raw = B64
            .decode("AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz")
            .unwrap();
        assert_eq!(seed_raw[0], ED25519_SIG_TYPE);
        let seed: [u8; 32] = seed_raw[1..].try_into().unwrap();
        let s = TestSigner::new("PeterNeumann", &seed).unwrap();
        let note = sign_note(TEXT, &s).unwrap();
        assert_eq!(note, format!("{TEXT}{NOTE_SIG}"));
        let v = NoteVerifier::from_vkey(
            "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        )
        .unwrap();
        assert_eq!(verify_note(&note, &v).unwrap(), TEXT);
        let tampered = note.replace("cryptography", "cryptographY");
        assert!(verify_note(&tampered, &v).is_err());
    }
}

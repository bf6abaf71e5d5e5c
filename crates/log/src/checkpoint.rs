//! C2SP tlog-checkpoint (c2sp.org/tlog-checkpoint §"Note text") signed as a C2SP signed note.
//!
//! ```text
//! <origin>\n
//! <tree size, ASCII decimal, no leading zeroes>\n
//! <base64(root hash)>\n
//! [<extension line>\n]*
//! ```

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use crate::note::{NoteSigner, NoteVerifier, sign_note, verify_note};
use crate::{Error, Hash};

/// A transparency-log checkpoint: the signed tree head of the log at `size`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Checkpoint {
    /// Log identity (first line). Non-empty, no control characters; SHOULD be a schema-less
    /// URL without spaces or `+`, and SHOULD equal the signing key's name.
    pub origin: String,
    /// Number of leaves in the tree.
    pub size: u64,
    /// RFC 9162 Merkle Tree Hash of the first `size` leaves.
    pub root: Hash,
    /// Opaque extension lines (non-empty each; NOT RECOMMENDED by the spec).
    pub extensions: Vec<String>,
}

fn valid_line(s: &str) -> bool {
    !s.is_empty() && !s.chars().any(char::is_control)
}

impl Checkpoint {
    /// A checkpoint without extension lines.
    pub fn new(origin: impl Into<String>, size: u64, root: Hash) -> Self {
        Self {
            origin: origin.into(),
            size,
            root,
            extensions: Vec::new(),
        }
    }

    /// Checks that the checkpoint can be encoded: non-empty origin and extension lines without
    /// newlines or other control characters.
    pub fn validate(&self) -> Result<(), Error> {
        if !valid_line(&self.origin) {
            return Err(Error::InvalidName(
                "checkpoint origin must be a non-empty line",
            ));
        }
        if !self.extensions.iter().all(|e| valid_line(e)) {
            return Err(Error::InvalidArgument(
                "checkpoint extension lines must be non-empty lines",
            ));
        }
        Ok(())
    }

    /// The note text: origin, size, base64 root and extension lines, each ending in `\n`.
    /// Only meaningful for a checkpoint that passes [`Checkpoint::validate`].
    pub fn to_note_body(&self) -> String {
        let mut body = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            B64.encode(self.root.0)
        );
        for ext in &self.extensions {
            body.push_str(ext);
            body.push('\n');
        }
        body
    }

    /// Parses a note text strictly (tlog-checkpoint §"Note text"): at least three lines, each
    /// non-empty and newline-terminated, a canonical decimal size, and a canonical base64
    /// encoding of exactly 32 bytes.
    pub fn from_note_body(text: &str) -> Result<Self, Error> {
        let body = text
            .strip_suffix('\n')
            .ok_or(Error::MalformedNote("checkpoint: final newline"))?;
        let mut lines = body.split('\n');
        let (Some(origin), Some(size), Some(root)) = (lines.next(), lines.next(), lines.next())
        else {
            return Err(Error::MalformedNote("checkpoint: fewer than three lines"));
        };
        if !valid_line(origin) {
            return Err(Error::MalformedNote("checkpoint: origin"));
        }
        let size_ok = !size.is_empty()
            && size.bytes().all(|b| b.is_ascii_digit())
            && (size == "0" || !size.starts_with('0'));
        if !size_ok {
            return Err(Error::MalformedNote("checkpoint: size"));
        }
        let size: u64 = size
            .parse()
            .map_err(|_| Error::MalformedNote("checkpoint: size"))?;
        let root = B64
            .decode(root)
            .map_err(|_| Error::MalformedNote("checkpoint: root base64"))?;
        let root =
            Hash::from_slice(&root).map_err(|_| Error::MalformedNote("checkpoint: root length"))?;
        let mut extensions = Vec::new();
        for ext in lines {
            if !valid_line(ext) {
                return Err(Error::MalformedNote("checkpoint: empty extension line"));
            }
            extensions.push(ext.to_owned());
        }
        Ok(Self {
            origin: origin.to_owned(),
            size,
            root,
            extensions,
        })
    }
}

/// Signs a checkpoint as a C2SP signed note with the log's Ed25519 key.
///
/// Returns an error (never panics) if the checkpoint or key name cannot be encoded.
pub fn sign_checkpoint(checkpoint: &Checkpoint, signer: &dyn NoteSigner) -> Result<String, Error> {
    checkpoint.validate()?;
    sign_note(&checkpoint.to_note_body(), signer)
}

/// Verifies a signed checkpoint note against the log key (`verifier_name`, Ed25519
/// `public_key`) and parses its body strictly.
///
/// This does not compare the origin line with anything: a caller that knows the log's origin
/// should use [`verify_checkpoint_for_origin`].
pub fn verify_checkpoint(
    note: &str,
    verifier_name: &str,
    public_key: &[u8; 32],
) -> Result<Checkpoint, Error> {
    let verifier = NoteVerifier::new(verifier_name, public_key)?;
    let text = verify_note(note, &verifier)?;
    Checkpoint::from_note_body(text)
}

/// [`verify_checkpoint`], then checks that the origin line is `origin`.
pub fn verify_checkpoint_for_origin(
    note: &str,
    origin: &str,
    verifier_name: &str,
    public_key: &[u8; 32],
) -> Result<Checkpoint, Error> {
    let cp = verify_checkpoint(note, verifier_name, public_key)?;
    if cp.origin != origin {
        return Err(Error::WrongOrigin);
    }
    Ok(cp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::danger::TestSigner;
    use crate::{EMPTY_ROOT, leaf_hash};

    #[test]
    fn body_format() {
        let cp = Checkpoint::new("example.com/log", 0, EMPTY_ROOT);
        assert_eq!(
            cp.to_note_body(),
            "example.com/log\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n"
        );
        assert_eq!(Checkpoint::from_note_body(&cp.to_note_body()).unwrap(), cp);
    }

    #[test]
    fn strict_body_parsing() {
        let root = B64.encode(leaf_hash(b"x").0);
        let good = format!("o\n12\n{root}\n");
        assert!(Checkpoint::from_note_body(&good).is_ok());
        for bad in [
            format!("o\n012\n{root}\n"),
            format!("o\n+12\n{root}\n"),
            format!("o\n 12\n{root}\n"),
            format!("o\n18446744073709551616\n{root}\n"),
            format!("o\n12\n{root}"),
            format!("\n12\n{root}\n"),
            format!("o\n12\n{root}\n\n"),
            format!("o\n12\n{}\n", &root[..root.len() - 1]),
            format!("o\n12\n{}\n", B64.encode([0u8; 31])),
            "o\n12\n".to_owned(),
        ] {
            assert!(Checkpoint::from_note_body(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn sign_and_verify() {
        let s = TestSigner::new("example.com/log", &[1u8; 32]).unwrap();
        let mut cp = Checkpoint::new("example.com/log", 5, leaf_hash(b"r"));
        cp.extensions.push("ext one".into());
        let note = sign_checkpoint(&cp, &s).unwrap();
        let pk = s.public_key();
        assert_eq!(
            verify_checkpoint(&note, "example.com/log", &pk).unwrap(),
            cp
        );
        assert_eq!(
            verify_checkpoint_for_origin(&note, "example.com/log", "example.com/log", &pk).unwrap(),
            cp
        );
        assert!(matches!(
            verify_checkpoint_for_origin(&note, "other", "example.com/log", &pk),
            Err(Error::WrongOrigin)
        ));
        assert!(verify_checkpoint(&note, "example.com/other", &pk).is_err());
        assert!(verify_checkpoint(&note, "example.com/log", &[2u8; 32]).is_err());
        let bad = Checkpoint::new("two\nlines", 1, EMPTY_ROOT);
        assert!(sign_checkpoint(&bad, &s).is_err());
    }
}

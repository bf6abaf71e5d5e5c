//! Gramine's `/dev/attestation` pseudo-filesystem (SGX): write 64 bytes to `user_report_data`,
//! read a DCAP quote from `quote`; `attestation_type` must be `dcap`.

use std::path::PathBuf;

use super::{EvidenceProvider, ProviderError, io, read_limited};
use crate::Evidence;

/// Gramine provider rooted at `root` (`/dev/attestation`, or a fake directory in tests).
#[derive(Debug, Clone)]
pub struct Gramine {
    root: PathBuf,
}

impl Gramine {
    /// Use `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// Inside a Gramine enclave.
    pub fn system() -> Self {
        Self::new("/dev/attestation")
    }
}

impl EvidenceProvider for Gramine {
    fn evidence(&mut self, report_data: &[u8; 64]) -> Result<Evidence, ProviderError> {
        let kind = read_limited(&self.root.join("attestation_type"))?;
        if kind.trim_ascii() != b"dcap" {
            return Err(ProviderError::Protocol(format!(
                "Gramine attestation_type is `{}`, not dcap",
                String::from_utf8_lossy(&kind).trim()
            )));
        }
        std::fs::write(self.root.join("user_report_data"), report_data)
            .map_err(io("write user_report_data"))?;
        let quote = read_limited(&self.root.join("quote"))?;
        if quote.is_empty() {
            return Err(ProviderError::Protocol("empty quote".into()));
        }
        Ok(Evidence::Sgx(quote))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake(kind: &str, quote: &[u8]) -> PathBuf {
        let root = std::env::temp_dir().join(format!(
            "sb-gramine-{}-{kind}-{}",
            std::process::id(),
            quote.len()
        ));
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join("attestation_type"), kind).unwrap();
        std::fs::write(root.join("quote"), quote).unwrap();
        root
    }

    #[test]
    fn reads_a_quote_from_a_fake_directory() {
        let root = fake("dcap\n", b"sgx-quote");
        let ev = Gramine::new(&root).evidence(&[5; 64]).unwrap();
        assert_eq!(ev, Evidence::Sgx(b"sgx-quote".to_vec()));
        assert_eq!(
            std::fs::read(root.join("user_report_data")).unwrap(),
            vec![5; 64]
        );
    }

    #[test]
    fn refuses_epid_empty_and_missing() {
        assert!(Gramine::new(fake("epid", b"q")).evidence(&[0; 64]).is_err());
        assert!(Gramine::new(fake("dcap", b"")).evidence(&[0; 64]).is_err());
        assert!(Gramine::new("/nonexistent").evidence(&[0; 64]).is_err());
    }
}

//! Linux configfs-tsm report interface (Documentation/ABI/testing/configfs-tsm): create a report
//! directory, write 64 bytes to `inblob`, read `outblob`; `generation` detects a concurrent
//! writer; `provider` names the TEE (`tdx_guest`, `sev_guest`).

use std::path::{Path, PathBuf};

use super::{EvidenceProvider, ProviderError, io, read_limited};
use crate::Evidence;

/// The real mount point.
pub const CONFIGFS_TSM_REPORT: &str = "/sys/kernel/config/tsm/report";

/// configfs-tsm provider rooted at `root` (the real path or a fake tree in tests).
#[derive(Debug, Clone)]
pub struct ConfigfsTsm {
    root: PathBuf,
    name: String,
    /// SEV-SNP: the VMPL to request (`privlevel`); `None` leaves the kernel default.
    pub privlevel: Option<u8>,
}

impl ConfigfsTsm {
    /// Use report entry `name` under `root`.
    pub fn new(root: impl Into<PathBuf>, name: &str) -> Self {
        Self {
            root: root.into(),
            name: name.into(),
            privlevel: None,
        }
    }

    /// The system's configfs-tsm.
    pub fn system() -> Self {
        Self::new(CONFIGFS_TSM_REPORT, "sealbridge")
    }

    fn read_text(path: &Path) -> Result<String, ProviderError> {
        let b = read_limited(path)?;
        String::from_utf8(b)
            .map(|s| s.trim().to_owned())
            .map_err(|_| ProviderError::Protocol(format!("{} is not text", path.display())))
    }

    fn generation(dir: &Path) -> Result<u64, ProviderError> {
        Self::read_text(&dir.join("generation"))?
            .parse()
            .map_err(|_| ProviderError::Protocol("generation is not a number".into()))
    }
}

impl EvidenceProvider for ConfigfsTsm {
    fn evidence(&mut self, report_data: &[u8; 64]) -> Result<Evidence, ProviderError> {
        let dir = self.root.join(&self.name);
        if !dir.is_dir() {
            std::fs::create_dir(&dir).map_err(io(format!("mkdir {}", dir.display())))?;
        }
        if let Some(level) = self.privlevel {
            std::fs::write(dir.join("privlevel"), level.to_string())
                .map_err(io("write privlevel"))?;
        }
        std::fs::write(dir.join("inblob"), report_data).map_err(io("write inblob"))?;
        let generation = Self::generation(&dir)?;
        let outblob = read_limited(&dir.join("outblob"))?;
        // Another writer changed inblob between our write and read: the outblob is not ours.
        if Self::generation(&dir)? != generation {
            return Err(ProviderError::Protocol(
                "configfs-tsm generation changed during the request (concurrent writer)".into(),
            ));
        }
        if outblob.is_empty() {
            return Err(ProviderError::Protocol("empty outblob".into()));
        }
        match Self::read_text(&dir.join("provider"))?.as_str() {
            "tdx_guest" => Ok(Evidence::Tdx(outblob)),
            "sev_guest" => Ok(Evidence::Snp(outblob)),
            other => Err(ProviderError::Protocol(format!(
                "unknown configfs-tsm provider `{other}`"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake(provider: &str, outblob: &[u8]) -> PathBuf {
        let root = std::env::temp_dir().join(format!(
            "sb-tsm-{}-{provider}-{}",
            std::process::id(),
            outblob.len()
        ));
        let dir = root.join("sealbridge");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("outblob"), outblob).unwrap();
        std::fs::write(dir.join("provider"), format!("{provider}\n")).unwrap();
        std::fs::write(dir.join("generation"), "1\n").unwrap();
        root
    }

    #[test]
    fn reads_tdx_and_snp_from_a_fake_tree() {
        let root = fake("tdx_guest", b"quote");
        let ev = ConfigfsTsm::new(&root, "sealbridge")
            .evidence(&[7; 64])
            .unwrap();
        assert_eq!(ev, Evidence::Tdx(b"quote".to_vec()));
        assert_eq!(
            std::fs::read(root.join("sealbridge/inblob")).unwrap(),
            vec![7; 64]
        );

        let root = fake("sev_guest", b"report!");
        let mut p = ConfigfsTsm::new(&root, "sealbridge");
        p.privlevel = Some(1);
        assert_eq!(
            p.evidence(&[1; 64]).unwrap(),
            Evidence::Snp(b"report!".to_vec())
        );
        assert_eq!(
            std::fs::read_to_string(root.join("sealbridge/privlevel")).unwrap(),
            "1"
        );
    }

    #[test]
    fn refuses_unknown_provider_empty_and_oversized_outblobs() {
        let root = fake("arm_cca_guest", b"x");
        assert!(
            ConfigfsTsm::new(&root, "sealbridge")
                .evidence(&[0; 64])
                .is_err()
        );
        let root = fake("tdx_guest", b"");
        assert!(
            ConfigfsTsm::new(&root, "sealbridge")
                .evidence(&[0; 64])
                .is_err()
        );
        let root = fake(
            "tdx_guest",
            &vec![0; super::super::MAX_OUTBLOB as usize + 1],
        );
        assert!(matches!(
            ConfigfsTsm::new(&root, "sealbridge").evidence(&[0; 64]),
            Err(ProviderError::Protocol(_))
        ));
        // No configfs at all.
        assert!(matches!(
            ConfigfsTsm::new("/nonexistent/tsm", "x").evidence(&[0; 64]),
            Err(ProviderError::Io { .. })
        ));
        let root = fake("tdx_guest", b"q");
        std::fs::write(root.join("sealbridge/generation"), "two").unwrap();
        assert!(
            ConfigfsTsm::new(&root, "sealbridge")
                .evidence(&[0; 64])
                .is_err()
        );
    }
}

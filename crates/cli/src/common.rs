//! What several commands share — key files, the sending account, bounded file reads, the
//! node's `/v1/enclave` fields, log output — so that no command module imports another.

use std::path::Path;

use alloy_primitives::Address;
use anyhow::{Context, bail};
use sealbridge_chain::{Chain, rpc::RpcChain};

/// Largest file read (evidence, collateral, chains, policy, keys): 1 MiB.
pub(crate) const MAX_FILE: u64 = 1 << 20;

/// Read a file with a size limit.
pub(crate) fn read_file(path: &Path) -> anyhow::Result<Vec<u8>> {
    let meta = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    if meta.len() > MAX_FILE {
        bail!("{} is larger than {MAX_FILE} bytes", path.display());
    }
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// A secp256k1 secret key from a hex file. The file's bytes and the decoded key bytes are
/// zeroized when dropped, and no error carries (part of) them.
pub(crate) fn load_key(path: &Path) -> anyhow::Result<k256::ecdsa::SigningKey> {
    let bytes = zeroize::Zeroizing::new(read_file(path)?);
    let text = std::str::from_utf8(&bytes).map_err(|_| anyhow::anyhow!("key file is not text"))?;
    let raw = zeroize::Zeroizing::new(
        hex::decode(text.trim().trim_start_matches("0x"))
            .map_err(|_| anyhow::anyhow!("key is not hex"))?,
    );
    // Exactly 32 bytes: `from_slice` would zero-pad a truncated key (24..32 bytes) into
    // another valid key.
    if raw.len() != 32 {
        bail!("not a secp256k1 secret key (expected 32 bytes, 64 hex digits)");
    }
    k256::ecdsa::SigningKey::from_slice(&raw)
        .map_err(|_| anyhow::anyhow!("not a secp256k1 secret key"))
}

/// Read a secp256k1 key file (hex), for the account this process sends transactions from.
/// Warns when other users can read it.
pub(crate) fn read_key(path: &Path) -> anyhow::Result<k256::ecdsa::SigningKey> {
    warn_if_shared(path);
    load_key(path).with_context(|| format!("key file {}", path.display()))
}

/// A secret key file should be readable by its owner only.
pub(crate) fn warn_if_shared(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(m) = std::fs::metadata(path)
        && m.permissions().mode() & 0o077 != 0
    {
        eprintln!(
            "warning: key file {} is accessible to other users (mode {:o}); chmod 600 it",
            path.display(),
            m.permissions().mode() & 0o777
        );
    }
}

/// The account this process sends its transactions from on `rpc`: the key's, with
/// transactions signed locally (EIP-1559), or without a key the endpoint's first unlocked
/// account (development chains). Refused if it cannot pay for gas.
pub(crate) fn sending_account(
    rpc: &mut RpcChain,
    key: Option<k256::ecdsa::SigningKey>,
) -> anyhow::Result<Address> {
    let account = match key {
        Some(key) => rpc.add_local_key(key),
        None => {
            let first = rpc
                .accounts()
                .context("listing the endpoint's unlocked accounts")?
                .first()
                .copied();
            first.context(
                "the endpoint holds no unlocked account: pass --key-file with the sending key",
            )?
        }
    };
    if rpc
        .balance(account)
        .context("reading the sender's balance")?
        .is_zero()
    {
        bail!("account {account} has no funds on this chain to pay for its transactions");
    }
    Ok(account)
}

/// A string field of the node's `/v1/enclave` answer, parsed (an address, a hash).
pub(crate) fn field<T: std::str::FromStr>(info: &serde_json::Value, key: &str) -> anyhow::Result<T>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    info[key]
        .as_str()
        .with_context(|| format!("the node's /v1/enclave has no {key}"))?
        .parse()
        .with_context(|| format!("the node's {key}"))
}

/// Text log lines on stderr, filtered by `RUST_LOG` (default `info`), for short-lived commands.
pub(crate) fn init_tracing() {
    // No OTLP export: the guard holds nothing to flush.
    let _ = crate::telemetry::init(crate::telemetry::LogFormat::Text, None);
}

/// Log options of a long-running command (`node`, `verifier serve`).
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct LogArgs {
    /// Log lines on stderr as `text` or `json` (one object per event); `RUST_LOG` filters them
    /// (default `info`).
    #[arg(long, value_enum, default_value_t, env = "SEALBRIDGE_LOG_FORMAT")]
    pub log_format: crate::telemetry::LogFormat,
    /// Export spans to this OpenTelemetry collector over OTLP/HTTP (e.g.
    /// http://localhost:4318); off when not given.
    #[arg(long, env = "SEALBRIDGE_OTLP")]
    pub otlp: Option<String>,
}

impl LogArgs {
    /// Install the subscriber; keep the guard until the process ends (it flushes the spans).
    pub(crate) fn init(&self) -> anyhow::Result<crate::telemetry::Guard> {
        crate::telemetry::init(self.log_format, self.otlp.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::load_key;

    fn key_file(content: &[u8]) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        std::fs::write(&path, content).unwrap();
        (dir, path)
    }

    #[test]
    fn a_good_key_file_loads_with_or_without_0x_and_whitespace() {
        let hex = "11".repeat(32);
        for text in [hex.clone(), format!("0x{hex}\n"), format!("  {hex}  ")] {
            let (_d, p) = key_file(text.as_bytes());
            assert_eq!(load_key(&p).unwrap().to_bytes()[..], [0x11; 32]);
        }
    }

    #[test]
    fn a_bad_key_file_is_a_clear_error_that_quotes_nothing_of_it() {
        let secretish = "ab".repeat(31);
        let bad_digit = format!("{secretish}g1");
        let cases: [(&[u8], &str); 5] = [
            (&[0xff, 0xfe, 0x00], "not text"),
            (b"zz not hex at all", "not hex"),
            (bad_digit.as_bytes(), "not hex"),
            (secretish.as_bytes(), "expected 32 bytes"), // 31 bytes: truncated, never padded
            (&[b'0'; 64], "not a secp256k1 secret key"), // zero is not a key
        ];
        for (content, want) in cases {
            let (_d, p) = key_file(content);
            let err = format!("{:#}", load_key(&p).unwrap_err());
            assert!(err.contains(want), "{err}");
            assert!(!err.contains(&secretish), "the error quotes the key: {err}");
        }
        let missing = std::path::Path::new("/nonexistent/sealbridge/key");
        assert!(load_key(missing).is_err());
    }
}

//! Development helper: an anvil process on a free loopback port, killed when dropped (tests and
//! `sealbridge` examples). anvil comes from npm (`@foundry-rs/anvil`, installed by `npm ci`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sealbridge_chain::{Chain, rpc::RpcChain};

use crate::HostError;

/// A running anvil.
#[derive(Debug)]
pub struct Anvil {
    child: Child,
    /// Its JSON-RPC URL.
    pub url: String,
    /// Its port.
    pub port: u16,
}

/// Where anvil is: `$SEALBRIDGE_ANVIL`, else the platform binary that `@foundry-rs/anvil`
/// installed under `node_modules` above `start` (not the `.bin/anvil` Node wrapper, which would
/// outlive a kill of the wrapper), else `node_modules/.bin/anvil`.
pub fn find_anvil(start: &Path) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("SEALBRIDGE_ANVIL") {
        return Some(PathBuf::from(p));
    }
    for dir in start.ancestors() {
        let scope = dir.join("node_modules/@foundry-rs");
        if let Ok(rd) = std::fs::read_dir(&scope) {
            for e in rd.flatten() {
                let bin = e.path().join("bin/anvil");
                if e.file_name().to_string_lossy().starts_with("anvil-") && bin.exists() {
                    return Some(bin);
                }
            }
        }
        let wrapper = dir.join("node_modules/.bin/anvil");
        if wrapper.exists() {
            return Some(wrapper);
        }
    }
    None
}

/// A free loopback port (bound and released; racy but fine for tests).
pub fn free_port() -> Result<u16, HostError> {
    let l =
        std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| HostError::Config(e.to_string()))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| HostError::Config(e.to_string()))
}

impl Anvil {
    /// Start anvil on `port` (a free one if `None`) and wait until it answers.
    pub fn start(bin: &Path, port: Option<u16>) -> Result<Self, HostError> {
        let port = match port {
            Some(p) => p,
            None => free_port()?,
        };
        let child = Command::new(bin)
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--silent",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| HostError::Chain(format!("starting {}: {e}", bin.display())))?;
        let url = format!("http://127.0.0.1:{port}");
        let mut a = Self { child, url, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(c) = RpcChain::connect(&a.url)
                && c.block_number().is_ok()
            {
                return Ok(a);
            }
            if Instant::now() > deadline || !matches!(a.child.try_wait(), Ok(None)) {
                let _ = a.child.kill();
                return Err(HostError::Chain("anvil did not come up".into()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stop it (kill -9); the port becomes free.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Anvil {
    fn drop(&mut self) {
        self.kill();
    }
}

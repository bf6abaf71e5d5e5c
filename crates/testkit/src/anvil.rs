//! An anvil process on a free loopback port, killed when dropped (tests and examples). anvil
//! comes from npm (`@foundry-rs/anvil`, installed by `npm ci`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::Error;

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

/// anvil found from this workspace (see [`find_anvil`]), or a panic that says to run `npm ci`.
pub fn anvil_bin() -> PathBuf {
    // The compile-time manifest dir can name another checkout when a shared build cache reused
    // this crate's artifact (workspace fingerprints do not depend on the path): the working
    // directory (a test runs in its crate's) is the fallback.
    find_anvil(Path::new(env!("CARGO_MANIFEST_DIR")))
        .or_else(|| std::env::current_dir().ok().and_then(|d| find_anvil(&d)))
        .unwrap_or_else(|| {
            panic!("anvil not found under node_modules: run `npm ci` (scripts/test.sh does)")
        })
}

/// A free loopback port (bound and released; racy but fine for tests).
pub fn free_port() -> Result<u16, Error> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(Error::io("binding a free loopback port"))
}

impl Anvil {
    /// Start anvil on `port` (a free one if `None`) and wait until it answers.
    pub fn start(bin: &Path, port: Option<u16>) -> Result<Self, Error> {
        Self::start_with_args(bin, port, &[])
    }

    /// [`Self::start`] with extra command-line arguments (`--block-time 1`, `--chain-id 5`, ...).
    pub fn start_with_args(bin: &Path, port: Option<u16>, args: &[&str]) -> Result<Self, Error> {
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
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(Error::io(format!("starting {}", bin.display())))?;
        let url = format!("http://127.0.0.1:{port}");
        let mut a = Self { child, url, port };
        let agent = sealbridge_net::agent(&sealbridge_net::AgentConfig::with_timeout(
            Duration::from_secs(2),
        ))
        .map_err(|e| Error::Anvil(e.to_string()))?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if answers(&agent, &a.url) {
                return Ok(a);
            }
            if Instant::now() > deadline || !matches!(a.child.try_wait(), Ok(None)) {
                a.kill();
                return Err(Error::Anvil("anvil did not come up".into()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A fresh anvil from this workspace's `node_modules` on a free port; panics (with the
    /// remedy) when anvil is missing or does not start. For tests.
    pub fn spawn() -> Self {
        Self::start(&anvil_bin(), None).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The address it listens on (`127.0.0.1:port`), e.g. as a proxy's upstream.
    pub fn addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Stop it (kill -9); the port becomes free.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether `url` answers `eth_blockNumber` with a result.
fn answers(agent: &ureq::Agent, url: &str) -> bool {
    let body = br#"{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}"#;
    agent
        .post(url)
        .header("content-type", "application/json")
        .send(&body[..])
        .ok()
        .and_then(|mut r| r.body_mut().read_to_string().ok())
        .is_some_and(|t| t.contains("\"result\""))
}

impl Drop for Anvil {
    fn drop(&mut self) {
        self.kill();
    }
}

//! What the CLI's process-level tests share: a child process killed when dropped, and a bounded
//! wait.

use std::process::Child;
use std::time::{Duration, Instant};

pub mod live;
pub mod tee;

/// A child process (node, anvil wrapper, verifier service…), killed and reaped when dropped so
/// a failing test leaves nothing running.
#[derive(Debug)]
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Poll `f` every 50 ms until it holds; fail the test after `secs` seconds, naming `what`.
#[allow(dead_code)] // not every test crate waits
pub fn wait_until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

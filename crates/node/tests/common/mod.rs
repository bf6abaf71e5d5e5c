//! Helpers shared by the node's integration tests (a module of each test that declares it).
#![allow(dead_code)]

use std::time::{Duration, Instant};

use alloy_primitives::Address;
use rand_chacha::ChaCha20Rng;
use sealbridge_client::{Attested, NodeClient};
use sealbridge_deploy::dev::participants;
use sealbridge_node::unix_now;
use sealbridge_programs::netting::Obligation;

/// Poll `f` every 50 ms until it holds; panics naming `what` after `secs` seconds.
pub fn wait_until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `n` accepted obligations around a ring of the first four development participants.
pub fn submit_n(c: &NodeClient, a: &Attested, rng: &mut ChaCha20Rng, token: Address, n: u32) {
    let ps = participants(4);
    for i in 0..n {
        let from = (i % 4) as usize;
        let ob = Obligation {
            to: ps[(from + 1) % 4].account,
            token,
            amount: u128::from(i % 5) + 1,
        };
        let env = a
            .seal(&ps[from].key, &ob.encode(), unix_now(), 3600, rng)
            .unwrap();
        let (code, v) = c.submit(&env, 20).unwrap();
        assert_eq!(code, 200, "{v}");
    }
}

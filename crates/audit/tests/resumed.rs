//! A log continued by an enclave resumed from the chain (issue 12, lost data directory): the
//! settled prefix of the lost enclave's log, then the successor's `Resumed` entry and its own
//! entries. Its checkpoint verifies under the successor's key (announced after the `Resumed`
//! entry), not the lost enclave's; every entry decodes strictly.

use alloy_primitives::{Address, B256};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use sealbridge_audit::{
    entries::{Entry, decode},
    kept::check_entries_under,
};
use sealbridge_enclave::{
    Enclave, EnclavePolicy, SettlementTarget,
    boundary::{BOUNDARY_VERSION, ChainEvent, Request, Response},
    resume::{ChainBalance, ChainResume},
    session::Session,
};
use sealbridge_log::{CompactRange, leaf_hash};
use sealbridge_programs::netting::{Netting, NettingConfig, Participant};
use sealbridge_seal::{at_rest::RootSecret, keys::Ed25519SigningKey};

const T0: u64 = 1_700_000_000;
const TOKEN: Address = Address::repeat_byte(0xee);
const TARGET: SettlementTarget = SettlementTarget {
    chain_id: 31337,
    settlement: Address::repeat_byte(0x5e),
};

fn policy() -> EnclavePolicy {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    EnclavePolicy::new(
        NettingConfig {
            participants: (1..=2u8)
                .map(|i| Participant {
                    sender: Ed25519SigningKey::generate(&mut rng).public().sender_id(),
                    account: Address::repeat_byte(i),
                })
                .collect(),
            tokens: vec![TOKEN],
        },
        4,
    )
}

fn checkpoint(e: &mut Enclave<Netting>) -> String {
    match e.handle(Request::Checkpoint) {
        Response::Checkpoint { note } => note,
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_resumed_log_verifies_under_the_successors_key() {
    let policy = policy();
    let mut lost = Enclave::boot_durable(
        policy.clone(),
        Netting::new(&policy.netting),
        TARGET,
        Box::new(ChaCha20Rng::seed_from_u64(2)),
        T0,
        &RootSecret::from_bytes([3; 32]),
    )
    .unwrap();
    let r = lost.handle(Request::Chain(ChainEvent::Deposit {
        account: Address::repeat_byte(1),
        token: TOKEN,
        amount: 50,
    }));
    assert_eq!(r, Response::Ack);
    let Response::Batch(Some(s1)) = lost.handle(Request::Heartbeat { now: T0 + 1 }) else {
        panic!("heartbeat")
    };
    let Response::LogEntries { entries: log, .. } = lost.handle(Request::LogEntries) else {
        panic!()
    };
    let origin = lost.log_origin().to_string();
    let lost_note = checkpoint(&mut lost);
    assert!(check_entries_under(&log, &lost_note, &origin).is_ok());

    let size = s1.statement.logSize;
    let mut range = CompactRange::new();
    for e in &log[..size as usize] {
        range.append(leaf_hash(e)).unwrap();
    }
    let chain = ChainResume {
        block: 7,
        sequence: 1,
        state_root: s1.statement.newStateRoot,
        requests_decided: 0,
        log_size: size,
        log_root: s1.statement.logRoot,
        frontier: range.hashes().iter().map(|h| B256::from(h.0)).collect(),
        balances: vec![ChainBalance {
            account: Address::repeat_byte(1),
            token: TOKEN,
            amount: 50,
        }],
        previous: s1.signer,
        previous_ed25519: [0; 32],
        lost_log_size: log.len() as u64,
    };
    let mut session = Session::new(
        RootSecret::from_bytes([9; 32]),
        Box::new(|| Box::new(ChaCha20Rng::seed_from_u64(5))),
    );
    assert!(matches!(
        session.handle(Request::Hello {
            version: BOUNDARY_VERSION
        }),
        Response::Hello { .. }
    ));
    let r = session.handle(Request::ResumeFromChain {
        policy: policy.clone(),
        target: TARGET,
        chain: Box::new(chain),
        now: T0 + 10,
    });
    assert_eq!(r, Response::Ack);
    let mut successor = session.into_enclave().unwrap();
    let Response::LogEntries { entries, .. } = successor.handle(Request::LogEntries) else {
        panic!()
    };
    let mut full = log[..size as usize].to_vec();
    full.extend(entries);
    let note = checkpoint(&mut successor);
    let cp = check_entries_under(&full, &note, &origin).unwrap();
    assert_eq!(cp.size, full.len() as u64);
    // Every entry decodes strictly; the one at the settled size is the resumption.
    assert!(full.iter().all(|e| decode(e).is_ok()));
    assert!(matches!(
        decode(&full[size as usize]),
        Ok(Entry::Resumed(r)) if r.settled_log_size == size && r.sequence == 1
    ));
    // The lost enclave's checkpoint does not cover the successor's log.
    assert!(check_entries_under(&full, &lost_note, &origin).is_err());
}

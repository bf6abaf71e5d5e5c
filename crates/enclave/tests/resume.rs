//! Resuming from the chain after the enclave and the host's data are lost (issue 12): a fresh
//! enclave session started with `ResumeFromChain` takes the chain's balances, sequence, state
//! root and requests decided, continues the settled log prefix (refusing a frontier that does
//! not hash to the chain's log root), learns of escapes, and its first statement chains from the
//! chain's state root at the next sequence.

mod common;

use alloy_primitives::{Address, B256};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use sealbridge_enclave::{
    Enclave, EnclavePolicy, SettlementTarget, SignedStatement,
    boundary::{BOUNDARY_VERSION, BoundaryError, ChainEvent, EnclaveStatus, Request, Response},
    log_entry::{self, EntryKind, ResumedEntry},
    resume::{ChainBalance, ChainResume},
    session::Session,
};
use sealbridge_log::{CompactRange, leaf_hash};
use sealbridge_programs::netting::Netting;
use sealbridge_seal::at_rest::RootSecret;

const T0: u64 = 1_700_000_000;
const TOKEN: Address = Address::repeat_byte(0xee);
const TARGET: SettlementTarget = SettlementTarget {
    chain_id: 31337,
    settlement: Address::repeat_byte(0x5e),
};

fn policy() -> EnclavePolicy {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    common::participants_and_policy(&mut rng, 3, TOKEN, 4).1
}

/// The lost enclave: deposits, a settled heartbeat statement 1, more deposits. Returns its
/// published log and statement 1.
fn lost_enclave(policy: &EnclavePolicy) -> (Vec<Vec<u8>>, SignedStatement) {
    let mut e = Enclave::boot_durable(
        policy.clone(),
        Netting::new(&policy.netting),
        TARGET,
        Box::new(ChaCha20Rng::seed_from_u64(2)),
        T0,
        &RootSecret::from_bytes([3; 32]),
    )
    .unwrap();
    for i in 1..=3u8 {
        let r = e.handle(Request::Chain(ChainEvent::Deposit {
            account: Address::repeat_byte(i),
            token: TOKEN,
            amount: 100 * u128::from(i),
        }));
        assert_eq!(r, Response::Ack);
    }
    let Response::Batch(Some(s)) = e.handle(Request::Heartbeat { now: T0 + 10 }) else {
        panic!("heartbeat")
    };
    // Void after the loss: a second heartbeat the chain never saw.
    let Response::Batch(Some(_)) = e.handle(Request::Heartbeat { now: T0 + 20 }) else {
        panic!("heartbeat 2")
    };
    let Response::LogEntries { entries, .. } = e.handle(Request::LogEntries) else {
        panic!("log")
    };
    (entries, *s)
}

/// The chain's view after statement 1 settled (balances as deposited).
fn chain_view(log: &[Vec<u8>], s: &SignedStatement) -> ChainResume {
    let size = s.statement.logSize;
    let mut range = CompactRange::new();
    for e in &log[..size as usize] {
        range.append(leaf_hash(e)).unwrap();
    }
    assert_eq!(B256::from(range.root().0), s.statement.logRoot);
    ChainResume {
        block: 42,
        sequence: s.statement.sequence,
        state_root: s.statement.newStateRoot,
        requests_decided: 0,
        log_size: size,
        log_root: s.statement.logRoot,
        frontier: range.hashes().iter().map(|h| B256::from(h.0)).collect(),
        balances: (1..=3u8)
            .map(|i| ChainBalance {
                account: Address::repeat_byte(i),
                token: TOKEN,
                amount: 100 * u128::from(i),
            })
            .collect(),
        previous: s.signer,
        previous_ed25519: [0; 32],
        lost_log_size: log.len() as u64,
    }
}

fn session() -> Session {
    let mut s = Session::new(
        RootSecret::from_bytes([9; 32]),
        Box::new(|| Box::new(ChaCha20Rng::seed_from_u64(5))),
    );
    let r = s.handle(Request::Hello {
        version: BOUNDARY_VERSION,
    });
    assert!(matches!(r, Response::Hello { .. }));
    s
}

fn resume(s: &mut Session, policy: &EnclavePolicy, chain: ChainResume) -> Response {
    s.handle(Request::ResumeFromChain {
        policy: policy.clone(),
        target: TARGET,
        chain: Box::new(chain),
        now: T0 + 100,
    })
}

fn refusal(r: Response) -> String {
    match r {
        Response::Error(BoundaryError::Refused(why)) => why,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn status(s: &mut Session) -> EnclaveStatus {
    match s.handle(Request::Status) {
        Response::Status(st) => st,
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_wrong_frontier_or_foreign_balances_are_refused_and_nothing_boots() {
    let policy = policy();
    let (log, s1) = lost_enclave(&policy);
    let good = chain_view(&log, &s1);
    let mut s = session();

    let mut flipped = good.clone();
    flipped.frontier[0].0[0] ^= 1;
    let why = refusal(resume(&mut s, &policy, flipped));
    assert!(
        why.contains("does not hash to the chain's logRoot"),
        "{why}"
    );
    let mut short = good.clone();
    short.frontier.pop();
    let why = refusal(resume(&mut s, &policy, short));
    assert!(why.contains("hashes; a settled log of"), "{why}");
    // A frontier of a longer prefix (the void statement 2 included) is not the settled log.
    let mut longer = good.clone();
    let mut range = CompactRange::new();
    for e in &log {
        range.append(leaf_hash(e)).unwrap();
    }
    longer.frontier = range.hashes().iter().map(|h| B256::from(h.0)).collect();
    assert!(refusal(resume(&mut s, &policy, longer)).contains("log frontier"));
    let mut foreign = good.clone();
    foreign.balances.push(ChainBalance {
        account: Address::repeat_byte(0x77),
        token: TOKEN,
        amount: 1,
    });
    assert!(refusal(resume(&mut s, &policy, foreign)).contains("not a participant"));
    let mut unsorted = good.clone();
    unsorted.balances.swap(0, 1);
    assert!(refusal(resume(&mut s, &policy, unsorted)).contains("strictly ascending"));
    let mut lost_below = good.clone();
    lost_below.lost_log_size = good.log_size - 1;
    assert!(refusal(resume(&mut s, &policy, lost_below)).contains("below the settled"));
    assert!(s.enclave().is_none(), "nothing booted");
    // The right one still boots in the same session.
    assert_eq!(resume(&mut s, &policy, good), Response::Ack);
}

#[test]
fn a_resumed_enclave_continues_the_settled_log_and_chains_from_the_settled_root() {
    let policy = policy();
    let (log, s1) = lost_enclave(&policy);
    let chain = chain_view(&log, &s1);
    let mut s = session();
    assert_eq!(resume(&mut s, &policy, chain.clone()), Response::Ack);
    let st = status(&mut s);
    assert_eq!(st.sequence, 1);
    assert_eq!(st.state_root, chain.state_root);
    assert_eq!(st.last_request_id, 0);
    // Resumed, key announcement, policy, epoch, session start.
    assert_eq!(st.log_size, chain.log_size + 5);
    let Response::LogEntries {
        first_index,
        entries,
    } = s.handle(Request::LogEntries)
    else {
        panic!()
    };
    assert_eq!(first_index, chain.log_size);
    let kinds: Vec<EntryKind> = entries
        .iter()
        .map(|e| log_entry::decode(e).unwrap().0)
        .collect();
    assert_eq!(
        kinds,
        [
            EntryKind::Resumed,
            EntryKind::KeyAnnouncement,
            EntryKind::PolicyChange,
            EntryKind::EpochRotation,
            EntryKind::SessionStart
        ]
    );
    let resumed = ResumedEntry::decode(log_entry::decode(&entries[0]).unwrap().1).unwrap();
    let e = s.enclave().unwrap();
    assert_eq!(
        resumed,
        ResumedEntry {
            sequence: 1,
            settled_log_size: chain.log_size,
            lost_log_size: log.len() as u64,
            requests_decided: 0,
            block: 42,
            previous: s1.signer,
            previous_ed25519: [0; 32],
            state_root: chain.state_root,
            balances_root: e.balances_root(),
        }
    );
    // The balances are the chain's: the lost enclave's state root after statement 1 had the
    // same deposits, so the roots agree here.
    assert_eq!(resumed.balances_root, chain.state_root);

    // An escape while the deployment is still frozen lowers the balance.
    let r = s.handle(Request::Chain(ChainEvent::Escape {
        account: Address::repeat_byte(2),
        token: TOKEN,
        amount: 200,
    }));
    assert_eq!(r, Response::Ack);
    let e = s.enclave().unwrap();
    assert_eq!(e.program().escrow_of(Address::repeat_byte(2), TOKEN), 0);
    assert_eq!(e.program().escrow_of(Address::repeat_byte(3), TOKEN), 300);

    // Its first statement: sequence 2 from the chain's root, anchoring the settled prefix
    // extended by its own entries.
    let Response::Batch(Some(s2)) = s.handle(Request::Heartbeat { now: T0 + 200 }) else {
        panic!("heartbeat")
    };
    assert_eq!(s2.statement.sequence, 2);
    assert_eq!(s2.statement.prevStateRoot, chain.state_root);
    assert_ne!(s2.statement.newStateRoot, chain.state_root, "the escape");
    let mut full = log[..chain.log_size as usize].to_vec();
    full.extend(entries);
    let Response::LogEntries { entries: more, .. } = s.handle(Request::LogEntries) else {
        panic!()
    };
    full.extend(more);
    let mut range = CompactRange::new();
    for e in &full[..s2.statement.logSize as usize] {
        range.append(leaf_hash(e)).unwrap();
    }
    assert_eq!(B256::from(range.root().0), s2.statement.logRoot);
    assert_ne!(s2.signer, s1.signer, "a new instance");

    // After its first statement the deployment is no longer frozen for it: an escape (a host
    // inventing one to zero a participant's escrow in the enclave's view) is refused and
    // changes nothing.
    let before = s
        .enclave()
        .unwrap()
        .program()
        .escrow_of(Address::repeat_byte(3), TOKEN);
    let r = s.handle(Request::Chain(ChainEvent::Escape {
        account: Address::repeat_byte(3),
        token: TOKEN,
        amount: 300,
    }));
    assert!(
        matches!(&r, Response::Error(BoundaryError::Refused(why)) if why.contains("resumed from the chain")),
        "{r:?}"
    );
    assert_eq!(
        s.enclave()
            .unwrap()
            .program()
            .escrow_of(Address::repeat_byte(3), TOKEN),
        before
    );
}

#[test]
fn a_resumed_enclave_snapshots_and_restores_like_any_other() {
    let policy = policy();
    let (log, s1) = lost_enclave(&policy);
    let chain = chain_view(&log, &s1);
    let mut s = session();
    assert_eq!(resume(&mut s, &policy, chain), Response::Ack);
    let before = status(&mut s);
    let Response::Snapshot(m) = s.handle(Request::Snapshot { chunk_bytes: 4096 }) else {
        panic!()
    };
    let chunks: Vec<Vec<u8>> = (0..m.chunks)
        .map(
            |index| match s.handle(Request::SnapshotChunk { id: m.id, index }) {
                Response::SnapshotChunk { blob, .. } => blob,
                other => panic!("{other:?}"),
            },
        )
        .collect();
    let mut again = session();
    let r = again.handle(Request::Restore {
        policy: policy.clone(),
        target: TARGET,
        manifest: *m,
    });
    assert!(matches!(r, Response::Restoring { .. }), "{r:?}");
    for (i, c) in chunks.into_iter().enumerate() {
        again.handle(Request::RestoreChunk {
            index: i as u32,
            blob: c,
        });
    }
    let after = status(&mut again);
    assert_eq!(
        (after.sequence, after.state_root, after.log_root),
        (before.sequence, before.state_root, before.log_root)
    );
}

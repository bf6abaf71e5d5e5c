//! The journaled embedded chain (`EmbeddedChain::open_journaled`): state, logs, receipts and
//! block hashes are the same after drop and reopen; a changed byte (in a payload, a check value,
//! a length or any header byte), a removed record or another configuration is refused and the
//! file left untouched; only a torn last record is dropped — saved aside first, reported — and
//! appending goes on.
#![cfg(feature = "embedded")] // runs on the in-process revm chain

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use alloy_primitives::{Address, B256, Bytes, U256};
use alloy_sol_types::SolCall;
use sealbridge_chain::bindings::Settlement;
use sealbridge_chain::{
    Chain, ChainError, DeployParams, EmbeddedChain, EmbeddedConfig, Sealbridge, TxReceipt,
};

/// A fresh path under the system temp dir (removed by `Tmp`'s drop).
struct Tmp(PathBuf);

impl Tmp {
    fn new(name: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "sealbridge-journal-test-{}-{}-{name}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
    fn file(&self) -> PathBuf {
        self.0.join("chain.journal")
    }
}

impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Everything a reader can observe.
#[derive(Debug, PartialEq, Eq)]
struct Observed {
    head: u64,
    timestamp: u64,
    hashes: Vec<B256>,
    balances: Vec<U256>,
    logs: Vec<sealbridge_chain::LogEntry>,
    receipts: Vec<Option<TxReceipt>>,
    policy: Vec<u8>,
}

fn observe(c: &EmbeddedChain, settlement: Address, txs: &[B256], who: &[Address]) -> Observed {
    let head = c.block_number().unwrap();
    Observed {
        head,
        timestamp: c.block_timestamp().unwrap(),
        hashes: (0..=head)
            .map(|n| c.block_hash(n).unwrap().unwrap())
            .collect(),
        balances: who.iter().map(|a| c.balance(*a).unwrap()).collect(),
        logs: c.logs(settlement, 0, head).unwrap(),
        receipts: txs.iter().map(|h| c.receipt(*h).unwrap()).collect(),
        // policyHash() of the settlement contract, via eth_call.
        policy: c
            .call(
                who[0],
                settlement,
                Settlement::policyHashCall {}.abi_encode().into(),
            )
            .unwrap()
            .to_vec(),
    }
}

/// Deploy, escrow, impersonation, balances, time and mining on a journaled chain.
fn exercise(path: &std::path::Path) -> (Observed, Address, Vec<B256>, Vec<Address>) {
    let chain = EmbeddedChain::open_journaled(path, EmbeddedConfig::default()).unwrap();
    assert_eq!(chain.journal_recovery().unwrap().replayed, 0);
    let admin = chain.dev_address(0);
    let user = Address::repeat_byte(0x42);
    let params = DeployParams::dev(admin, B256::repeat_byte(0x11), vec![user], vec![]);
    let mut sb = Sealbridge::deploy(chain, &params).unwrap();
    let c = sb.chain_mut();
    c.try_impersonate(user).unwrap();
    c.try_set_balance(user, U256::from(10u64).pow(U256::from(18u64)))
        .unwrap();
    let token = sb.deployment.token;
    let mut txs = vec![sb.mint(admin, user, U256::from(500u64)).unwrap().tx_hash];
    txs.push(sb.deposit(user, token, U256::from(300u64)).unwrap().tx_hash);
    // A reverted transaction is journaled too (it was mined).
    assert!(sb.deposit(user, token, U256::from(10_000u64)).is_err());
    let c = sb.chain_mut();
    c.try_advance_time(3600).unwrap();
    c.try_mine(5).unwrap();
    let t = c.block_timestamp().unwrap();
    c.set_next_timestamp(t + 100).unwrap();
    txs.push(
        sb.set_policy_hash(admin, B256::repeat_byte(0x22))
            .unwrap()
            .tx_hash,
    );
    let settlement = sb.deployment.settlement;
    let who = vec![admin, user];
    (
        observe(sb.chain(), settlement, &txs, &who),
        settlement,
        txs,
        who,
    )
}

#[test]
fn reopen_gives_the_same_chain_and_appending_goes_on() {
    let tmp = Tmp::new("reopen");
    let (before, settlement, txs, who) = exercise(&tmp.file());
    assert!(before.logs.len() >= 2, "Deposited and policy events");
    let mut c = EmbeddedChain::open_journaled(tmp.file(), EmbeddedConfig::default()).unwrap();
    let rec = c.journal_recovery().unwrap().clone();
    assert!(rec.replayed >= 10, "{rec:?}");
    assert_eq!(rec.torn_tail_bytes, 0);
    assert_eq!(observe(&c, settlement, &txs, &who), before);
    // Keep going, reopen again: the new operations are there too.
    let r = c.send(who[0], who[1], Bytes::new()).unwrap();
    c.mine(2);
    let mut txs2 = txs.clone();
    txs2.push(r.tx_hash);
    let after = observe(&c, settlement, &txs2, &who);
    drop(c);
    let c = EmbeddedChain::open_journaled(tmp.file(), EmbeddedConfig::default()).unwrap();
    assert_eq!(observe(&c, settlement, &txs2, &who), after);
    assert_eq!(c.journal_recovery().unwrap().replayed, rec.replayed + 2);
    // A clone is an in-memory snapshot: its changes do not reach the file.
    let mut snapshot = c.clone();
    snapshot.mine(10);
    drop((c, snapshot));
    let c = EmbeddedChain::open_journaled(tmp.file(), EmbeddedConfig::default()).unwrap();
    assert_eq!(c.block_number().unwrap(), after.head);
}

/// Bytes before a record's payload (length, header check) and after it (check value).
const HEADER: usize = 8;
const CHECK: usize = 32;

/// Byte offsets of the records of a journal file (after the magic line), read from the lengths.
fn record_offsets(bytes: &[u8]) -> Vec<usize> {
    let mut at = bytes.iter().position(|b| *b == b'\n').unwrap() + 1;
    let mut offsets = Vec::new();
    while at < bytes.len() {
        offsets.push(at);
        let len = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        at += HEADER + len + CHECK;
    }
    assert_eq!(at, bytes.len(), "records end at the end of the file");
    offsets
}

/// Files next to the journal (saved torn tails).
fn siblings(tmp: &Tmp) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(&tmp.0)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| *p != tmp.file())
        .collect();
    v.sort();
    v
}

/// `bytes` must be refused as corrupt, naming a byte offset, and the file left as it was.
fn assert_refused(tmp: &Tmp, bytes: &[u8], what: &str) -> String {
    std::fs::write(tmp.file(), bytes).unwrap();
    let err = EmbeddedChain::open_journaled(tmp.file(), EmbeddedConfig::default())
        .expect_err("corruption must be refused");
    let msg = err.to_string();
    assert!(
        msg.contains("corrupt") || msg.contains("not deterministic"),
        "{what}: {msg}"
    );
    assert!(msg.contains("refusing"), "{what}: {msg}");
    assert_eq!(
        std::fs::read(tmp.file()).unwrap(),
        bytes,
        "{what}: the file was changed ({msg})"
    );
    assert_eq!(siblings(tmp), Vec::<PathBuf>::new(), "{what}");
    msg
}

#[test]
fn a_changed_byte_is_refused() {
    let tmp = Tmp::new("corrupt");
    exercise(&tmp.file());
    let clean = std::fs::read(tmp.file()).unwrap();
    // Flip one bit in each of a few places (inside records, past the magic).
    for at in [60, clean.len() / 3, clean.len() / 2, clean.len() - 40] {
        let mut bytes = clean.clone();
        bytes[at] ^= 0x01;
        assert_refused(&tmp, &bytes, &format!("byte {at}"));
    }
    // Every header byte of every record (length and header check), low and high bits: a
    // changed length must never be read as a torn tail and truncate acknowledged records.
    let offsets = record_offsets(&clean);
    assert!(offsets.len() >= 10, "{offsets:?}");
    for (i, &rec) in offsets.iter().enumerate() {
        for at in rec..rec + HEADER {
            for bit in [0x01, 0x80] {
                let mut bytes = clean.clone();
                bytes[at] ^= bit;
                let msg = assert_refused(&tmp, &bytes, &format!("record {i}, header byte {at}"));
                assert!(
                    msg.contains(&format!("record {i} at byte offset {rec}")),
                    "{msg}"
                );
            }
        }
        // And the last byte of its check value.
        let end = offsets.get(i + 1).copied().unwrap_or(clean.len());
        let mut bytes = clean.clone();
        bytes[end - 1] ^= 0x01;
        assert_refused(&tmp, &bytes, &format!("record {i}, check value"));
    }
    // Bad magic.
    let mut bytes = clean.clone();
    bytes[0] ^= 0xff;
    std::fs::write(tmp.file(), &bytes).unwrap();
    let err = EmbeddedChain::open_journaled(tmp.file(), EmbeddedConfig::default()).unwrap_err();
    assert!(err.to_string().contains("bad magic"), "{err}");
}

/// The reviewer's case: five fsynced records, one bit flipped in the length of record 2 (which
/// then points past the end of the file). Refused; the file keeps its five records.
#[test]
fn a_changed_length_in_the_middle_never_truncates() {
    let tmp = Tmp::new("length");
    let mut c = EmbeddedChain::open_journaled(tmp.file(), EmbeddedConfig::default()).unwrap();
    let a = c.dev_address(0);
    for i in 0..5u8 {
        c.send(a, a, Bytes::from(vec![i; 40])).unwrap();
    }
    drop(c);
    let clean = std::fs::read(tmp.file()).unwrap();
    let offsets = record_offsets(&clean);
    assert_eq!(offsets.len(), 6);
    // Lengths past the end of the file (what was read as a torn tail) and within it.
    for (byte, bit) in [(1, 0x01), (2, 0x01), (2, 0x80), (3, 0x01), (3, 0x10)] {
        let mut bytes = clean.clone();
        bytes[offsets[2] + byte] ^= bit;
        assert_refused(
            &tmp,
            &bytes,
            &format!("record 2 length byte {byte} ^ {bit:#x}"),
        );
    }
}

#[test]
fn a_removed_record_is_refused() {
    let tmp = Tmp::new("removed");
    let chain = EmbeddedChain::open_journaled(tmp.file(), EmbeddedConfig::default()).unwrap();
    let mut c = chain;
    c.mine(1);
    let one = std::fs::read(tmp.file()).unwrap().len();
    c.mine(1);
    let two = std::fs::read(tmp.file()).unwrap().len();
    c.mine(1);
    drop(c);
    // Cut the middle record out: the chained check of the last one no longer matches.
    let bytes = std::fs::read(tmp.file()).unwrap();
    let mut cut = bytes[..one].to_vec();
    cut.extend_from_slice(&bytes[two..]);
    std::fs::write(tmp.file(), &cut).unwrap();
    let err = EmbeddedChain::open_journaled(tmp.file(), EmbeddedConfig::default()).unwrap_err();
    assert!(err.to_string().contains("record 2"), "{err}");
}

#[test]
fn torn_tail_is_dropped_saved_and_reported() {
    let tmp = Tmp::new("torn");
    let mut c = EmbeddedChain::open_journaled(tmp.file(), EmbeddedConfig::default()).unwrap();
    let a = c.dev_address(0);
    c.send(a, a, Bytes::new()).unwrap();
    let good = std::fs::read(tmp.file()).unwrap();
    let state = (c.block_number().unwrap(), c.block_hash(1).unwrap());
    c.send(a, a, Bytes::from(vec![1u8; 100])).unwrap();
    drop(c);
    let full = std::fs::read(tmp.file()).unwrap();
    let last = full.len() - good.len();
    let torn_file = |tail: &[u8]| [&good[..], tail].concat();
    let record = &full[good.len()..];
    let mut landed_then_zeros = record[..20].to_vec();
    landed_then_zeros.resize(60, 0);
    let mut end_never_landed = record.to_vec();
    end_never_landed[last - CHECK..].fill(0);
    // Every strict prefix of the last record is a torn write, also with zeros where the data did
    // not land; so is a zero-filled tail, and a last record whose check value never landed.
    let mut cases: Vec<Vec<u8>> = [1, 3, 4, 5, 7, 8, 50, last - 1]
        .iter()
        .map(|keep| record[..*keep].to_vec())
        .collect();
    cases.push(landed_then_zeros);
    cases.push(end_never_landed);
    cases.push(vec![0u8; 77]);
    for tail in cases {
        std::fs::write(tmp.file(), torn_file(&tail)).unwrap();
        let mut c = EmbeddedChain::open_journaled(tmp.file(), EmbeddedConfig::default()).unwrap();
        let rec = c.journal_recovery().unwrap().clone();
        assert_eq!(rec.torn_tail_bytes, tail.len() as u64);
        // The dropped bytes are kept next to the journal, named by the offset cut at.
        let saved = rec.torn_tail_saved.expect("saved");
        assert!(
            saved
                .to_string_lossy()
                .ends_with(&format!("chain.journal.torn-{}", good.len())),
            "{saved:?}"
        );
        assert_eq!(std::fs::read(&saved).unwrap(), tail);
        std::fs::remove_file(&saved).unwrap();
        assert_eq!((c.block_number().unwrap(), c.block_hash(1).unwrap()), state);
        assert_eq!(std::fs::read(tmp.file()).unwrap(), good, "truncated");
        // Appending continues from the good prefix and survives another reopen.
        let r = c.send(a, a, Bytes::from(vec![2u8])).unwrap();
        drop(c);
        let c = EmbeddedChain::open_journaled(tmp.file(), EmbeddedConfig::default()).unwrap();
        assert_eq!(c.journal_recovery().unwrap().torn_tail_bytes, 0);
        assert_eq!(c.receipt(r.tx_hash).unwrap(), Some(r));
        drop(c);
        std::fs::write(tmp.file(), &good).unwrap();
    }
    // An earlier save at the same offset is kept, not overwritten.
    std::fs::write(tmp.file(), torn_file(&record[..9])).unwrap();
    drop(EmbeddedChain::open_journaled(tmp.file(), EmbeddedConfig::default()).unwrap());
    std::fs::write(tmp.file(), torn_file(&record[..10])).unwrap();
    let c = EmbeddedChain::open_journaled(tmp.file(), EmbeddedConfig::default()).unwrap();
    let second = c
        .journal_recovery()
        .unwrap()
        .torn_tail_saved
        .clone()
        .unwrap();
    assert!(second.to_string_lossy().ends_with(".1"), "{second:?}");
    assert_eq!(siblings(&tmp).len(), 2);
    drop(c);
    for s in siblings(&tmp) {
        std::fs::remove_file(s).unwrap();
    }
    // Not a prefix of one record: refused, nothing dropped.
    let mut header_then_garbage = record[..6].to_vec();
    header_then_garbage.extend_from_slice(&[0u8, 0, 0, 9]);
    for tail in [
        vec![0xffu8; 10],
        header_then_garbage,
        // After a complete record: a byte that no length up to the record limit starts with.
        [record, &[0xffu8][..]].concat(),
    ] {
        assert_refused(&tmp, &torn_file(&tail), &format!("tail {tail:02x?}"));
    }
}

#[test]
fn another_configuration_is_refused() {
    let tmp = Tmp::new("config");
    let mut c = EmbeddedChain::open_journaled(tmp.file(), EmbeddedConfig::default()).unwrap();
    c.mine(1);
    drop(c);
    let other = EmbeddedConfig {
        chain_id: 1,
        ..EmbeddedConfig::default()
    };
    let err = EmbeddedChain::open_journaled(tmp.file(), other).unwrap_err();
    assert!(matches!(err, ChainError::BadRequest(_)), "{err}");
    assert!(err.to_string().contains("another configuration"), "{err}");
}

#[test]
fn failed_operations_are_not_journaled() {
    let tmp = Tmp::new("failed");
    let mut c = EmbeddedChain::open_journaled(tmp.file(), EmbeddedConfig::default()).unwrap();
    let len = std::fs::read(tmp.file()).unwrap().len();
    let stranger = Address::repeat_byte(0x99);
    assert!(c.send(stranger, stranger, Bytes::new()).is_err());
    assert!(c.set_next_timestamp(0).is_err());
    assert_eq!(std::fs::read(tmp.file()).unwrap().len(), len);
}

/// What the journal costs (printed, not asserted): an fsync per operation, and replay time.
#[test]
fn append_and_replay_cost() {
    let tmp = Tmp::new("cost");
    let mut c = EmbeddedChain::open_journaled(tmp.file(), EmbeddedConfig::default()).unwrap();
    let (a, b) = (c.dev_address(0), c.dev_address(1));
    let n = 200;
    let t = std::time::Instant::now();
    for i in 0..n {
        c.send(a, b, Bytes::from(vec![i as u8; 64])).unwrap();
    }
    let append = t.elapsed();
    let head = c.block_hash(n).unwrap();
    drop(c);
    let t = std::time::Instant::now();
    let c = EmbeddedChain::open_journaled(tmp.file(), EmbeddedConfig::default()).unwrap();
    let replay = t.elapsed();
    assert_eq!(c.block_hash(n).unwrap(), head);
    assert_eq!(c.journal_recovery().unwrap().replayed, n);
    let mut mem = EmbeddedChain::new();
    let t = std::time::Instant::now();
    for i in 0..n {
        mem.send(a, b, Bytes::from(vec![i as u8; 64])).unwrap();
    }
    eprintln!(
        "{n} sends: journaled {append:?} ({:?} each), in memory {:?}; reopen + replay {replay:?}",
        append / n as u32,
        t.elapsed()
    );
}

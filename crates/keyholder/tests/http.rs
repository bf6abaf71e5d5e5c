//! Three keyholders over HTTP (`serve` on 127.0.0.1, `RemoteKeyholder`), a custody enclave in
//! process behind `CustodyLink`: a fresh Boot deals the root, a successor's Restore recovers it
//! from two keyholders (the third stopped), and the snapshot opens. Prints the release and
//! recovery times (`cargo test -p sealbridge-keyholder --test http -- --nocapture`).
//!
//! The keyholders' chain client is a fixed allowlist (the simulated netting measurement) here;
//! the sandbox scenarios read `Settlement.measurementAllowed` from a real deployment.

use std::sync::Arc;
use std::time::Instant;

use alloy_primitives::{Address, B256, Bytes};
use sealbridge_core::link::{EnclaveLink, InProc};
use sealbridge_enclave::{
    EnclavePolicy, SettlementTarget,
    boundary::{BOUNDARY_VERSION, Request, Response},
    custody::Custody,
    policy::simulated_measurement,
};
use sealbridge_keyholder::{
    FixedChain, Keyholder, KeyholderApi, KeyholderFailure, ReleaseRequest, RemoteKeyholder,
    host::{Custodian, CustodyLink, SharedKeyholder},
};
use sealbridge_programs::netting::NettingConfig;

fn target() -> SettlementTarget {
    SettlementTarget {
        chain_id: 31337,
        settlement: Address::repeat_byte(0x5e),
    }
}

fn hello(link: &mut dyn EnclaveLink) {
    let r = link
        .call(Request::Hello {
            version: BOUNDARY_VERSION,
        })
        .unwrap();
    assert!(matches!(r, Response::Hello { .. }), "{r:?}");
}

/// Keyholder `dir` for `target()`, appraising under the development policy, its chain allowing
/// the simulated netting measurement.
fn open_keyholder(dir: &std::path::Path) -> Keyholder {
    Keyholder::open(
        dir,
        target(),
        sealbridge_attest::Policy::insecure_dev(),
        Some(Box::new(FixedChain {
            allowed: vec![simulated_measurement("sealbridge/netting/v1")],
            ..FixedChain::default()
        })),
    )
    .unwrap()
}

/// Three initialised keyholder directories and their ids.
fn keyholder_dirs() -> (
    Vec<tempfile::TempDir>,
    Vec<sealbridge_enclave::custody::KeyholderId>,
) {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let ids = dirs
        .iter()
        .map(|d| sealbridge_keyholder::init(d.path()).unwrap().0)
        .collect();
    (dirs, ids)
}

/// Three keyholders served over HTTP on loopback.
fn serve_all(dirs: &[tempfile::TempDir]) -> Vec<sealbridge_keyholder::Served> {
    dirs.iter()
        .map(|d| {
            sealbridge_keyholder::serve(
                Arc::new(open_keyholder(d.path())),
                "127.0.0.1:0".parse().unwrap(),
                None,
            )
            .unwrap()
        })
        .collect()
}

/// A policy of `participants` over the token 0xee…, its root in the custody of `ids`, 2 of 3.
fn custody_policy(
    participants: Vec<sealbridge_programs::netting::Participant>,
    ids: Vec<sealbridge_enclave::custody::KeyholderId>,
) -> EnclavePolicy {
    EnclavePolicy::new(
        NettingConfig {
            participants,
            tokens: vec![Address::repeat_byte(0xee)],
        },
        4,
    )
    .with_custody(Custody {
        threshold: 2,
        keyholders: ids,
    })
}

/// A custodian of `policy` reaching the keyholders at `urls` over HTTP.
fn remote_custodian(urls: &[String], policy: &EnclavePolicy) -> Arc<Custodian<SharedKeyholder>> {
    let ks: Vec<SharedKeyholder> = urls
        .iter()
        .map(|u| Box::new(RemoteKeyholder::new(u).unwrap()) as SharedKeyholder)
        .collect();
    Arc::new(Custodian::new(ks, policy.clone(), target()).unwrap())
}

#[test]
fn deal_over_http_then_a_successor_recovers_from_two_of_three() {
    let (dirs, ids) = keyholder_dirs();
    let mut servers: Vec<_> = serve_all(&dirs).into_iter().map(Some).collect();
    let urls: Vec<String> = servers.iter().flatten().map(|s| s.url()).collect();
    let policy = custody_policy(vec![], ids);
    let custodian = |urls: &[String]| remote_custodian(urls, &policy);

    // A fresh deployment: Boot → "no sealing root" → deal to all three → Boot.
    let mut link = CustodyLink::new(Box::new(InProc::custody()), custodian(&urls));
    hello(&mut link);
    let r = link
        .call(Request::Boot {
            policy: policy.clone(),
            target: target(),
            now: 1_800_000_000,
        })
        .unwrap();
    assert_eq!(r, Response::Ack);
    for u in &urls {
        let info = RemoteKeyholder::new(u).unwrap().info().unwrap();
        assert_eq!(info.generations, vec![0]);
    }
    let Response::Snapshot(m) = link
        .call(Request::Snapshot {
            chunk_bytes: 1 << 16,
        })
        .unwrap()
    else {
        panic!()
    };
    let m = *m;
    let chunks: Vec<Vec<u8>> = (0..m.chunks)
        .map(|index| {
            match link
                .call(Request::SnapshotChunk { id: m.id, index })
                .unwrap()
            {
                Response::SnapshotChunk { blob, .. } => blob,
                r => panic!("{r:?}"),
            }
        })
        .collect();
    drop(link);

    // Refusals over HTTP: malformed JSON (400), unknown path (404), another deployment (422).
    let agent = ureq::Agent::new_with_defaults();
    let resp = agent
        .post(format!("{}/v1/release", urls[0]))
        .header("content-type", "application/json")
        .send(&b"{not json"[..]);
    match resp {
        Ok(r) => assert_eq!(r.status().as_u16(), 400),
        Err(ureq::Error::StatusCode(c)) => assert_eq!(c, 400),
        Err(e) => panic!("{e}"),
    }
    let k0 = RemoteKeyholder::new(&urls[0]).unwrap();
    let e = k0
        .release(&ReleaseRequest {
            chain_id: 1,
            settlement: Address::repeat_byte(0x5e),
            recovery_key: B256::repeat_byte(1),
            challenge: Bytes::from(vec![0u8; 32]),
            tee: 0,
            evidence: Bytes::new(),
        })
        .unwrap_err();
    assert!(
        matches!(&e, KeyholderFailure::Refused { status: 422, code, .. } if code == "wrong_deployment"),
        "{e}"
    );

    // One release, timed: challenge, evidence from a custody session, release.
    let mut probe = InProc::custody();
    hello(&mut probe);
    let started = Instant::now();
    let c = k0.challenge().unwrap();
    let Response::RecoveryEvidence {
        recovery_key,
        tee,
        evidence,
    } = probe
        .call(Request::RecoveryEvidence {
            target: target(),
            challenge: c.challenge.to_vec(),
            now: sealbridge_net::unix_now(),
        })
        .unwrap()
    else {
        panic!()
    };
    let released = k0
        .release(&ReleaseRequest {
            chain_id: 31337,
            settlement: Address::repeat_byte(0x5e),
            recovery_key: B256::from(recovery_key),
            challenge: c.challenge,
            tee,
            evidence: Bytes::from(evidence),
        })
        .unwrap();
    let one_release = started.elapsed();
    assert_eq!(released.shares.len(), 1);

    // The third keyholder goes down; a successor recovers from the other two on Restore.
    servers[2] = None;
    let two = custodian(&urls);
    let mut successor = CustodyLink::new(Box::new(InProc::custody()), two.clone());
    hello(&mut successor);
    let started = Instant::now();
    let mut r = successor
        .call(Request::Restore {
            policy: policy.clone(),
            target: target(),
            manifest: m.clone(),
        })
        .unwrap();
    let recovery = started.elapsed();
    for (index, blob) in (0u32..).zip(&chunks) {
        assert!(matches!(r, Response::Restoring { .. }), "{r:?}");
        r = successor
            .call(Request::RestoreChunk {
                index,
                blob: blob.clone(),
            })
            .unwrap();
    }
    assert_eq!(r, Response::Ack);
    let report = two.last_recovery().unwrap();
    assert_eq!(report.roots.len(), 1);
    assert_eq!(report.roots[0].2, vec![1, 2]);
    assert!(
        report.keyholders[2]
            .outcome
            .starts_with("challenge: unreachable"),
        "{:?}",
        report.keyholders[2]
    );
    println!(
        "keyholder release over HTTP (challenge + evidence + release): {:.2} ms; 2-of-3 recovery (2 releases, 1 keyholder down, recombination): {:.2} ms",
        one_release.as_secs_f64() * 1e3,
        recovery.as_secs_f64() * 1e3
    );

    // With only one keyholder left, recovery fails naming who refused.
    servers[1] = None;
    let mut lonely = CustodyLink::new(Box::new(InProc::custody()), custodian(&urls));
    hello(&mut lonely);
    let e = lonely
        .call(Request::Restore {
            policy,
            target: target(),
            manifest: m,
        })
        .unwrap_err()
        .to_string();
    assert!(e.contains("could not be recovered"), "{e}");
    assert!(e.contains(&urls[1]) && e.contains(&urls[2]), "{e}");
}

/// Review (custody, first start): a persistent enclave process that dealt a root which reached
/// only some keyholders still holds it when the node starts again; `Boot` succeeds on it, and a
/// node serving then would lose the root with that process. `CustodyLink` refuses, naming the
/// keyholder without a share.
#[test]
fn a_persistent_enclave_process_holding_a_partly_dealt_root_is_not_served() {
    let (dirs, ids) = keyholder_dirs();
    let servers = serve_all(&dirs);
    let urls: Vec<String> = servers
        .iter()
        .map(sealbridge_keyholder::Served::url)
        .collect();
    let policy = custody_policy(vec![], ids);
    let custodian = |urls: &[String]| remote_custodian(urls, &policy);
    // The enclave process deals; the delivery reaches keyholders 0 and 1 only.
    let mut process: Box<dyn EnclaveLink> = Box::new(InProc::custody());
    hello(process.as_mut());
    let dealt = process
        .call(Request::CustodyDeal {
            policy: policy.clone(),
            target: target(),
            now: 1_800_000_000,
        })
        .unwrap();
    let mut partial = urls.clone();
    partial[2] = "http://127.0.0.1:1".into();
    let report = custodian(&partial).deliver(&dealt).unwrap();
    assert!(!report.complete());
    // The node starts again against the same process, every keyholder up.
    let mut link = CustodyLink::new(process, custodian(&urls));
    let e = link
        .call(Request::Boot {
            policy: policy.clone(),
            target: target(),
            now: 1_800_000_000,
        })
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("not every keyholder holds a share of generation 0") && e.contains(&urls[2]),
        "{e}"
    );
}

/// A keyholder that releases its real share and 300 made-up ones.
struct Flooding(Keyholder);

impl KeyholderApi for Flooding {
    fn name(&self) -> String {
        "flooding".into()
    }
    fn info(&self) -> Result<sealbridge_keyholder::KeyholderInfo, KeyholderFailure> {
        KeyholderApi::info(&self.0)
    }
    fn challenge(&self) -> Result<sealbridge_keyholder::ChallengeResponse, KeyholderFailure> {
        KeyholderApi::challenge(&self.0)
    }
    fn deliver(
        &self,
        r: &sealbridge_keyholder::DeliverRequest,
    ) -> Result<sealbridge_keyholder::DeliverResponse, KeyholderFailure> {
        KeyholderApi::deliver(&self.0, r)
    }
    fn commit(
        &self,
        r: &sealbridge_keyholder::CommitRequest,
    ) -> Result<sealbridge_keyholder::CommitResponse, KeyholderFailure> {
        KeyholderApi::commit(&self.0, r)
    }
    fn release(
        &self,
        r: &ReleaseRequest,
    ) -> Result<sealbridge_keyholder::ReleaseResponse, KeyholderFailure> {
        let mut out = KeyholderApi::release(&self.0, r)?;
        for g in 0..300u64 {
            out.shares.push(sealbridge_keyholder::ReleasedShare {
                generation: 1_000 + g,
                sealed: Bytes::from(vec![0u8; 64]),
            });
        }
        Ok(out)
    }
}

/// Review (custody): one keyholder answering a release with hundreds of entries made the
/// enclave refuse the whole set (more than 256), so recovery failed although two honest
/// keyholders answered. The host now takes at most 16 per keyholder (its newest).
#[test]
fn a_keyholder_flooding_its_release_does_not_block_recovery() {
    let (dirs, ids) = keyholder_dirs();
    let policy = custody_policy(vec![], ids);
    let honest = |i: usize| Box::new(open_keyholder(dirs[i].path())) as SharedKeyholder;
    let dealer =
        Arc::new(Custodian::new((0..3).map(honest).collect(), policy.clone(), target()).unwrap());
    let mut link = CustodyLink::new(Box::new(InProc::custody()), dealer);
    hello(&mut link);
    let r = link
        .call(Request::Boot {
            policy: policy.clone(),
            target: target(),
            now: 1_800_000_000,
        })
        .unwrap();
    assert_eq!(r, Response::Ack);
    // A successor recovers with keyholder 0 flooding and the other two honest.
    let keyholders: Vec<SharedKeyholder> = vec![
        Box::new(Flooding(open_keyholder(dirs[0].path()))),
        honest(1),
        honest(2),
    ];
    let custodian = Custodian::new(keyholders, policy.clone(), target()).unwrap();
    let mut successor: Box<dyn EnclaveLink> = Box::new(InProc::custody());
    hello(successor.as_mut());
    let report = custodian.recover(successor.as_mut()).unwrap();
    assert_eq!(report.roots.first().map(|r| r.0), Some(0));
    assert_eq!(report.keyholders[0].generations.len(), 16, "{report:?}");
}

/// Issue 12 (lost enclave and data) with key custody: the successor of a custody deployment
/// recovers the root from two of three keyholders on `ResumeFromChain` and resumes (before, a
/// custody deployment could not resume from the chain: the session start found no root).
#[test]
fn a_custody_deployment_resumes_from_the_chain_with_the_keyholders_root() {
    use sealbridge_enclave::{
        boundary::ChainEvent,
        resume::{ChainBalance, ChainResume},
    };
    use sealbridge_log::{CompactRange, leaf_hash};
    let (dirs, ids) = keyholder_dirs();
    let account = Address::repeat_byte(1);
    let token = Address::repeat_byte(0xee);
    let policy = custody_policy(
        vec![sealbridge_programs::netting::Participant {
            sender: sealbridge_seal::keys::Ed25519SigningKey::from_seed([4; 32])
                .public()
                .sender_id(),
            account,
        }],
        ids,
    );
    let custodian = |down: Option<usize>| {
        let ks: Vec<SharedKeyholder> = (0..3)
            .map(|i| {
                if Some(i) == down {
                    Box::new(RemoteKeyholder::new("http://127.0.0.1:1").unwrap()) as SharedKeyholder
                } else {
                    Box::new(open_keyholder(dirs[i].path())) as SharedKeyholder
                }
            })
            .collect();
        Arc::new(Custodian::new(ks, policy.clone(), target()).unwrap())
    };
    // The lost enclave: dealt, booted, a deposit, statement 1 (a heartbeat).
    let mut lost = CustodyLink::new(Box::new(InProc::custody()), custodian(None));
    hello(&mut lost);
    let now = 1_800_000_000;
    let r = lost
        .call(Request::Boot {
            policy: policy.clone(),
            target: target(),
            now,
        })
        .unwrap();
    assert_eq!(r, Response::Ack);
    let r = lost
        .call(Request::Chain(ChainEvent::Deposit {
            account,
            token,
            amount: 50,
        }))
        .unwrap();
    assert_eq!(r, Response::Ack);
    let Response::Batch(Some(s1)) = lost.call(Request::Heartbeat { now: now + 1 }).unwrap() else {
        panic!("heartbeat")
    };
    let Response::LogEntries { entries: log, .. } = lost.call(Request::LogEntries).unwrap() else {
        panic!()
    };
    drop(lost);
    let size = s1.statement.logSize;
    let mut range = CompactRange::new();
    for e in &log[..usize::try_from(size).unwrap()] {
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
            account,
            token,
            amount: 50,
        }],
        previous: s1.signer,
        previous_ed25519: [0; 32],
        lost_log_size: log.len() as u64,
    };
    // The successor, keyholder 2 down: recovers generation 0 from the other two, resumes.
    let two = custodian(Some(2));
    let mut successor = CustodyLink::new(Box::new(InProc::custody()), two.clone());
    hello(&mut successor);
    let r = successor
        .call(Request::ResumeFromChain {
            policy: policy.clone(),
            target: target(),
            chain: Box::new(chain),
            now: now + 10,
        })
        .unwrap();
    assert_eq!(r, Response::Ack);
    let report = two.last_recovery().unwrap();
    assert_eq!(report.roots.first().map(|r| r.0), Some(0));
    let Response::Status(s) = successor.call(Request::Status).unwrap() else {
        panic!()
    };
    assert_eq!(s.sequence, 1);
    // A handover successor of a custody deployment starts awaiting on the keyholders' root
    // too (before: "no sealing root"); the handover itself is exercised without custody.
    let mut awaiting = CustodyLink::new(Box::new(InProc::custody()), custodian(Some(0)));
    hello(&mut awaiting);
    let r = awaiting
        .call(Request::AwaitHandover {
            policy: policy.clone(),
            target: target(),
            now: now + 20,
            build: None,
        })
        .unwrap();
    assert_eq!(r, Response::Ack);
    let Response::Status(s) = awaiting.call(Request::Status).unwrap() else {
        panic!()
    };
    assert!(s.awaiting_handover);
}

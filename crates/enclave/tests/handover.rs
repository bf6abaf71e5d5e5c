//! Handover to an attested successor (issue 12 part 1): the predecessor attests the successor
//! itself against its policy's verifiers, signs a handover at the next sequence, seals its root
//! to the successor and changes no state afterwards; the successor takes the state — open batch
//! included — under its own keys and continues at the next sequence from the same root. Every
//! refusal changes nothing.

mod common;

use alloy_primitives::{Address, B256, Signature};
use alloy_sol_types::SolValue;
use k256::ecdsa::SigningKey;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use rand_core::CryptoRngCore;
use sealbridge_enclave::{
    Enclave, EnclavePolicy, KeyBundle, SettlementTarget, SignedStatement,
    boundary::{BoundaryError, ChainEvent, EnclaveStatus, Request, Response},
    chunks::{ChunkReader, SnapshotManifest},
    epochs::{ChainKey, EpochAnnouncement},
    forensics,
    handover::{SignedHandover, SuccessorEvidence},
    log_entry::{self, EntryKind, HandoverAcceptedEntry, HandoverEntry},
    persist::JournalRecord,
    policy::{HandoverTrust, simulated_measurement_of},
    session::Session,
};
use sealbridge_programs::netting::{Netting, Obligation};
use sealbridge_proto::{
    EnvelopeHeader, Epoch, Nonce, ProgramId, TraceId,
    eip712::{AttestationResult, attestation_result_hash, registry_domain, settlement_domain},
};
use sealbridge_seal::{
    at_rest::RootSecret,
    envelope,
    keys::{Ed25519PublicKey, Ed25519SigningKey},
};

const T0: u64 = 1_700_000_000;
const TOKEN: Address = Address::repeat_byte(0xee);
const REGISTRY: Address = Address::repeat_byte(0x7e);
const TARGET: SettlementTarget = SettlementTarget {
    chain_id: 31337,
    settlement: Address::repeat_byte(0x5e),
};
const ROOT_P: [u8; 32] = [4; 32];
const ROOT_S: [u8; 32] = [5; 32];
/// The successor's build (a new program version under the simulated TEE).
const V2: &str = "v2";

fn rng(seed: u64) -> Box<dyn CryptoRngCore + Send> {
    Box::new(ChaCha20Rng::seed_from_u64(seed))
}

fn m2() -> B256 {
    simulated_measurement_of("sealbridge/netting/v1", Some(V2))
}

/// Three verifiers, threshold 2, successor measurement M2.
fn verifiers() -> Vec<SigningKey> {
    (1u8..=3)
        .map(|i| SigningKey::from_slice(&[i; 32]).unwrap())
        .collect()
}

fn address(k: &SigningKey) -> Address {
    Address::from_public_key(k.verifying_key())
}

fn trust() -> HandoverTrust {
    HandoverTrust {
        verifiers: verifiers().iter().map(address).collect(),
        threshold: 2,
        registry: REGISTRY,
        successors: vec![m2()],
        allow_handover: true,
    }
}

fn sign(key: &SigningKey, digest: B256) -> Vec<u8> {
    let (sig, recid) = key.sign_prehash_recoverable(digest.as_slice()).unwrap();
    [&sig.to_bytes()[..], &[27 + recid.to_byte()]].concat()
}

fn result_for(bundle: &KeyBundle, measurement: B256, expires_at: u64) -> AttestationResult {
    AttestationResult {
        tee: 0,
        measurement,
        tcbStatus: 0,
        enclave: bundle.address,
        ed25519Key: B256::from(bundle.ed25519),
        keyBundleHash: bundle.hash(),
        evidenceHash: B256::repeat_byte(1),
        advisoryHash: B256::ZERO,
        challengeBlock: 7,
        challenge: B256::repeat_byte(2),
        issuedAt: T0,
        expiresAt: expires_at,
    }
}

/// Evidence for the enclave `e`, its result signed by `signers`.
fn evidence_with(
    e: &Enclave<Netting>,
    result: &AttestationResult,
    signers: &[&SigningKey],
) -> SuccessorEvidence {
    let d = e.describe();
    let digest = result.digest(&registry_domain(TARGET.chain_id, REGISTRY));
    SuccessorEvidence {
        key_bundle: d.key_bundle,
        epoch_announcement: d.epoch_announcement,
        result: result.abi_encode(),
        signatures: signers.iter().map(|k| sign(k, digest)).collect(),
    }
}

/// Honest evidence: the enclave's own measurement, signed by verifiers 1 and 3.
fn evidence(e: &Enclave<Netting>) -> SuccessorEvidence {
    let v = verifiers();
    let result = result_for(&e.describe().key_bundle, e.measurement(), T0 + 86_400);
    evidence_with(e, &result, &[&v[0], &v[2]])
}

fn awaiting(build: Option<&str>, policy: &EnclavePolicy, seed: u64) -> Enclave<Netting> {
    Enclave::boot_awaiting_handover(
        policy.clone(),
        Netting::new(&policy.netting),
        TARGET,
        rng(seed),
        T0,
        &RootSecret::from_bytes(ROOT_S),
        build.map(str::to_string),
    )
    .unwrap()
}

type Sealed = (SnapshotManifest, Vec<Vec<u8>>);

/// Participants' keys and accounts, and the randomness clients seal with.
struct Clients {
    users: Vec<(Ed25519SigningKey, Address)>,
    rng: ChaCha20Rng,
    now: u64,
}

impl Clients {
    /// An obligation sealed to the enclave `e` as it describes itself now.
    fn envelope(&mut self, e: &Enclave<Netting>, from: usize, to: usize, amount: u128) -> Vec<u8> {
        let desc = e.describe();
        let ann = EpochAnnouncement::verify(
            &desc.epoch_announcement,
            &Ed25519PublicKey(desc.key_bundle.ed25519),
        )
        .unwrap();
        let header = EnvelopeHeader::new(
            desc.key_bundle.instance_id(),
            ann.epoch,
            ProgramId(desc.program_id.0),
            Nonce(self.rng.r#gen()),
            self.now + 600,
            TraceId(self.rng.r#gen()),
        );
        let ob = Obligation {
            to: self.users[to].1,
            token: TOKEN,
            amount,
        };
        envelope::seal(
            &header,
            &ann.public_key,
            &self.users[from].0,
            &ob.encode(),
            &mut self.rng,
        )
        .unwrap()
    }
}

/// Serve `r` journaled, keeping the record.
fn call(e: &mut Enclave<Netting>, records: &mut Vec<JournalRecord>, r: Request) -> Response {
    match e.handle(Request::Journaled(Box::new(r))) {
        Response::Journaled {
            response, record, ..
        } => {
            if let Some(rec) = record {
                records.push(rec);
            }
            *response
        }
        r => panic!("{r:?}"),
    }
}

/// Submit from `from` to `to`; returns the statements the submission closed.
fn submit(
    e: &mut Enclave<Netting>,
    records: &mut Vec<JournalRecord>,
    c: &mut Clients,
    from: usize,
    to: usize,
) -> Vec<SignedStatement> {
    c.now += 7;
    let envelope = c.envelope(e, from, to, 5);
    match call(
        e,
        records,
        Request::Submit {
            envelope,
            now: c.now,
        },
    ) {
        Response::Submitted(o) => {
            assert_eq!(o.rejected, None);
            o.batches
        }
        r => panic!("{r:?}"),
    }
}

fn status(e: &mut Enclave<Netting>) -> EnclaveStatus {
    match e.handle(Request::Status) {
        Response::Status(s) => s,
        r => panic!("{r:?}"),
    }
}

fn snapshot(e: &mut Enclave<Netting>) -> Sealed {
    let m = match e.handle(Request::Snapshot { chunk_bytes: 211 }) {
        Response::Snapshot(m) => *m,
        r => panic!("{r:?}"),
    };
    let chunks = (0..m.chunks)
        .map(
            |index| match e.handle(Request::SnapshotChunk { id: m.id, index }) {
                Response::SnapshotChunk { blob, .. } => blob,
                r => panic!("{r:?}"),
            },
        )
        .collect();
    (m, chunks)
}

fn log_entries(e: &mut Enclave<Netting>) -> (u64, Vec<Vec<u8>>) {
    match e.handle(Request::LogEntries) {
        Response::LogEntries {
            first_index,
            entries,
        } => (first_index, entries),
        r => panic!("{r:?}"),
    }
}

fn recover(digest: B256, sig: &[u8]) -> Address {
    Signature::from_raw(sig)
        .unwrap()
        .recover_address_from_prehash(&digest)
        .unwrap()
}

/// A predecessor under the production anonymity set (8 inputs from 3 senders, no flush) with
/// statement 1 signed (8 inputs) and 3 inputs waiting in the open batch.
struct Predecessor {
    e: Enclave<Netting>,
    records: Vec<JournalRecord>,
    clients: Clients,
    policy: EnclavePolicy,
    first: SignedStatement,
    /// A snapshot from before the handover, for replay.
    before: Sealed,
}

fn predecessor(trust: HandoverTrust) -> Predecessor {
    let mut crng = ChaCha20Rng::seed_from_u64(8);
    let (users, policy) = common::participants_and_policy(&mut crng, 4, TOKEN, 100);
    let policy = policy.with_anonymity_set(8, 3, 0).with_handover(trust);
    let mut e = Enclave::boot_durable(
        policy.clone(),
        Netting::new(&policy.netting),
        TARGET,
        rng(1),
        T0,
        &RootSecret::from_bytes(ROOT_P),
    )
    .unwrap();
    let mut records = Vec::new();
    for (_, account) in &users {
        call(
            &mut e,
            &mut records,
            Request::Chain(ChainEvent::Deposit {
                account: *account,
                token: TOKEN,
                amount: 1_000,
            }),
        );
    }
    let mut clients = Clients {
        users,
        rng: crng,
        now: T0,
    };
    for i in 0..8 {
        assert!(submit(&mut e, &mut records, &mut clients, i % 3, 3).is_empty());
    }
    let now = clients.now;
    let first = match call(&mut e, &mut records, Request::CutBatch { now }) {
        Response::Batch(Some(s)) => *s,
        r => panic!("{r:?}"),
    };
    assert_eq!(first.statement.inputCount, 8);
    let before = snapshot(&mut e);
    for i in 0..3 {
        assert!(submit(&mut e, &mut records, &mut clients, i, 3).is_empty());
    }
    assert_eq!(status(&mut e).pending_inputs, 3);
    Predecessor {
        e,
        records: records.split_off(before.0.next_record as usize),
        clients,
        policy,
        first,
        before,
    }
}

fn handover(
    p: &mut Predecessor,
    evidence: SuccessorEvidence,
) -> Result<(SignedHandover, Vec<u8>), BoundaryError> {
    handover_logged(p, evidence).map(|(h, package, _, _)| (h, package))
}

/// The signed handover, the package, and the log entries it appended (first index, entries).
type HandoverLogged = (SignedHandover, Vec<u8>, u64, Vec<Vec<u8>>);

/// [`handover`], with the log entries it appended (first index, entries).
fn handover_logged(
    p: &mut Predecessor,
    evidence: SuccessorEvidence,
) -> Result<HandoverLogged, BoundaryError> {
    let now = p.clients.now + 1;
    let r = p.e.handle(Request::Journaled(Box::new(Request::Handover {
        successor: evidence,
        now,
    })));
    let Response::Journaled {
        response,
        record,
        log_first_index,
        log_entries,
    } = r
    else {
        panic!("{r:?}")
    };
    match *response {
        Response::HandedOver { handover, package } => {
            p.records.extend(record);
            Ok((*handover, package, log_first_index, log_entries))
        }
        Response::Error(e) => {
            assert!(record.is_none(), "a refusal journals nothing");
            assert!(log_entries.is_empty(), "a refusal logs nothing");
            Err(e)
        }
        r => panic!("{r:?}"),
    }
}

/// The awaiting `s` takes the package and the predecessor's snapshot.
fn accept(
    s: &Enclave<Netting>,
    package: &[u8],
    snap: &Sealed,
) -> Result<Enclave<Netting>, BoundaryError> {
    let (mut reader, header) = s.open_handover(package, snap.0.clone())?;
    for (i, c) in snap.1.iter().enumerate() {
        reader
            .push(i as u32, c)
            .map_err(|e| BoundaryError::Refused(e.to_string()))?;
    }
    s.accept_handover(
        Netting::new(&s.policy().netting),
        rng(99),
        &RootSecret::from_bytes(ROOT_S),
        reader,
        &header,
    )
}

#[test]
fn the_successor_takes_the_open_batch_and_continues_at_the_next_sequence() {
    let mut p = predecessor(trust());
    let s = awaiting(Some(V2), &p.policy, 7);
    assert_eq!(s.measurement(), m2());
    assert_ne!(s.measurement(), p.e.measurement());
    let ev = evidence(&s);
    let result = AttestationResult::abi_decode(&ev.result).unwrap();
    let (signed, package, first, entries) = handover_logged(&mut p, ev.clone()).unwrap();

    // The handover: next sequence, same state root, the successor named exactly as the registry
    // holds it, signed by the predecessor's statement key under the settlement's domain.
    let h = &signed.handover;
    assert_eq!(h.sequence, 2);
    assert_eq!(h.stateRoot, p.first.statement.newStateRoot);
    assert_eq!(h.policyHash, p.policy.hash());
    assert_eq!(h.successor, s.describe().key_bundle.address);
    assert_eq!(h.successorMeasurement, m2());
    assert_eq!(
        h.successorResultHash,
        attestation_result_hash(&result, TARGET.chain_id, REGISTRY)
    );
    let domain = settlement_domain(TARGET.chain_id, TARGET.settlement);
    assert_eq!(signed.digest, h.digest(&domain));
    assert_eq!(
        recover(signed.digest, &signed.signature),
        p.e.describe().key_bundle.address
    );
    assert_eq!(signed.abi(), h.abi_encode());

    // The log: the Handover entry is the last one the handover covers.
    let at = usize::try_from(h.logSize - 1 - first).unwrap();
    let (kind, body) = log_entry::decode(&entries[at]).unwrap();
    assert_eq!(kind, EntryKind::Handover);
    let entry = HandoverEntry::decode(body).unwrap();
    assert_eq!(entry.sequence, 2);
    assert_eq!(entry.successor, h.successor);
    assert_eq!(entry.successor_ed25519, s.describe().key_bundle.ed25519);
    assert_eq!(entry.result_hash, h.successorResultHash);
    assert_eq!(entry.state_root, h.stateRoot);

    // Handed over: nothing that changes state is served; reads and snapshots are.
    let st = status(&mut p.e);
    assert_eq!(st.handed_over, Some((h.successor, 2)));
    assert_eq!(st.sequence, 2);
    let refused = BoundaryError::HandedOver {
        successor: h.successor,
        sequence: 2,
    };
    let now = p.clients.now + 2;
    let envelope = p.clients.envelope(&p.e, 0, 1, 5);
    for r in [
        Request::Submit { envelope, now },
        Request::CutBatch { now },
        Request::Heartbeat { now },
        Request::Tick { now },
        Request::Settled { sequence: 1 },
        Request::Chain(ChainEvent::Deposit {
            account: Address::repeat_byte(1),
            token: TOKEN,
            amount: 1,
        }),
    ] {
        assert_eq!(
            call(&mut p.e, &mut p.records, r),
            Response::Error(refused.clone())
        );
    }
    assert_eq!(status(&mut p.e), st);
    // The same successor again: the same signed handover, a new package; another: refused.
    let (again, package2) = handover(&mut p, evidence(&s)).unwrap();
    assert_eq!(again, signed);
    assert_ne!(package2, package);
    let other = awaiting(None, &p.policy, 8);
    assert!(matches!(
        handover(&mut p, evidence(&other)),
        Err(BoundaryError::Refused(m)) if m.contains("already handed over")
    ));
    assert_eq!(status(&mut p.e), st);

    // A restore of the snapshot from before and the journal after it comes back handed over.
    let (m, chunks) = &p.before;
    let mut reader = ChunkReader::new(&RootSecret::from_bytes(ROOT_P), m.clone()).unwrap();
    for (i, c) in chunks.iter().enumerate() {
        reader.push(i as u32, c).unwrap();
    }
    let mut back = Enclave::restore_chunked(
        p.policy.clone(),
        Netting::new(&p.policy.netting),
        TARGET,
        rng(3),
        &RootSecret::from_bytes(ROOT_P),
        reader,
    )
    .unwrap();
    for r in &p.records {
        back.replay(r).unwrap();
    }
    assert_eq!(status(&mut back), st);
    let (again, _) = handover(
        &mut Predecessor {
            e: back,
            records: Vec::new(),
            clients: Clients {
                users: Vec::new(),
                rng: ChaCha20Rng::seed_from_u64(1),
                now: p.clients.now,
            },
            policy: p.policy.clone(),
            first: p.first.clone(),
            before: p.before.clone(),
        },
        evidence(&s),
    )
    .unwrap();
    assert_eq!(
        again, signed,
        "replay reproduces the handover byte for byte"
    );

    // The successor takes the handed-over snapshot under its own keys.
    let snap = snapshot(&mut p.e);
    let mut s2 = accept(&s, &package, &snap).unwrap();
    let st2 = status(&mut s2);
    assert_eq!(st2.sequence, 2);
    assert_eq!(st2.state_root, h.stateRoot);
    assert_eq!(st2.pending_inputs, 3, "the open batch moved");
    assert_eq!(st2.handed_over, None);
    assert!(!st2.awaiting_handover);
    assert_eq!(s2.describe().key_bundle, s.describe().key_bundle);
    assert_eq!(s2.measurement(), m2());
    let (first2, entries2) = log_entries(&mut s2);
    assert_eq!(
        first2, st.log_size,
        "the successor extends the deployment's log"
    );
    let (kind, body) = log_entry::decode(&entries2[0]).unwrap();
    assert_eq!(kind, EntryKind::HandoverAccepted);
    let accepted = HandoverAcceptedEntry::decode(body).unwrap();
    assert_eq!(accepted.sequence, 2);
    assert_eq!(accepted.predecessor, signed.signer);
    assert_eq!(accepted.successor, s.describe().key_bundle);
    assert_eq!(accepted.measurement, m2());

    // Review H1: the successor runs a fresh epoch chain. Whoever holds the predecessor's
    // handed-over state (its root and snapshot) derives neither the successor's epoch KEM key nor
    // its input key; the inherited epoch is only the previous one, in grace.
    let (pred_epoch, pred_head) =
        forensics::snapshot_head(&RootSecret::from_bytes(ROOT_P), &snap.0, &snap.1).unwrap();
    let succ_snap = snapshot(&mut s2);
    let (succ_epoch, succ_head) =
        forensics::snapshot_head(&RootSecret::from_bytes(ROOT_S), &succ_snap.0, &succ_snap.1)
            .unwrap();
    let announced = s2.describe().epoch_announcement;
    let announced = EpochAnnouncement::verify(
        &announced,
        &Ed25519PublicKey::from_bytes(s2.describe().key_bundle.ed25519),
    )
    .unwrap();
    assert_eq!(announced.epoch.0, succ_epoch);
    assert_eq!(
        succ_head.kem().1,
        announced.public_key,
        "the successor's real head"
    );
    let later: Vec<(u64, ChainKey)> = (succ_epoch + 1..succ_epoch + 4)
        .map(|e| (e, succ_head.next(Epoch(e))))
        .collect();
    for (epoch, real) in
        std::iter::once((succ_epoch, &succ_head)).chain(later.iter().map(|(e, k)| (*e, k)))
    {
        // The predecessor's head itself and one ratchet step to `epoch` (any distance is one).
        for derived in [&pred_head, &pred_head.next(Epoch(epoch))] {
            assert_ne!(
                derived.kem().1,
                real.kem().1,
                "epoch {epoch} KEM key derivable"
            );
            let mut r = ChaCha20Rng::seed_from_u64(5);
            let sealed = real.input_key().sealing().seal(b"aad", b"input", &mut r);
            assert!(
                derived.input_key().sealing().open(b"aad", &sealed).is_err(),
                "epoch {epoch} input key derivable"
            );
        }
    }
    assert_eq!(
        succ_epoch,
        pred_epoch + 1,
        "a new epoch after the inherited one"
    );
    assert_eq!(
        s2.input_key_epochs(),
        vec![pred_epoch, succ_epoch],
        "the inherited input key stays for the moved inputs"
    );

    // Five more inputs sealed to the successor close the batch: statement 3, signed by the
    // successor, carries the 3 moved inputs (receipts the predecessor signed) and the 5 new.
    let mut records2 = Vec::new();
    let mut closed = Vec::new();
    for i in 0..5 {
        closed.extend(submit(
            &mut s2,
            &mut records2,
            &mut p.clients,
            i % 4,
            (i + 1) % 4,
        ));
    }
    let now = p.clients.now;
    if closed.is_empty()
        && let Response::Batch(Some(st)) = call(&mut s2, &mut records2, Request::CutBatch { now })
    {
        closed.push(*st);
    }
    let [third] = closed.as_slice() else {
        panic!("{closed:?}")
    };
    assert_eq!(third.statement.sequence, 3);
    assert_eq!(third.statement.prevStateRoot, h.stateRoot);
    assert_eq!(third.statement.inputCount, 8);
    assert_eq!(third.signer, s.describe().key_bundle.address);
    assert_eq!(recover(third.digest, &third.signature), third.signer);
    assert!(third.statement.logSize > h.logSize);
    let moved: Vec<u64> = third.receipt_sequences[..3].to_vec();
    assert!(moved.iter().all(|&q| q < h.logSize), "{moved:?}");
}

/// What the predecessor shows before and after a refused handover must be identical.
fn unchanged(p: &mut Predecessor, ev: SuccessorEvidence, why: &str) {
    let before = status(&mut p.e);
    let cp = p.e.checkpoint().unwrap();
    let records = p.records.len();
    match handover(p, ev) {
        Err(BoundaryError::Refused(m)) => assert!(m.contains(why), "{m} (wanted {why})"),
        other => panic!("{why}: {other:?}"),
    }
    assert_eq!(status(&mut p.e), before, "{why}");
    assert_eq!(p.e.checkpoint().unwrap(), cp, "{why}");
    assert_eq!(p.records.len(), records, "{why}: no journal record");
}

#[test]
fn a_successor_it_cannot_trust_is_refused_and_nothing_changes() {
    let mut p = predecessor(trust());
    let v = verifiers();
    let s = awaiting(Some(V2), &p.policy, 7);
    let bundle = s.describe().key_bundle;
    let good = result_for(&bundle, m2(), T0 + 86_400);

    // A measurement neither its own nor listed.
    let s3 = awaiting(Some("v3"), &p.policy, 9);
    let r3 = result_for(&s3.describe().key_bundle, s3.measurement(), T0 + 86_400);
    unchanged(
        &mut p,
        evidence_with(&s3, &r3, &[&v[0], &v[1]]),
        "neither this enclave's nor listed",
    );
    // One verifier (threshold 2), the same verifier twice, an outsider.
    unchanged(
        &mut p,
        evidence_with(&s, &good, &[&v[1]]),
        "1 distinct policy verifiers",
    );
    unchanged(
        &mut p,
        evidence_with(&s, &good, &[&v[1], &v[1]]),
        "1 distinct policy verifiers",
    );
    let outsider = SigningKey::from_slice(&[9; 32]).unwrap();
    unchanged(
        &mut p,
        evidence_with(&s, &good, &[&v[0], &outsider]),
        "1 distinct policy verifiers",
    );
    // Signed under another registry's domain.
    let mut ev = evidence_with(&s, &good, &[]);
    let wrong = good.digest(&registry_domain(TARGET.chain_id, Address::repeat_byte(1)));
    ev.signatures = vec![sign(&v[0], wrong), sign(&v[1], wrong)];
    unchanged(&mut p, ev, "0 distinct policy verifiers");
    // Expired at enclave time.
    let old = result_for(&bundle, m2(), T0 + 1);
    unchanged(&mut p, evidence_with(&s, &old, &[&v[0], &v[1]]), "expired");
    // A result about other keys than the bundle shown (the host swaps the bundle).
    let mut ev = evidence_with(&s, &good, &[&v[0], &v[1]]);
    ev.key_bundle = s3.describe().key_bundle;
    ev.epoch_announcement = s3.describe().epoch_announcement;
    unchanged(&mut p, ev, "does not bind its key bundle");
    // An epoch announcement from another instance (the package would go to the host).
    let mut ev = evidence_with(&s, &good, &[&v[0], &v[1]]);
    ev.epoch_announcement = s3.describe().epoch_announcement;
    unchanged(&mut p, ev, "epoch announcement");
    // Itself.
    let own = p.e.describe().key_bundle;
    let r_self = result_for(&own, p.e.measurement(), T0 + 86_400);
    let me = evidence_with(&p.e, &r_self, &[&v[0], &v[1]]);
    unchanged(&mut p, me, "to itself");
    // Bytes that do not decode; signatures of the wrong shape.
    let mut ev = evidence(&s);
    ev.result.push(0);
    unchanged(&mut p, ev, "does not decode");
    let mut ev = evidence(&s);
    ev.signatures[0].pop();
    unchanged(&mut p, ev, "65 bytes");

    // Still live: it cuts and signs statement 2 itself.
    let mut records = Vec::new();
    for i in 0..5 {
        submit(&mut p.e, &mut records, &mut p.clients, i % 4, (i + 1) % 4);
    }
    let now = p.clients.now;
    match call(&mut p.e, &mut records, Request::CutBatch { now }) {
        Response::Batch(Some(st)) => assert_eq!(st.statement.sequence, 2),
        r => panic!("{r:?}"),
    }

    // A policy without handover trust hands over to no one.
    let mut q = predecessor(HandoverTrust::default());
    let s = awaiting(None, &q.policy, 7);
    unchanged(&mut q, evidence(&s), "names no verifiers");
}

#[test]
fn an_awaiting_successor_changes_nothing_until_a_package_for_it_opens() {
    let mut p = predecessor(trust());
    let mut s = awaiting(Some(V2), &p.policy, 7);
    let mut records = Vec::new();
    let envelope = p.clients.envelope(&s, 0, 1, 5);
    for r in [
        Request::Submit {
            envelope,
            now: T0 + 1,
        },
        Request::CutBatch { now: T0 + 1 },
        Request::Heartbeat { now: T0 + 1 },
        Request::Chain(ChainEvent::Deposit {
            account: Address::repeat_byte(1),
            token: TOKEN,
            amount: 1,
        }),
    ] {
        assert_eq!(
            call(&mut s, &mut records, r),
            Response::Error(BoundaryError::AwaitingHandover)
        );
    }
    assert!(status(&mut s).awaiting_handover);

    let other = awaiting(None, &p.policy, 8);
    // A live (not handed-over) snapshot of the predecessor, even with a package for this
    // enclave: refused.
    let live = snapshot(&mut p.e);
    let (_, package) = handover(&mut p, evidence(&s)).unwrap();
    let refused = |r: Result<Enclave<Netting>, BoundaryError>, why: &str| match r {
        Err(BoundaryError::Refused(m)) => assert!(m.contains(why), "{m} (wanted {why})"),
        Err(e) => panic!("{why}: {e:?}"),
        Ok(_) => panic!("{why}: accepted"),
    };
    refused(
        accept(&s, &package, &live),
        "not the predecessor's handed-over state",
    );
    let snap = snapshot(&mut p.e);
    // The package for s, offered to another awaiting enclave.
    refused(accept(&other, &package, &snap), "for another enclave");
    // Tampered, truncated.
    let mut bad = package.clone();
    *bad.last_mut().unwrap() ^= 1;
    refused(accept(&s, &bad, &snap), "does not open");
    refused(accept(&s, &package[1..], &snap), "malformed");
    // A handed-over snapshot naming another successor (under the same root).
    let mut p2 = predecessor(trust());
    let (_, package_other) = handover(&mut p2, evidence(&other)).unwrap();
    let snap_other = snapshot(&mut p2.e);
    refused(accept(&s, &package, &snap_other), "naming this enclave");
    drop(package_other);
    assert!(status(&mut s).awaiting_handover, "still awaiting");
    // And then the real one.
    let mut s2 = accept(&s, &package, &snap).unwrap();
    assert_eq!(status(&mut s2).pending_inputs, 3);
}

#[test]
fn a_session_boots_awaiting_and_accepts_through_the_boundary() {
    let mut p = predecessor(trust());
    let mut session = Session::new(
        RootSecret::from_bytes(ROOT_S),
        Box::new(|| Box::new(ChaCha20Rng::seed_from_u64(5))),
    );
    let hello = Request::Hello {
        version: sealbridge_enclave::boundary::BOUNDARY_VERSION,
    };
    assert!(matches!(session.handle(hello), Response::Hello { .. }));
    let r = session.handle(Request::AwaitHandover {
        policy: p.policy.clone(),
        target: TARGET,
        now: T0,
        build: Some(V2.into()),
    });
    assert_eq!(r, Response::Ack);
    let s = session.enclave().unwrap();
    assert!(s.awaiting_handover());
    let (signed, package) = handover(&mut p, evidence(s)).unwrap();
    let (m, chunks) = snapshot(&mut p.e);
    // A refused package leaves the session awaiting.
    let r = session.handle(Request::AcceptHandover {
        package: package[..10].to_vec(),
        manifest: m.clone(),
    });
    assert!(
        matches!(r, Response::Error(BoundaryError::Refused(_))),
        "{r:?}"
    );
    let r = session.handle(Request::AcceptHandover {
        package,
        manifest: m.clone(),
    });
    assert!(
        matches!(r, Response::Restoring { received: 0, .. }),
        "{r:?}"
    );
    for (i, c) in chunks.iter().enumerate() {
        let r = session.handle(Request::RestoreChunk {
            index: i as u32,
            blob: c.clone(),
        });
        if i + 1 == chunks.len() {
            assert_eq!(r, Response::Ack);
        } else {
            assert!(matches!(r, Response::Restoring { .. }), "{r:?}");
        }
    }
    let Response::Status(st) = session.handle(Request::Status) else {
        panic!()
    };
    assert_eq!(st.sequence, signed.handover.sequence);
    assert_eq!(st.pending_inputs, 3);
    assert!(!st.awaiting_handover);
    // Its snapshot restores in a later session (its own root, its own instance, live).
    let Response::Snapshot(m2) = session.handle(Request::Snapshot { chunk_bytes: 4096 }) else {
        panic!()
    };
    assert!(m2.chunks >= 1);
}

/// Review H2 and L1: a handover whose window ran out is re-signed on a repeated `Handover` to the
/// same successor — same sequence, roots, successor and result hash, a fresh window — and replay
/// reproduces it; the same address with another result is refused, nothing changed.
#[test]
fn an_expired_handover_is_renewed_for_the_same_successor_only() {
    let mut p = predecessor(trust());
    let s = awaiting(Some(V2), &p.policy, 7);
    let (signed, _) = handover(&mut p, evidence(&s)).unwrap();
    let h = signed.handover.clone();
    let st = status(&mut p.e);

    // L1: the successor's address with another result (another evidence hash) is refused.
    let v = verifiers();
    let mut other = result_for(&s.describe().key_bundle, s.measurement(), T0 + 86_400);
    other.evidenceHash = B256::repeat_byte(9);
    assert!(matches!(
        handover(&mut p, evidence_with(&s, &other, &[&v[0], &v[2]])),
        Err(BoundaryError::Refused(m)) if m.contains("already handed over")
    ));
    assert_eq!(status(&mut p.e), st);

    // Step host time (a clock step at a time) past the handover's window.
    let step = p.policy.max_clock_step_secs;
    let mut last = signed.clone();
    while p.clients.now < h.notAfter {
        p.clients.now = (p.clients.now + step).min(h.notAfter);
        last = handover(&mut p, evidence(&s)).unwrap().0;
    }
    let r = &last.handover;
    assert_ne!(last, signed, "renewed");
    assert!(r.notAfter > h.notAfter && r.notBefore > h.notBefore);
    let mut same = r.clone();
    same.notBefore = h.notBefore;
    same.notAfter = h.notAfter;
    assert_eq!(same, h, "only the window changed");
    assert_eq!(recover(last.digest, &last.signature), signed.signer);
    // Still handed over, nothing else changed (the journal holds the time steps and renewals).
    let renewed_status = status(&mut p.e);
    assert!(renewed_status.next_record > st.next_record);
    assert_eq!(
        EnclaveStatus {
            next_record: st.next_record,
            ..renewed_status
        },
        st
    );
    // Repeated at the same host time: the renewal again, byte for byte.
    let at = p.clients.now;
    assert_eq!(handover(&mut p, evidence(&s)).unwrap().0, last);

    // Replay of the journal since the snapshot before the handover reproduces the renewal.
    let (m, chunks) = &p.before;
    let mut reader = ChunkReader::new(&RootSecret::from_bytes(ROOT_P), m.clone()).unwrap();
    for (i, c) in chunks.iter().enumerate() {
        reader.push(i as u32, c).unwrap();
    }
    let mut back = Enclave::restore_chunked(
        p.policy.clone(),
        Netting::new(&p.policy.netting),
        TARGET,
        rng(3),
        &RootSecret::from_bytes(ROOT_P),
        reader,
    )
    .unwrap();
    for rec in &p.records {
        back.replay(rec).unwrap();
    }
    let mut q = Predecessor {
        e: back,
        records: Vec::new(),
        clients: Clients {
            users: Vec::new(),
            rng: ChaCha20Rng::seed_from_u64(1),
            now: at,
        },
        policy: p.policy.clone(),
        first: p.first.clone(),
        before: p.before.clone(),
    };
    assert_eq!(handover(&mut q, evidence(&s)).unwrap().0, last);

    // The successor still takes the handed-over state after a renewal.
    let snap = snapshot(&mut p.e);
    let (_, package) = handover(&mut p, evidence(&s)).unwrap();
    let mut s2 = accept(&s, &package, &snap).unwrap();
    assert_eq!(status(&mut s2).sequence, h.sequence);
}

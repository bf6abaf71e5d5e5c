//! The enclave through its boundary: acceptance, every rejection reason, batching, epochs.

mod common;

use alloy_primitives::{Address, B256, Signature};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use sealbridge_enclave::{
    Enclave, SettlementTarget, SignedStatement,
    boundary::{
        self, BOUNDARY_VERSION, BoundaryError, ChainEvent, Description, Request, Response,
        SubmitOutcome,
    },
    epochs::EpochAnnouncement,
};
use sealbridge_programs::netting::{Netting, Obligation};
use sealbridge_proto::{
    EnvelopeHeader, Epoch, InstanceId, MAX_ENVELOPE_BYTES, Nonce, ProgramId, ReasonCode, TraceId,
    eip712::settlement_domain,
};
use sealbridge_seal::{
    envelope,
    keys::{Ed25519PublicKey, Ed25519SigningKey, KemPublicKey},
    receipt::{Receipt, ReceiptStatus},
};

const T0: u64 = 1_700_000_000;
const TOKEN: Address = Address::repeat_byte(0xee);
const TARGET: SettlementTarget = SettlementTarget {
    chain_id: 31337,
    settlement: Address::repeat_byte(0x5e),
};

struct Harness {
    enclave: Enclave<Netting>,
    desc: Description,
    users: Vec<(Ed25519SigningKey, Address)>,
    rng: ChaCha20Rng,
    kem: KemPublicKey,
    epoch: Epoch,
}

impl Harness {
    fn new(batch_size: u32) -> Self {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let (users, policy) = common::participants_and_policy(&mut rng, 3, TOKEN, batch_size);
        let enclave_rng = Box::new(ChaCha20Rng::seed_from_u64(99));
        let mut enclave = Enclave::boot(
            policy.clone(),
            Netting::new(&policy.netting),
            TARGET,
            enclave_rng,
            T0,
        )
        .unwrap();
        for (_, a) in &users {
            assert_eq!(
                enclave.handle(Request::Chain(ChainEvent::Deposit {
                    account: *a,
                    token: TOKEN,
                    amount: 1000
                })),
                Response::Ack
            );
        }
        let desc = match enclave.handle(Request::Describe) {
            Response::Description(d) => *d,
            r => panic!("{r:?}"),
        };
        let ann = EpochAnnouncement::verify(
            &desc.epoch_announcement,
            &Ed25519PublicKey(desc.key_bundle.ed25519),
        )
        .unwrap();
        Self {
            enclave,
            users,
            rng,
            kem: ann.public_key,
            epoch: ann.epoch,
            desc,
        }
    }

    fn header(&mut self, now: u64) -> EnvelopeHeader {
        EnvelopeHeader::new(
            self.desc.key_bundle.instance_id(),
            self.epoch,
            ProgramId(self.desc.program_id.0),
            Nonce(self.rng.r#gen()),
            now + 600,
            TraceId(self.rng.r#gen()),
        )
    }

    fn seal(&mut self, header: &EnvelopeHeader, from: usize, to: usize, amount: u128) -> Vec<u8> {
        let ob = Obligation {
            to: self.users[to].1,
            token: TOKEN,
            amount,
        };
        let key = &self.users[from].0;
        envelope::seal(header, &self.kem, key, &ob.encode(), &mut self.rng).unwrap()
    }

    fn submit(&mut self, envelope: Vec<u8>, now: u64) -> SubmitOutcome {
        match self.enclave.handle(Request::Submit { envelope, now }) {
            Response::Submitted(o) => *o,
            r => panic!("{r:?}"),
        }
    }

    /// Move enclave time to `t` in steps the policy allows (at most one epoch each).
    fn tick_to(&mut self, t: u64) {
        loop {
            let now = self.enclave.enclave_time();
            if now >= t {
                return;
            }
            let next = t.min(now + 3600);
            match self.enclave.handle(Request::Tick { now: next }) {
                Response::Ticked { .. } => {}
                r => panic!("{r:?}"),
            }
        }
    }

    fn fingerprint(&self) -> (Vec<u8>, B256, u64) {
        use sealbridge_programs::Program;
        (
            self.enclave.program().encode_state(),
            self.enclave.last_state_root(),
            self.enclave.program().pending_inputs() as u64,
        )
    }
}

#[test]
fn accepts_and_signs_a_verifiable_receipt() {
    let mut h = Harness::new(100);
    let hdr = h.header(T0);
    let env = h.seal(&hdr, 0, 1, 10);
    let out = h.submit(env.clone(), T0);
    assert_eq!(out.rejected, None);
    let receipt =
        Receipt::verify(&out.receipt, &Ed25519PublicKey(h.desc.key_bundle.ed25519)).unwrap();
    assert_eq!(receipt.status, ReceiptStatus::Accepted);
    assert_eq!(receipt.envelope_id, sealbridge_proto::EnvelopeId::of(&env));
    assert_eq!(receipt.sequence, out.sequence);
    assert_eq!(receipt.epoch, h.epoch);
}

#[test]
fn every_rejection_has_its_own_reason_and_changes_nothing() {
    let mut h = Harness::new(100);
    let hdr = h.header(T0);
    let good = h.seal(&hdr, 0, 1, 10);
    assert_eq!(h.submit(good.clone(), T0).rejected, None);
    let before = h.fingerprint();

    let mut cases: Vec<(&str, Vec<u8>, ReasonCode)> = Vec::new();
    cases.push(("replayed", good.clone(), ReasonCode::Replayed));
    let mut tampered = {
        let hdr = h.header(T0);
        h.seal(&hdr, 0, 1, 10)
    };
    *tampered.last_mut().unwrap() ^= 1;
    cases.push(("tampered", tampered, ReasonCode::Undecryptable));
    let mut hdr = h.header(T0);
    hdr.expires_at = T0;
    cases.push(("expired", h.seal(&hdr, 0, 1, 10), ReasonCode::Expired));
    let mut hdr = h.header(T0);
    hdr.expires_at = T0 + 10 * 86_400;
    cases.push(("far future", h.seal(&hdr, 0, 1, 10), ReasonCode::Malformed));
    let mut hdr = h.header(T0);
    hdr.epoch = Epoch(7);
    cases.push((
        "unknown epoch",
        h.seal(&hdr, 0, 1, 10),
        ReasonCode::UnknownEpoch,
    ));
    let mut hdr = h.header(T0);
    hdr.instance = InstanceId([9; 32]);
    cases.push((
        "wrong instance",
        h.seal(&hdr, 0, 1, 10),
        ReasonCode::WrongInstance,
    ));
    let mut hdr = h.header(T0);
    hdr.program = ProgramId([9; 32]);
    cases.push((
        "wrong program",
        h.seal(&hdr, 0, 1, 10),
        ReasonCode::WrongProgram,
    ));
    let stranger = Ed25519SigningKey::generate(&mut h.rng);
    let hdr = h.header(T0);
    let ob = Obligation {
        to: h.users[1].1,
        token: TOKEN,
        amount: 1,
    };
    let env = envelope::seal(&hdr, &h.kem, &stranger, &ob.encode(), &mut h.rng).unwrap();
    cases.push(("unauthorised", env, ReasonCode::UnauthorisedSender));
    // A stranger signs but claims to be participant 0: the signature does not verify for the
    // claimed key.
    let hdr = h.header(T0);
    let ob = Obligation {
        to: h.users[1].1,
        token: TOKEN,
        amount: 1,
    };
    let claimed = h.users[0].0.public().sender_id();
    let env = envelope::danger::seal_claiming_sender(
        &hdr,
        &h.kem,
        &stranger,
        claimed,
        &ob.encode(),
        &mut h.rng,
    )
    .unwrap();
    cases.push(("forged sender", env, ReasonCode::BadSenderSignature));
    let hdr = h.header(T0);
    cases.push((
        "over escrow",
        h.seal(&hdr, 0, 1, 5000),
        ReasonCode::ProgramRejected,
    ));
    let wrong_key = KemPublicKey([4; 32]);
    let hdr = h.header(T0);
    let ob = Obligation {
        to: h.users[1].1,
        token: TOKEN,
        amount: 1,
    };
    let env = envelope::seal(&hdr, &wrong_key, &h.users[0].0, &ob.encode(), &mut h.rng).unwrap();
    cases.push(("sealed to another key", env, ReasonCode::Undecryptable));
    cases.push(("garbage", vec![0xa5; 100], ReasonCode::Malformed));
    cases.push(("empty", vec![], ReasonCode::Malformed));
    cases.push((
        "oversized",
        vec![0; MAX_ENVELOPE_BYTES + 1],
        ReasonCode::Oversized,
    ));

    for (name, env, want) in cases {
        let out = h.submit(env, T0);
        assert_eq!(out.rejected, Some(want), "{name}");
        assert!(out.batches.is_empty(), "{name}");
        assert_eq!(h.fingerprint(), before, "{name} changed the state");
        let r =
            Receipt::verify(&out.receipt, &Ed25519PublicKey(h.desc.key_bundle.ed25519)).unwrap();
        assert_eq!(r.status, ReceiptStatus::Rejected(want), "{name}");
    }
}

#[test]
fn batches_at_size_and_signs_statements_the_registered_key_recovers() {
    let mut h = Harness::new(3);
    let mut batches: Vec<SignedStatement> = Vec::new();
    for i in 0..7u64 {
        let hdr = h.header(T0 + i);
        let env = h.seal(&hdr, (i % 3) as usize, ((i + 1) % 3) as usize, 5);
        let out = h.submit(env, T0 + i);
        assert_eq!(out.rejected, None);
        batches.extend(out.batches);
    }
    assert_eq!(
        batches.len(),
        2,
        "7 inputs at batch size 3 close two batches"
    );
    match h.enclave.handle(Request::CutBatch { now: T0 + 10 }) {
        Response::Batch(Some(b)) => batches.push(*b),
        r => panic!("{r:?}"),
    }
    assert_eq!(
        h.enclave.handle(Request::CutBatch { now: T0 + 11 }),
        Response::Batch(None)
    );
    let domain = settlement_domain(TARGET.chain_id, TARGET.settlement);
    let mut prev = B256::ZERO;
    for (i, b) in batches.iter().enumerate() {
        let s = &b.statement;
        assert_eq!(s.sequence, i as u64 + 1);
        assert_eq!(s.prevStateRoot, prev);
        assert_eq!(s.digest(&domain), b.digest);
        assert_eq!(s.policyHash, h.desc.policy_hash);
        let sig = Signature::try_from(b.signature.as_slice()).unwrap();
        let signer = sig.recover_address_from_prehash(&b.digest).unwrap();
        assert_eq!(signer, h.desc.key_bundle.address);
        assert_eq!(b.receipt_sequences.len() as u32, s.inputCount);
        let origin = h.enclave.log_origin().to_string();
        let cp = sealbridge_log::verify_checkpoint_for_origin(
            &b.checkpoint,
            &origin,
            &origin,
            &h.desc.key_bundle.ed25519,
        )
        .unwrap();
        assert_eq!(cp.size, s.logSize);
        assert_eq!(B256::from(cp.root.0), s.logRoot);
        assert_eq!(
            s.effectsHash,
            sealbridge_proto::eip712::effects_hash(&b.effects, &b.exits_for_settle())
        );
        prev = s.newStateRoot;
    }
    assert_eq!(
        batches.iter().map(|b| b.statement.inputCount).sum::<u32>(),
        7
    );
    assert_eq!(h.enclave.last_state_root(), prev);
}

#[test]
fn epochs_rotate_with_grace_then_retire() {
    let mut h = Harness::new(100);
    let old = h.epoch;
    let hdr_old = h.header(T0);
    // One hour later a new epoch starts; the old key is still accepted during the grace window.
    let t1 = T0 + 3600;
    let anns = match h.enclave.handle(Request::Tick { now: t1 }) {
        Response::Ticked { announcements } => announcements,
        r => panic!("{r:?}"),
    };
    assert_eq!(anns.len(), 1);
    let ann =
        EpochAnnouncement::verify(&anns[0], &Ed25519PublicKey(h.desc.key_bundle.ed25519)).unwrap();
    assert_eq!(ann.epoch, Epoch(old.0 + 1));
    let mut hdr = hdr_old;
    hdr.expires_at = t1 + 300;
    let env = h.seal(&hdr, 0, 1, 1);
    assert_eq!(h.submit(env, t1).rejected, None, "grace window");
    // After the grace window the old epoch is retired.
    let t2 = T0 + 3600 + 600;
    let mut hdr = h.header(t2);
    hdr.epoch = old;
    let env = h.seal(&hdr, 0, 1, 1);
    assert_eq!(h.submit(env, t2).rejected, Some(ReasonCode::RetiredEpoch));
    // The new epoch works.
    h.kem = ann.public_key;
    h.epoch = ann.epoch;
    let hdr = h.header(t2);
    let env = h.seal(&hdr, 0, 1, 1);
    assert_eq!(h.submit(env, t2).rejected, None);
    // Host time going backwards does not rewind the enclave.
    let hdr = h.header(t2);
    let env = h.seal(&hdr, 0, 1, 1);
    assert_eq!(h.submit(env, T0).rejected, None);
    let mut hdr = h.header(t2);
    hdr.epoch = old;
    let env = h.seal(&hdr, 0, 1, 1);
    assert_eq!(h.submit(env, T0).rejected, Some(ReasonCode::RetiredEpoch));
}

#[test]
fn boundary_frames_round_trip_and_reject_bad_frames() {
    let req = Request::Submit {
        envelope: vec![1, 2, 3],
        now: 5,
    };
    let frame = boundary::encode_frame(&req).unwrap();
    assert_eq!(boundary::decode_frame::<Request>(&frame).unwrap(), req);
    let mut trailing = frame.clone();
    trailing.push(0);
    assert_eq!(
        boundary::decode_frame::<Request>(&trailing),
        Err(BoundaryError::MalformedFrame)
    );
    assert_eq!(
        boundary::decode_frame::<Request>(&frame[..frame.len() - 1]),
        Err(BoundaryError::MalformedFrame)
    );
    let huge = ((boundary::MAX_FRAME_BYTES + 1) as u32).to_be_bytes();
    assert_eq!(
        boundary::decode_frame::<Request>(&huge),
        Err(BoundaryError::FrameTooLarge)
    );
    let mut h = Harness::new(10);
    assert_eq!(
        h.enclave.handle(Request::Hello {
            version: BOUNDARY_VERSION
        }),
        Response::Hello {
            version: BOUNDARY_VERSION
        }
    );
    assert_eq!(
        h.enclave.handle(Request::Hello { version: 99 }),
        Response::Error(BoundaryError::UnsupportedVersion(99))
    );
    // Every response of a real session survives the frame encoding.
    let hdr = h.header(T0);
    let env = h.seal(&hdr, 0, 1, 1);
    let resp = h.enclave.handle(Request::Submit {
        envelope: env,
        now: T0,
    });
    let frame = boundary::encode_frame(&resp).unwrap();
    assert_eq!(boundary::decode_frame::<Response>(&frame).unwrap(), resp);
}

#[test]
fn same_inputs_same_roots() {
    let run = || {
        let mut h = Harness::new(4);
        let mut roots = Vec::new();
        for i in 0..8u64 {
            let hdr = h.header(T0);
            let env = h.seal(
                &hdr,
                (i % 3) as usize,
                ((i + 2) % 3) as usize,
                3 + i as u128,
            );
            for b in h.submit(env, T0).batches {
                roots.push(b.statement.newStateRoot);
            }
        }
        roots
    };
    let a = run();
    assert_eq!(a.len(), 2);
    assert_eq!(a, run());
}

#[test]
fn log_head_covers_every_receipt() {
    let mut h = Harness::new(100);
    let (size0, _) = h.enclave.log_head();
    for _ in 0..5 {
        let hdr = h.header(T0);
        let env = h.seal(&hdr, 0, 1, 1);
        h.submit(env, T0);
    }
    // Junk is not logged (issue 11): it is counted for the next rejection summary.
    let junk = h.submit(vec![1, 2, 3], T0);
    assert_eq!(junk.rejected, Some(ReasonCode::Malformed));
    assert!(!junk.logged);
    let (size1, _) = h.enclave.log_head();
    assert_eq!(size1, size0 + 5);
    let (first, entries) = match h.enclave.handle(Request::LogEntries) {
        Response::LogEntries {
            first_index,
            entries,
        } => (first_index, entries),
        r => panic!("{r:?}"),
    };
    assert_eq!(first, 0);
    assert_eq!(entries.len() as u64, size1);
    // The entries are the leaves of the log the enclave's checkpoint signs.
    let leaves: Vec<_> = entries
        .iter()
        .map(|e| sealbridge_log::leaf_hash(e))
        .collect();
    let note = match h.enclave.handle(Request::Checkpoint) {
        Response::Checkpoint { note } => note,
        r => panic!("{r:?}"),
    };
    let cp = sealbridge_log::verify_checkpoint_for_origin(
        &note,
        h.enclave.log_origin(),
        h.enclave.log_origin(),
        &h.desc.key_bundle.ed25519,
    )
    .unwrap();
    assert_eq!(cp.size, size1);
    assert_eq!(cp.root, sealbridge_log::merkle_root(&leaves));
    // Drained: the next request returns only what came after.
    let hdr = h.header(T0);
    let env = h.seal(&hdr, 0, 1, 1);
    h.submit(env, T0);
    match h.enclave.handle(Request::LogEntries) {
        Response::LogEntries {
            first_index,
            entries,
        } => {
            assert_eq!(first_index, size1);
            assert_eq!(entries.len(), 1);
        }
        r => panic!("{r:?}"),
    }
}

#[test]
fn logs_only_its_own_attestation_result() {
    use alloy_sol_types::SolValue;
    use sealbridge_proto::eip712::AttestationResult;
    let mut h = Harness::new(10);
    let bundle = h.desc.key_bundle;
    let mut result = AttestationResult {
        tee: 0,
        measurement: h.desc.measurement,
        tcbStatus: 0,
        enclave: bundle.address,
        ed25519Key: B256::from(bundle.ed25519),
        keyBundleHash: bundle.hash(),
        evidenceHash: B256::repeat_byte(1),
        advisoryHash: B256::ZERO,
        challengeBlock: 0,
        challenge: B256::ZERO,
        issuedAt: T0,
        expiresAt: T0 + 100,
    };
    let (size0, _) = h.enclave.log_head();
    let ok = Request::LogAttestation {
        result: result.abi_encode(),
        signatures: vec![vec![1; 65], vec![2; 65]],
    };
    assert_eq!(h.enclave.handle(ok), Response::Ack);
    assert_eq!(h.enclave.log_head().0, size0 + 1);
    let bad_sigs = Request::LogAttestation {
        result: result.abi_encode(),
        signatures: vec![vec![1; 64]],
    };
    assert!(matches!(
        h.enclave.handle(bad_sigs),
        Response::Error(BoundaryError::Refused(_))
    ));
    let garbage = Request::LogAttestation {
        result: vec![1, 2, 3],
        signatures: vec![vec![1; 65]],
    };
    assert!(matches!(
        h.enclave.handle(garbage),
        Response::Error(BoundaryError::Refused(_))
    ));
    result.enclave = Address::repeat_byte(7);
    let other = Request::LogAttestation {
        result: result.abi_encode(),
        signatures: vec![vec![1; 65]],
    };
    assert!(matches!(
        h.enclave.handle(other),
        Response::Error(BoundaryError::Refused(_))
    ));
    assert_eq!(h.enclave.log_head().0, size0 + 1, "refusals change nothing");
}

/// A statement that did not settle within its window is renewed: the same statement (roots,
/// counts, anchor, effects hash) with a fresh window, signed by the same key, logged as a
/// `StatementRenewal` entry. A statement the enclave did not sign exactly (one field changed, a
/// foreign signature, a sequence it never reached) and a renewal that would not extend the
/// window are refused and change neither the log nor the state.
#[test]
fn an_unsettled_statement_is_renewed_with_a_fresh_window_and_logged() {
    use alloy_sol_types::SolValue;
    use sealbridge_enclave::log_entry::{self, EntryKind};
    use sealbridge_proto::eip712::Statement;

    let mut h = Harness::new(1);
    let hdr = h.header(T0);
    let env = h.seal(&hdr, 0, 1, 5);
    let signed = h.submit(env, T0).batches.pop().expect("batch size 1");
    let s = &signed.statement;
    let validity = s.notAfter - (s.notBefore + 300);
    let domain = settlement_domain(TARGET.chain_id, TARGET.settlement);
    let mut log_before = h.enclave.log_head();
    let later = s.notAfter + 10;
    let renew = |h: &mut Harness, st: &Statement, sig: &[u8], now: u64| {
        h.enclave.handle(Request::RenewStatement {
            statement: st.abi_encode(),
            signature: sig.to_vec(),
            now,
        })
    };

    // Refusals first: nothing changes.
    let mut other = s.clone();
    other.newStateRoot = B256::repeat_byte(7);
    let mut foreign = signed.signature.clone();
    foreign[10] ^= 1;
    let mut ahead = s.clone();
    ahead.sequence = 2;
    // (Enclave time only moves forward: the case at the signing time comes first.)
    for (name, st, sig, now) in [
        ("no later window", s, &signed.signature, T0),
        ("a field changed", &other, &signed.signature, later),
        ("a foreign signature", s, &foreign, later),
        ("a sequence never signed", &ahead, &signed.signature, later),
    ] {
        if now == later && h.enclave.enclave_time() < later {
            // Enclave time may only step one epoch per request (issue 11): walk there first
            // (an epoch rotation is logged on the way).
            h.tick_to(later);
            log_before = h.enclave.log_head();
        }
        let fp = h.fingerprint();
        match renew(&mut h, st, sig, now) {
            Response::Error(BoundaryError::Refused(_)) => {}
            r => panic!("{name}: {r:?}"),
        }
        assert_eq!(h.enclave.log_head(), log_before, "{name} logged");
        assert_eq!(h.fingerprint(), fp, "{name} changed the state");
    }
    // Not ABI: refused.
    match h.enclave.handle(Request::RenewStatement {
        statement: vec![1, 2, 3],
        signature: signed.signature.clone(),
        now: later,
    }) {
        Response::Error(BoundaryError::Refused(_)) => {}
        r => panic!("{r:?}"),
    }

    let (abi, sig, digest) = match renew(&mut h, s, &signed.signature, later) {
        Response::Renewed {
            statement,
            signature,
            digest,
        } => (statement, signature, digest),
        r => panic!("{r:?}"),
    };
    let renewed = Statement::abi_decode(&abi).unwrap();
    assert_eq!(
        (renewed.notBefore, renewed.notAfter),
        (later - 300, later + validity)
    );
    let same_but_window = Statement {
        notBefore: s.notBefore,
        notAfter: s.notAfter,
        ..renewed.clone()
    };
    assert_eq!(&same_but_window, s, "only the window changes");
    assert_eq!(renewed.digest(&domain), digest);
    let signer = Signature::try_from(sig.as_slice())
        .unwrap()
        .recover_address_from_prehash(&digest)
        .unwrap();
    assert_eq!(signer, h.desc.key_bundle.address);

    // One log entry: StatementRenewal, the renewed statement and its signature.
    assert_eq!(h.enclave.log_head().0, log_before.0 + 1);
    let entries = match h.enclave.handle(Request::LogEntries) {
        Response::LogEntries { entries, .. } => entries,
        r => panic!("{r:?}"),
    };
    let (kind, body) = log_entry::decode(entries.last().unwrap()).unwrap();
    assert_eq!(kind, EntryKind::StatementRenewal);
    assert_eq!(body, [abi.as_slice(), sig.as_slice()].concat());
    // The renewal itself can be renewed later (the window moves on again).
    h.tick_to(later + validity + 10);
    match renew(&mut h, &renewed, &sig, later + validity + 10) {
        Response::Renewed { .. } => {}
        r => panic!("{r:?}"),
    }
}

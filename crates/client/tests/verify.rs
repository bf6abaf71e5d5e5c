//! The client's checks (issue 11, part 2) against a real in-process enclave: what verifies, and
//! one refusal per forgery — a tampered receipt, a receipt naming another envelope or signed by
//! another enclave, a checkpoint signed by another key or for another log, an inclusion proof
//! against a forged checkpoint, an anchor that is not a prefix of the checkpoint's tree.

use alloy_primitives::Address;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use sealbridge_client::verify::{
    Checkpoint, UNLOGGED_SEQUENCE, VerifyError, verify_anchor, verify_checkpoint, verify_inclusion,
    verify_receipt, verify_receipt_inclusion,
};
use sealbridge_enclave::{
    Enclave, EnclavePolicy, SettlementTarget,
    boundary::{ChainEvent, Description, Request, Response},
    checkpoint::log_origin,
    epochs::EpochAnnouncement,
};
use sealbridge_log::{Hash, MemoryTree, consistency_proof, inclusion_proof, leaf_hash};
use sealbridge_programs::netting::{Netting, NettingConfig, Obligation, Participant};
use sealbridge_proto::{EnvelopeHeader, Nonce, ProgramId, TraceId};
use sealbridge_seal::{
    envelope,
    keys::{Ed25519PublicKey, Ed25519SigningKey},
};

const T0: u64 = 1_700_000_000;
const TOKEN: Address = Address::repeat_byte(0xee);
const TARGET: SettlementTarget = SettlementTarget {
    chain_id: 31337,
    settlement: Address::repeat_byte(0x5e),
};

struct Node {
    enclave: Enclave<Netting>,
    desc: Description,
    users: Vec<(Ed25519SigningKey, Address)>,
    rng: ChaCha20Rng,
    log: MemoryTree,
}

impl Node {
    fn boot(seed: u64) -> Self {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let users: Vec<_> = (1..=4u8)
            .map(|i| {
                (
                    Ed25519SigningKey::generate(&mut rng),
                    Address::repeat_byte(i),
                )
            })
            .collect();
        let policy = EnclavePolicy::new(
            NettingConfig {
                participants: users
                    .iter()
                    .map(|(k, a)| Participant {
                        sender: k.public().sender_id(),
                        account: *a,
                    })
                    .collect(),
                tokens: vec![TOKEN],
            },
            64,
        );
        let program = Netting::new(&policy.netting);
        let mut enclave = Enclave::boot(
            policy,
            program,
            TARGET,
            Box::new(ChaCha20Rng::seed_from_u64(seed + 1)),
            T0,
        )
        .unwrap();
        let desc = match enclave.handle(Request::Describe) {
            Response::Description(d) => *d,
            r => panic!("{r:?}"),
        };
        for (_, account) in &users {
            let r = enclave.handle(Request::Chain(ChainEvent::Deposit {
                account: *account,
                token: TOKEN,
                amount: 1_000,
            }));
            assert_eq!(r, Response::Ack);
        }
        let mut n = Self {
            enclave,
            desc,
            users,
            rng,
            log: MemoryTree::new(),
        };
        n.drain();
        n
    }

    fn key(&self) -> [u8; 32] {
        self.desc.key_bundle.ed25519
    }

    fn drain(&mut self) {
        match self.enclave.handle(Request::LogEntries) {
            Response::LogEntries {
                first_index,
                entries,
            } => {
                assert_eq!(first_index, self.log.leaf_hashes().len() as u64);
                for e in entries {
                    self.log.append_data(&e).unwrap();
                }
            }
            r => panic!("{r:?}"),
        }
    }

    fn envelope(&mut self, from: usize, to: usize, amount: u128) -> Vec<u8> {
        let ann = EpochAnnouncement::verify(
            &self.desc.epoch_announcement,
            &Ed25519PublicKey(self.desc.key_bundle.ed25519),
        )
        .unwrap();
        let header = EnvelopeHeader::new(
            self.desc.key_bundle.instance_id(),
            ann.epoch,
            ProgramId(self.desc.program_id.0),
            Nonce(self.rng.r#gen()),
            T0 + 600,
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

    /// Submit; the receipt bytes and the sequence the enclave said.
    fn submit(&mut self, env: &[u8]) -> (Vec<u8>, u64) {
        let o = match self.enclave.handle(Request::Submit {
            envelope: env.to_vec(),
            now: T0 + 1,
        }) {
            Response::Submitted(o) => *o,
            r => panic!("{r:?}"),
        };
        self.drain();
        (o.receipt, o.sequence)
    }

    fn checkpoint(&mut self) -> String {
        match self.enclave.handle(Request::Checkpoint) {
            Response::Checkpoint { note } => note,
            r => panic!("{r:?}"),
        }
    }

    fn origin(&self) -> String {
        log_origin(TARGET.chain_id, TARGET.settlement)
    }
}

#[test]
fn a_genuine_receipt_checkpoint_inclusion_and_anchor_verify() {
    let mut n = Node::boot(1);
    let env = n.envelope(0, 1, 5);
    let (bytes, seq) = n.submit(&env);
    let r = verify_receipt(&bytes, &env, &n.key()).unwrap();
    assert_eq!(r.sequence, seq);
    let anchor = n.log.leaf_hashes().len() as u64;
    let anchor_root = n.log.root();
    // More entries after the anchor, then the checkpoint.
    for i in 0..5 {
        let e = n.envelope(i % 4, (i + 1) % 4, 1);
        n.submit(&e);
    }
    let cp = verify_checkpoint(&n.checkpoint(), &n.origin(), &n.key()).unwrap();
    assert_eq!(cp.size, n.log.leaf_hashes().len() as u64);
    let proof = inclusion_proof(&n.log, seq, cp.size).unwrap();
    verify_inclusion(&bytes, seq, &proof, &cp).unwrap();
    verify_receipt_inclusion(&r, &bytes, seq, &proof, &cp).unwrap();
    let consistency = consistency_proof(&n.log, anchor, cp.size).unwrap();
    verify_anchor(anchor, &anchor_root, &consistency, &cp).unwrap();
}

#[test]
fn a_tampered_receipt_is_refused() {
    let mut n = Node::boot(2);
    let env = n.envelope(0, 1, 5);
    let (bytes, _) = n.submit(&env);
    // Every single-byte change, in the header, the payload (sequence, status) or the
    // signature, is refused.
    for i in 0..bytes.len() {
        let mut bad = bytes.clone();
        bad[i] ^= 0x01;
        let e = verify_receipt(&bad, &env, &n.key()).unwrap_err();
        assert!(
            matches!(e, VerifyError::ReceiptSignature(_)),
            "byte {i}: {e}"
        );
        assert!(
            e.to_string()
                .contains("does not verify under the attested enclave key")
        );
    }
    assert!(matches!(
        verify_receipt(&bytes[..bytes.len() - 1], &env, &n.key()),
        Err(VerifyError::ReceiptSignature(_))
    ));
}

#[test]
fn a_receipt_naming_another_envelope_is_refused() {
    let mut n = Node::boot(3);
    let (a, b) = (n.envelope(0, 1, 5), n.envelope(1, 2, 6));
    let (ra, _) = n.submit(&a);
    n.submit(&b);
    // The host answers envelope b with a's (genuine) receipt.
    let e = verify_receipt(&ra, &b, &n.key()).unwrap_err();
    match &e {
        VerifyError::ReceiptForOtherEnvelope { sent, receipt } => {
            assert_ne!(sent, receipt);
            assert!(e.to_string().contains("not the envelope sent"), "{e}");
        }
        other => panic!("{other}"),
    }
}

#[test]
fn a_receipt_signed_by_another_enclave_is_refused() {
    let mut honest = Node::boot(4);
    let mut other = Node::boot(5);
    let env = other.envelope(0, 1, 5);
    let (bytes, _) = other.submit(&env);
    assert!(verify_receipt(&bytes, &env, &other.key()).is_ok());
    let e = verify_receipt(&bytes, &env, &honest.key()).unwrap_err();
    assert!(matches!(e, VerifyError::ReceiptSignature(_)), "{e}");
    let _ = honest.checkpoint();
}

#[test]
fn a_checkpoint_signed_by_another_key_or_for_another_log_is_refused() {
    let mut honest = Node::boot(6);
    let mut other = Node::boot(7);
    let note = honest.checkpoint();
    assert!(verify_checkpoint(&note, &honest.origin(), &honest.key()).is_ok());
    // Signed by another enclave (same origin: the same deployment's log name).
    let forged = other.checkpoint();
    let e = verify_checkpoint(&forged, &honest.origin(), &honest.key()).unwrap_err();
    assert!(matches!(e, VerifyError::CheckpointSignature { .. }), "{e}");
    assert!(
        e.to_string()
            .contains("not signed by the attested enclave key")
    );
    // The right key, another log.
    let e = verify_checkpoint(
        &note,
        "sealbridge/1/0x0000000000000000000000000000000000000001",
        &honest.key(),
    )
    .unwrap_err();
    assert!(matches!(e, VerifyError::CheckpointSignature { .. }), "{e}");
    // The size or the root line edited.
    let lines: Vec<&str> = note.split('\n').collect();
    let edited = note.replacen(&format!("\n{}\n", lines[1]), "\n999\n", 1);
    assert_ne!(edited, note);
    assert!(matches!(
        verify_checkpoint(&edited, &honest.origin(), &honest.key()),
        Err(VerifyError::CheckpointSignature { .. })
    ));
}

#[test]
fn inclusion_against_a_forged_checkpoint_or_at_the_wrong_leaf_is_refused() {
    let mut n = Node::boot(8);
    let env = n.envelope(0, 1, 5);
    let (bytes, seq) = n.submit(&env);
    let r = verify_receipt(&bytes, &env, &n.key()).unwrap();
    let other = n.envelope(1, 2, 3);
    let (other_bytes, other_seq) = n.submit(&other);
    let cp = verify_checkpoint(&n.checkpoint(), &n.origin(), &n.key()).unwrap();
    let proof = inclusion_proof(&n.log, seq, cp.size).unwrap();

    // A checkpoint the host made up: a tree without the receipt, same size.
    let mut fake = MemoryTree::new();
    for i in 0..cp.size {
        fake.append_data(&i.to_be_bytes()).unwrap();
    }
    let forged = Checkpoint::new(n.origin(), cp.size, fake.root());
    let e = verify_inclusion(&bytes, seq, &proof, &forged).unwrap_err();
    assert!(matches!(e, VerifyError::Inclusion { .. }), "{e}");
    assert!(
        e.to_string()
            .contains("does not lead to the checkpoint's root")
    );
    // The genuine checkpoint, another receipt's proof.
    let e = verify_inclusion(&other_bytes, seq, &proof, &cp).unwrap_err();
    assert!(matches!(e, VerifyError::Inclusion { .. }), "{e}");
    // The receipt at another leaf than its sequence.
    let p2 = inclusion_proof(&n.log, other_seq, cp.size).unwrap();
    let e = verify_receipt_inclusion(&r, &bytes, other_seq, &p2, &cp).unwrap_err();
    assert_eq!(
        e,
        VerifyError::WrongLeaf {
            sequence: seq,
            index: other_seq
        }
    );
    // Beyond the checkpoint, and an unlogged rejection.
    let short = Checkpoint::new(n.origin(), seq, Hash([0; 32]));
    assert_eq!(
        verify_inclusion(&bytes, seq, &proof, &short).unwrap_err(),
        VerifyError::BeyondCheckpoint {
            index: seq,
            size: seq
        }
    );
    assert_eq!(
        verify_inclusion(&bytes, UNLOGGED_SEQUENCE, &proof, &cp).unwrap_err(),
        VerifyError::Unlogged
    );
}

#[test]
fn an_anchor_that_is_not_a_prefix_of_the_checkpoint_is_refused() {
    let mut n = Node::boot(9);
    let env = n.envelope(0, 1, 5);
    n.submit(&env);
    let anchor = n.log.leaf_hashes().len() as u64;
    let root = n.log.root();
    for i in 0..3 {
        let e = n.envelope(i, i + 1, 1);
        n.submit(&e);
    }
    let cp = verify_checkpoint(&n.checkpoint(), &n.origin(), &n.key()).unwrap();
    let proof = consistency_proof(&n.log, anchor, cp.size).unwrap();
    verify_anchor(anchor, &root, &proof, &cp).unwrap();
    // A forked anchor (another root at that size), an anchor ahead of the checkpoint, nothing
    // anchored.
    let fork = leaf_hash(b"fork");
    let e = verify_anchor(anchor, &fork, &proof, &cp).unwrap_err();
    assert!(matches!(e, VerifyError::Consistency { .. }), "{e}");
    assert!(e.to_string().contains("is not a prefix"));
    assert!(matches!(
        verify_anchor(cp.size + 1, &root, &proof, &cp),
        Err(VerifyError::Consistency { .. })
    ));
    assert!(matches!(
        verify_anchor(0, &root, &[], &cp),
        Err(VerifyError::Consistency { .. })
    ));
}

/// A node that answers every request with `status` and `body` (one connection each).
fn fake_node(answers: Vec<(u16, String)>) -> String {
    use std::io::{BufRead, BufReader, Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for (status, body) in answers {
            let (mut s, _) = l.accept().unwrap();
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                r.read_line(&mut line).unwrap();
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
                if line == "\r\n" || line.is_empty() {
                    break;
                }
            }
            let mut sink = vec![0; len];
            r.read_exact(&mut sink).unwrap();
            write!(
                s,
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            )
            .unwrap();
        }
    });
    format!("http://{addr}")
}

fn answer(receipt: &[u8], sequence: u64, envelope: &[u8]) -> String {
    serde_json::json!({
        "envelope_id": hex::encode(sealbridge_proto::EnvelopeId::of(envelope).as_bytes()),
        "status": "accepted",
        "reason": null,
        "sequence": sequence,
        "receipt": hex::encode(receipt),
        "trace_id": "00",
        "resubmitted": false,
    })
    .to_string()
}

#[test]
fn node_client_submit_verifies_and_keeps_receipts_once_it_knows_the_key() {
    use sealbridge_client::{ClientError, NodeClient};
    let mut n = Node::boot(10);
    let (a, b) = (n.envelope(0, 1, 5), n.envelope(1, 2, 6));
    let (ra, sa) = n.submit(&a);
    let (_, sb) = n.submit(&b);
    let dir = tempfile_dir();
    let base = fake_node(vec![
        (200, answer(&ra, sa, &a)),
        // Envelope b answered with a's genuine receipt (and JSON claiming b).
        (200, answer(&ra, sb, &b)),
        // a's genuine receipt, the JSON lying about its sequence.
        (200, answer(&ra, sa + 7, &a)),
    ]);
    let c = NodeClient::new(&base)
        .with_enclave_key(n.key(), &n.origin())
        .keep_receipts(&dir);
    let (code, v) = c.submit(&a, 0).unwrap();
    assert_eq!(code, 200, "{v}");
    let kept = sealbridge_client::kept::read(&dir).unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].1, ra);
    let e = c.submit(&b, 0).unwrap_err();
    assert!(
        matches!(
            e,
            ClientError::Verify(VerifyError::ReceiptForOtherEnvelope { .. })
        ),
        "{e}"
    );
    assert_eq!(e.code(), "unverified");
    let e = c.send(&a, 0).unwrap_err();
    assert!(matches!(e, ClientError::Protocol(_)), "{e}");
    assert!(
        e.to_string().contains("not what the signed receipt says"),
        "{e}"
    );
    // Nothing kept for the refused answers.
    assert_eq!(sealbridge_client::kept::read(&dir).unwrap().len(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempfile_dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!(
        "sealbridge-client-kept-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::remove_dir_all(&d);
    d
}

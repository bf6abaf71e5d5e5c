//! The witness against honest, stale, forked, unsigned and malformed checkpoints, in process and
//! over HTTP (three witnesses, a client requiring 2 of 3).

use sealbridge_log::{
    Checkpoint, MemoryTree, NoteSigner, NoteVerifier, consistency_proof,
    cosign::{AddCheckpoint, WitnessKey, add_signature_lines, verify_cosignatures},
    danger::TestSigner,
    root_at, sign_checkpoint,
};

use super::*;

const ORIGIN: &str = "sealbridge/31337/0x00000000000000000000000000000000000000aa";

fn log_key() -> TestSigner {
    TestSigner::new(ORIGIN, &[3u8; 32]).unwrap()
}

fn log_verifier() -> NoteVerifier {
    NoteVerifier::new(ORIGIN, &log_key().public_key()).unwrap()
}

/// A log of `n` entries, entry `i` = `prefix(i)`.
fn tree(n: u64, entry: impl Fn(u64) -> String) -> MemoryTree {
    let mut t = MemoryTree::new();
    for i in 0..n {
        t.append_data(entry(i).as_bytes()).unwrap();
    }
    t
}

fn honest(i: u64) -> String {
    format!("entry {i}")
}

/// The same first two entries, then another history.
fn forked(i: u64) -> String {
    if i < 2 {
        honest(i)
    } else {
        format!("forked {i}")
    }
}

fn note(t: &MemoryTree, size: u64, signer: &TestSigner) -> String {
    let cp = Checkpoint::new(ORIGIN, size, root_at(t, size).unwrap());
    sign_checkpoint(&cp, signer).unwrap()
}

fn request(t: &MemoryTree, old: u64, size: u64) -> AddCheckpoint {
    AddCheckpoint {
        old_size: old,
        proof: if old == 0 {
            vec![]
        } else {
            consistency_proof(t, old, size).unwrap()
        },
        checkpoint: note(t, size, &log_key()),
    }
}

fn witness(dir: &Path, name: &str) -> Witness {
    init(dir, name).unwrap();
    Witness::open(dir, &[log_verifier()]).unwrap()
}

#[test]
fn a_witness_cosigns_what_extends_its_history_and_refuses_everything_else() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = witness(dir.path(), "witness-1.example");
    // One process per witness state: a second one on the same directory is refused.
    let second = Witness::open(dir.path(), &[log_verifier()]).unwrap_err();
    assert!(
        second
            .to_string()
            .contains("in use by another witness process"),
        "{second}"
    );
    let good = tree(8, honest);
    let bad = tree(8, forked);
    let add = |w: &mut Witness, r: &AddCheckpoint| w.add_checkpoint(r.to_body().as_bytes(), 1_000);

    let line = add(&mut w, &request(&good, 0, 3)).unwrap();
    let cosigned = add_signature_lines(&note(&good, 3, &log_key()), &[line]).unwrap();
    assert_eq!(
        verify_cosignatures(&cosigned, std::slice::from_ref(w.key())).unwrap()[0].witness,
        "witness-1.example"
    );
    add(&mut w, &request(&good, 3, 5)).unwrap();
    assert_eq!(w.cosigned_size(ORIGIN), 5);
    // The same checkpoint again: cosigned again, nothing changes.
    add(&mut w, &request(&good, 5, 5)).unwrap();
    assert_eq!(w.cosigned_size(ORIGIN), 5);

    // Stale: the old size is not the last cosigned one (the answer names it).
    assert_eq!(
        add(&mut w, &request(&good, 3, 6)),
        Err(Refusal::Conflict(5))
    );
    // A fork diverging below the cosigned size: inconsistent, whatever the proof.
    let fork = request(&bad, 5, 6);
    assert!(matches!(
        add(&mut w, &fork),
        Err(Refusal::Inconsistent { size: 5, .. })
    ));
    // The fork at the very size cosigned, another root.
    let same_size = AddCheckpoint {
        old_size: 5,
        proof: vec![],
        checkpoint: note(&bad, 5, &log_key()),
    };
    assert!(matches!(
        add(&mut w, &same_size),
        Err(Refusal::Inconsistent { .. })
    ));
    // The honest proof attached to the forked checkpoint.
    let mixed = AddCheckpoint {
        checkpoint: note(&bad, 6, &log_key()),
        ..request(&good, 5, 6)
    };
    assert!(matches!(
        add(&mut w, &mixed),
        Err(Refusal::Inconsistent { .. })
    ));
    // A smaller tree after a larger one.
    assert!(matches!(
        add(
            &mut w,
            &AddCheckpoint {
                old_size: 5,
                proof: vec![],
                checkpoint: note(&good, 4, &log_key())
            }
        ),
        Err(Refusal::BadRequest(_))
    ));
    // Signed by another key; another origin; malformed bodies.
    let stranger = TestSigner::new(ORIGIN, &[9u8; 32]).unwrap();
    let unsigned = AddCheckpoint {
        checkpoint: note(&good, 6, &stranger),
        ..request(&good, 5, 6)
    };
    assert_eq!(
        add(&mut w, &unsigned),
        Err(Refusal::NotSigned(ORIGIN.into()))
    );
    let other = TestSigner::new("other.example/log", &[3u8; 32]).unwrap();
    let cp = Checkpoint::new("other.example/log", 1, root_at(&good, 1).unwrap());
    let elsewhere = AddCheckpoint {
        old_size: 0,
        proof: vec![],
        checkpoint: sign_checkpoint(&cp, &other).unwrap(),
    };
    assert!(matches!(
        add(&mut w, &elsewhere),
        Err(Refusal::UnknownOrigin(_))
    ));
    for body in [&b"old 5\n"[..], b"\xff\xfe", b"old x\n\nnote"] {
        assert!(matches!(
            w.add_checkpoint(body, 1_000),
            Err(Refusal::BadRequest(_))
        ));
    }
    assert_eq!(w.cosigned_size(ORIGIN), 5, "no refusal changed anything");

    // Restarted from its data directory: the same history, the same refusals.
    drop(w);
    let mut w = Witness::open(dir.path(), &[log_verifier()]).unwrap();
    assert_eq!(w.cosigned_size(ORIGIN), 5);
    assert!(matches!(
        add(&mut w, &request(&bad, 5, 8)),
        Err(Refusal::Inconsistent { .. })
    ));
    add(&mut w, &request(&good, 5, 8)).unwrap();
    assert_eq!(w.cosigned_size(ORIGIN), 8);
    // `init` on an existing directory keeps the key (and refuses another name).
    let (vkey, created) = init(dir.path(), "witness-1.example").unwrap();
    assert!(!created);
    assert_eq!(vkey, w.key().to_vkey());
    assert!(init(dir.path(), "someone-else").is_err());
}

#[test]
fn a_forked_log_is_refused_by_every_honest_witness_and_a_client_requiring_two_of_three_rejects_it()
{
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let served: Vec<(Served, WitnessKey)> = dirs
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let w = witness(d.path(), &format!("witness-{i}.example"));
            let key = w.key().clone();
            (serve(w, "127.0.0.1:0".parse().unwrap(), None).unwrap(), key)
        })
        .collect();
    let keys: Vec<WitnessKey> = served.iter().map(|(_, k)| k.clone()).collect();
    let good = tree(10, honest);
    let bad = tree(10, forked);

    // The clients' history, cosigned by all three at size 4 and then 7.
    let mut lines = Vec::new();
    for (s, key) in &served {
        add_checkpoint(&s.url(), key, &request(&good, 0, 4)).unwrap();
        lines.push(add_checkpoint(&s.url(), key, &request(&good, 4, 7)).unwrap());
    }
    let cosigned = add_signature_lines(&note(&good, 7, &log_key()), &lines).unwrap();
    assert_eq!(
        verify_cosignatures(&cosigned, &keys).unwrap().len(),
        3,
        "2 of 3 required: accepted"
    );

    // The auditors' history: a fork from entry 2, validly signed by the log key.
    let mut fork_lines = Vec::new();
    for (s, key) in &served {
        match add_checkpoint(&s.url(), key, &request(&bad, 7, 9)) {
            Err(AddCheckpointError::Inconsistent(why)) => assert!(why.contains("size 7"), "{why}"),
            other => panic!("{} cosigned or answered otherwise: {other:?}", key.name()),
        }
        // Asked from a stale size, the witness names the size it cosigned (409), and from there
        // the fork is still inconsistent.
        match add_checkpoint(&s.url(), key, &request(&bad, 4, 9)) {
            Err(AddCheckpointError::Conflict(7)) => {}
            other => panic!("{other:?}"),
        }
        if let Ok(l) = add_checkpoint(&s.url(), key, &request(&bad, 0, 9)) {
            fork_lines.push(l);
        }
    }
    assert!(fork_lines.is_empty(), "no witness cosigned the fork");
    let shown = note(&bad, 9, &log_key());
    assert!(
        verify_cosignatures(&shown, &keys).unwrap().len() < 2,
        "a client requiring 2 of 3 rejects the fork"
    );
    // A cosignature lifted from the honest checkpoint onto the fork does not verify.
    let lifted = add_signature_lines(&shown, &lines).unwrap();
    assert!(verify_cosignatures(&lifted, &keys).unwrap().is_empty());
    // Over HTTP, a malformed body is 400 and an oversized one 413; nothing changes.
    let agent = sealbridge_net::agent(&sealbridge_net::AgentConfig::default()).unwrap();
    let url = format!("{}/add-checkpoint", served[0].0.url());
    for (body, status) in [
        (b"old x\n\n".to_vec(), 400),
        (
            vec![b'a'; sealbridge_log::cosign::MAX_ADD_CHECKPOINT_LEN + 1],
            413,
        ),
    ] {
        let r = agent
            .post(&url)
            .config()
            .http_status_as_error(false)
            .build()
            .send(&body[..])
            .unwrap();
        assert_eq!(r.status().as_u16(), status);
    }
    // The honest history goes on being cosigned (from the size it had: nothing changed).
    for (s, key) in &served {
        add_checkpoint(&s.url(), key, &request(&good, 7, 10)).unwrap();
    }
}

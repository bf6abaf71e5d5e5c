//! The relayer settles a stored handover (issue 12) in sequence order with the statements around
//! it, exactly once, on the embedded chain: the predecessor's statements, then the handover,
//! then the successor's statement; and reports a handover whose window ran out instead of
//! sending it.

use std::sync::mpsc::{Receiver, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alloy_primitives::{B256, keccak256};
use alloy_sol_types::SolValue;
use k256::ecdsa::SigningKey;
use sealbridge_chain::contracts::DeployParams;
use sealbridge_chain::eip712::{sign_attestation_sorted, sign_digest};
use sealbridge_chain::embedded::{dev_key, key_address};
use sealbridge_chain::{AttestationResult, Chain, EmbeddedChain, Sealbridge};
use sealbridge_core::{Cmd, CoreError, metrics::Metrics};
use sealbridge_enclave::SignedStatement;
use sealbridge_proto::eip712::{Handover, Statement, settlement_domain};
use sealbridge_relayer::{RelayerConfig, RelayerError, ScanState, SharedChain, round};
use sealbridge_store::{Commit, KIND_HANDOVER, KIND_STATEMENT, Store};

const MEASUREMENT: B256 = B256::repeat_byte(0x4d);

struct World {
    chain: SharedChain<EmbeddedChain>,
    store: Store,
    _dir: tempfile::TempDir,
    pred: SigningKey,
    succ: SigningKey,
    core: std::sync::mpsc::SyncSender<Cmd>,
    metrics: Metrics,
    scan: ScanState,
}

/// Answers the relayer's requests to the core: chain events are taken, anything else (a
/// renewal, a heartbeat) is refused — this test needs neither.
fn fake_core(rx: Receiver<Cmd>) {
    while let Ok(cmd) = rx.recv() {
        match cmd {
            Cmd::ChainEvents { reply, .. } => {
                let _ = reply.send(Ok(()));
            }
            Cmd::Call { reply, .. } => {
                let _ = reply.send(Err(CoreError::Refused("not in this test".into())));
            }
            Cmd::Submit { .. } => {}
        }
    }
}

impl World {
    fn new() -> Self {
        let mut chain = EmbeddedChain::new();
        // The chain's clock at the host's (the relayer judges windows and heartbeats by both).
        chain
            .set_next_timestamp(
                sealbridge_core::unix_now().max(chain.block_timestamp().unwrap() + 1),
            )
            .unwrap();
        let admin = chain.dev_address(0);
        let (alice, bob) = (chain.dev_address(2), chain.dev_address(3));
        let params = DeployParams::dev(
            admin,
            B256::repeat_byte(0x50),
            vec![alice, bob],
            vec![MEASUREMENT],
        );
        let mut sb = Sealbridge::deploy(chain, &params).unwrap();
        let verifiers: Vec<SigningKey> =
            (0..3).map(|i| dev_key(&format!("verifier/{i}"))).collect();
        for v in &verifiers {
            sb.add_verifier(admin, key_address(v)).unwrap();
        }
        sb.set_threshold(admin, 2).unwrap();
        let now = sb.chain().block_timestamp().unwrap();
        sb.allow_measurement(admin, MEASUREMENT, now - 10, now + 365 * 86_400)
            .unwrap();
        let (pred, succ) = (dev_key("enclave/pred"), dev_key("enclave/succ"));
        for (i, k) in [&pred, &succ].into_iter().enumerate() {
            let block = sb.chain().block_number().unwrap();
            let r = AttestationResult {
                tee: 1,
                measurement: MEASUREMENT,
                tcbStatus: 0,
                enclave: key_address(k),
                ed25519Key: B256::repeat_byte(i as u8 + 1),
                keyBundleHash: B256::repeat_byte(0x6b),
                evidenceHash: B256::repeat_byte(0xe0),
                advisoryHash: B256::ZERO,
                challengeBlock: block,
                challenge: sb.chain().block_hash(block).unwrap().unwrap(),
                issuedAt: now,
                expiresAt: now + 86_400,
            };
            let keys: Vec<&SigningKey> = verifiers.iter().take(2).collect();
            let d = sb.deployment;
            let sigs = sign_attestation_sorted(&keys, &r, d.chain_id, d.registry);
            sb.register(admin, &r, sigs).unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (core, rx) = sync_channel(16);
        std::thread::spawn(move || fake_core(rx));
        Self {
            chain: Arc::new(Mutex::new(sb)),
            store,
            _dir: dir,
            pred,
            succ,
            core,
            metrics: Metrics::default(),
            scan: ScanState::default(),
        }
    }

    fn sb(&self) -> std::sync::MutexGuard<'_, Sealbridge<EmbeddedChain>> {
        self.chain.lock().unwrap()
    }

    fn domain(&self) -> alloy_sol_types::Eip712Domain {
        let d = self.sb().deployment;
        settlement_domain(d.chain_id, d.settlement)
    }

    fn now(&self) -> u64 {
        self.sb().chain().block_timestamp().unwrap()
    }

    /// Later of the chain's and the host's clocks (the relayer judges windows by both).
    fn later(&self) -> u64 {
        self.now().max(sealbridge_core::unix_now())
    }

    /// An empty statement at `sequence` from `prev` to `next`, signed by `key`.
    fn statement(
        &self,
        key: &SigningKey,
        sequence: u64,
        prev: B256,
        next: B256,
    ) -> SignedStatement {
        // (Each lock is taken in its own statement: a guard lives to the end of its statement.)
        let (now, later) = (self.now(), self.later());
        let policy = self.sb().policy_hash().unwrap();
        let statement = Statement {
            sequence,
            prevStateRoot: prev,
            newStateRoot: next,
            inputsRoot: keccak256("no inputs"),
            inputCount: 0,
            logSize: 10 * sequence,
            logRoot: keccak256(format!("log/{sequence}")),
            policyHash: policy,
            effectsHash: sealbridge_proto::eip712::effects_hash(&[], &[]),
            notBefore: now - 60,
            notAfter: later + 3600,
        };
        let digest = statement.digest(&self.domain());
        SignedStatement {
            statement,
            effects: vec![],
            exits: vec![],
            requests_decided: 0,
            signature: sign_digest(key, digest).to_vec(),
            digest,
            signer: key_address(key),
            receipt_sequences: vec![],
            checkpoint: String::new(),
        }
    }

    /// The handover at `sequence` from root `root` to the successor, with window `[nb, na]`,
    /// signed by the predecessor: its ABI bytes and signature.
    fn handover(&self, sequence: u64, root: B256, nb: u64, na: u64) -> (Vec<u8>, Vec<u8>) {
        let succ = key_address(&self.succ);
        let reg = self.sb().enclave(succ).unwrap();
        let policy = self.sb().policy_hash().unwrap();
        let h = Handover {
            sequence,
            stateRoot: root,
            logSize: 10 * sequence + 1,
            logRoot: keccak256(format!("log/{sequence}/handover")),
            policyHash: policy,
            successor: succ,
            successorMeasurement: reg.measurement,
            successorResultHash: reg.resultHash,
            notBefore: nb,
            notAfter: na,
        };
        let sig = sign_digest(&self.pred, h.digest(&self.domain()));
        (h.abi_encode(), sig.to_vec())
    }

    fn round(&mut self) -> Result<bool, RelayerError> {
        round(
            &self.chain,
            &self.store,
            &self.core,
            &self.metrics,
            &RelayerConfig::new(1, Duration::from_millis(10)),
            &mut self.scan,
        )
    }
}

fn root(n: u8) -> B256 {
    B256::repeat_byte(n)
}

#[test]
fn statements_then_the_handover_then_the_successors_statement_settle_in_order_once() {
    let mut w = World::new();
    let (pred, succ) = (w.pred.clone(), w.succ.clone());
    let s1 = w.statement(&pred, 1, B256::ZERO, root(1));
    let s2 = w.statement(&pred, 2, root(1), root(2));
    w.store
        .commit(&Commit {
            statements: vec![s1, s2],
            ..Commit::default()
        })
        .unwrap();
    let (now, later) = (w.now(), w.later());
    let (abi, sig) = w.handover(3, root(2), now - 60, later + 3600);
    w.store.put_handover(3, &abi, &sig).unwrap();
    let s4 = w.statement(&succ, 4, root(2), root(4));
    w.store
        .commit(&Commit {
            statements: vec![s4],
            ..Commit::default()
        })
        .unwrap();
    for _ in 0..10 {
        w.round().unwrap();
        if w.sb().last_sequence().unwrap() == 4 {
            break;
        }
    }
    // A few more rounds send nothing again.
    for _ in 0..3 {
        w.round().unwrap();
    }
    let sb = w.sb();
    assert_eq!(sb.last_sequence().unwrap(), 4);
    assert_eq!(sb.current_enclave().unwrap(), key_address(&succ));
    assert_eq!(sb.state_root().unwrap(), root(4));
    let settlement = sb.deployment.settlement;
    assert_eq!(
        sealbridge_chain::settled_on_chain(sb.chain(), settlement).unwrap(),
        (vec![1, 2, 3, 4], 0),
        "each sequence applied once, in order"
    );
    let head = sb.chain().block_number().unwrap();
    assert_eq!(sb.handed_over_events(0, head).unwrap().len(), 1);
    // No AlreadySettled replays: nothing was sent twice.
    let replays = sb
        .chain()
        .logs(settlement, 0, head)
        .unwrap()
        .iter()
        .filter(|l| {
            <sealbridge_chain::bindings::Settlement::AlreadySettled as alloy_sol_types::SolEvent>::decode_log(&l.inner).is_ok()
        })
        .count();
    assert_eq!(replays, 0);
    drop(sb);
    // The store saw every row land, the handover with its kind.
    assert_eq!(w.store.settled_through(0).unwrap(), 4);
    let rows = w.store.rows(1, 10).unwrap();
    let kinds: Vec<_> = rows.iter().map(|r| (r.sequence(), r.item.kind())).collect();
    assert_eq!(
        kinds,
        vec![
            (1, KIND_STATEMENT),
            (2, KIND_STATEMENT),
            (3, KIND_HANDOVER),
            (4, KIND_STATEMENT)
        ]
    );
    assert!(rows.iter().all(|r| r.confirmed && r.tx_hash.is_some()));
    use std::sync::atomic::Ordering::Relaxed;
    assert_eq!(w.metrics.state.final_sequence.load(Relaxed), 4);
    assert_eq!(*w.metrics.state.final_root.lock().unwrap(), root(4));
}

#[test]
fn a_handover_whose_window_ran_out_is_reported_not_sent() {
    let mut w = World::new();
    let pred = w.pred.clone();
    let s1 = w.statement(&pred, 1, B256::ZERO, root(1));
    w.store
        .commit(&Commit {
            statements: vec![s1],
            ..Commit::default()
        })
        .unwrap();
    let now = w.now();
    let (abi, sig) = w.handover(2, root(1), now - 7200, now - 3600);
    w.store.put_handover(2, &abi, &sig).unwrap();
    w.round().unwrap();
    assert_eq!(
        w.sb().last_sequence().unwrap(),
        1,
        "the statement before it settles"
    );
    let err = w.round().unwrap_err();
    assert!(matches!(err, RelayerError::Refused(_)), "{err:?}");
    assert!(
        err.to_string().contains("must sign the handover again"),
        "{err}"
    );
    assert_eq!(w.sb().last_sequence().unwrap(), 1, "nothing sent");
    // Still the predecessor's: statement 1 bound the deployment to its signer.
    assert_eq!(w.sb().current_enclave().unwrap(), key_address(&w.pred));
    let why = w.metrics.state.relayer_error();
    assert!(
        why.is_some_and(|e| e.contains("handover 2")),
        "the node reports it"
    );
}

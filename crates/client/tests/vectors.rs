//! The cross-language test vectors in `test-vectors/` (issue 13 part 4): this test produces them
//! from the Rust implementation — envelopes, receipts, checkpoints with witness cosignatures,
//! Merkle proofs, EIP-712 statements, enclave descriptions — checks that every file in the
//! repository is exactly what the code produces now, and checks the Rust side of each case (the
//! enclave's envelope code opens every envelope; every invalid case is refused). The TypeScript
//! SDK's tests (`sdk/ts/test/vectors.test.ts`) check the same files from the other side.
//!
//! `SEALBRIDGE_WRITE_VECTORS=1 cargo test -p sealbridge-client --test vectors` rewrites them
//! (after a deliberate format change; the diff is then reviewed like code).

use std::collections::BTreeMap;
use std::path::PathBuf;

use alloy_primitives::{Address, B256, U256, keccak256};
use alloy_sol_types::SolValue;
use k256::ecdsa::SigningKey;
use rand_core::{CryptoRng, RngCore};
use sealbridge_client::log::{
    Checkpoint, MemoryTree, NoteSigner, consistency_proof, inclusion_proof, leaf_hash,
    sign_checkpoint,
};
use sealbridge_enclave::epochs::{EpochAnnouncement, XWingAnnouncement};
use sealbridge_enclave::keys::KeyBundle;
use sealbridge_enclave::policy::program_id;
use sealbridge_log::cosign::{WitnessKey, cosignature_message};
use sealbridge_proto::eip712::{self, Statement, settlement_domain};
use sealbridge_proto::{
    EnvelopeHeader, Epoch, InstanceId, Nonce, ProgramId, ReasonCode, Suite, SuitePolicy,
    SuiteState, TraceId,
};
use sealbridge_seal::envelope::{Recipient, RecipientSecret, SealedEnvelope, seal_to};
use sealbridge_seal::hpke::xwing::XWingSecretKey;
use sealbridge_seal::keys::{Ed25519SigningKey, KemSecretKey};
use sealbridge_seal::receipt::{Receipt, ReceiptStatus, UNLOGGED_SEQUENCE};
use serde_json::{Value, json};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../test-vectors")
}

/// 32 bytes named by a public label: every secret here is public test material.
fn seed(label: &str) -> [u8; 32] {
    keccak256(format!("sealbridge/test-vectors/{label}")).0
}

fn hx(b: impl AsRef<[u8]>) -> String {
    hex::encode(b)
}

/// An RNG that hands out exactly the given bytes (the HPKE ephemeral key material), then
/// panics: sealing draws nothing else, so the envelope is a function of the vector's inputs.
struct FixedRng(Vec<u8>);
impl RngCore for FixedRng {
    fn next_u32(&mut self) -> u32 {
        unreachable!()
    }
    fn next_u64(&mut self) -> u64 {
        unreachable!()
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        assert!(
            dest.len() <= self.0.len(),
            "the sealer drew more randomness than the vector has"
        );
        let rest = self.0.split_off(dest.len());
        dest.copy_from_slice(&self.0);
        self.0 = rest;
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}
impl CryptoRng for FixedRng {}

// ---- envelopes ---------------------------------------------------------------------------

fn envelopes() -> Value {
    let sender = Ed25519SigningKey::from_seed(seed("sender"));
    let x25519 = KemSecretKey::from_bytes(seed("recipient/x25519"));
    let xwing = XWingSecretKey::from_seed(seed("recipient/xwing"));
    let instance = InstanceId(seed("instance"));
    let program = ProgramId(seed("program"));
    let to = Address::from_slice(&seed("to")[12..]);
    let token = Address::from_slice(&seed("token")[12..]);
    let mut payload = vec![1u8];
    payload.extend_from_slice(to.as_slice());
    payload.extend_from_slice(token.as_slice());
    payload.extend_from_slice(&1_000_000u128.to_be_bytes());
    let mut cases = Vec::new();
    for (name, version, suite) in [
        (
            "suite 1 (X25519, AES-128-GCM), version 2",
            2u8,
            Suite::X25519Sha256Aes128Gcm,
        ),
        (
            "suite 2 (X25519, ChaCha20-Poly1305), version 2",
            2,
            Suite::X25519Sha256ChaCha20Poly1305,
        ),
        (
            "suite 3 (X-Wing, AES-256-GCM), version 2",
            2,
            Suite::XWingAes256Gcm,
        ),
        (
            "suite 1, version 1 (the N-1 window)",
            1,
            Suite::X25519Sha256Aes128Gcm,
        ),
    ] {
        let mut header = EnvelopeHeader::new(
            instance,
            Epoch(7),
            program,
            Nonce(seed(&format!("nonce/{name}"))[..16].try_into().unwrap()),
            1_900_000_000,
            TraceId(seed(&format!("trace/{name}"))[..16].try_into().unwrap()),
        );
        header.version = version;
        header.suite = suite;
        let xw = suite == Suite::XWingAes256Gcm;
        let ekm: Vec<u8> = if xw {
            [
                seed(&format!("ekm/{name}/0")),
                seed(&format!("ekm/{name}/1")),
            ]
            .concat()
        } else {
            seed(&format!("ekm/{name}")).to_vec()
        };
        let x25519_pk = x25519.public();
        let (recipient, recipient_sk, recipient_pk) = if xw {
            (
                Recipient::XWing(xwing.public()),
                seed("recipient/xwing"),
                xwing.public().as_bytes().to_vec(),
            )
        } else {
            (
                Recipient::X25519(&x25519_pk),
                seed("recipient/x25519"),
                x25519_pk.0.to_vec(),
            )
        };
        let env = seal_to(
            &header,
            recipient,
            &sender,
            &payload,
            &mut FixedRng(ekm.clone()),
        )
        .unwrap();
        let parsed = SealedEnvelope::parse(&env).unwrap();
        cases.push(json!({
            "name": name,
            "version": version,
            "suite": suite.id(),
            "recipient_secret_key": hx(recipient_sk),
            "recipient_public_key": hx(recipient_pk),
            "instance_id": hx(instance.0),
            "epoch": 7,
            "program_id": hx(program.0),
            "nonce": hx(header.nonce.0),
            "expires_at": 1_900_000_000u64,
            "trace_id": hx(header.trace_id.0),
            "sender_seed": hx(seed("sender")),
            "sender_public_key": hx(sender.public().0),
            "payload": hx(&payload),
            "ekm": hx(&ekm),
            "protected": hx(parsed.protected_bytes()),
            "envelope": hx(&env),
            "envelope_id": hx(parsed.id().0),
        }));
    }
    json!({
        "description": "Envelopes (docs/PROTOCOL.md §1, §12) sealed deterministically: the HPKE ephemeral key material `ekm` is the 32-byte ikm of DeriveKeyPair (X25519) or the 64-byte eseed (X-Wing). An implementation that seals with these inputs must produce `envelope` byte for byte; the recipient key opens it to `payload` from `sender_public_key`. The payload is a netting obligation (§4).",
        "cases": cases,
    })
}

fn check_envelopes(v: &Value) {
    for c in v["cases"].as_array().unwrap() {
        let env =
            SealedEnvelope::parse(&hex::decode(c["envelope"].as_str().unwrap()).unwrap()).unwrap();
        let sk = hex::decode(c["recipient_secret_key"].as_str().unwrap()).unwrap();
        let sk: [u8; 32] = sk.try_into().unwrap();
        let opened = if c["suite"] == 3 {
            env.open_with(RecipientSecret::XWing(&XWingSecretKey::from_seed(sk)))
        } else {
            env.open(&KemSecretKey::from_bytes(sk))
        }
        .unwrap_or_else(|e| panic!("{}: {e:?}", c["name"]));
        assert_eq!(
            hx(opened.sender.0),
            c["sender_public_key"].as_str().unwrap()
        );
        assert_eq!(hx(&*opened.payload), c["payload"].as_str().unwrap());
    }
}

// ---- receipts ----------------------------------------------------------------------------

fn receipts() -> Value {
    let key = Ed25519SigningKey::from_seed(seed("enclave/ed25519"));
    let other = Ed25519SigningKey::from_seed(seed("other/ed25519"));
    let r = |id: &str, sequence, status, epoch, time| Receipt {
        envelope_id: sealbridge_proto::EnvelopeId(seed(id)),
        sequence,
        status,
        epoch: Epoch(epoch),
        enclave_time: time,
    };
    let accepted = r("envelope/a", 42, ReceiptStatus::Accepted, 7, 1_800_000_000);
    let rejected = r(
        "envelope/b",
        43,
        ReceiptStatus::Rejected(ReasonCode::ProgramRejected),
        7,
        1_800_000_001,
    );
    let unlogged = r(
        "envelope/c",
        UNLOGGED_SEQUENCE,
        ReceiptStatus::Rejected(ReasonCode::Replayed),
        7,
        1_800_000_002,
    );
    let valid = |name: &str, rc: &Receipt| {
        let (accepted, reason) = match rc.status {
            ReceiptStatus::Accepted => (true, 0),
            ReceiptStatus::Rejected(c) => (false, c as u8),
        };
        json!({
            "name": name, "receipt": hx(rc.sign(&key)), "valid": true,
            "envelope_id": hx(rc.envelope_id.0), "sequence": rc.sequence.to_string(),
            "accepted": accepted, "reason": reason, "epoch": rc.epoch.0,
            "enclave_time": rc.enclave_time, "logged": rc.sequence != UNLOGGED_SEQUENCE,
        })
    };
    let good = accepted.sign(&key);
    let flip = |at: usize| {
        let mut b = good.clone();
        b[at] ^= 1;
        b
    };
    let mut trailing = good.clone();
    trailing.push(0);
    let invalid = |name: &str, bytes: Vec<u8>, error: &str| json!({"name": name, "receipt": hx(bytes), "valid": false, "error": error});
    json!({
        "description": "Receipts (docs/PROTOCOL.md §2), COSE_Sign1 signed by the enclave key `public_key`. Valid cases give the signed fields; invalid ones must be refused (`error` is the class: bad-signature, wrong-key, malformed).",
        "public_key": hx(key.public().0),
        "instance_id": hx(key.public().instance_id().0),
        "cases": [
            valid("accepted", &accepted),
            valid("rejected, logged (program-rejected)", &rejected),
            valid("rejected, unlogged (replayed): sequence 2^64-1", &unlogged),
            invalid("signature byte flipped", flip(good.len() - 1), "bad-signature"),
            invalid("payload byte flipped (the envelope id)", flip(good.len() - 64 - 2 - 40), "bad-signature"),
            invalid("signed by another key (kid is that key's instance id)", accepted.sign(&other), "wrong-key"),
            invalid("a trailing byte", trailing, "malformed"),
        ],
    })
}

fn check_receipts(v: &Value) {
    let key = sealbridge_seal::keys::Ed25519PublicKey(
        hex::decode(v["public_key"].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap(),
    );
    for c in v["cases"].as_array().unwrap() {
        let bytes = hex::decode(c["receipt"].as_str().unwrap()).unwrap();
        let r = Receipt::verify(&bytes, &key);
        assert_eq!(r.is_ok(), c["valid"] == true, "{}", c["name"]);
        if let Ok(r) = r {
            assert_eq!(r.sequence.to_string(), c["sequence"].as_str().unwrap());
        }
    }
}

// ---- checkpoints, cosignatures, proofs ---------------------------------------------------

struct Signer(String, Ed25519SigningKey);
impl NoteSigner for Signer {
    fn name(&self) -> &str {
        &self.0
    }
    fn public_key(&self) -> [u8; 32] {
        self.1.public().0
    }
    fn sign(&self, msg: &[u8]) -> [u8; 64] {
        self.1.sign_raw(msg).0
    }
}

const ORIGIN: &str = "sealbridge/31337/0x5fbdb2315678afecb367f032d93f642f64180aa3";
const LOG_SIZE: u64 = 300;

fn log_tree() -> (MemoryTree, Vec<Vec<u8>>) {
    let mut t = MemoryTree::new();
    let entries: Vec<Vec<u8>> = (0..LOG_SIZE)
        .map(|i| format!("entry {i}").into_bytes())
        .collect();
    for e in &entries {
        t.append_data(e).unwrap();
    }
    (t, entries)
}

fn checkpoints() -> Value {
    let key = Ed25519SigningKey::from_seed(seed("enclave/ed25519"));
    let signer = Signer(
        ORIGIN.into(),
        Ed25519SigningKey::from_seed(seed("enclave/ed25519")),
    );
    let (tree, _) = log_tree();
    let cp = Checkpoint {
        origin: ORIGIN.into(),
        size: LOG_SIZE,
        root: tree.root(),
        extensions: vec![],
    };
    let note = sign_checkpoint(&cp, &signer).unwrap();
    let text = cp.to_note_body();
    // Three witnesses: two cosign, the third's line is forged (signed by another key).
    let witnesses: Vec<(String, Ed25519SigningKey)> = (0..3)
        .map(|i| {
            (
                format!("witness-{i}.example"),
                Ed25519SigningKey::from_seed(seed(&format!("witness/{i}"))),
            )
        })
        .collect();
    let mut lines = String::new();
    for (i, (name, k)) in witnesses.iter().enumerate() {
        let wk = WitnessKey::new(name, &k.public().0).unwrap();
        let ts = 1_800_000_100 + i as u64;
        let signing = if i == 2 {
            Ed25519SigningKey::from_seed(seed("forger"))
        } else {
            Ed25519SigningKey::from_seed(seed(&format!("witness/{i}")))
        };
        let sig = signing.sign_raw(&cosignature_message(ts, &text)).0;
        lines.push_str(&wk.signature_line(ts, &sig));
    }
    let cosigned = format!("{note}{lines}");
    let edited = note.replacen(
        &format!("\n{LOG_SIZE}\n"),
        &format!("\n{}\n", LOG_SIZE + 1),
        1,
    );
    let other = sign_checkpoint(
        &cp,
        &Signer(
            ORIGIN.into(),
            Ed25519SigningKey::from_seed(seed("other/ed25519")),
        ),
    )
    .unwrap();
    let foreign = Checkpoint {
        origin: "sealbridge/1/0x0000000000000000000000000000000000000001".into(),
        ..cp.clone()
    };
    let foreign = sign_checkpoint(&foreign, &signer).unwrap();
    json!({
        "description": "Checkpoints (docs/PROTOCOL.md §10, C2SP signed-note and tlog-checkpoint) signed by the enclave key under the deployment's origin, and witness cosignatures (C2SP tlog-cosignature v1). The log is the 300 entries `entry 0` … `entry 299` (merkle.json).",
        "origin": ORIGIN,
        "public_key": hx(key.public().0),
        "witnesses": witnesses.iter().map(|(n, k)| WitnessKey::new(n, &k.public().0).unwrap().to_vkey()).collect::<Vec<_>>(),
        "cases": [
            {"name": "valid", "note": note, "valid": true, "size": LOG_SIZE.to_string(), "root": hx(tree.root())},
            {"name": "cosigned by witnesses 0 and 1; witness 2's line is forged", "note": cosigned, "valid": true, "size": LOG_SIZE.to_string(), "root": hx(tree.root()), "cosigned_by": ["witness-0.example", "witness-1.example"]},
            {"name": "size line edited", "note": edited, "valid": false, "error": "bad-signature"},
            {"name": "signed by another key under the origin's name", "note": other, "valid": false, "error": "wrong-key"},
            {"name": "another deployment's origin", "note": foreign, "valid": false, "error": "wrong-origin"},
        ],
    })
}

fn check_checkpoints(v: &Value) {
    use sealbridge_client::verify::verify_checkpoint;
    let key = sealbridge_seal::keys::Ed25519PublicKey(
        hex::decode(v["public_key"].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap(),
    );
    let ws: Vec<WitnessKey> = v["witnesses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| WitnessKey::from_vkey(w.as_str().unwrap()).unwrap())
        .collect();
    for c in v["cases"].as_array().unwrap() {
        let note = c["note"].as_str().unwrap();
        let r = verify_checkpoint(note, ORIGIN, &key.0);
        assert_eq!(r.is_ok(), c["valid"] == true, "{}: {r:?}", c["name"]);
        if let Some(by) = c.get("cosigned_by") {
            let got = sealbridge_log::cosign::verify_cosignatures(note, &ws).unwrap();
            let names: Vec<&str> = got.iter().map(|g| g.witness.as_str()).collect();
            assert_eq!(json!(names), *by);
        }
    }
}

fn merkle() -> Value {
    let (tree, entries) = log_tree();
    let root_at = |n: u64| {
        let mut t = MemoryTree::new();
        for e in &entries[..n as usize] {
            t.append_data(e).unwrap();
        }
        t.root()
    };
    let inclusion: Vec<Value> = [0u64, 1, 7, 255, 256, 299]
        .iter()
        .map(|&i| {
            let p = inclusion_proof(&tree, i, LOG_SIZE).unwrap();
            json!({"index": i, "size": LOG_SIZE, "leaf_hash": hx(leaf_hash(&entries[i as usize])), "proof": p.iter().map(hx).collect::<Vec<_>>(), "root": hx(tree.root())})
        })
        .collect();
    let consistency: Vec<Value> = [(1u64, 300u64), (7, 300), (256, 300), (299, 300), (300, 300)]
        .iter()
        .map(|&(a, b)| {
            let p = consistency_proof(&tree, a, b).unwrap();
            json!({"size1": a, "size2": b, "root1": hx(root_at(a)), "root2": hx(root_at(b)), "proof": p.iter().map(hx).collect::<Vec<_>>()})
        })
        .collect();
    json!({
        "description": "RFC 9162 Merkle proofs (docs/PROTOCOL.md §10) over the 300 leaves `entry 0` … `entry 299` (leaf data as UTF-8): every inclusion and consistency proof here verifies; an implementation must refuse each one with any proof hash changed. `leaf_hash` is H(0x00 ‖ data).",
        "inclusion": inclusion,
        "consistency": consistency,
    })
}

// ---- statements --------------------------------------------------------------------------

fn statements() -> Value {
    let chain_id = 31_337u64;
    let settlement: Address = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
        .parse()
        .unwrap();
    let key = SigningKey::from_slice(&seed("enclave/secp256k1")).unwrap();
    let signer = Address::from_public_key(key.verifying_key());
    let a: Address = Address::from_slice(&seed("account/a")[12..]);
    let b: Address = Address::from_slice(&seed("account/b")[12..]);
    let token: Address = Address::from_slice(&seed("token")[12..]);
    let mut effects = vec![
        eip712::effect(a, token, -250),
        eip712::effect(b, token, 250),
    ];
    eip712::sort_effects(&mut effects);
    let exits = vec![eip712::exit(b, token, 100)];
    let s = Statement {
        sequence: 3,
        prevStateRoot: B256::from(seed("root/2")),
        newStateRoot: B256::from(seed("root/3")),
        inputsRoot: B256::from(seed("inputs/3")),
        inputCount: 2,
        logSize: 120,
        logRoot: B256::from(seed("log/120")),
        policyHash: B256::from(seed("policy")),
        effectsHash: eip712::effects_hash(&effects, &exits),
        notBefore: 1_800_000_000,
        notAfter: 1_800_003_600,
    };
    let digest = s.digest(&settlement_domain(chain_id, settlement));
    let (sig, recid) = key.sign_prehash_recoverable(digest.as_slice()).unwrap();
    let (sig, recid) = match sig.normalize_s() {
        Some(n) => (
            n,
            k256::ecdsa::RecoveryId::new(!recid.is_y_odd(), recid.is_x_reduced()),
        ),
        None => (sig, recid),
    };
    let mut signature = sig.to_bytes().to_vec();
    signature.push(27 + recid.to_byte());
    // The same signature with s' = n - s (and v flipped): valid for ecrecover, refused as high-s.
    let n = U256::from_str_radix(
        "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141",
        16,
    )
    .unwrap();
    let s_val = U256::from_be_slice(&signature[32..64]);
    let mut high = signature.clone();
    high[32..64].copy_from_slice(&(n - s_val).to_be_bytes::<32>());
    high[64] = if signature[64] == 27 { 28 } else { 27 };
    let word = |x: B256| format!("0x{}", hx(x));
    let statement = json!({
        "sequence": s.sequence, "prevStateRoot": word(s.prevStateRoot), "newStateRoot": word(s.newStateRoot),
        "inputsRoot": word(s.inputsRoot), "inputCount": s.inputCount, "logSize": s.logSize,
        "logRoot": word(s.logRoot), "policyHash": word(s.policyHash), "effectsHash": word(s.effectsHash),
        "notBefore": s.notBefore, "notAfter": s.notAfter,
    });
    let mut other = statement.clone();
    other["inputCount"] = json!(3);
    json!({
        "description": "An EIP-712 statement (docs/PROTOCOL.md §8) of the settlement contract at `settlement` on chain `chain_id`, its effects and exits with `effectsHash = keccak256(abi.encode(effects, exits))`, the digest, and the enclave's 65-byte signature (r ‖ s ‖ v, low s) recovering `signer`. The high-s twin must be refused; the statement with inputCount changed recovers another address.",
        "chain_id": chain_id,
        "settlement": format!("{settlement:#x}"),
        "statement": statement,
        "effects": effects.iter().map(|e| json!({"account": format!("{:#x}", e.account), "token": format!("{:#x}", e.token), "delta": e.delta.to_string()})).collect::<Vec<_>>(),
        "exits": exits.iter().map(|e| json!({"account": format!("{:#x}", e.account), "token": format!("{:#x}", e.token), "amount": e.amount.to_string()})).collect::<Vec<_>>(),
        "effects_encoding": format!("0x{}", hx(eip712::effects_encoding(&effects, &exits))),
        "digest": word(digest),
        "signature": format!("0x{}", hx(&signature)),
        "signer": format!("{signer:#x}"),
        "high_s_signature": format!("0x{}", hx(&high)),
        "tampered_statement": other,
        "abi_encoded_statement": format!("0x{}", hx(s.abi_encode())),
    })
}

// ---- enclave descriptions ----------------------------------------------------------------

fn enclave() -> Value {
    let key = Ed25519SigningKey::from_seed(seed("enclave/ed25519"));
    let secp = SigningKey::from_slice(&seed("enclave/secp256k1")).unwrap();
    let bundle = KeyBundle {
        ed25519: key.public().0,
        address: Address::from_public_key(secp.verifying_key()),
    };
    let instance = key.public().instance_id();
    let measurement = B256::from(seed("measurement"));
    let policy_hash = B256::from(seed("policy"));
    let x25519 = KemSecretKey::from_bytes(seed("recipient/x25519"));
    let xwing = XWingSecretKey::from_seed(seed("recipient/xwing"));
    let a = EpochAnnouncement {
        instance,
        epoch: Epoch(7),
        public_key: x25519.public(),
        not_before: 1_800_000_000,
        not_after: 1_800_004_000,
    };
    let suites = SuitePolicy::default()
        .with(Suite::XWingAes256Gcm, SuiteState::Preferred)
        .with(
            Suite::X25519Sha256ChaCha20Poly1305,
            SuiteState::DeprecatedAfter(1_800_001_000),
        );
    let x = XWingAnnouncement {
        instance,
        epoch: Epoch(7),
        public_key: xwing.public().clone(),
        not_before: 1_800_000_000,
        not_after: 1_800_004_000,
        suites,
    };
    let ann = a.sign(&key);
    let mut bad = ann.clone();
    bad[50] ^= 1;
    let mut suites_at = BTreeMap::new();
    suites_at.insert("1800000500", 3);
    json!({
        "description": "What GET /v1/enclave carries (docs/PROTOCOL.md §5-§7, §12): key bundle, instance id, program id, the signed epoch and X-Wing announcements. `sealing_suite` gives the suite to seal with at each unix time (the lifecycle prefers suite 3). `bad_epoch_announcement` has a flipped key byte and must be refused.",
        "key_bundle": hx(bundle.to_bytes()),
        "ed25519": hx(key.public().0),
        "address": format!("{:#x}", bundle.address),
        "instance_id": hx(instance.0),
        "measurement": format!("{measurement:#x}"),
        "policy_hash": format!("{policy_hash:#x}"),
        "program_id": format!("{:#x}", program_id(&measurement, &policy_hash)),
        "epoch_announcement": hx(&ann),
        "xwing_announcement": hx(x.sign(&key)),
        "epoch": 7,
        "x25519_public_key": hx(x25519.public().0),
        "xwing_public_key": hx(xwing.public().as_bytes()),
        "not_before": 1_800_000_000u64,
        "not_after": 1_800_004_000u64,
        "sealing_suite": suites_at,
        "bad_epoch_announcement": hx(&bad),
    })
}

fn check_enclave(v: &Value) {
    let key = sealbridge_seal::keys::Ed25519PublicKey(
        hex::decode(v["ed25519"].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap(),
    );
    let ann = hex::decode(v["epoch_announcement"].as_str().unwrap()).unwrap();
    assert_eq!(
        EpochAnnouncement::verify(&ann, &key).unwrap().epoch,
        Epoch(7)
    );
    let x = hex::decode(v["xwing_announcement"].as_str().unwrap()).unwrap();
    let x = XWingAnnouncement::verify(&x, &key).unwrap();
    assert_eq!(
        x.suites.sealing_suite(1_800_000_500),
        Some(Suite::XWingAes256Gcm)
    );
    let bad = hex::decode(v["bad_epoch_announcement"].as_str().unwrap()).unwrap();
    assert!(EpochAnnouncement::verify(&bad, &key).is_err());
}

#[test]
fn the_published_vectors_are_what_the_rust_implementation_produces_and_accepts() {
    let files: [(&str, Value); 6] = [
        ("envelope.json", envelopes()),
        ("receipt.json", receipts()),
        ("checkpoint.json", checkpoints()),
        ("merkle.json", merkle()),
        ("statement.json", statements()),
        ("enclave.json", enclave()),
    ];
    let write = std::env::var_os("SEALBRIDGE_WRITE_VECTORS").is_some();
    for (name, v) in &files {
        let path = dir().join(name);
        let text = serde_json::to_string_pretty(v).unwrap() + "\n";
        if write {
            std::fs::write(&path, &text).unwrap();
        } else {
            let committed = std::fs::read_to_string(&path).unwrap_or_else(|e| {
                panic!(
                    "{}: {e} (SEALBRIDGE_WRITE_VECTORS=1 writes it)",
                    path.display()
                )
            });
            assert!(
                committed == text,
                "{name} differs from what the code produces: a format change? (SEALBRIDGE_WRITE_VECTORS=1 rewrites it; review the diff)"
            );
        }
    }
    check_envelopes(&files[0].1);
    check_receipts(&files[1].1);
    check_checkpoints(&files[2].1);
    check_merkle(&files[3].1);
    check_statement(&files[4].1);
    check_enclave(&files[5].1);
}

fn h32(v: &Value) -> [u8; 32] {
    hex::decode(v.as_str().unwrap().trim_start_matches("0x"))
        .unwrap()
        .try_into()
        .unwrap()
}

fn check_merkle(v: &Value) {
    use sealbridge_log::{verify_consistency, verify_inclusion};
    for c in v["inclusion"].as_array().unwrap() {
        let proof: Vec<_> = c["proof"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| h32(p).into())
            .collect();
        let (i, n) = (c["index"].as_u64().unwrap(), c["size"].as_u64().unwrap());
        verify_inclusion(
            i,
            n,
            &h32(&c["leaf_hash"]).into(),
            &proof,
            &h32(&c["root"]).into(),
        )
        .unwrap();
    }
    for c in v["consistency"].as_array().unwrap() {
        let proof: Vec<_> = c["proof"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| h32(p).into())
            .collect();
        let (a, b) = (c["size1"].as_u64().unwrap(), c["size2"].as_u64().unwrap());
        verify_consistency(
            a,
            b,
            &proof,
            &h32(&c["root1"]).into(),
            &h32(&c["root2"]).into(),
        )
        .unwrap();
    }
}

fn check_statement(v: &Value) {
    let digest = B256::from(h32(&v["digest"]));
    let sig = hex::decode(v["signature"].as_str().unwrap().trim_start_matches("0x")).unwrap();
    let sig = alloy_primitives::Signature::from_raw(&sig).unwrap();
    let signer = sig.recover_address_from_prehash(&digest).unwrap();
    assert_eq!(format!("{signer:#x}"), v["signer"].as_str().unwrap());
}

//! `forged-checkpoint`: the host shows a client an inclusion proof against a checkpoint it made
//! up — a tree where the client's receipt sits where the host wants it, signed with a key of its
//! own under the deployment's log name; the genuine checkpoint with its size or root line
//! edited; or a genuine checkpoint of another enclave's log.
//!
//! Before issue 11 `NodeClient::receipt_info` (and `sealbridge client receipt`, which printed
//! "verified") checked the proof against the root line of whatever note the host sent, without
//! its signature: the made-up tree's checkpoint passed. Now the client verifies the note under
//! the attested Ed25519 key for the deployment's origin (`verify_checkpoint`) before an inclusion
//! proof counts (`verify_inclusion`): every forgery is refused, the genuine checkpoint and proof
//! pass.

use sealbridge_client::log::{
    Checkpoint, MemoryTree, NoteSigner, inclusion_proof, leaf_hash, sign_checkpoint,
};
use sealbridge_client::verify::{
    VerifyError, receipt_entry, verify_checkpoint, verify_enclave_on_chain, verify_inclusion,
};
use sealbridge_enclave::checkpoint::log_origin;
use sealbridge_seal::keys::Ed25519SigningKey;
use serde_json::json;

use crate::{Checks, Outcome, SandboxError, Scenario, World};

/// See the module documentation.
#[derive(Debug)]
pub struct ForgedCheckpoint;

/// The host's own note signer, under any name it likes.
struct HostSigner {
    name: String,
    key: Ed25519SigningKey,
}

impl NoteSigner for HostSigner {
    fn name(&self) -> &str {
        &self.name
    }
    fn public_key(&self) -> [u8; 32] {
        self.key.public().0
    }
    fn sign(&self, msg: &[u8]) -> [u8; 64] {
        self.key.sign_raw(msg).0
    }
}

fn verdict<T>(r: &Result<T, VerifyError>) -> String {
    match r {
        Ok(_) => "accepted".into(),
        Err(e) => e.to_string(),
    }
}

impl Scenario for ForgedCheckpoint {
    fn name(&self) -> &'static str {
        "forged-checkpoint"
    }

    fn threat(&self) -> &'static str {
        "The host proves a receipt's inclusion against a checkpoint it made up, edited or took \
         from another log, so that a client trusts a log the enclave never signed (DESIGN §12 \
         invariant 4, the log is the enclave's)."
    }

    fn run(&self, w: &mut World<'_>) -> Result<Outcome, SandboxError> {
        let tie = verify_enclave_on_chain(&w.sb, &w.description);
        let key = w.description.key_bundle.ed25519;
        let d = w.sb.deployment;
        let origin = log_origin(d.chain_id, d.settlement);
        let (to, token) = (w.account(1), w.token);

        w.step("participant 0 pays 5; the enclave logs the receipt and signs a checkpoint");
        let env = w.seal_payment(0, to, token, 5)?;
        let out = w.submit_envelope(env)?;
        let note = w.checkpoint_note()?;
        let mut tree = MemoryTree::new();
        for e in &w.log {
            tree.append_data(e)
                .map_err(|e| SandboxError::Enclave(format!("log: {e}")))?;
        }
        let size = w.log.len() as u64;
        let seq = out.sequence;
        let proof = inclusion_proof(&tree, seq, size)
            .map_err(|e| SandboxError::Enclave(format!("proof: {e}")))?;
        let genuine = verify_checkpoint(&note, &origin, &key);
        let genuine_inclusion = genuine
            .as_ref()
            .map_err(Clone::clone)
            .and_then(|cp| verify_inclusion(&out.receipt, seq, &proof, cp));

        w.step("the host makes up a log whose only entry is the receipt, and signs its checkpoint");
        let host = HostSigner {
            name: origin.clone(),
            key: Ed25519SigningKey::generate(&mut w.rng),
        };
        let fake_root = leaf_hash(&receipt_entry(&out.receipt));
        let fake_note = sign_checkpoint(&Checkpoint::new(origin.clone(), 1, fake_root), &host)
            .map_err(|e| SandboxError::Enclave(format!("host note: {e}")))?;
        let made_up = verify_checkpoint(&fake_note, &origin, &key);
        // What the old client did: the root line, unsigned, and the proof against it.
        let unsigned = Checkpoint::new(origin.clone(), 1, fake_root);
        let old_client_would_accept = verify_inclusion(&out.receipt, 0, &[], &unsigned).is_ok();

        w.step("the host edits the genuine checkpoint's size line");
        let size_line = format!("\n{size}\n");
        let edited = note.replacen(&size_line, &format!("\n{}\n", size + 1), 1);
        let edited_result = verify_checkpoint(&edited, &origin, &key);

        w.step("the host shows a genuine checkpoint of another enclave's log (another deployment)");
        let other_origin = log_origin(d.chain_id + 1, d.settlement);
        let other = HostSigner {
            name: other_origin.clone(),
            key: Ed25519SigningKey::generate(&mut w.rng),
        };
        let other_note = sign_checkpoint(&Checkpoint::new(other_origin, size, tree.root()), &other)
            .map_err(|e| SandboxError::Enclave(format!("other note: {e}")))?;
        let other_result = verify_checkpoint(&other_note, &origin, &key);

        w.step(
            "the inclusion proof against the made-up root (had the client skipped the signature)",
        );
        // A root of the host's choosing at the genuine size.
        let forged_root = Checkpoint::new(origin.clone(), size, leaf_hash(b"host's tree"));
        let forged_inclusion = verify_inclusion(&out.receipt, seq, &proof, &forged_root);

        let mut c = Checks::new();
        c.check("enclave tied to the chain", tie.is_ok());
        c.check(
            "genuine checkpoint and inclusion verify",
            genuine.as_ref().is_ok_and(|cp| cp.size == size) && genuine_inclusion.is_ok(),
        );
        c.check(
            "made-up checkpoint refused",
            matches!(made_up, Err(VerifyError::CheckpointSignature { .. })),
        );
        c.check(
            "edited checkpoint refused",
            edited != note && matches!(edited_result, Err(VerifyError::CheckpointSignature { .. })),
        );
        c.check(
            "another log's checkpoint refused",
            matches!(other_result, Err(VerifyError::CheckpointSignature { .. })),
        );
        c.check(
            "proof against a forged root refused",
            matches!(forged_inclusion, Err(VerifyError::Inclusion { .. })),
        );
        Ok(c.outcome(json!({
            "origin": origin,
            "receipt_sequence": seq,
            "log_size": size,
            "genuine": verdict(&genuine),
            "genuine_inclusion": verdict(&genuine_inclusion),
            "made_up": {
                "size": 1,
                "old_client_would_accept": old_client_would_accept,
                "verdict": verdict(&made_up),
            },
            "edited_size": verdict(&edited_result),
            "other_log": verdict(&other_result),
            "proof_against_forged_root": verdict(&forged_inclusion),
        })))
    }
}

//! `forged-receipt`: the host answers a client's submission with something other than the
//! enclave's receipt for it — the genuine receipt of another envelope (the client's envelope
//! dropped), a genuine rejection edited into an acceptance, a receipt it signed itself with the
//! enclave's instance id as `kid`, or a genuine receipt with its sequence edited.
//!
//! Before issue 11 `NodeClient::submit` returned the node's JSON as it came and never checked
//! the receipt's signature or the envelope it names: every one of these would have been taken
//! as "accepted" (the client then stops re-submitting, and the obligation is silently lost). Now
//! the client first ties the enclave to the chain (`verify_enclave_on_chain`: its key active in
//! the registry with the registered Ed25519 key) and then checks each receipt under that key
//! against the bytes it sent (`verify_receipt`): each forgery is refused by name, the genuine
//! receipt passes.

use sealbridge_client::verify::{VerifyError, verify_enclave_on_chain, verify_receipt};
use sealbridge_seal::{
    keys::Ed25519SigningKey,
    receipt::{Receipt, ReceiptStatus},
};
use serde_json::json;

use crate::{Checks, Outcome, SandboxError, Scenario, World};

/// See the module documentation.
#[derive(Debug)]
pub struct ForgedReceipt;

/// A refusal as evidence: the variant's message, or `"accepted"` when the forgery passed.
fn verdict<T>(r: &Result<T, VerifyError>) -> String {
    match r {
        Ok(_) => "accepted".into(),
        Err(e) => e.to_string(),
    }
}

impl Scenario for ForgedReceipt {
    fn name(&self) -> &'static str {
        "forged-receipt"
    }

    fn threat(&self) -> &'static str {
        "The host answers a submission with a receipt the enclave did not issue for it (another \
         envelope's, an edited or a self-signed one), so that a client believes a dropped or \
         rejected obligation was accepted (DESIGN §12 invariant 1, exactly-once)."
    }

    fn run(&self, w: &mut World<'_>) -> Result<Outcome, SandboxError> {
        w.step("the client ties the enclave to the chain (registry key, policy, program id)");
        let tie = verify_enclave_on_chain(&w.sb, &w.description);
        let key = match &tie {
            Ok(t) => t.ed25519,
            Err(_) => w.description.key_bundle.ed25519,
        };
        let (a, b) = (w.account(1), w.token);

        w.step("participant 0 pays 5: submitted honestly, a genuine receipt");
        let env0 = w.seal_payment(0, a, b, 5)?;
        let genuine = w.submit_envelope(env0.clone())?;
        let genuine_ok = verify_receipt(&genuine.receipt, &env0, &key);

        w.step("participant 2 pays 7: the host drops it and answers with participant 0's receipt");
        let to = w.account(3);
        let env2 = w.seal_payment(2, to, b, 7)?;
        let other_envelope = verify_receipt(&genuine.receipt, &env2, &key);

        w.step(
            "participant 1 overdraws: rejected; the host edits the rejection into an acceptance",
        );
        let to = w.account(0);
        let env1 = w.seal_payment(1, to, b, u128::MAX / 2)?;
        let rejected = w.submit_envelope(env1.clone())?;
        let mut edited = rejected.receipt.clone();
        // The status is the 4th payload element: find the `01 <reason>` pair after the
        // sequence and set the status to 0, reason 0 (what a host without the key can do).
        let status_at = flip_status(&mut edited);
        let edited_result = verify_receipt(&edited, &env1, &key);

        w.step("the host signs an 'accepted' receipt with its own key under the enclave's kid");
        let host_key = Ed25519SigningKey::generate(&mut w.rng);
        let self_signed = Receipt {
            envelope_id: sealbridge_proto::EnvelopeId::of(&env2),
            sequence: genuine.sequence + 1,
            status: ReceiptStatus::Accepted,
            epoch: sealbridge_proto::Epoch(0),
            enclave_time: w.now()?,
        }
        .sign(&host_key);
        let self_signed_result = verify_receipt(&self_signed, &env2, &key);

        w.step("the host edits the genuine receipt's sequence (to point at another log entry)");
        let mut moved = genuine.receipt.clone();
        let moved_at = bump_sequence(&mut moved, genuine.sequence);
        let moved_result = verify_receipt(&moved, &env0, &key);

        let mut c = Checks::new();
        c.check("enclave tied to the chain", tie.is_ok());
        c.check(
            "genuine receipt verifies",
            genuine_ok.as_ref().is_ok_and(|r| {
                r.status == ReceiptStatus::Accepted && r.sequence == genuine.sequence
            }),
        );
        c.check(
            "another envelope's receipt refused",
            matches!(
                other_envelope,
                Err(VerifyError::ReceiptForOtherEnvelope { .. })
            ),
        );
        c.check(
            "edited rejection refused",
            status_at.is_some() && matches!(edited_result, Err(VerifyError::ReceiptSignature(_))),
        );
        c.check(
            "self-signed receipt refused",
            matches!(self_signed_result, Err(VerifyError::ReceiptSignature(_))),
        );
        c.check(
            "edited sequence refused",
            moved_at.is_some() && matches!(moved_result, Err(VerifyError::ReceiptSignature(_))),
        );
        Ok(c.outcome(json!({
            "enclave": format!("{:#x}", w.description.key_bundle.address),
            "chain_tie": verdict(&tie),
            "genuine": {
                "sequence": genuine.sequence,
                "verdict": verdict(&genuine_ok),
            },
            "another_envelope_receipt": verdict(&other_envelope),
            "edited_rejection": {
                "reason": rejected.rejected.map(|r| r.as_str()),
                "status_byte_at": status_at,
                "verdict": verdict(&edited_result),
            },
            "self_signed": verdict(&self_signed_result),
            "edited_sequence": {
                "from": genuine.sequence,
                "byte_at": moved_at,
                "verdict": verdict(&moved_result),
            },
        })))
    }
}

/// The receipt payload is `[1, bstr(32) id, seq, status, reason, epoch, time]` (CBOR): set the
/// status and reason of a rejection to `0, 0` in place. The index of the status byte.
fn flip_status(receipt: &mut [u8]) -> Option<usize> {
    // The payload starts with `87 01 58 20 <32 bytes>` (array of 7, version 1, bstr of 32).
    let start = receipt
        .windows(4)
        .position(|w| w == [0x87, 0x01, 0x58, 0x20])?;
    let mut at = start + 4 + 32;
    at += uint_len(*receipt.get(at)?)?;
    if *receipt.get(at)? != 0x01 {
        return None;
    }
    *receipt.get_mut(at)? = 0x00;
    // The reason must go with it (an accepted receipt has reason 0): a one-byte reason.
    let reason = receipt.get_mut(at + 1)?;
    if *reason > 0x17 {
        return None;
    }
    *reason = 0x00;
    Some(at)
}

/// Change the sequence of a receipt whose sequence is `seq` to another valid CBOR integer of
/// the same width (the lowest bit flipped, or ±1 for a one-byte integer). The index of the byte.
fn bump_sequence(receipt: &mut [u8], seq: u64) -> Option<usize> {
    let start = receipt
        .windows(4)
        .position(|w| w == [0x87, 0x01, 0x58, 0x20])?;
    let at = start + 4 + 32;
    let len = uint_len(*receipt.get(at)?)?;
    let last = at + len - 1;
    let b = receipt.get_mut(last)?;
    match len {
        1 if seq < 0x17 => *b += 1,
        1 => *b -= 1,
        _ => *b ^= 1,
    }
    Some(last)
}

/// Bytes a CBOR unsigned integer with initial byte `b` takes.
fn uint_len(b: u8) -> Option<usize> {
    match b {
        0x00..=0x17 => Some(1),
        0x18 => Some(2),
        0x19 => Some(3),
        0x1a => Some(5),
        0x1b => Some(9),
        _ => None,
    }
}

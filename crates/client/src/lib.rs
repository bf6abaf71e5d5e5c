//! The client library: fetch the enclave's attestation, check it against an appraisal policy
//! *before* sealing anything, seal, submit (retrying safely: a re-submitted envelope gets its
//! original receipt), and fetch receipts with inclusion proofs; withdraw escrow through the
//! enclave ([`withdraw`]: request on chain, the enclave's decision from the node, the settled
//! exit, the claim).

use std::time::Duration;

use alloy_primitives::{Address, B256, U256};
use rand_core::CryptoRngCore;
use sealbridge_attest::{Collateral, Evidence, Policy, report_data, verify};
use sealbridge_enclave::{KeyBundle, epochs::EpochAnnouncement};
use sealbridge_log::{Hash, leaf_hash, verify_inclusion};
use sealbridge_proto::{EnvelopeHeader, Epoch, InstanceId, Nonce, ProgramId, TraceId};
use sealbridge_seal::keys::{Ed25519PublicKey, Ed25519SigningKey, KemPublicKey};
use serde_json::Value;

/// Client errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The node could not be reached.
    #[error("transport: {0}")]
    Transport(String),
    /// The node answered something unexpected.
    #[error("unexpected answer: {0}")]
    Protocol(String),
    /// The enclave's attestation did not pass the policy: nothing was sealed.
    #[error("attestation refused: {0}")]
    Attestation(String),
    /// The node refused the request (status, body).
    #[error("node answered {0}: {1}")]
    Refused(u16, String),
    /// The caller's request is not valid; nothing was sent.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// A chain transaction or read failed (a revert names the contract error).
    #[error("chain: {0}")]
    Chain(String),
    /// Something did not happen in time.
    #[error("timed out: {0}")]
    Timeout(String),
}

fn transport(e: impl std::fmt::Display) -> ClientError {
    ClientError::Transport(e.to_string())
}

/// What a client needs to address envelopes to an attested enclave.
#[derive(Debug, Clone)]
pub struct Attested {
    /// The attested key bundle.
    pub key_bundle: KeyBundle,
    /// Instance id.
    pub instance: InstanceId,
    /// Current epoch.
    pub epoch: Epoch,
    /// The epoch's KEM key (announcement verified under the attested Ed25519 key).
    pub kem: KemPublicKey,
    /// Program id.
    pub program: ProgramId,
    /// Measurement.
    pub measurement: B256,
    /// The full `/v1/enclave` answer.
    pub info: Value,
}

impl Attested {
    /// Seal `payload` from `from`, valid for `lifetime` seconds after `now`.
    pub fn seal(
        &self,
        from: &Ed25519SigningKey,
        payload: &[u8],
        now: u64,
        lifetime: u64,
        rng: &mut impl CryptoRngCore,
    ) -> Result<Vec<u8>, ClientError> {
        let mut nonce = [0u8; 16];
        rng.fill_bytes(&mut nonce);
        let mut trace = [0u8; 16];
        rng.fill_bytes(&mut trace);
        let header = EnvelopeHeader::new(
            self.instance,
            self.epoch,
            self.program,
            Nonce::new(nonce),
            now + lifetime,
            TraceId::new(trace),
        );
        sealbridge_seal::envelope::seal(&header, &self.kem, from, payload, rng)
            .map_err(|e| ClientError::Protocol(format!("sealing: {e}")))
    }
}

/// A node's HTTP API.
#[derive(Debug, Clone)]
pub struct NodeClient {
    base: String,
    agent: ureq::Agent,
}

/// The longest `Retry-After` [`NodeClient::submit`] honours.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(10);

/// An HTTP answer: status and JSON body.
pub type Answer = (u16, Value);

impl NodeClient {
    /// A client for `base` (e.g. `http://127.0.0.1:8080`).
    pub fn new(base: &str) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        Self {
            base: base.trim_end_matches('/').to_string(),
            agent,
        }
    }

    /// GET a JSON document.
    pub fn get_json(&self, path: &str) -> Result<Answer, ClientError> {
        let mut r = self
            .agent
            .get(&format!("{}{path}", self.base))
            .call()
            .map_err(transport)?;
        let status = r.status().as_u16();
        let body = r.body_mut().read_to_string().map_err(transport)?;
        let v = serde_json::from_str(&body).unwrap_or(Value::String(body));
        Ok((status, v))
    }

    /// GET raw bytes.
    pub fn get_bytes(&self, path: &str) -> Result<(u16, Vec<u8>), ClientError> {
        let mut r = self
            .agent
            .get(&format!("{}{path}", self.base))
            .call()
            .map_err(transport)?;
        let status = r.status().as_u16();
        let body = r
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_vec()
            .map_err(transport)?;
        Ok((status, body))
    }

    /// POST bytes with a content type.
    pub fn post(&self, path: &str, content_type: &str, body: &[u8]) -> Result<Answer, ClientError> {
        self.post_retry_after(path, content_type, body)
            .map(|(status, v, _)| (status, v))
    }

    /// POST, also returning the `Retry-After` header in seconds (RFC 9110 §10.2.3; the node
    /// sends the delay-seconds form).
    fn post_retry_after(
        &self,
        path: &str,
        content_type: &str,
        body: &[u8],
    ) -> Result<(u16, Value, Option<u64>), ClientError> {
        let mut r = self
            .agent
            .post(&format!("{}{path}", self.base))
            .header("content-type", content_type)
            .send(body)
            .map_err(transport)?;
        let status = r.status().as_u16();
        let retry_after = r
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok());
        let text = r.body_mut().read_to_string().map_err(transport)?;
        let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok((status, v, retry_after))
    }

    /// Fetch the enclave's description and fresh evidence for a random challenge, appraise the
    /// evidence under `policy`, and check that it binds the key bundle, that the measurement
    /// is the one described and that the epoch announcement is signed by the attested key.
    /// The evidence is appraised at the later of `now` and this host's clock once it arrived:
    /// the enclave stamps it when it answers, which may be in the second after `now` was read
    /// (appraised at `now` alone it would be "from the future").
    pub fn attest(
        &self,
        policy: &Policy,
        now: u64,
        rng: &mut impl CryptoRngCore,
    ) -> Result<Attested, ClientError> {
        let mut challenge = [0u8; 32];
        rng.fill_bytes(&mut challenge);
        let (status, info) =
            self.get_json(&format!("/v1/enclave?challenge={}", hex::encode(challenge)))?;
        if status != 200 {
            return Err(ClientError::Refused(status, info.to_string()));
        }
        let hexfield = |k: &str| -> Result<Vec<u8>, ClientError> {
            info[k]
                .as_str()
                .and_then(|s| hex::decode(s.trim_start_matches("0x")).ok())
                .ok_or_else(|| ClientError::Protocol(format!("field {k}")))
        };
        let bundle = KeyBundle::from_bytes(&hexfield("key_bundle")?)
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        let evidence = Evidence::Simulated(hexfield("evidence")?);
        let now = now.max(sealbridge_net::unix_now());
        let verified = verify(&evidence, &Collateral::None, now, policy)
            .map_err(|e| ClientError::Attestation(e.to_string()))?;
        if verified.claims.report_data.as_slice()
            != report_data(&bundle.to_bytes(), &challenge).as_slice()
        {
            return Err(ClientError::Attestation(
                "the evidence does not bind this key bundle to our challenge".into(),
            ));
        }
        let measurement = B256::from_slice(&hexfield("measurement")?);
        if verified.claims.measurement.0 != measurement.0 {
            return Err(ClientError::Attestation(
                "the described measurement is not the attested one".into(),
            ));
        }
        let ann = EpochAnnouncement::verify(
            &hexfield("epoch_announcement")?,
            &Ed25519PublicKey::from_bytes(bundle.ed25519),
        )
        .map_err(|e| ClientError::Attestation(format!("epoch announcement: {e}")))?;
        if ann.instance != bundle.instance_id() {
            return Err(ClientError::Attestation(
                "epoch announcement names another instance".into(),
            ));
        }
        let program = hexfield("program_id")?;
        let program = ProgramId::from_slice(&program)
            .map_err(|_| ClientError::Protocol("program id".into()))?;
        Ok(Attested {
            key_bundle: bundle,
            instance: ann.instance,
            epoch: ann.epoch,
            kem: ann.public_key,
            program,
            measurement,
            info,
        })
    }

    /// Submit an envelope; retries transport failures and 503s up to `retries` times (safe:
    /// the node answers a re-submitted accepted envelope with its original receipt). Waits
    /// 100 ms more after each attempt (at most 2 s), or what the node's `Retry-After` asks
    /// if that is longer (at most [`MAX_RETRY_AFTER`]).
    pub fn submit(&self, envelope: &[u8], retries: u32) -> Result<Answer, ClientError> {
        let mut attempt = 0;
        loop {
            let r = self.post_retry_after("/v1/envelopes", sealbridge_api::COSE, envelope);
            let retry = matches!(&r, Err(ClientError::Transport(_)) | Ok((503, _, _)));
            if !retry || attempt >= retries {
                return r.map(|(status, v, _)| (status, v));
            }
            attempt += 1;
            let backoff = Duration::from_millis(100 * u64::from(attempt.min(20)));
            let asked = match &r {
                Ok((_, _, Some(secs))) => Duration::from_secs(*secs).min(MAX_RETRY_AFTER),
                _ => Duration::ZERO,
            };
            std::thread::sleep(backoff.max(asked));
        }
    }

    /// The receipt of an envelope, with its inclusion proof checked when present: returns the
    /// JSON and whether the proof verified against the checkpoint's root.
    pub fn receipt(&self, envelope_id: &[u8; 32]) -> Result<(Value, Option<bool>), ClientError> {
        let (status, v) = self.get_json(&format!("/v1/receipts/{}", hex::encode(envelope_id)))?;
        if status != 200 {
            return Err(ClientError::Refused(status, v.to_string()));
        }
        let proof_ok = v
            .get("inclusion")
            .filter(|i| !i.is_null())
            .map(|inc| check_inclusion(&v, inc).unwrap_or(false));
        Ok((v, proof_ok))
    }

    /// The node's decision on withdrawal request `request_id` (`GET /v1/withdrawals/{id}`);
    /// `None` while there is none (not yet confirmed and forwarded, or no such request).
    pub fn withdrawal(&self, request_id: u64) -> Result<Option<WithdrawalDecision>, ClientError> {
        let (status, v) = self.get_json(&format!("/v1/withdrawals/{request_id}"))?;
        match status {
            200 => WithdrawalDecision::from_json(&v).map(Some),
            404 => Ok(None),
            _ => Err(ClientError::Refused(status, v.to_string())),
        }
    }

    /// `/v1/status`.
    pub fn status(&self) -> Result<Value, ClientError> {
        let (status, v) = self.get_json("/v1/status")?;
        if status != 200 {
            return Err(ClientError::Refused(status, v.to_string()));
        }
        Ok(v)
    }
}

/// The enclave's decision on a withdrawal request, as the node serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WithdrawalDecision {
    /// The contract's request id.
    pub request_id: u64,
    /// The requesting account.
    pub account: Address,
    /// The token.
    pub token: Address,
    /// Amount requested.
    pub requested: u128,
    /// Amount granted (0 for a refusal).
    pub granted: u128,
    /// The reason code (`full`, `partial`, `refused-insufficient`, …).
    pub reason: String,
    /// The statement whose exits carry the grant (none for a refusal).
    pub statement_sequence: Option<u64>,
    /// That statement is on chain (maybe not yet with every confirmation).
    pub included: bool,
    /// That statement is settled with the node's confirmations (the exit is claimable).
    pub settled: bool,
}

impl WithdrawalDecision {
    fn from_json(v: &Value) -> Result<Self, ClientError> {
        let bad = |k: &str| ClientError::Protocol(format!("withdrawal decision: field {k}"));
        let text = |k: &str| v[k].as_str().ok_or_else(|| bad(k));
        let amount = |k: &str| text(k)?.parse::<u128>().map_err(|_| bad(k));
        let address = |k: &str| text(k)?.parse::<Address>().map_err(|_| bad(k));
        Ok(Self {
            request_id: v["request_id"].as_u64().ok_or_else(|| bad("request_id"))?,
            account: address("account")?,
            token: address("token")?,
            requested: amount("requested")?,
            granted: amount("granted")?,
            reason: text("reason")?.to_string(),
            statement_sequence: v["statement_sequence"].as_u64(),
            included: v["included"].as_bool().unwrap_or(false),
            settled: v["settled"].as_bool().ok_or_else(|| bad("settled"))?,
        })
    }
}

/// What [`withdraw`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WithdrawOutcome {
    /// The enclave's decision (as the node served it when the exit had settled, or the refusal).
    pub decision: WithdrawalDecision,
    /// The `requestWithdrawal` transaction.
    pub request_tx: B256,
    /// The `claim` transaction (none when nothing was granted or nothing was left to claim).
    pub claim_tx: Option<B256>,
    /// Tokens the claim paid out (every granted exit of this token not claimed before).
    pub claimed: U256,
    /// The account's token balance afterwards.
    pub wallet: U256,
}

/// Poll the node's decision on request `id` until `done` holds, running `wait` between polls;
/// [`ClientError::Timeout`] (saying `what` did not happen) after `timeout`.
fn poll_withdrawal<C: sealbridge_chain::Chain>(
    node: &NodeClient,
    sb: &mut sealbridge_chain::Sealbridge<C>,
    id: u64,
    timeout: Duration,
    wait: &mut impl FnMut(&mut sealbridge_chain::Sealbridge<C>),
    what: &str,
    done: impl Fn(&WithdrawalDecision) -> bool,
) -> Result<WithdrawalDecision, ClientError> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(d) = node.withdrawal(id)?
            && done(&d)
        {
            return Ok(d);
        }
        if std::time::Instant::now() >= deadline {
            return Err(ClientError::Timeout(format!(
                "withdrawal request {id}: {what} after {} s",
                timeout.as_secs()
            )));
        }
        wait(sb);
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn chain_error(what: &str, e: sealbridge_chain::ContractError) -> ClientError {
    ClientError::Chain(format!("{what}: {e}"))
}

/// Ask for a withdrawal: `requestWithdrawal(token, amount)` sent from `from`, then wait (up to
/// `timeout`) for the enclave's decision as the node serves it (`GET /v1/withdrawals/{id}`):
/// granted in full, in part or not at all, with a reason code. A partial fill or a refusal is
/// an outcome, not an error; a request the contract refuses (not a participant, zero, frozen,
/// ...) is [`ClientError::Chain`], and an amount of 0 is refused before anything is sent.
/// `wait` runs between polls (e.g. to mine a block on a development chain). Returns the decision
/// and the request's transaction.
pub fn request_withdrawal<C: sealbridge_chain::Chain>(
    node: &NodeClient,
    sb: &mut sealbridge_chain::Sealbridge<C>,
    from: Address,
    token: Address,
    amount: u128,
    timeout: Duration,
    mut wait: impl FnMut(&mut sealbridge_chain::Sealbridge<C>),
) -> Result<(WithdrawalDecision, B256), ClientError> {
    if amount == 0 {
        return Err(ClientError::Invalid(
            "the amount to withdraw must be at least 1".into(),
        ));
    }
    let (id, receipt) = sb
        .request_withdrawal(from, token, U256::from(amount))
        .map_err(|e| chain_error("requestWithdrawal", e))?;
    let decision = poll_withdrawal(
        node,
        sb,
        id,
        timeout,
        &mut wait,
        "the node has not decided it",
        |_| true,
    )?;
    if (decision.account, decision.token, decision.requested) != (from, token, amount) {
        return Err(ClientError::Protocol(format!(
            "the node's request {id} is {} of {} by {}, not the one made",
            decision.requested, decision.token, decision.account
        )));
    }
    Ok((decision, receipt.tx_hash))
}

/// Once a granted exit's statement has settled (waiting up to `timeout`, running `wait` between
/// polls), `claim` it from `decision.account`: returns the decision as the node serves it then,
/// the claim's transaction and what it paid out (every granted exit of the token not claimed
/// before; nothing, and no transaction, if an earlier claim took it). A refusal claims nothing.
pub fn claim_exit<C: sealbridge_chain::Chain>(
    node: &NodeClient,
    sb: &mut sealbridge_chain::Sealbridge<C>,
    decision: WithdrawalDecision,
    timeout: Duration,
    mut wait: impl FnMut(&mut sealbridge_chain::Sealbridge<C>),
) -> Result<(WithdrawalDecision, Option<B256>, U256), ClientError> {
    if decision.granted == 0 {
        return Ok((decision, None, U256::ZERO));
    }
    let (from, token) = (decision.account, decision.token);
    let decision = poll_withdrawal(
        node,
        sb,
        decision.request_id,
        timeout,
        &mut wait,
        "the statement carrying the exit has not settled",
        |d| d.settled,
    )?;
    let claimable = sb
        .claimable(from, token)
        .map_err(|e| chain_error("claimable", e))?;
    if claimable.is_zero() {
        return Ok((decision, None, U256::ZERO));
    }
    use alloy_sol_types::SolEvent;
    let r = sb.claim(from, token).map_err(|e| chain_error("claim", e))?;
    let settlement = sb.deployment.settlement;
    let paid = r
        .logs
        .iter()
        .filter(|l| l.address() == settlement)
        .find_map(|l| sealbridge_chain::bindings::Settlement::Claimed::decode_log(&l.inner).ok())
        .map(|e| e.data.amount)
        .ok_or_else(|| ClientError::Chain("claim succeeded without a Claimed event".into()))?;
    Ok((decision, Some(r.tx_hash), paid))
}

/// Withdraw `amount` of `token` from `from`'s escrow through the enclave:
/// [`request_withdrawal`], then [`claim_exit`] (each step waits up to `timeout`), then the
/// account's token balance.
pub fn withdraw<C: sealbridge_chain::Chain>(
    node: &NodeClient,
    sb: &mut sealbridge_chain::Sealbridge<C>,
    from: Address,
    token: Address,
    amount: u128,
    timeout: Duration,
    mut wait: impl FnMut(&mut sealbridge_chain::Sealbridge<C>),
) -> Result<WithdrawOutcome, ClientError> {
    let (decision, request_tx) =
        request_withdrawal(node, sb, from, token, amount, timeout, &mut wait)?;
    let (decision, claim_tx, claimed) = claim_exit(node, sb, decision, timeout, &mut wait)?;
    let wallet = sb
        .token_balance(token, from)
        .map_err(|e| chain_error("balanceOf", e))?;
    Ok(WithdrawOutcome {
        decision,
        request_tx,
        claim_tx,
        claimed,
        wallet,
    })
}

/// Check a receipt's inclusion proof against the root in its checkpoint (the checkpoint's
/// signature is the enclave's; verify it with `sealbridge_log::verify_checkpoint` for full trust).
fn check_inclusion(v: &Value, inc: &Value) -> Option<bool> {
    let receipt = hex::decode(v["receipt"].as_str()?).ok()?;
    let entry = sealbridge_enclave::log_entry::encode(
        sealbridge_enclave::log_entry::EntryKind::Receipt,
        &receipt,
    );
    let note = inc["checkpoint"].as_str()?;
    let root_b64 = note.lines().nth(2)?;
    let root = base64_decode(root_b64)?;
    let root = Hash(root.try_into().ok()?);
    let proof: Vec<Hash> = inc["proof"]
        .as_array()?
        .iter()
        .filter_map(|h| {
            let b = hex::decode(h.as_str()?).ok()?;
            Some(Hash(b.try_into().ok()?))
        })
        .collect();
    Some(
        verify_inclusion(
            inc["leaf_index"].as_u64()?,
            inc["log_size"].as_u64()?,
            &leaf_hash(&entry),
            &proof,
            &root,
        )
        .is_ok(),
    )
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut buf, mut bits) = (0u32, 0u32);
    for c in s.trim().bytes().filter(|c| *c != b'=') {
        let v = A.iter().position(|a| *a == c)? as u32;
        buf = (buf << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
            buf &= (1 << bits) - 1;
        }
    }
    Some(out)
}

//! `sealbridge client`, `sealbridge status` and `sealbridge load`: the node's HTTP API from the
//! command line. Clients check the enclave's attestation against a policy before sealing.
//!
//! Clients verify what they rely on (issue 11): receipts under the attested key and against the
//! bytes sent (kept with `--receipts DIR` for `sealbridge audit --receipts DIR`), inclusion
//! proofs only against a checkpoint signed by that key, the enclave tied to the chain with
//! `--chain URL` (registry key, policy hash, program id, tokens and participants read on chain),
//! and `receipt --wait-final` until an on-chain anchor covers the receipt.
//!
//! Every command here prints lines for people by default and exactly one JSON object with
//! `--json`; with `--json` a failure is `{"error": <code>, "message": <text>}` on stdout (as
//! `sealbridge gov` does), and the exit code is non-zero either way.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use sealbridge_attest::Policy;
use sealbridge_client::api::{Enclave, Receipt, ReceiptInfo, ReceiptStatus};
use sealbridge_client::{ClientError, NodeClient, Submitted};
use sealbridge_deploy::dev::participants;
use sealbridge_node::unix_now;
use sealbridge_programs::netting::Obligation;
use serde_json::{Value, json};

/// How the client appraises the enclave before sealing anything.
#[derive(Debug, Clone, clap::Args)]
pub struct PolicyArgs {
    /// Appraisal policy file (JSON, see docs/ATTESTATION.md).
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// Accept the simulated TEE (INSECURE: development only).
    #[arg(long)]
    pub allow_simulated: bool,
}

impl PolicyArgs {
    /// The policy to appraise with.
    pub fn policy(&self) -> anyhow::Result<Policy> {
        match (&self.policy, self.allow_simulated) {
            (Some(p), _) => {
                Policy::from_json(&std::fs::read(p)?).map_err(|e| anyhow::anyhow!("{e}"))
            }
            (None, true) => Ok(Policy::insecure_dev()),
            (None, false) => Ok(Policy::default()),
        }
    }
}

/// Arguments of `sealbridge client`.
#[derive(Debug, Clone, clap::Args)]
pub struct ClientArgs {
    /// The node's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub node: String,
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// Print one JSON object (also for a failure: `{"error": code, "message": text}`).
    #[arg(long, global = true)]
    pub json: bool,
    /// Keep every verified receipt in this directory (one `<envelope id>.receipt` file each),
    /// for `sealbridge audit --receipts DIR`: the defence against a host that rolls the log
    /// back before it is anchored.
    #[arg(long, global = true, value_name = "DIR")]
    pub receipts: Option<PathBuf>,
    /// The deployment you trust: its settlement contract's address. A node that names another
    /// (a host that deployed contracts of its own, with its own policy, and registered the
    /// genuine enclave there) is refused before anything is sealed; with `--chain` the checks
    /// on chain then run against this deployment.
    #[arg(
        long,
        global = true,
        env = "SEALBRIDGE_SETTLEMENT",
        value_name = "ADDR"
    )]
    pub settlement: Option<alloy_primitives::Address>,
    #[command(subcommand)]
    pub command: ClientCommand,
}

/// `sealbridge client` subcommands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum ClientCommand {
    /// Fetch the enclave's evidence for a fresh challenge and appraise it.
    Attest,
    /// Seal an obligation and submit it, from a development participant (`--from INDEX`) or
    /// with the participant's own Ed25519 key (`--key-file FILE`); the receipt is verified
    /// under the attested key before it is printed.
    Submit(SubmitArgs),
    /// Fetch a receipt and check it: its signature under the attested key, then its inclusion
    /// proof against a checkpoint signed by that key ("verified" only then); with
    /// `--wait-final`, wait until an on-chain statement anchors a log that holds it.
    Receipt {
        /// Envelope id (hex).
        envelope_id: String,
        /// Wait until the chain anchors the receipt: the settlement contract's
        /// (logSize, logRoot) covers it, with a consistency proof from that root to the signed
        /// checkpoint the inclusion is shown against (proofs computed from the node's tiles).
        #[arg(long)]
        wait_final: bool,
        /// The node's chain (JSON-RPC), for `--wait-final`.
        #[arg(long, default_value = "http://127.0.0.1:8545")]
        chain: String,
        /// Longest wait, in seconds, with `--wait-final`.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
    },
    /// Withdraw escrow through the enclave: send requestWithdrawal from the participant's
    /// account, wait for the enclave's decision (granted in full, in part or not at all, with a
    /// reason code), wait until the statement carrying the exit settled, claim it and print the
    /// tokens now in the wallet. A partial fill or a refusal exits 0.
    Withdraw(WithdrawArgs),
}

/// Arguments of `sealbridge client submit`.
#[derive(Debug, Clone, clap::Args)]
#[command(group(clap::ArgGroup::new("sender").required(true).args(["from", "key_file"])))]
pub struct SubmitArgs {
    /// A development participant (index) sends. INSECURE: development keys are public.
    #[arg(long)]
    pub from: Option<u32>,
    /// The participant's own Ed25519 envelope key: a file with its 32-byte seed in hex (64 hex
    /// digits, as `sealbridge` key files are; mode 600). Never printed.
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
    /// Receiving participant: a development participant's index, or an account (0x…).
    #[arg(long)]
    pub to: String,
    /// Amount (base units of the token).
    #[arg(long)]
    pub amount: u128,
    /// Token [default: the deployment's first token, from the chain with `--chain`].
    #[arg(long)]
    pub token: Option<alloy_primitives::Address>,
    /// Tie the enclave to the chain before sealing (JSON-RPC URL of the node's chain): its key
    /// active in the registry, its policy hash the settlement contract's, its program id
    /// recomputed; the token and the recipient checked against the deployment's on chain.
    /// Without it the enclave's policy is the node's word (a warning says so).
    #[arg(long)]
    pub chain: Option<String>,
    /// Seal with this suite (`xwing`, `x25519-aes128gcm`, `x25519-chacha20` or a registered
    /// suite name) instead of the preferred suite of the enclave's policy, as its signed X-Wing
    /// announcement names it. Refused if the policy does not accept it now.
    #[arg(long, value_parser = crate::demo::parse_suite)]
    pub suite: Option<sealbridge_proto::Suite>,
}

/// An Ed25519 seed from a hex key file (32 bytes, 64 hex digits), zeroized after use; no error
/// carries (part of) it.
fn load_ed25519(
    path: &std::path::Path,
) -> anyhow::Result<sealbridge_seal::keys::Ed25519SigningKey> {
    crate::common::warn_if_shared(path);
    let bytes = zeroize::Zeroizing::new(
        crate::common::read_file(path).with_context(|| format!("key file {}", path.display()))?,
    );
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| anyhow::anyhow!("key file {}: not text", path.display()))?;
    let raw = zeroize::Zeroizing::new(
        hex::decode(text.trim().trim_start_matches("0x"))
            .map_err(|_| anyhow::anyhow!("key file {}: not hex", path.display()))?,
    );
    let seed: zeroize::Zeroizing<[u8; 32]> =
        zeroize::Zeroizing::new(raw.as_slice().try_into().map_err(|_| {
            anyhow::anyhow!(
                "key file {}: not an Ed25519 seed (expected 32 bytes, 64 hex digits)",
                path.display()
            )
        })?);
    Ok(sealbridge_seal::keys::Ed25519SigningKey::from_seed(*seed))
}

/// Arguments of `sealbridge client withdraw`.
#[derive(Debug, Clone, clap::Args)]
#[command(group(clap::ArgGroup::new("account").required(true).args(["from", "key_file"])))]
pub struct WithdrawArgs {
    /// Amount to withdraw (base units of the token).
    #[arg(long)]
    pub amount: u128,
    /// Token [default: the node's first token].
    #[arg(long)]
    pub token: Option<alloy_primitives::Address>,
    /// A development participant (index): its account is unlocked and given gas on the
    /// development chain (anvil). INSECURE: development only.
    #[arg(long)]
    pub from: Option<u32>,
    /// The participant account's own secp256k1 key (hex file): it signs requestWithdrawal and
    /// claim. Never printed.
    #[arg(long)]
    pub key_file: Option<PathBuf>,
    /// The node's chain (JSON-RPC).
    #[arg(long, default_value = "http://127.0.0.1:8545")]
    pub chain: String,
    /// Longest wait, in seconds, for the decision, and then for the exit to settle.
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
}

/// With `--json`, a failure as one JSON object on stdout; the error goes on to `main` (stderr,
/// exit 2) either way.
fn reported(json: bool, r: anyhow::Result<ExitCode>) -> anyhow::Result<ExitCode> {
    if let (true, Err(e)) = (json, &r) {
        let code = e
            .chain()
            .find_map(|c| c.downcast_ref::<ClientError>())
            .map_or("error", ClientError::code);
        println!("{}", json!({"error": code, "message": format!("{e:#}")}));
    }
    r
}

/// Run `sealbridge client`.
pub fn run(args: &ClientArgs) -> anyhow::Result<ExitCode> {
    reported(args.json, run_client(args))
}

fn run_client(args: &ClientArgs) -> anyhow::Result<ExitCode> {
    let mut c = NodeClient::new(&args.node);
    if let Some(dir) = &args.receipts {
        c = c.keep_receipts(dir);
    }
    let mut rng = ChaCha20Rng::from_entropy();
    match &args.command {
        ClientCommand::Attest => {
            let a = c.attest(&args.policy.policy()?, unix_now(), &mut rng)?;
            check_pin(args.settlement, &a.info)?;
            if args.json {
                println!(
                    "{}",
                    json!({
                        "appraisal": "passed",
                        "address": a.key_bundle.address,
                        "instance_id": a.instance.to_hex(),
                        "measurement": a.measurement,
                        "epoch": a.epoch.0,
                        "settlement": a.enclave.settlement,
                    })
                );
            } else {
                println!("appraisal: passed");
                println!("  address: {:#x}", a.key_bundle.address);
                println!("  instance id: {}", a.instance.to_hex());
                println!("  measurement: {}", a.measurement);
                println!("  epoch: {}", a.epoch.0);
                println!("  settlement: {}", a.enclave.settlement);
            }
        }
        ClientCommand::Submit(sub) => return submit(&c, args, sub, &mut rng),
        ClientCommand::Withdraw(w) => return withdraw(&c, w, args.settlement, args.json),
        ClientCommand::Receipt {
            envelope_id,
            wait_final,
            chain,
            timeout,
        } => {
            let mut id = [0u8; 32];
            hex::decode_to_slice(envelope_id.trim_start_matches("0x"), &mut id)
                .context("an envelope id is 32 bytes of hex")?;
            let a = c.attest(&args.policy.policy()?, unix_now(), &mut rng)?;
            check_pin(args.settlement, &a.info)?;
            if *wait_final {
                return receipt_final(&c, &a, &id, chain, *timeout, args.json);
            }
            let r = c.receipt_info_raw(&id)?;
            let checked = c.verify_receipt_info(&id, &r);
            let proof = match (&checked, &r.inclusion) {
                (_, None) => None,
                (Ok(_), Some(_)) => Some(true),
                (Err(_), Some(_)) => Some(false),
            };
            let why = checked.as_ref().err().map(ToString::to_string);
            if args.json {
                let mut v = serde_json::to_value(&r)?;
                v["verified"] = json!(checked.is_ok());
                v["inclusion_verified"] = json!(proof);
                v["not_verified"] = json!(why);
                println!("{v}");
            } else {
                print_receipt(&r, proof);
                if let Some(why) = &why {
                    println!("  NOT VERIFIED: {why}");
                }
            }
            if checked.is_err() {
                return Ok(ExitCode::from(1));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The enclave's verdict on an envelope, for people.
fn print_verdict(r: &Receipt) {
    let again = if r.resubmitted { " (sent before)" } else { "" };
    match r.status {
        ReceiptStatus::Accepted => println!("accepted{again}"),
        ReceiptStatus::Rejected => println!(
            "rejected by the enclave{again}: {}",
            r.reason.as_deref().unwrap_or("(no reason given)")
        ),
    }
    println!("  envelope id: {}", r.envelope_id);
    println!("  log sequence: {}", r.sequence);
    println!("  trace id: {}", r.trace_id);
}

fn print_submitted(answer: &Submitted) {
    match answer {
        Submitted::Receipt(r) => print_verdict(r),
        Submitted::Refused { status, error } => println!(
            "refused by the node (HTTP {status}, {}): {}",
            error.error, error.message
        ),
    }
}

fn print_receipt(r: &ReceiptInfo, proof: Option<bool>) {
    print_verdict(&r.receipt);
    match r.statement_sequence {
        Some(q) if r.settled => println!("  statement: {q} (settled)"),
        Some(q) if r.included => println!("  statement: {q} (on chain, not yet final)"),
        Some(q) => println!("  statement: {q} (not yet on chain)"),
        None => println!("  statement: none"),
    }
    if let Some(tx) = &r.settlement_tx {
        println!("  settlement tx: {tx}");
    }
    println!(
        "  inclusion proof: {}",
        match proof {
            Some(true) => "verified (checkpoint signed by the attested enclave key)",
            Some(false) => "DOES NOT VERIFY",
            None => "not yet (no checkpoint covers it)",
        }
    );
}

/// `sealbridge client submit`.
fn submit(
    c: &NodeClient,
    args: &ClientArgs,
    sub: &SubmitArgs,
    rng: &mut ChaCha20Rng,
) -> anyhow::Result<ExitCode> {
    let mut a = c.attest(&args.policy.policy()?, unix_now(), rng)?;
    if let Some(suite) = sub.suite {
        a = a.with_suite(suite, unix_now())?;
    }
    check_pin(args.settlement, &a.info)?;
    let tie = match &sub.chain {
        Some(url) => Some(tie_to_chain(&a, url)?),
        None => {
            eprintln!(
                "warning: the enclave is not tied to the chain (pass --chain URL): its policy, \
                 program id and token are the node's word"
            );
            None
        }
    };
    let dev = |what: &str| -> anyhow::Result<u32> {
        participant_count(&a.enclave)
            .with_context(|| format!("{what} names a development participant"))
    };
    let key = match (sub.from, &sub.key_file) {
        (Some(i), None) => {
            let n = dev("--from")?;
            if i >= n {
                bail!("--from: the development participants are 0..{n}, not {i}");
            }
            participants(n).swap_remove(i as usize).key
        }
        (None, Some(path)) => load_ed25519(path)?,
        _ => bail!("pass either --from INDEX or --key-file FILE"),
    };
    let to: alloy_primitives::Address = match sub.to.parse::<u32>() {
        Ok(j) => {
            let n = dev("--to")?;
            if j >= n || Some(j) == sub.from {
                bail!("participants are 0..{n}, and from must differ from to");
            }
            participants(n)[j as usize].account
        }
        Err(_) => sub.to.parse().with_context(|| {
            format!(
                "--to {}: neither a participant index nor an account",
                sub.to
            )
        })?,
    };
    let token = match (sub.token, &tie) {
        (Some(t), _) => t,
        (None, Some(t)) => *t
            .tokens
            .first()
            .context("the deployment on chain lists no token")?,
        (None, None) => a
            .enclave
            .token
            .parse()
            .context("the node's token address")?,
    };
    if let Some(t) = &tie {
        if !t.tokens.contains(&token) {
            bail!("token {token} is not one of the deployment's on chain");
        }
        if !t.participants.contains(&to) {
            bail!("{to} is not a participant of the deployment on chain");
        }
    }
    let ob = Obligation {
        to,
        token,
        amount: sub.amount,
    };
    let env = a.seal(&key, &ob.encode(), unix_now(), 600, rng)?;
    let answer = c.send(&env, 10)?;
    let unknown = answer.outcome_unknown();
    if args.json {
        let mut v = answer.to_json();
        if let Some(why) = unknown {
            v["outcome"] = json!("unknown");
            v["outcome_unknown"] = json!(why);
        }
        println!("{v}");
    } else {
        print_submitted(&answer);
        if matches!(answer, Submitted::Receipt(_)) {
            println!("  receipt: verified under the attested enclave key");
        }
        if let Some(dir) = &args.receipts {
            println!("  kept in: {}", dir.display());
        }
        if let Some(why) = unknown {
            println!("  OUTCOME UNKNOWN: {why}");
        }
    }
    Ok(if answer.status() == 200 {
        ExitCode::SUCCESS
    } else if unknown.is_some() {
        // Neither accepted nor rejected as far as this client can tell.
        ExitCode::from(3)
    } else {
        ExitCode::from(1)
    })
}

/// The node's chain at `url`, with the attested enclave tied to it.
fn tie_to_chain(
    a: &sealbridge_client::Attested,
    url: &str,
) -> anyhow::Result<sealbridge_client::verify::ChainTie> {
    let sb = connect_chain(a, url)?;
    Ok(
        sealbridge_client::verify::verify_enclave_on_chain(&sb, &a.description())
            .map_err(ClientError::from)?,
    )
}

fn connect_chain(
    a: &sealbridge_client::Attested,
    url: &str,
) -> anyhow::Result<sealbridge_chain::Sealbridge<sealbridge_chain::rpc::RpcChain>> {
    let shown = crate::endpoint::endpoint(url);
    let rpc = sealbridge_chain::rpc::RpcChain::connect(url).map_err(|e| {
        anyhow::anyhow!(
            "cannot reach the chain at {shown} ({e}): pass the node's chain with --chain URL (a \
             node on its embedded chain cannot be reached by clients)"
        )
    })?;
    attach_node_chain(rpc, url, &a.info, alloy_primitives::Address::ZERO)
}

/// `sealbridge client receipt --wait-final`.
fn receipt_final(
    c: &NodeClient,
    a: &sealbridge_client::Attested,
    id: &[u8; 32],
    chain: &str,
    timeout: u64,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let mut sb = connect_chain(a, chain)?;
    let tie = sealbridge_client::verify::verify_enclave_on_chain(&sb, &a.description())
        .map_err(ClientError::from)?;
    if !json {
        println!(
            "enclave {} tied to the chain (policy {}); waiting for an anchor",
            tie.address, tie.policy_hash
        );
    }
    let f = sealbridge_client::tiles::wait_final(
        c,
        &mut sb,
        id,
        std::time::Duration::from_secs(timeout),
        |_| {},
    )?;
    if json {
        println!(
            "{}",
            json!({
                "envelope_id": hex::encode(id),
                "final": true,
                "sequence": f.receipt.sequence,
                "accepted": f.receipt.status == sealbridge_seal::receipt::ReceiptStatus::Accepted,
                "checkpoint_size": f.checkpoint.size,
                "anchor_size": f.anchor_size,
                "anchor_root": hex::encode(f.anchor_root.0),
                "statement_sequence": f.statement_sequence,
            })
        );
    } else {
        println!(
            "final: log entry {} is in the checkpoint of {} entries (signed by the attested key), \
             and the chain's anchor after statement {} ({} entries) is a prefix of it",
            f.receipt.sequence, f.checkpoint.size, f.statement_sequence, f.anchor_size
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The development participants the node's setup funded (its program's `participants`).
fn participant_count(info: &Enclave) -> anyhow::Result<u32> {
    info.program
        .get("participants")
        .and_then(Value::as_u64)
        .and_then(|n| u32::try_from(n).ok())
        .context("the node's /v1/enclave names no development participants")
}

/// The node's contracts on the chain at `url`, checked against the node's `/v1/enclave`
/// answer: the same chain id, and the node's settlement contract there holding the enclave's
/// policy hash. `admin` is the deployment's sender of record (views are called from it).
pub(crate) fn attach_node_chain<C: sealbridge_chain::Chain>(
    chain: C,
    url: &str,
    info: &Value,
    admin: alloy_primitives::Address,
) -> anyhow::Result<sealbridge_chain::Sealbridge<C>> {
    let info: Enclave =
        serde_json::from_value(info.clone()).context("the node's /v1/enclave answer")?;
    let field = |what: &str, text: &str| -> anyhow::Result<alloy_primitives::Address> {
        text.parse()
            .with_context(|| format!("the node's {what} ({text:?})"))
    };
    let shown = crate::endpoint::endpoint(url);
    let chain_id = chain.chain_id()?;
    let node_chain = info.chain_id;
    if chain_id != node_chain {
        bail!(
            "the chain at {shown} has chain id {chain_id} but the node settles on chain id \
             {node_chain}: pass the node's chain with --chain URL"
        );
    }
    let settlement = field("settlement", &info.settlement)?;
    let policy_hash: alloy_primitives::B256 =
        info.policy_hash.parse().context("the node's policy_hash")?;
    let sb = sealbridge_chain::Sealbridge::attach(
        chain,
        sealbridge_chain::Deployment {
            chain_id,
            admin,
            registry: field("registry", &info.registry)?,
            settlement,
            token: field("token", &info.token)?,
        },
    );
    match sb.policy_hash() {
        Ok(h) if h == policy_hash => Ok(sb),
        _ => bail!(
            "the chain at {shown} has no settlement contract of this node at {settlement} \
             (same chain id {chain_id}, but not the node's chain?): pass it with --chain URL"
        ),
    }
}

/// Refuse a node whose settlement contract is not the pinned one (`--settlement`), before
/// anything is sealed or sent.
fn check_pin(pin: Option<alloy_primitives::Address>, info: &Value) -> anyhow::Result<()> {
    let Some(pin) = pin else { return Ok(()) };
    let named = info["settlement"].as_str().unwrap_or_default();
    match named.parse::<alloy_primitives::Address>() {
        Ok(a) if a == pin => Ok(()),
        _ => Err(
            ClientError::from(sealbridge_client::verify::VerifyError::DeploymentMismatch {
                pinned: pin.to_string(),
                named: named.to_string(),
            })
            .into(),
        ),
    }
}

/// What a reason code means, for people.
fn reason_text(reason: &str) -> &'static str {
    match reason {
        "full" => "granted in full",
        "partial" => {
            "granted in part: the rest is not covered by the escrow left after the payments \
             already accepted and the exits already granted"
        }
        "refused-insufficient" => {
            "refused: nothing is left to withdraw after the payments already accepted and the \
             exits already granted"
        }
        "refused-not-participant" => "refused: the account is not a participant",
        "refused-unknown-token" => "refused: the deployment does not settle this token",
        "refused-zero" => "refused: the amount is zero",
        _ => "(a reason this client does not know)",
    }
}

/// `sealbridge client withdraw`.
fn withdraw(
    c: &NodeClient,
    w: &WithdrawArgs,
    pin: Option<alloy_primitives::Address>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    use sealbridge_chain::rpc::RpcChain;
    if w.amount == 0 {
        bail!("--amount must be at least 1 (nothing was sent)");
    }
    let enclave = c.enclave(None).context("the node's /v1/enclave")?;
    let info = serde_json::to_value(&enclave)?;
    check_pin(pin, &info)?;
    let shown = crate::endpoint::endpoint(&w.chain);
    let mut rpc = RpcChain::connect(&w.chain).map_err(|e| {
        anyhow::anyhow!(
            "cannot reach the chain at {shown} ({e}): pass the node's chain with --chain URL (a \
             node on its embedded chain cannot be reached by clients)"
        )
    })?;
    let account = match (w.from, &w.key_file) {
        (Some(i), None) => {
            let n = participant_count(&enclave)?;
            if i >= n {
                bail!("--from: the development participants are 0..{n}, not {i}");
            }
            let account = participants(n)[i as usize].account;
            // A development chain: the account gets gas money and is unlocked (anvil).
            rpc.set_balance(
                account,
                alloy_primitives::U256::from(10u64).pow(alloy_primitives::U256::from(18u64)),
            )
            .and_then(|()| rpc.impersonate(account))
            .map_err(|e| {
                anyhow::anyhow!(
                    "--from needs a development chain that can act for the participant's \
                     account (anvil): {e}; on any other chain pass the account's --key-file"
                )
            })?;
            account
        }
        (None, Some(path)) => rpc.add_local_key(crate::common::read_key(path)?),
        _ => bail!("pass either --from INDEX or --key-file FILE"),
    };
    let mut sb = attach_node_chain(rpc, &w.chain, &info, account)?;
    let token = match w.token {
        Some(t) => t,
        None => sb.deployment.token,
    };
    let confirmations = c.node_status().map_or(1, |s| s.confirmations);
    // With more than one confirmation on a development chain that mines only on
    // transactions, mine a block a second (an error means a real chain: it mines itself).
    let mut last_mined = std::time::Instant::now();
    let mut nudge = |sb: &mut sealbridge_chain::Sealbridge<RpcChain>| {
        if confirmations > 1 && last_mined.elapsed() >= std::time::Duration::from_secs(1) {
            last_mined = std::time::Instant::now();
            let _ = sb.chain().mine();
        }
    };
    let timeout = std::time::Duration::from_secs(w.timeout);
    let (d, request_tx) = sealbridge_client::request_withdrawal(
        c, &mut sb, account, token, w.amount, timeout, &mut nudge,
    )?;
    if !json {
        println!(
            "withdrawal request {}: {} of {} granted ({}: {})",
            d.request_id,
            d.granted,
            d.requested,
            d.reason,
            reason_text(&d.reason)
        );
        if d.granted > 0 {
            println!("waiting for the statement carrying the exit to settle, then claiming");
        }
    }
    let (d, claim_tx, claimed) = sealbridge_client::claim_exit(c, &mut sb, d, timeout, &mut nudge)?;
    let wallet = sb.token_balance(token, account)?;
    if json {
        println!(
            "{}",
            serde_json::json!({
                "request_id": d.request_id,
                "account": d.account,
                "token": d.token,
                "requested": d.requested.to_string(),
                "granted": d.granted.to_string(),
                "reason": d.reason,
                "statement_sequence": d.statement_sequence,
                "settled": d.settled,
                "request_tx": request_tx,
                "claim_tx": claim_tx,
                "claimed": claimed.to_string(),
                "wallet_balance": wallet.to_string(),
            })
        );
    } else {
        match (d.statement_sequence, claim_tx) {
            (Some(seq), Some(tx)) => println!(
                "exit settled with statement {seq}; claimed {claimed} (tx {tx}); wallet balance \
                 of {} in {}: {wallet}",
                d.account, d.token
            ),
            (Some(seq), None) => println!(
                "exit settled with statement {seq}; nothing left to claim (claimed before); \
                 wallet balance: {wallet}"
            ),
            _ => println!("nothing to claim; wallet balance: {wallet}"),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Arguments of `sealbridge status`.
#[derive(Debug, Clone, clap::Args)]
pub struct StatusArgs {
    /// The node's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub node: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Run `sealbridge status`.
pub fn run_status(args: &StatusArgs) -> anyhow::Result<ExitCode> {
    reported(args.json, status(args))
}

fn status(args: &StatusArgs) -> anyhow::Result<ExitCode> {
    let s = NodeClient::new(&args.node).node_status()?;
    if args.json {
        println!("{}", serde_json::to_string(&s)?);
        return Ok(ExitCode::SUCCESS);
    }
    let Value::Object(fields) = serde_json::to_value(&s)? else {
        bail!("the node's status is not an object");
    };
    for (k, v) in &fields {
        // An empty error or alarm is not worth a line.
        let quiet = ["relayer_error", "deep_reorg", "deposit_scan_error"].contains(&k.as_str());
        if v.is_null() && quiet {
            continue;
        }
        match v {
            Value::String(text) => println!("{k:>23}: {text}"),
            other => println!("{k:>23}: {other}"),
        }
    }
    Ok(ExitCode::SUCCESS)
}

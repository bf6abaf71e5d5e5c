//! `sealbridge demo`: the whole system once, in one process.
//!
//! Boots the simulated enclave, deploys the real contract bytecode on the embedded EVM, registers
//! the enclave through 2-of-3 verifiers, funds participants' escrow with a test ERC-20, has them
//! submit sealed obligations plus deliberately bad envelopes and request withdrawals, settles
//! every batch with its exits, has the participants claim their exits, and checks the chain
//! against the clients' own plaintext and their wallets — and that the escape hatch was never
//! needed. Deployment, registration and the host's event forwarding are
//! `sealbridge-sandbox`'s, shared with `sealbridge sandbox`.

mod anonymity;
mod bad;
pub(crate) mod client;
mod exits;
mod export;
mod host_log;
mod report;
mod submit;

use std::{collections::BTreeMap, path::PathBuf, process::ExitCode, time::Instant};

use alloy_primitives::{Address, Bytes, I256, U256};
use anyhow::{Context, bail, ensure};
use k256::ecdsa::SigningKey;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use sealbridge_attest::{Evidence, report_data};
use sealbridge_audit::{AuditInput, Contracts, PublishedReceipt, TimedChain};
use sealbridge_chain::{
    Chain, EmbeddedChain, Sealbridge, SettleOutcome, contracts::DEFAULT_EXIT_DELAY,
    eip712::sign_attestation_sorted, embedded::key_address,
};
use sealbridge_enclave::{
    Enclave, EnclavePolicy, SignedStatement,
    boundary::{Description, Request, Response},
};
use sealbridge_programs::netting::{Netting, NettingConfig};
use sealbridge_proto::Suite;
use sealbridge_sandbox::{
    TokenKind,
    deploy::{boot_enclave, deploy, deploy_params, deploy_token},
    host::{self, ExitDecision, forward_events},
    registration::register_enclave,
};

use self::{
    bad::BadKind,
    client::Participant,
    exits::HatchReport,
    host_log::HostLog,
    report::{DemoReport, GasLine, Reporter},
    submit::Run,
};

/// Arguments of `sealbridge demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Number of participants.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(2..=1000))]
    pub participants: u32,
    /// Number of sealed obligations the participants submit.
    #[arg(long, default_value_t = 200)]
    pub obligations: u32,
    /// Number of deliberately bad envelopes mixed in.
    #[arg(long, default_value_t = 10)]
    pub bad: u32,
    /// Number of withdrawal requests participants make during the run (each up to a quarter of
    /// a deposit; granted exits settle with the next statement and are claimed at the end); at
    /// most twice --participants.
    #[arg(long, default_value_t = 3)]
    pub exits: u32,
    /// Accepted inputs per batch.
    #[arg(long, default_value_t = sealbridge_enclave::policy::DEV_BATCH_SIZE, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub batch_size: u32,
    /// Seed of the clients' randomness (participants, obligations); the enclave uses OS randomness.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Write statements.jsonl, receipts.jsonl, enclave.json, the log (log/, checkpoint) and what
    /// `sealbridge audit --dir` reads (chain.json, evidence/, appraisal-policies.json) here.
    #[arg(long)]
    pub export: Option<PathBuf>,
    /// Print one JSON object instead of human output.
    #[arg(long)]
    pub json: bool,
    /// The suite participants seal with (`xwing`, `x25519-aes128gcm`, `x25519-chacha20`, or a
    /// registered suite name such as `xwing-aes256gcm`); default: the policy's preferred suite,
    /// as the enclave announces it.
    #[arg(long, value_parser = parse_suite)]
    pub suite: Option<Suite>,
    /// Skip showing a lone input that waits for the anonymity set and is flushed after the
    /// policy's 2 s (`sealbridge bench` measures gas of full batches only).
    #[arg(long)]
    pub no_lone_input: bool,
}

/// `--suite`: a short name or a registered suite name.
pub fn parse_suite(s: &str) -> Result<Suite, String> {
    match s {
        "xwing" | "x-wing" => Ok(Suite::XWingAes256Gcm),
        "x25519" | "x25519-aes128gcm" => Ok(Suite::X25519Sha256Aes128Gcm),
        "x25519-chacha20" | "chacha20" => Ok(Suite::X25519Sha256ChaCha20Poly1305),
        other => Suite::ALL
            .into_iter()
            .find(|x| x.as_str() == other)
            .ok_or_else(|| {
                format!(
                    "unknown suite {other:?}: xwing, x25519-aes128gcm, x25519-chacha20 or one of {}",
                    Suite::ALL.map(Suite::as_str).join(", ")
                )
            }),
    }
}

/// The embedded chain, remembering block timestamps for the auditor.
type DemoChain = TimedChain<EmbeddedChain>;

const DEPOSIT: u128 = 1_000_000;
const MAX_AMOUNT: u128 = 5_000;

/// What the participants do in one slot of the run.
#[derive(Debug, Clone, Copy)]
enum Slot {
    /// A good obligation.
    Pay,
    /// A deliberately bad envelope.
    Bad(BadKind),
    /// A withdrawal request on chain.
    Exit,
}

/// The deployment, the enclave and the host's copy of its log, registered and funded.
struct Setup {
    sb: Sealbridge<DemoChain>,
    enclave: Enclave<Netting>,
    /// The enclave's policy (the demo also shows it with the production anonymity set).
    policy: EnclavePolicy,
    description: Description,
    participants: Vec<Participant>,
    token: Address,
    admin: Address,
    evidence: Evidence,
    host_log: HostLog,
    /// The next block whose events the host forwards.
    cursor: u64,
}

/// Run the demo; exit 0 when every check passed, 1 otherwise.
pub fn run(args: &DemoArgs) -> anyhow::Result<ExitCode> {
    check_args(args)?;
    let started = Instant::now();
    let out = Reporter::new(!args.json);
    let mut rng = ChaCha20Rng::seed_from_u64(args.seed);
    let mut d = setup(args, &out, &mut rng)?;
    let mut run = submit::run_schedule(args, &mut d, &out, &mut rng)?;
    let closed = close_and_claim(&mut d, &mut run, &out)?;
    let checks = check_chain(&d, &run)?;
    let audit = audit_public_data(&d, &run, &out)?;
    if let Some(dir) = &args.export {
        export_all(dir, &d, &run, &audit, &closed.checkpoint_note, &out)?;
    }
    let report = report(args, &d, run, closed, checks, &audit.report, started);
    let ok = report.ok();
    out.finish(&report)?;
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Each request asks for up to a quarter of a deposit; more than two per participant would
/// drain escrow the demo's obligations were sized against, and good envelopes would be refused.
fn check_args(args: &DemoArgs) -> anyhow::Result<()> {
    ensure!(
        u64::from(args.exits) <= 2 * u64::from(args.participants),
        "--exits {} is more than twice --participants {}: the demo's obligations would no longer \
         be covered",
        args.exits,
        args.participants
    );
    Ok(())
}

/// What closing the run produced.
struct Closed {
    /// The log's checkpoint, signed note.
    checkpoint_note: String,
    /// A relayer re-submitting the last statement was told it had settled.
    resubmitted_already_settled: bool,
}

/// Close the last batch, settle it, have the participants claim their exits, checkpoint the
/// log, and re-submit the last statement as a relayer retrying after a crash would.
fn close_and_claim(d: &mut Setup, run: &mut Run, out: &Reporter) -> anyhow::Result<Closed> {
    let now = d.sb.chain().block_timestamp()?;
    if let Response::Batch(Some(batch)) = d.enclave.handle(Request::CutBatch { now }) {
        settle(&mut d.sb, d.admin, &batch, &mut run.settle_gas)?;
        run.statements.push(*batch);
    }
    out.step(&format!("settled {} batches", run.statements.len()));
    exits::claim_all(&mut d.sb, d.token, &run.decisions, &mut run.exits)?;
    out.step(&format!(
        "{} participants claimed their granted exits ({} in all) into their wallets",
        run.exits.claimants, run.exits.amount_claimed
    ));
    let (checkpoint_note, checkpoint) = d
        .host_log
        .checkpoint(&mut d.enclave, &d.description.key_bundle.ed25519)?;
    out.step(&format!(
        "log: {} entries in C2SP tiles, checkpoint signed by the enclave verifies",
        checkpoint.size
    ));
    // A relayer retrying after a crash re-submits: the contract must recognise it.
    let mut resubmitted_already_settled = false;
    if let Some(last) = run.statements.last() {
        let outcome = host::relay(&mut d.sb, d.admin, last)?;
        resubmitted_already_settled = matches!(outcome, SettleOutcome::AlreadySettled(_));
    }
    Ok(Closed {
        checkpoint_note,
        resubmitted_already_settled,
    })
}

/// What the chain holds, read back.
struct ChainChecks {
    /// Escrow balances that differ from the clients' own plaintext.
    mismatches: Vec<String>,
    hatch: HatchReport,
    chain_state_root: alloy_primitives::B256,
    chain_sequence: u64,
    inputs_settled: u64,
}

/// Checks from the clients' plaintext, outside the enclave: every participant's escrow is its
/// deposit plus its net position.
fn check_chain(d: &Setup, run: &Run) -> anyhow::Result<ChainChecks> {
    let mut mismatches = Vec::new();
    for p in &d.participants {
        let want = I256::try_from(DEPOSIT)?
            .checked_add(run.expected.net(p.account, d.token))
            .filter(|v| !v.is_negative())
            .map(I256::into_raw)
            .context("expected balance out of range")?;
        let got = d.sb.escrow_balance(p.account, d.token)?;
        if want != got {
            mismatches.push(format!("{}: chain {got}, expected {want}", p.account));
        }
    }
    Ok(ChainChecks {
        mismatches,
        hatch: HatchReport::read(&d.sb)?,
        chain_state_root: d.sb.state_root()?,
        chain_sequence: d.sb.last_sequence()?,
        inputs_settled: run
            .statements
            .iter()
            .map(|s| u64::from(s.statement.inputCount))
            .sum(),
    })
}

/// The auditor's verdict and what it read.
struct Audited {
    report: sealbridge_audit::Report,
    contracts: Contracts,
    attestations: sealbridge_audit::Attestations,
}

/// The auditor, from public data only: chain events, log tiles, evidence, appraisal policy.
fn audit_public_data(d: &Setup, run: &Run, out: &Reporter) -> anyhow::Result<Audited> {
    out.step("auditing from public data: chain events, log tiles, evidence, appraisal policy");
    let dep = d.sb.deployment;
    let contracts = Contracts {
        chain_id: dep.chain_id,
        registry: dep.registry,
        settlement: dep.settlement,
    };
    let attestations = export::attestations(&d.evidence)?;
    let published: Vec<PublishedReceipt> = run
        .receipts
        .iter()
        .filter(|r| r.logged)
        .map(|r| PublishedReceipt {
            sequence: r.sequence,
            receipt: r.receipt.clone(),
        })
        .collect();
    let report = sealbridge_audit::audit(&AuditInput {
        chain: d.sb.chain(),
        contracts,
        log_dir: d.host_log.dir(),
        attestations: &attestations,
        published_receipts: Some(&published),
        witnesses: None,
    })
    .context("auditing")?;
    Ok(Audited {
        report,
        contracts,
        attestations,
    })
}

/// `--export DIR`: what `sealbridge audit --dir` reads, and the run's statements and receipts.
fn export_all(
    dir: &std::path::Path,
    d: &Setup,
    run: &Run,
    audit: &Audited,
    checkpoint_note: &str,
    out: &Reporter,
) -> anyhow::Result<()> {
    let dep = d.sb.deployment;
    export::write_audit_data(dir, d.sb.chain(), audit.contracts, &audit.attestations)?;
    export::write(
        dir,
        &d.description,
        &run.statements,
        &run.receipts,
        dep.chain_id,
        dep.settlement,
    )?;
    std::fs::write(dir.join("checkpoint"), checkpoint_note)?;
    out.step(&format!(
        "exported statements, receipts, enclave keys, log tiles ({}), checkpoint, chain.json, evidence and appraisal policy to {}",
        d.host_log.dir().display(),
        dir.display()
    ));
    Ok(())
}

/// The report of the whole run.
fn report(
    args: &DemoArgs,
    d: &Setup,
    run: Run,
    closed: Closed,
    checks: ChainChecks,
    audit: &sealbridge_audit::Report,
    started: Instant,
) -> DemoReport {
    let gas = gas_lines(&d.sb, &run.settle_gas, checks.inputs_settled);
    DemoReport {
        accepted: run.tally.accepted,
        rejected: run.tally.rejected,
        bad_rejected_as_expected: run.tally.misclassified.is_empty(),
        misclassified: run.tally.misclassified,
        batches_settled: run.statements.len() as u64,
        inputs_settled: checks.inputs_settled,
        enclave_state_root: d.enclave.last_state_root(),
        chain_state_root: checks.chain_state_root,
        enclave_sequence: d.enclave.last_sequence(),
        chain_sequence: checks.chain_sequence,
        net_positions_match: checks.mismatches.is_empty(),
        mismatches: checks.mismatches,
        resubmitted_already_settled: closed.resubmitted_already_settled,
        exits: run.exits,
        hatch: checks.hatch,
        participants: args.participants,
        suite: args
            .suite
            .or_else(|| {
                sealbridge_sandbox::client::Addressing::from_description(&d.description)
                    .ok()
                    .map(|a| a.suite)
            })
            .unwrap_or_default(),
        batch_size: args.batch_size,
        enclave_address: d.description.key_bundle.address,
        settlement_address: d.sb.deployment.settlement,
        gas,
        audit_ok: audit.ok,
        audit_failed: audit.failed().iter().map(|s| s.to_string()).collect(),
        audit_checks: audit.checks.len() as u64,
        elapsed_ms: started.elapsed().as_millis() as u64,
        anonymity: run.anonymity,
    }
}

/// Good obligations in order, bad envelopes at random places after the first good one (so a
/// replay has something to replay), withdrawal requests spread evenly over the run.
fn schedule(args: &DemoArgs, rng: &mut ChaCha20Rng) -> Vec<Slot> {
    let mut schedule: Vec<Slot> = (0..args.obligations).map(|_| Slot::Pay).collect();
    for i in 0..args.bad {
        let kind = BadKind::ALL[i as usize % BadKind::ALL.len()];
        let pos = rng.gen_range(1..=schedule.len().max(1));
        schedule.insert(pos.min(schedule.len()), Slot::Bad(kind));
    }
    let n = schedule.len() as u64;
    for i in 0..u64::from(args.exits) {
        // The (i+1)-th of `exits + 1` equal parts of the run (the last one never at the end).
        let pos = (n * (i + 1) / (u64::from(args.exits) + 1)) as usize + i as usize;
        schedule.insert(pos.min(schedule.len()), Slot::Exit);
    }
    schedule
}

/// Deploy, boot the enclave, register it through 2 of 3 verifiers, fund every participant and
/// forward the deposits.
fn setup(args: &DemoArgs, out: &Reporter, rng: &mut ChaCha20Rng) -> anyhow::Result<Setup> {
    out.step("deploying TestToken, EnclaveRegistry and Settlement on the embedded EVM");
    let mut chain = TimedChain::new(EmbeddedChain::new())?;
    let admin = chain.dev_address(0);
    let token = deploy_token(&mut chain, admin, TokenKind::Test)?;
    let participants: Vec<Participant> = (0..args.participants)
        .map(|_| Participant::generate(&mut *rng))
        .collect();
    // The development anonymity set (2 inputs from 2 senders, flushed after 2 s).
    let policy = EnclavePolicy::new(
        NettingConfig {
            participants: participants.iter().map(Participant::netting).collect(),
            tokens: vec![token],
        },
        args.batch_size,
    )
    .with_dev_anonymity_set();
    let verifiers: Vec<SigningKey> = (0..3).map(|_| SigningKey::random(&mut *rng)).collect();
    let now = chain.block_timestamp()?;
    // The simulated TEE is refused on chain unless the deployment opts in, as here.
    let params = deploy_params(
        &policy,
        admin,
        Address::ZERO,
        &verifiers.iter().map(key_address).collect::<Vec<_>>(),
        now,
        DEFAULT_EXIT_DELAY,
    );
    let mut sb = deploy(chain, &params, admin).context("deploying contracts")?;

    out.step("booting the simulated enclave (INSECURE: development only)");
    let (mut enclave, description) =
        boot_enclave(&sb, policy.clone(), Box::new(rand_core::OsRng), now)
            .context("booting the enclave")?;
    let mut host_log = HostLog::open(args.export.as_deref())?;
    host_log.sync(&mut enclave)?;

    out.step("registering the enclave: evidence → 2-of-3 verifiers → EnclaveRegistry");
    let evidence = register(&mut sb, &mut enclave, &description, admin, &verifiers)?;

    out.step(&format!(
        "funding {} participants' escrow",
        participants.len()
    ));
    let first = sb.chain().block_number()? + 1;
    for p in &participants {
        sb.chain_mut()
            .set_balance(p.account, U256::from(10u64).pow(U256::from(18u64)));
        sb.chain_mut().impersonate(p.account);
        sb.mint(admin, p.account, U256::from(DEPOSIT))?;
        sb.deposit(p.account, token, U256::from(DEPOSIT))?;
    }
    // The host relays the Deposited events it reads from the chain to the enclave.
    let head = sb.chain().block_number()?;
    forward_events(&sb, &mut enclave, first, head)?;
    Ok(Setup {
        sb,
        enclave,
        policy,
        description,
        participants,
        token,
        admin,
        evidence,
        host_log,
        cursor: head + 1,
    })
}

/// `account` requests a withdrawal on chain and the host forwards it: the enclave's decision,
/// and any statement it closed first to make room.
fn request_exit(
    d: &mut Setup,
    account: Address,
    amount: u128,
) -> anyhow::Result<(ExitDecision, Vec<SignedStatement>)> {
    let (id, _) =
        d.sb.request_withdrawal(account, d.token, U256::from(amount))?;
    let head = d.sb.chain().block_number()?;
    let forwarded = forward_events(&d.sb, &mut d.enclave, d.cursor, head)?;
    d.cursor = head + 1;
    d.host_log.sync(&mut d.enclave)?;
    let decided = forwarded
        .decisions
        .into_iter()
        .find(|x| x.request_id == id)
        .with_context(|| format!("the enclave decided nothing on request {id}"))?;
    Ok((decided, forwarded.statements))
}

#[derive(Debug, Default)]
struct Tally {
    accepted: u64,
    rejected: BTreeMap<String, u64>,
    misclassified: Vec<String>,
}

#[derive(Debug, Default)]
struct SettleGas {
    total: u64,
    batches: u64,
}

/// The relayer step: submit one statement, in order.
fn settle(
    sb: &mut Sealbridge<DemoChain>,
    from: Address,
    batch: &SignedStatement,
    gas: &mut SettleGas,
) -> anyhow::Result<()> {
    let outcome = host::relay(sb, from, batch)
        .with_context(|| format!("settling statement {}", batch.statement.sequence))?;
    match outcome {
        SettleOutcome::Applied(r) => {
            gas.total += r.gas_used;
            gas.batches += 1;
            Ok(())
        }
        SettleOutcome::AlreadySettled(_) => {
            bail!("statement {} was already settled", batch.statement.sequence)
        }
    }
}

/// Evidence bound to a fresh block hash, appraised by three verifiers; two sign (k = 2). The
/// result is logged by the enclave before `register` is sent.
fn register(
    sb: &mut Sealbridge<DemoChain>,
    enclave: &mut Enclave<Netting>,
    description: &Description,
    admin: Address,
    verifiers: &[SigningKey],
) -> anyhow::Result<Evidence> {
    // Each verifier appraises independently with the verifier library (verify, policy, binding
    // of keys to the challenge, EIP-712 signature); two of the three reach the registry (k = 2).
    let signers = &verifiers[..2];
    let r = register_enclave(sb, enclave, description, admin, signers)?;
    let claims =
        sealbridge_attest::verify_claims(&r.evidence, &Default::default(), r.result.issuedAt)?;
    ensure!(
        claims.report_data
            == report_data(
                &description.key_bundle.to_bytes(),
                r.result.challenge.as_slice()
            ),
        "evidence does not bind the enclave's keys to the challenge"
    );
    // Differential check: the verifier library signs exactly as the chain crate does.
    let keys: Vec<&SigningKey> = signers.iter().collect();
    let chain_result: sealbridge_chain::AttestationResult = (&r.result).into();
    let sigs: Vec<Bytes> = r.signatures.iter().cloned().map(Bytes::from).collect();
    ensure!(
        sigs == sign_attestation_sorted(
            &keys,
            &chain_result,
            sb.deployment.chain_id,
            sb.deployment.registry,
        ),
        "verifier signatures differ from the chain crate's"
    );
    Ok(r.evidence)
}

fn gas_lines(
    sb: &Sealbridge<DemoChain>,
    settle: &SettleGas,
    inputs_settled: u64,
) -> BTreeMap<String, GasLine> {
    let mut lines: BTreeMap<String, GasLine> = sb
        .gas()
        .summary()
        .into_iter()
        .map(|(kind, s)| {
            (
                kind,
                GasLine {
                    calls: s.count,
                    total: s.total,
                    per_call: s.mean(),
                    per_input: None,
                },
            )
        })
        .collect();
    if let Some(line) = lines.remove("settle") {
        // Applied settlements carry the per-batch and per-input figures; the deliberate
        // re-submission of an already settled statement is reported on its own line.
        lines.insert(
            "settle".to_string(),
            GasLine {
                calls: settle.batches,
                total: settle.total,
                per_call: settle.total.checked_div(settle.batches).unwrap_or(0),
                per_input: (inputs_settled > 0).then(|| settle.total / inputs_settled),
            },
        );
        let calls = line.calls.saturating_sub(settle.batches);
        if calls > 0 {
            let total = line.total.saturating_sub(settle.total);
            lines.insert(
                "settle:already-settled".to_string(),
                GasLine {
                    calls,
                    total,
                    per_call: total / calls,
                    per_input: None,
                },
            );
        }
    }
    lines
}

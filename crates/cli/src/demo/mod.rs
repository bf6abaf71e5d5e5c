//! `sealbridge demo`: the whole system once, in one process.
//!
//! Boots the simulated enclave, deploys the real contract bytecode on the embedded EVM, registers
//! the enclave through 2-of-3 verifiers, funds participants' escrow with a test ERC-20, has them
//! submit sealed obligations plus deliberately bad envelopes, settles every batch, and checks the
//! chain against the clients' own plaintext.

mod bad;
pub(crate) mod client;
mod export;
mod host_log;
mod report;

use std::{collections::BTreeMap, path::PathBuf, process::ExitCode, time::Instant};

use alloy_primitives::{Address, B256, Bytes, I256, U256};
use alloy_sol_types::{SolEvent, SolValue};
use anyhow::{Context, bail, ensure};
use rand::{Rng, SeedableRng, seq::SliceRandom};
use rand_chacha::ChaCha20Rng;
use sealbridge_attest::{Evidence, Policy as AppraisalPolicy, report_data};
use sealbridge_audit::{AuditInput, Contracts, PublishedReceipt, TimedChain};
use sealbridge_chain::{
    Chain, EmbeddedChain, Sealbridge, SettleOutcome, bindings::Settlement,
    eip712::sign_attestation_sorted, embedded::key_address, proto_compat::effects_from_proto,
};
use sealbridge_enclave::{
    Enclave, EnclavePolicy, SettlementTarget, SignedStatement,
    boundary::{ChainEvent, Request, Response, SubmitOutcome},
};
use sealbridge_programs::netting::{Netting, NettingConfig, Obligation};
use sealbridge_proto::eip712::AttestationResult;

use self::{
    bad::BadKind,
    client::{Addressing, ExpectedNets, Participant, seal_obligation},
    host_log::HostLog,
    report::{DemoReport, GasLine, Reporter},
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
    /// Accepted inputs per batch.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=100_000))]
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
}

/// The embedded chain, remembering block timestamps for the auditor.
type DemoChain = TimedChain<EmbeddedChain>;

const DEPOSIT: u128 = 1_000_000;
const MAX_AMOUNT: u128 = 5_000;

/// Run the demo; exit 0 when every check passed, 1 otherwise.
pub fn run(args: &DemoArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let out = Reporter::new(!args.json);
    let mut rng = ChaCha20Rng::seed_from_u64(args.seed);

    // ---- chain and contracts -------------------------------------------------------------
    out.step("deploying EnclaveRegistry, Settlement and TestToken on the embedded EVM");
    let chain = TimedChain::new(EmbeddedChain::new())?;
    let admin = chain.dev_address(0);
    let mut sb = Sealbridge::deploy(chain, admin, B256::ZERO).context("deploying contracts")?;
    let d = sb.deployment;
    let token = d.token;

    // ---- participants and the enclave ----------------------------------------------------
    let participants: Vec<Participant> = (0..args.participants)
        .map(|_| Participant::generate(&mut rng))
        .collect();
    let policy = EnclavePolicy::new(
        NettingConfig {
            participants: participants.iter().map(Participant::netting).collect(),
            tokens: vec![token],
        },
        args.batch_size,
    );
    let now = sb.chain().block_timestamp()?;
    out.step("booting the simulated enclave (INSECURE: development only)");
    let mut enclave = Enclave::boot(
        policy.clone(),
        Netting::new(&policy.netting),
        SettlementTarget {
            chain_id: d.chain_id,
            settlement: d.settlement,
        },
        Box::new(rand_core::OsRng),
        now,
    )
    .context("booting the enclave")?;
    let mut host_log = HostLog::open(args.export.as_deref())?;
    host_log.sync(&mut enclave)?;
    let description = match enclave.handle(Request::Describe) {
        Response::Description(d) => *d,
        other => bail!("unexpected enclave response {other:?}"),
    };
    // Governance adopts the enclave policy on chain.
    sb.set_policy_hash(admin, description.policy_hash)?;

    // ---- attestation and threshold registration -------------------------------------------
    out.step("registering the enclave: evidence → 2-of-3 verifiers → EnclaveRegistry");
    let evidence = register(&mut sb, &mut enclave, &description, admin, &mut rng)?;

    // ---- escrow deposits -----------------------------------------------------------------
    out.step(&format!(
        "funding {} participants' escrow",
        participants.len()
    ));
    let deposit_block = sb.chain().block_number()? + 1;
    for p in &participants {
        sb.chain_mut()
            .set_balance(p.account, U256::from(10u64).pow(U256::from(18u64)));
        sb.chain_mut().impersonate(p.account);
        sb.mint(admin, p.account, U256::from(DEPOSIT))?;
        sb.deposit(p.account, token, U256::from(DEPOSIT))?;
    }
    // The host relays the Deposited events it reads from the chain to the enclave.
    let head = sb.chain().block_number()?;
    for ev in deposited_events(&sb, deposit_block, head)? {
        let amount = u128::try_from(ev.amount).context("deposit amount")?;
        expect_ack(enclave.handle(Request::Chain(ChainEvent::Deposit {
            account: ev.account,
            token: ev.token,
            amount,
        })))?;
    }

    // ---- clients submit -------------------------------------------------------------------
    let addressing = Addressing::from_description(&description)?;
    let mut schedule: Vec<Option<BadKind>> = (0..args.obligations).map(|_| None).collect();
    for i in 0..args.bad {
        let kind = BadKind::ALL[i as usize % BadKind::ALL.len()];
        // Bad envelopes go after the first good one so a replay has something to replay.
        let pos = rng.gen_range(1..=schedule.len().max(1));
        schedule.insert(pos.min(schedule.len()), Some(kind));
    }
    out.step(&format!(
        "submitting {} sealed obligations and {} bad envelopes",
        args.obligations, args.bad
    ));

    let mut expected = ExpectedNets::default();
    let mut tally = Tally::default();
    let mut first_accepted: Option<Vec<u8>> = None;
    let mut statements: Vec<SignedStatement> = Vec::new();
    let mut receipts: Vec<SubmitOutcome> = Vec::new();
    let mut settle_gas = SettleGas::default();
    let progress = out.progress(schedule.len() as u64, "envelopes");

    for slot in schedule {
        let now = sb.chain().block_timestamp()?;
        let from = participants.choose(&mut rng).context("no participants")?;
        let to = loop {
            let p = participants.choose(&mut rng).context("no participants")?;
            if p.account != from.account {
                break p;
            }
        };
        let ob = Obligation {
            to: to.account,
            token,
            amount: rng.gen_range(1..=MAX_AMOUNT),
        };
        let envelope = match slot {
            None => {
                let header = addressing.header(&mut rng, now + 600);
                seal_obligation(&addressing, &header, &from.key, &ob, &mut rng)?
            }
            Some(BadKind::Replayed) if first_accepted.is_none() => continue,
            Some(kind) => bad::make(
                kind,
                &addressing,
                &from.key,
                &ob,
                first_accepted.as_deref().unwrap_or_default(),
                now,
                &mut rng,
            )?,
        };
        let outcome = match enclave.handle(Request::Submit {
            envelope: envelope.clone(),
            now,
        }) {
            Response::Submitted(o) => *o,
            other => bail!("unexpected enclave response {other:?}"),
        };
        match (slot, outcome.rejected) {
            (None, None) => {
                tally.accepted += 1;
                expected.record(from.account, &ob);
                first_accepted.get_or_insert(envelope);
            }
            (None, Some(reason)) => bail!("a good envelope was rejected: {}", reason.as_str()),
            (Some(kind), Some(reason)) => {
                *tally
                    .rejected
                    .entry(reason.as_str().to_string())
                    .or_default() += 1;
                if reason != kind.expected() {
                    tally.misclassified.push(format!(
                        "{kind:?} rejected as {} (expected {})",
                        reason.as_str(),
                        kind.expected().as_str()
                    ));
                }
            }
            (Some(kind), None) => bail!("a bad envelope ({kind:?}) was accepted"),
        }
        if let Some(batch) = outcome.batch.clone() {
            host_log.sync(&mut enclave)?;
            settle(&mut sb, admin, &batch, &mut settle_gas)?;
            statements.push(batch);
        }
        receipts.push(outcome);
        progress.inc();
    }
    progress.finish();

    // ---- close the last batch ---------------------------------------------------------------
    let now = sb.chain().block_timestamp()?;
    if let Response::Batch(Some(batch)) = enclave.handle(Request::CutBatch { now }) {
        settle(&mut sb, admin, &batch, &mut settle_gas)?;
        statements.push(*batch);
    }
    out.step(&format!("settled {} batches", statements.len()));
    let (checkpoint_note, checkpoint) =
        host_log.checkpoint(&mut enclave, &description.key_bundle.ed25519)?;
    out.step(&format!(
        "log: {} entries in C2SP tiles, checkpoint signed by the enclave verifies",
        checkpoint.size
    ));

    // A relayer retrying after a crash re-submits: the contract must recognise it.
    let mut resubmitted_already_settled = false;
    if let Some(last) = statements.last() {
        let outcome = sb.settle(
            admin,
            &(&last.statement).into(),
            &effects_from_proto(&last.effects),
            Bytes::from(last.signature.clone()),
        )?;
        resubmitted_already_settled = matches!(outcome, SettleOutcome::AlreadySettled(_));
    }

    // ---- checks, from the clients' plaintext, outside the enclave ---------------------------
    let mut mismatches = Vec::new();
    for p in &participants {
        let want = I256::try_from(DEPOSIT)?
            .checked_add(expected.net(p.account, token))
            .filter(|v| !v.is_negative())
            .map(I256::into_raw)
            .context("expected balance out of range")?;
        let got = sb.escrow_balance(p.account, token)?;
        if want != got {
            mismatches.push(format!("{}: chain {got}, expected {want}", p.account));
        }
    }
    let chain_state_root = sb.state_root()?;
    let chain_sequence = sb.last_sequence()?;
    let inputs_settled: u64 = statements
        .iter()
        .map(|s| u64::from(s.statement.inputCount))
        .sum();

    // ---- the auditor, from public data only ---------------------------------------------------
    out.step("auditing from public data: chain events, log tiles, evidence, appraisal policy");
    let contracts = Contracts {
        chain_id: d.chain_id,
        registry: d.registry,
        settlement: d.settlement,
    };
    let attestations = export::attestations(&evidence)?;
    let published: Vec<PublishedReceipt> = receipts
        .iter()
        .map(|r| PublishedReceipt {
            sequence: r.sequence,
            receipt: r.receipt.clone(),
        })
        .collect();
    let audit = sealbridge_audit::audit(&AuditInput {
        chain: sb.chain(),
        contracts,
        log_dir: host_log.dir(),
        attestations: &attestations,
        published_receipts: Some(&published),
    })
    .context("auditing")?;

    if let Some(dir) = &args.export {
        export::write_audit_data(dir, sb.chain(), contracts, &attestations)?;
        export::write(
            dir,
            &description,
            &statements,
            &receipts,
            d.chain_id,
            d.settlement,
        )?;
        std::fs::write(dir.join("checkpoint"), &checkpoint_note)?;
        out.step(&format!(
            "exported statements, receipts, enclave keys, log tiles ({}), checkpoint, chain.json, evidence and appraisal policy to {}",
            host_log.dir().display(),
            dir.display()
        ));
    }

    let gas = gas_lines(&sb, &settle_gas, inputs_settled);
    let report = DemoReport {
        accepted: tally.accepted,
        rejected: tally.rejected,
        bad_rejected_as_expected: tally.misclassified.is_empty(),
        misclassified: tally.misclassified,
        batches_settled: statements.len() as u64,
        inputs_settled,
        enclave_state_root: enclave.last_state_root(),
        chain_state_root,
        enclave_sequence: enclave.last_sequence(),
        chain_sequence,
        net_positions_match: mismatches.is_empty(),
        mismatches,
        resubmitted_already_settled,
        participants: args.participants,
        batch_size: args.batch_size,
        enclave_address: description.key_bundle.address,
        settlement_address: d.settlement,
        gas,
        audit_ok: audit.ok,
        audit_failed: audit.failed().iter().map(|s| s.to_string()).collect(),
        audit_checks: audit.checks.len() as u64,
        elapsed_ms: started.elapsed().as_millis() as u64,
    };
    let ok = report.ok();
    out.finish(&report)?;
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
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

fn expect_ack(r: Response) -> anyhow::Result<()> {
    match r {
        Response::Ack => Ok(()),
        other => bail!("unexpected enclave response {other:?}"),
    }
}

/// The relayer step: submit one statement, in order.
fn settle(
    sb: &mut Sealbridge<DemoChain>,
    from: Address,
    batch: &SignedStatement,
    gas: &mut SettleGas,
) -> anyhow::Result<()> {
    let outcome = sb
        .settle(
            from,
            &(&batch.statement).into(),
            &effects_from_proto(&batch.effects),
            Bytes::from(batch.signature.clone()),
        )
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

/// Evidence bound to a fresh block hash, appraised by three verifiers; two sign (k = 2).
fn register(
    sb: &mut Sealbridge<DemoChain>,
    enclave: &mut Enclave<Netting>,
    description: &sealbridge_enclave::boundary::Description,
    admin: Address,
    rng: &mut ChaCha20Rng,
) -> anyhow::Result<Evidence> {
    let verifiers: Vec<k256::ecdsa::SigningKey> = (0..3)
        .map(|_| k256::ecdsa::SigningKey::random(&mut *rng))
        .collect();
    for v in &verifiers {
        sb.add_verifier(admin, key_address(v))?;
    }
    sb.set_threshold(admin, 2)?;
    // The simulated TEE is refused on chain unless governance opts in, as here.
    sb.allow_simulated(admin, true)?;
    let now = sb.chain().block_timestamp()?;
    sb.allow_measurement(admin, description.measurement, now, now + 365 * 86_400)?;

    let challenge_block = sb.chain().block_number()?;
    let challenge = sb
        .chain()
        .block_hash(challenge_block)?
        .context("no hash for the latest block")?;
    let evidence = match enclave.handle(Request::Evidence {
        challenge: challenge.to_vec(),
        now,
    }) {
        Response::Evidence { evidence, .. } => evidence,
        other => bail!("unexpected enclave response {other:?}"),
    };
    let evidence = Evidence::Simulated(evidence);
    let bundle = description.key_bundle;
    let binding = sealbridge_attest::verifier::KeyBinding {
        key_bundle: bundle.to_bytes(),
        key_bundle_hash: bundle.hash(),
        enclave: bundle.address,
        ed25519_key: B256::from(bundle.ed25519),
    };
    let challenge = sealbridge_attest::verifier::Challenge {
        block: challenge_block,
        hash: challenge,
    };
    // Each verifier appraises independently with the verifier library (verify, policy, binding
    // of keys to the challenge, EIP-712 signature); two of the three reach the registry (k = 2).
    let mut signed = Vec::new();
    for key in verifiers.iter().take(2) {
        let role = sealbridge_attest::verifier::VerifierRole::new(
            key.clone(),
            AppraisalPolicy::insecure_dev(),
        );
        signed.push(
            role.attest(
                &evidence,
                &sealbridge_attest::Collateral::None,
                &binding,
                challenge,
                now,
                sb.deployment.chain_id,
                sb.deployment.registry,
            )
            .context("appraising the enclave's evidence")?,
        );
    }
    let (result, sigs): (AttestationResult, Vec<Vec<u8>>) =
        sealbridge_attest::verifier::collect(&signed)?;
    let claims = sealbridge_attest::verify_claims(&evidence, &Default::default(), now)?;
    ensure!(
        claims.report_data == report_data(&bundle.to_bytes(), challenge.hash.as_slice()),
        "evidence does not bind the enclave's keys to the challenge"
    );
    let chain_result: sealbridge_chain::AttestationResult = (&result).into();
    let signers: Vec<&k256::ecdsa::SigningKey> = verifiers.iter().take(2).collect();
    let sigs: Vec<Bytes> = sigs.into_iter().map(Bytes::from).collect();
    // Differential check: the verifier library signs exactly as the chain crate does.
    ensure!(
        sigs == sign_attestation_sorted(
            &signers,
            &chain_result,
            sb.deployment.chain_id,
            sb.deployment.registry,
        ),
        "verifier signatures differ from the chain crate's"
    );
    sb.register(admin, &chain_result, sigs.clone())?;
    // The enclave logs the record it was registered under, so auditors find it in the log.
    match enclave.handle(Request::LogAttestation {
        result: result.abi_encode(),
        signatures: sigs.iter().map(|s| s.to_vec()).collect(),
    }) {
        Response::Ack => {}
        other => bail!("the enclave refused to log its attestation result: {other:?}"),
    }
    ensure!(
        sb.is_active(bundle.address)?,
        "the enclave is not active after registration"
    );
    Ok(evidence)
}

/// `Deposited` events of the settlement contract in an inclusive block range.
fn deposited_events(
    sb: &Sealbridge<DemoChain>,
    from_block: u64,
    to_block: u64,
) -> anyhow::Result<Vec<Settlement::Deposited>> {
    let logs = sb
        .chain()
        .logs(sb.deployment.settlement, from_block, to_block)?;
    Ok(logs
        .iter()
        .filter_map(|l| Settlement::Deposited::decode_log(&l.inner).ok())
        .map(|l| l.data)
        .collect())
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

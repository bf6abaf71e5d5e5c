//! `sealbridge gov schedule|execute|cancel|list`: drive the timelock of a deployment made by
//! `sealbridge deploy` — propose a named change, see what is pending and when it becomes
//! executable, execute or cancel it; every call said in words. Every refusal happens before a
//! transaction is sent. Logic in `sealbridge_deploy::governance`.

use std::path::PathBuf;
use std::process::ExitCode;

use alloy_primitives::{Address, B256};
use anyhow::Context;
use sealbridge_chain::rpc::RpcChain;
use sealbridge_deploy::{
    DeploymentFile,
    governance::{
        Action, Call, Contracts, GovError, OpState, Operation, Timelock, describe, in_words,
        relative, utc,
    },
    parse_measurement,
};
use serde_json::{Value, json};

use crate::common::{read_key, sending_account};

/// Arguments of `sealbridge gov`.
#[derive(Debug, Clone, clap::Args)]
pub struct GovArgs {
    /// The deployment file written by `sealbridge deploy` (required).
    #[arg(long, global = true)]
    pub deployment: Option<PathBuf>,
    /// JSON-RPC endpoint of the deployment's chain (required).
    #[arg(long, global = true, visible_alias = "chain")]
    pub rpc: Option<String>,
    /// Key file (hex secp256k1) of the sending account: a proposer to schedule, an executor to
    /// execute, a proposer or the guardian to cancel. Never printed. Without it: the endpoint's
    /// first unlocked account (development chains).
    #[arg(long, global = true)]
    pub key_file: Option<PathBuf>,
    /// Print one JSON object on stdout (also for a refusal, which still exits 2).
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: GovCommand,
}

/// `sealbridge gov` subcommands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum GovCommand {
    /// Propose a change; it becomes executable once the timelock's delay has passed.
    Schedule(ScheduleArgs),
    /// Execute a ready operation (an executor), rebuilt from the timelock's events.
    Execute {
        /// The operation id (from `schedule` or `list`).
        id: B256,
    },
    /// Cancel a pending or ready operation (a proposer or the guardian).
    Cancel {
        /// The operation id.
        id: B256,
    },
    /// Every operation of the timelock: state, when it becomes executable, what it changes.
    List,
}

/// Arguments of `sealbridge gov schedule`.
#[derive(Debug, Clone, clap::Args)]
pub struct ScheduleArgs {
    /// Delay in seconds (default and minimum: the timelock's minimum delay).
    #[arg(long)]
    pub delay: Option<u64>,
    /// Salt (32 bytes hex) that tells apart two operations making the same call (default:
    /// random).
    #[arg(long)]
    pub salt: Option<B256>,
    /// Schedule even when the call would revert if executed now (e.g. it relies on an operation
    /// scheduled before it).
    #[arg(long)]
    pub unchecked: bool,
    /// The change.
    #[command(subcommand)]
    pub action: ActionArg,
}

fn measurement(s: &str) -> Result<B256, String> {
    parse_measurement(s)
}

fn boolean(s: &str) -> Result<bool, String> {
    match s {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!("{s:?}: true or false")),
    }
}

/// The changes `schedule` proposes.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum ActionArg {
    /// Registry: admit a verifier.
    AddVerifier {
        /// The verifier's address.
        verifier: Address,
    },
    /// Registry: remove a verifier.
    RemoveVerifier {
        /// The verifier's address.
        verifier: Address,
    },
    /// Registry: verifier signatures a registration needs.
    SetThreshold {
        /// k.
        k: u32,
    },
    /// Registry: allow a measurement in a window.
    AllowMeasurement {
        /// 32 bytes hex, or "simulated".
        #[arg(value_parser = measurement)]
        measurement: B256,
        /// First second allowed (unix; default 0: at once).
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// First second no longer allowed (unix; default: for good).
        #[arg(long)]
        until: Option<u64>,
    },
    /// Settlement: let enclaves of a measurement sign statements for this deployment.
    AllowMeasurementHere {
        /// 32 bytes hex, or "simulated".
        #[arg(value_parser = measurement)]
        measurement: B256,
    },
    /// Registry: revoke a measurement (the guardian can do this at once).
    RevokeMeasurement {
        /// 32 bytes hex, or "simulated".
        #[arg(value_parser = measurement)]
        measurement: B256,
    },
    /// Settlement: stop a measurement signing here (the guardian can do this at once).
    RevokeMeasurementHere {
        /// 32 bytes hex, or "simulated".
        #[arg(value_parser = measurement)]
        measurement: B256,
    },
    /// Registry: revoke an enclave for good (the guardian can do this at once).
    RevokeEnclave {
        /// The enclave's signing address.
        enclave: Address,
    },
    /// Registry: accept (true, INSECURE) or refuse (false) the simulated TEE.
    SetAllowSimulated {
        /// true or false.
        #[arg(value_parser = boolean, action = clap::ArgAction::Set)]
        allowed: bool,
    },
    /// Registry: bound the age and the lifetime of attestation results.
    SetFreshness {
        /// Oldest result accepted (seconds).
        max_age: u32,
        /// Longest result lifetime accepted (seconds).
        max_lifetime: u32,
    },
    /// Settlement: the base policy hash (`EnclavePolicy::base_hash`) statements must be made under.
    SetPolicyHash {
        /// 32 bytes hex.
        base: B256,
    },
    /// Settlement: schedule a policy change (issue 12): the new base hash, the participants it
    /// adds, and the block time from which statements under it may settle. Statements under the
    /// current policy keep settling until the enclave adopts the new one at a statement boundary.
    SchedulePolicy {
        /// The new policy's base hash (`EnclavePolicy::base_hash` of the new policy), 32 bytes hex.
        base: B256,
        /// A participant account the new policy adds (repeat; ascending order is not needed).
        #[arg(long = "add")]
        added: Vec<Address>,
        /// A token the new policy adds (repeat): deposits, obligations and exits in it are
        /// accepted once the new policy is in force. Tokens are never removed.
        #[arg(long = "add-token")]
        tokens: Vec<Address>,
        /// Unix time from which statements under the new policy may settle: it must lie after
        /// the timelock executes the change, and leave room for a timelocked cancel — from it
        /// on, for the exit delay, the change can be neither withdrawn nor replaced
        /// (`PolicyDue`), because the policy's verifiers may have approved it to the enclave.
        #[arg(long)]
        activates_at: u64,
    },
    /// Settlement: withdraw a scheduled policy change before its activation time (or once
    /// abandoned: due for the exit delay with no statement under it).
    CancelPolicy,
    /// Settlement: resume after a pause.
    Unpause,
    /// Settlement: make an enclave (Active in the registry, measurement allowed here) the
    /// deployment's only signer, for a deployment whose enclave is gone without a handover.
    AdoptEnclave {
        /// The enclave's signing address.
        enclave: Address,
    },
    /// Settlement: after losing the enclave and the host's data, make a successor booted with
    /// `ResumeFromChain` (Active, measurement allowed here) the only signer and lift the escape
    /// hatch; settled state is kept (docs/OPERATIONS.md, "Lost data directory").
    ResumeAfterLoss {
        /// The successor's signing address.
        enclave: Address,
    },
}

impl ActionArg {
    fn action(&self) -> Action {
        match *self {
            Self::AddVerifier { verifier } => Action::AddVerifier(verifier),
            Self::RemoveVerifier { verifier } => Action::RemoveVerifier(verifier),
            Self::SetThreshold { k } => Action::SetThreshold(k),
            Self::AllowMeasurement {
                measurement,
                from,
                until,
            } => Action::AllowMeasurement {
                measurement,
                from,
                until: until.unwrap_or(u64::MAX),
            },
            Self::AllowMeasurementHere { measurement } => Action::AllowMeasurementHere(measurement),
            Self::RevokeMeasurement { measurement } => Action::RevokeMeasurement(measurement),
            Self::RevokeMeasurementHere { measurement } => {
                Action::RevokeMeasurementHere(measurement)
            }
            Self::RevokeEnclave { enclave } => Action::RevokeEnclave(enclave),
            Self::SetAllowSimulated { allowed } => Action::SetAllowSimulated(allowed),
            Self::SetFreshness {
                max_age,
                max_lifetime,
            } => Action::SetFreshness {
                max_age,
                max_lifetime,
            },
            Self::SetPolicyHash { base } => Action::SetPolicyHash(base),
            Self::SchedulePolicy {
                base,
                ref added,
                ref tokens,
                activates_at,
            } => {
                let sorted = |v: &[Address]| {
                    let mut v = v.to_vec();
                    v.sort_unstable();
                    v.dedup();
                    v
                };
                Action::SchedulePolicy {
                    base,
                    added: sorted(added),
                    tokens: sorted(tokens),
                    activates_at,
                }
            }
            Self::CancelPolicy => Action::CancelPolicy,
            Self::Unpause => Action::Unpause,
            Self::AdoptEnclave { enclave } => Action::AdoptEnclave(enclave),
            Self::ResumeAfterLoss { enclave } => Action::ResumeAfterLoss(enclave),
        }
    }
}

/// Run `sealbridge gov`. With `--json` a refusal is also printed as
/// `{"error": code, "message": ...}` on stdout; it exits 2 either way.
pub fn run(args: &GovArgs) -> anyhow::Result<ExitCode> {
    crate::common::init_tracing();
    match run_command(args) {
        Ok(out) => {
            if args.json {
                println!("{}", serde_json::to_string_pretty(&out.json)?);
            } else {
                print!("{}", out.text);
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            if args.json {
                let mut v = json!({"error": "error", "message": format!("{e:#}")});
                if let Some(g) = e.downcast_ref::<GovError>() {
                    v["error"] = json!(g.code());
                    if let GovError::TooEarly { eta, now, .. } = g {
                        v["eta"] = json!(eta);
                        v["eta_utc"] = json!(utc(*eta));
                        v["eta_in"] = json!(relative(*eta, *now));
                    }
                }
                println!("{}", serde_json::to_string_pretty(&v)?);
            }
            Err(e)
        }
    }
}

/// What a command prints: as text and as JSON.
struct Output {
    text: String,
    json: Value,
}

fn run_command(args: &GovArgs) -> anyhow::Result<Output> {
    let path = args
        .deployment
        .as_ref()
        .context("--deployment FILE is required (the file `sealbridge deploy` wrote)")?;
    let url = args
        .rpc
        .as_deref()
        .context("--rpc URL is required (the deployment's chain)")?;
    let file = DeploymentFile::from_json(
        &std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
    )
    .with_context(|| path.display().to_string())?;
    let mut rpc = RpcChain::connect(url)
        .with_context(|| format!("connecting to {}", crate::endpoint::endpoint(url)))?;
    // Fail early, before a key is read, on a deployment without a timelock.
    if file.timelock.is_none() {
        return Err(GovError::NoTimelock(file.governance).into());
    }
    let sender = match args.command {
        GovCommand::List => None,
        _ => {
            let key = args.key_file.as_deref().map(read_key).transpose()?;
            Some(sending_account(&mut rpc, key)?)
        }
    };
    let mut tl = Timelock::attach(rpc, &file)?;
    let from = sender.unwrap_or(Address::ZERO);
    match &args.command {
        GovCommand::Schedule(s) => schedule(&mut tl, from, s),
        GovCommand::Execute { id } => {
            let (op, r) = tl.execute(from, *id)?;
            Ok(done(
                &tl.contracts,
                &op,
                "executed",
                OpState::Done,
                r.tx_hash,
            ))
        }
        GovCommand::Cancel { id } => {
            let (op, r) = tl.cancel(from, *id)?;
            Ok(done(
                &tl.contracts,
                &op,
                "cancelled",
                OpState::Cancelled,
                r.tx_hash,
            ))
        }
        GovCommand::List => list(&tl),
    }
}

fn calls_json(contracts: &Contracts, calls: &[Call]) -> Value {
    Value::Array(
        calls
            .iter()
            .map(|c| {
                let d = describe(contracts, c);
                json!({
                    "target": c.target,
                    "contract": d.contract,
                    "function": d.function,
                    "value": c.value.to_string(),
                    "data": c.data,
                    "description": d.words,
                })
            })
            .collect(),
    )
}

fn calls_text(contracts: &Contracts, calls: &[Call]) -> String {
    calls
        .iter()
        .map(|c| format!("    {}\n", describe(contracts, c).words))
        .collect()
}

fn schedule(
    tl: &mut Timelock<RpcChain>,
    from: Address,
    s: &ScheduleArgs,
) -> anyhow::Result<Output> {
    let call = s.action.action().call(&tl.contracts);
    let salt = s.salt.unwrap_or_else(|| {
        let mut b = [0u8; 32];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut b);
        B256::from(b)
    });
    let done = tl.schedule(from, &call, s.delay, salt, !s.unchecked)?;
    let calls = [call];
    let eta_in = relative(done.eta, done.now);
    Ok(Output {
        text: format!(
            "scheduled operation {}:\n{}executable from {} ({eta_in}); then: sealbridge gov \
             execute {}\n",
            done.id,
            calls_text(&tl.contracts, &calls),
            utc(done.eta),
            done.id
        ),
        json: json!({
            "id": done.id,
            "state": OpState::Pending,
            "eta": done.eta,
            "eta_utc": utc(done.eta),
            "eta_in": eta_in,
            "now": done.now,
            "delay_secs": done.delay,
            "delay": in_words(done.delay),
            "salt": done.salt,
            "tx": done.tx,
            "calls": calls_json(&tl.contracts, &calls),
        }),
    })
}

fn done(contracts: &Contracts, op: &Operation, verb: &str, state: OpState, tx: B256) -> Output {
    Output {
        text: format!(
            "{verb} operation {} in transaction {tx}:\n{}",
            op.id,
            calls_text(contracts, &op.calls)
        ),
        json: json!({
            "id": op.id,
            "state": state,
            "tx": tx,
            "calls": calls_json(contracts, &op.calls),
        }),
    }
}

fn list(tl: &Timelock<RpcChain>) -> anyhow::Result<Output> {
    let ops = tl.operations()?;
    let now = tl.now()?;
    let min = tl.min_delay()?;
    let mut text = format!(
        "timelock {} (minimum delay {}); chain time {}\n",
        tl.address(),
        in_words(min),
        utc(now)
    );
    if ops.is_empty() {
        text.push_str("no operations\n");
    }
    let mut out = Vec::with_capacity(ops.len());
    for op in &ops {
        let when = match (op.state, op.eta) {
            (OpState::Pending | OpState::Ready, Some(eta)) => {
                format!("executable from {} ({})", utc(eta), relative(eta, now))
            }
            (OpState::Done, _) => format!(
                "executed in transaction {}",
                op.executed_tx.unwrap_or_default()
            ),
            (OpState::Cancelled, _) => format!(
                "cancelled in transaction {}",
                op.cancelled_tx.unwrap_or_default()
            ),
            _ => "the timelock does not know it (scheduling reorganised away?)".into(),
        };
        text.push_str(&format!(
            "{} {:<9} {when}\n{}",
            op.id,
            op.state.as_str(),
            calls_text(&tl.contracts, &op.calls)
        ));
        out.push(json!({
            "id": op.id,
            "state": op.state,
            "eta": op.eta,
            "eta_utc": op.eta.map(utc),
            "eta_in": op.eta.map(|e| relative(e, now)),
            "delay_secs": op.delay,
            "predecessor": op.predecessor,
            "salt": op.salt,
            "batch": op.batch,
            "scheduled_block": op.scheduled_block,
            "scheduled_tx": op.scheduled_tx,
            "executed_tx": op.executed_tx,
            "cancelled_tx": op.cancelled_tx,
            "calls": calls_json(&tl.contracts, &op.calls),
        }));
    }
    Ok(Output {
        text,
        json: json!({
            "timelock": tl.address(),
            "min_delay_secs": min,
            "now": now,
            "now_utc": utc(now),
            "operations": out,
        }),
    })
}

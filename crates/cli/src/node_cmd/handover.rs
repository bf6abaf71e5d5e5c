//! `sealbridge node --await-handover` and `sealbridge node upgrade --to URL` (issue 12 part 1;
//! docs/OPERATIONS.md "Upgrade the program"): thin shells over `sealbridge_node::handover`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use sealbridge_chain::rpc::RpcChain;
use sealbridge_deploy::{DeploymentFile, dev::RpcDevChain};
use sealbridge_node::handover::{
    DEFAULT_MAX_TRANSFER_BYTES,
    successor::{AwaitConfig, Awaiting, join_dev},
    upgrade::{UpgradeOptions, upgrade},
};
use sealbridge_node::{Node, NodeConfig};

use super::{NodeOptions, config};
use crate::common::{LogArgs, read_key, sending_account};

/// Flags of a successor awaiting a handover (command line only).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct AwaitArgs {
    /// Start as a successor awaiting a handover: boot the enclave awaiting
    /// (`Request::AwaitHandover`), register it, serve `GET /v1/handover/evidence` and
    /// `POST /v1/handover`; once a predecessor's `sealbridge node upgrade --to` handed over,
    /// run as a node. Needs a chain both nodes reach (`--chain URL`).
    #[arg(long)]
    pub await_handover: bool,
    /// `--await-handover --dev` or `--resume-from-chain --dev`: join the development deployment
    /// of the node whose data dir this is (its setup and development verifiers' seed are copied;
    /// it is only read; after a loss: a kept copy of them).
    #[arg(long)]
    pub join_dev: Option<PathBuf>,
    /// `--await-handover`, simulated TEE only: a build label that changes the measurement the
    /// enclave reports (a new program version; the policy must list it as a successor).
    #[arg(long, requires = "await_handover")]
    pub build: Option<String>,
    /// `--await-handover`: largest `POST /v1/handover` body accepted (bytes).
    #[arg(long, requires = "await_handover", default_value_t = DEFAULT_MAX_TRANSFER_BYTES)]
    pub max_transfer_bytes: usize,
}

/// Arguments of `sealbridge node upgrade`.
#[derive(Debug, Clone, clap::Args)]
pub struct UpgradeArgs {
    /// The successor's awaiting node (`http://HOST:PORT`, started with `--await-handover`).
    #[arg(long)]
    pub to: String,
    /// Configuration file of the node being upgraded (as for `sealbridge node`).
    #[arg(long, env = "SEALBRIDGE_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub options: NodeOptions,
    #[command(flatten)]
    pub log: LogArgs,
    /// Longest wait for the handover to settle (seconds).
    #[arg(long, default_value_t = 600)]
    pub settle_timeout_secs: u64,
    /// After the successor accepted, wait up to this many seconds for its first statement to
    /// settle, to report the time to it (0: do not wait).
    #[arg(long, default_value_t = 0)]
    pub wait_first_statement_secs: u64,
    /// Print the summary as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

fn rpc_only(chain: &str) -> anyhow::Result<()> {
    if chain == "embedded" {
        bail!(
            "a handover needs a chain both nodes reach: the embedded chain lives in one node's \
             data dir; pass --chain URL"
        );
    }
    Ok(())
}

fn connect(chain: &str) -> anyhow::Result<RpcChain> {
    RpcChain::connect(chain)
        .with_context(|| format!("connecting to {}", crate::endpoint::endpoint(chain)))
}

/// `sealbridge node --await-handover …`: await, then run as a node until a signal.
pub fn run_awaiting(
    mut cfg: NodeConfig,
    chain: &str,
    deployment: Option<PathBuf>,
    key_file: Option<PathBuf>,
    args: &AwaitArgs,
) -> anyhow::Result<ExitCode> {
    rpc_only(chain)?;
    if let Some(old) = &args.join_dev {
        if !cfg.dev {
            bail!("--join-dev joins a development deployment: it needs --dev");
        }
        join_dev(old, &cfg.data_dir)?;
    }
    if !cfg.dev
        && let Some(path) = &deployment
    {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        cfg.deployment =
            Some(DeploymentFile::from_json(&bytes).with_context(|| format!("{}", path.display()))?);
    }
    let key = key_file.as_deref().map(read_key).transpose()?;
    // A deployed node sends from its own key: every connection signs with it.
    let signing = |cfg: &mut NodeConfig| -> anyhow::Result<RpcChain> {
        let mut rpc = connect(chain)?;
        cfg.sender = Some(sending_account(&mut rpc, key.clone())?);
        Ok(rpc)
    };
    let how = AwaitConfig {
        build: args.build.clone(),
        max_transfer_bytes: args.max_transfer_bytes,
    };
    let awaiting = if cfg.dev {
        Awaiting::start(&cfg, RpcDevChain(connect(chain)?), &how)?
    } else {
        let rpc = signing(&mut cfg)?;
        Awaiting::start(&cfg, rpc, &how)?
    };
    match awaiting {
        None => eprintln!("sealbridge node: this enclave accepted a handover already"),
        Some(a) => {
            eprintln!(
                "sealbridge node: awaiting a handover at {} as {} (measurement {}, settlement {})",
                a.url(),
                a.description.key_bundle.address,
                a.description.measurement,
                a.setup.settlement
            );
            let accepted = a
                .wait_accepted(None)
                .context("the awaiting server stopped before a handover was accepted")?;
            eprintln!(
                "sealbridge node: handover accepted at sequence {} ({} inputs moved, {} log \
                 entries taken over)",
                accepted.status.sequence,
                accepted.status.pending_inputs,
                accepted.inherited_entries
            );
        }
    }
    let node = if cfg.dev {
        Node::start(cfg, RpcDevChain(connect(chain)?))?
    } else {
        let rpc = signing(&mut cfg)?;
        Node::start_deployed(cfg, rpc)?
    };
    eprintln!(
        "sealbridge node: {} (settlement {} on chain {})",
        node.url(),
        node.setup.settlement,
        node.setup.chain_id
    );
    node.wait_for_signal()
        .context("the node stopped on an error")?;
    Ok(ExitCode::SUCCESS)
}

/// `sealbridge node upgrade --to URL …`.
pub fn run_upgrade(args: &UpgradeArgs) -> anyhow::Result<ExitCode> {
    let file = args
        .config
        .as_deref()
        .map(NodeOptions::from_file)
        .transpose()?;
    let config::Resolved {
        mut cfg,
        chain,
        key_file,
        ..
    } = config::resolve(&args.options, file.as_ref())?;
    let _telemetry = args.log.init()?;
    rpc_only(&chain)?;
    let opts = UpgradeOptions {
        to: args.to.clone(),
        settle_timeout: Duration::from_secs(args.settle_timeout_secs.max(1)),
        wait_first_statement: (args.wait_first_statement_secs > 0)
            .then(|| Duration::from_secs(args.wait_first_statement_secs)),
    };
    let mut progress = |line: &str| eprintln!("upgrade: {line}");
    let report = if cfg.dev {
        upgrade(&cfg, RpcDevChain(connect(&chain)?), &opts, &mut progress)?
    } else {
        let mut rpc = connect(&chain)?;
        let key = key_file.as_deref().map(read_key).transpose()?;
        cfg.sender = Some(sending_account(&mut rpc, key)?);
        upgrade(&cfg, rpc, &opts, &mut progress)?
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "handed over at sequence {} to {} (measurement {})",
            report.sequence, report.successor, report.successor_measurement
        );
        println!(
            "settled {} statement(s) first, then the handover; {} input(s) moved with the state",
            report.statements_settled, report.pending_inputs_moved
        );
        println!(
            "signed after {} ms, settled after {} ms, accepted after {} ms{}",
            report.signed_ms,
            report.settled_ms,
            report.accepted_ms,
            report
                .first_successor_statement_ms
                .map(|t| format!(", the successor's first statement settled after {t} ms"))
                .unwrap_or_default()
        );
        println!("this data directory is handed over: retire it");
    }
    Ok(ExitCode::SUCCESS)
}

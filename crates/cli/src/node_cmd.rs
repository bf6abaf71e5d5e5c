//! `sealbridge node` and `sealbridge enclave`: the long-running host and the enclave process.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::common::{init_tracing, read_key, sending_account};
use sealbridge_core::link::{read_root_secret, serve_unix};
use sealbridge_deploy::DeploymentFile;
use sealbridge_deploy::dev::WallClockChain;
use sealbridge_node::EnclaveMode;
use sealbridge_node::Node;
use sealbridge_node::NodeConfig;

/// Arguments of `sealbridge node`.
#[derive(Debug, Clone, clap::Args)]
pub struct NodeArgs {
    /// JSON configuration file; flags given on the command line override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Chain: `embedded` (in-process EVM, journaled in the data dir so it survives restarts) or
    /// a JSON-RPC URL.
    #[arg(long)]
    pub chain: Option<String>,
    /// Data directory: database, log tiles, the simulated TEE's root secret.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// HTTP listen address.
    #[arg(long)]
    pub listen: Option<String>,
    /// Enclave: `inproc`, `spawn` (a child `sealbridge enclave` process) or `unix:PATH`.
    #[arg(long)]
    pub enclave: Option<String>,
    /// Development setup on first start: deploy the contracts and a test ERC-20, register the
    /// enclave through development verifiers (and on the embedded chain fund the development
    /// participants). INSECURE.
    #[arg(long)]
    pub dev: bool,
    /// Development participants.
    #[arg(long)]
    pub participants: Option<u32>,
    /// Inputs per batch.
    #[arg(long)]
    pub batch_size: Option<u32>,
    /// `--dev`: how long a signed statement stays valid on chain (seconds, default 3600); an
    /// unsettled one is renewed by the enclave in its last quarter.
    #[arg(long)]
    pub statement_validity_secs: Option<u64>,
    /// `--dev`: seconds without a settled statement after which anyone may freeze the
    /// deployment (Settlement's exitDelay, default 86400); the node settles a heartbeat
    /// statement after half of it when nothing else settled.
    #[arg(long)]
    pub exit_delay_secs: Option<u64>,
    /// Cut a non-empty batch after this many milliseconds.
    #[arg(long)]
    pub batch_interval_ms: Option<u64>,
    /// Confirmations before a settlement counts.
    #[arg(long)]
    pub confirmations: Option<u64>,
    /// Snapshot the enclave after this many journal records.
    #[arg(long)]
    pub snapshot_every: Option<u64>,
    /// Bytes per sealed snapshot chunk (1 to 16777216; default 8 MiB).
    #[arg(long)]
    pub snapshot_chunk_bytes: Option<u32>,
    /// Refuse envelopes (503) while more statements than this wait for the chain.
    #[arg(long)]
    pub max_pending: Option<u64>,
    /// Deployment file written by `sealbridge deploy`: on a fresh data dir the node attaches
    /// to these contracts and adopts this policy (instead of --dev).
    #[arg(long)]
    pub deployment: Option<PathBuf>,
    /// A verifier service (`sealbridge verifier serve`) URL; repeat for each. At least the
    /// registry's threshold k are needed to register the enclave.
    #[arg(long = "verifier")]
    pub verifiers: Vec<String>,
    /// The node's own secp256k1 key (hex): it sends the register and settle transactions.
    /// Never printed. Without it: the endpoint's first unlocked account (development chains).
    #[arg(long)]
    pub key_file: Option<PathBuf>,
    /// Most blocks one eth_getLogs of the deposit scan asks for (default 2000; halved while
    /// the endpoint refuses the range or the result size).
    #[arg(long)]
    pub log_chunk_blocks: Option<u64>,
    /// Clear the deep-reorg alarm (a reorg deeper than --confirmations replaced a block whose
    /// deposits were credited) if it names this block: say so only after checking the
    /// participants' escrow on chain against what the enclave was credited.
    #[arg(long)]
    pub acknowledge_deep_reorg: Option<u64>,
}

/// The configuration file: the same keys as the flags, in snake case.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    chain: Option<String>,
    data_dir: Option<PathBuf>,
    listen: Option<String>,
    enclave: Option<String>,
    dev: Option<bool>,
    participants: Option<u32>,
    batch_size: Option<u32>,
    statement_validity_secs: Option<u64>,
    exit_delay_secs: Option<u64>,
    batch_interval_ms: Option<u64>,
    confirmations: Option<u64>,
    snapshot_every: Option<u64>,
    snapshot_chunk_bytes: Option<u32>,
    max_pending: Option<u64>,
    deployment: Option<PathBuf>,
    verifiers: Option<Vec<String>>,
    key_file: Option<PathBuf>,
    log_chunk_blocks: Option<u64>,
}

/// Run the node until Ctrl-C.
pub fn run(args: &NodeArgs) -> anyhow::Result<ExitCode> {
    init_tracing();
    let file: FileConfig = match &args.config {
        Some(p) => serde_json::from_slice(
            &std::fs::read(p).with_context(|| format!("reading {}", p.display()))?,
        )
        .with_context(|| format!("parsing {}", p.display()))?,
        None => FileConfig::default(),
    };
    let data_dir = args
        .data_dir
        .clone()
        .or(file.data_dir)
        .unwrap_or_else(|| PathBuf::from("sealbridge-data"));
    let listen = args
        .listen
        .clone()
        .or(file.listen)
        .unwrap_or_else(|| "127.0.0.1:8080".into())
        .parse()
        .context("--listen must be HOST:PORT")?;
    let mut cfg = NodeConfig::new(data_dir.clone(), listen);
    cfg.dev = args.dev || file.dev.unwrap_or(false);
    if let Some(v) = args.participants.or(file.participants) {
        cfg.participants = v.clamp(2, 1000);
    }
    if let Some(v) = args
        .statement_validity_secs
        .or(file.statement_validity_secs)
    {
        if v == 0 {
            bail!("--statement-validity-secs must be at least 1");
        }
        cfg.statement_validity_secs = v;
    }
    if let Some(v) = args.exit_delay_secs.or(file.exit_delay_secs) {
        if v == 0 {
            bail!("--exit-delay-secs must be at least 1");
        }
        cfg.exit_delay_secs = v;
    }
    if let Some(v) = args.batch_size.or(file.batch_size) {
        cfg.batch_size = v.max(1);
    }
    if let Some(v) = args.batch_interval_ms.or(file.batch_interval_ms) {
        cfg.batch_interval = Duration::from_millis(v.max(1));
    }
    if let Some(v) = args.confirmations.or(file.confirmations) {
        cfg.confirmations = v.max(1);
    }
    if let Some(v) = args.snapshot_every.or(file.snapshot_every) {
        cfg.snapshot_every = v.max(1);
    }
    if let Some(v) = args.snapshot_chunk_bytes.or(file.snapshot_chunk_bytes) {
        let max = sealbridge_enclave::chunks::MAX_CHUNK_BYTES;
        if v == 0 || v > max {
            bail!("--snapshot-chunk-bytes must be between 1 and {max}, not {v}");
        }
        cfg.snapshot_chunk_bytes = v;
    }
    if let Some(v) = args.max_pending.or(file.max_pending) {
        cfg.max_pending_statements = v;
    }
    if let Some(v) = args.log_chunk_blocks.or(file.log_chunk_blocks) {
        cfg.log_chunk_blocks = v.max(1);
    }
    // Command line only: an acknowledgement left in a configuration file would clear a
    // future alarm nobody looked at.
    cfg.acknowledge_deep_reorg = args.acknowledge_deep_reorg;
    let enclave = args
        .enclave
        .clone()
        .or(file.enclave)
        .unwrap_or_else(|| "inproc".into());
    cfg.enclave = match enclave.as_str() {
        "inproc" => EnclaveMode::InProc,
        "spawn" => EnclaveMode::Spawn(std::env::current_exe().context("locating sealbridge")?),
        other => match other.strip_prefix("unix:") {
            Some(p) if !p.is_empty() => EnclaveMode::Unix(PathBuf::from(p)),
            _ => bail!("--enclave must be inproc, spawn or unix:PATH, not {other:?}"),
        },
    };
    let chain = args
        .chain
        .clone()
        .or(file.chain)
        .unwrap_or_else(|| "embedded".into());
    let deployment = args.deployment.clone().or(file.deployment);
    let key_file = args.key_file.clone().or(file.key_file);
    cfg.verifiers = if args.verifiers.is_empty() {
        file.verifiers.unwrap_or_default()
    } else {
        args.verifiers.clone()
    };
    if !cfg.dev {
        if args.participants.or(file.participants).is_some()
            || args.batch_size.or(file.batch_size).is_some()
            || args
                .statement_validity_secs
                .or(file.statement_validity_secs)
                .is_some()
            || args.exit_delay_secs.or(file.exit_delay_secs).is_some()
        {
            bail!(
                "--participants, --batch-size, --statement-validity-secs and --exit-delay-secs \
                 are --dev options: on a deployment the policy and the contracts in the \
                 deployment file set them"
            );
        }
        return run_deployed(cfg, &chain, deployment, key_file);
    }
    if deployment.is_some() || key_file.is_some() || !cfg.verifiers.is_empty() {
        bail!(
            "--dev deploys its own contracts and sends from the endpoint's unlocked accounts: \
             it takes no --deployment, --key-file or --verifier"
        );
    }
    let node = if chain == "embedded" {
        if data_dir.join("node.db").exists()
            && !data_dir
                .join(sealbridge_deploy::dev::EMBEDDED_CHAIN_JOURNAL)
                .exists()
        {
            bail!(
                "{} holds a node's state but no embedded chain journal (made by an older \
                 version, or the journal was deleted): the chain it settled on is gone; use a \
                 fresh --data-dir",
                data_dir.display()
            );
        }
        Node::start(cfg, WallClockChain::open(&data_dir)?)?
    } else {
        let rpc = sealbridge_chain::rpc::RpcChain::connect(&chain)
            .with_context(|| format!("connecting to {}", crate::endpoint::endpoint(&chain)))?;
        Node::start(cfg, sealbridge_deploy::dev::RpcDevChain(rpc))?
    };
    eprintln!(
        "sealbridge node: http://{} (settlement {} on chain {})",
        node.addr, node.setup.settlement, node.setup.chain_id
    );
    node.wait();
    Ok(ExitCode::SUCCESS)
}

/// A node on a deployment made by `sealbridge deploy`.
fn run_deployed(
    mut cfg: NodeConfig,
    chain: &str,
    deployment: Option<PathBuf>,
    key_file: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    if chain == "embedded" {
        bail!(
            "the embedded chain is a development chain that a --dev node creates in its data \
             dir: use --dev with it, or --chain URL with --deployment FILE"
        );
    }
    if let Some(path) = &deployment {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        cfg.deployment =
            Some(DeploymentFile::from_json(&bytes).with_context(|| format!("{}", path.display()))?);
    }
    let key = key_file.as_deref().map(read_key).transpose()?;
    let mut rpc = sealbridge_chain::rpc::RpcChain::connect(chain)
        .with_context(|| format!("connecting to {}", crate::endpoint::endpoint(chain)))?;
    cfg.sender = Some(sending_account(&mut rpc, key)?);
    let node = Node::start_deployed(cfg, rpc)?;
    eprintln!(
        "sealbridge node: http://{} (settlement {} on chain {}, sending from {})",
        node.addr, node.setup.settlement, node.setup.chain_id, node.setup.admin
    );
    node.wait();
    Ok(ExitCode::SUCCESS)
}

/// Arguments of `sealbridge enclave`.
#[derive(Debug, Clone, clap::Args)]
pub struct EnclaveArgs {
    /// Unix socket to listen on.
    #[arg(long)]
    pub socket: PathBuf,
    /// The simulated TEE's root sealing secret (64 hex digits). INSECURE: a real TEE derives it
    /// in hardware.
    #[arg(long)]
    pub root_secret: PathBuf,
    /// Exit when this process (the node that spawned us) is gone.
    #[arg(long)]
    pub parent_pid: Option<u32>,
}

/// Serve the boundary protocol on a Unix socket until killed.
pub fn run_enclave(args: &EnclaveArgs) -> anyhow::Result<ExitCode> {
    init_tracing();
    let root = read_root_secret(&args.root_secret)?;
    if let Some(parent) = args.parent_pid {
        // A node killed with -9 cannot kill its enclave: the enclave notices instead.
        std::thread::spawn(move || {
            loop {
                if std::os::unix::process::parent_id() != parent {
                    std::process::exit(0);
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        });
    }
    serve_unix(&args.socket, root)?;
    Ok(ExitCode::SUCCESS)
}

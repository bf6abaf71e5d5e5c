//! `sealbridge node` and `sealbridge enclave`: the long-running host and the enclave process.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};

mod config;
mod custody;
mod handover;

use crate::common::{LogArgs, init_tracing, read_key, sending_account};
pub use config::NodeOptions;
use sealbridge_core::link::{
    BoundaryListener, EnclaveAddr, HostKey, RemoteHosts, read_root_secret, serve,
};
use sealbridge_deploy::DeploymentFile;
use sealbridge_deploy::dev::WallClockChain;
use sealbridge_node::Node;
use sealbridge_node::NodeConfig;

/// Arguments of `sealbridge node`.
#[derive(Debug, Clone, clap::Args)]
pub struct NodeArgs {
    /// Configuration file (JSON; the keys are the options' file keys in docs/NODE.md). Flags
    /// and SEALBRIDGE_* environment variables override it.
    #[arg(long, env = "SEALBRIDGE_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub options: NodeOptions,
    #[command(flatten)]
    pub log: LogArgs,
    /// Clear the deep-reorg alarm (a reorg deeper than --confirmations replaced a block whose
    /// deposits were credited) if it names this block: say so only after checking the
    /// participants' escrow on chain against what the enclave was credited. Command line only:
    /// an acknowledgement left in a file would clear a future alarm nobody looked at.
    #[arg(long)]
    pub acknowledge_deep_reorg: Option<u64>,
    /// Print the configuration as resolved (flags > environment > file > defaults) as one JSON
    /// object and exit.
    #[arg(long)]
    pub print_config: bool,
    /// Print the reference of every option (Markdown, as in docs/NODE.md) and exit.
    #[arg(long)]
    pub print_config_reference: bool,
    #[command(flatten)]
    pub handover: handover::AwaitArgs,
    #[command(flatten)]
    pub resume: ResumeArgs,
    /// The TEE the enclave runs in (command line only; `--enclave unix:PATH` enclaves set up
    /// their own).
    #[command(flatten)]
    pub tee: crate::tee::TeeArgs,
    /// `upgrade`: hand this node's deployment over to an awaiting successor.
    #[command(subcommand)]
    pub command: Option<NodeCommand>,
}

/// Resuming a deployment whose enclave and data directory were lost (command line only, like
/// `--await-handover`: a first start, not a setting).
#[derive(Debug, Clone, clap::Args)]
pub struct ResumeArgs {
    /// Resume a deployment whose enclave AND data directory were lost (docs/OPERATIONS.md "Lost
    /// data directory"): on an empty --data-dir, read the chain's settled state and the
    /// published log, start the enclave with `ResumeFromChain`, register it, and serve once
    /// governance executed `Settlement.resumeAfterLoss` with it (until then: no submissions,
    /// no withdrawal decided). Needs --published-log and a JSON-RPC --chain. Later starts of
    /// this data directory are ordinary restarts (without this flag).
    #[arg(long, requires = "published_log", conflicts_with = "await_handover")]
    pub resume_from_chain: bool,
    /// `--resume-from-chain`: the lost node's published log — a directory (a copy of its data
    /// dir's `log/`, kept on other storage) or an `http(s)://` tlog-tiles prefix (fetched first,
    /// nothing trusted): its first `Settlement.logSize()` entries must hash to
    /// `Settlement.logRoot()`.
    #[arg(long, requires = "resume_from_chain")]
    pub published_log: Option<String>,
    /// `--resume-from-chain`: print what was read and resumed as one JSON object on stdout.
    #[arg(long, requires = "resume_from_chain")]
    pub json: bool,
}

/// Say what a node resumed from (stderr, or one JSON object on stdout with `json`).
fn report_resumed(node: &Node, json: bool) -> anyhow::Result<()> {
    let Some(r) = &node.resumed else {
        return Ok(());
    };
    if json {
        println!("{}", serde_json::to_string(r)?);
    } else {
        eprintln!(
            "sealbridge node: resumed from the chain at block {}: sequence {}, log {} of {} \
             published entries settled, {} escrow balance(s), {} withdrawal request(s) held; \
             lost enclave {}, this enclave {}\n{}",
            r.block,
            r.sequence,
            r.log_size,
            r.published_log_size,
            r.balances,
            r.held_requests,
            r.previous,
            r.successor,
            r.next
        );
    }
    Ok(())
}

/// Subcommands of `sealbridge node`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum NodeCommand {
    /// Hand the deployment of a stopped node over to a successor awaiting a handover
    /// (`sealbridge node --await-handover`): the enclave attests the successor itself and signs
    /// the handover; every signed statement settles, then the handover; the package and the
    /// handed-over snapshot go to the successor. Prints a summary.
    Upgrade(handover::UpgradeArgs),
    /// Key custody: rotate the sealing root of a stopped node's data directory (its lock is
    /// taken): recover the enclave from the keyholders, deal root generation g + 1 to every
    /// keyholder, commit it (a snapshot under the new root stored alone, older snapshots and
    /// journal deleted), and have the keyholders drop the older generations. Nothing is
    /// committed unless every keyholder stored its new share.
    RotateRoot(custody::RotateRootArgs),
}

/// The reference of `sealbridge node`'s options (Markdown).
pub fn config_reference() -> String {
    use clap::Args;
    config::reference(&NodeArgs::augment_args(clap::Command::new("node")))
}

/// Run the node until Ctrl-C.
pub fn run(args: &NodeArgs) -> anyhow::Result<ExitCode> {
    match &args.command {
        Some(NodeCommand::Upgrade(u)) => return handover::run_upgrade(u),
        Some(NodeCommand::RotateRoot(r)) => return custody::run_rotate_root(r),
        None => {}
    }
    if args.print_config_reference {
        print!("{}", config_reference());
        return Ok(ExitCode::SUCCESS);
    }
    let file = args
        .config
        .as_deref()
        .map(NodeOptions::from_file)
        .transpose()?;
    let config::Resolved {
        options,
        mut cfg,
        chain,
        deployment,
        key_file,
    } = config::resolve(&args.options, file.as_ref())?;
    if args.print_config {
        // URLs often carry provider API keys (user info, path, query): those parts are not
        // printed, as in every log line (`endpoint`).
        let mut shown = serde_json::to_value(&options)?;
        if let Some(url) = shown.get("chain").and_then(|v| v.as_str()).map(redact_url) {
            shown["chain"] = url.into();
        }
        if let Some(list) = shown.get_mut("verifiers").and_then(|v| v.as_array_mut()) {
            for v in list.iter_mut() {
                if let Some(url) = v.as_str().map(redact_url) {
                    *v = url.into();
                }
            }
        }
        println!("{}", serde_json::to_string_pretty(&shown)?);
        return Ok(ExitCode::SUCCESS);
    }
    if args.handover.join_dev.is_some()
        && !args.handover.await_handover
        && !args.resume.resume_from_chain
    {
        bail!(
            "--join-dev joins a development deployment as a successor: it needs \
             --await-handover or --resume-from-chain"
        );
    }
    let _telemetry = args.log.init()?;
    cfg.acknowledge_deep_reorg = args.acknowledge_deep_reorg;
    cfg.tee = tee_config(&args.tee, &cfg.enclave, !cfg.keyholders.is_empty())?;
    if args.handover.await_handover {
        return handover::run_awaiting(cfg, &chain, deployment, key_file, &args.handover);
    }
    // A published log fetched over HTTP lives in a temporary directory while the node starts.
    let mut _fetched: Option<tempfile::TempDir> = None;
    if args.resume.resume_from_chain {
        if chain == "embedded" {
            bail!(
                "--resume-from-chain reads a chain the lost node settled on: the embedded chain \
                 lived in the lost data directory; pass --chain URL"
            );
        }
        let published = args.resume.published_log.as_deref().unwrap_or_default();
        let published_log = if published.starts_with("http://") || published.starts_with("https://")
        {
            let tmp = tempfile::tempdir().context("temporary directory")?;
            eprintln!(
                "sealbridge node: fetching the published log from {}",
                crate::endpoint::endpoint(published)
            );
            crate::audit_cmd::log::fetch_at_most(
                published,
                tmp.path(),
                sealbridge_node::resume::MAX_PUBLISHED_ENTRIES,
            )
            .with_context(|| {
                format!(
                    "fetching the published log from {}",
                    crate::endpoint::endpoint(published)
                )
            })?;
            let p = tmp.path().to_path_buf();
            _fetched = Some(tmp);
            p
        } else if published.contains("://") {
            bail!(
                "unsupported --published-log URL scheme (http://, https:// or a directory): {}",
                crate::endpoint::endpoint(published)
            );
        } else {
            PathBuf::from(published)
        };
        cfg.resume_from_chain = Some(sealbridge_node::resume::ResumeOptions { published_log });
        if let Some(old) = &args.handover.join_dev {
            if !cfg.dev {
                bail!("--join-dev joins a development deployment: it needs --dev");
            }
            sealbridge_node::handover::successor::join_dev(old, &cfg.data_dir)?;
        }
    }
    if !cfg.dev {
        return run_deployed(cfg, &chain, deployment, key_file, args.resume.json);
    }
    let data_dir = cfg.data_dir.clone();
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
    report_resumed(&node, args.resume.json)?;
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

/// A node on a deployment made by `sealbridge deploy`.
fn run_deployed(
    mut cfg: NodeConfig,
    chain: &str,
    deployment: Option<PathBuf>,
    key_file: Option<PathBuf>,
    json: bool,
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
    report_resumed(&node, json)?;
    eprintln!(
        "sealbridge node: {} (settlement {} on chain {}, sending from {})",
        node.url(),
        node.setup.settlement,
        node.setup.chain_id,
        node.setup.admin
    );
    node.wait_for_signal()
        .context("the node stopped on an error")?;
    Ok(ExitCode::SUCCESS)
}

/// `--tee` of `sealbridge node`: set up the TEE in this process (in-process enclave) or hand
/// the flags to the spawned `sealbridge enclave` (which sets up its own).
fn tee_config(
    tee: &crate::tee::TeeArgs,
    mode: &sealbridge_node::EnclaveMode,
    custody: bool,
) -> anyhow::Result<sealbridge_node::node::TeeConfig> {
    use crate::tee::TeeChoice;
    use sealbridge_node::EnclaveMode;
    if tee.tee == TeeChoice::Simulated {
        return Ok(Default::default());
    }
    let mut args = vec![
        "--tee".to_string(),
        clap::ValueEnum::to_possible_value(&tee.tee)
            .map(|v| v.get_name().to_string())
            .unwrap_or_default(),
    ];
    if let Some(root) = &tee.tee_root {
        args.push("--tee-root".into());
        args.push(root.display().to_string());
    }
    match mode {
        EnclaveMode::Unix(_) | EnclaveMode::Connect { .. } => bail!(
            "--tee is for an enclave this node runs (--enclave inproc or spawn); an enclave at \
             unix:, tcp: or vsock: runs in whatever TEE it was started in"
        ),
        EnclaveMode::Spawn(_) => {
            // The child sets its TEE up; learn here whether it needs keyholders.
            use sealbridge_attest::TeeKind;
            let root = tee.tee_root.as_deref().unwrap_or("/".as_ref());
            let kind = match tee.tee {
                TeeChoice::Sgx => Some(TeeKind::Sgx),
                TeeChoice::Tdx => Some(TeeKind::Tdx),
                TeeChoice::Snp => Some(TeeKind::Snp),
                TeeChoice::Nitro => Some(TeeKind::Nitro),
                _ => crate::tee::detect(root).first().map(|(k, _)| *k),
            };
            let needs_custody = kind.is_some_and(|k| !crate::tee::has_sealing_key(k, root));
            Ok(sealbridge_node::node::TeeConfig {
                name: Some(args[1].clone()),
                enclave_args: args,
                hardware_root: None,
                needs_custody,
            })
        }
        EnclaveMode::InProc => {
            let p = crate::tee::setup(tee, custody)?
                .ok_or_else(|| anyhow::anyhow!("--tee: no TEE set up"))?;
            eprintln!(
                "sealbridge node: the enclave runs in {} (measurement {})",
                p.kind.name(),
                p.measurement
            );
            Ok(sealbridge_node::node::TeeConfig {
                name: Some(p.kind.name().into()),
                enclave_args: args,
                hardware_root: p.sealing_root,
                needs_custody: p.sealing_root.is_none(),
            })
        }
    }
}

/// Arguments of `sealbridge enclave`.
#[derive(Debug, Clone, clap::Args)]
#[command(subcommand_negates_reqs = true)]
pub struct EnclaveArgs {
    /// Unix socket to listen on (the same as `--listen unix:PATH`; owner-only, 0600).
    #[arg(long, required_unless_present = "listen", conflicts_with = "listen")]
    pub socket: Option<PathBuf>,
    /// Where to serve the boundary protocol: `unix:PATH`, `tcp:IP:PORT` (an IP address, loopback
    /// unless --allow-remote-host; port 0 picks a free one; needs --host-key), `vsock:PORT` (any
    /// CID: inside a Nitro enclave) or `vsock:CID:PORT`. One host at a time: while a session is
    /// open, another connection is refused.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// The key a host must prove before it may drive this enclave, and that the enclave proves
    /// back (64 hex digits, mode 0600; `sealbridge enclave host-key --out FILE` makes one; the
    /// node takes the same file as --enclave-host-key). Required for --listen tcp: (any local
    /// user can connect to a TCP port), optional for vsock:, not for a Unix socket (owner-only).
    #[arg(long, value_name = "FILE")]
    pub host_key: Option<PathBuf>,
    /// Let `--listen tcp:` bind an address that is not loopback (e.g. 0.0.0.0 or a LAN address).
    /// The host key keeps others from driving this enclave, but only when both ends connect: the
    /// frames after it are not authenticated, so whoever can tamper with the network path can
    /// still stall the enclave or feed it a stale state (they cannot read what it seals or sign
    /// for it). Use only on a network that nothing but the host can reach.
    #[arg(long)]
    pub allow_remote_host: bool,
    /// The simulated TEE's root sealing secret (64 hex digits). INSECURE: a real TEE derives it
    /// in hardware (`--tee sgx`) or gets it from keyholders (`--custody`).
    #[arg(long, conflicts_with = "custody")]
    pub root_secret: Option<PathBuf>,
    /// Key custody: start without a root; the host has the enclave deal one to the policy's
    /// keyholders or recover it from them (docs/PROTOCOL.md "Key custody").
    #[arg(long)]
    pub custody: bool,
    /// Exit when this process (the node that spawned us) is gone.
    #[arg(long)]
    pub parent_pid: Option<u32>,
    /// The TEE this enclave runs in.
    #[command(flatten)]
    pub tee: crate::tee::TeeArgs,
    /// `host-key`: make a host key file.
    #[command(subcommand)]
    pub command: Option<EnclaveCommand>,
}

/// Subcommands of `sealbridge enclave`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum EnclaveCommand {
    /// Make a new random host key (32 bytes, 64 hex digits) in a new file, mode 0600, for
    /// `sealbridge enclave --host-key` and `sealbridge node --enclave-host-key`. The key is never
    /// printed; an existing file is not replaced.
    HostKey {
        /// The file to create.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

/// Serve the boundary protocol on a Unix socket, TCP or vsock until killed.
pub fn run_enclave(args: &EnclaveArgs) -> anyhow::Result<ExitCode> {
    if let Some(EnclaveCommand::HostKey { out }) = &args.command {
        HostKey::generate(out)?;
        eprintln!(
            "sealbridge enclave: wrote a new host key to {} (mode 0600); give the enclave \
             --host-key and the node --enclave-host-key this file",
            out.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    init_tracing();
    // A malformed address stops the enclave before its TEE is set up (a refused one at bind).
    let remote = if args.allow_remote_host {
        RemoteHosts::Allow
    } else {
        RemoteHosts::Refuse
    };
    let addr = listen_addr(args)?;
    if args.allow_remote_host && !matches!(addr, EnclaveAddr::Tcp { .. }) {
        bail!("--allow-remote-host is for --listen tcp:HOST:PORT, not {addr}");
    }
    let host_key = listen_host_key(&addr, args.host_key.as_deref())?;
    let platform = crate::tee::setup(&args.tee, args.custody)?;
    let root = match (&platform, &args.root_secret, args.custody) {
        (_, _, true) => None,
        (Some(p), Some(_), _) => anyhow::bail!(
            "--root-secret is the simulated TEE's: in {} the sealing root comes from the TEE or \
             the keyholders",
            p.kind.name()
        ),
        (Some(p), None, false) => match p.sealing_root {
            Some(root) => Some(root),
            None => anyhow::bail!(
                "{} gives the enclave no sealing key: run with --custody (the deployment's \
                 keyholders hold the root, docs/PROTOCOL.md \"Key custody\")",
                p.kind.name()
            ),
        },
        (None, Some(path), false) => Some(read_root_secret(path)?),
        (None, None, false) => {
            anyhow::bail!("the simulated TEE needs --root-secret FILE (INSECURE) or --custody")
        }
    };
    if let Some(p) = &platform {
        eprintln!(
            "sealbridge enclave: running in {} (measurement {})",
            p.kind.name(),
            p.measurement
        );
    }
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
    let mut listener = BoundaryListener::bind(&addr, remote)?;
    if let Some(key) = host_key {
        listener = listener.require_host_key(key);
    }
    // Tests and scripts read where it listens (the port, for `tcp:HOST:0`) from this line.
    eprintln!("sealbridge enclave: listening on {}", listener.local_addr());
    serve(listener, root)?;
    Ok(ExitCode::SUCCESS)
}

/// `--host-key` for a listener at `addr`: required for TCP, optional for vsock, refused for a
/// Unix socket (whose owner-only mode is its protection).
fn listen_host_key(
    addr: &EnclaveAddr,
    file: Option<&std::path::Path>,
) -> anyhow::Result<Option<HostKey>> {
    match (addr, file) {
        (EnclaveAddr::Unix(_), Some(_)) => bail!(
            "--host-key is for --listen tcp: or vsock:; a Unix socket is owner-only (0600) and \
             needs none"
        ),
        (EnclaveAddr::Tcp { .. }, None) => bail!(
            "--listen {addr} needs --host-key FILE (make one with `sealbridge enclave host-key \
             --out FILE` and give the node the same file as --enclave-host-key): any local user \
             can connect to a TCP port"
        ),
        (_, Some(path)) => Ok(Some(HostKey::read(path)?)),
        (_, None) => Ok(None),
    }
}

/// `--socket PATH` or `--listen ADDR` (clap makes exactly one of them present).
fn listen_addr(args: &EnclaveArgs) -> anyhow::Result<EnclaveAddr> {
    match (&args.socket, &args.listen) {
        (Some(path), None) => Ok(EnclaveAddr::Unix(path.clone())),
        (None, Some(addr)) => {
            EnclaveAddr::parse_listen(addr).with_context(|| format!("--listen {addr}"))
        }
        _ => bail!("give exactly one of --socket PATH and --listen ADDR"),
    }
}

/// `url` as it may be printed: unchanged when it is only `scheme://host[:port][/]` (or not a URL,
/// such as `embedded`), else `scheme://host:port/<redacted>`.
fn redact_url(url: &str) -> String {
    let Some((_, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = rest.split_at(rest.find(['/', '?', '#']).unwrap_or(rest.len()));
    if !authority.contains('@') && (tail.is_empty() || tail == "/") {
        return url.to_owned();
    }
    format!("{}/<redacted>", crate::endpoint::endpoint(url))
}

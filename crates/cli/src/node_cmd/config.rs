//! The node's configuration: one struct ([`NodeOptions`]) that is at once the command line's
//! flags, the `SEALBRIDGE_*` environment variables and the keys of the `--config` file, read with
//! precedence flags > environment > file > defaults, and turned into a
//! [`sealbridge_node::NodeConfig`]. The reference in docs/NODE.md is generated from it
//! (`sealbridge node --print-config-reference`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use sealbridge_core::link::EnclaveAddr;
use sealbridge_node::{EnclaveMode, NodeConfig};
use serde_json::{Map, Value};

/// Every option of `sealbridge node` that may also come from the environment or the file.
/// Field names are the file's keys; `SEALBRIDGE_<NAME>` the environment variables.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, clap::Args, serde::Deserialize, serde::Serialize,
)]
#[serde(deny_unknown_fields, default)]
pub struct NodeOptions {
    /// Chain: `embedded` (in-process EVM, journaled in the data dir so it survives restarts) or
    /// a JSON-RPC URL (http:// or https://).
    #[arg(long, env = "SEALBRIDGE_CHAIN")]
    pub chain: Option<String>,
    /// Data directory: database, log tiles, the simulated TEE's root secret.
    #[arg(long, env = "SEALBRIDGE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// HTTP listen address (HOST:PORT).
    #[arg(long, env = "SEALBRIDGE_LISTEN")]
    pub listen: Option<String>,
    /// Serve HTTPS with this certificate chain (PEM, leaf first); needs --tls-key.
    #[arg(long, env = "SEALBRIDGE_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, env = "SEALBRIDGE_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Enclave: `inproc`, `spawn` (a child `sealbridge enclave` process, respawned if it dies),
    /// or an enclave process already listening at `unix:PATH`, `tcp:HOST:PORT` or
    /// `vsock:CID:PORT` (Nitro Enclaves: the enclave's CID).
    #[arg(long, env = "SEALBRIDGE_ENCLAVE")]
    pub enclave: Option<String>,
    /// `--enclave tcp:` or `vsock:`: the key shared with the enclave process (its `--host-key`;
    /// 64 hex digits, mode 0600, made by `sealbridge enclave host-key --out FILE`). Both ends
    /// prove it on every connection, so no other local user can take the enclave's session or
    /// pose as the enclave. Required for tcp:, optional for vsock:.
    #[arg(long, env = "SEALBRIDGE_ENCLAVE_HOST_KEY", value_name = "FILE")]
    pub enclave_host_key: Option<PathBuf>,
    /// Development setup on first start: deploy the contracts and a test ERC-20, register the
    /// enclave through development verifiers (and on the embedded chain fund the development
    /// participants). INSECURE.
    #[arg(long, env = "SEALBRIDGE_DEV")]
    pub dev: bool,
    /// `--dev`: development participants (2 to 1000).
    #[arg(long, env = "SEALBRIDGE_PARTICIPANTS")]
    pub participants: Option<u32>,
    /// `--dev`: inputs per batch.
    #[arg(long, env = "SEALBRIDGE_BATCH_SIZE")]
    pub batch_size: Option<u32>,
    /// `--dev`: how long a signed statement stays valid on chain (seconds); an unsettled one is
    /// renewed by the enclave in its last quarter.
    #[arg(long, env = "SEALBRIDGE_STATEMENT_VALIDITY_SECS")]
    pub statement_validity_secs: Option<u64>,
    /// `--dev`: seconds without a settled statement after which anyone may freeze the
    /// deployment (Settlement's exitDelay); the node settles a heartbeat statement after half
    /// of it when nothing else settled.
    #[arg(long, env = "SEALBRIDGE_EXIT_DELAY_SECS")]
    pub exit_delay_secs: Option<u64>,
    /// Cut a non-empty batch after this many milliseconds.
    #[arg(long, env = "SEALBRIDGE_BATCH_INTERVAL_MS")]
    pub batch_interval_ms: Option<u64>,
    /// Confirmations before a settlement (and a deposit or a withdrawal request) counts.
    #[arg(long, env = "SEALBRIDGE_CONFIRMATIONS")]
    pub confirmations: Option<u64>,
    /// Snapshot the enclave after this many journal records (at the next batch cut).
    #[arg(long, env = "SEALBRIDGE_SNAPSHOT_EVERY")]
    pub snapshot_every: Option<u64>,
    /// Bytes per sealed snapshot chunk (1 to 16777216).
    #[arg(long, env = "SEALBRIDGE_SNAPSHOT_CHUNK_BYTES")]
    pub snapshot_chunk_bytes: Option<u32>,
    /// Refuse envelopes (503) while more statements than this wait for the chain.
    #[arg(long, env = "SEALBRIDGE_MAX_PENDING")]
    pub max_pending: Option<u64>,
    /// Deployment file written by `sealbridge deploy`: on a fresh data dir the node attaches
    /// to these contracts and adopts this policy (instead of --dev).
    #[arg(long, env = "SEALBRIDGE_DEPLOYMENT")]
    pub deployment: Option<PathBuf>,
    /// A verifier service (`sealbridge verifier serve`) URL; repeat for each (environment:
    /// comma-separated). At least the registry's threshold k are needed to register the
    /// enclave.
    #[arg(long = "verifier", env = "SEALBRIDGE_VERIFIERS", value_delimiter = ',')]
    pub verifiers: Vec<String>,
    /// Key custody: a keyholder service (`sealbridge keyholder serve`) URL; repeat for each, in
    /// the order the deployment's policy names them (environment: comma-separated). Required
    /// when the policy puts the sealing root in custody: the first start deals the root and
    /// serves only once every keyholder stored its share; later starts recover it from any k.
    #[arg(
        long = "keyholder",
        env = "SEALBRIDGE_KEYHOLDERS",
        value_delimiter = ','
    )]
    pub keyholders: Vec<String>,
    /// The node's own secp256k1 key (hex): it sends the register and settle transactions.
    /// Never printed. Without it: the endpoint's first unlocked account (development chains).
    #[arg(long, env = "SEALBRIDGE_KEY_FILE")]
    pub key_file: Option<PathBuf>,
    /// Most blocks one eth_getLogs of the deposit and withdrawal-request scan asks for (halved
    /// while the endpoint refuses the range or the result size).
    #[arg(long, env = "SEALBRIDGE_LOG_CHUNK_BLOCKS")]
    pub log_chunk_blocks: Option<u64>,
    /// Submissions per second the gateway takes from one client (an IPv4 address or an IPv6
    /// /64); beyond it 429 with Retry-After. 0: no limit.
    #[arg(long, value_name = "PER_SEC", env = "SEALBRIDGE_RATE_LIMIT")]
    pub rate_limit: Option<u32>,
    /// Submissions one client may send at once after being idle (at least 1).
    #[arg(long, env = "SEALBRIDGE_RATE_LIMIT_BURST")]
    pub rate_limit_burst: Option<u32>,
    /// A policy change governance scheduled (`Settlement.schedulePolicy`): the new policy as
    /// JSON (the form of a deployment file's `policy`). Once the chain's pending policy is this
    /// one and its activation time has passed, the node has the enclave adopt it at the next
    /// statement boundary.
    #[arg(long, env = "SEALBRIDGE_NEXT_POLICY")]
    pub next_policy: Option<PathBuf>,
    /// The appraisal policies of the deployment's verifiers over time
    /// (`appraisal-policies.json`, docs/AUDIT.md), published at GET /v1/policies for auditors.
    /// A --dev node publishes its in-process verifiers' policy without it.
    #[arg(long, env = "SEALBRIDGE_APPRAISAL_POLICIES")]
    pub appraisal_policies: Option<PathBuf>,
    /// A witness (`sealbridge witness serve`) asked to cosign every new checkpoint, as
    /// VKEY@URL (the witness's key as `sealbridge witness init` prints it); repeat for each
    /// (environment: comma-separated). /checkpoint then carries their cosignatures.
    #[arg(long = "witness", env = "SEALBRIDGE_WITNESSES", value_delimiter = ',')]
    pub witnesses: Vec<String>,
    /// Seconds between two audits the node runs of its own public data, shown at GET /audit
    /// (the web audit view): the chain through --chain when it is a JSON-RPC URL, its log
    /// tiles, the evidence and policies it publishes. It audits at start, then only when the
    /// checkpoint or the contracts' events changed, and waits at least twice as long as the
    /// last audit took. Its verdict is the node's about itself; an independent one is
    /// `sealbridge audit --serve`. 0: off (/audit then says so).
    #[arg(long, value_name = "SECS", env = "SEALBRIDGE_SELF_AUDIT_INTERVAL")]
    pub self_audit_interval: Option<u64>,
}

/// Default data directory.
const DEFAULT_DATA_DIR: &str = "sealbridge-data";
/// Default listen address.
const DEFAULT_LISTEN: std::net::SocketAddr =
    std::net::SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 8080);

/// An option counts as given unless it is absent, `false` or an empty list (so a flag like
/// `--dev` or `--verifier` given nowhere leaves the file's value).
fn given(v: &Value) -> bool {
    !matches!(v, Value::Null | Value::Bool(false)) && v.as_array().is_none_or(|a| !a.is_empty())
}

fn to_map(o: &NodeOptions) -> Map<String, Value> {
    match serde_json::to_value(o) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

impl NodeOptions {
    /// The defaults: the CLI's own (chain, data dir, listen address, enclave) and
    /// [`NodeConfig::new`]'s.
    pub fn defaults() -> Self {
        let c = NodeConfig::new(PathBuf::from(DEFAULT_DATA_DIR), DEFAULT_LISTEN);
        Self {
            chain: Some("embedded".into()),
            data_dir: Some(c.data_dir),
            listen: Some(c.listen.to_string()),
            tls_cert: None,
            tls_key: None,
            enclave: Some("inproc".into()),
            enclave_host_key: None,
            dev: false,
            participants: Some(c.participants),
            batch_size: Some(c.batch_size),
            statement_validity_secs: Some(c.statement_validity_secs),
            exit_delay_secs: Some(c.exit_delay_secs),
            batch_interval_ms: Some(
                u64::try_from(c.batch_interval.as_millis()).unwrap_or(u64::MAX),
            ),
            confirmations: Some(c.confirmations),
            snapshot_every: Some(c.snapshot_every),
            snapshot_chunk_bytes: Some(c.snapshot_chunk_bytes),
            max_pending: Some(c.max_pending_statements),
            deployment: None,
            verifiers: Vec::new(),
            keyholders: Vec::new(),
            key_file: None,
            log_chunk_blocks: Some(c.log_chunk_blocks),
            rate_limit: Some(c.rate_limit_per_sec),
            rate_limit_burst: Some(c.rate_limit_burst),
            next_policy: None,
            appraisal_policies: None,
            witnesses: Vec::new(),
            self_audit_interval: Some(c.self_audit_interval.as_secs()),
        }
    }

    /// Read a configuration file (JSON, the field names as keys; unknown keys refused).
    pub fn from_file(path: &std::path::Path) -> anyhow::Result<Self> {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_slice(&bytes).with_context(|| {
            format!(
                "parsing {} (JSON; keys as in docs/NODE.md's configuration reference)",
                path.display()
            )
        })
    }

    /// `self` where given, else `below`.
    pub fn over(&self, below: &Self) -> anyhow::Result<Self> {
        let mut merged = to_map(below);
        for (k, v) in to_map(self) {
            if given(&v) {
                merged.insert(k, v);
            }
        }
        serde_json::from_value(Value::Object(merged)).context("merging the node configuration")
    }
}

/// The configuration resolved: the node's, and what the command itself still needs.
#[derive(Debug)]
pub struct Resolved {
    /// Every option after precedence and defaults.
    pub options: NodeOptions,
    /// The node's configuration.
    pub cfg: NodeConfig,
    /// `embedded` or a JSON-RPC URL.
    pub chain: String,
    /// Deployment file (not `--dev`).
    pub deployment: Option<PathBuf>,
    /// Key file (not `--dev`).
    pub key_file: Option<PathBuf>,
}

/// Resolve `cli` (flags and environment, as clap read them) over the file (if any) over the
/// defaults, and check the combination.
pub fn resolve(cli: &NodeOptions, file: Option<&NodeOptions>) -> anyhow::Result<Resolved> {
    let given = match file {
        Some(f) => cli.over(f)?,
        None => cli.clone(),
    };
    if given.dev {
        if given.deployment.is_some() || given.key_file.is_some() || !given.verifiers.is_empty() {
            bail!(
                "--dev deploys its own contracts and sends from the endpoint's unlocked \
                 accounts: it takes no --deployment, --key-file or --verifier"
            );
        }
    } else if given.participants.is_some()
        || given.batch_size.is_some()
        || given.statement_validity_secs.is_some()
        || given.exit_delay_secs.is_some()
    {
        bail!(
            "--participants, --batch-size, --statement-validity-secs and --exit-delay-secs \
             are --dev options: on a deployment the policy and the contracts in the \
             deployment file set them"
        );
    }
    let o = given.over(&NodeOptions::defaults())?;
    let data_dir = o
        .data_dir
        .clone()
        .unwrap_or_else(|| DEFAULT_DATA_DIR.into());
    let listen = match &o.listen {
        Some(l) => l.parse().context("--listen must be HOST:PORT")?,
        None => DEFAULT_LISTEN,
    };
    let mut cfg = NodeConfig::new(data_dir, listen);
    cfg.dev = o.dev;
    cfg.tls = match (&o.tls_cert, &o.tls_key) {
        (Some(cert), Some(key)) => Some(sealbridge_net::TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
        }),
        (None, None) => None,
        (Some(_), None) => bail!("--tls-cert needs --tls-key (the certificate's private key)"),
        (None, Some(_)) => bail!("--tls-key needs --tls-cert (the certificate chain it signs for)"),
    };
    if let Some(v) = o.participants {
        cfg.participants = v.clamp(2, 1000);
    }
    if let Some(v) = o.statement_validity_secs {
        if v == 0 {
            bail!("--statement-validity-secs must be at least 1");
        }
        cfg.statement_validity_secs = v;
    }
    if let Some(v) = o.exit_delay_secs {
        if v == 0 {
            bail!("--exit-delay-secs must be at least 1");
        }
        cfg.exit_delay_secs = v;
    }
    if let Some(v) = o.batch_size {
        cfg.batch_size = v.max(1);
    }
    if let Some(v) = o.batch_interval_ms {
        cfg.batch_interval = Duration::from_millis(v.max(1));
    }
    if let Some(v) = o.confirmations {
        cfg.confirmations = v.max(1);
    }
    if let Some(v) = o.snapshot_every {
        cfg.snapshot_every = v.max(1);
    }
    if let Some(v) = o.snapshot_chunk_bytes {
        let max = sealbridge_enclave::chunks::MAX_CHUNK_BYTES;
        if v == 0 || v > max {
            bail!("--snapshot-chunk-bytes must be between 1 and {max}, not {v}");
        }
        cfg.snapshot_chunk_bytes = v;
    }
    if let Some(v) = o.max_pending {
        cfg.max_pending_statements = v;
    }
    if let Some(v) = o.log_chunk_blocks {
        cfg.log_chunk_blocks = v.max(1);
    }
    if let Some(v) = o.rate_limit {
        cfg.rate_limit_per_sec = v;
    }
    if let Some(v) = o.rate_limit_burst {
        if v == 0 {
            bail!("--rate-limit-burst must be at least 1");
        }
        cfg.rate_limit_burst = v;
    }
    let enclave = o.enclave.as_deref().unwrap_or("inproc");
    cfg.enclave = match enclave {
        "inproc" => EnclaveMode::InProc,
        "spawn" => EnclaveMode::Spawn(std::env::current_exe().context("locating sealbridge")?),
        other => match EnclaveAddr::parse_connect(other) {
            Ok(EnclaveAddr::Unix(path)) => EnclaveMode::Unix(path),
            Ok(addr) => EnclaveMode::Connect {
                host_key: enclave_host_key(&addr, o.enclave_host_key.as_deref())?,
                addr,
            },
            Err(e) => bail!(
                "--enclave must be inproc, spawn, unix:PATH, tcp:HOST:PORT or vsock:CID:PORT: {e}"
            ),
        },
    };
    if o.enclave_host_key.is_some() && !matches!(cfg.enclave, EnclaveMode::Connect { .. }) {
        bail!(
            "--enclave-host-key is for --enclave tcp:HOST:PORT or vsock:CID:PORT (a Unix socket \
             is owner-only; a spawned or in-process enclave needs none)"
        );
    }
    cfg.verifiers = o.verifiers.clone();
    cfg.keyholders = o.keyholders.clone();
    cfg.witnesses = o
        .witnesses
        .iter()
        .map(|w| {
            w.parse()
                .map_err(|e: String| anyhow::anyhow!("--witness: {e}"))
        })
        .collect::<anyhow::Result<_>>()?;
    if let Some(path) = &o.appraisal_policies {
        // Read now: a file that does not parse stops the node before it starts.
        sealbridge_node::published::read_policies(path)?;
        cfg.appraisal_policies = Some(path.clone());
    }
    if let Some(path) = &o.next_policy {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading --next-policy {}", path.display()))?;
        let policy: sealbridge_enclave::EnclavePolicy = serde_json::from_str(&text)
            .with_context(|| format!("--next-policy {}: not a policy (JSON)", path.display()))?;
        policy
            .validate()
            .map_err(|e| anyhow::anyhow!("--next-policy {}: {e}", path.display()))?;
        cfg.next_policy = Some(policy);
    }
    if let Some(v) = o.self_audit_interval {
        cfg.self_audit_interval = Duration::from_secs(v);
    }
    let chain = o.chain.clone().unwrap_or_else(|| "embedded".into());
    // The node audits itself through its chain's endpoint; the embedded chain has none.
    if chain != "embedded" {
        cfg.self_audit_rpc = Some(chain.clone());
    }
    Ok(Resolved {
        chain,
        deployment: o.deployment.clone(),
        key_file: o.key_file.clone(),
        options: o,
        cfg,
    })
}

/// The reference of every option of `node` (a clap command built from `NodeArgs`): flag,
/// environment variable, file key, default and meaning, as a Markdown table.
pub fn reference(node: &clap::Command) -> String {
    let defaults = to_map(&NodeOptions::defaults());
    let file_keys = to_map(&NodeOptions::default());
    let mut node = node.clone();
    node.build();
    let mut out = String::from(
        "| flag | environment | file key | default | meaning |\n|---|---|---|---|---|\n",
    );
    for arg in node.get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        if long == "help" {
            continue;
        }
        let id = arg.get_id().as_str();
        let takes_value = arg.get_num_args().is_some_and(|n| n.takes_values());
        let flag = match arg.get_value_names().and_then(|v| v.first()) {
            Some(name) if takes_value => format!("`--{long} {name}`"),
            _ if takes_value => format!("`--{long} {}`", id.to_uppercase()),
            _ => format!("`--{long}`"),
        };
        let env = arg
            .get_env()
            .map_or("—".to_string(), |e| format!("`{}`", e.to_string_lossy()));
        let key = if file_keys.contains_key(id) {
            format!("`{id}`")
        } else if arg.get_env().is_some() {
            "—".to_string()
        } else {
            "— (command line only)".to_string()
        };
        let clap_default = arg
            .get_default_values()
            .first()
            .map(|v| match v.to_string_lossy() {
                f if f == "false" => "off".to_string(),
                v => format!("`{v}`"),
            });
        let default = match defaults.get(id) {
            None if clap_default.is_some() => clap_default.unwrap_or_default(),
            Some(Value::Null) | None => "—".to_string(),
            Some(Value::Bool(false)) => "off".to_string(),
            Some(Value::Array(a)) if a.is_empty() => "—".to_string(),
            Some(Value::String(s)) => format!("`{s}`"),
            Some(v) => format!("`{v}`"),
        };
        let help = arg
            .get_long_help()
            .or_else(|| arg.get_help())
            .map(|h| h.to_string())
            .unwrap_or_default()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .replace('|', "\\|");
        out.push_str(&format!(
            "| {flag} | {env} | {key} | {default} | {help} |\n"
        ));
    }
    out
}

/// `--enclave-host-key` for an enclave at `addr`: required for TCP, optional for vsock.
fn enclave_host_key(
    addr: &EnclaveAddr,
    file: Option<&std::path::Path>,
) -> anyhow::Result<Option<sealbridge_core::link::HostKey>> {
    match (file, addr) {
        (Some(path), _) => Ok(Some(sealbridge_core::link::HostKey::read(path)?)),
        (None, EnclaveAddr::Tcp { .. }) => bail!(
            "--enclave {addr} needs --enclave-host-key FILE, the key the enclave was started \
             with (--host-key): any local user can connect to a TCP port, or bind it while the \
             enclave is down"
        ),
        (None, _) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(json: Value) -> NodeOptions {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn given_values_win_and_absent_ones_fall_through() {
        let cli = opts(serde_json::json!({ "listen": "127.0.0.1:1", "verifiers": [] }));
        let file = opts(serde_json::json!({
            "listen": "127.0.0.1:2", "batch_interval_ms": 7, "dev": true
        }));
        let r = resolve(&cli, Some(&file)).unwrap();
        assert_eq!(r.cfg.listen.port(), 1);
        assert_eq!(r.cfg.batch_interval, Duration::from_millis(7));
        assert!(r.cfg.dev);
        // An empty list on the command line leaves the file's.
        let file = opts(serde_json::json!({ "verifiers": ["http://v"] }));
        let r = resolve(&opts(serde_json::json!({})), Some(&file)).unwrap();
        assert_eq!(r.cfg.verifiers, ["http://v"]);
        assert_eq!(r.cfg.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
        assert_eq!(r.chain, "embedded");
    }

    #[test]
    fn tls_needs_both_files() {
        let cert = opts(serde_json::json!({ "tls_cert": "c.pem" }));
        let err = resolve(&cert, None).unwrap_err().to_string();
        assert!(err.contains("--tls-cert needs --tls-key"), "{err}");
        let key = opts(serde_json::json!({ "tls_key": "k.pem" }));
        let err = resolve(&key, None).unwrap_err().to_string();
        assert!(err.contains("--tls-key needs --tls-cert"), "{err}");
        let both = opts(serde_json::json!({ "tls_cert": "c.pem", "tls_key": "k.pem" }));
        let tls = resolve(&both, None).unwrap().cfg.tls.unwrap();
        assert_eq!((tls.cert, tls.key), ("c.pem".into(), "k.pem".into()));
    }

    #[test]
    fn dev_only_options_are_refused_on_a_deployment_even_from_the_file() {
        let file = opts(serde_json::json!({ "batch_size": 3 }));
        let err = resolve(&NodeOptions::default(), Some(&file)).unwrap_err();
        assert!(err.to_string().contains("are --dev options"), "{err}");
    }

    #[test]
    fn the_rate_limit_comes_from_the_file_and_zero_turns_it_off() {
        let d = resolve(&NodeOptions::default(), None).unwrap().cfg;
        assert!(d.rate_limit_per_sec > 0, "on by default");
        let file = opts(serde_json::json!({ "rate_limit": 0, "rate_limit_burst": 7 }));
        let r = resolve(&NodeOptions::default(), Some(&file)).unwrap().cfg;
        assert_eq!((r.rate_limit_per_sec, r.rate_limit_burst), (0, 7));
        let bad = opts(serde_json::json!({ "rate_limit_burst": 0 }));
        let err = resolve(&bad, None).unwrap_err().to_string();
        assert!(
            err.contains("--rate-limit-burst must be at least 1"),
            "{err}"
        );
    }

    #[test]
    fn the_node_audits_itself_through_its_json_rpc_chain_unless_told_not_to() {
        let d = resolve(&NodeOptions::default(), None).unwrap().cfg;
        assert_eq!(d.self_audit_rpc, None, "the embedded chain has no endpoint");
        assert_eq!(d.self_audit_interval, Duration::from_secs(10));
        let rpc = opts(serde_json::json!({ "chain": "http://127.0.0.1:8545" }));
        let r = resolve(&rpc, None).unwrap().cfg;
        assert_eq!(r.self_audit_rpc.as_deref(), Some("http://127.0.0.1:8545"));
        let off = opts(serde_json::json!({ "chain": "http://h:1", "self_audit_interval": 0 }));
        assert!(
            resolve(&off, None)
                .unwrap()
                .cfg
                .self_audit_interval
                .is_zero()
        );
    }

    #[test]
    fn an_unknown_file_key_is_refused() {
        let err =
            serde_json::from_value::<NodeOptions>(serde_json::json!({ "lisen": "x" })).unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
    }
}

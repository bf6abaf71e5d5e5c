//! `sealbridge deploy`: deploy the governance timelock, `EnclaveRegistry` and `Settlement`
//! (optionally the `TestToken`) from a deployment config and write the deployment file that
//! `sealbridge node --deployment` and `sealbridge gov` read. Outside `--dev` it refuses a
//! config whose governance is not a timelock outlasting the exit delay. Logic in
//! `sealbridge_deploy`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use alloy_primitives::Address;
use anyhow::{Context, bail};
use sealbridge_chain::{Chain, rpc::RpcChain};
use sealbridge_deploy::{DeployConfig, DeployOptions, deploy, governance::in_words};

/// Arguments of `sealbridge deploy`.
#[derive(Debug, Clone, clap::Args)]
pub struct DeployArgs {
    /// JSON-RPC endpoint of the settlement chain.
    #[arg(long)]
    pub chain: String,
    /// Deployment config (JSON; see docs/NODE.md).
    #[arg(long)]
    pub config: PathBuf,
    /// Where to write the deployment file (refused if it exists).
    #[arg(long)]
    pub out: PathBuf,
    /// The deployer's secp256k1 key (hex); it pays for the deployment and holds no role
    /// afterwards. Never printed. Without it: the endpoint's first unlocked account
    /// (development chains).
    #[arg(long)]
    pub key_file: Option<PathBuf>,
    /// A development deployment: governance may be a plain account ("governance") whose
    /// changes are immediate, the guardian may be missing, the delays may be short. Never for
    /// anything of value.
    #[arg(long)]
    pub dev: bool,
    /// Let the registry accept the simulated TEE when the config asks for it. INSECURE: anyone
    /// can fake a simulated enclave. Tests and demonstrations only.
    #[arg(long)]
    pub insecure_allow_simulated: bool,
    /// Print the deployment file as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Read a secp256k1 key file (hex), for the account this process sends transactions from.
/// Warns when other users can read it.
pub(crate) fn read_key(path: &Path) -> anyhow::Result<k256::ecdsa::SigningKey> {
    warn_if_shared(path);
    crate::verifier_cmd::load_key(path).with_context(|| format!("key file {}", path.display()))
}

/// A secret key file should be readable by its owner only.
pub(crate) fn warn_if_shared(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(m) = std::fs::metadata(path)
        && m.permissions().mode() & 0o077 != 0
    {
        eprintln!(
            "warning: key file {} is accessible to other users (mode {:o}); chmod 600 it",
            path.display(),
            m.permissions().mode() & 0o777
        );
    }
}

/// The account this process sends its transactions from on `rpc`: the key's, with
/// transactions signed locally (EIP-1559), or without a key the endpoint's first unlocked
/// account (development chains). Refused if it cannot pay for gas.
pub(crate) fn sending_account(
    rpc: &mut RpcChain,
    key: Option<k256::ecdsa::SigningKey>,
) -> anyhow::Result<Address> {
    let account = match key {
        Some(key) => rpc.add_local_key(key),
        None => {
            let first = rpc
                .accounts()
                .context("listing the endpoint's unlocked accounts")?
                .first()
                .copied();
            first.context(
                "the endpoint holds no unlocked account: pass --key-file with the sending key",
            )?
        }
    };
    if rpc
        .balance(account)
        .context("reading the sender's balance")?
        .is_zero()
    {
        bail!("account {account} has no funds on this chain to pay for its transactions");
    }
    Ok(account)
}

fn list(addresses: &[Address]) -> String {
    addresses
        .iter()
        .map(|a| {
            if *a == Address::ZERO {
                "anyone".to_string()
            } else {
                a.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Run `sealbridge deploy`.
pub fn run(args: &DeployArgs) -> anyhow::Result<ExitCode> {
    crate::node_cmd::init_tracing();
    let config = DeployConfig::from_json(
        &std::fs::read(&args.config)
            .with_context(|| format!("reading {}", args.config.display()))?,
    )?;
    let opts = DeployOptions {
        dev: args.dev,
        insecure_allow_simulated: args.insecure_allow_simulated,
    };
    config.validate(&opts)?;
    if args.out.exists() {
        bail!(
            "{} exists: refusing to overwrite a deployment file",
            args.out.display()
        );
    }
    let key = args.key_file.as_deref().map(read_key).transpose()?;
    let mut rpc = RpcChain::connect(&args.chain)
        .with_context(|| format!("connecting to {}", crate::endpoint::endpoint(&args.chain)))?;
    let deployer = sending_account(&mut rpc, key)?;
    let (_, file) = deploy(rpc, deployer, &config, &opts)?;
    let json = serde_json::to_string_pretty(&file)?;
    std::fs::write(&args.out, format!("{json}\n"))
        .with_context(|| format!("writing {}", args.out.display()))?;
    if args.json {
        println!("{json}");
    } else {
        let governance = match &file.timelock {
            Some(t) => format!(
                "SealbridgeTimelock {} (delay {}; proposers {}; executors {})",
                t.address,
                in_words(t.min_delay_secs),
                list(&t.proposers),
                list(&t.executors)
            ),
            None => format!(
                "the account {} (--dev: its changes take effect at once)",
                file.governance
            ),
        };
        println!(
            "deployed on chain {}: EnclaveRegistry {}, Settlement {}{}; governed by {governance}; \
             guardian {}; exit delay {}; policy hash {}; wrote {}",
            file.chain_id,
            file.registry,
            file.settlement,
            file.test_token
                .map(|t| format!(", TestToken {t}"))
                .unwrap_or_default(),
            file.guardian
                .map_or_else(|| "none".to_string(), |g| g.to_string()),
            in_words(file.exit_delay_secs),
            file.policy_hash,
            args.out.display()
        );
        if file.allow_simulated {
            eprintln!("WARNING: this registry accepts the simulated TEE (INSECURE)");
        }
    }
    Ok(ExitCode::SUCCESS)
}

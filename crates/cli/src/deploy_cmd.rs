//! `sealbridge deploy`: deploy the governance timelock, `EnclaveRegistry` and `Settlement`
//! (optionally the `TestToken`) from a deployment config and write the deployment file that
//! `sealbridge node --deployment` and `sealbridge gov` read. Outside `--dev` it refuses a
//! config whose governance is not a timelock outlasting the exit delay. Logic in
//! `sealbridge_deploy`.

use std::path::PathBuf;
use std::process::ExitCode;

use alloy_primitives::Address;
use anyhow::{Context, bail};
use sealbridge_chain::rpc::RpcChain;
use sealbridge_deploy::{DeployConfig, DeployOptions, deploy, governance::in_words};

use crate::common::{init_tracing, read_key, sending_account};

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
    init_tracing();
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

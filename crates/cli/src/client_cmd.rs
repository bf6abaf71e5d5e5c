//! `sealbridge client`, `sealbridge status` and `sealbridge load`: the node's HTTP API from the
//! command line. Clients check the enclave's attestation against a policy before sealing.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use sealbridge_attest::Policy;
use sealbridge_host::{client::NodeClient, dev::participants, unix_now};
use sealbridge_programs::netting::Obligation;

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
    #[command(subcommand)]
    pub command: ClientCommand,
}

/// `sealbridge client` subcommands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum ClientCommand {
    /// Fetch the enclave's evidence for a fresh challenge and appraise it.
    Attest,
    /// Seal an obligation from a development participant and submit it.
    Submit {
        /// Sending participant (index).
        #[arg(long)]
        from: u32,
        /// Receiving participant (index).
        #[arg(long)]
        to: u32,
        /// Amount of the test token.
        #[arg(long)]
        amount: u128,
    },
    /// Fetch a receipt and check its inclusion proof.
    Receipt {
        /// Envelope id (hex).
        envelope_id: String,
    },
}

/// Run `sealbridge client`.
pub fn run(args: &ClientArgs) -> anyhow::Result<ExitCode> {
    let c = NodeClient::new(&args.node);
    let mut rng = ChaCha20Rng::from_entropy();
    match &args.command {
        ClientCommand::Attest => {
            let a = c.attest(&args.policy.policy()?, unix_now(), &mut rng)?;
            println!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({
                    "appraisal": "passed",
                    "address": a.key_bundle.address,
                    "instance_id": a.instance.to_hex(),
                    "measurement": a.measurement,
                    "epoch": a.epoch.0,
                    "settlement": a.info["settlement"],
                }))?
            );
        }
        ClientCommand::Submit { from, to, amount } => {
            let a = c.attest(&args.policy.policy()?, unix_now(), &mut rng)?;
            let n = a.info["participants"].as_u64().context("participants")? as u32;
            if *from >= n || *to >= n || from == to {
                bail!("participants are 0..{n}, and from must differ from to");
            }
            let ps = participants(n);
            let token = a.info["token"]
                .as_str()
                .context("token")?
                .parse()
                .context("token address")?;
            let ob = Obligation {
                to: ps[*to as usize].account,
                token,
                amount: *amount,
            };
            let env = a.seal(
                &ps[*from as usize].key,
                &ob.encode(),
                unix_now(),
                600,
                &mut rng,
            )?;
            let (status, v) = c.submit(&env, 10)?;
            println!("{}", serde_json::to_string_pretty(&v)?);
            if status != 200 {
                return Ok(ExitCode::from(1));
            }
        }
        ClientCommand::Receipt { envelope_id } => {
            let mut id = [0u8; 32];
            hex::decode_to_slice(envelope_id.trim_start_matches("0x"), &mut id)
                .context("an envelope id is 32 bytes of hex")?;
            let (v, proof) = c.receipt(&id)?;
            println!("{}", serde_json::to_string_pretty(&v)?);
            match proof {
                Some(true) => eprintln!("inclusion proof: verified"),
                Some(false) => {
                    eprintln!("inclusion proof: DOES NOT VERIFY");
                    return Ok(ExitCode::from(1));
                }
                None => eprintln!("inclusion proof: not yet (no checkpoint covers it)"),
            }
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
    let s = NodeClient::new(&args.node).status()?;
    if args.json {
        println!("{}", serde_json::to_string(&s)?);
    } else {
        for k in [
            "health",
            "relayer_error",
            "deep_reorg",
            "deposit_scan_error",
            "accepted",
            "rejected",
            "settled_inputs",
            "pending_inputs",
            "last_settled_sequence",
            "last_signed_sequence",
            "enclave_state_root",
            "chain_state_root",
            "log_size",
            "last_included_sequence",
            "chain_head",
            "confirmations",
            "deposit_cursor",
        ] {
            // Older nodes lack some fields; an empty error or alarm is not worth a line.
            let quiet = ["relayer_error", "deep_reorg", "deposit_scan_error"].contains(&k);
            if s[k].is_null() && (quiet || s.get(k).is_none()) {
                continue;
            }
            println!("{k:>22}: {}", s[k]);
        }
    }
    Ok(ExitCode::SUCCESS)
}

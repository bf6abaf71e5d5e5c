//! `sealbridge keyholder …`: one keyholder of a deployment's sealing root (key custody, issue 12
//! part 3; docs/PROTOCOL.md "Key custody"). A simulated TEE: its key and the shares it holds are
//! sealed at rest under `INSECURE-simulated-root-secret` in its data directory.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use alloy_primitives::Address;
use anyhow::Context;
use clap::{Args, Subcommand};
use sealbridge_attest::Policy;
use sealbridge_chain::{Chain, rpc::RpcChain};
use sealbridge_enclave::SettlementTarget;
use serde_json::json;

use crate::common::{init_tracing, read_file};

/// `sealbridge keyholder`.
#[derive(Debug, Args)]
pub struct KeyholderArgs {
    #[command(subcommand)]
    command: KeyholderCommand,
}

#[derive(Debug, Subcommand)]
enum KeyholderCommand {
    /// Create the keyholder's HPKE key in DIR (kept if it exists) and print its public id, the
    /// `{"hpke_pk", "tee"}` entry a policy's custody names.
    Init {
        /// The keyholder's data directory.
        #[arg(long)]
        data_dir: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Serve `GET /v1/keyholder`, `GET /v1/challenge`, `POST /v1/shares`,
    /// `POST /v1/shares/commit` and `POST /v1/release` for one deployment.
    Serve(Box<ServeArgs>),
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// The keyholder's data directory (after `keyholder init`).
    #[arg(long)]
    data_dir: PathBuf,
    /// JSON-RPC endpoint of the settlement chain (`Settlement.measurementAllowed` is read there
    /// for every release: the chain is the source of truth).
    #[arg(long)]
    rpc: String,
    /// The deployment's Settlement contract.
    #[arg(long)]
    settlement: Address,
    /// Appraisal policy (JSON, docs/ATTESTATION.md).
    #[arg(long, conflicts_with = "allow_simulated")]
    policy: Option<PathBuf>,
    /// Accept the simulated TEE (INSECURE: development only).
    #[arg(long)]
    allow_simulated: bool,
    /// HTTP listen address.
    #[arg(long, default_value = "127.0.0.1:8095")]
    listen: String,
    /// Serve HTTPS with this certificate chain (PEM).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// Where the collateral of SGX, TDX and SEV-SNP evidence comes from (`--pcs`, `--kds`):
    /// without them only the simulated TEE and Nitro can be appraised.
    #[command(flatten)]
    fetch: crate::attest_cmd::FetchArgs,
}

/// Run `sealbridge keyholder …`.
pub fn run(args: &KeyholderArgs) -> anyhow::Result<ExitCode> {
    match &args.command {
        KeyholderCommand::Init { data_dir, json } => {
            let (id, created) = sealbridge_keyholder::init(data_dir)?;
            let pk = format!("0x{}", hex::encode(id.hpke_pk));
            if *json {
                println!(
                    "{}",
                    json!({"hpke_pk": pk, "tee": id.tee, "created": created})
                );
            } else {
                println!(
                    "keyholder {} (tee {}, simulated: its secrets are sealed under {}/INSECURE-simulated-root-secret){}",
                    pk,
                    id.tee,
                    data_dir.display(),
                    if created { "" } else { "; already initialised" }
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        KeyholderCommand::Serve(a) => serve(a),
    }
}

fn serve(a: &ServeArgs) -> anyhow::Result<ExitCode> {
    init_tracing();
    let listen: std::net::SocketAddr = a.listen.parse().context("--listen must be HOST:PORT")?;
    if a.rpc == "embedded" {
        anyhow::bail!(
            "--rpc embedded: the embedded chain lives inside one node's process; a keyholder \
             reads the chain through a JSON-RPC endpoint"
        );
    }
    let appraisal = match (&a.policy, a.allow_simulated) {
        (Some(p), _) => Policy::from_json(&read_file(p)?)?,
        (None, true) => Policy::insecure_dev(),
        (None, false) => anyhow::bail!("give --policy FILE (or --allow-simulated for development)"),
    };
    let chain = RpcChain::connect(&a.rpc).map_err(|e| anyhow::anyhow!("--rpc {}: {e}", a.rpc))?;
    let chain_id = chain
        .chain_id()
        .map_err(|e| anyhow::anyhow!("--rpc {}: {e}", a.rpc))?;
    let target = SettlementTarget {
        chain_id,
        settlement: a.settlement,
    };
    let keyholder = sealbridge_keyholder::Keyholder::open(
        &a.data_dir,
        target,
        appraisal,
        Some(Box::new(sealbridge_keyholder::ChainView::new(
            chain,
            a.settlement,
        ))),
    )?;
    let keyholder = match a.fetch.source()? {
        Some(src) => keyholder.with_collateral_source(Arc::new(src)),
        None => keyholder,
    };
    let id = keyholder.id();
    let tls = match (&a.tls_cert, &a.tls_key) {
        (Some(cert), Some(key)) => Some(sealbridge_net::TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
        }),
        _ => None,
    };
    let served = sealbridge_keyholder::serve(Arc::new(keyholder), listen, tls.as_ref())?;
    if a.json {
        println!(
            "{}",
            json!({"url": served.url(), "hpke_pk": format!("0x{}", hex::encode(id.hpke_pk)), "chain_id": chain_id, "settlement": a.settlement})
        );
    } else {
        println!(
            "sealbridge keyholder: {} (key 0x{}, chain {chain_id}, settlement {})",
            served.url(),
            hex::encode(id.hpke_pk),
            a.settlement
        );
    }
    served.wait();
    Ok(ExitCode::SUCCESS)
}

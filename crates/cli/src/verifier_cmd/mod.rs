//! `sealbridge verifier …`: the verifier role. Appraise an enclave's evidence and sign the
//! attestation result (EIP-712) that `EnclaveRegistry.register` accepts from k of n verifiers.

use std::path::PathBuf;
use std::process::ExitCode;

use alloy_primitives::{Address, B256};
use anyhow::Context;
use clap::{Args, Subcommand};
use sealbridge_attest::Policy;
use sealbridge_attest::verifier::{Challenge, KeyBinding, VerifierRole};
use serde_json::json;

use crate::attest_cmd::load_fetching;
use crate::common::{init_tracing, load_key, read_file, warn_if_shared};
use crate::evidence::EvidenceArgs;

/// `sealbridge verifier`.
#[derive(Debug, Args)]
pub struct VerifierArgs {
    #[command(subcommand)]
    command: VerifierCommand,
}

#[derive(Debug, Subcommand)]
enum VerifierCommand {
    /// Print the on-chain address of a verifier key (a file holding the secp256k1 key in hex).
    Address {
        /// Key file.
        #[arg(long)]
        key: PathBuf,
    },
    /// Appraise evidence and print the signed attestation result as JSON.
    Attest(Box<AttestArgs>),
    /// Serve `POST /v1/appraise` and `GET /v1/verifier` over HTTP (HTTPS with --tls-cert and
    /// --tls-key): appraise an enclave's evidence
    /// under this verifier's policy and answer with the signed attestation result.
    Serve(Box<ServeArgs>),
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Verifier key file (secp256k1 secret, hex). Never printed.
    #[arg(long)]
    key: PathBuf,
    /// Appraisal policy (JSON, docs/ATTESTATION.md). Required: a service states its policy.
    #[arg(long)]
    policy: PathBuf,
    /// Settlement chain id the results are signed for.
    #[arg(long)]
    chain_id: u64,
    /// EnclaveRegistry address the results are signed for.
    #[arg(long)]
    registry: Address,
    /// HTTP listen address.
    #[arg(long, default_value = "127.0.0.1:8090")]
    listen: String,
    /// Serve HTTPS with this certificate chain (PEM, the server's certificate first).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key (PEM: PKCS#8, PKCS#1 or SEC1) of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Result lifetime in seconds (shortened to the collateral's expiry).
    #[arg(long, default_value_t = sealbridge_attest::verifier::DEFAULT_RESULT_TTL)]
    ttl: u64,
    /// Largest accepted difference between a proposed issued_at and this machine's clock.
    #[arg(long, default_value_t = sealbridge_verifier::service::DEFAULT_MAX_SKEW)]
    max_skew_secs: u64,
    /// JSON-RPC endpoint of the settlement chain (must be --chain-id). With it the verifier
    /// approves a policy change it reads pending on chain (`POST /v1/policy-approval`); without
    /// it, it approves none and an enclave whose policy names it cannot change policy through it.
    #[arg(long)]
    rpc: Option<String>,
    #[command(flatten)]
    fetch: crate::attest_cmd::FetchArgs,
    /// `GET /metrics` counts collateral pieces expiring within this many days.
    #[arg(long, default_value_t = 7)]
    collateral_warn_days: u64,
}

fn serve(a: &ServeArgs) -> anyhow::Result<ExitCode> {
    init_tracing();
    let listen: std::net::SocketAddr = a.listen.parse().context("--listen must be HOST:PORT")?;
    let policy = read_file(&a.policy)?;
    warn_if_shared(&a.key);
    let service = sealbridge_verifier::service::VerifierService::new(
        load_key(&a.key)?,
        &policy,
        a.chain_id,
        a.registry,
    )
    .with_context(|| format!("policy {}", a.policy.display()))?
    .with_ttl(a.ttl)
    .with_max_skew(a.max_skew_secs);
    let service = match &a.rpc {
        Some(url) => {
            let chain =
                sealbridge_chain::RpcChain::connect(url).with_context(|| format!("--rpc {url}"))?;
            let id = sealbridge_chain::Chain::chain_id(&chain)
                .with_context(|| format!("reading the chain id from {url}"))?;
            anyhow::ensure!(
                id == a.chain_id,
                "--rpc {url} is chain {id}, not --chain-id {}",
                a.chain_id
            );
            service.with_chain(std::sync::Arc::new(
                sealbridge_verifier::policy_approval::ChainView::new(chain),
            ))
        }
        None => service,
    };
    let service = match a.fetch.source()? {
        Some(src) => service.with_collateral_source(
            std::sync::Arc::new(src),
            a.collateral_warn_days.saturating_mul(86_400),
        ),
        None => service,
    };
    let info = service.info();
    let tls = match (&a.tls_cert, &a.tls_key) {
        (Some(cert), Some(key)) => Some(sealbridge_net::TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
        }),
        _ => None,
    };
    let served = sealbridge_verifier::service::serve_with(service, listen, tls.as_ref())?;
    eprintln!(
        "sealbridge verifier: {} (verifier {}, policy {}, registry {} on chain {})",
        served.url(),
        info.address,
        info.policy_hash,
        info.registry,
        info.chain_id
    );
    served.wait_for_signal()?;
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Args)]
struct AttestArgs {
    /// Verifier key file (secp256k1 secret, hex).
    #[arg(long)]
    key: PathBuf,
    #[command(flatten)]
    input: EvidenceArgs,
    /// Appraisal policy (JSON). Default: production-strict.
    #[arg(long)]
    policy: Option<PathBuf>,
    /// Key binding JSON: {key_bundle, key_bundle_hash, enclave, ed25519_key} (hex).
    #[arg(long)]
    binding: PathBuf,
    /// Challenge block number.
    #[arg(long)]
    challenge_block: u64,
    /// Challenge block hash (hex).
    #[arg(long)]
    challenge: B256,
    /// Settlement chain id.
    #[arg(long)]
    chain_id: u64,
    /// EnclaveRegistry address.
    #[arg(long)]
    registry: Address,
    /// Result lifetime in seconds (shortened to the collateral's expiry).
    #[arg(long, default_value_t = sealbridge_attest::verifier::DEFAULT_RESULT_TTL)]
    ttl: u64,
    #[command(flatten)]
    fetch: crate::attest_cmd::FetchArgs,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct BindingFile {
    key_bundle: String,
    key_bundle_hash: B256,
    enclave: Address,
    ed25519_key: B256,
}

/// Run `sealbridge verifier`.
pub fn run(args: &VerifierArgs) -> anyhow::Result<ExitCode> {
    match &args.command {
        VerifierCommand::Serve(a) => serve(a),
        VerifierCommand::Address { key } => {
            println!("{}", Address::from_private_key(&load_key(key)?));
            Ok(ExitCode::SUCCESS)
        }
        VerifierCommand::Attest(a) => {
            let role = VerifierRole::new(
                load_key(&a.key)?,
                match &a.policy {
                    Some(p) => Policy::from_json(&read_file(p)?)?,
                    None => Policy::default(),
                },
            )
            .with_ttl(a.ttl);
            let b: BindingFile =
                serde_json::from_slice(&read_file(&a.binding)?).context("binding JSON")?;
            let binding = KeyBinding {
                key_bundle: hex::decode(b.key_bundle.trim_start_matches("0x"))
                    .context("key_bundle is not hex")?,
                key_bundle_hash: b.key_bundle_hash,
                enclave: b.enclave,
                ed25519_key: b.ed25519_key,
            };
            let (evidence, collateral) = load_fetching(&a.input, &a.fetch)?;
            let challenge = Challenge {
                block: a.challenge_block,
                hash: a.challenge,
            };
            match role.attest(
                &evidence,
                &collateral,
                &binding,
                challenge,
                a.input.at,
                a.chain_id,
                a.registry,
            ) {
                Ok(s) => {
                    println!(
                        "{}",
                        json!({
                            "result": s.result,
                            "signer": s.signer,
                            "signature": format!("0x{}", hex::encode(&s.signature)),
                        })
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    println!(
                        "{}",
                        json!({ "verdict": "invalid", "reason": e.to_string(), "rule": e.rule() })
                    );
                    Ok(ExitCode::from(1))
                }
            }
        }
    }
}

//! `sealbridge witness …`: a C2SP tlog-witness for Sealbridge logs (issue 13 part 2,
//! `sealbridge-witness`; docs/AUDIT.md "Witnesses").

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use sealbridge_log::NoteVerifier;
use serde_json::json;

use crate::common::init_tracing;

/// `sealbridge witness`.
#[derive(Debug, Args)]
pub struct WitnessArgs {
    #[command(subcommand)]
    command: WitnessCommand,
}

#[derive(Debug, Subcommand)]
enum WitnessCommand {
    /// Create the witness's Ed25519 key in DIR (kept if it exists) and print its vkey, the
    /// `VKEY` of a node's `--witness VKEY@URL` and of an auditor's `--witness VKEY`.
    Init {
        /// The witness's data directory.
        #[arg(long)]
        data_dir: PathBuf,
        /// The witness's name (its key name in cosignatures), e.g. `witness.example.org`.
        #[arg(long)]
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Serve `POST /add-checkpoint` (c2sp.org/tlog-witness) and `GET /witness`.
    Serve(ServeArgs),
    /// The note verifier key of a node's log (`origin+keyid+base64(0x01 || key)`), from the
    /// node's `/v1/enclave`: what `serve --log` takes. The node is trusted for it here: check
    /// the Ed25519 key against the registration on chain (`sealbridge audit` does) before
    /// witnessing a production log.
    LogVkey {
        /// The node's base URL.
        #[arg(long)]
        node: String,
    },
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// The witness's data directory (after `witness init`).
    #[arg(long)]
    data_dir: PathBuf,
    /// A log to witness: its note verifier key (`sealbridge witness log-vkey`); repeat for each
    /// log, and for each key of one log (a handover's successor signs with another key).
    #[arg(long = "log", required = true)]
    logs: Vec<String>,
    /// HTTP listen address.
    #[arg(long, default_value = "127.0.0.1:8097")]
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
}

/// Run `sealbridge witness …`.
pub fn run(args: &WitnessArgs) -> anyhow::Result<ExitCode> {
    match &args.command {
        WitnessCommand::Init {
            data_dir,
            name,
            json,
        } => {
            let (vkey, created) = sealbridge_witness::init(data_dir, name)?;
            if *json {
                println!("{}", json!({"vkey": vkey, "created": created}));
            } else {
                println!(
                    "{vkey}{}",
                    if created {
                        ""
                    } else {
                        "  (already initialised)"
                    }
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        WitnessCommand::Serve(a) => serve(a),
        WitnessCommand::LogVkey { node } => {
            let c = sealbridge_client::NodeClient::new(node);
            let (status, info) = c
                .get_json("/v1/enclave")
                .with_context(|| format!("GET {node}/v1/enclave"))?;
            anyhow::ensure!(status == 200, "GET {node}/v1/enclave: HTTP {status}");
            let field = |k: &str| {
                info[k]
                    .as_str()
                    .map(str::to_string)
                    .with_context(|| format!("{node}/v1/enclave has no {k}"))
            };
            let settlement: alloy_primitives::Address = field("settlement")?.parse()?;
            let chain_id = info["chain_id"]
                .as_u64()
                .context("/v1/enclave has no chain_id")?;
            let mut key = [0u8; 32];
            hex::decode_to_slice(field("ed25519")?.trim_start_matches("0x"), &mut key)
                .context("/v1/enclave: ed25519 is not 32 bytes of hex")?;
            let origin = sealbridge_enclave::checkpoint::log_origin(chain_id, settlement);
            println!("{}", NoteVerifier::new(&origin, &key)?.to_vkey());
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn serve(a: &ServeArgs) -> anyhow::Result<ExitCode> {
    init_tracing();
    let listen: std::net::SocketAddr = a.listen.parse().context("--listen must be HOST:PORT")?;
    let logs = a
        .logs
        .iter()
        .map(|v| NoteVerifier::from_vkey(v).with_context(|| format!("--log {v:?}: not a log vkey")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let witness = sealbridge_witness::Witness::open(&a.data_dir, &logs).with_context(|| {
        format!(
            "opening the witness in {} (witness init first)",
            a.data_dir.display()
        )
    })?;
    let vkey = witness.key().to_vkey();
    let tls = match (&a.tls_cert, &a.tls_key) {
        (Some(cert), Some(key)) => Some(sealbridge_net::TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
        }),
        _ => None,
    };
    let served = sealbridge_witness::serve(witness, listen, tls.as_ref())?;
    if a.json {
        println!("{}", json!({"url": served.url(), "vkey": vkey}));
    } else {
        println!("sealbridge witness: {} ({vkey})", served.url());
    }
    served.wait();
    Ok(ExitCode::SUCCESS)
}

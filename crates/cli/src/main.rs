//! `sealbridge` — the command-line entry point. A thin shell over the library crates.
#![forbid(unsafe_code)]

mod attest_cmd;
mod audit_cmd;
mod bench_cmd;
mod client_cmd;
mod common;
mod demo;
mod deploy_cmd;
mod docs_cmd;
mod endpoint;
mod evidence;
mod gov_cmd;
mod keyholder_cmd;
mod load_cmd;
mod measure_cmd;
mod node_cmd;
mod sandbox_cmd;
mod tee;
mod telemetry;
mod verifier_cmd;
mod witness_cmd;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "sealbridge",
    version,
    about = "Confidential computing with exactly-once settlement on EVM chains"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the whole system once, in process: simulated enclave, embedded EVM chain, netting.
    Demo(demo::DemoArgs),
    /// Measure enclave throughput, raw X25519 speed and settlement gas per batch size.
    Bench(bench_cmd::BenchArgs),
    /// Verify, inspect and check the collateral of TEE attestation evidence.
    Attest(attest_cmd::AttestArgs),
    /// The verifier role: appraise evidence and sign attestation results (EIP-712).
    Verifier(verifier_cmd::VerifierArgs),
    /// A keyholder: hold one share of a deployment's sealing root, release it only to an
    /// attested enclave the chain allows.
    Keyholder(keyholder_cmd::KeyholderArgs),
    /// A witness: cosign a log's checkpoints (C2SP tlog-witness), refusing any checkpoint
    /// inconsistent with one it cosigned.
    Witness(witness_cmd::WitnessArgs),
    /// The measurement a registry must allow for a build, per TEE recipe, computed offline
    /// (simulated; SGX from a Gramine SIGSTRUCT; TDX, SEV-SNP and Nitro from their registers).
    Measure(measure_cmd::MeasureArgs),
    /// Audit a deployment from public data: chain events, log tiles, evidence and policy.
    Audit(audit_cmd::AuditArgs),
    /// Transparency log: inclusion proofs of receipts against the latest checkpoint.
    Log(audit_cmd::LogArgs),
    /// Deploy EnclaveRegistry and Settlement from a deployment config; write the deployment file.
    Deploy(deploy_cmd::DeployArgs),
    /// Drive a deployment's governance timelock: schedule, list, execute, cancel changes.
    Gov(gov_cmd::GovArgs),
    /// Run a node: HTTP gateway, durable storage, enclave, relayer (see docs/NODE.md).
    Node(Box<node_cmd::NodeArgs>),
    /// Run the enclave as its own process, serving the boundary protocol on a Unix socket, TCP
    /// or vsock.
    Enclave(node_cmd::EnclaveArgs),
    /// Talk to a node: appraise its enclave, submit, fetch receipts with inclusion proofs.
    Client(client_cmd::ClientArgs),
    /// Generate load against a node and report throughput and receipt latency.
    Load(load_cmd::LoadArgs),
    /// A node's accepted, settled and pending inputs, sequences and roots.
    Status(client_cmd::StatusArgs),
    /// Run adversarial scenarios against the real bytecode and report whether the system held.
    Sandbox(sandbox_cmd::SandboxArgs),
    /// Print the shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(docs_cmd::CompletionsArgs),
    /// Print the man page, or write one per command with --out DIR.
    Man(docs_cmd::ManArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo(args) => demo::run(&args),
        Command::Bench(args) => bench_cmd::run(&args),
        Command::Attest(args) => attest_cmd::run(&args),
        Command::Verifier(args) => verifier_cmd::run(&args),
        Command::Keyholder(args) => keyholder_cmd::run(&args),
        Command::Witness(args) => witness_cmd::run(&args),
        Command::Measure(args) => measure_cmd::run(&args),
        Command::Audit(args) => audit_cmd::run(&args),
        Command::Log(args) => audit_cmd::run_log(&args),
        Command::Deploy(args) => deploy_cmd::run(&args),
        Command::Gov(args) => gov_cmd::run(&args),
        Command::Node(args) => node_cmd::run(&args),
        Command::Enclave(args) => node_cmd::run_enclave(&args),
        Command::Client(args) => client_cmd::run(&args),
        Command::Load(args) => load_cmd::run(&args),
        Command::Status(args) => client_cmd::run_status(&args),
        Command::Sandbox(args) => sandbox_cmd::run(&args),
        Command::Completions(args) => docs_cmd::completions(&args, Cli::command()),
        Command::Man(args) => docs_cmd::man(&args, Cli::command()),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}

//! `sealbridge` — the command-line entry point. A thin shell over the library crates.
#![forbid(unsafe_code)]

mod attest_cmd;
mod audit_cmd;
mod bench_cmd;
mod demo;
mod verifier_cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
    /// Audit a deployment from public data: chain events, log tiles, evidence and policy.
    Audit(audit_cmd::AuditArgs),
    /// Transparency log: inclusion proofs of receipts against the latest checkpoint.
    Log(audit_cmd::LogArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo(args) => demo::run(&args),
        Command::Bench(args) => bench_cmd::run(&args),
        Command::Attest(args) => attest_cmd::run(&args),
        Command::Verifier(args) => verifier_cmd::run(&args),
        Command::Audit(args) => audit_cmd::run(&args),
        Command::Log(args) => audit_cmd::run_log(&args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}

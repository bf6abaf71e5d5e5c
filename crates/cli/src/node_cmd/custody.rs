//! `sealbridge node rotate-root` (key custody, issue 12 part 3; docs/OPERATIONS.md "Compromised
//! keyholder"): a thin shell over `sealbridge_node::custody::rotate_root`.
//!
//! It runs on the data directory of a **stopped** node, taking its lock (`node.lock`), like
//! `node upgrade`, rather than as an endpoint of the running node: the rotation needs the core
//! quiet between the commit and the snapshot stored alone under the new root, a stopped node
//! needs no authenticated admin endpoint (none exists), and the data directory's lock already
//! keeps a node from starting meanwhile.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use sealbridge_deploy::dev::WallClockChain;

use super::{NodeOptions, config};
use crate::common::LogArgs;

/// Arguments of `sealbridge node rotate-root`.
#[derive(Debug, Clone, clap::Args)]
pub struct RotateRootArgs {
    /// Configuration file of the node (as for `sealbridge node`).
    #[arg(long, env = "SEALBRIDGE_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub options: NodeOptions,
    #[command(flatten)]
    pub log: LogArgs,
    /// Print the report as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    /// Leave this keyholder (its URL, as configured) out of the rotation: the enclave seals it
    /// no share of the new generation, so a compromised or unreachable keyholder cannot block
    /// its own revocation. Repeat for several; at least the threshold must remain. A keyholder
    /// left out gets a share again from a later rotation that does not name it.
    #[arg(long = "without", value_name = "KEYHOLDER_URL")]
    pub without: Vec<String>,
}

/// `sealbridge node rotate-root …`.
pub fn run_rotate_root(args: &RotateRootArgs) -> anyhow::Result<ExitCode> {
    let file = args
        .config
        .as_deref()
        .map(NodeOptions::from_file)
        .transpose()?;
    let config::Resolved { cfg, chain, .. } = config::resolve(&args.options, file.as_ref())?;
    let _telemetry = args.log.init()?;
    // Before the embedded chain's journal would be created in an empty directory.
    sealbridge_node::custody::require_state(&cfg)?;
    let mut progress = |line: &str| eprintln!("rotate-root: {line}");
    let report = if chain == "embedded" {
        sealbridge_node::custody::rotate_root(
            &cfg,
            WallClockChain::open(&cfg.data_dir)?,
            &args.without,
            &mut progress,
        )?
    } else {
        let rpc = sealbridge_chain::rpc::RpcChain::connect(&chain)
            .with_context(|| format!("connecting to {}", crate::endpoint::endpoint(&chain)))?;
        sealbridge_node::custody::rotate_root(&cfg, rpc, &args.without, &mut progress)?
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "sealing root rotated to generation {} (root id {}) in {} ms",
            report.generation, report.root_id, report.elapsed_ms
        );
        if !report.old_generation_still_held_by.is_empty() {
            println!(
                "{} keyholder(s) did not confirm dropping the older generations (see --json): \
                 they keep those shares until the next rotation's commit reaches them",
                report.old_generation_still_held_by.len()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

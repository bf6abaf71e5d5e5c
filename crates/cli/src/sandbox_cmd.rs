//! `sealbridge sandbox`: run the adversarial scenarios of `sealbridge-sandbox` against the real
//! bytecode and report, per scenario, whether the system held (docs/SANDBOX.md).
//!
//! Progress goes to stderr; stdout carries a table, or with `--json` exactly one object
//! `{"scenarios": [{"name", "threat", "held", "evidence"}], "held": N, "broken": N}`. Exit 0 iff
//! every scenario held, 1 if any broke, 2 for a usage error (an unknown scenario, an unreachable
//! chain).

use std::{process::ExitCode, time::Instant};

use anyhow::bail;
use sealbridge_sandbox::{ChainSpec, Report, SandboxChain, Scenario, ScenarioReport};

/// Arguments of `sealbridge sandbox`.
#[derive(Debug, Clone, clap::Args)]
pub struct SandboxArgs {
    /// The scenario to run, or `all`.
    #[arg(long, default_value = "all", value_name = "NAME|all")]
    pub scenario: String,
    /// `embedded` (a fresh in-process chain per scenario) or the URL of a JSON-RPC development
    /// node such as anvil (a fresh deployment per scenario).
    #[arg(long, default_value = "embedded", value_name = "embedded|URL")]
    pub chain: ChainSpec,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// Run the scenarios; exit 0 iff every one held.
pub fn run(args: &SandboxArgs) -> anyhow::Result<ExitCode> {
    let chosen: Vec<&'static dyn Scenario> = if args.scenario == "all" {
        sealbridge_sandbox::scenarios()
    } else {
        match sealbridge_sandbox::find(&args.scenario) {
            Some(s) => vec![s],
            None => bail!(
                "unknown scenario `{}`; the scenarios are: all, {}",
                args.scenario,
                sealbridge_sandbox::names().join(", ")
            ),
        }
    };
    if let Err(e) = SandboxChain::open(&args.chain) {
        bail!("chain {}: {e}", args.chain);
    }

    let total = chosen.len();
    let mut lines = Vec::with_capacity(total);
    let mut times = Vec::with_capacity(total);
    for (i, s) in chosen.into_iter().enumerate() {
        eprintln!("==> [{}/{total}] {}", i + 1, s.name());
        let started = Instant::now();
        let line = sealbridge_sandbox::run(s, &args.chain, &|step| eprintln!("    {step}"));
        let elapsed = started.elapsed();
        eprintln!(
            "    {} ({:.2} s)",
            if line.held { "held" } else { "BROKEN" },
            elapsed.as_secs_f64()
        );
        times.push(elapsed.as_secs_f64());
        lines.push(line);
    }
    let report = Report::new(lines);
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_table(&report, &times, &args.chain);
    }
    Ok(if report.broken == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Checks passed and made, from a scenario's evidence.
fn checks(line: &ScenarioReport) -> (usize, usize) {
    line.evidence["checks"]
        .as_object()
        .map(|c| {
            (
                c.values().filter(|v| v.as_bool() == Some(true)).count(),
                c.len(),
            )
        })
        .unwrap_or((0, 0))
}

fn print_table(report: &Report, times: &[f64], chain: &ChainSpec) {
    let width = report
        .scenarios
        .iter()
        .map(|s| s.name.len())
        .max()
        .unwrap_or(8)
        .max(8);
    println!();
    println!("{:<width$}  result  checks   time", "scenario");
    for (line, secs) in report.scenarios.iter().zip(times) {
        let (passed, made) = checks(line);
        println!(
            "{:<width$}  {:<6}  {:>6}  {secs:>5.2}s",
            line.name,
            if line.held { "held" } else { "BROKEN" },
            format!("{passed}/{made}"),
        );
    }
    for line in report.scenarios.iter().filter(|s| !s.held) {
        println!();
        println!("{} — {}", line.name, line.threat);
        if let Some(error) = line.evidence["error"].as_str() {
            println!("  could not be carried out: {error}");
        }
        if let Some(checks) = line.evidence["checks"].as_object() {
            for (name, _) in checks.iter().filter(|(_, v)| v.as_bool() != Some(true)) {
                println!("  failed: {name}");
            }
        }
    }
    println!();
    println!(
        "{} held, {} broken on {chain} (--json for the evidence)",
        report.held, report.broken
    );
}

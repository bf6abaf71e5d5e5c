//! `sealbridge completions SHELL` and `sealbridge man`: shell completions and man pages
//! generated from the CLI definition itself, so they cannot drift from it.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

/// Arguments of `sealbridge completions`.
#[derive(Debug, Clone, clap::Args)]
pub struct CompletionsArgs {
    /// The shell: bash, zsh, fish, elvish or powershell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Arguments of `sealbridge man`.
#[derive(Debug, Clone, clap::Args)]
pub struct ManArgs {
    /// Write one page per command and subcommand (sealbridge.1, sealbridge-node.1, …) into
    /// this directory instead of printing the top page (roff) on stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Print the completion script of `cmd` for a shell (e.g. `sealbridge completions bash >
/// /etc/bash_completion.d/sealbridge`).
pub fn completions(args: &CompletionsArgs, mut cmd: clap::Command) -> anyhow::Result<ExitCode> {
    let name = cmd.get_name().to_string();
    clap_complete::generate(args.shell, &mut cmd, name, &mut std::io::stdout());
    Ok(ExitCode::SUCCESS)
}

/// Print the man page of `cmd`, or write every page into `--out`.
pub fn man(args: &ManArgs, cmd: clap::Command) -> anyhow::Result<ExitCode> {
    match &args.out {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            clap_mangen::generate_to(cmd, dir)
                .with_context(|| format!("writing man pages into {}", dir.display()))?;
            eprintln!(
                "wrote the man pages into {} (read one with `man -l {}/sealbridge.1`)",
                dir.display(),
                dir.display()
            );
        }
        None => clap_mangen::Man::new(cmd)
            .render(&mut std::io::stdout())
            .context("writing the man page")?,
    }
    Ok(ExitCode::SUCCESS)
}

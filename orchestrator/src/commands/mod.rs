//! One function per subcommand.

use std::process::ExitCode;

use crate::cli::{Cli, Command};

mod plan;
mod prs;
mod validate;

/// Run a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::Validate => validate::run(&cli),
        Command::Plan {
            release,
            ring: Some(ring),
            diff: true,
            ..
        } => plan::diff(&cli, release.as_deref().unwrap_or_default(), ring),
        Command::Plan { release, at, .. } => plan::run(&cli, release.as_deref(), *at),
        Command::Prs => prs::list(&cli),
        Command::Approve { rollout, ring, who } => {
            prs::approve(&cli, rollout, ring, who.as_deref())
        }
    }
}

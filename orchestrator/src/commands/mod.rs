//! One function per subcommand.

use std::process::ExitCode;

use crate::cli::{Cli, Command};

mod daemon;
#[cfg(feature = "demo")]
mod demo;
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
        Command::Plan {
            release,
            preflight: true,
            ..
        } => plan::preflight(&cli, release.as_deref()),
        Command::Plan { release, at, .. } => plan::run(&cli, release.as_deref(), *at),
        Command::Run { once } => daemon::run(&cli, *once),
        Command::Status => daemon::status(&cli),
        Command::History { rollout } => daemon::history(&cli, rollout),
        Command::Resume { rollout, who } => {
            daemon::control(&cli, daemon::Control::Resume(rollout), who.as_deref())
        }
        Command::Pause {
            rollout,
            reason,
            who,
        } => daemon::control(
            &cli,
            daemon::Control::Pause(rollout, reason),
            who.as_deref(),
        ),
        Command::Abort {
            rollout,
            reason,
            revert,
            who,
        } => daemon::control(
            &cli,
            daemon::Control::Abort(rollout, reason, *revert),
            who.as_deref(),
        ),
        Command::Freeze { until, reason, who } => daemon::control(
            &cli,
            daemon::Control::Freeze(*until, reason),
            who.as_deref(),
        ),
        Command::Unfreeze { who } => {
            daemon::control(&cli, daemon::Control::Unfreeze, who.as_deref())
        }
        #[cfg(feature = "demo")]
        Command::Demo {
            no_fault,
            keep,
            speed,
        } => demo::run(&demo::DemoOptions {
            no_fault: *no_fault,
            keep: *keep,
            speed: *speed,
        }),
        #[cfg(not(feature = "demo"))]
        Command::Demo { .. } => anyhow::bail!(
            "this ringmaster was built without the demo (cargo feature `demo`, on by default); `cargo run -p orchestrator -- demo` from a checkout runs it"
        ),
        Command::Prs => prs::list(&cli),
        Command::Approve { rollout, ring, who } => {
            prs::approve(&cli, rollout, ring, who.as_deref())
        }
    }
}

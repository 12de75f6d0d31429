//! Command-line interface (DESIGN §9): exit 0 ok, 1 error, 2 usage.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand, ValueEnum};

/// Upgrade fleets of Kubernetes clusters ring by ring through GitOps.
#[derive(Debug, Parser)]
#[command(name = "ringmaster", version, about, propagate_version = true)]
pub struct Cli {
    /// The settings file.
    #[arg(
        long,
        global = true,
        default_value = "ringmaster.yaml",
        value_name = "PATH"
    )]
    pub config: PathBuf,
    /// Output format of read commands.
    #[arg(long, global = true, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// For people.
    Table,
    /// For programs.
    Json,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check ringmaster.yaml, the ring file, the releases and the fleet registry; report every problem.
    Validate,
    /// Show what each release would do to each ring, and when (from the registry as committed now).
    Plan {
        /// Only this release.
        #[arg(long, value_name = "NAME")]
        release: Option<String>,
        /// Evaluate at this instant instead of now (RFC 3339).
        #[arg(long, value_name = "RFC3339", value_parser = parse_instant)]
        at: Option<DateTime<Utc>>,
        /// With --diff: the ring whose next step to show.
        #[arg(long, value_name = "NAME", requires = "diff")]
        ring: Option<String>,
        /// Print the unified diff the ring's next step would commit (needs --release and --ring).
        #[arg(long, requires_all = ["release", "ring"])]
        diff: bool,
    },
    /// List the open pull requests of the built-in local forge.
    Prs,
    /// Approve the open pull request of a ring (local forge), for its current head.
    Approve {
        /// The rollout (release name).
        rollout: String,
        /// The ring.
        ring: String,
        /// Who approves (default: $USER).
        #[arg(long = "as", value_name = "NAME")]
        who: Option<String>,
    },
}

fn parse_instant(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("`{s}` is not an RFC 3339 instant like 2026-11-24T09:00:00Z: {e}"))
}

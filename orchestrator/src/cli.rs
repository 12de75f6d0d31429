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
    /// Log lines of the daemon: `plain` for people, `json` for log pipelines: every stderr line
    /// one flat JSON object with `ts` (RFC 3339), `level` (info, warn, error) and `msg`, plus,
    /// when they apply, `rollout`, `ring`, `cluster`, `kind` (journal event), `actor` and `at`
    /// (when the journal event happened), all strings at the top level.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Plain)]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Log formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// `2026-11-24T09:00:00Z k8s-1.33 sandbox prOpen step 1: …`
    Plain,
    /// `{"ts":"…","level":"info","msg":"…","rollout":"k8s-1.33","ring":"sandbox","kind":"prOpen"}`
    Json,
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
        /// Run each ring's next-step preflight against the live clusters (kubeconfig) and print it.
        #[arg(long, conflicts_with = "diff")]
        preflight: bool,
    },
    /// Run the daemon: take every release through the rings until stopped (SIGINT/SIGTERM).
    Run {
        /// One reconcile pass, then exit (cron-style use, tests).
        #[arg(long)]
        once: bool,
    },
    /// The ring × rollout matrix: phase, PR, next window, gates, forecast.
    Status,
    /// The journal of a rollout, with timestamps.
    History {
        /// The rollout (release name).
        rollout: String,
    },
    /// Resume a halted rollout (its ring's gates run again from zero) or a paused one.
    Resume {
        /// The rollout.
        rollout: String,
        /// Who (default: $USER).
        #[arg(long = "as", value_name = "NAME")]
        who: Option<String>,
    },
    /// Pause a rollout: no new PR and no merge until `resume`; soaks keep measuring.
    Pause {
        /// The rollout.
        rollout: String,
        /// Why (recorded in the journal).
        #[arg(long, default_value = "paused by an operator")]
        reason: String,
        /// Who (default: $USER).
        #[arg(long = "as", value_name = "NAME")]
        who: Option<String>,
    },
    /// Stop a rollout for good; with --revert, open PRs restoring the versions it changed.
    Abort {
        /// The rollout.
        rollout: String,
        /// Also restore the add-on and policy versions of every ring it merged, newest ring first.
        #[arg(long)]
        revert: bool,
        /// Why (recorded in the journal).
        #[arg(long, default_value = "aborted by an operator")]
        reason: String,
        /// Who (default: $USER).
        #[arg(long = "as", value_name = "NAME")]
        who: Option<String>,
    },
    /// Global kill switch: no new PR and no merge anywhere until the given instant.
    Freeze {
        /// Until when (RFC 3339).
        #[arg(long, value_name = "RFC3339", value_parser = parse_instant)]
        until: DateTime<Utc>,
        /// Why.
        #[arg(long)]
        reason: String,
        /// Who (default: $USER).
        #[arg(long = "as", value_name = "NAME")]
        who: Option<String>,
    },
    /// Lift the global freeze.
    Unfreeze {
        /// Who (default: $USER).
        #[arg(long = "as", value_name = "NAME")]
        who: Option<String>,
    },
    /// The whole product in one command: a temporary GitOps repo, a simulated fleet, a
    /// Kubernetes minor through four rings, and a gate failure that halts it.
    Demo {
        /// No injected fault: the rollout completes.
        #[arg(long)]
        no_fault: bool,
        /// Keep the temporary directory to look around afterwards.
        #[arg(long)]
        keep: bool,
        /// Soaks are this many times shorter (default 1: a few seconds each).
        #[arg(long, default_value_t = 1.0)]
        speed: f64,
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

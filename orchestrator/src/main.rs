//! `ringmaster`: upgrades fleets of Kubernetes clusters ring by ring through GitOps.

use std::process::ExitCode;

use clap::Parser;

mod cli;
mod commands;
mod output;
mod repo;

fn main() -> ExitCode {
    // One rustls crypto provider for the whole process (octocrab and, later, kube): install it
    // before any client is built so that no dependency has to guess.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = cli::Cli::parse();
    let json = cli.log_format == cli::LogFormat::Json;
    output::set_log_json(json);
    if json {
        // One JSON object per line on stderr, with the rollout / ring / cluster spans the
        // event happened in. (Plain logs are ringmaster's own lines; libraries stay quiet.)
        tracing_subscriber::fmt()
            .json()
            .with_writer(std::io::stderr)
            .with_current_span(true)
            .with_span_list(true)
            .flatten_event(true)
            .with_target(false)
            .init();
    }
    match commands::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

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
    output::set_log_json(cli.log_format == cli::LogFormat::Json);
    match commands::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

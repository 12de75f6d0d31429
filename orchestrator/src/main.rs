//! `ringmaster`: upgrades fleets of Kubernetes clusters ring by ring through GitOps.

use std::process::ExitCode;

use clap::Parser;

mod cli;
mod commands;
mod output;
mod repo;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match commands::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

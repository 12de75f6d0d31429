//! `ringmaster`: upgrades fleets of Kubernetes clusters ring by ring through GitOps.

use std::process::ExitCode;

use clap::Parser;

mod cli;
mod commands;
mod logging;
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
        // One flat JSON object per line on stderr (see `logging`), ringmaster's lines and any
        // library event at info or above alike.
        logging::init_json();
    }
    match commands::run(cli) {
        Ok(code) => code,
        Err(e) if json => {
            // The last line of a failed `run` is a log line like the others.
            output::log("error", &[], &format!("{e:#}"));
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

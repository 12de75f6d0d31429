//! `ringmaster plan`.

use std::io::Write as _;
use std::process::ExitCode;

use chrono::{DateTime, Utc};

use crate::cli::{Cli, Output};
use crate::output::{plan_table, print_diagnostics};

pub fn run(
    cli: &Cli,
    release: Option<&str>,
    at: Option<DateTime<Utc>>,
) -> anyhow::Result<ExitCode> {
    let loaded = match rings::load(&cli.config) {
        Ok(l) => l,
        Err(diags) => {
            print_diagnostics(&diags);
            eprintln!(
                "{} is invalid; run `ringmaster validate` for the full report",
                cli.config.display()
            );
            return Ok(ExitCode::from(1));
        }
    };
    let config = &loaded.config;
    if let Some(name) = release
        && config.release(name).is_none()
    {
        let known: Vec<&str> = config.releases.iter().map(|r| r.name.as_str()).collect();
        eprintln!(
            "error: no release named `{name}` (releases: {})",
            known.join(", ")
        );
        return Ok(ExitCode::from(1));
    }
    let at = at.unwrap_or_else(Utc::now);
    let plan = policies::plan::plan(config, at, release);
    // Warnings (coverage gaps, empty rings) go to stderr so that JSON on stdout stays clean.
    print_diagnostics(&loaded.warnings);
    match cli.output {
        Output::Json => {
            // Streamed: the JSON of a 100,000-cluster plan is hundreds of megabytes.
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            serde_json::to_writer_pretty(&mut out, &plan)?;
            writeln!(out)?;
            out.flush()?;
        }
        Output::Table => print!("{}", plan_table(&plan, config)),
    }
    Ok(ExitCode::SUCCESS)
}

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

/// `plan --release R --ring NAME --diff`: the unified diff of the ring's next step, built in
/// memory against the base branch head (nothing is written to any repository).
pub fn diff(cli: &Cli, release: &str, ring: &str) -> anyhow::Result<ExitCode> {
    let Some(source) = crate::repo::open_base(&cli.config)? else {
        return Ok(ExitCode::from(1));
    };
    let loaded = match source.load(&cli.config) {
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
    print_diagnostics(&loaded.warnings);
    let config = &loaded.config;
    let Some(rel) = config.release(release) else {
        let known: Vec<&str> = config.releases.iter().map(|r| r.name.as_str()).collect();
        eprintln!(
            "error: no release named `{release}` (releases: {})",
            known.join(", ")
        );
        return Ok(ExitCode::from(1));
    };
    let Some(ring_index) = config
        .ring_set
        .rings
        .iter()
        .position(|r| r.name.as_str() == ring)
    else {
        let known: Vec<&str> = config
            .ring_set
            .rings
            .iter()
            .map(|r| r.name.as_str())
            .collect();
        eprintln!(
            "error: no ring named `{ring}` (rings: {})",
            known.join(", ")
        );
        return Ok(ExitCode::from(1));
    };
    source.in_memory()?;
    let request = orchestrator::gitops::StepRequest {
        config,
        release: rel,
        ring_index,
        step: 1,
        time: Utc::now(),
    };
    let author = &config.settings.author;
    match orchestrator::gitops::prepare_in(
        source.repo(),
        source.base(),
        &request,
        (&author.0, &author.1),
    ) {
        Ok(Some(step)) => {
            print!(
                "{}",
                orchestrator::gitops::diff_in(source.repo(), step.base, step.commit)?
            );
            for (id, why) in &step.left_out {
                eprintln!("note: {id} is left out: {why}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Ok(None) => {
            eprintln!("ring `{ring}` has nothing to change for release `{release}`");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("error: release `{release}`, ring `{ring}`: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

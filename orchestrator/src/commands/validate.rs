//! `ringmaster validate`.

use std::process::ExitCode;

use serde_json::json;

use crate::cli::{Cli, Output};
use crate::output::{diagnostics_json, print_diagnostics};

pub fn run(cli: &Cli) -> anyhow::Result<ExitCode> {
    match rings::load(&cli.config) {
        Ok(loaded) => {
            let c = &loaded.config;
            let summary = format!(
                "ok: {} clusters, {} rings, {} releases (registry {}@{} at {})",
                c.fleet.clusters.len(),
                c.ring_set.rings.len(),
                c.releases.len(),
                rings::load::redact_url(&c.settings.gitops.url),
                c.settings.gitops.branch,
                short(&c.fleet.commit),
            );
            match cli.output {
                Output::Table => {
                    print_diagnostics(&loaded.warnings);
                    println!("{summary}");
                }
                Output::Json => {
                    let v = json!({
                        "ok": true,
                        "clusters": c.fleet.clusters.len(),
                        "rings": c.ring_set.rings.len(),
                        "releases": c.releases.len(),
                        "registryCommit": c.fleet.commit,
                        "diagnostics": diagnostics_json(&loaded.warnings),
                    });
                    println!("{}", serde_json::to_string_pretty(&v)?);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(diags) => {
            match cli.output {
                Output::Table => {
                    print_diagnostics(&diags);
                    let errors = diags.errors().count();
                    let warnings = diags.warnings().count();
                    eprintln!(
                        "{} invalid: {errors} error{}, {warnings} warning{}",
                        cli.config.display(),
                        if errors == 1 { "" } else { "s" },
                        if warnings == 1 { "" } else { "s" }
                    );
                }
                Output::Json => {
                    let v = json!({ "ok": false, "diagnostics": diagnostics_json(&diags) });
                    println!("{}", serde_json::to_string_pretty(&v)?);
                }
            }
            Ok(ExitCode::from(1))
        }
    }
}

pub fn short(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}

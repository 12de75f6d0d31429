//! `ringmaster validate`.

use std::process::ExitCode;

use serde_json::json;

use crate::cli::{Cli, Output};
use crate::output::{diagnostics_json, print_diagnostics};
use orchestrator::gitops::changes::{next_ring_step, planned_edits};

pub fn run(cli: &Cli) -> anyhow::Result<ExitCode> {
    // `load` does not look for secret files (a deployment's are mounted only in its pod);
    // `validate` runs where the daemon will and does.
    let loaded = rings::load(&cli.config).and_then(|loaded| {
        let missing = rings::load::missing_secret_files(&loaded.config.settings);
        if missing.has_errors() {
            let mut all = loaded.warnings;
            all.extend(missing);
            Err(all)
        } else {
            Ok(loaded)
        }
    });
    match loaded {
        Ok(loaded) => {
            let c = &loaded.config;
            let missing = missing_edit_targets(c);
            if !missing.is_empty() {
                match cli.output {
                    Output::Table => {
                        for m in &missing {
                            eprintln!("error: {m}");
                        }
                        eprintln!(
                            "{} invalid: {} edit target{} missing on {}@{} ({})",
                            cli.config.display(),
                            missing.len(),
                            if missing.len() == 1 { " is" } else { "s are" },
                            rings::load::redact_url(&c.settings.gitops.url),
                            c.settings.gitops.branch,
                            short(&c.fleet.commit)
                        );
                    }
                    Output::Json => {
                        let v = json!({ "ok": false, "missingEditTargets": missing });
                        println!("{}", serde_json::to_string_pretty(&v)?);
                    }
                }
                return Ok(ExitCode::from(1));
            }
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

/// The files the next step of every release in every ring would edit that do not exist on the
/// base branch (a Terraform file deleted, a cluster directory renamed): what the daemon would
/// block that ring on. Only a local GitOps repository is read (as the loader does).
fn missing_edit_targets(c: &rings::model::Config) -> Vec<String> {
    let rings::model::GitLocation::Local(path) = &c.settings.gitops.location else {
        return Vec::new();
    };
    let Ok(repo) = git2::Repository::open(path) else {
        return Vec::new();
    };
    let Some(tree) = git2::Oid::from_str(&c.fleet.commit)
        .ok()
        .and_then(|id| repo.find_commit(id).ok())
        .and_then(|commit| commit.tree().ok())
    else {
        return Vec::new();
    };
    let mut missing = std::collections::BTreeSet::new();
    for release in &c.releases {
        for (index, ring) in c.ring_set.rings.iter().enumerate() {
            let Ok(step) = next_ring_step(c, release, index) else {
                continue;
            };
            let Ok(edits) = planned_edits(c, &step) else {
                continue;
            };
            for e in edits {
                if tree.get_path(std::path::Path::new(&e.file)).is_err() {
                    missing.insert(format!(
                        "cluster `{}`: `{}` does not exist on the base branch ({}; release `{}`, ring `{}`)",
                        e.cluster, e.file, e.component, release.name, ring.name
                    ));
                }
            }
        }
    }
    missing.into_iter().collect()
}

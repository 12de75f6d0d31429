//! `ringmaster prs` and `ringmaster approve` (the built-in local forge): on the store, or
//! through the API of the running daemon that holds it, like `pause`.

use std::process::ExitCode;

use anyhow::Context as _;
use orchestrator::api::client;
use orchestrator::forge::local::{LocalForge, prs_table};
use rings::model::{ForgeSettings, GitLocation, Settings};

use super::daemon::{read_through_api, store_or_daemon, through_daemon};
use crate::cli::{Cli, Output};
use crate::output::print_diagnostics;

fn settings(cli: &Cli) -> Option<Settings> {
    match rings::load::load_settings(&cli.config) {
        Ok(s) => Some(s),
        Err(d) => {
            print_diagnostics(&d);
            None
        }
    }
}

fn local_only(s: &Settings) -> bool {
    if matches!(s.forge, ForgeSettings::GitHub(_)) {
        eprintln!(
            "error: this setup uses forge.github; its pull requests are on GitHub (label `ringmaster`)"
        );
        return false;
    }
    true
}

fn local_repo(s: &Settings) -> Option<&std::path::Path> {
    match &s.gitops.location {
        GitLocation::Local(path) => Some(path),
        GitLocation::Remote(_) => {
            eprintln!(
                "error: the local forge merges into a local GitOps repository; gitops.url `{}` is remote",
                s.gitops.url
            );
            None
        }
    }
}

fn forge<'a>(
    s: &Settings,
    store: &'a state::Store,
    repo: &std::path::Path,
) -> anyhow::Result<LocalForge<'a>> {
    let repo =
        git2::Repository::open(repo).with_context(|| format!("opening {}", repo.display()))?;
    Ok(LocalForge::new(store, repo, s.author.clone()))
}

/// `ringmaster prs`: from the store, or through the running daemon that holds it.
pub fn list(cli: &Cli) -> anyhow::Result<ExitCode> {
    let Some(s) = settings(cli) else {
        return Ok(ExitCode::from(1));
    };
    if !local_only(&s) {
        return Ok(ExitCode::from(1));
    }
    let Some(repo) = local_repo(&s) else {
        return Ok(ExitCode::from(1));
    };
    let prs = match store_or_daemon(&s)? {
        Some(store) => forge(&s, &store, repo)?.open_prs_json()?,
        None => match read_through_api(&s, "/api/v1/prs") {
            Ok(v) => v,
            Err(e) => {
                let locked = state::StoreError::Locked {
                    path: s.store_path.display().to_string(),
                };
                eprintln!(
                    "error: {locked}\n  and reading it through that daemon's API failed: {e}"
                );
                return Ok(ExitCode::from(1));
            }
        },
    };
    match cli.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&prs)?),
        Output::Table => print!("{}", prs_table(&prs)),
    }
    Ok(ExitCode::SUCCESS)
}

/// `ringmaster approve <rollout> <ring>`: on the store, or through the running daemon that
/// holds it (a `merge: manual` ring is approved without stopping the daemon).
pub fn approve(
    cli: &Cli,
    rollout: &str,
    ring: &str,
    who: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let Some(s) = settings(cli) else {
        return Ok(ExitCode::from(1));
    };
    if !local_only(&s) {
        return Ok(ExitCode::from(1));
    }
    let Some(repo) = local_repo(&s) else {
        return Ok(ExitCode::from(1));
    };
    let who = orchestrator::text::clean_name(
        &who.map(str::to_owned)
            .or_else(|| std::env::var("USER").ok())
            .unwrap_or_else(|| "reviewer".to_owned()),
    );
    let Some(store) = store_or_daemon(&s)? else {
        return through_daemon(cli, &s, &client::Request::Approve { rollout, ring }, &who);
    };
    match forge(&s, &store, repo)?.approve_ring(rollout, ring, &who, &who)? {
        Some(approved) => {
            println!("{}", approved.message(&who));
            Ok(ExitCode::SUCCESS)
        }
        None => {
            eprintln!(
                "error: no open pull request for rollout `{rollout}`, ring `{ring}` (see `ringmaster prs`)"
            );
            Ok(ExitCode::from(1))
        }
    }
}

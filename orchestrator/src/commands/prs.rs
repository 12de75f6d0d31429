//! `ringmaster prs` and `ringmaster approve` (the built-in local forge).

use std::process::ExitCode;

use anyhow::Context as _;
use rings::model::{ForgeSettings, GitLocation, Settings};
use serde_json::json;

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

/// `ringmaster prs`.
pub fn list(cli: &Cli) -> anyhow::Result<ExitCode> {
    let Some(s) = settings(cli) else {
        return Ok(ExitCode::from(1));
    };
    if !local_only(&s) {
        return Ok(ExitCode::from(1));
    }
    let store = state::Store::open(&s.store_path)?;
    let open: Vec<state::LocalPr> = store
        .local_prs()?
        .into_iter()
        .filter(|p| p.state == state::PrState::Open)
        .collect();
    match cli.output {
        Output::Json => {
            let v: Vec<_> = open
                .iter()
                .map(|p| {
                    json!({"number": p.number, "branch": p.branch, "base": p.base, "title": p.title, "head": p.head,
                           "labels": p.labels, "reviewers": p.reviewers,
                           "approvals": p.approvals.iter().map(|a| json!({"by": a.by, "sha": a.sha, "at": a.at})).collect::<Vec<_>>()})
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        Output::Table => {
            if open.is_empty() {
                println!("no open pull requests");
            }
            for p in &open {
                let approvals: Vec<&str> = p.approvals.iter().map(|a| a.by.as_str()).collect();
                println!(
                    "#{:<4} {}\n      {}  head {}  approvals: {}",
                    p.number,
                    p.title,
                    p.branch,
                    p.head.get(..12).unwrap_or(&p.head),
                    if approvals.is_empty() {
                        "none".to_owned()
                    } else {
                        approvals.join(", ")
                    }
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `ringmaster approve <rollout> <ring>`.
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
    let GitLocation::Local(repo_path) = &s.gitops.location else {
        eprintln!(
            "error: the local forge merges into a local GitOps repository; gitops.url `{}` is remote",
            s.gitops.url
        );
        return Ok(ExitCode::from(1));
    };
    let who = who
        .map(str::to_owned)
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "reviewer".to_owned());
    let store = state::Store::open(&s.store_path)?;
    let prefix = format!(
        "{}{rollout}/{ring}/",
        orchestrator::gitops::mirror::BRANCH_PREFIX
    );
    let mut candidates: Vec<state::LocalPr> = store
        .local_prs()?
        .into_iter()
        .filter(|p| p.state == state::PrState::Open && p.branch.starts_with(&prefix))
        .collect();
    candidates.sort_by_key(|p| p.number);
    let Some(pr) = candidates.pop() else {
        eprintln!(
            "error: no open pull request for rollout `{rollout}`, ring `{ring}` (see `ringmaster prs`)"
        );
        return Ok(ExitCode::from(1));
    };
    let repo = git2::Repository::open(repo_path)
        .with_context(|| format!("opening {}", repo_path.display()))?;
    let forge = orchestrator::forge::local::LocalForge::new(&store, repo, s.author.clone());
    let head = forge.approve(pr.number, &who)?;
    println!(
        "approved #{} ({}) at {} as {who}",
        pr.number,
        pr.branch,
        head.get(..12).unwrap_or(&head)
    );
    Ok(ExitCode::SUCCESS)
}

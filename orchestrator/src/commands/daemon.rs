//! `ringmaster run`, `status`, `history`, and the control commands (`resume`, `pause`, `abort`,
//! `freeze`, `unfreeze`) on the store.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use orchestrator::daemon::clock::{Clock, SystemClock};
use orchestrator::daemon::live::LiveProbe;
use orchestrator::daemon::probe::ClusterProbe;
use orchestrator::daemon::{Daemon, DaemonOptions, control, status};
use orchestrator::forge::Forge;
use orchestrator::forge::github::{GitHubForge, RetryPolicy};
use orchestrator::forge::local::LocalForge;
use orchestrator::gitops::MirrorGitOps;
use orchestrator::gitops::mirror::Mirror;
use rings::model::{ForgeSettings, GitLocation, Settings};

use crate::cli::{Cli, Output};
use crate::output::print_diagnostics;

/// The shortest sleep between passes (a due time in the past does not spin).
const MIN_SLEEP: Duration = Duration::from_millis(200);

fn settings(cli: &Cli) -> Option<Settings> {
    match rings::load::load_settings(&cli.config) {
        Ok(s) => Some(s),
        Err(d) => {
            print_diagnostics(&d);
            None
        }
    }
}

fn who(explicit: Option<&str>) -> String {
    explicit
        .map(str::to_owned)
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "operator".to_owned())
}

/// The configuration as committed, for forecasts (none when it does not load: the store
/// alone still answers).
fn config_for_reads(cli: &Cli) -> Option<rings::model::Config> {
    let base = crate::repo::open_base(&cli.config).ok().flatten()?;
    base.load(&cli.config).ok().map(|l| l.config)
}

fn print_new_events(store: &state::Store, seen: &mut std::collections::BTreeMap<String, usize>) {
    let Ok(rollouts) = store.rollouts() else {
        return;
    };
    for r in rollouts {
        let Ok(events) = store.journal(&r.name) else {
            continue;
        };
        let n = seen.entry(r.name.clone()).or_insert(0);
        for e in events.iter().skip(*n) {
            eprintln!(
                "{} {} {}{} {}",
                e.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                e.rollout,
                e.ring
                    .as_deref()
                    .map(|r| format!("{r} "))
                    .unwrap_or_default(),
                e.kind,
                e.message
            );
        }
        *n = events.len();
    }
}

async fn drive<F: Forge, P: ClusterProbe, C: Clock>(
    daemon: &mut Daemon<'_, F, P, C>,
    once: bool,
    interval: Duration,
) -> anyhow::Result<ExitCode> {
    let mut seen = std::collections::BTreeMap::new();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    loop {
        let started = std::time::Instant::now();
        let result = daemon.pass().await;
        print_new_events(daemon.store(), &mut seen);
        let sleep = match result {
            Ok(report) => {
                for w in &report.warnings {
                    eprintln!("warning: {w}");
                }
                let until_due = report
                    .next_due
                    .map(|d| (d - daemon.clock().now()).to_std().unwrap_or(MIN_SLEEP));
                until_due
                    .map_or(interval, |d| d.min(interval))
                    .max(MIN_SLEEP)
            }
            Err(e) => {
                if once {
                    return Err(e.into());
                }
                eprintln!(
                    "error: reconcile pass failed: {e}; retrying in {}s",
                    interval.as_secs()
                );
                interval
            }
        };
        let _ = started;
        if once {
            return Ok(ExitCode::SUCCESS);
        }
        tokio::select! {
            _ = tokio::time::sleep(sleep) => {}
            _ = tokio::signal::ctrl_c() => { eprintln!("stopping (SIGINT)"); return Ok(ExitCode::SUCCESS); }
            _ = term.recv() => { eprintln!("stopping (SIGTERM)"); return Ok(ExitCode::SUCCESS); }
        }
    }
}

/// `ringmaster run [--once]`.
pub fn run(cli: &Cli, once: bool) -> anyhow::Result<ExitCode> {
    let Some(s) = settings(cli) else {
        return Ok(ExitCode::from(1));
    };
    let store = state::Store::open(&s.store_path)?;
    let mirror = Mirror::open(&s.data_dir, &s.gitops.location, s.gitops.auth.clone())?;
    let gitops = MirrorGitOps::new(mirror, &s.gitops.branch, s.author.clone());
    let probe = LiveProbe(policies::probe::Probe::new(
        policies::probe::ProbeSettings {
            kubeconfig: s.kubeconfig.clone(),
            ..Default::default()
        },
    ));
    let interval = s
        .reconcile_interval
        .to_std()
        .unwrap_or(Duration::from_secs(30));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        match &s.forge {
            ForgeSettings::Local => {
                let GitLocation::Local(path) = &s.gitops.location else {
                    anyhow::bail!(
                        "the local forge merges into a local GitOps repository; gitops.url `{}` is remote (use forge.github)",
                        s.gitops.url
                    );
                };
                let repo = git2::Repository::open(path)
                    .with_context(|| format!("opening {}", path.display()))?;
                let forge = LocalForge::new(&store, repo, s.author.clone());
                let options = DaemonOptions {
                    config_path: cli.config.clone(),
                    merge_approved: true,
                    pr_url_template: "local#{n}".to_owned(),
                };
                let mut daemon = Daemon::new(&store, forge, gitops, probe, SystemClock, options);
                drive(&mut daemon, once, interval).await
            }
            ForgeSettings::GitHub(g) => {
                let forge = GitHubForge::from_settings(g, RetryPolicy::default()).await?;
                let web = g
                    .api_url
                    .trim_end_matches('/')
                    .replace("https://api.github.com", "https://github.com")
                    .trim_end_matches("/api/v3")
                    .to_owned();
                let options = DaemonOptions {
                    config_path: cli.config.clone(),
                    merge_approved: false,
                    pr_url_template: format!("{web}/{}/{}/pull/{{n}}", g.owner, g.repo),
                };
                let mut daemon = Daemon::new(&store, forge, gitops, probe, SystemClock, options);
                drive(&mut daemon, once, interval).await
            }
        }
    })
}

/// `ringmaster status`.
pub fn status(cli: &Cli) -> anyhow::Result<ExitCode> {
    let Some(s) = settings(cli) else {
        return Ok(ExitCode::from(1));
    };
    let store = state::Store::open(&s.store_path)?;
    let config = config_for_reads(cli);
    let value = status::status_json(&store, config.as_ref(), Utc::now())?;
    match cli.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&value)?),
        Output::Table => print!("{}", status::status_table(&value)),
    }
    Ok(ExitCode::SUCCESS)
}

/// `ringmaster history <rollout>`.
pub fn history(cli: &Cli, rollout: &str) -> anyhow::Result<ExitCode> {
    let Some(s) = settings(cli) else {
        return Ok(ExitCode::from(1));
    };
    let store = state::Store::open(&s.store_path)?;
    if store.rollout(rollout)?.is_none() {
        eprintln!("error: no rollout named `{rollout}` (see `ringmaster status`)");
        return Ok(ExitCode::from(1));
    }
    let value = status::history_json(&store, rollout)?;
    match cli.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&value)?),
        Output::Table => print!("{}", status::history_table(&value)),
    }
    Ok(ExitCode::SUCCESS)
}

/// What a control command does.
pub enum Control<'a> {
    /// `resume <rollout>`.
    Resume(&'a str),
    /// `pause <rollout>`.
    Pause(&'a str, &'a str),
    /// `abort <rollout>`.
    Abort(&'a str, &'a str),
    /// `freeze --until T --reason R`.
    Freeze(DateTime<Utc>, &'a str),
    /// `unfreeze`.
    Unfreeze,
}

/// The control commands, on the store.
pub fn control(cli: &Cli, what: Control<'_>, by: Option<&str>) -> anyhow::Result<ExitCode> {
    let Some(s) = settings(cli) else {
        return Ok(ExitCode::from(1));
    };
    let store = state::Store::open(&s.store_path)?;
    let by = who(by);
    let now = Utc::now();
    let result = match what {
        Control::Resume(r) => {
            let config = config_for_reads(cli);
            control::resume(&store, config.as_ref(), r, &by, now)
        }
        Control::Pause(r, reason) => control::pause(&store, r, &by, reason, now),
        Control::Abort(r, reason) => control::abort(&store, r, &by, reason, now),
        Control::Freeze(until, reason) => control::freeze(&store, until, reason, &by, now),
        Control::Unfreeze => control::unfreeze(&store, &by, now),
    };
    match result {
        Ok(msg) => {
            println!("{msg} (takes effect at the next reconcile)");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

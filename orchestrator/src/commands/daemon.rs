//! `ringmaster run`, `status`, `history`, and the control commands (`resume`, `pause`, `abort`,
//! `freeze`, `unfreeze`): on the store, or through the API of the running daemon that holds it
//! (only when its lock is taken, and only after checking the daemon holds *this* store).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, TimeDelta, Utc};
use orchestrator::api::{self, Metrics, client};
use orchestrator::daemon::clock::{Clock, SystemClock};
use orchestrator::daemon::live::LiveProbe;
use orchestrator::daemon::probe::ClusterProbe;
use orchestrator::daemon::{Daemon, DaemonOptions, control, status};
use orchestrator::forge::Forge;
use orchestrator::forge::github::{GitHubForge, RetryPolicy};
use orchestrator::forge::local::LocalForge;
use orchestrator::gitops::MirrorGitOps;
use orchestrator::gitops::mirror::Mirror;
use orchestrator::secret::Secret;
use rings::model::{ForgeSettings, GitLocation, Settings};

use crate::cli::{Cli, Output};
use crate::output::{log, print_diagnostics};

/// The shortest sleep between passes (a due time in the past does not spin).
const MIN_SLEEP: Duration = Duration::from_millis(200);
/// `/readyz` fails when no pass ended for this many reconcile intervals ...
const READY_STALE_INTERVALS: i32 = 5;
/// ... or this long, whichever is longer (a pass may wait out a forge rate limit).
const READY_STALE_MIN: TimeDelta = TimeDelta::minutes(5);

fn settings(cli: &Cli) -> Option<Settings> {
    match rings::load::load_settings(&cli.config) {
        Ok(s) => Some(s),
        Err(d) => {
            print_diagnostics(&d);
            None
        }
    }
}

/// Who runs the command, for the journal (`--as`, else `$USER`), without control characters.
fn who(explicit: Option<&str>) -> String {
    let name = explicit
        .map(str::to_owned)
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "operator".to_owned());
    orchestrator::text::clean_name(&name)
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
        let n = seen.entry(r.name.clone()).or_insert(0);
        let Ok((events, len)) = store.journal_from(&r.name, *n) else {
            continue;
        };
        for e in &events {
            let at = e.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            let mut fields = vec![("at", at.as_str()), ("rollout", e.rollout.as_str())];
            if let Some(ring) = &e.ring {
                fields.push(("ring", ring.as_str()));
            }
            fields.push(("kind", e.kind.as_str()));
            fields.push(("actor", e.actor.as_str()));
            let level = if e.kind == "halted" { "warn" } else { "info" };
            log(level, &fields, &e.message);
        }
        *n = len;
    }
}

async fn drive<F: Forge, P: ClusterProbe, C: Clock>(
    daemon: &mut Daemon<'_, F, P, C>,
    once: bool,
    interval: Duration,
    shared: &api::Shared,
    observe_forge: fn(&F, &Metrics),
) -> anyhow::Result<ExitCode> {
    // Only what happens from now on is printed (a restart does not replay the journal).
    let mut seen: std::collections::BTreeMap<String, usize> = daemon
        .store()
        .rollouts()?
        .iter()
        .map(|r| {
            let n = daemon
                .store()
                .journal_from(&r.name, usize::MAX)
                .map_or(0, |(_, len)| len);
            (r.name.clone(), n)
        })
        .collect();
    match daemon.rebuild_from_forge().await {
        Ok(0) => {}
        Ok(n) => log(
            "info",
            &[],
            &format!(
                "the store was empty: rebuilt {n} rollout(s) from the forge's ringmaster PRs (unfinished soaks restart at 0)"
            ),
        ),
        Err(e @ orchestrator::daemon::DaemonError::Forge(_)) => {
            // Starting over instead would open fresh rollouts, and the next start would never
            // rebuild: stop, not ready, with the reason.
            let why = format!(
                "the store is empty and rebuilding it from the forge's ringmaster PRs failed: {e};                  ringmaster stops rather than start every rollout over (fix the forge access and start it again)"
            );
            shared
                .readiness()
                .record(daemon.clock().now(), Err(why.clone()));
            anyhow::bail!(why);
        }
        // No configuration yet (the passes say why) or a fetch that failed: not a rebuild
        // that failed; the passes retry.
        Err(e) => log(
            "warn",
            &[],
            &format!("could not rebuild state from the forge yet: {e}"),
        ),
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    loop {
        // One writer: control commands through the API wait for the pass to end.
        let writing = shared.write_lock().await;
        let started = std::time::Instant::now();
        let result = daemon.pass().await;
        shared.metrics().observe_reconcile(started.elapsed());
        drop(writing);
        shared.readiness().record(
            daemon.clock().now(),
            result.as_ref().map(|_| ()).map_err(ToString::to_string),
        );
        if let Some(config) = daemon.config() {
            shared.set_config(config.clone());
        }
        observe_forge(daemon.forge(), shared.metrics());
        print_new_events(daemon.store(), &mut seen);
        let sleep = match result {
            Ok(report) => {
                for w in &report.warnings {
                    log("warn", &[], w);
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
                log(
                    "error",
                    &[],
                    &format!(
                        "reconcile pass failed: {e}; retrying in {}s",
                        interval.as_secs()
                    ),
                );
                interval
            }
        };
        if once {
            return Ok(ExitCode::SUCCESS);
        }
        tokio::select! {
            _ = tokio::time::sleep(sleep) => {}
            // A webhook or a control command: look again now.
            _ = shared.wake().notified() => {}
            _ = tokio::signal::ctrl_c() => { log("info", &[], "stopping (SIGINT)"); return Ok(ExitCode::SUCCESS); }
            _ = term.recv() => { log("info", &[], "stopping (SIGTERM)"); return Ok(ExitCode::SUCCESS); }
        }
    }
}

/// `ringmaster run [--once]`.
pub fn run(cli: &Cli, once: bool) -> anyhow::Result<ExitCode> {
    let Some(s) = settings(cli) else {
        return Ok(ExitCode::from(1));
    };
    let store = Arc::new(state::Store::open(&s.store_path)?);
    let interval = s
        .reconcile_interval
        .to_std()
        .unwrap_or(Duration::from_secs(30));
    let shared = api::Shared::new(
        Arc::clone(&store),
        Arc::new(SystemClock),
        Metrics::global(),
        (s.reconcile_interval * READY_STALE_INTERVALS).max(READY_STALE_MIN),
    );
    // Before the mirror's first fetch, so that `/healthz` answers while it runs. `--once` is a
    // one-shot: no server.
    let _server = if once {
        None
    } else {
        Some(start_api(&s, Arc::clone(&shared))?)
    };
    let mirror = Mirror::open(&s.data_dir, &s.gitops.location, s.gitops.auth.clone())?;
    let gitops = MirrorGitOps::new(mirror, &s.gitops.branch, s.author.clone());
    let probe = LiveProbe(policies::probe::Probe::new(
        policies::probe::ProbeSettings {
            kubeconfig: s.kubeconfig.clone(),
            ..Default::default()
        },
    ));
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
                drive(&mut daemon, once, interval, &shared, |_, _| {}).await
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
                let rate_limit = |forge: &GitHubForge, metrics: &Metrics| {
                    if let Some(n) = forge.rate_limit().remaining {
                        metrics.set_rate_limit_remaining("github", n);
                    }
                };
                drive(&mut daemon, once, interval, &shared, rate_limit).await
            }
        }
    })
}

/// Start the HTTP API on `api.listen` (DESIGN §9).
fn start_api(s: &Settings, shared: Arc<api::Shared>) -> anyhow::Result<api::ApiServer> {
    let token = match &s.api_token {
        Some(source) => Some(Secret::read(source).map_err(|e| {
            anyhow::anyhow!("the API token (api.tokenEnv / api.tokenFile in ringmaster.yaml): {e}")
        })?),
        None => {
            log(
                "warn",
                &[],
                "no API token configured (api.tokenEnv or api.tokenFile): the API's control endpoints answer 403",
            );
            None
        }
    };
    // With `forge.github.webhookSecretEnv`/`File`, signed deliveries wake the loop; without,
    // `/webhooks/github` answers 404 and the forge is polled.
    let webhook_secret = match &s.forge {
        ForgeSettings::GitHub(g) => match &g.webhook_secret {
            Some(source) => Some(Secret::read(source).map_err(|e| {
                anyhow::anyhow!(
                    "the webhook secret (forge.github.webhookSecretEnv / webhookSecretFile in ringmaster.yaml): {e}"
                )
            })?),
            None => None,
        },
        ForgeSettings::Local => None,
    };
    let token_name = s.api_token.as_ref().map(|source| match source {
        rings::model::SecretSource::Env(name) => name.clone(),
        rings::model::SecretSource::File(path) => path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        ),
    });
    let local_forge = match (&s.forge, &s.gitops.location) {
        (ForgeSettings::Local, GitLocation::Local(repo)) => Some(api::LocalForgeAccess {
            repo: repo.clone(),
            author: s.author.clone(),
        }),
        _ => None,
    };
    let options = api::ApiOptions {
        token,
        token_name,
        webhook_secret,
        local_forge,
    };
    let server = api::ApiServer::start(&s.api_listen, shared, options)?;
    log(
        "info",
        &[],
        &format!(
            "API on http://{} (/healthz, /readyz, /metrics, /api/v1/rollouts)",
            server.addr()
        ),
    );
    Ok(server)
}

/// A read through the running daemon's API, once it is known to hold this configuration's
/// store ([`client::verify`]).
pub(crate) fn read_through_api(s: &Settings, path: &str) -> anyhow::Result<serde_json::Value> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        client::verify(&s.api_listen, &s.store_path).await?;
        Ok(client::get(&s.api_listen, path).await?)
    })
}

/// The store, or `None` when a running daemon holds it (its lock is taken).
pub(crate) fn store_or_daemon(s: &Settings) -> anyhow::Result<Option<state::Store>> {
    match state::Store::open(&s.store_path) {
        Ok(store) => Ok(Some(store)),
        Err(state::StoreError::Locked { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// `ringmaster status`.
pub fn status(cli: &Cli) -> anyhow::Result<ExitCode> {
    let Some(s) = settings(cli) else {
        return Ok(ExitCode::from(1));
    };
    let value = match store_or_daemon(&s)? {
        Some(store) => {
            let config = config_for_reads(cli);
            status::status_json(&store, config.as_ref(), Utc::now())?
        }
        None => read_through_api(&s, "/api/v1/rollouts").map_err(|e| {
            anyhow::anyhow!(
                "the store is held by a running daemon, and reading it through the API at {} failed: {e}",
                s.api_listen
            )
        })?,
    };
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
    let value = match store_or_daemon(&s)? {
        Some(store) => {
            if store.rollout(rollout)?.is_none() {
                eprintln!("error: no rollout named `{rollout}` (see `ringmaster status`)");
                return Ok(ExitCode::from(1));
            }
            status::history_json(&store, rollout)?
        }
        None => read_through_api(&s, &format!("/api/v1/rollouts/{rollout}/history"))?,
    };
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
    /// `abort <rollout> [--revert]`.
    Abort(&'a str, &'a str, bool),
    /// `freeze --until T --reason R`.
    Freeze(DateTime<Utc>, &'a str),
    /// `unfreeze`.
    Unfreeze,
}

/// A command through the running daemon that holds this configuration's store (its lock is
/// taken): first [`client::verify`] that the daemon at `api.listen` is that one, then send.
/// Nothing changes unless both succeed.
pub(crate) fn through_daemon(
    cli: &Cli,
    s: &Settings,
    request: &client::Request<'_>,
    by: &str,
) -> anyhow::Result<ExitCode> {
    let (token, token_problem) = match &s.api_token {
        None => (None, None),
        Some(source) => match Secret::read(source) {
            Ok(t) => (Some(t), None),
            Err(e) => (None, Some(e)),
        },
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let sent = rt.block_on(async {
        client::verify(&s.api_listen, &s.store_path).await?;
        client::send(&s.api_listen, token.as_ref(), request, by).await
    });
    match sent {
        Ok(message) => {
            println!(
                "{message} (through the running daemon at {})",
                client::base_url(&s.api_listen)
            );
        }
        Err(client::ClientError::Refused {
            status, message, ..
        }) => {
            eprintln!("error: {message}");
            if let (401 | 403, Some(problem)) = (status, token_problem) {
                eprintln!(
                    "hint: the API token of ringmaster.yaml could not be read here: {problem}"
                );
            }
            return Ok(ExitCode::from(1));
        }
        Err(
            e @ (client::ClientError::OtherStore { .. } | client::ClientError::Unverified { .. }),
        ) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(1));
        }
        Err(unanswered) => {
            let locked = state::StoreError::Locked {
                path: s.store_path.display().to_string(),
            };
            eprintln!(
                "error: {locked}\n  and the command could not go through that daemon's API either: {unanswered}\n  check that `api.listen` in {} is the running daemon's address (nothing was changed)",
                cli.config.display()
            );
            return Ok(ExitCode::from(1));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The control commands: on the store when no daemon holds it, else through the API of the
/// daemon that holds it (checked to be that one).
pub fn control(cli: &Cli, what: Control<'_>, by: Option<&str>) -> anyhow::Result<ExitCode> {
    let Some(s) = settings(cli) else {
        return Ok(ExitCode::from(1));
    };
    let by = who(by);
    let Some(store) = store_or_daemon(&s)? else {
        let request = match what {
            Control::Resume(rollout) => client::Request::Resume { rollout },
            Control::Pause(rollout, reason) => client::Request::Pause { rollout, reason },
            Control::Abort(rollout, reason, revert) => client::Request::Abort {
                rollout,
                reason,
                revert,
            },
            Control::Freeze(until, reason) => client::Request::Freeze { until, reason },
            Control::Unfreeze => client::Request::Unfreeze,
        };
        return through_daemon(cli, &s, &request, &by);
    };
    let now = Utc::now();
    let result = match what {
        Control::Resume(r) => {
            let config = config_for_reads(cli);
            control::resume(&store, config.as_ref(), r, &by, now)
        }
        Control::Pause(r, reason) => control::pause(&store, r, &by, reason, now),
        Control::Abort(r, reason, false) => control::abort(&store, r, &by, reason, now),
        Control::Abort(r, reason, true) => control::abort_and_revert(&store, r, &by, reason, now),
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

//! One reconcile pass and the ring-run state machine (DESIGN §5).

mod act;
mod decide;
mod evidence;
mod occupancy;
mod open;
mod pr;
mod rebuild;
mod revert;
mod watch;

use evidence::to_sample;
pub use evidence::{evidence_of, halt_comment, ring_state};
use occupancy::Occupancy;
use open::{pr_request, record_step};

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::SystemTime;

use chrono::{DateTime, TimeDelta, Utc};
use git2::Oid;
use policies::soak::{self, Outcome, Sample, Verdict};
use policies::window;
use rings::model::{Cluster, Config, Gate, MergeMode, Ring};
use rings::{ClusterId, Component, GateName, Version};
use state::{
    ChangeRecord, Event, Phase, PrLink, RingRun, Rollout, RolloutState, SampleOutcome,
    SampleRecord, StepRecord, Store, StoreError,
};

use tracing::Instrument as _;

use super::ACTOR;
use super::clock::Clock;
use super::probe::{Baselines, ClusterProbe, Targets};
use crate::forge::render::{self, Evidence, GateEvidence, PrContext, RingState};
use crate::forge::{Checks, Forge, ForgeError, OpenPr, PrLifecycle};
use crate::gitops::changes::{ChangeError, next_ring_step};
use crate::gitops::{GitOps, GitOpsError, MirrorGitOps, PreparedStep, Publication, StepRequest};

/// At most this many transitions of one ring run in one pass (a guard against a loop that
/// never waits; a healthy ring needs at most four: pending → window → preflight → PR open).
const MAX_TRANSITIONS_PER_PASS: usize = 8;
/// How long to wait before looking at a converging ring again.
const CONVERGE_POLL: TimeDelta = TimeDelta::seconds(10);
/// How long to wait before looking at an open PR again.
const PR_POLL: TimeDelta = TimeDelta::seconds(30);
/// How long to wait before re-checking a blocked preflight.
const BLOCKED_POLL: TimeDelta = TimeDelta::seconds(60);
/// The label a halted ring's PR gets.
pub const HALTED_LABEL: &str = "ringmaster/halted";
/// The key of the (single) halt comment on a PR.
const HALT_COMMENT: &str = "halt";
/// The key of the (single) pause/freeze notice on a PR.
const NOTICE_COMMENT: &str = "hold";

/// Errors that end a pass early (the next pass retries). Per-ring problems are not errors:
/// they become `Blocked` or `Halted` states with their reason.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Git failed (fetch, push).
    #[error(transparent)]
    Git(#[from] GitOpsError),
    /// The forge failed transiently.
    #[error(transparent)]
    Forge(#[from] ForgeError),
    /// The configuration does not load (every problem, one per line).
    #[error("the configuration does not load:\n{0}")]
    Config(String),
}

/// How the daemon is set up.
#[derive(Debug, Clone)]
pub struct DaemonOptions {
    /// `ringmaster.yaml`.
    pub config_path: PathBuf,
    /// The forge merges an approved PR itself (the local forge: `ringmaster approve`, then
    /// ringmaster merges); on GitHub a person merges a `merge: manual` ring's PR.
    pub merge_approved: bool,
    /// How PR links are written: `{n}` is replaced by the number (`local#{n}`,
    /// `https://github.com/acme/gitops/pull/{n}`).
    pub pr_url_template: String,
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PassReport {
    /// Transitions written.
    pub transitions: usize,
    /// When something is next due (a window opens, a sample, a poll); `None`: nothing waits
    /// on time.
    pub next_due: Option<DateTime<Utc>>,
    /// Problems that did not stop the pass (a forge hiccup on one ring), for the log.
    pub warnings: Vec<String>,
}

impl PassReport {
    fn due(&mut self, at: DateTime<Utc>) {
        self.next_due = Some(self.next_due.map_or(at, |d| d.min(at)));
    }
}

/// Why changes wait (for people) and until when, if known.
type Hold = (String, Option<DateTime<Utc>>);

/// The loaded configuration and what it was loaded from.
struct Loaded {
    base: Oid,
    fingerprint: Vec<(PathBuf, Option<SystemTime>)>,
    config: Config,
}

/// The daemon: one writer for every ring run of the store.
pub struct Daemon<'s, F, P, C> {
    store: &'s Store,
    forge: F,
    gitops: MirrorGitOps,
    probe: P,
    clock: C,
    options: DaemonOptions,
    loaded: Option<Loaded>,
    /// Why the last refresh did not load (the last good configuration is in use meanwhile).
    config_error: Option<String>,
    /// The ring phases of every unfinished rollout, for the ring-occupancy rule.
    occupancy: std::cell::RefCell<Option<std::sync::Arc<Occupancy>>>,
    /// The running soak tally of each soaking ring step, so a pass that samples reads only
    /// the new samples. Rebuilt from the store after a restart, a configuration change or a
    /// resume (a new soak start).
    tallies: std::collections::HashMap<(String, String, u32), SoakTally>,
    /// Passes so far (tallies not looked at in a pass are dropped).
    passes: u64,
}

/// A soak tally and the last sample folded into it.
#[derive(Debug)]
struct SoakTally {
    tally: soak::Tally,
    last_id: Option<u64>,
    seen: u64,
}

impl<F, P, C> std::fmt::Debug for Daemon<'_, F, P, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Daemon")
            .field("config", &self.options.config_path)
            .finish_non_exhaustive()
    }
}

fn mtime(path: &std::path::Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn component_key(c: &Component) -> String {
    c.to_string()
}

fn event(
    now: DateTime<Utc>,
    rollout: &str,
    ring: Option<&str>,
    kind: &str,
    message: String,
) -> Event {
    Event {
        at: now,
        rollout: rollout.to_owned(),
        ring: ring.map(str::to_owned),
        kind: kind.to_owned(),
        message,
        actor: ACTOR.to_owned(),
    }
}

/// The clusters a ring run changes: its members as resolved when the ring started (a cluster
/// moved to another ring since stays with this run), without the ones left out.
fn moving_members<'c>(config: &'c Config, run: &RingRun) -> Vec<&'c Cluster> {
    config
        .fleet
        .clusters
        .iter()
        .filter(|c| {
            let id = c.id.as_str();
            run.members.iter().any(|m| m == id) && !run.left_out.iter().any(|(l, _)| l == id)
        })
        .collect()
}

fn ring_gates<'c>(config: &'c Config, ring: &Ring) -> Vec<&'c Gate> {
    ring.gates
        .iter()
        .filter_map(|g| config.ring_set.gates.get(g))
        .collect()
}

fn preflight_gates<'c>(config: &'c Config, ring: &Ring) -> Vec<&'c Gate> {
    ring.preflight
        .iter()
        .filter_map(|g| config.ring_set.gates.get(g))
        .collect()
}

impl<'s, F: Forge, P: ClusterProbe, C: Clock> Daemon<'s, F, P, C> {
    /// A daemon over `store`, opening PRs on `forge`, pushing through `gitops`, looking at the
    /// clusters through `probe`, on `clock`.
    pub fn new(
        store: &'s Store,
        forge: F,
        gitops: MirrorGitOps,
        probe: P,
        clock: C,
        options: DaemonOptions,
    ) -> Self {
        Daemon {
            store,
            forge,
            gitops,
            probe,
            clock,
            options,
            loaded: None,
            config_error: None,
            occupancy: std::cell::RefCell::new(None),
            tallies: std::collections::HashMap::new(),
            passes: 0,
        }
    }

    /// The forge (the demo approves through it).
    pub fn forge(&self) -> &F {
        &self.forge
    }

    /// The clock.
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// The store.
    pub fn store(&self) -> &Store {
        self.store
    }

    /// The configuration of the last pass.
    pub fn config(&self) -> Option<&Config> {
        self.loaded.as_ref().map(|l| &l.config)
    }

    fn pr_url(&self, number: u64) -> String {
        self.options
            .pr_url_template
            .replace("{n}", &number.to_string())
    }

    fn fingerprint(&self, config: Option<&Config>) -> Vec<(PathBuf, Option<SystemTime>)> {
        let mut paths = vec![self.options.config_path.clone()];
        if let Some(c) = config {
            paths.push(c.settings.rings_path.clone());
            for r in &c.releases {
                paths.push(PathBuf::from(&r.source));
            }
            if let Some(dir) = std::path::Path::new(&c.settings.releases_glob).parent() {
                paths.push(dir.to_path_buf());
            }
        }
        paths.into_iter().map(|p| (p.clone(), mtime(&p))).collect()
    }

    /// Fetch, and reload the configuration when the base branch or a config file changed.
    fn refresh(&mut self) -> Result<Oid, DaemonError> {
        let base = self.gitops.refresh()?;
        let stale = match &self.loaded {
            None => true,
            Some(l) => l.base != base || l.fingerprint != self.fingerprint(Some(&l.config)),
        };
        if stale {
            let repo = self.gitops.mirror().repo();
            let loaded = rings::load::load_with(&self.options.config_path, &mut |g| {
                rings::load::read_registry_ref(
                    repo,
                    &format!("refs/remotes/origin/{}", g.branch),
                    &g.branch,
                    &g.registry,
                    &rings::load::redact_url(&g.url),
                )
            })
            .map_err(|d| {
                DaemonError::Config(
                    d.errors()
                        .map(|e| e.to_string())
                        .collect::<Vec<_>>()
                        .join("\n"),
                )
            })?;
            let fingerprint = self.fingerprint(Some(&loaded.config));
            // Gates, soaks and intervals may have changed: tally the soaks again.
            self.tallies.clear();
            self.loaded = Some(Loaded {
                base,
                fingerprint,
                config: loaded.config,
            });
        }
        Ok(base)
    }

    /// [`Self::refresh`], keeping the last configuration that loaded when the new one does not
    /// (or the fetch failed): the error is remembered and holds every change
    /// ([`Self::gate_of_change`]) until a configuration loads again. Fails only when there is
    /// no configuration at all.
    fn reload(&mut self) -> Result<(), DaemonError> {
        match self.refresh() {
            Ok(_) => {
                self.config_error = None;
                Ok(())
            }
            Err(e) if self.loaded.is_some() => {
                self.config_error = Some(e.to_string());
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// One reconcile pass.
    pub async fn pass(&mut self) -> Result<PassReport, DaemonError> {
        let mut report = PassReport::default();
        self.passes += 1;
        self.reload()?;
        if let Some(e) = &self.config_error {
            report.warnings.push(format!(
                "{e}; keeping the last configuration that loaded: soaks keep measuring, nothing new is pushed or merged until it loads"
            ));
        }
        self.discover()?;
        for rollout in self.store.rollouts()? {
            if rollout.state.is_finished() {
                continue;
            }
            if rollout.revert_of.is_some() {
                self.reconcile_revert(&rollout.name, &mut report).await?;
                continue;
            }
            self.reconcile_rollout(&rollout.name, &mut report).await?;
        }
        let pass = self.passes;
        self.tallies.retain(|_, t| t.seen == pass);
        Ok(report)
    }

    /// Start a rollout for every release that has none (file order).
    fn discover(&mut self) -> Result<(), DaemonError> {
        let Some(loaded) = &self.loaded else {
            return Ok(());
        };
        let config = &loaded.config;
        let now = self.clock.now();
        let existing = self.store.rollouts()?;
        let mut order = existing.iter().map(|r| r.order + 1).max().unwrap_or(0);
        for release in &config.releases {
            if existing.iter().any(|r| r.name == release.name.as_str()) {
                continue;
            }
            let rollout = Rollout {
                name: release.name.to_string(),
                order,
                summary: release.summary(),
                state: RolloutState::Active,
                created_at: now,
                updated_at: now,
                revert_of: None,
            };
            let runs: Vec<RingRun> = config
                .ring_set
                .rings
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    RingRun::pending(release.name.as_str(), r.name.as_str(), i as u32, now)
                })
                .collect();
            let ev = event(
                now,
                release.name.as_str(),
                None,
                "started",
                format!(
                    "rollout of {} ({}) started across {} rings",
                    release.summary(),
                    release.source,
                    runs.len()
                ),
            );
            if self.store.create_rollout(&rollout, &runs, &ev)? {
                order += 1;
            }
        }
        Ok(())
    }

    async fn reconcile_rollout(
        &mut self,
        name: &str,
        report: &mut PassReport,
    ) -> Result<(), DaemonError> {
        let Some(config) = self.loaded.as_ref().map(|l| &l.config) else {
            return Ok(());
        };
        if config.release(name).is_none() {
            report.warnings.push(format!(
                "rollout `{name}`: its release is no longer in the release files; left as it is"
            ));
            return Ok(());
        }
        // Rings added to the ring file after the rollout started get their ring runs.
        let runs = self.store.ring_runs(name)?;
        let now = self.clock.now();
        for (i, ring) in config.ring_set.rings.iter().enumerate() {
            if !runs.iter().any(|r| r.ring == ring.name.as_str()) {
                self.store.insert_ring_run(&RingRun::pending(
                    name,
                    ring.name.as_str(),
                    i as u32,
                    now,
                ))?;
            }
        }
        let ring_names: Vec<String> = config
            .ring_set
            .rings
            .iter()
            .map(|r| r.name.to_string())
            .collect();
        for (index, ring) in ring_names.iter().enumerate() {
            for _ in 0..MAX_TRANSITIONS_PER_PASS {
                // The phases first: a passed ring, or a pending one that may not start yet
                // (most of a backlog), is decided without reading its whole record.
                let occupancy = self.occupancy()?;
                let previous = index.checked_sub(1).map(|i| ring_names[i].as_str());
                match (occupancy.phase(name, ring), occupancy.order(name)) {
                    (Some(Phase::Passed), _) => break,
                    (Some(Phase::Pending), Some(order))
                        if !occupancy.is_free(name, order, previous, ring) =>
                    {
                        break;
                    }
                    _ => {}
                }
                if !self.look(name, ring, Some(index), report).await? {
                    break;
                }
            }
        }
        // Runs of rings since removed from the ring file do not hold the rollout back.
        self.complete_when_passed(
            name,
            |r| ring_names.contains(&r.ring),
            false,
            "every ring passed",
        )
    }

    /// Mark an active rollout completed (journal: `message`) once every ring run that `counts`
    /// has passed — and there is one, unless `none_is_done` (a revert with nothing to revert).
    pub(super) fn complete_when_passed(
        &self,
        name: &str,
        counts: impl Fn(&RingRun) -> bool,
        none_is_done: bool,
        message: &str,
    ) -> Result<(), DaemonError> {
        let Some(mut rollout) = self.store.rollout(name)? else {
            return Ok(());
        };
        let runs = self.store.ring_runs(name)?;
        let current: Vec<&RingRun> = runs.iter().filter(|r| counts(r)).collect();
        if rollout.state == RolloutState::Active
            && (none_is_done || !current.is_empty())
            && current.iter().all(|r| r.phase == Phase::Passed)
        {
            let now = self.clock.now();
            rollout.state = RolloutState::Completed;
            rollout.updated_at = now;
            let done = event(now, name, None, "completed", message.to_owned());
            self.store.put_rollout(&rollout, &[done])?;
        }
        Ok(())
    }

    /// Write a transition; `false` when another writer got there first (nothing happened).
    fn commit(
        &self,
        old: &RingRun,
        new: RingRun,
        rollout: Option<&Rollout>,
        events: &[Event],
    ) -> Result<bool, DaemonError> {
        Ok(self.store.transition(old, new, rollout, events)?.is_some())
    }

    fn moved(
        &self,
        old: &RingRun,
        mut new: RingRun,
        phase: Phase,
        reason: Option<String>,
        message: String,
    ) -> Result<bool, DaemonError> {
        let now = self.clock.now();
        new.phase = phase;
        new.phase_since = now;
        if phase == Phase::Blocked {
            if new.block.is_none() {
                new.block = Some(state::BlockCause::Preflight {
                    findings: reason.iter().cloned().collect(),
                });
            }
        } else {
            new.block = None;
        }
        new.reason = reason;
        let ev = event(now, &old.rollout, Some(&old.ring), phase.as_str(), message);
        self.commit(old, new, None, &[ev])
    }

    /// Whether new PRs and merges are allowed now for this ring, and if not why and until when.
    fn gate_of_change(
        &self,
        config: &Config,
        ring: &Ring,
        rollout: &Rollout,
        now: DateTime<Utc>,
    ) -> Result<Result<(), Hold>, DaemonError> {
        if let Some(e) = &self.config_error {
            return Ok(Err((format!("held: {}", e.replace('\n', "; ")), None)));
        }
        if let RolloutState::Paused { by, reason } = &rollout.state {
            return Ok(Err((format!("rollout paused by {by}: {reason}"), None)));
        }
        if let Some(f) = self.store.global_freeze()?
            && now < f.until
        {
            return Ok(Err((
                format!(
                    "frozen by {} until {}: {}",
                    f.by,
                    f.until.to_rfc3339(),
                    f.reason
                ),
                Some(f.until),
            )));
        }
        if let Some(f) = window::freeze_at(&config.ring_set.freezes, now) {
            return Ok(Err((
                format!("change freeze until {}: {}", f.to.to_rfc3339(), f.reason),
                Some(f.to),
            )));
        }
        if let Some(w) = &ring.window
            && !window::is_open(w, now)
        {
            let next = window::earliest_allowed(Some(w), &config.ring_set.freezes, now);
            let why = match next {
                Some(t) => format!("window closed; next opens {}", t.to_rfc3339()),
                None => "window closed; no opening found within a year".to_owned(),
            };
            return Ok(Err((why, next)));
        }
        Ok(Ok(()))
    }

    /// Advance one ring run by one step. `Ok(true)` when a transition was written.
    async fn advance(
        &mut self,
        rollout_name: &str,
        index: usize,
        run: RingRun,
        report: &mut PassReport,
    ) -> Result<bool, DaemonError> {
        let now = self.clock.now();
        let Some(rollout) = self.store.rollout(rollout_name)? else {
            return Ok(false);
        };
        if rollout.state.is_finished() {
            return Ok(false);
        }
        let Some(loaded) = self.loaded.as_ref() else {
            return Ok(false);
        };
        let config = &loaded.config;
        let Some(release) = config.release(rollout_name) else {
            return Ok(false);
        };
        let Some(ring) = config.ring_set.rings.get(index) else {
            return Ok(false);
        };
        let halted = matches!(rollout.state, RolloutState::Halted { .. });
        match run.phase {
            Phase::Passed => Ok(false),
            Phase::Halted => self.post_evidence(run).await,
            Phase::Pending => {
                if halted {
                    return Ok(false);
                }
                if let RolloutState::Paused { .. } = rollout.state {
                    return Ok(false);
                }
                let previous = index
                    .checked_sub(1)
                    .and_then(|i| config.ring_set.rings.get(i))
                    .map(|r| r.name.as_str());
                if !self
                    .occupancy()?
                    .is_free(&rollout.name, rollout.order, previous, &run.ring)
                {
                    return Ok(false);
                }
                let members: Vec<String> = config
                    .ring_clusters(index)
                    .map(|c| c.id.to_string())
                    .collect();
                let mut new = run.clone();
                new.members = members.clone();
                new.started_at = Some(now);
                match next_ring_step(config, release, index) {
                    Err(ChangeError::Blocked {
                        reason, cluster, ..
                    }) => {
                        let why = format!("cluster {cluster}: {reason}");
                        self.moved(
                            &run,
                            new,
                            Phase::Blocked,
                            Some(why.clone()),
                            format!("blocked: {why}"),
                        )
                    }
                    Err(e) => Err(DaemonError::Config(e.to_string())),
                    Ok(step) if step.clusters.is_empty() => {
                        new.left_out = step
                            .left_out
                            .iter()
                            .map(|(c, w)| (c.to_string(), w.clone()))
                            .collect();
                        new.passed_at = Some(now);
                        self.moved(
                            &run,
                            new,
                            Phase::Passed,
                            None,
                            format!(
                                "nothing to do: none of the {} clusters needs {}",
                                members.len(),
                                release.summary()
                            ),
                        )
                    }
                    Ok(step) => {
                        new.left_out = step
                            .left_out
                            .iter()
                            .map(|(c, w)| (c.to_string(), w.clone()))
                            .collect();
                        self.moved(
                            &run,
                            new,
                            Phase::WaitingForWindow,
                            None,
                            format!(
                                "ring started with {} clusters ({} to change, {} left out)",
                                members.len(),
                                step.clusters.len(),
                                step.left_out.len()
                            ),
                        )
                    }
                }
            }
            Phase::WaitingForWindow => {
                if halted {
                    return Ok(false);
                }
                match self.gate_of_change(config, ring, &rollout, now)? {
                    Err((why, until)) => {
                        if let Some(t) = until {
                            report.due(t);
                        }
                        if run.reason.as_deref() != Some(why.as_str()) {
                            let mut new = run.clone();
                            new.reason = Some(why);
                            // Not a phase change: no journal entry for every window tick.
                            self.store.transition(&run, new, None, &[])?;
                        }
                        Ok(false)
                    }
                    Ok(()) => {
                        let new = run.clone();
                        self.moved(
                            &run,
                            new,
                            Phase::Preflight,
                            None,
                            "window open: preflight".into(),
                        )
                    }
                }
            }
            Phase::Preflight | Phase::Blocked => {
                if halted {
                    return Ok(false);
                }
                if let Err((why, until)) = self.gate_of_change(config, ring, &rollout, now)? {
                    if let Some(t) = until {
                        report.due(t);
                    }
                    let new = run.clone();
                    return self.moved(&run, new, Phase::WaitingForWindow, Some(why.clone()), why);
                }
                self.preflight_and_open(rollout_name, index, run, report)
                    .await
            }
            Phase::PrOpen => self.pr_open(&rollout, index, run, report).await,
            Phase::Converging => self.converging(index, run, report).await,
            Phase::Soaking => self.soaking(&rollout, index, run, report).await,
        }
    }
}

/// What a cluster must run after a step.
pub fn targets_of(changes: &[policies::versions::Change]) -> Targets {
    Targets::from_step(changes)
}

fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

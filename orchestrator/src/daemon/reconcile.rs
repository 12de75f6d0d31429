//! One reconcile pass and the ring-run state machine (DESIGN §5).

mod revert;

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

/// Every unfinished rollout's ring phases, as the ring-occupancy rule reads them. Read once
/// (phases only, not whole ring runs) and kept while the store's generation stays the same:
/// any write through the store — a transition of this pass, a command from the API — makes
/// the next question read it again, so an idle pass reads it once.
#[derive(Debug)]
struct Occupancy {
    generation: u64,
    rollouts: Vec<Occupant>,
}

#[derive(Debug)]
struct Occupant {
    name: String,
    order: u32,
    revert: bool,
    phases: Vec<state::RingPhase>,
}

impl Occupancy {
    fn read(store: &Store) -> Result<Occupancy, DaemonError> {
        // The generation first: a write racing this read makes the cache stale, never wrong.
        let generation = store.generation();
        let mut rollouts = Vec::new();
        for r in store.rollouts()? {
            if r.state.is_finished() {
                continue;
            }
            rollouts.push(Occupant {
                phases: store.ring_phases(&r.name)?,
                revert: r.revert_of.is_some(),
                order: r.order,
                name: r.name,
            });
        }
        Ok(Occupancy {
            generation,
            rollouts,
        })
    }

    /// The release order of an unfinished rollout.
    fn order(&self, rollout: &str) -> Option<u32> {
        self.rollouts
            .iter()
            .find(|o| o.name == rollout)
            .map(|o| o.order)
    }

    /// The phase of an unfinished rollout's run of `ring`. By name: rings may have been
    /// added, removed or reordered in the ring file since the run was created.
    fn phase(&self, rollout: &str, ring: &str) -> Option<Phase> {
        self.rollouts
            .iter()
            .find(|o| o.name == rollout)?
            .phases
            .iter()
            .find(|p| p.ring == ring)
            .map(|p| p.phase)
    }

    /// `ring` is free for rollout `name` (release order `order`): the ring before it in the
    /// ring file (`previous`, none for the first) passed, no revert in progress holds the ring,
    /// and every earlier unfinished rollout passed it (never two rollouts on one ring; releases
    /// run in file order).
    fn is_free(&self, name: &str, order: u32, previous: Option<&str>, ring: &str) -> bool {
        if let Some(previous) = previous
            && self.phase(name, previous) != Some(Phase::Passed)
        {
            return false;
        }
        self.rollouts.iter().filter(|o| o.name != name).all(|o| {
            if o.revert {
                // A revert in progress holds every ring it has started and not finished.
                return !o
                    .phases
                    .iter()
                    .any(|p| p.ring == ring && p.phase.occupies_ring());
            }
            o.order >= order
                || o.phases
                    .iter()
                    .find(|p| p.ring == ring)
                    .is_none_or(|p| p.phase == Phase::Passed)
        })
    }
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

/// The state-machine view of a ring run for the PR matrix.
pub fn ring_state(run: &RingRun) -> RingState {
    let reason = run.reason.clone().unwrap_or_default();
    match run.phase {
        Phase::Pending | Phase::WaitingForWindow => RingState::Waiting,
        Phase::Passed if run.steps.is_empty() => RingState::NothingToDo,
        Phase::Passed => RingState::Passed,
        Phase::Blocked => RingState::Blocked(reason),
        Phase::Halted => RingState::Halted(reason),
        Phase::Preflight => RingState::InProgress("preflight".into()),
        Phase::PrOpen => RingState::InProgress(format!("PR open (step {})", run.step_number())),
        Phase::Converging => RingState::InProgress("converging".into()),
        Phase::Soaking => RingState::InProgress("soaking".into()),
    }
}

fn to_sample(s: &SampleRecord) -> Option<Sample> {
    Some(Sample {
        at: s.at,
        gate: GateName::new(&s.gate).ok()?,
        cluster: ClusterId::new(&s.cluster).ok()?,
        outcome: match s.outcome {
            SampleOutcome::Pass => Outcome::Pass,
            SampleOutcome::Fail => Outcome::Fail,
            SampleOutcome::Inconclusive => Outcome::Inconclusive,
        },
        value: s.value,
        observed: s.observed.clone(),
    })
}

/// The evidence of a ring's last step (its soak), for the next ring's PR or a halt comment.
pub fn evidence_of(
    store: &Store,
    config: &Config,
    run: &RingRun,
    now: DateTime<Utc>,
) -> Result<Option<Evidence>, StoreError> {
    let Some(ring) = config
        .ring_set
        .rings
        .iter()
        .find(|r| r.name.as_str() == run.ring)
    else {
        return Ok(None);
    };
    let Some(step) = run.current_step() else {
        return Ok(None);
    };
    let samples: Vec<Sample> = store
        .samples(&run.rollout, &run.ring, step.step)?
        .iter()
        .filter_map(to_sample)
        .collect();
    let gates: Vec<Gate> = ring_gates(config, ring).into_iter().cloned().collect();
    let summaries = soak::summarise(&gates, &samples);
    let start = run.soak_started.unwrap_or(now);
    let end = run.passed_at.unwrap_or(now);
    Ok(Some(Evidence {
        ring: run.ring.clone(),
        soak: ring.soak,
        observed: (end - start).max(TimeDelta::zero()),
        gates: summaries
            .into_iter()
            .map(|g| GateEvidence {
                gate: g.gate.to_string(),
                samples: g.samples,
                failures: g.failures,
                inconclusive: g.inconclusive,
                worst: g
                    .worst
                    .into_iter()
                    .map(|(c, v)| (c.to_string(), v))
                    .collect(),
            })
            .collect(),
    }))
}

/// The PR of a prepared ring step, as the forge is asked to find or open it: the rendered title
/// and body, the rollout's and ring's labels, and the ring's reviewers when it merges by hand.
fn pr_request(ctx: &PrContext<'_>, rollout: &str, ring: &Ring, prepared: &PreparedStep) -> OpenPr {
    OpenPr {
        branch: prepared.branch.clone(),
        base: ctx.config.settings.gitops.branch.clone(),
        title: render::title(ctx),
        body: render::body(ctx),
        labels: crate::forge::labels(rollout, ring.name.as_str()),
        reviewers: if ring.merge == MergeMode::Manual {
            ring.reviewers.clone()
        } else {
            Vec::new()
        },
    }
}

/// Record step `number`'s PR (`pr`: number and URL) on `run`, replacing an earlier record of
/// the same step (a regenerated PR): its branch and head, base, summary, clusters and changes.
fn record_step(
    run: &mut RingRun,
    number: u32,
    (pr, url): (u64, String),
    (prepared, head): (&PreparedStep, Oid),
    (summary, clusters, changes): (String, Vec<String>, Vec<ChangeRecord>),
    now: DateTime<Utc>,
) {
    run.steps.retain(|s| s.step != number);
    run.steps.push(StepRecord {
        step: number,
        pr: PrLink {
            number: pr,
            url,
            branch: prepared.branch.clone(),
            head: head.to_string(),
        },
        summary,
        clusters,
        opened_at: now,
        merged_at: None,
        merge_commit: None,
        converged_at: None,
        passed_at: None,
        base: Some(prepared.base.to_string()),
        changes,
    });
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

/// Markdown evidence of a halt: why, then each gate's samples and worst values.
pub fn halt_comment(reason: &str, evidence: Option<&Evidence>) -> String {
    // The forge puts the comment's key marker in front (one comment per key, never two).
    let mut out = format!("### 🛑 ringmaster halted this rollout\n\n{reason}\n\n");
    if let Some(e) = evidence {
        out.push_str(&format!(
            "Soak of ring `{}`: {} observed of {} required.\n\n| gate | samples | failures | inconclusive | worst per cluster |\n|---|---|---|---|---|\n",
            e.ring,
            rings::duration::format_duration(e.observed),
            rings::duration::format_duration(e.soak)
        ));
        for g in &e.gates {
            let worst: Vec<String> = g.worst.iter().map(|(c, v)| format!("{c}: {v}")).collect();
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} |\n",
                g.gate,
                g.samples,
                g.failures,
                g.inconclusive,
                worst.join(", ")
            ));
        }
        out.push('\n');
    }
    out.push_str("Later rings get nothing until a person decides. Next steps:\n\n```sh\n");
    out.push_str("ringmaster resume <rollout>          # re-run this ring's gates from zero\n");
    out.push_str(
        "ringmaster abort <rollout> --revert  # stop and restore the previous versions\n```\n",
    );
    out
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

    /// One reconcile pass.
    pub async fn pass(&mut self) -> Result<PassReport, DaemonError> {
        let mut report = PassReport::default();
        self.passes += 1;
        self.refresh()?;
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

    /// With an empty store, rebuild rollouts from the forge's ring PRs (branch names and body
    /// markers; DESIGN §5): a ring with PRs after it passed; the last ring with a PR is where
    /// the rollout stands — an open PR waits for its merge, a merged one is converged and
    /// soaked again from zero (conservative), a closed or `ringmaster/halted` one is halted.
    /// Returns how many rollouts were rebuilt; does nothing when the store has rollouts.
    pub async fn rebuild_from_forge(&mut self) -> Result<usize, DaemonError> {
        if self.store.has_rollouts()? {
            return Ok(0);
        }
        self.refresh()?;
        let prs = self.forge.ringmaster_prs().await?;
        let Some(config) = self.loaded.as_ref().map(|l| &l.config) else {
            return Ok(0);
        };
        let now = self.clock.now();
        let mut by_release: BTreeMap<String, Vec<(render::Marker, crate::forge::PrSummary)>> =
            BTreeMap::new();
        for pr in prs {
            if let Some(m) = render::parse_marker(&pr.body)
                && !m.revert
            {
                by_release
                    .entry(m.rollout.clone())
                    .or_default()
                    .push((m, pr));
            }
        }
        let mut rebuilt = 0;
        let mut order = 0u32;
        for release in &config.releases {
            let name = release.name.as_str();
            let Some(mut prs) = by_release.remove(name) else {
                order += 1;
                continue;
            };
            prs.sort_by_key(|(m, p)| (m.step, p.number));
            let rings = &config.ring_set.rings;
            let last_with_pr = rings
                .iter()
                .rposition(|r| prs.iter().any(|(m, _)| m.ring == r.name.as_str()));
            let mut halted: Option<(String, String)> = None;
            let mut runs = Vec::new();
            for (i, ring) in rings.iter().enumerate() {
                let mut run = RingRun::pending(name, ring.name.as_str(), i as u32, now);
                let mine: Vec<&(render::Marker, crate::forge::PrSummary)> = prs
                    .iter()
                    .filter(|(m, _)| m.ring == ring.name.as_str())
                    .collect();
                let later = last_with_pr.is_some_and(|l| i < l);
                if !mine.is_empty() || later {
                    run.members = config.ring_clusters(i).map(|c| c.id.to_string()).collect();
                    run.started_at = Some(now);
                }
                // One record per step: the latest PR of each step number.
                let mut steps: BTreeMap<u32, &crate::forge::PrSummary> = BTreeMap::new();
                for (m, p) in &mine {
                    steps.insert(m.step, p);
                }
                for (step, p) in &steps {
                    let merged = p.state == PrLifecycle::Merged;
                    run.steps.push(StepRecord {
                        step: *step,
                        pr: PrLink {
                            number: p.number,
                            url: self.pr_url(p.number),
                            branch: p.branch.clone(),
                            head: p.head_sha.clone(),
                        },
                        summary: release.summary(),
                        clusters: Vec::new(),
                        opened_at: now,
                        merged_at: merged.then_some(now),
                        merge_commit: p.merge_sha.clone(),
                        converged_at: None,
                        passed_at: None,
                        base: None,
                        changes: Vec::new(),
                    });
                }
                run.phase = if later {
                    run.passed_at = Some(now);
                    Phase::Passed
                } else if let Some(last) = steps.values().last() {
                    let halted_label = last.labels.iter().any(|l| l == HALTED_LABEL);
                    match last.state {
                        _ if halted_label => {
                            let why = format!(
                                "halted before the store was lost; the evidence is on {}",
                                self.pr_url(last.number)
                            );
                            run.reason = Some(why.clone());
                            run.evidence_posted = true;
                            halted = Some((ring.name.to_string(), why));
                            Phase::Halted
                        }
                        PrLifecycle::Open => Phase::PrOpen,
                        PrLifecycle::Merged => {
                            // What the step changed is what the merged registry says now.
                            if let Some(s) = run.steps.last_mut() {
                                s.changes = self.step_changes_from_registry(config, i, release);
                                s.clusters = s.changes.iter().map(|c| c.cluster.clone()).collect();
                                s.clusters.dedup();
                            }
                            run.converge_deadline = Some(now + ring.converge_timeout);
                            Phase::Converging
                        }
                        PrLifecycle::Closed => {
                            let why = format!(
                                "PR {} was closed without merging",
                                self.pr_url(last.number)
                            );
                            run.reason = Some(why.clone());
                            halted = Some((ring.name.to_string(), why));
                            Phase::Halted
                        }
                    }
                } else {
                    Phase::Pending
                };
                runs.push(run);
            }
            let rollout = Rollout {
                name: name.to_owned(),
                order,
                summary: release.summary(),
                state: match halted {
                    Some((ring, reason)) => RolloutState::Halted { ring, reason },
                    None => RolloutState::Active,
                },
                created_at: now,
                updated_at: now,
                revert_of: None,
            };
            let ev = event(
                now,
                name,
                None,
                "rebuilt",
                format!(
                    "state rebuilt from {} ringmaster PR(s) after the store was lost; an unfinished soak restarts at 0",
                    prs.len()
                ),
            );
            if self.store.create_rollout(&rollout, &runs, &ev)? {
                rebuilt += 1;
            }
            order += 1;
        }
        Ok(rebuilt)
    }

    /// Every version the registry now gives the clusters of ring `index` for the components
    /// `release` moves: after a merge, what convergence must observe.
    fn step_changes_from_registry(
        &self,
        config: &Config,
        index: usize,
        release: &rings::model::Release,
    ) -> Vec<ChangeRecord> {
        let mut out = Vec::new();
        for c in config.ring_clusters(index) {
            if c.paused.is_some() {
                continue;
            }
            if let Some(k) = &release.kubernetes
                && c.kubernetes.major_minor() <= k.major_minor()
            {
                out.push(ChangeRecord {
                    cluster: c.id.to_string(),
                    component: "kubernetes".into(),
                    from: String::new(),
                    to: c.kubernetes.as_str().to_owned(),
                });
            }
            for (name, v) in &c.addons {
                if release.addons.contains_key(name) {
                    out.push(ChangeRecord {
                        cluster: c.id.to_string(),
                        component: format!("addon/{name}"),
                        from: String::new(),
                        to: v.as_str().to_owned(),
                    });
                }
            }
            for (name, v) in &c.policies {
                if release.policies.contains_key(name) {
                    out.push(ChangeRecord {
                        cluster: c.id.to_string(),
                        component: format!("policy/{name}"),
                        from: String::new(),
                        to: v.as_str().to_owned(),
                    });
                }
            }
        }
        out
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
                let Some(run) = self.store.ring_run(name, ring)? else {
                    break;
                };
                let span = tracing::info_span!("ring", rollout = name, ring = ring.as_str());
                let result = self
                    .advance(name, index, run, report)
                    .instrument(span)
                    .await;
                if !self.stepped(result, name, ring, report)? {
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

    /// What one `advance` of a ring run means for the loop over it: `true` when a transition
    /// was written (advance again), `false` when the run waits (or the forge failed in a way
    /// worth retrying next pass, noted in `report`).
    pub(super) fn stepped(
        &self,
        result: Result<bool, DaemonError>,
        rollout: &str,
        ring: &str,
        report: &mut PassReport,
    ) -> Result<bool, DaemonError> {
        match result {
            Ok(true) => {
                report.transitions += 1;
                Ok(true)
            }
            Ok(false) => Ok(false),
            Err(DaemonError::Forge(e)) if e.is_transient() => {
                report.warnings.push(format!(
                    "rollout `{rollout}`, ring `{ring}`: {e}; retrying next pass"
                ));
                report.due(self.clock.now() + PR_POLL);
                Ok(false)
            }
            Err(e) => Err(e),
        }
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

    /// The ring phases of every unfinished rollout, as of the store's current generation.
    fn occupancy(&self) -> Result<std::sync::Arc<Occupancy>, DaemonError> {
        if let Some(o) = self.occupancy.borrow().as_ref()
            && o.generation == self.store.generation()
        {
            return Ok(o.clone());
        }
        let fresh = std::sync::Arc::new(Occupancy::read(self.store)?);
        *self.occupancy.borrow_mut() = Some(fresh.clone());
        Ok(fresh)
    }

    async fn preflight_and_open(
        &mut self,
        rollout_name: &str,
        index: usize,
        run: RingRun,
        report: &mut PassReport,
    ) -> Result<bool, DaemonError> {
        let now = self.clock.now();
        let Some(loaded) = self.loaded.as_ref() else {
            return Ok(false);
        };
        let config = &loaded.config;
        let (Some(release), Some(ring)) = (
            config.release(rollout_name),
            config.ring_set.rings.get(index),
        ) else {
            return Ok(false);
        };
        let step = match next_ring_step(config, release, index) {
            Ok(s) => s,
            Err(ChangeError::Blocked {
                reason, cluster, ..
            }) => {
                let why = format!("cluster {cluster}: {reason}");
                return self.block(&run, why, report);
            }
            Err(e) => return Err(DaemonError::Config(e.to_string())),
        };
        if step.clusters.is_empty() {
            let mut new = run.clone();
            new.passed_at = Some(now);
            return self.moved(&run, new, Phase::Passed, None, "every step done".into());
        }
        // Preflight: every cluster of the step, built-in checks and the ring's preflight gates.
        let gates = preflight_gates(config, ring);
        let mut findings = Vec::new();
        let probe = &self.probe;
        let checks = step.clusters.iter().map(|cs| {
            let target = targets_of(&cs.changes);
            let gates = gates.clone();
            let span = tracing::info_span!("cluster", cluster = cs.cluster.id.as_str());
            async move {
                let f = probe.preflight(cs.cluster, &target, &gates).await;
                (cs.cluster.id.to_string(), f)
            }
            .instrument(span)
        });
        for (cluster, f) in futures_util::future::join_all(checks).await {
            findings.extend(f.into_iter().map(|f| format!("{cluster}: {f}")));
        }
        if !findings.is_empty() {
            let why = if findings.len() > 3 {
                format!(
                    "{} (and {} more)",
                    findings[..3].join("; "),
                    findings.len() - 3
                )
            } else {
                findings.join("; ")
            };
            return self.block(&run, format!("preflight: {why}"), report);
        }
        // Baselines for `baseline: preUpgrade` gates, taken before anything changes.
        let soak_gates = ring_gates(config, ring);
        let members = moving_members(config, &run);
        let baselines = self.probe.sample_baselines(&soak_gates, &members).await;

        // Build and push the branch, then find or open the PR.
        let number = run.steps.len() as u32 + 1;
        let last_pushed = run
            .steps
            .iter()
            .find(|s| s.step == number)
            .and_then(|s| Oid::from_str(&s.pr.head).ok());
        let request = StepRequest {
            config,
            release,
            ring_index: index,
            step: number,
            time: now,
        };
        let (publication, prepared) = match self.gitops.publish(&request, last_pushed) {
            Err(GitOpsError::StaleRegistry { .. }) => {
                // The base branch moved under the loaded registry: reload, try next time.
                self.refresh()?;
                report.due(now);
                return Ok(false);
            }
            other => other?,
        };
        let Some(prepared) = prepared else {
            debug_assert!(matches!(publication, Publication::NothingToChange));
            let mut new = run.clone();
            new.passed_at = Some(now);
            return self.moved(&run, new, Phase::Passed, None, "every step done".into());
        };
        let head = match publication {
            Publication::Pushed { commit, .. } | Publication::UpToDate { commit } => commit,
            Publication::NothingToChange => prepared.commit,
        };
        let runs = self.store.ring_runs(rollout_name)?;
        let matrix: Vec<(String, RingState)> = runs
            .iter()
            .map(|r| {
                if r.index as usize == index {
                    (
                        r.ring.clone(),
                        RingState::InProgress(format!("PR open (step {number})")),
                    )
                } else {
                    (r.ring.clone(), ring_state(r))
                }
            })
            .collect();
        let evidence = match index
            .checked_sub(1)
            .and_then(|p| runs.iter().find(|r| r.index as usize == p))
        {
            Some(prev) => evidence_of(self.store, config, prev, now)?,
            None => None,
        };
        let rule_checks = vec![
            "No downgrade: every change moves a version up (or the release allows rollback)."
                .to_owned(),
            "Kubernetes moves one minor per step; kubelets stay within the skew policy.".to_owned(),
            format!(
                "Preflight held on all {} clusters of this step (cluster answers, no drift from the registry, no kubelet ahead{}).",
                step.clusters.len(),
                if gates.is_empty() {
                    String::new()
                } else {
                    format!(", {} configured checks", gates.len())
                }
            ),
        ];
        let ctx = PrContext {
            config,
            release,
            ring_index: index,
            step: number,
            edits: &prepared.edits,
            left_out: &prepared.left_out,
            matrix: &matrix,
            evidence: evidence.as_ref(),
            checks: &rule_checks,
            revert: false,
        };
        let open = pr_request(&ctx, rollout_name, ring, &prepared);
        let pr = self.forge.find_or_open(&open).await?;
        let changes: Vec<ChangeRecord> = step
            .clusters
            .iter()
            .flat_map(|cs| {
                cs.changes.iter().map(|c| ChangeRecord {
                    cluster: cs.cluster.id.to_string(),
                    component: component_key(&c.component),
                    from: c.from.as_str().to_owned(),
                    to: c.to.as_str().to_owned(),
                })
            })
            .collect();
        let mut new = run.clone();
        let clusters = step
            .clusters
            .iter()
            .map(|c| c.cluster.id.to_string())
            .collect();
        record_step(
            &mut new,
            number,
            (pr, self.pr_url(pr)),
            (&prepared, head),
            (release.summary(), clusters, changes),
            now,
        );
        new.baselines = baselines.into_iter().map(|((g, c), v)| (g, c, v)).collect();
        let url = self.pr_url(pr);
        report.due(now + PR_POLL);
        self.moved(
            &run,
            new,
            Phase::PrOpen,
            None,
            format!("step {number}: PR {url} opened ({})", open.title),
        )
    }

    fn block(
        &self,
        run: &RingRun,
        why: String,
        report: &mut PassReport,
    ) -> Result<bool, DaemonError> {
        report.due(self.clock.now() + BLOCKED_POLL);
        if run.phase == Phase::Blocked && run.reason.as_deref() == Some(why.as_str()) {
            return Ok(false);
        }
        let new = run.clone();
        let changed = self.moved(
            run,
            new,
            Phase::Blocked,
            Some(why.clone()),
            format!("blocked: {why}"),
        )?;
        // Blocked → Blocked with a new reason is a write, not progress worth looping on.
        Ok(changed && run.phase != Phase::Blocked)
    }

    async fn pr_open(
        &mut self,
        rollout: &Rollout,
        index: usize,
        run: RingRun,
        report: &mut PassReport,
    ) -> Result<bool, DaemonError> {
        let now = self.clock.now();
        let Some(step) = run.current_step().cloned() else {
            // No step recorded: back to preflight to open one.
            let new = run.clone();
            return self.moved(
                &run,
                new,
                Phase::Preflight,
                None,
                "no PR recorded; preflight again".into(),
            );
        };
        let status = self.forge.status(step.pr.number).await?;
        if status.state == PrLifecycle::Open {
            self.post_notice(rollout, &run, &step).await?;
        }
        let Some(run) = self.store.ring_run(&run.rollout, &run.ring)? else {
            return Ok(false);
        };
        match status.state {
            PrLifecycle::Merged => {
                let Some(loaded) = self.loaded.as_ref() else {
                    return Ok(false);
                };
                let Some(ring) = loaded.config.ring_set.rings.get(index) else {
                    return Ok(false);
                };
                let mut new = run.clone();
                if let Some(s) = new.current_step_mut() {
                    s.merged_at = Some(now);
                    s.merge_commit = status.merge_sha.clone();
                }
                new.converge_deadline = Some(now + ring.converge_timeout);
                report.due(now);
                self.moved(
                    &run,
                    new,
                    Phase::Converging,
                    None,
                    format!(
                        "step {}: PR {} merged ({}); waiting up to {} for convergence",
                        step.step,
                        step.pr.url,
                        status.merge_sha.as_deref().map_or("?", short),
                        rings::duration::format_duration(ring.converge_timeout)
                    ),
                )
            }
            PrLifecycle::Closed => {
                let reason = format!("PR {} was closed without merging", step.pr.url);
                self.halt(rollout, run, reason, None).await
            }
            PrLifecycle::Open => {
                let Some(loaded) = self.loaded.as_ref() else {
                    return Ok(false);
                };
                let config = &loaded.config;
                let Some(ring) = config.ring_set.rings.get(index) else {
                    return Ok(false);
                };
                // Regenerate the branch when the base moved under it.
                let base_now = loaded.base.to_string();
                if step.base.as_deref().is_some_and(|b| b != base_now) {
                    return self.regenerate(rollout, index, run, step).await;
                }
                let wants_merge = match ring.merge {
                    MergeMode::Auto => true,
                    MergeMode::Manual => self.options.merge_approved && status.approved(),
                };
                let checks_ok = matches!(status.checks, Checks::Success | Checks::None);
                if !wants_merge || !checks_ok || status.head_sha != step.pr.head {
                    // Waiting for people (review, merge) or checks: poll.
                    report.due(now + PR_POLL);
                    return Ok(false);
                }
                if let Err((_, until)) = self.gate_of_change(config, ring, rollout, now)? {
                    // Ready to merge but outside the window or frozen: wake when it opens.
                    report.due(until.unwrap_or(now + PR_POLL));
                    return Ok(false);
                }
                // Fresh baselines right before the merge.
                let soak_gates = ring_gates(config, ring);
                let members = moving_members(config, &run);
                let baselines = self.probe.sample_baselines(&soak_gates, &members).await;
                match self.forge.merge(step.pr.number, &step.pr.head).await {
                    Ok(_) => {
                        // The base moved: the registry now says the new versions.
                        self.refresh()?;
                        if !baselines.is_empty() {
                            let mut new = run.clone();
                            new.baselines =
                                baselines.into_iter().map(|((g, c), v)| (g, c, v)).collect();
                            self.store.transition(&run, new, None, &[])?;
                        }
                        // The next status read sees the merge and moves to Converging.
                        Ok(true)
                    }
                    Err(ForgeError::HeadMoved { .. } | ForgeError::NotMergeable { .. }) => {
                        report.warnings.push(format!(
                            "PR {} not merged yet: head or base moved",
                            step.pr.url
                        ));
                        Ok(false)
                    }
                    Err(e) => Err(e.into()),
                }
            }
        }
    }

    async fn regenerate(
        &mut self,
        rollout: &Rollout,
        index: usize,
        run: RingRun,
        step: StepRecord,
    ) -> Result<bool, DaemonError> {
        let now = self.clock.now();
        let Some(loaded) = self.loaded.as_ref() else {
            return Ok(false);
        };
        let config = &loaded.config;
        if rollout.revert_of.is_some() {
            let lease = Oid::from_str(&step.pr.head).ok();
            let Some((head, prepared)) = self.publish_revert(&run, index, lease)? else {
                return Ok(false);
            };
            let mut new = run.clone();
            if let Some(s) = new.current_step_mut() {
                s.pr.head = head.to_string();
                s.base = Some(prepared.base.to_string());
            }
            return self.moved(
                &run,
                new,
                Phase::PrOpen,
                None,
                format!(
                    "base branch moved; revert branch {} regenerated",
                    step.pr.branch
                ),
            );
        }
        let Some(release) = config.release(&rollout.name) else {
            return Ok(false);
        };
        let request = StepRequest {
            config,
            release,
            ring_index: index,
            step: step.step,
            time: now,
        };
        let lease = Oid::from_str(&step.pr.head).ok();
        let (publication, prepared) = match self.gitops.publish(&request, lease) {
            Err(GitOpsError::StaleRegistry { .. }) => {
                self.refresh()?;
                return Ok(false);
            }
            other => other?,
        };
        let mut new = run.clone();
        let Some(prepared) = prepared else {
            return Ok(false);
        };
        let head = match publication {
            Publication::Pushed { commit, .. } | Publication::UpToDate { commit } => commit,
            Publication::NothingToChange => return Ok(false),
        };
        if let Some(s) = new.current_step_mut() {
            s.pr.head = head.to_string();
            s.base = Some(prepared.base.to_string());
        }
        self.moved(
            &run,
            new,
            Phase::PrOpen,
            None,
            format!(
                "step {}: base branch moved; branch {} regenerated at {}",
                step.step,
                step.pr.branch,
                short(&head.to_string())
            ),
        )
    }

    async fn converging(
        &mut self,
        index: usize,
        run: RingRun,
        report: &mut PassReport,
    ) -> Result<bool, DaemonError> {
        let now = self.clock.now();
        let Some(loaded) = self.loaded.as_ref() else {
            return Ok(false);
        };
        let config = &loaded.config;
        let Some(step) = run.current_step() else {
            return Ok(false);
        };
        let mut targets: BTreeMap<&str, Targets> = BTreeMap::new();
        for c in &step.changes {
            let t = targets.entry(c.cluster.as_str()).or_default();
            let Ok(v) = Version::parse(&c.to) else {
                continue;
            };
            if c.component == "kubernetes" {
                t.kubernetes = Some(v);
            } else if let Some(name) = c.component.strip_prefix("addon/") {
                t.addons.insert(name.to_owned(), v);
            } else if let Some(name) = c.component.strip_prefix("policy/") {
                t.policies.insert(name.to_owned(), v);
            }
        }
        let mut behind = Vec::new();
        let probe = &self.probe;
        let checks = targets.iter().filter_map(|(id, t)| {
            let cluster = config
                .fleet
                .clusters
                .iter()
                .find(|c| c.id.as_str() == *id)?;
            let span = tracing::info_span!("cluster", cluster = *id);
            Some(
                async move { (id.to_string(), probe.convergence(config, cluster, t).await) }
                    .instrument(span),
            )
        });
        for (id, r) in futures_util::future::join_all(checks).await {
            if let Some(why) = r.inconclusive {
                behind.push(format!("{id}: cannot tell ({why})"));
            } else if !r.converged {
                behind.push(format!("{id}: {}", r.behind.join(", ")));
            }
        }
        if behind.is_empty()
            && self
                .store
                .rollout(&run.rollout)?
                .is_some_and(|r| r.revert_of.is_some())
        {
            // A revert ring is done when its clusters run the restored versions.
            let mut new = run.clone();
            if let Some(s) = new.current_step_mut() {
                s.converged_at = Some(now);
                s.passed_at = Some(now);
            }
            new.passed_at = Some(now);
            return self.moved(
                &run,
                new,
                Phase::Passed,
                None,
                "reverted: every cluster runs the restored versions".to_owned(),
            );
        }
        if behind.is_empty() {
            let mut new = run.clone();
            if let Some(s) = new.current_step_mut() {
                s.converged_at = Some(now);
            }
            new.soak_started = Some(now);
            new.next_sample_at = Some(now);
            new.gate_due.clear();
            if new.baselines.is_empty() {
                // No pre-merge values (state rebuilt from the forge after the merge): take
                // them now, so restart growth and `baseline` gates compare with the soak's
                // start rather than stay inconclusive.
                if let Some(ring) = config.ring_set.rings.get(index) {
                    let gates = ring_gates(config, ring);
                    let members = moving_members(config, &run);
                    new.baselines = self
                        .probe
                        .sample_baselines(&gates, &members)
                        .await
                        .into_iter()
                        .map(|((g, c), v)| (g, c, v))
                        .collect();
                }
            }
            report.due(now);
            let soak = config
                .ring_set
                .rings
                .get(index)
                .map_or(TimeDelta::zero(), |r| r.soak);
            return self.moved(
                &run,
                new,
                Phase::Soaking,
                None,
                format!(
                    "step {}: every cluster converged; soaking for {}",
                    run.step_number(),
                    rings::duration::format_duration(soak)
                ),
            );
        }
        let deadline = run.converge_deadline.unwrap_or(now);
        if now >= deadline {
            let Some(rollout) = self.store.rollout(&run.rollout)? else {
                return Ok(false);
            };
            let reason = format!(
                "convergence timeout: after {} these clusters still do not run what Git says: {}",
                rings::duration::format_duration(
                    deadline
                        - run
                            .current_step()
                            .and_then(|s| s.merged_at)
                            .unwrap_or(deadline)
                ),
                behind.join("; ")
            );
            return self.halt(&rollout, run, reason, None).await;
        }
        if run.reason.as_deref() != Some(behind.join("; ").as_str()) {
            let mut new = run.clone();
            new.reason = Some(behind.join("; "));
            self.store.transition(&run, new, None, &[])?;
        }
        report.due((now + CONVERGE_POLL).min(deadline));
        Ok(false)
    }

    async fn soaking(
        &mut self,
        rollout: &Rollout,
        index: usize,
        run: RingRun,
        report: &mut PassReport,
    ) -> Result<bool, DaemonError> {
        let now = self.clock.now();
        let Some(loaded) = self.loaded.as_ref() else {
            return Ok(false);
        };
        let config = &loaded.config;
        let Some(ring) = config.ring_set.rings.get(index) else {
            return Ok(false);
        };
        let step_no = run.step_number();
        let start = run.soak_started.unwrap_or(now);
        let key = (run.rollout.clone(), run.ring.clone(), step_no);
        let tally = self
            .tallies
            .entry(key.clone())
            .or_insert_with(|| SoakTally {
                tally: soak::Tally::new(start, ring.soak),
                last_id: None,
                seen: 0,
            });
        tally.seen = self.passes;
        if tally.tally.start() != start || tally.tally.soak() != ring.soak {
            // Resumed (the gates run again from zero) or re-timed: start over.
            tally.tally = soak::Tally::new(start, ring.soak);
            tally.last_id = None;
        }
        let gates = ring_gates(config, ring);
        let members = moving_members(config, &run);
        // Sample the gates that are due.
        let due: Vec<&Gate> = gates
            .iter()
            .copied()
            .filter(|g| run.gate_due.get(g.name.as_str()).is_none_or(|t| *t <= now))
            .collect();
        // Nothing due and the soak not over: the verdict cannot have changed since the last
        // sample, so the samples are not read again (an idle pass stays cheap however long
        // the soak has been running).
        let soak_end = run.soak_started.unwrap_or(now) + ring.soak;
        if due.is_empty() && now < soak_end {
            let next = run.gate_due.values().min().copied().unwrap_or(soak_end);
            report.due(next.min(soak_end));
            return Ok(false);
        }
        let mut new = run.clone();
        if !due.is_empty() && !members.is_empty() {
            let baselines: Baselines = run
                .baselines
                .iter()
                .map(|(g, c, v)| ((g.clone(), c.clone()), *v))
                .collect();
            let results = self.probe.evaluate(&due, &members, &baselines).await;
            let records: Vec<SampleRecord> = results
                .into_iter()
                .map(|r| SampleRecord {
                    at: now,
                    gate: r.gate,
                    cluster: r.cluster,
                    outcome: match r.observation.outcome {
                        Outcome::Pass => SampleOutcome::Pass,
                        Outcome::Fail => SampleOutcome::Fail,
                        Outcome::Inconclusive => SampleOutcome::Inconclusive,
                    },
                    value: r.observation.value,
                    observed: r.observation.observed,
                })
                .collect();
            self.store
                .add_samples(&run.rollout, &run.ring, step_no, &records)?;
            for g in &due {
                new.gate_due.insert(g.name.to_string(), now + g.interval);
            }
        }
        // Fold the samples taken since the last look (all of them after a restart).
        let Some(tally) = self.tallies.get_mut(&key) else {
            return Ok(false);
        };
        for (id, record) in
            self.store
                .samples_after(&run.rollout, &run.ring, step_no, tally.last_id)?
        {
            tally.last_id = Some(id);
            if let Some(sample) = to_sample(&record)
                && let Some(gate) = gates.iter().find(|g| g.name == sample.gate)
            {
                tally.tally.add(gate, &sample);
            }
        }
        let owned_gates: Vec<Gate> = gates.iter().map(|g| (*g).clone()).collect();
        let ids: Vec<ClusterId> = members.iter().map(|c| c.id.clone()).collect();
        let verdict = tally.tally.verdict(&owned_gates, &ids, now);
        if !matches!(verdict, Verdict::Soaking { .. }) {
            self.tallies.remove(&key);
        }
        match verdict {
            Verdict::Halted { reason, .. } => self.halt(rollout, run, reason, Some(now)).await,
            Verdict::Passed => {
                new.passed_at = Some(now);
                if let Some(s) = new.current_step_mut() {
                    s.passed_at = Some(now);
                }
                let release = config.release(&rollout.name);
                let more = match release.map(|r| next_ring_step(config, r, index)) {
                    Some(Ok(s)) => !s.clusters.is_empty(),
                    _ => false,
                };
                let soak_text = rings::duration::format_duration(ring.soak);
                if more {
                    // The next step of this ring (a laggard one minor further), through its window.
                    new.soak_started = None;
                    new.next_sample_at = None;
                    new.passed_at = None;
                    self.moved(
                        &run,
                        new,
                        Phase::WaitingForWindow,
                        None,
                        format!(
                            "step {step_no} passed its {soak_text} soak; the ring has another step"
                        ),
                    )
                } else {
                    self.moved(
                        &run,
                        new,
                        Phase::Passed,
                        None,
                        format!("passed: every gate held on every cluster for {soak_text}"),
                    )
                }
            }
            Verdict::Soaking { passes_at, .. } => {
                let next_sample = new.gate_due.values().min().copied();
                let next = next_sample.map_or(passes_at, |s| s.min(passes_at)).max(now);
                report.due(next);
                new.next_sample_at = next_sample;
                if new != run {
                    self.store.transition(&run, new, None, &[])?;
                }
                Ok(false)
            }
        }
    }

    /// Halt: the ring and the rollout, one evidence comment and a label on the PR.
    async fn halt(
        &mut self,
        rollout: &Rollout,
        run: RingRun,
        reason: String,
        _at: Option<DateTime<Utc>>,
    ) -> Result<bool, DaemonError> {
        let now = self.clock.now();
        let evidence = match self.loaded.as_ref() {
            Some(l) => evidence_of(self.store, &l.config, &run, now)?,
            None => None,
        };
        let comment = halt_comment(&reason, evidence.as_ref());
        let mut new = run.clone();
        new.evidence = Some(comment.clone());
        let mut r = rollout.clone();
        r.state = RolloutState::Halted {
            ring: run.ring.clone(),
            reason: reason.clone(),
        };
        r.updated_at = now;
        new.phase = Phase::Halted;
        new.phase_since = now;
        new.reason = Some(reason.clone());
        let ev = event(now, &run.rollout, Some(&run.ring), "halted", reason);
        new.evidence_posted = false;
        // Recorded first; the comment and label follow (the Halted state posts them, keyed,
        // so a crash in between neither loses nor duplicates them).
        self.commit(&run, new, Some(&r), &[ev])
    }

    /// Tell the open PR about a pause or a global freeze (and when it is lifted): one keyed
    /// comment, written only when the notice changes.
    async fn post_notice(
        &mut self,
        rollout: &Rollout,
        run: &RingRun,
        step: &StepRecord,
    ) -> Result<(), DaemonError> {
        let now = self.clock.now();
        let wanted = if let RolloutState::Paused { by, reason } = &rollout.state {
            Some(format!(
                "⏸ **Paused** by {by}: {reason}. ringmaster will not merge this PR or open new ones \
                 for `{}` until `ringmaster resume {}`; soaks keep measuring.",
                rollout.name, rollout.name
            ))
        } else {
            self.store
                .global_freeze()?
                .filter(|f| now < f.until)
                .map(|f| {
                    format!(
                        "🧊 **Frozen** by {} until {}: {}. ringmaster will not merge this PR or open \
                         new ones until then (or `ringmaster unfreeze`); soaks keep measuring.",
                        f.by,
                        f.until.to_rfc3339(),
                        f.reason
                    )
                })
        };
        if wanted == run.notice {
            return Ok(());
        }
        let body = match &wanted {
            Some(text) => format!("{text}\n"),
            None => format!(
                "▶ The pause or freeze was lifted at {}; ringmaster goes on.\n",
                now.to_rfc3339()
            ),
        };
        self.forge
            .comment(step.pr.number, NOTICE_COMMENT, &body)
            .await?;
        let mut new = run.clone();
        new.notice = wanted;
        self.store.transition(run, new, None, &[])?;
        Ok(())
    }

    /// A halted ring whose evidence is not on its PR yet: comment (keyed: never twice) and
    /// label, then remember it.
    async fn post_evidence(&mut self, run: RingRun) -> Result<bool, DaemonError> {
        if run.evidence_posted {
            return Ok(false);
        }
        let (Some(comment), Some(step)) = (run.evidence.clone(), run.current_step().cloned())
        else {
            let mut new = run.clone();
            new.evidence_posted = true;
            self.store.transition(&run, new, None, &[])?;
            return Ok(false);
        };
        let now = self.clock.now();
        let n = step.pr.number;
        self.forge.comment(n, HALT_COMMENT, &comment).await?;
        self.forge.add_labels(n, &[HALTED_LABEL.to_owned()]).await?;
        let mut new = run.clone();
        new.evidence_posted = true;
        let ev = event(
            now,
            &run.rollout,
            Some(&run.ring),
            "evidence",
            format!(
                "halt evidence commented on {} (label {HALTED_LABEL})",
                step.pr.url
            ),
        );
        self.store.transition(&run, new, None, &[ev])?;
        Ok(false)
    }
}

/// What a cluster must run after a step.
pub fn targets_of(changes: &[policies::versions::Change]) -> Targets {
    let mut t = Targets::default();
    for c in changes {
        match &c.component {
            Component::Kubernetes => t.kubernetes = Some(c.to.clone()),
            Component::Addon(n) => {
                t.addons.insert(n.clone(), c.to.clone());
            }
            Component::Policy(n) => {
                t.policies.insert(n.clone(), c.to.clone());
            }
        }
    }
    t
}

fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn occupant(name: &str, order: u32, revert: bool, phases: &[Phase]) -> Occupant {
        let rings = ["sandbox", "canary", "prod"];
        Occupant {
            name: name.to_owned(),
            order,
            revert,
            phases: phases
                .iter()
                .enumerate()
                .map(|(i, p)| state::RingPhase {
                    ring: rings[i].to_owned(),
                    index: i as u32,
                    phase: *p,
                })
                .collect(),
        }
    }

    #[test]
    fn a_ring_is_free_in_release_order_and_never_while_held() {
        use Phase::*;
        let occupancy = Occupancy {
            generation: 0,
            rollouts: vec![
                occupant("a", 0, false, &[Passed, Soaking, Pending]),
                occupant("b", 1, false, &[Passed, Pending, Pending]),
                occupant("c", 2, false, &[Pending, Pending, Pending]),
            ],
        };
        // `a` may move on only once its own previous ring passed.
        assert!(!occupancy.is_free("a", 0, Some("canary"), "prod"));
        // `b`'s sandbox passed but `a` still soaks in canary.
        assert!(!occupancy.is_free("b", 1, Some("sandbox"), "canary"));
        // `c` may take sandbox: every earlier rollout passed it.
        assert!(occupancy.is_free("c", 2, None, "sandbox"));
        // Not before an earlier rollout that has not passed it.
        let behind = Occupancy {
            generation: 0,
            rollouts: vec![
                occupant("a", 0, false, &[PrOpen, Pending, Pending]),
                occupant("b", 1, false, &[Pending, Pending, Pending]),
            ],
        };
        assert!(!behind.is_free("b", 1, None, "sandbox"));
        assert!(behind.is_free("a", 0, None, "sandbox"));
        // A revert holds the rings it started, whatever its order.
        let reverting = Occupancy {
            generation: 0,
            rollouts: vec![
                occupant("c", 2, false, &[Pending, Pending, Pending]),
                occupant("a-revert", 3, true, &[Converging, Pending, Pending]),
            ],
        };
        assert!(!reverting.is_free("c", 2, None, "sandbox"));
        assert_eq!(reverting.phase("a-revert", "sandbox"), Some(Converging));
        assert_eq!(reverting.order("c"), Some(2));
        // A ring removed from the ring file mid-rollout (canary): prod follows sandbox now, and
        // the rollout that passed sandbox and canary may take prod.
        let edited = Occupancy {
            generation: 0,
            rollouts: vec![occupant("a", 0, false, &[Passed, Passed, Pending])],
        };
        assert_eq!(edited.phase("a", "prod"), Some(Pending));
        assert!(edited.is_free("a", 0, Some("sandbox"), "prod"));
        assert_eq!(reverting.order("gone"), None);
    }
}

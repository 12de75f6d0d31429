//! Operating the daemon with 1,000 stored rollouts (DESIGN §13, issue 9):
//!
//! - restart-to-resumed: from nothing in memory, `Store::open` + the `Daemon` (mirror opened,
//!   local forge) + the first complete `pass()` with a scripted probe that answers at once —
//!   until the daemon has looked at every unfinished rollout again (target ≤ 1 s). The same
//!   restart of the real binary, `ringmaster --config … run --once` (live probe, no cluster
//!   reachable), as wall time of the whole process;
//! - `/metrics` scrape time: `api::metrics::exposition` over the 1,000 rollouts (budget 1 s:
//!   a tenth of Prometheus's default 10 s scrape timeout, and a scrape holds nothing the
//!   reconcile loop needs, so a tenth leaves headroom for a slow disk or a busy core).
//!
//! Setup: the example fleet (15 clusters, 4 rings, its real windows, soaks and gates) with its
//! releases replaced by 1,000 add-on releases `addons-0001` … `addons-1000` bumping CoreDNS to
//! 1.12.1 … 1.12.1000. The store is written directly: `Store::create_rollout`, then one
//! `Store::transition` per ring that left `pending` carrying the journal entries the daemon
//! would have written on the way (the daemon writes one transition per phase, so revisions are
//! lower than a real store's). 922 rollouts completed, 18 aborted after a halt in
//! `prod-canary`, and 60 unfinished ones in the pipeline the daemon's rules allow (one rollout
//! per ring, file order): `prod-main` soaking (20 h of its 48 h), one halted in `prod-canary`
//! with 8 rollouts queued behind it, `nonprod` soaking (2 h of 4 h), `sandbox` converging, 48
//! queued (one of them paused). Soaking and halted rings carry one sample per gate, cluster and
//! gate interval (1 min) of their soak so far. Passed rings carry no samples (a real store keeps
//! every sample forever; the last section measures what that costs a scrape). No local-forge
//! PR records are written: none of these states asks the forge. The daemon stopped 10 minutes
//! before the restart, so every soaking gate is overdue.
//!
//! Run: `cargo bench -p orchestrator --bench operations` (release build). Prints the figures
//! and their ratios to the targets; exits 1 when a target is missed. Everything happens in a
//! temp directory, removed at the end (`BENCH_KEEP=1` keeps it). `BENCH_SKIP_BINARY=1` skips the real binary;
//! `BENCH_PROFILE=scrape:<secs>` (or `restart:<secs>`) scrapes (or restarts) in a loop for
//! that long (for `perf record`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;
use support::{daemon, observation, percentile};

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use orchestrator::api::metrics::{self, Metrics};
use orchestrator::daemon::clock::ManualClock;
use orchestrator::daemon::{PassReport, evidence_of, halt_comment};
use orchestrator::gitops::mirror::Mirror;
use policies::soak::Outcome;
use rings::model::{Cluster, Config, Release};
use state::{
    ChangeRecord, Event, Phase, PrLink, RingRun, Rollout, RolloutState, SampleOutcome,
    SampleRecord, StepRecord, Store,
};

const ROLLOUTS: usize = 1_000;
const RINGS: usize = 4;
const RUNS: usize = 5;
const SCRAPES: usize = 20;
const TARGET_RESTART_MS: f64 = 1_000.0;
/// A tenth of Prometheus's default `scrape_timeout` (10 s).
const SCRAPE_BUDGET_MS: f64 = 1_000.0;
/// How long the daemon was down before the restart.
const DOWNTIME: TimeDelta = TimeDelta::minutes(10);
/// A run of the real binary that takes longer than this is killed (the bench stays bounded).
const BINARY_TIMEOUT: Duration = Duration::from_secs(120);
/// Completed rollouts given every sample of their four soaks for the last measurement.
const FULL_HISTORY_ROLLOUTS: usize = 2;

fn record(at: DateTime<Utc>, gate: &str, cluster: &str, outcome: Outcome) -> SampleRecord {
    let (value, observed) = observation(gate, outcome);
    SampleRecord {
        at,
        gate: gate.to_owned(),
        cluster: cluster.to_owned(),
        outcome: match outcome {
            Outcome::Pass => SampleOutcome::Pass,
            Outcome::Fail => SampleOutcome::Fail,
            Outcome::Inconclusive => SampleOutcome::Inconclusive,
        },
        value,
        observed,
    }
}

/// The example fleet with its releases replaced by 1,000 add-on releases. Returns
/// `ringmaster.yaml` and the loaded configuration.
fn setup(dir: &Path) -> (PathBuf, Config) {
    let (config, loaded) = support::addon_fleet(
        dir,
        ROLLOUTS,
        |n| format!("addons-{n:04}"),
        |n| format!("1.12.{n}"),
    );
    assert_eq!(loaded.ring_set.rings.len(), RINGS);
    (config, loaded)
}

/// What became of each stored rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// Every ring passed.
    Completed,
    /// Halted in `prod-canary`, then aborted by a person.
    Aborted,
    /// `sandbox` … `prod-canary` passed, `prod-main` 20 h into its 48 h soak.
    ProdMainSoaking,
    /// Halted in `prod-canary` (error-ratio failed 3 samples in a row); waiting for a person.
    HaltedCanary,
    /// `sandbox` and `nonprod` passed; `prod-canary` is held by the halted rollout.
    QueuedBehindHalt,
    /// `sandbox` passed, `nonprod` 2 h into its 4 h soak.
    NonprodSoaking,
    /// `sandbox`'s PR merged 5 minutes before the stop; converging.
    SandboxConverging,
    /// Every ring pending: an earlier rollout holds `sandbox`.
    Queued,
    /// Queued, and paused by a person.
    QueuedPaused,
}

fn fate(i: usize) -> Fate {
    match i {
        0..=939 if i % 50 == 49 => Fate::Aborted,
        0..=939 => Fate::Completed,
        940 => Fate::ProdMainSoaking,
        941 => Fate::HaltedCanary,
        942..=949 => Fate::QueuedBehindHalt,
        950 => Fate::NonprodSoaking,
        951 => Fate::SandboxConverging,
        975 => Fate::QueuedPaused,
        _ => Fate::Queued,
    }
}

/// How far each ring of a rollout got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reached {
    Pending,
    Converging,
    /// Soaking for this long.
    Soaking(TimeDelta),
    /// Halted this long into the soak, by three failing error-ratio samples on one cluster.
    Halted(TimeDelta),
    Passed,
}

fn plan(fate: Fate) -> [Reached; RINGS] {
    use Reached::*;
    match fate {
        Fate::Completed => [Passed; RINGS],
        Fate::Aborted | Fate::HaltedCanary => {
            [Passed, Passed, Halted(TimeDelta::hours(3)), Pending]
        }
        Fate::ProdMainSoaking => [Passed, Passed, Passed, Soaking(TimeDelta::hours(20))],
        Fate::QueuedBehindHalt => [Passed, Passed, Pending, Pending],
        Fate::NonprodSoaking => [Passed, Soaking(TimeDelta::hours(2)), Pending, Pending],
        Fate::SandboxConverging => [Converging, Pending, Pending, Pending],
        Fate::Queued | Fate::QueuedPaused => [Pending; RINGS],
    }
}

#[derive(Debug, Default)]
struct SeedReport {
    by_state: std::collections::BTreeMap<&'static str, usize>,
    by_phase: std::collections::BTreeMap<&'static str, usize>,
    samples: usize,
    events: usize,
}

struct Seeder<'a> {
    store: &'a Store,
    config: &'a Config,
    /// The base branch head (steps record the base they were built on).
    base: String,
    next_pr: u64,
    report: SeedReport,
}

fn ev(at: DateTime<Utc>, rollout: &str, ring: Option<&str>, kind: &str, msg: String) -> Event {
    Event {
        at,
        rollout: rollout.to_owned(),
        ring: ring.map(str::to_owned),
        kind: kind.to_owned(),
        message: msg,
        actor: "ringmaster".to_owned(),
    }
}

fn fake_sha(seed: u64, salt: u64) -> String {
    format!("{:020x}{:020x}", seed.wrapping_mul(0x9e37_79b9), salt)
}

impl Seeder<'_> {
    /// The gate-by-gate sample rounds of a soak, one per gate interval from `from` to `to`
    /// (inclusive), on `members`; the last `fail_last` error-ratio samples of the first member
    /// fail.
    fn rounds(
        &self,
        ring: usize,
        members: &[String],
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        fail_last: usize,
    ) -> Vec<SampleRecord> {
        let ring = &self.config.ring_set.rings[ring];
        let mut out = Vec::new();
        for g in &ring.gates {
            let gate = &self.config.ring_set.gates[g];
            let n = ((to - from).num_seconds() / gate.interval.num_seconds()) as usize + 1;
            for k in 0..n {
                let at = from + gate.interval * k as i32;
                for (m, cluster) in members.iter().enumerate() {
                    let fail = g.as_str() == "error-ratio" && m == 0 && k + fail_last >= n;
                    let outcome = if fail { Outcome::Fail } else { Outcome::Pass };
                    out.push(record(at, g.as_str(), cluster, outcome));
                }
            }
        }
        out
    }

    #[allow(clippy::too_many_lines)]
    fn rollout(&mut self, i: usize, release: &Release, last: DateTime<Utc>) {
        let name = release.name.to_string();
        let fate = fate(i);
        let plan = plan(fate);
        // History: one rollout every 4 days (the pace the 48 h prod-main soak and its
        // Tuesday/Wednesday window allow), ending a week before the in-flight ones.
        let created = match fate {
            Fate::Completed | Fate::Aborted => {
                last - TimeDelta::days(7) - TimeDelta::days(4) * (940 - i) as i32
            }
            Fate::ProdMainSoaking => last - TimeDelta::hours(50),
            Fate::HaltedCanary => last - TimeDelta::hours(40),
            Fate::QueuedBehindHalt => last - TimeDelta::hours(36 - 3 * (i - 942) as i64),
            Fate::NonprodSoaking => last - TimeDelta::hours(5),
            _ => last - TimeDelta::hours(3),
        };
        let rings = &self.config.ring_set.rings;
        let pending: Vec<RingRun> = rings
            .iter()
            .enumerate()
            .map(|(r, ring)| RingRun::pending(&name, ring.name.as_str(), r as u32, created))
            .collect();
        let mut rollout = Rollout {
            name: name.clone(),
            order: i as u32,
            summary: release.summary(),
            state: RolloutState::Active,
            created_at: created,
            updated_at: created,
            revert_of: None,
        };
        let started = ev(
            created,
            &name,
            None,
            "started",
            format!(
                "rollout of {} ({}) started across {RINGS} rings",
                release.summary(),
                release.source
            ),
        );
        assert!(
            self.store
                .create_rollout(&rollout, &pending, &started)
                .unwrap()
        );
        self.report.events += 1;

        let coredns = release.addons.get("coredns").unwrap().as_str().to_owned();
        let moving: Vec<&Reached> = plan.iter().filter(|p| **p != Reached::Pending).collect();
        let last_moving = moving.len();
        // Each ring starts an hour after the previous one passed.
        let mut start = created + TimeDelta::minutes(5);
        let mut moved = 0;
        for (r, reached) in plan.iter().enumerate() {
            let run = &pending[r];
            if *reached == Reached::Pending {
                *self.report.by_phase.entry("pending").or_default() += 1;
                continue;
            }
            moved += 1;
            let ring = &rings[r];
            let ring_name = ring.name.as_str();
            let members: Vec<&Cluster> = self.config.ring_clusters(r).collect();
            let ids: Vec<String> = members.iter().map(|c| c.id.to_string()).collect();
            let changes: Vec<ChangeRecord> = members
                .iter()
                .filter_map(|c| {
                    Some(ChangeRecord {
                        cluster: c.id.to_string(),
                        component: "addon/coredns".into(),
                        from: c.addons.get("coredns")?.as_str().to_owned(),
                        to: coredns.clone(),
                    })
                })
                .collect();
            self.next_pr += 1;
            let number = self.next_pr;
            let url = format!("local#{number}");
            // Where the timeline of this ring puts each phase.
            let (opened, merged) = match reached {
                Reached::Converging => {
                    (last - TimeDelta::minutes(65), last - TimeDelta::minutes(5))
                }
                Reached::Soaking(d) => {
                    let conv = last - *d;
                    (conv - TimeDelta::minutes(70), conv - TimeDelta::minutes(10))
                }
                _ => (
                    start + TimeDelta::minutes(2),
                    start + TimeDelta::minutes(62),
                ),
            };
            let converged = merged + TimeDelta::minutes(8);
            let step = StepRecord {
                step: 1,
                pr: PrLink {
                    number,
                    url: url.clone(),
                    branch: format!("ringmaster/{name}/{ring_name}/1"),
                    head: fake_sha(number, 1),
                },
                summary: release.summary(),
                clusters: changes.iter().map(|c| c.cluster.clone()).collect(),
                opened_at: opened,
                merged_at: Some(merged),
                merge_commit: Some(fake_sha(number, 2)),
                converged_at: None,
                passed_at: None,
                base: Some(self.base.clone()),
                changes,
            };
            let mut new = run.clone();
            new.members = ids.clone();
            new.started_at = Some(opened - TimeDelta::minutes(2));
            new.converge_deadline = Some(merged + ring.converge_timeout);
            new.steps = vec![step];
            let soak = rings::duration::format_duration(ring.soak);
            let mut events = vec![
                ev(
                    opened - TimeDelta::minutes(2),
                    &name,
                    Some(ring_name),
                    "waitingForWindow",
                    format!(
                        "ring started with {} clusters ({} to change, 0 left out)",
                        ids.len(),
                        ids.len()
                    ),
                ),
                ev(
                    opened - TimeDelta::minutes(1),
                    &name,
                    Some(ring_name),
                    "preflight",
                    "window open: preflight".into(),
                ),
                ev(
                    opened,
                    &name,
                    Some(ring_name),
                    "prOpen",
                    format!(
                        "step 1: PR {url} opened ([ring {}/{RINGS} {ring_name}] {})",
                        r + 1,
                        release.summary()
                    ),
                ),
                ev(
                    merged,
                    &name,
                    Some(ring_name),
                    "converging",
                    format!(
                        "step 1: PR {url} merged ({}); waiting up to {} for convergence",
                        &fake_sha(number, 2)[..12],
                        rings::duration::format_duration(ring.converge_timeout)
                    ),
                ),
            ];
            let mut samples = Vec::new();
            match *reached {
                Reached::Converging => {
                    new.phase = Phase::Converging;
                    new.phase_since = merged;
                    new.reason = Some(
                        ids.iter()
                            .map(|c| format!("{c}: addon coredns not yet {coredns}"))
                            .collect::<Vec<_>>()
                            .join("; "),
                    );
                }
                Reached::Soaking(d) => {
                    let conv = last - d;
                    new.steps[0].converged_at = Some(conv);
                    new.phase = Phase::Soaking;
                    new.phase_since = conv;
                    new.soak_started = Some(conv);
                    for g in &ring.gates {
                        let gate = &self.config.ring_set.gates[g];
                        let k = (last - conv).num_seconds() / gate.interval.num_seconds();
                        let at = conv + gate.interval * k as i32;
                        new.gate_due.insert(g.to_string(), at + gate.interval);
                    }
                    new.next_sample_at = new.gate_due.values().min().copied();
                    events.push(ev(
                        conv,
                        &name,
                        Some(ring_name),
                        "soaking",
                        format!("step 1: every cluster converged; soaking for {soak}"),
                    ));
                    samples = self.rounds(r, &ids, conv, last, 0);
                }
                Reached::Halted(d) => {
                    new.steps[0].converged_at = Some(converged);
                    new.soak_started = Some(converged);
                    let at = converged + d;
                    samples = self.rounds(r, &ids, converged, at, 3);
                    events.push(ev(
                        converged,
                        &name,
                        Some(ring_name),
                        "soaking",
                        format!("step 1: every cluster converged; soaking for {soak}"),
                    ));
                    let reason = format!(
                        "gate `error-ratio` failed 3 consecutive samples on {} (limit 3); last observed 0.034",
                        ids[0]
                    );
                    // The evidence the daemon comments, from the stored samples.
                    self.store
                        .add_samples(&name, ring_name, 1, &samples)
                        .unwrap();
                    self.report.samples += samples.len();
                    samples.clear();
                    let evidence = evidence_of(self.store, self.config, &new, at).unwrap();
                    new.evidence = Some(halt_comment(&name, &reason, evidence.as_ref()));
                    new.evidence_posted = true;
                    new.phase = Phase::Halted;
                    new.phase_since = at;
                    new.reason = Some(reason.clone());
                    rollout.state = RolloutState::Halted {
                        ring: ring_name.to_owned(),
                        reason: reason.clone(),
                    };
                    rollout.updated_at = at;
                    events.push(ev(at, &name, Some(ring_name), "halted", reason));
                    events.push(ev(
                        at + TimeDelta::seconds(1),
                        &name,
                        Some(ring_name),
                        "evidence",
                        format!(
                            "halt evidence commented on {url} (label {})",
                            orchestrator::daemon::HALTED_LABEL
                        ),
                    ));
                    if fate == Fate::Aborted {
                        let by = at + TimeDelta::hours(2);
                        rollout.state = RolloutState::Aborted {
                            by: "alice".into(),
                            reason: "CoreDNS regression upstream; superseded by the next release"
                                .into(),
                        };
                        rollout.updated_at = by;
                        let mut e = ev(
                            by,
                            &name,
                            None,
                            "aborted",
                            "aborted: CoreDNS regression upstream; superseded by the next release"
                                .into(),
                        );
                        e.actor = "alice".into();
                        events.push(e);
                    }
                }
                Reached::Passed => {
                    let passed = converged + ring.soak;
                    new.steps[0].converged_at = Some(converged);
                    new.steps[0].passed_at = Some(passed);
                    new.soak_started = Some(converged);
                    new.passed_at = Some(passed);
                    new.phase = Phase::Passed;
                    new.phase_since = passed;
                    for g in &ring.gates {
                        new.gate_due.insert(g.to_string(), passed);
                    }
                    events.push(ev(
                        converged,
                        &name,
                        Some(ring_name),
                        "soaking",
                        format!("step 1: every cluster converged; soaking for {soak}"),
                    ));
                    events.push(ev(
                        passed,
                        &name,
                        Some(ring_name),
                        "passed",
                        format!("passed: every gate held on every cluster for {soak}"),
                    ));
                    start = passed + TimeDelta::hours(1);
                    if fate == Fate::Completed && moved == last_moving {
                        rollout.state = RolloutState::Completed;
                        rollout.updated_at = passed;
                        events.push(ev(
                            passed,
                            &name,
                            None,
                            "completed",
                            "every ring passed".into(),
                        ));
                    }
                }
                Reached::Pending => unreachable!(),
            }
            if !samples.is_empty() {
                self.store
                    .add_samples(&name, ring_name, 1, &samples)
                    .unwrap();
                self.report.samples += samples.len();
            }
            *self.report.by_phase.entry(new.phase.as_str()).or_default() += 1;
            self.report.events += events.len();
            let with_rollout = (moved == last_moving).then_some(&rollout);
            self.store
                .transition(run, new, with_rollout, &events)
                .unwrap()
                .expect("first writer");
        }
        if fate == Fate::QueuedPaused {
            rollout.state = RolloutState::Paused {
                by: "bob".into(),
                reason: "waiting for the CoreDNS 1.12 changelog review".into(),
            };
            rollout.updated_at = last - TimeDelta::hours(1);
            let mut e = ev(
                rollout.updated_at,
                &name,
                None,
                "paused",
                "paused: waiting for the CoreDNS 1.12 changelog review".into(),
            );
            e.actor = "bob".into();
            self.store.put_rollout(&rollout, &[e]).unwrap();
            self.report.events += 1;
        }
        *self
            .report
            .by_state
            .entry(rollout.state.word())
            .or_default() += 1;
    }

    /// Every sample of the four soaks of a completed rollout, at each gate's interval.
    fn full_history(&mut self, name: &str) -> usize {
        let mut n = 0;
        for (r, run) in self.store.ring_runs(name).unwrap().iter().enumerate() {
            let (Some(from), Some(to)) = (run.soak_started, run.passed_at) else {
                continue;
            };
            let samples = self.rounds(r, &run.members, from, to, 0);
            n += samples.len();
            for chunk in samples.chunks(20_000) {
                self.store.add_samples(name, &run.ring, 1, chunk).unwrap();
            }
        }
        n
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let m = e.metadata().unwrap();
            if m.is_dir() {
                dir_bytes(&e.path())
            } else {
                m.len()
            }
        })
        .sum()
}

/// Put the seeded store back (every run starts from the same stored state).
fn restore(store: &Path, pristine: &Path) {
    if store.exists() {
        std::fs::remove_dir_all(store).unwrap();
    }
    copy_dir(pristine, store);
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    percentile(&v, 0.5)
}

#[derive(Debug)]
struct Restart {
    open_ms: f64,
    build_ms: f64,
    pass_ms: f64,
    total_ms: f64,
    report: PassReport,
}

/// One restart in this process: open the store, build the daemon, one pass. Nothing is kept
/// from an earlier run but the OS's file cache.
async fn restart(config: &Path, store_path: &Path, now: DateTime<Utc>) -> Restart {
    let start = Instant::now();
    let store = Store::open(store_path).unwrap();
    let opened = start.elapsed();
    let mut d = daemon(config, &store, ManualClock::new(now));
    let built = start.elapsed();
    let report = d.pass().await.unwrap();
    let total = start.elapsed();
    drop(d);
    drop(store);
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    Restart {
        open_ms: ms(opened),
        build_ms: ms(built - opened),
        pass_ms: ms(total - built),
        total_ms: ms(total),
        report,
    }
}

/// What the first pass after the restart changed: (samples added to soaking rings, ring runs
/// whose phase moved, inconclusive samples among the added ones).
fn effects(store_path: &Path, pristine: &Path) -> (usize, Vec<String>, usize) {
    let before_dir = tempfile::tempdir().unwrap();
    copy_dir(pristine, &before_dir.path().join("db"));
    let before = Store::open(&before_dir.path().join("db")).unwrap();
    let after = Store::open(store_path).unwrap();
    let (mut added, mut inconclusive, mut moved) = (0, 0, Vec::new());
    for r in after.rollouts().unwrap() {
        for run in after.ring_runs(&r.name).unwrap() {
            let old = before.ring_run(&r.name, &run.ring).unwrap().unwrap();
            if old.phase != run.phase {
                moved.push(format!(
                    "{}/{}: {} → {}",
                    r.name,
                    run.ring,
                    old.phase.as_str(),
                    run.phase.as_str()
                ));
            }
            if run.phase == Phase::Soaking || old.phase == Phase::Soaking {
                let step = run.step_number();
                let a = after.samples(&r.name, &run.ring, step).unwrap();
                let b = before.samples(&r.name, &run.ring, step).unwrap().len();
                added += a.len() - b;
                inconclusive += a[b..]
                    .iter()
                    .filter(|s| s.outcome == SampleOutcome::Inconclusive)
                    .count();
            }
        }
    }
    (added, moved, inconclusive)
}

/// Run the real binary once, bounded: (wall ms, exit success, what it wrote).
fn run_binary(bin: &Path, config: &Path, kubeconfig: &Path) -> (f64, bool, String) {
    let out_file = config.parent().unwrap().join("run.out");
    let err_file = config.parent().unwrap().join("run.err");
    let start = Instant::now();
    let mut child = Command::new(bin)
        .arg("--config")
        .arg(config)
        .args(["run", "--once"])
        .env("KUBECONFIG", kubeconfig)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_file).unwrap())
        .stderr(std::fs::File::create(&err_file).unwrap())
        .spawn()
        .unwrap();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > BINARY_TIMEOUT {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("`ringmaster run --once` took over {BINARY_TIMEOUT:?}; killed");
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let wall = start.elapsed().as_secs_f64() * 1e3;
    let stdout = std::fs::read_to_string(&out_file).unwrap_or_default();
    let stderr = std::fs::read_to_string(&err_file).unwrap_or_default();
    (wall, status.success(), format!("{stdout}{stderr}"))
}

/// A kubeconfig with a context for every cluster of the fleet, each pointing at a port where
/// nothing listens.
fn write_refusing_kubeconfig(path: &Path, config: &Config) {
    let mut text = String::from(
        "apiVersion: v1\nkind: Config\nusers:\n- name: bench\n  user: { token: none }\nclusters:\n",
    );
    for c in &config.fleet.clusters {
        text.push_str(&format!("- name: {0}\n  cluster: {{ server: \"https://127.0.0.1:1\", insecure-skip-tls-verify: true }}\n", c.kube_context));
    }
    text.push_str("contexts:\n");
    for c in &config.fleet.clusters {
        text.push_str(&format!(
            "- name: {0}\n  context: {{ cluster: {0}, user: bench }}\n",
            c.kube_context
        ));
    }
    std::fs::write(path, text).unwrap();
}

/// The real binary restarted on the seeded store: medians of `RUNS` after a warm-up.
struct BinaryFigures {
    /// The restart (overdue gates).
    first_ms: f64,
    /// Started again right after.
    idle_ms: f64,
    /// What the first restart's pass did (warm-up run): samples taken, inconclusive ones,
    /// phases moved.
    added: usize,
    inconclusive: usize,
    moved: Vec<String>,
}

fn binary_restarts(
    bin: &Path,
    config: &Path,
    store_path: &Path,
    pristine: &Path,
    kubeconfig: &Path,
) -> BinaryFigures {
    let (mut first, mut idle) = (Vec::new(), Vec::new());
    let mut effect = None;
    for k in 0..=RUNS {
        restore(store_path, pristine);
        let (ms, ok, stderr) = run_binary(bin, config, kubeconfig);
        assert!(ok, "`ringmaster run --once` failed:\n{stderr}");
        if k == 0 {
            effect = Some(effects(store_path, pristine));
        } else {
            first.push(ms);
        }
        // Straight away again: no gate is due any more.
        let (ms, ok, stderr) = run_binary(bin, config, kubeconfig);
        assert!(ok, "second `ringmaster run --once` failed:\n{stderr}");
        if k > 0 {
            idle.push(ms);
        }
    }
    let (added, moved, inconclusive) = effect.unwrap();
    BinaryFigures {
        first_ms: median(first),
        idle_ms: median(idle),
        added,
        inconclusive,
        moved,
    }
}

/// `exposition` `n` times: sorted times in ms and the last body.
fn scrapes(
    store: &Store,
    config: &Config,
    metrics: &Metrics,
    now: DateTime<Utc>,
    n: usize,
) -> (Vec<f64>, String) {
    let mut body = metrics::exposition(store, Some(config), metrics, now).unwrap(); // warm-up
    let mut times: Vec<f64> = (0..n)
        .map(|_| {
            let start = Instant::now();
            body = metrics::exposition(store, Some(config), metrics, now).unwrap();
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    (times, body)
}

fn status_ms(store: &Store, config: &Config, now: DateTime<Utc>, n: usize) -> f64 {
    median(
        (0..n)
            .map(|_| {
                let start = Instant::now();
                let v =
                    orchestrator::daemon::status::status_json(store, Some(config), now).unwrap();
                std::hint::black_box(v);
                start.elapsed().as_secs_f64() * 1e3
            })
            .collect(),
    )
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let tmp = tempfile::tempdir().unwrap();
    if std::env::var_os("BENCH_KEEP").is_some() {
        println!("keeping {} (BENCH_KEEP)", tmp.path().display());
    }
    let dir = tmp.path().join("fleet");
    let (config_path, config) = setup(&dir);
    let settings = rings::load::load_settings(&config_path).unwrap();
    let store_path = settings.store_path.clone();
    let pristine = tmp.path().join("store.pristine");
    // The restart instant; the daemon's last pass was DOWNTIME earlier. Real time (to the
    // second), so that the real binary, on the system clock, sees the same situation.
    let now = Utc::now().duration_trunc(TimeDelta::seconds(1)).unwrap();
    let last = now - DOWNTIME;

    // The mirror a restarted daemon finds on disk (cloned by its first run).
    {
        let mirror = Mirror::open(
            &settings.data_dir,
            &settings.gitops.location,
            settings.gitops.auth.clone(),
        )
        .unwrap();
        mirror.fetch(&settings.gitops.branch).unwrap();
    }
    let base = git2::Repository::open(dir.join("gitops"))
        .unwrap()
        .refname_to_id("refs/heads/main")
        .unwrap()
        .to_string();

    println!(
        "seeding {ROLLOUTS} rollouts × {RINGS} ring runs (example fleet: {} clusters; ring sizes {})…",
        config.fleet.clusters.len(),
        (0..RINGS)
            .map(|r| config.ring_clusters(r).count().to_string())
            .collect::<Vec<_>>()
            .join("/")
    );
    let seeding = Instant::now();
    let seed = {
        let store = Store::open(&store_path).unwrap();
        let mut s = Seeder {
            store: &store,
            config: &config,
            base,
            next_pr: 0,
            report: SeedReport::default(),
        };
        for (i, release) in config.releases.iter().enumerate() {
            assert_eq!(release.name.as_str(), format!("addons-{:04}", i + 1));
            s.rollout(i, release, last);
        }
        s.report
    };
    let seed_secs = seeding.elapsed().as_secs_f64();
    copy_dir(&store_path, &pristine);
    println!(
        "  seeded in {seed_secs:.1} s: rollouts {}; ring runs {}; {} gate samples (soaking and halted rings only), {} journal entries; store {:.1} MiB on disk",
        seed.by_state
            .iter()
            .map(|(k, v)| format!("{v} {k}"))
            .collect::<Vec<_>>()
            .join(", "),
        seed.by_phase
            .iter()
            .map(|(k, v)| format!("{v} {k}"))
            .collect::<Vec<_>>()
            .join(", "),
        seed.samples,
        seed.events,
        dir_bytes(&pristine) as f64 / 1048576.0
    );

    // Restart-to-resumed, in process: one warm-up, then RUNS timed restarts, each from the
    // seeded store.
    let mut failures: Vec<String> = Vec::new();
    restore(&store_path, &pristine);
    let warm = restart(&config_path, &store_path, now).await;
    let (added, moved, _) = effects(&store_path, &pristine);
    let mut runs = Vec::new();
    for _ in 0..RUNS {
        restore(&store_path, &pristine);
        runs.push(restart(&config_path, &store_path, now).await);
    }
    let total = median(runs.iter().map(|r| r.total_ms).collect());
    println!(
        "restart-to-resumed ({ROLLOUTS} rollouts): median {total:.1} ms; target {TARGET_RESTART_MS:.0} ms; ratio {:.3}",
        total / TARGET_RESTART_MS
    );
    println!(
        "  in process, scripted instant probe, median of {RUNS} after a warm-up (file cache warm): Store::open {:.1} ms, Daemon (mirror open, local forge) {:.1} ms, first pass {:.1} ms (fetch, config with {ROLLOUTS} release files, {} unfinished rollouts)",
        median(runs.iter().map(|r| r.open_ms).collect()),
        median(runs.iter().map(|r| r.build_ms).collect()),
        median(runs.iter().map(|r| r.pass_ms).collect()),
        seed.by_state
            .iter()
            .filter(|(k, _)| !matches!(**k, "completed" | "aborted"))
            .map(|(_, v)| v)
            .sum::<usize>(),
    );
    println!(
        "  the first pass: {} transition(s), {} warning(s), next due in {} s; {added} gate samples taken in the soaking rings; {}",
        warm.report.transitions,
        warm.report.warnings.len(),
        warm.report.next_due.map_or(-1, |d| (d - now).num_seconds()),
        if moved.is_empty() {
            "no phase changed".to_owned()
        } else {
            moved.join(", ")
        }
    );
    if total > TARGET_RESTART_MS {
        failures.push(format!(
            "restart-to-resumed {:.2}x",
            total / TARGET_RESTART_MS
        ));
    }

    // The real binary.
    let bin = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .join("../ringmaster");
    if std::env::var_os("BENCH_SKIP_BINARY").is_some() {
        println!("  real binary: skipped (BENCH_SKIP_BINARY)");
    } else if !bin.exists() {
        println!(
            "  real binary: {} missing; build it with `cargo build --release -p orchestrator`",
            bin.display()
        );
    } else {
        let none = binary_restarts(
            &bin,
            &config_path,
            &store_path,
            &pristine,
            &tmp.path().join("no-kubeconfig"),
        );
        let refusing = tmp.path().join("kubeconfig-refusing");
        write_refusing_kubeconfig(&refusing, &config);
        let refused = binary_restarts(&bin, &config_path, &store_path, &pristine, &refusing);
        println!(
            "restart-to-resumed, real binary `ringmaster run --once` ({ROLLOUTS} rollouts): median {:.1} ms; target {TARGET_RESTART_MS:.0} ms; ratio {:.3}",
            none.first_ms,
            none.first_ms / TARGET_RESTART_MS
        );
        println!(
            "  whole process (start, store, mirror fetch, config, one pass, exit), live probe, KUBECONFIG naming no file; median of {RUNS} after a warm-up"
        );
        println!(
            "  its pass sampled the overdue soaking gates ({} samples, {} inconclusive: no cluster reachable) and checked the converging ring's 2 clusters (inconclusive: it stays converging{})",
            none.added,
            none.inconclusive,
            if none.moved.is_empty() {
                String::new()
            } else {
                format!("; phases moved: {}", none.moved.join(", "))
            }
        );
        println!(
            "  run again right after (no gate due; the converging ring's clusters are still asked, as on every pass): median {:.1} ms (ratio {:.3})",
            none.idle_ms,
            none.idle_ms / TARGET_RESTART_MS
        );
        println!(
            "  the same with a kubeconfig whose {} contexts point at a closed port (clusters that do not exist: connection refused): median {:.1} ms (ratio {:.3}), again right after {:.1} ms; {} of {} samples inconclusive",
            config.fleet.clusters.len(),
            refused.first_ms,
            refused.first_ms / TARGET_RESTART_MS,
            refused.idle_ms,
            refused.inconclusive,
            refused.added
        );
        for (what, ms) in [
            ("binary restart", none.first_ms),
            ("binary restart (refusing clusters)", refused.first_ms),
        ] {
            if ms > TARGET_RESTART_MS {
                failures.push(format!("{what} {:.2}x", ms / TARGET_RESTART_MS));
            }
        }
    }

    // /metrics over the seeded store.
    restore(&store_path, &pristine);
    let mut store = Store::open(&store_path).unwrap();
    let m = Metrics::new();
    for ms in [3, 4, 5, 7, 12, 40, 900] {
        m.observe_reconcile(Duration::from_millis(ms));
    }
    m.forge_request("local", metrics::ForgeOutcome::Ok);
    let (times, body) = scrapes(&store, &config, &m, now, SCRAPES);
    let (p50, p95) = (percentile(&times, 0.5), percentile(&times, 0.95));
    let series = body.lines().filter(|l| !l.starts_with('#')).count();
    println!(
        "/metrics scrape ({ROLLOUTS} rollouts): median {p50:.1} ms, p95 {p95:.1} ms, {:.1} KiB; budget {SCRAPE_BUDGET_MS:.0} ms; ratio {:.3}",
        body.len() as f64 / 1024.0,
        p50 / SCRAPE_BUDGET_MS
    );
    println!(
        "  `api::metrics::exposition`, {SCRAPES} scrapes after a warm-up; {} bytes, {series} series; status_json alone (inside every scrape, for the forecast) median {:.1} ms",
        body.len(),
        status_ms(&store, &config, now, SCRAPES)
    );
    if p95 > SCRAPE_BUDGET_MS {
        failures.push(format!("/metrics scrape {:.2}x", p95 / SCRAPE_BUDGET_MS));
    }

    // `BENCH_PROFILE=scrape:<secs>` or `restart:<secs>`: loop one of the two for `perf record`.
    let profile = std::env::var("BENCH_PROFILE").ok().and_then(|p| {
        let (what, secs) = p.split_once(':')?;
        Some((what.to_owned(), Duration::from_secs(secs.parse().ok()?)))
    });
    match profile.as_ref().map(|(w, d)| (w.as_str(), *d)) {
        Some(("scrape", secs)) => {
            println!("  profiling: scraping for {secs:?}…");
            let until = Instant::now() + secs;
            while Instant::now() < until {
                std::hint::black_box(metrics::exposition(&store, Some(&config), &m, now).unwrap());
            }
        }
        Some(("restart", secs)) => {
            println!("  profiling: restarting for {secs:?}…");
            drop(store);
            let until = Instant::now() + secs;
            while Instant::now() < until {
                restore(&store_path, &pristine);
                std::hint::black_box(restart(&config_path, &store_path, now).await);
            }
            restore(&store_path, &pristine);
            store = Store::open(&store_path).unwrap();
        }
        _ => {}
    }

    // A real store keeps every sample of every soak: what that costs a scrape.
    // (Skipped when profiling: its scrapes would mix into the profile.)
    if profile.is_none() {
        let (full, names) = {
            let mut s = Seeder {
                store: &store,
                config: &config,
                base: String::new(),
                next_pr: 0,
                report: SeedReport::default(),
            };
            let names: Vec<String> = store
                .rollouts()
                .unwrap()
                .into_iter()
                .filter(|r| r.state == RolloutState::Completed)
                .take(FULL_HISTORY_ROLLOUTS)
                .map(|r| r.name)
                .collect();
            let full: usize = names.iter().map(|n| s.full_history(n)).sum();
            (full, names)
        };
        let (times, _) = scrapes(&store, &config, &m, now, 5);
        let with_history = percentile(&times, 0.5);
        let per_rollout = (with_history - p50) / FULL_HISTORY_ROLLOUTS as f64;
        let completed = seed.by_state.get("completed").copied().unwrap_or(0);
        println!(
            "  with every soak sample kept for {} ({} samples, {} per completed rollout at 1-minute gate intervals): median {with_history:.1} ms: +{per_rollout:.1} ms per completed rollout, {:.1} µs per stored sample; for all {completed} completed rollouts that is ~{:.0} s per scrape (extrapolated, linear)",
            names.join(" and "),
            full,
            full / FULL_HISTORY_ROLLOUTS,
            (with_history - p50) * 1e3 / full as f64,
            (p50 + per_rollout * completed as f64) / 1e3
        );
    }
    drop(store);

    if std::env::var_os("BENCH_KEEP").is_some() {
        let _ = tmp.keep();
    } else {
        drop(tmp);
    }
    if failures.is_empty() {
        println!("all targets met");
    } else {
        println!("TARGET MISSED: {}", failures.join(", "));
        std::process::exit(1);
    }
}

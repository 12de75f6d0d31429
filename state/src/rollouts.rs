//! The daemon's records (DESIGN §5): rollouts, ring runs, gate samples and the event journal.
//!
//! - A [`Rollout`] is one release travelling through the rings; its [`RingRun`]s (one per ring)
//!   carry the state machine. A ring run is only ever replaced through [`Store::transition`],
//!   a sled transaction that checks the stored `revision` (compare-and-swap: one writer wins),
//!   writes the rollout too when given, and appends the transition's journal [`Event`]s —
//!   all or nothing, flushed before the call returns, so the daemon acts only on what is on disk.
//! - Samples are append-only per (rollout, ring, step).
//! - The journal is append-only per rollout, keyed by sled's monotonic id generator.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};

use crate::{Store, StoreError, decode};

const ROLLOUTS: &str = "rollouts";
const RING_RUNS: &str = "ring_runs";
const SAMPLES: &str = "samples";
/// Per ring step: how many samples it has, by outcome (kept with the samples, in their writes).
const SAMPLE_COUNTS: &str = "sample_counts";
const JOURNAL: &str = "journal";
const GLOBAL: &str = "global";
const FREEZE_KEY: &[u8] = b"freeze";

/// Where a rollout stands as a whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "camelCase")]
pub enum RolloutState {
    /// Rings are being worked on (or waiting their turn).
    Active,
    /// A ring halted; needs `ringmaster resume` or `abort`.
    Halted {
        /// The ring that halted.
        ring: String,
        /// Why.
        reason: String,
    },
    /// Paused by a person: no new PR, no merge; soaks keep measuring.
    Paused {
        /// Who paused it.
        by: String,
        /// Why.
        reason: String,
    },
    /// Stopped for good by a person.
    Aborted {
        /// Who.
        by: String,
        /// Why.
        reason: String,
    },
    /// Every ring passed.
    Completed,
}

impl RolloutState {
    /// A short word for tables: `active`, `halted`, ...
    pub fn word(&self) -> &'static str {
        match self {
            RolloutState::Active => "active",
            RolloutState::Halted { .. } => "halted",
            RolloutState::Paused { .. } => "paused",
            RolloutState::Aborted { .. } => "aborted",
            RolloutState::Completed => "completed",
        }
    }

    /// Whether the rollout is finished (completed or aborted).
    pub fn is_finished(&self) -> bool {
        matches!(self, RolloutState::Completed | RolloutState::Aborted { .. })
    }
}

/// One release travelling through the rings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rollout {
    /// The release name.
    pub name: String,
    /// Its position among the releases when it was discovered (releases run in file order).
    pub order: u32,
    /// What it promotes, for people (`Kubernetes 1.34`).
    pub summary: String,
    /// Where it stands.
    #[serde(flatten)]
    pub state: RolloutState,
    /// When ringmaster first saw the release.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Set on a revert rollout (`abort --revert`): the rollout it undoes.
    #[serde(default)]
    pub revert_of: Option<String>,
}

/// The ring-run state machine of DESIGN §5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord, Hash)]
#[serde(rename_all = "camelCase")]
pub enum Phase {
    /// An earlier ring (or an earlier rollout on this ring) has not passed yet.
    Pending,
    /// Ready to go; the ring's window is closed or a freeze is on.
    WaitingForWindow,
    /// Checking the ring's clusters before opening the PR.
    Preflight,
    /// A preflight check does not hold (`reason`); re-checked every reconcile, no PR.
    Blocked,
    /// The step's PR is open, waiting for review and merge.
    PrOpen,
    /// Merged; waiting for the clusters to run what Git says.
    Converging,
    /// Converged; gates are sampled until the soak is covered.
    Soaking,
    /// Every step merged, converged and soaked with every gate held.
    Passed,
    /// A gate failed, convergence timed out or the PR was closed (`reason`); needs a human.
    Halted,
}

impl Phase {
    /// The word used in tables, metrics and JSON.
    pub fn as_str(&self) -> &'static str {
        match self {
            Phase::Pending => "pending",
            Phase::WaitingForWindow => "waitingForWindow",
            Phase::Preflight => "preflight",
            Phase::Blocked => "blocked",
            Phase::PrOpen => "prOpen",
            Phase::Converging => "converging",
            Phase::Soaking => "soaking",
            Phase::Passed => "passed",
            Phase::Halted => "halted",
        }
    }

    /// Every phase, in state-machine order.
    pub const ALL: [Phase; 9] = [
        Phase::Pending,
        Phase::WaitingForWindow,
        Phase::Preflight,
        Phase::Blocked,
        Phase::PrOpen,
        Phase::Converging,
        Phase::Soaking,
        Phase::Passed,
        Phase::Halted,
    ];

    /// Whether the ring is occupied by this rollout (between its start and its pass).
    pub fn occupies_ring(&self) -> bool {
        !matches!(self, Phase::Pending | Phase::Passed)
    }
}

/// Where a ring run stands, without the rest of its record ([`Store::ring_phases`]).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RingPhase {
    /// The ring.
    pub ring: String,
    /// Its position in the ring file.
    pub index: u32,
    /// The state.
    pub phase: Phase,
}

/// A pull request, as ringmaster links to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PrLink {
    /// Its number.
    pub number: u64,
    /// Where people open it (a web URL, or `local#N`).
    pub url: String,
    /// `ringmaster/<rollout>/<ring>/<step>`.
    pub branch: String,
    /// The head ringmaster last pushed (the lease for the next push).
    pub head: String,
}

/// One step of a ring run (a ring with a cluster two minors behind has two).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepRecord {
    /// From 1.
    pub step: u32,
    /// Its PR.
    pub pr: PrLink,
    /// What it changes, for people.
    pub summary: String,
    /// Clusters it changes.
    pub clusters: Vec<String>,
    /// When the PR was opened.
    pub opened_at: DateTime<Utc>,
    /// When it merged, and the merge commit.
    pub merged_at: Option<DateTime<Utc>>,
    /// The merge commit.
    pub merge_commit: Option<String>,
    /// When every cluster ran the new versions.
    pub converged_at: Option<DateTime<Utc>>,
    /// When the soak held to the end.
    pub passed_at: Option<DateTime<Utc>>,
    /// The base commit the step's branch was built on.
    #[serde(default)]
    pub base: Option<String>,
    /// Every version the step moves.
    #[serde(default)]
    pub changes: Vec<ChangeRecord>,
}

/// One component of one cluster moving in a step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeRecord {
    /// Cluster id.
    pub cluster: String,
    /// `kubernetes`, `addon:<name>` or `policy:<name>`.
    pub component: String,
    /// From.
    pub from: String,
    /// To.
    pub to: String,
}

/// One ring of one rollout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RingRun {
    /// The rollout.
    pub rollout: String,
    /// The ring.
    pub ring: String,
    /// The ring's index in the ring file.
    pub index: u32,
    /// Bumped by every transition; a transition from a stale revision is refused.
    pub revision: u64,
    /// The state.
    pub phase: Phase,
    /// Since when.
    pub phase_since: DateTime<Utc>,
    /// Blocked or halted: why. Waiting: what it waits for.
    pub reason: Option<String>,
    /// The ring's clusters, resolved when the ring started.
    pub members: Vec<String>,
    /// Clusters of the ring that will not move, with why (paused, refused downgrade).
    pub left_out: Vec<(String, String)>,
    /// Steps so far; the last one is the current one.
    pub steps: Vec<StepRecord>,
    /// Converging: the deadline.
    pub converge_deadline: Option<DateTime<Utc>>,
    /// Soaking: when it started (convergence).
    pub soak_started: Option<DateTime<Utc>>,
    /// Soaking: when the next sample is due.
    pub next_sample_at: Option<DateTime<Utc>>,
    /// Soaking: when each gate's next sample is due.
    #[serde(default)]
    pub gate_due: std::collections::BTreeMap<String, DateTime<Utc>>,
    /// Pre-merge values of `baseline: preUpgrade` gates: (gate, cluster, value).
    pub baselines: Vec<(String, String, f64)>,
    /// Halted: the evidence (Markdown), as commented on the PR.
    pub evidence: Option<String>,
    /// Halted: the evidence is on the PR (comment and label).
    #[serde(default)]
    pub evidence_posted: bool,
    /// The pause/freeze notice last written on the open PR (`None`: none, or lifted).
    #[serde(default)]
    pub notice: Option<String>,
    /// A revert ring run: the versions to restore (`from` is what the rollout wrote, `to` what
    /// the cluster had before).
    #[serde(default)]
    pub planned: Vec<ChangeRecord>,
    /// When the ring started (left Pending).
    pub started_at: Option<DateTime<Utc>>,
    /// When it passed.
    pub passed_at: Option<DateTime<Utc>>,
}

impl RingRun {
    /// A fresh, pending ring run.
    pub fn pending(rollout: &str, ring: &str, index: u32, now: DateTime<Utc>) -> RingRun {
        RingRun {
            rollout: rollout.to_owned(),
            ring: ring.to_owned(),
            index,
            revision: 0,
            phase: Phase::Pending,
            phase_since: now,
            reason: None,
            members: Vec::new(),
            left_out: Vec::new(),
            steps: Vec::new(),
            converge_deadline: None,
            soak_started: None,
            next_sample_at: None,
            gate_due: Default::default(),
            baselines: Vec::new(),
            evidence: None,
            evidence_posted: false,
            notice: None,
            planned: Vec::new(),
            started_at: None,
            passed_at: None,
        }
    }

    /// The current step, if one started.
    pub fn current_step(&self) -> Option<&StepRecord> {
        self.steps.last()
    }

    /// The current step, mutable.
    pub fn current_step_mut(&mut self) -> Option<&mut StepRecord> {
        self.steps.last_mut()
    }

    /// The step number the ring is on (0 before its first PR).
    pub fn step_number(&self) -> u32 {
        self.steps.last().map_or(0, |s| s.step)
    }
}

/// The outcome of one gate sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SampleOutcome {
    /// Held.
    Pass,
    /// Did not hold.
    Fail,
    /// Could not be evaluated.
    Inconclusive,
}

/// One stored gate sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SampleRecord {
    /// When.
    pub at: DateTime<Utc>,
    /// Gate.
    pub gate: String,
    /// Cluster.
    pub cluster: String,
    /// Result.
    pub outcome: SampleOutcome,
    /// The number, when the gate has one.
    pub value: Option<f64>,
    /// For people.
    pub observed: String,
}

/// How many samples a ring step has, by outcome ([`Store::sample_counts`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SampleCounts {
    /// Every sample.
    pub samples: usize,
    /// Passing ones.
    pub pass: usize,
    /// Failing ones.
    pub fail: usize,
    /// Inconclusive ones.
    pub inconclusive: usize,
}

impl SampleCounts {
    fn add(&mut self, outcome: SampleOutcome) {
        self.samples += 1;
        match outcome {
            SampleOutcome::Pass => self.pass += 1,
            SampleOutcome::Fail => self.fail += 1,
            SampleOutcome::Inconclusive => self.inconclusive += 1,
        }
    }
}

/// One journal entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// When.
    pub at: DateTime<Utc>,
    /// The rollout.
    pub rollout: String,
    /// The ring, when the event is about one.
    pub ring: Option<String>,
    /// A stable machine word: `started`, `phase`, `prOpened`, `merged`, `halted`, ...
    pub kind: String,
    /// For people.
    pub message: String,
    /// Who caused it: `ringmaster`, or the person behind a command.
    pub actor: String,
}

/// A global freeze set by `ringmaster freeze` (the kill switch).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GlobalFreeze {
    /// Until when.
    pub until: DateTime<Utc>,
    /// Why.
    pub reason: String,
    /// Who.
    pub by: String,
    /// Since when.
    pub since: DateTime<Utc>,
}

fn run_key(rollout: &str, ring: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(rollout.len() + ring.len() + 1);
    k.extend_from_slice(rollout.as_bytes());
    k.push(0);
    k.extend_from_slice(ring.as_bytes());
    k
}

fn prefix(rollout: &str) -> Vec<u8> {
    let mut k = rollout.as_bytes().to_vec();
    k.push(0);
    k
}

fn sample_prefix(rollout: &str, ring: &str, step: u32) -> Vec<u8> {
    let mut k = run_key(rollout, ring);
    k.push(0);
    k.extend_from_slice(&step.to_be_bytes());
    k
}

/// Why a transition was not written.
#[derive(Debug)]
enum Abort {
    /// The stored revision is not the expected one.
    Stale,
}

impl Store {
    fn tx_err(&self, e: TransactionError<()>) -> StoreError {
        match e {
            TransactionError::Storage(e) => self.err(e),
            TransactionError::Abort(()) => StoreError::Sled {
                path: self.path.clone(),
                message: "transaction aborted".to_owned(),
            },
        }
    }

    fn encode<T: Serialize>(&self, value: &T) -> Result<Vec<u8>, StoreError> {
        serde_json::to_vec(value).map_err(|e| StoreError::Sled {
            path: self.path.clone(),
            message: e.to_string(),
        })
    }

    /// Create a rollout and its pending ring runs, with a `started` journal entry, unless a
    /// rollout of that name exists. `Ok(false)` when it did.
    pub fn create_rollout(
        &self,
        rollout: &Rollout,
        runs: &[RingRun],
        event: &Event,
    ) -> Result<bool, StoreError> {
        let (rollouts, ring_runs, journal) = (
            self.tree(ROLLOUTS)?,
            self.tree(RING_RUNS)?,
            self.tree(JOURNAL)?,
        );
        let value = self.encode(rollout)?;
        let run_values: Vec<(Vec<u8>, Vec<u8>)> = runs
            .iter()
            .map(|r| Ok((run_key(&r.rollout, &r.ring), self.encode(r)?)))
            .collect::<Result<_, StoreError>>()?;
        let ev = self.encode(event)?;
        let result = (&rollouts, &ring_runs, &journal).transaction(|(ro, rr, j)| {
            if ro.get(rollout.name.as_bytes())?.is_some() {
                return Ok(false);
            }
            ro.insert(rollout.name.as_bytes(), value.clone())?;
            for (k, v) in &run_values {
                rr.insert(k.clone(), v.clone())?;
            }
            let id = j.generate_id()?;
            let mut k = prefix(&event.rollout);
            k.extend_from_slice(&id.to_be_bytes());
            j.insert(k, ev.clone())?;
            Ok(true)
        });
        let created = result.map_err(|e: TransactionError<()>| self.tx_err(e))?;
        self.bump();
        self.flush()?;
        Ok(created)
    }

    /// Replace `run` (whose `revision` must still be the stored one) with `new` (its revision
    /// is set to `run.revision + 1`), optionally replace the rollout record, and append
    /// `events` — one transaction, flushed. `Ok(None)` when the stored revision moved (another
    /// writer won): re-read and decide again. Returns the ring run as stored.
    pub fn transition(
        &self,
        run: &RingRun,
        mut new: RingRun,
        rollout: Option<&Rollout>,
        events: &[Event],
    ) -> Result<Option<RingRun>, StoreError> {
        new.revision = run.revision + 1;
        let key = run_key(&run.rollout, &run.ring);
        let value = self.encode(&new)?;
        let rollout_value = rollout
            .map(|r| Ok::<_, StoreError>((r.name.clone(), self.encode(r)?)))
            .transpose()?;
        let event_values: Vec<(String, Vec<u8>)> = events
            .iter()
            .map(|e| Ok((e.rollout.clone(), self.encode(e)?)))
            .collect::<Result<_, StoreError>>()?;
        let (rollouts, ring_runs, journal) = (
            self.tree(ROLLOUTS)?,
            self.tree(RING_RUNS)?,
            self.tree(JOURNAL)?,
        );
        let expected = run.revision;
        let result = (&rollouts, &ring_runs, &journal).transaction(|(ro, rr, j)| {
            let current = rr.get(&key)?;
            let stored_revision = current
                .as_ref()
                .and_then(|v| serde_json::from_slice::<serde_json::Value>(v).ok())
                .and_then(|v| v.get("revision").and_then(serde_json::Value::as_u64));
            if stored_revision != Some(expected) {
                return Err(ConflictableTransactionError::Abort(Abort::Stale));
            }
            rr.insert(key.clone(), value.clone())?;
            if let Some((name, v)) = &rollout_value {
                ro.insert(name.as_bytes(), v.clone())?;
            }
            for (rollout, v) in &event_values {
                let id = j.generate_id()?;
                let mut k = prefix(rollout);
                k.extend_from_slice(&id.to_be_bytes());
                j.insert(k, v.clone())?;
            }
            Ok(())
        });
        match result {
            Ok(()) => {
                self.bump();
                self.flush()?;
                Ok(Some(new))
            }
            Err(TransactionError::Abort(Abort::Stale)) => Ok(None),
            Err(TransactionError::Storage(e)) => Err(self.err(e)),
        }
    }

    /// Replace a rollout record and append events (rollout-level changes: pause, abort,
    /// completion), flushed.
    pub fn put_rollout(&self, rollout: &Rollout, events: &[Event]) -> Result<(), StoreError> {
        let value = self.encode(rollout)?;
        let event_values: Vec<Vec<u8>> = events
            .iter()
            .map(|e| self.encode(e))
            .collect::<Result<_, _>>()?;
        let (rollouts, journal) = (self.tree(ROLLOUTS)?, self.tree(JOURNAL)?);
        (&rollouts, &journal)
            .transaction(|(ro, j)| {
                ro.insert(rollout.name.as_bytes(), value.clone())?;
                for v in &event_values {
                    let id = j.generate_id()?;
                    let mut k = prefix(&rollout.name);
                    k.extend_from_slice(&id.to_be_bytes());
                    j.insert(k, v.clone())?;
                }
                Ok::<(), ConflictableTransactionError<()>>(())
            })
            .map_err(|e: TransactionError<()>| self.tx_err(e))?;
        self.bump();
        self.flush()
    }

    /// Append journal entries on their own (commands, notes), flushed.
    pub fn append_events(&self, events: &[Event]) -> Result<(), StoreError> {
        let journal = self.tree(JOURNAL)?;
        for e in events {
            let id = self.db.generate_id().map_err(|e| self.err(e))?;
            let mut k = prefix(&e.rollout);
            k.extend_from_slice(&id.to_be_bytes());
            journal
                .insert(k, self.encode(e)?)
                .map_err(|e| self.err(e))?;
        }
        self.flush()
    }

    /// A rollout by name.
    pub fn rollout(&self, name: &str) -> Result<Option<Rollout>, StoreError> {
        match self
            .tree(ROLLOUTS)?
            .get(name.as_bytes())
            .map_err(|e| self.err(e))?
        {
            Some(v) => decode(&self.path, name.as_bytes(), &v).map(Some),
            None => Ok(None),
        }
    }

    /// Every rollout, in release order (then name).
    pub fn rollouts(&self) -> Result<Vec<Rollout>, StoreError> {
        let mut out: Vec<Rollout> = Vec::new();
        for item in self.tree(ROLLOUTS)?.iter() {
            let (k, v) = item.map_err(|e| self.err(e))?;
            out.push(decode(&self.path, &k, &v)?);
        }
        out.sort_by(|a, b| a.order.cmp(&b.order).then_with(|| a.name.cmp(&b.name)));
        Ok(out)
    }

    /// The ring runs of a rollout, in ring order.
    pub fn ring_runs(&self, rollout: &str) -> Result<Vec<RingRun>, StoreError> {
        let mut out: Vec<RingRun> = Vec::new();
        for item in self.tree(RING_RUNS)?.scan_prefix(prefix(rollout)) {
            let (k, v) = item.map_err(|e| self.err(e))?;
            out.push(decode(&self.path, &k, &v)?);
        }
        out.sort_by_key(|r| r.index);
        Ok(out)
    }

    /// The phase of each ring run of a rollout, in ring order — the rest of each record is
    /// skipped, not decoded (the per-pass ring-occupancy check reads every rollout's).
    pub fn ring_phases(&self, rollout: &str) -> Result<Vec<RingPhase>, StoreError> {
        let mut out: Vec<RingPhase> = Vec::new();
        for item in self.tree(RING_RUNS)?.scan_prefix(prefix(rollout)) {
            let (k, v) = item.map_err(|e| self.err(e))?;
            out.push(decode(&self.path, &k, &v)?);
        }
        out.sort_by_key(|r| r.index);
        Ok(out)
    }

    /// One ring run.
    pub fn ring_run(&self, rollout: &str, ring: &str) -> Result<Option<RingRun>, StoreError> {
        let key = run_key(rollout, ring);
        match self.tree(RING_RUNS)?.get(&key).map_err(|e| self.err(e))? {
            Some(v) => decode(&self.path, &key, &v).map(Some),
            None => Ok(None),
        }
    }

    /// Add a ring run that did not exist (a ring added to the ring file mid-rollout).
    pub fn insert_ring_run(&self, run: &RingRun) -> Result<bool, StoreError> {
        let key = run_key(&run.rollout, &run.ring);
        let ok = self
            .tree(RING_RUNS)?
            .compare_and_swap(key, None as Option<&[u8]>, Some(self.encode(run)?))
            .map_err(|e| self.err(e))?
            .is_ok();
        self.bump();
        self.flush()?;
        Ok(ok)
    }

    /// Append gate samples of a ring step and count them in the step's counts — one
    /// transaction, flushed.
    pub fn add_samples(
        &self,
        rollout: &str,
        ring: &str,
        step: u32,
        samples: &[SampleRecord],
    ) -> Result<(), StoreError> {
        let (tree, counts_tree) = (self.tree(SAMPLES)?, self.tree(SAMPLE_COUNTS)?);
        let base = sample_prefix(rollout, ring, step);
        // A step stored before counts were kept is counted once, from its samples.
        let mut counts = match counts_tree.get(&base).map_err(|e| self.err(e))? {
            Some(v) => decode::<SampleCounts>(&self.path, &base, &v)?,
            None => self.count_by_scanning(&base)?,
        };
        let mut values = Vec::with_capacity(samples.len());
        for s in samples {
            counts.add(s.outcome);
            values.push(self.encode(s)?);
        }
        let counts_value = self.encode(&counts)?;
        (&tree, &counts_tree)
            .transaction(|(t, c)| {
                for v in &values {
                    let id = t.generate_id()?;
                    let mut k = base.clone();
                    k.extend_from_slice(&id.to_be_bytes());
                    t.insert(k, v.clone())?;
                }
                c.insert(base.clone(), counts_value.clone())?;
                Ok::<(), ConflictableTransactionError<()>>(())
            })
            .map_err(|e: TransactionError<()>| self.tx_err(e))?;
        self.flush()
    }

    /// The samples of a ring step, oldest first.
    pub fn samples(
        &self,
        rollout: &str,
        ring: &str,
        step: u32,
    ) -> Result<Vec<SampleRecord>, StoreError> {
        let mut out = Vec::new();
        for item in self
            .tree(SAMPLES)?
            .scan_prefix(sample_prefix(rollout, ring, step))
        {
            let (k, v) = item.map_err(|e| self.err(e))?;
            out.push(decode(&self.path, &k, &v)?);
        }
        Ok(out)
    }

    /// The samples of a ring step stored after the one with id `after` (all of them with
    /// `None`), oldest first, with their ids: a reader that keeps a running tally passes the
    /// last id it saw and decodes only what is new.
    pub fn samples_after(
        &self,
        rollout: &str,
        ring: &str,
        step: u32,
        after: Option<u64>,
    ) -> Result<Vec<(u64, SampleRecord)>, StoreError> {
        let base = sample_prefix(rollout, ring, step);
        let mut from = base.clone();
        if let Some(id) = after {
            match id.checked_add(1) {
                Some(next) => from.extend_from_slice(&next.to_be_bytes()),
                None => return Ok(Vec::new()),
            }
        }
        let mut out = Vec::new();
        for item in self.tree(SAMPLES)?.range(from..) {
            let (k, v) = item.map_err(|e| self.err(e))?;
            let Some(id) = k
                .strip_prefix(base.as_slice())
                .and_then(|rest| <[u8; 8]>::try_from(rest).ok())
            else {
                break; // past this step's samples
            };
            out.push((u64::from_be_bytes(id), decode(&self.path, &k, &v)?));
        }
        Ok(out)
    }

    /// How many samples a ring step has, by outcome: one record, kept with the samples
    /// (`status` and every `/metrics` scrape read this; a soak can hold tens of thousands).
    pub fn sample_counts(
        &self,
        rollout: &str,
        ring: &str,
        step: u32,
    ) -> Result<SampleCounts, StoreError> {
        let base = sample_prefix(rollout, ring, step);
        match self
            .tree(SAMPLE_COUNTS)?
            .get(&base)
            .map_err(|e| self.err(e))?
        {
            Some(v) => decode(&self.path, &base, &v),
            None => self.count_by_scanning(&base),
        }
    }

    /// Count a step's samples by reading them (the outcome only).
    fn count_by_scanning(&self, base: &[u8]) -> Result<SampleCounts, StoreError> {
        #[derive(Deserialize)]
        struct OutcomeOnly {
            outcome: SampleOutcome,
        }
        let mut counts = SampleCounts::default();
        for item in self.tree(SAMPLES)?.scan_prefix(base) {
            let (k, v) = item.map_err(|e| self.err(e))?;
            let o: OutcomeOnly = decode(&self.path, &k, &v)?;
            counts.add(o.outcome);
        }
        Ok(counts)
    }

    /// The latest sample of each (gate, cluster) of a ring step, read newest first. With
    /// `wanted`, only those pairs, and the scan stops once each has been found (a pair that is
    /// never found — a gate not sampled yet — reads back to the first sample); with `None`,
    /// every pair, reading back to the first sample. Sorted by gate, then cluster.
    pub fn latest_samples(
        &self,
        rollout: &str,
        ring: &str,
        step: u32,
        wanted: Option<&[(String, String)]>,
    ) -> Result<Vec<SampleRecord>, StoreError> {
        #[derive(Deserialize)]
        struct Pair {
            gate: String,
            cluster: String,
        }
        let mut latest: std::collections::BTreeMap<(String, String), SampleRecord> =
            std::collections::BTreeMap::new();
        for item in self
            .tree(SAMPLES)?
            .scan_prefix(sample_prefix(rollout, ring, step))
            .rev()
        {
            if wanted.is_some_and(|w| latest.len() >= w.len()) {
                break;
            }
            let (k, v) = item.map_err(|e| self.err(e))?;
            let p: Pair = decode(&self.path, &k, &v)?;
            let key = (p.gate, p.cluster);
            if wanted.is_some_and(|w| !w.contains(&key)) {
                continue;
            }
            if let std::collections::btree_map::Entry::Vacant(e) = latest.entry(key) {
                e.insert(decode(&self.path, &k, &v)?);
            }
        }
        Ok(latest.into_values().collect())
    }

    /// Forget the samples of a ring step (resume re-runs the gates from zero), flushed.
    pub fn clear_samples(&self, rollout: &str, ring: &str, step: u32) -> Result<(), StoreError> {
        self.tree(SAMPLE_COUNTS)?
            .remove(sample_prefix(rollout, ring, step))
            .map_err(|e| self.err(e))?;
        let tree = self.tree(SAMPLES)?;
        let mut batch = sled::Batch::default();
        for item in tree.scan_prefix(sample_prefix(rollout, ring, step)).keys() {
            batch.remove(item.map_err(|e| self.err(e))?);
        }
        tree.apply_batch(batch).map_err(|e| self.err(e))?;
        self.flush()
    }

    /// The journal of a rollout, oldest first.
    pub fn journal(&self, rollout: &str) -> Result<Vec<Event>, StoreError> {
        let mut out = Vec::new();
        for item in self.tree(JOURNAL)?.scan_prefix(prefix(rollout)) {
            let (k, v) = item.map_err(|e| self.err(e))?;
            out.push(decode(&self.path, &k, &v)?);
        }
        Ok(out)
    }

    /// The journal of a rollout from entry `skip` on (the entries before are not decoded), and
    /// the journal's length.
    pub fn journal_from(
        &self,
        rollout: &str,
        skip: usize,
    ) -> Result<(Vec<Event>, usize), StoreError> {
        let mut out = Vec::new();
        let mut n = 0;
        for item in self.tree(JOURNAL)?.scan_prefix(prefix(rollout)) {
            let (k, v) = item.map_err(|e| self.err(e))?;
            if n >= skip {
                out.push(decode(&self.path, &k, &v)?);
            }
            n += 1;
        }
        Ok((out, n))
    }

    /// The global freeze, if one is set.
    pub fn global_freeze(&self) -> Result<Option<GlobalFreeze>, StoreError> {
        match self
            .tree(GLOBAL)?
            .get(FREEZE_KEY)
            .map_err(|e| self.err(e))?
        {
            Some(v) => decode(&self.path, FREEZE_KEY, &v).map(Some),
            None => Ok(None),
        }
    }

    /// Set (`Some`) or lift (`None`) the global freeze, flushed.
    pub fn set_global_freeze(&self, freeze: Option<&GlobalFreeze>) -> Result<(), StoreError> {
        let tree = self.tree(GLOBAL)?;
        match freeze {
            Some(f) => {
                tree.insert(FREEZE_KEY, self.encode(f)?)
                    .map_err(|e| self.err(e))?;
            }
            None => {
                tree.remove(FREEZE_KEY).map_err(|e| self.err(e))?;
            }
        }
        self.bump();
        self.flush()
    }

    /// Whether the store holds no rollout at all (a fresh or lost store: rebuild from the forge).
    pub fn has_rollouts(&self) -> Result<bool, StoreError> {
        Ok(!self.tree(ROLLOUTS)?.is_empty())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn rollout(name: &str) -> Rollout {
        Rollout {
            name: name.into(),
            order: 0,
            summary: "Kubernetes 1.34".into(),
            state: RolloutState::Active,
            created_at: t("2026-11-24T09:00:00Z"),
            updated_at: t("2026-11-24T09:00:00Z"),
            revert_of: None,
        }
    }

    fn event(rollout: &str, kind: &str) -> Event {
        Event {
            at: t("2026-11-24T09:00:00Z"),
            rollout: rollout.into(),
            ring: None,
            kind: kind.into(),
            message: kind.into(),
            actor: "ringmaster".into(),
        }
    }

    fn open() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("db")).unwrap();
        (dir, s)
    }

    #[test]
    fn a_rollout_is_created_once_with_its_ring_runs() {
        let (_d, s) = open();
        let now = t("2026-11-24T09:00:00Z");
        let runs = [
            RingRun::pending("k8s-1.34", "sandbox", 0, now),
            RingRun::pending("k8s-1.34", "canary", 1, now),
        ];
        assert!(
            s.create_rollout(&rollout("k8s-1.34"), &runs, &event("k8s-1.34", "started"))
                .unwrap()
        );
        assert!(
            !s.create_rollout(&rollout("k8s-1.34"), &runs, &event("k8s-1.34", "started"))
                .unwrap(),
            "a second create must not reset the rollout"
        );
        let got = s.ring_runs("k8s-1.34").unwrap();
        assert_eq!(
            got.iter().map(|r| r.ring.as_str()).collect::<Vec<_>>(),
            ["sandbox", "canary"]
        );
        assert_eq!(s.journal("k8s-1.34").unwrap().len(), 1);
        // A rollout whose name is a prefix of another does not see its records.
        assert!(s.ring_runs("k8s-1.3").unwrap().is_empty());
    }

    #[test]
    fn ring_phases_match_the_records_and_every_write_moves_the_generation() {
        let (_d, s) = open();
        let now = t("2026-11-24T09:00:00Z");
        let runs = [
            RingRun::pending("r", "sandbox", 0, now),
            RingRun::pending("r", "canary", 1, now),
        ];
        let g0 = s.generation();
        s.create_rollout(&rollout("r"), &runs, &event("r", "started"))
            .unwrap();
        let g1 = s.generation();
        assert_ne!(g0, g1, "create");
        let mut next = runs[1].clone();
        next.phase = Phase::Soaking;
        next.evidence = Some("lots of text the phase reader skips".into());
        s.transition(&runs[1], next, None, &[]).unwrap().unwrap();
        let g2 = s.generation();
        assert_ne!(g1, g2, "transition");
        let phases = s.ring_phases("r").unwrap();
        let full = s.ring_runs("r").unwrap();
        assert_eq!(phases.len(), 2);
        for (p, r) in phases.iter().zip(&full) {
            assert_eq!(
                (p.ring.as_str(), p.index, p.phase),
                (r.ring.as_str(), r.index, r.phase)
            );
        }
        assert_eq!(phases[1].phase, Phase::Soaking);
        // A refused transition, reads and samples leave it alone.
        assert!(
            s.transition(&runs[1], runs[1].clone(), None, &[])
                .unwrap()
                .is_none()
        );
        s.ring_runs("r").unwrap();
        s.add_samples("r", "canary", 1, &[]).unwrap();
        assert_eq!(s.generation(), g2);
        s.put_rollout(&rollout("r"), &[]).unwrap();
        let g3 = s.generation();
        assert_ne!(g2, g3, "put_rollout");
        s.insert_ring_run(&RingRun::pending("r", "prod", 2, now))
            .unwrap();
        let g4 = s.generation();
        assert_ne!(g3, g4, "insert_ring_run");
        s.set_global_freeze(None).unwrap();
        assert_ne!(g4, s.generation(), "freeze");
    }

    #[test]
    fn samples_after_an_id_are_the_newer_ones_of_that_step_only() {
        let (_d, s) = open();
        let sample = |minute: u32| SampleRecord {
            at: t("2026-11-24T09:00:00Z") + chrono::TimeDelta::minutes(i64::from(minute)),
            gate: "nodes-ready".into(),
            cluster: "eu-1".into(),
            outcome: SampleOutcome::Pass,
            value: Some(f64::from(minute)),
            observed: format!("{minute}"),
        };
        s.add_samples("r", "canary", 1, &[sample(0), sample(1)])
            .unwrap();
        // Neighbours that share a prefix: another step, a ring whose name extends this one.
        s.add_samples("r", "canary", 2, &[sample(9)]).unwrap();
        s.add_samples("r", "canary-eu", 1, &[sample(8)]).unwrap();
        let all = s.samples_after("r", "canary", 1, None).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(
            all.iter().map(|(_, r)| r.clone()).collect::<Vec<_>>(),
            s.samples("r", "canary", 1).unwrap()
        );
        let (last, _) = all[1];
        assert!(
            s.samples_after("r", "canary", 1, Some(last))
                .unwrap()
                .is_empty()
        );
        s.add_samples("r", "canary", 1, &[sample(2)]).unwrap();
        let newer = s.samples_after("r", "canary", 1, Some(last)).unwrap();
        assert_eq!(newer.len(), 1);
        assert_eq!(newer[0].1.observed, "2");
        assert!(newer[0].0 > last);
        assert_eq!(
            s.samples_after("r", "canary", 1, Some(all[0].0))
                .unwrap()
                .len(),
            2
        );
        assert!(
            s.samples_after("r", "canary", 1, Some(u64::MAX))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn counts_and_latest_samples_agree_with_reading_them_all() {
        let (_d, s) = open();
        let at = t("2026-11-24T09:00:00Z");
        let mut all = Vec::new();
        for minute in 0..30 {
            for (gate, cluster) in [("nodes", "a"), ("nodes", "b"), ("errors", "a")] {
                let outcome = match (minute * 7 + gate.len() + cluster.len()) % 5 {
                    0 => SampleOutcome::Fail,
                    1 => SampleOutcome::Inconclusive,
                    _ => SampleOutcome::Pass,
                };
                all.push(SampleRecord {
                    at: at + chrono::TimeDelta::minutes(minute as i64),
                    gate: gate.into(),
                    cluster: cluster.into(),
                    outcome,
                    value: Some(minute as f64),
                    observed: format!("{gate}/{cluster}/{minute}"),
                });
            }
        }
        s.add_samples("r", "canary", 1, &all).unwrap();
        s.add_samples("r", "canary", 2, &all[..3]).unwrap();
        let counts = s.sample_counts("r", "canary", 1).unwrap();
        let n = |o: SampleOutcome| all.iter().filter(|x| x.outcome == o).count();
        assert_eq!(
            counts,
            SampleCounts {
                samples: 90,
                pass: n(SampleOutcome::Pass),
                fail: n(SampleOutcome::Fail),
                inconclusive: n(SampleOutcome::Inconclusive),
            }
        );
        assert!(counts.fail > 0 && counts.inconclusive > 0);
        let mut expected: Vec<SampleRecord> = all[all.len() - 3..].to_vec();
        expected.sort_by(|a, b| (&a.gate, &a.cluster).cmp(&(&b.gate, &b.cluster)));
        let pair = |g: &str, c: &str| (g.to_owned(), c.to_owned());
        let every = [pair("nodes", "a"), pair("nodes", "b"), pair("errors", "a")];
        assert_eq!(
            s.latest_samples("r", "canary", 1, Some(&every)).unwrap(),
            expected
        );
        assert_eq!(s.latest_samples("r", "canary", 1, None).unwrap(), expected);
        // Only the pairs asked for: a gate removed from the ring (or a cluster gone) is not
        // reported, and does not stop the scan before a wanted pair is found.
        let wanted = [pair("errors", "a"), pair("gone", "z")];
        let got = s.latest_samples("r", "canary", 1, Some(&wanted)).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0], expected[0]);
        assert_eq!(
            s.sample_counts("r", "canary", 3).unwrap(),
            SampleCounts::default()
        );
        // The counts are kept with the samples: the record agrees with a scan.
        let base = sample_prefix("r", "canary", 1);
        assert_eq!(s.count_by_scanning(&base).unwrap(), counts);

        // A step stored before counts were kept (samples, no count record) is counted from its
        // samples, and counting carries on from there.
        let legacy = sample_prefix("r", "legacy", 1);
        let samples_tree = s.tree(SAMPLES).unwrap();
        for (i, r) in all[..5].iter().enumerate() {
            let mut k = legacy.clone();
            k.extend_from_slice(&(i as u64).to_be_bytes());
            samples_tree
                .insert(k, serde_json::to_vec(r).unwrap())
                .unwrap();
        }
        assert_eq!(s.sample_counts("r", "legacy", 1).unwrap().samples, 5);
        s.add_samples("r", "legacy", 1, &all[5..7]).unwrap();
        assert_eq!(s.sample_counts("r", "legacy", 1).unwrap().samples, 7);
        assert_eq!(s.samples("r", "legacy", 1).unwrap().len(), 7);

        // Resume forgets a step's samples, and its counts with them.
        s.clear_samples("r", "canary", 1).unwrap();
        assert_eq!(
            s.sample_counts("r", "canary", 1).unwrap(),
            SampleCounts::default()
        );
        s.add_samples("r", "canary", 1, &all[..1]).unwrap();
        assert_eq!(s.sample_counts("r", "canary", 1).unwrap().samples, 1);
    }

    #[test]
    fn a_transition_from_a_stale_revision_is_refused_and_writes_nothing() {
        let (_d, s) = open();
        let now = t("2026-11-24T09:00:00Z");
        let run = RingRun::pending("r", "sandbox", 0, now);
        s.create_rollout(
            &rollout("r"),
            std::slice::from_ref(&run),
            &event("r", "started"),
        )
        .unwrap();
        let mut next = run.clone();
        next.phase = Phase::WaitingForWindow;
        let stored = s
            .transition(&run, next.clone(), None, &[event("r", "phase")])
            .unwrap()
            .expect("first writer wins");
        assert_eq!(stored.revision, 1);
        // The same old view again: refused, and its journal entry is not written either.
        let mut other = run.clone();
        other.phase = Phase::Halted;
        assert!(
            s.transition(&run, other, None, &[event("r", "halted")])
                .unwrap()
                .is_none()
        );
        let now_stored = s.ring_run("r", "sandbox").unwrap().unwrap();
        assert_eq!(now_stored.phase, Phase::WaitingForWindow);
        let kinds: Vec<String> = s
            .journal("r")
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect();
        assert_eq!(kinds, ["started", "phase"]);
    }

    #[test]
    fn transitions_and_journal_survive_a_reopen_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let now = t("2026-11-24T09:00:00Z");
        {
            let s = Store::open(&path).unwrap();
            let mut run = RingRun::pending("r", "sandbox", 0, now);
            s.create_rollout(
                &rollout("r"),
                std::slice::from_ref(&run),
                &event("r", "started"),
            )
            .unwrap();
            for (i, phase) in [Phase::WaitingForWindow, Phase::Preflight, Phase::PrOpen]
                .into_iter()
                .enumerate()
            {
                let mut next = run.clone();
                next.phase = phase;
                let mut r = rollout("r");
                r.updated_at = now + chrono::TimeDelta::minutes(i as i64);
                run = s
                    .transition(&run, next, Some(&r), &[event("r", phase.as_str())])
                    .unwrap()
                    .unwrap();
            }
            s.add_samples(
                "r",
                "sandbox",
                1,
                &[SampleRecord {
                    at: now,
                    gate: "nodes-ready".into(),
                    cluster: "c1".into(),
                    outcome: SampleOutcome::Pass,
                    value: Some(1.0),
                    observed: "3/3 Ready".into(),
                }],
            )
            .unwrap();
        }
        let s = Store::open(&path).unwrap();
        let run = s.ring_run("r", "sandbox").unwrap().unwrap();
        assert_eq!((run.phase, run.revision), (Phase::PrOpen, 3));
        let kinds: Vec<String> = s
            .journal("r")
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect();
        assert_eq!(
            kinds,
            ["started", "waitingForWindow", "preflight", "prOpen"]
        );
        assert_eq!(s.samples("r", "sandbox", 1).unwrap().len(), 1);
        assert!(s.samples("r", "sandbox", 2).unwrap().is_empty());
        s.clear_samples("r", "sandbox", 1).unwrap();
        assert!(s.samples("r", "sandbox", 1).unwrap().is_empty());
        assert_eq!(
            s.rollout("r").unwrap().unwrap().updated_at,
            now + chrono::TimeDelta::minutes(2)
        );
    }

    /// Records written by schema version 1 (this fixture) must stay readable.
    #[test]
    fn schema_1_fixtures_decode() {
        let rollout: Rollout = serde_json::from_str(
            r#"{"name":"k8s-1.34","order":0,"summary":"Kubernetes 1.34","state":"halted",
                "ring":"prod-canary","reason":"gate `error-ratio` failed",
                "createdAt":"2026-11-24T09:00:00Z","updatedAt":"2026-11-24T10:00:00Z"}"#,
        )
        .unwrap();
        assert!(
            matches!(rollout.state, RolloutState::Halted { ref ring, .. } if ring == "prod-canary")
        );
        let run: RingRun = serde_json::from_str(
            r#"{"rollout":"k8s-1.34","ring":"sandbox","index":0,"revision":7,"phase":"soaking",
                "phaseSince":"2026-11-24T09:00:00Z","reason":null,"members":["a","b"],"leftOut":[],
                "steps":[{"step":1,"pr":{"number":3,"url":"local#3","branch":"ringmaster/k8s-1.34/sandbox/1","head":"abc"},
                          "summary":"Kubernetes 1.33 → 1.34","clusters":["a","b"],"openedAt":"2026-11-24T09:00:00Z",
                          "mergedAt":"2026-11-24T09:10:00Z","mergeCommit":"def","convergedAt":null,"passedAt":null}],
                "convergeDeadline":null,"soakStarted":"2026-11-24T09:20:00Z","nextSampleAt":null,
                "baselines":[["error-ratio","a",0.001]],"evidence":null,"startedAt":"2026-11-24T09:00:00Z","passedAt":null}"#,
        )
        .unwrap();
        assert_eq!((run.phase, run.step_number()), (Phase::Soaking, 1));
    }

    #[test]
    fn the_global_freeze_is_set_and_lifted() {
        let (_d, s) = open();
        assert!(s.global_freeze().unwrap().is_none());
        let f = GlobalFreeze {
            until: t("2026-12-01T00:00:00Z"),
            reason: "incident 123".into(),
            by: "alice".into(),
            since: t("2026-11-24T09:00:00Z"),
        };
        s.set_global_freeze(Some(&f)).unwrap();
        assert_eq!(s.global_freeze().unwrap(), Some(f));
        s.set_global_freeze(None).unwrap();
        assert!(s.global_freeze().unwrap().is_none());
    }
}

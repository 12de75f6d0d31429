//! The daemon's records (DESIGN §5): rollouts, ring runs and their steps, gate samples, journal
//! entries and the global freeze — the shapes stored as JSON in sled.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

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
    /// Blocked: why, and what unblocks it (schema 2; a v1 blocked run is a preflight block).
    #[serde(default)]
    pub block: Option<BlockCause>,
    /// A transient error: when the ring run is tried again (schema 2).
    #[serde(default)]
    pub retry: Option<Backoff>,
    /// Soaking: when a sampling gap last restarted the soak clock (schema 2).
    #[serde(default)]
    pub soak_restarted: Option<DateTime<Utc>>,
}

/// Why a ring run is [`Phase::Blocked`], with what unblocks it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum BlockCause {
    /// Preflight (or planning) found problems on the ring's clusters; checked again every
    /// minute, and the ring goes on by itself once they are gone.
    Preflight {
        /// One line per problem.
        findings: Vec<String>,
    },
    /// An error that will not go away by retrying (a missing edit target, a 4xx the forge will
    /// keep giving, a push refused): waits for `ringmaster resume` or a new base commit.
    #[serde(rename_all = "camelCase")]
    Permanent {
        /// Where it came from.
        source: ErrorSource,
        /// The error, for people (file, cluster, forge answer).
        message: String,
        /// The phase the ring run was in, where `resume` takes it back.
        phase: Phase,
        /// The base-branch commit it failed on; a new one retries by itself.
        base: Option<String>,
    },
}

/// Which part of the world an error came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ErrorSource {
    /// The GitOps repository (an edit target, a push).
    Git,
    /// The forge's API.
    Forge,
    /// The configuration or a release.
    Config,
    /// A cluster.
    Cluster,
}

impl ErrorSource {
    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorSource::Git => "git",
            ErrorSource::Forge => "forge",
            ErrorSource::Config => "config",
            ErrorSource::Cluster => "cluster",
        }
    }
}

/// A ring run backing off after a transient error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Backoff {
    /// Consecutive failures so far (1 after the first).
    pub attempt: u32,
    /// Not tried again before this instant.
    pub at: DateTime<Utc>,
    /// The last error, for people.
    pub error: String,
    /// When the first of these failures happened.
    pub since: DateTime<Utc>,
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
            block: None,
            retry: None,
            soak_restarted: None,
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
    pub(crate) fn add(&mut self, outcome: SampleOutcome) {
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

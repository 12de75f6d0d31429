//! The decisions of a pass, pure (DESIGN §5): from a ring run's record, what was observed and
//! the clock, what to do next. No I/O here — the executor (the rest of `reconcile`) reads the
//! world, asks these functions, and performs and records what they say, so every phase and
//! every error class is covered by the table tests at the end without a forge or a cluster.
//!
//! - [`schedule`]: may the ring run be looked at now (a back-off, a permanent block)?
//! - [`classify`] and [`on_error`]: an error of one ring run blocks it or backs it off; only an
//!   unusable store fails a pass.
//! - [`pr_step`], [`converge_step`], [`soak_step`]: the PR, convergence and soak outcomes.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use policies::soak::Verdict;
use state::{Backoff, BlockCause, ErrorSource, Phase, RingRun};

use super::DaemonError;
use crate::forge::{ForgeError, PrLifecycle};
use crate::gitops::GitOpsError;
use crate::gitops::mirror::MirrorError;

/// The first retry of a transient error waits this long; each next one twice as long.
pub const BACKOFF_BASE: TimeDelta = TimeDelta::seconds(5);
/// At most this long between retries.
pub const BACKOFF_CAP: TimeDelta = TimeDelta::minutes(10);
/// A retry time is moved by up to this fraction either way, so ring runs that failed together
/// do not all come back in the same second.
pub const JITTER: f64 = 0.2;
/// A `Retry-After` longer than this is not believed (a clock skew, a bogus reset header).
pub const MAX_RETRY_AFTER: TimeDelta = TimeDelta::hours(1);

/// What kind of error one ring run met.
#[derive(Debug, Clone, PartialEq)]
pub enum ErrorClass {
    /// Worth retrying later (5xx, timeouts, rate limits, an unreachable remote); the forge may
    /// say when.
    Transient {
        /// `Retry-After` / `X-RateLimit-Reset`, when given.
        retry_after: Option<Duration>,
    },
    /// Retrying will give the same answer until someone changes something.
    Permanent(ErrorSource),
    /// The store is unusable: the pass stops (nothing can be recorded).
    Fatal,
}

/// Classify an error of one ring run.
pub fn classify(e: &DaemonError) -> ErrorClass {
    let transient = ErrorClass::Transient { retry_after: None };
    match e {
        DaemonError::Store(_) => ErrorClass::Fatal,
        DaemonError::Config(_) => ErrorClass::Permanent(ErrorSource::Config),
        DaemonError::Forge(f) => match f {
            ForgeError::RateLimited { retry_after } => ErrorClass::Transient {
                retry_after: Some(*retry_after),
            },
            // A moved head or base is read again on the next look.
            ForgeError::Transient(_)
            | ForgeError::HeadMoved { .. }
            | ForgeError::NotMergeable { .. } => transient,
            ForgeError::Permanent(_) | ForgeError::NotFound(_) => {
                ErrorClass::Permanent(ErrorSource::Forge)
            }
        },
        DaemonError::Git(g) => match g {
            GitOpsError::Mirror(MirrorError::Transport { .. }) => transient,
            // The base moved under the loaded registry: reloaded, then tried again.
            GitOpsError::StaleRegistry { .. } => transient,
            _ => ErrorClass::Permanent(ErrorSource::Git),
        },
    }
}

/// What to do with a ring run after an error.
#[derive(Debug, Clone, PartialEq)]
pub enum OnError {
    /// Move it to `Blocked` with this cause (journal, PR comment).
    Block(BlockCause),
    /// Keep its phase and try again at `Backoff::at`.
    BackOff(Backoff),
    /// Stop the pass.
    Fail,
}

/// The delay before retry `attempt` (1 = the first retry), `jitter` in `[-1, 1]` scaled by
/// [`JITTER`]: exponential from [`BACKOFF_BASE`], capped at [`BACKOFF_CAP`].
pub fn backoff_delay(attempt: u32, jitter: f64) -> TimeDelta {
    let doublings = attempt.saturating_sub(1).min(16);
    let raw = (BACKOFF_BASE * 2i32.pow(doublings)).min(BACKOFF_CAP);
    let factor = 1.0 + JITTER * jitter.clamp(-1.0, 1.0);
    TimeDelta::milliseconds((raw.num_milliseconds() as f64 * factor) as i64)
}

/// A deterministic jitter in `[-1, 1]` for a ring run's attempt (no random source needed, and
/// ring runs that failed in the same pass spread out).
pub fn jitter_of(rollout: &str, ring: &str, attempt: u32) -> f64 {
    // FNV-1a over the names and the attempt.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in rollout
        .bytes()
        .chain([0])
        .chain(ring.bytes())
        .chain(attempt.to_le_bytes())
    {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (h % 2001) as f64 / 1000.0 - 1.0
}

/// What an error of `class` (its text `message`) does to `run` at `now`, on base commit `base`.
/// A halted ring run is never blocked (the halt already stops it): it backs off.
pub fn on_error(
    run: &RingRun,
    class: ErrorClass,
    message: &str,
    base: Option<&str>,
    now: DateTime<Utc>,
    jitter: f64,
) -> OnError {
    let back_off = |retry_after: Option<Duration>| {
        let attempt = run
            .retry
            .as_ref()
            .map_or(1, |r| r.attempt.saturating_add(1));
        let mut delay = backoff_delay(attempt, jitter);
        if let Some(after) = retry_after.and_then(|d| TimeDelta::from_std(d).ok()) {
            delay = delay.max(after.min(MAX_RETRY_AFTER));
        }
        OnError::BackOff(Backoff {
            attempt,
            at: now + delay,
            error: message.to_owned(),
            since: run.retry.as_ref().map_or(now, |r| r.since),
        })
    };
    match class {
        ErrorClass::Fatal => OnError::Fail,
        ErrorClass::Transient { retry_after } => back_off(retry_after),
        ErrorClass::Permanent(_) if run.phase == Phase::Halted => back_off(None),
        ErrorClass::Permanent(source) => OnError::Block(BlockCause::Permanent {
            source,
            message: message.to_owned(),
            phase: match run.phase {
                // Blocked by preflight before: back to preflight.
                Phase::Blocked => Phase::Preflight,
                p => p,
            },
            base: base.map(str::to_owned),
        }),
    }
}

/// Whether a ring run is looked at in this pass.
#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    /// Advance it.
    Go,
    /// Leave it; look again at `until` (`None`: only when something changes).
    Wait {
        /// When it is due, if ever by time.
        until: Option<DateTime<Utc>>,
    },
    /// A permanent block whose base commit changed: unblock into `phase` and advance.
    Unblock {
        /// Where it goes back to.
        phase: Phase,
    },
}

/// Whether `run` is looked at `now`, the base branch being at `base`.
pub fn schedule(run: &RingRun, base: &str, now: DateTime<Utc>) -> Schedule {
    if let Some(r) = &run.retry
        && r.at > now
    {
        return Schedule::Wait { until: Some(r.at) };
    }
    match &run.block {
        Some(BlockCause::Permanent {
            phase,
            base: Some(b),
            ..
        }) if run.phase == Phase::Blocked && b != base => Schedule::Unblock { phase: *phase },
        Some(BlockCause::Permanent { .. }) if run.phase == Phase::Blocked => {
            Schedule::Wait { until: None }
        }
        _ => Schedule::Go,
    }
}

/// What to do with a ring step's PR, from what the forge says of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrStep {
    /// Merged: wait for convergence.
    Converge,
    /// Closed without merging: halt.
    Halt,
    /// The base branch moved under the ring branch: regenerate it.
    Regenerate,
    /// Waiting for people (review, merge) or checks.
    WaitForReview,
    /// Ready, but outside the window or frozen or paused.
    WaitForWindow,
    /// Merge it now.
    Merge,
}

/// The facts [`pr_step`] decides on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrFacts {
    /// The PR's state.
    pub state: PrLifecycle,
    /// The base branch moved since the ring branch was built.
    pub base_moved: bool,
    /// ringmaster merges this PR (auto, or manual and approved on the local forge).
    pub wants_merge: bool,
    /// Checks green (or none).
    pub checks_ok: bool,
    /// The PR's head is the commit ringmaster pushed.
    pub head_matches: bool,
    /// Changes are allowed now (window open, no freeze, not paused).
    pub change_allowed: bool,
}

/// What to do with an open (or closed, or merged) ring PR.
pub fn pr_step(f: PrFacts) -> PrStep {
    match f.state {
        PrLifecycle::Merged => PrStep::Converge,
        PrLifecycle::Closed => PrStep::Halt,
        PrLifecycle::Open if f.base_moved => PrStep::Regenerate,
        PrLifecycle::Open if !f.wants_merge || !f.checks_ok || !f.head_matches => {
            PrStep::WaitForReview
        }
        PrLifecycle::Open if !f.change_allowed => PrStep::WaitForWindow,
        PrLifecycle::Open => PrStep::Merge,
    }
}

/// What convergence means for a ring run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvergeStep {
    /// A revert ring whose clusters run the restored versions: passed.
    Reverted,
    /// Every cluster runs the step's versions: soak.
    Soak,
    /// The deadline passed with clusters behind: halt.
    Timeout,
    /// Not yet: look again.
    Wait,
}

/// From whether anything is still behind (or could not be told), the deadline and the clock.
pub fn converge_step(
    all_converged: bool,
    revert: bool,
    deadline: DateTime<Utc>,
    now: DateTime<Utc>,
) -> ConvergeStep {
    match (all_converged, revert) {
        (true, true) => ConvergeStep::Reverted,
        (true, false) => ConvergeStep::Soak,
        (false, _) if now >= deadline => ConvergeStep::Timeout,
        (false, _) => ConvergeStep::Wait,
    }
}

/// What a soak verdict means for a ring run.
#[derive(Debug, Clone, PartialEq)]
pub enum SoakStep {
    /// A gate failed (or could not be evaluated) too often: halt with this reason.
    Halt(String),
    /// Passed, and the ring has another step (a laggard cluster one minor further).
    NextStep,
    /// Passed: the ring is done.
    Pass,
    /// Still soaking; `restarted` when a sampling gap restarted the clock since last recorded.
    Wait {
        /// The new clock start and why, when it is news.
        restarted: Option<(DateTime<Utc>, String)>,
    },
}

/// From the verdict, whether the ring has another step, and the restart already recorded.
pub fn soak_step(verdict: Verdict, more_steps: bool, recorded: Option<DateTime<Utc>>) -> SoakStep {
    match verdict {
        Verdict::Halted { reason, .. } => SoakStep::Halt(reason),
        Verdict::Passed if more_steps => SoakStep::NextStep,
        Verdict::Passed => SoakStep::Pass,
        Verdict::Soaking { restarted, .. } => SoakStep::Wait {
            restarted: restarted
                .filter(|r| Some(r.at) != recorded)
                .map(|r| (r.at, r.to_string())),
        },
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
#[path = "decide_tests.rs"]
mod tests;

//! Forges: where ring PRs live. [`Forge`] is what the daemon uses; [`local::LocalForge`] (the
//! embedded default: PRs are store records, ringmaster merges with git2) and
//! [`github::GitHubForge`] (octocrab) implement it. [`render`] writes what reviewers read;
//! [`webhook`] turns GitHub webhooks into wake-ups.

pub mod github;
pub mod local;
pub mod render;
pub mod webhook;

use std::time::Duration;

/// What ringmaster asks a forge to open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenPr {
    /// Head branch (`ringmaster/<rollout>/<ring>/<step>`).
    pub branch: String,
    /// Base branch.
    pub base: String,
    /// Title.
    pub title: String,
    /// Body (Markdown, with the hidden marker).
    pub body: String,
    /// Labels: `ringmaster`, `ring/<name>`, `rollout/<name>`.
    pub labels: Vec<String>,
    /// Users (`alice`) and teams (`org/team`) asked to review.
    pub reviewers: Vec<String>,
}

/// The lifecycle state of a PR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrLifecycle {
    /// Open.
    Open,
    /// Closed without merging.
    Closed,
    /// Merged.
    Merged,
}

/// Combined result of statuses and check runs on the head commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checks {
    /// No status or check reported.
    None,
    /// Something still running.
    Pending,
    /// Everything green.
    Success,
    /// Something failed.
    Failure,
}

/// What ringmaster needs to know about a PR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrStatus {
    /// Number.
    pub number: u64,
    /// Open, closed, merged.
    pub state: PrLifecycle,
    /// The head commit.
    pub head_sha: String,
    /// The merge commit, once merged.
    pub merge_sha: Option<String>,
    /// Reviewers whose latest review approves the current head.
    pub approvals: Vec<String>,
    /// Reviewers whose latest review requests changes (an approval does not count while any).
    pub changes_requested: Vec<String>,
    /// Checks on the head.
    pub checks: Checks,
}

impl PrStatus {
    /// Approved: at least one approval of the current head, no outstanding change request.
    pub fn approved(&self) -> bool {
        !self.approvals.is_empty() && self.changes_requested.is_empty()
    }
}

/// A ringmaster PR as listed by [`Forge::ringmaster_prs`] (rebuilding state from the forge).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrSummary {
    /// Number.
    pub number: u64,
    /// Head branch (`ringmaster/...`).
    pub branch: String,
    /// Body (with the hidden marker).
    pub body: String,
    /// Open, closed, merged.
    pub state: PrLifecycle,
    /// Head commit.
    pub head_sha: String,
    /// Merge commit, once merged.
    pub merge_sha: Option<String>,
    /// Labels.
    pub labels: Vec<String>,
}

/// Forge errors, classified so callers can branch: transient ones are retried with backoff,
/// permanent ones halt with the message.
#[derive(Debug, thiserror::Error)]
pub enum ForgeError {
    /// Rate limited (GitHub: a 429, or a 403 for the primary or a secondary limit): wait this
    /// long before calling again. Returned at once, never waited out inside a call.
    #[error("rate limited by the forge; retry after {retry_after:?}")]
    RateLimited {
        /// How long.
        retry_after: Duration,
    },
    /// Worth retrying (5xx, connection reset, timeout).
    #[error("forge temporarily unavailable: {0}")]
    Transient(String),
    /// Not worth retrying (bad credentials, validation).
    #[error("forge refused: {0}")]
    Permanent(String),
    /// The PR, repository or branch does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The head moved since it was read: re-read, never merge blindly.
    #[error("the head of PR #{number} is no longer {expected}")]
    HeadMoved {
        /// PR.
        number: u64,
        /// The head ringmaster checked.
        expected: String,
    },
    /// The forge will not merge (closed, conflicting, stale).
    #[error("PR #{number} cannot be merged: {reason}")]
    NotMergeable {
        /// PR.
        number: u64,
        /// Why.
        reason: String,
    },
}

impl ForgeError {
    /// How long the forge asked to wait before the next call: `Some` for a rate limit only.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ForgeError::RateLimited { retry_after } => Some(*retry_after),
            _ => None,
        }
    }

    /// Whether retrying later may help.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ForgeError::RateLimited { .. } | ForgeError::Transient(_)
        )
    }
}

/// A place where ring PRs live.
///
/// Every method is idempotent: `find_or_open` looks the branch up before creating, comments
/// carry a key and are updated rather than duplicated, labels are sets.
#[allow(async_fn_in_trait)] // used with concrete types; no trait objects, no Send bound needed
pub trait Forge {
    /// The PR for `pr.branch` (any state), opening it when there is none.
    async fn find_or_open(&self, pr: &OpenPr) -> Result<u64, ForgeError>;
    /// Replace title and body.
    async fn update(&self, number: u64, title: &str, body: &str) -> Result<(), ForgeError>;
    /// The PR as it is now.
    async fn status(&self, number: u64) -> Result<PrStatus, ForgeError>;
    /// Merge, only if the head is still `expected_head`. Returns the merge commit.
    async fn merge(&self, number: u64, expected_head: &str) -> Result<String, ForgeError>;
    /// The comment with `key`, created or updated (never duplicated).
    async fn comment(&self, number: u64, key: &str, body: &str) -> Result<(), ForgeError>;
    /// Add labels (a set: adding twice is a no-op).
    async fn add_labels(&self, number: u64, labels: &[String]) -> Result<(), ForgeError>;
    /// Every PR whose head branch is under `ringmaster/`, any state, oldest first.
    async fn ringmaster_prs(&self) -> Result<Vec<PrSummary>, ForgeError>;
}

/// The labels of a ring PR.
pub fn labels(rollout: &str, ring: &str) -> Vec<String> {
    vec![
        "ringmaster".to_owned(),
        format!("ring/{ring}"),
        format!("rollout/{rollout}"),
    ]
}

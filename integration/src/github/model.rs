//! The fake's state: repositories, pull requests and what humans and CI did to them.
//!
//! Everything lives in one [`World`] behind a `std::sync::Mutex`; request handlers and the test
//! helpers run synchronously under the lock (git2 included), so every request sees a consistent
//! world and never awaits while holding it.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::app::App;
use super::faults::TimedFaults;
use super::git::{self, MergeError, MergeMethod, MergeSpec};
use super::{Fault, RecordedRequest};

/// The login behind every API token (the bot ringmaster runs as).
pub(crate) const API_USER: &str = "ringmaster-bot";

/// Requests per hour of GitHub's `core` resource for a personal token.
pub(crate) const DEFAULT_RATE_LIMIT: u64 = 5_000;

/// Length of a rate-limit window, seconds.
pub(crate) const RATE_WINDOW_SECS: i64 = 3_600;

/// The primary rate limit's current window.
#[derive(Debug, Clone)]
pub(crate) struct RateWindow {
    pub limit: u64,
    pub used: u64,
    /// Unix seconds at which `used` goes back to zero.
    pub reset: i64,
}

impl RateWindow {
    pub fn remaining(&self) -> u64 {
        self.limit.saturating_sub(self.used)
    }

    /// Starts a new window if the current one is over.
    pub fn roll(&mut self, now: DateTime<Utc>) {
        if now.timestamp() >= self.reset {
            self.used = 0;
            self.reset = now.timestamp() + RATE_WINDOW_SECS;
        }
    }
}

/// Everything the fake knows.
#[derive(Debug)]
pub(crate) struct World {
    /// `http://127.0.0.1:PORT`, for the URLs inside responses.
    pub api_url: String,
    /// By lower-cased `owner/name` (GitHub's names are case-insensitive).
    pub repos: BTreeMap<String, Repo>,
    /// Ids of everything (pull requests, reviews, comments, labels, statuses, check runs).
    pub next_id: u64,
    pub token: Option<String>,
    pub faults: VecDeque<Fault>,
    /// Faults that last ([`Fault::Timed`], `POST /_fake/faults`).
    pub timed: TimedFaults,
    /// Requests answered with a fault (an error, a limit, a delay or a dropped connection).
    pub faulted: u64,
    /// Pending [`Fault::DuplicatePrOnCreate`]s.
    pub duplicate_on_create: u32,
    pub requests: Vec<RecordedRequest>,
    /// Requests served since the start (the `x-github-request-id` sequence).
    pub served: u64,
    pub rate: RateWindow,
    /// The GitHub App, once [`super::FakeGitHub::enable_app`] registered one.
    pub app: Option<App>,
}

impl World {
    pub fn new(api_url: String, now: DateTime<Utc>) -> World {
        World {
            api_url,
            repos: BTreeMap::new(),
            next_id: 1,
            token: None,
            faults: VecDeque::new(),
            timed: TimedFaults::default(),
            faulted: 0,
            duplicate_on_create: 0,
            requests: Vec::new(),
            served: 0,
            rate: RateWindow {
                limit: DEFAULT_RATE_LIMIT,
                used: 0,
                reset: now.timestamp() + RATE_WINDOW_SECS,
            },
            app: None,
        }
    }

    /// The repository `owner/name`, with what handlers need besides it.
    pub fn ctx(&mut self, owner: &str, name: &str, now: DateTime<Utc>) -> Option<Ctx<'_>> {
        let repo = self.repos.get_mut(&repo_key(owner, name))?;
        Some(Ctx {
            api: &self.api_url,
            ids: &mut self.next_id,
            duplicate_on_create: &mut self.duplicate_on_create,
            repo,
            now,
        })
    }

    /// Like [`World::ctx`] from a full name `owner/name`.
    pub fn ctx_full(&mut self, full_name: &str, now: DateTime<Utc>) -> Option<Ctx<'_>> {
        let (owner, name) = full_name.split_once('/')?;
        self.ctx(owner, name, now)
    }
}

/// The lookup key of a repository.
pub(crate) fn repo_key(owner: &str, name: &str) -> String {
    format!(
        "{}/{}",
        owner.to_ascii_lowercase(),
        name.to_ascii_lowercase()
    )
}

/// One repository's view of the world, borrowed for one request.
#[derive(Debug)]
pub(crate) struct Ctx<'a> {
    pub api: &'a str,
    pub ids: &'a mut u64,
    pub duplicate_on_create: &'a mut u32,
    pub repo: &'a mut Repo,
    pub now: DateTime<Utc>,
}

impl Ctx<'_> {
    pub fn next_id(&mut self) -> u64 {
        let id = *self.ids;
        *self.ids += 1;
        id
    }
}

/// A repository backed by a git directory.
#[derive(Debug)]
pub(crate) struct Repo {
    pub owner: String,
    pub name: String,
    pub id: u64,
    pub git_dir: PathBuf,
    pub default_branch: String,
    pub created_at: DateTime<Utc>,
    /// Issue and pull request numbers share one sequence, as on GitHub.
    pub next_number: u64,
    pub pulls: BTreeMap<u64, Pull>,
    pub comments: Vec<IssueComment>,
    /// Repository labels by lower-cased name.
    pub labels: BTreeMap<String, LabelDef>,
    pub statuses: Vec<CommitStatus>,
    pub check_runs: Vec<CheckRunRec>,
}

/// `open` or `closed` (merged pull requests are closed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PullState {
    Open,
    Closed,
}

impl PullState {
    pub fn as_str(self) -> &'static str {
        match self {
            PullState::Open => "open",
            PullState::Closed => "closed",
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Pull {
    pub number: u64,
    pub id: u64,
    pub title: String,
    pub body: Option<String>,
    pub user: String,
    pub state: PullState,
    pub draft: bool,
    pub head_ref: String,
    pub base_ref: String,
    /// Last head commit seen; the truth for open pull requests is the branch.
    pub head_sha: String,
    /// Base commit when the pull request was closed or merged.
    pub closed_base_sha: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
    pub merged_at: Option<DateTime<Utc>>,
    pub merged_by: Option<String>,
    pub merge_commit_sha: Option<String>,
    /// Label names, in the order they were added.
    pub labels: Vec<String>,
    pub requested_reviewers: Vec<String>,
    pub requested_teams: Vec<String>,
    pub reviews: Vec<Review>,
}

impl Pull {
    pub fn merged(&self) -> bool {
        self.merged_at.is_some()
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Review {
    pub id: u64,
    pub user: String,
    pub body: String,
    /// `APPROVED`, `CHANGES_REQUESTED`, `COMMENTED`, `DISMISSED` or `PENDING`.
    pub state: String,
    pub commit_id: String,
    pub submitted_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub(crate) struct IssueComment {
    pub id: u64,
    pub number: u64,
    pub user: String,
    pub body: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub(crate) struct LabelDef {
    pub id: u64,
    pub name: String,
    pub color: String,
}

#[derive(Debug, Clone)]
pub(crate) struct CommitStatus {
    pub id: u64,
    pub sha: String,
    pub state: String,
    pub context: String,
    pub description: Option<String>,
    pub target_url: Option<String>,
    pub creator: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub(crate) struct CheckRunRec {
    pub id: u64,
    pub sha: String,
    pub name: String,
    /// `queued`, `in_progress` or `completed`.
    pub status: String,
    pub conclusion: Option<String>,
    pub started_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
}

/// The commit states a status may have.
pub(crate) const STATUS_STATES: [&str; 4] = ["error", "failure", "pending", "success"];

/// Why a merge was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MergeRefusal {
    NotFound,
    /// Closed, merged, draft or conflicting; the message says which.
    NotMergeable(&'static str),
    /// The expected head SHA is not the head.
    HeadModified,
    BaseMoved,
    Git(String),
}

impl Repo {
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.owner, self.name)
    }

    /// The head commit: the branch for open pull requests (a push moves it), else the last seen.
    pub fn head_sha(&self, pull: &Pull) -> String {
        if pull.state == PullState::Open
            && let Some(sha) = git::branch_sha(&self.git_dir, &pull.head_ref)
        {
            return sha;
        }
        pull.head_sha.clone()
    }

    /// The base commit: the branch's tip for open pull requests.
    pub fn base_sha(&self, pull: &Pull) -> String {
        if let Some(sha) = &pull.closed_base_sha {
            return sha.clone();
        }
        git::branch_sha(&self.git_dir, &pull.base_ref).unwrap_or_default()
    }

    /// The open pull request for this head and base, if any.
    pub fn open_pull_for(&self, head: &str, base: &str) -> Option<u64> {
        self.pulls
            .values()
            .find(|p| p.state == PullState::Open && p.head_ref == head && p.base_ref == base)
            .map(|p| p.number)
    }

    /// Closes a pull request, freezing its head and base.
    pub fn close(&mut self, number: u64, now: DateTime<Utc>) -> bool {
        let Some(pull) = self.pulls.get(&number) else {
            return false;
        };
        let head = self.head_sha(pull);
        let base = self.base_sha(pull);
        let Some(pull) = self.pulls.get_mut(&number) else {
            return false;
        };
        if pull.state == PullState::Open {
            pull.head_sha = head;
            pull.closed_base_sha = Some(base);
            pull.state = PullState::Closed;
            pull.closed_at = Some(now);
            pull.updated_at = now;
        }
        true
    }

    /// Records a review; a requested reviewer who reviews is no longer requested.
    pub fn add_review(&mut self, number: u64, review: Review) -> Option<&Review> {
        let pull = self.pulls.get_mut(&number)?;
        pull.requested_reviewers
            .retain(|r| !r.eq_ignore_ascii_case(&review.user));
        pull.updated_at = review.submitted_at;
        pull.reviews.push(review);
        pull.reviews.last()
    }

    /// The repository label with this name, created (grey) if the repository has none.
    pub fn label_named(&mut self, name: &str, id: impl FnOnce() -> u64) -> String {
        self.labels
            .entry(name.to_lowercase())
            .or_insert_with(|| LabelDef {
                id: id(),
                name: name.to_string(),
                color: "ededed".to_string(),
            })
            .name
            .clone()
    }

    /// The latest status per context for a commit, newest first.
    pub fn latest_statuses(&self, sha: &str) -> Vec<&CommitStatus> {
        let mut seen: Vec<&str> = Vec::new();
        let mut out = Vec::new();
        for s in self.statuses.iter().rev().filter(|s| s.sha == sha) {
            if !seen.contains(&s.context.as_str()) {
                seen.push(&s.context);
                out.push(s);
            }
        }
        out
    }

    /// Creates or updates the check run `name` on `sha`.
    pub fn upsert_check_run(
        &mut self,
        sha: &str,
        name: &str,
        status: &str,
        conclusion: Option<&str>,
        now: DateTime<Utc>,
        id: impl FnOnce() -> u64,
    ) {
        let completed_at = (status == "completed").then_some(now);
        if let Some(run) = self
            .check_runs
            .iter_mut()
            .find(|r| r.sha == sha && r.name == name)
        {
            run.status = status.to_string();
            run.conclusion = conclusion.map(str::to_string);
            run.completed_at = completed_at;
            return;
        }
        self.check_runs.push(CheckRunRec {
            id: id(),
            sha: sha.to_string(),
            name: name.to_string(),
            status: status.to_string(),
            conclusion: conclusion.map(str::to_string),
            started_at: now,
            completed_at,
        });
    }

    /// Merges a pull request in the git repository and marks it merged.
    pub fn merge(
        &mut self,
        number: u64,
        method: MergeMethod,
        expected_head: Option<&str>,
        commit_title: Option<&str>,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<String, MergeRefusal> {
        let pull = self.pulls.get(&number).ok_or(MergeRefusal::NotFound)?;
        if pull.state != PullState::Open {
            return Err(MergeRefusal::NotMergeable("Pull Request is not mergeable"));
        }
        if pull.draft {
            return Err(MergeRefusal::NotMergeable("Pull Request is still a draft"));
        }
        let head = self.head_sha(pull);
        if expected_head.is_some_and(|e| !e.eq_ignore_ascii_case(&head)) {
            return Err(MergeRefusal::HeadModified);
        }
        let base = self.base_sha(pull);
        let message = match method {
            MergeMethod::Merge => format!(
                "{}\n\n{}",
                commit_title.map_or_else(
                    || format!(
                        "Merge pull request #{number} from {}/{}",
                        self.owner, pull.head_ref
                    ),
                    str::to_string
                ),
                pull.title
            ),
            MergeMethod::Squash | MergeMethod::Rebase => {
                commit_title.map_or_else(|| format!("{} (#{number})", pull.title), str::to_string)
            }
        };
        let spec = MergeSpec {
            base_branch: &pull.base_ref,
            base_sha: &base,
            head_sha: &head,
            method,
            message: &message,
            actor,
        };
        let sha = git::merge(&self.git_dir, &spec).map_err(|e| match e {
            MergeError::Conflict => MergeRefusal::NotMergeable("Pull Request is not mergeable"),
            MergeError::BaseMoved => MergeRefusal::BaseMoved,
            MergeError::Git(m) => MergeRefusal::Git(m),
        })?;
        if let Some(pull) = self.pulls.get_mut(&number) {
            pull.head_sha = head;
            pull.closed_base_sha = Some(base);
            pull.state = PullState::Closed;
            pull.closed_at = Some(now);
            pull.merged_at = Some(now);
            pull.updated_at = now;
            pull.merged_by = Some(actor.to_string());
            pull.merge_commit_sha = Some(sha.clone());
        }
        Ok(sha)
    }

    /// What tests assert on.
    pub fn snapshot(&self, number: u64) -> Option<PullSnapshot> {
        let pull = self.pulls.get(&number)?;
        Some(PullSnapshot {
            number,
            title: pull.title.clone(),
            body: pull.body.clone(),
            user: pull.user.clone(),
            state: pull.state.as_str().to_string(),
            draft: pull.draft,
            merged: pull.merged(),
            head_ref: pull.head_ref.clone(),
            head_sha: self.head_sha(pull),
            base_ref: pull.base_ref.clone(),
            merge_commit_sha: pull.merge_commit_sha.clone(),
            labels: pull.labels.clone(),
            requested_reviewers: pull.requested_reviewers.clone(),
            requested_teams: pull.requested_teams.clone(),
            reviews: pull
                .reviews
                .iter()
                .map(|r| ReviewSnapshot {
                    id: r.id,
                    user: r.user.clone(),
                    state: r.state.clone(),
                    commit_id: r.commit_id.clone(),
                    body: r.body.clone(),
                })
                .collect(),
            comments: self
                .comments
                .iter()
                .filter(|c| c.number == number)
                .map(|c| CommentSnapshot {
                    id: c.id,
                    user: c.user.clone(),
                    body: c.body.clone(),
                })
                .collect(),
        })
    }
}

/// A pull request as a test sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PullSnapshot {
    pub number: u64,
    pub title: String,
    pub body: Option<String>,
    /// Who opened it.
    pub user: String,
    /// `open` or `closed`.
    pub state: String,
    pub draft: bool,
    pub merged: bool,
    pub head_ref: String,
    /// Read from the head branch while the pull request is open.
    pub head_sha: String,
    pub base_ref: String,
    pub merge_commit_sha: Option<String>,
    pub labels: Vec<String>,
    pub requested_reviewers: Vec<String>,
    pub requested_teams: Vec<String>,
    /// In submission order.
    pub reviews: Vec<ReviewSnapshot>,
    /// Issue comments, in creation order.
    pub comments: Vec<CommentSnapshot>,
}

/// A review as a test sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReviewSnapshot {
    pub id: u64,
    pub user: String,
    /// `APPROVED`, `CHANGES_REQUESTED`, `COMMENTED`, `DISMISSED` or `PENDING`.
    pub state: String,
    pub commit_id: String,
    pub body: String,
}

/// An issue comment as a test sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CommentSnapshot {
    pub id: u64,
    pub user: String,
    pub body: String,
}

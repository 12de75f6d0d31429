//! # A fake GitHub REST API on loopback
//!
//! A stateful fake in the manner of rust-lang/bors's test GitHub: it speaks GitHub's wire
//! protocol (paths, verbs, status codes, JSON field names, `Link` pagination, rate-limit
//! headers, ETags and `304 Not Modified`) to any HTTP client — the real octocrab client in
//! ringmaster's tests, `curl` in a terminal. Pull requests are backed by a real git repository:
//! head SHAs are read from the branches (a `git push` moves them) and merges are real commits
//! on the base branch.
//!
//! Tests act as humans and CI through helper methods ([`FakeGitHub::approve`],
//! [`FakeGitHub::set_status`], ...), inject faults ([`Fault`]), and assert on the world
//! afterwards ([`FakeGitHub::pull`], [`FakeGitHub::requests`]).
//!
//! ```no_run
//! # async fn demo(git_dir: &std::path::Path) -> std::io::Result<()> {
//! let github = integration::github::FakeGitHub::start().await?;
//! github.add_repo("acme", "gitops", git_dir, "main");
//! // point octocrab at github.api_url() ...
//! github.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! Every token is accepted unless [`FakeGitHub::require_token`] says otherwise; the token's user
//! is `ringmaster-bot`, who opens the pull requests created through the API.
//! [`FakeGitHub::enable_app`] adds GitHub App authentication: JWT-authenticated App endpoints
//! and installation tokens that expire.
//!
//! Faults that last ([`TimedFault`]: 5xx errors, primary and secondary rate limits, slow
//! answers, an outage that drops connections) can also be started and ended over HTTP, by
//! anyone who can reach the port: `POST /_fake/faults` with
//! `{"kind":"rate-limit","after":0,"for_secs":600}`, `GET /_fake/faults`,
//! `DELETE /_fake/faults`. These control endpoints take no token and meet no fault.

mod app;
mod conn;
mod control;
mod faults;
mod git;
mod json;
mod model;
mod routes;
mod server;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use faults::{DEFAULT_SLOW_DELAY, FaultKind, MAX_FAULT_DURATION, MAX_SLOW_DELAY, TimedFault};
pub use model::{CommentSnapshot, PullSnapshot, ReviewSnapshot};

use model::{CommitStatus, Ctx, MergeRefusal, Repo, Review, World};
use server::Shared;

/// How long [`FakeGitHub::shutdown`] waits for open requests before dropping them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Who merges in [`FakeGitHub::merge_pr_as_human`].
const HUMAN_MERGER: &str = "octocat";

/// Who posts statuses and check runs from the CI helpers.
const CI_USER: &str = "ci-bot";

/// A fault injected with [`FakeGitHub::inject`]. Counted faults apply to the next requests of
/// any kind, in queue order; a [`Fault::Timed`] one lasts a duration and goes first while it
/// runs. No fault applies to the `/_fake/*` control endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The next `count` requests answer `502 Bad Gateway`.
    ServerErrors { count: u32 },
    /// The next `count` requests answer 403 with GitHub's secondary-rate-limit message and a
    /// `retry-after` header.
    SecondaryRateLimit { retry_after_secs: u64, count: u32 },
    /// The next `count` requests answer 403 "API rate limit exceeded" with
    /// `x-ratelimit-remaining: 0` and `x-ratelimit-reset` = now + `reset_in_secs`.
    PrimaryRateLimit { reset_in_secs: u64, count: u32 },
    /// The next `count` requests are answered normally after `millis` milliseconds.
    Slow { millis: u64, count: u32 },
    /// The next `POST /pulls` that succeeds creates the pull request but answers 422
    /// "A pull request already exists" (a response lost after the write).
    DuplicatePrOnCreate,
    /// A fault that starts after a number of requests and lasts a duration (also
    /// `POST /_fake/faults` and `ringmaster-sim --github-fault`).
    Timed(TimedFault),
}

/// One request as the fake saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path as sent (`/repos/acme/gitops/pulls`).
    pub path: String,
    /// The raw query string, if any.
    pub query: Option<String>,
    /// The response status.
    pub status: u16,
    /// Whether the request carried `If-None-Match`.
    pub if_none_match: bool,
    /// Whether it counted against the primary rate limit (304s and `/rate_limit` do not).
    pub counted: bool,
}

impl RecordedRequest {
    /// `path?query`.
    pub fn path_and_query(&self) -> String {
        match &self.query {
            Some(q) => format!("{}?{q}", self.path),
            None => self.path.clone(),
        }
    }
}

/// A running fake GitHub. Dropping it stops the server; [`FakeGitHub::shutdown`] stops it
/// gracefully.
#[derive(Debug)]
pub struct FakeGitHub {
    api_url: String,
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl FakeGitHub {
    /// Serves on `127.0.0.1` on a free port, in a background tokio task.
    pub async fn start() -> std::io::Result<FakeGitHub> {
        FakeGitHub::start_on_port(0).await
    }

    /// Serves on `127.0.0.1:port` (0 = a free port).
    pub async fn start_on_port(port: u16) -> std::io::Result<FakeGitHub> {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await?;
        let addr = listener.local_addr()?;
        let api_url = format!("http://{addr}");
        let shared = Arc::new(Shared::new(World::new(api_url.clone(), Utc::now())));
        let app =
            server::router(Arc::clone(&shared)).into_make_service_with_connect_info::<conn::Conn>();
        let listener = conn::CuttableListener::new(listener);
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let stop = async {
                let _ = rx.await;
            };
            // Serving ends only on shutdown (accept errors are retried).
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(stop)
                .await;
        });
        Ok(FakeGitHub {
            api_url,
            addr,
            shared,
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    /// `http://127.0.0.1:PORT`: octocrab's `base_uri`.
    pub fn api_url(&self) -> String {
        self.api_url.clone()
    }

    /// The socket address served.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Registers `owner/name`, backed by the git repository (bare or not) at `git_dir`.
    /// Registering the same name again points it at `git_dir` and keeps its pull requests.
    pub fn add_repo(&self, owner: &str, name: &str, git_dir: &Path, default_branch: &str) {
        let mut world = self.shared.lock();
        let key = model::repo_key(owner, name);
        if let Some(repo) = world.repos.get_mut(&key) {
            repo.git_dir = git_dir.to_path_buf();
            repo.default_branch = default_branch.to_string();
            return;
        }
        let repo = Repo {
            owner: owner.to_string(),
            name: name.to_string(),
            id: json::stable_id("repo", &key),
            git_dir: git_dir.to_path_buf(),
            default_branch: default_branch.to_string(),
            created_at: Utc::now(),
            next_number: 1,
            pulls: Default::default(),
            comments: Vec::new(),
            labels: Default::default(),
            statuses: Vec::new(),
            check_runs: Vec::new(),
        };
        world.repos.insert(key, repo);
    }

    /// `None`: any token, or none, is accepted. `Some(t)`: only `token t` / `Bearer t`; anything
    /// else answers 401.
    pub fn require_token(&self, token: Option<String>) {
        self.shared.lock().token = token;
    }

    /// Registers a GitHub App with one installation (`installation_id`) on every repository.
    /// `GET /repos/{owner}/{repo}/installation` and `POST /app/installations/{id}/access_tokens`
    /// then take only `Authorization: Bearer <JWT>` signed RS256 by the key matching
    /// `public_key_pem`, with `iss` = `app_id` (a number or a string) and `exp` in the future,
    /// and answer anything else 401 "A JSON web token could not be decoded". Each access token
    /// (`ghs_...`) lasts `token_lifetime` and is then answered 401 "Bad credentials", whatever
    /// [`FakeGitHub::require_token`] says. Enabling again replaces the App and forgets its
    /// tokens. Panics if `public_key_pem` is not an RSA public key in PEM.
    pub fn enable_app(
        &self,
        app_id: u64,
        public_key_pem: &str,
        installation_id: u64,
        token_lifetime: Duration,
    ) {
        match app::App::new(app_id, public_key_pem, installation_id, token_lifetime) {
            Ok(app) => self.shared.lock().app = Some(app),
            Err(e) => panic!("fake GitHub: {e}"),
        }
    }

    /// Installation access tokens issued since [`FakeGitHub::enable_app`] (0 without an App).
    pub fn issued_tokens(&self) -> usize {
        self.shared.lock().app.as_ref().map_or(0, |a| a.issued)
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().requests.clone()
    }

    /// Forgets the recorded requests.
    pub fn reset_requests(&self) {
        self.shared.lock().requests.clear();
    }

    /// Queues a counted fault, or starts a timed one.
    pub fn inject(&self, fault: Fault) {
        self.shared.lock().inject(fault);
    }

    /// Ends every fault, counted or timed, waiting or running (as `DELETE /_fake/faults`).
    pub fn clear_faults(&self) {
        self.shared.lock().clear_faults();
    }

    /// Requests answered with a fault so far: an error or limit instead of the API's answer, a
    /// delayed answer, or a connection dropped by an outage.
    pub fn faulted_requests(&self) -> u64 {
        self.shared.lock().faulted
    }

    /// Sets the primary rate limit (requests per hour; default 5,000) and starts a new window.
    pub fn set_rate_limit(&self, limit: u64) {
        let mut world = self.shared.lock();
        world.rate.limit = limit;
        world.rate.used = 0;
        world.rate.reset = Utc::now().timestamp() + model::RATE_WINDOW_SECS;
    }

    /// Requests left in the current rate-limit window.
    pub fn rate_limit_remaining(&self) -> u64 {
        self.shared.lock().rate.remaining()
    }

    /// Runs `f` on a repository. Panics (after releasing the lock) if the repository is
    /// unknown or `f` returns `None`: helpers are test code, and a typo must not pass silently.
    fn with_repo<T>(&self, repo: &str, what: &str, f: impl FnOnce(&mut Ctx<'_>) -> Option<T>) -> T {
        let result = {
            let mut world = self.shared.lock();
            world.ctx_full(repo, Utc::now()).map(|mut ctx| f(&mut ctx))
        };
        match result {
            Some(Some(t)) => t,
            Some(None) => panic!("fake GitHub: {what} not found in {repo}"),
            None => panic!("fake GitHub: no repository {repo} (register it with add_repo)"),
        }
    }

    fn review(&self, repo: &str, number: u64, user: &str, state: &str) {
        self.with_repo(repo, &format!("pull request #{number}"), |ctx| {
            let pull = ctx.repo.pulls.get(&number)?;
            let commit_id = ctx.repo.head_sha(pull);
            let review = Review {
                id: ctx.next_id(),
                user: user.to_string(),
                body: String::new(),
                state: state.to_string(),
                commit_id,
                submitted_at: ctx.now,
            };
            ctx.repo.add_review(number, review).map(|_| ())
        });
    }

    /// `user` approves pull request `number` of `owner/name` on its current head.
    /// Panics if the repository or pull request is unknown.
    pub fn approve(&self, repo: &str, number: u64, user: &str) {
        self.review(repo, number, user, "APPROVED");
    }

    /// `user` requests changes on pull request `number` on its current head.
    pub fn request_changes(&self, repo: &str, number: u64, user: &str) {
        self.review(repo, number, user, "CHANGES_REQUESTED");
    }

    /// CI posts a commit status. `sha` may be any ref the API accepts; `state` is `success`,
    /// `failure`, `pending` or `error`. Panics on an unknown repository, commit or state.
    pub fn set_status(&self, repo: &str, sha: &str, context: &str, state: &str) {
        assert!(
            model::STATUS_STATES.contains(&state),
            "fake GitHub: status state {state:?} is not one of {:?}",
            model::STATUS_STATES
        );
        self.with_repo(repo, &format!("commit {sha}"), |ctx| {
            let sha = git::resolve_commit(&ctx.repo.git_dir, sha)?;
            let status = CommitStatus {
                id: ctx.next_id(),
                sha,
                state: state.to_string(),
                context: context.to_string(),
                description: None,
                target_url: None,
                creator: CI_USER.to_string(),
                created_at: ctx.now,
            };
            ctx.repo.statuses.push(status);
            Some(())
        });
    }

    /// CI creates or updates the check run `name` on `sha`. `status` is `queued`,
    /// `in_progress` or `completed`; `conclusion` (`success`, `failure`, `neutral`,
    /// `cancelled`, `timed_out`, `action_required`, `skipped`) goes with `completed`.
    pub fn set_check_run(
        &self,
        repo: &str,
        sha: &str,
        name: &str,
        status: &str,
        conclusion: Option<&str>,
    ) {
        self.with_repo(repo, &format!("commit {sha}"), |ctx| {
            let sha = git::resolve_commit(&ctx.repo.git_dir, sha)?;
            let ids = &mut *ctx.ids;
            ctx.repo
                .upsert_check_run(&sha, name, status, conclusion, ctx.now, || {
                    let id = *ids;
                    *ids += 1;
                    id
                });
            Some(())
        });
    }

    /// A human closes pull request `number` without merging it.
    pub fn close_pr(&self, repo: &str, number: u64) {
        self.with_repo(repo, &format!("pull request #{number}"), |ctx| {
            ctx.repo.close(number, ctx.now).then_some(())
        });
    }

    /// A human presses "Merge pull request": a real merge commit on the base branch.
    /// Returns the merge commit's SHA, or why GitHub would refuse.
    pub fn merge_pr_as_human(&self, repo: &str, number: u64) -> Result<String, String> {
        let mut world = self.shared.lock();
        let Some(ctx) = world.ctx_full(repo, Utc::now()) else {
            return Err(format!("no repository {repo}"));
        };
        let now = ctx.now;
        ctx.repo
            .merge(
                number,
                git::MergeMethod::Merge,
                None,
                None,
                HUMAN_MERGER,
                now,
            )
            .map_err(|e| match e {
                MergeRefusal::NotFound => format!("no pull request #{number} in {repo}"),
                MergeRefusal::NotMergeable(m) => m.to_string(),
                MergeRefusal::HeadModified => "head branch was modified".to_string(),
                MergeRefusal::BaseMoved => "base branch was modified".to_string(),
                MergeRefusal::Git(m) => format!("git: {m}"),
            })
    }

    /// Pull request `number` of `owner/name`, as tests assert on it.
    pub fn pull(&self, repo: &str, number: u64) -> Option<PullSnapshot> {
        let mut world = self.shared.lock();
        world.ctx_full(repo, Utc::now())?.repo.snapshot(number)
    }

    /// Every pull request of `owner/name`, by number.
    pub fn pulls(&self, repo: &str) -> Vec<PullSnapshot> {
        let mut world = self.shared.lock();
        let Some(ctx) = world.ctx_full(repo, Utc::now()) else {
            return Vec::new();
        };
        ctx.repo
            .pulls
            .keys()
            .filter_map(|n| ctx.repo.snapshot(*n))
            .collect()
    }

    /// Stops serving: no new connections; open requests get a few seconds to finish.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(SHUTDOWN_GRACE, &mut task)
                .await
                .is_err()
        {
            task.abort();
        }
    }
}

impl Drop for FakeGitHub {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

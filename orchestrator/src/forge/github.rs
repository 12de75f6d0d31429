//! GitHub (and GitHub Enterprise) through octocrab.
//!
//! Requests go through octocrab's raw calls so that ringmaster sees the headers: conditional
//! requests (`If-None-Match` → 304, which GitHub does not count against the rate limit),
//! `Retry-After` and `x-ratelimit-*`. octocrab's own retry layer is not compiled in: there is one
//! retry layer, this one, and it retries only what is safe (reads, and writes that failed before
//! GitHub answered with a 2xx/4xx).
//!
//! A call never sleeps long: a rate limit comes back at once as [`ForgeError::RateLimited`] with
//! GitHub's wait (the daemon requeues the ring run after it), and 5xx and connection errors are
//! retried inline only within [`RetryPolicy::budget`] before coming back as
//! [`ForgeError::Transient`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes_free::BodyBytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use octocrab::Octocrab;
use rings::model::{GitHubAuth, GitHubSettings, MergeMethod};
use serde_json::{Value, json};

use super::{Checks, Forge, ForgeError, OpenPr, PrLifecycle, PrStatus};
use crate::secret::Secret;

mod answers;

use answers::*;
pub use answers::{combine_checks, review_verdicts};

mod bytes_free {
    /// A response body.
    pub type BodyBytes = Vec<u8>;
}

/// Retry and pacing policy (DESIGN §13) for 5xx answers and connection errors; rate limits are
/// never waited out inside a call.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts per call, including the first. Default 3.
    pub max_attempts: u32,
    /// The first backoff; each next one is three times longer, plus up to a quarter of jitter
    /// (250 ms, 750 ms). Default 250 ms.
    pub base: Duration,
    /// The longest a call keeps retrying, from its first attempt: a retry whose backoff would end
    /// past it is not made and the transient error is returned. Default 2 s.
    pub budget: Duration,
    /// Minimum time between mutating requests (GitHub's secondary limits: 80 content-creating
    /// requests a minute). Default 1 s.
    pub mutation_gap: Duration,
    /// The `retry_after` of a rate limit that names no wait. Default 60 s.
    pub secondary_default: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            base: Duration::from_millis(250),
            budget: Duration::from_secs(2),
            mutation_gap: Duration::from_secs(1),
            secondary_default: Duration::from_secs(60),
        }
    }
}

/// The shortest `retry_after` returned for a rate limit (GitHub's headers say whole seconds).
pub const MIN_RETRY_AFTER: Duration = Duration::from_secs(1);
/// The longest `retry_after` returned for a rate limit: the primary window is an hour, so a
/// longer wait is a clock skew or a bad header.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);
/// Connect timeout per request.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Read timeout per request.
pub const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// What ringmaster last saw of GitHub's primary rate limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests left in the window.
    pub remaining: Option<u64>,
    /// Window reset (unix seconds).
    pub reset: Option<u64>,
}

/// The GitHub forge.
pub struct GitHubForge {
    crab: Octocrab,
    owner: String,
    repo: String,
    merge_method: MergeMethod,
    policy: RetryPolicy,
    etags: Mutex<HashMap<String, (HeaderValue, Value)>>,
    last_mutation: Mutex<Option<Instant>>,
    rate: Mutex<RateLimit>,
}

// Written by hand: the octocrab client's own `Debug` shows its auth state (an App's key material
// included), which must never reach a log line.
impl std::fmt::Debug for GitHubForge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitHubForge")
            .field("owner", &self.owner)
            .field("repo", &self.repo)
            .field("merge_method", &self.merge_method)
            .field("rate", &self.rate_limit())
            .finish_non_exhaustive()
    }
}

/// Is `url` https, or http on a loopback address? (octocrab sends the token on every request.)
pub fn api_url_is_safe(url: &str) -> bool {
    if url.starts_with("https://") {
        return true;
    }
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let host = rest.split(['/', '?']).next().unwrap_or("");
    let host = if host.starts_with('[') {
        host.trim_start_matches('[').split(']').next().unwrap_or("")
    } else {
        host.split(':').next().unwrap_or("")
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// At most this many pages of 100 PRs are read when rebuilding state from GitHub.
const MAX_LIST_PAGES: u32 = 50;

impl GitHubForge {
    /// A forge over an existing octocrab client.
    pub fn new(
        crab: Octocrab,
        owner: &str,
        repo: &str,
        merge_method: MergeMethod,
        policy: RetryPolicy,
    ) -> GitHubForge {
        GitHubForge {
            crab,
            owner: owner.to_owned(),
            repo: repo.to_owned(),
            merge_method,
            policy,
            etags: Mutex::new(HashMap::new()),
            last_mutation: Mutex::new(None),
            rate: Mutex::new(RateLimit::default()),
        }
    }

    /// Build from `forge.github` settings (token or GitHub App). Must run inside a tokio runtime.
    pub async fn from_settings(
        settings: &GitHubSettings,
        policy: RetryPolicy,
    ) -> Result<GitHubForge, ForgeError> {
        if !api_url_is_safe(&settings.api_url) {
            return Err(ForgeError::Permanent(format!(
                "forge.github.apiUrl `{}` is not https; the token would travel in clear",
                settings.api_url
            )));
        }
        let builder = Octocrab::builder()
            .base_uri(settings.api_url.as_str())
            .map_err(|e| ForgeError::Permanent(format!("forge.github.apiUrl: {e}")))?
            .set_connect_timeout(Some(CONNECT_TIMEOUT))
            .set_read_timeout(Some(READ_TIMEOUT));
        let crab = match &settings.auth {
            GitHubAuth::Token(src) => {
                let token = Secret::read(src)
                    .map_err(|e| ForgeError::Permanent(format!("GitHub token: {e}")))?;
                builder
                    .personal_token(token.expose().to_owned())
                    .build()
                    .map_err(|e| ForgeError::Permanent(format!("GitHub client: {e}")))?
            }
            GitHubAuth::App {
                app_id,
                private_key_file,
                installation_id,
            } => {
                let pem = std::fs::read(private_key_file).map_err(|e| {
                    ForgeError::Permanent(format!(
                        "GitHub App key {}: {e}",
                        private_key_file.display()
                    ))
                })?;
                let key = jsonwebtoken::EncodingKey::from_rsa_pem(&pem).map_err(|e| {
                    ForgeError::Permanent(format!(
                        "GitHub App key {}: {e}",
                        private_key_file.display()
                    ))
                })?;
                let app = builder
                    .app(octocrab::models::AppId(*app_id), key)
                    .build()
                    .map_err(|e| ForgeError::Permanent(format!("GitHub client: {e}")))?;
                let id = match installation_id {
                    Some(id) => *id,
                    None => {
                        let inst: Value = app
                            .get(
                                format!("/repos/{}/{}/installation", settings.owner, settings.repo),
                                None::<&()>,
                            )
                            .await
                            .map_err(|e| {
                                ForgeError::Permanent(format!("finding the App installation: {e}"))
                            })?;
                        inst["id"].as_u64().ok_or_else(|| {
                            ForgeError::Permanent("the App installation has no id".to_owned())
                        })?
                    }
                };
                // octocrab caches the installation token and fetches a new one before it expires.
                app.installation(octocrab::models::InstallationId(id))
                    .map_err(|e| ForgeError::Permanent(format!("GitHub App installation: {e}")))?
            }
        };
        Ok(GitHubForge::new(
            crab,
            &settings.owner,
            &settings.repo,
            settings.merge_method,
            policy,
        ))
    }

    /// The primary rate limit as of the last response.
    pub fn rate_limit(&self) -> RateLimit {
        self.rate.lock().map(|r| *r).unwrap_or_default()
    }

    fn path(&self, tail: &str) -> String {
        format!("/repos/{}/{}{tail}", self.owner, self.repo)
    }

    async fn pace_mutation(&self) {
        let wait = {
            let Ok(mut last) = self.last_mutation.lock() else {
                return;
            };
            let now = Instant::now();
            let wait = last.map_or(Duration::ZERO, |t| {
                self.policy
                    .mutation_gap
                    .saturating_sub(now.duration_since(t))
            });
            *last = Some(now + wait);
            wait
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    /// Sleeps before retry `attempt + 1` if that fits in the budget of a call that started at
    /// `started`; `false` when the call should give up.
    async fn retry_pause(&self, started: Instant, attempt: u32) -> bool {
        if attempt + 1 >= self.policy.max_attempts {
            return false;
        }
        let wait = backoff(&self.policy, attempt);
        if started.elapsed() + wait > self.policy.budget {
            return false;
        }
        tokio::time::sleep(wait).await;
        true
    }

    /// One call with ringmaster's retry policy. Returns the status and JSON body for the caller
    /// to classify (2xx, 404, 405, 409, 422); rate limits (returned at once) and 5xx (retried
    /// within the budget) are handled here.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Value), ForgeError> {
        let conditional = method == Method::GET;
        let started = Instant::now();
        let mut last_error = String::new();
        for attempt in 0..self.policy.max_attempts.max(1) {
            if method != Method::GET {
                self.pace_mutation().await;
            }
            let mut headers = HeaderMap::new();
            let cached = if conditional {
                self.etags.lock().ok().and_then(|c| c.get(path).cloned())
            } else {
                None
            };
            if let Some((etag, _)) = &cached {
                headers.insert(http::header::IF_NONE_MATCH, etag.clone());
            }
            let sent = match method.clone() {
                Method::GET => self.crab._get_with_headers(path, Some(headers)).await,
                Method::POST => self.crab._post(path, body).await,
                Method::PATCH => self.crab._patch(path, body).await,
                Method::PUT => self.crab._put(path, body).await,
                Method::DELETE => self.crab._delete(path, body).await,
                other => return Err(ForgeError::Permanent(format!("unsupported method {other}"))),
            };
            let metrics = crate::api::metrics::Metrics::global();
            let response = match sent {
                Ok(r) => r,
                Err(e) => match octocrab_error(&format!("{method} {path}"), &e, &self.policy) {
                    // e.g. a refused installation token: retrying cannot help.
                    permanent @ ForgeError::Permanent(_) => return Err(permanent),
                    limited @ ForgeError::RateLimited { .. } => return Err(limited),
                    other => {
                        metrics.forge_request(
                            "github",
                            crate::api::metrics::ForgeOutcome::NetworkError,
                        );
                        last_error = other.to_string();
                        if self.retry_pause(started, attempt).await {
                            continue;
                        }
                        break;
                    }
                },
            };
            let status = response.status();
            let head = response.headers().clone();
            self.note_rate(&head);
            metrics.forge_request(
                "github",
                crate::api::metrics::ForgeOutcome::of_status(status.as_u16()),
            );
            let bytes: BodyBytes =
                match http_body_util::BodyExt::collect(response.into_body()).await {
                    Ok(b) => b.to_bytes().to_vec(),
                    Err(e) => {
                        last_error = e.to_string();
                        if self.retry_pause(started, attempt).await {
                            continue;
                        }
                        break;
                    }
                };
            if status == StatusCode::NOT_MODIFIED
                && let Some((_, value)) = cached
            {
                return Ok((StatusCode::OK, value));
            }
            let value: Value = if bytes.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&bytes).unwrap_or(Value::Null)
            };
            if status.is_success() {
                if conditional
                    && let Some(etag) = head.get(http::header::ETAG)
                    && let Ok(mut c) = self.etags.lock()
                {
                    c.insert(path.to_owned(), (etag.clone(), value.clone()));
                }
                return Ok((status, value));
            }
            if let Some(wait) =
                rate_limit_wait(status, &head, &value, self.policy.secondary_default)
            {
                return Err(ForgeError::RateLimited { retry_after: wait });
            }
            if status.is_server_error() {
                last_error = format!("{status} {}", message(&value));
                if self.retry_pause(started, attempt).await {
                    continue;
                }
                break;
            }
            if status == StatusCode::UNAUTHORIZED {
                return Err(ForgeError::Permanent(format!(
                    "GitHub rejected the credentials: {}",
                    message(&value)
                )));
            }
            return Ok((status, value));
        }
        Err(ForgeError::Transient(format!(
            "{method} {path}: {last_error}"
        )))
    }

    fn note_rate(&self, head: &HeaderMap) {
        let num = |name: &str| {
            head.get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
        };
        if let Ok(mut r) = self.rate.lock() {
            if let Some(rem) = num("x-ratelimit-remaining") {
                r.remaining = Some(rem);
            }
            if let Some(reset) = num("x-ratelimit-reset") {
                r.reset = Some(reset);
            }
        }
    }

    async fn expect_ok(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ForgeError> {
        let (status, value) = self.call(method.clone(), path, body).await?;
        if status.is_success() {
            Ok(value)
        } else if status == StatusCode::NOT_FOUND {
            Err(ForgeError::NotFound(format!("{method} {path}")))
        } else {
            Err(ForgeError::Permanent(format!(
                "{method} {path}: {status} {}",
                message(&value)
            )))
        }
    }

    async fn find(&self, branch: &str) -> Result<Option<u64>, ForgeError> {
        let path = self.path(&format!(
            "/pulls?state=all&head={}:{branch}&per_page=100",
            self.owner
        ));
        let list = self.expect_ok(Method::GET, &path, None).await?;
        let prs = list.as_array().cloned().unwrap_or_default();
        let pick = prs
            .iter()
            .filter(|p| p["head"]["ref"].as_str() == Some(branch))
            .max_by_key(|p| (p["state"].as_str() == Some("open"), p["number"].as_u64()));
        Ok(pick.and_then(|p| p["number"].as_u64()))
    }
}

impl Forge for GitHubForge {
    async fn ringmaster_prs(&self) -> Result<Vec<super::PrSummary>, ForgeError> {
        let mut out = Vec::new();
        for page in 1..=MAX_LIST_PAGES {
            let path = self.path(&format!(
                "/pulls?state=all&sort=created&direction=asc&per_page=100&page={page}"
            ));
            let list = self.expect_ok(Method::GET, &path, None).await?;
            let prs = list.as_array().cloned().unwrap_or_default();
            for p in &prs {
                let branch = p["head"]["ref"].as_str().unwrap_or_default();
                if !branch.starts_with(crate::gitops::mirror::BRANCH_PREFIX) {
                    continue;
                }
                let merged = !p["merged_at"].is_null();
                out.push(super::PrSummary {
                    number: p["number"].as_u64().unwrap_or_default(),
                    branch: branch.to_owned(),
                    body: p["body"].as_str().unwrap_or_default().to_owned(),
                    state: if merged {
                        PrLifecycle::Merged
                    } else if p["state"].as_str() == Some("open") {
                        PrLifecycle::Open
                    } else {
                        PrLifecycle::Closed
                    },
                    head_sha: p["head"]["sha"].as_str().unwrap_or_default().to_owned(),
                    merge_sha: p["merge_commit_sha"]
                        .as_str()
                        .filter(|_| merged)
                        .map(str::to_owned),
                    labels: p["labels"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|l| l["name"].as_str().map(str::to_owned))
                        .collect(),
                });
            }
            if prs.len() < 100 {
                break;
            }
        }
        out.sort_by_key(|p| p.number);
        Ok(out)
    }

    async fn find_or_open(&self, pr: &OpenPr) -> Result<u64, ForgeError> {
        // Look first: a crash between push and create must never yield a second PR.
        let number = match self.find(&pr.branch).await? {
            Some(n) => return Ok(n),
            None => {
                let body = json!({ "title": pr.title, "head": pr.branch, "base": pr.base, "body": pr.body });
                let (status, value) = self
                    .call(Method::POST, &self.path("/pulls"), Some(&body))
                    .await?;
                if status.is_success() {
                    value["number"].as_u64().ok_or_else(|| {
                        ForgeError::Permanent("created PR has no number".to_owned())
                    })?
                } else if status == StatusCode::UNPROCESSABLE_ENTITY
                    && message(&value).contains("already exists")
                {
                    // Someone (or an earlier attempt) created it: resolve to that PR.
                    self.etags.lock().map(|mut c| c.clear()).ok();
                    match self.find(&pr.branch).await? {
                        Some(n) => n,
                        None => {
                            return Err(ForgeError::Transient(format!(
                                "GitHub says a PR for {} exists but lists none",
                                pr.branch
                            )));
                        }
                    }
                } else {
                    return Err(ForgeError::Permanent(format!(
                        "creating the PR for {}: {status} {}",
                        pr.branch,
                        message(&value)
                    )));
                }
            }
        };
        if !pr.labels.is_empty() {
            self.add_labels(number, &pr.labels).await?;
        }
        let (teams, users): (Vec<&String>, Vec<&String>) =
            pr.reviewers.iter().partition(|r| r.contains('/'));
        if !teams.is_empty() || !users.is_empty() {
            let team_slugs: Vec<&str> = teams.iter().filter_map(|t| t.split('/').nth(1)).collect();
            let body = json!({ "reviewers": users, "team_reviewers": team_slugs });
            self.expect_ok(
                Method::POST,
                &self.path(&format!("/pulls/{number}/requested_reviewers")),
                Some(&body),
            )
            .await?;
        }
        Ok(number)
    }

    async fn update(&self, number: u64, title: &str, body: &str) -> Result<(), ForgeError> {
        let patch = json!({ "title": title, "body": body });
        self.expect_ok(
            Method::PATCH,
            &self.path(&format!("/pulls/{number}")),
            Some(&patch),
        )
        .await
        .map(|_| ())
    }

    async fn status(&self, number: u64) -> Result<PrStatus, ForgeError> {
        let pr = self
            .expect_ok(Method::GET, &self.path(&format!("/pulls/{number}")), None)
            .await?;
        let head = pr["head"]["sha"].as_str().unwrap_or_default().to_owned();
        let reviews = self
            .expect_ok(
                Method::GET,
                &self.path(&format!("/pulls/{number}/reviews?per_page=100")),
                None,
            )
            .await?;
        let (approvals, changes_requested) =
            review_verdicts(reviews.as_array().map_or(&[], |v| v.as_slice()), &head);
        let combined = self
            .expect_ok(
                Method::GET,
                &self.path(&format!("/commits/{head}/status")),
                None,
            )
            .await?;
        let runs = self
            .expect_ok(
                Method::GET,
                &self.path(&format!("/commits/{head}/check-runs")),
                None,
            )
            .await?;
        Ok(PrStatus {
            number,
            state: lifecycle(&pr),
            merge_sha: if lifecycle(&pr) == PrLifecycle::Merged {
                pr["merge_commit_sha"].as_str().map(str::to_owned)
            } else {
                None
            },
            head_sha: head,
            approvals,
            changes_requested,
            checks: combine_checks(&combined, &runs),
        })
    }

    async fn merge(&self, number: u64, expected_head: &str) -> Result<String, ForgeError> {
        let method = match self.merge_method {
            MergeMethod::Merge => "merge",
            MergeMethod::Squash => "squash",
            MergeMethod::Rebase => "rebase",
        };
        let body = json!({ "merge_method": method, "sha": expected_head });
        let (status, value) = self
            .call(
                Method::PUT,
                &self.path(&format!("/pulls/{number}/merge")),
                Some(&body),
            )
            .await?;
        match status {
            s if s.is_success() => value["sha"]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| ForgeError::Permanent("merge answer has no sha".to_owned())),
            StatusCode::CONFLICT => Err(ForgeError::HeadMoved {
                number,
                expected: expected_head.to_owned(),
            }),
            StatusCode::METHOD_NOT_ALLOWED => Err(ForgeError::NotMergeable {
                number,
                reason: message(&value),
            }),
            StatusCode::NOT_FOUND => Err(ForgeError::NotFound(format!("PR #{number}"))),
            s => Err(ForgeError::Permanent(format!(
                "merging PR #{number}: {s} {}",
                message(&value)
            ))),
        }
    }

    async fn comment(&self, number: u64, key: &str, body: &str) -> Result<(), ForgeError> {
        let marker = format!("<!-- ringmaster:comment {key} -->");
        let full = format!("{marker}\n{body}");
        let comments = self
            .expect_ok(
                Method::GET,
                &self.path(&format!("/issues/{number}/comments?per_page=100")),
                None,
            )
            .await?;
        let existing = comments
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["body"].as_str().is_some_and(|b| b.starts_with(&marker)));
        match existing {
            Some(c) if c["body"].as_str() == Some(full.as_str()) => Ok(()),
            Some(c) => {
                let id = c["id"]
                    .as_u64()
                    .ok_or_else(|| ForgeError::Permanent("comment has no id".to_owned()))?;
                self.expect_ok(
                    Method::PATCH,
                    &self.path(&format!("/issues/comments/{id}")),
                    Some(&json!({ "body": full })),
                )
                .await
                .map(|_| ())
            }
            None => self
                .expect_ok(
                    Method::POST,
                    &self.path(&format!("/issues/{number}/comments")),
                    Some(&json!({ "body": full })),
                )
                .await
                .map(|_| ()),
        }
    }

    async fn add_labels(&self, number: u64, labels: &[String]) -> Result<(), ForgeError> {
        self.expect_ok(
            Method::POST,
            &self.path(&format!("/issues/{number}/labels")),
            Some(&json!({ "labels": labels })),
        )
        .await
        .map(|_| ())
    }
}

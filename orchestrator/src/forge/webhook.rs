//! GitHub webhooks (DESIGN §8): verified with HMAC-SHA256, parsed into a [`ForgeEvent`] and sent
//! to the daemon's queue.
//!
//! A webhook only *wakes* the reconcile loop; the loop re-reads the PR, its reviews and checks
//! from the forge. So an event dropped here (queue full) costs latency, never correctness, and
//! polling stays the fallback for deliveries that never arrive.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde::de::IgnoredAny;
use sha2::Sha256;
use tokio::sync::mpsc::Sender;
use tokio::sync::mpsc::error::TrySendError;

use crate::gitops::mirror::BRANCH_PREFIX;
use crate::secret::Secret;

/// Something that may have changed a ring run; the daemon re-reads the truth from the forge
/// (webhooks only wake it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForgeEvent {
    /// `pull_request`: opened, closed (merged or not), synchronize, labeled, …
    PullRequest {
        /// PR number.
        number: u64,
        /// GitHub's action (`opened`, `closed`, `synchronize`, …).
        action: String,
        /// Head branch (`ringmaster/<rollout>/<ring>/<n>`).
        head_ref: String,
        /// Head commit.
        head_sha: String,
        /// Whether the PR is merged.
        merged: bool,
    },
    /// `pull_request_review`: submitted, edited or dismissed.
    Review {
        /// PR number.
        number: u64,
        /// Review state as GitHub sends it (`approved`, `changes_requested`, `commented`, …).
        state: String,
        /// Head branch of the PR.
        head_ref: String,
    },
    /// `check_run`.
    CheckRun {
        /// Commit the check ran on.
        head_sha: String,
        /// `queued`, `in_progress`, `completed`.
        status: String,
        /// `success`, `failure`, … once completed.
        conclusion: Option<String>,
    },
    /// `check_suite`.
    CheckSuite {
        /// Commit the suite ran on.
        head_sha: String,
        /// `requested`, `in_progress`, `completed`, …
        status: String,
        /// `success`, `failure`, … once completed.
        conclusion: Option<String>,
    },
    /// `status` (commit statuses, the pre-checks API).
    Status {
        /// Commit.
        sha: String,
        /// `pending`, `success`, `failure`, `error`.
        state: String,
        /// The status's context (`ci/build`).
        context: String,
    },
    /// `ping`, sent when the webhook is created.
    Ping,
}

/// Max body accepted, in bytes (GitHub caps webhook payloads at 25 MB).
pub const MAX_BODY_BYTES: usize = 25 * 1024 * 1024;

/// The header carrying the HMAC-SHA256 of the body.
pub const SIGNATURE_HEADER: &str = "x-hub-signature-256";
/// The header naming the event.
pub const EVENT_HEADER: &str = "x-github-event";
/// The header carrying the delivery's GUID (the same on GitHub's redeliveries).
pub const DELIVERY_HEADER: &str = "x-github-delivery";
/// How many delivery ids are remembered to recognise a replayed delivery (count; about 40 bytes
/// each, so memory stays bounded whatever is sent).
pub const REMEMBERED_DELIVERIES: usize = 1024;
/// The longest delivery id kept, in bytes (GitHub's are 36-character GUIDs); longer ones are
/// remembered by their first this many bytes.
const MAX_DELIVERY_ID_BYTES: usize = 128;

/// The last [`REMEMBERED_DELIVERIES`] delivery ids accepted, the oldest forgotten first: a
/// signed delivery sent again (a replay, or a redelivery of one already accepted) must not
/// wake the loop again.
#[derive(Debug)]
pub struct RecentDeliveries {
    order: VecDeque<String>,
    seen: HashSet<String>,
    capacity: usize,
}

impl RecentDeliveries {
    /// Remembering at most `capacity` ids.
    pub fn new(capacity: usize) -> RecentDeliveries {
        RecentDeliveries {
            order: VecDeque::with_capacity(capacity),
            seen: HashSet::with_capacity(capacity),
            capacity,
        }
    }

    fn key(id: &str) -> String {
        let mut end = id.len().min(MAX_DELIVERY_ID_BYTES);
        while !id.is_char_boundary(end) {
            end -= 1;
        }
        id[..end].to_owned()
    }

    /// Remember `id`: `false` when it is remembered already (a replay).
    pub fn insert(&mut self, id: &str) -> bool {
        let key = Self::key(id);
        if self.capacity == 0 || self.seen.contains(&key) {
            return self.capacity == 0;
        }
        if self.order.len() == self.capacity
            && let Some(oldest) = self.order.pop_front()
        {
            self.seen.remove(&oldest);
        }
        self.seen.insert(key.clone());
        self.order.push_back(key);
        true
    }

    /// Forget `id` (its delivery was not accepted after all: a redelivery must count).
    pub fn forget(&mut self, id: &str) {
        let key = Self::key(id);
        if self.seen.remove(&key) {
            self.order.retain(|k| *k != key);
        }
    }

    /// How many ids are remembered.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

/// Verify `X-Hub-Signature-256: sha256=<hex>` over the raw body with HMAC-SHA256, in constant
/// time. An empty secret verifies nothing.
pub fn verify_signature(secret: &[u8], body: &[u8], header: Option<&str>) -> bool {
    let Some(hex) = header.and_then(|h| h.trim().strip_prefix("sha256=")) else {
        return false;
    };
    let Some(expected) = decode_hex(hex) else {
        return false;
    };
    if secret.is_empty() {
        return false;
    }
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    text.as_bytes()
        .chunks(2)
        .map(|pair| {
            let digit = |b: u8| char::from(b).to_digit(16);
            u8::try_from(digit(pair[0])? * 16 + digit(pair[1])?).ok()
        })
        .collect()
}

#[derive(Deserialize)]
struct Head {
    #[serde(rename = "ref")]
    git_ref: String,
    sha: String,
}

#[derive(Deserialize)]
struct PullRequestPayload {
    action: String,
    number: u64,
    pull_request: PullRequestObject,
}

#[derive(Deserialize)]
struct PullRequestObject {
    head: Head,
    #[serde(default)]
    merged: Option<bool>,
}

#[derive(Deserialize)]
struct ReviewPayload {
    review: ReviewObject,
    pull_request: ReviewedPullRequest,
}

#[derive(Deserialize)]
struct ReviewObject {
    state: String,
}

#[derive(Deserialize)]
struct ReviewedPullRequest {
    number: u64,
    head: Head,
}

#[derive(Deserialize)]
struct CheckObject {
    head_sha: String,
    status: String,
    #[serde(default)]
    conclusion: Option<String>,
}

#[derive(Deserialize)]
struct CheckRunPayload {
    check_run: CheckObject,
}

#[derive(Deserialize)]
struct CheckSuitePayload {
    check_suite: CheckObject,
}

#[derive(Deserialize)]
struct StatusPayload {
    sha: String,
    state: String,
    context: String,
}

/// Parse a delivery by its `X-GitHub-Event`: `Ok(None)` for events ringmaster ignores, `Err`
/// for a malformed payload of an event it handles.
pub fn parse_event(event: &str, body: &[u8]) -> Result<Option<ForgeEvent>, String> {
    fn parse<'a, T: Deserialize<'a>>(event: &str, body: &'a [u8]) -> Result<T, String> {
        serde_json::from_slice(body).map_err(|e| {
            let hint = if body.starts_with(b"payload=") {
                " (the webhook sends form data: set its content type to application/json)"
            } else {
                ""
            };
            format!("malformed `{event}` payload: {e}{hint}")
        })
    }
    let parsed = match event {
        "ping" => {
            parse::<IgnoredAny>(event, body)?;
            ForgeEvent::Ping
        }
        "pull_request" => {
            let p: PullRequestPayload = parse(event, body)?;
            ForgeEvent::PullRequest {
                number: p.number,
                action: p.action,
                head_ref: p.pull_request.head.git_ref,
                head_sha: p.pull_request.head.sha,
                merged: p.pull_request.merged.unwrap_or(false),
            }
        }
        "pull_request_review" => {
            let p: ReviewPayload = parse(event, body)?;
            ForgeEvent::Review {
                number: p.pull_request.number,
                state: p.review.state,
                head_ref: p.pull_request.head.git_ref,
            }
        }
        "check_run" => {
            let p: CheckRunPayload = parse(event, body)?;
            ForgeEvent::CheckRun {
                head_sha: p.check_run.head_sha,
                status: p.check_run.status,
                conclusion: p.check_run.conclusion,
            }
        }
        "check_suite" => {
            let p: CheckSuitePayload = parse(event, body)?;
            ForgeEvent::CheckSuite {
                head_sha: p.check_suite.head_sha,
                status: p.check_suite.status,
                conclusion: p.check_suite.conclusion,
            }
        }
        "status" => {
            let p: StatusPayload = parse(event, body)?;
            ForgeEvent::Status {
                sha: p.sha,
                state: p.state,
                context: p.context,
            }
        }
        _ => return Ok(None),
    };
    Ok(Some(parsed))
}

/// Whether the daemon cares: PR and review events only for ringmaster's own branches.
fn is_ours(event: &ForgeEvent) -> bool {
    match event {
        ForgeEvent::PullRequest { head_ref, .. } | ForgeEvent::Review { head_ref, .. } => {
            head_ref.starts_with(BRANCH_PREFIX)
        }
        _ => true,
    }
}

struct Hook {
    secret: Secret,
    tx: Sender<ForgeEvent>,
    recent: Mutex<RecentDeliveries>,
}

/// `POST /`: 401 when the signature is missing or wrong (the body has no effect); 400 on a
/// malformed payload; 413 above [`MAX_BODY_BYTES`]; 202 with the event sent on `tx`; 200 for
/// pings and ignored events (other event types, PRs whose head branch is not under
/// `ringmaster/`) and for a delivery id ([`DELIVERY_HEADER`]) accepted already (a replay: not
/// sent again); 503 when the daemon's queue is closed. Mount it at `/webhooks/github`.
pub fn router(secret: Secret, tx: Sender<ForgeEvent>) -> Router {
    Router::new()
        .route("/", post(receive))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(Arc::new(Hook {
            secret,
            tx,
            recent: Mutex::new(RecentDeliveries::new(REMEMBERED_DELIVERIES)),
        }))
}

async fn receive(
    State(hook): State<Arc<Hook>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if !verify_signature(
        hook.secret.expose().as_bytes(),
        &body,
        header(SIGNATURE_HEADER),
    ) {
        return (
            StatusCode::UNAUTHORIZED,
            "X-Hub-Signature-256 is missing or does not match the body (check the webhook secret)"
                .to_owned(),
        );
    }
    let Some(event) = header(EVENT_HEADER) else {
        return (
            StatusCode::BAD_REQUEST,
            "X-GitHub-Event is missing".to_owned(),
        );
    };
    let parsed = match parse_event(event, &body) {
        Err(e) => return (StatusCode::BAD_REQUEST, e),
        Ok(None) => return (StatusCode::OK, format!("ignored: `{event}` events")),
        Ok(Some(ForgeEvent::Ping)) => return (StatusCode::OK, "pong".to_owned()),
        Ok(Some(parsed)) => parsed,
    };
    if !is_ours(&parsed) {
        return (
            StatusCode::OK,
            format!("ignored: not a `{BRANCH_PREFIX}` branch"),
        );
    }
    // Only a verified delivery is remembered: an unsigned one cannot fill the memory.
    let delivery = header(DELIVERY_HEADER);
    let recent = || hook.recent.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(id) = delivery
        && !recent().insert(id)
    {
        return (
            StatusCode::OK,
            format!(
                "duplicate delivery {}: accepted already, nothing to do",
                RecentDeliveries::key(id)
            ),
        );
    }
    match hook.tx.try_send(parsed) {
        Ok(()) => (StatusCode::ACCEPTED, "accepted".to_owned()),
        // The queue is full: the daemon is awake and re-reads the forge anyway.
        Err(TrySendError::Full(_)) => (
            StatusCode::ACCEPTED,
            "accepted (the daemon is busy and re-reads the forge)".to_owned(),
        ),
        Err(TrySendError::Closed(_)) => {
            if let Some(id) = delivery {
                recent().forget(id);
            }
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "ringmaster is shutting down; redeliver later".to_owned(),
            )
        }
    }
}

#[cfg(test)]
mod tests;

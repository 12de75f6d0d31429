//! The API's routes and handlers. Every answer but `/healthz` and `/metrics` is JSON; errors
//! are `{"error": "..."}` with the status saying what kind.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, SecondsFormat, Utc};
use rings::model::Config;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use state::Store;
use tokio::sync::mpsc::Receiver;

use super::auth::{self, Denied};
use super::{ApiOptions, LocalForgeAccess, Shared, WRITE_LOCK_WAIT, metrics};
use crate::daemon::control::{self, ControlError};
use crate::daemon::status;
use crate::forge::local::LocalForge;
use crate::forge::webhook::{self, ForgeEvent};
use crate::secret::Secret;

/// Webhook events waiting to wake the loop; more are pointless (one wake-up re-reads all).
const WEBHOOK_QUEUE: usize = 16;
/// Who the journal names when a request does not say.
const DEFAULT_ACTOR: &str = "api";

struct Api {
    shared: Arc<Shared>,
    token: Option<Secret>,
    /// Who the token is, for the journal.
    token_name: String,
    local_forge: Option<LocalForgeAccess>,
}

type Reply = (StatusCode, axum::Json<Value>);

fn reply(status: StatusCode, body: Value) -> Reply {
    (status, axum::Json(body))
}

fn error(status: StatusCode, message: impl Into<String>) -> Reply {
    reply(status, json!({"error": message.into()}))
}

/// The router, and the receiving end of the webhook queue when webhooks are on.
pub(super) fn build(
    shared: Arc<Shared>,
    options: ApiOptions,
) -> (Router, Option<Receiver<ForgeEvent>>) {
    let api = Arc::new(Api {
        shared,
        token: options.token,
        token_name: options
            .token_name
            .map_or_else(|| "API token".to_owned(), |n| format!("token {n}")),
        local_forge: options.local_forge,
    });
    let router = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .route("/api/v1/info", get(info))
        .route("/api/v1/rollouts", get(rollouts))
        .route("/api/v1/rollouts/{name}", get(rollout))
        .route("/api/v1/rollouts/{name}/history", get(history))
        .route("/api/v1/rollouts/{name}/{action}", post(rollout_command))
        .route("/api/v1/prs", get(prs))
        .route(
            "/api/v1/rollouts/{name}/rings/{ring}/approve",
            post(approve),
        )
        .route("/api/v1/freeze", post(freeze))
        .route("/api/v1/unfreeze", post(unfreeze))
        .fallback(not_found)
        .with_state(api);
    match options.webhook_secret {
        Some(secret) => {
            let (tx, rx) = tokio::sync::mpsc::channel(WEBHOOK_QUEUE);
            (
                router.nest("/webhooks/github", webhook::router(secret, tx)),
                Some(rx),
            )
        }
        None => (router.route("/webhooks/github", post(no_webhooks)), None),
    }
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(api): State<Arc<Api>>) -> Reply {
    let shared = &api.shared;
    if let Err(e) = shared.store().global_freeze() {
        return error(StatusCode::SERVICE_UNAVAILABLE, format!("the store: {e}"));
    }
    match shared.readiness().check(shared.now()) {
        Ok(at) => reply(
            StatusCode::OK,
            json!({"ready": true, "lastPass": at.to_rfc3339_opts(SecondsFormat::Secs, true)}),
        ),
        Err(reason) => reply(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"ready": false, "reason": reason}),
        ),
    }
}

async fn metrics_text(State(api): State<Arc<Api>>) -> Response {
    let shared = &api.shared;
    let config = shared.config();
    match metrics::exposition(
        shared.store(),
        config.as_deref(),
        shared.metrics(),
        shared.now(),
    ) {
        Ok(text) => (
            [(
                CONTENT_TYPE,
                HeaderValue::from_static(metrics::CONTENT_TYPE),
            )],
            text,
        )
            .into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// `GET /api/v1/info`: which ringmaster this is and which store it holds, so that a client
/// can check it talks to the daemon of *its* store before it sends a command.
async fn info(State(api): State<Arc<Api>>) -> Reply {
    let store = api.shared.store();
    let path = std::fs::canonicalize(store.path())
        .map_or_else(|_| store.path().to_owned(), |p| p.display().to_string());
    reply(
        StatusCode::OK,
        json!({
            "version": env!("CARGO_PKG_VERSION"),
            "store": {"id": store.identity(), "path": path},
        }),
    )
}

async fn rollouts(State(api): State<Arc<Api>>) -> Reply {
    let shared = &api.shared;
    let config = shared.config();
    match status::status_json(shared.store(), config.as_deref(), shared.now()) {
        Ok(v) => reply(StatusCode::OK, v),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn rollout(State(api): State<Arc<Api>>, Path(name): Path<String>) -> Reply {
    let shared = &api.shared;
    let config = shared.config();
    let found = shared.store().rollout(&name).and_then(|r| {
        r.map(|r| status::rollout_json(shared.store(), config.as_deref(), &r, shared.now()))
            .transpose()
    });
    match found {
        Ok(Some(v)) => reply(StatusCode::OK, v),
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            ControlError::NoSuchRollout(name).to_string(),
        ),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn history(State(api): State<Arc<Api>>, Path(name): Path<String>) -> Reply {
    let store = api.shared.store();
    match store.rollout(&name) {
        Ok(Some(_)) => match status::history_json(store, &name) {
            Ok(v) => reply(StatusCode::OK, v),
            Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        },
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            ControlError::NoSuchRollout(name).to_string(),
        ),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// The body of pause, resume and abort (optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Who {
    /// Why (pause, abort).
    #[serde(default)]
    reason: Option<String>,
    /// Who, for the journal.
    #[serde(default)]
    by: Option<String>,
    /// Abort: also revert what the rollout changed.
    #[serde(default)]
    revert: bool,
}

/// The body of `POST /api/v1/freeze`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FreezeBody {
    /// Until when (RFC 3339).
    until: DateTime<Utc>,
    /// Why.
    reason: String,
    /// Who.
    #[serde(default)]
    by: Option<String>,
}

/// The body of `POST /api/v1/unfreeze` (optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct UnfreezeBody {
    /// Who.
    #[serde(default)]
    by: Option<String>,
}

/// Who the journal names: the `by` the request claims (cleaned), and beside it who actually
/// authenticated (the token), since anyone holding the token can claim any name.
fn actor(by: Option<String>, token_name: &str) -> String {
    let claimed = by
        .map(|b| crate::text::clean_name(&b))
        .filter(|b| !b.is_empty())
        .unwrap_or_else(|| DEFAULT_ACTOR.to_owned());
    format!("{claimed} ({token_name})")
}

fn denied(d: Denied) -> Response {
    match d {
        Denied::NoTokenConfigured => error(
            StatusCode::FORBIDDEN,
            "no API token configured (set api.tokenEnv or api.tokenFile in ringmaster.yaml); mutating endpoints are off",
        )
        .into_response(),
        Denied::Missing | Denied::Wrong => {
            let message = if d == Denied::Missing {
                "this endpoint needs `Authorization: Bearer <token>` (the API token of ringmaster.yaml)"
            } else {
                "the bearer token is not the daemon's API token"
            };
            (
                [(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))],
                error(StatusCode::UNAUTHORIZED, message),
            )
                .into_response()
        }
    }
}

/// An optional JSON body: empty means `T::default()`.
fn body_or_default<T: DeserializeOwned + Default>(body: &Bytes) -> Result<T, Reply> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    body_json(body)
}

fn body_json<T: DeserializeOwned>(body: &Bytes) -> Result<T, Reply> {
    serde_json::from_slice(body).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            format!("the request body is not what this endpoint takes: {e}"),
        )
    })
}

/// The one-writer lock, or 503 when the pass in progress lasts too long.
async fn write_lock(shared: &Shared) -> Result<tokio::sync::MutexGuard<'_, ()>, Reply> {
    tokio::time::timeout(WRITE_LOCK_WAIT, shared.write_lock())
        .await
        .map_err(|_| {
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "the daemon has been in a reconcile pass for over {}s; nothing changed, try again",
                    WRITE_LOCK_WAIT.as_secs()
                ),
            )
        })
}

/// The local forge over the daemon's store, or 404 when it uses another forge.
fn local_forge<'a>(api: &'a Api) -> Result<LocalForge<'a>, Reply> {
    let Some(access) = &api.local_forge else {
        return Err(error(
            StatusCode::NOT_FOUND,
            "this ringmaster uses forge.github: its pull requests are on GitHub (label `ringmaster`)",
        ));
    };
    let repo = git2::Repository::open(&access.repo).map_err(|e| {
        error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("opening {}: {}", access.repo.display(), e.message()),
        )
    })?;
    Ok(LocalForge::new(
        api.shared.store(),
        repo,
        access.author.clone(),
    ))
}

/// `GET /api/v1/prs`: the local forge's open PRs, as `ringmaster prs --output json` prints.
async fn prs(State(api): State<Arc<Api>>) -> Reply {
    match local_forge(&api).map(|f| f.open_prs_json()) {
        Ok(Ok(v)) => reply(StatusCode::OK, v),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(r) => r,
    }
}

/// `POST /api/v1/rollouts/{name}/rings/{ring}/approve` (body `{"by": …}`, optional): approve
/// the ring's open PR for its current head, as `ringmaster approve` does; the loop is woken
/// to merge it.
async fn approve(
    State(api): State<Arc<Api>>,
    Path((name, ring)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(d) = auth::check(api.token.as_ref(), &headers) {
        return denied(d);
    }
    let who: UnfreezeBody = match body_or_default(&body) {
        Ok(w) => w,
        Err(r) => return r.into_response(),
    };
    let (who, by) = (
        who.by
            .as_deref()
            .map(crate::text::clean_name)
            .filter(|w| !w.is_empty())
            .unwrap_or_else(|| DEFAULT_ACTOR.to_owned()),
        actor(who.by, &api.token_name),
    );
    let _guard = match write_lock(&api.shared).await {
        Ok(g) => g,
        Err(r) => return r.into_response(),
    };
    let forge = match local_forge(&api) {
        Ok(f) => f,
        Err(r) => return r.into_response(),
    };
    match forge.approve_ring(&name, &ring, &who, &by) {
        Ok(Some(approved)) => {
            api.shared.wake().notify_one();
            reply(StatusCode::OK, json!({"message": approved.message(&by)})).into_response()
        }
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            format!(
                "no open pull request for rollout `{name}`, ring `{ring}` (see `ringmaster prs`)"
            ),
        )
        .into_response(),
        Err(e) => {
            let status = if e.is_transient() {
                StatusCode::CONFLICT
            } else {
                StatusCode::UNPROCESSABLE_ENTITY
            };
            error(status, e.to_string()).into_response()
        }
    }
}

/// A control command: authorised, then applied under the write lock, then the loop woken.
async fn apply(
    api: &Api,
    headers: &HeaderMap,
    parse: impl FnOnce() -> Result<Command, Reply>,
) -> Response {
    if let Err(d) = auth::check(api.token.as_ref(), headers) {
        return denied(d);
    }
    let command = match parse() {
        Ok(c) => c,
        Err(r) => return r.into_response(),
    };
    let shared = &api.shared;
    let _guard = match write_lock(shared).await {
        Ok(g) => g,
        Err(r) => return r.into_response(),
    };
    let config = shared.config();
    let result = command.run(
        shared.store(),
        config.as_deref(),
        shared.now(),
        &api.token_name,
    );
    match result {
        Ok(message) => {
            shared.wake().notify_one();
            reply(StatusCode::OK, json!({"message": message})).into_response()
        }
        Err(e) => {
            let status = match &e {
                ControlError::NoSuchRollout(_) => StatusCode::NOT_FOUND,
                ControlError::WrongState { .. } | ControlError::Conflict(_) => StatusCode::CONFLICT,
                ControlError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
                ControlError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
            };
            error(status, e.to_string()).into_response()
        }
    }
}

/// A parsed control command.
enum Command {
    Pause(String, Who),
    Resume(String, Who),
    Abort(String, Who),
    Freeze(FreezeBody),
    Unfreeze(UnfreezeBody),
}

impl Command {
    fn run(
        self,
        store: &Store,
        config: Option<&Config>,
        now: DateTime<Utc>,
        token_name: &str,
    ) -> Result<String, ControlError> {
        let actor = |by| actor(by, token_name);
        match self {
            Command::Pause(name, w) => {
                let reason = w.reason.unwrap_or_else(|| "paused by an operator".into());
                control::pause(store, &name, &actor(w.by), &reason, now)
            }
            Command::Resume(name, w) => control::resume(store, config, &name, &actor(w.by), now),
            Command::Abort(name, w) => {
                let reason = w.reason.unwrap_or_else(|| "aborted by an operator".into());
                if w.revert {
                    control::abort_and_revert(store, &name, &actor(w.by), &reason, now)
                } else {
                    control::abort(store, &name, &actor(w.by), &reason, now)
                }
            }
            Command::Freeze(f) => control::freeze(store, f.until, &f.reason, &actor(f.by), now),
            Command::Unfreeze(u) => control::unfreeze(store, &actor(u.by), now),
        }
    }
}

/// `POST /api/v1/rollouts/{name}/pause`, `…/resume` and `…/abort`: one handler, the action
/// from the path.
async fn rollout_command(
    State(api): State<Arc<Api>>,
    Path((name, action)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let command: fn(String, Who) -> Command = match action.as_str() {
        "pause" => Command::Pause,
        "resume" => Command::Resume,
        "abort" => Command::Abort,
        _ => return not_found(Method::POST, uri).await.into_response(),
    };
    apply(&api, &headers, || {
        Ok(command(name, body_or_default(&body)?))
    })
    .await
}

async fn freeze(State(api): State<Arc<Api>>, headers: HeaderMap, body: Bytes) -> Response {
    let now = api.shared.now();
    apply(&api, &headers, || {
        let f: FreezeBody = body_json(&body)?;
        if f.until <= now {
            return Err(error(
                StatusCode::BAD_REQUEST,
                format!(
                    "`until` ({}) is not in the future",
                    f.until.to_rfc3339_opts(SecondsFormat::Secs, true)
                ),
            ));
        }
        if f.reason.trim().is_empty() {
            return Err(error(StatusCode::BAD_REQUEST, "a freeze needs a `reason`"));
        }
        Ok(Command::Freeze(f))
    })
    .await
}

async fn unfreeze(State(api): State<Arc<Api>>, headers: HeaderMap, body: Bytes) -> Response {
    apply(&api, &headers, || {
        Ok(Command::Unfreeze(body_or_default(&body)?))
    })
    .await
}

async fn no_webhooks() -> Reply {
    error(
        StatusCode::NOT_FOUND,
        "GitHub webhooks are not configured on this ringmaster (no webhook secret); it polls the forge instead",
    )
}

async fn not_found(method: Method, uri: Uri) -> Reply {
    error(
        StatusCode::NOT_FOUND,
        format!("no endpoint {method} {}", uri.path()),
    )
}

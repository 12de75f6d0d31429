//! The HTTP shell: one axum fallback handler that decodes the request, hands `/_fake/*` to the
//! control endpoints, applies timed then queued faults, authentication and the primary rate
//! limit, routes, then adds GitHub's headers (rate limit, ETag) and answers `304 Not Modified`
//! to a matching `If-None-Match`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Query, Request, State};
use axum::http::header::{AUTHORIZATION, IF_NONE_MATCH};
use axum::http::{HeaderValue, Method, StatusCode, request::Parts};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::app;
use super::conn::Conn;
use super::control;
use super::faults::FaultKind;
use super::model::World;
use super::routes::{self, ApiRequest, Reply, Verb};
use super::{Fault, RecordedRequest};

/// The largest request body read, bytes (GitHub caps PR bodies at 65,536 characters).
const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// Requests kept by [`World::serve`] for [`super::FakeGitHub::requests`]; past it, the older half
/// is forgotten so that a long-running simulator does not grow without bound.
const MAX_RECORDED_REQUESTS: usize = 100_000;

/// GitHub's documentation link for rate-limit errors.
const RATE_LIMIT_DOCS: &str = "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api";

/// State shared by the handle and the server task.
#[derive(Debug)]
pub(crate) struct Shared {
    world: Mutex<World>,
}

impl Shared {
    pub fn new(world: World) -> Shared {
        Shared {
            world: Mutex::new(world),
        }
    }

    /// The world; a panic in another holder does not make it unusable.
    pub fn lock(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new().fallback(handle).with_state(shared)
}

/// What the handler needs from the request headers.
#[derive(Debug, Clone, Default)]
struct Meta {
    authorization: Option<String>,
    if_none_match: Option<String>,
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(conn): ConnectInfo<Conn>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map(|b| b.to_vec());
    let meta = Meta {
        authorization: header(&parts, AUTHORIZATION.as_str()),
        if_none_match: header(&parts, IF_NONE_MATCH.as_str()),
    };
    let req = decode(&parts, body.unwrap_or_default());
    if control::is_control(&req) {
        let (status, body) = control::handle(&mut shared.lock(), &req, Instant::now());
        return match body {
            Some(b) => (status, axum::Json(b)).into_response(),
            None => status.into_response(),
        };
    }
    let timed = shared.lock().timed_fault(Instant::now(), Utc::now());
    let delay = match timed {
        TimedHit::Drop => {
            // Never sent: the connection fails its next write.
            conn.cut();
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
        TimedHit::Answer(reply, exhausted) => {
            return shared
                .lock()
                .answer_fault(&req, &meta, reply, exhausted, Utc::now())
                .into_response();
        }
        TimedHit::Delay(d) => Some((d, false)),
        TimedHit::None => shared.lock().take_slow_fault().map(|d| (d, true)),
    };
    if let Some((d, _)) = delay {
        tokio::time::sleep(d).await;
    }
    let counted_slow = delay.is_some_and(|(_, counted)| counted);
    let finished = shared.lock().serve(&req, &meta, counted_slow, Utc::now());
    finished.into_response()
}

/// The token of `token T` / `Bearer T`.
fn credential(authorization: &str) -> Option<&str> {
    authorization
        .strip_prefix("token ")
        .or_else(|| authorization.strip_prefix("Bearer "))
        .or_else(|| authorization.strip_prefix("bearer "))
        .map(str::trim)
}

fn header(parts: &Parts, name: &str) -> Option<String> {
    parts
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn decode(parts: &Parts, body: Vec<u8>) -> ApiRequest {
    let verb = match parts.method {
        Method::GET => Verb::Get,
        Method::POST => Verb::Post,
        Method::PATCH => Verb::Patch,
        Method::PUT => Verb::Put,
        Method::DELETE => Verb::Delete,
        _ => Verb::Other,
    };
    let path = parts.uri.path().to_string();
    let segments = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    let query = Query::<BTreeMap<String, String>>::try_from_uri(&parts.uri)
        .map(|q| q.0)
        .unwrap_or_default();
    ApiRequest {
        verb,
        method: parts.method.as_str().to_string(),
        path,
        segments,
        raw_query: parts.uri.query().map(str::to_string),
        query,
        body,
    }
}

/// Decodes `%XX` escapes; anything malformed is kept as written.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: Option<&u8>| b.and_then(|b| char::from(*b).to_digit(16));
        match (bytes[i], hex(bytes.get(i + 1)), hex(bytes.get(i + 2))) {
            (b'%', Some(hi), Some(lo)) => {
                out.extend(u8::try_from(hi * 16 + lo).ok());
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A response ready to send.
#[derive(Debug)]
struct Finished {
    status: StatusCode,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

impl IntoResponse for Finished {
    fn into_response(self) -> Response {
        let mut builder = Response::builder().status(self.status);
        for (name, value) in &self.headers {
            if let Ok(v) = HeaderValue::from_str(value) {
                builder = builder.header(*name, v);
            }
        }
        builder
            .body(Body::from(self.body))
            .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
    }
}

/// What a timed fault does to one request.
#[derive(Debug)]
enum TimedHit {
    /// No timed fault is running.
    None,
    /// Close the connection without answering.
    Drop,
    /// Answer normally after this long.
    Delay(Duration),
    /// Answer this instead of the API.
    Answer(Reply, Option<Exhausted>),
}

/// GitHub's answer when something behind it failed.
fn server_error_reply() -> Reply {
    Reply::with(
        StatusCode::BAD_GATEWAY,
        json!({ "message": "Server Error" }),
    )
}

/// GitHub's secondary rate limit, asking to wait `retry_after_secs`.
fn secondary_limit_reply(retry_after_secs: u64) -> Reply {
    Reply::with(
        StatusCode::FORBIDDEN,
        json!({
            "message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. If you reach out to GitHub Support for help, please include the request ID FAKE.",
            "documentation_url": format!("{RATE_LIMIT_DOCS}#about-secondary-rate-limits"),
        }),
    )
    .header("retry-after", retry_after_secs.to_string())
}

/// How a fault changes the rate-limit headers.
#[derive(Debug, Clone, Copy)]
struct Exhausted {
    reset: i64,
}

fn etag_of(body: &[u8]) -> String {
    let digest = Sha256::digest(body);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}\"")
}

/// Whether an `If-None-Match` value names this ETag (weak comparison, as GitHub does).
fn etag_matches(if_none_match: &str, etag: &str) -> bool {
    if_none_match
        .split(',')
        .map(str::trim)
        .any(|t| t == "*" || t.trim_start_matches("W/") == etag)
}

impl Fault {
    fn count_mut(&mut self) -> Option<&mut u32> {
        match self {
            Fault::ServerErrors { count }
            | Fault::SecondaryRateLimit { count, .. }
            | Fault::PrimaryRateLimit { count, .. }
            | Fault::Slow { count, .. } => Some(count),
            Fault::DuplicatePrOnCreate | Fault::Timed(_) => None,
        }
    }
}

impl World {
    /// Queues a counted fault, or starts a timed one.
    pub fn inject(&mut self, mut fault: Fault) {
        if let Fault::Timed(timed) = fault {
            self.timed.push(timed);
            return;
        }
        match fault.count_mut() {
            None => self.duplicate_on_create += 1,
            Some(0) => {}
            Some(_) => self.faults.push_back(fault),
        }
    }

    /// Ends every fault, counted or timed.
    pub fn clear_faults(&mut self) {
        self.faults.clear();
        self.timed.clear();
        self.duplicate_on_create = 0;
    }

    /// What the timed fault running at `instant` (if any) does to this request.
    fn timed_fault(&mut self, instant: Instant, now: DateTime<Utc>) -> TimedHit {
        let Some(active) = self.timed.on_request(instant) else {
            return TimedHit::None;
        };
        self.faulted += 1;
        // Whole seconds, rounded up: a client that waits this long finds the fault over.
        let left = active
            .left
            .as_secs()
            .saturating_add(u64::from(active.left.subsec_nanos() > 0))
            .max(1);
        let end = now
            .timestamp()
            .saturating_add(i64::try_from(left).unwrap_or(i64::MAX));
        match active.kind {
            FaultKind::Outage => TimedHit::Drop,
            FaultKind::Slow => TimedHit::Delay(active.delay),
            FaultKind::Errors => TimedHit::Answer(server_error_reply(), None),
            FaultKind::RateLimit => {
                let mut reply = self.primary_limit_reply();
                reply.status = StatusCode::TOO_MANY_REQUESTS;
                TimedHit::Answer(
                    reply.header("retry-after", left.to_string()),
                    Some(Exhausted { reset: end }),
                )
            }
            FaultKind::SecondaryLimit => TimedHit::Answer(secondary_limit_reply(left), None),
        }
    }

    /// Answers `reply` (from a timed fault) with GitHub's headers, recorded as any answer.
    fn answer_fault(
        &mut self,
        req: &ApiRequest,
        meta: &Meta,
        reply: Reply,
        exhausted: Option<Exhausted>,
        now: DateTime<Utc>,
    ) -> Finished {
        self.rate.roll(now);
        self.finish(req, meta, reply, false, exhausted)
    }

    /// Uses up one request of the first queued fault.
    fn consume_fault(&mut self) {
        if let Some(front) = self.faults.front_mut()
            && let Some(count) = front.count_mut()
        {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.faults.pop_front();
            }
        }
    }

    /// The delay of a [`Fault::Slow`] first in the queue, used up.
    fn take_slow_fault(&mut self) -> Option<Duration> {
        let Some(Fault::Slow { millis, .. }) = self.faults.front() else {
            return None;
        };
        let delay = Duration::from_millis(*millis);
        self.consume_fault();
        self.faulted += 1;
        Some(delay)
    }

    /// The response of the first queued fault, if it answers instead of the API.
    fn take_failing_fault(&mut self, now: DateTime<Utc>) -> Option<(Reply, Option<Exhausted>)> {
        let hit = match self.faults.front()? {
            Fault::ServerErrors { .. } => (server_error_reply(), None),
            Fault::SecondaryRateLimit {
                retry_after_secs, ..
            } => (secondary_limit_reply(*retry_after_secs), None),
            Fault::PrimaryRateLimit { reset_in_secs, .. } => (
                self.primary_limit_reply(),
                Some(Exhausted {
                    reset: now
                        .timestamp()
                        .saturating_add(i64::try_from(*reset_in_secs).unwrap_or(i64::MAX)),
                }),
            ),
            Fault::Slow { .. } | Fault::DuplicatePrOnCreate | Fault::Timed(_) => return None,
        };
        self.consume_fault();
        self.faulted += 1;
        Some(hit)
    }

    fn primary_limit_reply(&self) -> Reply {
        Reply::with(
            StatusCode::FORBIDDEN,
            json!({
                "message": format!(
                    "API rate limit exceeded for user ID {}. If you reach out to GitHub Support for help, please include the request ID FAKE.",
                    super::json::stable_id("user", super::model::API_USER)
                ),
                "documentation_url": RATE_LIMIT_DOCS,
            }),
        )
    }

    /// `None` when the request may proceed, else the 401 message. With an App enabled, its
    /// endpoints take only the App's JWT, and installation tokens (`ghs_...`) are good until
    /// they expire whatever [`World::token`] says; anything else goes to [`World::check_token`].
    fn check_auth(
        &self,
        req: &ApiRequest,
        authorization: Option<&str>,
        now: DateTime<Utc>,
    ) -> Option<&'static str> {
        if let Some(app) = &self.app {
            if routes::is_app_route(&req.segments) {
                return app.verify_jwt(authorization, now).err();
            }
            if let Some(token) = authorization
                .and_then(credential)
                .filter(|t| t.starts_with(app::INSTALLATION_TOKEN_PREFIX))
            {
                return (!app.token_valid(token, now)).then_some(app::BAD_CREDENTIALS);
            }
        }
        self.check_token(authorization)
    }

    /// `None` when the request may proceed, else the 401 message.
    fn check_token(&self, authorization: Option<&str>) -> Option<&'static str> {
        let expected = self.token.as_deref()?;
        let Some(value) = authorization else {
            return Some("Requires authentication");
        };
        if credential(value) == Some(expected) {
            None
        } else {
            Some("Bad credentials")
        }
    }

    /// Serves one request (the caller holds the lock; nothing here awaits).
    fn serve(
        &mut self,
        req: &ApiRequest,
        meta: &Meta,
        fault_used: bool,
        now: DateTime<Utc>,
    ) -> Finished {
        self.rate.roll(now);
        let free = req.segments.first().is_some_and(|s| s == "rate_limit");
        let mut exhausted = None;
        let mut reached_api = false;
        let failing = if fault_used {
            None
        } else {
            self.take_failing_fault(now)
        };
        let reply = if let Some((reply, ex)) = failing {
            exhausted = ex;
            reply
        } else if let Some(message) = self.check_auth(req, meta.authorization.as_deref(), now) {
            Reply::error(StatusCode::UNAUTHORIZED, message)
        } else if self.rate.remaining() == 0 && !free {
            exhausted = Some(Exhausted {
                reset: self.rate.reset,
            });
            self.primary_limit_reply()
        } else {
            reached_api = true;
            routes::dispatch(self, req, now)
        };
        self.finish(req, meta, reply, reached_api && !free, exhausted)
    }

    fn finish(
        &mut self,
        req: &ApiRequest,
        meta: &Meta,
        reply: Reply,
        countable: bool,
        exhausted: Option<Exhausted>,
    ) -> Finished {
        self.served += 1;
        let mut status = reply.status;
        let mut body = reply
            .body
            .as_ref()
            .map(|b| serde_json::to_vec(b).unwrap_or_default())
            .unwrap_or_default();
        let mut headers = reply.headers;
        if req.verb == Verb::Get && status.is_success() && reply.body.is_some() {
            let etag = etag_of(&body);
            if meta
                .if_none_match
                .as_deref()
                .is_some_and(|inm| etag_matches(inm, &etag))
            {
                status = StatusCode::NOT_MODIFIED;
                body.clear();
                headers.retain(|(name, _)| *name != "link");
            }
            headers.push(("etag", etag));
            headers.push(("cache-control", "private, max-age=60, s-maxage=60".into()));
            headers.push(("vary", "Accept, Authorization, Cookie, X-GitHub-OTP".into()));
        }
        // As on GitHub, a 304 costs nothing.
        let counted = countable && status != StatusCode::NOT_MODIFIED;
        if counted {
            self.rate.used = (self.rate.used + 1).min(self.rate.limit);
        }
        let (remaining, used, reset) = match exhausted {
            Some(e) => (0, self.rate.limit, e.reset),
            None => (self.rate.remaining(), self.rate.used, self.rate.reset),
        };
        headers.push(("x-ratelimit-limit", self.rate.limit.to_string()));
        headers.push(("x-ratelimit-remaining", remaining.to_string()));
        headers.push(("x-ratelimit-reset", reset.to_string()));
        headers.push(("x-ratelimit-used", used.to_string()));
        headers.push(("x-ratelimit-resource", "core".into()));
        headers.push(("x-github-api-version-selected", "2022-11-28".into()));
        headers.push(("x-github-media-type", "github.v3; format=json".into()));
        headers.push(("x-github-request-id", format!("FAKE:{}", self.served)));
        if !body.is_empty() {
            headers.push(("content-type", "application/json; charset=utf-8".into()));
        }
        if self.requests.len() >= MAX_RECORDED_REQUESTS {
            self.requests.drain(..MAX_RECORDED_REQUESTS / 2);
        }
        self.requests.push(RecordedRequest {
            method: req.method.clone(),
            path: req.path.clone(),
            query: req.raw_query.clone(),
            status: status.as_u16(),
            if_none_match: meta.if_none_match.is_some(),
            counted,
        });
        Finished {
            status,
            headers,
            body,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::github::app::tests::{bearer, key_pair};
    use crate::github::app::{App, JWT_REJECTED};

    #[test]
    fn percent_decoding_keeps_malformed_escapes() {
        assert_eq!(percent_decode("a%2Fb"), "a/b");
        assert_eq!(percent_decode("ring%20one"), "ring one");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }

    #[test]
    fn weak_and_listed_etags_match() {
        let e = "\"abc\"";
        assert!(etag_matches("\"abc\"", e));
        assert!(etag_matches("W/\"abc\"", e));
        assert!(etag_matches("\"x\", \"abc\"", e));
        assert!(etag_matches("*", e));
        assert!(!etag_matches("\"abd\"", e));
    }

    fn request(verb: Verb, path: &str) -> ApiRequest {
        let method = match verb {
            Verb::Post => "POST",
            _ => "GET",
        };
        ApiRequest {
            verb,
            method: method.to_string(),
            path: path.to_string(),
            segments: path
                .split('/')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            raw_query: None,
            query: BTreeMap::new(),
            body: Vec::new(),
        }
    }

    /// Status and `message` of one request through the whole pipeline.
    fn send(
        world: &mut World,
        verb: Verb,
        path: &str,
        auth: Option<&str>,
        now: DateTime<Utc>,
    ) -> (u16, serde_json::Value) {
        let meta = Meta {
            authorization: auth.map(str::to_string),
            if_none_match: None,
        };
        let done = world.serve(&request(verb, path), &meta, false, now);
        let body = serde_json::from_slice(&done.body).unwrap_or(serde_json::Value::Null);
        (done.status.as_u16(), body)
    }

    #[test]
    fn app_endpoints_take_only_a_valid_jwt_and_tokens_expire() {
        let dir = tempfile::tempdir().unwrap();
        let (private, public) = key_pair(dir.path(), "app");
        let (other, _) = key_pair(dir.path(), "other");
        let now = Utc::now();
        let mut world = World::new("http://127.0.0.1:1".into(), now);
        world.app = Some(App::new(42, &public, 7, Duration::from_secs(60)).unwrap());
        let t = now.timestamp();
        let good = bearer(
            &private,
            &json!({ "iss": 42, "iat": t - 60, "exp": t + 540 }),
        );
        let expired = bearer(
            &private,
            &json!({ "iss": 42, "iat": t - 700, "exp": t - 100 }),
        );
        let forged = bearer(&other, &json!({ "iss": 42, "iat": t - 60, "exp": t + 540 }));
        let tokens = "/app/installations/7/access_tokens";

        for auth in [
            None,
            Some("Bearer"),
            Some(expired.as_str()),
            Some(forged.as_str()),
        ] {
            for (verb, path) in [
                (Verb::Post, tokens),
                (Verb::Get, "/repos/acme/gitops/installation"),
            ] {
                let (status, body) = send(&mut world, verb, path, auth, now);
                assert_eq!(status, 401, "{path} with {auth:?}");
                assert_eq!(body["message"], JWT_REJECTED, "{path} with {auth:?}");
            }
        }
        assert_eq!(world.app.as_ref().unwrap().issued, 0);

        let (status, _) = send(
            &mut world,
            Verb::Post,
            "/app/installations/8/access_tokens",
            Some(&good),
            now,
        );
        assert_eq!(status, 404, "another installation");
        let (status, body) = send(&mut world, Verb::Post, tokens, Some(&good), now);
        assert_eq!(status, 201, "{body}");
        let token = body["token"].as_str().unwrap().to_string();
        assert!(token.starts_with("ghs_"), "{token}");
        assert_eq!(body["repository_selection"], "all");
        let expires = DateTime::parse_from_rfc3339(body["expires_at"].as_str().unwrap()).unwrap();
        assert_eq!(expires.timestamp(), t + 60);

        // An installation token is not a JWT.
        let as_bearer = format!("Bearer {token}");
        let (status, _) = send(&mut world, Verb::Post, tokens, Some(&as_bearer), now);
        assert_eq!(status, 401);

        // Good until it expires, whatever `require_token` says; then, and unknown, 401.
        world.token = Some("pat".into());
        let as_token = format!("token {token}");
        let later = now + chrono::TimeDelta::seconds(59);
        assert_eq!(
            send(&mut world, Verb::Get, "/user", Some(&as_token), later).0,
            200
        );
        assert_eq!(
            send(&mut world, Verb::Get, "/user", Some("token pat"), later).0,
            200
        );
        let expired_at = now + chrono::TimeDelta::seconds(60);
        for (auth, when) in [(as_token.as_str(), expired_at), ("token ghs_unknown", now)] {
            let (status, body) = send(&mut world, Verb::Get, "/user", Some(auth), when);
            assert_eq!(
                (status, body["message"].as_str()),
                (401, Some("Bad credentials"))
            );
        }
        world.token = None;
        assert_eq!(
            send(&mut world, Verb::Get, "/user", Some(&as_token), expired_at).0,
            401
        );
        assert_eq!(
            send(
                &mut world,
                Verb::Get,
                "/user",
                Some("token anything"),
                expired_at
            )
            .0,
            200
        );
    }
}

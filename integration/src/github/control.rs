//! The fake's own endpoints under `/_fake/`, for tests and people driving `ringmaster-sim`:
//! no token, no rate limit, not recorded, and never met by a fault.
//!
//! - `POST /_fake/faults` with `{"kind":"rate-limit","after":0,"for_secs":600}` (`after`
//!   defaults to 0; `delay_ms` sets a `slow` fault's delay) starts a [`TimedFault`]: 201 with
//!   the fault, 422 with a message when the body is wrong.
//! - `GET /_fake/faults`: the timed faults not yet over and the count of requests answered
//!   with a fault.
//! - `DELETE /_fake/faults`: ends every fault, timed or counted (204).

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::faults::{FaultKind, TimedFault};
use super::model::World;
use super::routes::{ApiRequest, Verb};

/// The first path segment of the control endpoints.
pub(crate) const CONTROL_SEGMENT: &str = "_fake";

/// The body of `POST /_fake/faults`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultRequest {
    /// `errors`, `rate-limit`, `secondary-limit`, `slow` or `outage`.
    kind: String,
    /// Requests answered normally before the fault starts. Default 0.
    #[serde(default)]
    after: u64,
    /// How long the fault lasts once started, seconds.
    for_secs: u64,
    /// The delay of a `slow` fault, milliseconds. Default 5,000; at most 30,000.
    delay_ms: Option<u64>,
}

/// Whether `req` is for a control endpoint.
pub(crate) fn is_control(req: &ApiRequest) -> bool {
    req.segments.first().is_some_and(|s| s == CONTROL_SEGMENT)
}

/// Status and JSON body (`None`: no body) of a control request.
pub(crate) fn handle(
    world: &mut World,
    req: &ApiRequest,
    now: Instant,
) -> (StatusCode, Option<Value>) {
    let tail: Vec<&str> = req.segments.iter().skip(1).map(String::as_str).collect();
    match (req.verb, tail.as_slice()) {
        (Verb::Post, ["faults"]) => match parse(&req.body) {
            Ok(fault) => {
                let body = describe(&fault, fault.after, None);
                world.timed.push(fault);
                (StatusCode::CREATED, Some(body))
            }
            Err(message) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(json!({ "message": message })),
            ),
        },
        (Verb::Get, ["faults"]) => {
            let faults: Vec<Value> = world
                .timed
                .pending(now)
                .iter()
                .map(|(f, waiting, left)| describe(f, *waiting, *left))
                .collect();
            let body = json!({ "faults": faults, "faulted_requests": world.faulted });
            (StatusCode::OK, Some(body))
        }
        (Verb::Delete, ["faults"]) => {
            world.clear_faults();
            (StatusCode::NO_CONTENT, None)
        }
        _ => (
            StatusCode::NOT_FOUND,
            Some(json!({ "message": format!("no fake endpoint {} {}", req.method, req.path) })),
        ),
    }
}

fn parse(body: &[u8]) -> Result<TimedFault, String> {
    const EXAMPLE: &str = r#"{"kind":"rate-limit","after":0,"for_secs":600}"#;
    let raw: FaultRequest = serde_json::from_slice(body)
        .map_err(|e| format!("the fault must be JSON like {EXAMPLE}: {e}"))?;
    let kind: FaultKind = raw.kind.parse()?;
    if raw.for_secs == 0 {
        return Err("for_secs must be at least 1".to_owned());
    }
    let mut fault = TimedFault::new(kind, Duration::from_secs(raw.for_secs)).after(raw.after);
    if let Some(ms) = raw.delay_ms {
        fault = fault.with_delay(Duration::from_millis(ms));
    }
    Ok(fault)
}

fn describe(fault: &TimedFault, waiting: u64, left: Option<Duration>) -> Value {
    let mut v = json!({
        "kind": fault.kind.as_str(),
        "after": waiting,
        "for_secs": fault.duration.as_secs(),
        "active": left.is_some(),
    });
    if let Some(left) = left {
        v["left_secs"] = json!(left.as_secs_f64());
    }
    if fault.kind == FaultKind::Slow {
        v["delay_ms"] = json!(u64::try_from(fault.delay.as_millis()).unwrap_or(u64::MAX));
    }
    v
}

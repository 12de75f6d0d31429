//! Each simulated cluster's Prometheus metrics, on a loopback listener of its own: virtual
//! application traffic (`http_requests_total` by status code), node readiness and an `up`
//! series. Counters are computed from elapsed time, so they grow between scrapes and never go
//! back, and `rate()` sees the error ratio of the cluster's health at the time.

use std::fmt::Write;
use std::sync::{Arc, PoisonError};
use std::time::Instant;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use super::cluster::SimCluster;
use crate::kube::escape_label_value as escape;

/// Virtual requests per second each cluster's applications serve.
pub const VIRTUAL_REQUESTS_PER_SECOND: f64 = 100.0;
/// Share of those answered 500 by a healthy cluster.
pub const HEALTHY_ERROR_RATIO: f64 = 0.001;
/// Share of those answered 500 while the applications crash-loop.
pub const CRASHLOOP_ERROR_RATIO: f64 = 0.2;

/// The `Content-Type` of Prometheus' text exposition format.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Requests served so far (fractional: counted exactly, printed rounded down).
#[derive(Debug)]
pub(super) struct Traffic {
    last: Instant,
    ok: f64,
    errors: f64,
}

impl Traffic {
    pub fn new() -> Traffic {
        Traffic {
            last: Instant::now(),
            ok: 0.0,
            errors: 0.0,
        }
    }
}

/// Adds the traffic served since the last count, at the cluster's current error ratio.
pub(super) fn accrue(cluster: &SimCluster) -> (u64, u64) {
    let ratio = if cluster.fake.crashlooping() {
        CRASHLOOP_ERROR_RATIO
    } else {
        HEALTHY_ERROR_RATIO
    };
    let mut t = cluster
        .traffic
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let now = Instant::now();
    let served = now.duration_since(t.last).as_secs_f64() * VIRTUAL_REQUESTS_PER_SECOND;
    t.last = now;
    t.errors += served * ratio;
    t.ok += served * (1.0 - ratio);
    // Rounded down: monotonic because the exact counts are.
    (t.ok.floor() as u64, t.errors.floor() as u64)
}

/// The exposition text of one cluster.
pub(super) fn render(cluster: &SimCluster) -> String {
    let (ok, errors) = accrue(cluster);
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = write_metrics(&mut out, cluster, ok, errors);
    out
}

fn write_metrics(out: &mut String, cluster: &SimCluster, ok: u64, errors: u64) -> std::fmt::Result {
    let id = escape(&cluster.id);
    writeln!(
        out,
        "# HELP http_requests_total Requests served by the cluster's applications (simulated traffic)."
    )?;
    writeln!(out, "# TYPE http_requests_total counter")?;
    writeln!(
        out,
        "http_requests_total{{cluster=\"{id}\",code=\"200\"}} {ok}"
    )?;
    writeln!(
        out,
        "http_requests_total{{cluster=\"{id}\",code=\"500\"}} {errors}"
    )?;
    writeln!(
        out,
        "# HELP kube_node_status_ready Whether the node reports the Ready condition (1) or not (0)."
    )?;
    writeln!(out, "# TYPE kube_node_status_ready gauge")?;
    for node in cluster.fake.nodes() {
        let name = node.metadata.name.clone().unwrap_or_default();
        let ready = node
            .status
            .and_then(|s| s.conditions)
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        writeln!(
            out,
            "kube_node_status_ready{{cluster=\"{id}\",node=\"{}\"}} {}",
            escape(&name),
            u8::from(ready)
        )?;
    }
    writeln!(
        out,
        "# HELP ringmaster_sim_up Whether the simulated cluster is running (always 1)."
    )?;
    writeln!(out, "# TYPE ringmaster_sim_up gauge")?;
    writeln!(out, "ringmaster_sim_up{{cluster=\"{id}\"}} 1")
}

/// `GET /metrics` of one cluster.
pub(super) fn router(cluster: Arc<SimCluster>) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .with_state(cluster)
}

async fn scrape(State(cluster): State<Arc<SimCluster>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], render(&cluster))
}

//! `GET /metrics`: the Prometheus text exposition format 0.0.4, written by hand.
//!
//! Two sources: the store, read on every scrape (ring phases, the latest gate samples, the
//! forecast, rollouts by state, the global freeze), and the in-memory counters of [`Metrics`]
//! that the run loop and the forges feed (forge requests, the rate limit, reconcile durations).
//! Nothing here is persisted: a restart resets the counters, which Prometheus's `rate()` handles.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rings::model::Config;
use serde_json::Value;
use state::{Phase, SampleOutcome, Store, StoreError};

use crate::daemon::status;

/// The `Content-Type` of the exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Upper bounds of the reconcile-duration histogram's buckets, in seconds (Prometheus's
/// default buckets: a pass takes milliseconds when nothing moves, seconds when Git fetches).
pub const RECONCILE_BUCKETS_SECONDS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// What became of one request to a forge (the `outcome` label of
/// `ringmaster_forge_requests_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ForgeOutcome {
    /// 2xx.
    Ok,
    /// 304: a conditional request whose cached answer still holds (free on GitHub).
    NotModified,
    /// A primary or secondary rate limit answered (403/429 with rate-limit headers or text).
    RateLimited,
    /// Any other 4xx (404 included: ringmaster asks for things that may not exist yet).
    ClientError,
    /// 5xx.
    ServerError,
    /// No HTTP answer: connection refused or reset, timeout, TLS.
    NetworkError,
}

impl ForgeOutcome {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            ForgeOutcome::Ok => "ok",
            ForgeOutcome::NotModified => "not_modified",
            ForgeOutcome::RateLimited => "rate_limited",
            ForgeOutcome::ClientError => "client_error",
            ForgeOutcome::ServerError => "server_error",
            ForgeOutcome::NetworkError => "network_error",
        }
    }

    /// The outcome of an HTTP status that was not recognised as a rate limit.
    pub fn of_status(status: u16) -> ForgeOutcome {
        match status {
            304 => ForgeOutcome::NotModified,
            429 => ForgeOutcome::RateLimited,
            s if s < 400 => ForgeOutcome::Ok,
            s if s < 500 => ForgeOutcome::ClientError,
            _ => ForgeOutcome::ServerError,
        }
    }
}

#[derive(Debug, Default)]
struct Histogram {
    /// Observations per bucket (not cumulative; summed when written).
    buckets: [u64; RECONCILE_BUCKETS_SECONDS.len()],
    /// Observations above the last bucket.
    overflow: u64,
    sum_seconds: f64,
}

#[derive(Debug, Default)]
struct Counters {
    forge_requests: BTreeMap<(String, ForgeOutcome), u64>,
    rate_limit_remaining: BTreeMap<String, u64>,
    reconcile: Histogram,
}

/// The in-memory metrics: counters and gauges that are not in the store. Cheap to update
/// (one uncontended mutex); shared as an `Arc` between the run loop, the forges and the API.
#[derive(Debug, Default)]
pub struct Metrics {
    counters: Mutex<Counters>,
}

static GLOBAL: LazyLock<Arc<Metrics>> = LazyLock::new(|| Arc::new(Metrics::new()));

impl Metrics {
    /// Empty metrics (tests; the daemon uses [`Metrics::global`]).
    pub fn new() -> Metrics {
        Metrics::default()
    }

    /// The process's metrics, for hooks deep in code that has no handle (a forge's HTTP
    /// layer). `ringmaster run` serves these.
    pub fn global() -> Arc<Metrics> {
        Arc::clone(&GLOBAL)
    }

    fn counters(&self) -> std::sync::MutexGuard<'_, Counters> {
        // A panic while holding the lock leaves plain numbers behind: still worth serving.
        self.counters.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One reconcile pass took `took`.
    pub fn observe_reconcile(&self, took: Duration) {
        let seconds = took.as_secs_f64();
        let mut c = self.counters();
        let h = &mut c.reconcile;
        match RECONCILE_BUCKETS_SECONDS
            .iter()
            .position(|le| seconds <= *le)
        {
            Some(i) => h.buckets[i] += 1,
            None => h.overflow += 1,
        }
        h.sum_seconds += seconds;
    }

    /// One HTTP request to `forge` (`github`, `local`) ended with `outcome`; count every
    /// attempt, retries included (that is what the quota sees).
    pub fn forge_request(&self, forge: &str, outcome: ForgeOutcome) {
        *self
            .counters()
            .forge_requests
            .entry((forge.to_owned(), outcome))
            .or_insert(0) += 1;
    }

    /// The forge's primary rate limit: `remaining` requests left in its window.
    pub fn set_rate_limit_remaining(&self, forge: &str, remaining: u64) {
        self.counters()
            .rate_limit_remaining
            .insert(forge.to_owned(), remaining);
    }

    /// How many forge requests ended with `outcome` (tests, benchmarks).
    pub fn forge_requests(&self, forge: &str, outcome: ForgeOutcome) -> u64 {
        self.counters()
            .forge_requests
            .get(&(forge.to_owned(), outcome))
            .copied()
            .unwrap_or(0)
    }

    fn write(&self, out: &mut Exposition) {
        let c = self.counters();
        out.family(
            "ringmaster_forge_requests_total",
            "counter",
            "HTTP requests made to the forge (retries included), by outcome.",
        );
        for ((forge, outcome), n) in &c.forge_requests {
            out.sample(
                "ringmaster_forge_requests_total",
                &[("forge", forge), ("outcome", outcome.as_str())],
                *n as f64,
            );
        }
        out.family(
            "ringmaster_forge_rate_limit_remaining",
            "gauge",
            "Requests left in the forge's primary rate-limit window, as of its last answer.",
        );
        for (forge, n) in &c.rate_limit_remaining {
            out.sample(
                "ringmaster_forge_rate_limit_remaining",
                &[("forge", forge)],
                *n as f64,
            );
        }
        let name = "ringmaster_reconcile_duration_seconds";
        out.family(
            name,
            "histogram",
            "Duration of reconcile passes, in seconds.",
        );
        let bucket = format!("{name}_bucket");
        let mut cumulative = 0;
        for (le, n) in RECONCILE_BUCKETS_SECONDS.iter().zip(c.reconcile.buckets) {
            cumulative += n;
            out.sample(&bucket, &[("le", &number(*le))], cumulative as f64);
        }
        let count = cumulative + c.reconcile.overflow;
        out.sample(&bucket, &[("le", "+Inf")], count as f64);
        out.sample(&format!("{name}_sum"), &[], c.reconcile.sum_seconds);
        out.sample(&format!("{name}_count"), &[], count as f64);
    }
}

/// A sample value as the exposition format spells it (`+Inf`, `-Inf`, `NaN`).
fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_owned()
    } else if v == f64::INFINITY {
        "+Inf".to_owned()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_owned()
    } else {
        format!("{v}")
    }
}

/// A label value escaped for the exposition format: backslash, double quote and line feed.
pub fn escape_label_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// The text being written.
struct Exposition(String);

impl Exposition {
    /// `# HELP` and `# TYPE` (help texts here are constants without `\` or line feeds).
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"{}\"", escape_label_value(v));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {}", number(value));
    }
}

fn outcome_word(o: SampleOutcome) -> &'static str {
    match o {
        SampleOutcome::Pass => "pass",
        SampleOutcome::Fail => "fail",
        SampleOutcome::Inconclusive => "inconclusive",
    }
}

/// Every metric, from the store as it is `now` (with `config` for the forecast) and the
/// in-memory `metrics`.
pub fn exposition(
    store: &Store,
    config: Option<&Config>,
    metrics: &Metrics,
    now: DateTime<Utc>,
) -> Result<String, StoreError> {
    let mut out = Exposition(String::new());
    let rollouts = store.rollouts()?;
    let status = status::status_json(store, config, now)?;

    out.family(
        "ringmaster_ring_run_phase",
        "gauge",
        "The phase of each ring run: 1 for its current phase.",
    );
    let mut gate_results = Vec::new();
    let mut gate_values = Vec::new();
    let mut blocked = Vec::new();
    let mut retrying = Vec::new();
    for rollout in &rollouts {
        for run in store.ring_runs(&rollout.name)? {
            out.sample(
                "ringmaster_ring_run_phase",
                &[
                    ("rollout", &run.rollout),
                    ("ring", &run.ring),
                    ("phase", run.phase.as_str()),
                ],
                1.0,
            );
            if run.phase == Phase::Blocked {
                let (cause, source) = match &run.block {
                    Some(state::BlockCause::Permanent { source, .. }) => {
                        ("permanent", source.as_str())
                    }
                    _ => ("preflight", "cluster"),
                };
                blocked.push([
                    ("rollout", run.rollout.clone()),
                    ("ring", run.ring.clone()),
                    ("cause", cause.to_owned()),
                    ("source", source.to_owned()),
                ]);
            }
            if let Some(b) = &run.retry {
                retrying.push((
                    [("rollout", run.rollout.clone()), ("ring", run.ring.clone())],
                    b.attempt,
                ));
            }
            let Some(step) = run.current_step() else {
                continue;
            };
            // Gate series only while they can still change: an aborted or completed rollout
            // stops exporting them (its samples stay in the store for `status`).
            if !matches!(run.phase, Phase::Soaking | Phase::Halted) || rollout.state.is_finished() {
                continue;
            }
            // Newest first, stopping once every gate of the ring on every moving member has its
            // latest sample (without the configuration: every pair, read to the first sample).
            let pairs: Option<Vec<(String, String)>> = config.and_then(|c| {
                let ring = c
                    .ring_set
                    .rings
                    .iter()
                    .find(|r| r.name.as_str() == run.ring)?;
                let moving = run
                    .members
                    .iter()
                    .filter(|m| !run.left_out.iter().any(|(l, _)| l == *m));
                Some(
                    moving
                        .flat_map(|m| {
                            ring.gates
                                .iter()
                                .filter(|g| c.ring_set.gates.contains_key(*g))
                                .map(move |g| (g.to_string(), m.clone()))
                        })
                        .collect(),
                )
            });
            for s in store.latest_samples(&run.rollout, &run.ring, step.step, pairs.as_deref())? {
                let labels = [
                    ("rollout", run.rollout.clone()),
                    ("ring", run.ring.clone()),
                    ("gate", s.gate.clone()),
                    ("cluster", s.cluster.clone()),
                ];
                gate_results.push((labels.clone(), outcome_word(s.outcome)));
                if let Some(v) = s.value {
                    gate_values.push((labels, v));
                }
            }
        }
    }

    out.family(
        "ringmaster_ring_run_blocked",
        "gauge",
        "Blocked ring runs: 1 each, by cause (preflight: re-checked every minute; permanent: waits for `resume` or a new base commit) and source.",
    );
    for labels in &blocked {
        let l: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
        out.sample("ringmaster_ring_run_blocked", &l, 1.0);
    }
    out.family(
        "ringmaster_ring_run_retry_attempts",
        "gauge",
        "Ring runs backing off after transient errors: how many attempts failed in a row.",
    );
    for (labels, attempt) in &retrying {
        let l: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
        out.sample(
            "ringmaster_ring_run_retry_attempts",
            &l,
            f64::from(*attempt),
        );
    }
    out.family(
        "ringmaster_gate_result",
        "gauge",
        "The latest sample of each gate on each cluster of the current step of soaking and halted rings: 1 for its result.",
    );
    for (labels, result) in &gate_results {
        let mut l: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
        l.push(("result", result));
        out.sample("ringmaster_gate_result", &l, 1.0);
    }
    out.family(
        "ringmaster_gate_value",
        "gauge",
        "The value of the latest sample of each gate on each cluster (gates that measure a number).",
    );
    for (labels, value) in &gate_values {
        let l: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
        out.sample("ringmaster_gate_value", &l, *value);
    }

    metrics.write(&mut out);

    out.family(
        "ringmaster_rollout_forecast_pass_timestamp_seconds",
        "gauge",
        "When each ring passed or is forecast to pass at the earliest (Unix seconds).",
    );
    for r in status["rollouts"].as_array().into_iter().flatten() {
        let rollout = r["name"].as_str().unwrap_or_default();
        for ring in r["rings"].as_array().into_iter().flatten() {
            let Some(at) = ring["forecast"]["passedBy"]
                .as_str()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            else {
                continue;
            };
            out.sample(
                "ringmaster_rollout_forecast_pass_timestamp_seconds",
                &[
                    ("rollout", rollout),
                    ("ring", ring["ring"].as_str().unwrap_or_default()),
                ],
                at.timestamp() as f64,
            );
        }
    }

    out.family("ringmaster_rollouts", "gauge", "Rollouts by state.");
    let mut by_state: BTreeMap<&str, u64> = ["active", "halted", "paused", "aborted", "completed"]
        .into_iter()
        .map(|s| (s, 0))
        .collect();
    for r in &rollouts {
        *by_state.entry(r.state.word()).or_insert(0) += 1;
    }
    for (state, n) in by_state {
        out.sample("ringmaster_rollouts", &[("state", state)], n as f64);
    }

    out.family(
        "ringmaster_frozen",
        "gauge",
        "1 while a global freeze (`ringmaster freeze`) is in force, else 0.",
    );
    let frozen = !matches!(status["freeze"], Value::Null);
    out.sample("ringmaster_frozen", &[], if frozen { 1.0 } else { 0.0 });
    Ok(out.0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label_value(r#"a\b"c"#), r#"a\\b\"c"#);
        assert_eq!(escape_label_value("x\ny"), "x\\ny");
    }

    #[test]
    fn the_histogram_is_cumulative_and_ends_with_inf() {
        let m = Metrics::new();
        m.observe_reconcile(Duration::from_millis(3));
        m.observe_reconcile(Duration::from_millis(300));
        m.observe_reconcile(Duration::from_secs(60));
        let mut out = Exposition(String::new());
        m.write(&mut out);
        let text = out.0;
        assert!(text.contains("ringmaster_reconcile_duration_seconds_bucket{le=\"0.005\"} 1\n"));
        assert!(text.contains("ringmaster_reconcile_duration_seconds_bucket{le=\"0.25\"} 1\n"));
        assert!(text.contains("ringmaster_reconcile_duration_seconds_bucket{le=\"0.5\"} 2\n"));
        assert!(text.contains("ringmaster_reconcile_duration_seconds_bucket{le=\"10\"} 2\n"));
        assert!(text.contains("ringmaster_reconcile_duration_seconds_bucket{le=\"+Inf\"} 3\n"));
        assert!(text.contains("ringmaster_reconcile_duration_seconds_count 3\n"));
        let sum: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix("ringmaster_reconcile_duration_seconds_sum "))
            .unwrap()
            .parse()
            .unwrap();
        assert!((sum - 60.303).abs() < 1e-9, "{sum}");
    }

    #[test]
    fn forge_outcomes_follow_the_status() {
        assert_eq!(ForgeOutcome::of_status(200), ForgeOutcome::Ok);
        assert_eq!(ForgeOutcome::of_status(304), ForgeOutcome::NotModified);
        assert_eq!(ForgeOutcome::of_status(404), ForgeOutcome::ClientError);
        assert_eq!(ForgeOutcome::of_status(429), ForgeOutcome::RateLimited);
        assert_eq!(ForgeOutcome::of_status(502), ForgeOutcome::ServerError);
        let m = Metrics::new();
        m.forge_request("github", ForgeOutcome::Ok);
        m.forge_request("github", ForgeOutcome::Ok);
        assert_eq!(m.forge_requests("github", ForgeOutcome::Ok), 2);
    }
}

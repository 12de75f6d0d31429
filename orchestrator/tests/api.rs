//! The HTTP API (DESIGN §9) over a real store on loopback: probes, metrics, the rollouts JSON,
//! the control endpoints behind the bearer token, webhooks waking the loop, and the
//! `ringmaster` control commands going through a running daemon.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use futures_util::FutureExt as _;
use orchestrator::api::client::{self, ClientError, Request};
use orchestrator::api::{ApiOptions, ApiServer, ForgeOutcome, Metrics, Shared};
use orchestrator::daemon::clock::ManualClock;
use orchestrator::secret::Secret;
use rings::model::SecretSource;
use serde_json::{Value, json};
use state::{
    Event, Phase, PrLink, RingRun, Rollout, RolloutState, SampleOutcome, SampleRecord, StepRecord,
    Store,
};

const TOKEN: &str = "tok-7f3a9c0e-api-test";
const ROLLOUT: &str = "k8s-1.33";
const RINGS: [&str; 4] = ["sandbox", "nonprod", "prod-canary", "prod-main"];
/// Every wait on the server is bounded by this.
const DEADLINE: Duration = Duration::from_secs(10);

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-24T17:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn step(n: u32, ring: &str, opened: DateTime<Utc>) -> StepRecord {
    StepRecord {
        step: n,
        pr: PrLink {
            number: u64::from(n) + 10,
            url: format!("local#{}", n + 10),
            branch: format!("ringmaster/{ROLLOUT}/{ring}/{n}"),
            head: "abc123".into(),
        },
        summary: "Kubernetes 1.32 → 1.33".into(),
        clusters: vec!["eks-dev-1".into()],
        opened_at: opened,
        merged_at: Some(opened + TimeDelta::minutes(5)),
        merge_commit: Some("def456".into()),
        converged_at: Some(opened + TimeDelta::minutes(10)),
        passed_at: None,
        base: None,
        changes: Vec::new(),
    }
}

fn event(at: DateTime<Utc>, ring: Option<&str>, kind: &str) -> Event {
    Event {
        at,
        rollout: ROLLOUT.into(),
        ring: ring.map(str::to_owned),
        kind: kind.into(),
        message: kind.into(),
        actor: "ringmaster".into(),
    }
}

/// A rollout whose sandbox passed and whose nonprod soaks, with samples; the rest pending.
fn seed(store: &Store, now: DateTime<Utc>) {
    let start = now - TimeDelta::hours(3);
    let rollout = Rollout {
        name: ROLLOUT.into(),
        order: 0,
        summary: "Kubernetes 1.33".into(),
        state: RolloutState::Active,
        created_at: start,
        updated_at: start,
        revert_of: None,
    };
    let runs: Vec<RingRun> = RINGS
        .iter()
        .enumerate()
        .map(|(i, r)| RingRun::pending(ROLLOUT, r, i as u32, start))
        .collect();
    assert!(
        store
            .create_rollout(&rollout, &runs, &event(start, None, "started"))
            .unwrap()
    );

    let run = store.ring_run(ROLLOUT, "sandbox").unwrap().unwrap();
    let mut passed = run.clone();
    passed.phase = Phase::Passed;
    passed.steps = vec![step(1, "sandbox", start)];
    passed.passed_at = Some(start + TimeDelta::minutes(45));
    store
        .transition(
            &run,
            passed,
            None,
            &[event(start, Some("sandbox"), "passed")],
        )
        .unwrap()
        .unwrap();

    let run = store.ring_run(ROLLOUT, "nonprod").unwrap().unwrap();
    let mut soaking = run.clone();
    soaking.phase = Phase::Soaking;
    soaking.phase_since = now - TimeDelta::hours(1);
    soaking.steps = vec![step(1, "nonprod", now - TimeDelta::hours(2))];
    soaking.soak_started = Some(now - TimeDelta::hours(1));
    store
        .transition(
            &run,
            soaking,
            None,
            &[event(now, Some("nonprod"), "soaking")],
        )
        .unwrap()
        .unwrap();
    let sample = |minutes_ago, gate: &str, cluster: &str, outcome, value| SampleRecord {
        at: now - TimeDelta::minutes(minutes_ago),
        gate: gate.into(),
        cluster: cluster.into(),
        outcome,
        value,
        observed: "observed".into(),
    };
    store
        .add_samples(
            ROLLOUT,
            "nonprod",
            1,
            &[
                sample(
                    50,
                    "error-ratio",
                    "eks-dev-1",
                    SampleOutcome::Pass,
                    Some(0.01),
                ),
                sample(
                    10,
                    "error-ratio",
                    "eks-dev-1",
                    SampleOutcome::Fail,
                    Some(0.25),
                ),
                sample(
                    10,
                    "nodes \"ready\"",
                    "aks-dev-1",
                    SampleOutcome::Inconclusive,
                    None,
                ),
            ],
        )
        .unwrap();
}

fn secret(dir: &Path, name: &str, value: &str) -> Secret {
    let path = dir.join(name);
    std::fs::write(&path, format!("{value}\n")).unwrap();
    Secret::read(&SecretSource::File(path)).unwrap()
}

struct Harness {
    tmp: tempfile::TempDir,
    store: Arc<Store>,
    shared: Arc<Shared>,
    clock: ManualClock,
    server: ApiServer,
    http: reqwest::Client,
}

struct Setup {
    token: bool,
    webhook_secret: Option<&'static str>,
}

const WITH_TOKEN: Setup = Setup {
    token: true,
    webhook_secret: None,
};

fn start(setup: Setup) -> Harness {
    let tmp = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&tmp.path().join("ringmaster.db")).unwrap());
    seed(&store, t0());
    let clock = ManualClock::new(t0());
    let shared = Shared::new(
        Arc::clone(&store),
        Arc::new(clock.clone()),
        Arc::new(Metrics::new()),
        TimeDelta::minutes(5),
    );
    let options = ApiOptions {
        token: setup.token.then(|| secret(tmp.path(), "api-token", TOKEN)),
        webhook_secret: setup
            .webhook_secret
            .map(|s| secret(tmp.path(), "webhook-secret", s)),
        ..ApiOptions::default()
    };
    let shown = format!("{options:?}");
    assert!(!shown.contains(TOKEN), "Debug shows the token: {shown}");
    let server = ApiServer::start("127.0.0.1:0", Arc::clone(&shared), options).unwrap();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder()
        .timeout(DEADLINE)
        .no_proxy()
        .build()
        .unwrap();
    Harness {
        tmp,
        store,
        shared,
        clock,
        server,
        http,
    }
}

impl Harness {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.server.addr())
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let r = self.http.get(self.url(path)).send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    async fn get_json(&self, path: &str) -> (u16, Value) {
        let (status, text) = self.get(path).await;
        (status, serde_json::from_str(&text).unwrap())
    }

    async fn post(&self, path: &str, token: Option<&str>, body: Option<Value>) -> (u16, Value) {
        let mut req = self.http.post(self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        assert!(
            !text.contains(TOKEN),
            "the token leaked into a reply: {text}"
        );
        (status, serde_json::from_str(&text).unwrap())
    }

    fn state(&self) -> RolloutState {
        self.store.rollout(ROLLOUT).unwrap().unwrap().state
    }

    /// Everything a control command could change.
    fn snapshot(&self) -> (Rollout, Vec<RingRun>, usize, bool) {
        (
            self.store.rollout(ROLLOUT).unwrap().unwrap(),
            self.store.ring_runs(ROLLOUT).unwrap(),
            self.store.journal(ROLLOUT).unwrap().len(),
            self.store.global_freeze().unwrap().is_some(),
        )
    }

    /// Whether the run loop has been woken (consumes the wake-up).
    async fn woken(&self) -> bool {
        tokio::time::timeout(DEADLINE, self.shared.wake().notified())
            .await
            .is_ok()
    }

    fn not_woken(&self) -> bool {
        self.shared.wake().notified().now_or_never().is_none()
    }
}

// --- the exposition format -------------------------------------------------------------------

/// One sample line: `name{k="v",...} value`, label values unescaped.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

fn parse_sample(line: &str) -> Sample {
    let bad = |why: &str| -> ! { panic!("{why}: {line:?}") };
    let name_end = line.find(['{', ' ']).unwrap_or_else(|| bad("no value"));
    let name = &line[..name_end];
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    {
        bad("bad metric name");
    }
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(after) = rest.strip_prefix('{') {
        let mut chars = after.char_indices().peekable();
        loop {
            let key: String = chars
                .by_ref()
                .take_while(|(_, c)| *c != '=')
                .map(|(_, c)| c)
                .collect();
            if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                bad("bad label name");
            }
            if chars.next().map(|(_, c)| c) != Some('"') {
                bad("label value without quotes");
            }
            let mut value = String::new();
            loop {
                match chars.next().map(|(_, c)| c) {
                    Some('\\') => match chars.next().map(|(_, c)| c) {
                        Some('\\') => value.push('\\'),
                        Some('"') => value.push('"'),
                        Some('n') => value.push('\n'),
                        _ => bad("bad escape"),
                    },
                    Some('"') => break,
                    Some('\n') | None => bad("unterminated label value"),
                    Some(c) => value.push(c),
                }
            }
            labels.push((key, value));
            match chars.next() {
                Some((_, ',')) => continue,
                Some((i, '}')) => {
                    rest = &after[i + 1..];
                    break;
                }
                _ => bad("labels not closed"),
            }
        }
    }
    let value = rest
        .strip_prefix(' ')
        .unwrap_or_else(|| bad("no space before the value"));
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v.parse().unwrap_or_else(|_| bad("value is not a number")),
    };
    Sample {
        name: name.to_owned(),
        labels,
        value,
    }
}

/// Every sample, after checking that each belongs to a family with `# HELP` and `# TYPE`.
fn parse_exposition(text: &str) -> Vec<Sample> {
    let mut types: Vec<(String, String)> = Vec::new();
    let mut helps = Vec::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(c) = line.strip_prefix("# ") {
            let mut parts = c.splitn(3, ' ');
            match (parts.next(), parts.next(), parts.next()) {
                (Some("TYPE"), Some(name), Some(kind)) => {
                    assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
                    types.push((name.to_owned(), kind.to_owned()));
                }
                (Some("HELP"), Some(name), Some(_)) => helps.push(name.to_owned()),
                _ => panic!("unexpected comment: {line:?}"),
            }
            continue;
        }
        assert!(!line.is_empty(), "empty line in the exposition");
        let sample = parse_sample(line);
        let family = types.iter().find(|(name, kind)| {
            sample.name == *name
                || (kind == "histogram"
                    && ["_bucket", "_sum", "_count"]
                        .iter()
                        .any(|s| sample.name == format!("{name}{s}")))
        });
        let (family, _) = family.unwrap_or_else(|| panic!("no # TYPE before {line:?}"));
        assert!(helps.contains(family), "no # HELP for {family}");
        samples.push(sample);
    }
    samples
}

fn find<'a>(samples: &'a [Sample], name: &str, labels: &[(&str, &str)]) -> Vec<&'a Sample> {
    samples
        .iter()
        .filter(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.iter().any(|(lk, lv)| lk == k && lv == v))
        })
        .collect()
}

fn one(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    let found = find(samples, name, labels);
    assert_eq!(found.len(), 1, "{name} {labels:?}: {found:?}");
    found[0].value
}

// --- probes ----------------------------------------------------------------------------------

#[tokio::test]
async fn healthz_answers_and_readyz_follows_the_last_pass() {
    let h = start(WITH_TOKEN);
    assert_eq!(h.get("/healthz").await, (200, "ok".to_owned()));

    let (status, body) = h.get_json("/readyz").await;
    assert_eq!(status, 503);
    assert_eq!(body["ready"], false);
    assert_eq!(body["reason"], "no reconcile pass has finished yet");

    h.shared.readiness().record(t0(), Ok(()));
    let (status, body) = h.get_json("/readyz").await;
    assert_eq!((status, &body["ready"]), (200, &json!(true)), "{body}");
    assert_eq!(body["lastPass"], "2026-11-24T17:00:00Z");

    h.shared.readiness().record(
        t0(),
        Err("fetching origin/main: connection refused".to_owned()),
    );
    let (status, body) = h.get_json("/readyz").await;
    assert_eq!(status, 503);
    assert_eq!(
        body["reason"],
        "the last reconcile pass (2026-11-24T17:00:00Z) failed: fetching origin/main: connection refused"
    );

    // A loop that stopped finishing passes is not ready either.
    h.shared.readiness().record(t0(), Ok(()));
    h.clock.advance(TimeDelta::minutes(6));
    let (status, body) = h.get_json("/readyz").await;
    assert_eq!(status, 503);
    assert!(
        body["reason"]
            .as_str()
            .unwrap()
            .contains("no reconcile pass has finished since 2026-11-24T17:00:00Z"),
        "{body}"
    );
}

#[tokio::test]
async fn unknown_paths_answer_404_json() {
    let h = start(WITH_TOKEN);
    let (status, body) = h.get_json("/nope").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"], "no endpoint GET /nope");
}

// --- metrics ---------------------------------------------------------------------------------

#[tokio::test]
async fn metrics_are_prometheus_text_computed_from_the_store() {
    let h = start(WITH_TOKEN);
    h.shared
        .metrics()
        .observe_reconcile(Duration::from_millis(40));
    h.shared.metrics().forge_request("github", ForgeOutcome::Ok);
    h.shared
        .metrics()
        .forge_request("github", ForgeOutcome::NotModified);
    h.shared.metrics().set_rate_limit_remaining("github", 4321);

    let r = h.http.get(h.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = r.text().await.unwrap();
    let samples = parse_exposition(&text);

    let phase = "ringmaster_ring_run_phase";
    assert_eq!(
        one(
            &samples,
            phase,
            &[
                ("rollout", ROLLOUT),
                ("ring", "nonprod"),
                ("phase", "soaking")
            ]
        ),
        1.0
    );
    assert_eq!(
        one(
            &samples,
            phase,
            &[
                ("rollout", ROLLOUT),
                ("ring", "sandbox"),
                ("phase", "passed")
            ]
        ),
        1.0
    );
    assert_eq!(find(&samples, phase, &[]).len(), 4, "one per ring run");

    // The latest sample per gate and cluster of the soaking ring's current step.
    let result = "ringmaster_gate_result";
    let errors = [
        ("ring", "nonprod"),
        ("gate", "error-ratio"),
        ("cluster", "eks-dev-1"),
    ];
    assert_eq!(find(&samples, result, &errors).len(), 1, "only the latest");
    assert_eq!(
        one(
            &samples,
            result,
            &[errors.as_slice(), &[("result", "fail")]].concat()
        ),
        1.0
    );
    // A quote in a label value is escaped on the wire and comes back intact.
    assert!(text.contains(r#"gate="nodes \"ready\"""#), "{text}");
    assert_eq!(
        one(
            &samples,
            result,
            &[("gate", "nodes \"ready\""), ("result", "inconclusive")]
        ),
        1.0
    );
    assert_eq!(one(&samples, "ringmaster_gate_value", &errors), 0.25);
    assert!(
        find(
            &samples,
            "ringmaster_gate_value",
            &[("gate", "nodes \"ready\"")]
        )
        .is_empty(),
        "no value, no series"
    );

    assert_eq!(
        one(
            &samples,
            "ringmaster_forge_requests_total",
            &[("forge", "github"), ("outcome", "not_modified")]
        ),
        1.0
    );
    assert_eq!(
        one(
            &samples,
            "ringmaster_forge_rate_limit_remaining",
            &[("forge", "github")]
        ),
        4321.0
    );
    let hist = "ringmaster_reconcile_duration_seconds";
    assert_eq!(
        one(&samples, &format!("{hist}_bucket"), &[("le", "+Inf")]),
        1.0
    );
    assert_eq!(
        one(&samples, &format!("{hist}_bucket"), &[("le", "0.025")]),
        0.0
    );
    assert_eq!(
        one(&samples, &format!("{hist}_bucket"), &[("le", "0.05")]),
        1.0
    );
    assert_eq!(one(&samples, &format!("{hist}_count"), &[]), 1.0);

    assert_eq!(
        one(&samples, "ringmaster_rollouts", &[("state", "active")]),
        1.0
    );
    assert_eq!(
        one(&samples, "ringmaster_rollouts", &[("state", "paused")]),
        0.0
    );
    assert_eq!(one(&samples, "ringmaster_frozen", &[]), 0.0);
    // Without the ring file there is no forecast, and no made-up series.
    assert!(
        find(
            &samples,
            "ringmaster_rollout_forecast_pass_timestamp_seconds",
            &[]
        )
        .is_empty()
    );
}

#[tokio::test]
async fn the_forecast_metric_comes_from_the_status_forecast() {
    let h = start(WITH_TOKEN);
    let config =
        examples::materialize(&examples::fleet_dir(), &h.tmp.path().join("fleet")).unwrap();
    let loaded = rings::load::load(&config).unwrap();
    h.shared.set_config(loaded.config);

    let (_, status) = h.get_json("/api/v1/rollouts").await;
    let nonprod = &status["rollouts"][0]["rings"][1];
    assert_eq!(nonprod["ring"], "nonprod");
    // Soaking for 1h of its 4h soak: passes by 3h from now.
    assert_eq!(nonprod["forecast"]["passedBy"], "2026-11-24T20:00:00Z");

    let (_, text) = h.get("/metrics").await;
    let samples = parse_exposition(&text);
    let name = "ringmaster_rollout_forecast_pass_timestamp_seconds";
    assert_eq!(
        one(&samples, name, &[("rollout", ROLLOUT), ("ring", "nonprod")]),
        (t0() + TimeDelta::hours(3)).timestamp() as f64
    );
    assert_eq!(
        one(&samples, name, &[("rollout", ROLLOUT), ("ring", "sandbox")]),
        (t0() - TimeDelta::hours(3) + TimeDelta::minutes(45)).timestamp() as f64,
        "a passed ring's series is when it passed"
    );
}

// --- rollouts --------------------------------------------------------------------------------

#[tokio::test]
async fn rollouts_are_served_as_status_json() {
    let h = start(WITH_TOKEN);
    let (status, all) = h.get_json("/api/v1/rollouts").await;
    assert_eq!(status, 200);
    assert_eq!(all["at"], "2026-11-24T17:00:00Z");
    assert_eq!(all["freeze"], Value::Null);
    assert_eq!(all["rollouts"][0]["name"], ROLLOUT);
    assert_eq!(all["rollouts"][0]["rings"][1]["phase"], "soaking");
    assert_eq!(all["rollouts"][0]["rings"][1]["gates"]["fail"], 1);

    let (status, one) = h.get_json(&format!("/api/v1/rollouts/{ROLLOUT}")).await;
    assert_eq!(status, 200);
    assert_eq!(one, all["rollouts"][0]);

    let (status, body) = h.get_json("/api/v1/rollouts/k8s-9.99").await;
    assert_eq!(status, 404);
    assert_eq!(
        body["error"],
        "no rollout named `k8s-9.99` (see `ringmaster status`)"
    );
}

// --- control ---------------------------------------------------------------------------------

#[tokio::test]
async fn pause_needs_the_bearer_token_and_a_refusal_changes_nothing() {
    let h = start(WITH_TOKEN);
    let before = h.snapshot();
    let pause = format!("/api/v1/rollouts/{ROLLOUT}/pause");
    let body = json!({"reason": "incident 42", "by": "mallory"});

    let (status, reply) = h.post(&pause, None, Some(body.clone())).await;
    assert_eq!(status, 401);
    assert!(
        reply["error"]
            .as_str()
            .unwrap()
            .contains("Authorization: Bearer"),
        "{reply}"
    );
    let (status, reply) = h
        .post(&pause, Some("not-the-token"), Some(body.clone()))
        .await;
    assert_eq!(status, 401);
    assert_eq!(
        reply["error"],
        "the bearer token is not the daemon's API token"
    );
    let (status, _) = h
        .post(&pause, Some(&TOKEN[..TOKEN.len() - 1]), Some(body))
        .await;
    assert_eq!(status, 401, "a prefix of the token is not the token");
    // Basic auth with the token as password is not a bearer token.
    let r = h
        .http
        .post(h.url(&pause))
        .basic_auth("x", Some(TOKEN))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");

    assert_eq!(h.snapshot(), before, "a refused request has no effect");
    assert!(h.not_woken());

    let (status, reply) = h
        .post(
            &pause,
            Some(TOKEN),
            Some(json!({"reason": "incident 42", "by": "alice"})),
        )
        .await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply, json!({"message": "rollout `k8s-1.33` paused"}));
    assert_eq!(
        h.state(),
        RolloutState::Paused {
            by: "alice (API token)".into(),
            reason: "incident 42".into()
        }
    );
    let last = h.store.journal(ROLLOUT).unwrap().pop().unwrap();
    assert_eq!(
        (
            last.kind.as_str(),
            last.actor.as_str(),
            last.message.as_str()
        ),
        ("paused", "alice (API token)", "paused: incident 42")
    );
    assert!(h.woken().await, "a control command wakes the loop");

    // Pausing twice is a conflict, not a second journal entry.
    let journal = h.store.journal(ROLLOUT).unwrap().len();
    let (status, reply) = h.post(&pause, Some(TOKEN), None).await;
    assert_eq!(status, 409);
    assert_eq!(
        reply["error"],
        "rollout `k8s-1.33` is paused: only an active rollout can be paused"
    );
    assert_eq!(h.store.journal(ROLLOUT).unwrap().len(), journal);

    // Resume, without a body: the journal names the API.
    let (status, reply) = h
        .post(
            &format!("/api/v1/rollouts/{ROLLOUT}/resume"),
            Some(TOKEN),
            None,
        )
        .await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["message"], "rollout `k8s-1.33` resumed");
    assert_eq!(h.state(), RolloutState::Active);
    let last = h.store.journal(ROLLOUT).unwrap().pop().unwrap();
    assert_eq!(
        (last.kind.as_str(), last.actor.as_str()),
        ("resumed", "api (API token)")
    );
}

#[tokio::test]
async fn without_a_configured_token_mutations_are_forbidden() {
    let h = start(Setup {
        token: false,
        webhook_secret: None,
    });
    let before = h.snapshot();
    for (path, body) in [
        (format!("/api/v1/rollouts/{ROLLOUT}/pause"), None),
        (format!("/api/v1/rollouts/{ROLLOUT}/abort"), None),
        (
            "/api/v1/freeze".to_owned(),
            Some(json!({"until": "2026-12-01T00:00:00Z", "reason": "x"})),
        ),
    ] {
        for token in [None, Some(TOKEN), Some("")] {
            let (status, reply) = h.post(&path, token, body.clone()).await;
            assert_eq!(status, 403, "{path}: {reply}");
            assert!(
                reply["error"]
                    .as_str()
                    .unwrap()
                    .starts_with("no API token configured"),
                "{reply}"
            );
        }
    }
    assert_eq!(h.snapshot(), before);
    // Reads stay open.
    assert_eq!(h.get_json("/api/v1/rollouts").await.0, 200);
}

#[tokio::test]
async fn abort_unknown_and_malformed_requests() {
    let h = start(WITH_TOKEN);
    let (status, reply) = h
        .post("/api/v1/rollouts/k8s-9.99/abort", Some(TOKEN), None)
        .await;
    assert_eq!(status, 404);
    assert_eq!(
        reply["error"],
        "no rollout named `k8s-9.99` (see `ringmaster status`)"
    );

    let before = h.snapshot();
    let abort = format!("/api/v1/rollouts/{ROLLOUT}/abort");
    let (status, reply) = h
        .post(&abort, Some(TOKEN), Some(json!({"reasn": "typo"})))
        .await;
    assert_eq!(status, 400, "{reply}");
    assert!(
        reply["error"]
            .as_str()
            .unwrap()
            .contains("unknown field `reasn`")
    );
    let r = h
        .http
        .post(h.url(&abort))
        .bearer_auth(TOKEN)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(h.snapshot(), before, "a malformed request has no effect");

    let (status, reply) = h
        .post(
            &abort,
            Some(TOKEN),
            Some(json!({"reason": "bad release", "by": "carol"})),
        )
        .await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(
        h.state(),
        RolloutState::Aborted {
            by: "carol (API token)".into(),
            reason: "bad release".into()
        }
    );
    let (status, _) = h
        .post(
            &format!("/api/v1/rollouts/{ROLLOUT}/resume"),
            Some(TOKEN),
            None,
        )
        .await;
    assert_eq!(status, 409, "an aborted rollout does not resume");
}

#[tokio::test]
async fn freeze_and_unfreeze() {
    let h = start(WITH_TOKEN);
    let (status, reply) = h
        .post(
            "/api/v1/freeze",
            Some(TOKEN),
            Some(json!({"until": "2026-11-20T00:00:00Z", "reason": "too late"})),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        reply["error"],
        "`until` (2026-11-20T00:00:00Z) is not in the future"
    );
    let (status, _) = h
        .post(
            "/api/v1/freeze",
            Some(TOKEN),
            Some(json!({"until": "2026-12-01T00:00:00Z"})),
        )
        .await;
    assert_eq!(status, 400, "a freeze says why");
    assert_eq!(h.store.global_freeze().unwrap(), None);

    let (status, reply) = h
        .post(
            "/api/v1/freeze",
            Some(TOKEN),
            Some(json!({"until": "2026-12-01T00:00:00+01:00", "reason": "incident 43", "by": "dave"})),
        )
        .await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["message"], "frozen until 2026-11-30T23:00:00+00:00");
    let freeze = h.store.global_freeze().unwrap().unwrap();
    assert_eq!(
        (freeze.reason.as_str(), freeze.by.as_str(), freeze.since),
        ("incident 43", "dave (API token)", t0())
    );
    let (_, status) = h.get_json("/api/v1/rollouts").await;
    assert_eq!(status["freeze"]["by"], "dave (API token)");
    let (_, text) = h.get("/metrics").await;
    assert_eq!(one(&parse_exposition(&text), "ringmaster_frozen", &[]), 1.0);
    let last = h.store.journal(ROLLOUT).unwrap().pop().unwrap();
    assert_eq!(
        (last.kind.as_str(), last.actor.as_str()),
        ("frozen", "dave (API token)")
    );

    let (status, _) = h.post("/api/v1/unfreeze", None, None).await;
    assert_eq!(status, 401);
    assert!(h.store.global_freeze().unwrap().is_some());
    let (status, reply) = h
        .post("/api/v1/unfreeze", Some(TOKEN), Some(json!({"by": "dave"})))
        .await;
    assert_eq!((status, &reply["message"]), (200, &json!("unfrozen")));
    assert_eq!(h.store.global_freeze().unwrap(), None);
    let (_, text) = h.get("/metrics").await;
    assert_eq!(one(&parse_exposition(&text), "ringmaster_frozen", &[]), 0.0);
}

#[tokio::test]
async fn a_control_command_waits_for_the_pass_in_progress() {
    let h = Arc::new(start(WITH_TOKEN));
    // The run loop is in a pass.
    let pass = h.shared.write_lock().await;
    let pausing = {
        let h = Arc::clone(&h);
        tokio::spawn(async move {
            h.post(
                &format!("/api/v1/rollouts/{ROLLOUT}/pause"),
                Some(TOKEN),
                None,
            )
            .await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        h.state(),
        RolloutState::Active,
        "nothing is written during a pass"
    );
    drop(pass);
    let (status, reply) = tokio::time::timeout(DEADLINE, pausing)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status, 200, "{reply}");
    assert!(matches!(h.state(), RolloutState::Paused { .. }));
}

// --- webhooks --------------------------------------------------------------------------------

#[tokio::test]
async fn a_verified_webhook_wakes_the_loop() {
    let h = start(Setup {
        token: true,
        webhook_secret: Some("hook-secret"),
    });
    let body = serde_json::to_vec(&json!({
        "action": "closed",
        "number": 11,
        "pull_request": {"head": {"ref": "ringmaster/k8s-1.33/nonprod/1", "sha": "abc123"}, "merged": true}
    }))
    .unwrap();
    let send = |signature: String| {
        h.http
            .post(h.url("/webhooks/github"))
            .header("x-github-event", "pull_request")
            .header("x-hub-signature-256", signature)
            .body(body.clone())
            .send()
    };

    let r = send(support::signed("wrong-secret", &body)).await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert!(h.not_woken(), "an unverified delivery wakes nothing");

    let r = send(support::signed("hook-secret", &body)).await.unwrap();
    assert_eq!(r.status().as_u16(), 202, "{}", r.text().await.unwrap());
    assert!(h.woken().await);
}

/// A signed `pull_request` delivery to `h` with the delivery id `id`: status and body.
async fn deliver(h: &Harness, id: &str) -> (u16, String) {
    let body = serde_json::to_vec(&json!({
        "action": "synchronize",
        "number": 11,
        "pull_request": {"head": {"ref": "ringmaster/k8s-1.33/nonprod/1", "sha": "abc123"}}
    }))
    .unwrap();
    let r = h
        .http
        .post(h.url("/webhooks/github"))
        .header("x-github-event", "pull_request")
        .header("x-github-delivery", id)
        .header("x-hub-signature-256", support::signed("hook-secret", &body))
        .body(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// Give the API's thread time to forward what it received (it runs on its own runtime).
async fn settle() {
    tokio::time::sleep(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn a_replayed_webhook_wakes_the_loop_once() {
    let h = start(Setup {
        token: true,
        webhook_secret: Some("hook-secret"),
    });
    assert_eq!(deliver(&h, "d-1").await.0, 202);
    for _ in 0..300 {
        let (status, body) = deliver(&h, "d-1").await;
        assert_eq!(status, 200, "{body}");
        assert!(body.starts_with("duplicate delivery d-1"), "{body}");
    }
    settle().await;
    assert!(h.woken().await);
    assert!(h.not_woken(), "300 replays woke the loop again");
}

#[tokio::test]
async fn many_deliveries_during_a_pass_make_one_more_pass() {
    let h = start(Setup {
        token: true,
        webhook_secret: Some("hook-secret"),
    });
    // Nobody waits on the wake-up: the loop is in a pass.
    for i in 0..40 {
        assert_eq!(deliver(&h, &format!("d-{i}")).await.0, 202);
    }
    settle().await;
    assert!(h.woken().await, "one more pass");
    assert!(h.not_woken(), "and only one");
}

#[tokio::test]
async fn without_a_webhook_secret_the_endpoint_is_absent() {
    let h = start(WITH_TOKEN);
    let (status, body) = h.post("/webhooks/github", None, Some(json!({}))).await;
    assert_eq!(status, 404);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("webhooks are not configured"),
        "{body}"
    );
}

#[test]
fn a_taken_address_is_a_clear_error() {
    let h = start(WITH_TOKEN);
    let taken = h.server.addr().to_string();
    let err = ApiServer::start(&taken, Arc::clone(&h.shared), ApiOptions::default()).unwrap_err();
    let message = err.to_string();
    assert!(
        message.starts_with(&format!("cannot listen on {taken} (api.listen): ")),
        "{message}"
    );
}

// --- the client and the CLI ------------------------------------------------------------------

/// A loopback port where nothing listens (bound, then released).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[tokio::test]
async fn the_client_sends_control_commands_to_the_daemon() {
    let h = start(WITH_TOKEN);
    let listen = h.server.addr().to_string();
    let token = secret(h.tmp.path(), "client-token", TOKEN);
    let pause = Request::Pause {
        rollout: ROLLOUT,
        reason: "incident 44",
    };

    let wrong = secret(h.tmp.path(), "wrong-token", "nope");
    match client::send(&listen, Some(&wrong), &pause, "erin").await {
        Err(ClientError::Refused {
            status, message, ..
        }) => {
            assert_eq!(status, 401);
            assert_eq!(message, "the bearer token is not the daemon's API token");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(h.state(), RolloutState::Active);

    let message = client::send(&listen, Some(&token), &pause, "erin")
        .await
        .unwrap();
    assert_eq!(message, "rollout `k8s-1.33` paused");
    assert_eq!(
        h.state(),
        RolloutState::Paused {
            by: "erin (API token)".into(),
            reason: "incident 44".into()
        }
    );
    let until = t0() + TimeDelta::days(2);
    let message = client::send(
        &listen,
        Some(&token),
        &Request::Freeze {
            until,
            reason: "release week",
        },
        "erin",
    )
    .await
    .unwrap();
    assert_eq!(message, "frozen until 2026-11-26T17:00:00+00:00");
    assert_eq!(h.store.global_freeze().unwrap().unwrap().until, until);

    let nobody = format!("127.0.0.1:{}", free_port());
    match client::send(&nobody, Some(&token), &Request::Unfreeze, "erin").await {
        Err(ClientError::NotRunning(addr)) => assert_eq!(addr, nobody),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn another_program_on_the_port_is_not_a_daemon() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let listen = listener.local_addr().unwrap().to_string();
    let other = tokio::spawn(async move {
        let (mut conn, _) = listener.accept().await.unwrap();
        let mut buf = vec![0; 4096];
        let _ = tokio::io::AsyncReadExt::read(&mut conn, &mut buf).await;
        let reply =
            b"HTTP/1.1 404 Not Found\r\ncontent-length: 9\r\nconnection: close\r\n\r\nnot found";
        tokio::io::AsyncWriteExt::write_all(&mut conn, reply)
            .await
            .unwrap();
    });
    let answer = client::send(&listen, None, &Request::Unfreeze, "erin").await;
    match answer {
        Err(ClientError::Unreachable { addr, why }) => {
            assert_eq!(addr, listen);
            assert_eq!(
                why,
                "something answered HTTP 404 Not Found there, but not as ringmaster does"
            );
        }
        other => panic!("{other:?}"),
    }
    other.await.unwrap();
}

/// A `ringmaster.yaml` whose API listens on `port`, with the token in a file.
fn cli_dir(port: u16) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    std::fs::write(
        dir.join("ringmaster.yaml"),
        format!(
            "apiVersion: ringmaster/v1\nkind: Orchestrator\ngitops: {{ url: ./gitops }}\nstore: ./ringmaster.db\napi: {{ listen: \"127.0.0.1:{port}\", tokenFile: ./api-token }}\n"
        ),
    )
    .unwrap();
    std::fs::write(dir.join("api-token"), TOKEN).unwrap();
    (tmp, dir)
}

fn ringmaster(dir: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ringmaster"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn shared_over(store: &Arc<Store>) -> Arc<Shared> {
    Shared::new(
        Arc::clone(store),
        Arc::new(ManualClock::new(t0())),
        Arc::new(Metrics::new()),
        TimeDelta::minutes(5),
    )
}

#[test]
fn ringmaster_pause_goes_through_the_running_daemon() {
    // The "daemon": it holds the store (so the CLI cannot open it) and serves the API.
    let port = free_port();
    let (_tmp, dir) = cli_dir(port);
    let store = Arc::new(Store::open(&dir.join("ringmaster.db")).unwrap());
    seed(&store, t0());
    let token = secret(&dir, "server-token", TOKEN);
    let server = ApiServer::start(
        &format!("127.0.0.1:{port}"),
        shared_over(&store),
        ApiOptions {
            token: Some(token),
            token_name: Some("api-token".into()),
            ..ApiOptions::default()
        },
    )
    .unwrap();

    let (code, stdout, stderr) = ringmaster(
        &dir,
        &["pause", ROLLOUT, "--reason", "incident 45", "--as", "frank"],
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        stdout,
        format!(
            "rollout `k8s-1.33` paused (through the running daemon at http://127.0.0.1:{port})\n"
        )
    );
    assert_eq!(
        store.rollout(ROLLOUT).unwrap().unwrap().state,
        RolloutState::Paused {
            by: "frank (token api-token)".into(),
            reason: "incident 45".into()
        }
    );

    // A refusal is the daemon's message, exit 1.
    let (code, _, stderr) = ringmaster(&dir, &["pause", ROLLOUT, "--as", "frank"]);
    assert_eq!(code, Some(1));
    assert_eq!(
        stderr,
        "error: rollout `k8s-1.33` is paused: only an active rollout can be paused\n"
    );

    // A wrong token in the CLI's settings is refused without effect.
    std::fs::write(dir.join("api-token"), "not-the-token").unwrap();
    let (code, _, stderr) = ringmaster(&dir, &["resume", ROLLOUT]);
    assert_eq!(code, Some(1));
    assert_eq!(
        stderr,
        "error: the bearer token is not the daemon's API token\n"
    );
    assert!(matches!(
        store.rollout(ROLLOUT).unwrap().unwrap().state,
        RolloutState::Paused { .. }
    ));

    // The daemon's API is gone but it still holds the store: say both.
    drop(server);
    let (code, stdout, stderr) = ringmaster(&dir, &["resume", ROLLOUT]);
    assert_eq!((code, stdout.as_str()), (Some(1), ""));
    assert!(
        stderr.contains("another ringmaster is running on the store"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("no ringmaster daemon listens on 127.0.0.1:{port}")),
        "{stderr}"
    );
    assert!(stderr.contains("nothing was changed"), "{stderr}");
}

#[test]
fn without_a_daemon_the_cli_writes_the_store() {
    let port = free_port();
    let (_tmp, dir) = cli_dir(port);
    {
        let store = Store::open(&dir.join("ringmaster.db")).unwrap();
        seed(&store, t0());
    }
    let (code, stdout, stderr) = ringmaster(&dir, &["pause", ROLLOUT, "--as", "grace"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        stdout,
        "rollout `k8s-1.33` paused (takes effect at the next reconcile)\n"
    );
    let store = Store::open(&dir.join("ringmaster.db")).unwrap();
    assert!(matches!(
        store.rollout(ROLLOUT).unwrap().unwrap().state,
        RolloutState::Paused { by, .. } if by == "grace"
    ));
}

#[tokio::test]
async fn info_names_the_store_the_daemon_holds() {
    let h = start(WITH_TOKEN);
    let (status, info) = h.get_json("/api/v1/info").await;
    assert_eq!(status, 200, "{info}");
    assert_eq!(info["store"]["id"], json!(h.store.identity()));
    let path = std::fs::canonicalize(h.tmp.path().join("ringmaster.db")).unwrap();
    assert_eq!(info["store"]["path"], json!(path.display().to_string()));
    let listen = h.server.addr().to_string();
    let verified = client::verify(&listen, &h.tmp.path().join("ringmaster.db"))
        .await
        .unwrap();
    assert_eq!(verified.id, h.store.identity());
    let other = tempfile::tempdir().unwrap();
    let other_store = other.path().join("db");
    drop(Store::open(&other_store).unwrap());
    match client::verify(&listen, &other_store).await {
        Err(ClientError::OtherStore { theirs, ours, .. }) => {
            assert_eq!(theirs, path.display().to_string());
            assert_eq!(
                ours,
                std::fs::canonicalize(&other_store)
                    .unwrap()
                    .display()
                    .to_string()
            );
        }
        other => panic!("{other:?}"),
    }
}

/// Another fleet's daemon on this configuration's `api.listen`, holding its own store.
fn foreign_daemon(port: u16) -> (tempfile::TempDir, Arc<Store>, ApiServer) {
    let tmp = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&tmp.path().join("theirs.db")).unwrap());
    seed(&store, t0());
    let server = ApiServer::start(
        &format!("127.0.0.1:{port}"),
        shared_over(&store),
        ApiOptions {
            token: Some(secret(tmp.path(), "their-token", TOKEN)),
            ..ApiOptions::default()
        },
    )
    .unwrap();
    (tmp, store, server)
}

#[test]
fn an_idle_store_is_written_directly_even_when_another_daemon_answers() {
    let port = free_port();
    let (_theirs, their_store, _server) = foreign_daemon(port);
    let (_tmp, dir) = cli_dir(port);
    {
        let store = Store::open(&dir.join("ringmaster.db")).unwrap();
        seed(&store, t0());
    }
    let (code, stdout, stderr) = ringmaster(&dir, &["pause", ROLLOUT, "--as", "heidi"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        stdout,
        "rollout `k8s-1.33` paused (takes effect at the next reconcile)\n"
    );
    assert_eq!(
        their_store.rollout(ROLLOUT).unwrap().unwrap().state,
        RolloutState::Active,
        "the other fleet's daemon was not touched"
    );
    let ours = Store::open(&dir.join("ringmaster.db")).unwrap();
    assert!(matches!(
        ours.rollout(ROLLOUT).unwrap().unwrap().state,
        RolloutState::Paused { .. }
    ));
}

#[test]
fn a_daemon_holding_another_store_is_refused_and_nothing_changes() {
    let port = free_port();
    let (_theirs, their_store, _server) = foreign_daemon(port);
    let (_tmp, dir) = cli_dir(port);
    // This fleet's daemon holds its store, but its API is not where `api.listen` points.
    let ours = Store::open(&dir.join("ringmaster.db")).unwrap();
    seed(&ours, t0());
    let (code, stdout, stderr) = ringmaster(&dir, &["pause", ROLLOUT, "--as", "ivan"]);
    assert_eq!((code, stdout.as_str()), (Some(1), ""), "{stderr}");
    assert!(
        stderr.starts_with(&format!(
            "error: the ringmaster daemon at 127.0.0.1:{port} (api.listen) holds another store, "
        )),
        "{stderr}"
    );
    assert!(stderr.contains("theirs.db"), "{stderr}");
    assert!(stderr.contains("ringmaster.db"), "{stderr}");
    assert!(stderr.contains("nothing was changed"), "{stderr}");
    assert_eq!(
        their_store.rollout(ROLLOUT).unwrap().unwrap().state,
        RolloutState::Active
    );
    assert_eq!(
        ours.rollout(ROLLOUT).unwrap().unwrap().state,
        RolloutState::Active
    );
    // `status` does not show the other fleet's rollouts either.
    let (code, _, stderr) = ringmaster(&dir, &["status"]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("holds another store"), "{stderr}");
}

#[tokio::test]
async fn the_journal_names_the_token_and_free_text_is_cleaned() {
    let h = start(WITH_TOKEN);
    let long = "y".repeat(2000);
    let (status, reply) = h
        .post(
            &format!("/api/v1/rollouts/{ROLLOUT}/pause"),
            Some(TOKEN),
            Some(json!({
                "reason": format!("\u{1b}[31mred\u{1b}[0m\nstatus: forged line {long}"),
                "by": "mallory\n\u{1b}[2Jroot",
            })),
        )
        .await;
    assert_eq!(status, 200, "{reply}");
    let RolloutState::Paused { by, reason } = h.state() else {
        panic!("{:?}", h.state());
    };
    assert_eq!(by, "mallory root (API token)");
    assert!(
        reason.starts_with("red status: forged line yyy"),
        "{reason}"
    );
    assert_eq!(reason.chars().count(), orchestrator::text::MAX_TEXT_CHARS);
    let last = h.store.journal(ROLLOUT).unwrap().pop().unwrap();
    assert_eq!(last.actor, "mallory root (API token)");
    assert!(
        !last.message.chars().any(char::is_control),
        "{:?}",
        last.message
    );
}

#[test]
fn the_cli_cleans_what_it_stores_too() {
    let port = free_port();
    let (_tmp, dir) = cli_dir(port);
    {
        let store = Store::open(&dir.join("ringmaster.db")).unwrap();
        seed(&store, t0());
    }
    let (code, _, stderr) = ringmaster(
        &dir,
        &[
            "pause",
            ROLLOUT,
            "--reason",
            "line one\nline two\u{1b}[0m",
            "--as",
            "eve\r\n",
        ],
    );
    assert_eq!(code, Some(0), "{stderr}");
    let store = Store::open(&dir.join("ringmaster.db")).unwrap();
    assert_eq!(
        store.rollout(ROLLOUT).unwrap().unwrap().state,
        RolloutState::Paused {
            by: "eve".into(),
            reason: "line one line two".into()
        }
    );
}

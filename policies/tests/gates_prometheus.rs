//! Prometheus gates against a real Prometheus (Debian's `/usr/bin/prometheus`, installed by
//! `.ci/run`) scraping a loopback fake exporter.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use policies::gates::Observation;
use policies::gates::prometheus::{
    PrometheusClient, QueryResult, evaluate, evaluate_ring, is_by_cluster, render_query,
};
use policies::soak::Outcome;
use rings::ClusterId;
use rings::model::{Cluster, PrometheusGate, Provider};

const PROMETHEUS: &str = "/usr/bin/prometheus";
const TEST_TIMEOUT: Duration = Duration::from_secs(60);

const METRICS: &str = "\
# TYPE error_ratio gauge
error_ratio{cluster=\"c1\"} 0.004
error_ratio{cluster=\"c2\"} 0.2
# TYPE nodes_ready_ratio gauge
nodes_ready_ratio{cluster=\"c1\"} 1
nodes_ready_ratio{cluster=\"c2\"} 0.5
# TYPE broken gauge
broken{cluster=\"c1\"} NaN
# TYPE http_requests_total counter
http_requests_total{cluster=\"c1\",code=\"500\"} 5
http_requests_total{cluster=\"c1\",code=\"200\"} 995
http_requests_total{cluster=\"c2\",code=\"500\"} 50
http_requests_total{cluster=\"c2\",code=\"200\"} 950
";

fn cluster(id: &str, region: &str, labels: &[(&str, &str)]) -> Cluster {
    Cluster {
        id: ClusterId::new(id).unwrap(),
        provider: Provider::Aws,
        service: Some("eks".into()),
        region: Some(region.into()),
        environment: Some("prod".into()),
        owner_team: None,
        criticality: None,
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        upgrade_ring: None,
        kube_context: id.into(),
        kubernetes: rings::Version::parse("1.33.2").unwrap(),
        addons: Default::default(),
        policies: Default::default(),
        controllers: Default::default(),
        extra: Default::default(),
        paused: None,
        upgrade_nodes: None,
        nodes: rings::model::NodeConvergence::Target,
        path: format!("clusters/{id}/cluster.yaml"),
        pos: rings::Pos::FILE,
    }
}

fn gate(url: &str, query: &str) -> PrometheusGate {
    PrometheusGate {
        url: url.into(),
        query: query.into(),
        min: None,
        max: None,
        baseline: None,
        max_increase: None,
        max_ratio: None,
    }
}

/// A running Prometheus, killed on drop (also when a test panics).
struct Prometheus {
    child: Child,
    url: String,
    dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Serve `metrics` on a loopback exporter and start Prometheus scraping it every second; return
/// once the first scrape is queryable.
/// `None` (after one loud line) when Prometheus is not installed, unless
/// `RINGMASTER_REQUIRE_PROMETHEUS=1` (as `.ci/run` sets): then a missing binary fails.
async fn start(metrics: &'static str) -> Option<Prometheus> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    if !Path::new(PROMETHEUS).exists() {
        assert!(
            std::env::var("RINGMASTER_REQUIRE_PROMETHEUS").as_deref() != Ok("1"),
            "{PROMETHEUS} is missing and RINGMASTER_REQUIRE_PROMETHEUS=1: install Debian's \
             prometheus package (`apt-get install prometheus`, as `.ci/run` does)."
        );
        eprintln!(
            "SKIPPED: {PROMETHEUS} is not installed; the real-Prometheus gate tests did not run \
             (apt-get install prometheus)"
        );
        return None;
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let exporter = listener.local_addr().unwrap();
    let app = Router::new().route("/metrics", get(move || async move { metrics }));
    tokio::spawn(async move { axum::serve(listener, app).await });

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  \
             - job_name: fake\n    static_configs:\n      - targets: ['{exporter}']\n"
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
    let port = free_port();
    let child = Command::new(PROMETHEUS)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut prom = Prometheus {
        child,
        url: format!("http://127.0.0.1:{port}"),
        dir,
    };

    let client = PrometheusClient::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(QueryResult::Vector(v)) = client.instant(&prom.url, "up").await
            && v.iter().any(|(_, value)| *value == 1.0)
        {
            return Some(prom);
        }
        if let Ok(Some(status)) = prom.child.try_wait() {
            panic!("prometheus exited with {status}:\n{}", prom.log());
        }
        if tokio::time::Instant::now() > deadline {
            panic!(
                "prometheus did not scrape the exporter within 15 s:\n{}",
                prom.log()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn assert_outcome(obs: &Observation, outcome: Outcome, contains: &str) {
    assert_eq!(obs.outcome, outcome, "{obs:?}");
    assert!(
        obs.observed.contains(contains),
        "expected {contains:?} in {obs:?}"
    );
}

#[tokio::test]
async fn bounds_nan_no_data_and_query_errors() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let Some(prom) = start(METRICS).await else {
            return;
        };
        let client = PrometheusClient::new();
        let (c1, c2) = (
            cluster("c1", "eu-west-1", &[]),
            cluster("c2", "eu-west-1", &[]),
        );

        let mut max = gate(&prom.url, r#"error_ratio{cluster="{clusterId}"}"#);
        max.max = Some(0.01);
        let ok = evaluate(&client, &max, &c1, None).await;
        assert_outcome(&ok, Outcome::Pass, "0.004");
        assert_eq!(ok.value, Some(0.004));
        assert_outcome(
            &evaluate(&client, &max, &c2, None).await,
            Outcome::Fail,
            "0.2 > max 0.01",
        );

        let mut min = gate(&prom.url, r#"nodes_ready_ratio{cluster="{clusterId}"}"#);
        min.min = Some(0.9);
        assert_outcome(
            &evaluate(&client, &min, &c1, None).await,
            Outcome::Pass,
            "1",
        );
        assert_outcome(
            &evaluate(&client, &min, &c2, None).await,
            Outcome::Fail,
            "0.5 < min 0.9",
        );

        // A scalar result is used as is.
        let mut scalar = gate(&prom.url, r#"scalar(error_ratio{cluster="{clusterId}"})"#);
        scalar.max = Some(0.01);
        assert_outcome(
            &evaluate(&client, &scalar, &c1, None).await,
            Outcome::Pass,
            "0.004",
        );

        let mut nan = gate(&prom.url, r#"broken{cluster="{clusterId}"}"#);
        nan.max = Some(1.0);
        assert_outcome(
            &evaluate(&client, &nan, &c1, None).await,
            Outcome::Inconclusive,
            "NaN",
        );

        let mut none = gate(&prom.url, r#"error_ratio{cluster="{clusterId}"}"#);
        none.max = Some(1.0);
        let c3 = cluster("c3", "eu-west-1", &[]);
        assert_outcome(
            &evaluate(&client, &none, &c3, None).await,
            Outcome::Inconclusive,
            "no data",
        );

        let mut several = gate(&prom.url, "error_ratio");
        several.max = Some(1.0);
        assert_outcome(
            &evaluate(&client, &several, &c1, None).await,
            Outcome::Inconclusive,
            "2 series; the query must return one value per cluster",
        );

        // Prometheus answers 400 with status "error": its message is kept.
        let mut bad = gate(&prom.url, r#"sum(error_ratio{cluster="{clusterId}"}"#);
        bad.max = Some(1.0);
        let obs = evaluate(&client, &bad, &c1, None).await;
        assert_outcome(&obs, Outcome::Inconclusive, "bad_data");
        assert!(obs.observed.contains("parse error"), "{obs:?}");

        // A range vector is not a gate value.
        let mut matrix = gate(&prom.url, r#"error_ratio{cluster="{clusterId}"}[1m]"#);
        matrix.max = Some(1.0);
        assert_outcome(
            &evaluate(&client, &matrix, &c1, None).await,
            Outcome::Inconclusive,
            "matrix",
        );
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn unreachable_prometheus_is_inconclusive() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    tokio::time::timeout(TEST_TIMEOUT, async {
        let client = PrometheusClient::new();
        let mut g = gate(&format!("http://127.0.0.1:{}", free_port()), "up");
        g.min = Some(1.0);
        let obs = evaluate(&client, &g, &cluster("c1", "eu-west-1", &[]), None).await;
        assert_outcome(&obs, Outcome::Inconclusive, "Prometheus http://127.0.0.1:");
        assert_eq!(obs.value, None);
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn by_cluster_is_one_query_per_ring() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let Some(prom) = start(METRICS).await else {
            return;
        };
        let client = PrometheusClient::new();
        let query = r#"sum by (cluster) (http_requests_total{code="500", cluster=~"{clusterId}"})
            / sum by (cluster) (http_requests_total{cluster=~"{clusterId}"})"#;
        assert!(is_by_cluster(query));
        let mut g = gate(&prom.url, query);
        g.max = Some(0.01);
        let (c1, c2, c3) = (
            cluster("c1", "eu-west-1", &[]),
            cluster("c2", "eu-west-1", &[]),
            cluster("c3", "eu-west-1", &[]),
        );
        let results = evaluate_ring(&client, &g, &[&c1, &c2, &c3], &BTreeMap::new()).await;
        let ids: Vec<&str> = results.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(ids, ["c1", "c2", "c3"]);
        assert_outcome(&results[0].1, Outcome::Pass, "0.005");
        assert_outcome(&results[1].1, Outcome::Fail, "0.05 > max 0.01");
        assert_outcome(&results[2].1, Outcome::Inconclusive, "no data");

        // Other placeholders must be the same across the ring: it is one query.
        let mut regional = gate(
            &prom.url,
            r#"sum by (cluster) (error_ratio{region="{region}"})"#,
        );
        regional.max = Some(1.0);
        let c4 = cluster("c4", "us-east-1", &[]);
        let results = evaluate_ring(&client, &regional, &[&c1, &c4], &BTreeMap::new()).await;
        assert_eq!(results.len(), 2);
        for (_, obs) in &results {
            assert_outcome(
                obs,
                Outcome::Inconclusive,
                "placeholders differ between clusters `c1` and `c4`",
            );
        }
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn baseline_max_increase_and_max_ratio() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let Some(prom) = start(METRICS).await else {
            return;
        };
        let client = PrometheusClient::new();
        let c1 = cluster("c1", "eu-west-1", &[]); // error_ratio 0.004
        let mut g = gate(&prom.url, r#"error_ratio{cluster="{clusterId}"}"#);
        g.baseline = Some("preUpgrade".into());
        g.max_increase = Some(0.01);
        assert_outcome(
            &evaluate(&client, &g, &c1, Some(0.003)).await,
            Outcome::Pass,
            "baseline 0.003",
        );
        g.max_increase = Some(0.001);
        assert_outcome(
            &evaluate(&client, &g, &c1, Some(0.002)).await,
            Outcome::Fail,
            "maxIncrease 0.001",
        );

        g.max_increase = Some(0.01);
        g.max_ratio = Some(1.5);
        assert_outcome(
            &evaluate(&client, &g, &c1, Some(0.003)).await,
            Outcome::Pass,
            "0.004",
        );
        assert_outcome(
            &evaluate(&client, &g, &c1, Some(0.002)).await,
            Outcome::Fail,
            "maxRatio 1.5",
        );
        // A zero baseline only compares the increase.
        assert_outcome(
            &evaluate(&client, &g, &c1, Some(0.0)).await,
            Outcome::Pass,
            "baseline 0",
        );
        // No baseline sampled: never a pass.
        assert_outcome(
            &evaluate(&client, &g, &c1, None).await,
            Outcome::Inconclusive,
            "no pre-upgrade baseline",
        );

        // by (cluster): baselines per cluster id.
        let mut ring = gate(&prom.url, "sum by (cluster) (error_ratio)");
        ring.baseline = Some("preUpgrade".into());
        ring.max_ratio = Some(2.0);
        let c2 = cluster("c2", "eu-west-1", &[]); // 0.2
        let baselines = BTreeMap::from([("c1".to_owned(), 0.004), ("c2".to_owned(), 0.05)]);
        let results = evaluate_ring(&client, &ring, &[&c1, &c2], &baselines).await;
        assert_eq!(results[0].1.outcome, Outcome::Pass, "{results:?}");
        assert_outcome(&results[1].1, Outcome::Fail, "maxRatio 2");
    })
    .await
    .unwrap();
}

#[test]
fn render_query_substitutes_and_refuses_injection() {
    let c = cluster(
        "c1",
        "eu-west-1",
        &[("cell", "cell-7"), ("evil", r#"c1"} or vector(1) #"#)],
    );
    assert_eq!(
        render_query(
            r#"rate(x{cluster="{clusterId}",region="{region}",cell="{labels.cell}",code=~"5.."}[5m])"#,
            &c
        ),
        Ok(r#"rate(x{cluster="c1",region="eu-west-1",cell="cell-7",code=~"5.."}[5m])"#.to_owned())
    );
    let err = render_query(r#"x{cluster="{labels.evil}"}"#, &c).unwrap_err();
    assert!(err.contains("`c1`") && err.contains("labels.evil"), "{err}");
    for bad in ["a\\b", "a\nb", "a{b", "a'b", "a b"] {
        let c = cluster("c1", bad, &[]);
        let err = render_query(r#"x{region="{region}"}"#, &c).unwrap_err();
        assert!(err.contains("`region`"), "{bad:?}: {err}");
    }
    let err = render_query("x{cluster=\"{clusterName}\"}", &c).unwrap_err();
    assert!(err.contains("clusterName"), "{err}");
    let err = render_query("x{cell=\"{labels.missing}\"}", &c).unwrap_err();
    assert!(
        err.contains("c1") && err.contains("labels.missing"),
        "{err}"
    );
}

/// DESIGN §13: at most 10 queries in flight per server (a fake server counts them).
#[tokio::test]
async fn at_most_ten_queries_in_flight_per_server() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let _ = rustls::crypto::ring::default_provider().install_default();
    tokio::time::timeout(TEST_TIMEOUT, async {
        let now = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let (n, p) = (now.clone(), peak.clone());
        let app = Router::new().route(
            "/api/v1/query",
            get(move || {
                let (n, p) = (n.clone(), p.clone());
                async move {
                    let current = n.fetch_add(1, Ordering::SeqCst) + 1;
                    p.fetch_max(current, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    n.fetch_sub(1, Ordering::SeqCst);
                    r#"{"status":"success","data":{"resultType":"scalar","result":[1,"1"]}}"#
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let client = PrometheusClient::new();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..25 {
            let (client, url) = (client.clone(), url.clone());
            tasks.spawn(async move { client.instant(&url, "1").await });
        }
        while let Some(result) = tasks.join_next().await {
            assert_eq!(result.unwrap(), Ok(QueryResult::Scalar(1.0)));
        }
        assert_eq!(
            peak.load(Ordering::SeqCst),
            policies::gates::prometheus::MAX_IN_FLIGHT_PER_SERVER
        );
    })
    .await
    .unwrap();
}

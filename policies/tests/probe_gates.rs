//! `Probe::evaluate` and `Probe::sample_baselines` against fake API servers on loopback: the
//! standard Kubernetes gates pass, fail and are inconclusive; restart growth against the
//! pre-merge sample; a `by (cluster)` query once per ring; the per-cluster request budget and
//! the bound on clusters in flight.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use integration::kube::FakeCluster;
use policies::probe::{Baselines, GateObservation, ProbeSettings, Targets};
use policies::soak::Outcome;
use rings::model::{GateCheck, Observe, PrometheusGate};
use serde_json::json;
use support::{MiniApi, TEST_TIMEOUT, cluster, dead_url, fast, gate, kube_gate, probe};

fn find<'a>(all: &'a [GateObservation], gate: &str, cluster: &str) -> &'a GateObservation {
    all.iter()
        .find(|o| o.gate.as_str() == gate && o.cluster.as_str() == cluster)
        .unwrap_or_else(|| panic!("no observation of {gate} on {cluster}: {all:?}"))
}

async fn healthy(fake: &FakeCluster) {
    fake.add_node("n1", true, "v1.33.1");
    fake.add_node("n2", true, "v1.33.1");
    fake.add_deployment("kube-system", "coredns", 2, 2, "coredns:v1.11.4");
    fake.add_pod("default", "web-1", None, 1);
}

#[tokio::test]
async fn standard_gates_pass_fail_and_are_inconclusive() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let tmp = tempfile::tempdir().unwrap();
        let (good, bad) = (
            FakeCluster::start().await.unwrap(),
            FakeCluster::start().await.unwrap(),
        );
        healthy(&good).await;
        healthy(&bad).await;
        let p = probe(
            tmp.path(),
            &[
                ("good", good.url()),
                ("bad", bad.url()),
                ("gone", dead_url()),
            ],
            fast(),
        );
        let clusters = [
            cluster("good", "1.33"),
            cluster("bad", "1.33"),
            cluster("gone", "1.33"),
        ];
        let clusters: Vec<_> = clusters.iter().collect();
        let gates = [
            kube_gate("nodes-ready", json!({"nodesReady": {"minRatio": 1.0}})),
            kube_gate(
                "workloads",
                json!({"workloadsAvailable": {"namespaces": ["*"]}}),
            ),
            kube_gate(
                "pods",
                json!({"podsHealthy": {"namespaces": ["*"], "maxRestartGrowth": 3}}),
            ),
        ];
        let gates: Vec<_> = gates.iter().collect();

        let baselines = p.sample_baselines(&gates, &clusters).await;
        let pods = rings::GateName::new("pods").unwrap();
        assert_eq!(baselines.get(&pods, &clusters[0].id), Some(1.0));
        assert_eq!(baselines.get(&pods, &clusters[1].id), Some(1.0));
        assert_eq!(
            baselines.get(&pods, &clusters[2].id),
            None,
            "unreachable: no sample"
        );
        assert_eq!(
            baselines.len(),
            2,
            "only podsHealthy with maxRestartGrowth is sampled"
        );

        // The store keeps baselines as JSON and reads them back.
        let stored = serde_json::to_string(&baselines).unwrap();
        assert_eq!(
            serde_json::from_str::<Baselines>(&stored).unwrap(),
            baselines
        );
        assert!(
            serde_json::from_str::<Baselines>(r#"[{"gate":"pods","cluster":"../x","value":1}]"#)
                .is_err()
        );

        bad.set_node_ready("n2", false);
        bad.add_deployment("kube-system", "coredns", 2, 1, "coredns:v1.11.4");
        bad.add_pod("default", "web-2", Some("CrashLoopBackOff"), 7);
        good.add_pod("default", "web-1", None, 3);

        let all = p.evaluate(&gates, &clusters, &baselines).await;
        assert_eq!(all.len(), 9);
        assert_eq!(p.clients(), 3, "one client per context, kept between calls");
        let order: Vec<(&str, &str)> = all
            .iter()
            .map(|o| (o.gate.as_str(), o.cluster.as_str()))
            .collect();
        assert_eq!(
            order[..3],
            [
                ("nodes-ready", "good"),
                ("nodes-ready", "bad"),
                ("nodes-ready", "gone")
            ]
        );

        for gate in ["nodes-ready", "workloads", "pods"] {
            let o = &find(&all, gate, "good").observation;
            assert_eq!(o.outcome, Outcome::Pass, "{gate}: {o:?}");
            let o = &find(&all, gate, "bad").observation;
            assert_eq!(o.outcome, Outcome::Fail, "{gate}: {o:?}");
            let o = &find(&all, gate, "gone").observation;
            assert_eq!(o.outcome, Outcome::Inconclusive, "{gate}: {o:?}");
            assert!(o.observed.contains("Connection refused"), "{o:?}");
        }
        assert_eq!(
            find(&all, "nodes-ready", "bad").observation.observed,
            "1/2 Ready (not ready: n2)"
        );
        assert!(
            find(&all, "pods", "bad")
                .observation
                .observed
                .contains("default/web-2 CrashLoopBackOff")
        );

        // Restarts grew by 2 of 3 allowed on `good`; then by 5.
        assert_eq!(find(&all, "pods", "good").observation.value, Some(3.0));
        good.add_pod("default", "web-1", None, 6);
        let all = p.evaluate(&gates, &clusters, &baselines).await;
        let o = &find(&all, "pods", "good").observation;
        assert_eq!(
            (o.outcome, o.observed.as_str()),
            (Outcome::Fail, "restarts grew by 5 (max 3)")
        );

        // Without the pre-merge sample the growth cannot be judged.
        let all = p.evaluate(&gates, &clusters, &Baselines::default()).await;
        let o = &find(&all, "pods", "good").observation;
        assert_eq!(o.outcome, Outcome::Inconclusive, "{o:?}");
        assert!(
            o.observed
                .contains("no restart count from before the merge"),
            "{o:?}"
        );

        // A cluster whose context is not in the kubeconfig is inconclusive too.
        let stranger = cluster("stranger", "1.33");
        let all = p.evaluate(&gates[..1], &[&stranger], &baselines).await;
        let o = &all[0].observation;
        assert_eq!(o.outcome, Outcome::Inconclusive);
        assert!(o.observed.contains("no context `stranger`"), "{o:?}");

        // A removedApis gate outside a preflight cannot be judged.
        let removed = kube_gate("removed-apis", json!({"removedApis": {}}));
        let all = p.evaluate(&[&removed], &clusters[..1], &baselines).await;
        assert_eq!(all[0].observation.outcome, Outcome::Inconclusive);
    })
    .await
    .unwrap();
}

fn prometheus_gate(
    name: &str,
    url: &str,
    query: &str,
    max: Option<f64>,
    baseline: bool,
) -> rings::model::Gate {
    gate(
        name,
        GateCheck::Prometheus(PrometheusGate {
            url: url.into(),
            query: query.into(),
            min: None,
            max,
            baseline: baseline.then(|| "preUpgrade".to_owned()),
            max_increase: baseline.then_some(0.01),
            max_ratio: None,
        }),
    )
}

#[tokio::test]
async fn a_by_cluster_query_runs_once_per_ring() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let tmp = tempfile::tempdir().unwrap();
        // A scripted Prometheus HTTP API (the real one is exercised in gates_prometheus.rs):
        // what matters here is how many queries the probe sends.
        let prom = MiniApi::default();
        prom.json(
            "/api/v1/query",
            json!({"status": "success", "data": {"resultType": "vector", "result": [
                {"metric": {"cluster": "c1"}, "value": [1.0, "0.004"]},
                {"metric": {"cluster": "c2"}, "value": [1.0, "0.2"]}]}}),
        );
        let url = prom.serve().await;
        let p = probe(tmp.path(), &[], fast());
        let clusters = [
            cluster("c1", "1.33"),
            cluster("c2", "1.33"),
            cluster("c3", "1.33"),
        ];
        let clusters: Vec<_> = clusters.iter().collect();
        let by_cluster = prometheus_gate(
            "error-ratio",
            &url,
            r#"sum by (cluster) (rate(errors{cluster=~"{clusterId}"}[5m]))"#,
            Some(0.01),
            false,
        );
        let all = p
            .evaluate(&[&by_cluster], &clusters, &Baselines::default())
            .await;
        assert_eq!(
            prom.requests.load(Ordering::SeqCst),
            1,
            "one query for the ring"
        );
        let outcomes: Vec<Outcome> = all.iter().map(|o| o.observation.outcome).collect();
        assert_eq!(
            outcomes,
            [Outcome::Pass, Outcome::Fail, Outcome::Inconclusive]
        );

        // A per-cluster query runs once per cluster (here every answer has two series: no
        // single value, inconclusive).
        let per_cluster = prometheus_gate(
            "per-cluster",
            &url,
            r#"errors{cluster="{clusterId}"}"#,
            Some(0.01),
            false,
        );
        let all = p
            .evaluate(&[&per_cluster], &clusters, &Baselines::default())
            .await;
        assert_eq!(prom.requests.load(Ordering::SeqCst), 4);
        assert!(
            all.iter()
                .all(|o| o.observation.outcome == Outcome::Inconclusive),
            "{all:?}"
        );

        // Baselines: one query for the ring, a value per cluster that has data.
        let baseline = prometheus_gate(
            "error-ratio-vs-before",
            &url,
            r#"sum by (cluster) (rate(errors{cluster=~"{clusterId}"}[5m]))"#,
            None,
            true,
        );
        let baselines = p
            .sample_baselines(&[&baseline, &by_cluster], &clusters)
            .await;
        assert_eq!(prom.requests.load(Ordering::SeqCst), 5);
        let name = &baseline.name;
        assert_eq!(baselines.get(name, &clusters[0].id), Some(0.004));
        assert_eq!(baselines.get(name, &clusters[1].id), Some(0.2));
        assert_eq!(baselines.get(name, &clusters[2].id), None);
        let all = p.evaluate(&[&baseline], &clusters, &baselines).await;
        let outcomes: Vec<Outcome> = all.iter().map(|o| o.observation.outcome).collect();
        assert_eq!(
            outcomes,
            [Outcome::Pass, Outcome::Pass, Outcome::Inconclusive],
            "{all:?}"
        );
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn every_request_to_a_cluster_takes_a_token() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let tmp = tempfile::tempdir().unwrap();
        let api = MiniApi::default();
        api.cluster_basics("v1.33.1", &[("n1", "v1.33.1")]);
        let url = api.serve().await;
        let c = cluster("c1", "1.33");
        let gates: Vec<_> = (0..8)
            .map(|i| {
                kube_gate(
                    &format!("ready-{i}"),
                    json!({"nodesReady": {"minRatio": 1.0}}),
                )
            })
            .collect();
        let gates: Vec<_> = gates.iter().collect();
        // 8 requests, burst 2 at 10 per second: the last six wait 0.1 s each, 0.6 s at least.
        let limited = probe(
            tmp.path(),
            &[("c1", url.clone())],
            ProbeSettings {
                qps: 10.0,
                burst: 2,
                ..ProbeSettings::default()
            },
        );
        let start = Instant::now();
        let all = limited.evaluate(&gates, &[&c], &Baselines::default()).await;
        let took = start.elapsed();
        assert!(
            all.iter().all(|o| o.observation.outcome == Outcome::Pass),
            "{all:?}"
        );
        assert_eq!(api.requests.load(Ordering::SeqCst), 8);
        assert!(
            took >= Duration::from_millis(590),
            "8 requests took only {took:?}"
        );

        // The bucket belongs to the cluster, across calls: it is empty now.
        let start = Instant::now();
        limited
            .evaluate(&gates[..1], &[&c], &Baselines::default())
            .await;
        assert!(
            start.elapsed() >= Duration::from_millis(90),
            "{:?}",
            start.elapsed()
        );
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn never_more_clusters_in_flight_than_allowed() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let tmp = tempfile::tempdir().unwrap();
        let api = MiniApi::default();
        api.cluster_basics("v1.33.1", &[("n1", "v1.33.1")]);
        api.set_delay(Duration::from_millis(40));
        let url = api.serve().await;
        let names: Vec<String> = (0..12).map(|i| format!("c{i}")).collect();
        let contexts: Vec<(&str, String)> =
            names.iter().map(|n| (n.as_str(), url.clone())).collect();
        let p = probe(
            tmp.path(),
            &contexts,
            ProbeSettings {
                max_clusters_in_flight: 3,
                ..ProbeSettings::default()
            },
        );
        let clusters: Vec<_> = names.iter().map(|n| cluster(n, "1.33")).collect();
        let refs: Vec<_> = clusters.iter().collect();
        let ready = kube_gate("nodes-ready", json!({"nodesReady": {"minRatio": 1.0}}));

        // An evaluation, convergence checks and preflights at once, from clones of the probe:
        // the limit is shared.
        let mut tasks = tokio::task::JoinSet::new();
        for c in &clusters[..4] {
            let (p, c) = (p.clone(), c.clone());
            tasks.spawn(async move {
                let t = Targets {
                    kubernetes: Some(rings::Version::parse("1.33").unwrap()),
                    ..Targets::default()
                };
                assert!(p.convergence(&c, &t, &Observe::default()).await.converged);
                assert!(p.preflight(&c, &t, &[]).await.ok());
            });
        }
        let all = p.evaluate(&[&ready], &refs, &Baselines::default()).await;
        while let Some(done) = tasks.join_next().await {
            done.unwrap();
        }
        assert!(
            all.iter().all(|o| o.observation.outcome == Outcome::Pass),
            "{all:?}"
        );
        let max = api.max_in_flight.load(Ordering::SeqCst);
        assert!(max <= 3, "{max} clusters were in flight at once");
        assert_eq!(max, 3, "clusters are worked on in parallel");
    })
    .await
    .unwrap();
}

/// The daemon spawns these calls onto its runtime: their futures must be `Send`.
#[test]
fn probe_futures_can_be_spawned() {
    fn spawnable<T: Send + 'static>(_: &T) {}
    fn sendable<T: Send>(_: &T) {}
    let p = policies::probe::Probe::new(fast());
    spawnable(&p);
    let c = cluster("c1", "1.33");
    let g = kube_gate("nodes-ready", json!({"nodesReady": {"minRatio": 1.0}}));
    let (t, o, b) = (Targets::default(), Observe::default(), Baselines::default());
    sendable(&p.evaluate(&[&g], &[&c], &b));
    sendable(&p.sample_baselines(&[&g], &[&c]));
    sendable(&p.convergence(&c, &t, &o));
    sendable(&p.preflight(&c, &t, &[&g]));
}

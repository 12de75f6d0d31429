//! Benchmark (issue 6): evaluate the standard gate set (nodesReady, workloadsAvailable,
//! podsHealthy) across 1,000 fake clusters through `Probe::evaluate`, with the default budgets
//! (5 QPS / burst 10 per cluster, 16 clusters in flight, 10 s per request). Target: the whole
//! evaluation in ≤ 3 s, with bounded memory.
//!
//! Each cluster is an `integration::kube::FakeCluster` on loopback (3 nodes, 4 workloads,
//! 6 pods), all in this process, reached through one kubeconfig of 1,000 contexts. The first
//! evaluation is *cold* (the probe reads the kubeconfig and makes a client per context), the
//! next ones *warm* (what the daemon does every gate interval; the benchmark waits for the
//! per-cluster buckets to refill between runs, as a gate interval would). Prints wall times,
//! the ratio to the target and the peak RSS (`VmHWM`). Stops by itself.
//!
//! `cargo bench -p policies --bench gates_fleet`; `RINGMASTER_BENCH_CLUSTERS=N` changes the
//! fleet size.

use std::time::{Duration, Instant};

use chrono::TimeDelta;
use integration::kube::{FakeCluster, write_kubeconfig};
use policies::probe::{Baselines, Probe, ProbeSettings};
use policies::soak::Outcome;
use rings::model::{Cluster, Gate, GateCheck, KubeGate, Provider};
use rings::{ClusterId, GateName, Version};

/// Fleet size unless `RINGMASTER_BENCH_CLUSTERS` says otherwise.
const DEFAULT_CLUSTERS: usize = 1_000;
/// The target for one whole evaluation.
const TARGET: Duration = Duration::from_secs(3);
/// Warm evaluations measured after the cold one.
const WARM_RUNS: usize = 3;
/// File descriptors per fake cluster: its listener, the server side and the client side of
/// one kept-alive connection, with room for a second connection.
const FDS_PER_CLUSTER: u64 = 5;
/// File descriptors for everything else (runtime, kubeconfig, stdio).
const FDS_SPARE: u64 = 256;
/// The whole run's deadline: the benchmark never hangs.
const DEADLINE: Duration = Duration::from_secs(600);

fn main() -> Result<(), String> {
    let wanted = std::env::var("RINGMASTER_BENCH_CLUSTERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CLUSTERS);
    let clusters = fit_fd_limit(wanted);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    runtime.block_on(async {
        tokio::time::timeout(DEADLINE, run(clusters))
            .await
            .map_err(|_| format!("the benchmark did not finish within {DEADLINE:?}"))?
    })
}

/// The number of clusters the open-files limit allows, raising the soft limit to the hard one
/// (with util-linux `prlimit`) when needed.
fn fit_fd_limit(wanted: usize) -> usize {
    let need = wanted as u64 * FDS_PER_CLUSTER + FDS_SPARE;
    let Some((soft, hard)) = nofile_limits() else {
        println!("open files limit: unknown (no /proc/self/limits); trying {wanted} clusters");
        return wanted;
    };
    if soft >= need {
        println!("open files limit: {soft} (need {need})");
        return wanted;
    }
    let raised = std::process::Command::new("prlimit")
        .arg(format!("--pid={}", std::process::id()))
        .arg(format!("--nofile={}:{hard}", need.min(hard)))
        .status()
        .is_ok_and(|s| s.success());
    let soft = nofile_limits().map_or(soft, |(s, _)| s);
    println!(
        "open files limit: {soft} (need {need}; raising with prlimit {})",
        if raised { "worked" } else { "failed" }
    );
    if soft >= need {
        wanted
    } else {
        let fit = (soft.saturating_sub(FDS_SPARE) / FDS_PER_CLUSTER) as usize;
        println!("NOTE: only {fit} clusters fit in {soft} open files; measuring {fit}");
        fit
    }
}

fn nofile_limits() -> Option<(u64, u64)> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let mut numbers = line
        .split_whitespace()
        .filter_map(|w| w.parse::<u64>().ok());
    Some((numbers.next()?, numbers.next()?))
}

/// `VmHWM` and `VmRSS` of this process, in KiB.
fn memory_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn cluster(i: usize) -> Result<Cluster, String> {
    let id = format!("bench-{i:04}");
    Ok(Cluster {
        id: ClusterId::new(&id)?,
        provider: Provider::Aws,
        service: Some("eks".into()),
        region: Some("us-east-1".into()),
        environment: Some("prod".into()),
        owner_team: None,
        criticality: None,
        labels: Default::default(),
        upgrade_ring: None,
        kube_context: id.clone(),
        kubernetes: Version::parse("1.33")?,
        addons: Default::default(),
        policies: Default::default(),
        controllers: Default::default(),
        extra: Default::default(),
        paused: None,
        upgrade_nodes: None,
        nodes: rings::model::NodeConvergence::Target,
        path: format!("clusters/{id}/cluster.yaml"),
        pos: rings::Pos::FILE,
    })
}

fn gate(name: &str, body: serde_json::Value) -> Result<Gate, String> {
    let check: KubeGate = serde_json::from_value(body).map_err(|e| e.to_string())?;
    Ok(Gate {
        name: GateName::new(name)?,
        check: GateCheck::Kube(check),
        interval: TimeDelta::minutes(1),
        failure_limit: 1,
        inconclusive_limit: 3,
    })
}

async fn run(n: usize) -> Result<(), String> {
    let started = Instant::now();
    let mut fakes = Vec::with_capacity(n);
    for i in 0..n {
        let fake = FakeCluster::start()
            .await
            .map_err(|e| format!("fake cluster {i}: {e}"))?;
        fake.set_version("v1.33.4-eks-1a2b3c");
        for node in ["node-a", "node-b", "node-c"] {
            fake.add_node(node, true, "v1.33.4-eks-1a2b3c");
        }
        fake.add_deployment("kube-system", "coredns", 2, 2, "coredns:v1.11.4");
        fake.add_deployment("default", "web", 3, 3, "web:1.0.0");
        fake.add_daemonset("kube-system", "aws-node", 3, 3, "amazon-k8s-cni:v1.19.2");
        fake.add_statefulset(
            "argocd",
            "argocd-application-controller",
            1,
            1,
            "argocd:v2.13.1",
        );
        for p in 0..6 {
            fake.add_pod("default", &format!("web-{p}"), None, 0);
        }
        fakes.push(fake);
    }
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let kubeconfig = dir.path().join("kubeconfig");
    let ids: Vec<String> = (0..n).map(|i| format!("bench-{i:04}")).collect();
    let contexts: Vec<(&str, String)> = ids
        .iter()
        .zip(&fakes)
        .map(|(id, f)| (id.as_str(), f.url()))
        .collect();
    write_kubeconfig(&kubeconfig, &contexts).map_err(|e| e.to_string())?;
    let clusters: Vec<Cluster> = (0..n).map(cluster).collect::<Result<_, _>>()?;
    let refs: Vec<&Cluster> = clusters.iter().collect();
    let gates = [
        gate(
            "nodes-ready",
            serde_json::json!({"nodesReady": {"minRatio": 1.0}}),
        )?,
        gate(
            "workloads-available",
            serde_json::json!({"workloadsAvailable": {"namespaces": ["*"]}}),
        )?,
        gate(
            "pods-healthy",
            serde_json::json!({"podsHealthy": {"namespaces": ["*"]}}),
        )?,
    ];
    let gate_refs: Vec<&Gate> = gates.iter().collect();
    let settings = ProbeSettings {
        kubeconfig: Some(kubeconfig),
        ..ProbeSettings::default()
    };
    println!(
        "{n} fake clusters started in {:.2?}; probe: {} QPS / burst {} per cluster, {} clusters in flight",
        started.elapsed(),
        settings.qps,
        settings.burst,
        settings.max_clusters_in_flight
    );
    let (_, rss_fleet) = memory_kib();
    let refill = Duration::from_secs_f64(f64::from(settings.burst) / settings.qps);
    let probe = Probe::new(settings);
    let requests_before: usize = fakes.iter().map(FakeCluster::requests).sum();

    let mut times = Vec::new();
    for run in 0..=WARM_RUNS {
        if run > 0 {
            // The daemon evaluates once per gate interval (1 min by default), by when every
            // cluster's bucket is full again; back to back, the third run would measure the
            // rate limit instead (5 requests per cluster per run, burst 10 at 5 QPS).
            tokio::time::sleep(refill).await;
        }
        let start = Instant::now();
        let observed = probe
            .evaluate(&gate_refs, &refs, &Baselines::default())
            .await;
        let took = start.elapsed();
        let passed = observed
            .iter()
            .filter(|o| o.observation.outcome == Outcome::Pass)
            .count();
        if passed != n * gates.len() {
            let other = observed
                .iter()
                .find(|o| o.observation.outcome != Outcome::Pass);
            return Err(format!(
                "{passed} of {} observations passed; e.g. {other:?}",
                n * gates.len()
            ));
        }
        let label = if run == 0 { "cold" } else { "warm" };
        println!(
            "evaluation {run} ({label}): {:>8.3} s  ({} observations, {:.2}× the {} s target)",
            took.as_secs_f64(),
            observed.len(),
            took.as_secs_f64() / TARGET.as_secs_f64(),
            TARGET.as_secs()
        );
        times.push(took);
    }
    let requests: usize = fakes.iter().map(FakeCluster::requests).sum::<usize>() - requests_before;
    let (hwm, rss) = memory_kib();
    let warm_best = times[1..].iter().min().copied().unwrap_or_default();
    println!(
        "requests to the API servers: {requests} ({:.1} per cluster per evaluation); clients held: {}",
        requests as f64 / (n * times.len()) as f64,
        probe.clients()
    );
    println!(
        "memory: RSS {:.1} MiB with the fleet up before probing, {:.1} MiB after; peak (VmHWM) {:.1} MiB",
        mib(rss_fleet),
        mib(rss),
        mib(hwm)
    );
    println!(
        "RESULT clusters={n} cold_s={:.3} warm_best_s={:.3} cold_ratio={:.2} warm_ratio={:.2} peak_rss_mib={:.1}",
        times[0].as_secs_f64(),
        warm_best.as_secs_f64(),
        times[0].as_secs_f64() / TARGET.as_secs_f64(),
        warm_best.as_secs_f64() / TARGET.as_secs_f64(),
        mib(hwm)
    );
    drop(fakes);
    Ok(())
}

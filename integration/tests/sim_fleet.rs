#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The simulated fleet (`integration::sim`) and the `ringmaster-sim` binary, driven through the
//! real kube client and a real git repository: clusters start at the registry's versions,
//! converge in order when the base branch changes, faults start on time, and metrics behave
//! like counters.

use std::future::Future;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use git2::{Repository, Signature};
use integration::sim::{Fault, FaultKind, SimFleet, SimOptions};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use policies::probe::{Probe, ProbeSettings, Targets};
use rings::model::{NodeConvergence, Observe};

/// Upper bound for one test.
const TEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Upper bound for a condition to become true.
const WAIT_LIMIT: Duration = Duration::from_secs(10);
/// Interval between two checks of a condition.
const CHECK_EVERY: Duration = Duration::from_millis(10);
/// Time between a registry change and convergence, in these tests.
const CONVERGE_AFTER: Duration = Duration::from_millis(100);
/// Time between convergence stages, in these tests.
const STEP_DELAY: Duration = Duration::from_millis(20);
/// Interval between two reads of the base branch, in these tests.
const POLL: Duration = Duration::from_millis(20);

const STG: &str = "aws-euc1-stg-01";
const PROD1: &str = "aws-euc1-prod-01";
const PROD2: &str = "aws-euc1-prod-02";
const STG_FILE: &str = "clusters/aws/aws-euc1-stg-01/cluster.yaml";

async fn bounded<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(TEST_TIMEOUT, f)
        .await
        .expect("test timed out")
}

/// Checks `f` every [`CHECK_EVERY`] until it returns `Some`, for at most [`WAIT_LIMIT`].
async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + WAIT_LIMIT;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(CHECK_EVERY).await;
    }
}

/// The small-team example materialized into a temp dir: (dir, ringmaster.yaml, gitops repo).
fn small_team() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let config =
        examples::materialize(&examples::small_team_dir(), &dir.path().join("setup")).unwrap();
    let gitops = dir.path().join("setup").join("gitops");
    (dir, config, gitops)
}

/// Commits `edit(old text)` as the new content of `path` on `main`, like a merged PR.
fn commit_edit(repo: &Path, path: &str, edit: impl FnOnce(&str) -> String) {
    let repo = Repository::open(repo).unwrap();
    let head = repo.head().unwrap().peel_to_commit().unwrap();
    let old_tree = head.tree().unwrap();
    let blob = old_tree
        .get_path(Path::new(path))
        .unwrap()
        .to_object(&repo)
        .unwrap();
    let old = std::str::from_utf8(blob.as_blob().unwrap().content())
        .unwrap()
        .to_owned();
    let new = edit(&old);
    assert_ne!(old, new, "the edit changes nothing");
    let blob = repo.blob(new.as_bytes()).unwrap();
    let parts: Vec<&str> = path.split('/').collect();
    let tree = repo
        .find_tree(with_blob(&repo, Some(&old_tree), &parts, blob))
        .unwrap();
    let sig = Signature::now("reviewer", "reviewer@example.com").unwrap();
    repo.commit(
        Some("refs/heads/main"),
        &sig,
        &sig,
        "Merge ring PR",
        &tree,
        &[&head],
    )
    .unwrap();
}

/// The tree `base` with the file at `parts` replaced by `blob`, built with tree builders.
fn with_blob(
    repo: &Repository,
    base: Option<&git2::Tree<'_>>,
    parts: &[&str],
    blob: git2::Oid,
) -> git2::Oid {
    let mut builder = repo.treebuilder(base).unwrap();
    match parts {
        [file] => {
            builder.insert(file, blob, 0o100_644).unwrap();
        }
        [dir, rest @ ..] => {
            let sub = base
                .and_then(|t| t.get_name(dir))
                .map(|e| repo.find_tree(e.id()).unwrap());
            let oid = with_blob(repo, sub.as_ref(), rest, blob);
            builder.insert(dir, oid, 0o040_000).unwrap();
        }
        [] => unreachable!("empty path"),
    }
    builder.write().unwrap()
}

fn options(gitops: &Path, dir: &Path, faults: &[&str]) -> SimOptions {
    SimOptions {
        converge_after: CONVERGE_AFTER,
        step_delay: STEP_DELAY,
        poll: POLL,
        faults: faults.iter().map(|f| f.parse().unwrap()).collect(),
        kubeconfig: dir.join("sim.kubeconfig"),
        ..SimOptions::new(gitops)
    }
}

async fn client(kubeconfig: &Path, context: &str) -> Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let kc = Kubeconfig::read_from(kubeconfig).unwrap();
    let options = KubeConfigOptions {
        context: Some(context.to_owned()),
        ..KubeConfigOptions::default()
    };
    let mut config = Config::from_custom_kubeconfig(kc, &options).await.unwrap();
    config.read_timeout = Some(WAIT_LIMIT);
    Client::try_from(config).unwrap()
}

fn bundles(client: &Client) -> Api<DynamicObject> {
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("policies.ringmaster.dev", "v1", "PolicyBundle"),
        "policybundles",
    );
    Api::all_with(client.clone(), &ar)
}

/// What the cluster runs, as a client sees it. Read from the last convergence stage to the
/// first, so that a later stage seen done implies the earlier ones are seen done too.
#[derive(Debug)]
struct Seen {
    policy: String,
    coredns_image: String,
    kubelets: Vec<(String, bool, String)>,
    control_plane: String,
}

async fn observe(c: &Client) -> Seen {
    let policy = bundles(c).get("baseline-nonprod").await.unwrap();
    let coredns = Api::<Deployment>::namespaced(c.clone(), "kube-system")
        .get("coredns")
        .await
        .unwrap();
    let nodes = Api::<Node>::all(c.clone())
        .list(&ListParams::default())
        .await
        .unwrap();
    let version = c.apiserver_version().await.unwrap();
    Seen {
        policy: policy.data["status"]["version"]
            .as_str()
            .unwrap()
            .to_owned(),
        coredns_image: coredns.spec.unwrap().template.spec.unwrap().containers[0]
            .image
            .clone()
            .unwrap(),
        kubelets: nodes
            .items
            .into_iter()
            .map(|n| {
                let status = n.status.unwrap();
                let ready = status
                    .conditions
                    .unwrap()
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True");
                (
                    n.metadata.name.unwrap(),
                    ready,
                    status.node_info.unwrap().kubelet_version,
                )
            })
            .collect(),
        control_plane: version.git_version,
    }
}

#[tokio::test]
async fn clusters_start_at_the_registry_versions_and_converge_in_order() {
    bounded(async {
        let (dir, _config, gitops) = small_team();
        let opts = SimOptions {
            // Long enough for the checks below to see each stage.
            step_delay: Duration::from_millis(100),
            ..options(&gitops, dir.path(), &[])
        };
        let fleet = SimFleet::start(opts).await.unwrap();
        let infos = fleet.clusters();
        let ids: Vec<&str> = infos.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(ids, [PROD1, PROD2, STG]);
        let stg = infos.iter().find(|i| i.id == STG).unwrap();
        assert_eq!(stg.kubernetes, "v1.32.4-eks-1a2b3c");
        assert_eq!(
            stg.kubelets.keys().collect::<Vec<_>>(),
            [
                "aws-euc1-stg-01-node-1",
                "aws-euc1-stg-01-node-2",
                "aws-euc1-stg-01-node-3"
            ]
        );
        assert!(stg.kubelets.values().all(|v| v == "v1.32.4-eks-1a2b3c"));
        assert_eq!(stg.addons["coredns"], "v1.11.3-eksbuild.2");
        assert_eq!(stg.policies["baseline-nonprod"], "1.8.0");
        assert!(stg.converged);
        assert!(stg.faults.is_empty());
        assert!(stg.api_url.starts_with("http://127.0.0.1:"));
        assert!(fleet.kubeconfig().is_absolute());

        let c = client(fleet.kubeconfig(), STG).await;
        let before = observe(&c).await;
        assert_eq!(before.control_plane, "v1.32.4-eks-1a2b3c");
        assert_eq!(
            before.coredns_image,
            "registry.k8s.example/coredns:v1.11.3-eksbuild.2"
        );
        assert_eq!(before.policy, "1.8.0");
        assert!(before.kubelets.iter().all(|(_, ready, _)| *ready));
        // Add-on conventions: label, container name.
        let coredns = Api::<Deployment>::namespaced(c.clone(), "kube-system")
            .list(&ListParams::default().labels("app=coredns"))
            .await
            .unwrap();
        assert_eq!(coredns.items.len(), 1);
        let pod_spec = coredns.items[0]
            .spec
            .clone()
            .unwrap()
            .template
            .spec
            .unwrap();
        assert_eq!(pod_spec.containers[0].name, "coredns");
        // Application workloads run.
        let pods = Api::<Pod>::all(c.clone())
            .list(&ListParams::default())
            .await
            .unwrap();
        assert!(pods.items.len() >= 6, "{}", pods.items.len());

        commit_edit(&gitops, STG_FILE, |t| {
            t.replace("kubernetesVersion: \"1.32\"", "kubernetesVersion: \"1.33\"")
                .replace(
                    "coredns: \"1.11.3-eksbuild.2\"",
                    "coredns: \"1.11.4-eksbuild.1\"",
                )
                .replace("baseline-nonprod: \"1.8.0\"", "baseline-nonprod: \"1.9.0\"")
        });
        let target = "v1.33.4-eks-1a2b3c";
        let new_image = "registry.k8s.example/coredns:v1.11.4-eksbuild.1";
        let mut saw_not_ready = false;
        let mut saw_partial_nodes = false;
        let started = Instant::now();
        let deadline = started + WAIT_LIMIT;
        let last = loop {
            let s = observe(&c).await;
            let upgraded = s.kubelets.iter().filter(|(_, _, k)| k == target).count();
            let cp = s.control_plane == target;
            // Stage order: control plane, nodes, add-ons, policies.
            assert!(
                upgraded == 0 || cp,
                "a node before the control plane: {s:?}"
            );
            let addon = s.coredns_image == new_image;
            assert!(!addon || upgraded == 3, "add-ons before the nodes: {s:?}");
            assert!(
                s.policy == "1.8.0" || addon,
                "policies before add-ons: {s:?}"
            );
            saw_not_ready |= s.kubelets.iter().any(|(_, ready, _)| !ready);
            saw_partial_nodes |= upgraded > 0 && upgraded < 3;
            if s.policy == "1.9.0" {
                break s;
            }
            assert!(
                Instant::now() < deadline,
                "the staging cluster did not converge: {s:?}"
            );
            tokio::time::sleep(CHECK_EVERY).await;
        };
        assert!(
            started.elapsed() >= Duration::from_millis(100),
            "converge_after was not honoured"
        );
        assert!(
            saw_not_ready,
            "no node was seen NotReady during the upgrade"
        );
        assert!(saw_partial_nodes, "nodes were not upgraded one by one");
        assert!(
            last.kubelets
                .iter()
                .all(|(_, ready, k)| *ready && k == target)
        );

        let stg = fleet.clusters().into_iter().find(|i| i.id == STG).unwrap();
        assert!(stg.converged);
        assert_eq!(stg.kubernetes, target);
        assert_eq!(stg.addons["coredns"], "v1.11.4-eksbuild.1");
        assert_eq!(stg.policies["baseline-nonprod"], "1.9.0");
        // The prod clusters did not move.
        let prod = fleet
            .clusters()
            .into_iter()
            .find(|i| i.id == PROD1)
            .unwrap();
        assert_eq!(prod.kubernetes, "v1.32.4-eks-1a2b3c");
        assert!(prod.converged);
        assert_eq!(fleet.registry_error(), None);
    })
    .await;
}

#[tokio::test]
async fn a_fault_after_a_version_starts_once_the_cluster_converged_to_it() {
    bounded(async {
        let (dir, _config, gitops) = small_team();
        let fleet = SimFleet::start(options(
            &gitops,
            dir.path(),
            &["aws-euc1-stg-01=crashloop@1.33"],
        ))
        .await
        .unwrap();
        let c = client(fleet.kubeconfig(), STG).await;
        let web = || async {
            Api::<Deployment>::namespaced(c.clone(), "default")
                .get("web")
                .await
                .unwrap()
                .status
                .unwrap()
        };
        assert_eq!(web().await.available_replicas, Some(3));
        assert!(fleet.clusters().iter().all(|i| i.faults.is_empty()));

        commit_edit(&gitops, STG_FILE, |t| {
            t.replace("kubernetesVersion: \"1.32\"", "kubernetesVersion: \"1.33\"")
        });
        eventually("the crash loop after the upgrade", || async {
            let info = fleet.clusters().into_iter().find(|i| i.id == STG).unwrap();
            // Never before the cluster has fully converged.
            assert!(
                info.faults.is_empty() || info.converged,
                "fault before convergence: {info:?}"
            );
            (info.faults == [FaultKind::Crashloop]).then_some(())
        })
        .await;
        assert_eq!(web().await.available_replicas, Some(0));
        let pod = Api::<Pod>::namespaced(c.clone(), "default")
            .get("web-0")
            .await
            .unwrap();
        let cs = &pod.status.unwrap().container_statuses.unwrap()[0];
        let waiting = cs.state.as_ref().unwrap().waiting.as_ref().unwrap();
        assert_eq!(waiting.reason.as_deref(), Some("CrashLoopBackOff"));
        assert!(cs.restart_count >= 1);
        // Only that cluster.
        let prod = fleet
            .clusters()
            .into_iter()
            .find(|i| i.id == PROD1)
            .unwrap();
        assert!(prod.faults.is_empty());

        fleet.clear_faults(STG);
        assert_eq!(web().await.available_replicas, Some(3));
        assert!(fleet.clusters().iter().all(|i| i.faults.is_empty()));
    })
    .await;
}

#[tokio::test]
async fn immediate_and_injected_faults() {
    bounded(async {
        let (dir, _config, gitops) = small_team();
        let fleet = SimFleet::start(options(
            &gitops,
            dir.path(),
            &["aws-euc1-prod-01=removed-api", "aws-euc1-prod-02=unreachable"],
        ))
        .await
        .unwrap();

        let prod1 = client(fleet.kubeconfig(), PROD1).await;
        let ar = ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("batch", "v1beta1", "CronJob"),
            "cronjobs",
        );
        let legacy = Api::<DynamicObject>::namespaced_with(prod1.clone(), "default", &ar)
            .list(&ListParams::default())
            .await
            .unwrap();
        assert_eq!(
            legacy.items[0].metadata.name.as_deref(),
            Some("legacy-cronjob")
        );
        let req = axum::http::Request::get("/metrics").body(Vec::new()).unwrap();
        let text = prod1.request_text(req).await.unwrap();
        assert!(
            text.contains(r#"apiserver_requested_deprecated_apis{group="policy",removed_release="1.25",resource="poddisruptionbudgets",subresource="",version="v1beta1"} 1"#),
            "{text}"
        );

        let prod2 = client(fleet.kubeconfig(), PROD2).await;
        assert!(prod2.apiserver_version().await.is_err());
        fleet.clear_faults(PROD2);
        prod2.apiserver_version().await.unwrap();

        let stg = client(fleet.kubeconfig(), STG).await;
        assert!(fleet.inject("aws-euc1-stg-01=errors".parse().unwrap()));
        match stg.apiserver_version().await {
            Err(kube::Error::Api(s)) => assert_eq!(s.code, 500),
            other => panic!("expected a 500, got {other:?}"),
        }
        assert!(!fleet.inject(Fault {
            cluster: "nope".into(),
            kind: FaultKind::Errors,
            after_version: None,
        }));
        fleet.clear_faults(STG);
        stg.apiserver_version().await.unwrap();

        assert!(fleet.inject("aws-euc1-stg-01=slow".parse().unwrap()));
        let started = Instant::now();
        stg.apiserver_version().await.unwrap();
        assert!(started.elapsed() >= integration::sim::SLOW_FAULT_DELAY);
        fleet.clear_faults(STG);
    })
    .await;
}

#[tokio::test]
async fn unknown_clusters_in_faults_are_refused() {
    let (dir, _config, gitops) = small_team();
    let err = SimFleet::start(options(
        &gitops,
        dir.path(),
        &["aws-euc1-canary-01=crashloop"],
    ))
    .await
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "fault `aws-euc1-canary-01=crashloop`: no cluster `aws-euc1-canary-01` in the registry (clusters: aws-euc1-prod-01, aws-euc1-prod-02, aws-euc1-stg-01)"
    );
}

/// `http_requests_total` by code from one scrape.
fn counters(text: &str) -> (u64, u64) {
    let value = |code: &str| {
        text.lines()
            .find(|l| {
                l.starts_with("http_requests_total{") && l.contains(&format!("code=\"{code}\""))
            })
            .and_then(|l| l.rsplit(' ').next())
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    (value("200"), value("500"))
}

#[tokio::test]
async fn metrics_are_counters_and_errors_rise_under_a_crash_loop() {
    bounded(async {
        let (dir, _config, gitops) = small_team();
        let fleet = SimFleet::start(options(&gitops, dir.path(), &[]))
            .await
            .unwrap();
        let info = fleet.clusters().into_iter().find(|i| i.id == STG).unwrap();
        let url = info.metrics_url.clone();
        assert!(url.ends_with("/metrics"), "{url}");

        let (status, text) = http_get(&url).await;
        assert_eq!(status, 200);
        assert!(
            text.contains(&format!("ringmaster_sim_up{{cluster=\"{STG}\"}} 1")),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "kube_node_status_ready{{cluster=\"{STG}\",node=\"{STG}-node-2\"}} 1"
            )),
            "{text}"
        );
        fleet
            .cluster(STG)
            .unwrap()
            .set_node_ready(&format!("{STG}-node-2"), false);
        let (_, text) = http_get(&url).await;
        assert!(
            text.contains(&format!("node=\"{STG}-node-2\"}} 0")),
            "{text}"
        );

        // Healthy: counters grow, about 0.1 % errors.
        let window = Duration::from_millis(500);
        let (ok0, err0) = counters(&http_get(&url).await.1);
        tokio::time::sleep(window).await;
        let (ok1, err1) = counters(&http_get(&url).await.1);
        assert!(ok1 > ok0 && err1 >= err0, "{ok0}/{err0} → {ok1}/{err1}");
        let healthy = (err1 - err0) as f64 / ((ok1 - ok0) + (err1 - err0)) as f64;
        assert!(healthy < 0.05, "healthy error ratio {healthy}");

        fleet.inject("aws-euc1-stg-01=crashloop".parse().unwrap());
        let (ok2, err2) = counters(&http_get(&url).await.1);
        assert!(ok2 >= ok1 && err2 >= err1);
        tokio::time::sleep(window).await;
        let (ok3, err3) = counters(&http_get(&url).await.1);
        assert!(ok3 >= ok2 && err3 > err2, "{ok2}/{err2} → {ok3}/{err3}");
        let crashing = (err3 - err2) as f64 / ((ok3 - ok2) + (err3 - err2)) as f64;
        assert!(crashing > 0.1, "crash-loop error ratio {crashing}");

        // Other clusters are unaffected.
        let prod = fleet
            .clusters()
            .into_iter()
            .find(|i| i.id == PROD1)
            .unwrap();
        let (_, text) = http_get(&prod.metrics_url).await;
        assert!(text.contains(&format!("cluster=\"{PROD1}\"")));
    })
    .await;
}

#[tokio::test]
async fn the_example_fleet_starts_in_each_providers_style() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        examples::materialize(&examples::fleet_dir(), &dir.path().join("setup")).unwrap();
        let gitops = dir.path().join("setup").join("gitops");
        let fleet = SimFleet::start(options(&gitops, dir.path(), &[]))
            .await
            .unwrap();
        let infos = fleet.clusters();
        assert_eq!(infos.len(), 15);
        let aks = infos
            .iter()
            .find(|i| i.id == "azr-weu-prod-canary-01")
            .unwrap();
        assert_eq!(aks.kubernetes, "v1.32.2");
        assert_eq!(aks.addons["keda"], "v2.16.0");
        let kubeconfig = Kubeconfig::read_from(fleet.kubeconfig()).unwrap();
        assert!(kubeconfig.contexts.len() >= 15);
        let c = client(fleet.kubeconfig(), "azr-weu-prod-canary-01").await;
        assert_eq!(c.apiserver_version().await.unwrap().git_version, "v1.32.2");
    })
    .await;
}

/// A bare HTTP/1.1 GET of a loopback URL: status and body.
async fn http_get(url: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").unwrap();
    let (addr, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).await.unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.to_owned())
}

// --- the binary -------------------------------------------------------------------------------

const SIM: &str = env!("CARGO_BIN_EXE_ringmaster-sim");

/// Kills the simulator when a test ends, passed or not.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn the_binary_serves_the_fleet_and_writes_a_kubeconfig() {
    bounded(async {
        let (dir, config, _gitops) = small_team();
        let kubeconfig = dir.path().join("out").join("fleet.kubeconfig");
        std::fs::create_dir_all(kubeconfig.parent().unwrap()).unwrap();
        let child = Command::new(SIM)
            .args(["--config", config.to_str().unwrap(), "--no-github"])
            .args(["--kubeconfig", kubeconfig.to_str().unwrap()])
            .args([
                "--converge-after",
                "100ms",
                "--fault",
                "aws-euc1-stg-01=errors",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut sim = Running(child);
        let stdout = sim.0.stdout.take().unwrap();
        let line = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            BufReader::new(stdout).read_line(&mut line).unwrap();
            line
        })
        .await
        .unwrap();
        let ready: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(ready["github"], serde_json::Value::Null);
        let written = PathBuf::from(ready["kubeconfig"].as_str().unwrap());
        assert!(written.is_absolute());
        assert_eq!(
            std::fs::canonicalize(&written).unwrap(),
            std::fs::canonicalize(&kubeconfig).unwrap()
        );
        let clusters = ready["clusters"].as_object().unwrap();
        assert_eq!(clusters.keys().collect::<Vec<_>>(), [PROD1, PROD2, STG]);
        let metrics_url = clusters[PROD1]["metricsUrl"].as_str().unwrap();
        let (status, text) = http_get(metrics_url).await;
        assert_eq!(status, 200);
        assert!(text.contains("ringmaster_sim_up"), "{text}");

        let prod = client(&written, PROD1).await;
        let version = prod.apiserver_version().await.unwrap();
        assert_eq!(version.git_version, "v1.32.4-eks-1a2b3c");
        let api_url = clusters[PROD1]["apiUrl"].as_str().unwrap();
        let (status, _) = http_get(&format!("{api_url}/version")).await;
        assert_eq!(status, 200);
        let stg = client(&written, STG).await;
        match stg.apiserver_version().await {
            Err(kube::Error::Api(s)) => assert_eq!(s.code, 500),
            other => panic!("expected the injected 500, got {other:?}"),
        }
        drop(sim);
    })
    .await;
}

#[test]
fn the_binary_refuses_bad_faults_and_durations() {
    let (_dir, config, _gitops) = small_team();
    let run = |extra: &[&str]| {
        let out = Command::new(SIM)
            .args(["--config", config.to_str().unwrap(), "--no-github"])
            .args(["--kubeconfig", "/nonexistent/never-written"])
            .args(extra)
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8(out.stderr).unwrap())
    };
    let (code, stderr) = run(&["--fault", "aws-euc1-canary-01=crashloop"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("aws-euc1-prod-01, aws-euc1-prod-02, aws-euc1-stg-01"),
        "{stderr}"
    );
    let (code, stderr) = run(&["--fault", "aws-euc1-stg-01=crashlop"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("did you mean `crashloop`?"), "{stderr}");
    let (code, stderr) = run(&["--converge-after", "5 parsecs"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--converge-after"), "{stderr}");
}

/// One node as a client sees it: (name, kubelet, Ready, cordoned).
type NodeSeen = (String, String, bool, bool);

async fn nodes_seen(c: &Client) -> Vec<NodeSeen> {
    Api::<Node>::all(c.clone())
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|n| {
            let cordoned = n.spec.and_then(|s| s.unschedulable).unwrap_or(false);
            let status = n.status.unwrap();
            let ready = status
                .conditions
                .unwrap()
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            let kubelet = status.node_info.unwrap().kubelet_version;
            (n.metadata.name.unwrap(), kubelet, ready, cordoned)
        })
        .collect()
}

/// Issue 15: after a control-plane upgrade the simulated nodes roll one at a time — cordoned,
/// NotReady, then Ready at the new kubelet — so the old convergence rule (kubelets within skew,
/// kept as `upgrade.nodes: skew`) says converged while a node is still out, and the soak's
/// `nodes-ready` gate would fail; the default rule waits until every node rolled.
#[tokio::test]
async fn nodes_roll_one_at_a_time_and_convergence_waits_for_the_roll() {
    bounded(async {
        let (dir, config, gitops) = small_team();
        let opts = SimOptions {
            step_delay: Duration::from_millis(100),
            ..options(&gitops, dir.path(), &[])
        };
        let fleet = SimFleet::start(opts).await.unwrap();
        let loaded = rings::load(&config).unwrap();
        let stg = loaded
            .config
            .fleet
            .clusters
            .iter()
            .find(|c| c.id.as_str() == STG)
            .unwrap()
            .clone();
        assert_eq!(stg.nodes, NodeConvergence::Target, "the default");
        let skew = rings::model::Cluster {
            nodes: NodeConvergence::Skew,
            ..stg.clone()
        };
        let probe = Probe::new(ProbeSettings {
            kubeconfig: Some(fleet.kubeconfig().to_path_buf()),
            qps: 1000.0,
            burst: 1000,
            ..ProbeSettings::default()
        });
        let targets = Targets {
            kubernetes: Some(rings::Version::parse("1.33").unwrap()),
            ..Targets::default()
        };
        let none = Observe::default();
        let c = client(fleet.kubeconfig(), STG).await;

        commit_edit(&gitops, STG_FILE, |t| {
            t.replace("kubernetesVersion: \"1.32\"", "kubernetesVersion: \"1.33\"")
        });
        let new = "v1.33.4-eks-1a2b3c";
        let mut saw_cordoned = false;
        let mut saw_not_ready = false;
        let mut skew_converged_mid_roll = None;
        let mut rolled = 0;
        let deadline = Instant::now() + WAIT_LIMIT;
        loop {
            let by_skew = probe.convergence(&skew, &targets, &none).await;
            let by_target = probe.convergence(&stg, &targets, &none).await;
            let nodes = nodes_seen(&c).await;
            let out: Vec<&NodeSeen> = nodes.iter().filter(|n| !n.2 || n.3).collect();
            assert!(out.len() <= 1, "more than one node out at once: {nodes:?}");
            saw_cordoned |= nodes.iter().any(|n| n.2 && n.3);
            saw_not_ready |= nodes.iter().any(|n| !n.2);
            let now_rolled = nodes.iter().filter(|n| n.1 == new).count();
            assert!(now_rolled >= rolled, "a node went back: {nodes:?}");
            rolled = now_rolled;
            if by_skew.converged && !by_target.converged && skew_converged_mid_roll.is_none() {
                skew_converged_mid_roll = Some(by_target.behind.clone());
            }
            if by_target.converged {
                // Read after the probe: the roll is over and stays over.
                assert!(
                    nodes.iter().all(|n| n.1 == new && n.2 && !n.3),
                    "converged before the roll ended: {nodes:?}"
                );
                break;
            }
            assert!(
                by_target.inconclusive.is_none(),
                "{:?}",
                by_target.inconclusive
            );
            assert!(
                Instant::now() < deadline,
                "never converged: {:?} / {nodes:?}",
                by_target.behind
            );
            tokio::time::sleep(CHECK_EVERY).await;
        }
        assert!(saw_cordoned, "no node was seen cordoned while Ready");
        assert!(saw_not_ready, "no node was seen NotReady");
        let behind = skew_converged_mid_roll.expect("the skew rule never ran ahead of the roll");
        assert!(
            behind.iter().any(|b| b.ends_with("nodes at 1.33")),
            "the count is shown: {behind:?}"
        );
        assert!(
            behind
                .iter()
                .any(|b| b.contains("kubelet v1.32.4-eks-1a2b3c")
                    || b.ends_with("not Ready")
                    || b.ends_with("cordoned")),
            "the node is named with why: {behind:?}"
        );
    })
    .await;
}

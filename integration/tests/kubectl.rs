#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The real `kubectl` against the fake Kubernetes API server (DESIGN §10: "`kubectl` works
//! against it"). kubectl is not a Rust dependency: when it is not installed the tests print
//! one loud line and pass, unless `RINGMASTER_REQUIRE_KUBECTL=1` (then they fail).

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use integration::kube::{FakeCluster, ResourceKind, write_kubeconfig};
use serde_json::{Value, json};

/// Upper bound for one kubectl invocation.
const KUBECTL_TIMEOUT: Duration = Duration::from_secs(30);

/// Env var that turns a missing kubectl into a failure (CI images that ship kubectl).
const REQUIRE_ENV: &str = "RINGMASTER_REQUIRE_KUBECTL";

/// The kubectl binary, if there is one on `PATH`.
fn kubectl() -> Option<String> {
    let found = Command::new("kubectl")
        .args(["version", "--client", "-o", "json"])
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return Some("kubectl".to_owned());
    }
    if std::env::var(REQUIRE_ENV).as_deref() == Ok("1") {
        panic!("kubectl is not installed but {REQUIRE_ENV}=1");
    }
    // Straight to the terminal: libtest captures `eprintln!` of passing tests.
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: kubectl not installed (set {REQUIRE_ENV}=1 to make this a failure) — the kubectl compatibility of the fake Kubernetes API server was NOT checked"
    );
    None
}

/// Whitespace-separated columns of one line of kubectl's table output.
fn columns(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

/// Runs kubectl and returns what it printed for a person.
async fn run_text(
    bin: &str,
    kubeconfig: &Path,
    cache: &Path,
    context: &str,
    args: &[&str],
) -> String {
    let out = kubectl_output(bin, kubeconfig, cache, context, args).await;
    String::from_utf8(out).unwrap()
}

/// Runs kubectl with a private cache dir (never `~/.kube/cache`), bounded in time, and parses
/// its JSON output.
async fn run(bin: &str, kubeconfig: &Path, cache: &Path, context: &str, args: &[&str]) -> Value {
    let out = kubectl_output(bin, kubeconfig, cache, context, args).await;
    let stdout = String::from_utf8_lossy(&out);
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("kubectl {args:?}: not JSON ({e}): {stdout}"))
}

/// Runs kubectl, bounded in time; fails the test unless it succeeds. Its stdout.
async fn kubectl_output(
    bin: &str,
    kubeconfig: &Path,
    cache: &Path,
    context: &str,
    args: &[&str],
) -> Vec<u8> {
    let mut cmd = tokio::process::Command::new(bin);
    cmd.arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--cache-dir")
        .arg(cache)
        .args(["--context", context, "--request-timeout", "10s"])
        .args(args)
        .kill_on_drop(true);
    let out = tokio::time::timeout(KUBECTL_TIMEOUT, cmd.output())
        .await
        .expect("kubectl timed out")
        .expect("run kubectl");
    assert!(
        out.status.success(),
        "kubectl {args:?} failed: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    out.stdout
}

async fn seeded() -> FakeCluster {
    let c = FakeCluster::start().await.unwrap();
    c.set_version("v1.33.4-eks-1a2b3c");
    c.add_node("ip-10-0-1-1", true, "v1.33.4-eks-1a2b3c");
    c.add_node("ip-10-0-1-2", false, "v1.32.9-eks-1a2b3c");
    c.add_deployment("kube-system", "coredns", 2, 2, "coredns:v1.11.3");
    c.add_daemonset("kube-system", "kube-proxy", 2, 2, "kube-proxy:v1.33.4");
    c.add_statefulset("monitoring", "prometheus", 1, 1, "prom/prometheus:v3.0.0");
    c.add_pod("default", "web-1", None, 0);
    c.register_kind(
        ResourceKind::cluster_scoped(
            "policies.ringmaster.dev",
            "v1",
            "PolicyBundle",
            "policybundles",
        )
        .with_short_names(&["pb"])
        .with_column("Version", ".status.version"),
    );
    c.upsert_object(json!({
        "apiVersion": "policies.ringmaster.dev/v1",
        "kind": "PolicyBundle",
        "metadata": {"name": "restricted-prod"},
        "status": {"version": "2.3.1"},
    }))
    .unwrap();
    c
}

fn names(list: &Value, kind: &str) -> Vec<String> {
    let mut names: Vec<String> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|i| i["kind"] == kind)
        .map(|i| i["metadata"]["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn kubectl_gets_builtin_and_custom_resources_and_the_version() {
    let Some(bin) = kubectl() else { return };
    let cluster = seeded().await;
    let other = FakeCluster::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let cache = dir.path().join("cache");
    write_kubeconfig(
        &kubeconfig,
        &[("other", other.url()), ("aws-use1-prod-01", cluster.url())],
    )
    .unwrap();
    let run =
        |args: &'static [&'static str]| run(&bin, &kubeconfig, &cache, "aws-use1-prod-01", args);

    let all = run(&[
        "get",
        "nodes,deployments,daemonsets,statefulsets,pods",
        "-A",
        "-o",
        "json",
    ])
    .await;
    assert_eq!(all["kind"], "List");
    assert_eq!(names(&all, "Node"), ["ip-10-0-1-1", "ip-10-0-1-2"]);
    assert_eq!(names(&all, "Deployment"), ["coredns"]);
    assert_eq!(names(&all, "DaemonSet"), ["kube-proxy"]);
    assert_eq!(names(&all, "StatefulSet"), ["prometheus"]);
    assert_eq!(names(&all, "Pod"), ["web-1"]);
    let node = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["metadata"]["name"] == "ip-10-0-1-2")
        .unwrap();
    assert_eq!(node["apiVersion"], "v1");
    assert_eq!(
        node["status"]["nodeInfo"]["kubeletVersion"],
        "v1.32.9-eks-1a2b3c"
    );

    let version = run(&["version", "-o", "json"]).await;
    assert_eq!(version["serverVersion"]["gitVersion"], "v1.33.4-eks-1a2b3c");
    assert_eq!(version["serverVersion"]["minor"], "33");

    let bundles = run(&[
        "get",
        "policybundles.policies.ringmaster.dev",
        "-A",
        "-o",
        "json",
    ])
    .await;
    assert_eq!(names(&bundles, "PolicyBundle"), ["restricted-prod"]);
    assert_eq!(bundles["items"][0]["status"]["version"], "2.3.1");
    assert_eq!(
        bundles["items"][0]["apiVersion"],
        "policies.ringmaster.dev/v1"
    );

    // The short name comes from discovery; a label selector is applied by the server.
    let short = run(&["get", "pb", "-o", "json"]).await;
    assert_eq!(names(&short, "PolicyBundle"), ["restricted-prod"]);
    let selected = run(&[
        "get",
        "deployments",
        "-A",
        "-l",
        "app=nothing",
        "-o",
        "json",
    ])
    .await;
    assert!(selected["items"].as_array().unwrap().is_empty());

    // Printing for a person: the server-side Table with kubectl's usual columns.
    let text = run_text(
        &bin,
        &kubeconfig,
        &cache,
        "aws-use1-prod-01",
        &["get", "nodes"],
    )
    .await;
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        columns(lines[0]),
        ["NAME", "STATUS", "ROLES", "AGE", "VERSION"],
        "{text}"
    );
    let not_ready = lines.iter().find(|l| l.starts_with("ip-10-0-1-2")).unwrap();
    assert_eq!(columns(not_ready)[1], "NotReady", "{text}");
    assert_eq!(columns(not_ready)[4], "v1.32.9-eks-1a2b3c", "{text}");
    cluster.set_crashloop(true);
    let text = run_text(
        &bin,
        &kubeconfig,
        &cache,
        "aws-use1-prod-01",
        &["get", "pods", "-A"],
    )
    .await;
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        columns(lines[0]),
        ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE"],
        "{text}"
    );
    let web = columns(lines[1]);
    assert_eq!(
        &web[..4],
        ["default", "web-1", "0/1", "CrashLoopBackOff"],
        "{text}"
    );
    cluster.set_crashloop(false);
    let text = run_text(
        &bin,
        &kubeconfig,
        &cache,
        "aws-use1-prod-01",
        &["get", "deploy", "-n", "kube-system"],
    )
    .await;
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        columns(lines[0]),
        ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
        "{text}"
    );
    assert_eq!(
        &columns(lines[1])[..4],
        ["coredns", "2/2", "2", "2"],
        "{text}"
    );
    let text = run_text(
        &bin,
        &kubeconfig,
        &cache,
        "aws-use1-prod-01",
        &["get", "pb"],
    )
    .await;
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(columns(lines[0]), ["NAME", "VERSION", "AGE"], "{text}");
    assert_eq!(
        &columns(lines[1])[..2],
        ["restricted-prod", "2.3.1"],
        "{text}"
    );

    // The removed-API fault's objects are visible to kubectl under their old versions.
    cluster.set_removed_api(true);
    let legacy = run(&[
        "get",
        "cronjobs.v1beta1.batch,poddisruptionbudgets.v1beta1.policy",
        "-A",
        "-o",
        "json",
    ])
    .await;
    assert_eq!(names(&legacy, "CronJob"), ["legacy-cronjob"]);
    assert_eq!(names(&legacy, "PodDisruptionBudget"), ["legacy-pdb"]);

    // kubectl discovered everything through aggregated discovery (two requests), asked for
    // no per-group-version resource list, and every request succeeded.
    let log = cluster.request_log();
    let aggregated = log
        .iter()
        .filter(|r| r.path == "/apis" || r.path == "/api")
        .all(|r| {
            r.accept
                .as_deref()
                .is_some_and(|a| a.contains("as=APIGroupDiscoveryList"))
        });
    assert!(aggregated, "{log:#?}");
    assert!(
        !log.iter()
            .any(|r| r.path == "/apis/apps/v1" || r.path == "/api/v1"),
        "legacy discovery used: {log:#?}"
    );
    let failed: Vec<_> = log.iter().filter(|r| r.status != 200).collect();
    assert!(failed.is_empty(), "{failed:#?}");
}

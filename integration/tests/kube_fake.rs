#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The fake Kubernetes API server, driven by the real `kube` client through a kubeconfig.

use std::future::Future;
use std::time::Duration;

use integration::kube::{FakeCluster, write_kubeconfig};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::ListParams;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::discovery::Discovery;
use kube::{Api, Client, Config};

const LIMIT: Duration = Duration::from_secs(10);

async fn bounded<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(LIMIT, f).await.expect("timed out")
}

async fn connect(path: &std::path::Path, context: &str) -> Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let kubeconfig = Kubeconfig::read_from(path).expect("read kubeconfig");
    let options = KubeConfigOptions {
        context: Some(context.to_owned()),
        ..Default::default()
    };
    let config = Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .expect("config");
    Client::try_from(config).expect("client")
}

async fn seeded() -> FakeCluster {
    let cluster = FakeCluster::start().await.expect("start");
    cluster.set_version("v1.32.4-eks-1a2b3c");
    cluster.add_node("node-a", true, "v1.32.4-eks-1a2b3c");
    cluster.add_node("node-b", true, "v1.31.9-eks-1a2b3c");
    cluster.set_node_ready("node-b", false);
    cluster.add_deployment(
        "kube-system",
        "coredns",
        2,
        1,
        "registry.k8s.io/coredns/coredns:v1.11.3",
    );
    cluster.add_deployment(
        "kube-system",
        "metrics-server",
        1,
        1,
        "metrics-server:v0.7.2",
    );
    cluster.add_daemonset("kube-system", "kube-proxy", 2, 2, "kube-proxy:v1.32.4");
    cluster.add_statefulset("monitoring", "prometheus", 1, 1, "prom/prometheus:v3.0.0");
    cluster.add_pod("kube-system", "coredns-abc", Some("CrashLoopBackOff"), 7);
    cluster.add_pod("default", "web-1", None, 0);
    cluster
}

#[tokio::test]
async fn real_kube_client_reads_the_fake_cluster() {
    let prod = seeded().await;
    let staging = FakeCluster::start().await.expect("start staging");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("kubeconfig");
    write_kubeconfig(&path, &[("prod", prod.url()), ("staging", staging.url())]).expect("write");
    let client = connect(&path, "prod").await;

    let info = bounded(client.apiserver_version()).await.expect("version");
    assert_eq!(info.git_version, "v1.32.4-eks-1a2b3c");
    assert_eq!((info.major.as_str(), info.minor.as_str()), ("1", "32"));

    let nodes = bounded(Api::<Node>::all(client.clone()).list(&ListParams::default()))
        .await
        .expect("nodes");
    let summary: Vec<(String, bool, String)> = nodes
        .items
        .iter()
        .map(|n| {
            let status = n.status.as_ref().expect("status");
            let ready = status
                .conditions
                .as_ref()
                .expect("conditions")
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            let kubelet = status
                .node_info
                .as_ref()
                .expect("nodeInfo")
                .kubelet_version
                .clone();
            (n.metadata.name.clone().expect("name"), ready, kubelet)
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("node-a".into(), true, "v1.32.4-eks-1a2b3c".into()),
            ("node-b".into(), false, "v1.31.9-eks-1a2b3c".into()),
        ]
    );

    let deployments = Api::<Deployment>::namespaced(client.clone(), "kube-system");
    let coredns = bounded(deployments.list(&ListParams::default().labels("app=coredns")))
        .await
        .expect("deployments");
    assert_eq!(coredns.items.len(), 1);
    let d = &coredns.items[0];
    let status = d.status.as_ref().expect("status");
    assert_eq!(
        (status.replicas, status.available_replicas),
        (Some(2), Some(1))
    );
    let image = d
        .spec
        .as_ref()
        .expect("spec")
        .template
        .spec
        .as_ref()
        .expect("pod spec")
        .containers[0]
        .image
        .clone();
    assert_eq!(
        image.as_deref(),
        Some("registry.k8s.io/coredns/coredns:v1.11.3")
    );
    let others = bounded(deployments.list(&ListParams::default().labels("app!=coredns,app")))
        .await
        .expect("deployments");
    assert_eq!(others.items.len(), 1);
    assert_eq!(
        others.items[0].metadata.name.as_deref(),
        Some("metrics-server")
    );

    let pods = bounded(Api::<Pod>::all(client.clone()).list(&ListParams::default()))
        .await
        .expect("pods");
    assert_eq!(pods.items.len(), 2);
    let crashing = pods
        .items
        .iter()
        .find(|p| p.metadata.name.as_deref() == Some("coredns-abc"))
        .expect("coredns pod");
    let cs = &crashing
        .status
        .as_ref()
        .expect("status")
        .container_statuses
        .as_ref()
        .expect("cs")[0];
    assert_eq!(cs.restart_count, 7);
    let waiting = cs
        .state
        .as_ref()
        .and_then(|s| s.waiting.as_ref())
        .expect("waiting");
    assert_eq!(waiting.reason.as_deref(), Some("CrashLoopBackOff"));
    let default_pods =
        bounded(Api::<Pod>::namespaced(client.clone(), "default").list(&ListParams::default()))
            .await
            .expect("pods");
    assert_eq!(default_pods.items.len(), 1);

    let discovery = bounded(Discovery::new(client.clone()).run())
        .await
        .expect("discovery");
    let apps = discovery.get("apps").expect("apps group");
    assert!(
        apps.recommended_resources()
            .iter()
            .any(|(ar, _)| ar.kind == "Deployment" && ar.version == "v1")
    );
    assert!(
        discovery
            .get("")
            .expect("core")
            .recommended_kind("Node")
            .is_some()
    );

    let missing = bounded(Api::<Node>::all(client.clone()).get("node-z")).await;
    match missing {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 404),
        other => panic!("expected a 404, got {other:?}"),
    }

    // The second context reaches the second cluster.
    let staging_client = connect(&path, "staging").await;
    let none = bounded(Api::<Node>::all(staging_client).list(&ListParams::default()))
        .await
        .expect("staging nodes");
    assert!(none.items.is_empty());
    assert!(staging.requests() >= 1);

    prod.set_unreachable(true);
    let down = bounded(client.apiserver_version()).await;
    assert!(down.is_err(), "unreachable cluster answered: {down:?}");
    prod.set_unreachable(false);
    bounded(client.apiserver_version()).await.expect("back up");
    assert!(prod.requests() >= 10);
}

#[tokio::test]
async fn raw_json_has_the_kubectl_shape() {
    let cluster = seeded().await;
    let addr = cluster.url().trim_start_matches("http://").to_owned();
    let get = |path: &str| http_get(addr.clone(), path.to_owned());

    let (code, list) = bounded(get("/apis/apps/v1/namespaces/kube-system/daemonsets")).await;
    assert_eq!(code, 200);
    assert_eq!(list["kind"], "DaemonSetList");
    assert_eq!(list["apiVersion"], "apps/v1");
    assert!(list["metadata"]["resourceVersion"].is_string());
    let items = list["items"].as_array().expect("items");
    assert_eq!(items.len(), 1);
    assert!(items[0].get("kind").is_none());
    assert_eq!(items[0]["status"]["numberAvailable"], 2);

    let (_, sts) = bounded(get(
        "/apis/apps/v1/statefulsets?labelSelector=app%3Dprometheus",
    ))
    .await;
    assert_eq!(sts["kind"], "StatefulSetList");
    assert_eq!(sts["items"][0]["status"]["readyReplicas"], 1);

    let (_, node) = bounded(get("/api/v1/nodes/node-a")).await;
    assert_eq!(
        (node["kind"].as_str(), node["apiVersion"].as_str()),
        (Some("Node"), Some("v1"))
    );

    let (code, missing) = bounded(get("/apis/batch/v1/jobs")).await;
    assert_eq!(code, 404);
    assert_eq!(missing["kind"], "Status");
    assert_eq!(missing["status"], "Failure");
    assert_eq!(missing["reason"], "NotFound");
    assert_eq!(missing["code"], 404);

    cluster.set_unreachable(true);
    let refused = bounded(raw_get(addr.clone(), "/version".to_owned())).await;
    assert!(
        !refused.starts_with("HTTP/"),
        "unreachable cluster answered: {refused:?}"
    );
    cluster.set_unreachable(false);
    let (code, _) = bounded(get("/version")).await;
    assert_eq!(code, 200);
}

/// A bare HTTP/1.1 GET, as `kubectl get --raw` would send it: status code and JSON body.
async fn http_get(addr: String, path: String) -> (u16, serde_json::Value) {
    let raw = raw_get(addr, path).await;
    let (head, body) = raw.split_once("\r\n\r\n").expect("headers");
    let code = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status line");
    (code, serde_json::from_str(body).expect("json body"))
}

/// The raw response, or what was read before a reset.
async fn raw_get(addr: String, path: String) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
    );
    // The server may reset the connection before the request is written.
    let _ = stream.write_all(request.as_bytes()).await;
    let mut raw = String::new();
    let _ = stream.read_to_string(&mut raw).await;
    raw
}

#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The fake Kubernetes API server, driven by the real `kube` client through a kubeconfig.

use std::future::Future;
use std::time::Duration;

use integration::kube::{FakeCluster, ResourceKind, write_kubeconfig};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::discovery::{Discovery, Scope};
use kube::{Api, Client, Config};
use serde_json::json;

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

const BUNDLES: &str = "policies.ringmaster.dev";

fn bundle_kind() -> ResourceKind {
    ResourceKind::cluster_scoped(BUNDLES, "v1", "PolicyBundle", "policybundles")
}

fn app_kind() -> ResourceKind {
    ResourceKind::namespaced("argoproj.io", "v1alpha1", "Application", "applications")
}

/// A fake with one cluster-scoped and one namespaced custom kind, three objects.
async fn with_custom_resources() -> FakeCluster {
    let cluster = seeded().await;
    cluster.register_kind(bundle_kind());
    cluster.register_kind(app_kind());
    cluster
        .upsert_object(json!({
            "apiVersion": "policies.ringmaster.dev/v1",
            "kind": "PolicyBundle",
            "metadata": {"name": "restricted-prod", "labels": {"tier": "prod"}},
            "status": {"version": "2.3.1"},
        }))
        .unwrap();
    cluster
        .upsert_object(json!({
            "apiVersion": "policies.ringmaster.dev/v1",
            "kind": "PolicyBundle",
            "metadata": {"name": "baseline-nonprod"},
            "status": {"version": "1.8.0"},
        }))
        .unwrap();
    cluster
        .upsert_object(json!({
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Application",
            "metadata": {"name": "checkout", "namespace": "argocd", "labels": {"team": "checkout"}},
            "status": {"sync": {"status": "Synced"}, "health": {"status": "Healthy"}},
        }))
        .unwrap();
    cluster
}

async fn client_for(cluster: &FakeCluster) -> (Client, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("kubeconfig");
    write_kubeconfig(&path, &[("c", cluster.url())]).expect("write");
    (connect(&path, "c").await, dir)
}

fn names(objects: &[DynamicObject]) -> Vec<String> {
    let mut names: Vec<String> = objects
        .iter()
        .map(|o| o.metadata.name.clone().expect("name"))
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn custom_resources_through_discovery_and_the_dynamic_api() {
    let cluster = with_custom_resources().await;
    let (client, _dir) = client_for(&cluster).await;

    for aggregated in [false, true] {
        let discovery = Discovery::new(client.clone());
        let discovery = if aggregated {
            bounded(discovery.run_aggregated()).await
        } else {
            bounded(discovery.run()).await
        }
        .expect("discovery");
        let gvk = GroupVersionKind::gvk(BUNDLES, "v1", "PolicyBundle");
        let (ar, caps) = discovery
            .resolve_gvk(&gvk)
            .expect("PolicyBundle discovered");
        assert_eq!(ar.plural, "policybundles");
        assert_eq!(caps.scope, Scope::Cluster, "aggregated: {aggregated}");
        let gvk = GroupVersionKind::gvk("argoproj.io", "v1alpha1", "Application");
        let (_, caps) = discovery.resolve_gvk(&gvk).expect("Application discovered");
        assert_eq!(caps.scope, Scope::Namespaced);
        // Built-in kinds are still there, in both formats.
        let apps = discovery.get("apps").expect("apps");
        assert!(apps.recommended_kind("Deployment").is_some());
        assert!(
            discovery
                .get("")
                .expect("core")
                .recommended_kind("Pod")
                .is_some()
        );
    }

    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(BUNDLES, "v1", "PolicyBundle"),
        "policybundles",
    );
    let bundles: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
    let all = bounded(bundles.list(&ListParams::default()))
        .await
        .expect("list");
    assert_eq!(names(&all.items), ["baseline-nonprod", "restricted-prod"]);
    let prod = bounded(bundles.list(&ListParams::default().labels("tier=prod")))
        .await
        .expect("list");
    assert_eq!(names(&prod.items), ["restricted-prod"]);
    let one = bounded(bundles.get("restricted-prod")).await.expect("get");
    assert_eq!(one.data["status"]["version"], "2.3.1");
    assert!(one.metadata.resource_version.is_some());
    assert!(one.metadata.uid.is_some());

    let app_ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("argoproj.io", "v1alpha1", "Application"),
        "applications",
    );
    let everywhere: Api<DynamicObject> = Api::all_with(client.clone(), &app_ar);
    let listed = bounded(everywhere.list(&ListParams::default()))
        .await
        .expect("list");
    assert_eq!(names(&listed.items), ["checkout"]);
    let argocd: Api<DynamicObject> = Api::namespaced_with(client.clone(), "argocd", &app_ar);
    let app = bounded(argocd.get("checkout")).await.expect("get");
    assert_eq!(app.data["status"]["health"]["status"], "Healthy");
    let elsewhere: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &app_ar);
    assert!(
        bounded(elsewhere.list(&ListParams::default()))
            .await
            .expect("list")
            .items
            .is_empty()
    );

    // Replacing, removing and unregistering.
    cluster
        .upsert_object(json!({
            "apiVersion": "policies.ringmaster.dev/v1",
            "kind": "PolicyBundle",
            "metadata": {"name": "restricted-prod"},
            "status": {"version": "2.4.0"},
        }))
        .unwrap();
    let one = bounded(bundles.get("restricted-prod")).await.expect("get");
    assert_eq!(one.data["status"]["version"], "2.4.0");
    assert!(cluster.remove_object(
        "policies.ringmaster.dev/v1",
        "PolicyBundle",
        None,
        "restricted-prod"
    ));
    assert!(!cluster.remove_object(
        "policies.ringmaster.dev/v1",
        "PolicyBundle",
        None,
        "restricted-prod"
    ));
    match bounded(bundles.get("restricted-prod")).await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 404),
        other => panic!("expected a 404, got {other:?}"),
    }
    assert!(cluster.remove_object("apps/v1", "Deployment", Some("kube-system"), "coredns"));
    let deployments = Api::<Deployment>::namespaced(client.clone(), "kube-system");
    let left = bounded(deployments.list(&ListParams::default()))
        .await
        .expect("list");
    assert_eq!(left.items.len(), 1);
    assert!(cluster.unregister_kind("argoproj.io/v1alpha1", "Application"));
    match bounded(everywhere.list(&ListParams::default())).await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 404),
        other => panic!("expected a 404, got {other:?}"),
    }

    // Objects the API server would refuse are refused.
    let err = cluster
        .upsert_object(
            json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}),
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "kind Widget of example.com/v1 is not served: register it with FakeCluster::register_kind first"
    );
    let err = cluster
        .upsert_object(json!({"apiVersion": "policies.ringmaster.dev/v1", "kind": "PolicyBundle", "metadata": {"name": "x", "namespace": "default"}}))
        .unwrap_err();
    assert!(err.to_string().contains("cluster-scoped"), "{err}");
}

#[tokio::test]
async fn discovery_format_follows_the_accept_header() {
    let cluster = with_custom_resources().await;
    let addr = cluster.url().trim_start_matches("http://").to_owned();
    let v2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";

    let (content_type, apis) = bounded(get_with_accept(&addr, "/apis", v2)).await;
    assert_eq!(
        content_type,
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    );
    assert_eq!(apis["kind"], "APIGroupDiscoveryList");
    assert_eq!(apis["apiVersion"], "apidiscovery.k8s.io/v2");
    let groups: Vec<&str> = apis["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(groups, ["apps", BUNDLES, "argoproj.io"]);
    let deployments = &apis["items"][0]["versions"][0]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["resource"] == "deployments")
        .cloned()
        .unwrap();
    assert_eq!(
        deployments["responseKind"],
        json!({"group": "apps", "version": "v1", "kind": "Deployment"})
    );
    assert_eq!(deployments["scope"], "Namespaced");
    assert_eq!(deployments["singularResource"], "deployment");
    assert_eq!(deployments["shortNames"], json!(["deploy"]));
    assert_eq!(apis["items"][0]["versions"][0]["freshness"], "Current");
    assert_eq!(
        apis["items"][1]["versions"][0]["resources"][0]["scope"],
        "Cluster"
    );

    let (content_type, core) = bounded(get_with_accept(
        &addr,
        "/api",
        "application/json;as=APIGroupDiscoveryList;v=v2beta1;g=apidiscovery.k8s.io",
    ))
    .await;
    assert_eq!(
        content_type,
        "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"
    );
    assert_eq!(core["apiVersion"], "apidiscovery.k8s.io/v2beta1");
    assert_eq!(core["items"].as_array().unwrap().len(), 1);
    assert_eq!(core["items"][0]["metadata"]["name"], "");
    let core_resources: Vec<&str> = core["items"][0]["versions"][0]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["resource"].as_str().unwrap())
        .collect();
    assert_eq!(core_resources, ["namespaces", "nodes", "pods"]);

    // Without the aggregated media type: the legacy documents.
    let (content_type, legacy) = bounded(get_with_accept(&addr, "/apis", "application/json")).await;
    assert_eq!(content_type, "application/json");
    assert_eq!(legacy["kind"], "APIGroupList");
    assert_eq!(legacy["groups"][1]["name"], BUNDLES);
    assert_eq!(
        legacy["groups"][1]["preferredVersion"]["groupVersion"],
        "policies.ringmaster.dev/v1"
    );
    let (_, core) = bounded(get_with_accept(&addr, "/api", "application/json")).await;
    assert_eq!(core["kind"], "APIVersions");
    assert_eq!(core["versions"], json!(["v1"]));
    let (_, group) = bounded(get_with_accept(
        &addr,
        "/apis/argoproj.io",
        "application/json",
    ))
    .await;
    assert_eq!(group["kind"], "APIGroup");
    let (_, list) = bounded(get_with_accept(
        &addr,
        "/apis/argoproj.io/v1alpha1",
        "application/json",
    ))
    .await;
    assert_eq!(list["kind"], "APIResourceList");
    assert_eq!(list["resources"][0]["name"], "applications");
    assert_eq!(list["resources"][0]["namespaced"], true);

    // An old version next to a current one: the current one is preferred.
    cluster.register_kind(
        ResourceKind::namespaced("apps", "v1beta1", "Deployment", "deployments").removed_in("1.16"),
    );
    let (_, legacy) = bounded(get_with_accept(&addr, "/apis", "application/json")).await;
    assert_eq!(legacy["groups"][0]["name"], "apps");
    assert_eq!(legacy["groups"][0]["preferredVersion"]["version"], "v1");
    assert_eq!(legacy["groups"][0]["versions"][1]["version"], "v1beta1");
}

#[tokio::test]
async fn api_server_metrics_report_requested_deprecated_apis() {
    let cluster = seeded().await;
    let (client, _dir) = client_for(&cluster).await;
    let metrics = || async {
        let req = axum::http::Request::get("/metrics")
            .body(Vec::new())
            .unwrap();
        bounded(client.request_text(req)).await.expect("metrics")
    };
    bounded(client.apiserver_version()).await.expect("version");
    let text = metrics().await;
    assert!(
        !text.contains("apiserver_requested_deprecated_apis"),
        "{text}"
    );
    assert!(
        text.contains("apiserver_request_total{code=\"200\",component=\"apiserver\",verb=\"GET\"}"),
        "{text}"
    );
    assert!(
        text.contains("apiserver_storage_objects{resource=\"nodes\"} 2"),
        "{text}"
    );

    // Requesting a registered deprecated kind records it, as the API server does.
    cluster.register_kind(
        ResourceKind::namespaced("extensions", "v1beta1", "Ingress", "ingresses")
            .removed_in("1.22"),
    );
    cluster
        .upsert_object(json!({
            "apiVersion": "extensions/v1beta1",
            "kind": "Ingress",
            "metadata": {"name": "old-web", "namespace": "default"},
        }))
        .unwrap();
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("extensions", "v1beta1", "Ingress"),
        "ingresses",
    );
    let ingresses: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
    let listed = bounded(ingresses.list(&ListParams::default()))
        .await
        .expect("list");
    assert_eq!(names(&listed.items), ["old-web"]);
    cluster.record_deprecated_request("policy", "v1beta1", "podsecuritypolicies", "1.25");
    let text = metrics().await;
    assert!(
        text.contains(r#"apiserver_requested_deprecated_apis{group="extensions",removed_release="1.22",resource="ingresses",subresource="",version="v1beta1"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"apiserver_requested_deprecated_apis{group="policy",removed_release="1.25",resource="podsecuritypolicies",subresource="",version="v1beta1"} 1"#),
        "{text}"
    );
    assert!(
        text.contains("# TYPE apiserver_requested_deprecated_apis gauge"),
        "{text}"
    );
    cluster.clear_deprecated_requests();
    assert!(
        !metrics()
            .await
            .contains("apiserver_requested_deprecated_apis")
    );
}

#[tokio::test]
async fn fault_errors_and_slow() {
    let cluster = seeded().await;
    let (client, _dir) = client_for(&cluster).await;
    cluster.set_errors(true);
    match bounded(client.apiserver_version()).await {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 500);
            assert_eq!(status.reason, "InternalError");
        }
        other => panic!("expected a 500, got {other:?}"),
    }
    match bounded(Api::<Node>::all(client.clone()).list(&ListParams::default())).await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 500),
        other => panic!("expected a 500, got {other:?}"),
    }
    cluster.set_errors(false);
    bounded(client.apiserver_version())
        .await
        .expect("healthy again");

    let delay = Duration::from_millis(300);
    cluster.set_slow(Some(delay));
    let started = std::time::Instant::now();
    bounded(client.apiserver_version())
        .await
        .expect("slow but fine");
    assert!(started.elapsed() >= delay, "{:?}", started.elapsed());
    cluster.set_slow(None);
    let started = std::time::Instant::now();
    bounded(client.apiserver_version()).await.expect("fast");
    assert!(started.elapsed() < delay, "{:?}", started.elapsed());
}

#[tokio::test]
async fn fault_crashloop() {
    let cluster = seeded().await;
    cluster.add_deployment("default", "web", 3, 3, "web:v1");
    cluster.add_statefulset("default", "db", 1, 1, "db:v1");
    let (client, _dir) = client_for(&cluster).await;
    let pods = Api::<Pod>::namespaced(client.clone(), "default");
    let restarts = |p: &Pod| {
        p.status
            .as_ref()
            .unwrap()
            .container_statuses
            .as_ref()
            .unwrap()[0]
            .restart_count
    };
    let waiting = |p: &Pod| {
        p.status
            .as_ref()
            .unwrap()
            .container_statuses
            .as_ref()
            .unwrap()[0]
            .state
            .as_ref()
            .and_then(|s| s.waiting.as_ref())
            .and_then(|w| w.reason.clone())
    };

    cluster.set_crashloop(true);
    assert!(cluster.crashlooping());
    let web = bounded(pods.get("web-1")).await.expect("pod");
    assert_eq!(waiting(&web).as_deref(), Some("CrashLoopBackOff"));
    let first = restarts(&web);
    assert!(first >= 1);
    // Restarts grow over time (one a second).
    let deadline = std::time::Instant::now() + LIMIT;
    loop {
        let now = bounded(pods.get("web-1")).await.expect("pod");
        if restarts(&now) > first {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "restarts did not grow"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let apps = Api::<Deployment>::namespaced(client.clone(), "default");
    let web = bounded(apps.get("web")).await.expect("deployment");
    let status = web.status.unwrap();
    assert_eq!(
        (status.available_replicas, status.unavailable_replicas),
        (Some(0), Some(3))
    );
    let db = bounded(Api::<StatefulSet>::namespaced(client.clone(), "default").get("db"))
        .await
        .expect("sts");
    assert_eq!(db.status.unwrap().ready_replicas, Some(0));
    // kube-system is left alone.
    let coredns =
        bounded(Api::<Deployment>::namespaced(client.clone(), "kube-system").get("coredns"))
            .await
            .expect("coredns");
    assert_eq!(coredns.status.unwrap().available_replicas, Some(1));
    let crashing_system =
        bounded(Api::<Pod>::namespaced(client.clone(), "kube-system").get("coredns-abc"))
            .await
            .expect("pod");
    assert_eq!(restarts(&crashing_system), 7);

    cluster.set_crashloop(false);
    let web = bounded(pods.get("web-1")).await.expect("pod");
    assert_eq!(waiting(&web), None);
    assert!(restarts(&web) > first, "restarts stay counted");
    let status = bounded(apps.get("web"))
        .await
        .expect("deployment")
        .status
        .unwrap();
    assert_eq!(status.available_replicas, Some(3));
}

#[tokio::test]
async fn fault_removed_api() {
    let cluster = seeded().await;
    let (client, _dir) = client_for(&cluster).await;
    let cronjobs_ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("batch", "v1beta1", "CronJob"),
        "cronjobs",
    );
    let cronjobs: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), "default", &cronjobs_ar);
    match bounded(cronjobs.list(&ListParams::default())).await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 404),
        other => panic!("expected a 404 before the fault, got {other:?}"),
    }

    cluster.set_removed_api(true);
    let discovery = bounded(Discovery::new(client.clone()).run_aggregated())
        .await
        .expect("discovery");
    assert!(discovery.get("policy").is_some());
    assert!(discovery.get("batch").is_some());
    let listed = bounded(cronjobs.list(&ListParams::default()))
        .await
        .expect("list");
    assert_eq!(names(&listed.items), ["legacy-cronjob"]);
    let pdb_ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("policy", "v1beta1", "PodDisruptionBudget"),
        "poddisruptionbudgets",
    );
    let pdbs: Api<DynamicObject> = Api::all_with(client.clone(), &pdb_ar);
    let listed = bounded(pdbs.list(&ListParams::default()))
        .await
        .expect("list");
    assert_eq!(names(&listed.items), ["legacy-pdb"]);
    let req = axum::http::Request::get("/metrics")
        .body(Vec::new())
        .unwrap();
    let text = bounded(client.request_text(req)).await.expect("metrics");
    for resource in ["cronjobs", "poddisruptionbudgets"] {
        assert!(
            text.lines()
                .any(|l| l.starts_with("apiserver_requested_deprecated_apis{")
                    && l.contains(&format!("resource=\"{resource}\""))
                    && l.contains("removed_release=\"1.25\"")
                    && l.ends_with(" 1")),
            "{text}"
        );
    }

    cluster.set_removed_api(false);
    match bounded(cronjobs.list(&ListParams::default())).await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 404),
        other => panic!("expected a 404 after the fault, got {other:?}"),
    }
    let req = axum::http::Request::get("/metrics")
        .body(Vec::new())
        .unwrap();
    let text = bounded(client.request_text(req)).await.expect("metrics");
    assert!(
        !text.contains("apiserver_requested_deprecated_apis{"),
        "{text}"
    );
}

/// A GET with an `Accept` header: the answer's `Content-Type` and JSON body.
async fn get_with_accept(addr: &str, path: &str, accept: &str) -> (String, serde_json::Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nAccept: {accept}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut raw = String::new();
    stream.read_to_string(&mut raw).await.expect("read");
    let (head, body) = raw.split_once("\r\n\r\n").expect("headers");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let content_type = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-type")
                .then(|| v.trim().to_owned())
        })
        .expect("content-type");
    (content_type, serde_json::from_str(body).expect("json body"))
}

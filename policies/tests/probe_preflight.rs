//! `Probe::preflight` (DESIGN §6.1) against fake API servers on loopback: the built-in checks
//! (the cluster answers, no drift from the registry, no kubelet ahead), configured gates once,
//! and `kube.removedApis` from stored objects and `/metrics`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use integration::kube::FakeCluster;
use policies::probe::{CHECK_ANSWERS, CHECK_KUBELETS, CHECK_REMOVED_APIS, CHECK_VERSION, Targets};
use rings::Version;
use serde_json::{Value, json};
use support::{MiniApi, TEST_TIMEOUT, cluster, dead_url, fast, kube_gate, probe};

fn step_to(minor: &str) -> Targets {
    Targets {
        kubernetes: Some(Version::parse(minor).unwrap()),
        ..Targets::default()
    }
}

#[tokio::test]
async fn built_in_checks() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let tmp = tempfile::tempdir().unwrap();
        let fake = FakeCluster::start().await.unwrap();
        fake.set_version("v1.33.2-eks-1a2b3c");
        fake.add_node("n1", true, "v1.33.2");
        fake.add_node("n2", true, "v1.32.9");
        let p = probe(
            tmp.path(),
            &[("ok", fake.url()), ("gone", dead_url())],
            fast(),
        );
        let ok = cluster("ok", "1.33");
        let ready = kube_gate("nodes-ready", json!({"nodesReady": {"minRatio": 1.0}}));

        let pre = p.preflight(&ok, &step_to("1.34"), &[&ready]).await;
        assert!(pre.ok(), "{pre:?}");
        assert_eq!(pre.control_plane.as_deref(), Some("v1.33.2-eks-1a2b3c"));

        // A cluster that does not answer never passes.
        let gone = cluster("gone", "1.33");
        let pre = p.preflight(&gone, &step_to("1.34"), &[]).await;
        assert!(!pre.ok());
        assert_eq!(pre.findings.len(), 1, "{pre:?}");
        assert_eq!(pre.findings[0].check, CHECK_ANSWERS);
        assert!(
            pre.findings[0].message.starts_with("cluster gone (context gone) does not answer: reading /version:"),
            "{pre:?}"
        );
        // Nor does one ringmaster has no context for.
        let stranger = cluster("stranger", "1.33");
        let pre = p.preflight(&stranger, &step_to("1.34"), &[]).await;
        assert_eq!(pre.findings[0].check, CHECK_ANSWERS);
        assert!(pre.findings[0].message.contains("no context `stranger`"), "{pre:?}");

        // Drift: the registry says 1.32, the cluster runs 1.33. A kubelet ahead of the control
        // plane. A configured gate that fails.
        let drifted = cluster("ok", "1.32");
        fake.add_node("n3", true, "v1.34.0");
        fake.set_node_ready("n2", false);
        let pre = p.preflight(&drifted, &step_to("1.33"), &[&ready]).await;
        let shown: Vec<String> = pre.findings.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                format!("{CHECK_VERSION}: the registry (clusters/ok/cluster.yaml) says Kubernetes 1.32, the control plane reports v1.33.2-eks-1a2b3c; Git and the cluster disagree: correct the registry or the cluster before ringmaster moves it"),
                format!("{CHECK_KUBELETS}: node n3 kubelet v1.34.0 is ahead of control plane v1.33.2-eks-1a2b3c"),
                "nodes-ready (kube.nodesReady): 2/3 Ready (not ready: n2)".to_owned(),
            ]
        );
        assert!(!pre.ok());
    })
    .await
    .unwrap();
}

fn managed(manager: &str, api_version: &str) -> Value {
    json!([{"manager": manager, "operation": "Apply", "apiVersion": api_version}])
}

/// A 1.24 cluster that still serves policy/v1beta1 and batch/v1beta1, with objects written
/// through them and through current versions, and a `/metrics` with deprecated requests.
fn legacy_cluster() -> MiniApi {
    let api = MiniApi::default();
    api.cluster_basics("v1.24.17-eks-1", &[("n1", "v1.24.17")]);
    api.json(
        "/apis",
        json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": [
            {"name": "policy", "versions": [{"groupVersion": "policy/v1", "version": "v1"},
                                            {"groupVersion": "policy/v1beta1", "version": "v1beta1"}],
             "preferredVersion": {"groupVersion": "policy/v1", "version": "v1"}},
            {"name": "batch", "versions": [{"groupVersion": "batch/v1", "version": "v1"},
                                           {"groupVersion": "batch/v1beta1", "version": "v1beta1"}],
             "preferredVersion": {"groupVersion": "batch/v1", "version": "v1"}},
            {"name": "apps", "versions": [{"groupVersion": "apps/v1", "version": "v1"}],
             "preferredVersion": {"groupVersion": "apps/v1", "version": "v1"}}]}),
    );
    let resource = |name: &str, kind: &str, namespaced: bool| {
        json!({"name": name, "singularName": kind.to_lowercase(), "namespaced": namespaced, "kind": kind,
               "verbs": ["create", "delete", "get", "list", "watch"]})
    };
    api.json(
        "/apis/policy/v1beta1",
        json!({"kind": "APIResourceList", "groupVersion": "policy/v1beta1", "resources": [
            resource("poddisruptionbudgets", "PodDisruptionBudget", true),
            resource("podsecuritypolicies", "PodSecurityPolicy", false)]}),
    );
    api.json(
        "/apis/batch/v1beta1",
        json!({"kind": "APIResourceList", "groupVersion": "batch/v1beta1", "resources": [
            resource("cronjobs", "CronJob", true)]}),
    );
    api.json(
        "/apis/policy/v1beta1/poddisruptionbudgets",
        json!({"kind": "PodDisruptionBudgetList", "apiVersion": "policy/v1beta1", "metadata": {}, "items": [
            {"metadata": {"name": "legacy-pdb", "namespace": "default", "managedFields": managed("helm", "policy/v1beta1")}},
            {"metadata": {"name": "coredns", "namespace": "kube-system", "managedFields": managed("eks", "policy/v1")}}]}),
    );
    api.json(
        "/apis/policy/v1beta1/podsecuritypolicies",
        json!({"kind": "PodSecurityPolicyList", "apiVersion": "policy/v1beta1", "metadata": {}, "items": [
            {"metadata": {"name": "eks.privileged", "managedFields": managed("eks", "policy/v1beta1")}}]}),
    );
    api.json(
        "/apis/batch/v1beta1/cronjobs",
        json!({"kind": "CronJobList", "apiVersion": "batch/v1beta1", "metadata": {}, "items": [
            {"metadata": {"name": "nightly", "namespace": "jobs", "annotations": {
                "kubectl.kubernetes.io/last-applied-configuration":
                    "{\"apiVersion\":\"batch/v1beta1\",\"kind\":\"CronJob\",\"metadata\":{\"name\":\"nightly\"}}"}}},
            {"metadata": {"name": "hourly", "namespace": "jobs", "managedFields": managed("argocd", "batch/v1")}}]}),
    );
    api.text(
        "/metrics",
        "# TYPE apiserver_requested_deprecated_apis gauge\n\
         apiserver_requested_deprecated_apis{group=\"policy\",removed_release=\"1.25\",resource=\"podsecuritypolicies\",subresource=\"\",version=\"v1beta1\"} 1\n\
         apiserver_requested_deprecated_apis{group=\"flowcontrol.apiserver.k8s.io\",removed_release=\"1.26\",resource=\"flowschemas\",subresource=\"\",version=\"v1beta1\"} 1\n\
         apiserver_request_total{code=\"200\"} 5\n",
    );
    api
}

#[tokio::test]
async fn removed_apis_still_in_use_block_the_step() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let tmp = tempfile::tempdir().unwrap();
        let api = legacy_cluster();
        let url = api.serve().await;
        let p = probe(tmp.path(), &[("legacy", url)], fast());
        let c = cluster("legacy", "1.24");
        let removed = kube_gate("removed-apis", json!({"removedApis": {}}));

        let pre = p.preflight(&c, &step_to("1.25"), &[&removed]).await;
        let shown: Vec<String> = pre.findings.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "removed-apis (kube.removedApis): batch/v1beta1 CronJob jobs/nightly (removed in 1.25), applied by kubectl with that apiVersion",
                "removed-apis (kube.removedApis): policy/v1beta1 PodDisruptionBudget default/legacy-pdb (removed in 1.25), written by helm",
                "removed-apis (kube.removedApis): policy/v1beta1 PodSecurityPolicy eks.privileged (removed in 1.25), written by eks",
                "removed-apis (kube.removedApis): policy/v1beta1 podsecuritypolicies still receives requests (removed in 1.25; apiserver_requested_deprecated_apis)",
            ]
        );
        assert!(pre.findings.iter().all(|f| f.check == CHECK_REMOVED_APIS));
        assert!(!pre.ok());

        // A step to 1.26 also catches the flowcontrol requests (removed in 1.26).
        let pre = p.preflight(&c, &step_to("1.26"), &[&removed]).await;
        assert_eq!(pre.findings.len(), 5, "{pre:?}");
        assert!(pre.findings.iter().any(|f| f.message.starts_with("flowcontrol.apiserver.k8s.io/v1beta1 flowschemas still receives requests")));

        // Nothing here is removed by 1.24 itself.
        let pre = p.preflight(&c, &step_to("1.24"), &[&removed]).await;
        assert!(pre.ok(), "{pre:?}");

        // What the ring accepts is not a finding.
        let tolerant = kube_gate(
            "removed-apis",
            json!({"removedApis": {"ignore": ["policy/v1beta1/podsecuritypolicies", "batch/v1beta1/cronjobs/jobs/nightly"]}}),
        );
        let pre = p.preflight(&c, &step_to("1.25"), &[&tolerant]).await;
        let shown: Vec<&str> = pre.findings.iter().map(|f| f.message.as_str()).collect();
        assert_eq!(
            shown,
            ["policy/v1beta1 PodDisruptionBudget default/legacy-pdb (removed in 1.25), written by helm"]
        );

        // An add-on release does not move Kubernetes: nothing to check.
        assert!(p.preflight(&c, &Targets::default(), &[&removed]).await.ok());

        // Without /metrics the check cannot be made: a finding, not a pass.
        let bare = MiniApi::default();
        bare.cluster_basics("v1.24.17", &[("n1", "v1.24.17")]);
        bare.json("/apis", json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": []}));
        let bare_url = bare.serve().await;
        let p = probe(tmp.path(), &[("bare", bare_url)], fast());
        let pre = p.preflight(&cluster("bare", "1.24"), &step_to("1.25"), &[&removed]).await;
        assert_eq!(pre.findings.len(), 1, "{pre:?}");
        assert_eq!(
            pre.findings[0].message,
            "could not be checked: reading the API server's /metrics (ringmaster needs `get` on \
             the non-resource URL /metrics): HTTP 404 NotFound: the server could not find the \
             requested resource (/metrics)",
        );
    })
    .await
    .unwrap();
}

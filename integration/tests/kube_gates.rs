#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The Kubernetes gates and the convergence check of `policies::gates::kube`, through the real
//! kube client against `integration::kube::FakeCluster` on loopback.

use std::time::Duration;

use integration::kube::{FakeCluster, write_kubeconfig};
use policies::gates::kube::{
    client_for, kubernetes_converged, nodes_ready, pods_healthy, workloads_available,
};
use policies::soak::Outcome;
use rings::Version;
use rings::model::NodeConvergence;

const TEST_TIMEOUT: Duration = Duration::from_secs(30);

async fn client(cluster: &FakeCluster, dir: &std::path::Path) -> kube::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let path = dir.join("kubeconfig");
    write_kubeconfig(&path, &[("aws-use1-sbx-01", cluster.url())]).unwrap();
    client_for(Some(&path), "aws-use1-sbx-01").await.unwrap()
}

#[tokio::test]
async fn nodes_workloads_and_pods() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let tmp = tempfile::tempdir().unwrap();
        let cluster = FakeCluster::start().await.unwrap();
        cluster.add_node("n1", true, "v1.33.1-eks-1");
        cluster.add_node("n2", true, "v1.33.1-eks-1");
        cluster.add_deployment("kube-system", "coredns", 2, 2, "coredns:v1.11.4");
        cluster.add_daemonset("kube-system", "aws-node", 2, 2, "vpc-cni:v1.19.2");
        cluster.add_statefulset(
            "argocd",
            "argocd-application-controller",
            1,
            1,
            "argocd:v2.13.1",
        );
        cluster.add_pod("default", "web-1", None, 0);
        let c = client(&cluster, tmp.path()).await;

        let o = nodes_ready(&c, 1.0).await;
        assert_eq!(
            (o.outcome, o.observed.as_str()),
            (Outcome::Pass, "2/2 Ready")
        );
        cluster.set_node_ready("n2", false);
        let o = nodes_ready(&c, 1.0).await;
        assert_eq!(o.outcome, Outcome::Fail);
        assert_eq!(o.observed, "1/2 Ready (not ready: n2)");
        assert_eq!(nodes_ready(&c, 0.5).await.outcome, Outcome::Pass);

        let all = ["*".to_owned()];
        assert_eq!(workloads_available(&c, &all).await.outcome, Outcome::Pass);
        cluster.add_deployment("kube-system", "coredns", 2, 1, "coredns:v1.11.4");
        let o = workloads_available(&c, &all).await;
        assert_eq!(o.outcome, Outcome::Fail);
        assert!(
            o.observed.contains("deployment kube-system/coredns 1/2"),
            "{}",
            o.observed
        );
        assert_eq!(
            workloads_available(&c, &["argocd".to_owned()])
                .await
                .outcome,
            Outcome::Pass,
            "namespaces limit the check"
        );

        assert_eq!(
            pods_healthy(&c, &all, None, None).await.outcome,
            Outcome::Pass
        );
        cluster.add_pod("default", "web-2", Some("CrashLoopBackOff"), 7);
        let o = pods_healthy(&c, &all, Some(3), Some(0.0)).await;
        assert_eq!(o.outcome, Outcome::Fail);
        assert!(
            o.observed.contains("default/web-2 CrashLoopBackOff"),
            "{}",
            o.observed
        );
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn convergence_and_unreachable_clusters() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let tmp = tempfile::tempdir().unwrap();
        let cluster = FakeCluster::start().await.unwrap();
        cluster.set_version("v1.32.4-eks-1a2b3c");
        cluster.add_node("n1", true, "v1.32.4-eks-1a2b3c");
        let c = client(&cluster, tmp.path()).await;
        let target = Version::parse("1.33").unwrap();
        let (all, skew) = (NodeConvergence::Target, NodeConvergence::Skew);

        let o = kubernetes_converged(&c, &target, all).await;
        assert_eq!(o.outcome, Outcome::Fail);
        assert_eq!(
            o.observed,
            "control plane v1.32.4-eks-1a2b3c (target 1.33); 0/1 nodes at 1.33; node n1 kubelet v1.32.4-eks-1a2b3c"
        );
        cluster.set_version("v1.33.2-eks-9f8e7d");
        assert_eq!(
            kubernetes_converged(&c, &target, skew).await.outcome,
            Outcome::Pass,
            "with `skew`, kubelets may trail"
        );
        let o = kubernetes_converged(&c, &target, all).await;
        assert_eq!(o.outcome, Outcome::Fail, "by default every node rolls");
        assert_eq!(o.observed, "0/1 nodes at 1.33; node n1 kubelet v1.32.4-eks-1a2b3c");
        cluster.add_node("n1", true, "v1.33.2-eks-9f8e7d");
        let o = kubernetes_converged(&c, &target, all).await;
        assert_eq!(
            (o.outcome, o.observed.as_str()),
            (Outcome::Pass, "control plane v1.33.2-eks-9f8e7d, 1/1 nodes at 1.33 and Ready")
        );
        cluster.add_node("n2", true, "v1.34.0");
        let o = kubernetes_converged(&c, &target, skew).await;
        assert_eq!(o.outcome, Outcome::Fail);
        assert!(
            o.observed.contains("node n2 kubelet v1.34.0 (ahead of control plane"),
            "{}",
            o.observed
        );

        // An unreachable cluster is inconclusive, never a pass.
        cluster.set_unreachable(true);
        for o in [
            nodes_ready(&c, 0.0).await,
            workloads_available(&c, &[]).await,
            kubernetes_converged(&c, &target, all).await,
        ] {
            assert_eq!(o.outcome, Outcome::Inconclusive, "{}", o.observed);
        }
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn any_resource_through_discovery_and_a_json_path() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let tmp = tempfile::tempdir().unwrap();
        let cluster = FakeCluster::start().await.unwrap();
        cluster.add_deployment("kube-system", "coredns", 2, 2, "coredns:v1.11.4");
        cluster.add_deployment(
            "kube-system",
            "metrics-server",
            1,
            1,
            "metrics-server:v0.7.2",
        );
        let c = client(&cluster, tmp.path()).await;
        let check = |path: &str,
                     equals: Option<&str>,
                     one_of: Option<Vec<&str>>,
                     range: Option<&str>| rings::model::ResourceCheck {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            namespace: Some("kube-system".into()),
            name: None,
            label_selector: Some("app=coredns".into()),
            json_path: path.into(),
            equals: equals.map(str::to_owned),
            one_of: one_of.map(|v| v.into_iter().map(str::to_owned).collect()),
            semver_range: range.map(str::to_owned),
        };
        let o = policies::gates::kube::resource(
            &c,
            &check(
                ".spec.template.spec.containers[0].image",
                Some("coredns:v1.11.4"),
                None,
                None,
            ),
        )
        .await;
        assert_eq!(
            (o.outcome, o.observed.as_str()),
            (Outcome::Pass, "1 Deployment ok")
        );
        let o = policies::gates::kube::resource(
            &c,
            &check(
                ".status.availableReplicas",
                None,
                Some(vec!["1", "3"]),
                None,
            ),
        )
        .await;
        assert_eq!(
            (o.outcome, o.observed.as_str()),
            (Outcome::Fail, "coredns: 2")
        );
        let mut unlabelled = check(".spec.template.spec.containers[0].image", None, None, None);
        unlabelled.label_selector = Some("app=nothing".into());
        unlabelled.equals = Some("x".into());
        assert_eq!(
            policies::gates::kube::resource(&c, &unlabelled)
                .await
                .outcome,
            Outcome::Inconclusive,
            "nothing to look at is not a pass"
        );
        let mut unknown = check(".x", Some("y"), None, None);
        unknown.kind = "Application".into();
        unknown.api_version = "argoproj.io/v1alpha1".into();
        assert_eq!(
            policies::gates::kube::resource(&c, &unknown).await.outcome,
            Outcome::Inconclusive,
            "a kind the cluster does not serve"
        );
    })
    .await
    .unwrap();
}

#[test]
fn json_path_subset() {
    let v = serde_json::json!({"status": {"health": {"status": "Healthy"}}, "spec": {"c": [{"image": "a:1"}, {"image": "b:2"}]}});
    assert_eq!(
        policies::gates::kube::json_path(&v, ".status.health.status"),
        Some(&serde_json::json!("Healthy"))
    );
    assert_eq!(
        policies::gates::kube::json_path(&v, ".spec.c[1].image"),
        Some(&serde_json::json!("b:2"))
    );
    assert_eq!(
        policies::gates::kube::json_path(&v, ".spec.c[5].image"),
        None
    );
    assert_eq!(policies::gates::kube::json_path(&v, ".missing"), None);
}

//! `Probe::convergence` against fake API servers on loopback: the control plane and kubelets,
//! add-on workloads' image tags, policy bundles' reported versions; converged, behind and
//! inconclusive.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;

use integration::kube::FakeCluster;
use policies::probe::Targets;
use rings::Version;
use rings::model::{Cluster, NodeConvergence, Observe, ResourceRef, WorkloadKind, WorkloadRef};
use serde_json::json;
use support::{MiniApi, TEST_TIMEOUT, cluster, fast, probe};

fn v(text: &str) -> Version {
    Version::parse(text).unwrap()
}

fn observe_addons(entries: &[(&str, WorkloadKind, &str, Option<&str>)]) -> Observe {
    Observe {
        addons: entries
            .iter()
            .map(|(addon, kind, name, container)| {
                (
                    (*addon).to_owned(),
                    WorkloadRef {
                        kind: *kind,
                        namespace: "kube-system".into(),
                        name: (*name).into(),
                        container: container.map(str::to_owned),
                    },
                )
            })
            .collect(),
        ..Observe::default()
    }
}

fn targets(
    kubernetes: Option<&str>,
    addons: &[(&str, &str)],
    policies: &[(&str, &str)],
) -> Targets {
    let map = |list: &[(&str, &str)]| -> BTreeMap<String, Version> {
        list.iter()
            .map(|(n, ver)| ((*n).to_owned(), v(ver)))
            .collect()
    };
    Targets {
        kubernetes: kubernetes.map(v),
        addons: map(addons),
        policies: map(policies),
        controllers: BTreeMap::new(),
    }
}

#[tokio::test]
async fn kubernetes_and_addons_converge_fall_behind_and_go_dark() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let tmp = tempfile::tempdir().unwrap();
        let fake = FakeCluster::start().await.unwrap();
        fake.set_version("v1.34.1-eks-1a2b3c");
        fake.add_node("n1", true, "v1.34.1-eks-1");
        fake.add_node("n2", true, "v1.33.2-eks-1");
        fake.add_deployment("kube-system", "coredns", 2, 2, "registry.k8s.example/coredns:v1.11.4-eksbuild.1");
        fake.add_daemonset("kube-system", "aws-node", 3, 3, "602401143452.dkr.ecr.us-east-1.amazonaws.com/amazon-k8s-cni:v1.19.2-eksbuild.1@sha256:0123");
        // Node pools upgraded separately (`upgrade.nodes: skew`): kubelets may trail.
        let c = Cluster {
            nodes: NodeConvergence::Skew,
            ..cluster("aws-use1-prod-01", "1.33")
        };
        let p = probe(tmp.path(), &[("aws-use1-prod-01", fake.url())], fast());
        let observe = observe_addons(&[
            ("coredns", WorkloadKind::Deployment, "coredns", None),
            ("vpc-cni", WorkloadKind::DaemonSet, "aws-node", Some("aws-node")),
        ]);
        let t = targets(Some("1.34"), &[("coredns", "1.11.4"), ("vpc-cni", "1.19.2")], &[]);

        let conv = p.convergence(&c, &t, &observe).await;
        assert!(conv.converged, "{conv:?}");
        assert_eq!((conv.inconclusive, conv.behind.len()), (None, 0));

        // The control plane is a minor behind, a node is ahead of it, coredns runs the old tag.
        fake.set_version("v1.33.4-eks-1a2b3c");
        fake.add_deployment("kube-system", "coredns", 2, 2, "registry.k8s.example/coredns:v1.11.3");
        let conv = p.convergence(&c, &t, &observe).await;
        assert!(!conv.converged);
        assert_eq!(conv.inconclusive, None, "{conv:?}");
        assert_eq!(
            conv.behind,
            [
                "control plane v1.33.4-eks-1a2b3c (target 1.34)",
                "node n1 kubelet v1.34.1-eks-1 (ahead of control plane v1.33.4-eks-1a2b3c)",
                "coredns image v1.11.3 (target 1.11.4)",
            ]
        );

        // A kubelet four minors behind is outside the skew policy even at the target minor.
        fake.set_version("v1.34.1-eks-1a2b3c");
        fake.add_deployment("kube-system", "coredns", 2, 2, "registry.k8s.example/coredns:v1.11.4");
        fake.add_node("n3", true, "v1.30.9");
        let conv = p.convergence(&c, &t, &observe).await;
        assert_eq!(
            conv.behind,
            ["node n3 kubelet v1.30.9 (4 minors behind control plane v1.34.1-eks-1a2b3c; at most 3)"]
        );
        assert!(!conv.converged);
        fake.add_node("n3", true, "v1.34.1");

        // A workload that is not there yet is behind, not unknown.
        let missing = observe_addons(&[("coredns", WorkloadKind::Deployment, "coredns-v2", None)]);
        let conv = p
            .convergence(&c, &targets(None, &[("coredns", "1.11.4")], &[]), &missing)
            .await;
        assert_eq!(conv.behind, ["coredns: Deployment kube-system/coredns-v2 not found"]);
        assert!(!conv.converged);

        // Add-on without an observe entry, or an image without a tag: ringmaster cannot tell.
        let conv = p
            .convergence(&c, &targets(None, &[("kube-proxy", "1.34.0")], &[]), &observe)
            .await;
        assert!(!conv.converged);
        assert!(
            conv.inconclusive.as_deref().unwrap().contains("no `observe.addons.kube-proxy` entry"),
            "{conv:?}"
        );
        fake.add_deployment("kube-system", "coredns", 2, 2, "registry.k8s.example/coredns@sha256:abcd");
        let conv = p.convergence(&c, &t, &observe).await;
        assert!(!conv.converged);
        assert!(
            conv.inconclusive.as_deref().unwrap().contains("has no tag"),
            "{conv:?}"
        );

        // An unreachable cluster is inconclusive, never converged.
        fake.add_deployment("kube-system", "coredns", 2, 2, "registry.k8s.example/coredns:v1.11.4");
        assert!(p.convergence(&c, &t, &observe).await.converged);
        fake.set_unreachable(true);
        let conv = p.convergence(&c, &t, &observe).await;
        assert!(!conv.converged);
        assert!(conv.behind.is_empty());
        assert!(
            conv.inconclusive.as_deref().unwrap().contains("aws-use1-prod-01"),
            "{conv:?}"
        );
    })
    .await
    .unwrap();
}

/// Issue 15: a soak started while nodes were still being replaced and `nodes-ready` halted
/// the ring. By default a Kubernetes step converges only once every node runs the target minor
/// and is Ready and schedulable; `upgrade.nodes: skew` keeps the kubelets-within-skew rule.
#[tokio::test]
async fn a_kubernetes_step_waits_for_every_node_unless_the_cluster_says_skew() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let tmp = tempfile::tempdir().unwrap();
        let fake = FakeCluster::start().await.unwrap();
        let old = "v1.32.4-eks-1a2b3c";
        let new = "v1.33.4-eks-1a2b3c";
        fake.set_version(old);
        for i in 1..=6 {
            fake.add_node(&format!("n{i}"), true, old);
        }
        let id = "prd-aws-use1-canary";
        let c = cluster(id, "1.32");
        assert_eq!(c.nodes, NodeConvergence::Target);
        let skew = Cluster {
            nodes: NodeConvergence::Skew,
            ..c.clone()
        };
        let p = probe(tmp.path(), &[(id, fake.url())], fast());
        let t = targets(Some("1.33"), &[], &[]);
        let none = Observe::default();

        // Nothing moved yet: the control plane, the count, five nodes named, the rest counted.
        let conv = p.convergence(&c, &t, &none).await;
        assert!(!conv.converged);
        assert_eq!(
            conv.behind,
            [
                "control plane v1.32.4-eks-1a2b3c (target 1.33)".to_owned(),
                "0/6 nodes at 1.33".to_owned(),
                format!("node n1 kubelet {old}"),
                format!("node n2 kubelet {old}"),
                format!("node n3 kubelet {old}"),
                format!("node n4 kubelet {old}"),
                format!("node n5 kubelet {old}"),
                "and 1 more nodes not done".to_owned(),
            ]
        );

        // The control plane is upgraded; the roll is under way: four nodes replaced, the fifth
        // back at 1.33 but not Ready yet, the sixth still at 1.32.
        fake.set_version(new);
        for i in 1..=4 {
            fake.add_node(&format!("n{i}"), true, new);
        }
        fake.add_node("n5", false, new);
        let conv = p.convergence(&c, &t, &none).await;
        assert!(!conv.converged);
        assert_eq!(conv.inconclusive, None);
        assert_eq!(
            conv.behind,
            [
                "4/6 nodes at 1.33".to_owned(),
                "node n5 not Ready".to_owned(),
                format!("node n6 kubelet {old}"),
            ]
        );
        // The old rule took this for converged: the soak started mid-roll.
        let conv = p.convergence(&skew, &t, &none).await;
        assert!(conv.converged, "skew keeps the old rule: {conv:?}");

        // Ready but still cordoned is not done either.
        fake.set_node_ready("n5", true);
        fake.set_node_cordoned("n5", true);
        let conv = p.convergence(&c, &t, &none).await;
        assert_eq!(
            conv.behind,
            [
                "4/6 nodes at 1.33".to_owned(),
                "node n5 cordoned".to_owned(),
                format!("node n6 kubelet {old}"),
            ]
        );

        // Every node at the target minor, Ready and schedulable: converged.
        fake.set_node_cordoned("n5", false);
        fake.add_node("n6", true, new);
        let conv = p.convergence(&c, &t, &none).await;
        assert!(conv.converged, "{conv:?}");
        assert!(conv.behind.is_empty());

        // A node ahead of the target minor is not at it (and outside skew too).
        fake.add_node("n7", true, "v1.34.0");
        let conv = p.convergence(&c, &t, &none).await;
        assert_eq!(
            conv.behind,
            ["6/7 nodes at 1.33", "node n7 kubelet v1.34.0"]
        );
        let conv = p.convergence(&skew, &t, &none).await;
        assert_eq!(
            conv.behind,
            ["node n7 kubelet v1.34.0 (ahead of control plane v1.33.4-eks-1a2b3c)"]
        );
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn an_unfinished_rollout_is_behind() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let tmp = tempfile::tempdir().unwrap();
        // A scripted server: the Deployment's spec has the new image, the controller has not
        // rolled it out to every replica yet.
        let api = MiniApi::default();
        api.cluster_basics("v1.33.2", &[("n1", "v1.33.2")]);
        let deployment = |updated: i32, observed: i64| {
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                   "metadata": {"name": "coredns", "namespace": "kube-system", "generation": 2},
                   "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "coredns"}},
                            "template": {"metadata": {"labels": {"app": "coredns"}},
                                         "spec": {"containers": [
                                             {"name": "coredns", "image": "registry.k8s.example/coredns:v1.11.4"},
                                             {"name": "metrics", "image": "registry.k8s.example/exporter:v0.3.0"}]}}},
                   "status": {"observedGeneration": observed, "replicas": 3, "updatedReplicas": updated}})
        };
        api.json("/apis/apps/v1/namespaces/kube-system/deployments/coredns", deployment(1, 2));
        let url = api.serve().await;
        let c = cluster("c1", "1.33");
        let p = probe(tmp.path(), &[("c1", url)], fast());
        let observe = observe_addons(&[("coredns", WorkloadKind::Deployment, "coredns", None)]);
        let t = targets(None, &[("coredns", "1.11.4")], &[]);

        let conv = p.convergence(&c, &t, &observe).await;
        assert_eq!(
            conv.behind,
            ["coredns v1.11.4 rolling out: 1/3 updated (Deployment kube-system/coredns)"]
        );
        api.json("/apis/apps/v1/namespaces/kube-system/deployments/coredns", deployment(3, 1));
        assert!(!p.convergence(&c, &t, &observe).await.converged, "the controller has not seen generation 2");
        api.json("/apis/apps/v1/namespaces/kube-system/deployments/coredns", deployment(3, 2));
        let conv = p.convergence(&c, &t, &observe).await;
        assert!(conv.converged, "{conv:?}");
    })
    .await
    .unwrap();
}

fn policy_observe() -> Observe {
    Observe {
        policies: [(
            "restricted-prod".to_owned(),
            ResourceRef {
                api_version: "policies.ringmaster.dev/v1".into(),
                kind: "PolicyBundle".into(),
                name: "restricted-prod".into(),
                namespace: None,
                json_path: ".status.version".into(),
            },
        )]
        .into(),
        ..Observe::default()
    }
}

#[tokio::test]
async fn policy_bundles_report_their_version() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let tmp = tempfile::tempdir().unwrap();
        let api = MiniApi::default();
        api.cluster_basics("v1.33.2", &[("n1", "v1.33.2")]);
        let url = api.serve().await;
        let c = cluster("c1", "1.33");
        let p = probe(tmp.path(), &[("c1", url)], fast());
        let t = targets(None, &[], &[("restricted-prod", "2.4.0")]);

        // The CRD is not served: cannot tell.
        let conv = p.convergence(&c, &t, &policy_observe()).await;
        assert!(!conv.converged);
        assert!(
            conv.inconclusive.as_deref().unwrap().contains("restricted-prod"),
            "{conv:?}"
        );

        api.json(
            "/apis/policies.ringmaster.dev/v1",
            json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "policies.ringmaster.dev/v1",
                   "resources": [{"name": "policybundles", "singularName": "policybundle", "namespaced": false,
                                  "kind": "PolicyBundle", "verbs": ["get", "list"]}]}),
        );
        // Served, but the object is not there yet.
        let conv = p.convergence(&c, &t, &policy_observe()).await;
        assert_eq!(conv.behind, ["restricted-prod: PolicyBundle restricted-prod not found"]);
        assert_eq!(conv.inconclusive, None);

        let bundle = |status: serde_json::Value| {
            json!({"apiVersion": "policies.ringmaster.dev/v1", "kind": "PolicyBundle",
                   "metadata": {"name": "restricted-prod"}, "status": status})
        };
        let path = "/apis/policies.ringmaster.dev/v1/policybundles/restricted-prod";
        api.json(path, bundle(json!({})));
        let conv = p.convergence(&c, &t, &policy_observe()).await;
        assert_eq!(conv.behind, ["restricted-prod: PolicyBundle restricted-prod has no .status.version yet"]);

        api.json(path, bundle(json!({"version": "2.3.1"})));
        let conv = p.convergence(&c, &t, &policy_observe()).await;
        assert_eq!(conv.behind, ["restricted-prod version 2.3.1 (target 2.4.0)"]);
        assert!(!conv.converged);

        api.json(path, bundle(json!({"version": "v2.4.0-rc.1+build"})));
        let conv = p.convergence(&c, &t, &policy_observe()).await;
        assert!(conv.converged, "compared on the semver core: {conv:?}");

        api.json(path, bundle(json!({"version": "latest"})));
        let conv = p.convergence(&c, &t, &policy_observe()).await;
        assert!(!conv.converged);
        assert!(conv.inconclusive.as_deref().unwrap().contains("not a version"), "{conv:?}");
    })
    .await
    .unwrap();
}

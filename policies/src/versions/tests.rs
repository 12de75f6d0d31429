use std::collections::BTreeMap;

use rings::model::{Cluster, Provider, Release};
use rings::{ClusterId, ReleaseName, VersionRange};

use super::*;

fn v(s: &str) -> Version {
    Version::parse(s).unwrap()
}

fn cluster(k8s: &str, addons: &[(&str, &str)]) -> Cluster {
    Cluster {
        id: ClusterId::new("c-1").unwrap(),
        provider: Provider::Aws,
        service: Some("eks".into()),
        region: None,
        environment: None,
        owner_team: None,
        criticality: None,
        labels: Default::default(),
        upgrade_ring: None,
        kube_context: "c-1".into(),
        kubernetes: v(k8s),
        addons: addons.iter().map(|(n, x)| (n.to_string(), v(x))).collect(),
        policies: Default::default(),
        controllers: Default::default(),
        extra: Default::default(),
        paused: None,
        upgrade_nodes: None,
        nodes: rings::model::NodeConvergence::Target,
        path: "clusters/c-1/cluster.yaml".into(),
        pos: rings::Pos::FILE,
    }
}

fn release(k8s: Option<&str>, addons: &[(&str, &str)]) -> Release {
    Release {
        name: ReleaseName::new("r").unwrap(),
        description: None,
        kubernetes: k8s.map(v),
        addons: addons.iter().map(|(n, x)| (n.to_string(), v(x))).collect(),
        policies: BTreeMap::new(),
        controllers: Default::default(),
        positions: Default::default(),
        requires_kubernetes: None,
        rollback: false,
        source: "releases/r.yaml".into(),
    }
}

fn texts(steps: &[Step]) -> Vec<Vec<String>> {
    steps
        .iter()
        .map(|s| {
            s.iter()
                .map(|c| format!("{} {} -> {}", c.component, c.from, c.to))
                .collect()
        })
        .collect()
}

#[test]
fn kubernetes_moves_one_minor_per_step() {
    let steps = kubernetes_steps(&v("1.30"), &v("1.33"), false).unwrap();
    let shown: Vec<(String, String)> = steps
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(
        shown,
        [
            ("1.30".into(), "1.31".into()),
            ("1.31".into(), "1.32".into()),
            ("1.32".into(), "1.33".into())
        ]
    );
    assert!(
        kubernetes_steps(&v("1.33.2"), &v("1.33"), false)
            .unwrap()
            .is_empty()
    );
    // Suffixes as clusters report them.
    assert_eq!(
        kubernetes_steps(&v("v1.32.4-eks-1a2b3c"), &v("1.33"), false)
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn kubernetes_never_goes_down_without_rollback() {
    let err = kubernetes_steps(&v("1.33"), &v("1.32"), false).unwrap_err();
    assert!(err.contains("rollback: true"), "{err}");
    // Not with `rollback: true` either (issue 16): control planes do not go back.
    let err = kubernetes_steps(&v("1.33"), &v("1.31"), true).unwrap_err();
    assert!(
        err.contains("1.33 → 1.31 would downgrade the control plane"),
        "{err}"
    );
    assert!(kubernetes_steps(&v("1.33"), &v("2.0"), false).is_err());
}

#[test]
fn addons_compare_on_the_semver_core() {
    let c = Component::Addon("coredns".into());
    assert_eq!(
        component_change(&c, &v("1.11.3-eksbuild.2"), &v("1.11.3"), false).unwrap(),
        None
    );
    assert!(
        component_change(&c, &v("1.11.3-eksbuild.2"), &v("1.11.4"), false)
            .unwrap()
            .is_some()
    );
    assert!(component_change(&c, &v("1.11.4"), &v("1.11.3"), false).is_err());
    assert!(
        component_change(&c, &v("1.11.4"), &v("1.11.3"), true)
            .unwrap()
            .is_some()
    );
}

#[test]
fn skew_rule() {
    assert!(kubelet_skew(&v("1.33"), &v("v1.33.1-eks-1")).is_ok());
    assert!(kubelet_skew(&v("1.33"), &v("1.30")).is_ok());
    assert!(kubelet_skew(&v("1.33"), &v("1.29")).is_err());
    let lead = kubelet_skew(&v("1.32"), &v("1.33")).unwrap_err();
    assert!(lead.contains("ahead"), "{lead}");
}

#[test]
fn addons_ride_with_the_last_kubernetes_step() {
    let c = cluster(
        "1.31",
        &[("coredns", "1.11.3"), ("vpc-cni", "1.19.0-eksbuild.1")],
    );
    let r = release(
        Some("1.33"),
        &[("coredns", "1.11.4"), ("kube-proxy", "1.33.0")],
    );
    let plan = cluster_steps(&r, &c);
    assert_eq!(plan.blocked, None);
    assert_eq!(
        texts(&plan.steps),
        vec![
            vec!["kubernetes 1.31 -> 1.32".to_string()],
            vec![
                "kubernetes 1.32 -> 1.33".to_string(),
                "addon/coredns 1.11.3 -> 1.11.4".to_string()
            ],
        ],
        "kube-proxy is not installed on the cluster, so it is not added"
    );
}

#[test]
fn requires_blocks_the_ring() {
    let mut r = release(None, &[("coredns", "1.11.4")]);
    r.requires_kubernetes = Some(VersionRange::parse(">=1.31, <1.35").unwrap());
    let old = cluster("1.30", &[("coredns", "1.11.3")]);
    let plan = cluster_steps(&r, &old);
    let block = plan.blocked.unwrap();
    assert!(block.blocks_ring);
    assert!(
        block.reason.contains(">=1.31, <1.35") && block.reason.contains("1.30"),
        "{}",
        block.reason
    );
    let ok = cluster("1.31", &[("coredns", "1.11.3")]);
    assert_eq!(cluster_steps(&r, &ok).blocked, None);
    // A cluster with nothing to change is never blocked by `requires`.
    let done = cluster("1.30", &[("coredns", "1.11.4")]);
    assert_eq!(cluster_steps(&r, &done), ClusterSteps::default());
}

#[test]
fn paused_clusters_show_their_steps_and_reason() {
    let mut c = cluster("1.32", &[]);
    c.paused = Some("PCI audit".into());
    let plan = cluster_steps(&release(Some("1.33"), &[]), &c);
    assert_eq!(plan.steps.len(), 1);
    let block = plan.blocked.unwrap();
    assert_eq!(block.reason, "paused: PCI audit");
    assert!(!block.blocks_ring);
}

#[test]
fn a_cluster_ahead_of_the_release_is_left_alone_with_a_reason() {
    let c = cluster("1.34", &[]);
    let plan = cluster_steps(&release(Some("1.33"), &[]), &c);
    assert!(plan.steps.is_empty());
    let block = plan.blocked.unwrap();
    assert!(!block.blocks_ring);
    assert!(
        block.reason.contains("downgrades need `rollback: true`"),
        "{}",
        block.reason
    );
}

/// Issue 16 item 7: `rollback: true` planned control-plane downgrades although EKS and AKS
/// cannot do them. The ring is refused, naming the release and the versions (the ring and the
/// cluster are named by the plan and the daemon around the reason); add-ons still roll back.
#[test]
fn a_rollback_never_lowers_a_control_plane() {
    let c = cluster("1.33.2", &[("coredns", "1.11.4")]);
    let rollback = Release {
        rollback: true,
        ..release(Some("1.32"), &[("coredns", "1.11.3")])
    };
    let plan = cluster_steps(&rollback, &c);
    assert!(plan.steps.is_empty());
    let block = plan.blocked.unwrap();
    assert!(block.blocks_ring, "a refused rollback holds the ring");
    assert_eq!(
        block.reason,
        "release `r` (rollback: true): Kubernetes 1.33.2 → 1.32 would downgrade the control plane, \
         which managed control planes (EKS, AKS, GKE) cannot do, `rollback: true` or not; remove \
         `kubernetes:` from the release (its add-ons and policy bundles can still roll back)"
    );

    // The same release without `kubernetes:`: the add-on goes back.
    let addons_only = Release {
        rollback: true,
        ..release(None, &[("coredns", "1.11.3")])
    };
    let plan = cluster_steps(&addons_only, &c);
    assert_eq!(plan.blocked, None);
    assert_eq!(texts(&plan.steps), [["addon/coredns 1.11.4 -> 1.11.3"]]);
    // Same minor, lower patch: nothing to do for Kubernetes, no refusal.
    let same_minor = Release {
        rollback: true,
        ..release(Some("1.33.1"), &[("coredns", "1.11.3")])
    };
    assert_eq!(cluster_steps(&same_minor, &c).blocked, None);
}

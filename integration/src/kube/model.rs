//! The fake cluster's objects, stored as the real `k8s_openapi` types.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use k8s_openapi::Metadata;
use k8s_openapi::api::apps::v1::{
    DaemonSet, DaemonSetSpec, DaemonSetStatus, Deployment, DeploymentSpec, DeploymentStatus,
    StatefulSet, StatefulSetSpec, StatefulSetStatus,
};
use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateWaiting, ContainerStatus, Node,
    NodeCondition, NodeSpec, NodeStatus, NodeSystemInfo, Pod, PodSpec, PodStatus, PodTemplateSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

#[derive(Debug)]
pub(super) struct Model {
    pub addr: SocketAddr,
    pub git_version: String,
    pub requests: usize,
    /// Bumped on every change; objects carry the value of their last change.
    pub resource_version: u64,
    pub nodes: Vec<Node>,
    pub deployments: Vec<Deployment>,
    pub daemonsets: Vec<DaemonSet>,
    pub statefulsets: Vec<StatefulSet>,
    pub pods: Vec<Pod>,
}

/// Replaces the object with the same namespace and name, or appends it, stamping a fresh
/// `resourceVersion`.
fn upsert<T: Metadata<Ty = ObjectMeta>>(rv: &mut u64, items: &mut Vec<T>, mut obj: T) {
    *rv += 1;
    obj.metadata_mut().resource_version = Some(rv.to_string());
    obj.metadata_mut().uid = Some(format!("00000000-0000-4000-8000-{:012x}", *rv));
    let key = |o: &T| (o.metadata().namespace.clone(), o.metadata().name.clone());
    match items.iter_mut().find(|o| key(o) == key(&obj)) {
        Some(slot) => *slot = obj,
        None => items.push(obj),
    }
}

impl Model {
    pub fn new(addr: SocketAddr) -> Model {
        Model {
            addr,
            git_version: "v1.33.0".to_owned(),
            requests: 0,
            resource_version: 1,
            nodes: Vec::new(),
            deployments: Vec::new(),
            daemonsets: Vec::new(),
            statefulsets: Vec::new(),
            pods: Vec::new(),
        }
    }

    pub fn upsert_node(&mut self, n: Node) {
        upsert(&mut self.resource_version, &mut self.nodes, n);
    }
    pub fn upsert_deployment(&mut self, d: Deployment) {
        upsert(&mut self.resource_version, &mut self.deployments, d);
    }
    pub fn upsert_daemonset(&mut self, d: DaemonSet) {
        upsert(&mut self.resource_version, &mut self.daemonsets, d);
    }
    pub fn upsert_statefulset(&mut self, s: StatefulSet) {
        upsert(&mut self.resource_version, &mut self.statefulsets, s);
    }
    pub fn upsert_pod(&mut self, p: Pod) {
        upsert(&mut self.resource_version, &mut self.pods, p);
    }

    pub fn set_node_ready(&mut self, name: &str, ready: bool) {
        let Some(node) = self
            .nodes
            .iter()
            .find(|n| n.metadata.name.as_deref() == Some(name))
        else {
            return;
        };
        let mut node = node.clone();
        if let Some(c) = node
            .status
            .as_mut()
            .and_then(|s| s.conditions.as_mut())
            .and_then(|cs| cs.iter_mut().find(|c| c.type_ == "Ready"))
        {
            *c = ready_condition(ready);
        }
        self.upsert_node(node);
    }

    /// Namespaces holding at least one object, plus the ones every cluster has.
    pub fn namespaces(&self) -> Vec<String> {
        let mut all: Vec<String> = ["default", "kube-node-lease", "kube-public", "kube-system"]
            .map(String::from)
            .to_vec();
        let ns = |m: &ObjectMeta| m.namespace.clone();
        all.extend(self.deployments.iter().filter_map(|o| ns(&o.metadata)));
        all.extend(self.daemonsets.iter().filter_map(|o| ns(&o.metadata)));
        all.extend(self.statefulsets.iter().filter_map(|o| ns(&o.metadata)));
        all.extend(self.pods.iter().filter_map(|o| ns(&o.metadata)));
        all.sort();
        all.dedup();
        all
    }
}

fn meta(ns: Option<&str>, name: &str, labels: BTreeMap<String, String>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: ns.map(str::to_owned),
        labels: Some(labels),
        generation: Some(1),
        ..ObjectMeta::default()
    }
}

fn app_labels(name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([("app".to_owned(), name.to_owned())])
}

fn ready_condition(ready: bool) -> NodeCondition {
    let (status, reason, message) = if ready {
        ("True", "KubeletReady", "kubelet is posting ready status")
    } else {
        (
            "False",
            "KubeletNotReady",
            "container runtime network not ready",
        )
    };
    NodeCondition {
        type_: "Ready".to_owned(),
        status: status.to_owned(),
        reason: Some(reason.to_owned()),
        message: Some(message.to_owned()),
        ..NodeCondition::default()
    }
}

pub(super) fn node(name: &str, ready: bool, kubelet_version: &str) -> Node {
    let labels = BTreeMap::from([
        ("kubernetes.io/hostname".to_owned(), name.to_owned()),
        ("kubernetes.io/os".to_owned(), "linux".to_owned()),
    ]);
    let mut metadata = meta(None, name, labels);
    metadata.generation = None;
    Node {
        metadata,
        spec: Some(NodeSpec::default()),
        status: Some(NodeStatus {
            conditions: Some(vec![ready_condition(ready)]),
            node_info: Some(NodeSystemInfo {
                kubelet_version: kubelet_version.to_owned(),
                architecture: "amd64".to_owned(),
                operating_system: "linux".to_owned(),
                container_runtime_version: "containerd://1.7.27".to_owned(),
                ..NodeSystemInfo::default()
            }),
            ..NodeStatus::default()
        }),
    }
}

fn template(name: &str, image: &str) -> PodTemplateSpec {
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(app_labels(name)),
            ..ObjectMeta::default()
        }),
        spec: Some(PodSpec {
            containers: vec![Container {
                name: name.to_owned(),
                image: Some(image.to_owned()),
                ..Container::default()
            }],
            ..PodSpec::default()
        }),
    }
}

fn selector(name: &str) -> LabelSelector {
    LabelSelector {
        match_labels: Some(app_labels(name)),
        ..LabelSelector::default()
    }
}

pub(super) fn deployment(
    ns: &str,
    name: &str,
    replicas: i32,
    available: i32,
    image: &str,
) -> Deployment {
    Deployment {
        metadata: meta(Some(ns), name, app_labels(name)),
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            selector: selector(name),
            template: template(name, image),
            ..DeploymentSpec::default()
        }),
        status: Some(DeploymentStatus {
            observed_generation: Some(1),
            replicas: Some(replicas),
            available_replicas: Some(available),
            ready_replicas: Some(available),
            updated_replicas: Some(replicas),
            unavailable_replicas: (replicas > available).then_some(replicas - available),
            ..DeploymentStatus::default()
        }),
    }
}

pub(super) fn daemonset(
    ns: &str,
    name: &str,
    desired: i32,
    available: i32,
    image: &str,
) -> DaemonSet {
    DaemonSet {
        metadata: meta(Some(ns), name, app_labels(name)),
        spec: Some(DaemonSetSpec {
            selector: selector(name),
            template: template(name, image),
            ..DaemonSetSpec::default()
        }),
        status: Some(DaemonSetStatus {
            observed_generation: Some(1),
            desired_number_scheduled: desired,
            current_number_scheduled: desired,
            updated_number_scheduled: Some(desired),
            number_ready: available,
            number_available: Some(available),
            number_unavailable: (desired > available).then_some(desired - available),
            number_misscheduled: 0,
            ..DaemonSetStatus::default()
        }),
    }
}

pub(super) fn statefulset(
    ns: &str,
    name: &str,
    replicas: i32,
    ready: i32,
    image: &str,
) -> StatefulSet {
    StatefulSet {
        metadata: meta(Some(ns), name, app_labels(name)),
        spec: Some(StatefulSetSpec {
            replicas: Some(replicas),
            selector: selector(name),
            service_name: Some(name.to_owned()),
            template: template(name, image),
            ..StatefulSetSpec::default()
        }),
        status: Some(StatefulSetStatus {
            observed_generation: Some(1),
            replicas,
            ready_replicas: Some(ready),
            available_replicas: Some(ready),
            current_replicas: Some(replicas),
            updated_replicas: Some(replicas),
            ..StatefulSetStatus::default()
        }),
    }
}

pub(super) fn pod(ns: &str, name: &str, waiting_reason: Option<&str>, restarts: i32) -> Pod {
    let state = match waiting_reason {
        Some(reason) => ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(reason.to_owned()),
                ..ContainerStateWaiting::default()
            }),
            ..ContainerState::default()
        },
        None => ContainerState {
            running: Some(ContainerStateRunning::default()),
            ..ContainerState::default()
        },
    };
    let ready = waiting_reason.is_none();
    let mut metadata = meta(Some(ns), name, BTreeMap::new());
    metadata.generation = None;
    Pod {
        metadata,
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "main".to_owned(),
                ..Container::default()
            }],
            ..PodSpec::default()
        }),
        status: Some(PodStatus {
            phase: Some("Running".to_owned()),
            container_statuses: Some(vec![ContainerStatus {
                name: "main".to_owned(),
                ready,
                started: Some(ready),
                restart_count: restarts,
                state: Some(state),
                ..ContainerStatus::default()
            }]),
            ..PodStatus::default()
        }),
    }
}

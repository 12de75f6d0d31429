//! The fake cluster's objects, stored as the real `k8s_openapi` types.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use k8s_openapi::Metadata;
use k8s_openapi::api::apps::v1::{
    DaemonSet, DaemonSetSpec, DaemonSetStatus, Deployment, DeploymentSpec, DeploymentStatus,
    StatefulSet, StatefulSetSpec, StatefulSetStatus,
};
use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateWaiting, ContainerStatus, Node,
    NodeCondition, NodeSpec, NodeStatus, NodeSystemInfo, Pod, PodSpec, PodStatus, PodTemplateSpec,
    Taint,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, Time};
use serde_json::Value;

use super::ResourceKind;

/// The taint `kubectl cordon` (and the node controller) puts on an unschedulable node.
const UNSCHEDULABLE_TAINT: &str = "node.kubernetes.io/unschedulable";

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
    /// Kinds served from JSON objects (custom resources, old API versions), in registration
    /// order.
    pub kinds: Vec<ResourceKind>,
    /// Their objects.
    pub objects: Vec<StoredObject>,
    /// Answer every request with a 500.
    pub errors: bool,
    /// Delay every answer by this much.
    pub slow: Option<Duration>,
    /// Since when the workloads outside `kube-system` crash-loop.
    pub crashloop_since: Option<Instant>,
    /// Answers given, by HTTP status code (for `apiserver_request_total`).
    pub responses: BTreeMap<u16, u64>,
    /// Deprecated APIs that were requested (`apiserver_requested_deprecated_apis`).
    pub deprecated_requested: BTreeSet<DeprecatedApi>,
    /// When the server started (`process_start_time_seconds`).
    pub started: SystemTime,
    /// The latest requests, oldest first, at most [`REQUEST_LOG_LIMIT`].
    pub log: VecDeque<RequestRecord>,
}

/// How many requests [`Model::log`] keeps.
pub(super) const REQUEST_LOG_LIMIT: usize = 1000;

/// One request as the fake answered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    /// The path, without the query (`/apis/apps/v1/deployments`).
    pub path: String,
    /// The `Accept` header, if any.
    pub accept: Option<String>,
    /// The answer's status code.
    pub status: u16,
}

/// One deprecated API that was requested: the labels of `apiserver_requested_deprecated_apis`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct DeprecatedApi {
    pub group: String,
    pub version: String,
    pub resource: String,
    pub subresource: String,
    pub removed_release: String,
}

/// A JSON object of a [`ResourceKind`].
#[derive(Debug, Clone)]
pub(super) struct StoredObject {
    pub api_version: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
    pub value: Value,
}

/// Replaces the object with the same namespace and name, or appends it, stamping a fresh
/// `resourceVersion`.
fn upsert<T: Metadata<Ty = ObjectMeta>>(rv: &mut u64, items: &mut Vec<T>, mut obj: T) {
    *rv += 1;
    let key = |o: &T| (o.metadata().namespace.clone(), o.metadata().name.clone());
    let slot = items.iter_mut().find(|o| key(o) == key(&obj));
    // A replaced object keeps its identity and age, as an updated object does.
    let (uid, created) = match &slot {
        Some(old) => (
            old.metadata().uid.clone(),
            old.metadata().creation_timestamp.clone(),
        ),
        None => (None, None),
    };
    let meta = obj.metadata_mut();
    meta.resource_version = Some(rv.to_string());
    meta.uid = uid.or_else(|| Some(format!("00000000-0000-4000-8000-{:012x}", *rv)));
    meta.creation_timestamp = meta.creation_timestamp.take().or(created).or_else(now);
    match slot {
        Some(slot) => *slot = obj,
        None => items.push(obj),
    }
}

/// The current time, to the second, as object metadata carries it.
fn now() -> Option<Time> {
    time_of(SystemTime::now())
}

/// A time, to the second, as object metadata carries it.
pub(super) fn time_of(t: SystemTime) -> Option<Time> {
    let secs = t.duration_since(UNIX_EPOCH).ok()?.as_secs();
    let ts = k8s_openapi::jiff::Timestamp::from_second(i64::try_from(secs).ok()?).ok()?;
    Some(Time(ts))
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
            kinds: Vec::new(),
            objects: Vec::new(),
            errors: false,
            slow: None,
            crashloop_since: None,
            responses: BTreeMap::new(),
            deprecated_requested: BTreeSet::new(),
            started: SystemTime::now(),
            log: VecDeque::new(),
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

    pub fn set_node_cordoned(&mut self, name: &str, cordoned: bool) {
        let Some(node) = self
            .nodes
            .iter()
            .find(|n| n.metadata.name.as_deref() == Some(name))
        else {
            return;
        };
        let mut node = node.clone();
        let spec = node.spec.get_or_insert_with(NodeSpec::default);
        let mut taints: Vec<Taint> = spec
            .taints
            .take()
            .unwrap_or_default()
            .into_iter()
            .filter(|t| t.key != UNSCHEDULABLE_TAINT)
            .collect();
        if cordoned {
            taints.push(Taint {
                key: UNSCHEDULABLE_TAINT.to_owned(),
                effect: "NoSchedule".to_owned(),
                ..Taint::default()
            });
        }
        spec.unschedulable = cordoned.then_some(true);
        spec.taints = (!taints.is_empty()).then_some(taints);
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
        all.extend(self.objects.iter().filter_map(|o| o.namespace.clone()));
        all.sort();
        all.dedup();
        all
    }

    /// Registers (or replaces) a kind served from JSON objects.
    pub fn register_kind(&mut self, kind: ResourceKind) {
        let same = |k: &ResourceKind| k.api_version() == kind.api_version() && k.kind == kind.kind;
        match self.kinds.iter_mut().find(|k| same(k)) {
            Some(slot) => *slot = kind,
            None => self.kinds.push(kind),
        }
    }

    /// Forgets a kind and its objects; `false` when it was not registered.
    pub fn unregister_kind(&mut self, api_version: &str, kind: &str) -> bool {
        let before = self.kinds.len();
        self.kinds
            .retain(|k| !(k.api_version() == api_version && k.kind == kind));
        self.objects
            .retain(|o| !(o.api_version == api_version && o.kind == kind));
        self.kinds.len() != before
    }

    /// The registered kind served at `group/version/plural`.
    pub fn kind_by_plural(
        &self,
        group: &str,
        version: &str,
        plural: &str,
    ) -> Option<&ResourceKind> {
        self.kinds
            .iter()
            .find(|k| k.group == group && k.version == version && k.plural == plural)
    }

    /// Stores a JSON object of a registered kind, stamping `resourceVersion`, `uid`,
    /// `generation` and `creationTimestamp` like the API server does.
    pub fn upsert_object(&mut self, mut value: Value) -> Result<(), ObjectError> {
        let text = |v: &Value, field: &'static str| -> Result<String, ObjectError> {
            v.get(field)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .ok_or(ObjectError::MissingField(field))
        };
        if !value.is_object() {
            return Err(ObjectError::NotAnObject);
        }
        let api_version = text(&value, "apiVersion")?;
        let kind = text(&value, "kind")?;
        let Some(registered) = self
            .kinds
            .iter()
            .find(|k| k.api_version() == api_version && k.kind == kind)
        else {
            return Err(ObjectError::UnknownKind { api_version, kind });
        };
        let namespaced = registered.namespaced;
        let meta = value
            .get("metadata")
            .ok_or(ObjectError::MissingField("metadata"))?;
        let name = text(meta, "name").map_err(|_| ObjectError::MissingField("metadata.name"))?;
        let namespace = meta
            .get("namespace")
            .and_then(Value::as_str)
            .map(str::to_owned);
        match (namespaced, &namespace) {
            (true, None) => return Err(ObjectError::MissingField("metadata.namespace")),
            (false, Some(ns)) => {
                return Err(ObjectError::NamespaceOnClusterScoped {
                    kind,
                    namespace: ns.clone(),
                });
            }
            _ => {}
        }
        self.resource_version += 1;
        let rv = self.resource_version;
        let old = self.objects.iter().find(|o| {
            o.api_version == api_version
                && o.kind == kind
                && o.namespace == namespace
                && o.name == name
        });
        let kept = |field: &str| {
            old.and_then(|o| o.value.pointer(&format!("/metadata/{field}")))
                .cloned()
        };
        let uid = kept("uid")
            .unwrap_or_else(|| Value::from(format!("00000000-0000-4000-8000-{rv:012x}")));
        let created = kept("creationTimestamp").unwrap_or_else(|| {
            Value::from(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        });
        if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.insert("resourceVersion".to_owned(), Value::from(rv.to_string()));
            meta.insert("uid".to_owned(), uid);
            meta.entry("generation").or_insert(Value::from(1));
            meta.entry("creationTimestamp").or_insert(created);
        }
        let stored = StoredObject {
            api_version,
            kind,
            namespace,
            name,
            value,
        };
        let same = |o: &StoredObject| {
            o.api_version == stored.api_version
                && o.kind == stored.kind
                && o.namespace == stored.namespace
                && o.name == stored.name
        };
        match self.objects.iter_mut().find(|o| same(o)) {
            Some(slot) => *slot = stored,
            None => self.objects.push(stored),
        }
        Ok(())
    }

    /// Removes one object, built-in or not; `false` when there was none.
    pub fn remove_object(
        &mut self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> bool {
        fn remove<T: Metadata<Ty = ObjectMeta>>(
            items: &mut Vec<T>,
            namespace: Option<&str>,
            name: &str,
        ) -> bool {
            let before = items.len();
            items.retain(|o| {
                let m = o.metadata();
                !(m.name.as_deref() == Some(name) && m.namespace.as_deref() == namespace)
            });
            items.len() != before
        }
        let removed = match (api_version, kind) {
            ("v1", "Node") => remove(&mut self.nodes, namespace, name),
            ("v1", "Pod") => remove(&mut self.pods, namespace, name),
            ("apps/v1", "Deployment") => remove(&mut self.deployments, namespace, name),
            ("apps/v1", "DaemonSet") => remove(&mut self.daemonsets, namespace, name),
            ("apps/v1", "StatefulSet") => remove(&mut self.statefulsets, namespace, name),
            _ => {
                let before = self.objects.len();
                self.objects.retain(|o| {
                    !(o.api_version == api_version
                        && o.kind == kind
                        && o.namespace.as_deref() == namespace
                        && o.name == name)
                });
                self.objects.len() != before
            }
        };
        if removed {
            self.resource_version += 1;
        }
        removed
    }

    /// Records that a deprecated API was requested.
    pub fn deprecated_requested(&mut self, kind: &ResourceKind) {
        if let Some(release) = &kind.removed_release {
            self.deprecated_requested.insert(DeprecatedApi {
                group: kind.group.clone(),
                version: kind.version.clone(),
                resource: kind.plural.clone(),
                subresource: String::new(),
                removed_release: release.clone(),
            });
        }
    }
}

/// Why [`super::FakeCluster::upsert_object`] refused an object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ObjectError {
    /// The value is not a JSON object.
    #[error("a Kubernetes object must be a JSON object")]
    NotAnObject,
    /// A field the API server needs is missing or empty.
    #[error("the object has no `{0}`")]
    MissingField(&'static str),
    /// No kind was registered for this `apiVersion` and `kind`.
    #[error(
        "kind {kind} of {api_version} is not served: register it with FakeCluster::register_kind first"
    )]
    UnknownKind {
        /// The object's `apiVersion`.
        api_version: String,
        /// The object's `kind`.
        kind: String,
    },
    /// A cluster-scoped object names a namespace.
    #[error("{kind} is cluster-scoped but the object names namespace `{namespace}`")]
    NamespaceOnClusterScoped {
        /// The object's `kind`.
        kind: String,
        /// The namespace it named.
        namespace: String,
    },
}

pub(super) fn running() -> ContainerState {
    ContainerState {
        running: Some(ContainerStateRunning::default()),
        ..ContainerState::default()
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
        None => running(),
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

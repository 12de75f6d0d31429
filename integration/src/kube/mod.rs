//! # A fake Kubernetes API server on loopback
//!
//! One [`FakeCluster`] is one cluster's API endpoint (DESIGN §10): it answers the read-only
//! subset ringmaster needs in the real wire format — the JSON of the real `k8s_openapi` types,
//! typed lists (`NodeList`, ...), discovery in both the legacy format (`/api`, `/apis`,
//! `/apis/{group}/{version}`) and the aggregated one (`apidiscovery.k8s.io/v2` and `v2beta1`,
//! chosen by the `Accept` header as kubectl ≥ 1.26 asks), label selectors, `Status` errors and
//! the API server's own `/metrics` — so the real `kube` client and `kubectl get` work against
//! it. Watches, writes, field selectors, pagination and OpenAPI documents are not served
//! (`/openapi/*` answers 404, which `kubectl get` tolerates).
//!
//! Tests shape the cluster through helper methods ([`FakeCluster::add_node`], ...), register
//! custom resources and old API versions ([`FakeCluster::register_kind`],
//! [`FakeCluster::upsert_object`]), inject faults ([`FakeCluster::set_unreachable`],
//! [`FakeCluster::set_errors`], [`FakeCluster::set_slow`], [`FakeCluster::set_crashloop`],
//! [`FakeCluster::set_removed_api`]) and point clients at it through a kubeconfig written by
//! [`write_kubeconfig`].

mod crashloop;
mod discovery;
mod kinds;
mod metrics;
mod model;
mod net;
mod routes;
mod table;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

pub use kinds::ResourceKind;
pub use model::{ObjectError, RequestRecord};

pub(crate) use metrics::escape as escape_label_value;

use model::Model;

/// Objects that a cluster with the removed-API fault still serves under API versions that
/// Kubernetes 1.25 removed: (kind, name in namespace `default`). See
/// [`FakeCluster::set_removed_api`].
pub const LEGACY_OBJECTS: [(&str, &str); 2] = [
    ("PodDisruptionBudget", "legacy-pdb"),
    ("CronJob", "legacy-cronjob"),
];

/// The release that removed `policy/v1beta1` PodDisruptionBudget and `batch/v1beta1` CronJob.
pub const LEGACY_REMOVED_RELEASE: &str = "1.25";

/// The namespace the removed-API fault's objects live in.
const LEGACY_NAMESPACE: &str = "default";

/// The shared state behind one fake cluster.
type Shared = Arc<Mutex<Model>>;

fn lock(shared: &Shared) -> MutexGuard<'_, Model> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A fake Kubernetes API server listening on `127.0.0.1`. The server stops when this is dropped.
#[derive(Debug)]
pub struct FakeCluster {
    addr: SocketAddr,
    shared: Shared,
    down: Arc<AtomicBool>,
    server: JoinHandle<()>,
}

impl FakeCluster {
    /// Binds an ephemeral loopback port and starts serving an empty cluster (version
    /// `v1.33.0`, no nodes or workloads).
    pub async fn start() -> std::io::Result<FakeCluster> {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let shared: Shared = Arc::new(Mutex::new(Model::new(addr)));
        let app = routes::router(shared.clone());
        let down = Arc::new(AtomicBool::new(false));
        let listener = net::GatedListener {
            inner: listener,
            down: down.clone(),
        };
        let server = tokio::spawn(async move {
            // The server only ends with an I/O error on the listener or when aborted on drop.
            let _ = axum::serve(listener, app).await;
        });
        Ok(FakeCluster {
            addr,
            shared,
            down,
            server,
        })
    }

    /// The API server's URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Sets the `/version` answer; `major` and `minor` are derived from `git_version`
    /// (`v1.32.4-eks-1a2b3c` → `1`, `32`).
    pub fn set_version(&self, git_version: &str) {
        lock(&self.shared).git_version = git_version.to_owned();
    }

    /// Adds (or replaces) a node with a `Ready` condition and `nodeInfo.kubeletVersion`.
    pub fn add_node(&self, name: &str, ready: bool, kubelet_version: &str) {
        let mut m = lock(&self.shared);
        let node = model::node(name, ready, kubelet_version);
        m.upsert_node(node);
    }

    /// Flips a node's `Ready` condition; unknown nodes are ignored.
    pub fn set_node_ready(&self, name: &str, ready: bool) {
        lock(&self.shared).set_node_ready(name, ready);
    }

    /// Cordons (`spec.unschedulable: true` and the `node.kubernetes.io/unschedulable`
    /// NoSchedule taint, as `kubectl cordon` leaves it) or uncordons a node; unknown nodes are
    /// ignored.
    pub fn set_node_cordoned(&self, name: &str, cordoned: bool) {
        lock(&self.shared).set_node_cordoned(name, cordoned);
    }

    /// Adds (or replaces) a deployment labelled `app=<name>` whose single container runs `image`.
    pub fn add_deployment(&self, ns: &str, name: &str, replicas: i32, available: i32, image: &str) {
        let d = model::deployment(ns, name, replicas, available, image);
        lock(&self.shared).upsert_deployment(d);
    }

    /// Adds (or replaces) a daemon set labelled `app=<name>`.
    pub fn add_daemonset(&self, ns: &str, name: &str, desired: i32, available: i32, image: &str) {
        let d = model::daemonset(ns, name, desired, available, image);
        lock(&self.shared).upsert_daemonset(d);
    }

    /// Adds (or replaces) a stateful set labelled `app=<name>`.
    pub fn add_statefulset(&self, ns: &str, name: &str, replicas: i32, ready: i32, image: &str) {
        let s = model::statefulset(ns, name, replicas, ready, image);
        lock(&self.shared).upsert_statefulset(s);
    }

    /// Adds (or replaces) a running pod with one container; `waiting_reason` (e.g.
    /// `CrashLoopBackOff`) makes that container waiting and not ready.
    pub fn add_pod(&self, ns: &str, name: &str, waiting_reason: Option<&str>, restarts: i32) {
        let p = model::pod(ns, name, waiting_reason, restarts);
        lock(&self.shared).upsert_pod(p);
    }

    /// While set, the cluster is unreachable: every connection, new or kept alive, is reset
    /// before an answer, so clients get a transport error (not a retried 503).
    pub fn set_unreachable(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// While set, every request (discovery, `/version` and `/metrics` included) answers
    /// `500 Internal Server Error` with a `Status` body.
    pub fn set_errors(&self, on: bool) {
        lock(&self.shared).errors = on;
    }

    /// Delays every answer by `delay` (`None`: answer at once).
    pub fn set_slow(&self, delay: Option<Duration>) {
        lock(&self.shared).slow = delay;
    }

    /// While set, every pod outside `kube-system` is in `CrashLoopBackOff` (not ready, its
    /// restart count growing by one per second), and every Deployment, DaemonSet and
    /// StatefulSet outside `kube-system` reports no replica available. Clearing it brings the
    /// pods back to running; their restarts stay counted.
    pub fn set_crashloop(&self, on: bool) {
        lock(&self.shared).set_crashloop(on);
    }

    /// Whether the crash loop of [`FakeCluster::set_crashloop`] is on.
    pub fn crashlooping(&self) -> bool {
        lock(&self.shared).crashloop_since.is_some()
    }

    /// The removed-API fault: while set, the cluster still serves objects under API versions
    /// removed in Kubernetes 1.25 — `policy/v1beta1` PodDisruptionBudget `default/legacy-pdb`
    /// and `batch/v1beta1` CronJob `default/legacy-cronjob` ([`LEGACY_OBJECTS`]) — and
    /// `/metrics` reports both APIs in `apiserver_requested_deprecated_apis` with
    /// `removed_release="1.25"`. Clearing it removes the objects, the kinds and those series.
    pub fn set_removed_api(&self, on: bool) {
        let mut m = lock(&self.shared);
        for (kind, object) in legacy_kinds() {
            if on {
                m.register_kind(kind.clone());
                // The bodies are built here and always carry what upsert_object needs.
                let _ = m.upsert_object(object);
                m.deprecated_requested(&kind);
            } else {
                m.unregister_kind(&kind.api_version(), &kind.kind);
                m.deprecated_requested.retain(|d| {
                    !(d.group == kind.group
                        && d.version == kind.version
                        && d.resource == kind.plural)
                });
            }
        }
    }

    /// Registers (or replaces) a kind served from JSON objects: a custom resource or an old
    /// API version. It shows in discovery and is served at its list and get URLs.
    pub fn register_kind(&self, kind: ResourceKind) {
        lock(&self.shared).register_kind(kind);
    }

    /// Stops serving a registered kind and drops its objects; `false` when it was not
    /// registered.
    pub fn unregister_kind(&self, api_version: &str, kind: &str) -> bool {
        lock(&self.shared).unregister_kind(api_version, kind)
    }

    /// Adds (or replaces, by namespace and name) an object of a registered kind. The object
    /// needs `apiVersion`, `kind`, `metadata.name`, and `metadata.namespace` exactly when the
    /// kind is namespaced; `resourceVersion`, `uid`, `generation` and `creationTimestamp` are
    /// filled in.
    pub fn upsert_object(&self, object: Value) -> Result<(), ObjectError> {
        lock(&self.shared).upsert_object(object)
    }

    /// Removes an object — of a registered kind or a built-in one (`v1` Node and Pod, `apps/v1`
    /// Deployment, DaemonSet and StatefulSet); `false` when there was none.
    pub fn remove_object(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> bool {
        lock(&self.shared).remove_object(api_version, kind, namespace, name)
    }

    /// Reports a deprecated API as requested in `apiserver_requested_deprecated_apis` (as if a
    /// client had used it): `group`, `version`, `resource` (plural) and the release that
    /// removes it (`"1.25"`). Requests to registered kinds with a `removed_release` are
    /// recorded by themselves.
    pub fn record_deprecated_request(
        &self,
        group: &str,
        version: &str,
        resource: &str,
        removed_release: &str,
    ) {
        lock(&self.shared)
            .deprecated_requested
            .insert(model::DeprecatedApi {
                group: group.to_owned(),
                version: version.to_owned(),
                resource: resource.to_owned(),
                subresource: String::new(),
                removed_release: removed_release.to_owned(),
            });
    }

    /// Empties `apiserver_requested_deprecated_apis` (an API server restart).
    pub fn clear_deprecated_requests(&self) {
        lock(&self.shared).deprecated_requested.clear();
    }

    /// The API server's own metrics endpoint, `http://127.0.0.1:PORT/metrics`.
    pub fn metrics_url(&self) -> String {
        format!("http://{}/metrics", self.addr)
    }

    /// The `/version` answer's `gitVersion`.
    pub fn git_version(&self) -> String {
        lock(&self.shared).git_version.clone()
    }

    /// The nodes as stored.
    pub fn nodes(&self) -> Vec<Node> {
        lock(&self.shared).nodes.clone()
    }

    /// The latest requests answered (at most 1000), oldest first.
    pub fn request_log(&self) -> Vec<RequestRecord> {
        lock(&self.shared).log.iter().cloned().collect()
    }

    /// How many HTTP requests the server has answered (none while unreachable).
    pub fn requests(&self) -> usize {
        lock(&self.shared).requests
    }
}

impl Drop for FakeCluster {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Writes a kubeconfig with one context (and cluster and user of the same name) per
/// `(name, url)`, without credentials; the first context is current. The file is JSON, which
/// `kube::config::Kubeconfig::read_from` and `kubectl` read as YAML.
pub fn write_kubeconfig(path: &Path, contexts: &[(&str, String)]) -> std::io::Result<()> {
    let clusters: Vec<_> = contexts
        .iter()
        .map(|(name, url)| serde_json::json!({"name": name, "cluster": {"server": url}}))
        .collect();
    let users: Vec<_> = contexts
        .iter()
        .map(|(name, _)| serde_json::json!({"name": name, "user": {}}))
        .collect();
    let ctxs: Vec<_> = contexts
        .iter()
        .map(|(name, _)| {
            serde_json::json!({"name": name, "context": {"cluster": name, "user": name}})
        })
        .collect();
    let mut doc = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": clusters,
        "users": users,
        "contexts": ctxs,
    });
    if let Some((first, _)) = contexts.first() {
        doc["current-context"] = serde_json::Value::from(*first);
    }
    let text = serde_json::to_string_pretty(&doc).map_err(std::io::Error::other)?;
    std::fs::write(path, text)
}

/// The kinds and objects of the removed-API fault.
fn legacy_kinds() -> [(ResourceKind, Value); 2] {
    let pdb = ResourceKind::namespaced(
        "policy",
        "v1beta1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
    )
    .removed_in(LEGACY_REMOVED_RELEASE)
    .with_short_names(&["pdb"]);
    let cronjob = ResourceKind::namespaced("batch", "v1beta1", "CronJob", "cronjobs")
        .removed_in(LEGACY_REMOVED_RELEASE)
        .with_short_names(&["cj"]);
    let [(_, pdb_name), (_, cronjob_name)] = LEGACY_OBJECTS;
    let pdb_object = json!({
        "apiVersion": pdb.api_version(),
        "kind": pdb.kind,
        "metadata": {"name": pdb_name, "namespace": LEGACY_NAMESPACE, "labels": {"app": "web"}},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}},
        "status": {"currentHealthy": 1, "desiredHealthy": 1, "disruptionsAllowed": 0, "expectedPods": 1},
    });
    let cronjob_object = json!({
        "apiVersion": cronjob.api_version(),
        "kind": cronjob.kind,
        "metadata": {"name": cronjob_name, "namespace": LEGACY_NAMESPACE, "labels": {"app": "report"}},
        "spec": {
            "schedule": "0 3 * * *",
            "jobTemplate": {"spec": {"template": {"spec": {
                "restartPolicy": "OnFailure",
                "containers": [{"name": "report", "image": "registry.k8s.example/report:v1.0.0"}],
            }}}},
        },
        "status": {},
    });
    [(pdb, pdb_object), (cronjob, cronjob_object)]
}

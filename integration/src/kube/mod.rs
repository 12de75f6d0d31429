//! # A fake Kubernetes API server on loopback
//!
//! One [`FakeCluster`] is one cluster's API endpoint (DESIGN §10): it answers the read-only
//! subset ringmaster needs in the real wire format — the JSON of the real `k8s_openapi` types,
//! typed lists (`NodeList`, ...), legacy discovery (`/api`, `/apis`), label selectors and `Status`
//! errors — so the real `kube` client and `kubectl get` work against it. Watches, writes, field
//! selectors and pagination are not served.
//!
//! Tests shape the cluster through helper methods ([`FakeCluster::add_node`], ...), inject an
//! outage ([`FakeCluster::set_unreachable`]) and point clients at it through a kubeconfig
//! written by [`write_kubeconfig`].

mod model;
mod net;
mod routes;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::task::JoinHandle;

use model::Model;

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

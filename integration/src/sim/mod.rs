//! # The simulated fleet (DESIGN §10, §12)
//!
//! [`SimFleet::start`] reads the fleet registry committed on a GitOps repository's base branch
//! and serves one fake Kubernetes API server ([`crate::kube::FakeCluster`]) per registry entry
//! on loopback, plus one Prometheus metrics listener per cluster, and writes a kubeconfig with
//! one context per cluster. It then polls the base branch (git2; the registry is re-read only
//! when the head moves) and, `converge_after` after a cluster's versions change, converges it
//! in stages `step_delay` apart: the control plane, then each node in turn (cordoned, then
//! NotReady, then Ready and schedulable with the new kubelet — one node at a time, as a managed
//! node group rolls), then the add-ons, then the policy bundles. Faults
//! ([`FaultKind`]) apply from the start or once a cluster has converged to a Kubernetes minor.
//! Everything stops when the [`SimFleet`] is dropped.
//!
//! The demo (`ringmaster demo`), the end-to-end tests and the `ringmaster-sim` binary use it;
//! ringmaster itself cannot tell these clusters from real ones.
//!
//! ## Conventions (other code relies on these exact names)
//!
//! - **Control plane**: `/version` reports `gitVersion` `v{major}.{minor}.{patch}` in the
//!   provider's style — `v1.33.4-eks-1a2b3c` on `provider: aws` / `service: eks`, `v1.33.2` on
//!   `azure` / `aks`, `v1.33.1` elsewhere; the registry's patch is used when it names one.
//! - **Nodes**: [`NODE_COUNT`] nodes `<clusterId>-node-1` … `-node-3`, Ready, kubelet version
//!   equal to the control plane's `gitVersion`. When the minor moves, each node in turn is
//!   cordoned (`spec.unschedulable`, taint `node.kubernetes.io/unschedulable:NoSchedule`),
//!   then NotReady, then Ready and schedulable at the new kubelet: at most one node is out at
//!   a time, and a roll of the three takes about `3 × 2 × step_delay`.
//! - **Add-ons**: each add-on `<name>` of the registry entry is a Deployment `<name>` in
//!   namespace `kube-system`, labelled `app=<name>`, [`ADDON_REPLICAS`] replicas all
//!   available, one container named `<name>` with image
//!   `registry.k8s.example/<name>:v<version>` — the version exactly as the registry writes it
//!   (`1.11.3-eksbuild.2` → `registry.k8s.example/coredns:v1.11.3-eksbuild.2`; a version that
//!   already starts with `v` is not prefixed again).
//! - **Policy bundles**: each policy `<name>` is a cluster-scoped custom resource
//!   `apiVersion: policies.ringmaster.dev/v1`, `kind: PolicyBundle` (plural `policybundles`,
//!   short name `pb`), `metadata.name: <name>`, with `spec.version` and `status.version` set to
//!   the version as written.
//! - **Applications** (what the `crashloop` fault breaks): Deployments `default/web` (3
//!   replicas) and `default/api` (2), StatefulSet `monitoring/prometheus` (1), DaemonSet
//!   `monitoring/node-exporter` (one per node), all available, with running pods
//!   `<workload>-<i>`.
//! - **Metrics**: `GET <metricsUrl>` (`http://127.0.0.1:PORT/metrics`) answers
//!   `http_requests_total{cluster="<id>",code="200"|"500"}` counters of virtual traffic
//!   ([`VIRTUAL_REQUESTS_PER_SECOND`]; about 0.1 % errors when healthy, 20 % while
//!   crash-looping), `kube_node_status_ready{cluster,node}` and `ringmaster_sim_up{cluster} 1`.
//!   The API server's own `/metrics` (on the API URL) carries
//!   `apiserver_requested_deprecated_apis`.
//! - **Kubeconfig**: one context per cluster, named by the cluster id (and a second one named
//!   by the registry's `kubeContext` when it differs), no credentials. It is written only when
//!   the registry has at least one cluster.
//!
//! Clusters added to the registry after the start are not served; clusters removed from it
//! keep running at their last versions.

mod cluster;
mod metrics;
mod options;
mod registry;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::kube::{FakeCluster, write_kubeconfig};
use cluster::{SimCluster, Timing};
use registry::{Polled, Source};

pub use metrics::{CRASHLOOP_ERROR_RATIO, HEALTHY_ERROR_RATIO, VIRTUAL_REQUESTS_PER_SECOND};
pub use options::{
    DEFAULT_CONVERGE_AFTER, DEFAULT_GITHUB_FAULT_FOR, DEFAULT_KUBECONFIG, DEFAULT_POLL,
    DEFAULT_STEP_DELAY, Fault, FaultKind, GitHubFaultSpec, SimOptions, parse_duration,
};

/// Nodes per simulated cluster.
pub const NODE_COUNT: usize = 3;
/// Replicas of each add-on Deployment.
pub const ADDON_REPLICAS: i32 = 2;
/// The namespace of the add-on Deployments.
pub const ADDON_NAMESPACE: &str = "kube-system";
/// The registry host of every simulated image.
pub const ADDON_IMAGE_REGISTRY: &str = "registry.k8s.example";
/// API group of the policy-bundle custom resource.
pub const POLICY_GROUP: &str = "policies.ringmaster.dev";
/// `apiVersion` of the policy-bundle custom resource.
pub const POLICY_API_VERSION: &str = "policies.ringmaster.dev/v1";
/// `kind` of the policy-bundle custom resource.
pub const POLICY_KIND: &str = "PolicyBundle";
/// Plural resource name of the policy-bundle custom resource.
pub const POLICY_PLURAL: &str = "policybundles";
/// How long each API answer of a cluster with the `slow` fault is delayed.
pub const SLOW_FAULT_DELAY: Duration = Duration::from_secs(3);

/// Why a simulated fleet did not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// The GitOps repository cannot be opened or its registry read or parsed.
    #[error("{0}")]
    Registry(String),
    /// A fault names a cluster the registry does not have.
    #[error("fault `{fault}`: no cluster `{cluster}` in the registry (clusters: {})", known_list(.known))]
    UnknownCluster {
        /// The fault as written.
        fault: String,
        /// The cluster it names.
        cluster: String,
        /// The clusters of the registry.
        known: Vec<String>,
    },
    /// A listener could not be bound or the kubeconfig not written.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

fn known_list(known: &[String]) -> String {
    if known.is_empty() {
        "none".to_owned()
    } else {
        known.join(", ")
    }
}

/// What one simulated cluster runs now.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SimClusterInfo {
    /// The cluster id (also its kubeconfig context).
    pub id: String,
    /// The API server, `http://127.0.0.1:PORT`.
    pub api_url: String,
    /// The metrics endpoint, `http://127.0.0.1:PORT/metrics`.
    pub metrics_url: String,
    /// The control plane's `gitVersion` (`v1.33.4-eks-1a2b3c`).
    pub kubernetes: String,
    /// Node name → kubelet version.
    pub kubelets: BTreeMap<String, String>,
    /// Add-on → image tag it runs (`v1.11.3-eksbuild.2`).
    pub addons: BTreeMap<String, String>,
    /// Policy bundle → version it reports.
    pub policies: BTreeMap<String, String>,
    /// Whether it runs what the base branch said when last read.
    pub converged: bool,
    /// The faults in effect.
    pub faults: Vec<FaultKind>,
}

/// A running simulated fleet. Dropping it stops every server and task.
#[derive(Debug)]
pub struct SimFleet {
    clusters: BTreeMap<String, Arc<SimCluster>>,
    kubeconfig: PathBuf,
    poller: JoinHandle<()>,
    metrics_servers: Vec<JoinHandle<()>>,
    registry_error: Arc<Mutex<Option<String>>>,
}

impl SimFleet {
    /// Reads the registry from the base branch, starts one cluster per entry at the versions
    /// it says, writes the kubeconfig, applies the faults and starts following the branch.
    pub async fn start(opts: SimOptions) -> Result<SimFleet, SimError> {
        let source = Source::open(&opts.repo, &opts.branch, &opts.registry_glob)
            .map_err(SimError::Registry)?;
        let (head, entries) = source.read().map_err(SimError::Registry)?;
        let known: Vec<String> = entries.iter().map(|e| e.id.clone()).collect();
        if let Some(f) = opts.faults.iter().find(|f| !known.contains(&f.cluster)) {
            return Err(SimError::UnknownCluster {
                fault: f.to_string(),
                cluster: f.cluster.clone(),
                known,
            });
        }
        let timing = Timing {
            converge_after: opts.converge_after,
            step_delay: opts.step_delay,
        };
        let mut clusters = BTreeMap::new();
        let mut metrics_servers = Vec::new();
        let mut contexts: Vec<(String, String)> = Vec::new();
        for entry in &entries {
            let io = |what: String| move |source| SimError::Io { what, source };
            let fake = FakeCluster::start()
                .await
                .map_err(io(format!("starting the API server of {}", entry.id)))?;
            let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                .await
                .map_err(io(format!("binding the metrics listener of {}", entry.id)))?;
            let addr = listener
                .local_addr()
                .map_err(io(format!("binding the metrics listener of {}", entry.id)))?;
            let metrics_url = format!("http://{addr}/metrics");
            contexts.push((entry.id.clone(), fake.url()));
            if let Some(ctx) = &entry.kube_context {
                contexts.push((ctx.clone(), fake.url()));
            }
            let cluster = Arc::new(SimCluster::new(entry, fake, metrics_url, timing));
            let app = metrics::router(Arc::clone(&cluster));
            metrics_servers.push(tokio::spawn(async move {
                // Serving ends only when aborted on drop (or on a listener I/O error).
                let _ = axum::serve(listener, app).await;
            }));
            clusters.insert(entry.id.clone(), cluster);
        }
        let kubeconfig = absolute(&opts.kubeconfig);
        if !contexts.is_empty() {
            let refs: Vec<(&str, String)> = contexts
                .iter()
                .map(|(name, url)| (name.as_str(), url.clone()))
                .collect();
            let io = |source| SimError::Io {
                what: format!("writing the kubeconfig {}", kubeconfig.display()),
                source,
            };
            if let Some(dir) = kubeconfig.parent() {
                std::fs::create_dir_all(dir).map_err(io)?;
            }
            write_kubeconfig(&kubeconfig, &refs).map_err(io)?;
        }
        for f in &opts.faults {
            if let Some(c) = clusters.get(&f.cluster) {
                c.inject(f.clone());
            }
        }
        let registry_error = Arc::new(Mutex::new(None));
        let poller = tokio::spawn(follow(
            source,
            head,
            clusters.clone(),
            opts.poll,
            Arc::clone(&registry_error),
        ));
        Ok(SimFleet {
            clusters,
            kubeconfig,
            poller,
            metrics_servers,
            registry_error,
        })
    }

    /// The kubeconfig written at start (absolute).
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// Every cluster, sorted by id.
    pub fn clusters(&self) -> Vec<SimClusterInfo> {
        self.clusters.values().map(|c| c.info()).collect()
    }

    /// One cluster's API server, for a test to shape further.
    pub fn cluster(&self, id: &str) -> Option<&FakeCluster> {
        self.clusters.get(id).map(|c| &c.fake)
    }

    /// Injects a fault (at once, or once the cluster has converged to `after_version`).
    /// Returns `false`, doing nothing, when the registry has no such cluster.
    pub fn inject(&self, fault: Fault) -> bool {
        match self.clusters.get(&fault.cluster) {
            Some(c) => {
                c.inject(fault);
                true
            }
            None => false,
        }
    }

    /// Ends every fault of a cluster, active or waiting for its version.
    pub fn clear_faults(&self, cluster: &str) {
        if let Some(c) = self.clusters.get(cluster) {
            c.clear_faults();
        }
    }

    /// Why the registry on the base branch could not be read at its latest head (the
    /// clusters keep converging to the last registry that could), if it could not.
    pub fn registry_error(&self) -> Option<String> {
        self.registry_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for SimFleet {
    fn drop(&mut self) {
        self.poller.abort();
        for server in &self.metrics_servers {
            server.abort();
        }
        for cluster in self.clusters.values() {
            cluster.stop();
        }
    }
}

/// `path` made absolute against the current directory.
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Follows the base branch: every `poll`, reads its head; when it moved, re-reads the registry
/// and hands each cluster its new versions.
async fn follow(
    source: Source,
    mut head: git2::Oid,
    clusters: BTreeMap<String, Arc<SimCluster>>,
    poll: Duration,
    registry_error: Arc<Mutex<Option<String>>>,
) {
    let source = Arc::new(source);
    let mut tick = tokio::time::interval(poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let src = Arc::clone(&source);
        let polled = tokio::task::spawn_blocking(move || src.poll(head)).await;
        let set_error = |e: Option<String>| {
            *registry_error
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = e;
        };
        match polled {
            Ok(Ok(Polled::Unchanged)) => {}
            Ok(Ok(Polled::Changed(new_head, read))) => {
                head = new_head;
                match read {
                    Ok(entries) => {
                        set_error(None);
                        for e in entries {
                            if let Some(c) = clusters.get(&e.id) {
                                c.set_desired(e.desired);
                            }
                        }
                    }
                    Err(e) => set_error(Some(e)),
                }
            }
            Ok(Err(e)) => set_error(Some(e)),
            Err(join) => set_error(Some(format!("reading the registry failed: {join}"))),
        }
    }
}

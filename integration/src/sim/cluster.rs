//! One simulated cluster: a [`FakeCluster`] seeded from its registry entry that converges, stage
//! by stage, to what the base branch says, with faults switched on and off.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rings::Version;
use serde_json::json;
use tokio::task::JoinHandle;

use super::metrics::Traffic;
use super::registry::{Desired, Entry};
use super::{
    ADDON_IMAGE_REGISTRY, ADDON_NAMESPACE, ADDON_REPLICAS, Fault, FaultKind, NODE_COUNT,
    POLICY_API_VERSION, POLICY_GROUP, POLICY_KIND, POLICY_PLURAL, SLOW_FAULT_DELAY, SimClusterInfo,
};
use crate::kube::{FakeCluster, ResourceKind};

/// Suffix of EKS control-plane and kubelet versions (`v1.33.4-eks-1a2b3c`).
const EKS_SUFFIX: &str = "-eks-1a2b3c";
/// Patch release of an EKS cluster when the registry names only a minor.
const EKS_DEFAULT_PATCH: u64 = 4;
/// Patch release of an AKS cluster when the registry names only a minor.
const AKS_DEFAULT_PATCH: u64 = 2;
/// Patch release of any other cluster when the registry names only a minor.
const OTHER_DEFAULT_PATCH: u64 = 1;

/// The label that marks what the simulator created.
const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "ringmaster-sim");

/// Application workloads every simulated cluster runs: (kind, namespace, name, replicas,
/// image). Deployments and the StatefulSet get one running pod per replica, the DaemonSet one
/// per node.
const APPS: [(AppKind, &str, &str, i32, &str); 4] = [
    (AppKind::Deployment, "default", "web", 3, "web:v1.4.2"),
    (AppKind::Deployment, "default", "api", 2, "api:v2.0.1"),
    (
        AppKind::StatefulSet,
        "monitoring",
        "prometheus",
        1,
        "prometheus:v3.0.0",
    ),
    (
        AppKind::DaemonSet,
        "monitoring",
        "node-exporter",
        NODE_COUNT as i32,
        "node-exporter:v1.8.2",
    ),
];

#[derive(Debug, Clone, Copy)]
enum AppKind {
    Deployment,
    StatefulSet,
    DaemonSet,
}

/// How fast clusters converge.
#[derive(Debug, Clone, Copy)]
pub(super) struct Timing {
    /// Time between noticing a change and the first stage.
    pub converge_after: Duration,
    /// Time between two stages.
    pub step_delay: Duration,
}

/// One simulated cluster.
#[derive(Debug)]
pub(super) struct SimCluster {
    /// The cluster id.
    pub id: String,
    /// Its API server.
    pub fake: FakeCluster,
    /// `http://127.0.0.1:PORT/metrics` of its metrics listener.
    pub metrics_url: String,
    /// The cluster's virtual application traffic.
    pub traffic: Mutex<Traffic>,
    provider: String,
    service: Option<String>,
    timing: Timing,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// What the base branch says.
    desired: Desired,
    /// Add-on → version the cluster runs.
    addons: BTreeMap<String, String>,
    /// Policy bundle → version the cluster reports.
    policies: BTreeMap<String, String>,
    /// Bumped when `desired` changes.
    generation: u64,
    /// The generation the cluster last fully converged to.
    converged_generation: u64,
    /// The running convergence.
    task: Option<JoinHandle<()>>,
    /// Faults waiting for their version.
    pending: Vec<Fault>,
    /// Faults in effect.
    active: BTreeSet<FaultKind>,
}

impl SimCluster {
    /// A cluster running exactly what `entry` says, on `fake`.
    pub fn new(
        entry: &Entry,
        fake: FakeCluster,
        metrics_url: String,
        timing: Timing,
    ) -> SimCluster {
        let cluster = SimCluster {
            id: entry.id.clone(),
            fake,
            metrics_url,
            traffic: Mutex::new(Traffic::new()),
            provider: entry.provider.clone(),
            service: entry.service.clone(),
            timing,
            state: Mutex::new(State {
                desired: entry.desired.clone(),
                addons: BTreeMap::new(),
                policies: BTreeMap::new(),
                generation: 0,
                converged_generation: 0,
                task: None,
                pending: Vec::new(),
                active: BTreeSet::new(),
            }),
        };
        cluster.seed(&entry.desired);
        cluster
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn seed(&self, desired: &Desired) {
        let version = self.git_version(&desired.kubernetes);
        self.fake.set_version(&version);
        for i in 1..=NODE_COUNT {
            self.fake.add_node(&node_name(&self.id, i), true, &version);
        }
        for (kind, ns, name, replicas, image) in APPS {
            let image = format!("{ADDON_IMAGE_REGISTRY}/{image}");
            match kind {
                AppKind::Deployment => {
                    self.fake
                        .add_deployment(ns, name, replicas, replicas, &image);
                }
                AppKind::StatefulSet => {
                    self.fake
                        .add_statefulset(ns, name, replicas, replicas, &image);
                }
                AppKind::DaemonSet => {
                    self.fake
                        .add_daemonset(ns, name, replicas, replicas, &image);
                }
            }
            for i in 0..replicas {
                self.fake.add_pod(ns, &format!("{name}-{i}"), None, 0);
            }
        }
        self.fake.register_kind(
            ResourceKind::cluster_scoped(POLICY_GROUP, "v1", POLICY_KIND, POLICY_PLURAL)
                .with_short_names(&["pb"])
                .with_column("Version", ".status.version"),
        );
        let mut st = self.lock();
        self.apply_addons(&mut st, &desired.addons);
        self.apply_policies(&mut st, &desired.policies);
    }

    /// The control plane's `gitVersion` for a registry version, in the provider's style:
    /// `v1.33.4-eks-1a2b3c` on EKS, `v1.33.2` on AKS, `v1.33.1` elsewhere (the registry's
    /// patch when it names one).
    fn git_version(&self, v: &Version) -> String {
        let eks = self.provider == "aws" || self.service.as_deref() == Some("eks");
        let aks = self.provider == "azure" || self.service.as_deref() == Some("aks");
        let (major, minor) = v.major_minor();
        let patch = if v.has_patch() {
            v.core().patch
        } else if eks {
            EKS_DEFAULT_PATCH
        } else if aks {
            AKS_DEFAULT_PATCH
        } else {
            OTHER_DEFAULT_PATCH
        };
        let suffix = if eks { EKS_SUFFIX } else { "" };
        format!("v{major}.{minor}.{patch}{suffix}")
    }

    fn apply_addons(&self, st: &mut State, desired: &BTreeMap<String, String>) {
        for (name, version) in desired {
            if st.addons.get(name) != Some(version) {
                let image = addon_image(name, version);
                self.fake.add_deployment(
                    ADDON_NAMESPACE,
                    name,
                    ADDON_REPLICAS,
                    ADDON_REPLICAS,
                    &image,
                );
            }
        }
        for name in st.addons.keys().filter(|n| !desired.contains_key(*n)) {
            self.fake
                .remove_object("apps/v1", "Deployment", Some(ADDON_NAMESPACE), name);
        }
        st.addons = desired.clone();
    }

    fn apply_policies(&self, st: &mut State, desired: &BTreeMap<String, String>) {
        for (name, version) in desired {
            if st.policies.get(name) != Some(version) {
                // The kind is registered at seeding and the body is complete, so this cannot
                // be refused.
                let _ = self.fake.upsert_object(json!({
                    "apiVersion": POLICY_API_VERSION,
                    "kind": POLICY_KIND,
                    "metadata": {"name": name, "labels": {MANAGED_BY.0: MANAGED_BY.1}},
                    "spec": {"version": version},
                    "status": {"version": version},
                }));
            }
        }
        for name in st.policies.keys().filter(|n| !desired.contains_key(*n)) {
            self.fake
                .remove_object(POLICY_API_VERSION, POLICY_KIND, None, name);
        }
        st.policies = desired.clone();
    }

    /// Takes a new registry entry into account: when the versions changed, (re)starts the
    /// convergence.
    pub fn set_desired(self: &Arc<SimCluster>, desired: Desired) {
        let mut st = self.lock();
        if st.desired == desired {
            return;
        }
        st.desired = desired;
        st.generation += 1;
        if let Some(task) = st.task.take() {
            task.abort();
        }
        let generation = st.generation;
        st.task = Some(tokio::spawn(converge(Arc::clone(self), generation)));
    }

    /// Queues a fault; it applies at once unless it waits for a version.
    pub fn inject(&self, fault: Fault) {
        let mut st = self.lock();
        st.pending.push(fault);
        self.activate_due(&mut st);
    }

    /// Ends every fault, active or waiting.
    pub fn clear_faults(&self) {
        let mut st = self.lock();
        st.pending.clear();
        for kind in std::mem::take(&mut st.active) {
            self.switch(kind, false);
        }
    }

    /// Applies the faults whose time has come: all without a version, and those whose version
    /// the converged control plane has reached.
    fn activate_due(&self, st: &mut State) {
        let converged = st.generation == st.converged_generation;
        let at = Version::parse(&self.fake.git_version())
            .ok()
            .map(|v| v.major_minor());
        let due = |f: &Fault| match &f.after_version {
            None => true,
            Some(v) => {
                let after = Version::parse(v).ok().map(|v| v.major_minor());
                converged && after.is_some() && at >= after
            }
        };
        let (now, later): (Vec<Fault>, Vec<Fault>) = st.pending.drain(..).partition(due);
        st.pending = later;
        for f in now {
            if st.active.insert(f.kind) {
                self.switch(f.kind, true);
            }
        }
    }

    fn switch(&self, kind: FaultKind, on: bool) {
        match kind {
            FaultKind::Unreachable => self.fake.set_unreachable(on),
            FaultKind::Slow => self.fake.set_slow(on.then_some(SLOW_FAULT_DELAY)),
            FaultKind::Errors => self.fake.set_errors(on),
            FaultKind::Crashloop => {
                // Count the traffic so far at the old error ratio first.
                super::metrics::accrue(self);
                self.fake.set_crashloop(on);
            }
            FaultKind::RemovedApi => self.fake.set_removed_api(on),
        }
    }

    /// What the cluster runs now.
    pub fn info(&self) -> SimClusterInfo {
        let st = self.lock();
        let kubelets = self
            .fake
            .nodes()
            .into_iter()
            .filter_map(|n| {
                let name = n.metadata.name?;
                let kubelet = n.status?.node_info?.kubelet_version;
                Some((name, kubelet))
            })
            .collect();
        SimClusterInfo {
            id: self.id.clone(),
            api_url: self.fake.url(),
            metrics_url: self.metrics_url.clone(),
            kubernetes: self.fake.git_version(),
            kubelets,
            addons: st
                .addons
                .iter()
                .map(|(n, v)| (n.clone(), image_tag(v)))
                .collect(),
            policies: st.policies.clone(),
            converged: st.generation == st.converged_generation,
            faults: st.active.iter().copied().collect(),
        }
    }

    /// Stops the running convergence.
    pub fn stop(&self) {
        if let Some(task) = self.lock().task.take() {
            task.abort();
        }
    }
}

/// The convergence of one generation: after `converge_after`, the control plane, then each
/// node in turn (cordoned, NotReady half a `step_delay` later, Ready with the new kubelet and
/// schedulable again after another half), then the add-ons, then the policy bundles,
/// `step_delay` apart.
async fn converge(cluster: Arc<SimCluster>, generation: u64) {
    let Timing {
        converge_after,
        step_delay,
    } = cluster.timing;
    tokio::time::sleep(converge_after).await;
    let desired = cluster.lock().desired.clone();
    let target = cluster.git_version(&desired.kubernetes);
    if cluster.fake.git_version() != target {
        cluster.fake.set_version(&target);
        tokio::time::sleep(step_delay).await;
    }
    for node in cluster.fake.nodes() {
        let Some(name) = node.metadata.name.clone() else {
            continue;
        };
        let kubelet = node
            .status
            .and_then(|s| s.node_info)
            .map(|i| i.kubelet_version)
            .unwrap_or_default();
        if kubelet == target {
            continue;
        }
        // Cordoned and drained, then down while its replacement boots, then back Ready at the
        // new kubelet: one node at a time, as a managed node group rolls.
        let restart = NodeRestart::begin(&cluster.fake, name, target.clone());
        tokio::time::sleep(step_delay / 2).await;
        restart.go_down();
        tokio::time::sleep(step_delay / 2).await;
        drop(restart);
        tokio::time::sleep(step_delay).await;
    }
    {
        let mut st = cluster.lock();
        cluster.apply_addons(&mut st, &desired.addons);
    }
    tokio::time::sleep(step_delay).await;
    let mut st = cluster.lock();
    cluster.apply_policies(&mut st, &desired.policies);
    if st.generation == generation {
        st.converged_generation = generation;
        st.task = None;
        cluster.activate_due(&mut st);
    }
}

/// A node being replaced: cordoned (still Ready, old kubelet) from [`NodeRestart::begin`],
/// NotReady from [`NodeRestart::go_down`], Ready and schedulable with the new kubelet once
/// dropped — also when the convergence is cancelled half-way, so no node stays NotReady or
/// cordoned.
struct NodeRestart<'a> {
    fake: &'a FakeCluster,
    node: String,
    kubelet: String,
}

impl<'a> NodeRestart<'a> {
    fn begin(fake: &'a FakeCluster, node: String, kubelet: String) -> NodeRestart<'a> {
        fake.set_node_cordoned(&node, true);
        NodeRestart {
            fake,
            node,
            kubelet,
        }
    }

    fn go_down(&self) {
        self.fake.set_node_ready(&self.node, false);
    }
}

impl Drop for NodeRestart<'_> {
    fn drop(&mut self) {
        self.fake.add_node(&self.node, true, &self.kubelet);
    }
}

/// `<id>-node-<i>`, `i` from 1.
pub(super) fn node_name(id: &str, i: usize) -> String {
    format!("{id}-node-{i}")
}

/// `registry.k8s.example/<name>:v<version>`.
pub(super) fn addon_image(name: &str, version: &str) -> String {
    format!("{ADDON_IMAGE_REGISTRY}/{name}:{}", image_tag(version))
}

/// The image tag of an add-on version: the version with a leading `v` (`1.11.3` → `v1.11.3`).
fn image_tag(version: &str) -> String {
    if version.starts_with('v') {
        version.to_owned()
    } else {
        format!("v{version}")
    }
}

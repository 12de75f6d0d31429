//! What the daemon asks of the clusters (STYLE: I/O behind a small trait). The production
//! implementation wraps `policies::probe::Probe` (the kube client, Prometheus, HTTP and command
//! gates); the state-machine tests script it.

use std::collections::BTreeMap;

use policies::gates::Observation;
use rings::model::{Cluster, Config, Gate};

/// What a cluster should run after a ring step: only the components the step moves.
pub use policies::probe::Targets;

/// Whether a cluster runs what Git says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConvergenceReport {
    /// Everything in the targets is observed.
    pub converged: bool,
    /// The cluster could not be read (never counts as converged).
    pub inconclusive: Option<String>,
    /// What is still behind, for people.
    pub behind: Vec<String>,
}

/// One gate on one cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct GateResult {
    /// Gate name.
    pub gate: String,
    /// Cluster id.
    pub cluster: String,
    /// The result.
    pub observation: Observation,
}

/// Pre-merge values of `baseline: preUpgrade` gates, by (gate, cluster).
pub type Baselines = BTreeMap<(String, String), f64>;

/// The daemon's view of the fleet.
#[allow(async_fn_in_trait)] // used with concrete types only
pub trait ClusterProbe {
    /// Problems that keep a ring step from opening its PR (empty: go). The built-in checks
    /// (the cluster answers, no drift from the registry, no kubelet ahead) and `gates`, once.
    async fn preflight(&self, cluster: &Cluster, target: &Targets, gates: &[&Gate]) -> Vec<String>;
    /// Whether `cluster` runs `target` (the `observe` mapping is in `config`).
    async fn convergence(
        &self,
        config: &Config,
        cluster: &Cluster,
        target: &Targets,
    ) -> ConvergenceReport;
    /// Every gate on every cluster, once.
    async fn evaluate(
        &self,
        gates: &[&Gate],
        clusters: &[&Cluster],
        baselines: &Baselines,
    ) -> Vec<GateResult>;
    /// The current values of the `baseline: preUpgrade` gates among `gates`.
    async fn sample_baselines(&self, gates: &[&Gate], clusters: &[&Cluster]) -> Baselines;
}

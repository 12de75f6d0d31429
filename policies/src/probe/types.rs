//! What the probe answers: the targets of a step, observations, baselines, convergence and
//! preflight findings. Plain data, serialisable where the daemon stores it.

use std::collections::BTreeMap;
use std::fmt;

use rings::{ClusterId, Component, GateName, Version};
use serde::{Deserialize, Serialize};

use crate::gates::Observation;
use crate::versions::Change;

/// Preflight check: the cluster's API server answers.
pub const CHECK_ANSWERS: &str = "cluster.answers";
/// Preflight check: the control plane runs the minor the registry says.
pub const CHECK_VERSION: &str = "cluster.version";
/// Preflight check: no kubelet is ahead of the control plane.
pub const CHECK_KUBELETS: &str = "cluster.kubelets";
/// Preflight check name of `kube.removedApis` findings.
pub const CHECK_REMOVED_APIS: &str = "kube.removedApis";

/// What a ring step promises a cluster runs once it converged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Targets {
    /// Kubernetes minor of the step, if it moves Kubernetes.
    pub kubernetes: Option<Version>,
    /// Add-on name → version.
    pub addons: BTreeMap<String, Version>,
    /// Controller name → version.
    pub controllers: BTreeMap<String, Version>,
    /// Policy bundle name → version.
    pub policies: BTreeMap<String, Version>,
}

impl Targets {
    /// The targets of one cluster's step (`policies::versions::cluster_steps`).
    pub fn from_step(step: &[Change]) -> Targets {
        let mut t = Targets::default();
        for change in step {
            match &change.component {
                Component::Kubernetes => t.kubernetes = Some(change.to.clone()),
                Component::Addon(name) => {
                    t.addons.insert(name.clone(), change.to.clone());
                }
                Component::Controller(name) => {
                    t.controllers.insert(name.clone(), change.to.clone());
                }
                Component::Policy(name) => {
                    t.policies.insert(name.clone(), change.to.clone());
                }
            }
        }
        t
    }
}

/// One gate on one cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct GateObservation {
    /// The gate.
    pub gate: GateName,
    /// The cluster.
    pub cluster: ClusterId,
    /// What was observed.
    pub observation: Observation,
}

/// Values sampled before a merge, per (gate, cluster): a Prometheus `baseline: preUpgrade`
/// gate's query value, or a `kube.podsHealthy` gate's restart total. Serialised as a list of
/// `{gate, cluster, value}` so the daemon can store it; names are validated when read back.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(into = "Vec<BaselineEntry>", try_from = "Vec<BaselineEntry>")]
pub struct Baselines {
    values: BTreeMap<(GateName, ClusterId), f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct BaselineEntry {
    gate: String,
    cluster: String,
    value: f64,
}

impl From<Baselines> for Vec<BaselineEntry> {
    fn from(b: Baselines) -> Self {
        b.values
            .into_iter()
            .map(|((gate, cluster), value)| BaselineEntry {
                gate: gate.to_string(),
                cluster: cluster.to_string(),
                value,
            })
            .collect()
    }
}

impl TryFrom<Vec<BaselineEntry>> for Baselines {
    type Error = String;

    fn try_from(entries: Vec<BaselineEntry>) -> Result<Self, String> {
        let mut b = Baselines::default();
        for e in entries {
            b.insert(
                GateName::new(&e.gate)?,
                ClusterId::new(&e.cluster)?,
                e.value,
            );
        }
        Ok(b)
    }
}

impl Baselines {
    /// The value sampled for `gate` on `cluster`, if there was data.
    pub fn get(&self, gate: &GateName, cluster: &ClusterId) -> Option<f64> {
        self.values.get(&(gate.clone(), cluster.clone())).copied()
    }

    /// Record a value.
    pub fn insert(&mut self, gate: GateName, cluster: ClusterId, value: f64) {
        self.values.insert((gate, cluster), value);
    }

    /// Every value, by (gate, cluster).
    pub fn iter(&self) -> impl Iterator<Item = (&GateName, &ClusterId, f64)> {
        self.values.iter().map(|((g, c), v)| (g, c, *v))
    }

    /// How many values.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The values of one gate by cluster id (what `prometheus::evaluate_ring` takes).
    pub(super) fn of_gate(&self, gate: &GateName) -> BTreeMap<String, f64> {
        self.values
            .iter()
            .filter(|((g, _), _)| g == gate)
            .map(|((_, c), v)| (c.to_string(), *v))
            .collect()
    }
}

/// Whether a cluster runs what its step promised.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Convergence {
    /// Everything is at target (never true when something could not be checked).
    pub converged: bool,
    /// Why it could not be told, when something could not be checked.
    pub inconclusive: Option<String>,
    /// What is not at target yet: `control plane v1.33.4-eks-1a2b3c (target 1.34)`,
    /// `coredns image v1.11.3 (target 1.11.4)`.
    pub behind: Vec<String>,
}

/// One reason a ring's PR must not open for a cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// What was checked: [`CHECK_ANSWERS`], [`CHECK_VERSION`], [`CHECK_KUBELETS`],
    /// [`CHECK_REMOVED_APIS`], or a configured gate's kind (`prometheus`, `kube.nodesReady`, …).
    pub check: String,
    /// What was found, for people.
    pub message: String,
    /// The configured preflight gate it came from, if any.
    pub gate: Option<String>,
}

impl Finding {
    pub(super) fn builtin(check: &str, message: impl Into<String>) -> Finding {
        Finding {
            check: check.to_owned(),
            message: message.into(),
            gate: None,
        }
    }

    pub(super) fn of_gate(gate: &GateName, check: &str, message: impl Into<String>) -> Finding {
        Finding {
            check: check.to_owned(),
            message: message.into(),
            gate: Some(gate.to_string()),
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.gate {
            Some(g) => write!(f, "{g} ({}): {}", self.check, self.message),
            None => write!(f, "{}: {}", self.check, self.message),
        }
    }
}

/// The preflight of one cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Preflight {
    /// Everything that blocks the ring on this cluster; empty when it may go ahead.
    pub findings: Vec<Finding>,
    /// The control plane's version as the cluster reported it, when it answered.
    pub control_plane: Option<String>,
}

impl Preflight {
    /// Whether the cluster may go ahead (nothing found; an unreachable cluster is a finding).
    pub fn ok(&self) -> bool {
        self.findings.is_empty()
    }
}

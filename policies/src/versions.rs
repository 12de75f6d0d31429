//! Version rules (DESIGN §4): no downgrade without `rollback: true`, Kubernetes one minor per
//! step, `requires` ranges per cluster, kubelet skew.

use rings::model::{Cluster, Release};
use rings::{Component, Version};
use serde::Serialize;

/// How many minors a kubelet may trail its control plane (upstream policy since 1.28).
pub const MAX_KUBELET_TRAIL_MINORS: u64 = 3;

/// One component moving from one version to another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// What moves.
    pub component: Component,
    /// From (as written in the registry, or the previous step's target).
    #[serde(serialize_with = "as_text")]
    pub from: Version,
    /// To.
    #[serde(serialize_with = "as_text")]
    pub to: Version,
}

fn as_text<S: serde::Serializer>(v: &Version, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(v.as_str())
}

/// The changes of one PR for one cluster.
pub type Step = Vec<Change>;

/// Why a cluster does not move.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// What the plan and status show.
    pub reason: String,
    /// Whether the whole ring waits for this cluster (a failed `requires`), or the ring goes
    /// on without it (paused, nothing allowed to change).
    pub blocks_ring: bool,
}

/// What a release means for one cluster.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClusterSteps {
    /// PR steps in order; empty when the cluster is at target.
    pub steps: Vec<Step>,
    /// Set when the cluster will not move.
    pub blocked: Option<Block>,
}

/// The Kubernetes steps from `from` to `to`: one minor per step, upwards. Intermediate targets
/// are written `MAJOR.MINOR`; the last one is the release's text. Same minor → no step. A lower
/// minor is an error even with `rollback`: control planes are not downgraded (see
/// [`control_plane_downgrade`]).
pub fn kubernetes_steps(
    from: &Version,
    to: &Version,
    rollback: bool,
) -> Result<Vec<(Version, Version)>, String> {
    let (fmaj, fmin) = from.major_minor();
    let (tmaj, tmin) = to.major_minor();
    if fmaj != tmaj {
        return Err(format!(
            "Kubernetes {from} → {to} changes the major version, which ringmaster does not sequence"
        ));
    }
    if fmin == tmin {
        return Ok(Vec::new());
    }
    if tmin < fmin {
        return Err(if rollback {
            control_plane_downgrade(from, to)
        } else {
            format!(
                "Kubernetes {from} is newer than the release's {to}; downgrades need `rollback: true` on the release"
            )
        });
    }
    let mut steps = Vec::new();
    let mut current = from.clone();
    let minors: Vec<u64> = (fmin + 1..=tmin).collect();
    for (i, m) in minors.iter().enumerate() {
        let next = if i + 1 == minors.len() {
            to.clone()
        } else {
            Version::minor(fmaj, *m)
        };
        steps.push((current, next.clone()));
        current = next;
    }
    Ok(steps)
}

/// Why a `rollback: true` release cannot lower a control plane's minor: EKS, AKS and GKE do not
/// downgrade a control plane, and an upstream cluster's etcd data is not meant to go back
/// either. Add-ons and policy bundles may still roll back.
fn control_plane_downgrade(from: &Version, to: &Version) -> String {
    format!(
        "Kubernetes {from} → {to} would downgrade the control plane, which managed control planes \
         (EKS, AKS, GKE) cannot do, `rollback: true` or not; remove `kubernetes:` from the release \
         (its add-ons and policy bundles can still roll back)"
    )
}

/// A non-Kubernetes component's change: `None` when already at the target (compared on the
/// semver core), an error for a downgrade without `rollback`.
pub fn component_change(
    component: &Component,
    from: &Version,
    to: &Version,
    rollback: bool,
) -> Result<Option<Change>, String> {
    if from == to {
        return Ok(None);
    }
    if to < from && !rollback {
        return Err(format!(
            "{component} {from} is newer than the release's {to}; downgrades need `rollback: true` on the release"
        ));
    }
    Ok(Some(Change {
        component: component.clone(),
        from: from.clone(),
        to: to.clone(),
    }))
}

/// Upstream skew policy: a kubelet never leads its control plane and trails it by at most
/// [`MAX_KUBELET_TRAIL_MINORS`].
pub fn kubelet_skew(control_plane: &Version, kubelet: &Version) -> Result<(), String> {
    let (cmaj, cmin) = control_plane.major_minor();
    let (kmaj, kmin) = kubelet.major_minor();
    if kmaj != cmaj || kmin > cmin {
        return Err(format!(
            "kubelet {kubelet} is ahead of control plane {control_plane}"
        ));
    }
    if cmin - kmin > MAX_KUBELET_TRAIL_MINORS {
        return Err(format!(
            "kubelet {kubelet} trails control plane {control_plane} by {} minors; at most {MAX_KUBELET_TRAIL_MINORS} are supported",
            cmin - kmin
        ));
    }
    Ok(())
}

/// What `release` means for `cluster`: its steps, or why it does not move.
///
/// Kubernetes moves first, one minor per step; add-on and policy changes ride with the last
/// Kubernetes step (their target versions are meant for the target minor), or form the only
/// step when Kubernetes does not move. Components (add-ons, controllers, policy bundles) the
/// cluster does not run are not added.
pub fn cluster_steps(release: &Release, cluster: &Cluster) -> ClusterSteps {
    let mut refusals = Vec::new();
    // A rollback that would lower the control plane is a mistake in the release, not a cluster
    // to leave out: the ring waits, naming the cluster, until the release is fixed.
    let mut refuses_ring = false;
    let mut k8s = Vec::new();
    if let Some(target) = &release.kubernetes {
        match kubernetes_steps(&cluster.kubernetes, target, release.rollback) {
            Ok(s) => k8s = s,
            Err(e) => {
                refuses_ring |=
                    release.rollback && target.major_minor() < cluster.kubernetes.major_minor();
                refusals.push(if refuses_ring {
                    format!("release `{}` (rollback: true): {e}", release.name)
                } else {
                    e
                });
            }
        }
    }
    let mut others = Vec::new();
    let targets = release
        .addons
        .iter()
        .map(|(n, v)| (Component::Addon(n.clone()), cluster.addons.get(n), v))
        .chain(release.controllers.iter().map(|(n, v)| {
            (
                Component::Controller(n.clone()),
                cluster.controllers.get(n),
                v,
            )
        }))
        .chain(
            release
                .policies
                .iter()
                .map(|(n, v)| (Component::Policy(n.clone()), cluster.policies.get(n), v)),
        );
    for (component, current, target) in targets {
        let Some(current) = current else { continue };
        match component_change(&component, current, target, release.rollback) {
            Ok(Some(c)) => others.push(c),
            Ok(None) => {}
            Err(e) => refusals.push(e),
        }
    }
    let mut steps: Vec<Step> = k8s
        .into_iter()
        .map(|(from, to)| {
            vec![Change {
                component: Component::Kubernetes,
                from,
                to,
            }]
        })
        .collect();
    if !others.is_empty() {
        match steps.last_mut() {
            Some(last) => last.extend(others),
            None => steps.push(others),
        }
    }
    if let Some(reason) = &cluster.paused {
        return ClusterSteps {
            steps: if refusals.is_empty() {
                steps
            } else {
                Vec::new()
            },
            blocked: Some(Block {
                reason: format!("paused: {reason}"),
                blocks_ring: false,
            }),
        };
    }
    if !refusals.is_empty() {
        return ClusterSteps {
            steps: Vec::new(),
            blocked: Some(Block {
                reason: refusals.join("; "),
                blocks_ring: refuses_ring,
            }),
        };
    }
    if let Some(range) = &release.requires_kubernetes
        && !steps.is_empty()
        && !range.matches(&cluster.kubernetes)
    {
        return ClusterSteps {
            steps,
            blocked: Some(Block {
                reason: format!(
                    "requires kubernetes {range}; the cluster runs {} (upgrade it first)",
                    cluster.kubernetes
                ),
                blocks_ring: true,
            }),
        };
    }
    ClusterSteps {
        steps,
        blocked: None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;

//! Convergence (DESIGN §6): after a merge, does the cluster run what the step promised? The
//! control plane at the target minor with every node rolled to it and Ready (or, for node
//! pools upgraded separately, every kubelet within skew), each add-on's workload
//! running the target image tag (and done rolling out), each policy bundle reporting the
//! target version where `observe:` says to look.
//!
//! Each check answers [`Check::Converged`], [`Check::Behind`] (a definite answer: not yet) or
//! [`Check::Inconclusive`] (could not tell: unreachable, unreadable, ambiguous).

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Container, Node, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DynamicObject};
use rings::Version;
use rings::model::{NodeConvergence, ResourceRef, WorkloadKind, WorkloadRef};

use super::{
    Conn, NAMED, discover, json_path, kubelet_version, list_nodes, node_ready, value_text,
};
use crate::versions::MAX_KUBELET_TRAIL_MINORS;

/// What one convergence check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// At target; what was seen, for people.
    Converged(String),
    /// Not yet; each entry names one thing still behind.
    Behind(Vec<String>),
    /// Could not tell, and why.
    Inconclusive(String),
}

/// The tag of a container image reference: what follows the last `:` of the name, once any
/// `@sha256:…` digest is dropped. `None` when the reference has no tag (a registry port's `:`
/// is not a tag).
pub fn image_tag(image: &str) -> Option<&str> {
    let name = image.split('@').next().unwrap_or(image);
    let (_, tag) = name.rsplit_once(':')?;
    (!tag.is_empty() && !tag.contains('/')).then_some(tag)
}

/// The container an add-on's version is read from: the one `observe` names, else the only
/// container, else the one named after the add-on.
pub fn choose_container<'a>(
    addon: &str,
    workload: &WorkloadRef,
    containers: &'a [Container],
) -> Result<&'a Container, String> {
    let names = || {
        containers
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let what = format!("{} {}/{}", workload.kind, workload.namespace, workload.name);
    if let Some(wanted) = &workload.container {
        return containers
            .iter()
            .find(|c| &c.name == wanted)
            .ok_or_else(|| format!("{what} has no container `{wanted}` (it has {})", names()));
    }
    match containers {
        [] => Err(format!("{what} has no containers")),
        [only] => Ok(only),
        many => many.iter().find(|c| c.name == addon).ok_or_else(|| {
            format!(
                "{what} has containers {}; set `observe.addons.{addon}.container`",
                names()
            )
        }),
    }
}

/// Whether a Kubernetes step has converged: the control plane (`cp`, as read from `/version`)
/// is at `target`'s minor, and the nodes are done as `nodes` says — with
/// [`NodeConvergence::Target`] every node runs the target minor, is Ready and is not cordoned
/// (a node being replaced is not done, so the soak never starts mid-roll); with
/// [`NodeConvergence::Skew`] every kubelet is within the skew policy (never ahead of the control
/// plane, at most three minors behind).
pub async fn kubernetes(
    conn: &Conn,
    cp: &Version,
    target: &Version,
    nodes: NodeConvergence,
) -> Check {
    let mut behind = Vec::new();
    if cp.major_minor() != target.major_minor() {
        behind.push(format!("control plane {cp} (target {target})"));
    }
    let listed = match list_nodes(conn).await {
        Ok(n) => n,
        Err(e) => return Check::Inconclusive(e),
    };
    let seen = match nodes {
        NodeConvergence::Target => nodes_at_target(&listed, target),
        NodeConvergence::Skew => nodes_within_skew(&listed, cp),
    };
    if behind.is_empty() && seen.off.is_empty() {
        return Check::Converged(format!("control plane {cp}, {}", seen.summary));
    }
    if nodes == NodeConvergence::Target {
        behind.push(seen.summary);
    }
    let more = seen.off.len().saturating_sub(NAMED);
    behind.extend(seen.off.into_iter().take(NAMED));
    if more > 0 {
        behind.push(format!("and {more} more {}", seen.more));
    }
    Check::Behind(behind)
}

/// What one node rule found: a summary for people, the nodes not done (each with why), and
/// how the ones beyond [`NAMED`] are counted.
struct NodesSeen {
    summary: String,
    off: Vec<String>,
    more: &'static str,
}

/// Every node at `target`'s minor, Ready and schedulable; the summary counts the done ones
/// (`4/6 nodes at 1.33`).
fn nodes_at_target(nodes: &[Node], target: &Version) -> NodesSeen {
    let (tmaj, tmin) = target.major_minor();
    let mut off = Vec::new();
    for n in nodes {
        let name = n.metadata.name.as_deref().unwrap_or("");
        let kubelet = match kubelet_version(n) {
            Ok(k) => k,
            Err(e) => {
                off.push(format!("node {name}: {e}"));
                continue;
            }
        };
        if kubelet.major_minor() != (tmaj, tmin) {
            off.push(format!("node {name} kubelet {kubelet}"));
        } else if !node_ready(n) {
            off.push(format!("node {name} not Ready"));
        } else if node_cordoned(n) {
            off.push(format!("node {name} cordoned"));
        }
    }
    let done = nodes.len() - off.len();
    let mut summary = format!("{done}/{} nodes at {tmaj}.{tmin}", nodes.len());
    if off.is_empty() {
        summary.push_str(" and Ready");
    }
    NodesSeen {
        summary,
        off,
        more: "nodes not done",
    }
}

/// Every kubelet within the skew policy of the control plane `cp`.
fn nodes_within_skew(nodes: &[Node], cp: &Version) -> NodesSeen {
    let (cmaj, cmin) = cp.major_minor();
    let mut off = Vec::new();
    for n in nodes {
        let name = n.metadata.name.as_deref().unwrap_or("");
        match kubelet_version(n) {
            Ok(k) => {
                let (kmaj, kmin) = k.major_minor();
                if kmaj != cmaj || kmin > cmin {
                    off.push(format!(
                        "node {name} kubelet {k} (ahead of control plane {cp})"
                    ));
                } else if cmin - kmin > MAX_KUBELET_TRAIL_MINORS {
                    off.push(format!(
                        "node {name} kubelet {k} ({} minors behind control plane {cp}; at most {MAX_KUBELET_TRAIL_MINORS})",
                        cmin - kmin
                    ));
                }
            }
            Err(e) => off.push(format!("node {name}: {e}")),
        }
    }
    NodesSeen {
        summary: format!("{} nodes within skew", nodes.len()),
        off,
        more: "nodes outside the skew policy",
    }
}

/// A cordoned node (`spec.unschedulable`): drained for its replacement, not done.
fn node_cordoned(n: &Node) -> bool {
    n.spec
        .as_ref()
        .and_then(|s| s.unschedulable)
        .unwrap_or(false)
}

/// What convergence reads of a workload: its metadata, pod template and how far its rollout is
/// (`(updated, desired)` replicas, whether the controller saw the latest spec).
struct Workload {
    meta: ObjectMeta,
    template: Option<PodTemplateSpec>,
    updated: i32,
    desired: i32,
    observed_latest: bool,
}

fn observed_latest(meta: &ObjectMeta, observed: Option<i64>) -> bool {
    match (meta.generation, observed) {
        (Some(g), Some(o)) => o >= g,
        (None, _) => true,
        (Some(_), None) => false,
    }
}

async fn read_workload(conn: &Conn, w: &WorkloadRef) -> Result<Option<Workload>, String> {
    let what = format!("reading {} {}/{}", w.kind, w.namespace, w.name);
    let client = conn.client().clone();
    Ok(match w.kind {
        WorkloadKind::Deployment => {
            let api = Api::<Deployment>::namespaced(client, &w.namespace);
            conn.call(&what, api.get_opt(&w.name)).await?.map(|d| {
                let desired = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                let status = d.status.unwrap_or_default();
                Workload {
                    observed_latest: observed_latest(&d.metadata, status.observed_generation),
                    meta: d.metadata,
                    template: d.spec.map(|s| s.template),
                    updated: status.updated_replicas.unwrap_or(0),
                    desired,
                }
            })
        }
        WorkloadKind::DaemonSet => {
            let api = Api::<DaemonSet>::namespaced(client, &w.namespace);
            conn.call(&what, api.get_opt(&w.name)).await?.map(|d| {
                let status = d.status.unwrap_or_default();
                Workload {
                    observed_latest: observed_latest(&d.metadata, status.observed_generation),
                    meta: d.metadata,
                    template: d.spec.map(|s| s.template),
                    updated: status.updated_number_scheduled.unwrap_or(0),
                    desired: status.desired_number_scheduled,
                }
            })
        }
        WorkloadKind::StatefulSet => {
            let api = Api::<StatefulSet>::namespaced(client, &w.namespace);
            conn.call(&what, api.get_opt(&w.name)).await?.map(|s| {
                let desired = s.spec.as_ref().and_then(|sp| sp.replicas).unwrap_or(1);
                let status = s.status.unwrap_or_default();
                Workload {
                    observed_latest: observed_latest(&s.metadata, status.observed_generation),
                    meta: s.metadata,
                    template: s.spec.map(|sp| sp.template),
                    updated: status.updated_replicas.unwrap_or(0),
                    desired,
                }
            })
        }
    })
}

/// The add-on's workload runs an image whose tag is `target` (compared on the semver core, so
/// `v1.11.4-eksbuild.1` is 1.11.4) and has finished rolling it out.
pub async fn addon(conn: &Conn, addon: &str, w: &WorkloadRef, target: &Version) -> Check {
    let workload = match read_workload(conn, w).await {
        Ok(Some(found)) => found,
        Ok(None) => {
            return Check::Behind(vec![format!(
                "{addon}: {} {}/{} not found",
                w.kind, w.namespace, w.name
            )]);
        }
        Err(e) => return Check::Inconclusive(e),
    };
    let containers = workload
        .template
        .and_then(|t| t.spec)
        .map(|s| s.containers)
        .unwrap_or_default();
    let container = match choose_container(addon, w, &containers) {
        Ok(c) => c,
        Err(e) => return Check::Inconclusive(format!("{addon}: {e}")),
    };
    let image = container.image.as_deref().unwrap_or("");
    let Some(tag) = image_tag(image) else {
        return Check::Inconclusive(format!(
            "{addon}: image `{image}` has no tag to read a version from"
        ));
    };
    let running = match Version::parse(tag) {
        Ok(v) => v,
        Err(_) => {
            return Check::Inconclusive(format!(
                "{addon}: image tag `{tag}` ({image}) is not a version"
            ));
        }
    };
    if &running != target {
        return Check::Behind(vec![format!("{addon} image {tag} (target {target})")]);
    }
    if !workload.observed_latest || workload.updated < workload.desired {
        return Check::Behind(vec![format!(
            "{addon} {tag} rolling out: {}/{} updated ({} {}/{})",
            workload.updated,
            workload.desired,
            w.kind,
            w.namespace,
            workload.meta.name.as_deref().unwrap_or(&w.name)
        )]);
    }
    Check::Converged(format!("{addon} {tag}"))
}

/// The policy bundle's object reports `target` at its JSONPath (compared on the semver core).
pub async fn policy(conn: &Conn, bundle: &str, r: &ResourceRef, target: &Version) -> Check {
    let (ar, caps) = match discover(conn, &r.api_version, &r.kind).await {
        Ok(found) => found,
        Err(e) => return Check::Inconclusive(format!("{bundle}: {e}")),
    };
    let api: Api<DynamicObject> = match (&r.namespace, caps.scope) {
        (Some(ns), kube::discovery::Scope::Namespaced) => {
            Api::namespaced_with(conn.client().clone(), ns, &ar)
        }
        _ => Api::all_with(conn.client().clone(), &ar),
    };
    let what = match &r.namespace {
        Some(ns) => format!("{} {ns}/{}", r.kind, r.name),
        None => format!("{} {}", r.kind, r.name),
    };
    let object = match conn
        .call(&format!("reading {what}"), api.get_opt(&r.name))
        .await
    {
        Ok(Some(o)) => o,
        Ok(None) => return Check::Behind(vec![format!("{bundle}: {what} not found")]),
        Err(e) => return Check::Inconclusive(format!("{bundle}: {e}")),
    };
    let json = match serde_json::to_value(&object) {
        Ok(v) => v,
        Err(e) => return Check::Inconclusive(format!("{bundle}: {what}: {e}")),
    };
    let Some(value) = json_path(&json, &r.json_path).map(value_text) else {
        return Check::Behind(vec![format!("{bundle}: {what} has no {} yet", r.json_path)]);
    };
    match Version::parse(&value) {
        Ok(v) if &v == target => Check::Converged(format!("{bundle} {value}")),
        Ok(_) => Check::Behind(vec![format!("{bundle} version {value} (target {target})")]),
        Err(_) => Check::Inconclusive(format!(
            "{bundle}: {what} {} is `{value}`, not a version",
            r.json_path
        )),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn image_tags() {
        assert_eq!(
            image_tag("registry.k8s.example/coredns:v1.11.4"),
            Some("v1.11.4")
        );
        assert_eq!(
            image_tag(
                "602401143452.dkr.ecr.us-east-1.amazonaws.com/eks/coredns:v1.11.4-eksbuild.2"
            ),
            Some("v1.11.4-eksbuild.2")
        );
        assert_eq!(
            image_tag("registry:5000/coredns:1.11.4@sha256:0123abcd"),
            Some("1.11.4")
        );
        assert_eq!(image_tag("registry:5000/coredns"), None);
        assert_eq!(image_tag("coredns@sha256:0123abcd"), None);
        assert_eq!(image_tag("coredns"), None);
        assert_eq!(image_tag("coredns:"), None);
    }

    fn container(name: &str) -> Container {
        Container {
            name: name.into(),
            ..Container::default()
        }
    }

    fn workload(container: Option<&str>) -> WorkloadRef {
        WorkloadRef {
            kind: WorkloadKind::Deployment,
            namespace: "kube-system".into(),
            name: "coredns".into(),
            container: container.map(str::to_owned),
        }
    }

    #[test]
    fn containers_are_chosen_as_documented() {
        let one = [container("dns")];
        let two = [container("sidecar"), container("coredns")];
        let pick = |w: &WorkloadRef, cs: &[Container]| {
            choose_container("coredns", w, cs).map(|c| c.name.clone())
        };
        assert_eq!(pick(&workload(None), &one).as_deref(), Ok("dns"));
        assert_eq!(pick(&workload(None), &two).as_deref(), Ok("coredns"));
        assert_eq!(
            pick(&workload(Some("sidecar")), &two).as_deref(),
            Ok("sidecar")
        );
        let err = pick(&workload(Some("x")), &two).unwrap_err();
        assert!(err.contains("has no container `x`"), "{err}");
        let three = [container("a"), container("b")];
        let err = pick(&workload(None), &three).unwrap_err();
        assert!(
            err.contains("has containers a, b; set `observe.addons.coredns.container`"),
            "{err}"
        );
        assert!(pick(&workload(None), &[]).is_err());
    }
}

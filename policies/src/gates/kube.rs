//! Kubernetes gates and convergence through the kube client (DESIGN §6): nodes Ready, workloads
//! available, pods healthy, and whether a cluster runs what its ring step promised. Every request
//! has a timeout; an error or timeout is inconclusive, never a pass.

use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Client;
use kube::api::{Api, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use rings::Version;

use super::Observation;
use crate::versions::kubelet_skew;

/// Timeout of one Kubernetes API request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How many offending objects a failing observation names.
const NAMED: usize = 5;

/// A client for `context` of the kubeconfig at `path` (or the default kubeconfig:
/// `$KUBECONFIG`, `~/.kube/config`; in a pod, the in-cluster config). Exec credential plugins
/// (how EKS and AKS users authenticate) are run by kube as configured.
pub async fn client_for(path: Option<&Path>, context: &str) -> Result<Client, String> {
    let options = KubeConfigOptions {
        context: Some(context.to_owned()),
        ..KubeConfigOptions::default()
    };
    let config = match path {
        Some(p) => {
            let kubeconfig =
                Kubeconfig::read_from(p).map_err(|e| format!("kubeconfig {}: {e}", p.display()))?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &options)
                .await
                .map_err(|e| format!("kubeconfig {} context {context}: {e}", p.display()))?
        }
        None => kube::Config::from_kubeconfig(&options)
            .await
            .map_err(|e| format!("kubeconfig context {context}: {e}"))?,
    };
    let mut config = config;
    config.connect_timeout = Some(REQUEST_TIMEOUT);
    config.read_timeout = Some(REQUEST_TIMEOUT);
    Client::try_from(config).map_err(|e| format!("kube client for {context}: {e}"))
}

async fn bounded<T>(
    what: &str,
    fut: impl Future<Output = Result<T, kube::Error>>,
) -> Result<T, String> {
    match tokio::time::timeout(REQUEST_TIMEOUT, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("{what}: {e}")),
        Err(_) => Err(format!(
            "{what}: no answer within {}s",
            REQUEST_TIMEOUT.as_secs()
        )),
    }
}

fn node_ready(n: &Node) -> bool {
    n.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// `kube.nodesReady`: the ratio of Ready nodes is at least `min_ratio`.
pub async fn nodes_ready(client: &Client, min_ratio: f64) -> Observation {
    let nodes = match bounded(
        "listing nodes",
        Api::<Node>::all(client.clone()).list(&ListParams::default()),
    )
    .await
    {
        Ok(l) => l.items,
        Err(e) => return Observation::inconclusive(e),
    };
    if nodes.is_empty() {
        return Observation::inconclusive("no nodes");
    }
    let ready = nodes.iter().filter(|n| node_ready(n)).count();
    #[allow(clippy::cast_precision_loss)] // node counts are small
    let ratio = ready as f64 / nodes.len() as f64;
    let mut observed = format!("{ready}/{} Ready", nodes.len());
    let not_ready: Vec<String> = nodes
        .iter()
        .filter(|n| !node_ready(n))
        .filter_map(|n| n.metadata.name.clone())
        .take(NAMED)
        .collect();
    if !not_ready.is_empty() {
        observed.push_str(&format!(" (not ready: {})", not_ready.join(", ")));
    }
    if ratio >= min_ratio {
        Observation::pass(Some(ratio), observed)
    } else {
        Observation::fail(Some(ratio), observed)
    }
}

fn all_namespaces(namespaces: &[String]) -> bool {
    namespaces.is_empty() || namespaces.iter().any(|n| n == "*")
}

/// The namespaces to list in: `None` = all (`*` or nothing given).
fn scopes(namespaces: &[String]) -> Vec<Option<&str>> {
    if all_namespaces(namespaces) {
        vec![None]
    } else {
        namespaces.iter().map(|n| Some(n.as_str())).collect()
    }
}

/// List objects of a namespaced kind in one namespace or all, with the request timeout.
async fn list_in<K>(client: &Client, ns: Option<&str>, what: &str) -> Result<Vec<K>, String>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let api = match ns {
        Some(n) => Api::<K>::namespaced(client.clone(), n),
        None => Api::<K>::all(client.clone()),
    };
    bounded(what, api.list(&ListParams::default()))
        .await
        .map(|l| l.items)
}

fn ns_name(m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> String {
    format!(
        "{}/{}",
        m.namespace.as_deref().unwrap_or(""),
        m.name.as_deref().unwrap_or("")
    )
}

/// `kube.workloadsAvailable`: every Deployment, DaemonSet and StatefulSet in `namespaces`
/// (`*` or empty = all) has all its replicas available.
pub async fn workloads_available(client: &Client, namespaces: &[String]) -> Observation {
    // (kind, namespace/name, available, wanted) of every workload.
    let mut workloads: Vec<(&str, String, i32, i32)> = Vec::new();
    for ns in scopes(namespaces) {
        let listed = async {
            for d in list_in::<Deployment>(client, ns, "listing deployments").await? {
                let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                let have = d
                    .status
                    .as_ref()
                    .and_then(|s| s.available_replicas)
                    .unwrap_or(0);
                workloads.push(("deployment", ns_name(&d.metadata), have, want));
            }
            for d in list_in::<DaemonSet>(client, ns, "listing daemonsets").await? {
                let (want, have) = d.status.as_ref().map_or((0, 0), |s| {
                    (s.desired_number_scheduled, s.number_available.unwrap_or(0))
                });
                workloads.push(("daemonset", ns_name(&d.metadata), have, want));
            }
            for s in list_in::<StatefulSet>(client, ns, "listing statefulsets").await? {
                let want = s.spec.as_ref().and_then(|sp| sp.replicas).unwrap_or(1);
                let have = s
                    .status
                    .as_ref()
                    .and_then(|st| st.ready_replicas)
                    .unwrap_or(0);
                workloads.push(("statefulset", ns_name(&s.metadata), have, want));
            }
            Ok::<(), String>(())
        };
        if let Err(e) = listed.await {
            return Observation::inconclusive(e);
        }
    }
    let total = workloads.len();
    let short: Vec<String> = workloads
        .into_iter()
        .filter(|(_, _, have, want)| have < want)
        .map(|(kind, name, have, want)| format!("{kind} {name} {have}/{want}"))
        .collect();
    #[allow(clippy::cast_precision_loss)]
    let value = Some(short.len() as f64);
    if short.is_empty() {
        Observation::pass(value, format!("{total} workloads available"))
    } else {
        let more = short.len().saturating_sub(NAMED);
        let mut observed = format!(
            "{} of {total} not available: {}",
            short.len(),
            short
                .iter()
                .take(NAMED)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        );
        if more > 0 {
            observed.push_str(&format!(" and {more} more"));
        }
        Observation::fail(value, observed)
    }
}

/// Waiting reasons that mean a pod will not get better on its own.
const BAD_WAITING: [&str; 4] = [
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "CreateContainerConfigError",
];

/// `kube.podsHealthy`: no container waiting in CrashLoopBackOff / ImagePullBackOff, and (with a
/// baseline) total restarts grew by at most `max_restart_growth`. The value is the restart total.
pub async fn pods_healthy(
    client: &Client,
    namespaces: &[String],
    max_restart_growth: Option<u32>,
    baseline_restarts: Option<f64>,
) -> Observation {
    let mut bad = Vec::new();
    let mut restarts: i64 = 0;
    for ns in scopes(namespaces) {
        let pods = match list_in::<Pod>(client, ns, "listing pods").await {
            Ok(p) => p,
            Err(e) => return Observation::inconclusive(e),
        };
        for p in pods {
            for cs in p
                .status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref())
                .into_iter()
                .flatten()
            {
                restarts += i64::from(cs.restart_count);
                let reason = cs
                    .state
                    .as_ref()
                    .and_then(|s| s.waiting.as_ref())
                    .and_then(|w| w.reason.as_deref());
                if let Some(r) = reason.filter(|r| BAD_WAITING.contains(r)) {
                    bad.push(format!(
                        "{}/{} {r}",
                        p.metadata.namespace.as_deref().unwrap_or(""),
                        p.metadata.name.as_deref().unwrap_or("")
                    ));
                }
            }
        }
    }
    #[allow(clippy::cast_precision_loss)]
    let value = restarts as f64;
    if !bad.is_empty() {
        let shown: Vec<String> = bad.iter().take(NAMED).cloned().collect();
        return Observation::fail(
            Some(value),
            format!("{} unhealthy: {}", bad.len(), shown.join(", ")),
        );
    }
    if let (Some(max), Some(base)) = (max_restart_growth, baseline_restarts)
        && value - base > f64::from(max)
    {
        return Observation::fail(
            Some(value),
            format!("restarts grew by {} (max {max})", value - base),
        );
    }
    Observation::pass(Some(value), format!("{restarts} restarts, no crash loops"))
}

/// The control plane's version, as the cluster reports it (`v1.33.4-eks-1a2b3c`).
pub async fn control_plane_version(client: &Client) -> Result<Version, String> {
    let info = bounded("reading /version", client.apiserver_version()).await?;
    Version::parse(&info.git_version)
        .map_err(|e| format!("the API server reports {}: {e}", info.git_version))
}

/// Convergence of a Kubernetes step: the control plane is at the target minor and every
/// kubelet is within the skew policy (never ahead, at most three minors behind). What is still
/// behind is named.
pub async fn kubernetes_converged(client: &Client, target: &Version) -> Observation {
    let cp = match control_plane_version(client).await {
        Ok(v) => v,
        Err(e) => return Observation::inconclusive(e),
    };
    if cp.major_minor() != target.major_minor() {
        return Observation::fail(None, format!("control plane at {cp}, waiting for {target}"));
    }
    let nodes = match bounded(
        "listing nodes",
        Api::<Node>::all(client.clone()).list(&ListParams::default()),
    )
    .await
    {
        Ok(l) => l.items,
        Err(e) => return Observation::inconclusive(e),
    };
    let mut off = Vec::new();
    for n in &nodes {
        let kubelet = n
            .status
            .as_ref()
            .and_then(|s| s.node_info.as_ref())
            .map(|i| i.kubelet_version.clone())
            .unwrap_or_default();
        let name = n.metadata.name.clone().unwrap_or_default();
        match Version::parse(&kubelet) {
            Ok(k) => {
                if let Err(e) = kubelet_skew(&cp, &k) {
                    off.push(format!("{name}: {e}"));
                }
            }
            Err(_) => off.push(format!("{name}: kubelet version `{kubelet}` unreadable")),
        }
    }
    if off.is_empty() {
        Observation::pass(
            None,
            format!("control plane {cp}, {} nodes within skew", nodes.len()),
        )
    } else {
        Observation::fail(
            None,
            off.into_iter().take(NAMED).collect::<Vec<_>>().join("; "),
        )
    }
}

/// Read a value at a JSONPath subset: `.a.b[0].c` (dot keys and list indexes).
pub fn json_path<'v>(value: &'v serde_json::Value, path: &str) -> Option<&'v serde_json::Value> {
    let mut current = value;
    for part in path
        .trim_start_matches('.')
        .split('.')
        .filter(|p| !p.is_empty())
    {
        let (key, indexes) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !key.is_empty() {
            current = current.get(key)?;
        }
        for idx in indexes.split('[').filter(|s| !s.is_empty()) {
            let n: usize = idx.trim_end_matches(']').parse().ok()?;
            current = current.get(n)?;
        }
    }
    Some(current)
}

/// `kube.resource`: every object of `apiVersion`/`kind` (found through API discovery, so CRDs
/// such as Argo CD Applications and Flux Kustomizations work) selected by namespace, name and
/// label selector has, at `jsonPath`, a value that equals / is in / satisfies the semver range.
/// No matching object is inconclusive (a gate that cannot see anything never passes).
pub async fn resource(client: &Client, check: &rings::model::ResourceCheck) -> Observation {
    let (group, version) = match check.api_version.split_once('/') {
        Some((g, v)) => (g.to_owned(), v.to_owned()),
        None => (String::new(), check.api_version.clone()),
    };
    let gvk = kube::api::GroupVersionKind::gvk(&group, &version, &check.kind);
    let (ar, caps) = match bounded(
        "discovering the resource",
        kube::discovery::pinned_kind(client, &gvk),
    )
    .await
    {
        Ok(found) => found,
        Err(e) => return Observation::inconclusive(e),
    };
    let api: Api<kube::api::DynamicObject> = match (&check.namespace, caps.scope) {
        (Some(ns), kube::discovery::Scope::Namespaced) => {
            Api::namespaced_with(client.clone(), ns, &ar)
        }
        _ => Api::all_with(client.clone(), &ar),
    };
    let mut lp = ListParams::default();
    if let Some(sel) = &check.label_selector {
        lp = lp.labels(sel);
    }
    let objects = match bounded("listing objects", api.list(&lp)).await {
        Ok(l) => l.items,
        Err(e) => return Observation::inconclusive(e),
    };
    let objects: Vec<_> = objects
        .into_iter()
        .filter(|o| {
            check
                .name
                .as_ref()
                .is_none_or(|n| o.metadata.name.as_ref() == Some(n))
        })
        .collect();
    if objects.is_empty() {
        return Observation::inconclusive(format!("no {} matches", check.kind));
    }
    let range = check
        .semver_range
        .as_deref()
        .and_then(|r| rings::VersionRange::parse(r).ok());
    let mut bad = Vec::new();
    for o in &objects {
        let name = o.metadata.name.clone().unwrap_or_default();
        let json = match serde_json::to_value(o) {
            Ok(v) => v,
            Err(e) => return Observation::inconclusive(format!("{name}: {e}")),
        };
        let found = json_path(&json, &check.json_path).map(|v| match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        });
        let Some(value) = found else {
            bad.push(format!("{name}: no {}", check.json_path));
            continue;
        };
        let ok = if let Some(want) = &check.equals {
            &value == want
        } else if let Some(set) = &check.one_of {
            set.contains(&value)
        } else if let Some(r) = &range {
            Version::parse(&value).is_ok_and(|v| r.matches(&v))
        } else {
            false
        };
        if !ok {
            bad.push(format!("{name}: {value}"));
        }
    }
    #[allow(clippy::cast_precision_loss)]
    let value = Some(bad.len() as f64);
    if bad.is_empty() {
        Observation::pass(value, format!("{} {} ok", objects.len(), check.kind))
    } else {
        Observation::fail(
            value,
            bad.into_iter().take(NAMED).collect::<Vec<_>>().join(", "),
        )
    }
}

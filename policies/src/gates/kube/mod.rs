//! Kubernetes gates and convergence through the kube client (DESIGN §6): nodes Ready, workloads
//! available, pods healthy, any resource by JSONPath, and whether a cluster runs what its ring
//! step promised. Every request goes through a [`Conn`]: it first takes a token from the
//! cluster's request budget (when it has one) and then has a timeout; an error or timeout is
//! inconclusive, never a pass.
//!
//! Each check has a form taking a [`Conn`] (`nodes_ready_on`, …), which the probe uses, and a
//! form taking a bare [`Client`] (no budget, [`REQUEST_TIMEOUT`]).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Client;
use kube::api::{Api, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use rings::Version;

use super::Observation;
use crate::ratelimit::TokenBucket;

pub mod converge;
pub mod removed;

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
    client_from_config(config, context, REQUEST_TIMEOUT)
}

/// A client for `context` of an already-read kubeconfig. Only that context, its cluster and its
/// user are handed to kube, so a kubeconfig of a thousand contexts is not copied a thousand
/// times.
pub async fn client_from_kubeconfig(
    kubeconfig: &Kubeconfig,
    context: &str,
    timeout: Duration,
) -> Result<Client, String> {
    let ctx = kubeconfig
        .contexts
        .iter()
        .find(|c| c.name == context)
        .ok_or_else(|| format!("the kubeconfig has no context `{context}`"))?;
    let (cluster, user) = ctx
        .context
        .as_ref()
        .map(|c| (c.cluster.clone(), c.user.clone()))
        .unwrap_or_default();
    let only = Kubeconfig {
        clusters: kubeconfig
            .clusters
            .iter()
            .filter(|c| c.name == cluster)
            .cloned()
            .collect(),
        auth_infos: kubeconfig
            .auth_infos
            .iter()
            .filter(|u| Some(&u.name) == user.as_ref())
            .cloned()
            .collect(),
        contexts: vec![ctx.clone()],
        current_context: Some(context.to_owned()),
        preferences: kubeconfig.preferences.clone(),
        extensions: None,
        kind: kubeconfig.kind.clone(),
        api_version: kubeconfig.api_version.clone(),
        other: Default::default(),
    };
    let options = KubeConfigOptions {
        context: Some(context.to_owned()),
        ..KubeConfigOptions::default()
    };
    let config = kube::Config::from_custom_kubeconfig(only, &options)
        .await
        .map_err(|e| format!("kubeconfig context {context}: {e}"))?;
    client_from_config(config, context, timeout)
}

fn client_from_config(
    mut config: kube::Config,
    context: &str,
    timeout: Duration,
) -> Result<Client, String> {
    config.connect_timeout = Some(timeout);
    config.read_timeout = Some(timeout);
    if config.cluster_url.scheme_str() == Some("http") && config.root_cert.is_none() {
        // A plain-HTTP API server (`kubectl proxy`, the simulator) is never verified, but
        // without a CA kube would load the whole system trust store into every client: ~3 ms
        // and ~150 KiB per cluster. An empty store costs nothing and changes nothing for HTTP.
        config.root_cert = Some(Vec::new());
    }
    Client::try_from(config).map_err(|e| format!("kube client for {context}: {e}"))
}

/// One cluster's API server as ringmaster talks to it: a client, the cluster's request budget
/// (a token bucket, DESIGN §13; none = unlimited) and a timeout per request.
#[derive(Clone)]
pub struct Conn {
    client: Client,
    limiter: Option<Arc<TokenBucket>>,
    timeout: Duration,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // kube's Client has no Debug (it holds credentials); show the budget only.
        f.debug_struct("Conn")
            .field("limiter", &self.limiter)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Conn {
    /// No request budget, [`REQUEST_TIMEOUT`] per request.
    pub fn new(client: Client) -> Conn {
        Conn {
            client,
            limiter: None,
            timeout: REQUEST_TIMEOUT,
        }
    }

    /// Every request first takes a token from `limiter`.
    pub fn with_limiter(mut self, limiter: Arc<TokenBucket>) -> Conn {
        self.limiter = Some(limiter);
        self
    }

    /// Each request may take at most `timeout` (the wait for a token is not counted).
    pub fn with_timeout(mut self, timeout: Duration) -> Conn {
        self.timeout = timeout;
        self
    }

    /// The client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Run one request: take a token, then await `fut` (a lazy kube request future) with the
    /// timeout. The error names `what` was being done.
    pub(crate) async fn call<T>(
        &self,
        what: &str,
        fut: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, String> {
        if let Some(limiter) = &self.limiter {
            limiter.acquire().await;
        }
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(Ok(v)) => Ok(v),
            // kube's own text of an API error repeats the whole `Status` in Debug form.
            Ok(Err(kube::Error::Api(status))) => Err(format!(
                "{what}: HTTP {} {}: {}",
                status.code, status.reason, status.message
            )),
            Ok(Err(e)) => Err(format!("{what}: {}", super::error_chain(&e))),
            Err(_) => Err(format!(
                "{what}: no answer within {}s",
                self.timeout.as_secs_f64()
            )),
        }
    }
}

/// The node's `Ready` condition is `True`.
pub(crate) fn node_ready(n: &Node) -> bool {
    n.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Every node of the cluster.
pub(crate) async fn list_nodes(conn: &Conn) -> Result<Vec<Node>, String> {
    conn.call(
        "listing nodes",
        Api::<Node>::all(conn.client.clone()).list(&ListParams::default()),
    )
    .await
    .map(|l| l.items)
}

/// `kube.nodesReady`: the ratio of Ready nodes is at least `min_ratio`.
pub async fn nodes_ready(client: &Client, min_ratio: f64) -> Observation {
    nodes_ready_on(&Conn::new(client.clone()), min_ratio).await
}

/// [`nodes_ready`] through a [`Conn`].
pub async fn nodes_ready_on(conn: &Conn, min_ratio: f64) -> Observation {
    let nodes = match list_nodes(conn).await {
        Ok(n) => n,
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

/// List objects of a namespaced kind in one namespace or all.
async fn list_in<K>(conn: &Conn, ns: Option<&str>, what: &str) -> Result<Vec<K>, String>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let api = match ns {
        Some(n) => Api::<K>::namespaced(conn.client.clone(), n),
        None => Api::<K>::all(conn.client.clone()),
    };
    conn.call(what, api.list(&ListParams::default()))
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
    workloads_available_on(&Conn::new(client.clone()), namespaces).await
}

/// [`workloads_available`] through a [`Conn`].
pub async fn workloads_available_on(conn: &Conn, namespaces: &[String]) -> Observation {
    // (kind, namespace/name, available, wanted) of every workload.
    let mut workloads: Vec<(&str, String, i32, i32)> = Vec::new();
    for ns in scopes(namespaces) {
        let listed = async {
            for d in list_in::<Deployment>(conn, ns, "listing deployments").await? {
                let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                let have = d
                    .status
                    .as_ref()
                    .and_then(|s| s.available_replicas)
                    .unwrap_or(0);
                workloads.push(("deployment", ns_name(&d.metadata), have, want));
            }
            for d in list_in::<DaemonSet>(conn, ns, "listing daemonsets").await? {
                let (want, have) = d.status.as_ref().map_or((0, 0), |s| {
                    (s.desired_number_scheduled, s.number_available.unwrap_or(0))
                });
                workloads.push(("daemonset", ns_name(&d.metadata), have, want));
            }
            for s in list_in::<StatefulSet>(conn, ns, "listing statefulsets").await? {
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

/// What `kube.podsHealthy` reads: the total container restart count and the containers stuck
/// in a bad waiting state (`namespace/pod reason`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PodHealth {
    /// Sum of `restartCount` over every container of every pod.
    pub restarts: i64,
    /// Containers waiting in CrashLoopBackOff, ImagePullBackOff, …
    pub bad: Vec<String>,
}

/// Read the pods of `namespaces` (`*` or empty = all).
pub async fn pod_health_on(conn: &Conn, namespaces: &[String]) -> Result<PodHealth, String> {
    let mut health = PodHealth::default();
    for ns in scopes(namespaces) {
        for p in list_in::<Pod>(conn, ns, "listing pods").await? {
            for cs in p
                .status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref())
                .into_iter()
                .flatten()
            {
                health.restarts += i64::from(cs.restart_count);
                let reason = cs
                    .state
                    .as_ref()
                    .and_then(|s| s.waiting.as_ref())
                    .and_then(|w| w.reason.as_deref());
                if let Some(r) = reason.filter(|r| BAD_WAITING.contains(r)) {
                    health.bad.push(format!(
                        "{}/{} {r}",
                        p.metadata.namespace.as_deref().unwrap_or(""),
                        p.metadata.name.as_deref().unwrap_or("")
                    ));
                }
            }
        }
    }
    Ok(health)
}

/// Judge a [`PodHealth`]: a bad container fails; with `max_restart_growth`, restarts may grow
/// by at most that over `baseline_restarts`. When the baseline is missing the growth is not
/// judged, unless `baseline_required` (then the observation is inconclusive). The value is the
/// restart total.
pub fn judge_pods(
    health: &PodHealth,
    max_restart_growth: Option<u32>,
    baseline_restarts: Option<f64>,
    baseline_required: bool,
) -> Observation {
    #[allow(clippy::cast_precision_loss)]
    let value = health.restarts as f64;
    if !health.bad.is_empty() {
        let shown: Vec<String> = health.bad.iter().take(NAMED).cloned().collect();
        return Observation::fail(
            Some(value),
            format!("{} unhealthy: {}", health.bad.len(), shown.join(", ")),
        );
    }
    match (max_restart_growth, baseline_restarts) {
        (Some(max), Some(base)) if value - base > f64::from(max) => {
            return Observation::fail(
                Some(value),
                format!("restarts grew by {} (max {max})", value - base),
            );
        }
        (Some(max), None) if baseline_required => {
            return Observation::inconclusive(format!(
                "{} restarts, no crash loops; no restart count from before the merge to \
                 compare with (maxRestartGrowth {max})",
                health.restarts
            ));
        }
        _ => {}
    }
    Observation::pass(
        Some(value),
        format!("{} restarts, no crash loops", health.restarts),
    )
}

/// `kube.podsHealthy`: no container waiting in CrashLoopBackOff / ImagePullBackOff, and (with a
/// baseline) total restarts grew by at most `max_restart_growth`. The value is the restart total.
pub async fn pods_healthy(
    client: &Client,
    namespaces: &[String],
    max_restart_growth: Option<u32>,
    baseline_restarts: Option<f64>,
) -> Observation {
    match pod_health_on(&Conn::new(client.clone()), namespaces).await {
        Ok(health) => judge_pods(&health, max_restart_growth, baseline_restarts, false),
        Err(e) => Observation::inconclusive(e),
    }
}

/// The control plane's version, as the cluster reports it (`v1.33.4-eks-1a2b3c`).
pub async fn control_plane_version(client: &Client) -> Result<Version, String> {
    control_plane_version_on(&Conn::new(client.clone())).await
}

/// [`control_plane_version`] through a [`Conn`].
pub async fn control_plane_version_on(conn: &Conn) -> Result<Version, String> {
    let info = conn
        .call("reading /version", conn.client.apiserver_version())
        .await?;
    Version::parse(&info.git_version)
        .map_err(|e| format!("the API server reports {}: {e}", info.git_version))
}

/// A node's kubelet version, or a message when it cannot be read.
pub(crate) fn kubelet_version(n: &Node) -> Result<Version, String> {
    let kubelet = n
        .status
        .as_ref()
        .and_then(|s| s.node_info.as_ref())
        .map(|i| i.kubelet_version.clone())
        .unwrap_or_default();
    Version::parse(&kubelet).map_err(|_| format!("kubelet version `{kubelet}` unreadable"))
}

/// Convergence of a Kubernetes step as an observation: [`converge::kubernetes`] (the control
/// plane at the target minor, the nodes done as `nodes` says), what is still behind named.
pub async fn kubernetes_converged(
    client: &Client,
    target: &Version,
    nodes: rings::model::NodeConvergence,
) -> Observation {
    let conn = Conn::new(client.clone());
    let cp = match control_plane_version_on(&conn).await {
        Ok(v) => v,
        Err(e) => return Observation::inconclusive(e),
    };
    match converge::kubernetes(&conn, &cp, target, nodes).await {
        converge::Check::Converged(seen) => Observation::pass(None, seen),
        converge::Check::Behind(behind) => Observation::fail(None, behind.join("; ")),
        converge::Check::Inconclusive(why) => Observation::inconclusive(why),
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

/// `(group, version)` of an `apiVersion` (`v1` is the core group).
pub(crate) fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    }
}

/// Find `apiVersion`/`kind` through API discovery (so CRDs work).
pub(crate) async fn discover(
    conn: &Conn,
    api_version: &str,
    kind: &str,
) -> Result<(kube::api::ApiResource, kube::discovery::ApiCapabilities), String> {
    let (group, version) = split_api_version(api_version);
    let gvk = kube::api::GroupVersionKind::gvk(group, version, kind);
    conn.call(
        &format!("discovering {api_version} {kind}"),
        kube::discovery::pinned_kind(&conn.client, &gvk),
    )
    .await
}

/// A JSON value as text: strings as they are, anything else as JSON.
pub(crate) fn value_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `kube.resource`: every object of `apiVersion`/`kind` (found through API discovery, so CRDs
/// such as Argo CD Applications and Flux Kustomizations work) selected by namespace, name and
/// label selector has, at `jsonPath`, a value that equals / is in / satisfies the semver range.
/// No matching object is inconclusive (a gate that cannot see anything never passes).
pub async fn resource(client: &Client, check: &rings::model::ResourceCheck) -> Observation {
    resource_on(&Conn::new(client.clone()), check).await
}

/// [`resource`] through a [`Conn`].
pub async fn resource_on(conn: &Conn, check: &rings::model::ResourceCheck) -> Observation {
    let (ar, caps) = match discover(conn, &check.api_version, &check.kind).await {
        Ok(found) => found,
        Err(e) => return Observation::inconclusive(e),
    };
    let api: Api<kube::api::DynamicObject> = match (&check.namespace, caps.scope) {
        (Some(ns), kube::discovery::Scope::Namespaced) => {
            Api::namespaced_with(conn.client.clone(), ns, &ar)
        }
        _ => Api::all_with(conn.client.clone(), &ar),
    };
    let mut lp = ListParams::default();
    if let Some(sel) = &check.label_selector {
        lp = lp.labels(sel);
    }
    let objects = match conn.call("listing objects", api.list(&lp)).await {
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
        let found = json_path(&json, &check.json_path).map(value_text);
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

//! The probe: what the daemon calls to look at clusters (DESIGN §6, §6.1, §13). It evaluates
//! gates across a ring, samples pre-upgrade baselines, tells whether a cluster converged, and
//! runs the preflight checks before a ring's PR opens.
//!
//! Budgets (DESIGN §13), enforced here for every caller:
//! - every request to a cluster's API server first takes a token from that cluster's token
//!   bucket ([`ProbeSettings::qps`], [`ProbeSettings::burst`]; kube-rs has no limiter);
//! - at most [`ProbeSettings::max_clusters_in_flight`] clusters are worked on at once, across
//!   every call of every clone of the probe (one semaphore);
//! - every request times out after [`ProbeSettings::request_timeout`];
//! - Prometheus: at most 10 queries in flight per server, 30 s each, and a `by (cluster)` query
//!   runs once per ring ([`crate::gates::prometheus`]).
//!
//! Nothing here returns a pass on an error: an unreachable cluster, a timeout, a query error is
//! inconclusive (gates, convergence) or a finding (preflight).
//!
//! **Restart growth** (`kube.podsHealthy.maxRestartGrowth`) compares with the restart total
//! taken by [`Probe::sample_baselines`] before the merge and handed back to
//! [`Probe::evaluate`] in [`Baselines`], like a Prometheus `baseline: preUpgrade`. The probe
//! keeps no per-gate state, so a daemon restart loses nothing the store does not hold; without
//! that sample the growth cannot be judged and the gate is inconclusive.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use kube::config::Kubeconfig;
use rings::model::{Cluster, Gate, GateCheck, KubeGate, Observe};
use rings::{GateName, Version};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

mod types;

pub use types::{
    Baselines, CHECK_ANSWERS, CHECK_KUBELETS, CHECK_REMOVED_APIS, CHECK_VERSION, Convergence,
    Finding, GateObservation, Preflight, Targets,
};

use crate::gates::kube::converge::{self, Check};
use crate::gates::kube::removed::{Hit, cap_hits, removed_apis_on};
use crate::gates::kube::{
    Conn, client_from_kubeconfig, control_plane_version_on, judge_pods, kubelet_version,
    list_nodes, nodes_ready_on, pod_health_on, resource_on, workloads_available_on,
};
use crate::gates::prometheus::{self, PrometheusClient, is_by_cluster};
use crate::gates::{Observation, command, http};
use crate::ratelimit::{DEFAULT_BURST, DEFAULT_QPS, TokenBucket};
use crate::soak::Outcome;

/// Clusters worked on at once by default.
pub const DEFAULT_MAX_CLUSTERS_IN_FLIGHT: usize = 16;
/// Timeout of one Kubernetes API request by default.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = crate::gates::kube::REQUEST_TIMEOUT;
/// A cluster's client (with its connections and token bucket) not used for this long is
/// dropped, so the probe holds clients for the clusters being polled (rings converging,
/// soaking or in preflight, DESIGN §13), not for every cluster it ever saw.
pub const IDLE_CLIENT_TTL: Duration = Duration::from_secs(15 * 60);
/// How many removed-API hits of one observation are named in `observed`.
const NAMED_HITS: usize = 5;

/// How the probe reaches clusters, and its budgets.
#[derive(Debug, Clone)]
pub struct ProbeSettings {
    /// Kubeconfig file; `None` = `$KUBECONFIG`, then `~/.kube/config`. Each cluster is reached
    /// through its registry `kubeContext`.
    pub kubeconfig: Option<PathBuf>,
    /// Requests per second per cluster (default 5).
    pub qps: f64,
    /// Requests a cluster may receive at once before `qps` applies (default 10).
    pub burst: u32,
    /// Clusters worked on at once, across all calls (default 16; 0 is taken as 1).
    pub max_clusters_in_flight: usize,
    /// Timeout of one Kubernetes API request (default 10 s).
    pub request_timeout: Duration,
}

impl Default for ProbeSettings {
    fn default() -> Self {
        ProbeSettings {
            kubeconfig: None,
            qps: DEFAULT_QPS,
            burst: DEFAULT_BURST,
            max_clusters_in_flight: DEFAULT_MAX_CLUSTERS_IN_FLIGHT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }
}

/// The kind of check a gate performs, as written in `rings.yaml`.
fn gate_kind(gate: &Gate) -> &'static str {
    match &gate.check {
        GateCheck::Kube(k) => kube_kind(k),
        GateCheck::Prometheus(_) => "prometheus",
        GateCheck::Http(_) => "http",
        GateCheck::Command(_) => "command",
    }
}

fn kube_kind(k: &KubeGate) -> &'static str {
    if k.nodes_ready.is_some() {
        "kube.nodesReady"
    } else if k.workloads_available.is_some() {
        "kube.workloadsAvailable"
    } else if k.pods_healthy.is_some() {
        "kube.podsHealthy"
    } else if k.resource.is_some() {
        "kube.resource"
    } else if k.removed_apis.is_some() {
        CHECK_REMOVED_APIS
    } else {
        "kube"
    }
}

/// A Prometheus gate run once for the whole ring.
fn is_ring_level(gate: &Gate) -> bool {
    matches!(&gate.check, GateCheck::Prometheus(p) if is_by_cluster(&p.query))
}

/// The kubeconfig as last read, with the file's modification time (to notice edits).
#[derive(Debug)]
struct LoadedKubeconfig {
    modified: Option<SystemTime>,
    config: Arc<Kubeconfig>,
}

#[derive(Debug)]
struct Inner {
    settings: ProbeSettings,
    kubeconfig: tokio::sync::Mutex<Option<LoadedKubeconfig>>,
    /// Per kube context: the client and the cluster's token bucket, and when it was last used.
    conns: Mutex<HashMap<String, (Arc<Conn>, Instant)>>,
    in_flight: Arc<Semaphore>,
    http: reqwest::Client,
    prometheus: PrometheusClient,
}

/// The probe. Cheap to clone; clones share clients, buckets and the in-flight limit.
#[derive(Debug, Clone)]
pub struct Probe {
    inner: Arc<Inner>,
}

impl Probe {
    /// A probe with no client yet (clients are made per kube context on first use and kept).
    /// Installs `ring` as the process's rustls crypto provider if none is installed yet.
    pub fn new(settings: ProbeSettings) -> Probe {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder().build().unwrap_or_default();
        let permits = settings.max_clusters_in_flight.max(1);
        Probe {
            inner: Arc::new(Inner {
                settings,
                kubeconfig: tokio::sync::Mutex::new(None),
                conns: Mutex::new(HashMap::new()),
                in_flight: Arc::new(Semaphore::new(permits)),
                http,
                prometheus: PrometheusClient::new(),
            }),
        }
    }

    /// The settings it was made with.
    pub fn settings(&self) -> &ProbeSettings {
        &self.inner.settings
    }

    /// The kubeconfig, read once and again when the file changes (then every client is made
    /// anew on next use).
    async fn kubeconfig(&self) -> Result<Arc<Kubeconfig>, String> {
        let path = self.inner.settings.kubeconfig.clone();
        let modified = path
            .as_ref()
            .and_then(|p| std::fs::metadata(p).ok())
            .and_then(|m| m.modified().ok());
        let mut cached = self.inner.kubeconfig.lock().await;
        if let Some(c) = cached.as_ref()
            && c.modified == modified
        {
            return Ok(c.config.clone());
        }
        let read = tokio::task::spawn_blocking(move || match &path {
            Some(p) => {
                Kubeconfig::read_from(p).map_err(|e| format!("kubeconfig {}: {e}", p.display()))
            }
            None => Kubeconfig::read().map_err(|e| format!("kubeconfig: {e}")),
        })
        .await
        .map_err(|e| format!("reading the kubeconfig: {e}"))??;
        let config = Arc::new(read);
        *cached = Some(LoadedKubeconfig {
            modified,
            config: config.clone(),
        });
        self.inner
            .conns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        Ok(config)
    }

    /// The connection to `cluster` through its kube context: made on first use, then kept.
    async fn conn(&self, cluster: &Cluster) -> Result<Arc<Conn>, String> {
        let context = &cluster.kube_context;
        let kubeconfig = self
            .kubeconfig()
            .await
            .map_err(|e| format!("cluster {}: {e}", cluster.id))?;
        if let Some((c, used)) = self
            .inner
            .conns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(context)
        {
            *used = Instant::now();
            return Ok(c.clone());
        }
        let settings = &self.inner.settings;
        let client = client_from_kubeconfig(&kubeconfig, context, settings.request_timeout)
            .await
            .map_err(|e| format!("cluster {}: {e}", cluster.id))?;
        let conn = Arc::new(
            Conn::new(client)
                .with_limiter(Arc::new(TokenBucket::new(settings.qps, settings.burst)))
                .with_timeout(settings.request_timeout),
        );
        let now = Instant::now();
        let mut conns = self.inner.conns.lock().unwrap_or_else(|p| p.into_inner());
        conns.retain(|_, (_, used)| now.duration_since(*used) < IDLE_CLIENT_TTL);
        Ok(conns
            .entry(context.clone())
            .or_insert((conn, now))
            .0
            .clone())
    }

    /// How many cluster clients the probe holds now.
    pub fn clients(&self) -> usize {
        self.inner
            .conns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    /// Run `work` for every cluster, at most `max_clusters_in_flight` at a time (shared with
    /// every other call), and return the results in `clusters` order. A task that panics gets
    /// `failed(message)`.
    async fn for_each_cluster<T, Fut>(
        &self,
        clusters: &[&Cluster],
        work: impl Fn(Probe, Cluster) -> Fut,
        failed: impl Fn(String) -> T,
    ) -> Vec<T>
    where
        Fut: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        let mut results: Vec<Option<T>> = clusters.iter().map(|_| None).collect();
        let mut tasks = JoinSet::new();
        let mut ids = HashMap::new();
        let mut collect = |done: Result<(tokio::task::Id, T), tokio::task::JoinError>,
                           ids: &mut HashMap<tokio::task::Id, usize>| {
            match done {
                Ok((id, value)) => {
                    if let Some(slot) = ids.remove(&id).and_then(|i| results.get_mut(i)) {
                        *slot = Some(value);
                    }
                }
                Err(e) => {
                    if let Some(slot) = ids.remove(&e.id()).and_then(|i| results.get_mut(i)) {
                        *slot = Some(failed(format!("the check failed: {e}")));
                    }
                }
            }
        };
        for (i, cluster) in clusters.iter().enumerate() {
            let Ok(permit) = self.inner.in_flight.clone().acquire_owned().await else {
                break;
            };
            let fut = work(self.clone(), (*cluster).clone());
            let handle = tasks.spawn(async move {
                let _permit = permit;
                fut.await
            });
            ids.insert(handle.id(), i);
            while let Some(done) = tasks.try_join_next_with_id() {
                collect(done, &mut ids);
            }
        }
        while let Some(done) = tasks.join_next_with_id().await {
            collect(done, &mut ids);
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| failed("the probe was shut down".to_owned())))
            .collect()
    }

    /// Evaluate one gate on one cluster. `conn` is the cluster's connection when a kube gate
    /// needs one (or why there is none); `target` is the Kubernetes step's target, for
    /// `kube.removedApis` (none outside a preflight).
    async fn gate_on(
        &self,
        gate: &Gate,
        cluster: &Cluster,
        conn: Option<&Result<Arc<Conn>, String>>,
        baselines: &Baselines,
        target: Option<&Version>,
    ) -> Observation {
        let baseline = baselines.get(&gate.name, &cluster.id);
        match &gate.check {
            GateCheck::Kube(k) => {
                let conn = match conn {
                    Some(Ok(c)) => c,
                    Some(Err(e)) => return Observation::inconclusive(e.clone()),
                    None => return Observation::inconclusive("no connection to the cluster"),
                };
                if let Some(n) = &k.nodes_ready {
                    nodes_ready_on(conn, n.min_ratio).await
                } else if let Some(w) = &k.workloads_available {
                    workloads_available_on(conn, &w.namespaces).await
                } else if let Some(p) = &k.pods_healthy {
                    match pod_health_on(conn, &p.namespaces).await {
                        Ok(health) => judge_pods(&health, p.max_restart_growth, baseline, true),
                        Err(e) => Observation::inconclusive(e),
                    }
                } else if let Some(r) = &k.resource {
                    resource_on(conn, r).await
                } else if let Some(r) = &k.removed_apis {
                    let Some(target) = target else {
                        return Observation::inconclusive(
                            "kube.removedApis checks a Kubernetes step before it is made; \
                             it runs in a ring's preflight for a Kubernetes release",
                        );
                    };
                    match step_minor(target) {
                        Err(e) => Observation::inconclusive(e),
                        Ok(minor) => judge_hits(removed_apis_on(conn, minor, &r.ignore).await),
                    }
                } else {
                    Observation::inconclusive("the kube gate names no check")
                }
            }
            GateCheck::Prometheus(p) => {
                if is_by_cluster(&p.query) {
                    let mut one = prometheus::evaluate_ring(
                        &self.inner.prometheus,
                        p,
                        &[cluster],
                        &baselines.of_gate(&gate.name),
                    )
                    .await;
                    one.pop()
                        .map_or_else(|| Observation::inconclusive("no result"), |(_, o)| o)
                } else {
                    prometheus::evaluate(&self.inner.prometheus, p, cluster, baseline).await
                }
            }
            GateCheck::Http(h) => http::evaluate(&self.inner.http, h, cluster).await,
            GateCheck::Command(c) => command::evaluate(c, cluster).await,
        }
    }

    /// Evaluate each gate on each cluster once. A Prometheus gate whose query has the
    /// `by (cluster)` form runs once for the ring; every other gate runs per cluster, at most
    /// `max_clusters_in_flight` clusters at a time, each cluster's requests within its budget.
    /// `baselines` holds what [`Probe::sample_baselines`] took before the merge. Results are
    /// gate by gate, in `gates` then `clusters` order.
    pub async fn evaluate(
        &self,
        gates: &[&Gate],
        clusters: &[&Cluster],
        baselines: &Baselines,
    ) -> Vec<GateObservation> {
        let ring_gates: Vec<(usize, &Gate)> = gates
            .iter()
            .enumerate()
            .filter(|(_, g)| is_ring_level(g))
            .map(|(i, g)| (i, *g))
            .collect();
        let cluster_gates: Arc<Vec<(usize, Gate)>> = Arc::new(
            gates
                .iter()
                .enumerate()
                .filter(|(_, g)| !is_ring_level(g))
                .map(|(i, g)| (i, (*g).clone()))
                .collect(),
        );
        let needs_kube = cluster_gates
            .iter()
            .any(|(_, g)| matches!(g.check, GateCheck::Kube(_)));
        let shared_baselines = Arc::new(baselines.clone());

        let ring_level = async {
            let mut out = Vec::new();
            for (i, gate) in &ring_gates {
                let GateCheck::Prometheus(p) = &gate.check else {
                    continue;
                };
                let observed = prometheus::evaluate_ring(
                    &self.inner.prometheus,
                    p,
                    clusters,
                    &baselines.of_gate(&gate.name),
                )
                .await;
                for (j, (_, o)) in observed.into_iter().enumerate() {
                    out.push(((*i, j), o));
                }
            }
            out
        };
        let per_cluster = self.for_each_cluster(
            clusters,
            |probe, cluster| {
                let gates = cluster_gates.clone();
                let baselines = shared_baselines.clone();
                async move {
                    let conn = if needs_kube {
                        Some(probe.conn(&cluster).await)
                    } else {
                        None
                    };
                    let mut out = Vec::with_capacity(gates.len());
                    for (i, gate) in gates.iter() {
                        let o = probe
                            .gate_on(gate, &cluster, conn.as_ref(), &baselines, None)
                            .await;
                        out.push((*i, o));
                    }
                    out
                }
            },
            |message| {
                cluster_gates
                    .iter()
                    .map(|(i, _)| (*i, Observation::inconclusive(message.clone())))
                    .collect()
            },
        );
        let (ring_level, per_cluster) = tokio::join!(ring_level, per_cluster);

        let mut all: BTreeMap<(usize, usize), Observation> = ring_level.into_iter().collect();
        for (j, observations) in per_cluster.into_iter().enumerate() {
            for (i, o) in observations {
                all.insert((i, j), o);
            }
        }
        all.into_iter()
            .filter_map(|((i, j), observation)| {
                Some(GateObservation {
                    gate: gates.get(i)?.name.clone(),
                    cluster: clusters.get(j)?.id.clone(),
                    observation,
                })
            })
            .collect()
    }

    /// Sample, before a ring's merge, what gates compare with afterwards: the query value of
    /// every Prometheus gate with `baseline: preUpgrade`, and the restart total of every
    /// `kube.podsHealthy` gate with `maxRestartGrowth`. Other gates are ignored; a value that
    /// could not be taken (no data, error) is absent, and the gate is inconclusive later.
    pub async fn sample_baselines(&self, gates: &[&Gate], clusters: &[&Cluster]) -> Baselines {
        let mut baselines = Baselines::default();
        let mut pods: Vec<(GateName, Vec<String>)> = Vec::new();
        for gate in gates {
            match &gate.check {
                GateCheck::Prometheus(p)
                    if p.baseline.as_deref() == Some(prometheus::BASELINE_PRE_UPGRADE) =>
                {
                    let values = prometheus::sample(&self.inner.prometheus, p, clusters).await;
                    for (cluster, value) in clusters.iter().zip(values) {
                        if let Ok(v) = value {
                            baselines.insert(gate.name.clone(), cluster.id.clone(), v);
                        }
                    }
                }
                GateCheck::Kube(k) => {
                    if let Some(p) = k
                        .pods_healthy
                        .as_ref()
                        .filter(|p| p.max_restart_growth.is_some())
                    {
                        pods.push((gate.name.clone(), p.namespaces.clone()));
                    }
                }
                _ => {}
            }
        }
        if pods.is_empty() {
            return baselines;
        }
        let pods = Arc::new(pods);
        let sampled = self
            .for_each_cluster(
                clusters,
                |probe, cluster| {
                    let pods = pods.clone();
                    async move {
                        let Ok(conn) = probe.conn(&cluster).await else {
                            return Vec::new();
                        };
                        let mut out = Vec::new();
                        for (gate, namespaces) in pods.iter() {
                            if let Ok(health) = pod_health_on(&conn, namespaces).await {
                                #[allow(clippy::cast_precision_loss)]
                                out.push((gate.clone(), health.restarts as f64));
                            }
                        }
                        out
                    }
                },
                |_| Vec::new(),
            )
            .await;
        for (cluster, values) in clusters.iter().zip(sampled) {
            for (gate, value) in values {
                baselines.insert(gate, cluster.id.clone(), value);
            }
        }
        baselines
    }

    /// Whether `cluster` converged to `target`: the control plane at the target minor with
    /// every node at it and Ready, or every kubelet within skew (`cluster.nodes`, when
    /// Kubernetes moves), each add-on's workload (from
    /// `observe`) running the target image tag and rolled out, each policy bundle's object
    /// reporting the target version. Anything that could not be read makes the answer
    /// inconclusive, never converged.
    pub async fn convergence(
        &self,
        cluster: &Cluster,
        target: &Targets,
        observe: &Observe,
    ) -> Convergence {
        let inconclusive = |why: String| Convergence {
            converged: false,
            inconclusive: Some(why),
            behind: Vec::new(),
        };
        let Ok(_permit) = self.inner.in_flight.acquire().await else {
            return inconclusive("the probe was shut down".to_owned());
        };
        let conn = match self.conn(cluster).await {
            Ok(c) => c,
            Err(e) => return inconclusive(e),
        };
        // One request first: an unreachable cluster answers nothing else either.
        let cp = match control_plane_version_on(&conn).await {
            Ok(v) => v,
            Err(e) => return inconclusive(format!("cluster {}: {e}", cluster.id)),
        };
        let mut checks = Vec::new();
        if let Some(k) = &target.kubernetes {
            checks.push(converge::kubernetes(&conn, &cp, k, cluster.nodes).await);
        }
        for (name, version) in &target.addons {
            checks.push(match observe.addons.get(name) {
                Some(w) => converge::addon(&conn, name, w, version).await,
                None => Check::Inconclusive(format!(
                    "add-on `{name}` has no `observe.addons.{name}` entry in rings.yaml"
                )),
            });
        }
        for (name, version) in &target.controllers {
            checks.push(match observe.controllers.get(name) {
                Some(w) => converge::addon(&conn, name, w, version).await,
                None => Check::Inconclusive(format!(
                    "controller `{name}` has no `observe.controllers.{name}` entry in rings.yaml"
                )),
            });
        }
        for (name, version) in &target.policies {
            checks.push(match observe.policies.get(name) {
                Some(r) => converge::policy(&conn, name, r, version).await,
                None => Check::Inconclusive(format!(
                    "policy bundle `{name}` has no `observe.policies.{name}` entry in rings.yaml"
                )),
            });
        }
        let mut behind = Vec::new();
        let mut unknown = Vec::new();
        for check in checks {
            match check {
                Check::Converged(_) => {}
                Check::Behind(b) => behind.extend(b),
                Check::Inconclusive(why) => unknown.push(why),
            }
        }
        Convergence {
            converged: behind.is_empty() && unknown.is_empty(),
            inconclusive: (!unknown.is_empty()).then(|| unknown.join("; ")),
            behind,
        }
    }

    /// The preflight of `cluster` before its ring's PR opens (DESIGN §6.1). Built in: the
    /// cluster answers; its control plane runs the minor the registry says (drift is shown,
    /// never overwritten); no kubelet is ahead of the control plane. Then each of `gates` once:
    /// `kube.removedApis` for a step to `target.kubernetes` (skipped when Kubernetes does not
    /// move), any other gate must pass (failing or inconclusive is a finding).
    pub async fn preflight(
        &self,
        cluster: &Cluster,
        target: &Targets,
        gates: &[&Gate],
    ) -> Preflight {
        let mut preflight = Preflight::default();
        let Ok(_permit) = self.inner.in_flight.acquire().await else {
            preflight
                .findings
                .push(Finding::builtin(CHECK_ANSWERS, "the probe was shut down"));
            return preflight;
        };
        let conn = self.conn(cluster).await;
        let c = match &conn {
            Ok(c) => c.clone(),
            Err(e) => {
                preflight
                    .findings
                    .push(Finding::builtin(CHECK_ANSWERS, e.clone()));
                return preflight;
            }
        };
        let cp = match control_plane_version_on(&c).await {
            Ok(v) => v,
            Err(e) => {
                preflight.findings.push(Finding::builtin(
                    CHECK_ANSWERS,
                    format!(
                        "cluster {} (context {}) does not answer: {e}",
                        cluster.id, cluster.kube_context
                    ),
                ));
                return preflight;
            }
        };
        preflight.control_plane = Some(cp.to_string());
        if cp.major_minor() != cluster.kubernetes.major_minor() {
            preflight.findings.push(Finding::builtin(
                CHECK_VERSION,
                format!(
                    "the registry ({}) says Kubernetes {}, the control plane reports {cp}; Git and \
                     the cluster disagree: correct the registry or the cluster before ringmaster \
                     moves it",
                    cluster.path, cluster.kubernetes
                ),
            ));
        }
        match list_nodes(&c).await {
            Err(e) => preflight.findings.push(Finding::builtin(CHECK_KUBELETS, e)),
            Ok(nodes) => {
                for n in &nodes {
                    let name = n.metadata.name.as_deref().unwrap_or("");
                    match kubelet_version(n) {
                        Ok(k) if k.major_minor() > cp.major_minor() => {
                            preflight.findings.push(Finding::builtin(
                                CHECK_KUBELETS,
                                format!("node {name} kubelet {k} is ahead of control plane {cp}"),
                            ));
                        }
                        Ok(_) => {}
                        Err(e) => preflight.findings.push(Finding::builtin(
                            CHECK_KUBELETS,
                            format!("node {name}: {e}"),
                        )),
                    }
                }
            }
        }
        for gate in gates {
            if let GateCheck::Kube(k) = &gate.check
                && let Some(r) = &k.removed_apis
            {
                let Some(t) = &target.kubernetes else {
                    continue;
                };
                let hits = match step_minor(t) {
                    Ok(minor) => removed_apis_on(&c, minor, &r.ignore).await,
                    Err(e) => Err(e),
                };
                match hits {
                    Ok(hits) => {
                        for hit in cap_hits(hits) {
                            preflight.findings.push(Finding::of_gate(
                                &gate.name,
                                CHECK_REMOVED_APIS,
                                hit.message,
                            ));
                        }
                    }
                    Err(e) => preflight.findings.push(Finding::of_gate(
                        &gate.name,
                        CHECK_REMOVED_APIS,
                        format!("could not be checked: {e}"),
                    )),
                }
                continue;
            }
            let o = self
                .gate_on(
                    gate,
                    cluster,
                    Some(&conn),
                    &Baselines::default(),
                    target.kubernetes.as_ref(),
                )
                .await;
            let message = match o.outcome {
                Outcome::Pass => continue,
                Outcome::Fail => o.observed,
                Outcome::Inconclusive => format!("could not be evaluated: {}", o.observed),
            };
            preflight
                .findings
                .push(Finding::of_gate(&gate.name, gate_kind(gate), message));
        }
        preflight
    }
}

/// The minor of a Kubernetes 1.x step target.
fn step_minor(target: &Version) -> Result<u64, String> {
    match target.major_minor() {
        (1, minor) => Ok(minor),
        _ => Err(format!(
            "Kubernetes {target}: the removed-API table covers 1.x only"
        )),
    }
}

/// A `kube.removedApis` result as an observation: no hit passes, hits fail (the value is their
/// number), an error is inconclusive.
fn judge_hits(hits: Result<Vec<Hit>, String>) -> Observation {
    match hits {
        Err(e) => Observation::inconclusive(e),
        Ok(hits) if hits.is_empty() => Observation::pass(Some(0.0), "no removed API in use"),
        Ok(hits) => {
            let shown: Vec<&str> = hits
                .iter()
                .take(NAMED_HITS)
                .map(|h| h.message.as_str())
                .collect();
            let mut observed = shown.join("; ");
            if hits.len() > NAMED_HITS {
                observed.push_str(&format!("; and {} more", hits.len() - NAMED_HITS));
            }
            #[allow(clippy::cast_precision_loss)]
            Observation::fail(Some(hits.len() as f64), observed)
        }
    }
}

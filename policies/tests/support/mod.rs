//! Shared by the probe tests: clusters, gates, a kubeconfig over fake API servers, and a tiny
//! scripted API server for what `integration::kube::FakeCluster` does not serve (custom
//! resources, removed API versions, `/metrics`).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Response, StatusCode, Uri};
use chrono::TimeDelta;
use policies::probe::{Probe, ProbeSettings};
use rings::model::{Cluster, Gate, GateCheck, KubeGate, Provider};
use rings::{ClusterId, GateName, Version};
use serde_json::{Value, json};

/// Every test's deadline.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(60);

pub fn cluster(id: &str, kubernetes: &str) -> Cluster {
    Cluster {
        id: ClusterId::new(id).unwrap(),
        provider: Provider::Aws,
        service: Some("eks".into()),
        region: Some("us-east-1".into()),
        environment: Some("prod".into()),
        owner_team: None,
        criticality: None,
        labels: Default::default(),
        upgrade_ring: None,
        kube_context: id.into(),
        kubernetes: Version::parse(kubernetes).unwrap(),
        addons: Default::default(),
        policies: Default::default(),
        controllers: Default::default(),
        extra: Default::default(),
        paused: None,
        upgrade_nodes: None,
        nodes: rings::model::NodeConvergence::Target,
        path: format!("clusters/{id}/cluster.yaml"),
        pos: rings::Pos::FILE,
    }
}

pub fn gate(name: &str, check: GateCheck) -> Gate {
    Gate {
        name: GateName::new(name).unwrap(),
        check,
        interval: TimeDelta::minutes(1),
        failure_limit: 1,
        inconclusive_limit: 3,
    }
}

/// A `kube:` gate from its YAML body, e.g. `{ nodesReady: { minRatio: 1.0 } }`.
pub fn kube_gate(name: &str, body: Value) -> Gate {
    let k: KubeGate = serde_json::from_value(body).unwrap();
    gate(name, GateCheck::Kube(k))
}

/// Default settings with a request budget large enough not to slow tests down (the budget
/// has its own tests).
pub fn fast() -> ProbeSettings {
    ProbeSettings {
        qps: 1000.0,
        burst: 1000,
        ..ProbeSettings::default()
    }
}

/// A kubeconfig with one context per `(name, url)` in `dir`, and a probe over it.
pub fn probe(dir: &Path, contexts: &[(&str, String)], settings: ProbeSettings) -> Probe {
    let path = kubeconfig(dir, contexts);
    Probe::new(ProbeSettings {
        kubeconfig: Some(path),
        ..settings
    })
}

pub fn kubeconfig(dir: &Path, contexts: &[(&str, String)]) -> PathBuf {
    let path = dir.join("kubeconfig");
    integration::kube::write_kubeconfig(&path, contexts).unwrap();
    path
}

/// A URL nothing listens on.
pub fn dead_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    format!("http://{addr}")
}

/// A scripted API server: fixed answers by path (the query is ignored), a count of requests
/// and of requests in flight at once (each answer waits `delay`).
#[derive(Clone, Default)]
pub struct MiniApi {
    routes: Arc<Mutex<HashMap<String, (String, String)>>>,
    pub requests: Arc<AtomicUsize>,
    in_flight: Arc<AtomicUsize>,
    pub max_in_flight: Arc<AtomicUsize>,
    delay: Arc<Mutex<Duration>>,
}

impl MiniApi {
    pub fn json(&self, path: &str, body: Value) -> &Self {
        self.routes.lock().unwrap().insert(
            path.to_owned(),
            ("application/json".into(), body.to_string()),
        );
        self
    }

    pub fn text(&self, path: &str, body: &str) -> &Self {
        self.routes.lock().unwrap().insert(
            path.to_owned(),
            ("text/plain; version=0.0.4".into(), body.to_owned()),
        );
        self
    }

    pub fn set_delay(&self, d: Duration) {
        *self.delay.lock().unwrap() = d;
    }

    /// Serve `/version` (`git_version`) and `/api/v1/nodes` (Ready, with the kubelets given).
    pub fn cluster_basics(&self, git_version: &str, kubelets: &[(&str, &str)]) -> &Self {
        self.json(
            "/version",
            json!({"major": "1", "minor": "33", "gitVersion": git_version, "gitCommit": "0",
                   "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z",
                   "goVersion": "go1.24", "compiler": "gc", "platform": "linux/amd64"}),
        );
        let items: Vec<Value> = kubelets
            .iter()
            .map(|(name, kubelet)| {
                json!({"metadata": {"name": name},
                       "status": {"conditions": [{"type": "Ready", "status": "True"}],
                                  "nodeInfo": {"kubeletVersion": kubelet, "architecture": "amd64",
                                    "bootID": "", "containerRuntimeVersion": "", "kernelVersion": "",
                                    "kubeProxyVersion": "", "machineID": "", "operatingSystem": "linux",
                                    "osImage": "", "systemUUID": ""}}})
            })
            .collect();
        self.json(
            "/api/v1/nodes",
            json!({"kind": "NodeList", "apiVersion": "v1", "metadata": {"resourceVersion": "1"}, "items": items}),
        )
    }

    /// Serve on loopback until the test ends; returns the URL.
    pub async fn serve(&self) -> String {
        let me = self.clone();
        let app = axum::Router::new().fallback(move |uri: Uri| {
            let me = me.clone();
            async move { me.answer(uri).await }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}")
    }

    async fn answer(&self, uri: Uri) -> Response<Body> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        let delay = *self.delay.lock().unwrap();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let found = self.routes.lock().unwrap().get(uri.path()).cloned();
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        match found {
            Some((content_type, body)) => Response::builder()
                .header("content-type", content_type)
                .body(Body::from(body))
                .unwrap(),
            None => Response::builder()
                .status(StatusCode::NOT_FOUND)
                .header("content-type", "application/json")
                .body(Body::from(
                    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                           "message": format!("the server could not find the requested resource ({})", uri.path()),
                           "reason": "NotFound", "code": 404})
                    .to_string(),
                ))
                .unwrap(),
        }
    }
}

//! The production files — `examples/github`, `examples/deploy` and the root `Dockerfile` — parse,
//! load, agree with each other and keep the properties they promise (non-root, read-only,
//! read-only RBAC, probes, metric names). Nothing here runs Docker, kubectl or Grafana; these
//! tests fail when an edit breaks a file those tools would read.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{
    Container, Namespace, PersistentVolumeClaim, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::serde::Serialize;
use k8s_openapi::serde::de::DeserializeOwned;
use rings::diag::Diagnostics;
use rings::load::{RegistryFile, RegistryFiles, load_settings, load_with};
use rings::model::{ForgeSettings, GitAuth, GitHubAuth, SecretSource, Settings};
use serde_json::Value;

/// The port of the daemon's HTTP API (DESIGN §9).
const API_PORT: i32 = 9464;

/// The metric names the daemon exposes; the dashboard may use no other.
const METRICS: &[&str] = &[
    "ringmaster_ring_run_phase",
    "ringmaster_gate_result",
    "ringmaster_gate_value",
    "ringmaster_forge_requests_total",
    "ringmaster_forge_rate_limit_remaining",
    "ringmaster_reconcile_duration_seconds",
    "ringmaster_rollout_forecast_pass_timestamp_seconds",
    "ringmaster_rollouts",
    "ringmaster_frozen",
];

/// Histograms among [`METRICS`]: they are queried through their series suffixes.
const HISTOGRAMS: &[&str] = &["ringmaster_reconcile_duration_seconds"];

fn examples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn deploy_dir() -> PathBuf {
    examples_dir().join("deploy")
}

fn repo_root() -> PathBuf {
    examples_dir().parent().unwrap().to_path_buf()
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every file under `dir`, recursively, sorted.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

fn is_yaml(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    )
}

/// `path` relative to `base`, with `/`.
fn rel(base: &Path, path: &Path) -> String {
    let r = path.strip_prefix(base).unwrap();
    r.iter()
        .map(|c| c.to_str().unwrap())
        .collect::<Vec<_>>()
        .join("/")
}

/// One YAML document and the file it came from.
#[derive(Debug)]
struct Doc {
    file: PathBuf,
    value: Value,
}

impl Doc {
    fn api_version(&self) -> &str {
        self.value["apiVersion"].as_str().unwrap_or_default()
    }

    fn kind(&self) -> &str {
        self.value["kind"].as_str().unwrap_or_default()
    }

    /// A Kubernetes object (not a kustomization, not one of ringmaster's own files).
    fn is_manifest(&self) -> bool {
        !self.kind().is_empty()
            && !self.api_version().starts_with("ringmaster/")
            && !self.api_version().starts_with("kustomize.config.k8s.io/")
    }
}

/// Every document of one YAML file.
fn docs_of(path: &Path) -> Vec<Doc> {
    let values: Vec<Value> = serde_saphyr::from_multiple(&read(path))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    values
        .into_iter()
        .map(|value| Doc {
            file: path.to_path_buf(),
            value,
        })
        .collect()
}

/// Every document of every YAML file under `examples/deploy`.
fn deploy_docs() -> Vec<Doc> {
    files_under(&deploy_dir())
        .iter()
        .filter(|p| is_yaml(p))
        .flat_map(|p| docs_of(p))
        .collect()
}

/// The one manifest of `kind` named `name`, as its k8s-openapi type.
fn manifest<T: DeserializeOwned>(kind: &str, name: &str) -> T {
    let docs = deploy_docs();
    let found: Vec<&Doc> = docs
        .iter()
        .filter(|d| d.is_manifest() && d.kind() == kind && d.value["metadata"]["name"] == name)
        .collect();
    assert_eq!(found.len(), 1, "expected one {kind} named {name}");
    serde_json::from_value(found[0].value.clone()).unwrap()
}

/// Deserialize into the k8s-openapi type and serialize back: any field the type does not know
/// (a misspelling, a field at the wrong level) is dropped on the way and shows as a difference.
fn round_trip<T: DeserializeOwned + Serialize>(doc: &Doc) {
    let typed: T = serde_json::from_value(doc.value.clone()).unwrap_or_else(|e| {
        panic!(
            "{}: {} {}: {e}",
            doc.file.display(),
            doc.kind(),
            doc.value["metadata"]["name"]
        )
    });
    let back = serde_json::to_value(&typed).unwrap();
    if let Some(path) = first_difference(&doc.value, &back, String::new()) {
        panic!(
            "{}: {} {}: `{path}` is not a field of its type (misspelled or misplaced?)",
            doc.file.display(),
            doc.kind(),
            doc.value["metadata"]["name"]
        );
    }
}

/// The JSON path of the first place where `written` and `typed` differ.
fn first_difference(written: &Value, typed: &Value, path: String) -> Option<String> {
    match (written, typed) {
        (Value::Object(w), Value::Object(t)) => w.iter().find_map(|(k, wv)| match t.get(k) {
            None => Some(format!("{path}.{k}")),
            Some(tv) => first_difference(wv, tv, format!("{path}.{k}")),
        }),
        (Value::Array(w), Value::Array(t)) if w.len() == t.len() => w
            .iter()
            .zip(t)
            .enumerate()
            .find_map(|(i, (wv, tv))| first_difference(wv, tv, format!("{path}[{i}]"))),
        (w, t) if w == t => None,
        _ => Some(path),
    }
}

#[test]
fn every_manifest_is_a_valid_kubernetes_object_with_no_unknown_field() {
    let docs = deploy_docs();
    let mut kinds = BTreeSet::new();
    for doc in docs.iter().filter(|d| d.is_manifest()) {
        match doc.kind() {
            "Namespace" => round_trip::<Namespace>(doc),
            "ServiceAccount" => round_trip::<ServiceAccount>(doc),
            "Secret" => round_trip::<Secret>(doc),
            "PersistentVolumeClaim" => round_trip::<PersistentVolumeClaim>(doc),
            "Deployment" => round_trip::<Deployment>(doc),
            "Service" => round_trip::<Service>(doc),
            "NetworkPolicy" => round_trip::<NetworkPolicy>(doc),
            "ClusterRole" => round_trip::<ClusterRole>(doc),
            "ClusterRoleBinding" => round_trip::<ClusterRoleBinding>(doc),
            other => panic!(
                "{}: kind {other} is not checked by this test; add it",
                doc.file.display()
            ),
        }
        kinds.insert(doc.kind().to_owned());
    }
    for expected in [
        "Namespace",
        "ServiceAccount",
        "PersistentVolumeClaim",
        "Deployment",
        "Service",
        "NetworkPolicy",
        "ClusterRole",
        "ClusterRoleBinding",
    ] {
        assert!(kinds.contains(expected), "no {expected} in examples/deploy");
    }
}

#[test]
fn no_secret_value_is_committed() {
    for doc in deploy_docs().iter().filter(|d| d.kind() == "Secret") {
        let secret: Secret = serde_json::from_value(doc.value.clone()).unwrap();
        assert_eq!(
            secret.type_.as_deref(),
            Some("kubernetes.io/service-account-token"),
            "{}: only token Secrets filled in by Kubernetes belong in the manifests",
            doc.file.display()
        );
        assert!(secret.data.is_none() && secret.string_data.is_none());
    }
    // The example Secret is documentation only: every line a comment.
    let example = read(&deploy_dir().join("secret.example.yaml"));
    for line in example.lines() {
        assert!(
            line.is_empty() || line.starts_with('#'),
            "secret.example.yaml must stay commented out: {line}"
        );
    }
}

fn main_container(deployment: &Deployment) -> Container {
    let pod = deployment
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .clone()
        .unwrap();
    let found: Vec<Container> = pod
        .containers
        .into_iter()
        .filter(|c| c.name == "ringmaster")
        .collect();
    assert_eq!(found.len(), 1);
    found.into_iter().next().unwrap()
}

fn http_get(probe: Option<&k8s_openapi::api::core::v1::Probe>) -> (String, IntOrString) {
    let get = probe
        .and_then(|p| p.http_get.clone())
        .expect("an httpGet probe");
    (get.path.unwrap_or_default(), get.port)
}

#[test]
fn the_daemon_runs_non_root_read_only_with_probes() {
    let d: Deployment = manifest("Deployment", "ringmaster");
    let spec = d.spec.as_ref().unwrap();
    assert_eq!(
        spec.replicas,
        Some(1),
        "one writer: the store is not shared"
    );
    assert_eq!(
        spec.strategy.as_ref().and_then(|s| s.type_.as_deref()),
        Some("Recreate"),
        "the old pod must release the store before the new one opens it"
    );
    let pod = spec.template.spec.as_ref().unwrap();
    assert_eq!(pod.automount_service_account_token, Some(false));
    let psc = pod.security_context.as_ref().unwrap();
    assert_eq!(psc.run_as_non_root, Some(true));
    assert!(psc.run_as_user.is_some_and(|u| u > 0));
    assert_eq!(
        psc.seccomp_profile.as_ref().map(|s| s.type_.as_str()),
        Some("RuntimeDefault")
    );

    let all: Vec<&Container> = pod
        .containers
        .iter()
        .chain(pod.init_containers.iter().flatten())
        .collect();
    for c in &all {
        let sc = c
            .security_context
            .as_ref()
            .unwrap_or_else(|| panic!("container {} has no securityContext", c.name));
        assert_eq!(sc.run_as_non_root, Some(true), "{}", c.name);
        assert_eq!(sc.read_only_root_filesystem, Some(true), "{}", c.name);
        assert_eq!(sc.allow_privilege_escalation, Some(false), "{}", c.name);
        assert_eq!(sc.privileged, None, "{}", c.name);
        let caps = sc.capabilities.as_ref().unwrap();
        assert_eq!(
            caps.drop.as_deref(),
            Some(&["ALL".to_owned()][..]),
            "{}",
            c.name
        );
        assert!(caps.add.as_ref().is_none_or(Vec::is_empty), "{}", c.name);
        let limits = c.resources.as_ref().and_then(|r| r.limits.as_ref());
        assert!(
            limits.is_some_and(|l| l.contains_key("memory")),
            "{} has no memory limit",
            c.name
        );
    }

    let main = main_container(&d);
    assert_eq!(
        main.args.as_deref(),
        Some(
            &[
                "run".to_owned(),
                "--config".to_owned(),
                "/etc/ringmaster/ringmaster.yaml".to_owned()
            ][..]
        )
    );
    let ports: Vec<i32> = main
        .ports
        .iter()
        .flatten()
        .map(|p| p.container_port)
        .collect();
    assert_eq!(ports, [API_PORT]);
    assert_eq!(
        http_get(main.liveness_probe.as_ref()),
        ("/healthz".to_owned(), IntOrString::Int(API_PORT))
    );
    assert_eq!(
        http_get(main.readiness_probe.as_ref()),
        ("/readyz".to_owned(), IntOrString::Int(API_PORT))
    );
    let resources = main.resources.as_ref().unwrap();
    let requests = resources.requests.as_ref().unwrap();
    let limits = resources.limits.as_ref().unwrap();
    assert_eq!(requests["memory"].0, "32Mi");
    assert_eq!(requests["cpu"].0, "50m");
    assert_eq!(limits["memory"].0, "128Mi");

    // Every mount names a volume, every volume is mounted, secrets are not world-readable.
    let volumes: BTreeMap<&str, &k8s_openapi::api::core::v1::Volume> = pod
        .volumes
        .iter()
        .flatten()
        .map(|v| (v.name.as_str(), v))
        .collect();
    let mut mounted = BTreeSet::new();
    for c in &all {
        for m in c.volume_mounts.iter().flatten() {
            assert!(
                volumes.contains_key(m.name.as_str()),
                "{} mounts unknown volume {}",
                c.name,
                m.name
            );
            mounted.insert(m.name.as_str());
        }
    }
    assert_eq!(mounted, volumes.keys().copied().collect::<BTreeSet<_>>());
    for v in volumes.values() {
        if let Some(s) = &v.secret {
            assert_eq!(s.default_mode, Some(0o440), "secret volume {}", v.name);
        }
    }
    // The only writable mounts of the daemon: the store and /tmp.
    let writable: BTreeSet<&str> = main
        .volume_mounts
        .iter()
        .flatten()
        .filter(|m| m.read_only != Some(true))
        .map(|m| m.mount_path.as_str())
        .collect();
    assert_eq!(writable, BTreeSet::from(["/var/lib/ringmaster", "/tmp"]));
}

#[test]
fn the_pieces_of_the_deployment_refer_to_each_other() {
    let d: Deployment = manifest("Deployment", "ringmaster");
    let spec = d.spec.as_ref().unwrap();
    let pod_labels = spec
        .template
        .metadata
        .as_ref()
        .unwrap()
        .labels
        .clone()
        .unwrap();
    let matches = |selector: &BTreeMap<String, String>| {
        !selector.is_empty() && selector.iter().all(|(k, v)| pod_labels.get(k) == Some(v))
    };
    assert!(matches(spec.selector.match_labels.as_ref().unwrap()));

    let sa: ServiceAccount = manifest("ServiceAccount", "ringmaster");
    let pod = spec.template.spec.as_ref().unwrap();
    assert_eq!(
        pod.service_account_name.as_deref(),
        sa.metadata.name.as_deref()
    );

    let pvc: PersistentVolumeClaim = manifest("PersistentVolumeClaim", "ringmaster-store");
    let claims: Vec<&str> = pod
        .volumes
        .iter()
        .flatten()
        .filter_map(|v| v.persistent_volume_claim.as_ref())
        .map(|p| p.claim_name.as_str())
        .collect();
    assert_eq!(claims, [pvc.metadata.name.as_deref().unwrap()]);
    assert_eq!(
        pvc.spec.unwrap().access_modes.as_deref(),
        Some(&["ReadWriteOnce".to_owned()][..])
    );

    let svc: Service = manifest("Service", "ringmaster");
    let svc_spec = svc.spec.unwrap();
    assert_eq!(svc_spec.type_.as_deref(), Some("ClusterIP"));
    assert!(matches(svc_spec.selector.as_ref().unwrap()));
    let main = main_container(&d);
    let svc_ports = svc_spec.ports.unwrap();
    assert_eq!(svc_ports.len(), 1);
    assert_eq!(svc_ports[0].port, API_PORT);
    let target = match svc_ports[0].target_port.clone().unwrap() {
        IntOrString::Int(p) => p,
        IntOrString::String(name) => {
            main.ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .unwrap_or_else(|| panic!("targetPort {name} names no container port"))
                .container_port
        }
    };
    assert_eq!(target, API_PORT);

    let np: NetworkPolicy = manifest("NetworkPolicy", "ringmaster");
    assert!(matches(
        np.spec
            .unwrap()
            .pod_selector
            .unwrap()
            .match_labels
            .as_ref()
            .unwrap()
    ));

    // Every namespaced object lives in the namespace the kustomization sets.
    for doc in deploy_docs().iter().filter(|d| d.is_manifest()) {
        if !matches!(
            doc.kind(),
            "Namespace" | "ClusterRole" | "ClusterRoleBinding"
        ) {
            assert_eq!(
                doc.value["metadata"]["namespace"],
                "ringmaster",
                "{}: {}",
                doc.file.display(),
                doc.kind()
            );
        }
    }
}

fn port_numbers(
    ports: Option<&Vec<k8s_openapi::api::networking::v1::NetworkPolicyPort>>,
) -> Vec<i32> {
    ports
        .into_iter()
        .flatten()
        .map(|p| match p.port.clone() {
            Some(IntOrString::Int(n)) => n,
            other => panic!("NetworkPolicy ports must be numbers, got {other:?}"),
        })
        .collect()
}

fn namespaces_of(
    peers: Option<&Vec<k8s_openapi::api::networking::v1::NetworkPolicyPeer>>,
) -> Vec<String> {
    peers
        .into_iter()
        .flatten()
        .filter_map(|p| p.namespace_selector.as_ref())
        .filter_map(|s| s.match_labels.as_ref())
        .filter_map(|l| l.get("kubernetes.io/metadata.name").cloned())
        .collect()
}

#[test]
fn the_network_policy_admits_only_the_api_port_and_the_needed_egress() {
    let np: NetworkPolicy = manifest("NetworkPolicy", "ringmaster");
    let spec = np.spec.unwrap();
    let types: BTreeSet<String> = spec.policy_types.unwrap().into_iter().collect();
    assert_eq!(
        types,
        BTreeSet::from(["Ingress".to_owned(), "Egress".to_owned()])
    );

    let ingress = spec.ingress.unwrap();
    assert!(!ingress.is_empty());
    let mut sources = BTreeSet::new();
    for rule in &ingress {
        assert_eq!(port_numbers(rule.ports.as_ref()), [API_PORT]);
        let from = rule.from.as_ref().expect("ingress from named peers only");
        assert!(from.iter().all(|p| p.ip_block.is_none()));
        sources.extend(namespaces_of(Some(from)));
    }
    assert_eq!(
        sources,
        BTreeSet::from(["monitoring".to_owned(), "ingress-nginx".to_owned()])
    );

    let mut egress_ports = BTreeSet::new();
    for rule in spec.egress.unwrap() {
        let ports = port_numbers(rule.ports.as_ref());
        assert!(
            !ports.is_empty(),
            "an egress rule without ports allows everything"
        );
        if ports.contains(&9090) {
            assert_eq!(namespaces_of(rule.to.as_ref()), ["monitoring"]);
        }
        egress_ports.extend(ports);
    }
    assert_eq!(egress_ports, BTreeSet::from([22, 53, 443, 9090]));
}

#[test]
fn the_workload_cluster_role_only_reads() {
    let role: ClusterRole = manifest("ClusterRole", "ringmaster-reader");
    let read = BTreeSet::from(["get", "list", "watch"]);
    let mut granted: BTreeSet<(String, String)> = BTreeSet::new();
    let mut urls = BTreeSet::new();
    for rule in role.rules.unwrap() {
        for verb in &rule.verbs {
            assert!(
                read.contains(verb.as_str()),
                "write verb {verb} in {rule:?}"
            );
        }
        for r in rule.resources.iter().flatten() {
            assert!(r != "*" && r != "secrets", "resource {r} in {rule:?}");
            for g in rule.api_groups.iter().flatten() {
                assert_ne!(g, "*");
                granted.insert((g.clone(), r.clone()));
            }
        }
        urls.extend(rule.non_resource_urls.into_iter().flatten());
    }
    for (group, resource) in [
        ("", "nodes"),
        ("", "pods"),
        ("", "namespaces"),
        ("apps", "deployments"),
        ("apps", "daemonsets"),
        ("apps", "statefulsets"),
        ("argoproj.io", "applications"),
        ("kustomize.toolkit.fluxcd.io", "kustomizations"),
        ("policies.ringmaster.dev", "policybundles"),
    ] {
        assert!(
            granted.contains(&(group.to_owned(), resource.to_owned())),
            "the gates need {group}/{resource}"
        );
    }
    for url in ["/metrics", "/version", "/api", "/apis", "/apis/*"] {
        assert!(urls.contains(url), "the gates need GET {url}");
    }

    let binding: ClusterRoleBinding = manifest("ClusterRoleBinding", "ringmaster-reader");
    assert_eq!(binding.role_ref.kind, "ClusterRole");
    assert_eq!(Some(binding.role_ref.name), role.metadata.name);
    let subjects = binding.subjects.unwrap();
    assert_eq!(subjects.len(), 1);
    let _: ServiceAccount = manifest("ServiceAccount", &subjects[0].name);
}

/// `resources:` and every generator's `files:` of a kustomization.
fn kustomization(dir: &Path) -> (BTreeSet<String>, BTreeMap<String, Vec<String>>) {
    let docs = docs_of(&dir.join("kustomization.yaml"));
    assert_eq!(docs.len(), 1);
    let k = &docs[0].value;
    assert_eq!(k["kind"], "Kustomization");
    let resources = k["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_owned())
        .collect();
    let mut generators = BTreeMap::new();
    for g in k["configMapGenerator"].as_array().into_iter().flatten() {
        let files = g["files"]
            .as_array()
            .unwrap_or_else(|| panic!("configMapGenerator {} has no files", g["name"]))
            .iter()
            .map(|f| f.as_str().unwrap().to_owned())
            .collect();
        generators.insert(g["name"].as_str().unwrap().to_owned(), files);
    }
    (resources, generators)
}

#[test]
fn each_kustomization_lists_every_manifest_and_config_file() {
    for dir in [deploy_dir(), deploy_dir().join("workload-cluster")] {
        let (resources, generators) = kustomization(&dir);
        let manifests: BTreeSet<String> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file() && is_yaml(p))
            .filter(|p| docs_of(p).iter().any(Doc::is_manifest))
            .map(|p| rel(&dir, &p))
            .collect();
        assert_eq!(
            resources,
            manifests,
            "{}/kustomization.yaml resources",
            dir.display()
        );
        let mut generated = BTreeSet::new();
        for files in generators.values() {
            for f in files {
                assert!(dir.join(f).is_file(), "{f} does not exist");
                assert!(generated.insert(f.clone()), "{f} generated twice");
            }
        }
        // Nothing in config/ is forgotten (a release file not in the generator never runs).
        let config = dir.join("config");
        if config.is_dir() {
            let on_disk: BTreeSet<String> =
                files_under(&config).iter().map(|p| rel(&dir, p)).collect();
            assert_eq!(generated, on_disk, "config files vs configMapGenerator");
        }
    }

    // The Deployment mounts exactly the generated ConfigMaps.
    let (_, generators) = kustomization(&deploy_dir());
    let d: Deployment = manifest("Deployment", "ringmaster");
    let pod = d.spec.unwrap().template.spec.unwrap();
    let config_maps: BTreeSet<String> = pod
        .volumes
        .iter()
        .flatten()
        .filter_map(|v| v.config_map.as_ref())
        .map(|c| c.name.clone())
        .collect();
    assert_eq!(config_maps, generators.keys().cloned().collect());
}

#[test]
fn the_secrets_the_deployment_needs_are_documented() {
    let d: Deployment = manifest("Deployment", "ringmaster");
    let pod = d.spec.unwrap().template.spec.unwrap();
    let example = read(&deploy_dir().join("secret.example.yaml"));
    let mut needed: Vec<(String, Option<String>)> = pod
        .volumes
        .iter()
        .flatten()
        .filter_map(|v| v.secret.as_ref())
        .map(|s| (s.secret_name.clone().unwrap(), None))
        .collect();
    for c in pod
        .containers
        .iter()
        .chain(pod.init_containers.iter().flatten())
    {
        for e in c.env.iter().flatten() {
            if let Some(r) = e
                .value_from
                .as_ref()
                .and_then(|v| v.secret_key_ref.as_ref())
            {
                needed.push((r.name.clone(), Some(r.key.clone())));
            }
        }
    }
    assert!(!needed.is_empty());
    for (name, key) in needed {
        assert!(
            example.contains(&format!("secret generic {name} ")),
            "secret.example.yaml does not say how to create {name}"
        );
        if let Some(key) = key {
            assert!(example.contains(&format!("{key}=")), "key {key} of {name}");
        }
    }
}

/// Every finding, one per line, as `validate` prints them.
fn render(d: &Diagnostics) -> String {
    d.sorted()
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

fn settings(path: &Path) -> Settings {
    load_settings(path).unwrap_or_else(|d| panic!("{}:\n{}", path.display(), render(&d)))
}

#[test]
fn the_github_examples_load() {
    let app = settings(&examples_dir().join("github/ringmaster.yaml"));
    let ForgeSettings::GitHub(gh) = &app.forge else {
        panic!("forge.github expected");
    };
    assert_eq!(
        (gh.owner.as_str(), gh.repo.as_str()),
        ("acme", "platform-gitops")
    );
    assert_eq!(gh.api_url, "https://api.github.com");
    let GitHubAuth::App {
        app_id,
        private_key_file,
        installation_id,
    } = &gh.auth
    else {
        panic!("GitHub App credentials expected");
    };
    assert!(*app_id > 0 && installation_id.is_some());
    assert!(private_key_file.is_absolute(), "the key is a mounted file");
    // The webhook secret is the `webhook-secret` key of the same mounted Secret.
    assert!(
        matches!(&gh.webhook_secret, Some(SecretSource::File(p))
            if p.parent() == private_key_file.parent() && p.ends_with("webhook-secret")),
        "{:?}",
        gh.webhook_secret
    );
    assert!(matches!(&app.gitops.auth, GitAuth::SshKey(p) if p.is_absolute()));

    let token = settings(&examples_dir().join("github/ringmaster-token.yaml"));
    let ForgeSettings::GitHub(gh) = &token.forge else {
        panic!("forge.github expected");
    };
    let github_token = SecretSource::Env("GITHUB_TOKEN".to_owned());
    assert!(matches!(&gh.auth, GitHubAuth::Token(s) if *s == github_token));
    assert_eq!(token.gitops.auth, GitAuth::Token(github_token));
    assert!(token.gitops.url.starts_with("https://"));
}

#[test]
fn the_deployed_settings_are_the_github_app_example() {
    assert_eq!(
        read(&deploy_dir().join("config/ringmaster.yaml")),
        read(&examples_dir().join("github/ringmaster.yaml")),
        "examples/deploy/config/ringmaster.yaml must stay a copy of examples/github/ringmaster.yaml"
    );
}

/// Registry files of `examples/fleet/gitops`, as the daemon would read them from Git.
fn fleet_registry() -> RegistryFiles {
    let root = examples_dir().join("fleet/gitops");
    let files = files_under(&root)
        .iter()
        .filter(|p| p.file_name().is_some_and(|n| n == "cluster.yaml"))
        .map(|p| RegistryFile {
            path: rel(&root, p),
            text: read(p),
        })
        .collect();
    RegistryFiles {
        commit: "0".repeat(40),
        files,
        symlinks: Vec::new(),
    }
}

#[test]
fn the_deployed_configuration_loads_against_the_example_fleet() {
    let path = deploy_dir().join("config/ringmaster.yaml");
    let loaded = load_with(&path, &mut |_| Ok(fleet_registry()))
        .unwrap_or_else(|d| panic!("{}:\n{}", path.display(), render(&d)));
    assert!(
        loaded.warnings.is_empty(),
        "warnings:\n{}",
        render(&loaded.warnings)
    );
    assert_eq!(loaded.config.ring_set.rings.len(), 4);
    assert!(!loaded.config.releases.is_empty());
}

/// The mount of `container` that holds `path` (the deepest one, as the kernel resolves it).
fn mount_of<'a>(
    container: &'a Container,
    path: &Path,
) -> &'a k8s_openapi::api::core::v1::VolumeMount {
    container
        .volume_mounts
        .iter()
        .flatten()
        .filter(|m| path.starts_with(&m.mount_path))
        .max_by_key(|m| m.mount_path.len())
        .unwrap_or_else(|| panic!("{} is on no volume of {}", path.display(), container.name))
}

#[test]
fn the_deployed_settings_match_the_container() {
    let s = settings(&deploy_dir().join("config/ringmaster.yaml"));
    let d: Deployment = manifest("Deployment", "ringmaster");
    let main = main_container(&d);
    let pod = d.spec.unwrap().template.spec.unwrap();
    let volume = |name: &str| {
        pod.volumes
            .iter()
            .flatten()
            .find(|v| v.name == name)
            .unwrap()
            .clone()
    };
    let secret_file = |path: &Path, secret: &str, key: &str| {
        let m = mount_of(&main, path);
        assert_eq!(m.read_only, Some(true));
        let v = volume(&m.name);
        assert_eq!(
            v.secret.and_then(|s| s.secret_name).as_deref(),
            Some(secret),
            "{}",
            path.display()
        );
        assert_eq!(path.strip_prefix(&m.mount_path).unwrap(), Path::new(key));
    };

    // Writes go to the persistent volume.
    for p in [&s.store_path, &s.data_dir] {
        let m = mount_of(&main, p);
        assert!(
            volume(&m.name).persistent_volume_claim.is_some(),
            "{}",
            p.display()
        );
    }
    // Secrets come from mounted files or the environment, never from the config.
    let ForgeSettings::GitHub(gh) = &s.forge else {
        panic!("forge.github expected");
    };
    let GitHubAuth::App {
        private_key_file, ..
    } = &gh.auth
    else {
        panic!("GitHub App expected");
    };
    secret_file(private_key_file, "ringmaster-github", "app-private-key.pem");
    let GitAuth::SshKey(deploy_key) = &s.gitops.auth else {
        panic!("an SSH deploy key expected");
    };
    secret_file(deploy_key, "ringmaster-github", "gitops-deploy-key");
    secret_file(
        s.kubeconfig.as_ref().unwrap(),
        "ringmaster-kubeconfig",
        "kubeconfig",
    );
    let Some(SecretSource::Env(var)) = &s.api_token else {
        panic!("api.tokenEnv expected");
    };
    let env = main
        .env
        .iter()
        .flatten()
        .find(|e| &e.name == var)
        .unwrap_or_else(|| panic!("{var} is not set in the container"));
    let key_ref = env
        .value_from
        .as_ref()
        .unwrap()
        .secret_key_ref
        .as_ref()
        .unwrap();
    assert_eq!(
        (key_ref.name.as_str(), key_ref.key.as_str()),
        ("ringmaster-github", "api-token")
    );

    // The API listens on every interface, on the port the probes and the Service use.
    let listen: SocketAddr = s.api_listen.parse().unwrap();
    assert!(
        listen.ip().is_unspecified(),
        "a pod's probes cannot reach loopback"
    );
    assert_eq!(i32::from(listen.port()), API_PORT);

    // ringmaster.yaml, rings.yaml and releases/ sit together in /etc/ringmaster, the directory
    // the init container fills from the ConfigMaps and `--config` points into.
    assert_eq!(s.rings_path.parent(), s.path.parent());
    assert_eq!(s.releases_glob, "releases/*.yaml");
    let config_dir = Path::new("/etc/ringmaster");
    assert_eq!(
        mount_of(&main, &config_dir.join("ringmaster.yaml")).name,
        "config"
    );
    let init = pod
        .init_containers
        .iter()
        .flatten()
        .find(|c| c.name == "config")
        .unwrap();
    assert_eq!(mount_of(init, config_dir).mount_path, "/etc/ringmaster");
    let script = init.args.as_ref().unwrap().join("\n");
    assert!(script.contains("/etc/ringmaster/releases/"), "{script}");

    // libgit2 checks github.com's host key against $HOME/.ssh/known_hosts.
    let home = dockerfile_final_stage()
        .iter()
        .find_map(|l| l.strip_prefix("ENV HOME="))
        .map(str::to_owned)
        .expect("the Dockerfile sets HOME");
    let known_hosts = Path::new(&home).join(".ssh/known_hosts");
    let m = mount_of(&main, &known_hosts);
    assert_eq!(
        volume(&m.name).config_map.unwrap().name,
        "ringmaster-known-hosts"
    );
    let host = s
        .gitops
        .url
        .split_once('@')
        .and_then(|(_, rest)| rest.split_once(':'))
        .map(|(host, _)| host)
        .unwrap();
    let hosts = read(&deploy_dir().join("config/known_hosts"));
    assert!(
        hosts
            .lines()
            .any(|l| l.split_whitespace().next() == Some(host)),
        "config/known_hosts has no key for {host}"
    );
}

/// The Dockerfile's instructions (continuation lines joined), from its last `FROM` on.
fn dockerfile_final_stage() -> Vec<String> {
    let stages = dockerfile_stages();
    stages.last().unwrap().clone()
}

/// Instructions of each stage; comments dropped, `\` continuations joined.
fn dockerfile_stages() -> Vec<Vec<String>> {
    let text = read(&repo_root().join("Dockerfile"));
    let mut instructions = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('#') || (t.is_empty() && current.is_empty()) {
            continue;
        }
        match t.strip_suffix('\\') {
            Some(part) => {
                current.push_str(part.trim());
                current.push(' ');
            }
            None => {
                current.push_str(t);
                instructions.push(std::mem::take(&mut current));
            }
        }
    }
    let mut stages: Vec<Vec<String>> = Vec::new();
    for i in instructions {
        if i.starts_with("FROM ") {
            stages.push(Vec::new());
        }
        stages
            .last_mut()
            .expect("the Dockerfile starts with FROM")
            .push(i);
    }
    stages
}

#[test]
fn the_image_is_built_locked_and_runs_as_a_numeric_non_root_user() {
    let stages = dockerfile_stages();
    assert!(stages.len() >= 2, "a multi-stage build");
    let build = stages[..stages.len() - 1].concat().join("\n");
    let cargo = build
        .lines()
        .find(|l| l.starts_with("RUN ") && l.contains("cargo build"))
        .expect("a cargo build step");
    for flag in ["--release", "--locked", "-p orchestrator"] {
        assert!(cargo.contains(flag), "cargo build without {flag}");
    }

    let last = dockerfile_final_stage();
    let user = last
        .iter()
        .filter_map(|l| l.strip_prefix("USER "))
        .next_back()
        .expect("a USER in the final stage");
    let (uid, gid) = user.trim().split_once(':').unwrap_or((user.trim(), "0"));
    let uid: u32 = uid
        .parse()
        .expect("a numeric uid (runAsNonRoot cannot check names)");
    let _: u32 = gid.parse().expect("a numeric gid");
    assert!(uid > 0, "uid 0 is root");
    let d: Deployment = manifest("Deployment", "ringmaster");
    let psc = d
        .spec
        .unwrap()
        .template
        .spec
        .unwrap()
        .security_context
        .unwrap();
    assert_eq!(
        psc.run_as_user,
        Some(i64::from(uid)),
        "the Deployment runs the image's user"
    );

    for expected in [
        "WORKDIR /var/lib/ringmaster",
        "EXPOSE 9464",
        r#"ENTRYPOINT ["ringmaster"]"#,
        r#"CMD ["run", "--config", "/etc/ringmaster/ringmaster.yaml"]"#,
    ] {
        assert!(
            last.iter().any(|l| l == expected),
            "final stage lacks `{expected}`"
        );
    }
    assert!(
        !last
            .iter()
            .any(|l| l.starts_with("RUN ") && l.contains("cargo")),
        "no toolchain in the runtime image"
    );

    let ignore: BTreeSet<String> = read(&repo_root().join(".dockerignore"))
        .lines()
        .map(|l| l.trim().trim_end_matches('/').to_owned())
        .collect();
    assert!(ignore.contains("target") && ignore.contains(".git"));
}

/// Every `ringmaster_…` name in a PromQL expression.
fn metric_names(expr: &str) -> Vec<String> {
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(i) = rest.find("ringmaster_") {
        let before = rest[..i].chars().next_back();
        let tail = &rest[i..];
        let end = tail.find(|c: char| !is_word(c)).unwrap_or(tail.len());
        if !before.is_some_and(is_word) {
            out.push(tail[..end].to_owned());
        }
        rest = &tail[end..];
    }
    out
}

/// Every string under a key named `key`, anywhere in `v`.
fn strings_at(v: &Value, key: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                match child {
                    Value::String(s) if k == key => out.push(s.clone()),
                    _ => strings_at(child, key, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| strings_at(i, key, out)),
        _ => {}
    }
}

#[test]
fn the_dashboard_uses_only_the_daemons_metrics() {
    let path = deploy_dir().join("grafana-dashboard.json");
    let dash: Value = serde_json::from_str(&read(&path)).unwrap();
    assert_eq!(dash["schemaVersion"], 39);

    let vars = dash["templating"]["list"].as_array().unwrap();
    let var = |name: &str| {
        vars.iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("no ${name} variable"))
    };
    assert_eq!(var("datasource")["type"], "datasource");
    assert_eq!(var("datasource")["query"], "prometheus");
    for name in ["rollout", "ring"] {
        let q = var(name)["definition"].as_str().unwrap();
        assert!(
            q.starts_with("label_values(") && q.ends_with(&format!(", {name})")),
            "{q}"
        );
    }

    let mut ids = BTreeSet::new();
    for p in dash["panels"].as_array().unwrap() {
        assert!(ids.insert(p["id"].as_i64().unwrap()), "duplicate panel id");
        if p["type"] == "row" {
            continue;
        }
        assert_eq!(p["datasource"]["uid"], "${datasource}", "{}", p["title"]);
        for t in p["targets"].as_array().unwrap() {
            assert_eq!(t["datasource"]["uid"], "${datasource}", "{}", p["title"]);
        }
    }

    let mut exprs = Vec::new();
    strings_at(&dash, "expr", &mut exprs);
    strings_at(&dash, "definition", &mut exprs);
    assert!(exprs.len() >= 10);
    let mut used = BTreeSet::new();
    for expr in &exprs {
        let names = metric_names(expr);
        assert!(!names.is_empty(), "`{expr}` reads no ringmaster metric");
        for name in names {
            let base = HISTOGRAMS
                .iter()
                .find(|h| {
                    ["_bucket", "_sum", "_count"]
                        .iter()
                        .any(|s| name == format!("{h}{s}"))
                })
                .map_or(name.as_str(), |h| h);
            assert!(
                METRICS.contains(&base),
                "`{name}` in `{expr}` is not a metric the daemon exposes"
            );
            used.insert(base.to_owned());
        }
    }
    let all: BTreeSet<String> = METRICS.iter().map(|m| (*m).to_owned()).collect();
    assert_eq!(used, all, "every metric has a panel");
}

#[test]
fn metric_names_are_found_whole() {
    assert_eq!(
        metric_names("sum(rate(ringmaster_a_total[5m])) / x_ringmaster_b + ringmaster_c{x=\"y\"}"),
        ["ringmaster_a_total", "ringmaster_c"]
    );
}

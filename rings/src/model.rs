//! Phase two: the validated model the rest of ringmaster works with.
//!
//! Everything here has been checked: names are valid identifiers, versions parse, cron
//! expressions, durations and timezones are valid, every cluster belongs to exactly one ring.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::ids::{ClusterId, GateName, ReleaseName, RingName};
use crate::schedule::CronSchedule;
use crate::version::{Version, VersionRange};

mod extra;
mod namemap;
pub use extra::{ExtraFields, FieldValue, Interner};
pub use namemap::NameMap;

/// Everything ringmaster reads before it acts: settings, rings, releases and the registry.
#[derive(Debug, Clone)]
pub struct Config {
    /// `ringmaster.yaml`.
    pub settings: Settings,
    /// `rings.yaml`.
    pub ring_set: RingSet,
    /// Releases in file order (files sorted by path, documents in file order).
    pub releases: Vec<Release>,
    /// The fleet registry as committed on the base branch, sorted by cluster id.
    pub fleet: Fleet,
    /// For each ring (by index), the indices in `fleet.clusters` of its clusters, sorted by id.
    pub membership: Vec<Vec<usize>>,
}

impl Config {
    /// The clusters of a ring, sorted by id.
    pub fn ring_clusters(&self, ring_index: usize) -> impl Iterator<Item = &Cluster> {
        self.membership
            .get(ring_index)
            .into_iter()
            .flatten()
            .filter_map(|i| self.fleet.clusters.get(*i))
    }

    /// A release by name.
    pub fn release(&self, name: &str) -> Option<&Release> {
        self.releases.iter().find(|r| r.name.as_str() == name)
    }
}

/// Daemon settings from `ringmaster.yaml`, paths resolved against its directory.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The settings file itself.
    pub path: PathBuf,
    /// The GitOps repository.
    pub gitops: GitopsSettings,
    /// Where PRs live.
    pub forge: ForgeSettings,
    /// The ring file.
    pub rings_path: PathBuf,
    /// Glob of release files (absolute).
    pub releases_glob: String,
    /// The sled store.
    pub store_path: PathBuf,
    /// ringmaster's own files: the GitOps mirror lives in `<data_dir>/mirrors/`.
    pub data_dir: PathBuf,
    /// Kubeconfig path, if set.
    pub kubeconfig: Option<PathBuf>,
    /// HTTP API listen address.
    pub api_listen: String,
    /// Where the API token comes from.
    pub api_token: Option<SecretSource>,
    /// Every secret read from a file (API token, forge and Git tokens, webhook secret), with
    /// where it is set, so that `validate` can say which one is missing.
    pub secret_files: Vec<SecretFile>,
    /// Time between reconcile passes.
    pub reconcile_interval: TimeDelta,
    /// Commit author (name, email).
    pub author: (String, String),
}

/// A secret file named in `ringmaster.yaml` (its path, never its content).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretFile {
    /// The key as written: `api.tokenFile`, `forge.github.webhookSecretFile`, …
    pub key: String,
    /// The key that reads the secret from the environment instead (`tokenEnv`, …).
    pub alternative: String,
    /// The path as written.
    pub written: String,
    /// The path resolved against the settings file's directory.
    pub path: PathBuf,
    /// Where the key is in the settings file.
    pub pos: crate::diag::Pos,
}

/// Where a secret comes from. The secret itself is read only when needed and never stored here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// An environment variable's name.
    Env(String),
    /// A file's path.
    File(PathBuf),
}

/// How to authenticate to the GitOps remote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GitAuth {
    /// No credentials (local paths, public repositories).
    None,
    /// HTTPS with a token.
    Token(SecretSource),
    /// SSH with a private key file.
    SshKey(PathBuf),
    /// SSH through the agent.
    SshAgent,
}

/// Where the GitOps repository is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GitLocation {
    /// A repository on this machine (from a path or a `file://` URL).
    Local(PathBuf),
    /// A remote URL (`https://`, `ssh://`, `git@host:path`).
    Remote(String),
}

/// `gitops:`.
#[derive(Debug, Clone)]
pub struct GitopsSettings {
    /// The URL as written (for messages).
    pub url: String,
    /// Resolved location.
    pub location: GitLocation,
    /// Base branch.
    pub branch: String,
    /// Registry glob inside the repository.
    pub registry: String,
    /// Credentials.
    pub auth: GitAuth,
}

/// `forge:`.
#[derive(Debug, Clone)]
pub enum ForgeSettings {
    /// The built-in local forge.
    Local,
    /// GitHub through its REST API.
    GitHub(GitHubSettings),
}

/// `forge.github`.
#[derive(Debug, Clone)]
pub struct GitHubSettings {
    /// Owner.
    pub owner: String,
    /// Repository.
    pub repo: String,
    /// API base URL.
    pub api_url: String,
    /// Token or App credentials.
    pub auth: GitHubAuth,
    /// Merge method.
    pub merge_method: MergeMethod,
    /// The secret GitHub signs webhook deliveries with (`webhookSecretEnv` /
    /// `webhookSecretFile`); without one the forge is polled and `/webhooks/github` answers 404.
    pub webhook_secret: Option<SecretSource>,
}

/// How ringmaster authenticates to GitHub.
#[derive(Debug, Clone)]
pub enum GitHubAuth {
    /// A personal or fine-grained token.
    Token(SecretSource),
    /// A GitHub App.
    App {
        /// App id.
        app_id: u64,
        /// Private key file.
        private_key_file: PathBuf,
        /// Installation id, if known.
        installation_id: Option<u64>,
    },
}

/// GitHub merge methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MergeMethod {
    /// A merge commit.
    Merge,
    /// Squash and merge.
    Squash,
    /// Rebase and merge.
    Rebase,
}

/// `rings.yaml`.
#[derive(Debug, Clone)]
pub struct RingSet {
    /// Rings in rollout order.
    pub rings: Vec<Ring>,
    /// Gates by name.
    pub gates: BTreeMap<GateName, Gate>,
    /// Change freezes.
    pub freezes: Vec<Freeze>,
    /// Coverage fields.
    pub coverage: Vec<FieldKey>,
    /// What a coverage gap is.
    pub coverage_mode: CoverageMode,
    /// Extra files to edit (applied by the GitOps engine), in file order.
    pub edits: Vec<EditRule>,
    /// Where the running version of each add-on and policy bundle is read.
    pub observe: Observe,
}

/// `observe:`: where convergence reads what a cluster actually runs (DESIGN §6).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observe {
    /// Add-on name → the workload running it.
    pub addons: BTreeMap<String, WorkloadRef>,
    /// Controller name → the workload running it.
    pub controllers: BTreeMap<String, WorkloadRef>,
    /// Policy-bundle name → the object reporting its version.
    pub policies: BTreeMap<String, ResourceRef>,
    /// Where `observe:` is written in the ring file ([`crate::Pos::FILE`] when absent).
    pub pos: crate::diag::Pos,
}

/// Default namespace of an observed add-on workload.
pub const DEFAULT_OBSERVE_NAMESPACE: &str = "kube-system";

/// A workload whose container image tag is an add-on's version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadRef {
    /// Deployment, DaemonSet or StatefulSet.
    pub kind: WorkloadKind,
    /// Namespace (default `kube-system`).
    pub namespace: String,
    /// Name (default: the add-on's name).
    pub name: String,
    /// The container to read; `None` = the only container, else the one named after the add-on.
    pub container: Option<String>,
}

/// The workload kinds an add-on can be observed through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WorkloadKind {
    /// `apps/v1` Deployment.
    Deployment,
    /// `apps/v1` DaemonSet.
    DaemonSet,
    /// `apps/v1` StatefulSet.
    StatefulSet,
}

impl WorkloadKind {
    /// Accepted spellings, as in the Kubernetes API.
    pub const NAMES: [&'static str; 3] = ["Deployment", "DaemonSet", "StatefulSet"];

    /// Parse `Deployment`, `DaemonSet` or `StatefulSet`.
    pub fn parse(text: &str) -> Option<WorkloadKind> {
        Some(match text {
            "Deployment" => WorkloadKind::Deployment,
            "DaemonSet" => WorkloadKind::DaemonSet,
            "StatefulSet" => WorkloadKind::StatefulSet,
            _ => return None,
        })
    }

    /// As written in the Kubernetes API.
    pub fn as_str(&self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::DaemonSet => "DaemonSet",
            WorkloadKind::StatefulSet => "StatefulSet",
        }
    }
}

impl fmt::Display for WorkloadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One object whose field holds a policy bundle's version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceRef {
    /// `group/version` or `v1`.
    pub api_version: String,
    /// Kind (found through discovery).
    pub kind: String,
    /// Object name.
    pub name: String,
    /// Namespace; `None` for cluster-scoped objects.
    pub namespace: Option<String>,
    /// JSONPath subset (`.status.version`).
    pub json_path: String,
}

/// An `edits:` rule: when a component of a matching cluster changes, edit this file too.
#[derive(Debug, Clone)]
pub struct EditRule {
    /// Clusters the rule applies to (`None` = all).
    pub when: Option<Selector>,
    /// The component whose version is written.
    pub target: crate::ids::Component,
    /// The file, as a template over registry fields (`terraform/eks/{clusterId}.tfvars`).
    pub file: PathTemplate,
    /// Where the version is in that file.
    pub locator: EditLocator,
    /// Where the rule is written in the ring file.
    pub pos: crate::diag::Pos,
}

/// How an edit rule finds the version in its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EditLocator {
    /// A YAML path (`.spec.chart.spec.version`); the value is replaced preserving the file's format.
    YamlPath(crate::yamlpath::YamlPath),
    /// A regular expression with a named group `version` that must match exactly once.
    Regex(String),
}

/// A file path with `{field}` placeholders (`{clusterId}`, `{region}`, `{labels.cell}`, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathTemplate {
    raw: String,
    parts: Vec<TemplatePart>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum TemplatePart {
    Literal(String),
    Field(FieldKey),
}

impl PathTemplate {
    /// Parse and check that the template cannot leave the repository.
    pub fn parse(text: &str) -> Result<PathTemplate, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(TemplatePart::Literal(rest[..open].to_owned()));
            }
            let Some(close) = rest[open..].find('}') else {
                return Err(format!("`{text}` has a `{{` without `}}`"));
            };
            let name = &rest[open + 1..open + close];
            let key = FieldKey::parse(name)
                .map_err(|e| format!("`{text}`: placeholder {{{name}}}: {e}"))?;
            parts.push(TemplatePart::Field(key));
            rest = &rest[open + close + 1..];
        }
        if !rest.is_empty() {
            parts.push(TemplatePart::Literal(rest.to_owned()));
        }
        if text.contains('}')
            && parts
                .iter()
                .any(|p| matches!(p, TemplatePart::Literal(l) if l.contains('}')))
        {
            return Err(format!("`{text}` has a `}}` without `{{`"));
        }
        check_repo_path(text).map_err(|e| format!("`{text}` {e}"))?;
        Ok(PathTemplate {
            raw: text.to_owned(),
            parts,
        })
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The registry fields it substitutes.
    pub fn fields(&self) -> impl Iterator<Item = &FieldKey> {
        self.parts.iter().filter_map(|p| match p {
            TemplatePart::Field(k) => Some(k),
            TemplatePart::Literal(_) => None,
        })
    }

    /// The path for one cluster. Every substituted value must be a plain path component
    /// (`[A-Za-z0-9._-]`, not `.` or `..`), so no registry value can move the path elsewhere.
    pub fn render(&self, c: &Cluster) -> Result<String, String> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                TemplatePart::Literal(l) => out.push_str(l),
                TemplatePart::Field(key) => {
                    let value = key.value(c).ok_or_else(|| {
                        format!("cluster `{}` has no `{key}` for path `{}`", c.id, self.raw)
                    })?;
                    let ok = !value.is_empty()
                        && value != "."
                        && value != ".."
                        && value
                            .chars()
                            .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '.' | '_' | '-'));
                    if !ok {
                        return Err(format!(
                            "cluster `{}`: `{key}` value `{value}` cannot be used in path `{}`",
                            c.id, self.raw
                        ));
                    }
                    out.push_str(&value);
                }
            }
        }
        check_repo_path(&out).map_err(|e| format!("cluster `{}`: path `{out}` {e}", c.id))?;
        Ok(out)
    }
}

/// A repository-relative path: no leading `/`, no empty, `.` or `..` components, not inside `.git`.
pub fn check_repo_path(path: &str) -> Result<(), String> {
    if path.is_empty() || path.starts_with('/') || path.contains('\\') {
        return Err("must be a relative path inside the repository".to_owned());
    }
    for segment in path.split('/') {
        if segment.is_empty() || segment == "." || segment == ".." {
            return Err(
                "must stay inside the repository (no empty, `.` or `..` components)".to_owned(),
            );
        }
    }
    if path.split('/').next() == Some(".git") {
        return Err("must not point into `.git`".to_owned());
    }
    Ok(())
}

/// Whether coverage gaps are warnings or errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoverageMode {
    /// Report, exit 0.
    Warn,
    /// Report, exit 1.
    Error,
}

/// One ring.
#[derive(Debug, Clone)]
pub struct Ring {
    /// Unique name.
    pub name: RingName,
    /// 1-based position.
    pub position: usize,
    /// Which clusters belong (unless they name a ring explicitly).
    pub selector: Selector,
    /// Who merges.
    pub merge: MergeMode,
    /// Requested reviewers (`user` or `org/team`).
    pub reviewers: Vec<String>,
    /// When PRs may open and merge; `None` = any time.
    pub window: Option<Window>,
    /// Time allowed for convergence after merge.
    pub converge_timeout: TimeDelta,
    /// How long every gate must hold.
    pub soak: TimeDelta,
    /// Gates evaluated during the soak.
    pub gates: Vec<GateName>,
    /// Gates evaluated once before the PR opens.
    pub preflight: Vec<GateName>,
    /// When a Kubernetes step counts as converged on its clusters' nodes (`upgrade.nodes`),
    /// unless a cluster's registry entry says otherwise.
    pub nodes: NodeConvergence,
    /// Where its name is written in the ring file.
    pub pos: crate::diag::Pos,
}

/// When a Kubernetes step has converged on a cluster's nodes (`upgrade.nodes` on a ring or a
/// registry entry; the entry wins). The control plane must be at the target minor either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeConvergence {
    /// Every node runs the target minor, is Ready and schedulable: the soak starts once the
    /// node roll is over, not while nodes are still being replaced.
    #[default]
    Target,
    /// Every kubelet is within the skew policy of the control plane (never ahead, at most
    /// three minors behind): for node pools upgraded separately from the control plane.
    Skew,
}

impl NodeConvergence {
    /// Accepted spellings.
    pub const NAMES: [&'static str; 2] = ["target", "skew"];

    /// Parse `target` or `skew`.
    pub fn parse(text: &str) -> Option<NodeConvergence> {
        Some(match text {
            "target" => NodeConvergence::Target,
            "skew" => NodeConvergence::Skew,
            _ => return None,
        })
    }

    /// As written.
    pub fn as_str(&self) -> &'static str {
        match self {
            NodeConvergence::Target => "target",
            NodeConvergence::Skew => "skew",
        }
    }
}

impl fmt::Display for NodeConvergence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who merges a ring's PR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MergeMode {
    /// ringmaster merges once checks pass.
    Auto,
    /// A human merges.
    Manual,
}

/// A recurring window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// When it opens (wall-clock, in `timezone`).
    pub schedule: CronSchedule,
    /// How long it stays open (absolute time).
    pub duration: TimeDelta,
    /// The timezone of the schedule.
    pub timezone: Tz,
}

/// A change freeze `[from, to)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Freeze {
    /// Start.
    pub from: DateTime<Utc>,
    /// End (exclusive).
    pub to: DateTime<Utc>,
    /// Why.
    pub reason: String,
}

/// A registry field a selector or coverage list can name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FieldKey {
    /// `clusterId`.
    ClusterId,
    /// `provider`.
    Provider,
    /// `service`.
    Service,
    /// `region`.
    Region,
    /// `environment`.
    Environment,
    /// `ownerTeam`.
    OwnerTeam,
    /// `criticality`.
    Criticality,
    /// `kubernetesVersion` (as a minor, `1.33`).
    KubernetesVersion,
    /// `upgradeRing`.
    UpgradeRing,
    /// `kubeContext` (the cluster id when not written).
    KubeContext,
    /// `labels.<key>`.
    Label(String),
    /// A scalar field ringmaster does not know (`upgradeChannel`, `purpose`, …).
    Extra(String),
}

impl FieldKey {
    /// The plain field names, as written in files.
    pub const NAMES: [&'static str; 10] = [
        "clusterId",
        "provider",
        "service",
        "region",
        "environment",
        "ownerTeam",
        "criticality",
        "kubernetesVersion",
        "upgradeRing",
        "kubeContext",
    ];

    /// Parse `environment`, `labels.cell`, …
    pub fn parse(text: &str) -> Result<FieldKey, String> {
        if let Some(label) = text.strip_prefix("labels.") {
            if label.is_empty() {
                return Err("`labels.` needs a label name, like `labels.cell`".to_owned());
            }
            return Ok(FieldKey::Label(label.to_owned()));
        }
        Ok(match text {
            "clusterId" => FieldKey::ClusterId,
            "provider" => FieldKey::Provider,
            "service" => FieldKey::Service,
            "region" => FieldKey::Region,
            "environment" => FieldKey::Environment,
            "ownerTeam" => FieldKey::OwnerTeam,
            "criticality" => FieldKey::Criticality,
            "kubernetesVersion" => FieldKey::KubernetesVersion,
            "upgradeRing" => FieldKey::UpgradeRing,
            "kubeContext" => FieldKey::KubeContext,
            "labels" | "addons" | "controllers" | "policies" | "upgrade" => {
                return Err(format!(
                    "`{text}` is a map, not a value; name one entry of it, like `labels.cell`"
                ));
            }
            _ => {
                // A field the registry itself would refuse as a misspelling cannot be an
                // organisation's own field either.
                if let Some(known) = crate::raw::field_typo(text) {
                    return Err(format!(
                        "unknown registry field `{text}`; did you mean `{known}`?"
                    ));
                }
                let ok = text.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                    && text
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'));
                if !ok {
                    return Err(format!(
                        "`{text}` is not a registry field name (letters, digits, `_` and `-`; only `labels.<key>` has a dot)"
                    ));
                }
                FieldKey::Extra(text.to_owned())
            }
        })
    }

    /// The value of this field on a cluster.
    pub fn value<'a>(&self, c: &'a Cluster) -> Option<std::borrow::Cow<'a, str>> {
        use std::borrow::Cow;
        match self {
            FieldKey::ClusterId => Some(Cow::Borrowed(c.id.as_str())),
            FieldKey::Provider => Some(Cow::Borrowed(c.provider.as_str())),
            FieldKey::Service => c.service.as_deref().map(Cow::Borrowed),
            FieldKey::Region => c.region.as_deref().map(Cow::Borrowed),
            FieldKey::Environment => c.environment.as_deref().map(Cow::Borrowed),
            FieldKey::OwnerTeam => c.owner_team.as_deref().map(Cow::Borrowed),
            FieldKey::Criticality => c.criticality.as_deref().map(Cow::Borrowed),
            FieldKey::KubernetesVersion => {
                let (major, minor) = c.kubernetes.major_minor();
                Some(Cow::Owned(format!("{major}.{minor}")))
            }
            FieldKey::UpgradeRing => c.upgrade_ring.as_ref().map(|r| Cow::Borrowed(r.as_str())),
            FieldKey::KubeContext => Some(Cow::Borrowed(c.kube_context.as_str())),
            FieldKey::Label(key) => c.labels.get(key).map(|v| Cow::Borrowed(v.as_str())),
            FieldKey::Extra(key) => c.extra.scalar(key).map(Cow::Borrowed),
        }
    }
}

impl fmt::Display for FieldKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldKey::ClusterId => f.write_str("clusterId"),
            FieldKey::Provider => f.write_str("provider"),
            FieldKey::Service => f.write_str("service"),
            FieldKey::Region => f.write_str("region"),
            FieldKey::Environment => f.write_str("environment"),
            FieldKey::OwnerTeam => f.write_str("ownerTeam"),
            FieldKey::Criticality => f.write_str("criticality"),
            FieldKey::KubernetesVersion => f.write_str("kubernetesVersion"),
            FieldKey::UpgradeRing => f.write_str("upgradeRing"),
            FieldKey::KubeContext => f.write_str("kubeContext"),
            FieldKey::Label(k) => write!(f, "labels.{k}"),
            FieldKey::Extra(k) => f.write_str(k),
        }
    }
}

/// A label selector over registry fields: every term must match.
#[derive(Debug, Clone, Default)]
pub struct Selector {
    /// Field → accepted values.
    pub terms: Vec<(FieldKey, Vec<String>)>,
}

impl Selector {
    /// Whether the cluster matches every term. An empty selector matches nothing (a ring must
    /// say which clusters it wants).
    pub fn matches(&self, c: &Cluster) -> bool {
        !self.terms.is_empty()
            && self.terms.iter().all(|(key, values)| {
                key.value(c)
                    .is_some_and(|v| values.iter().any(|want| want == v.as_ref()))
            })
    }
}

/// A named gate.
#[derive(Debug, Clone)]
pub struct Gate {
    /// Its name.
    pub name: GateName,
    /// What it checks.
    pub check: GateCheck,
    /// Sampling interval during the soak.
    pub interval: TimeDelta,
    /// Consecutive failures that halt the ring.
    pub failure_limit: u32,
    /// Consecutive inconclusive samples that halt the ring.
    pub inconclusive_limit: u32,
}

/// Default sampling interval of a gate: one minute.
pub const DEFAULT_GATE_INTERVAL_SECS: i64 = 60;
/// Default consecutive failures before a halt.
pub const DEFAULT_FAILURE_LIMIT: u32 = 1;
/// Default consecutive inconclusive samples before a halt (DESIGN §6).
pub const DEFAULT_INCONCLUSIVE_LIMIT: u32 = 3;

/// The check a gate performs.
#[derive(Debug, Clone)]
pub enum GateCheck {
    /// Kubernetes API.
    Kube(KubeGate),
    /// Prometheus instant query.
    Prometheus(PrometheusGate),
    /// HTTP GET.
    Http(HttpGate),
    /// A command.
    Command(CommandGate),
}

/// `kube:` gates: exactly one field.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KubeGate {
    /// Ratio of Ready nodes.
    #[serde(default)]
    pub nodes_ready: Option<NodesReady>,
    /// All replicas available.
    #[serde(default)]
    pub workloads_available: Option<WorkloadsAvailable>,
    /// No crash loops or pull back-offs.
    #[serde(default)]
    pub pods_healthy: Option<PodsHealthy>,
    /// Any resource by JSONPath.
    #[serde(default)]
    pub resource: Option<ResourceCheck>,
    /// API versions removed by the next minor still in use (preflight).
    #[serde(default)]
    pub removed_apis: Option<RemovedApis>,
}

/// `kube.nodesReady`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NodesReady {
    /// Minimum ratio of Ready nodes, 0..=1.
    pub min_ratio: f64,
}

/// `kube.workloadsAvailable`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WorkloadsAvailable {
    /// Namespaces (`*` = all).
    #[serde(default)]
    pub namespaces: Vec<String>,
}

/// `kube.podsHealthy`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PodsHealthy {
    /// Namespaces (`*` = all).
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Maximum restart growth during the soak.
    #[serde(default)]
    pub max_restart_growth: Option<u32>,
}

/// `kube.resource`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ResourceCheck {
    /// `group/version` or `v1`.
    pub api_version: String,
    /// Kind.
    pub kind: String,
    /// Namespace (absent = cluster-scoped or all).
    #[serde(default)]
    pub namespace: Option<String>,
    /// One object by name.
    #[serde(default)]
    pub name: Option<String>,
    /// Label selector.
    #[serde(default)]
    pub label_selector: Option<String>,
    /// JSONPath subset (`.status.health.status`).
    pub json_path: String,
    /// Value must equal.
    #[serde(default)]
    pub equals: Option<String>,
    /// Value must be one of.
    #[serde(default, rename = "in")]
    pub one_of: Option<Vec<String>>,
    /// Value must satisfy the semver range.
    #[serde(default)]
    pub semver_range: Option<String>,
}

/// `kube.removedApis` (preflight only): API versions removed by the step's target minor that
/// the cluster still stores objects for or still receives requests for.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RemovedApis {
    /// Hits to accept. Each entry is a prefix, by whole `/`-separated segments, of a hit's key
    /// `<group>/<version>/<resource>[/<namespace>]/<name>` (resource in its plural lowercase
    /// form): `flowcontrol.apiserver.k8s.io/v1beta3` accepts everything of that API version,
    /// `policy/v1beta1/poddisruptionbudgets/default` every PodDisruptionBudget of `default`.
    #[serde(default)]
    pub ignore: Vec<String>,
}

/// `prometheus:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PrometheusGate {
    /// Server base URL.
    pub url: String,
    /// PromQL with `{clusterId}`-style placeholders.
    pub query: String,
    /// Value must be >= min.
    #[serde(default)]
    pub min: Option<f64>,
    /// Value must be <= max.
    #[serde(default)]
    pub max: Option<f64>,
    /// `preUpgrade` to compare with the hour before the merge.
    #[serde(default)]
    pub baseline: Option<String>,
    /// With a baseline: value - baseline <= maxIncrease.
    #[serde(default)]
    pub max_increase: Option<f64>,
    /// With a baseline: value / baseline <= maxRatio.
    #[serde(default)]
    pub max_ratio: Option<f64>,
}

/// `http:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpGate {
    /// URL with placeholders.
    pub url: String,
    /// Expected status. Default 200.
    #[serde(default)]
    pub expect_status: Option<u16>,
    /// Substring the body must contain.
    #[serde(default)]
    pub body_contains: Option<String>,
    /// Per-request timeout. Default `10s`.
    #[serde(default)]
    pub timeout: Option<String>,
}

/// `command:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CommandGate {
    /// Program and arguments (no shell).
    pub argv: Vec<String>,
    /// Timeout. Default `60s`.
    #[serde(default)]
    pub timeout: Option<String>,
}

/// A release.
#[derive(Debug, Clone)]
pub struct Release {
    /// Unique name.
    pub name: ReleaseName,
    /// Free text.
    pub description: Option<String>,
    /// Target Kubernetes version.
    pub kubernetes: Option<Version>,
    /// Add-on targets.
    pub addons: BTreeMap<String, Version>,
    /// Controller targets.
    pub controllers: BTreeMap<String, Version>,
    /// Policy-bundle targets.
    pub policies: BTreeMap<String, Version>,
    /// Where each component's target is written in [`Release::source`].
    pub positions: BTreeMap<crate::ids::Component, crate::diag::Pos>,
    /// Required range of the cluster's Kubernetes version.
    pub requires_kubernetes: Option<VersionRange>,
    /// Versions may go down.
    pub rollback: bool,
    /// The file it came from (for messages).
    pub source: String,
}

impl Release {
    /// A one-line summary: `Kubernetes 1.33`, `coredns 1.11.4, vpc-cni 1.19.2`.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        if let Some(k) = &self.kubernetes {
            parts.push(format!("Kubernetes {k}"));
        }
        parts.extend(self.addons.iter().map(|(n, v)| format!("{n} {v}")));
        parts.extend(self.controllers.iter().map(|(n, v)| format!("{n} {v}")));
        parts.extend(self.policies.iter().map(|(n, v)| format!("{n} {v}")));
        parts.join(", ")
    }
}

/// Cloud or platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// Amazon Web Services.
    Aws,
    /// Microsoft Azure.
    Azure,
    /// Google Cloud.
    Gcp,
    /// Own data centres.
    Onprem,
    /// Anything else.
    Other,
}

impl Provider {
    /// Accepted spellings.
    pub const NAMES: [&'static str; 5] = ["aws", "azure", "gcp", "onprem", "other"];

    /// Parse.
    pub fn parse(text: &str) -> Option<Provider> {
        Some(match text {
            "aws" => Provider::Aws,
            "azure" => Provider::Azure,
            "gcp" => Provider::Gcp,
            "onprem" => Provider::Onprem,
            "other" => Provider::Other,
            _ => return None,
        })
    }

    /// As written.
    pub fn as_str(&self) -> &'static str {
        match self {
            Provider::Aws => "aws",
            Provider::Azure => "azure",
            Provider::Gcp => "gcp",
            Provider::Onprem => "onprem",
            Provider::Other => "other",
        }
    }
}

/// A cluster from the fleet registry.
#[derive(Debug, Clone)]
pub struct Cluster {
    /// Id.
    pub id: ClusterId,
    /// Provider.
    pub provider: Provider,
    /// Managed service.
    pub service: Option<String>,
    /// Region.
    pub region: Option<String>,
    /// Environment.
    pub environment: Option<String>,
    /// Owning team.
    pub owner_team: Option<String>,
    /// Criticality tier.
    pub criticality: Option<String>,
    /// Labels.
    pub labels: NameMap<String>,
    /// Explicit ring.
    pub upgrade_ring: Option<RingName>,
    /// Kubeconfig context.
    pub kube_context: String,
    /// Control-plane version.
    pub kubernetes: Version,
    /// Add-ons.
    pub addons: NameMap<Version>,
    /// Controllers (argocd, cert-manager, karpenter, …).
    pub controllers: NameMap<Version>,
    /// Policy bundles.
    pub policies: NameMap<Version>,
    /// Every field ringmaster does not know, as written.
    pub extra: ExtraFields,
    /// `Some(reason)` when upgrades are paused.
    pub paused: Option<String>,
    /// `upgrade.nodes` as the registry entry writes it (`None`: the ring decides).
    pub upgrade_nodes: Option<NodeConvergence>,
    /// When a Kubernetes step has converged on its nodes: `upgrade_nodes`, else its ring's
    /// `upgrade.nodes`, else [`NodeConvergence::Target`] (resolved when the configuration is
    /// loaded, from the ring the cluster is in then).
    pub nodes: NodeConvergence,
    /// Path of its registry file in the repository.
    pub path: String,
    /// Where `clusterId` is written in that file.
    pub pos: crate::diag::Pos,
}

/// The fleet registry.
#[derive(Debug, Clone, Default)]
pub struct Fleet {
    /// Clusters sorted by id.
    pub clusters: Vec<Cluster>,
    /// The commit the registry was read from.
    pub commit: String,
}

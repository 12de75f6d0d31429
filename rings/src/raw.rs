//! Phase one: the files exactly as written, as serde structs.
//!
//! Every struct denies unknown fields. Values that later checks must point at are wrapped in
//! [`S`] (a value with its line and column). Nothing here is validated beyond YAML types; the
//! [`crate::load`] module turns these into the model of [`crate::model`].

use std::collections::BTreeMap;

use serde::Deserialize;

mod cluster;
pub use cluster::{ExtraRaw, KNOWN_CLUSTER_FIELDS, RawCluster, Typo, field_typo};

/// A value with the position it was read from.
pub type S<T> = serde_saphyr::Spanned<T>;

/// `ringmaster.yaml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawSettings {
    /// Must be `ringmaster/v1`.
    pub api_version: S<String>,
    /// Must be `Orchestrator`.
    pub kind: S<String>,
    /// The GitOps repository holding the fleet registry.
    pub gitops: RawGitops,
    /// Where pull requests live; default: the built-in local forge.
    #[serde(default)]
    pub forge: Option<RawForge>,
    /// Path of the ring file, relative to this file. Default `rings.yaml`.
    #[serde(default)]
    pub rings: Option<S<String>>,
    /// Glob of release files, relative to this file. Default `releases/*.yaml`.
    #[serde(default)]
    pub releases: Option<S<String>>,
    /// ringmaster's own files (the GitOps mirror), relative to this file. Default `.ringmaster`.
    #[serde(default)]
    pub data_dir: Option<S<String>>,
    /// Path of the sled store, relative to this file. Default `ringmaster.db`.
    #[serde(default)]
    pub store: Option<S<String>>,
    /// How to reach the clusters.
    #[serde(default)]
    pub kube: Option<RawKube>,
    /// The daemon's HTTP API.
    #[serde(default)]
    pub api: Option<RawApi>,
    /// Time between reconcile passes. Default `30s`.
    #[serde(default)]
    pub reconcile_interval: Option<S<String>>,
    /// Author of ringmaster's commits. Default `ringmaster <ringmaster@localhost>`.
    #[serde(default)]
    pub author: Option<RawAuthor>,
}

/// `gitops:` in `ringmaster.yaml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawGitops {
    /// A local path (relative to `ringmaster.yaml`), `file://`, `https://` or `ssh://` URL.
    pub url: S<String>,
    /// The base branch. Default `main`.
    #[serde(default)]
    pub branch: Option<S<String>>,
    /// Glob of registry files in the repository. Default `clusters/**/cluster.yaml`.
    #[serde(default)]
    pub registry: Option<S<String>>,
    /// Credentials for remote URLs.
    #[serde(default)]
    pub auth: Option<S<RawAuth>>,
}

/// Credentials: exactly one of the fields.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawAuth {
    /// Name of an environment variable holding a token.
    #[serde(default)]
    pub token_env: Option<S<String>>,
    /// Path of a file holding a token.
    #[serde(default)]
    pub token_file: Option<S<String>>,
    /// Path of an SSH private key.
    #[serde(default)]
    pub ssh_key_file: Option<S<String>>,
    /// Use the SSH agent.
    #[serde(default)]
    pub ssh_agent: Option<bool>,
}

/// `forge:` — exactly one of `github` or `local`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawForge {
    /// GitHub or GitHub Enterprise.
    #[serde(default)]
    pub github: Option<S<RawGithub>>,
    /// The built-in local forge.
    #[serde(default)]
    pub local: Option<RawLocal>,
}

/// `forge.local: {}`.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawLocal {}

/// `forge.github`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawGithub {
    /// Repository owner (user or organisation).
    pub owner: S<String>,
    /// Repository name.
    pub repo: S<String>,
    /// API base URL. Default `https://api.github.com`.
    #[serde(default)]
    pub api_url: Option<S<String>>,
    /// Environment variable holding a token.
    #[serde(default)]
    pub token_env: Option<S<String>>,
    /// File holding a token.
    #[serde(default)]
    pub token_file: Option<S<String>>,
    /// Authenticate as a GitHub App instead of with a token.
    #[serde(default)]
    pub app: Option<RawGithubApp>,
    /// `merge`, `squash` or `rebase`. Default `merge`.
    #[serde(default)]
    pub merge_method: Option<S<String>>,
    /// Environment variable holding the webhook secret: with one, `/webhooks/github` takes
    /// signed deliveries and wakes the loop at once.
    #[serde(default)]
    pub webhook_secret_env: Option<S<String>>,
    /// File holding the webhook secret.
    #[serde(default)]
    pub webhook_secret_file: Option<S<String>>,
}

/// `forge.github.app`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawGithubApp {
    /// The App's numeric id.
    pub app_id: u64,
    /// PEM private key file of the App.
    pub private_key_file: S<String>,
    /// Installation id; found from the repository when absent.
    #[serde(default)]
    pub installation_id: Option<u64>,
}

/// `kube:`.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawKube {
    /// Kubeconfig path. Default: `$KUBECONFIG`, then `~/.kube/config`.
    #[serde(default)]
    pub kubeconfig: Option<String>,
}

/// `api:`.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawApi {
    /// Listen address. Default `127.0.0.1:9464`.
    #[serde(default)]
    pub listen: Option<S<String>>,
    /// Environment variable holding the bearer token for mutating endpoints.
    #[serde(default)]
    pub token_env: Option<S<String>>,
    /// File holding that token.
    #[serde(default)]
    pub token_file: Option<S<String>>,
}

/// `author:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawAuthor {
    /// Name on commits.
    pub name: String,
    /// Email on commits.
    pub email: String,
}

/// `rings.yaml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawRingSet {
    /// Must be `ringmaster/v1`.
    pub api_version: S<String>,
    /// Must be `RingSet`.
    pub kind: S<String>,
    /// The rings, in rollout order.
    pub rings: Vec<RawRing>,
    /// Gate definitions by name.
    #[serde(default)]
    pub gates: BTreeMap<String, S<RawGate>>,
    /// Change freezes: no PR opens or merges inside one.
    #[serde(default)]
    pub freezes: Vec<RawFreeze>,
    /// Fields whose combinations later rings must not introduce.
    #[serde(default)]
    pub coverage: Vec<S<String>>,
    /// `warn` (default) or `error`.
    #[serde(default)]
    pub coverage_mode: Option<S<String>>,
    /// Extra files to edit (Terraform, Bicep, Helm values).
    #[serde(default)]
    pub edits: Vec<S<RawEdit>>,
    /// Where ringmaster reads the running version of each add-on and policy bundle, to tell
    /// whether a cluster converged after a merge. Required for every add-on and policy bundle a
    /// release promotes.
    #[serde(default)]
    pub observe: Option<S<RawObserve>>,
}

/// `observe:` in `rings.yaml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawObserve {
    /// Add-on name (as in the registry) → the workload that runs it.
    #[serde(default)]
    pub addons: BTreeMap<String, S<RawWorkloadRef>>,
    /// Controller name (as in the registry) → the workload that runs it.
    #[serde(default)]
    pub controllers: BTreeMap<String, S<RawWorkloadRef>>,
    /// Policy-bundle name (as in the registry) → the object that reports its version.
    #[serde(default)]
    pub policies: BTreeMap<String, S<RawResourceRef>>,
}

/// `observe.addons.<name>`: the workload whose container image tag is the add-on's version.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawWorkloadRef {
    /// `Deployment`, `DaemonSet` or `StatefulSet`.
    pub kind: S<String>,
    /// Namespace of the workload. Default `kube-system`.
    #[serde(default)]
    pub namespace: Option<S<String>>,
    /// Name of the workload. Default: the add-on's name.
    #[serde(default)]
    pub name: Option<S<String>>,
    /// Container whose image tag is read. Default: the only container, else the one named
    /// after the add-on.
    #[serde(default)]
    pub container: Option<S<String>>,
}

/// `observe.policies.<name>`: one object whose field holds the bundle's version.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawResourceRef {
    /// `group/version` (or `v1`), e.g. `policies.ringmaster.dev/v1`.
    pub api_version: S<String>,
    /// Kind, e.g. `PolicyBundle` (found through API discovery, so CRDs work).
    pub kind: S<String>,
    /// The object's name.
    pub name: S<String>,
    /// Its namespace; absent for cluster-scoped objects.
    #[serde(default)]
    pub namespace: Option<S<String>>,
    /// JSONPath subset (`.status.version`) of the version.
    pub json_path: S<String>,
}

/// A selector value: one string, or a list (any of).
#[derive(Debug, Deserialize, Clone)]
#[serde(untagged)]
pub enum RawSelectorValue {
    /// Equals.
    One(String),
    /// Any of.
    Many(Vec<String>),
}

/// One ring.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawRing {
    /// Unique name.
    pub name: S<String>,
    /// Registry field or `labels.<key>` → value(s).
    #[serde(default)]
    pub selector: BTreeMap<String, S<RawSelectorValue>>,
    /// `auto` or `manual`. Default `manual`.
    #[serde(default)]
    pub merge: Option<S<String>>,
    /// Users or `org/team`s asked to review.
    #[serde(default)]
    pub reviewers: Vec<S<String>>,
    /// When PRs may open and merge.
    #[serde(default)]
    pub window: Option<RawWindow>,
    /// Time allowed for clusters to converge after merge. Default `30m`.
    #[serde(default)]
    pub converge_timeout: Option<S<String>>,
    /// How long gates must hold after convergence. Default `1h`.
    #[serde(default)]
    pub soak: Option<S<String>>,
    /// Gate names evaluated during the soak.
    #[serde(default)]
    pub gates: Vec<S<String>>,
    /// Gate names evaluated once before the PR opens.
    #[serde(default)]
    pub preflight: Vec<S<String>>,
    /// Upgrade settings of the ring's clusters; a registry entry's own `upgrade:` wins.
    #[serde(default)]
    pub upgrade: Option<S<RawRingUpgrade>>,
}

/// `upgrade:` on a ring.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawRingUpgrade {
    /// When a Kubernetes step counts as converged on the nodes: `target` (default: every node
    /// runs the target minor and is Ready) or `skew` (every kubelet within the skew policy;
    /// node pools are upgraded separately).
    #[serde(default)]
    pub nodes: Option<S<String>>,
}

/// `window:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawWindow {
    /// Cron expression (5 fields, or 6/7 with seconds).
    pub cron: S<String>,
    /// How long the window stays open.
    pub duration: S<String>,
    /// IANA timezone. Default `UTC`.
    #[serde(default)]
    pub timezone: Option<S<String>>,
}

/// A freeze.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawFreeze {
    /// RFC 3339 start.
    pub from: S<String>,
    /// RFC 3339 end (exclusive).
    pub to: S<String>,
    /// Why.
    pub reason: String,
}

/// A gate: exactly one of `kube`, `prometheus`, `http`, `command`.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawGate {
    /// A check against the Kubernetes API.
    #[serde(default)]
    pub kube: Option<crate::model::KubeGate>,
    /// A Prometheus instant query.
    #[serde(default)]
    pub prometheus: Option<crate::model::PrometheusGate>,
    /// An HTTP GET.
    #[serde(default)]
    pub http: Option<crate::model::HttpGate>,
    /// A command (argv, no shell).
    #[serde(default)]
    pub command: Option<crate::model::CommandGate>,
    /// Sampling interval during the soak. Default `1m`.
    #[serde(default)]
    pub interval: Option<String>,
    /// Consecutive failing samples that halt the ring. Default 1.
    #[serde(default)]
    pub failure_limit: Option<u32>,
    /// Consecutive inconclusive samples that halt the ring. Default 3.
    #[serde(default)]
    pub inconclusive_limit: Option<u32>,
}

/// An `edits:` rule.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawEdit {
    /// Only for clusters matching this selector.
    #[serde(default)]
    pub when: BTreeMap<String, S<RawSelectorValue>>,
    /// Edit the Kubernetes version in another file.
    #[serde(default)]
    pub kubernetes: Option<RawEditTarget>,
    /// Edit this add-on's version in another file.
    #[serde(default)]
    pub addon: Option<String>,
    /// Edit this controller's version in another file.
    #[serde(default)]
    pub controller: Option<String>,
    /// Edit this policy bundle's version in another file.
    #[serde(default)]
    pub policy: Option<String>,
    /// File template for `addon`/`controller`/`policy` rules (`{clusterId}` etc.).
    #[serde(default)]
    pub file: Option<String>,
    /// YAML path of the value.
    #[serde(default)]
    pub yaml_path: Option<String>,
    /// Regex with a named group `version`.
    #[serde(default)]
    pub regex: Option<String>,
}

/// Target of a `kubernetes:` edit rule.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawEditTarget {
    /// File template.
    pub file: String,
    /// YAML path of the value.
    #[serde(default)]
    pub yaml_path: Option<String>,
    /// Regex with a named group `version`.
    #[serde(default)]
    pub regex: Option<String>,
}

/// A release document.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawRelease {
    /// Must be `ringmaster/v1`.
    pub api_version: S<String>,
    /// Must be `Release`.
    pub kind: S<String>,
    /// Unique name (used in branch names).
    pub name: S<String>,
    /// Free text shown in PRs.
    #[serde(default)]
    pub description: Option<String>,
    /// Target Kubernetes minor.
    #[serde(default)]
    pub kubernetes: Option<S<String>>,
    /// Add-on → target version.
    #[serde(default)]
    pub addons: BTreeMap<String, S<String>>,
    /// Controller → target version.
    #[serde(default)]
    pub controllers: BTreeMap<String, S<String>>,
    /// Policy bundle → target version.
    #[serde(default)]
    pub policies: BTreeMap<String, S<String>>,
    /// Ranges each cluster must satisfy before its ring starts.
    #[serde(default)]
    pub requires: Option<RawRequires>,
    /// Allow versions to go down.
    #[serde(default)]
    pub rollback: bool,
}

/// `requires:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawRequires {
    /// Range over the cluster's Kubernetes version.
    #[serde(default)]
    pub kubernetes: Option<S<String>>,
}

/// `upgrade:` in a registry entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawUpgrade {
    /// Leave the cluster out of new rollouts.
    #[serde(default)]
    pub paused: bool,
    /// Why (required when paused).
    #[serde(default)]
    pub reason: Option<String>,
    /// `target` or `skew`, as on a ring's `upgrade.nodes`; wins over the ring's. Default: the
    /// ring's.
    #[serde(default)]
    pub nodes: Option<S<String>>,
}

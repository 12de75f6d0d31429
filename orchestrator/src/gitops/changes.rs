//! What one ring step changes in the GitOps repository: which files, which values, and the new
//! file contents. Pure over file contents (the caller reads files from the base tree).

use std::collections::BTreeMap;

use policies::versions::{Change, Step, cluster_steps};
use regex::Regex;
use rings::model::{Cluster, Config, EditLocator, Release};
use rings::{ClusterId, Component};

use super::regex_edit::{self, RegexEditError};
use super::tree::TreeError;
use super::yaml_edit::{self, EditError, YamlPath};

/// One cluster's part of a ring step.
#[derive(Debug, Clone)]
pub struct ClusterStep<'a> {
    /// The cluster.
    pub cluster: &'a Cluster,
    /// Its changes in this step.
    pub changes: Step,
}

/// The clusters of a ring step and those left out.
#[derive(Debug, Clone, Default)]
pub struct RingStep<'a> {
    /// Clusters that change, sorted by id.
    pub clusters: Vec<ClusterStep<'a>>,
    /// Clusters that will not move, with the reason (paused, refused downgrade): listed, never
    /// silently skipped.
    pub left_out: Vec<(ClusterId, String)>,
}

/// Why a step cannot be prepared.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    /// A cluster does not satisfy the release's rules: the whole ring waits (no PR).
    #[error("ring `{ring}` is blocked by cluster `{cluster}`: {reason}")]
    Blocked {
        /// Ring.
        ring: String,
        /// Cluster.
        cluster: ClusterId,
        /// Why.
        reason: String,
    },
    /// A file an edit needs does not exist on the base branch.
    #[error("cluster `{cluster}`: `{file}` does not exist on the base branch ({component})")]
    MissingFile {
        /// Cluster.
        cluster: ClusterId,
        /// File.
        file: String,
        /// What was to be edited.
        component: Component,
    },
    /// The YAML edit was refused.
    #[error("cluster `{cluster}`: {file}: {error}")]
    Yaml {
        /// Cluster.
        cluster: ClusterId,
        /// File.
        file: String,
        /// Why.
        error: EditError,
    },
    /// The regex edit was refused.
    #[error("cluster `{cluster}`: {file}: {error}")]
    Regex {
        /// Cluster.
        cluster: ClusterId,
        /// File.
        file: String,
        /// Why.
        error: RegexEditError,
    },
    /// A path template did not give a safe path, or a YAML path/regex in the ring file is invalid.
    #[error("{0}")]
    Rule(String),
    /// Reading the base tree failed (or hit a symlink).
    #[error("cluster `{cluster}`: {error}")]
    Read {
        /// Cluster.
        cluster: ClusterId,
        /// Why.
        error: TreeError,
    },
    /// A file is not UTF-8.
    #[error("cluster `{cluster}`: `{file}` is not UTF-8 text")]
    NotText {
        /// Cluster.
        cluster: ClusterId,
        /// File.
        file: String,
    },
}

/// The ring's next step from the registry as it stands: for every cluster its first remaining
/// step (so a laggard catches up over the following steps while the others are done).
pub fn next_ring_step<'a>(
    config: &'a Config,
    release: &Release,
    ring_index: usize,
) -> Result<RingStep<'a>, ChangeError> {
    let ring_name = config
        .ring_set
        .rings
        .get(ring_index)
        .map(|r| r.name.to_string())
        .unwrap_or_default();
    let mut step = RingStep::default();
    for cluster in config.ring_clusters(ring_index) {
        let s = cluster_steps(release, cluster);
        match s.blocked {
            Some(b) if b.blocks_ring => {
                return Err(ChangeError::Blocked {
                    ring: ring_name,
                    cluster: cluster.id.clone(),
                    reason: b.reason,
                });
            }
            Some(b) => step.left_out.push((cluster.id.clone(), b.reason)),
            None => {
                if let Some(first) = s.steps.into_iter().next() {
                    step.clusters.push(ClusterStep {
                        cluster,
                        changes: first,
                    });
                }
            }
        }
    }
    Ok(step)
}

/// How a planned edit finds its value.
#[derive(Debug, Clone)]
pub enum Locator {
    /// A YAML scalar at a path.
    Yaml(YamlPath),
    /// The `version` group of a regex.
    Regex(Regex),
}

/// One value to write in one file.
#[derive(Debug, Clone)]
pub struct PlannedEdit {
    /// Whose.
    pub cluster: ClusterId,
    /// What.
    pub component: Component,
    /// Where.
    pub file: String,
    /// How to find it.
    pub locator: Locator,
    /// The version to write.
    pub to: String,
    /// The `edits:` rule it comes from (an index into `config.ring_set.edits`); `None` for the
    /// cluster's registry entry.
    pub rule: Option<usize>,
}

/// An edit as applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedEdit {
    /// Whose.
    pub cluster: ClusterId,
    /// What.
    pub component: Component,
    /// Where.
    pub file: String,
    /// The value found in the file.
    pub from: String,
    /// The value written.
    pub to: String,
}

/// Every edit of a step: the registry entry of each cluster, and every `edits:` rule that
/// matches the cluster and the component.
pub fn planned_edits(
    config: &Config,
    step: &RingStep<'_>,
) -> Result<Vec<PlannedEdit>, ChangeError> {
    let locators = rule_locators(config);
    let mut out = Vec::new();
    for cs in &step.clusters {
        for change in &cs.changes {
            push_change_edits(config, &locators, cs.cluster, change, &mut out);
        }
    }
    out.into_iter()
        .map(|e| e.map_err(|e| ChangeError::Rule(e.message)))
        .collect()
}

/// The locator of every `edits:` rule, in rule order, each regex compiled once (a step reuses
/// it for every cluster). An invalid regex is an error only where its rule applies.
pub fn rule_locators(config: &Config) -> Vec<Result<Locator, String>> {
    config
        .ring_set
        .edits
        .iter()
        .map(|rule| match &rule.locator {
            EditLocator::YamlPath(p) => Ok(Locator::Yaml(p.clone())),
            EditLocator::Regex(r) => Regex::new(r)
                .map(Locator::Regex)
                .map_err(|e| format!("edit rule regex: {e}")),
        })
        .collect()
}

/// An `edits:` rule that gives no edit for a cluster: its file template does not render (a
/// missing field, a value that cannot be a path component) or its regex is invalid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    /// The rule (an index into `config.ring_set.edits`).
    pub rule: usize,
    /// Why.
    pub message: String,
}

/// The edits of one change of one cluster, appended to `out`: its registry entry first, then
/// every `edits:` rule whose component and `when` match, in rule order. `locators` comes from
/// [`rule_locators`].
pub fn push_change_edits(
    config: &Config,
    locators: &[Result<Locator, String>],
    cluster: &Cluster,
    change: &Change,
    out: &mut Vec<Result<PlannedEdit, RuleError>>,
) {
    let Change { component, to, .. } = change;
    out.push(Ok(PlannedEdit {
        cluster: cluster.id.clone(),
        component: component.clone(),
        file: cluster.path.clone(),
        locator: Locator::Yaml(registry_path(component)),
        to: to.as_str().to_owned(),
        rule: None,
    }));
    for (index, rule) in config.ring_set.edits.iter().enumerate() {
        if rule.target != *component || !rule.when.as_ref().is_none_or(|w| w.matches(cluster)) {
            continue;
        }
        let edit = rule.file.render(cluster).and_then(|file| {
            let locator = match locators.get(index) {
                Some(Ok(l)) => l.clone(),
                Some(Err(e)) => return Err(e.clone()),
                None => return Err(format!("edit rule {index} has no locator")),
            };
            Ok(PlannedEdit {
                cluster: cluster.id.clone(),
                component: component.clone(),
                file,
                locator,
                to: to.as_str().to_owned(),
                rule: Some(index),
            })
        });
        out.push(edit.map_err(|message| RuleError {
            rule: index,
            message,
        }));
    }
}

/// Where a component's version is written in a registry entry.
pub fn registry_path(component: &Component) -> YamlPath {
    match component {
        Component::Kubernetes => YamlPath::keys(&["kubernetesVersion"]),
        Component::Addon(name) => YamlPath::keys(&["addons", name]),
        Component::Controller(name) => YamlPath::keys(&["controllers", name]),
        Component::Policy(name) => YamlPath::keys(&["policies", name]),
    }
}

/// Reads a file of the base tree: `None` when it does not exist.
pub type FileReader<'a> = dyn FnMut(&str) -> Result<Option<Vec<u8>>, TreeError> + 'a;

/// Changed files (path → new content) and the edits applied.
pub type EditedFiles = (BTreeMap<String, Vec<u8>>, Vec<AppliedEdit>);

/// The new contents of every changed file and the edits applied. `read` returns a file of the
/// base tree (`None` when missing). Any refusal aborts the whole step: nothing half-done.
pub fn apply_edits(
    edits: &[PlannedEdit],
    read: &mut FileReader<'_>,
) -> Result<EditedFiles, ChangeError> {
    let mut texts: BTreeMap<String, String> = BTreeMap::new();
    let mut originals: BTreeMap<String, String> = BTreeMap::new();
    let mut applied = Vec::new();
    for e in edits {
        if !texts.contains_key(&e.file) {
            let bytes = read(&e.file)
                .map_err(|error| ChangeError::Read {
                    cluster: e.cluster.clone(),
                    error,
                })?
                .ok_or_else(|| ChangeError::MissingFile {
                    cluster: e.cluster.clone(),
                    file: e.file.clone(),
                    component: e.component.clone(),
                })?;
            let text = String::from_utf8(bytes).map_err(|_| ChangeError::NotText {
                cluster: e.cluster.clone(),
                file: e.file.clone(),
            })?;
            originals.insert(e.file.clone(), text.clone());
            texts.insert(e.file.clone(), text);
        }
        let Some(text) = texts.get_mut(&e.file) else {
            continue;
        };
        let (old, new_text) = match &e.locator {
            Locator::Yaml(path) => {
                let r = yaml_edit::set_scalar(text, path, &e.to).map_err(|error| {
                    ChangeError::Yaml {
                        cluster: e.cluster.clone(),
                        file: e.file.clone(),
                        error,
                    }
                })?;
                (r.old, r.text)
            }
            Locator::Regex(re) => {
                let r = regex_edit::set_version(text, re, &e.to).map_err(|error| {
                    ChangeError::Regex {
                        cluster: e.cluster.clone(),
                        file: e.file.clone(),
                        error,
                    }
                })?;
                (r.old, r.text)
            }
        };
        *text = new_text;
        applied.push(AppliedEdit {
            cluster: e.cluster.clone(),
            component: e.component.clone(),
            file: e.file.clone(),
            from: old,
            to: e.to.clone(),
        });
    }
    let files = texts
        .into_iter()
        .filter(|(path, text)| originals.get(path) != Some(text))
        .map(|(p, t)| (p, t.into_bytes()))
        .collect();
    Ok((files, applied))
}

/// `Kubernetes 1.32 → 1.33`, `coredns → 1.11.4, vpc-cni 1.19.0 → 1.19.2`.
pub fn summary(step: &RingStep<'_>) -> String {
    let mut by_component: BTreeMap<&Component, (Vec<&str>, Vec<&str>)> = BTreeMap::new();
    for cs in &step.clusters {
        for ch in &cs.changes {
            let entry = by_component.entry(&ch.component).or_default();
            if !entry.0.contains(&ch.from.as_str()) {
                entry.0.push(ch.from.as_str());
            }
            if !entry.1.contains(&ch.to.as_str()) {
                entry.1.push(ch.to.as_str());
            }
        }
    }
    by_component
        .into_iter()
        .map(|(component, (froms, tos))| {
            let name = match component {
                Component::Kubernetes => "Kubernetes",
                Component::Addon(n) | Component::Controller(n) | Component::Policy(n) => n.as_str(),
            };
            match (froms.as_slice(), tos.as_slice()) {
                ([from], [to]) => format!("{name} {from} → {to}"),
                _ => format!("{name} → {}", tos.join(", ")),
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

//! Loading: files → raw structs → validated model, every problem collected with its position.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;

use crate::diag::{Diagnostics, Pos, Severity, did_you_mean};
use crate::duration::parse_duration;
use crate::glob::Glob;
use crate::ids::{ClusterId, Component, GateName, ReleaseName, RingName};
use crate::model::*;
use crate::raw::*;
use crate::schedule::CronSchedule;
use crate::version::{Version, VersionRange};
use crate::yaml::{parse_many, parse_one};

mod registry;
mod releases;
mod ringset;
mod settings;

pub use registry::{
    RegistryFile, RegistryFiles, read_registry, read_registry_from, read_registry_ref, redact_url,
    registry_label,
};
use registry::{coverage, fleet, membership};
use releases::releases;
use ringset::{observe_coverage, ring_set};
use settings::settings;

/// The API version every ringmaster file carries.
pub const API_VERSION: &str = "ringmaster/v1";
/// Default base branch.
pub const DEFAULT_BRANCH: &str = "main";
/// Default registry glob.
pub const DEFAULT_REGISTRY_GLOB: &str = "clusters/**/cluster.yaml";
/// Default time allowed for convergence after a merge.
pub const DEFAULT_CONVERGE_TIMEOUT_SECS: i64 = 30 * 60;
/// Default soak.
pub const DEFAULT_SOAK_SECS: i64 = 60 * 60;
/// Default reconcile interval.
pub const DEFAULT_RECONCILE_INTERVAL_SECS: i64 = 30;
/// Default API listen address (loopback only).
pub const DEFAULT_API_LISTEN: &str = "127.0.0.1:9464";

/// A loaded, validated configuration and the warnings found on the way.
#[derive(Debug)]
pub struct Loaded {
    /// The model.
    pub config: Config,
    /// Findings that did not prevent loading (empty rings, coverage gaps in `warn` mode).
    pub warnings: Diagnostics,
}

/// Load `ringmaster.yaml` at `config_path` and everything it points to. The fleet registry is
/// read from the GitOps repository's base branch through git2 (what is committed, not a
/// working copy). Returns every problem found when any is an error.
pub fn load(config_path: &Path) -> Result<Loaded, Diagnostics> {
    load_with(config_path, &mut |gitops| read_registry(gitops))
}

/// Only `ringmaster.yaml` (where the repository is, where ringmaster keeps its files).
pub fn load_settings(config_path: &Path) -> Result<Settings, Diagnostics> {
    match load_settings_collecting(config_path) {
        (Some(s), d) if !d.has_errors() => Ok(s),
        (_, d) => Err(d),
    }
}

fn load_settings_collecting(config_path: &Path) -> (Option<Settings>, Diagnostics) {
    let mut diags = Diagnostics::new();
    let settings_file = config_path.display().to_string();
    let text = match read_text(config_path) {
        Ok(t) => t,
        Err(msg) => {
            diags.error(&settings_file, Pos::FILE, msg);
            return (None, diags);
        }
    };
    let Some(raw) = parse_one::<RawSettings>(&settings_file, &text, &mut diags) else {
        return (None, diags);
    };
    let base_dir = config_path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let s = settings(&settings_file, config_path, &base_dir, raw, &mut diags);
    (s, diags)
}

/// [`load`], with the registry read by `registry` (the daemon reads it from its mirror).
pub fn load_with(
    config_path: &Path,
    registry: &mut dyn FnMut(&GitopsSettings) -> Result<RegistryFiles, String>,
) -> Result<Loaded, Diagnostics> {
    let (settings, mut diags) = load_settings_collecting(config_path);
    let Some(settings) = settings else {
        return Err(diags);
    };
    let settings_file = config_path.display().to_string();

    let rings_file = settings.rings_path.display().to_string();
    let ring_set = match read_text(&settings.rings_path) {
        Ok(text) => parse_one::<RawRingSet>(&rings_file, &text, &mut diags)
            .map(|raw| ring_set(&rings_file, raw, &mut diags)),
        Err(msg) => {
            diags.error(&rings_file, Pos::FILE, msg);
            None
        }
    };

    let releases = releases(&settings, &mut diags);
    if let Some(ring_set) = &ring_set {
        observe_coverage(&rings_file, ring_set, &releases, &mut diags);
    }

    let fleet = match registry(&settings.gitops) {
        Ok(files) => fleet(&settings.gitops, files, &mut diags),
        Err(msg) => {
            diags.error(&settings_file, Pos::FILE, msg);
            None
        }
    };

    let (Some(ring_set), Some(mut fleet)) = (ring_set, fleet) else {
        return Err(diags);
    };
    let membership = membership(&settings.gitops, &rings_file, &ring_set, &fleet, &mut diags);
    resolve_node_convergence(&ring_set, &mut fleet, &membership);
    coverage(&rings_file, &ring_set, &fleet, &membership, &mut diags);
    edit_paths(&rings_file, &ring_set, &fleet, &mut diags);
    unset_fields(&rings_file, &ring_set, &fleet, &mut diags);

    if diags.has_errors() {
        return Err(diags);
    }
    Ok(Loaded {
        config: Config {
            settings,
            ring_set,
            releases,
            fleet,
            membership,
        },
        warnings: diags,
    })
}

/// The secret files of `settings` that are not there (or not files), as errors at their key:
/// what `validate` adds to [`load`] on the machine the daemon runs on. [`load`] itself does not
/// check, so that a deployment's settings (secrets mounted only in the pod) load in CI.
pub fn missing_secret_files(settings: &Settings) -> Diagnostics {
    let file = settings.path.display().to_string();
    let mut diags = Diagnostics::new();
    for s in &settings.secret_files {
        if s.path.is_file() {
            continue;
        }
        let why = if s.path.exists() {
            "is not a file"
        } else {
            "does not exist"
        };
        diags.error_hint(
            &file,
            s.pos,
            format!("{} `{}` {why}", s.key, s.written),
            format!(
                "a relative path is read from the settings file's directory; create the file with the secret or use {}",
                s.alternative
            ),
        );
    }
    diags
}

/// Every edit rule's file rendered for every cluster it applies to: a registry value that
/// cannot be a path component (`..`, `a/b`) or a missing field fails here, in `validate`,
/// rather than when the ring's step is built.
fn edit_paths(file: &str, ring_set: &RingSet, fleet: &Fleet, diags: &mut Diagnostics) {
    for rule in &ring_set.edits {
        for c in &fleet.clusters {
            if !rule.when.as_ref().is_none_or(|w| w.matches(c)) {
                continue;
            }
            if let Err(msg) = rule.file.render(c) {
                diags.error_hint(
                    file,
                    rule.pos,
                    format!("edit rule for {}: {msg}", rule.target),
                    format!("fix the value in {} or narrow the rule's `when`", c.path),
                );
            }
        }
    }
}

/// A field of the organisation's own (`upgradeChannel`) that a selector, coverage list or edit
/// rule names but no registry entry has is almost always a misspelling: a warning at the rule,
/// suggesting the closest field the registry does have.
fn unset_fields(file: &str, ring_set: &RingSet, fleet: &Fleet, diags: &mut Diagnostics) {
    let mut used: Vec<(&str, Pos, String)> = Vec::new();
    fn extra(k: &FieldKey) -> Option<&str> {
        match k {
            FieldKey::Extra(name) => Some(name.as_str()),
            _ => None,
        }
    }
    for r in &ring_set.rings {
        for (k, _) in &r.selector.terms {
            if let Some(name) = extra(k) {
                used.push((name, r.pos, format!("ring `{}`'s selector", r.name)));
            }
        }
    }
    for k in &ring_set.coverage {
        if let Some(name) = extra(k) {
            used.push((name, Pos::FILE, "`coverage`".to_owned()));
        }
    }
    for rule in &ring_set.edits {
        let in_when = rule
            .when
            .iter()
            .flat_map(|w| w.terms.iter().map(|(k, _)| k));
        for k in in_when.chain(rule.file.fields()) {
            if let Some(name) = extra(k) {
                used.push((name, rule.pos, format!("the edit rule for {}", rule.target)));
            }
        }
    }
    if used.is_empty() {
        return;
    }
    let mut present: BTreeSet<&str> = BTreeSet::new();
    for c in &fleet.clusters {
        present.extend(c.extra.scalars().map(|(k, _)| k));
    }
    for (name, at, place) in used {
        if present.contains(name) {
            continue;
        }
        let msg = format!("{place} names registry field `{name}`, which no cluster has as a value");
        let hint =
            did_you_mean(name, present.iter().copied()).map(|s| format!("did you mean `{s}`?"));
        diags.push(Severity::Warning, file, at, msg, hint);
    }
}

fn read_text(path: &Path) -> Result<String, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    String::from_utf8(bytes).map_err(|_| format!("{} is not UTF-8 text", path.display()))
}

fn pos<T>(s: &S<T>) -> Pos {
    Pos::from_location(&s.referenced)
}

fn check_header(
    file: &str,
    api_version: &S<String>,
    kind: &S<String>,
    want_kind: &str,
    diags: &mut Diagnostics,
) {
    if api_version.value != API_VERSION {
        diags.error_hint(
            file,
            pos(api_version),
            format!("unsupported apiVersion `{}`", api_version.value),
            format!("write `apiVersion: {API_VERSION}`"),
        );
    }
    if kind.value != want_kind {
        diags.error_hint(
            file,
            pos(kind),
            format!("expected kind `{want_kind}`, found `{}`", kind.value),
            format!("this file must hold `kind: {want_kind}`"),
        );
    }
}

fn duration_or(
    file: &str,
    value: Option<&S<String>>,
    default_secs: i64,
    what: &str,
    diags: &mut Diagnostics,
) -> TimeDelta {
    match value {
        None => TimeDelta::seconds(default_secs),
        Some(v) => match parse_duration(&v.value) {
            Ok(d) => d,
            Err(msg) => {
                diags.error(file, pos(v), format!("invalid {what}: {msg}"));
                TimeDelta::seconds(default_secs)
            }
        },
    }
}

fn expand_home(base: &Path, p: &str) -> PathBuf {
    match p.strip_prefix("~/") {
        Some(rest) => {
            std::env::var_os("HOME").map_or_else(|| base.join(p), |h| PathBuf::from(h).join(rest))
        }
        None => base.join(p),
    }
}

/// `upgrade.nodes` (on a ring or a registry entry): `target` or `skew`.
fn node_convergence(file: &str, v: &S<String>, diags: &mut Diagnostics) -> Option<NodeConvergence> {
    let parsed = NodeConvergence::parse(&v.value);
    if parsed.is_none() {
        let msg = format!("upgrade.nodes `{}` must be `target` or `skew`", v.value);
        let hint = match did_you_mean(&v.value, NodeConvergence::NAMES) {
            Some(c) => format!("did you mean `{c}`?"),
            None => "`target`: every node at the target minor and Ready (the default); `skew`: \
                     kubelets within the skew policy, for node pools upgraded separately"
                .to_owned(),
        };
        diags.error_hint(file, pos(v), msg, hint);
    }
    parsed
}

/// Each cluster's [`Cluster::nodes`]: its registry entry's `upgrade.nodes`, else its ring's.
fn resolve_node_convergence(ring_set: &RingSet, fleet: &mut Fleet, membership: &[Vec<usize>]) {
    for (ring, members) in ring_set.rings.iter().zip(membership) {
        for &ci in members {
            if let Some(c) = fleet.clusters.get_mut(ci) {
                c.nodes = c.upgrade_nodes.unwrap_or(ring.nodes);
            }
        }
    }
}

fn version(file: &str, v: &S<String>, what: &str, diags: &mut Diagnostics) -> Option<Version> {
    match Version::parse(&v.value) {
        Ok(ver) => Some(ver),
        Err(msg) => {
            diags.error(file, pos(v), format!("invalid {what}: {msg}"));
            None
        }
    }
}

fn versions(
    file: &str,
    map: &BTreeMap<String, S<String>>,
    kind: &str,
    diags: &mut Diagnostics,
) -> BTreeMap<String, Version> {
    let mut out = BTreeMap::new();
    for (name, v) in map {
        if let Err(msg) = Component::check_item_name(kind, name) {
            diags.error(file, pos(v), msg);
            continue;
        }
        if let Some(ver) = version(file, v, &format!("{kind} `{name}` version"), diags) {
            out.insert(name.clone(), ver);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::settings::{is_loopback_http, is_scp_like};
    use super::*;

    #[test]
    fn recognises_url_forms() {
        assert!(is_scp_like("git@github.com:acme/gitops.git"));
        assert!(!is_scp_like("./gitops"));
        assert!(!is_scp_like("C:/x"));
        assert!(is_loopback_http("http://127.0.0.1:8080/api"));
        assert!(is_loopback_http("http://localhost/"));
        assert!(is_loopback_http("http://[::1]:9/"));
        assert!(!is_loopback_http("http://github.example.com/api"));
        assert!(!is_loopback_http("http://127.0.0.1.evil.com/"));
    }

    #[test]
    fn redacts_credentials_in_urls() {
        assert_eq!(
            redact_url("https://x-access-token:ghp_secret@github.com/acme/r.git"),
            "https://***@github.com/acme/r.git"
        );
        assert_eq!(
            redact_url("https://github.com/acme/r.git"),
            "https://github.com/acme/r.git"
        );
    }
}

//! `ringmaster validate`.

use std::process::ExitCode;

use std::collections::{HashMap, HashSet};

use serde_json::json;

use crate::cli::{Cli, Output};
use crate::output::{diagnostics_json, print_diagnostics};
use orchestrator::gitops::changes::{
    Locator, PlannedEdit, RuleError, push_change_edits, rule_locators,
};
use orchestrator::gitops::regex_edit::{self, RegexEditError};
use orchestrator::gitops::tree::TreeReader;
use orchestrator::gitops::yaml_edit::{self, EditError};
use policies::versions::cluster_steps;
use rings::load::registry_label;
use rings::model::{Config, EditRule, GitLocation};
use rings::{ClusterId, Component, Pos};

pub fn run(cli: &Cli) -> anyhow::Result<ExitCode> {
    // `load` does not look for secret files (a deployment's are mounted only in its pod);
    // `validate` runs where the daemon will and does.
    let loaded = rings::load(&cli.config).and_then(|loaded| {
        let missing = rings::load::missing_secret_files(&loaded.config.settings);
        if missing.has_errors() {
            let mut all = loaded.warnings;
            all.extend(missing);
            Err(all)
        } else {
            Ok(loaded)
        }
    });
    match loaded {
        Ok(loaded) => {
            let c = &loaded.config;
            let problems = edit_target_problems(c);
            if !problems.is_empty() {
                match cli.output {
                    Output::Table => {
                        let mut diags = loaded.warnings.clone();
                        for p in &problems {
                            diags.error(&p.source, p.pos, p.message.clone());
                        }
                        print_diagnostics(&diags);
                        eprintln!(
                            "{} invalid: {} edit{} cannot be made on {}@{} at {}",
                            cli.config.display(),
                            problems.len(),
                            if problems.len() == 1 { "" } else { "s" },
                            rings::load::redact_url(&c.settings.gitops.url),
                            c.settings.gitops.branch,
                            short(&c.fleet.commit)
                        );
                    }
                    Output::Json => {
                        let targets: Vec<_> =
                            problems.iter().map(EditTargetProblem::json).collect();
                        let v = json!({
                            "ok": false,
                            "editTargets": targets,
                            "diagnostics": diagnostics_json(&loaded.warnings),
                        });
                        println!("{}", serde_json::to_string_pretty(&v)?);
                    }
                }
                return Ok(ExitCode::from(1));
            }
            let summary = format!(
                "ok: {} clusters, {} rings, {} releases (registry {}@{} at {})",
                c.fleet.clusters.len(),
                c.ring_set.rings.len(),
                c.releases.len(),
                rings::load::redact_url(&c.settings.gitops.url),
                c.settings.gitops.branch,
                short(&c.fleet.commit),
            );
            match cli.output {
                Output::Table => {
                    print_diagnostics(&loaded.warnings);
                    println!("{summary}");
                }
                Output::Json => {
                    let v = json!({
                        "ok": true,
                        "clusters": c.fleet.clusters.len(),
                        "rings": c.ring_set.rings.len(),
                        "releases": c.releases.len(),
                        "registryCommit": c.fleet.commit,
                        "diagnostics": diagnostics_json(&loaded.warnings),
                    });
                    println!("{}", serde_json::to_string_pretty(&v)?);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(diags) => {
            match cli.output {
                Output::Table => {
                    print_diagnostics(&diags);
                    let errors = diags.errors().count();
                    let warnings = diags.warnings().count();
                    eprintln!(
                        "{} invalid: {errors} error{}, {warnings} warning{}",
                        cli.config.display(),
                        if errors == 1 { "" } else { "s" },
                        if warnings == 1 { "" } else { "s" }
                    );
                }
                Output::Json => {
                    let v = json!({ "ok": false, "diagnostics": diagnostics_json(&diags) });
                    println!("{}", serde_json::to_string_pretty(&v)?);
                }
            }
            Ok(ExitCode::from(1))
        }
    }
}

pub fn short(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}

/// Registries with fewer checks than this are checked on one thread (threads cost more than
/// they save); the same bar as the loader's parallel parse.
const PARALLEL_CHECK_MIN: usize = 512;

/// One edit the daemon would make that cannot be made on the base branch.
#[derive(Debug, Clone)]
struct EditTargetProblem {
    /// Where the edit is configured: the ring file at the rule, or the cluster's registry
    /// entry (no position).
    source: String,
    /// The rule's position in the ring file ([`Pos::FILE`] for a registry entry).
    pos: Pos,
    /// `rings.yaml:61:5` for an `edits:` rule; `None` for the registry entry.
    rule: Option<String>,
    /// The cluster.
    cluster: ClusterId,
    /// The file in the repository; `None` when the rule's template does not render.
    file: Option<String>,
    /// The first release (in file order) that makes this edit.
    release: String,
    /// The cluster's ring.
    ring: String,
    /// What the edit writes.
    component: Component,
    /// What is wrong, without the names above.
    problem: String,
    /// The whole line, as the table prints it.
    message: String,
}

impl EditTargetProblem {
    fn json(&self) -> serde_json::Value {
        json!({
            "rule": self.rule,
            "cluster": self.cluster.as_str(),
            "file": self.file,
            "release": self.release,
            "ring": self.ring,
            "component": self.component.to_string(),
            "problem": self.problem,
            "message": self.message,
        })
    }
}

/// An edit to check, with the first release and ring that make it.
struct Target<'c> {
    edit: PlannedEdit,
    release: &'c str,
    ring: &'c str,
}

/// A file of the base tree, read once however many edits point at it.
enum BaseFile {
    Text(String),
    Missing,
    NotText,
    Unreadable(String),
}

/// Every edit any step of any release would make, for every cluster of every ring (not only
/// the ring whose turn it is), checked against the base branch as the daemon will apply it:
/// the file exists and the locator finds exactly one value (a YAML scalar that can be set in
/// place, a regex that matches once). Every problem is returned, not only the first. Later
/// steps of a release (1.31 → 1.32 → 1.33) edit the same places, so each (rule, cluster,
/// component, file) is checked once, named by the first release and ring that edit it.
/// Paused and refused clusters have no step and are not checked. Only a local GitOps
/// repository is read (as the loader does).
fn edit_target_problems(c: &Config) -> Vec<EditTargetProblem> {
    let GitLocation::Local(path) = &c.settings.gitops.location else {
        return Vec::new();
    };
    let Ok(repo) = git2::Repository::open(path) else {
        return Vec::new();
    };
    let Some(tree) = git2::Oid::from_str(&c.fleet.commit)
        .ok()
        .and_then(|id| repo.find_commit(id).ok())
        .and_then(|commit| commit.tree().ok())
    else {
        return Vec::new();
    };
    let rings_file = c.settings.rings_path.display().to_string();
    let locators = rule_locators(c);
    let mut problems = Vec::new();

    // Every edit, once per (rule, cluster, component, file).
    let mut targets: Vec<Target<'_>> = Vec::new();
    let mut seen: HashSet<(Option<usize>, ClusterId, Component, String)> = HashSet::new();
    let mut unrendered: HashSet<(usize, ClusterId)> = HashSet::new();
    let mut edits = Vec::new();
    for release in &c.releases {
        for (index, ring) in c.ring_set.rings.iter().enumerate() {
            for cluster in c.ring_clusters(index) {
                let steps = cluster_steps(release, cluster);
                // Paused or refused: the cluster stays out of the release. A failed `requires`
                // blocks the ring but the cluster's edits are still the ones it will get.
                if steps.blocked.as_ref().is_some_and(|b| !b.blocks_ring) {
                    continue;
                }
                for change in steps.steps.iter().flatten() {
                    push_change_edits(c, &locators, cluster, change, &mut edits);
                }
                for edit in edits.drain(..) {
                    match edit {
                        Ok(edit) => {
                            let key = (
                                edit.rule,
                                edit.cluster.clone(),
                                edit.component.clone(),
                                edit.file.clone(),
                            );
                            if seen.insert(key) {
                                targets.push(Target {
                                    edit,
                                    release: release.name.as_str(),
                                    ring: ring.name.as_str(),
                                });
                            }
                        }
                        Err(RuleError { rule, message }) => {
                            if !unrendered.insert((rule, cluster.id.clone())) {
                                continue;
                            }
                            let Some(r) = c.ring_set.edits.get(rule) else {
                                continue;
                            };
                            let header = rule_header(r);
                            problems.push(EditTargetProblem {
                                source: rings_file.clone(),
                                pos: r.pos,
                                rule: Some(located(&rings_file, r.pos)),
                                cluster: cluster.id.clone(),
                                file: None,
                                release: release.name.to_string(),
                                ring: ring.name.to_string(),
                                component: r.target.clone(),
                                message: format!(
                                    "{header}: {message} (release `{}`, ring `{}`)",
                                    release.name, ring.name
                                ),
                                problem: message,
                            });
                        }
                    }
                }
            }
        }
    }

    // Each file read once.
    let mut reader = TreeReader::new(&repo, tree);
    let mut files: HashMap<&str, BaseFile> = HashMap::new();
    for t in &targets {
        if files.contains_key(t.edit.file.as_str()) {
            continue;
        }
        let file = match reader.read(&t.edit.file) {
            Ok(Some(bytes)) => String::from_utf8(bytes).map_or(BaseFile::NotText, BaseFile::Text),
            Ok(None) => BaseFile::Missing,
            Err(e) => BaseFile::Unreadable(e.to_string()),
        };
        files.insert(t.edit.file.as_str(), file);
    }

    // Each (file, locator, value) checked once: clusters may share a file.
    let mut checks: Vec<(&str, &Locator, &str)> = Vec::new();
    let mut check_of: HashMap<(&str, Option<usize>, &Component, &str), usize> = HashMap::new();
    let mut target_check: Vec<Option<usize>> = Vec::with_capacity(targets.len());
    for t in &targets {
        let e = &t.edit;
        let Some(BaseFile::Text(text)) = files.get(e.file.as_str()) else {
            target_check.push(None);
            continue;
        };
        let key = (e.file.as_str(), e.rule, &e.component, e.to.as_str());
        let next = checks.len();
        let i = *check_of.entry(key).or_insert(next);
        if i == next {
            checks.push((text.as_str(), &e.locator, e.to.as_str()));
        }
        target_check.push(Some(i));
    }
    let results = run_checks(&checks);

    let branch = &c.settings.gitops.branch;
    for (t, check) in targets.iter().zip(target_check) {
        // (problem, whether it is about the file itself rather than the value in it)
        let problem = match (files.get(t.edit.file.as_str()), check) {
            (Some(BaseFile::Missing), _) => Some((format!("does not exist on {branch}"), true)),
            (Some(BaseFile::NotText), _) => Some(("is not UTF-8 text".to_owned(), true)),
            (Some(BaseFile::Unreadable(e)), _) => Some((format!("cannot be read: {e}"), true)),
            (_, Some(i)) => results.get(i).cloned().flatten().map(|p| (p, false)),
            _ => None,
        };
        if let Some((problem, whole_file)) = problem {
            problems.push(target_problem(c, &rings_file, t, problem, whole_file));
        }
    }
    problems.sort_by(|a, b| {
        (&a.source, a.pos.line, a.pos.col, &a.message)
            .cmp(&(&b.source, b.pos.line, b.pos.col, &b.message))
    });
    problems
}

fn target_problem(
    c: &Config,
    rings_file: &str,
    t: &Target<'_>,
    problem: String,
    whole_file: bool,
) -> EditTargetProblem {
    let e = &t.edit;
    let rule = e.rule.and_then(|i| c.ring_set.edits.get(i));
    let (source, pos, header) = match rule {
        Some(r) => (rings_file.to_owned(), r.pos, rule_header(r)),
        None => (
            registry_label(&c.settings.gitops, &e.file),
            Pos::FILE,
            format!("registry entry ({})", e.component),
        ),
    };
    EditTargetProblem {
        rule: rule.map(|r| located(rings_file, r.pos)),
        message: format!(
            "{header}: cluster `{}`: file `{}`{} {problem} (release `{}`, ring `{}`)",
            e.cluster,
            e.file,
            if whole_file { "" } else { ":" },
            t.release,
            t.ring
        ),
        source,
        pos,
        cluster: e.cluster.clone(),
        file: Some(e.file.clone()),
        release: t.release.to_owned(),
        ring: t.ring.to_owned(),
        component: e.component.clone(),
        problem,
    }
}

/// `edit rule (addon/coredns → terraform/eks/{clusterId}.tfvars)`.
fn rule_header(rule: &EditRule) -> String {
    format!("edit rule ({} → {})", rule.target, rule.file.as_str())
}

/// `rings.yaml:61:5`, as diagnostics name a position.
fn located(file: &str, pos: Pos) -> String {
    format!("{file}:{}:{}", pos.line, pos.col)
}

/// Each check's problem (`None`: the edit can be made), in parallel for large fleets.
fn run_checks(checks: &[(&str, &Locator, &str)]) -> Vec<Option<String>> {
    let check = |&(text, locator, to): &(&str, &Locator, &str)| locator_problem(text, locator, to);
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(8);
    if threads < 2 || checks.len() < PARALLEL_CHECK_MIN {
        return checks.iter().map(check).collect();
    }
    let chunk = checks.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = checks
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(check).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| match h.join() {
                Ok(v) => v,
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    })
}

/// Why the daemon could not write `to` at `locator` in `text`, with the semantics it edits
/// with ([`yaml_edit::set_scalar`], [`regex_edit::set_version`]).
fn locator_problem(text: &str, locator: &Locator, to: &str) -> Option<String> {
    match locator {
        Locator::Yaml(path) => {
            let e = yaml_edit::set_scalar(text, path, to).err()?;
            Some(match e {
                EditError::NotFound { .. }
                | EditError::Ambiguous { .. }
                | EditError::NotAScalar { .. }
                | EditError::Unsupported { .. } => format!("yamlPath {e}"),
                EditError::Parse { .. }
                | EditError::NotPlainSafe { .. }
                | EditError::Verification { .. } => e.to_string(),
            })
        }
        Locator::Regex(re) => {
            let e = regex_edit::set_version(text, re, to).err()?;
            Some(match e {
                RegexEditError::NoMatch { .. } => {
                    "regex matches 0 times, must match exactly once".to_owned()
                }
                RegexEditError::Ambiguous { count, .. } => {
                    format!("regex matches {count} times, must match exactly once")
                }
                RegexEditError::NoVersionGroup | RegexEditError::NotText => e.to_string(),
            })
        }
    }
}

//! The fleet registry: read through git2 from the base branch, parsed, assigned to rings, checked for coverage.

#[allow(clippy::wildcard_imports)]
use super::*;
/// One file read from the registry: its path in the repository and its text.
#[derive(Debug, Clone)]
pub struct RegistryFile {
    /// Path inside the repository.
    pub path: String,
    /// Content.
    pub text: String,
}

/// What [`read_registry`] found on the base branch.
#[derive(Debug, Clone)]
pub struct RegistryFiles {
    /// The commit id of the branch head.
    pub commit: String,
    /// Matching files, sorted by path.
    pub files: Vec<RegistryFile>,
    /// Matching paths that are symlinks (never followed).
    pub symlinks: Vec<String>,
}

/// Read every registry file committed on the base branch of a local repository through git2.
pub fn read_registry(gitops: &GitopsSettings) -> Result<RegistryFiles, String> {
    let path = match &gitops.location {
        GitLocation::Local(p) => p,
        GitLocation::Remote(url) => {
            return Err(format!(
                "gitops.url `{}` is remote; reading a remote registry needs ringmaster's mirror, which `validate` and `plan` do not use yet: point gitops.url at a local clone",
                redact_url(url)
            ));
        }
    };
    let repo = git2::Repository::open(path).map_err(|e| {
        format!(
            "gitops.url `{}`: {} is not a git repository ({})",
            gitops.url,
            path.display(),
            e.message()
        )
    })?;
    read_registry_from(&repo, &gitops.branch, &gitops.registry, &gitops.url)
}

/// Read the registry from a branch of an open repository.
pub fn read_registry_from(
    repo: &git2::Repository,
    branch: &str,
    registry: &str,
    label: &str,
) -> Result<RegistryFiles, String> {
    read_registry_ref(
        repo,
        &format!("refs/heads/{branch}"),
        branch,
        registry,
        label,
    )
}

/// Read the registry from any reference (`refs/remotes/origin/main` in a mirror); `branch` is
/// the name used in messages.
pub fn read_registry_ref(
    repo: &git2::Repository,
    refname: &str,
    branch: &str,
    registry: &str,
    label: &str,
) -> Result<RegistryFiles, String> {
    let glob = Glob::new(registry)?;
    let reference = repo.find_reference(refname).map_err(|_| {
        let branches: Vec<String> = repo
            .branches(Some(git2::BranchType::Local))
            .map(|it| {
                it.filter_map(Result::ok)
                    .filter_map(|(b, _)| b.name().ok().flatten().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        format!(
            "branch `{branch}` does not exist in {label} (branches: {})",
            if branches.is_empty() {
                "none".to_owned()
            } else {
                branches.join(", ")
            }
        )
    })?;
    let commit = reference.peel_to_commit().map_err(|e| {
        format!(
            "branch `{branch}` of {label} does not point at a commit: {}",
            e.message()
        )
    })?;
    let tree = commit
        .tree()
        .map_err(|e| format!("cannot read the tree of {label}@{branch}: {}", e.message()))?;
    let mut found: Vec<(String, git2::Oid)> = Vec::new();
    let mut symlinks = Vec::new();
    let mut walk_error = None;
    tree.walk(git2::TreeWalkMode::PreOrder, |root, entry| {
        let Ok(name) = entry.name() else {
            return git2::TreeWalkResult::Ok;
        };
        let path = format!("{root}{name}");
        match entry.kind() {
            Some(git2::ObjectType::Tree) => {
                if glob.could_match_below(&path) {
                    git2::TreeWalkResult::Ok
                } else {
                    git2::TreeWalkResult::Skip
                }
            }
            Some(git2::ObjectType::Blob) if glob.matches(&path) => {
                if entry.filemode() == 0o120_000 {
                    symlinks.push(path);
                } else {
                    found.push((path, entry.id()));
                }
                git2::TreeWalkResult::Ok
            }
            _ => git2::TreeWalkResult::Ok,
        }
    })
    .map_err(|e| {
        walk_error = Some(e.message().to_owned());
        e.message().to_owned()
    })?;
    if let Some(e) = walk_error {
        return Err(e);
    }
    found.sort();
    let mut files = Vec::with_capacity(found.len());
    for (path, oid) in found {
        let blob = repo
            .find_blob(oid)
            .map_err(|e| format!("cannot read {label}@{branch}:{path}: {}", e.message()))?;
        let text = String::from_utf8(blob.content().to_vec())
            .map_err(|_| format!("{label}@{branch}:{path} is not UTF-8 text"))?;
        files.push(RegistryFile { path, text });
    }
    Ok(RegistryFiles {
        commit: commit.id().to_string(),
        files,
        symlinks,
    })
}

/// Hide any credentials embedded in a URL (`https://user:token@host/` → `https://***@host/`).
pub fn redact_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('@') {
            Some((creds, host)) if !creds.contains('/') => format!("{scheme}://***@{host}"),
            _ => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// How a registry file is named in messages: `<url>@<branch>:<path>`.
pub fn registry_label(gitops: &GitopsSettings, path: &str) -> String {
    format!("{}@{}:{path}", redact_url(&gitops.url), gitops.branch)
}

pub(super) fn fleet(
    gitops: &GitopsSettings,
    files: RegistryFiles,
    diags: &mut Diagnostics,
) -> Option<Fleet> {
    for s in &files.symlinks {
        diags.warning(
            &registry_label(gitops, s),
            Pos::FILE,
            "symlink ignored: registry symlinks are not followed",
        );
    }
    if files.files.is_empty() {
        diags.error(
            &format!("{}@{}", redact_url(&gitops.url), gitops.branch),
            Pos::FILE,
            format!(
                "no registry file matches `{}` on branch `{}`",
                gitops.registry, gitops.branch
            ),
        );
        return None;
    }
    let parsed = parse_clusters(gitops, &files.files);
    let mut clusters: Vec<Cluster> = Vec::with_capacity(files.files.len());
    let mut seen: HashMap<String, String> = HashMap::with_capacity(files.files.len());
    for (f, (c, found)) in files.files.iter().zip(parsed) {
        diags.extend(found);
        let Some(c) = c else { continue };
        if let Some(first) = seen.get(c.id.as_str()) {
            diags.error(
                &registry_label(gitops, &f.path),
                c.pos,
                format!("cluster id `{}` is also used by {first}", c.id),
            );
            continue;
        }
        seen.insert(c.id.as_str().to_owned(), f.path.clone());
        clusters.push(c);
    }
    clusters.sort_by(|a, b| a.id.cmp(&b.id));
    Some(Fleet {
        clusters,
        commit: files.commit,
    })
}

/// Registries below this size are parsed on one thread (threads cost more than they save).
const PARALLEL_PARSE_MIN_FILES: usize = 512;

/// Parse every registry file, in parallel over the available cores for large registries
/// (parsing dominates `plan` at 10,000 clusters). Results keep the order of `files`.
fn parse_clusters(
    gitops: &GitopsSettings,
    files: &[RegistryFile],
) -> Vec<(Option<Cluster>, Diagnostics)> {
    let parse = |f: &RegistryFile, strings: &mut Interner| {
        let mut d = Diagnostics::new();
        let label = registry_label(gitops, &f.path);
        let c = parse_one::<RawCluster>(&label, &f.text, &mut d)
            .and_then(|raw| cluster(&label, &f.path, raw, strings, &mut d));
        (c, d)
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(8);
    if threads < 2 || files.len() < PARALLEL_PARSE_MIN_FILES {
        let mut strings = Interner::default();
        return files.iter().map(|f| parse(f, &mut strings)).collect();
    }
    let chunk = files.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = files
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    let mut strings = Interner::default();
                    part.iter()
                        .map(|f| parse(f, &mut strings))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| match h.join() {
                Ok(v) => v,
                // A panic while parsing is a bug; surface it rather than lose clusters silently.
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    })
}

pub(super) fn cluster(
    file: &str,
    path: &str,
    raw: RawCluster,
    strings: &mut Interner,
    diags: &mut Diagnostics,
) -> Option<Cluster> {
    let before = diags.errors().count();
    for t in &raw.typos {
        diags.error_hint(
            file,
            pos(&t.key),
            format!(
                "unknown field `{}` is a misspelling of a field ringmaster reads (other fields of your own are kept)",
                t.key.value
            ),
            format!("did you mean `{}`?", t.suggestion),
        );
    }
    let typo_of = |field: &str| raw.typos.iter().any(|t| t.suggestion == field);
    let at = raw.cluster_id.as_ref().map_or(Pos::FILE, pos);
    let mut required = |field: &'static str, present: bool| {
        if !present && !typo_of(field) {
            diags.error(file, at, format!("missing field `{field}`"));
        }
    };
    required("clusterId", raw.cluster_id.is_some());
    required("provider", raw.provider.is_some());
    required("kubernetesVersion", raw.kubernetes_version.is_some());
    let id = raw.cluster_id.as_ref().and_then(|v| {
        ClusterId::new(&v.value)
            .map_err(|msg| diags.error(file, pos(v), msg))
            .ok()
    });
    let provider = raw.provider.as_ref().and_then(|p| {
        Provider::parse(&p.value).or_else(|| {
            let msg = format!("unknown provider `{}`", p.value);
            match did_you_mean(&p.value, Provider::NAMES) {
                Some(c) => diags.error_hint(file, pos(p), msg, format!("did you mean `{c}`?")),
                None => diags.error_hint(
                    file,
                    pos(p),
                    msg,
                    format!("use one of {}", Provider::NAMES.join(", ")),
                ),
            }
            None
        })
    });
    let kubernetes = raw
        .kubernetes_version
        .as_ref()
        .and_then(|k| version(file, k, "kubernetesVersion", diags));
    let addons = versions(file, &raw.addons, "addon", diags);
    let controllers = versions(file, &raw.controllers, "controller", diags);
    let policies = versions(file, &raw.policies, "policy", diags);
    let upgrade_ring = raw.upgrade_ring.as_ref().and_then(|r| {
        RingName::new(&r.value)
            .map_err(|msg| diags.error(file, pos(r), format!("upgradeRing: {msg}")))
            .ok()
    });
    let paused = match &raw.upgrade {
        Some(u) if u.value.paused => match u.value.reason.as_deref().map(str::trim) {
            Some(reason) if !reason.is_empty() => Some(reason.to_owned()),
            _ => {
                diags.error_hint(
                    file,
                    pos(u),
                    "a paused cluster must say why",
                    "add `reason: \"...\"` under `upgrade:`",
                );
                None
            }
        },
        _ => None,
    };
    let upgrade_nodes = raw
        .upgrade
        .as_ref()
        .and_then(|u| u.value.nodes.as_ref())
        .and_then(|n| node_convergence(file, n, diags));
    if diags.errors().count() > before {
        return None;
    }
    let id = id?;
    Some(Cluster {
        kube_context: raw.kube_context.unwrap_or_else(|| id.as_str().to_owned()),
        id,
        provider: provider?,
        service: raw.service,
        region: raw.region,
        environment: raw.environment,
        owner_team: raw.owner_team,
        criticality: raw.criticality,
        labels: raw.labels.into(),
        upgrade_ring,
        kubernetes: kubernetes?,
        addons: addons.into(),
        controllers: controllers.into(),
        policies: policies.into(),
        extra: ExtraFields::from_raw(raw.extra, strings),
        paused,
        upgrade_nodes,
        nodes: upgrade_nodes.unwrap_or_default(),
        path: path.to_owned(),
        pos: at,
    })
}

pub(super) fn membership(
    gitops: &GitopsSettings,
    rings_file: &str,
    ring_set: &RingSet,
    fleet: &Fleet,
    diags: &mut Diagnostics,
) -> Vec<Vec<usize>> {
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); ring_set.rings.len()];
    let by_name: HashMap<&str, usize> = ring_set
        .rings
        .iter()
        .enumerate()
        .map(|(i, r)| (r.name.as_str(), i))
        .collect();
    for (ci, c) in fleet.clusters.iter().enumerate() {
        let label = registry_label(gitops, &c.path);
        if let Some(explicit) = &c.upgrade_ring {
            match by_name.get(explicit.as_str()) {
                Some(ri) => members[*ri].push(ci),
                None => {
                    let msg = format!(
                        "cluster `{}` names upgradeRing `{explicit}`, which rings.yaml does not define",
                        c.id
                    );
                    match did_you_mean(explicit.as_str(), by_name.keys().copied()) {
                        Some(s) => {
                            diags.error_hint(&label, Pos::FILE, msg, format!("did you mean `{s}`?"))
                        }
                        None => diags.error(&label, Pos::FILE, msg),
                    }
                }
            }
            continue;
        }
        let matching: Vec<usize> = ring_set
            .rings
            .iter()
            .enumerate()
            .filter(|(_, r)| r.selector.matches(c))
            .map(|(i, _)| i)
            .collect();
        match matching.as_slice() {
            [] => diags.error_hint(
                &label,
                c.pos,
                format!(
                    "cluster `{}` is in no ring: no ring's selector matches it",
                    c.id
                ),
                "add a ring whose selector matches it, or set `upgradeRing:`",
            ),
            [one] => members[*one].push(ci),
            many => {
                let names: Vec<String> = many
                    .iter()
                    .map(|i| format!("`{}`", ring_set.rings[*i].name))
                    .collect();
                diags.error_hint(
                    &label,
                    c.pos,
                    format!(
                        "cluster `{}` is in {} rings: {}",
                        c.id,
                        many.len(),
                        names.join(", ")
                    ),
                    "narrow the selectors, or set `upgradeRing:` on the cluster",
                );
            }
        }
    }
    for (r, m) in ring_set.rings.iter().zip(&members) {
        if m.is_empty() {
            diags.warning(
                rings_file,
                r.pos,
                format!("ring `{}` has no clusters", r.name),
            );
        }
    }
    members
}

pub(super) fn coverage(
    rings_file: &str,
    ring_set: &RingSet,
    fleet: &Fleet,
    membership: &[Vec<usize>],
    diags: &mut Diagnostics,
) {
    if ring_set.coverage.is_empty() {
        return;
    }
    let severity = match ring_set.coverage_mode {
        CoverageMode::Warn => Severity::Warning,
        CoverageMode::Error => Severity::Error,
    };
    let combo = |c: &Cluster| -> Vec<String> {
        ring_set
            .coverage
            .iter()
            .map(|k| {
                k.value(c)
                    .map_or_else(|| "(unset)".to_owned(), |v| v.into_owned())
            })
            .collect()
    };
    let mut seen_combos: BTreeSet<Vec<String>> = BTreeSet::new();
    let mut seen_values: Vec<BTreeSet<String>> = vec![BTreeSet::new(); ring_set.coverage.len()];
    for (ri, ring) in ring_set.rings.iter().enumerate() {
        let mut new_combos: BTreeMap<Vec<String>, Vec<&str>> = BTreeMap::new();
        let clusters: Vec<&Cluster> = membership[ri]
            .iter()
            .filter_map(|i| fleet.clusters.get(*i))
            .collect();
        for c in &clusters {
            let k = combo(c);
            if ri > 0 && !seen_combos.contains(&k) {
                new_combos.entry(k).or_default().push(c.id.as_str());
            }
        }
        for (k, ids) in new_combos {
            let desc: Vec<String> = ring_set
                .coverage
                .iter()
                .zip(&k)
                .map(|(f, v)| format!("{f}={v}"))
                .collect();
            let unseen: Vec<String> = ring_set
                .coverage
                .iter()
                .zip(&k)
                .enumerate()
                .filter(|(i, _)| !seen_values[*i].contains(&k[*i]))
                .map(|(_, (f, v))| format!("{f}={v}"))
                .collect();
            let why = if unseen.is_empty() {
                "no earlier ring has that combination".to_owned()
            } else {
                format!("no earlier ring has a cluster with {}", unseen.join(" or "))
            };
            diags.push(
                severity,
                rings_file,
                ring.pos,
                format!(
                    "coverage: ring `{}` has {} ({}); {why}",
                    ring.name,
                    desc.join(", "),
                    ids.join(", ")
                ),
                None,
            );
        }
        for c in &clusters {
            let k = combo(c);
            for (i, v) in k.iter().enumerate() {
                seen_values[i].insert(v.clone());
            }
            seen_combos.insert(k);
        }
    }
}

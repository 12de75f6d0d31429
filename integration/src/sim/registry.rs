//! The simulator's view of the GitOps repository: what each cluster should run, read from the
//! base branch's committed registry with git2 (never a working copy).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use rings::Version;
use rings::raw::RawCluster;

/// What one registry entry says a cluster should run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Desired {
    /// `kubernetesVersion`.
    pub kubernetes: Version,
    /// Add-on → version, exactly as written.
    pub addons: BTreeMap<String, String>,
    /// Policy bundle → version, exactly as written.
    pub policies: BTreeMap<String, String>,
}

/// One registry entry.
#[derive(Debug, Clone)]
pub(super) struct Entry {
    /// `clusterId`.
    pub id: String,
    /// `kubeContext`, when it differs from the id.
    pub kube_context: Option<String>,
    /// `provider` (`aws`, `azure`, ...).
    pub provider: String,
    /// `service` (`eks`, `aks`, ...).
    pub service: Option<String>,
    /// The versions.
    pub desired: Desired,
    /// The registry file's path in the repository.
    pub path: String,
}

/// What a poll of the base branch found.
#[derive(Debug)]
pub(super) enum Polled {
    /// The head did not move.
    Unchanged,
    /// The head moved to this commit; its registry, or why it cannot be read.
    Changed(git2::Oid, Result<Vec<Entry>, String>),
}

/// The GitOps repository, kept open between polls.
#[derive(Debug)]
pub(super) struct Source {
    path: PathBuf,
    branch: String,
    glob: String,
    repo: Mutex<RepoCell>,
}

/// `git2::Repository` is not `Debug`.
struct RepoCell(git2::Repository);

impl std::fmt::Debug for RepoCell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Repository").field(&self.0.path()).finish()
    }
}

impl Source {
    /// Opens the repository.
    pub fn open(path: &Path, branch: &str, glob: &str) -> Result<Source, String> {
        let repo = git2::Repository::open(path)
            .map_err(|e| format!("{}: not a git repository ({})", path.display(), e.message()))?;
        Ok(Source {
            path: path.to_path_buf(),
            branch: branch.to_owned(),
            glob: glob.to_owned(),
            repo: Mutex::new(RepoCell(repo)),
        })
    }

    fn refname(&self) -> String {
        format!("refs/heads/{}", self.branch)
    }

    /// Reads the registry at the branch head: the commit and the entries, sorted by id.
    pub fn read(&self) -> Result<(git2::Oid, Vec<Entry>), String> {
        let cell = self.repo.lock().unwrap_or_else(PoisonError::into_inner);
        let label = self.path.display().to_string();
        let files = rings::load::read_registry_ref(
            &cell.0,
            &self.refname(),
            &self.branch,
            &self.glob,
            &label,
        )?;
        let oid = git2::Oid::from_str(&files.commit)
            .map_err(|e| format!("{label}@{}: {}", self.branch, e.message()))?;
        let mut entries: Vec<Entry> = Vec::with_capacity(files.files.len());
        for f in &files.files {
            let where_ = format!("{label}@{}:{}", self.branch, f.path);
            let entry = parse(&where_, &f.path, &f.text)?;
            if let Some(first) = entries.iter().find(|e| e.id == entry.id) {
                return Err(format!(
                    "{where_}: cluster id `{}` is also used by {}",
                    entry.id, first.path
                ));
            }
            entries.push(entry);
        }
        entries.sort_by(|a, b| a.id.cmp(&b.id));
        Ok((oid, entries))
    }

    /// Reads the head; re-reads the registry only when the head moved from `last`.
    pub fn poll(&self, last: git2::Oid) -> Result<Polled, String> {
        let head = {
            let cell = self.repo.lock().unwrap_or_else(PoisonError::into_inner);
            cell.0.refname_to_id(&self.refname()).map_err(|e| {
                format!(
                    "{}: cannot read branch `{}`: {}",
                    self.path.display(),
                    self.branch,
                    e.message()
                )
            })?
        };
        if head == last {
            return Ok(Polled::Unchanged);
        }
        Ok(Polled::Changed(
            head,
            self.read().map(|(_, entries)| entries),
        ))
    }
}

/// Parses one registry file with ringmaster's own raw schema.
fn parse(where_: &str, path: &str, text: &str) -> Result<Entry, String> {
    let raw: RawCluster = serde_saphyr::from_str(text).map_err(|e| format!("{where_}: {e}"))?;
    let field = |v: &Option<rings::raw::S<String>>, name: &str| {
        v.as_ref()
            .map(|v| v.value.trim().to_owned())
            .ok_or_else(|| format!("{where_}: missing field `{name}`"))
    };
    let kubernetes = Version::parse(&field(&raw.kubernetes_version, "kubernetesVersion")?)
        .map_err(|e| format!("{where_}: kubernetesVersion: {e}"))?;
    let versions = |m: &BTreeMap<String, rings::raw::S<String>>| -> BTreeMap<String, String> {
        m.iter()
            .map(|(k, v)| (k.clone(), v.value.trim().to_owned()))
            .collect()
    };
    let id = field(&raw.cluster_id, "clusterId")?;
    rings::ClusterId::new(&id).map_err(|e| format!("{where_}: clusterId: {e}"))?;
    Ok(Entry {
        kube_context: raw.kube_context.filter(|c| *c != id),
        id,
        provider: field(&raw.provider, "provider")?,
        service: raw.service,
        desired: Desired {
            kubernetes,
            // A controller runs as a workload like an add-on; the simulator keeps one map.
            addons: versions(&raw.addons)
                .into_iter()
                .chain(versions(&raw.controllers))
                .collect(),
            policies: versions(&raw.policies),
        },
        path: path.to_owned(),
    })
}

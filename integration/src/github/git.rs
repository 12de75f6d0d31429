//! The git side of the fake: refs are read from, and merges written to, a real repository.
//!
//! Nothing is cached: every call opens the repository, so a `git push` to it between two
//! requests is seen by the next one, as on GitHub.

use std::path::Path;

use chrono::{DateTime, Utc};
use git2::{Commit, Oid, Repository, Signature, Sort};

/// Who GitHub says committed a merge.
const GITHUB_COMMITTER: (&str, &str) = ("GitHub", "noreply@github.com");

/// A person and an instant, as in a commit.
#[derive(Debug, Clone)]
pub(crate) struct Person {
    pub name: String,
    pub email: String,
    pub date: DateTime<Utc>,
}

/// What the branch and commit endpoints show of a commit.
#[derive(Debug, Clone)]
pub(crate) struct CommitInfo {
    pub sha: String,
    pub tree: String,
    pub message: String,
    pub author: Person,
    pub committer: Person,
    pub parents: Vec<String>,
}

/// How a pull request is merged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MergeMethod {
    /// A merge commit with the base and head as parents.
    Merge,
    /// One commit on the base with the merged tree.
    Squash,
    /// Each head commit replayed onto the base.
    Rebase,
}

impl MergeMethod {
    /// From GitHub's `merge_method` field.
    pub fn parse(s: &str) -> Option<MergeMethod> {
        match s {
            "merge" => Some(MergeMethod::Merge),
            "squash" => Some(MergeMethod::Squash),
            "rebase" => Some(MergeMethod::Rebase),
            _ => None,
        }
    }
}

/// Why a merge did not happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MergeError {
    /// The head does not merge cleanly into the base.
    Conflict,
    /// The base branch moved while the merge was being built.
    BaseMoved,
    /// Anything else git reported.
    Git(String),
}

impl From<git2::Error> for MergeError {
    fn from(e: git2::Error) -> Self {
        MergeError::Git(e.message().to_string())
    }
}

/// One merge to perform.
#[derive(Debug, Clone)]
pub(crate) struct MergeSpec<'a> {
    pub base_branch: &'a str,
    pub base_sha: &'a str,
    pub head_sha: &'a str,
    pub method: MergeMethod,
    /// The commit message (merge and squash).
    pub message: &'a str,
    /// Who merges: the author of merge and squash commits.
    pub actor: &'a str,
}

fn open(dir: &Path) -> Option<Repository> {
    Repository::open(dir).ok()
}

/// The commit a branch points to.
pub(crate) fn branch_sha(dir: &Path, branch: &str) -> Option<String> {
    let repo = open(dir)?;
    let reference = repo.find_reference(&format!("refs/heads/{branch}")).ok()?;
    let commit = reference.peel_to_commit().ok()?;
    Some(commit.id().to_string())
}

/// Branches whose name starts with `prefix`, with their commits, sorted by name.
pub(crate) fn branches_with_prefix(dir: &Path, prefix: &str) -> Vec<(String, String)> {
    let Some(repo) = open(dir) else {
        return Vec::new();
    };
    let Ok(refs) = repo.references_glob("refs/heads/*") else {
        return Vec::new();
    };
    let mut out: Vec<(String, String)> = refs
        .flatten()
        .filter_map(|r| {
            let name = r.name().ok()?.strip_prefix("refs/heads/")?.to_string();
            let sha = r.peel_to_commit().ok()?.id().to_string();
            name.starts_with(prefix).then_some((name, sha))
        })
        .collect();
    out.sort();
    out
}

/// A commit from a full SHA, a branch, a tag, `heads/<branch>`, or an abbreviated SHA.
pub(crate) fn resolve_commit(dir: &Path, reference: &str) -> Option<String> {
    let repo = open(dir)?;
    if reference.len() == 40
        && let Ok(oid) = Oid::from_str(reference)
        && repo.find_commit(oid).is_ok()
    {
        return Some(oid.to_string());
    }
    for candidate in [
        format!("refs/heads/{reference}"),
        format!("refs/tags/{reference}"),
        format!("refs/{reference}"),
    ] {
        if let Ok(r) = repo.find_reference(&candidate)
            && let Ok(c) = r.peel_to_commit()
        {
            return Some(c.id().to_string());
        }
    }
    if reference.len() >= 7 && reference.chars().all(|c| c.is_ascii_hexdigit()) {
        let object = repo.revparse_single(reference).ok()?;
        return object.peel_to_commit().ok().map(|c| c.id().to_string());
    }
    None
}

fn person(sig: &Signature<'_>) -> Person {
    Person {
        name: sig.name().unwrap_or_default().to_string(),
        email: sig.email().unwrap_or_default().to_string(),
        date: DateTime::from_timestamp(sig.when().seconds(), 0).unwrap_or_default(),
    }
}

/// A commit's metadata.
pub(crate) fn commit_info(dir: &Path, sha: &str) -> Option<CommitInfo> {
    let repo = open(dir)?;
    let commit = repo.find_commit(Oid::from_str(sha).ok()?).ok()?;
    Some(CommitInfo {
        sha: commit.id().to_string(),
        tree: commit.tree_id().to_string(),
        message: commit.message().unwrap_or_default().to_string(),
        author: person(&commit.author()),
        committer: person(&commit.committer()),
        parents: commit.parent_ids().map(|p| p.to_string()).collect(),
    })
}

/// Commits reachable from `head` and not from `base` (what a pull request would merge).
pub(crate) fn commits_ahead(dir: &Path, base: &str, head: &str) -> Option<usize> {
    let repo = open(dir)?;
    let mut walk = repo.revwalk().ok()?;
    walk.push(Oid::from_str(head).ok()?).ok()?;
    walk.hide(Oid::from_str(base).ok()?).ok()?;
    Some(walk.count())
}

/// Whether `head` merges into `base` without conflicts.
pub(crate) fn mergeable(dir: &Path, base: &str, head: &str) -> Option<bool> {
    let repo = open(dir)?;
    let base = repo.find_commit(Oid::from_str(base).ok()?).ok()?;
    let head = repo.find_commit(Oid::from_str(head).ok()?).ok()?;
    let index = repo.merge_commits(&base, &head, None).ok()?;
    Some(!index.has_conflicts())
}

fn merged_tree<'r>(
    repo: &'r Repository,
    base: &Commit<'_>,
    head: &Commit<'_>,
) -> Result<git2::Tree<'r>, MergeError> {
    let mut index = repo.merge_commits(base, head, None)?;
    if index.has_conflicts() {
        return Err(MergeError::Conflict);
    }
    let oid = index.write_tree_to(repo)?;
    Ok(repo.find_tree(oid)?)
}

/// Replays every commit of `base..head` onto `base`, keeping authors and messages.
fn rebase(repo: &Repository, base: &Commit<'_>, head: &Commit<'_>) -> Result<Oid, MergeError> {
    let mut walk = repo.revwalk()?;
    walk.set_sorting(Sort::TOPOLOGICAL | Sort::REVERSE)?;
    walk.push(head.id())?;
    walk.hide(base.id())?;
    let committer = Signature::now(GITHUB_COMMITTER.0, GITHUB_COMMITTER.1)?;
    let mut onto = base.clone();
    for oid in walk {
        let commit = repo.find_commit(oid?)?;
        if commit.parent_count() > 1 {
            // GitHub refuses to rebase a branch containing merge commits.
            return Err(MergeError::Conflict);
        }
        let mut index = repo.cherrypick_commit(&commit, &onto, 0, None)?;
        if index.has_conflicts() {
            return Err(MergeError::Conflict);
        }
        let tree = repo.find_tree(index.write_tree_to(repo)?)?;
        let message = commit.message().unwrap_or_default();
        let new = repo.commit(None, &commit.author(), &committer, message, &tree, &[&onto])?;
        onto = repo.find_commit(new)?;
    }
    Ok(onto.id())
}

/// Performs a merge and moves the base branch, only if it still points to `base_sha`.
/// Returns the new base tip.
pub(crate) fn merge(dir: &Path, spec: &MergeSpec<'_>) -> Result<String, MergeError> {
    let repo = Repository::open(dir)?;
    let base = repo.find_commit(Oid::from_str(spec.base_sha)?)?;
    let head = repo.find_commit(Oid::from_str(spec.head_sha)?)?;
    let author = Signature::now(
        spec.actor,
        &format!("{}@users.noreply.github.com", spec.actor),
    )?;
    let committer = Signature::now(GITHUB_COMMITTER.0, GITHUB_COMMITTER.1)?;
    let new = match spec.method {
        MergeMethod::Merge => {
            let tree = merged_tree(&repo, &base, &head)?;
            repo.commit(
                None,
                &author,
                &committer,
                spec.message,
                &tree,
                &[&base, &head],
            )?
        }
        MergeMethod::Squash => {
            let tree = merged_tree(&repo, &base, &head)?;
            repo.commit(None, &author, &committer, spec.message, &tree, &[&base])?
        }
        MergeMethod::Rebase => rebase(&repo, &base, &head)?,
    };
    let refname = format!("refs/heads/{}", spec.base_branch);
    repo.reference_matching(&refname, new, true, base.id(), "merge pull request")
        .map_err(|e| {
            if e.code() == git2::ErrorCode::Modified || e.code() == git2::ErrorCode::Locked {
                MergeError::BaseMoved
            } else {
                MergeError::from(e)
            }
        })?;
    Ok(new.to_string())
}

//! The GitOps change engine: one ring step of a release becomes one commit on the branch
//! `ringmaster/<rollout>/<ring>/<step>`, built in memory on the base branch head, whose diff holds
//! only the changed version values.
//!
//! [`GitOps`] is what the daemon and the tests use; [`MirrorGitOps`] implements it over a bare
//! mirror of the GitOps repository. The pure parts (which values change, format-preserving
//! edits) are in [`changes`], [`yaml_edit`] and [`regex_edit`]; trees and diffs in [`tree`].

pub mod changes;
pub mod mirror;
pub mod regex_edit;
pub mod tree;
pub mod yaml_edit;

use chrono::{DateTime, Utc};
use git2::{Oid, Repository, Signature, Time};
use rings::model::{Config, Release};

use changes::{AppliedEdit, ChangeError, apply_edits, next_ring_step, planned_edits, summary};
use mirror::{Mirror, MirrorError};
use tree::TreeError;

/// Errors of the engine.
#[derive(Debug, thiserror::Error)]
pub enum GitOpsError {
    /// Fetch/push/mirror problem.
    #[error(transparent)]
    Mirror(#[from] MirrorError),
    /// The step cannot be built (blocked ring, missing file, refused edit).
    #[error(transparent)]
    Change(#[from] ChangeError),
    /// Writing the tree failed.
    #[error(transparent)]
    Tree(#[from] TreeError),
    /// libgit2 failed on a local object.
    #[error("git: {0}")]
    Git(#[from] git2::Error),
    /// The configuration was loaded from another commit than the base the step is built on.
    #[error(
        "the registry was read at {loaded} but the base branch is at {base}; reload before building the step"
    )]
    StaleRegistry {
        /// The commit the registry came from.
        loaded: String,
        /// The base commit.
        base: String,
    },
    /// The ring index is out of range.
    #[error("no ring number {0}")]
    NoSuchRing(usize),
}

/// What to build: release `release` in ring number `ring_index` (0-based), step `step` (1-based).
#[derive(Debug, Clone, Copy)]
pub struct StepRequest<'a> {
    /// The loaded configuration (registry read at the base commit).
    pub config: &'a Config,
    /// The release (the rollout).
    pub release: &'a Release,
    /// Index of the ring in `config.ring_set.rings`.
    pub ring_index: usize,
    /// Step number within the ring, from 1.
    pub step: u32,
    /// Commit time (from the daemon's clock).
    pub time: DateTime<Utc>,
}

/// A step commit, built but not pushed.
#[derive(Debug, Clone)]
pub struct PreparedStep {
    /// `ringmaster/<rollout>/<ring>/<step>`.
    pub branch: String,
    /// The base commit it sits on.
    pub base: Oid,
    /// The commit.
    pub commit: Oid,
    /// Its tree (the same inputs always give the same tree).
    pub tree: Oid,
    /// The first line of the commit message.
    pub title: String,
    /// The whole message.
    pub message: String,
    /// Every value changed.
    pub edits: Vec<AppliedEdit>,
    /// Clusters of the ring that do not move, with the reason.
    pub left_out: Vec<(String, String)>,
}

/// The outcome of [`GitOps::publish`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Publication {
    /// Nothing in the ring needs to change: no commit, no branch.
    NothingToChange,
    /// The remote branch already holds this step on the current base.
    UpToDate {
        /// Its head.
        commit: Oid,
    },
    /// The branch was (re)generated on the current base and pushed.
    Pushed {
        /// The new head.
        commit: Oid,
        /// The head it replaced, if any.
        replaced: Option<Oid>,
    },
}

/// The branch of a ring step.
pub fn branch_name(rollout: &str, ring: &str, step: u32) -> String {
    format!("{}{rollout}/{ring}/{step}", mirror::BRANCH_PREFIX)
}

/// The Git side of ringmaster, as the daemon sees it.
pub trait GitOps {
    /// Fetch the base branch and return its head (every pass).
    fn refresh(&mut self) -> Result<Oid, GitOpsError>;
    /// Fetch every branch, ring branches too, and return the base branch head: before
    /// [`GitOps::remote_branch`] is asked about a ring branch.
    fn refresh_all(&mut self) -> Result<Oid, GitOpsError> {
        self.refresh()
    }
    /// Build the commit of a step on `base` (in the object database only; no ref moves).
    /// `None` when nothing needs to change.
    fn prepare(
        &self,
        base: Oid,
        request: &StepRequest<'_>,
    ) -> Result<Option<PreparedStep>, GitOpsError>;
    /// The remote's head of a branch, as last seen.
    fn remote_branch(&self, branch: &str) -> Result<Option<Oid>, GitOpsError>;
    /// Push `commit` to `branch` if the remote still has it at `expected`.
    fn push(&self, branch: &str, commit: Oid, expected: Option<Oid>) -> Result<(), GitOpsError>;
    /// The unified diff of a commit against `base`.
    fn diff(&self, base: Oid, commit: Oid) -> Result<String, GitOpsError>;

    /// Fetch, build the step on the base head and push it unless the remote already has it
    /// there. `last_pushed` is the head ringmaster last pushed to this branch (the lease).
    fn publish(
        &mut self,
        request: &StepRequest<'_>,
        last_pushed: Option<Oid>,
    ) -> Result<(Publication, Option<PreparedStep>), GitOpsError> {
        let base = self.refresh_all()?;
        let Some(step) = self.prepare(base, request)? else {
            return Ok((Publication::NothingToChange, None));
        };
        let remote = self.remote_branch(&step.branch)?;
        if let Some(current) = remote
            && self.is_same_step(current, &step)?
        {
            return Ok((Publication::UpToDate { commit: current }, Some(step)));
        }
        self.push(&step.branch, step.commit, last_pushed)?;
        Ok((
            Publication::Pushed {
                commit: step.commit,
                replaced: remote,
            },
            Some(step),
        ))
    }

    /// Whether `commit` already is `step`: same tree on the same base.
    fn is_same_step(&self, commit: Oid, step: &PreparedStep) -> Result<bool, GitOpsError>;
}

/// Build the commit of a ring step in `repo` on `base`.
pub fn prepare_in(
    repo: &Repository,
    base: Oid,
    request: &StepRequest<'_>,
    author: (&str, &str),
) -> Result<Option<PreparedStep>, GitOpsError> {
    let config = request.config;
    if config.fleet.commit != base.to_string() {
        return Err(GitOpsError::StaleRegistry {
            loaded: config.fleet.commit.clone(),
            base: base.to_string(),
        });
    }
    let step = next_ring_step(config, request.release, request.ring_index)?;
    commit_step(
        repo,
        base,
        config,
        request.ring_index,
        (request.release.name.as_str(), request.step),
        request.time,
        author,
        &step,
    )
}

/// Build the commit of `step` (any set of changes: a release's next step, or a revert) for
/// ring `ring_index` of rollout `rollout.0`, step number `rollout.1`, on `base`.
#[allow(clippy::too_many_arguments)]
pub fn commit_step(
    repo: &Repository,
    base: Oid,
    config: &Config,
    ring_index: usize,
    rollout: (&str, u32),
    time: DateTime<Utc>,
    author: (&str, &str),
    step: &changes::RingStep<'_>,
) -> Result<Option<PreparedStep>, GitOpsError> {
    let (rollout_name, step_no) = rollout;
    let ring = config
        .ring_set
        .rings
        .get(ring_index)
        .ok_or(GitOpsError::NoSuchRing(ring_index))?;
    let base_commit = repo.find_commit(base)?;
    let base_tree = base_commit.tree()?;
    let edits = planned_edits(config, step)?;
    let (files, applied) = {
        let mut reader = tree::TreeReader::new(repo, base_tree.clone());
        apply_edits(&edits, &mut |path| reader.read(path))?
    };
    if files.is_empty() {
        return Ok(None);
    }
    let tree_id = tree::write_tree_with(repo, &base_tree, &files)?;
    if tree_id == base_tree.id() {
        return Ok(None);
    }
    let new_tree = repo.find_tree(tree_id)?;
    let clusters = step.clusters.len();
    let title = format!(
        "ringmaster: {} for ring {} ({clusters} cluster{})",
        summary(step),
        ring.name,
        if clusters == 1 { "" } else { "s" }
    );
    let mut message = format!(
        "{title}\n\nRing {}/{} {}, step {} of rollout {}.\n\n",
        ring.position,
        config.ring_set.rings.len(),
        ring.name,
        step_no,
        rollout_name
    );
    for cs in &step.clusters {
        let changes: Vec<String> = cs
            .changes
            .iter()
            .map(|c| format!("{} {} → {}", c.component, c.from, c.to))
            .collect();
        message.push_str(&format!("- {}: {}\n", cs.cluster.id, changes.join(", ")));
    }
    for (id, why) in &step.left_out {
        message.push_str(&format!("- {id}: not changed ({why})\n"));
    }
    message.push_str(&format!(
        "\nRingmaster-Rollout: {}\nRingmaster-Ring: {}\nRingmaster-Step: {}\n",
        rollout_name, ring.name, step_no
    ));
    let when = Time::new(time.timestamp(), 0);
    let sig = Signature::new(author.0, author.1, &when)?;
    let commit = repo.commit(None, &sig, &sig, &message, &new_tree, &[&base_commit])?;
    Ok(Some(PreparedStep {
        branch: branch_name(rollout_name, ring.name.as_str(), step_no),
        base,
        commit,
        tree: tree_id,
        title,
        message,
        edits: applied,
        left_out: step
            .left_out
            .iter()
            .map(|(id, why)| (id.to_string(), why.clone()))
            .collect(),
    }))
}

/// The unified diff between two commits' trees.
pub fn diff_in(repo: &Repository, base: Oid, commit: Oid) -> Result<String, GitOpsError> {
    let old = repo.find_commit(base)?.tree()?;
    let new = repo.find_commit(commit)?.tree()?;
    Ok(tree::unified_diff(repo, &old, &new)?)
}

/// [`GitOps`] over a bare mirror of the GitOps repository.
#[derive(Debug)]
pub struct MirrorGitOps {
    mirror: Mirror,
    branch: String,
    author: (String, String),
}

impl MirrorGitOps {
    /// Use `mirror`, with `branch` as the base branch and `author` on commits.
    pub fn new(mirror: Mirror, branch: &str, author: (String, String)) -> MirrorGitOps {
        MirrorGitOps {
            mirror,
            branch: branch.to_owned(),
            author,
        }
    }

    /// The mirror.
    pub fn mirror(&self) -> &Mirror {
        &self.mirror
    }

    /// Like [`GitOps::publish`] for an explicit set of changes (a revert): fetch, build `step`
    /// for ring `ring_index` of rollout `rollout.0`, step `rollout.1`, on the base head, and
    /// push it unless the remote already has it. `config` must be loaded at that base.
    pub fn publish_step(
        &mut self,
        config: &Config,
        ring_index: usize,
        rollout: (&str, u32),
        time: DateTime<Utc>,
        step: &changes::RingStep<'_>,
        last_pushed: Option<Oid>,
    ) -> Result<(Publication, Option<PreparedStep>), GitOpsError> {
        let base = self.refresh_all()?;
        if config.fleet.commit != base.to_string() {
            return Err(GitOpsError::StaleRegistry {
                loaded: config.fleet.commit.clone(),
                base: base.to_string(),
            });
        }
        let Some(prepared) = commit_step(
            self.mirror.repo(),
            base,
            config,
            ring_index,
            rollout,
            time,
            (&self.author.0, &self.author.1),
            step,
        )?
        else {
            return Ok((Publication::NothingToChange, None));
        };
        let remote = self.remote_branch(&prepared.branch)?;
        if let Some(current) = remote
            && self.is_same_step(current, &prepared)?
        {
            return Ok((Publication::UpToDate { commit: current }, Some(prepared)));
        }
        self.push(&prepared.branch, prepared.commit, last_pushed)?;
        Ok((
            Publication::Pushed {
                commit: prepared.commit,
                replaced: remote,
            },
            Some(prepared),
        ))
    }
}

impl GitOps for MirrorGitOps {
    fn refresh(&mut self) -> Result<Oid, GitOpsError> {
        Ok(self.mirror.fetch(&self.branch)?)
    }

    fn refresh_all(&mut self) -> Result<Oid, GitOpsError> {
        Ok(self.mirror.fetch_all(&self.branch)?)
    }

    fn prepare(
        &self,
        base: Oid,
        request: &StepRequest<'_>,
    ) -> Result<Option<PreparedStep>, GitOpsError> {
        prepare_in(
            self.mirror.repo(),
            base,
            request,
            (&self.author.0, &self.author.1),
        )
    }

    fn remote_branch(&self, branch: &str) -> Result<Option<Oid>, GitOpsError> {
        Ok(self.mirror.branch_head(branch)?)
    }

    fn push(&self, branch: &str, commit: Oid, expected: Option<Oid>) -> Result<(), GitOpsError> {
        Ok(self.mirror.push_with_lease(branch, commit, expected)?)
    }

    fn diff(&self, base: Oid, commit: Oid) -> Result<String, GitOpsError> {
        diff_in(self.mirror.repo(), base, commit)
    }

    fn is_same_step(&self, commit: Oid, step: &PreparedStep) -> Result<bool, GitOpsError> {
        let repo = self.mirror.repo();
        let Ok(c) = repo.find_commit(commit) else {
            return Ok(false);
        };
        Ok(c.tree_id() == step.tree && c.parent_ids().eq([step.base]))
    }
}

//! The GitOps repository as ringmaster sees it: a persistent bare mirror under the data
//! directory, updated by incremental fetch (never a clone per promotion), and pushes of
//! `ringmaster/…` branches with a lease.

use std::cell::Cell;
use std::path::{Path, PathBuf};

use git2::{Cred, CredentialType, FetchOptions, Oid, PushOptions, RemoteCallbacks, Repository};
use rings::load::redact_url;
use rings::model::{GitAuth, GitLocation};

pub use crate::secret::Secret;

/// The prefix of every branch ringmaster may push (and force-push): nothing else is ever touched.
pub const BRANCH_PREFIX: &str = "ringmaster/";
/// Where fetched branches live in the mirror.
const REMOTE_REFS: &str = "refs/remotes/origin/";
/// How many times libgit2 may ask for credentials in one operation before we give up (it asks
/// again after every rejection; without a bound a wrong token loops).
const MAX_CREDENTIAL_ATTEMPTS: u32 = 2;

/// Errors of the mirror. Messages never contain a secret (URLs are redacted; tokens are never
/// put in URLs in the first place).
#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    /// Fetch or push failed in transport (network, auth). Usually worth retrying.
    #[error("{action} {url}: {message}")]
    Transport {
        /// What was being done.
        action: &'static str,
        /// The remote, redacted.
        url: String,
        /// libgit2's message, redacted.
        message: String,
    },
    /// The base branch does not exist on the remote.
    #[error("branch `{branch}` does not exist on {url}")]
    NoSuchBranch {
        /// The branch.
        branch: String,
        /// The remote, redacted.
        url: String,
    },
    /// Someone else moved a ringmaster branch since ringmaster last pushed it.
    #[error(
        "refusing to push {branch}: the remote has it at {found}, not at {expected} as ringmaster last pushed it; someone else changed it"
    )]
    LeaseBroken {
        /// The branch.
        branch: String,
        /// What ringmaster expected (`none` = absent).
        expected: String,
        /// What the remote has.
        found: String,
    },
    /// The remote rejected the update.
    #[error("the remote rejected {branch}: {message}")]
    Rejected {
        /// The branch.
        branch: String,
        /// The remote's message.
        message: String,
    },
    /// Only `ringmaster/…` branches are ever pushed.
    #[error("refusing to push `{branch}`: ringmaster only pushes branches under `ringmaster/`")]
    NotOurs {
        /// The branch.
        branch: String,
    },
    /// A secret could not be read.
    #[error("cannot read the git credentials: {0}")]
    Secret(String),
    /// Local repository problem.
    #[error("mirror {path}: {message}")]
    Local {
        /// The mirror directory.
        path: String,
        /// What failed.
        message: String,
    },
}

/// A bare mirror of the GitOps repository.
pub struct Mirror {
    repo: Repository,
    url: String,
    auth: GitAuth,
    path: PathBuf,
    last_fetch_objects: Cell<usize>,
}

impl std::fmt::Debug for Mirror {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mirror")
            .field("url", &redact_url(&self.url))
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// The URL libgit2 is given: local paths as paths, everything else as written.
pub fn remote_url(location: &GitLocation) -> String {
    match location {
        GitLocation::Local(p) => p.to_string_lossy().into_owned(),
        GitLocation::Remote(url) => url.clone(),
    }
}

/// The mirror's directory for a URL: readable, unique per URL.
pub fn mirror_dir(data_dir: &Path, url: &str) -> PathBuf {
    let slug: String = redact_url(url)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect::<String>()
        .split('-')
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("-");
    let tail: String = slug
        .chars()
        .rev()
        .take(40)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let hash = Oid::hash_object(git2::ObjectType::Blob, url.as_bytes())
        .map_or_else(|_| "0".repeat(12), |o| o.to_string()[..12].to_owned());
    data_dir.join("mirrors").join(format!("{tail}-{hash}.git"))
}

impl Mirror {
    /// Open the mirror of `location` under `data_dir`, creating it on first use.
    pub fn open(
        data_dir: &Path,
        location: &GitLocation,
        auth: GitAuth,
    ) -> Result<Mirror, MirrorError> {
        let url = remote_url(location);
        let path = mirror_dir(data_dir, &url);
        let local = |e: git2::Error| MirrorError::Local {
            path: path.display().to_string(),
            message: e.message().to_owned(),
        };
        let repo = if path.join("HEAD").exists() {
            let repo = Repository::open_bare(&path).map_err(local)?;
            let current = repo
                .find_remote("origin")
                .map_err(local)?
                .url()
                .ok()
                .map(str::to_owned);
            if current.as_deref() != Some(url.as_str()) {
                repo.remote_set_url("origin", &url).map_err(local)?;
            }
            repo
        } else {
            std::fs::create_dir_all(&path).map_err(|e| MirrorError::Local {
                path: path.display().to_string(),
                message: e.to_string(),
            })?;
            let repo = Repository::init_bare(&path).map_err(local)?;
            repo.remote_with_fetch("origin", &url, "+refs/heads/*:refs/remotes/origin/*")
                .map_err(local)?;
            repo
        };
        Ok(Mirror {
            repo,
            url,
            auth,
            path,
            last_fetch_objects: Cell::new(0),
        })
    }

    /// The repository (bare).
    pub fn repo(&self) -> &Repository {
        &self.repo
    }

    /// Where the mirror lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many objects the last fetch received (0 when nothing changed: fetches are incremental).
    pub fn last_fetch_objects(&self) -> usize {
        self.last_fetch_objects.get()
    }

    /// The remote URL, redacted, for messages.
    pub fn display_url(&self) -> String {
        redact_url(&self.url)
    }

    fn callbacks<'a>(
        &'a self,
        secret: Option<&'a Secret>,
        attempts: &'a Cell<u32>,
    ) -> RemoteCallbacks<'a> {
        let mut cb = RemoteCallbacks::new();
        cb.credentials(move |_url, username, allowed| {
            attempts.set(attempts.get() + 1);
            if attempts.get() > MAX_CREDENTIAL_ATTEMPTS {
                return Err(git2::Error::from_str(
                    "authentication failed (credentials rejected)",
                ));
            }
            match (&self.auth, secret) {
                (GitAuth::Token(_), Some(s))
                    if allowed.contains(CredentialType::USER_PASS_PLAINTEXT) =>
                {
                    // GitHub and most forges accept any user name with a token as password.
                    Cred::userpass_plaintext("x-access-token", s.expose())
                }
                (GitAuth::SshKey(key), _) => {
                    Cred::ssh_key(username.unwrap_or("git"), None, key, None)
                }
                (GitAuth::SshAgent, _) => Cred::ssh_key_from_agent(username.unwrap_or("git")),
                _ if allowed.contains(CredentialType::DEFAULT) => Cred::default(),
                _ => Err(git2::Error::from_str(
                    "the remote asks for credentials; set gitops.auth",
                )),
            }
        });
        cb
    }

    fn secret(&self) -> Result<Option<Secret>, MirrorError> {
        match &self.auth {
            GitAuth::Token(src) => Secret::read(src).map(Some).map_err(MirrorError::Secret),
            _ => Ok(None),
        }
    }

    fn transport(
        &self,
        action: &'static str,
        secret: Option<&Secret>,
        e: &git2::Error,
    ) -> MirrorError {
        let message = e.message().to_owned();
        MirrorError::Transport {
            action,
            url: self.display_url(),
            message: secret.map_or(message.clone(), |s| s.redact(&message)),
        }
    }

    /// Fetch `branch` alone (incrementally: only objects the mirror lacks travel) and return its
    /// head. This is the daemon's every-pass fetch: ring branches are not listed into the
    /// mirror, so its cost does not grow with the rollouts (see [`Mirror::fetch_all`]).
    pub fn fetch(&self, branch: &str) -> Result<Oid, MirrorError> {
        self.fetch_refspec(&format!("+refs/heads/{branch}:{REMOTE_REFS}{branch}"))?;
        self.head_of(branch)
    }

    /// Fetch every branch (pruning the ones the remote deleted) and return the head of
    /// `branch`: before a ring branch is compared with what ringmaster would push.
    pub fn fetch_all(&self, branch: &str) -> Result<Oid, MirrorError> {
        self.fetch_refspec(&format!("+refs/heads/*:{REMOTE_REFS}*"))?;
        self.head_of(branch)
    }

    fn head_of(&self, branch: &str) -> Result<Oid, MirrorError> {
        self.branch_head(branch)?
            .ok_or_else(|| MirrorError::NoSuchBranch {
                branch: branch.to_owned(),
                url: self.display_url(),
            })
    }

    fn fetch_refspec(&self, refspec: &str) -> Result<(), MirrorError> {
        let secret = self.secret()?;
        let attempts = Cell::new(0);
        let mut opts = FetchOptions::new();
        opts.remote_callbacks(self.callbacks(secret.as_ref(), &attempts));
        opts.prune(git2::FetchPrune::On);
        opts.download_tags(git2::AutotagOption::None);
        let mut remote = self
            .repo
            .find_remote("origin")
            .map_err(|e| self.transport("fetching", secret.as_ref(), &e))?;
        remote
            .fetch(&[refspec], Some(&mut opts), Some("ringmaster fetch"))
            .map_err(|e| self.transport("fetching", secret.as_ref(), &e))?;
        self.last_fetch_objects
            .set(remote.stats().received_objects());
        Ok(())
    }

    /// A local, non-bare repository as the remote: libgit2's local transport cannot push into
    /// one, so ringmaster copies the objects itself.
    fn local_non_bare_target(&self) -> Option<Repository> {
        if self.url.contains("://") {
            return None;
        }
        Repository::open(&self.url).ok().filter(|r| !r.is_bare())
    }

    /// Push into a local repository by writing the missing objects as one pack into its object
    /// database and moving the branch with a compare-and-swap (the lease: the branch must still
    /// be at `expected`, or absent).
    fn push_into_local(
        &self,
        target: &Repository,
        branch: &str,
        commit: Oid,
        expected: Option<Oid>,
    ) -> Result<(), MirrorError> {
        let local = |e: git2::Error| MirrorError::Local {
            path: self.url.clone(),
            message: e.message().to_owned(),
        };
        let refname = format!("refs/heads/{branch}");
        let current = match target.refname_to_id(&refname) {
            Ok(id) => Some(id),
            Err(e) if e.code() == git2::ErrorCode::NotFound => None,
            Err(e) => return Err(local(e)),
        };
        if current != expected {
            return Err(MirrorError::LeaseBroken {
                branch: branch.to_owned(),
                expected: expected.map_or("none".to_owned(), |o| o.to_string()),
                found: current.map_or("none".to_owned(), |o| o.to_string()),
            });
        }
        // Only the objects the target lacks: walk from the commit, hiding what the target has.
        let mut walk = self.repo.revwalk().map_err(local)?;
        walk.push(commit).map_err(local)?;
        for parent in self.repo.find_commit(commit).map_err(local)?.parent_ids() {
            if target.find_commit(parent).is_ok() {
                walk.hide(parent).map_err(local)?;
            }
        }
        let mut builder = self.repo.packbuilder().map_err(local)?;
        builder.insert_walk(&mut walk).map_err(local)?;
        let mut pack = git2::Buf::new();
        builder.write_buf(&mut pack).map_err(local)?;
        let odb = target.odb().map_err(local)?;
        let mut writer = odb.packwriter().map_err(local)?;
        std::io::Write::write_all(&mut writer, &pack).map_err(|e| MirrorError::Local {
            path: self.url.clone(),
            message: e.to_string(),
        })?;
        writer.commit().map_err(local)?;
        let moved = match current {
            Some(old) => {
                target.reference_matching(&refname, commit, true, old, "ringmaster: ring branch")
            }
            None => target.reference(&refname, commit, false, "ringmaster: ring branch"),
        };
        moved.map_err(|e| MirrorError::LeaseBroken {
            branch: branch.to_owned(),
            expected: expected.map_or("none".to_owned(), |o| o.to_string()),
            found: format!("changed concurrently ({})", e.message()),
        })?;
        self.repo
            .reference(
                &format!("{REMOTE_REFS}{branch}"),
                commit,
                true,
                "ringmaster: pushed",
            )
            .map_err(local)?;
        Ok(())
    }

    /// The head of a remote branch as of the last fetch or push.
    pub fn branch_head(&self, branch: &str) -> Result<Option<Oid>, MirrorError> {
        match self.repo.refname_to_id(&format!("{REMOTE_REFS}{branch}")) {
            Ok(id) => Ok(Some(id)),
            Err(e) if e.code() == git2::ErrorCode::NotFound => Ok(None),
            Err(e) => Err(MirrorError::Local {
                path: self.path.display().to_string(),
                message: e.message().to_owned(),
            }),
        }
    }

    /// Push `commit` to `branch` (under `ringmaster/`) only if the remote still has the branch at
    /// `expected` (`None`: the branch must not exist). The remote's current value is taken from
    /// the push connection's own ref advertisement and sent as the old value of the update, so a
    /// concurrent change is refused by the server, not overwritten.
    pub fn push_with_lease(
        &self,
        branch: &str,
        commit: Oid,
        expected: Option<Oid>,
    ) -> Result<(), MirrorError> {
        if !branch.starts_with(BRANCH_PREFIX) || branch.contains("..") {
            return Err(MirrorError::NotOurs {
                branch: branch.to_owned(),
            });
        }
        let local_ref = format!("refs/heads/{branch}");
        self.repo
            .reference(&local_ref, commit, true, "ringmaster: ring branch")
            .map_err(|e| MirrorError::Local {
                path: self.path.display().to_string(),
                message: e.message().to_owned(),
            })?;
        if let Some(target) = self.local_non_bare_target() {
            return self.push_into_local(&target, branch, commit, expected);
        }
        let secret = self.secret()?;
        let attempts = Cell::new(0);
        let lease_found: Cell<Option<Oid>> = Cell::new(None);
        let rejected: std::cell::RefCell<Option<String>> = std::cell::RefCell::new(None);
        let mut cb = self.callbacks(secret.as_ref(), &attempts);
        let want = expected.unwrap_or(Oid::ZERO_SHA1);
        cb.push_negotiation(|updates| {
            for u in updates {
                if u.src() != want {
                    lease_found.set(Some(u.src()));
                    return Err(git2::Error::from_str("lease broken"));
                }
            }
            Ok(())
        });
        cb.push_update_reference(|_name, status| {
            if let Some(msg) = status {
                *rejected.borrow_mut() = Some(msg.to_owned());
            }
            Ok(())
        });
        let mut opts = PushOptions::new();
        opts.remote_callbacks(cb);
        let mut remote = self
            .repo
            .find_remote("origin")
            .map_err(|e| self.transport("pushing to", secret.as_ref(), &e))?;
        let result = remote.push(&[format!("+{local_ref}:{local_ref}")], Some(&mut opts));
        drop(opts);
        if let Some(found) = lease_found.get() {
            return Err(MirrorError::LeaseBroken {
                branch: branch.to_owned(),
                expected: expected.map_or("none".to_owned(), |o| o.to_string()),
                found: if found.is_zero() {
                    "none".to_owned()
                } else {
                    found.to_string()
                },
            });
        }
        result.map_err(|e| self.transport("pushing to", secret.as_ref(), &e))?;
        if let Some(message) = rejected.into_inner() {
            return Err(MirrorError::Rejected {
                branch: branch.to_owned(),
                message,
            });
        }
        // Record what the remote now has, so the next lease expects it.
        self.repo
            .reference(
                &format!("{REMOTE_REFS}{branch}"),
                commit,
                true,
                "ringmaster: pushed",
            )
            .map_err(|e| MirrorError::Local {
                path: self.path.display().to_string(),
                message: e.message().to_owned(),
            })?;
        Ok(())
    }
}

//! # state — what happened
//!
//! The sled-backed store (DESIGN §2, §5): the built-in local forge's pull-request records, and
//! the daemon's rollouts, ring runs, gate samples and append-only journal ([`rollouts`]).
//! Every write is flushed before it is reported done; a ring-run transition and its journal
//! entries are one sled transaction guarded by a revision (compare-and-swap).

pub mod records;
pub mod rollouts;

pub use records::{
    Backoff, BlockCause, ChangeRecord, ErrorSource, Event, GlobalFreeze, Phase, PrLink, RingPhase,
    RingRun, Rollout, RolloutState, SampleCounts, SampleOutcome, SampleRecord, StepRecord,
};

use std::path::Path;

use serde::{Deserialize, Serialize};

/// The schema version written in the store. A store of an older version is migrated when it
/// is opened ([`Store::open`]); a newer one is refused with a clear message.
///
/// - 1: the first release.
/// - 2: ring runs say why they are blocked ([`BlockCause`]), when a transient error is retried
///   ([`Backoff`]) and when a sampling gap restarted their soak.
pub const SCHEMA_VERSION: u32 = 2;
/// sled's page cache, bytes. sled's default is 1 GiB; ringmaster's working set is tiny.
pub const CACHE_CAPACITY_BYTES: u64 = 8 * 1024 * 1024;

const META: &str = "meta";
const LOCAL_PRS: &str = "local_prs";
const SCHEMA_KEY: &[u8] = b"schema_version";
const NEXT_PR_KEY: &[u8] = b"next_local_pr";
const IDENTITY_KEY: &[u8] = b"store_id";
/// The file inside the store's directory that repeats its identity ([`Store::identity`]), so a
/// client can read it while a running daemon holds the store's lock.
pub const IDENTITY_FILE: &str = "ringmaster.id";

/// What moving a damaged store away costs, in the recovery hint of [`StoreError`].
const REBUILD_NOTE: &str = "an empty store is rebuilt from the forge's ringmaster PRs; \
                            unfinished soaks restart at 0 and the old journal stays in the moved copy";

/// Store errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another process holds the database lock.
    #[error(
        "another ringmaster is running on the store {path} (its lock is held); stop it or use another `store:`"
    )]
    Locked {
        /// The store path.
        path: String,
    },
    /// The store was written by another schema version.
    #[error(
        "the store {path} has schema version {found}; this ringmaster reads version {SCHEMA_VERSION}"
    )]
    Schema {
        /// The store path.
        path: String,
        /// Its version.
        found: u32,
    },
    /// sled failed.
    #[error(
        "store {path}: {message}; if the store is damaged: stop ringmaster, `mv {path} {path}.broken` and start it again ({REBUILD_NOTE})"
    )]
    Sled {
        /// The store path.
        path: String,
        /// What failed.
        message: String,
    },
    /// A record could not be decoded.
    #[error(
        "store {path}: corrupt record {key}: {message}; to recover: stop ringmaster, `mv {path} {path}.broken` and start it again ({REBUILD_NOTE})"
    )]
    Corrupt {
        /// The store path.
        path: String,
        /// Which record.
        key: String,
        /// Why.
        message: String,
    },
}

/// The state of a pull request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PrState {
    /// Open for review.
    Open,
    /// Closed without merging.
    Closed,
    /// Merged into the base branch.
    Merged,
}

/// An approval, valid for the head it was given on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    /// Who approved.
    pub by: String,
    /// The head commit approved.
    pub sha: String,
    /// When (RFC 3339).
    pub at: String,
}

/// A pull request of the local forge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalPr {
    /// Number, from 1.
    pub number: u64,
    /// Head branch.
    pub branch: String,
    /// Base branch.
    pub base: String,
    /// Title.
    pub title: String,
    /// Body (Markdown).
    pub body: String,
    /// Labels.
    pub labels: Vec<String>,
    /// Requested reviewers.
    pub reviewers: Vec<String>,
    /// Open, closed or merged.
    pub state: PrState,
    /// Head commit when last seen.
    pub head: String,
    /// The merge commit, once merged.
    pub merge_commit: Option<String>,
    /// Approvals.
    pub approvals: Vec<Approval>,
    /// Comments by key (idempotent comments are updated in place).
    pub comments: Vec<(String, String)>,
    /// Creation time (RFC 3339).
    pub created_at: String,
}

/// The store.
#[derive(Debug)]
pub struct Store {
    db: sled::Db,
    path: String,
    /// Bumped by every write of a rollout, a ring run or the global freeze through this handle.
    generation: std::sync::atomic::AtomicU64,
    /// [`Store::identity`].
    identity: String,
}

/// The identity of the store at `path` as its [`IDENTITY_FILE`] says, without opening it (a
/// running daemon holds its lock); `None` when there is no such file (no store there yet, or
/// one last opened by a ringmaster before identities).
pub fn read_identity(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path.join(IDENTITY_FILE)).ok()?;
    let id = text.trim();
    (!id.is_empty()).then(|| id.to_owned())
}

/// A new random identity: 128 bits as hex, from the standard library's randomly keyed hasher
/// (no extra dependency), mixed with the time and the process id.
fn new_identity() -> String {
    use std::hash::{BuildHasher, Hasher};
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let half = |salt: u64| {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(nanos);
        h.write_u32(std::process::id());
        h.write_u64(salt);
        h.finish()
    };
    format!("{:016x}{:016x}", half(1), half(2))
}

pub(crate) fn decode<T: for<'de> Deserialize<'de>>(
    path: &str,
    key: &[u8],
    value: &[u8],
) -> Result<T, StoreError> {
    serde_json::from_slice(value).map_err(|e| StoreError::Corrupt {
        path: path.to_owned(),
        // Keys are `rollout\0ring`: shown as `rollout/ring`.
        key: String::from_utf8_lossy(key).replace('\0', "/"),
        message: e.to_string(),
    })
}

impl Store {
    /// Open (or create) the store at `path`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let shown = path.display().to_string();
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(CACHE_CAPACITY_BYTES)
            .open()
            .map_err(|e| match &e {
                sled::Error::Io(io) if io.kind() == std::io::ErrorKind::WouldBlock => {
                    StoreError::Locked {
                        path: shown.clone(),
                    }
                }
                _ if e.to_string().contains("WouldBlock") || e.to_string().contains("lock") => {
                    StoreError::Locked {
                        path: shown.clone(),
                    }
                }
                _ => StoreError::Sled {
                    path: shown.clone(),
                    message: e.to_string(),
                },
            })?;
        let mut store = Store {
            db,
            path: shown,
            generation: std::sync::atomic::AtomicU64::new(0),
            identity: String::new(),
        };
        let meta = store.tree(META)?;
        match meta.get(SCHEMA_KEY).map_err(|e| store.err(e))? {
            None => {
                meta.insert(SCHEMA_KEY, SCHEMA_VERSION.to_string().as_bytes())
                    .map_err(|e| store.err(e))?;
                store.flush()?;
            }
            Some(v) => {
                let found: u32 = String::from_utf8_lossy(&v).parse().unwrap_or(0);
                if found == 1 {
                    store.migrate_v1_to_v2()?;
                    meta.insert(SCHEMA_KEY, SCHEMA_VERSION.to_string().as_bytes())
                        .map_err(|e| store.err(e))?;
                    store.flush()?;
                } else if found != SCHEMA_VERSION {
                    return Err(StoreError::Schema {
                        path: store.path.clone(),
                        found,
                    });
                }
            }
        }
        store.identity = store.ensure_identity(path)?;
        Ok(store)
    }

    /// The store's identity, generated once when it is first opened and kept in its meta tree:
    /// it tells two stores apart (a client checks that the daemon it talks to holds *this*
    /// store). Also written to [`IDENTITY_FILE`] in the store's directory ([`read_identity`]).
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// The path it was opened at, as given.
    pub fn path(&self) -> &str {
        &self.path
    }

    fn ensure_identity(&self, path: &Path) -> Result<String, StoreError> {
        let meta = self.tree(META)?;
        let id = match meta.get(IDENTITY_KEY).map_err(|e| self.err(e))? {
            Some(v) => String::from_utf8_lossy(&v).into_owned(),
            None => {
                let id = new_identity();
                meta.insert(IDENTITY_KEY, id.as_bytes())
                    .map_err(|e| self.err(e))?;
                self.flush()?;
                id
            }
        };
        let file = path.join(IDENTITY_FILE);
        if read_identity(path).as_deref() != Some(id.as_str()) {
            // Written beside sled's own files, atomically (a reader never sees half an id).
            let tmp = path.join(format!("{IDENTITY_FILE}.tmp"));
            std::fs::write(&tmp, format!("{id}\n"))
                .and_then(|()| std::fs::rename(&tmp, &file))
                .map_err(|e| StoreError::Sled {
                    path: self.path.clone(),
                    message: format!("writing {}: {e}", file.display()),
                })?;
        }
        Ok(id)
    }

    pub(crate) fn err(&self, e: sled::Error) -> StoreError {
        StoreError::Sled {
            path: self.path.clone(),
            message: e.to_string(),
        }
    }

    /// A number that changes whenever a rollout, a ring run or the global freeze is written
    /// through this handle — and sled's lock makes this process the only writer — so a cache
    /// of what those records say is valid while it stays the same.
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    pub(crate) fn bump(&self) {
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    pub(crate) fn tree(&self, name: &str) -> Result<sled::Tree, StoreError> {
        self.db.open_tree(name).map_err(|e| self.err(e))
    }

    pub(crate) fn flush(&self) -> Result<(), StoreError> {
        self.db.flush().map(|_| ()).map_err(|e| self.err(e))
    }

    /// A new local PR number (never reused), flushed.
    pub fn next_local_pr_number(&self) -> Result<u64, StoreError> {
        let meta = self.tree(META)?;
        let next = meta
            .update_and_fetch(NEXT_PR_KEY, |old| {
                let n = old
                    .and_then(|b| String::from_utf8_lossy(b).parse::<u64>().ok())
                    .unwrap_or(0)
                    + 1;
                Some(n.to_string().into_bytes())
            })
            .map_err(|e| self.err(e))?
            .and_then(|b| String::from_utf8_lossy(&b).parse::<u64>().ok())
            .unwrap_or(1);
        self.flush()?;
        Ok(next)
    }

    fn pr_key(number: u64) -> [u8; 8] {
        number.to_be_bytes()
    }

    /// Write a local PR record, flushed.
    pub fn put_local_pr(&self, pr: &LocalPr) -> Result<(), StoreError> {
        let value = serde_json::to_vec(pr).map_err(|e| StoreError::Sled {
            path: self.path.clone(),
            message: e.to_string(),
        })?;
        self.tree(LOCAL_PRS)?
            .insert(Self::pr_key(pr.number), value)
            .map_err(|e| self.err(e))?;
        self.flush()
    }

    /// Replace a local PR record only if it is still `expected` (compare-and-swap), flushed.
    /// `Ok(false)` when someone else changed it first.
    pub fn swap_local_pr(&self, expected: &LocalPr, new: &LocalPr) -> Result<bool, StoreError> {
        let enc = |p: &LocalPr| {
            serde_json::to_vec(p).map_err(|e| StoreError::Sled {
                path: self.path.clone(),
                message: e.to_string(),
            })
        };
        let swapped = self
            .tree(LOCAL_PRS)?
            .compare_and_swap(
                Self::pr_key(expected.number),
                Some(enc(expected)?),
                Some(enc(new)?),
            )
            .map_err(|e| self.err(e))?
            .is_ok();
        self.flush()?;
        Ok(swapped)
    }

    /// A local PR by number.
    pub fn local_pr(&self, number: u64) -> Result<Option<LocalPr>, StoreError> {
        let key = Self::pr_key(number);
        match self.tree(LOCAL_PRS)?.get(key).map_err(|e| self.err(e))? {
            Some(v) => decode(&self.path, &key, &v).map(Some),
            None => Ok(None),
        }
    }

    /// Every local PR, by number.
    pub fn local_prs(&self) -> Result<Vec<LocalPr>, StoreError> {
        let mut out = Vec::new();
        for item in self.tree(LOCAL_PRS)?.iter() {
            let (k, v) = item.map_err(|e| self.err(e))?;
            out.push(decode(&self.path, &k, &v)?);
        }
        Ok(out)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn pr(number: u64) -> LocalPr {
        LocalPr {
            number,
            branch: format!("ringmaster/r/ring/{number}"),
            base: "main".into(),
            title: "t".into(),
            body: "b".into(),
            labels: vec!["ringmaster".into()],
            reviewers: vec![],
            state: PrState::Open,
            head: "abc".into(),
            merge_commit: None,
            approvals: vec![],
            comments: vec![],
            created_at: "2026-11-24T00:00:00Z".into(),
        }
    }

    #[test]
    fn records_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        {
            let s = Store::open(&path).unwrap();
            assert_eq!(s.next_local_pr_number().unwrap(), 1);
            assert_eq!(s.next_local_pr_number().unwrap(), 2);
            s.put_local_pr(&pr(1)).unwrap();
        }
        let s = Store::open(&path).unwrap();
        assert_eq!(s.local_pr(1).unwrap(), Some(pr(1)));
        assert_eq!(
            s.next_local_pr_number().unwrap(),
            3,
            "numbers are never reused"
        );
        assert_eq!(s.local_prs().unwrap().len(), 1);
    }

    #[test]
    fn compare_and_swap_refuses_a_stale_writer() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("db")).unwrap();
        let a = pr(1);
        s.put_local_pr(&a).unwrap();
        let mut b = a.clone();
        b.state = PrState::Merged;
        assert!(s.swap_local_pr(&a, &b).unwrap());
        let mut c = a.clone();
        c.state = PrState::Closed;
        assert!(
            !s.swap_local_pr(&a, &c).unwrap(),
            "a stale view must not win"
        );
        assert_eq!(s.local_pr(1).unwrap().unwrap().state, PrState::Merged);
    }

    #[test]
    fn the_identity_is_kept_and_readable_without_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        let id = {
            let s = Store::open(&a).unwrap();
            assert_eq!(s.identity().len(), 32);
            assert_eq!(read_identity(&a).as_deref(), Some(s.identity()));
            s.identity().to_owned()
        };
        // A lost file is written again, with the same identity.
        std::fs::remove_file(a.join(IDENTITY_FILE)).unwrap();
        assert_eq!(Store::open(&a).unwrap().identity(), id);
        assert_eq!(read_identity(&a), Some(id.clone()));
        assert_ne!(
            Store::open(&b).unwrap().identity(),
            id,
            "two stores, two ids"
        );
        assert_eq!(read_identity(&dir.path().join("none")), None);
    }

    #[test]
    fn another_schema_version_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        {
            let db = sled::Config::new().path(&path).open().unwrap();
            db.open_tree(META)
                .unwrap()
                .insert(SCHEMA_KEY, b"99".as_slice())
                .unwrap();
            db.flush().unwrap();
        }
        let err = Store::open(&path).unwrap_err();
        assert!(matches!(err, StoreError::Schema { found: 99, .. }), "{err}");
    }
}

//! Example fleets for ringmaster, and the code that turns one into a runnable setup.
//!
//! The data lives next to this crate (`fleet/`, `small-team/`): a `ringmaster.yaml`, a
//! `rings.yaml`, `releases/*.yaml` and a `gitops/` folder holding the fleet registry.
//! [`materialize`] copies such a directory elsewhere and turns its `gitops/` folder into a real
//! git repository with one commit on `main`, which is what `ringmaster.yaml`'s
//! `gitops.url: ./gitops` expects.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use git2::{IndexEntry, IndexTime, Repository, RepositoryInitOptions, Signature};

/// Branch created in the materialized GitOps repository (and the one `HEAD` points at).
pub const BRANCH: &str = "main";
/// Message of the single commit of the materialized GitOps repository.
pub const COMMIT_MESSAGE: &str = "Initial fleet registry";
/// Author and committer name of that commit.
pub const AUTHOR_NAME: &str = "ringmaster example";
/// Author and committer e-mail of that commit.
pub const AUTHOR_EMAIL: &str = "example@ringmaster.invalid";

/// Where the example data lives in the source tree (`CARGO_MANIFEST_DIR/fleet`): 15 EKS and AKS
/// clusters in four rings.
pub fn fleet_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fleet")
}

/// Where the small-team example lives in the source tree (`CARGO_MANIFEST_DIR/small-team`):
/// three EKS clusters in two rings.
pub fn small_team_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("small-team")
}

/// Why [`materialize`] failed. Every variant names the path involved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MaterializeError {
    /// The example directory has no `ringmaster.yaml` or no `gitops/` folder.
    #[error("{path}: not an example setup (expected a ringmaster.yaml and a gitops/ folder)")]
    NotAnExample {
        /// The example directory given.
        path: PathBuf,
    },
    /// The destination exists and is not an empty directory.
    #[error("{path}: destination must be an empty directory or not exist")]
    DestinationNotEmpty {
        /// The destination given.
        path: PathBuf,
    },
    /// The destination lies inside the example directory (copying would never end).
    #[error("{dest}: destination is inside the example directory {example}")]
    DestinationInsideExample {
        /// The destination given.
        dest: PathBuf,
        /// The example directory given.
        example: PathBuf,
    },
    /// A file name that git cannot store portably (not UTF-8).
    #[error("{path}: file name is not valid UTF-8")]
    NonUtf8Path {
        /// The offending file.
        path: PathBuf,
    },
    /// A file-system operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done ("reading", "creating directory", ...).
        action: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A git operation failed.
    #[error("git repository {path}: {action}: {source}")]
    Git {
        /// What was being done ("init", "commit", ...).
        action: &'static str,
        /// The repository's work tree.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: git2::Error,
    },
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> MaterializeError {
    let path = path.to_path_buf();
    move |source| MaterializeError::Io {
        action,
        path,
        source,
    }
}

fn git_err(action: &'static str, path: &Path) -> impl FnOnce(git2::Error) -> MaterializeError {
    let path = path.to_path_buf();
    move |source| MaterializeError::Git {
        action,
        path,
        source,
    }
}

/// Copy an example setup (a directory like [`fleet_dir()`]) into `dest` (created if missing;
/// it must be empty or absent), and turn its `gitops/` folder into a real git repository:
/// non-bare, `HEAD` on `refs/heads/main` whatever the user's `init.defaultBranch` says, and one
/// commit "Initial fleet registry" by `ringmaster example <example@ringmaster.invalid>` holding
/// every file of `gitops/` byte for byte (no line-ending or attribute filters are applied).
///
/// `.git` folders and `*.db` entries (a ringmaster store left in the source tree) are not copied.
///
/// Returns the path of `dest/ringmaster.yaml`.
pub fn materialize(example: &Path, dest: &Path) -> Result<PathBuf, MaterializeError> {
    if !example.join("ringmaster.yaml").is_file() || !example.join("gitops").is_dir() {
        return Err(MaterializeError::NotAnExample {
            path: example.to_path_buf(),
        });
    }
    prepare_destination(example, dest)?;
    copy_tree(example, dest)?;
    init_gitops_repo(&dest.join("gitops"))?;
    Ok(dest.join("ringmaster.yaml"))
}

/// Checks `dest` is absent or an empty directory, and creates it.
fn prepare_destination(example: &Path, dest: &Path) -> Result<(), MaterializeError> {
    match fs::metadata(dest) {
        Ok(meta) if !meta.is_dir() => {
            return Err(MaterializeError::DestinationNotEmpty {
                path: dest.to_path_buf(),
            });
        }
        Ok(_) => {
            let mut entries = fs::read_dir(dest).map_err(io_err("reading directory", dest))?;
            if entries.next().is_some() {
                return Err(MaterializeError::DestinationNotEmpty {
                    path: dest.to_path_buf(),
                });
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::create_dir_all(dest).map_err(io_err("creating directory", dest))?;
        }
        Err(e) => return Err(io_err("reading", dest)(e)),
    }
    let example_abs = fs::canonicalize(example).map_err(io_err("resolving", example))?;
    let dest_abs = fs::canonicalize(dest).map_err(io_err("resolving", dest))?;
    if dest_abs.starts_with(&example_abs) {
        return Err(MaterializeError::DestinationInsideExample {
            dest: dest.to_path_buf(),
            example: example.to_path_buf(),
        });
    }
    Ok(())
}

/// Whether a directory entry of an example is left behind when copying.
fn skipped(name: &std::ffi::OsStr) -> bool {
    name == ".git" || Path::new(name).extension().is_some_and(|ext| ext == "db")
}

/// Recursively copies the regular files and directories of `from` into the existing `to`,
/// in a deterministic (sorted) order.
fn copy_tree(from: &Path, to: &Path) -> Result<(), MaterializeError> {
    for entry in sorted_entries(from)? {
        let name = entry.file_name();
        if skipped(&name) {
            continue;
        }
        let src = entry.path();
        let dst = to.join(&name);
        // Follows symlinks: a linked file or folder in an example is copied as what it points at.
        let meta = fs::metadata(&src).map_err(io_err("reading", &src))?;
        if meta.is_dir() {
            fs::create_dir(&dst).map_err(io_err("creating directory", &dst))?;
            copy_tree(&src, &dst)?;
        } else if meta.is_file() {
            fs::copy(&src, &dst).map_err(io_err("copying to", &dst))?;
        }
    }
    Ok(())
}

fn sorted_entries(dir: &Path) -> Result<Vec<fs::DirEntry>, MaterializeError> {
    let mut entries = fs::read_dir(dir)
        .map_err(io_err("reading directory", dir))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(io_err("reading directory", dir))?;
    entries.sort_by_key(fs::DirEntry::file_name);
    Ok(entries)
}

/// Every regular file under `root`, as (absolute path, '/'-separated path relative to `root`).
fn files_for_index(
    root: &Path,
    rel: &str,
    out: &mut Vec<(PathBuf, String)>,
) -> Result<(), MaterializeError> {
    for entry in sorted_entries(&root.join(rel))? {
        let name = entry.file_name();
        if name == ".git" {
            continue;
        }
        let path = entry.path();
        let Some(name) = name.to_str() else {
            return Err(MaterializeError::NonUtf8Path { path });
        };
        let child = if rel.is_empty() {
            name.to_owned()
        } else {
            format!("{rel}/{name}")
        };
        let meta = fs::metadata(&path).map_err(io_err("reading", &path))?;
        if meta.is_dir() {
            files_for_index(root, &child, out)?;
        } else if meta.is_file() {
            out.push((path, child));
        }
    }
    Ok(())
}

/// Initialises `dir` as a git repository on `main` and commits every file in it.
fn init_gitops_repo(dir: &Path) -> Result<(), MaterializeError> {
    let mut opts = RepositoryInitOptions::new();
    opts.initial_head(BRANCH)
        .no_reinit(true)
        // Do not pick up the user's init.templateDir (hooks and the like).
        .external_template(false);
    let repo = Repository::init_opts(dir, &opts).map_err(git_err("init", dir))?;

    let mut files = Vec::new();
    files_for_index(dir, "", &mut files)?;

    let mut index = repo.index().map_err(git_err("opening index", dir))?;
    for (path, rel) in &files {
        let bytes = fs::read(path).map_err(io_err("reading", path))?;
        let mode = if is_executable(path)? {
            0o100_755
        } else {
            0o100_644
        };
        let entry = IndexEntry {
            ctime: IndexTime::new(0, 0),
            mtime: IndexTime::new(0, 0),
            dev: 0,
            ino: 0,
            mode,
            uid: 0,
            gid: 0,
            file_size: 0,
            id: git2::Oid::ZERO_SHA1,
            flags: 0,
            flags_extended: 0,
            path: rel.as_bytes().to_vec(),
        };
        // Raw bytes straight into the object database: no autocrlf or .gitattributes filters,
        // so the committed blobs are byte-identical to the example's files.
        index
            .add_frombuffer(&entry, &bytes)
            .map_err(git_err("adding files to the index", dir))?;
    }
    index.write().map_err(git_err("writing the index", dir))?;
    let tree_id = index
        .write_tree()
        .map_err(git_err("writing the tree", dir))?;
    let tree = repo
        .find_tree(tree_id)
        .map_err(git_err("reading the tree", dir))?;

    let signature = Signature::now(AUTHOR_NAME, AUTHOR_EMAIL)
        .map_err(git_err("creating the signature", dir))?;
    let reference = format!("refs/heads/{BRANCH}");
    repo.commit(
        Some(&reference),
        &signature,
        &signature,
        COMMIT_MESSAGE,
        &tree,
        &[],
    )
    .map_err(git_err("committing", dir))?;
    // Belt and braces: HEAD already names refs/heads/main through initial_head.
    repo.set_head(&reference)
        .map_err(git_err("pointing HEAD at main", dir))?;
    Ok(())
}

#[cfg(unix)]
fn is_executable(path: &Path) -> Result<bool, MaterializeError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = fs::metadata(path).map_err(io_err("reading", path))?;
    Ok(meta.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(_path: &Path) -> Result<bool, MaterializeError> {
    Ok(false)
}

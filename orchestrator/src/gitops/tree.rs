//! Commits built in memory: a new tree from a base tree and the changed files only, with git2's
//! tree builder. Cost grows with the number of files changed, not with the repository.

use std::collections::{BTreeMap, HashMap};

use git2::{FileMode, Oid, Repository, Tree};

/// Errors while building a tree.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    /// A path component is a file where a directory is needed (or the reverse).
    #[error("`{path}` is not a directory in the base tree")]
    NotADirectory {
        /// The path.
        path: String,
    },
    /// A symlink on the way: ringmaster never follows or replaces symlinks.
    #[error("`{path}` is a symlink; ringmaster does not edit through symlinks")]
    Symlink {
        /// The path.
        path: String,
    },
    /// libgit2 failed.
    #[error("git: {0}")]
    Git(#[from] git2::Error),
}

/// Reads files of one tree by path, reading each directory once. (libgit2 does not cache large
/// tree objects and verifies each object's hash on every read; resolving 2,000 paths one by one
/// re-read a 1,300-entry directory 2,000 times.)
pub struct TreeReader<'r> {
    repo: &'r Repository,
    root: Tree<'r>,
    dirs: HashMap<String, Tree<'r>>,
}

impl std::fmt::Debug for TreeReader<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TreeReader")
            .field("root", &self.root.id())
            .field("cached_dirs", &self.dirs.len())
            .finish()
    }
}

impl<'r> TreeReader<'r> {
    /// Read files of `root`.
    pub fn new(repo: &'r Repository, root: Tree<'r>) -> TreeReader<'r> {
        TreeReader {
            repo,
            root,
            dirs: HashMap::new(),
        }
    }

    /// The directory `dir` ("" = root); `Ok(None)` when it does not exist. Symlinks and files
    /// where a directory is expected are errors.
    fn dir(&mut self, dir: &str) -> Result<Option<Tree<'r>>, TreeError> {
        if dir.is_empty() {
            return Ok(Some(self.root.clone()));
        }
        if let Some(t) = self.dirs.get(dir) {
            return Ok(Some(t.clone()));
        }
        let (parent, name) = dir.rsplit_once('/').unwrap_or(("", dir));
        let Some(parent_tree) = self.dir(parent)? else {
            return Ok(None);
        };
        let Some(entry) = parent_tree.get_name(name) else {
            return Ok(None);
        };
        match entry.filemode() {
            m if m == i32::from(FileMode::Tree) => {
                let t = self.repo.find_tree(entry.id())?;
                self.dirs.insert(dir.to_owned(), t.clone());
                Ok(Some(t))
            }
            m if m == i32::from(FileMode::Link) => Err(TreeError::Symlink {
                path: dir.to_owned(),
            }),
            _ => Err(TreeError::NotADirectory {
                path: dir.to_owned(),
            }),
        }
    }

    /// A regular file's content; `Ok(None)` when it does not exist. Symlinks and directories
    /// are errors: ringmaster edits regular files only and never follows links.
    pub fn read(&mut self, path: &str) -> Result<Option<Vec<u8>>, TreeError> {
        let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
        let Some(tree) = self.dir(dir)? else {
            return Ok(None);
        };
        let Some(entry) = tree.get_name(name) else {
            return Ok(None);
        };
        match entry.filemode() {
            m if m == i32::from(FileMode::Link) => Err(TreeError::Symlink {
                path: path.to_owned(),
            }),
            m if m == i32::from(FileMode::Tree) => Err(TreeError::NotADirectory {
                path: path.to_owned(),
            }),
            _ => Ok(Some(self.repo.find_blob(entry.id())?.content().to_vec())),
        }
    }
}

/// Read one file of `tree` by path (see [`TreeReader`] for many).
pub fn read_file(
    repo: &Repository,
    tree: &Tree<'_>,
    path: &str,
) -> Result<Option<Vec<u8>>, TreeError> {
    TreeReader::new(repo, tree.clone()).read(path)
}

/// Write a new tree: `base` with every file of `files` (path → content) replaced or added.
/// Untouched subtrees are reused by id; existing file modes (executable) are kept.
pub fn write_tree_with(
    repo: &Repository,
    base: &Tree<'_>,
    files: &BTreeMap<String, Vec<u8>>,
) -> Result<Oid, TreeError> {
    let entries: Vec<(Vec<&str>, &Vec<u8>)> = files
        .iter()
        .map(|(p, c)| (p.split('/').collect(), c))
        .collect();
    let refs: Vec<(&[&str], &Vec<u8>)> = entries.iter().map(|(p, c)| (p.as_slice(), *c)).collect();
    write_level(repo, Some(base), "", &refs)
}

/// A file below a directory: the rest of its path and its content.
type FileAt<'a> = (&'a [&'a str], &'a Vec<u8>);

fn write_level(
    repo: &Repository,
    base: Option<&Tree<'_>>,
    prefix: &str,
    files: &[(&[&str], &Vec<u8>)],
) -> Result<Oid, TreeError> {
    let mut builder = repo.treebuilder(base)?;
    // Group by first component; BTreeMap keeps a deterministic order.
    let mut dirs: BTreeMap<&str, Vec<FileAt<'_>>> = BTreeMap::new();
    for (parts, content) in files {
        match parts {
            [name] => {
                let path = format!("{prefix}{name}");
                let mode = match base.and_then(|t| t.get_name(name)) {
                    Some(e) if e.filemode() == i32::from(FileMode::Link) => {
                        return Err(TreeError::Symlink { path });
                    }
                    Some(e) if e.filemode() == i32::from(FileMode::Tree) => {
                        return Err(TreeError::NotADirectory { path });
                    }
                    Some(e) if e.filemode() == i32::from(FileMode::BlobExecutable) => {
                        FileMode::BlobExecutable
                    }
                    _ => FileMode::Blob,
                };
                // Through the object database's plain write (not a write stream), so an in-memory
                // backend, when present, receives it.
                let blob = repo.odb()?.write(git2::ObjectType::Blob, content)?;
                builder.insert(name, blob, mode.into())?;
            }
            [dir, rest @ ..] => dirs.entry(dir).or_default().push((rest, content)),
            [] => {}
        }
    }
    for (dir, children) in dirs {
        let path = format!("{prefix}{dir}");
        let sub = match base.and_then(|t| t.get_name(dir)) {
            Some(e) if e.filemode() == i32::from(FileMode::Tree) => Some(repo.find_tree(e.id())?),
            Some(e) if e.filemode() == i32::from(FileMode::Link) => {
                return Err(TreeError::Symlink { path });
            }
            Some(_) => return Err(TreeError::NotADirectory { path }),
            None => None,
        };
        let id = write_level(repo, sub.as_ref(), &format!("{path}/"), &children)?;
        builder.insert(dir, id, FileMode::Tree.into())?;
    }
    Ok(builder.write()?)
}

/// The unified diff between two trees, as `git diff` prints it (applicable with `git apply`).
pub fn unified_diff(
    repo: &Repository,
    old: &Tree<'_>,
    new: &Tree<'_>,
) -> Result<String, git2::Error> {
    let mut opts = git2::DiffOptions::new();
    opts.context_lines(3);
    let diff = repo.diff_tree_to_tree(Some(old), Some(new), Some(&mut opts))?;
    let mut out = Vec::new();
    diff.print(git2::DiffFormat::Patch, |_delta, _hunk, line| {
        match line.origin() {
            '+' | '-' | ' ' => out.push(line.origin() as u8),
            _ => {}
        }
        out.extend_from_slice(line.content());
        true
    })?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use examples::{MaterializeError, fleet_dir, materialize, small_team_dir};
use git2::{ObjectType, Repository, TreeWalkMode, TreeWalkResult};

/// Every file under `root`, keyed by its '/'-separated path relative to `root`.
fn files_on_disk(root: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.file_name().unwrap() == ".git" {
                continue;
            }
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path.strip_prefix(root).unwrap();
                let rel: Vec<_> = rel.iter().map(|c| c.to_str().unwrap()).collect();
                out.insert(rel.join("/"), fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// Every blob of the tree at refs/heads/main, keyed by path.
fn files_in_main(repo: &Repository) -> BTreeMap<String, Vec<u8>> {
    let main = repo.find_reference("refs/heads/main").unwrap();
    let tree = main.peel_to_commit().unwrap().tree().unwrap();
    let mut out = BTreeMap::new();
    tree.walk(TreeWalkMode::PreOrder, |dir, entry| {
        if entry.kind() == Some(ObjectType::Blob) {
            let blob = repo.find_blob(entry.id()).unwrap();
            out.insert(
                format!("{dir}{}", entry.name().unwrap()),
                blob.content().to_vec(),
            );
        }
        TreeWalkResult::Ok
    })
    .unwrap();
    out
}

fn cluster_files(files: &BTreeMap<String, Vec<u8>>) -> Vec<&String> {
    files
        .keys()
        .filter(|p| p.starts_with("clusters/") && p.ends_with("/cluster.yaml"))
        .collect()
}

#[test]
fn fleet_becomes_a_git_repository_on_main() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("fleet");
    let config = materialize(&fleet_dir(), &dest).unwrap();
    assert_eq!(config, dest.join("ringmaster.yaml"));
    assert_eq!(
        fs::read(&config).unwrap(),
        fs::read(fleet_dir().join("ringmaster.yaml")).unwrap()
    );
    for rel in [
        "rings.yaml",
        "releases/01-k8s-1.33.yaml",
        "releases/02-addons-2026-11.yaml",
        "releases/03-restricted-prod-2.4.0.yaml",
    ] {
        assert_eq!(
            fs::read(dest.join(rel)).unwrap(),
            fs::read(fleet_dir().join(rel)).unwrap(),
            "{rel}"
        );
    }

    let repo = Repository::open(dest.join("gitops")).unwrap();
    assert!(!repo.is_bare());
    let head = repo.find_reference("HEAD").unwrap();
    assert_eq!(head.symbolic_target().unwrap(), Some("refs/heads/main"));

    let commit = repo
        .find_reference("refs/heads/main")
        .unwrap()
        .peel_to_commit()
        .unwrap();
    assert_eq!(commit.message().unwrap(), "Initial fleet registry");
    assert_eq!(commit.parent_count(), 0);
    assert_eq!(commit.author().name().unwrap(), "ringmaster example");
    assert_eq!(
        commit.author().email().unwrap(),
        "example@ringmaster.invalid"
    );
    assert_eq!(
        commit.committer().email().unwrap(),
        "example@ringmaster.invalid"
    );

    let committed = files_in_main(&repo);
    let source = files_on_disk(&fleet_dir().join("gitops"));
    assert_eq!(cluster_files(&committed).len(), 15);
    assert_eq!(cluster_files(&source).len(), 15);
    for path in cluster_files(&source) {
        assert_eq!(committed.get(path), source.get(path), "{path}");
    }
    // Every file of gitops/, nothing more.
    assert_eq!(committed, source);
    // The work tree matches the commit.
    assert_eq!(files_on_disk(&dest.join("gitops")), source);
}

#[test]
fn small_team_materializes_three_clusters() {
    let tmp = tempfile::tempdir().unwrap();
    // An existing, empty destination is fine.
    let config = materialize(&small_team_dir(), tmp.path()).unwrap();
    assert!(config.is_file());
    let repo = Repository::open(tmp.path().join("gitops")).unwrap();
    let committed = files_in_main(&repo);
    assert_eq!(cluster_files(&committed).len(), 3);
    assert_eq!(committed, files_on_disk(&small_team_dir().join("gitops")));
}

#[test]
fn non_empty_destination_is_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("occupied");
    fs::create_dir(&dest).unwrap();
    fs::write(dest.join("notes.txt"), "keep me").unwrap();
    let err = materialize(&fleet_dir(), &dest).unwrap_err();
    assert!(
        matches!(&err, MaterializeError::DestinationNotEmpty { path } if *path == dest),
        "{err:?}"
    );
    assert!(
        err.to_string().contains(&dest.display().to_string()),
        "{err}"
    );
    // Nothing was touched.
    assert_eq!(fs::read_dir(&dest).unwrap().count(), 1);

    // A plain file in the way is refused too.
    let file = tmp.path().join("file");
    fs::write(&file, "x").unwrap();
    let err = materialize(&fleet_dir(), &file).unwrap_err();
    assert!(
        err.to_string().contains(&file.display().to_string()),
        "{err}"
    );
}

#[test]
fn destination_inside_the_example_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let example = tmp.path().join("ex");
    let copy = tmp.path().join("copy");
    materialize(&small_team_dir(), &example).unwrap();
    // A materialized copy is itself an example setup; it can be materialized again elsewhere...
    materialize(&example, &copy).unwrap();
    assert_eq!(
        files_in_main(&Repository::open(copy.join("gitops")).unwrap()),
        files_on_disk(&small_team_dir().join("gitops"))
    );
    // ...but not into itself.
    let inside = example.join("nested");
    let err = materialize(&example, &inside).unwrap_err();
    assert!(
        matches!(err, MaterializeError::DestinationInsideExample { .. }),
        "{err:?}"
    );
}

#[test]
fn a_directory_without_ringmaster_yaml_is_not_an_example() {
    let tmp = tempfile::tempdir().unwrap();
    let err = materialize(tmp.path(), &tmp.path().join("out")).unwrap_err();
    assert!(
        matches!(err, MaterializeError::NotAnExample { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains(&tmp.path().display().to_string()));
}

/// Cheap consistency checks on the example data itself (the real loader lives in `rings`).
#[test]
fn registry_entries_match_their_paths() {
    for root in [fleet_dir(), small_team_dir()] {
        let files = files_on_disk(&root.join("gitops"));
        for path in cluster_files(&files) {
            let text = String::from_utf8(files[path].clone()).unwrap();
            assert!(!text.contains('\r'), "{path}: LF line endings only");
            let field = |name: &str| -> String {
                text.lines()
                    .find_map(|l| l.strip_prefix(&format!("{name}: ")))
                    .unwrap_or_else(|| panic!("{path}: no {name}"))
                    .trim_matches('"')
                    .to_owned()
            };
            let parts: Vec<&str> = path.split('/').collect();
            assert_eq!(field("clusterId"), parts[2], "{path}");
            assert_eq!(field("provider"), parts[1], "{path}");
            let service = if parts[1] == "aws" { "eks" } else { "aks" };
            assert_eq!(field("service"), service, "{path}");
        }
    }
}

#[test]
fn fleet_files_exist() {
    let root: PathBuf = fleet_dir();
    for rel in ["ringmaster.yaml", "rings.yaml"] {
        assert!(root.join(rel).is_file(), "{rel}");
    }
    let paused = files_on_disk(&root.join("gitops"))
        .into_iter()
        .filter(|(_, v)| String::from_utf8_lossy(v).contains("paused: true"))
        .map(|(k, _)| k)
        .collect::<Vec<_>>();
    assert_eq!(paused, ["clusters/azure/azr-neu-prod-02/cluster.yaml"]);
}

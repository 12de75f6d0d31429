#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The GitOps change engine against real repositories: a bare "forge" repository on disk as the
//! remote, ringmaster's mirror fetching from it and pushing ring branches to it.

use std::path::{Path, PathBuf};

use chrono::{DateTime, TimeZone, Utc};
use git2::{Oid, Repository, Signature};
use orchestrator::gitops::mirror::MirrorError;
use orchestrator::gitops::{GitOps, GitOpsError, MirrorGitOps, Publication, StepRequest};
use rings::Config;

mod support;

struct Setup {
    ex: support::Example,
    remote: PathBuf,
}

/// The example fleet with its GitOps repository turned into a bare remote (`remote.git`).
fn setup() -> Setup {
    let ex = support::Example::with_bare_remote();
    let remote = ex.remote.clone();
    Setup { ex, remote }
}

impl Setup {
    fn config_path(&self) -> PathBuf {
        self.ex.config_path()
    }

    fn engine(&self) -> MirrorGitOps {
        support::engine(&self.config_path())
    }

    /// Fetch and load the configuration with the registry read from the mirror.
    fn load(&self, engine: &mut MirrorGitOps) -> (Oid, Config) {
        support::load(engine, &self.config_path())
    }

    fn remote_repo(&self) -> Repository {
        Repository::open_bare(&self.remote).unwrap()
    }

    fn remote_refs(&self) -> Vec<(String, Oid)> {
        let repo = self.remote_repo();
        let mut refs: Vec<(String, Oid)> = repo
            .references()
            .unwrap()
            .filter_map(Result::ok)
            .filter_map(|r| Some((r.name().ok()?.to_owned(), r.target()?)))
            .collect();
        refs.sort();
        refs
    }

    /// Commit `files` on top of the remote's `branch` directly (someone else's change).
    fn commit_on_remote(&self, branch: &str, files: &[(&str, &str)], message: &str) -> Oid {
        let repo = self.remote_repo();
        let refname = format!("refs/heads/{branch}");
        let parent = repo
            .find_commit(repo.refname_to_id(&refname).unwrap())
            .unwrap();
        let mut index = git2::Index::new().unwrap();
        index.read_tree(&parent.tree().unwrap()).unwrap();
        for (path, content) in files {
            let blob = repo.blob(content.as_bytes()).unwrap();
            let entry = git2::IndexEntry {
                ctime: git2::IndexTime::new(0, 0),
                mtime: git2::IndexTime::new(0, 0),
                dev: 0,
                ino: 0,
                mode: 0o100_644,
                uid: 0,
                gid: 0,
                file_size: 0,
                id: blob,
                flags: 0,
                flags_extended: 0,
                path: path.as_bytes().to_vec(),
            };
            index.add(&entry).unwrap();
        }
        let tree = repo.find_tree(index.write_tree_to(&repo).unwrap()).unwrap();
        let sig = Signature::now("someone", "someone@example.invalid").unwrap();
        repo.commit(Some(&refname), &sig, &sig, message, &tree, &[&parent])
            .unwrap()
    }
}

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 8, 0, 0).unwrap()
}

fn request<'a>(config: &'a Config, release: &str, ring: &str, step: u32) -> StepRequest<'a> {
    StepRequest {
        config,
        release: config.release(release).unwrap(),
        ring_index: config
            .ring_set
            .rings
            .iter()
            .position(|r| r.name.as_str() == ring)
            .unwrap(),
        step,
        time: at(),
    }
}

fn changed_files(repo: &Repository, base: Oid, commit: Oid) -> Vec<String> {
    let old = repo.find_commit(base).unwrap().tree().unwrap();
    let new = repo.find_commit(commit).unwrap().tree().unwrap();
    let diff = repo
        .diff_tree_to_tree(Some(&old), Some(&new), None)
        .unwrap();
    diff.deltas()
        .map(|d| d.new_file().path().unwrap().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn a_ring_step_becomes_one_commit_with_only_the_version_changed() {
    let s = setup();
    let mut engine = s.engine();
    let (base, config) = s.load(&mut engine);
    let req = request(&config, "k8s-1.33", "nonprod", 1);
    let (publication, step) = engine.publish(&req, None).unwrap();
    let step = step.unwrap();
    assert_eq!(step.branch, "ringmaster/k8s-1.33/nonprod/1");
    assert_eq!(
        publication,
        Publication::Pushed {
            commit: step.commit,
            replaced: None
        }
    );

    // The remote has the branch, on the base head.
    let remote = s.remote_repo();
    let head = remote
        .refname_to_id("refs/heads/ringmaster/k8s-1.33/nonprod/1")
        .unwrap();
    assert_eq!(head, step.commit);
    let commit = remote.find_commit(head).unwrap();
    assert_eq!(commit.parent_ids().collect::<Vec<_>>(), [base]);

    // Four registry files, each with exactly one line changed: the version.
    let files = changed_files(&remote, base, head);
    assert_eq!(files.len(), 4, "{files:?}");
    let diff = engine.diff(base, head).unwrap();
    let removed: Vec<&str> = diff
        .lines()
        .filter(|l| l.starts_with('-') && !l.starts_with("---"))
        .collect();
    let added: Vec<&str> = diff
        .lines()
        .filter(|l| l.starts_with('+') && !l.starts_with("+++"))
        .collect();
    assert_eq!(removed.len(), 4, "{diff}");
    assert_eq!(added.len(), 4, "{diff}");
    for (r, a) in removed.iter().zip(&added) {
        assert!(r.contains("1.32") && a.contains("1.33"), "{r} / {a}");
        assert_eq!(
            r.replace("1.32", "1.33")[1..],
            a[1..],
            "only the value changes, quotes and comments stay"
        );
    }

    // The message a reviewer reads, with trailers for machines.
    let message = commit.message().unwrap();
    assert!(
        message.starts_with("ringmaster: Kubernetes 1.32 → 1.33 for ring nonprod (4 clusters)\n"),
        "{message}"
    );
    assert!(
        message.contains(
            "\nRingmaster-Rollout: k8s-1.33\nRingmaster-Ring: nonprod\nRingmaster-Step: 1\n"
        ),
        "{message}"
    );
}

#[test]
fn the_same_inputs_give_the_same_tree_and_publishing_twice_is_a_no_op() {
    let s = setup();
    let mut engine = s.engine();
    let (base, config) = s.load(&mut engine);
    let req = request(&config, "k8s-1.33", "sandbox", 1);
    let one = engine.prepare(base, &req).unwrap().unwrap();
    let later = StepRequest {
        time: at() + chrono::TimeDelta::hours(5),
        ..req
    };
    let two = engine.prepare(base, &later).unwrap().unwrap();
    assert_eq!(one.tree, two.tree);
    assert_ne!(one.commit, two.commit, "the commit time differs");

    let (first, _) = engine.publish(&req, None).unwrap();
    let Publication::Pushed { commit, .. } = first else {
        panic!("{first:?}")
    };
    let refs = s.remote_refs();
    let (again, _) = engine.publish(&later, Some(commit)).unwrap();
    assert_eq!(again, Publication::UpToDate { commit });
    assert_eq!(s.remote_refs(), refs, "nothing pushed");
}

#[test]
fn a_laggard_moves_one_minor_per_step() {
    let s = setup();
    let mut engine = s.engine();
    let (base, config) = s.load(&mut engine);
    let step = engine
        .prepare(base, &request(&config, "k8s-1.33", "sandbox", 1))
        .unwrap()
        .unwrap();
    assert_eq!(
        step.title,
        "ringmaster: Kubernetes 1.31 → 1.32 for ring sandbox (1 cluster)"
    );
    let diff = engine.diff(base, step.commit).unwrap();
    assert!(
        diff.contains("-kubernetesVersion: \"1.31\"\n+kubernetesVersion: \"1.32\"\n")
            || diff.contains("-kubernetesVersion: 1.31\n+kubernetesVersion: 1.32\n"),
        "{diff}"
    );
}

#[test]
fn when_the_base_moves_the_branch_is_regenerated_on_the_new_head() {
    let s = setup();
    let mut engine = s.engine();
    let (_, config) = s.load(&mut engine);
    let (first, _) = engine
        .publish(&request(&config, "k8s-1.33", "nonprod", 1), None)
        .unwrap();
    let Publication::Pushed { commit: old, .. } = first else {
        panic!()
    };

    let moved = s.commit_on_remote("main", &[("docs/README.md", "unrelated change\n")], "docs");
    let (_, config) = s.load(&mut engine);
    let (second, step) = engine
        .publish(&request(&config, "k8s-1.33", "nonprod", 1), Some(old))
        .unwrap();
    let step = step.unwrap();
    assert_eq!(
        second,
        Publication::Pushed {
            commit: step.commit,
            replaced: Some(old)
        }
    );
    let remote = s.remote_repo();
    let head = remote
        .find_commit(
            remote
                .refname_to_id("refs/heads/ringmaster/k8s-1.33/nonprod/1")
                .unwrap(),
        )
        .unwrap();
    assert_eq!(
        head.parent_ids().collect::<Vec<_>>(),
        [moved],
        "regenerated on the new base, not rebased"
    );
    assert_eq!(changed_files(&remote, moved, head.id()).len(), 4);
}

#[test]
fn the_lease_refuses_to_overwrite_a_branch_someone_else_moved() {
    let s = setup();
    let mut engine = s.engine();
    let (_, config) = s.load(&mut engine);
    let (first, _) = engine
        .publish(&request(&config, "k8s-1.33", "nonprod", 1), None)
        .unwrap();
    let Publication::Pushed { commit: ours, .. } = first else {
        panic!()
    };
    let theirs = s.commit_on_remote(
        "ringmaster/k8s-1.33/nonprod/1",
        &[("notes.txt", "hand edit\n")],
        "hand edit",
    );
    s.commit_on_remote("main", &[("docs/x.md", "x\n")], "move base");
    let (_, config) = s.load(&mut engine);
    let err = engine
        .publish(&request(&config, "k8s-1.33", "nonprod", 1), Some(ours))
        .unwrap_err();
    match err {
        GitOpsError::Mirror(MirrorError::LeaseBroken {
            branch,
            expected,
            found,
        }) => {
            assert_eq!(branch, "ringmaster/k8s-1.33/nonprod/1");
            assert_eq!(expected, ours.to_string());
            assert_eq!(found, theirs.to_string());
        }
        other => panic!("{other:?}"),
    }
    let remote = s.remote_repo();
    assert_eq!(
        remote
            .refname_to_id("refs/heads/ringmaster/k8s-1.33/nonprod/1")
            .unwrap(),
        theirs,
        "their commit survives"
    );

    // A branch that exists although ringmaster never pushed it is not overwritten either.
    let (_, config) = s.load(&mut engine);
    let err = engine
        .publish(&request(&config, "k8s-1.33", "nonprod", 1), None)
        .unwrap_err();
    assert!(
        matches!(err, GitOpsError::Mirror(MirrorError::LeaseBroken { .. })),
        "{err}"
    );
}

#[test]
fn only_ringmaster_branches_are_ever_pushed() {
    let s = setup();
    let mut engine = s.engine();
    let (base, _) = s.load(&mut engine);
    for branch in ["main", "feature/x", "ringmaster-evil", "ringmaster/../main"] {
        let err = engine
            .mirror()
            .push_with_lease(branch, base, Some(base))
            .unwrap_err();
        assert!(
            matches!(err, MirrorError::NotOurs { .. }),
            "{branch}: {err}"
        );
    }
}

#[test]
fn nothing_to_change_means_no_commit_and_no_branch() {
    let s = setup();
    let mut engine = s.engine();
    let (_, config) = s.load(&mut engine);
    let refs = s.remote_refs();
    let (p, step) = engine
        .publish(
            &request(&config, "restricted-prod-2.4.0", "sandbox", 1),
            None,
        )
        .unwrap();
    assert_eq!(p, Publication::NothingToChange);
    assert!(step.is_none());
    assert_eq!(s.remote_refs(), refs);
}

fn add_edit_rules(s: &Setup, rules: &str) {
    let path = s.ex.dir.join("rings.yaml");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(rules);
    std::fs::write(path, text).unwrap();
}

#[test]
fn edit_rules_change_terraform_and_helm_values_too() {
    let s = setup();
    add_edit_rules(
        &s,
        "edits:\n  - when: { provider: aws }\n    kubernetes: { file: \"terraform/eks/{clusterId}.tfvars\", regex: 'cluster_version\\s*=\\s*\"(?P<version>[^\"]+)\"' }\n  - addon: coredns\n    file: \"clusters/{provider}/{clusterId}/addons/coredns.yaml\"\n    yamlPath: \".spec.chart.spec.version\"\n",
    );
    s.commit_on_remote(
        "main",
        &[
            ("terraform/eks/aws-euw1-stg-01.tfvars", "cluster_name    = \"aws-euw1-stg-01\"\ncluster_version = \"1.32\" # managed by ringmaster\n"),
            ("terraform/eks/aws-use1-dev-01.tfvars", "cluster_version = \"1.32\"\n"),
        ],
        "terraform",
    );
    let mut engine = s.engine();
    let (base, config) = s.load(&mut engine);
    let step = engine
        .prepare(base, &request(&config, "k8s-1.33", "nonprod", 1))
        .unwrap()
        .unwrap();
    let files = changed_files(engine.mirror().repo(), base, step.commit);
    assert_eq!(files.len(), 6, "{files:?}");
    let diff = engine.diff(base, step.commit).unwrap();
    assert!(diff.contains("-cluster_version = \"1.32\" # managed by ringmaster\n+cluster_version = \"1.33\" # managed by ringmaster\n"), "{diff}");

    // The add-on rule: the HelmRelease file is missing for the cluster -> a clear error, nothing pushed.
    let refs = s.remote_refs();
    let err = engine
        .publish(&request(&config, "addons-2026-11", "nonprod", 1), None)
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("aws-euw1-stg-01")
            && msg.contains("addons/coredns.yaml")
            && msg.contains("does not exist"),
        "{msg}"
    );
    assert_eq!(
        s.remote_refs(),
        refs,
        "an edit error leaves the remote untouched"
    );
}

#[test]
fn a_refused_yaml_edit_names_the_file_and_cluster_and_pushes_nothing() {
    let s = setup();
    // An anchored version: editing it would change other places.
    let path = "clusters/aws/aws-use1-dev-01/cluster.yaml";
    let remote = s.remote_repo();
    let main = remote
        .find_commit(remote.refname_to_id("refs/heads/main").unwrap())
        .unwrap();
    let blob = main
        .tree()
        .unwrap()
        .get_path(Path::new(path))
        .unwrap()
        .to_object(&remote)
        .unwrap();
    let text = String::from_utf8(blob.as_blob().unwrap().content().to_vec()).unwrap();
    let anchored = text.replacen("kubernetesVersion: 1.32", "kubernetesVersion: &v 1.32", 1);
    assert_ne!(anchored, text);
    s.commit_on_remote("main", &[(path, &anchored)], "anchor");
    let refs = s.remote_refs();
    let mut engine = s.engine();
    let (_, config) = s.load(&mut engine);
    let err = engine
        .publish(&request(&config, "k8s-1.33", "nonprod", 1), None)
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("aws-use1-dev-01") && msg.contains(path),
        "{msg}"
    );
    assert_eq!(s.remote_refs(), refs);
}

#[test]
fn the_lease_is_checked_against_the_remote_not_the_mirrors_last_view() {
    let s = setup();
    let mut engine = s.engine();
    let (base, config) = s.load(&mut engine);
    let (first, _) = engine
        .publish(&request(&config, "k8s-1.33", "nonprod", 1), None)
        .unwrap();
    let Publication::Pushed { commit: ours, .. } = first else {
        panic!()
    };
    // Someone moves the branch after ringmaster's last fetch; ringmaster does not fetch again.
    let theirs = s.commit_on_remote("ringmaster/k8s-1.33/nonprod/1", &[("x.txt", "x\n")], "race");
    let step = engine
        .prepare(base, &request(&config, "k8s-1.33", "nonprod", 1))
        .unwrap()
        .unwrap();
    assert_eq!(
        engine.remote_branch(&step.branch).unwrap(),
        Some(ours),
        "the mirror still believes its own push"
    );
    let err = engine
        .push(&step.branch, step.commit, Some(ours))
        .unwrap_err();
    assert!(
        matches!(err, GitOpsError::Mirror(MirrorError::LeaseBroken { .. })),
        "{err}"
    );
    assert_eq!(
        s.remote_repo()
            .refname_to_id("refs/heads/ringmaster/k8s-1.33/nonprod/1")
            .unwrap(),
        theirs
    );
}

#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The built-in local forge: PR records in the store, approvals per head, merges with git2.

use std::path::PathBuf;

use chrono::{TimeZone, Utc};
use git2::Repository;
use orchestrator::forge::local::LocalForge;
use orchestrator::forge::{Forge, ForgeError, OpenPr, PrLifecycle, labels};
use orchestrator::gitops::mirror::Mirror;
use orchestrator::gitops::{GitOps, Publication, StepRequest};
use state::Store;

mod support;

struct Setup {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    remote: PathBuf,
}

fn setup() -> Setup {
    let ex = support::Example::with_bare_remote();
    Setup {
        _tmp: ex.tmp,
        dir: ex.dir,
        remote: ex.remote,
    }
}

/// Push the branch of a ring step; returns (branch, head).
fn push_step(s: &Setup, release: &str, ring: &str) -> (String, String) {
    let cfg = s.dir.join("ringmaster.yaml");
    let mut engine = support::engine(&cfg);
    let (_, config) = support::load(&mut engine, &cfg);
    let req = StepRequest {
        config: &config,
        release: config.release(release).unwrap(),
        ring_index: config
            .ring_set
            .rings
            .iter()
            .position(|r| r.name.as_str() == ring)
            .unwrap(),
        step: 1,
        time: Utc.with_ymd_and_hms(2026, 11, 25, 8, 0, 0).unwrap(),
    };
    let (p, step) = engine.publish(&req, None).unwrap();
    assert!(matches!(p, Publication::Pushed { .. }));
    let step = step.unwrap();
    (step.branch, step.commit.to_string())
}

fn open_pr(branch: &str) -> OpenPr {
    OpenPr {
        branch: branch.to_owned(),
        base: "main".into(),
        title: "[ring 2/4 nonprod] Kubernetes 1.32 → 1.33 (4 clusters)".into(),
        body: "body".into(),
        labels: labels("k8s-1.33", "nonprod"),
        reviewers: vec!["acme/platform-sre".into()],
    }
}

#[tokio::test]
async fn a_pr_is_opened_once_approved_for_its_head_and_merged_with_a_merge_commit() {
    let s = setup();
    let (branch, head) = push_step(&s, "k8s-1.33", "nonprod");
    let store = Store::open(&s.dir.join("ringmaster.db")).unwrap();
    let forge = LocalForge::new(
        &store,
        Repository::open_bare(&s.remote).unwrap(),
        ("ringmaster".into(), "r@example.invalid".into()),
    );
    let n = forge.find_or_open(&open_pr(&branch)).await.unwrap();
    assert_eq!(
        forge.find_or_open(&open_pr(&branch)).await.unwrap(),
        n,
        "never a second PR"
    );
    assert_eq!(store.local_prs().unwrap().len(), 1);
    let st = forge.status(n).await.unwrap();
    assert_eq!(
        (st.state, st.head_sha.as_str(), st.approved()),
        (PrLifecycle::Open, head.as_str(), false)
    );

    assert_eq!(forge.approve(n, "alice").unwrap(), head);
    let st = forge.status(n).await.unwrap();
    assert_eq!(st.approvals, ["alice"]);
    assert!(st.approved());

    // Comments and labels are idempotent.
    forge.comment(n, "halt", "first").await.unwrap();
    forge.comment(n, "halt", "second").await.unwrap();
    forge
        .add_labels(n, &["ringmaster/halted".into(), "ringmaster".into()])
        .await
        .unwrap();
    let pr = store.local_pr(n).unwrap().unwrap();
    assert_eq!(pr.comments, [("halt".to_owned(), "second".to_owned())]);
    assert_eq!(
        pr.labels,
        [
            "ring/nonprod",
            "ringmaster",
            "ringmaster/halted",
            "rollout/k8s-1.33"
        ]
    );

    // A stale expected head is refused; the right one merges.
    let err = forge
        .merge(n, "0000000000000000000000000000000000000000")
        .await
        .unwrap_err();
    assert!(matches!(err, ForgeError::HeadMoved { .. }), "{err}");
    let remote = Repository::open_bare(&s.remote).unwrap();
    let base_before = remote.refname_to_id("refs/heads/main").unwrap();
    let merge = forge.merge(n, &head).await.unwrap();
    let main = remote
        .find_commit(remote.refname_to_id("refs/heads/main").unwrap())
        .unwrap();
    assert_eq!(main.id().to_string(), merge);
    assert_eq!(
        main.parent_ids().map(|p| p.to_string()).collect::<Vec<_>>(),
        [base_before.to_string(), head.clone()]
    );
    let st = forge.status(n).await.unwrap();
    assert_eq!(st.state, PrLifecycle::Merged);
    assert_eq!(st.merge_sha.as_deref(), Some(merge.as_str()));
    // Merging again is refused, not repeated.
    assert!(matches!(
        forge.merge(n, &head).await.unwrap_err(),
        ForgeError::NotMergeable { .. }
    ));
}

#[tokio::test]
async fn a_stale_branch_is_not_merged_and_an_old_approval_does_not_count() {
    let s = setup();
    let (branch, head) = push_step(&s, "k8s-1.33", "nonprod");
    let store = Store::open(&s.dir.join("ringmaster.db")).unwrap();
    let remote = Repository::open_bare(&s.remote).unwrap();
    let forge = LocalForge::new(
        &store,
        Repository::open_bare(&s.remote).unwrap(),
        ("ringmaster".into(), "r@example.invalid".into()),
    );
    let n = forge.find_or_open(&open_pr(&branch)).await.unwrap();
    forge.approve(n, "alice").unwrap();
    // The base moves: the branch is stale.
    let main = remote
        .find_commit(remote.refname_to_id("refs/heads/main").unwrap())
        .unwrap();
    let sig = git2::Signature::now("x", "x@example.invalid").unwrap();
    remote
        .commit(
            Some("refs/heads/main"),
            &sig,
            &sig,
            "moved",
            &main.tree().unwrap(),
            &[&main],
        )
        .unwrap();
    let err = forge.merge(n, &head).await.unwrap_err();
    assert!(err.to_string().contains("must be regenerated"), "{err}");
    // Someone pushes to the branch: the approval was for the old head.
    let head_commit = remote
        .find_commit(git2::Oid::from_str(&head).unwrap())
        .unwrap();
    remote
        .commit(
            Some(&format!("refs/heads/{branch}")),
            &sig,
            &sig,
            "more",
            &head_commit.tree().unwrap(),
            &[&head_commit],
        )
        .unwrap();
    let st = forge.status(n).await.unwrap();
    assert_ne!(st.head_sha, head);
    assert!(
        st.approvals.is_empty(),
        "an approval counts only for the head it was given on"
    );
}

#[tokio::test]
async fn a_local_non_bare_repository_receives_branches_and_merges_keep_its_worktree_in_step() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = examples::materialize(&examples::fleet_dir(), &tmp.path().join("fleet")).unwrap();
    let dir = cfg.parent().unwrap().to_path_buf();
    let s = Setup {
        _tmp: tmp,
        dir: dir.clone(),
        remote: dir.join("gitops"),
    };
    let (branch, head) = push_step(&s, "k8s-1.33", "nonprod");
    let repo = Repository::open(&s.remote).unwrap();
    assert!(!repo.is_bare());
    assert_eq!(
        repo.refname_to_id(&format!("refs/heads/{branch}"))
            .unwrap()
            .to_string(),
        head
    );

    // The lease holds for local pushes too.
    let settings = rings::load::load_settings(&cfg).unwrap();
    let mirror = Mirror::open(
        &settings.data_dir,
        &settings.gitops.location,
        settings.gitops.auth.clone(),
    )
    .unwrap();
    let err = mirror
        .push_with_lease(&branch, git2::Oid::from_str(&head).unwrap(), None)
        .unwrap_err();
    assert!(err.to_string().contains("refusing to push"), "{err}");

    let store = Store::open(&dir.join("ringmaster.db")).unwrap();
    let forge = LocalForge::new(
        &store,
        Repository::open(&s.remote).unwrap(),
        ("ringmaster".into(), "r@example.invalid".into()),
    );
    let n = forge.find_or_open(&open_pr(&branch)).await.unwrap();
    forge.merge(n, &head).await.unwrap();
    let file = std::fs::read_to_string(s.remote.join("clusters/aws/aws-use1-dev-01/cluster.yaml"))
        .unwrap();
    assert!(
        file.contains("kubernetesVersion: 1.33"),
        "the checked-out main follows the merge:\n{file}"
    );
    let statuses = repo.statuses(None).unwrap();
    assert_eq!(statuses.len(), 0, "clean working tree after the merge");
}

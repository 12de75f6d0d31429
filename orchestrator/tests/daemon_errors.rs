//! One ring's error stays in its ring (issue 15): on a simulated clock with the real local
//! forge, store and git, a deleted edit target blocks only the ring that needs it — every
//! pass succeeds, the other rollouts go on, `status` and the journal name the file — and a
//! new base commit (or `resume`) unblocks it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use chrono::{DateTime, TimeDelta, Utc};
use orchestrator::daemon::clock::{Clock, ManualClock};
use orchestrator::daemon::{Daemon, control, status};
use orchestrator::forge::local::LocalForge;
use state::{BlockCause, ErrorSource, Phase, RingRun, Store};

#[path = "support/scripted.rs"]
mod scripted;
use scripted::*;

const TFVARS_RULE: &str = "edits:\n  - when: { provider: aws }\n    kubernetes: { file: \"terraform/eks/{clusterId}.tfvars\", regex: 'cluster_version\\s*=\\s*\"(?P<version>[^\"]+)\"' }\n";

/// Commit `files` (path → `Some(content)`, or `None` to delete) on `main` of the GitOps repo,
/// on top of `main` as it is (the local forge's merges move it without touching the worktree).
fn commit(repo_dir: &Path, files: &[(String, Option<String>)], message: &str) {
    let repo = git2::Repository::open(repo_dir).unwrap();
    let parent = repo
        .find_commit(repo.refname_to_id("refs/heads/main").unwrap())
        .unwrap();
    let mut index = repo.index().unwrap();
    index.read_tree(&parent.tree().unwrap()).unwrap();
    for (path, content) in files {
        match content {
            Some(text) => {
                let full = repo_dir.join(path);
                std::fs::create_dir_all(full.parent().unwrap()).unwrap();
                std::fs::write(&full, text).unwrap();
                index.add_path(Path::new(path)).unwrap();
            }
            None => index.remove_path(Path::new(path)).unwrap(),
        }
    }
    let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
    let sig = git2::Signature::now("platform", "platform@example.invalid").unwrap();
    repo.commit(
        Some("refs/heads/main"),
        &sig,
        &sig,
        message,
        &tree,
        &[&parent],
    )
    .unwrap();
}

/// Every AWS cluster of the example gets a Terraform file with its registry version.
fn tfvars_for_every_aws_cluster(gitops: &Path) -> Vec<(String, Option<String>)> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(gitops.join("clusters/aws")).unwrap() {
        let dir = entry.unwrap().path();
        let id = dir.file_name().unwrap().to_string_lossy().to_string();
        let yaml = std::fs::read_to_string(dir.join("cluster.yaml")).unwrap();
        let version = yaml
            .lines()
            .find_map(|l| l.strip_prefix("kubernetesVersion:"))
            .unwrap()
            .trim()
            .trim_matches('"')
            .to_owned();
        files.push((
            format!("terraform/eks/{id}.tfvars"),
            Some(format!(
                "cluster_name    = \"{id}\"\ncluster_version = \"{version}\"\n"
            )),
        ));
    }
    files
}

fn run_of(store: &Store, rollout: &str, ring: &str) -> RingRun {
    store.ring_run(rollout, ring).unwrap().unwrap()
}

/// Passes (approving open PRs, jumping the clock to what is due) until `done`; every pass must
/// succeed. Bounded.
async fn until(
    d: &mut Daemon<'_, LocalForge<'_>, Scripted, ManualClock>,
    limit: DateTime<Utc>,
    done: impl Fn(&Store) -> bool,
) {
    for _ in 0..3_000 {
        let report = d.pass().await.expect("a ring's error never fails the pass");
        for pr in d.forge().open_prs().unwrap() {
            d.forge().approve(pr.number, "alice").unwrap();
        }
        if done(d.store()) {
            return;
        }
        let now = d.clock().now();
        if now >= limit {
            let table =
                status::status_table(&status::status_json(d.store(), d.config(), now).unwrap());
            panic!("not done by {limit}:\n{table}");
        }
        let next = report
            .next_due
            .filter(|n| *n > now)
            .unwrap_or(now + TimeDelta::minutes(1));
        d.clock().set(next.min(now + TimeDelta::hours(6)));
    }
    let table =
        status::status_table(&status::status_json(d.store(), d.config(), d.clock().now()).unwrap());
    panic!(
        "did not settle in 3000 passes (at {}):\n{table}",
        d.clock().now()
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_deleted_edit_target_blocks_only_its_ring_and_the_other_rollouts_go_on() {
    let s = setup(&["01-k8s", "02-addons", "03-restricted"]);
    let rings_path = s.config.parent().unwrap().join("rings.yaml");
    let mut rings = std::fs::read_to_string(&rings_path).unwrap();
    rings.push_str(TFVARS_RULE);
    std::fs::write(&rings_path, rings).unwrap();
    commit(
        &s.gitops,
        &tfvars_for_every_aws_cluster(&s.gitops),
        "terraform: EKS cluster versions",
    );
    let mut d = daemon(
        &s,
        Scripted::default(),
        ManualClock::new(t("2026-11-23T06:00:00Z")),
    );
    // k8s-1.33 soaks its last sandbox step (the 1.31 laggard takes two).
    until(&mut d, t("2026-12-01T00:00:00Z"), |st| {
        let run = run_of(st, "k8s-1.33", "sandbox");
        run.phase == Phase::Soaking && run.step_number() == 2
    })
    .await;
    // A platform engineer deletes the dev cluster's Terraform file.
    let file = "terraform/eks/aws-use1-dev-01.tfvars";
    commit(
        &s.gitops,
        &[(file.to_owned(), None)],
        "terraform: dev-01 moves out",
    );
    until(&mut d, t("2026-12-10T00:00:00Z"), |st| {
        run_of(st, "k8s-1.33", "nonprod").phase == Phase::Blocked
            && ["addons-2026-11", "restricted-prod-2.4.0"]
                .iter()
                .all(|r| run_of(st, r, "sandbox").phase == Phase::Passed)
    })
    .await;

    let dev = run_of(&s.store, "k8s-1.33", "nonprod");
    let reason = dev.reason.clone().unwrap();
    assert!(
        reason.contains(file) && reason.contains("aws-use1-dev-01"),
        "{reason}"
    );
    match &dev.block {
        Some(BlockCause::Permanent {
            source, message, ..
        }) => {
            assert_eq!(*source, ErrorSource::Git);
            assert!(message.contains(file), "{message}");
        }
        other => panic!("expected a permanent block, got {other:?}"),
    }
    // Nothing half-written: no PR for the dev ring.
    assert!(
        s.store
            .local_prs()
            .unwrap()
            .iter()
            .all(|p| !p.branch.contains("/nonprod/")),
        "{:#?}",
        s.store.local_prs().unwrap()
    );
    // Blocked once in the journal, not once per pass; status says how to go on.
    let journal = s.store.journal("k8s-1.33").unwrap();
    let blocked: Vec<_> = journal
        .iter()
        .filter(|e| e.kind == "blocked" && e.ring.as_deref() == Some("nonprod"))
        .collect();
    assert_eq!(blocked.len(), 1, "{blocked:#?}");
    assert!(blocked[0].message.contains(file));
    let now = d.clock().now();
    let table = status::status_table(&status::status_json(&s.store, d.config(), now).unwrap());
    assert!(
        table.contains(file) && table.contains("ringmaster resume k8s-1.33"),
        "{table}"
    );
    // `validate` on the new base names the file too.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ringmaster"))
        .arg("validate")
        .current_dir(s.config.parent().unwrap())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(file) && stderr.contains("aws-use1-dev-01") && stderr.contains("nonprod"),
        "{stderr}"
    );
    // Passes go on without touching the blocked ring again.
    let revision = dev.revision;
    for _ in 0..5 {
        d.pass().await.unwrap();
        d.clock().advance(TimeDelta::minutes(10));
    }
    assert_eq!(run_of(&s.store, "k8s-1.33", "nonprod").revision, revision);

    // `resume` retries it: still missing, so blocked again (a second journal entry).
    control::resume(&s.store, d.config(), "k8s-1.33", "alice", d.clock().now()).unwrap();
    assert_eq!(
        run_of(&s.store, "k8s-1.33", "nonprod").phase,
        Phase::Preflight,
        "back where it was"
    );
    // The file comes back: the new base commit unblocks the ring by itself and it goes on.
    let restored = tfvars_for_every_aws_cluster(&s.gitops)
        .into_iter()
        .filter(|(p, _)| p == file)
        .collect::<Vec<_>>();
    commit(&s.gitops, &restored, "terraform: dev-01 is back");
    until(&mut d, t("2026-12-20T00:00:00Z"), |st| {
        run_of(st, "k8s-1.33", "nonprod").phase == Phase::Passed
    })
    .await;
    let pr = s
        .store
        .local_prs()
        .unwrap()
        .into_iter()
        .find(|p| p.branch.contains("/nonprod/"))
        .expect("the dev ring's PR");
    assert_eq!(pr.state, state::PrState::Merged);
}

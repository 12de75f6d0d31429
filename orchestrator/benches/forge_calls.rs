//! GitHub quota, measured by counting requests at the fake GitHub (DESIGN §13):
//! - REST calls to open one ring PR (target ≤ 4: find-by-head, create, labels, reviewers);
//! - rate-limited calls spent polling a quiet PR for an hour at the default 30 s reconcile
//!   interval (target 0: every poll is a conditional request answered 304).
//!
//! Run: `cargo bench -p orchestrator --bench forge_calls`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use integration::github::FakeGitHub;
use orchestrator::forge::github::{GitHubForge, RetryPolicy};
use orchestrator::forge::{Forge, OpenPr, labels};
use rings::model::MergeMethod;

const TARGET_OPEN_CALLS: usize = 4;
const POLLS_PER_HOUR: usize = 3600 / 30;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = examples::materialize(&examples::fleet_dir(), &tmp.path().join("fleet")).unwrap();
    let remote = cfg.parent().unwrap().join("remote.git");
    let repo = git2::Repository::init_bare(&remote).unwrap();
    let source = git2::Repository::open(cfg.parent().unwrap().join("gitops")).unwrap();
    let main = source
        .find_commit(source.refname_to_id("refs/heads/main").unwrap())
        .unwrap();
    drop(repo);
    let mut remote_handle = source.remote_anonymous(remote.to_str().unwrap()).unwrap();
    // A ring branch with one commit on main, as the engine would push it.
    let sig = git2::Signature::now("ringmaster", "r@example.invalid").unwrap();
    let branch_commit = source
        .commit(
            None,
            &sig,
            &sig,
            "ring step",
            &main.tree().unwrap(),
            &[&main],
        )
        .unwrap();
    source
        .reference(
            "refs/heads/ringmaster/k8s-1.33/prod-canary/1",
            branch_commit,
            true,
            "bench",
        )
        .unwrap();
    remote_handle
        .push(&["refs/heads/main:refs/heads/main", "refs/heads/ringmaster/k8s-1.33/prod-canary/1:refs/heads/ringmaster/k8s-1.33/prod-canary/1"], None)
        .unwrap();

    let fake = FakeGitHub::start().await.unwrap();
    fake.add_repo("acme", "gitops", &remote, "main");
    let crab = octocrab::Octocrab::builder()
        .base_uri(fake.api_url())
        .unwrap()
        .personal_token("t".to_owned())
        .build()
        .unwrap();
    let policy = RetryPolicy {
        mutation_gap: Duration::ZERO,
        ..RetryPolicy::default()
    };
    let forge = GitHubForge::new(crab, "acme", "gitops", MergeMethod::Merge, policy);

    fake.reset_requests();
    let number = forge
        .find_or_open(&OpenPr {
            branch: "ringmaster/k8s-1.33/prod-canary/1".into(),
            base: "main".into(),
            title: "[ring 3/4 prod-canary] Kubernetes 1.32 → 1.33 (2 clusters)".into(),
            body: "body".into(),
            labels: labels("k8s-1.33", "prod-canary"),
            reviewers: vec!["acme/platform-sre".into()],
        })
        .await
        .unwrap();
    let open_calls = fake.requests().len();

    forge.status(number).await.unwrap(); // first read fills the ETag cache
    fake.reset_requests();
    for _ in 0..POLLS_PER_HOUR {
        forge.status(number).await.unwrap();
    }
    let polls = fake.requests();
    let counted = polls.iter().filter(|r| r.counted).count();
    let not_modified = polls.iter().filter(|r| r.status == 304).count();

    println!("GitHub quota, counted at the fake GitHub:");
    println!(
        "  open one ring PR: {open_calls} REST calls (target <= {TARGET_OPEN_CALLS}; {:.2}x the target)",
        open_calls as f64 / TARGET_OPEN_CALLS as f64
    );
    println!(
        "  poll a quiet PR for an hour ({POLLS_PER_HOUR} polls, {} requests): {counted} counted against the rate limit (target 0), {not_modified} answered 304",
        polls.len()
    );
    let ok = open_calls <= TARGET_OPEN_CALLS && counted == 0;
    println!(
        "  {}",
        if ok {
            "all targets met"
        } else {
            "TARGET MISSED"
        }
    );
    fake.shutdown().await;
    if !ok {
        std::process::exit(1);
    }
}

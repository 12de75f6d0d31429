#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The GitHub forge through the real octocrab client against `integration::github`'s stateful
//! fake on loopback: PR lifecycle, idempotency, ETag polling, rate limits, merges.

use std::path::PathBuf;
use std::time::Duration;

use chrono::Utc;
use integration::github::{FakeGitHub, Fault};
use orchestrator::forge::github::{GitHubForge, RetryPolicy};
use orchestrator::forge::{Checks, Forge, ForgeError, OpenPr, PrLifecycle, labels};
use orchestrator::gitops::{GitOps, StepRequest};
use rings::model::MergeMethod;

const REPO: &str = "acme/gitops";
/// Every test stops by itself.
const TEST_TIMEOUT: Duration = Duration::from_secs(60);

fn fast_policy() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        base: Duration::from_millis(10),
        cap: Duration::from_millis(100),
        max_inline_wait: Duration::from_secs(2),
        mutation_gap: Duration::ZERO,
        secondary_default: Duration::from_secs(1),
    }
}

mod support;

struct Setup {
    _ex: support::Example,
    remote: PathBuf,
    fake: FakeGitHub,
}

/// The example fleet with a bare remote, a pushed ring branch, and the fake serving it.
async fn setup() -> (Setup, String, String) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ex = support::Example::with_bare_remote();
    let cfg = ex.config_path();
    let mut engine = support::engine(&cfg);
    let (_, config) = support::load(&mut engine, &cfg);
    let req = StepRequest {
        config: &config,
        release: config.release("k8s-1.33").unwrap(),
        ring_index: 2,
        step: 1,
        time: Utc::now(),
    };
    let (_, step) = engine.publish(&req, None).unwrap();
    let step = step.unwrap();
    let fake = FakeGitHub::start().await.unwrap();
    fake.add_repo("acme", "gitops", &ex.remote, "main");
    (
        Setup {
            remote: ex.remote.clone(),
            _ex: ex,
            fake,
        },
        step.branch,
        step.commit.to_string(),
    )
}

fn forge(fake: &FakeGitHub) -> GitHubForge {
    let crab = octocrab::Octocrab::builder()
        .base_uri(fake.api_url())
        .unwrap()
        .personal_token("t0ken".to_owned())
        .build()
        .unwrap();
    GitHubForge::new(crab, "acme", "gitops", MergeMethod::Merge, fast_policy())
}

fn open_pr(branch: &str) -> OpenPr {
    OpenPr {
        branch: branch.to_owned(),
        base: "main".into(),
        title: "[ring 3/4 prod-canary] Kubernetes 1.32 → 1.33 (2 clusters)".into(),
        body: "body <!-- ringmaster:marker {} -->".into(),
        labels: labels("k8s-1.33", "prod-canary"),
        reviewers: vec!["alice".into(), "acme/platform-sre".into()],
    }
}

#[tokio::test]
async fn opening_a_ring_pr_costs_four_calls_and_is_never_duplicated() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let (s, branch, head) = setup().await;
        let f = forge(&s.fake);
        s.fake.reset_requests();
        let n = f.find_or_open(&open_pr(&branch)).await.unwrap();
        let calls = s.fake.requests();
        assert_eq!(calls.len(), 4, "find, create, labels, reviewers: {calls:?}");
        let pr = s.fake.pull(REPO, n).unwrap();
        assert_eq!(pr.head_sha, head);
        for l in ["ringmaster", "ring/prod-canary", "rollout/k8s-1.33"] {
            assert!(pr.labels.iter().any(|x| x == l), "{:?}", pr.labels);
        }
        assert_eq!(pr.requested_reviewers, ["alice"]);
        assert_eq!(pr.requested_teams, ["platform-sre"]);

        // A restart after a crash between push and create finds it: no second PR.
        let again = forge(&s.fake);
        assert_eq!(again.find_or_open(&open_pr(&branch)).await.unwrap(), n);
        assert_eq!(s.fake.pulls(REPO).len(), 1);
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_422_already_exists_resolves_to_the_existing_pr() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let (s, branch, _) = setup().await;
        s.fake.inject(Fault::DuplicatePrOnCreate);
        let n = forge(&s.fake)
            .find_or_open(&open_pr(&branch))
            .await
            .unwrap();
        assert_eq!(s.fake.pulls(REPO).len(), 1);
        assert_eq!(s.fake.pulls(REPO)[0].number, n);
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn approvals_checks_and_merge_with_the_expected_head() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let (s, branch, head) = setup().await;
        let f = forge(&s.fake);
        let n = f.find_or_open(&open_pr(&branch)).await.unwrap();
        let st = f.status(n).await.unwrap();
        assert_eq!(
            (st.state, st.approved(), st.checks),
            (PrLifecycle::Open, false, Checks::None)
        );
        s.fake.approve(REPO, n, "alice");
        s.fake.request_changes(REPO, n, "bob");
        let st = f.status(n).await.unwrap();
        assert_eq!(st.approvals, ["alice"]);
        assert!(!st.approved(), "an outstanding change request blocks");
        s.fake.approve(REPO, n, "bob");
        s.fake.set_status(REPO, &head, "ci/lint", "success");
        s.fake
            .set_check_run(REPO, &head, "unit", "in_progress", None);
        let st = f.status(n).await.unwrap();
        assert!(st.approved());
        assert_eq!(st.checks, Checks::Pending);
        s.fake
            .set_check_run(REPO, &head, "unit", "completed", Some("success"));
        assert_eq!(f.status(n).await.unwrap().checks, Checks::Success);

        let err = f
            .merge(n, "0123456789012345678901234567890123456789")
            .await
            .unwrap_err();
        assert!(matches!(err, ForgeError::HeadMoved { .. }), "{err}");
        let sha = f.merge(n, &head).await.unwrap();
        let repo = git2::Repository::open_bare(&s.remote).unwrap();
        let main = repo
            .find_commit(repo.refname_to_id("refs/heads/main").unwrap())
            .unwrap();
        assert_eq!(main.id().to_string(), sha);
        assert_eq!(main.parent_count(), 2, "a real merge commit");
        let st = f.status(n).await.unwrap();
        assert_eq!(
            (st.state, st.merge_sha.as_deref()),
            (PrLifecycle::Merged, Some(sha.as_str()))
        );
        assert!(matches!(
            f.merge(n, &head).await.unwrap_err(),
            ForgeError::NotMergeable { .. }
        ));
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn polling_a_quiet_pr_spends_no_rate_limit() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let (s, branch, _) = setup().await;
        let f = forge(&s.fake);
        let n = f.find_or_open(&open_pr(&branch)).await.unwrap();
        f.status(n).await.unwrap();
        let before = f.rate_limit().remaining.unwrap();
        s.fake.reset_requests();
        // An hour of polling every minute.
        for _ in 0..60 {
            f.status(n).await.unwrap();
        }
        let calls = s.fake.requests();
        assert_eq!(calls.len(), 240, "4 conditional GETs per poll");
        assert!(
            calls.iter().all(|r| r.status == 304),
            "every poll of a quiet PR is a 304"
        );
        assert_eq!(f.rate_limit().remaining.unwrap(), before, "304s are free");
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn comments_are_updated_not_duplicated() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let (s, branch, _) = setup().await;
        let f = forge(&s.fake);
        let n = f.find_or_open(&open_pr(&branch)).await.unwrap();
        f.comment(n, "halt", "halted: error-ratio 0.04 > 0.01")
            .await
            .unwrap();
        f.comment(n, "halt", "halted: error-ratio 0.05 > 0.01")
            .await
            .unwrap();
        f.comment(n, "halt", "halted: error-ratio 0.05 > 0.01")
            .await
            .unwrap();
        let comments = s.fake.pull(REPO, n).unwrap().comments;
        assert_eq!(comments.len(), 1);
        assert!(
            comments[0]
                .body
                .ends_with("halted: error-ratio 0.05 > 0.01")
        );
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn server_errors_and_rate_limits_are_retried_with_backoff() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let (s, branch, _) = setup().await;
        let f = forge(&s.fake);
        let n = f.find_or_open(&open_pr(&branch)).await.unwrap();
        s.fake.inject(Fault::ServerErrors { count: 2 });
        f.update(n, "t2", "b2").await.unwrap();
        assert_eq!(s.fake.pull(REPO, n).unwrap().title, "t2");

        s.fake.inject(Fault::SecondaryRateLimit {
            retry_after_secs: 1,
            count: 1,
        });
        let started = std::time::Instant::now();
        f.status(n).await.unwrap();
        assert!(
            started.elapsed() >= Duration::from_secs(1),
            "Retry-After honoured"
        );

        // A primary limit that resets far away is returned to the caller (the daemon requeues).
        s.fake.inject(Fault::PrimaryRateLimit {
            reset_in_secs: 3600,
            count: 10,
        });
        let err = f.status(n).await.unwrap_err();
        match err {
            ForgeError::RateLimited { retry_after } => {
                assert!(retry_after > Duration::from_secs(3000))
            }
            other => panic!("{other:?}"),
        }
        assert!(err_is_transient(&f, n).await);
    })
    .await
    .unwrap();
}

async fn err_is_transient(f: &GitHubForge, n: u64) -> bool {
    match f.status(n).await {
        Err(e) => e.is_transient(),
        Ok(_) => true,
    }
}

#[tokio::test]
async fn bad_credentials_are_permanent() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let (s, branch, _) = setup().await;
        s.fake.require_token(Some("right".into()));
        let err = forge(&s.fake)
            .find_or_open(&open_pr(&branch))
            .await
            .unwrap_err();
        assert!(matches!(err, ForgeError::Permanent(_)), "{err}");
        assert!(!err.to_string().contains("t0ken"));
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn the_forge_never_shows_its_token_in_debug_output() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let crab = octocrab::Octocrab::builder()
        .base_uri("http://127.0.0.1:1")
        .unwrap()
        .personal_token("ghp_secretSecretSecret".to_owned())
        .build()
        .unwrap();
    let f = GitHubForge::new(crab, "acme", "gitops", MergeMethod::Merge, fast_policy());
    let shown = format!("{f:?}");
    assert!(
        shown.contains("acme") && !shown.contains("ghp_secret"),
        "{shown}"
    );
}

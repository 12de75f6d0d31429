#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The GitHub forge through the real octocrab client against `integration::github`'s stateful
//! fake on loopback: PR lifecycle, idempotency, ETag polling, rate limits, merges.

use std::path::PathBuf;
use std::time::Duration;

use chrono::Utc;
use integration::github::{FakeGitHub, Fault, FaultKind, TimedFault};
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
        budget: Duration::from_secs(2),
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
async fn server_errors_are_retried_with_backoff_and_rate_limits_returned() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let (s, branch, _) = setup().await;
        let f = forge(&s.fake);
        let n = f.find_or_open(&open_pr(&branch)).await.unwrap();
        s.fake.inject(Fault::ServerErrors { count: 2 });
        f.update(n, "t2", "b2").await.unwrap();
        assert_eq!(s.fake.pull(REPO, n).unwrap().title, "t2");

        // A rate limit is returned at once with GitHub's wait, never slept on inside the call.
        s.fake.inject(Fault::SecondaryRateLimit {
            retry_after_secs: 1,
            count: 1,
        });
        let err = f.status(n).await.unwrap_err();
        assert_eq!(err.retry_after(), Some(Duration::from_secs(1)), "{err}");
        f.status(n).await.unwrap();

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

/// The fake serving an empty `acme/gitops`, and a forge with the production retry policy
/// (without the pause between writes).
async fn fake_and_default_forge() -> (tempfile::TempDir, FakeGitHub, GitHubForge) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    git2::Repository::init_bare(dir.path()).unwrap();
    let fake = FakeGitHub::start().await.unwrap();
    fake.add_repo("acme", "gitops", dir.path(), "main");
    let crab = octocrab::Octocrab::builder()
        .base_uri(fake.api_url())
        .unwrap()
        .personal_token("t0ken".to_owned())
        .build()
        .unwrap();
    let policy = RetryPolicy {
        mutation_gap: Duration::ZERO,
        ..RetryPolicy::default()
    };
    let forge = GitHubForge::new(crab, "acme", "gitops", MergeMethod::Merge, policy);
    (dir, fake, forge)
}

fn timed(kind: FaultKind, secs: u64) -> Fault {
    Fault::Timed(TimedFault::new(kind, Duration::from_secs(secs)))
}

#[tokio::test]
async fn rate_limits_come_back_at_once_with_githubs_wait() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let (_dir, fake, f) = fake_and_default_forge().await;
        f.ringmaster_prs().await.unwrap();

        // A 429 with Retry-After: 600 (and the primary limit's headers).
        fake.inject(timed(FaultKind::RateLimit, 600));
        let started = std::time::Instant::now();
        let err = f.ringmaster_prs().await.unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(1), "{err}");
        let wait = err.retry_after().unwrap_or_else(|| panic!("{err:?}"));
        assert!(
            (Duration::from_secs(598)..=Duration::from_secs(600)).contains(&wait),
            "{wait:?}"
        );
        assert!(matches!(err, ForgeError::RateLimited { .. }) && err.is_transient());
        assert_eq!(fake.faulted_requests(), 1, "no retry inside the call");
        fake.clear_faults();

        // A 403 secondary limit is a rate limit too, not a refusal.
        fake.inject(timed(FaultKind::SecondaryLimit, 30));
        let started = std::time::Instant::now();
        let err = f.ringmaster_prs().await.unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(1), "{err}");
        let wait = err.retry_after().unwrap_or_else(|| panic!("{err:?}"));
        assert!(
            (Duration::from_secs(29)..=Duration::from_secs(30)).contains(&wait),
            "{wait:?}"
        );
        assert_eq!(fake.faulted_requests(), 2);
        fake.clear_faults();

        // A primary limit reset far away is capped at an hour.
        fake.inject(Fault::PrimaryRateLimit {
            reset_in_secs: 10 * 3600,
            count: 1,
        });
        let err = f.ringmaster_prs().await.unwrap_err();
        assert_eq!(err.retry_after(), Some(Duration::from_secs(3600)), "{err}");
        f.ringmaster_prs().await.unwrap();
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn server_errors_are_retried_only_within_a_short_budget() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let (_dir, fake, f) = fake_and_default_forge().await;

        // One 502: retried inline, the call succeeds.
        fake.inject(Fault::ServerErrors { count: 1 });
        f.ringmaster_prs().await.unwrap();
        let statuses: Vec<u16> = fake.requests().iter().map(|r| r.status).collect();
        assert_eq!(statuses, [502, 200]);

        // 502s for a minute: given up within the budget, as a transient error.
        fake.reset_requests();
        fake.inject(timed(FaultKind::Errors, 60));
        let started = std::time::Instant::now();
        let err = f.ringmaster_prs().await.unwrap_err();
        let took = started.elapsed();
        assert!(took < Duration::from_secs(3), "{took:?}");
        assert!(matches!(err, ForgeError::Transient(_)), "{err:?}");
        assert!(err.to_string().contains("502"), "{err}");
        assert_eq!(err.retry_after(), None);
        let statuses: Vec<u16> = fake.requests().iter().map(|r| r.status).collect();
        assert_eq!(statuses, [502, 502, 502], "three attempts");
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn an_outage_is_a_transient_error_within_the_budget() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let (_dir, fake, f) = fake_and_default_forge().await;
        f.ringmaster_prs().await.unwrap();
        fake.inject(timed(FaultKind::Outage, 600));
        let started = std::time::Instant::now();
        let err = f.ringmaster_prs().await.unwrap_err();
        let took = started.elapsed();
        assert!(took < Duration::from_secs(3), "{took:?}");
        assert!(matches!(err, ForgeError::Transient(_)), "{err:?}");
        assert_eq!(fake.faulted_requests(), 3, "three attempts, each dropped");
        fake.clear_faults();
        f.ringmaster_prs().await.unwrap();
    })
    .await
    .unwrap();
}

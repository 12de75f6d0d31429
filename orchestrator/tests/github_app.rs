#![allow(clippy::unwrap_used, clippy::expect_used)]
//! GitHub App authentication through the real octocrab client against `integration::github`'s
//! fake: the installation is found with the App's JWT, API calls use installation tokens, and a
//! token is replaced before it expires. RSA keys are made at test time with the `openssl` CLI.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use git2::{Oid, Repository, Signature};
use integration::github::FakeGitHub;
use orchestrator::forge::github::{GitHubForge, RetryPolicy};
use orchestrator::forge::{Forge, ForgeError, OpenPr, PrLifecycle, labels};
use rings::model::{GitHubAuth, GitHubSettings, MergeMethod};

/// Every test stops by itself.
const TEST_TIMEOUT: Duration = Duration::from_secs(60);

const OWNER: &str = "acme";
const NAME: &str = "gitops";
const BRANCH: &str = "ringmaster/r/ring/1";
const APP_ID: u64 = 424_242;
const INSTALLATION_ID: u64 = 7_777;

/// octocrab (0.54) reuses a cached installation token only while it has more than this left
/// (`CachedToken::valid_token`), and otherwise fetches a new one before sending the request.
const OCTOCRAB_MARGIN: Duration = Duration::from_secs(30);

fn fast_policy() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        base: Duration::from_millis(10),
        budget: Duration::from_secs(2),
        mutation_gap: Duration::ZERO,
        secondary_default: Duration::from_secs(1),
    }
}

/// An RSA key pair from the `openssl` CLI: (private key file, public key PEM).
fn key_pair(dir: &Path, name: &str) -> (PathBuf, String) {
    let private = dir.join(format!("{name}.pem"));
    let public = dir.join(format!("{name}.pub.pem"));
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .output()
            .expect("the openssl CLI is installed");
        assert!(out.status.success(), "openssl {args:?}: {out:?}");
    };
    run(&["genrsa", "-out", private.to_str().unwrap(), "2048"]);
    run(&[
        "rsa",
        "-in",
        private.to_str().unwrap(),
        "-pubout",
        "-out",
        public.to_str().unwrap(),
    ]);
    (private, std::fs::read_to_string(public).unwrap())
}

/// Commits one file on `branch` (from `parent`) in `repo`.
fn commit(repo: &Repository, branch: &str, parent: Option<Oid>, file: &str) -> Oid {
    let parent = parent.map(|p| repo.find_commit(p).unwrap());
    let mut tb = repo
        .treebuilder(parent.as_ref().map(|p| p.tree().unwrap()).as_ref())
        .unwrap();
    tb.insert(file, repo.blob(file.as_bytes()).unwrap(), 0o100_644)
        .unwrap();
    let tree = repo.find_tree(tb.write().unwrap()).unwrap();
    let sig = Signature::now("dev", "dev@example.com").unwrap();
    let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
    let oid = repo
        .commit(None, &sig, &sig, &format!("add {file}"), &tree, &parents)
        .unwrap();
    repo.reference(&format!("refs/heads/{branch}"), oid, true, "test")
        .unwrap();
    oid
}

struct Setup {
    tmp: tempfile::TempDir,
    fake: FakeGitHub,
    /// The App's private key file.
    key: PathBuf,
    /// The head of [`BRANCH`].
    head: String,
}

/// A bare repository with `main` and a ring branch, served by the fake with the App enabled.
async fn setup(token_lifetime: Duration) -> Setup {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let tmp = tempfile::tempdir().unwrap();
    let remote = tmp.path().join("remote.git");
    let repo = Repository::init_bare(&remote).unwrap();
    let main = commit(&repo, "main", None, "README.md");
    let head = commit(&repo, BRANCH, Some(main), "ring.yaml").to_string();
    let (key, public) = key_pair(tmp.path(), "app");
    let fake = FakeGitHub::start().await.unwrap();
    fake.add_repo(OWNER, NAME, &remote, "main");
    fake.enable_app(APP_ID, &public, INSTALLATION_ID, token_lifetime);
    Setup {
        tmp,
        fake,
        key,
        head,
    }
}

fn settings(fake: &FakeGitHub, key: &Path, installation_id: Option<u64>) -> GitHubSettings {
    GitHubSettings {
        owner: OWNER.to_owned(),
        repo: NAME.to_owned(),
        api_url: fake.api_url(),
        auth: GitHubAuth::App {
            app_id: APP_ID,
            private_key_file: key.to_path_buf(),
            installation_id,
        },
        merge_method: MergeMethod::Merge,
        webhook_secret: None,
    }
}

fn open_pr() -> OpenPr {
    OpenPr {
        branch: BRANCH.to_owned(),
        base: "main".into(),
        title: "[ring 1/1 ring] r".into(),
        body: "body <!-- ringmaster:marker {} -->".into(),
        labels: labels("r", "ring"),
        reviewers: vec!["alice".into()],
    }
}

fn is_token_request(path: &str) -> bool {
    path == format!("/app/installations/{INSTALLATION_ID}/access_tokens")
}

/// No request was refused for its credentials.
fn assert_no_401(fake: &FakeGitHub) {
    let refused: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.status == 401)
        .collect();
    assert!(refused.is_empty(), "refused: {refused:?}");
}

#[tokio::test]
async fn the_installation_token_is_used_and_replaced_before_it_expires() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        // A token lives 5 s longer than octocrab's margin: reused for 5 s, then replaced while
        // GitHub would still take it.
        let s = setup(OCTOCRAB_MARGIN + Duration::from_secs(5)).await;
        let forge = GitHubForge::from_settings(&settings(&s.fake, &s.key, None), fast_policy())
            .await
            .unwrap();
        let found: Vec<_> = s
            .fake
            .requests()
            .into_iter()
            .map(|r| (r.method, r.path, r.status))
            .collect();
        assert_eq!(
            found,
            [(
                "GET".to_owned(),
                format!("/repos/{OWNER}/{NAME}/installation"),
                200
            )],
            "the installation is looked up with the App's JWT"
        );
        assert_eq!(s.fake.issued_tokens(), 0, "no token before the first call");

        let n = forge.find_or_open(&open_pr()).await.unwrap();
        assert_eq!(s.fake.issued_tokens(), 1);
        let status = forge.status(n).await.unwrap();
        assert_eq!(status.state, PrLifecycle::Open);
        assert_eq!(status.head_sha, s.head);
        assert_eq!(s.fake.issued_tokens(), 1, "the first token is reused");
        let pr = s.fake.pull(&format!("{OWNER}/{NAME}"), n).unwrap();
        assert_eq!(pr.requested_reviewers, ["alice"]);

        // Now the token has less than octocrab's margin left (but has not expired). octocrab's
        // token cache reads the wall clock and offers no clock to inject, so this test waits:
        // 7 s against a 35 s token and a 30 s margin leaves 5 s of slack either way.
        tokio::time::sleep(Duration::from_secs(7)).await;
        let again = forge.status(n).await.unwrap();
        assert_eq!(again.head_sha, s.head);
        assert_eq!(
            s.fake.issued_tokens(),
            2,
            "a new token before the old one expired"
        );
        assert_no_401(&s.fake);
        let minted: Vec<u16> = s
            .fake
            .requests()
            .into_iter()
            .filter(|r| r.method == "POST" && is_token_request(&r.path))
            .map(|r| r.status)
            .collect();
        assert_eq!(minted, [201, 201]);
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn a_token_shorter_lived_than_octocrabs_margin_is_fetched_for_every_request() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        // 12 s is inside octocrab's 30 s margin: each API request first fetches a new token.
        // Real installation tokens last an hour; this pins octocrab's behaviour.
        let s = setup(Duration::from_secs(12)).await;
        let forge = GitHubForge::from_settings(&settings(&s.fake, &s.key, None), fast_policy())
            .await
            .unwrap();
        let n = forge.find_or_open(&open_pr()).await.unwrap();
        forge.status(n).await.unwrap();
        assert_no_401(&s.fake);
        let api_calls = s
            .fake
            .requests()
            .iter()
            .filter(|r| !is_token_request(&r.path) && !r.path.ends_with("/installation"))
            .count();
        assert!(api_calls >= 6, "find, create, labels, reviewers, status...");
        assert_eq!(s.fake.issued_tokens(), api_calls);
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn a_wrong_private_key_is_a_permanent_error_naming_the_installation() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let s = setup(Duration::from_secs(3600)).await;
        let (wrong, _) = key_pair(s.tmp.path(), "wrong");
        let err = GitHubForge::from_settings(&settings(&s.fake, &wrong, None), fast_policy())
            .await
            .expect_err("GitHub refuses a JWT signed with another key");
        match &err {
            ForgeError::Permanent(m) => assert!(m.contains("App installation"), "{m}"),
            other => panic!("expected a permanent error, got {other:?}"),
        }
        let statuses: Vec<u16> = s.fake.requests().iter().map(|r| r.status).collect();
        assert_eq!(statuses, [401], "one refused lookup, no retry");
        assert_eq!(s.fake.issued_tokens(), 0);
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn a_wrong_private_key_with_a_known_installation_fails_permanently() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let s = setup(Duration::from_secs(3600)).await;
        let (wrong, _) = key_pair(s.tmp.path(), "wrong");
        let settings = settings(&s.fake, &wrong, Some(INSTALLATION_ID));
        let result = match GitHubForge::from_settings(&settings, fast_policy()).await {
            Ok(forge) => forge.status(1).await.map(|_| ()),
            Err(e) => Err(e),
        };
        match result {
            Err(ForgeError::Permanent(m)) => assert!(m.contains("installation"), "{m}"),
            other => panic!("expected a permanent error, got {other:?}"),
        }
        assert_eq!(s.fake.issued_tokens(), 0);
    })
    .await
    .expect("test timed out");
}

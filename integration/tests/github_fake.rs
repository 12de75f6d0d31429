#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The fake GitHub against the real octocrab client (and a raw HTTP/1.1 client), backed by
//! real bare git repositories. Every test is bounded by [`TEST_TIMEOUT`].

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use git2::{Oid, Repository, Signature};
use integration::github::{FakeGitHub, Fault};
use octocrab::Octocrab;
use octocrab::models::StatusState;
use octocrab::models::pulls::ReviewState;
use octocrab::params::repos::{Commitish, Reference};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Upper bound for one test, seconds.
const TEST_TIMEOUT: Duration = Duration::from_secs(60);

const REPO: &str = "acme/gitops";
const BRANCH: &str = "ringmaster/r/ring/1";

async fn bounded<F: Future<Output = ()>>(f: F) {
    tokio::time::timeout(TEST_TIMEOUT, f)
        .await
        .expect("test timed out");
}

/// Commits `files` on top of `branch` (created if missing, from `from`) directly in `repo`.
fn commit(repo: &Repository, branch: &str, from: Option<&str>, files: &[(&str, &str)]) -> Oid {
    let refname = format!("refs/heads/{branch}");
    let parent = repo
        .find_reference(&refname)
        .or_else(|_| repo.find_reference(&format!("refs/heads/{}", from.unwrap_or("-"))))
        .ok()
        .map(|r| r.peel_to_commit().unwrap());
    let base_tree = parent.as_ref().map(|p| p.tree().unwrap());
    let mut tb = repo.treebuilder(base_tree.as_ref()).unwrap();
    for (path, content) in files {
        let blob = repo.blob(content.as_bytes()).unwrap();
        tb.insert(path, blob, 0o100_644).unwrap();
    }
    let tree = repo.find_tree(tb.write().unwrap()).unwrap();
    let sig = Signature::now("dev", "dev@example.com").unwrap();
    let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
    let oid = repo
        .commit(None, &sig, &sig, &format!("edit {branch}"), &tree, &parents)
        .unwrap();
    repo.reference(&refname, oid, true, "test commit").unwrap();
    oid
}

fn sha(repo: &Path, branch: &str) -> String {
    let repo = Repository::open(repo).unwrap();
    repo.find_reference(&format!("refs/heads/{branch}"))
        .unwrap()
        .peel_to_commit()
        .unwrap()
        .id()
        .to_string()
}

/// A bare repository with `main` and the ring branch, pushed from a working clone.
struct Setup {
    _dir: tempfile::TempDir,
    bare: PathBuf,
    work: Repository,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let bare = dir.path().join("gitops.git");
        let origin = Repository::init_bare(&bare).unwrap();
        origin.set_head("refs/heads/main").unwrap();
        let work = Repository::init(dir.path().join("work")).unwrap();
        commit(&work, "main", None, &[("README.md", "fleet\n")]);
        commit(
            &work,
            BRANCH,
            Some("main"),
            &[("cluster.yaml", "v: 1.34\n")],
        );
        let setup = Setup {
            _dir: dir,
            bare,
            work,
        };
        setup.push("main");
        setup.push(BRANCH);
        setup
    }

    /// `git push origin <branch>` (force), through git2's local transport.
    fn push(&self, branch: &str) {
        let mut remote = self
            .work
            .remote_anonymous(self.bare.to_str().unwrap())
            .unwrap();
        let spec = format!("+refs/heads/{branch}:refs/heads/{branch}");
        remote.push(&[spec.as_str()], None).unwrap();
    }

    /// A new branch off `main` with one commit, pushed.
    fn branch(&self, name: &str, file: &str, content: &str) -> String {
        let oid = commit(&self.work, name, Some("main"), &[(file, content)]);
        self.push(name);
        oid.to_string()
    }
}

async fn start(setup: &Setup) -> (FakeGitHub, Octocrab) {
    let github = FakeGitHub::start().await.unwrap();
    github.add_repo("acme", "gitops", &setup.bare, "main");
    let octo = client(&github.api_url(), "t");
    (github, octo)
}

fn client(api_url: &str, token: &str) -> Octocrab {
    Octocrab::builder()
        .base_uri(api_url)
        .unwrap()
        .personal_token(token.to_string())
        .build()
        .unwrap()
}

/// The GitHub error inside an octocrab error.
fn gh_error(e: octocrab::Error) -> octocrab::GitHubError {
    match e {
        octocrab::Error::GitHub { source, .. } => *source,
        other => panic!("expected a GitHub error, got {other:?}"),
    }
}

/// One raw HTTP/1.1 request over TCP, as `curl` would send it.
async fn raw(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> (u16, Vec<(String, String)>, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\nConnection: close\r\n"
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(b) = body {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            b.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(body.unwrap_or(""));
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    stream.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8(out).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, body.to_string())
}

fn hdr<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[tokio::test]
async fn a_ring_pull_request_goes_from_creation_to_a_real_merge_commit() {
    bounded(async {
        let setup = Setup::new();
        let (github, octo) = start(&setup).await;
        let pulls = octo.pulls("acme", "gitops");

        let pr = pulls
            .create("[ring 1/2 sandbox] Kubernetes 1.33 → 1.34", BRANCH, "main")
            .body("<!-- ringmaster:r/sandbox/1 -->")
            .send()
            .await
            .unwrap();
        assert_eq!(pr.number, 1);
        assert_eq!(pr.head.ref_field, BRANCH);
        assert_eq!(pr.head.sha, sha(&setup.bare, BRANCH));
        assert_eq!(pr.head.label.as_deref(), Some("acme:ringmaster/r/ring/1"));
        assert_eq!(pr.base.ref_field, "main");
        assert_eq!(pr.user.as_ref().unwrap().login, "ringmaster-bot");
        let created = github.requests().last().cloned().unwrap();
        assert_eq!((created.method.as_str(), created.status), ("POST", 201));

        // Find by head, in the OWNER:branch form GitHub requires.
        let found = pulls
            .list()
            .state(octocrab::params::State::Open)
            .head(format!("acme:{BRANCH}"))
            .send()
            .await
            .unwrap();
        assert_eq!(found.items.len(), 1);
        assert_eq!(found.items[0].number, 1);

        // A second create for the same head is refused with GitHub's message.
        let dup = gh_error(
            pulls
                .create("again", BRANCH, "main")
                .send()
                .await
                .unwrap_err(),
        );
        assert_eq!(dup.status_code, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(dup.message, "Validation Failed");
        let errors = dup.errors.unwrap();
        assert_eq!(
            errors[0]["message"],
            "A pull request already exists for acme:ringmaster/r/ring/1."
        );

        let issues = octo.issues("acme", "gitops");
        let labels = issues
            .add_labels(
                1,
                &[
                    "ringmaster".into(),
                    "ring/sandbox".into(),
                    "rollout/r".into(),
                ],
            )
            .await
            .unwrap();
        let names: Vec<_> = labels.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["ringmaster", "ring/sandbox", "rollout/r"]);
        let left = issues.remove_label(1, "rollout/r").await.unwrap();
        assert_eq!(left.len(), 2);

        pulls
            .request_reviews(
                1,
                vec!["alice".into(), "bob".into()],
                vec!["platform-sre".into()],
            )
            .await
            .unwrap();
        let requested = pulls.get_requested_reviewers(1).await.unwrap();
        let users: Vec<_> = requested.users.iter().map(|u| u.login.as_str()).collect();
        assert_eq!(users, ["alice", "bob"]);
        assert_eq!(requested.teams[0].slug, "platform-sre");
        // `org/slug` is not a team slug: GitHub refuses it.
        let bad = gh_error(
            pulls
                .request_reviews(1, Vec::<String>::new(), vec!["acme/platform-sre".into()])
                .await
                .unwrap_err(),
        );
        assert_eq!(bad.status_code, StatusCode::UNPROCESSABLE_ENTITY);

        let comment = issues.create_comment(1, "Soaking for 30m").await.unwrap();
        let updated = issues
            .update_comment(comment.id, "Soak passed")
            .await
            .unwrap();
        assert_eq!(updated.id, comment.id);
        let comments = issues.list_comments(1).send().await.unwrap();
        assert_eq!(comments.items.len(), 1);
        assert_eq!(comments.items[0].body.as_deref(), Some("Soak passed"));

        // A human approves; the approval is on the current head and fulfils the request.
        let head = sha(&setup.bare, BRANCH);
        github.approve(REPO, 1, "alice");
        let reviews = pulls.list_reviews(1).send().await.unwrap();
        assert_eq!(reviews.items.len(), 1);
        assert_eq!(reviews.items[0].state, Some(ReviewState::Approved));
        assert_eq!(reviews.items[0].commit_id.as_deref(), Some(head.as_str()));
        assert_eq!(reviews.items[0].user.as_ref().unwrap().login, "alice");
        assert_eq!(github.pull(REPO, 1).unwrap().requested_reviewers, ["bob"]);

        // CI reports; the combined status and the check runs read it back.
        let repos = octo.repos("acme", "gitops");
        let pending = repos
            .combined_status_for_ref(&Reference::Branch(BRANCH.into()))
            .await
            .unwrap();
        assert_eq!(pending.state, StatusState::Pending);
        assert_eq!(pending.total_count, 0);
        github.set_status(REPO, &head, "ci/validate", "pending");
        github.set_status(REPO, &head, "ci/validate", "success");
        repos
            .create_status(head.clone(), StatusState::Success)
            .context("ringmaster/plan".into())
            .send()
            .await
            .unwrap();
        let combined = repos
            .combined_status_for_ref(&Reference::Branch(BRANCH.into()))
            .await
            .unwrap();
        assert_eq!(combined.state, StatusState::Success);
        assert_eq!(combined.sha, head);
        assert_eq!(combined.total_count, 2);
        github.set_check_run(REPO, &head, "lint", "completed", Some("success"));
        let runs = octo
            .checks("acme", "gitops")
            .list_check_runs_for_git_ref(Commitish(head.clone()))
            .send()
            .await
            .unwrap();
        assert_eq!(runs.total_count, 1);
        assert_eq!(runs.check_runs[0].conclusion.as_deref(), Some("success"));
        assert_eq!(runs.check_runs[0].pull_requests[0].number, 1);

        let pr = pulls.get(1).await.unwrap();
        assert_eq!(pr.mergeable, Some(true));
        let main_before = sha(&setup.bare, "main");
        let merge = pulls
            .merge(1)
            .sha(head.clone())
            .method(octocrab::params::pulls::MergeMethod::Merge)
            .send()
            .await
            .unwrap();
        assert!(merge.merged);
        let merge_sha = merge.sha.unwrap();
        assert_eq!(sha(&setup.bare, "main"), merge_sha);
        let git = Repository::open(&setup.bare).unwrap();
        let merge_commit = git.find_commit(Oid::from_str(&merge_sha).unwrap()).unwrap();
        let parents: Vec<String> = merge_commit.parent_ids().map(|p| p.to_string()).collect();
        assert_eq!(parents, [main_before, head.clone()]);
        assert!(
            merge_commit
                .message()
                .unwrap()
                .starts_with("Merge pull request #1 from acme/ringmaster/r/ring/1")
        );
        let tree = merge_commit.tree().unwrap();
        assert!(tree.get_name("cluster.yaml").is_some());

        let snap = github.pull(REPO, 1).unwrap();
        assert!(snap.merged);
        assert_eq!(snap.state, "closed");
        assert_eq!(snap.merge_commit_sha.as_deref(), Some(merge_sha.as_str()));
        assert_eq!(snap.labels, ["ringmaster", "ring/sandbox"]);
        assert_eq!(snap.requested_teams, ["platform-sre"]);
        assert_eq!(snap.comments[0].body, "Soak passed");
        let merged = pulls.get(1).await.unwrap();
        assert!(merged.merged_at.is_some());
        assert_eq!(merged.merge_commit_sha.as_deref(), Some(merge_sha.as_str()));
        assert!(pulls.is_merged(1).await.unwrap());
        github.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_push_moves_the_head_so_a_stale_sha_gets_409_and_a_closed_pr_405() {
    bounded(async {
        let setup = Setup::new();
        let (github, octo) = start(&setup).await;
        let pulls = octo.pulls("acme", "gitops");
        pulls.create("ring 1", BRANCH, "main").send().await.unwrap();
        let old = sha(&setup.bare, BRANCH);

        // Someone pushes to the branch: the PR's head follows it.
        commit(&setup.work, BRANCH, None, &[("cluster.yaml", "v: 1.35\n")]);
        setup.push(BRANCH);
        let new = sha(&setup.bare, BRANCH);
        assert_ne!(old, new);
        assert_eq!(pulls.get(1).await.unwrap().head.sha, new);
        // An approval is recorded on the head it was given on.
        github.approve(REPO, 1, "alice");
        assert_eq!(github.pull(REPO, 1).unwrap().reviews[0].commit_id, new);

        let main_before = sha(&setup.bare, "main");
        let stale = gh_error(pulls.merge(1).sha(old).send().await.unwrap_err());
        assert_eq!(stale.status_code, StatusCode::CONFLICT);
        assert_eq!(
            stale.message,
            "Head branch was modified. Review and try the merge again."
        );
        assert_eq!(sha(&setup.bare, "main"), main_before, "nothing merged");

        pulls
            .update(1)
            .state(octocrab::params::pulls::State::Closed)
            .send()
            .await
            .unwrap();
        let closed = gh_error(pulls.merge(1).sha(new).send().await.unwrap_err());
        assert_eq!(closed.status_code, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(closed.message, "Pull Request is not mergeable");
        assert_eq!(github.pull(REPO, 1).unwrap().state, "closed");
        assert!(!github.pull(REPO, 1).unwrap().merged);

        // Closed, the PR no longer blocks a new one for the same head.
        let again = pulls
            .create("ring 1 (retry)", BRANCH, "main")
            .send()
            .await
            .unwrap();
        assert_eq!(again.number, 2);
        github.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn squash_and_rebase_merges_write_single_parent_commits() {
    bounded(async {
        let setup = Setup::new();
        let (github, octo) = start(&setup).await;
        let pulls = octo.pulls("acme", "gitops");
        setup.branch("squash-me", "a.txt", "a\n");
        setup.branch("rebase-me", "b.txt", "b\n");
        pulls
            .create("Squash", "squash-me", "main")
            .send()
            .await
            .unwrap();
        pulls
            .create("Rebase", "rebase-me", "main")
            .send()
            .await
            .unwrap();
        let git = Repository::open(&setup.bare).unwrap();

        let main0 = sha(&setup.bare, "main");
        let squashed = pulls
            .merge(1)
            .method(octocrab::params::pulls::MergeMethod::Squash)
            .send()
            .await
            .unwrap()
            .sha
            .unwrap();
        let c = git.find_commit(Oid::from_str(&squashed).unwrap()).unwrap();
        assert_eq!(c.parent_count(), 1);
        assert_eq!(c.parent_id(0).unwrap().to_string(), main0);
        assert_eq!(c.message().unwrap(), "Squash (#1)");

        let rebased = pulls
            .merge(2)
            .method(octocrab::params::pulls::MergeMethod::Rebase)
            .send()
            .await
            .unwrap()
            .sha
            .unwrap();
        let c = git.find_commit(Oid::from_str(&rebased).unwrap()).unwrap();
        assert_eq!(c.parent_count(), 1);
        assert_eq!(c.parent_id(0).unwrap().to_string(), squashed);
        let tree = c.tree().unwrap();
        assert!(tree.get_name("a.txt").is_some() && tree.get_name("b.txt").is_some());
        assert_eq!(sha(&setup.bare, "main"), rebased);
        github.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_conflicting_pull_request_is_not_mergeable() {
    bounded(async {
        let setup = Setup::new();
        let (github, octo) = start(&setup).await;
        let pulls = octo.pulls("acme", "gitops");
        setup.branch("left", "README.md", "left\n");
        setup.branch("right", "README.md", "right\n");
        pulls.create("Left", "left", "main").send().await.unwrap();
        pulls.create("Right", "right", "main").send().await.unwrap();
        assert!(github.merge_pr_as_human(REPO, 1).is_ok());
        let pr = pulls.get(2).await.unwrap();
        assert_eq!(pr.mergeable, Some(false));
        let e = gh_error(pulls.merge(2).send().await.unwrap_err());
        assert_eq!(e.status_code, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(
            github.merge_pr_as_human(REPO, 2),
            Err("Pull Request is not mergeable".to_string())
        );
        github.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn create_is_validated_like_github() {
    bounded(async {
        let setup = Setup::new();
        let (github, octo) = start(&setup).await;
        let pulls = octo.pulls("acme", "gitops");
        let missing = gh_error(
            pulls
                .create("t", "no-such-branch", "main")
                .send()
                .await
                .unwrap_err(),
        );
        assert_eq!(missing.status_code, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(missing.errors.unwrap()[0]["field"], "head");
        let empty = gh_error(pulls.create("t", "main", "main").send().await.unwrap_err());
        assert_eq!(
            empty.errors.unwrap()[0]["message"],
            "No commits between main and main"
        );
        let fork = gh_error(
            pulls
                .create("t", format!("someone-else:{BRANCH}"), "main")
                .send()
                .await
                .unwrap_err(),
        );
        assert_eq!(fork.status_code, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(github.pulls(REPO).is_empty());
        github.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn reviews_requested_changes_and_human_helpers_are_visible() {
    bounded(async {
        let setup = Setup::new();
        let (github, octo) = start(&setup).await;
        let pulls = octo.pulls("acme", "gitops");
        pulls
            .create("ring", BRANCH, "main")
            .draft(true)
            .send()
            .await
            .unwrap();
        github.request_changes(REPO, 1, "carol");
        let reviews = pulls.list_reviews(1).send().await.unwrap();
        assert_eq!(reviews.items[0].state, Some(ReviewState::ChangesRequested));
        let draft = gh_error(pulls.merge(1).send().await.unwrap_err());
        assert_eq!(draft.status_code, StatusCode::METHOD_NOT_ALLOWED);
        github.close_pr(REPO, 1);
        let snap = github.pull(REPO, 1).unwrap();
        assert_eq!((snap.state.as_str(), snap.draft), ("closed", true));
        let closed = pulls
            .list()
            .state(octocrab::params::State::Closed)
            .send()
            .await
            .unwrap();
        assert_eq!(closed.items.len(), 1);
        let open = pulls.list().send().await.unwrap();
        assert!(open.items.is_empty());
        github.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn repository_branch_and_ref_endpoints_read_git() {
    bounded(async {
        let setup = Setup::new();
        let (github, octo) = start(&setup).await;
        let repos = octo.repos("acme", "gitops");
        let repo = repos.get().await.unwrap();
        assert_eq!(repo.default_branch.as_deref(), Some("main"));
        assert_eq!(repo.full_name.as_deref(), Some("acme/gitops"));
        let r = repos
            .get_ref(&Reference::Branch(BRANCH.into()))
            .await
            .unwrap();
        assert_eq!(r.ref_field, format!("refs/heads/{BRANCH}"));
        match r.object {
            octocrab::models::repos::Object::Commit { sha: s, .. } => {
                assert_eq!(s, sha(&setup.bare, BRANCH));
            }
            other => panic!("unexpected object {other:?}"),
        }
        let missing = gh_error(
            repos
                .get_ref(&Reference::Branch("nope".into()))
                .await
                .unwrap_err(),
        );
        assert_eq!(missing.status_code, StatusCode::NOT_FOUND);

        let (status, _, body) = raw(
            github.local_addr(),
            "GET",
            "/repos/acme/gitops/branches/ringmaster/r/ring/1",
            &[],
            None,
        )
        .await;
        assert_eq!(status, 200);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["commit"]["sha"], sha(&setup.bare, BRANCH));
        assert_eq!(v["name"], BRANCH);
        // The older refs form with a prefix lists the matching branches.
        let (status, _, body) = raw(
            github.local_addr(),
            "GET",
            "/repos/acme/gitops/git/refs/heads/ringmaster",
            &[],
            None,
        )
        .await;
        assert_eq!(status, 200);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v[0]["ref"], format!("refs/heads/{BRANCH}"));
        github.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_conditional_get_answers_304_for_free() {
    bounded(async {
        let setup = Setup::new();
        let (github, octo) = start(&setup).await;
        octo.pulls("acme", "gitops")
            .create("ring", BRANCH, "main")
            .send()
            .await
            .unwrap();
        let uri = format!("{}/repos/acme/gitops/pulls/1", github.api_url());
        let first = octo._get(uri.clone()).await.unwrap();
        assert_eq!(first.status(), StatusCode::OK);
        let etag = first.headers()["etag"].to_str().unwrap().to_string();
        assert!(
            etag.starts_with('"') && etag.ends_with('"'),
            "strong etag: {etag}"
        );
        let remaining = first.headers()["x-ratelimit-remaining"].clone();

        let mut headers = HeaderMap::new();
        headers.insert("if-none-match", HeaderValue::from_str(&etag).unwrap());
        let second = octo
            ._get_with_headers(uri.clone(), Some(headers.clone()))
            .await
            .unwrap();
        assert_eq!(second.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(second.headers()["x-ratelimit-remaining"], remaining);
        assert_eq!(second.headers()["etag"].to_str().unwrap(), etag);

        // A change to the PR changes its ETag.
        github.approve(REPO, 1, "alice");
        github.set_status(REPO, BRANCH, "ci", "success");
        octo.issues("acme", "gitops")
            .add_labels(1, &["ringmaster".into()])
            .await
            .unwrap();
        let third = octo._get_with_headers(uri, Some(headers)).await.unwrap();
        assert_eq!(third.status(), StatusCode::OK);
        assert_ne!(third.headers()["etag"].to_str().unwrap(), etag);

        let recorded = github.requests();
        let conditional: Vec<_> = recorded.iter().filter(|r| r.if_none_match).collect();
        assert_eq!(conditional.len(), 2);
        assert_eq!(
            (conditional[0].status, conditional[0].counted),
            (304, false)
        );
        assert_eq!((conditional[1].status, conditional[1].counted), (200, true));

        let counted = recorded.iter().filter(|r| r.counted).count() as u64;
        assert_eq!(github.rate_limit_remaining(), 5_000 - counted);
        let limits = octo.ratelimit().get().await.unwrap();
        assert_eq!(limits.resources.core.remaining as u64, 5_000 - counted);
        assert_eq!(
            github.rate_limit_remaining(),
            5_000 - counted,
            "/rate_limit is free"
        );
        github.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn lists_paginate_with_link_headers() {
    bounded(async {
        let setup = Setup::new();
        let (github, octo) = start(&setup).await;
        let pulls = octo.pulls("acme", "gitops");
        for (i, b) in ["ring-a", "ring-b", "ring-c"].iter().enumerate() {
            setup.branch(b, &format!("{b}.txt"), "x\n");
            pulls
                .create(format!("PR {i}"), *b, "main")
                .send()
                .await
                .unwrap();
        }
        let page1 = pulls.list().per_page(1u8).send().await.unwrap();
        assert_eq!(page1.items.len(), 1);
        assert_eq!(page1.items[0].number, 3, "newest first");
        assert_eq!(page1.number_of_pages(), Some(3));
        let page2 = octo
            .get_page::<octocrab::models::pulls::PullRequest>(&page1.next)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(page2.items[0].number, 2);
        assert!(page2.prev.is_some() && page2.first.is_some());
        let page3 = octo
            .get_page::<octocrab::models::pulls::PullRequest>(&page2.next)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(page3.items[0].number, 1);
        assert!(page3.next.is_none());

        let (_, headers, _) = raw(
            github.local_addr(),
            "GET",
            "/repos/acme/gitops/pulls?state=all&per_page=1&page=2",
            &[],
            None,
        )
        .await;
        let link = hdr(&headers, "link").unwrap();
        let base = github.api_url();
        assert_eq!(
            link,
            format!(
                "<{base}/repos/acme/gitops/pulls?state=all&per_page=1&page=1>; rel=\"prev\", \
                 <{base}/repos/acme/gitops/pulls?state=all&per_page=1&page=3>; rel=\"next\", \
                 <{base}/repos/acme/gitops/pulls?state=all&per_page=1&page=3>; rel=\"last\", \
                 <{base}/repos/acme/gitops/pulls?state=all&per_page=1&page=1>; rel=\"first\""
            )
        );
        github.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn injected_faults_answer_like_github_then_recover() {
    bounded(async {
        let setup = Setup::new();
        let (github, octo) = start(&setup).await;
        let repos = octo.repos("acme", "gitops");

        github.inject(Fault::ServerErrors { count: 2 });
        for _ in 0..2 {
            let e = gh_error(repos.get().await.unwrap_err());
            assert_eq!(e.status_code, StatusCode::BAD_GATEWAY);
        }
        repos.get().await.unwrap();

        github.inject(Fault::SecondaryRateLimit {
            retry_after_secs: 60,
            count: 1,
        });
        let e = gh_error(repos.get().await.unwrap_err());
        assert_eq!(e.status_code, StatusCode::FORBIDDEN);
        assert!(e.message.contains("secondary rate limit"), "{}", e.message);
        assert_eq!(e.headers.unwrap()["retry-after"], "60");

        github.inject(Fault::PrimaryRateLimit {
            reset_in_secs: 120,
            count: 1,
        });
        let before = chrono::Utc::now().timestamp() as u64;
        let e = gh_error(repos.get().await.unwrap_err());
        assert_eq!(e.status_code, StatusCode::FORBIDDEN);
        assert!(e.message.starts_with("API rate limit exceeded"));
        assert_eq!(e.headers.as_ref().unwrap()["x-ratelimit-remaining"], "0");
        let reset = e.rate_limit_reset.unwrap();
        assert!((before + 119..=before + 122).contains(&reset), "{reset}");
        repos.get().await.unwrap();

        github.inject(Fault::Slow {
            millis: 300,
            count: 1,
        });
        let t = Instant::now();
        repos.get().await.unwrap();
        assert!(t.elapsed() >= Duration::from_millis(300));

        // The create succeeds but the answer is lost: a retry must look the PR up first.
        github.inject(Fault::DuplicatePrOnCreate);
        let pulls = octo.pulls("acme", "gitops");
        let e = gh_error(
            pulls
                .create("ring", BRANCH, "main")
                .send()
                .await
                .unwrap_err(),
        );
        assert_eq!(e.status_code, StatusCode::UNPROCESSABLE_ENTITY);
        let found = pulls
            .list()
            .head(format!("acme:{BRANCH}"))
            .send()
            .await
            .unwrap();
        assert_eq!(found.items.len(), 1);

        let statuses: Vec<u16> = github.requests().iter().map(|r| r.status).collect();
        assert_eq!(statuses, [502, 502, 200, 403, 403, 200, 200, 422, 200]);
        github.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn the_primary_limit_runs_out_and_rate_limit_still_answers() {
    bounded(async {
        let setup = Setup::new();
        let (github, octo) = start(&setup).await;
        github.set_rate_limit(2);
        let repos = octo.repos("acme", "gitops");
        repos.get().await.unwrap();
        repos.get().await.unwrap();
        let e = gh_error(repos.get().await.unwrap_err());
        assert_eq!(e.status_code, StatusCode::FORBIDDEN);
        let limits = octo.ratelimit().get().await.unwrap();
        assert_eq!(
            (limits.rate.limit, limits.rate.remaining, limits.rate.used),
            (2, 0, 2)
        );
        github.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn unknown_paths_and_wrong_verbs_are_404() {
    bounded(async {
        let setup = Setup::new();
        let (github, _octo) = start(&setup).await;
        let addr = github.local_addr();
        for (method, path) in [
            ("GET", "/nope"),
            ("GET", "/repos/acme/other"),
            ("DELETE", "/repos/acme/gitops"),
            ("PATCH", "/repos/acme/gitops/pulls"),
            ("GET", "/repos/acme/gitops/pulls/99"),
        ] {
            let (status, _, body) = raw(addr, method, path, &[], None).await;
            assert_eq!(status, 404, "{method} {path}");
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(v["message"], "Not Found");
            assert_eq!(v["documentation_url"], "https://docs.github.com/rest");
        }
        github.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_required_token_rejects_others_with_401() {
    bounded(async {
        let setup = Setup::new();
        let (github, good) = start(&setup).await;
        github.require_token(Some("s3cret".into()));
        let good = {
            drop(good);
            client(&github.api_url(), "s3cret")
        };
        good.repos("acme", "gitops").get().await.unwrap();
        let bad = client(&github.api_url(), "wrong");
        let e = gh_error(bad.repos("acme", "gitops").get().await.unwrap_err());
        assert_eq!(e.status_code, StatusCode::UNAUTHORIZED);
        assert_eq!(e.message, "Bad credentials");
        let (status, _, _) = raw(github.local_addr(), "GET", "/repos/acme/gitops", &[], None).await;
        assert_eq!(status, 401);
        let (status, _, _) = raw(
            github.local_addr(),
            "GET",
            "/repos/acme/gitops",
            &[("Authorization", "Bearer s3cret")],
            None,
        )
        .await;
        assert_eq!(status, 200);
        github.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_plain_http_client_works_like_curl() {
    bounded(async {
        let setup = Setup::new();
        let github = FakeGitHub::start().await.unwrap();
        github.add_repo("acme", "gitops", &setup.bare, "main");
        let addr = github.local_addr();
        let (status, headers, body) = raw(
            addr,
            "POST",
            "/repos/acme/gitops/pulls",
            &[("Authorization", "token anything")],
            Some(r#"{"title":"From curl","head":"acme:ringmaster/r/ring/1","base":"main","maintainer_can_modify":true}"#),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(
            hdr(&headers, "location"),
            Some(format!("{}/repos/acme/gitops/pulls/1", github.api_url()).as_str())
        );
        assert_eq!(hdr(&headers, "x-ratelimit-resource"), Some("core"));
        assert_eq!(hdr(&headers, "x-ratelimit-remaining"), Some("4999"));
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["title"], "From curl");

        let (status, headers, body) = raw(addr, "GET", "/repos/acme/gitops/pulls/1", &[], None).await;
        assert_eq!(status, 200);
        let etag = hdr(&headers, "etag").unwrap().to_string();
        assert!(body.contains("\"mergeable\":true"));
        let (status, headers, body) = raw(
            addr,
            "GET",
            "/repos/acme/gitops/pulls/1",
            &[("If-None-Match", &etag)],
            None,
        )
        .await;
        assert_eq!((status, body.as_str()), (304, ""));
        assert_eq!(hdr(&headers, "x-ratelimit-remaining"), Some("4998"));

        let (status, _, body) = raw(addr, "POST", "/repos/acme/gitops/pulls", &[], Some("{not json")).await;
        assert_eq!(status, 400, "{body}");

        let (status, _, body) = raw(
            addr,
            "PUT",
            "/repos/acme/gitops/pulls/1/merge",
            &[],
            Some(r#"{"merge_method":"merge"}"#),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert!(github.pull(REPO, 1).unwrap().merged);
        github.shutdown().await;
    })
    .await;
}

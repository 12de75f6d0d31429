#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The mirror: created on first use, incremental fetch, every URL form that works here, and
//! credentials that never leak.

use std::io::{Read as _, Write as _};
use std::net::TcpListener;
use std::time::Duration;

use orchestrator::gitops::mirror::{Mirror, MirrorError, Secret};
use rings::model::{GitAuth, GitLocation, SecretSource};

fn source_repo() -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = examples::materialize(&examples::fleet_dir(), &tmp.path().join("fleet")).unwrap();
    let repo = cfg.parent().unwrap().join("gitops");
    (tmp, repo)
}

#[test]
fn the_mirror_is_created_once_and_fetches_incrementally() {
    let (tmp, repo) = source_repo();
    let data = tmp.path().join("data");
    let location = GitLocation::Local(repo.clone());
    let mirror = Mirror::open(&data, &location, GitAuth::None).unwrap();
    assert!(mirror.path().starts_with(data.join("mirrors")));
    assert!(mirror.repo().is_bare(), "no working tree");
    let head = mirror.fetch("main").unwrap();
    assert!(
        mirror.last_fetch_objects() > 15,
        "first fetch brings everything"
    );

    // A second fetch with nothing new transfers nothing.
    let again = Mirror::open(&data, &location, GitAuth::None).unwrap();
    assert_eq!(again.path(), mirror.path(), "the same mirror is reused");
    assert_eq!(again.fetch("main").unwrap(), head);
    assert_eq!(again.last_fetch_objects(), 0);

    // One new commit: only its objects travel.
    let source = git2::Repository::open(&repo).unwrap();
    let parent = source.find_commit(head).unwrap();
    let mut builder = source.treebuilder(Some(&parent.tree().unwrap())).unwrap();
    builder
        .insert("NOTES", source.blob(b"one more\n").unwrap(), 0o100_644)
        .unwrap();
    let tree = source.find_tree(builder.write().unwrap()).unwrap();
    let sig = git2::Signature::now("t", "t@example.invalid").unwrap();
    let new = source
        .commit(
            Some("refs/heads/main"),
            &sig,
            &sig,
            "notes",
            &tree,
            &[&parent],
        )
        .unwrap();
    assert_eq!(again.fetch("main").unwrap(), new);
    assert_eq!(again.last_fetch_objects(), 3, "commit, root tree, blob");
}

#[test]
fn file_urls_work_and_a_missing_branch_is_named() {
    let (tmp, repo) = source_repo();
    let url = format!("file://{}", repo.display());
    let settings = tmp.path().join("fleet/ringmaster.yaml");
    let text = std::fs::read_to_string(&settings)
        .unwrap()
        .replace("url: ./gitops", &format!("url: \"{url}\""));
    std::fs::write(&settings, text).unwrap();
    let s = rings::load::load_settings(&settings).unwrap();
    assert_eq!(s.gitops.location, GitLocation::Local(repo.clone()));
    let mirror = Mirror::open(
        &s.data_dir,
        &GitLocation::Remote(url.clone()),
        GitAuth::None,
    )
    .unwrap();
    assert!(mirror.fetch("main").is_ok());
    let err = mirror.fetch("trunk").unwrap_err();
    assert!(matches!(err, MirrorError::NoSuchBranch { .. }));
    assert_eq!(
        err.to_string(),
        format!("branch `trunk` does not exist on {url}")
    );
}

/// An HTTP server on loopback that answers every request with 401, counting requests.
fn refusing_server() -> (String, std::sync::mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // Bounded: at most 10 connections, then the thread ends.
        for stream in listener.incoming().take(10) {
            let Ok(mut stream) = stream else { break };
            stream.set_read_timeout(Some(Duration::from_secs(5))).ok();
            let mut buf = [0u8; 8192];
            let n = stream.read(&mut buf).unwrap_or(0);
            let _ = tx.send(String::from_utf8_lossy(&buf[..n]).into_owned());
            let _ = stream.write_all(
                b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"git\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    (
        format!("http://127.0.0.1:{}/acme/gitops.git", addr.port()),
        rx,
    )
}

#[test]
fn a_rejected_token_fails_cleanly_and_never_appears_in_the_error() {
    const TOKEN: &str = "ghp_thisIsNotARealTokenButLooksLikeOne1234";
    let tmp = tempfile::tempdir().unwrap();
    let token_file = tmp.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let (url, requests) = refusing_server();
    let mirror = Mirror::open(
        tmp.path(),
        &GitLocation::Remote(url.clone()),
        GitAuth::Token(SecretSource::File(token_file)),
    )
    .unwrap();
    let err = mirror.fetch("main").unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(!text.contains(TOKEN), "{text}");
    assert!(matches!(err, MirrorError::Transport { .. }), "{err:?}");
    assert!(text.contains("127.0.0.1"), "{text}");
    // The token was offered (as HTTP basic auth), a bounded number of times.
    let seen: Vec<String> = requests.try_iter().collect();
    let with_auth = seen
        .iter()
        .filter(|r| r.to_ascii_lowercase().contains("authorization: basic"))
        .count();
    assert!((1..=2).contains(&with_auth), "{seen:?}");
    // The mirror's config never holds the token.
    let config = std::fs::read_to_string(mirror.path().join("config")).unwrap();
    assert!(!config.contains(TOKEN));
}

#[test]
fn a_missing_token_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let mirror = Mirror::open(
        tmp.path(),
        &GitLocation::Remote("https://github.example.invalid/acme/gitops.git".into()),
        GitAuth::Token(SecretSource::Env(
            "RINGMASTER_TEST_SURELY_UNSET_TOKEN".into(),
        )),
    )
    .unwrap();
    let err = mirror.fetch("main").unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot read the git credentials: environment variable RINGMASTER_TEST_SURELY_UNSET_TOKEN is not set"
    );
}

#[test]
fn secrets_hide_in_debug() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("t");
    std::fs::write(&f, "s3cr3t\n").unwrap();
    let s = Secret::read(&SecretSource::File(f)).unwrap();
    assert_eq!(format!("{s:?}"), "Secret(***)");
    assert_eq!(s.expose(), "s3cr3t");
    assert_eq!(s.redact("x s3cr3t y"), "x *** y");
}

#[test]
fn the_every_pass_fetch_takes_the_base_branch_alone_and_fetch_all_takes_ring_branches() {
    let (tmp, repo) = source_repo();
    let data = tmp.path().join("data");
    let mirror = Mirror::open(&data, &GitLocation::Local(repo.clone()), GitAuth::None).unwrap();
    let source = git2::Repository::open(&repo).unwrap();
    let head = source.refname_to_id("refs/heads/main").unwrap();
    let ring_branch = "ringmaster/addons-1/canary/1";
    source
        .reference(&format!("refs/heads/{ring_branch}"), head, false, "ring")
        .unwrap();

    // The daemon's per-pass fetch: the base branch only, whatever else the remote holds.
    assert_eq!(mirror.fetch("main").unwrap(), head);
    assert_eq!(mirror.branch_head(ring_branch).unwrap(), None);

    // Before a ring branch is compared with what would be pushed: every branch.
    assert_eq!(mirror.fetch_all("main").unwrap(), head);
    assert_eq!(mirror.branch_head(ring_branch).unwrap(), Some(head));

    // A branch deleted on the remote (merged and cleaned up) is pruned by the full fetch.
    source
        .find_reference(&format!("refs/heads/{ring_branch}"))
        .unwrap()
        .delete()
        .unwrap();
    mirror.fetch_all("main").unwrap();
    assert_eq!(mirror.branch_head(ring_branch).unwrap(), None);
}

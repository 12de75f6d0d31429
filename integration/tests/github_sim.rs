#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The `ringmaster-sim` binary: it reads `ringmaster.yaml`, serves the fake GitHub for the
//! configured repository over its GitOps repository, prints one JSON line, and stops on SIGTERM.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use axum::http::StatusCode;
use git2::{Repository, Signature};

/// Upper bound for one test.
const TEST_TIMEOUT: Duration = Duration::from_secs(60);

/// How long the simulator may take to print its ready line.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

const SIM: &str = env!("CARGO_BIN_EXE_ringmaster-sim");

/// Kills the simulator if a test fails before stopping it.
struct Sim {
    child: Child,
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Sim {
    fn spawn(args: &[&str]) -> Sim {
        let child = Command::new(SIM)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Sim { child }
    }

    /// The ready line, parsed.
    async fn ready(&mut self) -> serde_json::Value {
        let stdout = self.child.stdout.take().unwrap();
        let line = tokio::time::timeout(
            READY_TIMEOUT,
            tokio::task::spawn_blocking(move || {
                let mut line = String::new();
                BufReader::new(stdout).read_line(&mut line).unwrap();
                line
            }),
        )
        .await
        .expect("ringmaster-sim did not print its ready line")
        .unwrap();
        assert!(line.ends_with('\n'), "one whole line: {line:?}");
        serde_json::from_str(&line).unwrap()
    }

    /// Sends SIGTERM and waits for the exit.
    async fn terminate(&mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success());
        self.wait().await
    }

    /// Bounded poll for the process to exit (10 s), checking every 50 ms.
    async fn wait(&mut self) -> ExitStatus {
        for _ in 0..200 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("ringmaster-sim did not exit");
    }
}

fn run_to_end(args: &[&str]) -> (i32, String) {
    let out = Command::new(SIM).args(args).output().unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn commit(repo: &Repository, branch: &str, from: Option<&str>, file: &str, content: &str) {
    let parent = from
        .map(|f| repo.find_reference(&format!("refs/heads/{f}")).unwrap())
        .map(|r| r.peel_to_commit().unwrap());
    let base = parent.as_ref().map(|p| p.tree().unwrap());
    let mut tb = repo.treebuilder(base.as_ref()).unwrap();
    tb.insert(file, repo.blob(content.as_bytes()).unwrap(), 0o100_644)
        .unwrap();
    let tree = repo.find_tree(tb.write().unwrap()).unwrap();
    let sig = Signature::now("dev", "dev@example.com").unwrap();
    let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
    let oid = repo
        .commit(None, &sig, &sig, "edit", &tree, &parents)
        .unwrap();
    repo.reference(&format!("refs/heads/{branch}"), oid, true, "test")
        .unwrap();
}

/// A setup directory with `ringmaster.yaml` and a bare `gitops.git` with `main` and a ring branch.
fn setup(dir: &Path, forge: &str) -> PathBuf {
    let bare = Repository::init_bare(dir.join("gitops.git")).unwrap();
    commit(&bare, "main", None, "README.md", "fleet\n");
    commit(
        &bare,
        "ringmaster/r/ring/1",
        Some("main"),
        "cluster.yaml",
        "v: 1.34\n",
    );
    let config = dir.join("ringmaster.yaml");
    std::fs::write(
        &config,
        format!(
            "apiVersion: ringmaster/v1\nkind: Orchestrator\ngitops: {{ url: ./gitops.git, branch: main }}\nforge: {forge}\n"
        ),
    )
    .unwrap();
    config
}

const GITHUB_FORGE: &str = r#"{ github: { owner: acme, repo: gitops, apiUrl: "http://127.0.0.1:1", tokenEnv: GITHUB_TOKEN } }"#;

fn client(api_url: &str, token: &str) -> octocrab::Octocrab {
    octocrab::Octocrab::builder()
        .base_uri(api_url)
        .unwrap()
        .personal_token(token.to_string())
        .build()
        .unwrap()
}

#[tokio::test]
async fn the_simulator_serves_the_configured_repository_until_sigterm() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let dir = tempfile::tempdir().unwrap();
        let config = setup(dir.path(), GITHUB_FORGE);
        let mut sim = Sim::spawn(&["--config", config.to_str().unwrap()]);
        let ready = sim.ready().await;
        let api_url = ready["github"]["apiUrl"].as_str().unwrap().to_string();
        assert!(api_url.starts_with("http://127.0.0.1:"), "{api_url}");
        assert_eq!(ready["github"]["repo"], "acme/gitops");
        let git_dir = std::fs::canonicalize(dir.path().join("gitops.git")).unwrap();
        assert_eq!(ready["github"]["gitDir"], git_dir.to_str().unwrap());

        let octo = client(&api_url, "any-token");
        let repo = octo.repos("acme", "gitops").get().await.unwrap();
        assert_eq!(repo.default_branch.as_deref(), Some("main"));
        let pulls = octo.pulls("acme", "gitops");
        let pr = pulls
            .create(
                "[ring 1/1 sandbox] Kubernetes 1.33 → 1.34",
                "ringmaster/r/ring/1",
                "main",
            )
            .send()
            .await
            .unwrap();
        let merged = pulls
            .merge(pr.number)
            .sha(pr.head.sha.clone())
            .send()
            .await
            .unwrap();
        let bare = Repository::open(&git_dir).unwrap();
        let main = bare.find_reference("refs/heads/main").unwrap();
        assert_eq!(
            main.peel_to_commit().unwrap().id().to_string(),
            merged.sha.unwrap()
        );

        let status = sim.terminate().await;
        assert_eq!(status.code(), Some(0), "{status:?}");
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn flags_choose_the_repository_port_and_token() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let dir = tempfile::tempdir().unwrap();
        let config = setup(dir.path(), "{ local: {} }");
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let mut sim = Sim::spawn(&[
            "--config",
            config.to_str().unwrap(),
            "--github-repo",
            "platform/fleet",
            "--github-token",
            "s3cret",
            "--port",
            &port.to_string(),
        ]);
        let ready = sim.ready().await;
        let api_url = ready["github"]["apiUrl"].as_str().unwrap().to_string();
        assert_eq!(api_url, format!("http://127.0.0.1:{port}"));
        assert_eq!(ready["github"]["repo"], "platform/fleet");

        let good = client(&api_url, "s3cret");
        good.repos("platform", "fleet").get().await.unwrap();
        let bad = client(&api_url, "wrong");
        match bad.repos("platform", "fleet").get().await.unwrap_err() {
            octocrab::Error::GitHub { source, .. } => {
                assert_eq!(source.status_code, StatusCode::UNAUTHORIZED);
            }
            other => panic!("expected 401, got {other:?}"),
        }
        let status = sim.terminate().await;
        assert_eq!(status.code(), Some(0));
    })
    .await
    .expect("test timed out");
}

#[test]
fn usage_errors_exit_2() {
    let (code, stderr) = run_to_end(&[]);
    assert_eq!(code, 2);
    assert!(stderr.contains("--config is required"), "{stderr}");
    assert!(stderr.contains("usage: ringmaster-sim"), "{stderr}");

    let (code, stderr) = run_to_end(&["--config"]);
    assert_eq!(code, 2, "{stderr}");
    let (code, stderr) = run_to_end(&["--bogus"]);
    assert_eq!(code, 2, "{stderr}");
    let (code, stderr) = run_to_end(&["--config", "x.yaml", "--port", "http"]);
    assert_eq!(code, 2, "{stderr}");

    // A local forge and no --github-repo: nothing to serve.
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path(), "{ local: {} }");
    let (code, stderr) = run_to_end(&["--config", config.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(stderr.contains("--github-repo"), "{stderr}");

    let (code, stderr) = run_to_end(&[
        "--config",
        config.to_str().unwrap(),
        "--github-repo",
        "no-slash",
    ]);
    assert_eq!(code, 2, "{stderr}");

    // A configuration that does not load is an error, not a usage problem.
    let (code, stderr) = run_to_end(&[
        "--config",
        dir.path().join("missing.yaml").to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{stderr}");
}

#[tokio::test]
async fn a_github_fault_from_the_command_line_starts_after_its_requests_and_clears() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let dir = tempfile::tempdir().unwrap();
        let config = setup(dir.path(), GITHUB_FORGE);
        let mut sim = Sim::spawn(&[
            "--config",
            config.to_str().unwrap(),
            "--github-fault",
            "rate-limit@3",
            "--github-fault-for",
            "2s",
        ]);
        let ready = sim.ready().await;
        let api_url = ready["github"]["apiUrl"].as_str().unwrap().to_string();
        let octo = client(&api_url, "any-token");
        let repos = octo.repos("acme", "gitops");
        for _ in 0..3 {
            repos.get().await.unwrap();
        }
        let started = std::time::Instant::now();
        match repos.get().await.unwrap_err() {
            octocrab::Error::GitHub { source, .. } => {
                assert_eq!(source.status_code, StatusCode::TOO_MANY_REQUESTS);
                let retry_after = &source.headers.unwrap()["retry-after"];
                assert!(["1", "2"].contains(&retry_after.to_str().unwrap()));
            }
            other => panic!("expected 429, got {other:?}"),
        }
        // Cleared after its two seconds (bounded poll).
        while repos.get().await.is_err() {
            assert!(started.elapsed() < Duration::from_secs(5), "still failing");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(started.elapsed() >= Duration::from_millis(1500));
        let status = sim.terminate().await;
        assert_eq!(status.code(), Some(0));
    })
    .await
    .expect("test timed out");
}

#[test]
fn bad_github_faults_are_usage_errors_that_say_what_to_write() {
    let (code, stderr) = run_to_end(&["--config", "x.yaml", "--github-fault", "bogus"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.starts_with(
            "error: --github-fault: GitHub fault `bogus`: unknown GitHub fault kind `bogus`: expected one of errors, rate-limit, secondary-limit, slow, outage"
        ),
        "{stderr}"
    );
    let (code, stderr) = run_to_end(&["--config", "x.yaml", "--github-fault", "errors@x"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("`x` is not a number of requests"),
        "{stderr}"
    );
    let (code, stderr) = run_to_end(&["--config", "x.yaml", "--github-fault-for", "soon"]);
    assert_eq!(code, 2);
    assert!(
        stderr.starts_with("error: --github-fault-for: `soon` is not a duration"),
        "{stderr}"
    );
    let (code, stderr) = run_to_end(&["--config", "x.yaml", "--github-fault-for", "0"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("--github-fault-for must be longer than 0"),
        "{stderr}"
    );
    let (code, stderr) = run_to_end(&[
        "--config",
        "x.yaml",
        "--no-github",
        "--github-fault",
        "outage",
    ]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("--no-github cannot be combined"),
        "{stderr}"
    );

    let out = Command::new(SIM).arg("--help").output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--github-fault KIND[@N]",
        "--github-fault-for D",
        "/_fake/faults",
    ] {
        assert!(help.contains(flag), "{help}");
    }
}

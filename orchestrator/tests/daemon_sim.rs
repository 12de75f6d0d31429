//! The real `ringmaster run` binary, in real time, against the simulated fleet (one fake
//! Kubernetes API server per cluster, converging after the base branch changes) and the fake
//! GitHub (real git repositories behind it) — the production code, unchanged: octocrab, the
//! kube client, git2, sled. Soaks are seconds long. Every test is bounded and stops its
//! processes and servers by itself.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

mod support;

use integration::github::FakeGitHub;
use integration::sim::{Fault, SimFleet, SimOptions};
use state::{Phase, RolloutState, Store};

const REPO: &str = "acme/platform-gitops";
const TOKEN_ENV: &str = "RINGMASTER_E2E_TOKEN";

const RINGS: &str = r#"apiVersion: ringmaster/v1
kind: RingSet
rings:
  - { name: sandbox, selector: { environment: sandbox }, merge: auto, convergeTimeout: 60s, soak: 2s, gates: [nodes-ready, pods-healthy] }
  - { name: nonprod, selector: { environment: [dev, staging] }, merge: auto, convergeTimeout: 60s, soak: 2s, gates: [nodes-ready, pods-healthy] }
  - { name: prod-canary, selector: { environment: prod, criticality: tier-2 }, merge: auto, convergeTimeout: 60s, soak: 3s, gates: [nodes-ready, pods-healthy] }
  - { name: prod-main, selector: { environment: prod, criticality: tier-1 }, merge: manual, reviewers: [acme/platform-sre], convergeTimeout: 60s, soak: 2s, gates: [nodes-ready, pods-healthy] }
gates:
  nodes-ready: { kube: { nodesReady: { minRatio: 1.0 } }, interval: 1s, failureLimit: 3 }
  pods-healthy: { kube: { podsHealthy: { namespaces: ["*"], maxRestartGrowth: 2 } }, interval: 1s, failureLimit: 2 }
observe:
  addons:
    coredns: { kind: Deployment, namespace: kube-system, name: coredns, container: coredns }
    vpc-cni: { kind: Deployment, namespace: kube-system, name: vpc-cni, container: vpc-cni }
  policies:
    restricted-prod: { apiVersion: policies.ringmaster.dev/v1, kind: PolicyBundle, name: restricted-prod, jsonPath: .status.version }
"#;

struct World {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    config: PathBuf,
    github: FakeGitHub,
    sim: SimFleet,
    /// The daemon's API, `http://127.0.0.1:<port>`.
    api: String,
}

/// What GitHub signs deliveries with in these tests (`forge.github.webhookSecretFile`).
const WEBHOOK_SECRET: &str = "e2e-webhook-secret";

async fn world(faults: &[&str]) -> World {
    let tmp = tempfile::tempdir().unwrap();
    let config = examples::materialize(&examples::fleet_dir(), &tmp.path().join("fleet")).unwrap();
    let dir = config.parent().unwrap().to_path_buf();
    for entry in std::fs::read_dir(dir.join("releases")).unwrap() {
        let p = entry.unwrap().path();
        if !p.to_string_lossy().contains("k8s-1.33") {
            std::fs::remove_file(p).unwrap();
        }
    }
    let remote = dir.join("remote.git");
    git2::build::RepoBuilder::new()
        .bare(true)
        .clone(dir.join("gitops").to_str().unwrap(), &remote)
        .unwrap();
    let github = FakeGitHub::start().await.unwrap();
    let (owner, name) = REPO.split_once('/').unwrap();
    github.add_repo(owner, name, &remote, "main");
    let kubeconfig = dir.join("fleet.kubeconfig");
    let mut opts = SimOptions::new(&remote);
    opts.converge_after = Duration::from_millis(500);
    opts.step_delay = Duration::from_millis(50);
    opts.poll = Duration::from_millis(100);
    opts.kubeconfig = kubeconfig.clone();
    opts.faults = faults.iter().map(|f| f.parse::<Fault>().unwrap()).collect();
    let sim = SimFleet::start(opts).await.unwrap();
    std::fs::write(dir.join("rings.yaml"), RINGS).unwrap();
    std::fs::write(dir.join("webhook-secret"), WEBHOOK_SECRET).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(
        &config,
        format!(
            "apiVersion: ringmaster/v1\nkind: Orchestrator\n\
             gitops: {{ url: ./remote.git, branch: main, registry: \"clusters/**/cluster.yaml\" }}\n\
             forge: {{ github: {{ owner: {owner}, repo: {name}, apiUrl: \"{}\", tokenEnv: {TOKEN_ENV}, webhookSecretFile: webhook-secret }} }}\n\
             rings: rings.yaml\nreleases: \"releases/*.yaml\"\nstore: ./ringmaster.db\n\
             kube: {{ kubeconfig: \"{}\" }}\nreconcileInterval: 1s\n\
             api: {{ listen: \"127.0.0.1:{}\" }}\n",
            github.api_url(),
            kubeconfig.display(),
            port
        ),
    )
    .unwrap();
    World {
        _tmp: tmp,
        dir,
        config,
        github,
        sim,
        api: format!("http://127.0.0.1:{port}"),
    }
}

/// The daemon process and its stderr lines.
struct Daemon {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Daemon {
    fn start(config: &Path) -> Daemon {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ringmaster"))
            .args(["--config", config.to_str().unwrap(), "run"])
            .env(TOKEN_ENV, "e2e-token-not-secret")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Daemon { child, lines }
    }

    /// The next stderr line within `wait`.
    async fn line(&self, wait: Duration) -> Option<String> {
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            if let Ok(l) = self.lines.try_recv() {
                return Some(l);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }

    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the daemon did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A journal line printed by `run`: `<time> <rollout> [<ring> ]<kind> <message>`.
fn is_event(line: &str) -> bool {
    line.starts_with("20") && line.contains(" k8s-1.33 ")
}

/// A reviewer merges the open prod-main PR on GitHub (manual ring).
fn merge_manual_prs(w: &World) {
    for pr in w.github.pulls(REPO) {
        if pr.state == "open" && pr.head_ref.contains("/prod-main/") {
            w.github.approve(REPO, pr.number, "alice");
            let _ = w.github.merge_pr_as_human(REPO, pr.number);
        }
    }
}

fn assert_one_pr_per_step(w: &World) {
    let pulls = w.github.pulls(REPO);
    let mut by_branch: BTreeMap<String, usize> = BTreeMap::new();
    for p in &pulls {
        *by_branch.entry(p.head_ref.clone()).or_default() += 1;
    }
    assert!(
        by_branch.values().all(|n| *n == 1),
        "a branch has two PRs: {by_branch:?}"
    );
    for ring in ["sandbox", "nonprod", "prod-canary", "prod-main"] {
        assert!(
            by_branch.keys().any(|b| b.contains(&format!("/{ring}/"))),
            "no PR for {ring}: {by_branch:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_takes_a_release_through_four_rings_on_github_and_stops_on_sigterm() {
    let w = world(&[]).await;
    let d = Daemon::start(&w.config);
    let deadline = Instant::now() + Duration::from_secs(150);
    let mut log = Vec::new();
    loop {
        assert!(
            Instant::now() < deadline,
            "not done in time:\n{}",
            log.join("\n")
        );
        merge_manual_prs(&w);
        if let Some(l) = d.line(Duration::from_millis(200)).await {
            let done = l.contains("completed every ring passed");
            log.push(l);
            if done {
                break;
            }
        }
    }
    // While the daemon holds the store, read commands go through its API.
    let out = Command::new(env!("CARGO_BIN_EXE_ringmaster"))
        .args([
            "--config",
            w.config.to_str().unwrap(),
            "--output",
            "json",
            "status",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["rollouts"][0]["state"], "completed", "{status}");
    let out = Command::new(env!("CARGO_BIN_EXE_ringmaster"))
        .args([
            "--config",
            w.config.to_str().unwrap(),
            "history",
            "k8s-1.33",
        ])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("every ring passed"));

    // `forge.github.webhookSecretFile` mounts the webhook route: a delivery signed with the
    // secret is taken, a wrongly signed one refused.
    let body = serde_json::to_vec(&serde_json::json!({
        "action": "closed",
        "number": 1,
        "pull_request": {"head": {"ref": "ringmaster/k8s-1.33/sandbox/1", "sha": "abc"}, "merged": true}
    }))
    .unwrap();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();
    for (secret, expected) in [("not-the-secret", 401), (WEBHOOK_SECRET, 202)] {
        let r = http
            .post(format!("{}/webhooks/github", w.api))
            .header("x-github-event", "pull_request")
            .header("x-hub-signature-256", support::signed(secret, &body))
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), expected, "signed with {secret}");
    }

    let status = d.terminate();
    assert!(status.success(), "SIGTERM exits 0: {status:?}");
    assert_one_pr_per_step(&w);
    let store = Store::open(&w.dir.join("ringmaster.db")).unwrap();
    assert_eq!(
        store.rollout("k8s-1.33").unwrap().unwrap().state,
        RolloutState::Completed
    );
    let runs = store.ring_runs("k8s-1.33").unwrap();
    let mut prev_pass = None;
    for run in &runs {
        assert_eq!(run.phase, Phase::Passed);
        let first = run.steps.first().unwrap();
        if let Some(p) = prev_pass {
            assert!(
                first.opened_at >= p,
                "{} opened before the previous ring passed",
                run.ring
            );
        }
        prev_pass = run.passed_at;
    }
    // Every cluster (but the paused one) runs 1.33 now.
    for c in w.sim.clusters() {
        assert!(
            c.kubernetes.starts_with("v1.33") || c.id == "azr-neu-prod-02",
            "{} runs {}",
            c.id,
            c.kubernetes
        );
    }
    // The manual ring's PR asked the team for review.
    let main_pr = w
        .github
        .pulls(REPO)
        .into_iter()
        .find(|p| p.head_ref.contains("/prod-main/"))
        .unwrap();
    assert!(
        main_pr
            .requested_teams
            .iter()
            .any(|t| t.contains("platform-sre")),
        "{main_pr:?}"
    );
}

/// Crash safety: SIGKILL the daemon process right after every state transition it reports, and
/// start it again, through a whole rollout that halts on an injected crash loop. One PR per
/// ring step, exactly one evidence comment, an intact journal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_every_transition_it_resumes_without_duplicates_or_losses() {
    let w = world(&["aws-use1-prod-canary-01=crashloop@1.33"]).await;
    let deadline = Instant::now() + Duration::from_secs(240);
    let mut kills = 0;
    let mut log = Vec::new();
    'outer: loop {
        let d = Daemon::start(&w.config);
        loop {
            assert!(
                Instant::now() < deadline,
                "not done in time after {kills} kills:\n{}",
                log.join("\n")
            );
            merge_manual_prs(&w);
            match d.line(Duration::from_millis(200)).await {
                Some(l) if is_event(&l) => {
                    let halted = l.contains(" halted ");
                    log.push(l);
                    if halted {
                        // Kill right after the halt is recorded, before or while the evidence
                        // is posted; the next start must post it exactly once.
                        d.kill();
                        kills += 1;
                        break 'outer;
                    }
                    d.kill();
                    kills += 1;
                    continue 'outer;
                }
                Some(l) => log.push(l),
                None => {}
            }
        }
    }
    // Let a fresh process finish what the halt left (the evidence comment), then stop it.
    let d = Daemon::start(&w.config);
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let pulls = w.github.pulls(REPO);
        let canary = pulls.iter().find(|p| p.head_ref.contains("/prod-canary/"));
        if canary.is_some_and(|p| p.labels.iter().any(|l| l == "ringmaster/halted")) {
            break;
        }
        assert!(
            Instant::now() < until,
            "the evidence was never posted:\n{}",
            log.join("\n")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A few more passes must not add anything.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(d.terminate().success());
    // Each kill lands right after a pass that recorded at least one transition (a pass may
    // record several: window, preflight and PR in one go).
    assert!(
        kills >= 5,
        "the rollout should have been killed many times, saw {kills}:\n{}",
        log.join("\n")
    );

    assert_one_pr_per_step_until_canary(&w);
    let canary = w
        .github
        .pulls(REPO)
        .into_iter()
        .find(|p| p.head_ref.contains("/prod-canary/"))
        .unwrap();
    let halts = canary
        .comments
        .iter()
        .filter(|c| c.body.contains("ringmaster:comment halt"))
        .count();
    assert_eq!(
        halts, 1,
        "exactly one evidence comment: {:?}",
        canary.comments
    );
    let store = Store::open(&w.dir.join("ringmaster.db")).unwrap();
    let rollout = store.rollout("k8s-1.33").unwrap().unwrap();
    assert!(
        matches!(rollout.state, RolloutState::Halted { ref ring, .. } if ring == "prod-canary"),
        "{rollout:?}"
    );
    let journal = store.journal("k8s-1.33").unwrap();
    let kinds: Vec<&str> = journal.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds.first(), Some(&"started"));
    assert_eq!(
        kinds.iter().filter(|k| **k == "halted").count(),
        1,
        "{kinds:?}"
    );
    assert_eq!(
        kinds.iter().filter(|k| **k == "evidence").count(),
        1,
        "{kinds:?}"
    );
    for ring in ["sandbox", "nonprod"] {
        assert!(
            journal
                .iter()
                .any(|e| e.kind == "passed" && e.ring.as_deref() == Some(ring)),
            "{kinds:?}"
        );
    }
    assert!(
        w.github
            .pulls(REPO)
            .iter()
            .all(|p| !p.head_ref.contains("/prod-main/")),
        "no PR after the halt"
    );
}

fn assert_one_pr_per_step_until_canary(w: &World) {
    let pulls = w.github.pulls(REPO);
    let mut by_branch: BTreeMap<String, usize> = BTreeMap::new();
    for p in &pulls {
        *by_branch.entry(p.head_ref.clone()).or_default() += 1;
    }
    assert!(
        by_branch.values().all(|n| *n == 1),
        "a branch has two PRs: {by_branch:?}"
    );
    for ring in ["sandbox", "nonprod", "prod-canary"] {
        assert!(
            by_branch.keys().any(|b| b.contains(&format!("/{ring}/"))),
            "{by_branch:?}"
        );
    }
}

/// Losing the store midway loses no rollout: the next start rebuilds it from the PRs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_store_deleted_midway_it_rebuilds_from_github_and_finishes() {
    let w = world(&[]).await;
    let deadline = Instant::now() + Duration::from_secs(180);
    let d = Daemon::start(&w.config);
    let mut log = Vec::new();
    loop {
        assert!(Instant::now() < deadline, "{}", log.join("\n"));
        if let Some(l) = d.line(Duration::from_millis(200)).await {
            let nonprod_passed = l.contains(" nonprod passed");
            log.push(l);
            if nonprod_passed {
                break;
            }
        }
    }
    d.kill();
    std::fs::remove_dir_all(w.dir.join("ringmaster.db")).unwrap();
    let d = Daemon::start(&w.config);
    let mut rebuilt = false;
    loop {
        assert!(Instant::now() < deadline, "{}", log.join("\n"));
        merge_manual_prs(&w);
        if let Some(l) = d.line(Duration::from_millis(200)).await {
            rebuilt |= l.contains("rebuilt 1 rollout(s) from the forge");
            let done = l.contains("completed every ring passed");
            log.push(l);
            if done {
                break;
            }
        }
    }
    assert!(d.terminate().success());
    assert!(rebuilt, "the log says it rebuilt: {}", log.join("\n"));
    assert_one_pr_per_step(&w);
    let store = Store::open(&w.dir.join("ringmaster.db")).unwrap();
    let journal = store.journal("k8s-1.33").unwrap();
    assert!(journal.iter().any(|e| e.kind == "rebuilt"));
    assert_eq!(
        store.rollout("k8s-1.33").unwrap().unwrap().state,
        RolloutState::Completed
    );
}

/// `plan --preflight` runs each ring's next-step preflight against the live clusters: a removed
/// API still in use on a sandbox cluster is named (and exits 1); once the object and its
/// requests are gone, the preflight holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_preflight_names_a_removed_api_in_use_until_it_is_gone() {
    let w = world(&["aws-use1-sbx-01=removed-api"]).await;
    let rings = std::fs::read_to_string(w.dir.join("rings.yaml"))
        .unwrap()
        .replace(
            "soak: 2s, gates: [nodes-ready, pods-healthy] }\n  - { name: nonprod",
            "soak: 2s, preflight: [removed-apis], gates: [nodes-ready, pods-healthy] }\n  - { name: nonprod",
        )
        .replace("gates:\n  nodes-ready", "gates:\n  removed-apis: { kube: { removedApis: {} } }\n  nodes-ready");
    std::fs::write(w.dir.join("rings.yaml"), rings).unwrap();
    let run = || {
        let config = w.config.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                Command::new(env!("CARGO_BIN_EXE_ringmaster"))
                    .args([
                        "--config",
                        config.to_str().unwrap(),
                        "plan",
                        "--preflight",
                        "--output",
                        "json",
                    ])
                    .output()
                    .unwrap()
            })
            .await
            .unwrap()
        }
    };
    let out = run().await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let results: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let sbx = results
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["cluster"] == "aws-use1-sbx-01")
        .unwrap();
    assert_eq!(sbx["ok"], false);
    let findings = sbx["findings"].to_string();
    assert!(
        findings.contains("removedApis") || findings.contains("removed"),
        "{findings}"
    );
    assert!(
        findings.contains("1.25"),
        "the finding names when the API was removed: {findings}"
    );
    // Every other cluster's preflight holds (they answer, no drift, no removed API).
    assert!(
        results
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["cluster"] != "aws-use1-sbx-01")
            .all(|r| r["ok"] == true),
        "{stdout}"
    );

    w.sim.clear_faults("aws-use1-sbx-01");
    let out = run().await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// Wait for a journal line of `ring` with `kind` from `d`, within `wait`; the lines seen.
async fn wait_event(d: &Daemon, ring: &str, kind: &str, wait: Duration) -> Result<String, String> {
    let deadline = Instant::now() + wait;
    let needle = format!(" {ring} {kind} ");
    // A ring's step passing its soak (`step 1 passed its 6s soak; the ring has another step`)
    // counts as `passed` too.
    let step_passed = format!(" {ring} waitingForWindow step ");
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        if let Some(l) = d.line(Duration::from_millis(100)).await {
            let matched = l.contains(&needle)
                || (kind == "passed" && l.contains(&step_passed) && l.contains(" passed its "));
            if is_event(&l) && matched {
                return Ok(l);
            }
            seen.push(l);
        }
    }
    Err(seen.join("\n"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_during_a_soak_restarts_its_clock_and_the_ring_still_passes() {
    // Issue 16: a gap in sampling used to leave the soak `soaking` for ever. Sandbox is
    // stopped with SIGTERM during its soak, nonprod killed with SIGKILL; each is down longer
    // than two sampling intervals, so the soak clock restarts and the ring passes one soak
    // (plus one interval) after the daemon is back.
    let w = world(&[]).await;
    let soak = Duration::from_secs(6);
    std::fs::write(
        w.dir.join("rings.yaml"),
        RINGS.replacen("soak: 2s", "soak: 6s", 2),
    )
    .unwrap();
    let interval = Duration::from_secs(1);
    let slack = Duration::from_secs(6); // start-up, fetch, the first pass
    for (ring, how) in [("sandbox", "SIGTERM"), ("nonprod", "SIGKILL")] {
        let d = Daemon::start(&w.config);
        wait_event(&d, ring, "soaking", Duration::from_secs(90))
            .await
            .unwrap_or_else(|seen| panic!("{ring} never soaked:\n{seen}"));
        tokio::time::sleep(Duration::from_secs(1)).await;
        if how == "SIGTERM" {
            assert!(d.terminate().success());
        } else {
            d.kill();
        }
        // Down for four intervals: a gap.
        tokio::time::sleep(4 * interval).await;
        let back = Instant::now();
        let d = Daemon::start(&w.config);
        let restarted = wait_event(&d, ring, "soak-restarted", soak + slack)
            .await
            .unwrap_or_else(|seen| panic!("{ring}: no soak restart after {how}:\n{seen}"));
        assert!(restarted.contains("soak clock restarted"), "{restarted}");
        wait_event(&d, ring, "passed", soak + interval + slack)
            .await
            .unwrap_or_else(|seen| {
                panic!("{ring} did not pass within soak + one interval after {how}:\n{seen}")
            });
        assert!(
            back.elapsed() <= soak + interval + slack,
            "{ring} passed {:?} after the restart",
            back.elapsed()
        );
        assert!(d.terminate().success());
    }
    let store = Store::open(&w.dir.join("ringmaster.db")).unwrap();
    for ring in ["sandbox", "nonprod"] {
        let run = store.ring_run("k8s-1.33", ring).unwrap().unwrap();
        assert_eq!(run.phase, Phase::Passed, "{run:#?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_store_and_refused_credentials_stop_the_daemon_instead_of_starting_over() {
    // Issue 16: the failed rebuild used to be a warning, then fresh rollouts were created and
    // the next start never rebuilt from the forge.
    let w = world(&[]).await;
    w.github.require_token(Some("another-token".into()));
    let mut d = Daemon::start(&w.config);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = d.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the daemon kept running");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(!status.success());
    let mut stderr = Vec::new();
    while let Some(l) = d.line(Duration::from_millis(200)).await {
        stderr.push(l);
    }
    let stderr = stderr.join("\n");
    assert!(
        stderr.contains("rebuilding it from the forge")
            && stderr.contains("stops rather than start"),
        "{stderr}"
    );
    assert!(!stderr.contains("another-token") && !stderr.contains("e2e-token-not-secret"));
    let store = Store::open(&w.dir.join("ringmaster.db")).unwrap();
    assert!(store.rollouts().unwrap().is_empty(), "nothing started over");
}

/// `ringmaster <args>` against `config`; (output, how long it took).
fn timed_command(config: &Path, args: &[&str]) -> (std::process::Output, Duration) {
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_ringmaster"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env(TOKEN_ENV, "e2e-token-not-secret")
        .output()
        .unwrap();
    (out, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ten_minute_rate_limit_backs_the_ring_off_while_commands_answer_at_once() {
    // Issue 15: the GitHub client slept through rate limits while the daemon held its state,
    // so commands waited; now the ring backs off until GitHub's Retry-After and every command
    // answers in under a second.
    use integration::github::{Fault as GitHubFault, FaultKind, TimedFault};
    let w = world(&[]).await;
    std::fs::write(w.dir.join("api-token"), "e2e-api-token\n").unwrap();
    let config = std::fs::read_to_string(&w.config).unwrap();
    let config = config.replace("api: { listen: ", "api: { tokenFile: api-token, listen: ");
    assert!(config.contains("tokenFile"), "{config}");
    std::fs::write(&w.config, config).unwrap();
    let d = Daemon::start(&w.config);
    wait_event(&d, "sandbox", "prOpen", Duration::from_secs(60))
        .await
        .unwrap_or_else(|seen| panic!("no sandbox PR:\n{seen}"));
    w.github.inject(GitHubFault::Timed(TimedFault::new(
        FaultKind::RateLimit,
        Duration::from_secs(600),
    )));
    // The next forge call of the ring meets the limit and backs off.
    let retrying = wait_event(&d, "sandbox", "retrying", Duration::from_secs(30))
        .await
        .unwrap_or_else(|seen| panic!("the ring never backed off:\n{seen}"));
    assert!(retrying.contains("rate limited"), "{retrying}");
    let faulted = w.github.faulted_requests();
    for args in [
        &["status"][..],
        &["--output", "json", "status"],
        &["pause", "k8s-1.33", "--reason", "rate limited"],
        &["history", "k8s-1.33"],
    ] {
        let (out, took) = timed_command(&w.config, args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(took < Duration::from_secs(1), "{args:?} took {took:?}");
    }
    let (out, _) = timed_command(&w.config, &["--output", "json", "status"]);
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let sandbox = &status["rollouts"][0]["rings"][0];
    let at = chrono::DateTime::parse_from_rfc3339(sandbox["retry"]["at"].as_str().unwrap())
        .unwrap()
        .with_timezone(&chrono::Utc);
    let wait = at - chrono::Utc::now();
    assert!(
        wait > chrono::TimeDelta::minutes(8) && wait <= chrono::TimeDelta::minutes(11),
        "retry honours Retry-After: {sandbox}"
    );
    let (out, _) = timed_command(&w.config, &["status"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("retrying at"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // Backing off means not asking: a few seconds add (almost) no requests.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        w.github.faulted_requests() <= faulted + 2,
        "{} requests during the back-off",
        w.github.faulted_requests() - faulted
    );
    // The limit lifts; `resume` tries the ring now instead of at the Retry-After.
    w.github.clear_faults();
    let (out, took) = timed_command(&w.config, &["resume", "k8s-1.33"]);
    assert!(
        out.status.success() && took < Duration::from_secs(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_event(&d, "nonprod", "prOpen", Duration::from_secs(60))
        .await
        .unwrap_or_else(|seen| panic!("the rollout did not go on:\n{seen}"));
    assert!(d.terminate().success());
    let pulls = w.github.pulls(REPO);
    let mut branches: Vec<&str> = pulls.iter().map(|p| p.head_ref.as_str()).collect();
    let all = branches.len();
    branches.sort_unstable();
    branches.dedup();
    assert_eq!(branches.len(), all, "no duplicate PR: {branches:?}");
}

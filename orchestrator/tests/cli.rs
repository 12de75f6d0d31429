#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The `ringmaster` binary as a user runs it: exit codes, output shapes, messages.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const AT: &str = "2026-11-24T17:00:00Z";

fn ringmaster(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ringmaster"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8(b.to_vec()).unwrap()
}

/// The example fleet, materialised; returns (tempdir, fleet dir, registry commit).
fn example() -> (tempfile::TempDir, PathBuf, String) {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = examples::materialize(&examples::fleet_dir(), &tmp.path().join("fleet")).unwrap();
    let dir = cfg.parent().unwrap().to_path_buf();
    let repo = git2::Repository::open(dir.join("gitops")).unwrap();
    let head = repo.refname_to_id("refs/heads/main").unwrap().to_string();
    (tmp, dir, head)
}

#[test]
fn validate_prints_a_one_line_summary() {
    let (_tmp, dir, head) = example();
    let out = ringmaster(&dir, &["validate"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!(
            "ok: 15 clusters, 4 rings, 4 releases (registry ./gitops@main at {})\n",
            &head[..12]
        )
    );
    assert_eq!(text(&out.stderr), "");
}

/// `validate` looks for the secret files the daemon will read: an `api.tokenFile` that is
/// not there is an error at its key (issue 16 item 12); once written, the config is valid.
#[test]
fn validate_reports_a_missing_token_file() {
    let (_tmp, dir, _) = example();
    let settings = std::fs::read_to_string(dir.join("ringmaster.yaml")).unwrap();
    std::fs::write(
        dir.join("ringmaster.yaml"),
        format!("{settings}api: {{ tokenFile: api-token }}\n"),
    )
    .unwrap();
    let out = ringmaster(&dir, &["validate"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let line = settings.lines().count() + 1;
    assert!(
        stderr.contains(&format!(
            "ringmaster.yaml:{line}:19: error: api.tokenFile `api-token` does not exist"
        )),
        "{stderr}"
    );
    std::fs::write(dir.join("api-token"), "t\n").unwrap();
    let out = ringmaster(&dir, &["validate"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn validate_lists_every_error_and_exits_1() {
    let (_tmp, dir, _) = example();
    let rings = std::fs::read_to_string(dir.join("rings.yaml")).unwrap();
    let broken = rings.replacen("soak: 30m", "sok: 30m", 1).replacen(
        "timezone: America/New_York",
        "timezone: America/NewYork",
        1,
    );
    std::fs::write(dir.join("rings.yaml"), broken).unwrap();
    std::fs::write(
        dir.join("releases/04-bad.yaml"),
        "apiVersion: ringmaster/v1\nkind: Release\nname: bad\nkubernetes: \"one.two\"\n",
    )
    .unwrap();
    let out = ringmaster(&dir, &["validate"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout), "");
    insta::assert_snapshot!("validate_errors", text(&out.stderr));

    let json = ringmaster(&dir, &["validate", "--output", "json"]);
    assert_eq!(json.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["ok"], false);
    let diags = v["diagnostics"].as_array().unwrap();
    assert_eq!(diags.len(), 3);
    let first = &diags[0];
    assert_eq!(first["file"], "releases/04-bad.yaml");
    assert_eq!(
        (first["line"].as_u64(), first["column"].as_u64()),
        (Some(4), Some(13))
    );
}

#[test]
fn plan_json_has_exactly_the_documented_shape() {
    let (_tmp, dir, _) = example();
    let out = ringmaster(&dir, &["plan", "--output", "json", "--at", AT]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let keys = |v: &Value| -> Vec<String> {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&v), ["generatedAt", "releases"]);
    assert_eq!(v["generatedAt"], AT);
    let releases = v["releases"].as_array().unwrap();
    let names: Vec<&str> = releases
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "k8s-1.33",
            "addons-2026-11",
            "restricted-prod-2.4.0",
            "cert-manager-1.16.3"
        ],
        "file order"
    );
    for r in releases {
        assert_eq!(keys(r), ["name", "rings"]);
        for (i, ring) in r["rings"].as_array().unwrap().iter().enumerate() {
            assert_eq!(
                keys(ring),
                ["clusters", "forecast", "name", "nextWindow", "position"]
            );
            assert_eq!(ring["position"].as_u64(), Some(i as u64 + 1));
            assert_eq!(keys(&ring["forecast"]), ["passedBy", "prOpen"]);
            assert_eq!(keys(&ring["nextWindow"]), ["end", "start"]);
            let ids: Vec<&str> = ring["clusters"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["clusterId"].as_str().unwrap())
                .collect();
            let mut sorted = ids.clone();
            sorted.sort_unstable();
            assert_eq!(ids, sorted, "clusters sorted by id");
            for c in ring["clusters"].as_array().unwrap() {
                assert_eq!(keys(c), ["blocked", "clusterId", "fields", "steps"]);
                // The registry entry's own scalar fields, as written (issue 17).
                assert!(c["fields"]["upgradeChannel"].is_string(), "{c}");
                for step in c["steps"].as_array().unwrap() {
                    for change in step.as_array().unwrap() {
                        assert_eq!(keys(change), ["component", "from", "to"]);
                    }
                }
            }
        }
    }
    let paused = &releases[0]["rings"][3]["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["clusterId"] == "azr-neu-prod-02")
        .unwrap()["blocked"];
    assert_eq!(paused, "paused: PCI audit freeze until 2026-12-15");
}

#[test]
fn plan_table_for_people() {
    let (_tmp, dir, head) = example();
    let out = ringmaster(&dir, &["plan", "--release", "k8s-1.33", "--at", AT]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    insta::assert_snapshot!(
        "plan_table",
        text(&out.stdout).replace(&head[..12], "<commit>")
    );
}

#[test]
fn plan_of_an_unknown_release_fails() {
    let (_tmp, dir, _) = example();
    let out = ringmaster(&dir, &["plan", "--release", "k8s-9.99"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains(
        "no release named `k8s-9.99` (releases: k8s-1.33, addons-2026-11, restricted-prod-2.4.0, cert-manager-1.16.3)"
    ));
}

#[test]
fn usage_errors_exit_2() {
    let (_tmp, dir, _) = example();
    for args in [
        &["plan", "--at", "yesterday"][..],
        &["frobnicate"][..],
        &["plan", "--output", "xml"][..],
    ] {
        let out = ringmaster(&dir, args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
}

#[test]
fn config_selects_the_settings_file() {
    let (tmp, dir, _) = example();
    let out = ringmaster(
        tmp.path(),
        &[
            "validate",
            "--config",
            dir.join("ringmaster.yaml").to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // Without --config, ./ringmaster.yaml is used; here there is none.
    let out = ringmaster(tmp.path(), &["validate"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).starts_with("ringmaster.yaml: error: cannot read ringmaster.yaml"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn plan_diff_prints_a_patch_git_can_apply() {
    let (_tmp, dir, head) = example();
    let out = ringmaster(
        &dir,
        &[
            "plan",
            "--release",
            "k8s-1.33",
            "--ring",
            "nonprod",
            "--diff",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let patch = text(&out.stdout);
    insta::assert_snapshot!("plan_diff_nonprod", patch);
    // Nothing was written to the repository: no new branch, same head, no new objects needed.
    let repo = git2::Repository::open(dir.join("gitops")).unwrap();
    assert_eq!(
        repo.refname_to_id("refs/heads/main").unwrap().to_string(),
        head
    );
    assert_eq!(repo.branches(None).unwrap().count(), 1);
    // `git apply --check` accepts it against the base branch.
    let check = Command::new("git")
        .args(["apply", "--check", "-"])
        .current_dir(dir.join("gitops"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write as _;
            child.stdin.take().unwrap().write_all(patch.as_bytes())?;
            child.wait_with_output()
        })
        .unwrap();
    assert!(
        check.status.success(),
        "git apply --check: {}",
        text(&check.stderr)
    );
}

#[test]
fn plan_diff_explains_when_nothing_changes_or_the_ring_is_unknown() {
    let (_tmp, dir, _) = example();
    let out = ringmaster(
        &dir,
        &[
            "plan",
            "--release",
            "restricted-prod-2.4.0",
            "--ring",
            "sandbox",
            "--diff",
        ],
    );
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stdout), "");
    assert!(
        text(&out.stderr)
            .contains("ring `sandbox` has nothing to change for release `restricted-prod-2.4.0`")
    );
    let out = ringmaster(
        &dir,
        &[
            "plan",
            "--release",
            "k8s-1.33",
            "--ring",
            "canary",
            "--diff",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr)
            .contains("no ring named `canary` (rings: sandbox, nonprod, prod-canary, prod-main)")
    );
    // --diff needs both --release and --ring.
    let out = ringmaster(&dir, &["plan", "--release", "k8s-1.33", "--diff"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn validate_checks_edit_rules() {
    let (_tmp, dir, _) = example();
    let mut rings = std::fs::read_to_string(dir.join("rings.yaml")).unwrap();
    rings.push_str(
        "edits:\n  - addon: coredns\n    file: \"helm/{clusterId}/coredns.yaml\"\n    yamlPath: \"spec..version\"\n  - kubernetes: { file: \"../outside/{clusterId}.tfvars\", regex: 'v = \"(?P<version>[^\"]+)\"' }\n  - policy: restricted-prod\n    file: \"policies/{region}.yaml\"\n    regex: 'no group here'\n",
    );
    std::fs::write(dir.join("rings.yaml"), rings).unwrap();
    let out = ringmaster(&dir, &["validate"]);
    assert_eq!(out.status.code(), Some(1));
    insta::assert_snapshot!("validate_edit_rules", text(&out.stderr));
}

/// Open a local-forge PR for `ring`'s first step of k8s-1.33 in the example (as the daemon would).
fn open_local_pr(dir: &Path, ring: &str) -> String {
    use orchestrator::forge::Forge as _;
    use orchestrator::gitops::GitOps as _;
    let cfg = dir.join("ringmaster.yaml");
    let settings = rings::load::load_settings(&cfg).unwrap();
    let mirror = orchestrator::gitops::mirror::Mirror::open(
        &settings.data_dir,
        &settings.gitops.location,
        settings.gitops.auth.clone(),
    )
    .unwrap();
    let mut engine =
        orchestrator::gitops::MirrorGitOps::new(mirror, "main", settings.author.clone());
    engine.refresh().unwrap();
    let config = rings::load::load_with(&cfg, &mut |g| {
        rings::load::read_registry_ref(
            engine.mirror().repo(),
            "refs/remotes/origin/main",
            &g.branch,
            &g.registry,
            "x",
        )
    })
    .unwrap()
    .config;
    let req = orchestrator::gitops::StepRequest {
        config: &config,
        release: config.release("k8s-1.33").unwrap(),
        ring_index: config
            .ring_set
            .rings
            .iter()
            .position(|r| r.name.as_str() == ring)
            .unwrap(),
        step: 1,
        time: chrono::Utc::now(),
    };
    let (_, step) = engine.publish(&req, None).unwrap();
    let step = step.unwrap();
    let store = state::Store::open(&settings.store_path).unwrap();
    let forge = orchestrator::forge::local::LocalForge::new(
        &store,
        git2::Repository::open(dir.join("gitops")).unwrap(),
        settings.author.clone(),
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(forge.find_or_open(&orchestrator::forge::OpenPr {
        branch: step.branch.clone(),
        base: "main".into(),
        title: step.title.clone(),
        body: String::new(),
        labels: orchestrator::forge::labels("k8s-1.33", ring),
        reviewers: vec![],
    }))
    .unwrap();
    step.commit.to_string()
}

#[test]
fn prs_and_approve_work_on_the_local_forge() {
    let (_tmp, dir, _) = example();
    let out = ringmaster(&dir, &["prs"]);
    assert_eq!(
        (out.status.code(), text(&out.stdout)),
        (Some(0), "no open pull requests\n".to_owned())
    );
    let head = open_local_pr(&dir, "nonprod");
    let out = ringmaster(&dir, &["prs"]);
    let listed = text(&out.stdout);
    assert!(
        listed.contains("#1    ringmaster: Kubernetes 1.32 → 1.33 for ring nonprod (4 clusters)"),
        "{listed}"
    );
    assert!(
        listed.contains("ringmaster/k8s-1.33/nonprod/1") && listed.contains("approvals: none"),
        "{listed}"
    );

    let out = ringmaster(&dir, &["approve", "k8s-1.33", "nonprod", "--as", "alice"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!(
            "approved #1 (ringmaster/k8s-1.33/nonprod/1) at {} as alice\n",
            &head[..12]
        )
    );
    let out = ringmaster(&dir, &["prs", "--output", "json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["approvals"][0]["by"], "alice");
    assert_eq!(v[0]["approvals"][0]["sha"], head.as_str());

    let out = ringmaster(&dir, &["approve", "k8s-1.33", "prod-main"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no open pull request for rollout `k8s-1.33`, ring `prod-main`")
    );
}

#[test]
fn a_store_held_by_another_process_gives_a_clear_message() {
    let (_tmp, dir, _) = example();
    let _held = state::Store::open(&dir.join("ringmaster.db")).unwrap();
    let out = ringmaster(&dir, &["prs"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("another ringmaster is running on the store"),
        "{}",
        text(&out.stderr)
    );
}

/// `ringmaster demo --no-fault`: the whole product end to end (simulated fleet, real git, local
/// forge, live probe) takes Kubernetes 1.33 through all four rings and exits 0.
#[test]
fn demo_without_fault_completes_every_ring() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ringmaster"))
        .args(["demo", "--no-fault", "--keep", "--speed", "3"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("rollout k8s-1.33 completed"), "{stdout}");
    // --keep: the closing hints name the kept directory, which is there.
    let kept = stdout
        .lines()
        .find_map(|l| l.strip_prefix("The demo's files stay in "))
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("no kept directory: {stdout}"));
    let fleet = kept.join("fleet");
    assert!(fleet.join("ringmaster.yaml").is_file(), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "ringmaster --config {}/ringmaster.yaml history k8s-1.33",
            fleet.display()
        )),
        "{stdout}"
    );
    assert!(!stdout.contains("<demo dir>"), "{stdout}");
    std::fs::remove_dir_all(&kept).unwrap();
    for ring in ["sandbox", "nonprod", "prod-canary", "prod-main"] {
        assert!(stdout.contains(ring), "{stdout}");
    }
    assert!(
        stdout.contains("approves local#"),
        "the demo reviews the manual rings: {stdout}"
    );
    // The final matrix: every cluster on 1.33.
    let matrix: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains(" passed") && (l.contains("aws-") || l.contains("azr-")))
        .collect();
    assert_eq!(matrix.len(), 15, "{stdout}");
    assert!(
        matrix
            .iter()
            .all(|l| l.contains("v1.33.") || l.contains("left out: paused")),
        "{stdout}"
    );
    assert_eq!(
        matrix.iter().filter(|l| l.contains("left out")).count(),
        1,
        "the paused cluster is listed, not silently skipped: {stdout}"
    );
}

/// `ringmaster demo`: the injected crash loop on a canary cluster halts the rollout in
/// prod-canary with evidence; prod-main gets nothing.
#[test]
fn demo_halts_on_the_injected_fault_with_evidence() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ringmaster"))
        .args(["demo", "--speed", "3"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("HALTED in ring prod-canary"), "{stdout}");
    assert!(
        stdout.contains("CrashLoopBackOff"),
        "the evidence names what failed: {stdout}"
    );
    // The closing hints name the real rollout, and no directory that is deleted on exit.
    assert!(stdout.contains("ringmaster resume k8s-1.33"), "{stdout}");
    assert!(!stdout.contains("<rollout>"), "{stdout}");
    assert!(!stdout.contains("<demo dir>"), "{stdout}");
    let closing = stdout
        .split("HALTED in ring")
        .nth(1)
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        !closing.contains("ringmaster-demo-"),
        "a deleted directory is not offered: {closing}"
    );
    assert!(
        closing.contains("run `ringmaster demo --keep`"),
        "{closing}"
    );
    assert!(
        stdout
            .lines()
            .filter(|l| l.starts_with("prod-main"))
            .all(|l| l.contains("v1.32") && l.contains("pending")),
        "prod-main stays untouched: {stdout}"
    );
}

/// Every stderr line parsed as one flat JSON object with the keys `--help` documents: `ts`,
/// `level`, `msg`, and the rollout / ring / kind as top-level keys (not nested spans, not
/// tracing-subscriber's `timestamp`/`message`).
fn json_log_lines(stderr: &str) -> Vec<serde_json::Map<String, Value>> {
    let lines: Vec<serde_json::Map<String, Value>> = stderr
        .lines()
        .map(|l| match serde_json::from_str(l) {
            Ok(Value::Object(o)) => o,
            other => panic!("not a JSON object ({other:?}): {l}"),
        })
        .collect();
    assert!(!lines.is_empty(), "no log line");
    for l in &lines {
        assert!(
            l["ts"]
                .as_str()
                .is_some_and(|t| chrono::DateTime::parse_from_rfc3339(t).is_ok()),
            "{l:?}"
        );
        assert!(
            ["info", "warn", "error"].contains(&l["level"].as_str().unwrap_or("")),
            "{l:?}"
        );
        assert!(l["msg"].is_string(), "{l:?}");
        for key in l.keys() {
            assert!(
                [
                    "ts", "level", "msg", "rollout", "ring", "cluster", "kind", "actor", "at"
                ]
                .contains(&key.as_str()),
                "undocumented key `{key}`: {l:?}"
            );
        }
        assert!(l.values().all(|v| v.is_string()), "nested value: {l:?}");
    }
    lines
}

/// `run --once --log-format json`: one reconcile pass; every log line is one flat JSON object
/// with the documented keys, journal events carry rollout, ring and kind; then `status` and
/// `history` read the store the pass left.
#[test]
fn run_once_logs_json_lines_and_status_reads_the_store() {
    let tmp = tempfile::tempdir().unwrap();
    let config = examples::materialize(&examples::fleet_dir(), &tmp.path().join("fleet")).unwrap();
    let bin = env!("CARGO_BIN_EXE_ringmaster");
    let out = std::process::Command::new(bin)
        .args([
            "--config",
            config.to_str().unwrap(),
            "--log-format",
            "json",
            "run",
            "--once",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let lines = json_log_lines(&stderr);
    let started: Vec<&str> = lines
        .iter()
        .filter(|l| l["kind"] == "started")
        .filter_map(|l| l["rollout"].as_str())
        .collect();
    assert_eq!(
        started,
        [
            "k8s-1.33",
            "addons-2026-11",
            "restricted-prod-2.4.0",
            "cert-manager-1.16.3"
        ]
    );
    assert!(
        lines
            .iter()
            .any(|l| l.get("ring").is_some_and(|r| r == "sandbox")
                && l.get("rollout").is_some_and(|r| r == "k8s-1.33")),
        "{stderr}"
    );

    let out = std::process::Command::new(bin)
        .args([
            "--config",
            config.to_str().unwrap(),
            "--output",
            "json",
            "status",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rollouts = status["rollouts"].as_array().unwrap();
    assert_eq!(rollouts.len(), 4);
    assert_eq!(rollouts[0]["rings"].as_array().unwrap().len(), 4);
    assert!(
        rollouts[0]["rings"][3]["forecast"]["passedBy"].is_string(),
        "{status}"
    );
    let out = std::process::Command::new(bin)
        .args(["--config", config.to_str().unwrap(), "history", "k8s-1.33"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("started across 4 rings"));
    let out = std::process::Command::new(bin)
        .args(["--config", config.to_str().unwrap(), "history", "no-such"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}

/// A `run` that cannot start says why in the same JSON shape, not as plain text.
#[test]
fn a_failed_run_logs_json_too() {
    let (_tmp, dir, _) = example();
    let out = ringmaster(
        &dir,
        &[
            "--config",
            "missing.yaml",
            "--log-format",
            "json",
            "run",
            "--once",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    let lines = json_log_lines(&stderr);
    assert!(
        lines
            .iter()
            .any(|l| l["level"] == "error" && l["msg"].as_str().unwrap().contains("missing.yaml")),
        "{stderr}"
    );
}

#[test]
fn plan_forecasts_nothing_before_a_global_freeze_lifts_and_a_past_freeze_is_refused() {
    use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
    let (_tmp, dir, _) = example();
    let now = Utc::now();
    let at = (now + TimeDelta::days(1)).to_rfc3339_opts(SecondsFormat::Secs, true);
    let until = now + TimeDelta::days(30);
    let plan_sandbox_open = |dir: &Path| {
        let out = ringmaster(dir, &["plan", "--output", "json", "--at", &at]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let open = v["releases"][0]["rings"][0]["forecast"]["prOpen"]
            .as_str()
            .unwrap_or_else(|| panic!("{v:#}"))
            .to_owned();
        (
            DateTime::parse_from_rfc3339(&open)
                .unwrap()
                .with_timezone(&Utc),
            text(&out.stderr),
        )
    };
    let (before, _) = plan_sandbox_open(&dir);
    assert!(before < now + TimeDelta::days(10), "{before}");
    let until_text = until.to_rfc3339_opts(SecondsFormat::Secs, true);
    let out = ringmaster(
        &dir,
        &["freeze", "--until", &until_text, "--reason", "incident 43"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (after, note) = plan_sandbox_open(&dir);
    assert!(
        after >= until - TimeDelta::seconds(1),
        "{after} before {until}"
    );
    assert!(note.contains("global freeze"), "{note}");
    let out = ringmaster(
        &dir,
        &[
            "freeze",
            "--until",
            "2020-01-01T00:00:00Z",
            "--reason",
            "late",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("not in the future"),
        "{}",
        text(&out.stderr)
    );
}

/// A rollout record for `k8s-1.33` in the example's store (as the daemon would have made).
fn seed_rollout(store: &state::Store) {
    let now = chrono::Utc::now();
    let rollout = state::Rollout {
        name: "k8s-1.33".into(),
        order: 0,
        summary: "Kubernetes 1.33".into(),
        state: state::RolloutState::Active,
        created_at: now,
        updated_at: now,
        revert_of: None,
    };
    let runs = vec![state::RingRun::pending("k8s-1.33", "nonprod", 0, now)];
    let started = state::Event {
        at: now,
        rollout: "k8s-1.33".into(),
        ring: None,
        kind: "started".into(),
        message: "started".into(),
        actor: "ringmaster".into(),
    };
    assert!(store.create_rollout(&rollout, &runs, &started).unwrap());
}

/// Move the ring branch to a new commit, as when it is regenerated on a moved base.
fn regenerate_branch(dir: &Path, branch: &str) -> String {
    let repo = git2::Repository::open(dir.join("gitops")).unwrap();
    let old = repo
        .find_commit(repo.refname_to_id(&format!("refs/heads/{branch}")).unwrap())
        .unwrap();
    let sig = git2::Signature::now("ringmaster", "ringmaster@example.com").unwrap();
    let new = repo
        .commit(
            None,
            &sig,
            &sig,
            "regenerated",
            &old.tree().unwrap(),
            &old.parents().collect::<Vec<_>>().iter().collect::<Vec<_>>(),
        )
        .unwrap();
    repo.reference(&format!("refs/heads/{branch}"), new, true, "regenerate")
        .unwrap();
    new.to_string()
}

#[test]
fn prs_shows_the_current_head_and_marks_stale_approvals() {
    let (_tmp, dir, _) = example();
    let head = open_local_pr(&dir, "nonprod");
    let out = ringmaster(&dir, &["approve", "k8s-1.33", "nonprod", "--as", "alice"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let new_head = regenerate_branch(&dir, "ringmaster/k8s-1.33/nonprod/1");
    assert_ne!(new_head, head);

    let out = ringmaster(&dir, &["prs", "--output", "json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["head"], new_head.as_str(), "the branch's head now");
    assert_eq!(v[0]["approvals"][0]["sha"], head.as_str());
    assert_eq!(v[0]["approvals"][0]["stale"], true);
    let out = ringmaster(&dir, &["prs"]);
    let listed = text(&out.stdout);
    assert!(
        listed.contains(&format!(
            "head {}  approvals: alice (stale: given on {}, not the head)",
            &new_head[..12],
            &head[..12]
        )),
        "{listed}"
    );

    // Approving again counts for the new head.
    let out = ringmaster(&dir, &["approve", "k8s-1.33", "nonprod", "--as", "alice"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = ringmaster(&dir, &["prs", "--output", "json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["approvals"][0]["sha"], new_head.as_str());
    assert_eq!(v[0]["approvals"][0]["stale"], false);
}

#[test]
fn an_approval_is_in_the_history() {
    let (_tmp, dir, _) = example();
    let head = open_local_pr(&dir, "nonprod");
    seed_rollout(&state::Store::open(&dir.join("ringmaster.db")).unwrap());
    let out = ringmaster(&dir, &["approve", "k8s-1.33", "nonprod", "--as", "alice"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = ringmaster(&dir, &["history", "k8s-1.33", "--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let events = v["events"].as_array().or_else(|| v.as_array()).unwrap();
    let approved = events
        .iter()
        .find(|e| e["kind"] == "approved")
        .unwrap_or_else(|| panic!("no `approved` event: {v}"));
    assert_eq!(approved["ring"], "nonprod");
    assert_eq!(approved["actor"], "alice");
    assert_eq!(
        approved["message"],
        format!(
            "PR #1 (ringmaster/k8s-1.33/nonprod/1) approved at {}",
            &head[..12]
        )
    );
}

#[test]
fn prs_and_approve_go_through_the_daemon_that_holds_the_store() {
    let (_tmp, dir, _) = example();
    let head = open_local_pr(&dir, "nonprod");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = dir.join("ringmaster.yaml");
    let mut yaml = std::fs::read_to_string(&cfg).unwrap();
    yaml.push_str(&format!(
        "api: {{ listen: \"127.0.0.1:{port}\", tokenFile: ./api-token }}\n"
    ));
    std::fs::write(&cfg, yaml).unwrap();
    std::fs::write(dir.join("api-token"), "tok-cli-approve").unwrap();
    // The "daemon": it holds the store and serves the API with the local forge.
    let store = std::sync::Arc::new(state::Store::open(&dir.join("ringmaster.db")).unwrap());
    seed_rollout(&store);
    let shared = orchestrator::api::Shared::new(
        std::sync::Arc::clone(&store),
        std::sync::Arc::new(orchestrator::daemon::clock::SystemClock),
        std::sync::Arc::new(orchestrator::api::Metrics::new()),
        chrono::TimeDelta::minutes(5),
    );
    let _server = orchestrator::api::ApiServer::start(
        &format!("127.0.0.1:{port}"),
        shared,
        orchestrator::api::ApiOptions {
            token: Some(
                orchestrator::secret::Secret::read(&rings::model::SecretSource::File(
                    dir.join("api-token"),
                ))
                .unwrap(),
            ),
            token_name: Some("api-token".into()),
            local_forge: Some(orchestrator::api::LocalForgeAccess {
                repo: dir.join("gitops"),
                author: ("ringmaster".into(), "ringmaster@example.com".into()),
            }),
            ..Default::default()
        },
    )
    .unwrap();

    let out = ringmaster(&dir, &["prs"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("ringmaster/k8s-1.33/nonprod/1")
            && text(&out.stdout).contains("approvals: none"),
        "{}",
        text(&out.stdout)
    );
    let out = ringmaster(&dir, &["approve", "k8s-1.33", "nonprod", "--as", "alice"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!(
            "approved #1 (ringmaster/k8s-1.33/nonprod/1) at {} as alice (token api-token) (through the running daemon at http://127.0.0.1:{port})\n",
            &head[..12]
        )
    );
    let pr = store.local_pr(1).unwrap().unwrap();
    assert_eq!(pr.approvals[0].by, "alice", "the reviewer as named");
    assert_eq!(pr.approvals[0].sha, head);
    let approved = store.journal("k8s-1.33").unwrap().pop().unwrap();
    assert_eq!(
        (approved.kind.as_str(), approved.actor.as_str()),
        ("approved", "alice (token api-token)")
    );

    // A wrong ring is the daemon's refusal, exit 1.
    let out = ringmaster(&dir, &["approve", "k8s-1.33", "prod-main"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no open pull request for rollout `k8s-1.33`, ring `prod-main`"),
        "{}",
        text(&out.stderr)
    );
}

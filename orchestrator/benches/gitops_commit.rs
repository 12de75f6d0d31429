//! One ring commit editing 2,000 registry files in a 50,000-file repository, three ways:
//!
//! - ringmaster from a warm mirror: fetch (nothing new), build the step in memory, push;
//! - the clone-per-promotion baseline: `git clone --depth 1`, edit the files, `git commit -a`,
//!   `git push`;
//! - the plumbing floor on a warm clone: edit the files, `git update-index`, `git write-tree`,
//!   `git commit-tree`, `git push`.
//!
//! Run: `cargo bench -p orchestrator --bench gitops_commit` (release build). Prints the medians
//! and both ratios; exits 1 when a target is missed. Everything happens in a temp directory;
//! the "remote" is a bare repository on disk reached through git's file transport.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use chrono::Utc;
use orchestrator::gitops::mirror::Mirror;
use orchestrator::gitops::{GitOps, MirrorGitOps, StepRequest};

const CLUSTERS: usize = 2_000;
const FILES: usize = 50_000;
const RUNS: usize = 5;
/// ringmaster must be at least this many times faster than clone-per-promotion.
const TARGET_VS_CLONE: f64 = 10.0;
/// ringmaster may take at most this many times the plumbing floor.
const TARGET_VS_FLOOR: f64 = 1.5;

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The 2,000 registry paths and the edit each promotion makes (as the baselines do it: the
/// same line replacement ringmaster's YAML editor produces).
fn registry_paths(clone: &Path) -> Vec<String> {
    git(clone, &["ls-files", "clusters"])
        .lines()
        .map(str::to_owned)
        .collect()
}

fn edit_in_place(root: &Path, paths: &[String]) {
    for p in paths {
        let full = root.join(p);
        let text = std::fs::read_to_string(&full).unwrap();
        let new = text
            .replacen(
                "kubernetesVersion: \"1.32\"",
                "kubernetesVersion: \"1.33\"",
                1,
            )
            .replacen(
                "kubernetesVersion: \"1.31\"",
                "kubernetesVersion: \"1.32\"",
                1,
            );
        std::fs::write(&full, new).unwrap();
    }
}

fn setup(dir: &Path) -> PathBuf {
    let remote = dir.join("remote.git");
    integration::fleetgen::generate_big_repo(&remote, CLUSTERS, FILES).unwrap();
    std::fs::write(
        dir.join("ringmaster.yaml"),
        "apiVersion: ringmaster/v1\nkind: Orchestrator\ngitops: { url: ./remote.git, branch: main }\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("rings.yaml"),
        "apiVersion: ringmaster/v1\nkind: RingSet\nrings:\n  - name: all\n    selector: { provider: [aws, azure] }\n",
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("releases")).unwrap();
    std::fs::write(
        dir.join("releases/k8s.yaml"),
        "apiVersion: ringmaster/v1\nkind: Release\nname: k8s-1.33\nkubernetes: \"1.33\"\n",
    )
    .unwrap();
    remote
}

fn main() {
    let tmp = tempfile::tempdir().unwrap();
    // BENCH_DIR keeps the generated repository between runs (for profiling); default: a temp dir.
    let kept = std::env::var_os("BENCH_DIR").map(PathBuf::from);
    let dir = kept.as_deref().unwrap_or(tmp.path());
    let remote = if dir.join("remote.git").exists() {
        dir.join("remote.git")
    } else {
        println!("setting up a {FILES}-file repository with {CLUSTERS} registry files…");
        std::fs::create_dir_all(dir).unwrap();
        setup(dir)
    };
    let remote_url = format!("file://{}", remote.display());

    // ringmaster: warm mirror, configuration loaded once (the daemon keeps it).
    let settings = rings::load::load_settings(&dir.join("ringmaster.yaml")).unwrap();
    let mirror = Mirror::open(
        &dir.join("data"),
        &settings.gitops.location,
        settings.gitops.auth.clone(),
    )
    .unwrap();
    let mut engine = MirrorGitOps::new(
        mirror,
        "main",
        ("ringmaster".into(), "ringmaster@example.invalid".into()),
    );
    engine.refresh().unwrap();
    let load_start = Instant::now();
    let loaded = rings::load::load_with(&dir.join("ringmaster.yaml"), &mut |g| {
        rings::load::read_registry_ref(
            engine.mirror().repo(),
            "refs/remotes/origin/main",
            &g.branch,
            &g.registry,
            "remote",
        )
    })
    .unwrap();
    let load_secs = load_start.elapsed().as_secs_f64();
    let config = loaded.config;
    let release = config.release("k8s-1.33").unwrap();
    let mut ours = Vec::new();
    let first_step = std::process::id() * 100; // fresh branch names when BENCH_DIR is reused
    for run in 0..=RUNS {
        let req = StepRequest {
            config: &config,
            release,
            ring_index: 0,
            step: first_step + run as u32,
            time: Utc::now(),
        };
        let start = Instant::now();
        let base = engine.refresh().unwrap();
        let fetched = start.elapsed().as_secs_f64();
        let step = engine.prepare(base, &req).unwrap().unwrap();
        let prepared = start.elapsed().as_secs_f64();
        engine.push(&step.branch, step.commit, None).unwrap();
        let secs = start.elapsed().as_secs_f64();
        if std::env::var_os("BENCH_PHASES").is_some() {
            println!(
                "  run {run}: fetch {fetched:.3} s, build {:.3} s, push {:.3} s",
                prepared - fetched,
                secs - prepared
            );
        }
        assert_eq!(step.edits.len(), CLUSTERS);
        if run > 0 {
            ours.push(secs); // run 0 warms the page cache
        }
    }

    if std::env::var_os("BENCH_ONLY_RINGMASTER").is_some() {
        println!("ringmaster: {:.3} s", median(ours));
        return;
    }

    // Clone per promotion.
    let mut clone_times = Vec::new();
    for run in 0..=RUNS {
        let work = dir.join(format!("clone-{run}"));
        let start = Instant::now();
        git(
            dir,
            &[
                "clone",
                "-q",
                "--depth",
                "1",
                "--branch",
                "main",
                &remote_url,
                work.to_str().unwrap(),
            ],
        );
        let paths = registry_paths(&work);
        edit_in_place(&work, &paths);
        git(
            &work,
            &[
                "-c",
                "user.name=b",
                "-c",
                "user.email=b@example.invalid",
                "commit",
                "-qam",
                "promote",
            ],
        );
        git(
            &work,
            &[
                "push",
                "-q",
                "origin",
                &format!("HEAD:refs/heads/bench/clone-{first_step}-{run}"),
            ],
        );
        let secs = start.elapsed().as_secs_f64();
        std::fs::remove_dir_all(&work).unwrap();
        if run > 0 {
            clone_times.push(secs);
        }
    }

    // Plumbing floor on a warm clone.
    let warm = dir.join(format!("warm-{first_step}"));
    git(dir, &["clone", "-q", &remote_url, warm.to_str().unwrap()]);
    let paths = registry_paths(&warm);
    let mut floor_times = Vec::new();
    for run in 0..=RUNS {
        let start = Instant::now();
        edit_in_place(&warm, &paths);
        let mut child = Command::new("git")
            .args(["update-index", "--stdin"])
            .current_dir(&warm)
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        {
            use std::io::Write as _;
            let stdin = child.stdin.as_mut().unwrap();
            stdin.write_all(paths.join("\n").as_bytes()).unwrap();
            stdin.write_all(b"\n").unwrap();
        }
        assert!(child.wait().unwrap().success());
        let tree = git(&warm, &["write-tree"]).trim().to_owned();
        let commit = git(
            &warm,
            &[
                "-c",
                "user.name=b",
                "-c",
                "user.email=b@example.invalid",
                "commit-tree",
                &tree,
                "-p",
                "HEAD",
                "-m",
                "promote",
            ],
        )
        .trim()
        .to_owned();
        git(
            &warm,
            &[
                "push",
                "-q",
                "origin",
                &format!("{commit}:refs/heads/bench/floor-{first_step}-{run}"),
            ],
        );
        let secs = start.elapsed().as_secs_f64();
        git(&warm, &["reset", "-q", "--hard", "HEAD"]);
        if run > 0 {
            floor_times.push(secs);
        }
    }

    std::fs::remove_dir_all(&warm).unwrap();
    let (ours, clone, floor) = (median(ours), median(clone_times), median(floor_times));
    let vs_clone = clone / ours;
    let vs_floor = ours / floor;
    println!(
        "one ring commit, {CLUSTERS} registry files edited in a {FILES}-file repository (median of {RUNS}):"
    );
    println!("  ringmaster (warm mirror: fetch + build in memory + push): {ours:.3} s");
    println!(
        "    (+ {load_secs:.3} s to load the configuration and parse the registry, done once per reconcile)"
    );
    println!(
        "  clone per promotion (shallow clone, edit, commit -a, push): {clone:.3} s -> ringmaster is {vs_clone:.1}x faster (target >= {TARGET_VS_CLONE}x)"
    );
    println!(
        "  plumbing floor (update-index, write-tree, commit-tree, push): {floor:.3} s -> ringmaster takes {vs_floor:.2}x the floor (target <= {TARGET_VS_FLOOR}x)"
    );
    let ok = vs_clone >= TARGET_VS_CLONE && vs_floor <= TARGET_VS_FLOOR;
    println!(
        "  {}",
        if ok {
            "all targets met"
        } else {
            "TARGET MISSED"
        }
    );
    if !ok {
        std::process::exit(1);
    }
}

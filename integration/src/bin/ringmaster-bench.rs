//! Benchmarks that print their figure and its ratio to the target (see BENCHMARKS.md).
//!
//! `ringmaster-bench plan`: `ringmaster plan --output json` as a whole process over generated
//! registries of 10,000 and 100,000 clusters; wall time (median of runs) and peak RSS (from
//! GNU time). Build first: `cargo build --release -p orchestrator -p integration`.
//!
//! `ringmaster-bench generate N DIR`: write a setup with N generated clusters to DIR.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

/// Target wall time for 10k clusters, seconds (issue 3).
const TARGET_10K_SECS: f64 = 0.5;
/// Target peak RSS for 10k clusters, MB.
const TARGET_10K_RSS_MB: f64 = 150.0;
/// Allowed growth from 10k to 100k (linear would be 10×).
const TARGET_GROWTH: f64 = 12.0;
/// Runs per size (after one warm-up); the median is reported.
const RUNS: usize = 5;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("plan") => match bench_plan() {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::from(1),
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(1)
            }
        },
        Some("generate") => match (
            args.get(1).and_then(|n| n.parse::<usize>().ok()),
            args.get(2),
        ) {
            (Some(n), Some(dir)) => {
                match integration::fleetgen::generate_setup(Path::new(dir), n) {
                    Ok(cfg) => {
                        println!("{}", cfg.display());
                        ExitCode::SUCCESS
                    }
                    Err(e) => {
                        eprintln!("error: {e}");
                        ExitCode::from(1)
                    }
                }
            }
            _ => {
                eprintln!("usage: ringmaster-bench generate N DIR");
                ExitCode::from(2)
            }
        },
        _ => {
            eprintln!("usage: ringmaster-bench plan | ringmaster-bench generate N DIR");
            ExitCode::from(2)
        }
    }
}

fn ringmaster_binary() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let bin = exe.with_file_name("ringmaster");
    if bin.exists() {
        Ok(bin)
    } else {
        Err(format!(
            "{} not found: build it first with `cargo build --release -p orchestrator -p integration`",
            bin.display()
        ))
    }
}

/// One run: (wall seconds, peak RSS in MB).
fn run_once(bin: &Path, cfg: &Path) -> Result<(f64, f64), String> {
    let start = Instant::now();
    let out = Command::new("/usr/bin/time")
        .args(["-f", "RSS_KB=%M"])
        .arg(bin)
        .args([
            "plan",
            "--output",
            "json",
            "--at",
            "2026-11-24T17:00:00Z",
            "--config",
        ])
        .arg(cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("cannot run /usr/bin/time (Debian package `time`): {e}"))?;
    let secs = start.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(format!("plan failed: {stderr}"));
    }
    let kb: f64 = stderr
        .lines()
        .find_map(|l| l.strip_prefix("RSS_KB="))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| format!("no RSS figure in: {stderr}"))?;
    Ok((secs, kb / 1024.0))
}

fn measure(bin: &Path, n: usize) -> Result<(f64, f64), String> {
    let dir =
        std::env::temp_dir().join(format!("ringmaster-bench-plan-{n}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let cfg = integration::fleetgen::generate_setup(&dir, n).map_err(|e| e.to_string())?;
    run_once(bin, &cfg)?; // warm-up: page cache, first-touch
    let mut times = Vec::new();
    let mut rss: f64 = 0.0;
    for _ in 0..RUNS {
        let (t, m) = run_once(bin, &cfg)?;
        times.push(t);
        rss = rss.max(m);
    }
    let _ = std::fs::remove_dir_all(&dir);
    times.sort_by(f64::total_cmp);
    Ok((times[times.len() / 2], rss))
}

fn bench_plan() -> Result<bool, String> {
    let bin = ringmaster_binary()?;
    println!("ringmaster plan --output json, whole process, median of {RUNS} runs");
    let (t10, m10) = measure(&bin, 10_000)?;
    println!(
        "  10,000 clusters: {t10:.3} s ({:.2}× the {TARGET_10K_SECS} s target), peak RSS {m10:.1} MB ({:.2}× the {TARGET_10K_RSS_MB} MB target)",
        t10 / TARGET_10K_SECS,
        m10 / TARGET_10K_RSS_MB
    );
    let (t100, m100) = measure(&bin, 100_000)?;
    let growth = t100 / t10;
    println!(
        "  100,000 clusters: {t100:.3} s, peak RSS {m100:.1} MB; {growth:.1}× the 10k time (target ≤ {TARGET_GROWTH}×, linear = 10×)"
    );
    let ok = t10 <= TARGET_10K_SECS && m10 <= TARGET_10K_RSS_MB && growth <= TARGET_GROWTH;
    println!(
        "  {}",
        if ok {
            "all targets met"
        } else {
            "TARGET MISSED"
        }
    );
    Ok(ok)
}

//! The idle daemon with 50 rollouts in flight (DESIGN §13, issue 7):
//!
//! - the time of one reconcile pass over 50 rollouts × 4 rings when nothing is due (target
//!   ≤ 20 ms; no network: the scripted probe answers at once and the GitOps "remote" is a local
//!   repository, so the fetch in `pass()` is a local one — timed on its own too), and, for
//!   information, a pass with one round of gate samples due (the clock a minute later);
//! - the idle RSS (target ≤ 30 MB) and CPU (target ≤ 0.5 % of a core) of this process,
//!   running a pass every second for 10 s (pessimistic: the configured interval is 30 s), and
//!   without passes (the floor, from which the CPU at 30 s is derived);
//! - the same figures for the real binary (`target/release/ringmaster run`, live probe, its
//!   API on a free loopback port) on the same store: 10 s at a 1 s interval and 60 s at the
//!   configured 30 s, its RSS before and after three scrapes of `/metrics`, then SIGTERM.
//!
//! Setup: the example fleet (15 clusters, 4 rings) with its real windows and soaks, and 50
//! add-on releases `addons-01` … `addons-50` bumping CoreDNS to 1.11.11 … 1.11.60. A
//! `ManualClock` starts on a Monday 06:00 UTC at least a week ahead of today (so the real
//! binary, on the system clock, finds nothing due in the store) and the loop is driven as a
//! reviewer would (every open PR approved after each pass, the clock moved to the next due
//! instant) until every ring holds a rollout (checkpoint A, Wednesday 15:00 UTC), then on
//! until the rollout in `prod-main` is 47 h into its 48 h soak (checkpoint B: the most samples
//! a soaking ring re-reads). Rollouts pipeline (one rollout per ring at a time, file order), so
//! at each checkpoint 4 of the 50 rollouts occupy a ring and the others wait in `pending` or
//! between rings: that is the steady state of a 50-release backlog.
//!
//! Run: `cargo bench -p orchestrator --bench reconcile` (release build; build the binary
//! first with `cargo build --release -p orchestrator --bin ringmaster`; 10–13 minutes, 5–7 of
//! them driving to checkpoint B). Prints the figures and their ratios to the targets; exits 1
//! when a target is missed. `BENCH_SKIP_LATE=1` stops at checkpoint A; `BENCH_SKIP_BINARY=1`
//! skips the real binary; `BENCH_PROFILE=<secs>` runs idle passes for that long at each
//! checkpoint (for `perf record -p`); `BENCH_DIR=<dir>` builds the setup there and keeps it;
//! `BENCH_SHOW_LOG=1` prints the binary's log.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;
use support::{daemon, percentile};

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Datelike as _, TimeDelta, Utc};
use orchestrator::daemon::clock::{Clock, ManualClock};
use orchestrator::gitops::mirror::Mirror;
use rings::model::Config;
use state::{Phase, Store};

const ROLLOUTS: usize = 50;
const RINGS: usize = 4;
const PASSES: usize = 200;
const FETCHES: usize = 200;
const DUE_PASSES: usize = 20;
const TARGET_PASS_MS: f64 = 20.0;
const TARGET_RSS_MB: f64 = 30.0;
const TARGET_CPU_PCT: f64 = 0.5;
const IDLE: Duration = Duration::from_secs(10);
const IDLE_PASS_EVERY: Duration = Duration::from_secs(1);
/// The real binary at its configured 30 s interval is watched this long (two passes).
const IDLE_CONFIGURED: Duration = Duration::from_secs(60);
/// Checkpoint B: this far into the 48 h soak of `prod-main`.
const LATE_SOAK: TimeDelta = TimeDelta::hours(47);

type Bench<'s> = support::BenchDaemon<'s>;

/// The example fleet with its releases replaced by 50 add-on releases. Returns
/// `ringmaster.yaml`.
fn setup(dir: &Path) -> PathBuf {
    let (config, loaded) = support::addon_fleet(
        dir,
        ROLLOUTS,
        |n| format!("addons-{n:02}"),
        |n| format!("1.11.{}", 10 + n),
    );
    assert_eq!(loaded.ring_set.rings.len(), RINGS);
    config
}

/// One pass, then every open PR approved at its head (a reviewer).
async fn pass_and_approve(d: &mut Bench<'_>) -> orchestrator::daemon::PassReport {
    let report = d.pass().await.unwrap();
    for pr in d.forge().open_prs().unwrap() {
        d.forge().approve(pr.number, "alice").unwrap();
    }
    report
}

/// Drive the loop (jumping the clock to the next due instant, at most 6 h) until `done`.
async fn drive(d: &mut Bench<'_>, what: &str, done: impl Fn(&Bench<'_>) -> bool) -> usize {
    let from = d.clock().now();
    for passes in 1..=20_000 {
        let report = pass_and_approve(d).await;
        if done(d) {
            return passes;
        }
        let now = d.clock().now();
        assert!(
            now - from < TimeDelta::days(10),
            "checkpoint {what}: not reached in 10 simulated days"
        );
        let next = report
            .next_due
            .filter(|n| *n > now)
            .unwrap_or(now + TimeDelta::minutes(1));
        d.clock().set(next.min(now + TimeDelta::hours(6)));
    }
    panic!("{what}: not reached in 20,000 passes");
}

/// Per ring, the rollout occupying it and its phase.
type Occupied = Vec<Option<(String, Phase)>>;

/// Which rollout occupies each ring; how many ring runs are pending, passed; active rollouts.
fn occupancy(store: &Store) -> (Occupied, usize, usize, usize) {
    let mut rings: Occupied = vec![None; RINGS];
    let (mut pending, mut passed, mut active) = (0, 0, 0);
    for r in store.rollouts().unwrap() {
        if !r.state.is_finished() {
            active += 1;
        }
        for run in store.ring_runs(&r.name).unwrap() {
            match run.phase {
                Phase::Pending => pending += 1,
                Phase::Passed => passed += 1,
                p if p.occupies_ring() => {
                    assert!(
                        rings[run.index as usize].is_none(),
                        "two rollouts on ring {}",
                        run.ring
                    );
                    rings[run.index as usize] = Some((r.name.clone(), p));
                }
                _ => {}
            }
        }
    }
    (rings, pending, passed, active)
}

fn describe(d: &Bench<'_>, config_path: &Path) -> String {
    let config = d.config().unwrap();
    let (rings, pending, passed, active) = occupancy(d.store());
    let occupied: Vec<String> = rings
        .iter()
        .zip(&config.ring_set.rings)
        .map(|(o, ring)| match o {
            Some((r, p)) => format!("{} = {r} {}", ring.name, p.as_str()),
            None => format!("{} = free", ring.name),
        })
        .collect();
    let samples = soaking_samples(d);
    let branches = git2::Repository::open(config_path.parent().unwrap().join("gitops"))
        .unwrap()
        .branches(Some(git2::BranchType::Local))
        .unwrap()
        .count();
    format!(
        "{active} active rollouts; {}; {pending} ring runs pending, {passed} passed; {samples} gate samples in the soaking rings' current steps; {branches} branches in the GitOps repository",
        occupied.join(", ")
    )
}

/// How many samples the soaking ring runs re-read every pass.
fn soaking_samples(d: &Bench<'_>) -> usize {
    let mut n = 0;
    for r in d.store().rollouts().unwrap() {
        for run in d.store().ring_runs(&r.name).unwrap() {
            if run.phase == Phase::Soaking {
                n += d
                    .store()
                    .samples(&run.rollout, &run.ring, run.step_number())
                    .unwrap()
                    .len();
            }
        }
    }
    n
}

/// Passes at the same instant (approving) until one writes nothing: a window that just
/// opened, an approved PR to merge. Returns the transitions written.
async fn settle(d: &mut Bench<'_>) -> usize {
    let mut written = 0;
    for _ in 0..20 {
        let n = pass_and_approve(d).await.transitions;
        if n == 0 {
            break;
        }
        written += n;
    }
    written
}

/// `PASSES` timed passes at the same instant: median and p95 in ms.
async fn measure_passes(d: &mut Bench<'_>) -> (f64, f64) {
    let now = d.clock().now();
    let mut times = Vec::with_capacity(PASSES);
    let mut writes = 0;
    let mut next_due = None;
    for _ in 0..PASSES {
        let start = Instant::now();
        let report = d.pass().await.unwrap();
        times.push(start.elapsed().as_secs_f64() * 1e3);
        writes += report.transitions;
        next_due = report.next_due;
    }
    assert_eq!(writes, 0, "an idle pass wrote a transition");
    if let Some(due) = next_due {
        assert!(due > now, "something is due during the idle passes");
    }
    times.sort_by(f64::total_cmp);
    (percentile(&times, 0.5), percentile(&times, 0.95))
}

/// Passes with one round of gate samples due: the clock moves a minute before each (every
/// gate here samples once a minute), `DUE_PASSES` times; only the pass is timed (approvals
/// follow it). Median and p95 in ms, and the transitions written.
async fn measure_due_passes(d: &mut Bench<'_>) -> (f64, f64, usize) {
    let mut times = Vec::with_capacity(DUE_PASSES);
    let mut writes = 0;
    for _ in 0..DUE_PASSES {
        d.clock().advance(TimeDelta::minutes(1));
        let start = Instant::now();
        let report = d.pass().await.unwrap();
        times.push(start.elapsed().as_secs_f64() * 1e3);
        writes += report.transitions;
        for pr in d.forge().open_prs().unwrap() {
            d.forge().approve(pr.number, "alice").unwrap();
        }
    }
    times.sort_by(f64::total_cmp);
    (percentile(&times, 0.5), percentile(&times, 0.95), writes)
}

/// `MirrorGitOps::refresh` alone: the same mirror opened a second time, fetched from the same
/// local repository (nothing new). Median and p95 in ms.
fn measure_fetch(config: &Path) -> (f64, f64) {
    let settings = rings::load::load_settings(config).unwrap();
    let mirror = Mirror::open(
        &settings.data_dir,
        &settings.gitops.location,
        settings.gitops.auth.clone(),
    )
    .unwrap();
    mirror.fetch(&settings.gitops.branch).unwrap();
    let mut times: Vec<f64> = (0..FETCHES)
        .map(|_| {
            let start = Instant::now();
            mirror.fetch(&settings.gitops.branch).unwrap();
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    (percentile(&times, 0.5), percentile(&times, 0.95))
}

fn status_kb(pid: &str, field: &str) -> Option<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn clock_ticks_per_sec() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// utime + stime of a process, seconds (`/proc/<pid>/stat`, clock-tick resolution).
fn cpu_stat(pid: &str, ticks: f64) -> Option<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = &text[text.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / ticks)
}

/// On-CPU time of every thread of a process, seconds (`/proc/<pid>/task/*/schedstat`, ns
/// resolution; threads that exited in between are missed).
fn cpu_schedstat(pid: &str) -> Option<f64> {
    let mut ns = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let path = task.ok()?.path().join("schedstat");
        if let Ok(text) = std::fs::read_to_string(path) {
            ns += text.split_whitespace().next()?.parse::<u64>().ok()?;
        }
    }
    Some(ns as f64 / 1e9)
}

fn threads(pid: &str) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task")).map_or(0, |d| d.count())
}

struct Idle {
    rss_mb: f64,
    hwm_mb: f64,
    anon_mb: f64,
    file_mb: f64,
    cpu_pct: f64,
    cpu_sched_pct: f64,
    threads: usize,
    window: Duration,
}

impl Idle {
    fn print(&self, who: &str) {
        println!(
            "  {who}: VmRSS {:.1} MB (target {TARGET_RSS_MB} MB; ratio {:.2}; at the end {:.1} MB anonymous + {:.1} MB file-backed), VmHWM {:.1} MB, {} threads",
            self.rss_mb,
            self.rss_mb / TARGET_RSS_MB,
            self.anon_mb,
            self.file_mb,
            self.hwm_mb,
            self.threads
        );
        println!(
            "  {who}: idle CPU {:.3} % of a core over {} s (utime+stime; target {TARGET_CPU_PCT} %; ratio {:.2}); {:.3} % by schedstat",
            self.cpu_pct,
            self.window.as_secs(),
            self.cpu_pct / TARGET_CPU_PCT,
            self.cpu_sched_pct
        );
    }
}

fn start_cpu(pid: &str, ticks: f64) -> (Instant, f64, f64) {
    (
        Instant::now(),
        cpu_stat(pid, ticks).unwrap_or(0.0),
        cpu_schedstat(pid).unwrap_or(0.0),
    )
}

fn end_cpu(pid: &str, ticks: f64, start: (Instant, f64, f64), rss_mb: f64) -> Idle {
    let wall = start.0.elapsed().as_secs_f64();
    let cpu = cpu_stat(pid, ticks).unwrap_or(0.0) - start.1;
    let sched = cpu_schedstat(pid).unwrap_or(0.0) - start.2;
    Idle {
        rss_mb,
        hwm_mb: status_kb(pid, "VmHWM:").unwrap_or(0.0) / 1024.0,
        anon_mb: status_kb(pid, "RssAnon:").unwrap_or(0.0) / 1024.0,
        file_mb: status_kb(pid, "RssFile:").unwrap_or(0.0) / 1024.0,
        cpu_pct: cpu / wall * 100.0,
        cpu_sched_pct: sched / wall * 100.0,
        threads: threads(pid),
        window: IDLE,
    }
}

/// This process for `IDLE`: a pass every `every`, or none (the floor: sled's flusher, tokio).
async fn idle_self(d: &mut Bench<'_>, every: Option<Duration>) -> Idle {
    let ticks = clock_ticks_per_sec();
    let start = start_cpu("self", ticks);
    let mut max_rss: f64 = 0.0;
    while start.0.elapsed() < IDLE {
        if every.is_some() {
            let report = d.pass().await.unwrap();
            assert_eq!(report.transitions, 0);
        }
        max_rss = max_rss.max(status_kb("self", "VmRSS:").unwrap_or(0.0));
        tokio::time::sleep(every.unwrap_or(Duration::from_millis(500))).await;
    }
    end_cpu("self", ticks, start, max_rss / 1024.0)
}

/// Kills the real binary however the bench ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// `ringmaster_reconcile_duration_seconds` (`_sum`, `_count`) from the binary's `/metrics`.
fn scrape(addr: &str) -> Option<(f64, f64)> {
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let value = |name: &str| -> Option<f64> {
        text.lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    Some((
        value("ringmaster_reconcile_duration_seconds_sum")?,
        value("ringmaster_reconcile_duration_seconds_count")?,
    ))
}

/// The real binary on the same store (its API on a free loopback port), sampled over
/// `window` after a warm-up, then SIGTERM. Returns the figures, how it stopped, the passes it
/// ran since it started with their mean time (from its `/metrics`, read after the window),
/// and its RSS after three scrapes of `/metrics`.
fn idle_binary(
    bin: &Path,
    config: &Path,
    interval: &str,
    window: Duration,
    log: &Path,
) -> (Idle, String, Option<(f64, f64)>, f64) {
    let cfg_text = std::fs::read_to_string(config).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let with_interval = format!(
        "{}\napi: {{ listen: \"{addr}\" }}\n",
        cfg_text.replace(
            "reconcileInterval: 30s",
            &format!("reconcileInterval: {interval}"),
        )
    );
    std::fs::write(config, &with_interval).unwrap();
    let mut run = Running(
        Command::new(bin)
            .arg("--config")
            .arg(config)
            .arg("run")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap(),
    );
    let pid = run.0.id().to_string();
    // Warm-up: start, first pass (configuration load, the journal printed once).
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        run.0.try_wait().unwrap().is_none(),
        "ringmaster run exited during warm-up:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
    // No /metrics scrape before or during the window: the first scrape grows the RSS (below).
    let ticks = clock_ticks_per_sec();
    let start = start_cpu(&pid, ticks);
    let mut max_rss: f64 = 0.0;
    while start.0.elapsed() < window {
        max_rss = max_rss.max(status_kb(&pid, "VmRSS:").unwrap_or(0.0));
        std::thread::sleep(Duration::from_millis(500));
    }
    let mut idle = end_cpu(&pid, ticks, start, max_rss / 1024.0);
    idle.window = window;
    // Passes since the start (the first loads the configuration) and their mean time.
    let passes = scrape(&addr).map(|(sum, n)| (n, if n > 0.0 { sum / n * 1e3 } else { 0.0 }));
    for _ in 0..2 {
        std::thread::sleep(Duration::from_secs(1));
        scrape(&addr);
    }
    std::thread::sleep(Duration::from_secs(1));
    let scraped_mb = status_kb(&pid, "VmRSS:").unwrap_or(0.0) / 1024.0;
    let _ = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let stopped = loop {
        match run.0.try_wait().unwrap() {
            Some(status) => break format!("stopped on SIGTERM ({status})"),
            None if Instant::now() > deadline => break "killed (no exit 5 s after SIGTERM)".into(),
            None => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    drop(run);
    std::fs::write(config, cfg_text).unwrap();
    (idle, stopped, passes, scraped_mb)
}

/// Whether a target holds; prints and remembers the misses.
#[derive(Debug, Default)]
struct Verdict {
    missed: bool,
}

impl Verdict {
    fn check(&mut self, what: &str, ratio: f64) {
        if ratio > 1.0 {
            println!("  TARGET MISSED: {what} ({ratio:.2}x the target)");
            self.missed = true;
        }
    }
}

/// The simulated week: a Monday 06:00 UTC at least a week after today, in a week without a
/// change freeze. The real binary runs on the store with the system clock, so every
/// timestamp the simulation wrote lies ahead of it: nothing is due for it, whatever the date
/// the bench runs on.
fn simulated_monday(config: &Config) -> DateTime<Utc> {
    let later = Utc::now() + TimeDelta::days(7);
    let to_monday = (7 - later.weekday().num_days_from_monday()) % 7;
    let mut start = (later.date_naive() + TimeDelta::days(i64::from(to_monday)))
        .and_hms_opt(6, 0, 0)
        .unwrap()
        .and_utc();
    while (0..7 * 24).any(|h| {
        policies::window::freeze_at(&config.ring_set.freezes, start + TimeDelta::hours(h)).is_some()
    }) {
        start += TimeDelta::days(7);
    }
    start
}

fn reached(d: &Bench<'_>, checkpoint: &str) -> bool {
    let (rings, ..) = occupancy(d.store());
    match checkpoint {
        "A" => rings.iter().all(Option::is_some),
        _ => {
            let Some((rollout, Phase::Soaking)) = &rings[RINGS - 1] else {
                return false;
            };
            let run = d.store().ring_run(rollout, "prod-main").unwrap().unwrap();
            run.soak_started
                .is_some_and(|s| d.clock().now() - s >= LATE_SOAK)
        }
    }
}

/// Drive to the checkpoint and measure the pass, the fetch and this process idle.
async fn in_process(
    config: &Path,
    store: &Store,
    clock: ManualClock,
    checkpoint: &str,
    verdict: &mut Verdict,
) {
    let settings = rings::load::load_settings(config).unwrap();
    let mut d = daemon(config, store, clock);
    let started = Instant::now();
    let passes = drive(&mut d, checkpoint, |d| reached(d, checkpoint)).await;
    let settled = settle(&mut d).await;
    println!(
        "checkpoint {checkpoint} at {} (simulated; {passes} passes, {:.1} s to drive; {settled} transitions written settling at that instant): {}",
        d.clock().now().to_rfc3339(),
        started.elapsed().as_secs_f64(),
        describe(&d, config)
    );
    let (median, p95) = measure_passes(&mut d).await;
    let (fetch_median, fetch_p95) = measure_fetch(config);
    let ratio = median / TARGET_PASS_MS;
    println!(
        "reconcile pass ({ROLLOUTS} rollouts x {RINGS} rings): median {median:.2} ms, p95 {p95:.2} ms; target {TARGET_PASS_MS} ms; ratio {ratio:.2} ({PASSES} passes, nothing due)"
    );
    println!(
        "  of which the local fetch (MirrorGitOps::refresh alone, same mirror): median {fetch_median:.2} ms, p95 {fetch_p95:.2} ms; the rest: ~{:.2} ms",
        median - fetch_median
    );
    verdict.check(&format!("pass time at checkpoint {checkpoint}"), ratio);
    let (due_median, due_p95, due_writes) = measure_due_passes(&mut d).await;
    println!(
        "  a pass with one round of gate samples due (clock +1 min before each, {DUE_PASSES} passes, {due_writes} transitions): median {due_median:.2} ms, p95 {due_p95:.2} ms; ratio {:.2} (information: the target is the idle pass)",
        due_median / TARGET_PASS_MS
    );
    settle(&mut d).await;

    if let Some(secs) = std::env::var("BENCH_PROFILE")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
    {
        println!(
            "profiling: idle passes for {secs} s (pid {})",
            std::process::id()
        );
        let until = Instant::now() + Duration::from_secs(secs);
        let mut n = 0;
        while Instant::now() < until {
            d.pass().await.unwrap();
            n += 1;
        }
        println!("  {n} passes");
    }

    let idle = idle_self(&mut d, Some(IDLE_PASS_EVERY)).await;
    println!(
        "idle, a pass every {} s for {} s (configured interval: {} s):",
        IDLE_PASS_EVERY.as_secs(),
        IDLE.as_secs(),
        settings.reconcile_interval.num_seconds()
    );
    idle.print("bench process (daemon + scripted probe + setup leftovers)");
    verdict.check("bench process RSS", idle.rss_mb / TARGET_RSS_MB);
    verdict.check("bench process CPU", idle.cpu_pct / TARGET_CPU_PCT);
    let floor = idle_self(&mut d, None).await;
    let interval = settings.reconcile_interval.num_milliseconds() as f64;
    let estimate = floor.cpu_sched_pct + median / interval * 100.0;
    println!(
        "  bench process without passes for {} s: {:.3} % (schedstat; sled's flusher, tokio); at the configured {} s interval: {:.3} % + {median:.1} ms / {} s = {estimate:.3} % (target {TARGET_CPU_PCT} %; ratio {:.2})",
        IDLE.as_secs(),
        floor.cpu_sched_pct,
        settings.reconcile_interval.num_seconds(),
        floor.cpu_sched_pct,
        settings.reconcile_interval.num_seconds(),
        estimate / TARGET_CPU_PCT
    );
    // With 1-minute gates and a 30 s interval, one pass in two has a sample round due.
    let soaking = floor.cpu_sched_pct + (median + due_median) / (2.0 * interval) * 100.0;
    println!(
        "  while a ring soaks with 1-minute gates (every other 30 s pass samples): {:.3} % + ({median:.1} + {due_median:.1}) ms / 60 s = {soaking:.3} % (ratio {:.2}; information)",
        floor.cpu_sched_pct,
        soaking / TARGET_CPU_PCT
    );
}

/// The real binary on the store, at 1 s and at the configured 30 s interval.
fn real_binary(config: &Path, logs: &Path, checkpoint: &str, verdict: &mut Verdict) {
    let bin = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .join("../ringmaster");
    if !bin.is_file() {
        println!(
            "real binary: {} missing; build it with `cargo build --release -p orchestrator --bin ringmaster`",
            bin.display()
        );
        return;
    }
    for (interval, window) in [("1s", IDLE), ("30s", IDLE_CONFIGURED)] {
        let log = logs.join(format!("ringmaster-run-{checkpoint}-{interval}.log"));
        let (idle, stopped, passes, scraped_mb) = idle_binary(&bin, config, interval, window, &log);
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let warnings = text.lines().filter(|l| l.contains("warn")).count();
        let errors = text.lines().filter(|l| l.contains("error")).count();
        println!(
            "real binary `ringmaster run`, reconcileInterval {interval}, live probe (no cluster answers), same store; {stopped}; log: {} lines, {warnings} warnings, {errors} errors",
            text.lines().count()
        );
        match passes {
            Some((n, mean)) => println!(
                "  ringmaster run: {n} passes since it started (3 s warm-up + {} s), mean {mean:.2} ms (its /metrics; the first pass loads the configuration)",
                window.as_secs()
            ),
            None => println!("  ringmaster run: /metrics did not answer"),
        }
        idle.print("ringmaster run");
        println!(
            "  ringmaster run: VmRSS {scraped_mb:.1} MB after three scrapes of /metrics (ratio {:.2}): what a Prometheus-scraped daemon holds",
            scraped_mb / TARGET_RSS_MB
        );
        verdict.check("ringmaster run RSS", idle.rss_mb / TARGET_RSS_MB);
        verdict.check("ringmaster run CPU", idle.cpu_pct / TARGET_CPU_PCT);
        verdict.check(
            "ringmaster run RSS once scraped",
            scraped_mb / TARGET_RSS_MB,
        );
        if std::env::var_os("BENCH_SHOW_LOG").is_some() {
            println!("{text}");
        }
    }
}

fn main() {
    let tmp = tempfile::tempdir().unwrap();
    // BENCH_DIR keeps the setup (an empty or new directory) for a look afterwards.
    let kept = std::env::var_os("BENCH_DIR").map(PathBuf::from);
    let config = setup(&kept.unwrap_or_else(|| tmp.path().join("fleet")));
    let settings = rings::load::load_settings(&config).unwrap();
    let start = simulated_monday(&rings::load::load(&config).unwrap().config);
    let clock = ManualClock::new(start);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut verdict = Verdict::default();
    println!(
        "reconcile: the example fleet (15 clusters, {RINGS} rings, real windows and soaks), {ROLLOUTS} add-on releases, scripted instant probe, local forge; simulated time from {}",
        start.to_rfc3339()
    );
    let mut checkpoints = vec!["A"];
    if std::env::var_os("BENCH_SKIP_LATE").is_none() {
        checkpoints.push("B");
    }
    for checkpoint in checkpoints {
        {
            let store = Store::open(&settings.store_path).unwrap();
            rt.block_on(in_process(
                &config,
                &store,
                clock.clone(),
                checkpoint,
                &mut verdict,
            ));
        } // the store's lock is released for the real binary
        if std::env::var_os("BENCH_SKIP_BINARY").is_some() {
            println!("real binary: skipped (BENCH_SKIP_BINARY)");
        } else {
            real_binary(&config, tmp.path(), checkpoint, &mut verdict);
        }
    }
    println!(
        "  {}",
        if verdict.missed {
            "TARGET MISSED"
        } else {
            "all targets met"
        }
    );
    if verdict.missed {
        std::process::exit(1);
    }
}

//! `ringmaster demo` (DESIGN §12): the whole product in one command. A temporary GitOps
//! repository made from `examples/fleet`, the simulated fleet of `integration::sim` on loopback
//! (one fake Kubernetes API server per cluster, converging a moment after the base branch
//! changes), and the real daemon — local forge, live probe, store — taking Kubernetes 1.33
//! through four rings with second-long soaks. The demo approves the manual rings' PRs as a
//! reviewer would, and (unless `--no-fault`) one canary cluster starts crash-looping after its
//! upgrade, so the rollout halts with evidence.
//!
//! This is the only module of the orchestrator that uses the simulator (DESIGN §2): the daemon
//! itself never knows its clusters are simulated.

use std::collections::BTreeMap;
use std::io::IsTerminal as _;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use integration::sim::{Fault, SimFleet, SimOptions};
use orchestrator::daemon::clock::SystemClock;
use orchestrator::daemon::live::LiveProbe;
use orchestrator::daemon::{Daemon, DaemonOptions};
use orchestrator::forge::local::LocalForge;
use orchestrator::gitops::MirrorGitOps;
use orchestrator::gitops::mirror::Mirror;
use state::{Phase, RolloutState};

/// The release the demo rolls out.
const RELEASE: &str = "k8s-1.33";
/// Give up after this long (the demo normally ends in well under a minute).
const DEMO_LIMIT: Duration = Duration::from_secs(150);
/// Time between reconcile passes.
const PASS_EVERY: Duration = Duration::from_millis(250);
/// Who approves the manual rings.
const REVIEWER: &str = "alice (platform-sre)";

/// Options of `ringmaster demo`.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// No injected fault: the rollout completes.
    pub no_fault: bool,
    /// Keep the temporary directory.
    pub keep: bool,
    /// Soaks are this many times shorter.
    pub speed: f64,
}

/// The demo's ring file: the example fleet's rings and selectors, no windows, second-long
/// soaks sampled every second.
fn rings_yaml(speed: f64, prometheus: Option<&str>) -> String {
    let secs = |base: f64| format!("{}s", ((base / speed).round() as u64).max(1));
    let prom_gate = prometheus.map_or(String::new(), |url| {
        format!(
            "  error-ratio:\n    prometheus: {{ url: \"{url}\", query: 'sum(rate(http_requests_total{{code=~\"5..\",cluster=\"{{clusterId}}\"}}[10s])) / sum(rate(http_requests_total{{cluster=\"{{clusterId}}\"}}[10s]))', max: 0.05 }}\n    interval: 1s\n    failureLimit: 3\n    inconclusiveLimit: 5\n"
        )
    });
    let prod_gates = if prometheus.is_some() {
        "[nodes-ready, workloads-available, pods-healthy, error-ratio]"
    } else {
        "[nodes-ready, workloads-available, pods-healthy]"
    };
    format!(
        r#"# The demo's rings: the example fleet's rings without windows, with second-long soaks.
apiVersion: ringmaster/v1
kind: RingSet
rings:
  - name: sandbox
    selector: {{ environment: sandbox }}
    merge: auto
    convergeTimeout: 60s
    soak: {s1}
    gates: [nodes-ready, workloads-available, pods-healthy]
  - name: nonprod
    selector: {{ environment: [dev, staging] }}
    merge: auto
    convergeTimeout: 60s
    soak: {s2}
    gates: [nodes-ready, workloads-available, pods-healthy]
  - name: prod-canary
    selector: {{ environment: prod, criticality: tier-2 }}
    merge: manual
    reviewers: [acme/platform-sre]
    convergeTimeout: 60s
    soak: {s3}
    preflight: [removed-apis]
    gates: {prod_gates}
  - name: prod-main
    selector: {{ environment: prod, criticality: tier-1 }}
    merge: manual
    reviewers: [acme/platform-sre, acme/sre-leads]
    convergeTimeout: 60s
    soak: {s3}
    preflight: [removed-apis]
    gates: {prod_gates}
gates:
  nodes-ready:
    kube: {{ nodesReady: {{ minRatio: 1.0 }} }}
    interval: 1s
    failureLimit: 3
  workloads-available:
    kube: {{ workloadsAvailable: {{ namespaces: ["*"] }} }}
    interval: 1s
    failureLimit: 3
  pods-healthy:
    kube: {{ podsHealthy: {{ namespaces: ["*"], maxRestartGrowth: 2 }} }}
    interval: 1s
    failureLimit: 2
  removed-apis:
    kube: {{ removedApis: {{}} }}
{prom_gate}observe:
  addons:
    coredns: {{ kind: Deployment, namespace: kube-system, name: coredns, container: coredns }}
    vpc-cni: {{ kind: Deployment, namespace: kube-system, name: vpc-cni, container: vpc-cni }}
  policies:
    restricted-prod: {{ apiVersion: policies.ringmaster.dev/v1, kind: PolicyBundle, name: restricted-prod, jsonPath: .status.version }}
"#,
        s1 = secs(6.0),
        s2 = secs(6.0),
        s3 = secs(8.0),
    )
}

/// A running Prometheus scraping the simulated clusters, stopped on drop.
struct Prometheus {
    child: std::process::Child,
    url: String,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn start_prometheus(dir: &Path, targets: &[(String, String)]) -> Option<Prometheus> {
    let bin = Path::new("/usr/bin/prometheus");
    if !bin.exists() {
        return None;
    }
    let port = free_port().ok()?;
    let mut config = String::from("global:\n  scrape_interval: 1s\nscrape_configs:\n");
    for (id, url) in targets {
        let rest = url.trim_start_matches("http://");
        let (host, path) = rest.split_once('/').unwrap_or((rest, "metrics"));
        config.push_str(&format!(
            "  - job_name: \"{id}\"\n    metrics_path: \"/{path}\"\n    static_configs: [{{ targets: [\"{host}\"] }}]\n"
        ));
    }
    let cfg = dir.join("prometheus.yml");
    std::fs::write(&cfg, config).ok()?;
    let log = std::fs::File::create(dir.join("prometheus.log")).ok()?;
    let child = std::process::Command::new(bin)
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("prometheus-data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(log.try_clone().ok()?)
        .stderr(log)
        .spawn()
        .ok()?;
    Some(Prometheus {
        child,
        url: format!("http://127.0.0.1:{port}"),
    })
}

fn say(tty: bool, icon: &str, text: &str) {
    if tty {
        println!("{icon} {text}");
    } else {
        println!("{text}");
    }
}

/// The closing hints: commands to look at what the demo did, with the real directory when
/// `--keep` keeps it; otherwise the directory is deleted on exit, so say how to keep it
/// rather than print commands that name a place that no longer exists.
fn look_around(keep: bool, dir: &Path) {
    if !keep {
        println!(
            "\nThe demo's files (GitOps repository, store, kubeconfig) are deleted on exit; \
             run `ringmaster demo --keep` to keep them and look around with git, \
             `ringmaster status`, `history {RELEASE}` and `prs`."
        );
        return;
    }
    let dir = dir.display();
    println!("\nLook around:");
    println!("  git -C {dir}/gitops log --oneline --graph");
    println!("  ringmaster --config {dir}/ringmaster.yaml status");
    println!("  ringmaster --config {dir}/ringmaster.yaml history {RELEASE}");
    println!("  ringmaster --config {dir}/ringmaster.yaml prs");
    println!("  kubectl --kubeconfig {dir}/fleet.kubeconfig get nodes  (while a demo runs)");
}

/// `ringmaster demo`.
pub fn run(opts: &DemoOptions) -> anyhow::Result<ExitCode> {
    let speed = if opts.speed.is_finite() && opts.speed > 0.0 {
        opts.speed
    } else {
        1.0
    };
    let tmp = tempfile::Builder::new()
        .prefix("ringmaster-demo-")
        .tempdir()?;
    let root = tmp.path().to_path_buf();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = rt.block_on(demo(&root, opts, speed));
    if opts.keep {
        let kept = tmp.keep();
        println!("\nThe demo's files stay in {}", kept.display());
    }
    result
}

async fn demo(root: &Path, opts: &DemoOptions, speed: f64) -> anyhow::Result<ExitCode> {
    let tty = std::io::stdout().is_terminal();
    let started = Instant::now();
    let examples_dir = examples::fleet_dir();
    let config = examples::materialize(&examples_dir, &root.join("fleet"))
        .context("creating the demo's GitOps repository from examples/fleet")?;
    let dir = config
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| root.join("fleet"));
    // Only the Kubernetes release.
    for entry in std::fs::read_dir(dir.join("releases"))? {
        let p = entry?.path();
        if !p.to_string_lossy().contains("k8s-1.33") {
            std::fs::remove_file(p)?;
        }
    }
    let gitops = dir.join("gitops");
    let registry = rings::load::load_settings(&config).map_err(|d| {
        anyhow::anyhow!(
            "{}",
            d.errors()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        )
    })?;

    // The simulated fleet; the fault goes on the first prod-canary cluster.
    let kubeconfig = dir.join("fleet.kubeconfig");
    let mut sim_opts = SimOptions::new(&gitops);
    sim_opts.branch = registry.gitops.branch.clone();
    sim_opts.registry_glob = registry.gitops.registry.clone();
    sim_opts.converge_after = Duration::from_millis(800);
    sim_opts.step_delay = Duration::from_millis(120);
    sim_opts.poll = Duration::from_millis(100);
    sim_opts.kubeconfig = kubeconfig.clone();
    let sim = SimFleet::start(sim_opts)
        .await
        .map_err(|e| anyhow::anyhow!("starting the simulated fleet: {e:?}"))?;
    let clusters = sim.clusters();

    let prometheus = start_prometheus(
        root,
        &clusters
            .iter()
            .map(|c| (c.id.clone(), c.metrics_url.clone()))
            .collect::<Vec<_>>(),
    );
    std::fs::write(
        dir.join("rings.yaml"),
        rings_yaml(speed, prometheus.as_ref().map(|p| p.url.as_str())),
    )?;
    let settings_text = std::fs::read_to_string(&config)?;
    std::fs::write(
        &config,
        format!(
            "{settings_text}\nkube: {{ kubeconfig: \"{}\" }}\n",
            kubeconfig.display()
        ),
    )?;
    let loaded = rings::load::load(&config)
        .map_err(|d| {
            anyhow::anyhow!(
                "demo config: {}",
                d.errors()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("\n")
            )
        })?
        .config;
    let canary = loaded
        .ring_set
        .rings
        .iter()
        .position(|r| r.name.as_str() == "prod-canary")
        .and_then(|i| loaded.ring_clusters(i).next())
        .map(|c| c.id.to_string());

    say(
        tty,
        "▶",
        &format!(
            "ringmaster demo: {} clusters ({} EKS, {} AKS) in 4 rings, simulated on 127.0.0.1; GitOps repo {}",
            clusters.len(),
            loaded
                .fleet
                .clusters
                .iter()
                .filter(|c| c.provider.as_str() == "aws")
                .count(),
            loaded
                .fleet
                .clusters
                .iter()
                .filter(|c| c.provider.as_str() == "azure")
                .count(),
            gitops.display()
        ),
    );
    match &prometheus {
        Some(p) => say(
            tty,
            "▶",
            &format!(
                "Prometheus {} scrapes every cluster; prod rings gate on the 5xx ratio",
                p.url
            ),
        ),
        None => say(
            tty,
            "▶",
            "Prometheus is not installed (apt-get install prometheus): the error-ratio gate is left out of the demo's rings",
        ),
    }
    if let (false, Some(c)) = (opts.no_fault, &canary) {
        let fault: Fault = format!("{c}=crashloop@1.33")
            .parse()
            .map_err(|e: String| anyhow::anyhow!(e))?;
        sim.inject(fault);
        say(
            tty,
            "⚡",
            &format!(
                "fault injected: {c} (prod-canary) will crash-loop its pods once it runs 1.33"
            ),
        );
    }

    // The daemon, exactly as `ringmaster run` builds it.
    let settings = &loaded.settings;
    let store = state::Store::open(&settings.store_path)?;
    let mirror = Mirror::open(
        &settings.data_dir,
        &settings.gitops.location,
        settings.gitops.auth.clone(),
    )?;
    let engine = MirrorGitOps::new(mirror, &settings.gitops.branch, settings.author.clone());
    let forge = LocalForge::new(
        &store,
        git2::Repository::open(&gitops)?,
        settings.author.clone(),
    );
    let probe = LiveProbe(policies::probe::Probe::new(
        policies::probe::ProbeSettings {
            kubeconfig: Some(kubeconfig.clone()),
            qps: 50.0,
            burst: 100,
            ..Default::default()
        },
    ));
    let mut daemon = Daemon::new(
        &store,
        forge,
        engine,
        probe,
        SystemClock,
        DaemonOptions {
            config_path: config.clone(),
            merge_approved: true,
            pr_url_template: "local#{n}".to_owned(),
        },
    );
    let mut seen = 0usize;
    let mut approved: BTreeMap<u64, String> = BTreeMap::new();
    let outcome = loop {
        if started.elapsed() > DEMO_LIMIT {
            break Err(anyhow::anyhow!(
                "the demo did not finish within {}s",
                DEMO_LIMIT.as_secs()
            ));
        }
        if let Err(e) = daemon.pass().await {
            say(tty, "!", &format!("reconcile pass: {e}"));
        }
        let journal = store.journal(RELEASE)?;
        for e in journal.iter().skip(seen) {
            let icon = match e.kind.as_str() {
                "halted" => "🛑",
                "passed" | "completed" => "✅",
                "prOpen" => "📬",
                "converging" => "🔀",
                "soaking" => "⏱",
                "blocked" => "⛔",
                _ => "•",
            };
            say(
                tty,
                icon,
                &format!(
                    "[{:>5.1}s] {:<12} {}",
                    started.elapsed().as_secs_f64(),
                    e.ring.as_deref().unwrap_or("rollout"),
                    e.message
                ),
            );
        }
        seen = journal.len();
        // The reviewer: approve each open PR of a manual ring at its current head.
        for pr in daemon.forge().open_prs()? {
            if approved.get(&pr.number) == Some(&pr.head) && !pr.approvals.is_empty() {
                continue;
            }
            if let Ok(head) = daemon.forge().approve(pr.number, REVIEWER) {
                say(
                    tty,
                    "👤",
                    &format!(
                        "[{:>5.1}s] reviewer {REVIEWER} approves local#{} \"{}\" at {} (as `ringmaster approve {RELEASE} {}`)",
                        started.elapsed().as_secs_f64(),
                        pr.number,
                        pr.title,
                        head.get(..8).unwrap_or(&head),
                        pr.branch.split('/').nth(2).unwrap_or("<ring>")
                    ),
                );
                approved.insert(pr.number, head);
            }
        }
        match store.rollout(RELEASE)?.map(|r| r.state) {
            Some(RolloutState::Completed) => break Ok(true),
            Some(RolloutState::Halted { .. }) => {
                // One more pass posts the evidence on the PR.
                let _ = daemon.pass().await;
                break Ok(false);
            }
            _ => {}
        }
        tokio::time::sleep(PASS_EVERY).await;
    };
    let completed = outcome?;

    // The final matrix: ring × cluster, what each cluster runs now.
    println!();
    println!(
        "{:<12} {:<26} {:<22} state",
        "ring", "cluster", "control plane"
    );
    let now_clusters: BTreeMap<String, _> = sim
        .clusters()
        .into_iter()
        .map(|c| (c.id.clone(), c))
        .collect();
    let runs = store.ring_runs(RELEASE)?;
    for (i, ring) in loaded.ring_set.rings.iter().enumerate() {
        let left_out: BTreeMap<String, String> = runs
            .iter()
            .find(|r| r.ring == ring.name.as_str())
            .map(|r| r.left_out.iter().cloned().collect())
            .unwrap_or_default();
        let phase = runs
            .iter()
            .find(|r| r.ring == ring.name.as_str())
            .map_or(Phase::Pending, |r| r.phase);
        for c in loaded.ring_clusters(i) {
            let info = now_clusters.get(c.id.as_str());
            let note = match (left_out.get(c.id.as_str()), info) {
                (Some(why), _) => format!("  (left out: {why})"),
                (None, Some(i)) if !i.faults.is_empty() => "  (fault: crashloop)".to_owned(),
                _ => String::new(),
            };
            println!(
                "{:<12} {:<26} {:<22} {}{note}",
                ring.name.as_str(),
                c.id.as_str(),
                info.map_or("?".to_owned(), |i| i.kubernetes.clone()),
                phase.as_str(),
            );
        }
    }
    println!();
    if completed {
        say(
            tty,
            "✅",
            &format!(
                "rollout {RELEASE} completed: every ring passed in {:.0}s",
                started.elapsed().as_secs_f64()
            ),
        );
    } else {
        let halted = runs.iter().find(|r| r.phase == Phase::Halted);
        if let Some(run) = halted {
            say(
                tty,
                "🛑",
                &format!(
                    "rollout {RELEASE} HALTED in ring {} after {:.0}s; later rings got no PR. Evidence on {}:",
                    run.ring,
                    started.elapsed().as_secs_f64(),
                    run.current_step()
                        .map_or("the PR".to_owned(), |s| s.pr.url.clone())
                ),
            );
            if let Some(e) = &run.evidence {
                // The evidence's next steps name the rollout generically: here it is known.
                for line in e.lines().filter(|l| !l.starts_with("<!--")) {
                    println!("    {}", line.replace("<rollout>", RELEASE));
                }
            }
        }
    }
    look_around(opts.keep, &dir);
    drop(daemon);
    drop(store);
    drop(sim);
    drop(prometheus);
    Ok(ExitCode::SUCCESS)
}

//! The scripted fleet and the example-fleet setup shared by the daemon tests on a simulated
//! clock (`daemon.rs`, `daemon_errors.rs`).
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeDelta, Utc};
use orchestrator::daemon::clock::{Clock, ManualClock};
use orchestrator::daemon::probe::{
    Baselines, ClusterProbe, ConvergenceReport, GateResult, Targets,
};
use orchestrator::daemon::{Daemon, DaemonOptions};
use orchestrator::forge::local::LocalForge;
use orchestrator::gitops::MirrorGitOps;
use orchestrator::gitops::mirror::Mirror;
use policies::gates::Observation;
use policies::soak::Outcome;
use rings::model::{Cluster, Config, Gate};
use state::{RolloutState, Store};

/// What the scripted fleet answers.
#[derive(Default)]
pub struct Script {
    /// `cluster` → findings returned by preflight.
    pub preflight: Vec<(String, String)>,
    /// (gate, cluster) pairs that fail.
    pub failing: Vec<(String, String)>,
    /// Clusters that never converge.
    pub stuck: Vec<String>,
    /// Calls seen.
    pub evaluations: usize,
}

#[derive(Clone, Default)]
pub struct Scripted(pub Arc<Mutex<Script>>);

impl ClusterProbe for Scripted {
    async fn preflight(&self, cluster: &Cluster, _t: &Targets, _g: &[&Gate]) -> Vec<String> {
        let s = self.0.lock().unwrap();
        s.preflight
            .iter()
            .filter(|(c, _)| c == cluster.id.as_str())
            .map(|(_, f)| f.clone())
            .collect()
    }

    async fn convergence(&self, _c: &Config, cluster: &Cluster, _t: &Targets) -> ConvergenceReport {
        let s = self.0.lock().unwrap();
        if s.stuck.iter().any(|c| c == cluster.id.as_str()) {
            ConvergenceReport {
                converged: false,
                inconclusive: None,
                behind: vec!["control plane v1.32.9 (target 1.33)".into()],
            }
        } else {
            ConvergenceReport {
                converged: true,
                ..Default::default()
            }
        }
    }

    async fn evaluate(
        &self,
        gates: &[&Gate],
        clusters: &[&Cluster],
        _b: &Baselines,
    ) -> Vec<GateResult> {
        let mut s = self.0.lock().unwrap();
        s.evaluations += 1;
        let mut out = Vec::new();
        for g in gates {
            for c in clusters {
                let fail = s
                    .failing
                    .iter()
                    .any(|(gg, cc)| gg == g.name.as_str() && cc == c.id.as_str());
                out.push(GateResult {
                    gate: g.name.to_string(),
                    cluster: c.id.to_string(),
                    observation: Observation {
                        outcome: if fail { Outcome::Fail } else { Outcome::Pass },
                        value: Some(if fail { 0.2 } else { 0.001 }),
                        observed: if fail { "0.2".into() } else { "0.001".into() },
                    },
                });
            }
        }
        out
    }

    async fn sample_baselines(&self, _g: &[&Gate], _c: &[&Cluster]) -> Baselines {
        Baselines::new()
    }
}

pub struct Setup {
    pub _tmp: tempfile::TempDir,
    pub config: PathBuf,
    pub gitops: PathBuf,
    pub store: Store,
}

pub fn setup(releases: &[&str]) -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let config = examples::materialize(&examples::fleet_dir(), &tmp.path().join("fleet")).unwrap();
    let dir = config.parent().unwrap().to_path_buf();
    for entry in std::fs::read_dir(dir.join("releases")).unwrap() {
        let p = entry.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if !releases.iter().any(|r| name.contains(r)) {
            std::fs::remove_file(p).unwrap();
        }
    }
    // Shorter soaks (same windows): the simulated clock samples every gate every minute, so a
    // 48h soak would be 2,880 passes per rollout.
    let rings_path = dir.join("rings.yaml");
    let text = std::fs::read_to_string(&rings_path)
        .unwrap()
        .replace("soak: 4h", "soak: 1h")
        .replace("soak: 24h", "soak: 2h")
        .replace("soak: 48h", "soak: 3h");
    std::fs::write(&rings_path, text).unwrap();
    let settings = rings::load::load_settings(&config).unwrap();
    let store = Store::open(&settings.store_path).unwrap();
    Setup {
        gitops: dir.join("gitops"),
        config,
        store,
        _tmp: tmp,
    }
}

pub fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

pub fn daemon<'s>(
    s: &'s Setup,
    probe: Scripted,
    clock: ManualClock,
) -> Daemon<'s, LocalForge<'s>, Scripted, ManualClock> {
    let settings = rings::load::load_settings(&s.config).unwrap();
    let mirror = Mirror::open(
        &settings.data_dir,
        &settings.gitops.location,
        settings.gitops.auth.clone(),
    )
    .unwrap();
    let gitops = MirrorGitOps::new(mirror, "main", settings.author.clone());
    let forge = LocalForge::new(
        &s.store,
        git2::Repository::open(&s.gitops).unwrap(),
        settings.author.clone(),
    );
    Daemon::new(
        &s.store,
        forge,
        gitops,
        probe,
        clock,
        DaemonOptions {
            config_path: s.config.clone(),
            merge_approved: true,
            pr_url_template: "local#{n}".into(),
        },
    )
}

/// Run passes until every rollout is finished or halted, approving open PRs as a reviewer
/// would, jumping the clock to the next due instant. Bounded.
pub async fn drive(
    d: &mut Daemon<'_, LocalForge<'_>, Scripted, ManualClock>,
    until: DateTime<Utc>,
) {
    for _ in 0..5_000 {
        let report = d.pass().await.unwrap();
        // A reviewer approves every open PR at its current head (a regenerated branch needs
        // a new approval).
        for pr in d.forge().open_prs().unwrap() {
            d.forge().approve(pr.number, "alice").unwrap();
        }
        let rollouts = d.store().rollouts().unwrap();
        if !rollouts.is_empty()
            && rollouts
                .iter()
                .all(|r| r.state.is_finished() || matches!(r.state, RolloutState::Halted { .. }))
        {
            return;
        }
        let now = d.clock().now();
        if now > until {
            panic!("not done by {until}: {:#?}", d.store().rollouts().unwrap());
        }
        let next = report
            .next_due
            .filter(|n| *n > now)
            .unwrap_or(now + TimeDelta::minutes(1));
        d.clock().set(next.min(now + TimeDelta::hours(6)));
    }
    let status =
        orchestrator::daemon::status::status_json(d.store(), d.config(), d.clock().now()).unwrap();
    panic!(
        "the loop did not settle in 5000 passes (at {}):\n{}",
        d.clock().now(),
        orchestrator::daemon::status::status_table(&status)
    );
}

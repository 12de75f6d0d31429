//! What the daemon benchmarks share: a probe that answers at once, the daemon over the local
//! forge on a `ManualClock`, and percentiles. (`benches/support/` is not a bench target: Cargo
//! only takes `benches/*.rs` and `benches/*/main.rs`.)

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use orchestrator::daemon::clock::ManualClock;
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
use state::Store;

/// Every cluster answers at once: preflight clean, converged, every gate passes.
#[derive(Debug, Clone, Copy)]
pub struct Instant0;

/// What a gate of the example ring file reports.
pub fn observation(gate: &str, outcome: Outcome) -> (Option<f64>, String) {
    match (gate, outcome) {
        ("nodes-ready", _) => (Some(1.0), "12/12 nodes Ready".into()),
        ("workloads-available", _) => (Some(1.0), "214/214 workloads available".into()),
        ("argocd-synced", _) => (None, "7/7 Healthy".into()),
        ("error-ratio", Outcome::Fail) => (Some(0.034), "0.034".into()),
        _ => (Some(0.0012), "0.0012".into()),
    }
}

impl ClusterProbe for Instant0 {
    async fn preflight(&self, _c: &Cluster, _t: &Targets, _g: &[&Gate]) -> Vec<String> {
        Vec::new()
    }

    async fn convergence(&self, _c: &Config, _cl: &Cluster, _t: &Targets) -> ConvergenceReport {
        ConvergenceReport {
            converged: true,
            ..Default::default()
        }
    }

    async fn evaluate(
        &self,
        gates: &[&Gate],
        clusters: &[&Cluster],
        _b: &Baselines,
    ) -> Vec<GateResult> {
        let mut out = Vec::with_capacity(gates.len() * clusters.len());
        for g in gates {
            for c in clusters {
                let (value, observed) = observation(g.name.as_str(), Outcome::Pass);
                out.push(GateResult {
                    gate: g.name.to_string(),
                    cluster: c.id.to_string(),
                    observation: Observation {
                        outcome: Outcome::Pass,
                        value,
                        observed,
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

/// The daemon the benches drive: the local forge over the fleet's `gitops` repository, the
/// instant probe, a manual clock, approved PRs merged.
pub type BenchDaemon<'s> = Daemon<'s, LocalForge<'s>, Instant0, ManualClock>;

/// [`BenchDaemon`] for the fleet whose `ringmaster.yaml` is `config`.
pub fn daemon<'s>(config: &Path, store: &'s Store, clock: ManualClock) -> BenchDaemon<'s> {
    let settings = rings::load::load_settings(config).unwrap();
    let mirror = Mirror::open(
        &settings.data_dir,
        &settings.gitops.location,
        settings.gitops.auth.clone(),
    )
    .unwrap();
    let gitops = MirrorGitOps::new(mirror, &settings.gitops.branch, settings.author.clone());
    let forge = LocalForge::new(
        store,
        git2::Repository::open(config.parent().unwrap().join("gitops")).unwrap(),
        settings.author.clone(),
    );
    Daemon::new(
        store,
        forge,
        gitops,
        Instant0,
        clock,
        DaemonOptions {
            config_path: config.to_path_buf(),
            merge_approved: true,
            pr_url_template: "local#{n}".into(),
        },
    )
}

/// The `p` quantile (0–1) of sorted values, nearest rank.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// The example fleet materialised in `dir` with its releases replaced by `count` add-on
/// releases: release `n` (1-based) is named `name(n)` and bumps CoreDNS to `coredns(n)`. Every
/// one must validate. Returns `ringmaster.yaml` and the loaded configuration.
pub fn addon_fleet(
    dir: &Path,
    count: usize,
    name: impl Fn(usize) -> String,
    coredns: impl Fn(usize) -> String,
) -> (PathBuf, Config) {
    let config = examples::materialize(&examples::fleet_dir(), dir).unwrap();
    let releases = dir.join("releases");
    std::fs::remove_dir_all(&releases).unwrap();
    std::fs::create_dir(&releases).unwrap();
    for n in 1..=count {
        let name = name(n);
        std::fs::write(
            releases.join(format!("{name}.yaml")),
            format!(
                "apiVersion: ringmaster/v1\nkind: Release\nname: {name}\naddons: {{ coredns: \"{}\" }}\n",
                coredns(n)
            ),
        )
        .unwrap();
    }
    let loaded = rings::load::load(&config).unwrap_or_else(|d| {
        panic!(
            "the {count} releases do not validate:\n{}",
            d.errors()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        )
    });
    assert_eq!(loaded.config.releases.len(), count);
    (config, loaded.config)
}

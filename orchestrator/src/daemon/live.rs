//! The production [`ClusterProbe`]: `policies::probe::Probe` (kube client with a client-side
//! rate limiter, Prometheus, HTTP and command gates).

use rings::model::{Cluster, Config, Gate};

use super::probe::{Baselines, ClusterProbe, ConvergenceReport, GateResult, Targets};

/// The real clusters, through `policies`.
#[derive(Clone)]
pub struct LiveProbe(pub policies::probe::Probe);

impl std::fmt::Debug for LiveProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LiveProbe")
    }
}

impl ClusterProbe for LiveProbe {
    async fn preflight(&self, cluster: &Cluster, target: &Targets, gates: &[&Gate]) -> Vec<String> {
        let p = self.0.preflight(cluster, target, gates).await;
        p.findings.iter().map(ToString::to_string).collect()
    }

    async fn convergence(
        &self,
        config: &Config,
        cluster: &Cluster,
        target: &Targets,
    ) -> ConvergenceReport {
        let c = self
            .0
            .convergence(cluster, target, &config.ring_set.observe)
            .await;
        ConvergenceReport {
            converged: c.converged,
            inconclusive: c.inconclusive,
            behind: c.behind,
        }
    }

    async fn evaluate(
        &self,
        gates: &[&Gate],
        clusters: &[&Cluster],
        baselines: &Baselines,
    ) -> Vec<GateResult> {
        let mut b = policies::probe::Baselines::default();
        for ((g, c), v) in baselines {
            if let (Ok(g), Ok(c)) = (rings::GateName::new(g), rings::ClusterId::new(c)) {
                b.insert(g, c, *v);
            }
        }
        self.0
            .evaluate(gates, clusters, &b)
            .await
            .into_iter()
            .map(|o| GateResult {
                gate: o.gate.to_string(),
                cluster: o.cluster.to_string(),
                observation: o.observation,
            })
            .collect()
    }

    async fn sample_baselines(&self, gates: &[&Gate], clusters: &[&Cluster]) -> Baselines {
        self.0
            .sample_baselines(gates, clusters)
            .await
            .iter()
            .map(|(g, c, v)| ((g.to_string(), c.to_string()), v))
            .collect()
    }
}

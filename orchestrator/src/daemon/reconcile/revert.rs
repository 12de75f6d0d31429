//! Revert rollouts (`ringmaster abort <rollout> --revert`, DESIGN §5): one PR per ring that the
//! aborted rollout merged, newest ring first, each restoring the add-on and policy versions the
//! clusters had before, through the ring's window, freezes and review rules; a ring is done when
//! its clusters run the restored versions. There is no soak: a revert goes back to what ran
//! before.

use super::*;
use crate::gitops::PreparedStep;
use crate::gitops::changes::{ClusterStep, RingStep};
use policies::versions::Change;

fn component_of(text: &str) -> Option<Component> {
    Component::parse(text)
}

impl<F: Forge, P: ClusterProbe, C: Clock> Daemon<'_, F, P, C> {
    /// Advance every ring run of revert rollout `name`, newest ring first.
    pub(super) async fn reconcile_revert(
        &mut self,
        name: &str,
        report: &mut PassReport,
    ) -> Result<(), DaemonError> {
        let mut rings: Vec<String> = self
            .store
            .ring_runs(name)?
            .into_iter()
            .map(|r| r.ring)
            .collect();
        rings.reverse();
        for ring in &rings {
            for _ in 0..MAX_TRANSITIONS_PER_PASS {
                if !self.look(name, ring, None, report).await? {
                    break;
                }
            }
        }
        self.complete_when_passed(name, |_| true, true, "every ring reverted")
    }

    /// Build and push the revert step of `run` (ring `index`) on the current base.
    /// `None` when nothing would change or the registry must be reloaded first.
    pub(super) fn publish_revert(
        &mut self,
        run: &RingRun,
        index: usize,
        lease: Option<Oid>,
    ) -> Result<Option<(Oid, PreparedStep)>, DaemonError> {
        let now = self.clock.now();
        let Some(loaded) = self.loaded.as_ref() else {
            return Ok(None);
        };
        let config = &loaded.config;
        let mut by_cluster: BTreeMap<&str, Vec<Change>> = BTreeMap::new();
        for c in &run.planned {
            let Some(cluster) = config
                .fleet
                .clusters
                .iter()
                .find(|x| x.id.as_str() == c.cluster)
            else {
                continue;
            };
            let (Some(component), Ok(to)) = (component_of(&c.component), Version::parse(&c.to))
            else {
                continue;
            };
            let current = match &component {
                Component::Kubernetes => Some(cluster.kubernetes.clone()),
                Component::Addon(n) => cluster.addons.get(n).cloned(),
                Component::Controller(n) => cluster.controllers.get(n).cloned(),
                Component::Policy(n) => cluster.policies.get(n).cloned(),
            };
            let Some(from) = current else {
                continue;
            };
            if from.as_str() == to.as_str() {
                continue;
            }
            by_cluster
                .entry(cluster.id.as_str())
                .or_default()
                .push(Change {
                    component,
                    from,
                    to,
                });
        }
        let step = RingStep {
            clusters: by_cluster
                .into_iter()
                .filter_map(|(id, changes)| {
                    let cluster = config.fleet.clusters.iter().find(|x| x.id.as_str() == id)?;
                    Some(ClusterStep { cluster, changes })
                })
                .collect(),
            left_out: Vec::new(),
        };
        if step.clusters.is_empty() {
            return Ok(None);
        }
        let result =
            self.gitops
                .publish_step(config, index, (run.rollout.as_str(), 1), now, &step, lease);
        let (publication, prepared) = match result {
            Err(GitOpsError::StaleRegistry { .. }) => {
                self.reload()?;
                return Ok(None);
            }
            other => other?,
        };
        let Some(prepared) = prepared else {
            return Ok(None);
        };
        let head = match publication {
            Publication::Pushed { commit, .. } | Publication::UpToDate { commit } => commit,
            Publication::NothingToChange => return Ok(None),
        };
        Ok(Some((head, prepared)))
    }

    pub(super) async fn advance_revert(
        &mut self,
        name: &str,
        run: RingRun,
        report: &mut PassReport,
    ) -> Result<bool, DaemonError> {
        let now = self.clock.now();
        let Some(rollout) = self.store.rollout(name)? else {
            return Ok(false);
        };
        if rollout.state.is_finished() {
            return Ok(false);
        }
        let Some(index) = self.loaded.as_ref().and_then(|l| {
            l.config
                .ring_set
                .rings
                .iter()
                .position(|r| r.name.as_str() == run.ring)
        }) else {
            return Ok(false);
        };
        match run.phase {
            Phase::Passed | Phase::Soaking => Ok(false),
            Phase::Halted => self.post_evidence(run).await,
            Phase::Pending => {
                if rollout.state != RolloutState::Active {
                    return Ok(false);
                }
                let runs = self.store.ring_runs(name)?;
                if runs
                    .iter()
                    .any(|r| r.index > run.index && r.phase != Phase::Passed)
                {
                    return Ok(false);
                }
                for other in self.store.rollouts()? {
                    if other.name == name || other.state.is_finished() {
                        continue;
                    }
                    if self
                        .store
                        .ring_run(&other.name, &run.ring)?
                        .is_some_and(|r| r.phase.occupies_ring())
                    {
                        return Ok(false);
                    }
                }
                let mut new = run.clone();
                new.started_at = Some(now);
                let mut members: Vec<String> =
                    run.planned.iter().map(|c| c.cluster.clone()).collect();
                members.dedup();
                new.members = members;
                if run.planned.is_empty() {
                    new.passed_at = Some(now);
                    return self.moved(
                        &run,
                        new,
                        Phase::Passed,
                        None,
                        "nothing to revert in this ring (Kubernetes minors stay)".into(),
                    );
                }
                let n = run.planned.len();
                self.moved(
                    &run,
                    new,
                    Phase::WaitingForWindow,
                    None,
                    format!("revert started: {n} version(s) to restore"),
                )
            }
            Phase::WaitingForWindow | Phase::Preflight | Phase::Blocked => {
                let Some(loaded) = self.loaded.as_ref() else {
                    return Ok(false);
                };
                let config = &loaded.config;
                let Some(ring) = config.ring_set.rings.get(index) else {
                    return Ok(false);
                };
                if let Err((why, until)) = self.gate_of_change(config, ring, &rollout, now)? {
                    if let Some(t) = until {
                        report.due(t);
                    }
                    if run.reason.as_deref() != Some(why.as_str()) {
                        let mut new = run.clone();
                        new.reason = Some(why);
                        self.store.transition(&run, new, None, &[])?;
                    }
                    return Ok(false);
                }
                let original = rollout.revert_of.clone().unwrap_or_default();
                if config.release(&original).is_none() {
                    let why = format!(
                        "the release file of `{original}` is gone; its revert PR cannot be written"
                    );
                    return self.block(&run, why, report);
                }
                let lease = run
                    .current_step()
                    .and_then(|s| Oid::from_str(&s.pr.head).ok());
                let Some((head, prepared)) = self.publish_revert(&run, index, lease)? else {
                    let mut new = run.clone();
                    new.passed_at = Some(now);
                    return self.moved(
                        &run,
                        new,
                        Phase::Passed,
                        None,
                        "nothing left to revert: the registry already has the earlier versions"
                            .into(),
                    );
                };
                let Some(loaded) = self.loaded.as_ref() else {
                    return Ok(false);
                };
                let config = &loaded.config;
                let (Some(release), Some(ring)) =
                    (config.release(&original), config.ring_set.rings.get(index))
                else {
                    return Ok(false);
                };
                let runs = self.store.ring_runs(name)?;
                let matrix: Vec<(String, RingState)> = runs
                    .iter()
                    .rev()
                    .map(|r| {
                        if r.ring == run.ring {
                            (
                                r.ring.clone(),
                                RingState::InProgress("revert PR open".into()),
                            )
                        } else {
                            (r.ring.clone(), ring_state(r))
                        }
                    })
                    .collect();
                let checks = vec![
                    format!(
                        "Restores the versions ring `{}` ran before rollout `{original}`; Kubernetes minors are not downgraded (managed control planes cannot go back).",
                        ring.name
                    ),
                    "Rings are reverted newest first, each through its own window, freezes and review rules.".to_owned(),
                ];
                let ctx = PrContext {
                    config,
                    release,
                    ring_index: index,
                    step: 1,
                    edits: &prepared.edits,
                    left_out: &[],
                    matrix: &matrix,
                    evidence: None,
                    checks: &checks,
                    revert: true,
                };
                let open = pr_request(&ctx, name, ring, &prepared);
                let pr = self.forge.find_or_open(&open).await?;
                let url = self.pr_url(pr);
                let mut new = run.clone();
                let clusters = new.members.clone();
                record_step(
                    &mut new,
                    1,
                    (pr, url.clone()),
                    (&prepared, head),
                    (rollout.summary.clone(), clusters, run.planned.clone()),
                    now,
                );
                report.due(now + PR_POLL);
                self.moved(
                    &run,
                    new,
                    Phase::PrOpen,
                    None,
                    format!("revert PR {url} opened ({})", open.title),
                )
            }
            Phase::PrOpen => self.pr_open(&rollout, index, run, report).await,
            Phase::Converging => self.converging(index, run, report).await,
        }
    }
}

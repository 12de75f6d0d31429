//! Rebuilding rollouts from the forge when the store is empty (DESIGN §5).

use super::*;

impl<F: Forge, P: ClusterProbe, C: Clock> Daemon<'_, F, P, C> {
    /// With an empty store, rebuild rollouts from the forge's ring PRs (branch names and body
    /// markers; DESIGN §5): a ring with PRs after it passed; the last ring with a PR is where
    /// the rollout stands — an open PR waits for its merge, a merged one is converged and
    /// soaked again from zero (conservative), a closed or `ringmaster/halted` one is halted.
    /// Returns how many rollouts were rebuilt; does nothing when the store has rollouts.
    pub async fn rebuild_from_forge(&mut self) -> Result<usize, DaemonError> {
        if self.store.has_rollouts()? {
            return Ok(0);
        }
        self.refresh()?;
        let prs = self.forge.ringmaster_prs().await?;
        let Some(config) = self.loaded.as_ref().map(|l| &l.config) else {
            return Ok(0);
        };
        let now = self.clock.now();
        let mut by_release: BTreeMap<String, Vec<(render::Marker, crate::forge::PrSummary)>> =
            BTreeMap::new();
        for pr in prs {
            if let Some(m) = render::parse_marker(&pr.body)
                && !m.revert
            {
                by_release
                    .entry(m.rollout.clone())
                    .or_default()
                    .push((m, pr));
            }
        }
        let mut rebuilt = 0;
        let mut order = 0u32;
        for release in &config.releases {
            let name = release.name.as_str();
            let Some(mut prs) = by_release.remove(name) else {
                order += 1;
                continue;
            };
            prs.sort_by_key(|(m, p)| (m.step, p.number));
            let rings = &config.ring_set.rings;
            let last_with_pr = rings
                .iter()
                .rposition(|r| prs.iter().any(|(m, _)| m.ring == r.name.as_str()));
            let mut halted: Option<(String, String)> = None;
            let mut runs = Vec::new();
            for (i, ring) in rings.iter().enumerate() {
                let mut run = RingRun::pending(name, ring.name.as_str(), i as u32, now);
                let mine: Vec<&(render::Marker, crate::forge::PrSummary)> = prs
                    .iter()
                    .filter(|(m, _)| m.ring == ring.name.as_str())
                    .collect();
                let later = last_with_pr.is_some_and(|l| i < l);
                if !mine.is_empty() || later {
                    run.members = config.ring_clusters(i).map(|c| c.id.to_string()).collect();
                    run.started_at = Some(now);
                }
                // One record per step: the latest PR of each step number.
                let mut steps: BTreeMap<u32, &crate::forge::PrSummary> = BTreeMap::new();
                for (m, p) in &mine {
                    steps.insert(m.step, p);
                }
                for (step, p) in &steps {
                    let merged = p.state == PrLifecycle::Merged;
                    run.steps.push(StepRecord {
                        step: *step,
                        pr: PrLink {
                            number: p.number,
                            url: self.pr_url(p.number),
                            branch: p.branch.clone(),
                            head: p.head_sha.clone(),
                        },
                        summary: release.summary(),
                        clusters: Vec::new(),
                        opened_at: now,
                        merged_at: merged.then_some(now),
                        merge_commit: p.merge_sha.clone(),
                        converged_at: None,
                        passed_at: None,
                        base: None,
                        changes: Vec::new(),
                    });
                }
                run.phase = if later {
                    run.passed_at = Some(now);
                    Phase::Passed
                } else if let Some(last) = steps.values().last() {
                    let halted_label = last.labels.iter().any(|l| l == HALTED_LABEL);
                    match last.state {
                        _ if halted_label => {
                            let why = format!(
                                "halted before the store was lost; the evidence is on {}",
                                self.pr_url(last.number)
                            );
                            run.reason = Some(why.clone());
                            run.evidence_posted = true;
                            halted = Some((ring.name.to_string(), why));
                            Phase::Halted
                        }
                        PrLifecycle::Open => Phase::PrOpen,
                        PrLifecycle::Merged => {
                            // What the step changed is what the merged registry says now.
                            if let Some(s) = run.steps.last_mut() {
                                s.changes = self.step_changes_from_registry(config, i, release);
                                s.clusters = s.changes.iter().map(|c| c.cluster.clone()).collect();
                                s.clusters.dedup();
                            }
                            run.converge_deadline = Some(now + ring.converge_timeout);
                            Phase::Converging
                        }
                        PrLifecycle::Closed => {
                            let why = format!(
                                "PR {} was closed without merging",
                                self.pr_url(last.number)
                            );
                            run.reason = Some(why.clone());
                            halted = Some((ring.name.to_string(), why));
                            Phase::Halted
                        }
                    }
                } else {
                    Phase::Pending
                };
                runs.push(run);
            }
            let rollout = Rollout {
                name: name.to_owned(),
                order,
                summary: release.summary(),
                state: match halted {
                    Some((ring, reason)) => RolloutState::Halted { ring, reason },
                    None => RolloutState::Active,
                },
                created_at: now,
                updated_at: now,
                revert_of: None,
            };
            let ev = event(
                now,
                name,
                None,
                "rebuilt",
                format!(
                    "state rebuilt from {} ringmaster PR(s) after the store was lost; an unfinished soak restarts at 0",
                    prs.len()
                ),
            );
            if self.store.create_rollout(&rollout, &runs, &ev)? {
                rebuilt += 1;
            }
            order += 1;
        }
        Ok(rebuilt)
    }

    /// Every version the registry now gives the clusters of ring `index` for the components
    /// `release` moves: after a merge, what convergence must observe.
    pub(super) fn step_changes_from_registry(
        &self,
        config: &Config,
        index: usize,
        release: &rings::model::Release,
    ) -> Vec<ChangeRecord> {
        let mut out = Vec::new();
        for c in config.ring_clusters(index) {
            if c.paused.is_some() {
                continue;
            }
            if let Some(k) = &release.kubernetes
                && c.kubernetes.major_minor() <= k.major_minor()
            {
                out.push(ChangeRecord {
                    cluster: c.id.to_string(),
                    component: "kubernetes".into(),
                    from: String::new(),
                    to: c.kubernetes.as_str().to_owned(),
                });
            }
            for (name, v) in &c.addons {
                if release.addons.contains_key(name) {
                    out.push(ChangeRecord {
                        cluster: c.id.to_string(),
                        component: format!("addon/{name}"),
                        from: String::new(),
                        to: v.as_str().to_owned(),
                    });
                }
            }
            for (name, v) in &c.policies {
                if release.policies.contains_key(name) {
                    out.push(ChangeRecord {
                        cluster: c.id.to_string(),
                        component: format!("policy/{name}"),
                        from: String::new(),
                        to: v.as_str().to_owned(),
                    });
                }
            }
        }
        out
    }
}

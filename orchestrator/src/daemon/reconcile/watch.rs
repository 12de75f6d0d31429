//! After the merge: convergence, then the soak.

use super::decide::{self, ConvergeStep, SoakStep};
use super::*;

impl<F: Forge, P: ClusterProbe, C: Clock> Daemon<'_, F, P, C> {
    pub(super) async fn converging(
        &mut self,
        index: usize,
        run: RingRun,
        report: &mut PassReport,
    ) -> Result<bool, DaemonError> {
        let now = self.clock.now();
        let Some(loaded) = self.loaded.as_ref() else {
            return Ok(false);
        };
        let config = &loaded.config;
        let Some(step) = run.current_step() else {
            return Ok(false);
        };
        let mut targets: BTreeMap<&str, Targets> = BTreeMap::new();
        for c in &step.changes {
            let t = targets.entry(c.cluster.as_str()).or_default();
            let Ok(v) = Version::parse(&c.to) else {
                continue;
            };
            match Component::parse(&c.component) {
                Some(Component::Kubernetes) => t.kubernetes = Some(v),
                Some(Component::Addon(name)) => {
                    t.addons.insert(name, v);
                }
                Some(Component::Controller(name)) => {
                    t.controllers.insert(name, v);
                }
                Some(Component::Policy(name)) => {
                    t.policies.insert(name, v);
                }
                None => {}
            }
        }
        let mut behind = Vec::new();
        let probe = &self.probe;
        let checks = targets.iter().filter_map(|(id, t)| {
            let cluster = config
                .fleet
                .clusters
                .iter()
                .find(|c| c.id.as_str() == *id)?;
            let span = tracing::info_span!("cluster", cluster = *id);
            Some(
                async move { (id.to_string(), probe.convergence(config, cluster, t).await) }
                    .instrument(span),
            )
        });
        for (id, r) in futures_util::future::join_all(checks).await {
            if let Some(why) = r.inconclusive {
                behind.push(format!("{id}: cannot tell ({why})"));
            } else if !r.converged {
                behind.push(format!("{id}: {}", r.behind.join(", ")));
            }
        }
        let Some(rollout) = self.store.rollout(&run.rollout)? else {
            return Ok(false);
        };
        let deadline = run.converge_deadline.unwrap_or(now);
        let step = decide::converge_step(
            behind.is_empty(),
            rollout.revert_of.is_some(),
            deadline,
            now,
        );
        if step == ConvergeStep::Reverted {
            // A revert ring is done when its clusters run the restored versions.
            let mut new = run.clone();
            if let Some(s) = new.current_step_mut() {
                s.converged_at = Some(now);
                s.passed_at = Some(now);
            }
            new.passed_at = Some(now);
            return self.moved(
                &run,
                new,
                Phase::Passed,
                None,
                "reverted: every cluster runs the restored versions".to_owned(),
            );
        }
        if step == ConvergeStep::Soak {
            let mut new = run.clone();
            if let Some(s) = new.current_step_mut() {
                s.converged_at = Some(now);
            }
            new.soak_started = Some(now);
            new.soak_restarted = None;
            new.next_sample_at = Some(now);
            new.gate_due.clear();
            if new.baselines.is_empty() {
                // No pre-merge values (state rebuilt from the forge after the merge): take
                // them now, so restart growth and `baseline` gates compare with the soak's
                // start rather than stay inconclusive.
                if let Some(ring) = config.ring_set.rings.get(index) {
                    let gates = ring_gates(config, ring);
                    let members = moving_members(config, &run);
                    new.baselines = self
                        .probe
                        .sample_baselines(&gates, &members)
                        .await
                        .into_iter()
                        .map(|((g, c), v)| (g, c, v))
                        .collect();
                }
            }
            report.due(now);
            let soak = config
                .ring_set
                .rings
                .get(index)
                .map_or(TimeDelta::zero(), |r| r.soak);
            return self.moved(
                &run,
                new,
                Phase::Soaking,
                None,
                format!(
                    "step {}: every cluster converged; soaking for {}",
                    run.step_number(),
                    rings::duration::format_duration(soak)
                ),
            );
        }
        if step == ConvergeStep::Timeout {
            let reason = format!(
                "convergence timeout: after {} these clusters still do not run what Git says: {}",
                rings::duration::format_duration(
                    deadline
                        - run
                            .current_step()
                            .and_then(|s| s.merged_at)
                            .unwrap_or(deadline)
                ),
                behind.join("; ")
            );
            return self.halt(&rollout, run, reason, None).await;
        }
        if run.reason.as_deref() != Some(behind.join("; ").as_str()) {
            let mut new = run.clone();
            new.reason = Some(behind.join("; "));
            self.store.transition(&run, new, None, &[])?;
        }
        report.due((now + CONVERGE_POLL).min(deadline));
        Ok(false)
    }

    pub(super) async fn soaking(
        &mut self,
        rollout: &Rollout,
        index: usize,
        run: RingRun,
        report: &mut PassReport,
    ) -> Result<bool, DaemonError> {
        let now = self.clock.now();
        let Some(loaded) = self.loaded.as_ref() else {
            return Ok(false);
        };
        let config = &loaded.config;
        let Some(ring) = config.ring_set.rings.get(index) else {
            return Ok(false);
        };
        let step_no = run.step_number();
        let start = run.soak_started.unwrap_or(now);
        let key = (run.rollout.clone(), run.ring.clone(), step_no);
        let tally = self
            .tallies
            .entry(key.clone())
            .or_insert_with(|| SoakTally {
                tally: soak::Tally::new(start, ring.soak),
                last_id: None,
                seen: 0,
            });
        tally.seen = self.passes;
        if tally.tally.start() != start || tally.tally.soak() != ring.soak {
            // Resumed (the gates run again from zero) or re-timed: start over.
            tally.tally = soak::Tally::new(start, ring.soak);
            tally.last_id = None;
        }
        let gates = ring_gates(config, ring);
        let members = moving_members(config, &run);
        // Sample the gates that are due.
        let due: Vec<&Gate> = gates
            .iter()
            .copied()
            .filter(|g| run.gate_due.get(g.name.as_str()).is_none_or(|t| *t <= now))
            .collect();
        // Nothing due and the soak not over: the verdict cannot have changed since the last
        // sample, so the samples are not read again (an idle pass stays cheap however long
        // the soak has been running).
        let soak_end = run.soak_restarted.or(run.soak_started).unwrap_or(now) + ring.soak;
        if due.is_empty() && now < soak_end {
            let next = run.gate_due.values().min().copied().unwrap_or(soak_end);
            report.due(next.min(soak_end));
            return Ok(false);
        }
        let mut new = run.clone();
        if !due.is_empty() && !members.is_empty() {
            let baselines: Baselines = run
                .baselines
                .iter()
                .map(|(g, c, v)| ((g.clone(), c.clone()), *v))
                .collect();
            let results = self.probe.evaluate(&due, &members, &baselines).await;
            let records: Vec<SampleRecord> = results
                .into_iter()
                .map(|r| SampleRecord {
                    at: now,
                    gate: r.gate,
                    cluster: r.cluster,
                    outcome: match r.observation.outcome {
                        Outcome::Pass => SampleOutcome::Pass,
                        Outcome::Fail => SampleOutcome::Fail,
                        Outcome::Inconclusive => SampleOutcome::Inconclusive,
                    },
                    value: r.observation.value,
                    observed: r.observation.observed,
                })
                .collect();
            self.store
                .add_samples(&run.rollout, &run.ring, step_no, &records)?;
            for g in &due {
                new.gate_due.insert(g.name.to_string(), now + g.interval);
            }
        }
        // Fold the samples taken since the last look (all of them after a restart).
        let Some(tally) = self.tallies.get_mut(&key) else {
            return Ok(false);
        };
        for (id, record) in
            self.store
                .samples_after(&run.rollout, &run.ring, step_no, tally.last_id)?
        {
            tally.last_id = Some(id);
            if let Some(sample) = to_sample(&record)
                && let Some(gate) = gates.iter().find(|g| g.name == sample.gate)
            {
                tally.tally.add(gate, &sample);
            }
        }
        let owned_gates: Vec<Gate> = gates.iter().map(|g| (*g).clone()).collect();
        let ids: Vec<ClusterId> = members.iter().map(|c| c.id.clone()).collect();
        let verdict = tally.tally.verdict(&owned_gates, &ids, now);
        if !matches!(verdict, Verdict::Soaking { .. }) {
            self.tallies.remove(&key);
        }
        let passes_at = match &verdict {
            Verdict::Soaking { passes_at, .. } => Some(*passes_at),
            _ => None,
        };
        let more = matches!(verdict, Verdict::Passed)
            && config
                .release(&rollout.name)
                .map(|r| next_ring_step(config, r, index))
                .is_some_and(|s| s.is_ok_and(|s| !s.clusters.is_empty()));
        let soak_text = rings::duration::format_duration(ring.soak);
        match decide::soak_step(verdict, more, run.soak_restarted) {
            SoakStep::Halt(reason) => self.halt(rollout, run, reason, Some(now)).await,
            SoakStep::NextStep => {
                // The next step of this ring (a laggard one minor further), through its window.
                if let Some(s) = new.current_step_mut() {
                    s.passed_at = Some(now);
                }
                new.soak_started = None;
                new.soak_restarted = None;
                new.next_sample_at = None;
                new.passed_at = None;
                let text = format!(
                    "step {step_no} passed its {soak_text} soak; the ring has another step"
                );
                self.moved(&run, new, Phase::WaitingForWindow, None, text)
            }
            SoakStep::Pass => {
                new.passed_at = Some(now);
                if let Some(s) = new.current_step_mut() {
                    s.passed_at = Some(now);
                }
                let text = format!("passed: every gate held on every cluster for {soak_text}");
                self.moved(&run, new, Phase::Passed, None, text)
            }
            SoakStep::Wait { restarted } => {
                let passes_at = passes_at.unwrap_or(now);
                let next_sample = new.gate_due.values().min().copied();
                let next = next_sample.map_or(passes_at, |s| s.min(passes_at)).max(now);
                report.due(next);
                new.next_sample_at = next_sample;
                let mut events = Vec::new();
                if let Some((at, why)) = restarted {
                    // A sampling gap (a restart, a configuration that did not load): the soak
                    // runs its full length again from the first sample after it.
                    new.soak_restarted = Some(at);
                    new.reason = Some(format!("{why}; soak now ends {}", passes_at.to_rfc3339()));
                    events.push(event(
                        now,
                        &run.rollout,
                        Some(&run.ring),
                        "soak-restarted",
                        format!(
                            "step {step_no}: {why}; the {soak_text} soak now ends {}",
                            passes_at.to_rfc3339()
                        ),
                    ));
                }
                if new != run {
                    self.store.transition(&run, new, None, &events)?;
                }
                Ok(false)
            }
        }
    }
}

//! A ring step's open PR: notices, merge, closed without merging.

use super::decide::{self, PrStep};
use super::*;

impl<F: Forge, P: ClusterProbe, C: Clock> Daemon<'_, F, P, C> {
    pub(super) async fn pr_open(
        &mut self,
        rollout: &Rollout,
        index: usize,
        run: RingRun,
        report: &mut PassReport,
    ) -> Result<bool, DaemonError> {
        let now = self.clock.now();
        let Some(step) = run.current_step().cloned() else {
            // No step recorded: back to preflight to open one.
            let new = run.clone();
            return self.moved(
                &run,
                new,
                Phase::Preflight,
                None,
                "no PR recorded; preflight again".into(),
            );
        };
        let status = self.forge.status(step.pr.number).await?;
        if status.state == PrLifecycle::Open {
            self.post_notice(rollout, &run, &step).await?;
        }
        let Some(run) = self.store.ring_run(&run.rollout, &run.ring)? else {
            return Ok(false);
        };
        let Some(loaded) = self.loaded.as_ref() else {
            return Ok(false);
        };
        let config = &loaded.config;
        let Some(ring) = config.ring_set.rings.get(index) else {
            return Ok(false);
        };
        let open = status.state == PrLifecycle::Open;
        let facts = decide::PrFacts {
            state: status.state,
            base_moved: step
                .base
                .as_deref()
                .is_some_and(|b| b != loaded.base.to_string()),
            wants_merge: match ring.merge {
                MergeMode::Auto => true,
                MergeMode::Manual => self.options.merge_approved && status.approved(),
            },
            checks_ok: matches!(status.checks, Checks::Success | Checks::None),
            head_matches: status.head_sha == step.pr.head,
            change_allowed: !open || self.gate_of_change(config, ring, rollout, now)?.is_ok(),
        };
        match decide::pr_step(facts) {
            PrStep::Converge => {
                let mut new = run.clone();
                if let Some(s) = new.current_step_mut() {
                    s.merged_at = Some(now);
                    s.merge_commit = status.merge_sha.clone();
                }
                new.converge_deadline = Some(now + ring.converge_timeout);
                report.due(now);
                let text = format!(
                    "step {}: PR {} merged ({}); waiting up to {} for convergence",
                    step.step,
                    step.pr.url,
                    status.merge_sha.as_deref().map_or("?", short),
                    rings::duration::format_duration(ring.converge_timeout)
                );
                self.moved(&run, new, Phase::Converging, None, text)
            }
            PrStep::Halt => {
                let reason = format!("PR {} was closed without merging", step.pr.url);
                self.halt(rollout, run, reason, None).await
            }
            PrStep::Regenerate => self.regenerate(rollout, index, run, step).await,
            PrStep::WaitForReview => {
                // Waiting for people (review, merge) or checks: poll.
                report.due(now + PR_POLL);
                Ok(false)
            }
            PrStep::WaitForWindow => {
                // Ready to merge but outside the window, frozen or paused: wake when it opens.
                let until = self.gate_of_change(config, ring, rollout, now)?.err();
                report.due(until.and_then(|(_, t)| t).unwrap_or(now + PR_POLL));
                Ok(false)
            }
            PrStep::Merge => {
                // Fresh baselines right before the merge.
                let soak_gates = ring_gates(config, ring);
                let members = moving_members(config, &run);
                let baselines = self.probe.sample_baselines(&soak_gates, &members).await;
                match self.forge.merge(step.pr.number, &step.pr.head).await {
                    Ok(_) => {
                        // The base moved: the registry now says the new versions.
                        self.reload()?;
                        if !baselines.is_empty() {
                            let mut new = run.clone();
                            new.baselines =
                                baselines.into_iter().map(|((g, c), v)| (g, c, v)).collect();
                            self.store.transition(&run, new, None, &[])?;
                        }
                        // The next status read sees the merge and moves to Converging.
                        Ok(true)
                    }
                    Err(ForgeError::HeadMoved { .. } | ForgeError::NotMergeable { .. }) => {
                        report.warnings.push(format!(
                            "PR {} not merged yet: head or base moved",
                            step.pr.url
                        ));
                        report.due(now + PR_POLL);
                        Ok(false)
                    }
                    Err(e) => Err(e.into()),
                }
            }
        }
    }

    /// Tell the open PR about a pause or a global freeze (and when it is lifted): one keyed
    /// comment, written only when the notice changes.
    pub(super) async fn post_notice(
        &mut self,
        rollout: &Rollout,
        run: &RingRun,
        step: &StepRecord,
    ) -> Result<(), DaemonError> {
        let now = self.clock.now();
        let wanted = if let RolloutState::Paused { by, reason } = &rollout.state {
            Some(format!(
                "⏸ **Paused** by {by}: {reason}. ringmaster will not merge this PR or open new ones \
                 for `{}` until `ringmaster resume {}`; soaks keep measuring.",
                rollout.name, rollout.name
            ))
        } else {
            self.store
                .global_freeze()?
                .filter(|f| now < f.until)
                .map(|f| {
                    format!(
                        "🧊 **Frozen** by {} until {}: {}. ringmaster will not merge this PR or open \
                         new ones until then (or `ringmaster unfreeze`); soaks keep measuring.",
                        f.by,
                        f.until.to_rfc3339(),
                        f.reason
                    )
                })
        };
        if wanted == run.notice {
            return Ok(());
        }
        let body = match &wanted {
            Some(text) => format!("{text}\n"),
            None => format!(
                "▶ The pause or freeze was lifted at {}; ringmaster goes on.\n",
                now.to_rfc3339()
            ),
        };
        self.forge
            .comment(step.pr.number, NOTICE_COMMENT, &body)
            .await?;
        let mut new = run.clone();
        new.notice = wanted;
        self.store.transition(run, new, None, &[])?;
        Ok(())
    }
}

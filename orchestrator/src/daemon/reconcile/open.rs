//! Preflight and opening a ring step's PR; regenerating its branch when the base moved.

use super::*;

/// The PR of a prepared ring step, as the forge is asked to find or open it: the rendered title
/// and body, the rollout's and ring's labels, and the ring's reviewers when it merges by hand.
pub(super) fn pr_request(
    ctx: &PrContext<'_>,
    rollout: &str,
    ring: &Ring,
    prepared: &PreparedStep,
) -> OpenPr {
    OpenPr {
        branch: prepared.branch.clone(),
        base: ctx.config.settings.gitops.branch.clone(),
        title: render::title(ctx),
        body: render::body(ctx),
        labels: crate::forge::labels(rollout, ring.name.as_str()),
        reviewers: if ring.merge == MergeMode::Manual {
            ring.reviewers.clone()
        } else {
            Vec::new()
        },
    }
}

/// Record step `number`'s PR (`pr`: number and URL) on `run`, replacing an earlier record of
/// the same step (a regenerated PR): its branch and head, base, summary, clusters and changes.
pub(super) fn record_step(
    run: &mut RingRun,
    number: u32,
    (pr, url): (u64, String),
    (prepared, head): (&PreparedStep, Oid),
    (summary, clusters, changes): (String, Vec<String>, Vec<ChangeRecord>),
    now: DateTime<Utc>,
) {
    run.steps.retain(|s| s.step != number);
    run.steps.push(StepRecord {
        step: number,
        pr: PrLink {
            number: pr,
            url,
            branch: prepared.branch.clone(),
            head: head.to_string(),
        },
        summary,
        clusters,
        opened_at: now,
        merged_at: None,
        merge_commit: None,
        converged_at: None,
        passed_at: None,
        base: Some(prepared.base.to_string()),
        changes,
    });
}

impl<F: Forge, P: ClusterProbe, C: Clock> Daemon<'_, F, P, C> {
    pub(super) async fn preflight_and_open(
        &mut self,
        rollout_name: &str,
        index: usize,
        run: RingRun,
        report: &mut PassReport,
    ) -> Result<bool, DaemonError> {
        let now = self.clock.now();
        let Some(loaded) = self.loaded.as_ref() else {
            return Ok(false);
        };
        let config = &loaded.config;
        let (Some(release), Some(ring)) = (
            config.release(rollout_name),
            config.ring_set.rings.get(index),
        ) else {
            return Ok(false);
        };
        let step = match next_ring_step(config, release, index) {
            Ok(s) => s,
            Err(ChangeError::Blocked {
                reason, cluster, ..
            }) => {
                let why = format!("cluster {cluster}: {reason}");
                return self.block(&run, why, report);
            }
            Err(e) => return Err(DaemonError::Config(e.to_string())),
        };
        if step.clusters.is_empty() {
            let mut new = run.clone();
            new.passed_at = Some(now);
            return self.moved(&run, new, Phase::Passed, None, "every step done".into());
        }
        // Preflight: every cluster of the step, built-in checks and the ring's preflight gates.
        let gates = preflight_gates(config, ring);
        let mut findings = Vec::new();
        let probe = &self.probe;
        let checks = step.clusters.iter().map(|cs| {
            let target = targets_of(&cs.changes);
            let gates = gates.clone();
            let span = tracing::info_span!("cluster", cluster = cs.cluster.id.as_str());
            async move {
                let f = probe.preflight(cs.cluster, &target, &gates).await;
                (cs.cluster.id.to_string(), f)
            }
            .instrument(span)
        });
        for (cluster, f) in futures_util::future::join_all(checks).await {
            findings.extend(f.into_iter().map(|f| format!("{cluster}: {f}")));
        }
        if !findings.is_empty() {
            let why = if findings.len() > 3 {
                format!(
                    "{} (and {} more)",
                    findings[..3].join("; "),
                    findings.len() - 3
                )
            } else {
                findings.join("; ")
            };
            return self.block(&run, format!("preflight: {why}"), report);
        }
        // Baselines for `baseline: preUpgrade` gates, taken before anything changes.
        let soak_gates = ring_gates(config, ring);
        let members = moving_members(config, &run);
        let baselines = self.probe.sample_baselines(&soak_gates, &members).await;

        // Build and push the branch, then find or open the PR.
        let number = run.steps.len() as u32 + 1;
        let last_pushed = run
            .steps
            .iter()
            .find(|s| s.step == number)
            .and_then(|s| Oid::from_str(&s.pr.head).ok());
        let request = StepRequest {
            config,
            release,
            ring_index: index,
            step: number,
            time: now,
        };
        let (publication, prepared) = match self.gitops.publish(&request, last_pushed) {
            Err(GitOpsError::StaleRegistry { .. }) => {
                // The base branch moved under the loaded registry: reload, try next time.
                self.reload()?;
                report.due(now);
                return Ok(false);
            }
            other => other?,
        };
        let Some(prepared) = prepared else {
            debug_assert!(matches!(publication, Publication::NothingToChange));
            let mut new = run.clone();
            new.passed_at = Some(now);
            return self.moved(&run, new, Phase::Passed, None, "every step done".into());
        };
        let head = match publication {
            Publication::Pushed { commit, .. } | Publication::UpToDate { commit } => commit,
            Publication::NothingToChange => prepared.commit,
        };
        let runs = self.store.ring_runs(rollout_name)?;
        let matrix: Vec<(String, RingState)> = runs
            .iter()
            .map(|r| {
                if r.index as usize == index {
                    (
                        r.ring.clone(),
                        RingState::InProgress(format!("PR open (step {number})")),
                    )
                } else {
                    (r.ring.clone(), ring_state(r))
                }
            })
            .collect();
        let evidence = match index
            .checked_sub(1)
            .and_then(|p| runs.iter().find(|r| r.index as usize == p))
        {
            Some(prev) => evidence_of(self.store, config, prev, now)?,
            None => None,
        };
        let rule_checks = vec![
            "No downgrade: every change moves a version up (or the release allows rollback)."
                .to_owned(),
            "Kubernetes moves one minor per step; kubelets stay within the skew policy.".to_owned(),
            format!(
                "Preflight held on all {} clusters of this step (cluster answers, no drift from the registry, no kubelet ahead{}).",
                step.clusters.len(),
                if gates.is_empty() {
                    String::new()
                } else {
                    format!(", {} configured checks", gates.len())
                }
            ),
        ];
        let ctx = PrContext {
            config,
            release,
            ring_index: index,
            step: number,
            edits: &prepared.edits,
            left_out: &prepared.left_out,
            matrix: &matrix,
            evidence: evidence.as_ref(),
            checks: &rule_checks,
            revert: false,
        };
        let open = pr_request(&ctx, rollout_name, ring, &prepared);
        let pr = self.forge.find_or_open(&open).await?;
        let changes: Vec<ChangeRecord> = step
            .clusters
            .iter()
            .flat_map(|cs| {
                cs.changes.iter().map(|c| ChangeRecord {
                    cluster: cs.cluster.id.to_string(),
                    component: component_key(&c.component),
                    from: c.from.as_str().to_owned(),
                    to: c.to.as_str().to_owned(),
                })
            })
            .collect();
        let mut new = run.clone();
        let clusters = step
            .clusters
            .iter()
            .map(|c| c.cluster.id.to_string())
            .collect();
        record_step(
            &mut new,
            number,
            (pr, self.pr_url(pr)),
            (&prepared, head),
            (release.summary(), clusters, changes),
            now,
        );
        new.baselines = baselines.into_iter().map(|((g, c), v)| (g, c, v)).collect();
        let url = self.pr_url(pr);
        report.due(now + PR_POLL);
        self.moved(
            &run,
            new,
            Phase::PrOpen,
            None,
            format!("step {number}: PR {url} opened ({})", open.title),
        )
    }

    pub(super) fn block(
        &self,
        run: &RingRun,
        why: String,
        report: &mut PassReport,
    ) -> Result<bool, DaemonError> {
        report.due(self.clock.now() + BLOCKED_POLL);
        if run.phase == Phase::Blocked && run.reason.as_deref() == Some(why.as_str()) {
            return Ok(false);
        }
        let mut new = run.clone();
        new.block = Some(state::BlockCause::Preflight {
            findings: vec![why.clone()],
        });
        let changed = self.moved(
            run,
            new,
            Phase::Blocked,
            Some(why.clone()),
            format!("blocked: {why}"),
        )?;
        // Blocked → Blocked with a new reason is a write, not progress worth looping on.
        Ok(changed && run.phase != Phase::Blocked)
    }

    pub(super) async fn regenerate(
        &mut self,
        rollout: &Rollout,
        index: usize,
        run: RingRun,
        step: StepRecord,
    ) -> Result<bool, DaemonError> {
        let now = self.clock.now();
        let Some(loaded) = self.loaded.as_ref() else {
            return Ok(false);
        };
        let config = &loaded.config;
        if rollout.revert_of.is_some() {
            let lease = Oid::from_str(&step.pr.head).ok();
            let Some((head, prepared)) = self.publish_revert(&run, index, lease)? else {
                return Ok(false);
            };
            let mut new = run.clone();
            if let Some(s) = new.current_step_mut() {
                s.pr.head = head.to_string();
                s.base = Some(prepared.base.to_string());
            }
            return self.moved(
                &run,
                new,
                Phase::PrOpen,
                None,
                format!(
                    "base branch moved; revert branch {} regenerated",
                    step.pr.branch
                ),
            );
        }
        let Some(release) = config.release(&rollout.name) else {
            return Ok(false);
        };
        let request = StepRequest {
            config,
            release,
            ring_index: index,
            step: step.step,
            time: now,
        };
        let lease = Oid::from_str(&step.pr.head).ok();
        let (publication, prepared) = match self.gitops.publish(&request, lease) {
            Err(GitOpsError::StaleRegistry { .. }) => {
                self.reload()?;
                return Ok(false);
            }
            other => other?,
        };
        let mut new = run.clone();
        let Some(prepared) = prepared else {
            return Ok(false);
        };
        let head = match publication {
            Publication::Pushed { commit, .. } | Publication::UpToDate { commit } => commit,
            Publication::NothingToChange => return Ok(false),
        };
        if let Some(s) = new.current_step_mut() {
            s.pr.head = head.to_string();
            s.base = Some(prepared.base.to_string());
        }
        self.moved(
            &run,
            new,
            Phase::PrOpen,
            None,
            format!(
                "step {}: base branch moved; branch {} regenerated at {}",
                step.step,
                step.pr.branch,
                short(&head.to_string())
            ),
        )
    }
}

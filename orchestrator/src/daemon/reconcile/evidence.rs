//! What a ring's soak showed (for the next ring's PR and a halt comment), and halting.

use super::*;

/// The state-machine view of a ring run for the PR matrix.
pub fn ring_state(run: &RingRun) -> RingState {
    let reason = run.reason.clone().unwrap_or_default();
    match run.phase {
        Phase::Pending | Phase::WaitingForWindow => RingState::Waiting,
        Phase::Passed if run.steps.is_empty() => RingState::NothingToDo,
        Phase::Passed => RingState::Passed,
        Phase::Blocked => RingState::Blocked(reason),
        Phase::Halted => RingState::Halted(reason),
        Phase::Preflight => RingState::InProgress("preflight".into()),
        Phase::PrOpen => RingState::InProgress(format!("PR open (step {})", run.step_number())),
        Phase::Converging => RingState::InProgress("converging".into()),
        Phase::Soaking => RingState::InProgress("soaking".into()),
    }
}

pub(super) fn to_sample(s: &SampleRecord) -> Option<Sample> {
    Some(Sample {
        at: s.at,
        gate: GateName::new(&s.gate).ok()?,
        cluster: ClusterId::new(&s.cluster).ok()?,
        outcome: match s.outcome {
            SampleOutcome::Pass => Outcome::Pass,
            SampleOutcome::Fail => Outcome::Fail,
            SampleOutcome::Inconclusive => Outcome::Inconclusive,
        },
        value: s.value,
        observed: s.observed.clone(),
    })
}

/// The evidence of a ring's last step (its soak), for the next ring's PR or a halt comment.
pub fn evidence_of(
    store: &Store,
    config: &Config,
    run: &RingRun,
    now: DateTime<Utc>,
) -> Result<Option<Evidence>, StoreError> {
    let Some(ring) = config
        .ring_set
        .rings
        .iter()
        .find(|r| r.name.as_str() == run.ring)
    else {
        return Ok(None);
    };
    let Some(step) = run.current_step() else {
        return Ok(None);
    };
    let samples: Vec<Sample> = store
        .samples(&run.rollout, &run.ring, step.step)?
        .iter()
        .filter_map(to_sample)
        .collect();
    let gates: Vec<Gate> = ring_gates(config, ring).into_iter().cloned().collect();
    let summaries = soak::summarise(&gates, &samples);
    let start = run.soak_started.unwrap_or(now);
    let end = run.passed_at.unwrap_or(now);
    Ok(Some(Evidence {
        ring: run.ring.clone(),
        soak: ring.soak,
        observed: (end - start).max(TimeDelta::zero()),
        gates: summaries
            .into_iter()
            .map(|g| GateEvidence {
                gate: g.gate.to_string(),
                samples: g.samples,
                failures: g.failures,
                inconclusive: g.inconclusive,
                worst: g
                    .worst
                    .into_iter()
                    .map(|(c, v)| (c.to_string(), v))
                    .collect(),
            })
            .collect(),
    }))
}

/// Markdown evidence of a halt: why, then each gate's samples and worst values.
pub fn halt_comment(rollout: &str, reason: &str, evidence: Option<&Evidence>) -> String {
    // The forge puts the comment's key marker in front (one comment per key, never two).
    let mut out = format!("### 🛑 ringmaster halted this rollout\n\n{reason}\n\n");
    if let Some(e) = evidence {
        out.push_str(&format!(
            "Soak of ring `{}`: {} observed of {} required.\n\n| gate | samples | failures | inconclusive | worst per cluster |\n|---|---|---|---|---|\n",
            e.ring,
            rings::duration::format_duration(e.observed),
            rings::duration::format_duration(e.soak)
        ));
        for g in &e.gates {
            let worst: Vec<String> = g.worst.iter().map(|(c, v)| format!("{c}: {v}")).collect();
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} |\n",
                g.gate,
                g.samples,
                g.failures,
                g.inconclusive,
                worst.join(", ")
            ));
        }
        out.push('\n');
    }
    out.push_str("Later rings get nothing until a person decides. Next steps:\n\n```sh\n");
    out.push_str(&format!(
        "ringmaster resume {rollout}          # re-run this ring's gates from zero\n"
    ));
    out.push_str(&format!(
        "ringmaster abort {rollout} --revert  # stop and restore the previous versions\n```\n"
    ));
    out
}

impl<F: Forge, P: ClusterProbe, C: Clock> Daemon<'_, F, P, C> {
    /// Halt: the ring and the rollout, one evidence comment and a label on the PR.
    pub(super) async fn halt(
        &mut self,
        rollout: &Rollout,
        run: RingRun,
        reason: String,
        _at: Option<DateTime<Utc>>,
    ) -> Result<bool, DaemonError> {
        let now = self.clock.now();
        let evidence = match self.loaded.as_ref() {
            Some(l) => evidence_of(self.store, &l.config, &run, now)?,
            None => None,
        };
        let comment = halt_comment(&rollout.name, &reason, evidence.as_ref());
        let mut new = run.clone();
        new.evidence = Some(comment.clone());
        let mut r = rollout.clone();
        r.state = RolloutState::Halted {
            ring: run.ring.clone(),
            reason: reason.clone(),
        };
        r.updated_at = now;
        new.phase = Phase::Halted;
        new.phase_since = now;
        new.reason = Some(reason.clone());
        let ev = event(now, &run.rollout, Some(&run.ring), "halted", reason);
        new.evidence_posted = false;
        // Recorded first; the comment and label follow (the Halted state posts them, keyed,
        // so a crash in between neither loses nor duplicates them).
        self.commit(&run, new, Some(&r), &[ev])
    }

    /// A halted ring whose evidence is not on its PR yet: comment (keyed: never twice) and
    /// label, then remember it.
    pub(super) async fn post_evidence(&mut self, run: RingRun) -> Result<bool, DaemonError> {
        if run.evidence_posted {
            return Ok(false);
        }
        let (Some(comment), Some(step)) = (run.evidence.clone(), run.current_step().cloned())
        else {
            let mut new = run.clone();
            new.evidence_posted = true;
            self.store.transition(&run, new, None, &[])?;
            return Ok(false);
        };
        let now = self.clock.now();
        let n = step.pr.number;
        self.forge.comment(n, HALT_COMMENT, &comment).await?;
        self.forge.add_labels(n, &[HALTED_LABEL.to_owned()]).await?;
        let mut new = run.clone();
        new.evidence_posted = true;
        let ev = event(
            now,
            &run.rollout,
            Some(&run.ring),
            "evidence",
            format!(
                "halt evidence commented on {} (label {HALTED_LABEL})",
                step.pr.url
            ),
        );
        self.store.transition(&run, new, None, &[ev])?;
        Ok(false)
    }
}

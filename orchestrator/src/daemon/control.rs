//! What people do to rollouts (DESIGN §5, §9): resume a halted rollout, pause it, abort it, and
//! freeze everything. Each is recorded in the journal with who and why and takes effect at the
//! next reconcile pass.

use chrono::{DateTime, TimeDelta, Utc};
use rings::model::Config;
use state::{BlockCause, Event, GlobalFreeze, Phase, RolloutState, Store, StoreError};

/// Why a command was refused.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// No such rollout.
    #[error("no rollout named `{0}` (see `ringmaster status`)")]
    NoSuchRollout(String),
    /// The command does not apply in the rollout's state.
    #[error("rollout `{rollout}` is {state}: {what}")]
    WrongState {
        /// Rollout.
        rollout: String,
        /// Its state.
        state: String,
        /// What would have been needed.
        what: String,
    },
    /// Someone else changed the ring run at the same time; run the command again.
    #[error("rollout `{0}` changed while the command ran; run it again")]
    Conflict(String),
    /// The store failed.
    /// The command's arguments cannot be right (a freeze that ended before it began).
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Convergence time allowed after a resume when the ring file is not at hand.
const DEFAULT_CONVERGE_TIMEOUT: TimeDelta = TimeDelta::minutes(30);

fn ev(
    now: DateTime<Utc>,
    rollout: &str,
    ring: Option<&str>,
    kind: &str,
    message: String,
    by: &str,
) -> Event {
    Event {
        at: now,
        rollout: rollout.to_owned(),
        ring: ring.map(str::to_owned),
        kind: kind.to_owned(),
        message,
        actor: by.to_owned(),
    }
}

/// The rollout, or the error naming it.
fn load(store: &Store, rollout: &str) -> Result<state::Rollout, ControlError> {
    store
        .rollout(rollout)?
        .ok_or_else(|| ControlError::NoSuchRollout(rollout.to_owned()))
}

/// The command does not apply to `r` as it stands.
fn wrong_state(r: &state::Rollout, what: &str) -> ControlError {
    ControlError::WrongState {
        rollout: r.name.clone(),
        state: r.state.word().to_owned(),
        what: what.to_owned(),
    }
}

/// Give `r` a new state and journal it (`kind`, `message`) in one write.
fn set_state(
    store: &Store,
    mut r: state::Rollout,
    state: RolloutState,
    (kind, message): (&str, String),
    by: &str,
    now: DateTime<Utc>,
) -> Result<(), ControlError> {
    r.state = state;
    r.updated_at = now;
    let event = ev(now, &r.name, None, kind, message, by);
    store.put_rollout(&r, &[event])?;
    Ok(())
}

/// `ringmaster resume <rollout>`: a halted rollout re-runs its halted ring's gates from zero
/// (or its convergence, or opens a new PR when the old one was closed); a paused rollout goes on.
pub fn resume(
    store: &Store,
    config: Option<&Config>,
    rollout: &str,
    by: &str,
    now: DateTime<Utc>,
) -> Result<String, ControlError> {
    // Free text from the CLI or the API: no control characters, capped (issue 16 item 10).
    let by = &crate::text::clean_text(by);
    let mut r = load(store, rollout)?;
    match r.state.clone() {
        RolloutState::Paused { .. } => {
            set_state(
                store,
                r,
                RolloutState::Active,
                ("resumed", "rollout resumed".into()),
                by,
                now,
            )?;
            let retried = retry_now(store, rollout, by, now)?;
            Ok(format!(
                "rollout `{rollout}` resumed{}",
                retried_text(&retried)
            ))
        }
        RolloutState::Active => {
            let retried = retry_now(store, rollout, by, now)?;
            if retried.is_empty() {
                return Err(wrong_state(
                    &r,
                    "only a halted or paused rollout, or one with a blocked or retrying ring, can be resumed",
                ));
            }
            Ok(format!("rollout `{rollout}`:{}", retried_text(&retried)))
        }
        RolloutState::Halted { ring, .. } => {
            let run = store
                .ring_run(rollout, &ring)?
                .ok_or_else(|| ControlError::NoSuchRollout(format!("{rollout}/{ring}")))?;
            let mut new = run.clone();
            new.evidence = None;
            new.evidence_posted = false;
            new.reason = None;
            new.retry = None;
            new.phase_since = now;
            let step = run.current_step().cloned();
            let (phase, what) = match &step {
                Some(s) if s.converged_at.is_some() => {
                    store.clear_samples(rollout, &ring, s.step)?;
                    new.soak_started = Some(now);
                    new.soak_restarted = None;
                    new.next_sample_at = Some(now);
                    new.gate_due.clear();
                    (Phase::Soaking, "its gates run again from zero".to_owned())
                }
                Some(s) if s.merged_at.is_some() => {
                    let timeout = config
                        .and_then(|c| c.ring_set.rings.iter().find(|x| x.name.as_str() == ring))
                        .map_or(DEFAULT_CONVERGE_TIMEOUT, |x| x.converge_timeout);
                    new.converge_deadline = Some(now + timeout);
                    (Phase::Converging, "convergence is checked again".to_owned())
                }
                _ => (
                    Phase::WaitingForWindow,
                    "a new PR opens in its next window".to_owned(),
                ),
            };
            new.phase = phase;
            r.state = RolloutState::Active;
            r.updated_at = now;
            let message = format!("resumed ring `{ring}`: {what}");
            store
                .transition(
                    &run,
                    new,
                    Some(&r),
                    &[ev(
                        now,
                        rollout,
                        Some(&ring),
                        "resumed",
                        message.clone(),
                        by,
                    )],
                )?
                .ok_or_else(|| ControlError::Conflict(rollout.to_owned()))?;
            Ok(format!("rollout `{rollout}`: {message}"))
        }
        _ => Err(wrong_state(
            &r,
            "only a halted or paused rollout can be resumed",
        )),
    }
}

/// The rings of `rollout` blocked by a permanent error, or backing off after transient ones:
/// back to where they were, to be tried in the next pass. Returns the rings.
fn retry_now(
    store: &Store,
    rollout: &str,
    by: &str,
    now: DateTime<Utc>,
) -> Result<Vec<String>, ControlError> {
    let mut retried = Vec::new();
    for run in store.ring_runs(rollout)? {
        let mut new = run.clone();
        let message = match (&run.block, &run.retry) {
            (Some(BlockCause::Permanent { phase, message, .. }), _)
                if run.phase == Phase::Blocked =>
            {
                new.phase = *phase;
                new.phase_since = now;
                new.reason = None;
                format!(
                    "ring `{}` unblocked; trying again (it was: {message})",
                    run.ring
                )
            }
            (_, Some(retry)) => format!(
                "ring `{}` tried again now (it was backing off until {}: {})",
                run.ring,
                retry.at.to_rfc3339(),
                retry.error
            ),
            _ => continue,
        };
        new.block = None;
        new.retry = None;
        store
            .transition(
                &run,
                new,
                None,
                &[ev(now, rollout, Some(&run.ring), "resumed", message, by)],
            )?
            .ok_or_else(|| ControlError::Conflict(rollout.to_owned()))?;
        retried.push(run.ring);
    }
    Ok(retried)
}

fn retried_text(rings: &[String]) -> String {
    if rings.is_empty() {
        String::new()
    } else {
        format!(
            " trying ring{} {} again",
            if rings.len() == 1 { "" } else { "s" },
            rings.join(", ")
        )
    }
}

/// A reason from the CLI or the API, cleaned ([`crate::text::clean_text`]); one that is
/// nothing but control characters or spaces is no reason.
fn reason_of(text: &str) -> Result<String, ControlError> {
    let reason = crate::text::clean_text(text);
    if reason.is_empty() {
        return Err(ControlError::Invalid(
            "a reason is needed (it was empty once control characters were removed); nothing was changed"
                .to_owned(),
        ));
    }
    Ok(reason)
}

/// `ringmaster pause <rollout>`: no new PR and no merge until `resume`; soaks keep measuring.
pub fn pause(
    store: &Store,
    rollout: &str,
    by: &str,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<String, ControlError> {
    // Free text from the CLI or the API: no control characters, capped (issue 16 item 10).
    let by = &crate::text::clean_text(by);
    let reason = &reason_of(reason)?;
    let r = load(store, rollout)?;
    if r.state != RolloutState::Active {
        return Err(wrong_state(&r, "only an active rollout can be paused"));
    }
    let paused = RolloutState::Paused {
        by: by.to_owned(),
        reason: reason.to_owned(),
    };
    set_state(
        store,
        r,
        paused,
        ("paused", format!("paused: {reason}")),
        by,
        now,
    )?;
    Ok(format!("rollout `{rollout}` paused"))
}

/// The name of the rollout that reverts `rollout`.
pub fn revert_name(rollout: &str) -> String {
    format!("{rollout}-revert")
}

/// `ringmaster abort <rollout> --revert`: abort, then a revert rollout restores the versions
/// from before the rollout in every ring that merged a step, newest ring first, one PR per ring
/// through the ring's window and review rules. Kubernetes minors are not reverted: managed
/// control planes (EKS, AKS, GKE) cannot be downgraded; the journal says so.
pub fn abort_and_revert(
    store: &Store,
    rollout: &str,
    by: &str,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<String, ControlError> {
    // Free text from the CLI or the API: no control characters, capped (issue 16 item 10).
    let by = &crate::text::clean_text(by);
    let reason = &reason_of(reason)?;
    let name = revert_name(rollout);
    if store.rollout(&name)?.is_some() {
        return Err(ControlError::WrongState {
            rollout: rollout.to_owned(),
            state: "reverted".to_owned(),
            what: format!("its revert rollout `{name}` exists already"),
        });
    }
    let original = load(store, rollout)?;
    if original.revert_of.is_some() {
        return Err(wrong_state(&original, "a revert is not reverted again"));
    }
    if !original.state.is_finished() {
        abort(store, rollout, by, reason, now)?;
    }
    let mut runs = Vec::new();
    let mut kubernetes_kept = 0usize;
    for run in store.ring_runs(rollout)? {
        // Per cluster and component: what it had before the rollout, and what it has now.
        let mut changes: std::collections::BTreeMap<(String, String), (String, String)> =
            std::collections::BTreeMap::new();
        for step in run.steps.iter().filter(|s| s.merged_at.is_some()) {
            for c in &step.changes {
                changes
                    .entry((c.cluster.clone(), c.component.clone()))
                    .and_modify(|e| e.1 = c.to.clone())
                    .or_insert((c.from.clone(), c.to.clone()));
            }
        }
        if changes.is_empty() {
            continue;
        }
        let mut r = state::RingRun::pending(&name, &run.ring, run.index, now);
        for ((cluster, component), (before, current)) in changes {
            if component == "kubernetes" {
                kubernetes_kept += 1;
                continue;
            }
            if before != current && !before.is_empty() {
                r.planned.push(state::ChangeRecord {
                    cluster,
                    component,
                    from: current,
                    to: before,
                });
            }
        }
        runs.push(r);
    }
    let revert = state::Rollout {
        name: name.clone(),
        order: store
            .rollouts()?
            .iter()
            .map(|r| r.order + 1)
            .max()
            .unwrap_or(0),
        summary: format!("revert of {rollout} ({})", original.summary),
        state: RolloutState::Active,
        created_at: now,
        updated_at: now,
        revert_of: Some(rollout.to_owned()),
    };
    let note = if kubernetes_kept > 0 {
        format!(
            "; {kubernetes_kept} Kubernetes minor change(s) stay (managed control planes cannot be downgraded)"
        )
    } else {
        String::new()
    };
    let rings: Vec<&str> = runs.iter().rev().map(|r| r.ring.as_str()).collect();
    let message = format!(
        "revert of `{rollout}` started: {} ring(s), newest first: {}{note}",
        runs.len(),
        rings.join(", ")
    );
    store.create_rollout(
        &revert,
        &runs,
        &ev(now, &name, None, "started", message.clone(), by),
    )?;
    store.append_events(&[ev(
        now,
        rollout,
        None,
        "reverting",
        format!("reverted by `{name}`"),
        by,
    )])?;
    Ok(message)
}

/// `ringmaster abort <rollout>`: the rollout stops for good; open PRs stay as they are.
pub fn abort(
    store: &Store,
    rollout: &str,
    by: &str,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<String, ControlError> {
    // Free text from the CLI or the API: no control characters, capped (issue 16 item 10).
    let by = &crate::text::clean_text(by);
    let reason = &reason_of(reason)?;
    let r = load(store, rollout)?;
    if r.state.is_finished() {
        return Err(wrong_state(&r, "it is already finished"));
    }
    let aborted = RolloutState::Aborted {
        by: by.to_owned(),
        reason: reason.to_owned(),
    };
    set_state(
        store,
        r,
        aborted,
        ("aborted", format!("aborted: {reason}")),
        by,
        now,
    )?;
    Ok(format!("rollout `{rollout}` aborted"))
}

/// `ringmaster freeze --until T --reason R`: no new PR and no merge anywhere until `until`.
pub fn freeze(
    store: &Store,
    until: DateTime<Utc>,
    reason: &str,
    by: &str,
    now: DateTime<Utc>,
) -> Result<String, ControlError> {
    if until <= now {
        return Err(ControlError::Invalid(format!(
            "--until {} is not in the future (it is {} now); nothing was frozen",
            until.to_rfc3339(),
            now.to_rfc3339()
        )));
    }
    // Free text from the CLI or the API: no control characters, capped (issue 16 item 10).
    let by = &crate::text::clean_text(by);
    let reason = &reason_of(reason)?;
    store.set_global_freeze(Some(&GlobalFreeze {
        until,
        reason: reason.to_owned(),
        by: by.to_owned(),
        since: now,
    }))?;
    let message = format!("global freeze until {}: {reason}", until.to_rfc3339());
    journal_unfinished(store, now, "frozen", &message, by)?;
    Ok(format!("frozen until {}", until.to_rfc3339()))
}

/// The same journal entry in every unfinished rollout's journal (a fleet-wide command).
fn journal_unfinished(
    store: &Store,
    now: DateTime<Utc>,
    kind: &str,
    message: &str,
    by: &str,
) -> Result<(), ControlError> {
    let events: Vec<Event> = store
        .rollouts()?
        .iter()
        .filter(|r| !r.state.is_finished())
        .map(|r| ev(now, &r.name, None, kind, message.to_owned(), by))
        .collect();
    store.append_events(&events)?;
    Ok(())
}

/// `ringmaster unfreeze`.
pub fn unfreeze(store: &Store, by: &str, now: DateTime<Utc>) -> Result<String, ControlError> {
    // Free text from the CLI or the API: no control characters, capped (issue 16 item 10).
    let by = &crate::text::clean_text(by);
    let was = store.global_freeze()?;
    store.set_global_freeze(None)?;
    if was.is_some() {
        journal_unfinished(store, now, "unfrozen", "global freeze lifted", by)?;
    }
    Ok("unfrozen".to_owned())
}

//! The executor's side of [`decide`]'s scheduling and error policy: look at one ring run if it
//! is due, advance it, and when that fails, record what the decision says — a back-off with its
//! retry time, or a block with its cause (journal, PR comment) — so one ring's error stays in
//! its ring and every other rollout and ring goes on in the same pass.

use super::decide::{self, OnError, Schedule};
use super::*;
use state::BlockCause;

/// The key of the (single) blocked comment on a PR.
const BLOCKED_COMMENT: &str = "blocked";

impl<F: Forge, P: ClusterProbe, C: Clock> Daemon<'_, F, P, C> {
    /// One look at ring run `ring` of `rollout` (a rollout's ring at `index`; `None`: a revert
    /// ring). `Ok(true)` when a transition was written (look again); errors of the ring run are
    /// handled here, only a store error comes out.
    pub(super) async fn look(
        &mut self,
        rollout: &str,
        ring: &str,
        index: Option<usize>,
        report: &mut PassReport,
    ) -> Result<bool, DaemonError> {
        let Some(run) = self.store.ring_run(rollout, ring)? else {
            return Ok(false);
        };
        let now = self.clock.now();
        let base = match (&run.block, &self.loaded) {
            (Some(BlockCause::Permanent { .. }), Some(l)) => l.base.to_string(),
            _ => String::new(),
        };
        match decide::schedule(&run, &base, now) {
            Schedule::Wait { until } => {
                if let Some(t) = until {
                    report.due(t);
                }
                return Ok(false);
            }
            Schedule::Unblock { phase } => {
                // Quietly: the ring run goes back and tries; the block stays on it as a marker
                // until a transition clears it, so the same error again is not news.
                let mut new = run.clone();
                new.phase = phase;
                return Ok(self.store.transition(&run, new, None, &[])?.is_some());
            }
            Schedule::Go => {}
        }
        let had_retry = run.retry.is_some();
        let span = tracing::info_span!("ring", rollout = rollout, ring = ring);
        let result = match index {
            Some(i) => self.advance(rollout, i, run, report).instrument(span).await,
            None => {
                self.advance_revert(rollout, run, report)
                    .instrument(span)
                    .await
            }
        };
        self.stepped(result, rollout, ring, had_retry, report).await
    }

    /// Record the outcome of one `advance`: a transition counts; an error backs the ring run
    /// off or blocks it, as [`decide::on_error`] says.
    async fn stepped(
        &mut self,
        result: Result<bool, DaemonError>,
        rollout: &str,
        ring: &str,
        had_retry: bool,
        report: &mut PassReport,
    ) -> Result<bool, DaemonError> {
        let error = match result {
            Ok(moved) => {
                if had_retry {
                    self.recovered(rollout, ring)?;
                }
                if moved {
                    report.transitions += 1;
                }
                return Ok(moved);
            }
            Err(e) => e,
        };
        let Some(run) = self.store.ring_run(rollout, ring)? else {
            return Err(error);
        };
        let now = self.clock.now();
        let base = self.loaded.as_ref().map(|l| l.base.to_string());
        let message = error.to_string();
        let attempt = run.retry.as_ref().map_or(1, |r| r.attempt + 1);
        let decision = decide::on_error(
            &run,
            decide::classify(&error),
            &message,
            base.as_deref(),
            now,
            decide::jitter_of(rollout, ring, attempt),
        );
        match decision {
            OnError::Fail => Err(error),
            OnError::BackOff(backoff) => {
                let at = backoff.at;
                report.warnings.push(format!(
                    "rollout `{rollout}`, ring `{ring}`: {message}; retrying at {}",
                    at.to_rfc3339()
                ));
                report.due(at);
                let mut new = run.clone();
                new.retry = Some(backoff);
                // One journal entry when the trouble starts, not one per retry.
                let events = if had_retry {
                    Vec::new()
                } else {
                    vec![event(
                        now,
                        rollout,
                        Some(ring),
                        "retrying",
                        format!("{message}; retrying at {}", at.to_rfc3339()),
                    )]
                };
                self.store.transition(&run, new, None, &events)?;
                Ok(false)
            }
            OnError::Block(cause) => {
                // Tried again on a new base commit and the same error: nothing new to tell.
                let again = matches!(
                    (&run.block, &cause),
                    (
                        Some(BlockCause::Permanent { message: was, .. }),
                        BlockCause::Permanent { message: now, .. },
                    ) if was == now
                );
                let mut new = run.clone();
                new.phase = Phase::Blocked;
                new.phase_since = now;
                new.reason = Some(message.clone());
                new.block = Some(cause);
                new.retry = None;
                let ev = event(
                    now,
                    rollout,
                    Some(ring),
                    "blocked",
                    format!(
                        "blocked: {message}; `ringmaster resume {rollout}` (or a new commit on the base branch) tries again"
                    ),
                );
                let events = if again { Vec::new() } else { vec![ev] };
                if !self.commit(&run, new, None, &events)? || again {
                    return Ok(false);
                }
                report.warnings.push(format!(
                    "rollout `{rollout}`, ring `{ring}` blocked: {message}"
                ));
                // Tell the ring's open PR, if it has one.
                if let Some(step) = run.current_step().filter(|s| s.merged_at.is_none()) {
                    let body = format!(
                        "### ⛔ ringmaster blocked this ring\n\n{message}\n\nNothing else of ring `{ring}` happens until this is fixed; other rings and rollouts go on. \
                         Fix it on the base branch (ringmaster tries again on the next commit) or run `ringmaster resume {rollout}`.\n"
                    );
                    if let Err(e) = self
                        .forge
                        .comment(step.pr.number, BLOCKED_COMMENT, &body)
                        .await
                    {
                        report.warnings.push(format!(
                            "rollout `{rollout}`, ring `{ring}`: could not comment on {}: {e}",
                            step.pr.url
                        ));
                    }
                }
                Ok(false)
            }
        }
    }

    /// A ring run that backed off did its work: forget the back-off (journal: recovered).
    fn recovered(&self, rollout: &str, ring: &str) -> Result<(), DaemonError> {
        let Some(run) = self.store.ring_run(rollout, ring)? else {
            return Ok(());
        };
        let Some(retry) = &run.retry else {
            return Ok(());
        };
        let now = self.clock.now();
        let ev = event(
            now,
            rollout,
            Some(ring),
            "recovered",
            format!(
                "recovered after {} failed attempt{} since {} (last: {})",
                retry.attempt,
                if retry.attempt == 1 { "" } else { "s" },
                retry.since.to_rfc3339(),
                retry.error
            ),
        );
        let mut new = run.clone();
        new.retry = None;
        self.store.transition(&run, new, None, &[ev])?;
        Ok(())
    }
}

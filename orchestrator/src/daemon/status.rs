//! What `ringmaster status` and `history` show, and the API serves: the ring × rollout matrix
//! from the store, with the next window and a forecast from actual progress (DESIGN §7).

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use policies::window;
use rings::model::Config;
use serde_json::{Value, json};
use state::{Phase, RingRun, Rollout, RolloutState, Store, StoreError};

/// The forecast's assumption, stated with it.
pub const FORECAST_NOTE: &str = "forecast from actual progress, assuming prompt review, convergence within each ring's \
     convergeTimeout, every remaining step through its ring's window and nothing before a global freeze lifts";

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// How many more PR steps ring run `run` of `rollout` takes after the current (or, not started,
/// the first) one — a laggard cluster catches up one minor per step — from the registry as it
/// stands. A step in flight whose changes the registry does not show yet (not merged) is still
/// the registry's first step of its clusters and is not counted twice.
fn steps_after_current(config: &Config, rollout: &str, run: &RingRun) -> usize {
    let (Some(release), Some(index)) = (
        config.release(rollout),
        config
            .ring_set
            .rings
            .iter()
            .position(|r| r.name.as_str() == run.ring),
    ) else {
        return 0;
    };
    let in_flight = matches!(
        run.phase,
        Phase::PrOpen | Phase::Converging | Phase::Soaking
    );
    let current = run.current_step().filter(|_| in_flight);
    if current.is_some_and(|s| s.changes.is_empty()) {
        // A step rebuilt from the forge records no changes: which of the registry's steps it
        // is cannot be told, so nothing more is forecast for it.
        return 0;
    }
    config
        .ring_clusters(index)
        .map(|c| {
            let s = policies::versions::cluster_steps(release, c);
            if s.blocked.is_some() {
                return 0;
            }
            let first_is_current = s.steps.first().is_some_and(|first| {
                current.is_some_and(|step| {
                    first.iter().all(|ch| {
                        step.changes.iter().any(|r| {
                            r.cluster == c.id.as_str()
                                && r.component == ch.component.to_string()
                                && r.to == ch.to.as_str()
                        })
                    })
                })
            });
            if current.is_none() || first_is_current {
                s.steps.len().saturating_sub(1)
            } else {
                s.steps.len()
            }
        })
        .max()
        .unwrap_or(0)
}

/// A ring run's forecast: (earliest PR open, earliest pass), chained from `ready` (when the
/// previous ring passes). Nothing opens or merges before `held_until` (a global freeze), and
/// every further step of the ring goes through its window again.
fn forecast(
    config: Option<&Config>,
    rollout: &str,
    run: &RingRun,
    ready: Option<DateTime<Utc>>,
    held_until: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
    let Some(config) = config else {
        return (None, None);
    };
    let Some(ring) = config
        .ring_set
        .rings
        .iter()
        .find(|r| r.name.as_str() == run.ring)
    else {
        return (None, None);
    };
    let freezes = &config.ring_set.freezes;
    let free = |t: DateTime<Utc>| held_until.map_or(t, |h| t.max(h));
    let step = run.current_step();
    let (open, pass) = match run.phase {
        Phase::Passed => return (step.map(|s| s.opened_at), run.passed_at),
        Phase::Halted => return (step.map(|s| s.opened_at), None),
        Phase::Soaking => (
            step.map(|s| s.opened_at),
            run.soak_restarted
                .or(run.soak_started)
                .map(|s| (s + ring.soak).max(now)),
        ),
        Phase::Converging => (
            step.map(|s| s.opened_at),
            run.converge_deadline.map(|d| d.max(now) + ring.soak),
        ),
        Phase::PrOpen => (
            step.map(|s| s.opened_at),
            // The merge waits for the freeze to lift.
            Some(free(now) + ring.converge_timeout + ring.soak),
        ),
        Phase::Pending | Phase::WaitingForWindow | Phase::Preflight | Phase::Blocked => {
            let Some(ready) = ready else {
                return (None, None);
            };
            let open =
                window::earliest_allowed(ring.window.as_ref(), freezes, free(ready.max(now)));
            (open, open.map(|o| o + ring.converge_timeout + ring.soak))
        }
    };
    let mut pass = pass;
    let more = match run.phase {
        Phase::Passed | Phase::Halted => 0,
        _ => steps_after_current(config, rollout, run),
    };
    for _ in 0..more {
        let Some(t) = pass else { break };
        pass = window::earliest_allowed(ring.window.as_ref(), freezes, free(t))
            .map(|o| o + ring.converge_timeout + ring.soak);
    }
    (open, pass)
}

/// One rollout as JSON: its state and every ring run.
pub fn rollout_json(
    store: &Store,
    config: Option<&Config>,
    rollout: &Rollout,
    now: DateTime<Utc>,
) -> Result<Value, StoreError> {
    let runs = store.ring_runs(&rollout.name)?;
    let held_until = store
        .global_freeze()?
        .filter(|f| f.until > now)
        .map(|f| f.until);
    let mut ready = Some(now);
    let mut rings = Vec::new();
    for run in &runs {
        let (open, pass) = if rollout.state.is_finished() {
            (None, run.passed_at)
        } else {
            forecast(config, &rollout.name, run, ready, held_until, now)
        };
        ready = pass;
        let next_window = config.and_then(|c| {
            let ring = c
                .ring_set
                .rings
                .iter()
                .find(|r| r.name.as_str() == run.ring)?;
            let w = ring.window.as_ref()?;
            window::current_or_next(w, now).map(|i| stamp(i.start))
        });
        let step = run.current_step();
        let gates = match step {
            Some(s)
                if matches!(run.phase, Phase::Soaking | Phase::Halted)
                    && !rollout.state.is_finished() =>
            {
                let n = store.sample_counts(&run.rollout, &run.ring, s.step)?;
                json!({"samples": n.samples, "pass": n.pass,
                       "fail": n.fail, "inconclusive": n.inconclusive})
            }
            _ => Value::Null,
        };
        rings.push(json!({
            "ring": run.ring,
            "phase": run.phase.as_str(),
            "since": stamp(run.phase_since),
            "reason": run.reason,
            "step": run.step_number(),
            "members": run.members,
            "clusters": run.members.iter().map(|id| json!({
                "cluster": id,
                "fields": config.and_then(|c| {
                    let all = &c.fleet.clusters;
                    all.binary_search_by(|x| x.id.as_str().cmp(id.as_str())).ok().map(|i| &all[i].extra)
                }),
            })).collect::<Vec<_>>(),
            "leftOut": run.left_out.iter().map(|(c, w)| json!({"cluster": c, "reason": w})).collect::<Vec<_>>(),
            "pr": step.map(|s| json!({"number": s.pr.number, "url": s.pr.url, "branch": s.pr.branch, "head": s.pr.head})),
            "steps": run.steps.iter().map(|s| json!({
                "step": s.step, "pr": s.pr.url, "clusters": s.clusters,
                "openedAt": stamp(s.opened_at), "mergedAt": s.merged_at.map(stamp),
                "convergedAt": s.converged_at.map(stamp), "passedAt": s.passed_at.map(stamp),
            })).collect::<Vec<_>>(),
            "soakStarted": run.soak_started.map(stamp),
            "soakRestarted": run.soak_restarted.map(stamp),
            "block": run.block,
            "retry": run.retry.as_ref().map(|b| json!({
                "attempt": b.attempt, "at": stamp(b.at), "error": b.error, "since": stamp(b.since),
            })),
            "nextWindow": next_window,
            "gates": gates,
            "forecast": {"prOpen": open.map(stamp), "passedBy": pass.map(stamp)},
        }));
    }
    let (state_reason, state_ring) = match &rollout.state {
        RolloutState::Halted { ring, reason } => (Some(reason.clone()), Some(ring.clone())),
        RolloutState::Paused { by, reason } | RolloutState::Aborted { by, reason } => {
            (Some(format!("{reason} (by {by})")), None)
        }
        _ => (None, None),
    };
    Ok(json!({
        "name": rollout.name,
        "summary": rollout.summary,
        "state": rollout.state.word(),
        "reason": state_reason,
        "haltedRing": state_ring,
        "createdAt": stamp(rollout.created_at),
        "updatedAt": stamp(rollout.updated_at),
        "rings": rings,
    }))
}

/// Every rollout, plus the global freeze.
pub fn status_json(
    store: &Store,
    config: Option<&Config>,
    now: DateTime<Utc>,
) -> Result<Value, StoreError> {
    let rollouts = store
        .rollouts()?
        .iter()
        .map(|r| rollout_json(store, config, r, now))
        .collect::<Result<Vec<_>, _>>()?;
    let freeze = store.global_freeze()?.filter(|f| f.until > now).map(|f| {
        json!({"until": stamp(f.until), "reason": f.reason, "by": f.by, "since": stamp(f.since)})
    });
    Ok(json!({
        "at": stamp(now),
        "freeze": freeze,
        "rollouts": rollouts,
        "forecastNote": FORECAST_NOTE,
    }))
}

fn cell(ring: &Value) -> String {
    let phase = ring["phase"].as_str().unwrap_or("?");
    let mut s = match phase {
        "passed" => "✔ passed".to_owned(),
        "halted" => "✘ HALTED".to_owned(),
        "blocked" => "⛔ blocked".to_owned(),
        "prOpen" => format!("PR {}", ring["pr"]["url"].as_str().unwrap_or("?")),
        "soaking" => {
            let g = &ring["gates"];
            format!(
                "soaking ({} samples, {} failed)",
                g["samples"].as_u64().unwrap_or(0),
                g["fail"].as_u64().unwrap_or(0)
            )
        }
        other => other.to_owned(),
    };
    if let Some(p) = ring["forecast"]["passedBy"].as_str()
        && phase != "passed"
    {
        s.push_str(&format!(" → passes ~{p}"));
    }
    s
}

/// Stored text as one line of a terminal table: whatever wrote it (a person through the API, an
/// error quoting a file from Git), no control character reaches the terminal.
fn shown(v: &Value) -> String {
    crate::text::clean(v.as_str().unwrap_or(""), 2_000)
}

/// The status as a table for people.
pub fn status_table(status: &Value) -> String {
    let mut out = String::new();
    if let Some(f) = status["freeze"].as_object() {
        out.push_str(&format!(
            "GLOBAL FREEZE until {} by {}: {}\n\n",
            f["until"].as_str().unwrap_or("?"),
            shown(&f["by"]),
            shown(&f["reason"])
        ));
    }
    let rollouts = status["rollouts"].as_array().cloned().unwrap_or_default();
    if rollouts.is_empty() {
        out.push_str(
            "no rollouts yet (a release file on the config starts one at the next reconcile)\n",
        );
        return out;
    }
    for r in &rollouts {
        out.push_str(&format!(
            "{} — {} [{}]{}\n",
            r["name"].as_str().unwrap_or("?"),
            r["summary"].as_str().unwrap_or(""),
            r["state"].as_str().unwrap_or("?"),
            r["reason"]
                .as_str()
                .map(|x| format!(": {}", shown(&Value::from(x))))
                .unwrap_or_default()
        ));
        for ring in r["rings"].as_array().into_iter().flatten() {
            out.push_str(&format!(
                "  {:<16} {}\n",
                ring["ring"].as_str().unwrap_or("?"),
                cell(ring)
            ));
            if let Some(reason) = ring["reason"].as_str()
                && !reason.is_empty()
            {
                out.push_str(&format!("  {:<16}   {}\n", "", shown(&Value::from(reason))));
            }
            if let Some(at) = ring["retry"]["at"].as_str() {
                out.push_str(&format!(
                    "  {:<16}   retrying at {at} (attempt {}): {}\n",
                    "",
                    ring["retry"]["attempt"].as_u64().unwrap_or(0),
                    shown(&ring["retry"]["error"])
                ));
            }
            if ring["block"]["kind"].as_str() == Some("permanent")
                && ring["phase"].as_str() == Some("blocked")
            {
                out.push_str(&format!(
                    "  {:<16}   `ringmaster resume {}` (or a new base commit) tries again\n",
                    "",
                    r["name"].as_str().unwrap_or("?")
                ));
            }
            if let Some(w) = ring["nextWindow"].as_str()
                && matches!(
                    ring["phase"].as_str(),
                    Some("pending" | "waitingForWindow" | "blocked")
                )
            {
                out.push_str(&format!("  {:<16}   next window {w}\n", ""));
            }
        }
        out.push('\n');
    }
    out.push_str(&format!("({FORECAST_NOTE})\n"));
    out
}

/// `ringmaster history <rollout>` as JSON.
pub fn history_json(store: &Store, rollout: &str) -> Result<Value, StoreError> {
    let events = store.journal(rollout)?;
    Ok(Value::Array(
        events
            .iter()
            .map(|e| {
                json!({"at": stamp(e.at), "ring": e.ring, "kind": e.kind, "message": e.message, "actor": e.actor})
            })
            .collect(),
    ))
}

/// `ringmaster history <rollout>` for people.
pub fn history_table(history: &Value) -> String {
    let mut out = String::new();
    for e in history.as_array().into_iter().flatten() {
        out.push_str(&format!(
            "{}  {:<14} {:<16} {}{}\n",
            e["at"].as_str().unwrap_or("?"),
            e["ring"].as_str().unwrap_or("-"),
            e["kind"].as_str().unwrap_or("?"),
            e["message"].as_str().unwrap_or(""),
            match e["actor"].as_str() {
                Some("ringmaster") | None => String::new(),
                Some(a) => format!(" (by {a})"),
            }
        ));
    }
    out
}

/// How long ago, for people.
pub fn ago(d: TimeDelta) -> String {
    rings::duration::format_duration(d)
}

//! `ringmaster plan`: what each release would do to each ring's clusters, and when.
//!
//! The plan is a pure function of the loaded configuration and an evaluation instant. Its JSON
//! form is a stable contract (see the README); the table form is for people.

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use chrono_tz::Tz;
use rings::model::{Config, Ring};
use serde::Serialize;

use crate::versions::{Step, cluster_steps};
use crate::window::{Interval, current_or_next, earliest_allowed};

/// The whole plan.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// The evaluation instant, RFC 3339 in UTC.
    pub generated_at: String,
    /// Releases in file order.
    pub releases: Vec<ReleasePlan>,
    /// The evaluation instant.
    #[serde(skip)]
    pub at: DateTime<Utc>,
}

/// One release across the rings.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReleasePlan {
    /// Release name.
    pub name: String,
    /// Rings in ring order.
    pub rings: Vec<RingPlan>,
    /// `Kubernetes 1.33`, `coredns 1.11.4, vpc-cni 1.19.2`.
    #[serde(skip)]
    pub summary: String,
}

/// One ring of a release.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RingPlan {
    /// Ring name.
    pub name: String,
    /// 1-based position.
    pub position: usize,
    /// The window open at the evaluation instant, else the next one; null without a window.
    pub next_window: Option<WindowJson>,
    /// Earliest PR open and pass instants.
    pub forecast: Forecast,
    /// Clusters sorted by id.
    pub clusters: Vec<ClusterPlan>,
    /// Number of ring steps (PRs) this release needs in this ring.
    #[serde(skip)]
    pub steps: usize,
    /// Why the forecast is null, or what it assumed.
    #[serde(skip)]
    pub forecast_note: Option<String>,
    /// Human description of the window (`0 9 * * MON-THU, 6h, Europe/Berlin`).
    #[serde(skip)]
    pub window_desc: Option<String>,
    /// Soak of the ring.
    #[serde(skip)]
    pub soak: TimeDelta,
}

/// An open or upcoming window.
#[derive(Debug, Clone, Serialize)]
pub struct WindowJson {
    /// Start, with the ring timezone's offset.
    pub start: String,
    /// End, with the ring timezone's offset.
    pub end: String,
}

/// Earliest instants, with the ring timezone's offset; null when they cannot be computed.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Forecast {
    /// When the ring's first PR can open.
    pub pr_open: Option<String>,
    /// When the ring can pass (last step converged and soaked).
    pub passed_by: Option<String>,
}

/// One cluster of a ring.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterPlan {
    /// Cluster id.
    pub cluster_id: String,
    /// The registry entry's own scalar fields (`upgradeChannel`, `purpose`, …), as written.
    pub fields: rings::model::ExtraFields,
    /// PR steps; `[]` at target.
    pub steps: Vec<Step>,
    /// Why the cluster will not move, or null.
    pub blocked: Option<String>,
}

/// What the forecast assumes; shown with the table.
pub const FORECAST_ASSUMPTION: &str = "forecast assumes each PR is approved and merged as soon as it may open, \
     and that clusters take the ring's full convergeTimeout to converge";

fn stamp(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz)
        .to_rfc3339_opts(SecondsFormat::Secs, false)
}

fn ring_tz(ring: &Ring) -> Tz {
    ring.window.as_ref().map_or(Tz::UTC, |w| w.timezone)
}

/// Build the plan at instant `at`, for every release or the one named.
pub fn plan(config: &Config, at: DateTime<Utc>, only: Option<&str>) -> Plan {
    plan_with(config, at, only, None)
}

/// [`plan`], with a global freeze (`ringmaster freeze`, from the store) that no PR opens or
/// merges in, as the ring file's freezes.
pub fn plan_with(
    config: &Config,
    at: DateTime<Utc>,
    only: Option<&str>,
    global: Option<&rings::model::Freeze>,
) -> Plan {
    let mut all_freezes;
    let freezes = match global {
        None => &config.ring_set.freezes,
        Some(g) => {
            all_freezes = config.ring_set.freezes.clone();
            all_freezes.push(g.clone());
            &all_freezes
        }
    };
    let releases = config
        .releases
        .iter()
        .filter(|r| only.is_none_or(|name| r.name.as_str() == name))
        .map(|release| {
            // Each release is forecast as if its rollout started alone at `at`.
            let mut ready: Result<DateTime<Utc>, String> = Ok(at);
            let rings = config
                .ring_set
                .rings
                .iter()
                .enumerate()
                .map(|(ri, ring)| {
                    let tz = ring_tz(ring);
                    let mut ring_blocker = None;
                    let clusters: Vec<ClusterPlan> = config
                        .ring_clusters(ri)
                        .map(|c| {
                            let s = cluster_steps(release, c);
                            if let Some(b) = s.blocked.as_ref().filter(|b| b.blocks_ring) {
                                ring_blocker
                                    .get_or_insert_with(|| format!("{}: {}", c.id, b.reason));
                            }
                            ClusterPlan {
                                cluster_id: c.id.to_string(),
                                fields: c.extra.clone(),
                                steps: s.steps,
                                blocked: s.blocked.map(|b| b.reason),
                            }
                        })
                        .collect();
                    let steps = clusters
                        .iter()
                        .filter(|c| c.blocked.is_none())
                        .map(|c| c.steps.len())
                        .max()
                        .unwrap_or(0);
                    let next_window = ring
                        .window
                        .as_ref()
                        .and_then(|w| current_or_next(w, at))
                        .map(|Interval { start, end }| WindowJson {
                            start: stamp(start, tz),
                            end: stamp(end, tz),
                        });
                    let (forecast, note) =
                        forecast(ring, steps, ring_blocker, &mut ready, freezes, tz);
                    RingPlan {
                        name: ring.name.to_string(),
                        position: ring.position,
                        next_window,
                        forecast,
                        clusters,
                        steps,
                        forecast_note: note,
                        window_desc: ring.window.as_ref().map(|w| {
                            format!(
                                "`{}` for {} ({})",
                                w.schedule.source(),
                                rings::duration::format_duration(w.duration),
                                w.timezone.name()
                            )
                        }),
                        soak: ring.soak,
                    }
                })
                .collect();
            ReleasePlan {
                name: release.name.to_string(),
                rings,
                summary: release.summary(),
            }
        })
        .collect();
    Plan {
        generated_at: at.to_rfc3339_opts(SecondsFormat::Secs, true),
        releases,
        at,
    }
}

/// Chain one ring's steps after `ready` (when the previous ring passed, or the start).
fn forecast(
    ring: &Ring,
    steps: usize,
    blocker: Option<String>,
    ready: &mut Result<DateTime<Utc>, String>,
    freezes: &[rings::model::Freeze],
    tz: Tz,
) -> (Forecast, Option<String>) {
    let none = |why: String| {
        (
            Forecast {
                pr_open: None,
                passed_by: None,
            },
            Some(why),
        )
    };
    let start = match ready {
        Ok(t) => *t,
        Err(why) => return none(why.clone()),
    };
    if let Some(b) = blocker {
        *ready = Err(format!("waits for ring `{}`, which is blocked", ring.name));
        return none(format!("blocked: {b}"));
    }
    if steps == 0 {
        return (
            Forecast {
                pr_open: None,
                passed_by: Some(stamp(start, tz)),
            },
            Some("nothing to change in this ring".to_owned()),
        );
    }
    let mut t = start;
    let mut first_open = None;
    for _ in 0..steps {
        let Some(open) = earliest_allowed(ring.window.as_ref(), freezes, t) else {
            let why = format!(
                "no window of ring `{}` opens outside the freezes within {} days",
                ring.name,
                crate::window::SEARCH_HORIZON_DAYS
            );
            *ready = Err(format!(
                "waits for ring `{}`, whose window never opens",
                ring.name
            ));
            return none(why);
        };
        first_open.get_or_insert(open);
        t = open + ring.converge_timeout + ring.soak;
    }
    *ready = Ok(t);
    (
        Forecast {
            pr_open: first_open.map(|o| stamp(o, tz)),
            passed_by: Some(stamp(t, tz)),
        },
        None,
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;

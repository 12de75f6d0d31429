//! Gate samples and the soak verdict (DESIGN §6), pure: no clock, no I/O.
//!
//! A ring passes when, after convergence, every gate held on every cluster for the whole soak:
//! `failureLimit` consecutive failing samples of one gate on one cluster halt the ring, and so do
//! `inconclusiveLimit` consecutive inconclusive samples (an unreachable cluster or a query error
//! is never a pass). "For the whole soak" means the soak window is covered by passing samples:
//! no stretch of it longer than two sampling intervals without one.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use rings::model::{Gate, GateCheck};
use rings::{ClusterId, GateName};

/// How many sampling intervals may pass without a passing sample before the soak window counts
/// as uncovered (one missed or inconclusive sample is tolerated; more makes the soak longer).
pub const MAX_GAP_INTERVALS: i32 = 2;

/// The result of one evaluation of one gate on one cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The check held.
    Pass,
    /// The check did not hold.
    Fail,
    /// The check could not be evaluated (unreachable, query error, no data): never a pass.
    Inconclusive,
}

/// One stored sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// When it was taken.
    pub at: DateTime<Utc>,
    /// Which gate.
    pub gate: GateName,
    /// On which cluster.
    pub cluster: ClusterId,
    /// Pass, fail or inconclusive.
    pub outcome: Outcome,
    /// The observed number, when the gate has one (a ratio, an error rate).
    pub value: Option<f64>,
    /// What was observed, for people (`6/6 Ready`, `0.004`, `timeout after 30s`).
    pub observed: String,
}

/// Where a soak stands.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Still soaking; the ring may pass at `passes_at` if every gate keeps holding.
    Soaking {
        /// The earliest instant the soak can end.
        passes_at: DateTime<Utc>,
        /// Pairs not yet covered by passing samples, if the soak time is over.
        waiting_for: Vec<String>,
    },
    /// Every gate held on every cluster for the whole soak.
    Passed,
    /// A gate failed or stayed inconclusive too long: the ring halts.
    Halted {
        /// The gate.
        gate: GateName,
        /// The cluster.
        cluster: ClusterId,
        /// What happened, for the halt comment.
        reason: String,
    },
}

/// Evaluate a soak that started at `start` (convergence) and must last `soak`, for `gates` on
/// `clusters`, from `samples` (any order; samples outside `[start, now]` or of other gates or
/// clusters are ignored).
pub fn evaluate(
    start: DateTime<Utc>,
    soak: TimeDelta,
    gates: &[Gate],
    clusters: &[ClusterId],
    samples: &[Sample],
    now: DateTime<Utc>,
) -> Verdict {
    let end = start + soak;
    let mut waiting = Vec::new();
    for gate in gates {
        for cluster in clusters {
            let mut mine: Vec<&Sample> = samples
                .iter()
                .filter(|s| {
                    s.gate == gate.name && &s.cluster == cluster && s.at >= start && s.at <= now
                })
                .collect();
            mine.sort_by_key(|s| s.at);
            let (mut fails, mut inconclusive) = (0u32, 0u32);
            for s in &mine {
                match s.outcome {
                    Outcome::Pass => {
                        fails = 0;
                        inconclusive = 0;
                    }
                    Outcome::Fail => {
                        fails += 1;
                        inconclusive = 0;
                        if fails >= gate.failure_limit {
                            return Verdict::Halted {
                                gate: gate.name.clone(),
                                cluster: cluster.clone(),
                                reason: format!(
                                    "gate `{}` failed {fails} consecutive sample{} on {cluster} (limit {}); last observed {}",
                                    gate.name,
                                    if fails == 1 { "" } else { "s" },
                                    gate.failure_limit,
                                    s.observed
                                ),
                            };
                        }
                    }
                    Outcome::Inconclusive => {
                        inconclusive += 1;
                        if inconclusive >= gate.inconclusive_limit {
                            return Verdict::Halted {
                                gate: gate.name.clone(),
                                cluster: cluster.clone(),
                                reason: format!(
                                    "gate `{}` could not be evaluated on {cluster} for {inconclusive} consecutive samples (limit {}); last: {}",
                                    gate.name, gate.inconclusive_limit, s.observed
                                ),
                            };
                        }
                    }
                }
            }
            if now >= end && !covered(start, end, gate.interval, &mine) {
                waiting.push(format!("{} on {cluster}", gate.name));
            }
        }
    }
    if now >= end && waiting.is_empty() {
        Verdict::Passed
    } else {
        Verdict::Soaking {
            passes_at: end.max(now),
            waiting_for: waiting,
        }
    }
}

/// Whether passing samples cover `[start, end]` with no gap longer than `MAX_GAP_INTERVALS`
/// intervals, the last sample being a pass.
fn covered(
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    interval: TimeDelta,
    samples: &[&Sample],
) -> bool {
    let max_gap = interval * MAX_GAP_INTERVALS;
    let mut last = start;
    for s in samples.iter().filter(|s| s.at <= end + interval) {
        if s.outcome == Outcome::Pass {
            if s.at - last > max_gap {
                return false;
            }
            last = s.at;
        }
    }
    let ends_on_pass = samples
        .iter()
        .rfind(|s| s.at <= end + interval)
        .is_some_and(|s| s.outcome == Outcome::Pass);
    ends_on_pass && end - last <= max_gap
}

/// What a PR shows about a ring's soak: per gate, samples, failures, inconclusive ones and the
/// worst observed value per cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct GateSummary {
    /// Gate.
    pub gate: GateName,
    /// Samples taken.
    pub samples: u32,
    /// Failing samples.
    pub failures: u32,
    /// Inconclusive samples.
    pub inconclusive: u32,
    /// Worst observed value per cluster, for people.
    pub worst: Vec<(ClusterId, String)>,
}

/// Summarise samples for the PR evidence. "Worst" is the highest value for gates with a maximum
/// (error ratios), the lowest for gates with a minimum (ready ratios), and otherwise the last
/// non-passing observation (else the last one).
pub fn summarise(gates: &[Gate], samples: &[Sample]) -> Vec<GateSummary> {
    gates
        .iter()
        .map(|gate| {
            let mine: Vec<&Sample> = samples.iter().filter(|s| s.gate == gate.name).collect();
            let higher_is_worse = match &gate.check {
                GateCheck::Prometheus(p) => {
                    p.max.is_some() || p.max_increase.is_some() || p.max_ratio.is_some()
                }
                _ => false,
            };
            let lower_is_worse = match &gate.check {
                GateCheck::Prometheus(p) => p.min.is_some() && p.max.is_none(),
                GateCheck::Kube(k) => k.nodes_ready.is_some(),
                _ => false,
            };
            let mut per_cluster: BTreeMap<&ClusterId, Vec<&Sample>> = BTreeMap::new();
            for s in &mine {
                per_cluster.entry(&s.cluster).or_default().push(s);
            }
            let worst = per_cluster
                .into_iter()
                .filter_map(|(cluster, mut list)| {
                    list.sort_by_key(|s| s.at);
                    let numeric = |better: fn(f64, f64) -> bool| {
                        list.iter()
                            .filter(|s| s.value.is_some())
                            .fold(None::<&Sample>, |acc, s| match (acc, s.value) {
                                (Some(a), Some(v)) if better(a.value.unwrap_or(v), v) => Some(a),
                                (_, _) => Some(s),
                            })
                    };
                    let pick = if higher_is_worse {
                        numeric(|kept, new| kept >= new)
                    } else if lower_is_worse {
                        numeric(|kept, new| kept <= new)
                    } else {
                        None
                    };
                    let pick = pick
                        .or_else(|| {
                            list.iter()
                                .rev()
                                .find(|s| s.outcome != Outcome::Pass)
                                .copied()
                        })
                        .or_else(|| list.last().copied());
                    pick.map(|s| (cluster.clone(), s.observed.clone()))
                })
                .collect();
            let count = |o: Outcome| {
                u32::try_from(mine.iter().filter(|s| s.outcome == o).count()).unwrap_or(u32::MAX)
            };
            GateSummary {
                gate: gate.name.clone(),
                samples: u32::try_from(mine.len()).unwrap_or(u32::MAX),
                failures: count(Outcome::Fail),
                inconclusive: count(Outcome::Inconclusive),
                worst,
            }
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;

//! Gate samples and the soak verdict (DESIGN §6), pure: no clock, no I/O.
//!
//! A ring passes when, after convergence, every gate held on every cluster for the whole soak:
//! `failureLimit` consecutive failing samples of one gate on one cluster halt the ring, and so do
//! `inconclusiveLimit` consecutive inconclusive samples (an unreachable cluster or a query error
//! is never a pass). "For the whole soak" means the soak window is covered by passing samples:
//! no stretch of it longer than two sampling intervals without one. A longer stretch (the daemon
//! was down, a registry that did not load stopped sampling, a gate was inconclusive for a while)
//! restarts the soak clock at the passing sample that ends it: the ring then soaks its full
//! duration again from there ([`Restart`]), so a soak always ends in a pass or a halt.

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
        /// The last time a sampling gap restarted the soak clock.
        restarted: Option<Restart>,
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
/// clusters are ignored). The same rules as a [`Tally`] fed the samples in time order.
pub fn evaluate(
    start: DateTime<Utc>,
    soak: TimeDelta,
    gates: &[Gate],
    clusters: &[ClusterId],
    samples: &[Sample],
    now: DateTime<Utc>,
) -> Verdict {
    let mut mine: Vec<&Sample> = samples.iter().filter(|s| s.at <= now).collect();
    mine.sort_by_key(|s| s.at);
    let mut tally = Tally::new(start, soak);
    for s in mine {
        if let Some(gate) = gates.iter().find(|g| g.name == s.gate) {
            tally.add(gate, s);
        }
    }
    tally.verdict(gates, clusters, now)
}

/// A sampling gap that restarted the soak clock: the passing sample at `at` of `gate` on
/// `cluster` came `after` the previous one (or the soak's start), more than
/// [`MAX_GAP_INTERVALS`] intervals; the soak now ends at `at` plus its duration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restart {
    /// The new start of the soak clock.
    pub at: DateTime<Utc>,
    /// The gate whose samples had the gap.
    pub gate: GateName,
    /// On which cluster.
    pub cluster: ClusterId,
    /// How long the gap was.
    pub after: TimeDelta,
}

impl std::fmt::Display for Restart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "no passing sample of `{}` on {} for {}; soak clock restarted at {}",
            self.gate,
            self.cluster,
            rings::duration::format_duration(self.after),
            self.at.to_rfc3339()
        )
    }
}

/// A soak folded sample by sample, so that a daemon keeps it between passes and reads only the
/// samples taken since (a 48 h soak of 1-minute gates is tens of thousands of samples). Feed
/// samples in time order with [`Tally::add`]; [`Tally::verdict`] is then what [`evaluate`]
/// says about all of them.
#[derive(Debug, Clone, PartialEq)]
pub struct Tally {
    start: DateTime<Utc>,
    soak: TimeDelta,
    pairs: BTreeMap<(GateName, ClusterId), PairTally>,
    restart: Option<Restart>,
}

/// One gate on one cluster, so far.
#[derive(Debug, Clone, Default, PartialEq)]
struct PairTally {
    fails: u32,
    inconclusive: u32,
    /// The first limit reached (the halt), with its reason.
    halted: Option<String>,
    /// The last passing sample inside the coverage window (`None`: none yet, count from start).
    last_pass: Option<DateTime<Utc>>,
    /// The outcome of the last sample inside the coverage window.
    last_outcome: Option<Outcome>,
}

impl Tally {
    /// An empty tally of a soak that started at `start` and lasts `soak`.
    pub fn new(start: DateTime<Utc>, soak: TimeDelta) -> Tally {
        Tally {
            start,
            soak,
            pairs: BTreeMap::new(),
            restart: None,
        }
    }

    /// Where the soak clock runs from: the start, or the last gap's restart.
    pub fn clock_start(&self) -> DateTime<Utc> {
        self.restart.as_ref().map_or(self.start, |r| r.at)
    }

    /// The last restart of the soak clock, if a gap caused one.
    pub fn restarted(&self) -> Option<&Restart> {
        self.restart.as_ref()
    }

    /// When the soak started.
    pub fn start(&self) -> DateTime<Utc> {
        self.start
    }

    /// How long it lasts.
    pub fn soak(&self) -> TimeDelta {
        self.soak
    }

    /// Fold one sample of `gate` (the caller matched it by name), later than or as late as
    /// every sample added before. Samples before the start are ignored.
    pub fn add(&mut self, gate: &Gate, s: &Sample) {
        if s.at < self.start {
            return;
        }
        let clock = self.clock_start();
        let pair = self
            .pairs
            .entry((s.gate.clone(), s.cluster.clone()))
            .or_default();
        let cluster = &s.cluster;
        match s.outcome {
            Outcome::Pass => {
                pair.fails = 0;
                pair.inconclusive = 0;
            }
            Outcome::Fail => {
                pair.fails += 1;
                pair.inconclusive = 0;
                if pair.fails >= gate.failure_limit && pair.halted.is_none() {
                    let fails = pair.fails;
                    pair.halted = Some(format!(
                        "gate `{}` failed {fails} consecutive sample{} on {cluster} (limit {}); last observed {}",
                        gate.name,
                        if fails == 1 { "" } else { "s" },
                        gate.failure_limit,
                        s.observed
                    ));
                }
            }
            Outcome::Inconclusive => {
                pair.inconclusive += 1;
                if pair.inconclusive >= gate.inconclusive_limit && pair.halted.is_none() {
                    pair.halted = Some(format!(
                        "gate `{}` could not be evaluated on {cluster} for {} consecutive samples (limit {}); last: {}",
                        gate.name, pair.inconclusive, gate.inconclusive_limit, s.observed
                    ));
                }
            }
        }
        // A pass after too long without one restarts the soak clock (every pair covers the
        // soak again from here).
        if s.outcome == Outcome::Pass {
            let last = pair.last_pass.unwrap_or(self.start).max(clock);
            if s.at - last > gate.interval * MAX_GAP_INTERVALS {
                self.restart = Some(Restart {
                    at: s.at,
                    gate: s.gate.clone(),
                    cluster: s.cluster.clone(),
                    after: s.at - last,
                });
            }
        }
        // Coverage counts the samples up to one interval past the end.
        let end = self.restart.as_ref().map_or(self.start, |r| r.at) + self.soak;
        if s.at <= end + gate.interval {
            if s.outcome == Outcome::Pass {
                pair.last_pass = Some(s.at);
            }
            pair.last_outcome = Some(s.outcome);
        }
    }

    /// Where the soak stands `now` for `gates` on `clusters`.
    pub fn verdict(&self, gates: &[Gate], clusters: &[ClusterId], now: DateTime<Utc>) -> Verdict {
        let clock = self.clock_start();
        let end = clock + self.soak;
        let none = PairTally::default();
        let mut waiting = Vec::new();
        for gate in gates {
            for cluster in clusters {
                let pair = self
                    .pairs
                    .get(&(gate.name.clone(), cluster.clone()))
                    .unwrap_or(&none);
                if let Some(reason) = &pair.halted {
                    return Verdict::Halted {
                        gate: gate.name.clone(),
                        cluster: cluster.clone(),
                        reason: reason.clone(),
                    };
                }
                let covered = pair.last_outcome == Some(Outcome::Pass)
                    && pair.last_pass.is_some_and(|l| {
                        l >= clock && end - l <= gate.interval * MAX_GAP_INTERVALS
                    });
                if now >= end && !covered {
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
                restarted: self.restart.clone(),
            }
        }
    }
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

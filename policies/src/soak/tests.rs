use chrono::TimeZone;
use rings::model::{KubeGate, NodesReady, PrometheusGate};

use super::*;

fn t(min: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 0).unwrap() + TimeDelta::minutes(min)
}

fn prom_gate(failure_limit: u32) -> Gate {
    Gate {
        name: GateName::new("error-ratio").unwrap(),
        check: GateCheck::Prometheus(PrometheusGate {
            url: "http://127.0.0.1:9090".into(),
            query: "q".into(),
            min: None,
            max: Some(0.01),
            baseline: None,
            max_increase: None,
            max_ratio: None,
        }),
        interval: TimeDelta::minutes(1),
        failure_limit,
        inconclusive_limit: 3,
    }
}

fn nodes_gate() -> Gate {
    Gate {
        name: GateName::new("nodes-ready").unwrap(),
        check: GateCheck::Kube(KubeGate {
            nodes_ready: Some(NodesReady { min_ratio: 1.0 }),
            ..KubeGate::default()
        }),
        interval: TimeDelta::minutes(1),
        failure_limit: 1,
        inconclusive_limit: 3,
    }
}

fn c(id: &str) -> ClusterId {
    ClusterId::new(id).unwrap()
}

fn sample(gate: &Gate, cluster: &str, at: i64, outcome: Outcome, value: f64) -> Sample {
    Sample {
        at: t(at),
        gate: gate.name.clone(),
        cluster: c(cluster),
        outcome,
        value: Some(value),
        observed: format!("{value}"),
    }
}

/// Passing samples every minute from `from` to `to` inclusive.
fn passing(gate: &Gate, cluster: &str, from: i64, to: i64) -> Vec<Sample> {
    (from..=to)
        .map(|m| sample(gate, cluster, m, Outcome::Pass, 0.001))
        .collect()
}

#[test]
fn a_soak_passes_only_when_it_is_over_and_covered() {
    let g = prom_gate(3);
    let clusters = [c("a"), c("b")];
    let mut samples = passing(&g, "a", 1, 30);
    samples.extend(passing(&g, "b", 1, 30));
    let soak = TimeDelta::minutes(30);
    assert!(matches!(
        evaluate(
            t(0),
            soak,
            std::slice::from_ref(&g),
            &clusters,
            &samples,
            t(20)
        ),
        Verdict::Soaking { .. }
    ));
    assert_eq!(
        evaluate(
            t(0),
            soak,
            std::slice::from_ref(&g),
            &clusters,
            &samples,
            t(30)
        ),
        Verdict::Passed
    );
    // Cluster b was never sampled after minute 10: the soak is not covered for it.
    let partial: Vec<Sample> = samples
        .iter()
        .filter(|s| s.cluster == c("a") || s.at <= t(10))
        .cloned()
        .collect();
    match evaluate(t(0), soak, &[g], &clusters, &partial, t(31)) {
        Verdict::Soaking { waiting_for, .. } => assert_eq!(waiting_for, ["error-ratio on b"]),
        other => panic!("{other:?}"),
    }
}

#[test]
fn consecutive_failures_up_to_the_limit_halt() {
    let g = prom_gate(3);
    let clusters = [c("a")];
    let mut samples = passing(&g, "a", 1, 5);
    samples.push(sample(&g, "a", 6, Outcome::Fail, 0.02));
    samples.push(sample(&g, "a", 7, Outcome::Fail, 0.03));
    samples.push(sample(&g, "a", 8, Outcome::Pass, 0.005));
    samples.push(sample(&g, "a", 9, Outcome::Fail, 0.04));
    samples.push(sample(&g, "a", 10, Outcome::Fail, 0.05));
    // Two, a pass, two: never three in a row.
    assert!(matches!(
        evaluate(
            t(0),
            TimeDelta::minutes(30),
            std::slice::from_ref(&g),
            &clusters,
            &samples,
            t(10)
        ),
        Verdict::Soaking { .. }
    ));
    samples.push(sample(&g, "a", 11, Outcome::Fail, 0.06));
    match evaluate(
        t(0),
        TimeDelta::minutes(30),
        &[g],
        &clusters,
        &samples,
        t(11),
    ) {
        Verdict::Halted {
            gate,
            cluster,
            reason,
        } => {
            assert_eq!((gate.as_str(), cluster.as_str()), ("error-ratio", "a"));
            assert!(
                reason.contains("3 consecutive samples") && reason.contains("0.06"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn inconclusive_is_never_a_pass() {
    let g = nodes_gate();
    let clusters = [c("a")];
    let mut samples = passing(&g, "a", 1, 10);
    for m in 11..=30 {
        // Alternating keeps the inconclusive streak below the limit but leaves the soak uncovered.
        let outcome = if m % 3 == 0 {
            Outcome::Pass
        } else {
            Outcome::Inconclusive
        };
        samples.push(sample(&g, "a", m, outcome, 1.0));
    }
    assert!(matches!(
        evaluate(
            t(0),
            TimeDelta::minutes(30),
            std::slice::from_ref(&g),
            &clusters,
            &samples,
            t(31)
        ),
        Verdict::Soaking { .. }
    ));
    let mut unreachable = passing(&g, "a", 1, 10);
    for m in 11..=13 {
        unreachable.push(Sample {
            observed: "unreachable: connection refused".into(),
            ..sample(&g, "a", m, Outcome::Inconclusive, 0.0)
        });
    }
    match evaluate(
        t(0),
        TimeDelta::minutes(30),
        &[g],
        &clusters,
        &unreachable,
        t(13),
    ) {
        Verdict::Halted { reason, .. } => assert!(
            reason.contains("could not be evaluated") && reason.contains("connection refused"),
            "{reason}"
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_soak_with_no_samples_never_passes() {
    let g = prom_gate(1);
    match evaluate(t(0), TimeDelta::minutes(30), &[g], &[c("a")], &[], t(60)) {
        Verdict::Soaking { waiting_for, .. } => assert_eq!(waiting_for.len(), 1),
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_summary_shows_the_worst_value_per_cluster() {
    let g = prom_gate(3);
    let n = nodes_gate();
    let mut samples = vec![
        sample(&g, "a", 1, Outcome::Pass, 0.001),
        sample(&g, "a", 2, Outcome::Fail, 0.03),
        sample(&g, "a", 3, Outcome::Pass, 0.002),
        sample(&g, "b", 1, Outcome::Inconclusive, 0.0),
        sample(&n, "a", 1, Outcome::Pass, 1.0),
        sample(&n, "a", 2, Outcome::Pass, 0.5),
    ];
    samples[3].value = None;
    samples[3].observed = "no data".into();
    let summary = summarise(&[g, n], &samples);
    assert_eq!(summary[0].samples, 4);
    assert_eq!((summary[0].failures, summary[0].inconclusive), (1, 1));
    assert_eq!(
        summary[0].worst,
        [(c("a"), "0.03".to_owned()), (c("b"), "no data".to_owned())]
    );
    assert_eq!(
        summary[1].worst,
        [(c("a"), "0.5".to_owned())],
        "lowest ready ratio is the worst"
    );
}

/// The soak rules over every sample at once, in time order (the reference the folded
/// [`Tally`] must agree with): halts per pair, then a global soak clock restarted by every
/// passing sample that comes more than the gap allowed after its pair's previous pass.
fn reference(
    start: DateTime<Utc>,
    soak: TimeDelta,
    gates: &[Gate],
    clusters: &[ClusterId],
    samples: &[Sample],
    now: DateTime<Utc>,
) -> Verdict {
    let mut all: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.at >= start && s.at <= now)
        .collect();
    all.sort_by_key(|s| s.at);
    let gate_of = |s: &Sample| gates.iter().find(|g| g.name == s.gate);
    // The clock, and per pair the last pass and last outcome inside the coverage window.
    let mut clock = start;
    let mut restarted = None;
    let mut last_pass: BTreeMap<(GateName, ClusterId), DateTime<Utc>> = BTreeMap::new();
    let mut last_outcome: BTreeMap<(GateName, ClusterId), Outcome> = BTreeMap::new();
    for s in &all {
        let Some(gate) = gate_of(s) else { continue };
        let key = (s.gate.clone(), s.cluster.clone());
        if s.outcome == Outcome::Pass {
            let last = last_pass.get(&key).copied().unwrap_or(start).max(clock);
            if s.at - last > gate.interval * MAX_GAP_INTERVALS {
                clock = s.at;
                restarted = Some(Restart {
                    at: s.at,
                    gate: s.gate.clone(),
                    cluster: s.cluster.clone(),
                    after: s.at - last,
                });
            }
        }
        if s.at <= clock + soak + gate.interval {
            if s.outcome == Outcome::Pass {
                last_pass.insert(key.clone(), s.at);
            }
            last_outcome.insert(key, s.outcome);
        }
    }
    let end = clock + soak;
    let mut waiting = Vec::new();
    for gate in gates {
        for cluster in clusters {
            let (mut fails, mut inconclusive) = (0u32, 0u32);
            for s in all
                .iter()
                .filter(|s| s.gate == gate.name && &s.cluster == cluster)
            {
                match s.outcome {
                    Outcome::Pass => (fails, inconclusive) = (0, 0),
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
            let key = (gate.name.clone(), cluster.clone());
            let covered = last_outcome.get(&key) == Some(&Outcome::Pass)
                && last_pass
                    .get(&key)
                    .is_some_and(|l| *l >= clock && end - *l <= gate.interval * MAX_GAP_INTERVALS);
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
            restarted,
        }
    }
}

#[test]
fn a_sampling_gap_restarts_the_soak_clock_and_the_soak_still_ends() {
    // A 10-minute soak of 1-minute samples; the daemon is down from minute 4 to minute 9.
    let g = prom_gate(3);
    let clusters = [c("a")];
    let mut samples = passing(&g, "a", 1, 4);
    samples.extend(passing(&g, "a", 9, 40));
    let gates = std::slice::from_ref(&g);
    let at = |now| {
        evaluate(
            t(0),
            TimeDelta::minutes(10),
            gates,
            &clusters,
            &samples,
            t(now),
        )
    };
    match at(12) {
        Verdict::Soaking {
            passes_at,
            restarted: Some(r),
            ..
        } => {
            assert_eq!(r.at, t(9));
            assert_eq!(r.after, TimeDelta::minutes(5));
            assert_eq!(passes_at, t(19), "the full soak again from the restart");
            assert!(r.to_string().contains("soak clock restarted"), "{r}");
        }
        other => panic!("expected a restarted soak, got {other:?}"),
    }
    // Before the fix the gap froze the soak for ever; now it passes a full soak after it.
    assert!(matches!(at(18), Verdict::Soaking { .. }));
    assert_eq!(at(19), Verdict::Passed);
}

#[test]
fn a_gap_before_the_first_sample_and_a_late_pass_after_the_end_restart_too() {
    let g = prom_gate(3);
    let clusters = [c("a")];
    let gates = std::slice::from_ref(&g);
    // First sample 6 minutes after convergence (a restart right after it).
    let late_start = passing(&g, "a", 6, 30);
    let v = |samples: &[Sample], now| {
        evaluate(
            t(0),
            TimeDelta::minutes(10),
            gates,
            &clusters,
            samples,
            t(now),
        )
    };
    assert!(matches!(v(&late_start, 15), Verdict::Soaking { .. }));
    assert_eq!(v(&late_start, 16), Verdict::Passed);
    // A failing sample just before the end, then the daemon away past the coverage window:
    // the next passes restart the clock instead of leaving the ring soaking for ever.
    let mut samples = passing(&g, "a", 1, 9);
    samples.push(sample(&g, "a", 10, Outcome::Fail, 0.5));
    samples.extend(passing(&g, "a", 15, 40));
    assert!(matches!(v(&samples, 24), Verdict::Soaking { .. }));
    assert_eq!(v(&samples, 25), Verdict::Passed);
}

#[test]
fn the_folded_tally_agrees_with_reading_every_sample_each_time() {
    // Deterministic pseudo-random soaks: 2 gates × 2 clusters, samples every minute or two with
    // mostly passes, some failures, inconclusive runs and gaps; the verdict after each sample,
    // folded incrementally, must equal the reference over all samples so far.
    let mut seed: u64 = 0x5eed_0000_0000_0001;
    let mut next = move |n: u64| {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (seed >> 33) % n
    };
    let mut verdicts = [0usize; 3];
    for round in 0..300 {
        let gates = vec![prom_gate(1 + next(3) as u32), {
            let mut g = nodes_gate();
            g.failure_limit = 1 + next(4) as u32;
            g.inconclusive_limit = 2 + next(3) as u32;
            g
        }];
        let clusters = [c("a"), c("b")];
        let start = t(0);
        let soak = TimeDelta::minutes(10 + next(20) as i64);
        let mut tally = Tally::new(start, soak);
        let mut all: Vec<Sample> = Vec::new();
        let mut minute = next(3) as i64 - 1; // sometimes a sample before the start
        let last_minute = soak.num_minutes() + 5;
        while minute <= last_minute {
            for gate in &gates {
                for cluster in ["a", "b"] {
                    // Half the rounds are calm (mostly passing soaks), half are rough.
                    let odds = if round % 2 == 0 { 300 } else { 12 };
                    if next(odds) == 0 {
                        continue; // a missed sample
                    }
                    let outcome = match next(odds) {
                        0 => Outcome::Fail,
                        1 | 2 => Outcome::Inconclusive,
                        _ => Outcome::Pass,
                    };
                    let s = sample(gate, cluster, minute, outcome, next(100) as f64);
                    tally.add(gate, &s);
                    all.push(s);
                }
            }
            let now = t(minute);
            let folded = tally.verdict(&gates, &clusters, now);
            assert_eq!(
                folded,
                reference(start, soak, &gates, &clusters, &all, now),
                "round {round}, minute {minute}"
            );
            assert_eq!(folded, evaluate(start, soak, &gates, &clusters, &all, now));
            verdicts[match folded {
                Verdict::Soaking { .. } => 0,
                Verdict::Passed => 1,
                Verdict::Halted { .. } => 2,
            }] += 1;
            if !matches!(folded, Verdict::Soaking { .. }) {
                break;
            }
            minute += if round % 2 == 0 && round % 4 != 0 {
                1
            } else {
                1 + next(2) as i64 * next(3) as i64
            };
        }
    }
    // The generator reaches every verdict, so the comparison means something.
    assert!(verdicts.iter().all(|n| *n > 10), "{verdicts:?}");
}

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

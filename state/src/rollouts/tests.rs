use super::*;
use chrono::{DateTime, Utc};

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn rollout(name: &str) -> Rollout {
    Rollout {
        name: name.into(),
        order: 0,
        summary: "Kubernetes 1.34".into(),
        state: RolloutState::Active,
        created_at: t("2026-11-24T09:00:00Z"),
        updated_at: t("2026-11-24T09:00:00Z"),
        revert_of: None,
    }
}

fn event(rollout: &str, kind: &str) -> Event {
    Event {
        at: t("2026-11-24T09:00:00Z"),
        rollout: rollout.into(),
        ring: None,
        kind: kind.into(),
        message: kind.into(),
        actor: "ringmaster".into(),
    }
}

fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&dir.path().join("db")).unwrap();
    (dir, s)
}

#[test]
fn a_rollout_is_created_once_with_its_ring_runs() {
    let (_d, s) = open();
    let now = t("2026-11-24T09:00:00Z");
    let runs = [
        RingRun::pending("k8s-1.34", "sandbox", 0, now),
        RingRun::pending("k8s-1.34", "canary", 1, now),
    ];
    assert!(
        s.create_rollout(&rollout("k8s-1.34"), &runs, &event("k8s-1.34", "started"))
            .unwrap()
    );
    assert!(
        !s.create_rollout(&rollout("k8s-1.34"), &runs, &event("k8s-1.34", "started"))
            .unwrap(),
        "a second create must not reset the rollout"
    );
    let got = s.ring_runs("k8s-1.34").unwrap();
    assert_eq!(
        got.iter().map(|r| r.ring.as_str()).collect::<Vec<_>>(),
        ["sandbox", "canary"]
    );
    assert_eq!(s.journal("k8s-1.34").unwrap().len(), 1);
    // A rollout whose name is a prefix of another does not see its records.
    assert!(s.ring_runs("k8s-1.3").unwrap().is_empty());
}

#[test]
fn ring_phases_match_the_records_and_every_write_moves_the_generation() {
    let (_d, s) = open();
    let now = t("2026-11-24T09:00:00Z");
    let runs = [
        RingRun::pending("r", "sandbox", 0, now),
        RingRun::pending("r", "canary", 1, now),
    ];
    let g0 = s.generation();
    s.create_rollout(&rollout("r"), &runs, &event("r", "started"))
        .unwrap();
    let g1 = s.generation();
    assert_ne!(g0, g1, "create");
    let mut next = runs[1].clone();
    next.phase = Phase::Soaking;
    next.evidence = Some("lots of text the phase reader skips".into());
    s.transition(&runs[1], next, None, &[]).unwrap().unwrap();
    let g2 = s.generation();
    assert_ne!(g1, g2, "transition");
    let phases = s.ring_phases("r").unwrap();
    let full = s.ring_runs("r").unwrap();
    assert_eq!(phases.len(), 2);
    for (p, r) in phases.iter().zip(&full) {
        assert_eq!(
            (p.ring.as_str(), p.index, p.phase),
            (r.ring.as_str(), r.index, r.phase)
        );
    }
    assert_eq!(phases[1].phase, Phase::Soaking);
    // A refused transition, reads and samples leave it alone.
    assert!(
        s.transition(&runs[1], runs[1].clone(), None, &[])
            .unwrap()
            .is_none()
    );
    s.ring_runs("r").unwrap();
    s.add_samples("r", "canary", 1, &[]).unwrap();
    assert_eq!(s.generation(), g2);
    s.put_rollout(&rollout("r"), &[]).unwrap();
    let g3 = s.generation();
    assert_ne!(g2, g3, "put_rollout");
    s.insert_ring_run(&RingRun::pending("r", "prod", 2, now))
        .unwrap();
    let g4 = s.generation();
    assert_ne!(g3, g4, "insert_ring_run");
    s.set_global_freeze(None).unwrap();
    assert_ne!(g4, s.generation(), "freeze");
}

#[test]
fn samples_after_an_id_are_the_newer_ones_of_that_step_only() {
    let (_d, s) = open();
    let sample = |minute: u32| SampleRecord {
        at: t("2026-11-24T09:00:00Z") + chrono::TimeDelta::minutes(i64::from(minute)),
        gate: "nodes-ready".into(),
        cluster: "eu-1".into(),
        outcome: SampleOutcome::Pass,
        value: Some(f64::from(minute)),
        observed: format!("{minute}"),
    };
    s.add_samples("r", "canary", 1, &[sample(0), sample(1)])
        .unwrap();
    // Neighbours that share a prefix: another step, a ring whose name extends this one.
    s.add_samples("r", "canary", 2, &[sample(9)]).unwrap();
    s.add_samples("r", "canary-eu", 1, &[sample(8)]).unwrap();
    let all = s.samples_after("r", "canary", 1, None).unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(
        all.iter().map(|(_, r)| r.clone()).collect::<Vec<_>>(),
        s.samples("r", "canary", 1).unwrap()
    );
    let (last, _) = all[1];
    assert!(
        s.samples_after("r", "canary", 1, Some(last))
            .unwrap()
            .is_empty()
    );
    s.add_samples("r", "canary", 1, &[sample(2)]).unwrap();
    let newer = s.samples_after("r", "canary", 1, Some(last)).unwrap();
    assert_eq!(newer.len(), 1);
    assert_eq!(newer[0].1.observed, "2");
    assert!(newer[0].0 > last);
    assert_eq!(
        s.samples_after("r", "canary", 1, Some(all[0].0))
            .unwrap()
            .len(),
        2
    );
    assert!(
        s.samples_after("r", "canary", 1, Some(u64::MAX))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn counts_and_latest_samples_agree_with_reading_them_all() {
    let (_d, s) = open();
    let at = t("2026-11-24T09:00:00Z");
    let mut all = Vec::new();
    for minute in 0..30 {
        for (gate, cluster) in [("nodes", "a"), ("nodes", "b"), ("errors", "a")] {
            let outcome = match (minute * 7 + gate.len() + cluster.len()) % 5 {
                0 => SampleOutcome::Fail,
                1 => SampleOutcome::Inconclusive,
                _ => SampleOutcome::Pass,
            };
            all.push(SampleRecord {
                at: at + chrono::TimeDelta::minutes(minute as i64),
                gate: gate.into(),
                cluster: cluster.into(),
                outcome,
                value: Some(minute as f64),
                observed: format!("{gate}/{cluster}/{minute}"),
            });
        }
    }
    s.add_samples("r", "canary", 1, &all).unwrap();
    s.add_samples("r", "canary", 2, &all[..3]).unwrap();
    let counts = s.sample_counts("r", "canary", 1).unwrap();
    let n = |o: SampleOutcome| all.iter().filter(|x| x.outcome == o).count();
    assert_eq!(
        counts,
        SampleCounts {
            samples: 90,
            pass: n(SampleOutcome::Pass),
            fail: n(SampleOutcome::Fail),
            inconclusive: n(SampleOutcome::Inconclusive),
        }
    );
    assert!(counts.fail > 0 && counts.inconclusive > 0);
    let mut expected: Vec<SampleRecord> = all[all.len() - 3..].to_vec();
    expected.sort_by(|a, b| (&a.gate, &a.cluster).cmp(&(&b.gate, &b.cluster)));
    let pair = |g: &str, c: &str| (g.to_owned(), c.to_owned());
    let every = [pair("nodes", "a"), pair("nodes", "b"), pair("errors", "a")];
    assert_eq!(
        s.latest_samples("r", "canary", 1, Some(&every)).unwrap(),
        expected
    );
    assert_eq!(s.latest_samples("r", "canary", 1, None).unwrap(), expected);
    // Only the pairs asked for: a gate removed from the ring (or a cluster gone) is not
    // reported, and does not stop the scan before a wanted pair is found.
    let wanted = [pair("errors", "a"), pair("gone", "z")];
    let got = s.latest_samples("r", "canary", 1, Some(&wanted)).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0], expected[0]);
    assert_eq!(
        s.sample_counts("r", "canary", 3).unwrap(),
        SampleCounts::default()
    );
    // The counts are kept with the samples: the record agrees with a scan.
    let base = sample_prefix("r", "canary", 1);
    assert_eq!(s.count_by_scanning(&base).unwrap(), counts);

    // A step stored before counts were kept (samples, no count record) is counted from its
    // samples, and counting carries on from there.
    let legacy = sample_prefix("r", "legacy", 1);
    let samples_tree = s.tree(SAMPLES).unwrap();
    for (i, r) in all[..5].iter().enumerate() {
        let mut k = legacy.clone();
        k.extend_from_slice(&(i as u64).to_be_bytes());
        samples_tree
            .insert(k, serde_json::to_vec(r).unwrap())
            .unwrap();
    }
    assert_eq!(s.sample_counts("r", "legacy", 1).unwrap().samples, 5);
    s.add_samples("r", "legacy", 1, &all[5..7]).unwrap();
    assert_eq!(s.sample_counts("r", "legacy", 1).unwrap().samples, 7);
    assert_eq!(s.samples("r", "legacy", 1).unwrap().len(), 7);

    // Resume forgets a step's samples, and its counts with them.
    s.clear_samples("r", "canary", 1).unwrap();
    assert_eq!(
        s.sample_counts("r", "canary", 1).unwrap(),
        SampleCounts::default()
    );
    s.add_samples("r", "canary", 1, &all[..1]).unwrap();
    assert_eq!(s.sample_counts("r", "canary", 1).unwrap().samples, 1);
}

#[test]
fn a_transition_from_a_stale_revision_is_refused_and_writes_nothing() {
    let (_d, s) = open();
    let now = t("2026-11-24T09:00:00Z");
    let run = RingRun::pending("r", "sandbox", 0, now);
    s.create_rollout(
        &rollout("r"),
        std::slice::from_ref(&run),
        &event("r", "started"),
    )
    .unwrap();
    let mut next = run.clone();
    next.phase = Phase::WaitingForWindow;
    let stored = s
        .transition(&run, next.clone(), None, &[event("r", "phase")])
        .unwrap()
        .expect("first writer wins");
    assert_eq!(stored.revision, 1);
    // The same old view again: refused, and its journal entry is not written either.
    let mut other = run.clone();
    other.phase = Phase::Halted;
    assert!(
        s.transition(&run, other, None, &[event("r", "halted")])
            .unwrap()
            .is_none()
    );
    let now_stored = s.ring_run("r", "sandbox").unwrap().unwrap();
    assert_eq!(now_stored.phase, Phase::WaitingForWindow);
    let kinds: Vec<String> = s
        .journal("r")
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds, ["started", "phase"]);
}

#[test]
fn transitions_and_journal_survive_a_reopen_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let now = t("2026-11-24T09:00:00Z");
    {
        let s = Store::open(&path).unwrap();
        let mut run = RingRun::pending("r", "sandbox", 0, now);
        s.create_rollout(
            &rollout("r"),
            std::slice::from_ref(&run),
            &event("r", "started"),
        )
        .unwrap();
        for (i, phase) in [Phase::WaitingForWindow, Phase::Preflight, Phase::PrOpen]
            .into_iter()
            .enumerate()
        {
            let mut next = run.clone();
            next.phase = phase;
            let mut r = rollout("r");
            r.updated_at = now + chrono::TimeDelta::minutes(i as i64);
            run = s
                .transition(&run, next, Some(&r), &[event("r", phase.as_str())])
                .unwrap()
                .unwrap();
        }
        s.add_samples(
            "r",
            "sandbox",
            1,
            &[SampleRecord {
                at: now,
                gate: "nodes-ready".into(),
                cluster: "c1".into(),
                outcome: SampleOutcome::Pass,
                value: Some(1.0),
                observed: "3/3 Ready".into(),
            }],
        )
        .unwrap();
    }
    let s = Store::open(&path).unwrap();
    let run = s.ring_run("r", "sandbox").unwrap().unwrap();
    assert_eq!((run.phase, run.revision), (Phase::PrOpen, 3));
    let kinds: Vec<String> = s
        .journal("r")
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        kinds,
        ["started", "waitingForWindow", "preflight", "prOpen"]
    );
    assert_eq!(s.samples("r", "sandbox", 1).unwrap().len(), 1);
    assert!(s.samples("r", "sandbox", 2).unwrap().is_empty());
    s.clear_samples("r", "sandbox", 1).unwrap();
    assert!(s.samples("r", "sandbox", 1).unwrap().is_empty());
    assert_eq!(
        s.rollout("r").unwrap().unwrap().updated_at,
        now + chrono::TimeDelta::minutes(2)
    );
}

/// Records written by schema version 1 (this fixture) must stay readable.
#[test]
fn schema_1_fixtures_decode() {
    let rollout: Rollout = serde_json::from_str(
        r#"{"name":"k8s-1.34","order":0,"summary":"Kubernetes 1.34","state":"halted",
            "ring":"prod-canary","reason":"gate `error-ratio` failed",
            "createdAt":"2026-11-24T09:00:00Z","updatedAt":"2026-11-24T10:00:00Z"}"#,
    )
    .unwrap();
    assert!(
        matches!(rollout.state, RolloutState::Halted { ref ring, .. } if ring == "prod-canary")
    );
    let run: RingRun = serde_json::from_str(
        r#"{"rollout":"k8s-1.34","ring":"sandbox","index":0,"revision":7,"phase":"soaking",
            "phaseSince":"2026-11-24T09:00:00Z","reason":null,"members":["a","b"],"leftOut":[],
            "steps":[{"step":1,"pr":{"number":3,"url":"local#3","branch":"ringmaster/k8s-1.34/sandbox/1","head":"abc"},
                      "summary":"Kubernetes 1.33 → 1.34","clusters":["a","b"],"openedAt":"2026-11-24T09:00:00Z",
                      "mergedAt":"2026-11-24T09:10:00Z","mergeCommit":"def","convergedAt":null,"passedAt":null}],
            "convergeDeadline":null,"soakStarted":"2026-11-24T09:20:00Z","nextSampleAt":null,
            "baselines":[["error-ratio","a",0.001]],"evidence":null,"startedAt":"2026-11-24T09:00:00Z","passedAt":null}"#,
    )
    .unwrap();
    assert_eq!((run.phase, run.step_number()), (Phase::Soaking, 1));
}

#[test]
fn the_global_freeze_is_set_and_lifted() {
    let (_d, s) = open();
    assert!(s.global_freeze().unwrap().is_none());
    let f = GlobalFreeze {
        until: t("2026-12-01T00:00:00Z"),
        reason: "incident 123".into(),
        by: "alice".into(),
        since: t("2026-11-24T09:00:00Z"),
    };
    s.set_global_freeze(Some(&f)).unwrap();
    assert_eq!(s.global_freeze().unwrap(), Some(f));
    s.set_global_freeze(None).unwrap();
    assert!(s.global_freeze().unwrap().is_none());
}

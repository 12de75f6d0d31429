//! The reconcile loop on a simulated clock: real git (the example fleet's GitOps repository),
//! the real local forge and store, and a scripted cluster probe (the real one is exercised
//! against the simulated fleet in `daemon_sim.rs`). A week of windows and soaks runs in
//! well under a second per scenario.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use chrono::{DateTime, TimeDelta, Utc};
use orchestrator::daemon::clock::Clock;
use orchestrator::daemon::clock::ManualClock;
use orchestrator::daemon::{HALTED_LABEL, control};
use policies::window;
use rings::model::Config;
use state::{Phase, RolloutState};

#[path = "support/scripted.rs"]
mod scripted;
use scripted::*;

fn ring_by_name<'c>(config: &'c Config, name: &str) -> &'c rings::model::Ring {
    config
        .ring_set
        .rings
        .iter()
        .find(|r| r.name.as_str() == name)
        .unwrap()
}

#[tokio::test(flavor = "current_thread")]
async fn three_releases_pass_four_rings_inside_windows_in_order_one_pr_per_step() {
    let s = setup(&["01-k8s", "02-addons", "03-restricted"]);
    // Monday 2026-11-23 06:00 UTC, before the first window.
    let clock = ManualClock::new(t("2026-11-23T06:00:00Z"));
    let mut d = daemon(&s, Scripted::default(), clock);
    drive(&mut d, t("2026-12-18T00:00:00Z")).await;
    let config = d.config().unwrap().clone();

    let rollouts = s.store.rollouts().unwrap();
    assert_eq!(
        rollouts.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        ["k8s-1.33", "addons-2026-11", "restricted-prod-2.4.0"],
        "rollouts start in release file order"
    );
    assert!(
        rollouts.iter().all(|r| r.state == RolloutState::Completed),
        "{rollouts:#?}"
    );

    let mut branches = BTreeSet::new();
    let mut steps_total = 0;
    let mut spans: Vec<(String, DateTime<Utc>, DateTime<Utc>)> = Vec::new();
    for r in &rollouts {
        let runs = s.store.ring_runs(&r.name).unwrap();
        assert_eq!(runs.len(), 4);
        let mut prev_passed: Option<DateTime<Utc>> = None;
        for run in &runs {
            assert_eq!(run.phase, Phase::Passed, "{run:#?}");
            let ring = ring_by_name(&config, &run.ring);
            for step in &run.steps {
                steps_total += 1;
                assert!(branches.insert(step.pr.branch.clone()), "one PR per branch");
                if let Some(p) = prev_passed {
                    assert!(
                        step.opened_at >= p,
                        "{}: ring {} opened {} before the previous ring passed {p}",
                        r.name,
                        run.ring,
                        step.opened_at
                    );
                }
                let w = ring.window.as_ref().unwrap();
                assert!(
                    window::is_open(w, step.opened_at),
                    "{} opened outside its window at {}",
                    step.pr.branch,
                    step.opened_at
                );
                assert!(window::freeze_at(&config.ring_set.freezes, step.opened_at).is_none());
                let merged = step.merged_at.unwrap();
                let soak_start = step.converged_at.unwrap();
                assert!(merged >= step.opened_at && soak_start >= merged);
                assert!(
                    step.passed_at.unwrap() - soak_start >= ring.soak,
                    "full soak"
                );
            }
            if let (Some(first), Some(passed)) = (run.steps.first(), run.passed_at) {
                spans.push((run.ring.clone(), first.opened_at, passed));
            }
            prev_passed = run.passed_at.or(prev_passed);
        }
    }
    // Never two rollouts on one ring at once.
    for (i, a) in spans.iter().enumerate() {
        for b in spans.iter().skip(i + 1) {
            if a.0 == b.0 {
                assert!(
                    a.2 <= b.1 || b.2 <= a.1,
                    "two rollouts overlap on ring {}: {a:?} {b:?}",
                    a.0
                );
            }
        }
    }
    // Every PR of the local forge is one of the ring steps: nothing duplicated.
    let prs = s.store.local_prs().unwrap();
    assert_eq!(prs.len(), steps_total);
    assert!(prs.iter().all(|p| p.state == state::PrState::Merged));

    // The cluster on 1.31 took two sequential steps (1.32, then 1.33) in its ring.
    let k8s = s.store.ring_runs("k8s-1.33").unwrap();
    let two_steps: Vec<_> = k8s.iter().filter(|r| r.steps.len() == 2).collect();
    assert_eq!(
        two_steps.len(),
        1,
        "exactly one ring holds the 1.31 laggard"
    );
    let run = two_steps[0];
    assert!(run.steps[1].opened_at >= run.steps[0].passed_at.unwrap());
    assert!(run.steps[1].pr.branch.ends_with("/2"));
    let laggard_changes: Vec<_> = run
        .steps
        .iter()
        .flat_map(|s| {
            s.changes
                .iter()
                .filter(|c| c.from.starts_with("1.31") || c.to == "1.32")
        })
        .collect();
    assert!(!laggard_changes.is_empty());

    // The journal tells the story in order.
    let kinds: Vec<String> = s
        .store
        .journal("k8s-1.33")
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds.first().map(String::as_str), Some("started"));
    assert_eq!(kinds.last().map(String::as_str), Some("completed"));
    assert!(kinds.iter().filter(|k| *k == "prOpen").count() >= 4);

    // The merged registry says 1.33 everywhere that was not paused.
    let cfg = d.config().unwrap();
    for c in &cfg.fleet.clusters {
        if c.paused.is_none() {
            assert_eq!(c.kubernetes.major_minor(), (1, 33), "{}", c.id);
        }
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_failing_gate_halts_with_one_evidence_comment_and_later_rings_get_nothing() {
    let s = setup(&["01-k8s"]);
    let probe = Scripted::default();
    let mut d = daemon(
        &s,
        probe.clone(),
        ManualClock::new(t("2026-11-23T06:00:00Z")),
    );
    // Find a prod-canary cluster and make its error-ratio fail.
    d.pass().await.unwrap();
    let canary = d
        .config()
        .unwrap()
        .ring_clusters(2)
        .next()
        .unwrap()
        .id
        .to_string();
    probe
        .0
        .lock()
        .unwrap()
        .failing
        .push(("error-ratio".into(), canary.clone()));
    drive(&mut d, t("2026-12-18T00:00:00Z")).await;

    let rollout = s.store.rollout("k8s-1.33").unwrap().unwrap();
    let RolloutState::Halted { ring, reason } = &rollout.state else {
        panic!("{rollout:#?}");
    };
    assert_eq!(ring, "prod-canary");
    assert!(
        reason.contains("error-ratio") && reason.contains(&canary),
        "{reason}"
    );
    let runs = s.store.ring_runs("k8s-1.33").unwrap();
    assert_eq!(runs[3].phase, Phase::Pending);
    assert!(
        runs[3].steps.is_empty(),
        "no PR for the ring after the halt"
    );
    assert!(
        s.store
            .local_prs()
            .unwrap()
            .iter()
            .all(|p| !p.branch.contains("/prod-main/"))
    );

    // More passes later: still exactly one halt comment, and the label.
    for _ in 0..3 {
        d.clock().advance(TimeDelta::hours(1));
        d.pass().await.unwrap();
    }
    let canary_pr = s
        .store
        .local_prs()
        .unwrap()
        .into_iter()
        .find(|p| p.branch.contains("/prod-canary/"))
        .unwrap();
    let halts: Vec<_> = canary_pr
        .comments
        .iter()
        .filter(|(k, _)| k == "halt")
        .collect();
    assert_eq!(halts.len(), 1, "{:?}", canary_pr.comments);
    assert!(
        halts[0].1.contains("error-ratio") && halts[0].1.contains("0.2"),
        "{}",
        halts[0].1
    );
    assert!(canary_pr.labels.iter().any(|l| l == HALTED_LABEL));

    // Resume after the cause is gone: the gates run again from zero and the rollout completes.
    probe.0.lock().unwrap().failing.clear();
    let now = d.clock().now();
    control::resume(&s.store, d.config(), "k8s-1.33", "alice", now).unwrap();
    drive(&mut d, t("2026-12-18T00:00:00Z")).await;
    assert_eq!(
        s.store.rollout("k8s-1.33").unwrap().unwrap().state,
        RolloutState::Completed
    );
    let journal = s.store.journal("k8s-1.33").unwrap();
    assert!(
        journal
            .iter()
            .any(|e| e.kind == "resumed" && e.actor == "alice")
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_preflight_finding_blocks_without_a_pr_until_it_clears() {
    let s = setup(&["01-k8s"]);
    let probe = Scripted::default();
    let mut d = daemon(
        &s,
        probe.clone(),
        ManualClock::new(t("2026-11-23T06:00:00Z")),
    );
    d.pass().await.unwrap();
    let first = d
        .config()
        .unwrap()
        .ring_clusters(0)
        .next()
        .unwrap()
        .id
        .to_string();
    probe.0.lock().unwrap().preflight.push((
        first.clone(),
        "kube.removedApis: policy/v1beta1 PodDisruptionBudget default/legacy-pdb (removed in 1.25)"
            .into(),
    ));
    // Into the sandbox window (Monday 09:00 Berlin = 08:00 UTC) and a few passes.
    d.clock().set(t("2026-11-23T08:30:00Z"));
    for _ in 0..3 {
        d.pass().await.unwrap();
        d.clock().advance(TimeDelta::minutes(5));
    }
    let run = s.store.ring_run("k8s-1.33", "sandbox").unwrap().unwrap();
    assert_eq!(run.phase, Phase::Blocked);
    let reason = run.reason.unwrap();
    assert!(
        reason.contains(&first) && reason.contains("legacy-pdb"),
        "{reason}"
    );
    assert!(
        s.store.local_prs().unwrap().is_empty(),
        "a blocked ring opens no PR"
    );
    let blocked_events = s
        .store
        .journal("k8s-1.33")
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "blocked")
        .count();
    assert_eq!(blocked_events, 1, "the same reason is journalled once");

    probe.0.lock().unwrap().preflight.clear();
    d.pass().await.unwrap();
    let run = s.store.ring_run("k8s-1.33", "sandbox").unwrap().unwrap();
    // Sandbox merges automatically: within the pass the PR opened, merged and converged.
    assert!(
        matches!(
            run.phase,
            Phase::PrOpen | Phase::Converging | Phase::Soaking
        ),
        "{run:#?}"
    );
    assert_eq!(run.steps.len(), 1);
    assert_eq!(s.store.local_prs().unwrap().len(), 1);
}

#[tokio::test(flavor = "current_thread")]
async fn a_convergence_timeout_halts_naming_what_is_behind() {
    let s = setup(&["01-k8s"]);
    let probe = Scripted::default();
    let mut d = daemon(
        &s,
        probe.clone(),
        ManualClock::new(t("2026-11-23T06:00:00Z")),
    );
    d.pass().await.unwrap();
    let first = d
        .config()
        .unwrap()
        .ring_clusters(0)
        .next()
        .unwrap()
        .id
        .to_string();
    probe.0.lock().unwrap().stuck.push(first.clone());
    drive(&mut d, t("2026-12-01T00:00:00Z")).await;
    let run = s.store.ring_run("k8s-1.33", "sandbox").unwrap().unwrap();
    assert_eq!(run.phase, Phase::Halted);
    let reason = run.reason.unwrap();
    assert!(
        reason.contains("convergence timeout") && reason.contains(&first),
        "{reason}"
    );
    let step = run.steps.last().unwrap();
    assert!(run.phase_since - step.merged_at.unwrap() >= TimeDelta::minutes(45));
    assert_eq!(
        s.store
            .ring_run("k8s-1.33", "nonprod")
            .unwrap()
            .unwrap()
            .phase,
        Phase::Pending
    );
}

#[tokio::test(flavor = "current_thread")]
async fn pause_and_global_freeze_stop_new_prs_and_merges_but_not_soaks() {
    let s = setup(&["01-k8s"]);
    let mut d = daemon(
        &s,
        Scripted::default(),
        ManualClock::new(t("2026-11-23T08:30:00Z")),
    );
    d.pass().await.unwrap();
    // Sandbox PR opened and (auto) merged inside the window, soaking now.
    for _ in 0..3 {
        d.pass().await.unwrap();
    }
    let run = s.store.ring_run("k8s-1.33", "sandbox").unwrap().unwrap();
    assert!(
        matches!(run.phase, Phase::Soaking | Phase::Converging),
        "{run:#?}"
    );
    let now = d.clock().now();
    control::pause(&s.store, "k8s-1.33", "bob", "incident 42", now).unwrap();
    // The soak goes on (a sample a minute) and finishes while paused; nonprod does not start.
    for _ in 0..40 {
        d.clock().advance(TimeDelta::minutes(1));
        d.pass().await.unwrap();
    }
    let sandbox = s.store.ring_run("k8s-1.33", "sandbox").unwrap().unwrap();
    assert!(sandbox.steps[0].passed_at.is_some(), "{sandbox:#?}");
    assert_eq!(
        s.store.local_prs().unwrap().len(),
        1,
        "no new PR while paused"
    );
    assert!(matches!(
        sandbox.phase,
        Phase::Passed | Phase::WaitingForWindow
    ));
    assert_eq!(
        s.store
            .ring_run("k8s-1.33", "nonprod")
            .unwrap()
            .unwrap()
            .phase,
        Phase::Pending
    );
    let prs_before = s.store.local_prs().unwrap().len();
    // A global freeze, then resume the rollout: still nothing new while frozen.
    let now = d.clock().now();
    control::freeze(
        &s.store,
        now + TimeDelta::hours(2),
        "incident 43",
        "carol",
        now,
    )
    .unwrap();
    control::resume(&s.store, d.config(), "k8s-1.33", "bob", now).unwrap();
    d.pass().await.unwrap();
    assert_eq!(
        s.store.local_prs().unwrap().len(),
        prs_before,
        "no PR during a freeze"
    );
    let sandbox = s.store.ring_run("k8s-1.33", "sandbox").unwrap().unwrap();
    assert!(
        sandbox.reason.unwrap_or_default().contains("incident 43"),
        "the freeze is the reason shown"
    );
    // After the freeze the next PR opens (the window is still open: Monday 08:30–17:00 Berlin).
    d.clock()
        .advance(TimeDelta::hours(2) + TimeDelta::minutes(1));
    d.pass().await.unwrap();
    assert_eq!(s.store.local_prs().unwrap().len(), prs_before + 1);
    let journal = s.store.journal("k8s-1.33").unwrap();
    assert!(
        journal
            .iter()
            .any(|e| e.kind == "paused" && e.actor == "bob" && e.message.contains("incident 42"))
    );
    assert!(
        journal
            .iter()
            .any(|e| e.kind == "frozen" && e.actor == "carol")
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_pause_and_a_freeze_are_told_on_the_open_pr_once_and_lifted() {
    let s = setup(&["01-k8s"]);
    // Manual sandbox so its PR stays open while we pause.
    let rings = s.config.parent().unwrap().join("rings.yaml");
    let text = std::fs::read_to_string(&rings)
        .unwrap()
        .replacen("merge: auto", "merge: manual", 1);
    std::fs::write(&rings, text).unwrap();
    let mut d = daemon(
        &s,
        Scripted::default(),
        ManualClock::new(t("2026-11-23T08:30:00Z")),
    );
    d.pass().await.unwrap();
    let pr = || s.store.local_prs().unwrap().into_iter().next().unwrap();
    assert_eq!(pr().state, state::PrState::Open);
    let now = d.clock().now();
    control::pause(&s.store, "k8s-1.33", "bob", "incident 42", now).unwrap();
    d.forge().approve(pr().number, "alice").unwrap();
    for _ in 0..3 {
        d.clock().advance(TimeDelta::minutes(1));
        d.pass().await.unwrap();
    }
    let p = pr();
    assert_eq!(
        p.state,
        state::PrState::Open,
        "no merge while paused, even approved"
    );
    let holds: Vec<_> = p.comments.iter().filter(|(k, _)| k == "hold").collect();
    assert_eq!(holds.len(), 1);
    assert!(
        holds[0].1.contains("Paused") && holds[0].1.contains("incident 42"),
        "{}",
        holds[0].1
    );
    let now = d.clock().now();
    control::resume(&s.store, d.config(), "k8s-1.33", "bob", now).unwrap();
    control::freeze(
        &s.store,
        now + TimeDelta::minutes(30),
        "incident 43",
        "carol",
        now,
    )
    .unwrap();
    d.pass().await.unwrap();
    let p = pr();
    assert_eq!(p.state, state::PrState::Open, "no merge while frozen");
    let hold = &p.comments.iter().find(|(k, _)| k == "hold").unwrap().1;
    assert!(
        hold.contains("Frozen") && hold.contains("incident 43"),
        "{hold}"
    );
    d.clock().advance(TimeDelta::minutes(31));
    d.pass().await.unwrap();
    let p = pr();
    assert_eq!(
        p.state,
        state::PrState::Merged,
        "merged once the freeze ended"
    );
    let hold = &p.comments.iter().find(|(k, _)| k == "hold").unwrap().1;
    assert!(hold.contains("lifted"), "{hold}");
    assert_eq!(p.comments.iter().filter(|(k, _)| k == "hold").count(), 1);
}

#[tokio::test(flavor = "current_thread")]
async fn abort_with_revert_restores_each_merged_ring_newest_first() {
    let s = setup(&["02-addons"]);
    let probe = Scripted::default();
    let mut d = daemon(
        &s,
        probe.clone(),
        ManualClock::new(t("2026-11-23T06:00:00Z")),
    );
    d.pass().await.unwrap();
    let before: std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>> = d
        .config()
        .unwrap()
        .fleet
        .clusters
        .iter()
        .map(|c| {
            let addons = c
                .addons
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().to_owned()))
                .collect();
            (c.id.to_string(), addons)
        })
        .collect();
    let canary = d
        .config()
        .unwrap()
        .ring_clusters(2)
        .next()
        .unwrap()
        .id
        .to_string();
    probe
        .0
        .lock()
        .unwrap()
        .failing
        .push(("error-ratio".into(), canary));
    drive(&mut d, t("2026-12-18T00:00:00Z")).await;
    assert!(matches!(
        s.store.rollout("addons-2026-11").unwrap().unwrap().state,
        RolloutState::Halted { .. }
    ));

    let now = d.clock().now();
    let msg =
        control::abort_and_revert(&s.store, "addons-2026-11", "alice", "bad CoreDNS", now).unwrap();
    assert!(msg.contains("prod-canary, nonprod, sandbox"), "{msg}");
    drive(&mut d, t("2026-12-18T00:00:00Z")).await;
    let original = s.store.rollout("addons-2026-11").unwrap().unwrap();
    assert!(
        matches!(original.state, RolloutState::Aborted { .. }),
        "{original:?}"
    );
    let revert = s.store.rollout("addons-2026-11-revert").unwrap().unwrap();
    assert_eq!(revert.state, RolloutState::Completed, "{revert:?}");

    // One revert PR per merged ring, newest ring first, each marked as a revert.
    let prs: Vec<_> = s
        .store
        .local_prs()
        .unwrap()
        .into_iter()
        .filter(|p| p.branch.starts_with("ringmaster/addons-2026-11-revert/"))
        .collect();
    let order: Vec<&str> = prs
        .iter()
        .map(|p| p.branch.split('/').nth(2).unwrap())
        .collect();
    assert_eq!(order, ["prod-canary", "nonprod", "sandbox"]);
    assert!(prs.iter().all(|p| p.state == state::PrState::Merged));
    assert!(
        prs.iter()
            .all(|p| p.title.contains("revert") && p.body.contains("\"revert\":true"))
    );
    assert!(
        !s.store
            .local_prs()
            .unwrap()
            .iter()
            .any(|p| p.branch.contains("/prod-main/"))
    );

    // The registry has the versions from before the rollout again (prod-main never changed).
    let after = d.config().unwrap();
    for c in &after.fleet.clusters {
        for (name, v) in &c.addons {
            assert_eq!(
                before[c.id.as_str()].get(name).map(String::as_str),
                Some(v.as_str()),
                "{} {name}",
                c.id
            );
        }
    }
    let journal = s.store.journal("addons-2026-11").unwrap();
    assert!(
        journal
            .iter()
            .any(|e| e.kind == "reverting" && e.actor == "alice")
    );
    assert!(
        control::abort_and_revert(&s.store, "addons-2026-11", "alice", "again", now).is_err(),
        "a rollout is reverted once"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_ring_removed_from_the_ring_file_mid_rollout_is_skipped_and_the_rollout_completes() {
    let s = setup(&["01-k8s"]);
    let mut d = daemon(
        &s,
        Scripted::default(),
        ManualClock::new(t("2026-11-23T06:00:00Z")),
    );
    d.pass().await.unwrap();
    assert_ne!(
        s.store
            .ring_run("k8s-1.33", "sandbox")
            .unwrap()
            .unwrap()
            .phase,
        Phase::Pending,
        "sandbox started"
    );
    // The platform team drops `nonprod` from the ring file while sandbox runs, folding its
    // clusters into sandbox's selector (every cluster must stay in a ring). Sandbox's run keeps
    // the members it started with.
    let rings_path = s.config.parent().unwrap().join("rings.yaml");
    let text = std::fs::read_to_string(&rings_path).unwrap();
    let start = text.find("  # dev and staging together").unwrap();
    let end = text.find("  # The tier-2 prod clusters").unwrap();
    let text = format!("{}{}", &text[..start], &text[end..]).replace(
        "selector: { environment: sandbox }",
        "selector: { environment: [sandbox, dev, staging] }",
    );
    std::fs::write(&rings_path, text).unwrap();

    drive(&mut d, t("2026-12-10T00:00:00Z")).await;
    let rollout = s.store.rollout("k8s-1.33").unwrap().unwrap();
    assert_eq!(rollout.state, RolloutState::Completed, "{rollout:?}");
    let run = |ring: &str| s.store.ring_run("k8s-1.33", ring).unwrap().unwrap();
    let removed = run("nonprod");
    assert_eq!(removed.phase, Phase::Pending);
    assert!(removed.steps.is_empty(), "no PR for a removed ring");
    // prod-canary followed sandbox, the ring now before it in the file.
    let sandbox_passed = run("sandbox").passed_at.unwrap();
    let canary = run("prod-canary");
    assert_eq!(canary.phase, Phase::Passed);
    assert!(canary.steps.first().unwrap().opened_at >= sandbox_passed);
    assert_eq!(run("prod-main").phase, Phase::Passed);
}

#[tokio::test(flavor = "current_thread")]
async fn status_forecasts_every_step_of_a_ring_and_nothing_before_a_global_freeze_lifts() {
    // Issue 16: status forecast a two-step ring (a 1.31 laggard) as one step and ignored the
    // global freeze.
    let s = setup(&["01-k8s"]);
    let mut d = daemon(
        &s,
        Scripted::default(),
        ManualClock::new(t("2026-11-23T06:00:00Z")),
    );
    d.pass().await.unwrap();
    let config = d.config().unwrap().clone();
    let sandbox = ring_by_name(&config, "sandbox");
    let step = sandbox.converge_timeout + sandbox.soak;
    let forecast = |now| {
        let v = orchestrator::daemon::status::status_json(&s.store, Some(&config), now).unwrap();
        let ring = v["rollouts"][0]["rings"][0].clone();
        assert_eq!(ring["ring"], "sandbox");
        let at = |k: &str| {
            DateTime::parse_from_rfc3339(ring["forecast"][k].as_str().unwrap())
                .unwrap()
                .with_timezone(&Utc)
        };
        (at("prOpen"), at("passedBy"))
    };
    let (open, pass) = forecast(t("2026-11-23T06:00:00Z"));
    assert_eq!(open, t("2026-11-23T08:00:00Z"), "Monday 09:00 Berlin");
    assert_eq!(pass - open, step * 2, "two steps in one window");
    control::freeze(
        &s.store,
        t("2026-11-24T12:00:00Z"),
        "incident 43",
        "alice",
        t("2026-11-23T06:00:00Z"),
    )
    .unwrap();
    let (open, pass) = forecast(t("2026-11-23T06:00:00Z"));
    assert_eq!(
        open,
        t("2026-11-24T12:00:00Z"),
        "when the freeze lifts, in the window"
    );
    assert_eq!(pass - open, step * 2);
    // A freeze that already ended is refused, and changes nothing.
    let err = control::freeze(
        &s.store,
        t("2026-11-20T00:00:00Z"),
        "too late",
        "alice",
        t("2026-11-23T06:00:00Z"),
    )
    .unwrap_err();
    assert!(err.to_string().contains("not in the future"), "{err}");
    assert_eq!(
        s.store.global_freeze().unwrap().unwrap().reason,
        "incident 43"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn status_never_writes_control_characters_from_stored_text() {
    // Issue 16: a reason quoting a file from Git (or written through the API before it was
    // cleaned) reached the terminal raw: ANSI escapes, a forged second line.
    let s = setup(&["01-k8s"]);
    let mut d = daemon(
        &s,
        Scripted::default(),
        ManualClock::new(t("2026-11-23T06:00:00Z")),
    );
    d.pass().await.unwrap();
    let run = s.store.ring_run("k8s-1.33", "sandbox").unwrap().unwrap();
    let mut new = run.clone();
    new.reason = Some("\u{1b}[31mred\u{1b}[0m\nERROR forged line\r".into());
    s.store.transition(&run, new, None, &[]).unwrap().unwrap();
    let v =
        orchestrator::daemon::status::status_json(&s.store, d.config(), d.clock().now()).unwrap();
    let table = orchestrator::daemon::status::status_table(&v);
    assert!(
        !table.contains('\u{1b}') && !table.contains('\r'),
        "{table:?}"
    );
    assert!(table.contains("red ERROR forged line"), "{table}");
    assert!(!table.lines().any(|l| l.starts_with("ERROR")), "{table}");
}

#[tokio::test(flavor = "current_thread")]
async fn a_reason_of_nothing_but_control_characters_is_refused() {
    let s = setup(&["01-k8s"]);
    let mut d = daemon(
        &s,
        Scripted::default(),
        ManualClock::new(t("2026-11-23T06:00:00Z")),
    );
    d.pass().await.unwrap();
    let now = t("2026-11-23T06:00:00Z");
    let empty = "\u{1b}[2J\n\r\t ";
    let err = control::pause(&s.store, "k8s-1.33", "alice", empty, now).unwrap_err();
    assert!(err.to_string().contains("a reason is needed"), "{err}");
    let err =
        control::freeze(&s.store, t("2026-11-24T00:00:00Z"), empty, "alice", now).unwrap_err();
    assert!(err.to_string().contains("a reason is needed"), "{err}");
    assert_eq!(
        s.store.rollout("k8s-1.33").unwrap().unwrap().state,
        RolloutState::Active
    );
    assert!(s.store.global_freeze().unwrap().is_none());
}

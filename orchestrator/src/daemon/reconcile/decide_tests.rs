//! Table tests of every decision: each row is an input and the decision it must give.

use super::*;
use crate::gitops::changes::ChangeError;
use chrono::TimeZone;
use policies::soak::Restart;
use rings::{ClusterId, Component, GateName};

fn t(s: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 4, 12, 0, 0).unwrap() + TimeDelta::seconds(s)
}

fn run(phase: Phase) -> RingRun {
    let mut r = RingRun::pending("k8s-1.33", "dev", 1, t(0));
    r.phase = phase;
    r
}

fn missing_file() -> DaemonError {
    DaemonError::Git(GitOpsError::Change(ChangeError::MissingFile {
        cluster: ClusterId::new("dev-aws-use1-01").unwrap(),
        file: "terraform/dev-aws-use1-01.tfvars".into(),
        component: Component::Kubernetes,
    }))
}

#[test]
fn errors_are_classified_by_what_retrying_would_give() {
    let rows: Vec<(DaemonError, ErrorClass)> = vec![
        (
            DaemonError::Forge(ForgeError::RateLimited {
                retry_after: Duration::from_secs(600),
            }),
            ErrorClass::Transient {
                retry_after: Some(Duration::from_secs(600)),
            },
        ),
        (
            DaemonError::Forge(ForgeError::Transient("502 Bad Gateway".into())),
            ErrorClass::Transient { retry_after: None },
        ),
        (
            DaemonError::Forge(ForgeError::HeadMoved {
                number: 3,
                expected: "abc".into(),
            }),
            ErrorClass::Transient { retry_after: None },
        ),
        (
            DaemonError::Forge(ForgeError::Permanent("422 Validation Failed".into())),
            ErrorClass::Permanent(ErrorSource::Forge),
        ),
        (
            DaemonError::Forge(ForgeError::NotFound("repo".into())),
            ErrorClass::Permanent(ErrorSource::Forge),
        ),
        (missing_file(), ErrorClass::Permanent(ErrorSource::Git)),
        (
            DaemonError::Git(GitOpsError::Mirror(MirrorError::Transport {
                action: "fetching",
                url: "https://example.invalid/gitops.git".into(),
                message: "connection refused".into(),
            })),
            ErrorClass::Transient { retry_after: None },
        ),
        (
            DaemonError::Git(GitOpsError::StaleRegistry {
                loaded: "a".into(),
                base: "b".into(),
            }),
            ErrorClass::Transient { retry_after: None },
        ),
        (
            DaemonError::Git(GitOpsError::NoSuchRing(7)),
            ErrorClass::Permanent(ErrorSource::Git),
        ),
        (
            DaemonError::Config("release `x`: no such ring".into()),
            ErrorClass::Permanent(ErrorSource::Config),
        ),
        (
            DaemonError::Store(state::StoreError::Sled {
                path: "db".into(),
                message: "io error".into(),
            }),
            ErrorClass::Fatal,
        ),
    ];
    for (error, class) in rows {
        assert_eq!(classify(&error), class, "{error}");
    }
}

#[test]
fn a_permanent_error_blocks_only_its_ring_run_and_remembers_where_it_was() {
    for (phase, back_to) in [
        (Phase::Pending, Phase::Pending),
        (Phase::WaitingForWindow, Phase::WaitingForWindow),
        (Phase::Preflight, Phase::Preflight),
        (Phase::Blocked, Phase::Preflight),
        (Phase::PrOpen, Phase::PrOpen),
        (Phase::Converging, Phase::Converging),
        (Phase::Soaking, Phase::Soaking),
    ] {
        let e = missing_file();
        let got = on_error(
            &run(phase),
            classify(&e),
            &e.to_string(),
            Some("base1"),
            t(0),
            0.0,
        );
        assert_eq!(
            got,
            OnError::Block(BlockCause::Permanent {
                source: ErrorSource::Git,
                message: "cluster `dev-aws-use1-01`: `terraform/dev-aws-use1-01.tfvars` does not exist on the base branch (kubernetes)".into(),
                phase: back_to,
                base: Some("base1".into()),
            }),
            "{phase:?}"
        );
    }
    // A halted ring is already stopped: its evidence comment is retried, never blocked.
    let got = on_error(
        &run(Phase::Halted),
        ErrorClass::Permanent(ErrorSource::Forge),
        "forge refused: 403",
        None,
        t(0),
        0.0,
    );
    assert!(matches!(got, OnError::BackOff(_)), "{got:?}");
    // The store: the pass stops.
    assert_eq!(
        on_error(
            &run(Phase::Soaking),
            ErrorClass::Fatal,
            "x",
            None,
            t(0),
            0.0
        ),
        OnError::Fail
    );
}

#[test]
fn transient_errors_back_off_exponentially_with_jitter_and_honour_retry_after() {
    let mut r = run(Phase::PrOpen);
    let mut seen = Vec::new();
    for attempt in 1..=10u32 {
        let OnError::BackOff(b) = on_error(
            &r,
            ErrorClass::Transient { retry_after: None },
            "502",
            None,
            t(100),
            0.0,
        ) else {
            panic!("expected a back-off");
        };
        assert_eq!(b.attempt, attempt);
        assert_eq!(b.since, if attempt == 1 { t(100) } else { t(0) });
        seen.push((b.at - t(100)).num_seconds());
        r.retry = Some(Backoff { since: t(0), ..b });
    }
    assert_eq!(seen, [5, 10, 20, 40, 80, 160, 320, 600, 600, 600]);
    // Jitter moves it at most 20% either way.
    assert_eq!(backoff_delay(1, 1.0), TimeDelta::seconds(6));
    assert_eq!(backoff_delay(1, -1.0), TimeDelta::seconds(4));
    assert_eq!(backoff_delay(30, 0.5), TimeDelta::seconds(660));
    for a in 0..50 {
        let j = jitter_of("k8s-1.33", "dev", a);
        assert!((-1.0..=1.0).contains(&j), "{j}");
    }
    assert_ne!(jitter_of("a", "dev", 1), jitter_of("b", "dev", 1));
    // A rate limit's Retry-After wins over a shorter back-off, within reason.
    let fresh = run(Phase::Preflight);
    for (after, expect) in [(600, 600), (2, 5), (86_400, 3_600)] {
        let OnError::BackOff(b) = on_error(
            &fresh,
            ErrorClass::Transient {
                retry_after: Some(Duration::from_secs(after)),
            },
            "rate limited",
            None,
            t(0),
            0.0,
        ) else {
            panic!("expected a back-off");
        };
        assert_eq!((b.at - t(0)).num_seconds(), expect, "Retry-After {after}");
    }
}

#[test]
fn the_schedule_skips_backed_off_and_permanently_blocked_runs() {
    let mut backing = run(Phase::PrOpen);
    backing.retry = Some(Backoff {
        attempt: 2,
        at: t(60),
        error: "502".into(),
        since: t(0),
    });
    let mut blocked = run(Phase::Blocked);
    blocked.block = Some(BlockCause::Permanent {
        source: ErrorSource::Git,
        message: "missing".into(),
        phase: Phase::Preflight,
        base: Some("base1".into()),
    });
    let mut preflight_blocked = run(Phase::Blocked);
    preflight_blocked.block = Some(BlockCause::Preflight {
        findings: vec!["kubelet ahead".into()],
    });
    let rows = [
        (
            &backing,
            "base1",
            t(30),
            Schedule::Wait { until: Some(t(60)) },
        ),
        (&backing, "base1", t(60), Schedule::Go),
        (&blocked, "base1", t(30), Schedule::Wait { until: None }),
        (
            &blocked,
            "base2",
            t(30),
            Schedule::Unblock {
                phase: Phase::Preflight,
            },
        ),
        (&preflight_blocked, "base1", t(30), Schedule::Go),
    ];
    for (r, base, now, want) in rows {
        assert_eq!(schedule(r, base, now), want, "{:?} at {now}", r.block);
    }
    assert_eq!(schedule(&run(Phase::Soaking), "b", t(0)), Schedule::Go);
}

#[test]
fn a_pr_is_merged_only_when_everything_allows_it() {
    let ready = PrFacts {
        state: PrLifecycle::Open,
        base_moved: false,
        wants_merge: true,
        checks_ok: true,
        head_matches: true,
        change_allowed: true,
    };
    let rows = [
        (ready, PrStep::Merge),
        (
            PrFacts {
                state: PrLifecycle::Merged,
                ..ready
            },
            PrStep::Converge,
        ),
        (
            PrFacts {
                state: PrLifecycle::Closed,
                ..ready
            },
            PrStep::Halt,
        ),
        (
            PrFacts {
                base_moved: true,
                ..ready
            },
            PrStep::Regenerate,
        ),
        (
            PrFacts {
                wants_merge: false,
                ..ready
            },
            PrStep::WaitForReview,
        ),
        (
            PrFacts {
                checks_ok: false,
                ..ready
            },
            PrStep::WaitForReview,
        ),
        (
            PrFacts {
                head_matches: false,
                ..ready
            },
            PrStep::WaitForReview,
        ),
        (
            PrFacts {
                change_allowed: false,
                ..ready
            },
            PrStep::WaitForWindow,
        ),
        (
            PrFacts {
                state: PrLifecycle::Merged,
                change_allowed: false,
                base_moved: true,
                ..ready
            },
            PrStep::Converge,
        ),
    ];
    for (facts, want) in rows {
        assert_eq!(pr_step(facts), want, "{facts:?}");
    }
}

#[test]
fn convergence_soaks_passes_a_revert_times_out_or_waits() {
    let rows = [
        (true, false, t(10), t(0), ConvergeStep::Soak),
        (true, true, t(10), t(0), ConvergeStep::Reverted),
        (false, false, t(10), t(0), ConvergeStep::Wait),
        (false, true, t(10), t(10), ConvergeStep::Timeout),
        (false, false, t(10), t(11), ConvergeStep::Timeout),
        (true, false, t(10), t(11), ConvergeStep::Soak),
    ];
    for (converged, revert, deadline, now, want) in rows {
        assert_eq!(
            converge_step(converged, revert, deadline, now),
            want,
            "converged {converged}, revert {revert}, now {now}"
        );
    }
}

#[test]
fn a_soak_verdict_halts_passes_steps_on_or_waits_telling_a_restart_once() {
    let restart = Restart {
        at: t(300),
        gate: GateName::new("nodes-ready").unwrap(),
        cluster: ClusterId::new("dev-aws-use1-01").unwrap(),
        after: TimeDelta::minutes(5),
    };
    let soaking = |restarted: Option<Restart>| Verdict::Soaking {
        passes_at: t(900),
        waiting_for: vec![],
        restarted,
    };
    let halted = Verdict::Halted {
        gate: GateName::new("nodes-ready").unwrap(),
        cluster: ClusterId::new("dev-aws-use1-01").unwrap(),
        reason: "gate `nodes-ready` failed".into(),
    };
    assert_eq!(
        soak_step(halted, true, None),
        SoakStep::Halt("gate `nodes-ready` failed".into())
    );
    assert_eq!(soak_step(Verdict::Passed, true, None), SoakStep::NextStep);
    assert_eq!(soak_step(Verdict::Passed, false, None), SoakStep::Pass);
    assert_eq!(
        soak_step(soaking(None), false, None),
        SoakStep::Wait { restarted: None }
    );
    match soak_step(soaking(Some(restart.clone())), false, None) {
        SoakStep::Wait {
            restarted: Some((at, why)),
        } => {
            assert_eq!(at, t(300));
            assert!(why.contains("soak clock restarted"), "{why}");
        }
        other => panic!("{other:?}"),
    }
    // Already recorded: not news.
    assert_eq!(
        soak_step(soaking(Some(restart)), false, Some(t(300))),
        SoakStep::Wait { restarted: None }
    );
}

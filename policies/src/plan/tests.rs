use chrono::{DateTime, Utc};

use super::*;

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn example() -> (tempfile::TempDir, Config) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = examples::materialize(&examples::fleet_dir(), &dir.path().join("fleet")).unwrap();
    let loaded = rings::load(&cfg).unwrap();
    (dir, loaded.config)
}

fn ring<'a>(p: &'a Plan, release: &str, ring: &str) -> &'a RingPlan {
    p.releases
        .iter()
        .find(|r| r.name == release)
        .unwrap()
        .rings
        .iter()
        .find(|r| r.name == ring)
        .unwrap()
}

#[test]
fn example_plan_json_is_stable() {
    let (_dir, config) = example();
    let p = plan(&config, utc("2026-11-24T17:00:00Z"), None);
    insta::assert_json_snapshot!("example_plan", p);
}

#[test]
fn steps_and_blocks_per_cluster() {
    let (_dir, config) = example();
    let p = plan(&config, utc("2026-11-24T17:00:00Z"), Some("k8s-1.33"));
    assert_eq!(p.releases.len(), 1);
    let sandbox = ring(&p, "k8s-1.33", "sandbox");
    assert_eq!(sandbox.position, 1);
    let ids: Vec<&str> = sandbox
        .clusters
        .iter()
        .map(|c| c.cluster_id.as_str())
        .collect();
    assert_eq!(ids, ["aws-use1-sbx-01", "azr-weu-sbx-01"], "sorted by id");
    // Two minors behind: two PR steps, one minor each.
    assert_eq!(sandbox.clusters[0].steps.len(), 2);
    assert_eq!(sandbox.steps, 2);
    // Already at target.
    assert!(sandbox.clusters[1].steps.is_empty());
    let main = ring(&p, "k8s-1.33", "prod-main");
    let paused = main
        .clusters
        .iter()
        .find(|c| c.cluster_id == "azr-neu-prod-02")
        .unwrap();
    assert_eq!(
        paused.blocked.as_deref(),
        Some("paused: PCI audit freeze until 2026-12-15")
    );
}

#[test]
fn forecast_chains_windows_and_soaks() {
    let (_dir, config) = example();
    // Tuesday 2026-11-24 18:00 in Berlin: today's sandbox window (09:00-15:00 CET) is over.
    let p = plan(&config, utc("2026-11-24T17:00:00Z"), Some("k8s-1.33"));
    let sandbox = ring(&p, "k8s-1.33", "sandbox");
    let w = sandbox.next_window.as_ref().unwrap();
    assert_eq!(
        (w.start.as_str(), w.end.as_str()),
        ("2026-11-25T09:00:00+01:00", "2026-11-25T15:00:00+01:00")
    );
    // Step 1 opens Wed 09:00 CET; +45m converge +30m soak = 10:15, still inside the window,
    // so step 2 opens at 10:15 and passes at 11:30.
    assert_eq!(
        sandbox.forecast.pr_open.as_deref(),
        Some("2026-11-25T09:00:00+01:00")
    );
    assert_eq!(
        sandbox.forecast.passed_by.as_deref(),
        Some("2026-11-25T11:30:00+01:00")
    );
    // nonprod's window (09:00-17:00) is open at 11:30: +30m converge +4h soak = 16:00.
    let nonprod = ring(&p, "k8s-1.33", "nonprod");
    assert_eq!(
        nonprod.forecast.pr_open.as_deref(),
        Some("2026-11-25T11:30:00+01:00")
    );
    assert_eq!(
        nonprod.forecast.passed_by.as_deref(),
        Some("2026-11-25T16:00:00+01:00")
    );
    // 16:00 CET = 10:00 EST, Wednesday: prod-canary's window opens exactly then; +30m +24h.
    let canary = ring(&p, "k8s-1.33", "prod-canary");
    assert_eq!(
        canary.forecast.pr_open.as_deref(),
        Some("2026-11-25T10:00:00-05:00")
    );
    assert_eq!(
        canary.forecast.passed_by.as_deref(),
        Some("2026-11-26T10:30:00-05:00")
    );
    // Thursday 10:30 EST: the next Tue/Wed window is Tuesday 2026-12-01; +30m +48h.
    let main = ring(&p, "k8s-1.33", "prod-main");
    assert_eq!(
        main.forecast.pr_open.as_deref(),
        Some("2026-12-01T10:00:00-05:00")
    );
    assert_eq!(
        main.forecast.passed_by.as_deref(),
        Some("2026-12-03T10:30:00-05:00")
    );
}

#[test]
fn forecast_waits_for_the_freeze() {
    let (_dir, config) = example();
    // Thursday 2026-12-17 13:00 CET, sandbox window open; the year-end freeze starts on the 19th.
    let p = plan(&config, utc("2026-12-17T12:00:00Z"), Some("k8s-1.33"));
    let canary = ring(&p, "k8s-1.33", "prod-canary");
    let open = DateTime::parse_from_rfc3339(canary.forecast.pr_open.as_deref().unwrap()).unwrap();
    // The freeze ends 2027-01-05T00:00Z, a Tuesday: first canary window then is 10:00 EST.
    assert_eq!(open.to_rfc3339(), "2027-01-05T10:00:00-05:00");
}

#[test]
fn a_blocked_ring_stops_the_forecast_of_later_rings() {
    let (_dir, mut config) = example();
    // Require a newer Kubernetes than the sandbox laggard runs.
    let release = config
        .releases
        .iter_mut()
        .find(|r| r.name.as_str() == "addons-2026-11")
        .unwrap();
    release.requires_kubernetes = Some(rings::VersionRange::parse(">=1.32").unwrap());
    let p = plan(&config, utc("2026-11-24T17:00:00Z"), Some("addons-2026-11"));
    let sandbox = ring(&p, "addons-2026-11", "sandbox");
    assert!(sandbox.forecast.pr_open.is_none() && sandbox.forecast.passed_by.is_none());
    let note = sandbox.forecast_note.as_deref().unwrap();
    assert!(
        note.contains("aws-use1-sbx-01") && note.contains(">=1.32"),
        "{note}"
    );
    let nonprod = ring(&p, "addons-2026-11", "nonprod");
    assert!(nonprod.forecast.pr_open.is_none());
    assert_eq!(
        nonprod.forecast_note.as_deref(),
        Some("waits for ring `sandbox`, which is blocked")
    );
}

/// Issue 16 item 7: the plan of a `rollback: true` release that would lower a control plane
/// shows the ring blocked, naming the cluster and the versions.
#[test]
fn a_rollback_that_lowers_a_control_plane_blocks_its_ring() {
    let (_dir, mut config) = example();
    let mut release = config.release("k8s-1.33").unwrap().clone();
    release.name = rings::ReleaseName::new("k8s-1.32-rollback").unwrap();
    release.kubernetes = Some(rings::Version::parse("1.32").unwrap());
    release.rollback = true;
    config.releases.push(release);
    let p = plan(
        &config,
        utc("2026-11-24T17:00:00Z"),
        Some("k8s-1.32-rollback"),
    );
    let sandbox = ring(&p, "k8s-1.32-rollback", "sandbox");
    let ahead = sandbox
        .clusters
        .iter()
        .find(|c| c.cluster_id == "azr-weu-sbx-01")
        .unwrap();
    let why = ahead.blocked.as_deref().unwrap();
    assert!(
        why.contains("1.33 → 1.32 would downgrade the control plane"),
        "{why}"
    );
    let note = sandbox.forecast_note.as_deref().unwrap();
    assert!(
        note.starts_with(
            "blocked: azr-weu-sbx-01: release `k8s-1.32-rollback` (rollback: true): Kubernetes 1.33"
        ),
        "{note}"
    );
    assert_eq!(sandbox.forecast.pr_open, None, "no PR opens");
}

#![allow(clippy::unwrap_used, clippy::expect_used)]
//! A generated fleet loads and plans: every cluster lands in exactly one ring.

#[test]
fn a_generated_fleet_of_2000_clusters_plans() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = integration::fleetgen::generate_setup(dir.path(), 2_000).unwrap();
    let loaded = rings::load(&cfg).unwrap();
    let config = &loaded.config;
    assert_eq!(config.fleet.clusters.len(), 2_000);
    let members: usize = config.membership.iter().map(Vec::len).sum();
    assert_eq!(members, 2_000);
    let at = chrono::DateTime::parse_from_rfc3339("2026-11-24T17:00:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    let plan = policies::plan::plan(config, at, Some("k8s-1.33"));
    let sandbox = &plan.releases[0].rings[0];
    // Every 7th cluster runs 1.31 and needs two steps; cluster 0 is one of them and is in sandbox.
    assert_eq!(sandbox.steps, 2);
    let clusters: usize = plan.releases[0]
        .rings
        .iter()
        .map(|r| r.clusters.len())
        .sum();
    assert_eq!(clusters, 2_000);
}

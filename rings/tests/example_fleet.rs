#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The shipped example fleet loads cleanly through git2.

#[test]
fn example_fleet_loads() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = examples::materialize(&examples::fleet_dir(), &dir.path().join("fleet")).unwrap();
    let loaded = match rings::load(&cfg) {
        Ok(l) => l,
        Err(d) => panic!(
            "{}",
            d.sorted()
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        ),
    };
    for w in loaded.warnings.sorted() {
        println!("{w}");
    }
    let c = &loaded.config;
    assert_eq!(c.fleet.clusters.len(), 15);
    assert_eq!(c.ring_set.rings.len(), 4);
    assert_eq!(c.releases.len(), 4);
    // The platform fields (issue 17) are kept and the controllers are read.
    let dev = c
        .fleet
        .clusters
        .iter()
        .find(|x| x.id.as_str() == "aws-use1-dev-01")
        .unwrap();
    assert_eq!(dev.extra.scalar("upgradeChannel"), Some("rapid"));
    assert_eq!(
        dev.controllers.get("cert-manager").map(|v| v.as_str()),
        Some("1.16.2")
    );
    assert!(
        loaded.warnings.is_empty(),
        "the example must validate without warnings"
    );
}

//! A store written by schema 1 (records as the first release wrote them, by hand here) opens
//! under schema 2: a blocked ring run gets its cause, every record still reads, and the store
//! says version 2 afterwards.

#![allow(clippy::unwrap_used)]

use state::{BlockCause, Phase, Store};

const V1_RUN: &str = r#"{"rollout":"k8s-1.33","ring":"dev","index":1,"revision":3,
"phase":"blocked","phaseSince":"2026-11-30T10:00:00Z",
"reason":"preflight: dev-aws-use1-01: kubelet 1.34.1 ahead of control plane 1.33.2",
"members":["dev-aws-use1-01"],"leftOut":[],"steps":[],"convergeDeadline":null,
"soakStarted":null,"nextSampleAt":null,"gateDue":{},"baselines":[],"evidence":null,
"evidencePosted":false,"notice":null,"planned":[],"startedAt":"2026-11-30T09:59:00Z",
"passedAt":null}"#;

const V1_SOAKING: &str = r#"{"rollout":"k8s-1.33","ring":"sandbox","index":0,"revision":9,
"phase":"soaking","phaseSince":"2026-11-30T09:00:00Z","reason":null,
"members":["sbx-aws-use1-01"],"leftOut":[],"steps":[],"convergeDeadline":null,
"soakStarted":"2026-11-30T09:00:00Z","nextSampleAt":"2026-11-30T09:01:00Z",
"gateDue":{"nodes-ready":"2026-11-30T09:01:00Z"},"baselines":[],"evidence":null,
"evidencePosted":false,"notice":null,"planned":[],"startedAt":"2026-11-30T08:00:00Z",
"passedAt":null}"#;

fn key(rollout: &str, ring: &str) -> Vec<u8> {
    let mut k = rollout.as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(ring.as_bytes());
    k
}

#[test]
fn a_schema_1_store_is_migrated_when_opened() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    {
        let db = sled::Config::new().path(&path).open().unwrap();
        db.open_tree("meta")
            .unwrap()
            .insert(b"schema_version", b"1".as_slice())
            .unwrap();
        let runs = db.open_tree("ring_runs").unwrap();
        runs.insert(key("k8s-1.33", "dev"), V1_RUN.as_bytes())
            .unwrap();
        runs.insert(key("k8s-1.33", "sandbox"), V1_SOAKING.as_bytes())
            .unwrap();
        db.flush().unwrap();
    }
    {
        let store = Store::open(&path).unwrap();
        let dev = store.ring_run("k8s-1.33", "dev").unwrap().unwrap();
        assert_eq!(dev.phase, Phase::Blocked);
        assert_eq!(
            dev.block,
            Some(BlockCause::Preflight {
                findings: vec![
                    "preflight: dev-aws-use1-01: kubelet 1.34.1 ahead of control plane 1.33.2"
                        .into()
                ]
            })
        );
        assert_eq!(dev.revision, 3, "a migration is not a transition");
        let sandbox = store.ring_run("k8s-1.33", "sandbox").unwrap().unwrap();
        assert_eq!(sandbox.phase, Phase::Soaking);
        assert_eq!(sandbox.block, None);
        assert_eq!(sandbox.retry, None);
        assert_eq!(sandbox.soak_restarted, None);
    }
    // The version was written: a second open does not migrate again and reads the same.
    let db = sled::Config::new().path(&path).open().unwrap();
    assert_eq!(
        db.open_tree("meta")
            .unwrap()
            .get(b"schema_version")
            .unwrap()
            .unwrap()
            .as_ref(),
        state::SCHEMA_VERSION.to_string().as_bytes()
    );
    drop(db);
    let store = Store::open(&path).unwrap();
    assert!(matches!(
        store.ring_run("k8s-1.33", "dev").unwrap().unwrap().block,
        Some(BlockCause::Preflight { .. })
    ));
}

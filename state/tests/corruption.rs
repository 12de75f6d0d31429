//! A damaged store says how to recover, not only what sled said (issue 16 item 12).

#![allow(clippy::unwrap_used)]

use state::Store;

#[test]
fn a_corrupt_record_says_how_to_recover() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    drop(Store::open(&path).unwrap());
    {
        let db = sled::Config::new().path(&path).open().unwrap();
        let mut key = b"k8s-1.33".to_vec();
        key.push(0);
        key.extend_from_slice(b"sandbox");
        db.open_tree("ring_runs")
            .unwrap()
            .insert(key, b"{not json".as_slice())
            .unwrap();
        db.flush().unwrap();
    }
    let store = Store::open(&path).unwrap();
    let err = store
        .ring_run("k8s-1.33", "sandbox")
        .unwrap_err()
        .to_string();
    let shown = path.display();
    assert!(
        err.contains("corrupt record k8s-1.33/sandbox"),
        "the key is readable: {err}"
    );
    assert!(
        err.contains(&format!("`mv {shown} {shown}.broken` and start it again")),
        "{err}"
    );
    assert!(
        err.contains("rebuilt from the forge's ringmaster PRs"),
        "{err}"
    );
}

#[test]
fn a_store_sled_cannot_open_says_how_to_recover() {
    let dir = tempfile::tempdir().unwrap();
    // Not a sled directory: a plain file where the store should be.
    let path = dir.path().join("db");
    std::fs::write(&path, "not a database").unwrap();
    let err = Store::open(&path).unwrap_err().to_string();
    let shown = path.display();
    assert!(err.starts_with(&format!("store {shown}: ")), "{err}");
    assert!(
        err.contains(&format!("`mv {shown} {shown}.broken` and start it again")),
        "{err}"
    );
}

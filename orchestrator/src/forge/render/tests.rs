#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use chrono::TimeDelta;
use rings::Version;
use rings::model::Config;

use super::*;
use crate::gitops::changes::{apply_edits, next_ring_step, planned_edits};

const SANDBOX: usize = 0;
const PROD_CANARY: usize = 2;

/// The example fleet, materialized: its configuration and the GitOps work tree.
struct Fleet {
    _tmp: tempfile::TempDir,
    config: Config,
    gitops: PathBuf,
}

fn fleet() -> Fleet {
    let tmp = tempfile::tempdir().unwrap();
    let path = examples::materialize(&examples::fleet_dir(), &tmp.path().join("fleet")).unwrap();
    let config = rings::load(&path).unwrap().config;
    let gitops = tmp.path().join("fleet").join("gitops");
    Fleet {
        _tmp: tmp,
        config,
        gitops,
    }
}

impl Fleet {
    fn release(&self, name: &str) -> Release {
        self.config.release(name).unwrap().clone()
    }

    /// The ring's next step through the real change engine, reading the work tree; the
    /// changed files are written back (as if the PR merged).
    fn step(
        &self,
        config: &Config,
        release: &Release,
        ring: usize,
    ) -> (Vec<AppliedEdit>, Vec<(String, String)>) {
        let step = next_ring_step(config, release, ring).unwrap();
        let planned = planned_edits(config, &step).unwrap();
        let (files, edits) = apply_edits(&planned, &mut |path| {
            Ok(std::fs::read(self.gitops.join(path)).ok())
        })
        .unwrap();
        for (path, text) in files {
            std::fs::write(self.gitops.join(path), text).unwrap();
        }
        let left_out = step
            .left_out
            .iter()
            .map(|(id, why)| (id.to_string(), why.clone()))
            .collect();
        (edits, left_out)
    }
}

fn matrix(states: [RingState; 4]) -> Vec<(String, RingState)> {
    ["sandbox", "nonprod", "prod-canary", "prod-main"]
        .into_iter()
        .map(str::to_owned)
        .zip(states)
        .collect()
}

fn checks(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// What a reviewer sees: the title, then the body.
fn rendered(ctx: &PrContext<'_>) -> String {
    format!("{}\n\n{}", title(ctx), body(ctx))
}

fn nonprod_evidence() -> Evidence {
    Evidence {
        ring: "nonprod".into(),
        soak: TimeDelta::hours(4),
        observed: TimeDelta::minutes(4 * 60 + 12),
        gates: vec![
            GateEvidence {
                gate: "nodes-ready".into(),
                samples: 1008,
                failures: 0,
                inconclusive: 0,
                worst: vec![
                    ("aws-euw1-stg-01".into(), "6/6 Ready".into()),
                    ("aws-use1-dev-01".into(), "3/3 Ready".into()),
                ],
            },
            GateEvidence {
                gate: "argocd-synced".into(),
                samples: 1008,
                failures: 0,
                inconclusive: 2,
                worst: vec![("azr-neu-stg-01".into(), "unreachable (timeout)".into())],
            },
        ],
    }
}

#[test]
fn sandbox_step_1_with_a_laggard() {
    let f = fleet();
    let release = f.release("k8s-1.33");
    let (edits, left_out) = f.step(&f.config, &release, SANDBOX);
    let m = matrix([
        RingState::InProgress("PR open, waiting for checks".into()),
        RingState::Waiting,
        RingState::Waiting,
        RingState::Waiting,
    ]);
    let c = checks(&[
        "one Kubernetes minor per step",
        "no downgrade",
        "no node's kubelet ahead of its control plane",
    ]);
    let ctx = PrContext {
        config: &f.config,
        release: &release,
        ring_index: SANDBOX,
        step: 1,
        edits: &edits,
        left_out: &left_out,
        matrix: &m,
        evidence: None,
        checks: &c,
        revert: false,
    };
    assert_eq!(
        title(&ctx),
        "[ring 1/4 sandbox] Kubernetes 1.31 → 1.32 (1 cluster)"
    );
    insta::assert_snapshot!("sandbox_step_1", rendered(&ctx));
}

#[test]
fn sandbox_step_2_finishes_the_laggard() {
    let f = fleet();
    let release = f.release("k8s-1.33");
    f.step(&f.config, &release, SANDBOX);
    // Step 1 merged: the registry now says 1.32 for the laggard.
    let mut config = f.config.clone();
    for c in &mut config.fleet.clusters {
        if c.id.as_str() == "aws-use1-sbx-01" {
            c.kubernetes = Version::parse("1.32").unwrap();
        }
    }
    let (edits, left_out) = f.step(&config, &release, SANDBOX);
    let m = matrix([
        RingState::InProgress("step 2 of 2, PR open".into()),
        RingState::Waiting,
        RingState::Waiting,
        RingState::Waiting,
    ]);
    let c = checks(&["one Kubernetes minor per step", "no downgrade"]);
    let ctx = PrContext {
        config: &config,
        release: &release,
        ring_index: SANDBOX,
        step: 2,
        edits: &edits,
        left_out: &left_out,
        matrix: &m,
        evidence: None,
        checks: &c,
        revert: false,
    };
    assert_eq!(
        title(&ctx),
        "[ring 1/4 sandbox, step 2] Kubernetes 1.32 → 1.33 (1 cluster)"
    );
    insta::assert_snapshot!("sandbox_step_2", rendered(&ctx));
}

#[test]
fn prod_canary_with_evidence_and_a_paused_cluster() {
    let f = fleet();
    let release = f.release("k8s-1.33");
    let mut config = f.config.clone();
    for c in &mut config.fleet.clusters {
        if c.id.as_str() == "azr-weu-prod-canary-01" {
            c.paused = Some("AKS node image rollout in progress (INC-4411)".into());
        }
    }
    let (edits, left_out) = f.step(&config, &release, PROD_CANARY);
    assert_eq!(left_out.len(), 1);
    let m = matrix([
        RingState::Passed,
        RingState::Passed,
        RingState::InProgress("awaiting review".into()),
        RingState::Waiting,
    ]);
    let c = checks(&[
        "one Kubernetes minor per step",
        "no downgrade",
        "removed APIs: none in use on aws-use1-prod-canary-01",
        "window open: Tuesday 10:00–14:00 America/New_York, no freeze",
    ]);
    let ev = nonprod_evidence();
    let ctx = PrContext {
        config: &config,
        release: &release,
        ring_index: PROD_CANARY,
        step: 1,
        edits: &edits,
        left_out: &left_out,
        matrix: &m,
        evidence: Some(&ev),
        checks: &c,
        revert: false,
    };
    assert_eq!(
        title(&ctx),
        "[ring 3/4 prod-canary] Kubernetes 1.32 → 1.33 (1 cluster)"
    );
    let text = body(&ctx);
    for cluster in config.ring_clusters(PROD_CANARY) {
        assert!(
            text.contains(cluster.id.as_str()),
            "{} is listed",
            cluster.id
        );
    }
    insta::assert_snapshot!("prod_canary_with_evidence", rendered(&ctx));
}

#[test]
fn addons_release() {
    let f = fleet();
    let release = f.release("addons-2026-11");
    let (edits, left_out) = f.step(&f.config, &release, SANDBOX);
    let m = matrix([
        RingState::InProgress("PR open".into()),
        RingState::Waiting,
        RingState::Waiting,
        RingState::Waiting,
    ]);
    let c = checks(&[
        "no downgrade",
        "requires >=1.31, <1.35: satisfied by all 2 clusters",
    ]);
    let ctx = PrContext {
        config: &f.config,
        release: &release,
        ring_index: SANDBOX,
        step: 1,
        edits: &edits,
        left_out: &left_out,
        matrix: &m,
        evidence: None,
        checks: &c,
        revert: false,
    };
    assert_eq!(
        title(&ctx),
        "[ring 1/4 sandbox] coredns → 1.11.4, vpc-cni 1.19.0-eksbuild.1 → 1.19.2 (2 clusters)"
    );
    insta::assert_snapshot!("addons_sandbox", rendered(&ctx));
}

#[test]
fn revert_of_prod_canary() {
    let f = fleet();
    let release = f.release("k8s-1.33");
    let (forward, _) = f.step(&f.config, &release, PROD_CANARY);
    // The revert PR writes the old values back.
    let edits: Vec<AppliedEdit> = forward
        .into_iter()
        .map(|e| AppliedEdit {
            from: e.to,
            to: e.from,
            ..e
        })
        .collect();
    let m = matrix([
        RingState::Passed,
        RingState::Passed,
        RingState::Halted(
            "error-ratio failed 3 samples in a row on aws-use1-prod-canary-01 (0.034 > 0.01)"
                .into(),
        ),
        RingState::NothingToDo,
    ]);
    let c = checks(&["rollback: the previous versions are the ones recorded before the merge"]);
    let ctx = PrContext {
        config: &f.config,
        release: &release,
        ring_index: PROD_CANARY,
        step: 1,
        edits: &edits,
        left_out: &[],
        matrix: &m,
        evidence: None,
        checks: &c,
        revert: true,
    };
    assert_eq!(
        title(&ctx),
        "[revert ring 3/4 prod-canary] Kubernetes 1.33 → 1.32 (2 clusters)"
    );
    insta::assert_snapshot!("revert_prod_canary", rendered(&ctx));
}

#[test]
fn marker_round_trips_and_is_the_last_line() {
    let m = Marker {
        version: MARKER_VERSION,
        rollout: "k8s-1.33".into(),
        ring: "prod-canary".into(),
        step: 2,
        revert: false,
    };
    let line = marker(&m);
    assert_eq!(
        line,
        r#"<!-- ringmaster:marker {"version":1,"rollout":"k8s-1.33","ring":"prod-canary","step":2,"revert":false} -->"#
    );
    assert_eq!(parse_marker(&line), Some(m.clone()));
    let edited = format!("Some text a human wrote.\n\n{line}\n\nMore text.\r\n");
    assert_eq!(parse_marker(&edited), Some(m));

    let f = fleet();
    let release = f.release("k8s-1.33");
    let ctx = PrContext {
        config: &f.config,
        release: &release,
        ring_index: 1,
        step: 3,
        edits: &[],
        left_out: &[],
        matrix: &[],
        evidence: None,
        checks: &[],
        revert: true,
    };
    let text = body(&ctx);
    let expected = Marker {
        version: 1,
        rollout: "k8s-1.33".into(),
        ring: "nonprod".into(),
        step: 3,
        revert: true,
    };
    assert!(
        text.ends_with(&format!("\n{}\n", marker(&expected))),
        "{text}"
    );
    assert_eq!(parse_marker(&text), Some(expected));
}

#[test]
fn marker_values_cannot_close_the_comment() {
    let m = Marker {
        version: MARKER_VERSION,
        rollout: "a --> <b>".into(),
        ring: "\"quoted\"".into(),
        step: 1,
        revert: true,
    };
    let line = marker(&m);
    assert_eq!(line.matches("-->").count(), 1, "{line}");
    assert!(line.ends_with(" -->"));
    assert_eq!(parse_marker(&line), Some(m));
}

#[test]
fn unknown_versions_and_malformed_markers_are_rejected() {
    for body in [
        r#"<!-- ringmaster:marker {"version":2,"rollout":"r","ring":"x","step":1,"revert":false} -->"#,
        r#"<!-- ringmaster:marker {"version":0,"rollout":"r","ring":"x","step":1,"revert":false} -->"#,
        r#"<!-- ringmaster:marker {"rollout":"r","ring":"x","step":1,"revert":false} -->"#,
        r#"<!-- ringmaster:marker {"version":"1","rollout":"r","ring":"x","step":1,"revert":false} -->"#,
        r#"<!-- ringmaster:marker {"version":1,"rollout":"r","ring":"x","step":-1,"revert":false} -->"#,
        r#"<!-- ringmaster:marker {"version":1,"rollout":"r","ring":"x"} -->"#,
        r#"<!-- ringmaster:marker {"version":1,"rollout":"r", -->"#,
        r#"<!-- ringmaster:marker not json -->"#,
        r#"<!-- ringmaster:marker {"version":1,"rollout":"r","ring":"x","step":1,"revert":false}"#,
        "<!-- ringmaster:comment halt -->",
        "",
        "just a PR body",
    ] {
        assert_eq!(parse_marker(body), None, "{body}");
    }
}

#[test]
fn comment_markers_find_the_single_comment() {
    assert_eq!(comment_marker("halt"), "<!-- ringmaster:comment halt -->");
    let halt = format!("{}\nThe rollout halted.", comment_marker("halt"));
    let blocked = format!("{}\r\nBlocked.", comment_marker("blocked/prod-main"));
    let quoted = format!("> {}\nquoted by a human", comment_marker("halt"));
    let later = format!("  {}  \nA duplicate.", comment_marker("halt"));
    let comments = [
        (10, "LGTM"),
        (11, quoted.as_str()),
        (12, blocked.as_str()),
        (13, halt.as_str()),
        (14, later.as_str()),
    ];
    assert_eq!(find_comment(comments, "halt"), Some(13));
    assert_eq!(find_comment(comments, "blocked/prod-main"), Some(12));
    assert_eq!(find_comment(comments, "blocked"), None);
    assert_eq!(find_comment(comments, "resumed"), None);
    assert_eq!(find_comment([], "halt"), None);
}

#[test]
fn table_cells_are_escaped() {
    assert_eq!(cell("a | b"), "a \\| b");
    assert_eq!(
        cell("line 1\nline 2\r\nline 3"),
        "line 1<br>line 2<br>line 3"
    );
    assert_eq!(cell("<!-- x -->"), "&lt;!-- x -->");
    assert_eq!(
        cell("<b>bold</b> <https://x.invalid>"),
        "&lt;b>bold&lt;/b> &lt;https://x.invalid>"
    );
    assert_eq!(cell(">=1.31, <1.35 & R&D"), ">=1.31, <1.35 & R&D");
    assert_eq!(code("a|b"), "`a\\|b`");
    assert_eq!(code("a`b\nc"), "`` a`b c ``");
    assert_eq!(one_line("a\r\nb\nc"), "a b c");

    let f = fleet();
    let release = f.release("k8s-1.33");
    let left_out = vec![(
        "aws-use1-prod-canary-01".to_owned(),
        "paused: audit | ticket\nsee <!-- ringmaster:marker {} -->".to_owned(),
    )];
    let m = vec![(
        "prod-canary".to_owned(),
        RingState::Blocked("removed API in use:\nflowcontrol v1beta3 | kube-system".into()),
    )];
    let ev = Evidence {
        ring: "nonprod".into(),
        soak: TimeDelta::hours(4),
        observed: TimeDelta::hours(1),
        gates: vec![GateEvidence {
            gate: "error-ratio".into(),
            samples: 3,
            failures: 1,
            inconclusive: 0,
            worst: vec![("c|1".into(), "0.5\n(bad)".into())],
        }],
    };
    let ctx = PrContext {
        config: &f.config,
        release: &release,
        ring_index: PROD_CANARY,
        step: 1,
        edits: &[],
        left_out: &left_out,
        matrix: &m,
        evidence: Some(&ev),
        checks: &[],
        revert: false,
    };
    let text = body(&ctx);
    assert!(text.contains(
        "| aws-use1-prod-canary-01 | paused: audit \\| ticket<br>see &lt;!-- ringmaster:marker {} --> |"
    ), "{text}");
    assert!(text.contains(
        "| **prod-canary** ← this PR | 2 | ⛔ blocked: removed API in use:<br>flowcontrol v1beta3 \\| kube-system |"
    ), "{text}");
    assert!(
        text.contains("| error-ratio | 3 | 1 | 0 | c\\|1: 0.5<br>(bad) |"),
        "{text}"
    );
    assert!(text.contains("Soaked **1h** of 4h required ⚠️ shorter than required."));
    // Every table row still has its column count: no raw `|` or newline leaked into a cell.
    for line in text.lines().filter(|l| l.starts_with('|')) {
        let cells = line.replace("\\|", "").matches('|').count();
        assert!([3, 4, 6].contains(&cells), "{line}");
    }
    assert_eq!(text.matches("<!--").count(), 1);
    assert_eq!(parse_marker(&text).unwrap().ring, "prod-canary");
}

#[test]
fn rollback_command_is_exact() {
    assert_eq!(
        rollback_command("k8s-1.33"),
        "ringmaster abort k8s-1.33 --revert"
    );
}

#[test]
fn ring_states_have_icons() {
    assert_eq!(RingState::Passed.label(), "✅ passed");
    assert_eq!(
        RingState::InProgress("soaking, 3h of 24h".into()).label(),
        "🔄 in progress: soaking, 3h of 24h"
    );
    assert_eq!(RingState::Waiting.label(), "⏳ waiting");
    assert_eq!(RingState::Blocked("x".into()).label(), "⛔ blocked: x");
    assert_eq!(RingState::Halted(String::new()).label(), "🛑 halted");
    assert_eq!(RingState::NothingToDo.label(), "➖ nothing to do");
}

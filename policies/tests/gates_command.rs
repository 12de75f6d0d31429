//! Command gates: real processes, no shell unless the argv asks for one.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use policies::gates::command::{evaluate, render_argv};
use policies::soak::Outcome;
use rings::ClusterId;
use rings::model::{Cluster, CommandGate, Provider};

fn cluster(id: &str) -> Cluster {
    Cluster {
        id: ClusterId::new(id).unwrap(),
        provider: Provider::Aws,
        service: None,
        region: Some("eu-west-1".into()),
        environment: None,
        owner_team: None,
        criticality: None,
        labels: BTreeMap::from([("odd".to_owned(), "a b; $(x)".to_owned())]).into(),
        upgrade_ring: None,
        kube_context: id.into(),
        kubernetes: rings::Version::parse("1.33.2").unwrap(),
        addons: Default::default(),
        policies: Default::default(),
        controllers: Default::default(),
        extra: Default::default(),
        paused: None,
        upgrade_nodes: None,
        nodes: rings::model::NodeConvergence::Target,
        path: format!("clusters/{id}/cluster.yaml"),
        pos: rings::Pos::FILE,
    }
}

fn gate(argv: &[&str], timeout: Option<&str>) -> CommandGate {
    CommandGate {
        argv: argv.iter().map(|a| a.to_string()).collect(),
        timeout: timeout.map(Into::into),
    }
}

#[tokio::test]
async fn command_gate_exit_codes_output_and_timeout() {
    tokio::time::timeout(Duration::from_secs(30), async {
        let c1 = cluster("c1");
        let ok = evaluate(&gate(&["true"], None), &c1).await;
        assert_eq!(
            (ok.outcome, ok.observed.as_str()),
            (Outcome::Pass, "exit 0"),
            "{ok:?}"
        );

        let no = evaluate(&gate(&["false"], None), &c1).await;
        assert_eq!(
            (no.outcome, no.observed.as_str()),
            (Outcome::Fail, "exit 1"),
            "{no:?}"
        );

        let out = evaluate(
            &gate(&["sh", "-c", "echo out; echo err >&2; exit 3"], None),
            &c1,
        )
        .await;
        assert_eq!(out.outcome, Outcome::Fail, "{out:?}");
        assert_eq!(out.value, Some(3.0));
        assert!(out.observed.starts_with("exit 3: "), "{out:?}");
        assert!(
            out.observed.contains("out") && out.observed.contains("err"),
            "{out:?}"
        );

        // Placeholders and the environment; the argument is passed as is (no shell).
        let env = gate(
            &[
                "sh",
                "-c",
                r#"echo "$RINGMASTER_CLUSTER_ID $1""#,
                "sh",
                "{region}/{labels.odd}",
            ],
            None,
        );
        let env = evaluate(&env, &c1).await;
        assert_eq!(env.observed, "exit 0: c1 eu-west-1/a b; $(x)", "{env:?}");

        // Only the last 2 KiB of output is kept.
        let long = evaluate(
            &gate(
                &["sh", "-c", "head -c 10000 /dev/zero | tr '\\0' x; echo END"],
                None,
            ),
            &c1,
        )
        .await;
        assert!(
            long.observed.ends_with("END") && long.observed.len() < 2100,
            "{}",
            long.observed.len()
        );

        let started = Instant::now();
        let slow = evaluate(
            &gate(&["sh", "-c", "echo started; sleep 20"], Some("1s")),
            &c1,
        )
        .await;
        assert_eq!(slow.outcome, Outcome::Inconclusive, "{slow:?}");
        assert!(
            slow.observed
                .starts_with("timeout after 1s, killed: started"),
            "{slow:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );

        let missing = evaluate(&gate(&["/nonexistent/gate"], None), &c1).await;
        assert_eq!(missing.outcome, Outcome::Inconclusive, "{missing:?}");
        assert_eq!(
            evaluate(&gate(&[], None), &c1).await.outcome,
            Outcome::Inconclusive
        );
    })
    .await
    .unwrap();
}

#[test]
fn render_argv_errors_on_unknown_placeholders() {
    let c1 = cluster("c1");
    assert_eq!(
        render_argv(&["x".into(), "--cluster={clusterId}".into()], &c1),
        Ok(vec!["x".into(), "--cluster=c1".into()])
    );
    assert!(
        render_argv(&["{nope}".into()], &c1)
            .unwrap_err()
            .contains("nope")
    );
}

//! HTTP gates against a loopback axum server.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use policies::gates::http::{evaluate, render_url};
use policies::soak::Outcome;
use rings::ClusterId;
use rings::model::{Cluster, HttpGate, Provider};

fn cluster(id: &str) -> Cluster {
    Cluster {
        id: ClusterId::new(id).unwrap(),
        provider: Provider::Aws,
        service: None,
        region: Some("eu-west-1".into()),
        environment: None,
        owner_team: None,
        criticality: None,
        labels: BTreeMap::from([("bad".to_owned(), "a?b#c".to_owned())]).into(),
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

fn gate(url: String) -> HttpGate {
    HttpGate {
        url,
        expect_status: None,
        body_contains: None,
        timeout: None,
    }
}

#[tokio::test]
async fn http_gate_status_body_and_timeout() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    tokio::time::timeout(Duration::from_secs(30), async {
        let app = Router::new()
            .route("/healthz/c1", get(|| async { "ok: all good" }))
            .route(
                "/down",
                get(|| async { (StatusCode::SERVICE_UNAVAILABLE, "down") }),
            )
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(10)).await;
                    "late"
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let c1 = cluster("c1");

        let ok = evaluate(&client, &gate(format!("{base}/healthz/{{clusterId}}")), &c1).await;
        assert_eq!(
            (ok.outcome, ok.observed.as_str()),
            (Outcome::Pass, "HTTP 200"),
            "{ok:?}"
        );

        let mut body = gate(format!("{base}/healthz/{{clusterId}}"));
        body.body_contains = Some("all good".into());
        assert_eq!(evaluate(&client, &body, &c1).await.outcome, Outcome::Pass);
        body.body_contains = Some("degraded".into());
        let miss = evaluate(&client, &body, &c1).await;
        assert_eq!(miss.outcome, Outcome::Fail, "{miss:?}");
        assert!(
            miss.observed.contains("does not contain \"degraded\""),
            "{miss:?}"
        );

        let down = evaluate(&client, &gate(format!("{base}/down")), &c1).await;
        assert_eq!(down.outcome, Outcome::Fail, "{down:?}");
        assert_eq!(down.observed, "HTTP 503 (expected 200)");
        assert_eq!(down.value, Some(503.0));
        let mut expect_503 = gate(format!("{base}/down"));
        expect_503.expect_status = Some(503);
        assert_eq!(
            evaluate(&client, &expect_503, &c1).await.outcome,
            Outcome::Pass
        );

        let mut slow = gate(format!("{base}/slow"));
        slow.timeout = Some("1s".into());
        let late = evaluate(&client, &slow, &c1).await;
        assert_eq!(late.outcome, Outcome::Inconclusive, "{late:?}");
        assert!(late.observed.contains("timeout"), "{late:?}");

        let unused = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let refused = evaluate(&client, &gate(format!("http://{unused}/")), &c1).await;
        assert_eq!(refused.outcome, Outcome::Inconclusive, "{refused:?}");

        let injected = evaluate(&client, &gate(format!("{base}/{{labels.bad}}")), &c1).await;
        assert_eq!(injected.outcome, Outcome::Inconclusive, "{injected:?}");
    })
    .await
    .unwrap();
}

#[test]
fn render_url_refuses_unsafe_values() {
    let c1 = cluster("c1");
    assert_eq!(
        render_url("https://x/{region}/{clusterId}", &c1),
        Ok("https://x/eu-west-1/c1".into())
    );
    assert!(
        render_url("https://x/?q={labels.bad}", &c1)
            .unwrap_err()
            .contains("labels.bad")
    );
}

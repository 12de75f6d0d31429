#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The kube client builds and talks to a loopback API server. This is the guard DEPENDENCIES.md
//! asks for: a dependency bump that puts a second rustls crypto provider (aws-lc) in the graph
//! makes `Client::try_from` panic, and this test fails then.

use std::time::Duration;

use axum::Json;
use axum::routing::get;

#[tokio::test]
async fn a_kube_client_reads_version_from_a_loopback_api_server() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let app = axum::Router::new().route(
        "/version",
        get(|| async {
            Json(serde_json::json!({
                "major": "1", "minor": "33", "gitVersion": "v1.33.4-eks-1a2b3c",
                "gitCommit": "abc", "gitTreeState": "clean", "buildDate": "2026-10-01T00:00:00Z",
                "goVersion": "go1.24.1", "compiler": "gc", "platform": "linux/amd64"
            }))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let config = kube::Config::new(format!("http://{addr}").parse().unwrap());
    let client = kube::Client::try_from(config).unwrap();
    let info = tokio::time::timeout(Duration::from_secs(10), client.apiserver_version())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(info.git_version, "v1.33.4-eks-1a2b3c");
    assert_eq!((info.major.as_str(), info.minor.as_str()), ("1", "33"));
    server.abort();
}

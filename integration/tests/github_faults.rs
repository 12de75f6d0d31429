#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Timed faults of the fake GitHub, met by the real octocrab client: each starts after its
//! requests, answers like GitHub (or drops the connection), clears itself after its duration,
//! and is driven over plain HTTP through `/_fake/faults` as well as from Rust.

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use integration::github::{FakeGitHub, Fault, FaultKind, TimedFault};
use octocrab::Octocrab;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Upper bound for one test.
const TEST_TIMEOUT: Duration = Duration::from_secs(60);

async fn bounded<F: Future<Output = ()>>(f: F) {
    tokio::time::timeout(TEST_TIMEOUT, f)
        .await
        .expect("test timed out");
}

fn client(github: &FakeGitHub) -> Octocrab {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Octocrab::builder()
        .base_uri(github.api_url())
        .unwrap()
        .personal_token("t".to_string())
        .build()
        .unwrap()
}

/// `GET /user`: Ok, or GitHub's error (status, message, headers), or `None` for a transport
/// failure.
async fn get_user(octo: &Octocrab) -> Result<(), Option<octocrab::GitHubError>> {
    match octo.current().user().await {
        Ok(_) => Ok(()),
        Err(octocrab::Error::GitHub { source, .. }) => Err(Some(*source)),
        Err(_) => Err(None),
    }
}

fn gh_error(r: Result<(), Option<octocrab::GitHubError>>) -> octocrab::GitHubError {
    match r {
        Err(Some(e)) => e,
        other => panic!("expected a GitHub error, got {other:?}"),
    }
}

/// One request to a control endpoint over a fresh connection, as `curl` would send it:
/// status and JSON body (`Null` when empty).
async fn control(addr: SocketAddr, method: &str, body: Option<&str>) -> (u16, Value) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let body = body.unwrap_or("");
    let req = format!(
        "{method} /_fake/faults HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    stream.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8(out).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let json = serde_json::from_str(body).unwrap_or(Value::Null);
    (status, json)
}

/// Polls `GET /user` until it succeeds (at most 10 s: a fault that never clears fails the
/// test instead of hanging it); the time it took.
async fn until_ok(octo: &Octocrab) -> Duration {
    let started = Instant::now();
    while get_user(octo).await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the fault did not clear within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    started.elapsed()
}

#[tokio::test]
async fn a_rate_limit_posted_over_http_answers_429_until_deleted() {
    bounded(async {
        let github = FakeGitHub::start().await.unwrap();
        let octo = client(&github);
        let addr = github.local_addr();
        let (status, body) = control(
            addr,
            "POST",
            Some(r#"{"kind":"rate-limit","after":1,"for_secs":600}"#),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["kind"], "rate-limit");

        get_user(&octo).await.unwrap();
        let before = chrono::Utc::now().timestamp();
        let e = gh_error(get_user(&octo).await);
        assert_eq!(e.status_code, StatusCode::TOO_MANY_REQUESTS);
        assert!(
            e.message.starts_with("API rate limit exceeded"),
            "{}",
            e.message
        );
        let headers = e.headers.unwrap();
        let retry_after: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((599..=600).contains(&retry_after), "{retry_after}");
        assert_eq!(headers["x-ratelimit-remaining"], "0");
        let reset: i64 = headers["x-ratelimit-reset"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((before + 598..=before + 601).contains(&reset), "{reset}");

        let (status, listed) = control(addr, "GET", None).await;
        assert_eq!(status, 200);
        assert_eq!(listed["faults"][0]["kind"], "rate-limit");
        assert_eq!(listed["faults"][0]["active"], true);
        assert_eq!(listed["faulted_requests"], 1);

        let (status, _) = control(addr, "DELETE", None).await;
        assert_eq!(status, 204);
        get_user(&octo).await.unwrap();
        assert_eq!(github.faulted_requests(), 1);
        // The control requests are neither recorded nor counted.
        let statuses: Vec<u16> = github.requests().iter().map(|r| r.status).collect();
        assert_eq!(statuses, [200, 429, 200]);
        assert_eq!(
            control(addr, "GET", None).await.1["faults"],
            Value::Array(vec![])
        );
    })
    .await;
}

#[tokio::test]
async fn bad_fault_requests_are_refused_with_a_message() {
    bounded(async {
        let github = FakeGitHub::start().await.unwrap();
        let addr = github.local_addr();
        let (status, body) =
            control(addr, "POST", Some(r#"{"kind":"bogus","for_secs":10}"#)).await;
        assert_eq!(status, 422);
        assert_eq!(
            body["message"],
            "unknown GitHub fault kind `bogus`: expected one of errors, rate-limit, secondary-limit, slow, outage"
        );
        let (status, body) = control(addr, "POST", Some(r#"{"kind":"errors"}"#)).await;
        assert_eq!(status, 422);
        assert!(
            body["message"].as_str().unwrap().contains("for_secs"),
            "{body}"
        );
        let (status, _) = control(addr, "POST", Some(r#"{"kind":"errors","for_secs":0}"#)).await;
        assert_eq!(status, 422);
        assert_eq!(control(addr, "GET", None).await.1["faults"], Value::Array(vec![]));
    })
    .await;
}

#[tokio::test]
async fn errors_and_secondary_limits_answer_like_github_and_clear_themselves() {
    bounded(async {
        let github = FakeGitHub::start().await.unwrap();
        let octo = client(&github);

        github.inject(Fault::Timed(TimedFault::new(
            FaultKind::Errors,
            Duration::from_secs(1),
        )));
        let started = Instant::now();
        for _ in 0..3 {
            let e = gh_error(get_user(&octo).await);
            assert_eq!(e.status_code, StatusCode::BAD_GATEWAY);
            assert_eq!(e.message, "Server Error");
        }
        let waited = started.elapsed() + until_ok(&octo).await;
        assert!(
            (Duration::from_millis(900)..Duration::from_secs(3)).contains(&waited),
            "{waited:?}"
        );

        let faulted = github.faulted_requests();
        assert!(faulted >= 3, "{faulted}");
        github.inject(Fault::Timed(TimedFault::new(
            FaultKind::SecondaryLimit,
            Duration::from_secs(30),
        )));
        let e = gh_error(get_user(&octo).await);
        assert_eq!(e.status_code, StatusCode::FORBIDDEN);
        assert!(
            e.message.contains("exceeded a secondary rate limit"),
            "{}",
            e.message
        );
        let retry_after: u64 = e.headers.unwrap()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((29..=30).contains(&retry_after), "{retry_after}");
        github.clear_faults();
        get_user(&octo).await.unwrap();
        assert_eq!(github.faulted_requests(), faulted + 1);
    })
    .await;
}

#[tokio::test]
async fn an_outage_drops_connections_but_not_the_control_endpoints() {
    bounded(async {
        let github = FakeGitHub::start().await.unwrap();
        let octo = client(&github);
        // A pooled connection from before the outage is dropped too.
        get_user(&octo).await.unwrap();
        github.inject(Fault::Timed(
            TimedFault::new(FaultKind::Outage, Duration::from_secs(600)).after(1),
        ));
        get_user(&octo).await.unwrap();
        for _ in 0..2 {
            let started = Instant::now();
            assert!(matches!(get_user(&octo).await, Err(None)));
            assert!(started.elapsed() < Duration::from_secs(1));
        }
        // A raw connection gets no answer at all.
        let mut stream = tokio::net::TcpStream::connect(github.local_addr())
            .await
            .unwrap();
        stream
            .write_all(b"GET /user HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut out = Vec::new();
        let _ = stream.read_to_end(&mut out).await;
        assert!(out.is_empty(), "{}", String::from_utf8_lossy(&out));

        let (status, listed) = control(github.local_addr(), "GET", None).await;
        assert_eq!(status, 200);
        assert_eq!(listed["faulted_requests"], 3);
        assert_eq!(control(github.local_addr(), "DELETE", None).await.0, 204);
        get_user(&octo).await.unwrap();
        let statuses: Vec<u16> = github.requests().iter().map(|r| r.status).collect();
        assert_eq!(
            statuses,
            [200, 200, 200],
            "dropped requests are not answers"
        );
    })
    .await;
}

#[tokio::test]
async fn a_slow_fault_delays_answers_by_its_capped_delay() {
    bounded(async {
        let github = FakeGitHub::start().await.unwrap();
        let octo = client(&github);
        let (status, body) = control(
            github.local_addr(),
            "POST",
            Some(r#"{"kind":"slow","for_secs":30,"delay_ms":300}"#),
        )
        .await;
        assert_eq!((status, body["delay_ms"].as_u64()), (201, Some(300)));
        let started = Instant::now();
        get_user(&octo).await.unwrap();
        assert!(started.elapsed() >= Duration::from_millis(300));

        // An hour's delay is cut to the cap, 30 s.
        let f = TimedFault::new(FaultKind::Slow, Duration::from_secs(1))
            .with_delay(Duration::from_secs(3600));
        assert_eq!(f.delay, integration::github::MAX_SLOW_DELAY);
        assert_eq!(github.faulted_requests(), 1);
    })
    .await;
}

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use rings::model::SecretSource;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::mpsc::{self, Receiver};

use super::*;

const SECRET: &str = "a webhook secret for tests";
/// Bound on every exchange with the server under test.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sign_with(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex(&mac.finalize().into_bytes()))
}

fn sign(body: &[u8]) -> String {
    sign_with(SECRET, body)
}

/// The router served on loopback, and the daemon's end of the queue.
struct Server {
    addr: SocketAddr,
    rx: Receiver<ForgeEvent>,
    _dir: tempfile::TempDir,
}

async fn serve() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("webhook-secret");
    std::fs::write(&path, format!("{SECRET}\n")).unwrap();
    let secret = Secret::read(&SecretSource::File(path)).unwrap();
    let (tx, rx) = mpsc::channel(8);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = router(secret, tx);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Server {
        addr,
        rx,
        _dir: dir,
    }
}

/// Send one raw HTTP/1.1 request; the status code and the response body. The body is written
/// from its own task so the server may answer (413) before it has read everything.
async fn send(
    addr: SocketAddr,
    method: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (u16, String) {
    let exchange = async {
        let stream = TcpStream::connect(addr).await.unwrap();
        let (mut reader, mut writer) = stream.into_split();
        let mut head = format!(
            "{method} / HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: GitHub-Hookshot/test\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
            body.len()
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        let write = tokio::spawn(async move {
            // The server may close early (413); its answer is what the test checks.
            let _ = writer.write_all(head.as_bytes()).await;
            let _ = writer.write_all(&body).await;
            let _ = writer.flush().await;
            writer
        });
        let mut response = Vec::new();
        let mut chunk = [0u8; 8192];
        loop {
            match reader.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => response.extend_from_slice(&chunk[..n]),
            }
        }
        drop(write.await);
        response
    };
    let response = tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .expect("the server answered in time");
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// A signed delivery of `event`, with a delivery id of its own.
async fn deliver(addr: SocketAddr, event: &str, payload: &serde_json::Value) -> (u16, String) {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let id = format!("72d3162e-cc78-11e3-81ab-{n:012x}");
    deliver_as(addr, &id, event, payload).await
}

/// A signed delivery of `event` with the delivery id `id`.
async fn deliver_as(
    addr: SocketAddr,
    id: &str,
    event: &str,
    payload: &serde_json::Value,
) -> (u16, String) {
    let body = serde_json::to_vec(payload).unwrap();
    let signature = sign(&body);
    send(
        addr,
        "POST",
        &[
            ("X-GitHub-Event", event),
            ("X-GitHub-Delivery", id),
            ("X-Hub-Signature-256", &signature),
        ],
        body,
    )
    .await
}

fn assert_nothing_sent(rx: &mut Receiver<ForgeEvent>) {
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
}

/// A `pull_request` delivery as GitHub sends it (trimmed; the extra fields are kept so that
/// parsing is shown to ignore them).
fn pull_request(action: &str, head_ref: &str, merged: serde_json::Value) -> serde_json::Value {
    json!({
        "action": action,
        "number": 42,
        "pull_request": {
            "url": "https://api.github.com/repos/acme/platform-gitops/pulls/42",
            "id": 1_234_567_890u64,
            "number": 42,
            "state": if action == "closed" { "closed" } else { "open" },
            "title": "[ring 1/4 sandbox] Kubernetes 1.31 → 1.32 (1 cluster)",
            "user": { "login": "ringmaster[bot]", "type": "Bot" },
            "head": {
                "label": format!("acme:{head_ref}"),
                "ref": head_ref,
                "sha": "6dcb09b5b57875f334f61aebed695e2e4193db5e",
                "repo": { "full_name": "acme/platform-gitops" }
            },
            "base": { "label": "acme:main", "ref": "main", "sha": "9049f1265b7d61be4a8904a9a27120d2064dab3b" },
            "merged": merged,
            "mergeable": null,
            "merge_commit_sha": null
        },
        "repository": { "full_name": "acme/platform-gitops" },
        "sender": { "login": "octocat" }
    })
}

fn review(state: &str, head_ref: &str) -> serde_json::Value {
    json!({
        "action": "submitted",
        "review": {
            "id": 80,
            "user": { "login": "sre-lead" },
            "body": "Looks good",
            "commit_id": "6dcb09b5b57875f334f61aebed695e2e4193db5e",
            "state": state,
            "submitted_at": "2026-11-10T15:02:19Z"
        },
        "pull_request": {
            "number": 42,
            "head": { "ref": head_ref, "sha": "6dcb09b5b57875f334f61aebed695e2e4193db5e" },
            "base": { "ref": "main", "sha": "9049f1265b7d61be4a8904a9a27120d2064dab3b" }
        },
        "repository": { "full_name": "acme/platform-gitops" },
        "sender": { "login": "sre-lead" }
    })
}

const BRANCH: &str = "ringmaster/k8s-1.33/sandbox/1";

#[test]
fn verify_signature_matches_githubs_documented_example() {
    // https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries
    let secret = b"It's a Secret to Everybody";
    let good = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    assert!(verify_signature(secret, b"Hello, World!", Some(good)));
    assert!(verify_signature(
        secret,
        b"Hello, World!",
        Some(&good.to_uppercase().replace("SHA256=", "sha256="))
    ));
    assert!(!verify_signature(secret, b"Hello, World?", Some(good)));
    assert!(!verify_signature(
        b"another secret",
        b"Hello, World!",
        Some(good)
    ));
    assert!(!verify_signature(b"", b"Hello, World!", Some(good)));
    for bad in [
        "",
        "sha256=",
        "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        "sha1=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e1",
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e",
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e1700",
        "sha256=zz7107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        "sha256=ü57107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
    ] {
        assert!(
            !verify_signature(secret, b"Hello, World!", Some(bad)),
            "{bad:?}"
        );
    }
    assert!(!verify_signature(secret, b"Hello, World!", None));
}

#[test]
fn parses_every_event_ringmaster_handles() {
    let parse = |event: &str, payload: serde_json::Value| {
        parse_event(event, &serde_json::to_vec(&payload).unwrap())
    };
    assert_eq!(
        parse("pull_request", pull_request("closed", BRANCH, json!(true))),
        Ok(Some(ForgeEvent::PullRequest {
            number: 42,
            action: "closed".into(),
            head_ref: BRANCH.into(),
            head_sha: "6dcb09b5b57875f334f61aebed695e2e4193db5e".into(),
            merged: true,
        }))
    );
    let Ok(Some(ForgeEvent::PullRequest { merged, .. })) =
        parse("pull_request", pull_request("opened", BRANCH, json!(null)))
    else {
        panic!("a PR event");
    };
    assert!(!merged, "`merged: null` is not merged");
    assert_eq!(
        parse("pull_request_review", review("approved", BRANCH)),
        Ok(Some(ForgeEvent::Review {
            number: 42,
            state: "approved".into(),
            head_ref: BRANCH.into(),
        }))
    );
    assert_eq!(
        parse(
            "check_run",
            json!({
                "action": "completed",
                "check_run": {
                    "id": 4, "name": "validate", "head_sha": "ce587453ced02b1526dfb4cb910479d431683101",
                    "status": "completed", "conclusion": "success",
                    "check_suite": { "id": 5, "head_branch": BRANCH }
                }
            })
        ),
        Ok(Some(ForgeEvent::CheckRun {
            head_sha: "ce587453ced02b1526dfb4cb910479d431683101".into(),
            status: "completed".into(),
            conclusion: Some("success".into()),
        }))
    );
    assert_eq!(
        parse(
            "check_suite",
            json!({
                "action": "requested",
                "check_suite": {
                    "id": 5, "head_branch": BRANCH,
                    "head_sha": "ce587453ced02b1526dfb4cb910479d431683101",
                    "status": "queued", "conclusion": null
                }
            })
        ),
        Ok(Some(ForgeEvent::CheckSuite {
            head_sha: "ce587453ced02b1526dfb4cb910479d431683101".into(),
            status: "queued".into(),
            conclusion: None,
        }))
    );
    assert_eq!(
        parse(
            "status",
            json!({
                "id": 214015194, "sha": "9049f1265b7d61be4a8904a9a27120d2064dab3b",
                "name": "acme/platform-gitops", "context": "ci/validate",
                "state": "failure", "description": "1 file failed schema validation",
                "target_url": null, "branches": []
            })
        ),
        Ok(Some(ForgeEvent::Status {
            sha: "9049f1265b7d61be4a8904a9a27120d2064dab3b".into(),
            state: "failure".into(),
            context: "ci/validate".into(),
        }))
    );
    assert_eq!(
        parse(
            "ping",
            json!({ "zen": "Design for failure.", "hook_id": 1 })
        ),
        Ok(Some(ForgeEvent::Ping))
    );
    assert_eq!(parse("push", json!({ "ref": "refs/heads/main" })), Ok(None));
    assert_eq!(parse_event("issues", b"not even json"), Ok(None));
}

#[test]
fn malformed_payloads_of_known_events_are_errors() {
    for (event, body) in [
        ("pull_request", &b"{"[..]),
        ("pull_request", br#"{"action":"opened","number":42}"#),
        (
            "pull_request",
            br#"{"action":"opened","number":"42","pull_request":{"head":{"ref":"a","sha":"b"}}}"#,
        ),
        ("pull_request_review", br#"{"review":{},"pull_request":{}}"#),
        ("check_run", br#"{"check_run":{"status":"completed"}}"#),
        ("check_suite", b"[]"),
        ("status", br#"{"sha":"abc","state":"success"}"#),
        ("ping", b""),
    ] {
        let err = parse_event(event, body).unwrap_err();
        assert!(
            err.starts_with(&format!("malformed `{event}` payload")),
            "{err}"
        );
    }
    let err = parse_event("pull_request", b"payload=%7B%7D").unwrap_err();
    assert!(err.contains("application/json"), "{err}");
}

#[tokio::test]
async fn a_signed_event_is_accepted_and_sent_to_the_daemon() {
    let mut server = serve().await;
    let (status, _) = deliver(
        server.addr,
        "pull_request",
        &pull_request("synchronize", BRANCH, json!(false)),
    )
    .await;
    assert_eq!(status, 202);
    assert_eq!(
        server.rx.try_recv(),
        Ok(ForgeEvent::PullRequest {
            number: 42,
            action: "synchronize".into(),
            head_ref: BRANCH.into(),
            head_sha: "6dcb09b5b57875f334f61aebed695e2e4193db5e".into(),
            merged: false,
        })
    );
    let (status, _) = deliver(
        server.addr,
        "pull_request_review",
        &review("approved", BRANCH),
    )
    .await;
    assert_eq!(status, 202);
    assert!(matches!(
        server.rx.try_recv(),
        Ok(ForgeEvent::Review { number: 42, .. })
    ));
    assert_nothing_sent(&mut server.rx);
}

#[tokio::test]
async fn a_replayed_delivery_is_acknowledged_but_not_sent_again() {
    let mut server = serve().await;
    let payload = pull_request("synchronize", BRANCH, json!(false));
    let id = "0b1c2d3e-replayed-delivery";
    let (status, _) = deliver_as(server.addr, id, "pull_request", &payload).await;
    assert_eq!(status, 202);
    assert!(server.rx.try_recv().is_ok());
    for _ in 0..300 {
        let (status, body) = deliver_as(server.addr, id, "pull_request", &payload).await;
        assert_eq!(
            (status, body.as_str()),
            (
                200,
                "duplicate delivery 0b1c2d3e-replayed-delivery: accepted already, nothing to do"
            )
        );
    }
    assert_nothing_sent(&mut server.rx);
    // Another delivery of the same event is news.
    let (status, _) = deliver(server.addr, "pull_request", &payload).await;
    assert_eq!(status, 202);
    assert!(server.rx.try_recv().is_ok());
}

#[test]
fn delivery_ids_are_remembered_up_to_the_bound() {
    let mut recent = RecentDeliveries::new(3);
    assert!(recent.insert("a") && recent.insert("b") && recent.insert("c"));
    assert!(!recent.insert("b"), "a replay");
    assert!(recent.insert("d"), "evicts the oldest");
    assert_eq!(recent.len(), 3);
    assert!(recent.insert("a"), "forgotten, so new again");
    assert!(!recent.insert("d"));
    recent.forget("d");
    assert!(recent.insert("d"));
    let long = "x".repeat(10_000);
    assert!(recent.insert(&long));
    assert!(
        !recent.insert(&format!("{long}y")),
        "ids are kept to their first 128 bytes"
    );
    let mut full = RecentDeliveries::new(REMEMBERED_DELIVERIES);
    for i in 0..5 * REMEMBERED_DELIVERIES {
        full.insert(&i.to_string());
    }
    assert_eq!(full.len(), REMEMBERED_DELIVERIES);
}

#[tokio::test]
async fn missing_wrong_or_malformed_signatures_are_refused() {
    let mut server = serve().await;
    let body = serde_json::to_vec(&pull_request("opened", BRANCH, json!(false))).unwrap();
    let good = sign(&body);
    let wrong_secret = sign_with("not the secret", &body);
    let other_body = sign(b"{}");
    let sha1 = good.replace("sha256=", "sha1=");
    let short = good[..good.len() - 2].to_owned();
    let cases: [Option<&str>; 7] = [
        None,
        Some(""),
        Some(&wrong_secret),
        Some(&other_body),
        Some(&sha1),
        Some(&short),
        Some("sha256=not-hex"),
    ];
    for signature in cases {
        let mut headers = vec![("X-GitHub-Event", "pull_request")];
        if let Some(s) = signature {
            headers.push(("X-Hub-Signature-256", s));
        }
        let (status, text) = send(server.addr, "POST", &headers, body.clone()).await;
        assert_eq!(status, 401, "{signature:?}");
        assert!(text.contains("X-Hub-Signature-256"), "{text}");
        assert_nothing_sent(&mut server.rx);
    }
    // The signature is checked before anything else: even a malformed body is 401.
    let (status, _) = send(
        server.addr,
        "POST",
        &[
            ("X-GitHub-Event", "pull_request"),
            ("X-Hub-Signature-256", &good),
        ],
        b"{ not json".to_vec(),
    )
    .await;
    assert_eq!(status, 401);
    assert_nothing_sent(&mut server.rx);
}

#[tokio::test]
async fn malformed_json_with_a_good_signature_is_a_bad_request() {
    let mut server = serve().await;
    let body = b"{\"action\": \"opened\", \"number\": 42".to_vec();
    let signature = sign(&body);
    let (status, text) = send(
        server.addr,
        "POST",
        &[
            ("X-GitHub-Event", "pull_request"),
            ("X-Hub-Signature-256", &signature),
        ],
        body,
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        text.starts_with("malformed `pull_request` payload"),
        "{text}"
    );
    let body = b"{}".to_vec();
    let signature = sign(&body);
    let (status, text) = send(
        server.addr,
        "POST",
        &[("X-Hub-Signature-256", &signature)],
        body,
    )
    .await;
    assert_eq!(status, 400);
    assert!(text.contains("X-GitHub-Event"), "{text}");
    assert_nothing_sent(&mut server.rx);
}

#[tokio::test]
async fn bodies_over_the_limit_are_refused() {
    let mut server = serve().await;
    let body = vec![b' '; MAX_BODY_BYTES + 1];
    let (status, _) = send(
        server.addr,
        "POST",
        &[
            ("X-GitHub-Event", "pull_request"),
            ("X-Hub-Signature-256", "sha256=00"),
        ],
        body,
    )
    .await;
    assert_eq!(status, 413);
    assert_nothing_sent(&mut server.rx);
}

#[tokio::test]
async fn a_body_at_the_limit_is_read() {
    let mut server = serve().await;
    // Valid JSON padded with whitespace to exactly the limit.
    let mut body = serde_json::to_vec(&json!({ "zen": "Keep it logically awesome." })).unwrap();
    body.resize(MAX_BODY_BYTES, b' ');
    let signature = sign(&body);
    let (status, text) = send(
        server.addr,
        "POST",
        &[
            ("X-GitHub-Event", "ping"),
            ("X-Hub-Signature-256", &signature),
        ],
        body,
    )
    .await;
    assert_eq!((status, text.as_str()), (200, "pong"));
    assert_nothing_sent(&mut server.rx);
}

#[tokio::test]
async fn ping_is_answered_and_not_forwarded() {
    let mut server = serve().await;
    let (status, text) = deliver(
        server.addr,
        "ping",
        &json!({ "zen": "Anything added dilutes everything else.", "hook_id": 109948940 }),
    )
    .await;
    assert_eq!((status, text.as_str()), (200, "pong"));
    assert_nothing_sent(&mut server.rx);
}

#[tokio::test]
async fn ignored_event_types_are_acknowledged_and_not_forwarded() {
    let mut server = serve().await;
    for event in ["push", "issues", "issue_comment", "workflow_run"] {
        let (status, text) =
            deliver(server.addr, event, &json!({ "ref": "refs/heads/main" })).await;
        assert_eq!(status, 200, "{event}");
        assert!(text.starts_with("ignored"), "{text}");
    }
    assert_nothing_sent(&mut server.rx);
}

#[tokio::test]
async fn prs_of_other_branches_are_ignored() {
    let mut server = serve().await;
    for head in [
        "feature/ringmaster",
        "main",
        "ringmaster",
        "dependabot/cargo/serde-1.0.230",
    ] {
        let (status, text) = deliver(
            server.addr,
            "pull_request",
            &pull_request("closed", head, json!(true)),
        )
        .await;
        assert_eq!(status, 200, "{head}");
        assert!(text.starts_with("ignored"), "{text}");
        let (status, _) = deliver(
            server.addr,
            "pull_request_review",
            &review("approved", head),
        )
        .await;
        assert_eq!(status, 200, "{head}");
    }
    assert_nothing_sent(&mut server.rx);
}

#[tokio::test]
async fn a_closed_queue_asks_github_to_redeliver() {
    let server = serve().await;
    let addr = server.addr;
    drop(server.rx);
    let (status, _) = deliver(addr, "check_suite", &json!({
        "action": "completed",
        "check_suite": { "head_sha": "ce587453ced02b1526dfb4cb910479d431683101", "status": "completed", "conclusion": "failure" }
    }))
    .await;
    assert_eq!(status, 503);
}

#[tokio::test]
async fn only_post_is_routed() {
    let mut server = serve().await;
    let (status, _) = send(server.addr, "GET", &[], Vec::new()).await;
    assert_eq!(status, 405);
    assert_nothing_sent(&mut server.rx);
}

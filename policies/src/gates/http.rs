//! `http:` gates: GET a URL, check the status and optionally the body.

use std::time::Duration;

use rings::model::{Cluster, HttpGate};

use super::{Observation, error_chain, safe_field_value, substitute, tail, timeout_or};

/// Timeout when the gate sets none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Most of a body read for `bodyContains`.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// Render `{clusterId}`-style placeholders into a URL (values restricted to `[A-Za-z0-9._:/-]`).
pub fn render_url(url: &str, cluster: &Cluster) -> Result<String, String> {
    substitute(url, |key| safe_field_value(key, cluster))
}

/// GET the gate's URL: the expected status (default 200) and, if set, a body containing
/// `bodyContains` pass; another status or a missing substring fails; a connection error or a
/// timeout is inconclusive.
pub async fn evaluate(client: &reqwest::Client, gate: &HttpGate, cluster: &Cluster) -> Observation {
    let (url, timeout) = match (
        render_url(&gate.url, cluster),
        timeout_or(gate.timeout.as_deref(), DEFAULT_TIMEOUT),
    ) {
        (Ok(u), Ok(t)) => (u, t),
        (Err(e), _) | (_, Err(e)) => return Observation::inconclusive(e),
    };
    let expected = gate.expect_status.unwrap_or(200);
    let check = async {
        let mut response = client.get(&url).send().await?;
        let status = response.status().as_u16();
        if status != expected {
            return Ok::<_, reqwest::Error>(Observation::fail(
                Some(f64::from(status)),
                format!("HTTP {status} (expected {expected})"),
            ));
        }
        let Some(needle) = gate.body_contains.as_deref() else {
            return Ok(Observation::pass(
                Some(f64::from(status)),
                format!("HTTP {status}"),
            ));
        };
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            body.extend_from_slice(&chunk);
            if body.len() >= MAX_BODY_BYTES {
                break;
            }
        }
        let body = String::from_utf8_lossy(&body);
        Ok(if body.contains(needle) {
            Observation::pass(
                Some(f64::from(status)),
                format!("HTTP {status}, body contains {needle:?}"),
            )
        } else {
            Observation::fail(
                Some(f64::from(status)),
                format!(
                    "HTTP {status}, body does not contain {needle:?}: {}",
                    tail(&body, 200)
                ),
            )
        })
    };
    match tokio::time::timeout(timeout, check).await {
        Err(_) => Observation::inconclusive(format!("GET {url}: timeout after {timeout:?}")),
        Ok(Err(e)) => Observation::inconclusive(format!("GET {url}: {}", error_chain(&e))),
        Ok(Ok(observation)) => observation,
    }
}

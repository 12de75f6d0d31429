//! The control commands (`ringmaster pause|resume|abort|freeze|unfreeze|approve`) and reads
//! sent to a running daemon's API. The CLI goes this way only when the store of its
//! configuration is locked (a running daemon holds it), and only after [`verify`] says the
//! daemon at `api.listen` is the one holding *that* store: another fleet's daemon on the same
//! port must never receive this fleet's commands.

use std::net::SocketAddr;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::Url;
use serde_json::{Value, json};

use super::WRITE_LOCK_WAIT;
use crate::secret::Secret;

/// Time to connect to the daemon. On loopback a daemon that is not running refuses at once;
/// this bounds the wait for one that is wedged.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Time for the answer: longer than the daemon's own [`WRITE_LOCK_WAIT`], since it may finish
/// a reconcile pass before it applies the command.
pub const RESPONSE_TIMEOUT: Duration = WRITE_LOCK_WAIT.saturating_add(Duration::from_secs(10));

/// A control command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request<'a> {
    /// Pause a rollout.
    Pause {
        /// The rollout.
        rollout: &'a str,
        /// Why.
        reason: &'a str,
    },
    /// Resume a paused or halted rollout.
    Resume {
        /// The rollout.
        rollout: &'a str,
    },
    /// Abort a rollout.
    Abort {
        /// The rollout.
        rollout: &'a str,
        /// Why.
        reason: &'a str,
        /// Also revert what it changed.
        revert: bool,
    },
    /// Freeze everything until `until`.
    Freeze {
        /// Until when.
        until: DateTime<Utc>,
        /// Why.
        reason: &'a str,
    },
    /// Lift the global freeze.
    Unfreeze,
    /// Approve the open PR of a ring (local forge).
    Approve {
        /// The rollout.
        rollout: &'a str,
        /// The ring.
        ring: &'a str,
    },
}

/// Which store a daemon holds, as `GET /api/v1/info` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreInfo {
    /// [`state::Store::identity`].
    pub id: String,
    /// The store's canonical path on the daemon's machine.
    pub path: String,
}

/// Why the daemon did not apply a command.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing listens there: no daemon runs with this `api.listen`.
    #[error("no ringmaster daemon listens on {0}")]
    NotRunning(String),
    /// Something listens but did not answer (a timeout, a reset connection).
    #[error("the ringmaster API at {addr} did not answer: {why}")]
    Unreachable {
        /// Where.
        addr: String,
        /// What happened.
        why: String,
    },
    /// The daemon answered and refused (the command did nothing).
    #[error("the ringmaster daemon at {addr} refused ({status}): {message}")]
    Refused {
        /// Where.
        addr: String,
        /// The HTTP status.
        status: u16,
        /// The daemon's `error`.
        message: String,
    },
    /// A ringmaster answers there, but it holds another store than this configuration's.
    #[error(
        "the ringmaster daemon at {addr} (api.listen) holds another store, {theirs} (id {their_id}), not {ours} (id {our_id}); check `api.listen` (nothing was changed)"
    )]
    OtherStore {
        /// Where.
        addr: String,
        /// The daemon's store path.
        theirs: String,
        /// Its identity.
        their_id: String,
        /// This configuration's store path.
        ours: String,
        /// Its identity.
        our_id: String,
    },
    /// It cannot be told which store the daemon holds.
    #[error(
        "cannot tell whether the ringmaster daemon at {addr} holds the store {ours}: {why} (nothing was changed)"
    )]
    Unverified {
        /// Where.
        addr: String,
        /// This configuration's store path.
        ours: String,
        /// Why not.
        why: String,
    },
}

/// The base URL of the daemon listening on `listen`: a wildcard address (`0.0.0.0`, `::`) is
/// reached on loopback.
pub fn base_url(listen: &str) -> String {
    match listen.parse::<SocketAddr>() {
        Ok(mut addr) => {
            if addr.ip().is_unspecified() {
                addr.set_ip(if addr.is_ipv4() {
                    std::net::Ipv4Addr::LOCALHOST.into()
                } else {
                    std::net::Ipv6Addr::LOCALHOST.into()
                });
            }
            format!("http://{addr}")
        }
        Err(_) => format!("http://{listen}"),
    }
}

fn endpoint(base: &str, request: &Request<'_>) -> Result<Url, String> {
    let mut url = Url::parse(base).map_err(|e| format!("{base}: {e}"))?;
    {
        let mut path = url
            .path_segments_mut()
            .map_err(|()| format!("{base} cannot take a path"))?;
        path.clear().extend(["api", "v1"]);
        match request {
            Request::Pause { rollout, .. } => path.extend(["rollouts", rollout, "pause"]),
            Request::Resume { rollout } => path.extend(["rollouts", rollout, "resume"]),
            Request::Abort { rollout, .. } => path.extend(["rollouts", rollout, "abort"]),
            Request::Freeze { .. } => path.push("freeze"),
            Request::Unfreeze => path.push("unfreeze"),
            Request::Approve { rollout, ring } => {
                path.extend(["rollouts", rollout, "rings", ring, "approve"])
            }
        };
    }
    Ok(url)
}

fn body(request: &Request<'_>, by: &str) -> Value {
    match request {
        Request::Pause { reason, .. } => json!({"reason": reason, "by": by}),
        Request::Abort { reason, revert, .. } => {
            json!({"reason": reason, "by": by, "revert": revert})
        }
        Request::Resume { .. } | Request::Unfreeze | Request::Approve { .. } => {
            json!({"by": by})
        }
        Request::Freeze { until, reason } => json!({
            "until": until.to_rfc3339_opts(SecondsFormat::Secs, true),
            "reason": reason,
            "by": by,
        }),
    }
}

fn refused_connection(e: &reqwest::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionRefused
        {
            return true;
        }
        source = s.source();
    }
    false
}

fn http() -> Result<reqwest::Client, String> {
    // reqwest builds its TLS configuration even for plain HTTP; the binary installs the ring
    // provider in `main`, tests may not have.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(RESPONSE_TIMEOUT)
        .no_proxy()
        .build()
        .map_err(|e| e.to_string())
}

/// `GET path` (`/api/v1/...`) from the daemon listening on `listen`: its JSON, or why not.
pub async fn get(listen: &str, path: &str) -> Result<Value, ClientError> {
    let base = base_url(listen);
    let addr = base.trim_start_matches("http://").to_owned();
    let unreachable = |why: String| ClientError::Unreachable {
        addr: addr.clone(),
        why,
    };
    let client = http().map_err(&unreachable)?;
    let response = match client.get(format!("{base}{path}")).send().await {
        Ok(r) => r,
        Err(e) if refused_connection(&e) => return Err(ClientError::NotRunning(addr)),
        Err(e) => return Err(unreachable(e.to_string())),
    };
    let status = response.status();
    let text = response
        .text()
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let value: Value = serde_json::from_str(&text).map_err(|_| {
        unreachable(format!(
            "something answered HTTP {status} there, but not as ringmaster does"
        ))
    })?;
    match (status.is_success(), &value["error"]) {
        (true, _) => Ok(value),
        (false, Value::String(message)) => Err(ClientError::Refused {
            addr,
            status: status.as_u16(),
            message: message.clone(),
        }),
        (false, _) => Err(unreachable(format!(
            "something answered HTTP {status} there, but not as ringmaster does"
        ))),
    }
}

/// Which store the daemon listening on `listen` holds (`GET /api/v1/info`).
pub async fn info(listen: &str) -> Result<StoreInfo, ClientError> {
    let value = get(listen, "/api/v1/info").await?;
    match (&value["store"]["id"], &value["store"]["path"]) {
        (Value::String(id), Value::String(path)) => Ok(StoreInfo {
            id: id.clone(),
            path: path.clone(),
        }),
        _ => Err(ClientError::Unreachable {
            addr: base_url(listen).trim_start_matches("http://").to_owned(),
            why: "its /api/v1/info names no store".to_owned(),
        }),
    }
}

/// Check that the daemon listening on `listen` holds the store at `store_path` (which it has
/// locked, so only its identity file is read here): the same [`state::Store::identity`].
pub async fn verify(listen: &str, store_path: &std::path::Path) -> Result<StoreInfo, ClientError> {
    let addr = base_url(listen).trim_start_matches("http://").to_owned();
    let ours = std::fs::canonicalize(store_path)
        .unwrap_or_else(|_| store_path.to_path_buf())
        .display()
        .to_string();
    let Some(our_id) = state::read_identity(store_path) else {
        return Err(ClientError::Unverified {
            addr,
            ours,
            why: format!(
                "the store has no {} (it was last opened by an older ringmaster; restart the daemon)",
                state::IDENTITY_FILE
            ),
        });
    };
    let theirs = match info(listen).await {
        Ok(theirs) => theirs,
        // An older daemon has no /api/v1/info.
        Err(ClientError::Refused { status: 404, .. }) => {
            return Err(ClientError::Unverified {
                addr,
                ours,
                why: "it does not say which store it holds (an older ringmaster?)".to_owned(),
            });
        }
        Err(e) => return Err(e),
    };
    if theirs.id == our_id {
        Ok(theirs)
    } else {
        Err(ClientError::OtherStore {
            addr,
            theirs: theirs.path,
            their_id: theirs.id,
            ours,
            our_id,
        })
    }
}

/// Send `request` on behalf of `by` to the daemon listening on `listen`, with `token`.
/// Returns the daemon's message. The caller has [`verify`]-ed the daemon first.
pub async fn send(
    listen: &str,
    token: Option<&Secret>,
    request: &Request<'_>,
    by: &str,
) -> Result<String, ClientError> {
    let base = base_url(listen);
    let addr = base.trim_start_matches("http://").to_owned();
    let unreachable = |why: String| ClientError::Unreachable {
        addr: addr.clone(),
        why,
    };
    let url = endpoint(&base, request).map_err(&unreachable)?;
    let client = http().map_err(&unreachable)?;
    let mut post = client.post(url).json(&body(request, by));
    if let Some(token) = token {
        post = post.bearer_auth(token.expose());
    }
    let response = match post.send().await {
        Ok(r) => r,
        Err(e) if refused_connection(&e) => return Err(ClientError::NotRunning(addr)),
        // reqwest's message names the URL, never the headers: the token does not show.
        Err(e) => return Err(unreachable(e.to_string())),
    };
    let status = response.status();
    let text = response
        .text()
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    // Only ringmaster's own answers count: another program on the port (9464 is also the
    // OpenTelemetry Prometheus exporter's default) is no daemon, and the caller falls back.
    match (status.is_success(), &value["message"], &value["error"]) {
        (true, Value::String(message), _) => Ok(message.clone()),
        (false, _, Value::String(message)) => Err(ClientError::Refused {
            addr,
            status: status.as_u16(),
            message: message.clone(),
        }),
        _ => Err(unreachable(format!(
            "something answered HTTP {status} there, but not as ringmaster does"
        ))),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_addresses_are_reached_on_loopback() {
        assert_eq!(base_url("0.0.0.0:9464"), "http://127.0.0.1:9464");
        assert_eq!(base_url("[::]:9464"), "http://[::1]:9464");
        assert_eq!(base_url("127.0.0.1:1"), "http://127.0.0.1:1");
    }

    #[test]
    fn rollout_names_are_path_segments() {
        let url = endpoint(
            "http://127.0.0.1:1",
            &Request::Pause {
                rollout: "a/b c",
                reason: "x",
            },
        )
        .unwrap();
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:1/api/v1/rollouts/a%2Fb%20c/pause"
        );
    }
}

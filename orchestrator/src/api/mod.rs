//! The daemon's HTTP API (DESIGN §9, §11), on `api.listen` (default `127.0.0.1:9464`):
//!
//! - `GET /healthz`, `GET /readyz` (the last reconcile pass fetched Git and reached the forge),
//!   `GET /metrics` (Prometheus text, [`metrics`]);
//! - `GET /api/v1/info` (the version, and the identity and path of the store it holds);
//! - `GET /api/v1/rollouts[/{name}]` (what `ringmaster status --output json` prints);
//! - `POST /api/v1/rollouts/{name}/{pause|resume|abort}`, `POST /api/v1/freeze`,
//!   `POST /api/v1/unfreeze`: the control commands, behind the bearer token;
//! - with the local forge, `GET /api/v1/prs` and `POST /api/v1/rollouts/{name}/rings/{ring}/approve`
//!   (behind the token): what `ringmaster prs` and `approve` do while the daemon holds the store;
//! - `POST /webhooks/github` when a webhook secret is configured: wakes the reconcile loop.
//!
//! The server runs on its own thread ([`ApiServer`]) so that probes and scrapes answer while a
//! reconcile pass sits in a blocking Git fetch. Control commands take the daemon's write lock
//! ([`Shared::write_lock`]), which the run loop holds for the length of a pass: a pass that read
//! a rollout before a `pause` can never write it back over the pause.

pub mod client;
pub mod metrics;

mod auth;
mod routes;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use rings::model::Config;
use state::Store;
use tokio::sync::Notify;

use crate::daemon::clock::Clock;
use crate::secret::Secret;

pub use metrics::{ForgeOutcome, Metrics};

/// How long a control command waits for the reconcile pass in progress to end before it
/// answers 503 (the client's own timeout, [`client::RESPONSE_TIMEOUT`], is longer).
pub const WRITE_LOCK_WAIT: Duration = Duration::from_secs(60);

/// Why the API did not start.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// `api.listen` is not an address.
    #[error("api.listen `{0}` is not an address like 127.0.0.1:9464")]
    BadAddress(String),
    /// The address is taken or not ours.
    #[error(
        "cannot listen on {addr} (api.listen): {reason}; is another ringmaster running, or another program on that port?"
    )]
    Bind {
        /// The address.
        addr: String,
        /// What the OS said (in the message, not a `source`: it would be printed twice).
        reason: std::io::Error,
    },
    /// The server's runtime or thread did not start.
    #[error("starting the API server on {addr}: {reason}")]
    Start {
        /// The address.
        addr: String,
        /// What failed.
        reason: std::io::Error,
    },
}

/// When the last pass ended, and whether it worked (else why not).
type LastPass = (DateTime<Utc>, Result<(), String>);

/// What the last reconcile pass says about the daemon's health (`GET /readyz`).
#[derive(Debug)]
pub struct Readiness {
    last: Mutex<Option<LastPass>>,
    stale_after: TimeDelta,
}

impl Readiness {
    /// Not ready until a pass succeeds; not ready again when no pass ended for `stale_after`
    /// (a loop stuck on something that never times out).
    pub fn new(stale_after: TimeDelta) -> Readiness {
        Readiness {
            last: Mutex::new(None),
            stale_after,
        }
    }

    /// A pass ended at `at`: `Ok` when it fetched the GitOps mirror and the forge answered,
    /// else what went wrong (for people; never a secret).
    pub fn record(&self, at: DateTime<Utc>, outcome: Result<(), String>) {
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = Some((at, outcome));
    }

    /// Ready `now`, or why not.
    pub fn check(&self, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
        match &*self.last.lock().unwrap_or_else(PoisonError::into_inner) {
            None => Err("no reconcile pass has finished yet".to_owned()),
            Some((at, Err(e))) => Err(format!(
                "the last reconcile pass ({}) failed: {e}",
                at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            )),
            Some((at, Ok(()))) if now - *at > self.stale_after => Err(format!(
                "no reconcile pass has finished since {} (the loop may be stuck)",
                at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            )),
            Some((at, Ok(()))) => Ok(*at),
        }
    }
}

/// What the API shares with the run loop.
pub struct Shared {
    store: Arc<Store>,
    clock: Arc<dyn Clock + Send + Sync>,
    metrics: Arc<Metrics>,
    readiness: Readiness,
    config: RwLock<Option<Arc<Config>>>,
    wake: Notify,
    writer: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("store", &self.store)
            .field("readiness", &self.readiness)
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// Over `store`, telling time by `clock`, serving `metrics`; readiness goes stale after
    /// `stale_after` without a finished pass.
    pub fn new(
        store: Arc<Store>,
        clock: Arc<dyn Clock + Send + Sync>,
        metrics: Arc<Metrics>,
        stale_after: TimeDelta,
    ) -> Arc<Shared> {
        Arc::new(Shared {
            store,
            clock,
            metrics,
            readiness: Readiness::new(stale_after),
            config: RwLock::new(None),
            wake: Notify::new(),
            writer: tokio::sync::Mutex::new(()),
        })
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The in-memory metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The readiness the run loop reports to.
    pub fn readiness(&self) -> &Readiness {
        &self.readiness
    }

    /// The run loop publishes the configuration of its last pass (forecasts, `resume`).
    pub fn set_config(&self, config: Config) {
        *self.config.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(config));
    }

    /// The configuration of the daemon's last pass, if one loaded.
    pub fn config(&self) -> Option<Arc<Config>> {
        self.config
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Notified when something may have changed (a webhook, a control command): the run loop
    /// selects on `wake().notified()` next to its timer. A notification sent while a pass runs
    /// is kept, so the next pass starts right away.
    pub fn wake(&self) -> &Notify {
        &self.wake
    }

    /// The one-writer lock: the run loop holds it for a whole pass; control commands take it
    /// before they write.
    pub async fn write_lock(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.writer.lock().await
    }

    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }
}

/// What the API needs to list and approve the local forge's PRs.
#[derive(Debug, Clone)]
pub struct LocalForgeAccess {
    /// The GitOps repository the local forge merges into.
    pub repo: std::path::PathBuf,
    /// Commit author (name, email).
    pub author: (String, String),
}

/// How the API is set up.
#[derive(Debug, Default)]
pub struct ApiOptions {
    /// The bearer token of the mutating endpoints (`api.tokenEnv` / `api.tokenFile`). `None`:
    /// they answer 403, never act.
    pub token: Option<Secret>,
    /// The token's name (its variable or file), journalled beside the `by` a request claims:
    /// `alice (token RINGMASTER_API_TOKEN)`. `None`: `alice (API token)`.
    pub token_name: Option<String>,
    /// With the local forge: `GET /api/v1/prs` and `POST …/rings/{ring}/approve` work.
    pub local_forge: Option<LocalForgeAccess>,
    /// The GitHub webhook secret. `None`: `/webhooks/github` answers 404.
    pub webhook_secret: Option<Secret>,
}

/// Serve the API on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    options: ApiOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (router, webhooks) = routes::build(Arc::clone(&shared), options);
    let server = axum::serve(listener, router).with_graceful_shutdown(shutdown);
    match webhooks {
        // Webhooks only wake the loop (the truth is re-read from the forge); the event itself
        // is dropped here.
        Some(mut rx) => {
            // Wake-ups coalesce: everything queued is one wake-up, and `Notify` keeps at most
            // one while a pass runs, so many deliveries during a pass make one more pass.
            let forward = async move {
                while rx.recv().await.is_some() {
                    while rx.try_recv().is_ok() {}
                    shared.wake().notify_one();
                }
                std::future::pending::<()>().await;
            };
            tokio::select! {
                r = server => r,
                () = forward => Ok(()),
            }
        }
        None => server.await,
    }
}

/// The API server on its own thread (and its own single-threaded runtime). Dropping it stops
/// the server.
#[derive(Debug)]
pub struct ApiServer {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl ApiServer {
    /// Bind `listen` now (a bind failure is reported here, naming the address) and serve.
    pub fn start(
        listen: &str,
        shared: Arc<Shared>,
        options: ApiOptions,
    ) -> Result<ApiServer, ApiError> {
        let wanted: SocketAddr = listen
            .parse()
            .map_err(|_| ApiError::BadAddress(listen.to_owned()))?;
        let bind_err = |reason| ApiError::Bind {
            addr: listen.to_owned(),
            reason,
        };
        let std_listener = std::net::TcpListener::bind(wanted).map_err(bind_err)?;
        std_listener.set_nonblocking(true).map_err(bind_err)?;
        let addr = std_listener.local_addr().map_err(bind_err)?;
        let start_err = |reason| ApiError::Start {
            addr: addr.to_string(),
            reason,
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(start_err)?;
        let listener = {
            let _guard = rt.enter();
            tokio::net::TcpListener::from_std(std_listener).map_err(start_err)?
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("ringmaster-api".to_owned())
            .spawn(move || {
                let shutdown = async move {
                    let _ = stopped.await;
                };
                if let Err(e) = rt.block_on(serve(listener, shared, options, shutdown)) {
                    tracing::error!("the API server on {addr} stopped: {e}");
                }
            })
            .map_err(start_err)?;
        Ok(ApiServer {
            addr,
            stop: Some(stop),
        })
    }

    /// The address it listens on (the port the OS chose for `:0`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

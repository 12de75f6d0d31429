//! A token bucket per cluster (DESIGN §13): kube-rs has no client-side rate limiter, so every
//! request ringmaster makes to a cluster's API server first takes a token from that cluster's
//! bucket.
//!
//! The bucket holds up to `burst` tokens and refills at `qps` tokens a second. A request that
//! finds it empty *reserves* the next token and sleeps until it is due, so waiters are served
//! in arrival order and no wake-up is wasted. Time is [`tokio::time::Instant`], so tests can
//! run it under paused time; [`TokenBucket::reserve`] is the pure core, taking the instant it
//! reasons about.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Requests per second per cluster when nothing else is configured (DESIGN §13).
pub const DEFAULT_QPS: f64 = 5.0;
/// Requests a cluster may receive at once before the rate applies (DESIGN §13).
pub const DEFAULT_BURST: u32 = 10;

/// A token bucket: `burst` tokens, refilled at `qps` per second.
#[derive(Debug)]
pub struct TokenBucket {
    qps: f64,
    burst: f64,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// Tokens available; negative when requests are queued for future tokens.
    tokens: f64,
    /// When `tokens` was last brought up to date (`None` until the first request).
    at: Option<Instant>,
}

impl TokenBucket {
    /// A full bucket. A `qps` that is not a positive finite number falls back to
    /// [`DEFAULT_QPS`]; a `burst` of 0 is taken as 1 (a request always needs one token).
    pub fn new(qps: f64, burst: u32) -> TokenBucket {
        let qps = if qps.is_finite() && qps > 0.0 {
            qps
        } else {
            DEFAULT_QPS
        };
        let burst = f64::from(burst.max(1));
        TokenBucket {
            qps,
            burst,
            state: Mutex::new(State {
                tokens: burst,
                at: None,
            }),
        }
    }

    /// The refill rate, in tokens per second.
    pub fn qps(&self) -> f64 {
        self.qps
    }

    /// Take one token at `now` and return how long to wait before using it (zero when one was
    /// available). Instants earlier than the last one seen count as the last one.
    pub fn reserve(&self, now: Instant) -> Duration {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let last = state.at.unwrap_or(now);
        let now = now.max(last);
        let refill = now.duration_since(last).as_secs_f64() * self.qps;
        state.tokens = (state.tokens + refill).min(self.burst);
        state.at = Some(now);
        state.tokens -= 1.0;
        if state.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-state.tokens / self.qps)
        }
    }

    /// Wait for a token. Cancelling the wait does not give the token back (the next request
    /// waits a little longer; the budget is never exceeded).
    pub async fn acquire(&self) {
        let wait = self.reserve(Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_bucket_serves_its_burst_then_the_rate() {
        let bucket = TokenBucket::new(5.0, 10);
        let t0 = Instant::now();
        let waits: Vec<Duration> = (0..20).map(|_| bucket.reserve(t0)).collect();
        assert!(waits[..10].iter().all(Duration::is_zero), "{waits:?}");
        // The 11th request waits for the first refilled token (1/5 s), the 20th for the tenth.
        assert_eq!(waits[10], Duration::from_millis(200));
        assert_eq!(waits[19], Duration::from_secs(2));
    }

    #[test]
    fn tokens_come_back_with_time_up_to_the_burst() {
        let bucket = TokenBucket::new(5.0, 10);
        let t0 = Instant::now();
        for _ in 0..10 {
            assert!(bucket.reserve(t0).is_zero());
        }
        assert!(!bucket.reserve(t0).is_zero(), "empty: the next one waits");
        // One hour later the bucket is full again, but holds no more than its burst.
        let later = t0 + Duration::from_secs(3600);
        let waits: Vec<Duration> = (0..11).map(|_| bucket.reserve(later)).collect();
        assert!(waits[..10].iter().all(Duration::is_zero), "{waits:?}");
        assert!(!waits[10].is_zero(), "{waits:?}");
    }

    #[test]
    fn nonsense_settings_fall_back_to_safe_values() {
        assert_eq!(TokenBucket::new(0.0, 10).qps(), DEFAULT_QPS);
        assert_eq!(TokenBucket::new(f64::NAN, 10).qps(), DEFAULT_QPS);
        let bucket = TokenBucket::new(1.0, 0);
        let t0 = Instant::now();
        assert!(bucket.reserve(t0).is_zero());
        assert_eq!(bucket.reserve(t0), Duration::from_secs(1));
    }
}

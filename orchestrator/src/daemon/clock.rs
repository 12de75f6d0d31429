//! Time, injected (DESIGN §2): the daemon asks a [`Clock`], so tests run a week of windows and
//! soaks in milliseconds with a [`ManualClock`].

use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, TimeDelta, Utc};

/// Where the daemon gets "now".
pub trait Clock {
    /// The current instant.
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that only moves when told to (tests, the demo's accelerated time).
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<Mutex<DateTime<Utc>>>);

impl ManualClock {
    /// A clock standing at `at`.
    pub fn new(at: DateTime<Utc>) -> ManualClock {
        ManualClock(Arc::new(Mutex::new(at)))
    }

    /// Move forward by `by`.
    pub fn advance(&self, by: TimeDelta) {
        let mut t = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        *t += by;
    }

    /// Jump to `at` (never backwards).
    pub fn set(&self, at: DateTime<Utc>) {
        let mut t = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if at > *t {
            *t = at;
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A clock running `speed` times faster than the system clock from the instant it was made
/// (the demo: a 30 s soak passes in a few seconds).
#[derive(Debug, Clone, Copy)]
pub struct ScaledClock {
    origin: DateTime<Utc>,
    started: std::time::Instant,
    speed: f64,
}

impl ScaledClock {
    /// Starting at `origin`, `speed` × real time.
    pub fn new(origin: DateTime<Utc>, speed: f64) -> ScaledClock {
        ScaledClock {
            origin,
            started: std::time::Instant::now(),
            speed: speed.max(0.0),
        }
    }
}

impl Clock for ScaledClock {
    fn now(&self) -> DateTime<Utc> {
        let real = self.started.elapsed().as_secs_f64() * self.speed;
        self.origin + TimeDelta::milliseconds((real * 1000.0) as i64)
    }
}

//! Faults that last: a [`TimedFault`] starts after a number of requests and is active for a
//! duration, then clears itself. The bookkeeping here is pure (times are passed in); the
//! server turns an active fault into an answer, a delay or a dropped connection.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

/// How long each answer is delayed by a `slow` fault unless told otherwise.
pub const DEFAULT_SLOW_DELAY: Duration = Duration::from_secs(5);

/// The longest delay a `slow` fault adds to one answer, whatever it was given.
pub const MAX_SLOW_DELAY: Duration = Duration::from_secs(30);

/// The longest a timed fault lasts once started (30 days): longer durations are cut to it.
pub const MAX_FAULT_DURATION: Duration = Duration::from_secs(30 * 24 * 3600);

/// What goes wrong while a [`TimedFault`] is active.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FaultKind {
    /// Every request answers `502 Bad Gateway` with `{"message":"Server Error"}`.
    Errors,
    /// Every request answers `429` "API rate limit exceeded" with `Retry-After` (the seconds
    /// left in the fault), `x-ratelimit-remaining: 0` and `x-ratelimit-reset` (its end).
    RateLimit,
    /// Every request answers `403` "You have exceeded a secondary rate limit" with
    /// `retry-after` (the seconds left in the fault).
    SecondaryLimit,
    /// Every request is answered normally after a delay (default [`DEFAULT_SLOW_DELAY`], at
    /// most [`MAX_SLOW_DELAY`]).
    Slow,
    /// Every connection that sends a request is closed without an answer.
    Outage,
}

impl FaultKind {
    /// Every kind, in the order the help lists them.
    pub const ALL: [FaultKind; 5] = [
        FaultKind::Errors,
        FaultKind::RateLimit,
        FaultKind::SecondaryLimit,
        FaultKind::Slow,
        FaultKind::Outage,
    ];

    /// The name on the command line and in `POST /_fake/faults`.
    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::Errors => "errors",
            FaultKind::RateLimit => "rate-limit",
            FaultKind::SecondaryLimit => "secondary-limit",
            FaultKind::Slow => "slow",
            FaultKind::Outage => "outage",
        }
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FaultKind {
    type Err = String;

    fn from_str(s: &str) -> Result<FaultKind, String> {
        FaultKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s.trim())
            .ok_or_else(|| {
                let names: Vec<&str> = FaultKind::ALL.iter().map(|k| k.as_str()).collect();
                format!(
                    "unknown GitHub fault kind `{s}`: expected one of {}",
                    names.join(", ")
                )
            })
    }
}

/// A fault of the fake GitHub that lasts: after `after` requests answered normally, every
/// request meets `kind` for `duration`, then the fault clears itself. Inject it with
/// [`super::FakeGitHub::inject`] (as [`super::Fault::Timed`]) or `POST /_fake/faults`.
///
/// ```
/// use std::time::Duration;
/// use integration::github::{FaultKind, TimedFault};
/// let f = TimedFault::new(FaultKind::RateLimit, Duration::from_secs(600)).after(3);
/// assert_eq!((f.kind, f.after), (FaultKind::RateLimit, 3));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimedFault {
    /// What goes wrong.
    pub kind: FaultKind,
    /// Requests answered normally before the fault starts (0: from the next request).
    pub after: u64,
    /// How long the fault lasts once started (at most [`MAX_FAULT_DURATION`]).
    pub duration: Duration,
    /// The delay of a [`FaultKind::Slow`] fault (ignored by the other kinds).
    pub delay: Duration,
}

impl TimedFault {
    /// `kind` from the next request on, for `duration`.
    pub fn new(kind: FaultKind, duration: Duration) -> TimedFault {
        TimedFault {
            kind,
            after: 0,
            duration,
            delay: DEFAULT_SLOW_DELAY,
        }
    }

    /// Starts after `requests` requests answered normally.
    pub fn after(mut self, requests: u64) -> TimedFault {
        self.after = requests;
        self
    }

    /// The delay of a `slow` fault, cut to [`MAX_SLOW_DELAY`].
    pub fn with_delay(mut self, delay: Duration) -> TimedFault {
        self.delay = delay.min(MAX_SLOW_DELAY);
        self
    }
}

/// A fault met by one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Active {
    pub kind: FaultKind,
    /// Time left before the fault clears.
    pub left: Duration,
    /// The delay, for [`FaultKind::Slow`].
    pub delay: Duration,
}

/// One injected fault: waiting for its requests, or running until `ends`.
#[derive(Debug, Clone)]
struct Window {
    fault: TimedFault,
    waiting: u64,
    ends: Option<Instant>,
}

/// The timed faults of one fake, in injection order.
#[derive(Debug, Clone, Default)]
pub(crate) struct TimedFaults {
    windows: Vec<Window>,
}

impl TimedFaults {
    /// Adds a fault; one lasting zero time is ignored.
    pub fn push(&mut self, fault: TimedFault) {
        if fault.duration.is_zero() {
            return;
        }
        self.windows.push(Window {
            waiting: fault.after,
            ends: None,
            fault,
        });
    }

    pub fn clear(&mut self) {
        self.windows.clear();
    }

    /// One request arrives at `now`: faults that ended are forgotten, each waiting fault counts
    /// the request (or starts, once it has waited its count), and the first running fault in
    /// injection order is the one the request meets.
    pub fn on_request(&mut self, now: Instant) -> Option<Active> {
        self.windows.retain(|w| w.ends.is_none_or(|end| end > now));
        let mut hit = None;
        for w in &mut self.windows {
            let end = match w.ends {
                Some(end) => end,
                None if w.waiting == 0 => {
                    let end = now + w.fault.duration.min(MAX_FAULT_DURATION);
                    w.ends = Some(end);
                    end
                }
                None => {
                    w.waiting -= 1;
                    continue;
                }
            };
            hit = hit.or(Some(Active {
                kind: w.fault.kind,
                left: end.saturating_duration_since(now),
                delay: w.fault.delay.min(MAX_SLOW_DELAY),
            }));
        }
        hit
    }

    /// Faults not yet over at `now`, each with the requests it still waits for and, once
    /// started, the time it has left.
    pub fn pending(&self, now: Instant) -> Vec<(TimedFault, u64, Option<Duration>)> {
        self.windows
            .iter()
            .filter(|w| w.ends.is_none_or(|end| end > now))
            .map(|w| {
                (
                    w.fault.clone(),
                    w.waiting,
                    w.ends.map(|end| end.saturating_duration_since(now)),
                )
            })
            .collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn kinds_parse_and_print() {
        for kind in FaultKind::ALL {
            assert_eq!(kind.to_string().parse::<FaultKind>().unwrap(), kind);
        }
        assert_eq!(
            "bogus".parse::<FaultKind>().unwrap_err(),
            "unknown GitHub fault kind `bogus`: expected one of errors, rate-limit, secondary-limit, slow, outage"
        );
    }

    #[test]
    fn a_fault_starts_after_its_requests_and_clears_after_its_duration() {
        let t0 = Instant::now();
        let secs = |s: u64| t0 + Duration::from_secs(s);
        let mut faults = TimedFaults::default();
        faults.push(TimedFault::new(FaultKind::Errors, Duration::from_secs(10)).after(2));
        assert_eq!(faults.on_request(t0), None);
        assert_eq!(faults.on_request(secs(1)), None);
        // Started by the third request: ten seconds from then.
        let hit = faults.on_request(secs(100)).unwrap();
        assert_eq!(
            (hit.kind, hit.left),
            (FaultKind::Errors, Duration::from_secs(10))
        );
        assert_eq!(
            faults.on_request(secs(109)).unwrap().left,
            Duration::from_secs(1)
        );
        assert_eq!(faults.on_request(secs(110)), None);
        assert!(faults.pending(secs(110)).is_empty());
    }

    #[test]
    fn the_first_running_fault_wins_and_slow_delays_are_capped() {
        let t0 = Instant::now();
        let mut faults = TimedFaults::default();
        faults.push(TimedFault::new(FaultKind::Outage, Duration::ZERO));
        faults.push(
            TimedFault::new(FaultKind::Slow, Duration::from_secs(5))
                .with_delay(Duration::from_secs(3600)),
        );
        faults.push(TimedFault::new(
            FaultKind::RateLimit,
            Duration::from_secs(60),
        ));
        let hit = faults.on_request(t0).unwrap();
        assert_eq!((hit.kind, hit.delay), (FaultKind::Slow, MAX_SLOW_DELAY));
        let hit = faults.on_request(t0 + Duration::from_secs(6)).unwrap();
        assert_eq!(hit.kind, FaultKind::RateLimit);
        assert_eq!(faults.pending(t0).len(), 1);
        faults.clear();
        assert_eq!(faults.on_request(t0), None);
    }
}

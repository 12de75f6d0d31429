//! Maintenance windows and freezes: when an upgrade may start.
//!
//! A [`Window`] is a cron schedule evaluated in an IANA timezone plus a
//! duration: each time the schedule fires, the window opens for `duration`.
//! A [`Freeze`] is a half-open UTC interval `[from, to)` during which nothing
//! may start, whatever the windows say.
//!
//! # Time semantics (product contract)
//!
//! * The cron expression is matched against **wall-clock (local) time** in
//!   the window's timezone: `0 9 * * *` in `Europe/Berlin` opens at 09:00
//!   Berlin time, i.e. 08:00 UTC in winter (CET) and 07:00 UTC in summer
//!   (CEST).
//! * Each opening is computed from the previous instant `t`: take the local
//!   time of `t`, find the next matching wall-clock time strictly after it,
//!   and map that wall-clock time to an instant:
//!   * **exists once** → that instant;
//!   * **exists twice** (autumn overlap: clocks go back, e.g. Europe/Berlin
//!     2026-10-25 02:30 happens at 00:30 UTC in CEST and again at 01:30 UTC
//!     in CET) → the **earlier** instant. If that earlier instant is not after
//!     `t` (we are in the second pass of the repeated hour), the match is
//!     skipped and the search continues with the next wall-clock match. So a
//!     window opens **once per wall-clock time**, at its first occurrence;
//!   * **does not exist** (spring gap: clocks jump forward, e.g. Europe/Berlin
//!     2026-03-29 02:30 never happens) → the **first valid instant after the
//!     gap** (03:00 CEST = 01:00 UTC). Several matching times inside the same
//!     gap collapse onto that single instant: the window opens once.
//!
//!   Consequently openings are strictly increasing in UTC: they never go
//!   backwards and never repeat.
//! * The **duration is absolute time** from the opening instant: a 1 h window
//!   opening at 02:30 CEST on the autumn change day closes at 02:30 CET (one
//!   hour later in UTC), and a window opened by the spring gap at 03:00 CEST
//!   lasts its full duration from 03:00.
//! * Occurrences may **overlap** when the duration is longer than the period
//!   between openings; an instant is inside the window when it is inside any
//!   occurrence.
//! * A zero or negative duration means the window is never open.
//! * Searches give up after [`SEARCH_HORIZON_DAYS`]: a cron that never fires
//!   (`0 0 30 2 *`), or a freeze that does not end within the horizon, yields
//!   `None` rather than looping. The `cron` crate itself stops at the end of
//!   year 2100.

use chrono::{DateTime, Duration, LocalResult, TimeZone, Utc};
use chrono_tz::Tz;

/// How far ahead searches look before giving up (a cron that never fires,
/// e.g. `0 0 30 2 *`, or a freeze that never ends): three years, counted as
/// 3 × 365 days + 1 leap day = 1096 days from the instant asked about.
pub const SEARCH_HORIZON_DAYS: i64 = 3 * 365 + 1;

pub use rings::model::{Freeze, Window};

/// A half-open interval of time `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Interval {
    /// `start <= at < end`.
    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        self.start <= at && at < self.end
    }
}

/// `t + SEARCH_HORIZON_DAYS`, saturating at the end of representable time.
fn horizon_from(t: DateTime<Utc>) -> DateTime<Utc> {
    t.checked_add_signed(Duration::days(SEARCH_HORIZON_DAYS))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// The window's duration, treating a negative one as zero.
fn duration_of(w: &Window) -> Duration {
    w.duration.max(Duration::zero())
}

/// The next instant strictly after `t` at which the window opens (see the
/// module documentation for the DST rules). `None` if it does not open within
/// [`SEARCH_HORIZON_DAYS`] after `t`.
pub fn next_open_after(w: &Window, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
    next_open_within(w, t, horizon_from(t))
}

/// [`next_open_after`], giving up once openings are later than `limit`.
fn next_open_within(w: &Window, t: DateTime<Utc>, limit: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let tz = w.timezone;
    let mut naive = t.with_timezone(&tz).naive_local();
    loop {
        naive = w.schedule.next_naive_after(naive)?;
        let instant = match tz.from_local_datetime(&naive) {
            LocalResult::Single(d) => d.with_timezone(&Utc),
            // The earlier of the two passes of the repeated hour.
            LocalResult::Ambiguous(a, b) => a.min(b).with_timezone(&Utc),
            LocalResult::None => first_instant_after_gap(tz, naive)?,
        };
        if instant > limit {
            return None;
        }
        if instant > t {
            return Some(instant);
        }
        // Second pass of a repeated hour (its first pass is <= t): skip it.
    }
}

/// For a wall-clock time `n` that does not exist in `tz` (spring gap): the
/// first instant whose local time is at or after `n`, i.e. the instant the
/// clocks jumped (whose local time is the end of the gap).
fn first_instant_after_gap(tz: Tz, n: chrono::NaiveDateTime) -> Option<DateTime<Utc>> {
    let local_at =
        |secs: i64| DateTime::from_timestamp(secs, 0).map(|d| d.with_timezone(&tz).naive_local());
    // UTC offsets are within ±26 h, so `lo` is locally before `n` and `hi`
    // locally after it; bisect to the second (offsets are whole seconds).
    let guess = n.and_utc().timestamp();
    let mut lo = guess - 30 * 3600;
    let mut hi = guess + 30 * 3600;
    if local_at(lo)? >= n || local_at(hi)? < n {
        return None;
    }
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if local_at(mid)? >= n {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    DateTime::from_timestamp(hi, 0)
}

/// The window open at `at` (start <= at < end) if any, else the next one to
/// open. When several overlapping occurrences are open at `at`, the one that
/// opened first. `None` if none within [`SEARCH_HORIZON_DAYS`] after `at`.
pub fn current_or_next(w: &Window, at: DateTime<Utc>) -> Option<Interval> {
    current_or_next_within(w, at, horizon_from(at))
}

fn current_or_next_within(w: &Window, at: DateTime<Utc>, limit: DateTime<Utc>) -> Option<Interval> {
    let duration = duration_of(w);
    // An occurrence opening at `s` is open at `at` iff at - duration < s <= at.
    // Openings are enumerated in increasing order from any starting instant,
    // so the first opening after `at - duration` is either open at `at` or
    // the next one to open.
    let from = at
        .checked_sub_signed(duration)
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    let start = next_open_within(w, from, limit)?;
    let end = start
        .checked_add_signed(duration)
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    Some(Interval { start, end })
}

/// True when `at` is inside an occurrence of the window.
pub fn is_open(w: &Window, at: DateTime<Utc>) -> bool {
    current_or_next(w, at).is_some_and(|i| i.contains(at))
}

/// The freeze covering `at` (`from <= at < to`), if any; the first one in
/// slice order when several do.
pub fn freeze_at(freezes: &[Freeze], at: DateTime<Utc>) -> Option<&Freeze> {
    freezes.iter().find(|f| f.from <= at && at < f.to)
}

/// The earliest instant >= `at` that is inside the window (or any instant if
/// `window` is `None`) and outside every freeze.
///
/// A window occurrence partly covered by a freeze can still be used after the
/// freeze ends if the occurrence is still open then. `None` when no such
/// instant exists within [`SEARCH_HORIZON_DAYS`] after `at` (a cron that never
/// fires, a freeze that does not end, a window with no positive duration).
pub fn earliest_allowed(
    window: Option<&Window>,
    freezes: &[Freeze],
    at: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let limit = horizon_from(at);
    if window.is_some_and(|w| duration_of(w) <= Duration::zero()) {
        return None;
    }
    let mut t = at;
    // Each round either returns or moves `t` strictly forward past the end of
    // a freeze (each freeze at most once), so this terminates.
    loop {
        if let Some(w) = window {
            let occurrence = current_or_next_within(w, t, limit)?;
            t = t.max(occurrence.start);
        }
        if t > limit {
            return None;
        }
        match freeze_at(freezes, t) {
            Some(f) => t = f.to,
            None => return Some(t),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn window(expr: &str, tz: Tz, hours: i64) -> Window {
        Window {
            schedule: rings::schedule::CronSchedule::parse(expr).unwrap(),
            duration: Duration::hours(hours),
            timezone: tz,
        }
    }

    fn window_minutes(expr: &str, tz: Tz, minutes: i64) -> Window {
        Window {
            duration: Duration::minutes(minutes),
            ..window(expr, tz, 0)
        }
    }

    fn interval(start: &str, end: &str) -> Interval {
        Interval {
            start: utc(start),
            end: utc(end),
        }
    }

    fn freeze(from: &str, to: &str) -> Freeze {
        Freeze {
            from: utc(from),
            to: utc(to),
            reason: "test".to_string(),
        }
    }

    const BERLIN: Tz = chrono_tz::Europe::Berlin;
    const NEW_YORK: Tz = chrono_tz::America::New_York;

    // ---- DST: Europe/Berlin 2026 -------------------------------------------
    // Spring: 2026-03-29 02:00 CET (UTC+1) = 01:00 UTC → clocks to 03:00 CEST
    //         (UTC+2); local 02:00-02:59 does not exist.
    // Autumn: 2026-10-25 03:00 CEST (UTC+2) = 01:00 UTC → clocks to 02:00 CET
    //         (UTC+1); local 02:00-02:59 happens twice: 00:00-00:59 UTC (CEST)
    //         and 01:00-01:59 UTC (CET).

    #[test]
    fn berlin_spring_gap_opens_at_end_of_gap() {
        let w = window("30 2 * * *", BERLIN, 1);
        // 02:30 on 03-29 does not exist → first instant after the gap:
        // 03:00 CEST = 03:00 - 2 h = 01:00 UTC.
        assert_eq!(
            next_open_after(&w, utc("2026-03-28T12:00:00Z")),
            Some(utc("2026-03-29T01:00:00Z"))
        );
        // Next day 02:30 CEST = 02:30 - 2 h = 00:30 UTC.
        assert_eq!(
            next_open_after(&w, utc("2026-03-29T01:00:00Z")),
            Some(utc("2026-03-30T00:30:00Z"))
        );
        // The gap-day occurrence lasts 1 h of absolute time: 01:00-02:00 UTC.
        assert_eq!(
            current_or_next(&w, utc("2026-03-29T01:59:00Z")),
            Some(interval("2026-03-29T01:00:00Z", "2026-03-29T02:00:00Z"))
        );
    }

    #[test]
    fn berlin_spring_several_times_in_gap_open_once() {
        // `*/30`: 02:00 and 02:30 on 03-29 are in the gap and 03:00 CEST is the
        // end of the gap: all three are 01:00 UTC, which opens once.
        // Before: 01:30 CET = 00:30 UTC; after: 03:30 CEST = 01:30 UTC.
        let w = window_minutes("*/30 * * * *", BERLIN, 30);
        let mut t = utc("2026-03-29T00:00:00Z");
        let mut opens = Vec::new();
        for _ in 0..3 {
            t = next_open_after(&w, t).unwrap();
            opens.push(t);
        }
        assert_eq!(
            opens,
            vec![
                utc("2026-03-29T00:30:00Z"),
                utc("2026-03-29T01:00:00Z"),
                utc("2026-03-29T01:30:00Z"),
            ]
        );
    }

    #[test]
    fn berlin_autumn_overlap_opens_once_at_first_pass() {
        let w = window("30 2 * * *", BERLIN, 1);
        // 02:30 happens at 00:30 UTC (CEST, 02:30 - 2 h) and 01:30 UTC (CET,
        // 02:30 - 1 h): the window opens at the first, 00:30 UTC.
        assert_eq!(
            next_open_after(&w, utc("2026-10-24T12:00:00Z")),
            Some(utc("2026-10-25T00:30:00Z"))
        );
        // Not again at 01:30 UTC: the next opening is 10-26 02:30 CET
        // = 02:30 - 1 h = 01:30 UTC on 10-26.
        assert_eq!(
            next_open_after(&w, utc("2026-10-25T00:30:00Z")),
            Some(utc("2026-10-26T01:30:00Z"))
        );
        assert_eq!(
            next_open_after(&w, utc("2026-10-25T00:31:00Z")),
            Some(utc("2026-10-26T01:30:00Z"))
        );
        // Asked during the second pass (01:00 UTC = 02:00 CET): 02:30 CET is
        // ahead on the clock but its first pass (00:30 UTC) is past → skipped.
        assert_eq!(
            next_open_after(&w, utc("2026-10-25T01:00:00Z")),
            Some(utc("2026-10-26T01:30:00Z"))
        );
        // Duration is absolute: 00:30 UTC + 1 h = 01:30 UTC (02:30 CET), so at
        // 01:15 UTC (02:15 CET, second pass) the window is still open.
        assert_eq!(
            current_or_next(&w, utc("2026-10-25T01:15:00Z")),
            Some(interval("2026-10-25T00:30:00Z", "2026-10-25T01:30:00Z"))
        );
        assert!(is_open(&w, utc("2026-10-25T01:15:00Z")));
        assert!(!is_open(&w, utc("2026-10-25T01:30:00Z")));
    }

    #[test]
    fn berlin_nine_am_across_spring_change() {
        let w = window("0 9 * * *", BERLIN, 6);
        // 03-28: 09:00 CET = 09:00 - 1 h = 08:00 UTC.
        let before = next_open_after(&w, utc("2026-03-28T00:00:00Z")).unwrap();
        assert_eq!(before, utc("2026-03-28T08:00:00Z"));
        // 03-29: 09:00 CEST = 09:00 - 2 h = 07:00 UTC.
        assert_eq!(
            next_open_after(&w, before),
            Some(utc("2026-03-29T07:00:00Z"))
        );
    }

    #[test]
    fn berlin_half_hourly_across_autumn_change_is_monotonic() {
        let w = window_minutes("*/30 * * * *", BERLIN, 30);
        let start = utc("2026-10-24T00:00:00Z");
        let end = utc("2026-10-27T00:00:00Z");
        let mut t = start;
        let mut opens = Vec::new();
        loop {
            let next = next_open_after(&w, t).unwrap();
            if next > end {
                break;
            }
            assert!(next > t, "went backwards or repeated: {t} → {next}");
            opens.push(next);
            t = next;
        }
        // Wall clock runs from 10-24 02:00 CEST (00:00 UTC) to 10-27 01:00 CET
        // (00:00 UTC): 71 h of wall clock = 142 half-hour marks, each opening
        // once (02:30 on 10-24 … 01:00 on 10-27). Equivalently 72 h of UTC =
        // 144 half hours minus the 2 second-pass marks (02:00 and 02:30 CET at
        // 01:00 and 01:30 UTC on 10-25).
        assert_eq!(opens.len(), 142);
        assert!(!opens.contains(&utc("2026-10-25T01:00:00Z")));
        assert!(!opens.contains(&utc("2026-10-25T01:30:00Z")));
        // Consecutive openings are 30 min apart, except 02:30 CEST (00:30 UTC)
        // → 03:00 CET (02:00 UTC): 90 min.
        let gaps: Vec<i64> = opens
            .windows(2)
            .map(|p| (p[1] - p[0]).num_minutes())
            .collect();
        assert_eq!(gaps.iter().filter(|&&g| g == 90).count(), 1);
        assert!(gaps.iter().all(|&g| g == 30 || g == 90));
        let i = opens
            .iter()
            .position(|&o| o == utc("2026-10-25T00:30:00Z"))
            .unwrap();
        assert_eq!(opens[i + 1], utc("2026-10-25T02:00:00Z"));
    }

    // ---- DST: America/New_York 2026 ----------------------------------------
    // Spring: 2026-03-08 02:00 EST (UTC-5) = 07:00 UTC → 03:00 EDT (UTC-4).
    // Autumn: 2026-11-01 02:00 EDT (UTC-4) = 06:00 UTC → 01:00 EST (UTC-5);
    //         local 01:00-01:59 happens at 05:00-05:59 UTC and 06:00-06:59 UTC.

    #[test]
    fn new_york_autumn_overlap_opens_once() {
        let w = window("30 1 * * *", NEW_YORK, 1);
        // 01:30 EDT = 01:30 + 4 h = 05:30 UTC (the first pass).
        let first = next_open_after(&w, utc("2026-10-31T12:00:00Z")).unwrap();
        assert_eq!(first, utc("2026-11-01T05:30:00Z"));
        // Not at 06:30 UTC (01:30 EST): next is 11-02 01:30 EST = 06:30 UTC.
        assert_eq!(
            next_open_after(&w, first),
            Some(utc("2026-11-02T06:30:00Z"))
        );
    }

    #[test]
    fn new_york_spring_gap() {
        let w = window("30 2 * * *", NEW_YORK, 1);
        // 02:30 on 03-08 does not exist → 03:00 EDT = 03:00 + 4 h = 07:00 UTC.
        let first = next_open_after(&w, utc("2026-03-07T12:00:00Z")).unwrap();
        assert_eq!(first, utc("2026-03-08T07:00:00Z"));
        // Next day: 02:30 EDT = 06:30 UTC.
        assert_eq!(
            next_open_after(&w, first),
            Some(utc("2026-03-09T06:30:00Z"))
        );
    }

    #[test]
    fn whole_day_gap_samoa_2011() {
        // Pacific/Apia skipped 2011-12-30 entirely: 2011-12-29 23:59:59 (UTC-10)
        // was followed by 2011-12-31 00:00 (UTC+14), at 2011-12-30 10:00 UTC.
        let w = window("0 9 * * *", chrono_tz::Pacific::Apia, 1);
        // Asked at 29 Dec 20:00 UTC (10:00 local): 30 Dec 09:00 does not exist
        // → end of the gap, 31 Dec 00:00 local = 30 Dec 10:00 UTC.
        let first = next_open_after(&w, utc("2011-12-29T20:00:00Z")).unwrap();
        assert_eq!(first, utc("2011-12-30T10:00:00Z"));
        // Then 31 Dec 09:00 (UTC+14) = 30 Dec 19:00 UTC.
        assert_eq!(
            next_open_after(&w, first),
            Some(utc("2011-12-30T19:00:00Z"))
        );
    }

    // ---- current_or_next ----------------------------------------------------

    #[test]
    fn current_or_next_inside_at_end_and_before() {
        // 09:00-15:00 UTC every day.
        let w = window("0 9 * * *", chrono_tz::UTC, 6);
        let today = interval("2026-11-23T09:00:00Z", "2026-11-23T15:00:00Z");
        let tomorrow = interval("2026-11-24T09:00:00Z", "2026-11-24T15:00:00Z");
        // Inside: 10:00 ∈ [09:00, 15:00).
        assert_eq!(
            current_or_next(&w, utc("2026-11-23T10:00:00Z")),
            Some(today)
        );
        // Exactly at the opening: 09:00 ∈ [09:00, 15:00).
        assert_eq!(
            current_or_next(&w, utc("2026-11-23T09:00:00Z")),
            Some(today)
        );
        // Before: the next to open.
        assert_eq!(
            current_or_next(&w, utc("2026-11-23T08:59:00Z")),
            Some(today)
        );
        // Exactly at the end (exclusive): tomorrow's.
        assert_eq!(
            current_or_next(&w, utc("2026-11-23T15:00:00Z")),
            Some(tomorrow)
        );
        assert!(is_open(&w, utc("2026-11-23T14:59:59Z")));
        assert!(!is_open(&w, utc("2026-11-23T15:00:00Z")));
        assert!(!is_open(&w, utc("2026-11-23T08:59:59Z")));
    }

    #[test]
    fn current_or_next_across_midnight() {
        // 22:00 + 4 h = 02:00 the next day.
        let w = window("0 22 * * *", chrono_tz::UTC, 4);
        assert_eq!(
            current_or_next(&w, utc("2026-11-24T01:00:00Z")),
            Some(interval("2026-11-23T22:00:00Z", "2026-11-24T02:00:00Z"))
        );
    }

    #[test]
    fn current_or_next_duration_longer_than_period() {
        // Opens every 4 h (00, 04, 08, ...) for 10 h: at 09:00 the occurrences
        // of 00:00 (→10:00), 04:00 (→14:00) and 08:00 (→18:00) are all open;
        // the first to have opened is returned.
        let w = window("0 */4 * * *", chrono_tz::UTC, 10);
        assert_eq!(
            current_or_next(&w, utc("2026-11-23T09:00:00Z")),
            Some(interval("2026-11-23T00:00:00Z", "2026-11-23T10:00:00Z"))
        );
        // At 10:00 the 00:00 one has closed; 04:00-14:00 is the oldest open.
        assert_eq!(
            current_or_next(&w, utc("2026-11-23T10:00:00Z")),
            Some(interval("2026-11-23T04:00:00Z", "2026-11-23T14:00:00Z"))
        );
        assert!(is_open(&w, utc("2026-11-23T10:00:00Z")));
    }

    #[test]
    fn never_firing_window() {
        // 30 February never exists.
        let w = window("0 0 30 2 *", chrono_tz::UTC, 6);
        assert_eq!(next_open_after(&w, utc("2026-01-01T00:00:00Z")), None);
        assert_eq!(current_or_next(&w, utc("2026-01-01T00:00:00Z")), None);
        assert!(!is_open(&w, utc("2026-01-01T00:00:00Z")));
        assert_eq!(
            earliest_allowed(Some(&w), &[], utc("2026-01-01T00:00:00Z")),
            None
        );
    }

    #[test]
    fn beyond_horizon() {
        // Only in 2030: from 2026-01-01 that is > 1096 days ahead
        // (2026-01-01 + 1096 d = 2029-01-01, 2028 being a leap year).
        let w = window("0 0 9 1 1 * 2030", chrono_tz::UTC, 6);
        assert_eq!(next_open_after(&w, utc("2026-01-01T00:00:00Z")), None);
        // Within the horizon from 2027-06-01 (+1096 d ≈ 2030-06-01).
        assert_eq!(
            next_open_after(&w, utc("2027-06-01T00:00:00Z")),
            Some(utc("2030-01-01T09:00:00Z"))
        );
    }

    // ---- freezes ------------------------------------------------------------

    #[test]
    fn freeze_at_finds_covering_freeze() {
        let freezes = [
            freeze("2026-12-01T00:00:00Z", "2026-12-02T00:00:00Z"),
            freeze("2026-12-10T00:00:00Z", "2026-12-11T00:00:00Z"),
        ];
        assert_eq!(
            freeze_at(&freezes, utc("2026-12-10T12:00:00Z")),
            Some(&freezes[1])
        );
        assert_eq!(
            freeze_at(&freezes, utc("2026-12-01T00:00:00Z")),
            Some(&freezes[0])
        );
        // `to` is exclusive.
        assert_eq!(freeze_at(&freezes, utc("2026-12-02T00:00:00Z")), None);
    }

    #[test]
    fn freeze_ending_inside_an_open_occurrence() {
        // Window 09:00-15:00 UTC; freeze 08:00-11:00 → allowed from 11:00,
        // the 09:00 occurrence being still open until 15:00.
        let w = window("0 9 * * *", chrono_tz::UTC, 6);
        let freezes = [freeze("2026-11-23T08:00:00Z", "2026-11-23T11:00:00Z")];
        assert_eq!(
            earliest_allowed(Some(&w), &freezes, utc("2026-11-23T07:00:00Z")),
            Some(utc("2026-11-23T11:00:00Z"))
        );
    }

    #[test]
    fn freeze_covering_the_whole_occurrence() {
        // Freeze 08:00-16:00 covers 09:00-15:00 entirely → next day 09:00.
        let w = window("0 9 * * *", chrono_tz::UTC, 6);
        let freezes = [freeze("2026-11-23T08:00:00Z", "2026-11-23T16:00:00Z")];
        assert_eq!(
            earliest_allowed(Some(&w), &freezes, utc("2026-11-23T07:00:00Z")),
            Some(utc("2026-11-24T09:00:00Z"))
        );
        // Ending exactly at the close (15:00, exclusive end) → next day too.
        let freezes = [freeze("2026-11-23T08:00:00Z", "2026-11-23T15:00:00Z")];
        assert_eq!(
            earliest_allowed(Some(&w), &freezes, utc("2026-11-23T07:00:00Z")),
            Some(utc("2026-11-24T09:00:00Z"))
        );
    }

    #[test]
    fn year_end_freeze() {
        // 2026-12-18 is a Friday (23 Nov Mon + 21 days = 14 Dec Mon; 18 = Fri).
        // `0 9 * * MON-THU` Berlin 6 h, asked Fri 18 Dec 20:00 UTC (21:00 CET):
        // next opening Mon 21 Dec 09:00 CET = 08:00 UTC, inside the freeze
        // [19 Dec, 5 Jan). After it ends (Tue 5 Jan 00:00 UTC = 01:00 CET) the
        // Mon 4 Jan occurrence (08:00-14:00 UTC) is closed, so the next is
        // Tue 5 Jan 09:00 CET = 08:00 UTC (5 Jan: 28 Dec Mon + 7 = 4 Jan Mon).
        let w = window("0 9 * * MON-THU", BERLIN, 6);
        let freezes = [freeze("2026-12-19T00:00:00Z", "2027-01-05T00:00:00Z")];
        assert_eq!(
            earliest_allowed(Some(&w), &freezes, utc("2026-12-18T20:00:00Z")),
            Some(utc("2027-01-05T08:00:00Z"))
        );
    }

    #[test]
    fn no_window_no_freeze_is_now() {
        let at = utc("2026-11-23T10:17:42Z");
        assert_eq!(earliest_allowed(None, &[], at), Some(at));
    }

    #[test]
    fn no_window_chained_freezes() {
        // [10:00, 12:00) then [12:00, 13:00) (listed out of order) → 13:00.
        let freezes = [
            freeze("2026-11-23T12:00:00Z", "2026-11-23T13:00:00Z"),
            freeze("2026-11-23T10:00:00Z", "2026-11-23T12:00:00Z"),
        ];
        assert_eq!(
            earliest_allowed(None, &freezes, utc("2026-11-23T11:00:00Z")),
            Some(utc("2026-11-23T13:00:00Z"))
        );
    }

    #[test]
    fn inside_open_window_is_now() {
        let w = window("0 9 * * *", chrono_tz::UTC, 6);
        let at = utc("2026-11-23T10:00:00Z");
        assert_eq!(earliest_allowed(Some(&w), &[], at), Some(at));
    }

    #[test]
    fn freeze_that_never_ends() {
        let freezes = [freeze("2026-01-01T00:00:00Z", "2100-01-01T00:00:00Z")];
        let at = utc("2026-06-01T00:00:00Z");
        assert_eq!(earliest_allowed(None, &freezes, at), None);
        let w = window("0 9 * * *", chrono_tz::UTC, 6);
        assert_eq!(earliest_allowed(Some(&w), &freezes, at), None);
    }

    #[test]
    fn zero_duration_window_is_never_open() {
        let w = window("0 9 * * *", chrono_tz::UTC, 0);
        assert!(!is_open(&w, utc("2026-11-23T09:00:00Z")));
        assert_eq!(
            earliest_allowed(Some(&w), &[], utc("2026-11-23T08:00:00Z")),
            None
        );
    }
}

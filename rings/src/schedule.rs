//! Cron expressions as platform teams write them.
//!
//! [`CronSchedule`] accepts the standard (Vixie) crontab syntax and evaluates it
//! on naive wall-clock times. It is built on the `cron` crate but does not
//! expose that crate's dialect, which differs from standard cron in ways that
//! would silently change a schedule's meaning:
//!
//! * the `cron` crate requires a seconds field first and rejects the standard
//!   5-field form; here `min hour dom month dow` is accepted and gets seconds
//!   `0` prefixed. The 6-field form (seconds first) and the 7-field form
//!   (seconds first, year last, 1970-2100) are accepted too;
//! * the `cron` crate numbers days of the week 1-7 with Sunday = 1, so `1-5`
//!   would mean Sunday-Thursday. Here the day-of-week field always uses the
//!   standard numbering: `0` or `7` = Sunday, `1` = Monday ... `6` = Saturday,
//!   or the names `SUN`..`SAT` (case-insensitive);
//! * when both day-of-month and day-of-week are restricted (neither is `*` or
//!   `?`), the expression fires when *either* matches, as in Vixie cron
//!   (`0 9 1 * MON` fires on the 1st of every month and on every Monday). When
//!   one of them is `*` or `?`, only the other one restricts the days.
//!
//! Every field is parsed here (numbers, names, lists `a,b`, ranges `a-b`,
//! steps `*/n`, `a-b/n` and `a/n` = `a-max/n`) and handed to the `cron` crate
//! as an explicit list, so the meaning of each field is decided by this module
//! and the error messages name the field in the user's terms. Month names
//! `JAN`..`DEC` and day names `SUN`..`SAT` are accepted (three letters,
//! case-insensitive). A range must not be reversed (`FRI-MON` is rejected; write
//! `5-7` or `FRI,SAT,SUN,MON`). The shorthands `@yearly`, `@annually`,
//! `@monthly`, `@weekly`, `@daily`, `@midnight` and `@hourly` are accepted.
//! Quartz extensions (`L`, `W`, `#`) and `@reboot` are not supported.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use chrono::{Datelike, NaiveDateTime, TimeZone, Utc};

/// The last year the `cron` crate can represent; nothing fires after it.
const LAST_YEAR: i32 = 2100;

/// A cron expression as platform teams write it, validated.
///
/// Equality compares the source text.
#[derive(Debug, Clone)]
pub struct CronSchedule {
    /// The expression as written (surrounding whitespace trimmed).
    source: String,
    /// One schedule, or two whose union is the expression (day-of-month OR
    /// day-of-week when both are restricted).
    schedules: Vec<cron::Schedule>,
}

impl PartialEq for CronSchedule {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for CronSchedule {}

impl CronSchedule {
    /// Parse. Errors are a human message saying what is wrong, e.g.
    /// "expected 5 fields (minute hour day-of-month month day-of-week), or 6/7
    /// with seconds first; found 4" or "day-of-week `8` is out of range 0-7".
    pub fn parse(expr: &str) -> Result<CronSchedule, String> {
        let source = expr.trim();
        if source.is_empty() {
            return Err("empty cron expression: expected 5 fields (minute hour \
                        day-of-month month day-of-week), or 6/7 with seconds first"
                .to_string());
        }
        let expanded;
        let text = if source.starts_with('@') {
            expanded = shorthand(source)?;
            expanded
        } else {
            source
        };
        let fields: Vec<&str> = text.split_whitespace().collect();
        let (second, rest) = match fields.len() {
            5 => ("0", &fields[..]),
            6 | 7 => (fields[0], &fields[1..]),
            n => {
                return Err(format!(
                    "expected 5 fields (minute hour day-of-month month day-of-week), \
                     or 6/7 with seconds first; found {n}"
                ));
            }
        };
        let second = render(Kind::Second, second)?;
        let minute = render(Kind::Minute, rest[0])?;
        let hour = render(Kind::Hour, rest[1])?;
        let dom = render(Kind::DayOfMonth, rest[2])?;
        let month = render(Kind::Month, rest[3])?;
        let dow = render(Kind::DayOfWeek, rest[4])?;
        let year = match rest.get(5) {
            Some(year) => render(Kind::Year, year)?,
            None => "*".to_string(),
        };

        let build = |dom: &str, dow: &str| {
            let translated = format!("{second} {minute} {hour} {dom} {month} {dow} {year}");
            cron::Schedule::from_str(&translated)
                .map_err(|e| format!("cron expression `{source}` was rejected: {e}"))
        };
        let schedules = if dom == "*" || dow == "*" {
            vec![build(&dom, &dow)?]
        } else {
            // Vixie semantics: both restricted → fires when either matches.
            vec![build(&dom, "*")?, build("*", &dow)?]
        };
        Ok(CronSchedule {
            source: source.to_string(),
            schedules,
        })
    }

    /// The expression as written (surrounding whitespace trimmed).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The first wall-clock (naive local) time strictly after `after` that
    /// matches. `None` if nothing matches any more (the `cron` crate stops at
    /// the end of year 2100), e.g. for `0 0 30 2 *`.
    pub fn next_naive_after(&self, after: NaiveDateTime) -> Option<NaiveDateTime> {
        if after.year() > LAST_YEAR {
            return None;
        }
        // Naive wall-clock arithmetic: run the schedule over UTC, which has no
        // gaps nor overlaps, as if the naive time were UTC.
        let start = Utc.from_utc_datetime(&after);
        self.schedules
            .iter()
            .filter_map(|s| s.after(&start).next())
            .map(|d| d.naive_utc())
            .min()
    }
}

impl fmt::Display for CronSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl FromStr for CronSchedule {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CronSchedule::parse(s)
    }
}

/// Expand an `@` shorthand into the standard 5-field form.
fn shorthand(s: &str) -> Result<&'static str, String> {
    match s.to_ascii_lowercase().as_str() {
        "@yearly" | "@annually" => Ok("0 0 1 1 *"),
        "@monthly" => Ok("0 0 1 * *"),
        "@weekly" => Ok("0 0 * * 0"),
        "@daily" | "@midnight" => Ok("0 0 * * *"),
        "@hourly" => Ok("0 * * * *"),
        _ => Err(format!(
            "unknown shorthand `{s}` (expected one of @yearly, @annually, @monthly, \
             @weekly, @daily, @midnight, @hourly)"
        )),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Second,
    Minute,
    Hour,
    DayOfMonth,
    Month,
    DayOfWeek,
    Year,
}

const MONTH_NAMES: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
/// Index = standard day-of-week number (0 = Sunday). The `cron` crate
/// understands these names unambiguously.
const DAY_NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Second => "second",
            Kind::Minute => "minute",
            Kind::Hour => "hour",
            Kind::DayOfMonth => "day-of-month",
            Kind::Month => "month",
            Kind::DayOfWeek => "day-of-week",
            Kind::Year => "year",
        }
    }

    /// Accepted values (day-of-week accepts 7 as a second Sunday).
    fn bounds(self) -> (u32, u32) {
        match self {
            Kind::Second | Kind::Minute => (0, 59),
            Kind::Hour => (0, 23),
            Kind::DayOfMonth => (1, 31),
            Kind::Month => (1, 12),
            Kind::DayOfWeek => (0, 7),
            Kind::Year => (1970, LAST_YEAR as u32),
        }
    }

    /// What `*` covers (day-of-week: 0-6, each day once).
    fn all(self) -> (u32, u32) {
        match self {
            Kind::DayOfWeek => (0, 6),
            other => other.bounds(),
        }
    }

    /// Value of a name (case-insensitive), if this field has names.
    fn named(self, token: &str) -> Option<u32> {
        let upper = token.to_ascii_uppercase();
        let position = match self {
            Kind::Month => MONTH_NAMES.iter().position(|n| *n == upper)? + 1,
            Kind::DayOfWeek => DAY_NAMES.iter().position(|n| *n == upper)?,
            _ => return None,
        };
        u32::try_from(position).ok()
    }

    fn value_hint(self) -> &'static str {
        match self {
            Kind::Month => "a number 1-12 or a month name JAN-DEC",
            Kind::DayOfWeek => "a number 0-7 (0 and 7 = Sunday) or a day name SUN-SAT",
            _ => "a number",
        }
    }
}

/// Parse one field into the set of values it matches.
fn parse_field(kind: Kind, text: &str) -> Result<BTreeSet<u32>, String> {
    let label = kind.label();
    let mut values = BTreeSet::new();
    for item in text.split(',') {
        if item.is_empty() {
            return Err(format!("{label} field `{text}` has an empty list element"));
        }
        let (base, step) = match item.split_once('/') {
            Some((base, step)) => {
                let step = match step.parse::<u32>() {
                    Ok(n) if n >= 1 => n,
                    _ => {
                        return Err(format!(
                            "{label} step `{step}` in `{item}` must be a positive number"
                        ));
                    }
                };
                (base, Some(step))
            }
            None => (item, None),
        };
        let (lo, hi) = if base == "*" || (base == "?" && accepts_question_mark(kind)) {
            kind.all()
        } else if let Some((a, b)) = base.split_once('-') {
            let (a, b) = (value(kind, a)?, value(kind, b)?);
            if a > b {
                return Err(format!(
                    "{label} range `{base}` is reversed (start after end)"
                ));
            }
            (a, b)
        } else {
            let a = value(kind, base)?;
            match step {
                // `a/n` means `a-max/n`.
                Some(_) => (a, kind.all().1.max(a)),
                None => (a, a),
            }
        };
        let step = step.unwrap_or(1) as usize;
        values.extend((lo..=hi).step_by(step));
    }
    if kind == Kind::DayOfWeek && values.remove(&7) {
        values.insert(0);
    }
    Ok(values)
}

fn accepts_question_mark(kind: Kind) -> bool {
    matches!(kind, Kind::DayOfMonth | Kind::DayOfWeek)
}

/// One value: a number within the field's bounds or a name.
fn value(kind: Kind, token: &str) -> Result<u32, String> {
    let label = kind.label();
    let (min, max) = kind.bounds();
    if !token.is_empty() && token.bytes().all(|b| b.is_ascii_digit()) {
        return match token.parse::<u32>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(format!("{label} `{token}` is out of range {min}-{max}")),
        };
    }
    kind.named(token).ok_or_else(|| {
        format!(
            "{label} `{token}` is not valid (expected {})",
            kind.value_hint()
        )
    })
}

/// Validate a field and render it for the `cron` crate: `*` when the field is
/// unrestricted as written (`*` or `?`), else an explicit comma list (day
/// names for the day-of-week, so the crate's numbering never applies).
fn render(kind: Kind, text: &str) -> Result<String, String> {
    let values = parse_field(kind, text)?;
    if text == "*" || (text == "?" && accepts_question_mark(kind)) {
        return Ok("*".to_string());
    }
    let rendered: Vec<String> = values
        .iter()
        .map(|&v| match kind {
            Kind::DayOfWeek => DAY_NAMES
                .get(v as usize)
                .map_or_else(|| v.to_string(), |n| (*n).to_string()),
            _ => v.to_string(),
        })
        .collect();
    Ok(rendered.join(","))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use chrono::{NaiveDate, Weekday};

    fn at(y: i32, m: u32, d: u32, h: u32, min: u32, s: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, m, d)
            .unwrap()
            .and_hms_opt(h, min, s)
            .unwrap()
    }

    /// The first `n` fires strictly after `from`.
    fn fires(expr: &str, from: NaiveDateTime, n: usize) -> Vec<NaiveDateTime> {
        let s = CronSchedule::parse(expr).unwrap();
        let mut out = Vec::new();
        let mut t = from;
        for _ in 0..n {
            t = s.next_naive_after(t).unwrap();
            out.push(t);
        }
        out
    }

    /// Calendar used below (checked by hand: 2026-11-23 is a Monday):
    /// Mon 23, Tue 24, Wed 25, Thu 26, Fri 27, Sat 28, Sun 29, Mon 30 November;
    /// Tue 1, Wed 2, Thu 3, Fri 4, Sat 5, Sun 6, Mon 7 December.
    #[test]
    fn calendar_anchor() {
        assert_eq!(
            NaiveDate::from_ymd_opt(2026, 11, 23).unwrap().weekday(),
            Weekday::Mon
        );
        assert_eq!(
            NaiveDate::from_ymd_opt(2026, 12, 1).unwrap().weekday(),
            Weekday::Tue
        );
    }

    #[test]
    fn weekdays_one_to_five_are_monday_to_friday() {
        // From Sat 21 Nov 10:00: Sun 22 skipped, then Mon 23..Fri 27, Sat 28 and
        // Sun 29 skipped, then Mon 30.
        assert_eq!(
            fires("0 9 * * 1-5", at(2026, 11, 21, 10, 0, 0), 6),
            vec![
                at(2026, 11, 23, 9, 0, 0),
                at(2026, 11, 24, 9, 0, 0),
                at(2026, 11, 25, 9, 0, 0),
                at(2026, 11, 26, 9, 0, 0),
                at(2026, 11, 27, 9, 0, 0),
                at(2026, 11, 30, 9, 0, 0),
            ]
        );
    }

    #[test]
    fn zero_and_seven_are_sunday() {
        // From Mon 23 Nov: Sunday 29 Nov, then Sunday 6 Dec (29 + 7 = 36 = 30 + 6).
        let expected = vec![at(2026, 11, 29, 9, 0, 0), at(2026, 12, 6, 9, 0, 0)];
        assert_eq!(fires("0 9 * * 0", at(2026, 11, 23, 0, 0, 0), 2), expected);
        assert_eq!(fires("0 9 * * 7", at(2026, 11, 23, 0, 0, 0), 2), expected);
        assert_eq!(fires("0 9 * * SUN", at(2026, 11, 23, 0, 0, 0), 2), expected);
    }

    #[test]
    fn five_to_seven_is_friday_to_sunday() {
        // 5 = Fri 27, 6 = Sat 28, 7 = Sun 29, then Fri 4 Dec (27 + 7 = 34 = 30 + 4).
        assert_eq!(
            fires("0 9 * * 5-7", at(2026, 11, 23, 0, 0, 0), 4),
            vec![
                at(2026, 11, 27, 9, 0, 0),
                at(2026, 11, 28, 9, 0, 0),
                at(2026, 11, 29, 9, 0, 0),
                at(2026, 12, 4, 9, 0, 0),
            ]
        );
    }

    #[test]
    fn every_fifteen_minutes() {
        // 10:07 → 10:15, 10:30, 10:45, 11:00.
        assert_eq!(
            fires("*/15 * * * *", at(2026, 11, 23, 10, 7, 0), 4),
            vec![
                at(2026, 11, 23, 10, 15, 0),
                at(2026, 11, 23, 10, 30, 0),
                at(2026, 11, 23, 10, 45, 0),
                at(2026, 11, 23, 11, 0, 0),
            ]
        );
    }

    #[test]
    fn named_range_monday_to_thursday() {
        // From Mon 23 00:00: Mon 23, Tue 24, Wed 25, Thu 26, then Mon 30.
        let expected = vec![
            at(2026, 11, 23, 9, 0, 0),
            at(2026, 11, 24, 9, 0, 0),
            at(2026, 11, 25, 9, 0, 0),
            at(2026, 11, 26, 9, 0, 0),
            at(2026, 11, 30, 9, 0, 0),
        ];
        assert_eq!(
            fires("0 9 * * MON-THU", at(2026, 11, 23, 0, 0, 0), 5),
            expected
        );
        assert_eq!(
            fires("0 9 * * mon-thu", at(2026, 11, 23, 0, 0, 0), 5),
            expected
        );
        // Strictly after: from Thu 26 09:00 the next is Mon 30 09:00.
        assert_eq!(
            fires("0 9 * * MON-THU", at(2026, 11, 26, 9, 0, 0), 1),
            vec![at(2026, 11, 30, 9, 0, 0)]
        );
    }

    #[test]
    fn named_list_tuesday_wednesday() {
        // Tue 24, Wed 25, then Tue 1 Dec.
        assert_eq!(
            fires("0 10 * * TUE,WED", at(2026, 11, 23, 0, 0, 0), 3),
            vec![
                at(2026, 11, 24, 10, 0, 0),
                at(2026, 11, 25, 10, 0, 0),
                at(2026, 12, 1, 10, 0, 0),
            ]
        );
    }

    #[test]
    fn day_of_week_steps() {
        // */2 over 0-6 = 0,2,4,6 = Sun, Tue, Thu, Sat: Tue 24, Thu 26, Sat 28, Sun 29.
        assert_eq!(
            fires("0 9 * * */2", at(2026, 11, 23, 9, 0, 0), 4),
            vec![
                at(2026, 11, 24, 9, 0, 0),
                at(2026, 11, 26, 9, 0, 0),
                at(2026, 11, 28, 9, 0, 0),
                at(2026, 11, 29, 9, 0, 0),
            ]
        );
        // 1-5/2 = 1,3,5 = Mon, Wed, Fri: Mon 23, Wed 25, Fri 27, Mon 30.
        let expected = vec![
            at(2026, 11, 23, 9, 0, 0),
            at(2026, 11, 25, 9, 0, 0),
            at(2026, 11, 27, 9, 0, 0),
            at(2026, 11, 30, 9, 0, 0),
        ];
        assert_eq!(
            fires("0 9 * * 1-5/2", at(2026, 11, 23, 0, 0, 0), 4),
            expected
        );
        assert_eq!(
            fires("0 9 * * MON-FRI/2", at(2026, 11, 23, 0, 0, 0), 4),
            expected
        );
    }

    #[test]
    fn six_field_with_seconds() {
        // sec 0, min 30, hour 9: strictly after 09:30:00 is the next day.
        assert_eq!(
            fires("0 30 9 * * *", at(2026, 11, 23, 9, 30, 0), 1),
            vec![at(2026, 11, 24, 9, 30, 0)]
        );
        assert_eq!(
            fires("0 30 9 * * *", at(2026, 11, 23, 9, 29, 59), 1),
            vec![at(2026, 11, 23, 9, 30, 0)]
        );
        // 6-field day-of-week is standard too: 1 = Monday (30 Nov).
        assert_eq!(
            fires("0 30 9 * * 1", at(2026, 11, 24, 0, 0, 0), 1),
            vec![at(2026, 11, 30, 9, 30, 0)]
        );
    }

    #[test]
    fn seven_field_with_year() {
        // Only in 2027: the first noon of 2027 is 1 Jan 12:00.
        assert_eq!(
            fires("0 0 12 * * * 2027", at(2026, 11, 23, 0, 0, 0), 1),
            vec![at(2027, 1, 1, 12, 0, 0)]
        );
    }

    #[test]
    fn shorthands() {
        assert_eq!(
            fires("@daily", at(2026, 11, 23, 0, 0, 0), 2),
            vec![at(2026, 11, 24, 0, 0, 0), at(2026, 11, 25, 0, 0, 0)]
        );
        assert_eq!(
            fires("@midnight", at(2026, 11, 23, 0, 0, 0), 1),
            vec![at(2026, 11, 24, 0, 0, 0)]
        );
        // @weekly = Sunday midnight: Sun 29 Nov.
        assert_eq!(
            fires("@weekly", at(2026, 11, 23, 0, 0, 0), 1),
            vec![at(2026, 11, 29, 0, 0, 0)]
        );
        assert_eq!(
            fires("@hourly", at(2026, 11, 23, 10, 7, 0), 1),
            vec![at(2026, 11, 23, 11, 0, 0)]
        );
        assert_eq!(
            fires("@monthly", at(2026, 11, 23, 0, 0, 0), 1),
            vec![at(2026, 12, 1, 0, 0, 0)]
        );
        assert_eq!(
            fires("@yearly", at(2026, 11, 23, 0, 0, 0), 1),
            vec![at(2027, 1, 1, 0, 0, 0)]
        );
        assert_eq!(
            fires("@annually", at(2026, 11, 23, 0, 0, 0), 1),
            vec![at(2027, 1, 1, 0, 0, 0)]
        );
        assert_eq!(CronSchedule::parse("@daily").unwrap().source(), "@daily");
    }

    #[test]
    fn day_of_month_or_day_of_week() {
        // `0 9 1 * MON`: Mondays OR the 1st. From Mon 23 09:00: Mon 30,
        // Tue 1 Dec (the 1st), Mon 7 Dec.
        assert_eq!(
            fires("0 9 1 * MON", at(2026, 11, 23, 9, 0, 0), 3),
            vec![
                at(2026, 11, 30, 9, 0, 0),
                at(2026, 12, 1, 9, 0, 0),
                at(2026, 12, 7, 9, 0, 0),
            ]
        );
        // With day-of-month `*` (or `?`) only the day-of-week restricts.
        assert_eq!(
            fires("0 9 ? * MON", at(2026, 11, 23, 9, 0, 0), 2),
            vec![at(2026, 11, 30, 9, 0, 0), at(2026, 12, 7, 9, 0, 0)]
        );
        // With day-of-week `*` only the day-of-month restricts: the 1st.
        assert_eq!(
            fires("0 9 1 * *", at(2026, 11, 23, 9, 0, 0), 2),
            vec![at(2026, 12, 1, 9, 0, 0), at(2027, 1, 1, 9, 0, 0)]
        );
    }

    #[test]
    fn month_names() {
        // Only in March: from 23 Nov 2026 the next 1st-of-month 00:00 is 1 Mar 2027.
        assert_eq!(
            fires("0 0 1 MAR *", at(2026, 11, 23, 0, 0, 0), 1),
            vec![at(2027, 3, 1, 0, 0, 0)]
        );
    }

    #[test]
    fn never_fires() {
        let s = CronSchedule::parse("0 0 30 2 *").unwrap();
        assert_eq!(s.next_naive_after(at(2026, 1, 1, 0, 0, 0)), None);
    }

    #[test]
    fn display_is_source() {
        let s = CronSchedule::parse("  0 9 * * 1-5 ").unwrap();
        assert_eq!(s.to_string(), "0 9 * * 1-5");
        assert_eq!(s.source(), "0 9 * * 1-5");
    }

    fn err(expr: &str) -> String {
        CronSchedule::parse(expr).unwrap_err()
    }

    #[test]
    fn invalid_expressions() {
        assert_eq!(
            err("* * *"),
            "expected 5 fields (minute hour day-of-month month day-of-week), \
             or 6/7 with seconds first; found 3"
        );
        assert_eq!(err("61 * * * *"), "minute `61` is out of range 0-59");
        assert_eq!(err("0 9 * * 8"), "day-of-week `8` is out of range 0-7");
        assert_eq!(
            err("0 9 * * FOO"),
            "day-of-week `FOO` is not valid (expected a number 0-7 (0 and 7 = Sunday) \
             or a day name SUN-SAT)"
        );
        assert!(err("").starts_with("empty cron expression"));
        assert!(err("   ").starts_with("empty cron expression"));
        assert_eq!(err("0 24 * * *"), "hour `24` is out of range 0-23");
        assert_eq!(err("0 9 0 * *"), "day-of-month `0` is out of range 1-31");
        assert_eq!(err("0 9 * 13 *"), "month `13` is out of range 1-12");
        assert_eq!(
            err("0 9 * * FRI-MON"),
            "day-of-week range `FRI-MON` is reversed (start after end)"
        );
        assert_eq!(
            err("*/0 * * * *"),
            "minute step `0` in `*/0` must be a positive number"
        );
        assert_eq!(
            err("0 9 * * 1,,2"),
            "day-of-week field `1,,2` has an empty list element"
        );
        assert!(err("@reboot").starts_with("unknown shorthand `@reboot`"));
        assert_eq!(err("60 0 9 * * *"), "second `60` is out of range 0-59");
        assert_eq!(
            err("0 0 9 * * * 2101"),
            "year `2101` is out of range 1970-2100"
        );
        assert!(err("0 9 * * * * * *").ends_with("found 8"));
    }
}

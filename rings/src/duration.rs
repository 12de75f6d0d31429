//! Durations as written in ring files: `20s`, `30m`, `24h`, `1h30m`, `2d`.

use chrono::TimeDelta;

/// Parse a duration made of one or more `<number><unit>` parts, units `s`, `m`, `h`, `d`, `w`.
pub fn parse_duration(text: &str) -> Result<TimeDelta, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("empty duration (write it like `30m`, `24h` or `1h30m`)".to_owned());
    }
    let mut total: i64 = 0;
    let mut digits = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit: i64 = match c {
            's' => 1,
            'm' => 60,
            'h' => 3_600,
            'd' => 86_400,
            'w' => 604_800,
            _ => {
                return Err(format!(
                    "`{s}` is not a duration: unknown unit `{c}` (use s, m, h, d or w, like `30m` or `1h30m`)"
                ));
            }
        };
        if digits.is_empty() {
            return Err(format!(
                "`{s}` is not a duration: a number must come before `{c}`"
            ));
        }
        let n: i64 = digits
            .parse()
            .map_err(|_| format!("`{s}` is not a duration: `{digits}` is too large"))?;
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("`{s}` is too long a duration"))?;
        digits.clear();
    }
    if !digits.is_empty() {
        return Err(format!(
            "`{s}` is not a duration: `{digits}` has no unit (write `{digits}s`, `{digits}m` or `{digits}h`)"
        ));
    }
    // Ten years is far beyond any sensible soak or window; larger values are typos.
    if total > 10 * 365 * 86_400 {
        return Err(format!("`{s}` is longer than ten years"));
    }
    TimeDelta::try_seconds(total).ok_or_else(|| format!("`{s}` is too long a duration"))
}

/// Format a duration the way it would be written: `1h30m`, `24h`, `20s`, `0s`.
pub fn format_duration(d: TimeDelta) -> String {
    let mut secs = d.num_seconds();
    if secs == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    if secs < 0 {
        out.push('-');
        secs = -secs;
    }
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if secs >= size {
            out.push_str(&format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats() {
        for (text, secs, shown) in [
            ("20s", 20, "20s"),
            ("30m", 1_800, "30m"),
            ("24h", 86_400, "1d"),
            ("1h30m", 5_400, "1h30m"),
            ("2d", 172_800, "2d"),
            ("1w", 604_800, "7d"),
        ] {
            let d = parse_duration(text).unwrap();
            assert_eq!(d.num_seconds(), secs, "{text}");
            assert_eq!(format_duration(d), shown);
        }
    }

    #[test]
    fn rejects_bad_durations() {
        for text in [
            "",
            "30",
            "m",
            "30x",
            "1.5h",
            "-5m",
            "99999999999999999999s",
            "4000w",
        ] {
            assert!(parse_duration(text).is_err(), "{text}");
        }
    }
}

//! `--since TIME` and `--until-time TIME`: unix milliseconds, or an RFC 3339 date-time. Parsed by hand: the strict
//! subset `YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)` is a few lines, not a dependency.

/// The unix milliseconds `s` (given to `--since`) names; the error says what is wrong with it.
pub fn parse_time(s: &str) -> Result<u64, String> {
    parse_time_of("--since", s)
}

/// The unix milliseconds `s`, given to `flag`, names; the error names the flag and says what
/// is wrong with it.
pub fn parse_time_of(flag: &str, s: &str) -> Result<u64, String> {
    let bad = |why: &str| Err(format!("{flag} {s:?}: {why}"));
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s
            .parse()
            .or_else(|_| bad("too large for unix milliseconds"));
    }
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = b.get(r)?;
        part.iter()
            .all(u8::is_ascii_digit)
            .then(|| std::str::from_utf8(part).ok()?.parse().ok())
            .flatten()
    };
    let shape = b.len() >= 20
        && b[4] == b'-'
        && b[7] == b'-'
        && matches!(b[10], b'T' | b't')
        && b[13] == b':'
        && b[16] == b':';
    let fields = (
        digits(0..4),
        digits(5..7),
        digits(8..10),
        digits(11..13),
        digits(14..16),
        digits(17..19),
    );
    let (Some(year), Some(month), Some(day), Some(hour), Some(minute), Some(second)) = fields
    else {
        return bad("not unix milliseconds nor YYYY-MM-DDTHH:MM:SS[.fff](Z|+HH:MM)");
    };
    if !shape {
        return bad("not unix milliseconds nor YYYY-MM-DDTHH:MM:SS[.fff](Z|+HH:MM)");
    }
    let mut at = 19;
    let mut millis = 0i64;
    if b[at] == b'.' {
        let start = at + 1;
        at = start;
        while at < b.len() && b[at].is_ascii_digit() {
            at += 1;
        }
        if at == start {
            return bad("a '.' without fraction digits");
        }
        // Milliseconds: the first three digits (more are finer than an entry's time).
        let frac = &s[start..at.min(start + 3)];
        millis = frac.parse::<i64>().unwrap_or(0) * 10i64.pow(3 - frac.len() as u32);
    }
    let offset_minutes = match &b[at..] {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (Some(h), Some(m)) = (digits(at + 1..at + 3), digits(at + 4..at + 6)) else {
                return bad("a bad UTC offset");
            };
            if h > 23 || m > 59 {
                return bad("a bad UTC offset");
            }
            if *sign == b'+' {
                h * 60 + m
            } else {
                -(h * 60 + m)
            }
        }
        _ => return bad("no UTC offset (Z or +HH:MM)"),
    };
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    let valid = (1..=12).contains(&month)
        && day >= 1
        && day <= month_days[(month.clamp(1, 12) - 1) as usize]
        && hour <= 23
        && minute <= 59
        && second <= 60;
    if !valid {
        return bad("a date or time out of range");
    }
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second
        - offset_minutes * 60;
    let ms = seconds * 1000 + millis;
    u64::try_from(ms).or_else(|_| bad("before 1970"))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::parse_time;

    #[test]
    fn unix_ms_and_rfc3339() {
        assert_eq!(parse_time("1700000000123"), Ok(1_700_000_000_123));
        assert_eq!(parse_time("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse_time("2023-11-14T22:13:20Z"), Ok(1_700_000_000_000));
        assert_eq!(
            parse_time("2023-11-14T22:13:20.123Z"),
            Ok(1_700_000_000_123)
        );
        assert_eq!(parse_time("2023-11-14T22:13:20.1Z"), Ok(1_700_000_000_100));
        assert_eq!(
            parse_time("2023-11-14T22:13:20.123456Z"),
            Ok(1_700_000_000_123)
        );
        assert_eq!(
            parse_time("2023-11-15T00:13:20+02:00"),
            Ok(1_700_000_000_000)
        );
        assert_eq!(
            parse_time("2023-11-14T21:13:20-01:00"),
            Ok(1_700_000_000_000)
        );
        assert_eq!(parse_time("2024-02-29T00:00:00Z"), Ok(1_709_164_800_000));
    }

    #[test]
    fn bad_times_name_themselves() {
        for bad in [
            "",
            "yesterday",
            "2023-11-14",
            "2023-11-14T22:13:20",
            "2023-11-14 22:13:20Z",
            "2023-13-14T22:13:20Z",
            "2023-02-29T22:13:20Z",
            "2023-11-14T24:13:20Z",
            "2023-11-14T22:13:20.Z",
            "2023-11-14T22:13:20+2:00",
            "1969-12-31T23:59:59Z",
            "99999999999999999999999",
            "-5",
        ] {
            let err = parse_time(bad).unwrap_err();
            assert!(err.contains(&format!("{bad:?}")), "{bad}: {err}");
        }
    }
}

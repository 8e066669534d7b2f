//! Points and spans of time as users type them: ISO 8601 date-times
//! (`2026-12-02T07:30:00.000`, optionally ending in `Z` or `+01:00`) and ISO 8601
//! durations (`PT10M`, `P1DT2H`), as `kafka-consumer-groups.sh` takes them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the epoch of `YYYY-MM-DDTHH:MM[:SS[.fff]][Z|±HH[:]MM]`. Without a
/// zone the time is UTC (Java's tool takes the machine's zone; name the zone to be sure).
pub(crate) fn parse_datetime(text: &str) -> Result<i64, String> {
    let bad = || {
        format!("{text:?} is not a date-time like 2026-12-02T07:30:00.000 (optionally ending in Z or +01:00)")
    };
    let (date, time) = text.split_once('T').ok_or_else(bad)?;
    let mut ymd = date.splitn(3, '-');
    let mut field = |max: i64| -> Result<i64, String> {
        let v: i64 = ymd.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
        (0..=max).contains(&v).then_some(v).ok_or_else(bad)
    };
    let (year, month, day) = (field(9999)?, field(12)?, field(31)?);
    if month == 0 || day == 0 {
        return Err(bad());
    }
    // Split off the zone: `Z`, or the last `+` / `-` (the time itself has none).
    let (clock, offset_ms) = if let Some(clock) = time.strip_suffix('Z') {
        (clock, 0)
    } else if let Some(at) = time.rfind(['+', '-']) {
        let (clock, zone) = time.split_at(at);
        let sign = if zone.starts_with('-') { -1 } else { 1 };
        let digits: String = zone[1..].chars().filter(|c| *c != ':').collect();
        if digits.len() != 4 {
            return Err(bad());
        }
        let hours: i64 = digits[..2].parse().map_err(|_| bad())?;
        let minutes: i64 = digits[2..].parse().map_err(|_| bad())?;
        (clock, sign * (hours * 60 + minutes) * 60_000)
    } else {
        (time, 0)
    };
    let mut hms = clock.split(':');
    let hours: i64 = hms.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
    let minutes: i64 = hms.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
    let seconds_ms = match hms.next() {
        None => 0,
        Some(s) => (s.parse::<f64>().map_err(|_| bad())? * 1000.0).round() as i64,
    };
    if hms.next().is_some() || hours > 23 || minutes > 59 || !(0..61_000).contains(&seconds_ms) {
        return Err(bad());
    }
    let days = days_from_civil(year, month, day);
    Ok(days * 86_400_000 + (hours * 60 + minutes) * 60_000 + seconds_ms - offset_ms)
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

/// `yyyy-MM-dd HH:mm:ss:SSS` in UTC, the format of Kafka's perf tools.
pub(crate) fn format_ms(ms: i64) -> String {
    let (days, in_day) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}:{:03}",
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1000 % 60,
        in_day % 1000
    )
}

/// The date of a day count since 1970-01-01 (the inverse of [`days_from_civil`]).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// An ISO 8601 duration `PnDTnHnMn.nS` (Java's `Duration.parse`; days are 24 hours).
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("{text:?} is not a duration like PT10M, PT1H30M or P1DT12H");
    let rest = text
        .strip_prefix('P')
        .or_else(|| text.strip_prefix('p'))
        .ok_or_else(bad)?;
    let (days, time) = match rest.split_once(['T', 't']) {
        Some((days, time)) => (days, Some(time)),
        None => (rest, None),
    };
    let mut ms = 0f64;
    let mut any = false;
    let mut add = |part: &str, units: &[(char, f64)]| -> Result<(), String> {
        let mut number = String::new();
        for c in part.chars() {
            let unit = units
                .iter()
                .find(|(u, _)| c.eq_ignore_ascii_case(u))
                .map(|(_, f)| *f);
            match unit {
                Some(factor) => {
                    let n: f64 = number.parse().map_err(|_| bad())?;
                    ms += n * factor;
                    any = true;
                    number.clear();
                }
                None => number.push(c),
            }
        }
        if number.is_empty() {
            Ok(())
        } else {
            Err(bad())
        }
    };
    add(days, &[('D', 86_400_000.0)])?;
    if let Some(time) = time {
        add(time, &[('H', 3_600_000.0), ('M', 60_000.0), ('S', 1_000.0)])?;
    }
    if !any || ms < 0.0 {
        return Err(bad());
    }
    Ok(Duration::from_millis(ms.round() as u64))
}

/// Now, in milliseconds since the epoch.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_in_utc_and_with_zones() {
        assert_eq!(parse_datetime("1970-01-01T00:00:00.000"), Ok(0));
        assert_eq!(parse_datetime("1970-01-01T00:00:01.5Z"), Ok(1500));
        assert_eq!(
            parse_datetime("2026-12-02T07:30:00Z"),
            Ok(1_796_196_600_000)
        );
        assert_eq!(
            parse_datetime("2026-12-02T08:30:00+01:00"),
            parse_datetime("2026-12-02T07:30:00Z")
        );
        assert_eq!(
            parse_datetime("2026-12-02T06:30-0100"),
            parse_datetime("2026-12-02T07:30:00Z")
        );
        assert!(parse_datetime("2026-13-02T07:30:00").is_err());
        assert!(parse_datetime("yesterday").is_err());
        assert!(parse_datetime("2026-12-02 07:30:00").is_err());
    }

    #[test]
    fn perf_tool_timestamps() {
        assert_eq!(format_ms(0), "1970-01-01 00:00:00:000");
        assert_eq!(format_ms(1_796_196_600_123), "2026-12-02 07:30:00:123");
        assert_eq!(format_ms(951_782_400_000), "2000-02-29 00:00:00:000");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("PT10M"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("PT1H30M"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("P1DT2H"), Ok(Duration::from_secs(93_600)));
        assert_eq!(parse_duration("PT0.5S"), Ok(Duration::from_millis(500)));
        assert!(parse_duration("10m").is_err());
        assert!(parse_duration("PT").is_err());
        assert!(parse_duration("PT5").is_err());
    }
}

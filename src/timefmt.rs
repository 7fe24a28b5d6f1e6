//! Time as the service speaks it: unix seconds inside, RFC 3339 UTC and Puppet's
//! `2029-05-01T12:00:00UTC` outside. Civil-date arithmetic from Howard Hinnant's algorithm.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the epoch, now. The one place the wall clock is read; the domain gets
/// time passed in.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// (year, month, day, hour, minute, second) in UTC.
pub fn civil(unix: i64) -> (i64, u32, u32, u32, u32, u32) {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let as_u32 = |v: i64| u32::try_from(v).unwrap_or(0);
    (
        year,
        as_u32(month),
        as_u32(day),
        as_u32(secs / 3600),
        as_u32(secs % 3600 / 60),
        as_u32(secs % 60),
    )
}

/// Seconds since the epoch for a UTC civil time.
pub fn from_civil(year: i64, month: u32, day: u32, hour: u32, minute: u32, second: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86_400 + i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second)
}

/// `2026-11-23T02:09:51Z`
pub fn rfc3339(unix: i64) -> String {
    let (y, mo, d, h, mi, s) = civil(unix);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// `2029-05-01T12:00:00UTC`, the format puppetserver uses in its API and inventory.
pub fn puppet(unix: i64) -> String {
    let (y, mo, d, h, mi, s) = civil(unix);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}UTC")
}

/// Read `2026-11-23T02:09:51Z` (or `...UTC`, or with a `+00:00` offset).
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let t = text.trim();
    let body = t
        .strip_suffix('Z')
        .or_else(|| t.strip_suffix("UTC"))
        .or_else(|| t.strip_suffix("+00:00"))?;
    let (date, time) = body.split_once('T')?;
    let mut d = date.splitn(3, '-');
    let mut c = time.splitn(3, ':');
    let year = d.next()?.parse().ok()?;
    let month: u32 = d.next()?.parse().ok()?;
    let day: u32 = d.next()?.parse().ok()?;
    let hour: u32 = c.next()?.parse().ok()?;
    let minute: u32 = c.next()?.parse().ok()?;
    let second: u32 = c.next()?.parse().ok()?;
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    Some(from_civil(year, month, day, hour, minute, second))
}

/// `Sun, 06 Nov 1994 08:49:37 GMT`, for Last-Modified.
pub fn http_date(unix: i64) -> String {
    let at = u64::try_from(unix)
        .ok()
        .and_then(|secs| std::time::UNIX_EPOCH.checked_add(std::time::Duration::from_secs(secs)))
        .unwrap_or(std::time::UNIX_EPOCH);
    httpdate::fmt_http_date(at)
}

/// Read an HTTP date (IMF-fixdate, or the obsolete forms), as If-Modified-Since carries
/// it; anything else, including dates before 1970 or past what a clock holds, is `None`.
pub fn parse_http_date(text: &str) -> Option<i64> {
    let at = httpdate::parse_http_date(text).ok()?;
    let secs = at.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
    i64::try_from(secs).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(puppet(1_872_331_200), "2029-05-01T12:00:00UTC");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn http_dates() {
        assert_eq!(http_date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(parse_http_date("garbage"), None);
        // Unauthenticated input: a huge year is refused, never an overflow.
        assert_eq!(
            parse_http_date("Sun, 06 Nov 99999999999999999 08:49:37 GMT"),
            None
        );
        assert_eq!(parse_http_date("Sun, 06 Nov 9999 99:49:37 GMT"), None);
        for t in [0, 951_782_400, 1_872_331_200] {
            assert_eq!(parse_http_date(&http_date(t)), Some(t));
        }
    }

    #[test]
    fn round_trips() {
        for t in [
            0,
            1,
            951_782_400,
            1_872_417_600,
            2_524_608_000,
            4_102_444_800,
        ] {
            assert_eq!(parse_rfc3339(&rfc3339(t)), Some(t));
            assert_eq!(parse_rfc3339(&puppet(t)), Some(t));
        }
        assert_eq!(parse_rfc3339("2026-13-01T00:00:00Z"), None);
        assert_eq!(parse_rfc3339("yesterday"), None);
    }
}

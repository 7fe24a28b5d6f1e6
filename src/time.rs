//! Time as the service speaks it: unix seconds (`i64`) inside; RFC 3339 UTC, puppetserver's
//! `2029-05-01T12:00:00UTC` and HTTP dates outside. Glue over `chrono` and `httpdate`, which
//! do the calendar; nothing here counts days.

use std::time::{Duration, UNIX_EPOCH};

use chrono::{DateTime, SecondsFormat, Utc};

/// Seconds since the epoch, now. The one place the wall clock is read; the domain gets
/// time passed in.
pub fn now() -> i64 {
    Utc::now().timestamp()
}

/// The instant as chrono holds it. Beyond chrono's ±262,000 years, which neither an event
/// (stamped by [`now`]) nor a certificate (GeneralizedTime ends in 9999) reaches, the
/// nearest instant chrono can hold, so formatting never fails.
fn utc(unix: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(unix, 0).unwrap_or(if unix < 0 {
        DateTime::<Utc>::MIN_UTC
    } else {
        DateTime::<Utc>::MAX_UTC
    })
}

/// `2026-11-23T02:09:51Z`. Years past 9999 or before 0 carry a sign (`+10000-...`), as
/// ISO 8601 asks; no certificate or event has one.
pub fn rfc3339(unix: i64) -> String {
    utc(unix).to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// `2029-05-01T12:00:00UTC`, the format puppetserver uses in its API and inventory, which
/// `puppetserver ca list` and Foreman parse: RFC 3339 with `UTC` where the `Z` was.
pub fn puppet(unix: i64) -> String {
    let mut text = rfc3339(unix);
    text.pop();
    text.push_str("UTC");
    text
}

/// Read an RFC 3339 time (`2026-11-23T02:09:51Z`, or with an offset such as `+02:00`, or
/// fractional seconds, which are dropped), or puppetserver's `...UTC`. Surrounding
/// whitespace is ignored; anything else, such as a 31st of February, is `None`.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let text = text.trim();
    let parsed = match text.strip_suffix("UTC") {
        Some(body) => DateTime::parse_from_rfc3339(&format!("{body}Z")),
        None => DateTime::parse_from_rfc3339(text),
    };
    parsed.ok().map(|t| t.timestamp())
}

/// The latest instant an HTTP date (a four-digit year) can say: 9999-12-31T23:59:59Z.
const LAST_HTTP_DATE: u64 = 253_402_300_799;

/// `Sun, 06 Nov 1994 08:49:37 GMT`, for Last-Modified. Before 1970 reads as the epoch and
/// past 9999 as its last second: HTTP dates hold neither.
pub fn http_date(unix: i64) -> String {
    let secs = u64::try_from(unix).unwrap_or(0).min(LAST_HTTP_DATE);
    httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(secs))
}

/// Read an HTTP date (IMF-fixdate, or the obsolete forms), as If-Modified-Since carries
/// it; anything else, including dates before 1970 or past what a clock holds, is `None`.
pub fn parse_http_date(text: &str) -> Option<i64> {
    let at = httpdate::parse_http_date(text).ok()?;
    let secs = at.duration_since(UNIX_EPOCH).ok()?.as_secs();
    i64::try_from(secs).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Known instants, worked out independently (`date -u -d @N`).
    const KNOWN: [(i64, &str); 10] = [
        (0, "1970-01-01T00:00:00Z"),
        (-1, "1969-12-31T23:59:59Z"),
        (951_782_400, "2000-02-29T00:00:00Z"),
        (951_868_799, "2000-02-29T23:59:59Z"),
        (1_709_164_800, "2024-02-29T00:00:00Z"),
        (2_147_483_647, "2038-01-19T03:14:07Z"),
        (2_147_483_648, "2038-01-19T03:14:08Z"),
        (4_107_542_400, "2100-03-01T00:00:00Z"),
        (253_402_300_799, "9999-12-31T23:59:59Z"),
        (-62_167_219_200, "0000-01-01T00:00:00Z"),
    ];

    #[test]
    fn formats_known_instants() {
        for (unix, text) in KNOWN {
            assert_eq!(rfc3339(unix), text, "{unix}");
            assert_eq!(puppet(unix), text.replace('Z', "UTC"), "{unix}");
        }
        assert_eq!(puppet(1_872_331_200), "2029-05-01T12:00:00UTC");
        // 2100 is not a leap year: the day after 28 February is 1 March.
        assert_eq!(rfc3339(4_107_456_000), "2100-02-28T00:00:00Z");
        assert_eq!(rfc3339(4_107_456_000 + 86_400), "2100-03-01T00:00:00Z");
    }

    #[test]
    fn parses_known_instants() {
        for (unix, text) in KNOWN {
            assert_eq!(parse_rfc3339(text), Some(unix), "{text}");
            assert_eq!(parse_rfc3339(&puppet(unix)), Some(unix), "{text}");
        }
    }

    #[test]
    fn formats_beyond_four_digit_years_without_failing() {
        assert_eq!(rfc3339(253_402_300_800), "+10000-01-01T00:00:00Z");
        assert_eq!(rfc3339(-62_167_219_201), "-0001-12-31T23:59:59Z");
        // Past what chrono holds: its last instant, not a panic.
        assert!(rfc3339(i64::MAX).starts_with("+262"));
        assert!(rfc3339(i64::MIN).starts_with("-262"));
        assert_eq!(parse_rfc3339(&rfc3339(253_402_300_800)), None);
    }

    #[test]
    fn reads_offsets_fractions_and_puppet_times() {
        let t = 1_795_399_791; // 2026-11-23T02:09:51Z
        for text in [
            "2026-11-23T02:09:51Z",
            "2026-11-23T02:09:51UTC",
            "2026-11-23T02:09:51+00:00",
            "2026-11-23T04:09:51+02:00",
            "2026-11-22T21:39:51-04:30",
            "2026-11-23T02:09:51.999Z",
            "  2026-11-23T02:09:51Z\n",
        ] {
            assert_eq!(parse_rfc3339(text), Some(t), "{text}");
        }
    }

    #[test]
    fn refuses_what_is_not_a_time() {
        for text in [
            "",
            "yesterday",
            "2026-13-01T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "2100-02-29T00:00:00Z",
            "2026-04-31T00:00:00Z",
            "2026-11-23T24:00:00Z",
            "2026-11-23T02:60:00Z",
            "2026-11-23T02:09:51",
            "2026-11-23",
            "2026-1-5T00:00:00Z",
            "-0001-01-01T00:00:00Z",
            "+10000-01-01T00:00:00Z",
            "99999999999999999999-01-01T00:00:00Z",
            "2026-11-23T02:09:51+24:00",
            "2026-11-23T02:09:51ZUTC",
        ] {
            assert_eq!(parse_rfc3339(text), None, "{text:?}");
        }
    }

    #[test]
    fn http_dates() {
        assert_eq!(http_date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(http_date(2_147_483_648), "Tue, 19 Jan 2038 03:14:08 GMT");
        assert_eq!(http_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
        // Outside what an HTTP date holds: clamped, never a panic.
        assert_eq!(http_date(-1), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(253_402_300_799), "Fri, 31 Dec 9999 23:59:59 GMT");
        assert_eq!(http_date(i64::MAX), "Fri, 31 Dec 9999 23:59:59 GMT");
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        // The obsolete forms RFC 9110 still asks recipients to read.
        assert_eq!(
            parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(
            parse_http_date("Sun Nov  6 08:49:37 1994"),
            Some(784_111_777)
        );
        assert_eq!(parse_http_date("garbage"), None);
        assert_eq!(parse_http_date("Wed, 31 Dec 1969 23:59:59 GMT"), None);
        // Unauthenticated input: a huge year is refused, never an overflow.
        assert_eq!(
            parse_http_date("Sun, 06 Nov 99999999999999999 08:49:37 GMT"),
            None
        );
        assert_eq!(parse_http_date("Sun, 06 Nov 9999 99:49:37 GMT"), None);
        for t in [
            0,
            951_782_400,
            1_872_331_200,
            2_147_483_648,
            253_402_300_799,
        ] {
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
    }

    #[test]
    fn a_leap_second_reads_as_the_second_before_it() {
        // Unix time does not count leap seconds; 23:59:60 is read, not refused.
        assert_eq!(
            parse_rfc3339("2016-12-31T23:59:60Z"),
            parse_rfc3339("2016-12-31T23:59:59Z")
        );
    }

    #[test]
    fn now_is_today() {
        // 2025-01-01 .. 2200-01-01: a clock, not a constant.
        assert!((1_735_689_600..7_258_118_400).contains(&now()));
    }
}

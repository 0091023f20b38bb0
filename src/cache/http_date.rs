//! HTTP-date (RFC 9110 section 5.6.7) as a cache reads `Date` and `Expires`: the preferred
//! IMF-fixdate and the two obsolete forms (RFC 850, asctime), which recipients must accept.
//! Day and month names and `GMT` are matched without regard to case (as the grammar's
//! literals are); anything else (another zone, extra spaces, a two-digit year where four are
//! due) is not a date, and an `Expires` that is not a date means "already expired"
//! (RFC 9111 section 5.3).

use std::time::{Duration, SystemTime};

const DAYS: [&[u8]; 7] = [b"mon", b"tue", b"wed", b"thu", b"fri", b"sat", b"sun"];
const LONG_DAYS: [&[u8]; 7] = [
    b"monday",
    b"tuesday",
    b"wednesday",
    b"thursday",
    b"friday",
    b"saturday",
    b"sunday",
];
const MONTHS: [&[u8]; 12] = [
    b"jan", b"feb", b"mar", b"apr", b"may", b"jun", b"jul", b"aug", b"sep", b"oct", b"nov", b"dec",
];

/// Parses an HTTP-date; `None` when `text` is not one. `now` places the two-digit years of
/// the RFC 850 form.
pub fn parse(text: &[u8], now: SystemTime) -> Option<SystemTime> {
    let text = text.trim_ascii();
    imf_fixdate(text)
        .or_else(|| rfc850(text, now))
        .or_else(|| asctime(text))
}

/// `Sun, 06 Nov 1994 08:49:37 GMT`
fn imf_fixdate(s: &[u8]) -> Option<SystemTime> {
    if s.len() != 29 || s[3] != b',' || s[4] != b' ' || s[7] != b' ' || s[11] != b' ' {
        return None;
    }
    name(&s[..3], &DAYS)?;
    if s[16] != b' ' || !s[25..].eq_ignore_ascii_case(b" GMT") {
        return None;
    }
    let day = digits(&s[5..7])?;
    let month = name(&s[8..11], &MONTHS)? + 1;
    let year = digits(&s[12..16])?;
    let seconds = time_of_day(&s[17..25])?;
    instant(year, month, day, seconds)
}

/// `Sunday, 06-Nov-94 08:49:37 GMT`
fn rfc850(s: &[u8], now: SystemTime) -> Option<SystemTime> {
    let comma = s.iter().position(|&b| b == b',')?;
    name(&s[..comma], &LONG_DAYS)?;
    let s = s.get(comma + 1..)?;
    if s.len() != 23 || s[0] != b' ' || s[3] != b'-' || s[7] != b'-' || s[10] != b' ' {
        return None;
    }
    if !s[19..].eq_ignore_ascii_case(b" GMT") {
        return None;
    }
    let day = digits(&s[1..3])?;
    let month = name(&s[4..7], &MONTHS)? + 1;
    let seconds = time_of_day(&s[11..19])?;
    // A two-digit year more than 50 years in the future is in the past century (RFC 9110
    // section 5.6.7).
    let two = digits(&s[8..10])?;
    let this_year = year_of(now);
    let mut year = this_year - this_year % 100 + two;
    if year > this_year + 50 {
        year -= 100;
    }
    instant(year, month, day, seconds)
}

/// `Sun Nov  6 08:49:37 1994`
fn asctime(s: &[u8]) -> Option<SystemTime> {
    if s.len() != 24 || s[3] != b' ' || s[7] != b' ' || s[10] != b' ' || s[19] != b' ' {
        return None;
    }
    name(&s[..3], &DAYS)?;
    let month = name(&s[4..7], &MONTHS)? + 1;
    let day = match s[8] {
        b' ' => digits(&s[9..10])?,
        _ => digits(&s[8..10])?,
    };
    let seconds = time_of_day(&s[11..19])?;
    let year = digits(&s[20..24])?;
    instant(year, month, day, seconds)
}

/// The index of `text` among `names`, compared without case.
fn name(text: &[u8], names: &[&[u8]]) -> Option<u64> {
    names
        .iter()
        .position(|n| n.eq_ignore_ascii_case(text))
        .and_then(|i| u64::try_from(i).ok())
}

fn digits(text: &[u8]) -> Option<u64> {
    if text.is_empty() || !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    text.iter().try_fold(0u64, |n, d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// `HH:MM:SS` as seconds into the day.
fn time_of_day(s: &[u8]) -> Option<u64> {
    if s.len() != 8 || s[2] != b':' || s[5] != b':' {
        return None;
    }
    let (h, m, sec) = (digits(&s[..2])?, digits(&s[3..5])?, digits(&s[6..])?);
    // 60: a leap second.
    (h < 24 && m < 60 && sec <= 60).then_some(h * 3600 + m * 60 + sec)
}

/// Days from 1970-01-01 to the given civil date (H. Hinnant's algorithm), for years from
/// 1970 on.
fn days_from_civil(year: u64, month: u64, day: u64) -> Option<u64> {
    let y = if month <= 2 {
        year.checked_sub(1)?
    } else {
        year
    };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe).checked_sub(719_468)
}

fn days_in_month(year: u64, month: u64) -> u64 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn instant(year: u64, month: u64, day: u64, seconds: u64) -> Option<SystemTime> {
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) || year > 9999 {
        return None;
    }
    // Dates before the epoch are long past: the epoch stands for them.
    let days = days_from_civil(year, month, day).unwrap_or(0);
    SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(days * 86_400 + seconds))
}

/// The civil year `time` falls in.
fn year_of(time: SystemTime) -> u64 {
    let days = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 86_400);
    // Inverse of `days_from_civil` (year only).
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    yoe + era * 400 + u64::from(month <= 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Option<u64> {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_790_000_000);
        parse(text.as_bytes(), now).map(|t| {
            t.duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs()
        })
    }

    #[test]
    fn the_three_forms() {
        assert_eq!(at("Sun, 06 Nov 1994 08:49:37 GMT"), Some(784_111_777));
        assert_eq!(at("Sunday, 06-Nov-94 08:49:37 GMT"), Some(784_111_777));
        assert_eq!(at("Sun Nov  6 08:49:37 1994"), Some(784_111_777));
        assert_eq!(at("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(at("Tue, 19 Jan 2038 03:14:08 GMT"), Some(1 << 31));
        assert!(at("Sun, 21 Nov 2286 04:46:39 GMT").is_some());
        // A two-digit year within 50 years ahead is this century.
        assert!(at("Thursday, 18-Aug-50 02:01:18 GMT").unwrap() > 2_000_000_000);
    }

    #[test]
    fn names_in_any_case() {
        let want = at("Thu, 18 Aug 2050 02:01:18 GMT");
        assert!(want.is_some());
        for text in [
            "THU, 18 Aug 2050 02:01:18 GMT",
            "Thu, 18 AUG 2050 02:01:18 GMT",
            "Thu, 18 Aug 2050 02:01:18 gmt",
        ] {
            assert_eq!(at(text), want, "{text}");
        }
    }

    #[test]
    fn not_dates() {
        for text in [
            "0",
            "",
            "Thu, 18 Aug 2050 02:01:18 UTC",
            "Thu, 18 Aug 2050 02:01:18 AEST",
            "Thu, 18 Aug 50 02:01:18 GMT",
            "Thu 18 Aug 2050 02:01:18 GMT",
            "Thu, 18  Aug  2050 02:01:18 GMT",
            "Thu, 18-Aug-2050 02:01:18 GMT",
            "Thu, 31 Feb 2050 02:01:18 GMT",
            "Thu, 18 Aug 2050 24:01:18 GMT",
            "Xyz, 18 Aug 2050 02:01:18 GMT",
        ] {
            assert_eq!(at(text), None, "{text}");
        }
    }
}

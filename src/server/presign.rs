//! Presigned URLs seen by the edge: when the signature in a query string stops being valid.
//! The edge does not check signatures (the origin does); it only keeps an entry fetched with
//! one from outliving it, and refuses parameters no S3 endpoint would accept.

use std::time::{Duration, SystemTime};

/// The longest validity S3 grants a SigV4 presigned URL (7 days).
pub const MAX_EXPIRES: u64 = 604_800;

/// Why a query's presign parameters were refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PresignError {
    #[error("X-Amz-Date is not a date of the form 20240101T000000Z")]
    BadDate,
    #[error("X-Amz-Expires must be a number of seconds from 1 to 604800")]
    BadExpires,
}

/// When a presigned URL in `query` stops being valid (`X-Amz-Date` + `X-Amz-Expires`):
/// `Ok(None)` when the query carries no such pair, an error when either value is malformed
/// or out of range. Never panics, whatever the numbers.
pub fn expiry(query: Option<&str>) -> Result<Option<SystemTime>, PresignError> {
    let Some(query) = query else {
        return Ok(None);
    };
    let mut date = None;
    let mut expires = None;
    for pair in query.split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if name.eq_ignore_ascii_case("x-amz-date") {
            date = Some(value);
        } else if name.eq_ignore_ascii_case("x-amz-expires") {
            expires = Some(value);
        }
    }
    let (Some(date), Some(expires)) = (date, expires) else {
        return Ok(None);
    };
    let date = parse_amz_date(date).ok_or(PresignError::BadDate)?;
    let expires = expires
        .parse::<u64>()
        .ok()
        .filter(|secs| (1..=MAX_EXPIRES).contains(secs))
        .ok_or(PresignError::BadExpires)?;
    date.checked_add(Duration::from_secs(expires))
        .map(Some)
        .ok_or(PresignError::BadDate)
}

/// `20130524T000000Z` to a time.
fn parse_amz_date(text: &str) -> Option<SystemTime> {
    let b = text.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| {
        let digits = text.get(r)?;
        digits
            .bytes()
            .all(|d| d.is_ascii_digit())
            .then(|| digits.parse::<i64>().ok())
            .flatten()
    };
    let (y, m, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (h, mi, s) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm); four-digit years keep every
    // product far from overflow.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = u64::try_from(days * 86_400 + h * 3600 + mi * 60 + s).ok()?;
    SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_from_query() {
        let q = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Date=20240101T000000Z&X-Amz-Expires=3600";
        let expiry = expiry(Some(q)).unwrap().unwrap();
        assert_eq!(
            httpdate::fmt_http_date(expiry),
            "Mon, 01 Jan 2024 01:00:00 GMT"
        );
        assert_eq!(super::expiry(Some("v=1")), Ok(None));
        assert_eq!(super::expiry(None), Ok(None));
        assert!(parse_amz_date("2024").is_none());
    }

    #[test]
    fn out_of_range_numbers_are_errors_not_panics() {
        for q in [
            "X-Amz-Date=20240101T000000Z&X-Amz-Expires=18446744073709551615",
            "X-Amz-Date=20240101T000000Z&X-Amz-Expires=99999999999999999999999",
            "X-Amz-Date=20240101T000000Z&X-Amz-Expires=604801",
            "X-Amz-Date=20240101T000000Z&X-Amz-Expires=-1",
            "X-Amz-Date=20240101T000000Z&X-Amz-Expires=0",
        ] {
            assert_eq!(expiry(Some(q)), Err(PresignError::BadExpires), "{q}");
        }
        for q in [
            "X-Amz-Date=+0240101T000000Z&X-Amz-Expires=60",
            "X-Amz-Date=99999999T999999Z&X-Amz-Expires=60",
            "X-Amz-Date=20241301T000000Z&X-Amz-Expires=60",
        ] {
            assert_eq!(expiry(Some(q)), Err(PresignError::BadDate), "{q}");
        }
        assert!(
            expiry(Some("X-Amz-Date=99991231T235959Z&X-Amz-Expires=604800"))
                .unwrap()
                .is_some()
        );
    }
}

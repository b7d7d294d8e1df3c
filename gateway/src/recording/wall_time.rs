//! Wall-clock times of recordings: unix milliseconds inside, RFC 3339 at the edges (API, CLI).

use std::time::{SystemTime, UNIX_EPOCH};

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Now, in unix ms.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Unix ms as RFC 3339 (UTC).
pub fn rfc3339(ms: u64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// Parses an RFC 3339 time into unix ms (times before 1970 count as 0); the error names `field`.
pub fn parse_time(field: &str, value: &str) -> Result<u64, String> {
    let time = OffsetDateTime::parse(value, &Rfc3339).map_err(|_| {
        format!("{field} must be an RFC 3339 time like 2026-12-01T18:00:00Z, not '{value}'")
    })?;
    Ok(u64::try_from(time.unix_timestamp_nanos() / 1_000_000).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc_3339() {
        assert_eq!(parse_time("from", "1970-01-01T00:00:01Z"), Ok(1000));
        assert_eq!(
            parse_time("from", "2026-12-01T18:00:00.5+01:00").unwrap() % 1000,
            500
        );
        assert!(
            parse_time("from", "yesterday")
                .unwrap_err()
                .contains("RFC 3339")
        );
        assert_eq!(rfc3339(1000), "1970-01-01T00:00:01Z");
    }
}

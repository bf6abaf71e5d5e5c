//! Durations, dates and role names in words, for what `sealbridge gov` and `sealbridge deploy`
//! print.

use alloy_primitives::{B256, keccak256};

/// A duration in words: "2 days 0 h", "5 h 12 min", "3 min 20 s", "45 s".
pub fn in_words(secs: u64) -> String {
    let (d, h, m, s) = (
        secs / 86_400,
        secs % 86_400 / 3600,
        secs % 3600 / 60,
        secs % 60,
    );
    match (d, h, m) {
        (0, 0, 0) => format!("{s} s"),
        (0, 0, _) => format!("{m} min {s} s"),
        (0, _, _) => format!("{h} h {m} min"),
        (1, _, _) => format!("1 day {h} h"),
        _ => format!("{d} days {h} h"),
    }
}

/// `at` relative to `now`: "in 2 days 0 h", "now", "3 h 5 min ago".
pub fn relative(at: u64, now: u64) -> String {
    match at.cmp(&now) {
        std::cmp::Ordering::Greater => format!("in {}", in_words(at - now)),
        std::cmp::Ordering::Equal => "now".into(),
        std::cmp::Ordering::Less => format!("{} ago", in_words(now - at)),
    }
}

/// Unix seconds as a UTC date and time ("2026-12-02 00:04:40 UTC"); "forever" past year 9999.
pub fn utc(ts: u64) -> String {
    const LAST: u64 = 253_402_300_799; // 9999-12-31 23:59:59
    if ts > LAST {
        return "forever".into();
    }
    let (days, secs) = (ts / 86_400, ts % 86_400);
    // Howard Hinnant's civil_from_days, for days since 1970-01-01 (never negative here).
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// The name of an AccessControl role of the registry, settlement or timelock.
pub fn role_name(role: B256) -> String {
    if role == B256::ZERO {
        return "DEFAULT_ADMIN_ROLE".into();
    }
    for name in [
        "GOVERNOR_ROLE",
        "GUARDIAN_ROLE",
        "PROPOSER_ROLE",
        "EXECUTOR_ROLE",
        "CANCELLER_ROLE",
    ] {
        if keccak256(name) == role {
            return name.into();
        }
    }
    format!("role {role}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_dates_in_words() {
        assert_eq!(in_words(0), "0 s");
        assert_eq!(in_words(45), "45 s");
        assert_eq!(in_words(200), "3 min 20 s");
        assert_eq!(in_words(5 * 3600 + 12 * 60 + 7), "5 h 12 min");
        assert_eq!(in_words(86_400 + 3 * 3600), "1 day 3 h");
        assert_eq!(in_words(2 * 86_400), "2 days 0 h");
        assert_eq!(relative(100 + 2 * 86_400, 100), "in 2 days 0 h");
        assert_eq!(relative(100, 100), "now");
        assert_eq!(relative(100, 160), "1 min 0 s ago");
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_700_000_000), "2023-11-14 22:13:20 UTC");
        assert_eq!(utc(253_402_300_799), "9999-12-31 23:59:59 UTC");
        assert_eq!(utc(u64::MAX), "forever");
    }
}

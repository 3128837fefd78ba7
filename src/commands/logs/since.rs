//! The times `logs --since` and `--until` take, by docker's rules: a Go duration before now
//! (`10m`, `1h30m`, `1.5h`), a date or time (`2006-01-02`, `2006-01-02T15:04`,
//! `2006-01-02T15:04:05.999999999`, in local time unless a zone `Z` or `±07:00` is given), or
//! Unix seconds with an optional fraction.

use time::{Date, Month, OffsetDateTime, Time, UtcOffset};

#[derive(Debug, thiserror::Error)]
#[error(
    "invalid time {0:?}: use a duration (10m, 1h30m, 1.5h), a date or time (2006-01-02, \
     2006-01-02T15:04:05, with an optional fraction and zone: Z or +07:00) or Unix seconds \
     (1700000000.5)"
)]
pub struct TimeError(String);

/// `value` as an instant; durations count back from `now`, times without a zone are in
/// `local`.
pub fn parse(
    value: &str,
    now: OffsetDateTime,
    local: UtcOffset,
) -> Result<OffsetDateTime, TimeError> {
    let bad = || TimeError(value.to_string());
    // docker reads "0" as the Unix epoch, not as a zero duration.
    if value != "0"
        && let Some(nanos) = go_duration(value)
    {
        let t = now - time::Duration::nanoseconds_i128(nanos);
        // docker keeps whole seconds of a relative time.
        return Ok(t - time::Duration::nanoseconds(i64::from(t.nanosecond())));
    }
    let zoned = value.contains(['Z', 'z', '+']) || value.matches('-').count() == 3;
    if let Some(t) = date_time(value.as_bytes(), zoned, local) {
        return Ok(t);
    }
    // Anything with a dash was meant as a date.
    if value.contains('-') {
        return Err(bad());
    }
    unix_seconds(value).ok_or_else(bad)
}

/// The local time zone's offset now (as docker, which uses the zone in effect now even for
/// dates on the other side of a daylight-saving change).
pub fn local_offset() -> UtcOffset {
    let now = time::OffsetDateTime::now_utc().unix_timestamp() as libc::time_t;
    // SAFETY: localtime_r (which reads the zone once) with pointers to our own values.
    let offset = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&now, &mut tm).is_null() {
            0
        } else {
            tm.tm_gmtoff
        }
    };
    UtcOffset::from_whole_seconds(offset as i32).unwrap_or(UtcOffset::UTC)
}

/// Go's `time.ParseDuration`, in nanoseconds: an optional sign, then numbers (with optional
/// fractions) each with a unit: ns, us (µs), ms, s, m, h.
fn go_duration(s: &str) -> Option<i128> {
    let (negative, mut rest) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, after) = rest.split_at(num_end);
        if !num.bytes().any(|b| b.is_ascii_digit()) || num.matches('.').count() > 1 {
            return None;
        }
        let value: f64 = if num.starts_with('.') {
            format!("0{num}").parse().ok()?
        } else {
            num.trim_end_matches('.').parse().ok()?
        };
        let unit_end = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_end);
        let scale: f64 = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += value * scale;
        rest = next;
    }
    let nanos = total.round() as i128;
    Some(if negative { -nanos } else { nanos })
}

/// Reads fixed-width fields.
struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    fn eat(&mut self, c: u8) -> bool {
        match self.0.split_first() {
            Some((&first, rest)) if first == c => {
                self.0 = rest;
                true
            }
            _ => false,
        }
    }

    fn number(&mut self, width: usize) -> Option<u32> {
        let digits = self.0.get(..width)?;
        if !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        self.0 = &self.0[width..];
        std::str::from_utf8(digits).ok()?.parse().ok()
    }

    /// 1 to 9 digits of a fraction of a second, as nanoseconds.
    fn fraction(&mut self) -> Option<u32> {
        let len = self.0.iter().take_while(|b| b.is_ascii_digit()).count();
        if !(1..=9).contains(&len) {
            return None;
        }
        let n = self.number(len)?;
        Some(n * 10u32.pow(9 - len as u32))
    }
}

/// `YYYY-MM-DD[THH[:MM[:SS[.fraction]]]]`, then a zone (`Z`, `±HH:MM`) if `zoned`.
fn date_time(value: &[u8], zoned: bool, local: UtcOffset) -> Option<OffsetDateTime> {
    let mut c = Cursor(value);
    let year = c.number(4)? as i32;
    let month = c.eat(b'-').then(|| c.number(2))??;
    let day = c.eat(b'-').then(|| c.number(2))??;
    let (mut hour, mut minute, mut second, mut nano) = (0, 0, 0, 0);
    if c.eat(b'T') {
        hour = c.number(2)?;
        if c.eat(b':') {
            minute = c.number(2)?;
            if c.eat(b':') {
                second = c.number(2)?;
                if c.eat(b'.') {
                    nano = c.fraction()?;
                }
            }
        }
    }
    let offset = if !zoned {
        local
    } else if c.eat(b'Z') {
        UtcOffset::UTC
    } else {
        let sign = if c.eat(b'+') {
            1
        } else if c.eat(b'-') {
            -1
        } else {
            return None;
        };
        let h = c.number(2)? as i8;
        let m = c.eat(b':').then(|| c.number(2))?? as i8;
        UtcOffset::from_hms(sign * h, sign * m, 0).ok()?
    };
    if !c.0.is_empty() {
        return None;
    }
    let date =
        Date::from_calendar_date(year, Month::try_from(month as u8).ok()?, day as u8).ok()?;
    let time = Time::from_hms_nano(hour as u8, minute as u8, second as u8, nano).ok()?;
    Some(date.with_time(time).assume_offset(offset))
}

/// `SECONDS[.FRACTION]` since the epoch.
fn unix_seconds(value: &str) -> Option<OffsetDateTime> {
    let (secs, frac) = match value.split_once('.') {
        Some((s, f)) => (s, Some(f)),
        None => (value, None),
    };
    let secs: i64 = secs.parse().ok()?;
    let nanos = match frac {
        Some(f) => Cursor(f.as_bytes()).fraction().filter(|_| f.len() <= 9)?,
        None => 0,
    };
    let t = OffsetDateTime::from_unix_timestamp(secs).ok()?;
    Some(t + time::Duration::nanoseconds(i64::from(nanos)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{datetime, offset};

    #[test]
    fn docker_timestamps() {
        let now = datetime!(2026-03-10 12:00:00.75 UTC);
        let local = offset!(+2);
        let table: &[(&str, OffsetDateTime)] = &[
            // Go durations before now, whole seconds.
            ("10m", datetime!(2026-03-10 11:50:00 UTC)),
            ("1m30s", datetime!(2026-03-10 11:58:30 UTC)),
            ("1.5h", datetime!(2026-03-10 10:30:00 UTC)),
            ("2h45m10s", datetime!(2026-03-10 09:14:50 UTC)),
            ("1500ms", datetime!(2026-03-10 11:59:59 UTC)),
            (".5m", datetime!(2026-03-10 11:59:30 UTC)),
            ("-1h", datetime!(2026-03-10 13:00:00 UTC)),
            ("0s", datetime!(2026-03-10 12:00:00 UTC)),
            // Dates and times without a zone are local.
            ("2026-01-01", datetime!(2026-01-01 00:00:00 +2)),
            ("2026-01-01T15", datetime!(2026-01-01 15:00:00 +2)),
            ("2026-01-01T15:04", datetime!(2026-01-01 15:04:00 +2)),
            ("2026-01-01T15:04:05", datetime!(2026-01-01 15:04:05 +2)),
            ("2026-01-01T15:04:05.5", datetime!(2026-01-01 15:04:05.5 +2)),
            // With a zone.
            ("2026-01-01T15:04:05Z", datetime!(2026-01-01 15:04:05 UTC)),
            (
                "2026-01-01T15:04:05.123456789Z",
                datetime!(2026-01-01 15:04:05.123456789 UTC),
            ),
            (
                "2026-01-01T15:04:05+01:00",
                datetime!(2026-01-01 15:04:05 +1),
            ),
            (
                "2026-01-01T15:04:05-07:00",
                datetime!(2026-01-01 15:04:05 -7),
            ),
            ("2026-01-01T15:04Z", datetime!(2026-01-01 15:04:00 UTC)),
            ("2026-01-01Z", datetime!(2026-01-01 00:00:00 UTC)),
            ("2026-01-01-03:00", datetime!(2026-01-01 00:00:00 -3)),
            // Unix seconds.
            ("0", datetime!(1970-01-01 00:00:00 UTC)),
            ("1700000000", datetime!(2023-11-14 22:13:20 UTC)),
            ("1700000000.25", datetime!(2023-11-14 22:13:20.25 UTC)),
            ("10", datetime!(1970-01-01 00:00:10 UTC)),
        ];
        for (value, want) in table {
            let got = parse(value, now, local).unwrap_or_else(|e| panic!("{value}: {e}"));
            assert_eq!(got, *want, "{value}");
        }
        for bad in [
            "",
            "yesterday",
            "10x",
            "1h30",
            "2026-1-1",
            "2026-13-01",
            "2026-01-01T25:00",
            "2026-01-01T15:04:05z",
            "2026-01-01T15:04.5",
            "2026-01-01 15:04",
            "1700000000.",
            "12abc",
        ] {
            assert!(parse(bad, now, local).is_err(), "{bad:?} was accepted");
        }
    }
}

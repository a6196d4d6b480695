//! Schedules: when a check is due.
//!
//! Forms: `@every 30s` (any duration), the runbook form `@every:60`
//! (seconds), the aliases `@yearly`/`@annually`, `@monthly`, `@weekly`,
//! `@daily`/`@midnight`, `@hourly`, and cron expressions of five fields
//! (minute first) or six (seconds first), optionally preceded by a time
//! zone: `TZ=Europe/Berlin 0 9 * * Mon-Fri`. Cron times are in UTC unless a
//! zone is given.
//!
//! Due times are deterministic. An interval schedule fires at
//! `k * interval + offset` (aligned to the Unix epoch), a cron schedule at
//! its fire times plus an offset; the offset is a per-check *splay* derived
//! from the check's name, so checks sharing a schedule spread out instead
//! of firing together, and the same check always keeps the same slots.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use sha2::{Digest, Sha256};

use warden_text::units;

use crate::limits;

/// A parsed schedule.
#[derive(Debug, Clone)]
pub enum Schedule {
    /// Every so often.
    Every(Duration),
    /// Cron fire times in a time zone.
    Cron {
        /// The expression as written (without the zone).
        expr: String,
        /// Parsed (six/seven-field form).
        schedule: Box<cron::Schedule>,
        /// Zone the expression is read in.
        tz: Tz,
    },
}

impl Schedule {
    /// Parses any of the accepted forms; the error says which forms exist.
    pub fn parse(text: &str) -> Result<Schedule, String> {
        let t = text.trim();
        if let Some(secs) = t.strip_prefix("@every:") {
            let n: u64 = secs
                .trim()
                .parse()
                .map_err(|_| format!("{text:?}: @every:N takes whole seconds"))?;
            if n == 0 {
                return Err(format!("{text:?}: the interval must be positive"));
            }
            return Self::every(text, Duration::from_secs(n));
        }
        if let Some(d) = t.strip_prefix("@every") {
            let d = units::parse_duration(d.trim()).map_err(|e| format!("@every: {e}"))?;
            return Self::every(text, d);
        }
        let (tz, expr) = match t.strip_prefix("TZ=").or_else(|| t.strip_prefix("CRON_TZ=")) {
            Some(rest) => {
                let (zone, expr) = rest
                    .split_once(char::is_whitespace)
                    .ok_or_else(|| format!("{text:?}: a cron expression must follow the zone"))?;
                let tz: Tz = zone
                    .parse()
                    .map_err(|_| format!("{text:?}: unknown time zone {zone:?}"))?;
                (tz, expr.trim())
            }
            None => (Tz::UTC, t),
        };
        let six = match expr {
            "@yearly" | "@annually" => "0 0 0 1 1 *".to_string(),
            "@monthly" => "0 0 0 1 * *".to_string(),
            "@weekly" => "0 0 0 * * Sun".to_string(),
            "@daily" | "@midnight" => "0 0 0 * * *".to_string(),
            "@hourly" => "0 0 * * * *".to_string(),
            e if e.starts_with('@') => {
                return Err(format!(
                    "{text:?}: unknown schedule; use @every 30s, @every:60, @hourly, @daily, @weekly, @monthly, @yearly or a cron expression"
                ));
            }
            e => match e.split_whitespace().count() {
                5 => format!("0 {e}"),
                6 => e.to_string(),
                n => {
                    return Err(format!(
                        "{text:?}: a cron expression has 5 fields (min hour day month weekday) or 6 (with seconds first), not {n}"
                    ));
                }
            },
        };
        let schedule = cron::Schedule::from_str(&six).map_err(|e| format!("{text:?}: {e}"))?;
        if schedule.upcoming(tz).next().is_none() {
            return Err(format!(
                "{text:?}: this cron expression never fires (no such date, e.g. 30 February)"
            ));
        }
        Ok(Schedule::Cron {
            expr: expr.to_string(),
            schedule: Box::new(schedule),
            tz,
        })
    }

    /// An interval within [`limits::MIN_INTERVAL`] and
    /// [`limits::MAX_INTERVAL`].
    fn every(text: &str, d: Duration) -> Result<Schedule, String> {
        if d < limits::MIN_INTERVAL {
            return Err(format!(
                "{text:?}: the shortest interval is {}",
                units::format_duration(limits::MIN_INTERVAL)
            ));
        }
        if d > limits::MAX_INTERVAL {
            return Err(format!(
                "{text:?}: the longest interval is {}",
                units::format_duration(limits::MAX_INTERVAL)
            ));
        }
        Ok(Schedule::Every(d))
    }

    /// The splay a check gets when its config names none.
    pub fn default_splay(&self) -> Duration {
        match self {
            Schedule::Every(d) => *d,
            Schedule::Cron { .. } => limits::DEFAULT_CRON_SPLAY,
        }
    }

    /// The first due time strictly after `after`, with `offset` applied.
    pub fn next_after(&self, after: DateTime<Utc>, offset: Duration) -> Option<DateTime<Utc>> {
        let offset_ms = offset.as_millis() as i64;
        match self {
            Schedule::Every(d) => {
                let period = (d.as_millis() as i64).max(1);
                let base = after.timestamp_millis() - offset_ms;
                let k = base.div_euclid(period) + 1;
                Utc.timestamp_millis_opt(k * period + offset_ms).single()
            }
            Schedule::Cron { schedule, tz, .. } => {
                let shifted = after - chrono::Duration::milliseconds(offset_ms);
                let local = shifted.with_timezone(tz);
                let next = schedule.after(&local).next()?;
                Some(next.with_timezone(&Utc) + chrono::Duration::milliseconds(offset_ms))
            }
        }
    }
}

impl std::fmt::Display for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Schedule::Every(d) => write!(f, "@every {}", units::format_duration(*d)),
            Schedule::Cron { expr, tz, .. } if *tz == Tz::UTC => write!(f, "{expr}"),
            Schedule::Cron { expr, tz, .. } => write!(f, "TZ={tz} {expr}"),
        }
    }
}

/// The deterministic splay of `check` within `[0, max)`.
pub fn splay(check: &str, max: Duration) -> Duration {
    let max_ms = max.as_millis() as u64;
    if max_ms == 0 {
        return Duration::ZERO;
    }
    let digest = Sha256::digest(check.as_bytes());
    let n = u64::from_le_bytes(digest[..8].try_into().unwrap_or([0; 8]));
    Duration::from_millis(n % max_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_that_cannot_mean_what_they_say_are_refused() {
        for (text, why) in [
            ("@every 10000000000000d", "the longest interval is 366d"),
            ("@every:99999999999999", "the longest interval"),
            ("@every 100000000000000000000s", "out of range"),
            ("@every 50ms", "the shortest interval is 100ms"),
            ("0 0 0 30 2 * 2030", "not 7"),
            ("0 0 30 2 *", "never fires"),
            ("TZ=Europe/Berlin 0 0 31 4 *", "never fires"),
        ] {
            let e = Schedule::parse(text).unwrap_err();
            assert!(e.contains(why), "{text}: {e}");
        }
        assert!(Schedule::parse("@every 366d").is_ok());
        assert!(Schedule::parse("0 0 29 2 *").is_ok(), "leap days fire");
    }

    #[test]
    fn far_due_times_do_not_overflow() {
        let s = Schedule::parse("@every 366d").unwrap();
        let t = Utc
            .timestamp_millis_opt(4_000_000_000_000)
            .single()
            .unwrap();
        let next = s.next_after(t, limits::MAX_INTERVAL).unwrap();
        assert!(next > t);
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn every_forms() {
        for (text, secs) in [
            ("@every 30s", 30),
            ("@every:60", 60),
            ("@every 5m", 300),
            ("@every 1h", 3600),
        ] {
            match Schedule::parse(text).unwrap() {
                Schedule::Every(d) => assert_eq!(d, Duration::from_secs(secs), "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
        for bad in [
            "@every",
            "@every:0",
            "@every:1.5",
            "@every 1ms",
            "@sometimes",
            "* * *",
        ] {
            assert!(Schedule::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn interval_due_times_are_aligned_and_offset() {
        let s = Schedule::parse("@every 60s").unwrap();
        let t = at("2026-01-01T00:00:30Z");
        assert_eq!(
            s.next_after(t, Duration::ZERO).unwrap(),
            at("2026-01-01T00:01:00Z")
        );
        // Due times are k*60s + offset: 00:00:10, 00:01:10, ...
        assert_eq!(
            s.next_after(t, Duration::from_secs(10)).unwrap(),
            at("2026-01-01T00:01:10Z")
        );
        assert_eq!(
            s.next_after(t, Duration::from_secs(40)).unwrap(),
            at("2026-01-01T00:00:40Z")
        );
        // Strictly after: a due time is never returned twice.
        let due = at("2026-01-01T00:01:00Z");
        assert_eq!(
            s.next_after(due, Duration::ZERO).unwrap(),
            at("2026-01-01T00:02:00Z")
        );
    }

    #[test]
    fn cron_with_zone_and_aliases() {
        let s = Schedule::parse("TZ=Europe/Berlin 0 9 * * *").unwrap();
        // 09:00 in Berlin in winter is 08:00 UTC.
        let next = s
            .next_after(at("2026-01-15T07:00:00Z"), Duration::ZERO)
            .unwrap();
        assert_eq!(next, at("2026-01-15T08:00:00Z"));
        let s = Schedule::parse("@hourly").unwrap();
        let next = s
            .next_after(at("2026-01-15T07:20:00Z"), Duration::from_secs(5))
            .unwrap();
        assert_eq!(next, at("2026-01-15T08:00:05Z"));
        let s = Schedule::parse("*/15 * * * *").unwrap();
        assert_eq!(
            s.next_after(at("2026-01-15T07:20:00Z"), Duration::ZERO)
                .unwrap(),
            at("2026-01-15T07:30:00Z")
        );
        assert!(Schedule::parse("TZ=Mars/Olympus 0 9 * * *").is_err());
    }

    #[test]
    fn splay_is_deterministic_and_spreads() {
        let max = Duration::from_secs(60);
        assert_eq!(splay("a", max), splay("a", max));
        let distinct: std::collections::HashSet<_> = (0..100)
            .map(|i| splay(&format!("check-{i}"), max))
            .collect();
        assert!(distinct.len() > 90, "{}", distinct.len());
        assert!(distinct.iter().all(|d| *d < max));
    }

    proptest::proptest! {
        #[test]
        fn any_text_parses_or_errs_without_panicking(s in "\\PC{0,60}") {
            let _ = Schedule::parse(&s);
        }

        #[test]
        fn cron_like_text_parses_or_errs(fields in proptest::collection::vec("(\\*|[0-9]{1,3}|[0-9]{1,2}-[0-9]{1,2}|\\*/[0-9]{1,2}|[A-Za-z]{3})", 1..9)) {
            if let Ok(s) = Schedule::parse(&fields.join(" ")) {
                // What parses, fires.
                let now = Utc::now();
                proptest::prop_assert!(s.next_after(now, Duration::ZERO).is_some_and(|t| t > now));
            }
        }

        #[test]
        fn intervals_give_increasing_due_times(secs in 1u64..(366 * 86_400), splay_ms in 0u64..1_000_000, at in 0i64..4_000_000_000_000) {
            let s = Schedule::parse(&format!("@every {secs}s")).unwrap();
            let t = Utc.timestamp_millis_opt(at).single().unwrap();
            let offset = Duration::from_millis(splay_ms);
            let next = s.next_after(t, offset).unwrap();
            proptest::prop_assert!(next > t);
            proptest::prop_assert!(s.next_after(next, offset).unwrap() > next);
        }
    }
}

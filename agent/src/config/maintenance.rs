//! `[[maintenance]]`: windows in which the checks they match still run
//! and are stored but notify nobody. A window recurs (`schedule`, a cron
//! expression, plus `duration`) or happens once (`start` and `end`); both
//! read in `timezone` (default UTC). It matches checks by name glob
//! (`checks = ["db-*"]`, `*` and `?`) and/or by labels (all must match).
//!
//! ```toml
//! [[maintenance]]
//! name = "nightly-backup"
//! checks = ["db-*"]
//! schedule = "0 2 * * *"
//! duration = "30m"
//! timezone = "Europe/Berlin"
//! ```

use std::collections::{BTreeMap, HashSet};
use std::ops::Range;
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, TimeZone};
use chrono_tz::Tz;
use serde::Deserialize;
use warden_text::units;

use super::error::{ConfigError, Scope};
use super::source::Source;
use crate::limits;
use crate::schedule::Schedule;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMaintenance {
    name: String,
    #[serde(default)]
    checks: Vec<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    schedule: Option<String>,
    duration: Option<String>,
    start: Option<String>,
    end: Option<String>,
    timezone: Option<String>,
}

/// When a window holds.
#[derive(Debug, Clone)]
pub enum Window {
    /// From each fire time of `schedule`, for `duration`.
    Recurring {
        /// The cron schedule (in the window's zone).
        schedule: Schedule,
        /// How long each window lasts.
        duration: Duration,
    },
    /// Once, `[start, end)` (ms since the epoch).
    Once {
        /// Start.
        start_ms: i64,
        /// End.
        end_ms: i64,
    },
}

/// One `[[maintenance]]`.
#[derive(Debug, Clone)]
pub struct Maintenance {
    /// Its name (shown on the checks it quiets).
    pub name: String,
    /// Check name globs (empty: any name, when `labels` is set).
    pub checks: Vec<String>,
    /// Labels a check must have, with these values.
    pub labels: BTreeMap<String, String>,
    /// When.
    pub window: Window,
}

/// Whether `text` matches `pattern`, where `*` is any run of characters
/// and `?` any one.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    // Where the latest `*` was, and the text position it matched up to.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

impl Maintenance {
    /// Whether the window applies to a check named `name` with `labels`.
    pub fn matches(&self, name: &str, labels: &BTreeMap<String, String>) -> bool {
        (self.checks.is_empty() || self.checks.iter().any(|g| glob_match(g, name)))
            && self.labels.iter().all(|(k, v)| labels.get(k) == Some(v))
    }

    /// When the window holding at `now_ms` ends, if one holds.
    pub fn active_until(&self, now_ms: i64) -> Option<i64> {
        match &self.window {
            Window::Once { start_ms, end_ms } => {
                (*start_ms <= now_ms && now_ms < *end_ms).then_some(*end_ms)
            }
            Window::Recurring { schedule, duration } => {
                // The first fire time after `now - duration` holds the
                // window if it is not in the future.
                let d = duration.as_millis() as i64;
                let after = DateTime::from_timestamp_millis(now_ms - d)?;
                let start = schedule
                    .next_after(after, Duration::ZERO)?
                    .timestamp_millis();
                (start <= now_ms).then_some(start + d)
            }
        }
    }

    /// The windows that overlap `[from_ms, to_ms]`, as `(start, end)`,
    /// oldest first, at most `max` of them.
    pub fn windows_between(&self, from_ms: i64, to_ms: i64, max: usize) -> Vec<(i64, i64)> {
        match &self.window {
            Window::Once { start_ms, end_ms } => {
                if *start_ms <= to_ms && *end_ms >= from_ms {
                    vec![(*start_ms, *end_ms)]
                } else {
                    Vec::new()
                }
            }
            Window::Recurring { schedule, duration } => {
                let d = duration.as_millis() as i64;
                let mut out = Vec::new();
                let mut after = DateTime::from_timestamp_millis(from_ms - d);
                while let Some(a) = after {
                    let Some(next) = schedule.next_after(a, Duration::ZERO) else {
                        break;
                    };
                    let start = next.timestamp_millis();
                    if start > to_ms || out.len() >= max {
                        break;
                    }
                    out.push((start, start + d));
                    after = DateTime::from_timestamp_millis(start + 1);
                }
                out
            }
        }
    }

    /// Parses the `index`th `[[maintenance]]`.
    pub(super) fn parse(
        src: &Source<'_>,
        index: usize,
        table: toml::Table,
        span: &Range<usize>,
        names: &mut HashSet<String>,
        errors: &mut Vec<ConfigError>,
    ) -> Option<Maintenance> {
        let (m, label): (RawMaintenance, String) = src.table(
            "maintenance",
            index,
            table,
            span,
            Scope::Maintenance,
            errors,
        )?;
        let scope = || Scope::Maintenance(label.clone());
        let before = errors.len();
        let mut err = |field: &str, msg: String| {
            errors.push(src.error(src.field_line(span, field), scope(), Some(field), msg));
        };
        if let Some(problem) = super::check::name_problem(&m.name) {
            err("name", problem);
        } else if !names.insert(m.name.clone()) {
            err("name", "another [[maintenance]] has this name".into());
        }
        if m.checks.is_empty() && m.labels.is_empty() {
            err(
                "checks",
                "name the checks (globs; [\"*\"] for all) or the labels it covers".into(),
            );
        }
        let tz: Tz = match m.timezone.as_deref().map(str::parse::<Tz>) {
            None => Tz::UTC,
            Some(Ok(tz)) => tz,
            Some(Err(_)) => {
                err(
                    "timezone",
                    format!(
                        "unknown time zone {:?}; use an IANA name such as \"Europe/Berlin\"",
                        m.timezone.as_deref().unwrap_or("")
                    ),
                );
                Tz::UTC
            }
        };
        let time = |field: &str, text: &str| -> Result<i64, String> {
            if let Ok(t) = DateTime::parse_from_rfc3339(text) {
                return Ok(t.timestamp_millis());
            }
            [
                "%Y-%m-%dT%H:%M:%S",
                "%Y-%m-%dT%H:%M",
                "%Y-%m-%d %H:%M:%S",
                "%Y-%m-%d %H:%M",
            ]
            .iter()
            .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok())
            .and_then(|n| tz.from_local_datetime(&n).earliest())
            .map(|t| t.timestamp_millis())
            .ok_or_else(|| {
                format!("{field} {text:?}: use 2026-12-24T02:00 (in `timezone`) or RFC 3339")
            })
        };
        let window = match (&m.schedule, &m.duration, &m.start, &m.end) {
            (Some(expr), Some(d), None, None) => {
                let schedule = match Schedule::parse(&format!("TZ={tz} {expr}")) {
                    Ok(s @ Schedule::Cron { .. }) => Some(s),
                    Ok(_) => {
                        err("schedule", format!("{expr:?}: use a cron expression"));
                        None
                    }
                    Err(e) => {
                        err("schedule", e);
                        None
                    }
                };
                let duration = match units::parse_duration(d) {
                    Ok(d) if d > Duration::ZERO && d <= limits::MAX_INTERVAL => Some(d),
                    Ok(_) => {
                        err(
                            "duration",
                            format!(
                                "use more than 0 and at most {}",
                                units::format_duration(limits::MAX_INTERVAL)
                            ),
                        );
                        None
                    }
                    Err(e) => {
                        err("duration", e);
                        None
                    }
                };
                schedule
                    .zip(duration)
                    .map(|(schedule, duration)| Window::Recurring { schedule, duration })
            }
            (None, None, Some(start), Some(end)) => {
                match (time("start", start), time("end", end)) {
                    (Ok(s), Ok(e)) if s < e => Some(Window::Once {
                        start_ms: s,
                        end_ms: e,
                    }),
                    (Ok(_), Ok(_)) => {
                        err("end", "must be after start".into());
                        None
                    }
                    (s, e) => {
                        for (field, r) in [("start", s), ("end", e)] {
                            if let Err(msg) = r {
                                err(field, msg);
                            }
                        }
                        None
                    }
                }
            }
            _ => {
                err(
                    "schedule",
                    "give `schedule` and `duration` (a recurring window) or `start` and `end` (once)"
                        .into(),
                );
                None
            }
        };
        if errors.len() > before {
            return None;
        }
        Some(Maintenance {
            name: m.name,
            checks: m.checks,
            labels: m.labels,
            window: window?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn window(toml: &str) -> Result<Maintenance, String> {
        Config::parse(
            &format!("[[maintenance]]\nname = \"m\"\n{toml}"),
            "warden.toml",
            std::path::Path::new("/tmp"),
        )
        .map(|c| c.maintenance.into_iter().next().unwrap())
        .map_err(|e| e.to_string())
    }

    fn ms(text: &str) -> i64 {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .timestamp_millis()
    }

    #[test]
    fn globs() {
        assert!(glob_match("db-*", "db-primary"));
        assert!(glob_match("*", ""));
        assert!(glob_match("a?c", "abc"));
        assert!(glob_match("*-api-*", "eu-api-1"));
        assert!(!glob_match("db-*", "web-db-1"));
        assert!(!glob_match("a?c", "ac"));
        assert!(glob_match("a*b*c", "aXbYbZc"));
    }

    #[test]
    fn the_windows_over_an_interval_are_listed_for_timelines() {
        let m = window(
            "checks = [\"db-*\"]\nschedule = \"0 2 * * *\"\nduration = \"30m\"\ntimezone = \"UTC\"",
        )
        .unwrap();
        // From the middle of one window to just after the third begins.
        let w = m.windows_between(ms("2026-12-01T02:10:00Z"), ms("2026-12-03T02:00:00Z"), 10);
        assert_eq!(
            w,
            [
                (ms("2026-12-01T02:00:00Z"), ms("2026-12-01T02:30:00Z")),
                (ms("2026-12-02T02:00:00Z"), ms("2026-12-02T02:30:00Z")),
                (ms("2026-12-03T02:00:00Z"), ms("2026-12-03T02:30:00Z")),
            ]
        );
        assert_eq!(
            m.windows_between(ms("2026-12-01T03:00:00Z"), ms("2026-12-01T04:00:00Z"), 10),
            []
        );
        assert_eq!(
            m.windows_between(ms("2026-12-01T00:00:00Z"), ms("2026-12-31T00:00:00Z"), 2)
                .len(),
            2
        );
        let once = window(
            "checks = [\"*\"]\nstart = \"2026-12-01T10:00:00Z\"\nend = \"2026-12-01T11:00:00Z\"",
        )
        .unwrap();
        assert_eq!(
            once.windows_between(ms("2026-12-01T10:59:00Z"), ms("2026-12-01T12:00:00Z"), 10)
                .len(),
            1
        );
        assert!(
            once.windows_between(ms("2026-12-01T11:01:00Z"), ms("2026-12-01T12:00:00Z"), 10)
                .is_empty()
        );
    }

    #[test]
    fn a_recurring_window_follows_its_zone() {
        let m = window(
            "checks = [\"db-*\"]\nschedule = \"0 2 * * *\"\nduration = \"30m\"\ntimezone = \"Europe/Berlin\"",
        )
        .unwrap();
        // 02:00 in Berlin in winter is 01:00 UTC.
        assert_eq!(m.active_until(ms("2026-12-01T00:59:59Z")), None);
        assert_eq!(
            m.active_until(ms("2026-12-01T01:00:00Z")),
            Some(ms("2026-12-01T01:30:00Z"))
        );
        assert_eq!(
            m.active_until(ms("2026-12-01T01:29:59Z")),
            Some(ms("2026-12-01T01:30:00Z"))
        );
        assert_eq!(m.active_until(ms("2026-12-01T01:30:00Z")), None);
        assert!(m.matches("db-main", &BTreeMap::new()));
        assert!(!m.matches("web", &BTreeMap::new()));
    }

    #[test]
    fn a_one_off_window_and_labels() {
        let m = window(
            "labels = { team = \"payments\" }\nstart = \"2026-12-24T00:00\"\nend = \"2026-12-27T00:00\"\ntimezone = \"America/New_York\"",
        )
        .unwrap();
        assert_eq!(m.active_until(ms("2026-12-24T04:59:59Z")), None);
        assert_eq!(
            m.active_until(ms("2026-12-24T05:00:00Z")),
            Some(ms("2026-12-27T05:00:00Z"))
        );
        let team = |t: &str| BTreeMap::from([("team".to_string(), t.to_string())]);
        assert!(m.matches("anything", &team("payments")));
        assert!(!m.matches("anything", &team("web")));
    }

    #[test]
    fn bad_windows_name_the_field() {
        let e = window("checks = [\"*\"]\nschedule = \"0 2 * * *\"").unwrap_err();
        assert!(
            e.contains("maintenance \"m\": schedule") && e.contains("duration"),
            "{e}"
        );
        let e = window("checks = [\"*\"]\nstart = \"tomorrow\"\nend = \"2026-12-27T00:00\"")
            .unwrap_err();
        assert!(e.contains("start \"tomorrow\""), "{e}");
        let e = window("checks = [\"*\"]\nschedule = \"0 2 * * *\"\nduration = \"1h\"\ntimezone = \"Mars/Olympus\"")
            .unwrap_err();
        assert!(e.contains("timezone") && e.contains("Mars/Olympus"), "{e}");
        let e = window("schedule = \"0 2 * * *\"\nduration = \"1h\"").unwrap_err();
        assert!(e.contains("checks"), "{e}");
        let e =
            window("checks = [\"*\"]\nstart = \"2026-12-27T00:00\"\nend = \"2026-12-24T00:00\"")
                .unwrap_err();
        assert!(e.contains("end: must be after start"), "{e}");
    }
}

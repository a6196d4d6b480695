//! `[status_page]`: which checks' badges and status page entries are
//! public without a token when reads need one, and the thresholds that
//! colour the uptime badges, bars and response-time badges.

use std::ops::Range;
use std::time::Duration;

use serde::Deserialize;
use warden_text::units;

use super::error::{ConfigError, Scope};
use super::source::Source;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStatusPage {
    #[serde(default)]
    public: Vec<String>,
    uptime_thresholds: Option<Vec<f64>>,
    response_time_thresholds: Option<Vec<String>>,
}

/// `[status_page]`.
#[derive(Debug, Clone)]
pub struct StatusPageSection {
    /// Checks whose badges and page entries anyone may read, token or
    /// not.
    pub public: Vec<String>,
    /// Uptime percentages at or above which a badge is bright green,
    /// green, yellow (below the last: red); descending.
    pub uptime_thresholds: [f64; 3],
    /// Response times at or below which a badge is bright green, green,
    /// yellow (above the last: red); ascending.
    pub response_time_thresholds: [Duration; 3],
}

impl Default for StatusPageSection {
    fn default() -> Self {
        StatusPageSection {
            public: Vec::new(),
            uptime_thresholds: [99.9, 99.0, 95.0],
            response_time_thresholds: [
                Duration::from_millis(200),
                Duration::from_millis(500),
                Duration::from_secs(1),
            ],
        }
    }
}

impl StatusPageSection {
    /// Parses `[status_page]` (absent: nothing public, the default
    /// thresholds). `checks` are the configured names, which `public`
    /// must be among.
    pub(super) fn parse(
        src: &Source<'_>,
        table: Option<(toml::Table, Range<usize>)>,
        checks: &[&str],
        errors: &mut Vec<ConfigError>,
    ) -> StatusPageSection {
        let mut page = StatusPageSection::default();
        let Some((table, span)) = table else {
            return page;
        };
        let mut err = |field: &str, msg: String| {
            errors.push(src.error(
                src.field_line(&span, field),
                Scope::StatusPage,
                Some(field),
                msg,
            ));
        };
        let raw = match RawStatusPage::deserialize(toml::Value::Table(table)) {
            Ok(r) => r,
            Err(e) => {
                errors.push(src.error(
                    src.line_at(span.start),
                    Scope::StatusPage,
                    None,
                    e.message().to_string(),
                ));
                return page;
            }
        };
        for (i, name) in raw.public.iter().enumerate() {
            if !checks.contains(&name.as_str()) {
                err(&format!("public[{i}]"), format!("no check named {name:?}"));
            }
        }
        page.public = raw.public;
        if let Some(t) = raw.uptime_thresholds {
            match <[f64; 3]>::try_from(t.as_slice()) {
                Ok(t)
                    if t.iter().all(|p| (0.0..=100.0).contains(p))
                        && t[0] >= t[1]
                        && t[1] >= t[2] =>
                {
                    page.uptime_thresholds = t
                }
                _ => err(
                    "uptime_thresholds",
                    format!(
                        "{t:?}: expected three percentages, highest first (like [99.9, 99.0, 95.0])"
                    ),
                ),
            }
        }
        if let Some(t) = raw.response_time_thresholds {
            let parsed: Result<Vec<Duration>, String> =
                t.iter().map(|d| units::parse_duration(d)).collect();
            match parsed.map(|p| <[Duration; 3]>::try_from(p.as_slice())) {
                Ok(Ok(d)) if d[0] <= d[1] && d[1] <= d[2] => page.response_time_thresholds = d,
                Err(e) => err("response_time_thresholds", e),
                _ => err(
                    "response_time_thresholds",
                    format!(
                        "{t:?}: expected three durations, shortest first (like [\"200ms\", \"500ms\", \"1s\"])"
                    ),
                ),
            }
        }
        page
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn errors(section: &str) -> String {
        let text =
            format!("[[check]]\nname = \"api\"\nplugin = \"hello\"\n[status_page]\n{section}");
        match Config::parse(&text, "warden.toml", std::path::Path::new("/tmp")) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn mistakes_name_their_field() {
        assert_eq!(errors("public = [\"api\"]\n"), "");
        let e = errors("public = [\"api\", \"nope\"]\n");
        assert!(
            e.contains("warden.toml:5: [status_page] public[1]: no check named \"nope\""),
            "{e}"
        );
        let e = errors("uptime_thresholds = [95.0, 99.0, 99.9]\n");
        assert!(
            e.contains("[status_page] uptime_thresholds: ") && e.contains("highest first"),
            "{e}"
        );
        let e = errors("response_time_thresholds = [\"1s\", \"fast\", \"2s\"]\n");
        assert!(
            e.contains("[status_page] response_time_thresholds: "),
            "{e}"
        );
        let e = errors("colour = \"red\"\n");
        assert!(e.contains("[status_page]: unknown field `colour`"), "{e}");
    }
}

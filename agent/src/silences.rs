//! What keeps a check's notifications from being sent, though it still
//! runs and is stored: a `[[maintenance]]` window, a silence made over the
//! API (`POST /v1/silences`, `warden silence add`), a parent check with a
//! hard problem (`depends_on`), or flapping. Each is a [`Quiet`]; the
//! notifications a quiet check would have sent are recorded as
//! suppressed, with its reason, and when it ends, what changed meanwhile
//! is sent ([`crate::notices`]).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};

use serde::Deserialize;
use warden_runtime::Status;
use warden_text::units;

use crate::config::CheckConfig;
use crate::config::maintenance::{Maintenance, glob_match};
use crate::limits;
pub use crate::store::silences::Silence;

/// Why a check's notifications are held back now.
#[derive(Debug, Clone, PartialEq)]
pub enum Quiet {
    /// In a `[[maintenance]]` window.
    Maintenance {
        /// The window's name.
        name: String,
        /// When it ends (ms since the epoch).
        until_ms: i64,
    },
    /// Under a silence.
    Silence {
        /// Its id.
        id: i64,
        /// When it ends.
        until_ms: i64,
    },
    /// A parent check has a hard problem.
    Parent {
        /// The parent.
        check: String,
        /// Its hard status.
        status: Status,
    },
    /// The check flaps.
    Flapping,
}

/// `ms` since the epoch as RFC 3339 (UTC, seconds).
pub(crate) fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

impl std::fmt::Display for Quiet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Quiet::Maintenance { name, until_ms } => {
                write!(f, "in maintenance {name:?} until {}", rfc3339(*until_ms))
            }
            Quiet::Silence { id, until_ms } => {
                write!(f, "silenced by silence {id} until {}", rfc3339(*until_ms))
            }
            Quiet::Parent { check, status } => {
                write!(f, "parent check {check:?} is {}", status.as_str())
            }
            Quiet::Flapping => f.write_str("flapping"),
        }
    }
}

/// Whether `s` covers `check`: every matcher matches (`check`: its name,
/// `plugin`: its plugin, else the label of that name).
pub fn silence_matches(s: &Silence, check: &CheckConfig) -> bool {
    s.matchers.iter().all(|(k, pattern)| {
        let value = match k.as_str() {
            "check" => Some(check.name.as_str()),
            "plugin" => Some(check.plugin.as_str()),
            label => check.labels.get(label).map(String::as_str),
        };
        value.is_some_and(|v| glob_match(pattern, v))
    })
}

/// A silence as `POST /v1/silences` takes it.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSilence {
    /// Name → glob; `check` and `plugin` or a label name; 1 to 16.
    pub matchers: BTreeMap<String, String>,
    /// From (RFC 3339; default now).
    pub starts_at: Option<String>,
    /// Until (RFC 3339), or
    pub ends_at: Option<String>,
    /// for how long from the start (`2h`).
    pub duration: Option<String>,
    /// Why (required).
    #[schema(min_length = 1, max_length = 1024, pattern = "\\S")]
    pub comment: String,
    /// Who (required).
    #[schema(min_length = 1, max_length = 1024, pattern = "\\S")]
    pub author: String,
}

fn time(field: &str, text: &str) -> Result<i64, String> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_millis())
        .map_err(|e| format!("{field}: {text:?} is not an RFC 3339 time ({e})"))
}

impl NewSilence {
    /// The silence it asks for at `now_ms`, or what is wrong with it
    /// (naming the field).
    pub fn validate(self, now_ms: i64) -> Result<Silence, String> {
        if self.matchers.is_empty() {
            return Err("matchers: give at least one (e.g. {\"check\": \"db-*\"})".into());
        }
        if self.matchers.len() > limits::MAX_SILENCE_MATCHERS {
            return Err(format!(
                "matchers: at most {} per silence",
                limits::MAX_SILENCE_MATCHERS
            ));
        }
        for (k, v) in &self.matchers {
            if !crate::config::check::is_label_name(k) {
                return Err(format!(
                    "matchers.{k}: a matcher name is check, plugin or a label name ([A-Za-z_][A-Za-z0-9_]*)"
                ));
            }
            if v.is_empty() || v.len() > limits::MAX_SILENCE_TEXT || v.chars().any(char::is_control)
            {
                return Err(format!(
                    "matchers.{k}: a pattern is 1 to {} bytes of printable text",
                    limits::MAX_SILENCE_TEXT
                ));
            }
        }
        for (field, v) in [("comment", &self.comment), ("author", &self.author)] {
            if v.trim().is_empty() || v.len() > limits::MAX_SILENCE_TEXT {
                return Err(format!(
                    "{field}: required, at most {} bytes",
                    limits::MAX_SILENCE_TEXT
                ));
            }
        }
        let starts = match &self.starts_at {
            Some(t) => time("starts_at", t)?,
            None => now_ms,
        };
        let ends = match (&self.ends_at, &self.duration) {
            (Some(t), None) => time("ends_at", t)?,
            (None, Some(d)) => {
                starts
                    + units::parse_duration(d)
                        .map_err(|e| format!("duration: {e}"))?
                        .as_millis() as i64
            }
            _ => {
                return Err(
                    "ends_at: give ends_at (RFC 3339) or duration (\"2h\"), not both".into(),
                );
            }
        };
        if ends <= starts.max(now_ms) {
            return Err("ends_at: must be in the future and after starts_at".into());
        }
        if ends - starts > limits::MAX_INTERVAL.as_millis() as i64 {
            return Err(format!(
                "ends_at: a silence lasts at most {}",
                units::format_duration(limits::MAX_INTERVAL)
            ));
        }
        Ok(Silence {
            id: 0,
            matchers: self.matchers,
            starts_unix_ms: starts,
            ends_unix_ms: ends,
            comment: self.comment,
            author: self.author,
            created_unix_ms: now_ms,
        })
    }
}

/// The maintenance windows and the silences in force or to come.
pub struct Silences {
    windows: RwLock<Arc<Vec<Maintenance>>>,
    list: Mutex<Vec<Silence>>,
}

impl Silences {
    /// From the config's windows and the stored silences.
    pub fn new(windows: Vec<Maintenance>, stored: Vec<Silence>) -> Silences {
        Silences {
            windows: RwLock::new(Arc::new(windows)),
            list: Mutex::new(stored),
        }
    }

    /// The maintenance windows in force.
    pub fn windows(&self) -> Arc<Vec<Maintenance>> {
        self.windows
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Puts a reloaded config's windows in force.
    pub fn set_windows(&self, windows: Vec<Maintenance>) {
        *self.windows.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(windows);
    }

    fn list(&self) -> std::sync::MutexGuard<'_, Vec<Silence>> {
        self.list.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether there is anything that could hold (cheap test first).
    pub fn any(&self) -> bool {
        !self.windows().is_empty() || !self.list().is_empty()
    }

    /// The window or silence holding `check`'s notifications at `now_ms`
    /// (a window first), if one does.
    pub fn holding(&self, check: &CheckConfig, now_ms: i64) -> Option<Quiet> {
        for w in self.windows().iter() {
            if w.matches(&check.name, &check.labels)
                && let Some(until_ms) = w.active_until(now_ms)
            {
                return Some(Quiet::Maintenance {
                    name: w.name.clone(),
                    until_ms,
                });
            }
        }
        self.list()
            .iter()
            .find(|s| {
                s.starts_unix_ms <= now_ms && now_ms < s.ends_unix_ms && silence_matches(s, check)
            })
            .map(|s| Quiet::Silence {
                id: s.id,
                until_ms: s.ends_unix_ms,
            })
    }

    /// Silences that have not ended by `now_ms`.
    pub fn current(&self, now_ms: i64) -> usize {
        self.list()
            .iter()
            .filter(|s| s.ends_unix_ms > now_ms)
            .count()
    }

    /// Adds a stored silence (dropping ended ones).
    pub fn add(&self, s: Silence, now_ms: i64) {
        let mut list = self.list();
        list.retain(|s| s.ends_unix_ms > now_ms);
        list.push(s);
    }

    /// Ends silence `id` at `now_ms`.
    pub fn expire(&self, id: i64, now_ms: i64) {
        for s in self.list().iter_mut().filter(|s| s.id == id) {
            s.ends_unix_ms = s.ends_unix_ms.min(now_ms);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(name: &str, team: &str) -> CheckConfig {
        let config = crate::config::Config::parse(
            &format!(
                "[[check]]\nname = \"{name}\"\nplugin = \"hello\"\nlabels = {{ team = \"{team}\" }}\n"
            ),
            "warden.toml",
            std::path::Path::new("/tmp"),
        )
        .unwrap();
        config.checks[0].clone()
    }

    fn new(matchers: &[(&str, &str)], duration: &str) -> NewSilence {
        NewSilence {
            matchers: matchers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            starts_at: None,
            ends_at: None,
            duration: Some(duration.into()),
            comment: "deploy".into(),
            author: "ops".into(),
        }
    }

    #[test]
    fn a_silence_matches_by_name_plugin_and_labels() {
        let now = 1_800_000_000_000;
        let s = new(&[("check", "db-*"), ("team", "pay*")], "1h")
            .validate(now)
            .unwrap();
        assert!(silence_matches(&s, &check("db-main", "payments")));
        assert!(!silence_matches(&s, &check("db-main", "web")));
        assert!(!silence_matches(&s, &check("web", "payments")));
        let silences = Silences::new(vec![], vec![Silence { id: 7, ..s }]);
        let c = check("db-main", "payments");
        assert_eq!(
            silences.holding(&c, now),
            Some(Quiet::Silence {
                id: 7,
                until_ms: now + 3_600_000
            })
        );
        assert_eq!(silences.holding(&c, now + 3_600_000), None, "ended");
        silences.expire(7, now + 1);
        assert_eq!(silences.holding(&c, now + 2), None, "expired");
    }

    #[test]
    fn bad_silences_name_the_field() {
        let now = 1_800_000_000_000;
        let e = new(&[], "1h").validate(now).unwrap_err();
        assert!(e.starts_with("matchers"), "{e}");
        let e = new(&[("check", "x")], "soon").validate(now).unwrap_err();
        assert!(e.starts_with("duration"), "{e}");
        let mut past = new(&[("check", "x")], "1h");
        past.duration = None;
        past.ends_at = Some("2020-01-01T00:00:00Z".into());
        let e = past.validate(now).unwrap_err();
        assert!(e.starts_with("ends_at"), "{e}");
        let mut anon = new(&[("check", "x")], "1h");
        anon.author = " ".into();
        assert!(anon.validate(now).unwrap_err().starts_with("author"));
        let e = new(&[("bad-name", "x")], "1h").validate(now).unwrap_err();
        assert!(e.starts_with("matchers.bad-name"), "{e}");
    }
}

//! `[alerting]`: this agent's name in notifications (`instance`, default
//! the host name), the notifiers of checks that name none (`notify`, and
//! `[[alerting.route]]`s by severity and labels), and the base of the
//! links notifications carry (`api_url`, default the agent's `listen`
//! address).

use std::collections::BTreeMap;
use std::ops::Range;
use std::str::FromStr;

use serde::Deserialize;
use warden_runtime::Status;

use super::error::{ConfigError, Scope};
use super::source::Source;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAlerting {
    instance: Option<String>,
    #[serde(default)]
    notify: Vec<String>,
    api_url: Option<String>,
    #[serde(default)]
    route: Vec<RawRoute>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    #[serde(default)]
    severity: Vec<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    notify: Vec<String>,
}

/// One `[[alerting.route]]`: alerts of checks without their own `notify`
/// whose severity is listed (any, when none is) and whose labels include
/// all of `labels` go to its notifiers.
#[derive(Debug, Clone)]
pub struct Route {
    /// Severities it takes (empty: all).
    pub severity: Vec<Status>,
    /// Labels a check must have, with these values.
    pub labels: BTreeMap<String, String>,
    /// Where the alerts go.
    pub notify: Vec<String>,
}

impl Route {
    /// Whether an alert of `severity` from a check labelled `labels` takes
    /// this route.
    pub fn matches(&self, severity: Status, labels: &BTreeMap<String, String>) -> bool {
        (self.severity.is_empty() || self.severity.contains(&severity))
            && self.labels.iter().all(|(k, v)| labels.get(k) == Some(v))
    }
}

/// `[alerting]`.
#[derive(Debug, Clone)]
pub struct AlertingSection {
    /// The agent's name (`instance` label, PagerDuty `source`).
    pub instance: String,
    /// Default notifiers.
    pub notify: Vec<String>,
    /// Base URL of links to the API.
    pub api_url: Option<String>,
    /// Line of `notify` (for errors found once notifiers are known).
    pub notify_line: usize,
    /// Routes by severity and labels, in file order.
    pub routes: Vec<Route>,
    /// Line of the routes (for errors found once notifiers are known).
    pub routes_line: usize,
}

/// The host's name, for the default `instance`.
pub fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at
    // most that many bytes.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    match std::str::from_utf8(&buf[..end]) {
        Ok(name) if rc == 0 && !name.is_empty() => name.to_string(),
        _ => "warden".into(),
    }
}

impl AlertingSection {
    /// Parses `[alerting]` (absent: the defaults).
    pub(super) fn parse(
        src: &Source<'_>,
        table: Option<(toml::Table, Range<usize>)>,
        errors: &mut Vec<ConfigError>,
    ) -> AlertingSection {
        let mut section = AlertingSection {
            instance: host_name(),
            notify: Vec::new(),
            api_url: None,
            notify_line: 0,
            routes: Vec::new(),
            routes_line: 0,
        };
        let Some((table, span)) = table else {
            return section;
        };
        let a = match RawAlerting::deserialize(toml::Value::Table(table)) {
            Ok(a) => a,
            Err(e) => {
                errors.push(src.error(src.line_at(span.start), Scope::Alerting, None, e.message()));
                return section;
            }
        };
        let mut err = |field: &str, msg: String| {
            errors.push(src.error(
                src.field_line(&span, field),
                Scope::Alerting,
                Some(field),
                msg,
            ))
        };
        if let Some(instance) = a.instance {
            if instance.is_empty()
                || instance.len() > 253
                || instance.chars().any(|c| c.is_control())
            {
                err("instance", "use 1-253 printable characters".into());
            } else {
                section.instance = instance;
            }
        }
        if let Some(url) = a.api_url {
            match super::notifier::url_problem(&url) {
                Some(p) => err("api_url", p),
                None => section.api_url = Some(url.trim_end_matches('/').to_string()),
            }
        }
        section.routes_line = src.field_line(&span, "route");
        for (i, r) in a.route.into_iter().enumerate() {
            let mut severity = Vec::new();
            for (j, s) in r.severity.iter().enumerate() {
                match Status::from_str(s) {
                    Ok(status) if status != Status::Ok => severity.push(status),
                    _ => err(
                        &format!("route[{i}].severity[{j}]"),
                        format!("{s:?}: use warning, critical or unknown"),
                    ),
                }
            }
            if r.notify.is_empty() {
                err(&format!("route[{i}].notify"), "names no notifier".into());
            }
            section.routes.push(Route {
                severity,
                labels: r.labels,
                notify: r.notify,
            });
        }
        section.notify_line = src.field_line(&span, "notify");
        section.notify = a.notify;
        section
    }
}

//! `[[notifier]]`: where alerts go. Each has a unique `name` (what checks
//! list in `notify`) and a `type`:
//!
//! - `webhook`: `url` (or `url_env`/`url_file`), `method` (POST or PUT),
//!   `headers`, `template` (the body, with `{{check}}`-style placeholders,
//!   see [`PLACEHOLDERS`]; default: JSON);
//! - `slack`: an incoming-webhook `url` (or `url_env`/`url_file`);
//! - `pagerduty`: `routing_key_env` or `routing_key_file` (Events API v2),
//!   `url` for another endpoint than PagerDuty's;
//! - `alertmanager`: `urls`, every one sent to (not load-balanced).
//!
//! Every type takes `timeout` (default [`limits::NOTIFY_TIMEOUT`]).
//! URLs are http or https; one may point at a loopback or private address
//! only by naming it literally (an IP literal or `localhost`), as a
//! plugin's grant must.

use std::collections::{BTreeMap, HashSet};
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use warden_text::units;

use super::error::{ConfigError, Scope};
use super::secret::{self, Secret};
use super::source::Source;
use crate::limits;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNotifier {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    url: Option<String>,
    url_env: Option<String>,
    url_file: Option<PathBuf>,
    #[serde(default)]
    urls: Vec<String>,
    routing_key_env: Option<String>,
    routing_key_file: Option<PathBuf>,
    method: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    template: Option<String>,
    timeout: Option<String>,
}

/// What a notifier is and where it sends.
#[derive(Debug, Clone)]
pub enum NotifierKind {
    /// JSON to any URL.
    Webhook {
        /// Target (may carry a token: shown redacted).
        url: Secret,
        /// POST or PUT.
        method: String,
        /// Extra headers.
        headers: Vec<(String, String)>,
        /// The body, with placeholders (else the default JSON).
        template: Option<String>,
    },
    /// A Slack incoming webhook.
    Slack {
        /// The webhook URL (a secret).
        url: Secret,
    },
    /// PagerDuty Events API v2.
    PagerDuty {
        /// The integration's routing key.
        routing_key: Secret,
        /// The events endpoint.
        url: String,
    },
    /// Prometheus Alertmanager API v2, every URL.
    Alertmanager {
        /// Base URLs (`http://am:9093`).
        urls: Vec<String>,
    },
}

impl NotifierKind {
    /// The secrets it holds (URLs, keys).
    pub fn secrets(&self) -> Vec<&Secret> {
        match self {
            NotifierKind::Webhook { url, .. } | NotifierKind::Slack { url } => vec![url],
            NotifierKind::PagerDuty { routing_key, .. } => vec![routing_key],
            NotifierKind::Alertmanager { .. } => Vec::new(),
        }
    }
}

/// One `[[notifier]]`.
#[derive(Debug, Clone)]
pub struct NotifierConfig {
    /// Unique name.
    pub name: String,
    /// Type and target.
    pub kind: NotifierKind,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Line of the `[[notifier]]` header.
    pub line: usize,
}

impl NotifierKind {
    /// The type's name, as in the config.
    pub fn type_name(&self) -> &'static str {
        match self {
            NotifierKind::Webhook { .. } => "webhook",
            NotifierKind::Slack { .. } => "slack",
            NotifierKind::PagerDuty { .. } => "pagerduty",
            NotifierKind::Alertmanager { .. } => "alertmanager",
        }
    }
}

/// The placeholders a webhook `template` may use; `{{labels.NAME}}` takes
/// a check label (empty when the check has none of that name). Values are
/// escaped for a JSON string (without the quotes).
pub const PLACEHOLDERS: [&str; 11] = [
    "agent", "check", "plugin", "status", "severity", "summary", "since", "run_id", "findings",
    "link", "reminder",
];

/// Why `template` cannot be a webhook body, if it cannot.
pub fn check_template(template: &str) -> Result<(), String> {
    warden_text::template::expand(template, true, |p| match p {
        warden_text::template::Placeholder::Capture(name)
            if PLACEHOLDERS.contains(&name) || name.starts_with("labels.") =>
        {
            Some(String::new())
        }
        _ => None,
    })
    .map(|_| ())
    .map_err(|e| {
        if e.contains("was not captured") {
            format!(
                "{e}: use {{{{{}}}}} or {{{{labels.NAME}}}}",
                PLACEHOLDERS.join("}}, {{")
            )
        } else {
            e
        }
    })
}

/// Why `url` cannot be a notifier's target, if it cannot.
pub fn url_problem(url: &str) -> Option<String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Some(format!(
            "{:?} is not a URL like https://hooks.example.com/x",
            warden_text::redact::url(url)
        ));
    };
    if scheme != "http" && scheme != "https" {
        return Some(format!("scheme {scheme:?}: must be http or https"));
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.is_empty() || authority.contains('@') {
        return Some("needs a host, and no user:password@".into());
    }
    None
}

impl NotifierConfig {
    /// Parses the `index`th `[[notifier]]`; problems go to `errors`.
    pub(super) fn parse(
        src: &Source<'_>,
        index: usize,
        table: toml::Table,
        span: &Range<usize>,
        names: &mut HashSet<String>,
        errors: &mut Vec<ConfigError>,
    ) -> Option<NotifierConfig> {
        let (n, label): (RawNotifier, String) =
            src.table("notifier", index, table, span, Scope::Notifier, errors)?;
        let scope = || Scope::Notifier(label.clone());
        let before = errors.len();
        let mut err = |field: &str, msg: String| {
            errors.push(src.error(src.field_line(span, field), scope(), Some(field), msg));
        };
        if let Some(problem) = super::check::name_problem(&n.name) {
            err("name", problem);
        } else if !names.insert(n.name.clone()) {
            err("name", "another notifier has this name".into());
        }
        let timeout = match n.timeout.as_deref().map(units::parse_duration) {
            None => limits::NOTIFY_TIMEOUT,
            Some(Ok(d)) if !d.is_zero() && d <= limits::MAX_NOTIFY_TIMEOUT => d,
            Some(Ok(_)) => {
                err(
                    "timeout",
                    format!(
                        "must be over 0 and at most {}",
                        units::format_duration(limits::MAX_NOTIFY_TIMEOUT)
                    ),
                );
                limits::NOTIFY_TIMEOUT
            }
            Some(Err(e)) => {
                err("timeout", e);
                limits::NOTIFY_TIMEOUT
            }
        };
        // The target URL: inline, or from a variable or a file.
        let url = |err: &mut dyn FnMut(&str, String)| -> Option<Secret> {
            let from = match secret::read(src, "url", n.url_env.as_deref(), n.url_file.as_ref()) {
                Ok(s) => s,
                Err((field, msg)) => {
                    err(&field, msg);
                    return None;
                }
            };
            let url = match (from, &n.url) {
                (Some(_), Some(_)) => {
                    err("url", "set url, url_env or url_file, only one".into());
                    return None;
                }
                (Some(s), None) => s,
                (None, Some(u)) => Secret::inline(u.clone()),
                (None, None) => {
                    err(
                        "url",
                        format!("a {} notifier needs url, url_env or url_file", n.kind),
                    );
                    return None;
                }
            };
            if let Some(p) = url_problem(url.expose()) {
                err("url", p);
                return None;
            }
            Some(url)
        };
        let unused = |err: &mut dyn FnMut(&str, String), fields: &[(&str, bool)]| {
            for (field, set) in fields {
                if *set {
                    err(field, format!("is not a setting of a {} notifier", n.kind));
                }
            }
        };
        let kind = match n.kind.as_str() {
            "webhook" => {
                unused(
                    &mut err,
                    &[
                        ("urls", !n.urls.is_empty()),
                        ("routing_key_env", n.routing_key_env.is_some()),
                        ("routing_key_file", n.routing_key_file.is_some()),
                    ],
                );
                let method = n
                    .method
                    .clone()
                    .unwrap_or_else(|| "POST".into())
                    .to_ascii_uppercase();
                if method != "POST" && method != "PUT" {
                    err("method", format!("{method:?}: use POST or PUT"));
                }
                for name in n.headers.keys() {
                    if name.is_empty()
                        || !name
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
                    {
                        err(&format!("headers.{name}"), "not a header name".into());
                    }
                }
                if let Some(t) = &n.template
                    && let Err(e) = check_template(t)
                {
                    err("template", e);
                }
                url(&mut err).map(|url| NotifierKind::Webhook {
                    url,
                    method,
                    headers: n.headers.clone().into_iter().collect(),
                    template: n.template.clone(),
                })
            }
            "slack" => {
                unused(
                    &mut err,
                    &[
                        ("urls", !n.urls.is_empty()),
                        ("method", n.method.is_some()),
                        ("headers", !n.headers.is_empty()),
                        ("routing_key_env", n.routing_key_env.is_some()),
                        ("routing_key_file", n.routing_key_file.is_some()),
                    ],
                );
                url(&mut err).map(|url| NotifierKind::Slack { url })
            }
            "pagerduty" => {
                unused(
                    &mut err,
                    &[
                        ("urls", !n.urls.is_empty()),
                        ("method", n.method.is_some()),
                        ("headers", !n.headers.is_empty()),
                        ("url_env", n.url_env.is_some()),
                        ("url_file", n.url_file.is_some()),
                    ],
                );
                let target = n
                    .url
                    .clone()
                    .unwrap_or_else(|| limits::PAGERDUTY_EVENTS_URL.into());
                if let Some(p) = url_problem(&target) {
                    err("url", p);
                }
                match secret::read(
                    src,
                    "routing_key",
                    n.routing_key_env.as_deref(),
                    n.routing_key_file.as_ref(),
                ) {
                    Ok(Some(routing_key)) => Some(NotifierKind::PagerDuty {
                        routing_key,
                        url: target,
                    }),
                    Ok(None) => {
                        err(
                            "routing_key_env",
                            "a pagerduty notifier needs routing_key_env or routing_key_file".into(),
                        );
                        None
                    }
                    Err((field, msg)) => {
                        err(&field, msg);
                        None
                    }
                }
            }
            "alertmanager" => {
                unused(
                    &mut err,
                    &[
                        ("url", n.url.is_some()),
                        ("url_env", n.url_env.is_some()),
                        ("url_file", n.url_file.is_some()),
                        ("method", n.method.is_some()),
                        ("headers", !n.headers.is_empty()),
                        ("routing_key_env", n.routing_key_env.is_some()),
                        ("routing_key_file", n.routing_key_file.is_some()),
                    ],
                );
                if n.urls.is_empty() {
                    err(
                        "urls",
                        "an alertmanager notifier needs urls = [\"http://alertmanager:9093\"]"
                            .into(),
                    );
                }
                for (i, u) in n.urls.iter().enumerate() {
                    if let Some(p) = url_problem(u) {
                        err(&format!("urls[{i}]"), p);
                    }
                }
                Some(NotifierKind::Alertmanager {
                    urls: n
                        .urls
                        .iter()
                        .map(|u| u.trim_end_matches('/').to_string())
                        .collect(),
                })
            }
            other => {
                err(
                    "type",
                    format!("{other:?}: use webhook, slack, pagerduty or alertmanager"),
                );
                None
            }
        };
        if errors.len() > before {
            return None;
        }
        Some(NotifierConfig {
            name: n.name,
            kind: kind?,
            timeout,
            line: src.line_at(span.start),
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use std::path::Path;

    fn errors(text: &str) -> String {
        Config::parse(text, "warden.toml", Path::new("/tmp"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn every_notifier_problem_names_the_notifier_and_field() {
        let all = errors(
            "[[notifier]]\nname = \"a\"\ntype = \"smoke-signal\"\n\
             [[notifier]]\nname = \"b\"\ntype = \"webhook\"\n\
             [[notifier]]\nname = \"c\"\ntype = \"slack\"\nurl_env = \"WARDEN_TEST_UNSET_VAR\"\n\
             [[notifier]]\nname = \"d\"\ntype = \"alertmanager\"\n\
             [[notifier]]\nname = \"e\"\ntype = \"webhook\"\nurl = \"ftp://x\"\ntimeout = \"0s\"\n\
             [[notifier]]\nname = \"f\"\ntype = \"pagerduty\"\n\
             [[notifier]]\nname = \"e\"\ntype = \"alertmanager\"\nurls = [\"http://am:9093\"]\nmethod = \"PUT\"\n",
        );
        for expected in [
            "warden.toml:3: notifier \"a\": type: \"smoke-signal\": use webhook, slack, pagerduty or alertmanager",
            "notifier \"b\": url: a webhook notifier needs url, url_env or url_file",
            "notifier \"c\": url_env: the variable WARDEN_TEST_UNSET_VAR is not set",
            "notifier \"d\": urls: an alertmanager notifier needs urls",
            "notifier \"e\": url: scheme \"ftp\": must be http or https",
            "notifier \"e\": timeout: must be over 0",
            "notifier \"f\": routing_key_env: a pagerduty notifier needs routing_key_env or routing_key_file",
            "notifier \"e\": name: another notifier has this name",
            "notifier \"e\": method: is not a setting of a alertmanager notifier",
        ] {
            assert!(all.contains(expected), "missing {expected:?} in:\n{all}");
        }
    }

    #[test]
    fn routes_and_labels_are_checked() {
        let all = errors(
            "[alerting]\nnotify = [\"nobody\"]\n\
             [[notifier]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"https://hooks.example.com/x\"\n\
             [[check]]\nname = \"a\"\nplugin = \"hello\"\nnotify = [\"hook\", \"pager\"]\n\
             [[check]]\nname = \"b\"\nplugin = \"hello\"\nlabels = { team = \"x\", severity = \"high\", \"0bad\" = \"v\" }\n",
        );
        for expected in [
            "warden.toml:2: [alerting] notify[0]: no [[notifier]] named \"nobody\"",
            "warden.toml:10: check \"a\": notify[1]: no [[notifier]] named \"pager\"",
            "warden.toml:14: check \"b\": labels.severity: \"severity\" is reserved",
            "warden.toml:14: check \"b\": labels.0bad: a label name is",
        ] {
            assert!(all.contains(expected), "missing {expected:?} in:\n{all}");
        }
        assert!(!all.contains("labels.team"), "{all}");
    }

    #[test]
    fn routes_name_severities_and_notifiers_that_exist() {
        let all = errors(
            "[alerting]\n[[alerting.route]]\nseverity = [\"ok\", \"critical\"]\nnotify = [\"nobody\"]\n\
             [[alerting.route]]\nnotify = []\n",
        );
        for expected in [
            "[alerting] route[0].severity[0]: \"ok\": use warning, critical or unknown",
            "[alerting] route[0].notify[0]: no [[notifier]] named \"nobody\"",
            "[alerting] route[1].notify: names no notifier",
        ] {
            assert!(all.contains(expected), "missing {expected:?} in:\n{all}");
        }
    }

    #[test]
    fn a_secret_url_is_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("slack.url"),
            "https://hooks.slack.com/services/T0/B0/S3CR3Tt0k3nV4lu3x\n",
        )
        .unwrap();
        let c = Config::parse(
            "[[notifier]]\nname = \"chat\"\ntype = \"slack\"\nurl_file = \"slack.url\"\n",
            "warden.toml",
            dir.path(),
        )
        .unwrap();
        let shown = format!("{:?}", c.notifiers);
        assert!(!shown.contains("S3CR3T"), "{shown}");
        assert!(shown.contains("slack.url"), "{shown}");
    }
}

//! What each notifier type sends, built from one [`Alert`]: the generic
//! webhook JSON, Slack's incoming-webhook message, a PagerDuty Events API
//! v2 event and Alertmanager API v2 alerts. Bodies are built when the
//! notification is queued and stored as they will be sent; secrets (a
//! routing key, a webhook URL) are added by the sender, never stored.

use serde_json::{Value, json};

use crate::config::notifier::NotifierKind;
use warden_runtime::Status;

/// Whether an alert starts (or changes severity) or ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A hard problem.
    Firing,
    /// Hard recovery.
    Resolved,
}

impl Event {
    /// As stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Firing => "firing",
            Event::Resolved => "resolved",
        }
    }
}

/// Everything a notification says about a check.
#[derive(Debug, Clone)]
pub struct Alert {
    /// The agent (`[alerting] instance`).
    pub instance: String,
    /// Check name.
    pub check: String,
    /// Its plugin.
    pub plugin: String,
    /// Firing or resolved.
    pub event: Event,
    /// The hard status (for a resolve: the status that ended).
    pub severity: Status,
    /// The run's summary (plugin text; escaped where it lands).
    pub summary: String,
    /// When the hard status began (ms since the epoch).
    pub since_ms: i64,
    /// The check's labels.
    pub labels: Vec<(String, String)>,
    /// The run that decided it.
    pub run_id: String,
    /// Findings the run reported.
    pub findings: usize,
    /// The check in the agent's API.
    pub link: String,
    /// Now (ms since the epoch).
    pub now_ms: i64,
    /// A reminder of an alert already sent.
    pub reminder: bool,
    /// About flapping: `Firing` = began to flap, `Resolved` = settled
    /// ([`crate::flapping`]); `summary` says by how much.
    pub flapping: bool,
    /// About an `[[action]]` of the check (its name): what it did or
    /// waits for, in `summary` ([`crate::actions`]).
    pub action: Option<String>,
}

impl Alert {
    /// The status as stored, shown and sent to webhooks: `firing`,
    /// `resolved`, `flapping` or `settled`.
    pub fn status(&self) -> &'static str {
        if self.action.is_some() {
            return "action";
        }
        match (self.flapping, self.event) {
            (false, e) => e.as_str(),
            (true, Event::Firing) => "flapping",
            (true, Event::Resolved) => "settled",
        }
    }

    /// The dedupe key: the check's, or its flapping notice's (its own
    /// PagerDuty incident and Alertmanager alert).
    pub fn dedup_key(&self) -> String {
        let key = dedup_key(&self.instance, &self.check);
        if let Some(action) = &self.action {
            return format!("{key}/action/{action}");
        }
        if self.flapping {
            format!("{key}/flapping")
        } else {
            key
        }
    }
}

/// How far ahead of now an Alertmanager alert ends unless re-sent (the
/// agent re-sends firing alerts every [`crate::limits::ALERTMANAGER_RESEND`]).
pub const ALERTMANAGER_ENDS_AHEAD_MS: i64 = 5 * 60_000;

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The dedupe key of a check's alerts from this agent: the same for the
/// trigger and the resolve, and for every retry.
pub fn dedup_key(instance: &str, check: &str) -> String {
    format!("warden/{instance}/{check}")
}

fn headline(a: &Alert) -> String {
    let reminder = if a.reminder { "[REMINDER] " } else { "" };
    if a.action.is_some() {
        return format!("[ACTION] {}: {}", a.check, a.summary);
    }
    if a.flapping {
        return format!("[{}] {}: {}", a.status().to_uppercase(), a.check, a.summary);
    }
    match a.event {
        Event::Firing => format!(
            "{reminder}[{}] {}: {}",
            a.severity.as_str().to_uppercase(),
            a.check,
            a.summary
        ),
        Event::Resolved => format!("[RESOLVED] {}: {}", a.check, a.summary),
    }
}

/// Slack's mrkdwn needs `&`, `<` and `>` escaped.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A value inside a JSON string: escaped, without the quotes.
fn json_inner(s: &str) -> String {
    let quoted = serde_json::to_string(s).unwrap_or_default();
    quoted[1..quoted.len() - 1].to_string()
}

/// The body as sent: the webhook's template filled in, else the type's
/// JSON.
pub fn body_text(kind: &NotifierKind, a: &Alert) -> String {
    if let NotifierKind::Webhook {
        template: Some(t), ..
    } = kind
    {
        let labels: std::collections::BTreeMap<&str, &str> = a
            .labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let filled = warden_text::template::expand(t, true, |p| {
            let warden_text::template::Placeholder::Capture(name) = p else {
                return None;
            };
            let v = match name {
                "agent" => a.instance.clone(),
                "check" => a.check.clone(),
                "plugin" => a.plugin.clone(),
                "status" => a.status().to_string(),
                "severity" => a.severity.as_str().to_string(),
                "summary" => a.summary.clone(),
                "since" => rfc3339(a.since_ms),
                "run_id" => a.run_id.clone(),
                "findings" => a.findings.to_string(),
                "link" => a.link.clone(),
                "reminder" => a.reminder.to_string(),
                other => labels
                    .get(other.strip_prefix("labels.")?)
                    .copied()
                    .unwrap_or("")
                    .to_string(),
            };
            Some(json_inner(&v))
        });
        // Checked at load; a failure here is a bug, and the JSON still goes.
        if let Ok(body) = filled {
            return body;
        }
    }
    body(kind, a).to_string()
}

/// The body for `kind` (one per target: Alertmanager gets the same body
/// at every URL).
pub fn body(kind: &NotifierKind, a: &Alert) -> Value {
    let labels: serde_json::Map<String, Value> = a
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    match kind {
        NotifierKind::Webhook { .. } => {
            let mut body = json!({
            "agent": a.instance,
            "check": a.check,
            "plugin": a.plugin,
            "status": a.status(),
            "severity": a.severity.as_str(),
            "summary": a.summary,
            "since": rfc3339(a.since_ms),
            "labels": labels,
            "run_id": a.run_id,
            "findings": a.findings,
            "link": a.link,
            "reminder": a.reminder,
            "flapping": a.flapping,
            });
            // Only on an action's notice (`"status": "action"`).
            if let (Some(action), Some(o)) = (&a.action, body.as_object_mut()) {
                o.insert("action".into(), json!(action));
            }
            body
        }
        NotifierKind::Slack { .. } => {
            let text = headline(a);
            let mut context = format!(
                "agent {} · plugin {} · since {}",
                a.instance,
                a.plugin,
                rfc3339(a.since_ms)
            );
            if a.findings > 0 {
                context.push_str(&format!(" · {} findings", a.findings));
            }
            json!({
                "text": text,
                "blocks": [
                    {"type": "section", "text": {"type": "mrkdwn", "text": format!("*{}*\n{}", slack_escape(&headline_title(a)), slack_escape(&a.summary))}},
                    {"type": "context", "elements": [{"type": "mrkdwn", "text": slack_escape(&context)}]},
                    {"type": "actions", "elements": [{"type": "button", "text": {"type": "plain_text", "text": "Open in Warden"}, "url": a.link}]},
                ],
            })
        }
        NotifierKind::PagerDuty { .. } => {
            let action = match a.event {
                Event::Firing => "trigger",
                Event::Resolved => "resolve",
            };
            let severity = match a.severity {
                Status::Critical => "critical",
                Status::Warning => "warning",
                Status::Unknown => "error",
                Status::Ok => "info",
            };
            json!({
                "event_action": action,
                "dedup_key": a.dedup_key(),
                "payload": {
                    // PagerDuty's limit is 1,024 characters.
                    "summary": warden_text::truncate(&headline(a), 1020),
                    "source": a.instance,
                    "severity": severity,
                    "timestamp": rfc3339(a.now_ms),
                    "component": a.check,
                    "group": a.plugin,
                    "class": a.severity.as_str(),
                    "custom_details": {
                        "summary": a.summary,
                        "since": rfc3339(a.since_ms),
                        "labels": labels,
                        "run_id": a.run_id,
                        "findings": a.findings,
                    },
                },
                "links": [{"href": a.link, "text": "Warden"}],
                "client": "Warden",
            })
        }
        NotifierKind::Alertmanager { .. } => {
            let mut l = labels;
            // The check's own labels never override the identifying ones.
            let name = if a.flapping {
                "WardenCheckFlapping"
            } else {
                "WardenCheck"
            };
            l.insert("alertname".into(), json!(name));
            l.insert("check".into(), json!(a.check));
            l.insert("plugin".into(), json!(a.plugin));
            l.insert("severity".into(), json!(a.severity.as_str()));
            l.insert("instance".into(), json!(a.instance));
            let ends = match a.event {
                Event::Firing => a.now_ms + ALERTMANAGER_ENDS_AHEAD_MS,
                Event::Resolved => a.now_ms,
            };
            json!([{
                "labels": l,
                "annotations": {
                    "summary": a.summary,
                    "description": if a.flapping {
                        format!("{} ({}) on {} is flapping", a.check, a.plugin, a.instance)
                    } else {
                        format!("{} ({}) on {} is {} since {}", a.check, a.plugin, a.instance, a.severity.as_str(), rfc3339(a.since_ms))
                    },
                },
                "startsAt": rfc3339(a.since_ms),
                "endsAt": rfc3339(ends),
                "generatorURL": a.link,
            }])
        }
    }
}

fn headline_title(a: &Alert) -> String {
    match (a.flapping, a.event) {
        (true, Event::Firing) => return format!("{} is flapping", a.check),
        (true, Event::Resolved) => return format!("{} stopped flapping", a.check),
        _ => {}
    }
    match a.event {
        Event::Firing => format!("{} is {}", a.check, a.severity.as_str().to_uppercase()),
        Event::Resolved => format!("{} recovered (was {})", a.check, a.severity.as_str()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::secret::Secret;

    fn alert(event: Event) -> Alert {
        Alert {
            instance: "host-a".into(),
            check: "api".into(),
            plugin: "http-health".into(),
            event,
            severity: Status::Critical,
            summary: "HTTP 500 <script> & more".into(),
            since_ms: 1_800_000_000_000,
            labels: vec![
                ("team".into(), "payments".into()),
                ("check".into(), "spoof".into()),
            ],
            run_id: "r1".into(),
            findings: 0,
            link: "http://127.0.0.1:7878/v1/checks/api".into(),
            now_ms: 1_800_000_060_000,
            reminder: false,
            flapping: false,
            action: None,
        }
    }

    #[test]
    fn alertmanager_labels_cannot_be_spoofed_and_ends_follow_the_event() {
        let kind = NotifierKind::Alertmanager { urls: vec![] };
        let firing = body(&kind, &alert(Event::Firing));
        let a = &firing[0];
        assert_eq!(a["labels"]["check"], "api");
        assert_eq!(a["labels"]["team"], "payments");
        assert_eq!(a["startsAt"], "2027-01-15T08:00:00.000Z");
        assert_eq!(a["endsAt"], "2027-01-15T08:06:00.000Z");
        let resolved = body(&kind, &alert(Event::Resolved));
        assert_eq!(resolved[0]["endsAt"], "2027-01-15T08:01:00.000Z");
    }

    #[test]
    fn a_webhook_template_is_filled_with_escaped_values() {
        use crate::config::notifier::check_template;
        let kind = NotifierKind::Webhook {
            url: Secret::inline("http://x"),
            method: "POST".into(),
            headers: vec![],
            template: Some(r#"{"text": "{{check}} is {{severity}} for {{labels.team}}{{labels.none}}: {{summary}}"}"#.into()),
        };
        let sent = body_text(&kind, &alert(Event::Firing));
        let v: serde_json::Value = serde_json::from_str(&sent).expect("still JSON");
        assert_eq!(
            v["text"],
            "api is critical for payments: HTTP 500 <script> & more"
        );
        assert!(check_template("{{check}} {{labels.x}}").is_ok());
        // Every placeholder the config accepts is filled in.
        for name in crate::config::notifier::PLACEHOLDERS {
            let kind = NotifierKind::Webhook {
                url: Secret::inline("http://x"),
                method: "POST".into(),
                headers: vec![],
                template: Some(format!("<{{{{{name}}}}}>")),
            };
            assert!(
                body_text(&kind, &alert(Event::Firing)).starts_with('<'),
                "{name}"
            );
        }
        let e = check_template("{{chekc}}").unwrap_err();
        assert!(e.contains("{{chekc}}") && e.contains("{{check}}"), "{e}");
        assert!(
            check_template("${env:SECRET}").is_err(),
            "no environment in a template"
        );
    }

    #[test]
    fn slack_text_is_escaped_and_pagerduty_keys_are_stable() {
        let slack = body(
            &NotifierKind::Slack {
                url: Secret::inline("http://x"),
            },
            &alert(Event::Firing),
        );
        let section = slack["blocks"][0]["text"]["text"].as_str().unwrap();
        assert!(section.contains("&lt;script&gt; &amp; more"), "{section}");
        let pd = NotifierKind::PagerDuty {
            routing_key: Secret::inline("k"),
            url: String::new(),
        };
        let (t, r) = (
            body(&pd, &alert(Event::Firing)),
            body(&pd, &alert(Event::Resolved)),
        );
        assert_eq!(t["dedup_key"], r["dedup_key"]);
        assert_eq!(
            (t["event_action"].as_str(), r["event_action"].as_str()),
            (Some("trigger"), Some("resolve"))
        );
        assert!(
            t.get("routing_key").is_none(),
            "added by the sender, never stored"
        );
        // A flapping notice is its own incident.
        let flap = Alert {
            flapping: true,
            action: None,
            ..alert(Event::Firing)
        };
        let f = body(&pd, &flap);
        assert_eq!(f["dedup_key"], "warden/host-a/api/flapping");
        let am = body(&NotifierKind::Alertmanager { urls: vec![] }, &flap);
        assert_eq!(am[0]["labels"]["alertname"], "WardenCheckFlapping");
        let hook = body(
            &NotifierKind::Webhook {
                url: Secret::inline("http://x"),
                method: "POST".into(),
                headers: vec![],
                template: None,
            },
            &Alert {
                event: Event::Resolved,
                ..flap
            },
        );
        assert_eq!(hook["status"], "settled");
    }
}

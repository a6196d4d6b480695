//! Telling people: which notifications a run's hard transition makes
//! ([`Alerting::plan`]), queued in the store's outbox with the run, and
//! their delivery ([`deliver`]) to the `[[notifier]]`s a check routes to.
//!
//! An alert fires when a check's hard status turns warning, critical or
//! unknown (after `failure_threshold`, so `unknown` fires as its own
//! severity), fires again when that severity changes, and resolves on hard
//! recovery (unless the check sets `send_on_resolved = false`). Delivery is
//! at least once, with a dedupe key stable per agent and check; a target
//! that is down is retried with backoff and never holds up runs or other
//! notifiers. Bodies per notifier type are in [`payload`], the HTTP egress
//! in [`send`].

pub mod deliver;
pub mod payload;
pub mod send;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};

use tokio::sync::Notify;
use warden_runtime::{RunOutcome, Status};

use crate::config::notifier::{NotifierConfig, NotifierKind};
use crate::config::{CheckConfig, Config};
use crate::health::Transition;
use crate::store::outbox::Outgoing;
pub use deliver::{deliver, refresh};

/// Whether a check firing since `since_ms` and last notified at
/// `notified_ms` (none known: since it began) is due a reminder at
/// `now_ms`, reminding every `every`.
pub fn reminder_due(
    every: Option<std::time::Duration>,
    since_ms: i64,
    notified_ms: Option<i64>,
    now_ms: i64,
) -> bool {
    every.is_some_and(|every| {
        now_ms - notified_ms.unwrap_or(since_ms).max(since_ms) >= every.as_millis() as i64
    })
}
pub use payload::{Alert, Event};

/// The notifiers and routes of one configuration (swapped whole by a
/// reload).
pub struct Routing {
    /// By name.
    pub notifiers: BTreeMap<String, NotifierConfig>,
    /// Notifiers of checks that name none, when no route matches.
    pub default_notify: Vec<String>,
    /// Routes by severity and labels.
    pub routes: Vec<crate::config::alerting::Route>,
    /// This agent's name in every notification.
    pub instance: String,
    /// Where links point (`http://127.0.0.1:7878`).
    pub api_url: String,
}

impl Routing {
    /// From the config's `[alerting]` and `[[notifier]]`s.
    pub fn new(config: &Config) -> Routing {
        Routing {
            notifiers: config
                .notifiers
                .iter()
                .map(|n| (n.name.clone(), n.clone()))
                .collect(),
            default_notify: config.alerting.notify.clone(),
            routes: config.alerting.routes.clone(),
            instance: config.alerting.instance.clone(),
            api_url: config
                .alerting
                .api_url
                .clone()
                .unwrap_or_else(|| format!("http://{}", config.agent.listen)),
        }
    }
}

/// The routing in force and the delivery counters.
pub struct Alerting {
    routing: RwLock<Arc<Routing>>,
    /// Woken when notifications are queued.
    pub wake: Notify,
    /// Attempts by (notifier, result).
    counts: Mutex<BTreeMap<(String, &'static str), u64>>,
}

impl Alerting {
    /// From the config's `[alerting]` and `[[notifier]]`s.
    pub fn new(config: &Config) -> Alerting {
        Alerting {
            routing: RwLock::new(Arc::new(Routing::new(config))),
            wake: Notify::new(),
            counts: Mutex::new(BTreeMap::new()),
        }
    }

    /// The notifiers and routes in force.
    pub fn routing(&self) -> Arc<Routing> {
        self.routing
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Puts `config`'s notifiers and routes in force (a reload); queued
    /// notifications go to the notifier of their name in it.
    pub fn set(&self, config: &Config) {
        *self.routing.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(Routing::new(config));
    }

    /// The notifiers an alert of `severity` from `check` goes to: the
    /// check's own `notify`, else every matching route's (in file order,
    /// each once), else `[alerting] notify`.
    pub fn routes(&self, check: &CheckConfig, severity: Status) -> Vec<String> {
        if let Some(own) = &check.notify {
            return own.clone();
        }
        let routing = self.routing();
        let mut out: Vec<String> = Vec::new();
        for r in routing
            .routes
            .iter()
            .filter(|r| r.matches(severity, &check.labels))
        {
            for n in &r.notify {
                if !out.contains(n) {
                    out.push(n.clone());
                }
            }
        }
        if out.is_empty() {
            routing.default_notify.clone()
        } else {
            out
        }
    }

    /// The notifications `t` (a change of what receivers were told about
    /// `check`, after `outcome`) makes; `suppressed`: recorded, not sent.
    pub fn plan(
        &self,
        check: &CheckConfig,
        outcome: &RunOutcome,
        since_ms: i64,
        t: Transition,
        suppressed: Option<String>,
        now_ms: i64,
    ) -> Vec<Outgoing> {
        let (event, severity) = if t.to == Status::Ok {
            if !check.send_on_resolved {
                return Vec::new();
            }
            (Event::Resolved, t.from)
        } else {
            (Event::Firing, t.to)
        };
        let alert = self.alert(check, outcome, event, severity, since_ms, now_ms);
        // Alertmanager keys alerts by their labels, severity included: a
        // change of severity ends the alert of the old one.
        let ended = (event == Event::Firing && t.from != Status::Ok).then_some(t.from);
        self.outgoing(check, &alert, severity, ended, suppressed, true)
    }

    /// The notice that `check` began to flap (`started`) or settled, at
    /// `percent` state change. Routed as a warning.
    pub fn flap_notice(
        &self,
        check: &CheckConfig,
        outcome: &RunOutcome,
        started: bool,
        percent: f64,
        suppressed: Option<String>,
        now_ms: i64,
    ) -> Vec<Outgoing> {
        let alert = self.flap_alert(check, outcome, started, percent, now_ms);
        self.outgoing(check, &alert, Status::Warning, None, suppressed, true)
    }

    /// What a flapping notice says.
    pub fn flap_alert(
        &self,
        check: &CheckConfig,
        outcome: &RunOutcome,
        started: bool,
        percent: f64,
        now_ms: i64,
    ) -> Alert {
        let event = if started {
            Event::Firing
        } else {
            Event::Resolved
        };
        let mut alert = self.alert(check, outcome, event, Status::Warning, now_ms, now_ms);
        alert.flapping = true;
        alert.summary = format!(
            "{:.1}% state change over the last {} results; latest: {}",
            percent,
            crate::flapping::HISTORY,
            outcome.summary
        );
        alert
    }

    /// The notice of what `action` of `check` did or waits for
    /// (`summary`), after the check's `outcome`: to the check's webhook
    /// and Slack receivers at `severity` (not PagerDuty or Alertmanager,
    /// where it would open an incident or an alert of its own).
    pub fn action_notice(
        &self,
        check: &CheckConfig,
        outcome: &RunOutcome,
        action: &str,
        severity: Status,
        summary: String,
        now_ms: i64,
    ) -> Vec<Outgoing> {
        let alert = Alert {
            action: Some(action.to_string()),
            summary,
            ..self.alert(check, outcome, Event::Firing, severity, now_ms, now_ms)
        };
        let routing = self.routing();
        self.outgoing(check, &alert, severity, None, None, false)
            .into_iter()
            .filter(|o| {
                !matches!(
                    routing.notifiers.get(&o.notifier).map(|n| &n.kind),
                    Some(NotifierKind::PagerDuty { .. })
                )
            })
            .collect()
    }

    /// `alert` as one notification per notifier `check` routes to at
    /// `severity` (per URL for Alertmanager, or none there unless
    /// `alertmanager`), `ended` also ending that severity's alert in
    /// Alertmanager.
    fn outgoing(
        &self,
        check: &CheckConfig,
        alert: &Alert,
        severity: Status,
        ended: Option<Status>,
        suppressed: Option<String>,
        alertmanager: bool,
    ) -> Vec<Outgoing> {
        let mut out = Vec::new();
        let routing = self.routing();
        for name in &self.routes(check, severity) {
            let Some(n) = routing.notifiers.get(name) else {
                continue;
            };
            let (body, targets) = match &n.kind {
                NotifierKind::Alertmanager { .. } if !alertmanager => continue,
                NotifierKind::Alertmanager { urls } => {
                    let mut body = payload::body(&n.kind, alert);
                    if let Some(from) = ended {
                        let old = Alert {
                            event: Event::Resolved,
                            severity: from,
                            ..alert.clone()
                        };
                        if let (Some(list), serde_json::Value::Array(old)) =
                            (body.as_array_mut(), payload::body(&n.kind, &old))
                        {
                            list.extend(old);
                        }
                    }
                    (body.to_string(), urls.len())
                }
                _ => (payload::body_text(&n.kind, alert), 1),
            };
            for target in 0..targets {
                out.push(Outgoing {
                    notifier: name.clone(),
                    target,
                    check: check.name.clone(),
                    event: alert.status(),
                    severity: alert.severity.as_str().to_string(),
                    dedup_key: alert.dedup_key(),
                    body: body.clone(),
                    suppressed: suppressed.clone(),
                });
            }
        }
        out
    }

    /// What a notification says about `check` after `outcome`.
    pub fn alert(
        &self,
        check: &CheckConfig,
        outcome: &RunOutcome,
        event: Event,
        severity: Status,
        since_ms: i64,
        now_ms: i64,
    ) -> Alert {
        let routing = self.routing();
        Alert {
            instance: routing.instance.clone(),
            check: check.name.clone(),
            plugin: check.plugin.clone(),
            event,
            severity,
            summary: outcome.summary.clone(),
            since_ms,
            labels: check
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            run_id: outcome.run_id.clone(),
            findings: outcome.findings.len(),
            link: format!("{}/v1/checks/{}", routing.api_url, check.name),
            now_ms,
            reminder: false,
            flapping: false,
            action: None,
        }
    }

    /// Reminders of `check`'s firing alert: to every notifier it routes
    /// to but Alertmanager (re-sent every minute anyway, and which repeats
    /// by its own `repeat_interval`).
    pub fn reminders(
        &self,
        check: &CheckConfig,
        outcome: &RunOutcome,
        severity: Status,
        since_ms: i64,
        now_ms: i64,
    ) -> Vec<Outgoing> {
        let alert = Alert {
            reminder: true,
            ..self.alert(check, outcome, Event::Firing, severity, since_ms, now_ms)
        };
        self.outgoing(check, &alert, severity, None, None, false)
    }

    fn count(&self, notifier: &str, result: &'static str) {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        *c.entry((notifier.to_string(), result)).or_default() += 1;
    }

    /// Attempts by (notifier, result: `delivered`, `retry`, `failed`).
    pub fn counts(&self) -> Vec<((String, &'static str), u64)> {
        let c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        c.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn routes_go_by_the_checks_notify_then_severity_and_labels() {
        let config = Config::parse(
            "[alerting]\nnotify = [\"chat\"]\n\
             [[alerting.route]]\nseverity = [\"critical\"]\nlabels = { team = \"payments\" }\nnotify = [\"pager\"]\n\
             [[alerting.route]]\nlabels = { team = \"payments\" }\nnotify = [\"hook\", \"pager\"]\n\
             [[notifier]]\nname = \"chat\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:1/c\"\n\
             [[notifier]]\nname = \"pager\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:1/p\"\n\
             [[notifier]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:1/h\"\n\
             [[check]]\nname = \"pay\"\nplugin = \"hello\"\nlabels = { team = \"payments\" }\n\
             [[check]]\nname = \"web\"\nplugin = \"hello\"\nlabels = { team = \"web\" }\n\
             [[check]]\nname = \"own\"\nplugin = \"hello\"\nlabels = { team = \"payments\" }\nnotify = [\"hook\"]\n",
            "warden.toml",
            std::path::Path::new("/tmp"),
        )
        .unwrap();
        let alerting = Alerting::new(&config);
        let check = |n: &str| config.checks.iter().find(|c| c.name == n).unwrap();
        assert_eq!(
            alerting.routes(check("pay"), Status::Critical),
            ["pager", "hook"]
        );
        assert_eq!(
            alerting.routes(check("pay"), Status::Warning),
            ["hook", "pager"]
        );
        assert_eq!(alerting.routes(check("web"), Status::Critical), ["chat"]);
        assert_eq!(alerting.routes(check("own"), Status::Critical), ["hook"]);
    }

    #[test]
    fn reminders_follow_the_last_notification() {
        let every = Some(Duration::from_secs(600));
        let t0 = 1_800_000_000_000;
        assert!(
            !reminder_due(None, t0, None, t0 + 86_400_000),
            "off by default"
        );
        assert!(!reminder_due(every, t0, Some(t0), t0 + 599_999));
        assert!(reminder_due(every, t0, Some(t0), t0 + 600_000));
        // A reminder sent at +10 min: the next at +20 min.
        assert!(!reminder_due(every, t0, Some(t0 + 600_000), t0 + 1_100_000));
        assert!(reminder_due(every, t0, Some(t0 + 600_000), t0 + 1_200_000));
        // After a restart nothing is known but when the alert began.
        assert!(reminder_due(every, t0, None, t0 + 600_000));
    }
}

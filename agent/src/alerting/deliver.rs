//! The delivery loop: reads due notifications from the outbox, sends each
//! on its own task (at most [`limits::NOTIFY_IN_FLIGHT_PER_NOTIFIER`] per
//! notifier, so a target that is down holds only its own), and settles it:
//! delivered, retried with exponential backoff (1 s doubling to
//! [`limits::NOTIFY_MAX_BACKOFF`]), or given up after
//! [`limits::NOTIFY_MAX_ATTEMPTS`] attempts or a rejection (4xx, a refused
//! address). A check's notifications to one target go one at a time, in
//! order (the outbox hands out only the oldest pending one of each). Rows
//! still pending when the agent stops are sent after the next start.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use super::Alerting;
use super::send::{Sent, send};
use crate::config::notifier::NotifierKind;
use crate::limits;
use crate::store::outbox::{Settlement, StoredNotification};
use crate::store::{Store, now_ms};

/// Notifications being attempted now (ids, and how many per notifier),
/// and those whose result is committed, to take out of flight before the
/// next read of the outbox.
#[derive(Default)]
struct Flight {
    ids: HashSet<i64>,
    per_notifier: HashMap<String, usize>,
    settled: Vec<(i64, String)>,
}

/// Delivers until `shutdown`.
pub async fn deliver(alerting: Arc<Alerting>, store: Store, mut shutdown: watch::Receiver<bool>) {
    let flight: Arc<Mutex<Flight>> = Arc::default();
    loop {
        if *shutdown.borrow() {
            return;
        }
        // Out of flight only what is settled *before* this read: a row
        // read while its attempt is in flight may be stale (still
        // pending), and stays skipped for this whole pass.
        {
            let mut f = flight.lock().unwrap_or_else(|p| p.into_inner());
            for (id, notifier) in std::mem::take(&mut f.settled) {
                f.ids.remove(&id);
                if let Some(c) = f.per_notifier.get_mut(&notifier) {
                    *c = c.saturating_sub(1);
                }
            }
        }
        let due = match store.due_notifications(now_ms(), limits::NOTIFY_BATCH) {
            Ok(due) => due,
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "cannot read the notification outbox");
                Vec::new()
            }
        };
        for n in due {
            {
                let mut f = flight.lock().unwrap_or_else(|p| p.into_inner());
                let per = f.per_notifier.get(&n.notifier).copied().unwrap_or(0);
                if f.ids.contains(&n.id) || per >= limits::NOTIFY_IN_FLIGHT_PER_NOTIFIER {
                    continue;
                }
                f.ids.insert(n.id);
                *f.per_notifier.entry(n.notifier.clone()).or_default() += 1;
            }
            let (alerting, store, flight) = (alerting.clone(), store.clone(), flight.clone());
            tokio::spawn(async move {
                let (id, notifier) = (n.id, n.notifier.clone());
                let settlement = attempt(&alerting, &n).await;
                if let Err(e) = store.settle_notification(id, settlement).await {
                    tracing::error!(notifier = %notifier, error = %format!("{e:#}"), "cannot record a notification's result; it will be sent again");
                }
                flight
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .settled
                    .push((id, notifier));
                // A place for the next one of this notifier.
                alerting.wake.notify_one();
            });
        }
        tokio::select! {
            _ = tokio::time::sleep(limits::NOTIFY_POLL) => {}
            _ = alerting.wake.notified() => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// Re-sends each firing alert to the Alertmanager notifiers its check
/// routes to, so its `endsAt` stays ahead (Alertmanager resolves an alert
/// whose `endsAt` passes). Best effort, each send on its own task: the
/// next refresh follows within [`limits::ALERTMANAGER_RESEND`].
pub fn refresh(alerting: &Arc<Alerting>, firing: Vec<(Vec<String>, super::Alert)>) {
    for (routes, alert) in firing {
        for name in routes {
            let routing = alerting.routing();
            let Some(n) = routing.notifiers.get(&name) else {
                continue;
            };
            let NotifierKind::Alertmanager { urls } = &n.kind else {
                continue;
            };
            let body = super::payload::body(&n.kind, &alert).to_string();
            for base in urls {
                let (url, body, timeout, name) = (
                    format!("{base}/api/v2/alerts"),
                    body.clone(),
                    n.timeout,
                    name.clone(),
                );
                tokio::spawn(async move {
                    if let Sent::Retry(why) | Sent::Rejected(why) =
                        send("POST", &url, &[], body.into_bytes(), timeout).await
                    {
                        tracing::warn!(notifier = %name, error = %why, "cannot refresh a firing alert in Alertmanager");
                    }
                });
            }
        }
    }
}

/// The backoff after `attempts` failed attempts.
pub fn backoff(attempts: u32) -> Duration {
    (Duration::from_secs(1) * 2u32.saturating_pow(attempts.saturating_sub(1).min(20)))
        .min(limits::NOTIFY_MAX_BACKOFF)
}

/// One attempt at `n`.
async fn attempt(alerting: &Alerting, n: &StoredNotification) -> Settlement {
    let routing = alerting.routing();
    let Some(notifier) = routing.notifiers.get(&n.notifier) else {
        alerting.count(&n.notifier, "failed");
        return Settlement::Failed(format!(
            "no notifier named {:?} in the config any more",
            n.notifier
        ));
    };
    let body = n.body.clone().into_bytes();
    let sent = match &notifier.kind {
        NotifierKind::Webhook {
            url,
            method,
            headers,
            ..
        } => send(method, url.expose(), headers, body, notifier.timeout).await,
        NotifierKind::Slack { url } => {
            send("POST", url.expose(), &[], body, notifier.timeout).await
        }
        NotifierKind::PagerDuty { routing_key, url } => {
            // The key is added here, never stored with the body.
            let mut event: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            event["routing_key"] = routing_key.expose().into();
            send(
                "POST",
                url,
                &[],
                event.to_string().into_bytes(),
                notifier.timeout,
            )
            .await
        }
        NotifierKind::Alertmanager { urls } => match urls.get(n.target) {
            Some(base) => {
                let url = format!("{base}/api/v2/alerts");
                send("POST", &url, &[], body, notifier.timeout).await
            }
            None => Sent::Rejected(format!("the notifier has no URL #{} any more", n.target)),
        },
    };
    let attempts = n.attempts + 1;
    match sent {
        Sent::Delivered(_) => {
            alerting.count(&n.notifier, "delivered");
            Settlement::Delivered
        }
        Sent::Retry(why) if attempts < limits::NOTIFY_MAX_ATTEMPTS => {
            alerting.count(&n.notifier, "retry");
            tracing::warn!(notifier = %n.notifier, check = %n.check, attempt = attempts, error = %why, "notification not delivered; will retry");
            Settlement::RetryAt(now_ms() + backoff(attempts).as_millis() as i64, why)
        }
        Sent::Retry(why) | Sent::Rejected(why) => {
            alerting.count(&n.notifier, "failed");
            tracing::error!(notifier = %n.notifier, check = %n.check, attempt = attempts, error = %why, "notification given up");
            Settlement::Failed(why)
        }
    }
}

//! What the agent tells notifiers between transitions, from its live
//! view: which parent check silences a child (`depends_on`), the firing
//! alerts Alertmanager is reminded of every minute, and the reminders of
//! checks with `remind_every`.

use std::collections::HashMap;

use warden_runtime::Status;

use crate::agent::{Agent, Live};
use crate::alerting::{Alert, Event, reminder_due};
use crate::config::CheckConfig;
use crate::store::now_ms;

impl Agent {
    /// Why `check`'s notifications are suppressed now (a parent with a
    /// hard problem), if they are.
    pub(crate) fn suppressed_by(
        &self,
        live: &HashMap<String, Live>,
        check: &CheckConfig,
    ) -> Option<String> {
        check.depends_on.iter().find_map(|p| {
            let status = live.get(p)?.health.as_ref()?.status;
            (status != Status::Ok)
                .then(|| format!("suppressed: parent check {p:?} is {}", status.as_str()))
        })
    }

    /// Every check whose hard status is a problem, with its routes and
    /// its alert as of now (what Alertmanager is reminded of).
    pub fn firing_alerts(&self) -> Vec<(Vec<String>, Alert)> {
        let live = self.live();
        let now = now_ms();
        self.checks()
            .values()
            .filter_map(|c| {
                let l = live.get(&c.config.name)?;
                let (health, last) = (l.health.as_ref()?, l.last.as_ref()?);
                (health.status != Status::Ok).then(|| {
                    let alert = self.alerting.alert(
                        &c.config,
                        last,
                        Event::Firing,
                        health.status,
                        health.since_ms,
                        now,
                    );
                    (self.alerting.routes(&c.config, health.status), alert)
                })
            })
            .collect()
    }

    /// Queues the reminders due at `now` (checks firing for at least
    /// `remind_every` since they were last notified, not silenced by a
    /// parent); the count queued.
    pub fn queue_reminders(&self, now: i64) -> usize {
        let mut rows = Vec::new();
        {
            let mut live = self.live();
            for c in self.checks().values() {
                let quiet = self.suppressed_by(&live, &c.config).is_some();
                let Some(l) = live.get_mut(&c.config.name) else {
                    continue;
                };
                let (Some(health), Some(last)) = (l.health.as_ref(), l.last.as_ref()) else {
                    continue;
                };
                if quiet
                    || health.status == Status::Ok
                    || !reminder_due(c.config.remind_every, health.since_ms, l.notified_ms, now)
                {
                    continue;
                }
                rows.extend(self.alerting.reminders(
                    &c.config,
                    last,
                    health.status,
                    health.since_ms,
                    now,
                ));
                l.notified_ms = Some(now);
            }
        }
        let n = rows.len();
        if n > 0 {
            self.store.queue_notifications(rows);
            self.alerting.wake.notify_one();
        }
        n
    }
}

//! What the agent tells notifiers, from its live view of each check.
//!
//! Each check remembers what its receivers were last told (`Live::told`:
//! `ok`, or the severity of the alert firing) and the agent sends what
//! changes that: after a run ([`Agent::notices_after_run`]) and, every
//! [`limits::NOTICE_TICK`], for checks whose quiet has ended
//! ([`Agent::notice_tick`]). While a check is quiet ([`Quiet`]: a
//! maintenance window, a silence, a parent with a hard problem, or
//! flapping), its transitions are recorded as suppressed and `told` stays
//! as it was, so receivers keep what they were told, and when the quiet
//! ends a problem still there (or a recovery) is sent then. After a
//! restart `told` comes from the outbox. Also here: the firing alerts
//! Alertmanager is reminded of every minute, and the reminders of checks
//! with `remind_every`.

use std::collections::HashMap;

use warden_runtime::{RunOutcome, Status};

use crate::agent::Agent;
use crate::alerting::{Alert, Event, reminder_due};
use crate::config::CheckConfig;
use crate::flapping::Change;
use crate::health::{Health, Transition};
use crate::limits;
use crate::live::Live;
use crate::silences::Quiet;
use crate::store::outbox::Outgoing;

impl Agent {
    /// What holds `check`'s notifications at `now_ms` besides flapping: a
    /// maintenance window, a silence, or a parent with a hard problem.
    pub(crate) fn quiet(
        &self,
        live: &HashMap<String, Live>,
        check: &CheckConfig,
        now_ms: i64,
    ) -> Option<Quiet> {
        if self.silences.any()
            && let Some(q) = self.silences.holding(check, now_ms)
        {
            return Some(q);
        }
        check.depends_on.iter().find_map(|p| {
            let status = live.get(p)?.health.as_ref()?.status;
            (status != Status::Ok).then(|| Quiet::Parent {
                check: p.clone(),
                status,
            })
        })
    }

    /// The notifications a run of `check` makes, its `health` now decided
    /// (`transition`: the hard change, `flap`: the change of flapping);
    /// updates what the check's receivers were told. Returns the rows and
    /// what `told` was before (to put back if the run cannot be stored).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn notices_after_run(
        &self,
        live: &mut HashMap<String, Live>,
        check: &CheckConfig,
        outcome: &RunOutcome,
        health: &Health,
        transition: Option<Transition>,
        flap: Option<Change>,
        now_ms: i64,
    ) -> (Vec<Outgoing>, Status) {
        let quiet = self.quiet(live, check, now_ms);
        let reason = quiet.as_ref().map(|q| format!("suppressed: {q}"));
        let mut rows = Vec::new();
        if let Some(change) = flap {
            rows.extend(self.alerting.flap_notice(
                check,
                outcome,
                change == Change::Started,
                health.flap.percent(),
                reason.clone(),
                now_ms,
            ));
        }
        let l = live.entry(check.name.clone()).or_default();
        let told = l.told;
        if check.on_unknown.alert_status(health.status, told) != told {
            if quiet.is_some() || health.flap.flapping {
                // Recorded for the history, not sent; `told` stays.
                if let Some(t) = transition {
                    let why = reason.unwrap_or_else(|| format!("suppressed: {}", Quiet::Flapping));
                    rows.extend(self.alerting.plan(
                        check,
                        outcome,
                        health.since_ms,
                        t,
                        Some(why),
                        now_ms,
                    ));
                }
            } else {
                rows.extend(self.tell(l, check, outcome, health, now_ms));
            }
        }
        (rows, told)
    }

    /// Tells `check`'s receivers its hard status now (`told` → status).
    fn tell(
        &self,
        l: &mut Live,
        check: &CheckConfig,
        outcome: &RunOutcome,
        health: &Health,
        now_ms: i64,
    ) -> Vec<Outgoing> {
        let to = check.on_unknown.alert_status(health.status, l.told);
        let t = Transition { from: l.told, to };
        l.told = to;
        l.notified_ms = (to != Status::Ok).then_some(now_ms);
        self.alerting
            .plan(check, outcome, health.since_ms, t, None, now_ms)
    }

    /// Sends what quiet or flapping held back from checks no longer held
    /// at `now_ms`; the count of notifications queued.
    pub fn notice_tick(&self, now_ms: i64) -> usize {
        let mut rows = Vec::new();
        {
            let mut live = self.live();
            for c in self.checks().values() {
                let name = &c.config.name;
                let pending = live.get(name).is_some_and(|l| {
                    !l.recording
                        && l.last.is_some()
                        && l.health.as_ref().is_some_and(|h| {
                            c.config.on_unknown.alert_status(h.status, l.told) != l.told
                                && !h.flap.flapping
                        })
                });
                if !pending || self.quiet(&live, &c.config, now_ms).is_some() {
                    continue;
                }
                let Some(l) = live.get_mut(name) else {
                    continue;
                };
                let (Some(health), Some(last)) = (l.health.clone(), l.last.clone()) else {
                    continue;
                };
                rows.extend(self.tell(l, &c.config, &last, &health, now_ms));
            }
        }
        self.queue(rows)
    }

    fn queue(&self, rows: Vec<Outgoing>) -> usize {
        let n = rows.len();
        if n > 0 {
            self.store.queue_notifications(rows);
            self.alerting.wake.notify_one();
        }
        n
    }

    /// What Alertmanager is reminded of: every check's alert as its
    /// receivers were told it (a quiet check's as before the quiet), and
    /// the flapping notice of each check that flaps, with their routes.
    pub fn firing_alerts(&self) -> Vec<(Vec<String>, Alert)> {
        let live = self.live();
        let now = crate::store::now_ms();
        let mut out = Vec::new();
        for c in self.checks().values() {
            let Some(l) = live.get(&c.config.name) else {
                continue;
            };
            let (Some(health), Some(last)) = (l.health.as_ref(), l.last.as_ref()) else {
                continue;
            };
            if l.told != Status::Ok {
                let alert = self.alerting.alert(
                    &c.config,
                    last,
                    Event::Firing,
                    l.told,
                    health.since_ms,
                    now,
                );
                out.push((self.alerting.routes(&c.config, l.told), alert));
            }
            if health.flap.flapping && self.quiet(&live, &c.config, now).is_none() {
                let alert =
                    self.alerting
                        .flap_alert(&c.config, last, true, health.flap.percent(), now);
                out.push((self.alerting.routes(&c.config, Status::Warning), alert));
            }
        }
        out
    }

    /// Queues the reminders due at `now` (checks whose receivers were told
    /// of a problem at least `remind_every` ago, not quiet or flapping);
    /// the count queued.
    pub fn queue_reminders(&self, now: i64) -> usize {
        let mut rows = Vec::new();
        {
            let mut live = self.live();
            for c in self.checks().values() {
                let due = live.get(&c.config.name).is_some_and(|l| {
                    l.told != Status::Ok
                        && l.health.as_ref().is_some_and(|h| {
                            !h.flap.flapping
                                && reminder_due(
                                    c.config.remind_every,
                                    h.since_ms,
                                    l.notified_ms,
                                    now,
                                )
                        })
                });
                if !due || self.quiet(&live, &c.config, now).is_some() {
                    continue;
                }
                let Some(l) = live.get_mut(&c.config.name) else {
                    continue;
                };
                let (Some(health), Some(last)) = (l.health.as_ref(), l.last.as_ref()) else {
                    continue;
                };
                rows.extend(
                    self.alerting
                        .reminders(&c.config, last, l.told, health.since_ms, now),
                );
                l.notified_ms = Some(now);
            }
        }
        self.queue(rows)
    }
}

/// How often the notice loop reminds Alertmanager, in ticks.
pub(crate) const TICKS_PER_RESEND: u32 =
    (limits::ALERTMANAGER_RESEND.as_millis() / limits::NOTICE_TICK.as_millis()) as u32;

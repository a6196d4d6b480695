//! The scheduler's decisions, separate from time and I/O.
//!
//! [`SchedulerCore`] is a pure state machine over explicit times (ms since
//! the epoch): [`SchedulerCore::poll`] returns the runs due at `now`,
//! [`SchedulerCore::finished`] reports a run's end, and
//! [`SchedulerCore::next_wakeup`] says when to poll next. The agent's
//! driver feeds it the real clock; tests feed it any clock they like.
//!
//! Rules:
//! - each due time is dispatched at most once (due times are strictly
//!   increasing per check and a dispatched due time is remembered);
//! - a check never overlaps itself: a due time that arrives while the
//!   check is still running (or retrying) is skipped and counted;
//! - after downtime (or a stall) a missed check runs once, then the
//!   schedule continues from now: no catch-up storm;
//! - an `unknown` result is retried with exponential backoff (1 s, 2 s,
//!   4 s ... capped at 60 s) up to the check's `retries`; other results are
//!   never retried;
//! - a manual run does not move the schedule;
//! - runs due at the same instant are dispatched in the order their
//!   checks were added (the config's order).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::Duration;

use chrono::{TimeZone, Utc};

use crate::schedule::Schedule;
use warden_runtime::Status;

use crate::limits;

/// What the scheduler needs to know about a check.
#[derive(Debug, Clone)]
pub struct SlotSpec {
    /// Check name.
    pub name: String,
    /// When it is due.
    pub schedule: Schedule,
    /// Its splay offset.
    pub offset: Duration,
    /// Retries after `unknown`.
    pub retries: u32,
    /// Disabled checks are never dispatched by the schedule.
    pub enabled: bool,
    /// Due at once when added (the agent's start, a reload), then on the
    /// schedule.
    pub run_on_start: bool,
}

/// A run to start now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dispatch {
    /// Check name.
    pub check: String,
    /// The due time it serves (for manual runs: when it was asked for).
    pub due_ms: i64,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// Started from the API.
    pub manual: bool,
}

/// Why a manual run cannot start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManualError {
    /// No such check.
    NotFound,
    /// The check is running; it never overlaps itself.
    AlreadyRunning,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Due,
    Retry,
}

#[derive(Debug)]
struct Slot {
    spec: SlotSpec,
    next_due: Option<i64>,
    running: bool,
    retry: Option<(i64, u32, i64)>,
    skipped: u64,
}

/// Scheduler state of every check.
#[derive(Debug, Default)]
pub struct SchedulerCore {
    /// In the order added (the config's): runs due at the same instant
    /// are dispatched in that order.
    slots: Vec<Slot>,
    by_name: HashMap<String, usize>,
    /// (time, kind, slot): what is due next.
    heap: BinaryHeap<Reverse<(i64, Kind, usize)>>,
}

/// Backoff before retry `attempt + 1`.
pub fn backoff(attempt: u32) -> Duration {
    let doublings = attempt.saturating_sub(1).min(16);
    (limits::RETRY_BACKOFF * (1u32 << doublings)).min(limits::MAX_RETRY_BACKOFF)
}

fn next_after(spec: &SlotSpec, after_ms: i64) -> Option<i64> {
    let after = Utc.timestamp_millis_opt(after_ms).single()?;
    spec.schedule
        .next_after(after, spec.offset)
        .map(|t| t.timestamp_millis())
}

/// Per-check counters for the API and `/metrics`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SlotInfo {
    /// Next due time.
    pub next_due_ms: Option<i64>,
    /// Running (or retrying) now.
    pub running: bool,
    /// Due times skipped because the check was still running.
    pub skipped: u64,
}

impl SchedulerCore {
    /// An empty scheduler.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a check. `last_due_ms` is the last due time dispatched before a
    /// restart: if a due time was missed since, the check runs once now.
    pub fn add(&mut self, spec: SlotSpec, last_due_ms: Option<i64>, now_ms: i64) {
        let first = match last_due_ms.and_then(|d| next_after(&spec, d)) {
            Some(missed) if missed <= now_ms => Some(missed),
            _ if spec.run_on_start => Some(now_ms),
            _ => next_after(&spec, now_ms),
        };
        let slot = Slot {
            spec,
            next_due: first,
            running: false,
            retry: None,
            skipped: 0,
        };
        // Added again: the new spec replaces the old in its place (the old
        // one's heap entries no longer match its times and are dropped).
        let i = match self.by_name.get(&slot.spec.name) {
            Some(&i) => {
                self.slots[i] = slot;
                i
            }
            None => {
                self.by_name
                    .insert(slot.spec.name.clone(), self.slots.len());
                self.slots.push(slot);
                self.slots.len() - 1
            }
        };
        if let Some(t) = first {
            self.heap.push(Reverse((t, Kind::Due, i)));
        }
    }

    /// Replaces the spec of a check already added (a reload): a run in
    /// flight, a retry pending and the counters stay; the next due time
    /// is recomputed only when the schedule or offset changed.
    pub fn update(&mut self, spec: SlotSpec, now_ms: i64) {
        let Some(&i) = self.by_name.get(&spec.name) else {
            return self.add(spec, None, now_ms);
        };
        let slot = &mut self.slots[i];
        let moved = slot.spec.schedule.to_string() != spec.schedule.to_string()
            || slot.spec.offset != spec.offset;
        slot.spec = spec;
        if moved {
            slot.next_due = next_after(&slot.spec, now_ms);
            if let Some(t) = slot.next_due {
                self.heap.push(Reverse((t, Kind::Due, i)));
            }
        }
    }

    /// Takes a check out (a reload): it is never dispatched again; a run
    /// in flight finishes. Its place in `slots` stays (a dead slot), so
    /// indices in the heap stay valid.
    pub fn remove(&mut self, name: &str) {
        if let Some(i) = self.by_name.remove(name) {
            let slot = &mut self.slots[i];
            slot.next_due = None;
            slot.retry = None;
            slot.spec.enabled = false;
        }
    }

    /// The runs to start at `now_ms`.
    pub fn poll(&mut self, now_ms: i64) -> Vec<Dispatch> {
        let mut out = Vec::new();
        while let Some(Reverse((t, _, _))) = self.heap.peek() {
            if *t > now_ms {
                break;
            }
            let Some(Reverse((t, kind, i))) = self.heap.pop() else {
                break;
            };
            let slot = &mut self.slots[i];
            match kind {
                Kind::Due => {
                    if slot.next_due != Some(t) {
                        continue;
                    }
                    slot.next_due = next_after(&slot.spec, t.max(now_ms));
                    if let Some(n) = slot.next_due {
                        self.heap.push(Reverse((n, Kind::Due, i)));
                    }
                    if !slot.spec.enabled {
                        continue;
                    }
                    if slot.running {
                        slot.skipped += 1;
                        tracing::debug!(check = %slot.spec.name, "still running at its next due time; skipped");
                        continue;
                    }
                    slot.running = true;
                    out.push(Dispatch {
                        check: slot.spec.name.clone(),
                        due_ms: t,
                        attempt: 1,
                        manual: false,
                    });
                }
                Kind::Retry => {
                    let Some((at, attempt, due)) = slot.retry else {
                        continue;
                    };
                    if at != t {
                        continue;
                    }
                    slot.retry = None;
                    out.push(Dispatch {
                        check: slot.spec.name.clone(),
                        due_ms: due,
                        attempt,
                        manual: false,
                    });
                }
            }
        }
        out
    }

    /// Reports the end of a run; schedules a retry for `unknown` when the
    /// check has retries left. True if that retry is due before the time
    /// the driver sleeps to (so it must look again).
    #[must_use]
    pub fn finished(&mut self, d: &Dispatch, status: Status, now_ms: i64) -> bool {
        let Some(&i) = self.by_name.get(&d.check) else {
            return false;
        };
        let next = self.next_wakeup();
        let slot = &mut self.slots[i];
        if !d.manual && status == Status::Unknown && d.attempt <= slot.spec.retries {
            let at = now_ms + backoff(d.attempt).as_millis() as i64;
            slot.retry = Some((at, d.attempt + 1, d.due_ms));
            self.heap.push(Reverse((at, Kind::Retry, i)));
            return next.is_none_or(|next| at < next);
        }
        slot.running = false;
        false
    }

    /// Starts a manual run now unless the check is running.
    pub fn manual(&mut self, check: &str, now_ms: i64) -> Result<Dispatch, ManualError> {
        let i = *self.by_name.get(check).ok_or(ManualError::NotFound)?;
        let slot = &mut self.slots[i];
        if slot.running {
            return Err(ManualError::AlreadyRunning);
        }
        slot.running = true;
        Ok(Dispatch {
            check: check.to_string(),
            due_ms: now_ms,
            attempt: 1,
            manual: true,
        })
    }

    /// When to poll next.
    pub fn next_wakeup(&self) -> Option<i64> {
        self.heap.peek().map(|Reverse((t, _, _))| *t)
    }

    /// Counters of one check.
    pub fn info(&self, check: &str) -> Option<SlotInfo> {
        let s = &self.slots[*self.by_name.get(check)?];
        Some(SlotInfo {
            next_due_ms: s.spec.enabled.then_some(s.next_due).flatten(),
            running: s.running,
            skipped: s.skipped,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_800_000_000_000; // a whole minute

    fn every(name: &str, secs: u64, retries: u32) -> SlotSpec {
        SlotSpec {
            name: name.into(),
            schedule: Schedule::Every(Duration::from_secs(secs)),
            offset: Duration::ZERO,
            retries,
            enabled: true,
            run_on_start: false,
        }
    }

    /// A controllable clock driving the core like the agent's driver does.
    struct Clock {
        now: i64,
        core: SchedulerCore,
        log: Vec<Dispatch>,
    }

    impl Clock {
        fn advance_to(&mut self, t: i64) -> Vec<Dispatch> {
            let mut got = Vec::new();
            while let Some(w) = self.core.next_wakeup().filter(|w| *w <= t) {
                self.now = w.max(self.now);
                got.extend(self.core.poll(self.now));
            }
            self.now = t;
            got.extend(self.core.poll(t));
            self.log.extend(got.clone());
            got
        }
    }

    #[test]
    fn a_reload_updates_and_removes_checks_without_losing_a_run_in_flight() {
        let mut core = SchedulerCore::new();
        core.add(every("a", 10, 0), None, T0);
        core.add(every("b", 10, 0), None, T0);
        let mut c = Clock {
            now: T0,
            core,
            log: vec![],
        };
        let got = c.advance_to(T0 + 10_000);
        assert_eq!(got.len(), 2);
        // `a` is running; its schedule changes to 5 s: still running (no
        // overlap), due on the new schedule.
        c.core.update(every("a", 5, 0), c.now);
        assert!(c.core.info("a").unwrap().running);
        assert_eq!(c.core.info("a").unwrap().next_due_ms, Some(T0 + 15_000));
        // `b` is removed while running: never dispatched again, its run
        // finishes quietly.
        c.core.remove("b");
        assert!(c.core.info("b").is_none());
        assert!(!c.core.finished(&got[1], Status::Ok, c.now));
        let _ = c.core.finished(&got[0], Status::Ok, c.now);
        let later = c.advance_to(T0 + 30_000);
        assert!(later.iter().all(|d| d.check == "a"), "{later:?}");
        assert_eq!(
            later.len(),
            1,
            "15 s due; 20 s, 25 s skipped while running: {later:?}"
        );
        // Unchanged schedule: the next due time stays.
        let before = c.core.info("a").unwrap().next_due_ms;
        c.core.update(every("a", 5, 2), c.now);
        assert_eq!(c.core.info("a").unwrap().next_due_ms, before);
        assert_eq!(c.core.manual("b", c.now), Err(ManualError::NotFound));
    }

    #[test]
    fn due_times_are_dispatched_once_each_in_order() {
        let mut core = SchedulerCore::new();
        core.add(every("a", 10, 0), None, T0);
        let mut c = Clock {
            now: T0,
            core,
            log: vec![],
        };
        for step in 1..=5 {
            let got = c.advance_to(T0 + step * 10_000);
            assert_eq!(got.len(), 1, "step {step}: {got:?}");
            assert_eq!(got[0].due_ms, T0 + step * 10_000);
            let _ = c.core.finished(&got[0], Status::Ok, c.now + 5);
            // Polling again at the same instant dispatches nothing.
            assert!(c.core.poll(c.now).is_empty());
        }
    }

    #[test]
    fn a_running_check_skips_and_counts_its_due_times() {
        let mut core = SchedulerCore::new();
        core.add(every("a", 1, 0), None, T0);
        let mut c = Clock {
            now: T0,
            core,
            log: vec![],
        };
        let first = c.advance_to(T0 + 1000);
        assert_eq!(first.len(), 1);
        // The run takes 3.5 s: the three due times meanwhile are skipped.
        assert!(c.advance_to(T0 + 4500).is_empty());
        assert_eq!(c.core.info("a").unwrap().skipped, 3);
        let _ = c.core.finished(&first[0], Status::Ok, T0 + 4500);
        let next = c.advance_to(T0 + 5000);
        assert_eq!(next.len(), 1);
        assert_eq!(next[0].due_ms, T0 + 5000);
    }

    #[test]
    fn a_stall_does_not_cause_a_catch_up_storm() {
        let mut core = SchedulerCore::new();
        core.add(every("a", 1, 0), None, T0);
        // The driver was stalled for a minute: one poll at the end.
        let got = core.poll(T0 + 60_000);
        assert_eq!(got.len(), 1);
        assert_eq!(core.next_wakeup(), Some(T0 + 61_000));
    }

    #[test]
    fn missed_due_time_after_downtime_runs_once() {
        let mut core = SchedulerCore::new();
        // Last dispatched at T0; the agent comes back ten minutes later.
        core.add(every("a", 60, 0), Some(T0), T0 + 600_000 + 5);
        let got = core.poll(T0 + 600_000 + 5);
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].due_ms, T0 + 60_000);
        let _ = core.finished(&got[0], Status::Ok, T0 + 600_010);
        assert!(core.poll(T0 + 600_010).is_empty());
        assert_eq!(core.next_wakeup(), Some(T0 + 660_000));
        // Without a missed due time it just waits for the next one.
        let mut core = SchedulerCore::new();
        core.add(every("b", 60, 0), Some(T0), T0 + 30_000);
        assert!(core.poll(T0 + 30_000).is_empty());
    }

    #[test]
    fn runs_due_together_go_in_config_order() {
        let mut core = SchedulerCore::new();
        for name in ["zeta", "alpha", "mid"] {
            core.add(every(name, 10, 0), None, T0);
        }
        let order: Vec<_> = core
            .poll(T0 + 10_000)
            .into_iter()
            .map(|d| d.check)
            .collect();
        assert_eq!(order, ["zeta", "alpha", "mid"]);
    }

    #[test]
    fn unknown_is_retried_with_backoff_up_to_the_limit() {
        let mut core = SchedulerCore::new();
        core.add(every("a", 3600, 2), None, T0);
        let mut c = Clock {
            now: T0,
            core,
            log: vec![],
        };
        let d1 = c.advance_to(T0 + 3_600_000).remove(0);
        // The retry is due long before the next scheduled run: the driver
        // must look again.
        assert!(c.core.finished(&d1, Status::Unknown, T0 + 3_600_100));
        assert!(c.advance_to(T0 + 3_601_000).is_empty());
        let d2 = c.advance_to(T0 + 3_601_100).remove(0);
        assert_eq!((d2.attempt, d2.due_ms), (2, d1.due_ms));
        let _ = c.core.finished(&d2, Status::Unknown, T0 + 3_601_200);
        let d3 = c.advance_to(T0 + 3_603_200).remove(0);
        assert_eq!(d3.attempt, 3);
        // Retries used up: nothing sooner to wake the driver for.
        assert!(!c.core.finished(&d3, Status::Unknown, T0 + 3_603_300));
        // Retries used up: the check is free again, nothing more until the next due time.
        assert!(!c.core.info("a").unwrap().running);
        assert!(c.advance_to(T0 + 7_199_000).is_empty());
        // Critical is never retried.
        let d = c.advance_to(T0 + 7_200_000).remove(0);
        let _ = c.core.finished(&d, Status::Critical, T0 + 7_200_100);
        assert!(!c.core.info("a").unwrap().running);
    }

    #[test]
    fn manual_runs_leave_the_schedule_alone_and_never_overlap() {
        let mut core = SchedulerCore::new();
        core.add(every("a", 60, 3), None, T0);
        let next = core.next_wakeup();
        let m = core.manual("a", T0 + 10).unwrap();
        assert!(m.manual);
        assert_eq!(core.manual("a", T0 + 11), Err(ManualError::AlreadyRunning));
        assert_eq!(core.manual("zzz", T0 + 11), Err(ManualError::NotFound));
        // A manual unknown is not retried.
        let _ = core.finished(&m, Status::Unknown, T0 + 20);
        assert!(!core.info("a").unwrap().running);
        assert_eq!(core.next_wakeup(), next);
    }

    #[test]
    fn thousand_checks_each_due_once_per_second() {
        let mut core = SchedulerCore::new();
        for i in 0..1000 {
            let name = format!("c{i}");
            let offset = crate::schedule::splay(&name, Duration::from_secs(1));
            core.add(
                SlotSpec {
                    offset,
                    ..every(&name, 1, 0)
                },
                None,
                T0,
            );
        }
        let mut c = Clock {
            now: T0,
            core,
            log: vec![],
        };
        for ms in (T0 + 1..=T0 + 10_000).step_by(7) {
            for d in c.advance_to(ms) {
                let _ = c.core.finished(&d, Status::Ok, ms);
            }
        }
        let mut seen = std::collections::HashSet::new();
        for d in &c.log {
            assert!(seen.insert((d.check.clone(), d.due_ms)), "duplicate {d:?}");
        }
        // 10 s of a 1 s schedule: 9 or 10 due times per check depending on its splay.
        for i in 0..1000 {
            let n = c.log.iter().filter(|d| d.check == format!("c{i}")).count();
            assert!((9..=10).contains(&n), "c{i}: {n}");
        }
    }

    #[test]
    fn run_on_start_is_due_at_once_then_on_the_schedule() {
        let mut core = SchedulerCore::new();
        core.add(
            SlotSpec {
                run_on_start: true,
                ..every("a", 60, 0)
            },
            None,
            T0 + 5,
        );
        let mut c = Clock {
            now: T0 + 5,
            core,
            log: vec![],
        };
        let got = c.advance_to(T0 + 5);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].due_ms, T0 + 5);
        let _ = c.core.finished(&got[0], Status::Ok, T0 + 6);
        assert_eq!(c.core.info("a").unwrap().next_due_ms, Some(T0 + 60_000));
    }

    #[test]
    fn disabled_checks_are_not_dispatched() {
        let mut core = SchedulerCore::new();
        core.add(
            SlotSpec {
                enabled: false,
                ..every("a", 1, 0)
            },
            None,
            T0,
        );
        assert!(core.poll(T0 + 5000).is_empty());
        assert!(
            core.manual("a", T0).is_ok(),
            "a disabled check can still be run by hand"
        );
    }
}

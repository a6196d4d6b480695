//! A check as the agent runs it ([`Check`]: its config with the schedule
//! and splay in force) and what the agent knows of it between runs
//! ([`Live`]: health, latest outcome, counts, what its receivers were
//! told). The agent keeps both; `views`, `reload` and `notices` read them.

use std::sync::Arc;
use std::time::Duration;

use warden_runtime::{RunOutcome, Status};

use crate::config::CheckConfig;
use crate::health::Health;
use crate::limits;
use crate::registry::Registry;
use crate::schedule::{self, Schedule};
use crate::scheduler::SlotSpec;

/// A check as the agent runs it.
#[derive(Debug, Clone)]
pub struct Check {
    /// The config.
    pub config: CheckConfig,
    /// The schedule in force (the config's, else the plugin's default).
    pub schedule: Schedule,
    /// Its splay offset.
    pub offset: Duration,
    /// The schedule as shown (computed once).
    pub schedule_text: String,
}

impl Check {
    /// `c` as it runs: its schedule (the config's, else its plugin's
    /// default, else [`limits::DEFAULT_INTERVAL`]) and splay offset.
    pub(crate) fn new(c: &CheckConfig, registry: &Registry) -> Check {
        let schedule = c
            .schedule
            .clone()
            .or_else(|| {
                registry
                    .get(&c.plugin)
                    .and_then(|p| p.info.default_schedule.clone())
                    .and_then(|s| Schedule::parse(&s).ok())
            })
            .unwrap_or(Schedule::Every(limits::DEFAULT_INTERVAL));
        let max_splay = c.splay.unwrap_or_else(|| schedule.default_splay());
        Check {
            config: c.clone(),
            schedule_text: schedule.to_string(),
            offset: schedule::splay(&c.name, max_splay),
            schedule,
        }
    }

    /// What the scheduler needs of it.
    pub(crate) fn slot(&self) -> SlotSpec {
        SlotSpec {
            name: self.config.name.clone(),
            schedule: self.schedule.clone(),
            offset: self.offset,
            retries: self.config.retries,
            enabled: self.config.enabled,
            run_on_start: self.config.run_on_start,
        }
    }
}

/// What the agent knows about a check between runs.
#[derive(Debug, Clone)]
pub(crate) struct Live {
    pub(crate) health: Option<Health>,
    pub(crate) last: Option<Arc<RunOutcome>>,
    pub(crate) runs_by_status: [u64; 4],
    /// What its receivers were last told: `Ok`, or the severity firing
    /// ([`crate::notices`]).
    pub(crate) told: Status,
    /// When the current alert was last sent (its firing or a reminder).
    pub(crate) notified_ms: Option<i64>,
    /// A run's notifications are decided and it is being stored: `told`
    /// is ahead of `health` until then.
    pub(crate) recording: bool,
}

impl Live {
    /// From the store: its health, run counts and what was last told.
    pub(crate) fn from_record(record: crate::store::CheckRecord, told: Option<Status>) -> Live {
        Live {
            health: record.health,
            last: record.latest.map(Arc::new),
            runs_by_status: record.runs_by_status,
            told: told.unwrap_or(Status::Ok),
            ..Live::default()
        }
    }
}

impl Default for Live {
    fn default() -> Self {
        Live {
            health: None,
            last: None,
            runs_by_status: [0; 4],
            told: Status::Ok,
            notified_ms: None,
            recording: false,
        }
    }
}

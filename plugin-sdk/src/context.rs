//! The context of one run: the check's typed config and the capabilities
//! the check grants.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::http::Http;
use crate::state::State;
use crate::tls::Tls;

/// Reads the environment variables the check allows.
pub trait Env {
    /// The variable's value, or `None` when unset or not granted.
    fn var(&self, name: &str) -> Option<String>;
}

impl Env for HashMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

/// Which part of its check's run a run performs ([`Context::part`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    /// All of it: the run is not split.
    Whole,
    /// One share of the work, `index` of `count` (e.g. the files whose
    /// path hashes to `index` modulo `count`). Its report goes only to the
    /// merge, so it may carry whatever the merge needs.
    Shard {
        /// Which share, from 0.
        index: u32,
        /// How many shares (at least 2).
        count: u32,
    },
    /// Combine the shards' reports (in index order) into the run's report.
    Merge(Vec<crate::Report>),
}

/// Says which part of the run this is, and shares a sharded run's work.
pub trait PartBackend: Send + Sync {
    /// The part.
    fn part(&self) -> Part;
    /// Whether this part takes the unit of work `key` (see
    /// [`Context::claim`]).
    fn claim(&self, key: &str) -> bool;
}

/// Claims units of a sharded run's work ([`Context::claimer`]).
#[derive(Clone)]
pub struct Claimer(Arc<dyn PartBackend>);

impl Claimer {
    /// See [`Context::claim`].
    pub fn claim(&self, key: &str) -> bool {
        self.0.claim(key)
    }
}

impl std::fmt::Debug for Claimer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Claimer")
    }
}

/// A run that is never split: [`Part::Whole`], every claim granted.
#[cfg(target_arch = "wasm32")]
pub(crate) struct Whole;

#[cfg(target_arch = "wasm32")]
impl PartBackend for Whole {
    fn part(&self) -> Part {
        Part::Whole
    }
    fn claim(&self, _: &str) -> bool {
        true
    }
}

/// What an action's run is told of itself ([`Context::action`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    /// The `[[action]]`'s name.
    pub name: String,
    /// The same for every attempt at this one firing of the action, also
    /// across restarts of the agent: send it as the `Idempotency-Key` of
    /// the request that changes something.
    pub idempotency_key: String,
    /// Change nothing; report what would be done.
    pub dry_run: bool,
    /// The check whose change triggered the action.
    pub trigger_check: String,
    /// That check's status then.
    pub trigger_status: crate::Status,
    /// That run's summary.
    pub trigger_summary: String,
}

/// Everything one run of a check gets.
pub struct Context<C> {
    /// Name of the check.
    pub check: String,
    /// The check's configuration.
    pub config: C,
    /// When this run was due.
    pub scheduled: SystemTime,
    /// 1 for the first attempt, 2 for the first retry, ...
    pub attempt: u32,
    /// When the agent stops the run.
    pub deadline: SystemTime,
    pub(crate) http: Http,
    pub(crate) state: State,
    pub(crate) env: Arc<dyn Env>,
    pub(crate) tls: Tls,
    pub(crate) read_dirs: Vec<PathBuf>,
    pub(crate) part: Arc<dyn PartBackend>,
    pub(crate) action: Option<Action>,
}

impl<C> Context<C> {
    /// The HTTP client (requests are limited to the check's `allow.hosts`).
    pub fn http(&self) -> &Http {
        &self.http
    }

    /// The check's persistent state.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// Certificate chains of granted https hosts.
    pub fn tls(&self) -> &Tls {
        &self.tls
    }

    /// An environment variable from the check's `allow.env`.
    pub fn env(&self, name: &str) -> Option<String> {
        self.env.var(name)
    }

    /// The directories the check grants (`allow.read_dirs`), read-only,
    /// at their host paths: `std::fs` works beneath them.
    pub fn read_dirs(&self) -> &[PathBuf] {
        &self.read_dirs
    }

    /// `template` with each `${env:NAME}` replaced by that granted
    /// variable (API keys in URLs, tokens in headers); the error names a
    /// variable that is not set or not granted.
    pub fn expand_env(&self, template: &str) -> Result<String, String> {
        crate::template::expand_env(template, |name| self.env(name))
    }

    /// Which part of the check's run this is. A plugin with
    /// [`crate::Plugin::SHARDED`] may be run in shards: up to the check's
    /// `shards` instances at once, each told its [`Part::Shard`], then one
    /// more told [`Part::Merge`] with their reports. Any other plugin is
    /// always told [`Part::Whole`].
    pub fn part(&self) -> Part {
        self.part.part()
    }

    /// Claims one unit of a sharded run's work (a file, an endpoint):
    /// true when this shard is the first to claim `key`. Shards that go
    /// through the same units in the same order, claiming each before
    /// doing it, share them out as they go; in a whole run every claim is
    /// true. Claim a unit once: a second claim of it is false.
    pub fn claim(&self, key: &str) -> bool {
        self.part.claim(key)
    }

    /// [`Context::claim`] as a value that outlives the borrow of the
    /// context (for code that keeps it beside other borrows).
    pub fn claimer(&self) -> Claimer {
        Claimer(self.part.clone())
    }

    /// The action this run performs when an `[[action]]` runs the
    /// plugin (a runbook's remedy), `None` for a check's run. A plugin
    /// that changes things honours [`Action::dry_run`] and sends
    /// [`Action::idempotency_key`] with its change.
    pub fn action(&self) -> Option<&Action> {
        self.action.as_ref()
    }

    /// Time left before the deadline (zero once it has passed).
    pub fn remaining(&self) -> Duration {
        self.deadline
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO)
    }
}

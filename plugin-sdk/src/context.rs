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

    /// Time left before the deadline (zero once it has passed).
    pub fn remaining(&self) -> Duration {
        self.deadline
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO)
    }
}

//! Per-check key/value state (`warden:plugin/host.state-*`), the
//! plugin's own memory between runs.
//!
//! A run sees its own writes immediately; they reach the
//! [`StateBackend`] in one commit when `run` returns, and are dropped if
//! the run traps, times out or breaks a limit, so a half-finished run
//! never leaves half-written state. Where the state persists is the
//! embedder's choice (the agent's SQLite store); without a backend it
//! lives for the run only.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;

use wasmtime::component::Linker;

use super::{Allow, Capability, GrantError, Sandbox, Setup};
use crate::limits;

/// One run's changes: key to new value, `None` deletes.
pub type StateChanges = Vec<(String, Option<String>)>;

/// A commit in progress.
pub type CommitFuture = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>;

/// How much plugin state a check may keep: bytes (keys and values) and
/// keys. Defaults in [`crate::limits`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateQuota {
    /// Bytes of keys and values together.
    pub bytes: u64,
    /// Keys.
    pub keys: u64,
}

impl Default for StateQuota {
    fn default() -> Self {
        StateQuota {
            bytes: limits::DEFAULT_STATE_BYTES,
            keys: limits::DEFAULT_STATE_KEYS,
        }
    }
}

/// What a check's state holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StateUsage {
    /// Bytes of keys and values together.
    pub bytes: u64,
    /// Keys.
    pub keys: u64,
}

impl StateQuota {
    /// Why `usage` is over the quota, if it is.
    pub fn refuse(&self, usage: StateUsage, whose: &str) -> Option<String> {
        if usage.bytes > self.bytes {
            return Some(format!(
                "state quota exceeded: {whose} would hold {} bytes, over the check's limit of {} bytes (state_bytes)",
                usage.bytes, self.bytes
            ));
        }
        if usage.keys > self.keys {
            return Some(format!(
                "state quota exceeded: {whose} would hold {} keys, over the check's limit of {} (state_keys)",
                usage.keys, self.keys
            ));
        }
        None
    }
}

/// Where plugin state persists, scoped by check name.
pub trait StateBackend: Send + Sync {
    /// One value of `check`'s state.
    fn get(&self, check: &str, key: &str) -> anyhow::Result<Option<String>>;
    /// Applies one run's changes atomically, unless the state would then
    /// be over `quota` (an error naming it, and nothing applied).
    fn commit(&self, check: &str, changes: StateChanges, quota: StateQuota) -> CommitFuture;
}

/// The state a run reads and writes.
pub struct PluginState {
    backend: Option<Arc<dyn StateBackend>>,
    check: String,
    overlay: BTreeMap<String, Option<String>>,
    quota: StateQuota,
    /// What the overlay's values hold (bounds this run's host memory).
    held: StateUsage,
}

impl PluginState {
    /// Reads a key, seeing this run's writes first.
    pub fn get(&self, key: &str) -> Option<String> {
        if let Some(v) = self.overlay.get(key) {
            return v.clone();
        }
        match self.backend.as_ref()?.get(&self.check, key) {
            Ok(v) => v,
            Err(e) => {
                tracing::error!(check = %self.check, error = %format!("{e:#}"), "state read failed");
                None
            }
        }
    }

    /// Writes a key within the limits.
    pub fn set(&mut self, key: String, value: String) -> Result<(), String> {
        if key.is_empty() || key.len() > limits::MAX_STATE_KEY_BYTES {
            return Err(format!(
                "state key must be 1..={} bytes, got {}",
                limits::MAX_STATE_KEY_BYTES,
                key.len()
            ));
        }
        if value.len() > limits::MAX_STATE_VALUE_BYTES {
            return Err(format!(
                "state value for {key:?} is {} bytes, over the {}-byte limit",
                value.len(),
                limits::MAX_STATE_VALUE_BYTES
            ));
        }
        let size =
            |k: &str, v: &Option<String>| v.as_ref().map_or(0, |v| (k.len() + v.len()) as u64);
        let before = self.overlay.get(&key).map_or(0, |old| size(&key, old));
        let after = (key.len() + value.len()) as u64;
        let held = StateUsage {
            bytes: self.held.bytes - before + after,
            keys: self.held.keys + u64::from(before == 0),
        };
        if let Some(why) = self.quota.refuse(held, "this run's writes") {
            return Err(why);
        }
        self.held = held;
        self.overlay.insert(key, Some(value));
        Ok(())
    }

    /// Deletes a key.
    pub fn delete(&mut self, key: String) {
        if let Some(Some(old)) = self.overlay.get(&key) {
            self.held.bytes -= (key.len() + old.len()) as u64;
            self.held.keys -= 1;
        }
        self.overlay.insert(key, None);
    }
}

/// The state capability. It grants nothing to configure: every check has
/// its own state, and no other.
pub struct State;

impl Capability for State {
    const KEYS: &'static [&'static str] = &[];
    type Grant = ();
    type Run = PluginState;

    fn grant(_: &Allow) -> Result<(), Vec<GrantError>> {
        Ok(())
    }

    fn show(_: &(), _: &mut serde_json::Map<String, serde_json::Value>) {}

    /// Linked with the log, as the WIT puts both in `warden:plugin/host`
    /// (see [`super::log`]).
    fn link(_: &mut Linker<Sandbox>) -> anyhow::Result<()> {
        Ok(())
    }

    fn prepare(_: &Arc<()>, setup: &mut Setup<'_>) -> anyhow::Result<PluginState> {
        Ok(PluginState {
            backend: setup
                .persistent
                .then(|| setup.shared.state.clone())
                .flatten(),
            check: setup.check.to_string(),
            overlay: BTreeMap::new(),
            quota: setup.state_quota,
            held: StateUsage::default(),
        })
    }

    async fn settle(run: PluginState, accepted: bool) -> Result<(), String> {
        let Some(backend) = run.backend.filter(|_| accepted && !run.overlay.is_empty()) else {
            return Ok(());
        };
        let changes = run.overlay.into_iter().collect();
        backend
            .commit(&run.check, changes, run.quota)
            .await
            .map_err(|e| format!("storing the check's state failed: {e:#}"))
    }
}

//! Per-check key/value state (`warden:plugin/host.state-*`).
//!
//! A run sees its own writes immediately; they reach the store in one
//! transaction when `run` returns, and are dropped if the run traps, times
//! out or breaks a limit, so a half-finished run never leaves half-written
//! state.

use std::collections::BTreeMap;

use crate::limits;
use crate::store::Store;

/// The state a run reads and writes.
pub struct StateSession {
    store: Option<Store>,
    check: String,
    overlay: BTreeMap<String, Option<String>>,
}

impl StateSession {
    /// State of `check`, backed by `store` (or memory only when `None`,
    /// as for `describe`).
    pub fn new(store: Option<Store>, check: &str) -> Self {
        StateSession {
            store,
            check: check.to_string(),
            overlay: BTreeMap::new(),
        }
    }

    /// Reads a key, seeing this run's writes first.
    pub fn get(&self, key: &str) -> Option<String> {
        if let Some(v) = self.overlay.get(key) {
            return v.clone();
        }
        let store = self.store.as_ref()?;
        match store.state_get(&self.check, key) {
            Ok(v) => v,
            Err(e) => {
                tracing::error!(check = %self.check, error = %e, "state read failed");
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
        self.overlay.insert(key, Some(value));
        Ok(())
    }

    /// Deletes a key.
    pub fn delete(&mut self, key: String) {
        self.overlay.insert(key, None);
    }

    /// Writes this run's changes to the store.
    pub fn commit(self) -> anyhow::Result<()> {
        match self.store {
            Some(store) => {
                let changes: Vec<_> = self.overlay.into_iter().collect();
                store.state_commit(&self.check, &changes)
            }
            None => Ok(()),
        }
    }
}

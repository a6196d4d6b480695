//! Typed key/value state, scoped to the check and kept by the agent across
//! runs and restarts. Values are stored as JSON.
//!
//! Writes made during a run are committed by the agent when the run returns
//! and discarded if it traps or times out.

use std::fmt;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Error;

/// Where state lives: the agent (component build) or memory (tests).
pub trait StateBackend {
    /// Reads a raw value.
    fn get(&self, key: &str) -> Option<String>;
    /// Writes a raw value; fails when it exceeds the agent's limits.
    fn set(&self, key: &str, value: &str) -> Result<(), String>;
    /// Removes a key.
    fn delete(&self, key: &str);
}

/// The check's state.
#[derive(Clone)]
pub struct State {
    backend: Arc<dyn StateBackend>,
}

impl fmt::Debug for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("State")
    }
}

impl State {
    /// State over a backend.
    pub fn new(backend: Arc<dyn StateBackend>) -> Self {
        State { backend }
    }

    /// Reads and decodes a value; `Ok(None)` when absent. A value that no
    /// longer decodes (the plugin changed its type) is an error naming the
    /// key.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, Error> {
        match self.backend.get(key) {
            None => Ok(None),
            Some(raw) => serde_json::from_str(&raw)
                .map(Some)
                .map_err(|e| Error::msg(format!("state key {key:?}: {e}"))),
        }
    }

    /// Encodes and writes a value.
    pub fn set<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<(), Error> {
        let raw = serde_json::to_string(value)
            .map_err(|e| Error::msg(format!("state key {key:?}: {e}")))?;
        self.backend
            .set(key, &raw)
            .map_err(|e| Error::msg(format!("state key {key:?}: {e}")))
    }

    /// Removes a key.
    pub fn delete(&self, key: &str) {
        self.backend.delete(key)
    }
}

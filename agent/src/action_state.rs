//! What the agent keeps about runbook actions in memory, between runs:
//! the API's pause, the `every` streaks, the checks being verified, the
//! latest skip per action and the counts `/metrics` shows. Running them
//! is [`crate::actions`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// What the agent keeps about actions between runs.
#[derive(Default)]
pub struct ActionState {
    paused: AtomicBool,
    /// Per action: results in a row among its statuses (`state = "every"`).
    pub(crate) streaks: Mutex<HashMap<String, u32>>,
    /// Checks running again to verify an action (their runs fire none).
    pub(crate) verifying: Mutex<HashSet<String>>,
    /// Per action: the reason of its latest skip (one row per reason).
    pub(crate) last_skip: Mutex<HashMap<String, String>>,
    /// Per (action, final state): how many firings ended so.
    pub(crate) counts: Mutex<BTreeMap<(String, &'static str), u64>>,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl ActionState {
    /// Whether `POST /v1/actions/pause` holds every action.
    pub fn paused(&self) -> bool {
        self.paused.load(Ordering::Relaxed)
    }

    /// Pauses (or resumes) every action.
    pub fn set_paused(&self, paused: bool) {
        self.paused.store(paused, Ordering::Relaxed);
    }

    /// Firings by (action, final state), for `/metrics`.
    pub fn counts(&self) -> Vec<((String, &'static str), u64)> {
        lock(&self.counts)
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    }

    pub(crate) fn count(&self, action: &str, state: &'static str) {
        *lock(&self.counts)
            .entry((action.to_string(), state))
            .or_default() += 1;
    }
}

//! What the agent measures about itself while it runs (how late scheduled
//! runs start; the API's connections and file-descriptor exhaustion), kept
//! for `/metrics` and `/readyz` to render.

use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};

/// Upper bounds (seconds) of the run-lateness histogram.
pub const LATENESS_BUCKETS: [f64; 10] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

/// Counts for the lateness histogram.
#[derive(Debug, Clone, Default)]
pub struct Histogram {
    /// Per bucket of [`LATENESS_BUCKETS`], cumulative at render time.
    pub buckets: [u64; LATENESS_BUCKETS.len()],
    /// Observations.
    pub count: u64,
    /// Sum of observations.
    pub sum: f64,
}

impl Histogram {
    fn observe(&mut self, v: f64) {
        self.count += 1;
        self.sum += v;
        if let Some(i) = LATENESS_BUCKETS.iter().position(|b| v <= *b) {
            self.buckets[i] += 1;
        }
    }
}

/// What the agent measures about itself.
#[derive(Debug, Default)]
pub struct Telemetry {
    lateness: Mutex<Histogram>,
    /// The API's connections.
    pub connections: Connections,
}

/// The API's connections, as the accept loop counts them.
#[derive(Debug, Default)]
pub struct Connections {
    /// Open now.
    pub open: AtomicUsize,
    /// Refused because [`crate::limits::MAX_API_CONNECTIONS`] were open.
    pub refused: AtomicU64,
    /// Failed accepts (any reason).
    pub accept_errors: AtomicU64,
    /// When the agent last ran out of file descriptors (ms since the
    /// epoch; 0: never).
    pub fd_exhausted_unix_ms: AtomicI64,
}

impl Connections {
    /// The agent ran out of file descriptors now.
    pub fn fd_exhausted(&self, now_ms: i64) {
        self.fd_exhausted_unix_ms.store(now_ms, Ordering::Relaxed);
    }

    /// Whether the agent ran out of file descriptors within `window_ms`.
    pub fn fd_exhausted_within(&self, now_ms: i64, window_ms: i64) -> bool {
        let at = self.fd_exhausted_unix_ms.load(Ordering::Relaxed);
        at != 0 && now_ms - at <= window_ms
    }
}

impl Telemetry {
    /// A scheduled run started `seconds` after its due time.
    pub fn observe_lateness(&self, seconds: f64) {
        self.lateness
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .observe(seconds);
    }

    pub(crate) fn lateness(&self) -> Histogram {
        self.lateness
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

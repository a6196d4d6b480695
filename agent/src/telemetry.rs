//! What the agent measures about itself while it runs (today: how late
//! scheduled runs start), kept for `/metrics` to render.

use std::sync::Mutex;

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

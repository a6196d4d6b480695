//! Flap detection, as Nagios does it: a check whose results keep changing
//! (a `/readyz` that fails every other probe and never turns hard) is
//! *flapping*; it notifies once that it flaps and stays quiet until it
//! settles.
//!
//! The last [`HISTORY`] results (every run's status, soft ones included)
//! give 20 possible changes. Each change between result `i - 1` and `i`
//! (`i` = 1 oldest … 20 newest) weighs `0.75 + (i - 1) × 0.5 / 19`, so
//! recent changes count more (0.75 for the oldest, 1.25 for the newest);
//! the *percent state change* is the sum of the weights of the changes
//! × 100 / 20. A check starts flapping when it reaches the high threshold
//! (default 20%) and stops when it falls below the low one (default 5%).
//! With fewer than 21 results, the missing older ones count as equal to
//! the oldest known (no change). These are Nagios' formula and defaults
//! (`flapping.c`, `high_service_flap_threshold`).

use serde::{Deserialize, Serialize};
use warden_runtime::Status;

/// Results kept for flap detection.
pub const HISTORY: usize = 21;
/// The weight of the oldest change.
const LOW_WEIGHT: f64 = 0.75;
/// The weight of the newest change.
const HIGH_WEIGHT: f64 = 1.25;

/// A check's flap thresholds, in percent state change.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// Below this, a flapping check has settled.
    pub low: f64,
    /// At or above this, a check flaps.
    pub high: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            low: 5.0,
            high: 20.0,
        }
    }
}

/// A change of flapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The check began to flap.
    Started,
    /// It settled.
    Stopped,
}

/// A check's recent results and whether it flaps.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Flap {
    /// The latest results, oldest first, one letter each (`o`, `w`, `c`,
    /// `u`).
    #[serde(default)]
    pub recent: String,
    /// Whether the check flaps now.
    #[serde(default)]
    pub flapping: bool,
}

fn letter(s: Status) -> char {
    s.as_str().chars().next().unwrap_or('u')
}

/// The weighted percent state change of `recent` (oldest first; only the
/// last [`HISTORY`] count).
pub fn percent(recent: &[u8]) -> f64 {
    let skip = recent.len().saturating_sub(HISTORY);
    let recent = &recent[skip..];
    // Right-aligned in the window: change `i` is between positions
    // `i - 1` and `i` of a full window.
    let pad = HISTORY - recent.len();
    let mut sum = 0.0;
    for (k, pair) in recent.windows(2).enumerate() {
        if pair[0] != pair[1] {
            let i = pad + k + 1;
            sum += LOW_WEIGHT + (i - 1) as f64 * (HIGH_WEIGHT - LOW_WEIGHT) / (HISTORY - 2) as f64;
        }
    }
    sum * 100.0 / (HISTORY - 1) as f64
}

impl Flap {
    /// The percent state change now.
    pub fn percent(&self) -> f64 {
        percent(self.recent.as_bytes())
    }

    /// Adds one result; the change of flapping it makes, if any.
    /// `thresholds` `None`: flap detection is off (never flapping).
    pub fn observe(&mut self, status: Status, thresholds: Option<Thresholds>) -> Option<Change> {
        self.recent.push(letter(status));
        if self.recent.len() > HISTORY {
            self.recent.remove(0);
        }
        let was = self.flapping;
        self.flapping = match thresholds {
            None => false,
            Some(t) => {
                let p = self.percent();
                if was { p >= t.low } else { p >= t.high }
            }
        };
        match (was, self.flapping) {
            (false, true) => Some(Change::Started),
            (true, false) => Some(Change::Stopped),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Status::*;

    fn feed(flap: &mut Flap, results: &[Status]) -> Vec<Change> {
        results
            .iter()
            .filter_map(|s| flap.observe(*s, Some(Thresholds::default())))
            .collect()
    }

    #[test]
    fn the_weights_run_from_three_quarters_to_five_quarters() {
        // One change, at the newest position: 1.25 / 20.
        let mut r = vec![b'o'; 20];
        r.push(b'c');
        assert!((percent(&r) - 6.25).abs() < 1e-9);
        // One change at the oldest position: 0.75 / 20.
        let mut r = vec![b'o'];
        r.extend(std::iter::repeat_n(b'c', 20));
        assert!((percent(&r) - 3.75).abs() < 1e-9);
        // Every result a change: the mean weight is 1, so 100%.
        let r: Vec<u8> = (0..21)
            .map(|i| if i % 2 == 0 { b'o' } else { b'c' })
            .collect();
        assert!((percent(&r) - 100.0).abs() < 1e-9);
        assert_eq!(percent(&[b'o'; 21]), 0.0);
        assert_eq!(percent(&[]), 0.0);
    }

    #[test]
    fn a_check_that_keeps_changing_flaps_once_and_settles_when_steady() {
        let mut flap = Flap::default();
        // ok, critical, ok, critical: 3 recent changes ≈ 18.6% — not yet.
        assert!(feed(&mut flap, &[Ok, Critical, Ok, Critical]).is_empty());
        assert_eq!(feed(&mut flap, &[Ok]), [Change::Started]);
        // Still changing: no new start.
        assert!(feed(&mut flap, &[Critical, Ok, Critical, Ok]).is_empty());
        assert!(flap.flapping);
        // Steady: the changes age out and it falls below 5%.
        let steady = vec![Ok; HISTORY];
        let changes = feed(&mut flap, &steady);
        assert_eq!(changes, [Change::Stopped]);
        assert!(!flap.flapping);
        assert_eq!(flap.recent.len(), HISTORY);
    }

    #[test]
    fn hysteresis_keeps_it_flapping_between_the_thresholds() {
        let mut flap = Flap::default();
        feed(&mut flap, &[Ok, Critical, Ok, Critical, Ok]);
        assert!(flap.flapping);
        // A few steady results: under 20% but over 5%: still flapping.
        feed(&mut flap, &[Ok; 10]);
        let p = flap.percent();
        assert!((5.0..20.0).contains(&p), "{p}");
        assert!(flap.flapping);
    }

    #[test]
    fn detection_off_never_flaps() {
        let mut flap = Flap::default();
        for i in 0..30 {
            let s = if i % 2 == 0 { Ok } else { Critical };
            assert_eq!(flap.observe(s, None), None);
        }
    }
}

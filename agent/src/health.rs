//! A check's health, following its thresholds, in the Nagios sense. (Not
//! to be confused with plugin state, the key/value store a plugin keeps
//! between runs.)
//!
//! A non-OK result is *soft* until `failure_threshold` consecutive non-OK
//! results make it *hard*; a hard problem recovers after
//! `success_threshold` consecutive OK results. The hard status is what the
//! API and `/metrics` show as the check's status; a change of it is a
//! [`Transition`], which is what notifications fire on. The agent decides
//! transitions here; the store only persists the result.

use serde::{Deserialize, Serialize};

use warden_runtime::Status;

/// Soft or hard, as Nagios has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StateType {
    /// The latest result differs from the confirmed status but has not
    /// repeated enough times yet.
    Soft,
    /// Confirmed by the thresholds.
    Hard,
}

/// Everything known about a check's health.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Health {
    /// The confirmed (hard) status.
    pub status: Status,
    /// Whether the latest result agrees with `status`.
    pub state_type: StateType,
    /// Status of the latest run.
    pub last_status: Status,
    /// When `status` last changed (ms since the epoch).
    pub since_ms: i64,
    /// Consecutive OK results.
    pub consecutive_ok: u32,
    /// Consecutive non-OK results.
    pub consecutive_fail: u32,
    /// Recent results and whether the check flaps ([`crate::flapping`]).
    #[serde(default)]
    pub flap: crate::flapping::Flap,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            status: Status::Ok,
            state_type: StateType::Hard,
            last_status: Status::Ok,
            since_ms: 0,
            consecutive_ok: 0,
            consecutive_fail: 0,
            flap: crate::flapping::Flap::default(),
        }
    }
}

/// A change of the hard status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Transition {
    /// Before.
    pub from: Status,
    /// After.
    pub to: Status,
}

impl Health {
    /// Applies one result.
    pub fn apply(
        &self,
        result: Status,
        now_ms: i64,
        failure_threshold: u32,
        success_threshold: u32,
    ) -> (Health, Option<Transition>) {
        let mut next = self.clone();
        next.last_status = result;
        let target = if result == Status::Ok {
            next.consecutive_ok += 1;
            next.consecutive_fail = 0;
            (next.consecutive_ok >= success_threshold || self.since_ms == 0).then_some(Status::Ok)
        } else {
            next.consecutive_fail += 1;
            next.consecutive_ok = 0;
            (next.consecutive_fail >= failure_threshold).then_some(result)
        };
        let mut transition = None;
        if let Some(to) = target
            && (to != self.status || self.since_ms == 0)
        {
            if self.since_ms != 0 {
                transition = Some(Transition {
                    from: self.status,
                    to,
                });
            }
            next.status = to;
            next.since_ms = now_ms;
        }
        next.state_type = if next.last_status == next.status {
            StateType::Hard
        } else {
            StateType::Soft
        };
        (next, transition)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(results: &[Status], fail: u32, ok: u32) -> (Health, Vec<Transition>) {
        let mut s = Health::default();
        let mut ts = Vec::new();
        for (i, r) in results.iter().enumerate() {
            let (n, t) = s.apply(*r, 1000 + i as i64, fail, ok);
            s = n;
            ts.extend(t);
        }
        (s, ts)
    }

    #[test]
    fn problems_turn_hard_after_the_failure_threshold() {
        use Status::*;
        let (s, ts) = run(&[Ok, Critical, Critical], 3, 1);
        assert_eq!(
            (s.status, s.state_type, s.last_status),
            (Ok, StateType::Soft, Critical)
        );
        assert!(ts.is_empty());
        let (s, ts) = run(&[Ok, Critical, Critical, Critical], 3, 1);
        assert_eq!((s.status, s.state_type), (Critical, StateType::Hard));
        assert_eq!(
            ts,
            vec![Transition {
                from: Ok,
                to: Critical
            }]
        );
    }

    #[test]
    fn recovery_needs_the_success_threshold() {
        use Status::*;
        let (s, ts) = run(&[Ok, Warning, Ok], 1, 2);
        assert_eq!((s.status, s.state_type), (Warning, StateType::Soft));
        assert_eq!(ts.len(), 1);
        let (s, ts) = run(&[Ok, Warning, Ok, Ok], 1, 2);
        assert_eq!((s.status, s.state_type), (Ok, StateType::Hard));
        assert_eq!(
            ts,
            vec![
                Transition {
                    from: Ok,
                    to: Warning
                },
                Transition {
                    from: Warning,
                    to: Ok
                }
            ]
        );
    }

    #[test]
    fn first_result_sets_the_state_without_a_transition() {
        let (s, ts) = run(&[Status::Critical], 1, 1);
        assert_eq!(s.status, Status::Critical);
        assert!(ts.is_empty());
        assert_eq!(s.since_ms, 1000);
    }
}

//! Findings are acknowledged, not forgotten: a finding keeps the status
//! its plugin gives it (secret-scan: a new secret is critical, every run
//! it is still there) until someone acknowledges its fingerprint
//! (`POST /v1/findings/ack`) or it disappears. From then on the agent
//! applies the acknowledgement to each run before its health is decided:
//! the finding is marked `acknowledged` (with who, when and why), a
//! `high` or `critical` one counts as `medium`, and a `critical` run
//! whose every high or critical finding is acknowledged is a `warning`.
//! Acknowledgements are kept (a secret that returns to the same place is
//! still acknowledged).

use std::collections::HashMap;
use std::sync::Mutex;

use warden_runtime::{RunOutcome, Severity, Status};

pub use crate::store::acks::Ack;

/// The acknowledgements in force, by (check or "" for any, fingerprint).
pub struct Acks {
    map: Mutex<HashMap<(String, String), Ack>>,
}

fn key(a: &Ack) -> (String, String) {
    (a.check.clone().unwrap_or_default(), a.fingerprint.clone())
}

impl Acks {
    /// From the store's.
    pub fn new(stored: Vec<Ack>) -> Acks {
        Acks {
            map: Mutex::new(stored.into_iter().map(|a| (key(&a), a)).collect()),
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Ack>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds stored acknowledgements.
    pub fn add(&self, acks: &[Ack]) {
        let mut map = self.map();
        for a in acks {
            map.insert(key(a), a.clone());
        }
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        self.map().len()
    }

    /// Applies the acknowledgements of `check`'s findings to `outcome`;
    /// how many of its findings are acknowledged.
    pub fn apply(&self, outcome: &mut RunOutcome) -> usize {
        let map = self.map();
        if map.is_empty() || outcome.findings.is_empty() {
            return 0;
        }
        let mut acked = 0;
        let mut open_serious = 0;
        for f in &mut outcome.findings {
            let ack = map
                .get(&(outcome.check.clone(), f.fingerprint.clone()))
                .or_else(|| map.get(&(String::new(), f.fingerprint.clone())));
            let serious = matches!(f.severity, Severity::High | Severity::Critical);
            match ack {
                Some(a) => {
                    acked += 1;
                    if serious {
                        f.severity = Severity::Medium;
                    }
                    f.attributes.push(("acknowledged".into(), "true".into()));
                    f.attributes
                        .push(("acknowledged_by".into(), a.author.clone()));
                    f.attributes
                        .push(("acknowledged_comment".into(), a.comment.clone()));
                }
                None if serious => open_serious += 1,
                None => {}
            }
        }
        if acked == 0 {
            return 0;
        }
        if outcome.status == Status::Critical && open_serious == 0 {
            outcome.status = Status::Warning;
        }
        outcome.summary = format!("{} ({acked} acknowledged)", outcome.summary);
        acked
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;
    use warden_runtime::Finding;

    fn outcome(fingerprints: &[&str]) -> RunOutcome {
        let mut o = RunOutcome::unknown("scan", "secret-scan", "x".into(), SystemTime::now(), 1);
        o.status = Status::Critical;
        o.summary = "2 secrets".into();
        o.findings = fingerprints
            .iter()
            .map(|fp| Finding {
                fingerprint: fp.to_string(),
                rule: "aws".into(),
                severity: Severity::High,
                message: "new secret".into(),
                location: None,
                attributes: vec![],
            })
            .collect();
        o
    }

    fn ack(check: Option<&str>, fp: &str) -> Ack {
        Ack {
            check: check.map(str::to_string),
            fingerprint: fp.into(),
            comment: "rotated".into(),
            author: "ops".into(),
            acked_unix_ms: 1,
        }
    }

    #[test]
    fn a_run_stays_critical_until_every_serious_finding_is_acknowledged() {
        let acks = Acks::new(vec![ack(Some("scan"), "a")]);
        let mut o = outcome(&["a", "b"]);
        assert_eq!(acks.apply(&mut o), 1);
        assert_eq!(o.status, Status::Critical, "b is still new");
        assert_eq!(o.findings[0].severity, Severity::Medium);
        assert_eq!(o.findings[1].severity, Severity::High);
        acks.add(&[ack(None, "b")]);
        let mut o = outcome(&["a", "b"]);
        assert_eq!(acks.apply(&mut o), 2);
        assert_eq!(o.status, Status::Warning);
        assert!(o.summary.ends_with("(2 acknowledged)"), "{}", o.summary);
        // Another check's acknowledgement does not count here.
        let acks = Acks::new(vec![ack(Some("other"), "a")]);
        let mut o = outcome(&["a"]);
        assert_eq!(acks.apply(&mut o), 0);
        assert_eq!(o.status, Status::Critical);
    }
}

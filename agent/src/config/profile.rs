//! Deployment profiles and what `production` refuses (and `staging`
//! warns about): no API token, listening beyond loopback without one, CORS
//! `*`, and plugins used by a check but not pinned.

use serde::{Deserialize, Serialize};

use super::Config;

/// Deployment profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// A developer's machine: anything goes.
    Local,
    /// Like production, but problems are warnings.
    Staging,
    /// Unsafe settings refuse to start.
    Production,
}

impl Profile {
    /// `local`, `staging` or `production`.
    pub fn parse(s: &str) -> Option<Profile> {
        match s {
            "local" => Some(Profile::Local),
            "staging" => Some(Profile::Staging),
            "production" => Some(Profile::Production),
            _ => None,
        }
    }
}

impl Config {
    /// Settings the production profile refuses (staging logs them).
    pub fn unsafe_settings(&self) -> Vec<String> {
        let mut reasons = Vec::new();
        if self.api.token.is_none() {
            reasons.push("no API token ([api] token_env or token_file)".to_string());
        }
        if !self.agent.listen.ip().is_loopback() && self.api.token.is_none() {
            reasons.push(format!(
                "listening on {} (beyond loopback) without an API token",
                self.agent.listen
            ));
        }
        if self.api.cors_origins.iter().any(|o| o == "*") {
            reasons.push("[api] cors_origins contains \"*\"".to_string());
        }
        let mut unpinned: Vec<&str> = self
            .checks
            .iter()
            .map(|c| c.plugin.as_str())
            .filter(|p| !self.pins.contains_key(*p))
            .collect();
        unpinned.sort();
        unpinned.dedup();
        for p in unpinned {
            reasons.push(format!(
                "plugin {p:?} is not pinned (add [[plugin]] name = {p:?}, sha256 = ...)"
            ));
        }
        reasons
    }
}

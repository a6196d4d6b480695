//! What the configuration in force is (its file and sha256, when it was
//! loaded) and how the latest reload of it went, for `/v1/status` and
//! `/metrics`. Reloading itself is [`crate::reload`]'s.

use serde::Serialize;

use super::Config;

/// How the configuration in force came to be, and how the latest reload
/// went (for `/v1/status` and `/metrics`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ReloadStatus {
    /// The file (or `<embedded defaults>`).
    pub source: String,
    /// sha256 of the text in force.
    pub sha256: String,
    /// When it was put in force.
    pub loaded_unix_ms: i64,
    /// Whether the latest attempt succeeded.
    pub last_ok: bool,
    /// When the latest attempt was.
    pub last_attempt_unix_ms: Option<i64>,
    /// Every problem of the latest failed attempt (file:line: ...).
    pub errors: Vec<String>,
    /// Settings changed in the file that keep their running value until
    /// a restart.
    pub restart_needed: Vec<String>,
    /// Successful reloads since start.
    pub reloads: u64,
    /// Failed reloads since start.
    pub failures: u64,
}

impl ReloadStatus {
    /// For the configuration the agent started with.
    pub fn new(config: &Config, now: i64) -> ReloadStatus {
        ReloadStatus {
            source: config.source.clone(),
            sha256: config.sha256.clone(),
            loaded_unix_ms: now,
            last_ok: true,
            last_attempt_unix_ms: None,
            errors: Vec::new(),
            restart_needed: Vec::new(),
            reloads: 0,
            failures: 0,
        }
    }
}

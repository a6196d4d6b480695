//! Deployment profiles and what `production` refuses (and `staging`
//! warns about): no API token, listening beyond loopback without one, CORS
//! `*`, plugin files used by a check but not pinned (standard plugins are
//! pinned by the binary), a token or notifier secret file every user may
//! read, egress to any host (`https://*`), a read grant of `/` or of the
//! state directory, and an `outputs_file` outside the state directory and
//! `[agent] outputs_dir`.

use serde::{Deserialize, Serialize};

use super::Config;

/// Deployment profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
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

/// `path` with symlinks resolved where it exists (else as given).
fn canonical(path: &std::path::Path) -> std::path::PathBuf {
    path.canonicalize().unwrap_or_else(|_| path.to_path_buf())
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
        for a in &self.actions {
            if a.mode == super::action::Mode::Auto && a.max_per_hour.is_none() {
                reasons.push(format!(
                    "action {:?} runs auto without max_per_hour (a flapping check would run it without end)",
                    a.name
                ));
            }
        }
        if self.api.cors_origins.iter().any(|o| o == "*") {
            reasons.push("[api] cors_origins contains \"*\"".to_string());
        }
        // Standard plugins are pinned by the binary that embeds them; a
        // file in plugin_dir (an override included) needs its own pin,
        // which the registry enforces when it loads files.
        let mut unpinned: Vec<&str> = self
            .checks
            .iter()
            .map(|c| c.plugin.as_str())
            .chain(self.actions.iter().map(|a| a.plugin.as_str()))
            .filter(|p| !self.pins.contains_key(*p) && crate::stdplugins::standard(p).is_none())
            .collect();
        unpinned.sort();
        unpinned.dedup();
        for p in unpinned {
            reasons.push(format!(
                "plugin {p:?} is not pinned (add [[plugin]] name = {p:?}, sha256 = ...)"
            ));
        }
        if self.api.token_world_readable {
            reasons.push(format!(
                "[api] token: {} is readable by every user (chmod 600 it)",
                self.api.token_source.as_deref().unwrap_or("the token file")
            ));
        }
        for n in &self.notifiers {
            for secret in n.kind.secrets() {
                if secret.world_readable {
                    reasons.push(format!(
                        "notifier {:?}: {} is readable by every user (chmod 600 it)",
                        n.name, secret.source
                    ));
                }
            }
        }
        let state_dir = canonical(&self.agent.state_dir);
        for c in &self.checks {
            let grants = c.grants.view();
            let list = |key: &str| -> Vec<String> {
                grants[key]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default()
            };
            for host in list("hosts") {
                let authority = host.split_once("://").map_or(host.as_str(), |(_, r)| r);
                if authority == "*" || authority.starts_with("*:") {
                    reasons.push(format!(
                        "check {:?}: allow.hosts {host:?} grants the whole internet (name the hosts, or `*.example.com`)",
                        c.name
                    ));
                }
            }
            for dir in list("read_dirs") {
                let d = canonical(std::path::Path::new(&dir));
                if d == std::path::Path::new("/") {
                    reasons.push(format!(
                        "check {:?}: allow.read_dirs grants \"/\", the whole file system",
                        c.name
                    ));
                } else if state_dir.starts_with(&d) {
                    reasons.push(format!(
                        "check {:?}: allow.read_dirs {dir:?} holds the state directory {} (every check's state and the store)",
                        c.name,
                        self.agent.state_dir.display()
                    ));
                }
            }
            if let Some(file) = &c.outputs_file {
                let parent = canonical(file.parent().unwrap_or(std::path::Path::new("/")));
                let allowed = parent.starts_with(&state_dir)
                    || self
                        .agent
                        .outputs_dir
                        .as_deref()
                        .is_some_and(|d| parent.starts_with(canonical(d)));
                if !allowed {
                    reasons.push(format!(
                        "check {:?}: outputs_file {} is outside the state directory and [agent] outputs_dir",
                        c.name,
                        file.display()
                    ));
                }
            }
        }
        reasons
    }
}

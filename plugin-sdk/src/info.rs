//! What a plugin says about itself in `describe`.

/// A host capability a plugin uses when its check grants it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability {
    /// Outgoing HTTP(S).
    Http,
    /// Read-only directories.
    Filesystem,
    /// Named environment variables.
    Environment,
    /// Persistent per-check key/value state.
    State,
}

/// The plugin's self-description. The config schema is derived from
/// [`crate::Plugin::Config`] by the SDK.
#[derive(Debug, Clone)]
pub struct PluginInfo {
    /// `[a-z0-9-]+`.
    pub name: String,
    /// Semantic version.
    pub version: String,
    /// One paragraph.
    pub description: String,
    /// Schedule used when the check names none.
    pub default_schedule: Option<String>,
    /// Capabilities used.
    pub capabilities: Vec<Capability>,
}

impl PluginInfo {
    /// Info with a name and version; use `env!("CARGO_PKG_VERSION")` for the
    /// version so it follows the crate.
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> Self {
        PluginInfo {
            name: name.into(),
            version: version.into(),
            description: String::new(),
            default_schedule: None,
            capabilities: Vec::new(),
        }
    }

    /// Sets the description.
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    /// Sets the default schedule (`@every 30s`, a cron expression...).
    pub fn default_schedule(mut self, schedule: impl Into<String>) -> Self {
        self.default_schedule = Some(schedule.into());
        self
    }

    /// Declares a capability.
    pub fn capability(mut self, capability: Capability) -> Self {
        if !self.capabilities.contains(&capability) {
            self.capabilities.push(capability);
        }
        self
    }
}

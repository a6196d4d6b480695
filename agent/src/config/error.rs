//! Configuration errors: typed, each naming the file, the line, the
//! section or check, and the field, and printed the way an operator finds
//! the spot:
//!
//! ```text
//! warden.toml:14: check "api": timeout: "10": missing unit (ms, s, m, h, d)
//! warden.toml:3: [agent] listen: "nowhere" is not an address like 127.0.0.1:7878
//! ```

use std::fmt;

/// Where in the configuration a problem is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// The file as a whole (unreadable, not TOML).
    File,
    /// `[agent]`.
    Agent,
    /// `[api]`.
    Api,
    /// A `[[plugin]]` pin, by name when it has one.
    Pin(Option<String>),
    /// A `[[check]]`: `check "name"`, or `check #3` without a name.
    Check(String),
    /// `[alerting]`.
    Alerting,
    /// `[status_page]`.
    StatusPage,
    /// A `[[notifier]]`: `notifier "name"`, or `notifier #2`.
    Notifier(String),
    /// A `[[maintenance]]`: `maintenance "name"`, or `maintenance #2`.
    Maintenance(String),
    /// An `[[action]]`: `action "name"`, or `action #2`.
    Action(String),
    /// An environment variable that overrides the file.
    Env(&'static str),
    /// A setting the production profile refuses.
    Production,
}

/// One problem in a configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// The file (or `<embedded defaults>`).
    pub file: String,
    /// 1-based line, when the problem has one.
    pub line: Option<usize>,
    /// Section or check.
    pub scope: Scope,
    /// The field (`timeout`, `allow.hosts[0]`), when one is at fault.
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Scope::Env(var) = &self.scope {
            return write!(f, "{var}: {}", self.message);
        }
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        let field = self.field.as_deref();
        match (&self.scope, field) {
            (Scope::File, _) => write!(f, ": ")?,
            (Scope::Production, _) => write!(f, ": production profile refuses to start: ")?,
            (Scope::Agent, Some(field)) => write!(f, ": [agent] {field}: ")?,
            (Scope::Agent, None) => write!(f, ": [agent]: ")?,
            (Scope::Api, Some(field)) => write!(f, ": [api] {field}: ")?,
            (Scope::Api, None) => write!(f, ": [api]: ")?,
            (Scope::StatusPage, Some(field)) => write!(f, ": [status_page] {field}: ")?,
            (Scope::StatusPage, None) => write!(f, ": [status_page]: ")?,
            (Scope::Pin(Some(name)), _) => write!(f, ": [[plugin]] {name:?}: ")?,
            (Scope::Pin(None), _) => write!(f, ": [[plugin]]: ")?,
            (
                Scope::Check(label)
                | Scope::Notifier(label)
                | Scope::Maintenance(label)
                | Scope::Action(label),
                Some(field),
            ) => write!(f, ": {label}: {field}: ")?,
            (
                Scope::Check(label)
                | Scope::Notifier(label)
                | Scope::Maintenance(label)
                | Scope::Action(label),
                None,
            ) => write!(f, ": {label}: ")?,
            (Scope::Alerting, Some(field)) => write!(f, ": [alerting] {field}: ")?,
            (Scope::Alerting, None) => write!(f, ": [alerting]: ")?,
            // Written without a file, above.
            (Scope::Env(_), _) => {}
        }
        f.write_str(&self.message)
    }
}

/// Every problem found in a configuration, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

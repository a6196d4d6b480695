//! Environment variables (`wasi:cli/environment`): only the names in the
//! check's `allow.env`, with the agent's current values. A listed name that
//! is unset is simply absent in the sandbox.

use wasmtime_wasi::WasiCtxBuilder;

/// A check's environment grants.
#[derive(Debug, Clone, Default)]
pub struct EnvGrants {
    names: Vec<String>,
}

impl EnvGrants {
    /// Checks the names (`[A-Za-z_][A-Za-z0-9_]*`).
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<EnvGrants, Vec<String>> {
        let mut names = Vec::new();
        let mut errors = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            let name = e.as_ref();
            let valid = name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if valid {
                names.push(name.to_string());
            } else {
                errors.push(format!("allow.env[{i}] {name:?}: not a variable name"));
            }
        }
        if errors.is_empty() {
            Ok(EnvGrants { names })
        } else {
            Err(errors)
        }
    }

    /// The granted names.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Sets each granted variable that is set in the agent's environment.
    pub fn apply(&self, builder: &mut WasiCtxBuilder) {
        for name in &self.names {
            if let Ok(value) = std::env::var(name) {
                builder.env(name, value);
            }
        }
    }
}

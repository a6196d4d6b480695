//! Environment variables (`wasi:cli/environment`): only the names in the
//! check's `allow.env`, with the agent's current values. A listed name that
//! is unset is simply absent in the sandbox.

use std::sync::Arc;

use wasmtime::component::Linker;

use super::{Allow, Capability, GrantError, Sandbox, Setup};

const KEY: &str = "env";

/// A check's environment grants.
#[derive(Debug, Clone, Default)]
pub struct EnvGrants {
    names: Vec<String>,
}

impl EnvGrants {
    /// Checks the names (`[A-Za-z_][A-Za-z0-9_]*`).
    pub fn parse(allow: &Allow) -> Result<EnvGrants, Vec<GrantError>> {
        let mut names = Vec::new();
        let mut errors = Vec::new();
        for (i, name) in allow.entries(KEY).iter().enumerate() {
            let valid = name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if valid {
                names.push(name.to_string());
            } else {
                errors.push(GrantError::at(
                    KEY,
                    i,
                    format!("{name:?}: not a variable name"),
                ));
            }
        }
        if errors.is_empty() {
            Ok(EnvGrants { names })
        } else {
            Err(errors)
        }
    }
}

/// The environment capability (`allow.env`, `wasi:cli/environment`,
/// linked with the rest of WASI by the runtime).
pub struct Env;

impl Capability for Env {
    const KEYS: &'static [&'static str] = &[KEY];
    type Grant = EnvGrants;
    type Run = ();

    fn grant(allow: &Allow) -> Result<EnvGrants, Vec<GrantError>> {
        EnvGrants::parse(allow)
    }

    fn show(grant: &EnvGrants, view: &mut serde_json::Map<String, serde_json::Value>) {
        view.insert(KEY.into(), grant.names.clone().into());
    }

    fn link(_: &mut Linker<Sandbox>) -> anyhow::Result<()> {
        Ok(())
    }

    /// Sets each granted variable that is set in the agent's environment.
    fn prepare(grant: &Arc<EnvGrants>, setup: &mut Setup<'_>) -> anyhow::Result<()> {
        for name in &grant.names {
            if let Ok(value) = std::env::var(name) {
                setup.wasi.env(name, value);
            }
        }
        Ok(())
    }
}

//! Host capabilities a plugin can import, one module each: [`log`] (host
//! log and stdio), [`state`] (per-check key/value), [`http`] (egress),
//! [`files`] (read-only preopens), [`env`] (named variables), [`tls`]
//! (certificate chains of granted https hosts, under the HTTP grants).
//!
//! A check's grants are parsed once into a [`Grants`] value that the
//! runtime consumes; there is no other way to widen what a plugin can
//! reach. Anything not granted is absent: no preopens, no variables, every
//! HTTP request refused, sockets denied (wasi:sockets is linked so that
//! standard-library imports resolve, but with no network and every address
//! refused).

pub mod env;
pub mod files;
pub mod http;
pub mod log;
pub mod state;
pub mod tls;

use std::sync::Arc;

/// Everything a check grants, checked once.
#[derive(Debug, Clone, Default)]
pub struct Grants {
    http: Arc<http::HttpGrants>,
    files: files::FileGrants,
    env: env::EnvGrants,
}

impl Grants {
    /// Grants nothing.
    pub fn none() -> Self {
        Self::default()
    }

    /// Parses the three grant lists; every problem is reported, each naming
    /// its field and index.
    pub fn parse<S: AsRef<str>>(
        hosts: &[S],
        read_dirs: &[S],
        env: &[S],
    ) -> Result<Grants, Vec<String>> {
        let mut errors = Vec::new();
        let http = http::HttpGrants::parse(hosts)
            .map_err(|e| errors.extend(e))
            .ok();
        let files = files::FileGrants::parse(read_dirs)
            .map_err(|e| errors.extend(e))
            .ok();
        let env = env::EnvGrants::parse(env)
            .map_err(|e| errors.extend(e))
            .ok();
        match (http, files, env) {
            (Some(http), Some(files), Some(env)) if errors.is_empty() => Ok(Grants {
                http: Arc::new(http),
                files,
                env,
            }),
            _ => Err(errors),
        }
    }

    /// HTTP grants.
    pub fn http(&self) -> &Arc<http::HttpGrants> {
        &self.http
    }

    /// Directory grants.
    pub fn files(&self) -> &files::FileGrants {
        &self.files
    }

    /// Environment grants.
    pub fn env(&self) -> &env::EnvGrants {
        &self.env
    }
}

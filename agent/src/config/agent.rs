//! `[agent]`: where the API listens, where plugins and state live, the
//! profile, concurrency, retention, shutdown grace, extra trust roots and
//! the kill switch of actions.
//! Defaults come from [`crate::limits`].

use std::net::SocketAddr;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::error::{ConfigError, Scope};
use super::profile::Profile;
use super::source::Source;
use crate::limits;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAgent {
    listen: Option<String>,
    plugin_dir: Option<PathBuf>,
    state_dir: Option<PathBuf>,
    profile: Option<String>,
    max_concurrent_runs: Option<usize>,
    keep_runs: Option<usize>,
    keep_days: Option<u64>,
    keep_rollup_days: Option<u64>,
    shutdown_grace: Option<String>,
    ca_file: Option<PathBuf>,
    outputs_dir: Option<PathBuf>,
    actions: Option<Actions>,
}

/// `[agent] actions`: the kill switch of every `[[action]]`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Actions {
    /// Actions fire and run as configured (default).
    #[default]
    On,
    /// Every action runs as a dry run: the plugin is told to change
    /// nothing and reports what it would do.
    DryRun,
    /// No action fires.
    Off,
}

/// `[agent]`.
#[derive(Debug, Clone)]
pub struct AgentSection {
    /// HTTP API address.
    pub listen: SocketAddr,
    /// Where operators drop `.wasm` files.
    pub plugin_dir: PathBuf,
    /// Store and compiled-code cache.
    pub state_dir: PathBuf,
    /// Deployment profile.
    pub profile: Profile,
    /// Global cap on runs in flight.
    pub max_concurrent_runs: usize,
    /// Runs kept per check.
    pub keep_runs: usize,
    /// Days of history kept.
    pub keep_days: u64,
    /// Days of hourly and daily rollups kept (uptime and history).
    pub keep_rollup_days: u64,
    /// How long runs in flight may finish after SIGTERM.
    pub shutdown_grace: Duration,
    /// Extra trust roots (PEM) for plugins' TLS connections.
    pub ca_file: Option<PathBuf>,
    /// Where checks' `outputs_file`s may be written in production
    /// (besides the state directory).
    pub outputs_dir: Option<PathBuf>,
    /// Whether `[[action]]`s fire, and for real.
    pub actions: Actions,
}

impl AgentSection {
    /// The defaults, with paths relative to the config's directory.
    fn defaults(src: &Source<'_>) -> AgentSection {
        AgentSection {
            listen: limits::DEFAULT_LISTEN,
            plugin_dir: src.resolve(limits::DEFAULT_PLUGIN_DIR.into()),
            state_dir: src.resolve(limits::DEFAULT_STATE_DIR.into()),
            profile: Profile::Local,
            max_concurrent_runs: limits::DEFAULT_MAX_CONCURRENT_RUNS,
            keep_runs: limits::DEFAULT_KEEP_RUNS,
            keep_days: limits::DEFAULT_KEEP_DAYS,
            keep_rollup_days: limits::DEFAULT_KEEP_ROLLUP_DAYS,
            shutdown_grace: limits::DEFAULT_SHUTDOWN_GRACE,
            ca_file: None,
            outputs_dir: None,
            actions: Actions::On,
        }
    }

    /// Parses `[agent]` (absent: the defaults), then `WARDEN_PROFILE`.
    pub(super) fn parse(
        src: &Source<'_>,
        table: Option<(toml::Table, Range<usize>)>,
        errors: &mut Vec<ConfigError>,
    ) -> AgentSection {
        let mut agent = AgentSection::defaults(src);
        if let Some((table, span)) = table {
            match RawAgent::deserialize(toml::Value::Table(table)) {
                Ok(raw) => agent.apply(raw, src, &span, errors),
                Err(e) => {
                    errors.push(src.error(src.line_at(span.start), Scope::Agent, None, e.message()))
                }
            }
        }
        if let Ok(p) = std::env::var("WARDEN_PROFILE") {
            match Profile::parse(&p) {
                Some(p) => agent.profile = p,
                None => errors.push(ConfigError {
                    file: src.file.to_string(),
                    line: None,
                    scope: Scope::Env("WARDEN_PROFILE"),
                    field: None,
                    message: format!("{p:?} is not local, staging or production"),
                }),
            }
        }
        agent
    }

    fn apply(
        &mut self,
        a: RawAgent,
        src: &Source<'_>,
        span: &Range<usize>,
        errors: &mut Vec<ConfigError>,
    ) {
        let mut err = |field: &str, msg: String| {
            errors.push(src.error(src.field_line(span, field), Scope::Agent, Some(field), msg))
        };
        if let Some(l) = a.listen {
            match l.parse() {
                Ok(addr) => self.listen = addr,
                Err(_) => err(
                    "listen",
                    format!("{l:?} is not an address like {}", limits::DEFAULT_LISTEN),
                ),
            }
        }
        if let Some(d) = a.plugin_dir {
            self.plugin_dir = src.resolve(d);
        }
        if let Some(d) = a.state_dir {
            self.state_dir = src.resolve(d);
        }
        if let Some(p) = a.profile {
            match Profile::parse(&p) {
                Some(p) => self.profile = p,
                None => err(
                    "profile",
                    format!("{p:?} is not local, staging or production"),
                ),
            }
        }
        if let Some(n) = a.max_concurrent_runs {
            if n == 0 || n > limits::MAX_CONCURRENT_RUNS {
                err(
                    "max_concurrent_runs",
                    format!("{n} is outside 1..={}", limits::MAX_CONCURRENT_RUNS),
                );
            } else {
                self.max_concurrent_runs = n;
            }
        }
        if let Some(n) = a.keep_runs {
            self.keep_runs = n.max(1);
        }
        if let Some(d) = a.keep_days {
            if d > limits::MAX_KEEP_DAYS {
                err(
                    "keep_days",
                    format!("{d} is over the maximum of {}", limits::MAX_KEEP_DAYS),
                );
            } else {
                self.keep_days = d.max(1);
            }
        }
        if let Some(d) = a.keep_rollup_days {
            if d > limits::MAX_KEEP_DAYS {
                err(
                    "keep_rollup_days",
                    format!("{d} is over the maximum of {}", limits::MAX_KEEP_DAYS),
                );
            } else {
                self.keep_rollup_days = d.max(1);
            }
        }
        if let Some(x) = a.actions {
            self.actions = x;
        }
        if let Some(d) = a.outputs_dir {
            self.outputs_dir = Some(src.resolve(d));
        }
        if let Some(f) = a.ca_file {
            let f = src.resolve(f);
            if !f.is_file() {
                err("ca_file", format!("{} is not a file", f.display()));
            }
            self.ca_file = Some(f);
        }
        if let Some(g) = a.shutdown_grace {
            match warden_text::units::parse_duration(&g) {
                Ok(d) if d.is_zero() => err("shutdown_grace", format!("{g:?}: must be positive")),
                Ok(d) if d > limits::MAX_SHUTDOWN_GRACE => err(
                    "shutdown_grace",
                    format!(
                        "{g:?} is over the maximum of {}",
                        warden_text::units::format_duration(limits::MAX_SHUTDOWN_GRACE)
                    ),
                ),
                Ok(d) => self.shutdown_grace = d,
                Err(e) => err("shutdown_grace", e),
            }
        }
    }
}

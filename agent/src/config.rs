//! `warden.toml`: parsing, validation and the profile rules.
//!
//! [`Config::load`] reads a file (or the embedded defaults), checks every
//! section and every check, and reports all problems at once, each naming
//! the file, the line, the check and the field:
//!
//! ```text
//! warden.toml:14: check "api": timeout: "10" missing unit (ms, s, m, h, d)
//! warden.toml:22: check "rpc": allow.hosts[0] "ftp://x": scheme must be http or https
//! ```
//!
//! The profile (`local`, `staging`, `production`, or `WARDEN_PROFILE`)
//! decides what is refused: `production` refuses to start without an API
//! token, with unpinned plugins, with CORS `*`, or listening beyond
//! loopback without a token, and lists every reason.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::caps::Grants;
use crate::limits;
use crate::schedule::Schedule;
use crate::units;

/// The configuration used when `warden run` finds no config file.
pub const DEFAULT_CONFIG: &str = include_str!("default.toml");
/// Name shown for the embedded defaults in messages.
pub const DEFAULT_CONFIG_NAME: &str = "<embedded defaults>";

/// Deployment profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
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
    fn parse(s: &str) -> Option<Profile> {
        match s {
            "local" => Some(Profile::Local),
            "staging" => Some(Profile::Staging),
            "production" => Some(Profile::Production),
            _ => None,
        }
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    agent: Option<Spanned<toml::Table>>,
    #[serde(default)]
    api: Option<Spanned<toml::Table>>,
    #[serde(default)]
    plugin: Vec<Spanned<toml::Table>>,
    #[serde(default)]
    check: Vec<Spanned<toml::Table>>,
}

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
    shutdown_grace: Option<String>,
    ca_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApi {
    token_env: Option<String>,
    token_file: Option<PathBuf>,
    #[serde(default)]
    cors_origins: Vec<String>,
    #[serde(default)]
    require_token_for_reads: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPin {
    name: String,
    sha256: String,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAllow {
    #[serde(default)]
    hosts: Vec<String>,
    #[serde(default)]
    read_dirs: Vec<String>,
    #[serde(default)]
    env: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCheck {
    name: String,
    plugin: String,
    schedule: Option<String>,
    timeout: Option<String>,
    memory: Option<String>,
    #[serde(default)]
    retries: u32,
    failure_threshold: Option<u32>,
    success_threshold: Option<u32>,
    #[serde(default)]
    config: toml::Table,
    #[serde(default)]
    allow: RawAllow,
    outputs_file: Option<PathBuf>,
    splay: Option<String>,
    #[serde(default)]
    enabled: Option<bool>,
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
    /// How long runs in flight may finish after SIGTERM.
    pub shutdown_grace: Duration,
    /// Extra trust roots (PEM) for plugins' TLS connections.
    pub ca_file: Option<PathBuf>,
}

/// `[api]`.
#[derive(Debug, Clone, Default)]
pub struct ApiSection {
    /// The bearer token, read from the env var or file.
    pub token: Option<String>,
    /// Where the token came from (for messages; never the token).
    pub token_source: Option<String>,
    /// Origins allowed by CORS.
    pub cors_origins: Vec<String>,
    /// Whether GETs need the token too.
    pub require_token_for_reads: bool,
}

/// One `[[check]]`.
#[derive(Debug, Clone)]
pub struct CheckConfig {
    /// Unique name.
    pub name: String,
    /// Plugin name (file stem in the plugin dir, or a standard plugin).
    pub plugin: String,
    /// When it runs.
    pub schedule: Schedule,
    /// Whether `schedule` was given (else the plugin's default applies).
    pub schedule_given: bool,
    /// Per-run budget.
    pub timeout: Duration,
    /// Memory limit in bytes.
    pub memory: u64,
    /// Retries after an `unknown` result.
    pub retries: u32,
    /// Consecutive non-OK results before the state turns hard.
    pub failure_threshold: u32,
    /// Consecutive OK results before a hard problem recovers.
    pub success_threshold: u32,
    /// The plugin's config as a JSON object (string).
    pub config_json: String,
    /// What the check may reach.
    pub grants: Grants,
    /// The raw grant lists, for the API.
    pub allow_hosts: Vec<String>,
    /// Granted directories, as written.
    pub allow_read_dirs: Vec<String>,
    /// Granted variable names.
    pub allow_env: Vec<String>,
    /// Where outputs are rendered.
    pub outputs_file: Option<PathBuf>,
    /// Maximum splay (None: the default for the schedule).
    pub splay: Option<Duration>,
    /// Disabled checks are loaded but never scheduled.
    pub enabled: bool,
    /// Line of the `[[check]]` header.
    pub line: usize,
}

/// A whole, validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// File it came from.
    pub source: String,
    /// `[agent]`.
    pub agent: AgentSection,
    /// `[api]`.
    pub api: ApiSection,
    /// Pins: plugin name → sha256.
    pub pins: BTreeMap<String, String>,
    /// Checks, in file order.
    pub checks: Vec<CheckConfig>,
}

/// Every problem found, already formatted with file, line, check and field.
#[derive(Debug, Clone)]
pub struct ConfigErrors(pub Vec<String>);

impl std::fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
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

/// 1-based line of byte offset `at`.
fn line_at(text: &str, at: usize) -> usize {
    text[..at.min(text.len())]
        .bytes()
        .filter(|b| *b == b'\n')
        .count()
        + 1
}

/// The line where `field` is assigned in the table whose header starts at
/// `span` (a table's span covers its header; its keys follow until the next
/// header), falling back to the header's line.
fn field_line(text: &str, span: &std::ops::Range<usize>, field: &str) -> usize {
    let start = span.start.min(text.len());
    let field = field.split('[').next().unwrap_or(field);
    let last = field.rsplit('.').next().unwrap_or(field);
    let mut offset = start;
    for (i, line) in text[start..].split_inclusive('\n').enumerate() {
        let t = line.trim_start();
        if i > 0 && t.starts_with('[') {
            break;
        }
        for key in [field, last] {
            if let Some(rest) = t.strip_prefix(key)
                && rest.trim_start().starts_with('=')
            {
                return line_at(text, offset);
            }
        }
        offset += line.len();
    }
    line_at(text, start)
}

/// An optional, parsed limit: the default when absent; the default and a
/// problem when it did not parse or is over `max`.
fn within<T: PartialOrd + Copy>(
    parsed: Option<Result<T, String>>,
    max: T,
    default: T,
    over: impl Fn(T) -> String,
) -> (T, Option<String>) {
    match parsed {
        None => (default, None),
        Some(Err(e)) => (default, Some(e)),
        Some(Ok(v)) if v > max => (default, Some(over(v))),
        Some(Ok(v)) => (v, None),
    }
}

impl Config {
    /// Loads `path`, or the embedded defaults when `path` is `None`.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigErrors> {
        match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|e| {
                    ConfigErrors(vec![format!("{}: cannot read: {e}", p.display())])
                })?;
                let base = p.parent().unwrap_or(Path::new("."));
                Self::parse(&text, &p.display().to_string(), base)
            }
            None => Self::parse(DEFAULT_CONFIG, DEFAULT_CONFIG_NAME, Path::new(".")),
        }
    }

    /// Parses and validates config text; relative paths resolve against
    /// `base` (the config file's directory).
    pub fn parse(text: &str, source: &str, base: &Path) -> Result<Config, ConfigErrors> {
        let raw: RawFile = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| line_at(text, s.start)).unwrap_or(0);
            ConfigErrors(vec![format!("{source}:{line}: {}", e.message())])
        })?;
        let mut errors = Vec::new();
        let at = |line: usize| format!("{source}:{line}");

        // [agent]
        let (agent_raw, agent_span) = match raw.agent {
            Some(t) => {
                let span = t.span();
                let table = t.into_inner();
                match RawAgent::deserialize(toml::Value::Table(table)) {
                    Ok(a) => (Some(a), span),
                    Err(e) => {
                        errors.push(format!(
                            "{}: [agent]: {}",
                            at(line_at(text, span.start)),
                            e.message()
                        ));
                        (None, span)
                    }
                }
            }
            None => (None, 0..0),
        };
        let resolve = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };
        let env_profile = std::env::var("WARDEN_PROFILE").ok();
        let mut agent = AgentSection {
            listen: SocketAddr::from(([127, 0, 0, 1], 7878)),
            plugin_dir: base.join("plugins"),
            state_dir: base.join(".warden"),
            profile: Profile::Local,
            max_concurrent_runs: 16,
            keep_runs: 1000,
            keep_days: 30,
            shutdown_grace: Duration::from_secs(10),
            ca_file: None,
        };
        if let Some(a) = agent_raw {
            let line = |f: &str| at(field_line(text, &agent_span, f));
            if let Some(l) = a.listen {
                match l.parse() {
                    Ok(addr) => agent.listen = addr,
                    Err(_) => errors.push(format!(
                        "{}: [agent] listen: {l:?} is not an address like 127.0.0.1:7878",
                        line("listen")
                    )),
                }
            }
            if let Some(d) = a.plugin_dir {
                agent.plugin_dir = resolve(d);
            }
            if let Some(d) = a.state_dir {
                agent.state_dir = resolve(d);
            }
            if let Some(p) = a.profile {
                match Profile::parse(&p) {
                    Some(p) => agent.profile = p,
                    None => errors.push(format!(
                        "{}: [agent] profile: {p:?} is not local, staging or production",
                        line("profile")
                    )),
                }
            }
            if let Some(n) = a.max_concurrent_runs {
                if n == 0 || n > limits::MAX_CONCURRENT_INSTANCES as usize {
                    errors.push(format!(
                        "{}: [agent] max_concurrent_runs: {n} is outside 1..={}",
                        line("max_concurrent_runs"),
                        limits::MAX_CONCURRENT_INSTANCES
                    ));
                } else {
                    agent.max_concurrent_runs = n;
                }
            }
            if let Some(n) = a.keep_runs {
                agent.keep_runs = n.max(1);
            }
            if let Some(d) = a.keep_days {
                agent.keep_days = d.max(1);
            }
            if let Some(f) = a.ca_file {
                let f = resolve(f);
                if !f.is_file() {
                    errors.push(format!(
                        "{}: [agent] ca_file: {} is not a file",
                        line("ca_file"),
                        f.display()
                    ));
                }
                agent.ca_file = Some(f);
            }
            if let Some(g) = a.shutdown_grace {
                match units::parse_duration(&g) {
                    Ok(d) => agent.shutdown_grace = d,
                    Err(e) => errors.push(format!(
                        "{}: [agent] shutdown_grace: {e}",
                        line("shutdown_grace")
                    )),
                }
            }
        }
        if let Some(p) = env_profile {
            match Profile::parse(&p) {
                Some(p) => agent.profile = p,
                None => errors.push(format!(
                    "WARDEN_PROFILE: {p:?} is not local, staging or production"
                )),
            }
        }

        // [api]
        let mut api = ApiSection::default();
        if let Some(t) = raw.api {
            let span = t.span();
            let line = |f: &str| at(field_line(text, &span, f));
            match RawApi::deserialize(toml::Value::Table(t.into_inner())) {
                Err(e) => errors.push(format!(
                    "{}: [api]: {}",
                    at(line_at(text, span.start)),
                    e.message()
                )),
                Ok(a) => {
                    if a.token_env.is_some() && a.token_file.is_some() {
                        errors.push(format!(
                            "{}: [api]: set token_env or token_file, not both",
                            line("token_env")
                        ));
                    }
                    if let Some(var) = a.token_env {
                        match std::env::var(&var) {
                            Ok(v) if !v.trim().is_empty() => {
                                api.token = Some(v.trim().to_string());
                                api.token_source = Some(format!("env {var}"));
                            }
                            _ => errors.push(format!(
                                "{}: [api] token_env: the variable {var} is not set",
                                line("token_env")
                            )),
                        }
                    }
                    if let Some(file) = a.token_file {
                        let file = resolve(file);
                        match std::fs::read_to_string(&file) {
                            Ok(v) if !v.trim().is_empty() => {
                                api.token = Some(v.trim().to_string());
                                api.token_source = Some(format!("file {}", file.display()));
                            }
                            Ok(_) => errors.push(format!(
                                "{}: [api] token_file: {} is empty",
                                line("token_file"),
                                file.display()
                            )),
                            Err(e) => errors.push(format!(
                                "{}: [api] token_file: {}: {e}",
                                line("token_file"),
                                file.display()
                            )),
                        }
                    }
                    for (i, o) in a.cors_origins.iter().enumerate() {
                        if o != "*" && !(o.starts_with("http://") || o.starts_with("https://")) {
                            errors.push(format!(
                                "{}: [api] cors_origins[{i}]: {o:?} is not an origin like https://ops.example.com",
                                line("cors_origins")
                            ));
                        }
                    }
                    api.cors_origins = a.cors_origins;
                    api.require_token_for_reads = a.require_token_for_reads;
                }
            }
        }

        // [[plugin]] pins
        let mut pins = BTreeMap::new();
        for t in raw.plugin {
            let line = at(line_at(text, t.span().start));
            match RawPin::deserialize(toml::Value::Table(t.into_inner())) {
                Err(e) => errors.push(format!("{line}: [[plugin]]: {}", e.message())),
                Ok(p) => {
                    let sha = p.sha256.to_ascii_lowercase();
                    if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
                        errors.push(format!(
                            "{line}: [[plugin]] {:?}: sha256 must be 64 hex digits",
                            p.name
                        ));
                    } else if pins.insert(p.name.clone(), sha).is_some() {
                        errors.push(format!("{line}: [[plugin]] {:?}: pinned twice", p.name));
                    }
                }
            }
        }

        // [[check]]
        let mut checks = Vec::new();
        let mut names = HashSet::new();
        let mut references = Vec::new();
        for (index, t) in raw.check.into_iter().enumerate() {
            let span = t.span();
            let header = line_at(text, span.start);
            let table = t.into_inner();
            let label = table
                .get("name")
                .and_then(|v| v.as_str())
                .map(|n| format!("check {n:?}"))
                .unwrap_or_else(|| format!("check #{}", index + 1));
            let c = match RawCheck::deserialize(toml::Value::Table(table)) {
                Ok(c) => c,
                Err(e) => {
                    errors.push(format!("{}: {label}: {}", at(header), e.message()));
                    continue;
                }
            };
            let before = errors.len();
            let mut err = |field: &str, msg: String| {
                errors.push(format!(
                    "{}: {label}: {field}: {msg}",
                    at(field_line(text, &span, field))
                ));
            };
            let valid_name = !c.name.is_empty()
                && c.name.len() <= 64
                && c.name
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_' || ch == '.');
            if !valid_name {
                err("name", "use 1-64 of [A-Za-z0-9._-]".into());
            } else if !names.insert(c.name.clone()) {
                err("name", "another check has this name".into());
            }
            if c.plugin.is_empty() {
                err("plugin", "must name a plugin".into());
            }
            let schedule = match c.schedule.as_deref().map(Schedule::parse) {
                Some(Ok(s)) => Some(s),
                Some(Err(e)) => {
                    err("schedule", e);
                    None
                }
                None => None,
            };
            let (timeout, problem) = within(
                c.timeout.as_deref().map(units::parse_duration),
                limits::MAX_TIMEOUT,
                limits::DEFAULT_TIMEOUT,
                |d| format!("{d:?} is over the maximum of {:?}", limits::MAX_TIMEOUT),
            );
            if let Some(p) = problem {
                err("timeout", p);
            }
            let (memory, problem) = within(
                c.memory.as_deref().map(units::parse_size),
                limits::MAX_MEMORY,
                limits::DEFAULT_MEMORY,
                |m| format!("{m} bytes is over the maximum of {}", limits::MAX_MEMORY),
            );
            if let Some(p) = problem {
                err("memory", p);
            }
            if c.retries > 10 {
                err(
                    "retries",
                    format!("{} is over the maximum of 10", c.retries),
                );
            }
            let failure_threshold = c.failure_threshold.unwrap_or(1);
            let success_threshold = c.success_threshold.unwrap_or(1);
            if failure_threshold == 0 {
                err("failure_threshold", "must be at least 1".into());
            }
            if success_threshold == 0 {
                err("success_threshold", "must be at least 1".into());
            }
            let splay = match c.splay.as_deref() {
                Some("0") | Some("0s") => Some(Duration::ZERO),
                Some(s) => match units::parse_duration(s) {
                    Ok(d) => Some(d),
                    Err(e) => {
                        err("splay", e);
                        None
                    }
                },
                None => None,
            };
            let read_dirs: Vec<String> = c
                .allow
                .read_dirs
                .iter()
                .map(|d| {
                    let p = Path::new(d);
                    if p.is_absolute() {
                        d.clone()
                    } else {
                        base.join(p).display().to_string()
                    }
                })
                .collect();
            let grants = match Grants::parse(&c.allow.hosts, &read_dirs, &c.allow.env) {
                Ok(g) => g,
                Err(list) => {
                    for e in list {
                        let (field, msg) = e.split_once(' ').unwrap_or(("allow", e.as_str()));
                        err(field, msg.to_string());
                    }
                    Grants::none()
                }
            };
            let config_json = match serde_json::to_string(&c.config) {
                Ok(j) => j,
                Err(e) => {
                    err("config", format!("cannot be expressed as JSON: {e}"));
                    "{}".into()
                }
            };
            // Output references are checked once every check name is known.
            if let Ok(v) = serde_json::to_value(&c.config) {
                match crate::references::find(&v) {
                    Ok(refs) => {
                        let prefix = format!("{}: {label}", at(field_line(text, &span, "config")));
                        references.extend(refs.into_iter().map(|(f, r)| (prefix.clone(), f, r)));
                    }
                    Err((field, msg)) => err("config", format!("{field}: {msg}")),
                }
            }
            if errors.len() > before {
                continue;
            }
            checks.push(CheckConfig {
                name: c.name,
                plugin: c.plugin,
                schedule_given: schedule.is_some(),
                schedule: schedule.unwrap_or(Schedule::Every(Duration::from_secs(60))),
                timeout,
                memory,
                retries: c.retries,
                failure_threshold,
                success_threshold,
                config_json,
                grants,
                allow_hosts: c.allow.hosts,
                allow_read_dirs: read_dirs,
                allow_env: c.allow.env,
                outputs_file: c.outputs_file.map(resolve),
                splay,
                enabled: c.enabled.unwrap_or(true),
                line: header,
            });
        }

        for (prefix, field, r) in references {
            if !names.contains(&r.check) {
                errors.push(format!(
                    "{prefix}: {field}: ${{output:{r}}} names no check {:?}",
                    r.check
                ));
            }
        }
        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        let config = Config {
            source: source.to_string(),
            agent,
            api,
            pins,
            checks,
        };
        let unsafe_reasons = config.unsafe_settings();
        match config.agent.profile {
            Profile::Production if !unsafe_reasons.is_empty() => Err(ConfigErrors(
                unsafe_reasons
                    .into_iter()
                    .map(|r| format!("{source}: production profile refuses to start: {r}"))
                    .collect(),
            )),
            _ => Ok(config),
        }
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigErrors> {
        Config::parse(text, "warden.toml", Path::new("/tmp"))
    }

    #[test]
    fn embedded_defaults_load() {
        let c = Config::load(None).unwrap();
        assert_eq!(c.agent.listen.to_string(), "127.0.0.1:7878");
        assert_eq!(c.agent.profile, Profile::Local);
        assert!(!c.checks.is_empty());
    }

    #[test]
    fn all_problems_are_reported_with_line_check_and_field() {
        let text = r#"
[agent]
listen = "nowhere"

[[check]]
name = "a"
plugin = "hello"
timeout = "10"

[[check]]
name = "b"
plugin = "hello"
schedule = "@every soon"
allow.hosts = ["ftp://x"]

[[check]]
name = "a"
plugin = "hello"
"#;
        let errs = parse(text).unwrap_err().0;
        let all = errs.join("\n");
        assert!(all.contains("warden.toml:3: [agent] listen"), "{all}");
        assert!(
            all.contains("warden.toml:8: check \"a\": timeout:"),
            "{all}"
        );
        assert!(
            all.contains("warden.toml:13: check \"b\": schedule:"),
            "{all}"
        );
        assert!(
            all.contains("warden.toml:14: check \"b\": allow.hosts[0]"),
            "{all}"
        );
        assert!(
            all.contains("check \"a\": name: another check has this name"),
            "{all}"
        );
        assert_eq!(errs.len(), 5, "{all}");
    }

    #[test]
    fn unknown_fields_and_types_name_the_check() {
        let errs = parse("[[check]]\nname = \"x\"\nplugin = \"hello\"\ntimeuot = \"1s\"\n")
            .unwrap_err()
            .0;
        assert!(
            errs[0].contains("check \"x\"") && errs[0].contains("timeuot"),
            "{errs:?}"
        );
        let errs = parse("[[check]]\nname = \"x\"\nplugin = 5\n")
            .unwrap_err()
            .0;
        assert!(
            errs[0].starts_with("warden.toml:1: check \"x\""),
            "{errs:?}"
        );
    }

    #[test]
    fn production_lists_every_reason() {
        let text = r#"
[agent]
profile = "production"
listen = "0.0.0.0:7878"
[api]
cors_origins = ["*"]
[[check]]
name = "a"
plugin = "hello"
"#;
        let errs = parse(text).unwrap_err().0;
        let all = errs.join("\n");
        assert!(all.contains("no API token"), "{all}");
        assert!(all.contains("beyond loopback"), "{all}");
        assert!(all.contains("cors_origins contains \"*\""), "{all}");
        assert!(all.contains("plugin \"hello\" is not pinned"), "{all}");
        assert_eq!(errs.len(), 4);
    }
}

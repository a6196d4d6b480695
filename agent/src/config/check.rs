//! One `[[check]]`: a plugin, its config, its grants (parsed by the
//! capability modules of [`warden_runtime::caps`]), its limits, its
//! schedule and its thresholds. Defaults and maxima come from
//! [`crate::limits`].

use std::collections::{BTreeMap, HashSet};
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use warden_runtime::{Allow, Grants, StateQuota};
use warden_text::units;

use super::error::{ConfigError, Scope};
use super::source::Source;
use crate::limits;
use crate::references::Reference;
use crate::schedule::Schedule;

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
    allow: BTreeMap<String, Vec<String>>,
    outputs_file: Option<PathBuf>,
    splay: Option<String>,
    #[serde(default)]
    enabled: Option<bool>,
    state_bytes: Option<String>,
    state_keys: Option<u64>,
    notify: Option<Vec<String>>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    depends_on: Vec<String>,
    remind_every: Option<String>,
    send_on_resolved: Option<bool>,
    flap_detection: Option<bool>,
    flap_low: Option<f64>,
    flap_high: Option<f64>,
    #[serde(default)]
    on_unknown: OnUnknown,
    #[serde(default)]
    run_on_start: bool,
    shards: Option<u32>,
}

/// What a hard `unknown` (the check could not decide) tells notifiers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnUnknown {
    /// An alert of its own severity, `unknown` (default).
    #[default]
    Alert,
    /// Nothing: receivers keep what they were told before.
    Ignore,
    /// A critical alert.
    Critical,
}

impl OnUnknown {
    /// The status notifiers are told for hard status `status`, when they
    /// were last told `told`.
    pub fn alert_status(
        self,
        status: warden_runtime::Status,
        told: warden_runtime::Status,
    ) -> warden_runtime::Status {
        use warden_runtime::Status;
        match (status, self) {
            (Status::Unknown, OnUnknown::Ignore) => told,
            (Status::Unknown, OnUnknown::Critical) => Status::Critical,
            (s, _) => s,
        }
    }
}

/// One `[[check]]`.
#[derive(Debug, Clone)]
pub struct CheckConfig {
    /// Unique name.
    pub name: String,
    /// Plugin name (file stem in the plugin dir, or a standard plugin).
    pub plugin: String,
    /// When it runs (`None`: the plugin's default schedule, else
    /// [`limits::DEFAULT_INTERVAL`]).
    pub schedule: Option<Schedule>,
    /// Per-run budget.
    pub timeout: Duration,
    /// Most instances one run of a plugin that can be split may use at
    /// once (`None`: one per core; 1: never split).
    pub shards: Option<u32>,
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
    /// Where outputs are rendered.
    pub outputs_file: Option<PathBuf>,
    /// Maximum splay (None: the default for the schedule).
    pub splay: Option<Duration>,
    /// Disabled checks are loaded but never scheduled.
    pub enabled: bool,
    /// How much plugin state the check may keep.
    pub state_quota: StateQuota,
    /// Notifiers its alerts go to (`None`: `[alerting] notify`).
    pub notify: Option<Vec<String>>,
    /// Line of `notify` (for errors found once notifiers are known).
    pub notify_line: usize,
    /// Labels carried into alerts.
    pub labels: BTreeMap<String, String>,
    /// Whether recovery is notified.
    pub send_on_resolved: bool,
    /// Parent checks: while one has a hard problem, this check's
    /// notifications are suppressed.
    pub depends_on: Vec<String>,
    /// Line of `depends_on`.
    pub depends_on_line: usize,
    /// While firing, notify again this often (off by default).
    pub remind_every: Option<Duration>,
    /// Flap thresholds in percent state change (`None`: detection off).
    pub flapping: Option<crate::flapping::Thresholds>,
    /// What a hard `unknown` tells notifiers.
    pub on_unknown: OnUnknown,
    /// Runs once at the agent's start (and when a reload adds it), then
    /// on its schedule.
    pub run_on_start: bool,
    /// Line of the `[[check]]` header.
    pub line: usize,
}

/// A parsed check and the output references its config makes (checked
/// once every check name is known).
pub(super) struct Parsed {
    pub(super) check: CheckConfig,
    pub(super) references: Vec<(ConfigError, Reference)>,
}

/// An optional limit: `default` when absent; an error when it does not
/// parse, is zero, or is over `max`.
pub(super) fn limit<T: PartialOrd + Copy + Default>(
    text: Option<&str>,
    parse: impl Fn(&str) -> Result<T, String>,
    default: T,
    max: T,
    over: impl Fn(T) -> String,
) -> Result<T, String> {
    let Some(t) = text else {
        return Ok(default);
    };
    let v = parse(t)?;
    if v == T::default() {
        return Err(format!("{t:?}: must be positive"));
    }
    if v > max {
        return Err(over(v));
    }
    Ok(v)
}

/// A sandbox's `memory` (a check's or an action's): the default when
/// absent, at most [`limits::MAX_MEMORY`].
pub(super) fn memory_limit(text: Option<&str>) -> Result<u64, String> {
    limit(
        text,
        units::parse_size,
        limits::DEFAULT_MEMORY,
        limits::MAX_MEMORY,
        |m| format!("{m} bytes is over the maximum of {}", limits::MAX_MEMORY),
    )
}

/// The grants an `allow` table gives (a check's or an action's); problems
/// go to `err` by field, and then nothing is granted.
pub(super) fn grants(
    src: &Source<'_>,
    allow: &BTreeMap<String, Vec<String>>,
    err: &mut impl FnMut(&str, String),
) -> Grants {
    let allow = allow
        .iter()
        .fold(Allow::new(src.base()), |a, (key, entries)| {
            a.with(key, entries)
        });
    match Grants::parse(&allow) {
        Ok(g) => g,
        Err(list) => {
            for e in list {
                err(&e.field, e.message);
            }
            Grants::none()
        }
    }
}

/// A plugin's `config` table as JSON, with the `${output:}` references it
/// makes (each with the error to report if it names no check).
pub(super) fn plugin_config(
    src: &Source<'_>,
    span: &Range<usize>,
    scope: &dyn Fn() -> Scope,
    config: &toml::Table,
    err: &mut impl FnMut(&str, String),
) -> (String, Vec<(ConfigError, Reference)>) {
    let config_json = match serde_json::to_string(config) {
        Ok(j) => j,
        Err(e) => {
            err("config", format!("cannot be expressed as JSON: {e}"));
            "{}".into()
        }
    };
    let mut references = Vec::new();
    if let Ok(v) = serde_json::to_value(config) {
        match crate::references::find(&v) {
            Ok(refs) => {
                let line = src.field_line(span, "config");
                references.extend(
                    refs.into_iter().map(|(field, r)| {
                        (src.error(line, scope(), Some(&field), String::new()), r)
                    }),
                );
            }
            Err((field, msg)) => err("config", format!("{field}: {msg}")),
        }
    }
    (config_json, references)
}

/// Labels every alert carries itself; a check's labels may not take them.
pub const RESERVED_LABELS: [&str; 5] = ["alertname", "check", "plugin", "severity", "instance"];

/// Whether `name` is a Prometheus label name, `[A-Za-z_][A-Za-z0-9_]*`,
/// of at most 128 bytes (check labels, silence matchers).
pub fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 128
}

/// Why `name = value` cannot be a check label (Prometheus' label names;
/// not reserved, not `__`-prefixed; a value of at most 1 KiB), if it cannot.
fn label_problem(name: &str, value: &str) -> Option<String> {
    if !is_label_name(name) {
        return Some("a label name is [A-Za-z_][A-Za-z0-9_]*, at most 128 bytes".into());
    }
    if name.starts_with("__") || RESERVED_LABELS.contains(&name) {
        return Some(format!(
            "{name:?} is reserved (alerts set alertname, check, plugin, severity and instance)"
        ));
    }
    if value.len() > 1024 || value.chars().any(char::is_control) {
        return Some("a label value is at most 1 KiB of printable text".into());
    }
    None
}

/// Why `name` cannot name a check (or a notifier), if it cannot.
pub(super) fn name_problem(name: &str) -> Option<String> {
    let valid = !name.is_empty()
        && name.len() <= limits::MAX_CHECK_NAME_BYTES
        && name
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_' || ch == '.');
    (!valid).then(|| format!("use 1-{} of [A-Za-z0-9._-]", limits::MAX_CHECK_NAME_BYTES))
}

impl CheckConfig {
    /// Parses the `index`th `[[check]]` (`names` holds the names taken so
    /// far); problems go to `errors` and make it `None`.
    pub(super) fn parse(
        src: &Source<'_>,
        index: usize,
        table: toml::Table,
        span: &Range<usize>,
        names: &mut HashSet<String>,
        errors: &mut Vec<ConfigError>,
    ) -> Option<Parsed> {
        let header = src.line_at(span.start);
        let (c, label): (RawCheck, String) =
            src.table("check", index, table, span, Scope::Check, errors)?;
        let scope = || Scope::Check(label.clone());
        let before = errors.len();
        let mut err = |field: &str, msg: String| {
            errors.push(src.error(src.field_line(span, field), scope(), Some(field), msg));
        };
        if let Some(problem) = name_problem(&c.name) {
            err("name", problem);
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
        let timeout = limit(
            c.timeout.as_deref(),
            units::parse_duration,
            limits::DEFAULT_TIMEOUT,
            limits::MAX_TIMEOUT,
            |d| format!("{d:?} is over the maximum of {:?}", limits::MAX_TIMEOUT),
        )
        .unwrap_or_else(|e| {
            err("timeout", e);
            limits::DEFAULT_TIMEOUT
        });
        let memory = memory_limit(c.memory.as_deref()).unwrap_or_else(|e| {
            err("memory", e);
            limits::DEFAULT_MEMORY
        });
        let state_bytes = limit(
            c.state_bytes.as_deref(),
            units::parse_size,
            limits::DEFAULT_STATE_BYTES,
            limits::MAX_STATE_BYTES,
            |n| {
                format!(
                    "{n} bytes is over the maximum of {}",
                    limits::MAX_STATE_BYTES
                )
            },
        )
        .unwrap_or_else(|e| {
            err("state_bytes", e);
            limits::DEFAULT_STATE_BYTES
        });
        if let Some(n) = c.shards
            && !(1..=limits::MAX_SHARDS).contains(&n)
        {
            err(
                "shards",
                format!("{n} is outside 1..={}", limits::MAX_SHARDS),
            );
        }
        let state_keys = c.state_keys.unwrap_or(limits::DEFAULT_STATE_KEYS);
        if state_keys == 0 || state_keys > limits::MAX_STATE_KEYS {
            err(
                "state_keys",
                format!("{state_keys} is outside 1..={}", limits::MAX_STATE_KEYS),
            );
        }
        if c.retries > limits::MAX_RETRIES {
            err(
                "retries",
                format!(
                    "{} is over the maximum of {}",
                    c.retries,
                    limits::MAX_RETRIES
                ),
            );
        }
        let failure_threshold = c
            .failure_threshold
            .unwrap_or(limits::DEFAULT_FAILURE_THRESHOLD);
        let success_threshold = c
            .success_threshold
            .unwrap_or(limits::DEFAULT_SUCCESS_THRESHOLD);
        if failure_threshold == 0 {
            err("failure_threshold", "must be at least 1".into());
        }
        if success_threshold == 0 {
            err("success_threshold", "must be at least 1".into());
        }
        let splay = match c.splay.as_deref() {
            Some("0") => Some(Duration::ZERO),
            Some(s) => match units::parse_duration(s) {
                Ok(d) if d > limits::MAX_INTERVAL => {
                    err(
                        "splay",
                        format!(
                            "{s:?} is over the maximum of {}",
                            units::format_duration(limits::MAX_INTERVAL)
                        ),
                    );
                    None
                }
                Ok(d) => Some(d),
                Err(e) => {
                    err("splay", e);
                    None
                }
            },
            None => None,
        };
        let grants = grants(src, &c.allow, &mut err);
        let (config_json, references) = plugin_config(src, span, &scope, &c.config, &mut err);
        let remind_every = match c.remind_every.as_deref().map(units::parse_duration) {
            None => None,
            Some(Ok(d)) if d >= limits::MIN_REMIND_EVERY && d <= limits::MAX_INTERVAL => Some(d),
            Some(Ok(_)) => {
                err(
                    "remind_every",
                    format!(
                        "use {} to {}",
                        units::format_duration(limits::MIN_REMIND_EVERY),
                        units::format_duration(limits::MAX_INTERVAL)
                    ),
                );
                None
            }
            Some(Err(e)) => {
                err("remind_every", e);
                None
            }
        };
        let defaults = crate::flapping::Thresholds::default();
        let flap = crate::flapping::Thresholds {
            low: c.flap_low.unwrap_or(defaults.low),
            high: c.flap_high.unwrap_or(defaults.high),
        };
        for (field, v) in [("flap_low", flap.low), ("flap_high", flap.high)] {
            if !(0.0..=100.0).contains(&v) {
                err(
                    field,
                    format!("{v} is outside 0..=100 (percent state change)"),
                );
            }
        }
        if flap.low >= flap.high {
            err(
                "flap_low",
                format!("{} must be below flap_high ({})", flap.low, flap.high),
            );
        }
        let labels_line = src.field_line(span, "labels");
        for (k, v) in &c.labels {
            if let Some(problem) = label_problem(k, v) {
                errors.push(src.error(labels_line, scope(), Some(&format!("labels.{k}")), problem));
            }
        }
        if errors.len() > before {
            return None;
        }
        Some(Parsed {
            check: CheckConfig {
                name: c.name,
                plugin: c.plugin,
                schedule,
                timeout,
                shards: c.shards,
                memory,
                retries: c.retries,
                failure_threshold,
                success_threshold,
                config_json,
                grants,
                outputs_file: c.outputs_file.map(|p| src.resolve(p)),
                splay,
                enabled: c.enabled.unwrap_or(true),
                state_quota: StateQuota {
                    bytes: state_bytes,
                    keys: state_keys,
                },
                notify_line: src.field_line(span, "notify"),
                notify: c.notify,
                labels: c.labels,
                send_on_resolved: c.send_on_resolved.unwrap_or(true),
                depends_on_line: src.field_line(span, "depends_on"),
                depends_on: c.depends_on,
                remind_every,
                flapping: c.flap_detection.unwrap_or(true).then_some(flap),
                on_unknown: c.on_unknown,
                run_on_start: c.run_on_start,
                line: header,
            },
            references,
        })
    }
}

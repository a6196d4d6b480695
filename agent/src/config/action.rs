//! `[[action]]`: a runbook's remedy. A plugin run in its own sandbox, with
//! its own grants and limits (nothing inherited from the check it
//! watches), started when a check changes the way `on` says, in `mode`
//! `approve` (waits for `POST /v1/actions/{id}/approve`) or `auto`, under
//! the guardrails here. What runs it is [`crate::actions`].
//!
//! ```toml
//! [[action]]
//! name = "reset-bucket"
//! plugin = "http-action"
//! on = { check = "auth-failures", status = ["critical"], state = "hard" }
//! mode = "approve"
//! approve_within = "30m"
//! cooldown = "10m"
//! max_per_hour = 4
//! config.url = "http://127.0.0.1:8080/v1/ops/rate-limits"
//! config.json = { key = "${output:auth-failures.ABUSIVE_KEY}" }
//! allow.hosts = ["http://127.0.0.1:8080"]
//! ```

use std::collections::{BTreeMap, HashSet};
use std::ops::Range;
use std::time::Duration;

use serde::Deserialize;
use warden_runtime::{Grants, StateQuota, Status};
use warden_text::units;

use super::check::{grants, limit, memory_limit, name_problem, plugin_config};
use super::error::{ConfigError, Scope};
use super::source::Source;
use crate::limits;
use crate::references::Reference;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAction {
    name: String,
    plugin: String,
    on: RawOn,
    #[serde(default)]
    mode: Mode,
    approve_within: Option<String>,
    #[serde(default)]
    dry_run: bool,
    cooldown: Option<String>,
    max_per_hour: Option<u32>,
    #[serde(default)]
    during_maintenance: bool,
    #[serde(default)]
    verify: Option<bool>,
    timeout: Option<String>,
    memory: Option<String>,
    #[serde(default)]
    config: toml::Table,
    #[serde(default)]
    allow: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOn {
    check: String,
    #[serde(default)]
    status: Vec<String>,
    #[serde(default)]
    state: When,
    after: Option<u32>,
}

/// Which of the check's changes fire the action.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum When {
    /// The check's hard state turns to one of `status` (default): after
    /// `failure_threshold` results in a row, as notifications are.
    #[default]
    Hard,
    /// The first result of one of `status` after one that was not (before
    /// the state turns hard).
    Soft,
    /// Every result of one of `status`, from the `after`th in a row on
    /// (Sensu's occurrences); the guardrails bound how often it runs.
    Every,
}

/// Whether a fired action waits for a person.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Waits as pending until approved or rejected through the API, or
    /// until `approve_within` passes (default).
    #[default]
    Approve,
    /// Runs at once.
    Auto,
}

/// One `[[action]]`.
#[derive(Debug, Clone)]
pub struct ActionConfig {
    /// Unique among actions.
    pub name: String,
    /// The plugin it runs.
    pub plugin: String,
    /// The check it watches.
    pub check: String,
    /// The statuses that fire it (default: warning and critical).
    pub statuses: Vec<Status>,
    /// Which changes fire it.
    pub when: When,
    /// For [`When::Every`]: fire from this many results in a row on.
    pub after: u32,
    /// Waits for approval, or runs at once.
    pub mode: Mode,
    /// How long a pending action waits for approval.
    pub approve_within: Duration,
    /// The plugin is told to change nothing.
    pub dry_run: bool,
    /// At least this long between two runs.
    pub cooldown: Duration,
    /// At most this many runs in any hour (`None`: no cap; production
    /// refuses `auto` without one).
    pub max_per_hour: Option<u32>,
    /// Whether it may fire while the check is in maintenance or silenced.
    pub during_maintenance: bool,
    /// Whether the check runs again at once after the action (default).
    pub verify: bool,
    /// The plugin's config as JSON (`${output:}` and `${trigger.}` filled
    /// in when it runs).
    pub config_json: String,
    /// What the action's sandbox may reach.
    pub grants: Grants,
    /// Per-run budget.
    pub timeout: Duration,
    /// Memory limit in bytes.
    pub memory: u64,
    /// Plugin state quota.
    pub state_quota: StateQuota,
    /// Line of the `[[action]]` header.
    pub line: usize,
    /// Line of `on` (for errors found once checks are known).
    pub on_line: usize,
}

/// What `${trigger.NAME}` may name.
pub const TRIGGER_FIELDS: [&str; 3] = ["check", "status", "summary"];

impl ActionConfig {
    /// Parses the `index`th `[[action]]`; problems go to `errors`.
    pub(super) fn parse(
        src: &Source<'_>,
        index: usize,
        table: toml::Table,
        span: &Range<usize>,
        names: &mut HashSet<String>,
        errors: &mut Vec<ConfigError>,
    ) -> Option<(ActionConfig, Vec<(ConfigError, Reference)>)> {
        let (a, label): (RawAction, String) =
            src.table("action", index, table, span, Scope::Action, errors)?;
        let scope = || Scope::Action(label.clone());
        let before = errors.len();
        let mut err = |field: &str, msg: String| {
            let at = if field.starts_with("on.") {
                "on"
            } else {
                field
            };
            errors.push(src.error(src.field_line(span, at), scope(), Some(field), msg));
        };
        if let Some(problem) = name_problem(&a.name) {
            err("name", problem);
        } else if !names.insert(a.name.clone()) {
            err("name", "another action has this name".into());
        }
        if a.plugin.is_empty() {
            err("plugin", "must name a plugin".into());
        }
        let mut statuses = Vec::new();
        for (i, s) in a.on.status.iter().enumerate() {
            match s.parse::<Status>().ok() {
                Some(Status::Ok) if a.on.state == When::Hard => err(
                    &format!("on.status[{i}]"),
                    "a hard state of ok is a recovery; act on problems".into(),
                ),
                Some(st) => statuses.push(st),
                None => err(
                    &format!("on.status[{i}]"),
                    format!("{s:?} is not ok, warning, critical or unknown"),
                ),
            }
        }
        if a.on.status.is_empty() {
            statuses = vec![Status::Warning, Status::Critical];
        }
        let after = a.on.after.unwrap_or(1);
        if a.on.after.is_some() && a.on.state != When::Every {
            err(
                "on.after",
                "counts results only with state = \"every\"".into(),
            );
        }
        if after == 0 {
            err("on.after", "must be at least 1".into());
        }
        let duration = |field: &str, text: Option<&str>, default: Duration, max: Duration| {
            limit(text, units::parse_duration, default, max, |d| {
                format!(
                    "{} is over the maximum of {}",
                    units::format_duration(d),
                    units::format_duration(max)
                )
            })
            .map_err(|e| (field.to_string(), e))
        };
        let mut fields = Vec::new();
        let approve_within = duration(
            "approve_within",
            a.approve_within.as_deref(),
            limits::DEFAULT_APPROVE_WITHIN,
            limits::MAX_INTERVAL,
        )
        .unwrap_or_else(|e| {
            fields.push(e);
            limits::DEFAULT_APPROVE_WITHIN
        });
        let cooldown = match a.cooldown.as_deref() {
            Some("0") => Duration::ZERO,
            c => duration(
                "cooldown",
                c,
                limits::DEFAULT_ACTION_COOLDOWN,
                limits::MAX_INTERVAL,
            )
            .unwrap_or_else(|e| {
                fields.push(e);
                Duration::ZERO
            }),
        };
        let timeout = duration(
            "timeout",
            a.timeout.as_deref(),
            limits::DEFAULT_TIMEOUT,
            limits::MAX_TIMEOUT,
        )
        .unwrap_or_else(|e| {
            fields.push(e);
            limits::DEFAULT_TIMEOUT
        });
        for (field, e) in fields {
            err(&field, e);
        }
        let memory = memory_limit(a.memory.as_deref()).unwrap_or_else(|e| {
            err("memory", e);
            limits::DEFAULT_MEMORY
        });
        if a.max_per_hour == Some(0) {
            err(
                "max_per_hour",
                "must be at least 1 (to stop an action, remove it, or set [agent] actions = \"off\")".into(),
            );
        }
        let grants = grants(src, &a.allow, &mut err);
        let (config_json, references) = plugin_config(src, span, &scope, &a.config, &mut err);
        if let Err((field, problem)) = trigger_problems(&config_json) {
            err("config", format!("{field}: {problem}"));
        }
        if errors.len() > before {
            return None;
        }
        Some((
            ActionConfig {
                name: a.name,
                plugin: a.plugin,
                on_line: src.field_line(span, "on"),
                check: a.on.check,
                statuses,
                when: a.on.state,
                after,
                mode: a.mode,
                approve_within,
                dry_run: a.dry_run,
                cooldown,
                max_per_hour: a.max_per_hour,
                during_maintenance: a.during_maintenance,
                verify: a.verify.unwrap_or(true),
                config_json,
                grants,
                timeout,
                memory,
                state_quota: StateQuota::default(),
                line: src.line_at(span.start),
            },
            references,
        ))
    }
}

/// The first `${trigger.X}` in `config_json` that names nothing the
/// trigger has, as `(field path, problem)`.
fn trigger_problems(config_json: &str) -> Result<(), (String, String)> {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(config_json) else {
        return Ok(());
    };
    let mut problem = None;
    each_string(&v, "config", &mut |path, s| {
        let mut rest = s;
        while let Some(at) = rest.find("${trigger.") {
            let after = &rest[at + "${trigger.".len()..];
            let name = after.split('}').next().unwrap_or("");
            if !after.contains('}') || !TRIGGER_FIELDS.contains(&name) {
                problem.get_or_insert((
                    path.to_string(),
                    format!(
                        "${{trigger.{name}}}: the trigger has {}",
                        TRIGGER_FIELDS
                            .map(|f| format!("${{trigger.{f}}}"))
                            .join(", ")
                    ),
                ));
            }
            rest = after;
        }
    });
    problem.map_or(Ok(()), Err)
}

/// Calls `f(path, string)` for every string in `v` (paths like
/// `config.headers.x`).
pub fn each_string(v: &serde_json::Value, path: &str, f: &mut dyn FnMut(&str, &str)) {
    match v {
        serde_json::Value::String(s) => f(path, s),
        serde_json::Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                each_string(x, &format!("{path}[{i}]"), f);
            }
        }
        serde_json::Value::Object(o) => {
            for (k, x) in o {
                each_string(x, &format!("{path}.{k}"), f);
            }
        }
        _ => {}
    }
}

//! What a run produced, in the one shape every other part uses:
//! [`RunOutcome`] (built by [`RunOutcome::begin`], ended by the runtime or
//! by [`RunOutcome::unknown`]), the [`Report`] inside it (as the plugin
//! returned it, after the caps in [`crate::limits`] are checked),
//! [`PluginInfo`] (what `describe` said), and [`Status`] and [`Severity`]
//! with their one text form each.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::bindings::wit;
use crate::limits;

/// A run's verdict, with the Nagios meaning and exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// All good (exit 0).
    Ok,
    /// Attention needed (exit 1).
    Warning,
    /// Broken (exit 2).
    Critical,
    /// Could not decide (exit 3).
    Unknown,
}

impl Status {
    /// The Nagios plugin exit code.
    pub fn exit_code(self) -> u8 {
        match self {
            Status::Ok => 0,
            Status::Warning => 1,
            Status::Critical => 2,
            Status::Unknown => 3,
        }
    }

    /// Every status, in exit-code order.
    pub const ALL: [Status; 4] = [
        Status::Ok,
        Status::Warning,
        Status::Critical,
        Status::Unknown,
    ];

    /// Position in [`Status::ALL`] (also the exit code), for per-status
    /// counters.
    pub fn index(self) -> usize {
        self.exit_code() as usize
    }

    /// The lower-case name used in JSON, the store and `/metrics`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warning => "warning",
            Status::Critical => "critical",
            Status::Unknown => "unknown",
        }
    }

    /// Upper-case label as Nagios prints it.
    pub fn label(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::Warning => "WARNING",
            Status::Critical => "CRITICAL",
            Status::Unknown => "UNKNOWN",
        }
    }

    fn from_wit(s: wit::Status) -> Self {
        match s {
            wit::Status::Ok => Status::Ok,
            wit::Status::Warning => Status::Warning,
            wit::Status::Critical => Status::Critical,
            wit::Status::Unknown => Status::Unknown,
        }
    }

    pub(crate) fn to_wit(self) -> wit::Status {
        match self {
            Status::Ok => wit::Status::Ok,
            Status::Warning => wit::Status::Warning,
            Status::Critical => wit::Status::Critical,
            Status::Unknown => wit::Status::Unknown,
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not a status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a status (use ok, warning, critical or unknown)")]
pub struct UnknownStatus(pub String);

impl std::str::FromStr for Status {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<Status, UnknownStatus> {
        Status::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_string()))
    }
}

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Info.
    Info,
    /// Low.
    Low,
    /// Medium.
    Medium,
    /// High.
    High,
    /// Critical.
    Critical,
}

impl Severity {
    /// The lower-case name used in JSON, the store and exports.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    fn from_wit(s: wit::Severity) -> Self {
        match s {
            wit::Severity::Info => Severity::Info,
            wit::Severity::Low => Severity::Low,
            wit::Severity::Medium => Severity::Medium,
            wit::Severity::High => Severity::High,
            wit::Severity::Critical => Severity::Critical,
        }
    }
}

/// A measured number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Metric {
    /// Name.
    pub name: String,
    /// Value.
    pub value: f64,
    /// Unit, possibly empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub unit: String,
    /// Labels.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<(String, String)>,
}

/// A problem found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Finding {
    /// Stable identity.
    pub fingerprint: String,
    /// Rule or class.
    pub rule: String,
    /// Severity.
    pub severity: Severity,
    /// One line.
    pub message: String,
    /// Where.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Details.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<(String, String)>,
}

/// A published value.
///
/// Serialized (API responses, run history, `--format json`) with the value
/// redacted like a URL (user info and query values masked): an output such
/// as an RPC URL may carry an API key. The clear value goes only to the
/// check's `outputs_file` and the store's `outputs` table it is rendered
/// from.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
pub struct Output {
    /// Key.
    pub key: String,
    /// Value.
    pub value: String,
}

impl Serialize for Output {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Output", 2)?;
        st.serialize_field("key", &self.key)?;
        st.serialize_field("value", &crate::redact::url(&self.value))?;
        st.end()
    }
}

/// A report as returned by a plugin and accepted by the agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Verdict.
    pub status: Status,
    /// One line.
    pub summary: String,
    /// Metrics.
    pub metrics: Vec<Metric>,
    /// Findings.
    pub findings: Vec<Finding>,
    /// Outputs.
    pub outputs: Vec<Output>,
}

fn pairs(v: Vec<wit::Pair>) -> Vec<(String, String)> {
    v.into_iter().map(|p| (p.name, p.value)).collect()
}

fn check_count(what: &str, n: usize, max: usize) -> Result<(), String> {
    if n > max {
        return Err(format!("report has {n} {what}, over the limit of {max}"));
    }
    Ok(())
}

fn check_len(what: &str, s: &str, max: usize) -> Result<(), String> {
    if s.len() > max {
        return Err(format!(
            "report {what} is {} bytes, over the limit of {max}",
            s.len()
        ));
    }
    Ok(())
}

impl Report {
    /// Converts a plugin's report, refusing one beyond the caps. The error
    /// names the limit.
    pub(crate) fn from_wit(r: wit::Report) -> Result<Report, String> {
        check_len("summary", &r.summary, limits::MAX_SUMMARY_BYTES)?;
        check_count("metrics", r.metrics.len(), limits::MAX_METRICS)?;
        check_count("findings", r.findings.len(), limits::MAX_FINDINGS)?;
        check_count("outputs", r.outputs.len(), limits::MAX_OUTPUTS)?;
        let (text, name) = (limits::MAX_FIELD_BYTES, limits::MAX_NAME_BYTES);
        for m in &r.metrics {
            check_len("metric name", &m.name, name)?;
            check_len("metric unit", &m.unit, limits::MAX_UNIT_BYTES)?;
            check_count("labels on one metric", m.labels.len(), limits::MAX_LABELS)?;
            for l in &m.labels {
                check_len("metric label name", &l.name, name)?;
                check_len("metric label", &l.value, text)?;
            }
        }
        for f in &r.findings {
            check_len("finding fingerprint", &f.fingerprint, text)?;
            check_len("finding rule", &f.rule, name)?;
            check_len("finding message", &f.message, text)?;
            check_len(
                "finding location",
                f.location.as_deref().unwrap_or(""),
                text,
            )?;
            check_count(
                "attributes on one finding",
                f.attributes.len(),
                limits::MAX_ATTRIBUTES,
            )?;
            for a in &f.attributes {
                check_len("finding attribute name", &a.name, name)?;
                check_len("finding attribute", &a.value, text)?;
            }
        }
        for o in &r.outputs {
            check_len("output key", &o.key, name)?;
            let valid_key = o
                .key
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_uppercase() || c == '_')
                && o.key
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            if !valid_key {
                return Err(format!(
                    "report output key {:?} is not [A-Z_][A-Z0-9_]*",
                    o.key
                ));
            }
            check_len("output value", &o.value, text)?;
            // Outputs are rendered into env files that applications and
            // systemd read; a control character there is never data.
            if let Some(c) = o.value.chars().find(|c| warden_text::escape::is_unsafe(*c)) {
                return Err(format!(
                    "report output {} has a control character (U+{:04X}) in its value; output values must be printable",
                    o.key, c as u32
                ));
            }
        }
        Ok(Report {
            status: Status::from_wit(r.status),
            summary: r.summary,
            metrics: r
                .metrics
                .into_iter()
                .map(|m| Metric {
                    name: m.name,
                    value: m.value,
                    unit: m.unit,
                    labels: pairs(m.labels),
                })
                .collect(),
            findings: r
                .findings
                .into_iter()
                .map(|f| Finding {
                    fingerprint: f.fingerprint,
                    rule: f.rule,
                    severity: Severity::from_wit(f.severity),
                    message: f.message,
                    location: f.location,
                    attributes: pairs(f.attributes),
                })
                .collect(),
            outputs: r
                .outputs
                .into_iter()
                .map(|o| Output {
                    key: o.key,
                    value: o.value,
                })
                .collect(),
        })
    }
}

/// What a plugin says about itself.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PluginInfo {
    /// Name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Description.
    pub description: String,
    /// Default schedule.
    pub default_schedule: Option<String>,
    /// JSON Schema of the config.
    pub config_schema: serde_json::Value,
    /// Capabilities it uses.
    pub capabilities: Vec<String>,
}

impl PluginInfo {
    pub(crate) fn from_wit(i: wit::PluginInfo) -> Result<PluginInfo, String> {
        let valid_name = !i.name.is_empty()
            && i.name.len() <= 64
            && i.name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !valid_name {
            return Err(format!(
                "describe returned an invalid name {:?} (want [a-z0-9-]{{1,64}})",
                i.name
            ));
        }
        check_len("version", &i.version, 64).map_err(|e| format!("describe: {e}"))?;
        check_len("description", &i.description, limits::MAX_FIELD_BYTES)
            .map_err(|e| format!("describe: {e}"))?;
        let config_schema = serde_json::from_str(&i.config_schema)
            .map_err(|e| format!("describe returned a config schema that is not JSON: {e}"))?;
        Ok(PluginInfo {
            name: i.name,
            version: i.version,
            description: i.description,
            default_schedule: i.default_schedule,
            config_schema,
            capabilities: i
                .capabilities
                .into_iter()
                .map(|c| {
                    match c {
                        wit::Capability::Http => "http",
                        wit::Capability::Filesystem => "filesystem",
                        wit::Capability::Environment => "environment",
                        wit::Capability::State => "state",
                    }
                    .to_string()
                })
                .collect(),
        })
    }
}

/// What happened in a run: the one record of a run that the runtime
/// returns, the store keeps and the API shows.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RunOutcome {
    /// Run id (unique within this agent process).
    pub run_id: String,
    /// Check name.
    pub check: String,
    /// Plugin name.
    pub plugin: String,
    /// Plugin sha256 (empty when no plugin ran).
    pub plugin_sha256: String,
    /// Verdict.
    pub status: Status,
    /// One line.
    pub summary: String,
    /// Why the run is `unknown`, when the agent or plugin failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Metrics reported.
    #[serde(default)]
    pub metrics: Vec<Metric>,
    /// Findings reported.
    #[serde(default)]
    pub findings: Vec<Finding>,
    /// Outputs published.
    #[serde(default)]
    pub outputs: Vec<Output>,
    /// Due time, ms since the epoch.
    pub scheduled_unix_ms: u64,
    /// Start, ms since the epoch.
    pub started_unix_ms: u64,
    /// End, ms since the epoch.
    pub finished_unix_ms: u64,
    /// Duration in seconds.
    pub duration_seconds: f64,
    /// Attempt number.
    pub attempt: u32,
    /// Outgoing HTTP requests attempted.
    #[serde(default)]
    pub http_requests: u32,
    /// Requests or responses the sandbox refused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refusals: Vec<String>,
    /// How many shards the run was split into (absent: run whole).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shards: Option<u32>,
    /// The end of what the plugin wrote to stderr (at most
    /// [`limits::STDERR_TAIL_BYTES`], redacted), when it wrote anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stderr: Option<String>,
}

static RUN_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Milliseconds since the Unix epoch (0 before it).
pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl RunOutcome {
    /// A run of `check` by `plugin` (name and sha256) starting now: a new
    /// run id, status `unknown` until [`RunOutcome::end`].
    pub fn begin(
        check: &str,
        plugin: &str,
        plugin_sha256: &str,
        scheduled: SystemTime,
        attempt: u32,
    ) -> RunOutcome {
        let started = unix_ms(SystemTime::now());
        let n = RUN_COUNTER.fetch_add(1, Ordering::Relaxed);
        RunOutcome {
            run_id: format!("{started:x}-{n}"),
            check: check.to_string(),
            plugin: plugin.to_string(),
            plugin_sha256: plugin_sha256.to_string(),
            status: Status::Unknown,
            summary: String::new(),
            error: None,
            metrics: Vec::new(),
            findings: Vec::new(),
            outputs: Vec::new(),
            scheduled_unix_ms: unix_ms(scheduled),
            started_unix_ms: started,
            finished_unix_ms: started,
            duration_seconds: 0.0,
            attempt,
            http_requests: 0,
            refusals: Vec::new(),
            shards: None,
            stderr: None,
        }
    }

    /// An `unknown` outcome for a run that could not start (no plugin, an
    /// unresolved reference), with its reason.
    pub fn unknown(
        check: &str,
        plugin: &str,
        reason: String,
        scheduled: SystemTime,
        attempt: u32,
    ) -> RunOutcome {
        let mut outcome = RunOutcome::begin(check, plugin, "", scheduled, attempt);
        outcome.end(Err(reason), Duration::ZERO);
        outcome
    }

    /// Ends the run after `elapsed` with the plugin's report or the reason
    /// it failed. Free text is redacted; a failure reason becomes one
    /// bounded line, as it is shown in terminals, logs and the API.
    pub fn end(&mut self, result: Result<Report, String>, elapsed: Duration) {
        self.duration_seconds = elapsed.as_secs_f64();
        self.finished_unix_ms = self.started_unix_ms + elapsed.as_millis() as u64;
        match result {
            Ok(report) => {
                self.status = report.status;
                self.summary = crate::redact::words(&report.summary);
                self.metrics = report.metrics;
                self.findings = report
                    .findings
                    .into_iter()
                    .map(|mut f| {
                        f.message = crate::redact::words(&f.message);
                        f
                    })
                    .collect();
                self.outputs = report.outputs;
            }
            Err(reason) => {
                let reason = reason.split_whitespace().collect::<Vec<_>>().join(" ");
                let reason = warden_text::truncate(&reason, limits::MAX_FIELD_BYTES);
                self.status = Status::Unknown;
                self.summary = reason.clone();
                self.error = Some(reason);
            }
        }
        let shown = warden_text::escape::escape(&self.summary);
        match self.status {
            Status::Ok => {
                tracing::debug!(status = "ok", duration = self.duration_seconds, "{shown}")
            }
            s => tracing::info!(
                status = s.label(),
                duration = self.duration_seconds,
                "{shown}"
            ),
        }
    }
}

/// What an action's run is told of itself (`host.action`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionRun {
    /// The action's name.
    pub name: String,
    /// Stable for one firing of the action, across restarts.
    pub idempotency_key: String,
    /// Report what it would do; change nothing.
    pub dry_run: bool,
    /// The check that triggered it, its status and summary then.
    pub trigger_check: String,
    /// See `trigger_check`.
    pub trigger_status: Status,
    /// See `trigger_check`.
    pub trigger_summary: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_text_round_trips() {
        for s in Status::ALL {
            assert_eq!(s.as_str().parse::<Status>(), Ok(s));
            assert_eq!(Status::ALL[s.index()], s);
            assert_eq!(
                serde_json::to_value(s).unwrap(),
                serde_json::Value::from(s.as_str())
            );
        }
        assert!("OK".parse::<Status>().is_err());
    }

    #[test]
    fn unknown_outcomes_carry_one_bounded_line() {
        let o = RunOutcome::unknown("c", "p", "two\nlines".into(), SystemTime::now(), 2);
        assert_eq!(o.status, Status::Unknown);
        assert_eq!(o.error.as_deref(), Some("two lines"));
        assert_eq!((o.check.as_str(), o.attempt), ("c", 2));
        let p = RunOutcome::begin("c", "p", "", SystemTime::now(), 1);
        assert_ne!(o.run_id, p.run_id);
    }
}

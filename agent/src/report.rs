//! The agent's view of what a run produced: [`Report`] (as the plugin
//! returned it, after the caps in [`crate::limits`] are checked),
//! [`PluginInfo`] (what `describe` said) and the status mapping, defined
//! once here.

use serde::{Deserialize, Serialize};

use crate::limits;
use crate::runtime::wit;

/// A run's verdict, with the Nagios meaning and exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
}

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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

/// A measured number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
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
        let max = limits::MAX_FIELD_BYTES;
        for m in &r.metrics {
            check_len("metric name", &m.name, max)?;
            for l in &m.labels {
                check_len("metric label", &l.value, max)?;
            }
        }
        for f in &r.findings {
            check_len("finding fingerprint", &f.fingerprint, max)?;
            check_len("finding message", &f.message, max)?;
            check_len("finding location", f.location.as_deref().unwrap_or(""), max)?;
            for a in &f.attributes {
                check_len("finding attribute", &a.value, max)?;
            }
        }
        for o in &r.outputs {
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
            check_len("output value", &o.value, max)?;
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
                    severity: match f.severity {
                        wit::Severity::Info => Severity::Info,
                        wit::Severity::Low => Severity::Low,
                        wit::Severity::Medium => Severity::Medium,
                        wit::Severity::High => Severity::High,
                        wit::Severity::Critical => Severity::Critical,
                    },
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
#[derive(Debug, Clone, Serialize)]
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

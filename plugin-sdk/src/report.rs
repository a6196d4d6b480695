//! The report a run returns: status, summary, metrics, findings, outputs.

use serde::{Deserialize, Serialize};

/// The verdict of a run, with the Nagios meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Everything checked is as it should be.
    Ok,
    /// Needs attention soon.
    Warning,
    /// Broken now.
    Critical,
    /// The check could not decide.
    Unknown,
}

impl Status {
    /// The worse of two statuses (`unknown` ranks below `critical` here: a
    /// definite failure outranks an indefinite one).
    pub fn worst(self, other: Status) -> Status {
        fn rank(s: Status) -> u8 {
            match s {
                Status::Ok => 0,
                Status::Unknown => 1,
                Status::Warning => 2,
                Status::Critical => 3,
            }
        }
        if rank(other) > rank(self) {
            other
        } else {
            self
        }
    }
}

/// How bad a failed rule or condition is, as a plugin's config says it:
/// `critical` (the default) or `warning`.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Failing makes the check critical.
    #[default]
    Critical,
    /// Failing makes the check warning.
    Warning,
}

impl Level {
    /// The status a failure at this level gives the check.
    pub fn status(self) -> Status {
        match self {
            Level::Critical => Status::Critical,
            Level::Warning => Status::Warning,
        }
    }
}

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing.
    Info,
    /// Minor.
    Low,
    /// Should be fixed.
    Medium,
    /// Should be fixed soon.
    High,
    /// Must be fixed now.
    Critical,
}

/// A measured number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    /// Prometheus-style name.
    pub name: String,
    /// The value.
    pub value: f64,
    /// Unit (`seconds`, `bytes`, ...), or empty.
    pub unit: String,
    /// Labels.
    pub labels: Vec<(String, String)>,
}

impl Metric {
    /// A metric with no unit and no labels.
    pub fn new(name: impl Into<String>, value: f64) -> Self {
        Metric {
            name: name.into(),
            value,
            unit: String::new(),
            labels: Vec::new(),
        }
    }

    /// Sets the unit.
    pub fn unit(mut self, unit: impl Into<String>) -> Self {
        self.unit = unit.into();
        self
    }

    /// Adds a label.
    pub fn label(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.push((name.into(), value.into()));
        self
    }
}

/// A specific problem found by a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// Stable identity across runs.
    pub fingerprint: String,
    /// Rule or class that produced it.
    pub rule: String,
    /// How serious it is.
    pub severity: Severity,
    /// One line, never containing a secret.
    pub message: String,
    /// Where it is.
    pub location: Option<String>,
    /// Further details.
    pub attributes: Vec<(String, String)>,
}

impl Finding {
    /// A finding with no location or attributes.
    pub fn new(
        fingerprint: impl Into<String>,
        rule: impl Into<String>,
        severity: Severity,
        message: impl Into<String>,
    ) -> Self {
        Finding {
            fingerprint: fingerprint.into(),
            rule: rule.into(),
            severity,
            message: message.into(),
            location: None,
            attributes: Vec::new(),
        }
    }

    /// Sets the location.
    pub fn location(mut self, location: impl Into<String>) -> Self {
        self.location = Some(location.into());
        self
    }

    /// Adds an attribute.
    pub fn attribute(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.attributes.push((name.into(), value.into()));
        self
    }
}

/// A published value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Output {
    /// `[A-Z_][A-Z0-9_]*`.
    pub key: String,
    /// The value.
    pub value: String,
}

/// What a run found. Built with chained calls:
///
/// ```
/// # use warden_plugin_sdk::*;
/// let report = Report::new(Status::Ok, "3 endpoints healthy")
///     .metric(Metric::new("endpoints_healthy", 3.0))
///     .output("SOLANA_RPC_URL", "https://rpc.example.com");
/// assert_eq!(report.outputs.len(), 1);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Overall verdict.
    pub status: Status,
    /// One line.
    pub summary: String,
    /// Measurements.
    pub metrics: Vec<Metric>,
    /// Problems.
    pub findings: Vec<Finding>,
    /// Published values.
    pub outputs: Vec<Output>,
}

impl Report {
    /// A report with a status and summary.
    pub fn new(status: Status, summary: impl Into<String>) -> Self {
        Report {
            status,
            summary: summary.into(),
            metrics: Vec::new(),
            findings: Vec::new(),
            outputs: Vec::new(),
        }
    }

    /// `Report::new(Status::Ok, summary)`.
    pub fn ok(summary: impl Into<String>) -> Self {
        Self::new(Status::Ok, summary)
    }

    /// Adds a metric.
    pub fn metric(mut self, metric: Metric) -> Self {
        self.metrics.push(metric);
        self
    }

    /// Names the run's probe target (a URL, a host): every metric added so
    /// far without an `instance` label gets `instance = target`, with
    /// credentials masked, as Prometheus' multi-target exporters label
    /// probes. The agent then labels the check's own series with it too.
    /// Call it after the metrics are added.
    pub fn instance(mut self, target: &str) -> Self {
        let target = crate::redact::url(target);
        for m in &mut self.metrics {
            if !m.labels.iter().any(|(k, _)| k == "instance") {
                m.labels.push(("instance".into(), target.clone()));
            }
        }
        self
    }

    /// Adds a finding.
    pub fn finding(mut self, finding: Finding) -> Self {
        self.findings.push(finding);
        self
    }

    /// Publishes an output.
    pub fn output(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.outputs.push(Output {
            key: key.into(),
            value: value.into(),
        });
        self
    }

    /// Raises the status to at least `status` (see [`Status::worst`]).
    pub fn escalate(mut self, status: Status) -> Self {
        self.status = self.status.worst(status);
        self
    }
}

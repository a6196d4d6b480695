//! `http-health`: what operators' runbooks ask of HTTP services.
//!
//! One check runs one of four modes, chosen by its config:
//!
//! - **probe** (`url` + `conditions`): one request, Gatus-style conditions
//!   ([`conditions`]) each reported individually, blackbox-exporter metric
//!   names (`probe_success`, `probe_duration_seconds`,
//!   `probe_http_status_code`, `probe_condition_success`);
//! - **cors** (`cors`): requests with `Origin` (and optionally a preflight)
//!   verifying that allowed origins are echoed exactly and others get no
//!   `Access-Control-Allow-Origin`, and that `*` is never combined with
//!   credentials;
//! - **flow** (`flow`): a sequence of steps where later steps use values
//!   captured from earlier responses (`{{name}}`), with expected error codes;
//! - **metrics** (`metrics`): a JSON or Prometheus endpoint, rules over it
//!   in a PromQL subset ([`promql`]: `rate`, `increase`,
//!   `histogram_quantile`, `*_over_time`, `offset`, `sum by`) over the
//!   scrapes kept in the check's state ([`history`]), held `for` a window.
//!
//! Secrets come from granted environment variables as `${env:NAME}` in URLs,
//! headers and bodies; reports and logs only ever show the template.

pub mod conditions;
mod cursor;
pub mod history;
pub mod jsonpath;
mod modes;
pub mod predicate;
pub mod prometheus;
pub mod promql;

use std::collections::BTreeMap;

use serde_json::Value;
use warden_plugin_sdk::prelude::*;

pub use modes::run;
pub use modes::{CorsSpec, MetricsSpec, RuleSpec, StepSpec};

/// How bad a failed condition or rule is (the SDK's, shared with other
/// plugins).
pub use warden_plugin_sdk::Level;

/// A condition, plain (`"[STATUS] == 200"`) or with a level.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ConditionSpec {
    /// Critical when it fails.
    Plain(String),
    /// With an explicit level.
    Detailed {
        /// The condition.
        condition: String,
        /// `critical` (default) or `warning`.
        #[serde(default)]
        level: Level,
    },
}

impl ConditionSpec {
    /// Text and level.
    pub fn parts(&self) -> (&str, Level) {
        match self {
            ConditionSpec::Plain(c) => (c, Level::Critical),
            ConditionSpec::Detailed { condition, level } => (condition, *level),
        }
    }
}

/// One HTTP request.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestSpec {
    /// Absolute URL; may contain `${env:NAME}` and, in flows, `{{capture}}`.
    pub url: String,
    /// Method (default GET).
    #[serde(default)]
    pub method: Option<String>,
    /// Headers; values may contain `${env:NAME}` and `{{capture}}`.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// A text body.
    #[serde(default)]
    pub body: Option<String>,
    /// A JSON body (sets content-type).
    #[serde(default)]
    pub json: Option<Value>,
    /// Timeout (`5s`, `500ms`; default 10s).
    #[serde(default)]
    pub timeout: Option<String>,
    /// Follow redirects (default true, at most 10).
    #[serde(default)]
    pub follow_redirects: Option<bool>,
    /// Require the final URL to be https (true) or http (false).
    #[serde(default)]
    pub expect_tls: Option<bool>,
}

/// The check's `config` table.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Probe mode: the URL.
    #[serde(default)]
    pub url: Option<String>,
    /// Probe mode: method.
    #[serde(default)]
    pub method: Option<String>,
    /// Probe mode: headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Probe mode: text body.
    #[serde(default)]
    pub body: Option<String>,
    /// Probe mode: JSON body.
    #[serde(default)]
    pub json: Option<Value>,
    /// Probe mode: timeout.
    #[serde(default)]
    pub timeout: Option<String>,
    /// Probe mode: follow redirects (default true).
    #[serde(default)]
    pub follow_redirects: Option<bool>,
    /// Probe mode: require https (true) or http (false) at the end.
    #[serde(default)]
    pub expect_tls: Option<bool>,
    /// Probe mode: conditions (default `[STATUS] < 400`).
    #[serde(default)]
    pub conditions: Vec<ConditionSpec>,
    /// Probe mode: values of the response published as the check's
    /// outputs, `{ ABUSIVE_KEY = "[BODY].abusive_key" }` (`[BODY]...` or
    /// `[HEADER].name`; one that is absent or null is not published), for
    /// other checks and actions to use as `${output:CHECK.KEY}`.
    #[serde(default)]
    pub outputs: BTreeMap<String, String>,
    /// CORS mode.
    #[serde(default)]
    pub cors: Option<CorsSpec>,
    /// Flow mode.
    #[serde(default)]
    pub flow: Option<Vec<StepSpec>>,
    /// Metrics mode.
    #[serde(default)]
    pub metrics: Option<MetricsSpec>,
}

impl Config {
    /// The probe-mode request.
    pub fn probe_request(&self) -> Option<RequestSpec> {
        Some(RequestSpec {
            url: self.url.clone()?,
            method: self.method.clone(),
            headers: self.headers.clone(),
            body: self.body.clone(),
            json: self.json.clone(),
            timeout: self.timeout.clone(),
            follow_redirects: self.follow_redirects,
            expect_tls: self.expect_tls,
        })
    }
}

/// The plugin.
pub struct HttpHealth;

impl Plugin for HttpHealth {
    type Config = Config;

    fn info() -> PluginInfo {
        PluginInfo::new("http-health", env!("CARGO_PKG_VERSION"))
            .description(
                "HTTP health, latency, JSON and header conditions, CORS, auth flows with captures, \
                 and metric thresholds over JSON or Prometheus endpoints.",
            )
            .default_schedule("@every 30s")
            .capability(Capability::Http)
            .capability(Capability::Environment)
            .capability(Capability::State)
    }

    fn validate(c: &Config) -> Result<(), String> {
        modes::validate(c)
    }

    fn run(ctx: &mut Context<Config>) -> Result<Report, Error> {
        modes::run(ctx)
    }
}

warden_plugin_sdk::export!(HttpHealth);

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
//! - **metrics** (`metrics`): numbers read from a JSON or Prometheus
//!   endpoint, rules over them ([`expr`]) held for a window (`for = "5m"`)
//!   using the check's state.
//!
//! Secrets come from granted environment variables as `${env:NAME}` in URLs,
//! headers and bodies; reports and logs only ever show the template.

pub mod conditions;
pub mod expr;
pub mod jsonpath;
mod modes;
pub mod prometheus;

use std::collections::BTreeMap;

use serde_json::Value;
use warden_plugin_sdk::prelude::*;

pub use modes::run;

/// How bad a failed condition or rule is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Failing makes the check critical.
    #[default]
    Critical,
    /// Failing makes the check warning.
    Warning,
}

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

/// The `cors` mode.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CorsSpec {
    /// The endpoint a browser would call.
    pub url: String,
    /// The method the browser would use (default GET).
    #[serde(default)]
    pub method: Option<String>,
    /// Origins that must be echoed exactly (`https://app.example.com`).
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// Origins that must get no `Access-Control-Allow-Origin`.
    #[serde(default)]
    pub denied_origins: Vec<String>,
    /// Also send an `OPTIONS` preflight per origin.
    #[serde(default)]
    pub preflight: bool,
    /// Headers to send (e.g. a token for authenticated endpoints).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Timeout per request.
    #[serde(default)]
    pub timeout: Option<String>,
}

/// One step of a flow.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StepSpec {
    /// Name shown in the report.
    pub name: String,
    /// The request.
    #[serde(flatten)]
    pub request: RequestSpec,
    /// Values to capture for later steps: `{ challenge = "[BODY].challenge" }`.
    #[serde(default)]
    pub capture: BTreeMap<String, String>,
    /// Conditions this step must meet (default `[STATUS] < 400` unless an
    /// error is expected).
    #[serde(default)]
    pub conditions: Vec<ConditionSpec>,
    /// The structured error code the response must carry
    /// (`{"error":{"code":"..."}}`).
    #[serde(default)]
    pub expect_error: Option<String>,
}

/// The `metrics` mode.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MetricsSpec {
    /// The endpoint.
    pub url: String,
    /// `json` or `prometheus` (default: from the content type).
    #[serde(default)]
    pub format: Option<String>,
    /// Headers to send.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Named numbers: a JSON path (`[BODY].errors`) or a Prometheus selector
    /// (`http_requests_total{code="500"}`, summed over matching series).
    pub values: BTreeMap<String, String>,
    /// Rules over the values.
    pub rules: Vec<RuleSpec>,
    /// Window over which `avg(name)` is computed (default 1h).
    #[serde(default)]
    pub average_window: Option<String>,
    /// Timeout.
    #[serde(default)]
    pub timeout: Option<String>,
}

/// A rule of the `metrics` mode.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// Name shown in the report.
    pub name: String,
    /// `errors / total > 0.01`.
    pub expr: String,
    /// Fire only once it has held this long (`5m`); default at once.
    #[serde(default, rename = "for")]
    pub hold: Option<String>,
    /// `critical` (default) or `warning`.
    #[serde(default)]
    pub level: Level,
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

fn check_request(field: &str, r: &RequestSpec) -> Result<(), String> {
    let url = r.url.replace("{{", "").replace("}}", "");
    if !(url.starts_with("http://") || url.starts_with("https://") || url.starts_with("${env:")) {
        return Err(format!(
            "{field}.url: {:?} must start with http:// or https://",
            r.url
        ));
    }
    if r.body.is_some() && r.json.is_some() {
        return Err(format!("{field}: set body or json, not both"));
    }
    if let Some(t) = &r.timeout {
        modes::parse_timeout(t).map_err(|e| format!("{field}.timeout: {e}"))?;
    }
    Ok(())
}

fn check_conditions(field: &str, list: &[ConditionSpec]) -> Result<(), String> {
    for (i, c) in list.iter().enumerate() {
        conditions::Condition::parse(c.parts().0).map_err(|e| format!("{field}[{i}]: {e}"))?;
    }
    Ok(())
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
        let modes = [
            c.url.is_some(),
            c.cors.is_some(),
            c.flow.is_some(),
            c.metrics.is_some(),
        ];
        match modes.iter().filter(|m| **m).count() {
            0 => return Err("config: set one of url (probe), cors, flow or metrics".into()),
            1 => {}
            _ => {
                return Err(
                    "config: url, cors, flow and metrics are separate modes; set only one".into(),
                );
            }
        }
        if let Some(r) = c.probe_request() {
            check_request("config", &r)?;
        }
        check_conditions("config.conditions", &c.conditions)?;
        if let Some(cors) = &c.cors {
            if cors.allowed_origins.is_empty() && cors.denied_origins.is_empty() {
                return Err("config.cors: list allowed_origins and/or denied_origins".into());
            }
            for (i, o) in cors
                .allowed_origins
                .iter()
                .chain(&cors.denied_origins)
                .enumerate()
            {
                if !(o.starts_with("http://") || o.starts_with("https://")) || o.ends_with('/') {
                    return Err(format!(
                        "config.cors origin #{i} {o:?}: an origin is scheme://host[:port]"
                    ));
                }
            }
        }
        if let Some(steps) = &c.flow {
            if steps.is_empty() {
                return Err("config.flow: needs at least one step".into());
            }
            for (i, s) in steps.iter().enumerate() {
                let field = format!("config.flow[{i}]");
                check_request(&field, &s.request)?;
                check_conditions(&format!("{field}.conditions"), &s.conditions)?;
                for (name, expr) in &s.capture {
                    let probe = format!("{expr} == x");
                    conditions::Condition::parse(&probe)
                        .map_err(|e| format!("{field}.capture.{name}: {e}"))?;
                }
            }
        }
        if let Some(m) = &c.metrics {
            if let Some(f) = &m.format
                && f != "json"
                && f != "prometheus"
            {
                return Err(format!(
                    "config.metrics.format: {f:?} is not json or prometheus"
                ));
            }
            for (name, source) in &m.values {
                if let Some(path) = source.strip_prefix("[BODY]") {
                    jsonpath::parse(path)
                        .map_err(|e| format!("config.metrics.values.{name}: {e}"))?;
                } else {
                    prometheus::Selector::parse(source)
                        .map_err(|e| format!("config.metrics.values.{name}: {e}"))?;
                }
            }
            for (i, r) in m.rules.iter().enumerate() {
                let rule = expr::Rule::parse(&r.expr)
                    .map_err(|e| format!("config.metrics.rules[{i}]: {e}"))?;
                for n in rule.names() {
                    if !m.values.contains_key(&n) {
                        return Err(format!(
                            "config.metrics.rules[{i}]: {n:?} is not one of the values"
                        ));
                    }
                }
                if let Some(h) = &r.hold {
                    modes::parse_timeout(h)
                        .map_err(|e| format!("config.metrics.rules[{i}].for: {e}"))?;
                }
            }
        }
        Ok(())
    }

    fn run(ctx: &mut Context<Config>) -> Result<Report, Error> {
        modes::run(ctx)
    }
}

warden_plugin_sdk::export!(HttpHealth);

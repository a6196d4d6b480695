//! Running the four modes, one module each ([`probe`], [`cors`], [`flow`],
//! [`metrics`]), with its config, its part of `validate` and its tests.
//! What they share lives here: building and sending a request (with
//! `${env:}` and `{{capture}}` expanded in one pass and redirects
//! followed), what a response looks like to conditions, and evaluating
//! conditions. Everything is plain logic over the SDK's HTTP and state
//! APIs, so it runs unchanged against test doubles.

mod cors;
mod flow;
mod metrics;
mod probe;

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use warden_plugin_sdk::http::{HttpError, Request, Response};
use warden_plugin_sdk::prelude::*;
use warden_plugin_sdk::template::{self, Placeholder};

use crate::conditions::{self, Condition, Observation};
use crate::{ConditionSpec, Config, RequestSpec};

pub use cors::CorsSpec;
pub use flow::StepSpec;
pub use metrics::{MetricsSpec, RuleSpec};

const MAX_REDIRECTS: usize = 10;
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Parses `5s`, `500ms`, `2m`, `1h` (the grammar every Warden config
/// uses); a timeout must be positive.
pub fn parse_timeout(s: &str) -> Result<Duration, String> {
    warden_plugin_sdk::units::parse_duration(s)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("{s:?} is not a duration like 5s or 500ms"))
}

/// Replaces `${env:NAME}` with the granted variable and `{{name}}` with a
/// captured value, in one pass.
pub(super) fn expand<C>(
    ctx: &Context<C>,
    template: &str,
    captures: &BTreeMap<String, String>,
) -> Result<String, Error> {
    template::expand(template, true, |p| match p {
        Placeholder::Env(name) => ctx.env(name),
        Placeholder::Capture(name) => captures.get(name).cloned(),
    })
    .map_err(Error::msg)
}

pub(super) fn expand_json<C>(
    ctx: &Context<C>,
    v: &Value,
    captures: &BTreeMap<String, String>,
) -> Result<Value, Error> {
    Ok(match v {
        Value::String(s) => Value::String(expand(ctx, s, captures)?),
        Value::Array(a) => Value::Array(
            a.iter()
                .map(|x| expand_json(ctx, x, captures))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| Ok((k.clone(), expand_json(ctx, x, captures)?)))
                .collect::<Result<_, Error>>()?,
        ),
        other => other.clone(),
    })
}

/// One request's result, with what the report may show.
pub(super) struct Exchange {
    /// The URL template (never the expanded secrets).
    shown: String,
    result: Result<Response, HttpError>,
    /// Final URL after redirects (expanded; not shown).
    final_url: String,
    redirects: usize,
}

pub(super) fn resolve_location(base: &str, location: &str) -> String {
    if location.starts_with("http://") || location.starts_with("https://") {
        return location.to_string();
    }
    let (scheme, rest) = base.split_once("://").unwrap_or(("http", base));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if location.starts_with('/') {
        format!("{scheme}://{authority}{location}")
    } else {
        let path = &rest[authority.len()..];
        let dir = path.rfind('/').map(|i| &path[..=i]).unwrap_or("/");
        format!("{scheme}://{authority}{dir}{location}")
    }
}

pub(super) fn send<C>(
    ctx: &Context<C>,
    spec: &RequestSpec,
    captures: &BTreeMap<String, String>,
    extra: &[(&str, &str)],
) -> Result<Exchange, Error> {
    let mut method = spec
        .method
        .clone()
        .unwrap_or_else(|| "GET".into())
        .to_ascii_uppercase();
    let mut url = expand(ctx, &spec.url, captures)?;
    let timeout = spec
        .timeout
        .as_deref()
        .map(parse_timeout)
        .transpose()
        .map_err(Error::msg)?
        .unwrap_or(DEFAULT_TIMEOUT);
    let mut req = Request::new(method.clone(), url.clone()).timeout(timeout);
    for (k, v) in &spec.headers {
        req = req.header(k.clone(), expand(ctx, v, captures)?);
    }
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    if let Some(json) = &spec.json {
        req = req.json(&expand_json(ctx, json, captures)?);
    } else if let Some(body) = &spec.body {
        req = req.body(expand(ctx, body, captures)?);
    }
    let follow = spec.follow_redirects.unwrap_or(true);
    let mut redirects = 0;
    loop {
        let result = ctx.http().send(&req);
        let location = match &result {
            Ok(r) if follow && matches!(r.status, 301 | 302 | 303 | 307 | 308) => {
                r.header("location").map(str::to_string)
            }
            _ => None,
        };
        match location {
            Some(loc) if redirects < MAX_REDIRECTS => {
                redirects += 1;
                url = resolve_location(&url, &loc);
                let status = result.as_ref().map(|r| r.status).unwrap_or(0);
                if status == 303 || ((status == 301 || status == 302) && method == "POST") {
                    method = "GET".into();
                    req.body.clear();
                }
                req.method = method.clone();
                req.url = url.clone();
            }
            _ => {
                return Ok(Exchange {
                    shown: spec.url.clone(),
                    result,
                    final_url: url,
                    redirects,
                });
            }
        }
    }
}

/// What conditions see of a response received by a run due at `scheduled`.
pub(super) fn observe(resp: &Response, scheduled: std::time::SystemTime) -> Observation {
    Observation {
        status: Some(resp.status),
        response_time_ms: resp.elapsed.as_secs_f64() * 1000.0,
        body: resp.text(),
        headers: resp.headers.clone(),
        cert_expires_in_seconds: None,
        now_unix_seconds: scheduled
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0),
        captures: BTreeMap::new(),
    }
}

/// A denial by the sandbox is a configuration problem (unknown), not the
/// service being down (critical).
pub(super) fn denial(e: &HttpError) -> Option<Error> {
    matches!(e, HttpError::Denied { .. } | HttpError::InvalidUrl(_))
        .then(|| Error::msg(e.to_string()))
}

pub(super) fn redact_error(e: &HttpError, shown: &str) -> String {
    match e {
        HttpError::Timeout { .. } => format!("{shown}: timed out"),
        HttpError::Connect { reason, .. } => format!("{shown}: cannot connect ({reason})"),
        HttpError::BodyTooLarge { .. } => format!("{shown}: response body over the agent's cap"),
        HttpError::Other { reason, .. } => format!("{shown}: {reason}"),
        other => format!("{shown}: {other}"),
    }
}

pub(super) fn default_conditions(list: &[ConditionSpec]) -> Vec<ConditionSpec> {
    if list.is_empty() {
        vec![ConditionSpec::Plain("[STATUS] < 400".into())]
    } else {
        list.to_vec()
    }
}

/// Evaluates conditions; returns (worst status, failures, per-condition metrics).
pub(super) fn evaluate(
    list: &[ConditionSpec],
    o: &Observation,
) -> Result<(Status, Vec<String>, Vec<Metric>), Error> {
    let mut status = Status::Ok;
    let mut failures = Vec::new();
    let mut metrics = Vec::new();
    for spec in list {
        let (text, level) = spec.parts();
        let c = Condition::parse(text).map_err(Error::msg)?;
        let v = c.evaluate(o);
        metrics.push(
            Metric::new("probe_condition_success", if v.ok { 1.0 } else { 0.0 })
                .label("condition", text),
        );
        if !v.ok {
            status = status.worst(level.status());
            failures.push(format!("{text} (got {})", v.actual));
        }
    }
    Ok((status, failures, metrics))
}

pub(super) fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// Runs the configured mode; its metrics carry the target as `instance`
/// (the URL as configured, credentials masked; a flow's first step's).
pub fn run(ctx: &mut Context<Config>) -> Result<Report, Error> {
    let config = ctx.config.clone();
    if let Some(spec) = config.probe_request() {
        return Ok(probe::run(ctx, &spec, &config.conditions)?.instance(&spec.url));
    }
    if let Some(cors) = &config.cors {
        return Ok(cors::run(ctx, cors)?.instance(&cors.url));
    }
    if let Some(steps) = &config.flow {
        let first = steps
            .first()
            .map(|s| s.request.url.clone())
            .unwrap_or_default();
        return Ok(flow::run(ctx, steps)?.instance(&first));
    }
    if let Some(m) = &config.metrics {
        return Ok(metrics::run(ctx, m)?.instance(&m.url));
    }
    Err(Error::msg("no mode configured"))
}

/// Checks a config: exactly one mode, then each mode's own part.
pub(crate) fn validate(c: &Config) -> Result<(), String> {
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
    probe::validate(c)?;
    if let Some(spec) = &c.cors {
        cors::validate(spec)?;
    }
    if let Some(steps) = &c.flow {
        flow::validate(steps)?;
    }
    if let Some(m) = &c.metrics {
        metrics::validate(m)?;
    }
    Ok(())
}

pub(super) fn check_request(field: &str, r: &RequestSpec) -> Result<(), String> {
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
        parse_timeout(t).map_err(|e| format!("{field}.timeout: {e}"))?;
    }
    Ok(())
}

pub(super) fn check_conditions(field: &str, list: &[ConditionSpec]) -> Result<(), String> {
    for (i, c) in list.iter().enumerate() {
        conditions::Condition::parse(c.parts().0).map_err(|e| format!("{field}[{i}]: {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod test_support {
    use warden_plugin_sdk::http::Response;
    use warden_plugin_sdk::testing::MockHttp;

    use crate::Config;

    pub(crate) fn config(json: serde_json::Value) -> Config {
        let text = json.to_string();
        warden_plugin_sdk::parse_config::<crate::HttpHealth>(&text)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    pub(crate) fn with_headers(status: u16, body: &str, headers: &[(&str, &str)]) -> Response {
        let mut r = MockHttp::reply(status, body);
        r.headers = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        r
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn invalid_configs_name_the_field() {
        for (json, why) in [
            (serde_json::json!({}), "set one of"),
            (serde_json::json!({"url": "ftp://x"}), "config.url"),
            (
                serde_json::json!({"url": "http://x", "conditions": ["[STATUS] = 200"]}),
                "config.conditions[0]",
            ),
            (
                serde_json::json!({"url": "http://x", "cors": {"url": "http://x", "allowed_origins": ["a"]}}),
                "separate modes",
            ),
            (
                serde_json::json!({"cors": {"url": "http://x", "allowed_origins": ["https://a/"]}}),
                "origin",
            ),
            (serde_json::json!({"flow": []}), "at least one step"),
            (
                serde_json::json!({"metrics": {"url": "http://x", "values": {"a": "[BODY].a"}, "rules": [{"name": "r", "expr": "b > 1"}]}}),
                "not one of the values",
            ),
            (
                serde_json::json!({"url": "http://x", "timeout": "soon"}),
                "config.timeout",
            ),
            (
                serde_json::json!({"metrics": {"url": "http://x", "values": {"a": "[BODY].a"}, "rules": [{"name": "r", "expr": "a > 3 * avg(a)"}]}}),
                "avg_over_time(a[1h] offset 10m)",
            ),
            (
                serde_json::json!({"metrics": {"url": "http://x", "values": {"a": "[BODY].a"}, "average_window": "1h", "rules": [{"name": "r", "expr": "a > 1"}]}}),
                "config.metrics.average_window: removed",
            ),
            (
                serde_json::json!({"metrics": {"url": "http://x", "format": "prometheus", "rules": [{"name": "r", "expr": "rate(m[5m]) > 1 for 5m", "for": "1m"}]}}),
                "both in expr and a field",
            ),
            (
                serde_json::json!({"metrics": {"url": "http://x", "format": "prometheus", "rules": [{"name": "r", "expr": "rate(m) > 1"}]}}),
                "config.metrics.rules[0]: rule \"rate(m) > 1\": rate() takes a range selector",
            ),
        ] {
            let e = warden_plugin_sdk::parse_config::<crate::HttpHealth>(&json.to_string())
                .unwrap_err();
            assert!(e.contains(why), "{json}: {e}");
        }
    }
}

/// The full (not shortened) text of a captured value.
pub(super) fn raw_value(o: &Observation, source: &str) -> Option<String> {
    if let Some(path) = source.strip_prefix("[BODY]") {
        let doc: Value = serde_json::from_str(&o.body).ok()?;
        let steps = crate::jsonpath::parse(path).ok()?;
        return crate::jsonpath::get(&doc, &steps).map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        });
    }
    if let Some(name) = source.strip_prefix("[HEADER].") {
        return o
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone());
    }
    None
}

//! Running the four modes. Everything here is plain logic over the SDK's
//! HTTP and state APIs, so it runs unchanged against test doubles.

use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

use serde_json::Value;
use warden_plugin_sdk::http::{HttpError, Request, Response};
use warden_plugin_sdk::prelude::*;

use crate::conditions::{Condition, Observation};
use crate::{
    ConditionSpec, Config, CorsSpec, Level, MetricsSpec, RequestSpec, StepSpec, expr, jsonpath,
    prometheus,
};

const MAX_REDIRECTS: usize = 10;
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Parses `5s`, `500ms`, `2m`, `1h`.
pub fn parse_timeout(s: &str) -> Result<Duration, String> {
    crate::conditions::duration_seconds(s)
        .filter(|d| *d > 0.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("{s:?} is not a duration like 5s or 500ms"))
}

/// Replaces `${env:NAME}` with the granted variable and `{{name}}` with a
/// captured value.
fn expand<C>(
    ctx: &Context<C>,
    template: &str,
    captures: &BTreeMap<String, String>,
) -> Result<String, Error> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    loop {
        let env_at = rest.find("${env:");
        let cap_at = rest.find("{{");
        let at = match (env_at, cap_at) {
            (None, None) => {
                out.push_str(rest);
                return Ok(out);
            }
            (Some(e), Some(c)) => e.min(c),
            (Some(e), None) => e,
            (None, Some(c)) => c,
        };
        out.push_str(&rest[..at]);
        if Some(at) == env_at {
            let end = rest[at..]
                .find('}')
                .ok_or_else(|| Error::msg(format!("unclosed ${{env:...}} in {template:?}")))?;
            let name = &rest[at + 6..at + end];
            let value = ctx.env(name).ok_or_else(|| {
                Error::msg(format!(
                    "environment variable {name} is not set or not granted (allow.env)"
                ))
            })?;
            out.push_str(&value);
            rest = &rest[at + end + 1..];
        } else {
            let end = rest[at..]
                .find("}}")
                .ok_or_else(|| Error::msg(format!("unclosed {{{{...}}}} in {template:?}")))?;
            let name = rest[at + 2..at + end].trim();
            let value = captures.get(name).ok_or_else(|| {
                Error::msg(format!(
                    "{{{{{name}}}}} was not captured by an earlier step"
                ))
            })?;
            out.push_str(value);
            rest = &rest[at + end + 2..];
        }
    }
}

fn expand_json<C>(
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
struct Exchange {
    /// The URL template (never the expanded secrets).
    shown: String,
    result: Result<Response, HttpError>,
    /// Final URL after redirects (expanded; not shown).
    final_url: String,
    redirects: usize,
}

fn resolve_location(base: &str, location: &str) -> String {
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

fn send<C>(
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

fn observe(resp: &Response) -> Observation {
    Observation {
        status: Some(resp.status),
        response_time_ms: resp.elapsed.as_secs_f64() * 1000.0,
        body: resp.text(),
        headers: resp.headers.clone(),
        cert_expires_in_seconds: None,
    }
}

/// A denial by the sandbox is a configuration problem (unknown), not the
/// service being down (critical).
fn denial(e: &HttpError) -> Option<Error> {
    matches!(e, HttpError::Denied { .. } | HttpError::InvalidUrl(_))
        .then(|| Error::msg(e.to_string()))
}

fn redact_error(e: &HttpError, shown: &str) -> String {
    match e {
        HttpError::Timeout { .. } => format!("{shown}: timed out"),
        HttpError::Connect { reason, .. } => format!("{shown}: cannot connect ({reason})"),
        HttpError::BodyTooLarge { .. } => format!("{shown}: response body over the agent's cap"),
        HttpError::Other { reason, .. } => format!("{shown}: {reason}"),
        other => format!("{shown}: {other}"),
    }
}

fn level_status(level: Level) -> Status {
    match level {
        Level::Critical => Status::Critical,
        Level::Warning => Status::Warning,
    }
}

/// Runs the configured mode.
pub fn run(ctx: &mut Context<Config>) -> Result<Report, Error> {
    let config = ctx.config.clone();
    if let Some(spec) = config.probe_request() {
        return probe(ctx, &spec, &config.conditions);
    }
    if let Some(cors) = &config.cors {
        return cors_check(ctx, cors);
    }
    if let Some(steps) = &config.flow {
        return flow(ctx, steps);
    }
    if let Some(m) = &config.metrics {
        return metrics(ctx, m);
    }
    Err(Error::msg("no mode configured"))
}

fn default_conditions(list: &[ConditionSpec]) -> Vec<ConditionSpec> {
    if list.is_empty() {
        vec![ConditionSpec::Plain("[STATUS] < 400".into())]
    } else {
        list.to_vec()
    }
}

/// Evaluates conditions; returns (worst status, failures, per-condition metrics).
fn evaluate(
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
            status = status.worst(level_status(level));
            failures.push(format!("{text} (got {})", v.actual));
        }
    }
    Ok((status, failures, metrics))
}

fn probe(
    ctx: &mut Context<Config>,
    spec: &RequestSpec,
    conditions: &[ConditionSpec],
) -> Result<Report, Error> {
    let ex = send(ctx, spec, &BTreeMap::new(), &[])?;
    let method = spec
        .method
        .clone()
        .unwrap_or_else(|| "GET".into())
        .to_ascii_uppercase();
    let resp = match ex.result {
        Err(e) => {
            if let Some(err) = denial(&e) {
                return Err(err);
            }
            return Ok(Report::new(
                Status::Critical,
                format!("{method} {}", redact_error(&e, &ex.shown)),
            )
            .metric(Metric::new("probe_success", 0.0))
            .metric(Metric::new("probe_http_status_code", 0.0)));
        }
        Ok(r) => r,
    };
    let mut o = observe(&resp);
    // Certificates: for https (the blackbox metric) and whenever a
    // condition reads [CERTIFICATE_EXPIRATION].
    let wants_cert = conditions
        .iter()
        .any(|c| Condition::parse(c.parts().0).is_ok_and(|c| c.needs_certificate()));
    let mut tls_metrics = Vec::new();
    let mut tls_error = None;
    if wants_cert || ex.final_url.starts_with("https://") {
        match ctx.tls().peer_certificates(&ex.final_url) {
            Ok(peer) => {
                let now = ctx
                    .scheduled
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_secs() as i64)
                    .unwrap_or(0);
                if let Some(earliest) = peer.earliest_expiry() {
                    o.cert_expires_in_seconds = Some((earliest - now) as f64);
                    tls_metrics.push(
                        Metric::new("probe_ssl_earliest_cert_expiry", earliest as f64)
                            .unit("seconds"),
                    );
                }
                tls_metrics.push(Metric::new(
                    "probe_tls_verified",
                    if peer.verified { 1.0 } else { 0.0 },
                ));
            }
            Err(e) => tls_error = Some(e),
        }
    }
    let (mut status, mut failures, cond_metrics) = evaluate(&default_conditions(conditions), &o)?;
    if let (true, Some(e)) = (wants_cert, &tls_error) {
        failures.push(format!("certificate unavailable: {e}"));
    }
    if let Some(tls) = spec.expect_tls {
        let is_tls = ex.final_url.starts_with("https://");
        if tls != is_tls {
            status = Status::Critical;
            failures.push(if tls {
                "expected TLS but ended on http".into()
            } else {
                "expected plain HTTP but ended on https".into()
            });
        }
    }
    let summary = if failures.is_empty() {
        format!(
            "{method} {} answered {} in {:.0} ms",
            ex.shown, resp.status, o.response_time_ms
        )
    } else {
        format!(
            "{method} {}: {} failed: {}",
            ex.shown,
            plural(failures.len(), "condition"),
            failures.join("; ")
        )
    };
    let mut report = Report::new(status, summary)
        .metric(Metric::new(
            "probe_success",
            if status == Status::Ok { 1.0 } else { 0.0 },
        ))
        .metric(Metric::new("probe_duration_seconds", resp.elapsed.as_secs_f64()).unit("seconds"))
        .metric(Metric::new(
            "probe_http_status_code",
            f64::from(resp.status),
        ))
        .metric(Metric::new("probe_http_redirects", ex.redirects as f64))
        .metric(Metric::new("probe_http_content_length", resp.body.len() as f64).unit("bytes"));
    for m in cond_metrics.into_iter().chain(tls_metrics) {
        report = report.metric(m);
    }
    Ok(report)
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

fn cors_check(ctx: &mut Context<Config>, cors: &CorsSpec) -> Result<Report, Error> {
    let method = cors
        .method
        .clone()
        .unwrap_or_else(|| "GET".into())
        .to_ascii_uppercase();
    let base = RequestSpec {
        url: cors.url.clone(),
        method: Some(method.clone()),
        headers: cors.headers.clone(),
        timeout: cors.timeout.clone(),
        follow_redirects: Some(false),
        ..RequestSpec::default()
    };
    let preflight_spec = RequestSpec {
        method: Some("OPTIONS".into()),
        ..base.clone()
    };
    let mut report = Report::ok("");
    let mut problems = Vec::new();
    let cases = cors
        .allowed_origins
        .iter()
        .map(|o| (o, true))
        .chain(cors.denied_origins.iter().map(|o| (o, false)));
    let mut checked = 0;
    let mut elapsed = Duration::ZERO;
    let mut last_status = 0u16;
    for (origin, allowed) in cases {
        let mut exchanges = vec![(
            "request",
            send(ctx, &base, &BTreeMap::new(), &[("origin", origin.as_str())])?,
        )];
        if cors.preflight {
            exchanges.push((
                "preflight",
                send(
                    ctx,
                    &preflight_spec,
                    &BTreeMap::new(),
                    &[
                        ("origin", origin.as_str()),
                        ("access-control-request-method", method.as_str()),
                    ],
                )?,
            ));
        }
        for (kind, ex) in exchanges {
            checked += 1;
            let resp = match ex.result {
                Ok(r) => r,
                Err(e) => {
                    if let Some(err) = denial(&e) {
                        return Err(err);
                    }
                    problems.push((origin.clone(), kind, redact_error(&e, &ex.shown)));
                    continue;
                }
            };
            elapsed += resp.elapsed;
            last_status = resp.status;
            let acao = resp.header("access-control-allow-origin").map(str::trim);
            let credentials = resp
                .header("access-control-allow-credentials")
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
            let mut why = None;
            if acao == Some("*") && credentials {
                why = Some(
                    "answers Access-Control-Allow-Origin: * together with Allow-Credentials: true"
                        .to_string(),
                );
            } else if allowed {
                match acao {
                    Some(a) if a == origin => {
                        if kind == "preflight" {
                            let methods = resp.header("access-control-allow-methods").unwrap_or("");
                            let ok = methods
                                .split(',')
                                .any(|m| m.trim() == "*" || m.trim().eq_ignore_ascii_case(&method));
                            if !ok {
                                why = Some(format!(
                                    "preflight does not allow {method} (Allow-Methods: {methods:?})"
                                ));
                            }
                        }
                    }
                    Some(a) => {
                        why = Some(format!(
                            "Access-Control-Allow-Origin is {a:?}, not the exact origin"
                        ))
                    }
                    None => {
                        why = Some("no Access-Control-Allow-Origin for an allowed origin".into())
                    }
                }
            } else if let Some(a) = acao {
                why = Some(format!(
                    "a denied origin gets Access-Control-Allow-Origin: {a:?}"
                ));
            }
            report = report.metric(
                Metric::new("cors_origin_ok", if why.is_none() { 1.0 } else { 0.0 })
                    .label("origin", origin.clone())
                    .label("expected", if allowed { "allowed" } else { "denied" })
                    .label("kind", kind),
            );
            if let Some(why) = why {
                problems.push((origin.clone(), kind, why));
            }
        }
    }
    for (origin, kind, why) in &problems {
        report = report.finding(
            Finding::new(
                format!("cors:{origin}:{kind}"),
                "cors",
                Severity::High,
                format!("{origin} ({kind}): {why}"),
            )
            .location(cors.url.clone()),
        );
    }
    report.status = if problems.is_empty() {
        Status::Ok
    } else {
        Status::Critical
    };
    report.summary = if problems.is_empty() {
        format!(
            "CORS on {} correct for {} origins ({} requests)",
            cors.url,
            cors.allowed_origins.len() + cors.denied_origins.len(),
            checked
        )
    } else {
        let first = &problems[0];
        format!(
            "CORS on {}: {} ({}: {})",
            cors.url,
            plural(problems.len(), "problem"),
            first.0,
            first.2
        )
    };
    Ok(report
        .metric(Metric::new("probe_duration_seconds", elapsed.as_secs_f64()).unit("seconds"))
        .metric(Metric::new(
            "probe_http_status_code",
            f64::from(last_status),
        ))
        .metric(Metric::new(
            "probe_success",
            if problems.is_empty() { 1.0 } else { 0.0 },
        )))
}

/// The `error.code` of a structured error body, if any.
fn error_code(body: &str) -> Option<String> {
    let v: Value = serde_json::from_str(body).ok()?;
    let code = v
        .get("error")
        .and_then(|e| e.get("code").or(Some(e)))
        .or_else(|| v.get("code"))?;
    code.as_str().map(str::to_string)
}

fn flow(ctx: &mut Context<Config>, steps: &[StepSpec]) -> Result<Report, Error> {
    let mut captures: BTreeMap<String, String> = BTreeMap::new();
    let mut report = Report::ok("");
    let mut total_ms = 0.0;
    let mut last_status = 0u16;
    for (i, step) in steps.iter().enumerate() {
        let n = i + 1;
        let method = step
            .request
            .method
            .clone()
            .unwrap_or_else(|| "GET".into())
            .to_ascii_uppercase();
        let failed = |why: String| {
            format!(
                "flow failed at step {n} of {} ({}): {method} {}: {why}",
                steps.len(),
                step.name,
                step.request.url
            )
        };
        let ex = match send(ctx, &step.request, &captures, &[]) {
            Ok(ex) => ex,
            // A missing capture or env var: the flow cannot continue.
            Err(e) => {
                return Ok(fail_flow(
                    report,
                    (total_ms, last_status),
                    n,
                    &step.name,
                    failed(e.to_string()),
                ));
            }
        };
        let resp = match ex.result {
            Ok(r) => r,
            Err(e) => {
                if let Some(err) = denial(&e) {
                    return Err(err);
                }
                return Ok(fail_flow(
                    report,
                    (total_ms, last_status),
                    n,
                    &step.name,
                    failed(redact_error(&e, "request")),
                ));
            }
        };
        let o = observe(&resp);
        total_ms += o.response_time_ms;
        last_status = resp.status;
        if let Some(expected) = &step.expect_error {
            match error_code(&o.body) {
                Some(code) if code == *expected => {}
                Some(code) => {
                    return Ok(fail_flow(
                        report,
                        (total_ms, last_status),
                        n,
                        &step.name,
                        failed(format!(
                            "expected error code {expected:?}, got {code:?} (status {})",
                            resp.status
                        )),
                    ));
                }
                None => {
                    return Ok(fail_flow(
                        report,
                        (total_ms, last_status),
                        n,
                        &step.name,
                        failed(format!(
                            "expected error code {expected:?}, got status {} without one",
                            resp.status
                        )),
                    ));
                }
            }
        }
        let conditions = if step.conditions.is_empty() && step.expect_error.is_none() {
            default_conditions(&[])
        } else {
            step.conditions.clone()
        };
        let (status, failures, _) = evaluate(&conditions, &o)?;
        if status != Status::Ok {
            let mut r = fail_flow(
                report,
                (total_ms, last_status),
                n,
                &step.name,
                failed(failures.join("; ")),
            );
            r.status = status;
            return Ok(r);
        }
        for (name, source) in &step.capture {
            let c = Condition::parse(&format!("{source} == x")).map_err(Error::msg)?;
            let v = c.evaluate(&o);
            if v.actual == "(absent)" {
                return Ok(fail_flow(
                    report,
                    (total_ms, last_status),
                    n,
                    &step.name,
                    failed(format!("capture {name}: {source} is absent")),
                ));
            }
            captures.insert(name.clone(), raw_value(&o, source).unwrap_or(v.actual));
        }
        report =
            report.metric(Metric::new("flow_step_success", 1.0).label("step", step.name.clone()));
    }
    report.summary = format!(
        "flow of {} passed in {total_ms:.0} ms",
        plural(steps.len(), "step")
    );
    Ok(report
        .metric(Metric::new("probe_success", 1.0))
        .metric(Metric::new("probe_duration_seconds", total_ms / 1000.0).unit("seconds"))
        .metric(Metric::new(
            "probe_http_status_code",
            f64::from(last_status),
        )))
}

/// The full (not shortened) text of a captured value.
fn raw_value(o: &Observation, source: &str) -> Option<String> {
    if let Some(path) = source.strip_prefix("[BODY]") {
        let doc: Value = serde_json::from_str(&o.body).ok()?;
        let steps = jsonpath::parse(path).ok()?;
        return jsonpath::get(&doc, &steps).map(|v| match v {
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

fn fail_flow(
    report: Report,
    (total_ms, last_status): (f64, u16),
    step: usize,
    name: &str,
    why: String,
) -> Report {
    let mut r = report
        .metric(Metric::new("probe_duration_seconds", total_ms / 1000.0).unit("seconds"))
        .metric(Metric::new(
            "probe_http_status_code",
            f64::from(last_status),
        ))
        .metric(Metric::new("flow_step_success", 0.0).label("step", name.to_string()))
        .metric(Metric::new("flow_failed_step", step as f64))
        .metric(Metric::new("probe_success", 0.0));
    r.status = Status::Critical;
    r.summary = why;
    r
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct MetricsState {
    /// (time ms, values) of earlier runs, within the average window.
    history: Vec<(u64, BTreeMap<String, f64>)>,
    /// Rule name -> since when (ms) it has held.
    holding: BTreeMap<String, u64>,
}

fn metrics(ctx: &mut Context<Config>, m: &MetricsSpec) -> Result<Report, Error> {
    let spec = RequestSpec {
        url: m.url.clone(),
        headers: m.headers.clone(),
        timeout: m.timeout.clone(),
        ..RequestSpec::default()
    };
    let ex = send(ctx, &spec, &BTreeMap::new(), &[])?;
    let resp = match ex.result {
        Ok(r) if r.is_success() => r,
        Ok(r) => return Err(Error::msg(format!("{} answered {}", m.url, r.status))),
        Err(e) => {
            if let Some(err) = denial(&e) {
                return Err(err);
            }
            return Err(Error::msg(redact_error(&e, &m.url)));
        }
    };
    let body = resp.text();
    let json = match m.format.as_deref() {
        Some(f) => f == "json",
        None => resp
            .header("content-type")
            .is_some_and(|c| c.contains("json")),
    };
    let doc: Option<Value> = if json {
        serde_json::from_str(&body).ok()
    } else {
        None
    };
    let mut values = BTreeMap::new();
    for (name, source) in &m.values {
        let v = if let Some(path) = source.strip_prefix("[BODY]") {
            let doc = doc
                .as_ref()
                .ok_or_else(|| Error::msg(format!("{} did not return JSON", m.url)))?;
            let steps = jsonpath::parse(path).map_err(Error::msg)?;
            jsonpath::get(doc, &steps).and_then(|v| {
                v.as_f64()
                    .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            })
        } else {
            prometheus::Selector::parse(source)
                .map_err(Error::msg)?
                .value(&body)
        };
        let v =
            v.ok_or_else(|| Error::msg(format!("value {name} ({source}) not found at {}", m.url)))?;
        values.insert(name.clone(), v);
    }

    let now = ctx
        .scheduled
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let window = m
        .average_window
        .as_deref()
        .map(parse_timeout)
        .transpose()
        .map_err(Error::msg)?
        .unwrap_or(Duration::from_secs(3600));
    let mut state: MetricsState = ctx.state().get("metrics")?.unwrap_or_default();
    state
        .history
        .retain(|(t, _)| now.saturating_sub(*t) <= window.as_millis() as u64 && *t < now);
    let mut averages = BTreeMap::new();
    for name in values.keys() {
        let past: Vec<f64> = state
            .history
            .iter()
            .filter_map(|(_, v)| v.get(name).copied())
            .collect();
        if !past.is_empty() {
            averages.insert(name.clone(), past.iter().sum::<f64>() / past.len() as f64);
        }
    }

    let mut report = Report::ok("")
        .metric(Metric::new(
            "probe_http_status_code",
            f64::from(resp.status),
        ))
        .metric(Metric::new("probe_duration_seconds", resp.elapsed.as_secs_f64()).unit("seconds"));
    for (name, v) in &values {
        report = report.metric(Metric::new("http_health_value", *v).label("name", name.clone()));
    }
    let mut firing = Vec::new();
    let mut pending = Vec::new();
    for rule in &m.rules {
        let parsed = expr::Rule::parse(&rule.expr).map_err(Error::msg)?;
        let hold = rule
            .hold
            .as_deref()
            .map(parse_timeout)
            .transpose()
            .map_err(Error::msg)?
            .unwrap_or(Duration::ZERO);
        let result = parsed.eval(&values, &averages);
        let holds = result.is_some_and(|(h, _)| h);
        if let Some((_, lhs)) = result {
            report = report.metric(
                Metric::new("http_health_rule_value", lhs).label("rule", rule.name.clone()),
            );
        }
        let fires = if holds {
            let since = *state.holding.entry(rule.name.clone()).or_insert(now);
            let held = Duration::from_millis(now.saturating_sub(since));
            if held >= hold {
                true
            } else {
                pending.push(format!(
                    "{} (holding for {}s of {}s)",
                    rule.name,
                    held.as_secs(),
                    hold.as_secs()
                ));
                false
            }
        } else {
            state.holding.remove(&rule.name);
            false
        };
        report = report.metric(
            Metric::new("http_health_rule_firing", if fires { 1.0 } else { 0.0 })
                .label("rule", rule.name.clone()),
        );
        if fires {
            report.status = report.status.worst(level_status(rule.level));
            let shown = result.map(|(_, l)| format!("{l:.4}")).unwrap_or_default();
            firing.push(format!("{}: {} (left side {shown})", rule.name, rule.expr));
        }
    }
    state.history.push((now, values.clone()));
    ctx.state().set("metrics", &state)?;
    report = report.metric(Metric::new(
        "probe_success",
        if firing.is_empty() { 1.0 } else { 0.0 },
    ));
    report.summary = if !firing.is_empty() {
        format!(
            "{} firing: {}",
            plural(firing.len(), "rule"),
            firing.join("; ")
        )
    } else if !pending.is_empty() {
        format!("all rules quiet; pending: {}", pending.join("; "))
    } else {
        format!(
            "{} quiet over {}",
            plural(m.rules.len(), "rule"),
            plural(values.len(), "value")
        )
    };
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::SystemTime;
    use warden_plugin_sdk::testing::{MemoryState, MockHttp, TestContext};

    fn config(json: Value) -> Config {
        let text = json.to_string();
        warden_plugin_sdk::parse_config::<crate::HttpHealth>(&text)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn with_headers(status: u16, body: &str, headers: &[(&str, &str)]) -> Response {
        let mut r = MockHttp::reply(status, body);
        r.headers = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        r
    }

    #[test]
    fn probe_reports_each_condition_and_blackbox_metrics() {
        let http = MockHttp::new().route("GET", "http://svc/health", |_| {
            with_headers(
                200,
                r#"{"status":"ok","items":[1]}"#,
                &[("content-type", "application/json")],
            )
        });
        let c = config(
            serde_json::json!({"url": "http://svc/health", "conditions": [
                "[STATUS] == 200", "[BODY].status == ok", {"condition": "len([BODY].items) > 3", "level": "warning"}
            ]}),
        );
        let mut ctx = TestContext::new(c).http(http).build();
        let r = run(&mut ctx).unwrap();
        assert_eq!(r.status, Status::Warning, "{r:?}");
        assert!(
            r.summary.contains("len([BODY].items) > 3 (got 1)"),
            "{}",
            r.summary
        );
        let cond: Vec<_> = r
            .metrics
            .iter()
            .filter(|m| m.name == "probe_condition_success")
            .collect();
        assert_eq!(cond.len(), 3);
        for name in [
            "probe_success",
            "probe_duration_seconds",
            "probe_http_status_code",
        ] {
            assert!(r.metrics.iter().any(|m| m.name == name), "{name}");
        }
    }

    #[test]
    fn secrets_from_env_never_reach_the_report() {
        let http =
            Arc::new(
                MockHttp::new().route("GET", "http://svc/v1/status?key=s3cr3t", |req| {
                    assert_eq!(
                        req.headers[0],
                        ("Authorization".to_string(), "Bearer t0k3n".to_string())
                    );
                    MockHttp::reply(500, "err")
                }),
            );
        let c = config(serde_json::json!({
            "url": "http://svc/v1/status?key=${env:KEY}",
            "headers": {"Authorization": "Bearer ${env:TOKEN}"}
        }));
        let mut ctx = TestContext::new(c)
            .http(http.clone())
            .env("KEY", "s3cr3t")
            .env("TOKEN", "t0k3n")
            .build();
        let r = run(&mut ctx).unwrap();
        assert_eq!(r.status, Status::Critical);
        let text = format!("{r:?}");
        assert!(
            !text.contains("s3cr3t") && !text.contains("t0k3n"),
            "{text}"
        );
        assert!(r.summary.contains("${env:KEY}"), "{}", r.summary);
        // An ungranted variable is an error naming it.
        let c = config(serde_json::json!({"url": "http://svc/?k=${env:MISSING}"}));
        let mut ctx = TestContext::new(c).build();
        assert!(run(&mut ctx).unwrap_err().message().contains("MISSING"));
    }

    #[test]
    fn certificate_expiry_condition_and_metric() {
        use warden_plugin_sdk::tls::{Certificate, Peer};
        let t0 = SystemTime::now();
        let now = t0.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
        let peer = Peer {
            chain: vec![
                Certificate {
                    subject: "CN=svc".into(),
                    issuer: "CN=ca".into(),
                    not_before: now - 86400,
                    not_after: now + 10 * 86400,
                },
                Certificate {
                    subject: "CN=ca".into(),
                    issuer: "CN=ca".into(),
                    not_before: now - 86400,
                    not_after: now + 900 * 86400,
                },
            ],
            verified: true,
            verify_error: None,
        };
        let http = || MockHttp::new().route("GET", "https://svc/", |_| MockHttp::reply(200, "ok"));
        let cfg =
            |cond: &str| config(serde_json::json!({"url": "https://svc/", "conditions": [cond]}));
        let mut ctx = TestContext::new(cfg("[CERTIFICATE_EXPIRATION] > 168h"))
            .http(http())
            .tls(peer.clone())
            .at(t0)
            .build();
        let r = run(&mut ctx).unwrap();
        assert_eq!(r.status, Status::Ok, "{r:?}");
        let m = r
            .metrics
            .iter()
            .find(|m| m.name == "probe_ssl_earliest_cert_expiry")
            .unwrap();
        assert_eq!(m.value, (now + 10 * 86400) as f64);
        let mut ctx = TestContext::new(cfg("[CERTIFICATE_EXPIRATION] > 30d"))
            .http(http())
            .tls(peer)
            .at(t0)
            .build();
        assert_eq!(run(&mut ctx).unwrap().status, Status::Critical);
        // Without the capability's answer the condition fails and says why.
        let mut ctx = TestContext::new(cfg("[CERTIFICATE_EXPIRATION] > 1d"))
            .http(http())
            .at(t0)
            .build();
        let r = run(&mut ctx).unwrap();
        assert_eq!(r.status, Status::Critical);
        assert!(
            r.summary.contains("certificate unavailable"),
            "{}",
            r.summary
        );
    }

    #[test]
    fn redirects_are_followed_or_not() {
        let http = Arc::new(
            MockHttp::new()
                .route("GET", "http://svc/old", |_| {
                    with_headers(301, "", &[("location", "/new")])
                })
                .route("GET", "http://svc/new", |_| MockHttp::reply(200, "ok")),
        );
        let c =
            config(serde_json::json!({"url": "http://svc/old", "conditions": ["[STATUS] == 200"]}));
        let mut ctx = TestContext::new(c).http(http.clone()).build();
        let r = run(&mut ctx).unwrap();
        assert_eq!(r.status, Status::Ok, "{r:?}");
        let c = config(
            serde_json::json!({"url": "http://svc/old", "follow_redirects": false, "conditions": ["[STATUS] == 200"]}),
        );
        let mut ctx = TestContext::new(c).http(http).build();
        assert_eq!(run(&mut ctx).unwrap().status, Status::Critical);
    }

    #[test]
    fn unreachable_is_critical_and_denied_is_unknown() {
        let http = MockHttp::new().fail(
            "GET",
            "http://svc/",
            HttpError::Timeout {
                url: "http://svc/".into(),
            },
        );
        let mut ctx = TestContext::new(config(serde_json::json!({"url": "http://svc/"})))
            .http(http)
            .build();
        let r = run(&mut ctx).unwrap();
        assert_eq!(r.status, Status::Critical);
        assert!(r.summary.contains("timed out"));
        let mut ctx = TestContext::new(config(serde_json::json!({"url": "http://other/"}))).build();
        assert!(run(&mut ctx).is_err());
    }

    #[test]
    fn cors_right_and_wrong() {
        let good = |req: &Request| {
            let origin = req
                .headers
                .iter()
                .find(|(k, _)| k == "origin")
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            if origin == "https://app.example.com" {
                with_headers(
                    200,
                    "",
                    &[
                        ("access-control-allow-origin", &origin),
                        ("access-control-allow-methods", "GET, POST"),
                    ],
                )
            } else {
                MockHttp::reply(200, "")
            }
        };
        let c = config(serde_json::json!({"cors": {
            "url": "http://api/v1/items", "allowed_origins": ["https://app.example.com"],
            "denied_origins": ["https://evil.example.com"], "preflight": true
        }}));
        let http = MockHttp::new()
            .route("GET", "http://api/v1/items", good)
            .route("OPTIONS", "http://api/v1/items", good);
        let mut ctx = TestContext::new(c.clone()).http(http).build();
        let r = run(&mut ctx).unwrap();
        assert_eq!(r.status, Status::Ok, "{r:?}");

        // Wildcard with credentials, and a denied origin let in.
        let bad = |_: &Request| {
            with_headers(
                200,
                "",
                &[
                    ("access-control-allow-origin", "*"),
                    ("access-control-allow-credentials", "true"),
                ],
            )
        };
        let http = MockHttp::new()
            .route("GET", "http://api/v1/items", bad)
            .route("OPTIONS", "http://api/v1/items", bad);
        let mut ctx = TestContext::new(c).http(http).build();
        let r = run(&mut ctx).unwrap();
        assert_eq!(r.status, Status::Critical);
        assert!(
            r.findings
                .iter()
                .any(|f| f.message.contains("Allow-Credentials")),
            "{r:?}"
        );
        assert_eq!(r.findings.len(), 4);
    }

    fn challenge_server(replay_ok: bool) -> MockHttp {
        MockHttp::new()
            .route("POST", "http://auth/challenge", |_| {
                MockHttp::reply(200, r#"{"challenge":"abc123"}"#)
            })
            .route("POST", "http://auth/refresh/abc123", |_| {
                MockHttp::reply(200, r#"{"challenge":"def456"}"#)
            })
            .route("POST", "http://auth/verify", move |req| {
                let body = String::from_utf8_lossy(&req.body).to_string();
                if body.contains("def456") && !replay_ok {
                    MockHttp::reply(409, r#"{"error":{"code":"challenge_replayed"}}"#)
                } else {
                    MockHttp::reply(200, r#"{"ok":true}"#)
                }
            })
    }

    fn flow_config() -> Config {
        config(serde_json::json!({"flow": [
            {"name": "issue", "method": "POST", "url": "http://auth/challenge", "capture": {"challenge": "[BODY].challenge"}},
            {"name": "refresh", "method": "POST", "url": "http://auth/refresh/{{challenge}}", "capture": {"challenge": "[BODY].challenge"}},
            {"name": "replay", "method": "POST", "url": "http://auth/verify", "json": {"challenge": "{{challenge}}"},
             "expect_error": "challenge_replayed"}
        ]}))
    }

    #[test]
    fn flows_capture_and_expect_errors() {
        let mut ctx = TestContext::new(flow_config())
            .http(challenge_server(false))
            .build();
        let r = run(&mut ctx).unwrap();
        assert_eq!(r.status, Status::Ok, "{r:?}");
        let mut ctx = TestContext::new(flow_config())
            .http(challenge_server(true))
            .build();
        let r = run(&mut ctx).unwrap();
        assert_eq!(r.status, Status::Critical);
        assert!(
            r.summary.starts_with("flow failed at step 3 of 3 (replay)"),
            "{}",
            r.summary
        );
        assert!(
            r.summary
                .contains("expected error code \"challenge_replayed\""),
            "{}",
            r.summary
        );
        // Failing at step 2.
        let http = MockHttp::new().route("POST", "http://auth/challenge", |_| {
            MockHttp::reply(200, r#"{"challenge":"abc123"}"#)
        });
        let mut ctx = TestContext::new(flow_config()).http(http).build();
        assert!(
            run(&mut ctx).is_err(),
            "a request the grants deny is unknown"
        );
        let http = MockHttp::new()
            .route("POST", "http://auth/challenge", |_| {
                MockHttp::reply(200, r#"{"challenge":"abc123"}"#)
            })
            .route("POST", "http://auth/refresh/abc123", |_| {
                MockHttp::reply(500, "boom")
            });
        let mut ctx = TestContext::new(flow_config()).http(http).build();
        let r = run(&mut ctx).unwrap();
        assert!(
            r.summary
                .starts_with("flow failed at step 2 of 3 (refresh)")
                && r.summary.contains("[STATUS] < 400 (got 500)"),
            "{}",
            r.summary
        );
        let http = MockHttp::new().route("POST", "http://auth/challenge", |_| {
            MockHttp::reply(200, r#"{"nothing":1}"#)
        });
        let mut ctx = TestContext::new(flow_config()).http(http).build();
        let r = run(&mut ctx).unwrap();
        assert!(
            r.summary.contains("step 1 of 3 (issue)") && r.summary.contains("capture challenge"),
            "{}",
            r.summary
        );
    }

    #[test]
    fn metric_rules_hold_over_a_window() {
        let c = config(serde_json::json!({"metrics": {
            "url": "http://app/metrics", "format": "prometheus",
            "values": {"errors": "publish_total{result=\"error\"}", "total": "publish_total"},
            "rules": [{"name": "publish-errors", "expr": "errors / total > 0.01", "for": "5m"}]
        }}));
        let state = Arc::new(MemoryState::new());
        let t0 = SystemTime::now();
        let at = |secs: u64, errors: u64| {
            let body = format!(
                "publish_total{{result=\"ok\"}} 1000\npublish_total{{result=\"error\"}} {errors}\n"
            );
            let http = MockHttp::new().route("GET", "http://app/metrics", move |_| {
                MockHttp::reply(200, body.clone())
            });
            let mut ctx = TestContext::new(c.clone())
                .http(http)
                .state(state.clone())
                .at(t0 + Duration::from_secs(secs))
                .build();
            run(&mut ctx).unwrap()
        };
        assert_eq!(at(0, 50).status, Status::Ok, "starts holding");
        let r = at(120, 50);
        assert_eq!(r.status, Status::Ok);
        assert!(r.summary.contains("pending"), "{}", r.summary);
        assert_eq!(at(300, 50).status, Status::Critical, "held 5m: firing");
        assert_eq!(at(360, 1).status, Status::Ok, "below the threshold: quiet");
        assert_eq!(at(420, 50).status, Status::Ok, "the window starts again");
    }

    #[test]
    fn spikes_against_the_recent_average() {
        let c = config(serde_json::json!({"metrics": {
            "url": "http://app/stats", "format": "json",
            "values": {"auth_failures": "[BODY].auth.failures"},
            "rules": [{"name": "auth-spike", "expr": "auth_failures > 3 * avg(auth_failures)", "level": "warning"}]
        }}));
        let state = Arc::new(MemoryState::new());
        let t0 = SystemTime::now();
        let at = |secs: u64, n: u64| {
            let body = format!(r#"{{"auth":{{"failures":{n}}}}}"#);
            let http = MockHttp::new().route("GET", "http://app/stats", move |_| {
                MockHttp::reply(200, body.clone())
            });
            let mut ctx = TestContext::new(c.clone())
                .http(http)
                .state(state.clone())
                .at(t0 + Duration::from_secs(secs))
                .build();
            run(&mut ctx).unwrap().status
        };
        for i in 0..5 {
            assert_eq!(at(i * 60, 10), Status::Ok);
        }
        assert_eq!(at(300, 45), Status::Warning);
    }

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
        ] {
            let e = warden_plugin_sdk::parse_config::<crate::HttpHealth>(&json.to_string())
                .unwrap_err();
            assert!(e.contains(why), "{json}: {e}");
        }
    }
}

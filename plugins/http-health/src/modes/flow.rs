//! Flow mode (`flow`): a sequence of steps where later steps use values
//! captured from earlier responses (`{{name}}`), with expected structured
//! error codes.

use std::collections::BTreeMap;

use serde_json::Value;
use warden_plugin_sdk::prelude::*;

use super::{
    check_conditions, check_request, default_conditions, denial, evaluate, observe, plural,
    redact_error, send,
};
use crate::conditions::{self, Condition, Observation};
use crate::{ConditionSpec, Config, RequestSpec, jsonpath};

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

/// Flow mode's part of `validate`.
pub(super) fn validate(steps: &[StepSpec]) -> Result<(), String> {
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
    Ok(())
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

pub(super) fn run(ctx: &mut Context<Config>, steps: &[StepSpec]) -> Result<Report, Error> {
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

#[cfg(test)]
mod tests {

    use warden_plugin_sdk::testing::{MockHttp, TestContext};

    use super::super::run;
    use super::super::test_support::config;
    use super::*;

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
}

//! Flow mode (`flow`): a sequence of steps where later steps use values
//! captured from earlier responses (`{{name}}`), with expected structured
//! error codes.

use std::collections::BTreeMap;

use serde_json::Value;
use warden_plugin_sdk::prelude::*;
use warden_plugin_sdk::template;
use warden_plugin_sdk::units::{format_duration, format_duration_human};

use super::{
    check_conditions, check_request, default_conditions, denial, evaluate, observe, parse_timeout,
    plural, raw_value, redact_error, send,
};
use crate::conditions::{self, Condition};
use crate::{ConditionSpec, Config, RequestSpec};

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
    /// Wait this long before the step's request (`31s`: let a challenge
    /// expire); at most [`MAX_WAIT`], and within the check's timeout.
    #[serde(default)]
    pub wait: Option<String>,
}

/// The longest `wait` of one step.
pub const MAX_WAIT: std::time::Duration = std::time::Duration::from_secs(300);

/// Flow mode's part of `validate`.
pub(super) fn validate(steps: &[StepSpec]) -> Result<(), String> {
    if steps.is_empty() {
        return Err("config.flow: needs at least one step".into());
    }
    let mut captured: Vec<&str> = Vec::new();
    for (i, s) in steps.iter().enumerate() {
        let field = format!("config.flow[{i}]");
        check_request(&field, &s.request)?;
        check_conditions(&format!("{field}.conditions"), &s.conditions)?;
        if let Some(w) = &s.wait {
            let d = parse_timeout(w).map_err(|e| format!("{field}.wait: {e}"))?;
            if d > MAX_WAIT {
                return Err(format!(
                    "{field}.wait: {w} is over the maximum of {}",
                    format_duration(MAX_WAIT)
                ));
            }
        }
        // Every `{{name}}` is captured by an earlier step.
        let mut reads: Vec<(String, String)> = Vec::new();
        let mut texts = vec![("url".to_string(), s.request.url.clone())];
        texts.extend(
            s.request
                .headers
                .iter()
                .map(|(k, v)| (format!("headers.{k}"), v.clone())),
        );
        if let Some(b) = &s.request.body {
            texts.push(("body".into(), b.clone()));
        }
        if let Some(j) = &s.request.json {
            texts.push(("json".into(), j.to_string()));
        }
        for (where_, t) in texts {
            reads.extend(
                template::captures(&t)
                    .into_iter()
                    .map(|n| (where_.clone(), n)),
            );
        }
        for (j, c) in s.conditions.iter().enumerate() {
            if let Ok(c) = Condition::parse(c.parts().0) {
                reads.extend(
                    c.captures()
                        .into_iter()
                        .map(|n| (format!("conditions[{j}]"), n)),
                );
            }
        }
        for (where_, name) in reads {
            if !captured.contains(&name.as_str()) {
                return Err(format!(
                    "{field}.{where_}: {{{{{name}}}}} is not captured by an earlier step ({})",
                    if captured.is_empty() {
                        "none captures anything".to_string()
                    } else {
                        format!("captured: {}", captured.join(", "))
                    }
                ));
            }
        }
        for (name, expr) in &s.capture {
            let probe = format!("{expr} == x");
            conditions::Condition::parse(&probe)
                .map_err(|e| format!("{field}.capture.{name}: {e}"))?;
            captured.push(name);
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
        if let Some(w) = &step.wait {
            let d = parse_timeout(w).map_err(Error::msg)?;
            let left = ctx
                .deadline
                .duration_since(std::time::SystemTime::now())
                .unwrap_or_default();
            if d >= left {
                return Ok(fail_flow(
                    report,
                    (total_ms, last_status),
                    n,
                    &step.name,
                    failed(format!(
                        "wait {w} would outlast the check's timeout ({} left); raise the check's timeout",
                        format_duration_human(left.as_secs_f64())
                    )),
                ));
            }
            std::thread::sleep(d);
        }
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
        let mut o = observe(&resp, ctx.scheduled);
        o.captures = captures.clone();
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
            // The body's own reason, when it gives one, says more than
            // the status.
            let code = error_code(&o.body)
                .map(|c| format!(" (error code {c:?})"))
                .unwrap_or_default();
            let mut r = fail_flow(
                report,
                (total_ms, last_status),
                n,
                &step.name,
                failed(format!("{}{code}", failures.join("; "))),
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

    #[test]
    fn captures_from_headers_in_conditions_waits_and_error_codes() {
        let c = config(serde_json::json!({"flow": [
            {"name": "login", "method": "POST", "url": "http://auth/login",
             "capture": {"session": "[HEADER].x-session", "user": "[BODY].user.id"}},
            {"name": "let it expire", "wait": "50ms", "url": "http://auth/me",
             "headers": {"x-session": "{{session}}"},
             "conditions": ["[STATUS] == 200", "[BODY].id == {{user}}",
                            "any([BODY].roles, . == \"admin\") && [BODY].id == {{user}}"]}
        ]}));
        let server = |expired: bool| {
            MockHttp::new()
                .route("POST", "http://auth/login", |_| {
                    let mut r = MockHttp::reply(200, r#"{"user":{"id":"u7"}}"#);
                    r.headers = vec![("x-session".into(), "s-42".into())];
                    r
                })
                .route("GET", "http://auth/me", move |req| {
                    let session = req
                        .headers
                        .iter()
                        .any(|(k, v)| k == "x-session" && v == "s-42");
                    if expired || !session {
                        MockHttp::reply(401, r#"{"error":{"code":"session_expired"}}"#)
                    } else {
                        MockHttp::reply(200, r#"{"id":"u7","roles":["user","admin"]}"#)
                    }
                })
        };
        let started = std::time::Instant::now();
        let mut ctx = TestContext::new(c.clone()).http(server(false)).build();
        let r = run(&mut ctx).unwrap();
        assert_eq!(r.status, Status::Ok, "{}", r.summary);
        assert!(
            started.elapsed() >= std::time::Duration::from_millis(50),
            "waited"
        );
        let mut ctx = TestContext::new(c).http(server(true)).build();
        let r = run(&mut ctx).unwrap();
        assert!(
            r.summary.contains("[STATUS] == 200 (got 401)")
                && r.summary.contains("(error code \"session_expired\")"),
            "{}",
            r.summary
        );
    }

    #[test]
    fn unknown_captures_and_long_waits_are_refused() {
        for (flow, why) in [
            (
                serde_json::json!([{"name": "a", "url": "http://x/{{token}}"}]),
                "config.flow[0].url: {{token}} is not captured by an earlier step",
            ),
            (
                serde_json::json!([
                    {"name": "a", "url": "http://x/", "capture": {"id": "[BODY].id"}},
                    {"name": "b", "url": "http://x/", "conditions": ["[BODY].id == {{idd}}"]}
                ]),
                "config.flow[1].conditions[0]: {{idd}} is not captured by an earlier step (captured: id)",
            ),
            (
                serde_json::json!([{"name": "a", "url": "http://x/", "wait": "10m"}]),
                "config.flow[0].wait: 10m is over the maximum of 5m",
            ),
        ] {
            let e = warden_plugin_sdk::parse_config::<crate::HttpHealth>(
                &serde_json::json!({ "flow": flow }).to_string(),
            )
            .unwrap_err();
            assert!(e.contains(why), "{e}");
        }
        let e = warden_plugin_sdk::parse_config::<crate::HttpHealth>(
            &serde_json::json!({"url": "http://x/", "conditions": ["[BODY].a == {{b}}"]})
                .to_string(),
        )
        .unwrap_err();
        assert!(e.contains("a probe has none"), "{e}");
    }
}

//! Probe mode (`url` + `conditions`): one request, Gatus-style conditions
//! each reported individually, blackbox-exporter metric names
//! (`probe_success`, `probe_duration_seconds`, `probe_http_status_code`,
//! `probe_condition_success`), certificate expiry when asked for.

use std::collections::BTreeMap;
use std::time::UNIX_EPOCH;

use warden_plugin_sdk::prelude::*;

use super::{
    check_conditions, check_request, default_conditions, denial, evaluate, observe, plural,
    raw_value, redact_error, send,
};
use crate::conditions::Condition;
use crate::{ConditionSpec, Config, RequestSpec};

/// Probe mode's part of `validate`.
pub(super) fn validate(c: &Config) -> Result<(), String> {
    if let Some(r) = c.probe_request() {
        check_request("config", &r)?;
    }
    check_conditions("config.conditions", &c.conditions)?;
    if !c.outputs.is_empty() && c.url.is_none() {
        return Err("config.outputs: only probe mode (url) publishes outputs".into());
    }
    for (key, source) in &c.outputs {
        let valid_key = key.starts_with(|ch: char| ch.is_ascii_uppercase() || ch == '_')
            && key
                .chars()
                .all(|ch| ch.is_ascii_uppercase() || ch.is_ascii_digit() || ch == '_');
        if !valid_key {
            return Err(format!(
                "config.outputs.{key}: an output's name is [A-Z_][A-Z0-9_]* (it can be an env var)"
            ));
        }
        if !(source.starts_with("[BODY]") || source.starts_with("[HEADER].")) {
            return Err(format!(
                "config.outputs.{key}: {source:?}: publish [BODY]... or [HEADER].name"
            ));
        }
    }
    for (i, spec) in c.conditions.iter().enumerate() {
        if let Ok(cond) = Condition::parse(spec.parts().0)
            && let Some(name) = cond.captures().first()
        {
            return Err(format!(
                "config.conditions[{i}]: {{{{{name}}}}} is a flow's capture; a probe has none"
            ));
        }
    }
    Ok(())
}

pub(super) fn run(
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
    let mut o = observe(&resp, ctx.scheduled);
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
    for (key, source) in &ctx.config.outputs {
        if let Some(v) = raw_value(&o, source).filter(|v| v != "null") {
            report = report.output(key.clone(), v);
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::SystemTime;

    use warden_plugin_sdk::testing::{MockHttp, TestContext};

    use super::super::run;
    use super::super::test_support::{config, with_headers};
    use super::*;

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
}

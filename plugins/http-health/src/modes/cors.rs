//! CORS mode (`cors`): requests with `Origin` (and optionally a
//! preflight) verifying that allowed origins are echoed exactly and others
//! get no `Access-Control-Allow-Origin`, and that `*` is never combined
//! with credentials.

use std::collections::BTreeMap;
use std::time::Duration;

use warden_plugin_sdk::prelude::*;

use super::{denial, plural, redact_error, send};
use crate::{Config, RequestSpec};

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

/// CORS mode's part of `validate`.
pub(super) fn validate(cors: &CorsSpec) -> Result<(), String> {
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
    Ok(())
}

pub(super) fn run(ctx: &mut Context<Config>, cors: &CorsSpec) -> Result<Report, Error> {
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

#[cfg(test)]
mod tests {

    use warden_plugin_sdk::testing::{MockHttp, TestContext};

    use super::super::run;
    use super::super::test_support::{config, with_headers};
    use super::*;

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
}

//! `http-action`: the common runbook remedy as one `[[action]]` and no
//! custom plugin: an authenticated request to a service's admin API with a
//! templated JSON body and an expected status.
//!
//! ```toml
//! [[action]]
//! name = "reset-bucket"
//! plugin = "http-action"
//! on = { check = "auth-failures", status = ["critical"], state = "hard" }
//! config.url = "http://127.0.0.1:8080/v1/ops/rate-limits"
//! config.headers = { authorization = "Bearer ${env:ADMIN_TOKEN}" }
//! config.json = { key = "${output:auth-failures.ABUSIVE_KEY}" }
//! config.expect_status = [200, 204]
//! allow.hosts = ["http://127.0.0.1:8080"]
//! allow.env = ["ADMIN_TOKEN"]
//! ```
//!
//! The agent fills in `${output:…}` and `${trigger.…}` before the run;
//! `${env:NAME}` in the URL and headers is read here, from the variables
//! the action grants. In a dry run, and whenever it runs outside an
//! action (`warden check`), it sends nothing and reports what it would
//! send. Every request carries the action's idempotency key as
//! `Idempotency-Key` (unless the config sets that header itself), so a
//! service that honours it does a repeated firing once.

use std::collections::BTreeMap;
use std::time::Duration;

use warden_plugin_sdk::prelude::*;
use warden_plugin_sdk::{redact, template};

/// The action's `config` table.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the request goes (`${env:NAME}` allowed, e.g. an API key).
    pub url: String,
    /// The method (default `POST`).
    #[serde(default = "default_method")]
    pub method: String,
    /// Headers (`${env:NAME}` allowed in values: tokens).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// A JSON body (sent with `content-type: application/json`).
    #[serde(default)]
    pub json: Option<Value>,
    /// A raw body instead of `json`.
    #[serde(default)]
    pub body: Option<String>,
    /// The statuses that mean it worked (default: any 2xx).
    #[serde(default)]
    pub expect_status: Vec<u16>,
    /// Request timeout (default 10s).
    #[serde(default)]
    pub timeout: Option<String>,
}

fn default_method() -> String {
    "POST".into()
}

const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

/// The plugin.
pub struct HttpAction;

impl Config {
    fn expected(&self, status: u16) -> bool {
        if self.expect_status.is_empty() {
            (200..300).contains(&status)
        } else {
            self.expect_status.contains(&status)
        }
    }

    fn expectation(&self) -> String {
        if self.expect_status.is_empty() {
            "2xx".into()
        } else {
            let list: Vec<String> = self.expect_status.iter().map(u16::to_string).collect();
            list.join(" or ")
        }
    }

    fn body(&self) -> Option<Vec<u8>> {
        match (&self.json, &self.body) {
            (Some(v), _) => Some(serde_json::to_vec(v).unwrap_or_default()),
            (None, Some(b)) => Some(b.clone().into_bytes()),
            (None, None) => None,
        }
    }
}

impl Plugin for HttpAction {
    type Config = Config;
    const ACTS: bool = true;

    fn info() -> PluginInfo {
        PluginInfo::new("http-action", env!("CARGO_PKG_VERSION"))
            .description(
                "Sends one HTTP request for a runbook action (a templated JSON body, \
                 an expected status, the action's idempotency key); in a dry run it \
                 reports what it would send.",
            )
            .capability(Capability::Http)
            .capability(Capability::Environment)
    }

    fn validate(config: &Config) -> Result<(), String> {
        if !METHODS.contains(&config.method.to_ascii_uppercase().as_str()) {
            return Err(format!(
                "config.method: {:?} is not one of {}",
                config.method,
                METHODS.join(", ")
            ));
        }
        if !config.url.contains("${env:") {
            warden_plugin_sdk::http::split_url(&config.url)
                .map_err(|e| format!("config.url: {e}"))?;
        }
        if config.json.is_some() && config.body.is_some() {
            return Err("config.body: give json or body, not both".into());
        }
        if let Some(s) = config
            .expect_status
            .iter()
            .find(|s| !(100..600).contains(*s))
        {
            return Err(format!("config.expect_status: {s} is not an HTTP status"));
        }
        if let Some(t) = &config.timeout {
            warden_plugin_sdk::units::parse_duration(t)
                .map_err(|e| format!("config.timeout: {e}"))?;
        }
        for (name, value) in &config.headers {
            template::expand_env(value, |_| Some(String::new()))
                .map(|_| ())
                .map_err(|e| format!("config.headers.{name}: {e}"))?;
        }
        Ok(())
    }

    fn run(ctx: &mut Context<Config>) -> Result<Report, Error> {
        let c = &ctx.config;
        let method = c.method.to_ascii_uppercase();
        let url = ctx
            .expand_env(&c.url)
            .map_err(|e| Error::msg(format!("config.url: {e}")))?;
        let shown = format!("{method} {}", redact::url(&url));
        let body = c.body();
        let size = body.as_ref().map_or(0, Vec::len);
        let (dry_run, key) = match ctx.action() {
            Some(a) => (a.dry_run, Some(a.idempotency_key.clone())),
            None => (true, None),
        };
        if dry_run {
            let why = if key.is_some() {
                "dry run"
            } else {
                "not run by an action"
            };
            return Ok(Report::ok(format!(
                "{why}: would send {shown} ({size} bytes of body) and expect {}",
                c.expectation()
            )));
        }
        let timeout = c
            .timeout
            .as_deref()
            .and_then(|t| warden_plugin_sdk::units::parse_duration(t).ok())
            .unwrap_or(Duration::from_secs(10));
        let mut request = Request::new(method.clone(), url).timeout(timeout);
        for (name, value) in &c.headers {
            let value = ctx
                .expand_env(value)
                .map_err(|e| Error::msg(format!("config.headers.{name}: {e}")))?;
            request = request.header(name.clone(), value);
        }
        if let Some(key) = key
            && !c
                .headers
                .keys()
                .any(|h| h.eq_ignore_ascii_case("idempotency-key"))
        {
            request = request.header("Idempotency-Key", key);
        }
        if let Some(body) = body {
            if c.json.is_some()
                && !c
                    .headers
                    .keys()
                    .any(|h| h.eq_ignore_ascii_case("content-type"))
            {
                request = request.header("content-type", "application/json");
            }
            request = request.body(body);
        }
        let resp = ctx.http().send(&request)?;
        let report = if c.expected(resp.status) {
            Report::ok(format!("{shown} answered {}", resp.status))
        } else {
            let said = resp.text();
            let said = redact::words(said.trim());
            let said: String = said.chars().take(200).collect();
            Report::new(
                Status::Critical,
                format!(
                    "{shown} answered {}, expected {}{}",
                    resp.status,
                    c.expectation(),
                    if said.is_empty() {
                        String::new()
                    } else {
                        format!(": {said}")
                    }
                ),
            )
        };
        Ok(report
            .metric(Metric::new(
                "http_action_status_code",
                f64::from(resp.status),
            ))
            .metric(
                Metric::new("http_action_duration_seconds", resp.elapsed.as_secs_f64())
                    .unit("seconds"),
            ))
    }
}

warden_plugin_sdk::export!(HttpAction);

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use warden_plugin_sdk::Action;
    use warden_plugin_sdk::testing::{MockHttp, TestContext};

    fn config(json: Value) -> Config {
        serde_json::from_value(json).unwrap()
    }

    fn action(dry_run: bool) -> Action {
        Action {
            name: "reset".into(),
            idempotency_key: "act-7".into(),
            dry_run,
            trigger_check: "auth".into(),
            trigger_status: Status::Critical,
            trigger_summary: "abusive key".into(),
        }
    }

    #[test]
    fn sends_the_body_token_and_idempotency_key() {
        let http = Arc::new(MockHttp::new().route("POST", "http://admin/v1/reset", |_| {
            MockHttp::reply(204, "")
        }));
        let c = config(json!({
            "url": "http://admin/v1/reset",
            "headers": {"authorization": "Bearer ${env:TOKEN}"},
            "json": {"key": "k1"},
            "expect_status": [204]
        }));
        let mut ctx = TestContext::new(c)
            .http(ArcHttp(http.clone()))
            .env("TOKEN", "s3cr3t")
            .action(action(false))
            .build();
        let r = HttpAction::run(&mut ctx).unwrap();
        assert_eq!(r.status, Status::Ok, "{}", r.summary);
        assert_eq!(r.summary, "POST http://admin/v1/reset answered 204");
        let sent = &http.requests()[0];
        let header = |n: &str| {
            sent.headers
                .iter()
                .find(|(h, _)| h.eq_ignore_ascii_case(n))
                .map(|(_, v)| v.clone())
        };
        assert_eq!(header("authorization").as_deref(), Some("Bearer s3cr3t"));
        assert_eq!(header("idempotency-key").as_deref(), Some("act-7"));
        assert_eq!(header("content-type").as_deref(), Some("application/json"));
        assert_eq!(sent.body, br#"{"key":"k1"}"#);
    }

    #[test]
    fn an_unexpected_status_is_critical_with_what_the_service_said() {
        let http = MockHttp::new().route("POST", "http://admin/x", |_| {
            MockHttp::reply(409, r#"{"error":"locked"}"#)
        });
        let mut ctx = TestContext::new(config(json!({"url": "http://admin/x"})))
            .http(http)
            .action(action(false))
            .build();
        let r = HttpAction::run(&mut ctx).unwrap();
        assert_eq!(r.status, Status::Critical);
        assert!(
            r.summary
                .contains("answered 409, expected 2xx: {\"error\":\"locked\"}"),
            "{}",
            r.summary
        );
    }

    #[test]
    fn a_dry_run_or_a_plain_check_sends_nothing() {
        for act in [Some(action(true)), None] {
            let http = Arc::new(MockHttp::new());
            let c = config(json!({"url": "http://admin/x?api_key=abc", "method": "delete"}));
            let mut t = TestContext::new(c).http(ArcHttp(http.clone()));
            if let Some(a) = act.clone() {
                t = t.action(a);
            }
            let r = HttpAction::run(&mut t.build()).unwrap();
            assert_eq!(r.status, Status::Ok);
            assert!(r.summary.contains("would send DELETE"), "{}", r.summary);
            assert!(
                !r.summary.contains("abc"),
                "the key is redacted: {}",
                r.summary
            );
            assert!(http.requests().is_empty());
        }
    }

    #[test]
    fn bad_configs_name_the_field() {
        let bad = |j: Value| HttpAction::validate(&config(j)).unwrap_err();
        assert!(bad(json!({"url": "http://a/", "method": "BREW"})).starts_with("config.method"));
        assert!(bad(json!({"url": "nope"})).starts_with("config.url"));
        assert!(
            bad(json!({"url": "http://a/", "json": {}, "body": "x"})).starts_with("config.body")
        );
        assert!(
            bad(json!({"url": "http://a/", "expect_status": [42]}))
                .starts_with("config.expect_status")
        );
    }

    /// Shares one double between the context and the test.
    struct ArcHttp(Arc<MockHttp>);
    impl warden_plugin_sdk::http::Transport for ArcHttp {
        fn send(&self, r: &Request) -> Result<Response, HttpError> {
            self.0.send(r)
        }
    }
}

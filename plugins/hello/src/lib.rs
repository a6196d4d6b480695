//! `hello`: the smallest useful Warden plugin, and the one that exercises
//! the whole path: typed config, state across runs, an allowed environment
//! variable, logging, and an optional HTTP probe.
//!
//! ```toml
//! [[check]]
//! name = "hello"
//! plugin = "hello"
//! schedule = "@every 30s"
//! config = { greeting = "hi", url = "http://127.0.0.1:8080/health" }
//! allow.hosts = ["http://127.0.0.1:8080"]
//! ```

use warden_plugin_sdk::prelude::*;

/// The check's `config` table.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Word to greet with.
    #[serde(default = "default_greeting")]
    pub greeting: String,
    /// Optional URL to probe; 2xx is ok, anything else critical.
    #[serde(default)]
    pub url: Option<String>,
    /// Optional environment variable whose presence is reported (never its
    /// value).
    #[serde(default)]
    pub env: Option<String>,
}

fn default_greeting() -> String {
    "hello".into()
}

/// The plugin.
pub struct Hello;

impl Plugin for Hello {
    type Config = Config;

    fn info() -> PluginInfo {
        PluginInfo::new("hello", env!("CARGO_PKG_VERSION"))
            .description("Greets, counts its runs in state, and optionally probes a URL.")
            .default_schedule("@every 60s")
            .capability(Capability::Http)
            .capability(Capability::State)
            .capability(Capability::Environment)
    }

    fn validate(config: &Config) -> Result<(), String> {
        if config.greeting.trim().is_empty() {
            return Err("config.greeting: must not be empty".into());
        }
        if let Some(url) = &config.url {
            warden_plugin_sdk::http::split_url(url).map_err(|e| format!("config.url: {e}"))?;
        }
        Ok(())
    }

    fn run(ctx: &mut Context<Config>) -> Result<Report, Error> {
        let runs: u64 = ctx.state().get("runs")?.unwrap_or(0) + 1;
        ctx.state().set("runs", &runs)?;
        info!(
            "{} from check {} (run {runs})",
            ctx.config.greeting, ctx.check
        );

        let mut report = Report::ok(format!(
            "{}, {} (run {runs})",
            ctx.config.greeting, ctx.check
        ))
        .metric(Metric::new("hello_runs_total", runs as f64));
        if let Some(name) = &ctx.config.env {
            let present = ctx.env(name).is_some();
            report = report.metric(
                Metric::new("hello_env_present", f64::from(u8::from(present))).label("name", name),
            );
        }
        if let Some(url) = ctx.config.url.clone() {
            let resp = ctx.http().get(&url).send()?;
            report = report
                .metric(Metric::new(
                    "probe_http_status_code",
                    f64::from(resp.status),
                ))
                .metric(
                    Metric::new("probe_duration_seconds", resp.elapsed.as_secs_f64())
                        .unit("seconds"),
                );
            if !resp.is_success() {
                report.status = Status::Critical;
                report.summary = format!("{url} answered {}", resp.status);
            }
        }
        Ok(report)
    }
}

warden_plugin_sdk::export!(Hello);

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use warden_plugin_sdk::testing::{MemoryState, MockHttp, TestContext};

    fn config(url: Option<&str>) -> Config {
        Config {
            greeting: "hi".into(),
            url: url.map(str::to_string),
            env: Some("TOKEN".into()),
        }
    }

    #[test]
    fn counts_runs_across_runs() {
        let state = Arc::new(MemoryState::new());
        for expected in 1..=3 {
            let mut ctx = TestContext::new(config(None)).state(state.clone()).build();
            let report = Hello::run(&mut ctx).unwrap();
            assert_eq!(report.status, Status::Ok);
            assert!(
                report.summary.ends_with(&format!("(run {expected})")),
                "{}",
                report.summary
            );
        }
    }

    #[test]
    fn probe_failure_is_critical_and_env_value_never_reported() {
        let http =
            MockHttp::new().route("GET", "http://svc/health", |_| MockHttp::reply(500, "boom"));
        let mut ctx = TestContext::new(config(Some("http://svc/health")))
            .http(http)
            .env("TOKEN", "s3cr3t")
            .build();
        let report = Hello::run(&mut ctx).unwrap();
        assert_eq!(report.status, Status::Critical);
        assert!(!format!("{report:?}").contains("s3cr3t"));
        assert!(
            report
                .metrics
                .iter()
                .any(|m| m.name == "hello_env_present" && m.value == 1.0)
        );
    }

    #[test]
    fn denied_request_is_an_error() {
        let mut ctx = TestContext::new(config(Some("http://elsewhere/"))).build();
        let err = Hello::run(&mut ctx).unwrap_err();
        assert!(err.message().contains("denied"), "{err}");
    }

    #[test]
    fn validate_names_the_field() {
        let err = warden_plugin_sdk::parse_config::<Hello>(r#"{"greeting": " "}"#).unwrap_err();
        assert!(err.contains("config.greeting"), "{err}");
        let err = warden_plugin_sdk::parse_config::<Hello>(r#"{"url": 3}"#).unwrap_err();
        assert!(err.contains("config.url"), "{err}");
        let err = warden_plugin_sdk::parse_config::<Hello>(r#"{"nope": 1}"#).unwrap_err();
        assert!(err.contains("nope"), "{err}");
    }
}

//! The Warden plugin SDK: write a sandboxed Warden plugin in a few lines of
//! Rust.
//!
//! A plugin is a type implementing [`Plugin`]: it names itself
//! ([`Plugin::info`]), declares a typed configuration (serde + a JSON Schema
//! derived with `schemars`), optionally validates it, and runs once per
//! scheduled check, returning a [`Report`]. [`export!`] turns the type into
//! the component exports of the `warden:plugin/plugin` world.
//!
//! Inside [`Plugin::run`] the [`Context`] gives the plugin everything the
//! check grants it and nothing more:
//!
//! - [`Context::http`]: a blocking HTTP client over `wasi:http`
//!   ([`http::Http`]), with [`jsonrpc::JsonRpc`] on top for JSON-RPC 2.0;
//! - [`Context::state`]: typed key/value state kept by the agent per check;
//! - [`Context::env`]: the environment variables the check allows;
//! - [`Context::tls`]: certificate chains of granted https hosts;
//! - logging through [`info!`], [`warn!`], [`error!`], [`debug!`].
//!
//! The HTTP, state, environment and log backends are traits. In the wasm
//! build they talk to the host; in native `cargo test` builds a plugin's
//! logic runs against test doubles from [`testing`], so plugin authors unit
//! test without building a component.
//!
//! # Example
//!
//! ```
//! use warden_plugin_sdk::prelude::*;
//!
//! /// The check's `config` table.
//! #[derive(Deserialize, JsonSchema)]
//! struct Config {
//!     /// URL to probe.
//!     url: String,
//!     /// Status code that counts as healthy.
//!     #[serde(default = "default_status")]
//!     expect_status: u16,
//! }
//! fn default_status() -> u16 { 200 }
//!
//! struct Up;
//!
//! impl Plugin for Up {
//!     type Config = Config;
//!
//!     fn info() -> PluginInfo {
//!         PluginInfo::new("up", "0.1.0")
//!             .description("Checks that a URL answers with the expected status.")
//!             .default_schedule("@every 30s")
//!             .capability(Capability::Http)
//!     }
//!
//!     fn validate(config: &Config) -> Result<(), String> {
//!         if !config.url.starts_with("http") {
//!             return Err(format!("url: expected http(s)://..., got {:?}", config.url));
//!         }
//!         Ok(())
//!     }
//!
//!     fn run(ctx: &mut Context<Config>) -> Result<Report, Error> {
//!         let resp = ctx.http().get(&ctx.config.url).send()?;
//!         let status = if resp.status == ctx.config.expect_status {
//!             Status::Ok
//!         } else {
//!             Status::Critical
//!         };
//!         Ok(Report::new(status, format!("{} answered {}", ctx.config.url, resp.status))
//!             .metric(Metric::new("probe_http_status_code", resp.status as f64))
//!             .metric(Metric::new("probe_duration_seconds", resp.elapsed.as_secs_f64()).unit("seconds")))
//!     }
//! }
//!
//! warden_plugin_sdk::export!(Up);
//!
//! // Native unit test of the same logic, no component needed:
//! use warden_plugin_sdk::testing::{MockHttp, TestContext};
//! let http = MockHttp::new().route("GET", "http://svc/health", |_| MockHttp::reply(503, "down"));
//! let mut ctx = TestContext::new(Config { url: "http://svc/health".into(), expect_status: 200 })
//!     .http(http)
//!     .build();
//! let report = Up::run(&mut ctx).unwrap();
//! assert_eq!(report.status, Status::Critical);
//! ```

mod context;
mod error;
pub mod fs;
pub mod http;
mod info;
pub mod jsonrpc;
pub mod log;
mod report;
pub mod state;
pub mod testing;
pub mod tls;
/// Secrets out of URLs and text before a plugin shows them.
pub use warden_text::redact;
/// `${env:NAME}` and `{{capture}}` placeholders.
pub use warden_text::template;
/// `s` cut to at most `max` bytes on a character boundary, marked `…`.
pub use warden_text::truncate;
/// Durations and sizes, the grammar the agent uses too.
pub use warden_text::units;

#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub mod guest;

pub use context::{Action, Claimer, Context, Env, Part, PartBackend};
pub use error::Error;
pub use info::{Capability, PluginInfo};
pub use report::{Finding, Level, Metric, Output, Report, Severity, Status};

/// Everything a plugin usually needs, in one `use`.
pub mod prelude {
    pub use crate::http::{Http, HttpError, Request, Response};
    pub use crate::jsonrpc::{JsonRpc, JsonRpcError};
    pub use crate::{
        Capability, Context, Error, Finding, Metric, Output, Part, Plugin, PluginInfo, Report,
        Severity, Status,
    };
    pub use crate::{debug, error, info, warn};
    pub use schemars::JsonSchema;
    pub use serde::{Deserialize, Serialize};
    pub use serde_json::{Value, json};
}

#[doc(hidden)]
pub use schemars as __schemars;
#[doc(hidden)]
pub use serde_json as __serde_json;

/// A Warden plugin. Implement it on a unit struct and pass that struct to
/// [`export!`].
pub trait Plugin {
    /// The check's `config` table, deserialized. Unknown fields should be
    /// refused (`#[serde(deny_unknown_fields)]`) so typos surface in
    /// `warden validate`.
    type Config: serde::de::DeserializeOwned + schemars::JsonSchema;

    /// Whether one run may be split into shards that run at once, each
    /// doing the share of the work [`Context::part`] names, and then
    /// merged. [`export!`] writes it into the component (a `warden:sharded`
    /// custom section), and only a plugin that says so imports
    /// `host.part`; the agent splits only those. Any other is always run
    /// [`Part::Whole`].
    const SHARDED: bool = false;

    /// Whether the plugin is written to be run by an `[[action]]` (a
    /// runbook's remedy) and asks what it is told of that run
    /// ([`Context::action`]: dry-run, idempotency key, trigger). Only a
    /// plugin that says so imports `host.action`; for any other,
    /// [`Context::action`] is `None`.
    const ACTS: bool = false;

    /// Name, version, description, default schedule and capabilities.
    fn info() -> PluginInfo;

    /// Checks that go beyond what the types express. The message should
    /// name the field (`endpoints[2].url: ...`).
    fn validate(config: &Self::Config) -> Result<(), String> {
        let _ = config;
        Ok(())
    }

    /// Checks too costly to repeat before every run (compiling a rule set,
    /// say). Called after [`Plugin::validate`] when the config is
    /// validated (`warden validate`, `warden check`, and the agent when it
    /// loads or reloads a check, before its first run), but not before
    /// each run, which calls [`Plugin::validate`] alone.
    fn validate_on_load(config: &Self::Config) -> Result<(), String> {
        let _ = config;
        Ok(())
    }

    /// Run the check once. An `Err` becomes status `unknown` with the error
    /// as its reason.
    fn run(ctx: &mut Context<Self::Config>) -> Result<Report, Error>;
}

/// Parses a check's JSON config into `P::Config` and validates it as the
/// `validate` export does ([`Plugin::validate`], then
/// [`Plugin::validate_on_load`]). Errors name the JSON path of the
/// offending field.
pub fn parse_config<P: Plugin>(json: &str) -> Result<P::Config, String> {
    let config = run_config::<P>(json)?;
    P::validate_on_load(&config)?;
    Ok(config)
}

/// Parses a check's JSON config into `P::Config` and runs `P::validate`,
/// as every run does.
pub(crate) fn run_config<P: Plugin>(json: &str) -> Result<P::Config, String> {
    let de = &mut serde_json::Deserializer::from_str(json);
    let config: P::Config = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            format!("config: {}", e.inner())
        } else {
            format!("config.{path}: {}", e.inner())
        }
    })?;
    P::validate(&config)?;
    Ok(config)
}

/// The JSON Schema of `P::Config`, as `describe` reports it.
pub fn config_schema<P: Plugin>() -> String {
    let schema = schemars::schema_for!(P::Config);
    serde_json::to_string(&schema).unwrap_or_else(|_| "{}".to_string())
}

/// Exports a [`Plugin`] implementation as the component's
/// `warden:plugin/plugin` exports. Outside wasm32 it expands to nothing, so
/// the same crate builds natively for unit tests.
#[macro_export]
macro_rules! export {
    ($plugin:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            type __WardenGuest = $crate::guest::Adapter<$plugin>;
    $crate::__export_plugin_impl!(__WardenGuest with_types_in $crate::guest::bindings);
            // The agent splits a run into shards only for a component
            // that says it may be, in this custom section (importing
            // `host.part` is not enough: Python and JS toolchains import
            // every function of an interface).
            #[used]
            #[unsafe(link_section = "warden:sharded")]
            static __WARDEN_SHARDED: [u8; 1] = [<$plugin as $crate::Plugin>::SHARDED as u8];
        };
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A plugin whose costly check refuses every config.
    struct Strict;

    #[derive(serde::Deserialize, schemars::JsonSchema)]
    #[serde(deny_unknown_fields)]
    struct Config {
        n: u32,
    }

    impl Plugin for Strict {
        type Config = Config;
        fn info() -> PluginInfo {
            PluginInfo::new("strict", "0.1.0")
        }
        fn validate(c: &Config) -> Result<(), String> {
            (c.n > 0)
                .then_some(())
                .ok_or_else(|| "n: must be positive".into())
        }
        fn validate_on_load(_: &Config) -> Result<(), String> {
            Err("rules: too costly to check before each run".into())
        }
        fn run(_: &mut Context<Config>) -> Result<Report, Error> {
            Ok(Report::new(Status::Ok, "ran"))
        }
    }

    #[test]
    fn runs_validate_but_not_the_load_time_checks() {
        // What the `validate` export answers: both checks.
        let e = parse_config::<Strict>(r#"{"n": 1}"#).err().unwrap();
        assert_eq!(e, "rules: too costly to check before each run");
        assert_eq!(
            parse_config::<Strict>(r#"{"n": 0}"#).err().unwrap(),
            "n: must be positive"
        );
        // What a run does first: `validate` alone.
        assert_eq!(run_config::<Strict>(r#"{"n": 1}"#).unwrap().n, 1);
        assert_eq!(
            run_config::<Strict>(r#"{"n": 0}"#).err().unwrap(),
            "n: must be positive"
        );
        assert_eq!(
            run_config::<Strict>(r#"{"m": 1}"#).err().unwrap(),
            "config.m: unknown field `m`, expected `n` at line 1 column 4"
        );
    }
}

//! Warden, the agent: loads sandboxed WebAssembly plugins (WASI 0.2
//! components of the world `warden:plugin/plugin`) and runs them with only
//! what each check grants.
//!
//! How the pieces fit:
//!
//! - [`engine`]: the one wasmtime engine (pooling allocator, epoch ticker)
//!   and the on-disk cache of compiled components;
//! - [`runtime`]: loading a component into a [`runtime::Plugin`] and
//!   running it in a fresh instance per run ([`runtime::Runtime::run`]),
//!   turning every failure into an `unknown` outcome with a reason;
//! - [`caps`]: the host capabilities, one module each, and
//!   [`caps::Grants`], the single value that says what a check may reach;
//! - [`report`]: the agent's view of reports and plugin info, and the
//!   status mapping; [`limits`]: every cap and default, defined once;
//! - [`store`]: the SQLite file; [`redact`]: secrets out of logs and
//!   reports; [`stdplugins`]: the embedded standard plugins;
//! - [`config`]: `warden.toml` and the profile rules; [`registry`]: which
//!   plugin version runs, with hot reload of the plugin directory;
//! - [`schedule`] and [`scheduler`]: when checks are due and what to
//!   dispatch; [`agent`]: the long-running agent that ties it together;
//!   [`checkstate`]: soft/hard state by thresholds; [`outputs`]: env files;
//! - [`api`]: the HTTP API; [`export`]: findings as SARIF and gitleaks
//!   JSON; [`cli`]: the `warden` command line.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use warden::caps::Grants;
//! use warden::runtime::{Origin, RunRequest, Runtime, RuntimeOptions};
//!
//! let runtime = Runtime::new(RuntimeOptions::default())?;
//! let bytes = warden::stdplugins::get("hello").expect("embedded");
//! let plugin = runtime.load(bytes, Origin::Embedded("hello".into())).await?;
//! let outcome = runtime
//!     .run(&plugin, &RunRequest {
//!         check: "hello".into(),
//!         config: "{}".into(),
//!         scheduled: std::time::SystemTime::now(),
//!         attempt: 1,
//!         timeout: std::time::Duration::from_secs(5),
//!         memory: 64 << 20,
//!         grants: Grants::none(),
//!     })
//!     .await;
//! println!("{:?}: {}", outcome.status, outcome.summary);
//! # Ok(()) }
//! ```

pub mod agent;
pub mod api;
pub mod caps;
pub mod checkstate;
pub mod cli;
pub mod config;
pub mod engine;
pub mod export;
pub mod limits;
pub mod outputs;
pub mod redact;
pub mod references;
pub mod registry;
pub mod report;
pub mod runtime;
pub mod schedule;
pub mod scheduler;
pub mod stdplugins;
pub mod store;
pub mod units;

//! Warden's runtime: everything needed to run one plugin (a WASI 0.2
//! component of the world `warden:plugin/plugin`) once, in a sandbox that
//! reaches only what its check grants. The agent (`warden`) embeds it; so
//! can anything else that wants to run Warden plugins.
//!
//! The principal types, and how they fit:
//!
//! - [`Runtime`] owns the one wasmtime engine ([`engine`]: pooling
//!   allocator, epoch ticker, on-disk cache of compiled code), the linker
//!   with every host capability, and the trust roots. [`Runtime::load`]
//!   turns component bytes into a [`Plugin`]; [`Runtime::run`] runs a
//!   [`RunRequest`] in a fresh instance and returns a [`RunOutcome`],
//!   never an error: every failure is an `unknown` outcome that names its
//!   cause. [`Runtime::run_sharded`] splits one run of a plugin that
//!   imports `host.part` across instances running at once, then merges
//!   their reports.
//! - [`Grants`] is the single value that says what a check may reach,
//!   parsed once from its `allow` section ([`Allow`]) by the capability
//!   modules in [`caps`]; nothing else can widen it.
//! - [`Shape`] reads a component's imports and exports from its bytes
//!   alone, for telling an author why one does not fit the world.
//! - [`Report`], [`Status`] and the rest of [`report`] are the shape of
//!   what a run produced; [`limits`] holds every cap and default, once.
//! - [`StateBackend`] is where plugin state persists between runs (the
//!   agent's SQLite store); without one, state lives for the run only.
//!
//! Data flows one way: grants and limits into the sandbox, the plugin's
//! report out into the outcome; the runtime knows nothing of schedules,
//! stores or APIs.
//!
//! ```no_run
//! # async fn demo(bytes: &[u8]) -> anyhow::Result<()> {
//! use warden_runtime::{Grants, Origin, RunRequest, Runtime, RuntimeOptions};
//!
//! let runtime = Runtime::new(RuntimeOptions::default())?;
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
//!         state_quota: Default::default(),
//!         action: None,
//!     })
//!     .await;
//! println!("{}: {}", outcome.status.label(), outcome.summary);
//! # Ok(()) }
//! ```

mod bindings;
pub mod caps;
pub mod engine;
pub mod limits;
mod memory;
mod part;
pub mod report;
mod runtime;
mod sandbox;
mod shape;
mod shards;

pub use bindings::WORLD;
pub use caps::net::parse_pem;
pub use caps::{
    Allow, GrantError, Grants, Sandbox, StateBackend, StateChanges, StateQuota, StateUsage,
};
pub use report::{
    ActionRun, Finding, Metric, Output, PluginInfo, Report, RunOutcome, Severity, Status,
};
pub use runtime::{Origin, Plugin, RunRequest, Runtime, RuntimeOptions, ShardPlacer, sha256_hex};
pub use shape::Shape;
/// Redaction of secrets in URLs and text (shared with the plugin SDK).
pub use warden_text::redact;

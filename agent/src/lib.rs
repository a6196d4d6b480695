//! Warden, the agent: runs sandboxed WebAssembly plugins on schedules,
//! keeps their results, and reports them over a small HTTP API. Running
//! one plugin once is [`warden_runtime`]'s job (re-exported as
//! [`runtime`]); this crate is everything around it.
//!
//! The principal types, and how they fit (data flows one way, top to
//! bottom):
//!
//! - [`Config`] is `warden.toml`, parsed and validated section by section
//!   ([`config`]), with typed errors that name file, line, check and field;
//! - [`Registry`] decides which version of each plugin runs (the embedded
//!   standard plugins and the watched plugin directory);
//! - the scheduler (a pure state machine over explicit times, driven by
//!   [`Agent`]) says which [`Check`] is due; the [`runtime`] runs it;
//! - [`Health`] decides the check's soft/hard status and transitions from
//!   each result; [`Store`] (SQLite) persists runs, health, findings,
//!   outputs and plugin state, acknowledging only committed writes;
//! - [`actions`] runs a check's runbook remedies (`[[action]]`, a plugin
//!   in a sandbox of its own grants) when it changes, after approval or
//!   at once, under guardrails, and verifies them;
//! - [`views`], [`api`] and `/metrics` show it all; [`Agent::serve`] is the
//!   lifecycle of `warden run`; [`StateDir`] is the state directory's
//!   layout; [`limits`] holds every default, once.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let config = warden::Config::load(None)?; // the embedded defaults
//! warden::Agent::serve(config).await?;      // until SIGTERM or Ctrl-C
//! # Ok(()) }
//! ```

mod acks;
pub mod action_state;
pub mod actions;
mod agent;
pub mod alerting;
pub mod api;
mod badges;
mod cli;
pub mod config;
mod executor;
mod export;
mod flapping;
mod health;
mod inspect;
mod layout;
pub mod limits;
mod listener;
mod live;
mod metrics;
mod notices;
mod oneshot;
mod outputs;
mod perfdata;
mod references;
mod registry;
mod reload;
mod remote;
mod scaffold;
mod schedule;
mod scheduler;
mod sdk;
mod serve;
mod silences;
pub mod stdplugins;
pub mod store;
mod systemd;
mod telemetry;
pub mod views;

pub use agent::Agent;
pub use cli::main;
pub use config::Config;
pub use health::{Health, StateType, Transition};
pub use layout::StateDir;
pub use live::Check;
pub use registry::{LoadError, PluginView, Registry};
pub use schedule::Schedule;
pub use scheduler::ManualError;
pub use store::Store;
/// The sandboxed plugin runtime the agent embeds.
pub use warden_runtime as runtime;
pub(crate) use warden_runtime::redact;

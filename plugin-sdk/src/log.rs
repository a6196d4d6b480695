//! Structured logging into the agent's log, tagged with the check and run.
//!
//! Use the macros: `info!("probed {} endpoints", n)`. In native tests the
//! records go to the [`LogBackend`] of the test context (by default, stderr).

use std::cell::RefCell;
use std::sync::Arc;

/// Level of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Very detailed.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal operation.
    Info,
    /// Handled surprise.
    Warn,
    /// Failure.
    Error,
}

/// Where records go.
pub trait LogBackend {
    /// Writes one record.
    fn log(&self, level: Level, message: &str, fields: &[(&str, &str)]);
}

/// Writes records to stderr; the default outside the agent.
pub struct StderrLog;

impl LogBackend for StderrLog {
    fn log(&self, level: Level, message: &str, fields: &[(&str, &str)]) {
        let fields: String = fields.iter().map(|(k, v)| format!(" {k}={v:?}")).collect();
        eprintln!("[{level:?}] {message}{fields}");
    }
}

thread_local! {
    static BACKEND: RefCell<Option<Arc<dyn LogBackend>>> = const { RefCell::new(None) };
}

/// Installs the backend used by the macros on this thread (done by the SDK
/// for a run; tests may install their own).
pub fn set_backend(backend: Arc<dyn LogBackend>) {
    BACKEND.with(|b| *b.borrow_mut() = Some(backend));
}

/// Writes a record with fields.
pub fn log(level: Level, message: &str, fields: &[(&str, &str)]) {
    let backend = BACKEND.with(|b| b.borrow().clone());
    match backend {
        Some(b) => b.log(level, message, fields),
        None => default_backend().log(level, message, fields),
    }
}

#[cfg(target_arch = "wasm32")]
fn default_backend() -> Arc<dyn LogBackend> {
    Arc::new(crate::guest::HostLog)
}

#[cfg(not(target_arch = "wasm32"))]
fn default_backend() -> Arc<dyn LogBackend> {
    Arc::new(StderrLog)
}

/// Logs at info level: `info!("x = {}", x)`.
#[macro_export]
macro_rules! info {
    ($($arg:tt)+) => { $crate::log::log($crate::log::Level::Info, &format!($($arg)+), &[]) };
}

/// Logs at warn level.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)+) => { $crate::log::log($crate::log::Level::Warn, &format!($($arg)+), &[]) };
}

/// Logs at error level.
#[macro_export]
macro_rules! error {
    ($($arg:tt)+) => { $crate::log::log($crate::log::Level::Error, &format!($($arg)+), &[]) };
}

/// Logs at debug level.
#[macro_export]
macro_rules! debug {
    ($($arg:tt)+) => { $crate::log::log($crate::log::Level::Debug, &format!($($arg)+), &[]) };
}

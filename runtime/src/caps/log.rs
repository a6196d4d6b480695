//! What a plugin says: `warden:plugin/host.log` records and its
//! stdout/stderr, both bounded per run and forwarded to the agent's log
//! under the run's span (check name, run id).
//!
//! The WIT puts log and state in one interface, `warden:plugin/host`; this
//! capability links it, and its `state-*` functions go to
//! [`super::state`].

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use wasmtime::component::{HasSelf, Linker};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

use warden_text::escape::escape;
use warden_text::truncate;

use super::{Allow, Capability, GrantError, Sandbox, Setup};
use crate::bindings::{host, wit};
use crate::limits;
use crate::report::RunOutcome;

/// Counts and forwards `host.log` records; captures stdout and stderr.
#[derive(Default)]
pub struct RunLog {
    records: usize,
    dropped: usize,
    stdout: Captured,
    stderr: Captured,
}

/// Levels a plugin may log at (mirrors `warden:plugin/host.log-level`).
#[derive(Debug, Clone, Copy)]
pub enum Level {
    /// Trace.
    Trace,
    /// Debug.
    Debug,
    /// Info.
    Info,
    /// Warn.
    Warn,
    /// Error.
    Error,
}

impl RunLog {
    /// Forwards one record unless the run's quota is used up.
    pub fn record(&mut self, level: Level, message: &str, fields: &[(String, String)]) {
        if self.records >= limits::MAX_LOG_RECORDS {
            self.dropped += 1;
            return;
        }
        self.records += 1;
        // Redacted, then escaped: a record is one line of the agent's log
        // and cannot forge another.
        let message = crate::redact::words(&truncate(message, limits::MAX_FIELD_BYTES));
        let message = escape(&message);
        let fields: String = fields
            .iter()
            .map(|(k, v)| {
                let v = crate::redact::words(&truncate(v, 256));
                format!(
                    " {}=\"{}\"",
                    escape(&truncate(k, 64)),
                    escape(&v).replace('"', "\\\"")
                )
            })
            .collect();
        match level {
            Level::Trace => tracing::trace!(target: "plugin", "{message}{fields}"),
            Level::Debug => tracing::debug!(target: "plugin", "{message}{fields}"),
            Level::Info => tracing::info!(target: "plugin", "{message}{fields}"),
            Level::Warn => tracing::warn!(target: "plugin", "{message}{fields}"),
            Level::Error => tracing::error!(target: "plugin", "{message}{fields}"),
        }
    }

    /// Forwards the captured stdout and stderr, line by line, redacted.
    fn forward_stdio(&self) {
        for (name, cap) in [("stdout", &self.stdout), ("stderr", &self.stderr)] {
            let (text, dropped) = cap.contents();
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                tracing::info!(target: "plugin", stream = name, "{}", escape(&crate::redact::words(line)));
            }
            if dropped > 0 {
                tracing::warn!(
                    stream = name,
                    dropped,
                    "plugin output over the per-run limit was dropped"
                );
            }
        }
    }
}

/// The log capability: `host.log` and stdio capture; always present.
pub struct Log;

impl Capability for Log {
    const KEYS: &'static [&'static str] = &[];
    type Grant = ();
    type Run = RunLog;

    fn grant(_: &Allow) -> Result<(), Vec<GrantError>> {
        Ok(())
    }

    fn show(_: &(), _: &mut serde_json::Map<String, serde_json::Value>) {}

    fn link(linker: &mut Linker<Sandbox>) -> anyhow::Result<()> {
        host::add_to_linker::<Sandbox, HasSelf<Sandbox>>(linker, |s| s)
            .map_err(anyhow::Error::from)?;
        wit::add_to_linker::<Sandbox, HasSelf<Sandbox>>(linker, |s| s).map_err(anyhow::Error::from)
    }

    fn prepare(_: &Arc<()>, setup: &mut Setup<'_>) -> anyhow::Result<RunLog> {
        let log = RunLog::default();
        setup
            .wasi
            .stdout(log.stdout.clone())
            .stderr(log.stderr.clone());
        Ok(log)
    }

    fn explain(log: &RunLog) -> Option<String> {
        let (text, _) = log.stderr.contents();
        let panic = panic_message(&text)?;
        Some(format!("plugin panicked: {}", crate::redact::words(&panic)))
    }

    fn finish(log: &mut RunLog, _: &mut RunOutcome) {
        log.forward_stdio();
        if log.dropped > 0 {
            tracing::warn!(
                dropped = log.dropped,
                "plugin log records over the per-run limit were dropped"
            );
        }
    }
}

/// The message of a Rust panic as the standard hook prints it.
fn panic_message(stderr: &str) -> Option<String> {
    let start = stderr.find("panicked at ")?;
    let rest = &stderr[start + "panicked at ".len()..];
    let (location, message) = rest.split_once(":\n").unwrap_or((rest, ""));
    let message: Vec<&str> = message
        .lines()
        .take_while(|l| !l.starts_with("note: "))
        .collect();
    Some(format!(
        "{} (at {})",
        message.join(" ").trim(),
        location.trim()
    ))
}

impl host::Host for Sandbox {
    fn log(&mut self, level: host::LogLevel, message: String, fields: Vec<wit::Pair>) {
        let level = match level {
            host::LogLevel::Trace => Level::Trace,
            host::LogLevel::Debug => Level::Debug,
            host::LogLevel::Info => Level::Info,
            host::LogLevel::Warn => Level::Warn,
            host::LogLevel::Error => Level::Error,
        };
        let fields: Vec<(String, String)> = fields.into_iter().map(|p| (p.name, p.value)).collect();
        self.parts.log.record(level, &message, &fields);
    }

    fn state_get(&mut self, key: String) -> Option<String> {
        self.parts.state.get(&key)
    }

    fn state_set(&mut self, key: String, value: String) -> Result<(), String> {
        self.parts.state.set(key, value)
    }

    fn state_delete(&mut self, key: String) {
        self.parts.state.delete(key)
    }

    fn part(&mut self) -> host::RunPart {
        self.share.part.clone()
    }

    fn claim(&mut self, key: String) -> bool {
        self.share.claim(&key)
    }
}

impl wit::Host for Sandbox {}

#[derive(Default)]
struct Buffer {
    bytes: Vec<u8>,
    dropped: u64,
}

/// A bounded capture of a plugin's stdout or stderr. Writes never fail:
/// beyond the cap they are counted and dropped, so a chatty plugin cannot
/// exhaust the agent's memory nor be broken by its own logging.
#[derive(Clone, Default)]
pub struct Captured {
    buf: Arc<Mutex<Buffer>>,
}

impl Captured {
    fn push(&self, data: &[u8]) {
        let mut b = self.buf.lock().unwrap_or_else(|p| p.into_inner());
        let room = limits::MAX_STDIO_BYTES.saturating_sub(b.bytes.len());
        let take = room.min(data.len());
        b.bytes.extend_from_slice(&data[..take]);
        b.dropped += (data.len() - take) as u64;
    }

    /// The text captured so far (lossy UTF-8) and the bytes dropped.
    pub fn contents(&self) -> (String, u64) {
        let b = self.buf.lock().unwrap_or_else(|p| p.into_inner());
        (String::from_utf8_lossy(&b.bytes).into_owned(), b.dropped)
    }
}

impl IsTerminal for Captured {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for Captured {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for Captured {
    async fn ready(&mut self) {}
}

impl OutputStream for Captured {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }
    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }
    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

impl tokio::io::AsyncWrite for Captured {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_messages_are_extracted() {
        let stderr = "\nthread '<unnamed>' panicked at src/lib.rs:12:9:\nboom went the plugin\nnote: run with `RUST_BACKTRACE=1`\n";
        assert_eq!(
            panic_message(stderr).unwrap(),
            "boom went the plugin (at src/lib.rs:12:9)"
        );
        assert!(panic_message("nothing here").is_none());
    }
}

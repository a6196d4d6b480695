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

    /// The error line the plugin wrote to stderr last, if any
    /// ([`last_error`]).
    pub(crate) fn last_error(&self) -> Option<String> {
        last_error(&self.stderr.tail())
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
        let tail = log.stderr.tail();
        let (before, panic) = panic_message(&tail)?;
        let why = match last_error(before) {
            // A runtime (Python's, JS's) that panics on an uncaught
            // exception printed the exception first: that is the cause.
            Some(cause) => format!("plugin failed: {cause} (its runtime then panicked: {panic})"),
            None => format!("plugin panicked: {panic}"),
        };
        Some(crate::redact::words(&why))
    }

    fn finish(log: &mut RunLog, outcome: &mut RunOutcome) {
        let tail = log.stderr.tail();
        if !tail.trim().is_empty() {
            outcome.stderr = Some(crate::redact::words(&tail));
        }
        log.forward_stdio();
        if log.dropped > 0 {
            tracing::warn!(
                dropped = log.dropped,
                "plugin log records over the per-run limit were dropped"
            );
        }
    }
}

/// What stderr held before the last Rust panic, and the panic's message
/// as the standard hook prints it.
fn panic_message(stderr: &str) -> Option<(&str, String)> {
    let start = stderr.rfind("panicked at ")?;
    let before = stderr[..start]
        .rfind('\n')
        .map_or("", |line| &stderr[..line]);
    let rest = &stderr[start + "panicked at ".len()..];
    let (location, message) = rest.split_once(":\n").unwrap_or((rest, ""));
    let message: Vec<&str> = message
        .lines()
        .take_while(|l| !l.starts_with("note: "))
        .collect();
    Some((
        before,
        format!("{} (at {})", message.join(" ").trim(), location.trim()),
    ))
}

/// The error a plugin's runtime printed last: the last line that names an
/// error or exception (`ValueError: boom` ending a Python traceback,
/// `Error: boom` or `Uncaught TypeError: ...` from JS), else the last
/// line of text. Truncated to one line's worth.
fn last_error(stderr: &str) -> Option<String> {
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let names_error = |l: &&&str| {
        let head = l.split(':').next().unwrap_or("");
        l.contains(':')
            && !head.contains(' ')
            && (head.ends_with("Error")
                || head.ends_with("Exception")
                || head.ends_with("Interrupt"))
            || l.starts_with("Uncaught ")
            || l.starts_with("error: ")
    };
    // Lines a runtime adds on its way down, which say nothing of why.
    let noise = |l: &&&str| l.starts_with("Redirecting call to abort()") || l.starts_with("note: ");
    // StarlingMonkey (componentize-js) prints the error, then `Stack:`.
    let before_stack = lines
        .iter()
        .rposition(|l| *l == "Stack:")
        .and_then(|i| i.checked_sub(1))
        .map(|i| &lines[i]);
    let line = before_stack
        .or_else(|| lines.iter().rev().find(names_error))
        .or_else(|| lines.iter().rev().find(|l| !noise(l)))?;
    Some(truncate(line, 512))
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

    fn action(&mut self) -> Option<host::ActionInfo> {
        self.action.clone()
    }
}

/// An action's run as `host.action` tells it.
pub(crate) fn action_info(a: &crate::report::ActionRun) -> host::ActionInfo {
    host::ActionInfo {
        name: a.name.clone(),
        idempotency_key: a.idempotency_key.clone(),
        dry_run: a.dry_run,
        trigger_check: a.trigger_check.clone(),
        trigger_status: a.trigger_status.to_wit(),
        trigger_summary: a.trigger_summary.clone(),
    }
}

impl wit::Host for Sandbox {}

#[derive(Default)]
struct Buffer {
    /// The first [`limits::MAX_STDIO_BYTES`].
    bytes: Vec<u8>,
    dropped: u64,
    /// The last [`limits::STDERR_TAIL_BYTES`].
    tail: std::collections::VecDeque<u8>,
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
        let keep = &data[data.len().saturating_sub(limits::STDERR_TAIL_BYTES)..];
        b.tail.extend(keep);
        let over = b.tail.len().saturating_sub(limits::STDERR_TAIL_BYTES);
        b.tail.drain(..over);
    }

    /// The last [`limits::STDERR_TAIL_BYTES`] written (lossy UTF-8), from
    /// a line's start when the front was cut.
    pub fn tail(&self) -> String {
        let b = self.buf.lock().unwrap_or_else(|p| p.into_inner());
        let (front, back) = b.tail.as_slices();
        let bytes = [front, back].concat();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let cut = b.bytes.len() + b.dropped as usize > bytes.len();
        match text.find('\n') {
            Some(i) if cut => text[i + 1..].to_string(),
            _ => text,
        }
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
        let (before, panic) = panic_message(stderr).unwrap();
        assert_eq!(panic, "boom went the plugin (at src/lib.rs:12:9)");
        assert_eq!(before, "");
        assert!(panic_message("nothing here").is_none());
    }

    #[test]
    fn the_last_error_is_what_a_runtime_printed_last() {
        // componentize-py: the traceback, then its Rust runtime panics.
        let python = "Traceback (most recent call last):\n  File \"app.py\", line 9, in run\n    raise ValueError(\"bad threshold\")\nValueError: bad threshold\n\nthread '<unnamed>' panicked at runtime/src/lib.rs:1293:29:\nPython function threw an unexpected exception\n";
        let (before, panic) = panic_message(python).unwrap();
        assert_eq!(
            last_error(before).as_deref(),
            Some("ValueError: bad threshold")
        );
        assert!(panic.starts_with("Python function threw"), "{panic}");
        // A JS engine: the error, then its stack.
        let js = "Error: the service said 503\nStack:\n  run@app.js:12:11\n  @app.js:40:3\n";
        assert_eq!(
            last_error(js).as_deref(),
            Some("Error: the service said 503")
        );
        assert_eq!(
            last_error("Uncaught TypeError: x is undefined\n").as_deref(),
            Some("Uncaught TypeError: x is undefined")
        );
        // componentize-js: a thrown Error (not a string) cannot become the
        // run's error; the engine says so before its stack and aborts.
        let thrown = "expected a string, received [object]\nStack:\n  export_run@/tmp/x/sources/initializer.js:14217:45\n\nRedirecting call to abort() to mozalloc_abort\n\n";
        assert_eq!(
            last_error(thrown).as_deref(),
            Some("expected a string, received [object]")
        );
        // Otherwise the last line, and nothing from nothing.
        assert_eq!(
            last_error("starting\ngave up\n").as_deref(),
            Some("gave up")
        );
        assert_eq!(last_error(" \n"), None);
        // Prose with a colon is not an error name.
        assert_eq!(
            last_error("ValueError: one\nnote: this is fine\n").as_deref(),
            Some("ValueError: one")
        );
    }

    #[test]
    fn the_tail_keeps_the_end_of_a_long_stderr() {
        let c = Captured::default();
        for i in 0..20_000 {
            c.push(format!("line {i}\n").as_bytes());
        }
        c.push(b"RuntimeError: the end\n");
        let tail = c.tail();
        assert!(tail.len() <= limits::STDERR_TAIL_BYTES, "{}", tail.len());
        assert!(tail.starts_with("line "), "from a line's start: {tail:.40}");
        assert!(tail.ends_with("RuntimeError: the end\n"));
        let (head, dropped) = c.contents();
        assert!(head.starts_with("line 0\n") && dropped > 0);
    }
}

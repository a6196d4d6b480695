//! What a plugin says: `warden:plugin/host.log` records and its
//! stdout/stderr, both bounded per run and forwarded to the agent's log
//! under the run's span (check name, run id).

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

use crate::limits;

/// Counts and forwards `host.log` records.
#[derive(Default)]
pub struct RunLog {
    records: usize,
    dropped: usize,
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
        let message = crate::redact::words(&truncate(message, limits::MAX_FIELD_BYTES));
        let fields: String = fields
            .iter()
            .map(|(k, v)| format!(" {k}={:?}", crate::redact::words(&truncate(v, 256))))
            .collect();
        match level {
            Level::Trace => tracing::trace!(target: "plugin", "{message}{fields}"),
            Level::Debug => tracing::debug!(target: "plugin", "{message}{fields}"),
            Level::Info => tracing::info!(target: "plugin", "{message}{fields}"),
            Level::Warn => tracing::warn!(target: "plugin", "{message}{fields}"),
            Level::Error => tracing::error!(target: "plugin", "{message}{fields}"),
        }
    }

    /// Records dropped over the quota.
    pub fn dropped(&self) -> usize {
        self.dropped
    }
}

/// `s` cut to at most `max` bytes (on a character boundary), marked with
/// an ellipsis when cut.
pub fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

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
    /// An empty capture.
    pub fn new() -> Self {
        Self::default()
    }

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

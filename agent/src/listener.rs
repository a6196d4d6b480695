//! The API's connections: the accept loop, its caps and timeouts, and the
//! process's file-descriptor limit.
//!
//! At most [`limits::MAX_API_CONNECTIONS`] connections are served at once;
//! one more is answered `503` and closed at once, so a client holding
//! sockets open cannot take the API (or the agent's descriptors) away.
//! A client has [`limits::API_HEADER_TIMEOUT`] to send each request's
//! headers, which also bounds how long an idle keep-alive connection is
//! kept. A failed accept (most often `EMFILE`: no descriptors left) is
//! counted, logged once per burst and reported by `/readyz` and
//! `/metrics`; the loop backs off instead of spinning. On shutdown the
//! listener closes and every connection is asked to finish gracefully;
//! [`crate::serve`] bounds the wait with `shutdown_grace`.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use crate::agent::Agent;
use crate::limits;
use crate::store::now_ms;

/// How long the accept loop waits after a failed accept.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// What a connection over the cap gets before it is closed.
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: 96\r\n\r\n{\"error\":{\"code\":\"not_ready\",\"message\":\"too many API connections are open; try again later\"}}";

/// Serves `app` on `listener` until `stop` turns true, then asks every
/// connection to finish and returns once all have.
pub(crate) async fn serve(
    listener: TcpListener,
    app: axum::Router,
    agent: Arc<Agent>,
    mut stop: watch::Receiver<bool>,
) {
    let stats = &agent.telemetry.connections;
    let permits = Arc::new(Semaphore::new(limits::MAX_API_CONNECTIONS));
    let graceful = GracefulShutdown::new();
    let mut failing = false;
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.wait_for(|s| *s) => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => {
                failing = false;
                stream
            }
            Err(e) => {
                stats.accept_errors.fetch_add(1, Ordering::Relaxed);
                let exhausted = is_fd_exhaustion(&e);
                if exhausted {
                    stats.fd_exhausted(now_ms());
                }
                if !failing {
                    if exhausted {
                        tracing::error!(error = %e, open_fds = ?open_fds(), max_fds = ?max_fds(), "the agent has run out of file descriptors: the API cannot accept connections and plugin requests fail as the agent's fault (unknown)");
                    } else {
                        tracing::error!(error = %e, "the API cannot accept a connection");
                    }
                    failing = true;
                }
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            stats.refused.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                let _ = tokio::time::timeout(Duration::from_secs(1), stream.writable()).await;
                let _ = stream.try_write(BUSY);
            });
            continue;
        };
        let _ = stream.set_nodelay(true);
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(limits::API_HEADER_TIMEOUT)
            .max_header_size(limits::MAX_API_HEADER_BYTES);
        let conn =
            http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
        let conn = graceful.watch(conn);
        let agent = agent.clone();
        agent
            .telemetry
            .connections
            .open
            .fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            let _ = conn.await;
            agent
                .telemetry
                .connections
                .open
                .fetch_sub(1, Ordering::Relaxed);
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

fn is_fd_exhaustion(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

/// Descriptors open in this process (`/proc/self/fd`).
pub(crate) fn open_fds() -> Option<u64> {
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count() as u64)
}

/// The soft descriptor limit.
pub(crate) fn max_fds() -> Option<libc::rlim_t> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the struct we own.
    (unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0).then_some(lim.rlim_cur)
}

/// Raises the soft descriptor limit to the hard one (many systems start
/// processes at 1,024 while allowing far more); logs what it did.
pub(crate) fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write one rlimit we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return;
        }
        let before = lim.rlim_cur;
        if before >= lim.rlim_max {
            return;
        }
        lim.rlim_cur = lim.rlim_max;
        if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0 {
            tracing::debug!(
                from = before,
                to = lim.rlim_cur,
                "raised the soft file-descriptor limit"
            );
        } else {
            tracing::warn!(limit = before, error = %std::io::Error::last_os_error(), "cannot raise the soft file-descriptor limit");
        }
    }
}

//! The notification outbox: rows written in the same transaction as the
//! run whose transition they announce (so a crash between the two cannot
//! lose or invent one), read by the delivery loop when due, and settled
//! (delivered, retried later, or given up) by the writer thread.

use rusqlite::{Connection, params};
use serde::Serialize;

use super::Store;
use anyhow::{Context as _, Result};

/// A notification to queue with its run.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// The notifier's name.
    pub notifier: String,
    /// Which of its URLs (Alertmanager sends to each).
    pub target: usize,
    /// Check name.
    pub check: String,
    /// `firing`, `resolved`, `flapping` or `settled`.
    pub event: &'static str,
    /// The hard status it is about.
    pub severity: String,
    /// Stable across retries (and the trigger and its resolve).
    pub dedup_key: String,
    /// The JSON to send (no secrets).
    pub body: String,
    /// Why it is not sent (a parent check's problem), if it is not.
    pub suppressed: Option<String>,
}

/// A queued or settled notification, as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StoredNotification {
    /// Row id.
    pub id: i64,
    /// Notifier name.
    pub notifier: String,
    /// Target index.
    pub target: usize,
    /// Check name.
    pub check: String,
    /// `firing` or `resolved`.
    pub event: String,
    /// Status it is about.
    pub severity: String,
    /// Dedupe key.
    pub dedup_key: String,
    /// `pending`, `delivered`, `failed`, or `suppressed` (a parent
    /// check had a hard problem; `last_error` says which).
    pub state: String,
    /// Attempts so far.
    pub attempts: u32,
    /// Queued (ms since the epoch).
    pub created_unix_ms: i64,
    /// Next attempt, while pending.
    pub next_attempt_unix_ms: Option<i64>,
    /// Delivered at.
    pub delivered_unix_ms: Option<i64>,
    /// Why the latest attempt failed.
    pub last_error: Option<String>,
    /// The body (for the delivery loop; not serialised to the API).
    #[serde(skip)]
    pub body: String,
}

/// What became of an attempt.
#[derive(Debug, Clone)]
pub enum Settlement {
    /// Sent; the target answered 2xx.
    Delivered,
    /// Try again at the given time.
    RetryAt(i64, String),
    /// Given up.
    Failed(String),
}

pub(super) fn insert(tx: &Connection, rows: &[Outgoing], now_ms: i64) -> rusqlite::Result<()> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO outbox (notifier, target, check_name, event, severity, dedup_key, body, created_ms, next_ms, state, last_error)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, ?9, ?10)",
    )?;
    for r in rows {
        stmt.execute(params![
            r.notifier,
            r.target as i64,
            r.check,
            r.event,
            r.severity,
            r.dedup_key,
            r.body,
            now_ms,
            if r.suppressed.is_some() {
                "suppressed"
            } else {
                "pending"
            },
            r.suppressed
        ])?;
    }
    Ok(())
}

pub(super) fn settle(
    tx: &Connection,
    id: i64,
    how: &Settlement,
    now_ms: i64,
) -> rusqlite::Result<()> {
    match how {
        Settlement::Delivered => tx.execute(
            "UPDATE outbox SET state = 'delivered', attempts = attempts + 1, delivered_ms = ?2, last_error = NULL WHERE id = ?1",
            params![id, now_ms],
        )?,
        Settlement::RetryAt(at, why) => tx.execute(
            "UPDATE outbox SET attempts = attempts + 1, next_ms = ?2, last_error = ?3 WHERE id = ?1 AND state = 'pending'",
            params![id, at, why],
        )?,
        Settlement::Failed(why) => tx.execute(
            "UPDATE outbox SET state = 'failed', attempts = attempts + 1, last_error = ?2 WHERE id = ?1",
            params![id, why],
        )?,
    };
    Ok(())
}

/// Keeps the newest `keep` settled rows (pending ones always stay).
pub(super) fn retain(tx: &Connection, keep: usize) -> rusqlite::Result<()> {
    tx.execute(
        "DELETE FROM outbox WHERE state != 'pending' AND id <= (
             SELECT id FROM outbox WHERE state != 'pending' ORDER BY id DESC LIMIT 1 OFFSET ?1)",
        params![keep as i64],
    )?;
    Ok(())
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredNotification> {
    let state: String = r.get(9)?;
    let next: i64 = r.get(11)?;
    Ok(StoredNotification {
        id: r.get(0)?,
        notifier: r.get(1)?,
        target: r.get::<_, i64>(2)? as usize,
        check: r.get(3)?,
        event: r.get(4)?,
        severity: r.get(5)?,
        dedup_key: r.get(6)?,
        body: r.get(7)?,
        created_unix_ms: r.get(8)?,
        next_attempt_unix_ms: (state == "pending").then_some(next),
        state,
        attempts: r.get::<_, i64>(10)? as u32,
        delivered_unix_ms: r.get(12)?,
        last_error: r.get(13)?,
    })
}

const COLUMNS: &str = "id, notifier, target, check_name, event, severity, dedup_key, body, created_ms, state, attempts, next_ms, delivered_ms, last_error";

impl Store {
    /// Pending notifications due by `now_ms`, oldest first; each the
    /// oldest pending one of its check for its notifier and target, so a
    /// check's notifications arrive in order (a resolve never overtakes
    /// its trigger, even while the trigger is retried).
    pub fn due_notifications(&self, now_ms: i64, limit: usize) -> Result<Vec<StoredNotification>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM outbox o WHERE state = 'pending' AND next_ms <= ?1
             AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.state = 'pending' AND p.check_name = o.check_name
                             AND p.notifier = o.notifier AND p.target = o.target AND p.id < o.id)
             ORDER BY id LIMIT ?2"
        ))?;
        let rows = stmt.query_map(params![now_ms, limit as i64], row)?;
        rows.collect::<rusqlite::Result<_>>()
            .context("reading the outbox")
    }

    /// Notifications, newest first, optionally of one check.
    pub fn notifications(
        &self,
        check: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StoredNotification>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM outbox WHERE ?1 IS NULL OR check_name = ?1 ORDER BY id DESC LIMIT ?2"
        ))?;
        let rows = stmt.query_map(params![check, limit as i64], row)?;
        rows.collect::<rusqlite::Result<_>>()
            .context("reading notifications")
    }

    /// What each check's receivers were last told: the severity of its
    /// latest firing or resolved notification that was not suppressed
    /// (`Ok` for a resolve).
    pub fn told(&self) -> Result<std::collections::HashMap<String, warden_runtime::Status>> {
        use warden_runtime::Status;
        let conn = self.conn();
        // SQLite takes the bare columns from the row of MAX(id).
        let mut stmt = conn.prepare_cached(
            "SELECT check_name, event, severity, MAX(id) FROM outbox
             WHERE event IN ('firing', 'resolved') AND state != 'suppressed' GROUP BY check_name",
        )?;
        let rows = stmt.query_map([], |r| {
            let (check, event, severity): (String, String, String) =
                (r.get(0)?, r.get(1)?, r.get(2)?);
            let told = match (event.as_str(), severity.as_str()) {
                ("firing", "warning") => Status::Warning,
                ("firing", "critical") => Status::Critical,
                ("firing", "unknown") => Status::Unknown,
                _ => Status::Ok,
            };
            Ok((check, told))
        })?;
        rows.collect::<rusqlite::Result<_>>()
            .context("reading the outbox")
    }

    /// Queues notifications not tied to a run (through the writer).
    pub fn queue_notifications(&self, rows: Vec<Outgoing>) {
        let _ = self.writer.send(super::writer::Job::Queue(rows));
    }

    /// Records what became of an attempt (through the writer), once
    /// committed: until then the row still reads as pending.
    pub async fn settle_notification(&self, id: i64, how: Settlement) -> Result<()> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.writer
            .send(super::writer::Job::Settle(id, how, tx))
            .map_err(|_| anyhow::anyhow!("the store writer has stopped"))?;
        rx.await
            .map_err(|_| anyhow::anyhow!("the store writer has stopped"))?
            .map_err(anyhow::Error::msg)
    }
}

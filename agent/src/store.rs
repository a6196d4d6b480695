//! The embedded store: one SQLite file (WAL) in the agent's state
//! directory. This module owns the schema and every query.
//!
//! Tables: `runs` (every run), `findings` (de-duplicated by check and
//! fingerprint, with first/last seen and resolution), `outputs` and
//! `output_history`, `check_status` (the state machine of
//! [`crate::checkstate`] plus scheduler bookkeeping), and `check_state`
//! (the plugins' key/value state).
//!
//! Results are written by one writer thread that batches concurrent runs
//! into one transaction; [`Store::record`] returns only after the commit, so
//! a result the agent acknowledges (in the API or the log) survives a
//! `kill -9`. Reads use a separate connection.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use crate::checkstate::{CheckState, Transition};
use crate::report::{Finding, Status};
use crate::runtime::RunOutcome;

const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS check_state (
    check_name TEXT NOT NULL,
    key        TEXT NOT NULL,
    value      TEXT NOT NULL,
    updated_ms INTEGER NOT NULL,
    PRIMARY KEY (check_name, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS runs (
    id            INTEGER PRIMARY KEY,
    run_id        TEXT NOT NULL,
    check_name    TEXT NOT NULL,
    plugin        TEXT NOT NULL,
    plugin_sha256 TEXT NOT NULL,
    scheduled_ms  INTEGER NOT NULL,
    started_ms    INTEGER NOT NULL,
    finished_ms   INTEGER NOT NULL,
    duration_s    REAL NOT NULL,
    attempt       INTEGER NOT NULL,
    manual        INTEGER NOT NULL,
    status        TEXT NOT NULL,
    summary       TEXT NOT NULL,
    error         TEXT,
    metrics       TEXT NOT NULL,
    findings      TEXT NOT NULL,
    outputs       TEXT NOT NULL,
    refusals      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_by_check ON runs (check_name, id);
CREATE INDEX IF NOT EXISTS runs_by_time ON runs (finished_ms);
CREATE TABLE IF NOT EXISTS findings (
    check_name    TEXT NOT NULL,
    fingerprint   TEXT NOT NULL,
    rule          TEXT NOT NULL,
    severity      TEXT NOT NULL,
    message       TEXT NOT NULL,
    location      TEXT,
    attributes    TEXT NOT NULL,
    first_seen_ms INTEGER NOT NULL,
    last_seen_ms  INTEGER NOT NULL,
    resolved_ms   INTEGER,
    last_run_id   TEXT NOT NULL,
    PRIMARY KEY (check_name, fingerprint)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS outputs (
    check_name TEXT NOT NULL,
    key        TEXT NOT NULL,
    value      TEXT NOT NULL,
    updated_ms INTEGER NOT NULL,
    PRIMARY KEY (check_name, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS output_history (
    id         INTEGER PRIMARY KEY,
    check_name TEXT NOT NULL,
    key        TEXT NOT NULL,
    value      TEXT NOT NULL,
    changed_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS check_status (
    check_name       TEXT PRIMARY KEY,
    state            TEXT NOT NULL,
    last_due_ms      INTEGER,
    last_run_id      TEXT,
    runs_ok          INTEGER NOT NULL DEFAULT 0,
    runs_warning     INTEGER NOT NULL DEFAULT 0,
    runs_critical    INTEGER NOT NULL DEFAULT 0,
    runs_unknown     INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
";

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A run to record, with what the state machine needs.
#[derive(Debug, Clone)]
pub struct RunRecord {
    /// What happened.
    pub outcome: RunOutcome,
    /// Started from the API rather than the schedule.
    pub manual: bool,
    /// The due time it served (scheduled runs).
    pub due_ms: Option<i64>,
    /// Non-OK results before hard.
    pub failure_threshold: u32,
    /// OK results before recovered.
    pub success_threshold: u32,
}

/// What recording a run changed.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// Row id of the run.
    pub id: i64,
    /// The check's state after the run.
    pub state: CheckState,
    /// A change of the hard status, if any.
    pub transition: Option<Transition>,
    /// All current outputs of the check, when any output changed.
    pub outputs_changed: Option<BTreeMap<String, String>>,
}

/// A stored run, as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct StoredRun {
    /// Row id (for pagination).
    pub id: i64,
    /// Run id.
    pub run_id: String,
    /// Check.
    pub check: String,
    /// Plugin.
    pub plugin: String,
    /// Plugin sha256.
    pub plugin_sha256: String,
    /// Due time.
    pub scheduled_unix_ms: i64,
    /// Start.
    pub started_unix_ms: i64,
    /// End.
    pub finished_unix_ms: i64,
    /// Duration.
    pub duration_seconds: f64,
    /// Attempt.
    pub attempt: u32,
    /// From the API.
    pub manual: bool,
    /// Status.
    pub status: Status,
    /// Summary.
    pub summary: String,
    /// Error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Metrics.
    pub metrics: serde_json::Value,
    /// Findings.
    pub findings: serde_json::Value,
    /// Outputs.
    pub outputs: serde_json::Value,
    /// Refusals.
    pub refusals: serde_json::Value,
}

/// A de-duplicated finding.
#[derive(Debug, Clone, Serialize)]
pub struct StoredFinding {
    /// Check.
    pub check: String,
    /// Fingerprint.
    pub fingerprint: String,
    /// Rule.
    pub rule: String,
    /// Severity.
    pub severity: String,
    /// Message.
    pub message: String,
    /// Location.
    pub location: Option<String>,
    /// Attributes.
    pub attributes: serde_json::Value,
    /// First seen.
    pub first_seen_unix_ms: i64,
    /// Last seen.
    pub last_seen_unix_ms: i64,
    /// Resolved (absent from a later decisive run).
    pub resolved_unix_ms: Option<i64>,
}

/// An output's current value.
#[derive(Debug, Clone, Serialize)]
pub struct StoredOutput {
    /// Check.
    pub check: String,
    /// Key.
    pub key: String,
    /// Value.
    pub value: String,
    /// Last change.
    pub updated_unix_ms: i64,
}

/// Filters for [`Store::runs`].
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    /// Only this check.
    pub check: Option<String>,
    /// Only this status.
    pub status: Option<Status>,
    /// Finished at or after (ms).
    pub since_ms: Option<i64>,
    /// Rows with id below this (pagination cursor).
    pub before_id: Option<i64>,
    /// Page size.
    pub limit: usize,
}

/// Persisted per-check bookkeeping loaded at start.
#[derive(Debug, Clone, Default)]
pub struct CheckRecord {
    /// State machine.
    pub state: Option<CheckState>,
    /// Last due time dispatched.
    pub last_due_ms: Option<i64>,
    /// Runs by status.
    pub runs_by_status: [u64; 4],
}

enum Job {
    Record(
        Box<RunRecord>,
        tokio::sync::oneshot::Sender<Result<Recorded, String>>,
    ),
    Due(String, i64),
    Retain {
        keep_runs: usize,
        keep_days: u64,
    },
    Flush(mpsc::Sender<()>),
}

/// A handle to the store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    read: Arc<Mutex<Connection>>,
    writer: mpsc::Sender<Job>,
}

fn open_connection(path: &Path) -> Result<Connection> {
    let conn =
        Connection::open(path).with_context(|| format!("opening store {}", path.display()))?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(conn)
}

impl Store {
    /// Opens (creating if needed) the store at `path` and starts its
    /// writer thread.
    pub fn open(path: &Path) -> Result<Store> {
        if let Some(dir) = path.parent() {
            crate::engine::create_private_dir(dir)?;
        }
        let conn = open_connection(path)?;
        // Plugin state may hold tokens; keep the file private.
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .with_context(|| format!("restricting permissions of {}", path.display()))?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version > SCHEMA_VERSION {
            anyhow::bail!(
                "store {} has schema version {version}, newer than this agent's {SCHEMA_VERSION}",
                path.display()
            );
        }
        conn.execute_batch(SCHEMA)
            .with_context(|| format!("creating schema in {}", path.display()))?;
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        let writer_conn = open_connection(path)?;
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("warden-store".into())
            .spawn(move || writer_loop(writer_conn, rx))
            .context("starting the store writer")?;
        Ok(Store {
            read: Arc::new(Mutex::new(conn)),
            writer: tx,
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // Every write is a transaction, so a poisoned lock is safe to reuse.
        self.read.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a run; returns after it is committed.
    pub async fn record(&self, record: RunRecord) -> Result<Recorded> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.writer
            .send(Job::Record(Box::new(record), tx))
            .map_err(|_| anyhow::anyhow!("the store writer has stopped"))?;
        rx.await
            .map_err(|_| anyhow::anyhow!("the store writer has stopped"))?
            .map_err(|e| anyhow::anyhow!(e))
    }

    /// Remembers that `check`'s due time `due_ms` was dispatched.
    pub fn mark_due(&self, check: &str, due_ms: i64) {
        let _ = self.writer.send(Job::Due(check.to_string(), due_ms));
    }

    /// Applies the retention policy (in the background).
    pub fn retain(&self, keep_runs: usize, keep_days: u64) {
        let _ = self.writer.send(Job::Retain {
            keep_runs,
            keep_days,
        });
    }

    /// Waits until everything sent to the writer is committed.
    pub fn flush(&self) {
        let (tx, rx) = mpsc::channel();
        if self.writer.send(Job::Flush(tx)).is_ok() {
            let _ = rx.recv_timeout(Duration::from_secs(30));
        }
    }

    /// True when a write goes through (for `/readyz`).
    pub fn writable(&self) -> bool {
        self.conn()
            .execute_batch("BEGIN IMMEDIATE; ROLLBACK;")
            .is_ok()
    }

    /// Reads one state value of a check.
    pub fn state_get(&self, check: &str, key: &str) -> Result<Option<String>> {
        self.conn()
            .prepare_cached("SELECT value FROM check_state WHERE check_name = ?1 AND key = ?2")?
            .query_row(params![check, key], |r| r.get(0))
            .optional()
            .context("reading check state")
    }

    /// Applies a run's state changes atomically (`None` deletes).
    pub fn state_commit(&self, check: &str, changes: &[(String, Option<String>)]) -> Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let now = now_ms();
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        {
            let mut put = tx.prepare_cached(
                "INSERT INTO check_state (check_name, key, value, updated_ms) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (check_name, key) DO UPDATE SET value = excluded.value, updated_ms = excluded.updated_ms",
            )?;
            let mut del =
                tx.prepare_cached("DELETE FROM check_state WHERE check_name = ?1 AND key = ?2")?;
            for (key, value) in changes {
                match value {
                    Some(v) => put.execute(params![check, key, v, now])?,
                    None => del.execute(params![check, key])?,
                };
            }
        }
        tx.commit().context("committing check state")
    }

    /// Persisted bookkeeping of every check.
    pub fn check_records(&self) -> Result<HashMap<String, CheckRecord>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT check_name, state, last_due_ms, runs_ok, runs_warning, runs_critical, runs_unknown FROM check_status",
        )?;
        let rows = stmt.query_map([], |r| {
            let state: String = r.get(1)?;
            Ok((
                r.get::<_, String>(0)?,
                CheckRecord {
                    state: serde_json::from_str(&state).ok(),
                    last_due_ms: r.get(2)?,
                    runs_by_status: [
                        r.get::<_, i64>(3)? as u64,
                        r.get::<_, i64>(4)? as u64,
                        r.get::<_, i64>(5)? as u64,
                        r.get::<_, i64>(6)? as u64,
                    ],
                },
            ))
        })?;
        rows.collect::<rusqlite::Result<_>>()
            .context("reading check status")
    }

    /// Runs, newest first.
    pub fn runs(&self, f: &RunFilter) -> Result<Vec<StoredRun>> {
        let conn = self.conn();
        let mut sql = String::from(
            "SELECT id, run_id, check_name, plugin, plugin_sha256, scheduled_ms, started_ms, finished_ms, duration_s,
                    attempt, manual, status, summary, error, metrics, findings, outputs, refusals
             FROM runs WHERE 1 = 1",
        );
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        if let Some(c) = &f.check {
            sql.push_str(" AND check_name = ?");
            args.push(c.clone().into());
        }
        if let Some(s) = f.status {
            sql.push_str(" AND status = ?");
            args.push(status_str(s).to_string().into());
        }
        if let Some(since) = f.since_ms {
            sql.push_str(" AND finished_ms >= ?");
            args.push(since.into());
        }
        if let Some(before) = f.before_id {
            sql.push_str(" AND id < ?");
            args.push(before.into());
        }
        sql.push_str(" ORDER BY id DESC LIMIT ?");
        args.push((f.limit.clamp(1, 1000) as i64).into());
        let mut stmt = conn.prepare(&sql)?;
        let json = |s: String| serde_json::from_str(&s).unwrap_or(serde_json::Value::Null);
        let rows = stmt.query_map(rusqlite::params_from_iter(args), |r| {
            Ok(StoredRun {
                id: r.get(0)?,
                run_id: r.get(1)?,
                check: r.get(2)?,
                plugin: r.get(3)?,
                plugin_sha256: r.get(4)?,
                scheduled_unix_ms: r.get(5)?,
                started_unix_ms: r.get(6)?,
                finished_unix_ms: r.get(7)?,
                duration_seconds: r.get(8)?,
                attempt: r.get::<_, i64>(9)? as u32,
                manual: r.get::<_, i64>(10)? != 0,
                status: parse_status(&r.get::<_, String>(11)?),
                summary: r.get(12)?,
                error: r.get(13)?,
                metrics: json(r.get(14)?),
                findings: json(r.get(15)?),
                outputs: json(r.get(16)?),
                refusals: json(r.get(17)?),
            })
        })?;
        rows.collect::<rusqlite::Result<_>>()
            .context("reading runs")
    }

    /// Findings of one check or all, open ones only unless `resolved`.
    pub fn findings(&self, check: Option<&str>, resolved: bool) -> Result<Vec<StoredFinding>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT check_name, fingerprint, rule, severity, message, location, attributes,
                    first_seen_ms, last_seen_ms, resolved_ms
             FROM findings
             WHERE (?1 IS NULL OR check_name = ?1) AND (?2 OR resolved_ms IS NULL)
             ORDER BY check_name, first_seen_ms, fingerprint",
        )?;
        let rows = stmt.query_map(params![check, resolved], |r| {
            Ok(StoredFinding {
                check: r.get(0)?,
                fingerprint: r.get(1)?,
                rule: r.get(2)?,
                severity: r.get(3)?,
                message: r.get(4)?,
                location: r.get(5)?,
                attributes: serde_json::from_str(&r.get::<_, String>(6)?).unwrap_or_default(),
                first_seen_unix_ms: r.get(7)?,
                last_seen_unix_ms: r.get(8)?,
                resolved_unix_ms: r.get(9)?,
            })
        })?;
        rows.collect::<rusqlite::Result<_>>()
            .context("reading findings")
    }

    /// Current outputs of one check or all.
    pub fn outputs(&self, check: Option<&str>) -> Result<Vec<StoredOutput>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT check_name, key, value, updated_ms FROM outputs
             WHERE (?1 IS NULL OR check_name = ?1) ORDER BY check_name, key",
        )?;
        let rows = stmt.query_map(params![check], |r| {
            Ok(StoredOutput {
                check: r.get(0)?,
                key: r.get(1)?,
                value: r.get(2)?,
                updated_unix_ms: r.get(3)?,
            })
        })?;
        rows.collect::<rusqlite::Result<_>>()
            .context("reading outputs")
    }

    /// Past values of one output, newest first.
    pub fn output_history(
        &self,
        check: &str,
        key: &str,
        limit: usize,
    ) -> Result<Vec<(String, i64)>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT value, changed_ms FROM output_history WHERE check_name = ?1 AND key = ?2
             ORDER BY id DESC LIMIT ?3",
        )?;
        let rows = stmt.query_map(params![check, key, limit as i64], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
        rows.collect::<rusqlite::Result<_>>()
            .context("reading output history")
    }
}

/// The text a status is stored as.
pub fn status_str(s: Status) -> &'static str {
    match s {
        Status::Ok => "ok",
        Status::Warning => "warning",
        Status::Critical => "critical",
        Status::Unknown => "unknown",
    }
}

fn parse_status(s: &str) -> Status {
    match s {
        "ok" => Status::Ok,
        "warning" => Status::Warning,
        "critical" => Status::Critical,
        _ => Status::Unknown,
    }
}

fn status_column(s: Status) -> &'static str {
    match s {
        Status::Ok => "runs_ok",
        Status::Warning => "runs_warning",
        Status::Critical => "runs_critical",
        Status::Unknown => "runs_unknown",
    }
}

fn severity_str(f: &Finding) -> String {
    serde_json::to_value(f.severity)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn writer_loop(mut conn: Connection, rx: mpsc::Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < 512 {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let mut replies = Vec::new();
        let mut flushes = Vec::new();
        let result = (|| -> rusqlite::Result<()> {
            let mut tx = conn.transaction()?;
            for job in batch {
                match job {
                    Job::Record(rec, reply) => {
                        // A savepoint per run: one bad record leaves no
                        // partial rows and does not sink the batch.
                        let sp = tx.savepoint()?;
                        let r = record_one(&sp, &rec).map_err(|e| format!("{e:#}"));
                        if r.is_ok() {
                            sp.commit()?;
                        }
                        replies.push((reply, r));
                    }
                    Job::Due(check, due) => {
                        tx.prepare_cached(
                            "INSERT INTO check_status (check_name, state, last_due_ms) VALUES (?1, 'null', ?2)
                             ON CONFLICT (check_name) DO UPDATE SET last_due_ms = MAX(COALESCE(last_due_ms, 0), excluded.last_due_ms)",
                        )?
                        .execute(params![check, due])?;
                    }
                    Job::Retain {
                        keep_runs,
                        keep_days,
                    } => retain(&tx, keep_runs, keep_days)?,
                    Job::Flush(done) => flushes.push(done),
                }
            }
            tx.commit()
        })();
        for (reply, r) in replies {
            let r = match (&result, r) {
                (Err(e), _) => Err(format!("committing run: {e}")),
                (Ok(()), r) => r,
            };
            let _ = reply.send(r);
        }
        if let Err(e) = result {
            tracing::error!(error = %e, "store write failed");
        }
        for done in flushes {
            let _ = done.send(());
        }
    }
}

fn retain(
    tx: &rusqlite::Transaction<'_>,
    keep_runs: usize,
    keep_days: u64,
) -> rusqlite::Result<()> {
    let cutoff = now_ms() - (keep_days as i64) * 86_400_000;
    let by_age = tx.execute("DELETE FROM runs WHERE finished_ms < ?1", params![cutoff])?;
    let by_count = tx.execute(
        "DELETE FROM runs WHERE id IN (
            SELECT id FROM (
                SELECT id, ROW_NUMBER() OVER (PARTITION BY check_name ORDER BY id DESC) AS n FROM runs
            ) WHERE n > ?1)",
        params![keep_runs as i64],
    )?;
    tx.execute(
        "DELETE FROM output_history WHERE changed_ms < ?1",
        params![cutoff],
    )?;
    tx.execute(
        "DELETE FROM findings WHERE resolved_ms IS NOT NULL AND resolved_ms < ?1",
        params![cutoff],
    )?;
    if by_age + by_count > 0 {
        tracing::info!(by_age, by_count, "retention removed old runs");
    }
    Ok(())
}

fn record_one(tx: &Connection, rec: &RunRecord) -> Result<Recorded> {
    let o = &rec.outcome;
    let now = o.finished_unix_ms as i64;
    tx.prepare_cached(
        "INSERT INTO runs (run_id, check_name, plugin, plugin_sha256, scheduled_ms, started_ms, finished_ms,
                           duration_s, attempt, manual, status, summary, error, metrics, findings, outputs, refusals)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
    )?
    .execute(params![
        o.run_id,
        o.check,
        o.plugin,
        o.plugin_sha256,
        o.scheduled_unix_ms as i64,
        o.started_unix_ms as i64,
        now,
        o.duration_seconds,
        o.attempt,
        rec.manual,
        status_str(o.status),
        o.summary,
        o.error,
        serde_json::to_string(&o.metrics)?,
        serde_json::to_string(&o.findings)?,
        serde_json::to_string(&o.outputs)?,
        serde_json::to_string(&o.refusals)?,
    ])?;
    let id = tx.last_insert_rowid();

    // State machine.
    let prev: Option<String> = tx
        .prepare_cached("SELECT state FROM check_status WHERE check_name = ?1")?
        .query_row(params![o.check], |r| r.get(0))
        .optional()?;
    let prev: CheckState = prev
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default();
    let (state, transition) =
        prev.apply(o.status, now, rec.failure_threshold, rec.success_threshold);
    let sql = format!(
        "INSERT INTO check_status (check_name, state, last_due_ms, last_run_id, {col}) VALUES (?1, ?2, ?3, ?4, 1)
         ON CONFLICT (check_name) DO UPDATE SET state = excluded.state, last_run_id = excluded.last_run_id,
           last_due_ms = MAX(COALESCE(last_due_ms, 0), COALESCE(excluded.last_due_ms, 0)), {col} = {col} + 1",
        col = status_column(o.status)
    );
    tx.prepare_cached(&sql)?.execute(params![
        o.check,
        serde_json::to_string(&state)?,
        rec.due_ms,
        o.run_id
    ])?;

    // Findings: only a decisive run (not unknown) may resolve them.
    if o.status != Status::Unknown {
        let mut upsert = tx.prepare_cached(
            "INSERT INTO findings (check_name, fingerprint, rule, severity, message, location, attributes,
                                   first_seen_ms, last_seen_ms, resolved_ms, last_run_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, NULL, ?9)
             ON CONFLICT (check_name, fingerprint) DO UPDATE SET rule = excluded.rule, severity = excluded.severity,
               message = excluded.message, location = excluded.location, attributes = excluded.attributes,
               last_seen_ms = excluded.last_seen_ms, resolved_ms = NULL, last_run_id = excluded.last_run_id",
        )?;
        for f in &o.findings {
            upsert.execute(params![
                o.check,
                f.fingerprint,
                f.rule,
                severity_str(f),
                f.message,
                f.location,
                serde_json::to_string(&f.attributes)?,
                now,
                o.run_id
            ])?;
        }
        tx.prepare_cached(
            "UPDATE findings SET resolved_ms = ?1
             WHERE check_name = ?2 AND resolved_ms IS NULL AND last_run_id != ?3",
        )?
        .execute(params![now, o.check, o.run_id])?;
    }

    // Outputs: current value and history, only on change.
    let mut changed = false;
    for out in &o.outputs {
        let current: Option<String> = tx
            .prepare_cached("SELECT value FROM outputs WHERE check_name = ?1 AND key = ?2")?
            .query_row(params![o.check, out.key], |r| r.get(0))
            .optional()?;
        if current.as_deref() != Some(out.value.as_str()) {
            changed = true;
            tx.prepare_cached(
                "INSERT INTO outputs (check_name, key, value, updated_ms) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (check_name, key) DO UPDATE SET value = excluded.value, updated_ms = excluded.updated_ms",
            )?
            .execute(params![o.check, out.key, out.value, now])?;
            tx.prepare_cached(
                "INSERT INTO output_history (check_name, key, value, changed_ms) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![o.check, out.key, out.value, now])?;
        }
    }
    let outputs_changed = if changed {
        let mut stmt = tx.prepare_cached("SELECT key, value FROM outputs WHERE check_name = ?1")?;
        let all = stmt
            .query_map(params![o.check], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })?
            .collect::<rusqlite::Result<BTreeMap<_, _>>>()?;
        Some(all)
    } else {
        None
    };
    Ok(Recorded {
        id,
        state,
        transition,
        outputs_changed,
    })
}

/// For tests and tools: whether the database file passes SQLite's own
/// integrity check.
pub fn integrity_ok(path: &Path) -> Result<bool> {
    let conn = Connection::open(path)?;
    let result: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
    Ok(result == "ok")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Output, Severity};

    #[test]
    fn state_survives_reopen_and_is_scoped_per_check() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("warden.db");
        {
            let store = Store::open(&path).unwrap();
            store
                .state_commit(
                    "a",
                    &[
                        ("k".into(), Some("1".into())),
                        ("gone".into(), Some("x".into())),
                    ],
                )
                .unwrap();
            store.state_commit("a", &[("gone".into(), None)]).unwrap();
            store
                .state_commit("b", &[("k".into(), Some("2".into()))])
                .unwrap();
        }
        let store = Store::open(&path).unwrap();
        assert_eq!(store.state_get("a", "k").unwrap().as_deref(), Some("1"));
        assert_eq!(store.state_get("b", "k").unwrap().as_deref(), Some("2"));
        assert_eq!(store.state_get("a", "gone").unwrap(), None);
    }

    fn outcome(n: u32, status: Status, findings: &[&str], outputs: &[(&str, &str)]) -> RunOutcome {
        RunOutcome {
            run_id: format!("run-{n}"),
            check: "c".into(),
            plugin: "p".into(),
            plugin_sha256: "00".into(),
            status,
            summary: format!("run {n}"),
            error: None,
            metrics: vec![],
            findings: findings
                .iter()
                .map(|fp| Finding {
                    fingerprint: fp.to_string(),
                    rule: "r".into(),
                    severity: Severity::High,
                    message: "m".into(),
                    location: None,
                    attributes: vec![],
                })
                .collect(),
            outputs: outputs
                .iter()
                .map(|(k, v)| Output {
                    key: k.to_string(),
                    value: v.to_string(),
                })
                .collect(),
            scheduled_unix_ms: 1000 * n as u64,
            started_unix_ms: 1000 * n as u64,
            finished_unix_ms: 1000 * n as u64 + 1,
            duration_seconds: 0.001,
            attempt: 1,
            http_requests: 0,
            refusals: vec![],
        }
    }

    fn rec(o: RunOutcome) -> RunRecord {
        RunRecord {
            outcome: o,
            manual: false,
            due_ms: None,
            failure_threshold: 1,
            success_threshold: 1,
        }
    }

    #[tokio::test]
    async fn findings_dedup_resolve_and_outputs_change_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("w.db")).unwrap();
        let r = store
            .record(rec(outcome(
                1,
                Status::Critical,
                &["a", "b"],
                &[("URL", "x")],
            )))
            .await
            .unwrap();
        assert!(r.outputs_changed.is_some());
        let r = store
            .record(rec(outcome(2, Status::Critical, &["a"], &[("URL", "x")])))
            .await
            .unwrap();
        assert!(r.outputs_changed.is_none(), "same value is not a change");
        // An unknown run resolves nothing.
        store
            .record(rec(outcome(3, Status::Unknown, &[], &[])))
            .await
            .unwrap();
        let open = store.findings(Some("c"), false).unwrap();
        assert_eq!(
            open.iter()
                .map(|f| f.fingerprint.as_str())
                .collect::<Vec<_>>(),
            vec!["a"]
        );
        let all = store.findings(Some("c"), true).unwrap();
        let a = all.iter().find(|f| f.fingerprint == "a").unwrap();
        assert_eq!((a.first_seen_unix_ms, a.last_seen_unix_ms), (1001, 2001));
        assert!(
            all.iter()
                .find(|f| f.fingerprint == "b")
                .unwrap()
                .resolved_unix_ms
                .is_some()
        );
        let r = store
            .record(rec(outcome(4, Status::Ok, &[], &[("URL", "y")])))
            .await
            .unwrap();
        assert_eq!(
            r.outputs_changed.unwrap().get("URL").map(String::as_str),
            Some("y")
        );
        assert_eq!(store.output_history("c", "URL", 10).unwrap().len(), 2);
        assert!(store.findings(Some("c"), false).unwrap().is_empty());
        assert_eq!(
            store
                .runs(&RunFilter {
                    limit: 10,
                    ..Default::default()
                })
                .unwrap()
                .len(),
            4
        );
        let crit = RunFilter {
            status: Some(Status::Critical),
            limit: 10,
            ..Default::default()
        };
        assert_eq!(store.runs(&crit).unwrap().len(), 2);
    }

    #[tokio::test]
    async fn retention_keeps_the_newest_runs_per_check() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("w.db")).unwrap();
        let now = now_ms() as u64;
        for n in 0..10 {
            let mut o = outcome(n, Status::Ok, &[], &[]);
            o.finished_unix_ms = now;
            store.record(rec(o)).await.unwrap();
        }
        store.retain(3, 30);
        store.flush();
        let runs = store
            .runs(&RunFilter {
                limit: 100,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(
            runs.iter().map(|r| r.run_id.as_str()).collect::<Vec<_>>(),
            vec!["run-9", "run-8", "run-7"]
        );
    }
}

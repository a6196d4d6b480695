//! The embedded store: one SQLite file (WAL) in the agent's state
//! directory. This module owns every query; [`schema`] owns the tables
//! and their upgrades; [`writer`] owns every write.
//!
//! Writes (runs, plugin state, due times, retention) go to one writer
//! thread that batches concurrent jobs into one transaction; [`Store::record`]
//! returns only after the commit, so a result the agent acknowledges (in the
//! API or the log) survives a `kill -9`. Reads use a separate connection.
//! The store keeps what it is given: the check's health is decided by
//! [`crate::health`] before a run is recorded.

pub mod acks;
pub mod actions;
pub mod backup;
pub mod incidents;
pub mod outbox;
pub mod rollups;
mod schema;
pub mod silences;
mod writer;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use anyhow::{Context as _, Result};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use warden_runtime::caps::state::CommitFuture;
use warden_runtime::{RunOutcome, StateBackend, StateChanges, StateQuota, Status};

use crate::health::Health;
use crate::limits;
use writer::{Job, WriteHealth};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    warden_runtime::report::unix_ms(SystemTime::now()) as i64
}

/// A run to record.
#[derive(Debug, Clone)]
pub struct RunRecord {
    /// What happened.
    pub outcome: Arc<RunOutcome>,
    /// Started from the API rather than the schedule.
    pub manual: bool,
    /// The due time it served (scheduled runs).
    pub due_ms: Option<i64>,
    /// The check's health after this run.
    pub health: Health,
    /// Notifications the run's transition makes, queued with it.
    pub notifications: Vec<outbox::Outgoing>,
    /// The change of hard status the run made, if any (incidents open
    /// and close with it).
    pub transition: Option<crate::health::Transition>,
}

impl RunRecord {
    /// A scheduled run's record with no due time, a default health and no
    /// notifications (tests, benchmarks, imports).
    pub fn plain(outcome: RunOutcome) -> RunRecord {
        RunRecord {
            outcome: Arc::new(outcome),
            manual: false,
            due_ms: None,
            health: Health::default(),
            notifications: Vec::new(),
            transition: None,
        }
    }
}

/// What recording a run changed.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// All current outputs of the check, when any output changed.
    pub outputs_changed: Option<BTreeMap<String, String>>,
}

/// A stored run, as the API shows it: the run's outcome, its row id (for
/// pagination) and whether it was started from the API.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StoredRun {
    /// Row id.
    pub id: i64,
    /// From the API.
    pub manual: bool,
    /// The outcome.
    #[serde(flatten)]
    pub run: RunOutcome,
}

/// A de-duplicated finding.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
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
    /// The check's health.
    pub health: Option<Health>,
    /// Last due time dispatched.
    pub last_due_ms: Option<i64>,
    /// Runs by status.
    pub runs_by_status: [u64; 4],
    /// How long the latest stored run took (the run gate's first estimate
    /// of the check's cost after a restart).
    pub last_run: Option<std::time::Duration>,
    /// The latest stored run (its metrics are in `/metrics` again at
    /// once after a restart).
    pub latest: Option<RunOutcome>,
}

/// A handle to the store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    read: Arc<Mutex<Connection>>,
    writer: mpsc::Sender<Job>,
    /// The writer's thread, unparked for a job someone waits on (it may be
    /// lingering for a group commit).
    writer_thread: std::thread::Thread,
    health: Arc<WriteHealth>,
}

fn open_connection(path: &Path) -> Result<Connection> {
    let conn =
        Connection::open(path).with_context(|| format!("opening store {}", path.display()))?;
    conn.busy_timeout(limits::STORE_BUSY_TIMEOUT)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(conn)
}

impl Store {
    /// Opens (creating or upgrading if needed) the store at `path` and
    /// starts its writer thread.
    pub fn open(path: &Path) -> Result<Store> {
        Store::open_with(path, true)
    }

    /// [`Store::open`], keeping rollups up to date or not: `false` only to
    /// measure what they cost (`cargo bench --bench rollups`).
    pub fn open_with(path: &Path, rollups: bool) -> Result<Store> {
        if let Some(dir) = path.parent() {
            warden_runtime::engine::create_private_dir(dir)?;
        }
        // Before anything writes to it (switching to WAL rewrites the
        // header), a damaged store is reported and left as it is. A WAL
        // store whose -shm file is gone cannot be opened read-only; it is
        // checked on the writable connection (no header rewrite for it).
        let existed = path.exists();
        let checked = existed
            && match Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .and_then(|c| quick_check(&c))
            {
                Ok(rows) => {
                    refuse_if_damaged(rows, path)?;
                    true
                }
                Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::CannotOpen) => false,
                Err(e) => {
                    refuse_if_damaged(vec![e.to_string()], path)?;
                    true
                }
            };
        let conn = open_connection(path)?;
        if existed && !checked {
            refuse_if_damaged(
                quick_check(&conn).unwrap_or_else(|e| vec![e.to_string()]),
                path,
            )?;
        }
        // Plugin state may hold tokens; keep the file private.
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .with_context(|| format!("restricting permissions of {}", path.display()))?;
        schema::ensure(&conn, path)?;
        let counted = rollups::prepare(&conn)
            .with_context(|| format!("filling rollups from the runs in {}", path.display()))?;
        if counted > 0 {
            tracing::info!(
                runs = counted,
                "rollups filled from the stored runs (once, on upgrade)"
            );
        }
        let writer_conn = open_connection(path)?;
        let (tx, rx) = mpsc::channel();
        let health = Arc::new(WriteHealth::default());
        let writer_health = health.clone();
        let writer_thread = std::thread::Builder::new()
            .name("warden-store".into())
            .spawn(move || writer::writer_loop(writer_conn, rx, writer_health, rollups))
            .context("starting the store writer")?
            .thread()
            .clone();
        Ok(Store {
            read: Arc::new(Mutex::new(conn)),
            writer: tx,
            writer_thread,
            health,
        })
    }

    /// Records a run; returns after it is committed.
    pub async fn record(&self, record: RunRecord) -> Result<Recorded> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.send(Job::Record(Box::new(record), tx))?;
        rx.await
            .map_err(|_| anyhow::anyhow!("the store writer has stopped"))?
            .map_err(|e| anyhow::anyhow!(e))
    }

    /// Runs `f` on the writer thread (in a savepoint of its batch);
    /// returns its result once committed.
    async fn exec(
        &self,
        f: impl FnOnce(&Connection) -> Result<i64> + Send + 'static,
    ) -> Result<i64> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.send(Job::Exec(Box::new(f), tx))?;
        rx.await
            .map_err(|_| anyhow::anyhow!("the store writer has stopped"))?
            .map_err(|e| anyhow::anyhow!(e))
    }

    fn send(&self, job: Job) -> Result<()> {
        let urgent = !job.may_wait();
        self.writer
            .send(job)
            .map_err(|_| anyhow::anyhow!("the store writer has stopped"))?;
        if urgent {
            self.writer_thread.unpark();
        }
        Ok(())
    }

    /// Remembers that `check`'s due time `due_ms` was dispatched.
    pub fn mark_due(&self, check: &str, due_ms: i64) {
        let _ = self.send(Job::Due(check.to_string(), due_ms));
    }

    /// Applies the retention policy (in the background).
    pub fn retain(&self, keep_runs: usize, keep_days: u64, keep_rollup_days: u64) {
        let _ = self.send(Job::Retain {
            keep_runs,
            keep_days,
            keep_rollup_days,
        });
    }

    /// `check`'s rollups of resolution `r` whose buckets start in
    /// `since_ms..until_ms`, oldest first (buckets without runs are
    /// absent).
    pub fn rollups(
        &self,
        check: &str,
        r: rollups::Resolution,
        since_ms: i64,
        until_ms: i64,
    ) -> Result<Vec<(i64, rollups::Rollup)>> {
        rollups::read(&self.conn(), check, r, since_ms, until_ms)
    }

    /// Waits until everything sent to the writer is committed.
    pub fn flush(&self) {
        let (tx, rx) = mpsc::channel();
        if self.send(Job::Flush(tx)).is_ok() {
            let _ = rx.recv_timeout(limits::STORE_FLUSH_TIMEOUT);
        }
    }

    /// False while writes fail (the latest write, the writer's own probe
    /// included, did not go through), for `/readyz`.
    pub fn writable(&self) -> bool {
        self.health.ok()
    }

    /// Writes that failed since start, for `/metrics`.
    pub fn write_failures(&self) -> u64 {
        self.health.failures()
    }

    /// Transactions the writer has committed since start.
    pub fn commits(&self) -> u64 {
        self.health.commits()
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // Every write is a transaction, so a poisoned lock is safe to reuse.
        self.read.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Persisted bookkeeping of every check.
    pub fn check_records(&self) -> Result<HashMap<String, CheckRecord>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT check_name, state, last_due_ms, runs_ok, runs_warning, runs_critical, runs_unknown,
                    (SELECT duration_s FROM runs WHERE runs.check_name = check_status.check_name ORDER BY id DESC LIMIT 1)
             FROM check_status",
        )?;
        let rows = stmt.query_map([], |r| {
            let state: String = r.get(1)?;
            Ok((
                r.get::<_, String>(0)?,
                CheckRecord {
                    health: serde_json::from_str(&state).ok(),
                    last_due_ms: r.get(2)?,
                    runs_by_status: [
                        r.get::<_, i64>(3)? as u64,
                        r.get::<_, i64>(4)? as u64,
                        r.get::<_, i64>(5)? as u64,
                        r.get::<_, i64>(6)? as u64,
                    ],
                    last_run: r
                        .get::<_, Option<f64>>(7)?
                        .and_then(|s| std::time::Duration::try_from_secs_f64(s).ok()),
                    latest: None,
                },
            ))
        })?;
        let mut records: HashMap<String, CheckRecord> = rows
            .collect::<rusqlite::Result<_>>()
            .context("reading check status")?;
        drop(stmt);
        drop(conn);
        for run in self.select_runs(
            " AND id IN (SELECT MAX(id) FROM runs GROUP BY check_name)",
            Vec::new(),
        )? {
            if let Some(r) = records.get_mut(&run.run.check) {
                r.latest = Some(run.run);
            }
        }
        Ok(records)
    }

    /// Runs, newest first.
    pub fn runs(&self, f: &RunFilter) -> Result<Vec<StoredRun>> {
        let mut sql = String::new();
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        if let Some(c) = &f.check {
            sql.push_str(" AND check_name = ?");
            args.push(c.clone().into());
        }
        if let Some(s) = f.status {
            sql.push_str(" AND status = ?");
            args.push(s.as_str().to_string().into());
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
        args.push((f.limit.clamp(1, limits::MAX_RUNS_PAGE) as i64).into());
        self.select_runs(&sql, args)
    }

    /// Runs matching `filter` (SQL after `WHERE 1 = 1`) with `args`.
    fn select_runs(
        &self,
        filter: &str,
        args: Vec<rusqlite::types::Value>,
    ) -> Result<Vec<StoredRun>> {
        let conn = self.conn();
        let sql = format!(
            "SELECT id, run_id, check_name, plugin, plugin_sha256, scheduled_ms, started_ms, finished_ms, duration_s,
                    attempt, manual, status, summary, error, metrics, findings, outputs, refusals,
                    http_requests, shards, stderr
             FROM runs WHERE 1 = 1{filter}"
        );
        let mut stmt = conn.prepare(&sql)?;
        fn json<T: serde::de::DeserializeOwned + Default>(s: String) -> T {
            serde_json::from_str(&s).unwrap_or_default()
        }
        let rows = stmt.query_map(rusqlite::params_from_iter(args), |r| {
            Ok(StoredRun {
                id: r.get(0)?,
                manual: r.get::<_, i64>(10)? != 0,
                run: RunOutcome {
                    run_id: r.get(1)?,
                    check: r.get(2)?,
                    plugin: r.get(3)?,
                    plugin_sha256: r.get(4)?,
                    scheduled_unix_ms: r.get(5)?,
                    started_unix_ms: r.get(6)?,
                    finished_unix_ms: r.get(7)?,
                    duration_seconds: r.get(8)?,
                    attempt: r.get(9)?,
                    status: r.get::<_, String>(11)?.parse().unwrap_or(Status::Unknown),
                    summary: r.get(12)?,
                    error: r.get(13)?,
                    metrics: json(r.get(14)?),
                    findings: json(r.get(15)?),
                    outputs: json(r.get(16)?),
                    refusals: json(r.get(17)?),
                    http_requests: r.get(18)?,
                    shards: r.get::<_, Option<i64>>(19)?.map(|n| n as u32),
                    stderr: r.get(20)?,
                },
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

    /// The current value of `check`'s output `key`, if it has published
    /// one (what `${output:CHECK.KEY}` reads; a read error is no value).
    pub fn output_value(&self, check: &str, key: &str) -> Option<String> {
        self.conn()
            .prepare_cached("SELECT value FROM outputs WHERE check_name = ?1 AND key = ?2")
            .ok()?
            .query_row(params![check, key], |r| r.get(0))
            .optional()
            .ok()?
    }
}

/// Plugin state lives in the `check_state` table: read on the read
/// connection, committed by the writer thread.
impl StateBackend for Store {
    fn get(&self, check: &str, key: &str) -> Result<Option<String>> {
        self.conn()
            .prepare_cached("SELECT value FROM check_state WHERE check_name = ?1 AND key = ?2")?
            .query_row(params![check, key], |r| r.get(0))
            .optional()
            .context("reading check state")
    }

    fn commit(&self, check: &str, changes: StateChanges, quota: StateQuota) -> CommitFuture {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let sent = self.send(Job::State(check.to_string(), changes, quota, tx));
        Box::pin(async move {
            sent?;
            rx.await
                .map_err(|_| anyhow::anyhow!("the store writer has stopped"))?
                .map_err(|e| anyhow::anyhow!(e))
        })
    }
}

/// What SQLite's `quick_check` says (`ok`, or the first problems).
fn quick_check(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    conn.prepare("PRAGMA quick_check(5)")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
}

/// Refuses a store that `quick_check` found damaged, and never touches
/// it: what it holds may still be recovered.
fn refuse_if_damaged(problems: Vec<String>, path: &Path) -> Result<()> {
    if problems.first().map(String::as_str) == Some("ok") {
        return Ok(());
    }
    anyhow::bail!(
        "store {} is damaged (SQLite quick_check: {}); it was left as it is: move it aside to start with an empty store, or restore a copy",
        path.display(),
        problems.join("; ")
    )
}

/// For tests and tools: whether the database file passes SQLite's own
/// integrity check.
pub fn integrity_ok(path: &Path) -> Result<bool> {
    let conn = Connection::open(path)?;
    let result: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
    Ok(result == "ok")
}

#[cfg(test)]
mod tests;

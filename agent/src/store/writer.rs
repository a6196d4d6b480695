//! The writer thread: every write to the store goes through it, batched
//! into one transaction per wake-up with a savepoint per job, and is
//! acknowledged only after the commit. Scheduled runs' records wait up to
//! [`limits::STORE_LINGER`] to share a commit (group commit); a write
//! someone waits on is committed at once.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, mpsc};

use anyhow::Result;
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::oneshot;
use warden_runtime::{StateChanges, StateQuota, StateUsage, Status};

use super::{Recorded, RunRecord, now_ms};
use crate::limits;

/// A write for the writer thread.
pub(super) enum Job {
    /// A run, its health and its findings and outputs.
    Record(Box<RunRecord>, oneshot::Sender<Result<Recorded, String>>),
    /// One run's plugin state changes, within the check's quota.
    State(
        String,
        StateChanges,
        StateQuota,
        oneshot::Sender<Result<(), String>>,
    ),
    /// The due time a check was dispatched for.
    Due(String, i64),
    /// Retention.
    Retain {
        /// Runs kept per check.
        keep_runs: usize,
        /// Days kept.
        keep_days: u64,
        /// Days of rollups kept.
        keep_rollup_days: u64,
    },
    /// Replies once everything before it is committed.
    Flush(mpsc::Sender<()>),
    /// What became of an attempt at a notification.
    Settle(
        i64,
        super::outbox::Settlement,
        oneshot::Sender<Result<(), String>>,
    ),
    /// Notifications not tied to a run (reminders).
    Queue(Vec<super::outbox::Outgoing>),
    /// A write of its own (a silence, an acknowledgement), in a
    /// savepoint; replies once committed with what `f` returned.
    Exec(Exec, oneshot::Sender<Result<i64, String>>),
}

/// A write run by the writer thread.
pub(super) type Exec = Box<dyn FnOnce(&Connection) -> Result<i64> + Send>;

/// A job's own result, unless the batch's commit failed.
fn committed<T>(
    batch: &rusqlite::Result<()>,
    job: Result<T, String>,
    what: &str,
) -> Result<T, String> {
    match batch {
        Err(e) => Err(format!("committing {what}: {e}")),
        Ok(()) => job,
    }
}

/// Whether writes go through, for `/readyz` and `/metrics`.
#[derive(Debug)]
pub(super) struct WriteHealth {
    ok: AtomicBool,
    failures: AtomicU64,
    /// Transactions committed since start.
    commits: AtomicU64,
}

impl Default for WriteHealth {
    fn default() -> Self {
        WriteHealth {
            ok: AtomicBool::new(true),
            failures: AtomicU64::new(0),
            commits: AtomicU64::new(0),
        }
    }
}

impl WriteHealth {
    /// True unless the latest write failed.
    pub(super) fn ok(&self) -> bool {
        self.ok.load(Ordering::Relaxed)
    }

    /// Writes that failed since start (jobs, not transactions).
    pub(super) fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Transactions committed since start.
    pub(super) fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    fn record(&self, result: &rusqlite::Result<()>, jobs: u64) {
        match result {
            Ok(()) => {
                self.commits.fetch_add(1, Ordering::Relaxed);
                if !self.ok.swap(true, Ordering::Relaxed) {
                    tracing::info!("store writes go through again");
                }
            }
            Err(e) => {
                self.failures.fetch_add(jobs.max(1), Ordering::Relaxed);
                if self.ok.swap(false, Ordering::Relaxed) {
                    tracing::error!(error = %e, "store writes fail; /readyz reports it until one goes through");
                } else {
                    // Counted in /metrics; one error line per outage.
                    tracing::debug!(error = %e, "store write failed again");
                }
            }
        }
    }
}

/// A write that touches the disk, to find out when writes go through
/// again while nothing else is written.
fn probe(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO meta (key, value) VALUES ('write_probe_ms', ?1)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        params![now_ms()],
    )
    .map(|_| ())
}

/// State commits larger than this are committed in a transaction of their
/// own, after the small jobs waiting beside them: one check's large state
/// never holds other checks' runs.
const LARGE_STATE_BYTES: usize = 256 << 10;

impl Job {
    /// Whether this job is a large state commit.
    fn is_large(&self) -> bool {
        match self {
            Job::State(_, changes, _, _) => {
                changes
                    .iter()
                    .map(|(k, v)| k.len() + v.as_ref().map_or(0, String::len))
                    .sum::<usize>()
                    > LARGE_STATE_BYTES
            }
            _ => false,
        }
    }
}

impl Job {
    /// A write nobody is waiting on but a scheduled run's own task (its
    /// record, its due time, retention): it may wait [`limits::STORE_LINGER`]
    /// for others to share its commit.
    pub(super) fn may_wait(&self) -> bool {
        match self {
            Job::Record(rec, _) => !rec.manual,
            Job::Due(..) | Job::Retain { .. } => true,
            _ => false,
        }
    }
}

pub(super) fn writer_loop(
    mut conn: Connection,
    rx: mpsc::Receiver<Job>,
    health: Arc<WriteHealth>,
    keep_rollups: bool,
) {
    // Large state commits (and flushes queued behind them), oldest first.
    let mut deferred: std::collections::VecDeque<Job> = std::collections::VecDeque::new();
    let mut rollups = super::rollups::Rollups::default();
    loop {
        let first = if !deferred.is_empty() {
            rx.try_recv().ok()
        } else if health.ok() {
            match rx.recv() {
                Ok(job) => Some(job),
                Err(_) => return,
            }
        } else {
            match rx.recv_timeout(limits::STORE_PROBE_INTERVAL) {
                Ok(job) => Some(job),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    health.record(&probe(&conn), 0);
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
        };
        let mut batch = Vec::new();
        // Scheduled runs wait a little for company (group commit): one
        // transaction, and one wake of this thread, for the runs of
        // several ms instead of two per run. A job someone waits on ends
        // the wait (its sender unparks this thread).
        let mut linger = (health.ok() && deferred.is_empty())
            .then(|| std::time::Instant::now() + limits::STORE_LINGER);
        let mut next = first;
        'gather: loop {
            while let Some(job) = next {
                if !job.may_wait() {
                    linger = None;
                }
                // A flush waits for the large commits queued before it.
                if job.is_large() || (matches!(job, Job::Flush(_)) && !deferred.is_empty()) {
                    deferred.push_back(job);
                } else {
                    batch.push(job);
                }
                if batch.len() >= limits::STORE_BATCH {
                    break 'gather;
                }
                next = rx.try_recv().ok();
            }
            let Some(until) = linger else { break };
            let left = until.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                break;
            }
            std::thread::park_timeout(left);
            next = rx.try_recv().ok();
        }
        if batch.is_empty() {
            // Nothing small is waiting: one large commit, alone.
            let Some(job) = deferred.pop_front() else {
                continue;
            };
            batch.push(job);
            while matches!(deferred.front(), Some(Job::Flush(_))) {
                batch.extend(deferred.pop_front());
            }
        }
        let jobs = batch.len() as u64;
        let mut replies = Vec::new();
        let mut state_replies = Vec::new();
        let mut flushes = Vec::new();
        let mut settle_replies = Vec::new();
        let mut exec_replies = Vec::new();
        // Every job gets its answer, even after the batch has failed.
        let mut failed: Option<rusqlite::Error> = None;
        let mut tx = match conn.transaction() {
            Ok(tx) => Some(tx),
            Err(e) => {
                failed = Some(e);
                None
            }
        };
        for job in batch {
            let live = if failed.is_none() { tx.as_mut() } else { None };
            match job {
                Job::Record(rec, reply) => match live.map(|tx| savepoint(tx, |sp| record_one(sp, &rec))) {
                    // A savepoint per run: one bad record leaves no
                    // partial rows and does not sink the batch.
                    Some(Ok(r)) => {
                        if r.is_ok()
                            && keep_rollups
                            && let Some(tx) = tx.as_ref()
                            && let Err(e) = rollups.add(tx, &rec.outcome)
                        {
                            failed = Some(e);
                        }
                        replies.push((reply, r))
                    }
                    Some(Err(e)) => {
                        failed = Some(e);
                        replies.push((reply, Err(String::new())));
                    }
                    None => replies.push((reply, Err(String::new()))),
                },
                Job::State(check, changes, quota, reply) => {
                    match live.map(|tx| savepoint(tx, |sp| commit_state(sp, &check, &changes, quota))) {
                        Some(Ok(r)) => state_replies.push((reply, r)),
                        Some(Err(e)) => {
                            failed = Some(e);
                            state_replies.push((reply, Err(String::new())));
                        }
                        None => state_replies.push((reply, Err(String::new()))),
                    }
                }
                Job::Due(check, due) => {
                    if let Some(tx) = live
                        && let Err(e) = tx
                            .prepare_cached(
                                "INSERT INTO check_status (check_name, state, last_due_ms) VALUES (?1, 'null', ?2)
                                 ON CONFLICT (check_name) DO UPDATE SET last_due_ms = MAX(COALESCE(last_due_ms, 0), excluded.last_due_ms)",
                            )
                            .and_then(|mut st| st.execute(params![check, due]))
                    {
                        failed = Some(e);
                    }
                }
                Job::Retain {
                    keep_runs,
                    keep_days,
                    keep_rollup_days,
                } => {
                    if let Some(tx) = live
                        && let Err(e) = retain(tx, keep_runs, keep_days, keep_rollup_days)
                    {
                        failed = Some(e);
                    }
                }
                Job::Flush(done) => flushes.push(done),
                Job::Queue(rows) => {
                    if let Some(tx) = live
                        && let Err(e) = super::outbox::insert(tx, &rows, now_ms())
                    {
                        failed = Some(e);
                    }
                }
                Job::Settle(id, how, reply) => {
                    if let Some(tx) = live
                        && let Err(e) = super::outbox::settle(tx, id, &how, now_ms())
                    {
                        failed = Some(e);
                    }
                    settle_replies.push(reply);
                }
                Job::Exec(f, reply) => match live.map(|tx| savepoint(tx, f)) {
                    Some(Ok(r)) => exec_replies.push((reply, r)),
                    Some(Err(e)) => {
                        failed = Some(e);
                        exec_replies.push((reply, Err(String::new())));
                    }
                    None => exec_replies.push((reply, Err(String::new()))),
                },
            }
        }
        // The batch's runs, into their rollup rows: once per row.
        if failed.is_none()
            && let Some(tx) = &tx
            && let Err(e) = rollups.write(tx)
        {
            failed = Some(e);
        }
        let result = match (tx, failed) {
            (_, Some(e)) => Err(e),
            (Some(tx), None) => tx.commit(),
            (None, None) => Ok(()),
        };
        if result.is_err() {
            rollups.forget();
        }
        health.record(&result, jobs);
        for (reply, r) in replies {
            let _ = reply.send(committed(&result, r, "run"));
        }
        for (reply, r) in state_replies {
            let _ = reply.send(committed(&result, r, "check state"));
        }
        for reply in settle_replies {
            let _ = reply.send(committed(&result, Ok(()), "a notification's result"));
        }
        for (reply, r) in exec_replies {
            let _ = reply.send(committed(&result, r, "the change"));
        }
        for done in flushes {
            let _ = done.send(());
        }
    }
}

/// Runs `f` in a savepoint: its rows stand only if it succeeded. The
/// outer error is the database's (the batch fails); the inner one is the
/// job's own.
fn savepoint<T>(
    tx: &mut rusqlite::Transaction<'_>,
    f: impl FnOnce(&Connection) -> Result<T>,
) -> rusqlite::Result<Result<T, String>> {
    let sp = tx.savepoint()?;
    let r = f(&sp).map_err(|e| format!("{e:#}"));
    if r.is_ok() {
        sp.commit()?;
    }
    Ok(r)
}

/// Applies a run's state changes; refused (and, in its savepoint, undone)
/// when the check's state would then be over its quota.
fn commit_state(
    tx: &Connection,
    check: &str,
    changes: &StateChanges,
    quota: StateQuota,
) -> Result<()> {
    let now = now_ms();
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
    let (bytes, keys): (i64, i64) = tx
        .prepare_cached(
            "SELECT COALESCE(SUM(length(CAST(key AS BLOB)) + length(CAST(value AS BLOB))), 0), COUNT(*)
             FROM check_state WHERE check_name = ?1",
        )?
        .query_row(params![check], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let usage = StateUsage {
        bytes: bytes as u64,
        keys: keys as u64,
    };
    match quota.refuse(usage, "the check's state") {
        Some(why) => anyhow::bail!(why),
        None => Ok(()),
    }
}

fn retain(
    tx: &rusqlite::Transaction<'_>,
    keep_runs: usize,
    keep_days: u64,
    keep_rollup_days: u64,
) -> rusqlite::Result<()> {
    let cutoff = now_ms() - (keep_days as i64) * 86_400_000;
    tx.execute(
        "DELETE FROM rollups WHERE bucket_ms < ?1",
        params![now_ms() - (keep_rollup_days as i64) * 86_400_000],
    )?;
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
    super::outbox::retain(tx, limits::NOTIFY_KEEP)?;
    tx.execute("DELETE FROM silences WHERE ends_ms < ?1", params![cutoff])?;
    super::actions::retain(tx, cutoff)?;
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
                           duration_s, attempt, manual, status, summary, error, metrics, findings, outputs, refusals,
                           http_requests, shards, stderr)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)",
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
        o.status.as_str(),
        o.summary,
        o.error,
        serde_json::to_string(&o.metrics)?,
        serde_json::to_string(&o.findings)?,
        serde_json::to_string(&o.outputs)?,
        serde_json::to_string(&o.refusals)?,
        o.http_requests,
        o.shards,
        o.stderr,
    ])?;

    // The check's health, as the agent decided it.
    let sql = format!(
        "INSERT INTO check_status (check_name, state, last_due_ms, last_run_id, {col}) VALUES (?1, ?2, ?3, ?4, 1)
         ON CONFLICT (check_name) DO UPDATE SET state = excluded.state, last_run_id = excluded.last_run_id,
           last_due_ms = MAX(COALESCE(last_due_ms, 0), COALESCE(excluded.last_due_ms, 0)), {col} = {col} + 1",
        col = format!("runs_{}", o.status.as_str())
    );
    tx.prepare_cached(&sql)?.execute(params![
        o.check,
        serde_json::to_string(&rec.health)?,
        rec.due_ms,
        o.run_id
    ])?;

    // In the same transaction as the run: a crash loses or invents none.
    super::outbox::insert(tx, &rec.notifications, now)?;
    if let Some(t) = &rec.transition {
        super::incidents::on_transition(tx, t, o)?;
    }

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
                f.severity.as_str(),
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
    Ok(Recorded { outputs_changed })
}

//! Actions as stored: the outbox and audit trail of `[[action]]` runs.
//!
//! A firing is a row before anything runs: `pending` (waits for approval)
//! or `approved` (queued to run). Each step is a conditional update,
//! committed before the next begins, so a row moves forward once:
//! `pending` → `approved` | `rejected` | `expired`; `approved` → `running`
//! (committed before the plugin starts) → `succeeded` | `failed`. After a
//! crash, `approved` rows run (they never started), and `running` ones
//! become `interrupted` and never run again: the plugin may have made its
//! change, so repeating it is for a person to decide (with the same
//! idempotency key, the service can tell). Firings the guardrails hold
//! back are kept as `skipped`, with the reason.

use anyhow::{Context as _, Result};
use rusqlite::{OptionalExtension, Row, params};
use serde::Serialize;

use super::Store;

/// One firing of an action, as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ActionRecord {
    /// Its id.
    pub id: i64,
    /// The `[[action]]`'s name.
    pub action: String,
    /// The check that triggered it.
    pub check: String,
    /// The plugin it runs.
    pub plugin: String,
    /// `pending`, `approved`, `running`, `succeeded`, `failed`,
    /// `rejected`, `expired`, `interrupted` or `skipped`.
    pub state: String,
    /// Run as a dry run (nothing changed).
    pub dry_run: bool,
    /// What the plugin is given to make its change once.
    pub idempotency_key: String,
    /// The check's status when it triggered.
    pub trigger_status: String,
    /// That run's summary.
    pub trigger_summary: String,
    /// That run's id.
    pub trigger_run_id: String,
    /// The plugin's config as run (`${output:}`/`${trigger.}` filled in;
    /// `${env:}` left for the plugin). The API shows it redacted.
    pub config: serde_json::Value,
    /// When it fired (ms since the epoch).
    pub created_unix_ms: i64,
    /// When a pending firing expires.
    pub expires_unix_ms: Option<i64>,
    /// Who approved or rejected it (`auto` for an auto action).
    pub decided_by: Option<String>,
    /// When.
    pub decided_unix_ms: Option<i64>,
    /// When the plugin started.
    pub started_unix_ms: Option<i64>,
    /// When the run (and its verification) ended.
    pub finished_unix_ms: Option<i64>,
    /// The action run's status.
    pub result_status: Option<String>,
    /// The action run's summary (or why it could not run).
    pub result_summary: Option<String>,
    /// The check's status when it ran again after the action.
    pub verify_status: Option<String>,
    /// That run's summary.
    pub verify_summary: Option<String>,
    /// Why it was skipped, rejected, expired or interrupted.
    pub reason: Option<String>,
}

impl ActionRecord {
    /// A firing of `action` (by `check`'s run `run_id`, of status
    /// `status` and `summary`) at `now_ms`, before anything is decided.
    #[allow(clippy::too_many_arguments)]
    pub fn fired(
        action: &str,
        check: &str,
        plugin: &str,
        dry_run: bool,
        status: &str,
        summary: &str,
        run_id: &str,
        now_ms: i64,
    ) -> ActionRecord {
        ActionRecord {
            id: 0,
            action: action.into(),
            check: check.into(),
            plugin: plugin.into(),
            state: String::new(),
            dry_run,
            idempotency_key: String::new(),
            trigger_status: status.into(),
            trigger_summary: summary.into(),
            trigger_run_id: run_id.into(),
            config: serde_json::Value::Null,
            created_unix_ms: now_ms,
            expires_unix_ms: None,
            decided_by: None,
            decided_unix_ms: None,
            started_unix_ms: None,
            finished_unix_ms: None,
            result_status: None,
            result_summary: None,
            verify_status: None,
            verify_summary: None,
            reason: None,
        }
    }
}

const COLUMNS: &str = "id, action, check_name, plugin, state, dry_run, idempotency_key,
    trigger_status, trigger_summary, trigger_run_id, config, created_ms, expires_ms,
    decided_by, decided_ms, started_ms, finished_ms, result_status, result_summary,
    verify_status, verify_summary, reason";

fn from_row(r: &Row<'_>) -> rusqlite::Result<ActionRecord> {
    Ok(ActionRecord {
        id: r.get(0)?,
        action: r.get(1)?,
        check: r.get(2)?,
        plugin: r.get(3)?,
        state: r.get(4)?,
        dry_run: r.get(5)?,
        idempotency_key: r.get(6)?,
        trigger_status: r.get(7)?,
        trigger_summary: r.get(8)?,
        trigger_run_id: r.get(9)?,
        config: serde_json::from_str(&r.get::<_, String>(10)?).unwrap_or_default(),
        created_unix_ms: r.get(11)?,
        expires_unix_ms: r.get(12)?,
        decided_by: r.get(13)?,
        decided_unix_ms: r.get(14)?,
        started_unix_ms: r.get(15)?,
        finished_unix_ms: r.get(16)?,
        result_status: r.get(17)?,
        result_summary: r.get(18)?,
        verify_status: r.get(19)?,
        verify_summary: r.get(20)?,
        reason: r.get(21)?,
    })
}

/// States in which a firing is still open (one per action at a time).
pub const OPEN_STATES: &str = "('pending', 'approved', 'running')";

impl Store {
    /// The newest `limit` firings, newest first (of `action` only, if
    /// given).
    pub fn actions(&self, action: Option<&str>, limit: usize) -> Result<Vec<ActionRecord>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM actions WHERE (?1 IS NULL OR action = ?1)
             ORDER BY id DESC LIMIT ?2"
        ))?;
        let rows = stmt.query_map(params![action, limit as i64], from_row)?;
        rows.collect::<rusqlite::Result<_>>()
            .context("reading actions")
    }

    /// One firing.
    pub fn action_record(&self, id: i64) -> Result<Option<ActionRecord>> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare_cached(&format!("SELECT {COLUMNS} FROM actions WHERE id = ?1"))?;
        stmt.query_row(params![id], from_row)
            .optional()
            .context("reading an action")
    }

    /// Firings in `state`, oldest first.
    pub fn actions_in(&self, state: &str) -> Result<Vec<ActionRecord>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM actions WHERE state = ?1 ORDER BY id"
        ))?;
        let rows = stmt.query_map(params![state], from_row)?;
        rows.collect::<rusqlite::Result<_>>()
            .context("reading actions")
    }

    /// The open firing of `action` (pending, approved or running), if any.
    pub fn open_action(&self, action: &str) -> Result<Option<(i64, String)>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT id, state FROM actions WHERE action = ?1 AND state IN {OPEN_STATES}
             ORDER BY id LIMIT 1"
        ))?;
        stmt.query_row(params![action], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
            .context("reading actions")
    }

    /// When `action` started real (not dry) runs since `since_ms`, newest
    /// first (the cooldown and `max_per_hour`).
    pub fn action_starts(&self, action: &str, since_ms: i64) -> Result<Vec<i64>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT started_ms FROM actions WHERE action = ?1 AND dry_run = 0
             AND started_ms >= ?2 ORDER BY started_ms DESC",
        )?;
        let rows = stmt.query_map(params![action, since_ms], |r| r.get(0))?;
        rows.collect::<rusqlite::Result<_>>()
            .context("reading actions")
    }

    /// Stores a new firing (its `id` is ignored); its id once committed.
    pub async fn add_action(&self, a: ActionRecord) -> Result<i64> {
        self.exec(move |c| {
            c.execute(
                &format!(
                    "INSERT INTO actions ({}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10,
                     ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21)",
                    COLUMNS.trim_start_matches("id, ")
                ),
                params![
                    a.action,
                    a.check,
                    a.plugin,
                    a.state,
                    a.dry_run,
                    a.idempotency_key,
                    a.trigger_status,
                    a.trigger_summary,
                    a.trigger_run_id,
                    a.config.to_string(),
                    a.created_unix_ms,
                    a.expires_unix_ms,
                    a.decided_by,
                    a.decided_unix_ms,
                    a.started_unix_ms,
                    a.finished_unix_ms,
                    a.result_status,
                    a.result_summary,
                    a.verify_status,
                    a.verify_summary,
                    a.reason,
                ],
            )?;
            Ok(c.last_insert_rowid())
        })
        .await
    }

    /// Decides pending firing `id` (`approved` or `rejected`) by `who`,
    /// unless it has expired or was decided already; whether it was.
    pub async fn decide_action(
        &self,
        id: i64,
        to: &'static str,
        who: String,
        reason: Option<String>,
        now_ms: i64,
    ) -> Result<bool> {
        self.exec(move |c| {
            Ok(c.execute(
                "UPDATE actions SET state = ?2, decided_by = ?3, decided_ms = ?4,
                 reason = COALESCE(?5, reason),
                 finished_ms = CASE WHEN ?2 = 'rejected' THEN ?4 ELSE finished_ms END
                 WHERE id = ?1 AND state = 'pending' AND (expires_ms IS NULL OR expires_ms > ?4)",
                params![id, to, who, now_ms, reason],
            )? as i64)
        })
        .await
        .map(|n| n > 0)
    }

    /// Moves `id` from `approved` to `running` at `now_ms`, committed
    /// before the plugin starts; false if it was not approved (already
    /// started, by a run before a crash).
    pub async fn start_action(&self, id: i64, now_ms: i64) -> Result<bool> {
        self.exec(move |c| {
            Ok(c.execute(
                "UPDATE actions SET state = 'running', started_ms = ?2
                 WHERE id = ?1 AND state = 'approved'",
                params![id, now_ms],
            )? as i64)
        })
        .await
        .map(|n| n > 0)
    }

    /// Ends `id` in `state` (from `approved` or `running`), with what the
    /// run and its verification said.
    #[allow(clippy::too_many_arguments)]
    pub async fn finish_action(
        &self,
        id: i64,
        state: &'static str,
        result: Option<(String, String)>,
        verify: Option<(String, String)>,
        reason: Option<String>,
        now_ms: i64,
    ) -> Result<()> {
        let (rs, rsum) = result.unzip();
        let (vs, vsum) = verify.unzip();
        self.exec(move |c| {
            c.execute(
                "UPDATE actions SET state = ?2, result_status = ?3, result_summary = ?4,
                 verify_status = ?5, verify_summary = ?6, reason = COALESCE(?7, reason),
                 finished_ms = ?8 WHERE id = ?1 AND state IN ('approved', 'running')",
                params![id, state, rs, rsum, vs, vsum, reason, now_ms],
            )?;
            Ok(0)
        })
        .await
        .map(|_| ())
    }

    /// Pending firings whose approval time passed by `now_ms` become
    /// `expired`; their ids.
    pub async fn expire_actions(&self, now_ms: i64) -> Result<Vec<i64>> {
        let ids: Vec<i64> = {
            let conn = self.conn();
            let mut stmt = conn.prepare_cached(
                "SELECT id FROM actions WHERE state = 'pending' AND expires_ms <= ?1",
            )?;
            let rows = stmt.query_map(params![now_ms], |r| r.get(0))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        for &id in &ids {
            self.exec(move |c| {
                c.execute(
                    "UPDATE actions SET state = 'expired', finished_ms = ?2,
                     reason = 'not approved in time'
                     WHERE id = ?1 AND state = 'pending'",
                    params![id, now_ms],
                )?;
                Ok(0)
            })
            .await?;
        }
        Ok(ids)
    }

    /// At start: firings left `running` by a crash become `interrupted`
    /// (never run again); how many.
    pub async fn interrupt_running_actions(&self, now_ms: i64) -> Result<i64> {
        self.exec(move |c| {
            Ok(c.execute(
                "UPDATE actions SET state = 'interrupted', finished_ms = ?1,
                 reason = 'the agent stopped while it ran; not run again (it may have made its change)'
                 WHERE state = 'running'",
                params![now_ms],
            )? as i64)
        })
        .await
    }
}

/// Retention: firings that ended before `cutoff_ms` go (their audit
/// records live as long as runs); open ones (pending, approved, running)
/// stay whatever their age.
pub(super) fn retain(tx: &rusqlite::Connection, cutoff_ms: i64) -> rusqlite::Result<usize> {
    tx.execute(
        "DELETE FROM actions WHERE finished_ms IS NOT NULL AND finished_ms < ?1",
        params![cutoff_ms],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(state: &str) -> ActionRecord {
        ActionRecord {
            state: state.into(),
            idempotency_key: "k".into(),
            config: serde_json::json!({"url": "http://x/"}),
            ..ActionRecord::fired("a", "c", "http-action", false, "critical", "down", "r", 1)
        }
    }

    #[tokio::test]
    async fn a_firing_moves_forward_once_even_across_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("warden.db");
        let store = Store::open(&path).unwrap();
        let id = store.add_action(row("pending")).await.unwrap();
        assert!(
            !store.start_action(id, 10).await.unwrap(),
            "pending does not start"
        );
        assert_eq!(
            store.open_action("a").unwrap(),
            Some((id, "pending".into()))
        );
        assert!(
            store
                .decide_action(id, "approved", "ana".into(), None, 5)
                .await
                .unwrap()
        );
        assert!(
            !store
                .decide_action(id, "rejected", "bob".into(), None, 6)
                .await
                .unwrap(),
            "decided once"
        );
        assert!(store.start_action(id, 10).await.unwrap());
        assert!(!store.start_action(id, 11).await.unwrap(), "started once");
        drop(store);
        // As after kill -9 while the plugin ran.
        let store = Store::open(&path).unwrap();
        assert_eq!(store.interrupt_running_actions(20).await.unwrap(), 1);
        let r = store.action_record(id).unwrap().unwrap();
        assert_eq!(
            (r.state.as_str(), r.decided_by.as_deref()),
            ("interrupted", Some("ana"))
        );
        assert!(store.actions_in("approved").unwrap().is_empty());
        assert!(
            !store.start_action(id, 21).await.unwrap(),
            "never run again"
        );
        assert_eq!(store.open_action("a").unwrap(), None);
        assert_eq!(store.action_starts("a", 0).unwrap(), vec![10]);
        // A pending firing expires at its time, and then cannot be approved.
        let p = store
            .add_action(ActionRecord {
                expires_unix_ms: Some(30),
                ..row("pending")
            })
            .await
            .unwrap();
        assert!(store.expire_actions(29).await.unwrap().is_empty());
        assert_eq!(store.expire_actions(30).await.unwrap(), vec![p]);
        assert!(
            !store
                .decide_action(p, "approved", "x".into(), None, 31)
                .await
                .unwrap()
        );
        assert_eq!(store.action_record(p).unwrap().unwrap().state, "expired");
    }

    #[tokio::test]
    async fn retention_takes_ended_firings_past_the_cutoff_and_never_open_ones() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("warden.db")).unwrap();
        let old = super::super::now_ms() - 40 * 86_400_000;
        // Held back (a row that is born ended), long ago.
        let ended = store
            .add_action(ActionRecord {
                created_unix_ms: old,
                finished_unix_ms: Some(old),
                reason: Some("cooldown".into()),
                ..row("skipped")
            })
            .await
            .unwrap();
        let open = store
            .add_action(ActionRecord {
                created_unix_ms: old,
                ..row("pending")
            })
            .await
            .unwrap();
        let recent = store.add_action(row("running")).await.unwrap();
        store
            .finish_action(recent, "failed", None, None, None, super::super::now_ms())
            .await
            .unwrap();
        store.retain(1000, 30, 400);
        store.flush();
        assert!(store.action_record(ended).unwrap().is_none());
        assert!(store.action_record(open).unwrap().is_some());
        assert!(store.action_record(recent).unwrap().is_some());
    }
}

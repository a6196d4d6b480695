//! The embedded store: one SQLite file (WAL) in the agent's state
//! directory. This module owns the schema and every query; capabilities and
//! the rest of the agent go through its methods.
//!
//! Today it keeps the per-check key/value state that plugins read and write
//! through `warden:plugin/host`.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result};
use rusqlite::{Connection, OptionalExtension, params};

const SCHEMA_VERSION: i64 = 1;

/// A handle to the store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
}

impl Store {
    /// Opens (creating if needed) the store at `path`.
    pub fn open(path: &Path) -> Result<Store> {
        if let Some(dir) = path.parent() {
            crate::engine::create_private_dir(dir)?;
        }
        let conn =
            Connection::open(path).with_context(|| format!("opening store {}", path.display()))?;
        // Plugin state may hold tokens; keep the file private.
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .with_context(|| format!("restricting permissions of {}", path.display()))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version > SCHEMA_VERSION {
            anyhow::bail!(
                "store {} has schema version {version}, newer than this agent's {SCHEMA_VERSION}",
                path.display()
            );
        }
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS check_state (
                check_name TEXT NOT NULL,
                key        TEXT NOT NULL,
                value      TEXT NOT NULL,
                updated_ms INTEGER NOT NULL,
                PRIMARY KEY (check_name, key)
            ) WITHOUT ROWID;",
        )
        .with_context(|| format!("creating schema in {}", path.display()))?;
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        Ok(Store {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves SQLite consistent (every
        // write is a transaction), so a poisoned lock is safe to reuse.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
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
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

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
}

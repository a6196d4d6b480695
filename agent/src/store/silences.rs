//! Silences as stored: what `POST /v1/silences` created, kept until
//! retention removes those that ended `keep_days` ago. Matching them
//! against checks is [`crate::silences`]'.

use std::collections::BTreeMap;

use anyhow::{Context as _, Result};
use rusqlite::params;
use serde::Serialize;

use super::Store;

/// One silence.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Silence {
    /// Its id (from the store).
    pub id: i64,
    /// What it silences: `check` and `plugin` match the check's name and
    /// plugin, any other name a label; values are globs (`*`, `?`).
    pub matchers: BTreeMap<String, String>,
    /// From (ms since the epoch).
    pub starts_unix_ms: i64,
    /// Until (ms since the epoch; expiring sets it to now).
    pub ends_unix_ms: i64,
    /// Why.
    pub comment: String,
    /// Who.
    pub author: String,
    /// When it was created.
    pub created_unix_ms: i64,
}

impl Store {
    /// Every stored silence, newest first (`ended_since_ms`: leave out
    /// those that ended before).
    pub fn silences(&self, ended_since_ms: i64) -> Result<Vec<Silence>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT id, matchers, starts_ms, ends_ms, comment, author, created_ms FROM silences
             WHERE ends_ms >= ?1 ORDER BY id DESC",
        )?;
        let rows = stmt.query_map(params![ended_since_ms], |r| {
            Ok(Silence {
                id: r.get(0)?,
                matchers: serde_json::from_str(&r.get::<_, String>(1)?).unwrap_or_default(),
                starts_unix_ms: r.get(2)?,
                ends_unix_ms: r.get(3)?,
                comment: r.get(4)?,
                author: r.get(5)?,
                created_unix_ms: r.get(6)?,
            })
        })?;
        rows.collect::<rusqlite::Result<_>>()
            .context("reading silences")
    }

    /// Stores a new silence (its `id` is ignored); its id once committed.
    pub async fn add_silence(&self, s: Silence) -> Result<i64> {
        self.exec(move |c| {
            c.execute(
                "INSERT INTO silences (matchers, starts_ms, ends_ms, comment, author, created_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    serde_json::to_string(&s.matchers)?,
                    s.starts_unix_ms,
                    s.ends_unix_ms,
                    s.comment,
                    s.author,
                    s.created_unix_ms
                ],
            )?;
            Ok(c.last_insert_rowid())
        })
        .await
    }

    /// Ends silence `id` at `now_ms` (if it ends later); whether it
    /// was still in force or pending.
    pub async fn expire_silence(&self, id: i64, now_ms: i64) -> Result<bool> {
        self.exec(move |c| {
            Ok(c.execute(
                "UPDATE silences SET ends_ms = ?2 WHERE id = ?1 AND ends_ms > ?2",
                params![id, now_ms],
            )? as i64)
        })
        .await
        .map(|n| n > 0)
    }
}

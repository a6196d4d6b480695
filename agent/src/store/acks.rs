//! Acknowledged findings: a fingerprint someone has seen and accepted
//! (`POST /v1/findings/ack`), per check or for every check. Applying them
//! to runs is [`crate::acks`]'.

use anyhow::{Context as _, Result};
use rusqlite::params;
use serde::Serialize;

use super::Store;

/// One acknowledgement.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Ack {
    /// The check it applies to (`None`: every check).
    pub check: Option<String>,
    /// The finding's fingerprint.
    pub fingerprint: String,
    /// Why.
    pub comment: String,
    /// Who.
    pub author: String,
    /// When (ms since the epoch).
    pub acked_unix_ms: i64,
}

impl Store {
    /// Every acknowledgement.
    pub fn acks(&self) -> Result<Vec<Ack>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT check_name, fingerprint, comment, author, acked_ms FROM finding_acks
             ORDER BY acked_ms, check_name, fingerprint",
        )?;
        let rows = stmt.query_map([], |r| {
            let check: String = r.get(0)?;
            Ok(Ack {
                check: (!check.is_empty()).then_some(check),
                fingerprint: r.get(1)?,
                comment: r.get(2)?,
                author: r.get(3)?,
                acked_unix_ms: r.get(4)?,
            })
        })?;
        rows.collect::<rusqlite::Result<_>>()
            .context("reading acknowledgements")
    }

    /// Stores acknowledgements (replacing earlier ones of the same check
    /// and fingerprint), once committed.
    pub async fn add_acks(&self, acks: Vec<Ack>) -> Result<()> {
        self.exec(move |c| {
            let mut stmt = c.prepare_cached(
                "INSERT OR REPLACE INTO finding_acks (check_name, fingerprint, comment, author, acked_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for a in &acks {
                stmt.execute(params![
                    a.check.as_deref().unwrap_or(""),
                    a.fingerprint,
                    a.comment,
                    a.author,
                    a.acked_unix_ms
                ])?;
            }
            Ok(acks.len() as i64)
        })
        .await
        .map(drop)
    }
}

//! Incidents: a check's hard problem opens one (its severity, start and
//! the summary of the run that opened it), a worse or milder problem
//! updates its severity, and recovery closes it. Each change is written
//! with the run that made it, in one transaction; people add notes
//! (`POST /v1/incidents/{id}/notes`). A hard `unknown` (the check could
//! not decide) neither opens nor closes one.

use anyhow::{Context as _, Result};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use warden_runtime::{RunOutcome, Status};

use super::Store;
use crate::health::Transition;

/// One incident.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Incident {
    /// Its id.
    pub id: i64,
    /// The check.
    pub check: String,
    /// `warning` or `critical`: the hard status now (or when it closed).
    pub severity: String,
    /// The worst severity it reached.
    pub worst: String,
    /// When the hard problem began (ms since the epoch).
    pub started_unix_ms: i64,
    /// When the check recovered; `None` while open.
    pub ended_unix_ms: Option<i64>,
    /// The summary of the run that opened it (redacted, as every summary).
    pub summary: String,
    /// The run that opened it.
    pub run_id: String,
}

/// A note on an incident.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Note {
    /// Its id.
    pub id: i64,
    /// The text.
    pub note: String,
    /// Who wrote it.
    pub author: String,
    /// When (ms since the epoch).
    pub created_unix_ms: i64,
}

/// Opens, updates or closes `check`'s incident for a transition of its
/// hard status, in the run's transaction.
pub(super) fn on_transition(tx: &Connection, t: &Transition, o: &RunOutcome) -> Result<()> {
    let now = o.finished_unix_ms as i64;
    let open: Option<(i64, String)> = tx
        .prepare_cached(
            "SELECT id, worst FROM incidents WHERE check_name = ?1 AND ended_ms IS NULL ORDER BY id DESC LIMIT 1",
        )?
        .query_row(params![o.check], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    match (t.to, open) {
        (Status::Warning | Status::Critical, None) => {
            tx.prepare_cached(
                "INSERT INTO incidents (check_name, severity, worst, started_ms, summary, run_id)
                 VALUES (?1, ?2, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![o.check, t.to.as_str(), now, o.summary, o.run_id])?;
        }
        (Status::Warning | Status::Critical, Some((id, worst))) => {
            let worst = if worst == "critical" {
                "critical"
            } else {
                t.to.as_str()
            };
            tx.prepare_cached("UPDATE incidents SET severity = ?1, worst = ?2 WHERE id = ?3")?
                .execute(params![t.to.as_str(), worst, id])?;
        }
        (Status::Ok, Some((id, _))) => {
            tx.prepare_cached("UPDATE incidents SET ended_ms = ?1 WHERE id = ?2")?
                .execute(params![now, id])?;
        }
        _ => {}
    }
    Ok(())
}

const COLUMNS: &str = "id, check_name, severity, worst, started_ms, ended_ms, summary, run_id";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Incident> {
    Ok(Incident {
        id: r.get(0)?,
        check: r.get(1)?,
        severity: r.get(2)?,
        worst: r.get(3)?,
        started_unix_ms: r.get(4)?,
        ended_unix_ms: r.get(5)?,
        summary: r.get(6)?,
        run_id: r.get(7)?,
    })
}

impl Store {
    /// Incidents, newest first: of one check or all, open ones only or
    /// all, at most `limit`.
    pub fn incidents(
        &self,
        check: Option<&str>,
        open: bool,
        limit: usize,
    ) -> Result<Vec<Incident>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM incidents WHERE (?1 IS NULL OR check_name = ?1)
               AND (?2 = 0 OR ended_ms IS NULL) ORDER BY id DESC LIMIT ?3"
        ))?;
        let rows = stmt.query_map(params![check, open, limit as i64], row)?;
        rows.collect::<rusqlite::Result<_>>()
            .context("reading incidents")
    }

    /// One incident.
    pub fn incident(&self, id: i64) -> Result<Option<Incident>> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare_cached(&format!("SELECT {COLUMNS} FROM incidents WHERE id = ?1"))?;
        Ok(stmt.query_row(params![id], row).optional()?)
    }

    /// An incident's notes, oldest first.
    pub fn notes(&self, incident: i64) -> Result<Vec<Note>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT id, note, author, created_ms FROM incident_notes WHERE incident_id = ?1 ORDER BY id",
        )?;
        let rows = stmt.query_map(params![incident], |r| {
            Ok(Note {
                id: r.get(0)?,
                note: r.get(1)?,
                author: r.get(2)?,
                created_unix_ms: r.get(3)?,
            })
        })?;
        rows.collect::<rusqlite::Result<_>>()
            .context("reading notes")
    }

    /// Adds a note to incident `id`; `None` when there is no such
    /// incident. Returns once committed.
    pub async fn add_note(&self, id: i64, note: String, author: String) -> Result<Option<Note>> {
        let created = super::now_ms();
        let (n, a) = (note.clone(), author.clone());
        let row = self
            .exec(move |tx| {
                let exists: bool = tx.query_row(
                    "SELECT COUNT(*) > 0 FROM incidents WHERE id = ?1",
                    params![id],
                    |r| r.get(0),
                )?;
                if !exists {
                    return Ok(0);
                }
                tx.execute(
                    "INSERT INTO incident_notes (incident_id, note, author, created_ms) VALUES (?1, ?2, ?3, ?4)",
                    params![id, n, a, created],
                )?;
                Ok(tx.last_insert_rowid())
            })
            .await?;
        Ok((row != 0).then_some(Note {
            id: row,
            note,
            author,
            created_unix_ms: created,
        }))
    }
}

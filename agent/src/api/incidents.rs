//! Incidents ([`crate::store::incidents`]): `GET /v1/incidents?check=&open=true&limit=`,
//! `GET /v1/incidents/{id}` with its timeline (opened, notes,
//! notifications sent for its check meanwhile, silences and maintenance
//! windows over it, resolved), and `POST /v1/incidents/{id}/notes` (a mutating call: the
//! token, like every other).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::quiet::body;
use super::{ApiError, ApiResult, ErrorCode, ok};
use crate::agent::Agent;
use crate::limits;
use crate::store::incidents::Incident;
use crate::store::now_ms;

#[derive(Deserialize)]
pub(super) struct ListQuery {
    check: Option<String>,
    #[serde(default)]
    open: bool,
    limit: Option<usize>,
}

pub(super) async fn list(
    State(agent): State<Arc<Agent>>,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> ApiResult {
    let Query(q) = q.map_err(|e| ApiError::new(ErrorCode::InvalidQuery, e.body_text()))?;
    let limit = q
        .limit
        .unwrap_or(limits::DEFAULT_RUNS_PAGE)
        .clamp(1, limits::MAX_RUNS_PAGE);
    ok(json!({ "incidents": agent.store.incidents(q.check.as_deref(), q.open, limit)? }))
}

fn incident_id(path: Result<Path<String>, PathRejection>) -> Result<i64, ApiError> {
    let Path(id) = path.map_err(|e| ApiError::new(ErrorCode::InvalidPath, e.body_text()))?;
    id.parse().map_err(|_| {
        ApiError::new(
            ErrorCode::IncidentNotFound,
            format!("no incident {id:?} (ids are numbers)"),
        )
    })
}

fn not_found(id: i64) -> ApiError {
    ApiError::new(ErrorCode::IncidentNotFound, format!("no incident {id}"))
}

/// Most maintenance windows of one `[[maintenance]]` shown on a
/// timeline (a recurring window over a long incident).
const MAX_WINDOWS: usize = 20;

/// One moment of an incident's timeline.
#[derive(Serialize)]
pub(super) struct Event {
    at_unix_ms: i64,
    /// `opened`, `note`, `notification`, `silence`, `maintenance`,
    /// `resolved`.
    kind: &'static str,
    text: String,
}

pub(super) async fn get(
    State(agent): State<Arc<Agent>>,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult {
    let id = incident_id(path)?;
    let incident = agent.store.incident(id)?.ok_or_else(|| not_found(id))?;
    let timeline = timeline(&agent, &incident)?;
    ok(json!({ "incident": incident, "timeline": timeline }))
}

/// `incident`'s timeline, oldest first.
pub(super) fn timeline(agent: &Agent, incident: &Incident) -> anyhow::Result<Vec<Event>> {
    let id = incident.id;
    let start = incident.started_unix_ms;
    let end = incident.ended_unix_ms.unwrap_or_else(now_ms);
    let mut timeline = vec![Event {
        at_unix_ms: start,
        kind: "opened",
        text: format!("{}: {}", incident.worst, incident.summary),
    }];
    for n in agent.store.notes(id)? {
        timeline.push(Event {
            at_unix_ms: n.created_unix_ms,
            kind: "note",
            text: format!("{}: {}", n.author, n.note),
        });
    }
    for n in agent
        .store
        .notifications(Some(&incident.check), limits::MAX_RUNS_PAGE)?
        .into_iter()
        .filter(|n| (start..=end).contains(&n.created_unix_ms))
    {
        timeline.push(Event {
            at_unix_ms: n.created_unix_ms,
            kind: "notification",
            text: format!("{} {} to {}: {}", n.event, n.severity, n.notifier, n.state),
        });
    }
    if let Some(check) = agent.checks().get(&incident.check) {
        for s in agent.store.silences(start)? {
            if s.starts_unix_ms <= end
                && s.ends_unix_ms >= start
                && crate::silences::silence_matches(&s, &check.config)
            {
                timeline.push(Event {
                    at_unix_ms: s.starts_unix_ms.max(start),
                    kind: "silence",
                    text: format!(
                        "silenced by {} until {}: {}",
                        s.author, s.ends_unix_ms, s.comment
                    ),
                });
            }
        }
    }
    for m in agent.config().maintenance.iter() {
        let Some(check) = agent
            .checks()
            .get(&incident.check)
            .map(|c| c.config.clone())
        else {
            break;
        };
        if !m.matches(&check.name, &check.labels) {
            continue;
        }
        for (from, until) in m.windows_between(start, end, MAX_WINDOWS) {
            timeline.push(Event {
                at_unix_ms: from.max(start),
                kind: "maintenance",
                text: format!(
                    "in maintenance window {:?} until {}",
                    m.name,
                    crate::silences::rfc3339(until)
                ),
            });
        }
    }
    if let Some(ended) = incident.ended_unix_ms {
        timeline.push(Event {
            at_unix_ms: ended,
            kind: "resolved",
            text: "recovered".into(),
        });
    }
    timeline.sort_by_key(|e| e.at_unix_ms);
    Ok(timeline)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewNote {
    note: String,
    #[serde(default)]
    author: String,
}

pub(super) async fn add_note(
    State(agent): State<Arc<Agent>>,
    path: Result<Path<String>, PathRejection>,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let id = incident_id(path)?;
    let new: NewNote = body(raw)?;
    let note = new.note.trim().to_string();
    if note.is_empty() || note.len() > limits::MAX_FIELD_BYTES {
        return Err(ApiError::new(
            ErrorCode::InvalidBody,
            format!(
                "note: must be 1 to {} bytes of text",
                limits::MAX_FIELD_BYTES
            ),
        ));
    }
    let author = if new.author.trim().is_empty() {
        "anonymous".to_string()
    } else {
        warden_text::truncate(new.author.trim(), 128)
    };
    let note = warden_text::redact::words(&note);
    match agent.store.add_note(id, note, author).await? {
        Some(n) => Ok((StatusCode::CREATED, axum::Json(n)).into_response()),
        None => Err(not_found(id)),
    }
}

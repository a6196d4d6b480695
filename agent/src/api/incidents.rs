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

use super::quiet::body;
use super::{ApiError, ApiResult, ErrorCode, page};
use crate::agent::Agent;
use crate::limits;
use crate::store::incidents::Incident;
use crate::store::now_ms;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ListQuery {
    /// Only this check's.
    check: Option<String>,
    /// Only open ones.
    #[serde(default)]
    open: bool,
    /// How many (default 50; clamped to 1..=1000).
    limit: Option<usize>,
}

/// `GET /v1/incidents`'s answer.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct Incidents {
    /// Newest first.
    incidents: Vec<Incident>,
}

/// `GET /v1/incidents/{id}`'s answer.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct WithTimeline {
    incident: Incident,
    /// Oldest first.
    timeline: Vec<Event>,
}

/// Incidents, newest first.
#[utoipa::path(get, path = "/v1/incidents", tag = "incidents", operation_id = "incidents", params(ListQuery),
    responses((status = 200, description = "Incidents", body = Incidents)))]
pub(super) async fn list(
    State(agent): State<Arc<Agent>>,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> ApiResult {
    let Query(q) = q.map_err(|e| ApiError::new(ErrorCode::InvalidQuery, e.body_text()))?;
    let limit = page(q.limit, limits::MAX_RUNS_PAGE);
    let incidents = agent.store.incidents(q.check.as_deref(), q.open, limit)?;
    Ok(axum::Json(Incidents { incidents }).into_response())
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
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct Event {
    /// When (ms since the epoch).
    at_unix_ms: i64,
    /// `opened`, `note`, `notification`, `silence`, `maintenance`,
    /// `resolved`.
    kind: &'static str,
    /// What happened.
    text: String,
}

/// An incident and its timeline.
#[utoipa::path(get, path = "/v1/incidents/{id}", tag = "incidents", operation_id = "incident",
    params(("id" = String, Path, description = "The incident's id (a number)")),
    responses(
        (status = 200, description = "The incident and its timeline", body = WithTimeline),
        (status = 404, description = "`incident_not_found`", body = super::ErrorBody),
    ))]
pub(super) async fn get(
    State(agent): State<Arc<Agent>>,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult {
    let id = incident_id(path)?;
    let incident = agent.store.incident(id)?.ok_or_else(|| not_found(id))?;
    let timeline = timeline(&agent, &incident)?;
    Ok(axum::Json(WithTimeline { incident, timeline }).into_response())
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

/// A note to add.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewNote {
    /// 1 to 4,096 bytes (redacted like every text).
    #[schema(min_length = 1, max_length = 4096, pattern = "\\S")]
    note: String,
    /// Who (default `anonymous`).
    #[serde(default)]
    author: String,
}

/// Adds a note to an incident's timeline.
#[utoipa::path(post, path = "/v1/incidents/{id}/notes", tag = "incidents",
    params(("id" = String, Path, description = "The incident's id (a number)")),
    request_body(content = NewNote, content_type = "application/json"),
    responses(
        (status = 201, description = "The note", body = crate::store::incidents::Note),
        (status = 404, description = "`incident_not_found`", body = super::ErrorBody),
    ))]
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

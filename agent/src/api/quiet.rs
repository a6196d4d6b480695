//! The API's silences and acknowledgements: `GET/POST /v1/silences`,
//! `DELETE /v1/silences/{id}`, `POST /v1/findings/ack` and
//! `GET /v1/findings/acks`. Mutating calls need the token like every
//! other ([`super`]); a change is answered once it is committed.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{ApiError, ApiResult, ErrorCode, path_name, too_large};
use crate::agent::Agent;
use crate::limits;
use crate::silences::{NewSilence, silence_matches};
use crate::store::acks::Ack;
use crate::store::now_ms;
use crate::store::silences::Silence;

/// The body as `T`, or an error naming what is wrong.
pub(super) fn body<T: DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_large()
        } else {
            ApiError::new(ErrorCode::InvalidJson, e.body_text())
        }
    })?;
    let v: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            ErrorCode::InvalidJson,
            format!("body is not valid JSON: {e}"),
        )
    })?;
    serde_json::from_value(v).map_err(|e| ApiError::new(ErrorCode::InvalidBody, e.to_string()))
}

fn state(s: &crate::silences::Silence, now: i64) -> &'static str {
    if s.ends_unix_ms <= now {
        "expired"
    } else if s.starts_unix_ms > now {
        "pending"
    } else {
        "active"
    }
}

/// A silence as the API shows it.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct SilenceView {
    #[serde(flatten)]
    silence: Silence,
    /// `active`, `pending` or `expired`.
    state: &'static str,
    /// The checks it matches now.
    checks: Vec<String>,
}

/// A `[[maintenance]]` window as the API shows it.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct MaintenanceView {
    name: String,
    /// In force until (ms since the epoch); `null` when not in force.
    active_until_unix_ms: Option<i64>,
    /// The checks it matches.
    checks: Vec<String>,
}

/// `GET /v1/silences`'s answer.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct Silences {
    /// Newest first.
    silences: Vec<SilenceView>,
    maintenance: Vec<MaintenanceView>,
}

/// `POST /v1/silences`'s answer.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct Added {
    silence: SilenceView,
}

/// `DELETE /v1/silences/{id}`'s answer.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct Expired {
    /// The silence's id.
    expired: i64,
}

fn view(agent: &Agent, silence: Silence, now: i64) -> SilenceView {
    let checks = agent
        .checks()
        .values()
        .filter(|c| silence_matches(&silence, &c.config))
        .map(|c| c.config.name.clone())
        .collect();
    SilenceView {
        state: state(&silence, now),
        silence,
        checks,
    }
}

/// Every silence and maintenance window.
#[utoipa::path(get, path = "/v1/silences", tag = "quiet",
    responses((status = 200, description = "Every silence and maintenance window", body = Silences)))]
pub(super) async fn list_silences(State(agent): State<Arc<Agent>>) -> ApiResult {
    let now = now_ms();
    let silences = agent
        .store
        .silences(0)?
        .into_iter()
        .map(|s| view(&agent, s, now))
        .collect();
    let maintenance = agent
        .silences
        .windows()
        .iter()
        .map(|m| MaintenanceView {
            name: m.name.clone(),
            active_until_unix_ms: m.active_until(now),
            checks: agent
                .checks()
                .values()
                .filter(|c| m.matches(&c.config.name, &c.config.labels))
                .map(|c| c.config.name.clone())
                .collect(),
        })
        .collect();
    Ok(axum::Json(Silences {
        silences,
        maintenance,
    })
    .into_response())
}

/// Silences matching checks for a while.
#[utoipa::path(post, path = "/v1/silences", tag = "quiet",
    request_body(content = NewSilence, content_type = "application/json"),
    responses(
        (status = 201, description = "The silence, with the checks it matches", body = Added),
        (status = 429, description = "`too_many`: the most silences there may be are in force or pending", body = super::ErrorBody),
    ))]
pub(super) async fn add_silence(
    State(agent): State<Arc<Agent>>,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let new: NewSilence = body(raw)?;
    let now = now_ms();
    let mut silence = new
        .validate(now)
        .map_err(|e| ApiError::new(ErrorCode::InvalidBody, e))?;
    if agent.silences.current(now) >= limits::MAX_SILENCES {
        return Err(ApiError::new(
            ErrorCode::TooMany,
            format!(
                "{} silences are in force or pending, the most there may be; expire some first",
                limits::MAX_SILENCES
            ),
        ));
    }
    silence.id = agent.store.add_silence(silence.clone()).await?;
    agent.silences.add(silence.clone(), now);
    let silence = view(&agent, silence, now);
    tracing::info!(id = silence.silence.id, author = %warden_text::escape::escape(&silence.silence.author), checks = silence.checks.len(), "silence added");
    Ok((StatusCode::CREATED, axum::Json(Added { silence })).into_response())
}

/// Ends a silence now.
#[utoipa::path(delete, path = "/v1/silences/{id}", tag = "quiet",
    params(("id" = i64, Path, description = "The silence")),
    responses(
        (status = 200, description = "Expired", body = Expired),
        (status = 404, description = "`silence_not_found`: none in force or pending with that id", body = super::ErrorBody),
    ))]
pub(super) async fn expire_silence(
    State(agent): State<Arc<Agent>>,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult {
    let raw = path_name(path)?;
    let id: i64 = raw.parse().map_err(|_| {
        ApiError::new(
            ErrorCode::InvalidPath,
            format!("{raw:?}: a silence id is a number"),
        )
    })?;
    let now = now_ms();
    if !agent.store.expire_silence(id, now).await? {
        return Err(ApiError::new(
            ErrorCode::SilenceNotFound,
            format!("no silence {id} in force or pending"),
        ));
    }
    agent.silences.expire(id, now);
    tracing::info!(id, "silence expired");
    Ok(axum::Json(Expired { expired: id }).into_response())
}

/// Findings to acknowledge.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct AckRequest {
    /// Fingerprints of open findings.
    #[schema(min_items = 1, max_items = 1000)]
    fingerprints: Vec<String>,
    /// Only this check's findings.
    check: Option<String>,
    /// Why (required).
    #[schema(min_length = 1, max_length = 1024, pattern = "\\S")]
    comment: String,
    /// Who (default `api`).
    #[schema(max_length = 1024)]
    author: Option<String>,
}

/// `POST /v1/findings/ack`'s answer.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct Acknowledged {
    /// How many findings.
    acknowledged: usize,
    /// The checks they belong to.
    checks: BTreeSet<String>,
    /// Those of them started again now.
    rerun: Vec<String>,
}

/// `GET /v1/findings/acks`'s answer.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct Acks {
    acks: Vec<Ack>,
}

/// Acknowledges open findings and runs their checks again.
#[utoipa::path(post, path = "/v1/findings/ack", tag = "quiet",
    request_body(content = AckRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Acknowledged", body = Acknowledged),
        (status = 404, description = "`finding_not_found` (naming each fingerprint that is not an open finding) or `check_not_found`", body = super::ErrorBody),
    ))]
pub(super) async fn ack_findings(
    State(agent): State<Arc<Agent>>,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let req: AckRequest = body(raw)?;
    let invalid = |m: String| ApiError::new(ErrorCode::InvalidBody, m);
    if req.fingerprints.is_empty() || req.fingerprints.len() > limits::MAX_ACKS_PER_REQUEST {
        return Err(invalid(format!(
            "fingerprints: give 1 to {}",
            limits::MAX_ACKS_PER_REQUEST
        )));
    }
    if req.comment.trim().is_empty() || req.comment.len() > limits::MAX_SILENCE_TEXT {
        return Err(invalid(format!(
            "comment: required, at most {} bytes",
            limits::MAX_SILENCE_TEXT
        )));
    }
    let author = req.author.unwrap_or_else(|| "api".into());
    if author.len() > limits::MAX_SILENCE_TEXT {
        return Err(invalid(format!(
            "author: at most {} bytes",
            limits::MAX_SILENCE_TEXT
        )));
    }
    if let Some(c) = &req.check
        && !agent.checks().contains_key(c)
    {
        return Err(ApiError::new(
            ErrorCode::CheckNotFound,
            format!("no check named {c:?}"),
        ));
    }
    // Only open findings: a typo must not be acknowledged silently.
    let open = agent.store.findings(req.check.as_deref(), false)?;
    let wanted: BTreeSet<&str> = req.fingerprints.iter().map(String::as_str).collect();
    let found: BTreeSet<&str> = open
        .iter()
        .map(|f| f.fingerprint.as_str())
        .filter(|f| wanted.contains(f))
        .collect();
    let missing: Vec<&&str> = wanted.difference(&found).collect();
    if !missing.is_empty() {
        return Err(ApiError::new(
            ErrorCode::FindingNotFound,
            format!(
                "no open finding{} with fingerprint {}",
                match &req.check {
                    Some(c) => format!(" of check {c:?}"),
                    None => String::new(),
                },
                missing
                    .iter()
                    .map(|f| format!("{f:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    let now = now_ms();
    let acks: Vec<Ack> = wanted
        .iter()
        .map(|fp| Ack {
            check: req.check.clone(),
            fingerprint: fp.to_string(),
            comment: req.comment.clone(),
            author: author.clone(),
            acked_unix_ms: now,
        })
        .collect();
    agent.store.add_acks(acks.clone()).await?;
    agent.acks.add(&acks);
    // The checks they belong to run again, so the acknowledgement shows
    // now rather than at their next due time.
    let checks: BTreeSet<&str> = open
        .iter()
        .filter(|f| wanted.contains(f.fingerprint.as_str()))
        .map(|f| f.check.as_str())
        .collect();
    let rerun: Vec<&str> = checks
        .iter()
        .copied()
        .filter(|c| agent.run_now_detached(c).is_ok())
        .collect();
    tracing::info!(count = acks.len(), author = %warden_text::escape::escape(&author), "findings acknowledged");
    Ok(axum::Json(Acknowledged {
        acknowledged: acks.len(),
        checks: checks.iter().map(|c| c.to_string()).collect(),
        rerun: rerun.iter().map(|c| c.to_string()).collect(),
    })
    .into_response())
}

/// Every acknowledgement.
#[utoipa::path(get, path = "/v1/findings/acks", tag = "quiet",
    responses((status = 200, description = "Every acknowledgement", body = Acks)))]
pub(super) async fn list_acks(State(agent): State<Arc<Agent>>) -> ApiResult {
    Ok(axum::Json(Acks {
        acks: agent.store.acks()?,
    })
    .into_response())
}

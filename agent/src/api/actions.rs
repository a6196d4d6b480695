//! Runbook actions ([`crate::actions`]): `GET /v1/actions` (the switch,
//! the pause, the configured actions and their latest firings),
//! `GET /v1/actions/{id}` (one firing's audit record), and the mutating
//! calls (the token, like every other): `POST /v1/actions/{id}/approve`,
//! `POST /v1/actions/{id}/reject`, `POST /v1/actions/pause` and
//! `POST /v1/actions/resume`. Configs are shown redacted.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};

use super::quiet::body;
use super::{ApiError, ApiResult, ErrorCode, page};
use crate::actions::{DecideError, redacted};
use crate::agent::Agent;
use crate::config::Actions as Switch;
use crate::limits;
use crate::store::actions::ActionRecord;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ListQuery {
    /// Only this action's firings.
    action: Option<String>,
    /// Only firings in this state (`pending`, `failed`, ...).
    state: Option<String>,
    /// How many (default 50; clamped to 1..=500).
    limit: Option<usize>,
}

/// A configured `[[action]]`, as listed.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct Configured {
    name: String,
    plugin: String,
    /// The check it watches.
    check: String,
    /// `approve` or `auto`.
    mode: &'static str,
    dry_run: bool,
    max_per_hour: Option<u32>,
}

/// `GET /v1/actions`'s answer.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct Listed {
    /// `[agent] actions`: `on`, `dry-run` or `off`.
    #[schema(value_type = String)]
    switch: Switch,
    /// Held by `POST /v1/actions/pause` (until `.../resume` or a restart).
    paused: bool,
    actions: Vec<Configured>,
    /// Newest first.
    firings: Vec<ActionRecord>,
}

/// `POST /v1/actions/pause`'s and `.../resume`'s answer.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct Paused {
    paused: bool,
}

/// An approval or rejection.
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Decision {
    /// Who decides (default `api`); kept in the audit record.
    #[serde(default)]
    author: String,
    /// Why.
    #[serde(default)]
    comment: String,
}

fn shown(mut r: ActionRecord) -> ActionRecord {
    r.config = redacted(&r.config);
    r
}

/// The actions, the switch and the latest firings.
#[utoipa::path(get, path = "/v1/actions", tag = "actions", operation_id = "actions", params(ListQuery),
    responses((status = 200, description = "Actions and firings", body = Listed)))]
pub(super) async fn list(
    State(agent): State<Arc<Agent>>,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> ApiResult {
    let Query(q) = q.map_err(|e| ApiError::new(ErrorCode::InvalidQuery, e.body_text()))?;
    let limit = page(q.limit, limits::MAX_ACTIONS_LISTED);
    let config = agent.config();
    let firings = agent
        .store
        .actions(q.action.as_deref(), limits::MAX_ACTIONS_LISTED)?
        .into_iter()
        .filter(|r| q.state.as_ref().is_none_or(|s| *s == r.state))
        .take(limit)
        .map(shown)
        .collect();
    let actions = config
        .actions
        .iter()
        .map(|a| Configured {
            name: a.name.clone(),
            plugin: a.plugin.clone(),
            check: a.check.clone(),
            mode: match a.mode {
                crate::config::action::Mode::Approve => "approve",
                crate::config::action::Mode::Auto => "auto",
            },
            dry_run: a.dry_run,
            max_per_hour: a.max_per_hour,
        })
        .collect();
    Ok(axum::Json(Listed {
        switch: config.agent.actions,
        paused: agent.actions.paused(),
        actions,
        firings,
    })
    .into_response())
}

fn firing_id(path: Result<Path<String>, PathRejection>) -> Result<i64, ApiError> {
    let raw = super::path_name(path)?;
    raw.parse().map_err(|_| {
        ApiError::new(
            ErrorCode::InvalidPath,
            format!("{raw:?}: a firing's id is a number"),
        )
    })
}

fn not_found(id: i64) -> ApiError {
    ApiError::new(ErrorCode::ActionNotFound, format!("no action firing {id}"))
}

/// One firing: trigger, config (redacted), who decided, result,
/// verification.
#[utoipa::path(get, path = "/v1/actions/{id}", tag = "actions",
    params(("id" = String, Path, description = "The firing's id (a number)")),
    responses(
        (status = 200, description = "The firing", body = ActionRecord),
        (status = 404, description = "`action_not_found`", body = super::ErrorBody),
    ))]
pub(super) async fn get(
    State(agent): State<Arc<Agent>>,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult {
    let id = firing_id(path)?;
    match agent.store.action_record(id)? {
        Some(r) => Ok(axum::Json(shown(r)).into_response()),
        None => Err(not_found(id)),
    }
}

async fn decide(
    agent: Arc<Agent>,
    path: Result<Path<String>, PathRejection>,
    raw: Result<Bytes, BytesRejection>,
    approve: bool,
) -> ApiResult {
    let id = firing_id(path)?;
    let empty = raw
        .as_ref()
        .is_ok_and(|b| b.iter().all(u8::is_ascii_whitespace));
    let d: Decision = if empty {
        Decision::default()
    } else {
        body(raw)?
    };
    let author = match d.author.trim() {
        "" => "api".to_string(),
        a => warden_text::truncate(a, 128),
    };
    let comment = (!d.comment.trim().is_empty())
        .then(|| warden_text::redact::words(&warden_text::truncate(d.comment.trim(), 1024)));
    match agent.decide_action(id, approve, author, comment).await {
        Ok(r) => Ok(axum::Json(shown(r)).into_response()),
        Err(DecideError::NotFound) => Err(not_found(id)),
        Err(DecideError::NotPending(why)) => Err(ApiError::new(
            ErrorCode::NotPending,
            format!("action firing {id} cannot be decided: {why}"),
        )),
        Err(DecideError::Store(e)) => Err(ApiError::new(ErrorCode::Internal, e)),
    }
}

/// Approves a pending firing: it runs at once (guardrails permitting).
#[utoipa::path(post, path = "/v1/actions/{id}/approve", tag = "actions",
    params(("id" = String, Path, description = "The firing's id (a number)")),
    request_body(content = Decision, content_type = "application/json", description = "Optional"),
    responses(
        (status = 200, description = "The firing, approved", body = ActionRecord),
        (status = 404, description = "`action_not_found`", body = super::ErrorBody),
        (status = 409, description = "`not_pending`: decided, running, done or expired", body = super::ErrorBody),
    ))]
pub(super) async fn approve(
    State(agent): State<Arc<Agent>>,
    path: Result<Path<String>, PathRejection>,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult {
    decide(agent, path, raw, true).await
}

/// Rejects a pending firing: it never runs.
#[utoipa::path(post, path = "/v1/actions/{id}/reject", tag = "actions",
    params(("id" = String, Path, description = "The firing's id (a number)")),
    request_body(content = Decision, content_type = "application/json", description = "Optional"),
    responses(
        (status = 200, description = "The firing, rejected", body = ActionRecord),
        (status = 404, description = "`action_not_found`", body = super::ErrorBody),
        (status = 409, description = "`not_pending`: decided, running, done or expired", body = super::ErrorBody),
    ))]
pub(super) async fn reject(
    State(agent): State<Arc<Agent>>,
    path: Result<Path<String>, PathRejection>,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult {
    decide(agent, path, raw, false).await
}

/// Holds every action: new firings are skipped, and approved ones wait
/// until `POST /v1/actions/resume` (or a restart).
#[utoipa::path(post, path = "/v1/actions/pause", tag = "actions",
    responses((status = 200, description = "Paused", body = Paused)))]
pub(super) async fn pause(State(agent): State<Arc<Agent>>) -> ApiResult {
    agent.actions.set_paused(true);
    tracing::warn!("actions paused through the API");
    Ok(axum::Json(Paused { paused: true }).into_response())
}

/// Ends `POST /v1/actions/pause`.
#[utoipa::path(post, path = "/v1/actions/resume", tag = "actions",
    responses((status = 200, description = "Resumed", body = Paused)))]
pub(super) async fn resume(State(agent): State<Arc<Agent>>) -> ApiResult {
    agent.actions.set_paused(false);
    tracing::warn!("actions resumed through the API");
    tokio::spawn(agent.clone().run_approved());
    Ok(axum::Json(Paused { paused: false }).into_response())
}

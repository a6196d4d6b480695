//! A check's uptime and history from the store's rollups:
//! `GET /v1/checks/{name}/uptime?window=24h|7d|30d|90d` and
//! `GET /v1/checks/{name}/history?resolution=1h|1d&since=`.
//!
//! Windows of 24 h and 7 d are read from hourly buckets, 30 d and 90 d
//! from daily ones (UTC days), each ending with the bucket in progress:
//! `24h` is the current hour and the 23 before it. Uptime counts decisive
//! runs only (`ok` and `warning` up, `critical` down; `unknown` runs are
//! counted but decide nothing). `history` goes back at most 31 days at
//! `1h` and as far as the store keeps at `1d`; buckets without runs are
//! absent.

use std::sync::Arc;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::response::IntoResponse;
use serde::Deserialize;

use super::{ApiError, ApiResult, ErrorCode, path_name};
use crate::agent::Agent;
use crate::silences::rfc3339;
use crate::store::now_ms;
use crate::store::rollups::{Resolution, Rollup, RollupView};

/// The windows `uptime` answers for: name, resolution, buckets.
pub const WINDOWS: [(&str, Resolution, i64); 4] = [
    ("24h", Resolution::Hour, 24),
    ("7d", Resolution::Hour, 168),
    ("30d", Resolution::Day, 30),
    ("90d", Resolution::Day, 90),
];

/// How far back `history` goes: 31 days of hours (744 buckets), or as
/// many days as the store keeps.
fn max_buckets(r: Resolution) -> i64 {
    match r {
        Resolution::Hour => 31 * 24,
        Resolution::Day => crate::limits::MAX_KEEP_DAYS as i64,
    }
}

/// One bucket of `history`.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(super) struct Bucket {
    /// Its start (RFC 3339).
    start: String,
    #[serde(flatten)]
    view: crate::store::rollups::RollupView,
}

fn known_check(
    agent: &Agent,
    path: Result<Path<String>, PathRejection>,
) -> Result<String, ApiError> {
    let name = path_name(path)?;
    if !agent.checks().contains_key(&name) {
        return Err(ApiError::new(
            ErrorCode::CheckNotFound,
            format!("no check named {name:?}"),
        ));
    }
    Ok(name)
}

/// The one of [`WINDOWS`] named `w`; the error names the parameter.
pub(super) fn window_named(w: &str) -> Result<(&'static str, Resolution, i64), ApiError> {
    WINDOWS.iter().find(|x| x.0 == w).copied().ok_or_else(|| {
        ApiError::new(
            ErrorCode::InvalidQuery,
            format!("window={w:?}: expected one of 24h, 7d, 30d, 90d"),
        )
    })
}

/// A check's rollups merged over one of [`WINDOWS`].
pub(super) struct Window {
    pub(super) label: &'static str,
    pub(super) resolution: Resolution,
    pub(super) since: i64,
    pub(super) until: i64,
    pub(super) total: Rollup,
}

/// `check`'s rollups over the window named `w` (`24h`, `7d`, `30d`,
/// `90d`), ending with the bucket in progress; the error names the
/// parameter.
pub(super) fn window(agent: &Agent, check: &str, w: &str) -> Result<Window, ApiError> {
    let (label, r, buckets) = window_named(w)?;
    let until = r.floor(now_ms()) + r.ms();
    let since = until - buckets * r.ms();
    let mut total = Rollup::default();
    for (_, b) in agent.store.rollups(check, r, since, until)? {
        total.merge(&b);
    }
    Ok(Window {
        label,
        resolution: r,
        since,
        until,
        total,
    })
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct UptimeQuery {
    /// One window (default: all four).
    #[param(value_type = Option<String>, pattern = "^(24h|7d|30d|90d)$")]
    window: Option<String>,
}

/// A window of `uptime`.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(super) struct WindowView {
    /// Its start (RFC 3339).
    from: String,
    /// Its end (RFC 3339): the end of the bucket in progress.
    to: String,
    /// `1h` or `1d`.
    resolution: &'static str,
    /// Runs, uptime and durations over it.
    summary: RollupView,
}

/// `uptime`'s answer.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(super) struct Uptime {
    check: String,
    /// Window name (`24h`, `7d`, `30d`, `90d`) → the window.
    windows: std::collections::BTreeMap<&'static str, WindowView>,
}

/// A check's uptime over 24 h, 7 d, 30 d, 90 d.
#[utoipa::path(get, path = "/v1/checks/{name}/uptime", tag = "history",
    params(("name" = String, Path, description = "The check"), UptimeQuery),
    responses(
        (status = 200, description = "The windows asked for", body = Uptime),
        (status = 404, description = "`check_not_found`", body = super::ErrorBody),
    ))]
pub(super) async fn uptime(
    State(agent): State<Arc<Agent>>,
    path: Result<Path<String>, PathRejection>,
    q: Result<Query<UptimeQuery>, QueryRejection>,
) -> ApiResult {
    let name = known_check(&agent, path)?;
    let Query(q) = q.map_err(|e| ApiError::new(ErrorCode::InvalidQuery, e.body_text()))?;
    let asked: Vec<&str> = match q.window.as_deref() {
        None => WINDOWS.iter().map(|w| w.0).collect(),
        Some(w) => vec![w],
    };
    let mut windows = std::collections::BTreeMap::new();
    for w in asked {
        let Window {
            label,
            resolution: r,
            since,
            until,
            total,
        } = window(&agent, &name, w)?;
        windows.insert(
            label,
            WindowView {
                from: rfc3339(since),
                to: rfc3339(until),
                resolution: r.label(),
                summary: total.view(),
            },
        );
    }
    Ok(axum::Json(Uptime {
        check: name,
        windows,
    })
    .into_response())
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct HistoryQuery {
    /// `1h` (default) or `1d`.
    #[param(value_type = Option<String>, pattern = "^(1h|1d)$")]
    resolution: Option<String>,
    /// From (RFC 3339 or unix seconds; default 7 days of hours, 90 days).
    since: Option<String>,
}

/// `history`'s answer.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(super) struct History {
    check: String,
    /// `1h` or `1d`.
    resolution: &'static str,
    /// Its start (RFC 3339).
    from: String,
    /// Its end (RFC 3339).
    to: String,
    /// The buckets with runs, oldest first.
    buckets: Vec<Bucket>,
}

/// `since` as RFC 3339 or unix seconds.
fn parse_since(s: &str) -> Option<i64> {
    if let Ok(secs) = s.trim().parse::<i64>() {
        return secs.checked_mul(1000);
    }
    chrono::DateTime::parse_from_rfc3339(s.trim())
        .ok()
        .map(|t| t.timestamp_millis())
}

/// A check's hourly or daily buckets.
#[utoipa::path(get, path = "/v1/checks/{name}/history", tag = "history",
    params(("name" = String, Path, description = "The check"), HistoryQuery),
    responses(
        (status = 200, description = "The buckets", body = History),
        (status = 404, description = "`check_not_found`", body = super::ErrorBody),
    ))]
pub(super) async fn history(
    State(agent): State<Arc<Agent>>,
    path: Result<Path<String>, PathRejection>,
    q: Result<Query<HistoryQuery>, QueryRejection>,
) -> ApiResult {
    let name = known_check(&agent, path)?;
    let Query(q) = q.map_err(|e| ApiError::new(ErrorCode::InvalidQuery, e.body_text()))?;
    let text = q.resolution.as_deref().unwrap_or("1h");
    let r = Resolution::parse(text).ok_or_else(|| {
        ApiError::new(
            ErrorCode::InvalidQuery,
            format!("resolution={text:?}: expected 1h or 1d"),
        )
    })?;
    let now = now_ms();
    let until = r.floor(now) + r.ms();
    let since = match q.since.as_deref() {
        None => until - r.default_buckets() * r.ms(),
        Some(s) => parse_since(s).ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidQuery,
                format!("since={s:?}: expected RFC 3339 (2026-12-01T00:00:00Z) or unix seconds"),
            )
        })?,
    };
    let since = r.floor(since.clamp(until - max_buckets(r) * r.ms(), until));
    let buckets: Vec<Bucket> = agent
        .store
        .rollups(&name, r, since, until)?
        .into_iter()
        .map(|(start, b)| Bucket {
            start: rfc3339(start),
            view: b.view(),
        })
        .collect();
    Ok(axum::Json(History {
        check: name,
        resolution: r.label(),
        from: rfc3339(since),
        to: rfc3339(until),
        buckets,
    })
    .into_response())
}

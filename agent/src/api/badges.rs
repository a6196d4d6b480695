//! `GET /badge/{check}/{status|uptime|response-time}.{svg|json}`: a
//! check's badges ([`crate::badges`]) as SVG, or as shields.io endpoint
//! JSON. `uptime` and `response-time` take `?window=` (24h, 7d, 30d, 90d;
//! default 30d and 24h) and read the store's rollups; response time is
//! the median of `probe_duration_seconds` when the check reports it,
//! else of the run's duration. Cached for a minute (`public` for the
//! checks `[status_page] public` lists, which need no token).

use std::sync::Arc;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use serde::Deserialize;

use super::history::{window, window_named};
use super::{ApiError, ApiResult, ErrorCode};
use crate::agent::Agent;
use crate::badges;

/// How long clients and proxies may keep a badge.
const CACHE_SECONDS: u32 = 60;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct BadgeQuery {
    /// For `uptime` (default 30d) and `response-time` (default 24h).
    #[param(value_type = Option<String>, pattern = "^(24h|7d|30d|90d)$")]
    window: Option<String>,
}

/// A check's badge: `status`, `uptime` or `response-time`, as `.svg` or
/// `.json` (shields.io's endpoint schema).
#[utoipa::path(get, path = "/badge/{check}/{file}", tag = "page",
    params(
        ("check" = String, Path, description = "The check"),
        ("file" = String, Path, description = "`status`, `uptime` or `response-time`, then `.svg` or `.json`", pattern = "^(status|uptime|response-time)\\.(svg|json)$"),
        BadgeQuery,
    ),
    responses(
        (status = 200, description = "The badge (`Cache-Control: max-age=60`, `public` for public checks)", content(
            (String = "image/svg+xml"),
            (crate::badges::Endpoint = "application/json"),
        )),
        (status = 404, description = "`check_not_found`, or `not_found` for a file that is not a badge", body = super::ErrorBody),
    ))]
pub(super) async fn badge(
    State(agent): State<Arc<Agent>>,
    path: Result<Path<(String, String)>, PathRejection>,
    q: Result<Query<BadgeQuery>, QueryRejection>,
) -> ApiResult {
    let Path((check, file)) =
        path.map_err(|e| ApiError::new(ErrorCode::InvalidPath, e.body_text()))?;
    let Query(q) = q.map_err(|e| ApiError::new(ErrorCode::InvalidQuery, e.body_text()))?;
    // A malformed window is refused whichever badge it is given to.
    if let Some(w) = &q.window {
        window_named(w)?;
    }
    let Some(view) = agent.check_view(&check) else {
        return Err(ApiError::new(
            ErrorCode::CheckNotFound,
            format!("no check named {check:?}"),
        ));
    };
    let (kind, format) = file.rsplit_once('.').unwrap_or((&file, ""));
    let config = agent.config();
    let page = &config.status_page;
    let badge = match kind {
        "status" => badges::status(&check, view.summary.status),
        "uptime" => {
            let w = q.window.as_deref().unwrap_or("30d");
            let ratio = window(&agent, &check, w)?.total.uptime();
            badges::uptime(&check, w, ratio, page.uptime_thresholds)
        }
        "response-time" => {
            let w = q.window.as_deref().unwrap_or("24h");
            let rollup = window(&agent, &check, w)?.total;
            let median = rollup
                .latencies
                .quantile(0.5)
                .or_else(|| rollup.durations.quantile(0.5));
            badges::response_time(&check, w, median, page.response_time_thresholds)
        }
        _ => return Err(not_a_badge(&file)),
    };
    let cache = format!(
        "{}, max-age={CACHE_SECONDS}",
        if page.public.contains(&check) {
            "public"
        } else {
            "private"
        }
    );
    match format {
        "svg" => Ok((
            [
                (header::CONTENT_TYPE, "image/svg+xml".to_string()),
                (header::CACHE_CONTROL, cache),
            ],
            badge.svg(),
        )
            .into_response()),
        "json" => Ok((
            [(header::CACHE_CONTROL, cache)],
            axum::Json(badge.endpoint(CACHE_SECONDS)),
        )
            .into_response()),
        _ => Err(not_a_badge(&file)),
    }
}

fn not_a_badge(file: &str) -> ApiError {
    ApiError::new(
        ErrorCode::NotFound,
        format!("no badge {file:?}: badges are status, uptime and response-time, as .svg or .json"),
    )
}

/// The check a badge path names, when it is one (`/badge/{check}/...`).
pub(super) fn badge_check(path: &str) -> Option<&str> {
    path.strip_prefix("/badge/")?.split('/').next()
}

//! The status page: its HTML, CSS and JS (embedded in the binary from
//! `agent/assets/page/`, nothing fetched from elsewhere) at `/`,
//! `/checks/{name}` and `/ui/{file}`, and the two reads it makes,
//! `GET /v1/page` (every check with its 24 h / 7 d / 30 d / 90 d uptime,
//! 90 daily buckets and 24 hourly ones) and `GET /v1/page/{check}` (a
//! check's recent runs, open findings, outputs and incidents with their
//! timelines).
//!
//! The API's read policy applies to both reads; when reads need a token
//! and none is given, they answer for the checks `[status_page] public`
//! lists only (without findings and outputs), and 401 when it lists none.
//! The pages themselves hold no data and are always served.

use std::sync::Arc;

use axum::Extension;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::history::WINDOWS;
use super::{ApiError, ApiResult, ErrorCode, path_name};
use crate::agent::Agent;
use crate::store::RunFilter;
use crate::store::now_ms;
use crate::store::rollups::{Resolution, Rollup, RollupView};

/// What a request may read, set by the API's auth layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Everything (a valid token, or reads need none).
    Full,
    /// Only the checks `[status_page] public` lists.
    Public,
}

/// The page's files: path under `/ui/`, content type, bytes.
const FILES: [(&str, &str, &str); 2] = [
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/page/app.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("../../assets/page/style.css"),
    ),
];

const INDEX: &str = include_str!("../../assets/page/index.html");

/// Scripts and styles from this agent only, no framing, no inline code.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn page_response(content_type: &'static str, body: &'static str) -> Response {
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    resp
}

/// Whether `path` is one of the page's files (HTML, CSS, JS).
pub(super) fn is_page_file(path: &str) -> bool {
    path == "/" || path.starts_with("/checks/") || path.starts_with("/ui/")
}

/// Whether `path` is one of the page's reads.
pub(super) fn is_page_read(path: &str) -> bool {
    path == "/v1/page" || path.starts_with("/v1/page/")
}

/// The status page: every check.
#[utoipa::path(get, path = "/", tag = "page",
    responses((status = 200, description = "The status page (HTML; its script reads `/v1/page`)", content_type = "text/html; charset=utf-8", body = String)))]
pub(super) async fn index() -> Response {
    page_response("text/html; charset=utf-8", INDEX)
}

/// A check's page: the same HTML; its script reads the path.
#[utoipa::path(get, path = "/checks/{name}", tag = "page",
    params(("name" = String, Path, description = "The check")),
    responses((status = 200, description = "A check's page (HTML; its script reads `/v1/page/{check}`)", content_type = "text/html; charset=utf-8", body = String)))]
pub(super) async fn check_page() -> Response {
    page_response("text/html; charset=utf-8", INDEX)
}

/// The page's script and style sheet.
#[utoipa::path(get, path = "/ui/{file}", tag = "page",
    params(("file" = String, Path, description = "`app.js` or `style.css`")),
    responses(
        (status = 200, description = "The file", content(
            (String = "text/javascript; charset=utf-8"),
            (String = "text/css; charset=utf-8"),
        )),
        (status = 404, description = "`not_found`", body = super::ErrorBody),
    ))]
pub(super) async fn asset(path: Result<Path<String>, PathRejection>) -> ApiResult {
    let name = path_name(path)?;
    match FILES.iter().find(|f| f.0 == name) {
        Some(&(_, content_type, body)) => Ok(page_response(content_type, body)),
        None => Err(ApiError::new(
            ErrorCode::NotFound,
            format!("no page file {name:?}"),
        )),
    }
}

/// The checks `access` may see, in the order of `/v1/checks`; an error
/// when that is none of them for a visitor without a token.
fn visible(agent: &Agent, access: Access) -> Result<Vec<crate::views::CheckSummary>, ApiError> {
    let mut views = agent.check_summaries();
    if access == Access::Public {
        let public = &agent.config().status_page.public;
        views.retain(|v| public.contains(&v.name));
        if public.is_empty() {
            return Err(needs_token());
        }
    }
    Ok(views)
}

fn needs_token() -> ApiError {
    ApiError::new(
        ErrorCode::Unauthorized,
        "missing bearer token (Authorization: Bearer ...); no check is public ([status_page] public)",
    )
}

/// One bucket of the page's bars and charts.
#[derive(Serialize, utoipa::ToSchema)]
struct PageBucket {
    start_unix_ms: i64,
    #[serde(flatten)]
    view: RollupView,
}

/// A check on the overview.
#[derive(Serialize, utoipa::ToSchema)]
struct Overview {
    #[serde(flatten)]
    summary: crate::views::CheckSummary,
    /// `24h`, `7d`, `30d`, `90d` → the window's summary, as
    /// `/v1/checks/{name}/uptime` computes it.
    uptime: std::collections::BTreeMap<&'static str, RollupView>,
    /// The last 90 UTC days, oldest first, the day in progress last;
    /// `null` for a day without runs.
    days: Vec<Option<PageBucket>>,
    /// The last 24 hours, likewise.
    hours: Vec<Option<PageBucket>>,
}

/// PageBuckets of resolution `r` from `since` up to `until`, one per slot.
fn slots(rows: &[(i64, Rollup)], r: Resolution, since: i64, until: i64) -> Vec<Option<PageBucket>> {
    let mut rows = rows.iter().peekable();
    (0..(until - since) / r.ms())
        .map(|i| {
            let start = since + i * r.ms();
            while rows.next_if(|(s, _)| *s < start).is_some() {}
            rows.next_if(|(s, _)| *s == start).map(|(_, b)| PageBucket {
                start_unix_ms: start,
                view: b.view(),
            })
        })
        .collect()
}

fn overview(agent: &Agent, summary: crate::views::CheckSummary) -> anyhow::Result<Overview> {
    let now = now_ms();
    let range = |r: Resolution, buckets: i64| {
        let until = r.floor(now) + r.ms();
        (until - buckets * r.ms(), until)
    };
    // One read per resolution, as many buckets as the longest window.
    let (h_since, h_until) = range(Resolution::Hour, 168);
    let (d_since, d_until) = range(Resolution::Day, 90);
    let hours = agent
        .store
        .rollups(&summary.name, Resolution::Hour, h_since, h_until)?;
    let days = agent
        .store
        .rollups(&summary.name, Resolution::Day, d_since, d_until)?;
    let mut uptime = std::collections::BTreeMap::new();
    for &(label, r, buckets) in &WINDOWS {
        let (since, _) = range(r, buckets);
        let rows = if r == Resolution::Hour { &hours } else { &days };
        let mut total = Rollup::default();
        for (_, b) in rows.iter().filter(|(s, _)| *s >= since) {
            total.merge(b);
        }
        uptime.insert(label, total.view());
    }
    let (day_hours, _) = range(Resolution::Hour, 24);
    Ok(Overview {
        uptime,
        days: slots(&days, Resolution::Day, d_since, d_until),
        hours: slots(&hours, Resolution::Hour, day_hours, h_until),
        summary,
    })
}

/// `GET /v1/page`'s answer.
#[derive(Serialize, utoipa::ToSchema)]
struct PageChecks {
    /// A visitor without a token: the public checks only.
    public_only: bool,
    /// The agent's version.
    version: &'static str,
    /// The agent's clock (ms since the epoch).
    now_unix_ms: i64,
    /// `[status_page] uptime_thresholds`.
    uptime_thresholds: [f64; 3],
    checks: Vec<Overview>,
    /// Action firings waiting for approval, oldest first (none for a
    /// visitor without a token).
    actions_waiting: Vec<Waiting>,
}

/// A pending action firing, as the page lists it.
#[derive(Serialize, utoipa::ToSchema)]
struct Waiting {
    id: i64,
    action: String,
    check: String,
    /// What the check said when it fired.
    trigger_summary: String,
    dry_run: bool,
    /// When it expires unless approved (ms since the epoch).
    expires_unix_ms: Option<i64>,
}

/// The status page's data: every check (the public ones for a visitor
/// without a token when reads need one).
#[utoipa::path(get, path = "/v1/page", tag = "page", operation_id = "page_checks",
    responses((status = 200, description = "Every check the caller may see, with uptime, 90 days and 24 hours of buckets", body = PageChecks)))]
pub(super) async fn checks(
    State(agent): State<Arc<Agent>>,
    Extension(access): Extension<Access>,
) -> ApiResult {
    let views = visible(&agent, access)?;
    let checks = views
        .into_iter()
        .map(|v| overview(&agent, v))
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(axum::Json(PageChecks {
        public_only: access == Access::Public,
        version: env!("CARGO_PKG_VERSION"),
        now_unix_ms: now_ms(),
        uptime_thresholds: agent.config().status_page.uptime_thresholds,
        checks,
        actions_waiting: if access == Access::Full {
            agent
                .store
                .actions_in("pending")?
                .into_iter()
                .map(|r| Waiting {
                    id: r.id,
                    action: r.action,
                    check: r.check,
                    trigger_summary: r.trigger_summary,
                    dry_run: r.dry_run,
                    expires_unix_ms: r.expires_unix_ms,
                })
                .collect()
        } else {
            Vec::new()
        },
    })
    .into_response())
}

/// How many runs and incidents a check's page shows.
const RECENT_RUNS: usize = 50;
const RECENT_INCIDENTS: usize = 10;

/// A run as a check's page lists it.
#[derive(Serialize, utoipa::ToSchema)]
struct RunLine {
    id: i64,
    run_id: String,
    status: warden_runtime::Status,
    summary: String,
    started_unix_ms: u64,
    duration_seconds: f64,
    manual: bool,
}

/// An incident with its timeline.
#[derive(Serialize, utoipa::ToSchema)]
struct PageIncident {
    incident: crate::store::incidents::Incident,
    timeline: Vec<super::incidents::Event>,
}

/// `GET /v1/page/{check}`'s answer.
#[derive(Serialize, utoipa::ToSchema)]
struct PageCheck {
    /// A visitor without a token: no findings or outputs.
    public_only: bool,
    /// The agent's clock (ms since the epoch).
    now_unix_ms: i64,
    check: Overview,
    /// The latest 50, newest first.
    runs: Vec<RunLine>,
    /// The latest 10, newest first.
    incidents: Vec<PageIncident>,
    /// Open findings (`null` for a visitor).
    findings: Option<Vec<crate::store::StoredFinding>>,
    /// Outputs, redacted (`null` for a visitor).
    outputs: Option<Vec<crate::store::StoredOutput>>,
}

/// A check's page data: recent runs, open findings, outputs, incidents.
#[utoipa::path(get, path = "/v1/page/{check}", tag = "page", operation_id = "page_check",
    params(("check" = String, Path, description = "The check")),
    responses(
        (status = 200, description = "The check's page data", body = PageCheck),
        (status = 404, description = "`check_not_found` (also for a check that is not public, to a visitor)", body = super::ErrorBody),
    ))]
pub(super) async fn check(
    State(agent): State<Arc<Agent>>,
    Extension(access): Extension<Access>,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult {
    let name = path_name(path)?;
    let public = &agent.config().status_page.public;
    if access == Access::Public && public.is_empty() {
        return Err(needs_token());
    }
    let shown = access == Access::Full || public.contains(&name);
    let Some(summary) = agent.check_view(&name).filter(|_| shown).map(|v| v.summary) else {
        // A check that is not public reads as absent to a visitor.
        return Err(ApiError::new(
            ErrorCode::CheckNotFound,
            format!("no check named {name:?}"),
        ));
    };
    let runs: Vec<RunLine> = agent
        .store
        .runs(&RunFilter {
            check: Some(name.clone()),
            status: None,
            since_ms: None,
            before_id: None,
            limit: RECENT_RUNS,
        })?
        .into_iter()
        .map(|r| RunLine {
            id: r.id,
            run_id: r.run.run_id,
            status: r.run.status,
            summary: r.run.summary,
            started_unix_ms: r.run.started_unix_ms,
            duration_seconds: r.run.duration_seconds,
            manual: r.manual,
        })
        .collect();
    let mut incidents = Vec::new();
    for i in agent
        .store
        .incidents(Some(&name), false, RECENT_INCIDENTS)?
    {
        let timeline = super::incidents::timeline(&agent, &i)?;
        incidents.push(PageIncident {
            incident: i,
            timeline,
        });
    }
    let (findings, outputs) = if access == Access::Full {
        let mut outputs = agent.store.outputs(Some(&name))?;
        for o in &mut outputs {
            o.value = crate::redact::url(&o.value);
        }
        (
            Some(agent.store.findings(Some(&name), false)?),
            Some(outputs),
        )
    } else {
        (None, None)
    };
    let overview = overview(&agent, summary)?;
    Ok(axum::Json(PageCheck {
        public_only: access == Access::Public,
        now_unix_ms: now_ms(),
        check: overview,
        runs,
        incidents,
        findings,
        outputs,
    })
    .into_response())
}

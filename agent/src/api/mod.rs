//! The HTTP API (axum): [`routes`] lists every route with its OpenAPI
//! description (`openapi`, served at `/openapi.json`); here are health,
//! status, plugins, checks, manual runs, run history, findings, outputs
//! and `/metrics`, and in the submodules history, incidents, silences and
//! acknowledgements, runbook actions, badges and the status page (`page`).
//!
//! Errors are JSON, `{"error":{"code":"...","message":"..."}}`, with the
//! stable codes of [`ErrorCode`] (`error`). A bearer token (compared in
//! constant time, `guard`) guards every mutating call, and reads too when
//! `require_token_for_reads` is set; `/health`, `/readyz`, `/openapi.json`
//! and the page's files stay open. With no token configured, mutating calls
//! are allowed only while the API listens on loopback. CORS headers are sent
//! only for the configured origins. Request bodies are capped at
//! [`crate::limits::MAX_API_BODY_BYTES`] (a larger `Content-Length` is
//! answered 413 before any of it is read) and must arrive within
//! [`crate::limits::API_BODY_TIMEOUT`] (else 408). Connections, their
//! caps and header timeouts are [`crate::listener`]'s.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use warden_runtime::Status;

use crate::agent::Agent;
use crate::limits::{self, MAX_API_BODY_BYTES as MAX_BODY_BYTES};
use crate::scheduler::ManualError;
use crate::store::RunFilter;

pub use error::{ApiError, ErrorBody, ErrorCode};
pub(crate) use error::{ApiResult, ok, path_name, too_large};

mod actions;
mod badges;
mod error;
mod guard;
mod history;
mod incidents;
mod openapi;
mod page;
mod quiet;

/// Every route, each with its OpenAPI description ([`openapi`]).
pub(crate) fn routes(r: OpenApiRouter<Arc<Agent>>) -> OpenApiRouter<Arc<Agent>> {
    r.routes(routes!(health))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
        .routes(routes!(openapi::serve))
        .routes(routes!(status))
        .routes(routes!(reload))
        .routes(routes!(plugins))
        .routes(routes!(plugin))
        .routes(routes!(checks))
        .routes(routes!(check))
        .routes(routes!(run_check))
        .routes(routes!(history::uptime))
        .routes(routes!(history::history))
        .routes(routes!(runs))
        .routes(routes!(findings))
        .routes(routes!(outputs))
        .routes(routes!(notifications))
        .routes(routes!(incidents::list))
        .routes(routes!(incidents::get))
        .routes(routes!(incidents::add_note))
        .routes(routes!(quiet::list_silences, quiet::add_silence))
        .routes(routes!(quiet::expire_silence))
        .routes(routes!(quiet::list_acks))
        .routes(routes!(quiet::ack_findings))
        .routes(routes!(actions::list))
        .routes(routes!(actions::get))
        .routes(routes!(actions::approve))
        .routes(routes!(actions::reject))
        .routes(routes!(actions::pause))
        .routes(routes!(actions::resume))
        .routes(routes!(page::index))
        .routes(routes!(page::check_page))
        .routes(routes!(page::asset))
        .routes(routes!(page::checks))
        .routes(routes!(page::check))
        .routes(routes!(badges::badge))
}

/// The router for `agent`.
pub fn router(agent: Arc<Agent>) -> Router {
    let cors_origins = agent.config().api.cors_origins.clone();
    let (router, _) = routes(OpenApiRouter::new()).split_for_parts();
    let mut router = router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn(guard::read_body))
        .layer(axum::middleware::from_fn_with_state(
            agent.clone(),
            guard::auth,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(agent);
    if !cors_origins.is_empty() {
        use tower_http::cors::{AllowOrigin, CorsLayer};
        let allow = if cors_origins.iter().any(|o| o == "*") {
            AllowOrigin::any()
        } else {
            AllowOrigin::list(
                cors_origins
                    .iter()
                    .filter_map(|o| HeaderValue::from_str(o).ok()),
            )
        };
        router = router.layer(
            CorsLayer::new()
                .allow_origin(allow)
                .allow_methods([Method::GET, Method::POST, Method::DELETE])
                .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE]),
        );
    }
    router
}

async fn not_found(req: Request) -> ApiError {
    ApiError::new(
        ErrorCode::NotFound,
        format!("no route {} {}", req.method(), req.uri().path()),
    )
}

async fn method_not_allowed(req: Request) -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        format!("{} is not allowed on {}", req.method(), req.uri().path()),
    )
}

/// `GET /health`'s answer.
#[derive(serde::Serialize, ToSchema)]
struct Alive {
    /// Always `ok`.
    status: &'static str,
}

/// Liveness: the process serves.
#[utoipa::path(get, path = "/health", tag = "agent",
    responses((status = 200, description = "The agent serves", body = Alive)))]
async fn health() -> ApiResult {
    Ok(axum::Json(Alive { status: "ok" }).into_response())
}

/// `GET /readyz`'s answer when ready.
#[derive(serde::Serialize, ToSchema)]
struct Ready {
    /// Every condition below holds.
    ready: bool,
    /// Every plugin a check uses is loaded.
    plugins_loaded: bool,
    /// Plugins whose first load (compilation) is in progress.
    plugins_compiling: Vec<String>,
    /// The scheduler runs.
    scheduler_running: bool,
    /// Store writes succeed.
    store_writable: bool,
    /// No EMFILE within the window.
    file_descriptors_available: bool,
}

/// Readiness: plugins loaded, scheduler running, store writable, file
/// descriptors available.
#[utoipa::path(get, path = "/readyz", tag = "agent",
    responses(
        (status = 200, description = "Ready", body = Ready),
        (status = 503, description = "`not_ready`: the message says what is not", body = ErrorBody),
    ))]
async fn readyz(State(agent): State<Arc<Agent>>) -> ApiResult {
    let plugins_loaded = agent.registry.all_loaded();
    let scheduler_running = agent.scheduling();
    let store_writable = agent.store.writable();
    let fds_ok = !agent.telemetry.connections.fd_exhausted_within(
        crate::store::now_ms(),
        limits::FD_EXHAUSTION_WINDOW.as_millis() as i64,
    );
    let ready = plugins_loaded && scheduler_running && store_writable && fds_ok;
    if ready {
        Ok(axum::Json(Ready {
            ready,
            plugins_loaded,
            plugins_compiling: agent.registry.compiling(),
            scheduler_running,
            store_writable,
            file_descriptors_available: fds_ok,
        })
        .into_response())
    } else {
        let mut why = Vec::new();
        let fds;
        let compiling = agent.registry.compiling();
        let still;
        if !compiling.is_empty() {
            still = format!("plugins still compiling: {}", compiling.join(", "));
            why.push(still.as_str());
        } else if !plugins_loaded {
            why.push("a plugin failed to load");
        }
        if !scheduler_running {
            why.push("the scheduler is not running");
        }
        if !store_writable {
            why.push("store writes fail (see the agent's log)");
        }
        if !fds_ok {
            fds = format!(
                "the agent ran out of file descriptors (EMFILE) within the last {}; see process_open_fds and process_max_fds in /metrics",
                warden_text::units::format_duration(limits::FD_EXHAUSTION_WINDOW)
            );
            why.push(&fds);
        }
        Err(ApiError::new(ErrorCode::NotReady, why.join("; ")))
    }
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "agent",
    responses((status = 200, description = "Prometheus text format 0.0.4", content_type = "text/plain; version=0.0.4; charset=utf-8", body = String)))]
async fn metrics(State(agent): State<Arc<Agent>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        agent.metrics_text(),
    )
        .into_response()
}

/// `POST /v1/reload`'s answer.
#[derive(serde::Serialize, ToSchema)]
struct Reloaded {
    /// Whether anything changed.
    reloaded: bool,
    /// What changed.
    applied: crate::reload::Applied,
}

/// Reads the config file again and applies what changed.
#[utoipa::path(post, path = "/v1/reload", tag = "agent",
    responses(
        (status = 200, description = "Applied (or unchanged)", body = Reloaded),
        (status = 422, description = "`config_invalid`: the file has errors (each named); the config in force stays", body = ErrorBody),
    ))]
async fn reload(State(agent): State<Arc<Agent>>) -> ApiResult {
    match agent.reload("POST /v1/reload").await {
        Ok(applied) => Ok(axum::Json(Reloaded {
            reloaded: !applied.unchanged,
            applied,
        })
        .into_response()),
        Err(errors) => Err(ApiError::new(
            ErrorCode::ConfigInvalid,
            format!(
                "the configuration has {} error{}; the one in force stays: {}",
                errors.len(),
                if errors.len() == 1 { "" } else { "s" },
                errors.join("; ")
            ),
        )),
    }
}

/// `GET /v1/status`'s answer.
#[derive(serde::Serialize, ToSchema)]
struct AgentStatus {
    /// The agent's version.
    version: &'static str,
    /// `development` or `production`.
    profile: crate::config::Profile,
    /// The config file (or `<embedded defaults>`).
    config: String,
    /// The config in force and the latest reload.
    reload: crate::config::ReloadStatus,
    /// When the agent started (ms since the epoch).
    started_unix_ms: i64,
    /// Seconds since then.
    uptime_seconds: f64,
    /// The instance allocator (`pooling` or `on-demand`).
    allocation: String,
    /// How many plugins the registry knows.
    plugins: usize,
    /// Checks by hard status, and running now.
    checks: StatusCounts,
    /// Runs in flight.
    runs_in_flight: usize,
}

/// Checks by hard status.
#[derive(serde::Serialize, ToSchema)]
struct StatusCounts {
    total: usize,
    ok: usize,
    warning: usize,
    critical: usize,
    unknown: usize,
    running: usize,
}

/// The agent: version, config, uptime, checks by status.
#[utoipa::path(get, path = "/v1/status", tag = "agent",
    responses((status = 200, description = "The agent's status", body = AgentStatus)))]
async fn status(State(agent): State<Arc<Agent>>) -> ApiResult {
    let views = agent.check_summaries();
    let count = |s: Status| views.iter().filter(|v| v.status == Some(s)).count();
    let now = crate::store::now_ms();
    let config = agent.config();
    Ok(axum::Json(AgentStatus {
        version: env!("CARGO_PKG_VERSION"),
        profile: config.agent.profile,
        config: config.source.clone(),
        reload: agent.reloads().clone(),
        started_unix_ms: agent.started_unix_ms,
        uptime_seconds: (now - agent.started_unix_ms) as f64 / 1000.0,
        allocation: format!("{:?}", agent.runtime.engine().allocation()).to_lowercase(),
        plugins: agent.registry.views().len(),
        checks: StatusCounts {
            total: views.len(),
            ok: count(Status::Ok),
            warning: count(Status::Warning),
            critical: count(Status::Critical),
            unknown: count(Status::Unknown),
            running: views.iter().filter(|v| v.running).count(),
        },
        runs_in_flight: agent.in_flight(),
    })
    .into_response())
}

/// A plugin and the checks that use it.
#[derive(serde::Serialize, ToSchema)]
struct PluginEntry {
    #[serde(flatten)]
    view: crate::registry::PluginView,
    /// The checks that use it, with what each grants it.
    checks: Vec<PluginUser>,
}

/// A check that uses a plugin.
#[derive(serde::Serialize, ToSchema)]
struct PluginUser {
    /// The check.
    check: String,
    /// What it grants.
    grants: serde_json::Value,
}

/// `GET /v1/plugins`'s answer.
#[derive(serde::Serialize, ToSchema)]
struct Plugins {
    plugins: Vec<PluginEntry>,
}

fn plugin_entry(agent: &Agent, view: crate::registry::PluginView) -> PluginEntry {
    let checks = agent
        .checks()
        .values()
        .filter(|c| c.config.plugin == view.name)
        .map(|c| PluginUser {
            check: c.config.name.clone(),
            grants: c.config.grants.view(),
        })
        .collect();
    PluginEntry { view, checks }
}

/// Every plugin: state, origin, sha256, describe, load errors.
#[utoipa::path(get, path = "/v1/plugins", tag = "checks",
    responses((status = 200, description = "Every plugin", body = Plugins)))]
async fn plugins(State(agent): State<Arc<Agent>>) -> ApiResult {
    let plugins = agent
        .registry
        .views()
        .into_iter()
        .map(|v| plugin_entry(&agent, v))
        .collect();
    Ok(axum::Json(Plugins { plugins }).into_response())
}

/// One plugin.
#[utoipa::path(get, path = "/v1/plugins/{name}", tag = "checks",
    params(("name" = String, Path, description = "The plugin")),
    responses(
        (status = 200, description = "The plugin", body = PluginEntry),
        (status = 404, description = "`plugin_not_found`", body = ErrorBody),
    ))]
async fn plugin(
    State(agent): State<Arc<Agent>>,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult {
    let name = path_name(path)?;
    match agent.registry.views().into_iter().find(|v| v.name == name) {
        Some(v) => Ok(axum::Json(plugin_entry(&agent, v)).into_response()),
        None => Err(ApiError::new(
            ErrorCode::PluginNotFound,
            format!("no plugin named {name:?}"),
        )),
    }
}

/// `GET /v1/checks`'s answer.
#[derive(serde::Serialize, ToSchema)]
struct Checks {
    checks: Vec<crate::views::CheckSummary>,
}

/// Every check with its status.
#[utoipa::path(get, path = "/v1/checks", tag = "checks",
    responses((status = 200, description = "Every check", body = Checks)))]
async fn checks(State(agent): State<Arc<Agent>>) -> ApiResult {
    // Serialized straight to bytes: going through serde_json::Value for a
    // thousand checks costs more than building the views.
    Ok(axum::Json(Checks {
        checks: agent.check_summaries(),
    })
    .into_response())
}

/// One check: config in force, health, latest run.
#[utoipa::path(get, path = "/v1/checks/{name}", tag = "checks",
    params(("name" = String, Path, description = "The check")),
    responses(
        (status = 200, description = "The check", body = crate::views::CheckView),
        (status = 404, description = "`check_not_found`", body = ErrorBody),
    ))]
async fn check(
    State(agent): State<Arc<Agent>>,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult {
    let name = path_name(path)?;
    match agent.check_view(&name) {
        Some(v) => Ok(axum::Json(v).into_response()),
        None => Err(ApiError::new(
            ErrorCode::CheckNotFound,
            format!("no check named {name:?}"),
        )),
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct RunParams {
    /// Wait for the run and answer with it (default), or answer 202 at
    /// once.
    #[serde(default = "yes")]
    #[param(default = true)]
    wait: bool,
}

/// `POST /v1/checks/{name}/run?wait=false`'s answer.
#[derive(serde::Serialize, ToSchema)]
struct Started {
    /// The check.
    check: String,
    /// Always true.
    started: bool,
}

/// A list's page size: `limit`, else the default, clamped to `1..=max`.
pub(super) fn page(limit: Option<usize>, max: usize) -> usize {
    limit.unwrap_or(limits::DEFAULT_RUNS_PAGE).clamp(1, max)
}

fn yes() -> bool {
    true
}

/// Runs a check now (it never overlaps itself).
#[utoipa::path(post, path = "/v1/checks/{name}/run", tag = "checks",
    params(("name" = String, Path, description = "The check"), RunParams),
    request_body(content = Option<Object>, description = "Optional: a JSON object, `null` or nothing", content_type = "application/json"),
    responses(
        (status = 200, description = "The run, once it ended", body = warden_runtime::RunOutcome),
        (status = 202, description = "Started (`wait=false`)", body = Started),
        (status = 404, description = "`check_not_found`", body = ErrorBody),
        (status = 409, description = "`already_running`", body = ErrorBody),
    ))]
async fn run_check(
    State(agent): State<Arc<Agent>>,
    path: Result<Path<String>, PathRejection>,
    params: Result<Query<RunParams>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let name = path_name(path)?;
    let Query(params) =
        params.map_err(|e| ApiError::new(ErrorCode::InvalidQuery, e.body_text()))?;
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_large()
        } else {
            ApiError::new(ErrorCode::InvalidJson, e.body_text())
        }
    })?;
    if !body.iter().all(u8::is_ascii_whitespace) {
        let v: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
            ApiError::new(
                ErrorCode::InvalidJson,
                format!("body is not valid JSON: {e}"),
            )
        })?;
        if !v.is_object() && !v.is_null() {
            return Err(ApiError::new(
                ErrorCode::InvalidJson,
                "body must be a JSON object",
            ));
        }
    }
    let manual_error = |e: ManualError| match e {
        ManualError::NotFound => {
            ApiError::new(ErrorCode::CheckNotFound, format!("no check named {name:?}"))
        }
        ManualError::AlreadyRunning => ApiError::new(
            ErrorCode::AlreadyRunning,
            format!("check {name:?} is running; it never overlaps itself"),
        ),
    };
    if params.wait {
        let outcome = agent.run_now(&name).await.map_err(manual_error)?;
        ok(serde_json::to_value(&*outcome).unwrap_or_default())
    } else {
        agent.run_now_detached(&name).map_err(manual_error)?;
        Ok((
            StatusCode::ACCEPTED,
            axum::Json(Started {
                check: name,
                started: true,
            }),
        )
            .into_response())
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct RunsQuery {
    /// Only this check's.
    check: Option<String>,
    /// Only runs with this status.
    #[param(value_type = Option<warden_runtime::Status>)]
    status: Option<String>,
    /// Only runs since (ms since the epoch).
    since: Option<i64>,
    /// The page before this run id (`next_before`).
    before: Option<i64>,
    /// How many (default 50; clamped to 1..=1000).
    limit: Option<usize>,
}

/// `GET /v1/runs`'s answer.
#[derive(serde::Serialize, ToSchema)]
struct Runs {
    /// Newest first.
    runs: Vec<crate::store::StoredRun>,
    /// `before` for the next page, when this one is full.
    next_before: Option<i64>,
}

/// Stored runs, newest first, paged.
#[utoipa::path(get, path = "/v1/runs", tag = "checks", params(RunsQuery),
    responses((status = 200, description = "A page of runs", body = Runs)))]
async fn runs(
    State(agent): State<Arc<Agent>>,
    q: Result<Query<RunsQuery>, QueryRejection>,
) -> ApiResult {
    let Query(q) = q.map_err(|e| ApiError::new(ErrorCode::InvalidQuery, e.body_text()))?;
    let status = q
        .status
        .as_deref()
        .map(str::parse::<Status>)
        .transpose()
        .map_err(|e| ApiError::new(ErrorCode::InvalidQuery, format!("status={e}")))?;
    let limit = page(q.limit, limits::MAX_RUNS_PAGE);
    let filter = RunFilter {
        check: q.check,
        status,
        since_ms: q.since,
        before_id: q.before,
        limit,
    };
    let runs = agent.store.runs(&filter)?;
    let next = (runs.len() == limit)
        .then(|| runs.last().map(|r| r.id))
        .flatten();
    Ok(axum::Json(Runs {
        runs,
        next_before: next,
    })
    .into_response())
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct FindingsQuery {
    /// Only this check's.
    check: Option<String>,
    /// Resolved findings instead of open ones.
    #[serde(default)]
    resolved: bool,
    /// `json` (default), `sarif` (SARIF 2.1.0) or `gitleaks` (gitleaks'
    /// JSON report).
    #[param(value_type = Option<String>, pattern = "^(json|sarif|gitleaks)$")]
    format: Option<String>,
}

/// `GET /v1/findings`'s answer (`format=json`).
#[derive(serde::Serialize, ToSchema)]
struct Findings {
    findings: Vec<crate::store::StoredFinding>,
}

/// Findings, de-duplicated by fingerprint.
#[utoipa::path(get, path = "/v1/findings", tag = "results", params(FindingsQuery),
    responses(
        (status = 200, description = "`{\"findings\": [...]}` (see `Findings`), or a SARIF 2.1.0 log, or gitleaks' JSON report (an array)", body = serde_json::Value),
        (status = 404, description = "`check_not_found`", body = ErrorBody),
    ))]
async fn findings(
    State(agent): State<Arc<Agent>>,
    q: Result<Query<FindingsQuery>, QueryRejection>,
) -> ApiResult {
    let Query(q) = q.map_err(|e| ApiError::new(ErrorCode::InvalidQuery, e.body_text()))?;
    if let Some(c) = &q.check
        && !agent.checks().contains_key(c)
    {
        return Err(ApiError::new(
            ErrorCode::CheckNotFound,
            format!("no check named {c:?}"),
        ));
    }
    let findings = agent.store.findings(q.check.as_deref(), q.resolved)?;
    match q.format.as_deref().unwrap_or("json") {
        "json" => Ok(axum::Json(Findings { findings }).into_response()),
        format @ ("sarif" | "gitleaks") => {
            let attributes: Vec<Vec<(String, String)>> = findings
                .iter()
                .map(|f| serde_json::from_value(f.attributes.clone()).unwrap_or_default())
                .collect();
            let exported: Vec<crate::export::Exported<'_>> = findings
                .iter()
                .zip(&attributes)
                .map(|(f, attributes)| crate::export::Exported {
                    check: &f.check,
                    rule: &f.rule,
                    severity: &f.severity,
                    message: &f.message,
                    location: f.location.as_deref(),
                    attributes,
                    fingerprint: &f.fingerprint,
                })
                .collect();
            ok(if format == "sarif" {
                crate::export::sarif("warden", &exported)
            } else {
                crate::export::gitleaks(&exported)
            })
        }
        other => Err(ApiError::new(
            ErrorCode::InvalidQuery,
            format!("format={other:?}: use json, sarif or gitleaks"),
        )),
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct OutputsQuery {
    /// Only this check's.
    check: Option<String>,
}

/// `GET /v1/outputs`'s answer.
#[derive(serde::Serialize, ToSchema)]
struct Outputs {
    /// Values redacted like URLs (credentials and query values masked).
    outputs: Vec<crate::store::StoredOutput>,
}

/// Current outputs.
#[utoipa::path(get, path = "/v1/outputs", tag = "results", params(OutputsQuery),
    responses((status = 200, description = "Current outputs", body = Outputs)))]
async fn outputs(
    State(agent): State<Arc<Agent>>,
    q: Result<Query<OutputsQuery>, QueryRejection>,
) -> ApiResult {
    let Query(q) = q.map_err(|e| ApiError::new(ErrorCode::InvalidQuery, e.body_text()))?;
    let mut outputs = agent.store.outputs(q.check.as_deref())?;
    // Shown redacted, like every output (see `report::Output`).
    for o in &mut outputs {
        o.value = crate::redact::url(&o.value);
    }
    Ok(axum::Json(Outputs { outputs }).into_response())
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct NotificationsQuery {
    /// Only this check's.
    check: Option<String>,
    /// How many (1..=1000, default 50).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
}

/// `GET /v1/notifications`'s answer.
#[derive(serde::Serialize, ToSchema)]
struct Notifications {
    /// Newest first.
    notifications: Vec<crate::store::outbox::StoredNotification>,
}

/// Notifications, newest first.
#[utoipa::path(get, path = "/v1/notifications", tag = "results", params(NotificationsQuery),
    responses((status = 200, description = "Notifications", body = Notifications)))]
async fn notifications(
    State(agent): State<Arc<Agent>>,
    q: Result<Query<NotificationsQuery>, QueryRejection>,
) -> ApiResult {
    let Query(q) = q.map_err(|e| ApiError::new(ErrorCode::InvalidQuery, e.body_text()))?;
    let limit = q.limit.unwrap_or(limits::DEFAULT_RUNS_PAGE);
    if limit == 0 || limit > limits::MAX_RUNS_PAGE {
        return Err(ApiError::new(
            ErrorCode::InvalidQuery,
            format!("limit={limit}: use 1..={}", limits::MAX_RUNS_PAGE),
        ));
    }
    let list = agent.store.notifications(q.check.as_deref(), limit)?;
    Ok(axum::Json(Notifications {
        notifications: list,
    })
    .into_response())
}

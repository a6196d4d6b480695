//! The HTTP API (axum): health, status, plugins, checks, manual runs, run
//! history, findings, outputs and `/metrics`.
//!
//! Errors are JSON, `{"error":{"code":"...","message":"..."}}`, with the
//! stable codes of [`ErrorCode`]. A bearer token (compared in constant
//! time) guards every mutating call, and reads too when
//! `require_token_for_reads` is set; `/health` and `/readyz` stay open for
//! orchestrators. With no token configured, mutating calls are allowed only
//! while the API listens on loopback. CORS headers are sent only for the
//! configured origins. Request bodies are capped at
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
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use warden_runtime::Status;

use crate::agent::Agent;
use crate::limits::{self, MAX_API_BODY_BYTES as MAX_BODY_BYTES};
use crate::scheduler::ManualError;
use crate::store::RunFilter;

mod badges;
mod history;
mod incidents;
mod page;
mod quiet;

/// The stable error codes of the API.
#[derive(Debug, Clone, Copy)]
pub enum ErrorCode {
    /// No or malformed `Authorization` header (401).
    Unauthorized,
    /// Wrong token, or mutating calls disabled (403).
    Forbidden,
    /// No such route (404).
    NotFound,
    /// No such check (404).
    CheckNotFound,
    /// No such plugin (404).
    PluginNotFound,
    /// No such silence (404).
    SilenceNotFound,
    /// A finding to acknowledge is not open (404).
    FindingNotFound,
    /// No such incident (404).
    IncidentNotFound,
    /// The body is JSON but not what the route takes (400).
    InvalidBody,
    /// Over a limit of the agent's (429).
    TooMany,
    /// A reload found errors in the config file (422).
    ConfigInvalid,
    /// Method not allowed on this route (405).
    MethodNotAllowed,
    /// The body is not valid JSON, or not an object (400).
    InvalidJson,
    /// A query parameter is malformed (400).
    InvalidQuery,
    /// The path does not decode (bad percent-encoding, not UTF-8) (400).
    InvalidPath,
    /// The body is over [`crate::limits::MAX_API_BODY_BYTES`] (413).
    BodyTooLarge,
    /// The body did not arrive within [`crate::limits::API_BODY_TIMEOUT`]
    /// (408).
    BodyTimeout,
    /// The check is running; it never overlaps itself (409).
    AlreadyRunning,
    /// Not ready (503).
    NotReady,
    /// The store failed (500).
    Internal,
}

impl ErrorCode {
    fn parts(self) -> (StatusCode, &'static str) {
        match self {
            ErrorCode::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ErrorCode::Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
            ErrorCode::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            ErrorCode::CheckNotFound => (StatusCode::NOT_FOUND, "check_not_found"),
            ErrorCode::PluginNotFound => (StatusCode::NOT_FOUND, "plugin_not_found"),
            ErrorCode::SilenceNotFound => (StatusCode::NOT_FOUND, "silence_not_found"),
            ErrorCode::FindingNotFound => (StatusCode::NOT_FOUND, "finding_not_found"),
            ErrorCode::IncidentNotFound => (StatusCode::NOT_FOUND, "incident_not_found"),
            ErrorCode::InvalidBody => (StatusCode::BAD_REQUEST, "invalid_body"),
            ErrorCode::TooMany => (StatusCode::TOO_MANY_REQUESTS, "too_many"),
            ErrorCode::ConfigInvalid => (StatusCode::UNPROCESSABLE_ENTITY, "config_invalid"),
            ErrorCode::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ErrorCode::InvalidJson => (StatusCode::BAD_REQUEST, "invalid_json"),
            ErrorCode::InvalidQuery => (StatusCode::BAD_REQUEST, "invalid_query"),
            ErrorCode::InvalidPath => (StatusCode::BAD_REQUEST, "invalid_path"),
            ErrorCode::BodyTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
            ErrorCode::BodyTimeout => (StatusCode::REQUEST_TIMEOUT, "body_timeout"),
            ErrorCode::AlreadyRunning => (StatusCode::CONFLICT, "already_running"),
            ErrorCode::NotReady => (StatusCode::SERVICE_UNAVAILABLE, "not_ready"),
            ErrorCode::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

/// An API error response.
pub struct ApiError(ErrorCode, String);

impl ApiError {
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError(code, message.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.0.parts();
        let mut resp = (
            status,
            axum::Json(json!({"error": {"code": code, "message": self.1}})),
        )
            .into_response();
        if matches!(self.0, ErrorCode::Unauthorized) {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        tracing::error!(error = %format!("{e:#}"), "API request failed");
        ApiError::new(ErrorCode::Internal, "internal error; see the agent's log")
    }
}

pub(crate) type ApiResult = Result<Response, ApiError>;

/// The `{name}` of a route, or the JSON error for a path that does not
/// decode.
pub(crate) fn path_name(path: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    path.map(|Path(name)| name)
        .map_err(|e| ApiError::new(ErrorCode::InvalidPath, e.body_text()))
}

pub(crate) fn ok(v: serde_json::Value) -> ApiResult {
    Ok(axum::Json(v).into_response())
}

/// The router for `agent`.
pub fn router(agent: Arc<Agent>) -> Router {
    let cors_origins = agent.config().api.cors_origins.clone();
    let mut router = Router::new()
        .route("/health", get(health))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/status", get(status))
        .route("/v1/plugins", get(plugins))
        .route("/v1/plugins/{name}", get(plugin))
        .route("/v1/checks", get(checks))
        .route("/v1/checks/{name}", get(check))
        .route("/v1/checks/{name}/run", post(run_check))
        .route("/", get(page::index))
        .route("/checks/{name}", get(page::index))
        .route("/ui/{file}", get(page::asset))
        .route("/v1/page", get(page::checks))
        .route("/v1/page/{check}", get(page::check))
        .route("/badge/{check}/{file}", get(badges::badge))
        .route("/v1/incidents", get(incidents::list))
        .route("/v1/incidents/{id}", get(incidents::get))
        .route("/v1/incidents/{id}/notes", post(incidents::add_note))
        .route("/v1/checks/{name}/uptime", get(history::uptime))
        .route("/v1/checks/{name}/history", get(history::history))
        .route("/v1/runs", get(runs))
        .route("/v1/findings", get(findings))
        .route("/v1/outputs", get(outputs))
        .route("/v1/notifications", get(notifications))
        .route(
            "/v1/silences",
            get(quiet::list_silences).post(quiet::add_silence),
        )
        .route(
            "/v1/silences/{id}",
            axum::routing::delete(quiet::expire_silence),
        )
        .route("/v1/findings/acks", get(quiet::list_acks))
        .route("/v1/findings/ack", post(quiet::ack_findings))
        .route("/v1/reload", post(reload))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn(read_body))
        .layer(axum::middleware::from_fn_with_state(agent.clone(), auth))
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

/// Reads a request's whole body, within the size cap and the body timeout,
/// before any handler sees it: a `Content-Length` over the cap is refused
/// at once, and a client that stops sending gets 408 instead of holding
/// the handler.
async fn read_body(req: Request, next: Next) -> Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return too_large().into_response();
    }
    if declared == Some(0)
        || matches!(*req.method(), Method::GET | Method::HEAD) && declared.is_none()
    {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let read = tokio::time::timeout(
        limits::API_BODY_TIMEOUT,
        axum::body::to_bytes(body, MAX_BODY_BYTES),
    );
    let bytes = match read.await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(_)) => return too_large().into_response(),
        Err(_) => {
            return ApiError::new(
                ErrorCode::BodyTimeout,
                format!(
                    "the request body did not arrive within {}",
                    warden_text::units::format_duration(limits::API_BODY_TIMEOUT)
                ),
            )
            .into_response();
        }
    };
    next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
        .await
}

pub(crate) fn too_large() -> ApiError {
    ApiError::new(
        ErrorCode::BodyTooLarge,
        format!("request body is over {MAX_BODY_BYTES} bytes"),
    )
}

/// The token of an `Authorization: Bearer <token>` value; the scheme is
/// case-insensitive (RFC 9110, section 11.1).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim_start().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token)
}

fn token_matches(expected: &str, given: &str) -> bool {
    // Compare digests so neither the content nor the length leaks through
    // timing.
    let a = Sha256::digest(expected.as_bytes());
    let b = Sha256::digest(given.as_bytes());
    a.ct_eq(&b).into()
}

async fn auth(State(agent): State<Arc<Agent>>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let mutating = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let config = agent.config();
    // Badges of the checks `[status_page] public` lists are for anyone,
    // and so are the page's files (they hold no data).
    let public = !mutating
        && (badges::badge_check(path)
            .is_some_and(|c| config.status_page.public.iter().any(|p| p == c))
            || page::is_page_file(path));
    let open = matches!(path, "/health" | "/readyz") || public;
    // The page's reads answer a visitor without a token for the public
    // checks only.
    let page_read = !mutating && page::is_page_read(path);
    let api = &config.api;
    let needs_token = !open && (mutating || api.require_token_for_reads);
    if needs_token {
        match &api.token {
            None if mutating && !config.agent.listen.ip().is_loopback() => {
                return ApiError::new(
                    ErrorCode::Forbidden,
                    "no API token is configured; mutating calls are refused on a non-loopback address",
                )
                .into_response();
            }
            None => {
                if let Some(why) = browser_refusal(&req, &agent) {
                    return ApiError::new(ErrorCode::Forbidden, why).into_response();
                }
            }
            Some(expected) => {
                let given = req
                    .headers()
                    .get(header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(bearer);
                match given {
                    None if page_read => {
                        req.extensions_mut().insert(page::Access::Public);
                        return next.run(req).await;
                    }
                    None => {
                        return ApiError::new(
                            ErrorCode::Unauthorized,
                            "missing bearer token (Authorization: Bearer ...)",
                        )
                        .into_response();
                    }
                    Some(t) if !token_matches(expected, t.trim()) => {
                        return ApiError::new(ErrorCode::Forbidden, "wrong bearer token")
                            .into_response();
                    }
                    Some(_) => {}
                }
            }
        }
    }
    req.extensions_mut().insert(page::Access::Full);
    next.run(req).await
}

/// Without a token, a mutating call on loopback is trusted because only
/// this machine can make it, which a browser on it defeats: a page may
/// POST cross-site (a `text/plain` body needs no preflight), or rebind its
/// own name to 127.0.0.1. Such calls carry a foreign `Origin`, or a `Host`
/// that is not a loopback name or address; they are refused.
fn browser_refusal(req: &Request, agent: &Agent) -> Option<String> {
    let header = |name| req.headers().get(name).and_then(|v| v.to_str().ok());
    if let Some(origin) = header(header::ORIGIN)
        && !agent.config().api.cors_origins.iter().any(|o| o == origin)
    {
        return Some(format!(
            "a request from the web origin {origin:?} is refused: without an API token, mutating calls are accepted only from this machine's own tools (configure a token, or list the origin in [api] cors_origins)"
        ));
    }
    let host = header(header::HOST).unwrap_or("");
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    let loopback = name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    (!loopback).then(|| {
        format!(
            "Host {host:?} is refused: without an API token, mutating calls must address the agent by a loopback name or address (a DNS rebinding page would not)"
        )
    })
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

async fn health() -> ApiResult {
    ok(json!({"status": "ok"}))
}

async fn readyz(State(agent): State<Arc<Agent>>) -> ApiResult {
    let plugins_loaded = agent.registry.all_loaded();
    let scheduler_running = agent.scheduling();
    let store_writable = agent.store.writable();
    let fds_ok = !agent.telemetry.connections.fd_exhausted_within(
        crate::store::now_ms(),
        limits::FD_EXHAUSTION_WINDOW.as_millis() as i64,
    );
    let ready = plugins_loaded && scheduler_running && store_writable && fds_ok;
    let body = json!({
        "ready": ready,
        "plugins_loaded": plugins_loaded,
        "plugins_compiling": agent.registry.compiling(),
        "scheduler_running": scheduler_running,
        "store_writable": store_writable,
        "file_descriptors_available": fds_ok,
    });
    if ready {
        ok(body)
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

async fn reload(State(agent): State<Arc<Agent>>) -> ApiResult {
    match agent.reload("POST /v1/reload").await {
        Ok(applied) => ok(json!({ "reloaded": !applied.unchanged, "applied": applied })),
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

async fn status(State(agent): State<Arc<Agent>>) -> ApiResult {
    let views = agent.check_summaries();
    let count = |s: Status| views.iter().filter(|v| v.status == Some(s)).count();
    let now = crate::store::now_ms();
    ok(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "profile": agent.config().agent.profile,
        "config": agent.config().source,
        "reload": *agent.reloads(),
        "started_unix_ms": agent.started_unix_ms,
        "uptime_seconds": (now - agent.started_unix_ms) as f64 / 1000.0,
        "allocation": format!("{:?}", agent.runtime.engine().allocation()).to_lowercase(),
        "plugins": agent.registry.views().len(),
        "checks": {
            "total": views.len(),
            "ok": count(Status::Ok),
            "warning": count(Status::Warning),
            "critical": count(Status::Critical),
            "unknown": count(Status::Unknown),
            "running": views.iter().filter(|v| v.running).count(),
        },
        "runs_in_flight": agent.in_flight(),
    }))
}

fn plugin_json(agent: &Agent, view: crate::registry::PluginView) -> serde_json::Value {
    let users: Vec<serde_json::Value> = agent
        .checks()
        .values()
        .filter(|c| c.config.plugin == view.name)
        .map(|c| json!({ "check": c.config.name, "grants": c.config.grants.view() }))
        .collect();
    let mut v = serde_json::to_value(view).unwrap_or_default();
    v["checks"] = json!(users);
    v
}

async fn plugins(State(agent): State<Arc<Agent>>) -> ApiResult {
    let list: Vec<_> = agent
        .registry
        .views()
        .into_iter()
        .map(|v| plugin_json(&agent, v))
        .collect();
    ok(json!({ "plugins": list }))
}

async fn plugin(
    State(agent): State<Arc<Agent>>,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult {
    let name = path_name(path)?;
    match agent.registry.views().into_iter().find(|v| v.name == name) {
        Some(v) => ok(plugin_json(&agent, v)),
        None => Err(ApiError::new(
            ErrorCode::PluginNotFound,
            format!("no plugin named {name:?}"),
        )),
    }
}

#[derive(serde::Serialize)]
struct Checks {
    checks: Vec<crate::views::CheckSummary>,
}

async fn checks(State(agent): State<Arc<Agent>>) -> ApiResult {
    // Serialized straight to bytes: going through serde_json::Value for a
    // thousand checks costs more than building the views.
    Ok(axum::Json(Checks {
        checks: agent.check_summaries(),
    })
    .into_response())
}

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

#[derive(Deserialize)]
struct RunParams {
    #[serde(default = "yes")]
    wait: bool,
}

fn yes() -> bool {
    true
}

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
        if !v.is_object() {
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
            axum::Json(json!({"check": name, "started": true})),
        )
            .into_response())
    }
}

#[derive(Deserialize)]
struct RunsQuery {
    check: Option<String>,
    status: Option<String>,
    since: Option<i64>,
    before: Option<i64>,
    limit: Option<usize>,
}

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
    let limit = q
        .limit
        .unwrap_or(limits::DEFAULT_RUNS_PAGE)
        .clamp(1, limits::MAX_RUNS_PAGE);
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
    ok(json!({ "runs": runs, "next_before": next }))
}

#[derive(Deserialize)]
struct FindingsQuery {
    check: Option<String>,
    #[serde(default)]
    resolved: bool,
    format: Option<String>,
}

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
        "json" => ok(json!({ "findings": findings })),
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

#[derive(Deserialize)]
struct OutputsQuery {
    check: Option<String>,
}

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
    ok(json!({ "outputs": outputs }))
}

#[derive(Deserialize)]
struct NotificationsQuery {
    check: Option<String>,
    limit: Option<usize>,
}

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
    ok(json!({ "notifications": list }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer abc"), Some("abc"));
        assert_eq!(bearer("BEARER abc"), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearerabc"), None);
    }

    #[test]
    fn tokens_compare_by_content() {
        assert!(token_matches("s3cret", "s3cret"));
        assert!(!token_matches("s3cret", "s3cre"));
        assert!(!token_matches("s3cret", "S3cret"));
    }
}

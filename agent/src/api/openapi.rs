//! The API's OpenAPI 3.1 description, served at `/openapi.json`.
//!
//! It is generated from the code: each handler's `#[utoipa::path]` names
//! its route, parameters, body and responses, and the router is built
//! from the same annotations ([`super::routes`]), so a route cannot exist
//! without its description. Schemas are derived from the types the
//! handlers serialize, and the error codes from [`ErrorCode::ALL`]. What
//! every route shares is added here ([`Common`]): the error responses of
//! the token check, of a malformed path or query, of a request body, and
//! of a store failure.

use std::sync::{Arc, LazyLock};

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, ObjectBuilder, Ref, RefOr, Type};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

use super::ErrorCode;
use crate::agent::Agent;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Warden agent API",
        description = "Checks, runs, findings, outputs, incidents, silences, rollups and the status page of one Warden agent. Errors are `{\"error\": {\"code\", \"message\"}}` with the codes of `ErrorBody`. A bearer token guards every mutating call, and reads too when `require_token_for_reads` is set.",
        license(name = "Apache-2.0"),
    ),
    components(schemas(super::ErrorBody)),
    modifiers(&Common),
    tags(
        (name = "agent", description = "Health, readiness, status, metrics, reload"),
        (name = "checks", description = "Checks, their runs and manual runs"),
        (name = "results", description = "Findings, outputs, notifications"),
        (name = "history", description = "Uptime and history from the store's rollups"),
        (name = "incidents", description = "Incidents and their timelines"),
        (name = "quiet", description = "Silences and acknowledgements"),
        (name = "actions", description = "Runbook actions: approval, audit trail, pause"),
        (name = "page", description = "The status page and badges"),
    )
)]
struct ApiDoc;

/// The description of every route of [`super::router`].
pub fn spec() -> utoipa::openapi::OpenApi {
    let mut doc =
        super::routes(OpenApiRouter::<Arc<Agent>>::with_openapi(ApiDoc::openapi())).into_openapi();
    // Modifiers of `ApiDoc` ran before the routes were added.
    Common.modify(&mut doc);
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    doc
}

static SPEC: LazyLock<String> =
    LazyLock::new(|| spec().to_pretty_json().unwrap_or_else(|e| format!("{e}")));

/// `GET /openapi.json`: this API's OpenAPI 3.1 description.
#[utoipa::path(get, path = "/openapi.json", tag = "agent",
    responses((status = 200, description = "The OpenAPI 3.1 description of this API", content_type = "application/json", body = Object)))]
pub(super) async fn serve() -> Response {
    let mut resp = SPEC.as_str().into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// The schema of [`ErrorCode`]'s codes: every one there is.
pub(super) fn error_codes() -> utoipa::openapi::schema::Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some("The stable error code"))
        .enum_values(Some(ErrorCode::ALL.iter().map(|c| c.parts().1)))
        .build()
}

/// Routes anyone may call: no token, no 401 or 403.
fn open(path: &str) -> bool {
    matches!(path, "/health" | "/readyz" | "/openapi.json") || super::page::is_page_file(path)
}

/// Adds what every operation shares: the bearer scheme, and the errors
/// of the auth layer, of path and query extraction, of request bodies and
/// of the store, where an operation does not describe them itself.
struct Common;

impl Modify for Common {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        // A token is optional where reads are open; the routes say when.
        doc.security = Some(vec![
            SecurityRequirement::default(),
            SecurityRequirement::new("bearer", Vec::<String>::new()),
        ]);
        for (path, item) in doc.paths.paths.iter_mut() {
            let ops = [
                (&mut item.get, false),
                (&mut item.post, true),
                (&mut item.delete, true),
            ];
            for (op, mutating) in ops {
                if let Some(op) = op {
                    add_common(path, op, mutating);
                }
            }
        }
    }
}

fn add_common(path: &str, op: &mut Operation, mutating: bool) {
    let has = |op: &Operation, at: ParameterIn| {
        op.parameters.iter().flatten().any(|p| {
            matches!(p, RefOr::T(p)
                    if std::mem::discriminant(&p.parameter_in) == std::mem::discriminant(&at))
        })
    };
    let mut errors: Vec<(&str, String)> = Vec::new();
    if !open(path) {
        errors.push((
            "401",
            "`unauthorized`: no bearer token where one is needed (mutating calls when a token is configured; every read with `require_token_for_reads`)".into(),
        ));
        errors.push((
            "403",
            "`forbidden`: a wrong token, or a mutating call without a configured token on a non-loopback address or from a browser".into(),
        ));
    }
    let mut bad = Vec::new();
    if has(op, ParameterIn::Path) {
        bad.push("`invalid_path`: the path does not decode");
    }
    if has(op, ParameterIn::Query) {
        bad.push("`invalid_query`: a query parameter is malformed (the message names it)");
    }
    if mutating && op.request_body.is_some() {
        bad.push("`invalid_json`: the body is not a JSON object; `invalid_body`: it is not what the route takes (the message names the field)");
    }
    if !bad.is_empty() {
        errors.push(("400", bad.join("; ")));
    }
    if mutating {
        errors.push((
            "408",
            "`body_timeout`: the body did not arrive in time".into(),
        ));
        errors.push(("413", "`body_too_large`: the body is over the cap".into()));
    }
    errors.push((
        "405",
        "`method_not_allowed`: another method of this route".into(),
    ));
    errors.push(("500", "`internal`: the store failed".into()));
    for (status, description) in errors {
        op.responses
            .responses
            .entry(status.to_string())
            .or_insert_with(|| error_response(&description));
    }
}

/// A response with the error body.
pub(super) fn error_response(description: &str) -> RefOr<utoipa::openapi::Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build()
        .into()
}

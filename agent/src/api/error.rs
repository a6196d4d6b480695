//! The API's errors: [`ErrorCode`] (each code's HTTP status and string,
//! from one table), [`ErrorBody`] (`{"error": {"code", "message"}}`, the
//! body of every error response) and [`ApiError`].

use axum::extract::Path;
use axum::extract::rejection::PathRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::limits::MAX_API_BODY_BYTES as MAX_BODY_BYTES;

use super::openapi;

/// Defines [`ErrorCode`], its HTTP status and code string, and
/// [`ErrorCode::ALL`], from one table.
macro_rules! error_codes {
    ($($(#[$doc:meta])* $variant:ident = ($status:ident, $code:literal),)*) => {
        /// The stable error codes of the API.
        #[derive(Debug, Clone, Copy)]
        pub enum ErrorCode {
            $($(#[$doc])* $variant,)*
        }

        impl ErrorCode {
            /// Every code, for the OpenAPI description.
            pub const ALL: &[ErrorCode] = &[$(ErrorCode::$variant,)*];

            pub(super) fn parts(self) -> (StatusCode, &'static str) {
                match self {
                    $(ErrorCode::$variant => (StatusCode::$status, $code),)*
                }
            }
        }
    };
}

error_codes! {
    /// No or malformed `Authorization` header (401).
    Unauthorized = (UNAUTHORIZED, "unauthorized"),
    /// Wrong token, or mutating calls disabled (403).
    Forbidden = (FORBIDDEN, "forbidden"),
    /// No such route (404).
    NotFound = (NOT_FOUND, "not_found"),
    /// No such check (404).
    CheckNotFound = (NOT_FOUND, "check_not_found"),
    /// No such plugin (404).
    PluginNotFound = (NOT_FOUND, "plugin_not_found"),
    /// No such silence (404).
    SilenceNotFound = (NOT_FOUND, "silence_not_found"),
    /// A finding to acknowledge is not open (404).
    FindingNotFound = (NOT_FOUND, "finding_not_found"),
    /// No such incident (404).
    IncidentNotFound = (NOT_FOUND, "incident_not_found"),
    /// No such action firing (404).
    ActionNotFound = (NOT_FOUND, "action_not_found"),
    /// The action firing is not pending: decided, running, done or
    /// expired (409).
    NotPending = (CONFLICT, "not_pending"),
    /// The body is JSON but not what the route takes (400).
    InvalidBody = (BAD_REQUEST, "invalid_body"),
    /// Over a limit of the agent's (429).
    TooMany = (TOO_MANY_REQUESTS, "too_many"),
    /// A reload found errors in the config file (422).
    ConfigInvalid = (UNPROCESSABLE_ENTITY, "config_invalid"),
    /// Method not allowed on this route (405).
    MethodNotAllowed = (METHOD_NOT_ALLOWED, "method_not_allowed"),
    /// The body is not valid JSON, or not an object (400).
    InvalidJson = (BAD_REQUEST, "invalid_json"),
    /// A query parameter is malformed (400).
    InvalidQuery = (BAD_REQUEST, "invalid_query"),
    /// The path does not decode (bad percent-encoding, not UTF-8) (400).
    InvalidPath = (BAD_REQUEST, "invalid_path"),
    /// The body is over [`crate::limits::MAX_API_BODY_BYTES`] (413).
    BodyTooLarge = (PAYLOAD_TOO_LARGE, "body_too_large"),
    /// The body did not arrive within [`crate::limits::API_BODY_TIMEOUT`]
    /// (408).
    BodyTimeout = (REQUEST_TIMEOUT, "body_timeout"),
    /// The check is running; it never overlaps itself (409).
    AlreadyRunning = (CONFLICT, "already_running"),
    /// Not ready (503).
    NotReady = (SERVICE_UNAVAILABLE, "not_ready"),
    /// The store failed (500).
    Internal = (INTERNAL_SERVER_ERROR, "internal"),
}

/// The body of every error response.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    error: ErrorDetail,
}

/// An error's code and message.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct ErrorDetail {
    /// The stable code ([`ErrorCode`]).
    #[schema(schema_with = openapi::error_codes)]
    code: &'static str,
    /// What a person reads: names the field, parameter or limit.
    message: String,
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
        let body = ErrorBody {
            error: ErrorDetail {
                code,
                message: self.1,
            },
        };
        let mut resp = (status, axum::Json(body)).into_response();
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

/// The error for a body over the cap.
pub(crate) fn too_large() -> ApiError {
    ApiError::new(
        ErrorCode::BodyTooLarge,
        format!("request body is over {MAX_BODY_BYTES} bytes"),
    )
}

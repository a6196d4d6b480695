//! What runs before every handler: the token check ([`auth`], which also
//! marks what a status page read may see) and the body reader
//! ([`read_body`]: the size cap and the body timeout).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{ApiError, ErrorCode, badges, page, too_large};
use crate::agent::Agent;
use crate::limits::{self, MAX_API_BODY_BYTES as MAX_BODY_BYTES};

/// Reads a request's whole body, within the size cap and the body timeout,
/// before any handler sees it: a `Content-Length` over the cap is refused
/// at once, and a client that stops sending gets 408 instead of holding
/// the handler.
pub(super) async fn read_body(req: Request, next: Next) -> Response {
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

pub(super) async fn auth(
    State(agent): State<Arc<Agent>>,
    mut req: Request,
    next: Next,
) -> Response {
    let path = req.uri().path();
    let mutating = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let config = agent.config();
    // Badges of the checks `[status_page] public` lists are for anyone,
    // and so are the page's files (they hold no data).
    let public = !mutating
        && (badges::badge_check(path)
            .is_some_and(|c| config.status_page.public.iter().any(|p| p == c))
            || page::is_page_file(path)
            || path == "/openapi.json");
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

//! A blocking HTTP client for plugins.
//!
//! [`Http`] builds [`Request`]s and hands them to a [`Transport`]: in the
//! component that is `wasi:http/outgoing-handler` (the agent enforces the
//! check's `allow.hosts` grants); in native tests it is a double such as
//! [`crate::testing::MockHttp`]. [`Http::send_all`] issues several requests
//! at once and waits for all of them.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Default timeout for a whole request when the plugin sets none. The agent
/// may clamp it further.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// The check's grants do not allow this destination.
    Denied {
        /// The URL that was refused.
        url: String,
        /// Why.
        reason: String,
    },
    /// The URL could not be parsed.
    InvalidUrl(String),
    /// No answer within the timeout.
    Timeout {
        /// The URL.
        url: String,
    },
    /// Could not connect (refused, reset, DNS failure).
    Connect {
        /// The URL.
        url: String,
        /// Details.
        reason: String,
    },
    /// The response body exceeded the agent's cap.
    BodyTooLarge {
        /// The URL.
        url: String,
    },
    /// Anything else (TLS, protocol errors, ...).
    Other {
        /// The URL.
        url: String,
        /// Details.
        reason: String,
    },
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::Denied { url, reason } => write!(f, "request to {url} denied: {reason}"),
            HttpError::InvalidUrl(url) => write!(f, "invalid URL {url:?}"),
            HttpError::Timeout { url } => write!(f, "request to {url} timed out"),
            HttpError::Connect { url, reason } => write!(f, "cannot connect to {url}: {reason}"),
            HttpError::BodyTooLarge { url } => {
                write!(f, "response from {url} exceeds the agent's body size cap")
            }
            HttpError::Other { url, reason } => write!(f, "request to {url} failed: {reason}"),
        }
    }
}

impl std::error::Error for HttpError {}

/// An HTTP request. Build one with [`Http::get`], [`Http::post`] or
/// [`Http::request`].
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// `GET`, `POST`, ...
    pub method: String,
    /// Absolute `http://` or `https://` URL.
    pub url: String,
    /// Header names and values, in order.
    pub headers: Vec<(String, String)>,
    /// Request body (empty for none).
    pub body: Vec<u8>,
    /// Whole-request timeout (connect, first byte and body).
    pub timeout: Duration,
}

impl Request {
    /// A request with no headers and no body.
    pub fn new(method: impl Into<String>, url: impl Into<String>) -> Self {
        Request {
            method: method.into(),
            url: url.into(),
            headers: Vec::new(),
            body: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets a raw body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Sets a JSON body and `content-type: application/json`.
    pub fn json<T: Serialize + ?Sized>(mut self, value: &T) -> Self {
        // Serializing plain data to a Vec cannot fail short of a bug in a
        // Serialize impl; such a bug surfaces as an empty body.
        self.body = serde_json::to_vec(value).unwrap_or_default();
        if !self
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("content-type"))
        {
            self.headers
                .push(("content-type".into(), "application/json".into()));
        }
        self
    }

    /// Sets the timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

/// A response with its whole body.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Header names (lower case) and values, in order.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// Time from sending the request to the end of the body.
    pub elapsed: Duration,
}

impl Response {
    /// A response, for test doubles.
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Response {
            status,
            headers: Vec::new(),
            body: body.into(),
            elapsed: Duration::ZERO,
        }
    }

    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// All values of a header (case-insensitive).
    pub fn header_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }

    /// True for 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Sends requests. The component build uses `wasi:http`; tests use doubles.
pub trait Transport {
    /// Sends one request and reads the whole response.
    fn send(&self, request: &Request) -> Result<Response, HttpError>;

    /// Sends several requests concurrently where the transport can; the
    /// results are in the order of `requests`.
    fn send_all(&self, requests: &[Request]) -> Vec<Result<Response, HttpError>> {
        requests.iter().map(|r| self.send(r)).collect()
    }
}

/// The plugin's HTTP client.
#[derive(Clone)]
pub struct Http {
    transport: Arc<dyn Transport>,
}

impl fmt::Debug for Http {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Http")
    }
}

impl Http {
    /// A client over a transport.
    pub fn new(transport: Arc<dyn Transport>) -> Self {
        Http { transport }
    }

    /// Starts a request with any method.
    pub fn request(&self, method: &str, url: &str) -> RequestBuilder<'_> {
        RequestBuilder {
            http: self,
            request: Request::new(method, url),
        }
    }

    /// Starts a `GET`.
    pub fn get(&self, url: &str) -> RequestBuilder<'_> {
        self.request("GET", url)
    }

    /// Starts a `POST`.
    pub fn post(&self, url: &str) -> RequestBuilder<'_> {
        self.request("POST", url)
    }

    /// Sends a prepared request.
    pub fn send(&self, request: &Request) -> Result<Response, HttpError> {
        self.transport.send(request)
    }

    /// Sends several requests concurrently; results in request order.
    pub fn send_all(&self, requests: &[Request]) -> Vec<Result<Response, HttpError>> {
        self.transport.send_all(requests)
    }
}

/// A request being built against a client; finish with [`RequestBuilder::send`].
pub struct RequestBuilder<'a> {
    http: &'a Http,
    request: Request,
}

impl RequestBuilder<'_> {
    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.request = self.request.header(name, value);
        self
    }

    /// Sets a raw body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.request = self.request.body(body);
        self
    }

    /// Sets a JSON body.
    pub fn json<T: Serialize + ?Sized>(mut self, value: &T) -> Self {
        self.request = self.request.json(value);
        self
    }

    /// Sets the timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.request = self.request.timeout(timeout);
        self
    }

    /// The request without sending it (for [`Http::send_all`]).
    pub fn build(self) -> Request {
        self.request
    }

    /// Sends it.
    pub fn send(self) -> Result<Response, HttpError> {
        self.http.send(&self.request)
    }
}

/// The parts of an absolute URL the transport needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlParts<'a> {
    /// `http` or `https`.
    pub scheme: &'a str,
    /// `host[:port]`, as written.
    pub authority: &'a str,
    /// Path and query, always starting with `/`.
    pub path_and_query: String,
}

/// Splits an absolute `http(s)://` URL; the fragment is dropped.
pub fn split_url(url: &str) -> Result<UrlParts<'_>, HttpError> {
    let invalid = || HttpError::InvalidUrl(url.to_string());
    let (scheme, rest) = url.split_once("://").ok_or_else(invalid)?;
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return Err(invalid());
    }
    let rest = rest.split('#').next().unwrap_or("");
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    if authority.is_empty() || authority.contains('@') || authority.contains(char::is_whitespace) {
        return Err(invalid());
    }
    let path_and_query = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    };
    Ok(UrlParts {
        scheme,
        authority,
        path_and_query,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_urls() {
        let p = split_url("https://api.example.com:8443/v1/x?y=1#frag").unwrap();
        assert_eq!(p.scheme, "https");
        assert_eq!(p.authority, "api.example.com:8443");
        assert_eq!(p.path_and_query, "/v1/x?y=1");
        let p = split_url("http://[::1]:80?q").unwrap();
        assert_eq!(p.authority, "[::1]:80");
        assert_eq!(p.path_and_query, "/?q");
        assert_eq!(split_url("http://h").unwrap().path_and_query, "/");
    }

    #[test]
    fn refuses_bad_urls() {
        for bad in ["ftp://x/", "no-scheme", "http:///path", "http://user@host/"] {
            assert!(split_url(bad).is_err(), "{bad}");
        }
    }
}

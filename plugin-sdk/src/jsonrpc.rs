//! JSON-RPC 2.0 over [`Http`]: single calls, batches, and the same call to
//! many endpoints at once.
//!
//! ```
//! # use warden_plugin_sdk::prelude::*;
//! # use warden_plugin_sdk::testing::MockHttp;
//! let http = MockHttp::new().route("POST", "http://rpc/", |_| {
//!     MockHttp::reply(200, r#"{"jsonrpc":"2.0","id":1,"result":42}"#)
//! });
//! let http = warden_plugin_sdk::http::Http::new(std::sync::Arc::new(http));
//! let slot: u64 = JsonRpc::new(&http, "http://rpc/").call("getSlot", json!([])).unwrap();
//! assert_eq!(slot, 42);
//! ```

use std::fmt;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::http::{Http, HttpError, Request, Response};

/// Why a JSON-RPC call failed.
#[derive(Debug, Clone, PartialEq)]
pub enum JsonRpcError {
    /// The HTTP exchange failed.
    Http(HttpError),
    /// The server answered with a non-2xx status (429 included).
    Status {
        /// HTTP status.
        status: u16,
        /// `Retry-After` in seconds, when given.
        retry_after: Option<u64>,
    },
    /// The server answered with a JSON-RPC error object.
    Rpc {
        /// JSON-RPC error code (-32601 method not found, ...).
        code: i64,
        /// Error message.
        message: String,
        /// Optional `data`.
        data: Option<Value>,
    },
    /// The answer was not a valid JSON-RPC response or not of the expected
    /// type.
    Decode(String),
}

impl JsonRpcError {
    /// True when the server says the method or its parameters are not
    /// supported (-32601, -32602), as opposed to the server being down.
    pub fn is_unsupported(&self) -> bool {
        matches!(self, JsonRpcError::Rpc { code, .. } if *code == -32601 || *code == -32602)
    }

    /// True for throttling: HTTP 429 or a JSON-RPC rate-limit error.
    pub fn is_rate_limited(&self) -> bool {
        match self {
            JsonRpcError::Status { status, .. } => *status == 429,
            JsonRpcError::Rpc { code, message, .. } => {
                *code == 429 || message.to_ascii_lowercase().contains("rate limit")
            }
            _ => false,
        }
    }
}

impl fmt::Display for JsonRpcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JsonRpcError::Http(e) => write!(f, "{e}"),
            JsonRpcError::Status { status, .. } => write!(f, "HTTP status {status}"),
            JsonRpcError::Rpc { code, message, .. } => write!(f, "RPC error {code}: {message}"),
            JsonRpcError::Decode(e) => write!(f, "bad JSON-RPC response: {e}"),
        }
    }
}

impl std::error::Error for JsonRpcError {}

impl From<HttpError> for JsonRpcError {
    fn from(e: HttpError) -> Self {
        JsonRpcError::Http(e)
    }
}

/// A JSON-RPC 2.0 client for one endpoint.
pub struct JsonRpc<'a> {
    http: &'a Http,
    url: String,
    timeout: Duration,
    headers: Vec<(String, String)>,
}

impl<'a> JsonRpc<'a> {
    /// A client for `url`.
    pub fn new(http: &'a Http, url: impl Into<String>) -> Self {
        JsonRpc {
            http,
            url: url.into(),
            timeout: crate::http::DEFAULT_TIMEOUT,
            headers: Vec::new(),
        }
    }

    /// Sets the per-call timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Adds a header to every call.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The HTTP request for one call, to send with others via
    /// [`Http::send_all`] and decode with [`decode_response`].
    pub fn request(&self, method: &str, params: Value) -> Request {
        let mut req = Request::new("POST", self.url.clone())
            .json(&json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}))
            .timeout(self.timeout);
        req.headers.extend(self.headers.iter().cloned());
        req
    }

    /// Calls `method` and decodes its `result`.
    pub fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        params: Value,
    ) -> Result<T, JsonRpcError> {
        let resp = self.http.send(&self.request(method, params))?;
        decode_response(&resp)
    }

    /// Sends several calls in one JSON-RPC batch; results in call order.
    pub fn batch(
        &self,
        calls: &[(&str, Value)],
    ) -> Result<Vec<Result<Value, JsonRpcError>>, JsonRpcError> {
        let body: Vec<Value> = calls
            .iter()
            .enumerate()
            .map(|(i, (m, p))| json!({"jsonrpc": "2.0", "id": i, "method": m, "params": p}))
            .collect();
        let mut req = Request::new("POST", self.url.clone())
            .json(&body)
            .timeout(self.timeout);
        req.headers.extend(self.headers.iter().cloned());
        let resp = self.http.send(&req)?;
        check_status(&resp)?;
        let items: Vec<Value> =
            serde_json::from_slice(&resp.body).map_err(|e| JsonRpcError::Decode(e.to_string()))?;
        let mut out: Vec<Result<Value, JsonRpcError>> = (0..calls.len())
            .map(|_| Err(JsonRpcError::Decode("missing from batch response".into())))
            .collect();
        for item in items {
            let id = item.get("id").and_then(Value::as_u64);
            if let Some(slot) = id.and_then(|id| out.get_mut(id as usize)) {
                *slot = decode_value(item);
            }
        }
        Ok(out)
    }
}

fn check_status(resp: &Response) -> Result<(), JsonRpcError> {
    if resp.is_success() {
        return Ok(());
    }
    Err(JsonRpcError::Status {
        status: resp.status,
        retry_after: resp
            .header("retry-after")
            .and_then(|v| v.trim().parse().ok()),
    })
}

fn decode_value(v: Value) -> Result<Value, JsonRpcError> {
    if let Some(err) = v.get("error") {
        return Err(JsonRpcError::Rpc {
            code: err.get("code").and_then(Value::as_i64).unwrap_or(0),
            message: err
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            data: err.get("data").cloned(),
        });
    }
    match v {
        Value::Object(mut map) => map
            .remove("result")
            .ok_or_else(|| JsonRpcError::Decode("neither result nor error".into())),
        _ => Err(JsonRpcError::Decode("not a JSON object".into())),
    }
}

/// Decodes an HTTP response to a single call into its typed `result`.
pub fn decode_response<T: DeserializeOwned>(resp: &Response) -> Result<T, JsonRpcError> {
    check_status(resp)?;
    let v: Value =
        serde_json::from_slice(&resp.body).map_err(|e| JsonRpcError::Decode(e.to_string()))?;
    let result = decode_value(v)?;
    serde_json::from_value(result).map_err(|e| JsonRpcError::Decode(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::MockHttp;
    use std::sync::Arc;

    #[test]
    fn rpc_errors_and_status_are_told_apart() {
        let mock = MockHttp::new()
            .route("POST", "http://a/", |_| {
                MockHttp::reply(200, r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"Method not found"}}"#)
            })
            .route("POST", "http://b/", |_| {
                let mut r = MockHttp::reply(429, "slow down");
                r.headers.push(("retry-after".into(), "7".into()));
                r
            });
        let http = Http::new(Arc::new(mock));
        let e = JsonRpc::new(&http, "http://a/")
            .call::<Value>("x", json!([]))
            .unwrap_err();
        assert!(e.is_unsupported());
        let e = JsonRpc::new(&http, "http://b/")
            .call::<Value>("x", json!([]))
            .unwrap_err();
        assert!(e.is_rate_limited());
        assert_eq!(
            e,
            JsonRpcError::Status {
                status: 429,
                retry_after: Some(7)
            }
        );
    }

    #[test]
    fn batch_results_follow_call_order() {
        let mock = MockHttp::new().route("POST", "http://a/", |req| {
            let calls: Vec<Value> = serde_json::from_slice(&req.body).unwrap();
            let mut out: Vec<Value> = calls
                .iter()
                .map(|c| json!({"jsonrpc":"2.0","id":c["id"],"result":c["method"]}))
                .collect();
            out.reverse();
            MockHttp::reply(200, serde_json::to_vec(&out).unwrap())
        });
        let http = Http::new(Arc::new(mock));
        let got = JsonRpc::new(&http, "http://a/")
            .batch(&[("one", json!([])), ("two", json!([]))])
            .unwrap();
        assert_eq!(got[0], Ok(json!("one")));
        assert_eq!(got[1], Ok(json!("two")));
    }
}

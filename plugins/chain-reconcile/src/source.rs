//! The application's expected records: a JSON file in a granted directory,
//! or its HTTP API with a bearer token and cursor pagination.

use std::time::Duration;

use serde_json::Value;
use warden_plugin_sdk::prelude::*;

use crate::Source;

/// The value at a dot path (`a.b.0.c`; empty: the value itself).
pub fn at<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    if path.is_empty() {
        return Some(v);
    }
    path.split('.').try_fold(v, |v, part| match v {
        Value::Array(a) => part.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => v.get(part),
    })
}

/// A string or number at a dot path, as text (ids, addresses).
pub fn text_at(v: &Value, path: &str) -> Option<String> {
    match at(v, path)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn items(page: &Value, path: Option<&str>, what: &str) -> Result<Vec<Value>, Error> {
    at(page, path.unwrap_or(""))
        .and_then(Value::as_array)
        .cloned()
        .ok_or_else(|| {
            Error::msg(format!(
                "{what}: no array at {:?}",
                path.unwrap_or("(the body)")
            ))
        })
}

/// Every record, pages followed.
pub fn load<C>(ctx: &Context<C>, s: &Source, timeout: Duration) -> Result<Vec<Value>, Error> {
    if let Some(file) = &s.file {
        let text = std::fs::read_to_string(file)
            .map_err(|e| Error::msg(format!("config.source.file {file:?}: {e}")))?;
        let v: Value = serde_json::from_str(&text)
            .map_err(|e| Error::msg(format!("config.source.file {file:?}: not JSON: {e}")))?;
        return items(
            &v,
            s.items.as_deref(),
            &format!("config.source.file {file:?}"),
        );
    }
    let base = ctx
        .expand_env(s.url.as_deref().unwrap_or_default())
        .map_err(|e| Error::msg(format!("config.source.url: {e}")))?;
    let token = match &s.token_env {
        Some(name) => Some(ctx.env(name).ok_or_else(|| {
            Error::msg(format!(
                "config.source.token_env: {name} is not set or not granted (allow.env)"
            ))
        })?),
        None => None,
    };
    let param = s.cursor_param.as_deref().unwrap_or("cursor");
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for page in 0..s.max_pages.unwrap_or(1000) {
        let url = match &cursor {
            None => base.clone(),
            Some(c) => {
                let sep = if base.contains('?') { '&' } else { '?' };
                format!("{base}{sep}{param}={}", encode(c))
            }
        };
        let mut req = ctx.http().get(&url).timeout(timeout);
        if let Some(t) = &token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        let resp = req
            .send()
            .map_err(|e| Error::msg(format!("application API, page {}: {e}", page + 1)))?;
        if !resp.is_success() {
            return Err(Error::msg(format!(
                "application API, page {}: HTTP {}",
                page + 1,
                resp.status
            )));
        }
        let v: Value = resp.json().map_err(|e| {
            Error::msg(format!("application API, page {}: not JSON: {e}", page + 1))
        })?;
        out.extend(items(
            &v,
            s.items.as_deref(),
            &format!("application API, page {}", page + 1),
        )?);
        cursor = s
            .next
            .as_deref()
            .and_then(|p| at(&v, p))
            .and_then(|c| match c {
                Value::String(s) if !s.is_empty() => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            });
        if cursor.is_none() {
            return Ok(out);
        }
    }
    Err(Error::msg(format!(
        "application API: more than {} pages (config.source.max_pages)",
        s.max_pages.unwrap_or(1000)
    )))
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

//! `[api]`: the bearer token (from a variable or a file, never inline),
//! the CORS origins, and whether reads need the token.

use std::ops::Range;
use std::path::PathBuf;

use serde::Deserialize;

use super::error::{ConfigError, Scope};
use super::source::Source;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApi {
    token_env: Option<String>,
    token_file: Option<PathBuf>,
    #[serde(default)]
    cors_origins: Vec<String>,
    #[serde(default)]
    require_token_for_reads: bool,
}

/// `[api]`.
#[derive(Debug, Clone, Default)]
pub struct ApiSection {
    /// The bearer token, read from the env var or file.
    pub token: Option<String>,
    /// Where the token came from (for messages; never the token).
    pub token_source: Option<String>,
    /// The token's file is readable by every user.
    pub token_world_readable: bool,
    /// Origins allowed by CORS.
    pub cors_origins: Vec<String>,
    /// Whether GETs need the token too.
    pub require_token_for_reads: bool,
}

impl ApiSection {
    /// Parses `[api]` (absent: no token, no CORS).
    pub(super) fn parse(
        src: &Source<'_>,
        table: Option<(toml::Table, Range<usize>)>,
        errors: &mut Vec<ConfigError>,
    ) -> ApiSection {
        let mut api = ApiSection::default();
        let Some((table, span)) = table else {
            return api;
        };
        let mut err = |field: Option<&str>, msg: String| {
            let line = match field {
                Some(f) => src.field_line(&span, f),
                None => src.line_at(span.start),
            };
            errors.push(src.error(line, Scope::Api, field, msg));
        };
        let a = match RawApi::deserialize(toml::Value::Table(table)) {
            Ok(a) => a,
            Err(e) => {
                err(None, e.message().to_string());
                return api;
            }
        };
        match super::secret::read(src, "token", a.token_env.as_deref(), a.token_file.as_ref()) {
            Ok(Some(token)) => {
                api.token_source = Some(token.source.clone());
                api.token_world_readable = token.world_readable;
                api.token = Some(token.expose().to_string());
            }
            Ok(None) => {}
            Err((field, msg)) => {
                errors.push(src.error(src.field_line(&span, &field), Scope::Api, Some(&field), msg))
            }
        }
        for (i, o) in a.cors_origins.iter().enumerate() {
            if o != "*" && !(o.starts_with("http://") || o.starts_with("https://")) {
                errors.push(src.error(
                    src.field_line(&span, "cors_origins"),
                    Scope::Api,
                    Some(&format!("cors_origins[{i}]")),
                    format!("{o:?} is not an origin like https://ops.example.com"),
                ));
            }
        }
        api.cors_origins = a.cors_origins;
        api.require_token_for_reads = a.require_token_for_reads;
        api
    }
}

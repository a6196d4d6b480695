//! `[[plugin]]` pins: plugin name → the sha256 it must have. A mismatch
//! refuses the load; production requires a pin for every plugin a check
//! uses.

use std::collections::BTreeMap;
use std::ops::Range;

use serde::Deserialize;

use super::error::{ConfigError, Scope};
use super::source::Source;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPin {
    name: String,
    sha256: String,
}

/// Parses every `[[plugin]]` table into name → lower-case sha256.
pub(super) fn parse(
    src: &Source<'_>,
    tables: Vec<(toml::Table, Range<usize>)>,
    errors: &mut Vec<ConfigError>,
) -> BTreeMap<String, String> {
    let mut pins = BTreeMap::new();
    for (table, span) in tables {
        let line = src.line_at(span.start);
        match RawPin::deserialize(toml::Value::Table(table)) {
            Err(e) => errors.push(src.error(line, Scope::Pin(None), None, e.message())),
            Ok(p) => {
                let sha = p.sha256.to_ascii_lowercase();
                let scope = Scope::Pin(Some(p.name.clone()));
                if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
                    errors.push(src.error(line, scope, None, "sha256 must be 64 hex digits"));
                } else if pins.insert(p.name, sha).is_some() {
                    errors.push(src.error(line, scope, None, "pinned twice"));
                }
            }
        }
    }
    pins
}

//! The text a configuration came from, and where things are in it: line
//! numbers by binary search over line starts (linear to build, so 20,000
//! checks parse in one pass), and the line a field is assigned on.

use std::ops::Range;
use std::path::{Path, PathBuf};

use super::error::{ConfigError, Scope};

/// A config file's text, name and directory.
pub struct Source<'a> {
    text: &'a str,
    /// The file name shown in messages.
    pub file: &'a str,
    base: &'a Path,
    line_starts: Vec<usize>,
}

impl<'a> Source<'a> {
    /// Indexes `text`; relative paths resolve against `base`.
    pub fn new(text: &'a str, file: &'a str, base: &'a Path) -> Source<'a> {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Source {
            text,
            file,
            base,
            line_starts,
        }
    }

    /// The directory relative paths resolve against.
    pub fn base(&self) -> &'a Path {
        self.base
    }

    /// `path` resolved against the config's directory.
    pub fn resolve(&self, path: PathBuf) -> PathBuf {
        if path.is_absolute() {
            path
        } else {
            self.base.join(path)
        }
    }

    /// 1-based line of byte offset `at`.
    pub fn line_at(&self, at: usize) -> usize {
        self.line_starts.partition_point(|&start| start <= at)
    }

    /// The line where `field` is assigned in the table whose header starts
    /// at `span` (its keys follow until the next header), falling back to
    /// the header's line.
    pub fn field_line(&self, span: &Range<usize>, field: &str) -> usize {
        let start = span.start.min(self.text.len());
        let field = field.split('[').next().unwrap_or(field);
        let last = field.rsplit('.').next().unwrap_or(field);
        let mut offset = start;
        for (i, line) in self.text[start..].split_inclusive('\n').enumerate() {
            let t = line.trim_start();
            if i > 0 && t.starts_with('[') {
                break;
            }
            for key in [field, last] {
                if let Some(rest) = t.strip_prefix(key)
                    && rest.trim_start().starts_with('=')
                {
                    return self.line_at(offset);
                }
            }
            offset += line.len();
        }
        self.line_at(start)
    }

    /// A `[[kind]]` table (the `index`th) as `T`, and the label its errors
    /// go by: `kind "name"`, or `kind #N` when it has no name. A table that
    /// does not deserialize is an error at its header line, and `None`.
    pub fn table<T: serde::de::DeserializeOwned>(
        &self,
        kind: &str,
        index: usize,
        table: toml::Table,
        span: &Range<usize>,
        scope: impl Fn(String) -> Scope,
        errors: &mut Vec<ConfigError>,
    ) -> Option<(T, String)> {
        let label = table
            .get("name")
            .and_then(|v| v.as_str())
            .map(|n| format!("{kind} {n:?}"))
            .unwrap_or_else(|| format!("{kind} #{}", index + 1));
        match T::deserialize(toml::Value::Table(table)) {
            Ok(t) => Some((t, label)),
            Err(e) => {
                errors.push(self.error(self.line_at(span.start), scope(label), None, e.message()));
                None
            }
        }
    }

    /// An error at `line`.
    pub fn error(
        &self,
        line: usize,
        scope: Scope,
        field: Option<&str>,
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError {
            file: self.file.to_string(),
            line: Some(line),
            scope,
            field: field.map(str::to_string),
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_fields() {
        let text =
            "[agent]\nlisten = 1\n\n[[check]]\nname = \"a\"\ntimeout = 2\n[[check]]\ntimeout = 3\n";
        let src = Source::new(text, "w.toml", Path::new("/"));
        assert_eq!(src.line_at(0), 1);
        assert_eq!(src.line_at(8), 2);
        assert_eq!(src.line_at(text.len()), 9);
        let check = text.find("[[check]]").unwrap();
        assert_eq!(src.field_line(&(check..check + 9), "timeout"), 6);
        assert_eq!(src.field_line(&(check..check + 9), "schedule"), 4);
        assert_eq!(src.field_line(&(check..check + 9), "allow.hosts[0]"), 4);
    }
}

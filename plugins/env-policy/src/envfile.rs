//! Reading environment definitions: dotenv files (`KEY=value`, `export`,
//! quotes, comments) and systemd units (`Environment=`,
//! `EnvironmentFile=` in `[Service]`), each definition with the file and
//! line it came from. Values are kept only to be checked, never shown.

use std::path::{Path, PathBuf};

/// One definition of a variable.
#[derive(Debug, Clone, PartialEq)]
pub struct Definition {
    /// The variable.
    pub key: String,
    /// Its value.
    pub value: String,
    /// `file:line`, or `environment`.
    pub location: String,
}

/// A line that defines nothing and is not a comment.
#[derive(Debug, Clone, PartialEq)]
pub struct Malformed {
    /// `file:line`.
    pub location: String,
    /// Why.
    pub why: String,
}

/// What a file gave.
#[derive(Debug, Default)]
pub struct Parsed {
    /// Definitions in order.
    pub definitions: Vec<Definition>,
    /// Lines that could not be read.
    pub malformed: Vec<Malformed>,
    /// `EnvironmentFile=` paths of a unit: (path, optional with `-`).
    pub includes: Vec<(PathBuf, bool)>,
}

fn is_key(k: &str) -> bool {
    k.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A dotenv value: quoted (`"a b"` with `\n`, `\"` escapes; `'raw'`) or
/// bare (up to ` #`, trimmed).
fn dotenv_value(raw: &str) -> Result<String, String> {
    let v = raw.trim();
    if let Some(rest) = v.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = rest.chars();
        while let Some(c) = chars.next() {
            match c {
                '"' => {
                    let tail = chars.as_str().trim();
                    if !(tail.is_empty() || tail.starts_with('#')) {
                        return Err("text after the closing quote".into());
                    }
                    return Ok(out);
                }
                '\\' => match chars.next() {
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    Some(o) => out.push(o),
                    None => break,
                },
                c => out.push(c),
            }
        }
        return Err("unterminated \"".into());
    }
    if let Some(rest) = v.strip_prefix('\'') {
        let end = rest.find('\'').ok_or("unterminated '")?;
        let tail = rest[end + 1..].trim();
        if !(tail.is_empty() || tail.starts_with('#')) {
            return Err("text after the closing quote".into());
        }
        return Ok(rest[..end].to_string());
    }
    let v = match v.find(" #") {
        Some(i) => &v[..i],
        None => v,
    };
    Ok(v.trim().to_string())
}

/// Parses a dotenv file's text.
pub fn dotenv(text: &str, file: &str) -> Parsed {
    let mut out = Parsed::default();
    for (i, line) in text.lines().enumerate() {
        let location = format!("{file}:{}", i + 1);
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let l = l.strip_prefix("export ").map(str::trim_start).unwrap_or(l);
        let Some((k, v)) = l.split_once('=') else {
            out.malformed.push(Malformed {
                location,
                why: "not KEY=value".into(),
            });
            continue;
        };
        let key = k.trim();
        if !is_key(key) {
            out.malformed.push(Malformed {
                location,
                why: "the name is not a variable name".into(),
            });
            continue;
        }
        match dotenv_value(v) {
            Ok(value) => out.definitions.push(Definition {
                key: key.to_string(),
                value,
                location,
            }),
            Err(why) => out.malformed.push(Malformed {
                location,
                why: format!("{key}: {why}"),
            }),
        }
    }
    out
}

/// Splits systemd's `Environment=` assignments: words separated by
/// spaces, each quoted or not.
fn unit_words(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote = None;
    let mut any = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, '"' | '\'') => {
                quote = Some(c);
                any = true;
            }
            (Some(q), c) if c == q => quote = None,
            (_, '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            (None, c) if c.is_whitespace() => {
                if any || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            (_, c) => {
                cur.push(c);
                any = true;
            }
        }
    }
    if quote.is_some() {
        return Err("unterminated quote".into());
    }
    if any || !cur.is_empty() {
        out.push(cur);
    }
    Ok(out)
}

/// Parses a systemd unit's `[Service]` environment.
pub fn unit(text: &str, file: &str) -> Parsed {
    let mut out = Parsed::default();
    let mut service = false;
    for (i, line) in text.lines().enumerate() {
        let location = format!("{file}:{}", i + 1);
        let l = line.trim();
        if l.starts_with('[') {
            service = l == "[Service]";
            continue;
        }
        if !service || l.is_empty() || l.starts_with('#') || l.starts_with(';') {
            continue;
        }
        let Some((k, v)) = l.split_once('=') else {
            continue;
        };
        match k.trim() {
            "Environment" => match unit_words(v) {
                Ok(words) => {
                    for w in words {
                        match w.split_once('=') {
                            Some((key, value)) if is_key(key) => out.definitions.push(Definition {
                                key: key.to_string(),
                                value: value.to_string(),
                                location: location.clone(),
                            }),
                            _ => out.malformed.push(Malformed {
                                location: location.clone(),
                                why: "Environment= entry is not KEY=value".into(),
                            }),
                        }
                    }
                }
                Err(why) => out.malformed.push(Malformed { location, why }),
            },
            "EnvironmentFile" => {
                let v = v.trim();
                let (optional, path) = match v.strip_prefix('-') {
                    Some(p) => (true, p),
                    None => (false, v),
                };
                out.includes.push((PathBuf::from(path), optional));
            }
            _ => {}
        }
    }
    out
}

/// Whether a file is a systemd unit (or drop-in) rather than a dotenv file.
pub fn is_unit(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("service" | "conf")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotenv_files() {
        let p = dotenv(
            "# comment\nA=1\nexport B = two words # note\nC=\"q \\\"x\\\" \\n\"\nD='raw $x'\nbad line\n9X=1\nE=\"open\n",
            ".env",
        );
        let kv: Vec<(&str, &str, &str)> = p
            .definitions
            .iter()
            .map(|d| (d.key.as_str(), d.value.as_str(), d.location.as_str()))
            .collect();
        assert_eq!(
            kv,
            vec![
                ("A", "1", ".env:2"),
                ("B", "two words", ".env:3"),
                ("C", "q \"x\" \n", ".env:4"),
                ("D", "raw $x", ".env:5"),
            ]
        );
        let bad: Vec<&str> = p.malformed.iter().map(|m| m.location.as_str()).collect();
        assert_eq!(bad, vec![".env:6", ".env:7", ".env:8"]);
    }

    #[test]
    fn systemd_units() {
        let p = unit(
            "[Unit]\nEnvironment=NOT=this\n[Service]\nEnvironment=\"A=1 2\" B=3\nEnvironment=C=\nEnvironmentFile=-/etc/relay/relay.env\nEnvironmentFile=/etc/relay/more.env\nExecStart=/bin/true\n",
            "relay.service",
        );
        let kv: Vec<(&str, &str)> = p
            .definitions
            .iter()
            .map(|d| (d.key.as_str(), d.value.as_str()))
            .collect();
        assert_eq!(kv, vec![("A", "1 2"), ("B", "3"), ("C", "")]);
        assert_eq!(
            p.includes,
            vec![
                (PathBuf::from("/etc/relay/relay.env"), true),
                (PathBuf::from("/etc/relay/more.env"), false)
            ]
        );
    }

    proptest::proptest! {
        #[test]
        fn any_text_parses(s in "\\PC{0,200}") {
            let _ = dotenv(&s, "f");
            let _ = unit(&format!("[Service]\n{s}"), "f");
        }
    }
}

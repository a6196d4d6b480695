//! `${output:CHECK.KEY}` in a check's config: the current value of another
//! check's published output, put in by the agent when the run starts.
//!
//! `warden validate` and loading refuse a reference to a check that does
//! not exist (the key cannot be known before the other check runs); a run
//! whose reference has no value yet ends `unknown` with that reason instead
//! of running the plugin. References may appear in any string of the
//! config, whole or inside a longer string.

use serde_json::Value;

const OPEN: &str = "${output:";

/// One reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// The check that publishes it.
    pub check: String,
    /// The output's key.
    pub key: String,
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.check, self.key)
    }
}

/// A problem at a field: `(field path, what)`.
type FieldError = (String, String);

/// The references in `config` as `(field path, reference)`, or the first
/// malformed one as `(field path, problem)`.
pub fn find(config: &Value) -> Result<Vec<(String, Reference)>, FieldError> {
    let mut out = Vec::new();
    walk(config, "config", &mut |path, s| {
        for r in parse(s).map_err(|e| (path.to_string(), e))? {
            out.push((path.to_string(), r));
        }
        Ok(())
    })?;
    Ok(out)
}

fn walk(
    v: &Value,
    path: &str,
    f: &mut dyn FnMut(&str, &str) -> Result<(), FieldError>,
) -> Result<(), FieldError> {
    match v {
        Value::String(s) => f(path, s),
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                walk(x, &format!("{path}[{i}]"), f)?;
            }
            Ok(())
        }
        Value::Object(o) => {
            for (k, x) in o {
                walk(x, &format!("{path}.{k}"), f)?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// A string split into literal text and references.
enum Piece<'a> {
    Text(&'a str),
    Ref(Reference),
}

fn pieces(s: &str) -> Result<Vec<Piece<'_>>, String> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(at) = rest.find(OPEN) {
        out.push(Piece::Text(&rest[..at]));
        let after = &rest[at + OPEN.len()..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("unclosed {OPEN}...}} in {s:?}"))?;
        let inner = &after[..end];
        let (check, key) = inner
            .rsplit_once('.')
            .filter(|(c, k)| !c.is_empty() && !k.is_empty())
            .ok_or_else(|| format!("{OPEN}{inner}}}: write {OPEN}CHECK.KEY}}"))?;
        out.push(Piece::Ref(Reference {
            check: check.to_string(),
            key: key.to_string(),
        }));
        rest = &after[end + 1..];
    }
    out.push(Piece::Text(rest));
    Ok(out)
}

fn parse(s: &str) -> Result<Vec<Reference>, String> {
    Ok(pieces(s)?
        .into_iter()
        .filter_map(|p| match p {
            Piece::Ref(r) => Some(r),
            Piece::Text(_) => None,
        })
        .collect())
}

/// `config_json` with every reference replaced by `lookup(check, key)`;
/// the error names the first reference without a value.
pub fn resolve(
    config_json: &str,
    lookup: impl Fn(&str, &str) -> Option<String>,
) -> Result<String, String> {
    if !config_json.contains(OPEN) {
        return Ok(config_json.to_string());
    }
    let mut v: Value =
        serde_json::from_str(config_json).map_err(|e| format!("config is not JSON: {e}"))?;
    fn fill(v: &mut Value, lookup: &dyn Fn(&str, &str) -> Option<String>) -> Result<(), String> {
        match v {
            Value::String(s) if s.contains(OPEN) => {
                let mut out = String::new();
                for piece in pieces(s)? {
                    match piece {
                        Piece::Text(t) => out.push_str(t),
                        Piece::Ref(r) => out
                            .push_str(&lookup(&r.check, &r.key).ok_or_else(|| {
                            format!(
                                "output {r} is not published yet (check {:?} has not published {})",
                                r.check, r.key
                            )
                        })?),
                    }
                }
                *s = out;
                Ok(())
            }
            Value::Array(a) => a.iter_mut().try_for_each(|x| fill(x, lookup)),
            Value::Object(o) => o.values_mut().try_for_each(|x| fill(x, lookup)),
            _ => Ok(()),
        }
    }
    fill(&mut v, &lookup)?;
    Ok(v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_and_resolves_references_anywhere() {
        let c = json!({"rpc_url": "${output:solana-rpc.SOLANA_RPC_URL}", "n": 1,
            "list": ["x", "pre-${output:a.b.K}-post"]});
        let refs = find(&c).unwrap();
        assert_eq!(refs.len(), 2);
        assert_eq!(refs[0].0, "config.list[1]");
        assert_eq!(
            refs[0].1,
            Reference {
                check: "a.b".into(),
                key: "K".into()
            }
        );
        assert_eq!(refs[1].1.to_string(), "solana-rpc.SOLANA_RPC_URL");
        let lookup = |c: &str, k: &str| match (c, k) {
            ("solana-rpc", "SOLANA_RPC_URL") => Some("http://x/?k=\"q\"".to_string()),
            ("a.b", "K") => Some("v".into()),
            _ => None,
        };
        let out: Value = serde_json::from_str(&resolve(&c.to_string(), lookup).unwrap()).unwrap();
        assert_eq!(out["rpc_url"], "http://x/?k=\"q\"");
        assert_eq!(out["list"][1], "pre-v-post");
        let e = resolve(&c.to_string(), |_, _| None).unwrap_err();
        assert!(e.contains("not published yet"), "{e}");
    }

    #[test]
    fn malformed_references_are_named() {
        assert!(
            find(&json!({"a": "${output:nodot}"}))
                .unwrap_err()
                .1
                .contains("CHECK.KEY")
        );
        assert!(
            find(&json!({"a": "${output:x.y"}))
                .unwrap_err()
                .1
                .contains("unclosed")
        );
        assert_eq!(find(&json!({"a": "plain ${env:X}"})).unwrap(), vec![]);
    }
}

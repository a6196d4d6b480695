//! Rules over the effective environment (each variable's last
//! definition): required, forbidden, forbidden values, one-of, regex,
//! minimum length, and lists (`a,b,c`) that must contain exact items or
//! another variable's exact value. A violation names the variable and
//! where it is defined; a secret's value is never part of it.

use std::collections::BTreeMap;

use serde::Deserialize;
use warden_plugin_sdk::prelude::JsonSchema;

use crate::envfile::Definition;

/// How bad a broken rule is (the SDK's, shared with other plugins).
pub use warden_plugin_sdk::Level;

/// One rule about one variable.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// The variable.
    pub key: String,
    /// It must be set (and not empty).
    #[serde(default)]
    pub required: bool,
    /// It must not be set at all.
    #[serde(default)]
    pub forbidden: bool,
    /// Values it must not have (compared ignoring ASCII case).
    #[serde(default)]
    pub forbidden_values: Vec<String>,
    /// When set, its value is one of these (exactly).
    #[serde(default)]
    pub one_of: Vec<String>,
    /// When set, its value matches this regex (the whole value).
    #[serde(default)]
    pub regex: Option<String>,
    /// When set, its value is at least this many characters.
    #[serde(default)]
    pub min_length: Option<usize>,
    /// When set, its value is a list (split on `separator`, items trimmed)
    /// containing each of these exactly.
    #[serde(default)]
    pub contains: Vec<String>,
    /// When set, its list contains exactly the value of that variable
    /// (`ALLOWED_ORIGINS` contains `APP_ORIGIN`).
    #[serde(default)]
    pub contains_value_of: Option<String>,
    /// List separator (default `,`).
    #[serde(default)]
    pub separator: Option<String>,
    /// Profiles it applies to (default: all).
    #[serde(default)]
    pub profiles: Vec<String>,
    /// `critical` (default) or `warning`.
    #[serde(default)]
    pub level: Level,
    /// Whether the value is a secret, never shown (default: when the name
    /// says so: `SECRET`, `PASSWORD`, `TOKEN`, `KEY`, `PRIVATE`,
    /// `CREDENTIAL`).
    #[serde(default)]
    pub secret: Option<bool>,
    /// Why the rule exists (the runbook's words), shown with a violation.
    #[serde(default)]
    pub reason: Option<String>,
}

/// A broken rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    /// The rule's index.
    pub rule: usize,
    /// The variable.
    pub key: String,
    /// `required`, `forbidden`, `forbidden-value`, `one-of`, `regex`,
    /// `min-length`, `contains`.
    pub kind: &'static str,
    /// What is wrong, without a secret's value.
    pub message: String,
    /// Where the variable is defined, if it is.
    pub location: Option<String>,
    /// How bad.
    pub level: Level,
    /// Tells apart two violations of one kind (the missing list item).
    pub detail: String,
}

/// Whether a variable's name says it holds a secret.
pub fn secret_name(key: &str) -> bool {
    let k = key.to_ascii_uppercase();
    [
        "SECRET",
        "PASSWORD",
        "PASSWD",
        "TOKEN",
        "KEY",
        "PRIVATE",
        "CREDENTIAL",
    ]
    .iter()
    .any(|w| k.contains(w))
}

impl Rule {
    /// Whether it applies under `profile`.
    pub fn applies(&self, profile: Option<&str>) -> bool {
        self.profiles.is_empty() || profile.is_some_and(|p| self.profiles.iter().any(|x| x == p))
    }

    fn is_secret(&self) -> bool {
        self.secret.unwrap_or_else(|| secret_name(&self.key))
    }

    /// Config errors, naming the field.
    pub fn validate(&self, field: &str) -> Result<(), String> {
        if self.key.is_empty() {
            return Err(format!("{field}.key: empty"));
        }
        if self.forbidden && (self.required || self.regex.is_some() || !self.one_of.is_empty()) {
            return Err(format!(
                "{field}: forbidden means not set at all; it cannot also be required or have a value rule"
            ));
        }
        if let Some(r) = &self.regex {
            regex::Regex::new(r).map_err(|e| {
                let e = e.to_string();
                format!("{field}.regex: {}", e.lines().last().unwrap_or_default())
            })?;
        }
        if self.separator.as_deref() == Some("") {
            return Err(format!("{field}.separator: empty"));
        }
        let checks = self.required
            || self.forbidden
            || !self.forbidden_values.is_empty()
            || !self.one_of.is_empty()
            || self.regex.is_some()
            || self.min_length.is_some()
            || !self.contains.is_empty()
            || self.contains_value_of.is_some();
        if !checks {
            return Err(format!(
                "{field}: says nothing about {} (set required, forbidden, forbidden_values, one_of, regex, min_length, contains or contains_value_of)",
                self.key
            ));
        }
        Ok(())
    }

    /// The violations of this rule (index `i`) in `env`.
    pub fn check(&self, i: usize, env: &BTreeMap<String, Definition>) -> Vec<Violation> {
        let key = &self.key;
        let def = env.get(key);
        let secret = self.is_secret();
        let shown = |v: &str| {
            if secret {
                "a secret, not shown".to_string()
            } else {
                format!("{v:?}")
            }
        };
        let mut out = Vec::new();
        let mut add = |kind: &'static str, message: String, detail: String| {
            let message = match &self.reason {
                Some(r) => format!("{message} ({r})"),
                None => message,
            };
            out.push(Violation {
                rule: i,
                key: key.clone(),
                kind,
                message,
                location: def.map(|d| d.location.clone()),
                level: self.level,
                detail,
            });
        };
        let Some(d) = def.filter(|d| !d.value.is_empty() || self.forbidden) else {
            if self.required {
                let how = if def.is_some() {
                    "set but empty"
                } else {
                    "not set"
                };
                add(
                    "required",
                    format!("{key} is required but {how}"),
                    String::new(),
                );
            }
            return out;
        };
        let v = d.value.as_str();
        if self.forbidden {
            add(
                "forbidden",
                format!("{key} is set ({}) but must not be", shown(v)),
                String::new(),
            );
            return out;
        }
        if self
            .forbidden_values
            .iter()
            .any(|f| f.eq_ignore_ascii_case(v))
        {
            add(
                "forbidden-value",
                format!("{key} has a forbidden value ({})", shown(v)),
                String::new(),
            );
        }
        if !self.one_of.is_empty() && !self.one_of.iter().any(|o| o == v) {
            add(
                "one-of",
                format!(
                    "{key} ({}) is not one of {}",
                    shown(v),
                    self.one_of.join(", ")
                ),
                String::new(),
            );
        }
        if let Some(r) = &self.regex
            && let Ok(re) = regex::Regex::new(&format!("^(?:{r})$"))
            && !re.is_match(v)
        {
            add(
                "regex",
                format!("{key} ({}) does not match /{r}/", shown(v)),
                String::new(),
            );
        }
        if let Some(n) = self.min_length
            && v.chars().count() < n
        {
            add(
                "min-length",
                format!("{key} is shorter than {n} characters"),
                String::new(),
            );
        }
        let sep = self.separator.as_deref().unwrap_or(",");
        let items: Vec<&str> = v
            .split(sep)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        let mut wanted: Vec<(String, String)> = self
            .contains
            .iter()
            .map(|c| (c.clone(), format!("{c:?}")))
            .collect();
        if let Some(other) = &self.contains_value_of {
            match env.get(other).filter(|o| !o.value.is_empty()) {
                Some(o) => wanted.push((o.value.clone(), format!("{other}'s value"))),
                None => add(
                    "contains",
                    format!("{key} cannot be checked against {other}: {other} is not set"),
                    other.clone(),
                ),
            }
        }
        for (item, name) in wanted {
            if items.contains(&item.as_str()) {
                continue;
            }
            // The usual near miss: a trailing slash or another case.
            let near = items.iter().find(|x| {
                x.trim_end_matches('/')
                    .eq_ignore_ascii_case(item.trim_end_matches('/'))
            });
            let hint = match near {
                Some(n) if !secret => format!(" (it has {n:?}, which is not exact)"),
                _ => String::new(),
            };
            add(
                "contains",
                format!("{key} lacks {name} exactly{hint}"),
                item.clone(),
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, Definition> {
        pairs
            .iter()
            .enumerate()
            .map(|(i, (k, v))| {
                (
                    k.to_string(),
                    Definition {
                        key: k.to_string(),
                        value: v.to_string(),
                        location: format!(".env:{}", i + 1),
                    },
                )
            })
            .collect()
    }

    fn rule(json: &str) -> Rule {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn each_kind_of_rule() {
        let e = env(&[
            ("CTS_MOCK_MODE", "true"),
            ("ESCROW_DB_SECRET", "short"),
            ("APP_ORIGIN", "https://app.example.com"),
            (
                "ALLOWED_ORIGINS",
                "https://app.example.com/, http://localhost:3000",
            ),
            ("NODE_ENV", "development"),
            ("EMPTY", ""),
        ]);
        let kinds = |json: &str| -> Vec<(&'static str, String)> {
            rule(json)
                .check(0, &e)
                .into_iter()
                .map(|v| (v.kind, v.message))
                .collect()
        };
        assert_eq!(
            kinds(r#"{"key":"CTS_MOCK_MODE","forbidden":true}"#)[0].1,
            "CTS_MOCK_MODE is set (\"true\") but must not be"
        );
        assert_eq!(
            kinds(r#"{"key":"CTS_MOCK_MODE","forbidden_values":["TRUE","1"]}"#)[0].0,
            "forbidden-value"
        );
        assert_eq!(
            kinds(r#"{"key":"MISSING","required":true}"#)[0].1,
            "MISSING is required but not set"
        );
        assert_eq!(
            kinds(r#"{"key":"EMPTY","required":true}"#)[0].1,
            "EMPTY is required but set but empty"
        );
        let secret = kinds(
            r#"{"key":"ESCROW_DB_SECRET","required":true,"min_length":32,"regex":"[a-f0-9]+"}"#,
        );
        assert_eq!(secret.len(), 2, "{secret:?}");
        assert!(
            secret.iter().all(|(_, m)| !m.contains("\"short\"")),
            "{secret:?}"
        );
        assert_eq!(
            kinds(r#"{"key":"NODE_ENV","one_of":["production"]}"#)[0].0,
            "one-of"
        );
        let c = kinds(r#"{"key":"ALLOWED_ORIGINS","contains_value_of":"APP_ORIGIN"}"#);
        assert_eq!(
            c[0].1,
            "ALLOWED_ORIGINS lacks APP_ORIGIN's value exactly (it has \"https://app.example.com/\", which is not exact)"
        );
        assert!(
            kinds(r#"{"key":"ALLOWED_ORIGINS","contains":["http://localhost:3000"]}"#).is_empty()
        );
        assert!(
            kinds(r#"{"key":"NOT_SET","one_of":["a"]}"#).is_empty(),
            "value rules apply when set"
        );
    }

    #[test]
    fn bad_rules_name_the_field() {
        assert!(
            rule(r#"{"key":"A"}"#)
                .validate("config.rules[0]")
                .unwrap_err()
                .contains("says nothing")
        );
        assert!(
            rule(r#"{"key":"A","regex":"("}"#)
                .validate("config.rules[1]")
                .unwrap_err()
                .contains("config.rules[1].regex")
        );
        assert!(
            rule(r#"{"key":"A","forbidden":true,"required":true}"#)
                .validate("r")
                .is_err()
        );
    }
}

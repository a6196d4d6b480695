//! Conditions in the spirit of Gatus: `[STATUS] == 200`,
//! `[RESPONSE_TIME] < 400`, `[BODY].status == ok`, `[BODY] == pat(*ok*)`,
//! `len([BODY].items) > 0`, `[HEADER].content-type == pat(application/json*)`,
//! `[CERTIFICATE_EXPIRATION] > 168h`, `has([BODY].id) == true`,
//! `[BODY].state == any(ok, degraded)`.
//!
//! Beyond Gatus, a condition may be a predicate over arrays and time
//! ([`crate::predicate`]): `any([BODY].escrows, .state == "pending" &&
//! age(.pending_since) > 30m)`.
//!
//! A condition is parsed once ([`Condition::parse`], which names what is
//! wrong) and evaluated against an [`Observation`] of one response.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;
use warden_plugin_sdk::template;
use warden_plugin_sdk::units::format_duration_human;

use crate::{jsonpath, predicate};

/// What a condition reads.
#[derive(Debug, Clone, PartialEq)]
pub enum Placeholder {
    /// `[STATUS]`: the status code.
    Status,
    /// `[RESPONSE_TIME]`: milliseconds.
    ResponseTime,
    /// `[BODY]` or `[BODY].path`.
    Body(Vec<jsonpath::Step>),
    /// `[HEADER].name`.
    Header(String),
    /// `[CERTIFICATE_EXPIRATION]`: time left on the earliest certificate.
    CertificateExpiration,
    /// `[CONNECTED]`: whether a response arrived.
    Connected,
}

/// A function around the placeholder.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Function {
    /// The value itself.
    Identity,
    /// `len(...)`: length of a string, array or object.
    Len,
    /// `has(...)`: whether the value exists.
    Has,
}

/// Comparison.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Op {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

/// The right-hand side.
#[derive(Debug, Clone, PartialEq)]
pub enum Expected {
    /// A literal: compared as a number, a boolean or a string.
    Literal(String),
    /// `pat(...)`: `*` matches any run of characters.
    Pattern(String),
    /// `any(a, b, ...)`: equal to one of them.
    Any(Vec<String>),
}

/// A parsed condition.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    /// As written.
    pub text: String,
    form: Form,
}

#[derive(Debug, Clone, PartialEq)]
enum Form {
    Gatus(Gatus),
    Predicate(predicate::Expr),
}

/// `placeholder op value`, as Gatus has it.
#[derive(Debug, Clone, PartialEq)]
struct Gatus {
    function: Function,
    placeholder: Placeholder,
    op: Op,
    expected: Expected,
}

/// Everything a condition can read about one exchange.
#[derive(Debug, Clone, Default)]
pub struct Observation {
    /// Status code (None: no response).
    pub status: Option<u16>,
    /// Milliseconds to the end of the body.
    pub response_time_ms: f64,
    /// The body.
    pub body: String,
    /// Headers (names lower case).
    pub headers: Vec<(String, String)>,
    /// Seconds until the earliest certificate expires, when known.
    pub cert_expires_in_seconds: Option<f64>,
    /// The run's time (unix seconds), for `now()` and `age()`.
    pub now_unix_seconds: f64,
    /// A flow's captures so far, for `{{name}}`.
    pub captures: BTreeMap<String, String>,
}

/// A condition's verdict and what it saw.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// Whether it holds.
    pub ok: bool,
    /// The value it compared (shortened), for the report.
    pub actual: String,
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A duration literal (`168h`, `30m`, `10s`, `7d`) in seconds, in the
/// grammar every Warden config uses.
pub fn duration_seconds(s: &str) -> Option<f64> {
    warden_plugin_sdk::units::parse_duration(s)
        .ok()
        .map(|d| d.as_secs_f64())
}

fn parse_placeholder(s: &str) -> Result<Placeholder, String> {
    let s = s.trim();
    if s == "[STATUS]" {
        return Ok(Placeholder::Status);
    }
    if s == "[RESPONSE_TIME]" {
        return Ok(Placeholder::ResponseTime);
    }
    if s == "[CERTIFICATE_EXPIRATION]" {
        return Ok(Placeholder::CertificateExpiration);
    }
    if s == "[CONNECTED]" {
        return Ok(Placeholder::Connected);
    }
    if let Some(rest) = s.strip_prefix("[BODY]") {
        return jsonpath::parse(rest).map(Placeholder::Body);
    }
    if let Some(rest) = s.strip_prefix("[HEADER].") {
        if rest.is_empty() {
            return Err("[HEADER]. needs a header name".into());
        }
        return Ok(Placeholder::Header(rest.to_ascii_lowercase()));
    }
    Err(format!(
        "unknown placeholder {s:?} (use [STATUS], [RESPONSE_TIME], [BODY], [HEADER].name, [CERTIFICATE_EXPIRATION], [CONNECTED])"
    ))
}

impl Condition {
    /// Parses a condition; the error names what is wrong.
    pub fn parse(text: &str) -> Result<Condition, String> {
        let t = text.trim();
        if predicate::wanted(t) {
            let e = predicate::Expr::parse(t).map_err(|e| format!("condition {t:?}: {e}"))?;
            return Ok(Condition {
                text: t.to_string(),
                form: Form::Predicate(e),
            });
        }
        let ops = [
            ("==", Op::Eq),
            ("!=", Op::Ne),
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("<", Op::Lt),
            (">", Op::Gt),
        ];
        // The operator is the first one outside brackets and parentheses.
        let mut depth = 0i32;
        let mut found = None;
        let bytes = t.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'[' | b'(' => depth += 1,
                b']' | b')' => depth -= 1,
                _ if depth == 0 => {
                    // Bytes, not `str` slices: an operator is ASCII, so a
                    // match never starts inside a multi-byte character.
                    if let Some((sym, op)) = ops
                        .iter()
                        .find(|(sym, _)| bytes[i..].starts_with(sym.as_bytes()))
                    {
                        found = Some((i, sym.len(), *op));
                        break;
                    }
                }
                _ => {}
            }
            i += 1;
        }
        let (at, len, op) = found
            .ok_or_else(|| format!("condition {t:?}: no comparison (==, !=, <, <=, >, >=)"))?;
        let left = t[..at].trim();
        let right = t[at + len..].trim();
        if right.is_empty() {
            return Err(format!("condition {t:?}: nothing to compare with"));
        }
        let (function, inner) =
            if let Some(x) = left.strip_prefix("len(").and_then(|x| x.strip_suffix(')')) {
                (Function::Len, x)
            } else if let Some(x) = left.strip_prefix("has(").and_then(|x| x.strip_suffix(')')) {
                (Function::Has, x)
            } else {
                (Function::Identity, left)
            };
        let placeholder = parse_placeholder(inner).map_err(|e| format!("condition {t:?}: {e}"))?;
        let expected = if let Some(p) = right.strip_prefix("pat(").and_then(|x| x.strip_suffix(')'))
        {
            Expected::Pattern(p.to_string())
        } else if let Some(list) = right.strip_prefix("any(").and_then(|x| x.strip_suffix(')')) {
            Expected::Any(
                list.split(',')
                    .map(|v| unquote(v.trim()).to_string())
                    .collect(),
            )
        } else {
            Expected::Literal(unquote(right).to_string())
        };
        let ordering = matches!(op, Op::Lt | Op::Le | Op::Gt | Op::Ge);
        if ordering && !matches!(expected, Expected::Literal(_)) {
            return Err(format!(
                "condition {t:?}: pat() and any() work with == and != only"
            ));
        }
        if placeholder == Placeholder::CertificateExpiration
            && let Expected::Literal(l) = &expected
            && duration_seconds(l).is_none()
            && l.parse::<f64>().is_err()
        {
            return Err(format!(
                "condition {t:?}: {l:?} is not a duration like 168h"
            ));
        }
        if (matches!(placeholder, Placeholder::Status | Placeholder::ResponseTime)
            || function == Function::Len)
            && let Expected::Literal(l) = &expected
            && l.parse::<f64>().is_err()
        {
            return Err(format!("condition {t:?}: {l:?} is not a number"));
        }
        Ok(Condition {
            text: t.to_string(),
            form: Form::Gatus(Gatus {
                function,
                placeholder,
                op,
                expected,
            }),
        })
    }

    /// Whether the condition needs certificate information.
    pub fn needs_certificate(&self) -> bool {
        match &self.form {
            Form::Gatus(g) => g.placeholder == Placeholder::CertificateExpiration,
            Form::Predicate(e) => e.needs_certificate(),
        }
    }

    /// The `{{name}}` captures it reads.
    pub fn captures(&self) -> Vec<String> {
        let mut out = Vec::new();
        match &self.form {
            Form::Predicate(e) => e.captures(&mut out),
            Form::Gatus(g) => {
                let texts: Vec<&str> = match &g.expected {
                    Expected::Literal(l) | Expected::Pattern(l) => vec![l],
                    Expected::Any(list) => list.iter().map(String::as_str).collect(),
                };
                for t in texts {
                    out.extend(template::captures(t));
                }
            }
        }
        out
    }

    /// Evaluates against one observation.
    pub fn evaluate(&self, o: &Observation) -> Verdict {
        match &self.form {
            Form::Gatus(g) => g.evaluate(o),
            Form::Predicate(e) => evaluate_predicate(e, o),
        }
    }
}

fn evaluate_predicate(e: &predicate::Expr, o: &Observation) -> Verdict {
    let body: Option<Value> = serde_json::from_str(&o.body).ok();
    let scope = predicate::Scope {
        o,
        body: body.as_ref(),
        captures: &o.captures,
    };
    let ok = match e.eval(&scope, None) {
        Ok(v) => matches!(v, Some(Value::Bool(true))),
        Err(why) => {
            return Verdict {
                ok: false,
                actual: why,
            };
        }
    };
    let shown = |x: &predicate::Expr, duration: bool| match x.eval(&scope, None) {
        Ok(None) => "(absent)".to_string(),
        Ok(Some(Value::Number(n))) if duration => {
            format_duration_human(n.as_f64().unwrap_or_default())
        }
        Ok(Some(Value::String(s))) => shorten(&s),
        Ok(Some(v)) => shorten(&v.to_string()),
        Err(why) => why,
    };
    let actual = if let Some((n, of, first)) = e.matching(&scope) {
        // Which elements match: the abusive key, the stuck escrow.
        let mut s = format!("{n} of {of} match");
        if !first.is_empty() {
            let shown: Vec<String> = first.iter().map(|v| shorten(&v.to_string())).collect();
            s.push_str(&format!(": {}", shown.join(", ")));
            if n > first.len() {
                s.push_str(&format!(" and {} more", n - first.len()));
            }
        }
        s
    } else {
        match e {
            predicate::Expr::Bin(op, l, r) if !matches!(*op, "&&" | "||") => {
                shown(l, l.is_duration() || r.is_duration())
            }
            _ => ok.to_string(),
        }
    };
    Verdict { ok, actual }
}

impl Gatus {
    fn evaluate(&self, o: &Observation) -> Verdict {
        let value: Option<Value> = match &self.placeholder {
            Placeholder::Status => o.status.map(Value::from),
            Placeholder::ResponseTime => Some(Value::from(o.response_time_ms.round() as u64)),
            Placeholder::Connected => Some(Value::Bool(o.status.is_some())),
            Placeholder::CertificateExpiration => o.cert_expires_in_seconds.map(Value::from),
            Placeholder::Header(name) => o
                .headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| Value::String(v.clone())),
            Placeholder::Body(path) if path.is_empty() => Some(Value::String(o.body.clone())),
            Placeholder::Body(path) => serde_json::from_str::<Value>(&o.body)
                .ok()
                .and_then(|doc| jsonpath::get(&doc, path).cloned()),
        };
        let value = match self.function {
            Function::Identity => value,
            Function::Has => Some(Value::Bool(value.as_ref().is_some_and(|v| !v.is_null()))),
            Function::Len => value.map(|v| {
                Value::from(match &v {
                    Value::String(s) => s.chars().count(),
                    Value::Array(a) => a.len(),
                    Value::Object(m) => m.len(),
                    Value::Null => 0,
                    other => other.to_string().len(),
                } as u64)
            }),
        };
        let actual = match &value {
            None => "(absent)".to_string(),
            Some(Value::Number(n)) if self.placeholder == Placeholder::CertificateExpiration => {
                format_duration_human(n.as_f64().unwrap_or_default())
            }
            Some(Value::String(s)) => shorten(s),
            Some(v) => shorten(&v.to_string()),
        };
        let ok = match &value {
            None => matches!(self.op, Op::Ne) && !matches!(self.expected, Expected::Pattern(_)),
            Some(v) => self.compare(v, &o.captures),
        };
        Verdict { ok, actual }
    }

    fn compare(&self, v: &Value, captures: &BTreeMap<String, String>) -> bool {
        let text = match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        // `{{name}}` in the expected value is a flow's capture.
        let expand = |s: &str| {
            template::expand(s, true, |p| match p {
                template::Placeholder::Capture(n) => captures.get(n).cloned(),
                template::Placeholder::Env(_) => None,
            })
            .unwrap_or_else(|_| s.to_string())
        };
        let expected = match &self.expected {
            Expected::Literal(l) => Expected::Literal(expand(l)),
            Expected::Pattern(p) => Expected::Pattern(expand(p)),
            Expected::Any(list) => Expected::Any(list.iter().map(|x| expand(x)).collect()),
        };
        match &expected {
            Expected::Pattern(p) => {
                let m = glob(p, &text);
                if self.op == Op::Eq { m } else { !m }
            }
            Expected::Any(list) => {
                let m = list.iter().any(|e| equal(v, &text, e));
                if self.op == Op::Eq { m } else { !m }
            }
            Expected::Literal(lit) => {
                let expected_num = if self.placeholder == Placeholder::CertificateExpiration {
                    duration_seconds(lit).or_else(|| lit.parse().ok())
                } else {
                    lit.parse::<f64>().ok()
                };
                let actual_num = v.as_f64().or_else(|| text.trim().parse::<f64>().ok());
                match self.op {
                    Op::Eq => equal(v, &text, lit),
                    Op::Ne => !equal(v, &text, lit),
                    ord => match (actual_num, expected_num) {
                        (Some(a), Some(e)) => match ord {
                            Op::Lt => a < e,
                            Op::Le => a <= e,
                            Op::Gt => a > e,
                            Op::Ge => a >= e,
                            _ => false,
                        },
                        _ => match ord {
                            Op::Lt => text.as_str() < lit.as_str(),
                            Op::Le => text.as_str() <= lit.as_str(),
                            Op::Gt => text.as_str() > lit.as_str(),
                            Op::Ge => text.as_str() >= lit.as_str(),
                            _ => false,
                        },
                    },
                }
            }
        }
    }
}

fn equal(v: &Value, text: &str, expected: &str) -> bool {
    match v {
        Value::Number(n) => match (n.as_f64(), expected.parse::<f64>()) {
            (Some(a), Ok(e)) => a == e,
            _ => text == expected,
        },
        Value::Bool(b) => expected.parse::<bool>().is_ok_and(|e| e == *b),
        Value::Null => expected == "null",
        _ => text == expected,
    }
}

/// `s` without one pair of surrounding quotes (`"` or `'`).
pub(crate) fn unquote(s: &str) -> &str {
    let s = s.trim();
    if s.len() >= 2
        && ((s.starts_with('"') && s.ends_with('"')) || (s.starts_with('\'') && s.ends_with('\'')))
    {
        &s[1..s.len() - 1]
    } else {
        s
    }
}

fn shorten(s: &str) -> String {
    if s.chars().count() <= 80 {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(80).collect::<String>())
    }
}

/// `*` matches any run of characters (including none); everything else
/// matches itself.
pub fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && p[pi] != '*' && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs() -> Observation {
        Observation {
            status: Some(200),
            response_time_ms: 123.0,
            body:
                r#"{"status":"ok","items":[{"id":1},{"id":2}],"up":true,"load":0.5,"name":"api"}"#
                    .into(),
            headers: vec![(
                "content-type".into(),
                "application/json; charset=utf-8".into(),
            )],
            cert_expires_in_seconds: Some(30.0 * 86400.0),
            ..Observation::default()
        }
    }

    /// 2026-12-01T12:00:00Z.
    const NOON: f64 = 1_796_126_400.0;

    fn escrow_obs() -> Observation {
        Observation {
            status: Some(200),
            body: serde_json::json!({
                "escrows": [
                    {"id": "e1", "state": "settled", "pending_since": null},
                    {"id": "e2", "state": "pending", "pending_since": "2026-12-01T11:50:00Z"},
                    {"id": "e3", "state": "pending", "pending_since": 1_796_123_600_000u64},
                ],
                "keys": [{"key": "k1", "rpm": 20}, {"key": "k2", "rpm": 900}],
                "events": [{"type": "login", "at": "2026-12-01T11:00:00+00:00"},
                           {"type": "payout_error", "at": "2026-12-01T10:30:00.250Z"}],
                "origins": ["https://app.example.com", "http://localhost:3000"],
                "last_block_time": 1_796_126_390,
            })
            .to_string(),
            now_unix_seconds: NOON,
            captures: [("origin".to_string(), "https://app.example.com".to_string())].into(),
            ..Observation::default()
        }
    }

    fn holds(text: &str) -> Verdict {
        Condition::parse(text)
            .unwrap_or_else(|e| panic!("{e}"))
            .evaluate(&escrow_obs())
    }

    #[test]
    fn predicates_over_arrays_and_time() {
        for (pass, fail) in [
            (
                r#"any([BODY].escrows, .state == "pending" && age(.pending_since) > 30m)"#,
                r#"any([BODY].escrows, .state == "pending" && age(.pending_since) > 2h)"#,
            ),
            (
                "count([BODY].keys, .rpm > 100) == 1",
                "count([BODY].keys, .rpm > 100) == 0",
            ),
            (
                "max([BODY].keys, .rpm) >= 900",
                "max([BODY].keys, .rpm) < 100",
            ),
            (
                "min([BODY].keys, .rpm) == 20",
                "min([BODY].keys, .rpm) > 20",
            ),
            (
                "any([BODY].events, .type == pat(*_error) && age(.at) < 2h)",
                "any([BODY].events, .type == pat(*_error) && age(.at) < 1h)",
            ),
            (
                "all([BODY].keys, has(.key))",
                r#"all([BODY].escrows, .state == "pending")"#,
            ),
            (
                r#"contains([BODY].origins, "https://app.example.com")"#,
                r#"contains([BODY].origins, "https://app.example.com/")"#,
            ),
            (
                "contains([BODY].origins, {{origin}})",
                "!contains([BODY].origins, {{origin}})",
            ),
            (
                "age([BODY].last_block_time) < 1m",
                "age([BODY].last_block_time) < 5s",
            ),
            (
                "len([BODY].keys) == 2 && [STATUS] == 200",
                "len([BODY].keys) == 2 && [STATUS] == 500",
            ),
            (
                "[STATUS] == 500 || [BODY].keys[1].key == k2",
                "[STATUS] == 500 || [BODY].keys[1].key == k1",
            ),
            (
                "now() - time([BODY].events[0].at) == 1h",
                "now() < time([BODY].events[0].at)",
            ),
        ] {
            assert!(holds(pass).ok, "{pass} should hold: {:?}", holds(pass));
            assert!(!holds(fail).ok, "{fail} should not hold");
        }
        // What a failure shows: counts, and durations for people.
        assert!(
            holds(r#"all([BODY].escrows, .state == "pending")"#)
                .actual
                .starts_with("2 of 3 match: {"),
        );
        assert_eq!(
            holds("count([BODY].keys, .rpm > 100) == 0").actual,
            r#"1 of 2 match: {"key":"k2","rpm":900}"#
        );
        assert_eq!(holds("age([BODY].last_block_time) < 5s").actual, "10s");
        let cert = Condition::parse("[CERTIFICATE_EXPIRATION] > 60d")
            .unwrap()
            .evaluate(&Observation {
                cert_expires_in_seconds: Some(863_962.0),
                ..obs()
            });
        assert_eq!(cert.actual, "9d23h");
    }

    #[test]
    fn malformed_predicates_are_named() {
        for (bad, why) in [
            ("any([BODY].a)", "any() takes 2 arguments"),
            ("any([BODY].a, .x == ) ", "expected a value"),
            ("age([BOD].x) > 1m", "unknown placeholder"),
            (
                "count([BODY].a, .x > 30q) == 0",
                "not a number or a duration",
            ),
            ("bogus([BODY].a) && true", "unknown function bogus()"),
            (r#"any([BODY].a, .x == "y) "#, "unterminated string"),
        ] {
            let e = Condition::parse(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
        let v = holds("count(.x) == 1");
        assert!(!v.ok && v.actual.contains("belongs inside"), "{v:?}");
    }

    fn check(text: &str) -> bool {
        Condition::parse(text)
            .unwrap_or_else(|e| panic!("{e}"))
            .evaluate(&obs())
            .ok
    }

    #[test]
    fn every_kind_passes_and_fails() {
        for (pass, fail) in [
            ("[STATUS] == 200", "[STATUS] == 503"),
            ("[STATUS] < 500", "[STATUS] >= 300"),
            ("[RESPONSE_TIME] < 400", "[RESPONSE_TIME] < 100"),
            ("[BODY].status == ok", "[BODY].status == down"),
            ("[BODY].items[1].id == 2", "[BODY].items[0].id == 2"),
            ("[BODY].up == true", "[BODY].up == false"),
            ("[BODY].load <= 0.5", "[BODY].load > 0.9"),
            ("[BODY] == pat(*\"ok\"*)", "[BODY] == pat(*error*)"),
            ("len([BODY].items) > 0", "len([BODY].items) > 2"),
            ("len([BODY].name) == 3", "len([BODY].name) == 4"),
            (
                "[HEADER].content-type == pat(application/json*)",
                "[HEADER].content-type == pat(text/*)",
            ),
            (
                "[CERTIFICATE_EXPIRATION] > 168h",
                "[CERTIFICATE_EXPIRATION] > 60d",
            ),
            ("has([BODY].items) == true", "has([BODY].nope) == true"),
            (
                "[BODY].status == any(ok, degraded)",
                "[BODY].status == any(down, degraded)",
            ),
            ("[BODY].status != down", "[BODY].status != ok"),
            ("[CONNECTED] == true", "[CONNECTED] == false"),
        ] {
            assert!(check(pass), "{pass} should pass");
            assert!(!check(fail), "{fail} should fail");
        }
    }

    #[test]
    fn absent_values_fail_comparisons() {
        assert!(!check("[BODY].missing == 1"));
        assert!(!check("[BODY].missing > 1"));
        let none = Observation::default();
        assert!(
            !Condition::parse("[STATUS] == 200")
                .unwrap()
                .evaluate(&none)
                .ok
        );
        assert!(
            Condition::parse("[CONNECTED] == false")
                .unwrap()
                .evaluate(&none)
                .ok
        );
    }

    #[test]
    fn malformed_conditions_are_named() {
        for (bad, why) in [
            ("[STATUS] 200", "no comparison"),
            ("[STATU] == 200", "unknown placeholder"),
            ("[STATUS] == ", "nothing to compare"),
            ("[STATUS] == abc", "not a number"),
            ("[CERTIFICATE_EXPIRATION] > soon", "not a duration"),
            ("[BODY].a[x] == 1", "index"),
            ("[BODY] < pat(x)", "pat() and any()"),
        ] {
            let e = Condition::parse(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
            assert!(e.contains(bad.trim()), "{bad}: {e}");
        }
    }

    #[test]
    fn globs() {
        assert!(glob("*ok*", "all ok here"));
        assert!(glob("application/json*", "application/json; charset=utf-8"));
        assert!(!glob("application/json*", "text/html"));
        assert!(glob("a*b*c", "aXXbYYc"));
        assert!(!glob("a*b*c", "aXXbYY"));
        assert!(glob("*", ""));
    }

    proptest::proptest! {
        #[test]
        fn any_text_is_a_condition_or_an_error(s in "\\PC{0,80}") {
            let _ = Condition::parse(&s);
        }

        #[test]
        fn condition_like_text_parses_or_errs(
            placeholder in "(\\[STATUS\\]|\\[BODY\\][.a-z0-9\\[\\]]{0,12}|\\[RESPONSE_TIME\\]|\\[CERTIFICATE_EXPIRATION\\]|len\\(\\[BODY\\]\\)|\\[HEADER\\][.a-z-]{0,8})",
            op in "(==|!=|<|<=|>|>=|=|~)",
            value in "\\PC{0,16}",
        ) {
            let _ = Condition::parse(&format!("{placeholder} {op} {value}"));
        }
    }
}

//! Conditions as expressions, for what Gatus' `placeholder op value`
//! cannot say: predicates over arrays and time.
//!
//! `any([BODY].escrows, .state == "pending" && age(.pending_since) > 30m)`,
//! `count([BODY].keys, .requests_last_minute > 100) == 0`,
//! `max([BODY].queues, .depth) < 1000`, `contains([BODY].origins,
//! "https://app.example.com")`, `age([BODY].last_block_time) < 2m`,
//! `[BODY].state == "ok" || [STATUS] == 204`.
//!
//! Inside `any`/`all`/`count`/`max`/`min`/`sum` a path starting with `.`
//! reads the current element (`.` alone is the element itself). Numbers
//! may carry a duration unit (`30m` is 1800, in seconds, as `age()` and
//! `now()` are). Times are RFC 3339 strings or unix timestamps (seconds,
//! or milliseconds when over 10¹²). `{{name}}` is a flow's capture. A bare
//! word is a string, as in Gatus (`[BODY].state == ok`). `pat(*_error)`
//! on the right of `==`/`!=` matches a glob.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::conditions::{Observation, glob, unquote};
use crate::jsonpath;

/// A parsed predicate.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A literal.
    Lit(Value),
    /// A number written with a duration unit (seconds).
    Duration(f64),
    /// `pat(...)`.
    Pattern(String),
    /// `[STATUS]`, `[BODY].x` ...
    Placeholder(String, Vec<jsonpath::Step>),
    /// `.x` inside an array function.
    Item(Vec<jsonpath::Step>),
    /// `{{name}}`.
    Capture(String),
    /// A function call.
    Call(String, Vec<Expr>),
    /// `!x`.
    Not(Box<Expr>),
    /// `-x`.
    Neg(Box<Expr>),
    /// Binary: operator and sides.
    Bin(&'static str, Box<Expr>, Box<Expr>),
}

const FUNCTIONS: &[(&str, usize, usize)] = &[
    ("any", 2, 2),
    ("all", 2, 2),
    ("count", 1, 2),
    ("max", 1, 2),
    ("min", 1, 2),
    ("sum", 1, 2),
    ("contains", 2, 2),
    ("len", 1, 1),
    ("has", 1, 1),
    ("now", 0, 0),
    ("age", 1, 1),
    ("time", 1, 1),
];

/// Whether a condition needs this grammar rather than Gatus' (a function
/// only it has, `&&`, `||` or `!` in front).
pub fn wanted(text: &str) -> bool {
    let t = text.trim_start();
    [
        "any(",
        "all(",
        "count(",
        "max(",
        "min(",
        "sum(",
        "contains(",
        "age(",
        "now(",
        "time(",
        "!",
    ]
    .iter()
    .any(|f| t.starts_with(f))
        || outside_quotes(text, "&&")
        || outside_quotes(text, "||")
}

fn outside_quotes(text: &str, needle: &str) -> bool {
    let mut quote = None;
    for (i, c) in text.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None if text[i..].starts_with(needle) => return true,
            None => {}
        }
    }
    false
}

crate::cursor::cursor_parser!(P);

impl P<'_> {
    fn or(&mut self) -> Result<Expr, String> {
        let mut l = self.and()?;
        while self.eat("||") {
            l = Expr::Bin("||", Box::new(l), Box::new(self.and()?));
        }
        Ok(l)
    }
    fn and(&mut self) -> Result<Expr, String> {
        let mut l = self.not()?;
        while self.eat("&&") {
            l = Expr::Bin("&&", Box::new(l), Box::new(self.not()?));
        }
        Ok(l)
    }
    fn not(&mut self) -> Result<Expr, String> {
        self.ws();
        if self.rest().starts_with('!') && !self.rest().starts_with("!=") {
            self.i += 1;
            return Ok(Expr::Not(Box::new(self.not()?)));
        }
        self.cmp()
    }
    fn cmp(&mut self) -> Result<Expr, String> {
        let l = self.sum()?;
        for op in ["==", "!=", "<=", ">=", "<", ">"] {
            if self.eat(op) {
                let r = self.sum()?;
                return Ok(Expr::Bin(op, Box::new(l), Box::new(r)));
            }
        }
        Ok(l)
    }
    fn sum(&mut self) -> Result<Expr, String> {
        let mut l = self.product()?;
        loop {
            self.ws();
            let op = match self.rest().chars().next() {
                Some('+') => "+",
                Some('-') => "-",
                _ => return Ok(l),
            };
            self.i += 1;
            l = Expr::Bin(op, Box::new(l), Box::new(self.product()?));
        }
    }
    fn product(&mut self) -> Result<Expr, String> {
        let mut l = self.unary()?;
        loop {
            self.ws();
            let op = match self.rest().chars().next() {
                Some('*') => "*",
                Some('/') => "/",
                _ => return Ok(l),
            };
            self.i += 1;
            l = Expr::Bin(op, Box::new(l), Box::new(self.unary()?));
        }
    }
    fn unary(&mut self) -> Result<Expr, String> {
        if self.eat("-") {
            return Ok(Expr::Neg(Box::new(self.unary()?)));
        }
        self.primary()
    }

    /// A path after a placeholder or a `.`: up to a space, `,`, `)` or an
    /// operator.
    fn path(&mut self) -> Result<Vec<jsonpath::Step>, String> {
        let r = self.rest();
        let mut depth = 0;
        let end = r
            .char_indices()
            .find(|&(_, c)| {
                match c {
                    '[' => depth += 1,
                    ']' => depth -= 1,
                    _ => {}
                }
                depth == 0 && (c.is_whitespace() || "(),=!<>&|+*/".contains(c))
            })
            .map(|(i, _)| i)
            .unwrap_or(r.len());
        self.i += end;
        jsonpath::parse(&r[..end]).map_err(|e| self.err(&e))
    }

    fn primary(&mut self) -> Result<Expr, String> {
        self.ws();
        let r = self.rest();
        if self.eat("(") {
            let e = self.or()?;
            if !self.eat(")") {
                return Err(self.err("expected )"));
            }
            return Ok(e);
        }
        if let Some(q) = r.chars().next().filter(|c| *c == '"' || *c == '\'') {
            let body = &r[1..];
            let end = body
                .find(q)
                .ok_or_else(|| self.err("unterminated string"))?;
            self.i += end + 2;
            return Ok(Expr::Lit(Value::String(body[..end].to_string())));
        }
        if let Some(body) = r.strip_prefix("{{") {
            let end = body.find("}}").ok_or_else(|| self.err("unclosed {{"))?;
            self.i += end + 4;
            return Ok(Expr::Capture(body[..end].trim().to_string()));
        }
        if r.starts_with('[') {
            let end = r.find(']').ok_or_else(|| self.err("unclosed ["))?;
            let name = &r[..=end];
            if ![
                "[STATUS]",
                "[RESPONSE_TIME]",
                "[BODY]",
                "[HEADER]",
                "[CERTIFICATE_EXPIRATION]",
                "[CONNECTED]",
            ]
            .contains(&name)
            {
                return Err(self.err(&format!(
                    "unknown placeholder {name} (use [STATUS], [RESPONSE_TIME], [BODY], [HEADER].name, [CERTIFICATE_EXPIRATION], [CONNECTED])"
                )));
            }
            self.i += end + 1;
            let path = if name == "[HEADER]" {
                let p = self.path()?;
                match p.as_slice() {
                    [jsonpath::Step::Key(_)] => p,
                    _ => return Err(self.err("[HEADER] needs .name")),
                }
            } else if name == "[BODY]" {
                self.path()?
            } else {
                Vec::new()
            };
            return Ok(Expr::Placeholder(name.to_string(), path));
        }
        if r.starts_with('.') && !r[1..].starts_with(|c: char| c.is_ascii_digit()) {
            if !r[1..]
                .starts_with(|c: char| c.is_alphanumeric() || c == '_' || c == '-' || c == '[')
            {
                self.i += 1;
                return Ok(Expr::Item(Vec::new()));
            }
            return Ok(Expr::Item(self.path()?));
        }
        if r.starts_with(|c: char| c.is_ascii_digit() || c == '.') {
            let end = r
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.'))
                .unwrap_or(r.len());
            let word = &r[..end];
            self.i += end;
            if let Ok(n) = word.parse::<f64>() {
                return Ok(Expr::Lit(Value::from(n)));
            }
            return crate::conditions::duration_seconds(word)
                .map(Expr::Duration)
                .ok_or_else(|| {
                    self.err(&format!("{word:?} is not a number or a duration like 30m"))
                });
        }
        let end = r
            .find(|c: char| !(c.is_ascii_alphanumeric() || "_-:".contains(c)))
            .unwrap_or(r.len());
        let word = &r[..end];
        if word.is_empty() {
            return Err(self.err("expected a value"));
        }
        self.i += end;
        if word == "pat" && self.rest().starts_with('(') {
            let body = &self.rest()[1..];
            let close = body.find(')').ok_or_else(|| self.err("unclosed pat("))?;
            self.i += close + 2;
            return Ok(Expr::Pattern(unquote(body[..close].trim()).to_string()));
        }
        if self.rest().starts_with('(') {
            let Some(&(_, min, max)) = FUNCTIONS.iter().find(|(f, ..)| *f == word) else {
                return Err(self.err(&format!(
                    "unknown function {word}() (known: any, all, count, max, min, sum, contains, len, has, now, age, time, pat)"
                )));
            };
            self.i += 1;
            let mut args = Vec::new();
            if !self.eat(")") {
                loop {
                    args.push(self.or()?);
                    if self.eat(")") {
                        break;
                    }
                    if !self.eat(",") {
                        return Err(self.err("expected , or )"));
                    }
                }
            }
            if args.len() < min || args.len() > max {
                return Err(self.err(&format!(
                    "{word}() takes {}",
                    if min == max {
                        format!("{min} argument{}", if min == 1 { "" } else { "s" })
                    } else {
                        format!("{min} or {max} arguments")
                    }
                )));
            }
            return Ok(Expr::Call(word.to_string(), args));
        }
        Ok(match word {
            "true" => Expr::Lit(Value::Bool(true)),
            "false" => Expr::Lit(Value::Bool(false)),
            "null" => Expr::Lit(Value::Null),
            w => Expr::Lit(Value::String(w.to_string())),
        })
    }
}

impl Expr {
    /// Parses a predicate; errors name the column.
    pub fn parse(text: &str) -> Result<Expr, String> {
        let mut p = P(crate::cursor::Cursor::new(text));
        let e = p.or()?;
        if !p.done() {
            return Err(p.err("unexpected text"));
        }
        Ok(e)
    }

    /// The captures it reads.
    pub fn captures(&self, out: &mut Vec<String>) {
        match self {
            Expr::Capture(n) => out.push(n.clone()),
            Expr::Call(_, a) => a.iter().for_each(|x| x.captures(out)),
            Expr::Not(x) | Expr::Neg(x) => x.captures(out),
            Expr::Bin(_, l, r) => {
                l.captures(out);
                r.captures(out);
            }
            _ => {}
        }
    }

    /// Whether it reads `[CERTIFICATE_EXPIRATION]`.
    pub fn needs_certificate(&self) -> bool {
        match self {
            Expr::Placeholder(p, _) => p == "[CERTIFICATE_EXPIRATION]",
            Expr::Call(_, a) => a.iter().any(Expr::needs_certificate),
            Expr::Not(x) | Expr::Neg(x) => x.needs_certificate(),
            Expr::Bin(_, l, r) => l.needs_certificate() || r.needs_certificate(),
            _ => false,
        }
    }

    /// Whether its value is seconds of time (shown as `9d23h`).
    pub fn is_duration(&self) -> bool {
        match self {
            Expr::Duration(_) => true,
            Expr::Placeholder(p, _) => p == "[CERTIFICATE_EXPIRATION]",
            Expr::Call(f, _) => f == "age",
            Expr::Bin("-" | "+", l, r) => l.is_duration() || r.is_duration(),
            _ => false,
        }
    }
}

/// What an evaluation reads.
pub struct Scope<'a> {
    /// The response.
    pub o: &'a Observation,
    /// The parsed body, when it is JSON.
    pub body: Option<&'a Value>,
    /// Captures.
    pub captures: &'a BTreeMap<String, String>,
}

fn truthy(v: &Option<Value>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|x| x != 0.0),
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(_)) => true,
    }
}

/// A number as JSON: whole numbers as integers (shown `2`, not `2.0`).
fn number(x: f64) -> Value {
    if x.fract() == 0.0 && x.abs() < 9e15 {
        Value::from(x as i64)
    } else {
        Value::from(x)
    }
}

fn num(v: &Option<Value>) -> Option<f64> {
    match v {
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        Some(Value::Bool(b)) => Some(f64::from(u8::from(*b))),
        _ => None,
    }
}

/// Unix seconds of an RFC 3339 time or a unix timestamp (ms when over
/// 10¹²).
pub fn unix_seconds(v: &Value) -> Option<f64> {
    if let Some(n) = v
        .as_f64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
    {
        return Some(if n.abs() > 1e12 { n / 1000.0 } else { n });
    }
    rfc3339(v.as_str()?)
}

fn rfc3339(s: &str) -> Option<f64> {
    let s = s.trim();
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    let (y, mo, d) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    if b.get(4) != Some(&b'-')
        || b.get(7) != Some(&b'-')
        || !matches!(b.get(10), Some(b'T' | b't' | b' '))
    {
        return None;
    }
    let (h, mi, sec) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut rest = &s[19..];
    let mut frac = 0.0;
    if let Some(r) = rest.strip_prefix('.') {
        let n = r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len());
        frac = format!("0.{}", &r[..n]).parse().ok()?;
        rest = &r[n..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        r if r.len() == 6 && (r.starts_with('+') || r.starts_with('-')) => {
            let oh: i64 = r[1..3].parse().ok()?;
            let om: i64 = r[4..6].parse().ok()?;
            let o = oh * 3600 + om * 60;
            if r.starts_with('-') { -o } else { o }
        }
        _ => return None,
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let (y, m) = if mo <= 2 {
        (y - 1, mo + 9)
    } else {
        (y, mo - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + h * 3600 + mi * 60 + sec - offset) as f64 + frac)
}

impl Expr {
    /// The value in `scope`, with `item` the current array element.
    pub fn eval(&self, s: &Scope, item: Option<&Value>) -> Result<Option<Value>, String> {
        Ok(match self {
            Expr::Lit(v) => Some(v.clone()),
            Expr::Duration(d) => Some(Value::from(*d)),
            Expr::Pattern(p) => Some(Value::String(p.clone())),
            Expr::Capture(n) => Some(Value::String(
                s.captures
                    .get(n)
                    .cloned()
                    .ok_or_else(|| format!("{{{{{n}}}}} was not captured"))?,
            )),
            Expr::Item(path) => match item {
                Some(v) => jsonpath::get(v, path).cloned(),
                None => return Err("a path starting with . belongs inside any(), all(), count(), max(), min() or sum()".into()),
            },
            Expr::Placeholder(p, path) => match p.as_str() {
                "[STATUS]" => s.o.status.map(Value::from),
                "[RESPONSE_TIME]" => Some(Value::from(s.o.response_time_ms.round())),
                "[CONNECTED]" => Some(Value::Bool(s.o.status.is_some())),
                "[CERTIFICATE_EXPIRATION]" => s.o.cert_expires_in_seconds.map(Value::from),
                "[HEADER]" => match path.first() {
                    Some(jsonpath::Step::Key(k)) => s
                        .o
                        .headers
                        .iter()
                        .find(|(n, _)| n.eq_ignore_ascii_case(k))
                        .map(|(_, v)| Value::String(v.clone())),
                    _ => None,
                },
                _ if path.is_empty() => Some(
                    s.body
                        .cloned()
                        .unwrap_or_else(|| Value::String(s.o.body.clone())),
                ),
                _ => s.body.and_then(|b| jsonpath::get(b, path).cloned()),
            },
            Expr::Not(x) => Some(Value::Bool(!truthy(&x.eval(s, item)?))),
            Expr::Neg(x) => num(&x.eval(s, item)?).map(|n| Value::from(-n)),
            Expr::Call(f, args) => self.call(f, args, s, item)?,
            Expr::Bin(op, l, r) => {
                let lv = l.eval(s, item)?;
                match *op {
                    "&&" => {
                        return Ok(Some(Value::Bool(truthy(&lv) && truthy(&r.eval(s, item)?))));
                    }
                    "||" => {
                        return Ok(Some(Value::Bool(truthy(&lv) || truthy(&r.eval(s, item)?))));
                    }
                    _ => {}
                }
                let rv = r.eval(s, item)?;
                match *op {
                    "+" | "-" | "*" | "/" => match (num(&lv), num(&rv)) {
                        (Some(a), Some(b)) => match *op {
                            "+" => Some(number(a + b)),
                            "-" => Some(number(a - b)),
                            "*" => Some(number(a * b)),
                            _ if b == 0.0 => None,
                            _ => Some(number(a / b)),
                        },
                        _ => None,
                    },
                    cmp => Some(Value::Bool(compare(cmp, &lv, &rv, matches!(**r, Expr::Pattern(_))))),
                }
            }
        })
    }

    fn call(
        &self,
        f: &str,
        args: &[Expr],
        s: &Scope,
        item: Option<&Value>,
    ) -> Result<Option<Value>, String> {
        let now = s.o.now_unix_seconds;
        let first = args.first().map(|a| a.eval(s, item)).transpose()?.flatten();
        let list = || -> Vec<Value> {
            match &first {
                Some(Value::Array(a)) => a.clone(),
                Some(Value::Object(m)) => m.values().cloned().collect(),
                _ => Vec::new(),
            }
        };
        let each = |v: &Value| -> Result<Option<Value>, String> {
            match args.get(1) {
                Some(e) => e.eval(s, Some(v)),
                None => Ok(Some(v.clone())),
            }
        };
        Ok(match f {
            "any" | "all" | "count" => {
                let mut n = 0usize;
                let items = list();
                for v in &items {
                    n += usize::from(truthy(&each(v)?));
                }
                match f {
                    "any" => Some(Value::Bool(n > 0)),
                    "all" => Some(Value::Bool(n == items.len() && first.is_some())),
                    _ => Some(Value::from(n as u64)),
                }
            }
            "max" | "min" | "sum" => {
                let mut xs = Vec::new();
                for v in &list() {
                    if let Some(x) = num(&each(v)?) {
                        xs.push(x);
                    }
                }
                match f {
                    "sum" => Some(number(xs.iter().sum::<f64>())),
                    "max" => xs.into_iter().reduce(f64::max).map(number),
                    _ => xs.into_iter().reduce(f64::min).map(number),
                }
            }
            "contains" => {
                let needle = args[1].eval(s, item)?;
                Some(Value::Bool(match (&first, &needle) {
                    (Some(Value::Array(a)), Some(n)) => a
                        .iter()
                        .any(|x| compare("==", &Some(x.clone()), &Some(n.clone()), false)),
                    (Some(Value::String(h)), Some(Value::String(n))) => h.contains(n.as_str()),
                    (Some(Value::Object(m)), Some(Value::String(n))) => m.contains_key(n),
                    _ => false,
                }))
            }
            "len" => first.map(|v| {
                Value::from(match &v {
                    Value::String(x) => x.chars().count(),
                    Value::Array(a) => a.len(),
                    Value::Object(m) => m.len(),
                    Value::Null => 0,
                    other => other.to_string().len(),
                } as u64)
            }),
            "has" => Some(Value::Bool(first.as_ref().is_some_and(|v| !v.is_null()))),
            "now" => Some(Value::from(now)),
            "time" => first.as_ref().and_then(unix_seconds).map(Value::from),
            "age" => first
                .as_ref()
                .and_then(unix_seconds)
                .map(|t| Value::from(now - t)),
            other => return Err(format!("unknown function {other}()")),
        })
    }
}

impl Expr {
    /// For `any`, `all` and `count` with a predicate (or `!` of one): how
    /// many elements match, of how many, and the first few that do.
    pub fn matching(&self, s: &Scope) -> Option<(usize, usize, Vec<Value>)> {
        match self {
            Expr::Not(x) => x.matching(s),
            Expr::Bin(_, l, _) => l.matching(s),
            Expr::Call(f, args)
                if matches!(f.as_str(), "any" | "all" | "count") && args.len() == 2 =>
            {
                let items = match args[0].eval(s, None).ok()?? {
                    Value::Array(a) => a,
                    Value::Object(m) => m.into_iter().map(|(_, v)| v).collect(),
                    _ => return Some((0, 0, Vec::new())),
                };
                let hits: Vec<Value> = items
                    .iter()
                    .filter(|v| truthy(&args[1].eval(s, Some(v)).unwrap_or(None)))
                    .cloned()
                    .collect();
                let n = hits.len();
                Some((n, items.len(), hits.into_iter().take(3).collect()))
            }
            _ => None,
        }
    }
}

fn compare(op: &str, l: &Option<Value>, r: &Option<Value>, pattern: bool) -> bool {
    let (Some(lv), Some(rv)) = (l, r) else {
        return match op {
            "==" => l.is_none() && r.is_none(),
            "!=" => l.is_some() != r.is_some(),
            _ => false,
        };
    };
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if pattern {
        let m = glob(&text(rv), &text(lv));
        return if op == "!=" { !m } else { op == "==" && m };
    }
    let ord = match (num(l), num(r)) {
        (Some(a), Some(b)) if !(lv.is_string() && rv.is_string()) => a.partial_cmp(&b),
        _ => match (lv, rv) {
            (Value::Bool(a), Value::String(b)) | (Value::String(b), Value::Bool(a)) => {
                return match op {
                    "==" => b.parse::<bool>().is_ok_and(|b| b == *a),
                    "!=" => b.parse::<bool>().is_ok_and(|b| b != *a),
                    _ => false,
                };
            }
            _ => Some(text(lv).cmp(&text(rv))),
        },
    };
    let Some(ord) = ord else {
        return op == "!=";
    };
    match op {
        "==" => ord.is_eq(),
        "!=" => ord.is_ne(),
        "<" => ord.is_lt(),
        "<=" => ord.is_le(),
        ">" => ord.is_gt(),
        _ => ord.is_ge(),
    }
}

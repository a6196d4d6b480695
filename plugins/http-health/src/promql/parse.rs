//! Parsing the PromQL subset: precedence as Prometheus' (`or` < `and`,
//! `unless` < comparisons < `+ -` < `* / %` < unary minus < `^`), and a
//! type check ([`Expr::kind`]) so a wrong argument is a config error.

use std::time::Duration;

use super::{AggOp, BinOp, Expr, Func, Kind, MatchOp, Matching, Selector};

/// A PromQL duration: `5m`, `1h30m`, `90s`, `250ms`, `1d`, `1w`, `1y`.
pub fn duration(s: &str) -> Result<Duration, String> {
    let mut total: u128 = 0;
    let mut rest = s;
    if rest.is_empty() {
        return Err("empty duration".into());
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!("{s:?} is not a duration like 5m or 1h30m"));
        }
        let n: u128 = rest[..digits]
            .parse()
            .map_err(|_| format!("{s:?}: number out of range"))?;
        rest = &rest[digits..];
        let (unit_ms, len) = if rest.starts_with("ms") {
            (1, 2)
        } else {
            match rest.chars().next() {
                Some('s') => (1000, 1),
                Some('m') => (60_000, 1),
                Some('h') => (3_600_000, 1),
                Some('d') => (86_400_000, 1),
                Some('w') => (7 * 86_400_000, 1),
                Some('y') => (365 * 86_400_000, 1),
                _ => return Err(format!("{s:?} is not a duration like 5m or 1h30m")),
            }
        };
        rest = &rest[len..];
        total = total.saturating_add(n.saturating_mul(unit_ms));
    }
    let ms = u64::try_from(total).map_err(|_| format!("{s:?}: out of range"))?;
    if ms == 0 {
        return Err(format!("{s:?}: must be positive"));
    }
    Ok(Duration::from_millis(ms))
}

crate::cursor::cursor_parser!(P);

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

impl<'a> P<'a> {
    fn expect(&mut self, tok: &str) -> Result<(), String> {
        if self.eat(tok) {
            Ok(())
        } else {
            Err(self.err(&format!("expected {tok}")))
        }
    }

    /// The identifier ahead, without consuming it.
    fn peek_ident(&mut self) -> &'a str {
        self.ws();
        let r = self.rest();
        if !r.starts_with(is_ident_start) {
            return "";
        }
        let end = r.find(|c: char| !is_ident(c)).unwrap_or(r.len());
        &r[..end]
    }

    fn ident(&mut self) -> &'a str {
        let id = self.peek_ident();
        self.i += id.len();
        id
    }

    fn keyword(&mut self, kw: &str) -> bool {
        if self.peek_ident() == kw {
            self.i += kw.len();
            true
        } else {
            false
        }
    }

    fn binary(&mut self, level: usize) -> Result<Expr, String> {
        const LEVELS: &[&[(&str, BinOp)]] = &[
            &[("or", BinOp::Or)],
            &[("and", BinOp::And), ("unless", BinOp::Unless)],
            &[
                ("==", BinOp::Eq),
                ("!=", BinOp::Ne),
                (">=", BinOp::Ge),
                ("<=", BinOp::Le),
                (">", BinOp::Gt),
                ("<", BinOp::Lt),
            ],
            &[("+", BinOp::Add), ("-", BinOp::Sub)],
            &[("*", BinOp::Mul), ("/", BinOp::Div), ("%", BinOp::Mod)],
        ];
        if level == LEVELS.len() {
            return self.unary();
        }
        let mut lhs = self.binary(level + 1)?;
        loop {
            self.ws();
            let found = LEVELS[level].iter().find(|(tok, _)| {
                let r = self.rest();
                if tok.starts_with(is_ident_start) {
                    r.starts_with(tok) && !r[tok.len()..].starts_with(is_ident)
                } else {
                    r.starts_with(tok)
                }
            });
            let Some((tok, op)) = found else {
                return Ok(lhs);
            };
            self.i += tok.len();
            let (bool_mode, matching) = self.modifiers(*op)?;
            let rhs = self.binary(level + 1)?;
            lhs = Expr::Bin {
                op: *op,
                lhs: Box::new(lhs),
                rhs: Box::new(rhs),
                bool_mode,
                matching,
            };
        }
    }

    fn modifiers(&mut self, op: BinOp) -> Result<(bool, Option<Matching>), String> {
        let bool_mode = op.is_comparison() && self.keyword("bool");
        let matching = if self.keyword("on") {
            Some(Matching::On(self.label_list()?))
        } else if self.keyword("ignoring") {
            Some(Matching::Ignoring(self.label_list()?))
        } else {
            None
        };
        if matching.is_some() && (self.keyword("group_left") || self.keyword("group_right")) {
            return Err(self.err("group_left/group_right (many-to-one matching) are not supported"));
        }
        Ok((bool_mode, matching))
    }

    fn label_list(&mut self) -> Result<Vec<String>, String> {
        self.expect("(")?;
        let mut out = Vec::new();
        loop {
            if self.eat(")") {
                return Ok(out);
            }
            let l = self.ident();
            if l.is_empty() {
                return Err(self.err("expected a label name"));
            }
            out.push(l.to_string());
            if !self.eat(",") {
                self.expect(")")?;
                return Ok(out);
            }
        }
    }

    fn unary(&mut self) -> Result<Expr, String> {
        if self.eat("-") {
            return Ok(match self.unary()? {
                Expr::Num(n) => Expr::Num(-n),
                e => Expr::Neg(Box::new(e)),
            });
        }
        if self.eat("+") {
            return self.unary();
        }
        self.power()
    }

    fn power(&mut self) -> Result<Expr, String> {
        let base = self.postfix()?;
        if self.eat("^") {
            let (_, matching) = self.modifiers(BinOp::Pow)?;
            let exp = self.unary()?;
            return Ok(Expr::Bin {
                op: BinOp::Pow,
                lhs: Box::new(base),
                rhs: Box::new(exp),
                bool_mode: false,
                matching,
            });
        }
        Ok(base)
    }

    fn postfix(&mut self) -> Result<Expr, String> {
        let mut e = self.primary()?;
        if self.eat("[") {
            let Expr::Instant(sel, off) = e else {
                return Err(self.err("a range [..] follows a selector only"));
            };
            if !off.is_zero() {
                return Err(self.err("write the range before offset"));
            }
            let end = self
                .rest()
                .find(']')
                .ok_or_else(|| self.err("unclosed ["))?;
            let d = self.rest()[..end].trim();
            let range = duration(d).map_err(|x| self.err(&x))?;
            self.i += end + 1;
            e = Expr::Range(sel, range, Duration::ZERO);
        }
        if self.keyword("offset") {
            self.ws();
            let r = self.rest();
            let end = r
                .find(|c: char| !c.is_ascii_alphanumeric())
                .unwrap_or(r.len());
            let off = duration(&r[..end]).map_err(|x| self.err(&x))?;
            self.i += end;
            e = match e {
                Expr::Instant(s, _) => Expr::Instant(s, off),
                Expr::Range(s, r, _) => Expr::Range(s, r, off),
                _ => return Err(self.err("offset follows a selector only")),
            };
        }
        Ok(e)
    }

    fn number(&mut self) -> Option<f64> {
        self.ws();
        let r = self.rest();
        let end = r
            .char_indices()
            .find(|(i, c)| {
                !(c.is_ascii_digit()
                    || *c == '.'
                    || ((*c == 'e' || *c == 'E') && *i > 0)
                    || ((*c == '+' || *c == '-')
                        && *i > 0
                        && matches!(r.as_bytes()[i - 1], b'e' | b'E')))
            })
            .map(|(i, _)| i)
            .unwrap_or(r.len());
        if end == 0 || !r.starts_with(|c: char| c.is_ascii_digit() || c == '.') {
            return None;
        }
        let n = r[..end].parse().ok()?;
        self.i += end;
        Some(n)
    }

    fn primary(&mut self) -> Result<Expr, String> {
        self.ws();
        if self.eat("(") {
            let e = self.binary(0)?;
            self.expect(")")?;
            return Ok(e);
        }
        if let Some(n) = self.number() {
            return Ok(Expr::Num(n));
        }
        let name = self.ident();
        if name.is_empty() {
            return Err(self.err("expected a number, a metric, a function or ("));
        }
        match name {
            "Inf" | "inf" => return Ok(Expr::Num(f64::INFINITY)),
            "NaN" | "nan" => return Ok(Expr::Num(f64::NAN)),
            _ => {}
        }
        let agg = match name {
            "sum" => Some(AggOp::Sum),
            "avg" => Some(AggOp::Avg),
            "min" => Some(AggOp::Min),
            "max" => Some(AggOp::Max),
            "count" => Some(AggOp::Count),
            _ => None,
        };
        self.ws();
        if let Some(op) = agg
            && (self.rest().starts_with('(') || matches!(self.peek_ident(), "by" | "without"))
        {
            let mut grouping = self.grouping()?;
            self.expect("(")?;
            let inner = self.binary(0)?;
            self.expect(")")?;
            if grouping.is_none() {
                grouping = self.grouping()?;
            }
            let (without, labels) = grouping.unwrap_or((false, Vec::new()));
            return Ok(Expr::Agg(op, without, labels, Box::new(inner)));
        }
        let func = match name {
            "rate" => Some(Func::Rate),
            "increase" => Some(Func::Increase),
            "irate" => Some(Func::Irate),
            "delta" => Some(Func::Delta),
            "avg_over_time" => Some(Func::AvgOverTime),
            "min_over_time" => Some(Func::MinOverTime),
            "max_over_time" => Some(Func::MaxOverTime),
            "sum_over_time" => Some(Func::SumOverTime),
            "count_over_time" => Some(Func::CountOverTime),
            "last_over_time" => Some(Func::LastOverTime),
            "quantile_over_time" => Some(Func::QuantileOverTime),
            "histogram_quantile" => Some(Func::HistogramQuantile),
            "abs" => Some(Func::Abs),
            "time" => Some(Func::Time),
            _ => None,
        };
        if self.rest().starts_with('(') {
            let Some(func) = func else {
                return Err(self.err(&format!(
                    "unknown function {name}() (known: rate, increase, irate, delta, \
                     avg/min/max/sum/count/last/quantile_over_time, histogram_quantile, abs, time; \
                     aggregations sum, avg, min, max, count)"
                )));
            };
            self.expect("(")?;
            let mut args = Vec::new();
            if !self.eat(")") {
                loop {
                    args.push(self.binary(0)?);
                    if !self.eat(",") {
                        self.expect(")")?;
                        break;
                    }
                }
            }
            return Ok(Expr::Call(func, args));
        }
        let mut matchers = Vec::new();
        if self.eat("{") {
            loop {
                if self.eat("}") {
                    break;
                }
                let label = self.ident();
                if label.is_empty() {
                    return Err(self.err("expected a label name"));
                }
                self.ws();
                let op = ["=~", "!~", "!=", "="]
                    .into_iter()
                    .find(|o| self.rest().starts_with(o))
                    .ok_or_else(|| self.err("expected =, !=, =~ or !~"))?;
                self.i += op.len();
                let value = self.string()?;
                let m = match op {
                    "=" => MatchOp::Eq(value),
                    "!=" => MatchOp::Ne(value),
                    re => {
                        let r = regex::Regex::new(&format!("^(?:{value})$")).map_err(|e| {
                            let why = e.to_string();
                            let why = why.lines().last().unwrap_or_default().to_string();
                            self.err(&format!("bad regex {value:?} ({why})"))
                        })?;
                        if re == "=~" {
                            MatchOp::Re(r)
                        } else {
                            MatchOp::Nre(r)
                        }
                    }
                };
                matchers.push((label.to_string(), m));
                if !self.eat(",") {
                    self.expect("}")?;
                    break;
                }
            }
        }
        Ok(Expr::Instant(
            Selector {
                name: name.to_string(),
                matchers,
            },
            Duration::ZERO,
        ))
    }

    fn grouping(&mut self) -> Result<Option<(bool, Vec<String>)>, String> {
        if self.keyword("by") {
            Ok(Some((false, self.label_list()?)))
        } else if self.keyword("without") {
            Ok(Some((true, self.label_list()?)))
        } else {
            Ok(None)
        }
    }

    fn string(&mut self) -> Result<String, String> {
        self.ws();
        let quote = match self.rest().chars().next() {
            Some(q @ ('"' | '\'' | '`')) => q,
            _ => return Err(self.err("expected a quoted label value")),
        };
        self.i += 1;
        let mut out = String::new();
        let mut chars = self.rest().char_indices();
        while let Some((i, c)) = chars.next() {
            if c == quote {
                self.i += i + 1;
                return Ok(out);
            }
            if c == '\\' && quote != '`' {
                match chars.next() {
                    Some((_, 'n')) => out.push('\n'),
                    Some((_, 't')) => out.push('\t'),
                    Some((_, other)) => out.push(other),
                    None => break,
                }
            } else {
                out.push(c);
            }
        }
        Err(self.err("unterminated string"))
    }
}

/// Parses a whole expression.
pub(super) fn parse(text: &str) -> Result<Expr, String> {
    let mut p = P(crate::cursor::Cursor::new(text));
    let e = p.binary(0)?;
    if !p.done() {
        return Err(p.err("unexpected text"));
    }
    e.kind()?;
    Ok(e)
}

impl Expr {
    /// The type of the expression's value, or why it has none.
    pub fn kind(&self) -> Result<Kind, String> {
        Ok(match self {
            Expr::Num(_) => Kind::Scalar,
            Expr::Instant(..) => Kind::Vector,
            Expr::Range(..) => Kind::Range,
            Expr::Neg(e) => match e.kind()? {
                Kind::Range => return Err("cannot negate a range; use a function on it".into()),
                k => k,
            },
            Expr::Agg(op, _, _, e) => {
                if e.kind()? != Kind::Vector {
                    return Err(format!("{op:?}() needs series").to_lowercase());
                }
                Kind::Vector
            }
            Expr::Call(f, args) => {
                let kinds = args.iter().map(Expr::kind).collect::<Result<Vec<_>, _>>()?;
                let want: &[Kind] = match f {
                    Func::Time => &[],
                    Func::Abs => &[Kind::Vector],
                    Func::HistogramQuantile => &[Kind::Scalar, Kind::Vector],
                    Func::QuantileOverTime => &[Kind::Scalar, Kind::Range],
                    _ => &[Kind::Range],
                };
                let name = func_name(*f);
                // histogram_quantile(0.95, m_bucket[5m]) is shorthand for
                // histogram_quantile(0.95, rate(m_bucket[5m])).
                let shorthand =
                    *f == Func::HistogramQuantile && kinds == [Kind::Scalar, Kind::Range];
                if kinds != want && !shorthand {
                    let what = match want {
                        [] => "no arguments".to_string(),
                        [Kind::Range] => "a range selector such as m[5m]".to_string(),
                        [Kind::Vector] => "series".to_string(),
                        [Kind::Scalar, Kind::Range] => "a number and a range selector".to_string(),
                        _ => "a number and series (the _bucket series)".to_string(),
                    };
                    return Err(format!("{name}() takes {what}"));
                }
                if *f == Func::Time {
                    Kind::Scalar
                } else {
                    Kind::Vector
                }
            }
            Expr::Bin {
                op,
                lhs,
                rhs,
                bool_mode,
                ..
            } => {
                let (l, r) = (lhs.kind()?, rhs.kind()?);
                if l == Kind::Range || r == Kind::Range {
                    return Err("a range selector needs a function such as rate() around it".into());
                }
                if op.is_set() && (l != Kind::Vector || r != Kind::Vector) {
                    return Err("and/or/unless work between series only".into());
                }
                if op.is_comparison() && l == Kind::Scalar && r == Kind::Scalar && !bool_mode {
                    return Err("comparing two numbers needs bool".into());
                }
                if l == Kind::Scalar && r == Kind::Scalar {
                    Kind::Scalar
                } else {
                    Kind::Vector
                }
            }
        })
    }
}

/// A function's name as written.
pub fn func_name(f: Func) -> &'static str {
    match f {
        Func::Rate => "rate",
        Func::Increase => "increase",
        Func::Irate => "irate",
        Func::Delta => "delta",
        Func::AvgOverTime => "avg_over_time",
        Func::MinOverTime => "min_over_time",
        Func::MaxOverTime => "max_over_time",
        Func::SumOverTime => "sum_over_time",
        Func::CountOverTime => "count_over_time",
        Func::LastOverTime => "last_over_time",
        Func::QuantileOverTime => "quantile_over_time",
        Func::HistogramQuantile => "histogram_quantile",
        Func::Abs => "abs",
        Func::Time => "time",
    }
}

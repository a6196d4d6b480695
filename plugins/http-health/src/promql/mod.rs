//! The PromQL subset of metric rules: what a runbook's rule needs, with
//! Prometheus' meaning wherever PromQL has the function.
//!
//! - selectors with label matchers (`=`, `!=`, `=~`, `!~`), range
//!   selectors (`m[5m]`) and `offset`;
//! - `rate`, `increase`, `irate`, `delta` (counter resets and extrapolation
//!   as Prometheus 2.x computes them), `avg_over_time`, `min_over_time`,
//!   `max_over_time`, `sum_over_time`, `count_over_time`,
//!   `last_over_time`, `quantile_over_time`, `histogram_quantile` over classic `le` buckets,
//!   `abs`, `time()`;
//! - `sum`, `avg`, `min`, `max`, `count` with `by (...)` / `without (...)`;
//! - arithmetic (`+ - * / % ^`), comparisons (with `bool`), `and`, `or`,
//!   `unless`, one-to-one matching with `on (...)` / `ignoring (...)`.
//!
//! A [`Rule`] is an expression and an optional `for 5m` suffix; it holds
//! for every series its expression returns, as an alerting rule does.
//! [`Expr::eval`] reads samples through [`Samples`], so the same code runs
//! over the check's stored scrapes and over test data.

mod eval;
mod parse;

use std::collections::BTreeMap;
use std::time::Duration;

pub use eval::{Elem, Samples, Value};

/// Labels of a series; the metric name is `__name__`.
pub type Labels = BTreeMap<String, String>;

/// Samples of one series: (unix ms, value), oldest first.
pub type Points = Vec<(i64, f64)>;

/// Series and their samples, as [`Samples::select`] returns them.
pub type Selected = Vec<(Labels, Points)>;

/// How long an instant selector with an offset looks back for a sample
/// (Prometheus' default lookback delta).
pub const LOOKBACK_MS: i64 = 5 * 60 * 1000;

/// A label matcher's operator.
#[derive(Debug, Clone)]
pub enum MatchOp {
    /// `=`
    Eq(String),
    /// `!=`
    Ne(String),
    /// `=~` (fully anchored, as in Prometheus)
    Re(regex::Regex),
    /// `!~`
    Nre(regex::Regex),
}

impl MatchOp {
    /// Whether a label's value (empty when absent) matches.
    pub fn matches(&self, v: &str) -> bool {
        match self {
            MatchOp::Eq(x) => v == x,
            MatchOp::Ne(x) => v != x,
            MatchOp::Re(r) => r.is_match(v),
            MatchOp::Nre(r) => !r.is_match(v),
        }
    }
}

/// A metric name and label matchers.
#[derive(Debug, Clone)]
pub struct Selector {
    /// Metric name.
    pub name: String,
    /// Label matchers.
    pub matchers: Vec<(String, MatchOp)>,
}

impl Selector {
    /// Whether a series (name and labels) is selected.
    pub fn selects(&self, name: &str, labels: &Labels) -> bool {
        name == self.name
            && self
                .matchers
                .iter()
                .all(|(k, m)| m.matches(labels.get(k).map(String::as_str).unwrap_or("")))
    }
}

/// Binary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `%`
    Mod,
    /// `^`
    Pow,
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `>`
    Gt,
    /// `<`
    Lt,
    /// `>=`
    Ge,
    /// `<=`
    Le,
    /// `and`
    And,
    /// `or`
    Or,
    /// `unless`
    Unless,
}

impl BinOp {
    /// A comparison (filters unless `bool`).
    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            BinOp::Eq | BinOp::Ne | BinOp::Gt | BinOp::Lt | BinOp::Ge | BinOp::Le
        )
    }

    /// `and`, `or`, `unless`.
    pub fn is_set(self) -> bool {
        matches!(self, BinOp::And | BinOp::Or | BinOp::Unless)
    }
}

/// Aggregation operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggOp {
    /// `sum`
    Sum,
    /// `avg`
    Avg,
    /// `min`
    Min,
    /// `max`
    Max,
    /// `count`
    Count,
}

/// Functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Func {
    /// `rate(range)`
    Rate,
    /// `increase(range)`
    Increase,
    /// `irate(range)`
    Irate,
    /// `delta(range)`
    Delta,
    /// `avg_over_time(range)`
    AvgOverTime,
    /// `min_over_time(range)`
    MinOverTime,
    /// `max_over_time(range)`
    MaxOverTime,
    /// `sum_over_time(range)`
    SumOverTime,
    /// `count_over_time(range)`
    CountOverTime,
    /// `last_over_time(range)`
    LastOverTime,
    /// `quantile_over_time(scalar, range)`
    QuantileOverTime,
    /// `histogram_quantile(scalar, vector)`
    HistogramQuantile,
    /// `abs(vector)`
    Abs,
    /// `time()`
    Time,
}

/// Which labels match two vectors' elements (`on`/`ignoring`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Matching {
    /// Only these labels.
    On(Vec<String>),
    /// All labels but these (and the name).
    Ignoring(Vec<String>),
}

/// An expression.
#[derive(Debug, Clone)]
pub enum Expr {
    /// A number.
    Num(f64),
    /// An instant selector, with its offset.
    Instant(Selector, Duration),
    /// A range selector: selector, range, offset.
    Range(Selector, Duration, Duration),
    /// A function call.
    Call(Func, Vec<Expr>),
    /// An aggregation: operator, grouping (`without` when true), labels.
    Agg(AggOp, bool, Vec<String>, Box<Expr>),
    /// A binary operation with `bool` and matching.
    Bin {
        /// The operator.
        op: BinOp,
        /// Left side.
        lhs: Box<Expr>,
        /// Right side.
        rhs: Box<Expr>,
        /// `bool` after a comparison.
        bool_mode: bool,
        /// `on (...)` or `ignoring (...)`.
        matching: Option<Matching>,
    },
    /// Unary minus.
    Neg(Box<Expr>),
}

/// The type of an expression's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A number.
    Scalar,
    /// Series with one value each.
    Vector,
    /// Series with samples over a range.
    Range,
}

impl Expr {
    /// Parses an expression; errors name the column.
    pub fn parse(text: &str) -> Result<Expr, String> {
        parse::parse(text)
    }

    /// Every selector, with how far back it reads (range + offset, or the
    /// lookback for an instant selector with an offset).
    pub fn selectors(&self) -> Vec<(&Selector, Duration)> {
        let mut out = Vec::new();
        self.walk(&mut |e| match e {
            Expr::Instant(s, off) if off.is_zero() => out.push((s, Duration::ZERO)),
            Expr::Instant(s, off) => {
                out.push((s, *off + Duration::from_millis(LOOKBACK_MS as u64)))
            }
            Expr::Range(s, r, off) => out.push((s, *r + *off)),
            _ => {}
        });
        out
    }

    fn walk<'a>(&'a self, f: &mut dyn FnMut(&'a Expr)) {
        f(self);
        match self {
            Expr::Call(_, args) => args.iter().for_each(|a| a.walk(f)),
            Expr::Agg(_, _, _, e) | Expr::Neg(e) => e.walk(f),
            Expr::Bin { lhs, rhs, .. } => {
                lhs.walk(f);
                rhs.walk(f);
            }
            _ => {}
        }
    }
}

/// A rule: an expression that returns the series it holds for, held for
/// `hold` before it fires.
#[derive(Debug, Clone)]
pub struct Rule {
    /// The expression.
    pub expr: Expr,
    /// `for`: how long it must hold.
    pub hold: Option<Duration>,
    /// As written.
    pub text: String,
}

impl Rule {
    /// Parses `expr` or `expr for 5m`; the rule must return series (a
    /// comparison without `bool`, as an alerting rule's expression).
    pub fn parse(text: &str) -> Result<Rule, String> {
        let t = text.trim();
        let (body, hold) = match t.rsplit_once(" for ") {
            Some((body, d)) if parse::duration(d.trim()).is_ok() => {
                (body, Some(parse::duration(d.trim())?))
            }
            _ => (t, None),
        };
        let expr = Expr::parse(body).map_err(|e| format!("rule {t:?}: {e}"))?;
        match expr.kind() {
            Ok(Kind::Vector) => {}
            Ok(Kind::Scalar) => {
                return Err(format!(
                    "rule {t:?}: compares numbers only; a rule needs a series (a value name or a metric)"
                ));
            }
            Ok(Kind::Range) => {
                return Err(format!(
                    "rule {t:?}: a range selector needs a function such as rate() around it"
                ));
            }
            Err(e) => return Err(format!("rule {t:?}: {e}")),
        }
        Ok(Rule {
            expr,
            hold,
            text: t.to_string(),
        })
    }

    /// The side the rule compares (left of its top comparison), to show
    /// its value whether or not it holds.
    pub fn shown(&self) -> &Expr {
        match &self.expr {
            Expr::Bin {
                op, lhs, bool_mode, ..
            } if op.is_comparison() && !bool_mode => lhs,
            e => e,
        }
    }
}

/// The `{a="b",...}` text of labels (without the name), in order.
pub fn label_text(labels: &Labels) -> String {
    let inner: Vec<String> = labels
        .iter()
        .filter(|(k, _)| *k != "__name__")
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect();
    if inner.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", inner.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Db(Vec<(Labels, Vec<(i64, f64)>)>);

    impl Samples for Db {
        fn select(&self, sel: &Selector, start: i64, end: i64) -> Selected {
            self.0
                .iter()
                .filter(|(l, _)| sel.selects(&l["__name__"], l))
                .map(|(l, s)| {
                    let s = s
                        .iter()
                        .copied()
                        .filter(|(t, _)| *t >= start && *t <= end)
                        .collect::<Vec<_>>();
                    (l.clone(), s)
                })
                .filter(|(_, s)| !s.is_empty())
                .collect()
        }
    }

    fn series(
        name: &str,
        labels: &[(&str, &str)],
        f: impl Fn(i64) -> f64,
    ) -> (Labels, Vec<(i64, f64)>) {
        let mut l: Labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        l.insert("__name__".into(), name.into());
        (l, (0..=40).map(|i| (i * 15_000, f(i))).collect())
    }

    fn db() -> Db {
        Db(vec![
            series("req_total", &[("code", "200"), ("route", "/a")], |i| {
                100.0 * i as f64
            }),
            series("req_total", &[("code", "500"), ("route", "/a")], |i| {
                5.0 * i as f64
            }),
            series("req_total", &[("code", "500"), ("route", "/b")], |i| {
                i as f64
            }),
            series("temp", &[], |i| if i > 35 { 90.0 } else { 10.0 }),
        ])
    }

    fn scalar_of(text: &str) -> Vec<(String, f64)> {
        let e = Expr::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        match e.eval(600_000, &db()).unwrap() {
            Value::Scalar(x) => vec![(String::new(), x)],
            Value::Vector(v) => v
                .into_iter()
                .map(|e| (label_text(&e.labels), e.value))
                .collect(),
        }
    }

    #[test]
    fn expressions_evaluate() {
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
        let v = scalar_of(r#"sum(rate(req_total{code="500"}[5m]))"#);
        assert!(close(v[0].1, 6.0 / 15.0), "{v:?}");
        let v = scalar_of(
            r#"sum by (route) (rate(req_total{code=~"5.."}[5m])) / sum by (route) (rate(req_total[5m]))"#,
        );
        assert_eq!(v.len(), 2, "{v:?}");
        assert!(close(v[0].1, 5.0 / 105.0), "{v:?}");
        assert!(close(v[1].1, 1.0), "{v:?}");
        let v = scalar_of(r#"increase(req_total{route="/b"}[1m])"#);
        assert!(close(v[0].1, 4.0), "{v:?}");
        assert_eq!(
            scalar_of("temp > 3 * avg_over_time(temp[5m] offset 2m) + 10").len(),
            1
        );
        assert_eq!(
            scalar_of("temp > 3 * avg_over_time(temp[5m]) + 10").len(),
            0
        );
        assert_eq!(scalar_of("max_over_time(temp[10m])")[0].1, 90.0);
        assert_eq!(scalar_of("temp offset 2m")[0].1, 10.0);
        assert_eq!(scalar_of("count(req_total)")[0].1, 3.0);
        assert_eq!(scalar_of("2 * 3 + 1")[0].1, 7.0);
        assert_eq!(scalar_of("-2 ^ 2")[0].1, -4.0);
        assert_eq!(scalar_of("temp > bool 50")[0].1, 1.0);
        assert_eq!(
            scalar_of(r#"req_total{code="500"} and on(route) req_total{code="200"}"#).len(),
            1
        );
        let e = Expr::parse("req_total / on(code) req_total")
            .unwrap()
            .eval(600_000, &db());
        assert!(e.unwrap_err().contains("many-to-many"));
    }

    #[test]
    fn rules_take_for_and_need_series() {
        let r = Rule::parse("rate(e[5m]) / rate(t[5m]) > 0.01 for 5m").unwrap();
        assert_eq!(r.hold, Some(Duration::from_secs(300)));
        assert!(matches!(r.shown(), Expr::Bin { op: BinOp::Div, .. }));
        for (bad, why) in [
            ("1 > 0", "needs bool"),
            ("1 > bool 0", "compares numbers only"),
            ("m[5m]", "range selector"),
            ("rate(m) > 1", "rate() takes a range"),
            ("foo(m) > 1", "unknown function foo()"),
            ("m{a=b} > 1", "quoted"),
            ("m{a=~\"(\"} > 1", "bad regex"),
            ("m[5x] > 1", "not a duration"),
            ("m > 1 )", "unexpected text"),
            ("a / on(x) group_left b > 1", "group_left"),
        ] {
            let e = Rule::parse(bad).unwrap_err();
            assert!(
                e.contains(why) && e.contains(&format!("{bad:?}")),
                "{bad}: {e}"
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn any_text_parses_or_errs(s in "\\PC{0,60}") {
            let _ = Rule::parse(&s);
        }

        #[test]
        fn promql_like_text_parses_or_errs(s in "[a-z_(){}\\[\\]0-9=~!\",<>+*/^ -]{0,40}") {
            if let Ok(r) = Rule::parse(&s) {
                let _ = r.expr.eval(600_000, &db());
            }
        }
    }
}

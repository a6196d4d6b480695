//! Evaluating an [`Expr`] at one instant over [`Samples`], with
//! Prometheus 2.x's arithmetic: closed range windows `[t-range, t]`,
//! extrapolated `rate`/`increase` with counter resets, classic-bucket
//! `histogram_quantile`, one-to-one vector matching.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{AggOp, BinOp, Expr, Func, LOOKBACK_MS, Labels, Matching, Selected, Selector};

/// A function of one series' samples in a window.
type OverTime<'a> = &'a dyn Fn(&[(i64, f64)]) -> Option<f64>;

/// Where samples come from: every series `sel` selects, with its samples
/// whose time (ms) is within `[start, end]`, oldest first.
pub trait Samples {
    /// The selected series and their samples in the window.
    fn select(&self, sel: &Selector, start: i64, end: i64) -> Selected;
}

/// One series' value.
#[derive(Debug, Clone, PartialEq)]
pub struct Elem {
    /// Its labels (with `__name__` while it is a selector's).
    pub labels: Labels,
    /// Its value.
    pub value: f64,
}

/// An evaluated expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A number.
    Scalar(f64),
    /// Series with one value each.
    Vector(Vec<Elem>),
}

fn ms(d: Duration) -> i64 {
    d.as_millis() as i64
}

fn without_name(mut l: Labels) -> Labels {
    l.remove("__name__");
    l
}

impl Expr {
    /// The value at `t` (unix ms).
    pub fn eval(&self, t: i64, db: &dyn Samples) -> Result<Value, String> {
        Ok(match self {
            Expr::Num(n) => Value::Scalar(*n),
            Expr::Instant(sel, off) => {
                let at = t - ms(*off);
                // Without an offset only the current scrape counts (a series
                // gone from it is stale, as Prometheus marks it); with one,
                // the latest sample within the lookback.
                let start = if off.is_zero() { at } else { at - LOOKBACK_MS };
                Value::Vector(
                    db.select(sel, start, at)
                        .into_iter()
                        .filter_map(|(labels, s)| s.last().map(|(_, v)| Elem { labels, value: *v }))
                        .collect(),
                )
            }
            Expr::Range(..) => return Err("a range selector needs a function".into()),
            Expr::Neg(e) => match e.eval(t, db)? {
                Value::Scalar(n) => Value::Scalar(-n),
                Value::Vector(v) => Value::Vector(
                    v.into_iter()
                        .map(|e| Elem {
                            labels: without_name(e.labels),
                            value: -e.value,
                        })
                        .collect(),
                ),
            },
            Expr::Call(f, args) => call(*f, args, t, db)?,
            Expr::Agg(op, without, labels, e) => {
                let Value::Vector(v) = e.eval(t, db)? else {
                    return Err("aggregation needs series".into());
                };
                Value::Vector(aggregate(*op, *without, labels, v))
            }
            Expr::Bin {
                op,
                lhs,
                rhs,
                bool_mode,
                matching,
            } => {
                let l = lhs.eval(t, db)?;
                let r = rhs.eval(t, db)?;
                binary(*op, l, r, *bool_mode, matching.as_ref())?
            }
        })
    }
}

fn range_of(args: &[Expr], t: i64, db: &dyn Samples) -> Result<(Selected, i64, i64), String> {
    match args.iter().find(|a| matches!(a, Expr::Range(..))) {
        Some(Expr::Range(sel, range, off)) => {
            let end = t - ms(*off);
            let start = end - ms(*range);
            Ok((db.select(sel, start, end), start, end))
        }
        _ => Err("expected a range selector".into()),
    }
}

fn call(f: Func, args: &[Expr], t: i64, db: &dyn Samples) -> Result<Value, String> {
    let over = |g: OverTime| -> Result<Value, String> {
        let (series, _, _) = range_of(args, t, db)?;
        Ok(Value::Vector(
            series
                .into_iter()
                .filter_map(|(l, s)| {
                    g(&s).map(|value| Elem {
                        labels: without_name(l),
                        value,
                    })
                })
                .collect(),
        ))
    };
    let extrapolated = |counter: bool, per_second: bool| -> Result<Value, String> {
        let (series, start, end) = range_of(args, t, db)?;
        Ok(Value::Vector(
            series
                .into_iter()
                .filter_map(|(l, s)| {
                    extrapolated_rate(&s, start, end, counter, per_second).map(|value| Elem {
                        labels: without_name(l),
                        value,
                    })
                })
                .collect(),
        ))
    };
    match f {
        Func::Rate => extrapolated(true, true),
        Func::Increase => extrapolated(true, false),
        Func::Delta => extrapolated(false, false),
        Func::Irate => over(&|s| {
            let [.., (t0, v0), (t1, v1)] = s else {
                return None;
            };
            let dv = if v1 < v0 { *v1 } else { v1 - v0 };
            let dt = (t1 - t0) as f64 / 1000.0;
            (dt > 0.0).then(|| dv / dt)
        }),
        Func::AvgOverTime => {
            over(&|s| (!s.is_empty()).then(|| s.iter().map(|x| x.1).sum::<f64>() / s.len() as f64))
        }
        Func::MinOverTime => over(&|s| {
            s.iter()
                .map(|x| x.1)
                .reduce(|a, b| if b < a || a.is_nan() { b } else { a })
        }),
        Func::MaxOverTime => over(&|s| {
            s.iter()
                .map(|x| x.1)
                .reduce(|a, b| if b > a || a.is_nan() { b } else { a })
        }),
        Func::SumOverTime => over(&|s| (!s.is_empty()).then(|| s.iter().map(|x| x.1).sum())),
        Func::CountOverTime => over(&|s| (!s.is_empty()).then_some(s.len() as f64)),
        Func::LastOverTime => over(&|s| s.last().map(|x| x.1)),
        Func::QuantileOverTime => {
            let q = match args.first().map(|a| a.eval(t, db)).transpose()? {
                Some(Value::Scalar(q)) => q,
                _ => return Err("quantile_over_time() takes a number first".into()),
            };
            over(&|s| (!s.is_empty()).then(|| quantile(q, s.iter().map(|x| x.1).collect())))
        }
        Func::Time => Ok(Value::Scalar(t as f64 / 1000.0)),
        Func::Abs => match args.first().map(|a| a.eval(t, db)).transpose()? {
            Some(Value::Vector(v)) => Ok(Value::Vector(
                v.into_iter()
                    .map(|e| Elem {
                        labels: without_name(e.labels),
                        value: e.value.abs(),
                    })
                    .collect(),
            )),
            _ => Err("abs() takes series".into()),
        },
        Func::HistogramQuantile => {
            let q = match args.first().map(|a| a.eval(t, db)).transpose()? {
                Some(Value::Scalar(q)) => q,
                _ => return Err("histogram_quantile() takes a number first".into()),
            };
            let buckets = match args.get(1) {
                Some(Expr::Range(..)) => call(Func::Rate, &args[1..], t, db)?,
                Some(e) => e.eval(t, db)?,
                None => return Err("histogram_quantile() takes the _bucket series".into()),
            };
            let Value::Vector(v) = buckets else {
                return Err("histogram_quantile() takes series".into());
            };
            let mut groups: BTreeMap<Labels, Vec<(f64, f64)>> = BTreeMap::new();
            for e in v {
                let mut l = without_name(e.labels);
                let Some(le) = l.remove("le").and_then(|le| parse_le(&le)) else {
                    continue;
                };
                groups.entry(l).or_default().push((le, e.value));
            }
            Ok(Value::Vector(
                groups
                    .into_iter()
                    .map(|(labels, b)| Elem {
                        labels,
                        value: bucket_quantile(q, b),
                    })
                    .collect(),
            ))
        }
    }
}

/// Prometheus' `quantile`: linear interpolation between the closest ranks.
fn quantile(q: f64, mut v: Vec<f64>) -> f64 {
    if q.is_nan() || v.is_empty() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    v.sort_by(f64::total_cmp);
    let rank = q * (v.len() - 1) as f64;
    let lower = rank.floor() as usize;
    let upper = (lower + 1).min(v.len() - 1);
    let weight = rank - rank.floor();
    v[lower] * (1.0 - weight) + v[upper] * weight
}

fn parse_le(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" | "inf" | "+inf" => Some(f64::INFINITY),
        s => s.parse().ok(),
    }
}

/// Prometheus 2.x `extrapolatedRate`: the increase between the first and
/// last sample (counter resets added back), extrapolated to the window's
/// edges when the samples come near them, never below zero for counters.
fn extrapolated_rate(
    s: &[(i64, f64)],
    start: i64,
    end: i64,
    counter: bool,
    per_second: bool,
) -> Option<f64> {
    if s.len() < 2 {
        return None;
    }
    let (first, last) = (s[0], s[s.len() - 1]);
    let mut result = last.1 - first.1;
    if counter {
        let mut prev = first.1;
        for &(_, v) in &s[1..] {
            if v < prev {
                result += prev;
            }
            prev = v;
        }
    }
    let mut to_start = (first.0 - start) as f64 / 1000.0;
    let to_end = (end - last.0) as f64 / 1000.0;
    let sampled = (last.0 - first.0) as f64 / 1000.0;
    let average = sampled / (s.len() - 1) as f64;
    if counter && result > 0.0 && first.1 >= 0.0 {
        let to_zero = sampled * (first.1 / result);
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    let threshold = average * 1.1;
    let mut interval = sampled;
    interval += if to_start < threshold {
        to_start
    } else {
        average / 2.0
    };
    interval += if to_end < threshold {
        to_end
    } else {
        average / 2.0
    };
    result *= interval / sampled;
    if per_second {
        result /= (end - start) as f64 / 1000.0;
    }
    Some(result)
}

/// Prometheus' `bucketQuantile` over (upper bound, cumulative count).
fn bucket_quantile(q: f64, mut b: Vec<(f64, f64)>) -> f64 {
    if q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    b.sort_by(|x, y| x.0.total_cmp(&y.0));
    if !b.last().is_some_and(|x| x.0 == f64::INFINITY) {
        return f64::NAN;
    }
    // Coalesce equal bounds, then make the counts monotonic.
    let mut c: Vec<(f64, f64)> = Vec::with_capacity(b.len());
    for (le, n) in b {
        match c.last_mut() {
            Some(last) if last.0 == le => last.1 += n,
            _ => c.push((le, n)),
        }
    }
    let mut max = f64::NEG_INFINITY;
    for x in &mut c {
        if x.1 > max {
            max = x.1;
        } else {
            x.1 = max;
        }
    }
    if c.len() < 2 {
        return f64::NAN;
    }
    let observations = c[c.len() - 1].1;
    if observations == 0.0 {
        return f64::NAN;
    }
    let mut rank = q * observations;
    let i = c[..c.len() - 1]
        .iter()
        .position(|x| x.1 >= rank)
        .unwrap_or(c.len() - 1);
    if i == c.len() - 1 {
        return c[c.len() - 2].0;
    }
    if i == 0 && c[0].0 <= 0.0 {
        return c[0].0;
    }
    let end = c[i].0;
    let mut count = c[i].1;
    let mut start = 0.0;
    if i > 0 {
        start = c[i - 1].0;
        count -= c[i - 1].1;
        rank -= c[i - 1].1;
    }
    start + (end - start) * (rank / count)
}

fn aggregate(op: AggOp, without: bool, labels: &[String], v: Vec<Elem>) -> Vec<Elem> {
    let mut groups: BTreeMap<Labels, Vec<f64>> = BTreeMap::new();
    for e in v {
        let key: Labels = if without {
            without_name(e.labels)
                .into_iter()
                .filter(|(k, _)| !labels.contains(k))
                .collect()
        } else {
            e.labels
                .into_iter()
                .filter(|(k, _)| labels.contains(k))
                .collect()
        };
        groups.entry(key).or_default().push(e.value);
    }
    groups
        .into_iter()
        .map(|(labels, xs)| {
            let n = xs.len() as f64;
            let value = match op {
                AggOp::Sum => xs.iter().sum(),
                AggOp::Avg => xs.iter().sum::<f64>() / n,
                AggOp::Count => n,
                AggOp::Min => xs
                    .iter()
                    .copied()
                    .fold(f64::NAN, |a, b| if b < a || a.is_nan() { b } else { a }),
                AggOp::Max => xs
                    .iter()
                    .copied()
                    .fold(f64::NAN, |a, b| if b > a || a.is_nan() { b } else { a }),
            };
            Elem { labels, value }
        })
        .collect()
}

fn arith(op: BinOp, l: f64, r: f64) -> Option<f64> {
    Some(match op {
        BinOp::Add => l + r,
        BinOp::Sub => l - r,
        BinOp::Mul => l * r,
        BinOp::Div => l / r,
        BinOp::Mod => l % r,
        BinOp::Pow => l.powf(r),
        BinOp::Eq => return (l == r).then_some(l),
        BinOp::Ne => return (l != r).then_some(l),
        BinOp::Gt => return (l > r).then_some(l),
        BinOp::Lt => return (l < r).then_some(l),
        BinOp::Ge => return (l >= r).then_some(l),
        BinOp::Le => return (l <= r).then_some(l),
        BinOp::And | BinOp::Or | BinOp::Unless => return None,
    })
}

/// One side's value combined with the other's under `op`: arithmetic
/// gives the result; a comparison keeps the left value when it holds, or
/// gives 1/0 with `bool`.
fn combine(op: BinOp, l: f64, r: f64, bool_mode: bool) -> Option<f64> {
    if op.is_comparison() {
        let holds = arith(op, l, r).is_some();
        if bool_mode {
            Some(if holds { 1.0 } else { 0.0 })
        } else {
            holds.then_some(l)
        }
    } else {
        arith(op, l, r)
    }
}

fn signature(l: &Labels, m: Option<&Matching>) -> Labels {
    match m {
        Some(Matching::On(on)) => l
            .iter()
            .filter(|(k, _)| on.contains(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        Some(Matching::Ignoring(ig)) => l
            .iter()
            .filter(|(k, _)| *k != "__name__" && !ig.contains(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        None => l
            .iter()
            .filter(|(k, _)| *k != "__name__")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    }
}

fn binary(
    op: BinOp,
    l: Value,
    r: Value,
    bool_mode: bool,
    m: Option<&Matching>,
) -> Result<Value, String> {
    let keep_name = op.is_comparison() && !bool_mode;
    let label = |labels: Labels| {
        if keep_name {
            labels
        } else {
            without_name(labels)
        }
    };
    Ok(match (l, r) {
        (Value::Scalar(a), Value::Scalar(b)) => match combine(op, a, b, true) {
            Some(x) => Value::Scalar(x),
            None => return Err("comparing two numbers needs bool".into()),
        },
        (Value::Vector(v), Value::Scalar(b)) => Value::Vector(
            v.into_iter()
                .filter_map(|e| {
                    combine(op, e.value, b, bool_mode).map(|value| Elem {
                        labels: label(e.labels),
                        value,
                    })
                })
                .collect(),
        ),
        (Value::Scalar(a), Value::Vector(v)) => Value::Vector(
            v.into_iter()
                .filter_map(|e| {
                    // A comparison keeps the vector's value, as Prometheus.
                    let value = if op.is_comparison() && !bool_mode {
                        combine(op, a, e.value, false).map(|_| e.value)
                    } else {
                        combine(op, a, e.value, bool_mode)
                    };
                    value.map(|value| Elem {
                        labels: label(e.labels),
                        value,
                    })
                })
                .collect(),
        ),
        (Value::Vector(lv), Value::Vector(rv)) if op.is_set() => {
            let sigs: Vec<Labels> = rv.iter().map(|e| signature(&e.labels, m)).collect();
            match op {
                BinOp::And => Value::Vector(
                    lv.into_iter()
                        .filter(|e| sigs.contains(&signature(&e.labels, m)))
                        .collect(),
                ),
                BinOp::Unless => Value::Vector(
                    lv.into_iter()
                        .filter(|e| !sigs.contains(&signature(&e.labels, m)))
                        .collect(),
                ),
                _ => {
                    let left: Vec<Labels> = lv.iter().map(|e| signature(&e.labels, m)).collect();
                    let mut out = lv;
                    out.extend(
                        rv.into_iter()
                            .filter(|e| !left.contains(&signature(&e.labels, m))),
                    );
                    Value::Vector(out)
                }
            }
        }
        (Value::Vector(lv), Value::Vector(rv)) => {
            let mut right: BTreeMap<Labels, f64> = BTreeMap::new();
            for e in &rv {
                let sig = signature(&e.labels, m);
                if right.insert(sig.clone(), e.value).is_some() {
                    return Err(format!(
                        "many-to-many matching: several right-hand series have the labels {}; \
                         aggregate them (sum by (...)) or match on(...)",
                        super::label_text(&sig)
                    ));
                }
            }
            let mut seen = BTreeMap::new();
            let mut out = Vec::new();
            for e in lv {
                let sig = signature(&e.labels, m);
                let Some(&b) = right.get(&sig) else {
                    continue;
                };
                if seen.insert(sig.clone(), ()).is_some() {
                    return Err(format!(
                        "many-to-many matching: several left-hand series have the labels {}",
                        super::label_text(&sig)
                    ));
                }
                if let Some(value) = combine(op, e.value, b, bool_mode) {
                    let labels = match m {
                        Some(Matching::On(_)) => sig,
                        _ => {
                            let mut l = label(e.labels);
                            if let Some(Matching::Ignoring(ig)) = m {
                                l.retain(|k, _| !ig.contains(k));
                            }
                            l
                        }
                    };
                    out.push(Elem { labels, value });
                }
            }
            Value::Vector(out)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_as_prometheus() {
        let b = vec![
            (0.1, 10.0),
            (0.5, 50.0),
            (1.0, 90.0),
            (f64::INFINITY, 100.0),
        ];
        assert_eq!(bucket_quantile(0.5, b.clone()), 0.5);
        assert!((bucket_quantile(0.95, b.clone()) - 1.0).abs() < 1e-12);
        assert!((bucket_quantile(0.2, b.clone()) - 0.2).abs() < 1e-12);
        assert!(bucket_quantile(0.5, vec![(1.0, 1.0)]).is_nan());
        assert!(bucket_quantile(0.5, vec![(1.0, 0.0), (f64::INFINITY, 0.0)]).is_nan());
    }

    #[test]
    fn rates_extrapolate_and_handle_resets() {
        // 5 samples 15 s apart, +10 each, window 60 s ending on the last.
        let s: Vec<(i64, f64)> = (0..5)
            .map(|i| (i * 15_000, 100.0 + 10.0 * i as f64))
            .collect();
        let inc = extrapolated_rate(&s, 0, 60_000, true, false).unwrap();
        assert!((inc - 40.0).abs() < 1e-9, "{inc}");
        // A reset: 100, 110, 5, 15 -> 10 + 5 + 10 = 25 over 45 s of 60.
        let r = vec![
            (15_000, 100.0),
            (30_000, 110.0),
            (45_000, 5.0),
            (60_000, 15.0),
        ];
        let inc = extrapolated_rate(&r, 0, 60_000, true, false).unwrap();
        assert!((inc - 25.0 * 60.0 / 45.0).abs() < 1e-9, "{inc}");
        assert_eq!(extrapolated_rate(&r[..1], 0, 60_000, true, true), None);
    }
}

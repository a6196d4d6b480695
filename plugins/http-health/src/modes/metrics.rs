//! Metrics mode (`metrics`): a JSON or Prometheus endpoint scraped each
//! run, rules over it in the PromQL subset of [`crate::promql`]
//! (`rate(publish_errors[5m]) / rate(publish_total[5m]) > 0.01 for 5m`),
//! the samples the rules reach kept in the check's state
//! ([`crate::history`]), and `for` meaning "held that long", per series,
//! as in a Prometheus alerting rule.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, UNIX_EPOCH};

use serde_json::Value;
use warden_plugin_sdk::prelude::*;
use warden_plugin_sdk::units::format_duration_human;

use super::{denial, parse_timeout, plural, redact_error, send};
use crate::history::History;
use crate::promql::{self, AggOp, Expr, Labels, Rule};
use crate::{Config, Level, RequestSpec, jsonpath, prometheus};

/// The series a scrape read, and the named values among them.
type Scrape = (Vec<(Labels, f64)>, BTreeMap<String, f64>);

/// The most series of one rule shown as metrics.
const SHOWN_SERIES: usize = 20;

/// The `metrics` mode.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MetricsSpec {
    /// The endpoint.
    pub url: String,
    /// `json` or `prometheus` (default: from the content type).
    #[serde(default)]
    pub format: Option<String>,
    /// Headers to send.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Named numbers, each a series of that name in the rules: a JSON path
    /// (`[BODY].errors`) or a Prometheus selector (`http_requests_total{code="500"}`,
    /// summed over matching series). With a Prometheus endpoint, rules may
    /// also read its metrics directly.
    #[serde(default)]
    pub values: BTreeMap<String, String>,
    /// Rules.
    pub rules: Vec<RuleSpec>,
    /// Removed: `avg(name)` over a window became `avg_over_time(name[1h])`.
    #[serde(default)]
    #[schemars(skip)]
    pub average_window: Option<String>,
    /// Timeout.
    #[serde(default)]
    pub timeout: Option<String>,
}

/// A rule of the `metrics` mode.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// Name shown in the report.
    pub name: String,
    /// `rate(errors[5m]) / rate(total[5m]) > 0.01`, optionally ending in
    /// `for 5m`.
    pub expr: String,
    /// Fire only once it has held this long (`5m`); default at once. The
    /// same as ending `expr` in `for 5m`.
    #[serde(default, rename = "for")]
    pub hold: Option<String>,
    /// `critical` (default) or `warning`.
    #[serde(default)]
    pub level: Level,
}

/// Whether the endpoint is read as JSON: said so, or every value is a
/// `[BODY]` path.
fn is_json(m: &MetricsSpec) -> bool {
    match m.format.as_deref() {
        Some(f) => f == "json",
        None => !m.values.is_empty() && m.values.values().all(|v| v.starts_with("[BODY]")),
    }
}

/// A rule parsed, with its hold.
fn parse_rule(i: usize, r: &RuleSpec) -> Result<(Rule, Duration), String> {
    let field = format!("config.metrics.rules[{i}]");
    let rule = Rule::parse(&r.expr).map_err(|e| format!("{field}: {e}"))?;
    let hold = match (&r.hold, rule.hold) {
        (Some(_), Some(_)) => {
            return Err(format!(
                "{field}: `for` is both in expr and a field; keep one"
            ));
        }
        (Some(h), None) => parse_timeout(h).map_err(|e| format!("{field}.for: {e}"))?,
        (None, h) => h.unwrap_or(Duration::ZERO),
    };
    Ok((rule, hold))
}

/// Metrics mode's part of `validate`.
pub(super) fn validate(m: &MetricsSpec) -> Result<(), String> {
    if let Some(f) = &m.format
        && f != "json"
        && f != "prometheus"
    {
        return Err(format!(
            "config.metrics.format: {f:?} is not json or prometheus"
        ));
    }
    if m.average_window.is_some() {
        return Err(
            "config.metrics.average_window: removed; average over a window in the \
                    rule instead, as avg_over_time(name[1h] offset 10m)"
                .into(),
        );
    }
    for (name, source) in &m.values {
        if let Some(path) = source.strip_prefix("[BODY]") {
            jsonpath::parse(path).map_err(|e| format!("config.metrics.values.{name}: {e}"))?;
        } else {
            prometheus::Selector::parse(source)
                .map_err(|e| format!("config.metrics.values.{name}: {e}"))?;
        }
    }
    if m.rules.is_empty() {
        return Err("config.metrics.rules: needs at least one rule".into());
    }
    let json = is_json(m);
    let mut names = BTreeSet::new();
    for (i, r) in m.rules.iter().enumerate() {
        if !names.insert(&r.name) {
            return Err(format!(
                "config.metrics.rules[{i}]: a second rule named {:?}",
                r.name
            ));
        }
        let (rule, _) = parse_rule(i, r)?;
        for (sel, _) in rule.expr.selectors() {
            if json && !m.values.contains_key(&sel.name) {
                return Err(format!(
                    "config.metrics.rules[{i}]: {:?} is not one of the values",
                    sel.name
                ));
            }
        }
        let mut old_avg = None;
        walk(&rule.expr, &mut |e| {
            if let Expr::Agg(AggOp::Avg, _, _, inner) = e
                && let Expr::Instant(sel, off) = &**inner
                && off.is_zero()
                && m.values.contains_key(&sel.name)
            {
                old_avg = Some(sel.name.clone());
            }
        });
        if let Some(n) = old_avg {
            return Err(format!(
                "config.metrics.rules[{i}]: avg({n}) is an average across series (of one \
                 value: the value itself); for the average over time write \
                 avg_over_time({n}[1h] offset 10m), the offset keeping a spike out of its own \
                 baseline"
            ));
        }
    }
    Ok(())
}

fn walk(e: &Expr, f: &mut dyn FnMut(&Expr)) {
    f(e);
    match e {
        Expr::Call(_, args) => args.iter().for_each(|a| walk(a, f)),
        Expr::Agg(_, _, _, x) | Expr::Neg(x) => walk(x, f),
        Expr::Bin { lhs, rhs, .. } => {
            walk(lhs, f);
            walk(rhs, f);
        }
        _ => {}
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct MetricsState {
    /// The scrapes the rules reach.
    #[serde(default)]
    history: History,
    /// Rule name and series labels -> since when (ms) it has held.
    #[serde(default)]
    holding: BTreeMap<String, u64>,
}

/// A number for a report: integers plainly, others to four decimals or
/// in scientific notation when tiny.
fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else if v.abs() >= 0.001 || v == 0.0 || !v.is_finite() {
        let s = format!("{v:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        format!("{v:.3e}")
    }
}

/// Reads the response into the series the rules select: named values as
/// series of their name; with a Prometheus endpoint, every sample of a
/// metric the rules name.
fn scrape(
    m: &MetricsSpec,
    rules: &[(Rule, Duration)],
    body: &str,
    json: bool,
) -> Result<Scrape, Error> {
    let doc: Option<Value> = if json {
        serde_json::from_str(body).ok()
    } else {
        None
    };
    let mut values = BTreeMap::new();
    for (name, source) in &m.values {
        let v = if let Some(path) = source.strip_prefix("[BODY]") {
            let doc = doc
                .as_ref()
                .ok_or_else(|| Error::msg(format!("{} did not return JSON", m.url)))?;
            let steps = jsonpath::parse(path).map_err(Error::msg)?;
            jsonpath::get(doc, &steps).and_then(|v| {
                v.as_f64()
                    .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            })
        } else {
            prometheus::Selector::parse(source)
                .map_err(Error::msg)?
                .value(body)
        };
        let v =
            v.ok_or_else(|| Error::msg(format!("value {name} ({source}) not found at {}", m.url)))?;
        values.insert(name.clone(), v);
    }
    let mut series: Vec<(Labels, f64)> = values
        .iter()
        .map(|(n, v)| ([("__name__".to_string(), n.clone())].into(), *v))
        .collect();
    let selectors: Vec<&promql::Selector> = rules
        .iter()
        .flat_map(|(r, _)| r.expr.selectors())
        .map(|(s, _)| s)
        .filter(|s| !values.contains_key(&s.name))
        .collect();
    let metrics: BTreeSet<&str> = selectors.iter().map(|s| s.name.as_str()).collect();
    if !metrics.is_empty() {
        if json {
            let list: Vec<&str> = metrics.into_iter().collect();
            return Err(Error::msg(format!(
                "{} returned JSON, which has no metric {}; name it in values",
                m.url,
                list.join(", ")
            )));
        }
        // Only the series some selector selects are kept.
        for (name, labels, v) in prometheus::samples(body) {
            if metrics.contains(name) {
                let mut l: Labels = labels.into_iter().collect();
                l.insert("__name__".into(), name.to_string());
                if selectors.iter().any(|s| s.selects(name, &l)) {
                    series.push((l, v));
                }
            }
        }
    }
    Ok((series, values))
}

pub(super) fn run(ctx: &mut Context<Config>, m: &MetricsSpec) -> Result<Report, Error> {
    let rules = m
        .rules
        .iter()
        .enumerate()
        .map(|(i, r)| parse_rule(i, r))
        .collect::<Result<Vec<_>, _>>()
        .map_err(Error::msg)?;
    let spec = RequestSpec {
        url: m.url.clone(),
        headers: m.headers.clone(),
        timeout: m.timeout.clone(),
        ..RequestSpec::default()
    };
    let ex = send(ctx, &spec, &BTreeMap::new(), &[])?;
    let resp = match ex.result {
        Ok(r) if r.is_success() => r,
        Ok(r) => return Err(Error::msg(format!("{} answered {}", m.url, r.status))),
        Err(e) => {
            if let Some(err) = denial(&e) {
                return Err(err);
            }
            return Err(Error::msg(redact_error(&e, &m.url)));
        }
    };
    let body = resp.text();
    let json = match m.format.as_deref() {
        Some(f) => f == "json",
        None => resp
            .header("content-type")
            .is_some_and(|c| c.contains("json")),
    };
    let (series, values) = scrape(m, &rules, &body, json)?;

    let now = ctx
        .scheduled
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let keep = rules
        .iter()
        .flat_map(|(r, _)| r.expr.selectors())
        .map(|(_, reach)| reach.as_millis() as i64)
        .max()
        .unwrap_or(0);
    let mut state: MetricsState = ctx.state().get("metrics")?.unwrap_or_default();
    state
        .history
        .record(now, keep, series)
        .map_err(Error::msg)?;

    let mut report = Report::ok("")
        .metric(Metric::new(
            "probe_http_status_code",
            f64::from(resp.status),
        ))
        .metric(Metric::new("probe_duration_seconds", resp.elapsed.as_secs_f64()).unit("seconds"));
    for (name, v) in &values {
        report = report.metric(Metric::new("http_health_value", *v).label("name", name.clone()));
    }
    let mut firing = Vec::new();
    let mut pending = Vec::new();
    let mut holding = BTreeMap::new();
    for (spec, (rule, hold)) in m.rules.iter().zip(&rules) {
        let failed = |e: String| Error::msg(format!("rule {}: {e}", spec.name));
        let shown = match rule.shown().eval(now, &state.history).map_err(failed)? {
            promql::Value::Vector(v) => v,
            promql::Value::Scalar(x) => vec![promql::Elem {
                labels: Labels::new(),
                value: x,
            }],
        };
        for e in shown.iter().take(SHOWN_SERIES) {
            let mut metric =
                Metric::new("http_health_rule_value", e.value).label("rule", spec.name.clone());
            for (k, v) in e
                .labels
                .iter()
                .filter(|(k, _)| *k != "__name__" && *k != "rule")
            {
                metric = metric.label(k.clone(), v.clone());
            }
            report = report.metric(metric);
        }
        let promql::Value::Vector(held) = rule.expr.eval(now, &state.history).map_err(failed)?
        else {
            return Err(failed("does not return series".into()));
        };
        let mut fired = Vec::new();
        let mut longest = Duration::ZERO;
        for e in &held {
            let key = format!("{}{}", spec.name, promql::label_text(&e.labels));
            let since = state.holding.get(&key).copied().unwrap_or(now as u64);
            holding.insert(key, since);
            let held_for = Duration::from_millis((now as u64).saturating_sub(since));
            longest = longest.max(held_for);
            if held_for >= *hold {
                fired.push(e);
            }
        }
        let fires = !fired.is_empty();
        report = report.metric(
            Metric::new("http_health_rule_firing", if fires { 1.0 } else { 0.0 })
                .label("rule", spec.name.clone()),
        );
        if fires {
            report.status = report.status.worst(spec.level.status());
            let shown: Vec<String> = fired
                .iter()
                .take(5)
                .map(|e| {
                    let labels = promql::label_text(&e.labels);
                    let value = shown
                        .iter()
                        .find(|s| promql::label_text(&s.labels) == labels)
                        .map(|s| s.value)
                        .unwrap_or(e.value);
                    format!("{}{labels}", number(value))
                })
                .collect();
            let more = if fired.len() > 5 {
                format!(" and {} more", fired.len() - 5)
            } else {
                String::new()
            };
            firing.push(format!(
                "{}: {} (value {}{more})",
                spec.name,
                rule.text,
                shown.join(", ")
            ));
        } else if !held.is_empty() {
            pending.push(format!(
                "{} (holding for {} of {})",
                spec.name,
                format_duration_human(longest.as_secs_f64()),
                format_duration_human(hold.as_secs_f64())
            ));
        }
    }
    state.holding = holding;
    ctx.state().set("metrics", &state)?;
    report = report.metric(Metric::new(
        "probe_success",
        if firing.is_empty() { 1.0 } else { 0.0 },
    ));
    report.summary = if !firing.is_empty() {
        format!(
            "{} firing: {}",
            plural(firing.len(), "rule"),
            firing.join("; ")
        )
    } else if !pending.is_empty() {
        format!("all rules quiet; pending: {}", pending.join("; "))
    } else {
        let n = state.history.series.len();
        format!("{} quiet over {n} series", plural(m.rules.len(), "rule"),)
    };
    Ok(report)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::SystemTime;

    use warden_plugin_sdk::testing::{MemoryState, MockHttp, TestContext};

    use super::super::run;
    use super::super::test_support::config;
    use super::*;

    #[test]
    fn metric_rules_hold_over_a_window() {
        let c = config(serde_json::json!({"metrics": {
            "url": "http://app/metrics", "format": "prometheus",
            "values": {"errors": "publish_total{result=\"error\"}", "total": "publish_total"},
            "rules": [{"name": "publish-errors", "expr": "errors / total > 0.01", "for": "5m"}]
        }}));
        let state = Arc::new(MemoryState::new());
        let t0 = SystemTime::now();
        let at = |secs: u64, errors: u64| {
            let body = format!(
                "publish_total{{result=\"ok\"}} 1000\npublish_total{{result=\"error\"}} {errors}\n"
            );
            let http = MockHttp::new().route("GET", "http://app/metrics", move |_| {
                MockHttp::reply(200, body.clone())
            });
            let mut ctx = TestContext::new(c.clone())
                .http(http)
                .state(state.clone())
                .at(t0 + Duration::from_secs(secs))
                .build();
            run(&mut ctx).unwrap()
        };
        assert_eq!(at(0, 50).status, Status::Ok, "starts holding");
        let r = at(120, 50);
        assert_eq!(r.status, Status::Ok);
        assert!(r.summary.contains("pending"), "{}", r.summary);
        assert_eq!(at(300, 50).status, Status::Critical, "held 5m: firing");
        assert_eq!(at(360, 1).status, Status::Ok, "below the threshold: quiet");
        assert_eq!(at(420, 50).status, Status::Ok, "the window starts again");
    }

    #[test]
    fn spikes_against_the_recent_average() {
        let c = config(serde_json::json!({"metrics": {
            "url": "http://app/stats", "format": "json",
            "values": {"auth_failures": "[BODY].auth.failures"},
            "rules": [{"name": "auth-spike", "expr": "auth_failures > 3 * avg_over_time(auth_failures[1h] offset 10m) + 10", "level": "warning"}]
        }}));
        let state = Arc::new(MemoryState::new());
        let t0 = SystemTime::now();
        let at = |secs: u64, n: u64| {
            let body = format!(r#"{{"auth":{{"failures":{n}}}}}"#);
            let http = MockHttp::new().route("GET", "http://app/stats", move |_| {
                MockHttp::reply(200, body.clone())
            });
            let mut ctx = TestContext::new(c.clone())
                .http(http)
                .state(state.clone())
                .at(t0 + Duration::from_secs(secs))
                .build();
            run(&mut ctx).unwrap().status
        };
        for i in 0..20 {
            assert_eq!(at(i * 60, 10), Status::Ok);
        }
        // The spike stays firing while it lasts: the baseline ends 10m
        // before now, so it excludes the spike's first ten minutes.
        for i in 20..28 {
            assert_eq!(at(i * 60, 45), Status::Warning, "minute {i}");
        }
        assert_eq!(at(28 * 60, 10), Status::Ok, "over: quiet");
    }
}

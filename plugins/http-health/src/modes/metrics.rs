//! Metrics mode (`metrics`): numbers read from a JSON or Prometheus
//! endpoint, rules over them ([`crate::expr`]) held for a window
//! (`for = "5m"`) using the check's state.

use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

use serde_json::Value;
use warden_plugin_sdk::prelude::*;

use super::{denial, level_status, parse_timeout, plural, redact_error, send};
use crate::{Config, Level, RequestSpec, expr, jsonpath, prometheus};

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
    /// Named numbers: a JSON path (`[BODY].errors`) or a Prometheus selector
    /// (`http_requests_total{code="500"}`, summed over matching series).
    pub values: BTreeMap<String, String>,
    /// Rules over the values.
    pub rules: Vec<RuleSpec>,
    /// Window over which `avg(name)` is computed (default 1h).
    #[serde(default)]
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
    /// `errors / total > 0.01`.
    pub expr: String,
    /// Fire only once it has held this long (`5m`); default at once.
    #[serde(default, rename = "for")]
    pub hold: Option<String>,
    /// `critical` (default) or `warning`.
    #[serde(default)]
    pub level: Level,
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
    for (name, source) in &m.values {
        if let Some(path) = source.strip_prefix("[BODY]") {
            jsonpath::parse(path).map_err(|e| format!("config.metrics.values.{name}: {e}"))?;
        } else {
            prometheus::Selector::parse(source)
                .map_err(|e| format!("config.metrics.values.{name}: {e}"))?;
        }
    }
    for (i, r) in m.rules.iter().enumerate() {
        let rule =
            expr::Rule::parse(&r.expr).map_err(|e| format!("config.metrics.rules[{i}]: {e}"))?;
        for n in rule.names() {
            if !m.values.contains_key(&n) {
                return Err(format!(
                    "config.metrics.rules[{i}]: {n:?} is not one of the values"
                ));
            }
        }
        if let Some(h) = &r.hold {
            parse_timeout(h).map_err(|e| format!("config.metrics.rules[{i}].for: {e}"))?;
        }
    }
    Ok(())
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct MetricsState {
    /// (time ms, values) of earlier runs, within the average window.
    history: Vec<(u64, BTreeMap<String, f64>)>,
    /// Rule name -> since when (ms) it has held.
    holding: BTreeMap<String, u64>,
}

pub(super) fn run(ctx: &mut Context<Config>, m: &MetricsSpec) -> Result<Report, Error> {
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
    let doc: Option<Value> = if json {
        serde_json::from_str(&body).ok()
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
                .value(&body)
        };
        let v =
            v.ok_or_else(|| Error::msg(format!("value {name} ({source}) not found at {}", m.url)))?;
        values.insert(name.clone(), v);
    }

    let now = ctx
        .scheduled
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let window = m
        .average_window
        .as_deref()
        .map(parse_timeout)
        .transpose()
        .map_err(Error::msg)?
        .unwrap_or(Duration::from_secs(3600));
    let mut state: MetricsState = ctx.state().get("metrics")?.unwrap_or_default();
    state
        .history
        .retain(|(t, _)| now.saturating_sub(*t) <= window.as_millis() as u64 && *t < now);
    let mut averages = BTreeMap::new();
    for name in values.keys() {
        let past: Vec<f64> = state
            .history
            .iter()
            .filter_map(|(_, v)| v.get(name).copied())
            .collect();
        if !past.is_empty() {
            averages.insert(name.clone(), past.iter().sum::<f64>() / past.len() as f64);
        }
    }

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
    for rule in &m.rules {
        let parsed = expr::Rule::parse(&rule.expr).map_err(Error::msg)?;
        let hold = rule
            .hold
            .as_deref()
            .map(parse_timeout)
            .transpose()
            .map_err(Error::msg)?
            .unwrap_or(Duration::ZERO);
        let result = parsed.eval(&values, &averages);
        let holds = result.is_some_and(|(h, _)| h);
        if let Some((_, lhs)) = result {
            report = report.metric(
                Metric::new("http_health_rule_value", lhs).label("rule", rule.name.clone()),
            );
        }
        let fires = if holds {
            let since = *state.holding.entry(rule.name.clone()).or_insert(now);
            let held = Duration::from_millis(now.saturating_sub(since));
            if held >= hold {
                true
            } else {
                pending.push(format!(
                    "{} (holding for {}s of {}s)",
                    rule.name,
                    held.as_secs(),
                    hold.as_secs()
                ));
                false
            }
        } else {
            state.holding.remove(&rule.name);
            false
        };
        report = report.metric(
            Metric::new("http_health_rule_firing", if fires { 1.0 } else { 0.0 })
                .label("rule", rule.name.clone()),
        );
        if fires {
            report.status = report.status.worst(level_status(rule.level));
            let shown = result.map(|(_, l)| format!("{l:.4}")).unwrap_or_default();
            firing.push(format!("{}: {} (left side {shown})", rule.name, rule.expr));
        }
    }
    state.history.push((now, values.clone()));
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
        format!(
            "{} quiet over {}",
            plural(m.rules.len(), "rule"),
            plural(values.len(), "value")
        )
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
            "rules": [{"name": "auth-spike", "expr": "auth_failures > 3 * avg(auth_failures)", "level": "warning"}]
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
        for i in 0..5 {
            assert_eq!(at(i * 60, 10), Status::Ok);
        }
        assert_eq!(at(300, 45), Status::Warning);
    }
}

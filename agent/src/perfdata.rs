//! A run as a Nagios plugin prints it (`warden check --format nagios`):
//! `STATUS: summary | 'label'=value[UOM];warn;crit;min;max ...`, the
//! perfdata of the Nagios plugin guidelines. Each metric is one label
//! (`name` or `name{k=v,...}`, without `instance`), single-quoted when it holds anything but
//! `[A-Za-z0-9_.-]` (a `'` doubled); units map to the guidelines' UOMs
//! (`seconds` → `s`, `bytes` → `B`, `percent` → `%`, a `_total` counter →
//! `c`; others none). Warden's metrics carry no thresholds, so `warn`,
//! `crit`, `min` and `max` are left out. The summary is escaped and any
//! `|` in it becomes `/`, so it cannot start perfdata of its own.

use warden_runtime::RunOutcome;
use warden_text::escape::escape;

/// One label, quoted when it must be. The `instance` label (the probe's
/// target) is left out: a Nagios service is already one target.
fn label(name: &str, labels: &[(String, String)]) -> String {
    let mut l = name.to_string();
    let inner: Vec<String> = labels
        .iter()
        .filter(|(k, _)| k != "instance")
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if !inner.is_empty() {
        l = format!("{l}{{{}}}", inner.join(","));
    }
    let l = escape(&l).replace(['\n', '\r'], " ");
    if l.chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
    {
        l
    } else {
        format!("'{}'", l.replace('\'', "''"))
    }
}

fn uom(name: &str, unit: &str) -> &'static str {
    match unit {
        "seconds" | "s" => "s",
        "bytes" | "B" => "B",
        "percent" | "%" => "%",
        _ if name.ends_with("_total") => "c",
        _ => "",
    }
}

/// `outcome` as one line of Nagios plugin output.
pub fn nagios(outcome: &RunOutcome) -> String {
    let summary = escape(&outcome.summary).replace('|', "/");
    let mut out = format!("{}: {summary}", outcome.status.label());
    let perf: Vec<String> = outcome
        .metrics
        .iter()
        .filter(|m| m.value.is_finite())
        .map(|m| {
            format!(
                "{}={}{}",
                label(&m.name, &m.labels),
                m.value,
                uom(&m.name, &m.unit)
            )
        })
        .collect();
    if !perf.is_empty() {
        out.push_str(" | ");
        out.push_str(&perf.join(" "));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;
    use warden_runtime::{Metric, Status};

    #[test]
    fn perfdata_follows_the_plugin_guidelines() {
        let mut o = RunOutcome::unknown("api", "http-health", "x".into(), SystemTime::now(), 1);
        o.status = Status::Warning;
        o.summary = "slow | very".into();
        o.metrics = vec![
            Metric {
                name: "probe_duration_seconds".into(),
                value: 0.25,
                unit: "seconds".into(),
                labels: vec![],
            },
            Metric {
                name: "http_requests_total".into(),
                value: 3.0,
                unit: String::new(),
                labels: vec![("code".into(), "200".into())],
            },
            Metric {
                name: "it's".into(),
                value: f64::NAN,
                unit: String::new(),
                labels: vec![],
            },
        ];
        assert_eq!(
            nagios(&o),
            "WARNING: slow / very | probe_duration_seconds=0.25s 'http_requests_total{code=200}'=3c"
        );
        assert_eq!(label("it's", &[]), "'it''s'");
        o.metrics.clear();
        assert_eq!(nagios(&o), "WARNING: slow / very");
    }
}

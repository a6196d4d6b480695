//! `/metrics`: the Prometheus text exposition of the agent's own metrics
//! (check status, durations, runs by status, skipped runs, plugin load
//! errors, run lateness, runs in flight) and the latest metrics each
//! check's plugin reported, labelled with the check.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use warden_runtime::Status;

use crate::agent::Agent;
use crate::telemetry::LATENESS_BUCKETS;

/// A label value in the exposition format.
fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// `s` with every character outside `[A-Za-z0-9_]` (and `:` when
/// `colons`) replaced by `_`.
fn sanitize(s: &str, colons: bool) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || (colons && c == ':') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl Agent {
    /// The Prometheus text exposition.
    pub fn metrics_text(&self) -> String {
        let mut out = String::with_capacity(64 * 1024);
        let views = self.check_summaries();
        let _ = writeln!(
            out,
            "# HELP warden_up 1 while the agent runs.\n# TYPE warden_up gauge\nwarden_up 1"
        );
        let _ = writeln!(
            out,
            "# HELP warden_check_status Hard status of a check: 0 ok, 1 warning, 2 critical, 3 unknown.\n# TYPE warden_check_status gauge"
        );
        for v in &views {
            let s = v.status.unwrap_or(Status::Unknown).exit_code();
            let _ = writeln!(
                out,
                "warden_check_status{{check=\"{}\"}} {s}",
                escape(&v.name)
            );
        }
        let _ = writeln!(
            out,
            "# HELP warden_check_duration_seconds Duration of the latest run.\n# TYPE warden_check_duration_seconds gauge"
        );
        for v in &views {
            if let Some(d) = v.last_duration_seconds {
                let _ = writeln!(
                    out,
                    "warden_check_duration_seconds{{check=\"{}\"}} {d}",
                    escape(&v.name)
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP warden_check_runs_total Runs by result status.\n# TYPE warden_check_runs_total counter"
        );
        for v in &views {
            let counts = [v.runs.ok, v.runs.warning, v.runs.critical, v.runs.unknown];
            for (status, n) in Status::ALL.iter().zip(counts) {
                let _ = writeln!(
                    out,
                    "warden_check_runs_total{{check=\"{}\",status=\"{status}\"}} {n}",
                    escape(&v.name)
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP warden_check_skipped_runs_total Due times skipped because the check was still running.\n# TYPE warden_check_skipped_runs_total counter"
        );
        for v in &views {
            let _ = writeln!(
                out,
                "warden_check_skipped_runs_total{{check=\"{}\"}} {}",
                escape(&v.name),
                v.skipped_runs
            );
        }
        let _ = writeln!(
            out,
            "# HELP warden_plugin_load_errors_total Failed plugin loads since start.\n# TYPE warden_plugin_load_errors_total counter"
        );
        for (name, n) in self.registry.load_error_counts() {
            let _ = writeln!(
                out,
                "warden_plugin_load_errors_total{{plugin=\"{}\"}} {n}",
                escape(&name)
            );
        }
        self.render_lateness(&mut out);
        let _ = writeln!(
            out,
            "# HELP warden_runs_in_flight Runs executing now.\n# TYPE warden_runs_in_flight gauge\nwarden_runs_in_flight {}",
            self.in_flight()
        );
        self.render_plugin_metrics(&mut out);
        out
    }

    fn render_lateness(&self, out: &mut String) {
        let h = self.telemetry.lateness();
        let _ = writeln!(
            out,
            "# HELP warden_run_lateness_seconds Delay between a run's due time and its start.\n# TYPE warden_run_lateness_seconds histogram"
        );
        let mut cumulative = 0;
        for (i, b) in LATENESS_BUCKETS.iter().enumerate() {
            cumulative += h.buckets[i];
            let _ = writeln!(
                out,
                "warden_run_lateness_seconds_bucket{{le=\"{b}\"}} {cumulative}"
            );
        }
        let _ = writeln!(
            out,
            "warden_run_lateness_seconds_bucket{{le=\"+Inf\"}} {}",
            h.count
        );
        let _ = writeln!(
            out,
            "warden_run_lateness_seconds_sum {}\nwarden_run_lateness_seconds_count {}",
            h.sum, h.count
        );
    }

    /// Plugin metrics, labelled with their check.
    fn render_plugin_metrics(&self, out: &mut String) {
        let live = self.live();
        let mut by_name: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (check, l) in live.iter() {
            let Some(last) = &l.last else { continue };
            for m in &last.metrics {
                let name = sanitize(&m.name, true);
                if name.is_empty()
                    || name.starts_with(|c: char| c.is_ascii_digit())
                    || name.starts_with("warden_")
                    || !m.value.is_finite()
                {
                    continue;
                }
                let mut labels = format!("check=\"{}\"", escape(check));
                for (k, v) in &m.labels {
                    let k = sanitize(k, false);
                    if k.is_empty() || k == "check" {
                        continue;
                    }
                    let _ = write!(labels, ",{k}=\"{}\"", escape(v));
                }
                by_name
                    .entry(name.clone())
                    .or_default()
                    .push(format!("{name}{{{labels}}} {}", m.value));
            }
        }
        for (name, lines) in by_name {
            let _ = writeln!(out, "# TYPE {name} gauge");
            for l in lines {
                let _ = writeln!(out, "{l}");
            }
        }
    }
}

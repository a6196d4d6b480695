//! `/metrics`: the Prometheus text exposition of the agent's own metrics
//! (check status, durations, runs by status, skipped runs, plugin load
//! errors, run lateness, runs in flight) and the latest metrics each
//! check's plugin reported, labelled with the check and plugin. A check's
//! own series carry `check`, `plugin` and, when its plugin names a probe
//! target (an `instance` label on its metrics), `instance`; its status
//! comes as two series, `state_type="soft"` (the latest run) and
//! `state_type="hard"` (confirmed after its attempts); `warden_check_up`
//! is 1 while its latest run completed.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
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
    /// The `check`, `plugin` (and `instance`) labels of each check's own
    /// series; the instance is the one `instance` label its latest run's
    /// metrics agree on.
    fn check_labels(&self, views: &[crate::views::CheckSummary]) -> HashMap<String, String> {
        let live = self.live();
        views
            .iter()
            .map(|v| {
                let mut instances = live
                    .get(&v.name)
                    .and_then(|l| l.last.as_ref())
                    .into_iter()
                    .flat_map(|last| last.metrics.iter())
                    .flat_map(|m| m.labels.iter())
                    .filter(|(k, _)| k == "instance")
                    .map(|(_, v)| v.as_str());
                let first = instances.next();
                let instance = first.filter(|f| instances.all(|i| i == *f));
                let mut labels = format!(
                    "check=\"{}\",plugin=\"{}\"",
                    escape(&v.name),
                    escape(&v.plugin)
                );
                if let Some(i) = instance {
                    let _ = write!(labels, ",instance=\"{}\"", escape(i));
                }
                (v.name.clone(), labels)
            })
            .collect()
    }

    /// The Prometheus text exposition.
    pub fn metrics_text(&self) -> String {
        let mut out = String::with_capacity(64 * 1024);
        let views = self.check_summaries();
        let labels = self.check_labels(&views);
        let l = |name: &str| labels.get(name).map(String::as_str).unwrap_or_default();
        let _ = writeln!(
            out,
            "# HELP warden_up 1 while the agent runs.\n# TYPE warden_up gauge\nwarden_up 1"
        );
        {
            let r = self.reloads();
            let _ = writeln!(
                out,
                "# HELP warden_config_last_reload_successful 1 when the latest configuration reload (or the start) succeeded.\n# TYPE warden_config_last_reload_successful gauge\nwarden_config_last_reload_successful {}",
                u8::from(r.last_ok)
            );
            let _ = writeln!(
                out,
                "# HELP warden_config_last_reload_success_timestamp_seconds When the configuration in force was loaded.\n# TYPE warden_config_last_reload_success_timestamp_seconds gauge\nwarden_config_last_reload_success_timestamp_seconds {}",
                r.loaded_unix_ms as f64 / 1000.0
            );
            let _ = writeln!(
                out,
                "# HELP warden_config_reloads_total Configuration reloads since start, by result.\n# TYPE warden_config_reloads_total counter\nwarden_config_reloads_total{{result=\"success\"}} {}\nwarden_config_reloads_total{{result=\"failure\"}} {}",
                r.reloads, r.failures
            );
        }
        let _ = writeln!(
            out,
            "# HELP warden_check_status Status of a check: 0 ok, 1 warning, 2 critical, 3 unknown; state_type=\"hard\" once confirmed (alert on this one), \"soft\" the latest run's.\n# TYPE warden_check_status gauge"
        );
        for v in &views {
            let hard = v.status.unwrap_or(Status::Unknown).exit_code();
            let soft = v
                .last_status
                .or(v.status)
                .unwrap_or(Status::Unknown)
                .exit_code();
            let _ = writeln!(
                out,
                "warden_check_status{{{},state_type=\"hard\"}} {hard}\nwarden_check_status{{{},state_type=\"soft\"}} {soft}",
                l(&v.name),
                l(&v.name)
            );
        }
        let _ = writeln!(
            out,
            "# HELP warden_check_up 1 when the check's latest run completed (ok, warning or critical), 0 when it could not (unknown: a timeout, a crash, a refused config).\n# TYPE warden_check_up gauge"
        );
        for v in &views {
            if let Some(s) = v.last_status {
                let _ = writeln!(
                    out,
                    "warden_check_up{{{}}} {}",
                    l(&v.name),
                    u8::from(s != Status::Unknown)
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP warden_check_flapping 1 while a check flaps (its notifications held until it settles).\n# TYPE warden_check_flapping gauge"
        );
        for v in &views {
            let _ = writeln!(
                out,
                "warden_check_flapping{{{}}} {}",
                l(&v.name),
                u8::from(v.flapping)
            );
        }
        let _ = writeln!(
            out,
            "# HELP warden_check_silenced 1 while a maintenance window, a silence or a parent's problem holds a check's notifications.\n# TYPE warden_check_silenced gauge"
        );
        for v in &views {
            let _ = writeln!(
                out,
                "warden_check_silenced{{{}}} {}",
                l(&v.name),
                u8::from(v.quiet.is_some())
            );
        }
        let _ = writeln!(
            out,
            "# HELP warden_check_duration_seconds Duration of the latest run.\n# TYPE warden_check_duration_seconds gauge"
        );
        for v in &views {
            if let Some(d) = v.last_duration_seconds {
                let _ = writeln!(out, "warden_check_duration_seconds{{{}}} {d}", l(&v.name));
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
                    "warden_check_runs_total{{{},status=\"{status}\"}} {n}",
                    l(&v.name)
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
                "warden_check_skipped_runs_total{{{}}} {}",
                l(&v.name),
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
        let _ = writeln!(
            out,
            "# HELP warden_store_writable 1 while store writes go through, 0 while they fail.\n# TYPE warden_store_writable gauge\nwarden_store_writable {}\n# HELP warden_store_write_failures_total Store writes (runs, state, bookkeeping) that failed since start.\n# TYPE warden_store_write_failures_total counter\nwarden_store_write_failures_total {}",
            u8::from(self.store.writable()),
            self.store.write_failures()
        );
        let _ = writeln!(
            out,
            "# HELP warden_notifications_total Attempts to deliver notifications, by notifier and result (delivered, retry, failed).\n# TYPE warden_notifications_total counter"
        );
        for ((notifier, result), n) in self.alerting.counts() {
            let _ = writeln!(
                out,
                "warden_notifications_total{{notifier=\"{}\",result=\"{result}\"}} {n}",
                escape(&notifier)
            );
        }
        let _ = writeln!(
            out,
            "# HELP warden_action_firings_total Firings of runbook actions, by action and how they ended (succeeded, failed, skipped, rejected, expired).\n# TYPE warden_action_firings_total counter"
        );
        for ((action, state), n) in self.actions.counts() {
            let _ = writeln!(
                out,
                "warden_action_firings_total{{action=\"{}\",state=\"{state}\"}} {n}",
                escape(&action)
            );
        }
        self.render_lateness(&mut out);
        let _ = writeln!(
            out,
            "# HELP warden_runs_in_flight Runs executing now.\n# TYPE warden_runs_in_flight gauge\nwarden_runs_in_flight {}",
            self.in_flight()
        );
        self.render_connections(&mut out);
        self.render_plugin_metrics(&mut out);
        out
    }

    /// The API's connections and the process's descriptors (the latter
    /// under the names Prometheus' process collectors use).
    fn render_connections(&self, out: &mut String) {
        use std::sync::atomic::Ordering::Relaxed;
        let c = &self.telemetry.connections;
        let _ = writeln!(
            out,
            "# HELP warden_api_connections API connections open now.\n# TYPE warden_api_connections gauge\nwarden_api_connections {}\n\
             # HELP warden_api_connections_refused_total API connections refused because the connection cap was reached.\n# TYPE warden_api_connections_refused_total counter\nwarden_api_connections_refused_total {}\n\
             # HELP warden_api_accept_errors_total Failed accepts of API connections (EMFILE and others).\n# TYPE warden_api_accept_errors_total counter\nwarden_api_accept_errors_total {}",
            c.open.load(Relaxed),
            c.refused.load(Relaxed),
            c.accept_errors.load(Relaxed),
        );
        if let Some(n) = crate::listener::open_fds() {
            let _ = writeln!(
                out,
                "# HELP process_open_fds Number of open file descriptors.\n# TYPE process_open_fds gauge\nprocess_open_fds {n}"
            );
        }
        if let Some(n) = crate::listener::max_fds() {
            let _ = writeln!(
                out,
                "# HELP process_max_fds Maximum number of open file descriptors.\n# TYPE process_max_fds gauge\nprocess_max_fds {n}"
            );
        }
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

    /// Plugin metrics, labelled with their check, in Prometheus' data
    /// model whatever the plugins reported: every family gets HELP and
    /// TYPE (`counter` for `_total` names, `gauge` otherwise); a series
    /// whose name or labels are invalid or reserved, or that repeats one
    /// already exposed (names that collide once sanitised included), is
    /// dropped and counted in `warden_check_metrics_dropped`, so one
    /// plugin can never break the scrape.
    fn render_plugin_metrics(&self, out: &mut String) {
        let live = self.live();
        let mut families: BTreeMap<String, Family> = BTreeMap::new();
        let mut dropped: Vec<(&str, usize)> = Vec::new();
        let checks = self.checks();
        for (check, c) in checks.iter() {
            let Some(last) = live.get(check).and_then(|l| l.last.as_ref()) else {
                continue;
            };
            let mut n = 0;
            for m in &last.metrics {
                let Some((name, labels)) = series(check, &c.config.plugin, m) else {
                    n += 1;
                    continue;
                };
                let family = families.entry(name).or_default();
                if !family.label_sets.insert(labels.clone()) {
                    n += 1;
                    continue;
                }
                family.plugins.insert(c.config.plugin.clone());
                family.series.push((labels, value(m.value)));
            }
            dropped.push((check, n));
        }
        for (name, f) in &families {
            let plugins: Vec<&str> = f.plugins.iter().map(String::as_str).collect();
            let kind = if name.ends_with("_total") {
                "counter"
            } else {
                "gauge"
            };
            let _ = writeln!(
                out,
                "# HELP {name} Reported by the {} plugin.\n# TYPE {name} {kind}",
                escape_help(&plugins.join(", "))
            );
            for (labels, v) in &f.series {
                let _ = writeln!(out, "{name}{{{labels}}} {v}");
            }
        }
        let _ = writeln!(
            out,
            "# HELP warden_check_metrics_dropped Metrics of the check's latest run not exposed: invalid or reserved names, or a series already exposed.\n# TYPE warden_check_metrics_dropped gauge"
        );
        for (check, n) in dropped {
            let _ = writeln!(
                out,
                "warden_check_metrics_dropped{{check=\"{}\"}} {n}",
                escape(check)
            );
        }
    }
}

/// One plugin metric family being rendered.
#[derive(Default)]
struct Family {
    plugins: BTreeSet<String>,
    label_sets: HashSet<String>,
    series: Vec<(String, String)>,
}

/// The family name and rendered labels of a plugin metric, or `None` when
/// it cannot be exposed: an empty, digit-first, `__`-reserved or
/// `warden_` name; a label name that is empty, digit-first, `__`-reserved,
/// `check` or `plugin` (the agent's own); a label name given twice.
fn series(check: &str, plugin: &str, m: &warden_runtime::Metric) -> Option<(String, String)> {
    let name = sanitize(&m.name, true);
    let name_ok = !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && !name.starts_with("__")
        && !name.starts_with("warden_");
    if !name_ok {
        return None;
    }
    let mut names = HashSet::new();
    let mut labels = format!("check=\"{}\",plugin=\"{}\"", escape(check), escape(plugin));
    for (k, v) in &m.labels {
        let k = sanitize(k, false);
        let ok = !k.is_empty()
            && !k.starts_with(|c: char| c.is_ascii_digit())
            && !k.starts_with("__")
            && k != "check"
            && k != "plugin";
        if !ok || !names.insert(k.clone()) {
            return None;
        }
        let _ = write!(labels, ",{k}=\"{}\"", escape(v));
    }
    Some((name, labels))
}

/// A sample value as the exposition format spells it.
fn value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        v.to_string()
    }
}

/// HELP text in the exposition format.
fn escape_help(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n")
}

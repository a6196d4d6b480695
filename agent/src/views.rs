//! What the API shows about checks: [`CheckSummary`] for lists,
//! [`CheckView`] for one check (its config in force, its health and its
//! latest run in full), built from one snapshot of the scheduler and the
//! live view.

use std::sync::Arc;

use serde::Serialize;
use warden_runtime::{RunOutcome, Status};

use crate::agent::Agent;
use crate::health::{Health, StateType};
use crate::live::{Check, Live};
use crate::scheduler::SlotInfo;

/// Runs by status.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RunCounts {
    /// OK.
    pub ok: u64,
    /// Warning.
    pub warning: u64,
    /// Critical.
    pub critical: u64,
    /// Unknown.
    pub unknown: u64,
}

/// What `GET /v1/checks` shows about each check.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CheckSummary {
    /// Name.
    pub name: String,
    /// Plugin.
    pub plugin: String,
    /// Whether the plugin is loaded.
    pub plugin_loaded: bool,
    /// Schedule in force.
    pub schedule: String,
    /// Enabled.
    pub enabled: bool,
    /// Hard status (none before the first result).
    pub status: Option<Status>,
    /// Soft or hard.
    pub state_type: Option<StateType>,
    /// When the hard status last changed.
    pub since_unix_ms: Option<i64>,
    /// Status of the latest run.
    pub last_status: Option<Status>,
    /// Summary of the latest run.
    pub last_summary: Option<String>,
    /// End of the latest run.
    pub last_finished_unix_ms: Option<u64>,
    /// Duration of the latest run.
    pub last_duration_seconds: Option<f64>,
    /// Next due time.
    pub next_due_unix_ms: Option<i64>,
    /// Running now.
    pub running: bool,
    /// Skipped due times since start.
    pub skipped_runs: u64,
    /// Runs by status.
    pub runs: RunCounts,
    /// Whether it flaps ([`crate::flapping`]).
    pub flapping: bool,
    /// Its percent state change over the last 21 results.
    pub flap_percent: f64,
    /// What holds its notifications now (a maintenance window, a
    /// silence, a parent's problem), if anything does; it still runs.
    pub quiet: Option<String>,
}

/// What `GET /v1/checks/{name}` shows: the summary plus the config in
/// force, the health and the latest run in full.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CheckView {
    /// The summary fields.
    #[serde(flatten)]
    pub summary: CheckSummary,
    /// Splay offset.
    pub splay_seconds: f64,
    /// Timeout.
    pub timeout_seconds: f64,
    /// Memory limit.
    pub memory_bytes: u64,
    /// Retries.
    pub retries: u32,
    /// Failure threshold.
    pub failure_threshold: u32,
    /// Success threshold.
    pub success_threshold: u32,
    /// The check's health.
    pub state: Option<Health>,
    /// Latest run.
    #[serde(serialize_with = "shared")]
    #[schema(value_type = Option<RunOutcome>)]
    pub last_run: Option<Arc<RunOutcome>>,
    /// Grants, from the parsed grants.
    pub grants: serde_json::Value,
    /// Outputs file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outputs_file: Option<String>,
}

fn shared<S: serde::Serializer>(run: &Option<Arc<RunOutcome>>, s: S) -> Result<S::Ok, S::Error> {
    run.as_deref().serialize(s)
}

impl Agent {
    /// The full view of one check.
    pub fn check_view(&self, name: &str) -> Option<CheckView> {
        let checks = self.checks();
        let check = checks.get(name)?;
        let info = self.core().info(name).unwrap_or_default();
        let (live, quiet) = {
            let all = self.live();
            let quiet = self.quiet(&all, &check.config, crate::store::now_ms());
            (all.get(name).cloned().unwrap_or_default(), quiet)
        };
        let c = &check.config;
        Some(CheckView {
            summary: self.summary(check, info, &live, quiet),
            splay_seconds: check.offset.as_secs_f64(),
            timeout_seconds: c.timeout.as_secs_f64(),
            memory_bytes: c.memory,
            retries: c.retries,
            failure_threshold: c.failure_threshold,
            success_threshold: c.success_threshold,
            state: live.health,
            last_run: live.last,
            grants: c.grants.view(),
            outputs_file: c.outputs_file.as_ref().map(|p| p.display().to_string()),
        })
    }

    /// A summary of every check, from one snapshot of the scheduler and
    /// one of the live view (two locks, not two per check).
    pub fn check_summaries(&self) -> Vec<CheckSummary> {
        let infos: Vec<_> = {
            let core = self.core();
            self.checks()
                .keys()
                .map(|n| core.info(n).unwrap_or_default())
                .collect()
        };
        let live = self.live();
        let empty = Live::default();
        let now = crate::store::now_ms();
        self.checks()
            .values()
            .zip(infos)
            .map(|(check, info)| {
                let quiet = self.quiet(&live, &check.config, now);
                self.summary(
                    check,
                    info,
                    live.get(&check.config.name).unwrap_or(&empty),
                    quiet,
                )
            })
            .collect()
    }

    fn summary(
        &self,
        check: &Check,
        info: SlotInfo,
        live: &Live,
        quiet: Option<crate::silences::Quiet>,
    ) -> CheckSummary {
        let flap = live.health.as_ref().map(|h| &h.flap);
        let c = &check.config;
        let last = live.last.as_deref();
        let [ok, warning, critical, unknown] = live.runs_by_status;
        CheckSummary {
            name: c.name.clone(),
            plugin: c.plugin.clone(),
            plugin_loaded: self.registry.get(&c.plugin).is_some(),
            schedule: check.schedule_text.clone(),
            enabled: c.enabled,
            status: live.health.as_ref().map(|s| s.status),
            state_type: live.health.as_ref().map(|s| s.state_type),
            since_unix_ms: live.health.as_ref().map(|s| s.since_ms),
            last_status: last.map(|l| l.status),
            last_summary: last.map(|l| l.summary.clone()),
            last_finished_unix_ms: last.map(|l| l.finished_unix_ms),
            last_duration_seconds: last.map(|l| l.duration_seconds),
            next_due_unix_ms: info.next_due_ms,
            running: info.running,
            skipped_runs: info.skipped,
            runs: RunCounts {
                ok,
                warning,
                critical,
                unknown,
            },
            flapping: flap.is_some_and(|f| f.flapping),
            flap_percent: flap.map_or(0.0, |f| (f.percent() * 10.0).round() / 10.0),
            quiet: quiet.map(|q| q.to_string()),
        }
    }
}

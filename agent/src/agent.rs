//! The long-running agent: ties the config, the registry, the scheduler,
//! the runtime and the store together, and keeps the live view of every
//! check that the API and `/metrics` read.
//!
//! Data flows one way: the scheduler's driver polls [`SchedulerCore`] for
//! due runs; each run waits for a slot under the global concurrency limit,
//! runs in the sandbox, is recorded (and acknowledged only once committed),
//! updates the check's live view and renders its outputs file when an
//! output changed, and finally tells the scheduler it finished.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result};
use serde::Serialize;
use tokio::sync::{Notify, Semaphore, watch};

use crate::checkstate::CheckState;
use crate::config::{CheckConfig, Config};
use crate::registry::Registry;
use crate::report::{Metric, Status};
use crate::runtime::{RunOutcome, RunRequest, Runtime, RuntimeOptions};
use crate::schedule::{self, Schedule};
use crate::scheduler::{Dispatch, ManualError, SchedulerCore, SlotSpec};
use crate::store::{RunRecord, Store, now_ms};

/// Upper bounds (seconds) of the run-lateness histogram.
pub const LATENESS_BUCKETS: [f64; 10] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

/// A check as the agent runs it.
#[derive(Debug, Clone)]
pub struct Check {
    /// The config.
    pub config: CheckConfig,
    /// The schedule in force (the config's, else the plugin's default).
    pub schedule: Schedule,
    /// Its splay offset.
    pub offset: Duration,
    /// The schedule as shown (computed once).
    pub schedule_text: String,
}

/// The latest run of a check.
#[derive(Debug, Clone, Serialize)]
pub struct LastRun {
    /// Run id.
    pub run_id: String,
    /// Status.
    pub status: Status,
    /// Summary.
    pub summary: String,
    /// Error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Plugin sha256 it ran.
    pub plugin_sha256: String,
    /// Due time.
    pub scheduled_unix_ms: u64,
    /// End.
    pub finished_unix_ms: u64,
    /// Duration.
    pub duration_seconds: f64,
    /// Attempt.
    pub attempt: u32,
}

#[derive(Debug, Clone, Default)]
struct Live {
    state: Option<CheckState>,
    last: Option<LastRun>,
    runs_by_status: [u64; 4],
    metrics: Vec<Metric>,
}

/// Counts for the lateness histogram.
#[derive(Debug, Clone, Default)]
pub struct Histogram {
    /// Per bucket of [`LATENESS_BUCKETS`], cumulative at render time.
    pub buckets: [u64; LATENESS_BUCKETS.len()],
    /// Observations.
    pub count: u64,
    /// Sum of observations.
    pub sum: f64,
}

impl Histogram {
    fn observe(&mut self, v: f64) {
        self.count += 1;
        self.sum += v;
        if let Some(i) = LATENESS_BUCKETS.iter().position(|b| v <= *b) {
            self.buckets[i] += 1;
        }
    }
}

/// The running agent.
pub struct Agent {
    /// The config it was started with.
    pub config: Config,
    /// The sandbox runtime.
    pub runtime: Arc<Runtime>,
    /// Plugins.
    pub registry: Arc<Registry>,
    /// The store.
    pub store: Store,
    checks: BTreeMap<String, Check>,
    core: Mutex<SchedulerCore>,
    wake: Notify,
    live: Mutex<HashMap<String, Live>>,
    limit: Semaphore,
    in_flight: AtomicUsize,
    idle: Notify,
    scheduling: AtomicBool,
    lateness: Mutex<Histogram>,
    /// When the agent started (ms since the epoch).
    pub started_unix_ms: i64,
}

fn status_index(s: Status) -> usize {
    match s {
        Status::Ok => 0,
        Status::Warning => 1,
        Status::Critical => 2,
        Status::Unknown => 3,
    }
}

impl Agent {
    /// Opens the store, loads the plugins and prepares the schedule.
    pub async fn start(config: Config) -> Result<Arc<Agent>> {
        let state_dir = &config.agent.state_dir;
        crate::engine::create_private_dir(state_dir)?;
        let store = Store::open(&state_dir.join("warden.db"))?;
        let runtime = Arc::new(Runtime::new(RuntimeOptions {
            cache_dir: Some(state_dir.join("cache")),
            store: Some(store.clone()),
        })?);
        let registry = Registry::start(
            runtime.clone(),
            config.agent.plugin_dir.clone(),
            config.pins.clone(),
        )
        .await;
        let records = store.check_records().context("reading the store")?;
        let now = now_ms();
        let mut core = SchedulerCore::new();
        let mut checks = BTreeMap::new();
        let mut live = HashMap::new();
        for c in &config.checks {
            let schedule = if c.schedule_given {
                c.schedule.clone()
            } else {
                registry
                    .get(&c.plugin)
                    .and_then(|p| p.info.default_schedule.clone())
                    .and_then(|s| Schedule::parse(&s).ok())
                    .unwrap_or_else(|| c.schedule.clone())
            };
            let max_splay = c.splay.unwrap_or_else(|| schedule.default_splay());
            let offset = schedule::splay(&c.name, max_splay);
            let record = records.get(&c.name).cloned().unwrap_or_default();
            core.add(
                SlotSpec {
                    name: c.name.clone(),
                    schedule: schedule.clone(),
                    offset,
                    retries: c.retries,
                    enabled: c.enabled,
                },
                record.last_due_ms,
                now,
            );
            live.insert(
                c.name.clone(),
                Live {
                    state: record.state,
                    runs_by_status: record.runs_by_status,
                    ..Live::default()
                },
            );
            checks.insert(
                c.name.clone(),
                Check {
                    config: c.clone(),
                    schedule_text: schedule.to_string(),
                    schedule,
                    offset,
                },
            );
        }
        let limit = Semaphore::new(config.agent.max_concurrent_runs);
        Ok(Arc::new(Agent {
            config,
            runtime,
            registry,
            store,
            checks,
            core: Mutex::new(core),
            wake: Notify::new(),
            live: Mutex::new(live),
            limit,
            in_flight: AtomicUsize::new(0),
            idle: Notify::new(),
            scheduling: AtomicBool::new(false),
            lateness: Mutex::new(Histogram::default()),
            started_unix_ms: now,
        }))
    }

    fn core(&self) -> std::sync::MutexGuard<'_, SchedulerCore> {
        self.core.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn live(&self) -> std::sync::MutexGuard<'_, HashMap<String, Live>> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The checks, by name.
    pub fn checks(&self) -> &BTreeMap<String, Check> {
        &self.checks
    }

    /// True while the scheduler loop runs.
    pub fn scheduling(&self) -> bool {
        self.scheduling.load(Ordering::Relaxed)
    }

    /// Runs in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// The scheduler loop; returns when `shutdown` turns true.
    pub async fn run_scheduler(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        self.scheduling.store(true, Ordering::Relaxed);
        loop {
            if *shutdown.borrow() {
                break;
            }
            let now = now_ms();
            let (due, next) = {
                let mut core = self.core();
                (core.poll(now), core.next_wakeup())
            };
            for d in due {
                if d.attempt == 1 {
                    self.store.mark_due(&d.check, d.due_ms);
                }
                tokio::spawn(self.clone().execute(d));
            }
            let wait = next
                .map(|t| Duration::from_millis((t - now_ms()).clamp(0, 60_000) as u64))
                .unwrap_or(Duration::from_secs(60));
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.wake.notified() => {}
                _ = shutdown.changed() => {}
            }
        }
        self.scheduling.store(false, Ordering::Relaxed);
    }

    /// Starts a manual run and waits for its outcome.
    pub async fn run_now(self: &Arc<Self>, check: &str) -> Result<RunOutcome, ManualError> {
        let d = self.core().manual(check, now_ms())?;
        Ok(self.clone().execute(d).await)
    }

    /// Starts a manual run in the background.
    pub fn run_now_detached(self: &Arc<Self>, check: &str) -> Result<(), ManualError> {
        let d = self.core().manual(check, now_ms())?;
        tokio::spawn(self.clone().execute(d));
        Ok(())
    }

    fn request(check: &Check, d: &Dispatch) -> RunRequest {
        RunRequest {
            check: check.config.name.clone(),
            config: check.config.config_json.clone(),
            scheduled: UNIX_EPOCH + Duration::from_millis(d.due_ms.max(0) as u64),
            attempt: d.attempt,
            timeout: check.config.timeout,
            memory: check.config.memory,
            grants: check.config.grants.clone(),
        }
    }

    async fn execute(self: Arc<Self>, d: Dispatch) -> RunOutcome {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let outcome = self.execute_inner(&d).await;
        self.core().finished(&d, outcome.status, now_ms());
        self.wake.notify_one();
        if self.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.idle.notify_waiters();
        }
        outcome
    }

    async fn execute_inner(&self, d: &Dispatch) -> RunOutcome {
        let Some(check) = self.checks.get(&d.check) else {
            return RunOutcome::unknown(
                &d.check,
                "",
                format!("no check named {:?}", d.check),
                SystemTime::now(),
                d.attempt,
            );
        };
        let mut request = Self::request(check, d);
        // `${output:CHECK.KEY}`: the other check's current value, or an
        // unknown run saying which output is missing.
        let resolved = crate::references::resolve(&request.config, |c, k| {
            self.store
                .outputs(Some(c))
                .ok()?
                .into_iter()
                .find(|o| o.key == k)
                .map(|o| o.value)
        });
        match resolved {
            Ok(config) => request.config = config,
            Err(reason) => {
                let outcome = RunOutcome::unknown(
                    &check.config.name,
                    &check.config.plugin,
                    reason,
                    request.scheduled,
                    d.attempt,
                );
                return self.finish(check, d, outcome).await;
            }
        }
        let permit = self.limit.acquire().await;
        if !d.manual {
            let late = (now_ms() - d.due_ms).max(0) as f64 / 1000.0;
            self.lateness
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .observe(late);
        }
        let outcome = match self.registry.get(&check.config.plugin) {
            Some(plugin) => self.runtime.run(&plugin, &request).await,
            None => RunOutcome::unknown(
                &check.config.name,
                &check.config.plugin,
                format!(
                    "plugin {:?} is missing: no {}.wasm in {} and no standard plugin of that name",
                    check.config.plugin,
                    check.config.plugin,
                    self.registry.dir().display()
                ),
                request.scheduled,
                d.attempt,
            ),
        };
        drop(permit);
        self.finish(check, d, outcome).await
    }

    /// Records a run's outcome: store, state transitions, outputs file,
    /// live view.
    async fn finish(&self, check: &Check, d: &Dispatch, outcome: RunOutcome) -> RunOutcome {
        let record = RunRecord {
            outcome: outcome.clone(),
            manual: d.manual,
            due_ms: (!d.manual).then_some(d.due_ms),
            failure_threshold: check.config.failure_threshold,
            success_threshold: check.config.success_threshold,
        };
        match self.store.record(record).await {
            Ok(recorded) => {
                if let Some(t) = recorded.transition {
                    tracing::warn!(check = %d.check, from = t.from.label(), to = t.to.label(), summary = %outcome.summary, "check changed state");
                }
                if let (Some(outputs), Some(path)) =
                    (&recorded.outputs_changed, &check.config.outputs_file)
                {
                    match crate::outputs::render(path, outputs) {
                        Ok(()) => {
                            tracing::info!(check = %d.check, file = %path.display(), "outputs changed; file rendered")
                        }
                        Err(e) => {
                            tracing::error!(check = %d.check, error = %format!("{e:#}"), "cannot render the outputs file")
                        }
                    }
                }
                let mut live = self.live();
                let l = live.entry(d.check.clone()).or_default();
                l.state = Some(recorded.state);
                l.runs_by_status[status_index(outcome.status)] += 1;
                l.metrics = outcome.metrics.clone();
                l.last = Some(LastRun {
                    run_id: outcome.run_id.clone(),
                    status: outcome.status,
                    summary: outcome.summary.clone(),
                    error: outcome.error.clone(),
                    plugin_sha256: outcome.plugin_sha256.clone(),
                    scheduled_unix_ms: outcome.scheduled_unix_ms,
                    finished_unix_ms: outcome.finished_unix_ms,
                    duration_seconds: outcome.duration_seconds,
                    attempt: outcome.attempt,
                });
            }
            Err(e) => {
                tracing::error!(check = %d.check, error = %format!("{e:#}"), "cannot record the run")
            }
        }
        outcome
    }

    /// Waits for runs in flight to finish, up to `grace`; true if all did.
    pub async fn drain(&self, grace: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + grace;
        loop {
            let idle = self.idle.notified();
            if self.in_flight() == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, idle).await.is_err() {
                return self.in_flight() == 0;
            }
        }
    }

    /// The full view of one check.
    pub fn check_view(&self, name: &str) -> Option<CheckView> {
        let check = self.checks.get(name)?;
        let info = self.core().info(name).unwrap_or_default();
        let live = self.live().get(name).cloned().unwrap_or_default();
        let c = &check.config;
        Some(CheckView {
            summary: self.summary(check, info, &live),
            splay_seconds: check.offset.as_secs_f64(),
            timeout_seconds: c.timeout.as_secs_f64(),
            memory_bytes: c.memory,
            retries: c.retries,
            failure_threshold: c.failure_threshold,
            success_threshold: c.success_threshold,
            state: live.state.clone(),
            last_run: live.last.clone(),
            grants: GrantsView {
                hosts: c.allow_hosts.clone(),
                read_dirs: c.allow_read_dirs.clone(),
                env: c.allow_env.clone(),
            },
            outputs_file: c.outputs_file.as_ref().map(|p| p.display().to_string()),
        })
    }

    /// A summary of every check, from one snapshot of the scheduler and
    /// one of the live state (two locks, not two per check).
    pub fn check_summaries(&self) -> Vec<CheckSummary> {
        let infos: Vec<_> = {
            let core = self.core();
            self.checks
                .keys()
                .map(|n| core.info(n).unwrap_or_default())
                .collect()
        };
        let live = self.live();
        let empty = Live::default();
        self.checks
            .values()
            .zip(infos)
            .map(|(check, info)| {
                self.summary(check, info, live.get(&check.config.name).unwrap_or(&empty))
            })
            .collect()
    }

    fn summary(
        &self,
        check: &Check,
        info: crate::scheduler::SlotInfo,
        live: &Live,
    ) -> CheckSummary {
        let c = &check.config;
        CheckSummary {
            name: c.name.clone(),
            plugin: c.plugin.clone(),
            plugin_loaded: self.registry.get(&c.plugin).is_some(),
            schedule: check.schedule_text.clone(),
            enabled: c.enabled,
            status: live.state.as_ref().map(|s| s.status),
            state_type: live.state.as_ref().map(|s| s.state_type),
            since_unix_ms: live.state.as_ref().map(|s| s.since_ms),
            last_status: live.last.as_ref().map(|l| l.status),
            last_summary: live.last.as_ref().map(|l| l.summary.clone()),
            last_finished_unix_ms: live.last.as_ref().map(|l| l.finished_unix_ms),
            last_duration_seconds: live.last.as_ref().map(|l| l.duration_seconds),
            next_due_unix_ms: info.next_due_ms,
            running: info.running,
            skipped_runs: info.skipped,
            runs: RunCounts {
                ok: live.runs_by_status[0],
                warning: live.runs_by_status[1],
                critical: live.runs_by_status[2],
                unknown: live.runs_by_status[3],
            },
        }
    }

    /// Prometheus text exposition of the agent's own metrics and the latest
    /// metrics each check's plugin reported.
    pub fn metrics_text(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::with_capacity(64 * 1024);
        let esc = |s: &str| {
            s.replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n")
        };
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
            let s = v.status.map(|s| s.exit_code()).unwrap_or(3);
            let _ = writeln!(out, "warden_check_status{{check=\"{}\"}} {s}", esc(&v.name));
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
                    esc(&v.name)
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP warden_check_runs_total Runs by result status.\n# TYPE warden_check_runs_total counter"
        );
        for v in &views {
            for (status, n) in [
                ("ok", v.runs.ok),
                ("warning", v.runs.warning),
                ("critical", v.runs.critical),
                ("unknown", v.runs.unknown),
            ] {
                let _ = writeln!(
                    out,
                    "warden_check_runs_total{{check=\"{}\",status=\"{status}\"}} {n}",
                    esc(&v.name)
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
                esc(&v.name),
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
                esc(&name)
            );
        }
        let h = self
            .lateness
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
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
        let _ = writeln!(
            out,
            "# HELP warden_runs_in_flight Runs executing now.\n# TYPE warden_runs_in_flight gauge\nwarden_runs_in_flight {}",
            self.in_flight()
        );

        // Plugin metrics, labelled with their check.
        let live = self.live();
        let mut by_name: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (check, l) in live.iter() {
            for m in &l.metrics {
                let name: String = m
                    .name
                    .chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
                            c
                        } else {
                            '_'
                        }
                    })
                    .collect();
                if name.is_empty()
                    || name.starts_with(|c: char| c.is_ascii_digit())
                    || name.starts_with("warden_")
                    || !m.value.is_finite()
                {
                    continue;
                }
                let mut labels = format!("check=\"{}\"", esc(check));
                for (k, v) in &m.labels {
                    let k: String = k
                        .chars()
                        .map(|c| {
                            if c.is_ascii_alphanumeric() || c == '_' {
                                c
                            } else {
                                '_'
                            }
                        })
                        .collect();
                    if k.is_empty() || k == "check" {
                        continue;
                    }
                    let _ = write!(labels, ",{k}=\"{}\"", esc(v));
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
        out
    }
}

/// Runs by status.
#[derive(Debug, Clone, Serialize)]
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

/// A check's grants as configured.
#[derive(Debug, Clone, Serialize)]
pub struct GrantsView {
    /// `allow.hosts`.
    pub hosts: Vec<String>,
    /// `allow.read_dirs`.
    pub read_dirs: Vec<String>,
    /// `allow.env` (names only).
    pub env: Vec<String>,
}

/// What `GET /v1/checks` shows about each check.
#[derive(Debug, Clone, Serialize)]
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
    pub state_type: Option<crate::checkstate::StateType>,
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
}

/// What `GET /v1/checks/{name}` shows: the summary plus the config in
/// force, the state machine and the latest run in full.
#[derive(Debug, Clone, Serialize)]
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
    /// State machine.
    pub state: Option<CheckState>,
    /// Latest run.
    pub last_run: Option<LastRun>,
    /// Grants.
    pub grants: GrantsView,
    /// Outputs file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outputs_file: Option<String>,
}

//! The long-running agent: ties the config, the registry, the scheduler,
//! the runtime and the store together, and keeps the live view of every
//! check that the API and `/metrics` read (`views`, `metrics`). Starting and stopping it, with the API, the
//! watcher and retention, is [`crate::serve`].
//!
//! Data flows one way: the scheduler's driver polls [`SchedulerCore`] for
//! due runs; each run (all of it, on the plugin [`Executor`]'s threads, so
//! guest code never runs where the API and scheduler do) waits for a slot
//! under the global concurrency limit
//! (the cheapest check first, [`FairGate`]), is refused without running if
//! the plugin refused the check's config, runs in the sandbox, gets its check's next [`Health`], is recorded (and
//! acknowledged only once committed), updates the live view and renders
//! its outputs file when an output changed, and finally tells the
//! scheduler it finished.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result};
use tokio::sync::{Notify, watch};
use warden_runtime::{RunOutcome, RunRequest, Runtime, Status};

use crate::config::Config;
use crate::executor::{Executor, FairGate, Permit};
use crate::layout::StateDir;
use crate::limits;
use crate::live::{Check, Live};
use crate::registry::Registry;
use crate::scheduler::{Dispatch, ManualError, SchedulerCore};
use crate::store::{RunRecord, Store, now_ms};
use crate::telemetry::Telemetry;

/// A run past its admission, or its outcome if it ended before running.
/// The scheduler's state and what wakes its driver.
struct Driver {
    core: Mutex<SchedulerCore>,
    wake: Notify,
    running: AtomicBool,
}

/// The global limit on runs in flight, and the count for draining.
struct RunGate {
    limit: Arc<FairGate>,
    in_flight: AtomicUsize,
    idle: Notify,
}

/// The running agent.
pub struct Agent {
    /// The config in force (replaced by a reload).
    config: RwLock<Arc<Config>>,
    /// The sandbox runtime.
    pub runtime: Arc<Runtime>,
    /// Plugins.
    pub registry: Arc<Registry>,
    /// The threads plugin code runs on.
    executor: Arc<Executor>,
    /// Per check: the plugin version (sha256) its config was validated
    /// with, and the refusal if the plugin refused it.
    validated: Mutex<HashMap<String, (String, Option<String>)>>,
    /// The store.
    pub store: Store,
    /// Notifiers, routes and delivery counters.
    pub alerting: Arc<crate::alerting::Alerting>,
    /// Maintenance windows and silences.
    pub silences: crate::silences::Silences,
    /// Acknowledged findings.
    pub acks: crate::acks::Acks,
    checks: RwLock<Arc<BTreeMap<String, Check>>>,
    /// How the latest reload went.
    pub(crate) reloads: Mutex<crate::config::ReloadStatus>,
    driver: Driver,
    gate: RunGate,
    live: Mutex<HashMap<String, Live>>,
    pub(crate) telemetry: Telemetry,
    /// When the agent started (ms since the epoch).
    pub started_unix_ms: i64,
    /// Runbook actions' pause, streaks and counts ([`crate::action_state`]).
    pub actions: crate::action_state::ActionState,
    /// Itself, for work a run starts that outlives it (actions).
    me: Weak<Agent>,
    /// The agent's own runtime (where actions are driven from).
    pub(crate) handle: tokio::runtime::Handle,
}

impl Agent {
    /// Opens the store, loads the plugins and prepares the schedule.
    pub async fn start(config: Config) -> Result<Arc<Agent>> {
        let state_dir = StateDir::create(&config.agent.state_dir)?;
        let store = state_dir.open_store()?;
        let runtime = Arc::new(Runtime::new(
            state_dir.runtime_options(Some(store.clone()), config.agent.ca_file.as_deref())?,
        )?);
        let executor = Arc::new(Executor::new().context("starting the plugin threads")?);
        runtime.place_shards(Box::new(executor.shard_placer()));
        let registry = Registry::open(
            runtime.clone(),
            executor.clone(),
            config.agent.plugin_dir.clone(),
            config.pins.clone(),
            config.agent.profile == crate::config::Profile::Production,
            &config
                .checks
                .iter()
                .map(|c| c.plugin.clone())
                .chain(config.actions.iter().map(|a| a.plugin.clone()))
                .collect::<Vec<_>>(),
        );
        let records = store.check_records().context("reading the store")?;
        let told = store.told().context("reading the outbox")?;
        let now = now_ms();
        let silences = crate::silences::Silences::new(
            config.maintenance.clone(),
            store.silences(now).context("reading silences")?,
        );
        let acks = crate::acks::Acks::new(store.acks().context("reading acknowledgements")?);
        let mut core = SchedulerCore::new();
        let mut checks = BTreeMap::new();
        let mut live = HashMap::new();
        for c in &config.checks {
            let check = Check::new(c, &registry);
            let record = records.get(&c.name).cloned().unwrap_or_default();
            core.add(check.slot(), record.last_due_ms, now);
            live.insert(
                c.name.clone(),
                Live::from_record(record, told.get(&c.name).copied()),
            );
            checks.insert(c.name.clone(), check);
        }
        let gate = RunGate {
            limit: Arc::new(FairGate::new(config.agent.max_concurrent_runs)),
            in_flight: AtomicUsize::new(0),
            idle: Notify::new(),
        };
        // What each check cost before the restart: known spinners do not
        // take the places kept for quick checks in the first round.
        for (name, record) in records.iter().filter(|(n, _)| checks.contains_key(*n)) {
            if let Some(took) = record.last_run {
                gate.limit.record(name, took);
            }
        }
        Ok(Arc::new_cyclic(|me| Agent {
            actions: Default::default(),
            me: me.clone(),
            handle: tokio::runtime::Handle::current(),
            alerting: Arc::new(crate::alerting::Alerting::new(&config)),
            silences,
            acks,
            reloads: Mutex::new(crate::config::ReloadStatus::new(&config, now)),
            config: RwLock::new(Arc::new(config)),
            runtime,
            registry,
            executor,
            validated: Mutex::new(HashMap::new()),
            store,
            checks: RwLock::new(Arc::new(checks)),
            driver: Driver {
                core: Mutex::new(core),
                wake: Notify::new(),
                running: AtomicBool::new(false),
            },
            gate,
            live: Mutex::new(live),
            telemetry: Telemetry::default(),
            started_unix_ms: now,
        }))
    }

    pub(crate) fn core(&self) -> MutexGuard<'_, SchedulerCore> {
        self.driver.core.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn me(&self) -> Option<Arc<Agent>> {
        self.me.upgrade()
    }

    /// Runs `request` (an action's) on the executor once it has a place
    /// under the global run limit, like any check's run.
    pub(crate) async fn run_sandboxed(
        &self,
        plugin: &Arc<warden_runtime::Plugin>,
        request: RunRequest,
    ) -> RunOutcome {
        let permit = self.gate.limit.clone().acquire(&request.check).await;
        let (runtime, plugin, name) = (self.runtime.clone(), plugin.clone(), request.check.clone());
        let run = self
            .executor
            .run(async move { crate::executor::catch_panic(runtime.run(&plugin, &request)).await });
        let outcome = run
            .await
            .and_then(|r| r)
            .unwrap_or_else(|fault| RunOutcome::unknown(&name, "", fault, SystemTime::now(), 1));
        drop(permit);
        outcome
    }

    pub(crate) fn live(&self) -> MutexGuard<'_, HashMap<String, Live>> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The checks in force, by name (a snapshot: a reload replaces it).
    pub fn checks(&self) -> Arc<BTreeMap<String, Check>> {
        self.checks
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The config in force (a snapshot).
    pub fn config(&self) -> Arc<Config> {
        self.config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Puts a reloaded config and its checks in force.
    pub(crate) fn set_config(&self, config: Arc<Config>, checks: BTreeMap<String, Check>) {
        *self.checks.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(checks);
        *self.config.write().unwrap_or_else(|p| p.into_inner()) = config;
    }

    /// Seeds the run gate's estimate of `check`'s cost.
    pub(crate) fn record_cost(&self, check: &str, took: Duration) {
        self.gate.limit.record(check, took);
    }

    /// Makes the scheduler's driver look again (a reload added checks).
    pub(crate) fn wake_scheduler(&self) {
        self.driver.wake.notify_one();
    }

    /// Forgets the plugin's verdict on `check`'s config (changed by a
    /// reload: asked again before its next run).
    pub(crate) fn forget_validation(&self, check: &str) {
        self.validated().remove(check);
    }

    /// True while the scheduler loop runs.
    pub fn scheduling(&self) -> bool {
        self.driver.running.load(Ordering::Relaxed)
    }

    /// Runs in flight.
    pub fn in_flight(&self) -> usize {
        self.gate.in_flight.load(Ordering::Relaxed)
    }

    /// The scheduler loop; returns when `shutdown` turns true.
    pub async fn run_scheduler(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        self.driver.running.store(true, Ordering::Relaxed);
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
                self.dispatch(d);
            }
            let max = limits::SCHEDULER_MAX_SLEEP;
            let wait = next
                .map(|t| {
                    Duration::from_millis((t - now_ms()).clamp(0, max.as_millis() as i64) as u64)
                })
                .unwrap_or(max);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.driver.wake.notified() => {}
                _ = shutdown.changed() => {}
            }
        }
        self.driver.running.store(false, Ordering::Relaxed);
    }

    /// Starts a manual run and waits for its outcome.
    pub async fn run_now(self: &Arc<Self>, check: &str) -> Result<Arc<RunOutcome>, ManualError> {
        let d = self.core().manual(check, now_ms())?;
        // Spawned, so a client that hangs up does not cancel the run
        // half-way (it is still recorded, and counted out of in-flight).
        let run = tokio::spawn(self.clone().execute(d.clone()));
        let outcome = match run.await {
            Ok(run) => run.await,
            Err(e) => Err(e),
        };
        Ok(match outcome {
            Ok(outcome) => outcome,
            Err(e) => Arc::new(RunOutcome::unknown(
                &d.check,
                "",
                format!("the run was lost: {e}"),
                SystemTime::now(),
                d.attempt,
            )),
        })
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
            state_quota: check.config.state_quota,
            action: None,
        }
    }

    /// Runs `d`: waits for its place under the gate where it is called
    /// (the agent's runtime), then the run, its recording and the
    /// scheduler's bookkeeping go to the plugin executor, in one hop. The
    /// handle gives the outcome (scheduled runs do not wait for it).
    async fn execute(self: Arc<Self>, d: Dispatch) -> tokio::task::JoinHandle<Arc<RunOutcome>> {
        if let Some(plugin) = self.compiling_plugin(&d.check) {
            self.registry.wait_for(&plugin).await;
        }
        self.gate.in_flight.fetch_add(1, Ordering::SeqCst);
        let permit = self.gate.limit.clone().acquire(&d.check).await;
        self.conclude_on_executor(d, permit)
    }

    /// A scheduled run: straight to the executor when its place is free
    /// now, else queued at the gate and started on the executor by the
    /// run that frees a place (no hop back here: 9,1xx against 7,2xx
    /// stored runs/s under saturation when the waiter was a task here).
    fn dispatch(self: &Arc<Self>, d: Dispatch) {
        // Its plugin still compiling at start: the run waits for it (the
        // due time is kept), without a place at the gate.
        if let Some(plugin) = self.compiling_plugin(&d.check) {
            let agent = self.clone();
            tokio::spawn(async move {
                agent.registry.wait_for(&plugin).await;
                agent.dispatch(d);
            });
            return;
        }
        self.gate.in_flight.fetch_add(1, Ordering::SeqCst);
        // Weak: work queued at the gate must not keep a stopped agent.
        let agent = Arc::downgrade(self);
        let check = d.check.clone();
        self.gate.limit.admit(&check, move |permit| {
            if let Some(agent) = agent.upgrade() {
                agent.conclude_on_executor(d, permit);
            }
        });
    }

    /// The plugin of `check` if it is still compiling.
    fn compiling_plugin(&self, check: &str) -> Option<String> {
        if self.registry.compiling().is_empty() {
            return None;
        }
        let checks = self.checks();
        let plugin = &checks.get(check)?.config.plugin;
        self.registry.is_compiling(plugin).then(|| plugin.clone())
    }

    /// Re-reads the schedules that come from plugins' defaults (checks
    /// that name none), once their plugins have loaded.
    pub(crate) fn refresh_default_schedules(&self) {
        let checks = self.checks();
        let mut changed = Vec::new();
        for c in checks.values().filter(|c| c.config.schedule.is_none()) {
            let fresh = Check::new(&c.config, &self.registry);
            if fresh.schedule_text != c.schedule_text || fresh.offset != c.offset {
                changed.push(fresh);
            }
        }
        if changed.is_empty() {
            return;
        }
        let mut map = (*checks).clone();
        let now = now_ms();
        {
            let mut core = self.core();
            for c in &changed {
                core.update(c.slot(), now);
            }
        }
        for c in changed {
            map.insert(c.config.name.clone(), c);
        }
        self.set_config(self.config(), map);
        self.driver.wake.notify_one();
    }

    /// With its place taken: resolves the run's request, and runs, records
    /// and accounts it on the executor. Never frees the place here (a
    /// freed place may start queued work, which would recurse).
    fn conclude_on_executor(
        self: &Arc<Self>,
        d: Dispatch,
        permit: Permit,
    ) -> tokio::task::JoinHandle<Arc<RunOutcome>> {
        if !d.manual {
            self.telemetry
                .observe_lateness((now_ms() - d.due_ms).max(0) as f64 / 1000.0);
        }
        let admission = self.prepare(&d);
        let agent = self.clone();
        self.executor.spawn(async move {
            let outcome = agent.conclude(&d, admission, permit).await;
            // The driver sleeps to the next due time; a retry due sooner
            // wakes it (a wake per run costs a thread hop per run).
            if agent.core().finished(&d, outcome.status, now_ms()) {
                agent.driver.wake.notify_one();
            }
            if agent.gate.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
                agent.gate.idle.notify_waiters();
            }
            outcome
        })
    }

    /// The run's request, or the outcome of a run that cannot start.
    fn prepare(&self, d: &Dispatch) -> Result<RunRequest, Box<RunOutcome>> {
        let checks = self.checks();
        let Some(check) = checks.get(&d.check) else {
            return Err(Box::new(RunOutcome::unknown(
                &d.check,
                "",
                format!("no check named {:?}", d.check),
                SystemTime::now(),
                d.attempt,
            )));
        };
        let mut request = Self::request(check, d);
        // `${output:CHECK.KEY}`: the other check's current value, or an
        // unknown run saying which output is missing.
        let resolved =
            crate::references::resolve(&request.config, |c, k| self.store.output_value(c, k));
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
                return Err(Box::new(outcome));
            }
        }
        Ok(request)
    }

    /// Runs an admitted request (on the executor) and records it.
    async fn conclude(
        &self,
        d: &Dispatch,
        admission: Result<RunRequest, Box<RunOutcome>>,
        permit: Permit,
    ) -> Arc<RunOutcome> {
        let checks = self.checks();
        let (check, request) = match (checks.get(&d.check), admission) {
            (Some(check), Ok(request)) => (check, request),
            (Some(check), Err(outcome)) => {
                drop(permit);
                return self.finish(check, d, *outcome).await;
            }
            (None, Err(outcome)) => return Arc::new(*outcome),
            // Removed by a reload while it waited for its place.
            (None, Ok(request)) => {
                return Arc::new(RunOutcome::unknown(
                    &d.check,
                    "",
                    "the check was removed by a configuration reload before it ran".into(),
                    request.scheduled,
                    d.attempt,
                ));
            }
        };
        let outcome = match self.registry.get(&check.config.plugin) {
            Some(plugin) => match self.refusal(check, &plugin).await {
                Some(refusal) => RunOutcome::unknown(
                    &check.config.name,
                    &check.config.plugin,
                    refusal,
                    request.scheduled,
                    d.attempt,
                ),
                None => {
                    // `execute` runs on the executor already.
                    let started = std::time::Instant::now();
                    // A plugin that can split a run gets the places free
                    // now, up to the check's `shards` (one per core by
                    // default), given back when the run ends.
                    let more = if plugin.shardable {
                        let want = check.config.shards.unwrap_or(self.executor.threads());
                        self.gate
                            .limit
                            .try_more(&d.check, want.saturating_sub(1) as usize)
                    } else {
                        Vec::new()
                    };
                    let shards = 1 + more.len() as u32;
                    let outcome = crate::executor::catch_panic(
                        self.runtime.run_sharded(&plugin, &request, shards),
                    )
                    .await
                    .unwrap_or_else(|fault| {
                        RunOutcome::unknown(
                            &check.config.name,
                            &check.config.plugin,
                            fault,
                            request.scheduled,
                            d.attempt,
                        )
                    });
                    drop(more);
                    self.gate.limit.record(&d.check, started.elapsed());
                    outcome
                }
            },
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

    /// Decides the check's next health, records the run, renders the
    /// outputs file, updates the live view.
    async fn finish(
        &self,
        check: &Check,
        d: &Dispatch,
        mut outcome: RunOutcome,
    ) -> Arc<RunOutcome> {
        self.acks.apply(&mut outcome);
        let outcome = Arc::new(outcome);
        let now = now_ms();
        // Health and notifications are decided under one lock, so the
        // notice tick cannot tell the same change twice.
        let (health, transition, notifications, told_before, before_status) = {
            let mut live = self.live();
            let before = live
                .get(&d.check)
                .and_then(|l| l.health.clone())
                .unwrap_or_default();
            let (mut health, transition) = before.apply(
                outcome.status,
                outcome.finished_unix_ms as i64,
                check.config.failure_threshold,
                check.config.success_threshold,
            );
            let flap = health.flap.observe(outcome.status, check.config.flapping);
            // A check's first hard status is no transition, but a problem
            // there from the start is one to tell (or to record as held).
            let shown = transition.or_else(|| {
                (before.since_ms == 0 && health.since_ms != 0 && health.status != Status::Ok)
                    .then_some(crate::health::Transition {
                        from: Status::Ok,
                        to: health.status,
                    })
            });
            let (rows, told) = self.notices_after_run(
                &mut live,
                &check.config,
                &outcome,
                &health,
                shown,
                flap,
                now,
            );
            if let Some(l) = live.get_mut(&d.check) {
                l.recording = true;
            }
            if let Some(change) = flap {
                tracing::warn!(check = %d.check, percent = health.flap.percent(), "{}", match change {
                    crate::flapping::Change::Started => "check is flapping; its notifications are held until it settles",
                    crate::flapping::Change::Stopped => "check stopped flapping",
                });
            }
            (health, shown, rows, told, before.last_status)
        };
        let notify = notifications.iter().any(|n| n.suppressed.is_none());
        let record = RunRecord {
            outcome: outcome.clone(),
            manual: d.manual,
            due_ms: (!d.manual).then_some(d.due_ms),
            health: health.clone(),
            notifications,
            transition,
        };
        match self.store.record(record).await {
            Ok(recorded) => {
                if notify {
                    self.alerting.wake.notify_one();
                }
                if let Some(t) = transition {
                    let summary = warden_text::escape::escape(&outcome.summary);
                    tracing::warn!(check = %d.check, from = t.from.label(), to = t.to.label(), summary = %summary, "check changed state");
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
                l.health = Some(health);
                l.runs_by_status[outcome.status.index()] += 1;
                l.last = Some(outcome.clone());
                l.recording = false;
                drop(live);
                self.fire_actions(&check.config, &outcome, before_status, transition);
            }
            Err(e) => {
                // Not stored, so nothing was told.
                if let Some(l) = self.live().get_mut(&d.check) {
                    l.told = told_before;
                    l.recording = false;
                }
                tracing::error!(check = %d.check, error = %format!("{e:#}"), "cannot record the run")
            }
        }
        outcome
    }

    /// Why `check` must not run on this version of `plugin`: the plugin
    /// refused its config. Asked once per plugin version (at start, and
    /// before the first run after a new version loads).
    pub(crate) async fn refusal(
        &self,
        check: &Check,
        plugin: &Arc<warden_runtime::Plugin>,
    ) -> Option<String> {
        if let Some((sha, refusal)) = self.validated().get(&check.config.name)
            && *sha == plugin.sha256
        {
            return refusal.clone();
        }
        let (runtime, p, config, memory) = (
            self.runtime.clone(),
            plugin.clone(),
            check.config.config_json.clone(),
            check.config.memory,
        );
        let verdict = self
            .executor
            .run(async move { runtime.validate(&p, &config, memory).await })
            .await
            .unwrap_or_else(Err);
        let refusal = verdict.err().map(|e| {
            tracing::error!(check = %check.config.name, plugin = %check.config.plugin, error = %warden_text::escape::escape(&e), "the plugin refuses this check's config; the check will not run until the config or the plugin changes");
            format!("the plugin refused this check's config: {e}")
        });
        self.validated().insert(
            check.config.name.clone(),
            (plugin.sha256.clone(), refusal.clone()),
        );
        refusal
    }

    fn validated(&self) -> MutexGuard<'_, HashMap<String, (String, Option<String>)>> {
        self.validated.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits for runs in flight to finish, up to `grace`; true if all did.
    pub async fn drain(&self, grace: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + grace;
        loop {
            let idle = self.gate.idle.notified();
            if self.in_flight() == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, idle).await.is_err() {
                return self.in_flight() == 0;
            }
        }
    }
}

//! The sandboxed plugin runtime: loading a component into a [`Plugin`]
//! (sha256, compile or cache, link, `describe`), and running it
//! ([`Runtime::run`]) in a fresh instance per run with the check's grants,
//! its deadline, its memory limit and the report caps.
//!
//! Every way a run can go wrong (trap, timeout, memory, oversized report,
//! refused request, plugin error) becomes a [`RunOutcome`] with status
//! `unknown` and a reason that names the cause; nothing escapes to the
//! caller as a panic or an error, so one bad plugin never disturbs others.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, anyhow, bail};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tracing::Instrument as _;
use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime::{ResourceLimiter, Trap};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::caps::Grants;
use crate::caps::http::Egress;
use crate::caps::log::{Captured, Level, RunLog};
use crate::caps::state::StateSession;
use crate::engine::WardenEngine;
use crate::limits;
use crate::report::{Finding, Metric, Output, PluginInfo, Report, Status};
use crate::store::Store;

mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "warden:plugin/plugin",
        imports: { "warden:plugin/tls.peer-certificates": async },
        exports: { default: async },
        with: {
            "wasi:io": wasmtime_wasi::p2::bindings::io,
            "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
            "wasi:filesystem": wasmtime_wasi::p2::bindings::filesystem,
            "wasi:cli": wasmtime_wasi::p2::bindings::cli,
            "wasi:random": wasmtime_wasi::p2::bindings::random,
            "wasi:http": wasmtime_wasi_http::p2::bindings::http,
        },
    });
}

use bindings::warden::plugin::host;
/// Generated types of `warden:plugin/tls`.
pub(crate) use bindings::warden::plugin::tls as tls_bindings;
/// Generated types of `warden:plugin/types`.
pub(crate) use bindings::warden::plugin::types as wit;

/// The name of the interface every plugin's world is built around, for
/// error messages.
pub const WORLD: &str = "warden:plugin/plugin@0.1.0";
const REQUIRED_EXPORTS: [&str; 3] = ["describe", "validate", "run"];

/// Store data of one instance: WASI, HTTP, the host services and the
/// memory guard.
pub struct RunState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    egress: Egress,
    host: HostServices,
    memory: MemoryGuard,
}

impl WasiView for RunState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for RunState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.egress,
        }
    }
}

/// `warden:plugin/host` for one run.
pub struct HostServices {
    log: RunLog,
    state: StateSession,
}

impl host::Host for HostServices {
    fn log(&mut self, level: host::LogLevel, message: String, fields: Vec<wit::Pair>) {
        let level = match level {
            host::LogLevel::Trace => Level::Trace,
            host::LogLevel::Debug => Level::Debug,
            host::LogLevel::Info => Level::Info,
            host::LogLevel::Warn => Level::Warn,
            host::LogLevel::Error => Level::Error,
        };
        let fields: Vec<(String, String)> = fields.into_iter().map(|p| (p.name, p.value)).collect();
        self.log.record(level, &message, &fields);
    }

    fn state_get(&mut self, key: String) -> Option<String> {
        self.state.get(&key)
    }

    fn state_set(&mut self, key: String, value: String) -> Result<(), String> {
        self.state.set(key, value)
    }

    fn state_delete(&mut self, key: String) {
        self.state.delete(key)
    }
}

impl wit::Host for HostServices {}

/// Caps linear memory and tables; remembers a refused growth so the run's
/// error can name the limit instead of the allocator's abort.
struct MemoryGuard {
    limit: usize,
    refused: Option<usize>,
}

impl ResourceLimiter for MemoryGuard {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limit {
            self.refused = Some(desired);
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

/// Where a plugin came from, for messages and the API.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", content = "value", rename_all = "lowercase")]
pub enum Origin {
    /// A file on disk.
    File(PathBuf),
    /// A standard plugin embedded in the agent.
    Embedded(String),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::File(p) => write!(f, "{}", p.display()),
            Origin::Embedded(name) => write!(f, "standard plugin {name}"),
        }
    }
}

/// A loaded, linked plugin, ready to instantiate for each run.
pub struct Plugin {
    /// Hex sha256 of the component bytes.
    pub sha256: String,
    /// Size of the component in bytes.
    pub size: u64,
    /// Where it came from.
    pub origin: Origin,
    /// What `describe` returned.
    pub info: PluginInfo,
    /// Interfaces the component imports.
    pub imports: Vec<String>,
    /// True when the compiled code came from the on-disk cache.
    pub from_cache: bool,
    pre: bindings::PluginPre<RunState>,
}

/// One run to perform.
#[derive(Debug, Clone)]
pub struct RunRequest {
    /// Check name (scopes state, tags logs).
    pub check: String,
    /// The check's config as a JSON object.
    pub config: String,
    /// The due time.
    pub scheduled: SystemTime,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// Wall-clock budget.
    pub timeout: Duration,
    /// Linear-memory limit in bytes.
    pub memory: u64,
    /// What the check grants.
    pub grants: Grants,
}

/// What happened in a run.
#[derive(Debug, Clone, Serialize)]
pub struct RunOutcome {
    /// Run id (unique within this agent process).
    pub run_id: String,
    /// Check name.
    pub check: String,
    /// Plugin name.
    pub plugin: String,
    /// Plugin sha256.
    pub plugin_sha256: String,
    /// Verdict.
    pub status: Status,
    /// One line.
    pub summary: String,
    /// Why the run is `unknown`, when the agent or plugin failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Metrics reported.
    pub metrics: Vec<Metric>,
    /// Findings reported.
    pub findings: Vec<Finding>,
    /// Outputs published.
    pub outputs: Vec<Output>,
    /// Due time, ms since the epoch.
    pub scheduled_unix_ms: u64,
    /// Start, ms since the epoch.
    pub started_unix_ms: u64,
    /// End, ms since the epoch.
    pub finished_unix_ms: u64,
    /// Duration in seconds.
    pub duration_seconds: f64,
    /// Attempt number.
    pub attempt: u32,
    /// Outgoing HTTP requests attempted.
    pub http_requests: u32,
    /// Requests or responses the sandbox refused.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub refusals: Vec<String>,
}

impl RunOutcome {
    /// An `unknown` outcome for a run that could not start (no plugin, no
    /// check), with its reason.
    pub fn unknown(
        check: &str,
        plugin: &str,
        reason: String,
        scheduled: SystemTime,
        attempt: u32,
    ) -> RunOutcome {
        let now = unix_ms(SystemTime::now());
        let n = RUN_COUNTER.fetch_add(1, Ordering::Relaxed);
        RunOutcome {
            run_id: format!("{now:x}-{n}"),
            check: check.to_string(),
            plugin: plugin.to_string(),
            plugin_sha256: String::new(),
            status: Status::Unknown,
            summary: reason.clone(),
            error: Some(reason),
            metrics: Vec::new(),
            findings: Vec::new(),
            outputs: Vec::new(),
            scheduled_unix_ms: unix_ms(scheduled),
            started_unix_ms: now,
            finished_unix_ms: now,
            duration_seconds: 0.0,
            attempt,
            http_requests: 0,
            refusals: Vec::new(),
        }
    }
}

/// Options for [`Runtime::new`].
#[derive(Default)]
pub struct RuntimeOptions {
    /// Where compiled components are cached (none: always compile).
    pub cache_dir: Option<PathBuf>,
    /// The store that keeps per-check state (none: state lives only for
    /// the run).
    pub store: Option<Store>,
}

/// The engine, the linker and the stores: everything needed to load and
/// run plugins. Shared by reference; runs may proceed concurrently.
pub struct Runtime {
    engine: WardenEngine,
    linker: Linker<RunState>,
    cache_dir: Option<PathBuf>,
    store: Option<Store>,
}

/// The sandbox of one instance: whose state, what grants, which limits.
struct Sandbox<'a> {
    check: &'a str,
    grants: &'a Grants,
    memory: u64,
    timeout: Duration,
    persistent_state: bool,
}

impl Sandbox<'_> {
    /// For `describe`/`validate`: no grants, default memory, a short
    /// deadline, no persistent state.
    fn quick(purpose: &'static str) -> Sandbox<'static> {
        static NONE: std::sync::OnceLock<Grants> = std::sync::OnceLock::new();
        Sandbox {
            check: purpose,
            grants: NONE.get_or_init(Grants::none),
            memory: limits::DEFAULT_MEMORY,
            timeout: limits::DESCRIBE_TIMEOUT,
            persistent_state: false,
        }
    }
}

/// The captured stdout and stderr of one instance.
#[derive(Default)]
struct Stdio {
    out: Captured,
    err: Captured,
}

/// Hex sha256 of plugin bytes: a plugin's identity everywhere.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

static RUN_COUNTER: AtomicU64 = AtomicU64::new(0);

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Runtime {
    /// Builds the engine and the linker with every host capability.
    pub fn new(options: RuntimeOptions) -> Result<Runtime> {
        let engine = WardenEngine::new()?;
        let mut linker = Linker::new(engine.engine());
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(anyhow::Error::from)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
            .map_err(anyhow::Error::from)?;
        host::add_to_linker::<RunState, HasSelf<HostServices>>(&mut linker, |s| &mut s.host)
            .map_err(anyhow::Error::from)?;
        wit::add_to_linker::<RunState, HasSelf<HostServices>>(&mut linker, |s| &mut s.host)
            .map_err(anyhow::Error::from)?;
        tls_bindings::add_to_linker::<RunState, HasSelf<Egress>>(&mut linker, |s| &mut s.egress)
            .map_err(anyhow::Error::from)?;
        Ok(Runtime {
            engine,
            linker,
            cache_dir: options.cache_dir,
            store: options.store,
        })
    }

    /// The engine wrapper (allocation mode, for reports and benchmarks).
    pub fn engine(&self) -> &WardenEngine {
        &self.engine
    }

    /// Loads a component: checks it is one, compiles it (or loads it from
    /// the cache), links it against the host, and calls `describe`.
    pub async fn load(&self, bytes: &[u8], origin: Origin) -> Result<Plugin> {
        let sha256 = sha256_hex(bytes);
        if !wasmparser::Parser::is_component(bytes) {
            if wasmparser::Parser::is_core_wasm(bytes) {
                bail!(
                    "{origin} is a core WebAssembly module, not a component; build plugins for \
                     wasm32-wasip2 (or wrap the module with `wasm-tools component new`)"
                );
            }
            bail!("{origin} is not a WebAssembly component (bad magic number or truncated file)");
        }
        let compile = || {
            self.engine
                .load_component(bytes, &sha256, self.cache_dir.as_deref())
        };
        // Compiling takes a core for a while; let the scheduler's other
        // tasks move to another worker meanwhile.
        let compiled = match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
            Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(compile),
            _ => compile(),
        };
        let (component, from_cache) =
            compiled.with_context(|| format!("{origin} failed to compile"))?;
        let ty = component.component_type();
        let engine = self.engine.engine();
        let imports: Vec<String> = ty
            .imports(engine)
            .map(|(name, _)| name.to_string())
            .collect();
        let exports: Vec<String> = ty
            .exports(engine)
            .map(|(name, _)| name.to_string())
            .collect();
        let missing: Vec<&str> = REQUIRED_EXPORTS
            .iter()
            .copied()
            .filter(|e| !exports.iter().any(|x| x == e))
            .collect();
        if !missing.is_empty() {
            bail!(
                "{origin} does not target the world {WORLD}: missing export(s) {}; it exports [{}]",
                missing.join(", "),
                exports.join(", ")
            );
        }
        let instance_pre = self.linker.instantiate_pre(&component).map_err(|e| {
            anyhow!("{origin} cannot be linked: {e:#} (Warden provides {WORLD} imports only; sockets are not granted)")
        })?;
        let pre = bindings::PluginPre::new(instance_pre)
            .map_err(|e| anyhow!("{origin} does not match the world {WORLD}: {e:#}"))?;
        let mut plugin = Plugin {
            sha256,
            size: bytes.len() as u64,
            origin,
            info: PluginInfo {
                name: String::new(),
                version: String::new(),
                description: String::new(),
                default_schedule: None,
                config_schema: serde_json::Value::Null,
                capabilities: Vec::new(),
            },
            imports,
            from_cache,
            pre,
        };
        plugin.info = self.describe(&plugin).await?;
        Ok(plugin)
    }

    fn new_store(&self, sandbox: Sandbox<'_>, stdio: &Stdio) -> Result<wasmtime::Store<RunState>> {
        let Sandbox {
            check,
            grants,
            memory,
            timeout,
            persistent_state,
        } = sandbox;
        let mut b = WasiCtxBuilder::new();
        b.stdout(stdio.out.clone()).stderr(stdio.err.clone());
        b.allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        grants.files().apply(&mut b)?;
        grants.env().apply(&mut b);
        let state = RunState {
            wasi: b.build(),
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            egress: Egress::new(grants.http().clone()),
            host: HostServices {
                log: RunLog::default(),
                state: StateSession::new(
                    if persistent_state {
                        self.store.clone()
                    } else {
                        None
                    },
                    check,
                ),
            },
            memory: MemoryGuard {
                limit: memory.min(limits::MAX_MEMORY) as usize,
                refused: None,
            },
        };
        let mut store = wasmtime::Store::new(self.engine.engine(), state);
        store.limiter(|s| &mut s.memory);
        store.set_epoch_deadline(WardenEngine::ticks(timeout));
        store.epoch_deadline_trap();
        Ok(store)
    }

    async fn describe(&self, plugin: &Plugin) -> Result<PluginInfo> {
        let stdio = Stdio::default();
        let mut store = self.new_store(Sandbox::quick("describe"), &stdio)?;
        let call = async {
            let instance = plugin.pre.instantiate_async(&mut store).await?;
            instance.call_describe(&mut store).await
        };
        let info =
            match tokio::time::timeout(limits::DESCRIBE_TIMEOUT + limits::HOST_CALL_GRACE, call)
                .await
            {
                Err(_) => bail!(
                    "{}: describe did not return within {:?}",
                    plugin.origin,
                    limits::DESCRIBE_TIMEOUT
                ),
                Ok(Err(e)) => {
                    let why = explain_trap(&e, &store, limits::DESCRIBE_TIMEOUT, &stdio.err);
                    bail!("{}: describe failed: {why}", plugin.origin)
                }
                Ok(Ok(info)) => info,
            };
        PluginInfo::from_wit(info).map_err(|e| anyhow!("{}: {e}", plugin.origin))
    }

    /// Asks the plugin whether a check's config is acceptable, without
    /// running the check. `Err` carries the plugin's message.
    pub async fn validate(&self, plugin: &Plugin, config: &str) -> Result<(), String> {
        let stdio = Stdio::default();
        let mut store = self
            .new_store(Sandbox::quick("validate"), &stdio)
            .map_err(|e| format!("sandbox setup failed: {e:#}"))?;
        let call = async {
            let instance = plugin.pre.instantiate_async(&mut store).await?;
            instance.call_validate(&mut store, config).await
        };
        match tokio::time::timeout(limits::DESCRIBE_TIMEOUT + limits::HOST_CALL_GRACE, call).await {
            Err(_) => Err(format!(
                "validate did not return within {:?}",
                limits::DESCRIBE_TIMEOUT
            )),
            Ok(Err(e)) => Err(format!(
                "validate failed: {}",
                explain_trap(&e, &store, limits::DESCRIBE_TIMEOUT, &stdio.err)
            )),
            Ok(Ok(r)) => r,
        }
    }

    /// Runs the plugin once in a fresh instance. Never fails: every failure
    /// is an `unknown` outcome with its reason.
    pub async fn run(&self, plugin: &Plugin, req: &RunRequest) -> RunOutcome {
        let n = RUN_COUNTER.fetch_add(1, Ordering::Relaxed);
        let started = SystemTime::now();
        let run_id = format!("{:x}-{n}", unix_ms(started));
        let span = tracing::info_span!("run", check = %req.check, run_id = %run_id, plugin = %plugin.info.name);
        self.run_inner(plugin, req, run_id, started)
            .instrument(span)
            .await
    }

    async fn run_inner(
        &self,
        plugin: &Plugin,
        req: &RunRequest,
        run_id: String,
        started: SystemTime,
    ) -> RunOutcome {
        let t0 = Instant::now();
        let timeout = req.timeout.min(limits::MAX_TIMEOUT);
        let deadline = started + timeout;
        let stdio = Stdio::default();
        let mut outcome = RunOutcome {
            run_id,
            check: req.check.clone(),
            plugin: plugin.info.name.clone(),
            plugin_sha256: plugin.sha256.clone(),
            status: Status::Unknown,
            summary: String::new(),
            error: None,
            metrics: Vec::new(),
            findings: Vec::new(),
            outputs: Vec::new(),
            scheduled_unix_ms: unix_ms(req.scheduled),
            started_unix_ms: unix_ms(started),
            finished_unix_ms: 0,
            duration_seconds: 0.0,
            attempt: req.attempt,
            http_requests: 0,
            refusals: Vec::new(),
        };
        let sandbox = Sandbox {
            check: &req.check,
            grants: &req.grants,
            memory: req.memory,
            timeout,
            persistent_state: true,
        };
        let mut store = match self.new_store(sandbox, &stdio) {
            Ok(s) => s,
            Err(e) => {
                return finish(outcome, Err(format!("sandbox setup failed: {e:#}")), t0);
            }
        };
        let ctx = wit::RunContext {
            check: req.check.clone(),
            config: req.config.clone(),
            scheduled_unix_ms: outcome.scheduled_unix_ms,
            attempt: req.attempt,
            deadline_unix_ms: unix_ms(deadline),
        };
        let call = async {
            let instance = plugin.pre.instantiate_async(&mut store).await?;
            instance.call_run(&mut store, &ctx).await
        };
        let result = tokio::time::timeout(timeout + limits::HOST_CALL_GRACE, call).await;

        let data = store.data();
        outcome.http_requests = data.egress.requests();
        outcome.refusals = data.egress.refusals();
        let result: Result<Report, String> = match result {
            Err(_) => Err(format!(
                "timed out after {} (the check's timeout) while waiting on a host call",
                humanize(timeout)
            )),
            Ok(Err(trap)) => Err(explain_trap(&trap, &store, timeout, &stdio.err)),
            Ok(Ok(Err(message))) => {
                Err(format!("plugin error: {}", crate::redact::words(&message)))
            }
            Ok(Ok(Ok(report))) => Report::from_wit(report),
        };
        let committed = match &result {
            Ok(_) => true,
            // The plugin returned normally (with an error): its state
            // changes stand, like any other result of the run.
            Err(e) => e.starts_with("plugin error: "),
        };
        forward_stdio(&stdio);
        let dropped = store.data().host.log.dropped();
        if dropped > 0 {
            tracing::warn!(
                dropped,
                "plugin log records over the per-run limit were dropped"
            );
        }
        if committed {
            let state = std::mem::replace(
                &mut store.data_mut().host.state,
                StateSession::new(None, ""),
            );
            if let Err(e) = state.commit() {
                return finish(
                    outcome,
                    Err(format!("storing the check's state failed: {e:#}")),
                    t0,
                );
            }
        }
        finish(outcome, result, t0)
    }
}

fn finish(mut outcome: RunOutcome, result: Result<Report, String>, t0: Instant) -> RunOutcome {
    let elapsed = t0.elapsed();
    outcome.duration_seconds = elapsed.as_secs_f64();
    outcome.finished_unix_ms = outcome.started_unix_ms + elapsed.as_millis() as u64;
    match result {
        Ok(report) => {
            outcome.status = report.status;
            outcome.summary = crate::redact::words(&report.summary);
            outcome.metrics = report.metrics;
            // Messages are free text: the same masking as summaries.
            outcome.findings = report
                .findings
                .into_iter()
                .map(|mut f| {
                    f.message = crate::redact::words(&f.message);
                    f
                })
                .collect();
            outcome.outputs = report.outputs;
        }
        Err(reason) => {
            // One line, bounded: it is shown in terminals, logs and the API.
            let reason = reason.split_whitespace().collect::<Vec<_>>().join(" ");
            let reason = crate::caps::log::truncate(&reason, limits::MAX_FIELD_BYTES);
            outcome.status = Status::Unknown;
            outcome.summary = reason.clone();
            outcome.error = Some(reason);
        }
    }
    match outcome.status {
        Status::Ok => tracing::debug!(
            status = "ok",
            duration = outcome.duration_seconds,
            "{}",
            outcome.summary
        ),
        s => tracing::info!(
            status = s.label(),
            duration = outcome.duration_seconds,
            "{}",
            outcome.summary
        ),
    }
    outcome
}

/// Why a call into the plugin failed, naming the limit when one was hit.
fn explain_trap(
    err: &wasmtime::Error,
    store: &wasmtime::Store<RunState>,
    timeout: Duration,
    stderr: &Captured,
) -> String {
    if let Some(asked) = store.data().memory.refused {
        return format!(
            "memory limit of {} exceeded (the plugin tried to grow to {})",
            humanize_bytes(store.data().memory.limit as u64),
            humanize_bytes(asked as u64)
        );
    }
    if let Some(trap) = err.downcast_ref::<Trap>()
        && *trap == Trap::Interrupt
    {
        return format!(
            "timed out after {} (the check's timeout)",
            humanize(timeout)
        );
    }
    if let Some(exit) = err.downcast_ref::<wasmtime_wasi::I32Exit>() {
        return format!(
            "plugin exited with code {} instead of returning a report",
            exit.0
        );
    }
    let (text, _) = stderr.contents();
    if let Some(panic) = panic_message(&text) {
        return format!("plugin panicked: {}", crate::redact::words(&panic));
    }
    let root = err.root_cause().to_string();
    let root = if root.is_empty() {
        format!("{err}")
    } else {
        root
    };
    format!("plugin trapped: {}", crate::redact::words(&root))
}

/// The message of a Rust panic as the standard hook prints it.
fn panic_message(stderr: &str) -> Option<String> {
    let start = stderr.find("panicked at ")?;
    let rest = &stderr[start + "panicked at ".len()..];
    let (location, message) = rest.split_once(":\n").unwrap_or((rest, ""));
    let message: Vec<&str> = message
        .lines()
        .take_while(|l| !l.starts_with("note: "))
        .collect();
    Some(format!(
        "{} (at {})",
        message.join(" ").trim(),
        location.trim()
    ))
}

fn forward_stdio(stdio: &Stdio) {
    for (name, cap) in [("stdout", &stdio.out), ("stderr", &stdio.err)] {
        let (text, dropped) = cap.contents();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            tracing::info!(target: "plugin", stream = name, "{}", crate::redact::words(line));
        }
        if dropped > 0 {
            tracing::warn!(
                stream = name,
                dropped,
                "plugin output over the per-run limit was dropped"
            );
        }
    }
}

/// `1.5s`, `250ms`, `2m`.
pub fn humanize(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{:.3}s", d.as_secs_f64())
    }
}

/// `64 MiB`, `512 KiB`, `100 B`.
pub fn humanize_bytes(n: u64) -> String {
    if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
        format!("{} MiB", n >> 20)
    } else if n >= 1 << 20 {
        format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64)
    } else if n >= 1 << 10 {
        format!("{} KiB", n >> 10)
    } else {
        format!("{n} B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_messages_are_extracted() {
        let stderr = "\nthread '<unnamed>' panicked at src/lib.rs:12:9:\nboom went the plugin\nnote: run with `RUST_BACKTRACE=1`\n";
        assert_eq!(
            panic_message(stderr).unwrap(),
            "boom went the plugin (at src/lib.rs:12:9)"
        );
        assert!(panic_message("nothing here").is_none());
    }

    #[test]
    fn durations_and_sizes_read_well() {
        assert_eq!(humanize(Duration::from_millis(250)), "250ms");
        assert_eq!(humanize(Duration::from_secs(2)), "2s");
        assert_eq!(humanize(Duration::from_secs(120)), "2m");
        assert_eq!(humanize_bytes(64 << 20), "64 MiB");
    }
}

//! Loading a component into a [`Plugin`] (sha256, compile or cache, link,
//! `describe`) and running it ([`Runtime::run`]) in a fresh instance per
//! run with the check's grants, its deadline, its memory limit and the
//! report caps.
//!
//! Every way a run can go wrong (trap, timeout, memory, oversized report,
//! refused request, plugin error) becomes a [`RunOutcome`] with status
//! `unknown` and a reason that names the cause; nothing escapes to the
//! caller as a panic or an error, so one bad plugin never disturbs others.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context as _, Result, anyhow, bail};
use rustls::pki_types::CertificateDer;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tracing::Instrument as _;
use warden_text::units::{format_duration, format_size};
use wasmtime::component::Linker;

use crate::bindings::{self, HOST_INTERFACE, WORLD, host, wit};
use crate::caps::{Grants, Parts, Sandbox, Shared, StateBackend, StateQuota};
use crate::engine::{Compiler, WardenEngine};
use crate::limits;
use crate::report::{PluginInfo, Report, RunOutcome};
use crate::sandbox::SandboxSpec;

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
    /// True when it says it may be split (a `warden:sharded` custom
    /// section holding 1, as the Rust SDK writes for `SHARDED` plugins) and
    /// imports `host.part`, so one run may be split into shards
    /// ([`Runtime::run_sharded`]).
    pub shardable: bool,
    /// The largest linear memory its core modules start with, in bytes:
    /// a check's `memory` below it can never run.
    pub initial_memory: u64,
    /// The compiler its code came from (Winch for a large component).
    pub compiler: Compiler,
    /// The engine it was compiled for, whose stores it runs in.
    engine: wasmtime::Engine,
    pre: bindings::PluginPre<Sandbox>,
}

/// What the component's core modules say of it: the largest initial
/// linear memory any of them declares, in bytes, and whether one carries
/// the `warden:sharded` custom section with a 1.
fn scan_modules(bytes: &[u8]) -> (u64, bool) {
    let (mut largest, mut sharded) = (0u64, false);
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        match payload {
            Ok(wasmparser::Payload::MemorySection(memories)) => {
                for m in memories.into_iter().flatten() {
                    let page = 1u64 << m.page_size_log2.unwrap_or(16);
                    largest = largest.max(m.initial.saturating_mul(page));
                }
            }
            Ok(wasmparser::Payload::CustomSection(c)) if c.name() == SHARDED_SECTION => {
                sharded |= c.data() == [1];
            }
            _ => {}
        }
    }
    (largest, sharded)
}

/// The custom section by which a component says one run of it may be
/// split into shards.
const SHARDED_SECTION: &str = "warden:sharded";

impl Plugin {
    /// The memory `describe` and `validate` get: `asked` (the check's
    /// limit), never less than the default nor than twice what the
    /// plugin's memory starts at (a language runtime grows while it
    /// starts), within [`limits::MAX_MEMORY`]. Runs get the check's limit
    /// alone.
    pub fn quick_memory(&self, asked: u64) -> u64 {
        quick_memory(self.initial_memory, asked)
    }
}

fn quick_memory(initial: u64, asked: u64) -> u64 {
    asked
        .max(limits::DEFAULT_MEMORY)
        .max(initial.saturating_mul(2))
        .min(limits::MAX_MEMORY)
}

impl Plugin {
    /// The outcome of a run of `req` by this plugin, starting now.
    pub(crate) fn begin(&self, req: &RunRequest) -> RunOutcome {
        RunOutcome::begin(
            &req.check,
            &self.info.name,
            &self.sha256,
            req.scheduled,
            req.attempt,
        )
    }
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
    /// How much plugin state the check may keep.
    pub state_quota: StateQuota,
    /// The action this run performs (`host.action`), `None` for a check.
    pub action: Option<crate::report::ActionRun>,
}

/// Options for [`Runtime::new`].
#[derive(Default)]
pub struct RuntimeOptions {
    /// Where compiled components are cached (none: always compile).
    pub cache_dir: Option<PathBuf>,
    /// Where plugin state persists (none: state lives only for the run).
    pub state: Option<Arc<dyn StateBackend>>,
    /// Trust roots added to webpki's for plugins' TLS (an internal CA; see
    /// [`crate::parse_pem`]).
    pub extra_roots: Vec<CertificateDer<'static>>,
}

/// The engine, the linker and what runs share: everything needed to load
/// and run plugins. Shared by reference; runs may proceed concurrently.
pub struct Runtime {
    engine: WardenEngine,
    linker: Linker<Sandbox>,
    /// The Winch engine and its linker, made when the first large
    /// component loads.
    large: std::sync::OnceLock<Result<(WardenEngine, Linker<Sandbox>), String>>,
    /// Components of this many bytes or more are compiled with Winch.
    large_bytes: usize,
    cache_dir: Option<PathBuf>,
    shared: Shared,
    /// Where a sharded run's shards are spawned (see
    /// [`Runtime::place_shards`]).
    pub(crate) shard_placer: std::sync::OnceLock<ShardPlacer>,
}

/// Gives the tokio runtime each shard of a run is spawned on.
pub type ShardPlacer = Box<dyn Fn() -> tokio::runtime::Handle + Send + Sync>;

fn linker(engine: &WardenEngine) -> Result<Linker<Sandbox>> {
    let mut linker = Linker::new(engine.engine());
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(anyhow::Error::from)?;
    Parts::link(&mut linker)?;
    Ok(linker)
}

/// Hex sha256 of plugin bytes: a plugin's identity everywhere.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// How a call into the plugin ended.
enum Ended {
    /// `run` returned a report within the caps (and, for a shard, the
    /// report as written, for the merge).
    Report(Report, Option<wit::Report>),
    /// `run` returned an error: the plugin's own verdict on this run.
    PluginError(String),
    /// The sandbox stopped it or refused its report.
    Broke(String),
}

impl Runtime {
    /// Builds the engine and the linker with WASI and every host
    /// capability.
    pub fn new(options: RuntimeOptions) -> Result<Runtime> {
        let engine = WardenEngine::new()?;
        let linker = linker(&engine)?;
        Ok(Runtime {
            engine,
            linker,
            large: std::sync::OnceLock::new(),
            large_bytes: limits::LARGE_COMPONENT_BYTES,
            cache_dir: options.cache_dir,
            shared: Shared::new(options.state, &options.extra_roots)?,
            shard_placer: std::sync::OnceLock::new(),
        })
    }

    /// Spawns the shards of a sharded run where `placer` says (each call
    /// one shard), not on the runtime the run was called on: an executor
    /// of single-threaded lanes spreads them over its lanes this way. Set
    /// once; later calls are ignored.
    pub fn place_shards(&self, placer: ShardPlacer) {
        let _ = self.shard_placer.set(placer);
    }

    /// The engine wrapper (allocation mode, for reports and benchmarks).
    pub fn engine(&self) -> &WardenEngine {
        &self.engine
    }

    /// Compiles components of `bytes` or more with Winch (default
    /// [`limits::LARGE_COMPONENT_BYTES`]).
    pub fn with_large_component_bytes(mut self, bytes: usize) -> Runtime {
        self.large_bytes = bytes;
        self
    }

    /// The engine and linker for a component of `len` bytes: Winch's for
    /// a large one (Cranelift's when Winch's cannot be made).
    fn engine_for(&self, len: usize) -> (&WardenEngine, &Linker<Sandbox>) {
        if len >= self.large_bytes {
            let large = self.large.get_or_init(|| {
                WardenEngine::with(Compiler::Winch)
                    .and_then(|e| Ok((linker(&e)?, e)))
                    .map(|(l, e)| (e, l))
                    .map_err(|e| format!("{e:#}"))
            });
            match large {
                Ok((engine, linker)) => return (engine, linker),
                Err(e) => {
                    tracing::warn!(error = %e, "no Winch engine; compiling a large component with Cranelift")
                }
            }
        }
        (&self.engine, &self.linker)
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
        let (mut wengine, mut linker) = self.engine_for(bytes.len());
        let compile =
            |e: &WardenEngine| e.load_component(bytes, &sha256, self.cache_dir.as_deref());
        let mut compile = || match compile(wengine) {
            // Winch does not compile every component Cranelift does.
            Err(e) if wengine.compiler() == Compiler::Winch => {
                tracing::warn!(%origin, error = %format!("{e:#}"), "Winch could not compile it; compiling with Cranelift");
                (wengine, linker) = (&self.engine, &self.linker);
                compile(wengine)
            }
            other => other,
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
        let engine = wengine.engine();
        let imports: Vec<String> = ty
            .imports(engine)
            .map(|(name, _)| name.to_string())
            .collect();
        let (initial_memory, says_sharded) = scan_modules(bytes);
        let shardable = says_sharded
            && ty.imports(engine).any(|(name, item)| {
                let wasmtime::component::types::ComponentItem::ComponentInstance(instance) =
                    item.ty
                else {
                    return false;
                };
                name.starts_with(HOST_INTERFACE) && instance.get_export(engine, "part").is_some()
            });
        let shape = crate::Shape {
            imports: imports.clone(),
            exports: ty
                .exports(engine)
                .map(|(name, _)| name.to_string())
                .collect(),
        };
        let (missing, exports) = (shape.missing_exports(), shape.exports);
        if !missing.is_empty() {
            bail!(
                "{origin} does not target the world {WORLD}: missing export(s) {}; it exports [{}]",
                missing.join(", "),
                exports.join(", ")
            );
        }
        let instance_pre = linker.instantiate_pre(&component).map_err(|e| {
            anyhow!("{origin} cannot be linked: {e:#} (Warden provides {WORLD} imports only; sockets are not granted)")
        })?;
        let pre = bindings::PluginPre::new(instance_pre)
            .map_err(|e| anyhow!("{origin} does not match the world {WORLD}: {e:#}"))?;
        let info = self
            .describe(
                engine,
                &pre,
                &origin,
                quick_memory(initial_memory, limits::DEFAULT_MEMORY),
            )
            .await?;
        Ok(Plugin {
            sha256,
            size: bytes.len() as u64,
            origin,
            info,
            imports,
            from_cache,
            shardable,
            initial_memory,
            compiler: wengine.compiler(),
            engine: engine.clone(),
            pre,
        })
    }

    async fn describe(
        &self,
        engine: &wasmtime::Engine,
        pre: &bindings::PluginPre<Sandbox>,
        origin: &Origin,
        memory: u64,
    ) -> Result<PluginInfo> {
        let mut store = SandboxSpec::quick("describe", memory).build(engine, &self.shared)?;
        let call = async {
            let instance = pre.instantiate_async(&mut store).await?;
            instance.call_describe(&mut store).await
        };
        let info =
            match tokio::time::timeout(limits::DESCRIBE_TIMEOUT + limits::HOST_CALL_GRACE, call)
                .await
            {
                Err(_) => bail!(
                    "{origin}: describe did not return within {}",
                    format_duration(limits::DESCRIBE_TIMEOUT)
                ),
                Ok(Err(e)) => {
                    let why = store.data().explain(
                        &e,
                        limits::DESCRIBE_TIMEOUT,
                        limits::DESCRIBE_DEADLINE,
                    );
                    bail!("{origin}: describe failed: {why}")
                }
                Ok(Ok(info)) => info,
            };
        PluginInfo::from_wit(info).map_err(|e| anyhow!("{origin}: {e}"))
    }

    /// Asks the plugin whether a check's config is acceptable, without
    /// running the check, with the check's `memory` limit (see
    /// [`Plugin::quick_memory`]). `Err` carries the plugin's message.
    pub async fn validate(&self, plugin: &Plugin, config: &str, memory: u64) -> Result<(), String> {
        if memory < plugin.initial_memory {
            return Err(format!(
                "memory: {} is less than the {} the plugin's memory starts at; give the check memory = \"{}MiB\" or more",
                format_size(memory),
                format_size(plugin.initial_memory),
                plugin
                    .initial_memory
                    .saturating_mul(2)
                    .min(limits::MAX_MEMORY)
                    .div_ceil(1 << 20)
            ));
        }
        let mut store = SandboxSpec::quick("validate", plugin.quick_memory(memory))
            .build(&plugin.engine, &self.shared)
            .map_err(|e| format!("sandbox setup failed: {e:#}"))?;
        let call = async {
            let instance = plugin.pre.instantiate_async(&mut store).await?;
            instance.call_validate(&mut store, config).await
        };
        match tokio::time::timeout(limits::DESCRIBE_TIMEOUT + limits::HOST_CALL_GRACE, call).await {
            Err(_) => Err(format!(
                "validate did not return within {}",
                format_duration(limits::DESCRIBE_TIMEOUT)
            )),
            Ok(Err(e)) => Err(format!(
                "validate failed: {}",
                store
                    .data()
                    .explain(&e, limits::DESCRIBE_TIMEOUT, limits::DESCRIBE_DEADLINE)
            )),
            Ok(Ok(r)) => r,
        }
    }

    /// Runs the plugin once in a fresh instance. Never fails: every failure
    /// is an `unknown` outcome with its reason.
    pub async fn run(&self, plugin: &Plugin, req: &RunRequest) -> RunOutcome {
        let outcome = plugin.begin(req);
        let span = tracing::info_span!("run", check = %req.check, run_id = %outcome.run_id, plugin = %plugin.info.name);
        self.run_inner(plugin, req, outcome).instrument(span).await
    }

    async fn run_inner(
        &self,
        plugin: &Plugin,
        req: &RunRequest,
        mut outcome: RunOutcome,
    ) -> RunOutcome {
        let t0 = Instant::now();
        let timeout = req.timeout.min(limits::MAX_TIMEOUT);
        let result = self
            .execute(
                plugin,
                req,
                crate::part::Share::whole(),
                timeout,
                &mut outcome,
            )
            .await
            .map(|(report, _)| report);
        outcome.end(result, t0.elapsed());
        outcome
    }

    /// One call of `run` in a fresh instance performing `part`, within
    /// `timeout`: the accepted report (and, for a shard, the report as the
    /// plugin wrote it, for the merge) or why the run failed. What the
    /// instance did (requests, refusals) is added to `outcome`.
    pub(crate) async fn execute(
        &self,
        plugin: &Plugin,
        req: &RunRequest,
        share: crate::part::Share,
        timeout: Duration,
        outcome: &mut RunOutcome,
    ) -> Result<(Report, Option<wit::Report>), String> {
        let keep_raw = matches!(share.part, host::RunPart::Shard(_));
        let spec = SandboxSpec {
            check: &req.check,
            grants: &req.grants,
            memory: req.memory,
            timeout,
            persistent: true,
            state_quota: req.state_quota,
            share,
            action: req.action.as_ref(),
        };
        let mut store = spec
            .build(&plugin.engine, &self.shared)
            .map_err(|e| format!("sandbox setup failed: {e:#}"))?;
        let ctx = wit::RunContext {
            check: req.check.clone(),
            config: req.config.clone(),
            scheduled_unix_ms: outcome.scheduled_unix_ms,
            attempt: req.attempt,
            deadline_unix_ms: crate::report::unix_ms(SystemTime::now())
                + timeout.as_millis() as u64,
        };
        let call = async {
            let instance = plugin.pre.instantiate_async(&mut store).await?;
            instance.call_run(&mut store, &ctx).await
        };
        let ended = match tokio::time::timeout(timeout + limits::HOST_CALL_GRACE, call).await {
            Err(_) => Ended::Broke(format!(
                "timed out after {} ({}) while waiting on a host call",
                format_duration(timeout),
                limits::RUN_DEADLINE
            )),
            Ok(Err(trap)) => {
                Ended::Broke(store.data().explain(&trap, timeout, limits::RUN_DEADLINE))
            }
            Ok(Ok(Err(message))) => Ended::PluginError(crate::redact::words(&message)),
            Ok(Ok(Ok(report))) => {
                let raw = keep_raw.then(|| report.clone());
                match Report::from_wit(report) {
                    Ok(report) => Ended::Report(report, raw),
                    Err(e) => Ended::Broke(e),
                }
            }
        };
        let mut parts = store.into_data().parts;
        parts.finish(outcome);
        // A plugin that returned (a report or its own error) keeps its
        // state changes, like any other result of the run.
        let accepted = !matches!(ended, Ended::Broke(_));
        match (parts.settle(accepted).await, ended) {
            (Err(e), _) => Err(e),
            (Ok(()), Ended::Report(report, raw)) => Ok((report, raw)),
            (Ok(()), Ended::PluginError(message)) => {
                Err(with_refusal(format!("plugin error: {message}"), outcome))
            }
            (Ok(()), Ended::Broke(reason)) => Err(reason),
        }
    }
}

/// A plugin's error after the sandbox refused one of its requests, with
/// the refusal when the error does not already name the grant: a
/// toolchain's HTTP client may say no more than "NetworkError".
fn with_refusal(error: String, outcome: &RunOutcome) -> String {
    match outcome.refusals.last() {
        Some(refusal) if !error.contains("allow.") => format!("{error} ({refusal})"),
        _ => error,
    }
}

//! `warden check`: one run, printed. Either a plugin from the command
//! line (a file or a standard plugin, with the grants and limits given as
//! flags) or a check of `warden.toml` by name (`--check NAME`), run with
//! exactly what the agent would give it: the plugin the agent's registry
//! picks (pins and `-`/`_` names included), its grants, limits, state
//! quota and `${output:...}` references, and its state in the agent's
//! store (`--dry-state` reads it and keeps the run's changes out). The
//! exit code is the status's, as a Nagios plugin's; `--format nagios`
//! prints the summary and perfdata ([`crate::perfdata`]).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::{Context as _, Result, anyhow, bail};
use clap::ValueEnum;
use warden_runtime::{Allow, Grants, Origin, Plugin, RunOutcome, RunRequest, Runtime, Status};
use warden_text::escape::escape;
use warden_text::units;

use crate::config::Config;
use crate::layout::StateDir;
use crate::registry::Registry;
use crate::store::Store;
use crate::{limits, stdplugins};

#[derive(clap::Args)]
pub(crate) struct StateDirArg {
    /// Directory for the store and the compiled-code cache.
    #[arg(long, env = "WARDEN_STATE_DIR", default_value = limits::DEFAULT_STATE_DIR)]
    pub(crate) state_dir: PathBuf,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// Human-readable.
    Text,
    /// The whole outcome as JSON.
    Json,
    /// The findings as SARIF 2.1.0 (`warden check` only).
    Sarif,
    /// The findings as gitleaks' JSON report (`warden check` only).
    Gitleaks,
    /// A Nagios plugin's output: the status and summary, then perfdata
    /// after `|` (`warden check` only).
    Nagios,
}

#[derive(clap::Args)]
pub(crate) struct CheckArgs {
    /// A `.wasm` file, or the name of a standard plugin; leave it out to
    /// run a configured check (`--check NAME`, from `-c warden.toml`).
    plugin: Option<String>,
    /// The config file whose check `--check` names (default:
    /// $WARDEN_CONFIG, else ./warden.toml).
    #[arg(short = 'c', long = "config-file", value_name = "FILE")]
    config_file: Option<PathBuf>,
    /// With a configured check: read its state but keep every change the
    /// run makes to it out of the store.
    #[arg(long)]
    dry_state: bool,
    #[command(flatten)]
    state: StateDirArg,
    /// The check's config: inline JSON, or `@file.json`.
    #[arg(long, default_value = "{}")]
    config: String,
    /// Grant HTTP to `scheme://host[:port]` (`*.example.com` and `*` allowed).
    #[arg(long = "allow-host", value_name = "PATTERN")]
    allow_hosts: Vec<String>,
    /// Grant read-only access to a directory.
    #[arg(long = "read-dir", value_name = "PATH")]
    read_dirs: Vec<String>,
    /// Pass an environment variable through by name.
    #[arg(long = "env", value_name = "NAME")]
    env: Vec<String>,
    /// Wall-clock budget of the run (`500ms`, `10s`, `2m`; default: the
    /// checks' default timeout).
    #[arg(long)]
    timeout: Option<String>,
    /// Memory limit of the plugin (`64MiB`, `1GiB`; default: the checks'
    /// default memory limit).
    #[arg(long)]
    memory: Option<String>,
    /// Most instances one run may use at once when the plugin can split
    /// it (1: never split; default: the check's `shards`, else one per
    /// core).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=limits::MAX_SHARDS as i64))]
    shards: Option<u32>,
    /// Without a plugin: the configured check to run, with the agent's
    /// grants, limits, state and output references. With one: the name
    /// that scopes its persistent state (default: the plugin's name).
    #[arg(long)]
    check: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// Extra trust roots (PEM) for the plugin's TLS connections.
    #[arg(long = "ca-file", value_name = "PEM")]
    ca_file: Option<PathBuf>,
    /// The run's time as the plugin sees it (RFC 3339 or unix seconds;
    /// default: now): replays recorded data through windowed rules, one
    /// run per recorded time, with the check's state carried between them.
    #[arg(long, value_name = "TIME")]
    at: Option<String>,
}

/// The time of `--at`, or now.
fn scheduled(at: Option<&str>) -> Result<SystemTime> {
    let Some(at) = at else {
        return Ok(SystemTime::now());
    };
    if let Ok(secs) = at.trim().parse::<f64>()
        && secs.is_finite()
        && secs >= 0.0
    {
        return Ok(std::time::UNIX_EPOCH + std::time::Duration::from_secs_f64(secs));
    }
    let t = chrono::DateTime::parse_from_rfc3339(at.trim()).map_err(|e| {
        anyhow!("--at {at:?}: not RFC 3339 (2026-12-01T10:00:00Z) or unix seconds: {e}")
    })?;
    let ms =
        u64::try_from(t.timestamp_millis()).map_err(|_| anyhow!("--at {at:?}: before 1970"))?;
    Ok(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms))
}

/// A runtime over `state_dir` (cache and plugin state), with the extra
/// trust roots of `ca_file`.
pub(crate) fn runtime(state_dir: &Path, ca_file: Option<&Path>) -> Result<Runtime> {
    let dir = StateDir::create(state_dir)?;
    let store = dir.open_store()?;
    Runtime::new(dir.runtime_options(Some(store), ca_file)?)
}

/// Runs `request` once, split into as many shards as `shards` says (one
/// per core when `None`) if the plugin can be split.
async fn run_split(
    runtime: &Arc<Runtime>,
    plugin: &Arc<Plugin>,
    request: &RunRequest,
    shards: Option<u32>,
) -> warden_runtime::RunOutcome {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    runtime
        .run_sharded(plugin, request, shards.unwrap_or(cores))
        .await
}

/// Reads a plugin given as a path or a standard plugin name.
pub(crate) fn plugin_bytes(spec: &str) -> Result<(Vec<u8>, Origin)> {
    let path = Path::new(spec);
    if path.exists() || spec.ends_with(".wasm") || spec.contains('/') {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        return Ok((bytes, Origin::File(path.to_path_buf())));
    }
    match stdplugins::get(spec) {
        Some(bytes) => Ok((bytes.to_vec(), Origin::Embedded(spec.to_string()))),
        None => bail!(
            "no file {spec:?} and no standard plugin of that name (standard plugins: {})",
            stdplugins::names().collect::<Vec<_>>().join(", ")
        ),
    }
}

pub(crate) async fn load(runtime: &Runtime, spec: &str) -> Result<Plugin> {
    let (bytes, origin) = plugin_bytes(spec)?;
    runtime.load(&bytes, origin).await
}

fn read_config(arg: &str) -> Result<String> {
    let text = match arg.strip_prefix('@') {
        Some(file) => std::fs::read_to_string(file)
            .with_context(|| format!("--config: cannot read {file}"))?,
        None => arg.to_string(),
    };
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| anyhow!("--config: not valid JSON: {e}"))?;
    if !value.is_object() {
        bail!("--config: must be a JSON object, got {}", kind_of(&value));
    }
    Ok(text)
}

fn kind_of(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

fn unknown(reason: impl std::fmt::Display) -> ExitCode {
    let reason = crate::redact::words(&reason.to_string().replace('\n', " "));
    println!("UNKNOWN: {}", escape(&reason));
    ExitCode::from(Status::Unknown.exit_code())
}

pub(crate) async fn check(args: CheckArgs) -> ExitCode {
    if args.plugin.is_none() {
        return configured(args).await;
    }
    let plugin_spec = args.plugin.clone().unwrap_or_default();
    let state_dir = args.state.state_dir.as_path();
    let prepared = async {
        let timeout = match &args.timeout {
            None => limits::DEFAULT_TIMEOUT,
            Some(t) => {
                let d = units::parse_duration(t).map_err(|e| anyhow!("--timeout {e}"))?;
                if d.is_zero() {
                    bail!("--timeout {t:?}: must be positive");
                }
                if d > limits::MAX_TIMEOUT {
                    bail!(
                        "--timeout {t}: over the maximum of {:?}",
                        limits::MAX_TIMEOUT
                    );
                }
                d
            }
        };
        let memory = match &args.memory {
            None => limits::DEFAULT_MEMORY,
            Some(m) => {
                let n = units::parse_size(m).map_err(|e| anyhow!("--memory {e}"))?;
                if n == 0 {
                    bail!("--memory {m:?}: must be positive");
                }
                if n > limits::MAX_MEMORY {
                    bail!(
                        "--memory {m}: over the maximum of {} bytes",
                        limits::MAX_MEMORY
                    );
                }
                n
            }
        };
        let config = read_config(&args.config)?;
        let allow = Allow::default()
            .with("hosts", &args.allow_hosts)
            .with("read_dirs", &args.read_dirs)
            .with("env", &args.env);
        let grants = Grants::parse(&allow).map_err(|errors| {
            let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
            anyhow!("{}", errors.join("; "))
        })?;
        let runtime = runtime(state_dir, args.ca_file.as_deref())?;
        let plugin = load(&runtime, &plugin_spec).await?;
        runtime
            .validate(&plugin, &config, memory)
            .await
            .map_err(|e| anyhow!("invalid config for {}: {e}", plugin.info.name))?;
        let request = RunRequest {
            check: args
                .check
                .clone()
                .unwrap_or_else(|| plugin.info.name.clone()),
            config,
            scheduled: scheduled(args.at.as_deref())?,
            attempt: 1,
            timeout,
            memory,
            grants,
            state_quota: Default::default(),
            action: None,
        };
        Ok::<_, anyhow::Error>((runtime, plugin, request))
    };
    let (runtime, plugin, request) = match prepared.await {
        Ok(p) => p,
        Err(e) => return unknown(format!("{e:#}")),
    };
    let outcome = run_split(&Arc::new(runtime), &Arc::new(plugin), &request, args.shards).await;
    print_outcome(&outcome, args.format)
}

/// Prints `outcome` as `format`; the exit code is its status's.
fn print_outcome(outcome: &RunOutcome, format: Format) -> ExitCode {
    let exported = || -> Vec<crate::export::Exported<'_>> {
        outcome
            .findings
            .iter()
            .map(|f| crate::export::Exported::from_finding(&outcome.check, f))
            .collect()
    };
    let printed = match format {
        Format::Json => serde_json::to_string_pretty(outcome),
        Format::Sarif => serde_json::to_string_pretty(&crate::export::sarif("warden", &exported())),
        Format::Gitleaks => serde_json::to_string_pretty(&crate::export::gitleaks(&exported())),
        Format::Text => Ok(format_outcome(outcome)),
        Format::Nagios => Ok(crate::perfdata::nagios(outcome)),
    };
    match printed {
        Ok(text) => emit(&text),
        Err(e) => return unknown(e),
    }
    ExitCode::from(outcome.status.exit_code())
}

/// Writes `text` and a newline to stdout; a closed pipe (`| head`) is not
/// an error worth a panic.
pub(crate) fn emit(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out
        .write_all(text.as_bytes())
        .and_then(|_| out.write_all(b"\n"));
}

/// The outcome for a terminal. Everything the plugin wrote is escaped
/// (control characters, bidi overrides): a report cannot move the cursor,
/// rewrite the screen or print a second, forged status line.
pub(crate) fn format_outcome(o: &RunOutcome) -> String {
    use std::fmt::Write;
    let e = |s: &str| escape(s).into_owned();
    let mut s = String::new();
    let _ = write!(s, "{}: {}", o.status.label(), e(&o.summary));
    for m in &o.metrics {
        let labels: Vec<String> = m
            .labels
            .iter()
            .map(|(k, v)| format!("{}=\"{}\"", e(k), e(v).replace('"', "\\\"")))
            .collect();
        let labels = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{}}}", labels.join(","))
        };
        let _ = write!(
            s,
            "\n  metric   {}{labels} = {} {}",
            e(&m.name),
            m.value,
            e(&m.unit)
        );
    }
    for f in &o.findings {
        let at = f
            .location
            .as_deref()
            .map(|l| format!(" at {}", e(l)))
            .unwrap_or_default();
        let _ = write!(
            s,
            "\n  finding  [{:?}] {}{at}: {}",
            f.severity,
            e(&f.rule),
            e(&f.message)
        );
    }
    for out in &o.outputs {
        let _ = write!(
            s,
            "\n  output   {}={}",
            out.key,
            e(&crate::redact::url(&out.value))
        );
    }
    for r in &o.refusals {
        let _ = write!(s, "\n  refused  {}", e(r));
    }
    s
}

/// A state backend that reads the agent's state and keeps every change
/// out of it (`--dry-state`).
struct DryState(Store);

impl warden_runtime::StateBackend for DryState {
    fn get(&self, check: &str, key: &str) -> Result<Option<String>> {
        warden_runtime::StateBackend::get(&self.0, check, key)
    }

    fn commit(
        &self,
        _check: &str,
        _changes: warden_runtime::StateChanges,
        _quota: warden_runtime::StateQuota,
    ) -> warden_runtime::caps::state::CommitFuture {
        Box::pin(async { Ok(()) })
    }
}

/// `warden check --check NAME`: the configured check, run as the agent
/// would run it (not recorded as one of its runs).
async fn configured(args: CheckArgs) -> ExitCode {
    let prepared = async {
        let Some(name) = args.check.clone() else {
            bail!(
                "give a plugin (a .wasm file or a standard plugin's name), or --check NAME for a check of warden.toml"
            );
        };
        let path = Config::find(args.config_file.as_deref());
        let config = Config::load(path.as_deref()).map_err(|e| anyhow!("{e}"))?;
        let Some(check) = config.checks.iter().find(|c| c.name == name).cloned() else {
            bail!(
                "{}: no check named {name:?} (checks: {})",
                config.source,
                config
                    .checks
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        };
        let state_dir = StateDir::create(&config.agent.state_dir)?;
        let store = state_dir.open_store()?;
        let mut options =
            state_dir.runtime_options(Some(store.clone()), config.agent.ca_file.as_deref())?;
        if args.dry_state {
            options.state = Some(Arc::new(DryState(store.clone())));
        }
        let runtime = Arc::new(Runtime::new(options)?);
        let executor = Arc::new(crate::executor::Executor::new()?);
        runtime.place_shards(Box::new(executor.shard_placer()));
        let registry = Registry::start(
            runtime.clone(),
            executor,
            config.agent.plugin_dir.clone(),
            config.pins.clone(),
            config.agent.profile == crate::config::Profile::Production,
        )
        .await;
        let Some(plugin) = registry.get(&check.plugin) else {
            bail!(
                "check {name:?}: plugin {:?} is missing: no {}.wasm in {} and no standard plugin of that name",
                check.plugin,
                check.plugin,
                config.agent.plugin_dir.display()
            );
        };
        runtime
            .validate(&plugin, &check.config_json, check.memory)
            .await
            .map_err(|e| anyhow!("check {name:?}: the plugin refused its config: {e}"))?;
        let resolved =
            crate::references::resolve(&check.config_json, |c, k| store.output_value(c, k))
                .map_err(|e| anyhow!("check {name:?}: {e}"))?;
        let request = RunRequest {
            check: check.name.clone(),
            config: resolved,
            scheduled: scheduled(args.at.as_deref())?,
            attempt: 1,
            timeout: check.timeout,
            memory: check.memory,
            grants: check.grants.clone(),
            state_quota: check.state_quota,
            action: None,
        };
        Ok::<_, anyhow::Error>((runtime, plugin, request, store, check.shards))
    };
    let (runtime, plugin, request, store, check_shards) = match prepared.await {
        Ok(p) => p,
        Err(e) => return unknown(format!("{e:#}")),
    };
    let outcome = run_split(&runtime, &plugin, &request, args.shards.or(check_shards)).await;
    store.flush();
    print_outcome(&outcome, args.format)
}

//! The `warden` command line: argument parsing and the commands' glue.
//! The work itself lives in [`warden_runtime`] (running a plugin), the
//! agent ([`crate::serve`]) and the config ([`crate::config`]).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::{Context as _, Result, anyhow, bail};
use clap::{Parser, Subcommand, ValueEnum};

use warden_runtime::{Allow, Grants, Origin, Plugin, RunOutcome, RunRequest, Runtime, Status};
use warden_text::escape::escape;
use warden_text::units;

use crate::agent::Agent;
use crate::config::{Config, Profile};
use crate::layout::StateDir;
use crate::registry::Registry;
use crate::{limits, stdplugins};

/// Warden: an ops agent that runs sandboxed WebAssembly plugins.
#[derive(Parser)]
#[command(name = "warden", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args)]
struct StateDirArg {
    /// Directory for the store and the compiled-code cache.
    #[arg(long, env = "WARDEN_STATE_DIR", default_value = limits::DEFAULT_STATE_DIR)]
    state_dir: PathBuf,
}

#[derive(clap::Args)]
struct ConfigArg {
    /// The config file. Default: $WARDEN_CONFIG, else ./warden.toml if it
    /// exists, else the embedded defaults.
    #[arg(short = 'c', long = "config")]
    config: Option<PathBuf>,
}

impl ConfigArg {
    fn path(&self) -> Option<PathBuf> {
        Config::find(self.config.as_deref())
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run the agent: schedule the configured checks, watch the plugin
    /// directory, serve the HTTP API. SIGTERM or Ctrl-C stops it cleanly.
    Run(ConfigArg),
    /// Check the config and every check's plugin config without starting
    /// anything; exits 1 listing every problem.
    Validate(ConfigArg),
    /// Run a plugin once and print its report; exits 0/1/2/3 for
    /// ok/warning/critical/unknown, like a Nagios plugin.
    Check(CheckArgs),
    /// Show what a plugin is: sha256, size, describe, imports.
    Inspect(InspectArgs),
    /// Create a plugin crate from a template.
    New(NewArgs),
    /// Silence checks' notifications on a running agent (add, list,
    /// expire).
    Silence(crate::remote::SilenceArgs),
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// Human-readable.
    Text,
    /// The whole outcome as JSON.
    Json,
    /// The findings as SARIF 2.1.0 (`warden check` only).
    Sarif,
    /// The findings as gitleaks' JSON report (`warden check` only).
    Gitleaks,
}

#[derive(clap::Args)]
struct CheckArgs {
    /// A `.wasm` file, or the name of a standard plugin.
    plugin: String,
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
    /// Name of the check (scopes its persistent state); defaults to the
    /// plugin's name.
    #[arg(long)]
    check: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// Extra trust roots (PEM) for the plugin's TLS connections.
    #[arg(long = "ca-file", value_name = "PEM")]
    ca_file: Option<PathBuf>,
}

#[derive(clap::Args)]
struct NewArgs {
    /// Plugin name, `[a-z0-9-]+`.
    name: String,
    /// Where to create it (default: ./<name>).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Path of the plugin SDK (default: the SDK of this Warden checkout).
    #[arg(long)]
    sdk: Option<PathBuf>,
}

#[derive(clap::Args)]
struct InspectArgs {
    /// A `.wasm` file, or the name of a standard plugin.
    plugin: String,
    #[command(flatten)]
    state: StateDirArg,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(match cli.command {
        Command::Run(_) => "info",
        _ => "warn",
    });
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("warden: cannot start the async runtime: {e}");
            return ExitCode::from(3);
        }
    };
    match cli.command {
        Command::Run(args) => rt.block_on(run(args)),
        Command::Validate(args) => rt.block_on(validate(args)),
        Command::Check(args) => rt.block_on(check(args)),
        Command::Silence(args) => rt.block_on(crate::remote::main(args)),
        Command::New(args) => match new_plugin(&args) {
            Ok(dir) => {
                println!("created {}", dir.display());
                println!(
                    "next: cd {} && cargo test && cargo build --release --target wasm32-wasip2",
                    dir.display()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("warden: {e:#}");
                ExitCode::from(1)
            }
        },
        Command::Inspect(args) => match rt.block_on(inspect(args)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("warden: {e:#}");
                ExitCode::from(1)
            }
        },
    }
}

fn init_tracing(default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("WARDEN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// A runtime over `state_dir` (cache and plugin state), with the extra
/// trust roots of `ca_file`.
fn runtime(state_dir: &Path, ca_file: Option<&Path>) -> Result<Runtime> {
    let dir = StateDir::create(state_dir)?;
    let store = dir.open_store()?;
    Runtime::new(dir.runtime_options(Some(store), ca_file)?)
}

/// Reads a plugin given as a path or a standard plugin name.
fn plugin_bytes(spec: &str) -> Result<(Vec<u8>, Origin)> {
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

async fn load(runtime: &Runtime, spec: &str) -> Result<Plugin> {
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

async fn check(args: CheckArgs) -> ExitCode {
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
        let plugin = load(&runtime, &args.plugin).await?;
        runtime
            .validate(&plugin, &config)
            .await
            .map_err(|e| anyhow!("invalid config for {}: {e}", plugin.info.name))?;
        let request = RunRequest {
            check: args
                .check
                .clone()
                .unwrap_or_else(|| plugin.info.name.clone()),
            config,
            scheduled: SystemTime::now(),
            attempt: 1,
            timeout,
            memory,
            grants,
            state_quota: Default::default(),
        };
        Ok::<_, anyhow::Error>((runtime, plugin, request))
    };
    let (runtime, plugin, request) = match prepared.await {
        Ok(p) => p,
        Err(e) => return unknown(format!("{e:#}")),
    };
    let outcome = runtime.run(&plugin, &request).await;
    let exported = || -> Vec<crate::export::Exported<'_>> {
        outcome
            .findings
            .iter()
            .map(|f| crate::export::Exported::from_finding(&outcome.check, f))
            .collect()
    };
    let printed = match args.format {
        Format::Json => serde_json::to_string_pretty(&outcome),
        Format::Sarif => serde_json::to_string_pretty(&crate::export::sarif("warden", &exported())),
        Format::Gitleaks => serde_json::to_string_pretty(&crate::export::gitleaks(&exported())),
        Format::Text => Ok(format_outcome(&outcome)),
    };
    match printed {
        Ok(text) => emit(&text),
        Err(e) => return unknown(e),
    }
    ExitCode::from(outcome.status.exit_code())
}

/// Writes `text` and a newline to stdout; a closed pipe (`| head`) is not
/// an error worth a panic.
fn emit(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out
        .write_all(text.as_bytes())
        .and_then(|_| out.write_all(b"\n"));
}

/// The outcome for a terminal. Everything the plugin wrote is escaped
/// (control characters, bidi overrides): a report cannot move the cursor,
/// rewrite the screen or print a second, forged status line.
fn format_outcome(o: &RunOutcome) -> String {
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

async fn inspect(args: InspectArgs) -> Result<()> {
    let runtime = runtime(&args.state.state_dir, None)?;
    let plugin = load(&runtime, &args.plugin).await?;
    match args.format {
        Format::Sarif | Format::Gitleaks => bail!("--format sarif/gitleaks is for `warden check`"),
        Format::Json => {
            let json = serde_json::json!({
                "origin": plugin.origin,
                "sha256": plugin.sha256,
                "size": plugin.size,
                "from_cache": plugin.from_cache,
                "describe": plugin.info,
                "imports": plugin.imports,
            });
            println!("{}", serde_json::to_string_pretty(&json)?);
        }
        Format::Text => {
            let i = &plugin.info;
            println!("plugin        {} {}", i.name, i.version);
            println!("origin        {}", plugin.origin);
            println!("sha256        {}", plugin.sha256);
            println!(
                "size          {} ({} bytes)",
                units::format_size(plugin.size),
                plugin.size
            );
            println!("description   {}", i.description);
            println!(
                "schedule      {}",
                i.default_schedule.as_deref().unwrap_or("(none)")
            );
            println!("capabilities  {}", i.capabilities.join(", "));
            println!("config schema {}", serde_json::to_string(&i.config_schema)?);
            println!("imports");
            for import in &plugin.imports {
                println!("  {import}");
            }
        }
    }
    Ok(())
}

fn load_config(arg: &ConfigArg) -> Result<Config, ExitCode> {
    let path = arg.path();
    match Config::load(path.as_deref()) {
        Ok(c) => {
            if c.agent.profile == Profile::Staging {
                for r in c.unsafe_settings() {
                    tracing::warn!("{}: production would refuse this: {r}", c.source);
                }
            }
            Ok(c)
        }
        Err(errors) => {
            eprintln!("warden: invalid configuration:");
            for e in &errors.0 {
                eprintln!("  {e}");
            }
            Err(ExitCode::from(1))
        }
    }
}

async fn run(args: ConfigArg) -> ExitCode {
    let config = match load_config(&args) {
        Ok(c) => c,
        Err(code) => return code,
    };
    match Agent::serve(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("warden: {e:#}");
            ExitCode::from(1)
        }
    }
}

async fn validate(args: ConfigArg) -> ExitCode {
    let config = match load_config(&args) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let options = StateDir::at(&config.agent.state_dir).runtime_options(None, None);
    let runtime = match options.and_then(Runtime::new) {
        Ok(r) => std::sync::Arc::new(r),
        Err(e) => {
            eprintln!("warden: {e:#}");
            return ExitCode::from(1);
        }
    };
    let executor = match crate::executor::Executor::new() {
        Ok(e) => std::sync::Arc::new(e),
        Err(e) => {
            eprintln!("warden: cannot start the plugin threads: {e}");
            return ExitCode::from(1);
        }
    };
    let registry = Registry::start(
        runtime.clone(),
        executor,
        config.agent.plugin_dir.clone(),
        config.pins.clone(),
    )
    .await;
    let views = registry.views();
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    for check in &config.checks {
        let at = format!("{}:{}: check {:?}", config.source, check.line, check.name);
        match registry.get(&check.plugin) {
            Some(plugin) => {
                if let Err(e) = runtime.validate(&plugin, &check.config_json).await {
                    problems.push(format!("{at}: config: {e}"));
                }
            }
            None => match views
                .iter()
                .find(|v| v.name == check.plugin)
                .and_then(|v| v.error.clone())
            {
                Some(err) => problems.push(format!(
                    "{at}: plugin {:?} failed to load: {}",
                    check.plugin, err.message
                )),
                // Not there yet: the agent runs the check once the file
                // appears, so this is no error.
                None => warnings.push(format!(
                    "{at}: plugin {:?} is not in {} nor among the standard plugins (yet): the check reports it missing until {}.wasm appears there",
                    check.plugin,
                    config.agent.plugin_dir.display(),
                    check.plugin
                )),
            },
        }
    }
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    if problems.is_empty() {
        println!(
            "{}: ok ({} checks, {} plugins, profile {:?})",
            config.source,
            config.checks.len(),
            views.len(),
            config.agent.profile
        );
        ExitCode::SUCCESS
    } else {
        eprintln!("warden: invalid configuration:");
        for p in &problems {
            eprintln!("  {p}");
        }
        ExitCode::from(1)
    }
}

const TEMPLATE_CARGO: &str = include_str!("template/Cargo.toml.tmpl");
const TEMPLATE_LIB: &str = include_str!("template/lib.rs.tmpl");

/// Writes a new plugin crate; returns its directory.
fn new_plugin(args: &NewArgs) -> Result<PathBuf> {
    let name = &args.name;
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-');
    if !valid {
        bail!("{name:?} is not a plugin name: use [a-z0-9-], starting with a letter or digit");
    }
    let dir = args.dir.clone().unwrap_or_else(|| PathBuf::from(name));
    if dir.exists()
        && std::fs::read_dir(&dir)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        bail!("{} already exists and is not empty", dir.display());
    }
    let sdk = match &args.sdk {
        Some(p) => p.clone(),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugin-sdk"),
    };
    let sdk = sdk.canonicalize().with_context(|| {
        format!(
            "the plugin SDK is not at {} (use --sdk PATH)",
            sdk.display()
        )
    })?;
    let fill = |t: &str| {
        t.replace("{{name}}", name)
            .replace("{{crate}}", &name.replace('-', "_"))
            .replace("{{sdk}}", &sdk.display().to_string())
    };
    std::fs::create_dir_all(dir.join("src"))
        .with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(dir.join("Cargo.toml"), fill(TEMPLATE_CARGO))?;
    std::fs::write(dir.join("src/lib.rs"), fill(TEMPLATE_LIB))?;
    std::fs::write(dir.join(".gitignore"), "/target\n")?;
    Ok(dir)
}

//! The `warden` command line: argument parsing and the commands' glue.
//! The work itself lives in [`crate::runtime`] and the capability modules.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::{Context as _, Result, anyhow, bail};
use clap::{Parser, Subcommand, ValueEnum};

use crate::caps::Grants;
use crate::report::Status;
use crate::runtime::{Origin, Plugin, RunOutcome, RunRequest, Runtime, RuntimeOptions};
use crate::store::Store;
use crate::{limits, stdplugins, units};

/// Warden: an ops agent that runs sandboxed WebAssembly plugins.
#[derive(Parser)]
#[command(name = "warden", version, about, long_about = None)]
struct Cli {
    /// Directory for the store and the compiled-code cache.
    #[arg(
        long,
        global = true,
        env = "WARDEN_STATE_DIR",
        default_value = ".warden"
    )]
    state_dir: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a plugin once and print its report; exits 0/1/2/3 for
    /// ok/warning/critical/unknown, like a Nagios plugin.
    Check(CheckArgs),
    /// Show what a plugin is: sha256, size, describe, imports.
    Inspect(InspectArgs),
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Json,
}

#[derive(clap::Args)]
struct CheckArgs {
    /// A `.wasm` file, or the name of a standard plugin.
    plugin: String,
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
    /// Wall-clock budget of the run (`500ms`, `10s`, `2m`).
    #[arg(long, default_value = "10s")]
    timeout: String,
    /// Memory limit of the plugin (`64MiB`, `1GiB`).
    #[arg(long, default_value = "64MiB")]
    memory: String,
    /// Name of the check (scopes its persistent state); defaults to the
    /// plugin's name.
    #[arg(long)]
    check: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

#[derive(clap::Args)]
struct InspectArgs {
    /// A `.wasm` file, or the name of a standard plugin.
    plugin: String,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
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
        Command::Check(args) => rt.block_on(check(&cli.state_dir, args)),
        Command::Inspect(args) => match rt.block_on(inspect(&cli.state_dir, args)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("warden: {e:#}");
                ExitCode::from(1)
            }
        },
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("WARDEN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn runtime(state_dir: &Path) -> Result<Runtime> {
    let store = Store::open(&state_dir.join("warden.db"))?;
    Runtime::new(RuntimeOptions {
        cache_dir: Some(state_dir.join("cache")),
        store: Some(store),
    })
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
    println!("UNKNOWN: {reason}");
    ExitCode::from(Status::Unknown.exit_code())
}

async fn check(state_dir: &Path, args: CheckArgs) -> ExitCode {
    let prepared = async {
        let timeout = units::parse_duration(&args.timeout).map_err(|e| anyhow!("--timeout {e}"))?;
        if timeout > limits::MAX_TIMEOUT {
            bail!(
                "--timeout {}: over the maximum of {:?}",
                args.timeout,
                limits::MAX_TIMEOUT
            );
        }
        let memory = units::parse_size(&args.memory).map_err(|e| anyhow!("--memory {e}"))?;
        if memory > limits::MAX_MEMORY {
            bail!(
                "--memory {}: over the maximum of {} bytes",
                args.memory,
                limits::MAX_MEMORY
            );
        }
        let config = read_config(&args.config)?;
        let grants = Grants::parse(&args.allow_hosts, &args.read_dirs, &args.env)
            .map_err(|errors| anyhow!("{}", errors.join("; ")))?;
        let runtime = runtime(state_dir)?;
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
        };
        Ok::<_, anyhow::Error>((runtime, plugin, request))
    };
    let (runtime, plugin, request) = match prepared.await {
        Ok(p) => p,
        Err(e) => return unknown(format!("{e:#}")),
    };
    let outcome = runtime.run(&plugin, &request).await;
    match args.format {
        Format::Json => match serde_json::to_string_pretty(&outcome) {
            Ok(json) => println!("{json}"),
            Err(e) => return unknown(e),
        },
        Format::Text => print_outcome(&outcome),
    }
    ExitCode::from(outcome.status.exit_code())
}

fn print_outcome(o: &RunOutcome) {
    println!("{}: {}", o.status.label(), o.summary);
    for m in &o.metrics {
        let labels: Vec<String> = m.labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
        let labels = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{}}}", labels.join(","))
        };
        println!("  metric   {}{labels} = {} {}", m.name, m.value, m.unit);
    }
    for f in &o.findings {
        let at = f
            .location
            .as_deref()
            .map(|l| format!(" at {l}"))
            .unwrap_or_default();
        println!(
            "  finding  [{:?}] {}{at}: {}",
            f.severity, f.rule, f.message
        );
    }
    for out in &o.outputs {
        println!("  output   {}={}", out.key, crate::redact::url(&out.value));
    }
    for r in &o.refusals {
        println!("  refused  {r}");
    }
}

async fn inspect(state_dir: &Path, args: InspectArgs) -> Result<()> {
    let runtime = runtime(state_dir)?;
    let plugin = load(&runtime, &args.plugin).await?;
    match args.format {
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
                crate::runtime::humanize_bytes(plugin.size),
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

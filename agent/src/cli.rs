//! The `warden` command line: argument parsing and the commands' glue.
//! The work itself lives in [`warden_runtime`] (running a plugin), the
//! agent ([`crate::serve`]) and the config ([`crate::config`]).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand};

use warden_runtime::Runtime;

use crate::agent::Agent;
use crate::config::{Config, Profile};
use crate::layout::StateDir;
use crate::oneshot::{CheckArgs, check, load, runtime};
use crate::registry::Registry;

/// Warden: an ops agent that runs sandboxed WebAssembly plugins.
#[derive(Parser)]
#[command(name = "warden", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
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
    Inspect(crate::inspect::InspectArgs),
    /// Create a plugin from a template (Rust, Python or JavaScript).
    New(crate::scaffold::NewArgs),
    /// Write the plugin contract (`plugin.wit`) with the WASI interfaces
    /// it uses (`deps/`), for building a plugin in any language.
    Wit(WitArgs),
    /// Silence checks' notifications on a running agent (add, list,
    /// expire).
    Silence(crate::remote::SilenceArgs),
    /// Fill the compiled-code cache ahead of a deploy: the given `.wasm`
    /// files and directories, or the config's plugin directory and the
    /// standard plugins.
    Compile(CompileArgs),
    /// Copy the store to FILE while the agent runs (SQLite's online
    /// backup); restore by putting the copy back as <state_dir>/warden.db
    /// while the agent is stopped.
    Backup(BackupArgs),
}

#[derive(clap::Args)]
struct BackupArgs {
    /// Where the copy goes (a new file).
    file: PathBuf,
    #[command(flatten)]
    config: ConfigArg,
    /// The state directory whose store to copy (default: the config's).
    #[arg(long)]
    state_dir: Option<PathBuf>,
}

#[derive(clap::Args)]
struct CompileArgs {
    /// `.wasm` files, or directories of them (default: the config's
    /// plugin_dir and the standard plugins).
    paths: Vec<PathBuf>,
    #[command(flatten)]
    config: ConfigArg,
    /// The state directory whose cache to fill (default: the config's).
    #[arg(long)]
    state_dir: Option<PathBuf>,
}

#[derive(clap::Args)]
struct WitArgs {
    /// The directory to write (created if missing; files of the contract
    /// already there are replaced).
    #[arg(long, default_value = "wit")]
    out: PathBuf,
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if matches!(cli.command, Command::Run(_)) {
        limit_malloc_arenas();
    } else {
        // A one-shot command piped into `head` ends quietly when the pipe
        // closes, as a shell tool does (the agent keeps ignoring SIGPIPE:
        // its sockets get EPIPE).
        // SAFETY: restores the default disposition before any thread runs.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
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
        Command::New(args) => match crate::scaffold::new_plugin(&args) {
            Ok((dir, next)) => {
                println!("created {}", dir.display());
                println!("next: cd {} && {next}", dir.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("warden: {e:#}");
                ExitCode::from(1)
            }
        },
        Command::Wit(args) => match crate::sdk::write_wit(&args.out) {
            Ok(files) => {
                println!(
                    "wrote {} files to {} (the world warden:plugin/plugin and its WASI deps)",
                    files.len(),
                    args.out.display()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("warden: {e:#}");
                ExitCode::from(1)
            }
        },
        Command::Backup(args) => match backup(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("warden: {e:#}");
                ExitCode::from(1)
            }
        },
        Command::Compile(args) => match rt.block_on(compile(args)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("warden: {e:#}");
                ExitCode::from(1)
            }
        },
        Command::Inspect(args) => match rt.block_on(crate::inspect::inspect(args)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("warden: {e:#}");
                ExitCode::from(1)
            }
        },
    }
}

/// Two malloc arenas for the agent (unless `MALLOC_ARENA_MAX` says
/// otherwise): with one per thread, memory the compiler freed at a first
/// start stays spread over arenas and the agent settles 30% above a warm
/// start; with two, within 15% (`cargo bench -p warden --bench start`).
fn limit_malloc_arenas() {
    #[cfg(target_env = "gnu")]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: called before any other thread starts.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
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

/// `warden backup FILE`.
fn backup(args: BackupArgs) -> Result<()> {
    let state_dir = match args.state_dir {
        Some(d) => d,
        None => {
            Config::load(args.config.path().as_deref())
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .agent
                .state_dir
        }
    };
    let db = StateDir::at(&state_dir).db();
    let t0 = std::time::Instant::now();
    let pages = crate::store::backup::backup(&db, &args.file)?;
    let size = std::fs::metadata(&args.file).map(|m| m.len()).unwrap_or(0);
    println!(
        "{} -> {} ({} pages, {}, {} ms, checked)",
        db.display(),
        args.file.display(),
        pages,
        warden_text::units::format_size(size),
        t0.elapsed().as_millis()
    );
    Ok(())
}

/// `warden compile`: each plugin compiled into the state directory's
/// cache (or found there), one line each; an error for any that fails.
async fn compile(args: CompileArgs) -> Result<()> {
    let config = Config::load(args.config.path().as_deref()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let state_dir = args.state_dir.unwrap_or(config.agent.state_dir.clone());
    let runtime = runtime(&state_dir, None)?;
    let mut specs: Vec<String> = Vec::new();
    let dirs = if args.paths.is_empty() {
        specs.extend(crate::stdplugins::names().map(String::from));
        vec![config.agent.plugin_dir.clone()]
    } else {
        args.paths.clone()
    };
    for p in dirs {
        if p.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(&p)
                .with_context(|| format!("reading {}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.extension().is_some_and(|x| x == "wasm"))
                .collect();
            files.sort();
            specs.extend(files.iter().map(|f| f.display().to_string()));
        } else if p.exists() || !args.paths.is_empty() {
            specs.push(p.display().to_string());
        }
    }
    let mut failed = Vec::new();
    for spec in &specs {
        let t0 = std::time::Instant::now();
        match load(&runtime, spec).await {
            Ok(plugin) => println!(
                "{} {} {} ({} ms)",
                if plugin.from_cache {
                    "cached  "
                } else {
                    "compiled"
                },
                plugin.info.name,
                plugin.sha256,
                t0.elapsed().as_millis(),
            ),
            Err(e) => {
                eprintln!("failed   {spec}: {e:#}");
                failed.push(spec.clone());
            }
        }
    }
    println!("cache: {}", StateDir::at(&state_dir).cache().display());
    if failed.is_empty() {
        Ok(())
    } else {
        bail!(
            "{} of {} plugins did not compile: {}",
            failed.len(),
            specs.len(),
            failed.join(", ")
        )
    }
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
        config.agent.profile == Profile::Production,
    )
    .await;
    let views = registry.views();
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    // Every plugin config: the checks' and the actions'.
    let configs = config
        .checks
        .iter()
        .map(|c| {
            (
                "check",
                &c.name,
                c.line,
                &c.plugin,
                &c.config_json,
                c.memory,
            )
        })
        .chain(config.actions.iter().map(|a| {
            (
                "action",
                &a.name,
                a.line,
                &a.plugin,
                &a.config_json,
                a.memory,
            )
        }));
    for (kind, name, line, plugin_name, config_json, memory) in configs {
        let at = format!("{}:{line}: {kind} {name:?}", config.source);
        match registry.get(plugin_name) {
            Some(plugin) => {
                if let Err(e) = runtime.validate(&plugin, config_json, memory).await {
                    problems.push(format!("{at}: config: {e}"));
                }
            }
            None => match views
                .iter()
                .find(|v| v.name == *plugin_name)
                .and_then(|v| v.error.clone())
            {
                Some(err) => problems.push(format!(
                    "{at}: plugin {plugin_name:?} failed to load: {}",
                    err.message
                )),
                // Not there yet: the agent runs it once the file appears,
                // so this is no error.
                None => warnings.push(format!(
                    "{at}: plugin {plugin_name:?} is not in {} nor among the standard plugins (yet): the {kind} reports it missing until {plugin_name}.wasm appears there",
                    config.agent.plugin_dir.display(),
                )),
            },
        }
    }
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    if problems.is_empty() {
        let actions = match config.actions.len() {
            0 => String::new(),
            n => format!(", {n} actions"),
        };
        println!(
            "{}: ok ({} checks{actions}, {} plugins, profile {:?})",
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

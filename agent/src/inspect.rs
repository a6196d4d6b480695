//! `warden inspect`: what a plugin is (sha256, size, origin, compiler,
//! memory, `describe`, imports) and what pins it; for a component that
//! does not fit the world, what it is anyway (sha256, size, imports,
//! exports, read from its bytes) and then what is missing.

use anyhow::{Result, bail};
use warden_runtime::Shape;
use warden_text::units;

use crate::oneshot::{Format, StateDirArg, plugin_bytes, runtime};
use crate::stdplugins;

#[derive(clap::Args)]
pub(crate) struct InspectArgs {
    /// A `.wasm` file, or the name of a standard plugin.
    plugin: String,
    #[command(flatten)]
    state: StateDirArg,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

pub(crate) async fn inspect(args: InspectArgs) -> Result<()> {
    let runtime = runtime(&args.state.state_dir, None)?;
    let (bytes, origin) = plugin_bytes(&args.plugin)?;
    let plugin = match runtime.load(&bytes, origin).await {
        Ok(plugin) => plugin,
        Err(e) => return misfit(&bytes, &args.format, e),
    };
    // Standard plugins are pinned by this binary; a file needs a pin of
    // its own in production (an override of a standard one too).
    let (pinned_by, pin_note) = match &plugin.origin {
        warden_runtime::Origin::Embedded(_) => (
            "binary",
            "the binary (a standard plugin: no [[plugin]] pin needed)".to_string(),
        ),
        _ => {
            let stem = std::path::Path::new(&args.plugin)
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| plugin.info.name.clone());
            let overrides = stdplugins::standard(&stem)
                .map(|s| format!("; it overrides the standard plugin {s:?}"))
                .unwrap_or_default();
            (
                "config",
                format!(
                    "a file: production loads it only with [[plugin]] name = {stem:?}, sha256 = {:?}{overrides}",
                    plugin.sha256
                ),
            )
        }
    };
    match args.format {
        Format::Sarif | Format::Gitleaks | Format::Nagios => {
            bail!("--format sarif/gitleaks/nagios is for `warden check`")
        }
        Format::Json => {
            let json = serde_json::json!({
                "origin": plugin.origin,
                "sha256": plugin.sha256,
                "size": plugin.size,
                "from_cache": plugin.from_cache,
                "describe": plugin.info,
                "imports": plugin.imports,
                "pinned_by": pinned_by,
                "compiler": plugin.compiler,
                "initial_memory": plugin.initial_memory,
                "shardable": plugin.shardable,
            });
            println!("{}", serde_json::to_string_pretty(&json)?);
        }
        Format::Text => {
            let i = &plugin.info;
            println!("plugin        {} {}", i.name, i.version);
            println!("origin        {}", plugin.origin);
            println!("sha256        {}", plugin.sha256);
            println!("pinned by     {pin_note}");
            println!(
                "size          {} ({} bytes)",
                units::format_size(plugin.size),
                plugin.size
            );
            println!(
                "compiled by   {}",
                match plugin.compiler {
                    warden_runtime::engine::Compiler::Cranelift => "cranelift",
                    warden_runtime::engine::Compiler::Winch =>
                        "winch (a large component: quick to compile, slower code)",
                }
            );
            println!(
                "memory        starts at {}{}",
                units::format_size(plugin.initial_memory),
                if plugin.shardable {
                    "; runs may be split into shards"
                } else {
                    ""
                }
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

/// Prints what `bytes` are although they did not load (`error` says why),
/// then fails with that error.
fn misfit(bytes: &[u8], format: &Format, error: anyhow::Error) -> Result<()> {
    let sha256 = warden_runtime::sha256_hex(bytes);
    let shape = Shape::read(bytes);
    let missing = shape
        .as_ref()
        .map(Shape::missing_exports)
        .unwrap_or_default();
    match format {
        Format::Json => {
            let json = serde_json::json!({
                "sha256": sha256,
                "size": bytes.len(),
                "component": shape.is_some(),
                "imports": shape.as_ref().map(|s| &s.imports),
                "exports": shape.as_ref().map(|s| &s.exports),
                "missing_exports": missing,
                "error": format!("{error:#}"),
            });
            println!("{}", serde_json::to_string_pretty(&json)?);
        }
        _ => {
            println!("sha256        {sha256}");
            println!(
                "size          {} ({} bytes)",
                units::format_size(bytes.len() as u64),
                bytes.len()
            );
            match &shape {
                None => println!("component     no"),
                Some(shape) => {
                    for (title, names) in [("imports", &shape.imports), ("exports", &shape.exports)]
                    {
                        println!("{title}");
                        for name in names {
                            println!("  {name}");
                        }
                        if names.is_empty() {
                            println!("  (none)");
                        }
                    }
                }
            }
            if !missing.is_empty() {
                println!(
                    "missing       export(s) {} of the world {}",
                    missing.join(", "),
                    warden_runtime::WORLD
                );
            }
        }
    }
    Err(error.context("it does not fit the plugin world"))
}

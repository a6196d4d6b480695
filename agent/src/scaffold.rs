//! `warden new`: a plugin from a template, in Rust (a crate on the SDK),
//! Python (componentize-py, with the `warden.py` helper) or JavaScript
//! (componentize-js, with `warden.js`), each with a fake host for native
//! unit tests and a build script with its tools pinned. The templates
//! live in `template/`.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};

#[derive(clap::Args)]
pub(crate) struct NewArgs {
    /// Plugin name, `[a-z0-9-]+`.
    name: String,
    /// The language.
    #[arg(long, value_enum, default_value = "rust")]
    lang: Lang,
    /// Where to create it (default: ./<name>).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Path of a `plugin-sdk` crate, for Rust (default: $WARDEN_SDK, else
    /// the SDK this binary embeds, written once to ~/.local/share/warden).
    #[arg(long)]
    sdk: Option<PathBuf>,
}

/// A template's language.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Lang {
    /// A crate on the Rust SDK.
    Rust,
    /// componentize-py and `warden.py`.
    Python,
    /// componentize-js and `warden.js`.
    Js,
}

const TEMPLATE_CARGO: &str = include_str!("template/Cargo.toml.tmpl");
const TEMPLATE_LIB: &str = include_str!("template/lib.rs.tmpl");

/// Writes a new plugin; its directory, and what to run next there.
pub(crate) fn new_plugin(args: &NewArgs) -> Result<(PathBuf, &'static str)> {
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
    let files: &[TemplateFile] = match args.lang {
        Lang::Rust => &[],
        Lang::Python => &PYTHON,
        Lang::Js => &JS,
    };
    if !files.is_empty() {
        write_template(name, &dir, files)?;
        return Ok((dir, "./build.sh test && ./build.sh"));
    }
    let sdk = match (&args.sdk, std::env::var_os("WARDEN_SDK")) {
        (Some(p), _) => p.clone(),
        (None, Some(p)) => PathBuf::from(p),
        // The SDK this binary embeds: no checkout needed.
        (None, None) => crate::sdk::install()?,
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
    Ok((
        dir,
        "cargo test && cargo build --release --target wasm32-wasip2",
    ))
}

/// A template's file: name, contents, executable.
type TemplateFile = (&'static str, &'static str, bool);

/// The Python template's files.
const PYTHON: [TemplateFile; 7] = [
    ("app.py", include_str!("template/python/app.py"), false),
    (
        "warden.py",
        include_str!("template/python/warden.py"),
        false,
    ),
    (
        "warden_testing.py",
        include_str!("template/python/warden_testing.py"),
        false,
    ),
    (
        "test_app.py",
        include_str!("template/python/test_app.py"),
        false,
    ),
    ("build.sh", include_str!("template/python/build.sh"), true),
    (
        "README.md",
        include_str!("template/python/README.md"),
        false,
    ),
    (
        ".gitignore",
        "/.venv\n/.build\n/*.wasm\n__pycache__/\n",
        false,
    ),
];

/// The JavaScript template's files.
const JS: [TemplateFile; 9] = [
    ("app.js", include_str!("template/js/app.js"), false),
    ("warden.js", include_str!("template/js/warden.js"), false),
    (
        "component.js",
        include_str!("template/js/component.js"),
        false,
    ),
    (
        "warden-testing.js",
        include_str!("template/js/warden-testing.js"),
        false,
    ),
    (
        "app.test.js",
        include_str!("template/js/app.test.js"),
        false,
    ),
    (
        "package.json",
        include_str!("template/js/package.json"),
        false,
    ),
    ("build.sh", include_str!("template/js/build.sh"), true),
    ("README.md", include_str!("template/js/README.md"), false),
    (
        ".gitignore",
        "/.tools\n/.build\n/*.wasm\nnode_modules/\n",
        false,
    ),
];

/// Writes `files` into `dir`, with `{{name}}` filled in.
fn write_template(name: &str, dir: &Path, files: &[TemplateFile]) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for &(file, text, executable) in files {
        let path = dir.join(file);
        std::fs::write(&path, text.replace("{{name}}", name))
            .with_context(|| format!("writing {}", path.display()))?;
        if executable {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
        }
    }
    Ok(())
}

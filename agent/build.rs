//! Builds every plugin crate under `plugins/` (standard plugins, embedded
//! into the binary) and `tests/plugins/` (test plugins, whose directory is
//! exported to the test suite as `WARDEN_WASM_DIR`) for `wasm32-wasip2`,
//! in release mode with SIMD, the way wasmtime's own test-programs crate
//! does: a nested `cargo build` into a target directory of its own.

use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";
const PROFILE: &str = "wasm";

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest
        .parent()
        .expect("agent/ lives in the workspace")
        .to_path_buf();
    // Every file and directory, not just the top directories: cargo does
    // not notice a file moved in with an old mtime otherwise.
    for watched in ["plugins", "plugin-sdk", "wit", "text", "tests/plugins"] {
        watch(&root.join(watched));
    }
    for file in ["Cargo.lock", "Cargo.toml"] {
        println!("cargo:rerun-if-changed={}", root.join(file).display());
    }

    let standard = plugin_crates(&root.join("plugins"));
    let test_plugins = plugin_crates(&root.join("tests/plugins"));
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo"));
    // OUT_DIR is <target>/<profile>/build/<pkg>/out; build beside it.
    let target_dir = out_dir
        .ancestors()
        .nth(4)
        .map(|t| t.join("wasm-plugins"))
        .unwrap_or_else(|| out_dir.join("wasm-plugins"));

    require_target();
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(&root)
        .arg("build")
        .arg("--target")
        .arg(TARGET)
        .arg("--profile")
        .arg(PROFILE)
        .arg("--target-dir")
        .arg(&target_dir);
    for name in standard.iter().chain(&test_plugins) {
        cmd.arg("-p").arg(name);
    }
    // Settings meant for the host build must not leak into the guest
    // build; wrappers (clippy) would give the two builds different
    // fingerprints and rebuild the plugins every time.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_WRAPPER",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_PRIMARY_PACKAGE",
    ] {
        cmd.env_remove(var);
    }
    cmd.env(
        "CARGO_TARGET_WASM32_WASIP2_RUSTFLAGS",
        "-Ctarget-feature=+simd128",
    );
    let status = cmd
        .status()
        .expect("running cargo to build the wasm plugins");
    if !status.success() {
        panic!("building the wasm plugins failed (see the errors above)");
    }

    let wasm_dir = target_dir.join(TARGET).join(PROFILE);
    let mut generated = String::from(
        "/// The standard plugins, built from `plugins/` for wasm32-wasip2.\n\
         pub const STANDARD_PLUGINS: &[(&str, &[u8])] = &[\n",
    );
    for name in &standard {
        let file = wasm_dir.join(format!("{}.wasm", name.replace('-', "_")));
        assert!(
            file.is_file(),
            "expected {} after the build",
            file.display()
        );
        generated.push_str(&format!(
            "    ({name:?}, include_bytes!({:?})),\n",
            file.display().to_string()
        ));
    }
    generated.push_str("];\n");
    std::fs::write(out_dir.join("standard_plugins.rs"), generated)
        .expect("writing standard_plugins.rs");
    println!("cargo:rustc-env=WARDEN_WASM_DIR={}", wasm_dir.display());
    embed_sdk(&root, &out_dir);
}

/// The plugin SDK as `warden new` writes it out for a crate made without
/// a checkout: `plugin-sdk/`, `text/` and `wit/` as they are, under a
/// workspace manifest of their own (the root's package settings and the
/// registry dependencies they inherit).
fn embed_sdk(root: &Path, out_dir: &Path) {
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).expect("reading Cargo.toml");
    let section = |name: &str| -> String {
        let start = manifest
            .find(&format!("\n[{name}]\n"))
            .unwrap_or_else(|| panic!("no [{name}] in Cargo.toml"));
        let body = &manifest[start + 1..];
        let end = body[1..].find("\n[").map_or(body.len(), |e| e + 2);
        body[..end].to_string()
    };
    let deps: String = section("workspace.dependencies")
        .lines()
        .filter(|l| !l.contains("path =") || l.starts_with("warden-text "))
        .map(|l| format!("{l}\n"))
        .collect();
    let workspace = format!(
        "# The Warden plugin SDK, as `warden new` writes it (do not edit; a\n\
         # newer warden writes a newer copy beside this one).\n\
         [workspace]\nresolver = \"3\"\nmembers = [\"plugin-sdk\", \"text\"]\n\n{}\n{deps}",
        section("workspace.package")
    );
    let workspace_file = out_dir.join("sdk-workspace.toml");
    std::fs::write(&workspace_file, workspace).expect("writing sdk-workspace.toml");
    let mut files = vec![("Cargo.toml".to_string(), workspace_file)];
    for dir in ["plugin-sdk", "text", "wit"] {
        collect(&root.join(dir), dir, &mut files);
    }
    let mut generated = String::from(
        "/// The plugin SDK's files (path in the SDK directory, contents).\n\
         pub const SDK_FILES: &[(&str, &[u8])] = &[\n",
    );
    for (rel, path) in &files {
        generated.push_str(&format!(
            "    ({rel:?}, include_bytes!({:?})),\n",
            path.display().to_string()
        ));
    }
    generated.push_str("];\n");
    std::fs::write(out_dir.join("sdk_files.rs"), generated).expect("writing sdk_files.rs");
}

/// Every file under `dir` (but `target/`), as (path under `rel`, file).
fn collect(dir: &Path, rel: &str, out: &mut Vec<(String, PathBuf)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map(|e| e.filter_map(Result::ok).collect())
        .unwrap_or_default();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        let path = e.path();
        if path.is_dir() {
            if name != "target" {
                collect(&path, &format!("{rel}/{name}"), out);
            }
        } else {
            out.push((format!("{rel}/{name}"), path));
        }
    }
}

/// Emits `rerun-if-changed` for `path` and everything beneath it.
fn watch(path: &Path) {
    println!("cargo:rerun-if-changed={}", path.display());
    if let Ok(entries) = std::fs::read_dir(path) {
        for entry in entries.filter_map(Result::ok) {
            let p = entry.path();
            if p.is_dir() {
                if p.file_name().is_some_and(|n| n != "target") {
                    watch(&p);
                }
            } else {
                println!("cargo:rerun-if-changed={}", p.display());
            }
        }
    }
}

/// Crate names of the plugins in `dir` (one crate per subdirectory, named
/// like the directory).
fn plugin_crates(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.path().join("Cargo.toml").is_file())
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn require_target() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let libdir = Command::new(rustc)
        .args(["--print", "target-libdir", "--target", TARGET])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    if !libdir.is_some_and(|d| d.is_dir()) {
        panic!(
            "\n\nThe Rust target {TARGET} is not installed; Warden's plugins are built for it.\n\
             Install it with:\n\n    rustup target add {TARGET}\n\n"
        );
    }
}

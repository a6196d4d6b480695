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
    for watched in ["plugins", "plugin-sdk", "wit", "tests/plugins"] {
        watch(&root.join(watched));
    }
    println!(
        "cargo:rerun-if-changed={}",
        root.join("Cargo.lock").display()
    );

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

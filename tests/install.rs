//! `cargo install --path agent`, as an operator installs Warden: the one
//! binary has the standard plugins and the plugin SDK, and works with no
//! checkout at hand. A test binary of its own: the install relinks the
//! `warden` binary the other tests run, so nothing runs beside it.

mod common;

use std::path::Path;

#[test]
fn cargo_install_gives_a_working_warden_with_the_standard_plugins() {
    let dir = tempfile::tempdir().unwrap();
    // This build's target directory (…/target/debug/warden), so the
    // install reuses what the test suite built.
    let target = Path::new(common::warden_bin())
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .to_path_buf();
    let root = dir.path().join("prefix");
    let out = std::process::Command::new(env!("CARGO"))
        .args([
            "install",
            "--path",
            "agent",
            "--debug",
            "--offline",
            "--locked",
            "--root",
        ])
        .arg(&root)
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let installed = root.join("bin/warden");
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let run = |args: &[&str]| {
        let o = std::process::Command::new(&installed)
            .args(args)
            .current_dir(&home)
            .env("HOME", &home)
            .env_remove("XDG_DATA_HOME")
            .env_remove("WARDEN_SDK")
            .env("WARDEN_STATE_DIR", home.join("state"))
            .output()
            .unwrap();
        common::Run::from(o)
    };
    let hello = run(&["check", "hello"]);
    assert_eq!(hello.code, 0, "{}\n{}", hello.stdout, hello.stderr);
    assert!(hello.stdout.starts_with("OK: "), "{}", hello.stdout);
    let inspect = run(&["inspect", "secret-scan"]);
    assert!(
        inspect.stdout.contains("pinned by     the binary"),
        "{}",
        inspect.stdout
    );
    // `warden new` needs no checkout: the SDK comes from the binary.
    let new = run(&["new", "env-policy"]);
    assert_eq!(new.code, 0, "{}", new.stderr);
    let manifest = std::fs::read_to_string(home.join("env-policy/Cargo.toml")).unwrap();
    let sdk = format!("{}/.local/share/warden/sdk-", home.display());
    assert!(manifest.contains(&sdk), "{manifest}");
    let sdk_dir = std::fs::read_dir(home.join(".local/share/warden"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    for file in [
        "Cargo.toml",
        "plugin-sdk/src/lib.rs",
        "text/src/lib.rs",
        "wit/plugin.wit",
    ] {
        assert!(
            sdk_dir.join(file).is_file(),
            "{file} in {}",
            sdk_dir.display()
        );
    }
}

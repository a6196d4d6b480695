//! End-to-end: `warden check` and `warden inspect` with the real binary
//! and the standard `hello` plugin (embedded and from its file).

mod common;

use common::*;
use sha2::{Digest, Sha256};

#[test]
fn standard_plugin_runs_by_name_and_keeps_state_across_runs() {
    let state = tempfile::tempdir().unwrap();
    let run = warden(state.path(), &["check", "hello"], &[]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.starts_with("OK: hello, hello (run 1)"),
        "{}",
        run.stdout
    );
    // A new process (a restart) sees the state the first one stored.
    let run = warden(state.path(), &["check", "hello"], &[]);
    assert!(
        run.stdout.starts_with("OK: hello, hello (run 2)"),
        "{}",
        run.stdout
    );
    // State is scoped per check.
    let run = warden(state.path(), &["check", "hello", "--check", "other"], &[]);
    assert!(
        run.stdout.starts_with("OK: hello, other (run 1)"),
        "{}",
        run.stdout
    );
}

#[test]
fn exit_codes_follow_the_nagios_convention() {
    let state = tempfile::tempdir().unwrap();
    let port = fixture_server();
    let grant = format!("http://127.0.0.1:{port}");
    let ok = format!(r#"{{"url":"http://127.0.0.1:{port}/ok"}}"#);
    let run = warden(
        state.path(),
        &["check", "hello", "--config", &ok, "--allow-host", &grant],
        &[],
    );
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("probe_http_status_code = 200"),
        "{}",
        run.stdout
    );

    let failing = format!(r#"{{"url":"http://127.0.0.1:{port}/fail"}}"#);
    let run = warden(
        state.path(),
        &[
            "check",
            "hello",
            "--config",
            &failing,
            "--allow-host",
            &grant,
        ],
        &[],
    );
    assert_eq!(run.code, 2, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.starts_with("CRITICAL: "), "{}", run.stdout);
}

#[test]
fn config_from_file_and_validation_errors() {
    let state = tempfile::tempdir().unwrap();
    let file = state.path().join("config.json");
    std::fs::write(&file, r#"{"greeting":"howdy"}"#).unwrap();
    let arg = format!("@{}", file.display());
    let run = warden(state.path(), &["check", "hello", "--config", &arg], &[]);
    assert!(run.stdout.starts_with("OK: howdy"), "{}", run.stdout);

    let run = warden(
        state.path(),
        &["check", "hello", "--config", r#"{"greeting": 5}"#],
        &[],
    );
    assert_eq!(run.code, 3);
    assert!(
        run.stdout
            .contains("invalid config for hello: config.greeting"),
        "{}",
        run.stdout
    );

    let run = warden(state.path(), &["check", "hello", "--config", "[1]"], &[]);
    assert_eq!(run.code, 3);
    assert!(
        run.stdout.contains("--config: must be a JSON object"),
        "{}",
        run.stdout
    );

    let run = warden(state.path(), &["check", "hello", "--timeout", "soon"], &[]);
    assert_eq!(run.code, 3);
    assert!(run.stdout.contains("--timeout"), "{}", run.stdout);

    let run = warden(
        state.path(),
        &[
            "check",
            "hello",
            "--allow-host",
            "ftp://x",
            "--read-dir",
            "/does/not/exist",
        ],
        &[],
    );
    assert_eq!(run.code, 3);
    assert!(run.stdout.contains("allow.hosts[0]"), "{}", run.stdout);
    assert!(run.stdout.contains("allow.read_dirs[0]"), "{}", run.stdout);
}

#[test]
fn unknown_plugin_names_the_standard_ones() {
    let state = tempfile::tempdir().unwrap();
    let run = warden(state.path(), &["check", "no-such-plugin"], &[]);
    assert_eq!(run.code, 3);
    let list = run
        .stdout
        .split("standard plugins: ")
        .nth(1)
        .unwrap_or_else(|| panic!("{}", run.stdout));
    for name in ["hello", "http-health", "secret-scan", "solana-rpc-failover"] {
        assert!(list.contains(name), "{name}: {}", run.stdout);
    }
}

#[test]
fn inspect_shows_hash_describe_and_imports_and_warms_the_cache() {
    let state = tempfile::tempdir().unwrap();
    let file = wasm("hello");
    let bytes = std::fs::read(&file).unwrap();
    let sha = hex::encode(Sha256::digest(&bytes));

    let run = warden(
        state.path(),
        &["inspect", file.to_str().unwrap(), "--format", "json"],
        &[],
    );
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let v = run.json();
    assert_eq!(v["sha256"], sha.as_str());
    assert_eq!(v["size"], bytes.len());
    assert_eq!(v["describe"]["name"], "hello");
    assert_eq!(v["describe"]["config_schema"]["type"], "object");
    assert_eq!(v["from_cache"], false);
    let imports = v["imports"].to_string();
    assert!(imports.contains("warden:plugin/host@0.1.0"), "{imports}");
    assert!(
        imports.contains("wasi:http/outgoing-handler@0.2.12"),
        "{imports}"
    );

    let cached: Vec<_> = std::fs::read_dir(state.path().join("cache"))
        .unwrap()
        .collect();
    assert_eq!(cached.len(), 1, "one compiled artifact");
    let run = warden(
        state.path(),
        &["inspect", file.to_str().unwrap(), "--format", "json"],
        &[],
    );
    assert_eq!(run.json()["from_cache"], true);

    let text = warden(state.path(), &["inspect", "hello"], &[]);
    assert!(
        text.stdout.contains(&format!("sha256        {sha}")) || text.stdout.contains("sha256"),
        "{}",
        text.stdout
    );
}

#[test]
fn new_creates_a_plugin_crate_that_builds_and_tests() {
    let state = tempfile::tempdir().unwrap();
    let dir = state.path().join("my-check");
    // The SDK the binary embeds, written to the user's data directory (as
    // an installed binary with no checkout does).
    let data = state.path().join("data");
    let run = warden(
        state.path(),
        &["new", "my-check", "--dir", dir.to_str().unwrap()],
        &[("XDG_DATA_HOME", data.to_str().unwrap())],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let sdk: Vec<_> = std::fs::read_dir(data.join("warden")).unwrap().collect();
    assert_eq!(sdk.len(), 1, "one SDK copy");
    let lib = std::fs::read_to_string(dir.join("src/lib.rs")).unwrap();
    assert!(lib.contains("PluginInfo::new(\"my-check\""), "{lib}");
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    assert!(manifest.contains("name = \"my-check\""), "{manifest}");
    assert!(
        manifest.contains(&format!("{}/warden/sdk-", data.display())),
        "{manifest}"
    );

    // Again into the same place, or with a bad name: refused.
    let again = warden(
        state.path(),
        &["new", "my-check", "--dir", dir.to_str().unwrap()],
        &[],
    );
    assert_eq!(again.code, 1);
    assert!(again.stderr.contains("already exists"), "{}", again.stderr);
    let bad = warden(state.path(), &["new", "My_Check"], &[]);
    assert_eq!(bad.code, 1);
    assert!(bad.stderr.contains("not a plugin name"), "{}", bad.stderr);

    // The generated crate's own unit test passes natively, offline, with
    // the dependencies the workspace already fetched.
    let out = std::process::Command::new(env!("CARGO"))
        .args([
            "test",
            "--offline",
            "--quiet",
            "--manifest-path",
            dir.join("Cargo.toml").to_str().unwrap(),
        ])
        .env("CARGO_TARGET_DIR", state.path().join("target"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the template does not build:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_full_disk_leaves_no_half_written_cache() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let _disk = Tmpfs::mount(&state, "8m");
    // Leave room for the store, not for the compiled code.
    {
        use std::io::Write;
        let mut f = std::fs::File::create(state.join("filler")).unwrap();
        let chunk = vec![0u8; 64 << 10];
        while f.write_all(&chunk).is_ok() {}
    }
    let free_some = std::fs::metadata(state.join("filler")).unwrap().len() - (768 << 10);
    std::fs::OpenOptions::new()
        .write(true)
        .open(state.join("filler"))
        .unwrap()
        .set_len(free_some)
        .unwrap();
    let run = warden(&state, &["check", "hello", "--format", "json"], &[]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("cannot write compiled-code cache"),
        "{}",
        run.stderr
    );
    let leftovers: Vec<_> = std::fs::read_dir(state.join("cache"))
        .map(|d| d.filter_map(Result::ok).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "left in the cache: {leftovers:?}");
}

//! End-to-end: the sandbox holds. Each hostile behaviour runs through the
//! real `warden check` binary against the real `hostile` component and
//! must end as `unknown` (exit 3) with its own reason.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

fn hostile(state: &std::path::Path, config: &str, extra: &[&str]) -> Run {
    let plugin = wasm("hostile");
    check_json(state, plugin.to_str().unwrap(), config, extra)
}

/// Asserts an `unknown` outcome whose error contains `reason`.
fn assert_unknown(run: &Run, reason: &str) -> String {
    assert_eq!(
        run.code, 3,
        "expected exit 3\nstdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    let error = match serde_json::from_str::<serde_json::Value>(&run.stdout) {
        Ok(v) => {
            assert_eq!(v["status"], "unknown", "{}", run.stdout);
            v["error"].as_str().unwrap_or_default().to_string()
        }
        // Failures before the run (load, config) print one line.
        Err(_) => run.stdout.trim().to_string(),
    };
    assert!(error.contains(reason), "expected {reason:?} in {error:?}");
    error
}

#[test]
fn well_behaved_plugin_is_ok() {
    let state = tempfile::tempdir().unwrap();
    let run = hostile(state.path(), r#"{"mode":"ok"}"#, &[]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(run.json()["summary"], "behaved");
}

#[test]
fn infinite_loop_ends_at_the_timeout() {
    let state = tempfile::tempdir().unwrap();
    let t0 = Instant::now();
    let run = hostile(state.path(), r#"{"mode":"loop"}"#, &["--timeout", "1s"]);
    assert_unknown(&run, "timed out after 1s (the check's timeout)");
    // A correctness bound (the run does end), not a performance target:
    // process start and compilation fit well inside it.
    assert!(
        t0.elapsed() < Duration::from_secs(30),
        "took {:?}",
        t0.elapsed()
    );
}

#[test]
fn blocking_host_call_ends_at_the_timeout() {
    let state = tempfile::tempdir().unwrap();
    let run = hostile(state.path(), r#"{"mode":"sleep"}"#, &["--timeout", "1s"]);
    assert_unknown(&run, "timed out after 1s");
}

#[test]
fn memory_growth_past_the_limit_is_refused() {
    let state = tempfile::tempdir().unwrap();
    let run = hostile(state.path(), r#"{"mode":"alloc"}"#, &["--memory", "32MiB"]);
    assert_unknown(&run, "memory limit of 32 MiB exceeded");
}

#[test]
fn panic_message_is_reported() {
    let state = tempfile::tempdir().unwrap();
    let run = hostile(state.path(), r#"{"mode":"panic"}"#, &[]);
    assert_unknown(&run, "plugin panicked: hostile plugin panicked on purpose");
}

#[test]
fn oversized_reports_are_refused() {
    let state = tempfile::tempdir().unwrap();
    let run = hostile(state.path(), r#"{"mode":"big-report"}"#, &[]);
    assert_unknown(&run, "report has 20000 findings, over the limit of 10000");
    let run = hostile(state.path(), r#"{"mode":"long-summary"}"#, &[]);
    assert_unknown(
        &run,
        "report summary is 100000 bytes, over the limit of 1024",
    );
}

#[test]
fn exit_instead_of_report() {
    let state = tempfile::tempdir().unwrap();
    // wasi:cli/exit@0.2 carries success or failure only, so `exit(7)`
    // arrives as a failure (code 1).
    let run = hostile(state.path(), r#"{"mode":"exit"}"#, &[]);
    assert_unknown(
        &run,
        "plugin exited with code 1 instead of returning a report",
    );
}

#[test]
fn plugin_error_is_its_reason() {
    let state = tempfile::tempdir().unwrap();
    let run = hostile(state.path(), r#"{"mode":"error"}"#, &[]);
    assert_unknown(&run, "plugin error: refusing on purpose");
}

#[test]
fn output_flood_is_bounded_and_harmless() {
    let state = tempfile::tempdir().unwrap();
    let run = hostile(state.path(), r#"{"mode":"flood"}"#, &[]);
    assert_eq!(run.code, 0, "{}", run.stdout);
    // 10 MiB was printed; the agent kept at most its per-run cap.
    assert!(
        run.stderr.len() < 1 << 20,
        "stderr is {} bytes",
        run.stderr.len()
    );
}

#[test]
fn http_to_a_host_not_granted_is_denied() {
    let state = tempfile::tempdir().unwrap();
    let port = fixture_server();
    let url = format!("http://127.0.0.1:{port}/ok");
    let config = format!(r#"{{"mode":"http","url":"{url}"}}"#);
    let run = hostile(state.path(), &config, &[]);
    let error = assert_unknown(&run, "denied");
    assert!(error.contains("allow.hosts"), "{error}");
    let refusals = run.json()["refusals"].to_string();
    assert!(
        refusals.contains("is not in the check's allow.hosts"),
        "{refusals}"
    );

    // The same request with the literal grant goes through.
    let grant = format!("http://127.0.0.1:{port}");
    let run = hostile(state.path(), &config, &["--allow-host", &grant]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(run.json()["summary"], "status 200 body 2 bytes");
}

#[test]
fn name_resolving_to_loopback_needs_a_literal_grant() {
    let state = tempfile::tempdir().unwrap();
    let port = fixture_server();
    let config = format!(r#"{{"mode":"http","url":"http://localhost:{port}/ok"}}"#);
    let wildcard = format!("http://*:{port}");
    let run = hostile(state.path(), &config, &["--allow-host", &wildcard]);
    let error = assert_unknown(&run, "denied");
    assert!(error.contains("loopback"), "{error}");
    let refusals = run.json()["refusals"].to_string();
    assert!(refusals.contains("127.0.0.1 (loopback)"), "{refusals}");

    let literal = format!("http://localhost:{port}");
    let run = hostile(state.path(), &config, &["--allow-host", &literal]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
}

#[test]
fn response_bodies_are_capped() {
    let state = tempfile::tempdir().unwrap();
    let port = fixture_server();
    let grant = format!("http://127.0.0.1:{port}");
    for path in ["huge-declared", "huge-streamed"] {
        let config = format!(r#"{{"mode":"http","url":"http://127.0.0.1:{port}/{path}"}}"#);
        let run = hostile(state.path(), &config, &["--allow-host", &grant]);
        assert_unknown(&run, "body size cap");
    }
}

#[test]
fn hanging_server_ends_at_the_timeout() {
    let state = tempfile::tempdir().unwrap();
    let port = fixture_server();
    let grant = format!("http://127.0.0.1:{port}");
    let config = format!(r#"{{"mode":"http","url":"http://127.0.0.1:{port}/hang"}}"#);
    let run = hostile(
        state.path(),
        &config,
        &["--allow-host", &grant, "--timeout", "1s"],
    );
    assert_unknown(&run, "timed out after 1s");
}

#[test]
fn files_outside_the_preopen_are_unreachable() {
    let state = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let granted = root.path().join("granted");
    std::fs::create_dir(&granted).unwrap();
    std::fs::write(granted.join("inside.txt"), "inside").unwrap();
    std::fs::write(root.path().join("secret.txt"), "outside").unwrap();
    std::os::unix::fs::symlink(root.path().join("secret.txt"), granted.join("link")).unwrap();
    let g = granted.canonicalize().unwrap();
    let g = g.to_str().unwrap();
    let read = |path: String| {
        let config = serde_json::json!({"mode": "read", "path": path}).to_string();
        hostile(state.path(), &config, &["--read-dir", g])
    };

    let run = read(format!("{g}/inside.txt"));
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(run.json()["summary"], "read 6 bytes: inside");

    let mut reasons = Vec::new();
    for path in [
        format!("{g}/../secret.txt"),
        root.path().join("secret.txt").display().to_string(),
        format!("{g}/link"),
    ] {
        let run = read(path.clone());
        let error = assert_unknown(&run, &format!("read {path}"));
        assert!(!run.stdout.contains("outside"), "{}", run.stdout);
        reasons.push(error);
    }

    // Nothing is granted without --read-dir.
    let config = serde_json::json!({"mode": "read", "path": format!("{g}/inside.txt")}).to_string();
    let run = hostile(state.path(), &config, &[]);
    assert_unknown(&run, "read ");

    // Preopens are read-only.
    let config = serde_json::json!({"mode": "write", "path": format!("{g}/new.txt")}).to_string();
    let run = hostile(state.path(), &config, &["--read-dir", g]);
    assert_unknown(&run, "write ");
    assert!(!granted.join("new.txt").exists());
}

#[test]
fn only_granted_environment_variables_are_visible() {
    let state = tempfile::tempdir().unwrap();
    let config = r#"{"mode":"env","var":"WARDEN_TEST_GRANTED"}"#;
    let run = warden(
        state.path(),
        &[
            "check",
            wasm("hostile").to_str().unwrap(),
            "--format",
            "json",
            "--config",
            config,
            "--env",
            "WARDEN_TEST_GRANTED",
        ],
        &[("WARDEN_TEST_GRANTED", "yes"), ("WARDEN_TEST_SECRET", "no")],
    );
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(
        run.json()["summary"],
        "WARDEN_TEST_GRANTED=true visible=[WARDEN_TEST_GRANTED]"
    );
}

#[test]
fn state_writes_of_a_trapped_run_are_discarded() {
    let state = tempfile::tempdir().unwrap();
    let run = hostile(state.path(), r#"{"mode":"state"}"#, &[]);
    assert_eq!(run.json()["summary"], "n=1");
    // The second run writes n=2 and then panics: the write must not stick,
    // so the third run computes n=2 again and panics again instead of n=3.
    let run = hostile(state.path(), r#"{"mode":"state"}"#, &[]);
    assert_unknown(&run, "even run 2 traps after writing state");
    let run = hostile(state.path(), r#"{"mode":"state"}"#, &[]);
    assert_unknown(&run, "even run 2 traps after writing state");
}

#[test]
fn core_module_is_not_a_plugin() {
    let state = tempfile::tempdir().unwrap();
    let file = state.path().join("core.wasm");
    std::fs::write(
        &file,
        wat::parse_str("(module (func (export \"run\")))").unwrap(),
    )
    .unwrap();
    let run = warden(state.path(), &["check", file.to_str().unwrap()], &[]);
    assert_unknown(&run, "is a core WebAssembly module, not a component");
}

#[test]
fn random_bytes_are_not_a_plugin() {
    let state = tempfile::tempdir().unwrap();
    let file = state.path().join("random.wasm");
    let bytes: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(&file, bytes).unwrap();
    let run = warden(state.path(), &["check", file.to_str().unwrap()], &[]);
    assert_unknown(&run, "is not a WebAssembly component");
    // A truncated real component is refused too.
    let real = std::fs::read(wasm("hello")).unwrap();
    std::fs::write(&file, &real[..real.len() / 2]).unwrap();
    let run = warden(state.path(), &["check", file.to_str().unwrap()], &[]);
    assert_eq!(run.code, 3, "{}", run.stdout);
    assert!(run.stdout.contains("failed to compile"), "{}", run.stdout);
}

#[test]
fn component_of_another_world_names_what_is_missing() {
    let state = tempfile::tempdir().unwrap();
    let file = state.path().join("other.wasm");
    let component = r#"
        (component
          (import "wasi:sockets/tcp@0.2.0" (instance))
          (core module $m (func (export "greet")))
          (core instance $i (instantiate $m))
          (func $greet (canon lift (core func $i "greet")))
          (export "greet" (func $greet)))
    "#;
    std::fs::write(&file, wat::parse_str(component).unwrap()).unwrap();
    let run = warden(state.path(), &["check", file.to_str().unwrap()], &[]);
    let error = assert_unknown(&run, "does not target the world warden:plugin/plugin@0.1.0");
    assert!(
        error.contains("missing export(s) describe, validate, run"),
        "{error}"
    );
    assert!(error.contains("greet"), "{error}");

    // `warden inspect` still says what it is, then what is missing.
    let inspect = warden(state.path(), &["inspect", file.to_str().unwrap()], &[]);
    assert_eq!(inspect.code, 1, "{}\n{}", inspect.stdout, inspect.stderr);
    let sha = warden_runtime::sha256_hex(&std::fs::read(&file).unwrap());
    for line in [
        format!("sha256        {sha}"),
        "imports\n  wasi:sockets/tcp@0.2.0\nexports\n  greet\n".into(),
        "missing       export(s) describe, validate, run of the world warden:plugin/plugin@0.1.0"
            .into(),
    ] {
        assert!(inspect.stdout.contains(&line), "{line}\n{}", inspect.stdout);
    }
    assert!(
        inspect.stderr.contains("it does not fit the plugin world")
            && inspect.stderr.contains("missing export(s)"),
        "{}",
        inspect.stderr
    );
    let json = warden(
        state.path(),
        &["inspect", file.to_str().unwrap(), "--format", "json"],
        &[],
    );
    assert_eq!(json.code, 1);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v["sha256"], sha.as_str());
    assert_eq!(v["exports"], serde_json::json!(["greet"]));
    assert_eq!(
        v["missing_exports"],
        serde_json::json!(["describe", "validate", "run"])
    );
    // Not a component at all: its sha256 and size, and that it is none.
    let junk = state.path().join("junk.wasm");
    std::fs::write(&junk, b"not wasm").unwrap();
    let inspect = warden(state.path(), &["inspect", junk.to_str().unwrap()], &[]);
    assert_eq!(inspect.code, 1);
    assert!(
        inspect.stdout.contains("size          8 B (8 bytes)")
            && inspect.stdout.contains("component     no"),
        "{}",
        inspect.stdout
    );
}

#[test]
fn findings_export_as_sarif_and_gitleaks_json() {
    let state = tempfile::tempdir().unwrap();
    let plugin = wasm("hostile");
    let run = warden(
        state.path(),
        &[
            "check",
            plugin.to_str().unwrap(),
            "--config",
            r#"{"mode":"findings"}"#,
            "--format",
            "sarif",
        ],
        &[],
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    let sarif: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(sarif["version"], "2.1.0");
    let results = sarif["runs"][0]["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    let aws = results
        .iter()
        .find(|r| r["ruleId"] == "aws-access-key")
        .unwrap();
    assert_eq!(aws["level"], "error");
    assert_eq!(
        aws["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
        "/srv/app/config.py"
    );
    assert_eq!(
        aws["locations"][0]["physicalLocation"]["region"]["startLine"],
        3
    );

    let run = warden(
        state.path(),
        &[
            "check",
            plugin.to_str().unwrap(),
            "--config",
            r#"{"mode":"findings"}"#,
            "--format",
            "gitleaks",
        ],
        &[],
    );
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let aws = report
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["RuleID"] == "aws-access-key")
        .unwrap();
    assert_eq!(
        (aws["File"].as_str(), aws["StartLine"].as_u64()),
        (Some("/srv/app/config.py"), Some(3))
    );
    assert_eq!(aws["Fingerprint"], "/srv/app/config.py:aws-access-key:3");
}

#[test]
fn plugin_text_cannot_forge_log_lines_or_terminal_output() {
    let state = tempfile::tempdir().unwrap();
    let plugin = wasm("hostile");
    let run = warden(
        state.path(),
        &[
            "check",
            plugin.to_str().unwrap(),
            "--config",
            r#"{"mode":"forge"}"#,
        ],
        &[],
    );
    assert_eq!(run.code, 2, "{}\n{}", run.stdout, run.stderr);
    for (name, text) in [("stdout", &run.stdout), ("stderr", &run.stderr)] {
        let raw: Vec<char> = text
            .chars()
            .filter(|c| c.is_control() && *c != '\n')
            .collect();
        assert!(
            raw.is_empty(),
            "{name} has raw control characters {raw:?}:\n{text}"
        );
        assert!(!text.contains('\u{202e}'), "{name} has a bidi override");
        for line in text.lines() {
            assert!(
                !line.starts_with("2026-12-01T00:00:00.000000Z")
                    && !line.starts_with("OK: all good"),
                "{name} has a forged line {line:?}:\n{text}"
            );
        }
    }
    // One status line, the real one.
    let status_lines = run
        .stdout
        .lines()
        .filter(|l| {
            ["OK:", "WARNING:", "CRITICAL:", "UNKNOWN:"]
                .iter()
                .any(|s| l.starts_with(s))
        })
        .count();
    assert_eq!(status_lines, 1, "{}", run.stdout);
    assert!(
        run.stdout
            .starts_with("CRITICAL: broken\\r\\u{1b}[2KOK: all good\\nOK: all good"),
        "{}",
        run.stdout
    );
    assert!(run.stderr.contains("done\\n2026-12-01"), "{}", run.stderr);
}

#[test]
fn outputs_with_control_characters_are_refused() {
    let state = tempfile::tempdir().unwrap();
    let run = hostile(
        state.path(),
        &serde_json::json!({"mode": "outputs", "value": "a\u{1b}[2Kb"}).to_string(),
        &[],
    );
    assert_unknown(
        &run,
        "report output TEST_VALUE has a control character (U+001B)",
    );
}

#[test]
fn every_report_name_and_list_has_a_cap() {
    let state = tempfile::tempdir().unwrap();
    for (field, reason) in [
        (
            "label-name",
            "report metric label name is 100000 bytes, over the limit of 256",
        ),
        (
            "labels",
            "report has 100000 labels on one metric, over the limit of 32",
        ),
        (
            "unit",
            "report metric unit is 100000 bytes, over the limit of 64",
        ),
        (
            "rule",
            "report finding rule is 100000 bytes, over the limit of 256",
        ),
        (
            "attribute-name",
            "report finding attribute name is 100000 bytes, over the limit of 256",
        ),
        (
            "attributes",
            "report has 100000 attributes on one finding, over the limit of 64",
        ),
        (
            "output-key",
            "report output key is 100000 bytes, over the limit of 256",
        ),
    ] {
        let config = serde_json::json!({"mode": "wide", "value": field}).to_string();
        let run = hostile(state.path(), &config, &["--memory", "256MiB"]);
        assert_unknown(&run, reason);
    }
}

#[test]
fn plugin_state_has_a_quota() {
    let state = tempfile::tempdir().unwrap();
    let run = hostile(
        state.path(),
        r#"{"mode":"state-bomb"}"#,
        &["--memory", "128MiB"],
    );
    assert_unknown(
        &run,
        "over the check's limit of 33554432 bytes (state_bytes)",
    );
    // The plugin returned (its own error), so its writes within the quota
    // stand; the store never holds more than the quota.
    let db = rusqlite::Connection::open(state.path().join("warden.db")).unwrap();
    let bytes: i64 = db
        .query_row(
            "SELECT COALESCE(SUM(length(key) + length(value)), 0) FROM check_state",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(bytes > 0 && bytes <= 32 << 20, "{bytes} bytes stored");
}

/// A FIFO, a socket or a device in a granted directory is refused at open:
/// opening a FIFO with no writer would block the thread past any deadline.
#[test]
fn special_files_in_granted_directories_are_refused() {
    let state = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let g = root.path().canonicalize().unwrap();
    let fifo = g.join("pipe");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    std::os::unix::fs::symlink("pipe", g.join("to-pipe")).unwrap();
    let _socket = std::os::unix::net::UnixListener::bind(g.join("sock")).unwrap();
    std::fs::write(g.join("plain.txt"), "plain").unwrap();
    let g = g.to_str().unwrap();
    let read = |name: &str| {
        let config = serde_json::json!({"mode": "read", "path": format!("{g}/{name}")}).to_string();
        // Bounded from outside: before the guard, the open never returned.
        let out = Command::new("timeout")
            .args([
                "-s",
                "KILL",
                "60",
                warden_bin(),
                "check",
                wasm("hostile").to_str().unwrap(),
            ])
            .args([
                "--format",
                "json",
                "--timeout",
                "5s",
                "--config",
                &config,
                "--read-dir",
                g,
            ])
            .env("WARDEN_STATE_DIR", state.path())
            .output()
            .unwrap();
        Run::from(out)
    };
    for name in ["pipe", "to-pipe", "sock"] {
        let run = read(name);
        let error = assert_unknown(&run, &format!("read {g}/{name}"));
        assert!(
            error.to_lowercase().contains("not supported") || error.contains("unsupported"),
            "{name}: {error}"
        );
    }
    let run = read("plain.txt");
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
}

/// wasi:http fields cannot make the host hold more than the quotas: a
/// large header set is refused by size, many small ones by the per-run
/// resource quota.
#[test]
fn http_fields_are_bounded() {
    let state = tempfile::tempdir().unwrap();
    let run = hostile(state.path(), r#"{"mode":"fields-bomb"}"#, &[]);
    let error = assert_unknown(&run, "the HTTP fields quota");
    assert!(error.contains("16 KiB"), "{error}");
    let run = hostile(state.path(), r#"{"mode":"fields-bomb","ms":1024}"#, &[]);
    let error = assert_unknown(&run, "resource");
    assert!(
        error.contains("the per-run resource quota") && error.contains("1024"),
        "{error}"
    );
}

/// A report bigger than the host takes in one call names that quota, not
/// wasmtime's internals.
#[test]
fn an_oversized_report_names_the_per_call_quota() {
    let state = tempfile::tempdir().unwrap();
    let run = hostile(
        state.path(),
        r#"{"mode":"huge-report"}"#,
        &["--memory", "512MiB"],
    );
    let error = assert_unknown(&run, "per-call data quota");
    assert!(!error.contains("fuel"), "{error}");
}

//! Operating Warden, against the real binary: the configuration reloads
//! live (the file changing, SIGHUP, `POST /v1/reload`), a broken edit
//! keeps the configuration in force and says why, and settings that need
//! a restart are reported.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{AgentProcess, free_port, http};

const WAIT: Duration = Duration::from_secs(60);

/// Replaces the config file the way editors and deploy tools do (write
/// aside, rename into place).
fn rewrite(path: &Path, text: &str) {
    let tmp = path.with_extension("toml.tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn hello(name: &str, every: &str) -> String {
    format!("[[check]]\nname = \"{name}\"\nplugin = \"hello\"\nschedule = \"@every {every}\"\n")
}

fn runs(agent: &AgentProcess, name: &str) -> u64 {
    agent.check(name)["runs"]["ok"].as_u64().unwrap_or(0)
}

fn names(agent: &AgentProcess) -> Vec<String> {
    agent.get("/v1/checks").json()["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn the_configuration_reloads_live_and_a_broken_edit_keeps_the_old_one() {
    let dir = tempfile::tempdir().unwrap();
    let head = "[agent]\nlisten = \"127.0.0.1:{PORT}\"\n";
    let agent = AgentProcess::start(
        dir.path(),
        &format!("{head}{}{}", hello("kept", "300ms"), hello("gone", "300ms")),
        &[],
    );
    agent.wait_until("both ran", WAIT, |a| {
        runs(a, "kept") >= 2 && runs(a, "gone") >= 1
    });
    let port = agent.port;
    let head = head.replace("{PORT}", &port.to_string());

    // A valid edit: one check changed, one removed, one added.
    rewrite(
        &agent.config,
        &format!(
            "{head}{}timeout = \"5s\"\n{}",
            hello("kept", "300ms"),
            hello("added", "300ms")
        ),
    );
    agent.wait_until("the added check ran", WAIT, |a| {
        names(a) == ["added", "kept"] && runs(a, "added") >= 1
    });
    let status = agent.get("/v1/status").json();
    let reload = &status["reload"];
    assert_eq!(reload["last_ok"], true, "{status}");
    assert_eq!(reload["reloads"], 1, "{status}");
    let kept = runs(&agent, "kept");
    assert!(kept >= 2, "history kept: {kept}");
    assert_eq!(agent.check("kept")["timeout_seconds"], 5.0);
    assert_eq!(agent.get("/v1/checks/gone").status, 404);
    assert!(
        agent.log().contains("configuration reloaded"),
        "{}",
        agent.log()
    );

    // A broken edit: every error named with its line; the old config runs on.
    rewrite(
        &agent.config,
        &format!(
            "{head}{}timeout = \"10\"\n{}colour = \"blue\"\n",
            hello("kept", "300ms"),
            hello("added", "300ms")
        ),
    );
    agent.wait_until("the failure shows", WAIT, |a| {
        a.get("/v1/status").json()["reload"]["last_ok"] == false
    });
    let status = agent.get("/v1/status").json();
    let errors: Vec<String> = status["reload"]["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap().to_string())
        .collect();
    let file = agent.config.display().to_string();
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with(&format!("{file}:7: check \"kept\": timeout"))),
        "{errors:?}"
    );
    assert!(
        agent
            .get("/metrics")
            .body
            .contains("warden_config_last_reload_successful 0")
    );
    let added = runs(&agent, "added");
    agent.wait_until("the checks in force run on", WAIT, |a| {
        runs(a, "added") > added
    });
    assert!(agent.log().contains("timeout"), "every error is logged");
    let refused = http(port, "POST", "/v1/reload", &[], b"");
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert_eq!(refused.json()["error"]["code"], "config_invalid");

    // Fixed, with a setting that needs a restart, applied by SIGHUP (no
    // watcher event for a file edited in place without a rename is
    // needed: the signal reloads too).
    std::fs::write(
        &agent.config,
        format!(
            "[agent]\nlisten = \"127.0.0.1:{}\"\n{}{}",
            free_port(),
            hello("kept", "300ms"),
            hello("third", "300ms")
        ),
    )
    .unwrap();
    agent.signal("HUP");
    agent.wait_until("the third check ran", WAIT, |a| runs(a, "third") >= 1);
    let status = agent.get("/v1/status").json();
    assert_eq!(status["reload"]["last_ok"], true, "{status}");
    assert_eq!(
        status["reload"]["restart_needed"],
        serde_json::json!(["[agent] listen"]),
        "{status}"
    );
    assert!(
        agent
            .get("/metrics")
            .body
            .contains("warden_config_last_reload_successful 1")
    );
    // Reloading an unchanged file changes nothing.
    let same = http(port, "POST", "/v1/reload", &[], b"");
    assert_eq!(same.status, 200, "{}", same.body);
    assert_eq!(same.json()["reloaded"], false);
    assert_eq!(agent.terminate(), 0);
}

#[test]
fn checks_and_plugins_meet_by_name_forgivingly_and_loudly() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    // As cargo writes the crate `http-health`.
    let built = std::fs::read(common::wasm("http-health")).unwrap();
    std::fs::write(
        plugins.join("http_health.wasm"),
        common::variant(&built, "local build"),
    )
    .unwrap();
    let config = dir.path().join("warden.toml");
    std::fs::write(
        &config,
        format!(
            "[agent]\nlisten = \"127.0.0.1:{port}\"\n\
             [[check]]\nname = \"late\"\nplugin = \"late\"\nschedule = \"@every 300ms\"\nconfig = {{ mode = \"ok\" }}\n\
             [[check]]\nname = \"underscored\"\nplugin = \"http_health\"\nschedule = \"@every 300ms\"\n\
             allow.hosts = [\"http://127.0.0.1:{port}\"]\nconfig = {{ url = \"http://127.0.0.1:{port}/health\" }}\n"
        ),
    )
    .unwrap();
    // `validate` warns about the plugin that is not there yet, as `run`
    // reports it: no error.
    let v = common::warden(
        &dir.path().join(".warden"),
        &["validate", "-c", config.to_str().unwrap()],
        &[],
    );
    assert_eq!(v.code, 0, "{}\n{}", v.stdout, v.stderr);
    assert!(
        v.stderr.contains("warning:") && v.stderr.contains("check \"late\": plugin \"late\""),
        "{}",
        v.stderr
    );

    let agent = AgentProcess::start_with(dir.path(), &config, port, &[]);
    agent.wait_until("the late check reports its plugin missing", WAIT, |a| {
        a.check("late")["last_summary"]
            .as_str()
            .is_some_and(|s| s.contains("plugin \"late\" is missing"))
    });
    // The file named with `_` serves a check naming it so, and overrides
    // the standard plugin of its component's name (`http-health`).
    agent.wait_until("the underscored check ran", WAIT, |a| {
        a.check("underscored")["status"] == "ok"
    });
    let plugin = agent.get("/v1/plugins/http-health").json();
    assert!(
        plugin["origin"].to_string().contains("http_health.wasm"),
        "{plugin}"
    );
    assert!(
        agent.log().contains("differ only by -/_"),
        "{}",
        agent.log()
    );

    // The plugin arrives (under another component name): the check starts
    // without a restart, and the mismatch is logged with both names.
    let tmp = dir.path().join("late.wasm.part");
    std::fs::copy(common::wasm("hostile"), &tmp).unwrap();
    std::fs::rename(&tmp, plugins.join("late.wasm")).unwrap();
    agent.wait_until("the late check ran", WAIT, |a| {
        a.check("late")["status"] == "ok"
    });
    let log = agent.log();
    assert!(
        log.contains("file_name=\"late\"") || log.contains("file_name=late"),
        "{log}"
    );
    assert!(log.contains("hostile"), "{log}");
    assert_eq!(agent.terminate(), 0);
}

#[test]
fn the_embedded_defaults_show_results_within_seconds() {
    let dir = tempfile::tempdir().unwrap();
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", 7878)).is_err(),
        "something already listens on 127.0.0.1:7878, the embedded defaults' address"
    );
    let log = std::fs::File::create(dir.path().join("agent.log")).unwrap();
    let child = std::process::Command::new(common::warden_bin())
        .arg("run")
        .current_dir(dir.path())
        .env_remove("WARDEN_CONFIG")
        .env_remove("WARDEN_PROFILE")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let agent = AgentProcess {
        child,
        port: 7878,
        dir: dir.path().to_path_buf(),
        config: Default::default(),
    };
    // Every default check has run once at start, without waiting for its
    // schedule: the agent watching itself, and hello.
    agent.wait_until("every default check has a result", WAIT, |a| {
        std::net::TcpStream::connect(("127.0.0.1", 7878)).is_ok()
            && a.get("/v1/checks").json()["checks"]
                .as_array()
                .is_some_and(|l| l.len() == 3 && l.iter().all(|c| c["status"] == "ok"))
    });
    let metrics = agent.get("/metrics").body;
    for series in [
        "probe_success{check=\"warden-health\",plugin=\"http-health\",instance=\"http://127.0.0.1:7878/health\"} 1",
        "http_health_rule_firing{check=\"warden-metrics\",plugin=\"http-health\",rule=\"store writes are failing\",instance=\"http://127.0.0.1:7878/metrics\"} 0",
        "warden_check_status{check=\"hello\",plugin=\"hello\",state_type=\"hard\"} 0",
        "warden_check_up{check=\"warden-health\",plugin=\"http-health\",instance=\"http://127.0.0.1:7878/health\"} 1",
    ] {
        assert!(metrics.contains(series), "{series} in\n{metrics}");
    }
    assert_eq!(agent.terminate(), 0);
}

#[test]
fn warden_check_runs_a_configured_check_as_the_agent_would() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::fixture_server();
    let config = dir.path().join("warden.toml");
    std::fs::write(
        &config,
        format!(
            "[agent]\nlisten = \"127.0.0.1:{}\"\n\
             [[check]]\nname = \"greeter\"\nplugin = \"hello\"\nconfig = {{ greeting = \"hi\" }}\n\
             [[check]]\nname = \"api\"\nplugin = \"http-health\"\ntimeout = \"5s\"\n\
             allow.hosts = [\"http://127.0.0.1:{port}\"]\nconfig = {{ url = \"http://127.0.0.1:{port}/ok\" }}\n\
             [[check]]\nname = \"ungranted\"\nplugin = \"http-health\"\nconfig = {{ url = \"http://127.0.0.1:{port}/ok\" }}\n",
            free_port()
        ),
    )
    .unwrap();
    let state = dir.path().join("elsewhere");
    let check = |args: &[&str]| {
        let mut all = vec!["check", "-c", config.to_str().unwrap()];
        all.extend_from_slice(args);
        common::warden(&state, &all, &[])
    };
    // The agent's state (the config's state_dir, not --state-dir's): kept
    // across runs, or only read with --dry-state.
    let summary = |r: &common::Run| r.stdout.lines().next().unwrap_or("").to_string();
    let first = check(&["--check", "greeter"]);
    assert_eq!(first.code, 0, "{}\n{}", first.stdout, first.stderr);
    assert!(summary(&first).ends_with("(run 1)"), "{}", first.stdout);
    assert!(summary(&check(&["--check", "greeter"])).ends_with("(run 2)"));
    assert!(summary(&check(&["--check", "greeter", "--dry-state"])).ends_with("(run 3)"));
    assert!(summary(&check(&["--check", "greeter", "--dry-state"])).ends_with("(run 3)"));
    assert!(dir.path().join(".warden").is_dir());

    // Nagios output: the status line, then perfdata after `|`.
    let nagios = check(&["--check", "api", "--format", "nagios"]);
    assert_eq!(nagios.code, 0, "{}\n{}", nagios.stdout, nagios.stderr);
    let line = nagios.stdout.trim_end();
    let (status, perf) = line.split_once(" | ").expect("perfdata after |");
    assert!(status.starts_with("OK: "), "{line}");
    assert!(perf.contains("probe_success=1"), "{line}");
    assert!(
        perf.split(' ')
            .any(|p| p.starts_with("probe_duration_seconds=") && p.ends_with('s')),
        "{line}"
    );

    // Exactly its grants: nothing granted, the request is refused.
    let denied = check(&["--check", "ungranted"]);
    assert_ne!(denied.code, 0, "{}", denied.stdout);
    assert!(
        denied.stdout.contains("not granted")
            || denied.stdout.contains("denied")
            || denied.stdout.contains("refused"),
        "{}",
        denied.stdout
    );

    let missing = check(&["--check", "nope"]);
    assert_eq!(missing.code, 3, "{}", missing.stdout);
    assert!(
        missing
            .stdout
            .contains("no check named \"nope\" (checks: greeter, api, ungranted)"),
        "{}",
        missing.stdout
    );
}

#[test]
fn production_pins_files_not_standard_plugins_and_refuses_wide_grants() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret-token\n").unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    let port = free_port();
    let head = format!(
        "[agent]\nprofile = \"production\"\nlisten = \"127.0.0.1:{port}\"\n[api]\ntoken_file = \"token\"\n"
    );
    let config = dir.path().join("warden.toml");
    // A standard plugin needs no pin: the binary pins it.
    std::fs::write(&config, format!("{head}{}", hello("greeter", "300ms"))).unwrap();
    let validate = |c: &Path| {
        common::warden(
            &dir.path().join(".warden"),
            &["validate", "-c", c.to_str().unwrap()],
            &[],
        )
    };
    let ok = validate(&config);
    assert_eq!(ok.code, 0, "{}\n{}", ok.stdout, ok.stderr);

    // A plugin file without a pin is not loaded in production.
    std::fs::create_dir_all(dir.path().join("plugins")).unwrap();
    std::fs::copy(
        common::wasm("hostile"),
        dir.path().join("plugins/hostile.wasm"),
    )
    .unwrap();
    let agent = AgentProcess::start_with(dir.path(), &config, port, &[]);
    agent.wait_until("the greeter ran", WAIT, |a| runs(a, "greeter") >= 1);
    let hostile = agent.get("/v1/plugins/hostile").json();
    assert_eq!(hostile["state"], "failed", "{hostile}");
    assert!(
        hostile["error"]["message"]
            .as_str()
            .unwrap()
            .contains("only when it is pinned"),
        "{hostile}"
    );
    assert_eq!(agent.terminate(), 0);
    let inspect = common::warden(&dir.path().join(".warden"), &["inspect", "hello"], &[]);
    assert!(
        inspect.stdout.contains("pinned by     the binary"),
        "{}",
        inspect.stdout
    );
    let file = dir.path().join("plugins/hostile.wasm");
    let inspect = common::warden(
        &dir.path().join(".warden"),
        &["inspect", file.to_str().unwrap()],
        &[],
    );
    assert!(
        inspect.stdout.contains(
            "pinned by     a file: production loads it only with [[plugin]] name = \"hostile\""
        ),
        "{}",
        inspect.stdout
    );

    // Refused, each reason listed: egress to anywhere, a read grant of /
    // and of the state directory, an outputs file outside the state
    // directory, a token file every user may read.
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
    let wide = dir.path().join("wide.toml");
    std::fs::write(
        &wide,
        format!(
            "{head}[[check]]\nname = \"wide\"\nplugin = \"hello\"\nallow.hosts = [\"https://*\"]\n\
             allow.read_dirs = [\"/\", \".warden\"]\noutputs_file = \"/etc/passwd\"\n"
        ),
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join(".warden")).unwrap();
    let refused = validate(&wide);
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    for reason in [
        "allow.hosts \"https://*\" grants the whole internet",
        "allow.read_dirs grants \"/\"",
        ".warden\" holds the state directory",
        "outputs_file /etc/passwd is outside the state directory",
        "is readable by every user",
    ] {
        assert!(
            refused.stderr.contains(reason),
            "{reason}:\n{}",
            refused.stderr
        );
    }
}

#[test]
fn the_agent_answers_while_plugins_compile_and_checks_wait_for_theirs() {
    // A fresh state directory: every plugin compiles (seconds in a
    // debug build), in the background.
    let dir = tempfile::tempdir().unwrap();
    let config = "[agent]\nlisten = \"127.0.0.1:{PORT}\"\n\
         [[check]]\nname = \"self\"\nplugin = \"http-health\"\nschedule = \"@every 1h\"\nrun_on_start = true\n\
         allow.hosts = [\"http://127.0.0.1:{PORT}\"]\nconfig = { url = \"http://127.0.0.1:{PORT}/health\" }\n";
    let agent = AgentProcess::start_compiling(dir.path(), config, &[]);
    // Answering at once, saying what is still compiling.
    let first = agent.get("/readyz");
    assert_eq!(first.status, 503, "{}", first.body);
    assert!(
        first.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("plugins still compiling"),
        "{}",
        first.body
    );
    assert_eq!(
        agent.get("/health").status,
        200,
        "/health answers meanwhile"
    );
    let plugins = agent.get("/v1/plugins").json();
    assert!(
        plugins["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["state"] == "compiling"),
        "{plugins}"
    );
    agent.wait_until("ready", WAIT, |a| a.get("/readyz").status == 200);
    // The check due at start waited for its plugin: it ran, not "missing".
    agent.wait_until("the check ran", WAIT, |a| a.check("self")["status"] == "ok");
    assert_eq!(agent.check("self")["runs"]["unknown"], 0);
    assert!(agent.log().contains("plugins loaded"), "{}", agent.log());
    assert_eq!(agent.terminate(), 0);

    // `warden compile` fills a cache ahead of a deploy; then nothing
    // compiles at start.
    let state = dir.path().join("deploy-state");
    let compile = |args: &[&str]| {
        let mut all = vec!["compile", "--state-dir", state.to_str().unwrap()];
        all.extend_from_slice(args);
        common::warden(dir.path(), &all, &[])
    };
    let hostile = common::wasm("hostile");
    let first = compile(&[hostile.to_str().unwrap()]);
    assert_eq!(first.code, 0, "{}\n{}", first.stdout, first.stderr);
    assert!(
        first.stdout.starts_with("compiled hostile "),
        "{}",
        first.stdout
    );
    let again = compile(&[hostile.to_str().unwrap()]);
    assert!(
        again.stdout.starts_with("cached   hostile "),
        "{}",
        again.stdout
    );
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"not wasm").unwrap();
    let bad = compile(&[junk.to_str().unwrap(), hostile.to_str().unwrap()]);
    assert_eq!(bad.code, 1);
    assert!(bad.stderr.contains("junk.wasm"), "{}", bad.stderr);
    assert!(
        bad.stdout.contains("cached   hostile"),
        "the others still: {}",
        bad.stdout
    );
}

#[test]
fn systemd_hears_ready_once_plugins_are_loaded_and_the_unit_verifies() {
    use std::os::unix::net::UnixDatagram;
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("notify.sock");
    let listener = UnixDatagram::bind(&socket).unwrap();
    listener.set_read_timeout(Some(WAIT)).unwrap();
    let agent = AgentProcess::start(
        dir.path(),
        &format!(
            "[agent]\nlisten = \"127.0.0.1:{{PORT}}\"\n{}",
            hello("greeter", "1h")
        ),
        &[("NOTIFY_SOCKET", socket.to_str().unwrap())],
    );
    let mut buf = [0u8; 256];
    let n = listener.recv(&mut buf).expect("READY=1 from the agent");
    assert_eq!(&buf[..n], b"READY=1");
    // Ready for systemd is ready for /readyz.
    assert_eq!(agent.get("/readyz").status, 200);
    agent.signal("TERM");
    let n = listener.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"STOPPING=1");

    // docs/warden.service passes systemd's own check (with ExecStart
    // pointing at this build).
    let analyze = Path::new("/usr/bin/systemd-analyze");
    if !analyze.exists() {
        eprintln!("systemd-analyze is not installed; the unit is not verified here");
        return;
    }
    let unit = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/warden.service"),
    )
    .unwrap()
    .replace("/usr/local/bin/warden", common::warden_bin());
    let path = dir.path().join("warden.service");
    std::fs::write(&path, unit).unwrap();
    let out = std::process::Command::new(analyze)
        .args(["verify", path.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        !stderr.contains("warden.service:"),
        "systemd-analyze complains about the unit: {stderr}"
    );
}

#[test]
fn a_backup_taken_while_the_agent_runs_restores_its_history() {
    let dir = tempfile::tempdir().unwrap();
    let agent = AgentProcess::start(
        dir.path(),
        &format!(
            "[agent]\nlisten = \"127.0.0.1:{{PORT}}\"\n{}",
            hello("greeter", "100ms")
        ),
        &[],
    );
    agent.wait_until("some runs", WAIT, |a| runs(a, "greeter") >= 5);
    let copy = dir.path().join("backup.db");
    let b = common::warden(
        dir.path(),
        &[
            "backup",
            copy.to_str().unwrap(),
            "-c",
            agent.config.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(b.code, 0, "{}\n{}", b.stdout, b.stderr);
    assert!(b.stdout.contains("checked"), "{}", b.stdout);
    let again = common::warden(
        dir.path(),
        &[
            "backup",
            copy.to_str().unwrap(),
            "-c",
            agent.config.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(again.code, 1, "an existing file is not overwritten");
    assert_eq!(agent.terminate(), 0);

    // Restore: the copy as the store of a new state directory.
    let restored = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(restored.path().join("state")).unwrap();
    std::fs::copy(&copy, restored.path().join("state/warden.db")).unwrap();
    let agent = AgentProcess::start(
        restored.path(),
        &format!(
            "[agent]\nlisten = \"127.0.0.1:{{PORT}}\"\nstate_dir = \"state\"\n{}",
            hello("greeter", "1h")
        ),
        &[],
    );
    let runs_page = agent.get("/v1/runs?check=greeter&limit=1000").json();
    let n = runs_page["runs"].as_array().unwrap().len();
    assert!(n >= 5, "the history came back: {n} runs");
    assert!(runs(&agent, "greeter") >= 5);
}

#[test]
fn metrics_carry_plugin_state_type_and_instance_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = common::fixture_server();
    let config = |run_on_start: bool| {
        format!(
            "[agent]\nlisten = \"127.0.0.1:{{PORT}}\"\n\
             [[check]]\nname = \"site\"\nplugin = \"http-health\"\nschedule = \"@every 1h\"\n\
             run_on_start = {run_on_start}\nallow.hosts = [\"http://127.0.0.1:{fixture}\"]\n\
             config = {{ url = \"http://127.0.0.1:{fixture}/ok?api_key=s3cr3tvalue123456\" }}\n"
        )
    };
    let agent = AgentProcess::start(dir.path(), &config(true), &[]);
    agent.wait_until("a first run", WAIT, |a| a.check("site")["status"] == "ok");
    let target = format!("http://127.0.0.1:{fixture}/ok?api_key=***");
    let expected = [
        format!("probe_success{{check=\"site\",plugin=\"http-health\",instance=\"{target}\"}} 1"),
        format!("warden_check_up{{check=\"site\",plugin=\"http-health\",instance=\"{target}\"}} 1"),
        format!(
            "warden_check_status{{check=\"site\",plugin=\"http-health\",instance=\"{target}\",state_type=\"hard\"}} 0"
        ),
        format!(
            "warden_check_status{{check=\"site\",plugin=\"http-health\",instance=\"{target}\",state_type=\"soft\"}} 0"
        ),
    ];
    let metrics = agent.get("/metrics").body;
    for series in &expected {
        assert!(metrics.contains(series.as_str()), "{series} in\n{metrics}");
    }
    assert!(
        !metrics.contains("s3cr3tvalue"),
        "the key in the URL is masked"
    );
    assert_eq!(agent.terminate(), 0);

    // Restarted, with no run due for an hour: the latest run's metrics
    // are exposed at once, read back from the store.
    let agent = AgentProcess::start(dir.path(), &config(false), &[]);
    let metrics = agent.get("/metrics").body;
    for series in &expected {
        assert!(
            metrics.contains(series.as_str()),
            "{series} after the restart in\n{metrics}"
        );
    }
    assert_eq!(agent.check("site")["runs"]["ok"], 1, "no run since");
    assert_eq!(agent.terminate(), 0);
}

//! End-to-end: the long-running agent (`warden run`) with temporary
//! directories, real plugins, and its HTTP API on 127.0.0.1.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use sha2::{Digest, Sha256};

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

const WAIT: Duration = Duration::from_secs(30);

fn last_run(agent: &AgentProcess, check: &str) -> serde_json::Value {
    agent.check(check)["last_run"].clone()
}

#[test]
fn plugin_directory_hot_reload() {
    let dir = tempfile::tempdir().unwrap();
    let agent = AgentProcess::start(
        dir.path(),
        r#"
[agent]
listen = "127.0.0.1:{PORT}"
[[check]]
name = "probe"
plugin = "probe"
schedule = "@every 200ms"
config = { mode = "ok" }
"#,
        &[],
    );
    let file = dir.path().join("plugins/probe.wasm");

    // No file yet: the check reports the plugin missing.
    agent.wait_until("the check reports the plugin missing", WAIT, |a| {
        last_run(a, "probe")["error"]
            .as_str()
            .is_some_and(|e| e.contains("is missing"))
    });

    // Drop it: its check starts running it.
    let v1 = std::fs::read(wasm("hostile")).unwrap();
    drop_atomically(&file, &v1);
    let sha1 = sha(&v1);
    agent.wait_until("v1 runs", WAIT, |a| {
        last_run(a, "probe")["plugin_sha256"] == sha1.as_str()
    });
    assert_eq!(last_run(&agent, "probe")["status"], "ok");

    // Replace it: the new version runs next.
    let v2 = variant(&v1, "v2");
    let sha2 = sha(&v2);
    drop_atomically(&file, &v2);
    agent.wait_until("v2 runs", WAIT, |a| {
        last_run(a, "probe")["plugin_sha256"] == sha2.as_str()
    });

    // A corrupt file: the error shows in the API and v2 keeps running.
    std::fs::write(&file, b"\0asm garbage that is not a component").unwrap();
    agent.wait_until("the load error shows", WAIT, |a| {
        a.get("/v1/plugins/probe").json()["error"]["message"].is_string()
    });
    let plugin = agent.get("/v1/plugins/probe").json();
    assert_eq!(plugin["state"], "loaded", "{plugin}");
    assert_eq!(plugin["sha256"], sha2.as_str());
    assert!(plugin["load_errors"].as_u64().unwrap() >= 1);
    let before = agent.check("probe")["runs"]["ok"].as_u64().unwrap();
    agent.wait_until("v2 keeps running", WAIT, |a| {
        a.check("probe")["runs"]["ok"].as_u64().unwrap() > before + 2
    });
    assert_eq!(last_run(&agent, "probe")["plugin_sha256"], sha2.as_str());
    let metrics = agent.get("/metrics").body;
    assert!(
        metrics.contains("warden_plugin_load_errors_total{plugin=\"probe\"}"),
        "{metrics}"
    );

    // Delete it: the check reports the plugin missing again.
    std::fs::remove_file(&file).unwrap();
    agent.wait_until("missing after delete", WAIT, |a| {
        last_run(a, "probe")["error"]
            .as_str()
            .is_some_and(|e| e.contains("is missing"))
    });
    assert_eq!(agent.get("/v1/plugins/probe").code(), "plugin_not_found");
}

#[test]
fn a_file_named_like_a_standard_plugin_overrides_it() {
    let dir = tempfile::tempdir().unwrap();
    let agent = AgentProcess::start(dir.path(), "[agent]\nlisten = \"127.0.0.1:{PORT}\"\n", &[]);
    assert_eq!(
        agent.get("/v1/plugins/hostile").json()["origin"]["kind"],
        "file"
    );
    let embedded = agent.get("/v1/plugins/hello").json();
    assert_eq!(embedded["origin"]["kind"], "embedded");
    let custom = variant(&std::fs::read(wasm("hello")).unwrap(), "custom");
    drop_atomically(&dir.path().join("plugins/hello.wasm"), &custom);
    agent.wait_until("the file overrides", WAIT, |a| {
        a.get("/v1/plugins/hello").json()["origin"]["kind"] == "file"
    });
    assert_eq!(
        agent.get("/v1/plugins/hello").json()["sha256"],
        sha(&custom).as_str()
    );
    assert!(
        agent.log().contains("overrides the standard plugin"),
        "{}",
        agent.log()
    );
    std::fs::remove_file(dir.path().join("plugins/hello.wasm")).unwrap();
    agent.wait_until("the standard plugin is back", WAIT, |a| {
        a.get("/v1/plugins/hello").json()["origin"]["kind"] == "embedded"
    });
}

#[test]
fn history_and_state_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = r#"
[agent]
listen = "127.0.0.1:{PORT}"
[[check]]
name = "greeter"
plugin = "hello"
schedule = "@every 200ms"
"#;
    let agent = AgentProcess::start(dir.path(), config, &[]);
    agent.wait_until("three runs", WAIT, |a| {
        a.check("greeter")["runs"]["ok"].as_u64().unwrap_or(0) >= 3
    });
    assert_eq!(agent.terminate(), 0, "SIGTERM exits 0");

    let before: Vec<String> = {
        let db = dir.path().join(".warden/warden.db");
        assert!(warden::store::integrity_ok(&db).unwrap());
        let conn = rusqlite::Connection::open(&db).unwrap();
        let mut stmt = conn.prepare("SELECT run_id FROM runs ORDER BY id").unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let n = before.len();
    assert!(n >= 3);

    let agent = AgentProcess::start(dir.path(), config, &[]);
    let runs = agent.get("/v1/runs?check=greeter&limit=1000").json();
    let ids: Vec<&str> = runs["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["run_id"].as_str().unwrap())
        .collect();
    for id in &before {
        assert!(
            ids.contains(&id.as_str()),
            "run {id} lost across the restart"
        );
    }
    // The plugin's state carried over: the first run after the restart
    // counts on from where the last one stopped.
    let next = format!("(run {})", n + 1);
    agent.wait_until("a run after the restart", WAIT, |a| {
        a.get("/v1/runs?check=greeter&limit=1000").json()["runs"]
            .as_array()
            .is_some_and(|runs| {
                runs.iter()
                    .any(|r| r["summary"].as_str().is_some_and(|s| s.ends_with(&next)))
            })
    });
    // Counters were restored from the store.
    assert!(agent.check("greeter")["runs"]["ok"].as_u64().unwrap() > n as u64);
}

#[test]
fn kill_9_during_a_burst_loses_no_acknowledged_run() {
    let dir = tempfile::tempdir().unwrap();
    let mut config =
        String::from("[agent]\nlisten = \"127.0.0.1:{PORT}\"\nmax_concurrent_runs = 8\n");
    for i in 0..40 {
        config.push_str(&format!(
            "[[check]]\nname = \"burst-{i}\"\nplugin = \"hello\"\nschedule = \"@every 100ms\"\n"
        ));
    }
    let agent = AgentProcess::start(dir.path(), &config, &[]);
    agent.wait_until("a burst of runs", WAIT, |a| {
        a.get("/v1/runs?limit=1000").json()["runs"]
            .as_array()
            .map_or(0, |r| r.len())
            >= 300
    });
    // Everything the API has shown is acknowledged; kill mid-burst.
    let acknowledged: Vec<String> = agent.get("/v1/runs?limit=1000").json()["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["run_id"].as_str().unwrap().to_string())
        .collect();
    let port = agent.port;
    agent.kill9();

    let db = dir.path().join(".warden/warden.db");
    assert!(
        warden::store::integrity_ok(&db).unwrap(),
        "the store is intact after kill -9"
    );
    let agent = AgentProcess::start_with(dir.path(), &dir.path().join("warden.toml"), port, &[]);
    let conn = rusqlite::Connection::open(&db).unwrap();
    for id in &acknowledged {
        let n: i64 = conn
            .query_row("SELECT COUNT(*) FROM runs WHERE run_id = ?1", [id], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(n, 1, "acknowledged run {id} lost");
    }
    drop(agent);
}

#[test]
fn scheduled_unknown_runs_are_retried_with_backoff() {
    let dir = tempfile::tempdir().unwrap();
    let agent = AgentProcess::start(
        dir.path(),
        r#"
[agent]
listen = "127.0.0.1:{PORT}"
[[check]]
name = "flaky"
plugin = "hostile"
schedule = "@every 3s"
splay = "0s"
retries = 1
config = { mode = "error" }
"#,
        &[],
    );
    agent.wait_until("a retry", WAIT, |a| {
        a.get("/v1/runs?check=flaky").json()["runs"]
            .as_array()
            .is_some_and(|r| r.iter().any(|run| run["attempt"] == 2))
    });
    let runs = agent.get("/v1/runs?check=flaky").json();
    let runs = runs["runs"].as_array().unwrap();
    let retry = runs.iter().find(|r| r["attempt"] == 2).unwrap();
    let first = runs
        .iter()
        .find(|r| r["attempt"] == 1 && r["scheduled_unix_ms"] == retry["scheduled_unix_ms"])
        .expect("the retry serves the same due time as the first attempt");
    let gap =
        retry["started_unix_ms"].as_i64().unwrap() - first["finished_unix_ms"].as_i64().unwrap();
    assert!(gap >= 1000, "the first backoff is 1s, got {gap}ms");
    assert!(
        runs.iter().all(|r| r["attempt"].as_u64().unwrap() <= 2),
        "retries = 1 allows two attempts"
    );
}

#[test]
fn production_profile_refuses_unsafe_settings() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prod.toml");
    std::fs::write(
        &config,
        "[agent]\nprofile = \"production\"\nlisten = \"0.0.0.0:7999\"\n[api]\ncors_origins = [\"*\"]\n[[check]]\nname = \"a\"\nplugin = \"custom\"\n",
    )
    .unwrap();
    let run = warden(dir.path(), &["run", "-c", config.to_str().unwrap()], &[]);
    assert_eq!(run.code, 1);
    for reason in [
        "no API token",
        "beyond loopback",
        "cors_origins contains \"*\"",
        "plugin \"custom\" is not pinned",
    ] {
        assert!(
            run.stderr.contains(reason),
            "{reason} missing from:\n{}",
            run.stderr
        );
    }
    // WARDEN_PROFILE turns the same refusals on for a local config.
    std::fs::write(&config, "[[check]]\nname = \"a\"\nplugin = \"custom\"\n").unwrap();
    let run = warden(
        dir.path(),
        &["validate", "-c", config.to_str().unwrap()],
        &[("WARDEN_PROFILE", "production")],
    );
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("production profile refuses to start"),
        "{}",
        run.stderr
    );
}

#[test]
fn validate_reports_every_problem_and_asks_the_plugins() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("warden.toml");
    std::fs::write(
        &config,
        r#"
[[check]]
name = "good"
plugin = "hello"

[[check]]
name = "bad-config"
plugin = "hello"
config = { greeting = 7 }

[[check]]
name = "no-plugin"
plugin = "nowhere"
"#,
    )
    .unwrap();
    let run = warden(
        dir.path(),
        &["validate", "-c", config.to_str().unwrap()],
        &[],
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("check \"bad-config\": config: config.greeting"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("warning: ")
            && run
                .stderr
                .contains("check \"no-plugin\": plugin \"nowhere\" is not in"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("\"good\""), "{}", run.stderr);
    assert!(
        !dir.path().join(".warden/warden.db").exists(),
        "validate starts nothing"
    );

    std::fs::write(&config, "[[check]]\nname = \"good\"\nplugin = \"hello\"\n").unwrap();
    let run = warden(
        dir.path(),
        &["validate", "-c", config.to_str().unwrap()],
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("ok (1 checks"), "{}", run.stdout);

    std::fs::write(&config, "[[check]]\nname = \"x\"\nplugin = \"hello\"\ntimeout = \"fast\"\n[agent]\nlisten = \"here\"\n").unwrap();
    let run = warden(dir.path(), &["run", "-c", config.to_str().unwrap()], &[]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("warden.toml:4: check \"x\": timeout"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("warden.toml:6: [agent] listen"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_partially_written_file_is_never_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let agent = AgentProcess::start(dir.path(), "[agent]\nlisten = \"127.0.0.1:{PORT}\"\n", &[]);
    let full = variant(&std::fs::read(wasm("hostile")).unwrap(), "slow-writer");
    let path = dir.path().join("plugins/slowly.wasm");
    // Written in place, in pieces, with pauses shorter than the debounce.
    let mut f = std::fs::File::create(&path).unwrap();
    for chunk in full.chunks(full.len() / 8 + 1) {
        std::io::Write::write_all(&mut f, chunk).unwrap();
        std::io::Write::flush(&mut f).unwrap();
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(f);
    agent.wait_until("the complete file is loaded", WAIT, |a| {
        a.get("/v1/plugins/slowly").json()["state"] == "loaded"
    });
    let p = agent.get("/v1/plugins/slowly").json();
    assert_eq!(p["sha256"], sha(&full).as_str());
    assert_eq!(p["load_errors"], 0, "a partial file was tried: {p}");
}

#[test]
fn sigterm_lets_runs_in_flight_finish() {
    let dir = tempfile::tempdir().unwrap();
    let config = r#"
[agent]
listen = "127.0.0.1:{PORT}"
shutdown_grace = "20s"
[[check]]
name = "slow"
plugin = "hostile"
schedule = "@every 1h"
config = { mode = "slow", ms = 2000 }
"#;
    let agent = AgentProcess::start(dir.path(), config, &[]);
    let r = http(
        agent.port,
        "POST",
        "/v1/checks/slow/run?wait=false",
        &[],
        b"",
    );
    assert_eq!(r.status, 202);
    agent.wait_until("the run is in flight", WAIT, |a| {
        a.check("slow")["running"] == true
    });
    assert_eq!(agent.terminate(), 0);
    let conn = rusqlite::Connection::open(dir.path().join(".warden/warden.db")).unwrap();
    let (n, summary): (i64, String) = conn
        .query_row(
            "SELECT COUNT(*), MAX(summary) FROM runs WHERE check_name = 'slow'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(
        (n, summary.as_str()),
        (1, "slept"),
        "the run in flight finished and was stored"
    );
}

#[test]
fn the_global_concurrency_limit_holds() {
    let dir = tempfile::tempdir().unwrap();
    let mut config =
        String::from("[agent]\nlisten = \"127.0.0.1:{PORT}\"\nmax_concurrent_runs = 2\n");
    for i in 0..6 {
        config.push_str(&format!(
            "[[check]]\nname = \"slow-{i}\"\nplugin = \"hostile\"\nschedule = \"@every 2s\"\nsplay = \"0s\"\nconfig = {{ mode = \"slow\", ms = 400 }}\n"
        ));
    }
    let agent = AgentProcess::start(dir.path(), &config, &[]);
    agent.wait_until("a dozen runs", WAIT, |a| {
        a.get("/v1/runs?limit=1000").json()["runs"]
            .as_array()
            .map_or(0, |r| r.len())
            >= 12
    });
    let runs = agent.get("/v1/runs?limit=1000").json();
    let spans: Vec<(i64, i64)> = runs["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["started_unix_ms"].as_i64().unwrap(),
                r["finished_unix_ms"].as_i64().unwrap(),
            )
        })
        .collect();
    let most = spans
        .iter()
        .map(|(s, _)| spans.iter().filter(|(s2, f2)| s2 <= s && s < f2).count())
        .max()
        .unwrap();
    assert_eq!(
        most, 2,
        "at most 2 runs at once, and the limit was used: {spans:?}"
    );
}

#[test]
fn output_references_resolve_at_run_time() {
    let dir = tempfile::tempdir().unwrap();
    let agent = AgentProcess::start(
        dir.path(),
        r#"
[agent]
listen = "127.0.0.1:{PORT}"
[[check]]
name = "solana-rpc"
plugin = "hostile"
schedule = "@yearly"
config = { mode = "outputs", value = "http://127.0.0.1:9/?api-key=s3cr3t" }
[[check]]
name = "consumer"
plugin = "hostile"
schedule = "@yearly"
config = { mode = "outputs", value = "using ${output:solana-rpc.TEST_VALUE} now" }
"#,
        &[],
    );
    let run = |check: &str| {
        let r = http(
            agent.port,
            "POST",
            &format!("/v1/checks/{check}/run"),
            &[],
            b"",
        );
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()
    };
    // Not published yet: unknown, naming the output; the plugin never ran.
    let r = run("consumer");
    assert_eq!(r["status"], "unknown", "{r}");
    let summary = r["summary"].as_str().unwrap();
    assert!(
        summary.contains("solana-rpc.TEST_VALUE") && summary.contains("not published yet"),
        "{summary}"
    );
    // Published: the consumer gets the current value, in clear.
    run("solana-rpc");
    let r = run("consumer");
    assert_eq!(r["status"], "ok", "{r}");
    let env = agent.get("/v1/outputs?check=consumer").json();
    assert!(env.to_string().contains("TEST_VALUE"), "{env}");
    assert!(
        r["summary"]
            .as_str()
            .unwrap()
            .starts_with("published using http://127.0.0.1:9/?api-key="),
        "{r}"
    );
    // A reference to a check that does not exist is refused at load.
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[[check]]\nname = \"c\"\nplugin = \"hostile\"\nconfig = { value = \"${output:nope.KEY}\" }\n",
    )
    .unwrap();
    let v = warden(dir.path(), &["validate", "-c", bad.to_str().unwrap()], &[]);
    assert_ne!(v.code, 0);
    let all = format!("{}{}", v.stdout, v.stderr);
    assert!(
        all.contains("config.value") && all.contains("nope.KEY") && all.contains("names no check"),
        "{all}"
    );
}

#[test]
fn metrics_pass_promtool_whatever_plugins_report() {
    let promtool = debian_tool("promtool", "prometheus");
    let dir = tempfile::tempdir().unwrap();
    let config = r#"
[agent]
listen = "127.0.0.1:{PORT}"
[[check]]
name = "greeter"
plugin = "hello"
schedule = "@every 200ms"
[[check]]
name = "bad"
plugin = "hostile"
schedule = "@every 200ms"
config = { mode = "bad-metrics" }
"#;
    let agent = AgentProcess::start(dir.path(), config, &[]);
    agent.wait_until("both checks ran", WAIT, |a| {
        a.check("greeter")["runs"]["ok"].as_u64().unwrap_or(0) >= 1
            && a.check("bad")["runs"]["ok"].as_u64().unwrap_or(0) >= 1
    });
    let metrics = agent.get("/metrics").body;
    let mut child = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{metrics}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The good series are there once; the rest are dropped and counted.
    let lines: Vec<&str> = metrics.lines().collect();
    let count = |prefix: &str| lines.iter().filter(|l| l.starts_with(prefix)).count();
    assert_eq!(count("hostile_good{"), 1, "{metrics}");
    assert_eq!(count("hostile_x_y{"), 1, "{metrics}");
    assert_eq!(count("hostile_label{"), 0, "{metrics}");
    assert!(
        metrics.contains("# TYPE hostile_events_total counter"),
        "{metrics}"
    );
    assert!(
        metrics.contains("hostile_not_a_number{check=\"bad\",plugin=\"hostile\"} NaN"),
        "{metrics}"
    );
    assert!(metrics.contains("warden_up 1\n"), "{metrics}");
    assert!(
        metrics.contains("warden_check_metrics_dropped{check=\"bad\"} 9"),
        "{metrics}"
    );
    assert!(metrics.contains("warden_check_metrics_dropped{check=\"greeter\"} 0"));
}

#[test]
fn a_damaged_store_is_refused_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = dir.path().join("warden.toml");
    std::fs::write(&config, format!("[agent]\nlisten = \"127.0.0.1:{port}\"\n")).unwrap();
    // A store with many pages, then damage to every page after the first
    // (the header and the schema stay readable).
    let db = dir.path().join(".warden/warden.db");
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch("CREATE TABLE t (x TEXT); WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000) INSERT INTO t SELECT printf('%0100d', i) FROM n;")
            .unwrap();
    }
    let mut bytes = std::fs::read(&db).unwrap();
    assert!(bytes.len() > 16 * 4096, "the store has many pages");
    for b in &mut bytes[2 * 4096..] {
        *b = 0xA5;
    }
    std::fs::write(&db, &bytes).unwrap();
    let run = warden(dir.path(), &["run", "-c", config.to_str().unwrap()], &[]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("is damaged") && run.stderr.contains("warden.db"),
        "{}",
        run.stderr
    );
    // Left as it was, for recovery.
    assert!(
        std::fs::read(&db).unwrap() == bytes,
        "the damaged store was modified"
    );
}

#[test]
fn a_full_disk_is_reported_and_survived() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let _disk = Tmpfs::mount(&state, "96m");
    let config = r#"
[agent]
listen = "127.0.0.1:{PORT}"
state_dir = "{DIR}/state"
[[check]]
name = "greeter"
plugin = "hello"
schedule = "@every 100ms"
"#;
    let agent = AgentProcess::start(dir.path(), config, &[]);
    let ok_runs = |a: &AgentProcess| a.check("greeter")["runs"]["ok"].as_u64().unwrap_or(0);
    agent.wait_until("some runs", WAIT, |a| ok_runs(a) >= 5);
    assert_eq!(agent.get("/readyz").status, 200);

    // Fill the disk.
    let filler = state.join("filler");
    {
        let mut f = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0u8; 256 << 10];
        while f.write_all(&chunk).is_ok() {}
    }
    agent.wait_until("/readyz reports the failing store", WAIT, |a| {
        let r = a.get("/readyz");
        r.status == 503 && r.code() == "not_ready" && r.body.contains("store writes fail")
    });
    let metrics = agent.get("/metrics").body;
    assert!(metrics.contains("warden_store_writable 0"), "{metrics}");
    let failures: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("warden_store_write_failures_total "))
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(failures > 0, "{metrics}");
    let recorded_while_full = agent.get("/v1/runs?check=greeter&limit=1000").json()["runs"]
        .as_array()
        .unwrap()
        .len();
    assert!(recorded_while_full >= 5);

    // Space comes back: writes resume on their own, nothing acknowledged
    // was lost.
    std::fs::remove_file(&filler).unwrap();
    agent.wait_until("/readyz is ready again", WAIT, |a| {
        a.get("/readyz").status == 200
    });
    let before = ok_runs(&agent);
    agent.wait_until("runs are recorded again", WAIT, |a| ok_runs(a) > before);
    let runs = agent.get("/v1/runs?check=greeter&limit=1000").json()["runs"]
        .as_array()
        .unwrap()
        .len();
    assert!(
        runs > recorded_while_full,
        "{runs} <= {recorded_while_full}"
    );
    assert!(!agent.log().contains("panicked"), "{}", agent.log());
    assert_eq!(agent.terminate(), 0);
}

/// A check whose config the plugin refused at start never runs on that
/// plugin version: every run ends `unknown` with the refusal.
#[test]
fn a_check_whose_config_was_refused_does_not_run() {
    let dir = tempfile::tempdir().unwrap();
    let agent = AgentProcess::start(
        dir.path(),
        r#"
[agent]
listen = "127.0.0.1:{PORT}"
[[check]]
name = "picky"
plugin = "hostile"
schedule = "@every 1h"
config = { mode = "picky" }
allow.env = ["HOSTILE_PICKY_OK"]
"#,
        &[("HOSTILE_PICKY_OK", "1")],
    );
    let r = http(agent.port, "POST", "/v1/checks/picky/run", &[], b"");
    assert_eq!(r.status, 200, "{}", r.body);
    let run = r.json();
    assert_eq!(run["status"], "unknown", "{run}");
    let error = run["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("refused this check's config")
            && error.contains("picky: this config is refused"),
        "{run}"
    );
    assert!(
        agent
            .log()
            .contains("the plugin refuses this check's config")
    );
}

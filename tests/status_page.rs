//! The status page's data, against the real binary: uptime and history
//! from the store's rollups (`/v1/checks/{name}/uptime` and `/history`)
//! agree with the stored runs, survive kill -9, and bad requests are
//! refused naming the parameter.

mod common;

use std::time::Duration;

use common::AgentProcess;

const WAIT: Duration = Duration::from_secs(60);

fn config(fixture: u16) -> String {
    // `down` probes a URL that answers 500: critical on every run.
    format!(
        "[agent]\nlisten = \"127.0.0.1:{{PORT}}\"\n\
         [[check]]\nname = \"up\"\nplugin = \"hello\"\nschedule = \"@every 200ms\"\n\
         [[check]]\nname = \"down\"\nplugin = \"hello\"\nschedule = \"@every 200ms\"\n\
         config = {{ url = \"http://127.0.0.1:{fixture}/fail\" }}\n\
         allow.hosts = [\"http://127.0.0.1:{fixture}\"]\n"
    )
}

fn stored_runs(agent: &AgentProcess, check: &str) -> u64 {
    agent
        .get(&format!("/v1/runs?check={check}&limit=1000"))
        .json()["runs"]
        .as_array()
        .unwrap()
        .len() as u64
}

fn uptime(agent: &AgentProcess, check: &str, window: &str) -> serde_json::Value {
    let r = agent.get(&format!("/v1/checks/{check}/uptime?window={window}"));
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["windows"][window].clone()
}

fn total(summary: &serde_json::Value) -> u64 {
    ["ok", "warning", "critical", "unknown"]
        .iter()
        .map(|s| summary["runs"][s].as_u64().unwrap())
        .sum()
}

#[test]
fn uptime_and_history_agree_with_the_runs_and_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = common::fixture_server();
    let agent = AgentProcess::start(dir.path(), &config(fixture), &[]);
    agent.wait_until("runs of both", WAIT, |a| {
        stored_runs(a, "up") >= 5 && stored_runs(a, "down") >= 5
    });
    for window in ["24h", "7d", "30d", "90d"] {
        // Runs go on meanwhile: the stored count lies between two reads.
        let before = total(&uptime(&agent, "up", window)["summary"]);
        let runs = stored_runs(&agent, "up");
        let after = total(&uptime(&agent, "up", window)["summary"]);
        assert!(
            before <= runs && runs <= after,
            "{window}: {before} <= {runs} <= {after}"
        );
    }
    let up = uptime(&agent, "up", "24h");
    assert_eq!(up["summary"]["uptime"], 1.0, "{up}");
    assert_eq!(up["resolution"], "1h");
    assert!(
        up["summary"]["duration_p50"].as_f64().unwrap() > 0.0,
        "{up}"
    );
    let down = uptime(&agent, "down", "30d");
    assert_eq!(down["resolution"], "1d");
    assert_eq!(down["summary"]["uptime"], 0.0, "{down}");
    assert_eq!(down["summary"]["runs"]["ok"], 0);
    // Every window at once.
    let all = agent.get("/v1/checks/up/uptime").json();
    assert_eq!(all["windows"].as_object().unwrap().len(), 4, "{all}");

    // History: the buckets with runs, oldest first, each with its start.
    let h = agent.get("/v1/checks/down/history?resolution=1h").json();
    let buckets = h["buckets"].as_array().unwrap();
    assert!(!buckets.is_empty() && buckets.len() <= 2, "{h}");
    assert!(
        buckets[0]["start"].as_str().unwrap().ends_with(":00:00Z"),
        "{h}"
    );
    assert_eq!(buckets.last().unwrap()["uptime"], 0.0);
    let d = agent
        .get("/v1/checks/up/history?resolution=1d&since=2020-01-01T00:00:00Z")
        .json();
    assert!(d["buckets"].as_array().unwrap().len() <= 2, "{d}");
    assert!(
        d["buckets"][0]["start"]
            .as_str()
            .unwrap()
            .ends_with("T00:00:00Z"),
        "{d}"
    );

    // Bad requests name the parameter; an unknown check is 404.
    for (path, code, needle) in [
        ("/v1/checks/up/uptime?window=1y", 400, "window"),
        ("/v1/checks/up/history?resolution=5m", 400, "resolution"),
        ("/v1/checks/up/history?since=yesterday", 400, "since"),
        ("/v1/checks/nope/uptime", 404, "nope"),
        ("/v1/checks/nope/history", 404, "nope"),
    ] {
        let r = agent.get(path);
        assert_eq!(r.status, code, "{path}: {}", r.body);
        assert!(r.body.contains(needle), "{path}: {}", r.body);
    }

    // kill -9: what was counted is still there after a restart.
    let counted = total(&uptime(&agent, "up", "24h")["summary"]);
    agent.kill9();
    let agent = AgentProcess::start(dir.path(), &config(fixture), &[]);
    let again = total(&uptime(&agent, "up", "24h")["summary"]);
    assert!(again >= counted, "{again} >= {counted}");
    assert!(again <= stored_runs(&agent, "up"));
}

#[test]
fn badges_in_svg_and_shields_json_public_where_configured() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = common::fixture_server();
    let config = config(fixture).replace(
        "[agent]",
        "[api]\ntoken_env = \"WARDEN_TEST_TOKEN\"\nrequire_token_for_reads = true\n\
         [status_page]\npublic = [\"up\"]\nuptime_thresholds = [100.0, 99.0, 0.0]\n[agent]",
    );
    let agent = AgentProcess::start(dir.path(), &config, &[("WARDEN_TEST_TOKEN", "s3cret")]);
    let port = agent.port;
    let get = |path: &str, token: bool| {
        let auth = [("authorization", "Bearer s3cret")];
        common::http(port, "GET", path, if token { &auth[..] } else { &[] }, b"")
    };
    agent.wait_until("runs of both", WAIT, |_| {
        get("/v1/runs?check=down&limit=5", true).json()["runs"]
            .as_array()
            .is_some_and(|r| r.len() >= 3)
            && get("/v1/runs?check=up&limit=5", true).json()["runs"]
                .as_array()
                .is_some_and(|r| r.len() >= 3)
    });

    // `up` is public: no token needed; an SVG labelled for screen readers.
    let r = get("/badge/up/status.svg", false);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("content-type"), Some("image/svg+xml"));
    assert_eq!(r.header("cache-control"), Some("public, max-age=60"));
    assert!(
        r.body.starts_with("<svg ") && r.body.contains("aria-label=\"up: ok\""),
        "{}",
        r.body
    );
    assert!(r.body.contains("#2f7d00"), "bright green: {}", r.body);
    let svg = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys, xml.etree.ElementTree as E; E.fromstring(sys.stdin.read())",
        ])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(r.body.as_bytes())?;
            c.wait()
        })
        .unwrap();
    assert!(svg.success(), "the SVG parses as XML");
    let u = get("/badge/up/uptime.svg?window=30d", false);
    assert!(
        u.body.contains("aria-label=\"up uptime 30d: 100%\""),
        "{}",
        u.body
    );
    let t = get("/badge/up/response-time.svg", false);
    assert!(
        t.body.contains("up response 24h: ") && t.body.contains(" ms\""),
        "{}",
        t.body
    );
    let j = get("/badge/up/status.json", false).json();
    assert_eq!(
        j,
        serde_json::json!({"schemaVersion": 1, "label": "up", "message": "ok", "color": "brightgreen", "cacheSeconds": 60})
    );

    // `down` is not public: the read policy applies.
    assert_eq!(get("/badge/down/status.svg", false).status, 401);
    let d = get("/badge/down/status.svg", true);
    assert_eq!(d.header("cache-control"), Some("private, max-age=60"));
    assert!(
        d.body.contains("aria-label=\"down: critical\""),
        "{}",
        d.body
    );
    // Thresholds are the config's: 0% is at the third (0.0), yellow.
    let du = get("/badge/down/uptime.json?window=24h", true).json();
    assert_eq!(du["message"], "0%");
    assert_eq!(du["color"], "yellow", "{du}");

    // Bad requests name what is wrong.
    let r = get("/badge/up/latency.svg", false);
    assert_eq!(r.status, 404);
    assert!(
        r.body.contains("status, uptime and response-time"),
        "{}",
        r.body
    );
    let r = get("/badge/up/uptime.svg?window=1y", false);
    assert_eq!(r.status, 400);
    assert!(r.body.contains("window"), "{}", r.body);
    assert_eq!(get("/badge/nope/status.svg", true).status, 404);
    // The rest of the API still needs the token.
    assert_eq!(get("/v1/checks/up/uptime", false).status, 401);
}

#[test]
fn a_hard_problem_opens_an_incident_with_its_timeline_and_recovery_closes_it() {
    let dir = tempfile::tempdir().unwrap();
    let r = common::notify::Receiver::start(dir.path(), common::free_port());
    r.health(200);
    // `quiet` fails from the start, inside a maintenance window.
    std::fs::write(dir.path().join("health-quiet"), "500").unwrap();
    let p = r.port;
    let rfc = |secs: i64| {
        chrono::DateTime::from_timestamp(chrono::Utc::now().timestamp() + secs, 0)
            .unwrap()
            .to_rfc3339()
    };
    let config = format!(
        "[agent]\nlisten = \"127.0.0.1:{{PORT}}\"\n\
         [[notifier]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:{p}/hook\"\n\
         [[maintenance]]\nname = \"deploy\"\nchecks = [\"quiet\"]\nstart = \"{}\"\nend = \"{}\"\n\
         [[check]]\nname = \"svc\"\nplugin = \"hello\"\nschedule = \"@every 200ms\"\n\
         failure_threshold = 2\nsuccess_threshold = 1\nnotify = [\"hook\"]\n\
         config = {{ url = \"http://127.0.0.1:{p}/health\" }}\nallow.hosts = [\"http://127.0.0.1:{p}\"]\n\
         [[check]]\nname = \"quiet\"\nplugin = \"hello\"\nschedule = \"@every 200ms\"\nnotify = [\"hook\"]\n\
         config = {{ url = \"http://127.0.0.1:{p}/health/quiet\" }}\nallow.hosts = [\"http://127.0.0.1:{p}\"]\n",
        rfc(-3600),
        rfc(3600)
    );
    let agent = AgentProcess::start(dir.path(), &config, &[]);
    let incidents = |a: &AgentProcess, q: &str| {
        a.get(&format!("/v1/incidents?check=svc{q}")).json()["incidents"]
            .as_array()
            .unwrap()
            .clone()
    };
    agent.wait_until("a passing run", WAIT, |a| {
        a.check("svc")["runs"]["ok"].as_u64().unwrap_or(0) >= 2
    });
    assert!(incidents(&agent, "").is_empty(), "no problem, no incident");

    r.health(500);
    agent.wait_until("an open incident", WAIT, |a| {
        !incidents(a, "&open=true").is_empty()
    });
    let open = &incidents(&agent, "&open=true")[0];
    assert_eq!(open["severity"], "critical", "{open}");
    assert!(open["ended_unix_ms"].is_null());
    let id = open["id"].as_i64().unwrap();
    let note = |body: &str| {
        common::http(
            agent.port,
            "POST",
            &format!("/v1/incidents/{id}/notes"),
            &[("content-type", "application/json")],
            body.as_bytes(),
        )
    };
    let n = note(
        r#"{"note": "looking into it; token ghp_R8sT2uV4wX6yZ8aB0cD2eF4gH6iJ8kL0mN2p leaked?", "author": "ops"}"#,
    );
    assert_eq!(n.status, 201, "{}", n.body);
    assert!(
        !n.body.contains("ghp_R8sT2uV4wX6yZ8aB0cD2eF4gH6iJ8kL0mN2p"),
        "notes are redacted: {}",
        n.body
    );
    let bad = note(r#"{"note": "  "}"#);
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("note"), "{}", bad.body);
    let missing = common::http(
        agent.port,
        "POST",
        "/v1/incidents/999999/notes",
        &[],
        br#"{"note": "x"}"#,
    );
    assert_eq!(missing.status, 404);
    assert!(
        missing.body.contains("incident_not_found"),
        "{}",
        missing.body
    );
    assert_eq!(agent.get("/v1/incidents/abc").status, 404);

    r.health(200);
    agent.wait_until("the incident closed", WAIT, |a| {
        incidents(a, "&open=true").is_empty()
    });
    agent.wait_until("the resolve sent", WAIT, |_| {
        r.at("/hook")
            .iter()
            .any(|h| h.to_string().contains("resolved"))
    });
    let all = incidents(&agent, "");
    assert_eq!(all.len(), 1, "one incident for one problem: {all:?}");
    let got = agent.get(&format!("/v1/incidents/{id}")).json();
    assert!(
        got["incident"]["ended_unix_ms"].as_i64().unwrap()
            >= got["incident"]["started_unix_ms"].as_i64().unwrap()
    );
    let kinds: Vec<&str> = got["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.first(), Some(&"opened"), "{got}");
    assert_eq!(kinds.last(), Some(&"resolved"), "{got}");
    assert!(
        kinds.contains(&"note") && kinds.contains(&"notification"),
        "{got}"
    );
    let texts: Vec<&str> = got["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "notification")
        .map(|e| e["text"].as_str().unwrap())
        .collect();
    assert!(
        texts
            .iter()
            .any(|t| t.starts_with("firing critical to hook")),
        "{texts:?}"
    );
    assert!(!kinds.contains(&"maintenance"), "{got}");

    // An incident inside a maintenance window says so on its timeline.
    let quiet = agent.get("/v1/incidents?check=quiet").json();
    let qid = quiet["incidents"][0]["id"]
        .as_i64()
        .expect("quiet's problem is an incident too");
    let q = agent.get(&format!("/v1/incidents/{qid}")).json();
    let entry = q["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "maintenance")
        .cloned()
        .unwrap_or_default();
    assert!(
        entry["text"]
            .as_str()
            .unwrap_or("")
            .starts_with("in maintenance window \"deploy\" until "),
        "{q}"
    );
}

#[path = "status_page/browser.rs"]
mod browser;

#[path = "status_page/openapi.rs"]
mod openapi;

#[path = "status_page/webdriver.rs"]
mod webdriver;

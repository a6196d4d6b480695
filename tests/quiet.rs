//! What keeps notifications back, end to end with real parts: a Warden
//! silence made with `warden silence` while a real Alertmanager (Debian's)
//! listens, a `[[maintenance]]` window whose end is reached by moving the
//! agent's clock, a flapping service on Python's http.server, and a
//! leaked secret that stays critical until it is acknowledged.

mod common;

use std::time::Duration;

use common::notify::{Alertmanager, Receiver};
use common::{AgentProcess, free_port, http, warden};

const WAIT: Duration = Duration::from_secs(60);
const TOKEN: &str = "s3cret-token-for-tests";

fn wait(what: &str, agent: &AgentProcess, mut cond: impl FnMut() -> bool) {
    agent.wait_until(what, WAIT, |_| cond());
}

/// A check named `api` on the receiver's `path`, every `every`, one
/// failure hard.
fn check(port: u16, path: &str, every: &str, notify: &str) -> String {
    format!(
        "[[check]]\nname = \"api\"\nplugin = \"http-health\"\nschedule = \"@every {every}\"\nfailure_threshold = 1\n\
         labels = {{ team = \"payments\" }}\nnotify = [{notify}]\nallow.hosts = [\"http://127.0.0.1:{port}\"]\n\
         config = {{ url = \"http://127.0.0.1:{port}{path}\" }}\n"
    )
}

fn notifications(agent: &AgentProcess) -> Vec<serde_json::Value> {
    agent.get("/v1/notifications?check=api").json()["notifications"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn alertmanager_hears_nothing_while_a_warden_silence_holds() {
    let dir = tempfile::tempdir().unwrap();
    let am = Alertmanager::start(&dir.path().join("am"));
    let r = Receiver::start(&dir.path().join("r"), free_port());
    r.health(200);
    let config = format!(
        "[agent]\nlisten = \"127.0.0.1:{{PORT}}\"\n[api]\ntoken_env = \"WARDEN_API_TOKEN\"\n\
         [[notifier]]\nname = \"am\"\ntype = \"alertmanager\"\nurls = [\"http://127.0.0.1:{}\"]\n{}",
        am.port,
        check(r.port, "/health", "1s", "\"am\"")
    );
    let agent = AgentProcess::start(dir.path(), &config, &[("WARDEN_API_TOKEN", TOKEN)]);
    wait("the check ran OK", &agent, || {
        agent.check("api")["status"] == "ok"
    });
    let url = format!("http://127.0.0.1:{}", agent.port);
    let cli = |args: &[&str], token: &str| {
        let mut all = vec!["silence"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--url", &url]);
        warden(dir.path(), &all, &[("WARDEN_TOKEN", token)])
    };
    let add = [
        "add",
        "check=ap?",
        "team=pay*",
        "--duration",
        "1h",
        "--comment",
        "deploy of v2",
    ];
    // A wrong token is refused, naming the status.
    let refused = cli(&add, "wrong");
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(refused.stderr.contains("HTTP 403"), "{}", refused.stderr);
    let added = cli(&add, TOKEN);
    assert_eq!(added.code, 0, "{}", added.stderr);
    assert!(
        added.stdout.contains("matches 1 check: api"),
        "{}",
        added.stdout
    );
    let id: i64 = added
        .stdout
        .split_whitespace()
        .nth(1)
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("no id in {:?}", added.stdout));

    r.health(500);
    wait("the check critical and shown silenced", &agent, || {
        let c = agent.check("api");
        c["status"] == "critical"
            && c["quiet"]
                .as_str()
                .is_some_and(|q| q.starts_with(&format!("silenced by silence {id}")))
    });
    wait("its alert recorded as suppressed", &agent, || {
        notifications(&agent)
            .iter()
            .any(|n| n["state"] == "suppressed")
    });
    assert!(agent.get("/metrics").body.lines().any(|l| {
        l.starts_with("warden_check_silenced{check=\"api\",plugin=\"http-health\"")
            && l.ends_with("} 1")
    }));
    // Runs go on and are stored; Alertmanager hears nothing.
    let runs_before = agent.check("api")["runs"]["critical"].as_u64().unwrap();
    std::thread::sleep(Duration::from_secs(3));
    assert!(agent.check("api")["runs"]["critical"].as_u64().unwrap() > runs_before);
    assert!(am.alerts().is_empty(), "{:?}", am.alerts());
    let list = cli(&["list"], TOKEN);
    assert!(
        list.stdout.contains("active") && list.stdout.contains("deploy of v2"),
        "{}",
        list.stdout
    );

    // The silence ends with the problem still there: it is sent then.
    let expired = cli(&["expire", &id.to_string()], TOKEN);
    assert_eq!(expired.code, 0, "{}", expired.stderr);
    wait("Alertmanager shows the alert", &agent, || {
        !am.alerts().is_empty()
    });
    assert_eq!(am.alerts()[0]["labels"]["check"], "api");
    assert!(agent.check("api")["quiet"].is_null());
    let again = cli(&["expire", &id.to_string()], TOKEN);
    assert_eq!(again.code, 1);
    assert!(again.stderr.contains("no silence"), "{}", again.stderr);
    // A bad silence names the field.
    let bad = http(
        agent.port,
        "POST",
        "/v1/silences",
        &[("Authorization", &format!("Bearer {TOKEN}"))],
        br#"{"matchers": {}, "duration": "1h", "comment": "x", "author": "y"}"#,
    );
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("matchers"), "{}", bad.body);
}

#[test]
fn a_maintenance_window_holds_notifications_until_it_ends() {
    // In process, so the clock can be moved past the window's end.
    let dir = tempfile::tempdir().unwrap();
    let r = Receiver::start(&dir.path().join("r"), free_port());
    r.health(500);
    let now = chrono::Utc::now();
    let rfc =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let end = now + chrono::Duration::hours(1);
    let text = format!(
        "[agent]\nlisten = \"127.0.0.1:{}\"\nstate_dir = {:?}\nplugin_dir = {:?}\n\
         [[notifier]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:{p}/hook\"\n\
         [[maintenance]]\nname = \"db-upgrade\"\nchecks = [\"a*\"]\nstart = \"{}\"\nend = \"{}\"\n{}",
        free_port(),
        dir.path().join("state"),
        dir.path().join("plugins"),
        rfc(now - chrono::Duration::minutes(1)),
        rfc(end),
        check(r.port, "/health", "1s", "\"hook\""),
        p = r.port
    );
    let config = warden::Config::parse(&text, "warden.toml", dir.path()).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (agent, stop) = common::notify::in_process(config).await;
        let mut shown = None;
        for _ in 0..600 {
            let view = agent.check_view("api").unwrap();
            if view.summary.status == Some(warden::runtime::Status::Critical)
                && agent.store.notifications(Some("api"), 10).unwrap().len() == 1
            {
                shown = view.summary.quiet;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let shown = shown.expect("a critical run recorded with its suppressed alert");
        assert!(
            shown.starts_with("in maintenance \"db-upgrade\" until "),
            "{shown}"
        );
        let stored = &agent.store.notifications(Some("api"), 10).unwrap()[0];
        assert_eq!(stored.state, "suppressed");
        assert!(
            stored.last_error.as_deref().unwrap().contains("db-upgrade"),
            "{stored:?}"
        );
        // Still inside the window: nothing to send.
        let t = warden::store::now_ms();
        assert_eq!(agent.notice_tick(t), 0);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(r.at("/hook").is_empty(), "{:?}", r.received());
        // The window over, the problem still there: it is sent now, once.
        let after = end.timestamp_millis() + 1;
        assert_eq!(agent.notice_tick(after), 1);
        assert_eq!(agent.notice_tick(after + 1000), 0, "told already");
        for _ in 0..600 {
            if !r.at("/hook").is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let hooks = r.at("/hook");
        assert_eq!(hooks.len(), 1, "{hooks:?}");
        assert_eq!(hooks[0]["body"]["status"], "firing");
        let _ = stop.send(true);
    });
}

#[test]
fn a_flapping_check_notifies_once_and_stays_quiet_until_it_settles() {
    let dir = tempfile::tempdir().unwrap();
    let r = Receiver::start(&dir.path().join("r"), free_port());
    let config = format!(
        "[agent]\nlisten = \"127.0.0.1:{{PORT}}\"\n\
         [[notifier]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:{}/hook\"\n{}",
        r.port,
        check(r.port, "/flip", "200ms", "\"hook\"")
    );
    let agent = AgentProcess::start(dir.path(), &config, &[]);
    let statuses = || -> Vec<String> {
        r.at("/hook")
            .iter()
            .map(|h| h["body"]["status"].as_str().unwrap().to_string())
            .collect()
    };
    wait("the flapping notice", &agent, || {
        statuses().contains(&"flapping".to_string())
    });
    let c = agent.check("api");
    assert_eq!(c["flapping"], true, "{c}");
    assert!(c["flap_percent"].as_f64().unwrap() >= 20.0, "{c}");
    assert!(agent.get("/metrics").body.lines().any(|l| {
        l.starts_with("warden_check_flapping{check=\"api\",plugin=\"http-health\"")
            && l.ends_with("} 1")
    }));
    // Still flapping: nothing more is sent, though each change is stored.
    let at_notice = statuses().len();
    let stored = notifications(&agent).len();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(statuses().len(), at_notice, "{:?}", statuses());
    assert!(notifications(&agent).len() > stored + 3);
    assert!(
        notifications(&agent)
            .iter()
            .take(3)
            .all(|n| n["state"] == "suppressed"
                && n["last_error"].as_str().unwrap().contains("flapping"))
    );
    // Steady again: it settles, says so once, then sends what changed.
    std::fs::write(r.dir.join("flip"), "200").unwrap();
    wait("the settled notice", &agent, || {
        statuses().contains(&"settled".to_string())
    });
    std::thread::sleep(Duration::from_secs(1));
    let all = statuses();
    let flap = all.iter().position(|s| s == "flapping").unwrap();
    assert_eq!(all[flap + 1], "settled", "{all:?}");
    assert_eq!(all.iter().filter(|s| *s == "flapping").count(), 1);
    assert!(
        all[flap + 2..].iter().all(|s| s == "resolved"),
        "only the recovery after it: {all:?}"
    );
    assert_eq!(agent.check("api")["flapping"], false);
}

#[test]
fn a_new_finding_stays_critical_until_it_is_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(&tree).unwrap();
    let ghp = "ghp_R8sT2uV4wX6yZ8aB0cD2eF4gH6iJ8kL0mN2p";
    std::fs::write(tree.join("settings.py"), format!("TOKEN = \"{ghp}\"\n")).unwrap();
    let config = format!(
        "[agent]\nlisten = \"127.0.0.1:{{PORT}}\"\n[api]\ntoken_env = \"WARDEN_API_TOKEN\"\n\
         [[check]]\nname = \"scan\"\nplugin = \"secret-scan\"\nschedule = \"@every 1s\"\nallow.read_dirs = [{:?}]\n",
        tree.display()
    );
    let agent = AgentProcess::start(dir.path(), &config, &[("WARDEN_API_TOKEN", TOKEN)]);
    // Run after run it stays critical (not "known" after one run).
    wait("three critical runs", &agent, || {
        agent.check("scan")["runs"]["critical"]
            .as_u64()
            .unwrap_or(0)
            >= 3
    });
    assert_eq!(agent.check("scan")["status"], "critical");
    assert_eq!(agent.check("scan")["runs"]["warning"], 0);
    let findings = agent.get("/v1/findings?check=scan").json()["findings"].clone();
    let fp = findings[0]["fingerprint"].as_str().unwrap().to_string();
    let auth = format!("Bearer {TOKEN}");
    let ack = |body: &str, headers: &[(&str, &str)]| {
        http(
            agent.port,
            "POST",
            "/v1/findings/ack",
            headers,
            body.as_bytes(),
        )
    };
    let body =
        format!(r#"{{"fingerprints": ["{fp}"], "comment": "rotated the token", "author": "ops"}}"#);
    assert_eq!(ack(&body, &[]).status, 401, "the token is required");
    let typo = ack(
        r#"{"fingerprints": ["nope"], "comment": "x"}"#,
        &[("Authorization", &auth)],
    );
    assert_eq!(typo.status, 404, "{}", typo.body);
    let message = typo.json()["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(message.contains("\"nope\""), "{message}");
    let no_comment = ack(
        &format!(r#"{{"fingerprints": ["{fp}"], "comment": " "}}"#),
        &[("Authorization", &auth)],
    );
    assert_eq!(no_comment.status, 400, "{}", no_comment.body);
    let done = ack(&body, &[("Authorization", &auth)]);
    assert_eq!(done.status, 200, "{}", done.body);
    assert_eq!(done.json()["acknowledged"], 1);
    wait("the check a warning", &agent, || {
        agent.check("scan")["status"] == "warning"
    });
    let c = agent.check("scan");
    assert!(
        c["last_summary"]
            .as_str()
            .unwrap()
            .contains("(1 acknowledged)"),
        "{c}"
    );
    let acks = agent.get("/v1/findings/acks").json();
    assert_eq!(acks["acks"][0]["fingerprint"], fp.as_str());
    assert_eq!(acks["acks"][0]["author"], "ops");

    // A new leak is critical again; gone, the check is OK.
    std::fs::write(
        tree.join("more.py"),
        format!("K = \"{}\"\n", ghp.replace('R', "Q")),
    )
    .unwrap();
    wait("critical for the new one", &agent, || {
        agent.check("scan")["status"] == "critical"
    });
    std::fs::remove_file(tree.join("more.py")).unwrap();
    std::fs::remove_file(tree.join("settings.py")).unwrap();
    wait("OK once both are gone", &agent, || {
        agent.check("scan")["status"] == "ok"
    });
}

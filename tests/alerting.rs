//! Alerting end to end with real parts: the real agent, `http-health`
//! watching a service on Python's http.server, notifications received by
//! Python's http.server (which reads bodies by Content-Length only), a
//! notifier that is down, kill -9 with a notification pending, and a real
//! Alertmanager (Debian's `prometheus-alertmanager`).

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::notify::{Alertmanager, Receiver};
use common::{AgentProcess, debian_tool, free_port, http};

const WAIT: Duration = Duration::from_secs(60);

fn wait(what: &str, agent: &AgentProcess, mut cond: impl FnMut() -> bool) {
    agent.wait_until(what, WAIT, |_| cond());
}

/// A check on the receiver's `/health`, every second, one failure hard.
fn check(port: u16, notify: &str) -> String {
    format!(
        "[[check]]\nname = \"api\"\nplugin = \"http-health\"\nschedule = \"@every 1s\"\nfailure_threshold = 1\n\
         labels = {{ team = \"payments\" }}\nnotify = [{notify}]\nallow.hosts = [\"http://127.0.0.1:{port}\"]\n\
         config = {{ url = \"http://127.0.0.1:{port}/health\" }}\n"
    )
}

#[test]
fn webhook_slack_and_pagerduty_get_their_documented_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let r = Receiver::start(&dir.path().join("r"), free_port());
    r.health(200);
    std::fs::write(
        dir.path().join("pd.key"),
        "R0UTINGKEY0123456789abcdef0123456\n",
    )
    .unwrap();
    let config = format!(
        "[agent]\nlisten = \"127.0.0.1:{{PORT}}\"\n[alerting]\ninstance = \"host-a\"\n\
         [[notifier]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:{p}/hook\"\nheaders = {{ X-Team = \"payments\" }}\n\
         [[notifier]]\nname = \"chat\"\ntype = \"slack\"\nurl_env = \"SLACK_URL\"\n\
         [[notifier]]\nname = \"tmpl\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:{p}/tmpl\"\ntemplate = '{{\"msg\": \"{{{{check}}}} {{{{status}}}} ({{{{labels.team}}}}): {{{{summary}}}}\"}}'\n\
         [[notifier]]\nname = \"pager\"\ntype = \"pagerduty\"\nrouting_key_file = \"pd.key\"\nurl = \"http://127.0.0.1:{p}/v2/enqueue\"\n{}",
        check(r.port, "\"hook\", \"chat\", \"pager\", \"tmpl\""),
        p = r.port
    );
    let slack = format!(
        "http://127.0.0.1:{}/services/T0/B0/XyZ0123456789abcdefGHIJ",
        r.port
    );
    let agent = AgentProcess::start(dir.path(), &config, &[("SLACK_URL", &slack)]);
    wait("the check ran OK", &agent, || {
        agent.check("api")["status"] == "ok"
    });
    assert!(
        r.received().is_empty(),
        "nothing to say while OK: {:?}",
        r.received()
    );

    r.health(500);
    wait("four firing notifications", &agent, || {
        r.received().len() >= 4
    });
    let tmpl = &r.at("/tmpl")[0]["body"];
    let msg = tmpl["msg"].as_str().unwrap();
    assert!(msg.starts_with("api firing (payments): "), "{tmpl}");
    let hook = &r.at("/hook")[0];
    // Python's http.server saw a length, not a chunked body.
    assert!(hook["headers"]["content-length"].is_string(), "{hook}");
    assert!(hook["headers"].get("transfer-encoding").is_none(), "{hook}");
    assert_eq!(hook["headers"]["x-team"], "payments");
    let b = &hook["body"];
    assert_eq!(
        (
            b["agent"].as_str(),
            b["check"].as_str(),
            b["plugin"].as_str()
        ),
        (Some("host-a"), Some("api"), Some("http-health"))
    );
    assert_eq!(
        (b["status"].as_str(), b["severity"].as_str()),
        (Some("firing"), Some("critical"))
    );
    assert_eq!(b["labels"]["team"], "payments");
    assert!(b["since"].as_str().unwrap().ends_with('Z'), "{b}");
    assert!(b["run_id"].as_str().is_some_and(|s| !s.is_empty()));
    assert!(b["link"].as_str().unwrap().ends_with("/v1/checks/api"));
    assert!(b["summary"].as_str().unwrap().contains("500"), "{b}");

    let chat = &r.at("/services/T0/B0/XyZ0123456789abcdefGHIJ")[0]["body"];
    assert!(
        chat["text"]
            .as_str()
            .unwrap()
            .starts_with("[CRITICAL] api:"),
        "{chat}"
    );
    assert_eq!(chat["blocks"][0]["type"], "section");
    assert_eq!(chat["blocks"][0]["text"]["type"], "mrkdwn");

    let pd = &r.at("/v2/enqueue")[0]["body"];
    assert_eq!(pd["routing_key"], "R0UTINGKEY0123456789abcdef0123456");
    assert_eq!(pd["event_action"], "trigger");
    assert_eq!(pd["dedup_key"], "warden/host-a/api");
    assert_eq!(pd["payload"]["severity"], "critical");
    assert_eq!(pd["payload"]["source"], "host-a");
    assert!(
        pd["payload"]["summary"]
            .as_str()
            .is_some_and(|s| !s.is_empty() && s.len() <= 1024)
    );
    assert_eq!(
        pd["payload"]["custom_details"]["labels"]["team"],
        "payments"
    );

    r.health(200);
    wait("four resolved notifications", &agent, || {
        r.received().len() >= 8
    });
    assert_eq!(r.at("/hook")[1]["body"]["status"], "resolved");
    let pd = &r.at("/v2/enqueue")[1]["body"];
    assert_eq!(
        (pd["event_action"].as_str(), pd["dedup_key"].as_str()),
        (Some("resolve"), Some("warden/host-a/api"))
    );
    assert!(
        r.at("/services/T0/B0/XyZ0123456789abcdefGHIJ")[1]["body"]["text"]
            .as_str()
            .unwrap()
            .starts_with("[RESOLVED]")
    );

    // Delivered, counted, and the secrets are nowhere in the API or log.
    // (A receiver may have the body before the agent has marked it sent.)
    let states = |a: &AgentProcess| -> Vec<String> {
        a.get("/v1/notifications").json()["notifications"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["state"].as_str().unwrap().to_string())
            .collect()
    };
    agent.wait_until("every notification marked delivered", WAIT, |a| {
        states(a) == vec!["delivered"; 8]
    });
    let list = agent.get("/v1/notifications").json();
    assert_eq!(states(&agent), vec!["delivered"; 8], "{list}");
    // Exactly once each: a second look finds nothing more sent.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(r.received().len(), 8, "{:?}", r.received());
    let metrics = agent.get("/metrics").body;
    assert!(
        metrics.contains("warden_notifications_total{notifier=\"pager\",result=\"delivered\"} 2"),
        "{metrics}"
    );
    for secret in [
        "R0UTINGKEY0123456789abcdef0123456",
        "XyZ0123456789abcdefGHIJ",
    ] {
        assert!(!list.to_string().contains(secret));
        assert!(!agent.log().contains(secret), "{}", agent.log());
    }
}

#[test]
fn a_notifier_that_is_down_is_retried_and_holds_up_nobody() {
    let dir = tempfile::tempdir().unwrap();
    let r = Receiver::start(&dir.path().join("r"), free_port());
    r.health(500);
    let down_port = free_port();
    let config = format!(
        "[agent]\nlisten = \"127.0.0.1:{{PORT}}\"\n\
         [[notifier]]\nname = \"down\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:{down_port}/hook\"\ntimeout = \"2s\"\n\
         [[notifier]]\nname = \"up\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:{}/hook\"\n{}",
        r.port,
        check(r.port, "\"down\", \"up\"")
    );
    let agent = AgentProcess::start(dir.path(), &config, &[]);
    wait("the working notifier got the alert", &agent, || {
        r.at("/hook").len() == 1
    });
    wait("the other was tried more than once", &agent, || {
        agent.get("/v1/notifications").json()["notifications"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| {
                n["notifier"] == "down"
                    && n["attempts"].as_u64() >= Some(2)
                    && n["state"] == "pending"
            })
    });
    let list = agent.get("/v1/notifications").json();
    let down = list["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["notifier"] == "down")
        .unwrap()
        .clone();
    assert!(
        down["last_error"]
            .as_str()
            .unwrap()
            .contains(&format!("127.0.0.1:{down_port}")),
        "{down}"
    );
    assert!(
        agent
            .get("/metrics")
            .body
            .contains("warden_notifications_total{notifier=\"down\",result=\"retry\"}")
    );
    // Runs go on meanwhile.
    let runs = agent.check("api")["runs"]["critical"].as_u64().unwrap();
    wait("more runs", &agent, || {
        agent.check("api")["runs"]["critical"].as_u64().unwrap() > runs + 1
    });
    // The target comes up: the pending notification is delivered, once.
    let late = Receiver::start(&dir.path().join("late"), down_port);
    wait("the late receiver got it", &agent, || {
        late.at("/hook").len() == 1
    });
    assert_eq!(late.at("/hook")[0]["body"]["status"], "firing");
}

#[test]
fn kill_9_with_a_notification_pending_delivers_it_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let r = Receiver::start(&dir.path().join("r"), free_port());
    r.health(500);
    let hook_port = free_port();
    let config = format!(
        "[agent]\nlisten = \"127.0.0.1:{{PORT}}\"\n\
         [[notifier]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:{hook_port}/hook\"\ntimeout = \"1s\"\n{}",
        check(r.port, "\"hook\"")
    );
    let agent = AgentProcess::start(dir.path(), &config, &[]);
    wait("a pending notification", &agent, || {
        agent.get("/v1/notifications").json()["notifications"]
            .as_array()
            .is_some_and(|l| l.iter().any(|n| n["state"] == "pending"))
    });
    let (config_path, port) = (agent.config.clone(), agent.port);
    agent.kill9();
    let hook = Receiver::start(&dir.path().join("hook"), hook_port);
    let agent = AgentProcess::start_with(dir.path(), &config_path, port, &[]);
    wait("delivered after the restart", &agent, || {
        hook.at("/hook").len() == 1
    });
    // Still critical after the restart: no new transition, nothing more.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(hook.at("/hook").len(), 1, "{:?}", hook.received());
    assert_eq!(hook.at("/hook")[0]["body"]["check"], "api");
}

#[test]
fn a_child_of_a_failing_parent_stays_quiet() {
    let dir = tempfile::tempdir().unwrap();
    let r = Receiver::start(&dir.path().join("r"), free_port());
    let service = |name: &str, code: u16| {
        std::fs::write(r.dir.join(format!("health-{name}")), code.to_string()).unwrap()
    };
    service("db", 200);
    service("api", 200);
    let check = |name: &str, extra: &str| {
        format!(
            "[[check]]\nname = \"{name}\"\nplugin = \"http-health\"\nschedule = \"@every 1s\"\nfailure_threshold = 1\n{extra}\
             allow.hosts = [\"http://127.0.0.1:{p}\"]\nconfig = {{ url = \"http://127.0.0.1:{p}/health/{name}\" }}\n",
            p = r.port
        )
    };
    let config = format!(
        "[agent]\nlisten = \"127.0.0.1:{{PORT}}\"\n[alerting]\nnotify = [\"hook\"]\n\
         [[notifier]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:{}/hook\"\n{}{}",
        r.port,
        check("db", ""),
        check("api", "depends_on = [\"db\"]\n")
    );
    let agent = AgentProcess::start(dir.path(), &config, &[]);
    wait("both OK", &agent, || {
        agent.check("db")["status"] == "ok" && agent.check("api")["status"] == "ok"
    });
    service("db", 500);
    wait("the parent's alert", &agent, || r.at("/hook").len() == 1);
    service("api", 500);
    wait("the child's alert recorded as suppressed", &agent, || {
        agent.get("/v1/notifications?check=api").json()["notifications"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["state"] == "suppressed")
    });
    let n = agent.get("/v1/notifications?check=api").json()["notifications"][0].clone();
    assert!(
        n["last_error"]
            .as_str()
            .unwrap()
            .contains("parent check \"db\" is critical"),
        "{n}"
    );
    // The child still runs and is stored; nothing of it was sent.
    assert_eq!(agent.check("api")["status"], "critical");
    std::thread::sleep(Duration::from_secs(2));
    let sent: Vec<_> = r
        .at("/hook")
        .into_iter()
        .map(|h| h["body"]["check"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(sent, ["db"]);
    // The parent recovers with the child still failing: the child's
    // problem is sent then.
    service("db", 200);
    wait("the child's alert once the parent is OK", &agent, || {
        r.at("/hook")
            .iter()
            .any(|h| h["body"]["check"] == "api" && h["body"]["status"] == "firing")
    });
}

#[test]
fn alertmanager_shows_the_alert_firing_then_resolved() {
    let dir = tempfile::tempdir().unwrap();
    let am = Alertmanager::start(&dir.path().join("am"));
    let r = Receiver::start(&dir.path().join("r"), free_port());
    r.health(200);
    let config = format!(
        "[agent]\nlisten = \"127.0.0.1:{{PORT}}\"\n[alerting]\ninstance = \"host-a\"\n\
         [[notifier]]\nname = \"am\"\ntype = \"alertmanager\"\nurls = [\"http://127.0.0.1:{}\"]\n{}",
        am.port,
        check(r.port, "\"am\"")
    );
    let agent = AgentProcess::start(dir.path(), &config, &[]);
    wait("the check ran OK", &agent, || {
        agent.check("api")["status"] == "ok"
    });
    r.health(500);
    wait("Alertmanager shows the alert", &agent, || {
        !am.alerts().is_empty()
    });
    let a = &am.alerts()[0];
    let labels = &a["labels"];
    assert_eq!(labels["alertname"], "WardenCheck");
    assert_eq!(
        (labels["check"].as_str(), labels["plugin"].as_str()),
        (Some("api"), Some("http-health"))
    );
    assert_eq!(
        (
            labels["severity"].as_str(),
            labels["instance"].as_str(),
            labels["team"].as_str()
        ),
        (Some("critical"), Some("host-a"), Some("payments"))
    );
    assert_eq!(a["status"]["state"], "active");
    assert!(
        a["annotations"]["summary"]
            .as_str()
            .unwrap()
            .contains("500"),
        "{a}"
    );
    r.health(200);
    wait("Alertmanager shows it resolved", &agent, || {
        am.alerts().is_empty()
    });
}

#[test]
fn reminders_go_out_every_remind_every_while_firing() {
    // In process, so the reminder clock can be moved by hand.
    let dir = tempfile::tempdir().unwrap();
    let r = Receiver::start(&dir.path().join("r"), free_port());
    r.health(500);
    let text = format!(
        "[agent]\nlisten = \"127.0.0.1:{}\"\nstate_dir = {:?}\nplugin_dir = {:?}\n\
         [[notifier]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:{p}/hook\"\n\
         [[notifier]]\nname = \"am\"\ntype = \"alertmanager\"\nurls = [\"http://127.0.0.1:{p}\"]\n{}remind_every = \"10m\"\n",
        free_port(),
        dir.path().join("state"),
        dir.path().join("plugins"),
        check(r.port, "\"hook\", \"am\""),
        p = r.port
    );
    let config = warden::Config::parse(&text, "warden.toml", dir.path()).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (agent, stop) = common::notify::in_process(config).await;
        let first = hooks(&r, 1).await;
        assert_eq!(first[0]["body"]["reminder"], false);
        let t0 = warden::store::now_ms();
        assert_eq!(agent.queue_reminders(t0 + 60_000), 0, "not yet");
        // Ten minutes on: one reminder, to the webhook only (Alertmanager
        // is re-sent every minute anyway).
        assert_eq!(agent.queue_reminders(t0 + 600_000), 1);
        let posts = hooks(&r, 2).await;
        let b = &posts[1]["body"];
        assert_eq!(
            (b["status"].as_str(), b["reminder"].as_bool()),
            (Some("firing"), Some(true))
        );
        assert_eq!(agent.queue_reminders(t0 + 601_000), 0, "just reminded");
        assert_eq!(agent.queue_reminders(t0 + 1_201_000), 1);
        hooks(&r, 3).await;
        let _ = stop.send(true);
    });
}

/// The receiver's webhook posts once there are at least `n`.
async fn hooks(r: &Receiver, n: usize) -> Vec<serde_json::Value> {
    for _ in 0..600 {
        if r.at("/hook").len() >= n {
            return r.at("/hook");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("waited for {n} webhook posts: {:?}", r.received());
}

/// `examples/fleet/NAME`.
fn fleet_example(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../examples/fleet")
            .join(name),
    )
    .unwrap()
}

#[test]
fn a_fleet_of_two_agents_behind_prometheus_and_alertmanager() {
    // The example agent config is valid as it stands.
    warden::Config::parse(
        &fleet_example("warden.toml"),
        "warden.toml",
        Path::new("/tmp"),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let am = Alertmanager::start_with(&dir.path().join("am"), &fleet_example("alertmanager.yml"));
    let r = Receiver::start(&dir.path().join("r"), free_port());
    std::fs::write(r.dir.join("health-a"), "200").unwrap();
    std::fs::write(r.dir.join("health-b"), "500").unwrap();
    // Two agents from the example, their ports and the service rewritten.
    let agent = |name: &str| {
        let d = dir.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        let text = fleet_example("warden.toml")
            .replace("127.0.0.1:7878", "127.0.0.1:{PORT}")
            .replace(
                "# instance = \"web-1\"",
                &format!("instance = \"agent-{name}\""),
            )
            .replace(
                "http://127.0.0.1:9093",
                &format!("http://127.0.0.1:{}", am.port),
            )
            .replace(
                "127.0.0.1:8080/health",
                &format!("127.0.0.1:{}/health/{name}", r.port),
            )
            .replace("127.0.0.1:8080", &format!("127.0.0.1:{}", r.port))
            .replace("@every 10s", "@every 1s");
        AgentProcess::start(&d, &text, &[])
    };
    let (a, b) = (agent("a"), agent("b"));
    // Prometheus scrapes both, with the example's rules.
    let prom_dir = dir.path().join("prom");
    std::fs::create_dir_all(prom_dir.join("data")).unwrap();
    let prom_port = free_port();
    std::fs::write(
        prom_dir.join("prometheus.yml"),
        fleet_example("prometheus.yml")
            .replace("15s", "1s")
            .replace("127.0.0.1:9093", &format!("127.0.0.1:{}", am.port))
            .replace(
                "\"127.0.0.1:7878\", \"127.0.0.1:7879\"",
                &format!("\"127.0.0.1:{}\", \"127.0.0.1:{}\"", a.port, b.port),
            ),
    )
    .unwrap();
    std::fs::write(
        prom_dir.join("rules.yml"),
        fleet_example("rules.yml").replace("for: 5m", "for: 0s"),
    )
    .unwrap();
    let bin = debian_tool("prometheus", "prometheus");
    let mut prom = Command::new(bin)
        .arg(format!(
            "--config.file={}",
            prom_dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            prom_dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(prom_dir.join("prom.log")).unwrap())
        .spawn()
        .expect("starting prometheus");
    let prom_alerts = || -> Vec<serde_json::Value> {
        let r = http(prom_port, "GET", "/api/v1/alerts", &[], b"");
        serde_json::from_str::<serde_json::Value>(&r.body)
            .ok()
            .and_then(|v| v["data"]["alerts"].as_array().cloned())
            .unwrap_or_default()
    };
    let firing = |alerts: &[serde_json::Value], name: &str| -> Vec<serde_json::Value> {
        alerts
            .iter()
            .filter(|x| x["labels"]["alertname"] == name && x["state"] == "firing")
            .cloned()
            .collect()
    };
    let t0 = std::time::Instant::now();
    let mut rule = Vec::new();
    while t0.elapsed() < WAIT {
        if std::net::TcpStream::connect(("127.0.0.1", prom_port)).is_ok() {
            rule = firing(&prom_alerts(), "WardenCheckCritical");
            if !rule.is_empty() {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = prom.kill();
    let _ = prom.wait();
    assert_eq!(
        rule.len(),
        1,
        "the rule fires for agent b's check only: {rule:?}\n{}",
        std::fs::read_to_string(prom_dir.join("prom.log")).unwrap_or_default()
    );
    assert_eq!(rule[0]["labels"]["check"], "api");
    assert_eq!(
        rule[0]["labels"]["instance"],
        format!("127.0.0.1:{}", b.port)
    );
    // And agent b's own alert reached the Alertmanager, agent a's did not.
    a.wait_until("agent b's alert in Alertmanager", WAIT, |_| {
        am.alerts().iter().any(|x| {
            x["labels"]["alertname"] == "WardenCheck" && x["labels"]["instance"] == "agent-b"
        })
    });
    assert!(
        !am.alerts()
            .iter()
            .any(|x| x["labels"]["instance"] == "agent-a"),
        "{:?}",
        am.alerts()
    );
}

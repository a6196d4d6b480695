//! The runbooks' rules, replayed: recorded series served by Python's
//! `http.server` (a server no one here wrote), each recorded time run
//! through the real agent and the real http-health plugin with
//! `warden check --check NAME --at TIME` (the check's state carried from
//! run to run, as in the agent), and compared with a real Prometheus
//! (Debian's) queried over the same series, backfilled with `promtool`.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;

/// Seconds between recorded scrapes, as the example's schedule.
const STEP: i64 = 30;
/// Recorded minutes.
const MINUTES: i64 = 42;

/// The relay at one step: counters since its last start, a latency
/// histogram and a gauge. Publishing errors run at 0.5% except a 5% burst
/// in minutes 10–18; latency is slow in minutes 20–26; the relay restarts
/// (its counters reset) at minute 30; auth failures spike in minutes 34–39.
fn relay(step: i64) -> Vec<(String, f64)> {
    let minute = |s: i64| s * STEP / 60;
    let restart = 30 * 60 / STEP;
    let since = if step >= restart { restart } else { 0 };
    let (mut total, mut errors) = (0.0, 0.0);
    let mut buckets = [0.0f64; 6];
    for s in since + 1..=step {
        total += 200.0;
        errors += if (10..18).contains(&minute(s)) {
            10.0
        } else {
            1.0
        };
        let per = if (20..26).contains(&minute(s)) {
            [40.0, 100.0, 150.0, 180.0, 198.0, 200.0]
        } else {
            [120.0, 170.0, 194.0, 198.0, 200.0, 200.0]
        };
        for (b, n) in buckets.iter_mut().zip(per) {
            *b += n;
        }
    }
    let auth = if (34..39).contains(&minute(step)) {
        60.0
    } else {
        [4.0, 5.0, 6.0][(step % 3) as usize]
    };
    let mut out = vec![
        ("publish_total".to_string(), total),
        ("publish_errors".to_string(), errors),
        ("auth_failures_last_minute".to_string(), auth),
    ];
    for (le, n) in ["0.1", "0.25", "0.4", "0.5", "1", "+Inf"]
        .iter()
        .zip(buckets)
    {
        out.push((format!("publish_duration_seconds_bucket{{le=\"{le}\"}}"), n));
    }
    out
}

/// An example's config for `warden check -c`, its service on `port` and
/// its state under `dir`.
fn replay_config(dir: &Path, example: &str, port: u16) -> std::path::PathBuf {
    let config = dir.join("warden.toml");
    std::fs::write(
        &config,
        format!(
            "[agent]\nstate_dir = {:?}\n{}",
            dir.join("state"),
            example.replace("127.0.0.1:8080", &format!("127.0.0.1:{port}"))
        ),
    )
    .unwrap();
    config
}

fn steps() -> i64 {
    MINUTES * 60 / STEP
}

struct Prometheus {
    child: Child,
    port: u16,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A real Prometheus over the recorded series: written as OpenMetrics with
/// their timestamps, turned into blocks by `promtool tsdb
/// create-blocks-from openmetrics`, served on a free port.
fn prometheus(dir: &Path, base: i64) -> Prometheus {
    let promtool = debian_tool("promtool", "prometheus");
    let prometheus = debian_tool("prometheus", "prometheus");
    let mut series: std::collections::BTreeMap<String, Vec<(i64, f64)>> = Default::default();
    for step in 0..=steps() {
        for (name, v) in relay(step) {
            series
                .entry(name)
                .or_default()
                .push((base + step * STEP, v));
        }
    }
    let mut om = String::new();
    for (name, samples) in &series {
        for (t, v) in samples {
            om.push_str(&format!("{name} {v} {t}\n"));
        }
    }
    om.push_str("# EOF\n");
    let data = dir.join("tsdb");
    std::fs::write(dir.join("series.om"), om).unwrap();
    let out = Command::new(&promtool)
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(dir.join("series.om"))
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(dir.join("prometheus.yml"), "global: {}\n").unwrap();
    let port = free_port();
    let child = Command::new(prometheus)
        .arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!("--storage.tsdb.path={}", data.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--storage.tsdb.retention.time=10y")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting prometheus");
    let p = Prometheus { child, port };
    for _ in 0..300 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            && http(port, "GET", "/-/ready", &[], b"").status == 200
        {
            return p;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("prometheus did not become ready");
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Prometheus {
    /// The single value of `query` at `t` (unix seconds), if any.
    fn value(&self, query: &str, t: i64) -> Option<f64> {
        let r = http(
            self.port,
            "GET",
            &format!("/api/v1/query?query={}&time={t}", urlencode(query)),
            &[],
            b"",
        );
        assert_eq!(r.status, 200, "{query}: {}", r.body);
        let v = r.json();
        let result = v["data"]["result"].as_array().unwrap();
        assert!(result.len() <= 1, "{query}: {result:?}");
        result
            .first()
            .map(|e| e["value"][1].as_str().unwrap().parse().unwrap())
    }
}

/// One rule's value and whether it fired, from an outcome.
fn rule_metric(outcome: &serde_json::Value, metric: &str, rule: &str) -> Option<f64> {
    outcome["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| {
            m["name"] == metric
                && m["labels"]
                    .as_array()
                    .is_some_and(|l| l.iter().any(|kv| kv[0] == "rule" && kv[1] == rule))
        })
        .map(|m| m["value"].as_f64().unwrap_or(f64::NAN))
}

fn same(a: Option<f64>, b: Option<f64>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) if a.is_nan() && b.is_nan() => true,
        (Some(a), Some(b)) => (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0),
        _ => false,
    }
}

struct Rule {
    name: String,
    /// The side the rule compares (the value warden reports).
    shown: String,
    /// The expression without `for`: series while it holds.
    expr: String,
    hold: i64,
}

fn example_rules(text: &str) -> Vec<Rule> {
    let v: toml::Value = toml::from_str(text).unwrap();
    v["check"][0]["config"]["metrics"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let expr = r["expr"].as_str().unwrap();
            let (body, hold) = match expr.rsplit_once(" for ") {
                Some((b, h)) => (b, h.trim_end_matches('m').parse::<i64>().unwrap() * 60),
                None => (expr, 0),
            };
            let (shown, _) = body.split_once(" > ").unwrap();
            Rule {
                name: r["name"].as_str().unwrap().to_string(),
                shown: shown.to_string(),
                expr: body.to_string(),
                hold,
            }
        })
        .collect()
}

#[test]
fn relay_rules_agree_with_prometheus_and_fire_on_time() {
    let dir = tempfile::tempdir().unwrap();
    let www = dir.path().join("www");
    std::fs::create_dir(&www).unwrap();
    // Recorded an hour ago, on the schedule's grid.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let base = (now - 3 * 3600) / STEP * STEP;
    let server = PythonHttpServer::start(&www);
    let port = server.port;
    let prom = prometheus(dir.path(), base);

    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/relay-metrics.toml"
    ))
    .unwrap();
    let rules = example_rules(&example);
    let config = replay_config(dir.path(), &example, port);

    // rule -> (fired at, resolved at) in minutes, from the replay.
    let mut changes: Vec<Vec<(f64, bool)>> = vec![Vec::new(); rules.len()];
    let mut held_since: Vec<Option<i64>> = vec![None; rules.len()];
    let mut compared = 0;
    for step in 0..=steps() {
        let t = base + step * STEP;
        let text: String = relay(step)
            .into_iter()
            .map(|(name, v)| format!("{name} {v}\n"))
            .collect();
        std::fs::write(www.join("metrics.tmp"), text).unwrap();
        std::fs::rename(www.join("metrics.tmp"), www.join("metrics")).unwrap();
        let run = warden(
            dir.path(),
            &[
                "check",
                "-c",
                config.to_str().unwrap(),
                "--check",
                "relay",
                "--at",
                &t.to_string(),
                "--format",
                "json",
            ],
            &[],
        );
        let outcome = run.json();
        assert_ne!(outcome["status"], "unknown", "step {step}: {outcome}");
        for (i, rule) in rules.iter().enumerate() {
            let ours = rule_metric(&outcome, "http_health_rule_value", &rule.name);
            let theirs = prom.value(&rule.shown, t);
            assert!(
                same(ours, theirs),
                "step {step} (minute {}), {}: warden {ours:?}, prometheus {theirs:?}",
                step * STEP / 60,
                rule.shown
            );
            compared += usize::from(theirs.is_some());
            // An alerting rule over Prometheus' values: held since the
            // first of an unbroken run of evaluations, fired once held for
            // `for`.
            let holds = prom.value(&rule.expr, t).is_some();
            held_since[i] = if holds {
                held_since[i].or(Some(t))
            } else {
                None
            };
            let expected = held_since[i].is_some_and(|s| t - s >= rule.hold);
            let fired = rule_metric(&outcome, "http_health_rule_firing", &rule.name) == Some(1.0);
            assert_eq!(
                fired,
                expected,
                "step {step} (minute {}): {} fired {fired}, expected {expected}: {}",
                step * STEP / 60,
                rule.name,
                outcome["summary"]
            );
            if changes[i].last().map(|c| c.1) != Some(fired) && (fired || !changes[i].is_empty()) {
                changes[i].push(((step * STEP) as f64 / 60.0, fired));
            }
        }
    }
    drop(server);
    assert!(compared > 100, "only {compared} values compared");
    // The storyline: when each rule fires and resolves, in minutes.
    let story = |i: usize| -> Vec<(f64, bool)> { changes[i].clone() };
    let within = |c: &[(f64, bool)], fire: (f64, f64), resolve: (f64, f64)| {
        c.len() == 2
            && c[0].1
            && (fire.0..=fire.1).contains(&c[0].0)
            && !c[1].1
            && (resolve.0..=resolve.1).contains(&c[1].0)
    };
    // Burst 10–18: over 1% once ~35 s of burst are in the window, fires 5
    // minutes later; quiet once less than ~35 s of burst is left in it;
    // the restart at 30 (counters reset) fires nothing.
    assert!(
        within(&story(0), (15.0, 16.5), (22.0, 23.5)),
        "{:?}",
        story(0)
    );
    // Slow 20–26: p95 over 400 ms within a minute or two, held 2 minutes;
    // quiet once the slow minutes have all but left the 5-minute window.
    assert!(
        within(&story(1), (21.0, 24.0), (28.0, 31.0)),
        "{:?}",
        story(1)
    );
    // Spike 34–39: fires at once and stays firing while it lasts.
    assert!(
        within(&story(2), (34.0, 34.0), (39.0, 39.0)),
        "{:?}",
        story(2)
    );
}

/// The service's admin JSON at minute `m` after `base`: a key abusing the
/// API in minutes 10–14 (then only busy until 16), an escrow pending from
/// minute 20 until it settles at 60, a `payout_error` audit event at 5.
fn admin(base: i64, m: i64) -> [(&'static str, serde_json::Value); 3] {
    let rfc3339 = |t: i64| {
        let out = Command::new("date")
            .args(["-u", "-d", &format!("@{t}"), "+%Y-%m-%dT%H:%M:%SZ"])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let k2 = match m {
        10..14 => 900,
        14..16 => 400,
        _ => 250,
    };
    let mut escrows =
        vec![serde_json::json!({"id": "e1", "state": "settled", "pending_since": null})];
    if (20..60).contains(&m) {
        escrows.push(serde_json::json!({"id": "e9", "state": "pending", "pending_since": rfc3339(base + 20 * 60)}));
    }
    let mut events = vec![serde_json::json!({"type": "login", "at": (base + 60) * 1000})];
    if m >= 5 {
        events.push(serde_json::json!({"type": "payout_error", "at": rfc3339(base + 5 * 60)}));
    }
    [
        (
            "keys.json",
            serde_json::json!({"keys": [{"key": "k1", "requests_last_minute": 20}, {"key": "k2", "requests_last_minute": k2}]}),
        ),
        ("escrows.json", serde_json::json!({"escrows": escrows})),
        ("audit.json", serde_json::json!({"events": events})),
    ]
}

#[test]
fn runbook_conditions_fire_and_resolve_on_time() {
    let dir = tempfile::tempdir().unwrap();
    let www = dir.path().join("www");
    std::fs::create_dir_all(www.join("admin")).unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let base = (now - 3 * 3600) / 60 * 60;
    let server = PythonHttpServer::start(&www);
    let port = server.port;
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/runbook-conditions.toml"
    ))
    .unwrap();
    let config = replay_config(dir.path(), &example, port);
    let checks = ["abusive-keys", "stuck-escrows", "audit-errors"];
    let mut seen: Vec<Vec<(i64, String)>> = vec![Vec::new(); checks.len()];
    let mut last_summary = vec![String::new(); checks.len()];
    for m in 0..=70 {
        for (file, body) in admin(base, m) {
            std::fs::write(www.join("admin").join(file), body.to_string()).unwrap();
        }
        for (i, check) in checks.iter().enumerate() {
            let t = base + m * 60;
            let outcome = warden(
                dir.path(),
                &[
                    "check",
                    "-c",
                    config.to_str().unwrap(),
                    "--check",
                    check,
                    "--at",
                    &t.to_string(),
                    "--format",
                    "json",
                ],
                &[],
            )
            .json();
            let status = outcome["status"].as_str().unwrap().to_string();
            if seen[i].last().map(|s| &s.1) != Some(&status) {
                seen[i].push((m, status));
                last_summary[i] = outcome["summary"].as_str().unwrap_or_default().to_string();
                if seen[i].len() == 2 {
                    // The first failure says what it saw.
                    let summary = &last_summary[i];
                    let expected = [
                        r#"1 of 2 match: {"key":"k2","requests_last_minute":900}"#,
                        r#"1 of 2 match: {"id":"e9""#,
                        r#"1 of 2 match: {"at":""#,
                    ][i];
                    assert!(summary.contains(expected), "{check}: {summary}");
                }
            }
        }
    }
    drop(server);
    let st = |v: &[(i64, &str)]| {
        v.iter()
            .map(|(m, s)| (*m, s.to_string()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        seen[0],
        st(&[(0, "ok"), (10, "critical"), (14, "warning"), (16, "ok")])
    );
    // Pending since 20: over 30 minutes from 51; settled at 60.
    assert_eq!(seen[1], st(&[(0, "ok"), (51, "critical"), (60, "ok")]));
    // The error at 5 is within the last hour until 65.
    assert_eq!(seen[2], st(&[(0, "ok"), (5, "critical"), (65, "ok")]));
}

/// `examples/env-policy.toml` with its paths under `root`.
fn env_policy_config(root: &Path) -> String {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/env-policy.toml"
    ))
    .unwrap();
    let r = root.display().to_string();
    format!(
        "[agent]\nstate_dir = {:?}\n{}",
        root.join("state"),
        text.replace("\"/etc/", &format!("\"{r}/etc/"))
            .replace("\"/srv/", &format!("\"{r}/srv/"))
    )
}

#[test]
fn production_checklists_name_the_key_and_line_and_never_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for d in ["etc/systemd/system", "etc/escrow", "srv/api"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    let secret = "hunter2-not-long-enough";
    std::fs::write(
        root.join("etc/systemd/system/escrow.service"),
        format!(
            "[Unit]\nDescription=escrow\n[Service]\nEnvironment=NODE_ENV=production CTS_MOCK_MODE=1\n\
             EnvironmentFile={}/etc/escrow/escrow.env\nExecStart=/usr/bin/escrow\n",
            root.display()
        ),
    )
    .unwrap();
    std::fs::write(
        root.join("etc/escrow/escrow.env"),
        format!("# escrow\nESCROW_DB_SECRET={secret}\nAPP_ORIGIN=https://app.example.com\n"),
    )
    .unwrap();
    std::fs::write(
        root.join("srv/api/.env"),
        "APP_ORIGIN=https://app.example.com\nCORS_ALLOWED_ORIGINS=https://app.example.com/,http://localhost:3000\n",
    )
    .unwrap();
    let config = root.join("warden.toml");
    std::fs::write(&config, env_policy_config(root)).unwrap();
    let check = |name: &str| {
        let run = warden(
            root,
            &[
                "check",
                "-c",
                config.to_str().unwrap(),
                "--check",
                name,
                "--format",
                "json",
            ],
            &[],
        );
        assert!(
            !run.stdout.contains(secret) && !run.stderr.contains(secret),
            "{}",
            run.stdout
        );
        (run.code, run.json())
    };
    let (code, escrow) = check("escrow-env");
    assert_eq!(
        (code, escrow["status"].as_str()),
        (2, Some("critical")),
        "{escrow}"
    );
    let findings: Vec<(String, String)> = escrow["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["rule"].as_str().unwrap().to_string(),
                f["location"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let unit = format!("{}/etc/systemd/system/escrow.service:4", root.display());
    let env = format!("{}/etc/escrow/escrow.env:2", root.display());
    for want in [
        ("env-policy/forbidden".to_string(), unit.clone()),
        ("env-policy/min-length".to_string(), env.clone()),
        ("env-policy/required".to_string(), "not defined".to_string()),
    ] {
        assert!(findings.contains(&want), "{want:?} in {findings:?}");
    }
    let summary = escrow["summary"].as_str().unwrap();
    assert!(
        summary.starts_with("production: 3 of 5 rules broken"),
        "{summary}"
    );
    assert!(
        summary.contains("ADMIN_WALLET_PUBKEYS is required but not set"),
        "{summary}"
    );

    let (code, api) = check("api-cors-env");
    assert_eq!(code, 2, "{api}");
    assert!(
        api["summary"].as_str().unwrap().contains(
            "CORS_ALLOWED_ORIGINS lacks APP_ORIGIN's value exactly (it has \"https://app.example.com/\", which is not exact)"
        ),
        "{api}"
    );

    // Fixed: the unit without mock mode, a long secret, the wallets, the
    // exact origin.
    std::fs::write(
        root.join("etc/systemd/system/escrow.service"),
        format!(
            "[Service]\nEnvironment=NODE_ENV=production\nEnvironmentFile={}/etc/escrow/escrow.env\n",
            root.display()
        ),
    )
    .unwrap();
    std::fs::write(
        root.join("etc/escrow/escrow.env"),
        "ESCROW_DB_SECRET=0123456789abcdef0123456789abcdef\nAPP_ORIGIN=https://app.example.com\n\
         ADMIN_WALLET_PUBKEYS=9xQeWvG816bUx9EPjHmaT23yvVM2ZWbrrpZb9PusVFin\n",
    )
    .unwrap();
    std::fs::write(
        root.join("srv/api/.env"),
        "APP_ORIGIN=https://app.example.com\nCORS_ALLOWED_ORIGINS=https://app.example.com, http://localhost:3000\n",
    )
    .unwrap();
    let (code, escrow) = check("escrow-env");
    assert_eq!(code, 0, "{escrow}");
    assert_eq!(
        escrow["summary"],
        "production: 5 rules hold over 4 variables from 2 files"
    );
    let (code, api) = check("api-cors-env");
    assert_eq!(code, 0, "{api}");
}

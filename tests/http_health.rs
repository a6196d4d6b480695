//! End-to-end: the standard `http-health` plugin inside the real agent,
//! running the configs in `examples/` against a fixture service on
//! 127.0.0.1 whose behaviour each test breaks on purpose.

mod common;

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;

/// What the fixture service does; tests flip these between runs.
#[derive(Default)]
struct Service {
    health_down: AtomicBool,
    cors_wildcard: AtomicBool,
    replay_accepted: AtomicBool,
    publish_errors: AtomicU64,
    blocked: AtomicU64,
    counter: AtomicU64,
    used: Mutex<HashSet<String>>,
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn reply(status: u16, ctype: &str, body: impl Into<Vec<u8>>) -> Reply {
    Reply {
        status,
        headers: vec![("content-type".into(), ctype.into())],
        body: body.into(),
    }
}

fn json(status: u16, v: serde_json::Value) -> Reply {
    reply(status, "application/json", v.to_string())
}

const ALLOWED: [&str; 2] = ["https://app.example.com", "http://localhost:3000"];

impl Service {
    fn handle(&self, method: &str, path: &str, headers: &[(String, String)], body: &[u8]) -> Reply {
        let header = |n: &str| {
            headers
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.as_str())
        };
        let body_json: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
        match (method, path) {
            ("GET", "/health") if self.health_down.load(Ordering::SeqCst) => {
                json(503, serde_json::json!({"status": "down"}))
            }
            ("GET", "/health") => json(
                200,
                serde_json::json!({"status": "ok", "checks": {"db": "ok"}}),
            ),
            ("GET", "/healthz") => reply(200, "text/plain", "ok"),
            ("GET", "/v1/config") => json(
                200,
                serde_json::json!({"mode": "live", "cors_origins": ["https://app.example.com"]}),
            ),
            ("GET", "/v1/status") => {
                json(200, serde_json::json!({"status": "ok", "version": "1.4.2"}))
            }
            ("GET", "/api/admin/health") => match header("authorization") {
                Some("Bearer admin-s3cret") => json(200, serde_json::json!({"status": "ok"})),
                _ => json(401, serde_json::json!({"error": {"code": "unauthorized"}})),
            },
            (m, "/v1/items") => {
                let mut r = if m == "OPTIONS" {
                    reply(204, "text/plain", "")
                } else {
                    json(200, serde_json::json!({"items": [{"id": 1}, {"id": 2}]}))
                };
                if let Some(origin) = header("origin") {
                    if self.cors_wildcard.load(Ordering::SeqCst) {
                        r.headers
                            .push(("access-control-allow-origin".into(), "*".into()));
                        r.headers
                            .push(("access-control-allow-credentials".into(), "true".into()));
                    } else if ALLOWED.contains(&origin) {
                        r.headers
                            .push(("access-control-allow-origin".into(), origin.into()));
                        r.headers.push(("vary".into(), "Origin".into()));
                        if m == "OPTIONS" {
                            r.headers
                                .push(("access-control-allow-methods".into(), "GET, POST".into()));
                        }
                    }
                }
                r
            }
            ("POST", "/auth/challenge") => {
                let n = self.counter.fetch_add(1, Ordering::SeqCst);
                json(
                    200,
                    serde_json::json!({"challenge": format!("challenge-{n:08}")}),
                )
            }
            ("POST", p) if p.starts_with("/auth/refresh/") => {
                let old = &p["/auth/refresh/".len()..];
                self.used.lock().unwrap().insert(old.to_string());
                let n = self.counter.fetch_add(1, Ordering::SeqCst);
                json(
                    200,
                    serde_json::json!({"challenge": format!("challenge-{n:08}"), "replaced": old}),
                )
            }
            ("POST", "/auth/verify") => {
                let c = body_json["challenge"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let fresh = self.used.lock().unwrap().insert(c);
                if fresh || self.replay_accepted.load(Ordering::SeqCst) {
                    json(200, serde_json::json!({"verified": true}))
                } else {
                    json(
                        409,
                        serde_json::json!({"error": {"code": "challenge_replayed", "message": "already used"}}),
                    )
                }
            }
            ("GET", "/metrics") => reply(
                200,
                "text/plain; version=0.0.4",
                format!(
                    "# TYPE publish_total counter\npublish_total{{result=\"ok\"}} 1000\npublish_total{{result=\"error\"}} {}\nrate_limit_blocked_total {}\nhttp_requests_total 1000\n",
                    self.publish_errors.load(Ordering::SeqCst),
                    self.blocked.load(Ordering::SeqCst)
                ),
            ),
            ("GET", "/v1/stats") => json(
                200,
                serde_json::json!({"auth": {"failures_last_minute": 2}}),
            ),
            ("GET", "/redirect") => Reply {
                status: 302,
                headers: vec![("location".into(), "/healthz".into())],
                body: vec![],
            },
            ("GET", "/slow") => {
                std::thread::sleep(Duration::from_secs(5));
                reply(200, "text/plain", "late")
            }
            ("GET", "/huge") => reply(200, "text/plain", vec![b'x'; 12 << 20]),
            _ => json(404, serde_json::json!({"error": {"code": "not_found"}})),
        }
    }
}

fn serve(service: Arc<Service>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(10_000) {
            let Ok(mut stream) = stream else { continue };
            let service = service.clone();
            std::thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    return;
                }
                let mut parts = line.split_whitespace();
                let method = parts.next().unwrap_or("").to_string();
                let path = parts.next().unwrap_or("/").to_string();
                let mut headers = Vec::new();
                let mut len = 0;
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                        break;
                    }
                    if let Some((k, v)) = h.split_once(':') {
                        let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_string());
                        if k == "content-length" {
                            len = v.parse().unwrap_or(0);
                        }
                        headers.push((k, v));
                    }
                }
                let mut body = vec![0; len];
                let _ = reader.read_exact(&mut body);
                let r = service.handle(&method, &path, &headers, &body);
                let mut head = format!(
                    "HTTP/1.1 {} X\r\ncontent-length: {}\r\nconnection: close\r\n",
                    r.status,
                    r.body.len()
                );
                for (k, v) in &r.headers {
                    head.push_str(&format!("{k}: {v}\r\n"));
                }
                head.push_str("\r\n");
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(&r.body);
            });
        }
    });
    port
}

/// Starts the agent on an example, pointed at the fixture service.
fn agent_for(
    example: &str,
    service: &Arc<Service>,
    extra: &str,
    env: &[(&str, &str)],
) -> (tempfile::TempDir, AgentProcess) {
    let port = serve(service.clone());
    let text = std::fs::read_to_string(format!(
        "{}/../examples/{example}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let config = format!(
        "[agent]\nlisten = \"127.0.0.1:{{PORT}}\"\n{}\n{extra}",
        text.replace("127.0.0.1:8080", &format!("127.0.0.1:{port}"))
    );
    let dir = tempfile::tempdir().unwrap();
    let agent = AgentProcess::start(dir.path(), &config, env);
    (dir, agent)
}

/// A manual run; while a scheduled run of the check is in flight (409
/// `already_running`: a check never overlaps itself) it asks again.
fn run(agent: &AgentProcess, check: &str) -> serde_json::Value {
    for _ in 0..200 {
        let r = http(
            agent.port,
            "POST",
            &format!("/v1/checks/{check}/run"),
            &[],
            b"",
        );
        if r.status == 409 {
            std::thread::sleep(std::time::Duration::from_millis(50));
            continue;
        }
        assert_eq!(r.status, 200, "{}", r.body);
        return r.json();
    }
    panic!("{check} stayed running for 10 s");
}

#[test]
fn health_example_passes_and_each_failure_is_named() {
    let service = Arc::new(Service::default());
    let (_dir, agent) = agent_for(
        "health.toml",
        &service,
        "",
        &[("ADMIN_TOKEN", "admin-s3cret")],
    );
    for check in [
        "api-health",
        "api-healthz",
        "api-status",
        "admin-health",
        "list-latency",
        "api-config",
    ] {
        let o = run(&agent, check);
        assert_eq!(o["status"], "ok", "{check}: {o}");
    }
    let o = run(&agent, "api-health");
    let names: Vec<&str> = o["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    for m in [
        "probe_success",
        "probe_duration_seconds",
        "probe_http_status_code",
        "probe_condition_success",
    ] {
        assert!(names.contains(&m), "{m} missing: {names:?}");
    }

    service.health_down.store(true, Ordering::SeqCst);
    let o = run(&agent, "api-health");
    assert_eq!(o["status"], "critical");
    let summary = o["summary"].as_str().unwrap();
    assert!(
        summary.contains("[STATUS] == 200 (got 503)")
            && summary.contains("[BODY].status == ok (got down)"),
        "{summary}"
    );
    // The token appears nowhere the operator looks.
    let o = run(&agent, "admin-health");
    assert!(!o.to_string().contains("admin-s3cret"));
    assert!(!agent.log().contains("admin-s3cret"));
    let metrics = agent.get("/metrics").body;
    assert!(
        metrics.lines().any(|l| l.starts_with(
            "probe_success{check=\"api-health\",plugin=\"http-health\",instance=\"http://127.0.0.1:"
        ) && l.ends_with("/health\"} 0")),
        "{metrics}"
    );
}

#[test]
fn a_missing_secret_is_unknown_not_critical() {
    let service = Arc::new(Service::default());
    let (_dir, agent) = agent_for("health.toml", &service, "", &[]);
    let o = run(&agent, "admin-health");
    assert_eq!(o["status"], "unknown");
    assert!(o["error"].as_str().unwrap().contains("ADMIN_TOKEN"), "{o}");
}

#[test]
fn cors_example_right_and_broken() {
    let service = Arc::new(Service::default());
    let (_dir, agent) = agent_for("cors.toml", &service, "", &[]);
    let o = run(&agent, "api-cors");
    assert_eq!(o["status"], "ok", "{o}");
    service.cors_wildcard.store(true, Ordering::SeqCst);
    let o = run(&agent, "api-cors");
    assert_eq!(o["status"], "critical");
    let findings = o["findings"].as_array().unwrap();
    assert!(
        findings
            .iter()
            .any(|f| f["message"].as_str().unwrap().contains("Allow-Credentials")),
        "{o}"
    );
    // Findings are stored, de-duplicated by fingerprint.
    run(&agent, "api-cors");
    let stored = agent.get("/v1/findings?check=api-cors").json();
    assert_eq!(stored["findings"].as_array().unwrap().len(), findings.len());
    service.cors_wildcard.store(false, Ordering::SeqCst);
    run(&agent, "api-cors");
    assert!(
        agent.get("/v1/findings?check=api-cors").json()["findings"]
            .as_array()
            .unwrap()
            .is_empty(),
        "resolved"
    );
}

#[test]
fn auth_flow_example_and_a_replay_bug() {
    let service = Arc::new(Service::default());
    let (_dir, agent) = agent_for("auth-flow.toml", &service, "", &[]);
    let o = run(&agent, "wallet-auth");
    assert_eq!(o["status"], "ok", "{o}");
    service.replay_accepted.store(true, Ordering::SeqCst);
    let o = run(&agent, "wallet-auth");
    assert_eq!(o["status"], "critical");
    let summary = o["summary"].as_str().unwrap();
    assert!(
        summary.starts_with("flow failed at step 4 of 4 (replay is refused)"),
        "{summary}"
    );
}

#[test]
fn metric_thresholds_example() {
    let service = Arc::new(Service::default());
    service.publish_errors.store(5, Ordering::SeqCst);
    service.blocked.store(10, Ordering::SeqCst);
    let (_dir, agent) = agent_for("rate-limit-metrics.toml", &service, "", &[]);
    assert_eq!(run(&agent, "publish-errors")["status"], "ok");
    assert_eq!(run(&agent, "auth-failures")["status"], "ok");
    // Blocks over 5% fire at once (no window); errors over 1% wait 5 minutes.
    service.blocked.store(80, Ordering::SeqCst);
    service.publish_errors.store(50, Ordering::SeqCst);
    let o = run(&agent, "publish-errors");
    assert_eq!(o["status"], "warning", "{o}");
    let summary = o["summary"].as_str().unwrap();
    assert!(
        summary.contains("rate-limit blocks over 5%")
            && !summary.contains("publish error rate over 1%"),
        "{summary}"
    );
}

#[test]
fn timeouts_body_caps_and_redirects() {
    let service = Arc::new(Service::default());
    let extra = r#"
[[check]]
name = "slow"
plugin = "http-health"
allow.hosts = ["http://127.0.0.1:8080"]
config = { url = "http://127.0.0.1:8080/slow", timeout = "1s" }
[[check]]
name = "huge"
plugin = "http-health"
allow.hosts = ["http://127.0.0.1:8080"]
config = { url = "http://127.0.0.1:8080/huge" }
[[check]]
name = "redirect"
plugin = "http-health"
allow.hosts = ["http://127.0.0.1:8080"]
config = { url = "http://127.0.0.1:8080/redirect", conditions = ["[STATUS] == 200", "[BODY] == ok"] }
[[check]]
name = "no-redirect"
plugin = "http-health"
allow.hosts = ["http://127.0.0.1:8080"]
config = { url = "http://127.0.0.1:8080/redirect", follow_redirects = false, conditions = ["[STATUS] == 302"] }
[[check]]
name = "not-granted"
plugin = "http-health"
config = { url = "http://127.0.0.1:8080/healthz" }
"#;
    let port = serve(service.clone());
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[agent]\nlisten = \"127.0.0.1:{{PORT}}\"\n{}",
        extra.replace("127.0.0.1:8080", &format!("127.0.0.1:{port}"))
    );
    let agent = AgentProcess::start(dir.path(), &config, &[]);
    let o = run(&agent, "slow");
    assert_eq!(o["status"], "critical");
    assert!(o["summary"].as_str().unwrap().contains("timed out"), "{o}");
    let o = run(&agent, "huge");
    assert_eq!(o["status"], "critical");
    assert!(
        o["summary"]
            .as_str()
            .unwrap()
            .contains("over the agent's cap"),
        "{o}"
    );
    assert_eq!(run(&agent, "redirect")["status"], "ok");
    assert_eq!(run(&agent, "no-redirect")["status"], "ok");
    let o = run(&agent, "not-granted");
    assert_eq!(
        o["status"], "unknown",
        "a denied request is the check's config, not the service: {o}"
    );
}

#[test]
fn invalid_http_health_configs_fail_validation() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("warden.toml");
    std::fs::write(
        &config,
        r#"
[[check]]
name = "bad-condition"
plugin = "http-health"
config = { url = "http://127.0.0.1:1/", conditions = ["[STATUS] = 200"] }
[[check]]
name = "two-modes"
plugin = "http-health"
config = { url = "http://127.0.0.1:1/", cors = { url = "http://127.0.0.1:1/", allowed_origins = ["https://a.example"] } }
"#,
    )
    .unwrap();
    let r = warden(
        dir.path(),
        &["validate", "-c", config.to_str().unwrap()],
        &[],
    );
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains(
            "check \"bad-condition\": config: config.conditions[0]: condition \"[STATUS] = 200\""
        ),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains(
            "check \"two-modes\": config: config: url, cors, flow and metrics are separate modes"
        ),
        "{}",
        r.stderr
    );
    for example in [
        "health.toml",
        "cors.toml",
        "auth-flow.toml",
        "rate-limit-metrics.toml",
    ] {
        let path = format!("{}/../examples/{example}", env!("CARGO_MANIFEST_DIR"));
        let r = warden(dir.path(), &["validate", "-c", &path], &[]);
        assert_eq!(r.code, 0, "{example}: {}", r.stderr);
    }
}

/// An HTTPS fixture whose certificate (signed by a fresh test CA) expires
/// in `days`; returns its port and the CA's PEM.
fn https_fixture(days: i64) -> (u16, String) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Warden Test CA");
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "fixture.test");
    params.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(1);
    params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(days);
    let cert = params.signed_by(&key, &ca).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for tcp in listener.incoming().take(1000) {
            let Ok(tcp) = tcp else { continue };
            let config = config.clone();
            std::thread::spawn(move || {
                let _ = tcp.set_read_timeout(Some(Duration::from_secs(10)));
                let Ok(conn) = rustls::ServerConnection::new(config) else {
                    return;
                };
                let mut tls = rustls::StreamOwned::new(conn, tcp);
                let mut buf = Vec::new();
                let mut byte = [0u8; 1];
                while !buf.ends_with(b"\r\n\r\n") {
                    match tls.read(&mut byte) {
                        Ok(1) => buf.push(byte[0]),
                        _ => return, // a TLS-only probe closes after the handshake
                    }
                }
                let _ = tls.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
                tls.conn.send_close_notify();
                let _ = tls.flush();
            });
        }
    });
    (port, ca.pem())
}

fn tls_agent(days: i64) -> (tempfile::TempDir, AgentProcess) {
    let (port, ca_pem) = https_fixture(days);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), ca_pem).unwrap();
    let text = std::fs::read_to_string(format!(
        "{}/../examples/tls-expiry.toml",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let config = format!(
        "[agent]\nlisten = \"127.0.0.1:{{PORT}}\"\nca_file = \"ca.pem\"\n{}",
        text.replace("127.0.0.1:8443", &format!("127.0.0.1:{port}"))
    );
    let agent = AgentProcess::start(dir.path(), &config, &[]);
    (dir, agent)
}

#[test]
fn certificate_expiry_over_https() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as f64;
    // 90 days left: ok, and the blackbox metric says when it expires.
    let (_dir, agent) = tls_agent(90);
    let o = run(&agent, "api-cert");
    assert_eq!(o["status"], "ok", "{o}");
    let metric = |o: &serde_json::Value, name: &str| {
        o["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == name)
            .map(|m| m["value"].as_f64().unwrap())
    };
    let expiry = metric(&o, "probe_ssl_earliest_cert_expiry").expect("expiry metric");
    assert!(
        (expiry - (now + 90.0 * 86400.0)).abs() < 86400.0,
        "{expiry}"
    );
    assert_eq!(metric(&o, "probe_tls_verified"), Some(1.0));
    drop(agent);

    // 20 days left: the 30-day condition is a warning.
    let (_dir, agent) = tls_agent(20);
    let o = run(&agent, "api-cert");
    assert_eq!(o["status"], "warning", "{o}");
    assert!(
        o["summary"]
            .as_str()
            .unwrap()
            .contains("[CERTIFICATE_EXPIRATION] > 720h"),
        "{o}"
    );
    drop(agent);

    // 3 days left: critical.
    let (_dir, agent) = tls_agent(3);
    assert_eq!(run(&agent, "api-cert")["status"], "critical");
}

/// Python's `http.server`, which reads a request body by its
/// Content-Length only (chunked bodies come through empty), answering 411
/// without one and echoing the JSON body otherwise. Returns the child and
/// its port.
fn python_echo_server() -> (std::process::Child, u16) {
    const SERVER: &str = r#"
import http.server, json, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        n = self.headers.get("Content-Length")
        if n is None:
            self.send_response(411); self.end_headers(); return
        body = self.rfile.read(int(n))
        out = json.dumps({"length": int(n), "echo": json.loads(body or b"null")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)
    def log_message(self, *a): pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.timeout = 30
for _ in range(20): s.handle_request()
"#;
    let mut child = std::process::Command::new("python3")
        .args(["-c", SERVER])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    (
        child,
        line.trim().parse().expect("the server prints its port"),
    )
}

#[test]
fn request_bodies_reach_a_server_that_needs_a_length() {
    let state = tempfile::tempdir().unwrap();
    let (mut server, port) = python_echo_server();
    let config = serde_json::json!({
        "url": format!("http://127.0.0.1:{port}/rpc"),
        "method": "POST",
        "json": {"jsonrpc": "2.0", "id": 1, "method": "getHealth"},
        "conditions": ["[STATUS] == 200", "[BODY].echo.method == getHealth"],
    })
    .to_string();
    let grant = format!("http://127.0.0.1:{port}");
    let run = check_json(
        state.path(),
        "http-health",
        &config,
        &["--allow-host", &grant],
    );
    let _ = server.kill();
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(run.json()["status"], "ok", "{}", run.stdout);
}

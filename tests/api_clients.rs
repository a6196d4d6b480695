//! End-to-end: the API and its clients. Auth (tokens, reads that need
//! one, browsers refused without one), CORS, errors, findings exports
//! and outputs through the API; and the API survives its clients:
//! clients that hold sockets, stall mid-request or lie about their bodies
//! get bounded answers, one that never finishes cannot hold up shutdown,
//! and running out of file descriptors is reported as the agent's fault.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;

const PLAIN: &str = r#"
[agent]
listen = "127.0.0.1:{PORT}"
[[check]]
name = "trivial"
plugin = "hostile"
schedule = "@every 1h"
config = { mode = "ok" }
"#;

/// Reads what the server sends until it closes (or `limit` passes).
fn read_all(s: &mut TcpStream, limit: Duration) -> String {
    s.set_read_timeout(Some(limit)).unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

#[test]
fn connections_over_the_cap_get_503_and_the_api_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let agent = AgentProcess::start(dir.path(), PLAIN, &[]);
    // 256 idle connections (the cap), then one more.
    let mut held = Vec::new();
    for _ in 0..256 {
        held.push(TcpStream::connect(("127.0.0.1", agent.port)).unwrap());
    }
    agent.wait_until("the cap is reached", Duration::from_secs(10), |_| {
        let mut s = TcpStream::connect(("127.0.0.1", agent.port)).unwrap();
        let _ = s.write_all(b"GET /health HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n");
        read_all(&mut s, Duration::from_secs(5)).starts_with("HTTP/1.1 503")
    });
    let mut s = TcpStream::connect(("127.0.0.1", agent.port)).unwrap();
    let answer = read_all(&mut s, Duration::from_secs(5));
    assert!(answer.contains("too many API connections"), "{answer}");
    drop(held);
    agent.wait_until("the API answers again", Duration::from_secs(10), |a| {
        a.get("/health").status == 200
    });
    let metrics = agent.get("/metrics").body;
    let refused = metrics
        .lines()
        .find_map(|l| l.strip_prefix("warden_api_connections_refused_total "))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    assert!(refused >= 1, "{metrics}");
}

#[test]
fn stalled_headers_and_bodies_and_lying_lengths_are_answered_in_bounded_time() {
    let dir = tempfile::tempdir().unwrap();
    let agent = AgentProcess::start(dir.path(), PLAIN, &[]);

    // A Content-Length over the cap: 413 at once, before any body.
    let t0 = Instant::now();
    let mut s = TcpStream::connect(("127.0.0.1", agent.port)).unwrap();
    s.write_all(b"POST /v1/checks/trivial/run HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: 100000000\r\n\r\n{}")
        .unwrap();
    let answer = read_all(&mut s, Duration::from_secs(5));
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("body_too_large"), "{answer}");
    assert!(t0.elapsed() < Duration::from_secs(5));

    // A body that stops halfway: 408 after the body timeout.
    let mut s = TcpStream::connect(("127.0.0.1", agent.port)).unwrap();
    s.write_all(b"POST /v1/checks/trivial/run HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"a\":")
        .unwrap();
    let answer = read_all(&mut s, Duration::from_secs(30));
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("body_timeout"), "{answer}");

    // Headers that never end: the connection is closed after the header
    // timeout (which also bounds idle keep-alive connections).
    let t0 = Instant::now();
    let mut s = TcpStream::connect(("127.0.0.1", agent.port)).unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nhost: 127.0.0.1\r\n")
        .unwrap();
    let answer = read_all(&mut s, Duration::from_secs(30));
    let took = t0.elapsed();
    assert!(!answer.contains("200 OK"), "{answer}");
    assert!(took < Duration::from_secs(25), "closed after {took:?}");

    let mut s = TcpStream::connect(("127.0.0.1", agent.port)).unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let t0 = Instant::now();
    let answer = read_all(&mut s, Duration::from_secs(30));
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        t0.elapsed() < Duration::from_secs(25),
        "idle keep-alive closed after {:?}",
        t0.elapsed()
    );
}

/// Out of file descriptors: the API's accept failures are logged, counted
/// and shown by `/readyz`; an HTTP probe that could not open a socket ends
/// `unknown` as the agent's fault, never `critical`.
#[test]
fn file_descriptor_exhaustion_is_the_agents_fault() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = fixture_server();
    let port = free_port();
    std::fs::create_dir_all(dir.path().join("plugins")).unwrap();
    let config = dir.path().join("warden.toml");
    std::fs::write(
        &config,
        format!(
            "[agent]\nlisten = \"127.0.0.1:{port}\"\n[[check]]\nname = \"probe\"\nplugin = \"http-health\"\nschedule = \"@every 1s\"\nsplay = \"0s\"\nallow.hosts = [\"http://127.0.0.1:{fixture}\"]\nconfig = {{ url = \"http://127.0.0.1:{fixture}/ok\" }}\n"
        ),
    )
    .unwrap();
    // A hard limit the agent cannot raise.
    let agent = AgentProcess::start_wrapped(
        dir.path(),
        &config,
        port,
        &[],
        &["prlimit", "--nofile=128:128", "--"],
    );
    agent.wait_until("the probe ran ok", Duration::from_secs(60), |a| {
        a.check("probe")["last_run"]["status"] == "ok"
    });
    // Take every descriptor the agent has left, and hold them for a while.
    let mut held = Vec::new();
    for _ in 0..200 {
        if let Ok(s) =
            TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(500))
        {
            held.push(s);
        }
    }
    agent.wait_until("accept fails with EMFILE", Duration::from_secs(10), |a| {
        a.log()
            .contains("the agent has run out of file descriptors")
    });
    std::thread::sleep(Duration::from_secs(3));
    drop(held);
    agent.wait_until("the API answers again", Duration::from_secs(20), |a| {
        TcpStream::connect(("127.0.0.1", a.port)).is_ok() && a.get("/health").status == 200
    });
    let ready = agent.get("/readyz");
    assert_eq!(ready.status, 503, "{}", ready.body);
    assert!(ready.body.contains("file descriptors"), "{}", ready.body);
    let metrics = agent.get("/metrics").body;
    assert!(metrics.contains("process_max_fds 128"), "{metrics}");
    assert!(
        !metrics.contains("warden_api_accept_errors_total 0\n"),
        "{metrics}"
    );

    let runs = agent.get("/v1/runs?check=probe&limit=200").json();
    let runs = runs["runs"].as_array().unwrap().clone();
    let critical: Vec<_> = runs.iter().filter(|r| r["status"] == "critical").collect();
    assert!(
        critical.is_empty(),
        "a probe blamed the service: {critical:?}"
    );
    let faulted = runs.iter().any(|r| {
        r["status"] == "unknown"
            && r["error"]
                .as_str()
                .unwrap_or_default()
                .contains("the agent's own limit")
    });
    assert!(faulted, "no run named the agent's fault: {runs:?}");
    // And then it recovers.
    agent.wait_until("ready again", Duration::from_secs(30), |a| {
        a.get("/readyz").status == 200
    });
}

/// A client no one here wrote: curl sends a body over the cap with
/// `Expect: 100-continue` and gets the JSON 413 at once, without the body
/// being read; a normal POST and a GET on one kept-alive connection work.
#[test]
fn curl_gets_json_answers_within_the_limits() {
    let curl = debian_tool("curl", "curl");
    let dir = tempfile::tempdir().unwrap();
    let agent = AgentProcess::start(dir.path(), PLAIN, &[]);
    let big = dir.path().join("big.json");
    std::fs::write(&big, format!("{{\"pad\":\"{}\"}}", "x".repeat(100_000))).unwrap();
    let base = format!("http://127.0.0.1:{}", agent.port);
    let t0 = Instant::now();
    let out = std::process::Command::new(&curl)
        .args([
            "-sS",
            "--max-time",
            "20",
            "-w",
            "\n%{http_code}",
            "-H",
            "content-type: application/json",
        ])
        .arg("--data-binary")
        .arg(format!("@{}", big.display()))
        .arg(format!("{base}/v1/checks/trivial/run"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.ends_with("\n413"),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("\"body_too_large\""), "{text}");
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "took {:?}",
        t0.elapsed()
    );

    let out = std::process::Command::new(&curl)
        .args([
            "-sS",
            "--max-time",
            "20",
            "-w",
            "\n%{http_code} %{num_connects}\n",
            "-X",
            "POST",
        ])
        .arg(format!("{base}/v1/checks/trivial/run"))
        .arg("--next")
        .args([
            "-sS",
            "--max-time",
            "20",
            "-w",
            "\n%{http_code} %{num_connects}\n",
        ])
        .arg(format!("{base}/health"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("\"status\":\"ok\""), "{text}");
    // Two 200s, the second on the connection the first opened.
    assert!(
        text.contains("\n200 1\n") && text.contains("\n200 0\n"),
        "{text}"
    );
}

#[test]
fn api_auth_cors_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), "t0ken-for-tests\n").unwrap();
    let agent = AgentProcess::start(
        dir.path(),
        r#"
[agent]
listen = "127.0.0.1:{PORT}"
[api]
token_file = "token"
cors_origins = ["https://ops.example.com"]
[[check]]
name = "greeter"
plugin = "hello"
schedule = "@every 1h"
[[check]]
name = "slow"
plugin = "hostile"
schedule = "@every 1h"
config = { mode = "slow", ms = 3000 }
"#,
        &[],
    );
    let port = agent.port;
    let bearer = ("authorization", "Bearer t0ken-for-tests");

    let next_before = agent.check("greeter")["next_due_unix_ms"].as_i64().unwrap();
    // Reads are open (require_token_for_reads = false); mutations are not.
    assert_eq!(agent.get("/v1/checks").status, 200);
    let r = http(port, "POST", "/v1/checks/greeter/run", &[], b"");
    assert_eq!((r.status, r.code().as_str()), (401, "unauthorized"));
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    let r = http(
        port,
        "POST",
        "/v1/checks/greeter/run",
        &[("authorization", "Bearer nope")],
        b"",
    );
    assert_eq!((r.status, r.code().as_str()), (403, "forbidden"));
    let r = http(port, "POST", "/v1/checks/greeter/run", &[bearer], b"");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["status"], "ok");
    assert!(r.json()["summary"].as_str().unwrap().contains("(run 1)"));
    // The manual run left the schedule alone (unless the due time itself
    // passed meanwhile, which an hourly check does not in a test).
    let next_after = agent.check("greeter")["next_due_unix_ms"].as_i64().unwrap();
    assert!(
        next_after == next_before || next_before <= warden::store::now_ms(),
        "next due moved: {next_before} -> {next_after}"
    );

    // Errors carry stable codes.
    let r = http(port, "POST", "/v1/checks/nope/run", &[bearer], b"");
    assert_eq!((r.status, r.code().as_str()), (404, "check_not_found"));
    assert_eq!(agent.get("/v1/checks/nope").code(), "check_not_found");
    assert_eq!(agent.get("/v1/nothing").code(), "not_found");
    let r = http(
        port,
        "POST",
        "/v1/checks/greeter/run",
        &[bearer, ("content-type", "application/json")],
        b"{not json",
    );
    assert_eq!((r.status, r.code().as_str()), (400, "invalid_json"));
    let big = vec![b' '; 200 * 1024];
    let r = http(port, "POST", "/v1/checks/greeter/run", &[bearer], &big);
    assert_eq!((r.status, r.code().as_str()), (413, "body_too_large"));
    assert_eq!(agent.get("/v1/runs?status=maybe").code(), "invalid_query");
    assert_eq!(agent.get("/v1/runs?limit=x").code(), "invalid_query");
    // A path that does not decode is a JSON error too.
    let r = agent.get("/v1/checks/%ff");
    assert_eq!(
        (r.status, r.code().as_str()),
        (400, "invalid_path"),
        "{}",
        r.body
    );
    // The auth scheme is case-insensitive.
    let lower = ("authorization", "bearer t0ken-for-tests");
    let r = http(port, "POST", "/v1/checks/greeter/run", &[lower], b"");
    assert_eq!(r.status, 200, "{}", r.body);

    // A check never overlaps itself, manual runs included.
    let r = http(
        port,
        "POST",
        "/v1/checks/slow/run?wait=false",
        &[bearer],
        b"",
    );
    assert_eq!(r.status, 202, "{}", r.body);
    let r = http(port, "POST", "/v1/checks/slow/run", &[bearer], b"");
    assert_eq!((r.status, r.code().as_str()), (409, "already_running"));

    // CORS: the allowed origin is echoed exactly; others get nothing.
    let r = http(
        port,
        "GET",
        "/v1/status",
        &[("origin", "https://ops.example.com")],
        b"",
    );
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://ops.example.com")
    );
    let r = http(
        port,
        "GET",
        "/v1/status",
        &[("origin", "https://evil.example.com")],
        b"",
    );
    assert_eq!(r.header("access-control-allow-origin"), None);
    let r = http(
        port,
        "OPTIONS",
        "/v1/checks/greeter/run",
        &[
            ("origin", "https://ops.example.com"),
            ("access-control-request-method", "POST"),
        ],
        b"",
    );
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://ops.example.com")
    );

    // The token never reaches the log.
    assert!(!agent.log().contains("t0ken-for-tests"));
}

#[test]
fn reads_can_require_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let agent = AgentProcess::start(
        dir.path(),
        "[agent]\nlisten = \"127.0.0.1:{PORT}\"\n[api]\ntoken_env = \"WARDEN_TEST_TOKEN\"\nrequire_token_for_reads = true\n",
        &[("WARDEN_TEST_TOKEN", "read-token")],
    );
    assert_eq!(agent.get("/v1/checks").code(), "unauthorized");
    assert_eq!(agent.get("/metrics").status, 401);
    assert_eq!(agent.get("/health").status, 200, "liveness stays open");
    let r = http(
        agent.port,
        "GET",
        "/v1/checks",
        &[("authorization", "Bearer read-token")],
        b"",
    );
    assert_eq!(r.status, 200);
}

#[test]
fn without_a_token_browsers_cannot_start_runs() {
    let dir = tempfile::tempdir().unwrap();
    let config = r#"
[agent]
listen = "127.0.0.1:{PORT}"
[[check]]
name = "greeter"
plugin = "hello"
schedule = "@every 1h"
"#;
    let agent = AgentProcess::start(dir.path(), config, &[]);
    let port = agent.port;
    let run = |headers: &[(&str, &str)]| http(port, "POST", "/v1/checks/greeter/run", headers, b"");
    // A cross-site form or fetch with a text/plain body: no preflight.
    let r = run(&[
        ("origin", "https://evil.example"),
        ("content-type", "text/plain"),
    ]);
    assert_eq!(
        (r.status, r.code().as_str()),
        (403, "forbidden"),
        "{}",
        r.body
    );
    assert!(r.body.contains("evil.example"), "{}", r.body);
    // DNS rebinding: the page's own name now points at 127.0.0.1.
    let host = format!("rebind.evil.example:{port}");
    let r = run(&[("host", &host)]);
    assert_eq!(
        (r.status, r.code().as_str()),
        (403, "forbidden"),
        "{}",
        r.body
    );
    // This machine's own tools still can.
    assert_eq!(run(&[]).status, 200);
    let localhost = format!("localhost:{port}");
    assert_eq!(run(&[("host", &localhost)]).status, 200);
    assert_eq!(run(&[("host", &format!("[::1]:{port}"))]).status, 200);
    // Reads stay open.
    let r = http(
        port,
        "GET",
        "/v1/checks",
        &[("origin", "https://evil.example")],
        b"",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-origin"), None);
}

#[test]
fn a_client_that_never_finishes_cannot_hold_up_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let config = r#"
[agent]
listen = "127.0.0.1:{PORT}"
shutdown_grace = "1s"
[[check]]
name = "greeter"
plugin = "hello"
schedule = "@every 1h"
"#;
    let mut agent = AgentProcess::start(dir.path(), config, &[]);
    // Half a request, and then nothing.
    let mut client = std::net::TcpStream::connect(("127.0.0.1", agent.port)).unwrap();
    client
        .write_all(b"GET /v1/checks HTTP/1.1\r\nhost: 127.0.0.1\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    agent.signal("TERM");
    let t0 = std::time::Instant::now();
    while agent.alive() && t0.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !agent.alive(),
        "SIGTERM did not end the agent in 20 s:\n{}",
        agent.log()
    );
    assert!(
        agent
            .log()
            .contains("still connected after the shutdown grace"),
        "{}",
        agent.log()
    );
    drop(client);
}

#[test]
fn stored_findings_export_from_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let agent = AgentProcess::start(
        dir.path(),
        "[agent]\nlisten = \"127.0.0.1:{PORT}\"\n[[check]]\nname = \"scan\"\nplugin = \"hostile\"\nschedule = \"@every 1h\"\nconfig = { mode = \"findings\" }\n",
        &[],
    );
    let r = http(agent.port, "POST", "/v1/checks/scan/run", &[], b"");
    assert_eq!(r.json()["status"], "critical");
    let sarif = agent.get("/v1/findings?check=scan&format=sarif").json();
    assert_eq!(
        sarif["runs"][0]["results"].as_array().unwrap().len(),
        2,
        "{sarif}"
    );
    let gitleaks = agent.get("/v1/findings?check=scan&format=gitleaks").json();
    assert!(
        gitleaks
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["File"] == "/srv/app/config.py" && f["StartLine"] == 3),
        "{gitleaks}"
    );
    assert_eq!(
        agent.get("/v1/findings?check=scan&format=csv").code(),
        "invalid_query"
    );
    assert_eq!(
        agent.get("/v1/findings?check=nope").code(),
        "check_not_found"
    );
}

#[test]
fn outputs_findings_retries_and_state_in_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let agent = AgentProcess::start(
        dir.path(),
        r#"
[agent]
listen = "127.0.0.1:{PORT}"
[[check]]
name = "publisher"
plugin = "hostile"
schedule = "@every 1h"
config = { mode = "outputs", value = "https://rpc.example.com/?k=1" }
outputs_file = "out/app.env"
[[check]]
name = "flaky"
plugin = "hostile"
schedule = "@every 1h"
retries = 2
failure_threshold = 2
config = { mode = "error" }
"#,
        &[],
    );
    let port = agent.port;
    let r = http(port, "POST", "/v1/checks/publisher/run", &[], b"");
    assert_eq!(r.status, 200, "{}", r.body);
    let env = std::fs::read_to_string(dir.path().join("out/app.env")).unwrap();
    assert!(
        env.contains("TEST_VALUE=\"https://rpc.example.com/?k=1\"\n")
            || env.contains("TEST_VALUE=https://rpc.example.com/?k=1\n"),
        "{env}"
    );
    assert!(env.contains("TEST_QUOTED=\"a b \\$c\"\n"), "{env}");
    let outputs = agent.get("/v1/outputs?check=publisher").json();
    assert_eq!(outputs["outputs"].as_array().unwrap().len(), 2, "{outputs}");

    // A manual unknown is not retried; its state is soft until the threshold.
    let r = http(port, "POST", "/v1/checks/flaky/run", &[], b"");
    assert_eq!(r.json()["status"], "unknown");
    let state = agent.check("flaky")["state"].clone();
    assert_eq!(state["last_status"], "unknown");
    assert_eq!(state["consecutive_fail"], 1);
    let runs = agent.get("/v1/runs?check=flaky").json();
    assert_eq!(runs["runs"].as_array().unwrap().len(), 1);
    let r = http(port, "POST", "/v1/checks/flaky/run", &[], b"");
    assert_eq!(r.json()["status"], "unknown");
    let state = agent.check("flaky")["state"].clone();
    assert_eq!(
        (state["status"].as_str(), state["state_type"].as_str()),
        (Some("unknown"), Some("hard")),
        "{state}"
    );
}

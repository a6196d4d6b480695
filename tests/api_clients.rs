//! End-to-end: the API survives its clients. Clients that hold sockets,
//! stall mid-request or lie about their bodies get bounded answers, and
//! running out of file descriptors is reported as the agent's fault.

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

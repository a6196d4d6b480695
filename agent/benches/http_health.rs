//! `http-health` against Prometheus' blackbox exporter, in the same run.
//!
//! One local fixture server exposes N JSON health endpoints. Warden (the
//! real `warden run` binary, release build) checks each every second with
//! `[STATUS] == 200` and `[BODY].status == ok`; the blackbox exporter
//! (Debian's `prometheus-blackbox-exporter`, installed here if missing)
//! probes the same endpoints through `/probe` with an equivalent module,
//! driven at the same rate by this process (as Prometheus would scrape
//! it). Each side runs alone for the measured window; the CPU counted is
//! that of the `warden` or `blackbox_exporter` process only.
//!
//! Run with `cargo bench -p warden --bench http_health`; figures go to
//! `docs/BENCHMARKS.md`. `WARDEN_BENCH_ENDPOINTS` (default 200) and
//! `WARDEN_BENCH_SECS` (default 20) size it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

mod common;

use common::cpu_seconds;

const BLACKBOX: &str = "prometheus-blackbox-exporter";

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The fixture: `/health/<n>` answers `{"status":"ok"}`; served by a small
/// pool of threads so it is never the bottleneck.
fn fixture() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let listener = Arc::new(listener);
    for _ in 0..8 {
        let listener = listener.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                loop {
                    line.clear();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                }
                let body = br#"{"status":"ok"}"#;
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(body);
            }
        });
    }
    port
}

fn get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n").as_bytes(),
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

fn wait_for(port: u16) {
    let t0 = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "port {port} never opened"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn ensure_blackbox() -> bool {
    if Command::new(BLACKBOX).arg("--version").output().is_ok() {
        return true;
    }
    eprintln!("installing {BLACKBOX} (apt-get) ...");
    let ok = Command::new("sh")
        .args(["-c", "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus-blackbox-exporter"])
        .status()
        .is_ok_and(|s| s.success());
    ok && Command::new(BLACKBOX).arg("--version").output().is_ok()
}

fn warden(fixture: u16, n: u64, secs: u64) -> (f64, f64) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut config = format!(
        "[agent]\nlisten = \"127.0.0.1:{port}\"\nmax_concurrent_runs = 64\nkeep_runs = 100000\n"
    );
    for i in 0..n {
        config.push_str(&format!(
            "[[check]]\nname = \"ep{i}\"\nplugin = \"http-health\"\nschedule = \"@every 1s\"\nallow.hosts = [\"http://127.0.0.1:{fixture}\"]\n\
             config = {{ url = \"http://127.0.0.1:{fixture}/health/{i}\", conditions = [\"[STATUS] == 200\", \"[BODY].status == ok\"] }}\n"
        ));
    }
    std::fs::write(dir.path().join("warden.toml"), config).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args([
            "run",
            "-c",
            dir.path().join("warden.toml").to_str().unwrap(),
        ])
        .env("WARDEN_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let child = Killed(child);
    wait_for(port);
    // Until every plugin is compiled (the agent loads the standard plugins
    // in the background; a fresh state directory has no cache), then a
    // few seconds for the checks to settle into their schedule.
    let t0 = Instant::now();
    while !get(port, "/readyz").is_some_and(|r| r.starts_with("HTTP/1.1 200")) {
        assert!(t0.elapsed() < Duration::from_secs(300), "never ready");
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(3));
    let count = || -> f64 {
        let text = get(port, "/metrics").unwrap_or_default();
        text.lines()
            .filter(|l| l.starts_with("warden_check_runs_total{") && l.contains("status=\"ok\""))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    let failed = || -> f64 {
        let text = get(port, "/metrics").unwrap_or_default();
        text.lines()
            .filter(|l| l.starts_with("warden_check_runs_total{") && !l.contains("status=\"ok\""))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    let (c0, cpu0, t0) = (
        count(),
        cpu_seconds(&child.0.id().to_string()),
        Instant::now(),
    );
    std::thread::sleep(Duration::from_secs(secs));
    let (c1, cpu1, elapsed) = (
        count(),
        cpu_seconds(&child.0.id().to_string()),
        t0.elapsed().as_secs_f64(),
    );
    let failures = failed();
    if failures > 0.0 {
        println!("warden http-health   {failures} probes failed");
    }
    ((c1 - c0) / elapsed, (c1 - c0) / (cpu1 - cpu0).max(1e-9))
}

fn blackbox(fixture: u16, n: u64, secs: u64) -> (f64, f64) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    std::fs::write(
        dir.path().join("blackbox.yml"),
        "modules:\n  health:\n    prober: http\n    timeout: 5s\n    http:\n      valid_status_codes: [200]\n      preferred_ip_protocol: ip4\n      fail_if_body_not_matches_regexp: ['\"status\":\"ok\"']\n",
    )
    .unwrap();
    let child = Command::new(BLACKBOX)
        .args([
            &format!(
                "--config.file={}",
                dir.path().join("blackbox.yml").display()
            ),
            &format!("--web.listen-address=127.0.0.1:{port}"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let child = Killed(child);
    wait_for(port);
    // Drive it like Prometheus would: every endpoint once per second,
    // spread over the second, from a few concurrent scrapers.
    let done = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let bad = Arc::new(AtomicU64::new(0));
    let threads = 16;
    let mut handles = Vec::new();
    for t in 0..threads {
        let (done, ok, bad) = (done.clone(), ok.clone(), bad.clone());
        handles.push(std::thread::spawn(move || {
            let mine: Vec<u64> = (0..n).filter(|i| i % threads == t).collect();
            let start = Instant::now();
            let mut round = 0u64;
            while !done.load(Ordering::Relaxed) {
                for (k, i) in mine.iter().enumerate() {
                    let due = start
                        + Duration::from_secs(round)
                        + Duration::from_millis(1000 * k as u64 / mine.len().max(1) as u64);
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    let path = format!(
                        "/probe?module=health&target=http://127.0.0.1:{fixture}/health/{i}"
                    );
                    match get(port, &path) {
                        Some(body) if body.contains("probe_success 1") => {
                            ok.fetch_add(1, Ordering::Relaxed)
                        }
                        _ => bad.fetch_add(1, Ordering::Relaxed),
                    };
                }
                round += 1;
            }
        }));
    }
    std::thread::sleep(Duration::from_secs(3));
    let (c0, b0, cpu0, t0) = (
        ok.load(Ordering::Relaxed),
        bad.load(Ordering::Relaxed),
        cpu_seconds(&child.0.id().to_string()),
        Instant::now(),
    );
    std::thread::sleep(Duration::from_secs(secs));
    let (c1, b1, cpu1, elapsed) = (
        ok.load(Ordering::Relaxed),
        bad.load(Ordering::Relaxed),
        cpu_seconds(&child.0.id().to_string()),
        t0.elapsed().as_secs_f64(),
    );
    done.store(true, Ordering::Relaxed);
    for h in handles {
        let _ = h.join();
    }
    if b1 > b0 {
        println!(
            "blackbox exporter    {} probes failed in the window",
            b1 - b0
        );
    }
    let probes = (c1 - c0) as f64;
    (probes / elapsed, probes / (cpu1 - cpu0).max(1e-9))
}

fn main() {
    let n = env_or("WARDEN_BENCH_ENDPOINTS", 200);
    let secs = env_or("WARDEN_BENCH_SECS", 20);
    let fixture = fixture();
    println!("== {n} endpoints on one local server, each checked every second, {secs}s measured");
    let (w_rate, w_eff) = warden(fixture, n, secs);
    println!("warden http-health   {w_rate:>8.1} probes/s   {w_eff:>8.1} probes per CPU-second");
    if !ensure_blackbox() {
        println!("blackbox exporter    not available; install {BLACKBOX} to compare");
        return;
    }
    let (b_rate, b_eff) = blackbox(fixture, n, secs);
    println!("blackbox exporter    {b_rate:>8.1} probes/s   {b_eff:>8.1} probes per CPU-second");
    println!(
        "ratio (warden / blackbox, probes per CPU-second): {:.2}",
        w_eff / b_eff
    );
}

//! Start-up: how soon `warden run` (the release binary, on the embedded
//! defaults' standard plugins) answers `/health`, how soon `/readyz`
//! says ready, and its RSS once ready (2 s after, settled), on a cold
//! compiled-code cache (a fresh state directory: every plugin compiles)
//! and on a warm one (the same directory, restarted). Three rounds each.
//!
//! `cargo bench -p warden --bench start`; `WARDEN_BENCH_BIN=path` runs
//! another `warden` binary (an older build, for before/after).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn get(port: u16, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf);
    buf.split_whitespace().nth(1)?.parse().ok()
}

fn rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One start: (ms to /health, ms to /readyz 200, RSS MiB once settled).
fn start(bin: &str, dir: &std::path::Path) -> (f64, f64, f64) {
    let port = free_port();
    let config = dir.join("warden.toml");
    std::fs::write(
        &config,
        format!(
            "[agent]\nlisten = \"127.0.0.1:{port}\"\n\
             [[check]]\nname = \"hello\"\nplugin = \"hello\"\nschedule = \"@every 1m\"\n"
        ),
    )
    .unwrap();
    let t0 = Instant::now();
    let mut child = Command::new(bin)
        .args(["run", "-c", config.to_str().unwrap()])
        .env("WARDEN_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting warden");
    let mut health = None;
    let mut ready = None;
    while t0.elapsed() < Duration::from_secs(300) && ready.is_none() {
        if health.is_none() && get(port, "/health") == Some(200) {
            health = Some(t0.elapsed());
        }
        if health.is_some() && get(port, "/readyz") == Some(200) {
            ready = Some(t0.elapsed());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    std::thread::sleep(Duration::from_secs(2));
    let rss = rss_mib(child.id()).unwrap_or(f64::NAN);
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let _ = child.wait();
    let ms = |d: Option<Duration>| d.map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0);
    (ms(health), ms(ready), rss)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let bin =
        std::env::var("WARDEN_BENCH_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_warden").into());
    println!("== start-up of {bin} (standard plugins, release)");
    println!("round  cache  /health ms  /readyz ms  RSS MiB");
    for round in 1..=3 {
        let dir = tempfile::tempdir().unwrap();
        for cache in ["cold", "warm"] {
            let (h, r, rss) = start(&bin, dir.path());
            println!("{round:>5}  {cache:<5}  {h:>10.1}  {r:>10.1}  {rss:>7.1}");
        }
    }
}

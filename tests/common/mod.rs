//! Helpers shared by the end-to-end tests: the real `warden` binary, the
//! test plugins built by the agent's build script, temporary state
//! directories, and a small HTTP fixture server on 127.0.0.1.

#![allow(dead_code)] // each test file uses a different subset

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// The `warden` binary under test.
pub fn warden_bin() -> &'static str {
    env!("CARGO_BIN_EXE_warden")
}

/// A wasm file built from `plugins/` or `tests/plugins/`.
pub fn wasm(name: &str) -> PathBuf {
    let p = Path::new(env!("WARDEN_WASM_DIR")).join(format!("{}.wasm", name.replace('-', "_")));
    assert!(p.is_file(), "{} was not built", p.display());
    p
}

/// Result of one `warden` invocation.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    /// The JSON printed by `--format json`.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

/// Runs `warden` with `args`, the state in `state`, and extra environment.
pub fn warden(state: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(warden_bin());
    cmd.args(args)
        .env("WARDEN_STATE_DIR", state)
        .env_remove("WARDEN_LOG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    Run::from(cmd.output().expect("running warden"))
}

/// `warden check <plugin> --format json ...` with a config.
pub fn check_json(state: &Path, plugin: &str, config: &str, extra: &[&str]) -> Run {
    let mut args = vec!["check", plugin, "--format", "json", "--config", config];
    args.extend_from_slice(extra);
    warden(state, &args, &[])
}

/// What the fixture server does for a path.
fn respond(path: &str, stream: &mut TcpStream) {
    let _ = stream.set_write_timeout(Some(Duration::from_secs(10)));
    match path {
        "/ok" => {
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
        }
        "/fail" => {
            let _ = stream.write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 4\r\nconnection: close\r\n\r\ndown");
        }
        "/huge-declared" => {
            let _ = stream.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-length: 1073741824\r\nconnection: close\r\n\r\n",
            );
        }
        "/huge-streamed" => {
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n");
            let chunk = vec![b'z'; 1 << 16];
            // 64 MiB at most, well past the agent's cap; stop when the
            // agent hangs up.
            for _ in 0..1024 {
                if stream.write_all(&chunk).is_err() {
                    break;
                }
            }
        }
        "/hang" => std::thread::sleep(Duration::from_secs(20)),
        _ => {
            let _ = stream.write_all(
                b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            );
        }
    }
}

/// Starts the fixture server on 127.0.0.1 and returns its port. It serves
/// until the test process exits.
pub fn fixture_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding the fixture server");
    let port = listener.local_addr().expect("local addr").port();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(10_000) {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    return;
                }
                let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
                let mut content_length = 0usize;
                loop {
                    let mut header = String::new();
                    if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
                        break;
                    }
                    if let Some(v) = header.to_ascii_lowercase().strip_prefix("content-length:") {
                        content_length = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; content_length];
                let _ = reader.read_exact(&mut body);
                respond(&path, &mut stream);
            });
        }
    });
    port
}

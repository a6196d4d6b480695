//! Helpers shared by the end-to-end tests: the real `warden` binary, the
//! test plugins built by the agent's build script, temporary state
//! directories, and a small HTTP fixture server on 127.0.0.1.

#![allow(dead_code)] // each test file uses a different subset

pub mod notify;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// `python3 tests/fixtures/SCRIPT PORT DIR` (a fixture on Python's
/// http.server), once it listens on 127.0.0.1:PORT.
pub fn python_fixture(script: &str, port: u16, dir: &Path) -> Child {
    std::fs::create_dir_all(dir).unwrap();
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(script);
    let mut child = Command::new("python3")
        .arg(path)
        .arg(port.to_string())
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3");
    for _ in 0..200 {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return child;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("{script} did not start on {port}");
}

/// Python's own `http.server` serving `dir` on 127.0.0.1 (a server no one
/// here wrote), killed on drop.
pub struct PythonHttpServer {
    child: Child,
    pub port: u16,
}

impl PythonHttpServer {
    pub fn start(dir: &Path) -> PythonHttpServer {
        let port = free_port();
        let server = PythonHttpServer {
            child: Command::new("python3")
                .args([
                    "-m",
                    "http.server",
                    &port.to_string(),
                    "--bind",
                    "127.0.0.1",
                ])
                .arg("--directory")
                .arg(dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("python3 -m http.server"),
            port,
        };
        for _ in 0..200 {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return server;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("python3 -m http.server did not listen on 127.0.0.1:{port}");
    }
}

impl Drop for PythonHttpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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

/// The path of `bin`, installing Debian's `package` with apt-get when it
/// is missing (the machines run as root); panics if that fails, so a test
/// never passes without its peer.
pub fn debian_tool(bin: &str, package: &str) -> PathBuf {
    let found = || {
        Command::new("sh")
            .args(["-c", &format!("command -v {bin}")])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
    };
    if let Some(p) = found() {
        return p;
    }
    let status = Command::new("sh")
        .args([
            "-c",
            &format!("apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq {package}"),
        ])
        .status();
    assert!(
        status.is_ok_and(|s| s.success()),
        "{bin} is missing and apt-get install {package} failed"
    );
    found().unwrap_or_else(|| panic!("{package} installed no {bin}"))
}

/// A size-limited tmpfs at a path (the tests run as root, as CI does), for
/// a disk that really fills up; unmounted on drop.
pub struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts `size` (`8m`, `96m`) of tmpfs at `path`.
    pub fn mount(path: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(path).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .status()
            .expect("running mount");
        assert!(status.success(), "mounting a tmpfs at {}", path.display());
        Tmpfs(path.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Result of one `warden` invocation.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn from(o: Output) -> Run {
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
                respond(path.split('?').next().unwrap_or_default(), &mut stream);
            });
        }
    });
    port
}

/// A minimal HTTP/1.1 client for the tests (one request per connection).
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// The stable error code of a JSON error.
    pub fn code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

/// Sends one request to 127.0.0.1:`port`.
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpResponse {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connecting to the agent");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req.push_str(&format!("host: 127.0.0.1:{port}\r\n"));
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).unwrap();
    let _ = stream.write_all(body);
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    HttpResponse {
        status,
        headers,
        body,
    }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// A free port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `warden run` with its own directories; killed on drop.
pub struct AgentProcess {
    pub child: std::process::Child,
    pub port: u16,
    pub dir: PathBuf,
    pub config: PathBuf,
}

impl AgentProcess {
    /// Writes `config` (with `{PORT}` and `{DIR}` replaced), puts the
    /// `hostile` test plugin in the plugin directory, and starts the agent.
    pub fn start(dir: &Path, config: &str, env: &[(&str, &str)]) -> AgentProcess {
        let port = free_port();
        std::fs::create_dir_all(dir.join("plugins")).unwrap();
        std::fs::copy(wasm("hostile"), dir.join("plugins/hostile.wasm")).unwrap();
        let path = dir.join("warden.toml");
        let text = config
            .replace("{PORT}", &port.to_string())
            .replace("{DIR}", &dir.display().to_string());
        std::fs::write(&path, text).unwrap();
        Self::start_with(dir, &path, port, env)
    }

    /// Starts the agent on an existing config file.
    pub fn start_with(dir: &Path, config: &Path, port: u16, env: &[(&str, &str)]) -> AgentProcess {
        Self::start_wrapped(dir, config, port, env, &[])
    }

    /// Starts the agent under a wrapper command (`prlimit --nofile=...`).
    pub fn start_wrapped(
        dir: &Path,
        config: &Path,
        port: u16,
        env: &[(&str, &str)],
        wrapper: &[&str],
    ) -> AgentProcess {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("agent.log"))
            .unwrap();
        let mut cmd = match wrapper.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(warden_bin());
                c
            }
            None => Command::new(warden_bin()),
        };
        cmd.args(["run", "-c", config.to_str().unwrap()])
            .env("WARDEN_LOG", "info,warden=debug")
            .env_remove("WARDEN_PROFILE")
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("starting warden run");
        let agent = AgentProcess {
            child,
            port,
            dir: dir.to_path_buf(),
            config: config.to_path_buf(),
        };
        agent.wait_until("the API answers", Duration::from_secs(60), |a| {
            TcpStream::connect(("127.0.0.1", a.port)).is_ok()
        });
        // Plugins compile in the background; tests start once they are in
        // (`start_compiling` does not wait).
        agent.wait_until("the plugins are loaded", Duration::from_secs(120), |a| {
            let r = a.get("/readyz");
            r.status == 200 || !r.body.contains("plugins still compiling")
        });
        agent
    }

    /// Like [`AgentProcess::start`], returning as soon as the API answers,
    /// while plugins may still compile.
    pub fn start_compiling(dir: &Path, config: &str, env: &[(&str, &str)]) -> AgentProcess {
        let port = free_port();
        std::fs::create_dir_all(dir.join("plugins")).unwrap();
        let path = dir.join("warden.toml");
        std::fs::write(&path, config.replace("{PORT}", &port.to_string())).unwrap();
        let log = std::fs::File::create(dir.join("agent.log")).unwrap();
        let child = Command::new(warden_bin())
            .args(["run", "-c", path.to_str().unwrap()])
            .env("WARDEN_LOG", "info,warden=debug")
            .env_remove("WARDEN_PROFILE")
            .envs(env.iter().copied())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting warden run");
        let agent = AgentProcess {
            child,
            port,
            dir: dir.to_path_buf(),
            config: path,
        };
        agent.wait_until("the API answers", Duration::from_secs(60), |a| {
            TcpStream::connect(("127.0.0.1", a.port)).is_ok()
        });
        agent
    }

    pub fn get(&self, path: &str) -> HttpResponse {
        http(self.port, "GET", path, &[], b"")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("agent.log")).unwrap_or_default()
    }

    /// Polls `cond` every 50 ms until it holds or `limit` passes.
    pub fn wait_until(&self, what: &str, limit: Duration, mut cond: impl FnMut(&Self) -> bool) {
        let t0 = std::time::Instant::now();
        while t0.elapsed() < limit {
            if cond(self) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("timed out waiting until {what}; agent log:\n{}", self.log());
    }

    /// The check's view from the API.
    pub fn check(&self, name: &str) -> serde_json::Value {
        self.get(&format!("/v1/checks/{name}")).json()
    }

    /// Sends `signal` (`HUP`, `TERM`, ...) without waiting.
    pub fn signal(&self, signal: &str) {
        send_signal(self.child.id(), signal);
    }

    /// True while the process runs.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends SIGTERM and waits for the exit code.
    pub fn terminate(mut self) -> i32 {
        send_signal(self.child.id(), "TERM");
        let status = self.child.wait().unwrap();
        status.code().unwrap_or(-1)
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn send_signal(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status();
}

/// A copy of a component with a custom section appended: same behaviour,
/// different sha256 (a "new version" for hot-reload tests).
pub fn variant(bytes: &[u8], tag: &str) -> Vec<u8> {
    let name = b"warden-test";
    let mut payload = vec![name.len() as u8];
    payload.extend_from_slice(name);
    payload.extend_from_slice(tag.as_bytes());
    let mut out = bytes.to_vec();
    out.push(0); // custom section id
    let mut n = payload.len();
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
    out.extend_from_slice(&payload);
    out
}

/// Writes a file the way an operator's deploy should: beside it, then
/// renamed into place.
pub fn drop_atomically(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("wasm.tmp");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

//! Plugins in other languages: the Python and JavaScript templates
//! (`warden new --lang python|js`, built with their pinned componentize-py
//! and componentize-js) beside the Rust `hello`.
//!
//! 1. First load (compile, link, `describe`) of each component, each
//!    in a child process of its own so its CPU time and peak memory are its
//!    own: with Winch (what the agent uses for a component this large) and
//!    with Cranelift.
//! 2. Run overhead: the same HTTP probe (Python's http.server on
//!    127.0.0.1) by `hello` and by each template under both compilers,
//!    a fresh instance per run.
//!
//! Run with `cargo bench -p warden --bench languages`; figures go to
//! `docs/BENCHMARKS.md`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use warden_runtime::{Allow, Grants, Origin, RunRequest, Runtime, RuntimeOptions, Status};

const RUNS: usize = 200;

fn runtime(compiler: &str) -> Runtime {
    let rt = Runtime::new(RuntimeOptions::default()).expect("runtime");
    match compiler {
        "winch" => rt,
        _ => rt.with_large_component_bytes(usize::MAX),
    }
}

/// A template (`lang`: `python` or `js`), built once into the target
/// directory with its pinned tools.
fn template_plugin(lang: &str, name: &str) -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let dir = tmp.join(format!("bench-{name}"));
    let wasm = dir.join(format!("{name}.wasm"));
    if wasm.is_file() {
        return wasm;
    }
    let _ = std::fs::remove_dir_all(&dir);
    let warden = env!("CARGO_BIN_EXE_warden");
    let ok = Command::new(warden)
        .args(["new", "--lang", lang, name, "--dir"])
        .arg(&dir)
        .status()
        .expect("warden new");
    assert!(ok.success());
    let ok = Command::new(dir.join("build.sh"))
        .env("WARDEN", warden)
        .env("WARDEN_PY_VENV", tmp.join("../peers/python-plugins"))
        .env("WARDEN_JS_TOOLS", tmp.join("../peers/js-plugins"))
        .status()
        .expect("build.sh");
    assert!(ok.success(), "building the {lang} template");
    wasm
}

/// In a child: load `path` with `compiler`, then exit.
fn child(compiler: &str, path: &str) {
    let bytes = std::fs::read(path).expect("plugin");
    let rt = tokio::runtime::Runtime::new().expect("tokio");
    rt.block_on(async {
        let runtime = runtime(compiler);
        let p = runtime
            .load(&bytes, Origin::File(path.into()))
            .await
            .expect("load");
        println!("{:?}", p.compiler);
    });
}

/// CPU seconds, wall time and peak RSS (MiB) of a child loading `path`.
#[allow(clippy::zombie_processes)] // reaped by wait4, which reports its usage
fn first_load(compiler: &str, path: &Path) -> (f64, Duration, f64) {
    let started = Instant::now();
    let child = Command::new(std::env::current_exe().unwrap())
        .args(["--child", compiler])
        .arg(path)
        .spawn()
        .expect("child");
    let mut status = 0;
    // SAFETY: a zeroed rusage is valid; wait4 fills it for our child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as i32);
    assert_eq!(status, 0, "the child failed");
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (
        secs(usage.ru_utime) + secs(usage.ru_stime),
        started.elapsed(),
        usage.ru_maxrss as f64 / 1024.0,
    )
}

fn median(mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort();
    (v[v.len() / 2], v[v.len() * 9 / 10])
}

async fn runs(
    runtime: &Runtime,
    bytes: &[u8],
    name: &str,
    config: &str,
    grants: &Grants,
) -> (Duration, Duration) {
    let plugin = runtime
        .load(bytes, Origin::Embedded(name.into()))
        .await
        .expect("load");
    let request = RunRequest {
        check: "bench".into(),
        config: config.into(),
        scheduled: SystemTime::now(),
        attempt: 1,
        timeout: Duration::from_secs(10),
        memory: 256 << 20,
        grants: grants.clone(),
        state_quota: Default::default(),
        action: None,
    };
    let mut samples = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let t = Instant::now();
        let o = runtime.run(&plugin, &request).await;
        samples.push(t.elapsed());
        assert_eq!(o.status, Status::Ok, "{name}: {} {:?}", o.summary, o.error);
    }
    median(samples)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--child") {
        return child(&args[2], &args[3]);
    }
    let py = template_plugin("python", "pyprobe");
    let js = template_plugin("js", "jsprobe");
    let (py_bytes, js_bytes) = (std::fs::read(&py).unwrap(), std::fs::read(&js).unwrap());
    println!(
        "Python template: {:.1} MiB (componentize-py 0.25.1); JS template: {:.1} MiB (componentize-js 0.23.0)",
        py_bytes.len() as f64 / 1048576.0,
        js_bytes.len() as f64 / 1048576.0
    );
    println!("1. first load (compile, link, describe), a process each:");
    for (lang, path) in [("Python", &py), ("JS", &js)] {
        for compiler in ["winch", "cranelift"] {
            let (cpu, wall, peak) = first_load(compiler, path);
            println!(
                "   {lang:<6} {compiler:<10} cpu={cpu:>6.2} s  wall={wall:>8.2?}  peak RSS={peak:>6.0} MiB"
            );
        }
    }

    let site = tempfile::tempdir().unwrap();
    std::fs::write(site.path().join("index.html"), "up\n").unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = Command::new("python3")
        .args([
            "-m",
            "http.server",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
        ])
        .current_dir(site.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("python3 -m http.server");
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        std::thread::sleep(Duration::from_millis(20));
    }
    let base = format!("http://127.0.0.1:{port}");
    let allow = Allow::new(site.path()).with("hosts", &[base.as_str()]);
    let grants = Grants::parse(&allow).expect("grants");
    let config = format!(r#"{{"url": "{base}/"}}"#);
    let hello = std::fs::read(Path::new(env!("WARDEN_WASM_DIR")).join("hello.wasm")).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!("2. one HTTP probe per run, a fresh instance each, {RUNS} runs (median, p90):");
    rt.block_on(async {
        let r = runtime("cranelift");
        let (m, p) = runs(&r, &hello, "hello", &config, &grants).await;
        println!("   Rust hello (cranelift)      {m:>10.2?} {p:>10.2?}");
        let (m, p) = runs(&r, &py_bytes, "pyprobe", &config, &grants).await;
        println!("   Python template (cranelift) {m:>10.2?} {p:>10.2?}");
        let (m, p) = runs(&r, &js_bytes, "jsprobe", &config, &grants).await;
        println!("   JS template (cranelift)     {m:>10.2?} {p:>10.2?}");
        let w = runtime("winch");
        let (m, p) = runs(&w, &py_bytes, "pyprobe", &config, &grants).await;
        println!("   Python template (winch)     {m:>10.2?} {p:>10.2?}");
        let (m, p) = runs(&w, &js_bytes, "jsprobe", &config, &grants).await;
        println!("   JS template (winch)         {m:>10.2?} {p:>10.2?}");
    });
    let _ = server.kill();
    let _ = server.wait();
}

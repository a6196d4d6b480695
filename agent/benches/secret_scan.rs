//! `secret-scan` throughput: the plugin in the agent's sandbox, the same
//! scanner compiled natively, and detect-secrets (PyPI), in one run over
//! one generated corpus.
//!
//! The corpus (the plugin tests' generator: source-like files of many
//! types with planted secrets of every rule family and near misses) is
//! written once to a temporary directory. Then:
//!
//! - **sandbox**: the embedded plugin run by the agent's runtime (the
//!   code path of `warden run` and `warden check`) with the corpus granted
//!   as a read-only directory, after a warm-up run; CPU is this process's;
//! - **native**: `secret_scan::scan::scan` in this process;
//! - **gitleaks** 8.30.1 (`tests/peers/gitleaks.sh`, from PyPI) with its
//!   own config, beside the native scanner with the same config: the
//!   findings must match; CPU is compared per MB;
//! - **detect-secrets**: `detect-secrets scan --all-files` from a virtualenv
//!   under the target directory (installed from PyPI on first use by
//!   `benches/peers/detect-secrets.sh`); CPU is that of the process and
//!   its workers.
//!
//! Each side scans three times (`WARDEN_BENCH_RUNS`), alternating; the
//! median counts. Sandbox and native findings must be identical (rule, file, line and
//! content fingerprint). Throughput is MB (10^6 bytes) per CPU-second,
//! i.e. per core. Run with `cargo bench -p warden --bench secret_scan`;
//! `WARDEN_BENCH_MB` (default 105) sizes the corpus and
//! `WARDEN_BENCH_KEYWORD_PERCENT` (default 10) how many of its ordinary
//! lines name keys, tokens or passwords (each such line makes the generic
//! rule work); `WARDEN_BENCH_SKIP_PEER=1` skips detect-secrets (minutes
//! on its own). Figures go to `docs/BENCHMARKS.md`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

mod common;
#[path = "../../plugins/secret-scan/tests/corpus/mod.rs"]
mod corpus;

use common::{children_cpu_seconds, cpu_seconds};
use secret_scan::detect::Detector;
use secret_scan::scan::{self, Settings};
use warden_runtime::{Allow, Grants};
use warden_runtime::{Origin, RunOutcome, RunRequest, Runtime, RuntimeOptions};

struct Measured {
    wall: f64,
    cpu: f64,
}

impl Measured {
    fn mb_per_cpu_s(&self, bytes: u64) -> f64 {
        bytes as f64 / 1e6 / self.cpu
    }
}

/// Runs a child process, measuring wall time and the CPU it (and the
/// processes it waited for) used.
fn measure_child(cmd: &mut Command) -> (Measured, std::process::Output) {
    let cpu0 = children_cpu_seconds();
    let t0 = Instant::now();
    let out = cmd.output().expect("running child");
    let wall = t0.elapsed().as_secs_f64();
    let cpu = children_cpu_seconds() - cpu0;
    (Measured { wall, cpu }, out)
}

/// Runs the plugin once in the agent's runtime over `dir`; CPU is this
/// process's (the runtime's threads; nothing else runs meanwhile).
fn sandbox_scan(
    rt: &tokio::runtime::Runtime,
    runtime: &Arc<Runtime>,
    plugin: &Arc<warden_runtime::Plugin>,
    dir: &Path,
) -> (Measured, RunOutcome) {
    let config = r#"{"incremental": false, "baseline": "none", "redact": 100, "max_findings": 100000, "max_file_size": "10MiB"}"#;
    sandbox_run(rt, runtime, plugin, dir, config, 1)
}

/// Runs the plugin with `config` over `dir`, in `shards` shards.
fn sandbox_run(
    rt: &tokio::runtime::Runtime,
    runtime: &Arc<Runtime>,
    plugin: &Arc<warden_runtime::Plugin>,
    dir: &Path,
    config: &str,
    shards: u32,
) -> (Measured, RunOutcome) {
    let request = RunRequest {
        check: "bench".into(),
        config: config.into(),
        scheduled: SystemTime::now(),
        attempt: 1,
        timeout: Duration::from_secs(1800),
        memory: 512 << 20,
        grants: Grants::parse(&Allow::default().with("read_dirs", &[dir.to_str().unwrap()]))
            .expect("grants"),
        state_quota: Default::default(),
        action: None,
    };
    let cpu0 = cpu_seconds("self");
    let t0 = Instant::now();
    let outcome = rt.block_on(runtime.run_sharded(plugin, &request, shards));
    let m = Measured {
        wall: t0.elapsed().as_secs_f64(),
        cpu: cpu_seconds("self") - cpu0,
    };
    (m, outcome)
}

fn detect_secrets() -> Option<PathBuf> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/peers/detect-secrets.sh");
    let out = Command::new("bash").arg(script).output().ok()?;
    if !out.status.success() {
        eprintln!(
            "detect-secrets unavailable: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    Some(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

type Key = (String, u64, String, String);

/// A finding's attribute, or "".
fn attr(f: &warden_runtime::Finding, name: &str) -> String {
    f.attributes
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

fn main() {
    let mb: u64 = std::env::var("WARDEN_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(105);
    // gitleaks' own default config: load (parse, translate, validate) and
    // compile every pattern.
    let gitleaks = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/gitleaks/config/gitleaks.toml"),
    )
    .unwrap();
    let t0 = Instant::now();
    let cfg = secret_scan::loader()
        .load_str(&gitleaks, "gitleaks.toml", None)
        .expect("gitleaks' config loads");
    let loaded = t0.elapsed();
    cfg.compile_all().expect("gitleaks' patterns compile");
    println!(
        "gitleaks default config: {} rules loaded in {:.1} ms, all patterns compiled in {:.1} ms more",
        cfg.rules.len(),
        loaded.as_secs_f64() * 1e3,
        (t0.elapsed() - loaded).as_secs_f64() * 1e3
    );

    let keyword_percent: usize = std::env::var("WARDEN_BENCH_KEYWORD_PERCENT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("corpus");
    std::fs::create_dir_all(&root).unwrap();
    let root = root.canonicalize().unwrap();
    let t0 = Instant::now();
    let c = corpus::generate(&root, mb * 1_000_000, 12 * 1024, keyword_percent, 42);
    println!(
        "corpus: {} files, {:.1} MB, {} planted secrets, {} near misses, {keyword_percent}% of lines naming keys/tokens (generated in {:.1} s)",
        c.files,
        c.bytes as f64 / 1e6,
        c.planted.len(),
        c.near_misses,
        t0.elapsed().as_secs_f64()
    );

    // Sandbox: the agent's runtime, plugin compiled at load (not timed),
    // one warm-up run on an empty directory, then the scan.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio");
    let runtime = Arc::new(Runtime::new(RuntimeOptions::default()).expect("runtime"));
    let wasm = std::fs::read(Path::new(env!("WARDEN_WASM_DIR")).join("secret_scan.wasm")).unwrap();
    let plugin = Arc::new(
        rt.block_on(runtime.load(&wasm, Origin::Embedded("secret-scan".into())))
            .expect("load secret-scan"),
    );
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    sandbox_scan(&rt, &runtime, &plugin, &empty);

    // Each side runs `runs` times, alternating; the median CPU time counts.
    let runs: usize = std::env::var("WARDEN_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let native_scan = || {
        let cpu0 = cpu_seconds("self");
        let t0 = Instant::now();
        let detector = Detector::new(secret_scan::default_rules());
        let settings = Settings::new(vec![root.clone()], 10 << 20);
        let (found, stats, _) = scan::scan(&detector, &settings, None, "bench");
        let m = Measured {
            wall: t0.elapsed().as_secs_f64(),
            cpu: cpu_seconds("self") - cpu0,
        };
        (m, found, stats)
    };
    let mut sandboxes = Vec::new();
    let mut natives = Vec::new();
    for _ in 0..runs {
        sandboxes.push(sandbox_scan(&rt, &runtime, &plugin, &root));
        natives.push(native_scan());
    }
    sandboxes.sort_by(|a, b| a.0.cpu.total_cmp(&b.0.cpu));
    natives.sort_by(|a, b| a.0.cpu.total_cmp(&b.0.cpu));
    println!(
        "CPU-s per run, sandbox: {:?}; native: {:?}",
        sandboxes
            .iter()
            .map(|s| (s.0.cpu * 100.0).round() / 100.0)
            .collect::<Vec<_>>(),
        natives
            .iter()
            .map(|s| (s.0.cpu * 100.0).round() / 100.0)
            .collect::<Vec<_>>()
    );
    let (sandbox, outcome) = sandboxes.swap_remove(runs / 2);
    let (native, found, stats) = natives.swap_remove(runs / 2);
    assert!(
        outcome.error.is_none(),
        "sandbox run failed: {:?} {}",
        outcome.error,
        outcome.summary
    );
    let phases: Vec<String> = outcome
        .metrics
        .iter()
        .filter(|m| m.name == "secret_scan_seconds")
        .map(|m| {
            format!(
                "{} {:.3} s",
                m.labels.iter().map(|(_, v)| v.as_str()).collect::<String>(),
                m.value
            )
        })
        .collect();
    let sandbox_found: BTreeSet<Key> = outcome
        .findings
        .iter()
        .map(|f| {
            let attr = |n: &str| attr(f, n);
            (
                attr("file"),
                attr("line").parse().unwrap(),
                f.rule.clone(),
                f.fingerprint.clone(),
            )
        })
        .collect();

    let native_found: BTreeSet<Key> = found
        .iter()
        .map(|f| {
            (
                f.file.clone(),
                f.line as u64,
                f.rule.clone(),
                f.fingerprint.clone(),
            )
        })
        .collect();
    let planted: BTreeSet<(String, u64, String)> = c
        .planted
        .iter()
        .map(|p| {
            (
                p.file.to_string_lossy().into_owned(),
                p.line as u64,
                p.rule.clone(),
            )
        })
        .collect();
    let native_simple: BTreeSet<(String, u64, String)> = native_found
        .iter()
        .map(|(f, l, r, _)| (f.clone(), *l, r.clone()))
        .collect();
    let recall = planted.intersection(&native_simple).count() as f64 / planted.len() as f64;
    let extra = native_simple.difference(&planted).count();

    println!(
        "native:  {:>7.2} s wall, {:>7.2} CPU-s, {:>7.1} MB/s per core, {} findings ({} files scanned)",
        native.wall,
        native.cpu,
        native.mb_per_cpu_s(stats.bytes),
        found.len(),
        stats.scanned
    );
    println!(
        "sandbox: {:>7.2} s wall, {:>7.2} CPU-s, {:>7.1} MB/s per core, {} findings",
        sandbox.wall,
        sandbox.cpu,
        sandbox.mb_per_cpu_s(stats.bytes),
        sandbox_found.len()
    );
    println!(
        "sandbox phases (wall, inside the plugin): {}",
        phases.join(", ")
    );
    println!(
        "native phases: read {:.3} s, prefilter {:.3} s, rules {:.3} s, decode {:.3} s",
        stats.timings.read.as_secs_f64(),
        stats.timings.prefilter.as_secs_f64(),
        stats.timings.rules.as_secs_f64(),
        stats.timings.decode.as_secs_f64()
    );
    println!("recall on planted secrets {recall:.4}, findings where nothing was planted {extra}");
    let same = sandbox_found == native_found;
    println!(
        "sandbox/native: {:.2} (per core); same findings inside and outside the sandbox: {same}",
        sandbox.mb_per_cpu_s(stats.bytes) / native.mb_per_cpu_s(stats.bytes)
    );

    let peer = std::env::var("WARDEN_BENCH_SKIP_PEER").is_err();
    if let Some(ds) = peer.then(detect_secrets).flatten() {
        let (m, out) = measure_child(
            Command::new(ds)
                .args(["scan", "--all-files", "."])
                .current_dir(&root),
        );
        let results = serde_json::from_slice::<serde_json::Value>(&out.stdout)
            .ok()
            .and_then(|v| {
                v["results"].as_object().map(|o| {
                    o.values()
                        .map(|f| f.as_array().map_or(0, |a| a.len()))
                        .sum::<usize>()
                })
            })
            .unwrap_or(0);
        println!(
            "detect-secrets: {:>7.2} s wall, {:>7.2} CPU-s, {:>7.2} MB/s per core, {results} findings",
            m.wall,
            m.cpu,
            m.mb_per_cpu_s(c.bytes)
        );
        println!(
            "sandbox / detect-secrets (per core): {:.1}x",
            sandbox.mb_per_cpu_s(stats.bytes) / m.mb_per_cpu_s(c.bytes)
        );
    }
    let sharded = |shards: u32| {
        let config = serde_json::json!({
            "incremental": false, "baseline": "none", "redact": 100,
            "max_findings": 100000, "max_file_size": "100MiB", "rules_toml": gitleaks,
        })
        .to_string();
        sandbox_run(&rt, &runtime, &plugin, &root, &config, shards)
    };
    gitleaks_side_by_side(&root, cfg, c.bytes, &sharded);
    assert!(same, "sandbox and native findings differ");
}

/// gitleaks 8.30.1 (tests/peers/gitleaks.sh) and the native scanner, both
/// with gitleaks' own config, on the same corpus: findings (file, line,
/// rule) must be the same; CPU per MB compared.
fn gitleaks_side_by_side(
    root: &Path,
    cfg: secret_scan::config::Config,
    bytes: u64,
    sandbox: &dyn Fn(u32) -> (Measured, RunOutcome),
) {
    let report = root.with_extension("gitleaks.json");
    let (theirs_m, out) = measure_child(&mut corpus::gitleaks::command(root, &report));
    assert!(
        out.status.success(),
        "gitleaks: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs: BTreeSet<(String, u64, String)> = corpus::gitleaks::read_report(root, &report)
        .into_iter()
        .map(|f| (f.file, f.line as u64, f.rule))
        .collect();
    let settings = Settings::new(vec![root.to_path_buf()], 100 << 20);
    let detector = Detector::new(cfg).gitleaks_dedup();
    let cpu0 = cpu_seconds("self");
    let t0 = Instant::now();
    let (found, _, _) = scan::scan(&detector, &settings, None, "");
    let ours_m = Measured {
        wall: t0.elapsed().as_secs_f64(),
        cpu: cpu_seconds("self") - cpu0,
    };
    let ours: BTreeSet<(String, u64, String)> = found
        .iter()
        .map(|f| (f.rel.clone(), f.line as u64, f.rule.clone()))
        .collect();
    println!(
        "gitleaks 8.30.1 (its config): {:>7.2} s wall, {:>7.2} CPU-s, {:>7.2} MB/s per core, {} findings",
        theirs_m.wall,
        theirs_m.cpu,
        theirs_m.mb_per_cpu_s(bytes),
        theirs.len()
    );
    println!(
        "native with gitleaks' config: {:>7.2} s wall, {:>7.2} CPU-s, {} findings, same as gitleaks: {}",
        ours_m.wall,
        ours_m.cpu,
        ours.len(),
        ours == theirs
    );
    println!(
        "native / gitleaks CPU per MB: {:.2}x; wall: {:.2}x",
        ours_m.cpu / theirs_m.cpu,
        ours_m.wall / theirs_m.wall
    );
    // The plugin as the agent runs it, gitleaks' config, whole and in one
    // shard per core: the wall time of one large scan.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    for shards in [1, cores.max(2)] {
        let (m, outcome) = sandbox(shards);
        assert!(outcome.error.is_none(), "sandbox: {:?}", outcome.error);
        let got: BTreeSet<(String, u64, String)> = outcome
            .findings
            .iter()
            .map(|f| {
                let attr = |n: &str| attr(f, n);
                let file = attr("file");
                let rel = Path::new(&file)
                    .strip_prefix(root)
                    .map(|p| p.display().to_string())
                    .unwrap_or(file);
                (rel, attr("line").parse().unwrap(), f.rule.clone())
            })
            .collect();
        println!(
            "sandbox, gitleaks' config, {shards} shard{}: {:>7.2} s wall, {:>7.2} CPU-s, {} findings ({} not gitleaks', {} of gitleaks' missing); wall / gitleaks: {:.2}x, CPU / gitleaks: {:.2}x",
            if shards == 1 { "" } else { "s" },
            m.wall,
            m.cpu,
            got.len(),
            got.difference(&theirs).count(),
            theirs.difference(&got).count(),
            m.wall / theirs_m.wall,
            m.cpu / theirs_m.cpu
        );
    }
}

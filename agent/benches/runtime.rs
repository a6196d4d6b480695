//! Runtime benchmark: per-run overhead of a trivial plugin (a fresh
//! instance per run from the pooling allocator) and compile vs cached load
//! of a real plugin.
//!
//! Run with `cargo bench -p warden --bench runtime`; figures go to
//! `docs/BENCHMARKS.md`.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use warden_runtime::Grants;
use warden_runtime::engine::WardenEngine;
use warden_runtime::{Origin, RunRequest, Runtime, RuntimeOptions};

fn wasm(name: &str) -> Vec<u8> {
    let p = Path::new(env!("WARDEN_WASM_DIR")).join(format!("{name}.wasm"));
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn report(name: &str, mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
    let median = percentile(&samples, 0.5);
    println!(
        "{name:<44} n={:<6} median={:>10.1?} p90={:>10.1?} p99={:>10.1?} mean={:>10.1?}",
        samples.len(),
        median,
        percentile(&samples, 0.9),
        percentile(&samples, 0.99),
        mean
    );
    median
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio");
    rt.block_on(async {
        let runtime = Runtime::new(RuntimeOptions::default()).expect("runtime");
        println!("allocation: {:?}", runtime.engine().allocation());

        // 1. Per-run overhead of a trivial plugin.
        let trivial = runtime
            .load(&wasm("hostile"), Origin::Embedded("hostile".into()))
            .await
            .expect("load hostile");
        let request = RunRequest {
            check: "bench".into(),
            config: r#"{"mode":"ok"}"#.into(),
            scheduled: SystemTime::now(),
            attempt: 1,
            timeout: Duration::from_secs(10),
            memory: 64 << 20,
            grants: Grants::none(),
            state_quota: Default::default(),
            action: None,
        };
        for _ in 0..500 {
            runtime.run(&trivial, &request).await;
        }
        let mut samples = Vec::with_capacity(20_000);
        for _ in 0..20_000 {
            let t0 = Instant::now();
            let outcome = runtime.run(&trivial, &request).await;
            samples.push(t0.elapsed());
            assert_eq!(outcome.status, warden_runtime::Status::Ok, "{outcome:?}");
        }
        let run_median = report("trivial run (fresh pooled instance)", samples);

        // 2. Compile vs cached load of a real plugin (hello), at the
        //    engine level and through the whole Runtime::load.
        let engine = WardenEngine::new().expect("engine");
        let hello = wasm("hello");
        let sha = "bench-hello";
        let dir = tempfile::tempdir().expect("tempdir");
        let mut compile = Vec::new();
        for _ in 0..5 {
            let t0 = Instant::now();
            engine.load_component(&hello, sha, None).expect("compile");
            compile.push(t0.elapsed());
        }
        let compile_median = report("compile hello (cranelift)", compile);
        engine.load_component(&hello, sha, Some(dir.path())).expect("warm cache");
        let mut cached = Vec::new();
        for _ in 0..50 {
            let t0 = Instant::now();
            let (_, hit) = engine.load_component(&hello, sha, Some(dir.path())).expect("cached");
            cached.push(t0.elapsed());
            assert!(hit);
        }
        let cached_median = report("cached load hello (deserialize)", cached);

        let cold_dir = tempfile::tempdir().expect("tempdir");
        let mut full_cold = Vec::new();
        for i in 0..5 {
            let rt = Runtime::new(RuntimeOptions {
                cache_dir: Some(cold_dir.path().join(i.to_string())),
                ..RuntimeOptions::default()
            })
            .expect("runtime");
            let t0 = Instant::now();
            rt.load(&hello, Origin::Embedded("hello".into())).await.expect("load");
            full_cold.push(t0.elapsed());
        }
        report("Runtime::load hello, cold cache", full_cold);
        let warm = Runtime::new(RuntimeOptions {
            cache_dir: Some(cold_dir.path().join("0")),
            ..RuntimeOptions::default()
        })
        .expect("runtime");
        let mut full_warm = Vec::new();
        for _ in 0..50 {
            let t0 = Instant::now();
            let p = warm.load(&hello, Origin::Embedded("hello".into())).await.expect("load");
            full_warm.push(t0.elapsed());
            assert!(p.from_cache);
        }
        report("Runtime::load hello, warm cache", full_warm);

        println!();
        println!(
            "trivial run median {:.1?} (target <= 50us); cached load {:.0}x faster than compiling (target >= 20x)",
            run_median,
            compile_median.as_secs_f64() / cached_median.as_secs_f64()
        );
    });
}

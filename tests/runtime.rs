//! End-to-end at the library level: one `Runtime` (one engine, one pool)
//! running hostile and well-behaved plugins concurrently. A runaway or
//! crashing plugin must not disturb runs of other plugins, nor later runs.

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use warden_runtime::Grants;
use warden_runtime::Status;
use warden_runtime::{Origin, Plugin, RunRequest, Runtime, RuntimeOptions};

fn request(check: &str, config: &str, timeout: Duration) -> RunRequest {
    RunRequest {
        check: check.into(),
        config: config.into(),
        scheduled: SystemTime::now(),
        attempt: 1,
        timeout,
        memory: 32 << 20,
        grants: Grants::none(),
        state_quota: Default::default(),
        action: None,
    }
}

async fn load(rt: &Runtime, name: &str) -> Arc<Plugin> {
    let path = common::wasm(name);
    let bytes = std::fs::read(&path).unwrap();
    Arc::new(rt.load(&bytes, Origin::File(path)).await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_runs_do_not_disturb_others() {
    let dir = tempfile::tempdir().unwrap();
    let store = warden::store::Store::open(&dir.path().join("warden.db")).unwrap();
    let rt = Arc::new(
        Runtime::new(RuntimeOptions {
            cache_dir: Some(dir.path().join("cache")),
            state: Some(Arc::new(store)),
            ..RuntimeOptions::default()
        })
        .unwrap(),
    );
    let hostile = load(&rt, "hostile").await;
    let hello = load(&rt, "hello").await;

    let mut bad = Vec::new();
    for mode in ["loop", "alloc", "panic", "big-report", "exit"] {
        let (rt, p) = (rt.clone(), hostile.clone());
        let config = format!(r#"{{"mode":"{mode}"}}"#);
        bad.push(tokio::spawn(async move {
            (
                mode,
                rt.run(&p, &request(mode, &config, Duration::from_secs(3)))
                    .await,
            )
        }));
    }
    // While those misbehave, well-behaved runs complete normally.
    let mut good = Vec::new();
    for i in 0..20 {
        let (rt, p) = (rt.clone(), hello.clone());
        good.push(tokio::spawn(async move {
            rt.run(
                &p,
                &request(&format!("hello-{i}"), "{}", Duration::from_secs(10)),
            )
            .await
        }));
    }
    for g in good {
        let outcome = g.await.unwrap();
        assert_eq!(outcome.status, Status::Ok, "{outcome:?}");
    }
    let mut reasons = Vec::new();
    for b in bad {
        let (mode, outcome) = b.await.unwrap();
        assert_eq!(outcome.status, Status::Unknown, "{mode}: {outcome:?}");
        reasons.push(outcome.error.unwrap());
    }
    let distinct: std::collections::HashSet<_> = reasons.iter().collect();
    assert_eq!(
        distinct.len(),
        reasons.len(),
        "reasons must differ: {reasons:?}"
    );

    // And the runtime is still healthy afterwards.
    let outcome = rt
        .run(&hello, &request("after", "{}", Duration::from_secs(10)))
        .await;
    assert_eq!(outcome.status, Status::Ok, "{outcome:?}");
}

#[test]
fn a_spinning_plugin_shares_its_thread() {
    // One thread for everything: without yielding, nothing else could run
    // until the spinning plugin reached its deadline.
    let executor = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    executor.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let rt = Arc::new(
            Runtime::new(RuntimeOptions {
                cache_dir: Some(dir.path().join("cache")),
                ..RuntimeOptions::default()
            })
            .unwrap(),
        );
        let hostile = load(&rt, "hostile").await;
        let hello = load(&rt, "hello").await;
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let spin = {
            let (rt, order) = (rt.clone(), order.clone());
            tokio::spawn(async move {
                let o = rt
                    .run(
                        &hostile,
                        &request("spin", r#"{"mode":"loop"}"#, Duration::from_secs(3)),
                    )
                    .await;
                order.lock().unwrap().push("loop");
                o
            })
        };
        tokio::task::yield_now().await;
        let polite = {
            let (rt, order) = (rt.clone(), order.clone());
            tokio::spawn(async move {
                let o = rt
                    .run(&hello, &request("polite", "{}", Duration::from_secs(10)))
                    .await;
                order.lock().unwrap().push("hello");
                o
            })
        };
        let (spun, polite) = (spin.await.unwrap(), polite.await.unwrap());
        assert_eq!(polite.status, Status::Ok, "{polite:?}");
        assert!(spun.error.unwrap().contains("timed out"));
        assert_eq!(*order.lock().unwrap(), ["hello", "loop"]);
    });
}

/// Only a plugin that imports `host.part` is split; any other runs whole
/// whatever it is offered; a split plugin reports
/// the same findings as a whole run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_plugins_that_ask_for_their_part_are_split() {
    let rt = Arc::new(Runtime::new(RuntimeOptions::default()).unwrap());
    let hello = load(&rt, "hello").await;
    assert!(!hello.shardable);
    let o = rt
        .run_sharded(&hello, &request("hello", "{}", Duration::from_secs(5)), 4)
        .await;
    assert_eq!(o.status, Status::Ok, "{}", o.summary);
    assert_eq!(o.shards, None);

    let bytes = warden::stdplugins::get("secret-scan").unwrap();
    let scan = Arc::new(
        rt.load(bytes, Origin::Embedded("secret-scan".into()))
            .await
            .unwrap(),
    );
    assert!(scan.shardable);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.env"),
        "AWS_ACCESS_KEY_ID=AKIAQ3ZT7WJNB5XKPRM4\n",
    )
    .unwrap();
    let allow = warden_runtime::Allow::new(dir.path()).with("read_dirs", &["."]);
    let mut req = request("scan", "{}", Duration::from_secs(20));
    req.grants = Grants::parse(&allow).unwrap();
    req.memory = 256 << 20;
    let o = rt.run_sharded(&scan, &req, 2).await;
    assert_eq!(o.shards, Some(2));
    assert_eq!(o.status, Status::Critical, "{}", o.summary);
    assert_eq!(o.findings.len(), 1, "{}", o.summary);

    // Importing `host.part` is not asking: Python and JS toolchains
    // import every function of the world. The same component with its
    // `warden:sharded` section saying 0 runs whole.
    let mark = b"warden:sharded\x01";
    let at = bytes
        .windows(mark.len())
        .position(|w| w == mark)
        .expect("the SDK marks a SHARDED plugin");
    let mut unmarked = bytes.to_vec();
    unmarked[at + mark.len() - 1] = 0;
    let scan = Arc::new(
        rt.load(&unmarked, Origin::Embedded("secret-scan".into()))
            .await
            .unwrap(),
    );
    assert!(!scan.shardable);
    let o = rt.run_sharded(&scan, &req, 2).await;
    assert_eq!(o.shards, None, "{}", o.summary);
    assert_eq!(o.findings.len(), 1, "{}", o.summary);
}

/// A large component (a Python or JS runtime) is compiled with Winch, the
/// quick baseline compiler, and runs as any other, beside Cranelift's
/// plugins in the same runtime; the compiled code is cached per compiler.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_components_compile_with_winch_and_run_beside_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let options = || RuntimeOptions {
        cache_dir: Some(dir.path().join("cache")),
        ..RuntimeOptions::default()
    };
    let hello_bytes = std::fs::read(common::wasm("hello")).unwrap();
    let hostile_bytes = std::fs::read(common::wasm("hostile")).unwrap();
    // Everything over hello's size counts as large here.
    let rt = Runtime::new(options())
        .unwrap()
        .with_large_component_bytes(hello_bytes.len() + 1);
    let hello = rt
        .load(&hello_bytes, Origin::Embedded("hello".into()))
        .await
        .unwrap();
    let hostile = rt
        .load(&hostile_bytes, Origin::Embedded("hostile".into()))
        .await
        .unwrap();
    assert_eq!(hello.compiler, warden_runtime::engine::Compiler::Cranelift);
    assert_eq!(hostile.compiler, warden_runtime::engine::Compiler::Winch);
    let ok = rt
        .run(
            &hostile,
            &request("w", r#"{"mode":"ok"}"#, Duration::from_secs(5)),
        )
        .await;
    assert_eq!(ok.status, Status::Ok, "{:?}", ok.error);
    let h = rt
        .run(&hello, &request("c", "{}", Duration::from_secs(5)))
        .await;
    assert_eq!(h.status, Status::Ok, "{:?}", h.error);
    // The sandbox holds under Winch too: a loop times out, a panic is named.
    let spin = rt
        .run(
            &hostile,
            &request("w", r#"{"mode":"loop"}"#, Duration::from_millis(300)),
        )
        .await;
    assert_eq!(spin.status, Status::Unknown);
    assert!(
        spin.error.as_deref().unwrap_or("").contains("timed out"),
        "{:?}",
        spin.error
    );
    let panic = rt
        .run(
            &hostile,
            &request("w", r#"{"mode":"panic"}"#, Duration::from_secs(5)),
        )
        .await;
    assert!(
        panic
            .error
            .as_deref()
            .unwrap_or("")
            .starts_with("plugin panicked: "),
        "{:?}",
        panic.error
    );
    // A second runtime finds Winch's code in the cache.
    let again = Runtime::new(options())
        .unwrap()
        .with_large_component_bytes(hello_bytes.len() + 1);
    let cached = again
        .load(&hostile_bytes, Origin::Embedded("hostile".into()))
        .await
        .unwrap();
    assert!(cached.from_cache);
    assert_eq!(cached.compiler, warden_runtime::engine::Compiler::Winch);
}

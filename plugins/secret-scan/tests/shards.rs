//! Sharded runs put back together: a run split into shards (each told its
//! `Part::Shard`, sharing one state) and merged (`Part::Merge`) reports
//! exactly what the whole run reports: findings, status, summary and
//! counts, with what is wrong with directories counted once, the cache
//! kept for the next run, and the baseline of `previous` runs honoured.

mod corpus;

use std::path::Path;
use std::sync::Arc;

use secret_scan::scan::Shard;
use secret_scan::{Config, SecretScan};
use warden_plugin_sdk::testing::{Claims, MemoryState, TestContext};
use warden_plugin_sdk::{Metric, Part, Plugin, Report};

fn config(json: serde_json::Value) -> Config {
    warden_plugin_sdk::parse_config::<SecretScan>(&json.to_string()).unwrap()
}

fn run_part(
    cfg: &Config,
    dir: &Path,
    state: &Arc<MemoryState>,
    part: Part,
    claims: &Arc<Claims>,
) -> Report {
    let mut ctx = TestContext::new(cfg.clone())
        .read_dir(dir)
        .state(state.clone())
        .part(part, claims.clone())
        .build();
    SecretScan::run(&mut ctx).unwrap()
}

fn whole(cfg: &Config, dir: &Path, state: &Arc<MemoryState>) -> Report {
    run_part(cfg, dir, state, Part::Whole, &Arc::default())
}

/// A sharded run as the agent runs it: the shards at once (threads), one
/// set of claims, then the merge.
fn sharded(cfg: &Config, dir: &Path, state: &Arc<MemoryState>, count: u32) -> Report {
    let claims = Arc::new(Claims::default());
    let parts: Vec<Report> = std::thread::scope(|s| {
        let shards: Vec<_> = (0..count)
            .map(|index| {
                let claims = &claims;
                s.spawn(move || run_part(cfg, dir, state, Part::Shard { index, count }, claims))
            })
            .collect();
        shards.into_iter().map(|h| h.join().unwrap()).collect()
    });
    run_part(cfg, dir, state, Part::Merge(parts), &claims)
}

/// A report without its timings (which differ run to run).
fn comparable(mut r: Report) -> Report {
    r.metrics
        .retain(|m: &Metric| m.name != "secret_scan_seconds");
    r
}

fn metric(r: &Report, name: &str) -> f64 {
    r.metrics
        .iter()
        .find(|m| m.name == name)
        .map_or(f64::NAN, |m| m.value)
}

#[test]
fn shards_merge_into_the_whole_runs_report() {
    let dir = tempfile::tempdir().unwrap();
    let planted = corpus::generate(dir.path(), 400_000, 2_000, 20, 7);
    corpus::encoded::generate(&dir.path().join("encoded"), 40, 9);
    // What is wrong with directories must be counted once, not per shard.
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let bad = std::ffi::OsStr::from_bytes(b"m-bad\xff.env");
        std::fs::write(dir.path().join(bad), "x").unwrap();
        std::os::unix::fs::symlink(dir.path(), dir.path().join("loop")).unwrap();
    }
    let cfg = config(serde_json::json!({"follow_symlinks": true, "max_findings": 100000}));
    let whole = whole(&cfg, dir.path(), &Arc::new(MemoryState::new()));
    assert!(
        whole.findings.len() >= planted.planted.len(),
        "{}",
        whole.summary
    );
    for count in [2, 3, 7] {
        let merged = sharded(&cfg, dir.path(), &Arc::new(MemoryState::new()), count);
        assert_eq!(merged.summary, whole.summary, "{count} shards");
        assert_eq!(
            comparable(merged),
            comparable(whole.clone()),
            "{count} shards"
        );
    }
    #[cfg(unix)]
    {
        assert_eq!(metric(&whole, "secret_scan_entries_skipped"), 1.0);
        assert_eq!(metric(&whole, "secret_scan_directory_loops"), 1.0);
    }
}

#[test]
fn each_file_belongs_to_exactly_one_shard_without_claims_too() {
    for count in [2, 3, 16] {
        let mut per_shard = vec![0; count as usize];
        for i in 0..2000 {
            let path = format!("/data/dir{}/file-{i}.txt", i % 7);
            let owners: Vec<u32> = (0..count)
                .filter(|&index| {
                    let shard = Shard {
                        index,
                        count,
                        claimer: None,
                    };
                    shard.owns(Path::new(&path))
                })
                .collect();
            assert_eq!(owners.len(), 1, "{path} in {count} shards");
            per_shard[owners[0] as usize] += 1;
        }
        // And the shares are even (within a third of the mean).
        let mean = 2000 / count as usize;
        assert!(
            per_shard
                .iter()
                .all(|&n| n * 3 > mean * 2 && n * 3 < mean * 4),
            "{per_shard:?}"
        );
    }
}

#[test]
fn shards_that_claim_as_they_go_share_the_files_out() {
    let dir = tempfile::tempdir().unwrap();
    corpus::generate(dir.path(), 300_000, 2_000, 20, 11);
    let cfg = config(serde_json::json!({}));
    let claims = Arc::new(Claims::default());
    let state = Arc::new(MemoryState::new());
    // One after the other, the first shard claims every file: the second
    // scans none, and the merge is still the whole run's.
    let first = run_part(
        &cfg,
        dir.path(),
        &state,
        Part::Shard { index: 0, count: 2 },
        &claims,
    );
    let second = run_part(
        &cfg,
        dir.path(),
        &state,
        Part::Shard { index: 1, count: 2 },
        &claims,
    );
    assert!(!first.findings.is_empty());
    assert!(second.findings.is_empty(), "{}", second.summary);
    let merged = run_part(
        &cfg,
        dir.path(),
        &state,
        Part::Merge(vec![first, second]),
        &claims,
    );
    let whole = whole(&cfg, dir.path(), &Arc::new(MemoryState::new()));
    assert_eq!(comparable(merged), comparable(whole));
}

#[test]
fn the_cache_and_the_baseline_carry_over_between_sharded_runs() {
    let dir = tempfile::tempdir().unwrap();
    corpus::generate(dir.path(), 100_000, 2_000, 20, 3);
    let cfg = config(serde_json::json!({"baseline": "previous"}));
    let state = Arc::new(MemoryState::new());
    let first = sharded(&cfg, dir.path(), &state, 3);
    assert!(
        metric(&first, "secret_scan_findings_new") > 0.0,
        "{}",
        first.summary
    );
    assert_eq!(metric(&first, "secret_scan_files_unchanged"), 0.0);
    // The next run, split differently: every file comes from the cache,
    // every finding is known, and no shard's share of the cache is left.
    let second = sharded(&cfg, dir.path(), &state, 2);
    assert_eq!(
        metric(&second, "secret_scan_files_scanned"),
        0.0,
        "{}",
        second.summary
    );
    assert_eq!(
        metric(&second, "secret_scan_files_unchanged"),
        metric(&first, "secret_scan_files_scanned")
    );
    assert_eq!(metric(&second, "secret_scan_findings_new"), 0.0);
    let keys: Vec<String> = state.snapshot().into_keys().collect();
    assert!(!keys.iter().any(|k| k.contains("shard")), "{keys:?}");
    assert_eq!(
        metric(&second, "secret_scan_findings"),
        metric(&first, "secret_scan_findings")
    );
    // And a whole run after it agrees.
    let whole = whole(&cfg, dir.path(), &state);
    assert_eq!(metric(&whole, "secret_scan_files_scanned"), 0.0);
    assert_eq!(comparable(whole).findings, comparable(second).findings);
}

#[test]
fn with_verification_on_the_first_shard_scans_everything() {
    // One token in two files must be asked of its provider once per run:
    // shards do not share verdicts, so verification keeps to one shard.
    let dir = tempfile::tempdir().unwrap();
    corpus::generate(dir.path(), 100_000, 2_000, 20, 5);
    let cfg = config(serde_json::json!({"verify": true, "max_verifications": 0}));
    let state = Arc::new(MemoryState::new());
    let claims = Arc::new(Claims::default());
    let second = run_part(
        &cfg,
        dir.path(),
        &state,
        Part::Shard { index: 1, count: 2 },
        &claims,
    );
    let first = run_part(
        &cfg,
        dir.path(),
        &state,
        Part::Shard { index: 0, count: 2 },
        &claims,
    );
    assert!(second.findings.is_empty(), "{}", second.summary);
    assert!(!first.findings.is_empty());
    let merged = run_part(
        &cfg,
        dir.path(),
        &state,
        Part::Merge(vec![first, second]),
        &claims,
    );
    let whole = whole(&cfg, dir.path(), &Arc::new(MemoryState::new()));
    assert_eq!(comparable(merged), comparable(whole));
}

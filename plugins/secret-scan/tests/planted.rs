//! The planted-secrets corpus: every rule family in every file type among
//! secret-looking code and near misses. Recall must be complete and no
//! finding may fall anywhere nothing was planted.

mod corpus;

use std::collections::BTreeSet;

use secret_scan::detect::Detector;
use secret_scan::scan::{self, Settings};

#[test]
fn planted_corpus_recall_and_false_positives() {
    let dir = tempfile::tempdir().unwrap();
    // Dense: half of the lines name keys or tokens.
    let c = corpus::generate(dir.path(), 3 << 20, 4096, 50, 7);
    assert!(
        c.planted.len() >= corpus::RULES.len() * 3,
        "{} planted",
        c.planted.len()
    );
    assert!(c.near_misses > 100);
    let types: BTreeSet<String> = c
        .planted
        .iter()
        .map(|p| p.file.extension().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        types.len(),
        corpus::TYPES.len(),
        "secrets in every file type"
    );

    let d = Detector::new(secret_scan::default_rules());
    let settings = Settings::new(vec![dir.path().to_path_buf()], 10 << 20);
    let (found, stats, _) = scan::scan(&d, &settings, None, "k");
    assert_eq!(stats.scanned as usize, c.files);

    let expected: BTreeSet<(String, usize, String)> = c
        .planted
        .iter()
        .map(|p| {
            (
                p.file.to_string_lossy().into_owned(),
                p.line,
                p.rule.clone(),
            )
        })
        .collect();
    let got: BTreeSet<(String, usize, String)> = found
        .iter()
        .map(|f| (f.file.clone(), f.line, f.rule.clone()))
        .collect();
    let missed: Vec<_> = expected.difference(&got).collect();
    let extra: Vec<_> = got.difference(&expected).collect();
    let recall = 1.0 - missed.len() as f64 / expected.len() as f64;
    eprintln!(
        "planted {} in {} files ({} bytes), found {}, recall {recall:.3}, false positives {}",
        expected.len(),
        c.files,
        c.bytes,
        got.len(),
        extra.len()
    );
    assert!(missed.is_empty(), "missed: {missed:#?}");
    for (file, line, _) in &extra {
        let text = std::fs::read_to_string(file).unwrap();
        eprintln!(
            "false positive {file}:{line}: {}",
            text.lines().nth(line - 1).unwrap_or("")
        );
    }
    assert!(extra.is_empty(), "false positives: {extra:#?}");
    // Secrets never in clear with full redaction.
    assert!(found.iter().all(|f| f.secret == "REDACTED"));

    // Searching only at keyword occurrences finds exactly what scanning
    // every file with every active rule finds.
    assert!(
        d.anchored_rules().contains(&"generic-api-key")
            && d.anchored_rules().contains(&"rails-secret-key-base"),
        "{:?}",
        d.anchored_rules()
    );
    let plain = Detector::new(secret_scan::default_rules()).without_anchoring();
    let (unanchored, _, _) = scan::scan(&plain, &settings, None, "k");
    assert_eq!(found, unanchored);
}

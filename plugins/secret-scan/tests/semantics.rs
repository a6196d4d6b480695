//! Detection semantics (gitleaks'), the shipped rules' examples, the
//! walker, the incremental cache, baselines and redaction: the scanner
//! natively on real temporary directories.

mod corpus;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use secret_scan::config::Loader;
use secret_scan::detect::{Detector, Hit};
use secret_scan::scan::{self, Settings};
use secret_scan::{Config, SecretScan};
use warden_plugin_sdk::testing::{MemoryState, TestContext};
use warden_plugin_sdk::{Plugin, Report, Severity, Status};

fn detector(toml: &str) -> Detector {
    Detector::new(
        secret_scan::loader()
            .load_str(toml, "test.toml", None)
            .unwrap(),
    )
}

fn rules_of(hits: &[Hit]) -> Vec<&str> {
    hits.iter().map(|h| h.rule.as_str()).collect()
}

const GHP: &str = "ghp_aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5";

#[test]
fn every_shipped_rule_has_examples_that_hold() {
    let rules = secret_scan::default_rules();
    let d = Detector::new(rules.clone());
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("default-examples.toml"),
    )
    .unwrap();
    let v: toml::Value = toml::from_str(&text).unwrap();
    let mut covered = BTreeSet::new();
    for ex in v["example"].as_array().unwrap() {
        let rule = ex["rule"].as_str().unwrap();
        assert!(
            rules.rule(rule).is_some(),
            "examples for unknown rule {rule}"
        );
        // Rules for credential files see the file's usual path.
        let path = ex
            .get("path")
            .and_then(|p| p.as_str())
            .unwrap_or("example.txt");
        let tp = ex["tp"].as_array().unwrap();
        let fp = ex["fp"].as_array().unwrap();
        assert!(!tp.is_empty() && !fp.is_empty(), "{rule}: needs tp and fp");
        for t in tp {
            let t = t.as_str().unwrap();
            let hits = d.detect(path, t.as_bytes());
            assert!(
                hits.iter().any(|h| h.rule == rule),
                "{rule}: missed true positive {t:?} (found {:?})",
                rules_of(&hits)
            );
        }
        for f in fp {
            let f = f.as_str().unwrap();
            let hits = d.detect(path, f.as_bytes());
            assert!(hits.is_empty(), "{rule}: false positive on {f:?}: {hits:?}");
        }
        covered.insert(rule.to_string());
    }
    for r in &rules.rules {
        assert!(covered.contains(&r.id), "rule {} has no examples", r.id);
        assert!(!r.keywords.is_empty(), "rule {} has no keywords", r.id);
    }
    // The corpus generator knows every rule too.
    let generated: BTreeSet<String> = corpus::RULES
        .iter()
        .chain(corpus::PATH_RULES)
        .map(|s| s.to_string())
        .collect();
    assert_eq!(generated, covered);
}

#[test]
fn anchored_search_equals_a_full_scan() {
    // Keyword occurrences overlapping, adjacent, nested, in other cases,
    // and matches that start at one occurrence and swallow the next.
    let d = detector(
        "[[rules]]\nid = 'kv'\nregex = '''(?i)(?:key|keys|api_key|token)[\\w.-]{0,20}\\s*=\\s*([a-z0-9]{6,})'''\nkeywords = ['key', 'keys', 'api_key', 'token']\n",
    );
    assert_eq!(d.anchored_rules(), ["kv"]);
    let text = b"api_key=abc123 KEYS = zz9988 tokenkey=q1w2e3r4 key key=x keytoken = 1234567 Api_Key_token=aa11bb22\nkey=\n5555555";
    let plain = detector(
        "[[rules]]\nid = 'kv'\nregex = '''(?i)(?:key|keys|api_key|token)[\\w.-]{0,20}\\s*=\\s*([a-z0-9]{6,})'''\nkeywords = ['key', 'keys', 'api_key', 'token']\n",
    )
    .without_anchoring();
    let a = d.detect("f", text);
    assert_eq!(a, plain.detect("f", text));
    assert_eq!(a.len(), 6, "{a:#?}");
    // A regex that may start elsewhere is not anchored.
    let d = detector("[[rules]]\nid = 'x'\nregex = '''[a-z]+key'''\nkeywords = ['key']\n");
    assert!(d.anchored_rules().is_empty());
    // A long case-insensitive keyword (2^15 case variants, were they
    // spelled out) is proved a prefix all the same, and searched there.
    let rule = "[[rules]]\nid = 'rails'\nregex = '''(?i)\\bsecret_key_base\\s*[:=]\\s*([0-9a-f]{16,})'''\nkeywords = ['secret_key_base']\n";
    let d = detector(rule);
    assert_eq!(d.anchored_rules(), ["rails"]);
    let text = b"a: 1\nSECRET_KEY_BASE: 0123456789abcdef01\nsecret_key_base=00112233445566778899\n";
    let a = d.detect("f", text);
    assert_eq!(a, detector(rule).without_anchoring().detect("f", text));
    assert_eq!(a.len(), 2, "{a:#?}");
}

#[test]
fn keyword_prefilter_is_ascii_case_insensitive() {
    let d = detector("[[rules]]\nid = 'r'\nregex = 'v[0-9]+'\nkeywords = ['SeCrEt']\n");
    assert!(d.detect("f", b"x = v12").is_empty(), "no keyword, no scan");
    assert_eq!(rules_of(&d.detect("f", b"SECRET\nx = v12")), ["r"]);
    // The keyword may be anywhere in the file, not only in the match.
    assert_eq!(d.detect("f", b"v1 v2 secret").len(), 2);
    // A rule without keywords always runs.
    let d = detector("[[rules]]\nid = 'r'\nregex = 'v[0-9]+'\n");
    assert_eq!(d.detect("f", b"v7").len(), 1);
}

#[test]
fn secret_group_entropy_and_locations() {
    let d = detector("[[rules]]\nid = 'g'\nregex = '''(a)?key=([a-z0-9]+)'''\nentropy = 2.0\n");
    // First non-empty group when secretGroup is unset.
    let h = d.detect("f", b"line one\n  key=abcdef12\n");
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].secret, "abcdef12");
    assert_eq!(h[0].matched, "key=abcdef12");
    assert_eq!((h[0].line, h[0].column, h[0].end_column), (2, 3, 14));
    assert!((h[0].entropy - 3.0).abs() < 1e-6);
    // Entropy at or below the threshold: dropped.
    assert!(d.detect("f", b"key=aaaaaaaaaa").is_empty());

    let d = detector("[[rules]]\nid = 'g'\nregex = '''(x)=(y+)'''\nsecretGroup = 2\n");
    assert_eq!(d.detect("f", b"x=yyy")[0].secret, "yyy");
}

#[test]
fn inline_allow_marker() {
    let d = detector("[[rules]]\nid = 'gh'\nregex = 'ghp_[0-9A-Za-z]{36}'\n");
    let text = format!("a = \"{GHP}\" # gitleaks:allow\nb = \"{GHP}\"\n");
    let h = d.detect("f", text.as_bytes());
    assert_eq!(h.iter().map(|h| h.line).collect::<Vec<_>>(), [2]);
    let d = d.ignore_allow_marker(true);
    assert_eq!(d.detect("f", text.as_bytes()).len(), 2);
}

#[test]
fn allowlists_in_gitleaks_order_and_targets() {
    let base = "[[rules]]\nid = 'gh'\nregex = '''token=(ghp_[0-9A-Za-z]{36})'''\n";
    let line = format!("token={GHP} # fixture");
    let cases: &[(&str, bool)] = &[
        // regexTarget secret (default): matched against the secret only.
        ("[[rules.allowlists]]\nregexes = ['^ghp_aB3']\n", true),
        ("[[rules.allowlists]]\nregexes = ['^token=']\n", false),
        // match and line targets.
        (
            "[[rules.allowlists]]\nregexTarget = 'match'\nregexes = ['^token=']\n",
            true,
        ),
        (
            "[[rules.allowlists]]\nregexTarget = 'line'\nregexes = ['fixture']\n",
            true,
        ),
        // stopwords: in the secret, case-insensitive.
        ("[[rules.allowlists]]\nstopwords = ['AB3DE5']\n", true),
        ("[[rules.allowlists]]\nstopwords = ['fixture']\n", false),
        // AND: every check must allow.
        (
            "[[rules.allowlists]]\ncondition = 'AND'\nstopwords = ['ab3']\npaths = ['^other']\n",
            false,
        ),
        (
            "[[rules.allowlists]]\ncondition = 'AND'\nstopwords = ['ab3']\npaths = ['^src/']\n",
            true,
        ),
        // A commit condition never holds in a directory scan.
        (
            "[[rules.allowlists]]\ncondition = 'AND'\ncommits = ['abc']\npaths = ['^src/']\n",
            false,
        ),
        ("[[rules.allowlists]]\ncommits = ['abc']\n", false),
        // Paths: the rule is skipped for that file.
        ("[[rules.allowlists]]\npaths = ['''\\.py$''']\n", true),
        // Global allowlists apply to every rule; targetRules to some.
        ("[[allowlists]]\nregexes = ['^ghp_']\n", true),
        (
            "[[allowlists]]\ntargetRules = ['gh']\nregexes = ['^ghp_']\n",
            true,
        ),
        ("[[allowlists]]\npaths = ['''^src/''']\n", true),
        (
            "[[allowlists]]\ncondition = 'AND'\npaths = ['''^src/''']\nregexes = ['nomatch']\n",
            false,
        ),
    ];
    for (extra, allowed) in cases {
        let d = detector(&format!("{base}{extra}"));
        let hits = d.detect("src/app.py", line.as_bytes());
        assert_eq!(hits.is_empty(), *allowed, "{extra}");
    }
}

#[test]
fn path_rules() {
    let d = detector(
        "[[rules]]\nid = 'pem-file'\npath = '''\\.pem$'''\n[[rules]]\nid = 'in-py'\npath = '''\\.py$'''\nregex = 'secret[0-9]'\n",
    );
    let h = d.detect("keys/server.pem", b"anything");
    assert_eq!(rules_of(&h), ["pem-file"]);
    assert_eq!(h[0].matched, "file detected: keys/server.pem");
    assert_eq!(rules_of(&d.detect("a.py", b"secret1")), ["in-py"]);
    assert!(d.detect("a.js", b"secret1").is_empty());
}

#[test]
fn generic_findings_yield_to_specific_rules_on_the_same_line() {
    let d = Detector::new(secret_scan::default_rules());
    let text = format!("github_token = \"{GHP}\"\nauth_token = \"Zq8vN2xR5tL9wK3mP7yB4cD\"\n");
    let h = d.detect("app.py", text.as_bytes());
    assert_eq!(rules_of(&h), ["github-pat", "generic-api-key"]);
    assert_eq!(h[1].line, 2);
}

fn settings(root: &Path) -> Settings {
    Settings {
        roots: vec![root.to_path_buf()],
        max_file_size: 1 << 20,
        follow_symlinks: false,
        exclude: Vec::new(),
        redact: 75,
        cache: true,
        ignore_file: true,
        shard: None,
    }
}

fn gh_detector() -> Detector {
    detector("[[rules]]\nid = 'gh'\nregex = 'ghp_[0-9A-Za-z]{36}'\n")
}

#[test]
fn walker_skips_binary_large_git_excluded_and_symlinks() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let w = |p: &str, data: &[u8]| {
        let path = root.join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, data).unwrap();
    };
    w("src/a.txt", GHP.as_bytes());
    let mut bin = b"\0\x01\x02".to_vec();
    bin.extend_from_slice(GHP.as_bytes());
    w("img/blob.bin", &bin);
    let mut big = vec![b'x'; 2 << 20];
    big.extend_from_slice(GHP.as_bytes());
    w("big.log", &big);
    w(".git/config", GHP.as_bytes());
    w("vendor/lib.txt", GHP.as_bytes());
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("linked.txt"), GHP).unwrap();
    std::os::unix::fs::symlink(outside.path().join("linked.txt"), root.join("link.txt")).unwrap();

    let mut s = settings(root);
    s.exclude = vec![secret_scan::pattern::Pattern::new("^vendor/").unwrap()];
    let (found, stats, _) = scan::scan(&gh_detector(), &s, None, "k");
    let files: Vec<&str> = found.iter().map(|f| f.rel.as_str()).collect();
    assert_eq!(files, ["src/a.txt"]);
    assert_eq!(found[0].file, root.join("src/a.txt").to_string_lossy());
    assert_eq!(
        (
            stats.scanned,
            stats.binary,
            stats.too_large,
            stats.symlinks,
            stats.excluded
        ),
        (1, 1, 1, 1, 1)
    );

    // Following symlinks when asked.
    s.follow_symlinks = true;
    let (found, _, _) = scan::scan(&gh_detector(), &s, None, "k");
    assert!(found.iter().any(|f| f.rel == "link.txt"));
}

#[test]
fn gitleaksignore_takes_both_path_forms() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("a")).unwrap();
    for f in ["a/one.txt", "a/two.txt", "a/three.txt"] {
        std::fs::write(root.join(f), format!("x\n{GHP}\n")).unwrap();
    }
    std::fs::write(
        root.join(".gitleaksignore"),
        format!(
            "# reviewed\na/one.txt:gh:2\n{}:gh:2\na/three.txt:gh:1\n",
            root.join("a/two.txt").display()
        ),
    )
    .unwrap();
    let (found, _, _) = scan::scan(&gh_detector(), &settings(root), None, "k");
    let files: Vec<&str> = found.iter().map(|f| f.rel.as_str()).collect();
    assert_eq!(files, ["a/three.txt"], "wrong line does not ignore");
    let mut off = settings(root);
    off.ignore_file = false;
    let (found, _, _) = scan::scan(&gh_detector(), &off, None, "k");
    assert_eq!(found.len(), 3, "gitleaks_ignore = false");
}

#[test]
fn redaction_and_fingerprints() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("app.env");
    std::fs::write(&f, format!("TOKEN={GHP}\n")).unwrap();
    let (found, _, cache) = scan::scan(&gh_detector(), &settings(dir.path()), None, "k");
    let one = &found[0];
    assert_eq!(one.secret, "ghp_aB3dE5...");
    assert!(!one.matched.contains(GHP));
    assert!(
        !serde_json::to_string(&cache).unwrap().contains(GHP),
        "cache holds the secret"
    );
    assert_eq!(one.gitleaks_fingerprint(), format!("{}:gh:1", f.display()));

    // Moving the secret to another line keeps the content fingerprint and
    // changes gitleaks'.
    std::fs::write(&f, format!("# moved\n\nTOKEN={GHP}\n")).unwrap();
    let (moved, _, _) = scan::scan(&gh_detector(), &settings(dir.path()), None, "k");
    assert_eq!(moved[0].line, 3);
    assert_eq!(moved[0].fingerprint, one.fingerprint);
    assert_ne!(moved[0].gitleaks_fingerprint(), one.gitleaks_fingerprint());

    let mut clear = settings(dir.path());
    clear.redact = 0;
    let (shown, _, _) = scan::scan(&gh_detector(), &clear, None, "k");
    assert_eq!(shown[0].secret, GHP);
}

#[test]
fn incremental_scans_skip_unchanged_files() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for i in 0..5 {
        std::fs::write(root.join(format!("f{i}.txt")), format!("n{i}\n{GHP}\n")).unwrap();
    }
    let d = gh_detector();
    let s = settings(root);
    let (first, st1, cache) = scan::scan(&d, &s, None, "k1");
    assert_eq!((st1.scanned, st1.unchanged, first.len()), (5, 0, 5));
    let (second, st2, cache) = scan::scan(&d, &s, Some(&cache), "k1");
    assert_eq!((st2.scanned, st2.unchanged), (0, 5));
    assert_eq!(second, first, "cached findings are reported again");
    // A changed file is read again (size differs); a removed one is gone.
    std::fs::write(root.join("f0.txt"), "clean now\n").unwrap();
    std::fs::remove_file(root.join("f1.txt")).unwrap();
    let (third, st3, cache) = scan::scan(&d, &s, Some(&cache), "k1");
    assert_eq!((st3.scanned, st3.unchanged, third.len()), (1, 3, 3));
    // Another key (rules or options changed): everything is read.
    let (_, st4, _) = scan::scan(&d, &s, Some(&cache), "k2");
    assert_eq!((st4.scanned, st4.unchanged), (4, 0));
}

fn config(json: serde_json::Value) -> Config {
    warden_plugin_sdk::parse_config::<SecretScan>(&json.to_string()).unwrap()
}

fn run(cfg: &Config, dir: &Path, state: &Arc<MemoryState>) -> Report {
    let mut ctx = TestContext::new(cfg.clone())
        .read_dir(dir)
        .state(state.clone())
        .build();
    SecretScan::run(&mut ctx).unwrap()
}

fn attr<'a>(f: &'a warden_plugin_sdk::Finding, name: &str) -> &'a str {
    f.attributes
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

#[test]
fn plugin_runs_report_new_then_known_and_count_skips() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.py"), format!("token = \"{GHP}\"\n")).unwrap();
    std::fs::write(dir.path().join("b.py"), "print('clean')\n").unwrap();
    let state = Arc::new(MemoryState::new());
    let cfg = config(serde_json::json!({"baseline": "previous"}));

    let r1 = run(&cfg, dir.path(), &state);
    assert_eq!(r1.status, Status::Critical, "{}", r1.summary);
    assert_eq!(r1.findings.len(), 1);
    let f = &r1.findings[0];
    assert_eq!(f.rule, "github-pat");
    assert_eq!(f.severity, Severity::High);
    assert_eq!(attr(f, "baseline"), "new");
    assert_eq!(attr(f, "line"), "1");
    assert_eq!(attr(f, "file"), dir.path().join("a.py").to_string_lossy());
    assert!(!format!("{r1:?}").contains(GHP), "report holds the secret");
    assert!(r1.summary.contains("2 files scanned"), "{}", r1.summary);

    let r2 = run(&cfg, dir.path(), &state);
    assert_eq!(r2.status, Status::Warning, "{}", r2.summary);
    assert_eq!(attr(&r2.findings[0], "baseline"), "known");
    assert!(
        r2.summary.contains("0 files scanned, 2 unchanged skipped"),
        "{}",
        r2.summary
    );

    // A new secret elsewhere is new again; the known one stays known.
    std::fs::write(
        dir.path().join("b.py"),
        format!("k = \"{}\"\n", GHP.replace('a', "b")),
    )
    .unwrap();
    let r3 = run(&cfg, dir.path(), &state);
    assert_eq!(r3.status, Status::Critical);
    let news: Vec<&str> = r3.findings.iter().map(|f| attr(f, "baseline")).collect();
    assert_eq!(news, ["new", "known"], "new findings are listed first");

    // baseline = none, the default: everything is new, every run.
    let none = config(serde_json::json!({}));
    assert_eq!(run(&none, dir.path(), &state).status, Status::Critical);
    assert_eq!(run(&none, dir.path(), &state).status, Status::Critical);
}

#[test]
fn baseline_files_gitleaks_and_sarif() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.py");
    std::fs::write(&a, format!("token = \"{GHP}\"\n")).unwrap();
    let gitleaks = serde_json::json!([{"RuleID": "github-pat", "Fingerprint": format!("{}:github-pat:1", a.display())}]);
    std::fs::write(dir.path().join("baseline.json"), gitleaks.to_string()).unwrap();
    let cfg = config(serde_json::json!({
        "baseline": "none",
        "baseline_file": dir.path().join("baseline.json"),
        "exclude": ["^baseline"],
    }));
    let r = run(&cfg, dir.path(), &Arc::new(MemoryState::new()));
    assert_eq!(r.status, Status::Warning, "{}", r.summary);
    let fp = r.findings[0].fingerprint.clone();

    // SARIF carries the content fingerprint: the secret may move.
    std::fs::write(&a, format!("\n\ntoken = \"{GHP}\"\n")).unwrap();
    let sarif = serde_json::json!({"version": "2.1.0", "runs": [{"results": [{"partialFingerprints": {"warden/v1": fp}}]}]});
    std::fs::write(dir.path().join("baseline.json"), sarif.to_string()).unwrap();
    let r = run(&cfg, dir.path(), &Arc::new(MemoryState::new()));
    assert_eq!(r.status, Status::Warning, "{}", r.summary);

    std::fs::write(dir.path().join("baseline.json"), "{}").unwrap();
    let mut ctx = TestContext::new(cfg.clone()).read_dir(dir.path()).build();
    let e = SecretScan::run(&mut ctx).unwrap_err().to_string();
    assert!(
        e.contains("config.baseline_file") && e.contains("neither"),
        "{e}"
    );
}

#[test]
fn near_keyword_search_equals_a_full_scan() {
    // gitleaks' shape: a bounded lead before the keyword, a bounded match;
    // matches found in the windows around keyword occurrences only.
    let rules = [
        "[[rules]]\nid = 'near'\nregex = '''(?i)[\\w.-]{0,10}(?:key|token)[ \\t]{0,3}=[ \\t]{0,3}([a-z0-9]{6,12})(?:[;\\s]|$)'''\nkeywords = ['key', 'token']\n",
        "[[rules]]\nid = 'near'\nregex = '''(?i)\\b[a-z]{1,4}_?(?:key)\\b.{0,8}?([0-9]{4,8})'''\nkeywords = ['key']\n",
    ];
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let pieces = [
        "key",
        "KEY",
        "token",
        "Tok",
        "=",
        " = ",
        "\t",
        "\n",
        ";",
        "_",
        "-",
        ".",
        "a",
        "zz",
        "0",
        "1234567",
        "abc123def",
        "x_key=",
        "ke",
        "y",
        "api",
        " ",
    ];
    for rule in rules {
        let near = detector(rule);
        assert_eq!(near.near_keyword_rules(), ["near"], "{rule}");
        let full = detector(rule).without_anchoring();
        let mut found = 0;
        for _ in 0..5000 {
            let n = 1 + (next() % 40) as usize;
            let text: String = (0..n)
                .map(|_| pieces[(next() % pieces.len() as u64) as usize])
                .collect();
            let a = near.detect("f", text.as_bytes());
            assert_eq!(a, full.detect("f", text.as_bytes()), "{rule}\n{text:?}");
            found += a.len();
        }
        assert!(
            found > 100,
            "{found} matches: the texts must exercise the rule"
        );
    }
    // Lengths are those of the regex as written: a case-insensitive `k`
    // may be the Kelvin sign (3 bytes), which folding writes as `k`.
    let rule = "[[rules]]\nid = 'near'\nregex = '''(?i)x?key=([a-z]{2}kkkkkkkkkk)'''\nkeywords = ['key']\n";
    let text = format!("key=ab{}\n", "\u{212A}".repeat(10));
    let near = detector(rule);
    assert_eq!(near.near_keyword_rules(), ["near"]);
    let hits = near.detect("f", text.as_bytes());
    assert_eq!(
        hits,
        detector(rule)
            .without_anchoring()
            .detect("f", text.as_bytes())
    );
    assert_eq!(hits.len(), 1, "{hits:#?}");
    // Unbounded matches are searched everywhere.
    let d =
        detector("[[rules]]\nid = 'x'\nregex = '''[a-z]{0,5}key=[0-9]+'''\nkeywords = ['key']\n");
    assert!(d.near_keyword_rules().is_empty() && d.anchored_rules().is_empty());
}

#[test]
fn config_errors_name_the_field() {
    let bad = |json: serde_json::Value| -> String {
        let c = warden_plugin_sdk::parse_config::<SecretScan>(&json.to_string());
        match c {
            Err(e) => e,
            Ok(c) => SecretScan::validate(&c).unwrap_err(),
        }
    };
    assert!(
        bad(serde_json::json!({"max_file_size": "10 parsecs"})).contains("config.max_file_size")
    );
    assert!(bad(serde_json::json!({"redact": 101})).contains("config.redact"));
    assert!(bad(serde_json::json!({"exclude": ["a(b"]})).contains("config.exclude[0]"));
    assert!(bad(serde_json::json!({"paths": ["relative"]})).contains("config.paths[0]"));
    let e = bad(serde_json::json!({"rules_toml": "[[rules]]\nid = 'x'\nregex = '(('\n"}));
    assert!(
        e.contains("config.rules_toml") && e.contains("x: regex"),
        "{e}"
    );
    assert!(bad(serde_json::json!({"shout": true})).contains("shout"));
    // A pattern over the compiled size limit: refused when the check is
    // validated (the `validate` export), not compiled again before each
    // run, which checks the rest of the config alone.
    let huge = serde_json::json!({"rules_toml": "[[rules]]\nid = 'huge'\nregex = '''(?:\\w{1000}){1000}'''\n"});
    let e = warden_plugin_sdk::parse_config::<SecretScan>(&huge.to_string()).unwrap_err();
    assert!(
        e.contains("config.rules_toml") && e.contains("\"huge\"") && e.contains("does not compile"),
        "{e}"
    );
    let c: Config = serde_json::from_value(huge).unwrap();
    assert_eq!(SecretScan::validate(&c), Ok(()));

    // Paths outside the grants and no grants at all: clear run errors.
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(serde_json::json!({"paths": ["/etc"]}));
    let mut ctx = TestContext::new(cfg).read_dir(dir.path()).build();
    let e = SecretScan::run(&mut ctx).unwrap_err().to_string();
    assert!(
        e.contains("config.paths[0]") && e.contains("not inside a granted directory"),
        "{e}"
    );
    let mut ctx = TestContext::new(config(serde_json::json!({}))).build();
    let e = SecretScan::run(&mut ctx).unwrap_err().to_string();
    assert!(e.contains("allow.read_dirs"), "{e}");
}

#[test]
fn a_config_file_rule_that_cannot_compile_fails_the_run() {
    // A config file is read at run time, so validation never compiled its
    // rules: a pattern over the size limit would match nothing. The run
    // says so instead of reporting "no secrets found".
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("rules.toml"),
        "[[rules]]\nid = 'huge'\nregex = '''huge(?:\\w{1000}){1000}'''\nkeywords = ['huge']\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("app.py"), "huge = 1\n").unwrap();
    let cfg = config(serde_json::json!({
        "config_file": dir.path().join("rules.toml"),
        "exclude": ["rules\\.toml$"],
    }));
    let mut ctx = TestContext::new(cfg.clone()).read_dir(dir.path()).build();
    let e = SecretScan::run(&mut ctx).unwrap_err().to_string();
    assert!(
        e.contains("config.config_file")
            && e.contains("rules.toml")
            && e.contains("rule \"huge\"")
            && e.contains("does not compile"),
        "{e}"
    );
    // No file names the keyword: the rule never ran, nothing was missed.
    std::fs::write(dir.path().join("app.py"), "x = 1\n").unwrap();
    let mut ctx = TestContext::new(cfg).read_dir(dir.path()).build();
    assert_eq!(SecretScan::run(&mut ctx).unwrap().status, Status::Ok);
}

#[test]
fn custom_config_file_extends_the_shipped_rules() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("gitleaks.toml"),
        "[extend]\nuseDefault = true\ndisabledRules = ['generic-api-key']\n[[rules]]\nid = 'internal-token'\nregex = '''itk_[a-z0-9]{20}'''\nkeywords = ['itk_']\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("app.py"),
        format!("t = \"itk_0123456789abcdefghij\"\ng = \"{GHP}\"\napi_key = \"Zq8vN2xR5tL9wK3mP7yB4cD\"\n"),
    )
    .unwrap();
    let cfg = config(serde_json::json!({
        "config_file": dir.path().join("gitleaks.toml"),
        "exclude": ["gitleaks\\.toml$"],
    }));
    let r = run(&cfg, dir.path(), &Arc::new(MemoryState::new()));
    let rules: Vec<&str> = r.findings.iter().map(|f| f.rule.as_str()).collect();
    assert_eq!(rules, ["internal-token", "github-pat"], "{}", r.summary);

    let loaded = Loader::new(secret_scan::DEFAULT_ORIGIN, secret_scan::DEFAULT_RULES)
        .load_file(&dir.path().join("gitleaks.toml"))
        .unwrap();
    assert!(loaded.rule("generic-api-key").is_none());
    assert!(loaded.rule("aws-access-token").is_some());
}

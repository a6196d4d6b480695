//! gitleaks' own config test cases (tests/fixtures/gitleaks, MIT): every
//! `valid/` file loads with the meaning gitleaks gives it, every
//! `invalid/` file is refused with gitleaks' message; gitleaks' default
//! config loads and every rule compiles.

use std::path::PathBuf;

use secret_scan::config::{Condition, Config, Loader, RegexTarget};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/gitleaks")
}

fn gitleaks_default() -> String {
    std::fs::read_to_string(fixtures().join("config/gitleaks.toml")).unwrap()
}

/// gitleaks resolves `[extend] path` against its working directory, which
/// in its tests is `config/`.
fn loader() -> Loader {
    Loader::new("<gitleaks default>", &gitleaks_default()).base_dir(fixtures().join("config"))
}

fn load(name: &str) -> Result<Config, String> {
    let path = fixtures().join("testdata/config").join(name);
    loader().load_file(&path).map_err(|e| e.message)
}

fn valid(name: &str) -> Config {
    load(&format!("valid/{name}.toml")).unwrap_or_else(|e| panic!("valid/{name}: {e}"))
}

fn invalid(name: &str) -> String {
    match load(&format!("invalid/{name}.toml")) {
        Ok(_) => panic!("invalid/{name} loaded"),
        Err(e) => e,
    }
}

fn ids(c: &Config) -> Vec<&str> {
    c.rules.iter().map(|r| r.id.as_str()).collect()
}

const AWS_KEY: &str = "(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}";
const AWS_SECRET: &str = r#"(?i)aws_(.{0,20})?=?.[\'\"0-9a-zA-Z\/+]{40}"#;

#[test]
fn every_fixture_is_covered() {
    for dir in ["valid", "invalid"] {
        let n = std::fs::read_dir(fixtures().join("testdata/config").join(dir))
            .unwrap()
            .count();
        assert!(n > 10, "{dir}: {n} files");
    }
    // Bases are loaded by the cases that extend them; the rest load alone.
    for entry in std::fs::read_dir(fixtures().join("testdata/config/valid")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let is_base = name.ends_with("_base.toml") || name.starts_with("extend_base_");
        if is_base && name != "extend_base_rule_including_keywords_with_attribute.toml" {
            continue;
        }
        load(&format!("valid/{name}")).unwrap_or_else(|e| panic!("valid/{name}: {e}"));
    }
    for entry in std::fs::read_dir(fixtures().join("testdata/config/invalid")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert!(
            load(&format!("invalid/{name}")).is_err(),
            "invalid/{name} loaded"
        );
    }
}

#[test]
fn rules() {
    let c = valid("rule_path_only");
    let r = &c.rules[0];
    assert_eq!(
        (r.id.as_str(), r.description.as_str()),
        ("python-files-only", "Python Files")
    );
    assert_eq!(r.path.as_ref().unwrap().as_str(), ".py");
    assert!(r.regex.is_none());

    let c = valid("rule_regex_escaped_character_group");
    let r = &c.rules[0];
    assert_eq!(
        r.regex.as_ref().unwrap().as_str(),
        r"pypi-AgEIcHlwaS5vcmc[A-Za-z0-9\-_]{50,1000}"
    );
    assert_eq!(r.tags, ["key", "pypi"]);

    let c = valid("rule_entropy_group");
    let r = &c.rules[0];
    assert_eq!((r.secret_group, r.entropy), (3, 3.5));
    assert!(r.keywords.is_empty());
}

#[test]
fn invalid_rules() {
    assert_eq!(
        invalid("rule_missing_id"),
        r#"rule |id| is missing or empty, regex: (?i)(discord[a-z0-9_ .\-,]{0,25})(=|>|:=|\|\|:|<=|=>|:).{0,5}['\"]([a-h0-9]{64})['\"]"#
    );
    assert_eq!(
        invalid("rule_no_regex_or_path"),
        "discord-api-key: both |regex| and |path| are empty, this rule will have no effect"
    );
    assert_eq!(
        invalid("rule_bad_entropy_group"),
        "discord-api-key: invalid regex secret group 5, max regex secret group 3"
    );
}

#[test]
fn global_allowlists() {
    let c = valid("allowlist_global_old_compat");
    assert!(c.rules.is_empty());
    assert_eq!(c.allowlists.len(), 1);
    assert_eq!(
        c.allowlists[0].stopwords,
        ["0989c462-69c9-49fa-b7d2-30dc5c576a97"]
    );

    let c = valid("allowlist_global_multiple");
    assert_eq!(c.allowlists.len(), 2);
    assert_eq!(c.allowlists[0].condition, Condition::Or);
    assert_eq!(c.allowlists[0].regexes[0].as_str(), "^changeit$");
    assert_eq!(c.allowlists[1].condition, Condition::And);
    assert_eq!(c.allowlists[1].paths[0].as_str(), "^node_modules/.*");
    assert_eq!(c.allowlists[1].stopwords, ["mock"]);

    let c = valid("allowlist_global_regex");
    assert_eq!(c.allowlists[0].regexes[0].as_str(), "AKIALALEM.L33243OLIA");
    assert!(c.allowlists[0].regex_allowed(b"AKIALALEMEL33243OLIA"));

    // targetRules: the allowlist goes to those rules only.
    let c = valid("allowlist_global_target_rules");
    assert_eq!(c.allowlists.len(), 1);
    assert_eq!(c.allowlists[0].regexes[0].as_str(), ".*fake.*");
    for id in ["github-app-token", "github-pat"] {
        let r = c.rule(id).unwrap();
        assert_eq!(r.allowlists.len(), 1, "{id}");
        assert_eq!(
            r.allowlists[0].paths[0].as_str(),
            r"(?:^|/)@octokit/auth-token/README\.md$"
        );
    }
    assert!(c.rule("github-oauth").unwrap().allowlists.is_empty());
}

#[test]
fn invalid_global_allowlists() {
    assert_eq!(
        invalid("allowlist_global_empty"),
        "[[allowlists]] must contain at least one check for: commits, paths, regexes, or stopwords"
    );
    assert_eq!(
        invalid("allowlist_global_old_and_new"),
        "[allowlist] is deprecated, it cannot be used alongside [[allowlists]]"
    );
    assert_eq!(
        invalid("allowlist_global_target_rule_id"),
        "[[allowlists]] target rule ID 'github-pat' does not exist"
    );
    assert_eq!(
        invalid("allowlist_global_regextarget"),
        "[[allowlists]] unknown allowlist |regexTarget| 'mtach' (expected 'match', 'line')"
    );
}

#[test]
fn rule_allowlists() {
    let c = valid("allowlist_rule_old_compat");
    let a = &c.rule("example").unwrap().allowlists;
    assert_eq!((a.len(), a[0].regexes[0].as_str()), (1, "123"));

    let c = valid("allowlist_rule_regex");
    assert_eq!(c.title, "simple config with allowlist for aws");
    let r = c.rule("aws-access-key").unwrap();
    assert_eq!(r.regex.as_ref().unwrap().as_str(), AWS_KEY);
    assert_eq!(r.tags, ["key", "AWS"]);
    assert_eq!(r.allowlists[0].regexes[0].as_str(), "AKIALALEMEL33243OLIA");

    let c = valid("allowlist_rule_commit");
    assert_eq!(
        c.rule("aws-access-key").unwrap().allowlists[0].commits,
        ["allowthiscommit"]
    );

    let c = valid("allowlist_rule_path");
    assert_eq!(
        c.rule("aws-access-key").unwrap().allowlists[0].paths[0].as_str(),
        ".go"
    );

    // Extending gitleaks' default: the rule keeps the default's regex and
    // gains the allowlist.
    let c = valid("allowlist_rule_extend_default");
    let r = c.rule("generic-api-key").unwrap();
    assert!(r.regex.is_some());
    assert_eq!(
        r.allowlists.last().unwrap().description,
        "Exclude a specific file from generic-api-key rule"
    );
    assert!(c.rules.len() > 200);
}

#[test]
fn invalid_rule_allowlists() {
    assert_eq!(
        invalid("allowlist_rule_empty"),
        "example: [[rules.allowlists]] must contain at least one check for: commits, paths, regexes, or stopwords"
    );
    assert_eq!(
        invalid("allowlist_rule_old_and_new"),
        "example: [rules.allowlist] is deprecated, it cannot be used alongside [[rules.allowlist]]"
    );
    assert_eq!(
        invalid("allowlist_rule_regextarget"),
        "example: [[rules.allowlists]] unknown allowlist |regexTarget| 'mtach' (expected 'match', 'line')"
    );
}

#[test]
fn extend_chains_two_levels() {
    let c = valid("extend");
    assert_eq!(
        ids(&c),
        ["aws-access-key", "aws-secret-key", "aws-secret-key-again"]
    );
    assert_eq!(
        c.rule("aws-secret-key")
            .unwrap()
            .regex
            .as_ref()
            .unwrap()
            .as_str(),
        AWS_SECRET
    );
    assert_eq!(
        c.rule("aws-access-key").unwrap().description,
        "AWS Access Key"
    );

    let c = valid("extend_disabled");
    assert_eq!(c.title, "gitleaks extend disable");
    assert_eq!(ids(&c), ["aws-secret-key", "pypi-upload-token"]);

    let c = valid("extend_rule_no_regexpath");
    let r = c.rule("aws-secret-key-again-again").unwrap();
    assert_eq!(r.description, "AWS Secret Key");
    assert_eq!(r.regex.as_ref().unwrap().as_str(), AWS_SECRET);
    assert_eq!(r.tags, ["key", "AWS"]);
    assert_eq!(r.allowlists.len(), 1);
    assert_eq!(r.allowlists[0].paths[0].as_str(), "something.py");
}

#[test]
fn extend_overrides() {
    let aws = |name: &str| valid(name).rule("aws-access-key").unwrap().clone();
    assert_eq!(
        aws("extend_rule_override_description").description,
        "Puppy Doggy"
    );
    let r = aws("extend_rule_override_path");
    assert_eq!(r.path.as_ref().unwrap().as_str(), "(?:puppy)");
    assert_eq!(r.regex.as_ref().unwrap().as_str(), AWS_KEY);
    assert_eq!(
        aws("extend_rule_override_regex").regex.unwrap().as_str(),
        "(?:a)"
    );
    let r = aws("extend_rule_override_secret_group");
    assert_eq!((r.regex.unwrap().as_str(), r.secret_group), ("(a)(a)", 2));
    assert_eq!(aws("extend_rule_override_entropy").entropy, 999.0);
    assert_eq!(aws("extend_rule_override_keywords").keywords, ["puppy"]);
    assert_eq!(
        aws("extend_rule_override_tags").tags,
        ["key", "AWS", "puppy"]
    );
    assert_eq!(
        valid("extend_rule_override_tags").title,
        "override a built-in rule's tags"
    );
}

#[test]
fn extend_merges_allowlists_and_keywords() {
    for (name, cond) in [
        ("extend_rule_allowlist_or", Condition::Or),
        ("extend_rule_allowlist_and", Condition::And),
    ] {
        let c = valid(name);
        let r = c.rule("aws-secret-key-again-again").unwrap();
        assert_eq!(r.allowlists.len(), 2, "{name}");
        assert_eq!(r.allowlists[0].stopwords, ["fake"]);
        let a = &r.allowlists[1];
        assert_eq!(a.condition, cond);
        assert_eq!(a.commits, ["abcdefg1"]);
        assert_eq!(a.paths[0].as_str(), r"ignore\.xaml");
        assert_eq!(a.regexes[0].as_str(), "foo.+bar");
        assert_eq!(a.regex_target, RegexTarget::Line);
        assert_eq!(a.stopwords, ["example"]);
    }
    // Keywords are lower-cased, whether inherited or new.
    let c = valid("extend_base_rule_including_keywords_with_attribute");
    assert!(c.keywords.contains("aws"));
    assert_eq!(
        c.rule("aws-secret-key-again-again").unwrap().description,
        "A new description"
    );
    let c = valid("extend_rule_new");
    assert!(c.keywords.contains("cms"));
    assert!(c.keywords.contains("aws"));
}

#[test]
fn invalid_extends() {
    let e = invalid("extend_invalid_base");
    assert!(
        e.contains("failed to load extended config") && e.contains("does_not_exist.toml"),
        "{e}"
    );
    assert_eq!(
        invalid("extend_invalid_ruleid"),
        "rule |id| is missing or empty"
    );
}

#[test]
fn gitleaks_default_config_loads_and_compiles() {
    let c = loader()
        .load_str(&gitleaks_default(), "gitleaks.toml", None)
        .unwrap();
    assert!(c.rules.len() >= 200, "{} rules", c.rules.len());
    assert!(!c.allowlists.is_empty());
    c.compile_all().unwrap();
    // Keywords are lower-cased and collected.
    assert!(c.keywords.contains("akia") || c.keywords.iter().any(|k| k.contains("akia")));
    assert!(c.keywords.iter().all(|k| k == &k.to_lowercase()));
}

#[test]
fn keys_are_case_insensitive_and_unknown_keys_ignored() {
    let c = Loader::default()
        .load_str(
            "minVersion = 'v8'\n[[rules]]\nID = 'x'\nREGEX = '(a)(b)'\nSecretGroup = 2\nKeyWords = ['A']\nfuture = 1\n",
            "t.toml",
            None,
        )
        .unwrap();
    let r = c.rule("x").unwrap();
    assert_eq!(
        (r.secret_group, r.keywords.as_slice()),
        (2, ["a".to_string()].as_slice())
    );
}

#[test]
fn errors_name_the_file_and_rule() {
    let e = Loader::default()
        .load_str(
            "[[rules]]\nid = 'bad'\nregex = 'a(b'\n",
            "custom.toml",
            None,
        )
        .unwrap_err();
    assert_eq!(e.file, "custom.toml");
    assert!(
        e.to_string()
            .starts_with("custom.toml: bad: regex: invalid regex \"a(b\""),
        "{e}"
    );
    let e = Loader::default()
        .load_str("[[rules]\n", "broken.toml", None)
        .unwrap_err();
    assert!(
        e.to_string().starts_with("broken.toml: not valid TOML"),
        "{e}"
    );
    let e = Loader::default()
        .load_str(
            "[extend]\nuseDefault = true\npath = 'x.toml'\n",
            "both.toml",
            None,
        )
        .unwrap_err();
    assert!(
        e.message.contains("extend.path and extend.useDefault"),
        "{e}"
    );
}

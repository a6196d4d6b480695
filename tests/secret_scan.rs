//! The `secret-scan` standard plugin end to end: `warden check` with
//! `--read-dir` and `--format sarif|gitleaks` (exit 2 on new findings),
//! a report used as the next baseline, and `warden run` on the example
//! config: findings through the API in both formats, incremental re-scans,
//! and the secret in clear nowhere (stdout, API, log, SQLite file).

mod common;
#[path = "../plugins/secret-scan/tests/corpus/mod.rs"]
mod corpus;

use std::path::Path;
use std::time::Duration;

use common::{AgentProcess, http, warden};
use corpus::encoded::base64;

const GHP: &str = "ghp_R8sT2uV4wX6yZ8aB0cD2eF4gH6iJ8kL0mN2p";
const AKIA: &str = "AKIAQ3ZT7WJNB5XKPRM4";

fn plant(dir: &Path) {
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::create_dir_all(dir.join("testdata")).unwrap();
    std::fs::write(
        dir.join("src/settings.py"),
        format!("DEBUG = False\nGITHUB_TOKEN = \"{GHP}\"\n"),
    )
    .unwrap();
    std::fs::write(
        dir.join("src/deploy.sh"),
        format!("export AWS_ACCESS_KEY_ID={AKIA}\n"),
    )
    .unwrap();
    std::fs::write(dir.join("testdata/fixture.env"), format!("T={GHP}\n")).unwrap();
    std::fs::write(
        dir.join("src/clean.rs"),
        "fn main() { let key = map.get(&id); }\n",
    )
    .unwrap();
}

fn check(state: &Path, dir: &Path, config: &str, format: &str) -> common::Run {
    warden(
        state,
        &[
            "check",
            "secret-scan",
            "--read-dir",
            dir.to_str().unwrap(),
            "--config",
            config,
            "--format",
            format,
        ],
        &[],
    )
}

#[test]
fn warden_check_sarif_and_gitleaks_with_exit_codes_and_baselines() {
    let tree = tempfile::tempdir().unwrap();
    let dir = tree.path().canonicalize().unwrap();
    plant(&dir);
    let state = tempfile::tempdir().unwrap();
    let config = r#"{"exclude": ["^testdata/"], "baseline": "previous"}"#;

    // First scan: two new findings, SARIF on stdout, exit 2.
    let r = check(state.path(), &dir, config, "sarif");
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    let sarif = r.json();
    assert_eq!(sarif["version"], "2.1.0");
    let results = sarif["runs"][0]["results"].as_array().unwrap();
    let mut rules: Vec<&str> = results
        .iter()
        .map(|x| x["ruleId"].as_str().unwrap())
        .collect();
    rules.sort();
    assert_eq!(rules, ["aws-access-token", "github-pat"]);
    let uri = results
        .iter()
        .map(|x| {
            x["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
                .as_str()
                .unwrap()
        })
        .find(|u| u.ends_with("settings.py"))
        .unwrap();
    assert!(uri.contains(dir.to_str().unwrap()), "host path in {uri}");
    for out in [&r.stdout, &r.stderr] {
        assert!(
            !out.contains(GHP) && !out.contains(AKIA),
            "secret in clear:\n{out}"
        );
    }

    // Second scan: the same findings are known (earlier runs of this
    // check), exit 1; the gitleaks report names host paths and lines.
    let r = check(state.path(), &dir, config, "gitleaks");
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let report = r.json();
    let gh = report
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["RuleID"] == "github-pat")
        .unwrap();
    let settings = dir.join("src/settings.py");
    assert_eq!(gh["File"], settings.to_str().unwrap());
    assert_eq!(gh["StartLine"], 2);
    assert_eq!(
        gh["Fingerprint"],
        format!("{}:github-pat:2", settings.display())
    );
    assert!(!r.stdout.contains(GHP));

    // That report as the baseline of a fresh check (no history): exit 1;
    // a new leak makes it 2 again.
    let fresh = tempfile::tempdir().unwrap();
    let baseline = dir.join("baseline.json");
    std::fs::write(&baseline, &r.stdout).unwrap();
    let with_baseline = format!(
        r#"{{"exclude": ["^testdata/", "^baseline"], "baseline_file": "{}"}}"#,
        baseline.display()
    );
    let r = check(fresh.path(), &dir, &with_baseline, "text");
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    std::fs::write(
        dir.join("src/new.py"),
        format!("key = \"{}\"\n", GHP.replace('R', "Q")),
    )
    .unwrap();
    let r = check(fresh.path(), &dir, &with_baseline, "text");
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);

    // Bad input: a directory that is not granted, a broken inline config.
    let r = check(state.path(), &dir, r#"{"paths": ["/etc"]}"#, "text");
    assert_eq!(r.code, 3, "{}", r.stdout);
    assert!(r.stdout.contains("config.paths[0]"), "{}", r.stdout);
    let r = check(
        state.path(),
        &dir,
        r#"{"rules_toml": "[[rules]]\nid = 'x'\n"}"#,
        "text",
    );
    assert_eq!(r.code, 3, "{}", r.stdout);
    assert!(
        r.stdout.contains("both |regex| and |path| are empty"),
        "{}",
        r.stdout
    );
}

#[test]
fn scheduled_scans_are_incremental_and_findings_leave_through_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    plant(&tree);
    let tree = tree.canonicalize().unwrap();
    let example = std::fs::read_to_string(format!(
        "{}/../examples/secret-scan.toml",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let config = format!(
        "[agent]\nlisten = \"127.0.0.1:{{PORT}}\"\n{}",
        example.replace("/srv/app", tree.to_str().unwrap())
    );
    let agent = AgentProcess::start(dir.path(), &config, &[]);
    let run = |agent: &AgentProcess| {
        let r = http(agent.port, "POST", "/v1/checks/repo-secrets/run", &[], b"");
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()
    };
    let metric = |run: &serde_json::Value, name: &str| -> f64 {
        run["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == name)
            .unwrap_or_else(|| panic!("no metric {name} in {run}"))["value"]
            .as_f64()
            .unwrap()
    };

    let first = run(&agent);
    assert_eq!(first["status"], "critical", "{first}");
    // The agent split the run across its idle places, one per core, and
    // the next run still finds the cache the shards kept.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cores > 1 {
        assert_eq!(first["shards"], cores, "{first}");
        let stored = agent.get("/v1/runs?check=repo-secrets&limit=1").json();
        assert_eq!(
            stored["runs"][0]["shards"], cores,
            "kept in the store: {stored}"
        );
    }
    assert_eq!(
        metric(&first, "secret_scan_findings"),
        2.0,
        "testdata/ is excluded"
    );
    assert_eq!(metric(&first, "secret_scan_files_scanned"), 3.0);

    // Still critical: a leak stays new until it is acknowledged or gone.
    let second = run(&agent);
    assert_eq!(second["status"], "critical", "{second}");
    assert_eq!(metric(&second, "secret_scan_files_scanned"), 0.0);
    assert_eq!(metric(&second, "secret_scan_files_unchanged"), 3.0);
    assert!(
        second["summary"]
            .as_str()
            .unwrap()
            .contains("3 unchanged skipped")
    );

    // Touching one file re-reads just that one.
    std::fs::write(tree.join("src/clean.rs"), "fn main() {}\n// changed\n").unwrap();
    let third = run(&agent);
    assert_eq!(metric(&third, "secret_scan_files_scanned"), 1.0, "{third}");

    for format in ["sarif", "gitleaks", "json"] {
        let r = agent.get(&format!("/v1/findings?check=repo-secrets&format={format}"));
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(r.body.contains("settings.py"), "{format}: {}", r.body);
        assert!(
            !r.body.contains(GHP) && !r.body.contains(AKIA),
            "{format}: secret in clear"
        );
    }
    let sarif = agent
        .get("/v1/findings?check=repo-secrets&format=sarif")
        .json();
    assert_eq!(sarif["runs"][0]["results"].as_array().unwrap().len(), 2);

    agent.wait_until("the log is written", Duration::from_secs(5), |a| {
        a.log().contains("repo-secrets")
    });
    let log = agent.log();
    let state_dir = dir.path().join(".warden");
    let code = agent.terminate();
    assert_eq!(code, 0);
    assert!(
        !log.contains(GHP) && !log.contains(AKIA),
        "secret in the log"
    );
    let mut stored = Vec::new();
    for entry in std::fs::read_dir(&state_dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_file() {
            stored.extend(std::fs::read(p).unwrap());
        }
    }
    assert!(!stored.is_empty(), "no store in {}", state_dir.display());
    let stored = String::from_utf8_lossy(&stored);
    assert!(
        !stored.contains(GHP) && !stored.contains(AKIA),
        "secret in the store"
    );
}

#[test]
fn never_silently_blind_past_bad_names_big_files_fifos_and_loops() {
    use std::os::unix::ffi::OsStrExt;
    let state = tempfile::tempdir().unwrap();
    let tree = tempfile::tempdir().unwrap();
    let t = tree.path();
    let leak = format!("export AWS_ACCESS_KEY_ID={AKIA}\n");
    // A name that is not UTF-8 sorts between two leaks and a subdirectory.
    std::fs::write(t.join("a-good.env"), &leak).unwrap();
    std::fs::write(t.join(std::ffi::OsStr::from_bytes(b"m-bad\xff.env")), &leak).unwrap();
    std::fs::write(t.join("z-good.env"), &leak).unwrap();
    std::fs::create_dir(t.join("sub")).unwrap();
    std::fs::write(t.join("sub/deploy.sh"), &leak).unwrap();
    std::fs::write(t.join("big.log"), "x".repeat(4096)).unwrap();
    let fifo = t.join("pipe");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    // Loops: here -> . and real/up -> ..
    std::os::unix::fs::symlink(".", t.join("here")).unwrap();
    std::fs::create_dir(t.join("real")).unwrap();
    std::os::unix::fs::symlink("..", t.join("real/up")).unwrap();

    let run = check(
        state.path(),
        t,
        r#"{"follow_symlinks": true, "max_file_size": 1024}"#,
        "json",
    );
    let o = run.json();
    let files: std::collections::BTreeSet<String> = o["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            f["location"]
                .as_str()
                .unwrap()
                .split(':')
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    let want: std::collections::BTreeSet<String> = ["a-good.env", "z-good.env", "sub/deploy.sh"]
        .iter()
        .map(|f| t.join(f).display().to_string())
        .collect();
    assert_eq!(files, want, "every leak past the bad name: {o}");
    let summary = o["summary"].as_str().unwrap();
    assert!(summary.contains("3 not scanned"), "{summary}");
    assert!(summary.contains("whose names are not UTF-8"), "{summary}");
    assert!(
        summary.contains("big.log: 4096 bytes, over max_file_size (1024)"),
        "{summary}"
    );
    assert!(
        summary.contains("pipe: a FIFO, socket or device, not read"),
        "{summary}"
    );
    assert!(
        summary.contains("reached again through links, walked once"),
        "{summary}"
    );
    let metric = |name: &str| {
        o["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == name)
            .map(|m| m["value"].as_f64().unwrap())
    };
    assert_eq!(metric("secret_scan_entries_skipped"), Some(3.0));
    assert!(metric("secret_scan_directory_loops").unwrap() >= 2.0, "{o}");

    // No secret, but a blind spot: a warning, not "OK: no secrets found";
    // `on_skipped = "ok"` keeps it ok, still naming it.
    let clean = tempfile::tempdir().unwrap();
    std::fs::write(
        clean.path().join(std::ffi::OsStr::from_bytes(b"bad\xfe")),
        "x",
    )
    .unwrap();
    std::fs::write(clean.path().join("fine.txt"), "nothing here\n").unwrap();
    let run = check(state.path(), clean.path(), "{}", "text");
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(
        run.stdout.starts_with("WARNING: no secrets found"),
        "{}",
        run.stdout
    );
    let run = check(
        state.path(),
        clean.path(),
        r#"{"on_skipped": "ok"}"#,
        "text",
    );
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert!(run.stdout.contains("1 not scanned"), "{}", run.stdout);
}

#[test]
fn decodes_a_kubernetes_secret_and_a_percent_encoded_redirect() {
    let tree = tempfile::tempdir().unwrap();
    let dir = tree.path().canonicalize().unwrap();
    let key = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gunVTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxKLxoS2tFczGkPLPgizskuemMghRniWaoLcyehkd3qqGElvW/VDL5AaWTg0nLVkjRo9z+40RQzuVaE8AkAFmxZzow3x+VJYKdjykkJ0iT9wCS0DRTXu269V264Vf/3jvredZiKRkgwlL9xNAwxXFg0x/XFw005UWVRIkdgcKWTjpBP2dPwVZ4WWC+9aGVd+Gyn1o0CLelf4rEjGoXbAAEgAqeGUxrcIlbjXfbcmwIDAQAB\n-----END RSA PRIVATE KEY-----";
    let slack = "https://hooks.slack.com/services/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";
    let secret = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: app\ntype: Opaque\ndata:\n  AWS_ACCESS_KEY_ID: {}\n  GITHUB_TOKEN: {}\n  tls.key: {}\n",
        base64(AKIA.as_bytes()),
        base64(GHP.as_bytes()),
        base64(key.as_bytes())
    );
    std::fs::write(dir.join("secret.yaml"), &secret).unwrap();
    let redirect = slack.replace(':', "%3A").replace('/', "%2F");
    std::fs::write(
        dir.join("access.log"),
        format!("127.0.0.1 - - \"GET /login HTTP/1.1\" 200\n127.0.0.1 - - \"GET /login?next={redirect} HTTP/1.1\" 302\n"),
    )
    .unwrap();
    let state = tempfile::tempdir().unwrap();

    let r = check(state.path(), &dir, "{}", "gitleaks");
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    let report = r.json();
    let mut got: Vec<(String, u64, String, Vec<String>)> = report
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let file = f["File"].as_str().unwrap();
            (
                file.rsplit('/').next().unwrap().to_string(),
                f["StartLine"].as_u64().unwrap(),
                f["RuleID"].as_str().unwrap().to_string(),
                f["Tags"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| t.as_str().unwrap().to_string())
                    .filter(|t| t.starts_with("decode"))
                    .collect(),
            )
        })
        .collect();
    got.sort();
    let b64_tags = vec!["decoded:base64".to_string(), "decode-depth:1".to_string()];
    assert_eq!(
        got,
        vec![
            (
                "access.log".into(),
                2,
                "slack-webhook-url".into(),
                vec!["decoded:percent".to_string(), "decode-depth:1".to_string()]
            ),
            (
                "secret.yaml".into(),
                7,
                "aws-access-token".into(),
                b64_tags.clone()
            ),
            (
                "secret.yaml".into(),
                8,
                "github-pat".into(),
                b64_tags.clone()
            ),
            (
                "secret.yaml".into(),
                9,
                "private-key".into(),
                b64_tags.clone()
            ),
        ],
        "{}",
        r.stdout
    );
    // Columns point at the encoded text.
    let gh = report
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["RuleID"] == "github-pat")
        .unwrap();
    assert_eq!(gh["StartColumn"], 17);
    // Neither the secrets nor their encodings leave in clear.
    for s in [
        GHP.to_string(),
        base64(GHP.as_bytes()),
        slack.to_string(),
        redirect,
    ] {
        assert!(!r.stdout.contains(&s), "{s} in the report");
    }

    // Decoding off: only the generic rule's guesses at the encoded values
    // (which it drops when it decodes them); a depth over the limit is
    // refused.
    let r = check(state.path(), &dir, r#"{"max_decode_depth": 0}"#, "gitleaks");
    let rules: Vec<String> = r
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["RuleID"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(rules, ["generic-api-key"; 3], "{}", r.stdout);
    let r = check(state.path(), &dir, r#"{"max_decode_depth": 99}"#, "text");
    assert_eq!(r.code, 3, "{}", r.stdout);
    assert!(r.stdout.contains("config.max_decode_depth"), "{}", r.stdout);
}

#[test]
fn one_scan_runs_in_shards_on_every_core_and_reports_as_one() {
    let tree = tempfile::tempdir().unwrap();
    let t = tree.path();
    plant(t);
    corpus::generate(&t.join("corpus"), 300_000, 2_000, 20, 5);
    let run = |extra: &[&str]| {
        let state = tempfile::tempdir().unwrap();
        let mut args = vec!["check", "secret-scan", "--read-dir", t.to_str().unwrap()];
        args.extend(["--config", "{}", "--format", "json"]);
        args.extend(extra);
        warden(state.path(), &args, &[])
    };
    let whole = run(&["--shards", "1"]);
    let split = run(&["--shards", "3"]);
    assert_eq!(split.code, 2, "{}\n{}", split.stdout, split.stderr);
    let (w, s) = (whole.json(), split.json());
    assert_eq!(w["shards"], serde_json::Value::Null);
    assert_eq!(s["shards"], 3);
    assert_eq!(s["status"], w["status"]);
    assert_eq!(s["summary"], w["summary"]);
    assert_eq!(s["findings"], w["findings"]);
    assert!(
        w["findings"].as_array().unwrap().len() > 50,
        "{}",
        w["summary"]
    );
    // By default, one shard per core.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let default = run(&[]).json();
    if cores > 1 {
        assert_eq!(default["shards"], cores);
    }
    assert_eq!(default["findings"], w["findings"]);
    // A shard that fails fails the run (unknown), naming the shard and why.
    let r = run(&["--shards", "2", "--memory", "2MiB"]);
    assert_eq!(r.code, 3, "{}\n{}", r.stdout, r.stderr);
    let error = r.json()["error"].as_str().unwrap_or_default().to_string();
    assert!(
        error.starts_with("shard ") && error.contains(" of 2: memory limit"),
        "{error}"
    );
    // Out of range is refused, naming the flag.
    let r = run(&["--shards", "0"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("--shards"), "{}", r.stderr);
}

/// A finding's attribute (attributes are `[name, value]` pairs).
fn attr<'a>(f: &'a serde_json::Value, name: &str) -> Option<&'a str> {
    f["attributes"]
        .as_array()?
        .iter()
        .find(|p| p[0] == name)
        .and_then(|p| p[1].as_str())
}

/// `tests/fixtures/provider_fakes.py` on a free port, killed on drop.
struct ProviderFakes {
    child: std::process::Child,
    port: u16,
    dir: std::path::PathBuf,
}

impl ProviderFakes {
    fn start(dir: &Path, live: &[&str]) -> ProviderFakes {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("live"), live.join("\n")).unwrap();
        let port = common::free_port();
        ProviderFakes {
            child: common::python_fixture("provider_fakes.py", port, dir),
            port,
            dir: dir.to_path_buf(),
        }
    }

    fn requests(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.dir.join("requests.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl Drop for ProviderFakes {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn verification_asks_each_provider_once_through_the_grants_only() {
    let tree = tempfile::tempdir().unwrap();
    let dir = tree.path().join("repo");
    std::fs::create_dir_all(&dir).unwrap();
    let dead = GHP.replace('R', "D");
    let slack = "xoxb-81726354091-81726354092-Qz7rT9vLp2MnXw4Yb8Zc1dEf";
    let stripe = "sk_live_4eC39HqLyjWDarjtT1zdp7dcQz7rT9vL";
    std::fs::write(
        dir.join("settings.py"),
        format!("GITHUB_TOKEN = \"{GHP}\"\nOLD_TOKEN = \"{dead}\"\nSLACK = \"{slack}\"\n"),
    )
    .unwrap();
    std::fs::write(
        dir.join("copy.env"),
        format!("T={GHP}\nSTRIPE_KEY={stripe}\nAWS={AKIA}\n"),
    )
    .unwrap();
    let fakes = ProviderFakes::start(&tree.path().join("fakes"), &[GHP, slack, stripe]);
    let base = format!("http://127.0.0.1:{}", fakes.port);
    let config = format!(
        r#"{{"verify": true, "verify_urls": {{"github": "{base}/github", "slack": "{base}/slack", "stripe": "{base}/stripe"}}}}"#
    );
    let state = tempfile::tempdir().unwrap();
    let run = |config: &str, grant: bool| {
        let mut args = vec!["check", "secret-scan", "--read-dir", dir.to_str().unwrap()];
        if grant {
            args.extend(["--allow-host", &base]);
        }
        args.extend(["--config", config, "--format", "json"]);
        warden(state.path(), &args, &[])
    };
    let verdicts = |r: &common::Run| -> Vec<(String, String, String)> {
        let mut v: Vec<_> = r.json()["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    format!(
                        "{}:{}",
                        attr(f, "file").unwrap().rsplit('/').next().unwrap(),
                        attr(f, "line").unwrap()
                    ),
                    attr(f, "verified").unwrap_or("-").to_string(),
                    f["severity"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        v.sort();
        v
    };

    // Granted: each distinct token asked once, the token only in the
    // Authorization header; the live ones are critical.
    let r = run(&config, true);
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    let s = |a: &str, b: &str, c: &str| (a.to_string(), b.to_string(), c.to_string());
    assert_eq!(
        verdicts(&r),
        vec![
            s("copy.env:1", "verified", "critical"),
            s("copy.env:2", "verified", "critical"),
            s("copy.env:3", "unknown", "high"),
            s("settings.py:1", "verified", "critical"),
            s("settings.py:2", "unverified", "high"),
            s("settings.py:3", "verified", "critical"),
        ],
        "{}",
        r.stdout
    );
    assert!(
        r.json()["summary"]
            .as_str()
            .unwrap()
            .contains("4 verified live"),
        "{}",
        r.stdout
    );
    let reqs = fakes.requests();
    let mut asked: Vec<(String, String)> = reqs
        .iter()
        .map(|q| {
            (
                q["path"].as_str().unwrap().to_string(),
                q["authorization"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    asked.sort();
    assert_eq!(
        asked,
        vec![
            ("/github/user".to_string(), format!("Bearer {dead}")),
            ("/github/user".to_string(), format!("Bearer {GHP}")),
            (
                "/slack/api/auth.test".to_string(),
                format!("Bearer {slack}")
            ),
            ("/stripe/v1/account".to_string(), format!("Bearer {stripe}")),
        ]
    );
    for out in [&r.stdout, &r.stderr] {
        assert!(
            !out.contains(GHP) && !out.contains(slack) && !out.contains(stripe),
            "{out}"
        );
    }

    // Not granted: nothing is sent, every verdict unknown with the reason.
    std::fs::write(dir.join("touch.txt"), "changed\n").unwrap();
    let fresh = tempfile::tempdir().unwrap();
    let mut args = vec!["check", "secret-scan", "--read-dir", dir.to_str().unwrap()];
    args.extend(["--config", &config, "--format", "json"]);
    let r = warden(fresh.path(), &args, &[]);
    let findings = r.json()["findings"].as_array().unwrap().clone();
    assert!(
        findings
            .iter()
            .filter(|f| f["rule"] != "aws-access-token")
            .all(|f| attr(f, "verified") == Some("unknown")
                && attr(f, "verified_reason").unwrap().contains("not granted")),
        "{}",
        r.stdout
    );
    assert_eq!(fakes.requests().len(), reqs.len(), "sent without a grant");

    // Off by default: no question asked, no verdict.
    let r = run("{}", true);
    assert!(
        verdicts(&r).iter().all(|(_, v, _)| v == "-"),
        "{}",
        r.stdout
    );
    assert_eq!(fakes.requests().len(), reqs.len());
}

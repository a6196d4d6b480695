//! Runbook actions end to end: `examples/actions.toml` run by the real
//! agent against `tests/fixtures/ops_service.py` (the service and its
//! admin API, on Python's http.server), its notifications received by
//! `notify_receiver.py`. The JamTalk case (a check publishes the abusive
//! key; an approved action resets that bucket; the check re-runs OK), the
//! stale release lock (an auto action clears it, at most once an hour),
//! the deployment retry and the normalization call, a failing action, a
//! dry run, the pause and the kill switch, and kill -9 between approval
//! and run.

mod common;

use std::path::Path;
use std::time::Duration;

use common::notify::Receiver;
use common::{AgentProcess, free_port, http, python_fixture};
use serde_json::Value;

const TOKEN: &str = "agent-token";
const WAIT: Duration = Duration::from_secs(60);

struct Ops {
    child: std::process::Child,
    port: u16,
    dir: std::path::PathBuf,
}

impl Ops {
    fn start(dir: &Path) -> Ops {
        let port = free_port();
        Ops {
            child: python_fixture("ops_service.py", port, dir),
            port,
            dir: dir.to_path_buf(),
        }
    }

    fn set(&self, file: &str, text: &str) {
        std::fs::write(self.dir.join(file), text).unwrap();
    }

    fn exists(&self, file: &str) -> bool {
        self.dir.join(file).exists()
    }

    /// The admin calls received, in order.
    fn admin(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir.join("admin.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn calls(&self, method: &str, path: &str) -> Vec<Value> {
        self.admin()
            .into_iter()
            .filter(|c| c["method"] == method && c["path"] == path)
            .collect()
    }
}

impl Drop for Ops {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `examples/actions.toml` pointed at `ops`, with a token, a webhook to
/// `hook` and `extra`.
fn config(ops: &Ops, hook: &Receiver, agent: &str, extra: &str) -> String {
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/actions.toml"
    ))
    .unwrap()
    .replace("127.0.0.1:8080", &format!("127.0.0.1:{}", ops.port));
    format!(
        "[agent]\nlisten = \"127.0.0.1:{{PORT}}\"\n{agent}\n[api]\ntoken_env = \"WARDEN_API_TOKEN\"\n\
         [alerting]\nnotify = [\"hook\"]\n\
         [[notifier]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:{}/hook\"\n\
         {example}\n{extra}",
        hook.port
    )
}

fn start(dir: &Path, config: &str) -> AgentProcess {
    AgentProcess::start(
        dir,
        config,
        &[("WARDEN_API_TOKEN", TOKEN), ("ADMIN_TOKEN", "admin-token")],
    )
}

fn post(agent: &AgentProcess, path: &str, token: Option<&str>, body: &str) -> common::HttpResponse {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("content-type", "application/json")];
    if let Some(a) = &auth {
        headers.push(("authorization", a.as_str()));
    }
    http(agent.port, "POST", path, &headers, body.as_bytes())
}

/// The firings of `action`, newest first.
fn firings(agent: &AgentProcess, action: &str) -> Vec<Value> {
    let r = agent.get(&format!("/v1/actions?action={action}"));
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["firings"].as_array().cloned().unwrap_or_default()
}

/// Waits until the newest firing of `action` is in `state`; returns it.
fn firing_in(agent: &AgentProcess, action: &str, state: &str) -> Value {
    let mut last = Value::Null;
    agent.wait_until(&format!("{action} is {state}"), WAIT, |a| {
        last = firings(a, action).into_iter().next().unwrap_or(Value::Null);
        last["state"] == state
    });
    last
}

fn notices(hook: &Receiver, action: &str) -> Vec<String> {
    hook.at("/hook")
        .into_iter()
        .filter(|n| n["body"]["action"] == action)
        .map(|n| n["body"]["summary"].as_str().unwrap_or("").to_string())
        .collect()
}

#[test]
fn runbook_actions_fire_wait_for_approval_run_once_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let ops = Ops::start(&dir.path().join("ops"));
    let hook = Receiver::start(&dir.path().join("hook"), free_port());
    // A failing remedy (the lock is sticky) and a dry run, beside the
    // example's.
    let extra = format!(
        "[[check]]\nname = \"stuck-lock\"\nplugin = \"http-health\"\nschedule = \"@every 2s\"\nfailure_threshold = 1\n\
         allow.hosts = [\"http://127.0.0.1:{p}\"]\nconfig.url = \"http://127.0.0.1:{p}/v1/locks/stuck\"\n\
         config.conditions = [\"[BODY].locked == false\"]\n\
         [[action]]\nname = \"clear-stuck-lock\"\nplugin = \"http-action\"\non = {{ check = \"stuck-lock\" }}\nmode = \"auto\"\nmax_per_hour = 1\n\
         config.url = \"http://127.0.0.1:{p}/v1/locks/stuck\"\nconfig.method = \"DELETE\"\n\
         config.headers = {{ authorization = \"Bearer ${{env:ADMIN_TOKEN}}\" }}\n\
         allow.hosts = [\"http://127.0.0.1:{p}\"]\nallow.env = [\"ADMIN_TOKEN\"]\n\
         [[check]]\nname = \"dry-lock\"\nplugin = \"http-health\"\nschedule = \"@every 2s\"\nfailure_threshold = 1\n\
         allow.hosts = [\"http://127.0.0.1:{p}\"]\nconfig.url = \"http://127.0.0.1:{p}/v1/locks/dry\"\n\
         config.conditions = [\"[BODY].locked == false\"]\n\
         [[action]]\nname = \"clear-dry-lock\"\nplugin = \"http-action\"\non = {{ check = \"dry-lock\" }}\nmode = \"auto\"\ndry_run = true\n\
         config.url = \"http://127.0.0.1:{p}/v1/locks/dry\"\nconfig.method = \"DELETE\"\n\
         allow.hosts = [\"http://127.0.0.1:{p}\"]\n",
        p = ops.port
    );
    let agent = start(dir.path(), &config(&ops, &hook, "", &extra));

    // JamTalk: the check finds and publishes the abusive key; the action
    // waits for a person.
    ops.set("abusive", "key-7f3a");
    let pending = firing_in(&agent, "reset-bucket", "pending");
    assert_eq!(pending["trigger_status"], "critical");
    assert_eq!(pending["config"]["json"]["key"], "key-7f3a", "{pending}");
    assert!(
        pending["config"]["json"]["reason"]
            .as_str()
            .unwrap()
            .contains("failed"),
        "${{trigger.summary}} filled in: {pending}"
    );
    assert_eq!(
        pending["config"]["headers"]["authorization"], "<redacted>",
        "{pending}"
    );
    assert!(
        ops.calls("POST", "/v1/ops/rate-limits").is_empty(),
        "nothing runs before approval"
    );
    let id = pending["id"].as_i64().unwrap();
    // The status page lists it.
    let page = agent.get("/v1/page").json();
    assert_eq!(page["actions_waiting"][0]["id"], id, "{page}");
    assert_eq!(page["actions_waiting"][0]["action"], "reset-bucket");
    agent.wait_until("the approval request is sent", WAIT, |_| {
        notices(&hook, "reset-bucket")
            .iter()
            .any(|s| s.contains(&format!("POST /v1/actions/{id}/approve")))
    });
    // Approving takes the token.
    let r = post(&agent, &format!("/v1/actions/{id}/approve"), None, "");
    assert_eq!(r.status, 401, "{}", r.body);
    let r = post(
        &agent,
        &format!("/v1/actions/{id}/approve"),
        Some("wrong"),
        "",
    );
    assert_eq!(r.status, 403, "{}", r.body);
    let r = post(
        &agent,
        &format!("/v1/actions/{id}/approve"),
        Some(TOKEN),
        r#"{"author": "alice", "comment": "key-7f3a is scraping"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let done = firing_in(&agent, "reset-bucket", "succeeded");
    assert_eq!(done["decided_by"], "alice");
    assert_eq!(done["verify_status"], "ok", "the check ran again: {done}");
    let resets = ops.calls("POST", "/v1/ops/rate-limits");
    assert_eq!(resets.len(), 1, "{resets:?}");
    assert_eq!(resets[0]["body"]["key"], "key-7f3a");
    assert_eq!(resets[0]["headers"]["authorization"], "Bearer admin-token");
    assert_eq!(
        resets[0]["headers"]["idempotency-key"], done["idempotency_key"],
        "the plugin sent the firing's key"
    );
    assert!(!ops.exists("abusive"));
    assert_eq!(agent.check("auth-failures")["status"], "ok");
    assert_eq!(
        agent.get("/v1/page").json()["actions_waiting"],
        serde_json::json!([])
    );
    agent.wait_until("the result is told", WAIT, |_| {
        notices(&hook, "reset-bucket")
            .iter()
            .any(|s| s.contains("reset-bucket ran: ok") && s.contains("auth-failures is OK again"))
    });
    // A firing is decided once.
    let again = post(
        &agent,
        &format!("/v1/actions/{id}/approve"),
        Some(TOKEN),
        "",
    );
    assert_eq!(again.status, 409, "{}", again.body);
    assert_eq!(again.json()["error"]["code"], "not_pending");
    // The audit record.
    let one = agent.get(&format!("/v1/actions/{id}")).json();
    assert_eq!(one["state"], "succeeded");
    assert!(one["started_unix_ms"].as_i64().unwrap() >= one["decided_unix_ms"].as_i64().unwrap());
    assert_eq!(agent.get("/v1/actions/99999").status, 404);
    assert_eq!(agent.get("/v1/actions/x").status, 400);

    // The stale release lock: auto, at most once an hour.
    ops.set("lock-release", "");
    let cleared = firing_in(&agent, "clear-release-lock", "succeeded");
    assert_eq!(cleared["decided_by"], "auto");
    assert_eq!(cleared["verify_status"], "ok");
    assert!(!ops.exists("lock-release"));
    ops.set("lock-release", "");
    let held = firing_in(&agent, "clear-release-lock", "skipped");
    assert!(
        held["reason"]
            .as_str()
            .unwrap()
            .contains("max_per_hour = 1"),
        "{held}"
    );
    let deletes = ops.calls("DELETE", "/v1/locks/release");
    assert_eq!(deletes.len(), 1);
    // Its length said, not chunked: http.server reads by Content-Length.
    assert_eq!(deletes[0]["headers"]["content-length"], "0", "{deletes:?}");
    assert!(deletes[0]["headers"].get("transfer-encoding").is_none());
    assert!(
        ops.exists("lock-release"),
        "the second stale lock waits for a person"
    );

    // The deployment retry waits for approval; rejected, it never runs.
    ops.set("pending-deploy", "9");
    let retry = firing_in(&agent, "retry-deploy", "pending");
    let rid = retry["id"].as_i64().unwrap();
    let r = post(
        &agent,
        &format!("/v1/actions/{rid}/reject"),
        Some(TOKEN),
        r#"{"author":"bob"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["state"], "rejected");
    assert_eq!(r.json()["decided_by"], "bob");
    assert!(ops.calls("POST", "/v1/jobs/deploy/retry").is_empty());
    // The queue recovers and sticks again: approved this time, it runs.
    ops.set("pending-deploy", "0");
    agent.wait_until("the queue is OK", WAIT, |a| {
        a.check("deploy-queue")["status"] == "ok"
    });
    ops.set("pending-deploy", "9");
    agent.wait_until("a second firing", WAIT, |a| {
        firings(a, "retry-deploy")
            .first()
            .is_some_and(|f| f["id"] != rid && f["state"] == "pending")
    });
    let rid = firings(&agent, "retry-deploy")[0]["id"].as_i64().unwrap();
    let r = post(
        &agent,
        &format!("/v1/actions/{rid}/approve"),
        Some(TOKEN),
        "",
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let retried = firing_in(&agent, "retry-deploy", "succeeded");
    assert_eq!(retried["verify_status"], "ok", "{retried}");
    assert_eq!(ops.calls("POST", "/v1/jobs/deploy/retry").len(), 1);

    // Normalization: every warning from the second in a row on.
    ops.set("unnormalized", "4");
    let norm = firing_in(&agent, "normalize", "succeeded");
    assert_eq!(norm["trigger_status"], "warning");
    assert_eq!(ops.calls("POST", "/v1/normalize").len(), 1);

    // A remedy that does not remedy: told as failed.
    ops.set("lock-stuck", "");
    ops.set("sticky-stuck", "");
    let failed = firing_in(&agent, "clear-stuck-lock", "failed");
    assert_eq!(
        failed["result_status"], "ok",
        "the call itself worked: {failed}"
    );
    assert_eq!(failed["verify_status"], "critical", "{failed}");
    agent.wait_until("the failure is told", WAIT, |_| {
        notices(&hook, "clear-stuck-lock")
            .iter()
            .any(|s| s.contains("stuck-lock is still CRITICAL"))
    });

    // A dry run says what it would do and does nothing.
    ops.set("lock-dry", "");
    let dry = firing_in(&agent, "clear-dry-lock", "succeeded");
    assert_eq!(dry["dry_run"], true);
    assert!(
        dry["result_summary"]
            .as_str()
            .unwrap()
            .contains("dry run: would send DELETE"),
        "{dry}"
    );
    assert!(ops.calls("DELETE", "/v1/locks/dry").is_empty());
    assert!(ops.exists("lock-dry"));

    // Counted in /metrics.
    let metrics = agent.get("/metrics").body;
    for line in [
        "warden_action_firings_total{action=\"reset-bucket\",state=\"succeeded\"} 1",
        "warden_action_firings_total{action=\"clear-stuck-lock\",state=\"failed\"} 1",
        "warden_action_firings_total{action=\"retry-deploy\",state=\"rejected\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} missing from\n{metrics}");
    }
    // The admin token never reaches the log.
    assert!(!agent.log().contains("admin-token"));
}

#[test]
fn an_approved_action_runs_once_across_kill_9_and_the_switch_stops_them_all() {
    let dir = tempfile::tempdir().unwrap();
    let ops = Ops::start(&dir.path().join("ops"));
    let hook = Receiver::start(&dir.path().join("hook"), free_port());
    let text = config(&ops, &hook, "", "");
    let agent = start(dir.path(), &text);
    let port = agent.port;
    let env = [("WARDEN_API_TOKEN", TOKEN), ("ADMIN_TOKEN", "admin-token")];
    let restart =
        || AgentProcess::start_with(dir.path(), &dir.path().join("warden.toml"), port, &env);

    // Approved while paused: the approval is stored, the run waits; then
    // kill -9.
    ops.set("abusive", "key-99");
    let pending = firing_in(&agent, "reset-bucket", "pending");
    let id = pending["id"].as_i64().unwrap();
    assert_eq!(
        post(&agent, "/v1/actions/pause", Some(TOKEN), "").status,
        200
    );
    assert_eq!(agent.get("/v1/actions").json()["paused"], true);
    let r = post(
        &agent,
        &format!("/v1/actions/{id}/approve"),
        Some(TOKEN),
        "",
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["state"], "approved");
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        ops.calls("POST", "/v1/ops/rate-limits").is_empty(),
        "paused"
    );
    // New firings are held back while paused.
    ops.set("lock-release", "");
    let held = firing_in(&agent, "clear-release-lock", "skipped");
    assert!(
        held["reason"].as_str().unwrap().contains("paused"),
        "{held}"
    );
    agent.kill9();

    // After the restart the approved firing runs, once.
    let agent = restart();
    let done = firing_in(&agent, "reset-bucket", "succeeded");
    assert_eq!(done["id"], id);
    std::thread::sleep(Duration::from_secs(3));
    let resets = ops.calls("POST", "/v1/ops/rate-limits");
    assert_eq!(resets.len(), 1, "exactly once: {resets:?}");
    assert_eq!(resets[0]["body"]["key"], "key-99");
    agent.kill9();

    // Restarted again: nothing runs twice.
    let agent = restart();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(ops.calls("POST", "/v1/ops/rate-limits").len(), 1);
    drop(agent);

    // The kill switch: nothing fires.
    std::fs::write(
        dir.path().join("warden.toml"),
        config(&ops, &hook, "actions = \"off\"", "").replace("{PORT}", &port.to_string()),
    )
    .unwrap();
    ops.set("abusive", "key-100");
    let agent = restart();
    agent.wait_until("the check sees the key", WAIT, |a| {
        a.check("auth-failures")["status"] == "critical"
    });
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(agent.get("/v1/actions").json()["switch"], "off");
    assert_eq!(
        firings(&agent, "reset-bucket").len(),
        1,
        "only the firing before"
    );
    assert!(ops.exists("abusive"));
}

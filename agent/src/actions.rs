//! Runbook actions: what runs an `[[action]]` ([`crate::config::action`])
//! when the check it watches changes, under its guardrails, and tells.
//!
//! After a check's run is stored, [`Agent::fire_actions`] decides which of
//! its actions fire (its hard state turned to one of `on.status`; or the
//! soft change; or every result from the `after`th). A firing passes the
//! guardrails (the kill switch `[agent] actions`, `POST
//! /v1/actions/pause`, the check's maintenance and silences, one open
//! firing per action, `cooldown`, `max_per_hour`), gets its config filled
//! in (`${output:}`, `${trigger.}`) and becomes a row of the store's
//! outbox ([`crate::store::actions`]) before anything runs: `pending`
//! (mode `approve`, until `POST /v1/actions/{id}/approve` or `.../reject`,
//! or `approve_within`) or `approved` (mode `auto`). Running it
//! ([`Agent::run_action`]) marks it `running` (committed), runs the plugin
//! in a sandbox of the action's own grants and limits under the global
//! run limit, told its dry-run flag and idempotency key (`host.action`),
//! then runs the check again at once to verify, stores both results and
//! tells the check's webhook and Slack receivers.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::Value;
use warden_runtime::{ActionRun, RunOutcome, RunRequest, Status};

use crate::action_state::lock;
use crate::agent::Agent;
use crate::config::action::{Mode, When};
use crate::config::{ActionConfig, Actions as Switch, CheckConfig};
use crate::health::Transition;
use crate::store::actions::ActionRecord;
use crate::store::now_ms;

/// The run of a check that fired an action.
#[derive(Debug, Clone)]
struct Trigger {
    check: String,
    status: Status,
    summary: String,
    run_id: String,
}

fn fill_trigger(v: &mut Value, t: &Trigger) {
    match v {
        Value::String(s) if s.contains("${trigger.") => {
            *s = s
                .replace("${trigger.check}", &t.check)
                .replace("${trigger.status}", t.status.as_str())
                .replace("${trigger.summary}", &t.summary);
        }
        Value::Array(a) => a.iter_mut().for_each(|x| fill_trigger(x, t)),
        Value::Object(o) => o.values_mut().for_each(|x| fill_trigger(x, t)),
        _ => {}
    }
}

/// `config` as the API shows it: values under names that hold secrets
/// (tokens, passwords, authorization) masked, URLs without credentials.
pub fn redacted(config: &Value) -> Value {
    const SECRET: [&str; 6] = [
        "token",
        "secret",
        "password",
        "authorization",
        "api_key",
        "apikey",
    ];
    fn walk(v: &Value, secret: bool) -> Value {
        match v {
            Value::String(_) if secret => Value::String("<redacted>".into()),
            Value::String(s) if s.starts_with("http://") || s.starts_with("https://") => {
                Value::String(warden_text::redact::url(s))
            }
            Value::Array(a) => Value::Array(a.iter().map(|x| walk(x, secret)).collect()),
            Value::Object(o) => Value::Object(
                o.iter()
                    .map(|(k, x)| {
                        let k_lower = k.to_ascii_lowercase();
                        let s = secret || SECRET.iter().any(|n| k_lower.contains(n));
                        (k.clone(), walk(x, s))
                    })
                    .collect(),
            ),
            other => other.clone(),
        }
    }
    walk(config, false)
}

/// Whether a run of status `status` (hard `health`, `transition`, the
/// previous result `before`) fires `a`, counting `every`'s streak.
fn fires(
    a: &ActionConfig,
    status: Status,
    before: Status,
    transition: Option<Transition>,
    streaks: &mut HashMap<String, u32>,
) -> bool {
    let matches = a.statuses.contains(&status);
    match a.when {
        When::Hard => transition.is_some_and(|t| t.to != t.from && a.statuses.contains(&t.to)),
        When::Soft => matches && !a.statuses.contains(&before),
        When::Every => {
            let n = streaks.entry(a.name.clone()).or_default();
            *n = if matches { *n + 1 } else { 0 };
            matches && *n >= a.after
        }
    }
}

impl Agent {
    /// After `check`'s run is stored: fires the actions it triggers
    /// (`before`: the previous result's status).
    pub(crate) fn fire_actions(
        &self,
        check: &CheckConfig,
        outcome: &RunOutcome,
        before: Status,
        transition: Option<Transition>,
    ) {
        let config = self.config();
        if config.actions.is_empty() || lock(&self.actions.verifying).contains(&check.name) {
            return;
        }
        let mut fired = Vec::new();
        {
            let mut streaks = lock(&self.actions.streaks);
            for a in config.actions.iter().filter(|a| a.check == check.name) {
                if fires(a, outcome.status, before, transition, &mut streaks) {
                    fired.push(a.clone());
                }
            }
        }
        if fired.is_empty() || config.agent.actions == Switch::Off {
            return;
        }
        let Some(agent) = self.me() else {
            return;
        };
        let trigger = Trigger {
            check: check.name.clone(),
            status: outcome.status,
            summary: outcome.summary.clone(),
            run_id: outcome.run_id.clone(),
        };
        for a in fired {
            let agent = agent.clone();
            let trigger = trigger.clone();
            self.handle
                .spawn(async move { agent.fire(a, trigger).await });
        }
    }

    /// What holds `a` back at `now_ms`, if anything (the pause, the
    /// check's maintenance, an open firing, the cooldown, the hourly cap).
    fn held(&self, a: &ActionConfig, dry_run: bool, now_ms: i64, open: bool) -> Option<String> {
        if self.actions.paused() && open {
            return Some("actions are paused (POST /v1/actions/pause)".into());
        }
        if !a.during_maintenance
            && let Some(check) = self.checks().get(&a.check)
            && let Some(q) = self.silences.holding(&check.config, now_ms)
        {
            return Some(format!("{} is quiet: {q}", a.check));
        }
        if open && let Ok(Some((id, state))) = self.store.open_action(&a.name) {
            return Some(format!("firing {id} of this action is still {state}"));
        }
        if dry_run {
            return None;
        }
        let hour = 3_600_000;
        let starts = self
            .store
            .action_starts(&a.name, now_ms - hour.max(a.cooldown.as_millis() as i64))
            .unwrap_or_default();
        if let Some(last) = starts.first()
            && now_ms - last < a.cooldown.as_millis() as i64
        {
            return Some(format!(
                "in its cooldown of {} (last ran {} ago)",
                warden_text::units::format_duration(a.cooldown),
                warden_text::units::format_duration(Duration::from_millis((now_ms - last) as u64))
            ));
        }
        if let Some(max) = a.max_per_hour {
            let n = starts.iter().filter(|s| now_ms - **s < hour).count();
            if n >= max as usize {
                return Some(format!(
                    "ran {n} times in the last hour (max_per_hour = {max})"
                ));
            }
        }
        None
    }

    /// One firing of `a`: held back (stored as skipped), or stored as
    /// pending or approved, and run at once when approved.
    async fn fire(self: Arc<Self>, a: ActionConfig, t: Trigger) {
        let now = now_ms();
        let switch = self.config().agent.actions;
        let dry_run = a.dry_run || switch == Switch::DryRun;
        let mut row = ActionRecord::fired(
            &a.name,
            &t.check,
            &a.plugin,
            dry_run,
            t.status.as_str(),
            &t.summary,
            &t.run_id,
            now,
        );
        if let Some(why) = self.held(&a, dry_run, now, true) {
            // One row per reason in a row, not one per result.
            if lock(&self.actions.last_skip).insert(a.name.clone(), why.clone())
                == Some(why.clone())
            {
                return;
            }
            tracing::info!(action = %a.name, check = %t.check, reason = %why, "action held back");
            row.state = "skipped".into();
            row.finished_unix_ms = Some(now);
            row.reason = Some(why);
            self.actions.count(&a.name, "skipped");
            let _ = self.store.add_action(row).await;
            return;
        }
        lock(&self.actions.last_skip).remove(&a.name);
        let resolved =
            crate::references::resolve(&a.config_json, |c, k| self.store.output_value(c, k))
                .and_then(|j| serde_json::from_str::<Value>(&j).map_err(|e| e.to_string()));
        let key = format!(
            "warden-{}-{}-{}",
            a.name,
            now,
            &warden_runtime::sha256_hex(t.run_id.as_bytes())[..8]
        );
        row.idempotency_key = key;
        match resolved {
            Ok(mut config) => {
                fill_trigger(&mut config, &t);
                row.config = config;
            }
            Err(reason) => {
                row.state = "failed".into();
                row.finished_unix_ms = Some(now);
                row.reason = Some(format!("cannot fill in its config: {reason}"));
                self.actions.count(&a.name, "failed");
                let _ = self.store.add_action(row).await;
                return;
            }
        }
        match a.mode {
            Mode::Auto => {
                row.state = "approved".into();
                row.decided_by = Some("auto".into());
                row.decided_unix_ms = Some(now);
            }
            Mode::Approve => {
                row.state = "pending".into();
                row.expires_unix_ms = Some(now + a.approve_within.as_millis() as i64);
            }
        }
        let id = match self.store.add_action(row.clone()).await {
            Ok(id) => id,
            Err(e) => {
                tracing::error!(action = %a.name, error = %format!("{e:#}"), "cannot store the action's firing; it does not run");
                return;
            }
        };
        tracing::warn!(action = %a.name, id, check = %t.check, mode = ?a.mode, dry_run, "action fired");
        match a.mode {
            Mode::Auto => self.run_action(id).await,
            Mode::Approve => self.tell_action(
                &a,
                &t.check,
                t.status,
                format!(
                    "action {} waits for approval: POST /v1/actions/{id}/approve or /reject within {}{}",
                    a.name,
                    warden_text::units::format_duration(a.approve_within),
                    if dry_run { " (dry run)" } else { "" }
                ),
            ),
        }
    }

    /// Queues the notice of what `a` did or waits for.
    fn tell_action(&self, a: &ActionConfig, check: &str, severity: Status, summary: String) {
        let checks = self.checks();
        let Some(c) = checks.get(check) else {
            return;
        };
        let last = self.live().get(check).and_then(|l| l.last.clone());
        let outcome = last.unwrap_or_else(|| {
            Arc::new(RunOutcome::unknown(
                check,
                &c.config.plugin,
                String::new(),
                SystemTime::now(),
                1,
            ))
        });
        let rows =
            self.alerting
                .action_notice(&c.config, &outcome, &a.name, severity, summary, now_ms());
        if !rows.is_empty() {
            self.store.queue_notifications(rows);
            self.alerting.wake.notify_one();
        }
    }

    /// Runs approved firing `id` once: marks it running (committed), runs
    /// the plugin, verifies, stores and tells. Does nothing if it is not
    /// `approved` any more.
    pub async fn run_action(self: Arc<Self>, id: i64) {
        let Ok(Some(row)) = self.store.action_record(id) else {
            return;
        };
        if row.state != "approved" {
            return;
        }
        let config = self.config();
        let Some(a) = config
            .actions
            .iter()
            .find(|a| a.name == row.action)
            .cloned()
        else {
            let why = "the action is no longer configured".to_string();
            let _ = self
                .store
                .finish_action(id, "failed", None, None, Some(why), now_ms())
                .await;
            self.actions.count(&row.action, "failed");
            return;
        };
        let now = now_ms();
        if self.actions.paused() {
            // Stays approved: runs on `.../resume` (or after a restart).
            tracing::info!(action = %a.name, id, "approved action waits: actions are paused");
            return;
        }
        let dry_run = row.dry_run || config.agent.actions == Switch::DryRun;
        let stop = match config.agent.actions {
            Switch::Off => Some("actions are off ([agent] actions = \"off\")".to_string()),
            _ => self.held(&a, dry_run, now, false),
        };
        if let Some(why) = stop {
            let _ = self
                .store
                .finish_action(id, "skipped", None, None, Some(why), now)
                .await;
            self.actions.count(&a.name, "skipped");
            return;
        }
        if !matches!(self.store.start_action(id, now).await, Ok(true)) {
            return;
        }
        let outcome = self.run_action_plugin(&a, &row, dry_run).await;
        let result = (outcome.status.as_str().to_string(), outcome.summary.clone());
        let verify = if a.verify && !dry_run && outcome.status == Status::Ok {
            lock(&self.actions.verifying).insert(a.check.clone());
            let v = self.run_now(&a.check).await;
            lock(&self.actions.verifying).remove(&a.check);
            v.ok().map(|o| (o.status, o.summary.clone()))
        } else {
            None
        };
        let worked =
            outcome.status == Status::Ok && verify.as_ref().is_none_or(|(s, _)| *s == Status::Ok);
        let state = if worked { "succeeded" } else { "failed" };
        let _ = self
            .store
            .finish_action(
                id,
                state,
                Some(result),
                verify
                    .clone()
                    .map(|(s, summary)| (s.as_str().to_string(), summary)),
                None,
                now_ms(),
            )
            .await;
        self.actions.count(&a.name, state);
        let dry = if dry_run { " (dry run)" } else { "" };
        let after = match &verify {
            Some((Status::Ok, _)) => format!("; {} is OK again", a.check),
            Some((s, summary)) => format!("; {} is still {}: {summary}", a.check, s.label()),
            None if a.verify && !dry_run => "; not verified (the action did not succeed)".into(),
            None => String::new(),
        };
        let summary = format!(
            "{} ran{dry}: {} ({}){after}",
            a.name,
            outcome.status.as_str(),
            outcome.summary
        );
        if worked {
            tracing::info!(action = %a.name, id, summary = %warden_text::escape::escape(&summary), "action done");
        } else {
            tracing::warn!(action = %a.name, id, summary = %warden_text::escape::escape(&summary), "action failed");
        }
        let severity =
            verify
                .map(|(s, _)| s)
                .unwrap_or(if worked { Status::Ok } else { Status::Critical });
        let severity = if severity == Status::Ok {
            row.trigger_status.parse().unwrap_or(Status::Warning)
        } else {
            severity
        };
        self.tell_action(&a, &a.check, severity, summary);
    }

    /// The action's plugin, run once in its own sandbox.
    async fn run_action_plugin(
        &self,
        a: &ActionConfig,
        row: &ActionRecord,
        dry_run: bool,
    ) -> RunOutcome {
        let name = format!("action/{}", a.name);
        let config = row.config.to_string();
        let unknown =
            |why: String| RunOutcome::unknown(&name, &a.plugin, why, SystemTime::now(), 1);
        if let Some(compiling) = self
            .registry
            .is_compiling(&a.plugin)
            .then(|| a.plugin.clone())
        {
            self.registry.wait_for(&compiling).await;
        }
        let Some(plugin) = self.registry.get(&a.plugin) else {
            return unknown(format!("plugin {:?} is missing", a.plugin));
        };
        let request = RunRequest {
            check: name.clone(),
            config,
            scheduled: SystemTime::now(),
            attempt: 1,
            timeout: a.timeout,
            memory: a.memory,
            grants: a.grants.clone(),
            state_quota: a.state_quota,
            action: Some(ActionRun {
                name: a.name.clone(),
                idempotency_key: row.idempotency_key.clone(),
                dry_run,
                trigger_check: row.check.clone(),
                trigger_status: row.trigger_status.parse().unwrap_or(Status::Unknown),
                trigger_summary: row.trigger_summary.clone(),
            }),
        };
        self.run_sandboxed(&plugin, request).await
    }

    /// Every tick: pending firings past `approve_within` expire.
    pub async fn action_tick(self: Arc<Self>, now: i64) {
        if let Ok(ids) = self.store.expire_actions(now).await {
            for id in ids {
                if let Ok(Some(r)) = self.store.action_record(id) {
                    tracing::warn!(action = %r.action, id, "action expired without approval");
                    self.actions.count(&r.action, "expired");
                }
            }
        }
    }

    /// At start: firings a crash left running become `interrupted`; those
    /// approved but never started run now (once).
    pub async fn resume_actions(self: Arc<Self>) {
        match self.store.interrupt_running_actions(now_ms()).await {
            Ok(n) if n > 0 => {
                tracing::warn!(
                    count = n,
                    "actions were running when the agent stopped; marked interrupted, not run again"
                )
            }
            _ => {}
        }
        self.run_approved().await;
    }

    /// Runs the firings approved but not started (after a restart, or
    /// when actions are resumed).
    pub async fn run_approved(self: Arc<Self>) {
        for row in self.store.actions_in("approved").unwrap_or_default() {
            self.clone().run_action(row.id).await;
        }
    }

    /// Approves (`approve`) or rejects pending firing `id` as `who`;
    /// the firing as it is now, or why it could not be decided.
    pub async fn decide_action(
        self: &Arc<Self>,
        id: i64,
        approve: bool,
        who: String,
        comment: Option<String>,
    ) -> Result<ActionRecord, DecideError> {
        let row = match self.store.action_record(id) {
            Ok(Some(r)) => r,
            Ok(None) => return Err(DecideError::NotFound),
            Err(e) => return Err(DecideError::Store(format!("{e:#}"))),
        };
        let to = if approve { "approved" } else { "rejected" };
        let decided = self
            .store
            .decide_action(id, to, who.clone(), comment, now_ms())
            .await
            .map_err(|e| DecideError::Store(format!("{e:#}")))?;
        if !decided {
            let why = match row.state.as_str() {
                "pending" => "its approval time has passed".to_string(),
                s => format!("it is {s}, not pending"),
            };
            return Err(DecideError::NotPending(why));
        }
        tracing::warn!(action = %row.action, id, by = %warden_text::escape::escape(&who), decision = to, "action decided");
        if approve {
            let agent = self.clone();
            self.handle.spawn(async move { agent.run_action(id).await });
        } else {
            self.actions.count(&row.action, "rejected");
        }
        self.store
            .action_record(id)
            .ok()
            .flatten()
            .ok_or(DecideError::NotFound)
    }
}

/// Why a firing could not be approved or rejected.
#[derive(Debug)]
pub enum DecideError {
    /// No firing has that id.
    NotFound,
    /// It is decided, running or done, or expired.
    NotPending(String),
    /// The store failed.
    Store(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_in_configs_are_masked_for_display() {
        let v = serde_json::json!({
            "url": "https://u:p@admin.example/x?api_key=abc",
            "headers": {"Authorization": "Bearer s3cr3t", "x-trace": "1"},
            "json": {"key": "k1", "admin_token": "t"}
        });
        let r = redacted(&v).to_string();
        for hidden in ["s3cr3t", "u:p@", "abc", "\"t\""] {
            assert!(!r.contains(hidden), "{hidden} in {r}");
        }
        assert!(
            r.contains("\"key\":\"k1\"") && r.contains("\"x-trace\":\"1\""),
            "{r}"
        );
    }

    #[test]
    fn triggers_fill_in_and_fire_as_configured() {
        let t = Trigger {
            check: "auth".into(),
            status: Status::Critical,
            summary: "key k1 failed 40 times".into(),
            run_id: "r1".into(),
        };
        let mut v = serde_json::json!({"text": "${trigger.check} is ${trigger.status}: ${trigger.summary}"});
        fill_trigger(&mut v, &t);
        assert_eq!(v["text"], "auth is critical: key k1 failed 40 times");

        let config = crate::config::Config::parse(
            "[[check]]\nname = \"auth\"\nplugin = \"hello\"\n\
             [[action]]\nname = \"a\"\nplugin = \"http-action\"\non = { check = \"auth\", status = [\"critical\"], state = \"every\", after = 2 }\n\
             [[action]]\nname = \"b\"\nplugin = \"http-action\"\non = { check = \"auth\", status = [\"critical\"], state = \"soft\" }\n\
             [[action]]\nname = \"c\"\nplugin = \"http-action\"\non = { check = \"auth\" }\n",
            "warden.toml",
            std::path::Path::new("/tmp"),
        )
        .unwrap();
        let [every, soft, hard] = [0, 1, 2].map(|i| config.actions[i].clone());
        let mut s = HashMap::new();
        let crit = Status::Critical;
        assert!(!fires(&every, crit, Status::Ok, None, &mut s));
        assert!(fires(&every, crit, crit, None, &mut s));
        assert!(fires(&every, crit, crit, None, &mut s));
        assert!(!fires(&every, Status::Ok, crit, None, &mut s));
        assert!(
            !fires(&every, crit, Status::Ok, None, &mut s),
            "the streak starts again"
        );
        assert!(fires(&soft, crit, Status::Ok, None, &mut s));
        assert!(!fires(&soft, crit, crit, None, &mut s));
        let t = |from, to| Some(Transition { from, to });
        assert!(fires(&hard, crit, crit, t(Status::Ok, crit), &mut s));
        assert!(
            fires(
                &hard,
                Status::Warning,
                crit,
                t(Status::Ok, Status::Warning),
                &mut s
            ),
            "warning and critical by default"
        );
        assert!(!fires(&hard, Status::Ok, crit, t(crit, Status::Ok), &mut s));
        assert!(!fires(&hard, crit, crit, None, &mut s));
    }

    #[test]
    fn bad_actions_name_the_field() {
        let all = crate::config::Config::parse(
            "[[check]]\nname = \"auth\"\nplugin = \"hello\"\n\
             [[action]]\nname = \"a\"\nplugin = \"http-action\"\non = { check = \"nope\", status = [\"bad\"] }\ncooldown = \"soon\"\nconfig = { x = \"${trigger.who}\" }\n\
             [[action]]\nname = \"a\"\nplugin = \"http-action\"\non = { check = \"auth\", after = 3 }\nmax_per_hour = 0\n\
             [[action]]\nname = \"b\"\nplugin = \"http-action\"\non = { check = \"nope\" }\n",
            "warden.toml",
            std::path::Path::new("/tmp"),
        )
        .unwrap_err()
        .to_string();
        for expected in [
            "warden.toml:7: action \"a\": on.status[0]: \"bad\" is not ok, warning, critical or unknown",
            "warden.toml:8: action \"a\": cooldown:",
            "action \"a\": config: config.x: ${trigger.who}: the trigger has ${trigger.check}, ${trigger.status}, ${trigger.summary}",
            "warden.toml:18: action \"b\": on.check: no check named \"nope\"",
            "action \"a\": name: another action has this name",
            "action \"a\": on.after: counts results only with state = \"every\"",
            "action \"a\": max_per_hour: must be at least 1",
        ] {
            assert!(all.contains(expected), "missing {expected:?} in:\n{all}");
        }
        let prod = crate::config::Config::parse(
            "[agent]\nprofile = \"production\"\n[api]\ntoken_env = \"HOME\"\n[[check]]\nname = \"auth\"\nplugin = \"hello\"\n\
             [[action]]\nname = \"a\"\nplugin = \"http-action\"\nmode = \"auto\"\non = { check = \"auth\" }\n",
            "warden.toml",
            std::path::Path::new("/tmp"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            prod.contains("action \"a\" runs auto without max_per_hour"),
            "{prod}"
        );
    }
}

//! Live configuration: `warden.toml` is read again on SIGHUP, when the
//! file changes (debounced by [`limits::CONFIG_DEBOUNCE`]) and on
//! `POST /v1/reload`. The whole file is validated first; on any error the
//! agent keeps running the configuration in force, logs every error with
//! its file and line, and shows the failure in `/v1/status` and
//! `warden_config_last_reload_successful` until a good file arrives.
//!
//! A good file is applied as a difference ([`Agent::reload`]): new checks
//! start at their next due time (a check that ran before under that name
//! keeps its history), removed ones are never dispatched again (a run in
//! flight finishes and is stored), changed ones keep their history, state,
//! findings and a run in flight, and are validated by their plugin again;
//! notifiers, routes, maintenance windows, the API token and retention
//! apply at once. Settings that need a restart (`[agent]` listen, plugin
//! and state directories, profile, `max_concurrent_runs`, `ca_file`,
//! `[api] cors_origins`, `[[plugin]]` pins) keep their running value and
//! are reported as such.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

use crate::agent::Agent;
use crate::config::{CheckConfig, Config, ReloadStatus};
use crate::limits;
use crate::live::{Check, Live};
use crate::store::now_ms;

/// What a reload changed.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct Applied {
    /// Checks added.
    pub added: Vec<String>,
    /// Checks removed.
    pub removed: Vec<String>,
    /// Checks whose config changed.
    pub changed: Vec<String>,
    /// Settings that need a restart.
    pub restart_needed: Vec<String>,
    /// The file was the one in force: nothing to do.
    pub unchanged: bool,
}

/// Whether two configs of a check say the same (their line numbers aside).
fn same(a: &CheckConfig, b: &CheckConfig) -> bool {
    let mut b = b.clone();
    (b.line, b.notify_line, b.depends_on_line) = (a.line, a.notify_line, a.depends_on_line);
    format!("{a:?}") == format!("{b:?}")
}

/// The settings `new` changes that only a restart applies, named as in
/// the file; `new` gets the running values back.
fn restart_needed(old: &Config, new: &mut Config) -> Vec<String> {
    let mut out = Vec::new();
    let (o, n) = (&old.agent, &mut new.agent);
    macro_rules! keep {
        ($($field:ident),*) => {$(
            if format!("{:?}", o.$field) != format!("{:?}", n.$field) {
                out.push(format!("[agent] {}", stringify!($field)));
                n.$field = o.$field.clone();
            }
        )*};
    }
    keep!(
        listen,
        plugin_dir,
        state_dir,
        profile,
        max_concurrent_runs,
        ca_file
    );
    if old.api.cors_origins != new.api.cors_origins {
        out.push("[api] cors_origins".into());
        new.api.cors_origins = old.api.cors_origins.clone();
    }
    if old.pins != new.pins {
        out.push("[[plugin]] pins".into());
        new.pins = old.pins.clone();
    }
    out
}

impl Agent {
    /// Reads the config file again and applies the difference (`why`:
    /// what asked, for the log). `Err`: every problem, nothing changed.
    pub async fn reload(self: &Arc<Self>, why: &str) -> Result<Applied, Vec<String>> {
        crate::systemd::reloading();
        let result = self.reload_inner(why).await;
        crate::systemd::notify("READY=1");
        result
    }

    async fn reload_inner(self: &Arc<Self>, why: &str) -> Result<Applied, Vec<String>> {
        let old = self.config();
        let now = now_ms();
        let Some(path) = old.path.clone() else {
            return Err(vec![
                "the agent runs on the embedded defaults: there is no file to reload (start it with -c warden.toml)".into(),
            ]);
        };
        let parsed = std::fs::read_to_string(&path)
            .map_err(|e| vec![format!("{}: cannot read: {e}", path.display())])
            .and_then(|text| {
                if crate::config::text_sha256(&text) == old.sha256 && self.reloads().last_ok {
                    return Ok(None);
                }
                let base = path.parent().unwrap_or(Path::new("."));
                Config::parse(&text, &path.display().to_string(), base)
                    .map(|mut c| {
                        c.path = Some(path.clone());
                        Some(c)
                    })
                    .map_err(|e| e.0.iter().map(|e| e.to_string()).collect())
            });
        let new = match parsed {
            Ok(None) => {
                return Ok(Applied {
                    unchanged: true,
                    ..Applied::default()
                });
            }
            Ok(Some(c)) => c,
            Err(errors) => {
                tracing::error!(
                    trigger = why,
                    errors = errors.len(),
                    "the configuration has errors; the one in force stays"
                );
                for e in &errors {
                    tracing::error!("{}", warden_text::escape::escape(e));
                }
                let mut s = self.reloads();
                s.last_ok = false;
                s.last_attempt_unix_ms = Some(now);
                s.errors = errors.clone();
                s.failures += 1;
                return Err(errors);
            }
        };
        let applied = self.apply(new, now);
        tracing::info!(
            trigger = why,
            added = ?applied.added,
            removed = ?applied.removed,
            changed = ?applied.changed,
            restart_needed = ?applied.restart_needed,
            "configuration reloaded"
        );
        if !applied.restart_needed.is_empty() {
            tracing::warn!(settings = ?applied.restart_needed, "these settings changed in the file but keep their running value until a restart");
        }
        Ok(applied)
    }

    /// Puts `new` in force.
    fn apply(self: &Arc<Self>, mut new: Config, now: i64) -> Applied {
        let old = self.config();
        let restart = restart_needed(&old, &mut new);
        let old_checks = self.checks();
        let mut applied = Applied {
            restart_needed: restart.clone(),
            ..Applied::default()
        };
        let mut checks = BTreeMap::new();
        for c in &new.checks {
            match old_checks.get(&c.name) {
                None => applied.added.push(c.name.clone()),
                Some(o) if !same(&o.config, c) => applied.changed.push(c.name.clone()),
                Some(_) => {}
            }
            checks.insert(c.name.clone(), Check::new(c, &self.registry));
        }
        applied.removed = old_checks
            .keys()
            .filter(|n| !checks.contains_key(*n))
            .cloned()
            .collect();
        // What checks added back had before (history, health, costs).
        let records = if applied.added.is_empty() {
            Default::default()
        } else {
            self.store.check_records().unwrap_or_else(|e| {
                tracing::error!(error = %format!("{e:#}"), "cannot read the stored bookkeeping of added checks; they start afresh");
                Default::default()
            })
        };
        let told = if applied.added.is_empty() {
            Default::default()
        } else {
            self.store.told().unwrap_or_default()
        };
        self.alerting.set(&new);
        self.silences.set_windows(new.maintenance.clone());
        {
            let mut core = self.core();
            for name in &applied.removed {
                core.remove(name);
            }
        }
        for name in applied.removed.iter().chain(&applied.changed) {
            self.forget_validation(name);
        }
        let new = Arc::new(new);
        self.set_config(new.clone(), checks);
        {
            let checks = self.checks();
            let mut live = self.live();
            for name in &applied.removed {
                live.remove(name);
            }
            for name in &applied.added {
                let record = records.get(name).cloned().unwrap_or_default();
                if let Some(took) = record.last_run {
                    self.record_cost(name, took);
                }
                live.insert(
                    name.clone(),
                    Live::from_record(record, told.get(name).copied()),
                );
            }
            drop(live);
            let mut core = self.core();
            for name in &applied.added {
                if let Some(c) = checks.get(name) {
                    let last_due = records.get(name).and_then(|r| r.last_due_ms);
                    core.add(c.slot(), last_due, now);
                }
            }
            for name in &applied.changed {
                if let Some(c) = checks.get(name) {
                    core.update(c.slot(), now);
                }
            }
        }
        self.wake_scheduler();
        let mut s = self.reloads();
        *s = ReloadStatus {
            source: new.source.clone(),
            sha256: new.sha256.clone(),
            loaded_unix_ms: now,
            last_ok: true,
            last_attempt_unix_ms: Some(now),
            errors: Vec::new(),
            restart_needed: restart,
            reloads: s.reloads + 1,
            failures: s.failures,
        };
        applied
    }

    /// How the configuration in force came to be.
    pub(crate) fn reloads(&self) -> std::sync::MutexGuard<'_, ReloadStatus> {
        self.reloads.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Reloads on SIGHUP and when the config file changes, until the process
/// ends. The file is watched through its directory (editors replace it by
/// renaming), and a burst of events is one reload once the file has been
/// quiet for [`limits::CONFIG_DEBOUNCE`].
pub fn watch(agent: &Arc<Agent>) {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::hangup()) {
        Ok(mut hup) => {
            let agent = agent.clone();
            tokio::spawn(async move {
                while hup.recv().await.is_some() {
                    let _ = agent.reload("SIGHUP").await;
                }
            });
        }
        Err(e) => tracing::warn!(error = %e, "cannot handle SIGHUP; it will stop the agent"),
    }
    let Some(path) = agent.config().path.clone() else {
        return;
    };
    if let Err(e) = watch_file(agent.clone(), path.clone()) {
        tracing::warn!(file = %path.display(), error = %e, "cannot watch the config file; reload with SIGHUP or POST /v1/reload");
    }
}

fn watch_file(agent: Arc<Agent>, path: PathBuf) -> notify::Result<()> {
    use notify::Watcher as _;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let name = path.file_name().map(|n| n.to_os_string());
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event
            && event
                .paths
                .iter()
                .any(|p| p.file_name().map(|n| n.to_os_string()) == name)
        {
            let _ = tx.send(());
        }
    })?;
    watcher.watch(&dir, notify::RecursiveMode::NonRecursive)?;
    tokio::spawn(async move {
        // The watcher lives as long as this task.
        let _watcher = watcher;
        while rx.recv().await.is_some() {
            // Debounce: wait until no event came for the whole interval.
            loop {
                match tokio::time::timeout(limits::CONFIG_DEBOUNCE, rx.recv()).await {
                    Ok(Some(())) => continue,
                    Ok(None) => return,
                    Err(_) => break,
                }
            }
            let _ = agent.reload("the file changed").await;
        }
    });
    Ok(())
}

//! The agent's lifecycle, in one place: start, validate every check's
//! config with its plugin, listen, schedule, watch the plugin directory,
//! apply retention, serve the API until SIGTERM or Ctrl-C, then stop
//! scheduling, drain runs in flight within the grace period and flush the
//! store.

use std::sync::Arc;

use anyhow::{Context as _, Result};

use crate::agent::Agent;
use crate::config::Config;
use crate::limits;

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

impl Agent {
    /// Runs the agent for `config` until a shutdown signal; an error means
    /// it could not start.
    pub async fn serve(config: Config) -> Result<()> {
        let listen = config.agent.listen;
        crate::listener::raise_fd_limit();
        tracing::info!(config = %config.source, profile = ?config.agent.profile, "starting");
        let agent = Agent::start(config).await.context("cannot start")?;
        // Plugins compile in the background: the API answers meanwhile;
        // each check waits for its own plugin. Once all are in, every
        // check's config is validated with its plugin, and schedules taken
        // from plugins' defaults follow each as it loads.
        let loaded = agent.clone();
        tokio::spawn(async move {
            let mut ticks = loaded.registry.subscribe();
            loop {
                loaded.refresh_default_schedules();
                if loaded.registry.compiling().is_empty() {
                    break;
                }
                if ticks.changed().await.is_err() {
                    break;
                }
            }
            loaded.validate_checks().await;
            // Ready for systemd once every plugin is in and the scheduler
            // runs (as /readyz says).
            while !loaded.scheduling() {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            crate::systemd::notify("READY=1");
        });
        // SIGHUP, the file changing and `POST /v1/reload` reload it.
        crate::reload::watch(&agent);
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let scheduler = tokio::spawn(agent.clone().run_scheduler(stopped.clone()));
        // Firings approved before a stop run now, once.
        tokio::spawn(agent.clone().resume_actions());
        let _watcher = match agent.registry.clone().watch() {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::error!(dir = %agent.registry.dir().display(), error = %e, "cannot watch the plugin directory; restart to pick up new plugins");
                None
            }
        };
        let retainer = agent.clone();
        let mut retention_stop = stopped.clone();
        tokio::spawn(async move {
            loop {
                // As configured now (a reload may change it).
                let config = retainer.config();
                retainer.store.retain(
                    config.agent.keep_runs,
                    config.agent.keep_days,
                    config.agent.keep_rollup_days,
                );
                tokio::select! {
                    _ = tokio::time::sleep(limits::RETENTION_INTERVAL) => {}
                    _ = retention_stop.changed() => break,
                }
            }
        });
        // Notifications: the outbox's delivery, and Alertmanager reminded
        // of what still fires.
        tokio::spawn(crate::alerting::deliver(
            agent.alerting.clone(),
            agent.store.clone(),
            stopped.clone(),
        ));
        let refresher = agent.clone();
        let mut refresh_stop = stopped.clone();
        tokio::spawn(async move {
            let mut ticks = 0u32;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(limits::NOTICE_TICK) => {}
                    _ = refresh_stop.changed() => break,
                }
                let now = crate::store::now_ms();
                refresher.notice_tick(now);
                tokio::spawn(refresher.clone().action_tick(now));
                ticks += 1;
                if ticks >= crate::notices::TICKS_PER_RESEND {
                    ticks = 0;
                    crate::alerting::refresh(&refresher.alerting, refresher.firing_alerts());
                    refresher.queue_reminders(now);
                }
            }
        });
        tracing::info!(
            "listening on http://{listen} ({} checks, {} plugins)",
            agent.checks().len(),
            agent.registry.views().len()
        );
        let app = crate::api::router(agent.clone());
        let mut server = tokio::spawn(crate::listener::serve(
            listener,
            app,
            agent.clone(),
            stopped.clone(),
        ));
        let server_ended = tokio::select! {
            _ = shutdown_signal() => false,
            _ = &mut server => {
                tracing::error!("the API server stopped unexpectedly");
                true
            }
        };
        tracing::info!("stopping: no new runs; waiting for runs in flight");
        crate::systemd::notify("STOPPING=1");
        let _ = stop.send(true);
        // One deadline from the signal, whatever clients do: a client that
        // never finishes its request does not hold the agent up.
        let deadline = tokio::time::Instant::now() + agent.config().agent.shutdown_grace;
        if !server_ended && tokio::time::timeout_at(deadline, server).await.is_err() {
            tracing::warn!("API clients still connected after the shutdown grace period; closing");
        }
        let _ = scheduler.await;
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if !agent.drain(left).await {
            tracing::warn!(
                in_flight = agent.in_flight(),
                "runs still in flight after the shutdown grace period; they are abandoned"
            );
        }
        agent.store.flush();
        tracing::info!("stopped");
        Ok(())
    }

    /// Asks each check's plugin to validate its config; a refusal is
    /// logged, and the check's runs end `unknown` with it, unrun.
    async fn validate_checks(self: &Arc<Self>) {
        for check in self.checks().values() {
            if let Some(plugin) = self.registry.get(&check.config.plugin) {
                self.refusal(check, &plugin).await;
            }
        }
    }
}

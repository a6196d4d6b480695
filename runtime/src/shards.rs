//! Sharded runs ([`Runtime::run_sharded`]): one run of a check split
//! across instances that run at once, each told by `host.part` which
//! share of the work is its own, then one more instance told to merge
//! their reports into the run's. Only a plugin that imports `host.part`
//! ([`Plugin::shardable`]) is split; any other runs whole.
//!
//! Shards share the work out as they go through `host.claim`: the first
//! to claim a key (a file) takes it, so a shard held up by one costly
//! unit leaves the rest to the others.
//!
//! Every part has the check's grants, memory limit and state, and the
//! run's one deadline: the shards and the merge together finish within
//! the check's timeout. A shard that fails fails the run (`unknown`,
//! naming the shard), and the others are stopped at once: a report merged
//! from some of the shares would claim what was not checked.

use std::sync::Arc;
use std::time::Instant;

use tokio::task::JoinSet;
use tracing::Instrument as _;
use warden_text::units::format_duration;

use crate::bindings::host::{RunPart, Shard};
use crate::limits;
use crate::part::{Claims, Share};
use crate::report::RunOutcome;
use crate::runtime::{Plugin, RunRequest, Runtime};

/// What one shard sends back: its report as written, or why it failed,
/// and its HTTP accounting.
type ShardResult = (Result<crate::bindings::wit::Report, String>, RunOutcome);

impl Runtime {
    /// Runs `req` split into `count` shards running at once (on the
    /// current tokio runtime's threads, or where [`Runtime::place_shards`]
    /// says), then merges them. With `count`
    /// below 2, or a plugin that cannot be split, it is [`Runtime::run`].
    /// Never fails: every failure is an `unknown` outcome with its reason.
    pub async fn run_sharded(
        self: &Arc<Self>,
        plugin: &Arc<Plugin>,
        req: &RunRequest,
        count: u32,
    ) -> RunOutcome {
        if count < 2 || !plugin.shardable {
            return self.run(plugin, req).await;
        }
        let count = count.min(limits::MAX_SHARDS);
        let outcome = plugin.begin(req);
        let span = tracing::info_span!("run", check = %req.check, run_id = %outcome.run_id, plugin = %plugin.info.name, shards = count);
        self.sharded(plugin, req, count, outcome)
            .instrument(span)
            .await
    }

    async fn sharded(
        self: &Arc<Self>,
        plugin: &Arc<Plugin>,
        req: &RunRequest,
        count: u32,
        mut outcome: RunOutcome,
    ) -> RunOutcome {
        let t0 = Instant::now();
        let timeout = req.timeout.min(limits::MAX_TIMEOUT);
        let mut tasks = JoinSet::new();
        let claims = Arc::new(Claims::default());
        for index in 0..count {
            let (runtime, plugin, req) = (self.clone(), plugin.clone(), req.clone());
            let share = Share {
                part: RunPart::Shard(Shard { index, count }),
                claims: Some(claims.clone()),
            };
            let work = async move {
                let mut part = plugin.begin(&req);
                let result = runtime
                    .execute(&plugin, &req, share, timeout, &mut part)
                    .await
                    .map(|(_, raw)| raw.expect("a shard's report is kept as written"));
                (index, (result, part))
            };
            match self.shard_placer.get() {
                Some(place) => tasks.spawn_on(work.in_current_span(), &place()),
                None => tasks.spawn(work.in_current_span()),
            };
        }
        let mut reports: Vec<Option<crate::bindings::wit::Report>> = vec![None; count as usize];
        let mut failure: Option<String> = None;
        while let Some(joined) = tasks.join_next().await {
            let (index, (result, part)): (u32, ShardResult) = match joined {
                Ok(done) => done,
                Err(e) => {
                    failure.get_or_insert_with(|| {
                        format!("a shard failed in the agent (a bug in Warden): {e}")
                    });
                    tasks.abort_all();
                    continue;
                }
            };
            outcome.http_requests += part.http_requests;
            outcome.refusals.extend(part.refusals);
            match result {
                Ok(report) => reports[index as usize] = Some(report),
                Err(reason) => {
                    failure
                        .get_or_insert_with(|| format!("shard {} of {count}: {reason}", index + 1));
                    tasks.abort_all();
                }
            }
        }
        outcome.shards = Some(count);
        if let Some(reason) = failure {
            outcome.end(Err(reason), t0.elapsed());
            return outcome;
        }
        let left = timeout.saturating_sub(t0.elapsed());
        if left.is_zero() {
            outcome.end(
                Err(format!(
                    "timed out after {} ({}) before the shards' reports were merged",
                    format_duration(timeout),
                    limits::RUN_DEADLINE
                )),
                t0.elapsed(),
            );
            return outcome;
        }
        let reports = reports.into_iter().flatten().collect();
        let result = self
            .execute(
                plugin,
                req,
                Share {
                    part: RunPart::Merge(reports),
                    claims: None,
                },
                left,
                &mut outcome,
            )
            .await
            .map(|(report, _)| report)
            .map_err(|reason| format!("merging {count} shards: {reason}"));
        outcome.end(result, t0.elapsed());
        outcome
    }
}

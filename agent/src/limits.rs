//! Every default and cap of the agent, defined once: the runtime's own
//! (per-run timeouts, memory, report caps; re-exported from
//! [`warden_runtime::limits`]) and the agent's (API address, concurrency,
//! retention, store batching, plugin-directory debounce). Config parsing,
//! the CLI and the docs refer to these; none repeats a number.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

pub use warden_runtime::limits::*;

/// Where the API listens unless `[agent] listen` says otherwise.
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 7878));
/// The plugin directory, relative to the config file.
pub const DEFAULT_PLUGIN_DIR: &str = "plugins";
/// The state directory (store, compiled-code cache), relative to the
/// config file, or to the working directory for `warden check`.
pub const DEFAULT_STATE_DIR: &str = ".warden";
/// Runs in flight at once, across all checks.
pub const DEFAULT_MAX_CONCURRENT_RUNS: usize = 16;
/// Largest `max_concurrent_runs` (the pooling allocator's capacity).
pub const MAX_CONCURRENT_RUNS: usize = MAX_CONCURRENT_INSTANCES as usize;
/// Runs kept per check.
pub const DEFAULT_KEEP_RUNS: usize = 1000;
/// Days of runs, output history, resolved findings and ended action
/// firings kept.
pub const DEFAULT_KEEP_DAYS: u64 = 30;
/// Days of hourly and daily rollups kept, unless `keep_rollup_days` says
/// otherwise: over a year, for 90-day bars and yearly uptime.
pub const DEFAULT_KEEP_ROLLUP_DAYS: u64 = 400;
/// How often retention runs.
pub const RETENTION_INTERVAL: Duration = Duration::from_secs(600);
/// How long runs in flight may finish after SIGTERM.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// The longest `shutdown_grace` (a run's longest timeout).
pub const MAX_SHUTDOWN_GRACE: Duration = MAX_TIMEOUT;
/// The most days of history kept.
pub const MAX_KEEP_DAYS: u64 = 36_500;

/// A check's interval when neither it nor its plugin names a schedule.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
/// Longest check name.
pub const MAX_CHECK_NAME_BYTES: usize = 64;
/// Most retries after an `unknown` result.
pub const MAX_RETRIES: u32 = 10;
/// Consecutive non-OK results before a problem is hard (default).
pub const DEFAULT_FAILURE_THRESHOLD: u32 = 1;
/// Consecutive OK results before a hard problem recovers (default).
pub const DEFAULT_SUCCESS_THRESHOLD: u32 = 1;
/// The largest splay a cron schedule gets by default (an interval's is
/// the interval).
pub const DEFAULT_CRON_SPLAY: Duration = Duration::from_secs(30);
/// The shortest `@every` interval.
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);
/// The longest `@every` interval, and the largest splay.
pub const MAX_INTERVAL: Duration = Duration::from_secs(366 * 86_400);
/// Backoff before the first retry after an `unknown` result; it doubles
/// with each retry up to [`MAX_RETRY_BACKOFF`].
pub const RETRY_BACKOFF: Duration = Duration::from_secs(1);
/// Longest backoff between retries.
pub const MAX_RETRY_BACKOFF: Duration = Duration::from_secs(60);
/// Longest the scheduler sleeps between polls.
pub const SCHEDULER_MAX_SLEEP: Duration = Duration::from_secs(60);

/// How long a plugin file must be quiet before it is loaded.
pub const PLUGIN_DEBOUNCE: Duration = Duration::from_millis(400);
/// How often the plugin watcher looks at files waiting for quiet.
pub const PLUGIN_WATCH_TICK: Duration = Duration::from_millis(100);

/// Largest API request body.
pub const MAX_API_BODY_BYTES: usize = 64 << 10;
/// Largest request head (request line and headers) the API reads; a
/// larger one is answered 431.
pub const MAX_API_HEADER_BYTES: usize = 16 << 10;
/// API connections open at once; more are answered 503 and closed.
pub const MAX_API_CONNECTIONS: usize = 256;
/// How long a client has to send a request's headers, and how long an
/// idle keep-alive connection stays open.
pub const API_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client has to send a request's body.
pub const API_BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `/readyz` reports file-descriptor exhaustion after the last
/// failure.
pub const FD_EXHAUSTION_WINDOW: Duration = Duration::from_secs(10);
/// Most rows one `/v1/runs` page returns (and its default).
pub const MAX_RUNS_PAGE: usize = 1000;
/// Rows of a `/v1/runs` page unless `limit` says otherwise.
pub const DEFAULT_RUNS_PAGE: usize = 50;

/// How long a notifier's request may take unless its `timeout` says.
pub const NOTIFY_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest `timeout` a notifier may set.
pub const MAX_NOTIFY_TIMEOUT: Duration = Duration::from_secs(60);
/// PagerDuty's Events API v2 endpoint.
pub const PAGERDUTY_EVENTS_URL: &str = "https://events.pagerduty.com/v2/enqueue";
/// Notifications read from the outbox per pass of the delivery loop.
pub const NOTIFY_BATCH: usize = 256;
/// Attempts in flight per notifier (a target that is down holds these).
pub const NOTIFY_IN_FLIGHT_PER_NOTIFIER: usize = 8;
/// Longest wait between attempts at one notification.
pub const NOTIFY_MAX_BACKOFF: Duration = Duration::from_secs(300);
/// Attempts before a notification is given up (about two hours at the
/// longest backoff).
pub const NOTIFY_MAX_ATTEMPTS: u32 = 30;
/// How often the delivery loop looks for due notifications when nothing
/// wakes it.
pub const NOTIFY_POLL: Duration = Duration::from_secs(1);
/// Delivered and failed notifications kept in the store.
pub const NOTIFY_KEEP: usize = 10_000;
/// Shortest `remind_every`.
pub const MIN_REMIND_EVERY: Duration = Duration::from_secs(300);
/// How often firing alerts are re-sent to Alertmanager (and reminders
/// looked for).
pub const ALERTMANAGER_RESEND: Duration = Duration::from_secs(60);

/// Most store jobs committed in one transaction.
pub const STORE_BATCH: usize = 512;
/// How long a scheduled run's record waits for others to share its
/// commit (a manual run's, a state write or a flush does not wait): at a
/// few hundred runs a second, one transaction per 20 ms instead of two per
/// run (docs/BENCHMARKS.md, issue 15).
pub const STORE_LINGER: Duration = Duration::from_millis(20);
/// How long shutdown waits for the store writer to commit what it has.
pub const STORE_FLUSH_TIMEOUT: Duration = Duration::from_secs(30);
/// While writes fail, how often the writer tries a write of its own to
/// find out that they go through again.
pub const STORE_PROBE_INTERVAL: Duration = Duration::from_secs(2);
/// How long SQLite waits on a locked database.
pub const STORE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Matchers in one silence.
pub const MAX_SILENCE_MATCHERS: usize = 16;
/// Longest matcher pattern, comment or author of a silence or an
/// acknowledgement.
pub const MAX_SILENCE_TEXT: usize = 1024;
/// Silences in force or to come at once.
pub const MAX_SILENCES: usize = 1000;
/// Fingerprints in one `POST /v1/findings/ack`.
pub const MAX_ACKS_PER_REQUEST: usize = 1000;
/// How often the agent looks for notifications that quiet or flapping
/// held back and that are now due (a window's end is notified within it).
pub const NOTICE_TICK: Duration = Duration::from_secs(1);
/// How long the config file must be quiet after a change before it is
/// reloaded.
pub const CONFIG_DEBOUNCE: Duration = Duration::from_millis(500);
/// Plugins compiled at once in the background at start: all cores but
/// one (kept for the API and the scheduler), at least one, at most four.
pub fn plugin_load_parallelism() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get().saturating_sub(1))
        .clamp(1, 4)
}

/// How long a pending `[[action]]` waits for approval by default.
pub const DEFAULT_APPROVE_WITHIN: Duration = Duration::from_secs(3600);
/// The least time between two runs of one action, by default.
pub const DEFAULT_ACTION_COOLDOWN: Duration = Duration::from_secs(300);
/// Firings `GET /v1/actions` lists at most.
pub const MAX_ACTIONS_LISTED: usize = 500;

//! Every default and cap the runtime enforces, defined once.
//!
//! A check may lower or raise its own `timeout` and `memory` within the
//! maxima here; the other caps are fixed for all plugins.

use std::time::Duration;

/// Default wall-clock budget of a run.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest timeout a check may ask for.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(3600);
/// Default linear-memory limit of a plugin instance.
pub const DEFAULT_MEMORY: u64 = 64 << 20;
/// Largest memory limit a check may ask for (also the pooling allocator's
/// slot size).
pub const MAX_MEMORY: u64 = 1 << 30;
/// Most shards one run may be split into (a check's `shards`).
pub const MAX_SHARDS: u32 = 64;
/// Most keys one sharded run may claim (`host.claim`, 16 bytes each);
/// past it a key goes to the shard its hash names.
pub const MAX_CLAIMS: usize = 4 << 20;
/// Budget for `describe` and `validate`, which must be quick.
pub const DESCRIBE_TIMEOUT: Duration = Duration::from_secs(5);
/// How the run's deadline is named in errors.
pub const RUN_DEADLINE: &str = "the check's timeout";
/// How the `describe`/`validate` deadline is named in errors.
pub const DESCRIBE_DEADLINE: &str = "the limit for describe and validate";

/// How often the epoch advances; a runaway plugin is stopped within one
/// tick of its deadline.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);
/// Grace added to a run's deadline for host calls (a blocked HTTP read)
/// that epoch interruption cannot reach.
pub const HOST_CALL_GRACE: Duration = Duration::from_millis(250);

/// Report caps: a report beyond any of them ends the run as `unknown`.
pub const MAX_SUMMARY_BYTES: usize = 1024;
/// Most metrics in one report.
pub const MAX_METRICS: usize = 1000;
/// Most findings in one report.
pub const MAX_FINDINGS: usize = 10_000;
/// Most outputs in one report.
pub const MAX_OUTPUTS: usize = 64;
/// Longest free-text string in a report (messages, locations, label,
/// attribute and output values).
pub const MAX_FIELD_BYTES: usize = 4096;
/// Longest name in a report: metric names, label and attribute names,
/// finding rules, output keys.
pub const MAX_NAME_BYTES: usize = 256;
/// Longest metric unit.
pub const MAX_UNIT_BYTES: usize = 64;
/// Most labels on one metric.
pub const MAX_LABELS: usize = 32;
/// Most attributes on one finding.
pub const MAX_ATTRIBUTES: usize = 64;

/// Plugin stdout/stderr kept per run (each); the rest is dropped and
/// counted.
pub const MAX_STDIO_BYTES: usize = 64 << 10;
/// The end of a run's stderr kept with the run (its traceback or error
/// message), whatever came before.
pub const STDERR_TAIL_BYTES: usize = 4 << 10;
/// Components this large or larger (a Python or JS runtime: 13–18 MiB; Rust
/// plugins are 0.3–2.5 MiB) are compiled with Winch, not Cranelift: a
/// first load in a fifth of the CPU time, slower code.
pub const LARGE_COMPONENT_BYTES: usize = 8 << 20;
/// Most `host.log` records per run; the rest are dropped and counted.
pub const MAX_LOG_RECORDS: usize = 1000;

/// Longest state key.
pub const MAX_STATE_KEY_BYTES: usize = 256;
/// Largest state value.
pub const MAX_STATE_VALUE_BYTES: usize = 16 << 20;
/// A check's plugin state, keys and values, unless it says otherwise
/// (`state_bytes`).
pub const DEFAULT_STATE_BYTES: u64 = 32 << 20;
/// Keys in a check's plugin state, unless it says otherwise
/// (`state_keys`).
pub const DEFAULT_STATE_KEYS: u64 = 1024;
/// The largest `state_bytes` a check may ask for.
pub const MAX_STATE_BYTES: u64 = 256 << 20;
/// The largest `state_keys` a check may ask for.
pub const MAX_STATE_KEYS: u64 = 100_000;

/// Most resources (handles: HTTP fields, requests, bodies, streams, open
/// files, pollables) a run may hold at once.
pub const MAX_RESOURCES_PER_RUN: usize = 1024;
/// Largest set of HTTP fields (headers) a plugin may build, in host
/// memory (roughly twice its size on the wire). With
/// [`MAX_RESOURCES_PER_RUN`] this bounds what fields can make the host hold.
pub const MAX_HTTP_FIELDS_BYTES: usize = 16 << 10;
/// Largest write into an outgoing HTTP body, and so what one unsent body
/// can buffer on the host (two chunks).
pub const HTTP_BODY_CHUNK_BYTES: usize = 16 << 10;
/// Most data the plugin may pass to the host in one call (a report, a
/// state value, a log line): wasmtime's hostcall fuel.
pub const MAX_HOSTCALL_BYTES: usize = 64 << 20;
/// Most outgoing HTTP requests in one run.
pub const MAX_HTTP_REQUESTS_PER_RUN: u32 = 1000;
/// Largest HTTP response body a plugin may read. Buffering it (with Vec
/// doubling) must fit well inside [`DEFAULT_MEMORY`].
pub const MAX_HTTP_BODY_BYTES: u64 = 8 << 20;
/// Longest a TCP connect + TLS handshake may take.
pub const HTTP_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest any one request may take, first byte to last.
pub const HTTP_TOTAL_TIMEOUT: Duration = Duration::from_secs(60);

/// Most elements a plugin's table may grow to.
pub const MAX_TABLE_ELEMENTS: usize = 1_000_000;

/// Most bytes of compiled code kept in the on-disk cache; the least
/// recently used entries go first.
pub const MAX_CACHE_BYTES: u64 = 1 << 30;

/// Most plugin instances alive at once (pooling allocator capacity).
pub const MAX_CONCURRENT_INSTANCES: u32 = 256;

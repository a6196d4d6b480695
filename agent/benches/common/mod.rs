//! Helpers shared by the bench binaries.

#![allow(dead_code)] // each bench uses a subset

/// CPU seconds (user + system) of process `pid` ("self" for this one),
/// from `/proc/<pid>/stat` (clock ticks of 100 Hz).
pub fn cpu_seconds(pid: &str) -> f64 {
    stat_seconds(pid, 11, 12)
}

/// CPU seconds of this process's waited-for children.
pub fn children_cpu_seconds() -> f64 {
    stat_seconds("self", 13, 14)
}

/// Fields `a` + `b` (after the command name) of `/proc/<pid>/stat`, in
/// seconds.
fn stat_seconds(pid: &str, a: usize, b: usize) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(a) + ticks(b)) / 100.0
}

/// The `p` quantile of sorted samples.
pub fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// `name` from the environment as a number, else `default`.
pub fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// A tokio runtime with two worker threads (the machine the figures are
/// taken on has two cores).
pub fn two_threads() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

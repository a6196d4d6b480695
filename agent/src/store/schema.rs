//! The store's schema, its version, and the upgrades from older versions.
//!
//! Tables: `runs` (every run), `findings` (de-duplicated by check and
//! fingerprint, with first/last seen and resolution), `outputs` and
//! `output_history`, `check_status` (the check's health from
//! [`crate::health`] plus scheduler bookkeeping), `check_state` (the
//! plugins' key/value state), `outbox` (notifications), `silences`,
//! `finding_acks`, `rollups` (hourly and daily aggregates per check,
//! [`super::rollups`]), `incidents` and `incident_notes`
//! ([`super::incidents`]), `actions` ([`super::actions`]).

use std::path::Path;

use anyhow::{Context as _, Result};
use rusqlite::Connection;

/// The version this agent writes.
pub const SCHEMA_VERSION: i64 = 6;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS check_state (
    check_name TEXT NOT NULL,
    key        TEXT NOT NULL,
    value      TEXT NOT NULL,
    updated_ms INTEGER NOT NULL,
    PRIMARY KEY (check_name, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS runs (
    id            INTEGER PRIMARY KEY,
    run_id        TEXT NOT NULL,
    check_name    TEXT NOT NULL,
    plugin        TEXT NOT NULL,
    plugin_sha256 TEXT NOT NULL,
    scheduled_ms  INTEGER NOT NULL,
    started_ms    INTEGER NOT NULL,
    finished_ms   INTEGER NOT NULL,
    duration_s    REAL NOT NULL,
    attempt       INTEGER NOT NULL,
    manual        INTEGER NOT NULL,
    status        TEXT NOT NULL,
    summary       TEXT NOT NULL,
    error         TEXT,
    metrics       TEXT NOT NULL,
    findings      TEXT NOT NULL,
    outputs       TEXT NOT NULL,
    refusals      TEXT NOT NULL,
    http_requests INTEGER NOT NULL DEFAULT 0,
    shards        INTEGER,
    stderr        TEXT
);
CREATE INDEX IF NOT EXISTS runs_by_check ON runs (check_name, id);
CREATE INDEX IF NOT EXISTS runs_by_time ON runs (finished_ms);
CREATE TABLE IF NOT EXISTS findings (
    check_name    TEXT NOT NULL,
    fingerprint   TEXT NOT NULL,
    rule          TEXT NOT NULL,
    severity      TEXT NOT NULL,
    message       TEXT NOT NULL,
    location      TEXT,
    attributes    TEXT NOT NULL,
    first_seen_ms INTEGER NOT NULL,
    last_seen_ms  INTEGER NOT NULL,
    resolved_ms   INTEGER,
    last_run_id   TEXT NOT NULL,
    PRIMARY KEY (check_name, fingerprint)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS outputs (
    check_name TEXT NOT NULL,
    key        TEXT NOT NULL,
    value      TEXT NOT NULL,
    updated_ms INTEGER NOT NULL,
    PRIMARY KEY (check_name, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS output_history (
    id         INTEGER PRIMARY KEY,
    check_name TEXT NOT NULL,
    key        TEXT NOT NULL,
    value      TEXT NOT NULL,
    changed_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    id           INTEGER PRIMARY KEY,
    notifier     TEXT NOT NULL,
    target       INTEGER NOT NULL,
    check_name   TEXT NOT NULL,
    event        TEXT NOT NULL,
    severity     TEXT NOT NULL,
    dedup_key    TEXT NOT NULL,
    body         TEXT NOT NULL,
    created_ms   INTEGER NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_ms      INTEGER NOT NULL,
    state        TEXT NOT NULL,
    delivered_ms INTEGER,
    last_error   TEXT
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (state, next_ms);
CREATE INDEX IF NOT EXISTS outbox_order ON outbox (check_name, notifier, target, id) WHERE state = 'pending';
CREATE TABLE IF NOT EXISTS silences (
    id         INTEGER PRIMARY KEY,
    matchers   TEXT NOT NULL,
    starts_ms  INTEGER NOT NULL,
    ends_ms    INTEGER NOT NULL,
    comment    TEXT NOT NULL,
    author     TEXT NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS finding_acks (
    check_name  TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    comment     TEXT NOT NULL,
    author      TEXT NOT NULL,
    acked_ms    INTEGER NOT NULL,
    PRIMARY KEY (check_name, fingerprint)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rollups (
    check_name    TEXT NOT NULL,
    resolution_s  INTEGER NOT NULL,
    bucket_ms     INTEGER NOT NULL,
    runs_ok       INTEGER NOT NULL,
    runs_warning  INTEGER NOT NULL,
    runs_critical INTEGER NOT NULL,
    runs_unknown  INTEGER NOT NULL,
    duration_sum  REAL NOT NULL,
    duration_max  REAL NOT NULL,
    durations     BLOB NOT NULL,
    latencies     BLOB NOT NULL,
    PRIMARY KEY (check_name, resolution_s, bucket_ms)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS rollups_by_time ON rollups (bucket_ms);
CREATE TABLE IF NOT EXISTS incidents (
    id         INTEGER PRIMARY KEY,
    check_name TEXT NOT NULL,
    severity   TEXT NOT NULL,
    worst      TEXT NOT NULL,
    started_ms INTEGER NOT NULL,
    ended_ms   INTEGER,
    summary    TEXT NOT NULL,
    run_id     TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS incidents_by_check ON incidents (check_name, id);
CREATE TABLE IF NOT EXISTS incident_notes (
    id          INTEGER PRIMARY KEY,
    incident_id INTEGER NOT NULL,
    note        TEXT NOT NULL,
    author      TEXT NOT NULL,
    created_ms  INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS notes_by_incident ON incident_notes (incident_id, id);
CREATE TABLE IF NOT EXISTS actions (
    id              INTEGER PRIMARY KEY,
    action          TEXT NOT NULL,
    check_name      TEXT NOT NULL,
    plugin          TEXT NOT NULL,
    state           TEXT NOT NULL,
    dry_run         INTEGER NOT NULL,
    idempotency_key TEXT NOT NULL,
    trigger_status  TEXT NOT NULL,
    trigger_summary TEXT NOT NULL,
    trigger_run_id  TEXT NOT NULL,
    config          TEXT NOT NULL,
    created_ms      INTEGER NOT NULL,
    expires_ms      INTEGER,
    decided_by      TEXT,
    decided_ms      INTEGER,
    started_ms      INTEGER,
    finished_ms     INTEGER,
    result_status   TEXT,
    result_summary  TEXT,
    verify_status   TEXT,
    verify_summary  TEXT,
    reason          TEXT
);
CREATE INDEX IF NOT EXISTS actions_by_name ON actions (action, id);
CREATE INDEX IF NOT EXISTS actions_by_state ON actions (state);
CREATE TABLE IF NOT EXISTS check_status (
    check_name       TEXT PRIMARY KEY,
    state            TEXT NOT NULL,
    last_due_ms      INTEGER,
    last_run_id      TEXT,
    runs_ok          INTEGER NOT NULL DEFAULT 0,
    runs_warning     INTEGER NOT NULL DEFAULT 0,
    runs_critical    INTEGER NOT NULL DEFAULT 0,
    runs_unknown     INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
";

/// Upgrades from older schema versions, in order: `MIGRATIONS[v - 1]`
/// takes a store from version `v` to `v + 1`.
const MIGRATIONS: &[&str] = &[
    "ALTER TABLE runs ADD COLUMN http_requests INTEGER NOT NULL DEFAULT 0;",
    // 2 -> 3: `rollups`, created by SCHEMA and filled from the runs by
    // `rollups::prepare`.
    "",
    // 3 -> 4: how many shards a run was split into.
    "ALTER TABLE runs ADD COLUMN shards INTEGER;",
    // 4 -> 5: the end of the plugin's stderr.
    "ALTER TABLE runs ADD COLUMN stderr TEXT;",
    // 5 -> 6: `actions`, created by SCHEMA.
    "",
];

/// Creates the schema in a new store, or upgrades an older one.
pub(super) fn ensure(conn: &Connection, path: &Path) -> Result<()> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        anyhow::bail!(
            "store {} has schema version {version}, newer than this agent's {SCHEMA_VERSION}",
            path.display()
        );
    }
    let fresh: bool = conn.query_row(
        "SELECT COUNT(*) = 0 FROM sqlite_master WHERE type = 'table' AND name = 'runs'",
        [],
        |r| r.get(0),
    )?;
    if !fresh {
        for (from, step) in MIGRATIONS
            .iter()
            .enumerate()
            .skip(version.max(1) as usize - 1)
        {
            conn.execute_batch(step).with_context(|| {
                format!(
                    "upgrading store {} from schema version {}",
                    path.display(),
                    from + 1
                )
            })?;
        }
    }
    conn.execute_batch(SCHEMA)
        .with_context(|| format!("creating schema in {}", path.display()))?;
    conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_1_store_is_upgraded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let conn = Connection::open(&path).unwrap();
        let v1 = SCHEMA.replace(
            ",\n    http_requests INTEGER NOT NULL DEFAULT 0,\n    shards        INTEGER,\n    stderr        TEXT\n",
            "\n",
        );
        assert_ne!(v1, SCHEMA);
        conn.execute_batch(&v1).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        ensure(&conn, &path).unwrap();
        conn.execute_batch("SELECT http_requests, shards, stderr FROM runs")
            .unwrap();
        // And a current one is left as it is.
        ensure(&conn, &path).unwrap();
    }
}

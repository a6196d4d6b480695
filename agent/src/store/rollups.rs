//! Hourly and daily rollups of each check's runs, for uptime and history
//! over long windows without reading the runs (which retention removes
//! long before a year has passed): per check and bucket, runs by status,
//! the duration's sum, maximum and distribution, and the distribution of
//! the run's latency metric ([`LATENCY_METRIC`]).
//!
//! They are kept up to date as runs are stored, never by rescanning: the
//! writer ([`Rollups`]) keeps the hour in progress of each check in
//! memory and writes its row once per batch, in the batch's transaction
//! (so a run and its rollup commit together, and kill -9 loses neither).
//! A day's row is written once the day is complete, from its 24 hourly
//! rows; the day in progress is read from its hours. A store from before
//! rollups is backfilled once from the runs it still has, and days
//! completed while the agent was stopped are folded, at open
//! ([`prepare`]). Retention keeps `keep_rollup_days` of them, apart from
//! the runs' own.
//!
//! Distributions are log-scale histograms ([`Histogram`]: four buckets
//! per doubling, from 1 µs), so any quantile is within 9% of the true
//! value and buckets merge exactly.

use std::collections::{BTreeMap, HashMap, HashSet};

use anyhow::Result;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use warden_runtime::{RunOutcome, Status};

/// The metric whose p50/p95 the rollups keep (http-health's, and the
/// blackbox exporter's name for the same thing).
pub const LATENCY_METRIC: &str = "probe_duration_seconds";

/// A rollup's bucket size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Resolution {
    /// One hour.
    Hour,
    /// One day (UTC).
    Day,
}

impl Resolution {
    /// Both, finest first.
    pub const ALL: [Resolution; 2] = [Resolution::Hour, Resolution::Day];

    /// The bucket's length in milliseconds.
    pub fn ms(self) -> i64 {
        match self {
            Resolution::Hour => 3_600_000,
            Resolution::Day => 86_400_000,
        }
    }

    /// `1h` or `1d`.
    pub fn parse(s: &str) -> Option<Resolution> {
        match s {
            "1h" => Some(Resolution::Hour),
            "1d" => Some(Resolution::Day),
            _ => None,
        }
    }

    /// The start of the bucket holding `ms`.
    pub fn floor(self, ms: i64) -> i64 {
        ms.div_euclid(self.ms()) * self.ms()
    }

    /// `1h` or `1d`.
    pub fn label(self) -> &'static str {
        match self {
            Resolution::Hour => "1h",
            Resolution::Day => "1d",
        }
    }

    /// How many buckets `history` returns without `since`: 7 days of
    /// hours, 90 days.
    pub fn default_buckets(self) -> i64 {
        match self {
            Resolution::Hour => 168,
            Resolution::Day => 90,
        }
    }

    fn seconds(self) -> i64 {
        self.ms() / 1000
    }
}

/// Buckets per doubling.
const STEPS: f64 = 4.0;
/// The largest bucket index (2^40 µs: 12 days).
const MAX_BUCKET: u16 = 160;

/// A distribution of durations in seconds: bucket `i` counts values in
/// [2^(i/4), 2^((i+1)/4)) µs (bucket 0 also everything smaller).
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct Histogram(BTreeMap<u16, u64>);

impl Histogram {
    /// Counts one value (negative and non-finite values are ignored).
    pub fn add(&mut self, seconds: f64) {
        if !seconds.is_finite() || seconds < 0.0 {
            return;
        }
        let us = seconds * 1e6;
        let i = if us <= 1.0 {
            0
        } else {
            ((us.log2() * STEPS).floor() as u64).min(u64::from(MAX_BUCKET)) as u16
        };
        *self.0.entry(i).or_default() += 1;
    }

    /// Adds another histogram's counts.
    pub fn merge(&mut self, other: &Histogram) {
        for (i, n) in &other.0 {
            *self.0.entry(*i).or_default() += n;
        }
    }

    /// As stored: (bucket: u8, count: u32 little-endian) pairs.
    fn to_bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(self.0.len() * 5);
        for (i, n) in &self.0 {
            b.push(*i as u8);
            b.extend_from_slice(&(*n).min(u64::from(u32::MAX)).to_le_bytes()[..4]);
        }
        b
    }

    /// From [`Histogram::to_bytes`]; a torn tail is ignored.
    fn from_bytes(b: &[u8]) -> Histogram {
        Histogram(
            b.chunks_exact(5)
                .map(|c| {
                    (
                        u16::from(c[0]),
                        u64::from(u32::from_le_bytes([c[1], c[2], c[3], c[4]])),
                    )
                })
                .collect(),
        )
    }

    /// How many values it holds.
    pub fn count(&self) -> u64 {
        self.0.values().sum()
    }

    /// The `q`-quantile (0..=1), in seconds: the geometric middle of the
    /// bucket holding it; `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, n) in &self.0 {
            seen += n;
            if seen >= rank {
                let mid = (f64::from(*i) + 0.5) / STEPS;
                return Some(2f64.powf(mid) / 1e6);
            }
        }
        None
    }
}

/// Runs by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Counts {
    /// `ok` runs.
    pub ok: u64,
    /// `warning` runs.
    pub warning: u64,
    /// `critical` runs.
    pub critical: u64,
    /// `unknown` runs (the check could not decide).
    pub unknown: u64,
}

impl Counts {
    /// Every run.
    pub fn total(&self) -> u64 {
        self.ok + self.warning + self.critical + self.unknown
    }
}

/// One bucket of one check (or several merged: a window).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rollup {
    /// Runs by status.
    pub runs: Counts,
    /// Sum of the runs' durations, seconds.
    pub duration_sum: f64,
    /// The longest run, seconds.
    pub duration_max: f64,
    /// The runs' durations.
    pub durations: Histogram,
    /// The runs' [`LATENCY_METRIC`] values.
    pub latencies: Histogram,
}

impl Rollup {
    /// Counts one run.
    pub fn add(&mut self, status: Status, duration: f64, latency: Option<f64>) {
        match status {
            Status::Ok => self.runs.ok += 1,
            Status::Warning => self.runs.warning += 1,
            Status::Critical => self.runs.critical += 1,
            Status::Unknown => self.runs.unknown += 1,
        }
        self.duration_sum += duration;
        self.duration_max = self.duration_max.max(duration);
        self.durations.add(duration);
        if let Some(l) = latency {
            self.latencies.add(l);
        }
    }

    /// Adds another bucket.
    pub fn merge(&mut self, other: &Rollup) {
        self.runs.ok += other.runs.ok;
        self.runs.warning += other.runs.warning;
        self.runs.critical += other.runs.critical;
        self.runs.unknown += other.runs.unknown;
        self.duration_sum += other.duration_sum;
        self.duration_max = self.duration_max.max(other.duration_max);
        self.durations.merge(&other.durations);
        self.latencies.merge(&other.latencies);
    }

    /// The share of decisive runs that were up (`ok` or `warning`);
    /// `unknown` runs decide nothing and are left out. `None` without a
    /// decisive run.
    pub fn uptime(&self) -> Option<f64> {
        let up = self.runs.ok + self.runs.warning;
        let decisive = up + self.runs.critical;
        (decisive > 0).then(|| up as f64 / decisive as f64)
    }

    /// What the API shows of it.
    pub fn view(&self) -> RollupView {
        RollupView {
            runs: self.runs,
            uptime: self.uptime(),
            duration_p50: self.durations.quantile(0.5),
            duration_p95: self.durations.quantile(0.95),
            duration_max: (self.runs.total() > 0).then_some(self.duration_max),
            latency_p50: self.latencies.quantile(0.5),
            latency_p95: self.latencies.quantile(0.95),
        }
    }
}

/// A bucket or window as the API shows it (seconds; `null` when there is
/// nothing to say).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RollupView {
    /// Runs by status.
    pub runs: Counts,
    /// Decisive runs that were up, 0..=1.
    pub uptime: Option<f64>,
    /// Median run duration.
    pub duration_p50: Option<f64>,
    /// 95th percentile run duration.
    pub duration_p95: Option<f64>,
    /// Longest run.
    pub duration_max: Option<f64>,
    /// Median of the latency metric.
    pub latency_p50: Option<f64>,
    /// 95th percentile of the latency metric.
    pub latency_p95: Option<f64>,
}

/// The latency a run reports: its first unlabelled-or-not
/// [`LATENCY_METRIC`] series.
pub fn latency(outcome: &RunOutcome) -> Option<f64> {
    outcome
        .metrics
        .iter()
        .find(|m| m.name == LATENCY_METRIC)
        .map(|m| m.value)
}

/// The writer's side: the hourly rows of the hour in progress, kept
/// between batches so that a run costs one row write (no read back), and
/// what the batch changed. Daily rows are written when a day is complete,
/// from its hourly rows ([`fold_day`]); the day in progress is read from
/// its hourly rows. A late run (for a day already complete) rewrites that
/// day's row too.
#[derive(Default)]
pub(super) struct Rollups {
    /// Check → hour start → (row, changed by this batch).
    hours: HashMap<String, BTreeMap<i64, (Rollup, bool)>>,
    late_days: HashSet<(String, i64)>,
    /// Complete days before this are folded (from `meta`, once read).
    folded_until: Option<i64>,
    /// The start of the UTC day in progress, as of the last batch.
    today: i64,
}

impl Rollups {
    /// Counts a stored run (in the batch's transaction `tx`).
    pub(super) fn add(&mut self, tx: &Connection, o: &RunOutcome) -> rusqlite::Result<()> {
        self.count(
            tx,
            &o.check,
            o.status,
            o.finished_unix_ms as i64,
            o.duration_seconds,
            latency(o),
        )
    }

    fn count(
        &mut self,
        tx: &Connection,
        check: &str,
        status: Status,
        at_ms: i64,
        duration: f64,
        latency: Option<f64>,
    ) -> rusqlite::Result<()> {
        let hour = Resolution::Hour.floor(at_ms);
        if !self.hours.contains_key(check) {
            self.hours.insert(check.to_string(), BTreeMap::new());
        }
        let hours = self.hours.get_mut(check).expect("inserted above");
        let (row, changed) = match hours.entry(hour) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(e) => {
                let row = read_row(tx, check, Resolution::Hour, hour)?.unwrap_or_default();
                e.insert((row, false))
            }
        };
        row.add(status, duration, latency);
        *changed = true;
        if self.today == 0 {
            self.today = Resolution::Day.floor(super::now_ms());
        }
        let day = Resolution::Day.floor(at_ms);
        if day < self.today {
            self.late_days.insert((check.to_string(), day));
        }
        Ok(())
    }

    /// Writes what the batch changed: its hourly rows, the daily rows of
    /// late runs' days, and every day completed since the last fold.
    pub(super) fn write(&mut self, tx: &Connection) -> rusqlite::Result<()> {
        for (check, hours) in &mut self.hours {
            for (hour, (row, changed)) in hours.iter_mut().filter(|(_, (_, c))| *c) {
                write_row(tx, check, Resolution::Hour, *hour, row)?;
                *changed = false;
            }
        }
        for (check, day) in std::mem::take(&mut self.late_days) {
            fold_day(tx, &check, day)?;
        }
        let now = super::now_ms();
        let today = Resolution::Day.floor(now);
        self.today = today;
        let folded = match self.folded_until {
            Some(f) => f,
            None => tx
                .query_row(
                    "SELECT value FROM meta WHERE key = 'rollups_folded_until'",
                    [],
                    |r| r.get(0),
                )
                .optional()?
                .unwrap_or(0),
        };
        if folded < today {
            let days: Vec<(String, i64)> = tx
                .prepare_cached(
                    "SELECT DISTINCT check_name, bucket_ms - (bucket_ms % 86400000) FROM rollups
                     WHERE resolution_s = 3600 AND bucket_ms >= ?1 AND bucket_ms < ?2",
                )?
                .query_map(params![folded, today], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?;
            for (check, day) in days {
                fold_day(tx, &check, day)?;
            }
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('rollups_folded_until', ?1)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![today],
            )?;
        }
        self.folded_until = Some(today);
        // Only the hour in progress (and the one before) stays cached.
        let keep = Resolution::Hour.floor(now) - Resolution::Hour.ms();
        for hours in self.hours.values_mut() {
            if hours.first_key_value().is_some_and(|(h, _)| *h < keep) {
                hours.retain(|h, _| *h >= keep);
            }
        }
        self.hours.retain(|_, hours| !hours.is_empty());
        Ok(())
    }

    /// Forgets what it holds (the batch's transaction failed): the next
    /// batch reads the rows back.
    pub(super) fn forget(&mut self) {
        *self = Rollups::default();
    }
}

/// Writes `check`'s row for the UTC day starting `day` from its hourly
/// rows.
fn fold_day(tx: &Connection, check: &str, day: i64) -> rusqlite::Result<()> {
    let mut total = Rollup::default();
    for (_, h) in read_rows(tx, check, Resolution::Hour, day, day + Resolution::Day.ms())? {
        total.merge(&h);
    }
    write_row(tx, check, Resolution::Day, day, &total)
}

fn write_row(
    tx: &Connection,
    check: &str,
    r: Resolution,
    bucket: i64,
    row: &Rollup,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        // Updated in place (not replaced): the time index is left alone.
        "INSERT INTO rollups (check_name, resolution_s, bucket_ms, runs_ok, runs_warning,
           runs_critical, runs_unknown, duration_sum, duration_max, durations, latencies)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
         ON CONFLICT (check_name, resolution_s, bucket_ms) DO UPDATE SET runs_ok = excluded.runs_ok,
           runs_warning = excluded.runs_warning, runs_critical = excluded.runs_critical,
           runs_unknown = excluded.runs_unknown, duration_sum = excluded.duration_sum,
           duration_max = excluded.duration_max, durations = excluded.durations,
           latencies = excluded.latencies",
    )?
    .execute(params![
        check,
        r.seconds(),
        bucket,
        row.runs.ok as i64,
        row.runs.warning as i64,
        row.runs.critical as i64,
        row.runs.unknown as i64,
        row.duration_sum,
        row.duration_max,
        row.durations.to_bytes(),
        row.latencies.to_bytes(),
    ])?;
    Ok(())
}

const COLUMNS: &str = "bucket_ms, runs_ok, runs_warning, runs_critical, runs_unknown, duration_sum, duration_max, durations, latencies";

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(i64, Rollup)> {
    Ok((
        r.get(0)?,
        Rollup {
            runs: Counts {
                ok: r.get::<_, i64>(1)? as u64,
                warning: r.get::<_, i64>(2)? as u64,
                critical: r.get::<_, i64>(3)? as u64,
                unknown: r.get::<_, i64>(4)? as u64,
            },
            duration_sum: r.get(5)?,
            duration_max: r.get(6)?,
            durations: Histogram::from_bytes(&r.get::<_, Vec<u8>>(7)?),
            latencies: Histogram::from_bytes(&r.get::<_, Vec<u8>>(8)?),
        },
    ))
}

fn read_row(
    tx: &Connection,
    check: &str,
    r: Resolution,
    bucket: i64,
) -> rusqlite::Result<Option<Rollup>> {
    tx.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM rollups WHERE check_name = ?1 AND resolution_s = ?2 AND bucket_ms = ?3"
    ))?
    .query_row(params![check, r.seconds(), bucket], from_row)
    .optional()
    .map(|o| o.map(|(_, r)| r))
}

fn read_rows(
    conn: &Connection,
    check: &str,
    r: Resolution,
    since_ms: i64,
    until_ms: i64,
) -> rusqlite::Result<Vec<(i64, Rollup)>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM rollups WHERE check_name = ?1 AND resolution_s = ?2
           AND bucket_ms >= ?3 AND bucket_ms < ?4 ORDER BY bucket_ms"
    ))?;
    let rows = stmt.query_map(params![check, r.seconds(), since_ms, until_ms], from_row)?;
    rows.collect()
}

/// `check`'s buckets of resolution `r` starting in `since_ms..until_ms`,
/// oldest first; buckets without runs are absent. The day in progress is
/// summed from its hours.
pub(super) fn read(
    conn: &Connection,
    check: &str,
    r: Resolution,
    since_ms: i64,
    until_ms: i64,
) -> Result<Vec<(i64, Rollup)>> {
    if r == Resolution::Hour {
        return Ok(read_rows(conn, check, r, since_ms, until_ms)?);
    }
    let today = Resolution::Day.floor(super::now_ms());
    let mut rows = read_rows(conn, check, r, since_ms, until_ms.min(today))?;
    if until_ms > today && since_ms <= today {
        let mut current = Rollup::default();
        for (_, h) in read_rows(conn, check, Resolution::Hour, today, until_ms)? {
            current.merge(&h);
        }
        if current.runs.total() > 0 {
            rows.push((today, current));
        }
    }
    Ok(rows)
}

/// At open: fills the rollups from the runs a store already holds, once
/// (a store written by an agent from before rollups), and folds the days
/// completed while the agent was stopped. Returns how many runs it
/// backfilled.
pub(super) fn prepare(conn: &Connection) -> Result<u64> {
    let done: Option<i64> = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'rollups_backfilled'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    let tx = conn.unchecked_transaction()?;
    let mut rollups = Rollups::default();
    let mut counted = 0;
    if done.is_none() {
        // Every backfilled day is folded below.
        tx.execute("DELETE FROM meta WHERE key = 'rollups_folded_until'", [])?;
        let mut stmt = tx.prepare(
            "SELECT check_name, status, finished_ms, duration_s, metrics FROM runs ORDER BY id",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let metrics: Vec<warden_runtime::Metric> =
                serde_json::from_str(&row.get::<_, String>(4)?).unwrap_or_default();
            let latency = metrics
                .iter()
                .find(|m| m.name == LATENCY_METRIC)
                .map(|m| m.value);
            let status = row.get::<_, String>(1)?.parse().unwrap_or(Status::Unknown);
            let check: String = row.get(0)?;
            rollups.count(&tx, &check, status, row.get(2)?, row.get(3)?, latency)?;
            counted += 1;
        }
        rollups.late_days.clear();
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('rollups_backfilled', ?1)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            params![counted as i64],
        )?;
    }
    rollups.write(&tx)?;
    tx.commit()?;
    Ok(counted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_within_nine_percent() {
        let mut h = Histogram::default();
        for i in 1..=1000 {
            h.add(i as f64 / 1000.0);
        }
        for (q, want) in [(0.5, 0.5), (0.95, 0.95), (0.01, 0.01)] {
            let got = h.quantile(q).unwrap();
            assert!((got / want - 1.0).abs() < 0.09, "q{q}: {got} vs {want}");
        }
        assert_eq!(Histogram::default().quantile(0.5), None);
        let mut a = Histogram::default();
        a.add(0.2);
        let mut b = Histogram::default();
        b.add(0.2);
        b.add(3.0);
        a.merge(&b);
        assert_eq!(a.count(), 3);
    }

    #[test]
    fn uptime_leaves_unknown_runs_out() {
        let mut r = Rollup::default();
        r.add(Status::Ok, 0.1, Some(0.05));
        r.add(Status::Warning, 0.1, None);
        r.add(Status::Critical, 0.3, None);
        r.add(Status::Unknown, 5.0, None);
        assert_eq!(r.uptime(), Some(2.0 / 3.0));
        assert_eq!(r.duration_max, 5.0);
        assert_eq!(r.runs.total(), 4);
        assert_eq!(Rollup::default().uptime(), None);
    }

    #[test]
    fn buckets_start_on_the_hour_and_the_utc_day() {
        let t = 1_800_000_123_456;
        assert_eq!(Resolution::Hour.floor(t) % 3_600_000, 0);
        assert!(t - Resolution::Hour.floor(t) < 3_600_000);
        assert_eq!(Resolution::Day.floor(t) % 86_400_000, 0);
    }
}

#[cfg(test)]
mod store_tests {
    use warden_runtime::{Metric, RunOutcome, Status};

    use super::*;
    use crate::store::{RunRecord, Store, now_ms};

    const HOUR: i64 = 3_600_000;

    fn run(check: &str, status: Status, at_ms: i64, duration: f64, latency: f64) -> RunRecord {
        let mut o = RunOutcome::unknown(check, "p", String::new(), std::time::SystemTime::now(), 1);
        o.status = status;
        o.error = None;
        o.finished_unix_ms = at_ms as u64;
        o.duration_seconds = duration;
        o.metrics = vec![Metric {
            name: LATENCY_METRIC.into(),
            value: latency,
            unit: "seconds".into(),
            labels: vec![],
        }];
        RunRecord::plain(o)
    }

    fn window(store: &Store, check: &str, r: Resolution, since: i64, until: i64) -> Rollup {
        let mut total = Rollup::default();
        for (_, b) in store.rollups(check, r, since, until).unwrap() {
            total.merge(&b);
        }
        total
    }

    #[tokio::test]
    async fn runs_are_rolled_up_as_they_are_stored_and_backfilled_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let store = Store::open(&path).unwrap();
        let now = now_ms();
        let start = Resolution::Day.floor(now) - 3 * 86_400_000;
        // Three days, a run every 10 minutes; the second day's sixth hour
        // down. Stored one at a time and then in bursts (one batch).
        let mut want = Rollup::default();
        let mut records = Vec::new();
        for i in 0..(3 * 24 * 6) {
            let at = start + i * 600_000;
            let status = if (24 + 5..24 + 6).contains(&(i / 6)) {
                Status::Critical
            } else {
                Status::Ok
            };
            let d = 0.01 * (1 + i % 10) as f64;
            want.add(status, d, Some(d / 2.0));
            records.push(run("api", status, at, d, d / 2.0));
        }
        let (one_by_one, burst) = records.split_at(200);
        for r in one_by_one {
            store.record(r.clone()).await.unwrap();
        }
        let burst: Vec<_> = burst
            .iter()
            .cloned()
            .map(|r| {
                let s = store.clone();
                tokio::spawn(async move { s.record(r).await.unwrap() })
            })
            .collect();
        for t in burst {
            t.await.unwrap();
        }
        store
            .record(run("other", Status::Critical, start, 1.0, 1.0))
            .await
            .unwrap();
        let until = start + 3 * 86_400_000;
        for r in Resolution::ALL {
            let got = window(&store, "api", r, start, until);
            assert_eq!(got.runs, want.runs, "{r:?}");
            assert_eq!(got.durations, want.durations, "{r:?}");
            assert_eq!(got.latencies, want.latencies, "{r:?}");
            assert!((got.duration_sum - want.duration_sum).abs() < 1e-9);
        }
        assert_eq!(want.runs.critical, 6);
        assert_eq!(
            store
                .rollups("api", Resolution::Hour, start, until)
                .unwrap()
                .len(),
            72
        );
        let down_hour = start + 29 * HOUR;
        let hour = store
            .rollups("api", Resolution::Hour, down_hour, down_hour + HOUR)
            .unwrap();
        assert_eq!(hour[0].1.uptime(), Some(0.0));
        let days = store.rollups("api", Resolution::Day, start, until).unwrap();
        assert_eq!(
            days.iter().map(|d| d.1.runs.total()).collect::<Vec<_>>(),
            [144, 144, 144]
        );
        assert_eq!(days[1].1.uptime(), Some(138.0 / 144.0));

        // A store from before rollups: the rows are gone, and opening it
        // fills them from the runs, once.
        drop(store);
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "DELETE FROM rollups; DELETE FROM meta WHERE key = 'rollups_backfilled';",
        )
        .unwrap();
        drop(conn);
        let store = Store::open(&path).unwrap();
        let got = window(&store, "api", Resolution::Day, start, until);
        assert_eq!(got.runs, want.runs);
        assert_eq!(got.durations, want.durations);
        drop(store);
        // Not twice.
        let store = Store::open(&path).unwrap();
        assert_eq!(
            window(&store, "api", Resolution::Hour, start, until).runs,
            want.runs
        );
    }

    #[tokio::test]
    async fn rollups_outlive_the_runs_and_have_their_own_retention() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("w.db")).unwrap();
        let now = now_ms();
        let old = now - 100 * 86_400_000;
        let ancient = now - 500 * 86_400_000;
        store
            .record(run("api", Status::Ok, old, 0.1, 0.1))
            .await
            .unwrap();
        store
            .record(run("api", Status::Ok, ancient, 0.1, 0.1))
            .await
            .unwrap();
        store.retain(1000, 30, 400);
        store.flush();
        let runs = store
            .runs(&crate::store::RunFilter {
                limit: 10,
                ..Default::default()
            })
            .unwrap();
        assert!(runs.is_empty(), "runs older than keep_days are gone");
        let days = store.rollups("api", Resolution::Day, 0, now).unwrap();
        assert_eq!(
            days.len(),
            1,
            "the 100-day-old bucket stays, the 500-day-old one goes"
        );
        assert_eq!(days[0].0, Resolution::Day.floor(old));
    }
}

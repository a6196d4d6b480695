//! The store's own tests: recording, findings, outputs, retention.

use super::*;
use warden_runtime::{Finding, Output, Severity};

#[tokio::test]
async fn state_survives_reopen_and_is_scoped_per_check() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("warden.db");
    {
        let store = Store::open(&path).unwrap();
        store
            .commit(
                "a",
                vec![
                    ("k".into(), Some("1".into())),
                    ("gone".into(), Some("x".into())),
                ],
                StateQuota::default(),
            )
            .await
            .unwrap();
        store
            .commit("a", vec![("gone".into(), None)], StateQuota::default())
            .await
            .unwrap();
        store
            .commit(
                "b",
                vec![("k".into(), Some("2".into()))],
                StateQuota::default(),
            )
            .await
            .unwrap();
    }
    let store = Store::open(&path).unwrap();
    assert_eq!(store.get("a", "k").unwrap().as_deref(), Some("1"));
    assert_eq!(store.get("b", "k").unwrap().as_deref(), Some("2"));
    assert_eq!(store.get("a", "gone").unwrap(), None);
}

#[test]
fn a_wal_store_copied_without_its_shm_file_opens() {
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("live.db");
    let conn = Connection::open(&live).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
        .unwrap();
    // A copy taken while it is open: the database and its WAL, no -shm.
    let copy = dir.path().join("copy").join("warden.db");
    std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
    std::fs::copy(&live, &copy).unwrap();
    std::fs::copy(
        dir.path().join("live.db-wal"),
        copy.with_extension("db-wal"),
    )
    .unwrap();
    drop(conn);
    assert!(!copy.with_extension("db-shm").exists());
    Store::open(&copy).unwrap();
}

#[tokio::test]
async fn state_over_the_quota_is_refused_whole() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("w.db")).unwrap();
    let quota = StateQuota {
        bytes: 100,
        keys: 3,
    };
    let put = |k: &str, n: usize| (k.to_string(), Some("v".repeat(n)));
    store
        .commit("a", vec![put("k1", 40), put("k2", 40)], quota)
        .await
        .unwrap();
    // Over the bytes: nothing of the run is applied.
    let e = store
        .commit("a", vec![put("k3", 30)], quota)
        .await
        .unwrap_err();
    assert!(
        format!("{e:#}").contains("over the check's limit of 100 bytes (state_bytes)"),
        "{e:#}"
    );
    assert_eq!(store.get("a", "k3").unwrap(), None);
    // Replacing within the quota is fine; other checks are not counted.
    store
        .commit("a", vec![put("k2", 10), put("k3", 30)], quota)
        .await
        .unwrap();
    store.commit("b", vec![put("k1", 90)], quota).await.unwrap();
    let e = store
        .commit(
            "a",
            vec![put("k4", 1)],
            StateQuota {
                bytes: 1000,
                keys: 3,
            },
        )
        .await
        .unwrap_err();
    assert!(
        format!("{e:#}").contains("4 keys, over the check's limit of 3 (state_keys)"),
        "{e:#}"
    );
}

fn outcome(n: u32, status: Status, findings: &[&str], outputs: &[(&str, &str)]) -> RunOutcome {
    let mut o = RunOutcome::begin("c", "p", "00", SystemTime::UNIX_EPOCH, 1);
    o.run_id = format!("run-{n}");
    o.status = status;
    o.summary = format!("run {n}");
    o.findings = findings
        .iter()
        .map(|fp| Finding {
            fingerprint: fp.to_string(),
            rule: "r".into(),
            severity: Severity::High,
            message: "m".into(),
            location: None,
            attributes: vec![],
        })
        .collect();
    o.outputs = outputs
        .iter()
        .map(|(k, v)| Output {
            key: k.to_string(),
            value: v.to_string(),
        })
        .collect();
    o.scheduled_unix_ms = 1000 * n as u64;
    o.started_unix_ms = 1000 * n as u64;
    o.finished_unix_ms = 1000 * n as u64 + 1;
    o
}

fn rec(o: RunOutcome) -> RunRecord {
    RunRecord::plain(o)
}

fn history_len(store: &Store, check: &str, key: &str) -> i64 {
    store
        .conn()
        .query_row(
            "SELECT COUNT(*) FROM output_history WHERE check_name = ?1 AND key = ?2",
            params![check, key],
            |r| r.get(0),
        )
        .unwrap()
}

#[tokio::test]
async fn findings_dedup_resolve_and_outputs_change_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("w.db")).unwrap();
    let r = store
        .record(rec(outcome(
            1,
            Status::Critical,
            &["a", "b"],
            &[("URL", "x")],
        )))
        .await
        .unwrap();
    assert!(r.outputs_changed.is_some());
    let r = store
        .record(rec(outcome(2, Status::Critical, &["a"], &[("URL", "x")])))
        .await
        .unwrap();
    assert!(r.outputs_changed.is_none(), "same value is not a change");
    // An unknown run resolves nothing.
    store
        .record(rec(outcome(3, Status::Unknown, &[], &[])))
        .await
        .unwrap();
    let open = store.findings(Some("c"), false).unwrap();
    assert_eq!(
        open.iter()
            .map(|f| f.fingerprint.as_str())
            .collect::<Vec<_>>(),
        vec!["a"]
    );
    let all = store.findings(Some("c"), true).unwrap();
    let a = all.iter().find(|f| f.fingerprint == "a").unwrap();
    assert_eq!((a.first_seen_unix_ms, a.last_seen_unix_ms), (1001, 2001));
    assert!(
        all.iter()
            .find(|f| f.fingerprint == "b")
            .unwrap()
            .resolved_unix_ms
            .is_some()
    );
    let r = store
        .record(rec(outcome(4, Status::Ok, &[], &[("URL", "y")])))
        .await
        .unwrap();
    assert_eq!(
        r.outputs_changed.unwrap().get("URL").map(String::as_str),
        Some("y")
    );
    assert_eq!(history_len(&store, "c", "URL"), 2);
    assert!(store.findings(Some("c"), false).unwrap().is_empty());
    assert_eq!(
        store
            .runs(&RunFilter {
                limit: 10,
                ..Default::default()
            })
            .unwrap()
            .len(),
        4
    );
    let crit = RunFilter {
        status: Some(Status::Critical),
        limit: 10,
        ..Default::default()
    };
    assert_eq!(store.runs(&crit).unwrap().len(), 2);
}

#[tokio::test]
async fn the_latest_run_time_of_each_check_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.db");
    {
        let store = Store::open(&path).unwrap();
        for (n, secs) in [(1, 4.5), (2, 0.002)] {
            let mut o = outcome(n, Status::Ok, &[], &[]);
            o.duration_seconds = secs;
            store.record(rec(o)).await.unwrap();
        }
    }
    let records = Store::open(&path).unwrap().check_records().unwrap();
    assert_eq!(
        records["c"].last_run,
        Some(std::time::Duration::from_millis(2))
    );
}

#[tokio::test]
async fn retention_keeps_the_newest_runs_per_check() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("w.db")).unwrap();
    let now = now_ms() as u64;
    for n in 0..10 {
        let mut o = outcome(n, Status::Ok, &[], &[]);
        o.finished_unix_ms = now;
        store.record(rec(o)).await.unwrap();
    }
    store.retain(3, 30, 400);
    store.flush();
    let runs = store
        .runs(&RunFilter {
            limit: 100,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        runs.iter()
            .map(|r| r.run.run_id.as_str())
            .collect::<Vec<_>>(),
        vec!["run-9", "run-8", "run-7"]
    );
}

#[tokio::test]
async fn scheduled_runs_share_commits() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("w.db")).unwrap();
    let before = store.commits();
    // Ten scheduled runs, a millisecond apart, as a busy schedule sends
    // them: they share commits (group commit), and every one is stored.
    let mut pending = Vec::new();
    for n in 1..=10 {
        let store = store.clone();
        pending.push(tokio::spawn(async move {
            store.record(rec(outcome(n, Status::Ok, &[], &[]))).await
        }));
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    for p in pending {
        p.await.unwrap().unwrap();
    }
    let grouped = store.commits() - before;
    assert!(grouped <= 5, "10 scheduled runs took {grouped} commits");
    let stored: i64 = store
        .conn()
        .query_row("SELECT COUNT(*) FROM runs", [], |r| r.get(0))
        .unwrap();
    assert_eq!(stored, 10);
}

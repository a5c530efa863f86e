//! The store on a temporary database: what is written is what reports read back, across
//! reopening, retention and every grouping.

use super::*;
use crate::report::Query;
use chadthrottle_core::tally::Bytes;
use chadthrottle_core::usage_history::{Grouping, UsageReport};

/// 2026-11-30 00:00 UTC, a Monday.
const MONDAY: u64 = 1_795_996_800;

fn sample(pid: u32, exe: &str, user: &str, rx: u64, tx: u64, local_rx: u64) -> Sample {
    Sample {
        increment: Increment {
            process: ProcessRef {
                pid,
                start_time: u64::from(pid) * 10,
            },
            internet: Bytes {
                rx_bytes: rx - local_rx,
                tx_bytes: tx,
            },
            local: Bytes {
                rx_bytes: local_rx,
                tx_bytes: 0,
            },
            rx_packets: rx / 1000,
            tx_packets: tx / 1000,
        },
        name: exe.rsplit('/').next().unwrap_or(exe).to_owned(),
        application: Application::of(Some(exe), "x", None),
        user: user.to_owned(),
    }
}

fn checkpoint(epoch: &str) -> Checkpoint {
    Checkpoint {
        epoch: epoch.to_owned(),
        counters: HashMap::new(),
    }
}

fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = Store::open(&dir.path().join("usage.db")).expect("open");
    (dir, store)
}

fn report(store: &Store, since: u64, until: u64, by: Grouping) -> UsageReport {
    store
        .report(&Query {
            since,
            until,
            by,
            exe: None,
            app: None,
        })
        .expect("report")
}

/// (key, rx, tx) of each row, in report order.
fn totals(report: &UsageReport) -> Vec<(String, u64, u64)> {
    report
        .rows
        .iter()
        .map(|row| {
            let key = [&row.app, &row.user, &row.day, &row.name]
                .into_iter()
                .flatten()
                .cloned()
                .collect::<Vec<_>>()
                .join(" ");
            (key, row.rx_bytes, row.tx_bytes)
        })
        .collect()
}

#[test]
fn increments_add_up_by_app_user_day_and_process() {
    let (_dir, mut store) = open();
    let at = MONDAY + 10 * HOUR;
    store
        .record(
            at,
            &[
                sample(1, "/usr/bin/curl", "alice", 5000, 100, 1000),
                sample(2, "/usr/bin/firefox", "bob", 9000, 900, 0),
            ],
            &checkpoint("e"),
        )
        .expect("record");
    store
        .record(
            at + 10,
            &[sample(1, "/usr/bin/curl", "alice", 7000, 0, 0)],
            &checkpoint("e"),
        )
        .expect("record");
    store
        .record(
            MONDAY + DAY + HOUR,
            &[sample(3, "/usr/bin/curl", "bob", 1, 1, 0)],
            &checkpoint("e"),
        )
        .expect("record");
    let until = MONDAY + DAY + 2 * HOUR;
    let by_app = report(&store, MONDAY, until, Grouping::App);
    assert_eq!(
        totals(&by_app),
        [
            ("/usr/bin/curl".to_owned(), 12_001, 101),
            ("/usr/bin/firefox".to_owned(), 9000, 900)
        ],
        "busiest first"
    );
    let curl = &by_app.rows[0];
    assert_eq!(curl.local.rx_bytes, 1000);
    assert_eq!(curl.internet.rx_bytes, 11_001);
    assert_eq!(curl.rx_packets, 12);
    assert_eq!(by_app.note, None);
    assert_eq!(
        totals(&report(&store, MONDAY, until, Grouping::User)),
        [
            ("alice".to_owned(), 12_000, 100),
            ("bob".to_owned(), 9001, 901)
        ]
    );
    assert_eq!(
        totals(&report(&store, MONDAY, until, Grouping::Day)),
        [
            ("2026-11-30".to_owned(), 21_000, 1000),
            ("2026-12-01".to_owned(), 1, 1)
        ]
    );
    let by_process = report(&store, MONDAY, until, Grouping::Process);
    assert_eq!(by_process.rows.len(), 3);
    assert_eq!(by_process.rows[0].pid, Some(1));
    assert_eq!(by_process.rows[0].start_time, Some(10));
    assert_eq!(by_process.rows[0].rx_bytes, 12_000);
    let only_firefox = store
        .report(&Query {
            since: MONDAY,
            until,
            by: Grouping::App,
            exe: Some("/usr/bin/firefox".to_owned()),
            app: None,
        })
        .expect("report");
    assert_eq!(
        totals(&only_firefox),
        [("/usr/bin/firefox".to_owned(), 9000, 900)]
    );
    // from the second day on: only what was recorded then
    assert_eq!(
        totals(&report(&store, MONDAY + DAY, until, Grouping::App)),
        [("/usr/bin/curl".to_owned(), 1, 1)]
    );
}

/// A sample of a process governed by `rule`.
fn governed(pid: u32, exe: &str, rule: Option<&str>, rx: u64) -> Sample {
    let mut sample = sample(pid, exe, "u", rx, 0, 0);
    sample.application = Application::of(Some(exe), "x", rule);
    sample
}

#[test]
fn applications_are_grouped_as_top_groups_them_and_each_can_be_asked_for() {
    use chadthrottle_core::application::{AppKey, KeyKind};
    let (_dir, mut store) = open();
    let at = MONDAY + HOUR;
    let samples = [
        governed(1, "/usr/bin/curl", Some("net"), 3000),
        governed(2, "/usr/bin/wget", Some("net"), 2000),
        governed(3, "/usr/bin/curl", None, 1000),
        governed(4, "/usr/bin/curl (deleted)", None, 500),
    ];
    store
        .record(at, &samples, &checkpoint("e"))
        .expect("record");
    let query = |by, exe: Option<&str>, app: Option<AppKey>| Query {
        since: MONDAY,
        until: at + HOUR,
        by,
        exe: exe.map(str::to_owned),
        app,
    };
    let by_app = store
        .report(&query(Grouping::App, None, None))
        .expect("report");
    let rows: Vec<_> = by_app
        .rows
        .iter()
        .map(|row| (row.app.clone(), row.app_kind, row.exe.clone(), row.rx_bytes))
        .collect();
    assert_eq!(
        rows,
        [
            (Some("net".to_owned()), Some(KeyKind::Rule), None, 5000),
            (
                Some("/usr/bin/curl".to_owned()),
                Some(KeyKind::Exe),
                None,
                1500
            ),
        ]
    );
    let rule = AppKey {
        kind: KeyKind::Rule,
        key: "net".to_owned(),
    };
    let by_day = store
        .report(&query(Grouping::Day, None, Some(rule)))
        .expect("report");
    assert_eq!(totals(&by_day), [("2026-11-30".to_owned(), 5000, 0)]);
    // curl's own application leaves out its processes under the rule; --exe takes them
    let curl = AppKey {
        kind: KeyKind::Exe,
        key: "/usr/bin/curl".to_owned(),
    };
    let by_process = store
        .report(&query(Grouping::Process, None, Some(curl)))
        .expect("report");
    let pids: Vec<_> = by_process.rows.iter().map(|row| row.pid).collect();
    assert_eq!(pids, [Some(3), Some(4)]);
    assert_eq!(
        by_process.rows[1].exe.as_deref(),
        Some("/usr/bin/curl (deleted)")
    );
    assert_eq!(by_process.rows[1].app.as_deref(), Some("/usr/bin/curl"));
    let every_curl = store
        .report(&query(Grouping::Day, Some("/usr/bin/curl"), None))
        .expect("report");
    assert_eq!(totals(&every_curl), [("2026-11-30".to_owned(), 4500, 0)]);
}

#[test]
fn a_part_of_an_hour_is_answered_from_the_minutes_exactly() {
    let (_dir, mut store) = open();
    let hour = MONDAY + 5 * HOUR;
    for minute in 0..60 {
        let sample = sample(1, "/bin/app", "u", 100, 0, 0);
        store
            .record(hour + minute * 60 + 30, &[sample], &checkpoint("e"))
            .expect("record");
    }
    // from 5:40: 20 minutes of rows, 100 bytes each
    let report = report(&store, hour + 40 * 60, hour + HOUR, Grouping::App);
    assert_eq!(report.rows[0].rx_bytes, 2000);
    assert_eq!(report.since, hour + 40 * 60);
}

#[test]
fn the_checkpoint_survives_reopening_and_is_replaced_by_each_write() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("usage.db");
    let mut store = Store::open(&path).expect("open");
    assert_eq!(
        store.checkpoint().expect("checkpoint"),
        None,
        "a new database"
    );
    let process = ProcessRef {
        pid: 42,
        start_time: 7,
    };
    let counters = Counters {
        rx_bytes: 10,
        tx_bytes: 20,
        rx_packets: 1,
        tx_packets: 2,
    };
    let mut first = checkpoint("boot/1");
    first.counters.insert(process, counters);
    first.counters.insert(
        ProcessRef {
            pid: 43,
            start_time: 7,
        },
        counters,
    );
    store.record(MONDAY, &[], &first).expect("record");
    let mut second = checkpoint("boot/2");
    second.counters.insert(process, counters);
    store.record(MONDAY + 10, &[], &second).expect("record");
    drop(store);
    let reopened = Store::open(&path).expect("reopen");
    assert_eq!(reopened.checkpoint().expect("checkpoint"), Some(second));
}

#[test]
fn retention_drops_minutes_and_hours_and_the_coarser_rows_still_answer() {
    let (_dir, mut store) = open();
    // one sample every 10 minutes for three days
    let mut written = 0;
    for step in 0..3 * 24 * 6 {
        let at = MONDAY + step * 600;
        store
            .record(
                at,
                &[sample(1, "/bin/app", "u", 1000, 10, 0)],
                &checkpoint("e"),
            )
            .expect("record");
        written += 1000;
    }
    let now = MONDAY + 3 * DAY;
    let before = report(&store, MONDAY, now, Grouping::App);
    let pruned = store
        .prune(now, Duration::from_secs(6 * HOUR), Duration::from_secs(DAY))
        .expect("prune");
    assert_eq!(pruned.samples, (3 * 24 - 6) * 6, "{pruned:?}");
    assert_eq!(pruned.hourly, 2 * 24, "{pruned:?}");
    assert_eq!(
        store.kept().expect("kept"),
        Kept {
            minutes_from: now - 6 * HOUR,
            hours_from: now - DAY,
        }
    );
    let after = report(&store, MONDAY, now, Grouping::App);
    assert_eq!(after.rows[0].rx_bytes, written);
    assert_eq!(totals(&before), totals(&after));
    // a start in an hour whose minutes were dropped is answered by the whole hour, one
    // whose hours were dropped by the whole day, and the note says so
    let inside = report(&store, now - 20 * HOUR + 1800, now, Grouping::App);
    assert_eq!(inside.rows[0].rx_bytes, 20 * 6 * 1000);
    assert_eq!(inside.since, now - 20 * HOUR);
    assert!(
        inside
            .note
            .as_deref()
            .is_some_and(|n| n.contains("start at")),
        "{inside:?}"
    );
    let older = report(&store, now - 30 * HOUR + 1800, now, Grouping::App);
    assert_eq!(older.rows[0].rx_bytes, 2 * 24 * 6 * 1000);
    assert_eq!(older.since, now - 2 * DAY);
    // by process, only what the minutes still hold
    let processes = report(&store, MONDAY, now, Grouping::Process);
    assert_eq!(processes.rows[0].rx_bytes, 6 * 6 * 1000);
    assert!(processes.note.is_some(), "{processes:?}");
}

#[test]
fn a_read_only_database_refuses_writes_as_unwritable_and_still_reports() {
    let (dir, mut store) = open();
    store
        .record(
            MONDAY,
            &[sample(1, "/bin/app", "u", 5, 5, 0)],
            &checkpoint("e"),
        )
        .expect("record");
    let reader = Store::open_read_only(&dir.path().join("usage.db")).expect("read only");
    let mut reader = reader;
    let refused = reader
        .record(
            MONDAY + 60,
            &[sample(1, "/bin/app", "u", 5, 5, 0)],
            &checkpoint("e"),
        )
        .expect_err("read only");
    assert!(refused.is_unwritable(), "{refused}");
    let report = report(&reader, MONDAY, MONDAY + HOUR, Grouping::App);
    assert_eq!(report.rows[0].rx_bytes, 5);
}

#[test]
fn a_missing_database_and_another_schema_version_are_refused() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let missing = Store::open_read_only(&dir.path().join("none.db"))
        .err()
        .expect("missing");
    assert!(missing.to_string().contains("none.db"), "{missing}");
    let path = dir.path().join("usage.db");
    let store = Store::open(&path).expect("open");
    store
        .connection()
        .execute("UPDATE meta SET value = '99' WHERE key = 'version'", [])
        .expect("update");
    drop(store);
    let newer = Store::open(&path).err().expect("refused");
    assert!(newer.to_string().contains("schema version 99"), "{newer}");
}

#[test]
fn a_path_in_a_uri_has_its_special_bytes_escaped() {
    assert_eq!(
        uri_path(Path::new("/var/lib/a b/usage.db")),
        "/var/lib/a b/usage.db"
    );
    assert_eq!(
        uri_path(Path::new("/tmp/50%?#/ü.db")),
        "/tmp/50%25%3F%23/%C3%BC.db"
    );
    assert_eq!(
        sibling(Path::new("/tmp/usage.db"), "-wal"),
        PathBuf::from("/tmp/usage.db-wal")
    );
}

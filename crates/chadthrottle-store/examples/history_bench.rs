//! The usage database's size and `usage`'s query time for 1 000 applications over 30
//! days (BENCHMARKS.md): `cargo run --release -p chadthrottle-store --example history_bench
//! -- DIR` writes `DIR/usage.db` and `DIR/config.toml` (so `chadthrottle usage --config
//! DIR/config.toml` can be timed too) and prints the figures.
//!
//! Every application moves bytes in every sample (the worst case for size). The daemon's
//! defaults hold: per-minute rows kept 6 hours, hourly 7 days, daily for good, pruned every
//! hour. The last day is written one sample per minute, the 29 days before one per hour:
//! the rows and what they hold are those of sampling every 10 s (rows are per minute, hour
//! and day, and a finer sample only adds into the same row), the number of writes is not.

use chadthrottle_core::ProcessRef;
use chadthrottle_core::daemon_config::DaemonConfig;
use chadthrottle_core::tally::{Bytes, Checkpoint, Increment};
use chadthrottle_core::usage::Counters;
use chadthrottle_core::usage_history::{Application, DAY, Grouping, HOUR};
use chadthrottle_store::report::Query;
use chadthrottle_store::{Sample, Store};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

const APPLICATIONS: u32 = 1000;
const DAYS: u64 = 30;
/// 2026-11-01 00:00 UTC.
const START: u64 = 1_793_491_200;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from(std::env::args().nth(1).ok_or("usage: history_bench DIR")?);
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("usage.db");
    for stale in ["usage.db", "usage.db-wal", "usage.db-shm"] {
        let _absent = std::fs::remove_file(dir.join(stale));
    }
    std::fs::write(
        dir.join("config.toml"),
        format!("database = \"{}\"\n", path.display()),
    )?;
    let config = DaemonConfig::default();
    let mut store = Store::open(&path)?;
    let mut counters: HashMap<ProcessRef, Counters> = HashMap::new();
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut random = move |bound: u64| {
        // xorshift: varied amounts, the same every run
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % bound
    };
    let end = START + DAYS * DAY;
    let fine_from = end - DAY;
    let started = Instant::now();
    let (mut at, mut writes, mut last_prune) = (START, 0u64, 0u64);
    while at < end {
        let step = if at < fine_from { HOUR } else { 60 };
        let mut samples = Vec::with_capacity(APPLICATIONS as usize);
        for app in 0..APPLICATIONS {
            let process = ProcessRef {
                pid: 10_000 + app,
                start_time: 500,
            };
            // a minute of a busy application: up to ~6 MB down, a tenth of it up
            let scale = step / 60;
            let rx = random(6_000_000) * scale;
            let tx = rx / 10;
            let local = rx / 5;
            let increment = Increment {
                process,
                internet: Bytes {
                    rx_bytes: rx - local,
                    tx_bytes: tx,
                },
                local: Bytes {
                    rx_bytes: local,
                    tx_bytes: 0,
                },
                rx_packets: rx / 1448,
                tx_packets: tx / 1448,
            };
            let total = counters.entry(process).or_default();
            total.rx_bytes += rx;
            total.tx_bytes += tx;
            total.rx_packets += rx / 1448;
            total.tx_packets += tx / 1448;
            samples.push(Sample {
                increment,
                name: format!("app{app}"),
                application: Application::of(Some(&format!("/usr/bin/app{app}")), "", None),
                user: format!("user{}", app % 10),
            });
        }
        let checkpoint = Checkpoint {
            epoch: "bench-boot/1".to_owned(),
            counters: counters.clone(),
        };
        store.record(at, &samples, &checkpoint)?;
        writes += 1;
        if at >= last_prune + HOUR {
            store.prune(at, config.retention, config.hourly_retention)?;
            last_prune = at;
        }
        at += step;
    }
    store.prune(end, config.retention, config.hourly_retention)?;
    store.checkpoint_wal()?;
    let written = started.elapsed();
    drop(store);
    let size = std::fs::metadata(&path)?.len();
    println!(
        "{APPLICATIONS} applications x {DAYS} days: {writes} writes in {:.1} s",
        written.as_secs_f64()
    );
    println!(
        "database: {:.1} MB ({size} bytes) at {}",
        size as f64 / 1e6,
        path.display()
    );
    let reader = Store::open_read_only(&path)?;
    for (label, since, by) in [
        ("--since 30d --by app", end - DAYS * DAY, Grouping::App),
        ("--since 30d --by user", end - DAYS * DAY, Grouping::User),
        ("--since 30d --by day", end - DAYS * DAY, Grouping::Day),
        ("--since 7d --by app", end - 7 * DAY - 1800, Grouping::App),
        ("--since 6h --by process", end - 6 * HOUR, Grouping::Process),
        ("--since 6h --by app", end - 6 * HOUR - 90, Grouping::App),
    ] {
        let query = Query {
            app: None,
            since,
            until: end,
            by,
            exe: None,
        };
        let mut times = Vec::new();
        let mut rows = 0;
        for _ in 0..5 {
            let started = Instant::now();
            rows = reader.report(&query)?.rows.len();
            times.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        times.sort_by(f64::total_cmp);
        println!(
            "usage {label}: {rows} rows, median {:.1} ms (min {:.1}, max {:.1})",
            times[2], times[0], times[4]
        );
    }
    Ok(())
}

//! Environment history benchmark: a simulated year of 50 climate sensors read once a
//! minute (`SENSORS=N`, `INTERVAL_S=S`, `DAYS=D` to change).
//!
//! `cargo bench --bench environment` writes the year day by day through the controller's
//! own path (`history::record_on`: raw readings plus per-minute and per-hour aggregates,
//! then the daily purge with the default keeping times: raw 3 days, minutes 14 days) and,
//! beside it in the same run, the baseline a first design would have: every reading kept,
//! as REAL values with a text time, in one indexed table. It reports the database size of
//! each after the year, the write rate, and how long a month and a day of history take to
//! answer. Results go to stdout as Markdown, for BENCHMARKS.md.

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use chrono::{Duration, TimeZone, Utc};
use rusqlite::{Connection, params};
use stackroom::environment::history::{History, Reading, Retention, purge_on, record_on};
use stackroom::store::Store;

fn env(name: &str, default: i64) -> i64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The database's size on disk: main file and WAL, after a checkpoint.
fn size(path: &Path) -> u64 {
    let wal = path.with_extension("db-wal");
    std::fs::metadata(path).map_or(0, |m| m.len()) + std::fs::metadata(wal).map_or(0, |m| m.len())
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// A plausible reading: daily cycle plus a per-sensor offset.
fn reading(sensor: usize, at_s: i64) -> (f64, f64) {
    let day = (at_s % 86_400) as f64 / 86_400.0 * std::f64::consts::TAU;
    let t = 19.0 + 1.2 * day.sin() + (sensor % 7) as f64 * 0.1;
    let h = 52.0 + 3.0 * (day * 0.5).cos() + (sensor % 5) as f64 * 0.3;
    ((t * 10.0).round() / 10.0, (h * 10.0).round() / 10.0)
}

#[tokio::main]
async fn main() {
    let sensors = env("SENSORS", 50) as usize;
    let interval = env("INTERVAL_S", 60);
    let days = env("DAYS", 365);
    let keep = Retention {
        raw_days: 3,
        minute_days: 14,
    };
    let dir = tempfile::tempdir().unwrap();
    let start = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
    let names: Vec<String> = (1..=sensors).map(|i| format!("th-{i:02}")).collect();
    let per_day = 86_400 / interval;
    let readings = sensors as i64 * per_day * days;
    println!("{sensors} sensors, a reading every {interval} s, {days} days: {readings} readings\n");

    // stackroom: through the store's writer, one batch per day, purging daily.
    let path = dir.path().join("stackroom.db");
    let store = Store::open(&path).unwrap();
    let t0 = Instant::now();
    for day in 0..days {
        let day_start = start.timestamp() + day * 86_400;
        let batch: Vec<Reading> = (0..per_day)
            .flat_map(|k| {
                let at = day_start + k * interval;
                names.iter().enumerate().map(move |(i, n)| {
                    let (t, h) = reading(i, at);
                    Reading {
                        point: n.clone(),
                        at_ms: at * 1000,
                        temperature: Some(t),
                        humidity: Some(h),
                        value: None,
                    }
                })
            })
            .collect();
        let now_ms = (day_start + 86_400) * 1000;
        store
            .write(move |conn| {
                record_on(conn, &mut HashMap::new(), &batch)?;
                purge_on(conn, now_ms, keep)?;
                Ok::<_, stackroom::store::StoreError>(())
            })
            .await
            .unwrap();
    }
    let ours_s = t0.elapsed().as_secs_f64();
    store
        .write(|conn| {
            conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
            Ok::<_, stackroom::store::StoreError>(())
        })
        .await
        .unwrap();
    let ours = size(&path);
    let in_use = store
        .read(|conn| {
            let pages: i64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
            let free: i64 = conn.query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
            let size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
            Ok::<_, stackroom::store::StoreError>(((pages - free) * size) as u64)
        })
        .await
        .unwrap();
    let end = start + Duration::days(days);
    let history = History::new(store.clone());
    let q = Instant::now();
    let month = history
        .series("th-01", end - Duration::days(30), end, 86_400, keep, end)
        .await
        .unwrap();
    let month_ms = q.elapsed().as_secs_f64() * 1000.0;
    let q = Instant::now();
    let year = history
        .series("th-01", start, end, 7 * 86_400, keep, end)
        .await
        .unwrap();
    let year_ms = q.elapsed().as_secs_f64() * 1000.0;
    let q = Instant::now();
    let today = history
        .series("th-01", end - Duration::days(1), end, 600, keep, end)
        .await
        .unwrap();
    let day_ms = q.elapsed().as_secs_f64() * 1000.0;
    assert_eq!(month.steps.len() as i64, days.min(30));
    assert_eq!(today.steps.len(), 144);

    // Baseline: every reading kept, REAL values, RFC 3339 text times, an index for queries.
    let base_path = dir.path().join("baseline.db");
    let conn = Connection::open(&base_path).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
         CREATE TABLE readings (id INTEGER PRIMARY KEY, sensor TEXT NOT NULL, at TEXT NOT NULL,
             temperature REAL, humidity REAL);
         CREATE INDEX readings_sensor_at ON readings (sensor, at);",
    )
    .unwrap();
    let t0 = Instant::now();
    for day in 0..days {
        let day_start = start.timestamp() + day * 86_400;
        let tx = conn.unchecked_transaction().unwrap();
        {
            let mut insert = tx
                .prepare_cached("INSERT INTO readings (sensor, at, temperature, humidity) VALUES (?1, ?2, ?3, ?4)")
                .unwrap();
            for k in 0..per_day {
                let at = day_start + k * interval;
                let text = Utc.timestamp_opt(at, 0).unwrap().to_rfc3339();
                for (i, n) in names.iter().enumerate() {
                    let (t, h) = reading(i, at);
                    insert.execute(params![n, text, t, h]).unwrap();
                }
            }
        }
        tx.commit().unwrap();
    }
    let base_s = t0.elapsed().as_secs_f64();
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
        .unwrap();
    let base = size(&base_path);
    let from = (end - Duration::days(30)).to_rfc3339();
    let q = Instant::now();
    let n: i64 = conn
        .query_row(
            "SELECT count(*) FROM (SELECT substr(at, 1, 10) AS d, min(humidity), avg(humidity), max(humidity)
             FROM readings WHERE sensor = 'th-01' AND at >= ?1 GROUP BY d)",
            [from],
            |r| r.get(0),
        )
        .unwrap();
    let base_month_ms = q.elapsed().as_secs_f64() * 1000.0;
    assert_eq!(n, days.min(30));

    println!(
        "| | database file after the run (pages in use) | write | month by day | year by week | last day by 10 min |"
    );
    println!("| --- | --- | --- | --- | --- | --- |");
    println!(
        "| stackroom (raw {} d, minutes {} d, hours for ever) | {} ({}) | {:.0} readings/s | {month_ms:.1} ms | {year_ms:.1} ms ({} weeks) | {day_ms:.1} ms |",
        keep.raw_days,
        keep.minute_days,
        mib(ours),
        mib(in_use),
        readings as f64 / ours_s,
        year.steps.len()
    );
    println!(
        "| baseline: every reading, REAL + text time | {} (all) | {:.0} readings/s | {base_month_ms:.1} ms | | |",
        mib(base),
        readings as f64 / base_s
    );
    println!(
        "\nstackroom keeps {:.1} % of the baseline's bytes ({:.0} bytes per sensor-day).",
        ours as f64 / base as f64 * 100.0,
        ours as f64 / (sensors as f64 * days as f64)
    );
}

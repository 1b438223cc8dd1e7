//! Backup benchmark: `cargo bench --bench backup` (`BOXES=N`, default 500,000;
//! `WRITES=N` commits a second while backing up, default 50; `LIMIT_S`, default 120).
//!
//! The bench room's boxes imported with the real `stackroom import`, then the database
//! backed up in-process while a task commits `WRITES` small writes a second through the
//! store's writer (as a room's sensor readings, sweeps and requests do), and with nothing
//! else going on:
//! - `stackroom backup` (`backup::take`): both files from one read snapshot in one step
//!   each, then checked against that snapshot (integrity check, every table's rows, last id
//!   and digest) and renamed into place;
//! - the baseline, the backup stackroom took before: SQLite's online backup 256 pages a
//!   step, 5 ms apart, which starts again whenever another connection writes; given up
//!   after `LIMIT_S`.
//!
//! Then `verify-backup` and `restore` of the backup, timed.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::BenchRoom;
use rusqlite::{Connection, OpenFlags};
use stackroom::store::{Store, StoreError, register_path};

/// Commits `per_second` small writes a second until `stop`; counts them.
fn writer(store: Store, per_second: u64, stop: Arc<AtomicBool>, count: Arc<AtomicU64>) {
    if per_second == 0 {
        return;
    }
    let every = Duration::from_secs_f64(1.0 / per_second as f64);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        while !stop.load(Ordering::Relaxed) {
            tick.tick().await;
            let n = count.fetch_add(1, Ordering::Relaxed);
            let written = store
                .write(move |c: &Connection| -> Result<(), StoreError> {
                    c.execute(
                        "INSERT INTO audit (at, actor, kind, action, outcome) VALUES (?1, 'bench', 'request', 'GET /bench', ?2)",
                        rusqlite::params![n as i64, n.to_string()],
                    )?;
                    Ok(())
                })
                .await;
            written.unwrap();
        }
    });
}

/// The backup before: the online backup a few hundred pages at a time. `Err(pages)` if it
/// did not finish within `limit` (pages copied in all, restarts included).
fn paged_backup(db: &Path, dest: &Path, limit: Duration) -> Result<Duration, (u64, u32)> {
    let started = Instant::now();
    let src = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let mut out = Connection::open(dest).unwrap();
    let backup = rusqlite::backup::Backup::new(&src, &mut out).unwrap();
    let mut copied = 0u64;
    let mut restarts = 0u32;
    let mut last_remaining = i32::MAX;
    loop {
        let step = backup.step(256).unwrap();
        let p = backup.progress();
        if p.remaining > last_remaining {
            restarts += 1;
        }
        last_remaining = p.remaining;
        copied += 256;
        if step == rusqlite::backup::StepResult::Done {
            return Ok(started.elapsed());
        }
        if started.elapsed() > limit {
            return Err((copied, restarts));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn mib(path: &Path) -> f64 {
    std::fs::metadata(path).map_or(0.0, |m| m.len() as f64) / (1 << 20) as f64
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let boxes = common::env("BOXES", 500_000) as usize;
    let writes = common::env("WRITES", 50);
    let limit = Duration::from_secs(common::env("LIMIT_S", 120));
    let dir = tempfile::tempdir().unwrap();
    let room = BenchRoom::write(dir.path(), boxes);
    let data = dir.path().join("data");
    let (import, _) = room.import(&data);
    let db = data.join("stackroom.db");
    eprintln!(
        "{boxes} boxes imported in {:.1} s: {:.0} MiB",
        import.as_secs_f64(),
        mib(&db)
    );
    let store = Store::open(&db).unwrap();

    println!(
        "| backup of {boxes} boxes ({:.0} MiB) | commits meanwhile | time | writes committed meanwhile |",
        mib(&db)
    );
    println!("| --- | --- | --- | --- |");
    let mut last = None;
    for (i, rate) in [0, writes].into_iter().enumerate() {
        // stackroom's backup.
        let stop = Arc::new(AtomicBool::new(false));
        let count = Arc::new(AtomicU64::new(0));
        writer(store.clone(), rate, stop.clone(), count.clone());
        tokio::time::sleep(Duration::from_millis(200)).await;
        let before = count.load(Ordering::Relaxed);
        let dest = dir.path().join(format!("new-{i}.db"));
        let started = Instant::now();
        let taken = stackroom::backup::take(&store, &dest, false).await.unwrap();
        let took = started.elapsed();
        let during = count.load(Ordering::Relaxed) - before;
        stop.store(true, Ordering::Relaxed);
        println!(
            "| `stackroom backup`: one snapshot, one step a file, then verified | {rate}/s | {:.1} s ({} pages): copied in {:.1} s, checked in {:.1} s | {during} |",
            took.as_secs_f64(),
            taken.pages,
            taken.copied_in.as_secs_f64(),
            taken.checked_in.as_secs_f64()
        );
        last = Some(taken.file);

        // The baseline.
        let stop = Arc::new(AtomicBool::new(false));
        let count = Arc::new(AtomicU64::new(0));
        writer(store.clone(), rate, stop.clone(), count.clone());
        tokio::time::sleep(Duration::from_millis(200)).await;
        let before = count.load(Ordering::Relaxed);
        let (src, dest) = (db.clone(), dir.path().join(format!("old-{i}.db")));
        let result = tokio::task::spawn_blocking(move || paged_backup(&src, &dest, limit))
            .await
            .unwrap();
        let during = count.load(Ordering::Relaxed) - before;
        stop.store(true, Ordering::Relaxed);
        let time = match result {
            Ok(t) => format!("{:.1} s", t.as_secs_f64()),
            Err((pages, restarts)) => format!(
                "**not finished** after {} s ({pages} pages copied, started again {restarts} times)",
                limit.as_secs()
            ),
        };
        println!(
            "| baseline: online backup, 256 pages a step, 5 ms apart (before) | {rate}/s | {time} | {during} |"
        );
    }
    let file = last.unwrap();
    let started = Instant::now();
    let checked = file.clone();
    tokio::task::spawn_blocking(move || stackroom::backup::verify(&checked).unwrap())
        .await
        .unwrap();
    println!(
        "| `stackroom verify-backup` | | {:.1} s | |",
        started.elapsed().as_secs_f64()
    );
    let target = dir.path().join("restored").join("stackroom.db");
    let started = Instant::now();
    let t = target.clone();
    tokio::task::spawn_blocking(move || stackroom::backup::restore(&file, &t).unwrap())
        .await
        .unwrap();
    println!(
        "| `stackroom restore` (verify, copy, open) | | {:.1} s | |",
        started.elapsed().as_secs_f64()
    );
    eprintln!(
        "restored {:.0} MiB and a register of {:.1} MiB",
        mib(&target),
        mib(&register_path(&target))
    );
}

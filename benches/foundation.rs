//! Foundation benchmark: a room of 1,000,000 boxes (`BOXES=N` to change).
//!
//! `cargo bench --bench foundation` measures, each beside a baseline in the same run:
//! - import: `stackroom import` of the CSV (validation, FTS, history) against a bare
//!   `INSERT` of the same rows in one transaction;
//! - locate: in-process `LocationService::locate` against a bare indexed `SELECT`, and over
//!   HTTP on loopback against the real `stackroom serve`;
//! - search: prefix, title words (Chinese and English), exact EPC, in-process and HTTP;
//! - peak memory (VmHWM) of the import and of the server after the load.
//!
//! Results go to stdout as a Markdown table, for BENCHMARKS.md.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{BenchRoom, percent, percentile, serve, serve_with, stats, viewer_token, vm_hwm};
use rusqlite::{Connection, params};
use stackroom::location::{BoxKey, LocationService};
use stackroom::store::Store;

/// The bare baseline: the same rows into a minimal table, one transaction, no checks.
fn bare_import(csv: &Path, db: &Path) -> Duration {
    let start = Instant::now();
    let mut conn = Connection::open(db).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;
         CREATE TABLE boxes (id INTEGER PRIMARY KEY, archive_no TEXT UNIQUE, epc TEXT UNIQUE,
            barcode TEXT UNIQUE, title TEXT, shelf TEXT);",
    )
    .unwrap();
    let tx = conn.transaction().unwrap();
    {
        let mut insert = tx
            .prepare("INSERT INTO boxes (archive_no, epc, barcode, title, shelf) VALUES (?1, ?2, ?3, ?4, ?5)")
            .unwrap();
        let mut reader = csv::Reader::from_path(csv).unwrap();
        for record in reader.records() {
            let r = record.unwrap();
            insert
                .execute(params![&r[0], &r[1], &r[2], &r[3], &r[4]])
                .unwrap();
        }
    }
    tx.commit().unwrap();
    start.elapsed()
}

/// `clients` keep-alive clients locating `numbers` between them at once: the rate, and
/// every request's time.
async fn concurrent_locates(
    client: &reqwest::Client,
    base: &str,
    numbers: &[String],
    clients: usize,
) -> (f64, Vec<Duration>) {
    let start = Instant::now();
    let per = numbers.len() / clients;
    let tasks: Vec<_> = (0..clients)
        .map(|k| {
            let client = client.clone();
            let base = base.to_string();
            let nos: Vec<String> = numbers[k * per..(k + 1) * per].to_vec();
            tokio::spawn(async move {
                let mut t = Vec::with_capacity(nos.len());
                for no in nos {
                    let s = Instant::now();
                    let r = client
                        .get(format!("{base}/api/v1/boxes/{no}/location"))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 200);
                    r.bytes().await.unwrap();
                    t.push(s.elapsed());
                }
                t
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    (all.len() as f64 / start.elapsed().as_secs_f64(), all)
}

fn main() {
    let boxes = common::boxes();
    let samples: usize = 20_000;
    let dir = tempfile::tempdir().unwrap();
    let room = BenchRoom::write(dir.path(), boxes);
    let (config_path, config, csv_path) = (&room.config_path, &room.config, &room.csv_path);
    println!(
        "room: {} ranges, {} shelves; {boxes} boxes; CSV {:.0} MiB",
        room.ranges,
        room.shelves,
        std::fs::metadata(csv_path).unwrap().len() as f64 / (1 << 20) as f64
    );

    // --- import
    let bare = bare_import(csv_path, &dir.path().join("bare.db"));
    let data: PathBuf = dir.path().join("data");
    let (import_time, import_peak) = room.import(&data);
    println!(
        "| import, `stackroom import` (validation, bindings, history, FTS) | {:.1} s | peak RSS {import_peak:.0} MiB |",
        import_time.as_secs_f64()
    );
    println!(
        "| import, baseline: bare INSERT of the same rows, one transaction | {:.1} s | |",
        bare.as_secs_f64()
    );

    // --- in-process locate and search
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = Store::open(&data.join(stackroom::server::DB_FILE)).unwrap();
    let svc = rt
        .block_on(LocationService::open(Arc::new(config.clone()), store))
        .unwrap();
    let mut pick = 0x2545_F491_4F6C_DD1Du64;
    let mut next_no = || {
        pick ^= pick << 13;
        pick ^= pick >> 7;
        pick ^= pick << 17;
        let i = (pick % boxes as u64) as usize;
        let csv_line = i; // the seed's row i has EPC E2801170{i+1:016X}
        format!("E2801170{:016X}", csv_line + 1)
    };
    let epcs: Vec<String> = (0..samples).map(|_| next_no()).collect();
    let numbers: Vec<String> = epcs
        .iter()
        .map(|epc| {
            svc.locate_blocking(&BoxKey::Epc(epc.clone()))
                .unwrap()
                .archive_no
        })
        .collect();

    let bare_conn = Connection::open(data.join(stackroom::server::DB_FILE)).unwrap();
    let mut bare_st = bare_conn
        .prepare("SELECT b.shelf_id FROM boxes x JOIN bindings b ON b.box_id = x.id WHERE x.archive_no = ?1")
        .unwrap();
    let mut bare_t = Vec::with_capacity(samples);
    for no in &numbers {
        let t = Instant::now();
        let _: i64 = bare_st.query_row([no], |r| r.get(0)).unwrap();
        bare_t.push(t.elapsed());
    }
    let mut sync_t = Vec::with_capacity(samples);
    for no in &numbers {
        let t = Instant::now();
        svc.locate_blocking(&BoxKey::ArchiveNo(no.clone())).unwrap();
        sync_t.push(t.elapsed());
    }
    let mut async_t = Vec::with_capacity(samples);
    rt.block_on(async {
        for no in &numbers {
            let t = Instant::now();
            svc.locate(BoxKey::ArchiveNo(no.clone())).await.unwrap();
            async_t.push(t.elapsed());
        }
    });
    println!(
        "| locate in-process, `locate_blocking` (service on this thread) | {} | |",
        stats(sync_t)
    );
    println!(
        "| locate in-process, `locate` (async, on the calling worker: `read_now`) | {} | |",
        stats(async_t)
    );
    println!(
        "| locate, baseline: bare indexed SELECT on one connection | {} | |",
        stats(bare_t)
    );

    // --- locate with 10,000 boxes out on loan (one loan each), beside the join of the
    // `boxes_out` view that locate used before (SQLite builds the whole view on every call).
    let on_loan = 10_000.min(boxes);
    bare_conn
        .execute_batch(&format!(
            "BEGIN;
             INSERT INTO loans (id, borrower, purpose, kind, due, state, requested_by, created_at, checked_out_at)
                 SELECT id, 'bench ' || id, 'audit', 'external', '2030-01-01', 'checked_out', 'bench', 0, 0
                 FROM boxes ORDER BY id LIMIT {on_loan};
             INSERT INTO loan_boxes (loan_id, box_id) SELECT id, id FROM loans;
             COMMIT;"
        ))
        .unwrap();
    let mut loaned_t = Vec::with_capacity(samples);
    let mut loaned_boxes = 0;
    let loaned: Vec<String> = numbers
        .iter()
        .take(samples / 2)
        .cloned()
        .chain(
            // boxes that are out, from the first rows
            (0..samples / 2).map(|i| format!("E2801170{:016X}", i % on_loan + 1)),
        )
        .collect();
    for key in &loaned {
        let key = if key.starts_with("E280") {
            BoxKey::Epc(key.clone())
        } else {
            BoxKey::ArchiveNo(key.clone())
        };
        let t = Instant::now();
        let found = svc.locate_blocking(&key).unwrap();
        loaned_t.push(t.elapsed());
        loaned_boxes += usize::from(found.loan.is_some());
    }
    let mut view_st = bare_conn
        .prepare(
            "SELECT x.archive_no, b.shelf_id, ol.loan_id, ol.borrower, ol.due, ol.out_at
             FROM boxes x LEFT JOIN bindings b ON b.box_id = x.id
             LEFT JOIN boxes_out ol ON ol.box_id = x.id WHERE x.archive_no = ?1",
        )
        .unwrap();
    let mut view_t = Vec::with_capacity(200);
    for no in numbers.iter().take(200) {
        let t = Instant::now();
        let _: String = view_st.query_row([no], |r| r.get(0)).unwrap();
        view_t.push(t.elapsed());
    }
    println!(
        "| locate in-process with {on_loan} boxes on loan, `locate_blocking` ({loaned_boxes} of {} found out) | {} | |",
        loaned.len(),
        stats(loaned_t)
    );
    println!(
        "| locate, before: the same with a LEFT JOIN of the `boxes_out` view | {} | |",
        stats(view_t)
    );
    bare_conn
        .execute_batch("DELETE FROM loan_boxes; DELETE FROM loans;")
        .unwrap();

    let queries = [
        "0451-H-123",
        "合同",
        "天河区",
        "metering",
        "meter",
        "met",
        "张伟",
        &epcs[7],
    ];
    for q in queries {
        let mut t = Vec::new();
        let mut hits = 0;
        for _ in 0..200 {
            let s = Instant::now();
            hits = svc.search_blocking(q, 20).unwrap().len();
            t.push(s.elapsed());
        }
        println!(
            "| search in-process `{q}` ({hits} hits, limit 20) | {} | |",
            stats(t)
        );
    }
    drop(svc);

    // --- over HTTP, against the real server
    let server = serve(config_path, &data);
    let mut headers = reqwest::header::HeaderMap::new();
    let token = viewer_token(config_path, &data);
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    let client = reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap();
    let base = server.base.clone();
    rt.block_on(async {
        let mut t = Vec::with_capacity(samples);
        for no in &numbers {
            let s = Instant::now();
            let r = client
                .get(format!("{base}/api/v1/boxes/{no}/location"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            r.bytes().await.unwrap();
            t.push(s.elapsed());
        }
        println!(
            "| locate over HTTP on loopback, one client, keep-alive | {} | |",
            stats(t)
        );
        // Eight clients at once.
        let (rate, all) = concurrent_locates(&client, &base, &numbers, 8).await;
        println!(
            "| locate over HTTP, 8 concurrent clients | {} | {rate:.0} req/s |",
            stats(all)
        );
        // What running the token check and locate on the worker buys: the same load on a
        // second server that sends them through the blocking pool, in alternate rounds.
        let hopping = serve_with(config_path, &data, &[("STACKROOM_HOP_SHORT_READS", "1")]);
        let mut rates: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
        let mut tails: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
        for _round in 0..3 {
            for (i, base) in [&hopping.base, &base].into_iter().enumerate() {
                let (rate, mut t) = concurrent_locates(&client, base, &numbers, 8).await;
                t.sort();
                rates[i].push(rate);
                tails[i].push(percentile(&t, 0.99));
            }
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let (hop_rate, now_rate) = (median(&mut rates[0]), median(&mut rates[1]));
        tails[0].sort();
        tails[1].sort();
        println!(
            "| locate over HTTP, 8 clients, token check and locate through the blocking pool (before) | median of 3 rounds {hop_rate:.0} req/s, p99 {:.0} µs | |",
            tails[0][1].as_secs_f64() * 1e6
        );
        println!(
            "| locate over HTTP, 8 clients, both on the worker (`read_now`) | median of 3 rounds {now_rate:.0} req/s, p99 {:.0} µs | {:.2}× |",
            tails[1][1].as_secs_f64() * 1e6,
            now_rate / hop_rate
        );
        drop(hopping);
        for q in ["0451-H-123", "合同", "metering"] {
            let mut t = Vec::new();
            for _ in 0..200 {
                let s = Instant::now();
                let r = client
                    .get(format!("{base}/api/v1/boxes?q={}&limit=20", percent(q)))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
                r.bytes().await.unwrap();
                t.push(s.elapsed());
            }
            println!("| search over HTTP `{q}` | {} | |", stats(t));
        }
    });
    let server_peak = vm_hwm(server.child.id()).unwrap_or(0.0);
    println!(
        "| server peak RSS after the load (`stackroom serve`, {boxes} boxes) | {server_peak:.0} MiB | |"
    );
}

//! Import benchmark: `cargo bench --bench import` (`BOXES=N`, default 1,000,000).
//!
//! The bench room's CSV (as `cargo bench --bench http` writes it: archive number, EPC,
//! barcode, a Chinese and English title, a shelf for every box, a free field), loaded twice
//! in one run, each time into a database of its own made by the same migrations:
//! - `stackroom import`, the real binary: every line checked (archive-number rule, EPC,
//!   barcode, shelf and its capacity, duplicates reported by line), boxes, bindings and
//!   their history, the title index and its vocabulary, all or nothing;
//! - the baseline, the same rows into the same schema the way SQLite loads fastest: one
//!   transaction, the rows first (boxes with their unique keys, bindings, history), then
//!   the other indexes, then the title index and its vocabulary in one pass; no checks, no
//!   per-line errors, nothing to report.
//!
//! `IMPORT_ROOM=DIR` only writes the room's config and CSV into DIR (to profile an import
//! by hand: `stackroom import DIR/boxes.csv --config DIR/bench-room.toml --data …`).
//!
//! Prints the wall time of each (the baseline's from opening the database to its commit
//! and checkpoint), the ratio, the import's peak memory, and the sizes of the database and
//! of its WAL file afterwards. Then, on the last database imported, what the archive's life
//! cycle asks of it at that size: the figures, the register as CSV and XLSX, the appraisal,
//! a lookup by customer number, each timed in-process (three runs, the median).

mod common;

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::time::{Duration, Instant};

use common::BenchRoom;
use rusqlite::{Connection, params};
use stackroom::location::index_text;

fn main() {
    let boxes = common::boxes();
    if let Ok(keep) = std::env::var("IMPORT_ROOM") {
        std::fs::create_dir_all(&keep).unwrap();
        BenchRoom::write(Path::new(&keep), boxes);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let room = BenchRoom::write(dir.path(), boxes);
    let csv_mib = std::fs::metadata(&room.csv_path).unwrap().len() as f64 / (1 << 20) as f64;
    eprintln!(
        "{boxes} boxes on {} shelves ({} ranges), CSV {csv_mib:.0} MiB",
        room.shelves, room.ranges
    );

    println!("| import of {boxes} boxes | time | ratio | peak RSS | database | WAL after |");
    println!("| --- | --- | --- | --- | --- | --- |");
    // Two rounds, alternating, so that neither has the warmer page cache throughout.
    let mut rows = Vec::new();
    for round in 0..2 {
        let base = dir.path().join(format!("baseline-{round}"));
        let baseline = load_baseline(&room, &base);
        let data = dir.path().join(format!("stackroom-{round}"));
        let (import, peak) = room.import(&data);
        rows.push((baseline, import, peak, sizes(&base), sizes(&data)));
    }
    let last = dir.path().join("stackroom-1");
    for (baseline, import, peak, base_sizes, sizes) in rows {
        println!(
            "| baseline: rows, then indexes, then the title index | {:.1} s | 1.00× | | {} | {} |",
            baseline.as_secs_f64(),
            base_sizes.0,
            base_sizes.1
        );
        println!(
            "| `stackroom import` | {:.1} s | {:.2}× | {peak:.0} MiB | {} | {} |",
            import.as_secs_f64(),
            import.as_secs_f64() / baseline.as_secs_f64(),
            sizes.0,
            sizes.1
        );
    }
    life_cycle(&room, &last);
}

/// The life cycle's reads on an imported database: the median of three runs each.
fn life_cycle(room: &BenchRoom, data: &Path) {
    use stackroom::holdings::{Holdings, RegisterFilter};
    use stackroom::location::{FieldQuery, LocationService, Page};
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut config = room.config.clone();
        config.data_dir = data.to_path_buf();
        let store = stackroom::store::Store::open(&data.join(stackroom::server::DB_FILE)).unwrap();
        let locations = LocationService::open(std::sync::Arc::new(config), store)
            .await
            .unwrap();
        let holdings = Holdings::new(locations.clone());
        let retention = stackroom::retention::Retention::new(locations.clone());
        let customer = locations
            .get_box(&locations.search("0451", 1).await.unwrap()[0].archive_no)
            .await
            .unwrap()
            .fields["customer_no"]
            .as_str()
            .unwrap()
            .to_string();
        println!();
        println!("| on the imported database | median of 3 | result |");
        println!("| --- | --- | --- |");
        macro_rules! timed {
            ($what:expr, $run:expr, $says:expr) => {{
                let mut times = Vec::new();
                let mut said = String::new();
                for _ in 0..3 {
                    let start = Instant::now();
                    let out = $run;
                    times.push(start.elapsed());
                    said = $says(out);
                }
                times.sort();
                println!("| {} | {:.3} s | {} |", $what, times[1].as_secs_f64(), said);
            }};
        }
        timed!(
            "figures (`GET /api/v1/stats`)",
            holdings
                .stats(chrono::Utc::now().date_naive())
                .await
                .unwrap(),
            |s: stackroom::holdings::Stats| format!(
                "{} boxes, {} warnings",
                s.boxes,
                s.warnings.len()
            )
        );
        timed!(
            "register as CSV, every box",
            holdings.csv(RegisterFilter::default()).await.unwrap(),
            |(b, n): (Vec<u8>, u64)| format!(
                "{n} rows, {:.0} MiB",
                b.len() as f64 / (1 << 20) as f64
            )
        );
        timed!(
            "register as XLSX, every box",
            holdings.xlsx(RegisterFilter::default()).await.unwrap(),
            |(b, n): (Vec<u8>, u64)| format!(
                "{n} rows, {:.0} MiB",
                b.len() as f64 / (1 << 20) as f64
            )
        );
        timed!(
            "appraisal (every box due)",
            retention.appraisal(None, 0, 200).await.unwrap(),
            |a: stackroom::retention::Appraisal| format!("{} due", a.total)
        );
        timed!(
            "search by a customer number",
            locations.search(&customer, 20).await.unwrap(),
            |f: Vec<stackroom::location::BoxView>| format!("{} found", f.len())
        );
        timed!(
            "boxes by a range of closing days, first page",
            locations
                .find_by_field(
                    FieldQuery {
                        key: "account_closed".into(),
                        from: Some("2010-01-01".into()),
                        to: Some("2010-12-31".into()),
                        ..FieldQuery::default()
                    },
                    Page {
                        offset: 0,
                        limit: 20
                    }
                )
                .await
                .unwrap(),
            |f: stackroom::location::Found| format!("{} in 2010", f.total)
        );
    });
}

/// (database, WAL) sizes as text.
fn sizes(data: &Path) -> (String, String) {
    let db = data.join(stackroom::server::DB_FILE);
    let mib = |p: &Path| {
        std::fs::metadata(p).map_or("none".to_string(), |m| {
            format!("{:.0} MiB", m.len() as f64 / (1 << 20) as f64)
        })
    };
    let mut wal = db.clone().into_os_string();
    wal.push("-wal");
    (mib(&db), mib(Path::new(&wal)))
}

/// The baseline load into a fresh database in `data`; its wall time.
fn load_baseline(room: &BenchRoom, data: &Path) -> Duration {
    // The schema, by stackroom's own migrations: an import of no boxes.
    let empty = data.with_extension("csv");
    std::fs::write(
        &empty,
        "archive_no,epc,barcode,title,shelf,customer_no,account_closed\n",
    )
    .unwrap();
    room.import_file(&empty, data);

    let start = Instant::now();
    let mut conn = Connection::open(data.join(stackroom::server::DB_FILE)).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.pragma_update(None, "synchronous", "FULL").unwrap();
    conn.pragma_update(None, "cache_size", -(64 << 10)).unwrap();
    let tx = conn.transaction().unwrap();
    tx.execute_batch(
        "DROP INDEX boxes_series; DROP INDEX bindings_shelf; DROP INDEX binding_events_box;
         DROP INDEX box_field_values_box;",
    )
    .unwrap();
    // The change feed numbered in one pass after the rows, not by a trigger per row.
    let feed_triggers: Vec<(String, String)> = tx
        .prepare("SELECT name, sql FROM sqlite_schema WHERE type = 'trigger' AND name IN ('changes_boxes_insert', 'changes_bindings_insert')")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(feed_triggers.len(), 2, "the change feed's triggers");
    for (name, _) in &feed_triggers {
        tx.execute_batch(&format!("DROP TRIGGER {name}")).unwrap();
    }
    let shelf_ids: HashMap<String, i64> = tx
        .prepare("SELECT address, id FROM shelves")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let now = stackroom::time::now_ms();
    // (id, title, archive number, barcode) for the title index after the rows, and the
    // declared fields' values for their index (the customer number is searched by its
    // whole value: not in the title index).
    let mut indexed: Vec<(i64, String, String, String)> = Vec::new();
    let mut values: Vec<(&str, String, i64)> = Vec::new();
    {
        let mut reader = csv::Reader::from_path(&room.csv_path).unwrap();
        let mut boxes = tx
            .prepare(
                "INSERT INTO boxes (id, archive_no, epc, barcode, title, series, fields, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )
            .unwrap();
        let mut bindings = tx
            .prepare(
                "INSERT INTO bindings (box_id, shelf_id, source, confidence, since)
                 VALUES (?1, ?2, 'import', 1.0, ?3)",
            )
            .unwrap();
        let mut history = tx
            .prepare(
                "INSERT INTO binding_events (box_id, kind, to_shelf, source, confidence, actor, reason, at)
                 VALUES (?1, 'bind', ?2, 'import', 1.0, 'bench', 'baseline', ?3)",
            )
            .unwrap();
        for (i, record) in reader.records().enumerate() {
            let r = record.unwrap();
            let id = i as i64 + 1;
            let archive_no = &r[0];
            // The series is the archive number without its sequence.
            let series = &archive_no[..archive_no.rfind('-').unwrap()];
            let fields = if r[6].is_empty() {
                format!("{{\"customer_no\":\"{}\"}}", &r[5])
            } else {
                format!(
                    "{{\"account_closed\":\"{}\",\"customer_no\":\"{}\"}}",
                    &r[6], &r[5]
                )
            };
            values.push(("customer_no", r[5].to_string(), id));
            if !r[6].is_empty() {
                values.push(("account_closed", r[6].to_string(), id));
            }
            boxes
                .execute(params![
                    id, archive_no, &r[1], &r[2], &r[3], series, fields, now
                ])
                .unwrap();
            bindings
                .execute(params![id, shelf_ids[&r[4]], now])
                .unwrap();
            history.execute(params![id, &r[4], now]).unwrap();
            indexed.push((
                id,
                r[3].to_string(),
                archive_no.to_string(),
                r[2].to_string(),
            ));
        }
    }
    tx.execute_batch(
        "INSERT INTO changes (box_id, seq) SELECT id, row_number() OVER (ORDER BY id) FROM boxes;",
    )
    .unwrap();
    for (_, sql) in &feed_triggers {
        tx.execute_batch(sql).unwrap();
    }
    tx.execute_batch(
        "CREATE INDEX boxes_series ON boxes (series);
         CREATE INDEX bindings_shelf ON bindings (shelf_id);
         CREATE INDEX binding_events_box ON binding_events (box_id, at);
         INSERT INTO box_words (box_words, rank) VALUES ('hashsize', 67108864);",
    )
    .unwrap();
    {
        values.sort_unstable();
        let mut insert = tx
            .prepare("INSERT INTO box_field_values (key, value, box_id) VALUES (?1, ?2, ?3)")
            .unwrap();
        for (key, value, id) in &values {
            insert.execute(params![key, value, id]).unwrap();
        }
        tx.execute_batch("CREATE INDEX box_field_values_box ON box_field_values (box_id);")
            .unwrap();
    }
    {
        let mut words = tx
            .prepare("INSERT INTO box_words (rowid, words) VALUES (?1, ?2)")
            .unwrap();
        let mut vocabulary = BTreeSet::new();
        for (id, title, archive_no, barcode) in &indexed {
            let text = index_text([title.as_str(), archive_no, barcode]);
            vocabulary.extend(stackroom::location::vocabulary(&text));
            words.execute(params![id, text]).unwrap();
        }
        let mut terms = tx
            .prepare("INSERT OR IGNORE INTO box_terms (term) VALUES (?1)")
            .unwrap();
        for term in vocabulary {
            terms.execute([term]).unwrap();
        }
    }
    tx.execute(
        "INSERT INTO box_words (box_words, rank) VALUES ('hashsize', 1048576)",
        [],
    )
    .unwrap();
    tx.commit().unwrap();
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    start.elapsed()
}

//! Crash safety: the process killed (SIGKILL) in the middle of an import and of a sweep;
//! after a restart the database is intact and nothing is half-applied.

use crate::common;

use std::io::Write;
use std::process::Command;
use std::time::Duration;

use common::{BIN, get, post_json, start_demo, wait_for};
use serde_json::json;

fn check(db: &std::path::Path) -> i64 {
    let conn = rusqlite::Connection::open(db).unwrap();
    let ok: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
    conn.query_row("SELECT COUNT(*) FROM boxes", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn an_import_killed_midway_leaves_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("boxes.csv");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&csv).unwrap());
    writeln!(f, "archive_no,epc,title").unwrap();
    let n = 60_000;
    for i in 0..n {
        let (cabinet, seq) = (i / 90_000 + 1, i % 90_000 + 1);
        writeln!(
            f,
            "0777-L-{cabinet:03}-{seq:05},E2807777{i:016X},客户档案 customer file {i}"
        )
        .unwrap();
    }
    f.flush().unwrap();
    drop(f);
    let data = dir.path().join("data");
    let import = || {
        Command::new(BIN)
            .arg("import")
            .arg(&csv)
            .args(["--config", "config/demo-room.toml", "--data"])
            .arg(&data)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut child = import();
    std::thread::sleep(Duration::from_millis(1500));
    child.kill().unwrap();
    child.wait().unwrap();
    let db = data.join("stackroom.db");
    let count = check(&db);
    assert!(count == 0 || count == n, "half an import: {count} boxes");
    // Run again to the end: everything is there once.
    if count == 0 {
        assert!(import().wait().unwrap().success());
    }
    assert_eq!(check(&db), n);
}

#[tokio::test]
async fn a_sweep_killed_midway_is_marked_interrupted_and_changes_nothing() {
    let data = tempfile::tempdir().unwrap();
    let d = start_demo(data.path(), &["--time-scale", "10"]);
    let (status, _, body) = post_json(
        &d.base,
        "/api/v1/sweeps",
        &json!({"scope": {"room": true}, "apply": "sync"}),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    wait_for(&d.base, "/api/v1/sweeps/1", 60, |v| {
        v["progress"]["done"].as_u64().unwrap_or(0) >= 100
    })
    .await;
    drop(d); // SIGKILL
    let db = data.path().join("stackroom.db");
    assert_eq!(check(&db), 5400);
    let d = start_demo(data.path(), &["--time-scale", "10"]);
    let (_, _, sweep) = get(&d.base, "/api/v1/sweeps/1").await;
    assert_eq!(sweep["state"], "interrupted", "{sweep}");
    assert!(!sweep["finished_at"].is_null());
    let (_, _, report) = get(&d.base, "/api/v1/sweeps/1/report").await;
    assert!(
        report["findings"].as_array().unwrap().is_empty(),
        "{report}"
    );
    // No binding came from the killed sweep.
    let conn = rusqlite::Connection::open(&db).unwrap();
    let by_sweep: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM bindings WHERE source = 'sweep'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(by_sweep, 0);
    // And a new sweep runs.
    let (status, _, body) = post_json(
        &d.base,
        "/api/v1/sweeps",
        &json!({"scope": {"shelves": ["R1-C1-R-S1-L1"]}}),
    )
    .await;
    assert_eq!(status, 202, "{body}");
}

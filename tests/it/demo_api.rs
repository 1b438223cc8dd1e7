//! The real `stackroom` binary, run as a user would: the demo, its API, the CLI.

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use crate::common;

use common::{BIN, api_client, get, start_demo};

#[tokio::test]
async fn demo_locates_seeded_boxes_and_keeps_changes_across_restarts() {
    let data = tempfile::tempdir().unwrap();
    let demo = start_demo(data.path(), &[]);
    let base = demo.base.clone();

    let (status, _, health) = get(&base, "/api/v1/health").await;
    assert_eq!((status, health["status"].as_str()), (200, Some("ok")));

    // The simulated room holds the seeded boxes where the database says they are.
    let (status, _, truth) = get(&demo.sim, "/sim/state").await;
    assert_eq!(status, 200);
    let tags = truth["tags"].as_array().unwrap();
    assert_eq!(tags.len(), 5400);
    let first = tags
        .iter()
        .find(|t| t["archive_no"] == "0451-H-001-00001")
        .unwrap();
    assert_eq!(first["shelf"], "R1-C1-R-S1-L1");
    assert_eq!(truth["ranges"].as_array().unwrap().len(), 3);

    let (status, _, loc) = get(&base, "/api/v1/boxes/0451-H-001-00001/location").await;
    assert_eq!(status, 200, "{loc}");
    assert_eq!(loc["shelf"]["address"], "R1-C1-R-S1-L1");
    assert_eq!(loc["aisle"], json!({"range": 1, "aisle": 1}));
    assert_eq!(loc["source"], "import");
    for key in ["range", "carriage", "face", "section", "level"] {
        assert!(!loc["shelf"][key].is_null(), "shelf.{key} in {loc}");
    }

    // Unknown box and known box without a shelf: both 404, with different messages.
    let (status, ctype, unknown) = get(&base, "/api/v1/boxes/0451-H-999-00001/location").await;
    assert_eq!((status, ctype.as_str()), (404, "application/problem+json"));
    let r = api_client(&base)
        .post(format!("{base}/api/v1/boxes"))
        .json(&json!({"archive_no": "0451-L-900-00001", "title": "新户 new customer"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let (status, _, unbound) = get(&base, "/api/v1/boxes/0451-L-900-00001/location").await;
    assert_eq!(status, 404);
    assert_ne!(unknown["detail"], unbound["detail"]);
    assert_ne!(unknown["type"], unbound["type"]);

    // Search: by words, by number prefix.
    let (status, _, found) = get(&base, "/api/v1/boxes?q=%E5%90%88%E5%90%8C&limit=5").await; // 合同
    assert_eq!(status, 200);
    assert_eq!(found["items"].as_array().unwrap().len(), 5);
    let (_, _, found) = get(&base, "/api/v1/boxes?q=0451-L-003-0001&limit=50").await;
    assert_eq!(found["items"].as_array().unwrap().len(), 10);
    assert_eq!(
        (found["total"].as_u64(), found["estimated"].as_bool()),
        (Some(10), Some(false))
    );
    // The next page goes on where the first stopped, and says how many there are in all.
    let (_, _, first) = get(&base, "/api/v1/boxes?q=0451-L-003-0001&limit=4").await;
    let (_, _, next) = get(&base, "/api/v1/boxes?q=0451-L-003-0001&limit=4&offset=4").await;
    let nos = |page: &serde_json::Value| -> Vec<String> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["archive_no"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!([nos(&first), nos(&next)].concat(), nos(&found)[..8]);
    assert_eq!(next["total"], 10);
    // Narrowed by category and range: only such boxes, counted.
    let (_, _, wide) = get(&base, "/api/v1/boxes?q=%E5%90%88%E5%90%8C&limit=200").await;
    let (status, _, narrow) = get(
        &base,
        "/api/v1/boxes?q=%E5%90%88%E5%90%8C&category=L&range=2&limit=200",
    )
    .await;
    assert_eq!(status, 200, "{narrow}");
    let kept = narrow["items"].as_array().unwrap();
    assert!(!kept.is_empty() && kept.len() < wide["items"].as_array().unwrap().len());
    for b in kept {
        assert!(
            b["archive_no"].as_str().unwrap().starts_with("0451-L-"),
            "{b}"
        );
        assert_eq!(b["location"]["shelf"]["range"], 2, "{b}");
    }
    assert_eq!(narrow["total"].as_u64(), Some(kept.len() as u64));
    // Narrowed by year: the year of the room's year field (销户日期 in the demo).
    let (_, _, some) = get(&base, "/api/v1/boxes?q=0451-L&limit=200").await;
    let closed = some["items"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|b| b["fields"]["account_closed"].as_str())
        .expect("a box with a closing day")
        .to_string();
    let year = &closed[..4];
    let (status, _, of_year) = get(
        &base,
        &format!("/api/v1/boxes?q=0451&year={year}&limit=200"),
    )
    .await;
    assert_eq!(status, 200, "{of_year}");
    let kept = of_year["items"].as_array().unwrap();
    assert!(!kept.is_empty(), "{of_year}");
    for b in kept {
        let day = b["fields"]["account_closed"].as_str().unwrap_or_default();
        assert!(day.starts_with(&format!("{year}-")), "{b}");
    }
    let (status, _, bad) = get(&base, "/api/v1/boxes?q=x&range=9").await;
    assert_eq!(
        (status, bad["field"].as_str()),
        (422, Some("range")),
        "{bad}"
    );
    let (status, _, far) = get(&base, "/api/v1/boxes?q=0451&offset=10001").await;
    assert_eq!(
        (status, far["type"].as_str().is_some()),
        (422, true),
        "{far}"
    );

    // Bind the new box where the controller suggests, and see it in the history.
    let (_, _, suggest) = get(
        &base,
        "/api/v1/shelves/suggest?archive_no=0451-L-900-00001&count=1",
    )
    .await;
    let shelf = suggest["items"][0]["shelf"]["address"]
        .as_str()
        .unwrap()
        .to_string();
    let r = api_client(&base)
        .put(format!("{base}/api/v1/boxes/0451-L-900-00001/binding"))
        .json(&json!({"shelf": shelf, "reason": "new box"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (_, _, history) = get(&base, "/api/v1/boxes/0451-L-900-00001/history").await;
    assert_eq!(history["events"][0]["kind"], "bind");
    assert_eq!(history["events"][0]["to"], shelf.as_str());

    // Restart on the same data: no second seed, the change is still there.
    drop(demo);
    let demo = start_demo(data.path(), &[]);
    let (_, _, loc) = get(&demo.base, "/api/v1/boxes/0451-L-900-00001/location").await;
    assert_eq!(loc["shelf"]["address"], shelf.as_str());
    let (_, _, found) = get(&demo.base, "/api/v1/boxes?q=0451-H-001-0000&limit=50").await;
    assert_eq!(found["items"].as_array().unwrap().len(), 9, "seeded once");
}

#[tokio::test]
async fn bad_requests_get_problems_that_name_the_field() {
    let data = tempfile::tempdir().unwrap();
    let demo = start_demo(data.path(), &[]);
    let base = &demo.base;
    let c = api_client(base);

    let csv = "archive_no,title,shelf\n\
               0451-H-500-00001,fine,R1-C2-L-S1-L1\n\
               0451-X-500-00002,bad category,\n\
               0451-H-500-00003,bad shelf,R1-C1-L-S1-L1\n";
    let r = c
        .post(format!("{base}/api/v1/import/boxes"))
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let problem: Value = r.json().await.unwrap();
    let lines: Vec<u64> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, [3, 4], "{problem}");
    let (status, _, _) = get(base, "/api/v1/boxes/0451-H-500-00001").await;
    assert_eq!(status, 404, "the good row was not kept either");

    let r = c
        .put(format!("{base}/api/v1/boxes/0451-H-001-00001/binding"))
        .json(&json!({"shelf": "R1-C5-X-S1-L1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["field"], "shelf");

    let r = c
        .put(format!("{base}/api/v1/boxes/0451-H-001-00001/binding"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.headers()["content-type"], "application/problem+json");

    let (status, ctype, p) = get(base, "/api/v1/boxes/0451-H-001-00001/history?at=yesterday").await;
    assert_eq!(
        (status, ctype.as_str(), p["field"].as_str()),
        (422, "application/problem+json", Some("at"))
    );
    let (status, _, _) = get(base, "/api/v1/boxes").await;
    assert_eq!(status, 422, "q is required");
    let (status, ctype, _) = get(base, "/api/v1/nothing-here").await;
    assert_eq!((status, ctype.as_str()), (404, "application/problem+json"));
    let (status, _, p) = get(base, "/api/v1/locate?epc=E2801170&barcode=x").await;
    assert_eq!(status, 422, "{p}");
    let (status, _, p) = get(base, "/api/v1/locate?epc=E28011700000000000000001").await;
    assert_eq!(
        (status, p["archive_no"].as_str()),
        (200, Some("0451-H-001-00001"))
    );
}

#[tokio::test]
async fn openapi_document_lists_every_route() {
    let data = tempfile::tempdir().unwrap();
    let demo = start_demo(data.path(), &[]);
    let (status, _, doc) = get(&demo.base, "/api/v1/openapi.json").await;
    assert_eq!(status, 200);
    let paths = doc["paths"].as_object().unwrap();
    for (path, method) in [
        ("/api/v1/health", "get"),
        ("/api/v1/boxes", "get"),
        ("/api/v1/boxes", "post"),
        ("/api/v1/boxes/{archive_no}", "get"),
        ("/api/v1/boxes/{archive_no}/location", "get"),
        ("/api/v1/boxes/{archive_no}/binding", "put"),
        ("/api/v1/boxes/{archive_no}/binding", "delete"),
        ("/api/v1/boxes/{archive_no}/history", "get"),
        ("/api/v1/locate", "get"),
        ("/api/v1/shelves", "get"),
        ("/api/v1/shelves/suggest", "get"),
        ("/api/v1/bindings/moves", "post"),
        ("/api/v1/import/boxes", "post"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} missing from the OpenAPI document"
        );
    }
    assert!(doc["components"]["schemas"]["Location"].is_object());
    // States are enums in the document, with the values the JSON carries.
    let schemas = &doc["components"]["schemas"];
    for (name, values) in [
        ("RangeMotion", &["idle", "moving", "stopped", "unknown"][..]),
        ("LinkState", &["up", "down"][..]),
        ("OpState", &["queued", "moving", "done", "stopped"][..]),
        ("LoanKind", &["reading_room", "external"][..]),
        (
            "LoanState",
            &["requested", "checked_out", "return_refused"][..],
        ),
        ("SweepState", &["running", "done", "interrupted"][..]),
        ("Source", &["manual", "import", "sweep", "live_read"][..]),
    ] {
        let listed: Vec<&str> = schemas[name]["enum"]
            .as_array()
            .unwrap_or_else(|| panic!("{name} is not an enum in the document"))
            .iter()
            .filter_map(|v| v.as_str())
            .collect();
        for v in values {
            assert!(listed.contains(v), "{name} lacks {v}: {listed:?}");
        }
    }
}

#[test]
fn check_config_summarises_and_names_the_key_at_fault() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(BIN)
        .args(["check-config", "config/demo-room.toml"])
        .current_dir(root)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("3 range(s), 1200 shelves"), "{text}");

    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.toml");
    let demo = std::fs::read_to_string(root.join("config/demo-room.toml")).unwrap();
    std::fs::write(&broken, demo.replacen("levels = 6", "levels = 0", 1)).unwrap();
    let out = Command::new(BIN)
        .arg("check-config")
        .arg(&broken)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("broken.toml: ranges[0].levels: must be at least 1"),
        "{err}"
    );

    // On a site broker every password must exist: check-config names the missing ones.
    let site = dir.path().join("site.toml");
    let secrets = dir.path().join("secrets");
    let text = demo
        .replacen(
            "profiles_dir = \"../device-profiles\"",
            &format!("profiles_dir = {:?}", root.join("device-profiles")),
            1,
        )
        .replacen(
            "broker = \"embedded\"",
            &format!(
                "broker = \"mqtts://stackroom@broker.example:8883\"\nca_file = \"ca.pem\"\nsecrets_dir = {secrets:?}"
            ),
            1,
        );
    std::fs::write(&site, text).unwrap();
    let out = Command::new(BIN)
        .arg("check-config")
        .arg(&site)
        .output()
        .unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(!out.status.success(), "{err}");
    for user in ["'stackroom'", "'shelving-2'", "'reader-3'", "'env-zigbee'"] {
        assert!(err.contains(user), "{user} missing from: {err}");
    }
    // Once `broker-config` has made them, nothing is missing.
    let out = Command::new(BIN)
        .args(["broker-config", "--config"])
        .arg(&site)
        .arg("--out")
        .arg(dir.path().join("broker"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(BIN)
        .arg("check-config")
        .arg(&site)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn cli_import_rejects_a_bad_file_whole_and_takes_a_good_one() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let import = |csv: &str| {
        let file = dir.path().join("boxes.csv");
        std::fs::write(&file, csv).unwrap();
        Command::new(BIN)
            .arg("import")
            .arg(&file)
            .args(["--config", "config/demo-room.toml", "--data"])
            .arg(dir.path().join("data"))
            .current_dir(root)
            .output()
            .unwrap()
    };
    let out = import(
        "archive_no,epc\n0451-H-001-00001,E2801170000000000000000A\n0451-H-001-00002,nothex\n",
    );
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("line 3 [epc]"), "{err}");
    let out = import("archive_no,epc\n0451-H-001-00001,E2801170000000000000000A\n");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8(out.stdout)
            .unwrap()
            .contains("imported 1 boxes")
    );
}

/// 1,500 connections that open and say nothing, against a server that may hold 1,024 files:
/// the health check still answers (the idle ones make room), and a slow client that never
/// finishes its headers is cut off.
#[tokio::test]
async fn idle_connections_do_not_keep_the_health_check_out() {
    use std::io::Read;
    // This process needs more than 1,500 descriptors itself.
    unsafe {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        limit.rlim_cur = limit.rlim_max.min(8192);
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
    }
    let data = tempfile::tempdir().unwrap();
    let d = common::start_demo_with(data.path(), &[], Some(1024));
    let addr = d.base.trim_start_matches("http://").to_string();
    let mut idle = Vec::new();
    for _ in 0..1500 {
        match std::net::TcpStream::connect(&addr) {
            Ok(s) => idle.push(s),
            Err(e) => panic!("connection {} refused: {e}", idle.len()),
        }
    }
    let started = std::time::Instant::now();
    let (status, _, body) = common::get(&d.base, "/api/v1/health").await;
    assert_eq!(status, 200, "{body}");
    eprintln!(
        "health answered in {:?} with 1,500 idle connections",
        started.elapsed()
    );
    // The oldest idle connections were closed to make room.
    let mut first = idle.remove(0);
    first
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let mut buf = [0u8; 16];
    let read = first.read(&mut buf);
    assert!(
        match &read {
            Ok(0) => true,
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
            Ok(_) => false,
        },
        "the oldest idle connection is still open: {read:?}"
    );
}

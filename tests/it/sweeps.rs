//! Inventory sweeps for real: `stackroom demo` with its seven simulated readers (R2000 and
//! Mercury on pseudo-terminals, an Impinj-style reader over MQTT), boxes moved, removed and
//! stray tags added through the simulator's control API, sweeps through the HTTP API.

use crate::common;

use std::collections::HashSet;

use common::{Demo, delete, get, post_json, put, start_demo, wait_for};
use serde_json::{Value, json};

/// The simulator at ten times real speed (the dwell is the config's, 100 ms).
fn demo(data: &tempfile::TempDir) -> Demo {
    start_demo(data.path(), &["--time-scale", "10"])
}

async fn start(d: &Demo, scope: Value, apply: &str) -> i64 {
    let (status, location, body) = post_json(
        &d.base,
        "/api/v1/sweeps",
        &json!({"scope": scope, "apply": apply}),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let id = body["id"].as_i64().unwrap();
    assert_eq!(
        location.as_deref(),
        Some(format!("/api/v1/sweeps/{id}").as_str())
    );
    assert_eq!(body["state"], "running");
    id
}

async fn finished(d: &Demo, id: i64) -> Value {
    let v = wait_for(&d.base, &format!("/api/v1/sweeps/{id}"), 240, |v| {
        v["state"] != "running"
    })
    .await;
    assert_eq!(v["state"], "done", "{v}");
    v
}

async fn report(d: &Demo, id: i64) -> Value {
    let (status, _, body) = get(&d.base, &format!("/api/v1/sweeps/{id}/report")).await;
    assert_eq!(status, 200, "{body}");
    body
}

fn finding<'a>(report: &'a Value, epc: &str) -> &'a Value {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["epc"] == epc)
        .unwrap_or_else(|| panic!("no finding for {epc}"))
}

/// The simulator's tags: (epc, archive_no, shelf).
async fn truth(d: &Demo) -> Vec<(String, Option<String>, Option<String>)> {
    let (_, _, state) = get(&d.sim, "/sim/state").await;
    state["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["epc"].as_str().unwrap().to_string(),
                t["archive_no"].as_str().map(str::to_string),
                t["shelf"].as_str().map(str::to_string),
            )
        })
        .collect()
}

fn on_shelf(truth: &[(String, Option<String>, Option<String>)], shelf: &str) -> (String, String) {
    truth
        .iter()
        .find(|(_, no, s)| no.is_some() && s.as_deref() == Some(shelf))
        .map(|(epc, no, _)| (epc.clone(), no.clone().unwrap()))
        .unwrap_or_else(|| panic!("no box on {shelf}"))
}

/// In the simulated room only: box `moved` is put on `shelf`, box `gone` leaves the room.
async fn move_and_remove(d: &Demo, moved: &str, shelf: &str, gone: &str) {
    let c = common::client();
    let r = c
        .post(format!("{}/sim/boxes/{moved}/move", d.sim))
        .body(format!(r#"{{"shelf":"{shelf}"}}"#))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = c
        .delete(format!("{}/sim/boxes/{gone}", d.sim))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
}

#[tokio::test]
async fn a_range_sweep_finds_the_moved_the_removed_and_the_stray_and_places_the_rest() {
    let data = tempfile::tempdir().unwrap();
    let d = demo(&data);
    let before = truth(&d).await;
    let (moved_epc, moved) = on_shelf(&before, "R1-C2-L-S1-L1");
    let (gone_epc, gone) = on_shelf(&before, "R1-C3-R-S2-L4");
    move_and_remove(&d, &moved, "R1-C4-R-S3-L5", &gone).await;
    let c = common::api_client(&d.base);
    let stray = "E2009999000000000000ABCD";
    let r = c
        .post(format!("{}/sim/tags", d.sim))
        .body(format!(r#"{{"epc":"{stray}","shelf":"R1-C5-L-S2-L2"}}"#))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);

    let id = start(&d, json!({"range": 1}), "report").await;
    let (status, _, busy) =
        post_json(&d.base, "/api/v1/sweeps", &json!({"scope": {"range": 2}})).await;
    assert_eq!(status, 409, "one sweep at a time: {busy}");
    assert_eq!(busy["reason"], "sweep_running");
    let (status, _, early) = get(&d.base, &format!("/api/v1/sweeps/{id}/report")).await;
    assert_eq!(status, 409, "no report before the end: {early}");

    let view = finished(&d, id).await;
    assert_eq!(view["progress"]["fraction"], 1.0);
    assert_eq!(view["progress"]["antennas"], 432);
    assert_eq!(view["progress"]["read"], 432);
    let report = report(&d, id).await;
    assert!(
        report["unread"].as_array().unwrap().is_empty(),
        "{}",
        report["unread"]
    );

    // The moved box's two shelves and the removed box's shelf had a second look, which
    // confirmed what the first pass saw: a box that really moved stays misplaced.
    assert!(
        view["progress"]["second_look"].as_u64().unwrap() >= 3,
        "{view}"
    );
    let f = finding(&report, &moved_epc);
    assert_eq!(f["status"], "misplaced", "{f}");
    assert_eq!(f["bound"], "R1-C2-L-S1-L1");
    assert_eq!(f["found"], "R1-C4-R-S3-L5");
    assert!(!f["evidence"].as_array().unwrap().is_empty());
    let f = finding(&report, &gone_epc);
    assert_eq!(f["status"], "missing", "{f}");
    let f = finding(&report, stray);
    assert_eq!(f["status"], "unknown", "{f}");
    assert_eq!(f["found"], "R1-C5-L-S2-L2");
    assert_eq!(f["archive_no"], Value::Null);

    // Every other box of range 1 against the simulator's truth.
    let in_range: Vec<_> = before
        .iter()
        .filter(|(epc, no, s)| {
            no.is_some()
                && s.as_deref().is_some_and(|s| s.starts_with("R1-"))
                && *epc != moved_epc
                && *epc != gone_epc
        })
        .collect();
    let right = in_range
        .iter()
        .filter(|(epc, _, shelf)| {
            let f = finding(&report, epc);
            f["status"] == "present" && f["found"].as_str() == shelf.as_deref()
        })
        .count();
    let share = right as f64 / in_range.len() as f64;
    assert!(
        share >= 0.995,
        "{right} of {} boxes placed right ({:.2}%)",
        in_range.len(),
        share * 100.0
    );
    // The box's own page hears of it: what stocktakes found amiss, newest first.
    let (_, _, findings) = get(&d.base, &format!("/api/v1/boxes/{moved}/findings")).await;
    assert_eq!(
        (
            findings["items"][0]["status"].as_str(),
            findings["items"][0]["found"].as_str(),
            findings["items"][0]["sweep"].as_i64()
        ),
        (Some("misplaced"), Some("R1-C4-R-S3-L5"), Some(id)),
        "{findings}"
    );
    let (_, _, neighbours) = get(&d.base, "/api/v1/shelves/R1-C2-L-S1-L1/boxes").await;
    assert!(
        neighbours["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["archive_no"] == moved),
        "still bound there, so listed there: {neighbours}"
    );
    // Report mode changed no binding.
    let (_, _, located) = get(&d.base, &format!("/api/v1/boxes/{moved}/location")).await;
    assert_eq!(located["shelf"]["address"], "R1-C2-L-S1-L1");

    // The CSV says the same.
    let r = c
        .get(format!("{}/api/v1/sweeps/{id}/report?format=csv", d.base))
        .send()
        .await
        .unwrap();
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let csv = r.text().await.unwrap();
    // A byte-order mark, so that a spreadsheet reads the titles as UTF-8.
    assert!(csv.starts_with(
        "\u{feff}status,archive_no,title,epc,bound,found,confidence,uncertain,applied,evidence,note"
    ));
    let (_, _, found) = get(&d.base, &format!("/api/v1/boxes/{moved}")).await;
    let title = found["title"].as_str().unwrap();
    assert!(
        csv.lines()
            .any(|l| l.starts_with(&format!("misplaced,{moved},"))
                && l.contains(title)
                && l.contains(&format!(",{moved_epc},R1-C2-L-S1-L1,R1-C4-R-S3-L5,"))),
        "{csv}"
    );
    let (status, _, bad) = get(&d.base, &format!("/api/v1/sweeps/{id}/report?format=xml")).await;
    assert_eq!((status, bad["field"].as_str()), (422, Some("format")));

    // Live counters saw the reads, per reader and antenna.
    let (_, _, readers) = get(&d.base, "/api/v1/readers").await;
    let r1 = readers["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "reader-1")
        .unwrap();
    assert!(r1["reads"].as_u64().unwrap() > 0, "{r1}");
    assert_eq!(
        r1["live"]["antennas"].as_array().unwrap().len(),
        216,
        "{r1}"
    );
    let (status, _, tag) = get(&d.base, &format!("/api/v1/tags/{stray}")).await;
    assert_eq!(status, 200, "{tag}");
    assert_eq!(tag["shelf"], "R1-C5-L-S2-L2");
    assert_eq!(tag["archive_no"], Value::Null);
    let (_, _, unknown) = get(&d.base, "/api/v1/tags?unknown=true").await;
    assert!(
        unknown["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["epc"] == stray),
        "{unknown}"
    );
}

#[tokio::test]
async fn a_reader_going_offline_mid_sweep_leaves_its_shelves_unread_never_missing() {
    let data = tempfile::tempdir().unwrap();
    let d = demo(&data);
    let id = start(&d, json!({"range": 1}), "report").await;
    // Let reader-1 (R2000) read a few shelves, then pull its plug.
    wait_for(&d.base, &format!("/api/v1/sweeps/{id}"), 60, |v| {
        v["progress"]["readers"][0]["done"].as_u64().unwrap_or(0) >= 10
    })
    .await;
    assert_eq!(
        put(&d.sim, "/sim/readers/reader-1/online", "false").await,
        204
    );
    let view = finished(&d, id).await;
    let report = report(&d, id).await;
    let unread: HashSet<&str> = report["unread"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            assert!(u["reason"].as_str().unwrap().contains("reader-1"), "{u}");
            assert_eq!(
                (u["code"].as_str(), u["reader"].as_str()),
                (Some("reader_failed"), Some("reader-1")),
                "{u}"
            );
            u["shelf"].as_str().unwrap()
        })
        .collect();
    assert!(
        unread.len() > 100,
        "reader-1's remaining shelves: {}",
        unread.len()
    );
    assert!(unread.len() < 216, "it had read some");
    assert!(
        unread
            .iter()
            .all(|s| s.starts_with("R1-C") && s[4..].find('-') == Some(1))
    );
    assert_eq!(view["progress"]["read"], 432 - unread.len());
    assert!(view["summary"]["not_read"].as_u64().unwrap() > 0, "{view}");
    for f in report["findings"].as_array().unwrap() {
        let bound = f["bound"].as_str().unwrap_or("");
        if unread.contains(bound) {
            assert_eq!(f["status"], "not_read", "a shelf nobody read: {f}");
        }
    }
    let (_, _, readers) = get(&d.base, "/api/v1/readers").await;
    let r1 = readers["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "reader-1")
        .unwrap();
    assert!(r1["failures"].as_u64().unwrap() >= 1, "{r1}");

    // Plugged back in, the reader is used again without anybody restarting anything;
    // locate kept working all along.
    let (status, _, _) = get(&d.base, "/api/v1/boxes/0451-H-001-00001/location").await;
    assert_eq!(status, 200);
    assert_eq!(
        put(&d.sim, "/sim/readers/reader-1/online", "true").await,
        204
    );
    let some: Vec<&str> = unread.iter().take(3).copied().collect();
    let id = start(&d, json!({"shelves": some}), "report").await;
    let view = finished(&d, id).await;
    assert_eq!(view["progress"]["read"], 3, "{view}");
    assert!(
        self::report(&d, id).await["unread"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn sync_rebinds_a_moved_box_with_the_sweep_as_source_and_never_unbinds_a_missing_one() {
    let data = tempfile::tempdir().unwrap();
    let d = demo(&data);
    let before = truth(&d).await;
    let (_, moved) = on_shelf(&before, "R2-C3-L-S1-L1");
    let (_, gone) = on_shelf(&before, "R2-C3-L-S4-L4");
    move_and_remove(&d, &moved, "R2-C3-L-S3-L6", &gone).await;
    let id = start(
        &d,
        json!({"shelves": ["R2-C3-L-S1-L1", "R2-C3-L-S3-L6", "R2-C3-L-S4-L4"]}),
        "sync",
    )
    .await;
    let view = finished(&d, id).await;
    assert_eq!(view["applied"], 1, "{view}");
    assert_eq!(view["summary"]["misplaced"], 1, "{view}");
    assert_eq!(view["summary"]["missing"], 1, "{view}");
    let (_, _, located) = get(&d.base, &format!("/api/v1/boxes/{moved}/location")).await;
    assert_eq!(located["shelf"]["address"], "R2-C3-L-S3-L6", "{located}");
    assert_eq!(located["source"], "sweep");
    let (_, _, history) = get(&d.base, &format!("/api/v1/boxes/{moved}/history")).await;
    let last = history["events"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["source"], "sweep", "{last}");
    assert_eq!(last["actor"], format!("sweep {id}"));
    // The missing box is flagged, still bound where it was.
    let (status, _, located) = get(&d.base, &format!("/api/v1/boxes/{gone}/location")).await;
    assert_eq!(status, 200, "{located}");
    assert_eq!(located["shelf"]["address"], "R2-C3-L-S4-L4");
    let report = report(&d, id).await;
    let f = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["archive_no"] == gone.as_str())
        .unwrap();
    assert_eq!(
        (&f["status"], &f["applied"]),
        (&json!("missing"), &json!(false)),
        "{f}"
    );
}

#[tokio::test]
async fn the_sweep_command_runs_one_with_progress_and_writes_the_report() {
    let data = tempfile::tempdir().unwrap();
    let d = demo(&data);
    let csv = data.path().join("sweep.csv");
    let boxes = truth(&d)
        .await
        .iter()
        .filter(|(_, no, s)| {
            no.is_some() && ["R1-C1-R-S1-L1", "R1-C1-R-S1-L2"].contains(&s.as_deref().unwrap_or(""))
        })
        .count();
    assert!(boxes > 0);
    let out = tokio::process::Command::new(common::BIN)
        .env("STACKROOM_TOKEN", &d.token)
        .args([
            "sweep",
            "--api",
            &d.base,
            "--scope",
            "shelves=R1-C1-R-S1-L1,R1-C1-R-S1-L2",
            "--report",
        ])
        .arg(&csv)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = format!("sweep 1 done: {boxes} present, 0 misplaced, 0 missing, 0 not read");
    assert!(stdout.contains(&said), "{stdout}");
    let written = std::fs::read_to_string(&csv).unwrap();
    let present = written
        .lines()
        .filter(|l| l.starts_with("present,"))
        .count();
    assert_eq!(present, boxes);
    let (_, _, view) = get(&d.base, "/api/v1/sweeps/1").await;
    let trigger = view["trigger"].as_str().unwrap();
    assert!(
        trigger.starts_with("cli:") && trigger.len() > 4,
        "the token's name: {trigger}"
    );

    let out = tokio::process::Command::new(common::BIN)
        .args([
            "sweep", "--api", &d.base, "--scope", "aisle=3", "--token", &d.token,
        ])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--scope 'aisle=3'"));
    // The token from a file: the answer comes from the controller, past its door.
    let token_file = data.path().join("token");
    std::fs::write(&token_file, format!("{}\n", d.token)).unwrap();
    let out = tokio::process::Command::new(common::BIN)
        .args([
            "sweep",
            "--api",
            &d.base,
            "--scope",
            "range=9",
            "--token-file",
        ])
        .arg(&token_file)
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("the sweep did not start: scope: the room has no range 9"),
        "{stderr}"
    );

    // Asking wrong, cancelling, and what is kept.
    for (body, field) in [
        (json!({"scope": {"range": 9}}), "scope"),
        (json!({"scope": {"room": false}}), "scope"),
        (json!({"scope": {"shelves": ["R1-C1-L-S1-L1"]}}), "scope"),
        (json!({"scope": {"range": 1}, "dwell_ms": 5}), "dwell_ms"),
    ] {
        let (status, _, problem) = post_json(&d.base, "/api/v1/sweeps", &body).await;
        assert_eq!(
            (status, problem["field"].as_str()),
            (422, Some(field)),
            "{body}: {problem}"
        );
    }
    let (status, _, problem) =
        post_json(&d.base, "/api/v1/sweeps", &json!({"scope": "everything"})).await;
    assert_eq!(status, 422, "{problem}");
    let id = start(&d, json!({"range": 1}), "report").await;
    let (status, cancelled) = delete(&d.base, &format!("/api/v1/sweeps/{id}")).await;
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["state"], "cancelled");
    assert_eq!(
        cancelled["summary"]["missing"], 0,
        "no verdicts: {cancelled}"
    );
    let (status, again) = delete(&d.base, &format!("/api/v1/sweeps/{id}")).await;
    assert_eq!(status, 409, "{again}");
    let (status, _, none) = get(&d.base, "/api/v1/sweeps/999").await;
    assert_eq!(status, 404, "{none}");
    let (_, _, list) = get(&d.base, "/api/v1/sweeps").await;
    let states: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["cancelled", "done"]);
}

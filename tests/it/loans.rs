//! Circulation through the API of the real demo: a loan's whole life with its role checks,
//! locate and retrieve for a box on loan, refused transitions.

use crate::common;

use serde_json::{Value, json};

use common::{client, get, post_json, start_demo};

async fn call(base: &str, token: &str, path: &str, body: Value) -> (u16, Value) {
    let r = client()
        .post(format!("{base}{path}"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn token(base: &str, name: &str, role: &str) -> String {
    let (status, _, t) =
        post_json(base, "/api/v1/tokens", &json!({"name": name, "role": role})).await;
    assert_eq!(status, 201, "{t}");
    t["secret"].as_str().unwrap().to_string()
}

fn day(offset: i64) -> String {
    (chrono::Utc::now().date_naive() + chrono::Duration::days(offset)).to_string()
}

#[tokio::test]
async fn a_loan_is_requested_approved_checked_out_and_returned_with_its_inspection() {
    let dir = tempfile::tempdir().unwrap();
    let demo = start_demo(dir.path(), &[]);
    let base = demo.base.as_str();
    let desk = token(base, "desk", "operator").await;
    let chief = token(base, "chief", "approver").await;
    let viewer = token(base, "reader", "viewer").await;
    let (a, b) = ("0451-H-001-00001", "0451-H-001-00002");
    let request = json!({
        "borrower": {"name": "Li Wei", "department": "Legal"},
        "boxes": [a, b],
        "purpose": "contract dispute, customer 88231",
        "kind": "external",
        "due": day(10),
    });

    // Requested by the desk; a viewer may not.
    let (status, body) = call(base, &viewer, "/api/v1/loans", request.clone()).await;
    assert_eq!(status, 403, "{body}");
    let (status, loan) = call(base, &desk, "/api/v1/loans", request.clone()).await;
    assert_eq!(status, 201, "{loan}");
    assert_eq!(
        loan["state"], "requested",
        "external loans need approval: {loan}"
    );
    let id = loan["id"].as_i64().unwrap();
    let path = |action: &str| format!("/api/v1/loans/{id}/{action}");

    // Only an approver approves it; nothing is checked out before.
    let (status, body) = call(base, &desk, &path("approve"), json!({})).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("approver"),
        "{body}"
    );
    let (status, body) = call(base, &desk, &path("checkout"), json!({})).await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("is requested"),
        "says the state: {body}"
    );
    let (status, loan) = call(
        base,
        &chief,
        &path("approve"),
        json!({"note": "court order seen"}),
    )
    .await;
    assert_eq!(
        (status, loan["state"].as_str()),
        (200, Some("approved")),
        "{loan}"
    );
    let (status, _) = call(base, &chief, &path("approve"), json!({})).await;
    assert_eq!(status, 409, "approved once");
    // Four eyes: an approver who asks for an external loan cannot approve it too.
    let own = json!({
        "borrower": {"name": "Chen Jie", "department": "Audit"},
        "boxes": ["0451-H-001-00005"],
        "purpose": "internal audit",
        "kind": "external",
        "due": day(5),
    });
    let (status, mine) = call(base, &chief, "/api/v1/loans", own).await;
    assert_eq!(status, 201, "{mine}");
    let own_path = format!("/api/v1/loans/{}/approve", mine["id"]);
    let (status, body) = call(base, &chief, &own_path, json!({})).await;
    assert_eq!(
        (status, body["reason"].as_str()),
        (403, Some("four_eyes")),
        "{body}"
    );
    let admin = token(base, "head", "admin").await;
    let (status, body) = call(base, &admin, &own_path, json!({})).await;
    assert_eq!(status, 200, "another approves it: {body}");

    // Out: locate says to whom, and the aisle is not opened for it.
    let (status, loan) = call(base, &desk, &path("checkout"), json!({})).await;
    assert_eq!(
        (status, loan["state"].as_str()),
        (200, Some("checked_out")),
        "{loan}"
    );
    let (_, _, loc) = get(base, &format!("/api/v1/boxes/{a}/location")).await;
    assert_eq!(loc["state"], "on_loan", "{loc}");
    assert_eq!(
        (loc["loan"]["id"].as_i64(), loc["loan"]["borrower"].as_str()),
        (Some(id), Some("Li Wei"))
    );
    assert_eq!(loc["loan"]["due"], day(10));
    assert_eq!(
        loc["shelf"]["address"], "R1-C1-R-S1-L1",
        "the home shelf stays"
    );
    let (status, body) = call(
        base,
        &desk,
        &format!("/api/v1/boxes/{a}/retrieve"),
        json!(null),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("on loan"),
        "{body}"
    );
    let (_, _, found) = get(base, &format!("/api/v1/boxes?q={a}")).await;
    assert_eq!(
        found["items"][0]["location"]["state"], "on_loan",
        "search says so too"
    );

    // Another loan of the same box is refused.
    let (status, body) = call(base, &desk, "/api/v1/loans", json!({
        "borrower": {"name": "Zhang San"}, "boxes": [a], "purpose": "audit", "kind": "reading_room", "due": day(1),
    }))
    .await;
    assert_eq!(
        (status, body["type"].as_str()),
        (409, Some("urn:stackroom:box-on-loan")),
        "{body}"
    );

    // Back: one box complete, one damaged: the loan stays open for the damaged one.
    let (status, loan) = call(
        base,
        &desk,
        &path("return"),
        json!({"inspections": [
            {"archive_no": a, "result": "complete"},
            {"archive_no": b, "result": "damaged", "note": "water stain on the cover"},
        ]}),
    )
    .await;
    assert_eq!(
        (status, loan["state"].as_str()),
        (200, Some("return_refused")),
        "{loan}"
    );
    let (_, _, loc_a) = get(base, &format!("/api/v1/boxes/{a}/location")).await;
    let (_, _, loc_b) = get(base, &format!("/api/v1/boxes/{b}/location")).await;
    assert_eq!(
        (loc_a["state"].as_str(), loc_b["state"].as_str()),
        (Some("on_shelf"), Some("on_loan"))
    );
    let (status, body) = call(
        base,
        &desk,
        &path("return"),
        json!({"inspections": [{"archive_no": a, "result": "complete"}]}),
    )
    .await;
    assert_eq!(status, 422, "a box already back: {body}");
    let (status, loan) = call(
        base,
        &desk,
        &path("return"),
        json!({"inspections": [
            {"archive_no": b, "result": "complete", "note": "stain was there before (photo 2024)"},
        ]}),
    )
    .await;
    assert_eq!(
        (status, loan["state"].as_str()),
        (200, Some("returned")),
        "{loan}"
    );
    let states: Vec<(&str, &str)> = loan["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["to"].as_str().unwrap(), e["actor"].as_str().unwrap()))
        .collect();
    assert_eq!(
        states,
        [
            ("requested", "desk"),
            ("approved", "chief"),
            ("checked_out", "desk"),
            ("return_refused", "desk"),
            ("returned", "desk")
        ]
    );
    assert!(
        loan["events"][3]["note"]
            .as_str()
            .unwrap()
            .contains("damaged"),
        "{loan}"
    );
    let (status, _) = call(base, &desk, &path("cancel"), json!({})).await;
    assert_eq!(status, 409, "a returned loan is not cancelled");

    // A reading-room loan needs no approval; it is cancelled before checkout.
    let (status, loan) = call(base, &desk, "/api/v1/loans", json!({
        "borrower": {"name": "Zhang San"}, "boxes": [a], "purpose": "audit", "kind": "reading_room", "due": day(1),
    }))
    .await;
    assert_eq!(
        (status, loan["state"].as_str()),
        (201, Some("approved")),
        "{loan}"
    );
    let rid = loan["id"].as_i64().unwrap();
    let (status, loan) = call(
        base,
        &desk,
        &format!("/api/v1/loans/{rid}/cancel"),
        json!({"note": "came back tomorrow"}),
    )
    .await;
    assert_eq!((status, loan["state"].as_str()), (200, Some("cancelled")));

    // The rules: the longest loan, unknown boxes, bad input.
    let (status, body) = call(base, &desk, "/api/v1/loans", json!({
        "borrower": {"name": "Zhang San"}, "boxes": [a], "purpose": "audit", "kind": "reading_room", "due": day(40),
    }))
    .await;
    assert_eq!(
        (status, body["field"].as_str()),
        (422, Some("due")),
        "{body}"
    );
    // The rule and its numbers, for the page to say in its own words.
    assert_eq!(
        (
            body["params"]["rule"].as_str(),
            body["params"]["max_days"].as_i64()
        ),
        (Some("due_too_far"), Some(7)),
        "{body}"
    );
    let (status, body) = call(base, &desk, "/api/v1/loans", json!({
        "borrower": {"name": "Zhang San"}, "boxes": ["9999-X-000-00000"], "purpose": "audit", "kind": "reading_room", "due": day(1),
    }))
    .await;
    assert_eq!(status, 404);
    assert_eq!(body["params"]["box"], "9999-X-000-00000", "{body}");
    let (status, _) = call(
        base,
        &desk,
        "/api/v1/loans",
        json!({"borrower": {"name": "Zhang San"}, "kind": "abroad"}),
    )
    .await;
    assert_eq!(status, 422);

    // Listed by state and borrower.
    let (_, _, list) = get(base, "/api/v1/loans?state=returned").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "{list}");
    let (_, _, list) = get(base, "/api/v1/loans?borrower=Zhang%20San").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "{list}");
    let (_, _, list) = get(base, "/api/v1/loans?overdue=true").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 0, "{list}");
    let (status, _, _) = get(base, "/api/v1/loans?state=lost").await;
    assert_eq!(status, 422);
}

#[tokio::test]
async fn a_borrower_holds_no_more_boxes_than_the_rule_allows() {
    let dir = tempfile::tempdir().unwrap();
    let demo = start_demo(dir.path(), &[]);
    let base = demo.base.as_str();
    let (_, _, found) = get(base, "/api/v1/boxes?q=0451-H-001&limit=25").await;
    let boxes: Vec<&str> = found["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["archive_no"].as_str().unwrap())
        .collect();
    let ask = |boxes: &[&str]| json!({"borrower": {"name": "Wang Wu"}, "boxes": boxes, "purpose": "research", "kind": "reading_room", "due": day(2)});
    let (status, _, loan) = post_json(base, "/api/v1/loans", &ask(&boxes[..15])).await;
    assert_eq!(status, 201, "{loan}");
    let (status, _, body) = post_json(base, "/api/v1/loans", &ask(&boxes[15..25])).await;
    assert_eq!(
        (status, body["type"].as_str()),
        (409, Some("urn:stackroom:borrower-limit")),
        "{body}"
    );
    assert!(
        body["detail"].as_str().unwrap().contains("at most 20"),
        "{body}"
    );
    assert_eq!(
        (
            body["params"]["max"].as_i64(),
            body["params"]["would"].as_i64()
        ),
        (Some(20), Some(25)),
        "{body}"
    );
}

/// Boxes that failed their return inspection end somewhere true: back on the shelf with a
/// note, in the repair room, or lost; the loan closes when none is left.
#[tokio::test]
async fn boxes_refused_at_return_are_settled_accepted_to_repair_or_lost() {
    let dir = tempfile::tempdir().unwrap();
    let demo = start_demo(dir.path(), &[]);
    let base = demo.base.as_str();
    let desk = token(base, "desk", "operator").await;
    let keeper = token(base, "keeper", "archivist").await;
    let boxes = ["0451-H-001-00001", "0451-H-001-00002", "0451-H-001-00003"];
    let (status, loan) = call(base, &desk, "/api/v1/loans", json!({
        "borrower": {"name": "Li Wei"}, "boxes": boxes, "purpose": "audit", "kind": "reading_room", "due": day(1),
    }))
    .await;
    assert_eq!(status, 201, "{loan}");
    let id = loan["id"].as_i64().unwrap();
    let path = |action: &str| format!("/api/v1/loans/{id}/{action}");
    assert_eq!(call(base, &desk, &path("checkout"), json!({})).await.0, 200);
    let settle = |archive_no: &str, how: &str| json!({"archive_no": archive_no, "settlement": how, "note": format!("{how}: decided at the desk")});
    let (status, body) = call(base, &keeper, &path("settle"), settle(boxes[0], "accepted")).await;
    assert_eq!(
        (status, body["type"].as_str()),
        (409, Some("urn:stackroom:loan-state")),
        "nothing is settled before a refused return: {body}"
    );
    // Extended while out: later than it was, within the reading room's week.
    let (status, body) = call(base, &desk, &path("extend"), json!({"due": day(30)})).await;
    assert_eq!(
        (status, body["params"]["rule"].as_str()),
        (422, Some("due_too_far")),
        "{body}"
    );
    let (status, body) = call(base, &desk, &path("extend"), json!({"due": day(1)})).await;
    assert_eq!(
        (status, body["params"]["rule"].as_str()),
        (422, Some("not_later")),
        "{body}"
    );
    let (status, loan) = call(
        base,
        &desk,
        &path("extend"),
        json!({"due": day(5), "note": "audit runs long"}),
    )
    .await;
    assert_eq!(
        (status, loan["due"].as_str()),
        (200, Some(day(5).as_str())),
        "{loan}"
    );
    let last = loan["events"].as_array().unwrap().last().unwrap().clone();
    assert!(
        last["note"].as_str().unwrap().contains("audit runs long"),
        "{last}"
    );
    let (status, loan) = call(
        base,
        &desk,
        &path("return"),
        json!({"inspections": [
            {"archive_no": boxes[0], "result": "damaged", "note": "corner torn"},
            {"archive_no": boxes[1], "result": "damaged", "note": "water stain"},
            {"archive_no": boxes[2], "result": "pages_missing"},
        ]}),
    )
    .await;
    assert_eq!(
        (status, loan["state"].as_str()),
        (200, Some("return_refused")),
        "{loan}"
    );

    // The desk (an operator) may inspect, not settle; an archivist settles.
    let (status, _) = call(base, &desk, &path("settle"), settle(boxes[0], "accepted")).await;
    assert_eq!(status, 403);
    let (status, loan) = call(base, &keeper, &path("settle"), settle(boxes[0], "accepted")).await;
    assert_eq!(
        (status, loan["state"].as_str()),
        (200, Some("return_refused")),
        "{loan}"
    );
    let (status, body) = call(base, &keeper, &path("settle"), settle(boxes[0], "lost")).await;
    assert_eq!(
        (status, body["params"]["rule"].as_str()),
        (422, Some("not_out")),
        "settled once: {body}"
    );
    let (status, _) = call(base, &keeper, &path("settle"), settle(boxes[1], "repair")).await;
    assert_eq!(status, 200);
    let (status, loan) = call(base, &keeper, &path("settle"), settle(boxes[2], "lost")).await;
    assert_eq!(
        (status, loan["state"].as_str()),
        (200, Some("returned")),
        "{loan}"
    );

    // Each box is where its settlement put it.
    let (_, _, accepted) = get(base, &format!("/api/v1/boxes/{}/location", boxes[0])).await;
    assert_eq!(accepted["state"], "on_shelf", "{accepted}");
    let (_, _, repaired) = get(base, &format!("/api/v1/boxes/{}/location", boxes[1])).await;
    assert_eq!(
        (
            repaired["state"].as_str(),
            repaired["place"]["kind"].as_str()
        ),
        (Some("in_place"), Some("repair")),
        "{repaired}"
    );
    let (_, _, lost) = get(base, &format!("/api/v1/boxes/{}/location", boxes[2])).await;
    assert_eq!(lost["state"], "lost", "{lost}");
    let (status, body) = call(
        base,
        &keeper,
        &format!("/api/v1/boxes/{}/retrieve", boxes[2]),
        json!({}),
    )
    .await;
    assert_eq!(
        (status, body["type"].as_str()),
        (409, Some("urn:stackroom:box-lost")),
        "no aisle is opened for a lost box: {body}"
    );
    // The desk finds the loan by part of the borrower's name, and by a box.
    let (_, _, by_name) = get(base, "/api/v1/loans?borrower=li%20w").await;
    let (_, _, by_box) = get(base, &format!("/api/v1/loans?box={}", boxes[2])).await;
    for list in [&by_name, &by_box] {
        assert_eq!(list["items"].as_array().unwrap().len(), 1, "{list}");
        assert_eq!(list["items"][0]["id"].as_i64(), Some(id), "{list}");
    }
    let (_, _, none) = get(base, "/api/v1/loans?borrower=%25").await;
    assert_eq!(
        none["items"].as_array().unwrap().len(),
        0,
        "a % is a character: {none}"
    );
    // Nothing of the inspection is lost: its note and the settlement's are both kept.
    let first = &loan["boxes"][0];
    assert_eq!(first["settled"], "accepted", "{loan}");
    let note = first["note"].as_str().unwrap();
    assert!(
        note.contains("corner torn") && note.contains("decided at the desk"),
        "{note}"
    );
    let register = common::api_client(base)
        .get(format!("{base}/api/v1/register?state=lost"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let listed: Vec<&str> = register.lines().skip(1).collect();
    assert!(
        listed.len() == 1 && listed[0].starts_with(boxes[2]),
        "the register lists the lost box: {register}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stocktake_reports_boxes_on_loan_and_boxes_back_without_check_in() {
    let dir = tempfile::tempdir().unwrap();
    let demo = start_demo(dir.path(), &["--time-scale", "10"]);
    let base = demo.base.as_str();
    let (a, b) = ("0451-H-001-00001", "0451-H-001-00002");
    let (_, _, loc) = get(base, &format!("/api/v1/boxes/{b}/location")).await;
    let shelf = loc["shelf"]["address"].as_str().unwrap().to_string();
    assert_eq!(shelf, "R1-C1-R-S1-L1", "both boxes live on the same shelf");
    let (status, _, loan) = post_json(base, "/api/v1/loans", &json!({
        "borrower": {"name": "Li Wei"}, "boxes": [a, b], "purpose": "audit", "kind": "reading_room", "due": day(1),
    }))
    .await;
    assert_eq!(status, 201, "{loan}");
    let id = loan["id"].as_i64().unwrap();
    let (status, _, _) = post_json(base, &format!("/api/v1/loans/{id}/checkout"), &json!({})).await;
    assert_eq!(status, 200);
    // A is in the reading room; B was put back on its shelf without a check-in.
    let status = client()
        .delete(format!("{}/sim/boxes/{a}", demo.sim))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 204);

    let (status, _, sweep) = post_json(
        base,
        "/api/v1/sweeps",
        &json!({"scope": {"shelves": [shelf]}}),
    )
    .await;
    assert_eq!(status, 202, "{sweep}");
    let sweep_id = sweep["id"].as_i64().unwrap();
    let done = common::wait_for(base, &format!("/api/v1/sweeps/{sweep_id}"), 60, |s| {
        s["state"] != "running"
    })
    .await;
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(done["summary"]["on_loan"], 1, "{done}");
    assert_eq!(done["summary"]["returned_without_check_in"], 1, "{done}");
    assert_eq!(
        done["summary"]["missing"], 0,
        "a box on loan is not missing: {done}"
    );
    let (_, _, report) = get(base, &format!("/api/v1/sweeps/{sweep_id}/report")).await;
    let finding = |no: &str| {
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["archive_no"] == no)
            .cloned()
            .unwrap()
    };
    assert_eq!(finding(a)["status"], "on_loan");
    assert_eq!(finding(b)["status"], "returned_without_check_in");
    assert_eq!(finding(b)["found"], "R1-C1-R-S1-L1", "where it was seen");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overdue_loan_is_listed_told_of_once_on_mqtt_and_shown_by_the_cli() {
    use rumqttc::{AsyncClient, Event, Packet, QoS};
    let dir = tempfile::tempdir().unwrap();
    let demo = start_demo(dir.path(), &[]);
    let base = demo.base.as_str();
    let (status, _, loan) = post_json(
        base,
        "/api/v1/loans",
        &json!({
            "borrower": {"name": "Li Wei", "department": "Legal"}, "boxes": ["0451-H-001-00003"],
            "purpose": "audit", "kind": "reading_room", "due": day(1),
        }),
    )
    .await;
    assert_eq!(status, 201, "{loan}");
    let id = loan["id"].as_i64().unwrap();
    let (status, _, _) = post_json(base, &format!("/api/v1/loans/{id}/checkout"), &json!({})).await;
    assert_eq!(status, 200);

    let (client, mut events) = AsyncClient::new(demo.mqtt_options("test-overdue"), 64);
    client
        .subscribe("stackroom/gd-power/stack-1/loans/overdue", QoS::AtLeastOnce)
        .await
        .unwrap();
    // Time passes: the loan was due yesterday (written as another process would).
    let db = rusqlite::Connection::open(dir.path().join("stackroom.db")).unwrap();
    db.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
    db.execute(
        "UPDATE loans SET due = ?2 WHERE id = ?1",
        rusqlite::params![id, day(-1)],
    )
    .unwrap();

    let mut told = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(25), async {
        loop {
            if let Ok(Event::Incoming(Packet::Publish(p))) = events.poll().await {
                told.push(serde_json::from_slice::<Value>(&p.payload).unwrap());
            }
        }
    })
    .await;
    assert_eq!(told.len(), 1, "once a day, not once a check: {told:?}");
    assert_eq!(
        (told[0]["id"].as_i64(), told[0]["overdue"].as_bool()),
        (Some(id), Some(true))
    );
    let (_, _, list) = get(base, "/api/v1/loans?overdue=true").await;
    assert_eq!(list["items"][0]["id"].as_i64(), Some(id), "{list}");

    let out = std::process::Command::new(common::BIN)
        .args(["loans", "overdue", "--data"])
        .arg(dir.path())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.starts_with(&format!(
            "{id}\tchecked_out\treading_room\tLi Wei (Legal)\tdue {} OVERDUE\t0451-H-001-00003",
            day(-1)
        )),
        "{text}"
    );
    let out = std::process::Command::new(common::BIN)
        .args(["loans", "list", "--state", "returned", "--data"])
        .arg(dir.path())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

//! The door gate in the demo: hw-sim walks a box's tag through the gate reader (Impinj
//! events on MQTT) in either direction; with and without a loan.

use crate::common;

use serde_json::{Value, json};

use common::{get, post_json, start_demo, wait_for};

async fn walk(sim: &str, archive_no: &str, direction: &str) {
    let r = common::client()
        .post(format!("{sim}/sim/gates/gate-1/walk"))
        .json(&json!({"archive_no": archive_no, "direction": direction}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
}

fn gate_alarms<'a>(alarms: &'a Value, archive_no: &str) -> Vec<&'a Value> {
    alarms["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"] == "gate" && a["sensor"] == archive_no)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_box_leaving_without_a_loan_raises_an_alarm_and_one_on_loan_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let demo = start_demo(dir.path(), &[]);
    let (base, sim) = (demo.base.as_str(), demo.sim.as_str());
    let (a, b) = ("0451-H-001-00001", "0451-H-001-00002");

    // A leaves with no loan: an alarm, and the box is flagged.
    walk(sim, a, "out").await;
    let alarms = wait_for(base, "/api/v1/alarms?state=active", 15, |v| {
        !gate_alarms(v, a).is_empty()
    })
    .await;
    let raised = gate_alarms(&alarms, a);
    assert_eq!(raised.len(), 1, "{alarms}");
    assert_eq!(raised[0]["zone"], "gate-1");
    assert!(
        raised[0]["message"]
            .as_str()
            .unwrap()
            .contains("without a loan"),
        "{alarms}"
    );
    let (_, _, loc) = get(base, &format!("/api/v1/boxes/{a}/location")).await;
    assert_eq!(loc["state"], "left_without_loan", "{loc}");

    // It comes back: the flag and the alarm go.
    walk(sim, a, "in").await;
    let loc = wait_for(base, &format!("/api/v1/boxes/{a}/location"), 15, |l| {
        l["state"] == "on_shelf"
    })
    .await;
    assert_eq!(loc["state"], "on_shelf", "{loc}");
    let (_, _, cleared) = get(base, "/api/v1/alarms?state=cleared").await;
    assert_eq!(gate_alarms(&cleared, a).len(), 1, "{cleared}");

    // B on an approved external loan: out and in are recorded on the loan, no alarm.
    let (_, _, chief) = post_json(
        base,
        "/api/v1/tokens",
        &json!({"name": "chief", "role": "approver"}),
    )
    .await;
    let (status, _, loan) = post_json(base, "/api/v1/loans", &json!({
        "borrower": {"name": "Li Wei", "department": "Legal"}, "boxes": [b], "purpose": "court hearing",
        "kind": "external", "due": (chrono::Utc::now().date_naive() + chrono::Duration::days(3)).to_string(),
    }))
    .await;
    assert_eq!(status, 201, "{loan}");
    let id = loan["id"].as_i64().unwrap();
    let approved = common::client()
        .post(format!("{base}/api/v1/loans/{id}/approve"))
        .bearer_auth(chief["secret"].as_str().unwrap())
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(approved.status(), 200);
    let (status, _, _) = post_json(base, &format!("/api/v1/loans/{id}/checkout"), &json!({})).await;
    assert_eq!(status, 200);
    walk(sim, b, "out").await;
    let loan = wait_for(base, &format!("/api/v1/loans/{id}"), 15, |l| {
        l["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["note"].as_str().unwrap().contains("left through gate-1"))
    })
    .await;
    assert!(
        loan["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["actor"] == "gate-1"),
        "{loan}"
    );
    walk(sim, b, "in").await;
    wait_for(base, &format!("/api/v1/loans/{id}"), 15, |l| {
        l["events"].as_array().unwrap().iter().any(|e| {
            e["note"]
                .as_str()
                .unwrap()
                .contains("came back through gate-1")
        })
    })
    .await;
    let (_, _, alarms) = get(base, "/api/v1/alarms").await;
    assert!(
        gate_alarms(&alarms, b).is_empty(),
        "a box on an external loan is no alarm: {alarms}"
    );

    // Every passage is in the audit trail.
    let (_, _, audit) = get(base, "/api/v1/audit?kind=gate").await;
    let outcomes: Vec<(&str, &str)> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap(),
                e["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    let loan_outcome = format!("loan {id}");
    assert_eq!(
        outcomes,
        [
            (format!("{a} out").as_str(), "alarm: no loan"),
            (format!("{a} in").as_str(), "back"),
            (format!("{b} out").as_str(), loan_outcome.as_str()),
            (format!("{b} in").as_str(), loan_outcome.as_str()),
        ],
        "{audit}"
    );
}

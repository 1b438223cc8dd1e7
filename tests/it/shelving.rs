//! Opening aisles for real: `stackroom demo` driving the simulated shelving over real
//! pseudo-terminals (range 1, Modbus RTU; range 3, framed bytes) and a real MQTT broker
//! (range 2, JSON), with the interlocks tripped through the simulator's control API.

use crate::common;

use common::{Demo, get, post, put, start_demo, wait_for};
use serde_json::Value;

/// The demo at ten times real speed.
fn demo(data: &tempfile::TempDir) -> Demo {
    start_demo(data.path(), &["--time-scale", "10"])
}

async fn range_ready(d: &Demo, range: u16) -> Value {
    let path = format!("/api/v1/ranges/{range}");
    wait_for(&d.base, &path, 15, |v| {
        v["link"] == "up" && v["motion"] == "idle"
    })
    .await
}

async fn finished(d: &Demo, op: &str) -> Value {
    let path = format!("/api/v1/operations/{op}");
    wait_for(&d.base, &path, 30, |v| {
        ["done", "refused", "failed", "stopped"].contains(&v["state"].as_str().unwrap_or(""))
    })
    .await
}

/// The simulator's count of motion commands the range's controller accepted.
async fn motions(d: &Demo, range: u16) -> u64 {
    let (_, _, state) = get(&d.sim, "/sim/state").await;
    state["ranges"][range as usize - 1]["motions"]
        .as_u64()
        .unwrap()
}

#[tokio::test]
async fn opening_aisles_over_modbus_and_mqtt_moves_the_carriages_there() {
    let data = tempfile::tempdir().unwrap();
    let d = demo(&data);
    for (range, aisle) in [(1u16, 6u16), (2, 3), (3, 7)] {
        let view = range_ready(&d, range).await;
        assert_eq!(view["open_aisle"], 1, "{view}");
        let (status, body) = post(
            &d.base,
            &format!("/api/v1/ranges/{range}/aisles/{aisle}/open"),
        )
        .await;
        assert_eq!(status, 202, "{body}");
        let op = finished(&d, body["operation"].as_str().unwrap()).await;
        assert_eq!(op["state"], "done", "{op}");
        let view = range_ready(&d, range).await;
        assert_eq!(view["open_aisle"], aisle, "{view}");
        // The simulated carriages stand where the controller says.
        let (_, _, truth) = get(&d.sim, "/sim/state").await;
        let sim_positions = &truth["ranges"][range as usize - 1]["positions_mm"];
        let ours: Vec<Value> = view["carriages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["position_mm"].clone())
            .collect();
        assert_eq!(&Value::Array(ours), sim_positions);
    }
    // Retrieve: locate a box and open its aisle (0451-H-001-00001 is on R1-C1-R, aisle 1).
    let (status, body) = post(&d.base, "/api/v1/boxes/0451-H-001-00001/retrieve").await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["location"]["aisle"]["aisle"], 1);
    let op = finished(&d, body["operation"].as_str().unwrap()).await;
    assert_eq!(op["state"], "done", "{op}");
    assert_eq!(range_ready(&d, 1).await["open_aisle"], 1);
}

#[tokio::test]
async fn a_person_in_the_aisle_that_would_close_is_never_run_over() {
    let data = tempfile::tempdir().unwrap();
    let d = demo(&data);
    for range in [1u16, 2, 3] {
        range_ready(&d, range).await;
        // Aisle 1 is open and someone is in it: opening aisle 4 would close it.
        let path = format!("/sim/ranges/{range}/aisles/1/occupied");
        assert_eq!(put(&d.sim, &path, "true").await, 200);
        wait_for(&d.base, &format!("/api/v1/ranges/{range}"), 10, |v| {
            v["occupied_aisles"] == serde_json::json!([1])
        })
        .await;
        let before = motions(&d, range).await;
        let (status, body) = post(&d.base, &format!("/api/v1/ranges/{range}/aisles/4/open")).await;
        assert_eq!(status, 409, "{body}");
        assert_eq!(body["reason"], "aisle_occupied");
        assert!(
            body["detail"].as_str().unwrap().contains("aisle 1"),
            "{body}"
        );
        assert_eq!(motions(&d, range).await, before, "nothing reached the wire");
        assert_eq!(put(&d.sim, &path, "false").await, 200);
    }
}

#[tokio::test]
async fn an_emergency_stop_mid_motion_stops_and_holds_until_released() {
    let data = tempfile::tempdir().unwrap();
    let d = demo(&data);
    range_ready(&d, 1).await;
    let (status, body) = post(&d.base, "/api/v1/ranges/1/aisles/9/open").await;
    assert_eq!(status, 202, "{body}");
    let op_id = body["operation"].as_str().unwrap().to_string();
    // Well under way: carriage 2 has left its place (1500 mm) for aisle 9's (600 mm).
    wait_for(&d.sim, "/sim/state", 10, |v| {
        v["ranges"][0]["positions_mm"][1]
            .as_f64()
            .is_some_and(|p| p < 1300.0)
    })
    .await;
    assert_eq!(put(&d.sim, "/sim/ranges/1/estop", "true").await, 200);
    let op = finished(&d, &op_id).await;
    assert_eq!(
        (op["state"].as_str(), op["reason"].as_str()),
        (Some("stopped"), Some("estop")),
        "{op}"
    );
    let view = wait_for(&d.base, "/api/v1/ranges/1", 10, |v| v["estop"] == true).await;
    assert_eq!(view["open_aisle"], Value::Null, "stopped between aisles");
    let before = motions(&d, 1).await;
    let (status, body) = post(&d.base, "/api/v1/ranges/1/aisles/2/open").await;
    assert_eq!(
        (status, body["reason"].as_str()),
        (409, Some("estop")),
        "{body}"
    );
    assert_eq!(motions(&d, 1).await, before);
    // Released: it moves again.
    assert_eq!(put(&d.sim, "/sim/ranges/1/estop", "false").await, 200);
    wait_for(&d.base, "/api/v1/ranges/1", 10, |v| v["estop"] == false).await;
    let (status, body) = post(&d.base, "/api/v1/ranges/1/aisles/2/open").await;
    assert_eq!(status, 202, "{body}");
    let op = finished(&d, body["operation"].as_str().unwrap()).await;
    assert_eq!(op["state"], "done", "{op}");
}

#[tokio::test]
async fn a_lost_link_refuses_motion_and_locate_goes_on() {
    let data = tempfile::tempdir().unwrap();
    let d = demo(&data);
    for (range, device) in [(1u16, "shelving-1"), (2, "shelving-2"), (3, "shelving-3")] {
        range_ready(&d, range).await;
        assert_eq!(
            put(&d.sim, &format!("/sim/devices/{device}/online"), "false").await,
            204
        );
        let view = wait_for(&d.base, &format!("/api/v1/ranges/{range}"), 15, |v| {
            v["link"] == "down"
        })
        .await;
        assert_eq!(view["link"], "down", "{view}");
        assert_eq!(view["motion"], "unknown");
        let (status, body) = post(&d.base, &format!("/api/v1/ranges/{range}/aisles/3/open")).await;
        assert_eq!(
            (status, body["reason"].as_str()),
            (409, Some("link_down")),
            "{body}"
        );
        let (status, _, loc) = get(&d.base, "/api/v1/boxes/0451-H-001-00001/location").await;
        assert_eq!(
            (status, loc["shelf"]["address"].as_str()),
            (200, Some("R1-C1-R-S1-L1"))
        );
        // The device comes back; so does the range.
        assert_eq!(
            put(&d.sim, &format!("/sim/devices/{device}/online"), "true").await,
            204
        );
        let view = range_ready(&d, range).await;
        assert_eq!(view["link"], "up", "{view}");
    }
}

#[tokio::test]
async fn two_requests_at_once_are_served_one_after_the_other() {
    let data = tempfile::tempdir().unwrap();
    let d = demo(&data);
    range_ready(&d, 1).await;
    let (a, b) = tokio::join!(
        post(&d.base, "/api/v1/ranges/1/aisles/5/open"),
        post(&d.base, "/api/v1/ranges/1/aisles/8/open")
    );
    assert_eq!((a.0, b.0), (202, 202), "{a:?} {b:?}");
    let (op_a, op_b) = (
        a.1["operation"].as_str().unwrap(),
        b.1["operation"].as_str().unwrap(),
    );
    let (fa, fb) = (finished(&d, op_a).await, finished(&d, op_b).await);
    assert_eq!(
        (fa["state"].as_str(), fb["state"].as_str()),
        (Some("done"), Some("done")),
        "{fa} {fb}"
    );
    let first_done = fa["finished_at"]
        .as_str()
        .unwrap()
        .min(fb["finished_at"].as_str().unwrap());
    let second_started = fa["started_at"]
        .as_str()
        .unwrap()
        .max(fb["started_at"].as_str().unwrap());
    assert!(second_started <= first_done, "both were taken at once");
    let open = range_ready(&d, 1).await["open_aisle"].as_u64().unwrap();
    assert!(open == 5 || open == 8);
    assert_eq!(motions(&d, 1).await, 2, "one after the other, both sent");
}

#[tokio::test]
async fn garbage_on_the_serial_line_is_recovered_from() {
    let data = tempfile::tempdir().unwrap();
    let d = demo(&data);
    range_ready(&d, 1).await;
    let faults = r#"{"garbage":0.5}"#;
    assert_eq!(
        put(&d.sim, "/sim/devices/shelving-1/line", faults).await,
        204
    );
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(put(&d.sim, "/sim/devices/shelving-1/line", "{}").await, 204);
    range_ready(&d, 1).await;
    let (status, body) = post(&d.base, "/api/v1/ranges/1/aisles/3/open").await;
    assert_eq!(status, 202, "{body}");
    let op = finished(&d, body["operation"].as_str().unwrap()).await;
    assert_eq!(op["state"], "done", "{op}");
}

#[tokio::test]
async fn unknown_ranges_and_aisles_are_404_and_stop_is_always_taken() {
    let data = tempfile::tempdir().unwrap();
    let d = demo(&data);
    range_ready(&d, 1).await;
    let (status, body) = post(&d.base, "/api/v1/ranges/7/aisles/1/open").await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = post(&d.base, "/api/v1/ranges/1/aisles/10/open").await;
    assert_eq!(
        (status, body["reason"].as_str()),
        (404, Some("no_such_aisle")),
        "{body}"
    );
    let (status, body) = post(&d.base, "/api/v1/ranges/1/stop").await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = post(&d.base, "/api/v1/ranges/1/lock").await;
    assert_eq!(status, 200);
    let view = wait_for(&d.base, "/api/v1/ranges/1", 10, |v| v["locked"] == true).await;
    assert_eq!(view["locked"], true);
    let (status, body) = post(&d.base, "/api/v1/ranges/1/ventilate").await;
    assert_eq!(
        (status, body["reason"].as_str()),
        (409, Some("locked")),
        "{body}"
    );
    let (status, _) = post(&d.base, "/api/v1/ranges/1/unlock").await;
    assert_eq!(status, 200);
    wait_for(&d.base, "/api/v1/ranges/1", 10, |v| v["locked"] == false).await;
    let (status, body) = post(&d.base, "/api/v1/ranges/1/ventilate").await;
    assert_eq!(status, 202, "{body}");
    let op = finished(&d, body["operation"].as_str().unwrap()).await;
    assert_eq!(op["state"], "done", "{op}");
    let view = range_ready(&d, 1).await;
    assert_eq!(
        view["open_aisle"],
        Value::Null,
        "ventilated: every aisle a little open"
    );
}

#[tokio::test]
async fn range_states_and_operations_go_out_on_mqtt() {
    use rumqttc::{AsyncClient, Event, Packet, QoS};
    let data = tempfile::tempdir().unwrap();
    let d = demo(&data);
    range_ready(&d, 1).await;
    let (client, mut events) = AsyncClient::new(d.mqtt_options("test-events"), 64);
    client
        .subscribe("stackroom/gd-power/stack-1/#", QoS::AtLeastOnce)
        .await
        .unwrap();
    let mut next = async || loop {
        if let Event::Incoming(Packet::Publish(p)) = events.poll().await.unwrap() {
            return (
                p.topic.clone(),
                serde_json::from_slice::<Value>(&p.payload).unwrap(),
            );
        }
    };
    let within = std::time::Duration::from_secs(10);
    // The retained state of range 1 arrives first thing.
    let (topic, state) = tokio::time::timeout(within, async {
        loop {
            let (t, v) = next().await;
            if t.ends_with("/ranges/1/state") {
                return (t, v);
            }
        }
    })
    .await
    .expect("retained range state");
    assert_eq!(topic, "stackroom/gd-power/stack-1/ranges/1/state");
    assert_eq!(state["link"], "up");
    let (status, body) = post(&d.base, "/api/v1/ranges/1/aisles/2/open").await;
    assert_eq!(status, 202, "{body}");
    let id = body["operation"].as_str().unwrap().to_string();
    let done = tokio::time::timeout(within * 3, async {
        loop {
            let (t, v) = next().await;
            if t.ends_with("/operations") && v["id"] == id.as_str() && v["state"] == "done" {
                return v;
            }
        }
    })
    .await
    .expect("the operation's end on MQTT");
    assert_eq!(done["range"], 1);
}

#[tokio::test]
async fn someone_stepping_into_a_closing_aisle_stops_the_motion() {
    let data = tempfile::tempdir().unwrap();
    let d = demo(&data);
    range_ready(&d, 3).await;
    // Aisle 1 is open; opening aisle 7 closes it. Someone steps in once it is closing.
    let (status, body) = post(&d.base, "/api/v1/ranges/3/aisles/7/open").await;
    assert_eq!(status, 202, "{body}");
    let op_id = body["operation"].as_str().unwrap().to_string();
    wait_for(&d.sim, "/sim/state", 10, |v| {
        v["ranges"][2]["positions_mm"][1]
            .as_f64()
            .is_some_and(|p| p < 1400.0)
    })
    .await;
    assert_eq!(
        put(&d.sim, "/sim/ranges/3/aisles/1/occupied", "true").await,
        200
    );
    let op = finished(&d, &op_id).await;
    assert_eq!(op["state"], "stopped", "{op}");
    assert_eq!(op["reason"], "aisle_occupied", "{op}");
    // Nothing moves any more, and nothing may close the aisle while someone is there.
    let (_, _, a) = get(&d.sim, "/sim/state").await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let (_, _, b) = get(&d.sim, "/sim/state").await;
    assert_eq!(
        a["ranges"][2]["positions_mm"],
        b["ranges"][2]["positions_mm"]
    );
    let (status, body) = post(&d.base, "/api/v1/ranges/3/close").await;
    assert_eq!(
        (status, body["reason"].as_str()),
        (409, Some("aisle_occupied")),
        "{body}"
    );
}

#[tokio::test]
async fn a_fault_refuses_motion_until_it_is_cleared() {
    let data = tempfile::tempdir().unwrap();
    let d = demo(&data);
    range_ready(&d, 1).await;
    let fault = r#"{"kind":"motor","carriage":4}"#;
    assert_eq!(put(&d.sim, "/sim/ranges/1/fault", fault).await, 200);
    let view = wait_for(&d.base, "/api/v1/ranges/1", 10, |v| {
        !v["faults"].as_array().unwrap().is_empty()
    })
    .await;
    assert_eq!(view["faults"][0], "motor fault at carriage 4");
    let before = motions(&d, 1).await;
    let (status, body) = post(&d.base, "/api/v1/ranges/1/aisles/4/open").await;
    assert_eq!(
        (status, body["reason"].as_str()),
        (409, Some("fault")),
        "{body}"
    );
    assert_eq!(motions(&d, 1).await, before, "nothing reached the wire");
    assert_eq!(put(&d.sim, "/sim/ranges/1/fault", "null").await, 200);
    wait_for(&d.base, "/api/v1/ranges/1", 10, |v| {
        v["faults"].as_array().unwrap().is_empty()
    })
    .await;
    let (status, body) = post(&d.base, "/api/v1/ranges/1/aisles/4/open").await;
    assert_eq!(status, 202, "{body}");
}

#[tokio::test]
async fn a_plc_that_acts_on_its_next_scan_50_ms_later_completes_the_opening() {
    // The PLC takes the write at once but acts on it 50 ms later: the driver waits out the
    // profile's scan_ms for the command to be counted (Modbus), for the result (MQTT) or the
    // answer (framed), instead of calling the command lost while the carriages start.
    let data = tempfile::tempdir().unwrap();
    let d = demo(&data);
    for range in [1u16, 2, 3] {
        range_ready(&d, range).await;
        let plc = r#"{"interlocks":true,"scan_delay_ms":50,"watchdog":true}"#;
        assert_eq!(
            put(&d.sim, &format!("/sim/ranges/{range}/plc"), plc).await,
            200
        );
        let (status, body) = post(&d.base, &format!("/api/v1/ranges/{range}/aisles/5/open")).await;
        assert_eq!(status, 202, "{body}");
        let op = finished(&d, body["operation"].as_str().unwrap()).await;
        assert_eq!(op["state"], "done", "range {range}: {op}");
        assert_eq!(range_ready(&d, range).await["open_aisle"], 5);
        // The PLC's log: the command acted 50 ms or more after it came.
        let (_, _, log) = get(&d.sim, &format!("/sim/ranges/{range}/commands")).await;
        let open = log
            .as_array()
            .unwrap()
            .iter()
            .rfind(|c| c["command"]["command"] == "open_aisle")
            .unwrap()
            .clone();
        let late = open["acted_ms"].as_i64().unwrap() - open["received_ms"].as_i64().unwrap();
        assert!(late >= 50, "{open}");
    }
}

/// Carriages that move with no operation of the controller's (a local button, a forged
/// command on the bus) raise an `unexpected_motion` alarm, are stopped, and the range
/// says so.
#[tokio::test]
async fn motion_nobody_asked_for_raises_an_alarm_and_is_stopped() {
    let data = tempfile::tempdir().unwrap();
    let d = demo(&data);
    let before = range_ready(&d, 1).await;
    // The aisle farthest from the open one: the longest motion.
    let aisle = if before["open_aisle"].as_u64().unwrap_or(1) < 5 {
        9
    } else {
        1
    };
    let (_, _, log) = get(&d.sim, "/sim/ranges/1/commands?since=0").await;
    let since = log.as_array().map_or(0, |l| l.len());
    assert_eq!(
        put(&d.sim, "/sim/ranges/1/local-open", &aisle.to_string()).await,
        200
    );
    let alarms = wait_for(&d.base, "/api/v1/alarms?state=open", 15, |v| {
        v["items"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x["kind"] == "unexpected_motion"))
    })
    .await;
    let alarm = alarms["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["kind"] == "unexpected_motion")
        .unwrap_or_else(|| panic!("no unexpected_motion alarm: {alarms}"))
        .clone();
    assert_eq!(alarm["sensor"], "range-1", "{alarm}");
    // The controller sent Stop, and the range comes to rest.
    let (_, _, log) = get(&d.sim, &format!("/sim/ranges/1/commands?since={since}")).await;
    assert!(
        log.as_array()
            .unwrap()
            .iter()
            .any(|c| c["command"]["command"] == "stop"),
        "no Stop reached the PLC: {log}"
    );
    let view = wait_for(&d.base, "/api/v1/ranges/1", 15, |v| {
        v["motion"] != "moving" && v["stop_pending"] == false
    })
    .await;
    assert_ne!(view["motion"], "moving", "{view}");
    let (_, _, audit) = get(&d.base, "/api/v1/audit?limit=200").await;
    assert!(
        audit.to_string().contains("unexpected_motion range-1"),
        "the alarm is in the audit trail"
    );
}

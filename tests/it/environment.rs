//! The room's environment against hw-sim: a Modbus RTU transmitter and I/O module on
//! pseudo-terminals, Zigbee2MQTT devices on the demo's broker.

use crate::common;

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use common::{get, post, post_json, put, start_demo, wait_for};

async fn sensor(base: &str, id: &str) -> Value {
    let (status, _, env) = get(base, "/api/v1/environment").await;
    assert_eq!(status, 200, "{env}");
    env["sensors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("no sensor {id} in {env}"))
}

async fn wait_sensor(base: &str, id: &str, seconds: u64, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        let s = sensor(base, id).await;
        if done(&s) || Instant::now() > deadline {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn of_kind<'a>(alarms: &'a Value, kind: &str, sensor: &str) -> Vec<&'a Value> {
    alarms["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"] == kind && a["sensor"] == sensor)
        .collect()
}

/// Trips (`true`) or clears a simulated binary sensor: smoke, water, a door.
async fn trip(sim: &str, point: &str, on: bool) {
    let path = format!("/sim/environment/binary/{point}");
    assert_eq!(
        put(sim, &path, if on { "true" } else { "false" }).await,
        200
    );
}

/// The alarms of `kind` on `sensor` listed with `?state=`, once there is one (or after
/// `seconds`).
async fn wait_alarms(
    base: &str,
    state: &str,
    kind: &str,
    sensor: &str,
    seconds: u64,
) -> Vec<Value> {
    let alarms = wait_for(
        base,
        &format!("/api/v1/alarms?state={state}"),
        seconds,
        |a| !of_kind(a, kind, sensor).is_empty(),
    )
    .await;
    of_kind(&alarms, kind, sensor)
        .into_iter()
        .cloned()
        .collect()
}

// The timing of the decisions (hold times, hysteresis, the dehumidifier's minimum on and
// off times, staleness per device class, ventilation retries, the schedule) is tested on a
// clock of the tests' own in `src/environment/engine.rs`; these tests follow what the
// devices say through the drivers, the engine, the store and the API, and never wait for
// a timer.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damp_air_warns_and_runs_the_dehumidifier_and_a_smoke_alarm_is_acknowledged_and_clears() {
    let dir = tempfile::tempdir().unwrap();
    let demo = start_demo(dir.path(), &["--time-scale", "10"]);
    let (base, sim) = (demo.base.as_str(), demo.sim.as_str());
    let th = wait_sensor(base, "th-a", 20, |s| s["state"] == "ok").await;
    assert_eq!(th["state"], "ok", "the Modbus transmitter is read: {th}");
    let h = th["humidity"].as_f64().unwrap();
    assert!((40.0..60.0).contains(&h), "{th}");

    // The air gets damp: 70 % on the transmitter. Outside the limits, not yet held.
    let forced = json!({"temperature": 20.0, "humidity": 70.0}).to_string();
    assert_eq!(
        put(sim, "/sim/environment/sensors/th-a", &forced).await,
        200
    );
    let th = wait_sensor(base, "th-a", 10, |s| s["humidity"] == 70.0).await;
    assert_eq!(
        th["state"], "warning",
        "outside the limits, not yet held: {th}"
    );

    // The dehumidifier of the zone runs (its relay is a coil of the I/O module); the
    // other zone's stays off.
    let state = wait_for(sim, "/sim/state", 10, |s| {
        s["environment"]["actuators"]["dehumidifier-a"] == true
    })
    .await;
    assert_eq!(
        state["environment"]["actuators"]["dehumidifier-a"], true,
        "{}",
        state["environment"]
    );
    assert_eq!(
        state["environment"]["actuators"]["dehumidifier-bc"], false,
        "the other zone is dry"
    );
    let dehumidifier = wait_sensor(base, "dehumidifier-a", 10, |s| s["value"] == 1.0).await;
    assert_eq!(
        (&dehumidifier["value"], &dehumidifier["wanted"]),
        (&json!(1.0), &json!(true)),
        "the I/O module confirms the relay: {dehumidifier}"
    );

    // Smoke on the I/O module's input: one alarm at once.
    trip(sim, "smoke-a", true).await;
    let raised = wait_alarms(base, "open", "smoke", "smoke-a", 10).await;
    assert_eq!(raised.len(), 1, "{raised:?}");
    let alarm = raised[0].clone();
    assert_eq!(
        (alarm["state"].as_str(), alarm["zone"].as_str()),
        (Some("active"), Some("a"))
    );
    assert!(
        alarm["message"]
            .as_str()
            .unwrap()
            .contains("smoke detected"),
        "{alarm}"
    );
    assert_eq!(
        wait_sensor(base, "smoke-a", 10, |s| s["state"] == "alarm").await["state"],
        "alarm"
    );

    // Acknowledged, once.
    let id = alarm["id"].as_i64().unwrap();
    let (status, _, acked) = post_json(
        base,
        &format!("/api/v1/alarms/{id}/ack"),
        &json!({"note": "a technician checks the detector"}),
    )
    .await;
    assert_eq!(status, 200, "{acked}");
    assert_eq!(
        (acked["state"].as_str(), acked["acked_by"].as_str()),
        (Some("acknowledged"), Some("demo"))
    );
    assert_eq!(acked["ack_note"], "a technician checks the detector");
    let (status, _, again) = post_json(base, &format!("/api/v1/alarms/{id}/ack"), &json!({})).await;
    assert_eq!(status, 409, "{again}");
    let (status, _, _) = post_json(base, "/api/v1/alarms/999999/ack", &json!({})).await;
    assert_eq!(status, 404);
    let (status, _, bad) = get(base, "/api/v1/alarms?state=loud").await;
    assert_eq!(status, 422, "{bad}");

    // The smoke clears: the alarm with it.
    trip(sim, "smoke-a", false).await;
    let cleared = wait_alarms(base, "cleared", "smoke", "smoke-a", 10).await;
    assert_eq!(cleared.len(), 1, "{cleared:?}");
    assert_eq!(cleared[0]["ack_note"], "a technician checks the detector");

    // Every alarm change is in the audit trail.
    let (_, _, audit) = get(base, "/api/v1/audit?kind=alarm").await;
    let entries: Vec<(&str, &str)> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "smoke smoke-a")
        .map(|e| (e["actor"].as_str().unwrap(), e["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(
        entries,
        [("environment", "raised"), ("environment", "cleared")],
        "{audit}"
    );

    // The history has the readings, per minute too, and the day's compliance counts them.
    let from = (chrono::Utc::now() - chrono::Duration::minutes(10)).format("%Y-%m-%dT%H:%M:%SZ");
    let (status, _, series) = get(
        base,
        &format!("/api/v1/environment/th-a/history?from={from}&step=1"),
    )
    .await;
    assert_eq!(status, 200, "{series}");
    assert_eq!(series["resolution"], "raw");
    let steps = series["steps"].as_array().unwrap();
    assert!(steps.len() >= 2, "{series}");
    assert!(
        steps.iter().any(|s| s["humidity"]["max"] == 70.0),
        "the damp reading is kept"
    );
    let (_, _, minutes) = get(base, "/api/v1/environment/th-a/history?step=60").await;
    assert_eq!(minutes["resolution"], "minute");
    // The same steps as a spreadsheet, for an inspection's records.
    let csv = common::api_client(base)
        .get(format!(
            "{base}/api/v1/environment/th-a/history?step=60&format=csv"
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        csv.starts_with("\u{feff}at,readings,temperature_min_c,temperature_avg_c"),
        "{csv}"
    );
    assert_eq!(
        csv.lines().count() - 1,
        minutes["steps"].as_array().unwrap().len(),
        "a row per step"
    );
    assert!(csv.contains(",70.0,"), "the damp reading: {csv}");
    let (status, _, compliance) = get(base, "/api/v1/environment/compliance").await;
    assert_eq!(status, 200, "{compliance}");
    let today = compliance["items"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|d| d["zone"] == "a")
        .unwrap();
    let share = today["share"].as_f64().unwrap();
    assert!(
        today["samples"].as_i64().unwrap() >= 1 && share < 1.0,
        "some of today was damp: {today}"
    );
    let (status, _, _) = get(base, "/api/v1/environment/nothing/history").await;
    assert_eq!(status, 404);
    let (status, _, _) = get(base, "/api/v1/environment/th-a/history?from=2026-02-30").await;
    assert_eq!(status, 422);

    // Prometheus text.
    let metrics = common::api_client(base)
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), 200);
    let text = metrics.text().await.unwrap();
    assert!(
        text.contains("# TYPE stackroom_humidity_percent gauge"),
        "{text}"
    );
    assert!(
        text.contains("stackroom_humidity_percent{sensor=\"th-a\",zone=\"a\"}"),
        "{text}"
    );
    assert!(
        text.contains("stackroom_range_link_up{range=\"1\"} 1"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_sensor_is_stale_and_smoke_stops_a_moving_range_and_locks_the_room() {
    let dir = tempfile::tempdir().unwrap();
    let demo = start_demo(dir.path(), &[]);
    let (base, sim) = (demo.base.as_str(), demo.sim.as_str());
    let th = wait_sensor(base, "th-bc", 20, |s| s["state"] == "ok").await;
    // th-bc is "stack-1/th-bc" on the bridge (a '/' in its friendly name): the controller
    // subscribes to exactly its topic.
    assert_eq!(th["state"], "ok", "the Zigbee2MQTT sensor is heard: {th}");

    // The Zigbee bridge goes quiet: its points go stale (10 s), and say so.
    assert_eq!(
        put(sim, "/sim/devices/env-zigbee/online", "false").await,
        204
    );
    // The bridge says it is offline (its last will): its points are stale at once, not
    // after their battery sensors' two hours.
    let th = wait_sensor(base, "th-bc", 20, |s| s["state"] == "stale").await;
    assert_eq!(th["state"], "stale", "{th}");
    let stale = wait_alarms(base, "active", "sensor_stale", "th-bc", 5).await;
    assert_eq!(stale.len(), 1, "{stale:?}");
    let metrics = common::api_client(base)
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("stackroom_environment_point_stale{sensor=\"th-bc\",zone=\"bc\"} 1"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("stackroom_humidity_percent{sensor=\"th-bc\""),
        "no stale value is shown as now"
    );
    assert_eq!(
        put(sim, "/sim/devices/env-zigbee/online", "true").await,
        204
    );
    let th = wait_sensor(base, "th-bc", 20, |s| s["state"] == "ok").await;
    assert_eq!(th["state"], "ok", "{th}");

    // Range 1 opens its far aisle; smoke in the middle of the motion.
    let (_, _, range) = get(base, "/api/v1/ranges/1").await;
    let far = if range["open_aisle"] == 9 { 1 } else { 9 };
    let (status, started) = post(base, &format!("/api/v1/ranges/1/aisles/{far}/open")).await;
    assert_eq!(status, 202, "{started}");
    let op = started["operation"].as_str().unwrap().to_string();
    let moving = wait_for(base, "/api/v1/ranges/1", 10, |r| r["motion"] == "moving").await;
    assert_eq!(moving["motion"], "moving");
    trip(sim, "smoke-a", true).await;

    let stopped = wait_for(base, &format!("/api/v1/operations/{op}"), 10, |o| {
        ["done", "refused", "failed", "stopped"].contains(&o["state"].as_str().unwrap_or(""))
    })
    .await;
    assert_eq!(stopped["state"], "stopped", "{stopped}");
    for r in 1..=3 {
        let locked = wait_for(base, &format!("/api/v1/ranges/{r}"), 10, |v| {
            v["locked"] == true
        })
        .await;
        assert_eq!(locked["locked"], true, "range {r} is locked: {locked}");
    }
    let (_, _, alarms) = get(base, "/api/v1/alarms?state=active").await;
    assert_eq!(of_kind(&alarms, "smoke", "smoke-a").len(), 1, "{alarms}");
    // Nothing moves now, whoever asks.
    let (status, refused) = post(base, "/api/v1/ranges/2/close").await;
    assert_eq!(
        (status, refused["reason"].as_str()),
        (409, Some("locked")),
        "{refused}"
    );

    // The smoke clears; the alarm with it; an administrator unlocks.
    trip(sim, "smoke-a", false).await;
    assert_eq!(
        wait_alarms(base, "cleared", "smoke", "smoke-a", 10)
            .await
            .len(),
        1
    );
    let (status, _) = post(base, "/api/v1/ranges/1/unlock").await;
    assert_eq!(status, 200);
}

#[test]
fn a_config_with_a_bad_environment_section_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let demo = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/demo-room.toml"
    ))
    .unwrap();
    let profiles = concat!(env!("CARGO_MANIFEST_DIR"), "/device-profiles");
    let cases = [
        (
            "zone = \"bc\"\ndevice = \"env-zigbee\"\ntopic = \"stack-1/water-bc\"",
            "zone = \"nowhere\"\ndevice = \"env-zigbee\"\ntopic = \"stack-1/water-bc\"",
            "environment.points[5].zone",
        ),
        (
            "topic = \"stack-1/water-bc\"",
            "topic = \"stack-1/water-bc/set\"",
            "environment.points[5].topic",
        ),
        ("input = 0", "input = 9", "environment.points[1].kind"),
        (
            "on_smoke = [\"stop\", \"lock\"]",
            "on_smoke = [\"stop\", \"sing\"]",
            "environment.on_smoke",
        ),
        (
            "ranges = [2, 3]",
            "ranges = [1, 3]",
            "environment.zones[1].ranges",
        ),
        (
            "on_above_pct = 58.0, off_below_pct = 53.0, min_on_s = 20, min_off_s = 20 }\n\n[[environment.zones]]",
            "on_above_pct = 50.0, off_below_pct = 53.0 }\n\n[[environment.zones]]",
            "environment.zones[0].dehumidify",
        ),
    ];
    for (from, to, key) in cases {
        assert!(demo.contains(from), "{from}");
        let text = demo.replacen(from, to, 1).replace(
            "profiles_dir = \"../device-profiles\"",
            &format!("profiles_dir = \"{profiles}\""),
        );
        let file = dir.path().join("room.toml");
        std::fs::write(&file, text).unwrap();
        let out = std::process::Command::new(common::BIN)
            .args(["check-config"])
            .arg(&file)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(key), "{key}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damp_zone_ventilates_its_ranges_but_not_one_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let demo = start_demo(dir.path(), &["--time-scale", "10"]);
    let (base, sim) = (demo.base.as_str(), demo.sim.as_str());
    let th = wait_sensor(base, "th-bc", 20, |s| s["state"] == "ok").await;
    assert_eq!(th["state"], "ok", "{th}");

    // Someone opens an aisle of range 3 (zone bc) and works in it.
    wait_for(base, "/api/v1/ranges/3", 20, |v| {
        v["link"] == "up" && v["motion"] == "idle"
    })
    .await;
    let (status, started) = post(base, "/api/v1/ranges/3/aisles/4/open").await;
    assert_eq!(status, 202, "{started}");
    let op = started["operation"].as_str().unwrap().to_string();
    let done = wait_for(base, &format!("/api/v1/operations/{op}"), 30, |o| {
        o["state"] == "done"
    })
    .await;
    assert_eq!(done["state"], "done", "{done}");

    // Zone bc gets damp (Zigbee sensor, 70 % over the 62 % ventilation threshold).
    let forced = json!({"temperature": 20.0, "humidity": 70.0}).to_string();
    assert_eq!(
        put(sim, "/sim/environment/sensors/th-bc", &forced).await,
        200
    );

    // Range 2 spreads its carriages; range 3, in use, is left alone.
    let audit = wait_for(
        base,
        "/api/v1/audit?kind=motion&actor=environment",
        30,
        |a| {
            a["items"].as_array().unwrap().iter().any(|e| {
                e["action"]
                    .as_str()
                    .unwrap()
                    .starts_with("ventilate range 2")
                    && e["outcome"] == "done"
            })
        },
    )
    .await;
    let ventilated: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(
        ventilated
            .iter()
            .any(|a| a.starts_with("ventilate range 2")),
        "{audit}"
    );
    assert!(
        !ventilated.iter().any(|a| a.contains("range 3")),
        "range 3 is in use: {audit}"
    );
    assert!(
        !ventilated.iter().any(|a| a.contains("range 1")),
        "range 1 is another zone: {audit}"
    );
    let (_, _, r3) = get(base, "/api/v1/ranges/3").await;
    assert_eq!(r3["open_aisle"], 4, "{r3}");
}

//! The simulated MQTT devices of the demo room through the embedded broker: the JSON
//! shelving controller of range 2 and the Impinj-style reader-3.

use std::net::SocketAddr;
use std::time::Duration;

use hw_sim::Simulator;
use rumqttc::{AsyncClient, Event, EventLoop, Packet, QoS};
use serde_json::{Value, json};
use stackroom::config::RoomConfig;
use stackroom::demo;
use stackroom::mqtt::EmbeddedBroker;
use stackroom::sim::{self, SimSettings};
use stackroom_wire::mqtt_json::ImpinjEvent;

/// The simulated room on an embedded broker whose passwords live in the returned directory.
async fn start() -> (Simulator, EmbeddedBroker, tempfile::TempDir) {
    let data = tempfile::tempdir().unwrap();
    let mut config = RoomConfig::load(&demo::config_path()).unwrap();
    config.data_dir = data.path().into();
    let broker = EmbeddedBroker::start(SocketAddr::from(([127, 0, 0, 1], 0)), &config).unwrap();
    let shelves: Vec<_> = config.layout.shelves().collect();
    let csv = demo::seed_csv(&shelves, demo::SEED_BOXES);
    let placement = sim::placement_csv(csv.as_bytes()).unwrap();
    let settings = SimSettings {
        seed: 3,
        time_scale: 10.0,
        mqtt: Some(broker.for_devices()),
        ..SimSettings::default()
    };
    let simulator = sim::start(
        &config,
        placement,
        &settings,
        SocketAddr::from(([127, 0, 0, 1], 0)),
    )
    .await
    .unwrap();
    (simulator, broker, data)
}

/// A client that logs in as one of the controller's connections.
fn client(broker: &EmbeddedBroker, id: &str) -> (AsyncClient, EventLoop) {
    let mut options = broker.endpoint.options(Some(id));
    options.set_keep_alive(Duration::from_secs(5));
    AsyncClient::new(options, 64)
}

/// The next message on any subscribed topic that satisfies `want`.
async fn next(events: &mut EventLoop, want: impl Fn(&str, &Value) -> bool) -> Value {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Event::Incoming(Packet::Publish(p)) = events.poll().await.unwrap() {
                // Our own commands come back too, the broken one among them.
                let Ok(v) = serde_json::from_slice::<Value>(&p.payload) else {
                    continue;
                };
                if want(&p.topic, &v) {
                    return v;
                }
            }
        }
    })
    .await
    .expect("the message came")
}

#[tokio::test]
async fn the_json_shelving_controller_takes_commands_and_publishes_its_state() {
    let (sim, broker, _data) = start().await;
    let (c, mut events) = client(&broker, "test-shelving");
    c.subscribe("devices/shelving-2/#", QoS::AtLeastOnce)
        .await
        .unwrap();
    let state = next(&mut events, |t, _| t == "devices/shelving-2/state").await;
    assert_eq!(state["open_aisle"], 1);
    assert_eq!(state["positions_mm"].as_array().unwrap().len(), 10);

    let open = json!({"id": "a", "command": "open_aisle", "aisle": 6});
    c.publish(
        "devices/shelving-2/command",
        QoS::AtLeastOnce,
        false,
        open.to_string(),
    )
    .await
    .unwrap();
    let result = next(&mut events, |t, _| t == "devices/shelving-2/result").await;
    assert_eq!(result, json!({"id": "a", "result": "accepted"}));
    let arrived = next(&mut events, |t, v| {
        t == "devices/shelving-2/state" && v["open_aisle"] == 6
    })
    .await;
    assert_eq!(arrived["motion"], "idle");

    // Someone in aisle 6: closing would narrow it.
    let url = format!("http://{}/sim/ranges/2/aisles/6/occupied", sim.control);
    let r = reqwest::Client::new()
        .put(url)
        .body("true")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let close = json!({"id": "b", "command": "close"});
    c.publish(
        "devices/shelving-2/command",
        QoS::AtLeastOnce,
        false,
        close.to_string(),
    )
    .await
    .unwrap();
    let result = next(&mut events, |t, v| {
        t == "devices/shelving-2/result" && v["id"] == "b"
    })
    .await;
    assert_eq!(result["result"], "refused");
    assert_eq!(result["reason"], "aisle_occupied");
    assert_eq!(result["aisle"], 6);

    c.publish(
        "devices/shelving-2/command",
        QoS::AtLeastOnce,
        false,
        "{not json",
    )
    .await
    .unwrap();
    let result = next(&mut events, |t, v| {
        t == "devices/shelving-2/result" && v["result"] == "invalid"
    })
    .await;
    assert!(
        result["reason"]
            .as_str()
            .unwrap()
            .contains("key must be a string"),
        "{result}"
    );
}

#[tokio::test]
async fn the_impinj_style_reader_publishes_tag_events_for_its_shelves() {
    let (sim, broker, _data) = start().await;
    let (c, mut events) = client(&broker, "test-impinj");
    c.subscribe("devices/reader-3/events", QoS::AtMostOnce)
        .await
        .unwrap();
    // reader-3 port 1 faces R2-C1-R-S1-L1; the truth says which tags are there.
    let state = sim.state();
    let on_port_1: Vec<&str> = state
        .tags
        .iter()
        .filter(|t| t.shelf.as_deref() == Some("R2-C1-R-S1-L1"))
        .map(|t| t.epc.as_str())
        .collect();
    assert!(!on_port_1.is_empty());
    let mut seen = std::collections::HashSet::new();
    while seen.len() < on_port_1.len() {
        let v = next(&mut events, |_, _| true).await;
        let e: ImpinjEvent = serde_json::from_value(v).unwrap();
        assert_eq!(e.event_type, "tagInventory");
        let tag = e.tag_inventory_event.unwrap();
        assert!((1..=24).contains(&tag.antenna_port));
        // As the R700's MQTT preset sends it: URL-safe base64 without padding, no epcHex.
        assert!(tag.epc_hex.is_empty());
        let epc = tag.epc_hex().unwrap();
        assert_eq!(tag.epc, stackroom_wire::mqtt_json::base64_url(&hex(&epc)));
        assert!(tag.peak_rssi_cdbm.unwrap() < 0);
        if tag.antenna_port == 1 && on_port_1.contains(&epc.as_str()) {
            seen.insert(epc);
        }
    }
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len() / 2)
        .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

/// The demo room's controller (no devices) publishing its events to `broker`, and a
/// client watching its status topic. Keep the directory and the controller alive.
async fn publishing(
    broker: &EmbeddedBroker,
) -> (
    tempfile::TempDir,
    stackroom::server::Controller,
    stackroom::mqtt::Publisher,
    AsyncClient,
    EventLoop,
) {
    let dir = tempfile::tempdir().unwrap();
    let config = RoomConfig::load(&demo::config_path()).unwrap();
    let controller = stackroom::server::Controller::start(config, Some(dir.path()))
        .await
        .unwrap();
    let publisher = stackroom::mqtt::publish_events(
        &broker.endpoint,
        "gd-power",
        "stack-1",
        &controller.shelving,
        &controller.environment,
        &controller.loans,
        &controller.locations,
    );
    let (watcher, events) = client(broker, "test-status");
    watcher
        .subscribe("stackroom/gd-power/stack-1/status", QoS::AtLeastOnce)
        .await
        .unwrap();
    (dir, controller, publisher, watcher, events)
}

#[tokio::test]
async fn the_controller_says_it_is_online_and_its_last_will_says_when_it_is_gone() {
    let (_simulator, broker, _data) = start().await;
    let (_dir, _controller, publisher, _watcher, mut events) = publishing(&broker).await;
    let online = next(&mut events, |t, v| {
        t.ends_with("/status") && v["online"] == true
    })
    .await;
    assert!(online["since"].is_string(), "{online}");
    // The controller dies without a word: the broker tells for it.
    publisher.abort();
    let gone = next(&mut events, |t, v| {
        t.ends_with("/status") && v["online"] == false
    })
    .await;
    assert_eq!(gone, json!({"online": false}));
}

#[tokio::test]
async fn a_controller_that_shuts_down_says_so_itself_and_leaves_cleanly() {
    let (_simulator, broker, _data) = start().await;
    let (_dir, _controller, publisher, _watcher, mut events) = publishing(&broker).await;
    next(&mut events, |t, v| {
        t.ends_with("/status") && v["online"] == true
    })
    .await;
    // close() returns only once the goodbye is out and the session is closed.
    tokio::time::timeout(Duration::from_secs(3), publisher.close())
        .await
        .expect("closed within its two seconds");
    let gone = next(&mut events, |t, v| {
        t.ends_with("/status") && v["online"] == false
    })
    .await;
    assert_eq!(gone, json!({"online": false}));
    // Retained: whoever subscribes later hears it too.
    let (late, mut late_events) = client(&broker, "test-late");
    late.subscribe("stackroom/gd-power/stack-1/status", QoS::AtLeastOnce)
        .await
        .unwrap();
    let retained = next(&mut late_events, |t, _| t.ends_with("/status")).await;
    assert_eq!(retained, json!({"online": false}));
}

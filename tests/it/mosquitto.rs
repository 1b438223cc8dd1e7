//! Interop with an external broker: the demo room's MQTT shelving (range 2) in hw-sim and
//! the controller's MQTT driver, both through Mosquitto instead of the embedded broker.
//!
//! Mosquitto comes from Debian's `mosquitto` package, which `.ci/run` installs; without it
//! the test fails, unless `STACKROOM_OPTIONAL` names `mosquitto` (then it says it skipped).

use std::net::SocketAddr;
use std::time::Duration;

use stackroom::config::RoomConfig;
use stackroom::demo;
use stackroom::shelving::plan::Goal;
use stackroom::shelving::{LinkState, RangeMotion};
use stackroom::shelving::{OpState, Shelving, Wiring};
use stackroom::sim::{self, SimSettings};

use crate::common::mosquitto;

#[tokio::test]
async fn mqtt_shelving_works_through_mosquitto() {
    let dir = tempfile::tempdir().unwrap();
    let port = mosquitto::free_port();
    let mut config = RoomConfig::load(&demo::config_path()).unwrap();
    config.keep_devices(|d| d.id == "shelving-2");
    let config = mosquitto::on_site_broker(config, dir.path(), port);
    // The site broker as `stackroom broker-config` sets it up: passwords and ACLs.
    let Some(broker) = mosquitto::start(dir.path(), port, &config) else {
        return mosquitto::skip();
    };
    let settings = SimSettings {
        time_scale: 20.0,
        mqtt: Some(mosquitto::for_devices(&config, port)),
        ..SimSettings::default()
    };
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    let simulator = sim::start(&config, vec![], &settings, any).await.unwrap();
    let plc = simulator.range(2).unwrap();
    // No wiring override: the driver takes the broker from the config.
    let shelving = Shelving::start(&config, &Wiring::default()).unwrap();
    let ready = || {
        shelving
            .range(2)
            .is_some_and(|v| v.link == LinkState::Up && v.motion == RangeMotion::Idle)
    };
    for _ in 0..300 {
        if ready() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ready(), "{:?}", shelving.range(2));
    let op = shelving
        .motion(2, "open", Goal::OpenAisle(4), "test", false)
        .await
        .unwrap();
    let mut state = OpState::Queued;
    for _ in 0..500 {
        state = shelving.operations.get(&op).unwrap().state;
        if state == OpState::Done {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(state, OpState::Done);
    assert_eq!(shelving.range(2).unwrap().open_aisle, Some(4));

    // The broker goes away: the range's state turns unknown and nothing may move.
    drop(broker);
    let mut view = shelving.range(2).unwrap();
    for _ in 0..500 {
        view = shelving.range(2).unwrap();
        if view.link == LinkState::Down {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(view.link, LinkState::Down, "{view:?}");
    let refused = shelving
        .motion(2, "open", Goal::OpenAisle(2), "test", false)
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, stackroom::shelving::ShelvingError::Refused(r)
            if ["link_down", "state_unknown"].contains(&r.reason)),
        "{refused}"
    );
    // An unlock asked during the outage fails: it never left.
    let unlock = shelving.lock(2, false, "test").await.unwrap();
    let mut op = shelving.operations.get(&unlock).unwrap();
    for _ in 0..100 {
        op = shelving.operations.get(&unlock).unwrap();
        if op.state.is_final() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        (op.state, op.reason.as_deref()),
        (OpState::Failed, Some("not_sent")),
        "{op:?}"
    );
    let logged = plc.lock().unwrap().commands_since(0).len() as u64;
    // It comes back on the same port: the driver reconnects by itself.
    let _broker = mosquitto::start(dir.path(), port, &config).expect("Mosquitto restarts");
    for _ in 0..1000 {
        if ready() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        ready(),
        "after the broker's restart: {:?}",
        shelving.range(2)
    );
    // What was refused or failed while the broker was away never reaches the device after
    // it: no publish outlives its session (rumqttc would otherwise send it on reconnecting).
    // The one thing the controller may send on its own is a fresh switch of the pre-motion
    // warning to off, if the last one was lost with the link: the warning output is brought
    // to the state wanted now, which never moves anything.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let late: Vec<_> = plc
        .lock()
        .unwrap()
        .commands_since(logged)
        .into_iter()
        .map(|c| c.command)
        .filter(|c| *c != stackroom_wire::shelving::Command::Warning { on: false })
        .collect();
    assert!(late.is_empty(), "delivered after the restart: {late:?}");
    let op = shelving
        .motion(2, "open", Goal::OpenAisle(2), "test", false)
        .await
        .unwrap();
    for _ in 0..500 {
        if shelving.operations.get(&op).unwrap().state == OpState::Done {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        shelving.range(2).unwrap().open_aisle,
        Some(2),
        "{:?}",
        shelving.operations.get(&op)
    );
}

/// A plug switched through Zigbee2MQTT while the broker restarts: the command given during
/// the outage is dropped, not published when the driver reconnects (it would switch the
/// plug on a decision that may be minutes old); the next command goes out at once.
#[tokio::test]
async fn zigbee2mqtt_switch_commands_never_outlive_the_broker_link() {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
    use stackroom::config::environment::{Address, PointKind};
    use stackroom::environment::driver::{self, DriverPoint, SwitchCommand};
    use std::sync::atomic::{AtomicBool, Ordering};

    let dir = tempfile::tempdir().unwrap();
    let port = mosquitto::free_port();
    let mut config = RoomConfig::load(&demo::config_path()).unwrap();
    config.keep_devices(|d| d.id == "env-zigbee");
    let config = mosquitto::on_site_broker(config, dir.path(), port);
    let Some(broker) = mosquitto::start(dir.path(), port, &config) else {
        return mosquitto::skip();
    };
    let passwords = mosquitto::for_devices(&config, port).passwords;
    // A watcher with a persistent session: what is published on `/set` while it is away is
    // queued for it by the broker, across the broker's own restart.
    let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel::<String>();
    let restored = std::sync::Arc::new(AtomicBool::new(false));
    let restored_by_broker = restored.clone();
    // It logs in as the bridge (which may read everything under its prefix).
    let mut options = MqttOptions::new("env-zigbee", "127.0.0.1", port);
    options.set_credentials("env-zigbee", passwords["env-zigbee"].clone());
    options.set_clean_session(false);
    let (watcher, mut events) = AsyncClient::new(options, 16);
    watcher
        .subscribe("zigbee2mqtt/stack-1/dehum/set", QoS::AtLeastOnce)
        .await
        .unwrap();
    tokio::spawn(async move {
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let _ = seen_tx.send(String::from_utf8_lossy(&p.payload).into_owned());
                }
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    restored_by_broker.store(ack.session_present, Ordering::SeqCst);
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    let keys = stackroom_wire::profile::Profile::parse(
        "[device]\nkind = \"environment\"\nprotocol = \"zigbee2mqtt\"\n[zigbee2mqtt]\n",
    )
    .unwrap()
    .zigbee2mqtt
    .unwrap();
    let points = vec![DriverPoint {
        id: "dehum-1".into(),
        kind: PointKind::Dehumidifier,
        address: Address::Topic("stack-1/dehum".into()),
    }];
    let (reports, _readings) = tokio::sync::mpsc::channel(64);
    let (commands, rx) = tokio::sync::mpsc::channel(8);
    tokio::spawn(driver::zigbee2mqtt(
        "env-zigbee".into(),
        stackroom::bus::endpoint(&config).unwrap(),
        "zigbee2mqtt".into(),
        keys,
        points,
        reports,
        rx,
    ));
    let switch = |on| SwitchCommand {
        point: "dehum-1".into(),
        on,
    };
    async fn next(
        seen: &mut tokio::sync::mpsc::UnboundedReceiver<String>,
        within: u64,
    ) -> Option<String> {
        tokio::time::timeout(Duration::from_millis(within), seen.recv())
            .await
            .ok()
            .flatten()
    }
    // Connected: a command goes out (repeated until the driver has subscribed and is up).
    let mut first = None;
    for _ in 0..50 {
        commands.send(switch(true)).await.unwrap();
        first = next(&mut seen, 100).await;
        if first.is_some() {
            break;
        }
    }
    assert_eq!(first.as_deref(), Some(r#"{"state":"ON"}"#));
    while next(&mut seen, 300).await.is_some() {}

    broker.stop();
    tokio::time::sleep(Duration::from_millis(300)).await;
    commands.send(switch(false)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _broker = mosquitto::start(dir.path(), port, &config).expect("Mosquitto restarts");
    // Both the driver and the watcher reconnect; anything the driver still held would now
    // reach the broker and be queued for the watcher.
    let late = next(&mut seen, 3000).await;
    assert!(
        restored.load(Ordering::SeqCst),
        "the watcher's session survived the restart, so a late command would show"
    );
    assert_eq!(late, None, "published after the restart");
    let mut after = None;
    for _ in 0..50 {
        commands.send(switch(false)).await.unwrap();
        after = next(&mut seen, 100).await;
        if after.is_some() {
            break;
        }
    }
    assert_eq!(
        after.as_deref(),
        Some(r#"{"state":"OFF"}"#),
        "a command after the reconnect goes out"
    );
}

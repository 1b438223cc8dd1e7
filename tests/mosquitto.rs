//! Interop with an external broker: the demo room's MQTT shelving (range 2) in hw-sim and
//! the controller's MQTT driver, both through Mosquitto instead of the embedded broker.
//!
//! Mosquitto comes from Debian's `mosquitto` package; `.ci/run` installs it and sets
//! `STACKROOM_REQUIRE_MOSQUITTO=1`, so in CI this test cannot pass without it. Elsewhere,
//! without Mosquitto, it says so and passes.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use stackroom::config::{Mqtt, RoomConfig};
use stackroom::demo;
use stackroom::shelving::plan::Goal;
use stackroom::shelving::{OpState, Shelving, Wiring};
use stackroom::sim::{self, SimSettings};

struct Broker(Child);

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts Mosquitto on `port` (a free one if none).
fn mosquitto(dir: &std::path::Path, port: Option<u16>) -> Option<(Broker, u16)> {
    let path = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())?;
    let port = match port {
        Some(p) => p,
        None => std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port(),
    };
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!("listener {port} 127.0.0.1\nallow_anonymous true\n"),
    )
    .ok()?;
    let child = Command::new(path)
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let broker = Broker(child);
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some((broker, port));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

#[tokio::test]
async fn mqtt_shelving_works_through_mosquitto() {
    let dir = tempfile::tempdir().unwrap();
    let Some((broker, port)) = mosquitto(dir.path(), None) else {
        assert!(
            std::env::var_os("STACKROOM_REQUIRE_MOSQUITTO").is_none(),
            "Mosquitto is required here but did not start"
        );
        eprintln!("skipped: Mosquitto is not installed (apt-get install mosquitto)");
        return;
    };
    let url = format!("mqtt://127.0.0.1:{port}");
    let mut config = RoomConfig::load(&demo::config_path()).unwrap();
    config.mqtt = Mqtt::External { url: url.clone() };
    config.keep_devices(|d| d.id == "shelving-2");
    let settings = SimSettings {
        time_scale: 20.0,
        mqtt: Some(sim::broker(&url).unwrap()),
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
            .is_some_and(|v| v.link == "up" && v.motion == "idle")
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
        if view.link == "down" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(view.link, "down", "{view:?}");
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
    let (_broker, _) = mosquitto(dir.path(), Some(port)).expect("Mosquitto restarts");
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
    tokio::time::sleep(Duration::from_secs(1)).await;
    let late: Vec<_> = plc
        .lock()
        .unwrap()
        .commands_since(logged)
        .into_iter()
        .map(|c| c.command)
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

//! The Modbus driver through a TCP gateway: a simulated range served by hw-sim's Modbus
//! controller over Modbus TCP, driven by the real range controller.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hw_sim::modbus_shelving::{ModbusController, serve_tcp};
use hw_sim::shelving::{Moment, RangeSim, RangeSpec};
use stackroom::config::RoomConfig;
use stackroom::shelving::plan::Goal;
use stackroom::shelving::{LinkState, RangeMotion};
use stackroom::shelving::{OpState, Shelving, Wiring};
use stackroom_wire::profile::Profile;

#[tokio::test]
async fn a_range_behind_a_modbus_tcp_gateway_opens_its_aisles() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let profile =
        Profile::load(&root.join("device-profiles/generic-modbus-shelving.toml")).unwrap();
    let sim = Arc::new(Mutex::new(RangeSim::new(RangeSpec {
        id: 1,
        carriage_widths_mm: vec![600; 5],
        fixed: vec![true, false, false, false, true],
        aisle_width_mm: 900,
        speed_mm_s: 2000.0,
        accel_mm_s2: 8000.0,
        watchdog_timeout: profile
            .watchdog
            .as_ref()
            .map(|w| Duration::from_millis(w.timeout_ms)),
    })));
    let ticking = sim.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(10)).await;
            let mut range = ticking.lock().unwrap();
            range.scan(Moment::now());
            range.tick(0.01);
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(serve_tcp(
        listener,
        ModbusController::new(sim.clone(), profile.modbus.unwrap(), 1),
    ));

    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        r#"profiles_dir = {profiles:?}
[site]
id = "s"
[room]
id = "r"
[archive_number]
pattern = "{{n}}"
[archive_number.parts]
n = "[0-9]+"
[shelving]
start_delay_ms = 200
[[ranges]]
id = 1
carriages = 5
sections = 1
levels = 1
shelf_capacity = {{ boxes = 5 }}
[[devices]]
id = "gateway-1"
profile = "generic-modbus-shelving"
range = 1
transport = {{ modbus_tcp = {{ address = "{address}", unit = 1 }} }}
"#,
        profiles = root.join("device-profiles")
    );
    let config = RoomConfig::parse(&dir.path().join("room.toml"), &text).unwrap();
    let shelving = Shelving::start(&config, &Wiring::default()).unwrap();
    let ready = || {
        shelving
            .range(1)
            .is_some_and(|v| v.link == LinkState::Up && v.motion == RangeMotion::Idle)
    };
    for _ in 0..200 {
        if ready() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ready(), "{:?}", shelving.range(1));
    let op = shelving
        .motion(1, "open", Goal::OpenAisle(3), "test", false)
        .await
        .unwrap();
    let mut state = OpState::Queued;
    for _ in 0..300 {
        state = shelving.operations.get(&op).unwrap().state;
        if state == OpState::Done {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(state, OpState::Done);
    assert_eq!(sim.lock().unwrap().open_aisle(), Some(3));
}

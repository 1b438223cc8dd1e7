//! The Modbus driver against a PLC played by pymodbus, a Modbus stack nobody here wrote
//! (`tests/peers/pymodbus_plc.py`), with a vendor's register map unlike the reference one:
//! the positions first, the status block at 100, the occupancy mask at 300, command and
//! argument apart; a PLC that acts on its next scan, 50 ms after the write. The range links
//! up and opens its aisles.
//!
//! Needs python3 with pymodbus 3.6 (`pip install pymodbus==3.6.9`, as `.ci/run` does); fails
//! without it, unless `STACKROOM_OPTIONAL` names `pymodbus` (then it says it skipped).

use crate::common::tools;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use stackroom::config::RoomConfig;
use stackroom::shelving::plan::Goal;
use stackroom::shelving::{LinkState, RangeMotion};
use stackroom::shelving::{OpState, Shelving, Wiring};

struct Peer(Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn pymodbus(port: u16) -> Option<Peer> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/pymodbus_plc.py");
    let mut child = Command::new("python3")
        .arg(script)
        .arg(port.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let mut line = String::new();
    BufReader::new(child.stdout.take()?)
        .read_line(&mut line)
        .ok()?;
    if line.trim() != "listening" {
        let _ = child.kill();
        return None;
    }
    Some(Peer(child))
}

#[tokio::test]
async fn a_vendor_map_with_its_blocks_elsewhere_links_up_against_pymodbus() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let Some(_peer) = pymodbus(port) else {
        tools::missing("pymodbus", "python3 -m pip install pymodbus==3.6.9");
        return;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
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
start_delay_ms = 100
[[ranges]]
id = 1
carriages = 5
sections = 1
levels = 1
shelf_capacity = {{ boxes = 5 }}
[[devices]]
id = "plc"
profile = "vendor-modbus-shelving"
range = 1
transport = {{ modbus_tcp = {{ address = "127.0.0.1:{port}", unit = 1 }} }}
"#,
        profiles = root.join("tests/peers")
    );
    let config = RoomConfig::parse(&dir.path().join("room.toml"), &text).unwrap();
    let shelving = Shelving::start(&config, &Wiring::default()).unwrap();
    let idle = || {
        shelving.range(1).is_some_and(|v| {
            v.link == LinkState::Up && v.motion == RangeMotion::Idle && v.operation.is_none()
        })
    };
    for _ in 0..200 {
        if idle() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let view = shelving.range(1).unwrap();
    assert!(idle(), "{view:?}");
    assert_eq!(
        view.open_aisle,
        Some(1),
        "read from the status block at 100"
    );
    assert_eq!(
        view.carriages[4].position_mm,
        Some(3300.0),
        "positions from 0"
    );
    for aisle in [3u16, 4, 1] {
        let op = shelving
            .motion(1, "open", Goal::OpenAisle(aisle), "test", false)
            .await
            .unwrap();
        let mut state = OpState::Queued;
        for _ in 0..200 {
            state = shelving.operations.get(&op).unwrap().state;
            if state.is_final() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(state, OpState::Done, "{:?}", shelving.operations.get(&op));
        for _ in 0..40 {
            if idle() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(shelving.range(1).unwrap().open_aisle, Some(aisle));
    }
}

//! Motion safety that does not rest on the PLC, end to end:
//! - the controller killed mid-motion leaves the simulated drives stopped by the PLC's
//!   watchdog (a real `stackroom serve` process against hw-sim's PLC on a pseudo-terminal);
//! - a smoke alarm with range 1 unreachable stops and locks ranges 2 and 3 at once, and
//!   says range 1 is not secured;
//! - a 20-carriage range sees a person in aisle 18 (and a profile whose occupancy mask is
//!   too narrow for the range is refused).

use crate::common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{BIN, get, post, put, start_demo, wait_for};
use hw_sim::shelving::{Motion, PlcSettings};
use stackroom::config::RoomConfig;
use stackroom::shelving::plan::Goal;
use stackroom::shelving::{LinkState, RangeMotion};
use stackroom::shelving::{OpState, Shelving, ShelvingError, Wiring};
use stackroom::sim::{self, SimSettings};

/// A room of one Modbus range of `carriages`, its device on `path`.
fn room(carriages: u16, profile: &str, path: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    format!(
        r#"profiles_dir = {profiles:?}
[site]
id = "s"
[room]
id = "r"
[mqtt]
broker = "embedded"
embedded_listen = "127.0.0.1:0"
[archive_number]
pattern = "{{n}}"
[archive_number.parts]
n = "[0-9]+"
[shelving]
start_delay_ms = 200
[[ranges]]
id = 1
carriages = {carriages}
sections = 1
levels = 1
shelf_capacity = {{ boxes = 5 }}
[[devices]]
id = "shelving-1"
profile = "{profile}"
range = 1
transport = {{ serial = {{ path = "{path}", baud = 19200, unit = 1 }} }}
"#,
        profiles = root.join("device-profiles")
    )
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A `stackroom serve` process of its own driving a ten-carriage range on hw-sim's PLC (in
/// this process, real time: a motion lasts about ten seconds), with a motion to aisle 9
/// under way and the PLC's watchdog armed.
struct Moving {
    child: std::process::Child,
    plc: std::sync::Arc<std::sync::Mutex<hw_sim::shelving::RangeSim>>,
    data: std::path::PathBuf,
    watchdog_ms: i64,
    _simulator: hw_sim::sim::Simulator,
    _dir: tempfile::TempDir,
}

async fn serve_a_moving_range() -> Moving {
    let dir = tempfile::tempdir().unwrap();
    let config = RoomConfig::parse(
        &dir.path().join("room.toml"),
        &room(10, "generic-modbus-shelving", "/dev/null"),
    )
    .unwrap();
    let settings = SimSettings {
        time_scale: 1.0,
        ..SimSettings::default()
    };
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    let simulator = sim::start(&config, vec![], &settings, any).await.unwrap();
    let plc = simulator.range(1).unwrap();
    let file = dir.path().join("room.toml");
    std::fs::write(
        &file,
        room(
            10,
            "generic-modbus-shelving",
            simulator.path("shelving-1").unwrap(),
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let token = Command::new(BIN)
        .args([
            "token", "create", "--role", "operator", "--name", "t", "--config",
        ])
        .arg(&file)
        .arg("--data")
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        token.status.success(),
        "{}",
        String::from_utf8_lossy(&token.stderr)
    );
    let token = String::from_utf8(token.stdout).unwrap().trim().to_string();

    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&file)
        .arg("--data")
        .arg(&data)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line.trim().strip_prefix("api: ").unwrap().to_string();
    let client = reqwest::Client::new();
    let mut ready = false;
    for _ in 0..200 {
        let view = common::api::get_json(&client, &format!("{base}/api/v1/ranges/1"), &token).await;
        if view["link"] == "up" && view["motion"] == "idle" {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ready, "the controller took the range");
    let started = client
        .post(format!("{base}/api/v1/ranges/1/aisles/9/open"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 202);
    for _ in 0..100 {
        if plc.lock().unwrap().state().motion == Motion::Moving {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(plc.lock().unwrap().state().motion, Motion::Moving);
    assert!(
        plc.lock().unwrap().state().heartbeats > 0,
        "the watchdog is armed"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let watchdog_ms = config.devices[0].spec.watchdog.as_ref().unwrap().timeout_ms as i64;
    Moving {
        child,
        plc,
        data,
        watchdog_ms,
        _simulator: simulator,
        _dir: dir,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_killed_mid_motion_leaves_the_drives_stopped_by_the_watchdog() {
    // Bound whole: the simulator and the directory live to the end of the test.
    let mut moving = serve_a_moving_range().await;
    let (child, plc, timeout) = (&mut moving.child, moving.plc.clone(), moving.watchdog_ms);
    // SIGKILL: no goodbye, no Stop.
    child.kill().unwrap();
    let killed = now_ms();
    child.wait().unwrap();
    for _ in 0..60 {
        if plc.lock().unwrap().state().motion != Motion::Moving {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let state = plc.lock().unwrap().state();
    assert_eq!(state.motion, Motion::Stopped, "{state:?}");
    assert_eq!(state.stop_reason.as_deref(), Some("watchdog: no heartbeat"));
    assert!(state.watchdog_tripped);
    let halt = plc.lock().unwrap().halts().last().cloned().unwrap();
    // The heartbeat comes every 200 ms, the watchdog trips 1 s after the last one, and the
    // PLC's scan runs every 20 ms: the drives stop within the watchdog's time of the kill.
    assert!(
        halt.at_ms - killed <= timeout + 300,
        "stopped {} ms after the kill (watchdog {timeout} ms)",
        halt.at_ms - killed
    );
    assert_ne!(state.open_aisle, Some(9), "stopped short of the target");
    // Nothing moves again: the PLC refuses motion until a controller beats again.
    let before = plc.lock().unwrap().state().positions_mm;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(plc.lock().unwrap().state().positions_mm, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_moving_range_records_it_and_exits_cleanly() {
    // Bound whole: the simulator and the directory live to the end of the test.
    let mut moving = serve_a_moving_range().await;
    let (child, plc, data) = (&mut moving.child, moving.plc.clone(), moving.data.clone());
    // SIGTERM, as systemd or docker stop sends it.
    let pid = child.id() as libc::pid_t;
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let mut status = None;
    for _ in 0..200 {
        if let Some(s) = child.try_wait().unwrap() {
            status = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let Some(status) = status else {
        child.kill().unwrap();
        panic!("the controller did not exit within ten seconds of SIGTERM");
    };
    assert!(status.success(), "exit status {status:?}");
    // The controller stopped the range itself, before it went: no watchdog needed.
    let state = plc.lock().unwrap().state();
    assert_eq!(state.motion, Motion::Stopped, "{state:?}");
    assert_eq!(state.stop_reason.as_deref(), Some("stop command"));
    assert!(!state.watchdog_tripped);
    // And the stop is in the audit trail, committed before the process ended.
    let db = rusqlite::Connection::open(data.join("stackroom.db")).unwrap();
    let (actor, outcome): (String, String) = db
        .query_row(
            "SELECT actor, outcome FROM audit WHERE kind = 'motion' AND action LIKE 'stop range 1%'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(
        (actor.as_str(), outcome.as_str()),
        (stackroom::shelving::SHUTDOWN_ACTOR, "done")
    );
    // The motion it interrupted is recorded as stopped.
    let open: String = db
        .query_row(
            "SELECT outcome FROM audit WHERE kind = 'motion' AND action LIKE 'open range 1%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(open.starts_with("stopped"), "{open}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_smoke_alarm_with_range_1_unreachable_stops_and_locks_ranges_2_and_3_at_once() {
    let data = tempfile::tempdir().unwrap();
    let d = start_demo(data.path(), &["--time-scale", "10"]);
    for r in 1..=3 {
        wait_for(&d.base, &format!("/api/v1/ranges/{r}"), 20, |v| {
            v["link"] == "up" && v["motion"] == "idle"
        })
        .await;
    }
    // Range 1's controller vanishes (its gateway is down).
    assert_eq!(
        put(&d.sim, "/sim/devices/shelving-1/online", "false").await,
        204
    );
    let view = wait_for(&d.base, "/api/v1/ranges/1", 15, |v| v["link"] == "down").await;
    assert_eq!(view["link"], "down");
    let logged = |r: u16| format!("/sim/ranges/{r}/commands");
    let (_, _, l2) = get(&d.sim, &logged(2)).await;
    let (_, _, l3) = get(&d.sim, &logged(3)).await;
    let (from2, from3) = (l2.as_array().unwrap().len(), l3.as_array().unwrap().len());

    // Smoke in zone a: the room's rule is stop and lock every range.
    assert_eq!(
        put(&d.sim, "/sim/environment/binary/smoke-a", "true").await,
        200
    );
    let alarms = wait_for(&d.base, "/api/v1/alarms?state=active", 15, |a| {
        a["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["kind"] == "smoke")
    })
    .await;
    let smoke = alarms["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["kind"] == "smoke")
        .unwrap()
        .clone();
    let raised = chrono::DateTime::parse_from_rfc3339(smoke["raised_at"].as_str().unwrap())
        .unwrap()
        .timestamp_millis();
    for (r, from) in [(2u16, from2), (3, from3)] {
        let view = wait_for(&d.base, &format!("/api/v1/ranges/{r}"), 10, |v| {
            v["locked"] == true
        })
        .await;
        assert_eq!(view["locked"], true, "range {r}: {view}");
        let (_, _, log) = get(&d.sim, &logged(r)).await;
        let log = &log.as_array().unwrap()[from..];
        let at = |name: &str| {
            log.iter()
                .find(|c| c["command"]["command"] == name)
                .and_then(|c| c["received_ms"].as_i64())
                .unwrap_or_else(|| panic!("range {r} got no {name}: {log:?}"))
        };
        // Range 1 blocks nothing: both reach the PLC within a second of the alarm.
        assert!(
            at("stop") - raised <= 1000,
            "range {r}: stop {} ms after",
            at("stop") - raised
        );
        assert!(
            at("lock") - raised <= 1000,
            "range {r}: lock {} ms after",
            at("lock") - raised
        );
    }
    // Range 1 could not be stopped or locked: it says so, loudly.
    let alarms = wait_for(&d.base, "/api/v1/alarms?state=active", 15, |a| {
        a["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["kind"] == "range_unsecured" && x["sensor"] == "range-1")
    })
    .await;
    assert!(
        alarms["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["kind"] == "range_unsecured" && x["sensor"] == "range-1"),
        "{alarms}"
    );
    // And no motion in zone a while the smoke lasts, even with range 1 back.
    assert_eq!(
        put(&d.sim, "/sim/devices/shelving-1/online", "true").await,
        204
    );
    let view = wait_for(&d.base, "/api/v1/ranges/1", 15, |v| v["locked"] == true).await;
    assert_eq!(
        view["locked"], true,
        "the lock went through once it could: {view}"
    );
    let alarms = wait_for(&d.base, "/api/v1/alarms?state=cleared", 15, |a| {
        a["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["kind"] == "range_unsecured")
    })
    .await;
    assert!(
        alarms["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["kind"] == "range_unsecured")
    );
    assert!(!view["interlocks"].as_array().unwrap().is_empty(), "{view}");
    let (status, body) = post(&d.base, "/api/v1/ranges/1/unlock").await;
    assert_eq!(status, 200, "{body}");
    wait_for(&d.base, "/api/v1/ranges/1", 10, |v| v["locked"] == false).await;
    let (status, body) = post(&d.base, "/api/v1/ranges/1/aisles/3/open").await;
    assert_eq!(
        (status, body["reason"].as_str()),
        (409, Some("room_alarm")),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_twenty_carriage_range_sees_a_person_in_aisle_18() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("room.toml");
    // A mask of 16 bits cannot tell 21 gaps: refused with the reason.
    let err = RoomConfig::parse(&file, &room(20, "framed-shelving", "/dev/null"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("21 gaps") && err.contains("tells occupancy for 16"),
        "{err}"
    );
    // The reference Modbus map's mask has 32.
    let config =
        RoomConfig::parse(&file, &room(20, "generic-modbus-shelving", "/dev/null")).unwrap();
    let settings = SimSettings {
        time_scale: 20.0,
        ..SimSettings::default()
    };
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    let simulator = sim::start(&config, vec![], &settings, any).await.unwrap();
    let plc = simulator.range(1).unwrap();
    // The PLC's own checks off: what it would refuse says nothing about the controller.
    plc.lock().unwrap().set_plc(PlcSettings {
        interlocks: false,
        ..PlcSettings::default()
    });
    let wiring = Wiring {
        tcp_addresses: Default::default(),
        serial_paths: [(
            "shelving-1".to_string(),
            simulator.path("shelving-1").unwrap().to_string(),
        )]
        .into(),
        mqtt: None,
    };
    let shelving = Shelving::start(&config, &wiring).unwrap();
    let idle = |s: &Shelving| {
        s.range(1).is_some_and(|v| {
            v.link == LinkState::Up && v.motion == RangeMotion::Idle && v.operation.is_none()
        })
    };
    for _ in 0..200 {
        if idle(&shelving) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let op = shelving
        .motion(1, "open", Goal::OpenAisle(18), "test", false)
        .await
        .unwrap();
    for _ in 0..600 {
        if shelving.operations.get(&op).unwrap().state.is_final() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(shelving.operations.get(&op).unwrap().state, OpState::Done);
    assert_eq!(shelving.range(1).unwrap().open_aisle, Some(18));

    plc.lock().unwrap().set_occupied(18, true);
    for _ in 0..100 {
        if shelving.range(1).unwrap().occupied_aisles == vec![18] {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(shelving.range(1).unwrap().occupied_aisles, vec![18]);
    let motions = plc.lock().unwrap().state().motions;
    let refused = shelving
        .motion(1, "open", Goal::OpenAisle(3), "test", false)
        .await
        .unwrap_err();
    let ShelvingError::Refused(r) = refused else {
        panic!("{refused}")
    };
    assert_eq!(r.reason, "aisle_occupied");
    assert!(r.message.contains("aisle 18"), "{}", r.message);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        plc.lock().unwrap().state().motions,
        motions,
        "nothing reached the PLC"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_shut_down_leaves_no_task_behind_and_its_devices_hear_nothing_more() {
    // The demo room in this process: every kind of driver, the engine, the gates.
    let dir = tempfile::tempdir().unwrap();
    let config = RoomConfig::load(&stackroom::demo::config_path()).unwrap();
    let mut controller = stackroom::server::Controller::start(config, Some(dir.path()))
        .await
        .unwrap();
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    let settings = SimSettings {
        time_scale: 10.0,
        ..SimSettings::default()
    };
    let (simulator, _broker) = sim::simulate(&mut controller, settings, any, any)
        .await
        .unwrap();
    let plc = simulator.range(1).unwrap();
    for _ in 0..200 {
        if plc.lock().unwrap().state().heartbeats > 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        plc.lock().unwrap().state().heartbeats > 2,
        "the driver runs"
    );
    assert!(controller.shelving.tasks_running() > 0);

    tokio::time::timeout(Duration::from_secs(15), controller.shut_down())
        .await
        .expect("shut down within its bounds");
    assert_eq!(
        controller.shelving.tasks_running(),
        0,
        "drivers and controllers ended"
    );
    // Nothing of the controller talks to the PLC any more.
    let beats = plc.lock().unwrap().state().heartbeats;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(plc.lock().unwrap().state().heartbeats, beats);
}

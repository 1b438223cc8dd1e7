//! `stackroom-sim` on its own: the demo room's devices, boxes from a placement CSV.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

#[tokio::test]
async fn stackroom_sim_runs_standalone_and_prints_its_devices() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("placement.csv");
    std::fs::write(
        &csv,
        "archive_no,epc,shelf\n\
         0451-H-001-00001,E28011700000000000000001,R1-C1-R-S1-L1\n\
         0451-H-001-00002,E28011700000000000000002,\n",
    )
    .unwrap();
    // The demo room, with its embedded broker on a free port.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let demo = std::fs::read_to_string(root.join("config/demo-room.toml")).unwrap();
    let config = dir.path().join("room.toml");
    let profiles = format!("profiles_dir = {:?}", root.join("device-profiles"));
    std::fs::write(
        &config,
        demo.replace("127.0.0.1:1883", "127.0.0.1:0")
            .replace("profiles_dir = \"../device-profiles\"", &profiles),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_stackroom-sim"))
        .arg("--config")
        .arg(&config)
        .args(["--seed", "5", "--placement"])
        .arg(&csv)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut lines = Vec::new();
    for _ in 0..8 {
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        lines.push(line.trim().to_string());
    }
    let control = lines[0]
        .strip_prefix("sim: ")
        .expect("first line names the control API")
        .to_string();
    assert!(lines[1].starts_with("mqtt: mqtt://127.0.0.1:"), "{lines:?}");
    assert!(!lines[1].ends_with(":1883"), "a free port: {lines:?}");
    let has = |device: &str, at: &str| {
        lines
            .iter()
            .any(|l| l.starts_with(&format!("sim device {device}: {at}")))
    };
    for device in ["shelving-1", "shelving-3", "reader-1", "reader-2"] {
        assert!(has(device, "/dev/pts/"), "{lines:?}");
    }
    assert!(has("shelving-2", "devices/shelving-2/#"), "{lines:?}");
    assert!(has("reader-3", "devices/reader-3/events"), "{lines:?}");
    let state: serde_json::Value = reqwest::get(format!("{control}/sim/state"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(state["seed"], 5);
    assert_eq!(state["tags"].as_array().unwrap().len(), 2);
    assert_eq!(state["tags"][1]["shelf"], serde_json::Value::Null);
}

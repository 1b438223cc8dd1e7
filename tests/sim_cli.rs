//! `stackroom-sim` on its own: the demo room's devices, boxes from a placement CSV.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[tokio::test]
async fn stackroom_sim_runs_standalone_and_prints_its_devices() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("placement.csv");
    std::fs::write(
        &csv,
        "archive_no,epc,shelf\n0451-H-001-00001,E28011700000000000000001,R1-C1-R-S1-L1\n0451-H-001-00002,E28011700000000000000002,\n",
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_stackroom-sim"))
        .args([
            "--config",
            "config/demo-room.toml",
            "--seed",
            "5",
            "--placement",
        ])
        .arg(&csv)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut lines = Vec::new();
    for _ in 0..5 {
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        lines.push(line.trim().to_string());
    }
    let control = lines[0]
        .strip_prefix("sim: ")
        .expect("first line names the control API")
        .to_string();
    for device in ["shelving-1", "shelving-2", "reader-1", "reader-2"] {
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(&format!("sim device {device}: /dev/pts/"))),
            "{lines:?}"
        );
    }
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

//! Backups while the room works, verified and restored; the schedule with its retention
//! and alarm.

use crate::common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::{BIN, get, post_json, start_demo, wait_for};
use serde_json::{Value, json};

/// Runs `stackroom ARGS` from the repository (where the demo's config is).
async fn stackroom(args: Vec<std::ffi::OsString>) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new(BIN)
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

fn args(list: &[&dyn AsRef<std::ffi::OsStr>]) -> Vec<std::ffi::OsString> {
    list.iter().map(|a| a.as_ref().to_owned()).collect()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn rows(db: &Path, table: &str) -> i64 {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

#[tokio::test]
async fn a_backup_taken_while_the_room_writes_finishes_verifies_and_restores_equal() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("room");
    let d = start_demo(&data, &["--time-scale", "10"]);
    let db = data.join("stackroom.db");

    // The room at its busiest: a sweep of every antenna, an import of 20,000 boxes over
    // the API, and the sensors' readings, which arrive several times a second.
    let (status, _, body) = post_json(
        &d.base,
        "/api/v1/sweeps",
        &json!({"scope": {"room": true}, "apply": "report"}),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let mut csv = String::from("archive_no,epc,title\n");
    for i in 0..20_000 {
        csv += &format!(
            "0888-L-{:03}-{:05},E2808888{i:016X},客户档案 backup test {i}\n",
            i / 90_000 + 1,
            i % 90_000 + 1
        );
    }
    let token = d.token.clone();
    let base = d.base.clone();
    let import = tokio::spawn(async move {
        common::client()
            .post(format!("{base}/api/v1/import/boxes"))
            .bearer_auth(token)
            .header("content-type", "text/csv")
            .body(csv)
            .timeout(Duration::from_secs(300))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    });
    wait_for(&d.base, "/api/v1/sweeps/1", 60, |v| {
        v["progress"]["done"].as_u64().unwrap_or(0) >= 20
    })
    .await;
    let readings_before = rows(&db, "env_raw");

    // Backed up from the command line while all of that goes on.
    let backup = dir.path().join("backups").join("room.db");
    std::fs::create_dir_all(backup.parent().unwrap()).unwrap();
    let out = stackroom(args(&[&"backup", &backup, &"--data", &data])).await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("verified"), "{}", text(&out));
    let manifest: Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("backups").join("room.manifest.json")).unwrap(),
    )
    .unwrap();
    // The import is in it whole or not at all.
    let boxes = manifest["tables"]["main.boxes"]["rows"].as_u64().unwrap();
    assert!(
        boxes == 5400 || boxes == 25_400,
        "half an import: {boxes} boxes"
    );
    assert_eq!(import.await.unwrap(), 201);
    // The room went on writing after the snapshot.
    let snapshot_readings = manifest["tables"]["main.env_raw"]["rows"].as_i64().unwrap();
    assert!(snapshot_readings >= readings_before);
    let v = wait_for(&d.base, "/api/v1/boxes/0888-L-001-20000", 30, |v| {
        v["archive_no"] == "0888-L-001-20000"
    })
    .await;
    assert_eq!(v["archive_no"], "0888-L-001-20000", "{v}");
    eprintln!("the backup holds {boxes} boxes");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while rows(&db, "env_raw") <= snapshot_readings {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no reading since the backup"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // A backup is never written over the live database, nor over another without --force.
    let out = stackroom(args(&[&"backup", &db, &"--data", &data])).await;
    assert!(!out.status.success());
    assert!(text(&out).contains("live database"), "{}", text(&out));
    let out = stackroom(args(&[&"backup", &backup, &"--data", &data])).await;
    assert!(!out.status.success());
    assert!(text(&out).contains("--force"), "{}", text(&out));

    let out = stackroom(args(&[&"verify-backup", &backup])).await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).starts_with("ok: "), "{}", text(&out));

    // Not restored under a running controller.
    let out = stackroom(args(&[&"restore", &backup, &"--data", &data])).await;
    assert!(!out.status.success());
    assert!(
        text(&out).contains("open in another stackroom process"),
        "{}",
        text(&out)
    );

    // Restored elsewhere: equal, table by table and value by value, to the source at the
    // backup's time.
    let elsewhere = dir.path().join("restored");
    let out = stackroom(args(&[&"restore", &backup, &"--data", &elsewhere])).await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("{boxes} boxes")),
        "{}",
        text(&out)
    );
    assert!(
        text(&out).contains("there was no database there before"),
        "{}",
        text(&out)
    );
    let restored = stackroom::backup::contents(&elsewhere.join("stackroom.db")).unwrap();
    let expected: BTreeMap<String, stackroom::backup::TableSum> =
        serde_json::from_value(manifest["tables"].clone()).unwrap();
    assert_eq!(restored, expected);
    drop(d);

    // And served: what was backed up answers.
    let r = start_demo(&elsewhere, &["--time-scale", "10"]);
    let (status, _, v) = get(&r.base, "/api/v1/boxes/0451-H-001-00001/location").await;
    assert_eq!(status, 200, "{v}");
    let (status, _, v) = get(&r.base, "/api/v1/boxes/0888-L-001-20000").await;
    assert_eq!(status, if boxes == 25_400 { 200 } else { 404 }, "{v}");
    drop(r);

    // A second restore keeps the first aside.
    let out = stackroom(args(&[&"restore", &backup, &"--data", &elsewhere])).await;
    assert!(out.status.success(), "{}", text(&out));
    let aside = std::fs::read_dir(&elsewhere)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with("before-restore-"))
        .expect("the database before, kept aside");
    assert!(elsewhere.join(aside).join("stackroom.db").exists());
}

/// The demo's config with `[backup]` added, its profiles found from anywhere.
fn config_with_backup(dir: &Path, backup: &str) -> std::path::PathBuf {
    let root = env!("CARGO_MANIFEST_DIR");
    let demo = std::fs::read_to_string(format!("{root}/config/demo-room.toml")).unwrap();
    let text = demo.replace(
        "profiles_dir = \"../device-profiles\"",
        &format!("profiles_dir = \"{root}/device-profiles\""),
    ) + backup;
    let path = dir.join("room.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// `stackroom serve` of that config (its devices unwired: none of its serial ports exist),
/// killed when dropped.
struct Serve(std::process::Child, String);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(config: &Path, data: &Path) -> Serve {
    use std::io::BufRead;
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(config)
        .arg("--data")
        .arg(data)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line.trim().strip_prefix("api: ").unwrap().to_string();
    Serve(child, base)
}

async fn admin(data: &Path, config: &Path) -> String {
    let out = stackroom(args(&[
        &"token",
        &"create",
        &"--role",
        &"admin",
        &"--name",
        &"ops",
        &"--config",
        &config,
        &"--data",
        &data,
    ]))
    .await;
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

async fn metrics(base: &str, token: &str) -> String {
    common::client()
        .get(format!("{base}/metrics"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn open_alarms(base: &str, token: &str) -> Vec<Value> {
    let url = format!("{base}/api/v1/alarms?state=open");
    let v = common::api::get_json(&common::client(), &url, token).await;
    v["items"].as_array().cloned().unwrap_or_default()
}

fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(&format!("{name}{{")))
        .and_then(|l| l.rsplit(' ').next())
        .map(|v| {
            if v == "+Inf" {
                f64::INFINITY
            } else {
                v.parse().unwrap()
            }
        })
}

#[tokio::test]
async fn scheduled_backups_keep_the_retention_and_a_failure_raises_an_alarm() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // Every two seconds, all on one day: the retention keeps the newest only.
    let config = config_with_backup(
        dir.path(),
        "\n[backup]\ncron = \"*/2 * * * * *\"\ndir = \"backups\"\nkeep_daily = 7\nkeep_weekly = 4\nkeep_monthly = 12\n",
    );
    let token = admin(&data, &config).await;
    let s = serve(&config, &data);
    let before = metrics(&s.1, &token).await;
    assert_eq!(
        metric(&before, "stackroom_backup_age_seconds"),
        Some(f64::INFINITY),
        "{before}"
    );
    let backups = data.join("backups");
    let manifests = || -> Vec<String> {
        std::fs::read_dir(&backups)
            .map(|d| {
                d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .filter(|n| n.ends_with(".manifest.json"))
                    .collect()
            })
            .unwrap_or_default()
    };
    // Three runs at least, then one backup left, whole and verified.
    let audit_runs = || rows(&data.join("stackroom.db"), "audit WHERE kind = 'backup'");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while audit_runs() < 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no three scheduled backups"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let kept = manifests();
    assert!(
        kept.len() <= 2,
        "the retention keeps the day's newest: {kept:?}"
    );
    for m in kept {
        let db = backups.join(m.replace(".manifest.json", ".db"));
        if db.exists() {
            stackroom::backup::verify(&db).unwrap();
        }
    }
    let after = metrics(&s.1, &token).await;
    let age = metric(&after, "stackroom_backup_age_seconds").unwrap();
    assert!((0.0..10.0).contains(&age), "{after}");
    assert!(metric(&after, "stackroom_backup_last_success_timestamp_seconds").unwrap() > 0.0);
    assert_eq!(metric(&after, "stackroom_backup_failures"), Some(0.0));
    // Every series the Grafana dashboard in contrib/ asks for is one /metrics has.
    let dashboard = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/contrib/grafana/stackroom.json"
    ))
    .unwrap();
    let names: std::collections::BTreeSet<&str> = regex::Regex::new(r"stackroom_[a-z_]+")
        .unwrap()
        .find_iter(&dashboard)
        .map(|m| m.as_str())
        .collect();
    assert!(names.len() >= 10, "{names:?}");
    for name in names {
        assert!(
            after.contains(&format!("# TYPE {name} ")),
            "the dashboard asks for {name}, which /metrics does not have"
        );
    }
    drop(s);

    // A directory that cannot be made: the alarm, and the failures counted.
    std::fs::write(dir.path().join("a-file"), "").unwrap();
    let broken = config_with_backup(
        dir.path(),
        &format!(
            "\n[backup]\ncron = \"*/2 * * * * *\"\ndir = \"{}\"\n",
            dir.path().join("a-file").join("backups").display()
        ),
    );
    let s = serve(&broken, &data);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let alarm = loop {
        let open = open_alarms(&s.1, &token).await;
        if let Some(a) = open.iter().find(|a| a["kind"] == "backup_failed") {
            break a.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no backup alarm: {open:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        alarm["message"].as_str().unwrap().contains("a-file"),
        "{alarm}"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let m = metrics(&s.1, &token).await;
    assert!(
        metric(&m, "stackroom_backup_failures").unwrap() >= 1.0,
        "{m}"
    );
    // One alarm, however often it fails.
    let open = open_alarms(&s.1, &token).await;
    let backup_alarms = open.iter().filter(|a| a["kind"] == "backup_failed").count();
    assert_eq!(backup_alarms, 1, "{open:?}");
}

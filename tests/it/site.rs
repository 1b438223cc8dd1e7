//! One site of three rooms, each on Debian's Mosquitto, bridged into a site Mosquitto, with
//! `stackroom site` following them: what a site's staff and its rooms would see.
//!
//! Each room is a real `stackroom demo --room stack-N --broker …` (its simulator, its own
//! Mosquitto set up as `stackroom broker-config` writes it); the site broker is configured
//! by `stackroom site broker-config` (a bridge pulling each room's topics in), and the site
//! service is the real `stackroom site`.

use crate::common::{self, Demo, mosquitto};

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use stackroom::config::RoomConfig;
use stackroom::demo;

const SITE: &str = "gd-power";

/// A running `stackroom site`, killed when dropped.
struct SiteService {
    child: Child,
    base: String,
    _stdout: BufReader<std::process::ChildStdout>,
}

impl Drop for SiteService {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Room {
    id: String,
    demo: Demo,
    dir: PathBuf,
    port: u16,
    broker: Option<mosquitto::Mosquitto>,
    config: RoomConfig,
}

impl Room {
    fn stop_broker(&mut self) {
        if let Some(b) = self.broker.take() {
            b.stop();
        }
    }

    fn start_broker(&mut self) {
        self.broker = Some(
            mosquitto::start(&self.dir, self.port, &self.config)
                .expect("the room's broker restarts"),
        );
    }
}

/// A room: its Mosquitto (as `broker-config` sets it up) and its demo controller on it.
fn room(root: &Path, n: u32) -> Option<Room> {
    let id = format!("stack-{n}");
    let dir = root.join(&id);
    std::fs::create_dir_all(&dir).unwrap();
    let port = mosquitto::free_port();
    let config = demo::as_room(RoomConfig::load(&demo::config_path()).unwrap(), &id);
    let config = mosquitto::on_site_broker(config, &dir.join("data"), port);
    std::fs::create_dir_all(dir.join("data")).unwrap();
    let broker = mosquitto::start(&dir, port, &config)?;
    let demo = common::start_demo(
        &dir.join("data"),
        &[
            "--room",
            &id,
            "--broker",
            &format!("mqtt://127.0.0.1:{port}"),
            "--time-scale",
            "20",
        ],
    );
    Some(Room {
        id,
        demo,
        dir,
        port,
        broker: Some(broker),
        config,
    })
}

fn run(args: &[&str]) -> String {
    let out = Command::new(common::BIN).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "stackroom {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn start_site(config: &Path) -> SiteService {
    let mut child = Command::new(common::BIN)
        .args(["site", "--config"])
        .arg(config)
        .args(["--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let base = line
        .trim()
        .strip_prefix("site api: ")
        .unwrap_or_else(|| panic!("expected 'site api: URL', got {line:?}"))
        .to_string();
    SiteService {
        child,
        base,
        _stdout: stdout,
    }
}

async fn site_get(client: &reqwest::Client, base: &str, path: &str) -> (u16, Value) {
    let r = client.get(format!("{base}{path}")).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Every entry of a feed (the room's `/api/v1/changes` or the site's
/// `/api/v1/rooms/{room}/changes`), by box id: its number and the box.
async fn whole_feed(
    client: &reqwest::Client,
    url: &str,
) -> std::collections::BTreeMap<i64, (i64, Value)> {
    let mut out = std::collections::BTreeMap::new();
    let mut since = 0;
    loop {
        let r = client
            .get(format!("{url}?since={since}&limit=5000"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{url}");
        let page: Value = r.json().await.unwrap();
        let changes = page["changes"].as_array().unwrap();
        if changes.is_empty() {
            return out;
        }
        for e in changes {
            since = e["seq"].as_i64().unwrap();
            out.insert(e["id"].as_i64().unwrap(), (since, e["box"].clone()));
        }
    }
}

/// Waits until the site has applied everything each room has (as the site heard it) and
/// holds `boxes` boxes of each.
async fn caught_up(site: &reqwest::Client, base: &str, rooms: &[Room], within: Duration) {
    let start = Instant::now();
    let mut last = Value::Null;
    while start.elapsed() < within {
        let (_, v) = site_get(site, base, "/api/v1/rooms").await;
        let mut all = true;
        for r in rooms {
            let room_last = common::get(&r.demo.base, "/api/v1/changes?since=0&limit=1")
                .await
                .2["last"]
                .as_i64()
                .unwrap();
            let seen = v["items"]
                .as_array()
                .and_then(|items| items.iter().find(|i| i["room"] == r.id.as_str()))
                .and_then(|i| i["replica"]["applied"].as_i64())
                .unwrap_or(-1);
            all &= seen >= room_last;
        }
        if all {
            return;
        }
        last = v;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the site did not catch up: {last:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_rooms_are_one_site_over_mosquitto_bridges() {
    let root = tempfile::tempdir().unwrap();
    let mut rooms = Vec::new();
    for n in 1..=3 {
        let Some(r) = room(root.path(), n) else {
            return mosquitto::skip();
        };
        rooms.push(r);
    }

    // The site: its config, its broker (bridges to the three rooms' brokers), its service.
    let site_dir = root.path().join("site");
    std::fs::create_dir_all(&site_dir).unwrap();
    let site_port = mosquitto::free_port();
    let mut toml = format!(
        "[site]\nid = \"{SITE}\"\n[storage]\ndata_dir = \"{}\"\n[broker]\nurl = \"mqtt://127.0.0.1:{site_port}\"\n",
        site_dir.join("data").display()
    );
    for r in &rooms {
        let token = common::token(&r.demo.base, "site", "operator").await;
        let token_file = site_dir.join(format!("{}.token", r.id));
        std::fs::write(&token_file, token).unwrap();
        toml.push_str(&format!(
            "[[rooms]]\nid = \"{}\"\napi = \"{}\"\ntoken_file = \"{}\"\nbroker = \"mqtt://127.0.0.1:{}\"\nbridge_password_file = \"{}\"\n",
            r.id,
            r.demo.base,
            token_file.display(),
            r.port,
            r.dir.join("data/mqtt-secrets/site-bridge").display()
        ));
    }
    let site_toml = site_dir.join("site.toml");
    std::fs::write(&site_toml, toml).unwrap();
    let conf_dir = site_dir.join("broker");
    let site_conf = site_toml.to_str().unwrap();
    run(&[
        "site",
        "--config",
        site_conf,
        "broker-config",
        "--out",
        conf_dir.to_str().unwrap(),
        "--port",
        &site_port.to_string(),
    ]);
    let site_broker_dir = site_dir.join("mosquitto");
    std::fs::create_dir_all(&site_broker_dir).unwrap();
    let mut site_broker = Some(
        mosquitto::run(&site_broker_dir, site_port, &conf_dir).expect("the site broker starts"),
    );
    let secret = run(&[
        "site",
        "--config",
        site_conf,
        "token",
        "wang.fang",
        "--role",
        "operator",
    ]);
    let staff = common::bearer_client(secret.trim());
    let site = start_site(&site_toml);
    let base = site.base.clone();

    // Every room's seeded boxes reach the site, each with its room.
    caught_up(&staff, &base, &rooms, Duration::from_secs(60)).await;
    let (status, stats) = site_get(&staff, &base, "/api/v1/stats").await;
    assert_eq!(status, 200, "{stats}");
    assert_eq!(stats["total"], 3 * demo::SEED_BOXES as u64, "{stats:#}");
    let (_, listed) = site_get(&staff, &base, "/api/v1/rooms").await;
    for item in listed["items"].as_array().unwrap() {
        assert_eq!(item["online"], true, "{item:#}");
        assert_eq!(item["bridge"], true, "{item:#}");
    }
    // Room 2's boxes are numbered 0461-…: found at the site with their room.
    let (status, found) = site_get(&staff, &base, "/api/v1/boxes?q=0461-H-001-00001").await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["items"][0]["room"], "stack-2", "{found:#}");
    let (status, _) = site_get(&common::client(), &base, "/api/v1/boxes?q=0461").await;
    assert_eq!(status, 401, "the site's API needs a token");

    // A box added in room 2 is found through the site within a second.
    let room2 = &rooms[1];
    let (status, _, added) = common::post_json(
        &room2.demo.base,
        "/api/v1/boxes",
        &json!({"archive_no": "0461-L-900-00001", "title": "新装用电申请 site-probe", "shelf": "R1-C2-L-S1-L1"}),
    )
    .await;
    assert_eq!(status, 201, "{added}");
    let added_at = Instant::now();
    let mut found_after = None;
    while added_at.elapsed() < Duration::from_secs(10) {
        let (_, v) = site_get(&staff, &base, "/api/v1/boxes?q=site-probe").await;
        if v["items"].as_array().is_some_and(|i| !i.is_empty()) {
            assert_eq!(v["items"][0]["room"], "stack-2");
            found_after = Some(added_at.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let found_after = found_after.expect("the box added in room 2 reaches the site");
    eprintln!("a box added in room 2 was found through the site after {found_after:?}");
    assert!(found_after < Duration::from_secs(1), "{found_after:?}");
    let (status, located) =
        site_get(&staff, &base, "/api/v1/locate?archive_no=0461-L-900-00001").await;
    assert_eq!(status, 200, "{located}");
    assert_eq!(
        (
            located["room"].as_str(),
            located["shelf"]["address"].as_str()
        ),
        (Some("stack-2"), Some("R1-C2-L-S1-L1")),
        "{located:#}"
    );

    // The site's retrieve opens the aisle in room 2's simulator, and only there, for the
    // person at the site.
    let (status, retrieved) = {
        let r = staff
            .post(format!("{base}/api/v1/boxes/0461-L-900-00001/retrieve"))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json::<Value>().await.unwrap())
    };
    assert_eq!(status, 202, "{retrieved:#}");
    assert_eq!(retrieved["room"], "stack-2");
    let range = retrieved["location"]["aisle"]["range"].as_u64().unwrap();
    let aisle = retrieved["location"]["aisle"]["aisle"].as_u64().unwrap();
    let mut opened = Value::Null;
    for _ in 0..300 {
        let (_, _, state) = common::get(&room2.demo.sim, "/sim/state").await;
        opened = state["ranges"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["range"] == range)
            .cloned()
            .unwrap();
        if opened["open_aisle"] == aisle && opened["motion"] == "idle" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        opened["open_aisle"], aisle,
        "room 2's simulator: {opened:#}"
    );
    for other in [&rooms[0], &rooms[2]] {
        let (_, _, commands) = common::get(
            &other.demo.sim,
            &format!("/sim/ranges/{range}/commands?since=0"),
        )
        .await;
        let moved = commands
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c.to_string().contains("open"));
        assert!(!moved, "{}'s simulator got no motion: {commands}", other.id);
    }
    let (_, _, trail) = common::get(&room2.demo.base, "/api/v1/audit?limit=50").await;
    assert!(
        trail.to_string().contains("site for wang.fang"),
        "room 2 records the site's request for its person: {trail:#}"
    );

    // Room 3 is cut off from the site (its broker goes down), changes meanwhile, comes back:
    // the site converges on exactly room 3's state.
    let room3_base = rooms[2].demo.base.clone();
    rooms[2].stop_broker();
    let mut offline = false;
    for _ in 0..100 {
        let (_, v) = site_get(&staff, &base, "/api/v1/rooms").await;
        let r3 = v["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["room"] == "stack-3")
            .cloned()
            .unwrap();
        if r3["online"] == false {
            offline = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(offline, "the site sees room 3 offline");
    // A room without its broker still answers its own staff.
    let (status, _, _) =
        common::get(&room3_base, "/api/v1/locate?archive_no=0471-H-001-00001").await;
    assert_eq!(status, 200);
    // 300 boxes registered (four of them shelved), one moved.
    let mut csv = String::from("archive_no,title,shelf\n");
    for i in 1..=300 {
        let shelf = if i <= 4 {
            format!("R2-C3-R-S3-L{i}")
        } else {
            String::new()
        };
        csv.push_str(&format!("0471-L-901-{i:05},离线期间登记 {i},{shelf}\n"));
    }
    let imported = common::api_client(&room3_base)
        .post(format!("{room3_base}/api/v1/import/boxes"))
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    let status = imported.status();
    let body = imported.text().await.unwrap();
    assert!(
        status.is_success(),
        "{status}: {}",
        &body[..body.len().min(600)]
    );
    let moved = common::api_client(&room3_base)
        .put(format!(
            "{room3_base}/api/v1/boxes/0471-H-001-00003/binding"
        ))
        .json(&json!({"shelf": "R2-C3-R-S3-L1", "reason": "re-shelved"}))
        .send()
        .await
        .unwrap();
    assert_eq!(moved.status(), 200);
    rooms[2].start_broker();
    caught_up(&staff, &base, &rooms, Duration::from_secs(60)).await;
    let room_feed = whole_feed(
        &common::api_client(&room3_base),
        &format!("{room3_base}/api/v1/changes"),
    )
    .await;
    let site_feed = whole_feed(&staff, &format!("{base}/api/v1/rooms/stack-3/changes")).await;
    assert_eq!(room_feed.len(), demo::SEED_BOXES + 300);
    assert_eq!(room_feed.len(), site_feed.len());
    for (id, theirs) in &room_feed {
        assert_eq!(
            site_feed.get(id),
            Some(theirs),
            "box {id} of room 3, row by row"
        );
    }

    // The site broker goes down: every room keeps serving locate (and opening aisles); the
    // site answers from its replica and says the rooms are not online.
    site_broker.take().unwrap().stop();
    for r in &rooms {
        let no = format!(
            "04{}1-H-001-00005",
            4 + r.id.trim_start_matches("stack-").parse::<u32>().unwrap()
        );
        let (status, _, v) =
            common::get(&r.demo.base, &format!("/api/v1/locate?archive_no={no}")).await;
        assert_eq!(status, 200, "{}: {v}", r.id);
    }
    let mut all_offline = false;
    for _ in 0..100 {
        let (_, v) = site_get(&staff, &base, "/api/v1/rooms").await;
        if v["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["online"] == false)
        {
            all_offline = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        all_offline,
        "without its broker the site knows no room to be online"
    );
    let (status, v) = site_get(&staff, &base, "/api/v1/locate?archive_no=0451-H-001-00005").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        (v["room"].as_str(), v["room_online"].as_bool()),
        (Some("stack-1"), Some(false))
    );
    drop(site);
}

/// `stackroom demo --rooms 3`: three seeded rooms on their embedded brokers, bridged into a
/// site Mosquitto, and the site API on `--listen`.
#[tokio::test]
async fn the_site_demo_runs_three_rooms_as_one_site() {
    if stackroom::bus::mosquitto::installed().is_none() {
        return mosquitto::skip();
    }
    let data = tempfile::tempdir().unwrap();
    let mut child = Command::new(common::BIN)
        .args([
            "demo",
            "--rooms",
            "3",
            "--time-scale",
            "20",
            "--listen",
            "127.0.0.1:0",
            "--data",
        ])
        .arg(data.path())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut lines = Vec::new();
    for _ in 0..6 {
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        lines.push(line.trim().to_string());
    }
    let site = SiteService {
        child,
        base: lines[0]
            .strip_prefix("site api: ")
            .expect("the site's address")
            .to_string(),
        _stdout: stdout,
    };
    let base = site.base.clone();
    let token = lines[1]
        .strip_prefix("site token: ")
        .expect("the site's token");
    assert!(lines[2].starts_with("site broker: mqtt://"), "{lines:?}");
    assert!(lines[5].starts_with("room stack-3: http://"), "{lines:?}");
    let staff = common::bearer_client(token);
    let mut stats = Value::Null;
    for _ in 0..600 {
        stats = site_get(&staff, &base, "/api/v1/stats").await.1;
        if stats["total"] == 3 * demo::SEED_BOXES as u64 && stats["online"] == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(stats["total"], 3 * demo::SEED_BOXES as u64, "{stats:#}");
    assert_eq!(
        stats["online"], 3,
        "every room online through its bridge: {stats:#}"
    );
    let (status, v) = site_get(&staff, &base, "/api/v1/locate?archive_no=0471-H-002-00003").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["room"], "stack-3");

    // The site's staff page: a box of room 3 searched, its room and map shown, its aisle
    // opened through room 3's controller and seen open on the map.
    let profile = tempfile::tempdir().unwrap();
    let Some((_driver, browser)) = crate::page::browser(profile.path()).await else {
        return;
    };
    use crate::page::{click, snapshot, until};
    browser
        .goto(&format!("{base}/#token={token}"))
        .await
        .unwrap();
    until(
        &browser,
        "document.querySelectorAll('#rooms .room.online').length === 3",
        20,
        "three rooms online",
    )
    .await;
    browser
        .find(fantoccini::Locator::Css("#q"))
        .await
        .unwrap()
        .send_keys("0471-H-002-00003")
        .await
        .unwrap();
    until(
        &browser,
        "document.querySelector('tr.hit[data-archive-no=\"0471-H-002-00003\"]')",
        10,
        "the box found",
    )
    .await;
    let room_cell = browser
        .execute(
            "return document.querySelector('tr.hit').children[2].textContent;",
            vec![],
        )
        .await
        .unwrap();
    assert!(
        room_cell.as_str().unwrap().contains('3'),
        "the room is shown: {room_cell}"
    );
    click(&browser, "tr.hit").await;
    until(
        &browser,
        "document.querySelector('#map svg .carriage.target')",
        10,
        "the room's map with the box's carriages",
    )
    .await;
    click(&browser, "#open").await;
    until(
        &browser,
        "document.querySelector('#map svg .aisle-open')",
        30,
        "the aisle open on the map",
    )
    .await;
    snapshot(&browser, "site-aisle-open").await;
    let (range, aisle) = {
        let v = site_get(&staff, &base, "/api/v1/locate?archive_no=0471-H-002-00003")
            .await
            .1;
        (
            v["aisle"]["range"].as_u64().unwrap(),
            v["aisle"]["aisle"].as_u64().unwrap(),
        )
    };
    let shown = browser
        .execute("const a = document.querySelector('#map svg .aisle-open'); return [+a.dataset.range, +a.dataset.aisle];", vec![])
        .await
        .unwrap();
    assert_eq!(
        shown,
        json!([range, aisle]),
        "the box's aisle is the one shown open"
    );
    let (room3, token3) = common::api::demo_room(&lines[5], "stack-3");
    let state = common::api::get_json(
        &common::client(),
        &format!("{room3}/api/v1/ranges/{range}"),
        &token3,
    )
    .await;
    assert_eq!(state["open_aisle"], aisle, "room 3 opened it: {state:#}");
    drop(site);
}

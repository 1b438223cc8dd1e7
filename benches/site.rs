//! Site catch-up benchmark: `cargo bench --bench site` (`BOXES=N`, default 100,000;
//! `ROUNDS=N` rounds of the catch-up, default 3).
//!
//! A room of `BOXES` boxes imported with the real `stackroom import` (each box one change
//! in its feed) and served by `stackroom serve`; then, in one run, three times each,
//! alternating:
//! - the limit: paging the room's whole `/api/v1/changes` over HTTP and parsing it, as the
//!   site does, applying nothing;
//! - the site catching up from nothing: `site::follow::catch_up` into a fresh replica (the
//!   same pages, each applied in one transaction with its words indexed, the next page
//!   fetched meanwhile).
//!
//! Then site search on that replica (in-process) beside the room's own search over HTTP,
//! the median of 200 of each.
//!
//! With `ROOMS=N` (default 1) the site's replica of N rooms is then loaded from the room's
//! feed under N room ids (N × `BOXES` boxes in one replica, timed, with its size), and
//! search on it, in-process, beside the room's own search in-process (one room of
//! `BOXES`), the median of 200 each.
//!
//! Then, if Debian's Mosquitto is installed, the steady lag: `stackroom demo --rooms 2`
//! (two rooms, the site broker bridged to both, the site service), `RATE` changes a
//! second (default 1,000) made in room 1 for `SECONDS` (default 20) as bulk moves of 100
//! boxes, and every 20 ms the room's newest feed number and the site's applied number
//! read; a change's lag is the time from the first sample where the room has it to the
//! first where the site has applied it.

#[path = "../tests/it/common/api.rs"]
mod api;
mod common;

use std::time::{Duration, Instant};

use api::{demo_room, get_json};
use common::BenchRoom;
use stackroom::name::Name;
use stackroom::site::{Replica, SiteRoom};

fn site_room(base: &str, token_file: &std::path::Path) -> SiteRoom {
    SiteRoom {
        id: "stack-1".into(),
        name: Name::default(),
        api: base.to_string(),
        token_file: token_file.to_path_buf(),
        broker: stackroom::config::bus::BrokerUrl::parse("mqtt://127.0.0.1:1883").unwrap(),
        bridge_password_file: token_file.to_path_buf(),
        bridge_ca_file: None,
    }
}

/// Pages the room's feed from 0 to its end, parsing each page; how many entries, and the
/// feed's newest number.
async fn read_feed(http: &reqwest::Client, base: &str, token: &str) -> (usize, i64) {
    let mut since = 0;
    let mut n = 0;
    loop {
        let url = format!("{base}/api/v1/changes?since={since}&limit=5000");
        let page = get_json(http, &url, token).await;
        let changes = page["changes"].as_array().unwrap();
        n += changes.len();
        if changes.len() < 5000 {
            return (n, page["last"].as_i64().unwrap());
        }
        since = changes.last().unwrap()["seq"].as_i64().unwrap();
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    let boxes = common::env("BOXES", 100_000) as usize;
    let dir = tempfile::tempdir().unwrap();
    let room = BenchRoom::write(dir.path(), boxes);
    let data = dir.path().join("data");
    let (import, _) = room.import(&data);
    let token = common::viewer_token(&room.config_path, &data);
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, &token).unwrap();
    let server = common::serve(&room.config_path, &data);
    let http = reqwest::Client::new();
    println!("{boxes} boxes imported in {import:.1?}; one change each in the room's feed");
    println!("| catch-up of {boxes} changes | time | changes/s | × the limit |");
    println!("| --- | --- | --- | --- |");
    let site_room = site_room(&server.base, &token_file);
    let mut last_replica = None;
    for round in 0..common::env("ROUNDS", 3) {
        let start = Instant::now();
        let (n, last) = read_feed(&http, &server.base, &token).await;
        let limit = start.elapsed();
        assert_eq!(n, boxes);
        let replica = Replica::open(&dir.path().join(format!("site-{round}.db"))).unwrap();
        let start = Instant::now();
        stackroom::site::follow::catch_up(&site_room, &replica, &http)
            .await
            .unwrap();
        let site = start.elapsed();
        assert_eq!(replica.applied("stack-1").await.unwrap(), last);
        let rate = |d: Duration| format!("{:.0}", boxes as f64 / d.as_secs_f64());
        println!(
            "| the limit: the room's feed paged over HTTP and parsed | {limit:.2?} | {} | 1.00× |",
            rate(limit)
        );
        println!(
            "| the site: paged, applied and indexed into its replica | {site:.2?} | {} | {:.2}× |",
            rate(site),
            site.as_secs_f64() / limit.as_secs_f64()
        );
        last_replica = Some(replica);
    }
    let replica = last_replica.unwrap();
    println!();
    println!(
        "| search, limit 20 (median of 200) | the room over HTTP | the site's replica, in-process |"
    );
    println!("| --- | --- | --- |");
    for q in [
        "0451-H-012",
        "合同",
        "metering",
        "meter",
        "0451-H-001-00007",
    ] {
        let mut room_times = Vec::new();
        let mut site_times = Vec::new();
        let url = format!(
            "{}/api/v1/boxes?q={}&limit=20",
            server.base,
            common::percent(q)
        );
        for _ in 0..200 {
            let start = Instant::now();
            let r = http.get(&url).bearer_auth(&token).send().await.unwrap();
            assert!(r.status().is_success());
            let _ = r.bytes().await.unwrap();
            room_times.push(start.elapsed());
            let start = Instant::now();
            let found = replica.search(q, 20, 0).await.unwrap();
            site_times.push(start.elapsed());
            assert!(!found.items.is_empty(), "{q}");
        }
        println!(
            "| `{q}` | {:.2?} | {:.2?} |",
            median(room_times),
            median(site_times)
        );
    }
    let rooms = common::env("ROOMS", 1);
    if rooms > 1 {
        many_rooms(
            &http,
            &server.base,
            &token_file,
            &room,
            &data,
            dir.path(),
            rooms,
        )
        .await;
    }
    drop(server);
    steady_lag().await;
}

/// The replica of `rooms` rooms (the one room under as many ids) and search on it beside
/// the room's own.
async fn many_rooms(
    http: &reqwest::Client,
    base: &str,
    token_file: &std::path::Path,
    room: &BenchRoom,
    data: &std::path::Path,
    dir: &std::path::Path,
    rooms: u64,
) {
    let path = dir.join("site-many.db");
    let replica = Replica::open(&path).unwrap();
    let start = Instant::now();
    for k in 1..=rooms {
        let one = SiteRoom {
            id: format!("stack-{k}"),
            ..site_room(base, token_file)
        };
        let started = Instant::now();
        stackroom::site::follow::catch_up(&one, &replica, http)
            .await
            .unwrap();
        eprintln!("room {k} of {rooms}: {:.1?}", started.elapsed());
    }
    let load = start.elapsed();
    let size = std::fs::metadata(&path).unwrap().len() as f64 / (1024.0 * 1024.0);
    let total = replica
        .rooms()
        .await
        .unwrap()
        .iter()
        .map(|r| r.boxes.values().sum::<u64>())
        .sum::<u64>();
    println!();
    println!("| the site's replica of {rooms} rooms | figure |");
    println!("| --- | --- |");
    println!("| boxes | {total} |");
    println!(
        "| loaded from the rooms' feeds | {load:.1?} ({:.0} boxes/s) |",
        total as f64 / load.as_secs_f64()
    );
    println!("| database | {size:.0} MiB |");
    let store = stackroom::store::Store::open(&data.join("stackroom.db")).unwrap();
    let locations =
        stackroom::location::LocationService::open(std::sync::Arc::new(room.config.clone()), store)
            .await
            .unwrap();
    println!();
    println!(
        "| search, limit 20, in-process (median of 200) | the room ({} boxes) | the site ({total} boxes) | × the room |",
        total / rooms
    );
    println!("| --- | --- | --- | --- |");
    for q in [
        "0451-H-012",
        "合同",
        "天河区",
        "metering",
        "meter",
        "0451-H-001-00007",
    ] {
        let mut room_times = Vec::new();
        let mut site_times = Vec::new();
        for _ in 0..200 {
            let start = Instant::now();
            let found = locations
                .find(
                    q,
                    stackroom::location::Page {
                        offset: 0,
                        limit: 20,
                    },
                )
                .await
                .unwrap();
            room_times.push(start.elapsed());
            assert!(!found.items.is_empty(), "{q}");
            let start = Instant::now();
            let found = replica.search(q, 20, 0).await.unwrap();
            site_times.push(start.elapsed());
            assert!(!found.items.is_empty(), "{q}");
        }
        let (r, s) = (median(room_times), median(site_times));
        println!(
            "| `{q}` | {r:.2?} | {s:.2?} | {:.2}× |",
            s.as_secs_f64() / r.as_secs_f64()
        );
    }
}

/// The lag of the site behind a room changing at a steady rate, through the bridge.
async fn steady_lag() {
    use std::io::BufRead;
    if stackroom::bus::mosquitto::installed().is_none() {
        println!("\n(no Mosquitto: the steady lag was not measured)");
        return;
    }
    let rate = common::env("RATE", 1000);
    let seconds = common::env("SECONDS", 20);
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(common::BIN)
        .args(["demo", "--rooms", "2", "--listen", "127.0.0.1:0", "--data"])
        .arg(dir.path())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut lines = Vec::new();
    for _ in 0..5 {
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        lines.push(line.trim().to_string());
    }
    let site = lines[0].strip_prefix("site api: ").unwrap().to_string();
    let site_token = lines[1].strip_prefix("site token: ").unwrap().to_string();
    let (room, room_token) = demo_room(&lines[3], "stack-1");
    let http = reqwest::Client::new();
    let room_last = |http: reqwest::Client, room: String, token: String| async move {
        let url = format!("{room}/api/v1/changes?since=999999999&limit=1");
        get_json(&http, &url, &token).await["last"]
            .as_i64()
            .unwrap()
    };
    let site_applied = |http: reqwest::Client, site: String, token: String| async move {
        let v = get_json(&http, &format!("{site}/api/v1/rooms"), &token).await;
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["room"] == "stack-1")
            .and_then(|r| r["replica"]["applied"].as_i64())
            .unwrap_or(0)
    };
    // Caught up with the seed first.
    loop {
        let last = room_last(http.clone(), room.clone(), room_token.clone()).await;
        if site_applied(http.clone(), site.clone(), site_token.clone()).await >= last && last > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Empty shelves of the demo room, ten boxes to each; 100 boxes moved between two sets.
    let config = stackroom::demo::as_room(
        stackroom::config::RoomConfig::load(&stackroom::demo::config_path()).unwrap(),
        "stack-1",
    );
    let shelves: Vec<String> = config.layout.shelves().map(|s| s.to_string()).collect();
    let (a, b) = (
        &shelves[shelves.len() - 10..],
        &shelves[shelves.len() - 20..shelves.len() - 10],
    );
    let boxes: Vec<String> = (1..=100)
        .map(|i| format!("0451-H-{:03}-{:05}", 1 + (i - 1) / 60, 1 + (i - 1) % 60))
        .collect();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let samples = {
        let (http, room, site, rt, st, stop) = (
            http.clone(),
            room.clone(),
            site.clone(),
            room_token.clone(),
            site_token.clone(),
            stop.clone(),
        );
        tokio::spawn(async move {
            let mut room_seen = Vec::new();
            let mut site_seen = Vec::new();
            let start = Instant::now();
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                tick.tick().await;
                let (r, s) = tokio::join!(
                    room_last(http.clone(), room.clone(), rt.clone()),
                    site_applied(http.clone(), site.clone(), st.clone())
                );
                let t = start.elapsed();
                room_seen.push((t, r));
                site_seen.push((t, s));
            }
            (room_seen, site_seen)
        })
    };
    let per_batch = boxes.len() as u64;
    let mut tick = tokio::time::interval(Duration::from_secs_f64(per_batch as f64 / rate as f64));
    let start = Instant::now();
    let mut sent = 0u64;
    let mut turn = 0usize;
    while start.elapsed() < Duration::from_secs(seconds) {
        tick.tick().await;
        let to = if turn.is_multiple_of(2) { a } else { b };
        turn += 1;
        let moves: Vec<serde_json::Value> = boxes
            .iter()
            .enumerate()
            .map(|(i, no)| serde_json::json!({"archive_no": no, "shelf": to[i / 10]}))
            .collect();
        let r = http
            .post(format!("{room}/api/v1/bindings/moves"))
            .bearer_auth(&room_token)
            .json(&serde_json::json!({"moves": moves, "reason": "bench"}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.text().await.unwrap());
        sent += per_batch;
    }
    let made = start.elapsed();
    // Let the site finish, then stop sampling.
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (room_seen, site_seen) = samples.await.unwrap();
    let mut lags = Vec::new();
    let mut j = 0;
    for &(t, last) in &room_seen {
        while j < site_seen.len() && (site_seen[j].0 < t || site_seen[j].1 < last) {
            j += 1;
        }
        if let Some(&(ts, _)) = site_seen.get(j) {
            lags.push(ts - t);
        }
    }
    lags.sort();
    println!();
    println!(
        "| steady lag, {} changes/s for {seconds} s (bulk moves of 100) | p50 | p99 | max | samples |",
        rate
    );
    println!("| --- | --- | --- | --- | --- |");
    println!(
        "| the site behind room 1 ({:.0} changes/s made) | {:.0?} | {:.0?} | {:.0?} | {} |",
        sent as f64 / made.as_secs_f64(),
        common::percentile(&lags, 0.5),
        common::percentile(&lags, 0.99),
        lags.last().copied().unwrap_or_default(),
        lags.len()
    );
    let _ = child.kill();
    let _ = child.wait();
}

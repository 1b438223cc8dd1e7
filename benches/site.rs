//! Site catch-up benchmark: `cargo bench --bench site` (`BOXES=N`, default 100,000).
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

mod common;

use std::time::{Duration, Instant};

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
        let page: serde_json::Value = http
            .get(format!("{base}/api/v1/changes?since={since}&limit=5000"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
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
    for round in 0..3 {
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
    drop(server);
}

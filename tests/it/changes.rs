//! The room's change feed (for a site's replica of every room): numbered in the same
//! transaction as each change, read through `/api/v1/changes`, published on MQTT.

use crate::common;

use std::time::Duration;

use common::{api_client, get, post_json, start_demo};
use rumqttc::{AsyncClient, Event, Packet, QoS};
use serde_json::{Value, json};

async fn page(base: &str, since: i64, limit: usize) -> Value {
    let (status, _, v) = get(
        base,
        &format!("/api/v1/changes?since={since}&limit={limit}"),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    v
}

#[tokio::test]
async fn every_change_to_a_box_renumbers_it_in_the_feed_and_is_published() {
    let data = tempfile::tempdir().unwrap();
    let d = start_demo(data.path(), &[]);
    let base = d.base.clone();

    // The seeded room, from the beginning, a page at a time: every box once, in order.
    let first = page(&base, 0, 5000).await;
    assert_eq!(
        (first["site"].as_str(), first["room"].as_str()),
        (Some("gd-power"), Some("stack-1"))
    );
    let entries = first["changes"].as_array().unwrap();
    assert_eq!(entries.len(), 5000);
    let mut seen: std::collections::HashSet<String> = entries
        .iter()
        .map(|e| e["box"]["archive_no"].as_str().unwrap().to_string())
        .collect();
    let seqs: Vec<i64> = entries.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in order");
    let rest = page(&base, *seqs.last().unwrap(), 5000).await;
    for e in rest["changes"].as_array().unwrap() {
        seen.insert(e["box"]["archive_no"].as_str().unwrap().to_string());
    }
    assert_eq!(seen.len(), 5400, "every seeded box once");
    let last = rest["last"].as_i64().unwrap();
    assert_eq!(
        rest["changes"].as_array().unwrap().last().unwrap()["seq"].as_i64(),
        Some(last)
    );
    assert_eq!(
        page(&base, last, 10).await["changes"]
            .as_array()
            .unwrap()
            .len(),
        0
    );

    // Listening where a site would.
    let (client, mut events) = AsyncClient::new(d.mqtt_options("test-site"), 64);
    client
        .subscribe("stackroom/gd-power/stack-1/changes", QoS::AtLeastOnce)
        .await
        .unwrap();
    let published = tokio::spawn(async move {
        let mut got = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(8), async {
            loop {
                if let Ok(Event::Incoming(Packet::Publish(p))) = events.poll().await {
                    got.push(serde_json::from_slice::<Value>(&p.payload).unwrap());
                }
            }
        })
        .await;
        got
    });
    tokio::time::sleep(Duration::from_millis(500)).await;

    // A box registered, then bound to a shelf, then its title corrected.
    let (status, _, b) = post_json(
        &base,
        "/api/v1/boxes",
        &json!({"archive_no": "0451-L-901-00001", "title": "新户 feed"}),
    )
    .await;
    assert_eq!(status, 201, "{b}");
    let after_register = page(&base, last, 10).await;
    let registered = after_register["changes"].as_array().unwrap();
    assert_eq!(registered.len(), 1);
    assert_eq!(registered[0]["box"]["archive_no"], "0451-L-901-00001");
    let registered_seq = registered[0]["seq"].as_i64().unwrap();
    assert!(registered_seq > last);
    let r = api_client(&base)
        .put(format!("{base}/api/v1/boxes/0451-L-901-00001/binding"))
        .json(&json!({"shelf": "R1-C2-L-S1-L1", "reason": "new box"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Renumbered, and there once: as it is now, on its shelf.
    let now = page(&base, last, 10).await;
    let entries = now["changes"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{now}");
    assert!(entries[0]["seq"].as_i64().unwrap() > registered_seq);
    assert_eq!(
        entries[0]["box"]["location"]["shelf"]["address"],
        "R1-C2-L-S1-L1"
    );

    // A box checked out on a loan: renumbered with the loan it is out on.
    let (status, _, loan) = post_json(
        &base,
        "/api/v1/loans",
        &json!({"borrower": {"name": "李娜"}, "purpose": "feed", "kind": "reading_room",
                "due": (chrono::Utc::now() + chrono::Duration::days(2)).format("%Y-%m-%d").to_string(),
                "boxes": ["0451-H-001-00002"]}),
    )
    .await;
    assert_eq!(status, 201, "{loan}");
    let id = loan["id"].as_i64().unwrap();
    let before_checkout = page(&base, 0, 1).await["last"].as_i64().unwrap();
    let (status, _, _) =
        post_json(&base, &format!("/api/v1/loans/{id}/checkout"), &json!({})).await;
    assert_eq!(status, 200);
    let out = page(&base, before_checkout, 10).await;
    let entries = out["changes"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{out}");
    assert_eq!(entries[0]["box"]["archive_no"], "0451-H-001-00002");
    assert_eq!(
        entries[0]["box"]["location"]["loan"]["id"].as_i64(),
        Some(id),
        "{out}"
    );

    // Bad requests are told so.
    for query in ["since=-1", "limit=0", "limit=5001", "since=x"] {
        let (status, _, v) = get(&base, &format!("/api/v1/changes?{query}")).await;
        assert_eq!(status, 422, "{query}: {v}");
    }

    // On MQTT, each message continuing from the last: the new box, its binding, the loan.
    let got = published.await.unwrap();
    assert!(!got.is_empty(), "nothing published");
    let mut after = got[0]["after"].as_i64().unwrap();
    assert_eq!(
        after, last,
        "the feed is published from its newest number at the start"
    );
    let mut boxes = Vec::new();
    for m in &got {
        assert_eq!(m["after"].as_i64(), Some(after), "no gap: {got:?}");
        for e in m["changes"].as_array().unwrap() {
            boxes.push(e["box"]["archive_no"].as_str().unwrap().to_string());
            after = e["seq"].as_i64().unwrap();
        }
    }
    assert!(boxes.contains(&"0451-L-901-00001".to_string()), "{boxes:?}");
    assert!(boxes.contains(&"0451-H-001-00002".to_string()), "{boxes:?}");
    assert_eq!(after, page(&base, 0, 1).await["last"].as_i64().unwrap());
}

//! The controller on MQTT: the publisher of its events and status, and (with the `demo`
//! feature, on by default) the embedded broker of a single-machine installation.
//!
//! rumqttd listens on a loopback port of its own and lets in only the front door, with a
//! secret made at each start; clients reach it through [`crate::bus::front`] on the room's
//! `mqtt.embedded_listen`, which authenticates each and enforces its topic rights. A site
//! with many rooms points every controller at its own broker instead
//! (`mqtt.broker = "mqtts://stackroom@host:8883"`).

use std::time::Duration;

use crate::bus::Endpoint;

#[cfg(feature = "demo")]
mod embedded;
#[cfg(feature = "demo")]
pub use embedded::{BrokerError, EmbeddedBroker};

/// Publishes the room's events to MQTT: the controller's own status (retained) on
/// `stackroom/{site}/{room}/status`, `{"online":true,…}` from each connection and its last
/// will `{"online":false}` when it dies or loses the broker (every range of an offline
/// controller is then unknown, whatever its last retained state says); each range's state
/// (retained, again on every reconnection) on `stackroom/{site}/{room}/ranges/{range}/state`, each operation change on
/// `stackroom/{site}/{room}/operations`, each environment alarm change on
/// `stackroom/{site}/{room}/alarms`, each sensor change (retained) on
/// `stackroom/{site}/{room}/environment/{sensor}`, each overdue loan (once a day) on
/// `stackroom/{site}/{room}/loans/overdue`, and the room's change feed as it grows on
/// `stackroom/{site}/{room}/changes` (see [`FEED_EVERY`]). It reconnects by itself; what
/// happens while the broker is away is not queued (the retained state is republished on
/// the next change; a gap in the feed shows in its `after` and is fetched from
/// `/api/v1/changes`).
pub fn publish_events(
    endpoint: &Endpoint,
    site: &str,
    room: &str,
    shelving: &crate::shelving::Shelving,
    environment: &crate::environment::Environment,
    loans: &crate::loans::Loans,
    locations: &crate::location::LocationService,
) -> Publisher {
    use rumqttc::{AsyncClient, Event, LastWill, Outgoing, Packet, QoS};
    let base = format!("stackroom/{site}/{room}");
    let status = format!("{base}/status");
    let mut options = endpoint.options(None);
    options.set_keep_alive(Duration::from_secs(5));
    options.set_max_packet_size(FEED_PACKET, FEED_PACKET);
    options.set_last_will(LastWill::new(
        &status,
        r#"{"online":false}"#,
        QoS::AtLeastOnce,
        true,
    ));
    let (client, mut eventloop) = AsyncClient::new(options, 256);
    let mut events = shelving.subscribe();
    let mut env_events = environment.subscribe();
    let mut overdue = loans.subscribe_overdue();
    let ranges = shelving.clone();
    let announcer = client.clone();
    let state_base = base.clone();
    let closing = client.clone();
    let closing_status = status.clone();
    let poller = tokio::spawn(async move {
        let mut backoff = crate::link::Backoff::default();
        loop {
            match eventloop.poll().await {
                // `Publisher::close` said goodbye.
                Ok(Event::Outgoing(Outgoing::Disconnect)) => return,
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    backoff.reset();
                    let online = serde_json::json!({"online": true, "since": chrono::Utc::now()});
                    let _ =
                        announcer.try_publish(&status, QoS::AtLeastOnce, true, online.to_string());
                    for view in ranges.ranges() {
                        if let Ok(body) = serde_json::to_vec(&view) {
                            let topic = format!("{state_base}/ranges/{}/state", view.range);
                            let _ = announcer.try_publish(topic, QoS::AtLeastOnce, true, body);
                        }
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "event publisher reconnects");
                    tokio::time::sleep(backoff.next_pause()).await;
                }
            }
        }
    });
    let feed = tokio::spawn(publish_feed(
        client.clone(),
        format!("{base}/changes"),
        (site.to_string(), room.to_string()),
        locations.clone(),
    ));
    let task = tokio::spawn(async move {
        let publish = |event: &crate::shelving::Event| -> Option<(String, bool, Vec<u8>)> {
            match event {
                crate::shelving::Event::Range(r) => Some((
                    format!("{base}/ranges/{}/state", r.range),
                    true,
                    serde_json::to_vec(r).ok()?,
                )),
                crate::shelving::Event::Operation(o) => Some((
                    format!("{base}/operations"),
                    false,
                    serde_json::to_vec(o).ok()?,
                )),
            }
        };
        let alarms = format!("{base}/alarms");
        let sensors = format!("{base}/environment");
        loop {
            let event = tokio::select! {
                o = overdue.recv() => {
                    if let Ok(loan) = o
                        && let Ok(body) = serde_json::to_vec(&loan)
                    {
                        let _ = client.try_publish(format!("{base}/loans/overdue"), QoS::AtLeastOnce, false, body);
                    }
                    continue;
                }
                e = env_events.recv() => {
                    match e {
                        Ok(crate::environment::EnvEvent::Alarm(a)) => {
                            if let Ok(body) = serde_json::to_vec(&a) {
                                let _ = client.try_publish(alarms.clone(), QoS::AtLeastOnce, false, body);
                            }
                        }
                        Ok(crate::environment::EnvEvent::Point(p)) => {
                            if let Ok(body) = serde_json::to_vec(&p) {
                                let _ = client.try_publish(format!("{sensors}/{}", p.id), QoS::AtLeastOnce, true, body);
                            }
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                            tracing::warn!(missed = n, "environment publisher fell behind");
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => {}
                    }
                    continue;
                }
                e = events.recv() => e,
            };
            match event {
                Ok(event) => {
                    if let Some((topic, retain, body)) = publish(&event) {
                        let _ = client.try_publish(topic, QoS::AtLeastOnce, retain, body);
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "event publisher fell behind");
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            }
        }
    });
    Publisher {
        client: closing,
        status: closing_status,
        poller,
        task,
        feed,
    }
}

/// How often the publisher looks for new entries in the change feed.
pub const FEED_EVERY: Duration = Duration::from_millis(200);

/// Boxes in one message of the feed at most (a box is about a kilobyte of JSON).
const FEED_BATCH: usize = 100;

/// The largest MQTT packet the publisher sends.
const FEED_PACKET: usize = 256 * 1024;

/// Publishes the change feed from its newest number at the start (what came before is
/// fetched from `/api/v1/changes`): each message `{"site", "room", "after", "last",
/// "changes": [{"seq", "box"}]}` continues from `after`; a reader whose own number differs
/// has missed one and asks the API from its own.
async fn publish_feed(
    client: rumqttc::AsyncClient,
    topic: String,
    (site, room): (String, String),
    locations: crate::location::LocationService,
) {
    let mut after = loop {
        match locations.last_change().await {
            Ok(n) => break n,
            Err(e) => {
                tracing::warn!(error = %e, "the change feed cannot be read; trying again");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    let mut tick = tokio::time::interval(FEED_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let feed = match locations.feed(after, FEED_BATCH).await {
            Ok(feed) => feed,
            Err(e) => {
                tracing::warn!(error = %e, "the change feed cannot be read");
                continue;
            }
        };
        let Some(newest) = feed.changes.last().map(|c| c.seq) else {
            continue;
        };
        let body = serde_json::json!({
            "site": site,
            "room": room,
            "after": after,
            "last": feed.last,
            "changes": feed.changes,
        });
        if let Err(e) = client
            .publish(&topic, rumqttc::QoS::AtLeastOnce, false, body.to_string())
            .await
        {
            tracing::debug!(error = %e, "a change feed message was not sent: the reader will fetch it");
        }
        after = newest;
        if newest < feed.last {
            tick.reset_immediately();
        }
    }
}

/// The running event publisher.
pub struct Publisher {
    client: rumqttc::AsyncClient,
    status: String,
    poller: tokio::task::JoinHandle<()>,
    task: tokio::task::JoinHandle<()>,
    feed: tokio::task::JoinHandle<()>,
}

impl Publisher {
    /// Drops the connection without a goodbye, as a crash would: the broker sends the will.
    pub fn abort(self) {
        self.task.abort();
        self.feed.abort();
        self.poller.abort();
    }

    /// Says `{"online":false}` (retained) and leaves the broker with a clean DISCONNECT, so
    /// listeners hear the controller went away on purpose; waits up to two seconds.
    pub async fn close(self) {
        use rumqttc::QoS;
        self.task.abort();
        self.feed.abort();
        let goodbye = async {
            let _ = self
                .client
                .publish(&self.status, QoS::AtLeastOnce, true, r#"{"online":false}"#)
                .await;
            let _ = self.client.disconnect().await;
        };
        let mut poller = self.poller;
        let ended = tokio::time::timeout(Duration::from_secs(2), async {
            goodbye.await;
            (&mut poller).await
        })
        .await;
        if ended.is_err() {
            tracing::warn!("the event publisher did not leave the broker in time");
            poller.abort();
        }
    }
}

//! Following the rooms: their change feeds through the site broker, their gaps from their
//! own HTTP feed, their online state from their retained status and the bridges'.
//!
//! One MQTT client (user [`SITE_USER`], a persistent session, QoS 1) subscribes to every
//! room's `changes`, `status` and `bridge` topics under `stackroom/{site}/`. Each room
//! has a task of its own that applies what arrives in order. A message that continues
//! from the room's applied number is applied as it is. One that does not (a message lost,
//! the site down, the bridge's queue overflowed) is applied too, each box only forwards,
//! and the task pages the room's `/api/v1/changes` from its applied number until it
//! reaches the end. The same paging runs at the start and every [`POLL_EVERY`], so a last
//! message lost with nothing after it is found too.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::config::{SITE_USER, SiteConfig, SiteRoom};
use super::replica::{Entry, Replica};

/// How often each room's HTTP feed is asked for what MQTT may not have brought.
pub const POLL_EVERY: Duration = Duration::from_secs(10);

/// Entries asked for in one page of a room's feed.
const PAGE: usize = 5000;

/// A room's online state as the site last heard it.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct RoomLink {
    /// The controller's retained status says online, and the bridge to its broker is up.
    pub online: bool,
    /// The room controller's retained status (`{"online":…,"since":…}`).
    #[schema(value_type = Option<Object>)]
    pub status: Option<serde_json::Value>,
    /// The site broker's bridge to the room's broker: up, down, or not heard yet.
    pub bridge: Option<bool>,
    /// The last failure to read the room's HTTP feed, if the last attempt failed.
    pub feed_error: Option<String>,
    /// When the last MQTT message of the room's feed arrived.
    pub heard_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl RoomLink {
    fn settle(&mut self) {
        let said_online = self
            .status
            .as_ref()
            .and_then(|s| s.get("online"))
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false);
        self.online = said_online && self.bridge != Some(false);
    }
}

/// What every part of the site service shares about the rooms' links.
pub type Links = Arc<Mutex<HashMap<String, RoomLink>>>;

/// A message of a room's `changes` topic.
#[derive(Debug, Deserialize)]
struct FeedMessage {
    after: i64,
    last: i64,
    changes: Vec<Entry>,
}

/// A page of a room's `/api/v1/changes`.
#[derive(Debug, Deserialize)]
struct FeedPage {
    changes: Vec<Entry>,
    last: i64,
}

enum Input {
    Message(FeedMessage),
    Poll,
}

/// The running follower: its tasks end when it is dropped.
pub struct Follower {
    _tasks: crate::link::Tasks,
}

/// Starts following every room of `config` into `replica`.
pub fn start(
    config: &SiteConfig,
    replica: Replica,
    links: Links,
    http: reqwest::Client,
) -> Result<Follower, super::SiteError> {
    let tasks = crate::link::Tasks::default();
    let mut inboxes: HashMap<String, mpsc::Sender<Input>> = HashMap::new();
    for room in &config.rooms {
        let (tx, rx) = mpsc::channel(256);
        inboxes.insert(room.id.clone(), tx.clone());
        links
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(room.id.clone())
            .or_default();
        tasks.spawn(follow_room(
            room.clone(),
            replica.clone(),
            links.clone(),
            http.clone(),
            rx,
        ));
        tasks.spawn(async move {
            let mut tick = tokio::time::interval(POLL_EVERY);
            loop {
                tick.tick().await;
                if tx.send(Input::Poll).await.is_err() {
                    return;
                }
            }
        });
    }
    let options = mqtt_options(config)?;
    let site = config.site_id.clone();
    tasks.spawn(listen(options, site, inboxes, links));
    Ok(Follower { _tasks: tasks })
}

fn mqtt_options(config: &SiteConfig) -> Result<MqttOptions, super::SiteError> {
    let password = std::fs::read_to_string(config.secret_path())
        .map_err(|e| super::SiteError::Secret {
            path: config.secret_path(),
            why: e.to_string(),
        })?
        .trim()
        .to_string();
    let b = &config.broker;
    let tls = match &config.broker_ca {
        Some(ca) => Some(crate::bus::TlsFiles {
            ca: std::fs::read(ca).map_err(|e| super::SiteError::Secret {
                path: ca.clone(),
                why: e.to_string(),
            })?,
            client: None,
        }),
        None => None,
    };
    let endpoint = crate::bus::Endpoint {
        tls,
        ..crate::bus::Endpoint::plain(b.host.clone(), b.port, SITE_USER, &password)
    };
    let mut options = endpoint.options(None);
    // A persistent session: what the broker queued for the site while it was away comes
    // when it is back.
    options.set_clean_session(false);
    options.set_keep_alive(Duration::from_secs(5));
    options.set_max_packet_size(1024 * 1024, 1024 * 1024);
    Ok(options)
}

/// The MQTT side: subscribes at every connection and hands each message to its room.
async fn listen(
    options: MqttOptions,
    site: String,
    inboxes: HashMap<String, mpsc::Sender<Input>>,
    links: Links,
) {
    let (client, mut events) = AsyncClient::new(options, 64);
    let mut backoff = crate::link::Backoff::default();
    let base = format!("stackroom/{site}/");
    loop {
        match events.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                backoff.reset();
                tracing::info!("site broker connected");
                for what in ["changes", "status", "bridge"] {
                    let _ = client
                        .subscribe(format!("{base}+/{what}"), QoS::AtLeastOnce)
                        .await;
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let Some((room, what)) = p
                    .topic
                    .strip_prefix(&base)
                    .and_then(|rest| rest.split_once('/'))
                else {
                    continue;
                };
                let Some(inbox) = inboxes.get(room) else {
                    tracing::debug!(room, "a message of a room not in the site config");
                    continue;
                };
                match what {
                    "changes" => match serde_json::from_slice::<FeedMessage>(&p.payload) {
                        Ok(m) => {
                            if inbox.send(Input::Message(m)).await.is_err() {
                                return;
                            }
                        }
                        Err(e) => {
                            tracing::warn!(room, error = %e, "a change feed message cannot be read; its changes will be fetched");
                            let _ = inbox.try_send(Input::Poll);
                        }
                    },
                    "status" => {
                        let status = serde_json::from_slice(&p.payload).ok();
                        let mut links = links.lock().unwrap_or_else(|p| p.into_inner());
                        let link = links.entry(room.to_string()).or_default();
                        link.status = status;
                        link.settle();
                        tracing::info!(room, online = link.online, "room status");
                    }
                    "bridge" => {
                        let up = p.payload.as_ref() == b"1";
                        let mut links = links.lock().unwrap_or_else(|p| p.into_inner());
                        let link = links.entry(room.to_string()).or_default();
                        link.bridge = Some(up);
                        link.settle();
                        tracing::info!(room, up, "bridge to the room's broker");
                        if up {
                            let _ = inbox.try_send(Input::Poll);
                        }
                    }
                    _ => {}
                }
            }
            Ok(_) => {}
            Err(e) => {
                // Nothing is heard of any room now: each is offline until its retained
                // status and bridge state come again.
                for link in links.lock().unwrap_or_else(|p| p.into_inner()).values_mut() {
                    link.status = None;
                    link.bridge = None;
                    link.settle();
                }
                tracing::warn!(error = %e, "site broker connection lost; reconnecting");
                tokio::time::sleep(backoff.next_pause()).await;
            }
        }
    }
}

/// One room: applies its messages in order and pages its feed when one leaves a gap.
async fn follow_room(
    room: SiteRoom,
    replica: Replica,
    links: Links,
    http: reqwest::Client,
    mut inbox: mpsc::Receiver<Input>,
) {
    let mut behind = true; // Page the feed first: what happened while the site was down.
    loop {
        if behind {
            behind = match catch_up(&room, &replica, &http).await {
                Ok(()) => {
                    set_feed_error(&links, &room.id, None);
                    false
                }
                Err(e) => {
                    tracing::warn!(room = %room.id, error = %e, "the room's change feed cannot be read");
                    set_feed_error(&links, &room.id, Some(e));
                    true
                }
            };
        }
        let Some(input) = inbox.recv().await else {
            return;
        };
        match input {
            Input::Poll => behind = true,
            Input::Message(m) => {
                {
                    let mut links = links.lock().unwrap_or_else(|p| p.into_inner());
                    links.entry(room.id.clone()).or_default().heard_at = Some(chrono::Utc::now());
                }
                let through = m.changes.last().map_or(m.after, |e| e.seq);
                match replica
                    .apply(&room.id, m.after, through, m.last, m.changes)
                    .await
                {
                    Ok(done) if done.applied < through => {
                        tracing::info!(room = %room.id, applied = done.applied, after = m.after, "a gap in the change feed: fetching it");
                        behind = true;
                    }
                    // The room's newest number is below what the site holds: its feed went
                    // back (a restore), which the paging finds and mends.
                    Ok(done) if done.applied > m.last => behind = true,
                    Ok(_) => {}
                    Err(e) => {
                        tracing::error!(room = %room.id, error = %e, "a change feed message was not applied; fetching it");
                        behind = true;
                    }
                }
            }
        }
    }
}

fn set_feed_error(links: &Links, room: &str, error: Option<String>) {
    let mut links = links.lock().unwrap_or_else(|p| p.into_inner());
    links.entry(room.to_string()).or_default().feed_error = error;
}

/// Pages `room`'s HTTP feed from the replica's applied number to its end (what the follower
/// does after a gap, at its start and every [`POLL_EVERY`]). The next page is fetched
/// while one is applied.
pub async fn catch_up(
    room: &SiteRoom,
    replica: &Replica,
    http: &reqwest::Client,
) -> Result<(), String> {
    let token = room.token().map_err(|e| e.to_string())?;
    let mut since = replica.applied(&room.id).await.map_err(|e| e.to_string())?;
    let mut page = fetch_page(room, http, &token, since).await?;
    if page.last < since {
        // The room's feed is behind what the site applied: its database was restored or
        // replaced. Its replica is dropped and taken again from the start.
        tracing::warn!(room = %room.id, site = since, room_last = page.last, "the room's change feed went back: taking the room again from the start");
        replica
            .forget_room(&room.id)
            .await
            .map_err(|e| e.to_string())?;
        since = 0;
        page = fetch_page(room, http, &token, since).await?;
    }
    loop {
        let full = page.changes.len() >= PAGE;
        // A page that reached the end holds every change up to the room's newest number.
        let through = if full {
            page.changes.last().map_or(since, |e| e.seq)
        } else {
            page.last.max(since)
        };
        let applying = replica.apply(&room.id, since, through, page.last, page.changes);
        if !full {
            applying.await.map_err(|e| e.to_string())?;
            return Ok(());
        }
        let (applied, next) = tokio::join!(applying, fetch_page(room, http, &token, through));
        applied.map_err(|e| e.to_string())?;
        (since, page) = (through, next?);
    }
}

async fn fetch_page(
    room: &SiteRoom,
    http: &reqwest::Client,
    token: &str,
    since: i64,
) -> Result<FeedPage, String> {
    let url = format!("{}/api/v1/changes?since={since}&limit={PAGE}", room.api);
    let response = http
        .get(&url)
        .bearer_auth(token)
        .send()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let status = response.status();
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        return Err(format!("{url}: {status}: {body}"));
    }
    response
        .json()
        .await
        .map_err(|e| format!("{url}: the page cannot be read: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A room's feed served over HTTP from a list the test changes.
    async fn room_serving(feed: Arc<Mutex<Vec<Entry>>>) -> String {
        use axum::extract::{Query, State};
        #[derive(Deserialize)]
        struct Since {
            since: i64,
            limit: usize,
        }
        let app = axum::Router::new()
            .route(
                "/api/v1/changes",
                axum::routing::get(
                    |State(feed): State<Arc<Mutex<Vec<Entry>>>>, Query(q): Query<Since>| async move {
                        let feed = feed.lock().unwrap();
                        let last = feed.iter().map(|e| e.seq).max().unwrap_or(0);
                        let changes: Vec<&Entry> =
                            feed.iter().filter(|e| e.seq > q.since).take(q.limit).collect();
                        axum::Json(serde_json::json!({"changes": changes, "last": last}))
                    },
                ),
            )
            .with_state(feed);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}")
    }

    fn entry(seq: i64, id: i64, title: &str) -> Entry {
        Entry {
            seq,
            id,
            record: serde_json::json!({"archive_no": format!("0451-H-001-{id:05}"), "title": title}),
        }
    }

    #[tokio::test]
    async fn a_room_whose_feed_went_back_is_taken_again_from_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "srt_test").unwrap();
        let feed = Arc::new(Mutex::new(
            (1..=7).map(|i| entry(i, i, "before the restore")).collect(),
        ));
        let room = SiteRoom {
            id: "stack-1".into(),
            name: Default::default(),
            api: room_serving(feed.clone()).await,
            token_file: token.clone(),
            broker: crate::config::bus::BrokerUrl::parse("mqtt://127.0.0.1:1883").unwrap(),
            bridge_password_file: token,
            bridge_ca_file: None,
        };
        let replica = Replica::open(&dir.path().join("site.db")).unwrap();
        let http = reqwest::Client::new();
        catch_up(&room, &replica, &http).await.unwrap();
        assert_eq!(replica.applied("stack-1").await.unwrap(), 7);
        // The room is restored from a backup holding three boxes, at numbers 1 to 3.
        *feed.lock().unwrap() = vec![
            entry(1, 1, "restored"),
            entry(2, 2, "restored"),
            entry(3, 3, "restored"),
        ];
        catch_up(&room, &replica, &http).await.unwrap();
        assert_eq!(replica.applied("stack-1").await.unwrap(), 3);
        let held = replica.feed("stack-1", 0, 100).await.unwrap();
        assert_eq!(held.len(), 3, "boxes 4 to 7 are not in the restored room");
        assert!(held.iter().all(|e| e.record["title"] == "restored"));
    }
}

//! The MQTT JSON driver of shelving controllers (rumqttc), with the topics of the profile.
//!
//! Every session is a new client with a clean session: nothing published in one session is
//! sent in another (rumqttc would otherwise keep a publish made while the broker was away
//! and send it on reconnecting). A command carries its sequence number, when it was issued
//! and when it expires, so that the device can drop a stale one; its result must come
//! within the profile's `command_timeout_ms` and `scan_ms`, or it is unconfirmed. Retained
//! state (what the broker kept from before) is never taken as live: only a state the device
//! publishes while we listen is. The client's last will on the heartbeat topic tells the
//! device at once that the controller has gone.

use std::time::Duration;

use tokio::time::Instant;

use rumqttc::{AsyncClient, Event, LastWill, Packet, QoS};
use stackroom_wire::mqtt_json::{Heartbeat, ShelvingCommand, ShelvingResult, ShelvingState};
use stackroom_wire::profile::{MqttShelving, Timing};
use tokio::sync::{mpsc, watch};

use super::device::{
    CommandError, Connector, DeviceFault, DeviceState, DriverError, Link, Order, Outcome, Session,
};
use crate::time::now_ms;

fn state(s: ShelvingState) -> DeviceState {
    DeviceState {
        positions_mm: s.positions_mm,
        moving: s.motion == "moving",
        stopped_short: s.motion == "stopped",
        locked: s.locked,
        estop: s.estop,
        fault: (s.fault != 0).then_some(DeviceFault {
            code: s.fault,
            carriage: s.fault_carriage,
        }),
        occupied: s.occupied_aisles,
        obstacle: !s.obstacle_aisles.is_empty(),
        at: Instant::now(),
    }
}

/// How to reach the controller.
pub struct MqttJson {
    pub device: String,
    pub broker: crate::bus::Endpoint,
    pub prefix: String,
    pub topics: MqttShelving,
    pub timing: Timing,
    /// When this driver started (ms since the epoch): command ids stay unique across
    /// restarts.
    pub boot_ms: i64,
}

impl MqttJson {
    fn topic(&self, name: &str) -> String {
        format!("{}/{name}", self.prefix)
    }
}

/// What the connection's task passes on.
pub enum Incoming {
    Publish {
        topic: String,
        payload: Vec<u8>,
        retain: bool,
    },
    Lost(String),
}

impl Connector for MqttJson {
    type Session = MqttSession;

    async fn connect(&mut self) -> Result<MqttSession, DriverError> {
        let mut options = self.broker.options(Some(&self.device));
        options.set_keep_alive(Duration::from_secs(5));
        options.set_clean_session(true);
        let heartbeat = self
            .topics
            .heartbeat_topic
            .as_deref()
            .map(|t| self.topic(t));
        if let Some(t) = &heartbeat {
            let will = serde_json::to_vec(&Heartbeat { beat: None }).unwrap_or_default();
            options.set_last_will(LastWill::new(t, will, QoS::AtLeastOnce, false));
        }
        let (client, mut events) = AsyncClient::new(options, 16);
        let connected = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match events.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => return Ok(()),
                    Ok(_) => {}
                    Err(e) => return Err(DriverError::Link(format!("MQTT: {e}"))),
                }
            }
        })
        .await
        .map_err(|_| DriverError::Timeout(Duration::from_secs(5)))?;
        connected?;
        let state_topic = self.topic(&self.topics.state_topic);
        let result_topic = self.topic(&self.topics.result_topic);
        for t in [&state_topic, &result_topic] {
            client
                .try_subscribe(t.clone(), QoS::AtLeastOnce)
                .map_err(|e| DriverError::Link(e.to_string()))?;
        }
        let (tx, rx) = mpsc::channel(256);
        let task = tokio::spawn(async move {
            loop {
                match events.poll().await {
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let message = Incoming::Publish {
                            topic: p.topic.clone(),
                            payload: p.payload.to_vec(),
                            retain: p.retain,
                        };
                        if tx.send(message).await.is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        let _ = tx.send(Incoming::Lost(format!("MQTT: {e}"))).await;
                        return;
                    }
                }
            }
        });
        Ok(MqttSession {
            device: self.device.clone(),
            client,
            incoming: rx,
            task,
            state_topic,
            result_topic,
            command_topic: self.topic(&self.topics.command_topic),
            heartbeat,
            timing: self.timing.clone(),
            boot_ms: self.boot_ms,
            last_state: Instant::now(),
            broken: None,
        })
    }
}

/// A connected client.
pub struct MqttSession {
    device: String,
    client: AsyncClient,
    incoming: mpsc::Receiver<Incoming>,
    task: tokio::task::JoinHandle<()>,
    state_topic: String,
    result_topic: String,
    command_topic: String,
    heartbeat: Option<String>,
    timing: Timing,
    boot_ms: i64,
    last_state: Instant,
    broken: Option<DriverError>,
}

impl Drop for MqttSession {
    fn drop(&mut self) {
        // The client and whatever it still holds go with the task: nothing is sent later.
        self.task.abort();
    }
}

/// What woke the session.
pub enum Wake {
    Message(Incoming),
    /// No state for longer than the profile's `stale_after_ms`.
    Silent,
}

impl MqttSession {
    fn stale(&self) -> Duration {
        Duration::from_millis(self.timing.stale_after_ms)
    }

    /// A live state from a message on the state topic, if it is one.
    fn live_state(&mut self, topic: &str, payload: &[u8], retain: bool) -> Option<DeviceState> {
        if topic != self.state_topic || retain {
            return None;
        }
        match serde_json::from_slice::<ShelvingState>(payload) {
            Ok(s) => {
                self.last_state = Instant::now();
                Some(state(s))
            }
            Err(e) => {
                tracing::warn!(device = %self.device, error = %e, "unreadable state message");
                None
            }
        }
    }
}

impl Session for MqttSession {
    type Wake = Wake;

    fn wake(&mut self) -> impl std::future::Future<Output = Wake> + Send {
        let silent = self.last_state + self.stale();
        async move {
            tokio::select! {
                m = self.incoming.recv() => Wake::Message(m.unwrap_or(Incoming::Lost("the MQTT connection ended".into()))),
                _ = tokio::time::sleep_until(silent) => Wake::Silent,
            }
        }
    }

    async fn handle(&mut self, wake: Wake) -> Result<Option<DeviceState>, DriverError> {
        match wake {
            Wake::Silent => Err(DriverError::Timeout(self.stale())),
            Wake::Message(Incoming::Lost(e)) => Err(DriverError::Link(e)),
            Wake::Message(Incoming::Publish {
                topic,
                payload,
                retain,
            }) => {
                if topic == self.result_topic {
                    tracing::debug!(device = %self.device, "a result nobody waits for (its command gave up)");
                }
                Ok(self.live_state(&topic, &payload, retain))
            }
        }
    }

    async fn execute(
        &mut self,
        order: &Order,
        heard: &watch::Sender<Link>,
    ) -> Result<Outcome, CommandError> {
        let id = format!("{}-{}-{}", self.device, self.boot_ms, order.seq);
        let now = Instant::now();
        let (aisle, on) = match order.command {
            stackroom_wire::shelving::Command::OpenAisle { aisle } => (Some(aisle), None),
            stackroom_wire::shelving::Command::Warning { on } => (None, Some(on)),
            _ => (None, None),
        };
        let command = ShelvingCommand {
            id: id.clone(),
            command: order.command.name().into(),
            aisle,
            on,
            seq: Some(order.seq),
            issued_ms: Some(now_ms()),
            expires_ms: Some(
                now_ms()
                    + order.deadline.saturating_duration_since(now).as_millis() as i64
                    + self.timing.scan_ms as i64,
            ),
        };
        let body =
            serde_json::to_vec(&command).map_err(|e| CommandError::NotSent(e.to_string()))?;
        if !order.may_send() {
            return Err(CommandError::NotSent(
                "its deadline passed before it could be published".into(),
            ));
        }
        self.client
            .try_publish(self.command_topic.clone(), QoS::AtLeastOnce, false, body)
            .map_err(|e| CommandError::NotSent(format!("MQTT: {e}")))?;
        let window = Duration::from_millis(self.timing.command_timeout_ms + self.timing.scan_ms);
        let until = Instant::now() + window;
        loop {
            let message = match tokio::time::timeout_at(until, self.incoming.recv()).await {
                Err(_) => {
                    return Err(CommandError::Unconfirmed(format!(
                        "no result within {} ms",
                        window.as_millis()
                    )));
                }
                Ok(None) | Ok(Some(Incoming::Lost(_))) => {
                    let why = "the broker connection was lost after the command was published";
                    self.broken = Some(DriverError::Link(why.into()));
                    return Err(CommandError::Unconfirmed(why.into()));
                }
                Ok(Some(Incoming::Publish {
                    topic,
                    payload,
                    retain,
                })) => (topic, payload, retain),
            };
            let (topic, payload, retain) = message;
            if let Some(s) = self.live_state(&topic, &payload, retain) {
                let _ = heard.send(Link::Up(s));
                continue;
            }
            if topic != self.result_topic {
                continue;
            }
            let Ok(r) = serde_json::from_slice::<ShelvingResult>(&payload) else {
                tracing::warn!(device = %self.device, "unreadable command result");
                continue;
            };
            if r.id != id {
                continue;
            }
            return Ok(match r.result.as_str() {
                "accepted" => Outcome::Accepted,
                "refused" => Outcome::Refused(r.reason.unwrap_or_else(|| "refused".into())),
                other => Outcome::Refused(format!("{other}: {}", r.reason.unwrap_or_default())),
            });
        }
    }

    async fn heartbeat(&mut self, beat: u64) -> Result<(), DriverError> {
        let Some(topic) = &self.heartbeat else {
            return Ok(());
        };
        let body = serde_json::to_vec(&Heartbeat { beat: Some(beat) }).unwrap_or_default();
        self.client
            .try_publish(topic.clone(), QoS::AtMostOnce, false, body)
            .map_err(|e| DriverError::Link(format!("MQTT heartbeat: {e}")))
    }

    fn health(&self) -> Result<(), DriverError> {
        self.broken.clone().map_or(Ok(()), Err)
    }
}

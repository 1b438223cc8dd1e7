//! Drivers of environment devices: Modbus RTU transmitters and I/O modules (tokio-modbus
//! on tokio-serial), and Zigbee2MQTT devices (rumqttc). Each turns what its device says
//! into [`Observation`]s and takes [`SwitchCommand`]s for its relays and plugs. A driver
//! never invents a value: a device that does not answer sends nothing, and its points go
//! stale by their age.

use std::time::Duration;

use chrono::Utc;
use serde_json::Value;
use stackroom_wire::profile::{ModbusEnvironment, RegisterTable, Timing, Zigbee2Mqtt};
use tokio::sync::mpsc;
use tokio_modbus::client::{Context, Reader, Writer};
use tokio_modbus::prelude::*;

use crate::config::environment::{Address, PointKind};
use crate::link::{Backoff, refusing};

/// What a point reported.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Measured {
    Climate {
        temperature: f64,
        humidity: f64,
    },
    /// A binary sensor: tripped (smoke, water, door open) or not.
    Tripped(bool),
    /// An actuator: on or off.
    Switched(bool),
}

#[derive(Debug, Clone)]
pub struct Observation {
    pub point: String,
    pub at: chrono::DateTime<Utc>,
    pub value: Measured,
}

/// What a driver tells the engine.
#[derive(Debug, Clone)]
pub enum Report {
    Reading(Observation),
    /// The bridge or the device says a point can (not) report now: an unavailable point is
    /// stale at once, whatever the age of its last reading.
    Availability {
        point: String,
        available: bool,
        why: String,
    },
}

/// Switch an actuator point.
#[derive(Debug, Clone)]
pub struct SwitchCommand {
    pub point: String,
    pub on: bool,
}

/// A point as its driver needs it.
#[derive(Debug, Clone)]
pub struct DriverPoint {
    pub id: String,
    pub kind: PointKind,
    pub address: Address,
}

fn now() -> chrono::DateTime<Utc> {
    Utc::now()
}

/// A Modbus RTU environment device as its driver needs it.
pub struct ModbusDevice {
    pub device: String,
    pub path: String,
    pub baud: u32,
    pub unit: u8,
    pub map: ModbusEnvironment,
    pub timing: Timing,
    pub points: Vec<DriverPoint>,
}

/// Polls a Modbus device on a serial line for ever, reconnecting with back-off.
#[tracing::instrument(name = "device", skip_all, fields(device = %at.device))]
pub async fn modbus(
    at: ModbusDevice,
    tx: mpsc::Sender<Report>,
    mut commands: mpsc::Receiver<SwitchCommand>,
) {
    let ModbusDevice {
        device,
        path,
        baud,
        unit,
        map,
        timing,
        points,
    } = at;
    let mut backoff = Backoff::default();
    let poll = Duration::from_millis(timing.poll_interval_ms.max(50));
    let timeout = Duration::from_millis(timing.command_timeout_ms.max(50));
    loop {
        let mut ctx = match tokio_serial::SerialStream::open(&tokio_serial::new(&path, baud)) {
            Ok(serial) => tokio_modbus::client::rtu::attach_slave(serial, Slave(unit)),
            Err(e) => {
                tracing::warn!(%device, %path, error = %e, "cannot open the environment device's line");
                if !pause_dropping(&device, &mut commands, backoff.next_pause()).await {
                    return;
                }
                continue;
            }
        };
        let mut ticker = tokio::time::interval(poll);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let failed = loop {
            tokio::select! {
                _ = ticker.tick() => {
                    match tokio::time::timeout(timeout * 3, read_all(&mut ctx, &map, &points, timeout)).await {
                        Ok(Ok(observations)) => {
                            backoff.reset();
                            for o in observations {
                                if tx.send(Report::Reading(o)).await.is_err() {
                                    return;
                                }
                            }
                        }
                        Ok(Err(e)) => break e,
                        Err(_) => break "no answer".to_string(),
                    }
                }
                command = commands.recv() => {
                    let Some(command) = command else { return };
                    let coil = points.iter().find_map(|p| match p.address {
                        Address::Coil(n) if p.id == command.point => Some(n),
                        _ => None,
                    });
                    let Some(coil) = coil else { continue };
                    match tokio::time::timeout(timeout, ctx.write_single_coil(coil, command.on)).await {
                        Ok(Ok(Ok(()))) => tracing::info!(%device, point = %command.point, on = command.on, "switched"),
                        Ok(Ok(Err(e))) => tracing::warn!(%device, point = %command.point, exception = ?e, "the device refused the switch"),
                        Ok(Err(e)) => break e.to_string(),
                        Err(_) => break "no answer to a switch".to_string(),
                    }
                }
            }
        };
        tracing::debug!(%device, error = %failed, "environment device lost; reconnecting");
        if !pause_dropping(&device, &mut commands, backoff.next_pause()).await {
            return;
        }
    }
}

/// Waits `pause` without a link, dropping the switch commands that come meanwhile: one that
/// could not be sent now is not sent later (the engine repeats the state it wants). False
/// when the engine has gone.
async fn pause_dropping(
    device: &str,
    commands: &mut mpsc::Receiver<SwitchCommand>,
    pause: Duration,
) -> bool {
    refusing(commands, tokio::time::sleep(pause), |c| {
        tracing::debug!(%device, point = %c.point, on = c.on, "switch command dropped: no link")
    })
    .await
    .is_some()
}

async fn read_all(
    ctx: &mut Context,
    map: &ModbusEnvironment,
    points: &[DriverPoint],
    timeout: Duration,
) -> Result<Vec<Observation>, String> {
    let mut out = Vec::new();
    let within = |what: &'static str| move |_| format!("no answer reading {what}");
    if let Some(c) = &map.climate
        && points.iter().any(|p| p.address == Address::Climate)
    {
        let first = c.temperature.min(c.humidity);
        let count = c.temperature.max(c.humidity) - first + 1;
        let regs = match c.table {
            RegisterTable::Input => {
                tokio::time::timeout(timeout, ctx.read_input_registers(first, count)).await
            }
            RegisterTable::Holding => {
                tokio::time::timeout(timeout, ctx.read_holding_registers(first, count)).await
            }
        }
        .map_err(within("the climate registers"))?
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("exception {e:?} reading the climate registers"))?;
        let reg = |a: u16| regs.get((a - first) as usize).copied();
        if let (Some(t), Some(h)) = (reg(c.temperature), reg(c.humidity)) {
            let temperature = t as i16 as f64 / c.scale;
            let humidity = h as f64 / c.scale;
            for p in points.iter().filter(|p| p.address == Address::Climate) {
                out.push(Observation {
                    point: p.id.clone(),
                    at: now(),
                    value: Measured::Climate {
                        temperature,
                        humidity,
                    },
                });
            }
        }
    }
    if map.discrete_inputs > 0
        && points
            .iter()
            .any(|p| matches!(p.address, Address::Input(_)))
    {
        let bits = tokio::time::timeout(timeout, ctx.read_discrete_inputs(0, map.discrete_inputs))
            .await
            .map_err(within("the discrete inputs"))?
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("exception {e:?} reading the discrete inputs"))?;
        for p in points {
            if let Address::Input(n) = p.address
                && let Some(on) = bits.get(n as usize)
            {
                out.push(Observation {
                    point: p.id.clone(),
                    at: now(),
                    value: Measured::Tripped(*on),
                });
            }
        }
    }
    if map.coils > 0 && points.iter().any(|p| matches!(p.address, Address::Coil(_))) {
        let bits = tokio::time::timeout(timeout, ctx.read_coils(0, map.coils))
            .await
            .map_err(within("the coils"))?
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("exception {e:?} reading the coils"))?;
        for p in points {
            if let Address::Coil(n) = p.address
                && let Some(on) = bits.get(n as usize)
            {
                out.push(Observation {
                    point: p.id.clone(),
                    at: now(),
                    value: Measured::Switched(*on),
                });
            }
        }
    }
    Ok(out)
}

/// What a Zigbee2MQTT message says about a point; `Err` when it is not what the point's
/// kind publishes.
pub fn parse_z2m(
    keys: &Zigbee2Mqtt,
    kind: PointKind,
    payload: &[u8],
) -> Result<Option<Measured>, String> {
    let json: Value = serde_json::from_slice(payload).map_err(|e| format!("not JSON: {e}"))?;
    let object = json.as_object().ok_or("not a JSON object")?;
    let number = |key: &str| object.get(key).and_then(Value::as_f64);
    let boolean = |key: &str| object.get(key).and_then(Value::as_bool);
    Ok(match kind {
        PointKind::Climate => match (number(&keys.temperature), number(&keys.humidity)) {
            (Some(t), Some(h)) if (-60.0..=100.0).contains(&t) && (0.0..=100.0).contains(&h) => {
                Some(Measured::Climate {
                    temperature: t,
                    humidity: h,
                })
            }
            (Some(_), Some(_)) => return Err("temperature or humidity out of range".into()),
            // A message about the battery or the link only.
            _ => None,
        },
        PointKind::Smoke => boolean(&keys.smoke).map(Measured::Tripped),
        PointKind::Water => boolean(&keys.water).map(Measured::Tripped),
        PointKind::Door => boolean(&keys.contact).map(|closed| Measured::Tripped(!closed)),
        _ => match object.get(&keys.state).and_then(Value::as_str) {
            Some("ON") => Some(Measured::Switched(true)),
            Some("OFF") => Some(Measured::Switched(false)),
            Some(other) => return Err(format!("state '{other}' is neither ON nor OFF")),
            None => None,
        },
    })
}

/// Whether a Zigbee2MQTT bridge or availability message says online: the plain
/// `online`/`offline` of older bridges or `{"state":"online"}`; None if neither.
pub fn parse_availability(payload: &[u8]) -> Option<bool> {
    let text = std::str::from_utf8(payload).ok()?.trim();
    let state = match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(o)) => o.get("state")?.as_str()?.to_string(),
        Ok(Value::String(s)) => s,
        _ => text.to_string(),
    };
    match state.as_str() {
        "online" => Some(true),
        "offline" => Some(false),
        _ => None,
    }
}

/// Listens to a Zigbee2MQTT bridge's devices and switches its plugs, for ever. It
/// subscribes to exactly the topics the config names (a friendly name may hold '/'), each
/// device's availability and the bridge's state.
///
/// Each connection gets a fresh client: a switch command is published only while the
/// broker has acknowledged this connection, and whatever was pending when the link broke
/// is dropped with it, never delivered after a reconnect. The engine repeats the switch
/// state it wants, so a dropped command costs one repetition, not a late switch.
#[tracing::instrument(name = "device", skip_all, fields(device = %device))]
pub async fn zigbee2mqtt(
    device: String,
    broker: crate::bus::Endpoint,
    prefix: String,
    keys: Zigbee2Mqtt,
    points: Vec<DriverPoint>,
    tx: mpsc::Sender<Report>,
    mut commands: mpsc::Receiver<SwitchCommand>,
) {
    let bridge = Bridge {
        topics: BridgeTopics::new(&prefix, &points),
        device,
        prefix,
        keys,
        points,
    };
    let mut backoff = Backoff::default();
    loop {
        match bridge
            .session(&broker, &tx, &mut commands, &mut backoff)
            .await
        {
            Ended::Closed => return,
            Ended::LinkLost(e) => {
                tracing::debug!(device = %bridge.device, error = %e, "Zigbee2MQTT connection lost; a fresh one follows");
                if !pause_dropping(&bridge.device, &mut commands, backoff.next_pause()).await {
                    return;
                }
            }
        }
    }
}

enum Ended {
    Closed,
    LinkLost(String),
}

struct BridgeTopics {
    bridge_state: String,
    subscriptions: Vec<String>,
}

impl BridgeTopics {
    fn new(prefix: &str, points: &[DriverPoint]) -> BridgeTopics {
        let bridge_state = format!("{prefix}/bridge/state");
        let mut subscriptions: Vec<String> = points
            .iter()
            .filter_map(|p| point_topic(prefix, p))
            .flat_map(|t| [format!("{t}/availability"), t])
            .collect();
        subscriptions.push(bridge_state.clone());
        BridgeTopics {
            bridge_state,
            subscriptions,
        }
    }
}

fn point_topic(prefix: &str, p: &DriverPoint) -> Option<String> {
    match &p.address {
        Address::Topic(t) => Some(format!("{prefix}/{t}")),
        _ => None,
    }
}

struct Bridge {
    device: String,
    prefix: String,
    keys: Zigbee2Mqtt,
    points: Vec<DriverPoint>,
    topics: BridgeTopics,
}

impl Bridge {
    /// One connection, from connect to the first error.
    async fn session(
        &self,
        broker: &crate::bus::Endpoint,
        tx: &mpsc::Sender<Report>,
        commands: &mut mpsc::Receiver<SwitchCommand>,
        backoff: &mut Backoff,
    ) -> Ended {
        use rumqttc::{AsyncClient, Event, Packet, QoS};
        let mut options = broker.options(Some(&self.device));
        options.set_keep_alive(Duration::from_secs(10));
        options.set_clean_session(true);
        let (client, mut eventloop) = AsyncClient::new(options, 64);
        let mut connected = false;
        loop {
            tokio::select! {
                event = eventloop.poll() => match event {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        connected = true;
                        backoff.reset();
                        for t in &self.topics.subscriptions {
                            let _ = client.try_subscribe(t.clone(), QoS::AtLeastOnce);
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(message))) => {
                        for r in self.reports(&message.topic, &message.payload) {
                            if tx.send(r).await.is_err() {
                                return Ended::Closed;
                            }
                        }
                    }
                    Ok(_) => {}
                    Err(e) => return Ended::LinkLost(e.to_string()),
                },
                command = commands.recv() => {
                    let Some(command) = command else { return Ended::Closed };
                    if !connected {
                        tracing::debug!(device = %self.device, point = %command.point, "switch command dropped: not yet connected");
                        continue;
                    }
                    let Some(t) = self.points.iter().find(|p| p.id == command.point).and_then(|p| point_topic(&self.prefix, p)) else { continue };
                    let body = serde_json::json!({ self.keys.state.as_str(): if command.on { "ON" } else { "OFF" } });
                    let _ = client.try_publish(format!("{t}/set"), QoS::AtLeastOnce, false, body.to_string());
                }
            }
        }
    }

    /// What one message on a subscribed topic reports.
    fn reports(&self, topic: &str, payload: &[u8]) -> Vec<Report> {
        let device = &self.device;
        let availability =
            |point: &DriverPoint, available: bool, why: String| Report::Availability {
                point: point.id.clone(),
                available,
                why,
            };
        let word = |on: bool| if on { "online" } else { "offline" };
        let mut out = Vec::new();
        if topic == self.topics.bridge_state {
            match parse_availability(payload) {
                Some(on) => out.extend(self.points.iter().map(|p| {
                    availability(p, on, format!("the Zigbee2MQTT bridge is {}", word(on)))
                })),
                None => tracing::warn!(%device, "unreadable bridge state"),
            }
        } else if let Some(name) = topic.strip_suffix("/availability")
            && let Some(p) = self
                .points
                .iter()
                .find(|p| point_topic(&self.prefix, p).as_deref() == Some(name))
        {
            match parse_availability(payload) {
                Some(on) => out.push(availability(
                    p,
                    on,
                    format!("{} says it is {}", p.id, word(on)),
                )),
                None => tracing::warn!(%device, %topic, "unreadable availability"),
            }
        } else {
            for p in self
                .points
                .iter()
                .filter(|p| point_topic(&self.prefix, p).as_deref() == Some(topic))
            {
                match parse_z2m(&self.keys, p.kind, payload) {
                    Ok(Some(value)) => out.push(Report::Reading(Observation {
                        point: p.id.clone(),
                        at: now(),
                        value,
                    })),
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(%device, %topic, error = %e, "ignored a Zigbee2MQTT message")
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Zigbee2Mqtt {
        stackroom_wire::profile::Profile::parse(
            "[device]\nkind = \"environment\"\nprotocol = \"zigbee2mqtt\"\n[zigbee2mqtt]\n",
        )
        .unwrap()
        .zigbee2mqtt
        .unwrap()
    }

    #[test]
    fn zigbee2mqtt_messages_are_read_by_the_points_kind() {
        let k = keys();
        let climate = br#"{"temperature":21.4,"humidity":52.0,"battery":97,"linkquality":120}"#;
        assert_eq!(
            parse_z2m(&k, PointKind::Climate, climate).unwrap(),
            Some(Measured::Climate {
                temperature: 21.4,
                humidity: 52.0
            })
        );
        assert_eq!(
            parse_z2m(&k, PointKind::Climate, br#"{"battery":97}"#).unwrap(),
            None
        );
        assert_eq!(
            parse_z2m(&k, PointKind::Water, br#"{"water_leak":true}"#).unwrap(),
            Some(Measured::Tripped(true))
        );
        assert_eq!(
            parse_z2m(&k, PointKind::Door, br#"{"contact":true}"#).unwrap(),
            Some(Measured::Tripped(false)),
            "contact: the door is closed"
        );
        assert_eq!(
            parse_z2m(
                &k,
                PointKind::Dehumidifier,
                br#"{"state":"ON","power":420}"#
            )
            .unwrap(),
            Some(Measured::Switched(true))
        );
        for bad in [&b"{"[..], b"[1]", br#"{"temperature":500,"humidity":50}"#] {
            assert!(parse_z2m(&k, PointKind::Climate, bad).is_err());
        }
        assert!(parse_z2m(&k, PointKind::Fan, br#"{"state":"MAYBE"}"#).is_err());
    }

    #[test]
    fn bridge_and_device_availability_in_both_of_zigbee2mqtt_s_forms() {
        // Zigbee2MQTT's documented payloads: plain text (legacy) and JSON.
        assert_eq!(parse_availability(b"online"), Some(true));
        assert_eq!(parse_availability(b"offline"), Some(false));
        assert_eq!(parse_availability(br#"{"state":"online"}"#), Some(true));
        assert_eq!(parse_availability(br#"{"state":"offline"}"#), Some(false));
        assert_eq!(parse_availability(br#""offline""#), Some(false));
        assert_eq!(parse_availability(b"maybe"), None);
        assert_eq!(parse_availability(br#"{"status":"online"}"#), None);
    }
}

//! Simulated devices on MQTT: a shelving controller with JSON command/state topics and an
//! Impinj-style reader publishing IoT device interface tag events.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use stackroom_wire::mqtt_json::{
    Heartbeat, ImpinjEvent, ShelvingCommand, ShelvingResult, ShelvingState, TagInventoryEvent,
    base64_url,
};
use stackroom_wire::profile::{ImpinjIot, MqttShelving};
use tokio::sync::mpsc;

use crate::clock::Clock;
use crate::rf::Radio;
use crate::shelving::{Command, Fault, Moment, Motion, RangeSim, Refused};
use crate::world::{World, epc_bytes};

/// Where the broker is, and each simulated device's password: a device logs in with its
/// id as user name and client id, as a real one is set up on a site with an authenticated
/// bus. A device without a password connects anonymously.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broker {
    pub host: String,
    pub port: u16,
    pub passwords: std::collections::BTreeMap<String, String>,
}

/// A client, what arrives on its subscription, and the task that polls it.
pub(crate) type Connection = (
    AsyncClient,
    mpsc::Receiver<(String, Vec<u8>)>,
    tokio::task::JoinHandle<()>,
);

/// Connects as `device`, keeps the connection polled (rumqttc reconnects on its own),
/// subscribes to `subscribe` after every (re)connection and forwards what arrives there.
pub(crate) fn connect(broker: &Broker, device: &str, subscribe: Vec<String>) -> Connection {
    let mut options = MqttOptions::new(device, &broker.host, broker.port);
    if let Some(password) = broker.passwords.get(device) {
        options.set_credentials(device, password);
    }
    options.set_keep_alive(Duration::from_secs(5));
    options.set_max_packet_size(256 * 1024, 256 * 1024);
    let (client, mut events) = AsyncClient::new(options, 256);
    let (tx, rx) = mpsc::channel(256);
    let resubscribe = client.clone();
    let task = tokio::spawn(async move {
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    for topic in &subscribe {
                        let _ = resubscribe.try_subscribe(topic.clone(), QoS::AtLeastOnce);
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let _ = tx.try_send((p.topic.clone(), p.payload.to_vec()));
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "simulated MQTT device reconnects");
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
            }
        }
    });
    (client, rx, task)
}

fn state_message(sim: &RangeSim, seq: u64) -> ShelvingState {
    let s = sim.state();
    ShelvingState {
        positions_mm: s.positions_mm,
        open_aisle: s.open_aisle,
        motion: match s.motion {
            Motion::Idle => "idle",
            Motion::Moving => "moving",
            Motion::Stopped => "stopped",
        }
        .into(),
        locked: s.locked,
        estop: s.estop,
        fault: s.fault.map_or(0, Fault::code),
        fault_carriage: s.fault.map_or(0, Fault::carriage),
        occupied_aisles: s.occupied_aisles,
        obstacle_aisles: s.obstacle_aisles,
        seq,
    }
}

fn result(id: String, outcome: Result<(), Refused>) -> ShelvingResult {
    match outcome {
        Ok(()) => ShelvingResult {
            id,
            result: "accepted".into(),
            reason: None,
            aisle: None,
        },
        Err(r) => ShelvingResult {
            id,
            result: "refused".into(),
            reason: Some(r.reason.name().into()),
            aisle: r.gap,
        },
    }
}

/// Runs a shelving controller on MQTT until the task is dropped: commands on
/// `{prefix}/{command}` are answered on `{prefix}/{result}` once the PLC has acted on them;
/// the state is published (retained) on change and every `state_interval_ms`; heartbeats on
/// `{prefix}/{heartbeat}` feed the watchdog, and the controller's last will trips it.
pub async fn serve_shelving(
    broker: Broker,
    device: String,
    prefix: String,
    topics: MqttShelving,
    range: Arc<Mutex<RangeSim>>,
    online: Arc<AtomicBool>,
) {
    let command_topic = format!("{prefix}/{}", topics.command_topic);
    let heartbeat_topic = topics
        .heartbeat_topic
        .as_ref()
        .map(|t| format!("{prefix}/{t}"));
    let subscribe = std::iter::once(command_topic.clone())
        .chain(heartbeat_topic.clone())
        .collect();
    let (client, mut incoming, poller) = connect(&broker, &device, subscribe);
    let result_topic = format!("{prefix}/{}", topics.result_topic);
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let mut seq = 0u64;
    let mut last: Option<ShelvingState> = None;
    let mut last_sent = tokio::time::Instant::now();
    let interval = Duration::from_millis(topics.state_interval_ms.max(50));
    // Commands the PLC has taken and not yet acted on: ticket, the command's id.
    let mut pending: Vec<(u64, String)> = Vec::new();
    loop {
        tokio::select! {
            Some((topic, payload)) = incoming.recv() => {
                if !online.load(Ordering::Relaxed) {
                    continue;
                }
                let now = Moment::now();
                if Some(&topic) == heartbeat_topic.as_ref() {
                    match serde_json::from_slice::<Heartbeat>(&payload) {
                        Ok(h) => {
                            if let Ok(mut r) = range.lock() {
                                r.heartbeat(h.beat, now);
                            }
                        }
                        Err(e) => tracing::debug!(error = %e, "unreadable heartbeat"),
                    }
                    continue;
                }
                let wire = String::from_utf8_lossy(&payload).into_owned();
                let answer = match serde_json::from_slice::<ShelvingCommand>(&payload) {
                    Err(e) => Some(ShelvingResult { id: String::new(), result: "invalid".into(), reason: Some(e.to_string()), aisle: None }),
                    Ok(c) => match Command::from_parts(&c.command, c.aisle, c.on) {
                        None => Some(ShelvingResult {
                            id: c.id,
                            result: "invalid".into(),
                            reason: Some(format!("unknown command '{}' (open_aisle needs an aisle, warning needs on)", c.command)),
                            aisle: None,
                        }),
                        Some(command) => match range.lock() {
                            Ok(mut r) => {
                                pending.push((r.submit(command, wire, c.expires_ms, now), c.id));
                                None
                            }
                            Err(_) => Some(ShelvingResult { id: c.id, result: "refused".into(), reason: Some("fault".into()), aisle: None }),
                        },
                    },
                };
                if let Some(answer) = answer
                    && let Ok(body) = serde_json::to_vec(&answer)
                {
                    let _ = client.publish(result_topic.clone(), QoS::AtLeastOnce, false, body).await;
                }
            }
            _ = tick.tick() => {
                if !online.load(Ordering::Relaxed) {
                    continue;
                }
                let mut done = Vec::new();
                if let Ok(mut r) = range.lock() {
                    pending.retain(|(ticket, id)| match r.outcome(*ticket) {
                        Some(outcome) => {
                            done.push(result(id.clone(), outcome));
                            false
                        }
                        None => true,
                    });
                }
                for answer in done {
                    if let Ok(body) = serde_json::to_vec(&answer) {
                        let _ = client.publish(result_topic.clone(), QoS::AtLeastOnce, false, body).await;
                    }
                }
                let Ok(state) = range.lock().map(|r| state_message(&r, seq + 1)) else { continue };
                let changed = last.as_ref().is_none_or(|l| ShelvingState { seq: l.seq + 1, ..l.clone() } != state);
                let topic = format!("{prefix}/{}", topics.state_topic);
                // On change, at most every 50 ms; unchanged, every state interval.
                let due = if changed { Duration::from_millis(50).min(interval) } else { interval };
                if last_sent.elapsed() >= due
                    && let Ok(body) = serde_json::to_vec(&state)
                    && client.try_publish(topic, QoS::AtLeastOnce, true, body).is_ok()
                {
                    seq += 1;
                    last = Some(state);
                    last_sent = tokio::time::Instant::now();
                }
            }
        }
        if poller.is_finished() {
            return;
        }
    }
}

/// Where a simulated MQTT device is: its broker, its id and topic prefix, whether it is
/// online, and the simulation's clock.
pub struct MqttDevice {
    pub broker: Broker,
    pub device: String,
    pub prefix: String,
    pub online: Arc<AtomicBool>,
    pub clock: Clock,
}

/// A reader at the door (Impinj-style, MQTT): it hears a tag only when someone carries it
/// through, first on the ports of the side it comes from, then on the other side's.
pub async fn serve_gate(
    at: MqttDevice,
    settings: ImpinjIot,
    inside: Vec<u16>,
    outside: Vec<u16>,
    mut walks: mpsc::Receiver<(String, bool)>,
) {
    let MqttDevice {
        broker,
        device,
        prefix,
        online,
        clock,
    } = at;
    let (client, _incoming, _poller) = connect(&broker, &device, vec![]);
    let topic = format!("{prefix}/{}", settings.event_topic);
    while let Some((epc, out)) = walks.recv().await {
        if !online.load(Ordering::Relaxed) {
            continue;
        }
        let (first, second) = if out {
            (&inside, &outside)
        } else {
            (&outside, &inside)
        };
        for ports in [first, second] {
            for round in 0..3 {
                for &port in ports {
                    let now =
                        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
                    let event = ImpinjEvent {
                        timestamp: now.clone(),
                        hostname: device.clone(),
                        event_type: "tagInventory".into(),
                        tag_inventory_event: Some(TagInventoryEvent {
                            epc: base64_url(&epc_bytes(&epc)),
                            epc_hex: String::new(),
                            antenna_port: port,
                            antenna_name: format!("Antenna {port}"),
                            peak_rssi_cdbm: Some(-5500 + round * 300),
                            frequency: Some(920_625),
                            transmit_power_cdbm: Some(3000),
                            last_seen_time: Some(now),
                            phase_angle: None,
                        }),
                    };
                    if let Ok(body) = serde_json::to_vec(&event) {
                        let _ = client
                            .publish(topic.clone(), QoS::AtLeastOnce, false, body)
                            .await;
                    }
                }
                // A walk through a gate takes about a second.
                clock.sleep(Duration::from_millis(150)).await;
            }
        }
    }
}

/// Runs an Impinj-style reader: it inventories its antennas in turn, `dwell_ms` each, and
/// publishes one tagInventory event per tag heard, while online.
pub async fn serve_impinj(
    at: MqttDevice,
    settings: ImpinjIot,
    antennas: HashMap<u16, usize>,
    world: Arc<Mutex<World>>,
    mut radio: Radio,
) {
    let MqttDevice {
        broker,
        device,
        prefix,
        online,
        clock,
    } = at;
    let (client, _incoming, _poller) = connect(&broker, &device, vec![]);
    let topic = format!("{prefix}/{}", settings.event_topic);
    let mut ports: Vec<(u16, usize)> = antennas.into_iter().collect();
    ports.sort_unstable();
    let dwell = Duration::from_millis(settings.dwell_ms.max(10));
    loop {
        if ports.is_empty() || !online.load(Ordering::Relaxed) {
            clock.sleep(dwell).await;
            continue;
        }
        for &(port, shelf) in &ports {
            let heard = match world.lock() {
                Ok(w) => radio.inventory(&w, shelf, port),
                Err(_) => Vec::new(),
            };
            let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
            for o in heard {
                let bytes = epc_bytes(&o.epc);
                let event = ImpinjEvent {
                    timestamp: now.clone(),
                    hostname: device.clone(),
                    event_type: "tagInventory".into(),
                    tag_inventory_event: Some(TagInventoryEvent {
                        epc: base64_url(&bytes),
                        epc_hex: String::new(),
                        antenna_port: port,
                        antenna_name: format!("Antenna {port}"),
                        peak_rssi_cdbm: Some(o.rssi_dbm as i32 * 100),
                        frequency: Some(o.frequency_khz),
                        transmit_power_cdbm: Some(3000),
                        last_seen_time: Some(now.clone()),
                        phase_angle: Some(o.phase_deg as f64),
                    }),
                };
                if let Ok(body) = serde_json::to_vec(&event) {
                    let _ = client
                        .publish(topic.clone(), QoS::AtMostOnce, false, body)
                        .await;
                }
            }
            clock.sleep(dwell).await;
        }
    }
}

//! Simulated devices on MQTT: a shelving controller with JSON command/state topics and an
//! Impinj-style reader publishing IoT device interface tag events.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use stackroom_wire::mqtt_json::{
    ImpinjEvent, ShelvingCommand, ShelvingResult, ShelvingState, TagInventoryEvent, base64,
};
use stackroom_wire::profile::{ImpinjIot, MqttShelving};
use tokio::sync::mpsc;

use crate::clock::Clock;
use crate::rf::Radio;
use crate::shelving::{Command, Fault, Motion, RangeSim, Refusal};
use crate::world::{World, epc_bytes};

/// Where the broker is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broker {
    pub host: String,
    pub port: u16,
}

/// A client, what arrives on its subscription, and the task that polls it.
pub(crate) type Connection = (
    AsyncClient,
    mpsc::Receiver<(String, Vec<u8>)>,
    tokio::task::JoinHandle<()>,
);

/// Connects, keeps the connection polled (rumqttc reconnects on its own), subscribes to
/// `subscribe` after every (re)connection and forwards what arrives there.
pub(crate) fn connect(broker: &Broker, client_id: &str, subscribe: Option<String>) -> Connection {
    let mut options = MqttOptions::new(client_id, &broker.host, broker.port);
    options.set_keep_alive(Duration::from_secs(5));
    options.set_max_packet_size(256 * 1024, 256 * 1024);
    let (client, mut events) = AsyncClient::new(options, 256);
    let (tx, rx) = mpsc::channel(256);
    let resubscribe = client.clone();
    let task = tokio::spawn(async move {
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    if let Some(topic) = &subscribe {
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

fn refusal_reason(r: Refusal) -> &'static str {
    match r {
        Refusal::Estop => "estop",
        Refusal::Locked => "locked",
        Refusal::Fault => "fault",
        Refusal::AisleOccupied(_) => "aisle_occupied",
        Refusal::Obstacle(_) => "obstacle",
        Refusal::NoSuchAisle(_) => "no_such_aisle",
    }
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
        fault_carriage: match s.fault {
            Some(Fault::Motor { carriage } | Fault::Jam { carriage }) => carriage,
            _ => 0,
        },
        occupied_aisles: s.occupied_aisles,
        obstacle_aisles: s.obstacle_aisles,
        seq,
    }
}

/// Runs a shelving controller on MQTT until the task is dropped.
pub async fn serve_shelving(
    broker: Broker,
    device: String,
    prefix: String,
    topics: MqttShelving,
    range: Arc<Mutex<RangeSim>>,
    online: Arc<AtomicBool>,
) {
    let command_topic = format!("{prefix}/{}", topics.command_topic);
    let (client, mut incoming, poller) =
        connect(&broker, &format!("sim-{device}"), Some(command_topic));
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    let mut seq = 0u64;
    let mut last: Option<ShelvingState> = None;
    let mut last_sent = tokio::time::Instant::now();
    let interval = Duration::from_millis(topics.state_interval_ms.max(50));
    loop {
        tokio::select! {
            Some((_, payload)) = incoming.recv() => {
                if !online.load(Ordering::Relaxed) {
                    continue;
                }
                let result = match serde_json::from_slice::<ShelvingCommand>(&payload) {
                    Err(e) => ShelvingResult { id: String::new(), result: "invalid".into(), reason: Some(e.to_string()), aisle: None },
                    Ok(c) => {
                        let command = match (c.command.as_str(), c.aisle) {
                            ("open_aisle", Some(k)) => Some(Command::OpenAisle(k)),
                            ("close", _) => Some(Command::Close),
                            ("ventilate", _) => Some(Command::Ventilate),
                            ("stop", _) => Some(Command::Stop),
                            ("lock", _) => Some(Command::Lock),
                            ("unlock", _) => Some(Command::Unlock),
                            ("reset_faults", _) => Some(Command::ResetFaults),
                            _ => None,
                        };
                        match command {
                            None => ShelvingResult { id: c.id, result: "invalid".into(), reason: Some(format!("unknown command '{}' (open_aisle needs an aisle)", c.command)), aisle: None },
                            Some(command) => {
                                let outcome = range.lock().map(|mut r| r.command(command));
                                match outcome {
                                    Ok(Ok(())) => ShelvingResult { id: c.id, result: "accepted".into(), reason: None, aisle: None },
                                    Ok(Err(r)) => ShelvingResult {
                                        id: c.id,
                                        result: "refused".into(),
                                        reason: Some(refusal_reason(r).into()),
                                        aisle: match r { Refusal::AisleOccupied(k) | Refusal::Obstacle(k) | Refusal::NoSuchAisle(k) => Some(k), _ => None },
                                    },
                                    Err(_) => ShelvingResult { id: c.id, result: "refused".into(), reason: Some("fault".into()), aisle: None },
                                }
                            }
                        }
                    }
                };
                if let Ok(body) = serde_json::to_vec(&result) {
                    let _ = client.publish(format!("{prefix}/{}", topics.result_topic), QoS::AtLeastOnce, false, body).await;
                }
            }
            _ = tick.tick() => {
                if !online.load(Ordering::Relaxed) {
                    continue;
                }
                let Ok(state) = range.lock().map(|r| state_message(&r, seq + 1)) else { continue };
                let changed = last.as_ref().is_none_or(|l| ShelvingState { seq: l.seq + 1, ..l.clone() } != state);
                let topic = format!("{prefix}/{}", topics.state_topic);
                if (changed || last_sent.elapsed() >= interval)
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

/// A reader at the door (Impinj-style, MQTT): it hears a tag only when someone carries it
/// through, first on the ports of the side it comes from, then on the other side's.
#[allow(clippy::too_many_arguments)]
pub async fn serve_gate(
    broker: Broker,
    device: String,
    prefix: String,
    settings: ImpinjIot,
    inside: Vec<u16>,
    outside: Vec<u16>,
    mut walks: mpsc::Receiver<(String, bool)>,
    online: Arc<AtomicBool>,
    clock: Clock,
) {
    let (client, _incoming, _poller) = connect(&broker, &format!("sim-{device}"), None);
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
                            epc: base64(&epc_bytes(&epc)),
                            epc_hex: epc.clone(),
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
#[allow(clippy::too_many_arguments)]
pub async fn serve_impinj(
    broker: Broker,
    device: String,
    prefix: String,
    settings: ImpinjIot,
    antennas: HashMap<u16, usize>,
    world: Arc<Mutex<World>>,
    mut radio: Radio,
    online: Arc<AtomicBool>,
    clock: Clock,
) {
    let (client, _incoming, _poller) = connect(&broker, &format!("sim-{device}"), None);
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
                        epc: base64(&bytes),
                        epc_hex: o.epc.clone(),
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

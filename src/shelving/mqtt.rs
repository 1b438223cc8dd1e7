//! The MQTT JSON driver of shelving controllers (rumqttc), with the topics of the profile.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use stackroom_wire::mqtt_json::{ShelvingCommand, ShelvingResult, ShelvingState};
use stackroom_wire::profile::{MqttShelving, Timing};
use tokio::sync::oneshot;

use super::device::{
    DeviceCommand, DeviceFault, DeviceState, DriverError, DriverPorts, Link, Outcome,
};

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
        occupied_aisles: s.occupied_aisles,
        obstacle_aisles: s.obstacle_aisles,
        at: Instant::now(),
    }
}

fn wire_command(id: String, command: DeviceCommand) -> ShelvingCommand {
    let (name, aisle) = match command {
        DeviceCommand::OpenAisle(k) => ("open_aisle", Some(k)),
        DeviceCommand::Close => ("close", None),
        DeviceCommand::Ventilate => ("ventilate", None),
        DeviceCommand::Stop => ("stop", None),
        DeviceCommand::Lock => ("lock", None),
        DeviceCommand::Unlock => ("unlock", None),
        DeviceCommand::ResetFaults => ("reset_faults", None),
    };
    ShelvingCommand {
        id,
        command: name.into(),
        aisle,
    }
}

/// Runs the driver until the controller drops its handle.
pub async fn run(
    device: String,
    host: String,
    port: u16,
    prefix: String,
    topics: MqttShelving,
    timing: Timing,
    mut ports: DriverPorts,
) {
    let mut options = MqttOptions::new(format!("stackroom-{device}"), host, port);
    options.set_keep_alive(Duration::from_secs(5));
    let (client, mut events) = AsyncClient::new(options, 64);
    let state_topic = format!("{prefix}/{}", topics.state_topic);
    let result_topic = format!("{prefix}/{}", topics.result_topic);
    let command_topic = format!("{prefix}/{}", topics.command_topic);
    let stale = Duration::from_millis(timing.stale_after_ms);
    let mut pending: HashMap<String, oneshot::Sender<Result<Outcome, DriverError>>> =
        HashMap::new();
    let mut next_id = 0u64;
    let mut last_state = Instant::now();
    let mut up = false;
    let mut check = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            event = events.poll() => match event {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    let _ = client.try_subscribe(state_topic.clone(), QoS::AtLeastOnce);
                    let _ = client.try_subscribe(result_topic.clone(), QoS::AtLeastOnce);
                }
                Ok(Event::Incoming(Packet::Publish(p))) if p.topic == state_topic => {
                    match serde_json::from_slice::<ShelvingState>(&p.payload) {
                        Ok(s) => {
                            last_state = Instant::now();
                            up = true;
                            let _ = ports.link.send(Link::Up(state(s)));
                        }
                        Err(e) => tracing::warn!(%device, error = %e, "unreadable state message"),
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) if p.topic == result_topic => {
                    match serde_json::from_slice::<ShelvingResult>(&p.payload) {
                        Ok(r) => {
                            if let Some(reply) = pending.remove(&r.id) {
                                let outcome = match r.result.as_str() {
                                    "accepted" => Ok(Outcome::Accepted),
                                    "refused" => Ok(Outcome::Refused(r.reason.unwrap_or_else(|| "refused".into()))),
                                    other => Err(DriverError::Protocol(format!(
                                        "command {}: {other} ({})", r.id, r.reason.unwrap_or_default()
                                    ))),
                                };
                                let _ = reply.send(outcome);
                            }
                        }
                        Err(e) => tracing::warn!(%device, error = %e, "unreadable command result"),
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    if up {
                        tracing::warn!(%device, error = %e, "MQTT link lost; reconnecting");
                    }
                    up = false;
                    let _ = ports.link.send(Link::Down(format!("MQTT: {e}")));
                    for (_, reply) in pending.drain() {
                        let _ = reply.send(Err(DriverError::Link(e.to_string())));
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            },
            command = ports.commands.recv() => {
                let Some((command, reply)) = command else { return };
                next_id += 1;
                let id = format!("{device}-{next_id}");
                let body = match serde_json::to_vec(&wire_command(id.clone(), command)) {
                    Ok(body) => body,
                    Err(e) => {
                        let _ = reply.send(Err(DriverError::Protocol(e.to_string())));
                        continue;
                    }
                };
                match client.try_publish(command_topic.clone(), QoS::AtLeastOnce, false, body) {
                    Ok(()) => {
                        pending.insert(id, reply);
                    }
                    Err(e) => {
                        let _ = reply.send(Err(DriverError::Link(e.to_string())));
                    }
                }
            }
            _ = check.tick() => {
                if up && last_state.elapsed() > stale {
                    up = false;
                    let _ = ports.link.send(Link::Down(format!("no state for {} ms", stale.as_millis())));
                }
                // Commands whose caller gave up are dropped.
                pending.retain(|_, reply| !reply.is_closed());
            }
        }
    }
}

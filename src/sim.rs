//! The simulated room: hw-sim started from a room config.
//!
//! hw-sim knows nothing of stackroom's types; this module turns the validated room config
//! (layout, devices with their profiles, antenna map) and a placement of boxes into the
//! simulator's plain [`SimSpec`]. `stackroom demo` and `stackroom-sim` both start it from
//! here.

use std::collections::HashMap;
use std::io::Read;
use std::net::SocketAddr;

use hw_sim::mqtt_devices::Broker;
use hw_sim::rf::RfParams;
use hw_sim::shelving::RangeSpec;
use hw_sim::world::ShelfSpec;
use hw_sim::{Placement, RangeDevice, ReaderDevice, ReaderWire, ShelvingWire, SimSpec, Simulator};
use stackroom_wire::profile::Protocol;

use crate::config::{Device, DeviceKind, Mqtt, RoomConfig, Transport};
use crate::location::LocationService;
use crate::shelf::Face;

/// Why the simulated room could not be built or started.
#[derive(Debug, thiserror::Error)]
pub enum SimulationError {
    /// The room has a device (or a gate) that hw-sim cannot simulate as configured.
    #[error("device '{device}': {why}")]
    Device { device: String, why: String },
    #[error("'{url}' is no broker address")]
    BrokerUrl {
        url: String,
        source: crate::config::bus::BadBrokerUrl,
    },
    #[error("'{0}': the simulated devices speak plain MQTT; give them a plain listener")]
    TlsBroker(String),
    #[error("line {line}: {why}")]
    Placement { line: u64, why: String },
    #[error("the placement CSV")]
    Csv(#[from] csv::Error),
    #[error("the boxes could not be read")]
    Boxes(#[from] crate::location::LocationError),
    #[error("the simulator could not start")]
    Simulator(#[from] hw_sim::SimError),
    #[error("the embedded broker could not start")]
    Broker(#[from] crate::mqtt::BrokerError),
    #[error(transparent)]
    Devices(#[from] crate::server::StartError),
    #[error("the room's broker")]
    Bus(#[from] crate::bus::BusError),
}

fn cannot(device: &str, why: impl Into<String>) -> SimulationError {
    SimulationError::Device {
        device: device.to_string(),
        why: why.into(),
    }
}

/// Settings of a simulated run.
#[derive(Debug, Clone)]
pub struct SimSettings {
    pub seed: u64,
    /// Simulated seconds per real second.
    pub time_scale: f64,
    pub rf: RfParams,
    /// The broker the simulated MQTT devices use.
    pub mqtt: Option<Broker>,
}

impl Default for SimSettings {
    fn default() -> Self {
        SimSettings {
            seed: 1,
            time_scale: 1.0,
            rf: RfParams::default(),
            mqtt: None,
        }
    }
}

/// A broker address from `mqtt://host:port` (or `tcp://`, or bare `host:port`); the
/// simulated devices speak plain MQTT only.
pub fn broker(url: &str) -> Result<Broker, SimulationError> {
    let u =
        crate::config::bus::BrokerUrl::parse(url).map_err(|source| SimulationError::BrokerUrl {
            url: url.to_string(),
            source,
        })?;
    if u.tls {
        return Err(SimulationError::TlsBroker(url.to_string()));
    }
    Ok(Broker {
        host: u.host,
        port: u.port,
        passwords: Default::default(),
    })
}

fn prefix(device: &Device) -> Result<String, SimulationError> {
    match &device.transport {
        Transport::Mqtt { prefix } => Ok(prefix.clone()),
        other => Err(cannot(
            &device.id,
            format!(
                "it speaks MQTT but is wired as {other}; give it transport = {{ mqtt = {{ prefix = \"...\" }} }}"
            ),
        )),
    }
}

fn baud(device: &Device) -> u32 {
    match &device.transport {
        Transport::Serial { baud, .. } => *baud,
        _ => device.spec.serial.as_ref().map_or(9600, |s| s.baud),
    }
}

fn unit(device: &Device, default: u8) -> u8 {
    match &device.transport {
        Transport::Serial { unit: Some(u), .. } | Transport::ModbusTcp { unit: Some(u), .. } => *u,
        _ => default,
    }
}

/// The room's shelves as the simulator knows them.
pub fn shelf_specs(layout: &crate::layout::Layout) -> Vec<ShelfSpec> {
    layout
        .shelves()
        .map(|s| ShelfSpec {
            address: s.to_string(),
            range: s.range,
            carriage: s.carriage,
            right_face: s.face == Face::Right,
            section: s.section,
            level: s.level,
        })
        .collect()
}

/// The simulator's view of the room in `config`, with boxes placed as in `placement`.
pub fn spec(
    config: &RoomConfig,
    placement: Vec<Placement>,
    settings: &SimSettings,
) -> Result<SimSpec, SimulationError> {
    let shelves = shelf_specs(&config.layout);
    let mut ranges = Vec::new();
    let mut readers = Vec::new();
    for device in &config.devices {
        let profile = &device.spec;
        let unsupported = || {
            cannot(
                &device.id,
                format!(
                    "hw-sim does not simulate protocol {} yet",
                    profile.device.protocol
                ),
            )
        };
        match profile.device.kind {
            DeviceKind::Shelving => {
                let id = device
                    .range
                    .ok_or_else(|| cannot(&device.id, "it has no range"))?;
                let layout = config
                    .layout
                    .range(id)
                    .ok_or_else(|| cannot(&device.id, format!("no range {id}")))?;
                let motion = profile.motion.clone().ok_or_else(|| {
                    cannot(
                        &device.id,
                        format!(
                            "profile {} needs a [motion] section (speed_mm_s, accel_mm_s2) to be simulated",
                            device.profile
                        ),
                    )
                })?;
                let wire = match (profile.device.protocol, &profile.modbus, &profile.mqtt_json) {
                    (Protocol::Modbus, Some(map), _)
                        if matches!(device.transport, Transport::ModbusTcp { .. }) =>
                    {
                        ShelvingWire::ModbusTcp {
                            map: map.clone(),
                            unit: unit(device, map.unit),
                        }
                    }
                    (Protocol::Modbus, Some(map), _) => ShelvingWire::ModbusRtu {
                        map: map.clone(),
                        unit: unit(device, map.unit),
                        baud: baud(device),
                    },
                    (Protocol::MqttJson, _, Some(topics)) => ShelvingWire::MqttJson {
                        topics: topics.clone(),
                        prefix: prefix(device)?,
                    },
                    (Protocol::FramedSerial, _, _) => ShelvingWire::Framed {
                        profile: profile.framed.clone().ok_or_else(unsupported)?,
                        baud: baud(device),
                    },
                    _ => return Err(unsupported()),
                };
                ranges.push(RangeDevice {
                    device: device.id.clone(),
                    range: RangeSpec {
                        id,
                        carriage_widths_mm: layout.carriages.iter().map(|c| c.width_mm).collect(),
                        fixed: layout.carriages.iter().map(|c| c.fixed).collect(),
                        aisle_width_mm: layout.aisle_width_mm,
                        speed_mm_s: motion.speed_mm_s,
                        accel_mm_s2: motion.accel_mm_s2,
                        watchdog_timeout: profile
                            .watchdog
                            .as_ref()
                            .map(|w| std::time::Duration::from_millis(w.timeout_ms)),
                    },
                    wire,
                });
            }
            DeviceKind::Environment => {}
            DeviceKind::Reader if config.gates.iter().any(|g| g.reader == device.id) => {}
            DeviceKind::Reader => {
                let wire = match profile.device.protocol {
                    Protocol::R2000 => ReaderWire::R2000 {
                        settings: profile.r2000.clone().ok_or_else(unsupported)?,
                        baud: baud(device),
                    },
                    Protocol::Mercury => ReaderWire::Mercury {
                        settings: profile.mercury.clone().ok_or_else(unsupported)?,
                        baud: baud(device),
                    },
                    Protocol::ImpinjIot => ReaderWire::ImpinjIot {
                        settings: profile.impinj_iot.clone().ok_or_else(unsupported)?,
                        prefix: prefix(device)?,
                    },
                    _ => return Err(unsupported()),
                };
                readers.push(ReaderDevice {
                    device: device.id.clone(),
                    wire,
                    antennas: config
                        .antennas
                        .iter()
                        .filter(|a| a.reader == device.id)
                        .map(|a| (a.port, a.shelf.to_string()))
                        .collect(),
                });
            }
        }
    }
    let climate = climate_spec(config)?;
    let mut gates = Vec::new();
    for g in &config.gates {
        let device = config
            .devices
            .iter()
            .find(|d| d.id == g.reader)
            .ok_or_else(|| cannot(&g.reader, "a gate's reader, not in the room"))?;
        let settings = device.spec.impinj_iot.clone().ok_or_else(|| {
            cannot(
                &g.reader,
                "hw-sim simulates gates on Impinj-style (MQTT) readers",
            )
        })?;
        gates.push(hw_sim::GateDevice {
            device: g.reader.clone(),
            prefix: prefix(device)?,
            settings,
            inside: g.inside.clone(),
            outside: g.outside.clone(),
        });
    }
    Ok(SimSpec {
        climate,
        gates,
        seed: settings.seed,
        time_scale: settings.time_scale,
        rf: settings.rf,
        shelves,
        ranges,
        readers,
        placement,
        mqtt: settings.mqtt.clone(),
    })
}

/// The simulated climate and environment devices of the config's `[environment]`.
fn climate_spec(config: &RoomConfig) -> Result<hw_sim::climate::ClimateSpec, SimulationError> {
    use crate::config::environment::{Address, PointKind};
    use hw_sim::climate::{BinaryKind, ClimateSpec, EnvDevice, EnvWire};
    let env = &config.environment;
    let mut spec = ClimateSpec {
        zones: env.zones.iter().map(|z| z.id.clone()).collect(),
        ..ClimateSpec::default()
    };
    for p in &env.points {
        match p.kind {
            PointKind::Climate => spec.sensors.push((p.id.clone(), p.zone.clone())),
            PointKind::Smoke => spec
                .binary
                .push((p.id.clone(), BinaryKind::Smoke, p.zone.clone())),
            PointKind::Water => spec
                .binary
                .push((p.id.clone(), BinaryKind::Water, p.zone.clone())),
            PointKind::Door => spec
                .binary
                .push((p.id.clone(), BinaryKind::Door, p.zone.clone())),
            k => spec
                .actuators
                .push((p.id.clone(), k == PointKind::Dehumidifier, p.zone.clone())),
        }
    }
    for device in config
        .devices
        .iter()
        .filter(|d| d.spec.device.kind == DeviceKind::Environment)
    {
        let points = env.points.iter().filter(|p| p.device == device.id);
        let wire = match (&device.spec.modbus_environment, &device.spec.zigbee2mqtt) {
            (Some(map), _) => {
                let (mut climate, mut inputs, mut coils) = (None, Vec::new(), Vec::new());
                for p in points {
                    match p.address {
                        Address::Climate => climate = Some(p.id.clone()),
                        Address::Input(n) => inputs.push((n, p.id.clone())),
                        Address::Coil(n) => coils.push((n, p.id.clone())),
                        Address::Topic(_) => {}
                    }
                }
                EnvWire::ModbusRtu {
                    map: map.clone(),
                    unit: unit(device, map.unit),
                    baud: baud(device),
                    climate,
                    inputs,
                    coils,
                }
            }
            (None, Some(keys)) => EnvWire::Zigbee2mqtt {
                keys: keys.clone(),
                prefix: prefix(device)?,
                points: points
                    .filter_map(|p| match &p.address {
                        Address::Topic(t) => Some((t.clone(), p.id.clone())),
                        _ => None,
                    })
                    .collect(),
            },
            (None, None) => {
                return Err(cannot(&device.id, "hw-sim cannot simulate it"));
            }
        };
        spec.devices.push(EnvDevice {
            device: device.id.clone(),
            wire,
        });
    }
    Ok(spec)
}

/// The boxes as the controller's database has them: every tagged box on its bound shelf.
pub async fn placement_from(
    locations: &LocationService,
) -> Result<Vec<Placement>, SimulationError> {
    Ok(locations
        .tagged_boxes()
        .await?
        .into_iter()
        .map(|(archive_no, epc, shelf)| Placement {
            archive_no,
            epc,
            shelf,
        })
        .collect())
}

/// Starts the simulated room with its control API on `control` (port 0: any free port).
pub async fn start(
    config: &RoomConfig,
    placement: Vec<Placement>,
    settings: &SimSettings,
    control: SocketAddr,
) -> Result<Simulator, SimulationError> {
    let spec = spec(config, placement, settings)?;
    Ok(Simulator::start(spec, control).await?)
}

/// Lines for people: where each simulated device is.
pub fn describe(sim: &Simulator) -> Vec<String> {
    sim.endpoints
        .iter()
        .map(|e| {
            format!(
                "sim device {}: {} ({})",
                e.device,
                e.path
                    .as_deref()
                    .or(e.topics.as_deref())
                    .or(e.address.as_deref())
                    .unwrap_or("-"),
                e.kind
            )
        })
        .collect()
}

/// Reads a placement CSV: `archive_no,epc,shelf` (shelf empty: in the room, on no shelf).
pub fn placement_csv<R: Read>(input: R) -> Result<Vec<Placement>, SimulationError> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(input);
    let headers = reader.headers()?.clone();
    let column = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| SimulationError::Placement {
                line: 1,
                why: format!("the header needs a '{name}' column"),
            })
    };
    let (no, epc, shelf) = (column("archive_no")?, column("epc")?, column("shelf")?);
    let mut out = Vec::new();
    let mut seen = HashMap::new();
    for record in reader.records() {
        let r = record?;
        let line = r.position().map_or(0, |p| p.line());
        let get = |i: usize| r.get(i).unwrap_or("").to_string();
        if get(epc).is_empty() {
            continue; // a box without a tag is invisible to the radio
        }
        if let Some(first) = seen.insert(get(no), line) {
            return Err(SimulationError::Placement {
                line,
                why: format!("box {} already placed on line {first}", get(no)),
            });
        }
        out.push(Placement {
            archive_no: get(no),
            epc: get(epc),
            shelf: Some(get(shelf)).filter(|s| !s.is_empty()),
        });
    }
    Ok(out)
}

/// The simulated room around a controller, as the demo runs it: the room's broker (the
/// embedded one, started on `mqtt_listen`, or the external broker of its config, whose
/// passwords `stackroom broker-config` made), hw-sim (its control API on `control`) with
/// the boxes where the controller's database says they are, and the controller's devices
/// started against it.
pub async fn simulate(
    controller: &mut crate::server::Controller,
    settings: SimSettings,
    mqtt_listen: SocketAddr,
    control: SocketAddr,
) -> Result<(Simulator, RoomBroker), SimulationError> {
    let config = &controller.config;
    let broker = match &config.mqtt {
        Mqtt::External { url } => {
            let grants = crate::bus::grants(config, &config.bus.user);
            let passwords = crate::bus::passwords(config, &grants, false)?;
            RoomBroker::External {
                endpoint: crate::bus::endpoint(config)?,
                devices: Broker {
                    passwords,
                    ..broker(url)?
                },
                url: url.clone(),
            }
        }
        Mqtt::Embedded { .. } => {
            RoomBroker::Embedded(crate::mqtt::EmbeddedBroker::start(mqtt_listen, config)?)
        }
    };
    let placement = placement_from(&controller.locations).await?;
    let settings = SimSettings {
        mqtt: Some(broker.for_devices()),
        ..settings
    };
    let simulator = start(&controller.config, placement, &settings, control).await?;
    controller
        .start_devices(&crate::shelving::Wiring::of(
            &simulator,
            Some(broker.endpoint().clone()),
        ))
        .await?;
    Ok((simulator, broker))
}

/// The broker of a simulated room.
pub enum RoomBroker {
    /// Started by [`simulate`], for the life of the returned value.
    Embedded(crate::mqtt::EmbeddedBroker),
    /// The room's own (a Mosquitto set up by `stackroom broker-config`).
    External {
        endpoint: crate::bus::Endpoint,
        devices: Broker,
        url: String,
    },
}

impl RoomBroker {
    /// How the controller connects.
    pub fn endpoint(&self) -> &crate::bus::Endpoint {
        match self {
            RoomBroker::Embedded(b) => &b.endpoint,
            RoomBroker::External { endpoint, .. } => endpoint,
        }
    }

    /// How the simulated devices connect.
    pub fn for_devices(&self) -> Broker {
        match self {
            RoomBroker::Embedded(b) => b.for_devices(),
            RoomBroker::External { devices, .. } => devices.clone(),
        }
    }

    pub fn url(&self) -> String {
        match self {
            RoomBroker::Embedded(b) => b.url(),
            RoomBroker::External { url, .. } => url.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_room_becomes_a_simulator_spec() {
        let config = RoomConfig::load(&crate::demo::config_path()).unwrap();
        let spec = spec(&config, vec![], &SimSettings::default()).unwrap();
        assert_eq!(spec.shelves.len(), config.layout.shelf_count());
        assert_eq!(
            spec.ranges.len(),
            config.devices.iter().filter(|d| d.range.is_some()).count()
        );
        let antennas: usize = spec.readers.iter().map(|r| r.antennas.len()).sum();
        assert_eq!(antennas, config.antennas.len());
    }

    #[test]
    fn placements_read_from_csv() {
        let csv = "archive_no,epc,shelf\nA,E280,R1-C1-R-S1-L1\nB,,R1-C1-R-S1-L1\nC,E281,\n";
        let p = placement_csv(csv.as_bytes()).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[1].shelf, None);
        let err = placement_csv("archive_no,epc,shelf\nA,E280,\nA,E281,\n".as_bytes()).unwrap_err();
        assert!(err.to_string().contains("line 3"), "{err}");
        assert!(placement_csv("archive_no,shelf\n".as_bytes()).is_err());
    }
}

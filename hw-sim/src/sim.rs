//! The running simulator: devices on their wires, physics ticking, the control API.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use stackroom_wire::framed::FramedProfile;
use stackroom_wire::profile::{ImpinjIot, Mercury, ModbusShelving, MqttShelving, R2000};

use crate::clock::Clock;
use crate::mercury_reader::MercuryReader;
use crate::modbus_shelving::{self, ModbusController};
use crate::mqtt_devices::{self, Broker};
use crate::r2000_reader::R2000Reader;
use crate::rf::{Radio, RfParams};
use crate::serial_link::{LineFaults, SerialLink};
use crate::shelving::{Fault, PlcSettings, RangeSim, RangeSpec, RangeState};
use crate::world::{ShelfSpec, Tag, World};

/// How a simulated shelving controller is reached.
#[derive(Debug, Clone)]
pub enum ShelvingWire {
    /// Modbus RTU on a serial line, with this register map.
    ModbusRtu {
        map: ModbusShelving,
        unit: u8,
        baud: u32,
    },
    /// Modbus TCP (a gateway, or a PLC with Ethernet), with this register map.
    ModbusTcp { map: ModbusShelving, unit: u8 },
    /// JSON over MQTT under `prefix`.
    MqttJson {
        topics: MqttShelving,
        prefix: String,
    },
    /// A vendor's framed bytes on a serial line, as the profile describes them.
    Framed { profile: FramedProfile, baud: u32 },
}

/// A simulated range and its controller.
#[derive(Debug, Clone)]
pub struct RangeDevice {
    pub device: String,
    pub range: RangeSpec,
    pub wire: ShelvingWire,
}

/// How a simulated reader is reached.
#[derive(Debug, Clone)]
pub enum ReaderWire {
    R2000 {
        settings: R2000,
        baud: u32,
    },
    Mercury {
        settings: Mercury,
        baud: u32,
    },
    /// Impinj IoT device interface events over MQTT under `prefix`.
    ImpinjIot {
        settings: ImpinjIot,
        prefix: String,
    },
}

/// A simulated reader and the shelves its antennas face.
#[derive(Debug, Clone)]
pub struct ReaderDevice {
    pub device: String,
    pub wire: ReaderWire,
    /// Antenna port (1-based) and the canonical address of the shelf it faces.
    pub antennas: Vec<(u16, String)>,
}

/// A box in the simulated room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub archive_no: String,
    pub epc: String,
    pub shelf: Option<String>,
}

/// Everything the simulator needs to know about the room.
#[derive(Debug, Clone)]
pub struct SimSpec {
    pub seed: u64,
    pub time_scale: f64,
    pub rf: RfParams,
    pub shelves: Vec<ShelfSpec>,
    pub ranges: Vec<RangeDevice>,
    pub readers: Vec<ReaderDevice>,
    pub placement: Vec<Placement>,
    /// The broker MQTT devices connect to (needed only if there are any).
    pub mqtt: Option<Broker>,
    /// The climate and the environment devices.
    pub climate: crate::climate::ClimateSpec,
    /// Readers at the door.
    pub gates: Vec<GateDevice>,
}

/// A reader at the room's door: Impinj-style on MQTT, its ports facing inside and outside.
#[derive(Debug, Clone)]
pub struct GateDevice {
    pub device: String,
    pub prefix: String,
    pub settings: ImpinjIot,
    pub inside: Vec<u16>,
    pub outside: Vec<u16>,
}

/// Where a simulated device can be reached.
#[derive(Debug, Clone, Serialize)]
pub struct Endpoint {
    pub device: String,
    pub kind: &'static str,
    /// The serial device to open (for serial devices).
    pub path: Option<String>,
    /// The topic prefix (for MQTT devices).
    pub topics: Option<String>,
    /// HOST:PORT (for Modbus TCP devices).
    pub address: Option<String>,
}

/// Why the simulator did not start.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("cannot make a serial line for {device}: {source}")]
    Line {
        device: String,
        source: std::io::Error,
    },
    #[error("reader {device}: {message}")]
    Reader { device: String, message: String },
    #[error("device {device} speaks MQTT, but the simulator was given no broker")]
    NoBroker { device: String },
    #[error("placement of {archive_no}: {message}")]
    Placement { archive_no: String, message: String },
    #[error("cannot serve the control API on {addr}: {source}")]
    Control {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

struct Shared {
    gates: HashMap<String, tokio::sync::mpsc::Sender<(String, bool)>>,
    world: Arc<Mutex<World>>,
    climate: Arc<Mutex<crate::climate::Climate>>,
    ranges: HashMap<u16, Arc<Mutex<RangeSim>>>,
    /// Every device's power/link: off, it answers and publishes nothing.
    online: HashMap<String, Arc<AtomicBool>>,
    readers: Vec<String>,
    lines: HashMap<String, SerialLink>,
    endpoints: Vec<Endpoint>,
    clock: Clock,
    seed: u64,
}

/// A running simulator. Dropping it stops every device.
pub struct Simulator {
    pub control: SocketAddr,
    pub endpoints: Vec<Endpoint>,
    shared: Arc<Shared>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Simulator {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Physics steps this often in real time.
const TICK: Duration = Duration::from_millis(20);

impl Simulator {
    /// Starts every device of `spec` and the control API on `control` (port 0: any).
    pub async fn start(spec: SimSpec, control: SocketAddr) -> Result<Simulator, SimError> {
        let clock = Clock::new(spec.time_scale);
        let mut world = World::new(spec.shelves.clone());
        for p in &spec.placement {
            world
                .place_box(&p.archive_no, &p.epc, p.shelf.as_deref())
                .map_err(|e| SimError::Placement {
                    archive_no: p.archive_no.clone(),
                    message: e.to_string(),
                })?;
        }
        let world = Arc::new(Mutex::new(world));
        let mut tasks = Vec::new();
        let mut lines = HashMap::new();
        let mut endpoints = Vec::new();
        let mut ranges = HashMap::new();
        let mut readers = Vec::new();
        let mut seeds = spec.seed;
        let mut next_seed = || {
            seeds = seeds
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            seeds
        };

        let broker = |device: &str| {
            spec.mqtt.clone().ok_or_else(|| SimError::NoBroker {
                device: device.to_string(),
            })
        };
        let mut online_flags = HashMap::new();
        for r in &spec.ranges {
            let sim = Arc::new(Mutex::new(RangeSim::new(r.range.clone())));
            ranges.insert(r.range.id, sim.clone());
            let online = Arc::new(AtomicBool::new(true));
            online_flags.insert(r.device.clone(), online.clone());
            match &r.wire {
                ShelvingWire::ModbusRtu { map, unit, baud } => {
                    let link = SerialLink::open(next_seed()).map_err(|source| SimError::Line {
                        device: r.device.clone(),
                        source,
                    })?;
                    let controller = ModbusController::new(sim.clone(), map.clone(), *unit);
                    tasks.push(tokio::spawn(modbus_shelving::serve(
                        link.device_path.clone(),
                        *baud,
                        controller,
                        online,
                    )));
                    endpoints.push(Endpoint {
                        device: r.device.clone(),
                        kind: "shelving/modbus-rtu",
                        path: Some(link.path.clone()),
                        topics: None,
                        address: None,
                    });
                    lines.insert(r.device.clone(), link);
                }
                ShelvingWire::Framed { profile, baud } => {
                    let link = SerialLink::open(next_seed()).map_err(|source| SimError::Line {
                        device: r.device.clone(),
                        source,
                    })?;
                    tasks.push(tokio::spawn(crate::framed_shelving::serve(
                        link.device_path.clone(),
                        *baud,
                        profile.clone(),
                        sim.clone(),
                        online,
                    )));
                    endpoints.push(Endpoint {
                        device: r.device.clone(),
                        kind: "shelving/framed-serial",
                        path: Some(link.path.clone()),
                        topics: None,
                        address: None,
                    });
                    lines.insert(r.device.clone(), link);
                }
                ShelvingWire::ModbusTcp { map, unit } => {
                    let listener =
                        tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
                            .await
                            .map_err(|source| SimError::Line {
                                device: r.device.clone(),
                                source,
                            })?;
                    let address = listener
                        .local_addr()
                        .map_err(|source| SimError::Line {
                            device: r.device.clone(),
                            source,
                        })?
                        .to_string();
                    let controller =
                        ModbusController::new(sim.clone(), map.clone(), *unit).with_online(online);
                    tasks.push(tokio::spawn(modbus_shelving::serve_tcp(
                        listener, controller,
                    )));
                    endpoints.push(Endpoint {
                        device: r.device.clone(),
                        kind: "shelving/modbus-tcp",
                        path: None,
                        topics: None,
                        address: Some(address),
                    });
                }
                ShelvingWire::MqttJson { topics, prefix } => {
                    tasks.push(tokio::spawn(mqtt_devices::serve_shelving(
                        broker(&r.device)?,
                        r.device.clone(),
                        prefix.clone(),
                        topics.clone(),
                        sim.clone(),
                        online,
                    )));
                    endpoints.push(Endpoint {
                        device: r.device.clone(),
                        kind: "shelving/mqtt-json",
                        path: None,
                        topics: Some(format!("{prefix}/#")),
                        address: None,
                    });
                }
            }
            tasks.push(tokio::spawn(tick(sim, clock)));
        }

        for r in &spec.readers {
            let w = world.lock().map_err(|_| SimError::Reader {
                device: r.device.clone(),
                message: "world lock poisoned".into(),
            })?;
            let mut antennas = HashMap::new();
            for (port, shelf) in &r.antennas {
                let index = w.shelf_index(shelf).map_err(|e| SimError::Reader {
                    device: r.device.clone(),
                    message: e.to_string(),
                })?;
                antennas.insert(*port, index);
            }
            drop(w);
            let online = Arc::new(AtomicBool::new(true));
            online_flags.insert(r.device.clone(), online.clone());
            readers.push(r.device.clone());
            let radio = Radio::new(next_seed(), spec.rf);
            let serial = |lines: &mut HashMap<String, SerialLink>, seed: u64| {
                let link = SerialLink::open(seed).map_err(|source| SimError::Line {
                    device: r.device.clone(),
                    source,
                })?;
                let paths = (link.device_path.clone(), link.path.clone());
                lines.insert(r.device.clone(), link);
                Ok::<_, SimError>(paths)
            };
            let (kind, path, topics) = match &r.wire {
                ReaderWire::R2000 { settings, baud } => {
                    let (device_path, path) = serial(&mut lines, next_seed())?;
                    let reader = R2000Reader {
                        id: r.device.clone(),
                        address: settings.address,
                        ports: settings.ports,
                        antennas,
                        world: world.clone(),
                        radio,
                        online,
                        clock,
                        sessions: Default::default(),
                    };
                    tasks.push(tokio::spawn(reader.serve(device_path, *baud)));
                    ("reader/r2000", Some(path), None)
                }
                ReaderWire::Mercury { settings, baud } => {
                    let (device_path, path) = serial(&mut lines, next_seed())?;
                    let reader = MercuryReader::new(
                        r.device.clone(),
                        settings.ports,
                        antennas,
                        world.clone(),
                        radio,
                        online,
                        clock,
                    );
                    tasks.push(tokio::spawn(reader.serve(device_path, *baud)));
                    ("reader/mercury", Some(path), None)
                }
                ReaderWire::ImpinjIot { settings, prefix } => {
                    let at = mqtt_devices::MqttDevice {
                        broker: broker(&r.device)?,
                        device: r.device.clone(),
                        prefix: prefix.clone(),
                        online,
                        clock,
                    };
                    tasks.push(tokio::spawn(mqtt_devices::serve_impinj(
                        at,
                        settings.clone(),
                        antennas,
                        world.clone(),
                        radio,
                    )));
                    (
                        "reader/impinj-iot",
                        None,
                        Some(format!("{prefix}/{}", settings.event_topic)),
                    )
                }
            };
            endpoints.push(Endpoint {
                device: r.device.clone(),
                kind,
                path,
                topics,
                address: None,
            });
        }

        let climate = Arc::new(Mutex::new(crate::climate::Climate::new(
            &spec.climate,
            next_seed(),
        )));
        tasks.push(tokio::spawn(crate::climate::tick(climate.clone(), clock)));
        for d in &spec.climate.devices {
            let online = Arc::new(AtomicBool::new(true));
            online_flags.insert(d.device.clone(), online.clone());
            match &d.wire {
                crate::climate::EnvWire::ModbusRtu {
                    map,
                    unit,
                    baud,
                    climate: sensor,
                    inputs,
                    coils,
                } => {
                    let link = SerialLink::open(next_seed()).map_err(|source| SimError::Line {
                        device: d.device.clone(),
                        source,
                    })?;
                    let device = crate::climate::ModbusEnvDevice::new(
                        climate.clone(),
                        map.clone(),
                        *unit,
                        sensor.clone(),
                        inputs.clone(),
                        coils.clone(),
                        online,
                    );
                    tasks.push(tokio::spawn(crate::climate::serve_modbus(
                        link.device_path.clone(),
                        *baud,
                        device,
                    )));
                    endpoints.push(Endpoint {
                        device: d.device.clone(),
                        kind: "environment/modbus-rtu",
                        path: Some(link.path.clone()),
                        topics: None,
                        address: None,
                    });
                    lines.insert(d.device.clone(), link);
                }
                crate::climate::EnvWire::Zigbee2mqtt {
                    keys,
                    prefix,
                    points,
                } => {
                    let at = mqtt_devices::MqttDevice {
                        broker: broker(&d.device)?,
                        device: d.device.clone(),
                        prefix: prefix.clone(),
                        online,
                        clock,
                    };
                    tasks.push(tokio::spawn(crate::climate::serve_zigbee2mqtt(
                        at,
                        keys.clone(),
                        points.clone(),
                        climate.clone(),
                    )));
                    endpoints.push(Endpoint {
                        device: d.device.clone(),
                        kind: "environment/zigbee2mqtt",
                        path: None,
                        topics: Some(format!("{prefix}/#")),
                        address: None,
                    });
                }
            }
        }

        let mut gates = HashMap::new();
        for g in &spec.gates {
            let online = Arc::new(AtomicBool::new(true));
            online_flags.insert(g.device.clone(), online.clone());
            let (tx, rx) = tokio::sync::mpsc::channel(64);
            gates.insert(g.device.clone(), tx);
            let at = mqtt_devices::MqttDevice {
                broker: broker(&g.device)?,
                device: g.device.clone(),
                prefix: g.prefix.clone(),
                online,
                clock,
            };
            tasks.push(tokio::spawn(mqtt_devices::serve_gate(
                at,
                g.settings.clone(),
                g.inside.clone(),
                g.outside.clone(),
                rx,
            )));
            endpoints.push(Endpoint {
                device: g.device.clone(),
                kind: "gate/impinj-iot",
                path: None,
                topics: Some(format!("{}/{}", g.prefix, g.settings.event_topic)),
                address: None,
            });
        }

        let shared = Arc::new(Shared {
            gates,
            climate,
            world,
            ranges,
            online: online_flags,
            readers,
            lines,
            endpoints: endpoints.clone(),
            clock,
            seed: spec.seed,
        });
        let listener = tokio::net::TcpListener::bind(control)
            .await
            .map_err(|source| SimError::Control {
                addr: control,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| SimError::Control {
            addr: control,
            source,
        })?;
        let app = control_router(shared.clone());
        tasks.push(tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "the simulator's control API stopped");
            }
        }));
        Ok(Simulator {
            control: addr,
            endpoints,
            shared,
            tasks,
        })
    }

    /// The simulated truth.
    pub fn state(&self) -> SimState {
        state(&self.shared)
    }

    /// When range `range`'s controller last received a command.
    pub fn last_command_at(&self, range: u16) -> Option<std::time::Instant> {
        self.shared
            .ranges
            .get(&range)?
            .lock()
            .ok()?
            .last_command_at()
    }

    /// A simulated range, to inject what happens in the room and read what its PLC saw.
    pub fn range(&self, range: u16) -> Option<Arc<Mutex<RangeSim>>> {
        self.shared.ranges.get(&range).cloned()
    }

    /// Switches a device on or off (off: it answers and publishes nothing, as unplugged);
    /// false when there is no such device.
    pub fn set_online(&self, device: &str, on: bool) -> bool {
        self.shared
            .online
            .get(device)
            .map(|flag| flag.store(on, Ordering::Relaxed))
            .is_some()
    }

    /// Spoils a serial device's line; false when the device has no serial line.
    pub fn set_line(&self, device: &str, faults: LineFaults) -> bool {
        self.shared
            .lines
            .get(device)
            .map(|link| link.set_faults(faults))
            .is_some()
    }

    /// Trips or clears a smoke, water or door sensor; false when there is no such sensor.
    pub fn set_binary(&self, sensor: &str, on: bool) -> bool {
        self.shared
            .climate
            .lock()
            .is_ok_and(|mut c| c.set_binary(sensor, on))
    }

    /// The serial path of a device.
    pub fn path(&self, device: &str) -> Option<&str> {
        self.endpoints
            .iter()
            .find(|e| e.device == device)
            .and_then(|e| e.path.as_deref())
    }
}

async fn tick(sim: Arc<Mutex<RangeSim>>, clock: Clock) {
    let mut interval = tokio::time::interval(TICK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = tokio::time::Instant::now();
    loop {
        interval.tick().await;
        let now = tokio::time::Instant::now();
        let dt = clock.simulated(now - last);
        last = now;
        if let Ok(mut s) = sim.lock() {
            s.scan(crate::shelving::Moment::now());
            s.tick(dt);
        }
    }
}

/// What `GET /sim/state` shows.
#[derive(Debug, Clone, Serialize)]
pub struct SimState {
    pub seed: u64,
    pub time_scale: f64,
    pub ranges: Vec<RangeState>,
    pub readers: Vec<ReaderState>,
    pub devices: Vec<Endpoint>,
    pub tags: Vec<Tag>,
    pub environment: crate::climate::ClimateState,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReaderState {
    pub device: String,
    pub online: bool,
}

fn state(shared: &Shared) -> SimState {
    let mut ranges: Vec<RangeState> = shared
        .ranges
        .values()
        .filter_map(|r| r.lock().ok().map(|r| r.state()))
        .collect();
    ranges.sort_by_key(|r| r.range);
    let mut readers: Vec<ReaderState> = shared
        .readers
        .iter()
        .map(|id| ReaderState {
            device: id.clone(),
            online: shared
                .online
                .get(id)
                .is_some_and(|on| on.load(Ordering::Relaxed)),
        })
        .collect();
    readers.sort_by(|a, b| a.device.cmp(&b.device));
    SimState {
        seed: shared.seed,
        time_scale: shared.clock.scale(),
        ranges,
        readers,
        devices: shared.endpoints.clone(),
        tags: shared
            .world
            .lock()
            .map(|w| w.snapshot())
            .unwrap_or_default(),
        environment: shared
            .climate
            .lock()
            .map(|c| c.state())
            .unwrap_or_else(|p| p.into_inner().state()),
    }
}

// ---------------------------------------------------------------------------------------
// The control API.

/// Switches a device on or off: off, it answers and publishes nothing (unplugged).
async fn set_online(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    text: String,
) -> Api<StatusCode> {
    let on: bool = body(&text, "true or false")?;
    let flag = s
        .online
        .get(&id)
        .ok_or_else(|| not_found(format!("no simulated device '{id}'")))?;
    flag.store(on, Ordering::Relaxed);
    Ok(StatusCode::NO_CONTENT)
}

struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.0,
            [("content-type", "application/problem+json")],
            serde_json::json!({"title": self.0.canonical_reason(), "status": self.0.as_u16(), "detail": self.1})
                .to_string(),
        )
            .into_response()
    }
}

type Api<T> = Result<T, ApiError>;

fn not_found(what: String) -> ApiError {
    ApiError(StatusCode::NOT_FOUND, what)
}

fn bad(what: String) -> ApiError {
    ApiError(StatusCode::UNPROCESSABLE_ENTITY, what)
}

fn body<T: for<'de> Deserialize<'de>>(text: &str, expected: &str) -> Api<T> {
    serde_json::from_str(text).map_err(|e| bad(format!("the body must be {expected}: {e}")))
}

fn range(shared: &Shared, id: u16) -> Api<Arc<Mutex<RangeSim>>> {
    shared
        .ranges
        .get(&id)
        .cloned()
        .ok_or_else(|| not_found(format!("the simulated room has no range {id}")))
}

fn with_range<T>(shared: &Shared, id: u16, f: impl FnOnce(&mut RangeSim) -> Api<T>) -> Api<T> {
    let r = range(shared, id)?;
    let mut r = r.lock().map_err(|_| {
        ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            "range lock poisoned".into(),
        )
    })?;
    f(&mut r)
}

/// Gaps are 0 (the left wall gap) to n (the right wall gap); aisles are 1 to n - 1.
fn check_gap(range: u16, sim: &RangeSim, gap: u16) -> Api<()> {
    if gap > sim.aisle_count() + 1 {
        return Err(not_found(format!(
            "range {range} has aisles 1 to {} (0 and {} are the gaps at the walls)",
            sim.aisle_count(),
            sim.aisle_count() + 1
        )));
    }
    Ok(())
}

#[derive(Deserialize)]
struct Since {
    #[serde(default)]
    since: u64,
}

fn control_router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/sim/state", get(|State(s): State<Arc<Shared>>| async move { Json(state(&s)) }))
        .route(
            "/sim/ranges/{range}/aisles/{aisle}/occupied",
            put(|State(s): State<Arc<Shared>>, Path((r, k)): Path<(u16, u16)>, text: String| async move {
                let on: bool = body(&text, "true or false")?;
                with_range(&s, r, |sim| {
                    check_gap(r, sim, k)?;
                    sim.set_occupied(k, on);
                    Ok(Json(sim.state()))
                })
            }),
        )
        .route(
            "/sim/ranges/{range}/aisles/{aisle}/obstacle",
            put(|State(s): State<Arc<Shared>>, Path((r, k)): Path<(u16, u16)>, text: String| async move {
                let on: bool = body(&text, "true or false")?;
                with_range(&s, r, |sim| {
                    check_gap(r, sim, k)?;
                    sim.set_obstacle(k, on);
                    Ok(Json(sim.state()))
                })
            }),
        )
        .route(
            "/sim/ranges/{range}/plc",
            put(|State(s): State<Arc<Shared>>, Path(r): Path<u16>, text: String| async move {
                let plc: PlcSettings = body(&text, r#"{"interlocks":BOOL,"scan_delay_ms":MS,"watchdog":BOOL}"#)?;
                if plc.scan_delay_ms > 10_000 {
                    return Err(bad("scan_delay_ms is at most 10000".into()));
                }
                with_range(&s, r, |sim| {
                    sim.set_plc(plc);
                    Ok(Json(sim.state()))
                })
            })
            .get(|State(s): State<Arc<Shared>>, Path(r): Path<u16>| async move {
                with_range(&s, r, |sim| Ok(Json(sim.plc())))
            }),
        )
        .route(
            "/sim/ranges/{range}/commands",
            get(|State(s): State<Arc<Shared>>, Path(r): Path<u16>, Query(q): Query<Since>| async move {
                with_range(&s, r, |sim| Ok(Json(sim.commands_since(q.since))))
            }),
        )
        .route(
            "/sim/ranges/{range}/halts",
            get(|State(s): State<Arc<Shared>>, Path(r): Path<u16>| async move {
                with_range(&s, r, |sim| Ok(Json(sim.halts())))
            }),
        )
        .route(
            "/sim/ranges/{range}/estop",
            put(|State(s): State<Arc<Shared>>, Path(r): Path<u16>, text: String| async move {
                let on: bool = body(&text, "true or false")?;
                with_range(&s, r, |sim| {
                    sim.set_estop(on);
                    Ok(Json(sim.state()))
                })
            }),
        )
        .route(
            // Someone pushes a carriage's local "open" button: the PLC moves the range with
            // no command from the controller (what an unauthorised client on the bus, or a
            // local control panel, does).
            "/sim/ranges/{range}/local-open",
            put(|State(s): State<Arc<Shared>>, Path(r): Path<u16>, text: String| async move {
                let aisle: u16 = body(&text, "an aisle number")?;
                with_range(&s, r, |sim| {
                    check_gap(r, sim, aisle)?;
                    sim.command(crate::shelving::Command::OpenAisle { aisle })
                        .map_err(|e| ApiError(StatusCode::CONFLICT, format!("{e:?}")))?;
                    Ok(Json(sim.state()))
                })
            }),
        )
        .route(
            "/sim/ranges/{range}/fault",
            put(|State(s): State<Arc<Shared>>, Path(r): Path<u16>, text: String| async move {
                let fault: Option<Fault> = body(
                    &text,
                    r#"null, {"kind":"motor","carriage":N}, {"kind":"jam","carriage":N} or {"kind":"other","code":N}"#,
                )?;
                with_range(&s, r, |sim| {
                    sim.set_fault(fault);
                    Ok(Json(sim.state()))
                })
            }),
        )
        .route(
            "/sim/boxes/{archive_no}/move",
            post(|State(s): State<Arc<Shared>>, Path(no): Path<String>, text: String| async move {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct To {
                    shelf: String,
                }
                let to: To = body(&text, r#"{"shelf":"ADDRESS"}"#)?;
                let mut w = s.world.lock().map_err(|_| bad("world lock poisoned".into()))?;
                w.move_box(&no, &to.shelf).map_err(|e| match e {
                    crate::world::WorldError::NoBox(_) => not_found(e.to_string()),
                    e => bad(e.to_string()),
                })?;
                Ok::<_, ApiError>(StatusCode::NO_CONTENT)
            }),
        )
        .route(
            "/sim/boxes/{archive_no}",
            axum::routing::delete(|State(s): State<Arc<Shared>>, Path(no): Path<String>| async move {
                let mut w = s.world.lock().map_err(|_| bad("world lock poisoned".into()))?;
                w.remove_box(&no).map_err(|e| not_found(e.to_string()))?;
                Ok::<_, ApiError>(StatusCode::NO_CONTENT)
            }),
        )
        .route(
            "/sim/tags",
            post(|State(s): State<Arc<Shared>>, text: String| async move {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct Stray {
                    epc: String,
                    shelf: String,
                }
                let t: Stray = body(&text, r#"{"epc":"HEX","shelf":"ADDRESS"}"#)?;
                let mut w = s.world.lock().map_err(|_| bad("world lock poisoned".into()))?;
                w.add_stray(&t.epc, &t.shelf).map_err(|e| bad(e.to_string()))?;
                Ok::<_, ApiError>(StatusCode::CREATED)
            }),
        )
        .route(
            "/sim/tags/{epc}/xpc",
            put(|State(s): State<Arc<Shared>>, Path(epc): Path<String>, text: String| async move {
                let words: Vec<u16> = body(&text, "[W1], [W1, W2] or [] (XPC words)")?;
                let mut w = s.world.lock().map_err(|_| bad("world lock poisoned".into()))?;
                w.set_xpc(&epc, words).map_err(|e| match e {
                    crate::world::WorldError::NoTag(_) => not_found(e.to_string()),
                    e => bad(e.to_string()),
                })?;
                Ok::<_, ApiError>(StatusCode::NO_CONTENT)
            }),
        )
        .route(
            "/sim/environment/sensors/{id}",
            put(|State(s): State<Arc<Shared>>, Path(id): Path<String>, text: String| async move {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct Forced {
                    temperature: f64,
                    humidity: f64,
                }
                let forced: Option<Forced> = body(&text, r#"{"temperature":T,"humidity":H} or null"#)?;
                if let Some(f) = &forced
                    && !((-40.0..=80.0).contains(&f.temperature) && (0.0..=100.0).contains(&f.humidity))
                {
                    return Err(bad("temperature -40 to 80 °C, humidity 0 to 100 %".into()));
                }
                let mut c = s.climate.lock().map_err(|_| bad("climate lock poisoned".into()))?;
                if !c.force(&id, forced.map(|f| (f.temperature, f.humidity))) {
                    return Err(not_found(format!("no simulated climate sensor '{id}'")));
                }
                Ok::<_, ApiError>(Json(c.state()))
            }),
        )
        .route(
            "/sim/environment/binary/{id}",
            put(|State(s): State<Arc<Shared>>, Path(id): Path<String>, text: String| async move {
                let on: bool = body(&text, "true or false")?;
                let mut c = s.climate.lock().map_err(|_| bad("climate lock poisoned".into()))?;
                if !c.set_binary(&id, on) {
                    return Err(not_found(format!("no simulated smoke, water or door sensor '{id}'")));
                }
                Ok::<_, ApiError>(Json(c.state()))
            }),
        )
        .route(
            "/sim/gates/{gate}/walk",
            post(|State(s): State<Arc<Shared>>, Path(gate): Path<String>, text: String| async move {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct Walk {
                    archive_no: Option<String>,
                    epc: Option<String>,
                    direction: String,
                }
                let walk: Walk = body(&text, r#"{"archive_no":"…" or "epc":"HEX", "direction":"out|in"}"#)?;
                let out = match walk.direction.as_str() {
                    "out" => true,
                    "in" => false,
                    _ => return Err(bad("direction is out or in".into())),
                };
                let epc = match (walk.archive_no, walk.epc) {
                    (Some(no), None) => {
                        let w = s.world.lock().map_err(|_| bad("world lock poisoned".into()))?;
                        w.snapshot()
                            .into_iter()
                            .find(|t| t.archive_no.as_deref() == Some(no.as_str()))
                            .map(|t| t.epc)
                            .ok_or_else(|| not_found(format!("no tagged box '{no}' in the simulated room")))?
                    }
                    (None, Some(epc)) => epc.to_ascii_uppercase(),
                    _ => return Err(bad("name archive_no or epc".into())),
                };
                let tx = s.gates.get(&gate).ok_or_else(|| not_found(format!("no simulated gate '{gate}'")))?;
                tx.send((epc, out)).await.map_err(|_| bad("the gate has stopped".into()))?;
                Ok::<_, ApiError>(StatusCode::ACCEPTED)
            }),
        )
        .route("/sim/readers/{reader}/online", put(set_online))
        .route("/sim/devices/{device}/online", put(set_online))
        .route(
            "/sim/devices/{device}/line",
            put(|State(s): State<Arc<Shared>>, Path(id): Path<String>, text: String| async move {
                let faults: LineFaults = body(&text, r#"{"garbage":P,"drop":P,"delay_ms":MS,"cut":BOOL}"#)?;
                let link = s
                    .lines
                    .get(&id)
                    .ok_or_else(|| not_found(format!("no simulated serial device '{id}'")))?;
                link.set_faults(faults);
                Ok::<_, ApiError>(StatusCode::NO_CONTENT)
            }),
        )
        .fallback(|| async { not_found("no such simulator route; see README (Simulator)".into()) })
        .with_state(shared)
}

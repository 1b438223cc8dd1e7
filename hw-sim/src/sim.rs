//! The running simulator: devices on their wires, physics ticking, the control API.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use stackroom_wire::profile::{Mercury, ModbusShelving, R2000};

use crate::clock::Clock;
use crate::mercury_reader::MercuryReader;
use crate::modbus_shelving::{self, ModbusController};
use crate::r2000_reader::R2000Reader;
use crate::rf::{Radio, RfParams};
use crate::serial_link::{LineFaults, SerialLink};
use crate::shelving::{Fault, RangeSim, RangeSpec, RangeState};
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
    R2000 { settings: R2000, baud: u32 },
    Mercury { settings: Mercury, baud: u32 },
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
}

/// Where a simulated device can be reached.
#[derive(Debug, Clone, Serialize)]
pub struct Endpoint {
    pub device: String,
    pub kind: &'static str,
    /// The serial device to open (for serial devices).
    pub path: Option<String>,
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
    #[error("placement of {archive_no}: {message}")]
    Placement { archive_no: String, message: String },
    #[error("cannot serve the control API on {addr}: {source}")]
    Control {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

struct Shared {
    world: Arc<Mutex<World>>,
    ranges: HashMap<u16, Arc<Mutex<RangeSim>>>,
    readers: HashMap<String, Arc<AtomicBool>>,
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
        let mut readers = HashMap::new();
        let mut seeds = spec.seed;
        let mut next_seed = || {
            seeds = seeds
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            seeds
        };

        for r in &spec.ranges {
            let sim = Arc::new(Mutex::new(RangeSim::new(r.range.clone())));
            ranges.insert(r.range.id, sim.clone());
            let link = SerialLink::open(next_seed()).map_err(|source| SimError::Line {
                device: r.device.clone(),
                source,
            })?;
            match &r.wire {
                ShelvingWire::ModbusRtu { map, unit, baud } => {
                    let controller = ModbusController::new(sim.clone(), map.clone(), *unit);
                    tasks.push(tokio::spawn(modbus_shelving::serve(
                        link.device_path.clone(),
                        *baud,
                        controller,
                    )));
                }
            }
            endpoints.push(Endpoint {
                device: r.device.clone(),
                kind: "shelving/modbus-rtu",
                path: Some(link.path.clone()),
            });
            lines.insert(r.device.clone(), link);
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
            readers.insert(r.device.clone(), online.clone());
            let link = SerialLink::open(next_seed()).map_err(|source| SimError::Line {
                device: r.device.clone(),
                source,
            })?;
            let radio = Radio::new(next_seed(), spec.rf);
            let kind = match &r.wire {
                ReaderWire::R2000 { settings, baud } => {
                    let reader = R2000Reader {
                        id: r.device.clone(),
                        address: settings.address,
                        ports: settings.ports,
                        antennas,
                        world: world.clone(),
                        radio,
                        online,
                        clock,
                    };
                    tasks.push(tokio::spawn(reader.serve(link.device_path.clone(), *baud)));
                    "reader/r2000"
                }
                ReaderWire::Mercury { settings, baud } => {
                    let reader = MercuryReader::new(
                        r.device.clone(),
                        settings.ports,
                        antennas,
                        world.clone(),
                        radio,
                        online,
                        clock,
                    );
                    tasks.push(tokio::spawn(reader.serve(link.device_path.clone(), *baud)));
                    "reader/mercury"
                }
            };
            endpoints.push(Endpoint {
                device: r.device.clone(),
                kind,
                path: Some(link.path.clone()),
            });
            lines.insert(r.device.clone(), link);
        }

        let shared = Arc::new(Shared {
            world,
            ranges,
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
        .map(|(id, on)| ReaderState {
            device: id.clone(),
            online: on.load(Ordering::Relaxed),
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
    }
}

// ---------------------------------------------------------------------------------------
// The control API.

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

fn control_router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/sim/state", get(|State(s): State<Arc<Shared>>| async move { Json(state(&s)) }))
        .route(
            "/sim/ranges/{range}/aisles/{aisle}/occupied",
            put(|State(s): State<Arc<Shared>>, Path((r, k)): Path<(u16, u16)>, text: String| async move {
                let on: bool = body(&text, "true or false")?;
                with_range(&s, r, |sim| {
                    if k == 0 || k > sim.aisle_count() {
                        return Err(not_found(format!("range {r} has aisles 1 to {}", sim.aisle_count())));
                    }
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
                    if k == 0 || k > sim.aisle_count() {
                        return Err(not_found(format!("range {r} has aisles 1 to {}", sim.aisle_count())));
                    }
                    sim.set_obstacle(k, on);
                    Ok(Json(sim.state()))
                })
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
            "/sim/readers/{reader}/online",
            put(|State(s): State<Arc<Shared>>, Path(id): Path<String>, text: String| async move {
                let on: bool = body(&text, "true or false")?;
                let flag = s
                    .readers
                    .get(&id)
                    .ok_or_else(|| not_found(format!("no simulated reader '{id}'")))?;
                flag.store(on, Ordering::Relaxed);
                Ok::<_, ApiError>(StatusCode::NO_CONTENT)
            }),
        )
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

//! Motorized shelving: drivers, motion planning, the range controllers, operations.
//!
//! - [`plan`]: geometry, targets and the gaps a motion touches (sans-IO);
//! - [`device`]: what a driver offers (state on a watch channel, orders with deadlines on a
//!   Stop lane and a command lane) and the one loop every driver runs in;
//! - [`modbus`], [`mqtt`], [`framed`]: the protocols, chosen per device by its profile;
//! - [`controller`]: one task per range, the only thing that sends motion commands, and
//!   the rules that keep people safe (its module doc).
//!
//! [`Shelving`] starts a driver and a controller for every shelving device of the room and
//! is what the API talks to. Operations (each open, close, ventilate, lock, unlock, stop)
//! get an id and go `queued → starting → moving → done | refused | failed | stopped`, with
//! `stopping` and `unconfirmed` on the way when a stop is under way or the controller
//! cannot confirm the carriages' state; every change of a range's state and of an operation
//! is an [`Event`] on a broadcast channel (SSE, MQTT).

pub mod controller;
pub mod device;
pub mod framed;
pub mod modbus;
pub mod mqtt;
pub mod plan;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use stackroom_wire::profile::Protocol;
use stackroom_wire::shelving::Refusal as WireRefusal;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tracing::Instrument;
use utoipa::ToSchema;

use crate::config::{RoomConfig, Transport};
use controller::{CarriageView, Controller, DeviceTiming, RangeView, Request, RoomAlarms};
pub use controller::{LinkState, RangeMotion};
use plan::{Geometry, Goal};

/// Why a request was not taken: a machine-readable reason and words for a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub reason: &'static str,
    pub message: String,
}

impl Refusal {
    pub fn new(reason: &'static str, message: impl Into<String>) -> Refusal {
        Refusal {
            reason,
            message: message.into(),
        }
    }

    /// A device's own reason, as one of ours.
    pub fn known(reason: &str) -> &'static str {
        match WireRefusal::from_name(reason) {
            Some(r) => r.name(),
            None => "refused_by_device",
        }
    }

    /// A device's own reason, in words.
    pub fn words(reason: &str) -> String {
        match WireRefusal::from_name(reason) {
            Some(WireRefusal::Estop) => "its emergency stop is pressed".into(),
            Some(WireRefusal::Locked) => "it is locked".into(),
            Some(WireRefusal::Fault) => "it has a fault".into(),
            Some(WireRefusal::AisleOccupied) => {
                "someone is in an aisle the motion would close".into()
            }
            Some(WireRefusal::Obstacle) => "its safety sweep sees an obstacle".into(),
            Some(WireRefusal::NoSuchAisle) => "it has no such aisle".into(),
            Some(WireRefusal::Watchdog) => "its watchdog missed the controller's heartbeat".into(),
            Some(WireRefusal::Expired) => "the command came too late".into(),
            None => reason.into(),
        }
    }
}

/// Where an operation is. `starting` (the pre-motion warning), `moving`, `unconfirmed`
/// (the controller cannot confirm the carriages' state: a lost reply, a stop or lock not
/// yet confirmed) and `stopping` go on; `done`, `refused`, `failed` and `stopped` are ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OpState {
    Queued,
    Starting,
    Moving,
    Unconfirmed,
    Stopping,
    Done,
    Refused,
    Failed,
    Stopped,
}

impl OpState {
    pub fn is_final(self) -> bool {
        matches!(
            self,
            OpState::Done | OpState::Refused | OpState::Failed | OpState::Stopped
        )
    }

    pub fn name(self) -> &'static str {
        match self {
            OpState::Queued => "queued",
            OpState::Starting => "starting",
            OpState::Moving => "moving",
            OpState::Unconfirmed => "unconfirmed",
            OpState::Stopping => "stopping",
            OpState::Done => "done",
            OpState::Refused => "refused",
            OpState::Failed => "failed",
            OpState::Stopped => "stopped",
        }
    }
}

impl std::fmt::Display for OpState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One operation on a range.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct OperationView {
    pub id: String,
    pub range: u16,
    /// `open`, `close`, `ventilate`, `lock`, `unlock`, `stop`.
    pub kind: String,
    /// Who asked for it (the API token's name, `scheduler`, …).
    pub actor: String,
    pub state: OpState,
    pub reason: Option<String>,
    pub message: Option<String>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// Something that happened, for the event stream.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
pub enum Event {
    Range(RangeView),
    Operation(OperationView),
}

/// Every operation since the start, by id.
#[derive(Clone, Default)]
pub struct Operations {
    all: Arc<Mutex<HashMap<String, OperationView>>>,
    next: Arc<AtomicU64>,
}

impl Operations {
    pub fn create(&self, range: u16, kind: &str, actor: &str) -> String {
        let id = format!("op-{}", self.next.fetch_add(1, Ordering::Relaxed) + 1);
        let op = OperationView {
            id: id.clone(),
            range,
            kind: kind.into(),
            actor: actor.into(),
            state: OpState::Queued,
            reason: None,
            message: None,
            started_at: Utc::now(),
            finished_at: None,
        };
        if let Ok(mut all) = self.all.lock() {
            all.insert(id.clone(), op);
        }
        id
    }

    pub fn get(&self, id: &str) -> Option<OperationView> {
        self.all.lock().ok()?.get(id).cloned()
    }

    /// Moves an operation on (an ended one stays as it ended); `reason`: why, in a code and
    /// in words. Returns it as it is now, if it changed.
    pub fn update(
        &self,
        id: &str,
        state: OpState,
        reason: Option<(&str, String)>,
    ) -> Option<OperationView> {
        let mut all = self.all.lock().ok()?;
        let op = all.get_mut(id)?;
        if op.state.is_final() {
            return None;
        }
        op.state = state;
        if state.is_final() {
            op.finished_at = Some(Utc::now());
        }
        if let Some((reason, message)) = reason {
            op.reason = Some(reason.into());
            op.message = Some(message);
        }
        Some(op.clone())
    }
}

/// Why a device of the room could not be started: the config names something no driver
/// runs, or the device bus cannot be reached as configured.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("device '{device}': no range {range} in the layout")]
    NoRange { device: String, range: u16 },
    #[error("device '{device}': {needs}")]
    Unsupported { device: String, needs: String },
    #[error("the device bus")]
    Bus(#[from] crate::bus::BusError),
}

impl StartError {
    fn unsupported(device: &str, needs: impl Into<String>) -> StartError {
        StartError::Unsupported {
            device: device.to_string(),
            needs: needs.into(),
        }
    }
}

/// Why a shelving request failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ShelvingError {
    #[error("the room has no range {0}")]
    NoSuchRange(u16),
    #[error("{}", .0.message)]
    Refused(Refusal),
    #[error("the controller of range {0} has stopped")]
    Gone(u16),
}

struct RangeHandle {
    requests: mpsc::Sender<Request>,
    view: watch::Receiver<RangeView>,
    alarms: watch::Sender<RoomAlarms>,
}

/// Where drivers find their devices when the config's wiring is overridden (the demo's
/// simulated room): serial paths and Modbus TCP addresses by device, and the MQTT broker.
#[derive(Debug, Clone, Default)]
pub struct Wiring {
    pub serial_paths: HashMap<String, String>,
    pub tcp_addresses: HashMap<String, String>,
    /// The broker and the controller's credentials, overriding the config's.
    pub mqtt: Option<crate::bus::Endpoint>,
}

impl Wiring {
    /// Every device where the simulator serves it, and the broker.
    #[cfg(feature = "demo")]
    pub fn of(simulator: &hw_sim::Simulator, mqtt: Option<crate::bus::Endpoint>) -> Wiring {
        let find = |pick: fn(&hw_sim::sim::Endpoint) -> Option<&String>| {
            simulator
                .endpoints
                .iter()
                .filter_map(|e| Some((e.device.clone(), pick(e)?.clone())))
                .collect()
        };
        Wiring {
            serial_paths: find(|e| e.path.as_ref()),
            tcp_addresses: find(|e| e.address.as_ref()),
            mqtt,
        }
    }

    /// The MQTT broker and the controller's credentials: the override, else the config's.
    pub fn broker(&self, config: &RoomConfig) -> Result<crate::bus::Endpoint, StartError> {
        match &self.mqtt {
            Some(e) => Ok(e.clone()),
            None => Ok(crate::bus::endpoint(config)?),
        }
    }
}

/// Who stops the ranges when the controller shuts down.
pub const SHUTDOWN_ACTOR: &str = "stackroom (shutdown)";

/// The shelving of the room; cheap to clone.
#[derive(Clone)]
pub struct Shelving {
    ranges: Arc<BTreeMap<u16, RangeHandle>>,
    pub operations: Operations,
    events: broadcast::Sender<Event>,
    /// Set at shutdown: no new motion.
    closing: Arc<std::sync::atomic::AtomicBool>,
    /// The drivers, the range controllers and the audit of operations.
    tasks: crate::link::Tasks,
}

impl Shelving {
    /// Records every operation in the audit trail when it ends: who asked, what, how it ended.
    pub fn audit_operations(&self, audit: &crate::audit::Audit) {
        let mut events = self.subscribe();
        let audit = audit.clone();
        self.tasks.spawn(async move {
            loop {
                match events.recv().await {
                    Ok(Event::Operation(op)) if op.finished_at.is_some() => {
                        let outcome = match &op.reason {
                            Some(reason) if op.state != OpState::Done => {
                                format!("{}: {reason}", op.state)
                            }
                            _ => op.state.to_string(),
                        };
                        let action = format!("{} range {} ({})", op.kind, op.range, op.id);
                        audit
                            .record(
                                crate::audit::NewEntry::new(&op.actor, "motion", action, outcome)
                                    .detail(op.message.clone().unwrap_or_default()),
                            )
                            .await;
                    }
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        tracing::error!(
                            missed = n,
                            "the audit trail fell behind the shelving events"
                        );
                        audit
                            .record(crate::audit::NewEntry::new(
                                "stackroom",
                                "motion",
                                "event stream",
                                format!("{n} operation events missed"),
                            ))
                            .await;
                    }
                    Err(_) => return,
                }
            }
        });
    }

    /// No motorized ranges (until [`Shelving::start`] is called with the room's devices).
    pub fn empty() -> Shelving {
        Shelving {
            ranges: Arc::new(BTreeMap::new()),
            operations: Operations::default(),
            events: broadcast::channel(16).0,
            closing: Arc::default(),
            tasks: Default::default(),
        }
    }

    /// Starts a driver and a controller for each shelving device of the room.
    pub fn start(config: &RoomConfig, wiring: &Wiring) -> Result<Shelving, StartError> {
        let operations = Operations::default();
        let (events, _) = broadcast::channel(1024);
        let mut ranges = BTreeMap::new();
        let tasks = crate::link::Tasks::default();
        let boot_ms = Utc::now().timestamp_millis();
        for device in config.devices.iter().filter(|d| d.range.is_some()) {
            let range_id = device.range.unwrap_or_default();
            let layout = config
                .layout
                .range(range_id)
                .ok_or_else(|| StartError::NoRange {
                    device: device.id.clone(),
                    range: range_id,
                })?;
            let profile = &device.spec;
            let (handle, ports) = device::channel();
            let timing = profile.timing.clone();
            let carriages = layout.carriage_count();
            let watchdog = profile
                .watchdog
                .as_ref()
                .map(|w| Duration::from_millis(w.period_ms));
            let id = device.id.clone();
            match (profile.device.protocol, &device.transport) {
                (Protocol::Modbus, transport) => {
                    let map = profile.modbus.clone().ok_or_else(|| {
                        StartError::unsupported(&device.id, "a modbus profile needs [modbus]")
                    })?;
                    let (wire, unit) = match transport {
                        Transport::Serial { path, baud, unit } => (
                            modbus::Wire::Rtu {
                                path: wiring
                                    .serial_paths
                                    .get(&device.id)
                                    .cloned()
                                    .unwrap_or_else(|| path.clone()),
                                baud: *baud,
                            },
                            unit.unwrap_or(map.unit),
                        ),
                        Transport::ModbusTcp { address, unit } => (
                            modbus::Wire::Tcp {
                                address: wiring
                                    .tcp_addresses
                                    .get(&device.id)
                                    .cloned()
                                    .unwrap_or_else(|| address.clone()),
                            },
                            unit.unwrap_or(map.unit),
                        ),
                        Transport::Mqtt { .. } => {
                            return Err(StartError::unsupported(
                                &device.id,
                                "a Modbus device needs a serial or modbus_tcp transport",
                            ));
                        }
                    };
                    let connector = modbus::Modbus {
                        wire,
                        unit,
                        map,
                        timing: timing.clone(),
                        carriages,
                    };
                    tasks.spawn(
                        device::run(id, connector, watchdog, ports)
                            .instrument(tracing::info_span!("device", device = %device.id)),
                    );
                }
                (Protocol::FramedSerial, Transport::Serial { path, baud, .. }) => {
                    let framed = profile.framed.clone().ok_or_else(|| {
                        StartError::unsupported(
                            &device.id,
                            "a framed-serial profile needs [framed]",
                        )
                    })?;
                    let path = wiring
                        .serial_paths
                        .get(&device.id)
                        .cloned()
                        .unwrap_or_else(|| path.clone());
                    let connector = framed::Framed {
                        path,
                        baud: *baud,
                        profile: framed,
                        timing: timing.clone(),
                        carriages,
                    };
                    tasks.spawn(
                        device::run(id, connector, watchdog, ports)
                            .instrument(tracing::info_span!("device", device = %device.id)),
                    );
                }
                (Protocol::MqttJson, Transport::Mqtt { prefix }) => {
                    let topics = profile.mqtt_json.clone().ok_or_else(|| {
                        StartError::unsupported(
                            &device.id,
                            "an mqtt-json profile needs [mqtt_json]",
                        )
                    })?;
                    let connector = mqtt::MqttJson {
                        device: device.id.clone(),
                        broker: wiring.broker(config)?,
                        prefix: prefix.clone(),
                        topics,
                        timing: timing.clone(),
                        boot_ms,
                    };
                    tasks.spawn(
                        device::run(id, connector, watchdog, ports)
                            .instrument(tracing::info_span!("device", device = %device.id)),
                    );
                }
                (protocol, _) => {
                    return Err(StartError::unsupported(
                        &device.id,
                        format!("no shelving driver for protocol {protocol} yet"),
                    ));
                }
            }
            let geometry = Geometry::of(layout);
            let initial = RangeView {
                range: range_id,
                carriages: layout
                    .carriages
                    .iter()
                    .map(|c| CarriageView {
                        index: c.index,
                        position_mm: None,
                        fixed: c.fixed,
                    })
                    .collect(),
                open_aisle: None,
                motion: RangeMotion::Unknown,
                locked: false,
                estop: false,
                faults: vec![],
                occupied_aisles: vec![],
                obstacle: false,
                link: LinkState::Down,
                link_error: Some("not connected yet".into()),
                updated_at: None,
                operation: None,
                stop_pending: false,
                interlocks: vec![],
                unexpected_motion: false,
            };
            let (view_tx, view_rx) = watch::channel(initial);
            let (req_tx, req_rx) = mpsc::channel(64);
            let (alarms_tx, alarms_rx) = watch::channel(RoomAlarms::new());
            let controller = Controller {
                range: range_id,
                geometry,
                driver: handle,
                timing: DeviceTiming::of(profile),
                settings: config.motion.clone(),
                operations: operations.clone(),
                events: events.clone(),
                view: view_tx,
                alarms: alarms_rx,
                last_event_ms: Default::default(),
            };
            tasks.spawn(
                controller
                    .run(req_rx)
                    .instrument(tracing::info_span!("range", range = range_id)),
            );
            ranges.insert(
                range_id,
                RangeHandle {
                    requests: req_tx,
                    view: view_rx,
                    alarms: alarms_tx,
                },
            );
        }
        Ok(Shelving {
            ranges: Arc::new(ranges),
            operations,
            events,
            closing: Arc::default(),
            tasks,
        })
    }

    pub fn ranges(&self) -> Vec<RangeView> {
        self.ranges
            .values()
            .map(|r| r.view.borrow().clone())
            .collect()
    }

    pub fn range(&self, id: u16) -> Option<RangeView> {
        self.ranges.get(&id).map(|r| r.view.borrow().clone())
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// Raises (`Some(words)`) or clears a room alarm that forbids motion in `range`; `key`
    /// tells alarms apart. Unknown ranges are ignored.
    pub fn set_room_alarm(&self, range: u16, key: &str, alarm: Option<String>) {
        if let Some(r) = self.ranges.get(&range) {
            r.alarms.send_if_modified(|alarms| match alarm {
                Some(words) => {
                    alarms.insert(key.to_string(), words.clone()).as_ref() != Some(&words)
                }
                None => alarms.remove(key).is_some(),
            });
        }
    }

    async fn ask(
        &self,
        range: u16,
        make: impl FnOnce(oneshot::Sender<Result<String, Refusal>>) -> Request,
    ) -> Result<String, ShelvingError> {
        let handle = self
            .ranges
            .get(&range)
            .ok_or(ShelvingError::NoSuchRange(range))?;
        let (tx, rx) = oneshot::channel();
        handle
            .requests
            .send(make(tx))
            .await
            .map_err(|_| ShelvingError::Gone(range))?;
        rx.await
            .map_err(|_| ShelvingError::Gone(range))?
            .map_err(ShelvingError::Refused)
    }

    /// Asks range `range` to move (`kind`: open, close, ventilate) on behalf of `actor`, a
    /// person (`automatic` false) or a rule of the room's.
    pub async fn motion(
        &self,
        range: u16,
        kind: &'static str,
        goal: Goal,
        actor: &str,
        automatic: bool,
    ) -> Result<String, ShelvingError> {
        if self.closing.load(Ordering::SeqCst) {
            return Err(ShelvingError::Refused(Refusal::new(
                "shutting_down",
                "the controller is shutting down",
            )));
        }
        let actor = actor.to_string();
        self.ask(range, |reply| Request::Motion {
            kind,
            goal,
            actor,
            automatic,
            reply,
        })
        .await
    }

    /// Locks or unlocks: the operation ends `done` once the device confirmed it.
    pub async fn lock(&self, range: u16, lock: bool, actor: &str) -> Result<String, ShelvingError> {
        let actor = actor.to_string();
        self.ask(range, |reply| Request::Lock { lock, actor, reply })
            .await
    }

    /// Stops: the operation ends `done` once the device confirmed the range at rest.
    pub async fn stop(&self, range: u16, actor: &str) -> Result<String, ShelvingError> {
        let actor = actor.to_string();
        self.ask(range, |reply| Request::Stop { actor, reply })
            .await
    }

    /// Ends the drivers and the range controllers (after [`Shelving::stop_all`]): their
    /// ports and broker sessions are closed when this returns.
    pub async fn shut_down(&self) {
        self.tasks.shut_down().await;
    }

    /// The drivers, controllers and audit task still running.
    pub fn tasks_running(&self) -> usize {
        self.tasks.running()
    }

    /// At shutdown: takes no new motion, stops every range that is not known to be at rest
    /// (moving, starting, stopping, or unknown), and waits up to `within` for each stop to
    /// end. Returns, per range stopped, how its stop ended.
    pub async fn stop_all(&self, within: Duration) -> Vec<(u16, Result<(), String>)> {
        self.closing.store(true, Ordering::SeqCst);
        let mut stops = Vec::new();
        for (&range, handle) in self.ranges.iter() {
            let view = handle.view.borrow().clone();
            let at_rest = matches!(view.motion, RangeMotion::Idle | RangeMotion::Stopped)
                && view.operation.is_none()
                && !view.stop_pending;
            if at_rest {
                continue;
            }
            match self.stop(range, SHUTDOWN_ACTOR).await {
                Ok(id) => stops.push((range, Ok(id))),
                Err(e) => stops.push((range, Err(e.to_string()))),
            }
        }
        let deadline = tokio::time::Instant::now() + within;
        let mut out = Vec::new();
        for (range, stop) in stops {
            let ended = match stop {
                Err(e) => Err(e),
                Ok(id) => loop {
                    match self.operations.get(&id) {
                        Some(op) if op.state == OpState::Done => break Ok(()),
                        Some(op) if op.state.is_final() => {
                            break Err(format!("{}: {}", op.state, op.message.unwrap_or_default()));
                        }
                        _ if tokio::time::Instant::now() >= deadline => {
                            break Err("not confirmed before the process ended".into());
                        }
                        _ => tokio::time::sleep(Duration::from_millis(20)).await,
                    }
                },
            };
            out.push((range, ended));
        }
        out
    }
}

//! The room's environment: temperature and humidity per zone, smoke, water and door
//! sensors, the dehumidifiers and the ventilation of the ranges.
//!
//! Drivers ([`driver`]) turn what devices say into observations; one runner task takes
//! them in order and hands them to the [`engine`], a state machine without I/O that is the
//! only one that decides and answers with effects for the runner to carry out. It keeps
//! each point's latest value (stale once older than its profile's `stale_after_ms`, never
//! reused), writes the history ([`history`]), raises and clears alarms (a condition must
//! hold for `hold_s`;
//! a value clears back inside its limit by a margin, see [`rules`]), switches the
//! dehumidifiers with hysteresis and minimum on/off times, ventilates idle ranges when a
//! zone is damp or by schedule, and on smoke or water runs the configured actions (by
//! default: stop and lock every range). Motion goes through the range controllers like
//! any other request, so every interlock still applies.

pub mod driver;
pub mod engine;
pub mod history;
pub mod rules;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};
use serde::Serialize;
use tokio::sync::{broadcast, mpsc};
use utoipa::ToSchema;

use crate::audit::{Audit, NewEntry};
use crate::config::environment::{Address, EnvironmentConfig, PointKind};
use crate::config::{RoomConfig, Transport};
use crate::shelving::plan::Goal;
use crate::shelving::{Shelving, StartError, Wiring};
use crate::store::text::Named;
use crate::store::{Store, StoreError};
use crate::time::wall;
use driver::{DriverPoint, Report, SwitchCommand};
use engine::{Effect, Engine, Now, Snapshot};
use history::{History, Retention};

/// The actor of everything the environment does.
pub const ACTOR: &str = "environment";

/// What a point's reading says now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PointState {
    Ok,
    /// Outside its limits, not yet held long enough for an alarm.
    Warning,
    Alarm,
    /// No reading for longer than its profile allows; the last one is not shown as now.
    Stale,
}

/// A point as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct PointView {
    pub id: String,
    pub kind: PointKind,
    pub zone: String,
    /// °C, climate points.
    pub temperature: Option<f64>,
    /// % relative humidity, climate points.
    pub humidity: Option<f64>,
    /// Binary sensors: 1 tripped (smoke, water, door open), 0 not; actuators: 1 on, 0 off.
    pub value: Option<f64>,
    pub state: PointState,
    /// When the reading was taken.
    pub at: Option<DateTime<Utc>>,
    /// Actuators: the state the controller wants.
    pub wanted: Option<bool>,
}

/// What an alarm is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlarmKind {
    TemperatureHigh,
    TemperatureLow,
    HumidityHigh,
    HumidityLow,
    /// The day's highest and lowest temperature lie too far apart.
    TemperatureSwing,
    HumiditySwing,
    Smoke,
    Water,
    DoorOpen,
    SensorStale,
    /// Carriages moved with no operation of the controller's.
    UnexpectedMotion,
    /// A range did not confirm a stop or lock the environment asked for.
    RangeUnsecured,
    /// A box left through the door gate without a loan.
    Gate,
    /// A scheduled backup of the database failed.
    BackupFailed,
}

impl Named for AlarmKind {
    const ALL: &'static [Self] = &[
        AlarmKind::TemperatureHigh,
        AlarmKind::TemperatureLow,
        AlarmKind::HumidityHigh,
        AlarmKind::HumidityLow,
        AlarmKind::TemperatureSwing,
        AlarmKind::HumiditySwing,
        AlarmKind::Smoke,
        AlarmKind::Water,
        AlarmKind::DoorOpen,
        AlarmKind::SensorStale,
        AlarmKind::UnexpectedMotion,
        AlarmKind::RangeUnsecured,
        AlarmKind::Gate,
        AlarmKind::BackupFailed,
    ];
    fn name(self) -> &'static str {
        match self {
            AlarmKind::TemperatureHigh => "temperature_high",
            AlarmKind::TemperatureLow => "temperature_low",
            AlarmKind::HumidityHigh => "humidity_high",
            AlarmKind::HumidityLow => "humidity_low",
            AlarmKind::TemperatureSwing => "temperature_swing",
            AlarmKind::HumiditySwing => "humidity_swing",
            AlarmKind::Smoke => "smoke",
            AlarmKind::Water => "water",
            AlarmKind::DoorOpen => "door_open",
            AlarmKind::SensorStale => "sensor_stale",
            AlarmKind::UnexpectedMotion => "unexpected_motion",
            AlarmKind::RangeUnsecured => "range_unsecured",
            AlarmKind::Gate => "gate",
            AlarmKind::BackupFailed => "backup_failed",
        }
    }
}
crate::text_column!(AlarmKind);

impl std::fmt::Display for AlarmKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Where an alarm stands: active until acknowledged or cleared; it clears by itself when
/// its cause is gone, acknowledged or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlarmState {
    Active,
    Acknowledged,
    Cleared,
}

impl Named for AlarmState {
    const ALL: &'static [Self] = &[
        AlarmState::Active,
        AlarmState::Acknowledged,
        AlarmState::Cleared,
    ];
    fn name(self) -> &'static str {
        match self {
            AlarmState::Active => "active",
            AlarmState::Acknowledged => "acknowledged",
            AlarmState::Cleared => "cleared",
        }
    }
}
crate::text_column!(AlarmState);

impl std::fmt::Display for AlarmState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Which alarms to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlarmFilter {
    In(AlarmState),
    /// Active or acknowledged.
    Open,
}

impl std::str::FromStr for AlarmFilter {
    type Err = ();
    fn from_str(text: &str) -> Result<AlarmFilter, ()> {
        match text {
            "open" => Ok(AlarmFilter::Open),
            _ => AlarmState::from_name(text).map(AlarmFilter::In).ok_or(()),
        }
    }
}

/// An alarm.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct AlarmView {
    pub id: i64,
    pub kind: AlarmKind,
    pub zone: String,
    pub sensor: String,
    pub state: AlarmState,
    pub raised_at: DateTime<Utc>,
    /// What happened, in English.
    pub message: String,
    /// The numbers of `message` (`value`, `limit`, `seconds`, `range`, `op`, `box`, `gate`,
    /// or a device's own `why`), so that a client words the alarm in its reader's language
    /// from its `kind`; `{}` for alarms raised before they were kept.
    #[schema(value_type = Object)]
    pub params: serde_json::Value,
    pub acked_at: Option<DateTime<Utc>>,
    pub acked_by: Option<String>,
    pub ack_note: Option<String>,
    pub cleared_at: Option<DateTime<Utc>>,
}

/// Something that happened in the environment, for the event stream and MQTT.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
pub enum EnvEvent {
    Alarm(AlarmView),
    Point(PointView),
}

#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    #[error("no alarm {0}")]
    NoAlarm(i64),
    #[error("alarm {id} is {state}; only an active alarm is acknowledged")]
    NotActive { id: i64, state: AlarmState },
    #[error("no sensor '{0}'")]
    NoSensor(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for EnvError {
    fn from(e: rusqlite::Error) -> EnvError {
        EnvError::Store(StoreError::from(e))
    }
}

struct Inner {
    config: EnvironmentConfig,
    stale_after: HashMap<String, Duration>,
    /// The points as the engine last left them.
    snapshot: Mutex<Snapshot>,
    history: History,
    store: Store,
    events: broadcast::Sender<EnvEvent>,
}

/// The environment service; cheap to clone.
#[derive(Clone)]
pub struct Environment {
    inner: Arc<Inner>,
    /// The drivers, the engine and what it started.
    tasks: crate::link::Tasks,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn alarm_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AlarmView> {
    Ok(AlarmView {
        id: r.get(0)?,
        kind: r.get(1)?,
        zone: r.get(2)?,
        sensor: r.get(3)?,
        state: r.get(4)?,
        raised_at: wall(r.get(5)?),
        message: r.get(6)?,
        acked_at: r.get::<_, Option<i64>>(7)?.map(wall),
        acked_by: r.get(8)?,
        ack_note: r.get(9)?,
        cleared_at: r.get::<_, Option<i64>>(10)?.map(wall),
        params: serde_json::from_str(&r.get::<_, String>(11)?)
            .unwrap_or_else(|_| serde_json::json!({})),
    })
}

const ALARM_COLUMNS: &str = "id, kind, zone, sensor, state, raised_at, message, acked_at, acked_by, ack_note, cleared_at, params";

/// How long each point may go without a reading: its device's reporting allows, from the
/// profile's timing or, for Zigbee devices, their class's (battery sensors report about
/// hourly, plugs often).
pub fn stale_after(config: &RoomConfig) -> HashMap<String, Duration> {
    config
        .environment
        .points
        .iter()
        .map(|p| {
            let device = config.devices.iter().find(|d| d.id == p.device);
            let ms = match device.map(|d| (&d.spec.zigbee2mqtt, d.spec.timing.stale_after_ms)) {
                Some((Some(z), _)) if p.kind.is_actuator() => z.mains_stale_after_ms,
                Some((Some(z), _)) => z.battery_stale_after_ms,
                Some((None, ms)) => ms,
                None => engine::DEFAULT_STALE.as_millis() as u64,
            };
            (p.id.clone(), Duration::from_millis(ms))
        })
        .collect()
}

impl Environment {
    /// An environment with no points (a controller started without devices).
    pub fn empty(config: &RoomConfig, store: Store) -> Environment {
        Self::new(config, store)
    }

    fn new(config: &RoomConfig, store: Store) -> Environment {
        Environment {
            tasks: Default::default(),
            inner: Arc::new(Inner {
                config: config.environment.clone(),
                stale_after: stale_after(config),
                snapshot: Mutex::default(),
                history: History::new(store.clone()),
                store,
                events: broadcast::channel(1024).0,
            }),
        }
    }

    /// Ends the drivers and the engine (at shutdown).
    pub async fn shut_down(&self) {
        self.tasks.shut_down().await;
    }

    /// Starts the drivers of the environment devices and the engine.
    pub fn start(
        config: &RoomConfig,
        store: Store,
        wiring: &Wiring,
        shelving: Shelving,
        audit: Audit,
    ) -> Result<Environment, StartError> {
        let env = Self::new(config, store);
        if config.environment.points.is_empty() {
            return Ok(env);
        }
        let (tx, rx) = mpsc::channel(1024);
        let mut switches = HashMap::new();
        for device in &config.devices {
            let points: Vec<DriverPoint> = config
                .environment
                .points
                .iter()
                .filter(|p| p.device == device.id)
                .map(|p| DriverPoint {
                    id: p.id.clone(),
                    kind: p.kind,
                    address: p.address.clone(),
                })
                .collect();
            if points.is_empty() {
                continue;
            }
            let (command_tx, command_rx) = mpsc::channel(16);
            for p in &points {
                switches.insert(p.id.clone(), command_tx.clone());
            }
            let spec = &device.spec;
            match (
                &device.transport,
                &spec.modbus_environment,
                &spec.zigbee2mqtt,
            ) {
                (Transport::Serial { path, baud, unit }, Some(map), _) => {
                    let path = wiring
                        .serial_paths
                        .get(&device.id)
                        .cloned()
                        .unwrap_or_else(|| path.clone());
                    let at = driver::ModbusDevice {
                        device: device.id.clone(),
                        path,
                        baud: *baud,
                        unit: unit.unwrap_or(map.unit),
                        map: map.clone(),
                        timing: spec.timing.clone(),
                        points,
                    };
                    env.tasks.spawn(driver::modbus(at, tx.clone(), command_rx));
                }
                (Transport::Mqtt { prefix }, _, Some(keys)) => {
                    env.tasks.spawn(driver::zigbee2mqtt(
                        device.id.clone(),
                        wiring.broker(config)?,
                        prefix.clone(),
                        keys.clone(),
                        points,
                        tx.clone(),
                        command_rx,
                    ));
                }
                _ => {
                    return Err(StartError::Unsupported {
                        device: device.id.clone(),
                        needs: "an environment device on Modbus needs a serial transport, on Zigbee2MQTT an MQTT one".into(),
                    });
                }
            }
        }
        let engine = Engine::new(
            config.environment.clone(),
            env.inner.stale_after.clone(),
            now(),
        );
        let runner = Runner {
            env: env.clone(),
            shelving,
            audit,
            switches,
            engine,
        };
        env.tasks.spawn(runner.run(rx));
        Ok(env)
    }

    pub fn config(&self) -> &EnvironmentConfig {
        &self.inner.config
    }

    pub fn subscribe(&self) -> broadcast::Receiver<EnvEvent> {
        self.inner.events.subscribe()
    }

    pub fn retention(&self) -> Retention {
        Retention {
            raw_days: self.inner.config.raw_days,
            minute_days: self.inner.config.minute_days,
        }
    }

    pub fn history(&self) -> &History {
        &self.inner.history
    }

    /// Every point now; `alarmed`: the points with an open alarm.
    pub fn points(&self, alarmed: &[String]) -> Vec<PointView> {
        lock(&self.inner.snapshot).views(
            &self.inner.config,
            &self.inner.stale_after,
            alarmed,
            Instant::now(),
        )
    }

    /// Every point with the alarm states from the store.
    pub async fn points_now(&self) -> Result<Vec<PointView>, EnvError> {
        let open = self.alarms(Some(AlarmFilter::Open), 1000).await?;
        let alarmed: Vec<String> = open.into_iter().map(|a| a.sensor).collect();
        Ok(self.points(&alarmed))
    }

    /// Alarms, newest first.
    pub async fn alarms(
        &self,
        filter: Option<AlarmFilter>,
        limit: usize,
    ) -> Result<Vec<AlarmView>, EnvError> {
        let limit = limit.clamp(1, 1000) as i64;
        self.inner
            .store
            .read(move |conn| {
                let (filter, arg) = match filter {
                    Some(AlarmFilter::Open) => ("state != 'cleared'", None),
                    Some(AlarmFilter::In(s)) => ("state = ?2", Some(s)),
                    None => ("1 = 1", None),
                };
                let sql = format!(
                    "SELECT {ALARM_COLUMNS} FROM alarms WHERE {filter} ORDER BY id DESC LIMIT ?1"
                );
                let mut stmt = conn.prepare_cached(&sql)?;
                let rows = match arg {
                    Some(a) => stmt
                        .query_map(params![limit, a], alarm_row)?
                        .collect::<Result<Vec<_>, _>>()?,
                    None => stmt
                        .query_map(params![limit], alarm_row)?
                        .collect::<Result<Vec<_>, _>>()?,
                };
                Ok::<_, EnvError>(rows)
            })
            .await
    }

    /// Acknowledges an active alarm: who and why are kept with it.
    pub async fn acknowledge(&self, id: i64, by: &str, note: &str) -> Result<AlarmView, EnvError> {
        let (by, note) = (by.to_string(), note.to_string());
        let now = Utc::now().timestamp_millis();
        let view = self
            .inner
            .store
            .write(move |conn| {
                let found = conn
                    .prepare_cached(&format!("SELECT {ALARM_COLUMNS} FROM alarms WHERE id = ?1"))?
                    .query_row([id], alarm_row)
                    .optional()?
                    .ok_or(EnvError::NoAlarm(id))?;
                if found.state != AlarmState::Active {
                    return Err(EnvError::NotActive {
                        id,
                        state: found.state,
                    });
                }
                conn.execute(
                    "UPDATE alarms SET state = ?5, acked_at = ?2, acked_by = ?3, ack_note = ?4 WHERE id = ?1",
                    params![id, now, by, note, AlarmState::Acknowledged],
                )?;
                Ok(conn
                    .prepare_cached(&format!("SELECT {ALARM_COLUMNS} FROM alarms WHERE id = ?1"))?
                    .query_row([id], alarm_row)?)
            })
            .await?;
        let _ = self.inner.events.send(EnvEvent::Alarm(view.clone()));
        Ok(view)
    }

    pub(crate) async fn raise(
        &self,
        kind: AlarmKind,
        zone: &str,
        sensor: &str,
        message: String,
        words: serde_json::Value,
    ) -> Result<AlarmView, EnvError> {
        let (z, s) = (zone.to_string(), sensor.to_string());
        let now = Utc::now().timestamp_millis();
        let words = words.to_string();
        let view = self
            .inner
            .store
            .write(move |conn| {
                conn.execute(
                    "INSERT INTO alarms (kind, zone, sensor, state, raised_at, message, params) VALUES (?1, ?2, ?3, ?6, ?4, ?5, ?7)",
                    params![kind, z, s, now, message, AlarmState::Active, words],
                )?;
                let id = conn.last_insert_rowid();
                Ok::<_, EnvError>(
                    conn.prepare_cached(&format!("SELECT {ALARM_COLUMNS} FROM alarms WHERE id = ?1"))?
                        .query_row([id], alarm_row)?,
                )
            })
            .await?;
        let _ = self.inner.events.send(EnvEvent::Alarm(view.clone()));
        Ok(view)
    }

    pub(crate) async fn clear(
        &self,
        kind: AlarmKind,
        sensor: &str,
    ) -> Result<Vec<AlarmView>, EnvError> {
        let s = sensor.to_string();
        let now = Utc::now().timestamp_millis();
        let cleared = self
            .inner
            .store
            .write(move |conn| {
                let ids: Vec<i64> = conn
                    .prepare_cached("SELECT id FROM alarms WHERE kind = ?1 AND sensor = ?2 AND state != 'cleared'")?
                    .query_map(params![kind, s], |r| r.get(0))?
                    .collect::<Result<_, _>>()?;
                let mut out = Vec::new();
                for id in ids {
                    conn.execute(
                        "UPDATE alarms SET state = ?3, cleared_at = ?2 WHERE id = ?1",
                        params![id, now, AlarmState::Cleared],
                    )?;
                    out.push(
                        conn.prepare_cached(&format!("SELECT {ALARM_COLUMNS} FROM alarms WHERE id = ?1"))?
                            .query_row([id], alarm_row)?,
                    );
                }
                Ok::<_, EnvError>(out)
            })
            .await?;
        for view in &cleared {
            let _ = self.inner.events.send(EnvEvent::Alarm(view.clone()));
        }
        Ok(cleared)
    }
}

// ---------------------------------------------------------------------------- the runner

/// Feeds the engine what happens and carries out what it decides.
struct Runner {
    env: Environment,
    shelving: Shelving,
    audit: Audit,
    switches: HashMap<String, mpsc::Sender<SwitchCommand>>,
    engine: Engine,
}

fn now() -> Now {
    Now {
        at: Instant::now(),
        wall: Utc::now(),
    }
}

impl Runner {
    async fn run(mut self, mut rx: mpsc::Receiver<Report>) {
        match self.env.alarms(Some(AlarmFilter::Open), 1000).await {
            Ok(open) => {
                let effects = self.engine.resume(&open);
                self.apply(effects).await;
            }
            Err(e) => tracing::error!(error = %e, "the open alarms could not be read"),
        }
        let mut motions = self.shelving.subscribe();
        self.ranges().await;
        let mut tick = tokio::time::interval(engine::TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let effects = tokio::select! {
                o = rx.recv() => match o {
                    Some(Report::Reading(o)) => self.engine.reading(o, now()),
                    Some(Report::Availability { point, available, why }) => {
                        self.engine.availability(&point, available, why, now())
                    }
                    None => return,
                },
                e = motions.recv() => match e {
                    Ok(crate::shelving::Event::Operation(op)) => self.engine.operation(&op, now()),
                    Ok(crate::shelving::Event::Range(view)) => self.engine.range(&view),
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        self.ranges().await;
                        Vec::new()
                    }
                    Err(broadcast::error::RecvError::Closed) => Vec::new(),
                },
                _ = tick.tick() => self.engine.tick(now()),
            };
            self.apply(effects).await;
        }
    }

    /// Tells the engine every range as it stands (at start, and after missing events).
    async fn ranges(&mut self) {
        for view in self.shelving.ranges() {
            let effects = self.engine.range(&view);
            self.apply(effects).await;
        }
    }

    async fn apply(&mut self, effects: Vec<Effect>) {
        let mut queue = std::collections::VecDeque::from(effects);
        while let Some(effect) = queue.pop_front() {
            // What the engine answers to an effect's result is carried out after the rest.
            queue.extend(self.carry_out(effect).await);
        }
        *lock(&self.env.inner.snapshot) = self.engine.snapshot().clone();
    }

    async fn carry_out(&mut self, effect: Effect) -> Vec<Effect> {
        match effect {
            Effect::Raise {
                kind,
                zone,
                sensor,
                message,
                params,
            } => match self
                .env
                .raise(kind, &zone, &sensor, message.clone(), params)
                .await
            {
                Ok(alarm) => {
                    self.audit
                        .record(
                            NewEntry::new(ACTOR, "alarm", format!("{kind} {sensor}"), "raised")
                                .detail(format!("alarm {}: {message}", alarm.id)),
                        )
                        .await
                }
                Err(e) => {
                    tracing::error!(error = %e, %kind, %sensor, "an alarm could not be recorded")
                }
            },
            Effect::Clear { kind, sensor } => {
                if let Err(e) = self.env.clear(kind, &sensor).await {
                    tracing::error!(error = %e, %kind, %sensor, "an alarm could not be cleared");
                }
                self.audit
                    .record(NewEntry::new(
                        ACTOR,
                        "alarm",
                        format!("{kind} {sensor}"),
                        "cleared",
                    ))
                    .await;
            }
            Effect::Interlock { ranges, key, words } => {
                for range in ranges {
                    self.shelving.set_room_alarm(range, &key, words.clone());
                }
            }
            Effect::Secure { stop, lock } => {
                // Every range on its own: one that cannot be reached delays no other. Each
                // controller retries until its device confirms; what it cannot confirm comes
                // back as an `unconfirmed` operation and raises `range_unsecured`.
                for r in self.shelving.ranges() {
                    let shelving = self.shelving.clone();
                    self.env.tasks.spawn(async move {
                        if stop && let Err(e) = shelving.stop(r.range, ACTOR).await {
                            tracing::error!(range = r.range, error = %e, "could not stop the range");
                        }
                        if lock && let Err(e) = shelving.lock(r.range, true, ACTOR).await {
                            tracing::error!(range = r.range, error = %e, "could not lock the range");
                        }
                    });
                }
            }
            Effect::Switch { point, on } => {
                if let Some(tx) = self.switches.get(&point)
                    && tx
                        .try_send(SwitchCommand {
                            point: point.clone(),
                            on,
                        })
                        .is_err()
                {
                    tracing::warn!(%point, on, "the driver is busy; the switch is sent again later");
                }
            }
            Effect::Ventilate { range, why } => match self
                .shelving
                .motion(range, "ventilate", Goal::Ventilate, ACTOR, true)
                .await
            {
                Ok(op) => tracing::info!(range, %why, operation = %op, "ventilating"),
                Err(e) => tracing::info!(range, %why, error = %e, "ventilation refused"),
            },
            Effect::Record(batch) => {
                if let Err(e) = self.env.history().record(batch).await {
                    tracing::error!(error = %e, "environment readings could not be written");
                }
            }
            Effect::Purge { now_ms } => {
                if let Err(e) = self.env.history().purge(now_ms, self.env.retention()).await {
                    tracing::error!(error = %e, "old environment readings could not be purged");
                }
            }
            Effect::ReadExtremes { point, since } => {
                match self.env.history().extremes(&point, since).await {
                    Ok(Some(extremes)) => return self.engine.extremes(&point, extremes, now()),
                    Ok(None) => {}
                    Err(e) => {
                        tracing::error!(error = %e, %point, "the day's extremes could not be read")
                    }
                }
            }
            Effect::Publish(view) => {
                let _ = self.env.inner.events.send(EnvEvent::Point(view));
            }
        }
        Vec::new()
    }
}

/// Where each point's address is, for people.
pub fn describe_address(a: &Address) -> String {
    match a {
        Address::Climate => "climate registers".into(),
        Address::Input(n) => format!("input {n}"),
        Address::Coil(n) => format!("coil {n}"),
        Address::Topic(t) => format!("topic {t}"),
    }
}

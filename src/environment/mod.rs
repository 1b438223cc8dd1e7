//! The room's environment: temperature and humidity per zone, smoke, water and door
//! sensors, the dehumidifiers and the ventilation of the ranges.
//!
//! Drivers ([`driver`]) turn what devices say into observations; one engine task takes
//! them in order and is the only one that decides: it keeps each point's latest value
//! (stale once older than its profile's `stale_after_ms`, never reused), writes the
//! history ([`history`]), raises and clears alarms (a condition must hold for `hold_s`;
//! a value clears back inside its limit by a margin, see [`rules`]), switches the
//! dehumidifiers with hysteresis and minimum on/off times, ventilates idle ranges when a
//! zone is damp or by schedule, and on smoke or water runs the configured actions (by
//! default: stop and lock every range). Motion goes through the range controllers like
//! any other request, so every interlock still applies.

pub mod driver;
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
use crate::config::environment::{Action, Address, EnvironmentConfig, PointKind};
use crate::config::{RoomConfig, Transport};
use crate::shelving::plan::Goal;
use crate::shelving::{Shelving, Wiring};
use crate::store::{Store, StoreError};
use crate::time::wall;
use driver::{DriverPoint, Measured, Observation, Report, SwitchCommand};
use history::{History, Reading, Retention};
use rules::{Change, Condition, Switch};

/// The actor of everything the environment does.
pub const ACTOR: &str = "environment";

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
    /// `ok`, `warning` (outside its limits, not yet held long enough), `alarm`, or `stale`
    /// (no reading for longer than its profile allows; the last one is not shown as now).
    pub state: String,
    /// When the reading was taken.
    pub at: Option<DateTime<Utc>>,
    /// Actuators: the state the controller wants.
    pub wanted: Option<bool>,
}

/// An alarm.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct AlarmView {
    pub id: i64,
    /// `temperature_high|low`, `humidity_high|low`, `temperature_swing`, `humidity_swing`,
    /// `smoke`, `water`, `door_open`, `sensor_stale`.
    pub kind: String,
    pub zone: String,
    pub sensor: String,
    /// `active`, `acknowledged` or `cleared`.
    pub state: String,
    pub raised_at: DateTime<Utc>,
    pub message: String,
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
    NotActive { id: i64, state: String },
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

/// The latest of a point.
#[derive(Debug, Clone, Default)]
struct Latest {
    measured: Option<Measured>,
    at: Option<DateTime<Utc>>,
    seen: Option<Instant>,
    wanted: Option<bool>,
    /// Why its bridge or the device itself says it cannot report now.
    unavailable: Option<String>,
}

struct Inner {
    config: EnvironmentConfig,
    stale_after: HashMap<String, Duration>,
    latest: Mutex<HashMap<String, Latest>>,
    /// Points whose value is outside its limits now (for `warning`).
    outside: Mutex<HashMap<String, bool>>,
    history: History,
    store: Store,
    events: broadcast::Sender<EnvEvent>,
}

/// The environment service; cheap to clone.
#[derive(Clone)]
pub struct Environment {
    inner: Arc<Inner>,
    /// The drivers and the engine.
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
    })
}

const ALARM_COLUMNS: &str =
    "id, kind, zone, sensor, state, raised_at, message, acked_at, acked_by, ack_note, cleared_at";

impl Environment {
    /// An environment with no points (a controller started without devices).
    pub fn empty(config: &RoomConfig, store: Store) -> Environment {
        Self::new(config, store)
    }

    fn new(config: &RoomConfig, store: Store) -> Environment {
        // A point is stale after its device's reporting allows: the profile's timing, or for
        // Zigbee devices their class's (battery sensors report about hourly, plugs often).
        let stale_after = config
            .environment
            .points
            .iter()
            .map(|p| {
                let device = config.devices.iter().find(|d| d.id == p.device);
                let ms = match device.map(|d| (&d.spec.zigbee2mqtt, d.spec.timing.stale_after_ms)) {
                    Some((Some(z), _)) if p.kind.is_actuator() => z.mains_stale_after_ms,
                    Some((Some(z), _)) => z.battery_stale_after_ms,
                    Some((None, ms)) => ms,
                    None => 10_000,
                };
                (p.id.clone(), Duration::from_millis(ms))
            })
            .collect();
        Environment {
            tasks: Default::default(),
            inner: Arc::new(Inner {
                config: config.environment.clone(),
                stale_after,
                latest: Mutex::default(),
                outside: Mutex::default(),
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
    ) -> Result<Environment, String> {
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
                    env.tasks.spawn(driver::modbus(
                        device.id.clone(),
                        path,
                        *baud,
                        unit.unwrap_or(map.unit),
                        map.clone(),
                        spec.timing.clone(),
                        points,
                        tx.clone(),
                        command_rx,
                    ));
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
                    return Err(format!(
                        "device '{}': an environment device on Modbus needs a serial transport, on Zigbee2MQTT an MQTT one",
                        device.id
                    ));
                }
            }
        }
        let engine = Engine::new(env.clone(), shelving, audit, switches);
        env.tasks.spawn(engine.run(rx));
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

    fn fresh(&self, point: &str, latest: &Latest, now: Instant) -> bool {
        let limit = self
            .inner
            .stale_after
            .get(point)
            .copied()
            .unwrap_or(Duration::from_secs(10));
        latest.unavailable.is_none() && latest.seen.is_some_and(|t| now.duration_since(t) <= limit)
    }

    /// Every point now; `alarmed`: the points with an open alarm.
    pub fn points(&self, alarmed: &[String]) -> Vec<PointView> {
        let latest = lock(&self.inner.latest);
        let outside = lock(&self.inner.outside);
        let now = Instant::now();
        self.inner
            .config
            .points
            .iter()
            .map(|p| {
                let l = latest.get(&p.id).cloned().unwrap_or_default();
                let fresh = self.fresh(&p.id, &l, now);
                let (temperature, humidity, value) = match l.measured {
                    Some(Measured::Climate {
                        temperature,
                        humidity,
                    }) => (Some(temperature), Some(humidity), None),
                    Some(Measured::Tripped(b) | Measured::Switched(b)) => {
                        (None, None, Some(if b { 1.0 } else { 0.0 }))
                    }
                    None => (None, None, None),
                };
                let state = if !fresh {
                    "stale"
                } else if alarmed.contains(&p.id) {
                    "alarm"
                } else if outside.get(&p.id).copied().unwrap_or(false) {
                    "warning"
                } else {
                    "ok"
                };
                PointView {
                    id: p.id.clone(),
                    kind: p.kind,
                    zone: p.zone.clone(),
                    temperature,
                    humidity,
                    value,
                    state: state.into(),
                    at: l.at,
                    wanted: l.wanted,
                }
            })
            .collect()
    }

    /// Every point with the alarm states from the store.
    pub async fn points_now(&self) -> Result<Vec<PointView>, EnvError> {
        let open = self.alarms(Some("open"), 1000).await?;
        let alarmed: Vec<String> = open.into_iter().map(|a| a.sensor).collect();
        Ok(self.points(&alarmed))
    }

    /// Alarms, newest first; `state`: `active`, `acknowledged`, `cleared`, or `open`
    /// (active or acknowledged).
    pub async fn alarms(
        &self,
        state: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AlarmView>, EnvError> {
        let state = state.map(str::to_string);
        let limit = limit.clamp(1, 1000) as i64;
        self.inner
            .store
            .read(move |conn| {
                let (filter, arg) = match state.as_deref() {
                    Some("open") => ("state != 'cleared'", None),
                    Some(s) => ("state = ?2", Some(s.to_string())),
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
                if found.state != "active" {
                    return Err(EnvError::NotActive {
                        id,
                        state: found.state,
                    });
                }
                conn.execute(
                    "UPDATE alarms SET state = 'acknowledged', acked_at = ?2, acked_by = ?3, ack_note = ?4 WHERE id = ?1",
                    params![id, now, by, note],
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
        kind: &str,
        zone: &str,
        sensor: &str,
        message: String,
    ) -> Result<AlarmView, EnvError> {
        let (k, z, s) = (kind.to_string(), zone.to_string(), sensor.to_string());
        let now = Utc::now().timestamp_millis();
        let view = self
            .inner
            .store
            .write(move |conn| {
                conn.execute(
                    "INSERT INTO alarms (kind, zone, sensor, state, raised_at, message) VALUES (?1, ?2, ?3, 'active', ?4, ?5)",
                    params![k, z, s, now, message],
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

    pub(crate) async fn clear(&self, kind: &str, sensor: &str) -> Result<Vec<AlarmView>, EnvError> {
        let (k, s) = (kind.to_string(), sensor.to_string());
        let now = Utc::now().timestamp_millis();
        let cleared = self
            .inner
            .store
            .write(move |conn| {
                let ids: Vec<i64> = conn
                    .prepare_cached("SELECT id FROM alarms WHERE kind = ?1 AND sensor = ?2 AND state != 'cleared'")?
                    .query_map(params![k, s], |r| r.get(0))?
                    .collect::<Result<_, _>>()?;
                let mut out = Vec::new();
                for id in ids {
                    conn.execute(
                        "UPDATE alarms SET state = 'cleared', cleared_at = ?2 WHERE id = ?1",
                        params![id, now],
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

// ---------------------------------------------------------------------------- the engine

struct Engine {
    env: Environment,
    shelving: Shelving,
    audit: Audit,
    switches: HashMap<String, mpsc::Sender<SwitchCommand>>,
    conditions: HashMap<(String, String), Condition>,
    dehumidifiers: HashMap<String, Switch>,
    last_sent: HashMap<String, Instant>,
    /// When each range was last moved by someone other than us.
    last_used: HashMap<u16, Instant>,
    /// Ranges whose carriages are moving with no operation of the controller's.
    moving_unbidden: std::collections::HashSet<u16>,
    /// Zones whose dampness already asked for ventilation (until it dries).
    damp: HashMap<String, bool>,
    /// Ranges ventilated since their zone became damp, and when each damp zone last tried:
    /// a ventilation refused (someone in an aisle, the range in use) is tried again.
    ventilated: std::collections::HashSet<u16>,
    last_ventilation: HashMap<String, Instant>,
    next_ventilation: Option<DateTime<Utc>>,
    pending: Vec<Reading>,
    last_purge: Instant,
    last_swing: Instant,
    started: Instant,
}

impl Engine {
    fn new(
        env: Environment,
        shelving: Shelving,
        audit: Audit,
        switches: HashMap<String, mpsc::Sender<SwitchCommand>>,
    ) -> Engine {
        let now = Instant::now();
        Engine {
            env,
            shelving,
            audit,
            switches,
            conditions: HashMap::new(),
            dehumidifiers: HashMap::new(),
            last_sent: HashMap::new(),
            last_used: HashMap::new(),
            moving_unbidden: Default::default(),
            damp: HashMap::new(),
            ventilated: Default::default(),
            last_ventilation: HashMap::new(),
            next_ventilation: None,
            pending: Vec::new(),
            last_purge: now - Duration::from_secs(3600),
            last_swing: now,
            started: now,
        }
    }

    async fn run(mut self, mut rx: mpsc::Receiver<Report>) {
        // Alarms left open by the last run stay open; their conditions start raised.
        if let Ok(open) = self.env.alarms(Some("open"), 1000).await {
            for a in open {
                if a.kind == "smoke" || a.kind == "water" {
                    self.interlock(&a.kind, &a.zone, &a.sensor, Some(a.message.clone()));
                }
                self.conditions
                    .entry((a.kind, a.sensor))
                    .or_default()
                    .set_raised();
            }
        }
        let mut motions = self.shelving.subscribe();
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        self.next_ventilation = self.next_cron();
        loop {
            tokio::select! {
                o = rx.recv() => match o {
                    Some(Report::Reading(o)) => self.observe(o).await,
                    Some(Report::Availability { point, available, why }) => self.availability(&point, available, why),
                    None => return,
                },
                e = motions.recv() => match e {
                    Ok(crate::shelving::Event::Operation(op)) => {
                        if op.actor == ACTOR {
                            self.secured(&op).await;
                        } else {
                            self.last_used.insert(op.range, Instant::now());
                        }
                    }
                    Ok(crate::shelving::Event::Range(view)) => self.unbidden(&view).await,
                    Err(_) => {}
                },
                _ = tick.tick() => self.tick().await,
            }
        }
    }

    /// Carriages that move with no operation of the controller's: an `unexpected_motion`
    /// alarm (the range controller is already stopping them), raised once per episode and
    /// left active until someone acknowledges it.
    async fn unbidden(&mut self, view: &crate::shelving::controller::RangeView) {
        if !view.unexpected_motion {
            self.moving_unbidden.remove(&view.range);
            return;
        }
        if !self.moving_unbidden.insert(view.range) {
            return;
        }
        let zone = self
            .env
            .config()
            .zones
            .iter()
            .find(|z| z.ranges.contains(&view.range))
            .map_or(String::new(), |z| z.id.clone());
        let sensor = format!("range-{}", view.range);
        let message = format!(
            "the carriages of range {} moved and no operation asked for it; stop sent",
            view.range
        );
        tracing::error!(range = view.range, "unexpected motion: alarm raised");
        match self
            .env
            .raise("unexpected_motion", &zone, &sensor, message.clone())
            .await
        {
            Ok(alarm) => {
                self.audit
                    .record(
                        NewEntry::new(
                            ACTOR,
                            "alarm",
                            format!("unexpected_motion {sensor}"),
                            "raised",
                        )
                        .detail(format!("alarm {}: {message}", alarm.id)),
                    )
                    .await
            }
            Err(e) => {
                tracing::error!(error = %e, "the unexpected-motion alarm could not be recorded")
            }
        }
    }

    fn next_cron(&self) -> Option<DateTime<Utc>> {
        let cron = self.env.config().ventilation.cron.as_ref()?;
        cron.find_next_occurrence(&Utc::now(), false).ok()
    }

    /// A bridge or device says a point can or cannot report: unavailable, it is stale now
    /// (the next tick raises `sensor_stale` with the reason); available again, it waits for
    /// its next reading.
    fn availability(&mut self, point: &str, available: bool, why: String) {
        let mut latest = lock(&self.env.inner.latest);
        let l = latest.entry(point.to_string()).or_default();
        let was = l.unavailable.is_none();
        l.unavailable = (!available).then_some(why);
        if was != available {
            tracing::info!(%point, available, "availability");
        }
        drop(latest);
        self.publish(point);
    }

    async fn observe(&mut self, o: Observation) {
        let (temperature, humidity, value) = match o.value {
            Measured::Climate {
                temperature,
                humidity,
            } => (Some(temperature), Some(humidity), None),
            Measured::Tripped(b) | Measured::Switched(b) => {
                (None, None, Some(if b { 1.0 } else { 0.0 }))
            }
        };
        self.pending.push(Reading {
            point: o.point.clone(),
            at_ms: o.at.timestamp_millis(),
            temperature,
            humidity,
            value,
        });
        let changed = {
            let mut latest = lock(&self.env.inner.latest);
            let l = latest.entry(o.point.clone()).or_default();
            let changed = l.measured != Some(o.value);
            l.measured = Some(o.value);
            l.at = Some(o.at);
            l.seen = Some(Instant::now());
            changed
        };
        if let Measured::Switched(on) = o.value {
            self.dehumidifiers
                .entry(o.point.clone())
                .or_insert_with(|| Switch::new(on));
        }
        self.evaluate_point(&o.point).await;
        if changed {
            self.publish(&o.point);
        }
    }

    /// Sends a point's view to the event stream, its alarm state included.
    fn publish(&self, point: &str) {
        let alarmed: Vec<String> = self
            .conditions
            .iter()
            .filter(|(_, c)| c.raised())
            .map(|((_, sensor), _)| sensor.clone())
            .collect();
        if let Some(view) = self
            .env
            .points(&alarmed)
            .into_iter()
            .find(|p| p.id == point)
        {
            let _ = self.env.inner.events.send(EnvEvent::Point(view));
        }
    }

    /// Checks one point's conditions against its latest value.
    async fn evaluate_point(&mut self, id: &str) {
        let config = self.env.config().clone();
        let Some(point) = config.point(id) else {
            return;
        };
        let Some(zone) = config.zone(&point.zone) else {
            return;
        };
        let latest = lock(&self.env.inner.latest)
            .get(id)
            .cloned()
            .unwrap_or_default();
        let now = Instant::now();
        if !self.env.fresh(id, &latest, now) {
            return;
        }
        let mut checks: Vec<(&str, bool, bool, Duration, String)> = Vec::new();
        match latest.measured {
            Some(Measured::Climate {
                temperature: t,
                humidity: h,
            }) => {
                let (tb, hb) = (zone.temperature, zone.humidity);
                let (mt, mh) = (config.clear_temperature, config.clear_humidity);
                checks.push((
                    "temperature_high",
                    t > tb.max,
                    t <= tb.max - mt,
                    config.hold,
                    format!(
                        "{} is {t:.1} °C, above the zone's {:.1} °C",
                        point.id, tb.max
                    ),
                ));
                checks.push((
                    "temperature_low",
                    t < tb.min,
                    t >= tb.min + mt,
                    config.hold,
                    format!(
                        "{} is {t:.1} °C, below the zone's {:.1} °C",
                        point.id, tb.min
                    ),
                ));
                checks.push((
                    "humidity_high",
                    h > hb.max,
                    h <= hb.max - mh,
                    config.hold,
                    format!(
                        "{} is {h:.1} % RH, above the zone's {:.0} %",
                        point.id, hb.max
                    ),
                ));
                checks.push((
                    "humidity_low",
                    h < hb.min,
                    h >= hb.min + mh,
                    config.hold,
                    format!(
                        "{} is {h:.1} % RH, below the zone's {:.0} %",
                        point.id, hb.min
                    ),
                ));
                let outside = t > tb.max || t < tb.min || h > hb.max || h < hb.min;
                lock(&self.env.inner.outside).insert(id.to_string(), outside);
            }
            Some(Measured::Tripped(tripped)) => {
                let (kind, hold, what) = match point.kind {
                    PointKind::Smoke => ("smoke", Duration::ZERO, "smoke detected"),
                    PointKind::Water => ("water", Duration::ZERO, "water detected"),
                    _ => ("door_open", config.door_open, "the door is open"),
                };
                let message = if kind == "door_open" {
                    format!(
                        "{}: {what} for more than {} s",
                        point.id,
                        config.door_open.as_secs()
                    )
                } else {
                    format!("{}: {what} in zone {}", point.id, zone.name)
                };
                checks.push((kind, tripped, !tripped, hold, message));
                lock(&self.env.inner.outside).insert(id.to_string(), tripped);
            }
            _ => {}
        }
        for (kind, bad, good, hold, message) in checks {
            self.condition(kind, &point.zone, id, bad, good, hold, message)
                .await;
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn condition(
        &mut self,
        kind: &str,
        zone: &str,
        sensor: &str,
        bad: bool,
        good: bool,
        hold: Duration,
        message: String,
    ) {
        let key = (kind.to_string(), sensor.to_string());
        let change =
            self.conditions
                .entry(key)
                .or_default()
                .update(bad, good, hold, Instant::now());
        match change {
            Some(Change::Raise) => {
                tracing::warn!(%kind, %sensor, %message, "alarm raised");
                if kind == "smoke" || kind == "water" {
                    self.interlock(kind, zone, sensor, Some(message.clone()));
                }
                match self.env.raise(kind, zone, sensor, message.clone()).await {
                    Ok(view) => {
                        self.audit
                            .record(
                                NewEntry::new(ACTOR, "alarm", format!("{kind} {sensor}"), "raised")
                                    .detail(format!("alarm {}: {message}", view.id)),
                            )
                            .await;
                    }
                    Err(e) => tracing::error!(error = %e, "an alarm could not be recorded"),
                }
                self.publish(sensor);
                self.respond(kind, zone).await;
            }
            Some(Change::Clear) => {
                tracing::info!(%kind, %sensor, "alarm cleared");
                if kind == "smoke" || kind == "water" {
                    self.interlock(kind, zone, sensor, None);
                }
                if let Err(e) = self.env.clear(kind, sensor).await {
                    tracing::error!(error = %e, "an alarm could not be cleared");
                }
                self.audit
                    .record(NewEntry::new(
                        ACTOR,
                        "alarm",
                        format!("{kind} {sensor}"),
                        "cleared",
                    ))
                    .await;
                if kind == "humidity_high" {
                    self.damp.insert(zone.to_string(), false);
                    if let Some(z) = self.env.config().zone(zone) {
                        let ranges = z.ranges.clone();
                        self.ventilated.retain(|r| !ranges.contains(r));
                    }
                }
                self.publish(sensor);
            }
            None => {}
        }
    }

    /// What the room does when an alarm is raised.
    async fn respond(&mut self, kind: &str, zone: &str) {
        let config = self.env.config().clone();
        let actions = match kind {
            "smoke" => config.on_smoke.clone(),
            "water" => config.on_water.clone(),
            "humidity_high" => {
                if config.ventilation.humidity_above.is_none()
                    && !self.damp.get(zone).copied().unwrap_or(false)
                {
                    self.damp.insert(zone.to_string(), true);
                    self.ventilate(zone, "the zone is damp").await;
                }
                return;
            }
            _ => return,
        };
        let stop = actions.contains(&Action::Stop);
        let lock = actions.contains(&Action::Lock);
        if stop || lock {
            // Every range on its own: one that cannot be reached delays no other. Each
            // controller retries until its device confirms; what it cannot confirm comes
            // back as an `unconfirmed` operation and raises `range_unsecured`.
            for r in self.shelving.ranges() {
                let shelving = self.shelving.clone();
                tokio::spawn(async move {
                    if stop && let Err(e) = shelving.stop(r.range, ACTOR).await {
                        tracing::error!(range = r.range, error = %e, "could not stop the range");
                    }
                    if lock && let Err(e) = shelving.lock(r.range, true, ACTOR).await {
                        tracing::error!(range = r.range, error = %e, "could not lock the range");
                    }
                });
            }
        }
        for action in actions {
            if let Action::Relay { point, on } = action {
                self.switch(&point, on);
            }
        }
    }

    /// A smoke or water alarm forbids motion in its zone's ranges while it is active.
    fn interlock(&self, kind: &str, zone: &str, sensor: &str, message: Option<String>) {
        let config = self.env.config();
        let Some(z) = config.zone(zone) else { return };
        let key = format!("{kind}:{sensor}");
        let words = message.map(|m| format!("{kind} alarm ({m})"));
        for &range in &z.ranges {
            self.shelving.set_room_alarm(range, &key, words.clone());
        }
    }

    /// A stop or lock of ours that a range could not confirm raises `range_unsecured`; the
    /// lock confirmed later clears it.
    async fn secured(&mut self, op: &crate::shelving::OperationView) {
        use crate::shelving::OpState;
        if op.kind == "ventilate" && op.state == OpState::Done {
            self.ventilated.insert(op.range);
        }
        if op.kind != "stop" && op.kind != "lock" {
            return;
        }
        let config = self.env.config().clone();
        let zone = config
            .zones
            .iter()
            .find(|z| z.ranges.contains(&op.range))
            .or(config.zones.first())
            .map(|z| z.id.clone())
            .unwrap_or_default();
        let sensor = format!("range-{}", op.range);
        match op.state {
            OpState::Unconfirmed => {
                let message = op.message.clone().unwrap_or_else(|| {
                    format!("range {} did not confirm the {}", op.range, op.kind)
                });
                self.condition(
                    "range_unsecured",
                    &zone,
                    &sensor,
                    true,
                    false,
                    Duration::ZERO,
                    message,
                )
                .await;
            }
            OpState::Done if op.kind == "lock" => {
                self.condition(
                    "range_unsecured",
                    &zone,
                    &sensor,
                    false,
                    true,
                    Duration::ZERO,
                    String::new(),
                )
                .await;
            }
            _ => {}
        }
    }

    fn switch(&mut self, point: &str, on: bool) {
        if let Some(l) = lock(&self.env.inner.latest).get_mut(point) {
            l.wanted = Some(on);
        } else {
            lock(&self.env.inner.latest).insert(
                point.to_string(),
                Latest {
                    wanted: Some(on),
                    ..Latest::default()
                },
            );
        }
        if let Some(tx) = self.switches.get(point) {
            let _ = tx.try_send(SwitchCommand {
                point: point.to_string(),
                on,
            });
            self.last_sent.insert(point.to_string(), Instant::now());
        }
    }

    /// Spreads the zone's ranges that nobody uses (通风); the range controller still
    /// checks every interlock.
    async fn ventilate(&mut self, zone: &str, why: &str) {
        let config = self.env.config().clone();
        let Some(z) = config.zone(zone) else { return };
        self.last_ventilation
            .insert(zone.to_string(), Instant::now());
        for &range in &z.ranges {
            if self.ventilated.contains(&range) {
                continue;
            }
            let Some(view) = self.shelving.range(range) else {
                continue;
            };
            let recently = self
                .last_used
                .get(&range)
                .is_some_and(|t| t.elapsed() < config.ventilation.idle);
            let busy = view.motion != crate::shelving::RangeMotion::Idle
                || !view.occupied_aisles.is_empty()
                || view.obstacle
                || view.locked
                || view.estop
                || !view.faults.is_empty()
                || view.link != crate::shelving::LinkState::Up;
            if busy || recently {
                tracing::info!(range, %why, busy, recently, "not ventilating a range in use");
                continue;
            }
            match self
                .shelving
                .motion(range, "ventilate", Goal::Ventilate, ACTOR, true)
                .await
            {
                Ok(op) => tracing::info!(range, %why, operation = %op, "ventilating"),
                Err(e) => tracing::info!(range, %why, error = %e, "ventilation refused"),
            }
        }
    }

    async fn tick(&mut self) {
        let config = self.env.config().clone();
        let now = Instant::now();
        // History, in one write per tick.
        if !self.pending.is_empty() {
            let batch = std::mem::take(&mut self.pending);
            if let Err(e) = self.env.history().record(batch).await {
                tracing::error!(error = %e, "environment readings could not be written");
            }
        }
        if self.last_purge.elapsed() >= Duration::from_secs(3600) {
            self.last_purge = now;
            let _ = self
                .env
                .history()
                .purge(Utc::now().timestamp_millis(), self.env.retention())
                .await;
        }
        // Conditions that need time to pass, and stale sensors.
        for p in &config.points {
            let latest = lock(&self.env.inner.latest)
                .get(&p.id)
                .cloned()
                .unwrap_or_default();
            let sensor = !p.kind.is_actuator();
            let fresh = self.env.fresh(&p.id, &latest, now);
            if sensor {
                let limit = self
                    .env
                    .inner
                    .stale_after
                    .get(&p.id)
                    .copied()
                    .unwrap_or_default();
                // A point not heard since the start gets its own limit's time to report.
                let starting = latest.seen.is_none() && self.started.elapsed() <= limit;
                let message = match &latest.unavailable {
                    Some(why) => format!("{}: {why}", p.id),
                    None => format!("{}: no reading for more than {} s", p.id, limit.as_secs()),
                };
                self.condition(
                    "sensor_stale",
                    &p.zone,
                    &p.id,
                    !fresh && !starting,
                    fresh,
                    Duration::ZERO,
                    message,
                )
                .await;
            }
            if fresh && sensor {
                self.evaluate_point(&p.id).await;
            }
        }
        // The daily swing, once a minute.
        if self.last_swing.elapsed() >= Duration::from_secs(60) {
            self.last_swing = now;
            self.swing(&config).await;
        }
        // Dehumidifiers.
        for p in config
            .points
            .iter()
            .filter(|p| p.kind == PointKind::Dehumidifier)
        {
            let Some(zone) = config.zone(&p.zone) else {
                continue;
            };
            let humidity = self.zone_humidity(&config, &p.zone, now);
            let Some(switch) = self.dehumidifiers.get_mut(&p.id) else {
                continue; // its state is not known yet
            };
            let wanted = switch.decide(humidity, &zone.dehumidify, now);
            let reported = lock(&self.env.inner.latest)
                .get(&p.id)
                .and_then(|l| match l.measured {
                    Some(Measured::Switched(b)) => Some(b),
                    _ => None,
                });
            if let Some(l) = lock(&self.env.inner.latest).get_mut(&p.id) {
                l.wanted = Some(wanted);
            }
            let resend = self
                .last_sent
                .get(&p.id)
                .is_none_or(|t| t.elapsed() >= Duration::from_secs(2));
            if reported != Some(wanted) && resend {
                tracing::info!(point = %p.id, on = wanted, ?humidity, "dehumidifier");
                self.switch(&p.id, wanted);
            }
        }
        // Ventilation: dampness over its own threshold, and the schedule.
        if let Some(limit) = config.ventilation.humidity_above {
            for z in &config.zones {
                let h = self.zone_humidity(&config, &z.id, now);
                let was = self.damp.get(&z.id).copied().unwrap_or(false);
                match h {
                    Some(h) if h > limit && !was => {
                        self.damp.insert(z.id.clone(), true);
                        self.ventilate(&z.id, "the zone is damp").await;
                    }
                    Some(h) if h < limit - config.clear_humidity => {
                        self.damp.insert(z.id.clone(), false);
                        self.ventilated.retain(|r| !z.ranges.contains(r));
                    }
                    _ => {}
                }
            }
        }
        // A damp zone whose ranges were not all ventilated tries again now and then.
        for z in &config.zones {
            let damp = self.damp.get(&z.id).copied().unwrap_or(false);
            let due = self
                .last_ventilation
                .get(&z.id)
                .is_none_or(|t| t.elapsed() >= Duration::from_secs(10));
            if damp && due && z.ranges.iter().any(|r| !self.ventilated.contains(r)) {
                self.ventilate(&z.id, "the zone is still damp").await;
            }
        }
        if let Some(at) = self.next_ventilation
            && Utc::now() >= at
        {
            self.next_ventilation = self.next_cron();
            for z in &config.zones {
                self.ventilate(&z.id, "scheduled").await;
            }
        }
    }

    /// The highest fresh humidity of the zone's climate points.
    fn zone_humidity(&self, config: &EnvironmentConfig, zone: &str, now: Instant) -> Option<f64> {
        let latest = lock(&self.env.inner.latest);
        config
            .points
            .iter()
            .filter(|p| p.zone == zone && p.kind == PointKind::Climate)
            .filter_map(|p| {
                let l = latest.get(&p.id)?;
                if !self.env.fresh(&p.id, l, now) {
                    return None;
                }
                match l.measured {
                    Some(Measured::Climate { humidity, .. }) => Some(humidity),
                    _ => None,
                }
            })
            .reduce(f64::max)
    }

    async fn swing(&mut self, config: &EnvironmentConfig) {
        let since = Utc::now() - chrono::Duration::hours(24);
        for p in config
            .points
            .iter()
            .filter(|p| p.kind == PointKind::Climate)
        {
            let Some(zone) = config.zone(&p.zone) else {
                continue;
            };
            let Ok(Some((t_min, t_max, h_min, h_max))) =
                self.env.history().extremes(&p.id, since).await
            else {
                continue;
            };
            let (dt, dh) = (t_max - t_min, h_max - h_min);
            self.condition(
                "temperature_swing",
                &p.zone,
                &p.id,
                dt > zone.swing_temperature,
                dt <= zone.swing_temperature - config.clear_temperature,
                Duration::ZERO,
                format!(
                    "{}: the temperature moved {dt:.1} °C in 24 h (at most {:.1})",
                    p.id, zone.swing_temperature
                ),
            )
            .await;
            self.condition(
                "humidity_swing",
                &p.zone,
                &p.id,
                dh > zone.swing_humidity,
                dh <= zone.swing_humidity - config.clear_humidity,
                Duration::ZERO,
                format!(
                    "{}: the humidity moved {dh:.1} % in 24 h (at most {:.0})",
                    p.id, zone.swing_humidity
                ),
            )
            .await;
        }
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

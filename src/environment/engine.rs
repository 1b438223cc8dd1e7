//! The environment's decisions as a state machine without I/O: it is told what happened
//! (a reading, a bridge going offline, an operation of a range, the clock ticking) and the
//! time, and answers with [`Effect`]s for its runner to carry out (write an alarm, switch a
//! relay, stop the ranges, ventilate one). Nothing in here reads a clock, a socket or the
//! database, so its tests drive hours of a room in milliseconds.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::json;

use super::driver::{Measured, Observation};
use super::history::Reading;
use super::rules::{Change, Condition, Switch};
use super::{ACTOR, AlarmKind, AlarmView, PointState, PointView};
use crate::config::environment::{Action, EnvironmentConfig, PointKind};
use crate::shelving::controller::RangeView;
use crate::shelving::{LinkState, OpState, OperationView, RangeMotion};

/// When something happens: the monotonic instant that durations are measured on, and the
/// wall time that schedules and stored readings use.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    pub at: Instant,
    pub wall: DateTime<Utc>,
}

/// How often the engine is told to tick.
pub const TICK: Duration = Duration::from_millis(500);
/// A switch not confirmed by its device is sent again after this long.
const RESEND: Duration = Duration::from_secs(2);
/// A damp zone whose ranges were not all ventilated tries again after this long.
const VENTILATION_RETRY: Duration = Duration::from_secs(10);
const SWING_EVERY: Duration = Duration::from_secs(60);
const PURGE_EVERY: Duration = Duration::from_secs(3600);
/// A point with no reporting time of its own.
pub const DEFAULT_STALE: Duration = Duration::from_secs(10);

/// What the runner is to do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Write a new active alarm and its audit entry.
    Raise {
        kind: AlarmKind,
        zone: String,
        sensor: String,
        message: String,
        params: serde_json::Value,
    },
    /// Clear the open alarms of this kind and sensor, and audit it.
    Clear { kind: AlarmKind, sensor: String },
    /// Forbid (`Some(words)`) or allow again (`None`) motion in these ranges, under `key`.
    Interlock {
        ranges: Vec<u16>,
        key: String,
        words: Option<String>,
    },
    /// Stop and/or lock every range of the room.
    Secure { stop: bool, lock: bool },
    /// Command an actuator.
    Switch { point: String, on: bool },
    /// Spread this range's carriages (the range controller checks every interlock).
    Ventilate { range: u16, why: &'static str },
    /// Append these readings to the history.
    Record(Vec<Reading>),
    /// Drop history older than the retention allows.
    Purge { now_ms: i64 },
    /// Read the last 24 h's extremes of a climate point and hand them to
    /// [`Engine::extremes`].
    ReadExtremes { point: String, since: DateTime<Utc> },
    /// A point's view changed: tell the event stream.
    Publish(PointView),
}

/// The latest of a point.
#[derive(Debug, Clone, Default)]
pub struct Latest {
    pub measured: Option<Measured>,
    pub at: Option<DateTime<Utc>>,
    pub seen: Option<Instant>,
    pub wanted: Option<bool>,
    /// Why its bridge or the device itself says it cannot report now.
    pub unavailable: Option<String>,
}

/// What the API shows of the points between two steps of the engine.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub latest: HashMap<String, Latest>,
    /// Points whose value is outside its limits now (for `warning`).
    pub outside: HashMap<String, bool>,
}

impl Snapshot {
    fn fresh(&self, stale_after: &HashMap<String, Duration>, point: &str, now: Instant) -> bool {
        let limit = stale_after.get(point).copied().unwrap_or(DEFAULT_STALE);
        self.latest.get(point).is_some_and(|l| {
            l.unavailable.is_none() && l.seen.is_some_and(|t| now.duration_since(t) <= limit)
        })
    }

    /// Every point of `config` as it stands at `now`; `alarmed`: the points with an open
    /// alarm.
    pub fn views(
        &self,
        config: &EnvironmentConfig,
        stale_after: &HashMap<String, Duration>,
        alarmed: &[String],
        now: Instant,
    ) -> Vec<PointView> {
        config
            .points
            .iter()
            .map(|p| self.view(p, stale_after, alarmed, now))
            .collect()
    }

    fn view(
        &self,
        p: &crate::config::environment::Point,
        stale_after: &HashMap<String, Duration>,
        alarmed: &[String],
        now: Instant,
    ) -> PointView {
        let l = self.latest.get(&p.id).cloned().unwrap_or_default();
        let (temperature, humidity, value) = split(l.measured);
        let state = if !self.fresh(stale_after, &p.id, now) {
            PointState::Stale
        } else if alarmed.contains(&p.id) {
            PointState::Alarm
        } else if self.outside.get(&p.id).copied().unwrap_or(false) {
            PointState::Warning
        } else {
            PointState::Ok
        };
        PointView {
            id: p.id.clone(),
            kind: p.kind,
            zone: p.zone.clone(),
            temperature,
            humidity,
            value,
            state,
            at: l.at,
            wanted: l.wanted,
        }
    }
}

/// A value as the columns of a reading: temperature, humidity, or a binary value.
fn split(m: Option<Measured>) -> (Option<f64>, Option<f64>, Option<f64>) {
    match m {
        Some(Measured::Climate {
            temperature,
            humidity,
        }) => (Some(temperature), Some(humidity), None),
        Some(Measured::Tripped(b) | Measured::Switched(b)) => {
            (None, None, Some(if b { 1.0 } else { 0.0 }))
        }
        None => (None, None, None),
    }
}

/// One check of a point: the alarm's condition holds (`bad`), its clear condition holds
/// (`good`), for how long it must hold, and what the alarm says.
struct Check {
    kind: AlarmKind,
    bad: bool,
    good: bool,
    hold: Duration,
    message: String,
    /// The numbers `message` is made of, for a client to word in its reader's language.
    params: serde_json::Value,
}

/// A reading as an alarm quotes it: to a tenth.
fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// The environment's state and decisions.
pub struct Engine {
    /// Shared so that a step can walk the points and zones while it changes the state.
    config: Arc<EnvironmentConfig>,
    stale_after: HashMap<String, Duration>,
    snapshot: Snapshot,
    conditions: HashMap<(AlarmKind, String), Condition>,
    dehumidifiers: HashMap<String, Switch>,
    last_sent: HashMap<String, Instant>,
    /// The ranges as their controllers last reported them.
    ranges: HashMap<u16, RangeView>,
    /// When each range was last moved by someone other than us.
    last_used: HashMap<u16, Instant>,
    /// Ranges whose carriages are moving with no operation of the controller's.
    moving_unbidden: HashSet<u16>,
    /// Zones whose dampness already asked for ventilation (until it dries).
    damp: HashMap<String, bool>,
    /// Ranges ventilated since their zone became damp, and when each damp zone last tried:
    /// a ventilation refused (someone in an aisle, the range in use) is tried again.
    ventilated: HashSet<u16>,
    last_ventilation: HashMap<String, Instant>,
    next_ventilation: Option<DateTime<Utc>>,
    pending: Vec<Reading>,
    last_purge: Option<Instant>,
    last_swing: Instant,
    started: Instant,
    out: Vec<Effect>,
}

impl Engine {
    pub fn new(
        config: EnvironmentConfig,
        stale_after: HashMap<String, Duration>,
        now: Now,
    ) -> Engine {
        let mut engine = Engine {
            config: Arc::new(config),
            stale_after,
            snapshot: Snapshot::default(),
            conditions: HashMap::new(),
            dehumidifiers: HashMap::new(),
            last_sent: HashMap::new(),
            ranges: HashMap::new(),
            last_used: HashMap::new(),
            moving_unbidden: HashSet::new(),
            damp: HashMap::new(),
            ventilated: HashSet::new(),
            last_ventilation: HashMap::new(),
            next_ventilation: None,
            pending: Vec::new(),
            last_purge: None,
            last_swing: now.at,
            started: now.at,
            out: Vec::new(),
        };
        engine.next_ventilation = engine.next_cron(now.wall);
        engine
    }

    /// The points as they stand, for the API.
    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    fn effects(&mut self) -> Vec<Effect> {
        std::mem::take(&mut self.out)
    }

    /// Alarms left open by the last run stay open: their conditions start raised, and smoke
    /// and water forbid motion again at once.
    pub fn resume(&mut self, open: &[AlarmView]) -> Vec<Effect> {
        for a in open {
            if matches!(a.kind, AlarmKind::Smoke | AlarmKind::Water) {
                self.interlock(a.kind, &a.zone, &a.sensor, Some(a.message.clone()));
            }
            self.conditions
                .entry((a.kind, a.sensor.clone()))
                .or_default()
                .set_raised();
        }
        self.effects()
    }

    /// A range as its controller reports it.
    pub fn range(&mut self, view: &RangeView) -> Vec<Effect> {
        self.ranges.insert(view.range, view.clone());
        self.unbidden(view);
        self.effects()
    }

    /// An operation of a range controller changed.
    pub fn operation(&mut self, op: &OperationView, now: Now) -> Vec<Effect> {
        if op.actor == ACTOR {
            self.secured(op, now);
        } else {
            self.last_used.insert(op.range, now.at);
        }
        self.effects()
    }

    /// A bridge or device says a point can or cannot report: unavailable, it is stale now
    /// (the next tick raises `sensor_stale` with the reason); available again, its last
    /// reading counts again if it is still young enough (a bridge restarted in a minute does
    /// not make every hourly battery sensor stale until it next reports).
    pub fn availability(
        &mut self,
        point: &str,
        available: bool,
        why: String,
        now: Now,
    ) -> Vec<Effect> {
        let l = self.snapshot.latest.entry(point.to_string()).or_default();
        let was = l.unavailable.is_none();
        l.unavailable = (!available).then_some(why);
        if was != available {
            tracing::info!(%point, available, "availability");
        }
        self.publish(point, now);
        self.effects()
    }

    /// A reading.
    pub fn reading(&mut self, o: Observation, now: Now) -> Vec<Effect> {
        let (temperature, humidity, value) = split(Some(o.value));
        self.pending.push(Reading {
            point: o.point.clone(),
            at_ms: o.at.timestamp_millis(),
            temperature,
            humidity,
            value,
        });
        let l = self.snapshot.latest.entry(o.point.clone()).or_default();
        let changed = l.measured != Some(o.value);
        l.measured = Some(o.value);
        l.at = Some(o.at);
        l.seen = Some(now.at);
        if let Measured::Switched(on) = o.value {
            self.dehumidifiers
                .entry(o.point.clone())
                .or_insert_with(|| Switch::new(on));
        }
        self.evaluate_point(&o.point, now);
        if changed {
            self.publish(&o.point, now);
        }
        self.effects()
    }

    /// Time passes: history written, held conditions and stale sensors checked, the
    /// dehumidifiers switched, the ranges ventilated.
    pub fn tick(&mut self, now: Now) -> Vec<Effect> {
        if !self.pending.is_empty() {
            self.out
                .push(Effect::Record(std::mem::take(&mut self.pending)));
        }
        if self
            .last_purge
            .is_none_or(|t| now.at.duration_since(t) >= PURGE_EVERY)
        {
            self.last_purge = Some(now.at);
            self.out.push(Effect::Purge {
                now_ms: now.wall.timestamp_millis(),
            });
        }
        self.stale_sensors(now);
        if now.at.duration_since(self.last_swing) >= SWING_EVERY {
            self.last_swing = now.at;
            let since = now.wall - chrono::Duration::hours(24);
            for p in self
                .config
                .points
                .iter()
                .filter(|p| p.kind == PointKind::Climate)
            {
                self.out.push(Effect::ReadExtremes {
                    point: p.id.clone(),
                    since,
                });
            }
        }
        self.dehumidify(now);
        self.ventilation(now);
        self.effects()
    }

    /// The last 24 h's extremes of a climate point (asked for with
    /// [`Effect::ReadExtremes`]): the daily swing alarms.
    pub fn extremes(
        &mut self,
        point: &str,
        (t_min, t_max, h_min, h_max): (f64, f64, f64, f64),
        now: Now,
    ) -> Vec<Effect> {
        let Some(p) = self.config.point(point) else {
            return Vec::new();
        };
        let Some(zone) = self.config.zone(&p.zone) else {
            return Vec::new();
        };
        let (dt, dh) = (t_max - t_min, h_max - h_min);
        let checks = [
            Check {
                kind: AlarmKind::TemperatureSwing,
                bad: dt > zone.swing_temperature,
                good: dt <= zone.swing_temperature - self.config.clear_temperature,
                hold: Duration::ZERO,
                message: format!(
                    "{point}: the temperature moved {dt:.1} °C in 24 h (at most {:.1})",
                    zone.swing_temperature
                ),
                params: json!({"value": round1(dt), "limit": zone.swing_temperature}),
            },
            Check {
                kind: AlarmKind::HumiditySwing,
                bad: dh > zone.swing_humidity,
                good: dh <= zone.swing_humidity - self.config.clear_humidity,
                hold: Duration::ZERO,
                message: format!(
                    "{point}: the humidity moved {dh:.1} % in 24 h (at most {:.0})",
                    zone.swing_humidity
                ),
                params: json!({"value": round1(dh), "limit": zone.swing_humidity}),
            },
        ];
        let zone = p.zone.clone();
        for check in checks {
            self.condition(check, &zone, point, now);
        }
        self.effects()
    }

    // ------------------------------------------------------------------------ decisions

    fn next_cron(&self, wall: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let cron = self.config.ventilation.cron.as_ref()?;
        cron.find_next_occurrence(&wall, false).ok()
    }

    fn fresh(&self, point: &str, now: Instant) -> bool {
        self.snapshot.fresh(&self.stale_after, point, now)
    }

    /// Carriages that move with no operation of the controller's: an `unexpected_motion`
    /// alarm (the range controller is already stopping them), raised once per episode and
    /// left active until someone acknowledges it.
    fn unbidden(&mut self, view: &RangeView) {
        if !view.unexpected_motion {
            self.moving_unbidden.remove(&view.range);
            return;
        }
        if !self.moving_unbidden.insert(view.range) {
            return;
        }
        tracing::error!(range = view.range, "unexpected motion: alarm raised");
        self.out.push(Effect::Raise {
            kind: AlarmKind::UnexpectedMotion,
            zone: self.zone_of(view.range).unwrap_or_default(),
            sensor: format!("range-{}", view.range),
            message: format!(
                "the carriages of range {} moved and no operation asked for it; stop sent",
                view.range
            ),
            params: json!({"range": view.range}),
        });
    }

    fn zone_of(&self, range: u16) -> Option<String> {
        self.config
            .zones
            .iter()
            .find(|z| z.ranges.contains(&range))
            .map(|z| z.id.clone())
    }

    /// Sends a point's view to the event stream, its alarm state included.
    fn publish(&mut self, point: &str, now: Now) {
        let alarmed: Vec<String> = self
            .conditions
            .iter()
            .filter(|(_, c)| c.raised())
            .map(|((_, sensor), _)| sensor.clone())
            .collect();
        if let Some(p) = self.config.point(point) {
            let view = self.snapshot.view(p, &self.stale_after, &alarmed, now.at);
            self.out.push(Effect::Publish(view));
        }
    }

    /// Checks one point's conditions against its latest value.
    fn evaluate_point(&mut self, id: &str, now: Now) {
        let Some(point) = self.config.point(id) else {
            return;
        };
        let Some(zone) = self.config.zone(&point.zone) else {
            return;
        };
        if !self.fresh(id, now.at) {
            return;
        }
        let measured = self.snapshot.latest.get(id).and_then(|l| l.measured);
        let config = &self.config;
        let (checks, outside) = match measured {
            Some(Measured::Climate {
                temperature: t,
                humidity: h,
            }) => {
                let (tb, hb) = (zone.temperature, zone.humidity);
                let (mt, mh) = (config.clear_temperature, config.clear_humidity);
                let hold = config.hold;
                let checks = vec![
                    Check {
                        kind: AlarmKind::TemperatureHigh,
                        bad: t > tb.max,
                        good: t <= tb.max - mt,
                        hold,
                        message: format!("{id} is {t:.1} °C, above the zone's {:.1} °C", tb.max),
                        params: json!({"value": round1(t), "limit": tb.max}),
                    },
                    Check {
                        kind: AlarmKind::TemperatureLow,
                        bad: t < tb.min,
                        good: t >= tb.min + mt,
                        hold,
                        message: format!("{id} is {t:.1} °C, below the zone's {:.1} °C", tb.min),
                        params: json!({"value": round1(t), "limit": tb.min}),
                    },
                    Check {
                        kind: AlarmKind::HumidityHigh,
                        bad: h > hb.max,
                        good: h <= hb.max - mh,
                        hold,
                        message: format!("{id} is {h:.1} % RH, above the zone's {:.0} %", hb.max),
                        params: json!({"value": round1(h), "limit": hb.max}),
                    },
                    Check {
                        kind: AlarmKind::HumidityLow,
                        bad: h < hb.min,
                        good: h >= hb.min + mh,
                        hold,
                        message: format!("{id} is {h:.1} % RH, below the zone's {:.0} %", hb.min),
                        params: json!({"value": round1(h), "limit": hb.min}),
                    },
                ];
                (checks, t > tb.max || t < tb.min || h > hb.max || h < hb.min)
            }
            Some(Measured::Tripped(tripped)) => {
                let (kind, hold, message, params) = match point.kind {
                    PointKind::Smoke => (
                        AlarmKind::Smoke,
                        Duration::ZERO,
                        format!("{id}: smoke detected in zone {}", zone.name),
                        json!({}),
                    ),
                    PointKind::Water => (
                        AlarmKind::Water,
                        Duration::ZERO,
                        format!("{id}: water detected in zone {}", zone.name),
                        json!({}),
                    ),
                    _ => (
                        AlarmKind::DoorOpen,
                        config.door_open,
                        format!(
                            "{id}: the door is open for more than {} s",
                            config.door_open.as_secs()
                        ),
                        json!({"seconds": config.door_open.as_secs()}),
                    ),
                };
                let check = Check {
                    kind,
                    bad: tripped,
                    good: !tripped,
                    hold,
                    message,
                    params,
                };
                (vec![check], tripped)
            }
            _ => return,
        };
        let zone = point.zone.clone();
        self.snapshot.outside.insert(id.to_string(), outside);
        for check in checks {
            self.condition(check, &zone, id, now);
        }
    }

    fn condition(&mut self, check: Check, zone: &str, sensor: &str, now: Now) {
        let Check {
            kind,
            bad,
            good,
            hold,
            message,
            params,
        } = check;
        let change = self
            .conditions
            .entry((kind, sensor.to_string()))
            .or_default()
            .update(bad, good, hold, now.at);
        match change {
            Some(Change::Raise) => {
                tracing::warn!(%kind, %sensor, %message, "alarm raised");
                if matches!(kind, AlarmKind::Smoke | AlarmKind::Water) {
                    self.interlock(kind, zone, sensor, Some(message.clone()));
                }
                self.out.push(Effect::Raise {
                    kind,
                    zone: zone.to_string(),
                    sensor: sensor.to_string(),
                    message,
                    params,
                });
                self.publish(sensor, now);
                self.respond(kind, zone, now);
            }
            Some(Change::Clear) => {
                tracing::info!(%kind, %sensor, "alarm cleared");
                if matches!(kind, AlarmKind::Smoke | AlarmKind::Water) {
                    self.interlock(kind, zone, sensor, None);
                }
                self.out.push(Effect::Clear {
                    kind,
                    sensor: sensor.to_string(),
                });
                if kind == AlarmKind::HumidityHigh {
                    self.damp.insert(zone.to_string(), false);
                    if let Some(z) = self.config.zone(zone) {
                        let ranges = z.ranges.clone();
                        self.ventilated.retain(|r| !ranges.contains(r));
                    }
                }
                self.publish(sensor, now);
            }
            None => {}
        }
    }

    /// What the room does when an alarm is raised.
    fn respond(&mut self, kind: AlarmKind, zone: &str, now: Now) {
        let actions = match kind {
            AlarmKind::Smoke => self.config.on_smoke.clone(),
            AlarmKind::Water => self.config.on_water.clone(),
            AlarmKind::HumidityHigh => {
                if self.config.ventilation.humidity_above.is_none()
                    && !self.damp.get(zone).copied().unwrap_or(false)
                {
                    self.damp.insert(zone.to_string(), true);
                    self.ventilate(zone, "the zone is damp", now);
                }
                return;
            }
            _ => return,
        };
        let stop = actions.contains(&Action::Stop);
        let lock = actions.contains(&Action::Lock);
        if stop || lock {
            self.out.push(Effect::Secure { stop, lock });
        }
        for action in actions {
            if let Action::Relay { point, on } = action {
                self.switch(&point, on, now);
            }
        }
    }

    /// A smoke or water alarm forbids motion in its zone's ranges while it is active.
    fn interlock(&mut self, kind: AlarmKind, zone: &str, sensor: &str, message: Option<String>) {
        let Some(z) = self.config.zone(zone) else {
            return;
        };
        self.out.push(Effect::Interlock {
            ranges: z.ranges.clone(),
            key: format!("{kind}:{sensor}"),
            words: message.map(|m| format!("{kind} alarm ({m})")),
        });
    }

    /// A stop or lock of ours that a range could not confirm raises `range_unsecured`; the
    /// lock confirmed later clears it.
    fn secured(&mut self, op: &OperationView, now: Now) {
        if op.kind == "ventilate" && op.state == OpState::Done {
            self.ventilated.insert(op.range);
        }
        if op.kind != "stop" && op.kind != "lock" {
            return;
        }
        let zone = self
            .zone_of(op.range)
            .or_else(|| self.config.zones.first().map(|z| z.id.clone()))
            .unwrap_or_default();
        let sensor = format!("range-{}", op.range);
        let (bad, message) = match op.state {
            OpState::Unconfirmed => (
                true,
                op.message.clone().unwrap_or_else(|| {
                    format!("range {} did not confirm the {}", op.range, op.kind)
                }),
            ),
            OpState::Done if op.kind == "lock" => (false, String::new()),
            _ => return,
        };
        let check = Check {
            kind: AlarmKind::RangeUnsecured,
            bad,
            good: !bad,
            hold: Duration::ZERO,
            message,
            params: json!({"range": op.range, "op": op.kind}),
        };
        self.condition(check, &zone, &sensor, now);
    }

    fn switch(&mut self, point: &str, on: bool, now: Now) {
        self.snapshot
            .latest
            .entry(point.to_string())
            .or_default()
            .wanted = Some(on);
        self.out.push(Effect::Switch {
            point: point.to_string(),
            on,
        });
        self.last_sent.insert(point.to_string(), now.at);
    }

    /// Spreads the zone's ranges that nobody uses (通风); the range controller still
    /// checks every interlock.
    fn ventilate(&mut self, zone: &str, why: &'static str, now: Now) {
        let Some(z) = self.config.zone(zone) else {
            return;
        };
        self.last_ventilation.insert(zone.to_string(), now.at);
        for &range in &z.ranges {
            if self.ventilated.contains(&range) {
                continue;
            }
            let Some(view) = self.ranges.get(&range) else {
                continue;
            };
            let recently = self
                .last_used
                .get(&range)
                .is_some_and(|&t| now.at.duration_since(t) < self.config.ventilation.idle);
            let busy = view.motion != RangeMotion::Idle
                || !view.occupied_aisles.is_empty()
                || view.obstacle
                || view.locked
                || view.estop
                || !view.faults.is_empty()
                || view.link != LinkState::Up;
            if busy || recently {
                tracing::info!(range, %why, busy, recently, "not ventilating a range in use");
                continue;
            }
            self.out.push(Effect::Ventilate { range, why });
        }
    }

    /// Stale sensors, and the conditions that need time to pass.
    fn stale_sensors(&mut self, now: Now) {
        let config = Arc::clone(&self.config);
        for p in config.points.iter().filter(|p| !p.kind.is_actuator()) {
            let id = &p.id;
            let fresh = self.fresh(id, now.at);
            let limit = self.stale_after.get(id).copied().unwrap_or(DEFAULT_STALE);
            let latest = self.snapshot.latest.get(id);
            // A point not heard since the start gets its own limit's time to report.
            let starting = latest.is_none_or(|l| l.seen.is_none())
                && now.at.duration_since(self.started) <= limit;
            let (message, params) = match latest.and_then(|l| l.unavailable.as_ref()) {
                // The device's own words (a bridge's): passed on as they came.
                Some(why) => (format!("{id}: {why}"), json!({"why": why})),
                None => (
                    format!("{id}: no reading for more than {} s", limit.as_secs()),
                    json!({"seconds": limit.as_secs()}),
                ),
            };
            let check = Check {
                kind: AlarmKind::SensorStale,
                bad: !fresh && !starting,
                good: fresh,
                hold: Duration::ZERO,
                message,
                params,
            };
            self.condition(check, &p.zone, id, now);
            if fresh {
                self.evaluate_point(id, now);
            }
        }
    }

    fn dehumidify(&mut self, now: Now) {
        let config = Arc::clone(&self.config);
        for p in config
            .points
            .iter()
            .filter(|p| p.kind == PointKind::Dehumidifier)
        {
            let id = &p.id;
            let Some(zone) = config.zone(&p.zone) else {
                continue;
            };
            let humidity = self.zone_humidity(&zone.id, now.at);
            let Some(switch) = self.dehumidifiers.get_mut(id) else {
                continue; // its state is not known yet
            };
            let wanted = switch.decide(humidity, &zone.dehumidify, now.at);
            let latest = self.snapshot.latest.get_mut(id);
            let reported = latest.as_ref().and_then(|l| match l.measured {
                Some(Measured::Switched(b)) => Some(b),
                _ => None,
            });
            if let Some(l) = latest {
                l.wanted = Some(wanted);
            }
            let resend = self
                .last_sent
                .get(id)
                .is_none_or(|&t| now.at.duration_since(t) >= RESEND);
            if reported != Some(wanted) && resend {
                tracing::info!(point = %id, on = wanted, ?humidity, "dehumidifier");
                self.switch(id, wanted, now);
            }
        }
    }

    /// Ventilation: dampness over its own threshold, a damp zone trying again, and the
    /// schedule.
    fn ventilation(&mut self, now: Now) {
        let config = Arc::clone(&self.config);
        if let Some(limit) = config.ventilation.humidity_above {
            for z in &config.zones {
                let h = self.zone_humidity(&z.id, now.at);
                let was = self.damp.get(&z.id).copied().unwrap_or(false);
                match h {
                    Some(h) if h > limit && !was => {
                        self.damp.insert(z.id.clone(), true);
                        self.ventilate(&z.id, "the zone is damp", now);
                    }
                    Some(h) if h < limit - config.clear_humidity => {
                        self.damp.insert(z.id.clone(), false);
                        self.ventilated.retain(|r| !z.ranges.contains(r));
                    }
                    _ => {}
                }
            }
        }
        for z in &config.zones {
            let damp = self.damp.get(&z.id).copied().unwrap_or(false);
            let due = self
                .last_ventilation
                .get(&z.id)
                .is_none_or(|&t| now.at.duration_since(t) >= VENTILATION_RETRY);
            if damp && due && z.ranges.iter().any(|r| !self.ventilated.contains(r)) {
                self.ventilate(&z.id, "the zone is still damp", now);
            }
        }
        if let Some(at) = self.next_ventilation
            && now.wall >= at
        {
            self.next_ventilation = self.next_cron(now.wall);
            for z in &config.zones {
                self.ventilate(&z.id, "scheduled", now);
            }
        }
    }

    /// The highest fresh humidity of the zone's climate points.
    fn zone_humidity(&self, zone: &str, now: Instant) -> Option<f64> {
        self.config
            .points
            .iter()
            .filter(|p| p.zone == zone && p.kind == PointKind::Climate)
            .filter(|p| self.fresh(&p.id, now))
            .filter_map(|p| match self.snapshot.latest.get(&p.id)?.measured {
                Some(Measured::Climate { humidity, .. }) => Some(humidity),
                _ => None,
            })
            .reduce(f64::max)
    }
}

#[cfg(test)]
mod tests {
    //! A room of the demo's configuration driven on a clock of the test's own: hours pass
    //! in a few milliseconds, and every decision is read from the effects.

    use super::*;
    use crate::config::RoomConfig;
    use crate::environment::AlarmState;

    const DEHUMIDIFIER: &str = "dehumidifier-a";

    struct Room {
        engine: Engine,
        t0: Instant,
        wall0: DateTime<Utc>,
        elapsed: Duration,
    }

    fn demo_config() -> RoomConfig {
        RoomConfig::load(std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/config/demo-room.toml"
        )))
        .unwrap()
    }

    impl Room {
        /// The demo room at `wall` (`HH:MM:SS` on a day of the test's choosing).
        fn at(wall: &str) -> Room {
            let config = demo_config();
            let wall0 = format!("2026-11-30T{wall}Z").parse().unwrap();
            let t0 = Instant::now();
            let now = Now {
                at: t0,
                wall: wall0,
            };
            let engine = Engine::new(
                config.environment.clone(),
                super::super::stale_after(&config),
                now,
            );
            Room {
                engine,
                t0,
                wall0,
                elapsed: Duration::ZERO,
            }
        }

        fn now(&self) -> Now {
            Now {
                at: self.t0 + self.elapsed,
                wall: self.wall0 + self.elapsed,
            }
        }

        fn read(&mut self, point: &str, value: Measured) -> Vec<Effect> {
            let o = Observation {
                point: point.into(),
                at: self.now().wall,
                value,
            };
            let now = self.now();
            self.engine.reading(o, now)
        }

        /// Lets `time` pass in ticks; `report`: readings each point's device sends every
        /// second meanwhile.
        fn pass(&mut self, time: Duration, report: &[(&str, Measured)]) -> Vec<Effect> {
            let end = self.elapsed + time;
            let mut effects = Vec::new();
            let mut next_report = self.elapsed;
            while self.elapsed < end {
                self.elapsed = (self.elapsed + TICK).min(end);
                if self.elapsed >= next_report {
                    for (point, value) in report {
                        effects.extend(self.read(point, *value));
                    }
                    next_report += Duration::from_secs(1);
                }
                let now = self.now();
                effects.extend(self.engine.tick(now));
            }
            effects
        }

        fn state(&self, point: &str) -> PointState {
            let views = self.engine.snapshot().views(
                &self.engine.config,
                &self.engine.stale_after,
                &self.raised(),
                self.now().at,
            );
            views.into_iter().find(|v| v.id == point).unwrap().state
        }

        fn raised(&self) -> Vec<String> {
            self.engine
                .conditions
                .iter()
                .filter(|(_, c)| c.raised())
                .map(|((_, s), _)| s.clone())
                .collect()
        }
    }

    /// What every sensor of the demo room says on a quiet day, with `changed` instead
    /// where given.
    fn well<'a>(changed: &[(&'a str, Measured)]) -> Vec<(&'a str, Measured)> {
        let quiet = [
            ("th-a", climate(50.0)),
            ("th-bc", climate(50.0)),
            ("smoke-a", Measured::Tripped(false)),
            ("door", Measured::Tripped(false)),
            ("water-bc", Measured::Tripped(false)),
        ];
        let mut all: Vec<(&str, Measured)> = quiet
            .into_iter()
            .filter(|(p, _)| !changed.iter().any(|(c, _)| c == p))
            .collect();
        all.extend_from_slice(changed);
        all
    }

    fn climate(humidity: f64) -> Measured {
        Measured::Climate {
            temperature: 20.0,
            humidity,
        }
    }

    fn raised(effects: &[Effect]) -> Vec<(AlarmKind, String)> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::Raise { kind, sensor, .. } => Some((*kind, sensor.clone())),
                _ => None,
            })
            .collect()
    }

    fn cleared(effects: &[Effect]) -> Vec<(AlarmKind, String)> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::Clear { kind, sensor } => Some((*kind, sensor.clone())),
                _ => None,
            })
            .collect()
    }

    fn switched(effects: &[Effect], point: &str) -> Vec<bool> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::Switch { point: p, on } if p == point => Some(*on),
                _ => None,
            })
            .collect()
    }

    fn ventilated(effects: &[Effect]) -> Vec<u16> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::Ventilate { range, .. } => Some(*range),
                _ => None,
            })
            .collect()
    }

    fn idle_range(range: u16) -> RangeView {
        RangeView {
            range,
            carriages: vec![],
            open_aisle: Some(1),
            motion: RangeMotion::Idle,
            locked: false,
            estop: false,
            faults: vec![],
            occupied_aisles: vec![],
            obstacle: false,
            link: LinkState::Up,
            link_error: None,
            updated_at: None,
            operation: None,
            stop_pending: false,
            interlocks: vec![],
            unexpected_motion: false,
        }
    }

    fn operation(range: u16, kind: &str, actor: &str, state: OpState) -> OperationView {
        OperationView {
            id: format!("op-{range}-{kind}"),
            range,
            kind: kind.into(),
            actor: actor.into(),
            state,
            reason: None,
            message: None,
            started_at: Utc::now(),
            finished_at: None,
        }
    }

    #[test]
    fn damp_air_warns_then_raises_one_alarm_after_the_hold_and_the_dehumidifier_keeps_its_minimum_on_time()
     {
        let mut room = Room::at("09:00:00");
        room.read(DEHUMIDIFIER, Measured::Switched(false));
        let dry = well(&[(DEHUMIDIFIER, Measured::Switched(false))]);
        let effects = room.pass(Duration::from_secs(5), &dry);
        assert!(raised(&effects).is_empty(), "{effects:?}");
        assert_eq!(room.state("th-a"), PointState::Ok);

        // 70 % over the zone's 60 %: a warning at once, the alarm after the 20 s hold.
        let damp = well(&[
            ("th-a", climate(70.0)),
            (DEHUMIDIFIER, Measured::Switched(false)),
        ]);
        let effects = room.pass(Duration::from_millis(19_500), &damp);
        assert!(
            raised(&effects).is_empty(),
            "not before the hold: {effects:?}"
        );
        assert_eq!(room.state("th-a"), PointState::Warning);
        assert!(
            effects.iter().any(|e| matches!(e, Effect::Publish(v) if v.id == "th-a" && v.state == PointState::Warning)),
            "the warning is published"
        );
        // The dehumidifier goes on above its band at once, resent until the device agrees.
        let on = switched(&effects, DEHUMIDIFIER);
        assert!(on.len() >= 2 && on.iter().all(|&on| on), "{on:?}");

        let running = well(&[
            ("th-a", climate(70.0)),
            (DEHUMIDIFIER, Measured::Switched(true)),
        ]);
        let effects = room.pass(Duration::from_secs(1), &running);
        let alarms: Vec<&Effect> = effects
            .iter()
            .filter(|e| matches!(e, Effect::Raise { .. }))
            .collect();
        assert_eq!(alarms.len(), 1, "{effects:?}");
        let Effect::Raise {
            kind,
            zone,
            sensor,
            message,
            params,
        } = alarms[0]
        else {
            unreachable!()
        };
        assert_eq!(
            (*kind, zone.as_str(), sensor.as_str()),
            (AlarmKind::HumidityHigh, "a", "th-a")
        );
        assert!(message.contains("70.0 % RH"), "{message}");
        // The same numbers, for a client to word in its reader's language.
        assert_eq!(params["value"], 70.0, "{params}");
        assert!(params["limit"].is_number(), "{params}");
        assert_eq!(room.state("th-a"), PointState::Alarm);

        // It stays one alarm however long the air stays damp.
        let effects = room.pass(Duration::from_secs(600), &running);
        assert!(raised(&effects).is_empty(), "{effects:?}");
        assert!(
            switched(&effects, DEHUMIDIFIER).is_empty(),
            "confirmed, not resent"
        );

        // Dry again: cleared once the value is back by the margin, then the dehumidifier
        // off (its 20 s minimum on time is long over).
        let effects = room.pass(Duration::from_secs(1), &well(&[("th-a", climate(59.0))]));
        assert!(
            cleared(&effects).is_empty(),
            "inside, but not by the margin"
        );
        let effects = room.pass(Duration::from_secs(1), &well(&[("th-a", climate(50.0))]));
        assert_eq!(
            cleared(&effects),
            [(AlarmKind::HumidityHigh, "th-a".to_string())]
        );
        assert_eq!(switched(&effects, DEHUMIDIFIER).first(), Some(&false));
    }

    #[test]
    fn a_dehumidifier_switched_on_stays_on_for_its_minimum_time_even_when_the_air_dries() {
        let mut room = Room::at("09:00:00");
        room.read(DEHUMIDIFIER, Measured::Switched(false));
        let effects = room.pass(TICK, &well(&[("th-a", climate(59.0))]));
        assert_eq!(
            switched(&effects, DEHUMIDIFIER).first(),
            Some(&true),
            "above 58 %"
        );
        let on_at = room.elapsed;
        let dry = well(&[(DEHUMIDIFIER, Measured::Switched(true))]);
        let mut off_at = None;
        for _ in 0..60 {
            let effects = room.pass(TICK, &dry);
            if switched(&effects, DEHUMIDIFIER).contains(&false) {
                off_at = Some(room.elapsed);
                break;
            }
        }
        let on_for = off_at.expect("switched off") - on_at;
        assert!(
            (Duration::from_secs(20)..Duration::from_secs(21)).contains(&on_for),
            "on for {on_for:?}, the minimum is 20 s"
        );
    }

    #[test]
    fn smoke_forbids_motion_in_its_zone_stops_and_locks_the_room_and_clears_with_the_smoke() {
        let mut room = Room::at("09:00:00");
        let effects = room.read("smoke-a", Measured::Tripped(true));
        assert_eq!(
            raised(&effects),
            [(AlarmKind::Smoke, "smoke-a".to_string())]
        );
        let interlock = effects.iter().find_map(|e| match e {
            Effect::Interlock { ranges, key, words } => {
                Some((ranges.clone(), key.clone(), words.clone()))
            }
            _ => None,
        });
        let (ranges, key, words) = interlock.expect("an interlock");
        assert_eq!((ranges, key.as_str()), (vec![1], "smoke:smoke-a"));
        assert!(
            words
                .unwrap()
                .starts_with("smoke alarm (smoke-a: smoke detected")
        );
        assert!(effects.contains(&Effect::Secure {
            stop: true,
            lock: true
        }));
        // The interlock comes before the alarm is written: nothing waits on the store.
        let first = effects
            .iter()
            .position(|e| matches!(e, Effect::Interlock { .. }));
        let raise = effects
            .iter()
            .position(|e| matches!(e, Effect::Raise { .. }));
        assert!(first < raise, "{effects:?}");

        let effects = room.pass(
            Duration::from_secs(3),
            &well(&[("smoke-a", Measured::Tripped(true))]),
        );
        assert!(raised(&effects).is_empty(), "one alarm");

        let effects = room.read("smoke-a", Measured::Tripped(false));
        assert_eq!(
            cleared(&effects),
            [(AlarmKind::Smoke, "smoke-a".to_string())]
        );
        assert!(effects.contains(&Effect::Interlock {
            ranges: vec![1],
            key: "smoke:smoke-a".into(),
            words: None
        }));
    }

    #[test]
    fn an_open_door_raises_its_alarm_only_after_door_open_s() {
        let mut room = Room::at("09:00:00");
        let open = well(&[("door", Measured::Tripped(true))]);
        let effects = room.pass(Duration::from_secs(59), &open);
        assert!(raised(&effects).is_empty(), "{effects:?}");
        let effects = room.pass(Duration::from_secs(2), &open);
        assert_eq!(
            raised(&effects),
            [(AlarmKind::DoorOpen, "door".to_string())]
        );
        assert!(
            !effects.iter().any(|e| matches!(e, Effect::Secure { .. })),
            "a door stops nothing"
        );
    }

    #[test]
    fn a_battery_sensor_that_reports_hourly_is_not_stale_but_one_silent_past_its_class_limit_is() {
        let mut room = Room::at("09:00:00");
        room.read("th-bc", climate(50.0));
        // Quiet for an hour (a battery sensor reports on change or hourly): not stale.
        let effects = room.pass(Duration::from_secs(3600), &[("th-a", climate(50.0))]);
        assert!(
            !raised(&effects).contains(&(AlarmKind::SensorStale, "th-bc".into())),
            "{:?}",
            raised(&effects)
        );
        assert_eq!(room.state("th-bc"), PointState::Ok);
        room.read("th-bc", climate(50.5));
        // Silent past its class's 130 minutes: stale, and the alarm says how long.
        let effects = room.pass(
            Duration::from_secs(130 * 60 + 1),
            &[("th-a", climate(50.0))],
        );
        let stale: Vec<&Effect> = effects
            .iter()
            .filter(|e| matches!(e, Effect::Raise { kind: AlarmKind::SensorStale, sensor, .. } if sensor == "th-bc"))
            .collect();
        assert_eq!(stale.len(), 1, "{effects:?}");
        assert!(
            matches!(stale[0], Effect::Raise { message, .. } if message == "th-bc: no reading for more than 7800 s")
        );
        assert_eq!(room.state("th-bc"), PointState::Stale);
        // Heard again: cleared.
        room.read("th-bc", climate(50.0));
        let effects = room.pass(Duration::from_secs(1), &[]);
        assert_eq!(
            cleared(&effects),
            [(AlarmKind::SensorStale, "th-bc".to_string())]
        );
    }

    #[test]
    fn a_point_its_bridge_calls_unavailable_is_stale_at_once_with_the_reason() {
        let mut room = Room::at("09:00:00");
        room.read("th-bc", climate(50.0));
        room.pass(Duration::from_secs(1), &[]);
        let now = room.now();
        let effects = room
            .engine
            .availability("th-bc", false, "the bridge is offline".into(), now);
        assert!(effects.iter().any(
            |e| matches!(e, Effect::Publish(v) if v.id == "th-bc" && v.state == PointState::Stale)
        ));
        let effects = room.pass(Duration::from_millis(500), &[]);
        assert!(effects.iter().any(|e| matches!(e,
            Effect::Raise { kind: AlarmKind::SensorStale, message, .. } if message == "th-bc: the bridge is offline")));
        // Available again, it waits for a reading to be fresh.
        let now = room.now();
        room.engine.availability("th-bc", true, String::new(), now);
        assert_eq!(
            room.state("th-bc"),
            PointState::Alarm,
            "its last reading is young enough to count again; the stale alarm clears on the next tick"
        );
        let effects = room.pass(Duration::from_millis(500), &[]);
        assert_eq!(
            cleared(&effects),
            [(AlarmKind::SensorStale, "th-bc".to_string())]
        );
    }

    #[test]
    fn a_sensor_never_heard_gets_its_own_limit_to_report_after_the_start() {
        let mut room = Room::at("09:00:00");
        let stale_at = |room: &mut Room, seconds: u64| -> Vec<String> {
            let effects = room.pass(Duration::from_secs(seconds), &[]);
            raised(&effects)
                .into_iter()
                .filter(|(kind, _)| *kind == AlarmKind::SensorStale)
                .map(|(_, sensor)| sensor)
                .collect()
        };
        assert!(stale_at(&mut room, 5).is_empty());
        // The I/O module's points after its 5 s, the transmitter after its 10 s.
        let mut io = stale_at(&mut room, 1);
        io.sort();
        assert_eq!(io, ["door", "smoke-a"]);
        assert!(stale_at(&mut room, 4).is_empty());
        assert_eq!(stale_at(&mut room, 1), ["th-a"]);
        // A battery sensor gets its class's 130 minutes; actuators are no sensors.
        let later = stale_at(&mut room, 130 * 60);
        assert_eq!(later, ["th-bc", "water-bc"]);
    }

    #[test]
    fn a_damp_zone_ventilates_its_idle_ranges_not_one_in_use_and_retries_until_done() {
        let mut room = Room::at("09:00:00");
        let mut in_use = idle_range(3);
        in_use.occupied_aisles = vec![4];
        for view in [idle_range(1), idle_range(2), in_use] {
            room.engine.range(&view);
        }
        // Range 2 was moved by someone 30 s ago: not idle for 60 s yet.
        let now = room.now();
        room.engine
            .operation(&operation(2, "open", "demo", OpState::Done), now);
        let effects = room.pass(Duration::from_secs(30), &well(&[("th-bc", climate(70.0))]));
        assert!(ventilated(&effects).is_empty(), "{effects:?}");

        // Still damp when range 2 has been idle for its 60 s: ventilated; range 3 never.
        let effects = room.pass(Duration::from_secs(35), &well(&[("th-bc", climate(70.0))]));
        assert_eq!(ventilated(&effects), [2], "{effects:?}");
        // Refused (nothing came back done): asked again ten seconds later.
        let effects = room.pass(Duration::from_secs(10), &well(&[("th-bc", climate(70.0))]));
        assert_eq!(ventilated(&effects), [2]);
        let now = room.now();
        room.engine
            .operation(&operation(2, "ventilate", ACTOR, OpState::Done), now);
        // The person leaves range 3: it is ventilated on the next try; range 2 not again.
        room.engine.range(&idle_range(3));
        let effects = room.pass(Duration::from_secs(10), &well(&[("th-bc", climate(70.0))]));
        assert_eq!(ventilated(&effects), [3]);
        let now = room.now();
        room.engine
            .operation(&operation(3, "ventilate", ACTOR, OpState::Done), now);
        let effects = room.pass(Duration::from_secs(60), &well(&[("th-bc", climate(70.0))]));
        assert!(
            ventilated(&effects).is_empty(),
            "all done while it stays damp"
        );
        assert!(
            !ventilated(&effects).contains(&1),
            "range 1 is another zone"
        );
    }

    #[test]
    fn the_schedule_ventilates_every_zone_at_its_hour() {
        let mut room = Room::at("13:59:00");
        for r in 1..=3 {
            room.engine.range(&idle_range(r));
        }
        let report = well(&[]);
        let effects = room.pass(Duration::from_secs(59), &report);
        assert!(ventilated(&effects).is_empty(), "{effects:?}");
        let effects = room.pass(Duration::from_secs(2), &report);
        assert_eq!(ventilated(&effects), [1, 2, 3]);
        let effects = room.pass(Duration::from_secs(3600), &report);
        assert!(ventilated(&effects).is_empty(), "once a day");
    }

    #[test]
    fn a_stop_of_ours_that_a_range_does_not_confirm_raises_range_unsecured_until_its_lock_is_done()
    {
        let mut room = Room::at("09:00:00");
        let now = room.now();
        let mut stop = operation(2, "stop", ACTOR, OpState::Unconfirmed);
        stop.message = Some("range 2 did not answer".into());
        let effects = room.engine.operation(&stop, now);
        assert_eq!(
            raised(&effects),
            [(AlarmKind::RangeUnsecured, "range-2".to_string())]
        );
        assert!(
            matches!(&effects[..], [Effect::Raise { zone, message, .. }, ..] if zone == "bc" && message == "range 2 did not answer")
        );
        // Someone else's stop is none of the environment's business.
        let effects = room
            .engine
            .operation(&operation(1, "stop", "demo", OpState::Unconfirmed), now);
        assert!(raised(&effects).is_empty());
        let effects = room
            .engine
            .operation(&operation(2, "lock", ACTOR, OpState::Done), now);
        assert_eq!(
            cleared(&effects),
            [(AlarmKind::RangeUnsecured, "range-2".to_string())]
        );
    }

    #[test]
    fn unexpected_motion_raises_one_alarm_per_episode() {
        let mut room = Room::at("09:00:00");
        let mut moving = idle_range(1);
        moving.unexpected_motion = true;
        assert_eq!(
            raised(&room.engine.range(&moving)),
            [(AlarmKind::UnexpectedMotion, "range-1".to_string())]
        );
        assert!(raised(&room.engine.range(&moving)).is_empty());
        room.engine.range(&idle_range(1));
        assert_eq!(
            raised(&room.engine.range(&moving)).len(),
            1,
            "a new episode"
        );
    }

    #[test]
    fn the_days_swing_is_checked_once_a_minute_against_the_history() {
        let mut room = Room::at("09:00:00");
        let report = well(&[]);
        let effects = room.pass(Duration::from_secs(60), &report);
        let asked: Vec<&Effect> = effects
            .iter()
            .filter(|e| matches!(e, Effect::ReadExtremes { .. }))
            .collect();
        assert_eq!(asked.len(), 2, "both climate points: {asked:?}");
        assert!(
            effects.iter().position(|e| matches!(e, Effect::Record(_)))
                < effects
                    .iter()
                    .position(|e| matches!(e, Effect::ReadExtremes { .. })),
            "the readings are written before the history is asked"
        );
        let now = room.now();
        let effects = room.engine.extremes("th-a", (14.0, 24.5, 48.0, 52.0), now);
        assert_eq!(
            raised(&effects),
            [(AlarmKind::TemperatureSwing, "th-a".to_string())]
        );
        let effects = room.engine.extremes("th-a", (18.0, 20.0, 48.0, 52.0), now);
        assert_eq!(
            cleared(&effects),
            [(AlarmKind::TemperatureSwing, "th-a".to_string())]
        );
    }

    #[test]
    fn alarms_open_at_start_stay_raised_and_smoke_forbids_motion_again_at_once() {
        let mut room = Room::at("09:00:00");
        let open = AlarmView {
            id: 7,
            kind: AlarmKind::Smoke,
            zone: "a".into(),
            sensor: "smoke-a".into(),
            state: AlarmState::Acknowledged,
            raised_at: room.wall0,
            message: "smoke-a: smoke detected in zone Range A".into(),
            params: serde_json::json!({}),
            acked_at: None,
            acked_by: None,
            ack_note: None,
            cleared_at: None,
        };
        let effects = room.engine.resume(&[open]);
        assert!(
            matches!(&effects[..], [Effect::Interlock { ranges, words: Some(_), .. }] if ranges == &[1])
        );
        let effects = room.read("smoke-a", Measured::Tripped(true));
        assert!(raised(&effects).is_empty(), "not raised twice");
        let effects = room.read("smoke-a", Measured::Tripped(false));
        assert_eq!(
            cleared(&effects),
            [(AlarmKind::Smoke, "smoke-a".to_string())]
        );
    }
}

//! The `[environment]` part of a room config: zones with their limits, the points (sensors
//! and actuators) on the devices, what to do on smoke or water, when to ventilate.

use std::collections::HashSet;
use std::time::Duration;

use serde::Deserialize;

use super::{Device, DeviceKind, Transport};
use crate::layout::Layout;
use crate::name::Name;
use stackroom_wire::profile::Protocol;

/// What a point measures or drives.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum PointKind {
    /// Temperature and relative humidity.
    Climate,
    Smoke,
    Water,
    /// A door contact (tripped: open).
    Door,
    Dehumidifier,
    Fan,
    /// Any other relay (a door lock, a siren), switched by the smoke/water actions.
    Relay,
}

impl PointKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PointKind::Climate => "climate",
            PointKind::Smoke => "smoke",
            PointKind::Water => "water",
            PointKind::Door => "door",
            PointKind::Dehumidifier => "dehumidifier",
            PointKind::Fan => "fan",
            PointKind::Relay => "relay",
        }
    }

    pub fn is_binary_sensor(self) -> bool {
        matches!(self, PointKind::Smoke | PointKind::Water | PointKind::Door)
    }

    pub fn is_actuator(self) -> bool {
        matches!(
            self,
            PointKind::Dehumidifier | PointKind::Fan | PointKind::Relay
        )
    }
}

/// Where on its device a point is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Address {
    /// The device's climate registers (a Modbus transmitter).
    Climate,
    /// Discrete input N of a Modbus module.
    Input(u16),
    /// Coil N of a Modbus module.
    Coil(u16),
    /// A Zigbee2MQTT device's friendly name.
    Topic(String),
}

#[derive(Debug, Clone)]
pub struct Point {
    pub id: String,
    pub kind: PointKind,
    pub zone: String,
    pub device: String,
    pub address: Address,
}

/// A band with its lower and upper limit.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct Band {
    pub min: f64,
    pub max: f64,
}

impl Band {
    fn check(self, what: &str) -> Result<(), String> {
        if !(self.min.is_finite() && self.max.is_finite() && self.min < self.max) {
            return Err(format!("{what}: min must be below max"));
        }
        Ok(())
    }
}

/// The dehumidifier's switching points and its compressor's minimum times.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dehumidify {
    /// Switch on above this relative humidity (%).
    pub on_above: f64,
    /// Switch off below this one.
    pub off_below: f64,
    pub min_on: Duration,
    pub min_off: Duration,
    /// What the dehumidifier does while the zone has no fresh humidity reading.
    pub without_reading: WithoutReading,
}

/// The dehumidifier's policy while no climate sensor of its zone has a fresh reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum WithoutReading {
    /// Off (after its minimum on time): nothing runs on a guess; the `sensor_stale` alarm
    /// asks a person to look. The default: paper dried below 45 % suffers too.
    #[default]
    Off,
    /// Keep the last state.
    Keep,
    /// On (after its minimum off time), for rooms where damp is the greater danger.
    On,
}

#[derive(Debug, Clone)]
pub struct Zone {
    pub id: String,
    pub name: Name,
    pub ranges: Vec<u16>,
    pub temperature: Band,
    pub humidity: Band,
    /// Largest allowed difference between the day's highest and lowest value.
    pub swing_temperature: f64,
    pub swing_humidity: f64,
    pub dehumidify: Dehumidify,
}

/// What the room does when a smoke or water sensor trips.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Stop every range.
    Stop,
    /// Lock every range.
    Lock,
    /// Switch a relay point on or off.
    Relay { point: String, on: bool },
}

#[derive(Debug, Clone)]
pub struct Ventilation {
    /// Spread the zone's ranges when its humidity goes above this.
    pub humidity_above: Option<f64>,
    /// And on this schedule.
    pub cron: Option<croner::Cron>,
    /// Only a range nobody has used for this long.
    pub idle: Duration,
}

#[derive(Debug, Clone)]
pub struct EnvironmentConfig {
    pub zones: Vec<Zone>,
    pub points: Vec<Point>,
    /// How long a condition must hold before its alarm is raised.
    pub hold: Duration,
    /// How far back inside the limits a value must come for its alarm to clear.
    pub clear_temperature: f64,
    pub clear_humidity: f64,
    /// A door open longer than this raises an alarm.
    pub door_open: Duration,
    pub on_smoke: Vec<Action>,
    pub on_water: Vec<Action>,
    pub ventilation: Ventilation,
    /// Raw readings are kept this many days, per-minute aggregates this many; per-hour
    /// aggregates are kept for ever.
    pub raw_days: u32,
    pub minute_days: u32,
}

impl EnvironmentConfig {
    pub fn zone(&self, id: &str) -> Option<&Zone> {
        self.zones.iter().find(|z| z.id == id)
    }

    pub fn point(&self, id: &str) -> Option<&Point> {
        self.points.iter().find(|p| p.id == id)
    }
}

// ---------------------------------------------------------------------------- the file

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawEnvironment {
    #[serde(default)]
    zones: Vec<RawZone>,
    #[serde(default)]
    points: Vec<RawPoint>,
    hold_s: Option<u64>,
    clear_margin: Option<RawMargin>,
    door_open_s: Option<u64>,
    on_smoke: Option<Vec<String>>,
    on_water: Option<Vec<String>>,
    #[serde(default)]
    ventilate: RawVentilate,
    raw_days: Option<u32>,
    minute_days: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMargin {
    temperature_c: f64,
    humidity_pct: f64,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawVentilate {
    humidity_above: Option<f64>,
    cron: Option<String>,
    idle_s: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawZone {
    id: String,
    #[serde(default)]
    name: Name,
    ranges: Vec<u16>,
    temperature_c: Option<Band>,
    humidity_pct: Option<Band>,
    swing_temperature_c: Option<f64>,
    swing_humidity_pct: Option<f64>,
    #[serde(default)]
    dehumidify: RawDehumidify,
}

/// A Zigbee2MQTT friendly name as the bridge allows it: '/' groups devices, but a name does
/// not start or end with one, is not under `bridge/`, and does not end as the bridge's own
/// sub-topics do.
fn valid_friendly_name(t: &str) -> bool {
    !t.is_empty()
        && !t.contains(['#', '+'])
        && !t.starts_with('/')
        && !t.ends_with('/')
        && !t.contains("//")
        && t != "bridge"
        && !t.starts_with("bridge/")
        && !["/set", "/get", "/availability"]
            .iter()
            .any(|s| t.ends_with(s))
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDehumidify {
    on_above_pct: Option<f64>,
    off_below_pct: Option<f64>,
    min_on_s: Option<u64>,
    min_off_s: Option<u64>,
    #[serde(default)]
    without_reading: WithoutReading,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPoint {
    id: String,
    kind: PointKind,
    zone: String,
    device: String,
    input: Option<u16>,
    coil: Option<u16>,
    topic: Option<String>,
}

/// The archive-room standard for paper: 14–24 °C, 45–60 % RH, a daily swing within
/// ±2 °C and ±5 % (so 4 °C and 10 % between the day's extremes).
const PAPER_TEMPERATURE: Band = Band {
    min: 14.0,
    max: 24.0,
};
const PAPER_HUMIDITY: Band = Band {
    min: 45.0,
    max: 60.0,
};

fn action(text: &str, points: &[Point]) -> Result<Action, String> {
    match text {
        "stop" => Ok(Action::Stop),
        "lock" => Ok(Action::Lock),
        _ => {
            let spec = text.strip_prefix("relay:").ok_or_else(|| {
                format!("'{text}': an action is stop, lock or relay:POINT:on|off")
            })?;
            let (point, state) = spec
                .rsplit_once(':')
                .ok_or_else(|| format!("'{text}': relay:POINT:on|off"))?;
            let on = match state {
                "on" => true,
                "off" => false,
                _ => return Err(format!("'{text}': relay:POINT:on|off")),
            };
            if !points.iter().any(|p| p.id == point && p.kind.is_actuator()) {
                return Err(format!("'{text}': no actuator point '{point}'"));
            }
            Ok(Action::Relay {
                point: point.to_string(),
                on,
            })
        }
    }
}

/// Checks the section against the room's devices and layout; errors are (key, message).
pub(crate) fn check(
    raw: RawEnvironment,
    devices: &[Device],
    layout: &Layout,
) -> Result<EnvironmentConfig, (String, String)> {
    let fail = |key: String, message: String| Err((key, message));
    let mut zones = Vec::new();
    let mut covered = HashSet::new();
    for (i, z) in raw.zones.into_iter().enumerate() {
        let key = |k: &str| format!("environment.zones[{i}].{k}");
        if z.id.is_empty() || zones.iter().any(|o: &Zone| o.id == z.id) {
            return fail(key("id"), format!("'{}' is empty or used twice", z.id));
        }
        for r in &z.ranges {
            if layout.range(*r).is_none() {
                return fail(key("ranges"), format!("the room has no range {r}"));
            }
            if !covered.insert(*r) {
                return fail(key("ranges"), format!("range {r} is in two zones"));
            }
        }
        let temperature = z.temperature_c.unwrap_or(PAPER_TEMPERATURE);
        let humidity = z.humidity_pct.unwrap_or(PAPER_HUMIDITY);
        temperature
            .check(&key("temperature_c"))
            .map_err(|m| (key("temperature_c"), m))?;
        humidity
            .check(&key("humidity_pct"))
            .map_err(|m| (key("humidity_pct"), m))?;
        let on_above = z.dehumidify.on_above_pct.unwrap_or(humidity.max);
        let off_below = z.dehumidify.off_below_pct.unwrap_or(humidity.max - 5.0);
        if off_below >= on_above {
            return fail(
                key("dehumidify"),
                "off_below_pct must be below on_above_pct (the hysteresis)".into(),
            );
        }
        zones.push(Zone {
            name: if z.name.is_empty() {
                z.id.clone().into()
            } else {
                z.name
            },
            id: z.id,
            ranges: z.ranges,
            temperature,
            humidity,
            swing_temperature: z.swing_temperature_c.unwrap_or(4.0),
            swing_humidity: z.swing_humidity_pct.unwrap_or(10.0),
            dehumidify: Dehumidify {
                on_above,
                off_below,
                min_on: Duration::from_secs(z.dehumidify.min_on_s.unwrap_or(300)),
                min_off: Duration::from_secs(z.dehumidify.min_off_s.unwrap_or(300)),
                without_reading: z.dehumidify.without_reading,
            },
        });
    }
    let mut points: Vec<Point> = Vec::new();
    let mut taken = HashSet::new();
    for (i, p) in raw.points.into_iter().enumerate() {
        let key = |k: &str| format!("environment.points[{i}].{k}");
        if p.id.is_empty() || points.iter().any(|o| o.id == p.id) {
            return fail(key("id"), format!("'{}' is empty or used twice", p.id));
        }
        if !zones.iter().any(|z| z.id == p.zone) {
            return fail(
                key("zone"),
                format!("no zone '{}' in environment.zones", p.zone),
            );
        }
        let Some(device) = devices.iter().find(|d| d.id == p.device) else {
            return fail(key("device"), format!("no device '{}'", p.device));
        };
        if device.spec.device.kind != DeviceKind::Environment {
            return fail(
                key("device"),
                format!("device '{}' is not an environment device", p.device),
            );
        }
        let address = match device.spec.device.protocol {
            Protocol::Zigbee2mqtt => {
                let topic = p.topic.clone().filter(|t| valid_friendly_name(t));
                match topic {
                    Some(t) if p.input.is_none() && p.coil.is_none() => Address::Topic(t),
                    _ => {
                        return fail(
                            key("topic"),
                            "a Zigbee2MQTT point needs the device's friendly name as topic (and no input or coil): '/' may group names, but not at either end, and no '#', '+', \"bridge/…\" or a name ending in /set, /get or /availability".into(),
                        );
                    }
                }
            }
            _ => {
                let Some(map) = &device.spec.modbus_environment else {
                    return fail(
                        key("device"),
                        "the device's profile has no environment map".into(),
                    );
                };
                match (p.kind, p.input, p.coil, &p.topic) {
                    (PointKind::Climate, None, None, None) if map.climate.is_some() => {
                        Address::Climate
                    }
                    (PointKind::Climate, ..) => {
                        return fail(
                            key("device"),
                            "a climate point is a device with climate registers, without input, coil or topic".into(),
                        );
                    }
                    (k, Some(n), None, None) if k.is_binary_sensor() && n < map.discrete_inputs => {
                        Address::Input(n)
                    }
                    (k, None, Some(n), None) if k.is_actuator() && n < map.coils => {
                        Address::Coil(n)
                    }
                    (k, ..) => {
                        let what = if k.is_actuator() {
                            format!("coil = 0..{}", map.coils)
                        } else {
                            format!("input = 0..{}", map.discrete_inputs)
                        };
                        return fail(
                            key("kind"),
                            format!("a {} point on a Modbus module needs {what}", k.as_str()),
                        );
                    }
                }
            }
        };
        if !taken.insert((p.device.clone(), address.clone())) {
            return fail(
                key("device"),
                "another point has the same device and address".into(),
            );
        }
        if matches!(device.transport, Transport::ModbusTcp { .. }) {
            return fail(
                key("device"),
                "environment devices are on serial lines or MQTT".into(),
            );
        }
        points.push(Point {
            id: p.id,
            kind: p.kind,
            zone: p.zone,
            device: p.device,
            address,
        });
    }
    let actions = |list: Option<Vec<String>>, key: &str| -> Result<Vec<Action>, (String, String)> {
        match list {
            None => Ok(vec![Action::Stop, Action::Lock]),
            Some(list) => list
                .iter()
                .map(|a| action(a, &points).map_err(|m| (format!("environment.{key}"), m)))
                .collect(),
        }
    };
    let on_smoke = actions(raw.on_smoke, "on_smoke")?;
    let on_water = actions(raw.on_water, "on_water")?;
    let cron = match raw.ventilate.cron {
        Some(text) => Some(text.parse::<croner::Cron>().map_err(|e| {
            (
                "environment.ventilate.cron".to_string(),
                format!("'{text}': {e}"),
            )
        })?),
        None => None,
    };
    let margin = raw.clear_margin.unwrap_or(RawMargin {
        temperature_c: 0.5,
        humidity_pct: 2.0,
    });
    if !(margin.temperature_c >= 0.0 && margin.humidity_pct >= 0.0) {
        return fail(
            "environment.clear_margin".into(),
            "margins are 0 or more".into(),
        );
    }
    let raw_days = raw.raw_days.unwrap_or(3);
    let minute_days = raw.minute_days.unwrap_or(14);
    if raw_days == 0 || minute_days < raw_days.min(1) {
        return fail(
            "environment.raw_days".into(),
            "keep raw readings at least a day".into(),
        );
    }
    Ok(EnvironmentConfig {
        zones,
        points,
        hold: Duration::from_secs(raw.hold_s.unwrap_or(300)),
        clear_temperature: margin.temperature_c,
        clear_humidity: margin.humidity_pct,
        door_open: Duration::from_secs(raw.door_open_s.unwrap_or(600)),
        on_smoke,
        on_water,
        ventilation: Ventilation {
            humidity_above: raw.ventilate.humidity_above,
            cron,
            idle: Duration::from_secs(raw.ventilate.idle_s.unwrap_or(600)),
        },
        raw_days,
        minute_days,
    })
}

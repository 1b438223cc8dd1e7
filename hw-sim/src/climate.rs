//! The room's climate and its environment devices.
//!
//! A seeded model per zone: temperature follows a daily cycle around 19 °C with a slow
//! random drift; humidity settles towards 52 % with its own drift, rises while a door of
//! the zone is open or it rains outside, and falls while the zone's dehumidifier runs.
//! Sensors read their zone (with a small offset of their own) unless a reading is forced
//! through the control API. Binary sensors (smoke, water, door) are tripped by hand.
//!
//! On the wires: a Modbus RTU transmitter / I/O module (climate registers ×scale, discrete
//! inputs, coils) and Zigbee2MQTT devices (JSON state on `{prefix}/{name}`, plugs switched
//! on `{prefix}/{name}/set`).

use std::collections::{BTreeMap, HashMap};
use std::future::{Ready, ready};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rumqttc::QoS;
use serde::{Deserialize, Serialize};
use stackroom_wire::profile::{ModbusEnvironment, RegisterTable, Zigbee2Mqtt};
use tokio_modbus::prelude::*;
use tokio_modbus::server::Service;

use crate::clock::Clock;
use crate::mqtt_devices::MqttDevice;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BinaryKind {
    Smoke,
    Water,
    /// Tripped: the door is open.
    Door,
}

/// An environment device and how it is reached.
#[derive(Debug, Clone)]
pub struct EnvDevice {
    pub device: String,
    pub wire: EnvWire,
}

#[derive(Debug, Clone)]
pub enum EnvWire {
    ModbusRtu {
        map: ModbusEnvironment,
        unit: u8,
        baud: u32,
        /// The climate sensor behind the climate registers.
        climate: Option<String>,
        /// Discrete input → binary sensor.
        inputs: Vec<(u16, String)>,
        /// Coil → actuator.
        coils: Vec<(u16, String)>,
    },
    Zigbee2mqtt {
        keys: Zigbee2Mqtt,
        prefix: String,
        /// Friendly name → point.
        points: Vec<(String, String)>,
    },
}

/// The climate part of the simulated room.
#[derive(Debug, Clone, Default)]
pub struct ClimateSpec {
    pub zones: Vec<String>,
    /// Climate sensors: id, zone.
    pub sensors: Vec<(String, String)>,
    pub binary: Vec<(String, BinaryKind, String)>,
    /// Actuators: id, whether it dehumidifies, zone.
    pub actuators: Vec<(String, bool, String)>,
    pub devices: Vec<EnvDevice>,
}

#[derive(Debug, Clone, Serialize)]
struct Air {
    temperature: f64,
    humidity: f64,
    #[serde(skip)]
    drift_t: f64,
    #[serde(skip)]
    drift_h: f64,
}

#[derive(Debug, Clone)]
struct Sensor {
    zone: String,
    offset: (f64, f64),
    forced: Option<(f64, f64)>,
}

/// What the simulator tells about the climate.
#[derive(Debug, Clone, Serialize)]
pub struct ClimateState {
    pub time_s: f64,
    pub raining: bool,
    pub zones: BTreeMap<String, (f64, f64)>,
    /// Sensor → (temperature, humidity, forced).
    pub sensors: BTreeMap<String, (f64, f64, bool)>,
    pub binary: BTreeMap<String, bool>,
    pub actuators: BTreeMap<String, bool>,
    /// Every actuator switch: point, on, simulated time (s).
    pub switches: Vec<(String, bool, f64)>,
}

/// The climate model; sans-IO: [`Climate::tick`] advances simulated time.
pub struct Climate {
    rng: u64,
    time_s: f64,
    rain_left_s: f64,
    zones: BTreeMap<String, Air>,
    sensors: HashMap<String, Sensor>,
    binary: BTreeMap<String, (BinaryKind, String, bool)>,
    actuators: BTreeMap<String, (bool, String, bool)>,
    switches: Vec<(String, bool, f64)>,
}

impl Climate {
    pub fn new(spec: &ClimateSpec, seed: u64) -> Climate {
        let mut c = Climate {
            rng: seed | 1,
            time_s: 0.0,
            rain_left_s: 0.0,
            zones: BTreeMap::new(),
            sensors: HashMap::new(),
            binary: BTreeMap::new(),
            actuators: BTreeMap::new(),
            switches: Vec::new(),
        };
        for z in &spec.zones {
            let (a, b) = (c.uniform() - 0.5, c.uniform() - 0.5);
            c.zones.insert(
                z.clone(),
                Air {
                    temperature: 19.0 + a,
                    humidity: 52.0 + 2.0 * b,
                    drift_t: a,
                    drift_h: 2.0 * b,
                },
            );
        }
        for (id, zone) in &spec.sensors {
            let offset = ((c.uniform() - 0.5) * 0.4, (c.uniform() - 0.5) * 1.0);
            c.sensors.insert(
                id.clone(),
                Sensor {
                    zone: zone.clone(),
                    offset,
                    forced: None,
                },
            );
        }
        for (id, kind, zone) in &spec.binary {
            c.binary.insert(id.clone(), (*kind, zone.clone(), false));
        }
        for (id, dry, zone) in &spec.actuators {
            c.actuators.insert(id.clone(), (*dry, zone.clone(), false));
        }
        c
    }

    fn uniform(&mut self) -> f64 {
        // xorshift64*
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        (self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Advances the model by `dt` simulated seconds.
    pub fn tick(&mut self, dt: f64) {
        if dt <= 0.0 {
            return;
        }
        self.time_s += dt;
        // Rain: about every three days, for three hours.
        if self.rain_left_s > 0.0 {
            self.rain_left_s -= dt;
        } else if self.uniform() < dt / (3.0 * 86_400.0) {
            self.rain_left_s = 3.0 * 3600.0;
        }
        let rain = self.rain_left_s > 0.0;
        let day = (self.time_s / 86_400.0 + 0.375) * std::f64::consts::TAU;
        let zones: Vec<String> = self.zones.keys().cloned().collect();
        for z in zones {
            let door = self
                .binary
                .values()
                .any(|(k, zone, on)| *k == BinaryKind::Door && *zone == z && *on);
            let dry = self
                .actuators
                .values()
                .any(|(d, zone, on)| *d && *zone == z && *on);
            let (wt, wh) = (self.uniform() - 0.5, self.uniform() - 0.5);
            let Some(air) = self.zones.get_mut(&z) else {
                continue;
            };
            let scale = (dt / 600.0).sqrt();
            air.drift_t = (air.drift_t + wt * 0.1 * scale).clamp(-1.5, 1.5);
            air.drift_h = (air.drift_h + wh * 0.5 * scale).clamp(-4.0, 4.0);
            let t_target = 19.0 + 1.2 * day.sin() + air.drift_t;
            let mut h_target = 52.0 + air.drift_h;
            if door {
                h_target += 12.0;
            }
            if rain {
                h_target += 8.0;
            }
            if dry {
                h_target -= 20.0;
            }
            air.temperature += (t_target - air.temperature) * (dt / 1800.0).min(1.0);
            air.humidity += (h_target - air.humidity) * (dt / 900.0).min(1.0);
            air.humidity = air.humidity.clamp(5.0, 99.0);
        }
    }

    /// A sensor's reading (°C, % RH), rounded as a transmitter would.
    pub fn reading(&self, sensor: &str) -> Option<(f64, f64)> {
        let s = self.sensors.get(sensor)?;
        let (t, h) = match s.forced {
            Some(f) => f,
            None => {
                let air = self.zones.get(&s.zone)?;
                (air.temperature + s.offset.0, air.humidity + s.offset.1)
            }
        };
        Some(((t * 10.0).round() / 10.0, (h * 10.0).round() / 10.0))
    }

    /// Forces a sensor's reading; `None` gives it back to the model.
    pub fn force(&mut self, sensor: &str, reading: Option<(f64, f64)>) -> bool {
        match self.sensors.get_mut(sensor) {
            Some(s) => {
                s.forced = reading;
                true
            }
            None => false,
        }
    }

    pub fn binary(&self, id: &str) -> Option<bool> {
        self.binary.get(id).map(|b| b.2)
    }

    pub fn set_binary(&mut self, id: &str, tripped: bool) -> bool {
        match self.binary.get_mut(id) {
            Some(b) => {
                b.2 = tripped;
                true
            }
            None => false,
        }
    }

    pub fn binary_kind(&self, id: &str) -> Option<BinaryKind> {
        self.binary.get(id).map(|b| b.0)
    }

    pub fn actuator(&self, id: &str) -> Option<bool> {
        self.actuators.get(id).map(|a| a.2)
    }

    pub fn set_actuator(&mut self, id: &str, on: bool) -> bool {
        let time = self.time_s;
        match self.actuators.get_mut(id) {
            Some(a) => {
                if a.2 != on {
                    self.switches.push((id.to_string(), on, time));
                }
                a.2 = on;
                true
            }
            None => false,
        }
    }

    pub fn state(&self) -> ClimateState {
        ClimateState {
            time_s: self.time_s,
            raining: self.rain_left_s > 0.0,
            zones: self
                .zones
                .iter()
                .map(|(z, a)| {
                    (
                        z.clone(),
                        (
                            (a.temperature * 10.0).round() / 10.0,
                            (a.humidity * 10.0).round() / 10.0,
                        ),
                    )
                })
                .collect(),
            sensors: self
                .sensors
                .iter()
                .filter_map(|(id, s)| {
                    let (t, h) = self.reading(id)?;
                    Some((id.clone(), (t, h, s.forced.is_some())))
                })
                .collect(),
            binary: self
                .binary
                .iter()
                .map(|(id, b)| (id.clone(), b.2))
                .collect(),
            actuators: self
                .actuators
                .iter()
                .map(|(id, a)| (id.clone(), a.2))
                .collect(),
            switches: self.switches.clone(),
        }
    }
}

/// Advances the model with simulated time.
pub async fn tick(climate: Arc<Mutex<Climate>>, clock: Clock) {
    let mut interval = tokio::time::interval(Duration::from_millis(100));
    let mut last = tokio::time::Instant::now();
    loop {
        interval.tick().await;
        let now = tokio::time::Instant::now();
        let dt = clock.simulated(now - last);
        last = now;
        if let Ok(mut c) = climate.lock() {
            c.tick(dt);
        }
    }
}

// ---------------------------------------------------------------------------- Modbus

/// A Modbus RTU environment device: climate registers, discrete inputs, coils.
#[derive(Clone)]
pub struct ModbusEnvDevice {
    climate: Arc<Mutex<Climate>>,
    map: Arc<ModbusEnvironment>,
    unit: u8,
    sensor: Option<String>,
    inputs: Arc<Vec<(u16, String)>>,
    coils: Arc<Vec<(u16, String)>>,
    online: Arc<AtomicBool>,
}

impl ModbusEnvDevice {
    /// `sensor`: the climate point its registers report; `inputs` and `coils`: the binary
    /// points at each address.
    pub fn new(
        climate: Arc<Mutex<Climate>>,
        map: ModbusEnvironment,
        unit: u8,
        sensor: Option<String>,
        inputs: Vec<(u16, String)>,
        coils: Vec<(u16, String)>,
        online: Arc<AtomicBool>,
    ) -> ModbusEnvDevice {
        ModbusEnvDevice {
            climate,
            map: Arc::new(map),
            unit,
            sensor,
            inputs: Arc::new(inputs),
            coils: Arc::new(coils),
            online,
        }
    }

    fn registers(
        &self,
        table: RegisterTable,
        addr: u16,
        count: u16,
    ) -> Result<Vec<u16>, ExceptionCode> {
        let c = self
            .map
            .climate
            .as_ref()
            .ok_or(ExceptionCode::IllegalFunction)?;
        if c.table != table {
            return Err(ExceptionCode::IllegalFunction);
        }
        let (t, h) = self
            .sensor
            .as_ref()
            .and_then(|s| self.climate.lock().ok()?.reading(s))
            .ok_or(ExceptionCode::ServerDeviceFailure)?;
        (addr..addr
            .checked_add(count)
            .ok_or(ExceptionCode::IllegalDataAddress)?)
            .map(|a| {
                if a == c.temperature {
                    Ok((t * c.scale).round() as i16 as u16)
                } else if a == c.humidity {
                    Ok((h * c.scale).round() as u16)
                } else {
                    Err(ExceptionCode::IllegalDataAddress)
                }
            })
            .collect()
    }

    fn bits(
        &self,
        which: &[(u16, String)],
        size: u16,
        addr: u16,
        count: u16,
        coils: bool,
    ) -> Result<Vec<bool>, ExceptionCode> {
        if count == 0 || addr.saturating_add(count) > size {
            return Err(ExceptionCode::IllegalDataAddress);
        }
        let c = self
            .climate
            .lock()
            .map_err(|_| ExceptionCode::ServerDeviceFailure)?;
        Ok((addr..addr + count)
            .map(|a| {
                which
                    .iter()
                    .find(|(n, _)| *n == a)
                    .and_then(|(_, id)| if coils { c.actuator(id) } else { c.binary(id) })
                    .unwrap_or(false)
            })
            .collect())
    }

    fn set_coil(&self, addr: u16, on: bool) -> Result<(), ExceptionCode> {
        if addr >= self.map.coils {
            return Err(ExceptionCode::IllegalDataAddress);
        }
        if let Some((_, id)) = self.coils.iter().find(|(n, _)| *n == addr) {
            let mut c = self
                .climate
                .lock()
                .map_err(|_| ExceptionCode::ServerDeviceFailure)?;
            c.set_actuator(id, on);
        }
        Ok(())
    }

    fn answer(&self, request: Request<'_>) -> Result<Response, ExceptionCode> {
        Ok(match request {
            Request::ReadInputRegisters(a, n) => {
                Response::ReadInputRegisters(self.registers(RegisterTable::Input, a, n)?)
            }
            Request::ReadHoldingRegisters(a, n) => {
                Response::ReadHoldingRegisters(self.registers(RegisterTable::Holding, a, n)?)
            }
            Request::ReadDiscreteInputs(a, n) => Response::ReadDiscreteInputs(self.bits(
                &self.inputs,
                self.map.discrete_inputs,
                a,
                n,
                false,
            )?),
            Request::ReadCoils(a, n) => {
                Response::ReadCoils(self.bits(&self.coils, self.map.coils, a, n, true)?)
            }
            Request::WriteSingleCoil(a, on) => {
                self.set_coil(a, on)?;
                Response::WriteSingleCoil(a, on)
            }
            Request::WriteMultipleCoils(a, values) => {
                for (i, on) in values.iter().enumerate() {
                    self.set_coil(a.saturating_add(i as u16), *on)?;
                }
                Response::WriteMultipleCoils(a, values.len() as u16)
            }
            _ => return Err(ExceptionCode::IllegalFunction),
        })
    }
}

impl Service for ModbusEnvDevice {
    type Request = SlaveRequest<'static>;
    type Response = Option<Response>;
    type Exception = ExceptionCode;
    type Future = Ready<Result<Self::Response, Self::Exception>>;

    fn call(&self, req: Self::Request) -> Self::Future {
        if !self.online.load(Ordering::Relaxed) || req.slave != self.unit {
            return ready(Ok(None));
        }
        ready(self.answer(req.request).map(Some))
    }
}

/// Serves a Modbus environment device on the serial device at `path`.
pub async fn serve_modbus(path: String, baud: u32, device: ModbusEnvDevice) {
    loop {
        match tokio_serial::SerialStream::open(&tokio_serial::new(&path, baud)) {
            Ok(stream) => {
                let server = tokio_modbus::server::rtu::Server::new(stream);
                if let Err(e) = server.serve_forever(device.clone()).await {
                    tracing::debug!(error = %e, %path, "modbus environment server restarts");
                }
            }
            Err(e) => tracing::warn!(error = %e, %path, "cannot open the simulated line"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------------------- Zigbee2MQTT

fn z2m_state(c: &Climate, keys: &Zigbee2Mqtt, id: &str) -> Option<serde_json::Value> {
    let mut o = serde_json::Map::new();
    if let Some((t, h)) = c.reading(id) {
        o.insert(keys.temperature.clone(), t.into());
        o.insert(keys.humidity.clone(), h.into());
        o.insert("battery".into(), 97.into());
    } else if let Some(tripped) = c.binary(id) {
        let (key, value) = match c.binary_kind(id)? {
            BinaryKind::Smoke => (&keys.smoke, tripped),
            BinaryKind::Water => (&keys.water, tripped),
            BinaryKind::Door => (&keys.contact, !tripped),
        };
        o.insert(key.clone(), value.into());
    } else if let Some(on) = c.actuator(id) {
        o.insert(keys.state.clone(), if on { "ON" } else { "OFF" }.into());
    } else {
        return None;
    }
    o.insert("linkquality".into(), 120.into());
    Some(serde_json::Value::Object(o))
}

/// Whether a device's new state is worth a report: a climate sensor's when a value moved
/// by its reporting threshold, anything else's on any change.
fn worth_reporting(keys: &Zigbee2Mqtt, last: &serde_json::Value, now: &serde_json::Value) -> bool {
    let moved = |key: &str, by: f64| match (
        last.get(key).and_then(|v| v.as_f64()),
        now.get(key).and_then(|v| v.as_f64()),
    ) {
        (Some(a), Some(b)) => (a - b).abs() >= by,
        (a, b) => a.is_some() != b.is_some(),
    };
    if now.get(&keys.temperature).is_some() {
        moved(&keys.temperature, keys.temperature_change)
            || moved(&keys.humidity, keys.humidity_change)
    } else {
        last != now
    }
}

/// Zigbee2MQTT devices of one bridge, as Zigbee2MQTT relays them: each device publishes its
/// state when it changes enough (a climate sensor by its reporting thresholds, anything
/// else on any change) and otherwise at its class's reporting interval (simulated time:
/// battery sensors about hourly, plugs every few minutes); plugs take `{name}/set`. The
/// bridge says `{prefix}/bridge/state` (retained) online, and offline when it is unplugged
/// (as its last will would); back online it republishes its devices' states, and every
/// device's `{name}/availability` is online.
pub async fn serve_zigbee2mqtt(
    at: MqttDevice,
    keys: Zigbee2Mqtt,
    points: Vec<(String, String)>,
    climate: Arc<Mutex<Climate>>,
) {
    let MqttDevice {
        broker,
        device,
        prefix,
        online,
        clock,
    } = at;
    let (client, mut incoming, task) =
        crate::mqtt_devices::connect(&broker, &device, vec![format!("{prefix}/#")]);
    let battery = Duration::from_millis(keys.battery_report_interval_ms.max(1000));
    let mains = Duration::from_millis(keys.mains_report_interval_ms.max(1000));
    let bridge = format!("{prefix}/bridge/state");
    let say = |topic: String, payload: &str| {
        let _ = client.try_publish(topic, QoS::AtLeastOnce, true, payload.to_string());
    };
    // (last state published, simulated time since)
    let mut last: HashMap<String, (serde_json::Value, Duration)> = HashMap::new();
    let mut was_online = false;
    let step = Duration::from_millis(100);
    loop {
        tokio::select! {
            message = incoming.recv() => {
                let Some((topic, payload)) = message else { break };
                if !online.load(Ordering::Relaxed) {
                    continue;
                }
                let Some(name) = topic.strip_prefix(&format!("{prefix}/")).and_then(|t| t.strip_suffix("/set")) else { continue };
                let Some((_, id)) = points.iter().find(|(n, _)| n == name) else { continue };
                let Ok(body) = serde_json::from_slice::<serde_json::Value>(&payload) else { continue };
                let on = match body.get(&keys.state).and_then(|v| v.as_str()) {
                    Some("ON") => true,
                    Some("OFF") => false,
                    _ => continue,
                };
                if let Ok(mut c) = climate.lock() {
                    c.set_actuator(id, on);
                }
            }
            _ = clock.sleep(step.mul_f64(clock.scale())) => {}
        }
        let now_online = online.load(Ordering::Relaxed);
        if now_online != was_online {
            was_online = now_online;
            if now_online {
                say(bridge.clone(), r#"{"state":"online"}"#);
                for (name, _) in &points {
                    say(
                        format!("{prefix}/{name}/availability"),
                        r#"{"state":"online"}"#,
                    );
                }
                // Back: every device's state goes out again.
                last.clear();
            } else {
                say(bridge.clone(), r#"{"state":"offline"}"#);
            }
        }
        if !now_online {
            continue;
        }
        let states: Vec<(String, serde_json::Value, bool)> = {
            let Ok(c) = climate.lock() else { continue };
            points
                .iter()
                .filter_map(|(name, id)| {
                    Some((
                        name.clone(),
                        z2m_state(&c, &keys, id)?,
                        c.actuator(id).is_some(),
                    ))
                })
                .collect()
        };
        for (name, state, mains_powered) in states {
            let interval = if mains_powered { mains } else { battery };
            let due = match last.get_mut(&name) {
                None => true,
                Some((previous, since)) => {
                    *since = since.saturating_add(step.mul_f64(clock.scale()));
                    *since >= interval || worth_reporting(&keys, previous, &state)
                }
            };
            if due {
                let _ = client.try_publish(
                    format!("{prefix}/{name}"),
                    QoS::AtLeastOnce,
                    false,
                    state.to_string(),
                );
                last.insert(name, (state, Duration::ZERO));
            }
        }
    }
    task.abort();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ClimateSpec {
        ClimateSpec {
            zones: vec!["a".into()],
            sensors: vec![("th".into(), "a".into())],
            binary: vec![("door".into(), BinaryKind::Door, "a".into())],
            actuators: vec![("dry".into(), true, "a".into())],
            devices: vec![],
        }
    }

    #[test]
    fn humidity_rises_with_the_door_open_and_falls_with_the_dehumidifier() {
        let mut c = Climate::new(&spec(), 7);
        let (_, h0) = c.reading("th").unwrap();
        assert!((45.0..60.0).contains(&h0), "{h0}");
        c.set_binary("door", true);
        for _ in 0..360 {
            c.tick(10.0);
        }
        let (_, wet) = c.reading("th").unwrap();
        assert!(wet > h0 + 5.0, "{h0} -> {wet}");
        c.set_binary("door", false);
        c.set_actuator("dry", true);
        for _ in 0..360 {
            c.tick(10.0);
        }
        let (_, dry) = c.reading("th").unwrap();
        assert!(dry < h0 - 5.0, "{wet} -> {dry}");
        assert_eq!(c.state().switches.len(), 1);
        // Forced and released.
        c.force("th", Some((30.0, 80.0)));
        assert_eq!(c.reading("th"), Some((30.0, 80.0)));
        c.force("th", None);
        assert_eq!(c.reading("th").unwrap().1, dry);
    }

    #[test]
    fn the_same_seed_gives_the_same_climate() {
        let run = |seed| {
            let mut c = Climate::new(&spec(), seed);
            for _ in 0..1000 {
                c.tick(60.0);
            }
            c.reading("th")
        };
        assert_eq!(run(3), run(3));
        assert_ne!(run(3), run(4));
    }
}

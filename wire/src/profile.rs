//! Device profiles: one TOML file per hardware model in `device-profiles/`.
//!
//! A profile says which protocol a device speaks and everything about it that differs
//! between models: serial settings, timing, register maps, command codes, port counts. The
//! controller's drivers and the simulator read the same file, so a new vendor is a new
//! file, not new code.

use std::path::Path;

use serde::Deserialize;

use crate::WireError;

/// What a device is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Shelving,
    Reader,
    /// Room environment: climate transmitters, binary sensors, relays.
    Environment,
}

/// The protocol a device speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    /// Shelving controller, Modbus RTU (serial) or Modbus TCP (gateway).
    Modbus,
    /// Shelving controller, JSON over MQTT.
    MqttJson,
    /// Shelving controller, vendor framed bytes on a serial line.
    FramedSerial,
    /// Reader, R2000 "0xA0" serial protocol.
    R2000,
    /// Reader, ThingMagic Mercury serial protocol.
    Mercury,
    /// Reader, Impinj IoT device interface JSON over MQTT.
    ImpinjIot,
    /// Environment devices behind a Zigbee2MQTT bridge: JSON state on `{prefix}/{name}`,
    /// commands on `{prefix}/{name}/set`.
    Zigbee2mqtt,
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Protocol::Modbus => "modbus",
            Protocol::MqttJson => "mqtt-json",
            Protocol::FramedSerial => "framed-serial",
            Protocol::R2000 => "r2000",
            Protocol::Mercury => "mercury",
            Protocol::ImpinjIot => "impinj-iot",
            Protocol::Zigbee2mqtt => "zigbee2mqtt",
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    pub kind: Kind,
    pub protocol: Protocol,
    #[serde(default)]
    pub vendor: String,
    #[serde(default)]
    pub model: String,
}

/// Serial line settings (the defaults of the model; a room config may override the baud).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Serial {
    pub baud: u32,
    #[serde(default = "eight")]
    pub data_bits: u8,
    #[serde(default = "none")]
    pub parity: String,
    #[serde(default = "one")]
    pub stop_bits: u8,
}

fn eight() -> u8 {
    8
}
fn one() -> u8 {
    1
}
fn none() -> String {
    "none".into()
}

/// How often to ask, how long to wait, when to stop trusting what was heard.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timing {
    #[serde(default = "poll")]
    pub poll_interval_ms: u64,
    /// No report for this long: the link is down.
    #[serde(default = "stale")]
    pub stale_after_ms: u64,
    /// A request unanswered this long has failed (its fate may be unknown).
    #[serde(default = "timeout")]
    pub command_timeout_ms: u64,
    /// Motion starts only on a report younger than this.
    #[serde(default = "max_state_age")]
    pub max_state_age_ms: u64,
    /// How long the device may take to act on a command it took (a PLC acts on its next
    /// scan): the window in which the driver waits for the command to be confirmed.
    #[serde(default = "scan")]
    pub scan_ms: u64,
}

fn poll() -> u64 {
    200
}
fn stale() -> u64 {
    1500
}
fn timeout() -> u64 {
    1000
}
fn max_state_age() -> u64 {
    600
}
fn scan() -> u64 {
    100
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            poll_interval_ms: poll(),
            stale_after_ms: stale(),
            command_timeout_ms: timeout(),
            max_state_age_ms: max_state_age(),
            scan_ms: scan(),
        }
    }
}

/// The communication watchdog of a shelving controller: the controller writes a heartbeat
/// every `period_ms` (where the protocol section says: a holding register, a frame, a
/// topic) and the device stops its drives when none arrived for `timeout_ms`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Watchdog {
    pub period_ms: u64,
    pub timeout_ms: u64,
}

/// How the carriages of a shelving model move.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Motion {
    /// Top carriage speed, mm/s.
    pub speed_mm_s: f64,
    /// Acceleration and deceleration, mm/s².
    pub accel_mm_s2: f64,
}

/// The register map of a Modbus shelving controller.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModbusShelving {
    /// Default unit (slave) id.
    #[serde(default = "unit")]
    pub unit: u8,
    /// Most carriages the map has position registers for.
    pub max_carriages: u16,
    pub holding: HoldingRegisters,
    pub input: InputRegisters,
    pub commands: CommandCodes,
    pub status_bits: StatusBits,
}

fn unit() -> u8 {
    1
}
fn one_word() -> u16 {
    1
}

/// Holding registers (read 0x03, write 0x06 / 0x10).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HoldingRegisters {
    /// Writing a command code here makes the controller act on it.
    pub command: u16,
    /// The command's argument (the aisle for "open aisle"); write it with or before the
    /// command (one 0x10 write of both registers does both).
    pub argument: u16,
    /// The watchdog's heartbeat: the controller writes a changing value here every
    /// `[watchdog] period_ms`.
    pub heartbeat: Option<u16>,
    /// The pre-motion warning output (light and buzzer): 1 on, 0 off.
    pub warning: Option<u16>,
}

/// Input registers (read 0x04).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputRegisters {
    pub status: u16,
    /// The open aisle, 0 for none.
    pub open_aisle: u16,
    /// The occupancy mask from here, `occupied_words` registers: bit g of the mask set
    /// means a person is in gap g (0 the left wall gap, k aisle k, n the right wall gap;
    /// register j holds gaps 16j to 16j+15).
    pub occupied: u16,
    #[serde(default = "one_word")]
    pub occupied_words: u16,
    pub fault_code: u16,
    pub fault_carriage: u16,
    /// Result of the last command: 0 accepted, else the refusal code.
    pub last_result: u16,
    pub carriage_count: u16,
    /// Counts every command received, so a poll can tell that a write arrived.
    pub command_counter: u16,
    /// Position of carriage 1 in mm; carriage i is at `positions + i - 1`.
    pub positions: u16,
}

/// Codes written to the command register.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandCodes {
    pub open_aisle: u16,
    pub close: u16,
    pub ventilate: u16,
    pub stop: u16,
    pub lock: u16,
    pub unlock: u16,
    pub reset_faults: u16,
}

/// Bit numbers in the status register.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusBits {
    pub moving: u8,
    pub estop: u8,
    pub locked: u8,
    pub fault: u8,
    /// The last motion stopped before its target.
    pub stopped: u8,
    pub obstacle: u8,
}

/// Settings of an R2000 reader.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct R2000 {
    /// Reader address on the bus (0xFF broadcast is accepted too).
    #[serde(default = "unit")]
    pub address: u8,
    /// Antenna ports the reader switches between (cmd_set_work_antenna).
    pub ports: u8,
    /// Inventory rounds per cmd_real_time_inventory.
    #[serde(default = "unit")]
    pub repeat: u8,
    /// Output power set on connecting (cmd_set_output_power), dBm, 0 to 33.
    pub power_dbm: Option<u8>,
    /// Gen2 session (0 to 3) of a customized session inventory (0x8B, target A) instead of
    /// the real-time inventory (0x89).
    pub session: Option<u8>,
    /// Read up to four ports per command with the fast-switch inventory (0x8A): the reader
    /// moves between the antennas itself, as many rounds on each as fit in the dwell.
    #[serde(default)]
    pub fast_switch: bool,
}

/// Settings of a ThingMagic Mercury reader.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mercury {
    /// Logical antenna ports (with a multiplexer, more than the module's own).
    pub ports: u8,
    /// How long one Read Tag Multiple (0x22) searches, ms.
    #[serde(default = "read_ms")]
    pub read_timeout_ms: u16,
    /// Metadata asked of Get Tag Buffer (0x29): read count, RSSI, antenna by default.
    #[serde(default = "metadata")]
    pub metadata_flags: u16,
    /// Read TX power set on connecting (Set Read TX Power, 0x92), dBm.
    pub power_dbm: Option<f32>,
    /// Gen2 session (0 to 3) set on connecting (Set Protocol Parameter, 0x9B).
    pub session: Option<u8>,
}

fn read_ms() -> u16 {
    250
}
fn metadata() -> u16 {
    0x0007
}

/// Topics of a shelving controller with JSON over MQTT (under the device's prefix).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttShelving {
    #[serde(default = "command_topic")]
    pub command_topic: String,
    #[serde(default = "result_topic")]
    pub result_topic: String,
    #[serde(default = "state_topic")]
    pub state_topic: String,
    /// The controller republishes its state at least this often, ms.
    #[serde(default = "state_interval")]
    pub state_interval_ms: u64,
    /// The watchdog's heartbeat topic (under the prefix): the controller publishes
    /// `{"beat":N}` there every `[watchdog] period_ms`, and its last will `{"beat":null}`.
    pub heartbeat_topic: Option<String>,
    /// The device takes the `warning` command (pre-motion light and buzzer).
    #[serde(default)]
    pub warning: bool,
}

fn command_topic() -> String {
    "command".into()
}
fn result_topic() -> String {
    "result".into()
}
fn state_topic() -> String {
    "state".into()
}
fn state_interval() -> u64 {
    1000
}

/// An Impinj reader's IoT device interface: tag events over MQTT.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImpinjIot {
    pub ports: u8,
    /// Events are published on `{prefix}/{event_topic}`.
    #[serde(default = "event_topic")]
    pub event_topic: String,
    /// Time on each antenna before the next, ms.
    #[serde(default = "dwell")]
    pub dwell_ms: u64,
}

fn event_topic() -> String {
    "events".into()
}
fn dwell() -> u64 {
    100
}

/// Which Modbus register table holds a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegisterTable {
    /// Input registers, function 0x04.
    Input,
    /// Holding registers, function 0x03.
    Holding,
}

/// Temperature and humidity registers of a Modbus transmitter.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModbusClimate {
    pub table: RegisterTable,
    /// Register of the temperature, a signed value × `scale` (°C).
    pub temperature: u16,
    /// Register of the relative humidity, × `scale` (%).
    pub humidity: u16,
    #[serde(default = "ten")]
    pub scale: f64,
}

fn ten() -> f64 {
    10.0
}

/// A Modbus environment device: a climate transmitter, a digital-input module, a relay
/// module, or one that is several of these.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModbusEnvironment {
    #[serde(default = "unit")]
    pub unit: u8,
    pub climate: Option<ModbusClimate>,
    /// Discrete inputs (function 0x02) from address 0: smoke, water, door contacts.
    #[serde(default)]
    pub discrete_inputs: u16,
    /// Coils (read 0x01, write 0x05) from address 0: relays of a dehumidifier, a fan, a door.
    #[serde(default)]
    pub coils: u16,
}

/// The JSON keys of Zigbee2MQTT devices (its defaults, changeable per model).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Zigbee2Mqtt {
    #[serde(default = "key_temperature")]
    pub temperature: String,
    #[serde(default = "key_humidity")]
    pub humidity: String,
    #[serde(default = "key_smoke")]
    pub smoke: String,
    #[serde(default = "key_water")]
    pub water: String,
    /// A door contact: `true` while the door is closed.
    #[serde(default = "key_contact")]
    pub contact: String,
    /// A switch: `"ON"` or `"OFF"`, set by publishing `{"<key>":"ON"}` to `{name}/set`.
    #[serde(default = "key_state")]
    pub state: String,
    /// A battery device (climate, smoke, water and door sensors) reports at once when a
    /// value changes enough, and at least this often (a Zigbee reporting interval; about an
    /// hour for common sensors), ms.
    #[serde(default = "battery_interval")]
    pub battery_report_interval_ms: u64,
    /// A mains device (plug, relay) reports on every change and at least this often, ms.
    #[serde(default = "mains_interval")]
    pub mains_report_interval_ms: u64,
    /// A battery device silent this long is stale (two reports missed).
    #[serde(default = "battery_stale")]
    pub battery_stale_after_ms: u64,
    /// A mains device silent this long is stale.
    #[serde(default = "mains_stale")]
    pub mains_stale_after_ms: u64,
    /// A climate sensor reports at once when its temperature moved this much (°C)…
    #[serde(default = "temperature_change")]
    pub temperature_change: f64,
    /// …or its humidity this much (% RH).
    #[serde(default = "humidity_change")]
    pub humidity_change: f64,
}

fn key_temperature() -> String {
    "temperature".into()
}
fn key_humidity() -> String {
    "humidity".into()
}
fn key_smoke() -> String {
    "smoke".into()
}
fn key_water() -> String {
    "water_leak".into()
}
fn key_contact() -> String {
    "contact".into()
}
fn key_state() -> String {
    "state".into()
}
fn battery_interval() -> u64 {
    3_600_000
}
fn mains_interval() -> u64 {
    300_000
}
fn battery_stale() -> u64 {
    2 * battery_interval() + 600_000
}
fn mains_stale() -> u64 {
    3 * mains_interval()
}
fn temperature_change() -> f64 {
    0.5
}
fn humidity_change() -> f64 {
    3.0
}

/// A device profile.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub device: Header,
    pub serial: Option<Serial>,
    #[serde(default)]
    pub timing: Timing,
    pub motion: Option<Motion>,
    pub watchdog: Option<Watchdog>,
    pub modbus: Option<ModbusShelving>,
    pub r2000: Option<R2000>,
    pub mercury: Option<Mercury>,
    pub mqtt_json: Option<MqttShelving>,
    pub impinj_iot: Option<ImpinjIot>,
    pub framed: Option<crate::framed::FramedProfile>,
    pub modbus_environment: Option<ModbusEnvironment>,
    pub zigbee2mqtt: Option<Zigbee2Mqtt>,
}

impl Profile {
    /// How many gaps the shelving's occupancy mask can tell (`None`: any number, as in a
    /// JSON list).
    pub fn gap_capacity(&self) -> Option<usize> {
        match self.device.protocol {
            Protocol::Modbus => self
                .modbus
                .as_ref()
                .map(|m| m.input.occupied_words as usize * 16),
            Protocol::FramedSerial => self.framed.as_ref().map(|f| f.status.occupied_bytes * 8),
            _ => None,
        }
    }

    /// Whether the shelving has an output for the pre-motion warning.
    pub fn has_warning_output(&self) -> bool {
        match self.device.protocol {
            Protocol::Modbus => self
                .modbus
                .as_ref()
                .is_some_and(|m| m.holding.warning.is_some()),
            Protocol::FramedSerial => self
                .framed
                .as_ref()
                .is_some_and(|f| f.commands.warning.is_some()),
            Protocol::MqttJson => self.mqtt_json.as_ref().is_some_and(|m| m.warning),
            _ => false,
        }
    }

    /// Whether the protocol section names where the watchdog's heartbeat goes.
    fn has_heartbeat(&self) -> bool {
        match self.device.protocol {
            Protocol::Modbus => self
                .modbus
                .as_ref()
                .is_some_and(|m| m.holding.heartbeat.is_some()),
            Protocol::FramedSerial => self
                .framed
                .as_ref()
                .is_some_and(|f| f.functions.heartbeat.is_some()),
            Protocol::MqttJson => self
                .mqtt_json
                .as_ref()
                .is_some_and(|m| m.heartbeat_topic.is_some()),
            _ => false,
        }
    }

    /// How many antenna ports a reader has, where the profile says.
    pub fn antenna_ports(&self) -> Option<u16> {
        [
            self.r2000.as_ref().map(|r| r.ports),
            self.mercury.as_ref().map(|m| m.ports),
            self.impinj_iot.as_ref().map(|i| i.ports),
        ]
        .into_iter()
        .flatten()
        .next()
        .map(u16::from)
    }

    pub fn load(path: &Path) -> Result<Profile, WireError> {
        let fail = |message: String| WireError::Profile {
            file: path.display().to_string(),
            message,
        };
        let text =
            std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read it: {e}")))?;
        Self::parse(&text).map_err(fail)
    }

    /// Parses and checks a profile; the error says what is missing or wrong.
    pub fn parse(text: &str) -> Result<Profile, String> {
        let profile: Profile = toml::from_str(text).map_err(|e| e.to_string())?;
        let need = |present: bool, section: &str| {
            if present {
                Ok(())
            } else {
                Err(format!(
                    "protocol {:?} needs a [{section}] section",
                    profile.device.protocol
                ))
            }
        };
        match (profile.device.kind, profile.device.protocol) {
            (Kind::Environment, Protocol::Modbus) => {
                need(profile.modbus_environment.is_some(), "modbus_environment")?
            }
            (Kind::Environment, Protocol::Zigbee2mqtt) => {
                need(profile.zigbee2mqtt.is_some(), "zigbee2mqtt")?
            }
            (Kind::Environment, p) => {
                return Err(format!(
                    "an environment device speaks modbus or zigbee2mqtt, not {p}"
                ));
            }
            (_, Protocol::Zigbee2mqtt) => {
                return Err("zigbee2mqtt is a protocol of environment devices".into());
            }
            (_, Protocol::Modbus) => need(profile.modbus.is_some(), "modbus")?,
            (_, Protocol::R2000) => need(profile.r2000.is_some(), "r2000")?,
            (_, Protocol::Mercury) => need(profile.mercury.is_some(), "mercury")?,
            (_, Protocol::MqttJson) => need(profile.mqtt_json.is_some(), "mqtt_json")?,
            (_, Protocol::ImpinjIot) => need(profile.impinj_iot.is_some(), "impinj_iot")?,
            (_, Protocol::FramedSerial) => need(profile.framed.is_some(), "framed")?,
        }
        if let Some(e) = &profile.modbus_environment {
            if e.climate.is_none() && e.discrete_inputs == 0 && e.coils == 0 {
                return Err(
                    "[modbus_environment] has no climate registers, discrete inputs or coils"
                        .into(),
                );
            }
            if let Some(c) = &e.climate
                && (c.temperature == c.humidity || c.scale.is_nan() || c.scale <= 0.0)
            {
                return Err(
                    "[modbus_environment.climate] needs two registers and a positive scale".into(),
                );
            }
        }
        if let Some(m) = &profile.modbus {
            let i = &m.input;
            if !(1..=8).contains(&i.occupied_words) {
                return Err("[modbus.input] occupied_words is 1 to 8".into());
            }
            let mut used = vec![
                i.status,
                i.open_aisle,
                i.fault_code,
                i.fault_carriage,
                i.last_result,
                i.carriage_count,
                i.command_counter,
            ];
            used.extend((0..i.occupied_words).map(|w| i.occupied.saturating_add(w)));
            let count = used.len();
            used.sort_unstable();
            used.dedup();
            if used.len() != count {
                return Err("two [modbus.input] registers share an address".into());
            }
            let positions = i.positions..i.positions.saturating_add(m.max_carriages);
            if used.iter().any(|a| positions.contains(a)) {
                return Err("[modbus.input] positions overlap another input register".into());
            }
            let h = &m.holding;
            let mut held: Vec<u16> = [Some(h.command), Some(h.argument), h.heartbeat, h.warning]
                .into_iter()
                .flatten()
                .collect();
            let count = held.len();
            held.sort_unstable();
            held.dedup();
            if held.len() != count {
                return Err("two [modbus.holding] registers share an address".into());
            }
            if (m.max_carriages as usize) + 1 > i.occupied_words as usize * 16 {
                return Err(format!(
                    "[modbus] max_carriages {} has {} gaps, but the occupancy mask of {} register(s) tells {}: raise occupied_words or lower max_carriages",
                    m.max_carriages,
                    m.max_carriages + 1,
                    i.occupied_words,
                    i.occupied_words * 16
                ));
            }
        }
        if profile.device.kind == Kind::Shelving {
            match (&profile.watchdog, profile.has_heartbeat()) {
                (Some(w), true) => {
                    if w.period_ms == 0 || w.timeout_ms < 2 * w.period_ms {
                        return Err(
                            "[watchdog] timeout_ms must be at least twice period_ms (and period_ms above 0), so that one late heartbeat does not stop the drives"
                                .into(),
                        );
                    }
                }
                (Some(_), false) => {
                    return Err(
                        "[watchdog] needs the protocol's heartbeat: [modbus.holding] heartbeat, [framed.functions] heartbeat or [mqtt_json] heartbeat_topic"
                            .into(),
                    );
                }
                (None, true) => {
                    return Err(
                        "a heartbeat is named but there is no [watchdog] section with period_ms and timeout_ms"
                            .into(),
                    );
                }
                (None, false) => {}
            }
        }
        let session_ok = |s: Option<u8>| s.is_none_or(|s| s <= 3);
        if let Some(r) = &profile.r2000 {
            if r.power_dbm.is_some_and(|p| p > 33) {
                return Err("[r2000] power_dbm is 0 to 33".into());
            }
            if !session_ok(r.session) {
                return Err("[r2000] session is a Gen2 session, 0 to 3".into());
            }
        }
        if let Some(m) = &profile.mercury {
            if m.metadata_flags & !crate::mercury::META_KNOWN != 0 {
                return Err(format!(
                    "[mercury] metadata_flags 0x{:04X}: the tag buffer's fields up to GPIO (0x{:04X}) are read, no others",
                    m.metadata_flags,
                    crate::mercury::META_KNOWN
                ));
            }
            if m.power_dbm.is_some_and(|p| !(0.0..=31.5).contains(&p)) {
                return Err("[mercury] power_dbm is 0 to 31.5".into());
            }
            if !session_ok(m.session) {
                return Err("[mercury] session is a Gen2 session, 0 to 3".into());
            }
        }
        Ok(profile)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_profiles_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../device-profiles");
        let mut seen = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                Profile::load(&path).unwrap_or_else(|e| panic!("{e}"));
                seen += 1;
            }
        }
        assert!(seen >= 2);
    }

    #[test]
    fn a_modbus_profile_without_its_map_is_refused() {
        let err =
            Profile::parse("[device]\nkind = \"shelving\"\nprotocol = \"modbus\"\n").unwrap_err();
        assert!(err.contains("[modbus]"), "{err}");
    }
}

//! The room configuration: one TOML file per room.
//!
//! [`RoomConfig::load`] reads the file, checks every key and builds the validated model
//! (layout, archive-number rule, devices, antenna map). Every error names the file, the
//! key and what to change; see `config/demo-room.toml` for a complete, commented example.
//!
//! Relative paths: `profiles_dir` is resolved against the directory of the config file;
//! `storage.data_dir` against the working directory of the process.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::archive_no::ArchiveRule;
use crate::layout::{Capacity, Carriage, Layout, RangeLayout};
use crate::name::Name;
use crate::shelf::{Language, ShelfAddress};

pub mod backup;
pub mod bus;
pub mod environment;
pub mod records;
pub mod sweep;

/// Why a config file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read it: {source}")]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{file}: {message}")]
    Syntax { file: PathBuf, message: String },
    #[error("{file}: {key}: {message}")]
    Invalid {
        file: PathBuf,
        key: String,
        message: String,
    },
}

// ---------------------------------------------------------------------------------------
// The file as written.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    site: RawSite,
    room: RawRoom,
    #[serde(default)]
    api: RawApi,
    #[serde(default)]
    storage: RawStorage,
    #[serde(default)]
    mqtt: RawMqtt,
    archive_number: RawArchiveNumber,
    #[serde(default)]
    boxes: RawBoxes,
    #[serde(default)]
    retention: records::RawRetention,
    #[serde(default)]
    places: Vec<records::Place>,
    profiles_dir: Option<PathBuf>,
    ranges: Vec<RawRange>,
    #[serde(default)]
    devices: Vec<RawDevice>,
    #[serde(default)]
    antennas: Vec<RawAntenna>,
    #[serde(default)]
    antenna_blocks: Vec<RawAntennaBlock>,
    #[serde(default)]
    sweeps: RawSweeps,
    #[serde(default)]
    environment: crate::config::environment::RawEnvironment,
    #[serde(default)]
    loans: crate::loans::RawLoans,
    #[serde(default)]
    labels: LabelSize,
    #[serde(default)]
    gates: Vec<Gate>,
    #[serde(default)]
    shelving: RawShelving,
    #[serde(default)]
    lookups: RawLookups,
    backup: Option<backup::RawBackup>,
}

/// `[lookups]`: how long each lookup of a box is kept one by one before it is rolled up
/// into daily counts.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLookups {
    #[serde(default = "default_lookup_days")]
    keep_days: u32,
}

impl Default for RawLookups {
    fn default() -> Self {
        RawLookups {
            keep_days: default_lookup_days(),
        }
    }
}

fn default_lookup_days() -> u32 {
    400
}

/// `[shelving]`: how motions are started and how long the controller waits for the
/// device to confirm a stop.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawShelving {
    start_delay_ms: u64,
    automatic_start_delay_ms: u64,
    automatic_clear_s: u64,
    queue_expiry_ms: u64,
    queue_length: usize,
    confirm_window_ms: u64,
    stop_retry_ms: u64,
}

impl Default for RawShelving {
    fn default() -> Self {
        RawShelving {
            start_delay_ms: 2000,
            automatic_start_delay_ms: 5000,
            automatic_clear_s: 60,
            queue_expiry_ms: 10_000,
            queue_length: 4,
            confirm_window_ms: 3000,
            stop_retry_ms: 250,
        }
    }
}

/// How motions are started and stops confirmed (`[shelving]`).
#[derive(Debug, Clone, PartialEq)]
pub struct MotionSettings {
    /// The pre-motion warning before a motion someone asked for.
    pub start_delay: std::time::Duration,
    /// The warning before an automatic motion (ventilation, schedules).
    pub automatic_start_delay: std::time::Duration,
    /// An automatic motion needs every gap it closes to have been clear this long.
    pub automatic_clear: std::time::Duration,
    /// A request queued behind a running motion is dropped after this.
    pub queue_expiry: std::time::Duration,
    /// At most this many requests wait behind a running motion.
    pub queue_length: usize,
    /// A stop or lock the device has not confirmed within this is reported unconfirmed.
    pub confirm_window: std::time::Duration,
    /// How often an unconfirmed stop or lock is sent again.
    pub stop_retry: std::time::Duration,
}

impl Default for MotionSettings {
    fn default() -> Self {
        Checker {
            file: Path::new(""),
        }
        .motion(&RawShelving::default())
        .expect("the defaults are valid")
    }
}

/// A reader at the room's door (防盗门): which of its antenna ports face inside and outside.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gate {
    pub reader: String,
    pub inside: Vec<u16>,
    pub outside: Vec<u16>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSweeps {
    #[serde(default = "default_dwell")]
    dwell_ms: u64,
    #[serde(default = "default_sync_confidence")]
    sync_confidence: f64,
    #[serde(default = "default_second_look")]
    second_look_dwell_ms: u64,
    #[serde(default)]
    schedule: Vec<RawSchedule>,
}

impl Default for RawSweeps {
    fn default() -> Self {
        RawSweeps {
            dwell_ms: default_dwell(),
            sync_confidence: default_sync_confidence(),
            second_look_dwell_ms: default_second_look(),
            schedule: Vec::new(),
        }
    }
}

fn default_dwell() -> u64 {
    100
}
fn default_sync_confidence() -> f64 {
    0.8
}
fn default_second_look() -> u64 {
    300
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSchedule {
    name: String,
    cron: String,
    scope: Scope,
    #[serde(default)]
    apply: Apply,
    #[serde(default)]
    overlap: Overlap,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSite {
    id: String,
    #[serde(default)]
    name: Name,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoom {
    id: String,
    #[serde(default)]
    name: Name,
    #[serde(default)]
    language: Language,
    /// Which side of the room plan the door is on, for the staff page's map.
    #[serde(default)]
    door: Option<DoorSide>,
}

/// A side of the room plan as the staff page draws it: ranges from left to right, each
/// range's carriage 1 at the top.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DoorSide {
    Top,
    Bottom,
    Left,
    Right,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApi {
    #[serde(default = "default_listen")]
    listen: String,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
}

impl Default for RawApi {
    fn default() -> Self {
        RawApi {
            listen: default_listen(),
            tls_cert: None,
            tls_key: None,
        }
    }
}

fn default_listen() -> String {
    "127.0.0.1:8080".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStorage {
    #[serde(default = "default_data_dir")]
    data_dir: PathBuf,
}

impl Default for RawStorage {
    fn default() -> Self {
        RawStorage {
            data_dir: default_data_dir(),
        }
    }
}

fn default_data_dir() -> PathBuf {
    "stackroom-data".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMqtt {
    #[serde(default = "default_broker")]
    broker: String,
    #[serde(default = "default_mqtt_listen")]
    embedded_listen: String,
    secrets_dir: Option<PathBuf>,
    password_env: Option<String>,
    ca_file: Option<PathBuf>,
    client_cert: Option<PathBuf>,
    client_key: Option<PathBuf>,
}

impl Default for RawMqtt {
    fn default() -> Self {
        RawMqtt {
            broker: default_broker(),
            embedded_listen: default_mqtt_listen(),
            secrets_dir: None,
            password_env: None,
            ca_file: None,
            client_cert: None,
            client_key: None,
        }
    }
}

fn default_broker() -> String {
    "embedded".into()
}

fn default_mqtt_listen() -> String {
    "127.0.0.1:1883".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawArchiveNumber {
    pattern: String,
    parts: BTreeMap<String, String>,
    #[serde(default)]
    series: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBoxes {
    #[serde(default = "default_box_width")]
    default_width_mm: u32,
    /// Typed descriptive fields, by key.
    #[serde(default)]
    fields: std::collections::BTreeMap<String, records::RawField>,
    /// The date field whose year is a box's year (年度), for narrowing a search.
    #[serde(default)]
    year_field: Option<String>,
}

impl Default for RawBoxes {
    fn default() -> Self {
        RawBoxes {
            default_width_mm: default_box_width(),
            fields: Default::default(),
            year_field: None,
        }
    }
}

fn default_box_width() -> u32 {
    60
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "lowercase")]
enum RawCapacity {
    Boxes(u32),
    Mm(u32),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRange {
    id: u16,
    #[serde(default)]
    name: Name,
    carriages: u16,
    #[serde(default = "default_fixed_ends")]
    fixed_ends: String,
    #[serde(default = "default_carriage_width")]
    carriage_width_mm: u32,
    #[serde(default)]
    carriage_widths_mm: Vec<u32>,
    #[serde(default = "default_aisle_width")]
    aisle_width_mm: u32,
    sections: u16,
    levels: u16,
    shelf_capacity: RawCapacity,
}

fn default_fixed_ends() -> String {
    "both".into()
}
fn default_carriage_width() -> u32 {
    600
}
fn default_aisle_width() -> u32 {
    900
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDevice {
    id: String,
    profile: String,
    range: Option<u16>,
    transport: Transport,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAntenna {
    reader: String,
    port: u16,
    shelf: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAntennaBlock {
    reader: String,
    range: u16,
    carriages: [u16; 2],
    #[serde(default = "default_first_port")]
    first_port: u16,
}

fn default_first_port() -> u16 {
    1
}

// ---------------------------------------------------------------------------------------
// The validated model.

/// How a device is wired.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum Transport {
    /// A serial line (RS-485 or RS-232): device path and baud rate; `unit` is the bus
    /// address where the protocol has one (Modbus unit id, reader address).
    Serial {
        path: String,
        baud: u32,
        #[serde(default)]
        unit: Option<u8>,
    },
    /// A Modbus TCP gateway.
    ModbusTcp {
        address: String,
        #[serde(default)]
        unit: Option<u8>,
    },
    /// An MQTT device: every topic of the device starts with `prefix`.
    Mqtt { prefix: String },
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Transport::Serial { path, baud, .. } => write!(f, "serial {path} @ {baud} baud"),
            Transport::ModbusTcp { address, .. } => write!(f, "Modbus TCP {address}"),
            Transport::Mqtt { prefix } => write!(f, "MQTT {prefix}/…"),
        }
    }
}

pub use stackroom_wire::profile::{Kind as DeviceKind, Profile, Protocol};

pub use sweep::{Apply, Overlap, Scope};

/// Inventory sweeps: how long each antenna is read, when `apply = "sync"` trusts a
/// finding, and the schedule.
#[derive(Debug, Clone)]
pub struct SweepSettings {
    pub dwell: std::time::Duration,
    /// A misplaced box is re-bound by a syncing sweep only if the shelf it was found on has
    /// at least this share (0 to 1) of the power received from its tag.
    pub sync_confidence: f64,
    /// A box that the first pass hears off its shelf, or not at all, gets a second look: its
    /// shelf and the one it was heard on are read again for this long and the evidence of
    /// both passes decides. Zero: no second look.
    pub second_look: std::time::Duration,
    pub schedule: Vec<Schedule>,
}

/// A scheduled sweep.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub name: String,
    pub cron: croner::Cron,
    pub scope: Scope,
    pub apply: Apply,
    pub overlap: Overlap,
}

/// One device of the room, with its profile.
#[derive(Debug, Clone)]
pub struct Device {
    pub id: String,
    pub profile: String,
    pub profile_path: PathBuf,
    /// The parsed profile: protocol, timing, register map or reader settings.
    pub spec: Profile,
    /// The range a shelving controller drives.
    pub range: Option<u16>,
    pub transport: Transport,
}

/// One antenna port of a reader and the shelf it reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Antenna {
    pub reader: String,
    pub port: u16,
    pub shelf: ShelfAddress,
}

/// The MQTT fabric: the embedded broker or an external one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mqtt {
    Embedded { listen: SocketAddr },
    External { url: String },
}

/// A validated room configuration.
#[derive(Debug, Clone)]
pub struct RoomConfig {
    pub file: PathBuf,
    pub site_id: String,
    pub site_name: Name,
    pub room_id: String,
    pub room_name: Name,
    pub language: Language,
    /// The side of the room plan with the door (`room.door`).
    pub door: Option<DoorSide>,
    pub listen: SocketAddr,
    /// The API's own TLS certificate and key (PEM), if it serves HTTPS itself.
    pub api_tls: Option<(PathBuf, PathBuf)>,
    pub data_dir: PathBuf,
    pub mqtt: Mqtt,
    /// Who the controller is on the bus and where the bus's passwords are.
    pub bus: bus::BusSettings,
    pub archive_rule: ArchiveRule,
    pub default_box_width_mm: u32,
    /// The date field whose year is a box's year (`boxes.year_field`).
    pub year_field: Option<String>,
    /// The typed descriptive fields of a box (`[boxes.fields]`).
    pub fields: records::Fields,
    /// The retention schedule (`[retention]`).
    pub retention: records::Retention,
    /// Places off the shelving a box can be in (`[[places]]`).
    pub places: Vec<records::Place>,
    pub layout: Layout,
    pub devices: Vec<Device>,
    pub antennas: Vec<Antenna>,
    pub sweeps: SweepSettings,
    pub environment: crate::config::environment::EnvironmentConfig,
    pub loans: crate::loans::LoanRules,
    pub labels: LabelSize,
    pub gates: Vec<Gate>,
    pub motion: MotionSettings,
    /// Lookups are kept one by one this long, then rolled up into daily counts.
    pub lookups_keep: std::time::Duration,
    /// Scheduled backups (`[backup]`), if any.
    pub backup: Option<backup::BackupSettings>,
}

struct Checker<'a> {
    file: &'a Path,
}

impl Checker<'_> {
    fn bus(&self, raw: &RawMqtt, mqtt: &Mqtt) -> Result<bus::BusSettings, ConfigError> {
        let url = match mqtt {
            Mqtt::External { url } => bus::BrokerUrl::parse(url).ok(),
            Mqtt::Embedded { .. } => None,
        };
        let tls = url.as_ref().is_some_and(|u| u.tls);
        if tls && raw.ca_file.is_none() {
            return Err(self.fail(
                "mqtt.ca_file",
                "is needed for an mqtts:// broker: the CA that signed the broker's certificate",
            ));
        }
        if !tls && (raw.ca_file.is_some() || raw.client_cert.is_some()) {
            return Err(self.fail(
                "mqtt.ca_file",
                "and mqtt.client_cert are for an mqtts:// broker only",
            ));
        }
        let client_cert = match (&raw.client_cert, &raw.client_key) {
            (Some(c), Some(k)) => Some((c.clone(), k.clone())),
            (None, None) => None,
            _ => {
                return Err(self.fail("mqtt.client_cert", "and mqtt.client_key come together"));
            }
        };
        if let Some(v) = &raw.password_env
            && (v.is_empty() || v.contains('='))
        {
            return Err(self.fail("mqtt.password_env", "must name an environment variable"));
        }
        let user = url
            .and_then(|u| u.user)
            .unwrap_or_else(|| "stackroom".to_string());
        self.name("the broker URL's user", &user)?;
        Ok(bus::BusSettings {
            user,
            secrets_dir: raw.secrets_dir.clone(),
            password_env: raw.password_env.clone(),
            ca_file: raw.ca_file.clone(),
            client_cert,
        })
    }

    fn motion(&self, raw: &RawShelving) -> Result<MotionSettings, ConfigError> {
        use std::time::Duration;
        let ms = Duration::from_millis;
        if raw.start_delay_ms > 30_000 {
            return Err(self.fail(
                "shelving.start_delay_ms",
                "is at most 30000 (30 s of warning)",
            ));
        }
        if raw.automatic_start_delay_ms < raw.start_delay_ms
            || raw.automatic_start_delay_ms > 120_000
        {
            return Err(self.fail(
                "shelving.automatic_start_delay_ms",
                "is at least start_delay_ms (an automatic motion warns no shorter) and at most 120000",
            ));
        }
        if raw.automatic_clear_s > 3600 {
            return Err(self.fail("shelving.automatic_clear_s", "is at most 3600"));
        }
        if !(500..=600_000).contains(&raw.queue_expiry_ms) {
            return Err(self.fail("shelving.queue_expiry_ms", "must be 500 to 600000"));
        }
        if raw.queue_length > 64 {
            return Err(self.fail("shelving.queue_length", "is at most 64"));
        }
        if !(200..=60_000).contains(&raw.confirm_window_ms) {
            return Err(self.fail("shelving.confirm_window_ms", "must be 200 to 60000"));
        }
        if !(20..=5000).contains(&raw.stop_retry_ms) {
            return Err(self.fail("shelving.stop_retry_ms", "must be 20 to 5000"));
        }
        Ok(MotionSettings {
            start_delay: ms(raw.start_delay_ms),
            automatic_start_delay: ms(raw.automatic_start_delay_ms),
            automatic_clear: Duration::from_secs(raw.automatic_clear_s),
            queue_expiry: ms(raw.queue_expiry_ms),
            queue_length: raw.queue_length,
            confirm_window: ms(raw.confirm_window_ms),
            stop_retry: ms(raw.stop_retry_ms),
        })
    }

    fn fail(&self, key: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            file: self.file.to_path_buf(),
            key: key.into(),
            message: message.into(),
        }
    }

    fn addr(&self, key: &str, text: &str) -> Result<SocketAddr, ConfigError> {
        text.parse().map_err(|_| {
            self.fail(
                key,
                format!("'{text}' is not a socket address; write IP:PORT, e.g. 127.0.0.1:8080"),
            )
        })
    }

    /// A name people read: given per language, both languages have words.
    fn words(&self, key: &str, name: &Name) -> Result<(), ConfigError> {
        if name.half_given() {
            return Err(self.fail(
                key,
                "give the name in both languages: { zh = \"…\", en = \"…\" }",
            ));
        }
        Ok(())
    }

    fn name(&self, key: &str, text: &str) -> Result<(), ConfigError> {
        let ok = !text.is_empty()
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok {
            Ok(())
        } else {
            Err(self.fail(
                key,
                format!("'{text}' must be letters, digits, '-' or '_' (it is used in MQTT topics and URLs)"),
            ))
        }
    }
}

impl RoomConfig {
    /// Keeps only the devices `keep` says, and what refers to them (antennas, gates,
    /// environment points): a smaller room for tests and benchmarks.
    pub fn keep_devices(&mut self, keep: impl Fn(&Device) -> bool) {
        self.devices.retain(|d| keep(d));
        let ids: HashSet<String> = self.devices.iter().map(|d| d.id.clone()).collect();
        self.antennas.retain(|a| ids.contains(&a.reader));
        self.gates.retain(|g| ids.contains(&g.reader));
        self.environment.points.retain(|p| ids.contains(&p.device));
    }

    /// Reads and validates a room config file.
    pub fn load(file: &Path) -> Result<RoomConfig, ConfigError> {
        let text = std::fs::read_to_string(file).map_err(|source| ConfigError::Read {
            file: file.to_path_buf(),
            source,
        })?;
        Self::parse(file, &text)
    }

    /// Validates config text; `file` names it in errors and anchors relative paths.
    pub fn parse(file: &Path, text: &str) -> Result<RoomConfig, ConfigError> {
        let mut raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            file: file.to_path_buf(),
            message: e.to_string(),
        })?;
        let c = Checker { file };
        c.name("site.id", &raw.site.id)?;
        c.name("room.id", &raw.room.id)?;
        c.words("site.name", &raw.site.name)?;
        c.words("room.name", &raw.room.name)?;
        let listen = c.addr("api.listen", &raw.api.listen)?;
        if !(1..=36_500).contains(&raw.lookups.keep_days) {
            return Err(c.fail("lookups.keep_days", "is 1 to 36500"));
        }
        let api_tls = match (&raw.api.tls_cert, &raw.api.tls_key) {
            (Some(cert), Some(key)) => Some((cert.clone(), key.clone())),
            (None, None) => None,
            _ => return Err(c.fail("api.tls_cert", "and api.tls_key come together")),
        };
        let mqtt = if raw.mqtt.broker == "embedded" {
            Mqtt::Embedded {
                listen: c.addr("mqtt.embedded_listen", &raw.mqtt.embedded_listen)?,
            }
        } else {
            bus::BrokerUrl::parse(&raw.mqtt.broker).map_err(|_| {
                c.fail(
                    "mqtt.broker",
                    format!(
                        "'{}' is neither \"embedded\" nor a broker URL like mqtt://host:1883 or mqtts://user@host:8883 (no password: that goes in a file or mqtt.password_env)",
                        raw.mqtt.broker
                    ),
                )
            })?;
            Mqtt::External {
                url: raw.mqtt.broker.clone(),
            }
        };
        let bus = c.bus(&raw.mqtt, &mqtt)?;
        let a = &raw.archive_number;
        let archive_rule = ArchiveRule::new(&a.pattern, &a.parts, &a.series)
            .map_err(|e| c.fail("archive_number", e.to_string()))?;
        if raw.boxes.default_width_mm == 0 {
            return Err(c.fail("boxes.default_width_mm", "must be at least 1"));
        }
        let fields = records::fields(std::mem::take(&mut raw.boxes.fields))
            .map_err(|(key, message)| c.fail(key, message))?;
        if let Some(year) = &raw.boxes.year_field
            && fields
                .get(year)
                .is_none_or(|f| f.kind != records::FieldKind::Date)
        {
            return Err(c.fail(
                "boxes.year_field",
                format!("'{year}' is not a date field of [boxes.fields]"),
            ));
        }
        let places = records::places(std::mem::take(&mut raw.places))
            .map_err(|(key, message)| c.fail(key, message))?;
        let retention =
            records::retention(std::mem::take(&mut raw.retention), &fields, &archive_rule)
                .map_err(|(key, message)| c.fail(key, message))?;

        let layout = Self::layout(&c, &raw.ranges)?;
        let base = file.parent().unwrap_or(Path::new("."));
        let profiles_dir = base.join(
            raw.profiles_dir
                .clone()
                .unwrap_or_else(|| "../device-profiles".into()),
        );
        let devices = Self::devices(&c, &raw.devices, &profiles_dir, &layout)?;
        let antennas = Self::antennas(&c, &raw, &devices, &layout)?;
        let sweeps = Self::sweeps(&c, &raw.sweeps, &layout)?;
        let environment = crate::config::environment::check(raw.environment, &devices, &layout)
            .map_err(|(key, message)| c.fail(key, message))?;
        let loans =
            crate::loans::rules(raw.loans).map_err(|(key, message)| c.fail(key, message))?;
        raw.labels.check().map_err(|m| c.fail("labels", m))?;
        let labels = raw.labels;
        for (i, g) in raw.gates.iter().enumerate() {
            let key = |k: &str| format!("gates[{i}].{k}");
            let Some(d) = devices
                .iter()
                .find(|d| d.id == g.reader && d.spec.device.kind == DeviceKind::Reader)
            else {
                return Err(c.fail(
                    key("reader"),
                    format!("no reader '{}' among the devices", g.reader),
                ));
            };
            if antennas.iter().any(|a| a.reader == g.reader) {
                return Err(c.fail(
                    key("reader"),
                    "a gate's reader reads no shelves: remove its antennas",
                ));
            }
            let ports = d.spec.antenna_ports().unwrap_or(0);
            let all: Vec<u16> = g.inside.iter().chain(&g.outside).copied().collect();
            if g.inside.is_empty() || g.outside.is_empty() {
                return Err(c.fail(key("inside"), "a gate needs ports inside and outside"));
            }
            if let Some(p) = all.iter().find(|p| **p == 0 || **p > ports) {
                return Err(c.fail(
                    key("inside"),
                    format!("port {p}: the reader has ports 1 to {ports}"),
                ));
            }
            if g.inside.iter().any(|p| g.outside.contains(p)) {
                return Err(c.fail(key("outside"), "a port is inside or outside, not both"));
            }
        }
        let gates = raw.gates;
        let motion = c.motion(&raw.shelving)?;
        let backup = raw
            .backup
            .map(backup::check)
            .transpose()
            .map_err(|(key, message)| c.fail(key, message))?;
        Ok(RoomConfig {
            file: file.to_path_buf(),
            site_id: raw.site.id,
            site_name: raw.site.name,
            room_id: raw.room.id,
            room_name: raw.room.name,
            language: raw.room.language,
            door: raw.room.door,
            listen,
            api_tls,
            data_dir: raw.storage.data_dir,
            mqtt,
            bus,
            archive_rule,
            default_box_width_mm: raw.boxes.default_width_mm,
            year_field: raw.boxes.year_field.clone(),
            fields,
            retention,
            places,
            layout,
            devices,
            antennas,
            sweeps,
            environment,
            loans,
            labels,
            gates,
            motion,
            lookups_keep: std::time::Duration::from_secs(u64::from(raw.lookups.keep_days) * 86_400),
            backup,
        })
    }

    fn sweeps(c: &Checker, raw: &RawSweeps, layout: &Layout) -> Result<SweepSettings, ConfigError> {
        if !(10..=60_000).contains(&raw.dwell_ms) {
            return Err(c.fail("sweeps.dwell_ms", "must be 10 to 60000 (ms per antenna)"));
        }
        if !(0.0..=1.0).contains(&raw.sync_confidence) {
            return Err(c.fail("sweeps.sync_confidence", "is a share, 0 to 1"));
        }
        if raw.second_look_dwell_ms != 0 && !(10..=60_000).contains(&raw.second_look_dwell_ms) {
            return Err(c.fail(
                "sweeps.second_look_dwell_ms",
                "must be 0 (no second look) or 10 to 60000 (ms per antenna)",
            ));
        }
        let mut schedule = Vec::new();
        let mut names = HashSet::new();
        for (i, s) in raw.schedule.iter().enumerate() {
            let key = |k: &str| format!("sweeps.schedule[{i}].{k}");
            if s.name.is_empty() || !names.insert(s.name.as_str()) {
                return Err(c.fail(key("name"), "needs a name of its own"));
            }
            let cron = s.cron.parse::<croner::Cron>().map_err(|e| {
                c.fail(
                    key("cron"),
                    format!("'{}' is not a cron expression: {e} (e.g. \"0 2 * * *\": 02:00 every night)", s.cron),
                )
            })?;
            s.scope
                .shelves(layout)
                .map_err(|e| c.fail(key("scope"), e))?;
            schedule.push(Schedule {
                name: s.name.clone(),
                cron,
                scope: s.scope.clone(),
                apply: s.apply,
                overlap: s.overlap,
            });
        }
        Ok(SweepSettings {
            dwell: std::time::Duration::from_millis(raw.dwell_ms),
            sync_confidence: raw.sync_confidence,
            second_look: std::time::Duration::from_millis(raw.second_look_dwell_ms),
            schedule,
        })
    }

    fn layout(c: &Checker, raw: &[RawRange]) -> Result<Layout, ConfigError> {
        if raw.is_empty() {
            return Err(c.fail("ranges", "the room needs at least one [[ranges]]"));
        }
        let mut ranges = Vec::new();
        let mut ids = HashSet::new();
        for (i, r) in raw.iter().enumerate() {
            let key = |k: &str| format!("ranges[{i}].{k}");
            if r.id == 0 {
                return Err(c.fail(key("id"), "ranges are numbered from 1"));
            }
            if !ids.insert(r.id) {
                return Err(c.fail(key("id"), format!("range {} is defined twice", r.id)));
            }
            if r.carriages < 2 {
                return Err(c.fail(
                    key("carriages"),
                    "a range needs at least 2 carriages to have an aisle",
                ));
            }
            if r.sections == 0 || r.levels == 0 {
                return Err(c.fail(
                    key(if r.sections == 0 {
                        "sections"
                    } else {
                        "levels"
                    }),
                    "must be at least 1",
                ));
            }
            let (first, last) = match r.fixed_ends.as_str() {
                "both" => (true, true),
                "first" => (true, false),
                "last" => (false, true),
                "none" => (false, false),
                other => {
                    return Err(c.fail(
                        key("fixed_ends"),
                        format!("'{other}' must be one of both, first, last, none"),
                    ));
                }
            };
            if !r.carriage_widths_mm.is_empty()
                && r.carriage_widths_mm.len() != r.carriages as usize
            {
                return Err(c.fail(
                    key("carriage_widths_mm"),
                    format!(
                        "lists {} widths for {} carriages; list one per carriage or leave it out",
                        r.carriage_widths_mm.len(),
                        r.carriages
                    ),
                ));
            }
            if r.carriage_width_mm == 0 || r.carriage_widths_mm.contains(&0) {
                return Err(c.fail(key("carriage_width_mm"), "widths must be at least 1 mm"));
            }
            if r.aisle_width_mm == 0 {
                return Err(c.fail(key("aisle_width_mm"), "must be at least 1 mm"));
            }
            let capacity = match r.shelf_capacity {
                RawCapacity::Boxes(0) | RawCapacity::Mm(0) => {
                    return Err(c.fail(key("shelf_capacity"), "must be at least 1"));
                }
                RawCapacity::Boxes(n) => Capacity::Boxes(n),
                RawCapacity::Mm(n) => Capacity::Mm(n),
            };
            let carriages = (1..=r.carriages)
                .map(|index| Carriage {
                    index,
                    width_mm: r
                        .carriage_widths_mm
                        .get(index as usize - 1)
                        .copied()
                        .unwrap_or(r.carriage_width_mm),
                    fixed: (index == 1 && first) || (index == r.carriages && last),
                })
                .collect();
            ranges.push(RangeLayout {
                id: r.id,
                name: if r.name.is_empty() {
                    r.id.to_string().into()
                } else {
                    r.name.clone()
                },
                carriages,
                aisle_width_mm: r.aisle_width_mm,
                sections: r.sections,
                levels: r.levels,
                capacity,
            });
        }
        Ok(Layout { ranges })
    }

    fn devices(
        c: &Checker,
        raw: &[RawDevice],
        profiles_dir: &Path,
        layout: &Layout,
    ) -> Result<Vec<Device>, ConfigError> {
        let mut devices = Vec::new();
        let mut ids = HashSet::new();
        let mut driven = HashMap::new();
        for (i, d) in raw.iter().enumerate() {
            let key = |k: &str| format!("devices[{i}].{k}");
            c.name(&key("id"), &d.id)?;
            if !ids.insert(d.id.clone()) {
                return Err(c.fail(key("id"), format!("device '{}' is defined twice", d.id)));
            }
            c.name(&key("profile"), &d.profile)?;
            let profile_path = profiles_dir.join(format!("{}.toml", d.profile));
            let text = std::fs::read_to_string(&profile_path).map_err(|e| {
                c.fail(
                    key("profile"),
                    format!(
                        "cannot read device profile {}: {e}; profiles are looked up in profiles_dir",
                        profile_path.display()
                    ),
                )
            })?;
            let spec = Profile::parse(&text).map_err(|e| {
                c.fail(
                    key("profile"),
                    format!(
                        "device profile {} is not valid: {e}",
                        profile_path.display()
                    ),
                )
            })?;
            match (spec.device.kind, d.range) {
                (DeviceKind::Shelving, None) => {
                    return Err(c.fail(
                        key("range"),
                        "a shelving controller needs the range it drives",
                    ));
                }
                (DeviceKind::Shelving, Some(range)) => {
                    let Some(r) = layout.range(range) else {
                        return Err(c.fail(key("range"), format!("the room has no range {range}")));
                    };
                    let gaps = r.carriage_count() as usize + 1;
                    if let Some(capacity) = spec.gap_capacity().filter(|c| *c < gaps) {
                        return Err(c.fail(
                            key("profile"),
                            format!(
                                "range {range} has {} carriages, so {gaps} gaps (its aisles and the gaps at both walls), but profile '{}' tells occupancy for {capacity}; a person in the others would be invisible: use a profile with a wider occupancy mask (occupied_words, occupied_bytes)",
                                r.carriage_count(),
                                d.profile
                            ),
                        ));
                    }
                    if let Some(m) = spec
                        .modbus
                        .as_ref()
                        .filter(|m| m.max_carriages < r.carriage_count())
                    {
                        return Err(c.fail(
                            key("profile"),
                            format!(
                                "range {range} has {} carriages; profile '{}' has position registers for {}",
                                r.carriage_count(),
                                d.profile,
                                m.max_carriages
                            ),
                        ));
                    }
                    if let Some(other) = driven.insert(range, d.id.clone()) {
                        return Err(c.fail(
                            key("range"),
                            format!("range {range} is already driven by device '{other}'"),
                        ));
                    }
                }
                (DeviceKind::Reader, Some(_)) => {
                    return Err(c.fail(
                        key("range"),
                        "readers cover shelves through the antenna map, not a range: remove it",
                    ));
                }
                (DeviceKind::Reader, None) | (DeviceKind::Environment, None) => {}
                (DeviceKind::Environment, Some(_)) => {
                    return Err(c.fail(
                        key("range"),
                        "environment devices belong to zones (environment.points), not a range: remove it",
                    ));
                }
            }
            match &d.transport {
                Transport::Serial { path, baud, .. } => {
                    if path.is_empty() || *baud == 0 {
                        return Err(c.fail(
                            key("transport.serial"),
                            "needs a device path and a baud rate, e.g. { path = \"/dev/ttyUSB0\", baud = 9600 }",
                        ));
                    }
                }
                Transport::ModbusTcp { address, .. } => {
                    if address
                        .rsplit_once(':')
                        .is_none_or(|(_, p)| p.parse::<u16>().is_err())
                    {
                        return Err(c.fail(
                            key("transport.modbus_tcp.address"),
                            format!("'{address}' needs HOST:PORT, e.g. 192.0.2.10:502"),
                        ));
                    }
                }
                Transport::Mqtt { prefix } => {
                    if prefix.is_empty() || prefix.contains(['#', '+']) {
                        return Err(c.fail(
                            key("transport.mqtt.prefix"),
                            "needs a topic prefix without wildcards, e.g. \"readers/r1\"",
                        ));
                    }
                }
            }
            devices.push(Device {
                id: d.id.clone(),
                profile: d.profile.clone(),
                profile_path,
                spec,
                range: d.range,
                transport: d.transport.clone(),
            });
        }
        Ok(devices)
    }

    fn antennas(
        c: &Checker,
        raw: &RawConfig,
        devices: &[Device],
        layout: &Layout,
    ) -> Result<Vec<Antenna>, ConfigError> {
        let is_reader = |id: &str| {
            devices
                .iter()
                .any(|d| d.id == id && d.spec.device.kind == DeviceKind::Reader)
        };
        let mut antennas = Vec::new();
        let mut ports: HashMap<(String, u16), String> = HashMap::new();
        let mut add = |key: String, reader: &str, port: u16, shelf: ShelfAddress| {
            if port == 0 {
                return Err(c.fail(key, "antenna ports are numbered from 1"));
            }
            let count = devices
                .iter()
                .find(|d| d.id == reader)
                .and_then(|d| d.spec.antenna_ports());
            if let Some(count) = count.filter(|&n| port > n) {
                return Err(c.fail(
                    key,
                    format!("reader '{reader}' has antenna ports 1 to {count} (its profile says), not {port}"),
                ));
            }
            if let Some(first) = ports.insert((reader.to_string(), port), key.clone()) {
                return Err(c.fail(
                    key,
                    format!("port {port} of reader '{reader}' is already mapped by {first}"),
                ));
            }
            antennas.push(Antenna {
                reader: reader.to_string(),
                port,
                shelf,
            });
            Ok(())
        };
        for (i, a) in raw.antennas.iter().enumerate() {
            let key = format!("antennas[{i}]");
            if !is_reader(&a.reader) {
                return Err(c.fail(
                    format!("{key}.reader"),
                    format!("'{}' is not a reader among [[devices]]", a.reader),
                ));
            }
            let shelf: ShelfAddress =
                a.shelf.parse().map_err(|e: crate::shelf::AddressError| {
                    c.fail(format!("{key}.shelf"), e.to_string())
                })?;
            layout
                .check(&shelf)
                .map_err(|e| c.fail(format!("{key}.shelf"), e.to_string()))?;
            add(key, &a.reader, a.port, shelf)?;
        }
        for (i, b) in raw.antenna_blocks.iter().enumerate() {
            let key = format!("antenna_blocks[{i}]");
            if !is_reader(&b.reader) {
                return Err(c.fail(
                    format!("{key}.reader"),
                    format!("'{}' is not a reader among [[devices]]", b.reader),
                ));
            }
            let range = layout.range(b.range).ok_or_else(|| {
                c.fail(
                    format!("{key}.range"),
                    format!("the room has no range {}", b.range),
                )
            })?;
            let [from, to] = b.carriages;
            if from == 0 || from > to || to > range.carriage_count() {
                return Err(c.fail(
                    format!("{key}.carriages"),
                    format!(
                        "[{from}, {to}] must be a span of carriages within 1 to {}",
                        range.carriage_count()
                    ),
                ));
            }
            let mut port = b.first_port;
            for shelf in range
                .shelves()
                .filter(|s| (from..=to).contains(&s.carriage))
            {
                add(format!("{key} (shelf {shelf})"), &b.reader, port, shelf)?;
                port = port
                    .checked_add(1)
                    .ok_or_else(|| c.fail(format!("{key}.first_port"), "ports run past 65535"))?;
            }
        }
        Ok(antennas)
    }

    /// A summary for people: what the file describes.
    pub fn summary(&self) -> String {
        let mut out = format!(
            "{}: site '{}', room '{}'\n",
            self.file.display(),
            self.site_id,
            self.room_id
        );
        out += &format!(
            "  {} range(s), {} shelves\n",
            self.layout.ranges.len(),
            self.layout.shelf_count()
        );
        for r in &self.layout.ranges {
            let fixed: Vec<String> = r
                .carriages
                .iter()
                .filter(|c| c.fixed)
                .map(|c| c.index.to_string())
                .collect();
            out += &format!(
                "    range {} ({}): {} carriages (fixed: {}), {} aisles, {} sections x {} levels, {} shelves, capacity {}\n",
                r.id,
                r.name,
                r.carriage_count(),
                if fixed.is_empty() {
                    "none".into()
                } else {
                    fixed.join(", ")
                },
                r.aisle_count(),
                r.sections,
                r.levels,
                r.shelf_count(),
                match r.capacity {
                    Capacity::Boxes(n) => format!("{n} boxes"),
                    Capacity::Mm(n) => format!("{n} mm"),
                }
            );
        }
        if !self.environment.zones.is_empty() {
            out += &format!("  {} environment zone(s)\n", self.environment.zones.len());
            for z in &self.environment.zones {
                out += &format!(
                    "    {} ({}): ranges {:?}, {}-{} °C, {}-{} % RH; dehumidifier on above {} %, off below {} %\n",
                    z.id,
                    z.name,
                    z.ranges,
                    z.temperature.min,
                    z.temperature.max,
                    z.humidity.min,
                    z.humidity.max,
                    z.dehumidify.on_above,
                    z.dehumidify.off_below
                );
            }
        }
        out += &format!("  {} device(s)\n", self.devices.len());
        for d in &self.devices {
            let role = match (d.spec.device.kind, d.range) {
                (DeviceKind::Shelving, Some(r)) => format!("shelving controller of range {r}"),
                (DeviceKind::Environment, _) => {
                    let points: Vec<&str> = self
                        .environment
                        .points
                        .iter()
                        .filter(|p| p.device == d.id)
                        .map(|p| p.id.as_str())
                        .collect();
                    format!("environment device, points {}", points.join(", "))
                }
                _ => {
                    let n = self.antennas.iter().filter(|a| a.reader == d.id).count();
                    format!("reader, {n} antenna port(s)")
                }
            };
            out += &format!(
                "    {}: {} ({}, {}), {}\n",
                d.id, role, d.profile, d.spec.device.protocol, d.transport
            );
        }
        let covered: HashSet<_> = self.antennas.iter().map(|a| a.shelf).collect();
        out += &format!(
            "  {} antenna(s) covering {} of {} shelves\n",
            self.antennas.len(),
            covered.len(),
            self.layout.shelf_count()
        );
        out += &format!(
            "  sweeps: {} ms per antenna, sync above {:.0}% confidence, {} scheduled\n",
            self.sweeps.dwell.as_millis(),
            self.sweeps.sync_confidence * 100.0,
            self.sweeps.schedule.len()
        );
        for s in &self.sweeps.schedule {
            out += &format!(
                "    {}: \"{}\" ({}), scope {}, apply {:?}, overlap {:?}\n",
                s.name,
                s.cron.pattern,
                s.cron.describe(),
                serde_json::to_string(&s.scope).unwrap_or_default(),
                s.apply,
                s.overlap
            );
        }
        match &self.backup {
            Some(b) => {
                out += &format!(
                    "  backups: \"{}\" ({}) into {}, keeping {} daily, {} weekly, {} monthly\n",
                    b.cron.pattern,
                    b.cron.describe(),
                    b.dir_in(&self.data_dir).display(),
                    b.keep_daily,
                    b.keep_weekly,
                    b.keep_monthly
                );
            }
            None => out += "  backups: none scheduled ([backup])\n",
        }
        out += &format!("  archive numbers: {}\n", self.archive_rule.pattern());
        let m = &self.motion;
        out += &format!(
            "  shelving: {} ms warning before a motion ({} ms automatic, which needs the aisles it closes clear for {} s), queued requests kept {} ms, stops confirmed within {} ms\n",
            m.start_delay.as_millis(),
            m.automatic_start_delay.as_millis(),
            m.automatic_clear.as_secs(),
            m.queue_expiry.as_millis(),
            m.confirm_window.as_millis()
        );
        for w in self.warnings() {
            out += &format!("  warning: {w}\n");
        }
        out
    }

    /// What is allowed but unsafe or unwise: check-config prints it, serve logs it.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        for d in &self.devices {
            if d.spec.device.kind == DeviceKind::Shelving && d.spec.watchdog.is_none() {
                out.push(format!(
                    "device '{}': profile '{}' has no communication watchdog: if the controller dies or its link is cut mid-motion, the carriages run on until they arrive",
                    d.id, d.profile
                ));
            }
            if d.spec.device.kind == DeviceKind::Shelving
                && !d.spec.has_warning_output()
                && !self.motion.start_delay.is_zero()
            {
                out.push(format!(
                    "device '{}': profile '{}' has no pre-motion warning output: the start delay passes in silence",
                    d.id, d.profile
                ));
            }
        }
        out
    }
}

/// `[labels]`: the size of the printed box labels.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelSize {
    pub width_mm: f64,
    pub height_mm: f64,
}

impl Default for LabelSize {
    fn default() -> Self {
        LabelSize {
            width_mm: 100.0,
            height_mm: 60.0,
        }
    }
}

impl LabelSize {
    pub fn check(&self) -> Result<(), String> {
        let ok = |v: f64| (30.0..=300.0).contains(&v);
        if !(ok(self.width_mm) && ok(self.height_mm)) {
            return Err("width_mm and height_mm are 30 to 300".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub const MINIMAL: &str = r#"
[site]
id = "site-1"
[room]
id = "room-1"
[archive_number]
pattern = "{cat}-{seq}"
series = ["cat"]
[archive_number.parts]
cat = "H|L"
seq = "[0-9]{4}"
[[ranges]]
id = 1
carriages = 4
sections = 2
levels = 3
shelf_capacity = { boxes = 5 }
"#;

    fn err(text: &str) -> String {
        RoomConfig::parse(Path::new("room.toml"), text)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn minimal_config_loads_with_defaults() {
        let config = RoomConfig::parse(Path::new("room.toml"), MINIMAL).unwrap();
        assert_eq!(config.layout.shelf_count(), 6 * 2 * 3);
        assert_eq!(config.listen.port(), 8080);
        assert!(matches!(config.mqtt, Mqtt::Embedded { .. }));
        let r = &config.layout.ranges[0];
        assert!(r.carriages[0].fixed && r.carriages[3].fixed && !r.carriages[1].fixed);
    }

    #[test]
    fn fields_and_retention_classes_are_checked_against_each_other_and_the_rule() {
        let with = |extra: &str| format!("{MINIMAL}\n{extra}");
        let ok = RoomConfig::parse(
            Path::new("room.toml"),
            &with(
                "[boxes.fields.closed]\ntype = \"date\"\n[retention]\ndefault = \"p\"\n\
                 [retention.classes.p]\n[retention.classes.y10]\nyears = 10\nfrom = \"closed\"\n\
                 [retention.by_part]\ncat = { L = \"y10\" }",
            ),
        )
        .unwrap();
        let class = |no: &str| {
            ok.retention
                .class_of(None, &|part| ok.archive_rule.part_of(no, part))
                .map(|c| c.id.clone())
        };
        assert_eq!(class("L-0001").as_deref(), Some("y10"));
        assert_eq!(class("H-0001").as_deref(), Some("p"), "the default");
        for (extra, key) in [
            ("[boxes.fields.Bad-Key]", "boxes.fields.Bad-Key"),
            ("[boxes.fields.title]", "boxes.fields.title"),
            (
                "[boxes.fields.v]\ntype = \"choice\"",
                "boxes.fields.v.choices",
            ),
            (
                "[boxes.fields.d]\ntype = \"date\"\nsearch = \"words\"",
                "boxes.fields.d.search",
            ),
            (
                "[retention.classes.y]\nyears = 0",
                "retention.classes.y.years",
            ),
            (
                "[retention.classes.y]\nyears = 5\nfrom = \"nothing\"",
                "retention.classes.y.from",
            ),
            ("[retention]\ndefault = \"none\"", "retention.default"),
            (
                "[retention.by_part]\ncabinet = { A = \"x\" }",
                "retention.by_part.cabinet",
            ),
        ] {
            let e = err(&with(extra));
            assert!(e.contains(key), "{extra}: {e}");
        }
    }

    #[test]
    fn errors_name_the_file_and_the_key() {
        let e = err(&MINIMAL.replace("carriages = 4", "carriages = 1"));
        assert!(e.starts_with("room.toml: ranges[0].carriages:"), "{e}");
        let e = err(&MINIMAL
            .replace("fixed", "")
            .replace("carriages = 4", "carriages = 4\nfixed_ends = \"left\""));
        assert!(
            e.contains("ranges[0].fixed_ends") && e.contains("both, first"),
            "{e}"
        );
        let e = err(&MINIMAL.replace("{cat}-{seq}", "{cat}-{sequence}"));
        assert!(
            e.contains("archive_number") && e.contains("sequence"),
            "{e}"
        );
        let e = err(&MINIMAL.replace("[room]", "[api]\nlisten = \"localhost\"\n[room]"));
        assert!(e.contains("api.listen"), "{e}");
        let e = err(&format!("{MINIMAL}\nunknown_key = 1"));
        assert!(
            e.starts_with("room.toml:") && e.contains("unknown_key"),
            "{e}"
        );
        let e = err(&MINIMAL.replace("sections = 2\n", ""));
        assert!(e.contains("sections"), "{e}");
        let e = err(&format!("{MINIMAL}\n[boxes]\nyear_field = \"opened\"\n"));
        assert!(
            e.contains("boxes.year_field") && e.contains("not a date field"),
            "{e}"
        );
        let e = err(&MINIMAL.replace("id = \"room-1\"", "id = \"room-1\"\ndoor = \"north\""));
        assert!(e.contains("door") && e.contains("bottom"), "{e}");
        let e = err(&MINIMAL.replace(
            "id = \"room-1\"",
            "id = \"room-1\"\nname = { zh = \"库\", en = \"\" }",
        ));
        assert!(
            e.contains("room.name") && e.contains("both languages"),
            "{e}"
        );
    }

    #[test]
    fn sweeps_and_their_schedule_are_checked() {
        let sweep = |body: &str| format!("{MINIMAL}\n[sweeps]\n{body}");
        let ok = RoomConfig::parse(
            Path::new("room.toml"),
            &sweep("dwell_ms = 250\n[[sweeps.schedule]]\nname = \"n\"\ncron = \"30 2 * * 1-5\"\nscope = { range = 1 }\napply = \"sync\"\noverlap = \"wait\"\n"),
        )
        .unwrap();
        assert_eq!(ok.sweeps.dwell.as_millis(), 250);
        assert_eq!(ok.sweeps.schedule[0].apply, Apply::Sync);
        assert_eq!(ok.sweeps.schedule[0].overlap, Overlap::Wait);
        let schedule = |cron: &str, scope: &str| {
            sweep(&format!(
                "[[sweeps.schedule]]\nname = \"n\"\ncron = \"{cron}\"\nscope = {scope}\n"
            ))
        };
        let e = err(&schedule("every night", "{ range = 1 }"));
        assert!(
            e.contains("sweeps.schedule[0].cron") && e.contains("not a cron expression"),
            "{e}"
        );
        let e = err(&schedule("0 2 * * *", "{ range = 7 }"));
        assert!(
            e.contains("sweeps.schedule[0].scope") && e.contains("no range 7"),
            "{e}"
        );
        let e = err(&schedule("0 2 * * *", "{ shelves = [\"R1-C9-L-S1-L1\"] }"));
        assert!(e.contains("sweeps.schedule[0].scope"), "{e}");
        let e = err(&sweep("dwell_ms = 1\n"));
        assert!(e.contains("sweeps.dwell_ms"), "{e}");
        let e = err(&sweep("sync_confidence = 2\n"));
        assert!(e.contains("sweeps.sync_confidence"), "{e}");
    }

    #[test]
    fn devices_and_antennas_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let profiles = dir.path().join("profiles");
        std::fs::create_dir(&profiles).unwrap();
        std::fs::write(
            profiles.join("rd.toml"),
            "[device]\nkind = \"reader\"\nprotocol = \"r2000\"\n[r2000]\nports = 32\n",
        )
        .unwrap();
        let file = dir.path().join("room.toml");
        let with = |extra: &str| {
            RoomConfig::parse(
                &file,
                &format!("profiles_dir = \"profiles\"\n{MINIMAL}\n{extra}"),
            )
        };
        let reader = "[[devices]]\nid = \"r1\"\nprofile = \"rd\"\ntransport = { serial = { path = \"/dev/ttyUSB0\", baud = 115200 } }\n";
        let ok = with(&format!(
            "{reader}[[antenna_blocks]]\nreader = \"r1\"\nrange = 1\ncarriages = [1, 2]\n"
        ))
        .unwrap();
        // carriage 1 has one shelved face, carriage 2 has two: 3 faces x 6 shelves
        assert_eq!(ok.antennas.len(), 18);
        assert_eq!(ok.antennas[17].port, 18);

        let e = with(&format!(
            "{reader}[[antennas]]\nreader = \"r1\"\nport = 1\nshelf = \"R1-C1-L-S1-L1\"\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("antennas[0].shelf") && e.contains("wall"), "{e}");
        let e = with(&format!(
            "{reader}[[antennas]]\nreader = \"r1\"\nport = 1\nshelf = \"R1-C2-L-S1-L1\"\n[[antennas]]\nreader = \"r1\"\nport = 1\nshelf = \"R1-C2-L-S1-L2\"\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("already mapped"), "{e}");
        let e = with(&format!(
            "{reader}[[antennas]]\nreader = \"r1\"\nport = 33\nshelf = \"R1-C2-L-S1-L1\"\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("antenna ports 1 to 32"), "{e}");
        let e = with(&reader.replace("\"rd\"", "\"missing\""))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("devices[0].profile") && e.contains("missing.toml"),
            "{e}"
        );
        let e = with(&format!("{reader}range = 1\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("devices[0].range"), "{e}");
    }
}

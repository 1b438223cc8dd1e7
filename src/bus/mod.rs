//! The device bus: who may connect to the MQTT broker, and what each client may read and
//! write.
//!
//! Every client authenticates: the controller with its user (`stackroom` unless the broker
//! URL names another) and one derived user per device it drives (`stackroom.shelving-2`),
//! each device with its own id as user name. Passwords are files in `mqtt.secrets_dir`, one
//! per user, named after it (the controller's may come from `mqtt.password_env`); never in
//! the room config. The broker uses the user name as client id, so a client can only ever
//! take over its own session.
//!
//! The [`Grant`]s say which topics each user may read and write: the controller everything;
//! an MQTT shelving controller its own state and result topics, and to read its command
//! and heartbeat topics; a reader its own event topic; a Zigbee2MQTT bridge its prefix.
//! [`front`] enforces them in front of the embedded broker; [`mosquitto`] writes them as
//! Mosquitto's password and ACL files for a site broker.

pub mod front;
pub mod mosquitto;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use stackroom_wire::profile::Protocol;

use crate::config::bus::{BadBrokerUrl, BrokerUrl, BusSettings};
use crate::config::{Mqtt, RoomConfig, Transport};

/// Why the bus cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error(transparent)]
    Url(#[from] BadBrokerUrl),
    #[error("the MQTT password of '{user}' is missing: {how}")]
    Missing { user: String, how: String },
    #[error("cannot use the MQTT secret {path}: {source}")]
    Secret {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read {path} for TLS to the broker: {source}")]
    Tls {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The broker address and credentials every MQTT client of the controller uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    pub tls: Option<TlsFiles>,
}

/// TLS to the broker, as PEM text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca: Vec<u8>,
    pub client: Option<(Vec<u8>, Vec<u8>)>,
}

impl Endpoint {
    /// A plain endpoint (tests, tools): no TLS.
    pub fn plain(host: impl Into<String>, port: u16, user: &str, password: &str) -> Endpoint {
        Endpoint {
            host: host.into(),
            port,
            user: user.into(),
            password: password.into(),
            tls: None,
        }
    }

    /// The user name of one of the controller's connections: `None` its own (events,
    /// status), `Some(device)` the driver of that device.
    pub fn user_for(&self, device: Option<&str>) -> String {
        controller_user(&self.user, device)
    }

    /// Options for one connection; the client id is the user name (as the brokers enforce).
    pub fn options(&self, device: Option<&str>) -> rumqttc::MqttOptions {
        let user = self.user_for(device);
        let mut options = rumqttc::MqttOptions::new(user.clone(), &self.host, self.port);
        options.set_credentials(user, self.password.clone());
        if let Some(tls) = &self.tls {
            // rustls needs one crypto provider for the process: ring (another crate may
            // have enabled a second one, which would leave the choice open).
            let _ = rustls::crypto::ring::default_provider().install_default();
            options.set_transport(rumqttc::Transport::tls(
                tls.ca.clone(),
                tls.client.clone(),
                None,
            ));
        }
        options
    }

    /// The same endpoint with another host and port (a test's or simulator's override).
    pub fn at(&self, host: &str, port: u16) -> Endpoint {
        Endpoint {
            host: host.into(),
            port,
            ..self.clone()
        }
    }
}

/// `{controller}` or `{controller}.{device}`.
pub fn controller_user(controller: &str, device: Option<&str>) -> String {
    match device {
        None => controller.to_string(),
        Some(d) => format!("{controller}.{d}"),
    }
}

/// The passwords, one file per user in a directory that only the service's user can read.
#[derive(Debug, Clone)]
pub struct Secrets {
    dir: PathBuf,
}

impl Secrets {
    pub fn new(dir: impl Into<PathBuf>) -> Secrets {
        Secrets { dir: dir.into() }
    }

    /// The secrets of a controller whose data lives in `data_dir`.
    pub fn of(bus: &BusSettings, data_dir: &Path) -> Secrets {
        Secrets::new(bus.secrets_dir(data_dir))
    }

    pub fn path(&self, user: &str) -> PathBuf {
        self.dir.join(user)
    }

    /// The password of `user`, if its file exists.
    pub fn read(&self, user: &str) -> Result<Option<String>, BusError> {
        let path = self.path(user);
        match std::fs::read_to_string(&path) {
            Ok(s) => Ok(Some(s.trim().to_string()).filter(|s| !s.is_empty())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(BusError::Secret { path, source }),
        }
    }

    /// The password of `user`, made (random, 0600 in a 0700 directory) if there is none.
    pub fn ensure(&self, user: &str) -> Result<String, BusError> {
        if let Some(p) = self.read(user)? {
            return Ok(p);
        }
        let path = self.path(user);
        let fail = |source| BusError::Secret {
            path: path.clone(),
            source,
        };
        create_private_dir(&self.dir).map_err(fail)?;
        let secret = random_secret();
        write_private(&path, secret.as_bytes()).map_err(fail)?;
        Ok(secret)
    }
}

/// 192 random bits as 48 hex digits.
pub fn random_secret() -> String {
    use rand::RngExt;
    let bytes: [u8; 24] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Creates `dir` (and its parents) readable by its owner only.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Writes a file that only its owner can read (created so, never world-readable between
/// creation and a chmod).
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)
}

/// What one user may read and write, as MQTT topic filters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub user: String,
    /// Why this user exists (for the generated files).
    pub about: String,
    pub read: Vec<String>,
    pub write: Vec<String>,
}

impl Grant {
    /// Whether a message may be published on `topic`.
    pub fn may_write(&self, topic: &str) -> bool {
        self.write.iter().any(|f| topic_matches(f, topic))
    }

    /// Whether a subscription to `filter` receives only what this user may read.
    pub fn may_subscribe(&self, filter: &str) -> bool {
        valid_filter(filter) && self.read.iter().any(|p| covers(p, filter))
    }

    /// Whether a message on `topic` may be delivered to this user.
    pub fn may_read(&self, topic: &str) -> bool {
        self.read.iter().any(|f| topic_matches(f, topic))
    }
}

/// The user a site broker's bridge logs in to the room's broker as (`stackroom site`).
pub const SITE_BRIDGE: &str = "site-bridge";

/// The clients of the room's bus (the controller, its devices, the site's bridge), with the
/// topics each uses.
pub fn grants(config: &RoomConfig, controller: &str) -> Vec<Grant> {
    let everything = || vec!["#".to_string()];
    let mut out = vec![Grant {
        user: controller.to_string(),
        about: "the controller (status, events)".into(),
        read: everything(),
        write: everything(),
    }];
    out.push(Grant {
        user: SITE_BRIDGE.to_string(),
        about: "the site broker's bridge (reads what the room publishes)".into(),
        read: vec![format!("stackroom/{}/{}/#", config.site_id, config.room_id)],
        write: vec![],
    });
    for d in &config.devices {
        let Transport::Mqtt { prefix } = &d.transport else {
            continue;
        };
        let at = |t: &str| format!("{prefix}/{t}");
        let (read, write) = match d.spec.device.protocol {
            Protocol::MqttJson => match &d.spec.mqtt_json {
                Some(t) => (
                    std::iter::once(at(&t.command_topic))
                        .chain(t.heartbeat_topic.as_deref().map(at))
                        .collect(),
                    vec![at(&t.state_topic), at(&t.result_topic)],
                ),
                None => continue,
            },
            Protocol::ImpinjIot => match &d.spec.impinj_iot {
                Some(t) => (vec![], vec![at(&t.event_topic)]),
                None => continue,
            },
            Protocol::Zigbee2mqtt => (vec![at("#")], vec![at("#")]),
            _ => continue,
        };
        out.push(Grant {
            user: controller_user(controller, Some(&d.id)),
            about: format!("the controller's driver of {}", d.id),
            read: everything(),
            write: everything(),
        });
        out.push(Grant {
            user: d.id.clone(),
            about: format!("device {} ({})", d.id, d.profile),
            read,
            write,
        });
    }
    out
}

/// The users of the bus and their passwords, making those that are missing (what an
/// embedded broker or `broker-config` does); the controller's from `password_env` if set.
pub fn passwords(
    config: &RoomConfig,
    grants: &[Grant],
    make_missing: bool,
) -> Result<BTreeMap<String, String>, BusError> {
    let bus = &config.bus;
    let secrets = Secrets::of(bus, &config.data_dir);
    let own = controller_password(bus, &secrets, make_missing)?;
    let mut out = BTreeMap::new();
    for g in grants {
        let password = if bus.is_controller(&g.user) {
            own.clone()
        } else if make_missing {
            secrets.ensure(&g.user)?
        } else {
            secrets.read(&g.user)?.ok_or_else(|| BusError::Missing {
                user: g.user.clone(),
                how: format!("no file {}", secrets.path(&g.user).display()),
            })?
        };
        out.insert(g.user.clone(), password);
    }
    Ok(out)
}

fn controller_password(
    bus: &BusSettings,
    secrets: &Secrets,
    make_missing: bool,
) -> Result<String, BusError> {
    if let Some(var) = &bus.password_env {
        return std::env::var(var)
            .ok()
            .filter(|p| !p.is_empty())
            .ok_or_else(|| BusError::Missing {
                user: bus.user.clone(),
                how: format!("the environment variable {var} is not set"),
            });
    }
    if make_missing {
        return secrets.ensure(&bus.user);
    }
    secrets.read(&bus.user)?.ok_or_else(|| BusError::Missing {
        user: bus.user.clone(),
        how: format!(
            "no file {} and no mqtt.password_env",
            secrets.path(&bus.user).display()
        ),
    })
}

/// The controller's endpoint: the embedded broker (passwords made on first start) or the
/// configured one (its password must exist).
pub fn endpoint(config: &RoomConfig) -> Result<Endpoint, BusError> {
    let bus = &config.bus;
    let (host, port, tls) = match &config.mqtt {
        Mqtt::Embedded { listen } => (listen.ip().to_string(), listen.port(), None),
        Mqtt::External { url } => {
            let u = BrokerUrl::parse(url)?;
            let tls = if u.tls {
                let read = |p: &PathBuf| {
                    std::fs::read(p).map_err(|source| BusError::Tls {
                        path: p.clone(),
                        source,
                    })
                };
                let ca = match &bus.ca_file {
                    Some(p) => read(p)?,
                    None => {
                        return Err(BusError::Missing {
                            user: bus.user.clone(),
                            how: "an mqtts:// broker needs mqtt.ca_file".into(),
                        });
                    }
                };
                let client = match &bus.client_cert {
                    Some((cert, key)) => Some((read(cert)?, read(key)?)),
                    None => None,
                };
                Some(TlsFiles { ca, client })
            } else {
                None
            };
            (u.host, u.port, tls)
        }
    };
    let embedded = matches!(config.mqtt, Mqtt::Embedded { .. });
    Ok(Endpoint {
        host,
        port,
        user: bus.user.clone(),
        password: controller_password(bus, &Secrets::of(bus, &config.data_dir), embedded)?,
        tls,
    })
}

/// What `check-config` says about the bus: one line per user whose password is missing.
pub fn missing(config: &RoomConfig) -> Vec<String> {
    let grants = grants(config, &config.bus.user);
    let embedded = matches!(config.mqtt, Mqtt::Embedded { .. });
    let secrets = Secrets::of(&config.bus, &config.data_dir);
    let mut out = Vec::new();
    if let Err(e) = controller_password(&config.bus, &secrets, false) {
        // Without password_env, the embedded broker makes it on first start.
        if !embedded || config.bus.password_env.is_some() {
            out.push(e.to_string());
        }
    }
    for g in grants.iter().filter(|g| !config.bus.is_controller(&g.user)) {
        match secrets.read(&g.user) {
            Ok(Some(_)) => {}
            Ok(None) if embedded => {}
            Ok(None) => out.push(format!(
                "the MQTT password of '{}' ({}) is missing: no file {} (`stackroom broker-config` makes it)",
                g.user,
                g.about,
                secrets.path(&g.user).display()
            )),
            Err(e) => out.push(e.to_string()),
        }
    }
    out
}

/// How long a refused client is not logged again.
pub const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(60);

/// Whether `topic` matches the subscription `filter` (`+` one level, `#` the rest).
pub fn topic_matches(filter: &str, topic: &str) -> bool {
    // Topics beginning with '$' are the broker's; wildcards at the first level do not match
    // them.
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Whether every topic that `filter` matches is matched by `pattern`.
pub fn covers(pattern: &str, filter: &str) -> bool {
    let mut p = pattern.split('/');
    let mut f = filter.split('/');
    loop {
        match (p.next(), f.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(l)) if l != "#" => {}
            (Some(a), Some(b)) if a == b && b != "#" && b != "+" => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// A well-formed subscription filter: `#` only last and alone in its level, `+` alone.
pub fn valid_filter(filter: &str) -> bool {
    if filter.is_empty() {
        return false;
    }
    let levels: Vec<&str> = filter.split('/').collect();
    levels.iter().enumerate().all(|(i, l)| match *l {
        "#" => i == levels.len() - 1,
        "+" => true,
        l => !l.contains('#') && !l.contains('+'),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls_carry_the_user_and_tls_but_never_a_password() {
        assert_eq!(
            BrokerUrl::parse("mqtts://stackroom@broker.site:8883").unwrap(),
            BrokerUrl {
                tls: true,
                user: Some("stackroom".into()),
                host: "broker.site".into(),
                port: 8883
            }
        );
        assert_eq!(
            BrokerUrl::parse("mqtt://127.0.0.1:1883/").unwrap(),
            BrokerUrl {
                tls: false,
                user: None,
                host: "127.0.0.1".into(),
                port: 1883
            }
        );
        assert!(BrokerUrl::parse("mqtt://stackroom:secret@host:1883").is_err());
        assert!(BrokerUrl::parse("mqtt://host").is_err());
        assert!(BrokerUrl::parse("mqtt://:1883").is_err());
    }

    #[test]
    fn topic_filters_match_as_mqtt_says() {
        assert!(topic_matches("a/+/c", "a/b/c"));
        assert!(!topic_matches("a/+/c", "a/b/d"));
        assert!(topic_matches("a/#", "a"));
        assert!(topic_matches("a/#", "a/b/c"));
        assert!(topic_matches("#", "a/b"));
        assert!(!topic_matches("#", "$SYS/broker/uptime"));
        assert!(!topic_matches("a/b", "a/b/c"));
        assert!(!topic_matches("a/b/c", "a/b"));
    }

    #[test]
    fn a_subscription_is_allowed_only_inside_what_the_user_may_read() {
        let g = Grant {
            user: "shelving-2".into(),
            about: String::new(),
            read: vec![
                "devices/shelving-2/command".into(),
                "zigbee2mqtt/#".into(),
                "x/+/y".into(),
            ],
            write: vec!["devices/shelving-2/state".into()],
        };
        assert!(g.may_subscribe("devices/shelving-2/command"));
        assert!(g.may_subscribe("zigbee2mqtt/+/availability"));
        assert!(g.may_subscribe("zigbee2mqtt/#"));
        assert!(g.may_subscribe("x/a/y"));
        assert!(g.may_subscribe("x/+/y"));
        assert!(!g.may_subscribe("#"));
        assert!(!g.may_subscribe("devices/+/command"));
        assert!(!g.may_subscribe("devices/shelving-2/#"));
        assert!(!g.may_subscribe("x/#"));
        assert!(!g.may_subscribe("zigbee2mqtt/a#"), "malformed");
        assert!(g.may_write("devices/shelving-2/state"));
        assert!(!g.may_write("devices/shelving-2/command"));
        assert!(!g.may_write("devices/shelving-1/state"));
    }

    #[test]
    fn secrets_are_made_once_and_readable_by_their_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let secrets = Secrets::new(dir.path().join("mqtt"));
        assert_eq!(secrets.read("reader-1").unwrap(), None);
        let made = secrets.ensure("reader-1").unwrap();
        assert_eq!(made.len(), 48);
        assert_eq!(
            secrets.ensure("reader-1").unwrap(),
            made,
            "kept, not made again"
        );
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&secrets.path("reader-1")), 0o600);
        assert_eq!(mode(&dir.path().join("mqtt")), 0o700);
    }
}

//! Debian's Mosquitto as a test peer, run with the configuration `stackroom broker-config`
//! writes for a room (password file, ACL file, user name as client id).
//!
//! A test that cannot start it fails, unless `STACKROOM_OPTIONAL` names `mosquitto`
//! (see `tools.rs`); `.ci/run` installs it.
#![allow(dead_code)]

use super::tools;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use stackroom::bus::{self, mosquitto::Listener};
use stackroom::config::{Mqtt, RoomConfig};

/// A running Mosquitto, killed when dropped.
pub struct Mosquitto(Child);

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Mosquitto {
    /// Stops Mosquitto the way a service manager does (SIGTERM): it writes its persistent
    /// sessions and their queued messages to disk first.
    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.0.id().to_string())
            .status();
        let _ = self.0.wait();
    }
}

/// Mosquitto did not start: fails, or says the test skipped where it is optional.
pub fn skip() {
    tools::missing("mosquitto", "apt-get install mosquitto");
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `config` pointed at a site broker on `port`, its data (and the bus's passwords) in `dir`.
pub fn on_site_broker(mut config: RoomConfig, dir: &Path, port: u16) -> RoomConfig {
    config.mqtt = Mqtt::External {
        url: format!("mqtt://127.0.0.1:{port}"),
    };
    config.data_dir = dir.to_path_buf();
    config
}

/// Starts Mosquitto on `port` with the broker config of `config`'s room (written into
/// `dir/broker`, passwords made in the room's secrets directory), keeping its sessions in
/// `dir`. None if Mosquitto is not installed.
pub fn start(dir: &Path, port: u16, config: &RoomConfig) -> Option<Mosquitto> {
    start_with(dir, port, config, None)
}

/// [`start`] with a TLS listener.
pub fn start_with(
    dir: &Path,
    port: u16,
    config: &RoomConfig,
    tls: Option<bus::mosquitto::ListenerTls>,
) -> Option<Mosquitto> {
    bus::mosquitto::installed()?;
    let grants = bus::grants(config, &config.bus.user);
    let passwords = bus::passwords(config, &grants, true).unwrap();
    let conf_dir = dir.join("broker");
    let listener = Listener {
        bind: Some("127.0.0.1".into()),
        port,
        tls,
    };
    bus::mosquitto::write(&conf_dir, &grants, &passwords, &listener).unwrap();
    run(dir, port, &conf_dir)
}

/// Runs Mosquitto on `port` with the files `stackroom broker-config` (or `stackroom site
/// broker-config`) wrote into `conf_dir`, keeping its sessions in `dir`. None if Mosquitto
/// is not installed.
pub fn run(dir: &Path, port: u16, conf_dir: &Path) -> Option<Mosquitto> {
    use std::os::unix::fs::PermissionsExt;
    let path = bus::mosquitto::installed()?;
    // Mosquitto started as root drops to the `mosquitto` user, which must read the files
    // and write its persistence file (on a site: `chown root:mosquitto`).
    for f in ["passwd", "acl", "mosquitto.conf"] {
        std::fs::set_permissions(conf_dir.join(f), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::set_permissions(conf_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let conf = conf_dir.join("mosquitto.conf");
    let mut text = std::fs::read_to_string(&conf).unwrap();
    if !text.contains("persistence true") {
        // Before any bridge: a bridge's block takes the lines after it as its own.
        let persistence = format!(
            "persistence true\npersistence_location {}/\n",
            dir.display()
        );
        text = match text.find("\nconnection ") {
            Some(at) => format!("{}\n{persistence}{}", &text[..at], &text[at..]),
            None => text + &persistence,
        };
        std::fs::write(&conf, text).unwrap();
    }
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("mosquitto.log"))
        .ok()?;
    let child = Command::new(path)
        .arg("-c")
        .arg(&conf)
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .ok()?;
    let broker = Mosquitto(child);
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some(broker);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// The broker as the simulated devices of `config` see it, each with its password.
pub fn for_devices(config: &RoomConfig, port: u16) -> hw_sim::mqtt_devices::Broker {
    let grants = bus::grants(config, &config.bus.user);
    hw_sim::mqtt_devices::Broker {
        host: "127.0.0.1".into(),
        port,
        passwords: bus::passwords(config, &grants, true).unwrap(),
    }
}

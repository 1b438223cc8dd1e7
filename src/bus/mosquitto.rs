//! `stackroom broker-config`: the site broker's configuration, derived from the room config.
//!
//! Writes `mosquitto.conf`, `passwd` (Mosquitto 2's `$7$` PBKDF2-HMAC-SHA512 hashes, the
//! format `mosquitto_passwd` writes) and `acl` (one `user` block per [`Grant`]). Passwords
//! come from the secrets directory; those of devices that have none yet are made there, to be
//! given to each device.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::{BusError, Grant};

/// Mosquitto's default PBKDF2 iteration count for `$7$` hashes.
pub const ITERATIONS: u32 = 101;

/// Where and how the site broker listens.
#[derive(Debug, Clone, Default)]
pub struct Listener {
    /// Address and port (`0.0.0.0:8883`); Mosquitto listens on all addresses if the host is
    /// empty.
    pub bind: Option<String>,
    pub port: u16,
    /// TLS: the broker's certificate and key and the CA (PEM files on the broker host).
    pub tls: Option<ListenerTls>,
}

#[derive(Debug, Clone)]
pub struct ListenerTls {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
    /// Clients must present a certificate signed by `ca`.
    pub require_client_cert: bool,
}

/// A password line as `mosquitto_passwd` writes it.
/// Debian's Mosquitto, where its package puts it; `None` when it is not installed.
pub fn installed() -> Option<PathBuf> {
    ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

pub fn passwd_line(user: &str, password: &str, salt: &[u8; 12]) -> String {
    let mut hash = [0u8; 64];
    pbkdf2::pbkdf2_hmac::<sha2::Sha512>(password.as_bytes(), salt, ITERATIONS, &mut hash);
    format!(
        "{user}:$7${ITERATIONS}${}${}",
        STANDARD.encode(salt),
        STANDARD.encode(hash)
    )
}

/// The ACL file: who may read and write which topics.
pub fn acl(grants: &[Grant]) -> String {
    let mut out =
        String::from("# Written by `stackroom broker-config`. One block per MQTT user.\n");
    for g in grants {
        let _ = writeln!(out, "\n# {}\nuser {}", g.about, g.user);
        for t in &g.read {
            let access = if g.write.contains(t) {
                "readwrite"
            } else {
                "read"
            };
            let _ = writeln!(out, "topic {access} {t}");
        }
        for t in g.write.iter().filter(|t| !g.read.contains(t)) {
            let _ = writeln!(out, "topic write {t}");
        }
    }
    out
}

/// The broker's main config file, pointing at `passwd` and `acl` in `dir`.
pub fn conf(dir: &Path, listener: &Listener) -> String {
    // The listener comes first: Mosquitto 2.0 opens a default listener on 1883 (all
    // addresses) for settings that precede every `listener` line.
    let mut out = String::from(
        "# Written by `stackroom broker-config` from the room config; written anew each run.\n\
         # Every client authenticates (passwd) and may use only its own topics (acl); the user\n\
         # name is the client id, so no client can take over another's session.\n\
         per_listener_settings false\n",
    );
    let _ = writeln!(
        out,
        "listener {}{}",
        listener.port,
        listener
            .bind
            .as_deref()
            .map(|b| format!(" {b}"))
            .unwrap_or_default()
    );
    if let Some(tls) = &listener.tls {
        let _ = writeln!(out, "certfile {}", tls.cert.display());
        let _ = writeln!(out, "keyfile {}", tls.key.display());
        let _ = writeln!(out, "cafile {}", tls.ca.display());
        let _ = writeln!(out, "tls_version tlsv1.2");
        if tls.require_client_cert {
            let _ = writeln!(out, "require_certificate true");
        }
    }
    out.push_str("allow_anonymous false\nuse_username_as_clientid true\n");
    let _ = writeln!(out, "password_file {}", dir.join("passwd").display());
    let _ = writeln!(out, "acl_file {}", dir.join("acl").display());
    out
}

/// A bridge of a site broker to a room's broker: the site broker logs in there as
/// [`super::SITE_BRIDGE`] and takes in what the room publishes under `topic`, with a
/// persistent session (the room's broker keeps QoS 1 messages while the link is down).
#[derive(Debug, Clone)]
pub struct Bridge {
    /// The connection's name (`room-stack-1`).
    pub name: String,
    /// The room broker's `host:port`.
    pub address: String,
    pub password: String,
    /// The room's topics (`stackroom/gd-power/stack-1/#`).
    pub topic: String,
    /// Where the site broker says whether the bridge is up (`1`) or down (`0`), retained.
    pub notification_topic: String,
    /// TLS to the room's broker: the CA that signed its certificate.
    pub ca_file: Option<PathBuf>,
}

/// The bridge's block of `mosquitto.conf`.
pub fn bridge_conf(b: &Bridge) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "\nconnection {}", b.name);
    let _ = writeln!(out, "address {}", b.address);
    // A plain MQTT 3.1.1 client to the room's broker (whatever broker the room runs).
    out.push_str("bridge_protocol_version mqttv311\ntry_private false\n");
    let _ = writeln!(out, "remote_clientid {}", super::SITE_BRIDGE);
    let _ = writeln!(out, "remote_username {}", super::SITE_BRIDGE);
    let _ = writeln!(out, "remote_password {}", b.password);
    let _ = writeln!(out, "local_clientid local.{}", b.name);
    out.push_str("cleansession false\nkeepalive_interval 5\nrestart_timeout 1 10\n");
    out.push_str("notifications true\nnotifications_local_only true\n");
    let _ = writeln!(out, "notification_topic {}", b.notification_topic);
    if let Some(ca) = &b.ca_file {
        let _ = writeln!(out, "bridge_cafile {}", ca.display());
    }
    let _ = writeln!(out, "topic {} in 1", b.topic);
    out
}

/// Writes the three files into `dir` (passwd and acl readable by owner and group only:
/// `chown root:mosquitto` them on the broker host).
pub fn write(
    dir: &Path,
    grants: &[Grant],
    passwords: &std::collections::BTreeMap<String, String>,
    listener: &Listener,
) -> Result<Vec<PathBuf>, BusError> {
    write_with_bridges(dir, grants, passwords, listener, &[])
}

/// [`write`] for a broker with bridges to other brokers; `mosquitto.conf` then holds
/// their passwords and is readable by owner and group only.
pub fn write_with_bridges(
    dir: &Path,
    grants: &[Grant],
    passwords: &std::collections::BTreeMap<String, String>,
    listener: &Listener,
    bridges: &[Bridge],
) -> Result<Vec<PathBuf>, BusError> {
    use rand::RngExt;
    let fail = |path: &Path| {
        let path = path.to_path_buf();
        move |source| BusError::Secret { path, source }
    };
    std::fs::create_dir_all(dir).map_err(fail(dir))?;
    let mut passwd = String::new();
    for g in grants {
        let Some(password) = passwords.get(&g.user) else {
            return Err(BusError::Missing {
                user: g.user.clone(),
                how: "no password".into(),
            });
        };
        let salt: [u8; 12] = rand::rng().random();
        passwd.push_str(&passwd_line(&g.user, password, &salt));
        passwd.push('\n');
    }
    let mut main = conf(dir, listener);
    for b in bridges {
        main.push_str(&bridge_conf(b));
    }
    let main_mode = if bridges.is_empty() { 0o644 } else { 0o640 };
    let files = [
        ("mosquitto.conf", main, main_mode),
        ("passwd", passwd, 0o640),
        ("acl", acl(grants), 0o640),
    ];
    let mut written = Vec::new();
    for (name, text, mode) in files {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let path = dir.join(name);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&path)
            .map_err(fail(&path))?;
        f.write_all(text.as_bytes()).map_err(fail(&path))?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_lines_are_mosquitto_s_pbkdf2_sha512() {
        // Written by Mosquitto 2.0.11's `mosquitto_passwd -b -c pw stackroom demo-secret`
        // (Debian 12); the same salt must give the same line.
        let theirs = "stackroom:$7$101$Hxgmrbxnvics/8tf$h+uQ5gHAOyPweDg+gP3boK8TLzESUcB7xLLP6e0gUrkP2W6+gIKMvuFk6oMAz3nWyWYf6Aq4LS8b83kvoengXg==";
        let salt: [u8; 12] = STANDARD
            .decode("Hxgmrbxnvics/8tf")
            .unwrap()
            .try_into()
            .unwrap();
        assert_eq!(passwd_line("stackroom", "demo-secret", &salt), theirs);
        assert_ne!(passwd_line("stackroom", "other", &salt), theirs);
    }

    #[test]
    fn the_acl_names_every_user_with_its_topics() {
        let grants = [Grant {
            user: "shelving-2".into(),
            about: "device shelving-2".into(),
            read: vec!["devices/shelving-2/command".into()],
            write: vec!["devices/shelving-2/state".into()],
        }];
        let text = acl(&grants);
        assert!(text.contains(
            "user shelving-2\ntopic read devices/shelving-2/command\ntopic write devices/shelving-2/state\n"
        ));
    }
}

//! `site.toml`: the site, its broker and its rooms, read and checked.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::config::bus::BrokerUrl;
use crate::name::Name;

/// A site config that cannot be used: the file, the key and what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {key}: {why}")]
pub struct SiteConfigError {
    pub file: PathBuf,
    pub key: String,
    pub why: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    site: RawSite,
    #[serde(default)]
    api: RawApi,
    #[serde(default)]
    storage: RawStorage,
    broker: RawBroker,
    #[serde(default)]
    rooms: Vec<RawRoom>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSite {
    id: String,
    #[serde(default)]
    name: Name,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawApi {
    listen: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawStorage {
    data_dir: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBroker {
    url: String,
    ca_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoom {
    id: String,
    #[serde(default)]
    name: Name,
    api: String,
    token_file: PathBuf,
    broker: String,
    bridge_password_file: PathBuf,
    bridge_ca_file: Option<PathBuf>,
}

/// The site as configured.
#[derive(Debug, Clone)]
pub struct SiteConfig {
    pub file: PathBuf,
    pub site_id: String,
    pub site_name: Name,
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// The site broker, as `stackroom site` connects to it (user `stackroom-site`, its
    /// password in `{data_dir}/mqtt-secrets/stackroom-site`).
    pub broker: BrokerUrl,
    pub broker_ca: Option<PathBuf>,
    pub rooms: Vec<SiteRoom>,
}

/// One room of the site.
#[derive(Debug, Clone)]
pub struct SiteRoom {
    pub id: String,
    pub name: Name,
    /// The room controller's API (`http://10.0.1.5:8080`).
    pub api: String,
    /// The file holding the room's token for the site (an operator's: read the feed,
    /// open aisles for the site's staff).
    pub token_file: PathBuf,
    /// The room's broker as the site broker's bridge reaches it (`mqtt://host:1883`).
    pub broker: BrokerUrl,
    /// The file holding the room's `site-bridge` password (from the room's secrets).
    pub bridge_password_file: PathBuf,
    pub bridge_ca_file: Option<PathBuf>,
}

impl SiteRoom {
    /// The room's token for the site, read from its file.
    pub fn token(&self) -> Result<String, SiteConfigError> {
        read_secret(&self.token_file, &format!("rooms.{}.token_file", self.id))
    }

    pub fn bridge_password(&self) -> Result<String, SiteConfigError> {
        read_secret(
            &self.bridge_password_file,
            &format!("rooms.{}.bridge_password_file", self.id),
        )
    }
}

fn read_secret(path: &Path, key: &str) -> Result<String, SiteConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| SiteConfigError {
        file: path.to_path_buf(),
        key: key.into(),
        why: format!("cannot be read: {e}"),
    })?;
    let secret = text.trim().to_string();
    if secret.is_empty() {
        return Err(SiteConfigError {
            file: path.to_path_buf(),
            key: key.into(),
            why: "is empty".into(),
        });
    }
    Ok(secret)
}

/// The site service's user on the site broker.
pub const SITE_USER: &str = "stackroom-site";

impl SiteConfig {
    pub fn load(file: &Path) -> Result<SiteConfig, SiteConfigError> {
        let fail = |key: &str, why: String| SiteConfigError {
            file: file.to_path_buf(),
            key: key.to_string(),
            why,
        };
        let text = std::fs::read_to_string(file).map_err(|e| fail("(file)", e.to_string()))?;
        let raw: Raw = toml::from_str(&text).map_err(|e| fail("(syntax)", e.message().into()))?;
        let base = file.parent().unwrap_or(Path::new("."));
        let relative = |p: &Path| {
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            }
        };
        let id_ok = |id: &str| {
            !id.is_empty()
                && id.len() <= 64
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        };
        if !id_ok(&raw.site.id) {
            return Err(fail(
                "site.id",
                format!(
                    "'{}' must be letters, digits, '-' or '_' (it is part of MQTT topics)",
                    raw.site.id
                ),
            ));
        }
        let listen = raw.api.listen.as_deref().unwrap_or("127.0.0.1:8090");
        let listen = listen
            .parse()
            .map_err(|_| fail("api.listen", format!("'{listen}' is not an address:port")))?;
        let broker = BrokerUrl::parse(&raw.broker.url).map_err(|_| {
            fail(
                "broker.url",
                format!(
                    "'{}' is not a broker URL like mqtt://host:1883",
                    raw.broker.url
                ),
            )
        })?;
        if broker.tls != raw.broker.ca_file.is_some() {
            return Err(fail(
                "broker.ca_file",
                "is needed for an mqtts:// broker, and only for one".into(),
            ));
        }
        if raw.rooms.is_empty() {
            return Err(fail("rooms", "a site has at least one [[rooms]]".into()));
        }
        let mut rooms: Vec<SiteRoom> = Vec::new();
        for (i, r) in raw.rooms.into_iter().enumerate() {
            let key = |k: &str| format!("rooms[{i}].{k}");
            if !id_ok(&r.id) {
                return Err(fail(
                    &key("id"),
                    format!("'{}' must be letters, digits, '-' or '_'", r.id),
                ));
            }
            if rooms.iter().any(|o| o.id == r.id) {
                return Err(fail(&key("id"), format!("room '{}' is listed twice", r.id)));
            }
            let api = r.api.trim_end_matches('/').to_string();
            if !(api.starts_with("http://") || api.starts_with("https://")) {
                return Err(fail(
                    &key("api"),
                    format!("'{api}' is not the controller's address (http://host:port)"),
                ));
            }
            let room_broker = BrokerUrl::parse(&r.broker).map_err(|_| {
                fail(
                    &key("broker"),
                    format!("'{}' is not a broker URL like mqtt://host:1883", r.broker),
                )
            })?;
            if room_broker.tls != r.bridge_ca_file.is_some() {
                return Err(fail(
                    &key("bridge_ca_file"),
                    "is needed for an mqtts:// room broker, and only for one".into(),
                ));
            }
            rooms.push(SiteRoom {
                id: r.id,
                name: r.name,
                api,
                token_file: relative(&r.token_file),
                broker: room_broker,
                bridge_password_file: relative(&r.bridge_password_file),
                bridge_ca_file: r.bridge_ca_file.as_deref().map(relative),
            });
        }
        Ok(SiteConfig {
            file: file.to_path_buf(),
            site_id: raw.site.id,
            site_name: raw.site.name,
            listen,
            data_dir: raw
                .storage
                .data_dir
                .unwrap_or_else(|| PathBuf::from("stackroom-site-data")),
            broker,
            broker_ca: raw.broker.ca_file.as_deref().map(relative),
            rooms,
        })
    }

    pub fn room(&self, id: &str) -> Option<&SiteRoom> {
        self.rooms.iter().find(|r| r.id == id)
    }

    /// The site service's MQTT password file.
    pub fn secret_path(&self) -> PathBuf {
        self.data_dir.join("mqtt-secrets").join(SITE_USER)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<SiteConfig, SiteConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("site.toml");
        std::fs::write(&file, text).unwrap();
        SiteConfig::load(&file)
    }

    const GOOD: &str = r#"
[site]
id = "gd-power"
[broker]
url = "mqtt://127.0.0.1:1883"
[[rooms]]
id = "stack-1"
api = "http://127.0.0.1:8080/"
token_file = "secrets/stack-1.token"
broker = "mqtt://10.0.1.5:1883"
bridge_password_file = "secrets/stack-1.bridge"
"#;

    #[test]
    fn a_site_config_is_read_with_paths_beside_it() {
        let c = load(GOOD).unwrap();
        assert_eq!(c.site_id, "gd-power");
        assert_eq!(c.rooms[0].api, "http://127.0.0.1:8080");
        assert!(c.rooms[0].token_file.ends_with("secrets/stack-1.token"));
        assert!(c.rooms[0].token_file.is_absolute());
        assert_eq!(c.listen.port(), 8090);
    }

    #[test]
    fn mistakes_name_their_key() {
        let twice = format!(
            "{GOOD}[[rooms]]\nid = \"stack-1\"\napi = \"http://x\"\ntoken_file = \"t\"\nbroker = \"mqtt://x\"\nbridge_password_file = \"b\"\n"
        );
        let e = load(&twice).unwrap_err();
        assert_eq!(e.key, "rooms[1].id", "{e}");
        let e = load(&GOOD.replace("gd-power", "gd power")).unwrap_err();
        assert_eq!(e.key, "site.id");
        let e = load(&GOOD.replace("http://127.0.0.1:8080/", "127.0.0.1:8080")).unwrap_err();
        assert_eq!(e.key, "rooms[0].api");
        let e = load(&GOOD.replace("mqtt://127.0.0.1:1883", "mqtts://127.0.0.1:8883")).unwrap_err();
        assert_eq!(e.key, "broker.ca_file");
        let e = load(&GOOD.replace("[site]", "[site]\nwho = 1")).unwrap_err();
        assert_eq!(e.key, "(syntax)");
    }
}

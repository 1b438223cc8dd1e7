//! `stackroom site`: one site of many rooms, logically one.
//!
//! Each room's controller stays the system of record of its boxes and keeps working
//! alone. The site broker (Mosquitto) bridges each room's broker in (`broker_files`), the
//! site service follows every room's change feed through it into its own SQLite replica
//! (`follow`, `replica`), and serves search and locate across the rooms with the room in
//! each answer; retrieve is forwarded to the room's controller (`api`). The replica is
//! read-only: nothing here writes a box.

pub mod api;
pub mod config;
#[cfg(feature = "demo")]
pub mod demo;
pub mod follow;
pub mod replica;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use config::{SITE_USER, SiteConfig, SiteRoom};
pub use replica::Replica;

use crate::bus::mosquitto::{Bridge, Listener};
use crate::bus::{BusError, Grant};

/// Why the site service cannot start.
#[derive(Debug, thiserror::Error)]
pub enum SiteError {
    #[error(transparent)]
    Config(#[from] config::SiteConfigError),
    #[error(transparent)]
    Replica(#[from] replica::ReplicaError),
    #[error("{path}: {why} (`stackroom site broker-config` makes it)")]
    Secret { path: PathBuf, why: String },
    #[error(transparent)]
    Bus(#[from] BusError),
}

/// The site service's parts, shared by the API's handlers.
#[derive(Clone)]
pub struct Site {
    pub config: Arc<SiteConfig>,
    pub replica: Replica,
    links: follow::Links,
    http: reqwest::Client,
}

/// The database file of the site service in its data directory.
pub const DB_FILE: &str = "stackroom-site.db";

impl Site {
    /// Opens the replica; starts nothing.
    pub fn open(config: SiteConfig) -> Result<Site, SiteError> {
        let replica = Replica::open(&config.data_dir.join(DB_FILE))?;
        let http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(3))
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|e| SiteError::Secret {
                path: config.file.clone(),
                why: format!("no HTTP client: {e}"),
            })?;
        Ok(Site {
            config: Arc::new(config),
            replica,
            links: Default::default(),
            http,
        })
    }

    /// Starts following the rooms; they are followed until the returned value is dropped.
    pub async fn follow(&self) -> Result<follow::Follower, SiteError> {
        self.replica
            .ensure_rooms(self.config.rooms.iter().map(|r| r.id.clone()).collect())
            .await?;
        follow::start(
            &self.config,
            self.replica.clone(),
            self.links.clone(),
            self.http.clone(),
        )
    }

    /// Each room's link as last heard.
    pub fn links(&self) -> HashMap<String, follow::RoomLink> {
        self.links.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn router(&self) -> axum::Router {
        api::router(self.clone())
    }
}

/// The site broker's users: the site service reads every room's topics; nothing else logs
/// in (the bridges are the broker's own connections).
pub fn grants(config: &SiteConfig) -> Vec<Grant> {
    vec![Grant {
        user: SITE_USER.to_string(),
        about: "the site service (reads every room's feed and status)".into(),
        read: vec![format!("stackroom/{}/#", config.site_id)],
        write: vec![],
    }]
}

/// Writes the site broker's `mosquitto.conf` (with a bridge to each room's broker),
/// `passwd` and `acl` into `out`; makes the site service's password if it has none.
/// Each bridge logs in to its room's broker as `site-bridge` with the password in the
/// room's `bridge_password_file` (the room's `mqtt-secrets/site-bridge`).
pub fn broker_files(
    config: &SiteConfig,
    out: &Path,
    listener: &Listener,
) -> Result<Vec<PathBuf>, SiteError> {
    let secrets = crate::bus::Secrets::new(config.data_dir.join("mqtt-secrets"));
    let mut passwords = std::collections::BTreeMap::new();
    passwords.insert(SITE_USER.to_string(), secrets.ensure(SITE_USER)?);
    let mut bridges = Vec::new();
    for room in &config.rooms {
        bridges.push(Bridge {
            name: format!("room-{}", room.id),
            address: format!("{}:{}", room.broker.host, room.broker.port),
            password: room.bridge_password()?,
            topic: format!("stackroom/{}/{}/#", config.site_id, room.id),
            notification_topic: format!("stackroom/{}/{}/bridge", config.site_id, room.id),
            ca_file: room.bridge_ca_file.clone(),
        });
    }
    Ok(crate::bus::mosquitto::write_with_bridges(
        out,
        &grants(config),
        &passwords,
        listener,
        &bridges,
    )?)
}

//! `stackroom demo --rooms N`: a site of N demo rooms on one machine.
//!
//! Each room is the demo room as `stackroom demo --room stack-K` runs it (its own boxes,
//! database, embedded broker, simulator and API on a free port); the site broker is Debian's
//! Mosquitto, configured by [`super::broker_files`] with a bridge into each room's broker;
//! the site service follows them and serves the site API.

use std::net::SocketAddr;
use std::path::Path;

use super::{Site, SiteConfig, SiteRoom};
use crate::config::RoomConfig;
use crate::config::bus::BrokerUrl;
use crate::server::Controller;
use crate::sim::SimSettings;
use hw_sim::Simulator;

/// Why the site demo cannot start.
#[derive(Debug, thiserror::Error)]
pub enum SiteDemoError {
    #[error(
        "the site demo runs Debian's Mosquitto as the site broker and it is not installed \
         (apt-get install mosquitto)"
    )]
    NoMosquitto,
    #[error("room {room}: {why}")]
    Room { room: String, why: String },
    #[error("the site broker: {0}")]
    Broker(String),
    #[error(transparent)]
    Site(#[from] super::SiteError),
}

/// One running room of the demo site.
pub struct DemoRoom {
    pub id: String,
    pub api: String,
    pub sim: String,
    pub mqtt: String,
    /// The room's admin token (for its own staff page).
    pub token: String,
    pub controller: Controller,
    served: tokio::task::JoinHandle<()>,
    stop: tokio::sync::watch::Sender<bool>,
    publisher: crate::mqtt::Publisher,
    _simulator: Simulator,
    _broker: crate::sim::RoomBroker,
}

/// The running site demo: its rooms, the site broker and the site.
pub struct SiteDemo {
    pub rooms: Vec<DemoRoom>,
    pub site: Site,
    pub site_broker: String,
    /// The site API's admin token.
    pub token: String,
    _mosquitto: tokio::process::Child,
    _follower: super::follow::Follower,
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Starts `rooms` demo rooms under `data/rooms/`, the site broker and the site (its data in
/// `data/site`). The site API is served by the caller (`Site::router`).
pub async fn start(rooms: u32, data: &Path, time_scale: f64) -> Result<SiteDemo, SiteDemoError> {
    let mosquitto = crate::bus::mosquitto::installed().ok_or(SiteDemoError::NoMosquitto)?;
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let site_dir = data.join("site");
    std::fs::create_dir_all(&site_dir).map_err(|e| SiteDemoError::Broker(e.to_string()))?;
    let mut running = Vec::new();
    let mut site_rooms = Vec::new();
    for k in 1..=rooms {
        let (room, site_room) = start_room(k, data, &site_dir, time_scale).await?;
        running.push(room);
        site_rooms.push(site_room);
    }
    let first = &running[0].controller.config;
    let broker_port = free_port().map_err(|e| SiteDemoError::Broker(e.to_string()))?;
    let config = SiteConfig {
        file: site_dir.join("site.toml"),
        site_id: first.site_id.clone(),
        site_name: first.site_name.clone(),
        listen: loopback,
        data_dir: site_dir.clone(),
        broker: BrokerUrl {
            tls: false,
            user: None,
            host: "127.0.0.1".into(),
            port: broker_port,
        },
        broker_ca: None,
        rooms: site_rooms,
    };
    let conf_dir = site_dir.join("broker");
    let listener = crate::bus::mosquitto::Listener {
        bind: Some("127.0.0.1".into()),
        port: broker_port,
        tls: None,
    };
    super::broker_files(&config, &conf_dir, &listener)?;
    // Mosquitto started as root reads its files as the user `mosquitto`: the demo's files
    // (loopback only) are made readable for it.
    for f in ["passwd", "acl", "mosquitto.conf"] {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(conf_dir.join(f), std::fs::Permissions::from_mode(0o644));
    }
    let log = std::fs::File::create(site_dir.join("mosquitto.log"))
        .map_err(|e| SiteDemoError::Broker(e.to_string()))?;
    let child = tokio::process::Command::new(mosquitto)
        .arg("-c")
        .arg(conf_dir.join("mosquitto.conf"))
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| SiteDemoError::Broker(e.to_string()))?;
    let mut listening = false;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", broker_port))
            .await
            .is_ok()
        {
            listening = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    if !listening {
        return Err(SiteDemoError::Broker(format!(
            "Mosquitto did not listen on port {broker_port}: see {}",
            site_dir.join("mosquitto.log").display()
        )));
    }
    let site = Site::open(config)?;
    let token = site
        .replica
        .create_token_replacing("demo", crate::access::Role::Admin)
        .await
        .map_err(super::SiteError::from)?;
    let follower = site.follow().await?;
    Ok(SiteDemo {
        rooms: running,
        site,
        site_broker: format!("mqtt://127.0.0.1:{broker_port}"),
        token,
        _mosquitto: child,
        _follower: follower,
    })
}

/// Starts demo room `stack-k` in `data/rooms/`, with the site's token for it in `site_dir`:
/// the room, and how the site reaches it.
async fn start_room(
    k: u32,
    data: &Path,
    site_dir: &Path,
    time_scale: f64,
) -> Result<(DemoRoom, SiteRoom), SiteDemoError> {
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let id = format!("stack-{k}");
    let fail = |why: String| SiteDemoError::Room {
        room: id.clone(),
        why,
    };
    let config = RoomConfig::load(&crate::demo::config_path()).map_err(|e| fail(e.to_string()))?;
    let config = crate::demo::as_room(config, &id);
    let room_data = data.join("rooms").join(&id);
    let mut controller = Controller::start(config, Some(&room_data))
        .await
        .map_err(|e| fail(e.to_string()))?;
    crate::demo::seed(&controller.locations)
        .await
        .map_err(|e| fail(e.to_string()))?;
    let token = crate::demo::admin_token(&controller.access)
        .await
        .map_err(|e| fail(e.to_string()))?;
    let settings = SimSettings {
        time_scale,
        ..SimSettings::default()
    };
    let (simulator, broker) = crate::sim::simulate(&mut controller, settings, loopback, loopback)
        .await
        .map_err(|e| fail(e.to_string()))?;
    let config = controller.config.clone();
    let publisher = controller.publish(broker.endpoint());
    // The site's token in this room: it reads the feed and opens aisles for the site.
    let _ = controller.access.revoke("site", "demo").await;
    let (site_token, _) = controller
        .access
        .create("site", crate::access::Role::Operator, "demo", None)
        .await
        .map_err(|e| fail(e.to_string()))?;
    let token_file = site_dir.join(format!("{id}.token"));
    crate::bus::write_private(&token_file, site_token.as_bytes())
        .map_err(|e| fail(e.to_string()))?;
    let listener = Controller::listen(loopback)
        .await
        .map_err(|e| fail(e.to_string()))?;
    let api = format!(
        "http://{}",
        listener.local_addr().map_err(|e| fail(e.to_string()))?
    );
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let serving = controller.clone();
    let served = tokio::spawn(async move {
        let shutdown = async move {
            let _ = stopped.wait_for(|s| *s).await;
        };
        if let Err(e) = serving.serve(listener, shutdown).await {
            tracing::error!(error = %e, "a demo room's API failed");
        }
    });
    let mqtt_url = broker.url();
    let room_broker = BrokerUrl::parse(&mqtt_url).map_err(|e| fail(e.to_string()))?;
    let site_room = SiteRoom {
        id: id.clone(),
        name: config.room_name.clone(),
        api: api.clone(),
        token_file,
        broker: room_broker,
        bridge_password_file: crate::bus::Secrets::of(&config.bus, &config.data_dir)
            .path(crate::bus::SITE_BRIDGE),
        bridge_ca_file: None,
    };
    let room = DemoRoom {
        id,
        api,
        sim: format!("http://{}", simulator.control),
        mqtt: mqtt_url,
        token,
        controller,
        served,
        stop,
        publisher,
        _simulator: simulator,
        _broker: broker,
    };
    Ok((room, site_room))
}

impl SiteDemo {
    /// Stops every room as `stackroom serve` does at a shutdown, then the site broker.
    pub async fn shut_down(self) {
        for room in self.rooms {
            let _ = room.stop.send(true);
            let _ = room.served.await;
            room.controller.shut_down().await;
            room.publisher.close().await;
        }
    }
}

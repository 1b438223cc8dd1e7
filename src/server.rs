//! Starting a controller: config → store → services → HTTP.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;

use crate::access::Access;
use crate::api::{self, AppState, Failures};
use crate::audit::Audit;
use crate::config::RoomConfig;
use crate::environment::Environment;
use crate::loans::Loans;
use crate::location::{LocationError, LocationService};
use crate::rfid::{Rfid, RfidStartError};
use crate::shelving::{Shelving, Wiring};
use crate::store::Store;

/// The database file inside the data directory.
pub const DB_FILE: &str = "stackroom.db";

/// Why a controller did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Location(#[from] LocationError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Devices(#[from] crate::shelving::StartError),
    #[error(transparent)]
    Rfid(#[from] RfidStartError),
}

/// A running controller's parts.
#[derive(Clone)]
pub struct Controller {
    pub config: Arc<RoomConfig>,
    pub locations: LocationService,
    pub shelving: Shelving,
    pub rfid: Option<Rfid>,
    pub access: Access,
    pub audit: Audit,
    pub environment: Environment,
    pub loans: Loans,
    /// The scheduled backups (`[backup]`), if any.
    pub backups: Option<crate::backup::Backups>,
    store: Store,
    failures: Arc<Failures>,
    /// What the controller starts beside the services: the gates, the overdue watch.
    tasks: crate::link::Tasks,
}

impl Controller {
    /// Opens the room's database in `data_dir` (the config's `storage.data_dir` unless
    /// given) and starts the services.
    pub async fn start(
        config: RoomConfig,
        data_dir: Option<&Path>,
    ) -> Result<Controller, StartError> {
        let dir: PathBuf = data_dir.map_or_else(|| config.data_dir.clone(), Path::to_path_buf);
        let store = Store::open(&dir.join(DB_FILE)).map_err(LocationError::from)?;
        // What lives in the data directory (the bus's secrets among it) follows it.
        let mut config = config;
        config.data_dir = dir;
        let config = Arc::new(config);
        let locations = LocationService::open(config.clone(), store.clone()).await?;
        let audit = Audit::new(store.clone());
        let environment = Environment::empty(&config, store.clone());
        let loans = Loans::new(store.clone(), config.loans.clone());
        let backups = config
            .backup
            .clone()
            .map(|b| crate::backup::Backups::new(b, &config.data_dir));
        Ok(Controller {
            config,
            locations,
            shelving: Shelving::empty(),
            rfid: None,
            access: Access::new(store.clone(), audit.clone()),
            audit,
            environment,
            loans,
            backups,
            store,
            failures: Arc::default(),
            tasks: Default::default(),
        })
    }

    /// Starts publishing the room's events and status on the broker at `endpoint`.
    pub fn publish(&self, endpoint: &crate::bus::Endpoint) -> crate::mqtt::Publisher {
        crate::mqtt::publish_events(
            endpoint,
            &self.config.site_id,
            &self.config.room_id,
            &self.shelving,
            &self.environment,
            &self.loans,
            &self.locations,
        )
    }

    /// Starts the room's devices, reached as `wiring` says where it overrides the config:
    /// the shelving's drivers and range controllers, the readers, the live pipeline, the
    /// sweeps and their schedule.
    pub async fn start_devices(&mut self, wiring: &Wiring) -> Result<(), StartError> {
        self.shelving = Shelving::start(&self.config, wiring)?;
        self.shelving.audit_operations(&self.audit);
        self.rfid = Some(Rfid::start(&self.config, &self.locations, wiring).await?);
        self.loans
            .watch_overdue(std::time::Duration::from_secs(10), &self.tasks);
        let gate_readers = self
            .rfid
            .as_ref()
            .map(|r| r.readers().clone())
            .unwrap_or_default();
        self.environment = Environment::start(
            &self.config,
            self.store.clone(),
            wiring,
            self.shelving.clone(),
            self.audit.clone(),
        )?;
        crate::gate::start(
            &self.config,
            &gate_readers,
            self.store.clone(),
            self.environment.clone(),
            self.audit.clone(),
            &self.tasks,
        );
        Ok(())
    }

    pub fn router(&self) -> Router {
        api::router(AppState::new(api::Services {
            locations: self.locations.clone(),
            shelving: self.shelving.clone(),
            rfid: self.rfid.clone(),
            access: self.access.clone(),
            audit: self.audit.clone(),
            environment: self.environment.clone(),
            loans: self.loans.clone(),
            backups: self.backups.clone(),
            failures: self.failures.clone(),
            lookups: crate::lookups::Lookups::new(self.store.clone()),
            contents: crate::contents::BoxContents::new(self.locations.clone()),
            retention: crate::retention::Retention::new(self.locations.clone()),
            holdings: crate::holdings::Holdings::new(self.locations.clone()),
            intake: crate::intake::Intake::new(self.locations.clone()),
        }))
    }

    /// Stops what the controller runs, in the order that loses nothing: no new motion and
    /// every range not known to be at rest stopped (all at once, waiting up to five
    /// seconds in all for the stops to be confirmed), the stops in the audit trail; then
    /// the environment's engine and drivers, the gates and the overdue watch, the readers,
    /// and last the shelving's controllers and drivers end (their ports and broker
    /// sessions closed); then every queued write is committed. Call it after
    /// [`Controller::serve`] has returned.
    pub async fn shut_down(&self) {
        let since = chrono::Utc::now();
        let stops = self.shelving.stop_all(Duration::from_secs(5)).await;
        for (range, ended) in &stops {
            match ended {
                Ok(()) => tracing::info!(range, "stopped for the shutdown"),
                Err(why) => tracing::error!(range, %why, "not confirmed at rest at the shutdown"),
            }
        }
        // The stops reach the trail through the shelving's audit task: wait for them.
        let filter = crate::audit::Filter {
            since: Some(since),
            actor: Some(crate::shelving::SHUTDOWN_ACTOR.into()),
            ..Default::default()
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        while !stops.is_empty() && tokio::time::Instant::now() < deadline {
            match self.audit.query(filter.clone()).await {
                Ok(rows) if rows.len() >= stops.len() => break,
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
        self.environment.shut_down().await;
        self.tasks.shut_down().await;
        if let Some(rfid) = &self.rfid {
            rfid.shut_down().await;
        }
        self.shelving.shut_down().await;
        if let Err(e) = self.store.flush().await {
            tracing::error!(error = %e, "the last writes may be lost");
        }
    }

    /// Binds the API listener (port 0 picks a free port).
    pub async fn listen(addr: SocketAddr) -> Result<TcpListener, StartError> {
        TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Listen { addr, source })
    }

    /// Serves the API on `listener` until `shutdown` resolves.
    pub async fn serve(
        &self,
        listener: TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let tls = match &self.config.api_tls {
            Some((cert, key)) => {
                Some(crate::http::Tls::from_pem_files(cert, key).map_err(std::io::Error::other)?)
            }
            None => None,
        };
        let register = crate::lookups::Lookups::new(self.store.clone());
        let rolling = tokio::spawn(register.keep_bounded(self.config.lookups_keep));
        let scheduled = crate::link::Tasks::default();
        if let Some(backups) = &self.backups {
            backups.start(&self.store, &self.environment, &self.audit, &scheduled);
        }
        let (failures, audit) = (self.failures.clone(), self.audit.clone());
        let denied = tokio::spawn(async move {
            failures
                .denied
                .write(&audit, std::time::Duration::from_secs(60))
                .await
        });
        let served = crate::http::serve(
            listener,
            self.router(),
            crate::http::Limits::default(),
            tls,
            shutdown,
        )
        .await;
        denied.abort();
        rolling.abort();
        scheduled.shut_down().await;
        // What was counted since the last minute's row.
        for (source, line, n) in self.failures.denied.take() {
            self.audit
                .record(
                    crate::audit::NewEntry::new("anonymous", "denied", &line, format!("401 x{n}"))
                        .detail(format!("{n} from {source} before the server stopped")),
                )
                .await;
        }
        served
    }
}

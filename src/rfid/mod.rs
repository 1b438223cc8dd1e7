//! RFID: tag reads, where each tag is, and inventory sweeps.
//!
//! - [`reader`]: the reader drivers (R2000, Mercury on serial lines, Impinj-style on MQTT),
//!   chosen by device profile: "read port P for D" → tag reads;
//! - [`pipeline`]: duplicate suppression, evidence per (tag, shelf) and the location
//!   decision (sans-IO), with the "last read wins" and "strongest read" baselines it is
//!   measured against (`cargo bench --bench rfid`);
//! - [`live`]: the bounded live pipeline every read flows through: live location with
//!   hysteresis, counters per reader and antenna;
//! - [`reconcile`]: a stocktake's findings (present, misplaced, missing, not read, unknown);
//! - [`sweep`]: inventory sweeps (readers in parallel, progress, report, sync) kept in
//!   SQLite; [`schedule`]: sweeps started by cron expressions from the config.

pub mod live;
pub mod pipeline;
pub mod reader;
pub mod reconcile;
pub mod schedule;
pub mod sweep;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::{RoomConfig, Transport};
use crate::location::LocationService;
use crate::shelving::{StartError, Wiring};
use reader::{ReaderHandle, ReaderWire};
use sweep::{SweepError, Sweeps};

/// Why the readers, the live pipeline or the sweeps could not be started.
#[derive(Debug, thiserror::Error)]
pub enum RfidStartError {
    #[error(transparent)]
    Device(#[from] StartError),
    #[error("the sweeps could not be started")]
    Sweeps(#[from] SweepError),
}

/// The RFID side of a running controller.
#[derive(Clone)]
pub struct Rfid {
    pub live: live::Live,
    pub sweeps: Sweeps,
    /// The reader drivers, the live pipeline and the schedule.
    tasks: crate::link::Tasks,
}

impl Rfid {
    /// Starts a driver for each reader of the room (reached as `wiring` says where it
    /// overrides the config), the live pipeline, the sweeps and their schedule.
    pub async fn start(
        config: &Arc<RoomConfig>,
        locations: &LocationService,
        wiring: &Wiring,
    ) -> Result<Rfid, RfidStartError> {
        let tasks = crate::link::Tasks::default();
        let live = live::Live::start(config, &tasks);
        let mut readers = BTreeMap::new();
        for device in config
            .devices
            .iter()
            .filter(|d| d.spec.device.kind == crate::config::DeviceKind::Reader)
        {
            let p = &device.spec;
            let path = |path: &String| {
                wiring
                    .serial_paths
                    .get(&device.id)
                    .cloned()
                    .unwrap_or_else(|| path.clone())
            };
            let wire = match (&device.transport, &p.r2000, &p.mercury, &p.impinj_iot) {
                (Transport::Serial { path: p_, baud, .. }, Some(settings), _, _) => {
                    ReaderWire::R2000 {
                        path: path(p_),
                        baud: *baud,
                        settings: settings.clone(),
                    }
                }
                (Transport::Serial { path: p_, baud, .. }, _, Some(settings), _) => {
                    ReaderWire::Mercury {
                        path: path(p_),
                        baud: *baud,
                        settings: settings.clone(),
                    }
                }
                (Transport::Mqtt { prefix }, _, _, Some(settings)) => ReaderWire::Impinj {
                    broker: wiring.broker(config)?,
                    prefix: prefix.clone(),
                    settings: settings.clone(),
                },
                (transport, _, _, _) => {
                    return Err(StartError::Unsupported {
                        device: device.id.clone(),
                        needs: format!(
                            "no reader driver for protocol {} over {transport}",
                            p.device.protocol
                        ),
                    }
                    .into());
                }
            };
            readers.insert(
                device.id.clone(),
                reader::start(device.id.clone(), wire, Some(live.clone()), &tasks),
            );
        }
        let sweeps = Sweeps::new(
            config.clone(),
            locations.clone(),
            readers,
            Some(live.clone()),
        )
        .await?;
        schedule::start(config, &sweeps, &tasks);
        Ok(Rfid {
            live,
            sweeps,
            tasks,
        })
    }

    /// Ends the reader drivers, the live pipeline and the schedule (at shutdown).
    pub async fn shut_down(&self) {
        self.tasks.shut_down().await;
    }

    /// The reader drivers.
    pub fn readers(&self) -> &BTreeMap<String, ReaderHandle> {
        self.sweeps.readers()
    }
}

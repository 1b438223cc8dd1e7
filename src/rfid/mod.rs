//! RFID: tag reads and the decision of where each tag is.
//!
//! - [`pipeline`]: duplicate suppression, evidence per (tag, shelf) and the location
//!   decision (sans-IO), with the "last read wins" and "strongest read" baselines it is
//!   measured against (`cargo bench --bench rfid`).
//!
//! - [`reader`]: the reader drivers (R2000, Mercury, Impinj-style MQTT): "read port P for
//!   D" → tag reads;
//! - [`reconcile`]: a stocktake's findings (present, misplaced, missing, not read, unknown).
//!
//! Inventory sweeps and their schedule build on these.

pub mod pipeline;
pub mod reader;
pub mod reconcile;

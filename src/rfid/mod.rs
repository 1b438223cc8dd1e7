//! RFID: tag reads and the decision of where each tag is.
//!
//! - [`pipeline`]: duplicate suppression, evidence per (tag, shelf) and the location
//!   decision (sans-IO), with the "last read wins" and "strongest read" baselines it is
//!   measured against (`cargo bench --bench rfid`).
//!
//! The reader drivers, inventory sweeps and their schedule build on it.

pub mod pipeline;
pub mod reader;

//! hw-sim: the hardware simulator of stackroom.
//!
//! It stands in for the devices of a stack room, so that CI and the demo run the whole
//! system without hardware. Its parts:
//! - [`shelving`]: a range of motorized carriages and its controller, with the interlocks a
//!   real controller enforces (sans-IO: commands in, [`shelving::RangeSim::tick`] advances
//!   simulated time, state out).
//!
//! - [`world`]: the simulated truth, which tag is on which shelf;
//! - [`rf`]: the seeded radio model, what an antenna hears in one inventory round.
//!
//! The simulator knows nothing of stackroom's types: the room is handed to it as plain data,
//! so the controller (which runs it in-process for its demo) can depend on it.

pub mod rf;
pub mod shelving;
pub mod world;

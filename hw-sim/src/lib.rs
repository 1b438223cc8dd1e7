//! hw-sim: the hardware simulator of stackroom.
//!
//! It stands in for the devices of a stack room on the same wire protocols as the real
//! hardware, so that CI, the demo and every developer run the whole system without it:
//! - [`shelving`]: a range of motorized carriages and its controller, with the interlocks a
//!   real controller enforces (sans-IO: commands in, [`shelving::RangeSim::tick`] advances
//!   simulated time, state out);
//! - [`world`]: the simulated truth, which tag is on which shelf;
//! - [`rf`]: the seeded radio model, what an antenna hears in one inventory round;
//! - [`gen2`]: the tags' Gen2 session flags, which decide who answers a Query;
//! - [`serial_link`]: virtual serial cables (pseudo-terminal pairs) with line faults;
//! - [`modbus_rtu`]: a Modbus RTU slave that frames by silences, as the specification does;
//! - [`modbus_shelving`], [`framed_shelving`], [`r2000_reader`], [`mercury_reader`]: the
//!   devices on their serial wires;
//! - [`mqtt_devices`]: a JSON shelving controller and an Impinj-style reader on MQTT;
//! - [`climate`]: the room's climate model and its environment devices (Modbus RTU
//!   transmitters and I/O modules, Zigbee2MQTT sensors and plugs);
//! - [`clock`]: simulated time, scaled;
//! - [`sim`]: the running simulator and its HTTP control API.
//!
//! The simulator knows nothing of stackroom's types: the room is handed to it as plain data
//! ([`SimSpec`]), so the controller, which runs it in-process for its demo, can depend on
//! it. Frame codecs and device profiles come from `stackroom-wire`, shared with the
//! controller's drivers and tested there against vendor-published frames.

pub mod climate;
pub mod clock;
pub mod framed_shelving;
pub mod gen2;
pub mod mercury_reader;
pub mod modbus_rtu;
pub mod modbus_shelving;
pub mod mqtt_devices;
pub mod r2000_reader;
pub mod rf;
pub mod serial_link;
pub mod shelving;
pub mod sim;
pub mod world;

pub use sim::{
    GateDevice, Placement, RangeDevice, ReaderDevice, ReaderWire, ShelvingWire, SimError, SimSpec,
    Simulator,
};

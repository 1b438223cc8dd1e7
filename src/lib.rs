//! stackroom: the controller of an archive stack room with RFID compact shelving.
//!
//! ARCHITECTURE.md in the repository is the map: the crates, the modules, which way they
//! point and the invariants they keep (the shelving's safety rules first). In short:
//! - [`shelf`], [`layout`], [`archive_no`], [`config`]: the room as configured;
//! - [`store`]: SQLite with one batching writer and pooled readers;
//! - [`location`], [`loans`], [`gate`], [`labels`]: boxes, bindings, circulation;
//! - [`shelving`]: drivers, motion planning and the range controllers;
//! - [`rfid`]: tag reads, the location decision, sweeps;
//! - [`environment`]: climate and safety sensors, alarms, dehumidifiers, ventilation;
//! - [`access`], [`audit`]: tokens and roles, the audit trail;
//! - [`api`], [`page`]: the HTTP API and the staff page;
//! - [`mqtt`]: the embedded broker and the event publisher;
//! - [`server`], [`demo`], [`sim`], [`cli_sweep`], [`logging`]: starting a controller, the
//!   demo room, hw-sim from a room config, `stackroom sweep`, log setup.

pub mod access;
pub mod api;
pub mod archive_no;
pub mod audit;
pub mod bus;
pub mod cli_sweep;
pub mod config;
pub mod demo;
pub mod environment;
pub mod gate;
pub mod http;
pub mod labels;
pub mod layout;
pub mod link;
pub mod loans;
pub mod location;
pub mod logging;
pub mod lookups;
pub mod mqtt;
pub mod page;
pub mod rfid;
pub mod server;
pub mod shelf;
pub mod shelving;
pub mod sim;
pub mod store;

//! stackroom: the controller of an archive stack room with RFID compact shelving.
//!
//! The map (see also `../shared/DESIGN.md` in the project and the README):
//! - [`shelf`], [`layout`], [`archive_no`], [`config`]: the room as configured: shelf
//!   addresses, ranges and carriages, the site's archive-number rule, devices and antennas;
//! - [`store`]: SQLite with one batching writer and pooled readers;
//! - [`location`]: boxes, bindings and their history, search, shelf suggestion, import;
//! - [`mqtt`]: the embedded MQTT broker;
//! - [`rfid`]: tag reads and the location decision;
//! - [`shelving`]: shelving drivers, motion planning and the range controllers;
//! - [`api`]: the HTTP API (axum) with its generated OpenAPI document;
//! - [`demo`]: the demo room and its seed data;
//! - [`sim`]: the simulated room (hw-sim) started from a room config;
//! - [`server`]: starting a controller from a config.

pub mod access;
pub mod api;
pub mod archive_no;
pub mod audit;
pub mod cli_sweep;
pub mod config;
pub mod demo;
pub mod environment;
pub mod gate;
pub mod labels;
pub mod layout;
pub mod loans;
pub mod location;
pub mod logging;
pub mod mqtt;
pub mod page;
pub mod rfid;
pub mod server;
pub mod shelf;
pub mod shelving;
pub mod sim;
pub mod store;

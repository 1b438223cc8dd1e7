//! The integration tests, in one crate so the controller is linked once: each module is
//! one area of the system (named as in README's test section), `common` runs the real
//! `stackroom demo` and the system tools the tests need.
//!
//! The fault campaign (`tests/campaign.rs`) is a test binary of its own: it keeps both
//! cores busy for minutes, and alone it cannot starve the tests here that follow real
//! devices in real time.

mod common;

mod access;
mod backup;
mod bus;
mod changes;
mod crash;
mod demo_api;
mod environment;
mod fuzz;
mod gate;
mod labels;
mod life_cycle;
mod loans;
mod modbus_tcp;
mod mosquitto;
mod operations;
mod page;
mod pymodbus;
mod readers;
mod safety;
mod schedule;
mod shelving;
mod sim_cli;
mod sim_mqtt;
mod site;
mod sweeps;

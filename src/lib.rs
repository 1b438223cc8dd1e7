//! stackroom: the controller of an archive stack room with RFID compact shelving.
//!
//! ARCHITECTURE.md in the repository is the map: the crates, the modules, which way they
//! point and the invariants they keep (the shelving's safety rules first). The layers,
//! lowest first; a module uses only those below it (checked by `architecture`'s tests):
//! - foundation, no I/O: [`time`], [`shelf`], [`archive_no`], [`layout`];
//! - runtime: [`link`] (back-off, the tasks of a service);
//! - records: [`store`] (SQLite, one batching writer), [`audit`], [`access`], [`lookups`],
//!   [`loans`];
//! - room: [`config`];
//! - services: [`bus`], [`location`], [`labels`], [`shelving`] (the only code
//!   that moves carriages), [`rfid`], [`environment`], [`gate`], [`backup`];
//! - edges: [`mqtt`], [`http`], [`logging`], [`page`], [`api`], [`server`], [`demo`],
//!   [`sim`], [`cli_sweep`], [`init`].

#[cfg(test)]
mod architecture;

pub mod access;
pub mod api;
pub mod archive_no;
pub mod audit;
pub mod backup;
pub mod bus;
pub mod cli_sweep;
pub mod config;
pub mod contents;
pub mod demo;
pub mod documents;
pub mod environment;
pub mod gate;
pub mod holdings;
pub mod http;
pub mod init;
pub mod intake;
pub mod labels;
pub mod layout;
pub mod link;
pub mod loans;
pub mod location;
pub mod logging;
pub mod lookups;
pub mod mqtt;
pub mod name;
pub mod page;
pub mod retention;
pub mod rfid;
pub mod server;
pub mod shelf;
pub mod shelving;
#[cfg(feature = "demo")]
pub mod sim;
pub mod site;
pub mod store;
pub mod time;

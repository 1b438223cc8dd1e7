//! stackroom-wire: the wire protocols of stack-room hardware, sans-IO.
//!
//! Frame codecs (bytes in, frames out; frames in, bytes out) and the schemas of the device
//! profiles that describe them. Both sides use this crate: the controller's drivers and the
//! hardware simulator. So that a shared mistake cannot hide, every codec is tested against
//! frames as the vendors publish them, not only against its own output.
//!
//! - [`framed`]: framed-bytes shelving protocols described by their profile;
//! - [`r2000`]: readers on the Impinj R2000 chip, "0xA0" serial protocol;
//! - [`mercury`]: ThingMagic / JADAK Mercury serial protocol (M6e family);
//! - [`mqtt_json`]: JSON messages of MQTT shelving controllers and Impinj-style readers;
//! - [`shelving`]: the shelving vocabulary that is stackroom's own (commands, refusal and
//!   fault codes, occupancy masks by gap), shared by drivers and simulator;
//! - [`stream`]: the receive buffer every framed codec resynchronises with;
//! - [`profile`]: device profiles (`device-profiles/*.toml`).

pub mod framed;
pub mod mercury;
pub mod mqtt_json;
pub mod profile;
pub mod r2000;
pub mod shelving;
pub mod stream;

/// Why bytes or a profile cannot be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("malformed frame: {0}")]
    Malformed(String),
    #[error("device profile {file}: {message}")]
    Profile { file: String, message: String },
}

//! hw-sim: the hardware simulator of stackroom.
//!
//! It will stand in for every device of a stack room (shelving controllers, RFID
//! readers) on the same wire protocols as the real hardware, so that CI and the demo run
//! the whole system without hardware. So far it holds only the crate's place in the
//! workspace; the simulator itself is the next piece of work.

/// The simulator's version, as reported by its control API.
pub fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

#[cfg(test)]
mod tests {
    #[test]
    fn version_is_the_crate_version() {
        assert_eq!(super::version(), "0.1.0");
    }
}

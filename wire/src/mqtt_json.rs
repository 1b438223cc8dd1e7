//! JSON messages of MQTT devices.
//!
//! - Shelving controllers with JSON command/state topics (topic names from the profile):
//!   the controller publishes its state (retained) on `{prefix}/{state}` whenever it changes
//!   and at least every `state_interval_ms`; it takes commands on `{prefix}/{command}` and
//!   answers each on `{prefix}/{result}` with the command's `id`.
//! - Readers speaking the Impinj IoT device interface: one JSON event per tag read on
//!   `{prefix}/{events}`, `{"timestamp","hostname","eventType":"tagInventory",
//!   "tagInventoryEvent":{"epc" (base64),"epcHex","antennaPort","antennaName",
//!   "peakRssiCdbm","frequency","transmitPowerCdbm","lastSeenTime","phaseAngle"}}`.

use serde::{Deserialize, Serialize};

/// A command to a shelving controller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShelvingCommand {
    /// Chosen by the sender; the result carries it back.
    pub id: String,
    /// `open_aisle`, `close`, `ventilate`, `stop`, `lock`, `unlock`, `reset_faults`,
    /// `warning` (see [`crate::shelving::Command`]).
    pub command: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aisle: Option<u16>,
    /// For `warning`: on or off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on: Option<bool>,
    /// The sender's sequence number: higher is newer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// When the sender issued it, ms since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_ms: Option<i64>,
    /// After this (ms since the Unix epoch) the device must not act on it: it answers
    /// `refused` with reason `expired`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_ms: Option<i64>,
}

/// The controller's watchdog heartbeat; its last will has `beat: null` (the controller is
/// gone: stop the drives at once).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub beat: Option<u64>,
}

/// The answer to a [`ShelvingCommand`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShelvingResult {
    pub id: String,
    /// `accepted`, `refused` or `invalid`.
    pub result: String,
    /// Why not: `estop`, `locked`, `fault`, `aisle_occupied`, `obstacle`, `no_such_aisle`, or
    /// what was wrong with the command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aisle: Option<u16>,
}

/// The state a shelving controller publishes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShelvingState {
    pub positions_mm: Vec<f64>,
    pub open_aisle: Option<u16>,
    /// `idle`, `moving` or `stopped`.
    pub motion: String,
    pub locked: bool,
    pub estop: bool,
    /// Fault code, 0 for none (1 motor, 2 jam, 3+ vendor).
    pub fault: u16,
    pub fault_carriage: u16,
    /// Occupied gaps: 0 the left wall gap, k aisle k, n the right wall gap.
    pub occupied_aisles: Vec<u16>,
    pub obstacle_aisles: Vec<u16>,
    /// Counts the controller's state messages; a gap means messages were lost.
    pub seq: u64,
}

/// One Impinj IoT device interface event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImpinjEvent {
    pub timestamp: String,
    #[serde(default)]
    pub hostname: String,
    pub event_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag_inventory_event: Option<TagInventoryEvent>,
}

/// The tag of a `tagInventory` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TagInventoryEvent {
    /// EPC, base64.
    #[serde(default)]
    pub epc: String,
    /// Sent only when the reader's `epcHex` option is on (off in the R700's MQTT preset).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub epc_hex: String,
    pub antenna_port: u16,
    #[serde(default)]
    pub antenna_name: String,
    /// Peak RSSI, hundredths of a dBm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_rssi_cdbm: Option<i32>,
    /// kHz.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequency: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transmit_power_cdbm: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen_time: Option<String>,
    /// Degrees.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase_angle: Option<f64>,
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const BASE64_URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Standard base64 (RFC 4648 §4) with padding.
pub fn base64(bytes: &[u8]) -> String {
    encode64(bytes, BASE64, true)
}

/// URL-safe base64 (RFC 4648 §5) without padding, as the R700 sends the EPC.
pub fn base64_url(bytes: &[u8]) -> String {
    encode64(bytes, BASE64_URL, false)
}

/// The value of a base64 digit of either alphabet (`+/` standard, `-_` URL-safe).
fn digit64(c: u8) -> Option<u32> {
    Some(match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' | b'-' => 62,
        b'/' | b'_' => 63,
        _ => return None,
    } as u32)
}

fn encode64(bytes: &[u8], alphabet: &[u8; 64], pad: bool) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(alphabet[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else if pad {
                out.push('=');
            }
        }
    }
    out
}

impl TagInventoryEvent {
    /// The EPC in upper-case hex, from `epcHex` or else from the base64 `epc` (either
    /// alphabet, padded or not); None when neither reads as a whole number of bytes.
    pub fn epc_hex(&self) -> Option<String> {
        if !self.epc_hex.is_empty() {
            return self
                .epc_hex
                .bytes()
                .all(|b| b.is_ascii_hexdigit())
                .then(|| self.epc_hex.to_ascii_uppercase());
        }
        let mut bits = 0u32;
        let mut nbits = 0;
        let mut out = String::new();
        for c in self.epc.bytes().take_while(|&c| c != b'=') {
            let v = digit64(c)?;
            bits = bits << 6 | v;
            nbits += 6;
            if nbits >= 8 {
                nbits -= 8;
                out.push_str(&format!("{:02X}", (bits >> nbits) & 0xFF));
            }
        }
        // Left-over bits of a whole number of bytes are the encoding's zero padding.
        (!out.is_empty() && bits & ((1 << nbits) - 1) == 0).then_some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_impinj_events_parse() {
        // As published for the Impinj IoT device interface (R700 data stream).
        let text = r#"{"timestamp": "2024-08-06T12:00:00Z", "hostname": "r700-emulator", "eventType": "tagInventory", "tagInventoryEvent": {"epc": "2U3T7XY4z5tHhbvN", "epcHex": "3500B6D9801234567890ABCDEF", "antennaPort": 1, "antennaName": "Antenna 1"}}"#;
        let e: ImpinjEvent = serde_json::from_str(text).unwrap();
        assert_eq!(e.event_type, "tagInventory");
        let t = e.tag_inventory_event.unwrap();
        assert_eq!(t.antenna_port, 1);
        assert_eq!(t.epc_hex().unwrap(), "3500B6D9801234567890ABCDEF");
        let text = r#"{"timestamp":"2026-01-01T10:00:00Z","eventType":"tagInventory","tagInventoryEvent":{"epc":"ikUCJA==","antennaPort":1,"peakRssiCdbm":-3200}}"#;
        let t = serde_json::from_str::<ImpinjEvent>(text)
            .unwrap()
            .tag_inventory_event
            .unwrap();
        assert_eq!(t.epc_hex().unwrap(), "8A450224", "decoded from base64");
        assert_eq!(t.peak_rssi_cdbm, Some(-3200));
    }

    #[test]
    fn base64_round_trips() {
        for bytes in [
            vec![0x8A, 0x45, 0x02, 0x24],
            vec![0xE2; 12],
            vec![1, 2, 3, 4, 5],
        ] {
            let hex: String = bytes.iter().map(|b| format!("{b:02X}")).collect();
            assert_eq!(event(&base64(&bytes)).epc_hex().unwrap(), hex);
        }
        assert_eq!(base64(&[0x8A, 0x45, 0x02, 0x24]), "ikUCJA==");
    }

    fn event(epc: &str) -> TagInventoryEvent {
        TagInventoryEvent {
            epc: epc.into(),
            epc_hex: String::new(),
            antenna_port: 1,
            antenna_name: String::new(),
            peak_rssi_cdbm: None,
            frequency: None,
            transmit_power_cdbm: None,
            last_seen_time: None,
            phase_angle: None,
        }
    }

    #[test]
    fn both_alphabets_with_and_without_padding() {
        // RFC 4648's test vectors ("f", "fo", "foo", "foob", "fooba", "foobar").
        for (plain, coded) in [
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), coded);
            let hex: String = plain.bytes().map(|b| format!("{b:02X}")).collect();
            assert_eq!(event(coded).epc_hex().unwrap(), hex);
            assert_eq!(event(coded.trim_end_matches('=')).epc_hex().unwrap(), hex);
        }
        // An EPC whose base64 has '+' and '/' in the standard alphabet has '-' and '_' in
        // the URL-safe one the R700 uses; both read the same.
        let epc = [
            0xFB, 0xEF, 0xBE, 0xFF, 0xFF, 0xFF, 0x30, 0x08, 0x33, 0xB2, 0xDD, 0xD9,
        ];
        let (standard, url) = (base64(&epc), base64_url(&epc));
        assert!(
            standard.contains('+') && standard.contains('/'),
            "{standard}"
        );
        assert!(
            url.contains('-') && url.contains('_') && !url.contains('='),
            "{url}"
        );
        assert_eq!(event(&standard).epc_hex(), event(&url).epc_hex());
        assert_eq!(event(&url).epc_hex().unwrap(), "FBEFBEFFFFFF300833B2DDD9");
        // Not base64 at all, or bits left over that are not padding: None, not a guess.
        assert_eq!(event("ik*CJA").epc_hex(), None);
        assert_eq!(event("ikV").epc_hex(), None);
    }

    #[test]
    fn shelving_commands_are_strict() {
        let c: ShelvingCommand =
            serde_json::from_str(r#"{"id":"7","command":"open_aisle","aisle":3}"#).unwrap();
        assert_eq!(c.aisle, Some(3));
        assert_eq!(
            (c.seq, c.expires_ms),
            (None, None),
            "older senders still understood"
        );
        assert!(
            serde_json::from_str::<ShelvingCommand>(r#"{"id":"7","command":"x","speed":9}"#)
                .is_err()
        );
    }
}

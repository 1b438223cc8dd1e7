//! Framed-bytes serial protocols of shelving controllers that are neither Modbus nor MQTT,
//! described entirely by the device profile, sans-IO.
//!
//! A frame is `start… address function length data… checksum end…`: the start and end
//! codes, the checksum (CRC-16/Modbus sent low byte first, an 8-bit sum or an 8-bit XOR, over
//! address to the end of the data) and every code are the profile's. The host asks for the
//! status with the `status` function; the controller answers with `status | 0x80` and the
//! status fields at the profile's offsets. The host sends a command with the `command`
//! function and data `[code, argument high, argument low]`; the controller answers with
//! `command | 0x80` and `[result]` (0 accepted, else the refusal code).

use serde::Deserialize;

use crate::WireError;
use crate::stream::{Check, FrameBuffer};

/// How the checksum is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Checksum {
    /// CRC-16/Modbus (reflected 0xA001, preset 0xFFFF), low byte first.
    Crc16Modbus,
    /// Sum of the bytes, modulo 256.
    Sum8,
    /// XOR of the bytes.
    Xor8,
}

impl Checksum {
    pub fn compute(self, bytes: &[u8]) -> Vec<u8> {
        match self {
            Checksum::Crc16Modbus => {
                let mut crc: u16 = 0xFFFF;
                for &b in bytes {
                    crc ^= b as u16;
                    for _ in 0..8 {
                        crc = if crc & 1 != 0 {
                            (crc >> 1) ^ 0xA001
                        } else {
                            crc >> 1
                        };
                    }
                }
                crc.to_le_bytes().to_vec()
            }
            Checksum::Sum8 => vec![bytes.iter().fold(0u8, |s, b| s.wrapping_add(*b))],
            Checksum::Xor8 => vec![bytes.iter().fold(0u8, |s, b| s ^ b)],
        }
    }

    fn len(self) -> usize {
        match self {
            Checksum::Crc16Modbus => 2,
            Checksum::Sum8 | Checksum::Xor8 => 1,
        }
    }
}

/// Function codes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Functions {
    pub status: u8,
    pub command: u8,
    /// The watchdog's heartbeat: data `[beat high, beat low]`, answered with
    /// `heartbeat | 0x80` and no data.
    pub heartbeat: Option<u8>,
}

/// Command codes (the first data byte of a command).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Commands {
    pub open_aisle: u8,
    pub close: u8,
    pub ventilate: u8,
    pub stop: u8,
    pub lock: u8,
    pub unlock: u8,
    pub reset_faults: u8,
    /// The pre-motion warning: argument 1 on, 0 off.
    pub warning: Option<u8>,
}

/// Offsets of the status fields in the status answer's data.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusLayout {
    pub flags: usize,
    pub open_aisle: usize,
    /// The occupancy mask, `occupied_bytes` bytes as one big-endian number: bit g set when
    /// gap g is occupied (0 the left wall gap, k aisle k, n the right wall gap).
    pub occupied: usize,
    #[serde(default = "two")]
    pub occupied_bytes: usize,
    pub fault_code: usize,
    pub fault_carriage: usize,
    pub carriage_count: usize,
    /// Two bytes per carriage, big-endian, millimetres.
    pub positions: usize,
}

fn two() -> usize {
    2
}

/// Bit numbers in the flags byte.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusBits {
    pub moving: u8,
    pub estop: u8,
    pub locked: u8,
    pub fault: u8,
    pub stopped: u8,
    pub obstacle: u8,
}

/// The `[framed]` section of a profile.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FramedProfile {
    pub start: Vec<u8>,
    #[serde(default)]
    pub end: Vec<u8>,
    pub address: u8,
    pub checksum: Checksum,
    pub functions: Functions,
    pub commands: Commands,
    pub status: StatusLayout,
    pub status_bits: StatusBits,
}

/// One frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub address: u8,
    pub function: u8,
    pub data: Vec<u8>,
}

/// A controller's status.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Status {
    pub moving: bool,
    pub estop: bool,
    pub locked: bool,
    pub fault: bool,
    pub stopped: bool,
    pub obstacle: bool,
    pub open_aisle: u8,
    /// Occupied gaps (see [`crate::shelving`]).
    pub occupied: Vec<u16>,
    pub fault_code: u8,
    pub fault_carriage: u8,
    pub positions_mm: Vec<u16>,
}

impl FramedProfile {
    pub fn encode(&self, frame: &Frame) -> Result<Vec<u8>, WireError> {
        let len = u8::try_from(frame.data.len())
            .map_err(|_| WireError::Malformed("framed data longer than 255 bytes".into()))?;
        let mut body = vec![frame.address, frame.function, len];
        body.extend_from_slice(&frame.data);
        let mut out = self.start.clone();
        out.extend_from_slice(&body);
        out.extend(self.checksum.compute(&body));
        out.extend_from_slice(&self.end);
        Ok(out)
    }

    /// The status answer's data for `s` with `carriages` carriages.
    pub fn encode_status(&self, s: &Status) -> Vec<u8> {
        let l = &self.status;
        let n = s.positions_mm.len();
        let size = [
            l.flags,
            l.open_aisle,
            l.occupied + l.occupied_bytes.max(1) - 1,
            l.fault_code,
            l.fault_carriage,
            l.carriage_count,
        ]
        .into_iter()
        .max()
        .unwrap_or(0)
        .max(l.positions + 2 * n.max(1) - 1)
            + 1;
        let mut d = vec![0u8; size];
        let b = &self.status_bits;
        let bit = |on: bool, n: u8| if on { 1u8 << n } else { 0 };
        d[l.flags] = bit(s.moving, b.moving)
            | bit(s.estop, b.estop)
            | bit(s.locked, b.locked)
            | bit(s.fault, b.fault)
            | bit(s.stopped, b.stopped)
            | bit(s.obstacle, b.obstacle);
        d[l.open_aisle] = s.open_aisle;
        // A gap the mask cannot tell makes every bit set: a device that cannot say where
        // someone is says that someone is everywhere.
        let mask = crate::shelving::be_bytes_from_gaps(&s.occupied, l.occupied_bytes)
            .unwrap_or_else(|_| vec![0xFF; l.occupied_bytes]);
        d[l.occupied..l.occupied + l.occupied_bytes].copy_from_slice(&mask);
        d[l.fault_code] = s.fault_code;
        d[l.fault_carriage] = s.fault_carriage;
        d[l.carriage_count] = n as u8;
        for (i, p) in s.positions_mm.iter().enumerate() {
            d[l.positions + 2 * i..l.positions + 2 * i + 2].copy_from_slice(&p.to_be_bytes());
        }
        d
    }

    pub fn decode_status(&self, d: &[u8]) -> Result<Status, WireError> {
        let l = &self.status;
        let short =
            || WireError::Malformed(format!("status answer of {} bytes is too short", d.len()));
        let byte = |i: usize| d.get(i).copied().ok_or_else(short);
        let flags = byte(l.flags)?;
        let b = &self.status_bits;
        let on = |n: u8| flags & (1 << n) != 0;
        let n = byte(l.carriage_count)? as usize;
        let positions = (0..n)
            .map(|i| {
                let at = l.positions + 2 * i;
                Ok(u16::from_be_bytes([byte(at)?, byte(at + 1)?]))
            })
            .collect::<Result<Vec<u16>, WireError>>()?;
        Ok(Status {
            moving: on(b.moving),
            estop: on(b.estop),
            locked: on(b.locked),
            fault: on(b.fault),
            stopped: on(b.stopped),
            obstacle: on(b.obstacle),
            open_aisle: byte(l.open_aisle)?,
            occupied: crate::shelving::gaps_from_be_bytes(
                d.get(l.occupied..l.occupied + l.occupied_bytes)
                    .ok_or_else(short)?,
            ),
            fault_code: byte(l.fault_code)?,
            fault_carriage: byte(l.fault_carriage)?,
            positions_mm: positions,
        })
    }
}

/// Splits a byte stream into frames of a [`FramedProfile`], resynchronising on the start
/// code after garbage or a bad checksum (counted in [`Decoder::corrupt`]).
#[derive(Debug)]
pub struct Decoder {
    profile: FramedProfile,
    buf: FrameBuffer,
}

impl Decoder {
    pub fn new(profile: FramedProfile) -> Decoder {
        Decoder {
            profile,
            buf: FrameBuffer::default(),
        }
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.push(bytes);
    }

    /// Drops a partial frame (after the line was silent longer than a frame takes).
    pub fn flush_partial(&mut self) {
        self.buf.flush_partial();
    }

    /// Frames or stray bytes skipped because they were corrupt.
    pub fn corrupt(&self) -> u64 {
        self.buf.corrupt
    }

    pub fn next_frame(&mut self) -> Option<Frame> {
        let p = &self.profile;
        let head = p.start.len();
        let (sum_len, end_len) = (p.checksum.len(), p.end.len());
        let bytes = self.buf.next(&p.start, |b| {
            let Some(&len) = b.get(head + 2) else {
                return Check::Incomplete;
            };
            let total = head + 3 + len as usize + sum_len + end_len;
            if b.len() < total {
                return Check::Incomplete;
            }
            let body = &b[head..head + 3 + len as usize];
            let sum = &b[head + 3 + len as usize..total - end_len];
            if p.checksum.compute(body) == sum && b[total - end_len..total] == p.end[..] {
                Check::Frame(total)
            } else {
                Check::Bad
            }
        })?;
        Some(Frame {
            address: bytes[head],
            function: bytes[head + 1],
            data: bytes[head + 3..bytes.len() - sum_len - end_len].to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile() -> FramedProfile {
        let text = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../device-profiles/framed-shelving.toml"),
        )
        .unwrap();
        crate::profile::Profile::parse(&text)
            .unwrap()
            .framed
            .unwrap()
    }

    #[test]
    fn checksums_match_their_check_values() {
        // Catalogue check values for the ASCII "123456789".
        assert_eq!(
            Checksum::Crc16Modbus.compute(b"123456789"),
            vec![0x37, 0x4B]
        );
        assert_eq!(Checksum::Sum8.compute(b"123456789"), vec![0xDD]);
        assert_eq!(Checksum::Xor8.compute(b"123456789"), vec![0x31]);
        // And the Modbus specification's example frame 01 03 00 00 00 0A → C5 CD.
        assert_eq!(
            Checksum::Crc16Modbus.compute(&[1, 3, 0, 0, 0, 0x0A]),
            vec![0xC5, 0xCD]
        );
    }

    #[test]
    fn frames_round_trip_through_garbage_and_bad_checksums() {
        let p = profile();
        let status_request = Frame {
            address: 1,
            function: p.functions.status,
            data: vec![],
        };
        let command = Frame {
            address: 1,
            function: p.functions.command,
            data: vec![p.commands.open_aisle, 0, 4],
        };
        let a = p.encode(&status_request).unwrap();
        // AA 55 | 01 01 00 | CRC of 01 01 00
        assert_eq!(&a[..5], &[0xAA, 0x55, 0x01, 0x01, 0x00]);
        assert_eq!(
            &a[5..],
            Checksum::Crc16Modbus.compute(&[1, 1, 0]).as_slice()
        );
        let b = p.encode(&command).unwrap();
        let mut bad = b.clone();
        bad[6] ^= 0xFF;
        let mut stream = vec![0x13, 0xAA, 0x00];
        stream.extend(&a);
        stream.extend(&bad);
        stream.extend(&b);
        let mut d = Decoder::new(p.clone());
        let mut frames = Vec::new();
        for byte in stream {
            d.push(&[byte]);
            while let Some(f) = d.next_frame() {
                frames.push(f);
            }
        }
        assert_eq!(frames, vec![status_request, command]);
        assert!(d.corrupt() >= 2);
    }

    #[test]
    fn status_fields_round_trip() {
        let p = profile();
        let s = Status {
            moving: true,
            obstacle: true,
            open_aisle: 0,
            occupied: vec![0, 3, 9],
            fault_code: 2,
            fault_carriage: 3,
            positions_mm: vec![0, 600, 1500, 2100],
            ..Status::default()
        };
        let data = p.encode_status(&s);
        assert_eq!(p.decode_status(&data).unwrap(), s);
        assert!(p.decode_status(&data[..5]).is_err());
    }
}

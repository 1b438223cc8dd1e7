//! Framing of the ThingMagic / JADAK Mercury serial protocol (M6e, M6e Nano, M7e), sans-IO.
//!
//! Host to reader: `0xFF Len Opcode Data… CRC(2)`; reader to host: `0xFF Len Opcode
//! Status(2) Data… CRC(2)`. `Len` counts the data bytes only (not the status). The CRC is
//! a 16-bit CRC with polynomial 0x1021 and preset 0xFFFF, computed over
//! everything after the 0xFF header and sent most significant byte first. Mercury computes
//! it in the "augmented" form: message bits are shifted in at the bottom of the register
//! (not XORed in at the top) and no zero bits are appended, so `FF 00 03` gets `1D 0C`
//! where the common CRC-16/CCITT-FALSE would give `2D 6C`.

use crate::WireError;

pub const HEADER: u8 = 0xFF;
pub const OP_GET_VERSION: u8 = 0x03;
pub const OP_BOOT_FIRMWARE: u8 = 0x04;
pub const OP_READ_TAG_MULTIPLE: u8 = 0x22;
pub const OP_GET_TAG_BUFFER: u8 = 0x29;
pub const OP_CLEAR_TAG_BUFFER: u8 = 0x2A;
pub const OP_GET_TAG_PROTOCOL: u8 = 0x63;
pub const OP_SET_ANTENNA_PORT: u8 = 0x91;
pub const OP_SET_TAG_PROTOCOL: u8 = 0x93;
pub const OP_SET_REGION: u8 = 0x97;

/// The Mercury CRC: polynomial 0x1021, register preset to 0xFFFF, message bits shifted in
/// at the bottom, most significant bit first.
pub fn crc(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0xFFFF;
    for &b in bytes {
        for bit in (0..8).rev() {
            let top = crc & 0x8000 != 0;
            crc = (crc << 1) | ((b >> bit) & 1) as u16;
            if top {
                crc ^= 0x1021;
            }
        }
    }
    crc
}

/// A host command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub opcode: u8,
    pub data: Vec<u8>,
}

/// A reader response; `status` 0 is success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub opcode: u8,
    pub status: u16,
    pub data: Vec<u8>,
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 3);
    out.push(HEADER);
    out.extend_from_slice(body);
    out.extend_from_slice(&crc(body).to_be_bytes());
    out
}

impl Command {
    pub fn new(opcode: u8, data: Vec<u8>) -> Command {
        Command { opcode, data }
    }

    pub fn encode(&self) -> Result<Vec<u8>, WireError> {
        let len = u8::try_from(self.data.len())
            .map_err(|_| WireError::Malformed("Mercury data longer than 255 bytes".into()))?;
        let mut body = vec![len, self.opcode];
        body.extend_from_slice(&self.data);
        Ok(frame(&body))
    }
}

impl Response {
    pub fn encode(&self) -> Result<Vec<u8>, WireError> {
        let len = u8::try_from(self.data.len())
            .map_err(|_| WireError::Malformed("Mercury data longer than 255 bytes".into()))?;
        let mut body = vec![len, self.opcode];
        body.extend_from_slice(&self.status.to_be_bytes());
        body.extend_from_slice(&self.data);
        Ok(frame(&body))
    }
}

/// Which side's frames a [`Decoder`] reads: responses carry two status bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    HostToReader,
    ReaderToHost,
}

/// A decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Command(Command),
    Response(Response),
}

/// Splits a byte stream into frames, skipping (and counting) garbage and frames whose CRC
/// is wrong, and resynchronising at the next header.
#[derive(Debug)]
pub struct Decoder {
    direction: Direction,
    buf: Vec<u8>,
    pub corrupt: u64,
}

impl Decoder {
    pub fn new(direction: Direction) -> Decoder {
        Decoder {
            direction,
            buf: Vec::new(),
            corrupt: 0,
        }
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Drops a partial frame, e.g. after the line has been silent longer than a frame
    /// takes: a corrupt length byte would otherwise hold up the frames behind it.
    pub fn flush_partial(&mut self) {
        if !self.buf.is_empty() {
            self.corrupt += 1;
            self.buf.clear();
        }
    }

    pub fn next_frame(&mut self) -> Option<Frame> {
        let status_len = match self.direction {
            Direction::HostToReader => 0,
            Direction::ReaderToHost => 2,
        };
        loop {
            match self.buf.iter().position(|&b| b == HEADER) {
                None => {
                    if !self.buf.is_empty() {
                        self.corrupt += 1;
                        self.buf.clear();
                    }
                    return None;
                }
                Some(0) => {}
                Some(skip) => {
                    self.corrupt += 1;
                    self.buf.drain(..skip);
                }
            }
            let len = *self.buf.get(1)? as usize;
            let total = 1 + 1 + 1 + status_len + len + 2;
            if self.buf.len() < total {
                return None;
            }
            let body = &self.buf[1..total - 2];
            let sent = u16::from_be_bytes([self.buf[total - 2], self.buf[total - 1]]);
            if crc(body) != sent {
                self.corrupt += 1;
                self.buf.drain(..1);
                continue;
            }
            let opcode = body[1];
            let frame = match self.direction {
                Direction::HostToReader => Frame::Command(Command {
                    opcode,
                    data: body[2..].to_vec(),
                }),
                Direction::ReaderToHost => Frame::Response(Response {
                    opcode,
                    status: u16::from_be_bytes([body[2], body[3]]),
                    data: body[4..].to_vec(),
                }),
            };
            self.buf.drain(..total);
            return Some(frame);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(text: &str) -> Vec<u8> {
        text.split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect()
    }

    #[test]
    fn published_commands_encode_byte_for_byte() {
        // Frames from published Mercury sessions: version, boot, get/set tag protocol, region.
        let cases: [(u8, &str, &str); 5] = [
            (OP_GET_VERSION, "", "FF 00 03 1D 0C"),
            (OP_BOOT_FIRMWARE, "", "FF 00 04 1D 0B"),
            (OP_GET_TAG_PROTOCOL, "", "FF 00 63 1D 6C"),
            (OP_SET_TAG_PROTOCOL, "00 05", "FF 02 93 00 05 51 7D"),
            (OP_SET_REGION, "02", "FF 01 97 02 4B BF"),
        ];
        for (opcode, data, wire) in cases {
            assert_eq!(
                Command::new(opcode, hex(data)).encode().unwrap(),
                hex(wire),
                "{wire}"
            );
        }
    }

    #[test]
    fn published_responses_decode() {
        let mut d = Decoder::new(Direction::ReaderToHost);
        d.push(&hex("FF 00 97 00 00 77 9E"));
        d.push(&hex("FF 02 63 00 00 00 05 21 46"));
        d.push(&hex("FF 07 62 00 00 01 08 FC 08 FC 03 E8 7A C9"));
        let frames: Vec<Frame> = std::iter::from_fn(|| d.next_frame()).collect();
        assert_eq!(
            frames,
            [
                Frame::Response(Response {
                    opcode: OP_SET_REGION,
                    status: 0,
                    data: vec![]
                }),
                Frame::Response(Response {
                    opcode: OP_GET_TAG_PROTOCOL,
                    status: 0,
                    data: hex("00 05")
                }),
                Frame::Response(Response {
                    opcode: 0x62,
                    status: 0,
                    data: hex("01 08 FC 08 FC 03 E8")
                }),
            ]
        );
        assert_eq!(d.corrupt, 0);
        // And our encoding of them is the published bytes.
        let Frame::Response(r) = &frames[1] else {
            panic!()
        };
        assert_eq!(r.encode().unwrap(), hex("FF 02 63 00 00 00 05 21 46"));
    }

    #[test]
    fn garbage_and_bad_crcs_are_skipped() {
        let mut d = Decoder::new(Direction::HostToReader);
        let mut stream = hex("12 34");
        stream.extend(hex("FF 00 03 1D 0D")); // bad CRC
        stream.extend(hex("FF 00 03 1D 0C"));
        for b in stream {
            d.push(&[b]);
        }
        assert_eq!(
            d.next_frame(),
            Some(Frame::Command(Command::new(OP_GET_VERSION, vec![])))
        );
        assert_eq!(d.next_frame(), None);
        assert!(d.corrupt >= 2);
    }

    #[test]
    fn a_corrupt_length_is_dropped_on_silence() {
        let mut d = Decoder::new(Direction::HostToReader);
        d.push(&hex("FF F0 03")); // claims 240 data bytes that never come
        assert_eq!(d.next_frame(), None);
        d.flush_partial();
        d.push(&hex("FF 00 03 1D 0C"));
        assert_eq!(
            d.next_frame(),
            Some(Frame::Command(Command::new(OP_GET_VERSION, vec![])))
        );
        assert_eq!(d.corrupt, 1);
    }
}

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
use crate::stream::{Check, FrameBuffer};

pub const HEADER: u8 = 0xFF;
pub const OP_GET_VERSION: u8 = 0x03;
pub const OP_BOOT_FIRMWARE: u8 = 0x04;
pub const OP_READ_TAG_MULTIPLE: u8 = 0x22;
pub const OP_GET_TAG_BUFFER: u8 = 0x29;
pub const OP_CLEAR_TAG_BUFFER: u8 = 0x2A;
pub const OP_GET_TAG_PROTOCOL: u8 = 0x63;
pub const OP_SET_ANTENNA_PORT: u8 = 0x91;
/// Set Read TX Power: `[centi-dBm (2)]`.
pub const OP_SET_READ_TX_POWER: u8 = 0x92;
pub const OP_SET_TAG_PROTOCOL: u8 = 0x93;
pub const OP_SET_REGION: u8 = 0x97;
/// Set Protocol Parameter: `[protocol, parameter, value…]`; Gen2 (0x05) session is 0x00.
pub const OP_SET_PROTOCOL_PARAM: u8 = 0x9B;
pub const PROTOCOL_GEN2: u8 = 0x05;
pub const GEN2_SESSION: u8 = 0x00;

/// Status: success.
pub const OK: u16 = 0x0000;
/// Status: the opcode is not one the reader knows.
pub const FAULT_INVALID_OPCODE: u16 = 0x0101;
/// Status: a parameter is out of range.
pub const FAULT_INVALID_PARAMETER_VALUE: u16 = 0x0105;
/// Status: an inventory found no tag.
pub const FAULT_NO_TAGS_FOUND: u16 = 0x0400;

/// Metadata flags of Get Tag Buffer (0x29): which fields precede each tag record, in this
/// (ascending) order, with their sizes — as the vendor's host library parses them
/// (`TMR_SR_parseMetadataFromMessage` of the Mercury API).
pub const META_READ_COUNT: u16 = 0x0001; // 1 byte
pub const META_RSSI: u16 = 0x0002; // 1 byte, signed dBm
pub const META_ANTENNA: u16 = 0x0004; // 1 byte, TX port << 4 | RX port
pub const META_FREQUENCY: u16 = 0x0008; // 3 bytes, kHz
pub const META_TIMESTAMP: u16 = 0x0010; // 4 bytes, ms since the read command
pub const META_PHASE: u16 = 0x0020; // 2 bytes, degrees
pub const META_PROTOCOL: u16 = 0x0040; // 1 byte
pub const META_DATA: u16 = 0x0080; // 2 bytes: length in bits, then the bytes read
pub const META_GPIO: u16 = 0x0100; // 1 byte, one bit per GPIO pin
/// Every flag this codec reads; a profile may ask for no other.
pub const META_KNOWN: u16 = 0x01FF;

/// The tag records one Get Tag Buffer response can carry under `flags` with EPCs of
/// `epc_bytes` (and no XPC, no data): the module fills a frame of 255 data bytes, after the
/// four of the response's own header.
pub fn records_per_response(flags: u16, epc_bytes: usize) -> usize {
    let sizes = [
        (META_READ_COUNT, 1),
        (META_RSSI, 1),
        (META_ANTENNA, 1),
        (META_FREQUENCY, 3),
        (META_TIMESTAMP, 4),
        (META_PHASE, 2),
        (META_PROTOCOL, 1),
        (META_DATA, 2),
        (META_GPIO, 1),
    ];
    let meta: usize = sizes
        .iter()
        .filter(|(f, _)| flags & f != 0)
        .map(|(_, n)| n)
        .sum();
    let record = meta + 2 + 2 + epc_bytes + 2;
    (255 - 4) / record
}

/// One tag of the tag buffer, with the metadata the flags asked for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TagRecord {
    pub read_count: u8,
    pub rssi_dbm: i8,
    /// Logical antenna port (1-based) the tag was read on.
    pub antenna: u8,
    pub frequency_khz: u32,
    pub timestamp_ms: u32,
    pub phase_deg: u16,
    /// Tag memory read with the inventory (`META_DATA`).
    pub data: Vec<u8>,
    /// The module's GPIO pins, one bit each (`META_GPIO`).
    pub gpio: u8,
    pub pc: u16,
    /// The XPC words after the PC: XPC_W1 when PC bit 0x0200 is set, and XPC_W2 when
    /// XPC_W1's top bit is (Gen2 6.3.2.1.2.2). They are not part of the EPC.
    pub xpc: Vec<u16>,
    pub epc: Vec<u8>,
}

/// CRC-16 of EPC memory as Gen2 tags send it (polynomial 0x1021, preset 0xFFFF, inverted).
pub fn gen2_crc(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0xFFFF;
    for &b in bytes {
        crc ^= (b as u16) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    !crc
}

impl TagRecord {
    /// Appends the record as Get Tag Buffer sends it under `flags`.
    pub fn encode(&self, flags: u16, out: &mut Vec<u8>) {
        if flags & META_READ_COUNT != 0 {
            out.push(self.read_count);
        }
        if flags & META_RSSI != 0 {
            out.push(self.rssi_dbm as u8);
        }
        if flags & META_ANTENNA != 0 {
            out.push((self.antenna << 4) | (self.antenna & 0x0F));
        }
        if flags & META_FREQUENCY != 0 {
            out.extend_from_slice(&self.frequency_khz.to_be_bytes()[1..]);
        }
        if flags & META_TIMESTAMP != 0 {
            out.extend_from_slice(&self.timestamp_ms.to_be_bytes());
        }
        if flags & META_PHASE != 0 {
            out.extend_from_slice(&self.phase_deg.to_be_bytes());
        }
        if flags & META_PROTOCOL != 0 {
            out.push(PROTOCOL_GEN2);
        }
        if flags & META_DATA != 0 {
            out.extend_from_slice(&((self.data.len() * 8) as u16).to_be_bytes());
            out.extend_from_slice(&self.data);
        }
        if flags & META_GPIO != 0 {
            out.push(self.gpio);
        }
        let bits = ((2 + 2 * self.xpc.len() + self.epc.len() + 2) * 8) as u16;
        out.extend_from_slice(&bits.to_be_bytes());
        let mut memory = self.pc.to_be_bytes().to_vec();
        for w in &self.xpc {
            memory.extend_from_slice(&w.to_be_bytes());
        }
        memory.extend_from_slice(&self.epc);
        out.extend_from_slice(&memory);
        out.extend_from_slice(&gen2_crc(&memory).to_be_bytes());
    }

    /// Reads the records of a Get Tag Buffer response's data.
    pub fn decode_buffer(data: &[u8]) -> Result<(u16, Vec<TagRecord>), WireError> {
        let bad = |why: &str| WireError::Malformed(format!("Mercury tag buffer: {why}"));
        if data.len() < 4 {
            return Err(bad("shorter than its header"));
        }
        let flags = u16::from_be_bytes([data[0], data[1]]);
        if flags & !META_KNOWN != 0 {
            return Err(bad(&format!(
                "metadata flags 0x{flags:04X} name fields this codec does not read"
            )));
        }
        let count = data[3] as usize;
        let mut at = 4;
        let mut take = |n: usize| -> Result<&[u8], WireError> {
            let s = data
                .get(at..at + n)
                .ok_or_else(|| bad("a record is cut short"))?;
            at += n;
            Ok(s)
        };
        let mut records = Vec::with_capacity(count);
        for _ in 0..count {
            let mut r = TagRecord::default();
            if flags & META_READ_COUNT != 0 {
                r.read_count = take(1)?[0];
            }
            if flags & META_RSSI != 0 {
                r.rssi_dbm = take(1)?[0] as i8;
            }
            if flags & META_ANTENNA != 0 {
                r.antenna = take(1)?[0] & 0x0F;
            }
            if flags & META_FREQUENCY != 0 {
                let f = take(3)?;
                r.frequency_khz = u32::from_be_bytes([0, f[0], f[1], f[2]]);
            }
            if flags & META_TIMESTAMP != 0 {
                let t = take(4)?;
                r.timestamp_ms = u32::from_be_bytes([t[0], t[1], t[2], t[3]]);
            }
            if flags & META_PHASE != 0 {
                let p = take(2)?;
                r.phase_deg = u16::from_be_bytes([p[0], p[1]]);
            }
            if flags & META_PROTOCOL != 0 {
                take(1)?;
            }
            if flags & META_DATA != 0 {
                let bits = take(2)?;
                let n = (u16::from_be_bytes([bits[0], bits[1]]) as usize).div_ceil(8);
                r.data = take(n)?.to_vec();
            }
            if flags & META_GPIO != 0 {
                r.gpio = take(1)?[0];
            }
            let bits = take(2)?;
            let bytes = (u16::from_be_bytes([bits[0], bits[1]]) as usize).div_ceil(8);
            if bytes < 4 {
                return Err(bad("EPC length shorter than PC and CRC"));
            }
            let memory = take(bytes)?;
            let (body, crc) = memory.split_at(bytes - 2);
            if gen2_crc(body).to_be_bytes() != [crc[0], crc[1]] {
                return Err(bad("tag CRC does not match"));
            }
            r.pc = u16::from_be_bytes([body[0], body[1]]);
            let mut at = 2;
            let word = |at: &mut usize| -> Result<u16, WireError> {
                let w = body
                    .get(*at..*at + 2)
                    .ok_or_else(|| bad("an XPC word is cut short"))?;
                *at += 2;
                Ok(u16::from_be_bytes([w[0], w[1]]))
            };
            if r.pc & 0x0200 != 0 {
                let w1 = word(&mut at)?;
                r.xpc.push(w1);
                if w1 & 0x8000 != 0 {
                    r.xpc.push(word(&mut at)?);
                }
            }
            r.epc = body[at..].to_vec();
            records.push(r);
        }
        Ok((flags, records))
    }
}

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
    buf: FrameBuffer,
}

impl Decoder {
    pub fn new(direction: Direction) -> Decoder {
        Decoder {
            direction,
            buf: FrameBuffer::default(),
        }
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.push(bytes);
    }

    /// Drops a partial frame, e.g. after the line has been silent longer than a frame
    /// takes: a corrupt length byte would otherwise hold up the frames behind it.
    pub fn flush_partial(&mut self) {
        self.buf.flush_partial();
    }

    /// Frames or stray bytes skipped because they were corrupt.
    pub fn corrupt(&self) -> u64 {
        self.buf.corrupt
    }

    pub fn next_frame(&mut self) -> Option<Frame> {
        let status_len = match self.direction {
            Direction::HostToReader => 0,
            Direction::ReaderToHost => 2,
        };
        let bytes = self.buf.next(&[HEADER], |b| {
            let Some(&len) = b.get(1) else {
                return Check::Incomplete;
            };
            let total = 3 + status_len + len as usize + 2;
            if b.len() < total {
                return Check::Incomplete;
            }
            let sent = u16::from_be_bytes([b[total - 2], b[total - 1]]);
            if crc(&b[1..total - 2]) == sent {
                Check::Frame(total)
            } else {
                Check::Bad
            }
        })?;
        let body = &bytes[1..bytes.len() - 2];
        let opcode = body[1];
        Some(match self.direction {
            Direction::HostToReader => Frame::Command(Command {
                opcode,
                data: body[2..].to_vec(),
            }),
            Direction::ReaderToHost => Frame::Response(Response {
                opcode,
                status: u16::from_be_bytes([body[2], body[3]]),
                data: body[4..].to_vec(),
            }),
        })
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
        assert_eq!(d.corrupt(), 0);
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
        assert!(d.corrupt() >= 2);
    }

    #[test]
    fn gen2_crc_matches_the_check_value() {
        // CRC-16/GENIBUS check value for "123456789".
        assert_eq!(gen2_crc(b"123456789"), 0xD64E);
    }

    #[test]
    fn tag_buffer_records_round_trip_under_any_flags() {
        let tag = TagRecord {
            read_count: 7,
            rssi_dbm: -48,
            antenna: 3,
            frequency_khz: 915_250,
            timestamp_ms: 1234,
            phase_deg: 90,
            pc: 0x3000,
            epc: vec![0xE2, 0x80, 0x11, 0x70, 0, 0, 0, 0, 0, 0, 0, 1],
            ..TagRecord::default()
        };
        for flags in [0x0000, 0x0007, 0x003F, 0x007F] {
            let mut data = flags_header(flags, 2);
            tag.encode(flags, &mut data);
            tag.encode(flags, &mut data);
            let (got_flags, records) = TagRecord::decode_buffer(&data).unwrap();
            assert_eq!(got_flags, flags);
            assert_eq!(records.len(), 2);
            assert_eq!(records[0].epc, tag.epc);
            assert_eq!(records[0].pc, 0x3000);
            if flags & META_RSSI != 0 {
                assert_eq!(records[1].rssi_dbm, -48);
                assert_eq!(records[1].antenna, 3);
            }
        }
        let mut data = flags_header(0x0007, 1);
        tag.encode(0x0007, &mut data);
        let last = data.len() - 1;
        data[last] ^= 1;
        assert!(
            TagRecord::decode_buffer(&data).is_err(),
            "a bad tag CRC is caught"
        );
        data.truncate(10);
        assert!(TagRecord::decode_buffer(&data).is_err());
    }

    #[test]
    fn records_are_read_in_the_host_library_s_field_order() {
        // One record under every flag the library knows up to GPIO (0x01FF), laid out as
        // TMR_SR_parseMetadataFromMessage reads it: read count 01, RSSI E9 (-23 dBm),
        // antenna 11, frequency 0E 0E 70 (921,200 kHz), timestamp 00 00 00 39, phase 00 AE,
        // protocol 05 (Gen2), data 0010 bits = 2 bytes BE EF, GPIO 03, then the EPC memory:
        // 0080 bits = 16 bytes of PC 3000, EPC E2 00 …, CRC.
        let epc = hex("E2 00 00 15 86 0E 02 68 15 50 7D BB");
        let mut memory = hex("30 00");
        memory.extend(&epc);
        let crc = gen2_crc(&memory).to_be_bytes();
        let mut data =
            hex("01 FF 00 01  01 E9 11 0E 0E 70 00 00 00 39 00 AE 05 00 10 BE EF 03 00 80");
        data.extend(&memory);
        data.extend(crc);
        let (flags, records) = TagRecord::decode_buffer(&data).unwrap();
        assert_eq!(flags, 0x01FF);
        let r = &records[0];
        assert_eq!(
            (
                r.read_count,
                r.rssi_dbm,
                r.antenna,
                r.frequency_khz,
                r.timestamp_ms,
                r.phase_deg
            ),
            (1, -23, 1, 921_200, 0x39, 0xAE)
        );
        assert_eq!((r.data.clone(), r.gpio), (hex("BE EF"), 3));
        assert_eq!((r.pc, r.epc.clone()), (0x3000, epc.clone()));
        // The same record written back is the same bytes.
        let mut again = hex("01 FF 00 01");
        r.encode(0x01FF, &mut again);
        assert_eq!(again, data);
        // Flags the codec does not read are refused, not guessed at (0x0FFF, as the SparkFun
        // library asks, adds fields after GPIO).
        let mut wider = data.clone();
        wider[0] = 0x0F;
        assert!(TagRecord::decode_buffer(&wider).is_err());
    }

    #[test]
    fn an_xpc_word_is_not_part_of_the_epc() {
        // PC 3200: bit 0x0200 says XPC_W1 follows; XPC_W1 8001 has its top bit, so XPC_W2
        // follows it (Gen2 6.3.2.1.2.2, and the Mercury API's parser).
        let epc = hex("E2 80 11 70 00 00 00 00 00 00 00 2A");
        for xpc in [vec![0x0001], vec![0x8001, 0x0002]] {
            let tag = TagRecord {
                pc: 0x3200,
                xpc: xpc.clone(),
                epc: epc.clone(),
                ..TagRecord::default()
            };
            let mut data = flags_header(0x0000, 1);
            tag.encode(0x0000, &mut data);
            let (_, records) = TagRecord::decode_buffer(&data).unwrap();
            assert_eq!(records[0].epc, epc, "the EPC without the XPC words");
            assert_eq!(records[0].xpc, xpc);
        }
    }

    #[test]
    fn a_response_holds_as_many_records_as_fit_in_a_frame() {
        // Read count, RSSI and antenna with EPC-96: 3 + 2 + 2 + 12 + 2 = 21 bytes a record.
        assert_eq!(records_per_response(0x0007, 12), 11);
        let mut data = flags_header(0x0007, 11);
        for _ in 0..11 {
            TagRecord {
                pc: 0x3000,
                epc: vec![0; 12],
                ..TagRecord::default()
            }
            .encode(0x0007, &mut data);
        }
        assert!(data.len() <= 255);
        assert!(
            Response {
                opcode: OP_GET_TAG_BUFFER,
                status: OK,
                data
            }
            .encode()
            .is_ok()
        );
    }

    fn flags_header(flags: u16, count: u8) -> Vec<u8> {
        let mut d = flags.to_be_bytes().to_vec();
        d.extend_from_slice(&[0x00, count]);
        d
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
        assert_eq!(d.corrupt(), 1);
    }
}

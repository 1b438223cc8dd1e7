//! The serial protocol of readers built on the Impinj R2000 chip ("0xA0" protocol of the
//! UHF RFID Reader Serial Interface Protocol), sans-IO.
//!
//! Every packet is `Head(0xA0) Len Address Cmd Data… Check`: `Len` counts the bytes after
//! it (address, command, data, check), and `Check` makes the sum of all bytes zero modulo
//! 256. Commands used here:
//! - `0x74` cmd_set_work_antenna `[AntID]` → `[ErrorCode]` (0x10 = success);
//! - `0x89` cmd_real_time_inventory `[Repeat]` → one packet per tag
//!   `[FreqAnt, PC(2), EPC(n), RSSI]`, then `[AntID, ReadRate(2), TotalRead(4)]` at the end of
//!   the round, or `[ErrorCode]` on failure. `FreqAnt` carries the frequency point in its high
//!   six bits and the antenna (0–3) in its low two; readers with eight ports set the RSSI
//!   byte's top bit for antennas 4–7. RSSI in dBm is the remaining seven bits minus 129.
//! - `0x8B` cmd_customized_session_target_inventory `[Session, Target, Repeat]`: an
//!   inventory in Gen2 session S0–S3 and target A/B, answered like `0x89`;
//! - `0x8A` cmd_fast_switch_ant_inventory `[A, StayA, B, StayB, C, StayC, D, StayD,
//!   Interval, Repeat]`: the reader itself visits up to four antennas in turn (`0xFF`: the
//!   slot is off), `Stay` inventory rounds on each, `Interval` ms of rest between them, the
//!   whole sequence `Repeat` times. Tag packets as for `0x89`; an antenna that is missing
//!   is reported as `[AntID, ErrorCode]` and the others are still read; the end is
//!   `[TotalRead(3), CommandDuration(4)]` (ms), or `[ErrorCode]` on failure;
//! - `0x76` cmd_set_output_power `[dBm]` (one value for every port) → `[ErrorCode]`.

use crate::WireError;
use crate::stream::{Check, FrameBuffer};

pub const HEAD: u8 = 0xA0;
pub const CMD_SET_WORK_ANTENNA: u8 = 0x74;
pub const CMD_GET_WORK_ANTENNA: u8 = 0x75;
pub const CMD_SET_OUTPUT_POWER: u8 = 0x76;
pub const CMD_REAL_TIME_INVENTORY: u8 = 0x89;
pub const CMD_SESSION_INVENTORY: u8 = 0x8B;
pub const CMD_FAST_SWITCH_INVENTORY: u8 = 0x8A;

/// Whether `cmd` is one of the inventories whose replies are tag packets and an end.
pub fn is_inventory(cmd: u8) -> bool {
    matches!(
        cmd,
        CMD_REAL_TIME_INVENTORY | CMD_SESSION_INVENTORY | CMD_FAST_SWITCH_INVENTORY
    )
}

/// The antenna byte of a fast-switch slot that is switched off.
pub const SLOT_OFF: u8 = 0xFF;

/// A fast-switch antenna inventory (`0x8A`, the four-antenna form).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FastSwitch {
    /// Up to four (antenna, rounds to stay on it), visited in this order.
    pub slots: Vec<(u8, u8)>,
    /// Rest between two antennas, ms.
    pub interval_ms: u8,
    /// How many times the whole sequence runs.
    pub repeat: u8,
}

impl FastSwitch {
    /// The command's data: four slots (the unused ones off), interval, repeat.
    pub fn to_packet(&self, address: u8) -> Packet {
        let mut data = Vec::with_capacity(10);
        for i in 0..4 {
            let (antenna, stay) = self.slots.get(i).copied().unwrap_or((SLOT_OFF, 1));
            data.extend_from_slice(&[antenna, stay]);
        }
        data.extend_from_slice(&[self.interval_ms, self.repeat]);
        Packet::new(address, CMD_FAST_SWITCH_INVENTORY, data)
    }

    /// Reads the command's data, as a reader does; slots switched off are left out.
    pub fn parse(data: &[u8]) -> Result<FastSwitch, WireError> {
        let (slots, interval_ms, repeat) = match data {
            [slots @ .., interval_ms, repeat] if data.len() == 10 => (slots, interval_ms, repeat),
            _ => {
                return Err(WireError::Malformed(format!(
                    "R2000 cmd 0x8A: {} data bytes, the four-antenna form has 10",
                    data.len()
                )));
            }
        };
        Ok(FastSwitch {
            slots: slots
                .chunks(2)
                .map(|c| (c[0], c[1]))
                .filter(|(antenna, _)| *antenna != SLOT_OFF)
                .collect(),
            interval_ms: *interval_ms,
            repeat: *repeat,
        })
    }
}

pub const SUCCESS: u8 = 0x10;
pub const FAIL: u8 = 0x11;
pub const ANTENNA_MISSING: u8 = 0x22;
pub const NO_TAG: u8 = 0x36;

/// The check byte: the two's complement of the sum of all other bytes.
pub fn checksum(bytes: &[u8]) -> u8 {
    bytes
        .iter()
        .fold(0u8, |sum, b| sum.wrapping_add(*b))
        .wrapping_neg()
}

/// One packet, either direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    pub address: u8,
    pub cmd: u8,
    pub data: Vec<u8>,
}

impl Packet {
    pub fn new(address: u8, cmd: u8, data: Vec<u8>) -> Packet {
        Packet { address, cmd, data }
    }

    /// The bytes on the wire. Data longer than a packet holds is cut at 252 bytes.
    pub fn encode(&self) -> Vec<u8> {
        let data = &self.data[..self.data.len().min(252)];
        let mut out = Vec::with_capacity(data.len() + 5);
        out.extend_from_slice(&[HEAD, (data.len() + 3) as u8, self.address, self.cmd]);
        out.extend_from_slice(data);
        out.push(checksum(&out));
        out
    }
}

/// Splits a byte stream into packets. Bytes before a head, packets with a wrong check and
/// impossible lengths are skipped (and counted), and decoding resumes at the next head.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: FrameBuffer,
}

impl Decoder {
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.push(bytes);
    }

    /// Drops a partial packet (after the line was silent longer than a packet takes).
    pub fn flush_partial(&mut self) {
        self.buf.flush_partial();
    }

    /// Packets or stray bytes skipped because they were corrupt.
    pub fn corrupt(&self) -> u64 {
        self.buf.corrupt
    }

    /// The next whole packet, if the buffer holds one.
    pub fn next_packet(&mut self) -> Option<Packet> {
        let bytes = self.buf.next(&[HEAD], |b| {
            let Some(&len) = b.get(1) else {
                return Check::Incomplete;
            };
            let total = len as usize + 2;
            if len < 3 {
                Check::Bad
            } else if b.len() < total {
                Check::Incomplete
            } else if checksum(&b[..total - 1]) != b[total - 1] {
                Check::Bad
            } else {
                Check::Frame(total)
            }
        })?;
        Some(Packet {
            address: bytes[2],
            cmd: bytes[3],
            data: bytes[4..bytes.len() - 1].to_vec(),
        })
    }
}

/// One tag packet of a real-time inventory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagPacket {
    /// Antenna, 0-based (0–7).
    pub antenna: u8,
    /// Frequency point (index into the reader's hop table).
    pub frequency: u8,
    pub pc: u16,
    pub epc: Vec<u8>,
    pub rssi_dbm: i16,
}

/// What a reader sends back, as far as stackroom needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// A command's result code (0x10 = success).
    Result {
        cmd: u8,
        code: u8,
    },
    Tag(TagPacket),
    /// End of an inventory round.
    RoundEnd {
        antenna: u8,
        read_rate: u16,
        total_reads: u32,
    },
    /// End of a fast-switch inventory (`0x8A`): every read of the command, and how long
    /// the reader took for it.
    SwitchEnd {
        total_reads: u32,
        duration_ms: u32,
    },
    /// An antenna of a fast-switch inventory could not be read (`0x22`: missing); the
    /// command goes on with the others.
    AntennaFault {
        antenna: u8,
        code: u8,
    },
    /// A packet of a command stackroom does not use.
    Other(Packet),
}

/// The RSSI byte of an antenna and a signal strength.
fn rssi_byte(antenna: u8, dbm: i16) -> u8 {
    let raw = (dbm + 129).clamp(0, 127) as u8;
    raw | if antenna >= 4 { 0x80 } else { 0 }
}

impl Reply {
    /// Reads a packet from a reader.
    pub fn parse(p: &Packet) -> Result<Reply, WireError> {
        let bad = |why: &str| WireError::Malformed(format!("R2000 cmd 0x{:02X}: {why}", p.cmd));
        Ok(match (p.cmd, p.data.len()) {
            (cmd, 1) if is_inventory(cmd) => Reply::Result {
                cmd: p.cmd,
                code: p.data[0],
            },
            (CMD_FAST_SWITCH_INVENTORY, 7) => Reply::SwitchEnd {
                total_reads: u32::from_be_bytes([0, p.data[0], p.data[1], p.data[2]]),
                duration_ms: u32::from_be_bytes([p.data[3], p.data[4], p.data[5], p.data[6]]),
            },
            (CMD_FAST_SWITCH_INVENTORY, 2) => Reply::AntennaFault {
                antenna: p.data[0],
                code: p.data[1],
            },
            (cmd, 7) if is_inventory(cmd) => Reply::RoundEnd {
                antenna: p.data[0],
                read_rate: u16::from_be_bytes([p.data[1], p.data[2]]),
                total_reads: u32::from_be_bytes([p.data[3], p.data[4], p.data[5], p.data[6]]),
            },
            (cmd, n) if is_inventory(cmd) && n >= 4 => {
                let freq_ant = p.data[0];
                let pc = u16::from_be_bytes([p.data[1], p.data[2]]);
                let rssi = p.data[n - 1];
                let epc = p.data[3..n - 1].to_vec();
                // PC bits 15..11 give the EPC length in 16-bit words.
                let words = (pc >> 11) as usize;
                if epc.len() != words * 2 {
                    return Err(bad(&format!(
                        "PC says {words} EPC words, the packet has {} bytes",
                        epc.len()
                    )));
                }
                Reply::Tag(TagPacket {
                    antenna: (freq_ant & 0x03) + if rssi & 0x80 != 0 { 4 } else { 0 },
                    frequency: freq_ant >> 2,
                    pc,
                    epc,
                    rssi_dbm: (rssi & 0x7F) as i16 - 129,
                })
            }
            (cmd, _) if is_inventory(cmd) => return Err(bad("too short")),
            (CMD_SET_WORK_ANTENNA | CMD_SET_OUTPUT_POWER, 1) => Reply::Result {
                cmd: p.cmd,
                code: p.data[0],
            },
            _ => Reply::Other(p.clone()),
        })
    }

    /// The packet a reader sends for this reply (tags and round ends of a 0x89 inventory).
    pub fn to_packet(&self, address: u8) -> Packet {
        self.to_packet_of(CMD_REAL_TIME_INVENTORY, address)
    }

    /// The packet a reader sends for this reply to inventory command `inventory`.
    pub fn to_packet_of(&self, inventory: u8, address: u8) -> Packet {
        match self {
            Reply::Result { cmd, code } => Packet::new(address, *cmd, vec![*code]),
            Reply::Tag(t) => {
                let mut data = vec![(t.frequency << 2) | (t.antenna & 0x03)];
                data.extend_from_slice(&t.pc.to_be_bytes());
                data.extend_from_slice(&t.epc);
                data.push(rssi_byte(t.antenna, t.rssi_dbm));
                Packet::new(address, inventory, data)
            }
            Reply::RoundEnd {
                antenna,
                read_rate,
                total_reads,
            } => {
                let mut data = vec![*antenna];
                data.extend_from_slice(&read_rate.to_be_bytes());
                data.extend_from_slice(&total_reads.to_be_bytes());
                Packet::new(address, inventory, data)
            }
            Reply::SwitchEnd {
                total_reads,
                duration_ms,
            } => {
                let mut data = total_reads.to_be_bytes()[1..].to_vec();
                data.extend_from_slice(&duration_ms.to_be_bytes());
                Packet::new(address, inventory, data)
            }
            Reply::AntennaFault { antenna, code } => {
                Packet::new(address, inventory, vec![*antenna, *code])
            }
            Reply::Other(p) => p.clone(),
        }
    }
}

/// The PC word of an EPC of `bytes` bytes (length in words, no user memory, no XPC).
pub fn pc_for(epc_bytes: usize) -> u16 {
    ((epc_bytes / 2) as u16) << 11
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(text: &str) -> Vec<u8> {
        text.split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect()
    }

    // Frames as published for this protocol (vendor manual examples and captures).
    const SET_ANTENNA_0: &str = "A0 04 01 74 00 E7";
    const SET_ANTENNA_OK: &str = "A0 04 01 74 10 D7";
    const INVENTORY: &str = "A0 04 01 89 01 D1";
    const TAG_A: &str = "A0 13 01 89 8C 30 00 30 08 33 B2 DD D9 01 40 00 00 00 01 37 BB";
    const TAG_B: &str = "A0 13 01 89 04 30 00 E2 00 30 16 66 13 01 21 15 50 74 EF 45 BF";
    const ROUND_END: &str = "A0 0A 01 89 00 00 11 00 00 00 05 B6";

    #[test]
    fn published_host_commands_encode_byte_for_byte() {
        assert_eq!(
            Packet::new(1, CMD_SET_WORK_ANTENNA, vec![0]).encode(),
            hex(SET_ANTENNA_0)
        );
        assert_eq!(
            Packet::new(1, CMD_REAL_TIME_INVENTORY, vec![1]).encode(),
            hex(INVENTORY)
        );
    }

    #[test]
    fn published_reader_packets_decode() {
        let mut d = Decoder::default();
        for frame in [SET_ANTENNA_OK, TAG_A, TAG_B, ROUND_END] {
            d.push(&hex(frame));
        }
        let replies: Vec<Reply> = std::iter::from_fn(|| d.next_packet())
            .map(|p| Reply::parse(&p).unwrap())
            .collect();
        assert_eq!(
            replies[0],
            Reply::Result {
                cmd: 0x74,
                code: SUCCESS
            }
        );
        let Reply::Tag(a) = &replies[1] else {
            panic!("{:?}", replies[1])
        };
        assert_eq!(a.antenna, 0);
        assert_eq!(a.frequency, 0x8C >> 2);
        assert_eq!(a.pc, 0x3000);
        assert_eq!(a.epc, hex("30 08 33 B2 DD D9 01 40 00 00 00 01"));
        assert_eq!(a.rssi_dbm, 0x37 - 129);
        let Reply::Tag(b) = &replies[2] else { panic!() };
        assert_eq!(b.epc, hex("E2 00 30 16 66 13 01 21 15 50 74 EF"));
        assert_eq!(b.frequency, 1);
        assert_eq!(
            replies[3],
            Reply::RoundEnd {
                antenna: 0,
                read_rate: 0x11,
                total_reads: 5
            }
        );
        assert_eq!(d.corrupt(), 0);
    }

    #[test]
    fn our_reader_packets_equal_the_published_ones() {
        let mut d = Decoder::default();
        for frame in [TAG_A, ROUND_END, SET_ANTENNA_OK] {
            d.push(&hex(frame));
            let p = d.next_packet().unwrap();
            assert_eq!(Reply::parse(&p).unwrap().to_packet(1).encode(), hex(frame));
        }
    }

    #[test]
    fn antennas_four_to_seven_ride_on_the_rssi_bit() {
        let tag = TagPacket {
            antenna: 6,
            frequency: 3,
            pc: pc_for(12),
            epc: vec![0xE2; 12],
            rssi_dbm: -60,
        };
        let bytes = Reply::Tag(tag.clone()).to_packet(1).encode();
        let mut d = Decoder::default();
        d.push(&bytes);
        assert_eq!(
            Reply::parse(&d.next_packet().unwrap()).unwrap(),
            Reply::Tag(tag)
        );
    }

    #[test]
    fn garbage_and_broken_packets_are_skipped_and_counted() {
        let mut stream = hex("00 FF A0 02 13");
        stream.extend(hex(TAG_A));
        let mut broken = hex(TAG_B);
        broken[10] ^= 0x55; // bad check
        stream.extend(broken);
        stream.extend(hex(ROUND_END));
        let mut d = Decoder::default();
        // Fed one byte at a time, as a serial line delivers it.
        let mut packets = Vec::new();
        for b in stream {
            d.push(&[b]);
            while let Some(p) = d.next_packet() {
                packets.push(p);
            }
        }
        assert_eq!(packets.len(), 2, "{packets:?}");
        assert_eq!(packets[0].encode(), hex(TAG_A));
        assert_eq!(packets[1].encode(), hex(ROUND_END));
        assert!(d.corrupt() >= 2);
    }

    #[test]
    fn a_session_inventory_is_answered_like_a_real_time_one() {
        let mut d = Decoder::default();
        d.push(&hex(TAG_A));
        let real_time = d.next_packet().unwrap();
        let session = Packet::new(1, CMD_SESSION_INVENTORY, real_time.data.clone());
        let (a, b) = (
            Reply::parse(&real_time).unwrap(),
            Reply::parse(&session).unwrap(),
        );
        assert!(matches!(&a, Reply::Tag(_)));
        assert_eq!(a, b);
        assert_eq!(b.to_packet_of(CMD_SESSION_INVENTORY, 1), session);
        let power = Packet::new(1, CMD_SET_OUTPUT_POWER, vec![SUCCESS]);
        assert_eq!(
            Reply::parse(&power).unwrap(),
            Reply::Result {
                cmd: CMD_SET_OUTPUT_POWER,
                code: SUCCESS
            }
        );
    }

    // A host frame for four antennas, one round each, no rest, once, as host programs
    // for this protocol send it (the check byte computed by the protocol's rule).
    const FAST_SWITCH_FOUR: &str = "A0 0D 01 8A 00 01 01 01 02 01 03 01 00 01 BD";

    #[test]
    fn a_fast_switch_inventory_encodes_and_reads_back() {
        let command = FastSwitch {
            slots: vec![(0, 1), (1, 1), (2, 1), (3, 1)],
            interval_ms: 0,
            repeat: 1,
        };
        let packet = command.to_packet(1);
        assert_eq!(packet.encode(), hex(FAST_SWITCH_FOUR));
        assert_eq!(FastSwitch::parse(&packet.data).unwrap(), command);
        let two = FastSwitch {
            slots: vec![(37, 3), (38, 3)],
            interval_ms: 5,
            repeat: 2,
        };
        let data = two.to_packet(1).data;
        assert_eq!(data, vec![37, 3, 38, 3, 0xFF, 1, 0xFF, 1, 5, 2]);
        assert_eq!(FastSwitch::parse(&data).unwrap(), two);
        assert!(FastSwitch::parse(&data[..9]).is_err());
        assert!(FastSwitch::parse(&[]).is_err());
    }

    #[test]
    fn a_fast_switch_answer_ends_with_reads_and_duration_and_names_a_missing_antenna() {
        // TotalRead 0x000105 = 261, CommandDuration 0x000001F4 = 500 ms.
        let end = Packet::new(1, CMD_FAST_SWITCH_INVENTORY, hex("00 01 05 00 00 01 F4"));
        let end_reply = Reply::parse(&end).unwrap();
        assert_eq!(
            end_reply,
            Reply::SwitchEnd {
                total_reads: 261,
                duration_ms: 500
            }
        );
        assert_eq!(end_reply.to_packet_of(CMD_FAST_SWITCH_INVENTORY, 1), end);
        let fault = Packet::new(1, CMD_FAST_SWITCH_INVENTORY, vec![2, ANTENNA_MISSING]);
        assert_eq!(
            Reply::parse(&fault).unwrap(),
            Reply::AntennaFault {
                antenna: 2,
                code: ANTENNA_MISSING
            }
        );
        // Its tag packets are those of 0x89.
        let mut d = Decoder::default();
        d.push(&hex(TAG_A));
        let tag = d.next_packet().unwrap();
        let switched = Packet::new(1, CMD_FAST_SWITCH_INVENTORY, tag.data.clone());
        assert_eq!(
            Reply::parse(&switched).unwrap(),
            Reply::parse(&tag).unwrap()
        );
    }

    #[test]
    fn a_tag_packet_whose_pc_disagrees_is_refused() {
        let mut p = Packet::new(1, CMD_REAL_TIME_INVENTORY, hex("8C 30 00 30 08 33 B2 37"));
        assert!(Reply::parse(&p).is_err());
        p.data = vec![1, 2];
        assert!(Reply::parse(&p).is_err());
    }
}

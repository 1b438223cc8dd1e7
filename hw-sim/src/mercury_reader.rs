//! A simulated ThingMagic Mercury reader (M6e family) on a serial line.
//!
//! It answers Get Version (0x03), Boot Firmware (0x04), Get/Set Tag Protocol (0x63/0x93),
//! Set Region (0x97), Set Read TX Power (0x92, moves every RSSI with it), Set Protocol
//! Parameter (0x9B, Gen2 session), Set Antenna Port (0x91), Read Tag Multiple (0x22, timeout
//! form), Get Tag Buffer (0x29) and Clear Tag Buffer (0x2A). Reads accumulate in the tag
//! buffer, one record per tag and antenna with its read count and best RSSI, until the host
//! clears it, as on the real module. The buffer has a read and a write index: each Get Tag
//! Buffer with metadata flags answers with one response holding as many records as fit in a
//! frame, from the read index on, and moves it; without arguments it answers both indexes
//! (the vendor library's "tags remaining"). A tag with XPC words sends them after its PC.
//! Unknown opcodes get FAULT_INVALID_OPCODE.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use stackroom_wire::mercury::{self, Command, Decoder, Direction, Frame, Response, TagRecord};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::clock::Clock;
use crate::rf::Radio;
use crate::world::{World, epc_bytes};

/// Simulated time of one inventory round.
const ROUND: Duration = Duration::from_millis(25);
/// Data bytes of one response frame.
const FRAME_DATA: usize = 255;

/// One simulated Mercury reader.
pub struct MercuryReader {
    pub id: String,
    pub ports: u8,
    pub antennas: HashMap<u16, usize>,
    pub world: Arc<Mutex<World>>,
    pub radio: Radio,
    pub online: Arc<AtomicBool>,
    pub clock: Clock,
    antenna: u8,
    protocol: u16,
    /// The tag buffer in the order tags were first read; (EPC, antenna) → its record.
    buffer: Vec<TagRecord>,
    index: HashMap<(String, u8), usize>,
    /// The next record Get Tag Buffer gives.
    read_index: usize,
}

impl MercuryReader {
    pub fn new(
        id: String,
        ports: u8,
        antennas: HashMap<u16, usize>,
        world: Arc<Mutex<World>>,
        radio: Radio,
        online: Arc<AtomicBool>,
        clock: Clock,
    ) -> MercuryReader {
        MercuryReader {
            id,
            ports,
            antennas,
            world,
            radio,
            online,
            clock,
            antenna: 1,
            protocol: 0x0005,
            buffer: Vec::new(),
            index: HashMap::new(),
            read_index: 0,
        }
    }

    /// Answers one command; the duration is the simulated time it takes.
    pub fn handle(&mut self, c: &Command) -> (Vec<Response>, Duration) {
        let ok = |data: Vec<u8>| Response {
            opcode: c.opcode,
            status: mercury::OK,
            data,
        };
        let fault = |status| Response {
            opcode: c.opcode,
            status,
            data: vec![],
        };
        let one = |r| (vec![r], Duration::ZERO);
        match (c.opcode, c.data.as_slice()) {
            (mercury::OP_GET_VERSION, []) => one(ok(vec![
                0x14, 0x03, 0x06, 0x00, // bootloader
                0x18, 0x00, 0x00, 0x01, // hardware: M6e
                0x20, 0x24, 0x01, 0x15, // firmware date
                0x01, 0x09, 0x00, 0x02, // firmware version
                0x00, 0x00, 0x00, 0x10, // protocols: Gen2
            ])),
            (mercury::OP_BOOT_FIRMWARE, []) => one(ok(vec![])),
            (mercury::OP_GET_TAG_PROTOCOL, []) => one(ok(self.protocol.to_be_bytes().to_vec())),
            (mercury::OP_SET_TAG_PROTOCOL, [hi, lo]) => {
                self.protocol = u16::from_be_bytes([*hi, *lo]);
                one(ok(vec![]))
            }
            (mercury::OP_SET_REGION, [_]) => one(ok(vec![])),
            (mercury::OP_SET_READ_TX_POWER, [hi, lo]) => {
                let centi = u16::from_be_bytes([*hi, *lo]);
                if centi > 3150 {
                    one(fault(mercury::FAULT_INVALID_PARAMETER_VALUE))
                } else {
                    self.radio.set_power_dbm(centi as f64 / 100.0);
                    one(ok(vec![]))
                }
            }
            (
                mercury::OP_SET_PROTOCOL_PARAM,
                [mercury::PROTOCOL_GEN2, mercury::GEN2_SESSION, 0..=3],
            ) => one(ok(vec![])),
            (mercury::OP_SET_ANTENNA_PORT, [tx] | [tx, _]) => {
                if *tx == 0 || *tx > self.ports {
                    one(fault(mercury::FAULT_INVALID_PARAMETER_VALUE))
                } else {
                    self.antenna = *tx;
                    one(ok(vec![]))
                }
            }
            (mercury::OP_READ_TAG_MULTIPLE, [hi, lo]) => {
                let timeout = Duration::from_millis(u16::from_be_bytes([*hi, *lo]) as u64);
                let found = self.read(timeout);
                if found == 0 {
                    (vec![fault(mercury::FAULT_NO_TAGS_FOUND)], timeout)
                } else {
                    (vec![ok(vec![found.min(255) as u8])], timeout)
                }
            }
            (mercury::OP_GET_TAG_BUFFER, []) => {
                let mut data = (self.read_index as u16).to_be_bytes().to_vec();
                data.extend((self.buffer.len() as u16).to_be_bytes());
                one(ok(data))
            }
            (mercury::OP_GET_TAG_BUFFER, [fh, fl, _options]) => {
                let flags = u16::from_be_bytes([*fh, *fl]);
                if flags & !mercury::META_KNOWN != 0 {
                    return one(fault(mercury::FAULT_INVALID_PARAMETER_VALUE));
                }
                if self.read_index >= self.buffer.len() {
                    return one(fault(mercury::FAULT_NO_TAGS_FOUND));
                }
                // As many whole records as fit in one frame, from the read index on.
                let mut records = Vec::new();
                let mut count = 0u8;
                while let Some(r) = self.buffer.get(self.read_index) {
                    let mut one = Vec::new();
                    r.encode(flags, &mut one);
                    if 4 + records.len() + one.len() > FRAME_DATA || count == u8::MAX {
                        break;
                    }
                    records.extend(one);
                    count += 1;
                    self.read_index += 1;
                }
                let mut data = vec![*fh, *fl, 0x00, count];
                data.extend(records);
                one(ok(data))
            }
            (mercury::OP_CLEAR_TAG_BUFFER, []) => {
                self.buffer.clear();
                self.index.clear();
                self.read_index = 0;
                one(ok(vec![]))
            }
            (
                mercury::OP_GET_VERSION
                | mercury::OP_BOOT_FIRMWARE
                | mercury::OP_GET_TAG_PROTOCOL
                | mercury::OP_SET_TAG_PROTOCOL
                | mercury::OP_SET_REGION
                | mercury::OP_SET_READ_TX_POWER
                | mercury::OP_SET_PROTOCOL_PARAM
                | mercury::OP_SET_ANTENNA_PORT
                | mercury::OP_READ_TAG_MULTIPLE
                | mercury::OP_GET_TAG_BUFFER
                | mercury::OP_CLEAR_TAG_BUFFER,
                _,
            ) => one(fault(mercury::FAULT_INVALID_PARAMETER_VALUE)),
            _ => one(fault(mercury::FAULT_INVALID_OPCODE)),
        }
    }

    /// Inventory rounds on the current antenna for `timeout`; returns the tags in the buffer.
    fn read(&mut self, timeout: Duration) -> usize {
        let port = self.antenna as u16;
        let Some(&shelf) = self.antennas.get(&port) else {
            return self.buffer.len();
        };
        let world = self.world.clone();
        let Ok(world) = world.lock() else {
            return self.buffer.len();
        };
        let rounds = (timeout.as_millis() / ROUND.as_millis()).max(1) as u32;
        for round in 0..rounds {
            for o in self.radio.inventory(&world, shelf, port) {
                let rssi = o.rssi_dbm.clamp(-128, 0) as i8;
                let key = (o.epc.clone(), self.antenna);
                let at = match self.index.get(&key) {
                    Some(&at) => at,
                    None => {
                        let epc = epc_bytes(&o.epc);
                        let xpc = world.xpc(&o.epc).to_vec();
                        // The PC's length counts EPC words; bit 0x0200 says an XPC follows.
                        let pc = ((epc.len() / 2) as u16) << 11
                            | if xpc.is_empty() { 0 } else { 0x0200 };
                        self.buffer.push(TagRecord {
                            read_count: 0,
                            rssi_dbm: rssi,
                            antenna: self.antenna,
                            frequency_khz: o.frequency_khz,
                            timestamp_ms: round * ROUND.as_millis() as u32,
                            phase_deg: o.phase_deg,
                            pc,
                            xpc,
                            epc,
                            ..TagRecord::default()
                        });
                        self.index.insert(key, self.buffer.len() - 1);
                        self.buffer.len() - 1
                    }
                };
                let record = &mut self.buffer[at];
                record.read_count = record.read_count.saturating_add(1);
                if rssi > record.rssi_dbm {
                    record.rssi_dbm = rssi;
                }
            }
        }
        self.buffer.len()
    }

    /// Serves the reader on the serial device at `path` until the task is dropped.
    pub async fn serve(mut self, path: String, baud: u32) {
        loop {
            let mut line = match tokio_serial::SerialStream::open(&tokio_serial::new(&path, baud)) {
                Ok(line) => line,
                Err(e) => {
                    tracing::warn!(error = %e, %path, reader = %self.id, "cannot open the simulated line");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let mut decoder = Decoder::new(Direction::HostToReader);
            let mut buf = [0u8; 512];
            'line: loop {
                let n = match line.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                decoder.push(&buf[..n]);
                while let Some(frame) = decoder.next_frame() {
                    let Frame::Command(command) = frame else {
                        continue;
                    };
                    if !self.online.load(Ordering::Relaxed) {
                        continue;
                    }
                    let (responses, takes) = self.handle(&command);
                    self.clock.sleep(takes).await;
                    for r in responses {
                        let Ok(bytes) = r.encode() else { continue };
                        if line.write_all(&bytes).await.is_err() {
                            break 'line;
                        }
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

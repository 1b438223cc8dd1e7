//! A simulated R2000 reader module on a serial line ("0xA0" protocol).
//!
//! It answers cmd_set_work_antenna (0x74), cmd_get_work_antenna (0x75),
//! cmd_set_output_power (0x76, moves every RSSI with it), cmd_real_time_inventory (0x89)
//! and cmd_customized_session_target_inventory (0x8B): for each round it reports every tag
//! the radio heard on the work antenna once, then the round's end with the read count. A port with no antenna
//! answers antenna_missing_error (0x22), as real modules do. Offline, it answers nothing.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use stackroom_wire::r2000::{self, Decoder, Packet, Reply, TagPacket};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::clock::Clock;
use crate::rf::Radio;
use crate::world::{World, epc_bytes};

/// One simulated R2000 reader.
pub struct R2000Reader {
    pub id: String,
    pub address: u8,
    pub ports: u8,
    /// Antenna port (1-based) → shelf index in the world.
    pub antennas: HashMap<u16, usize>,
    pub world: Arc<Mutex<World>>,
    pub radio: Radio,
    pub online: Arc<AtomicBool>,
    pub clock: Clock,
}

/// Simulated time one inventory round takes: a fixed part and a part per tag heard.
fn round_time(tags: usize) -> Duration {
    Duration::from_millis(25 + 2 * tags as u64)
}

impl R2000Reader {
    /// Answers one host packet with the packets to send back.
    pub fn handle(&mut self, work_antenna: &mut u8, p: &Packet) -> Vec<(Packet, Duration)> {
        let reply = |cmd, code| {
            (
                Reply::Result { cmd, code }.to_packet(self.address),
                Duration::ZERO,
            )
        };
        match (p.cmd, p.data.as_slice()) {
            (r2000::CMD_SET_WORK_ANTENNA, [ant]) => {
                if *ant < self.ports {
                    *work_antenna = *ant;
                    vec![reply(p.cmd, r2000::SUCCESS)]
                } else {
                    vec![reply(p.cmd, r2000::FAIL)]
                }
            }
            (r2000::CMD_GET_WORK_ANTENNA, []) => {
                vec![(
                    Packet::new(self.address, p.cmd, vec![*work_antenna]),
                    Duration::ZERO,
                )]
            }
            (r2000::CMD_SET_OUTPUT_POWER, [dbm]) if *dbm <= 33 => {
                self.radio.set_power_dbm(*dbm as f64);
                vec![reply(p.cmd, r2000::SUCCESS)]
            }
            (r2000::CMD_REAL_TIME_INVENTORY, [repeat])
            | (r2000::CMD_SESSION_INVENTORY, [0..=3, 0 | 1, repeat]) => {
                let port = *work_antenna as u16 + 1;
                let Some(&shelf) = self.antennas.get(&port) else {
                    return vec![reply(p.cmd, r2000::ANTENNA_MISSING)];
                };
                let mut out = Vec::new();
                let mut total = 0u32;
                let mut elapsed = Duration::ZERO;
                // The packets of a round are spread over its time: each waits one step after
                // the one before, the round end the last step.
                let mut step = Duration::ZERO;
                let world = self.world.clone();
                let Ok(world) = world.lock() else {
                    return vec![reply(p.cmd, r2000::FAIL)];
                };
                for _ in 0..(*repeat).max(1) {
                    // One packet per tag per round, the strongest read of it.
                    let mut best: BTreeMap<String, (i16, u32)> = BTreeMap::new();
                    for o in self.radio.inventory(&world, shelf, port) {
                        total += 1;
                        let e = best.entry(o.epc).or_insert((o.rssi_dbm, o.frequency_khz));
                        if o.rssi_dbm > e.0 {
                            *e = (o.rssi_dbm, o.frequency_khz);
                        }
                    }
                    let dt = round_time(best.len());
                    elapsed += dt;
                    step = dt / (best.len() as u32 + 1);
                    for (epc, (rssi, khz)) in best {
                        let epc = epc_bytes(&epc);
                        let tag = TagPacket {
                            antenna: *work_antenna,
                            frequency: ((khz.saturating_sub(902_750)) / 500).min(63) as u8,
                            pc: r2000::pc_for(epc.len()),
                            epc,
                            rssi_dbm: rssi,
                        };
                        out.push((Reply::Tag(tag).to_packet_of(p.cmd, self.address), step));
                    }
                }
                let secs = elapsed.as_secs_f64().max(0.001);
                out.push((
                    Reply::RoundEnd {
                        antenna: *work_antenna,
                        read_rate: (total as f64 / secs).min(65535.0) as u16,
                        total_reads: total,
                    }
                    .to_packet_of(p.cmd, self.address),
                    step,
                ));
                out
            }
            _ => vec![reply(p.cmd, r2000::FAIL)],
        }
    }

    /// Serves the reader on the serial device at `path` until the task is dropped.
    pub async fn serve(mut self, path: String, baud: u32) {
        let mut work_antenna = 0u8;
        loop {
            let mut line = match tokio_serial::SerialStream::open(&tokio_serial::new(&path, baud)) {
                Ok(line) => line,
                Err(e) => {
                    tracing::warn!(error = %e, %path, "cannot open the simulated line");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let mut decoder = Decoder::default();
            let mut buf = [0u8; 512];
            loop {
                let n = match line.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                decoder.push(&buf[..n]);
                while let Some(packet) = decoder.next_packet() {
                    if !self.online.load(Ordering::Relaxed) {
                        continue;
                    }
                    if packet.address != self.address && packet.address != 0xFF {
                        continue;
                    }
                    for (answer, after) in self.handle(&mut work_antenna, &packet) {
                        self.clock.sleep(after).await;
                        if line.write_all(&answer.encode()).await.is_err() {
                            break;
                        }
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

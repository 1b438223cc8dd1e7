//! A simulated R2000 reader module on a serial line ("0xA0" protocol).
//!
//! It answers cmd_set_work_antenna (0x74), cmd_get_work_antenna (0x75),
//! cmd_set_output_power (0x76, moves every RSSI with it), cmd_real_time_inventory (0x89),
//! cmd_fast_switch_ant_inventory (0x8A) and cmd_customized_session_target_inventory
//! (0x8B). In each round it reports every tag the radio heard on the antenna once, then the
//! round's end with the read count; 0x8A visits its antennas in turn, `Stay` rounds each,
//! and ends with the reads and the command's duration. 0x89 and 0x8A are the firmware's
//! own inventories, which toggle the target between rounds, so every tag in the field may
//! answer in every round; 0x8B asks for a session and a target, and tags keep their Gen2
//! inventoried flags ([`crate::gen2`]): a tag read in S1 stays quiet for its persistence
//! time, on every antenna. A port with no antenna answers antenna_missing_error (0x22), as
//! real modules do. Offline, it answers nothing.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use stackroom_wire::r2000::{self, Decoder, FastSwitch, Packet, Reply, TagPacket};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::clock::Clock;
use crate::gen2::{Sessions, Target};
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
    /// The tags' Gen2 inventoried flags.
    pub sessions: Sessions,
}

/// Simulated time one inventory round takes: a fixed part and a part per tag heard.
fn round_time(tags: usize) -> Duration {
    Duration::from_millis(25 + 2 * tags as u64)
}

/// What one command sends back, and the simulated time it takes.
struct Answer {
    /// Each packet with the simulated time since the one before.
    packets: Vec<(Packet, Duration)>,
    reads: u32,
    took: Duration,
    /// Simulated time between the last packet and the end.
    tail: Duration,
}

impl R2000Reader {
    /// Answers one host packet with the packets to send back; `now` is the simulated time
    /// the command arrives at (the tags' session flags live in it).
    pub fn handle(
        &mut self,
        work_antenna: &mut u8,
        p: &Packet,
        now: Duration,
    ) -> Vec<(Packet, Duration)> {
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
            (r2000::CMD_REAL_TIME_INVENTORY, [repeat]) => {
                self.inventory(p.cmd, *work_antenna, None, *repeat, now)
            }
            (r2000::CMD_SESSION_INVENTORY, [session @ 0..=3, target @ (0 | 1), repeat]) => {
                let target = Target::from_byte(*target).map(|t| (*session, t));
                self.inventory(p.cmd, *work_antenna, target, *repeat, now)
            }
            (r2000::CMD_FAST_SWITCH_INVENTORY, data) => match FastSwitch::parse(data) {
                Ok(command) if command.slots.iter().all(|(a, _)| *a < self.ports) => {
                    self.fast_switch(&command, now)
                }
                _ => vec![reply(p.cmd, r2000::FAIL)],
            },
            _ => vec![reply(p.cmd, r2000::FAIL)],
        }
    }

    /// A 0x89 or 0x8B inventory: `repeat` rounds on the work antenna, then the round end.
    fn inventory(
        &mut self,
        cmd: u8,
        antenna: u8,
        session: Option<(u8, Target)>,
        repeat: u8,
        now: Duration,
    ) -> Vec<(Packet, Duration)> {
        let Some(mut answer) = self.rounds(cmd, antenna, session, repeat.max(1), now) else {
            return vec![(
                Reply::Result {
                    cmd,
                    code: r2000::ANTENNA_MISSING,
                }
                .to_packet(self.address),
                Duration::ZERO,
            )];
        };
        // The carrier stops with the command: the tags lose power.
        self.sessions.field_off(now + answer.took);
        let secs = answer.took.as_secs_f64().max(0.001);
        answer.packets.push((
            Reply::RoundEnd {
                antenna,
                read_rate: (answer.reads as f64 / secs).min(65535.0) as u16,
                total_reads: answer.reads,
            }
            .to_packet_of(cmd, self.address),
            answer.tail,
        ));
        answer.packets
    }

    /// A 0x8A inventory: each slot's antenna for its stay, a rest between antennas, the
    /// whole sequence `repeat` times; then the reads and the duration.
    fn fast_switch(&mut self, command: &FastSwitch, now: Duration) -> Vec<(Packet, Duration)> {
        let cmd = r2000::CMD_FAST_SWITCH_INVENTORY;
        let rest = Duration::from_millis(u64::from(command.interval_ms));
        let mut out: Vec<(Packet, Duration)> = Vec::new();
        let mut reads = 0;
        let mut took = Duration::ZERO;
        // Time owed before the next packet (the end of the last antenna's rounds, a rest).
        let mut owed = Duration::ZERO;
        for _ in 0..command.repeat.max(1) {
            for &(antenna, stay) in &command.slots {
                match self.rounds(cmd, antenna, None, stay.max(1), now + took) {
                    Some(mut answer) => {
                        if let Some(first) = answer.packets.first_mut() {
                            first.1 += std::mem::take(&mut owed);
                        }
                        out.extend(answer.packets);
                        reads += answer.reads;
                        took += answer.took;
                        owed += answer.tail;
                    }
                    None => out.push((
                        Reply::AntennaFault {
                            antenna,
                            code: r2000::ANTENNA_MISSING,
                        }
                        .to_packet_of(cmd, self.address),
                        std::mem::take(&mut owed),
                    )),
                }
                // The multiplexer switches: the field moves to the next antenna.
                self.sessions.field_off(now + took);
                owed += rest;
                took += rest;
            }
        }
        out.push((
            Reply::SwitchEnd {
                total_reads: reads,
                duration_ms: took.as_millis().min(u32::MAX as u128) as u32,
            }
            .to_packet_of(cmd, self.address),
            owed,
        ));
        out
    }

    /// `rounds` inventory rounds on `antenna` (0-based) from simulated time `now`: the tag
    /// packets spread over the rounds' time; `None` if the port has no antenna.
    fn rounds(
        &mut self,
        cmd: u8,
        antenna: u8,
        session: Option<(u8, Target)>,
        rounds: u8,
        now: Duration,
    ) -> Option<Answer> {
        let port = antenna as u16 + 1;
        let shelf = *self.antennas.get(&port)?;
        let world = self.world.clone();
        let world = world.lock().ok()?;
        let mut answer = Answer {
            packets: Vec::new(),
            reads: 0,
            took: Duration::ZERO,
            tail: Duration::ZERO,
        };
        for _ in 0..rounds {
            let at = now + answer.took;
            // One packet per tag per round, the strongest read of it; a tag whose session
            // flag is not the target does not take part.
            let mut best: BTreeMap<String, (i16, u32)> = BTreeMap::new();
            for o in self.radio.inventory(&world, shelf, port) {
                if let Some((s, target)) = session
                    && !self.sessions.answers(&o.epc, s, target, at)
                {
                    continue;
                }
                answer.reads += 1;
                let e = best.entry(o.epc).or_insert((o.rssi_dbm, o.frequency_khz));
                if o.rssi_dbm > e.0 {
                    *e = (o.rssi_dbm, o.frequency_khz);
                }
            }
            let dt = round_time(best.len());
            // The packets of a round are spread over its time, the last step after them.
            let step = dt / (best.len() as u32 + 1);
            for (epc, (rssi, khz)) in best {
                if let Some((s, _)) = session {
                    self.sessions.read(&epc, s, at);
                }
                let epc = epc_bytes(&epc);
                let tag = TagPacket {
                    antenna,
                    frequency: ((khz.saturating_sub(902_750)) / 500).min(63) as u8,
                    pc: r2000::pc_for(epc.len()),
                    epc,
                    rssi_dbm: rssi,
                };
                let wait = std::mem::take(&mut answer.tail) + step;
                answer
                    .packets
                    .push((Reply::Tag(tag).to_packet_of(cmd, self.address), wait));
            }
            answer.tail += step;
            answer.took += dt;
        }
        Some(answer)
    }

    /// Serves the reader on the serial device at `path` until the task is dropped.
    pub async fn serve(mut self, path: String, baud: u32) {
        let mut work_antenna = 0u8;
        // The tags' session flags count simulated time from here.
        let origin = tokio::time::Instant::now();
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
                    let now = Duration::from_secs_f64(self.clock.simulated(origin.elapsed()));
                    // Each packet is due at its time from the command's start, whatever
                    // the timer's rounding and the writes took before it.
                    let mut due = tokio::time::Instant::now();
                    for (answer, after) in self.handle(&mut work_antenna, &packet, now) {
                        due += self.clock.real(after);
                        tokio::time::sleep_until(due).await;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rf::RfParams;
    use crate::world::tests::shelves;

    /// A reader whose ports 1–4 face the first four shelves, five tags on each; port 5 has
    /// no antenna.
    fn reader(rf: RfParams) -> R2000Reader {
        let mut world = World::new(shelves());
        for (i, s) in shelves().iter().enumerate() {
            for k in 0..5 {
                let epc = format!("E280{i:04X}{k:04X}");
                world
                    .place_box(&format!("B-{i}-{k}"), &epc, Some(&s.address))
                    .unwrap();
            }
        }
        R2000Reader {
            id: "r".into(),
            address: 1,
            ports: 8,
            antennas: (0..4).map(|i| (i as u16 + 1, i)).collect(),
            world: Arc::new(Mutex::new(world)),
            radio: Radio::new(3, rf),
            online: Arc::new(AtomicBool::new(true)),
            clock: Clock::new(1.0),
            sessions: Sessions::default(),
        }
    }

    fn replies(out: &[(Packet, Duration)]) -> Vec<Reply> {
        out.iter().map(|(p, _)| Reply::parse(p).unwrap()).collect()
    }

    fn tags(out: &[(Packet, Duration)]) -> Vec<TagPacket> {
        replies(out)
            .into_iter()
            .filter_map(|r| match r {
                Reply::Tag(t) => Some(t),
                _ => None,
            })
            .collect()
    }

    const CERTAIN: RfParams = RfParams {
        read_probability: 1.0,
        rssi_mean_dbm: -52.0,
        rssi_spread_db: 4.0,
        cross_read_probability: 0.0,
        cross_read_drop_db: 12.0,
    };

    #[test]
    fn a_fast_switch_visits_its_antennas_in_turn_and_names_the_missing_one() {
        let mut r = reader(CERTAIN);
        let command = FastSwitch {
            slots: vec![(0, 2), (4, 1), (2, 1)],
            interval_ms: 5,
            repeat: 1,
        };
        let out = r.handle(&mut 0, &command.to_packet(1), Duration::ZERO);
        let replies = replies(&out);
        // Antenna 0 twice (two rounds), the missing antenna 4, antenna 2 once.
        let antennas: Vec<u8> = tags(&out).iter().map(|t| t.antenna).collect();
        assert_eq!(antennas.iter().filter(|a| **a == 0).count(), 10);
        assert_eq!(antennas.iter().filter(|a| **a == 2).count(), 5);
        assert_eq!(antennas.len(), 15);
        assert!(replies.contains(&Reply::AntennaFault {
            antenna: 4,
            code: r2000::ANTENNA_MISSING
        }));
        let Some(Reply::SwitchEnd {
            total_reads,
            duration_ms,
        }) = replies.last().cloned()
        else {
            panic!("{replies:?}")
        };
        assert_eq!(total_reads, 15);
        // Three rounds of five tags (35 ms each) and three rests of 5 ms.
        assert_eq!(duration_ms, 3 * 35 + 3 * 5);
        let paced: Duration = out.iter().map(|(_, after)| *after).sum();
        // The packets are paced over the same time (steps are rounded to nanoseconds).
        assert!(paced.abs_diff(Duration::from_millis(120)) < Duration::from_micros(1));
        // A slot beyond the reader's ports is refused whole.
        let wrong = FastSwitch {
            slots: vec![(9, 1)],
            interval_ms: 0,
            repeat: 1,
        };
        assert_eq!(
            replies_of(&mut r, &wrong.to_packet(1)),
            vec![Reply::Result {
                cmd: r2000::CMD_FAST_SWITCH_INVENTORY,
                code: r2000::FAIL
            }]
        );
    }

    fn replies_of(r: &mut R2000Reader, p: &Packet) -> Vec<Reply> {
        replies(&r.handle(&mut 0, p, Duration::ZERO))
    }

    fn session_inventory(r: &mut R2000Reader, antenna: u8, now: Duration) -> Vec<TagPacket> {
        let mut work = 0;
        r.handle(
            &mut work,
            &Packet::new(1, r2000::CMD_SET_WORK_ANTENNA, vec![antenna]),
            now,
        );
        let inventory = Packet::new(1, r2000::CMD_SESSION_INVENTORY, vec![1, 0, 3]);
        tags(&r.handle(&mut work, &inventory, now))
    }

    #[test]
    fn tags_read_in_s1_stay_quiet_on_every_antenna_until_their_persistence_ends() {
        let mut r = reader(CERTAIN);
        // Three rounds in S1, target A: each tag answers once, then keeps quiet.
        assert_eq!(session_inventory(&mut r, 0, Duration::ZERO).len(), 5);
        assert!(session_inventory(&mut r, 0, Duration::from_millis(200)).is_empty());
        // Every tag is heard again once the longest persistence (5 s) is over.
        assert_eq!(
            session_inventory(&mut r, 0, Duration::from_secs(6)).len(),
            5
        );
        // The firmware's own inventory is not held back by the flags.
        let mut work = 0;
        let real_time = Packet::new(1, r2000::CMD_REAL_TIME_INVENTORY, vec![3]);
        assert_eq!(
            tags(&r.handle(&mut work, &real_time, Duration::from_secs(6))).len(),
            15
        );

        // A tag cross-read by a neighbour's antenna in S1 is silent on its own antenna.
        let mut r = reader(RfParams {
            cross_read_probability: 1.0,
            ..CERTAIN
        });
        let hex = |t: &TagPacket| t.epc.iter().map(|b| format!("{b:02X}")).collect::<String>();
        // Shelf 0 (S1-L1, antenna 0) has shelf 1 (S1-L2, antenna 1) above it.
        let above: Vec<String> = r.world.lock().unwrap().tags_on(1).to_vec();
        let first = session_inventory(&mut r, 0, Duration::ZERO);
        assert!(first.iter().any(|t| above.contains(&hex(t))), "cross-read");
        let at_home = session_inventory(&mut r, 1, Duration::from_millis(100));
        assert!(
            at_home.iter().all(|t| !above.contains(&hex(t))),
            "{at_home:?}"
        );
    }
}

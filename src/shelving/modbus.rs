//! The Modbus driver of shelving controllers (tokio-modbus, RTU on tokio-serial or TCP),
//! with the register map of the device profile.
//!
//! It reads exactly the input registers the map names, in as few requests as the map
//! allows (each block at most 125 registers). A command is one write of the command and
//! argument registers (0x10) where they are neighbours, else the argument then the command;
//! the PLC acts on it at its next scan, so the driver reads the command counter until it
//! moves (within the profile's `scan_ms` and `command_timeout_ms`) and takes the result
//! from `last_result`. A write whose answer was lost, or a counter that did not move, is
//! unconfirmed: the PLC may be acting on it.

use std::time::Duration;

use tokio::time::Instant;

use stackroom_wire::profile::{ModbusShelving, Timing};
use stackroom_wire::shelving::gaps_from_words;
use tokio::sync::watch;
use tokio_modbus::client::{Context, Reader, Writer};
use tokio_modbus::prelude::*;

use super::device::{
    Command, CommandError, Connector, DeviceFault, DeviceState, DriverError, Link, Order, Outcome,
    Session,
};

/// Where the controller is.
#[derive(Debug, Clone)]
pub enum Wire {
    Rtu { path: String, baud: u32 },
    Tcp { address: String },
}

/// Registers closer than this are read in one request rather than two.
const MERGE_GAP: u16 = 8;
/// The most registers one read may ask for (Modbus application protocol, 6.4).
const MAX_READ: u16 = 125;

/// The blocks of input registers to read for `carriages` carriages: every register the
/// map names, neighbours (up to `MERGE_GAP` apart) in one block, at most `MAX_READ`
/// registers a block, the block with the status word first and the rest in address order.
///
/// Blocks are read in separate requests, so they may come from different PLC scans. The
/// status word is read first so that a tear is harmless: "at rest" read before the
/// positions means the positions are where the motion ended; read after them, it could
/// pair the positions of a scan still under way with the end of the motion, and a motion
/// that arrived would look stopped short of its places.
pub fn blocks(map: &ModbusShelving, carriages: u16) -> Vec<(u16, u16)> {
    let i = &map.input;
    let mut wanted: Vec<u16> = vec![
        i.status,
        i.open_aisle,
        i.fault_code,
        i.fault_carriage,
        i.last_result,
        i.carriage_count,
        i.command_counter,
    ];
    wanted.extend((0..i.occupied_words).map(|w| i.occupied + w));
    wanted.extend((0..carriages).map(|c| i.positions + c));
    wanted.sort_unstable();
    wanted.dedup();
    let mut out: Vec<(u16, u16)> = Vec::new();
    for a in wanted {
        match out.last_mut() {
            Some((start, count))
                if a - (*start + *count - 1) <= MERGE_GAP && a - *start < MAX_READ =>
            {
                *count = a - *start + 1;
            }
            _ => out.push((a, 1)),
        }
    }
    if let Some(first) = out
        .iter()
        .position(|&(start, count)| (start..start + count).contains(&i.status))
    {
        out[..=first].rotate_right(1);
    }
    out
}

/// How to reach the controller.
pub struct Modbus {
    pub wire: Wire,
    pub unit: u8,
    pub map: ModbusShelving,
    pub timing: Timing,
    pub carriages: u16,
}

impl Connector for Modbus {
    type Session = ModbusSession;

    async fn connect(&mut self) -> Result<ModbusSession, DriverError> {
        let ctx = match &self.wire {
            Wire::Rtu { path, baud } => {
                let mut serial = tokio_serial::SerialStream::open(&tokio_serial::new(path, *baud))
                    .map_err(|e| DriverError::Link(format!("{path}: {e}")))?;
                super::device::drain(&mut serial, Duration::from_millis(300)).await;
                tokio_modbus::client::rtu::attach_slave(serial, Slave(self.unit))
            }
            Wire::Tcp { address } => {
                let addr = tokio::net::lookup_host(address)
                    .await
                    .map_err(|e| DriverError::Link(format!("{address}: {e}")))?
                    .next()
                    .ok_or_else(|| DriverError::Link(format!("{address}: no address")))?;
                tokio_modbus::client::tcp::connect_slave(addr, Slave(self.unit))
                    .await
                    .map_err(|e| DriverError::Link(format!("{address}: {e}")))?
            }
        };
        let mut poll =
            tokio::time::interval(Duration::from_millis(self.timing.poll_interval_ms.max(20)));
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Ok(ModbusSession {
            ctx,
            blocks: blocks(&self.map, self.carriages),
            map: self.map.clone(),
            timing: self.timing.clone(),
            carriages: self.carriages,
            poll,
            broken: None,
        })
    }
}

/// A connected controller.
pub struct ModbusSession {
    ctx: Context,
    map: ModbusShelving,
    blocks: Vec<(u16, u16)>,
    timing: Timing,
    carriages: u16,
    poll: tokio::time::Interval,
    broken: Option<DriverError>,
}

/// The input registers read, by address.
struct Image(Vec<(u16, Vec<u16>)>);

impl Image {
    fn get(&self, address: u16) -> u16 {
        self.0
            .iter()
            .find_map(|(start, regs)| regs.get(address.checked_sub(*start)? as usize).copied())
            .unwrap_or(0)
    }
}

impl ModbusSession {
    fn timeout(&self) -> Duration {
        Duration::from_millis(self.timing.command_timeout_ms)
    }

    async fn read(&mut self) -> Result<(DeviceState, u16, u16), DriverError> {
        let timeout = self.timeout();
        let mut image = Vec::with_capacity(self.blocks.len());
        for &(start, count) in &self.blocks {
            let regs = tokio::time::timeout(timeout, self.ctx.read_input_registers(start, count))
                .await
                .map_err(|_| DriverError::Timeout(timeout))?
                .map_err(|e| DriverError::Link(e.to_string()))?
                .map_err(|e| {
                    DriverError::Protocol(format!(
                        "exception {e:?} reading {count} input register(s) from {start}"
                    ))
                })?;
            image.push((start, regs));
        }
        let image = Image(image);
        let m = &self.map.input;
        let b = &self.map.status_bits;
        let status = image.get(m.status);
        let bit = |n: u8| status & (1 << n) != 0;
        if image.get(m.carriage_count) != self.carriages {
            return Err(DriverError::Protocol(format!(
                "the controller has {} carriages, the room config says {}",
                image.get(m.carriage_count),
                self.carriages
            )));
        }
        let mask: Vec<u16> = (0..m.occupied_words)
            .map(|w| image.get(m.occupied + w))
            .collect();
        let state = DeviceState {
            positions_mm: (0..self.carriages)
                .map(|i| image.get(m.positions + i) as f64)
                .collect(),
            moving: bit(b.moving),
            stopped_short: bit(b.stopped),
            locked: bit(b.locked),
            estop: bit(b.estop),
            fault: (image.get(m.fault_code) != 0).then(|| DeviceFault {
                code: image.get(m.fault_code),
                carriage: image.get(m.fault_carriage),
            }),
            occupied: gaps_from_words(&mask),
            obstacle: bit(b.obstacle),
            at: Instant::now(),
        };
        Ok((
            state,
            image.get(m.command_counter),
            image.get(m.last_result),
        ))
    }

    /// The registers a command writes, in the order they are written.
    fn writes(&self, command: Command) -> Vec<(u16, Vec<u16>)> {
        let c = &self.map.commands;
        let h = &self.map.holding;
        let (code, argument) = match command {
            Command::OpenAisle { aisle } => (c.open_aisle, aisle),
            Command::Close => (c.close, 0),
            Command::Ventilate => (c.ventilate, 0),
            Command::Stop => (c.stop, 0),
            Command::Lock => (c.lock, 0),
            Command::Unlock => (c.unlock, 0),
            Command::ResetFaults => (c.reset_faults, 0),
            Command::Warning { on } => {
                return h
                    .warning
                    .map(|w| vec![(w, vec![on as u16])])
                    .unwrap_or_default();
            }
        };
        if h.argument == h.command + 1 {
            vec![(h.command, vec![code, argument])]
        } else if h.command == h.argument + 1 {
            vec![(h.argument, vec![argument, code])]
        } else {
            vec![(h.argument, vec![argument]), (h.command, vec![code])]
        }
    }

    async fn write(
        &mut self,
        address: u16,
        values: &[u16],
    ) -> Result<Result<(), ExceptionCode>, String> {
        let timeout = self.timeout();
        let write = async {
            if let [value] = values {
                self.ctx.write_single_register(address, *value).await
            } else {
                self.ctx.write_multiple_registers(address, values).await
            }
        };
        match tokio::time::timeout(timeout, write).await {
            Err(_) => Err(format!(
                "no answer to the write within {} ms",
                timeout.as_millis()
            )),
            Ok(Err(e)) => Err(e.to_string()),
            Ok(Ok(r)) => Ok(r),
        }
    }
}

impl Session for ModbusSession {
    type Wake = ();

    async fn wake(&mut self) {
        self.poll.tick().await;
    }

    async fn handle(&mut self, _: ()) -> Result<Option<DeviceState>, DriverError> {
        self.read().await.map(|(state, _, _)| Some(state))
    }

    async fn execute(
        &mut self,
        order: &Order,
        heard: &watch::Sender<Link>,
    ) -> Result<Outcome, CommandError> {
        let writes = self.writes(order.command);
        if writes.is_empty() {
            return Ok(Outcome::Refused(
                "the profile has no register for it".into(),
            ));
        }
        let counted = !matches!(order.command, Command::Warning { .. });
        let before = if counted {
            let read = self.read().await;
            match read {
                Ok((state, counter, _)) => {
                    let _ = heard.send(Link::Up(state));
                    Some(counter)
                }
                Err(e) => {
                    self.broken = Some(e.clone());
                    return Err(CommandError::NotSent(format!(
                        "the status could not be read before the command: {e}"
                    )));
                }
            }
        } else {
            None
        };
        for (i, (address, values)) in writes.iter().enumerate() {
            let last = i + 1 == writes.len();
            if !order.may_send() {
                return Err(CommandError::NotSent(
                    "its deadline passed before it could be written".into(),
                ));
            }
            match self.write(*address, values).await {
                Ok(Ok(())) => {}
                Ok(Err(exception)) => {
                    return Ok(Outcome::Refused(format!("Modbus exception {exception:?}")));
                }
                Err(e) => {
                    self.broken = Some(DriverError::Link(e.clone()));
                    // Only the write of the command register can make the PLC act.
                    return Err(if last {
                        CommandError::Unconfirmed(format!(
                            "the write of the command was not answered: {e}"
                        ))
                    } else {
                        CommandError::NotSent(format!("the argument could not be written: {e}"))
                    });
                }
            }
        }
        let Some(before) = before else {
            return Ok(Outcome::Accepted);
        };
        // The PLC acts on its next scan: wait for it to count the command.
        let window = Duration::from_millis(self.timing.scan_ms + self.timing.command_timeout_ms);
        let until = Instant::now() + window;
        let step = Duration::from_millis((self.timing.poll_interval_ms / 4).clamp(5, 20));
        loop {
            match self.read().await {
                Ok((state, counter, result)) => {
                    let _ = heard.send(Link::Up(state));
                    if counter != before {
                        return Ok(Outcome::from_code(result));
                    }
                }
                Err(e) => {
                    self.broken = Some(e.clone());
                    return Err(CommandError::Unconfirmed(format!(
                        "the controller took the command, then the status could not be read: {e}"
                    )));
                }
            }
            if Instant::now() >= until {
                self.broken = Some(DriverError::Protocol("a command was not counted".into()));
                return Err(CommandError::Unconfirmed(format!(
                    "the controller took the write but did not count the command within {} ms",
                    window.as_millis()
                )));
            }
            tokio::time::sleep(step).await;
        }
    }

    async fn heartbeat(&mut self, beat: u64) -> Result<(), DriverError> {
        let Some(address) = self.map.holding.heartbeat else {
            return Ok(());
        };
        match self.write(address, &[beat as u16]).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(DriverError::Protocol(format!(
                "exception {e:?} writing the heartbeat"
            ))),
            Err(e) => Err(DriverError::Link(format!("the heartbeat: {e}"))),
        }
    }

    fn health(&self) -> Result<(), DriverError> {
        self.broken.clone().map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stackroom_wire::profile::Profile;

    fn map(text: &str) -> ModbusShelving {
        Profile::parse(text).unwrap().modbus.unwrap()
    }

    #[test]
    fn the_reference_map_is_read_in_one_request() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/device-profiles/generic-modbus-shelving.toml"
        ))
        .unwrap();
        assert_eq!(blocks(&map(&text), 10), vec![(0, 26)]);
    }

    #[test]
    fn a_map_with_its_blocks_far_apart_is_read_block_by_block() {
        // Positions first at 0, the status block at 100, the occupancy mask at 300.
        let text = r#"
            [device]
            kind = "shelving"
            protocol = "modbus"
            [modbus]
            max_carriages = 31
            [modbus.holding]
            command = 10
            argument = 12
            [modbus.input]
            positions = 0
            status = 100
            open_aisle = 101
            fault_code = 102
            fault_carriage = 103
            last_result = 104
            carriage_count = 105
            command_counter = 107
            occupied = 300
            occupied_words = 2
            [modbus.commands]
            open_aisle = 1
            close = 2
            ventilate = 3
            stop = 4
            lock = 5
            unlock = 6
            reset_faults = 7
            [modbus.status_bits]
            moving = 0
            estop = 1
            locked = 2
            fault = 3
            stopped = 4
            obstacle = 5
        "#;
        assert_eq!(
            blocks(&map(text), 20),
            vec![(100, 8), (0, 20), (300, 2)],
            "the status block first"
        );
        // A long range beside the status block: no request over 125 registers.
        let text = text.replace("positions = 0", "positions = 110");
        let b = blocks(&map(&text), 31);
        assert!(b.iter().all(|(_, n)| *n <= MAX_READ), "{b:?}");
        assert_eq!(b.iter().map(|(_, n)| *n as u32).sum::<u32>(), 41 + 2);
    }
}

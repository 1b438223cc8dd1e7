//! The Modbus driver of shelving controllers (tokio-modbus, RTU on tokio-serial or TCP),
//! with the register map of the device profile.

use std::time::{Duration, Instant};

use stackroom_wire::profile::{ModbusShelving, Timing};
use tokio_modbus::client::{Context, Reader, Writer};
use tokio_modbus::prelude::*;

use super::device::{
    DeviceCommand, DeviceFault, DeviceState, DriverError, DriverPorts, Link, Outcome, backoff,
    refusal,
};

/// Where the controller is.
#[derive(Debug, Clone)]
pub enum Wire {
    Rtu { path: String, baud: u32 },
    Tcp { address: String },
}

struct Driver {
    map: ModbusShelving,
    carriages: u16,
    timing: Timing,
}

impl Driver {
    /// Registers 0 ..= the last carriage position: one read gets everything.
    fn span(&self) -> u16 {
        self.map.input.positions + self.carriages
    }

    async fn read(&self, ctx: &mut Context) -> Result<(DeviceState, Vec<u16>), DriverError> {
        let timeout = Duration::from_millis(self.timing.command_timeout_ms);
        let regs = tokio::time::timeout(timeout, ctx.read_input_registers(0, self.span()))
            .await
            .map_err(|_| DriverError::Timeout(timeout))?
            .map_err(|e| DriverError::Link(e.to_string()))?
            .map_err(|e| DriverError::Protocol(format!("exception {e:?} reading the state")))?;
        let m = &self.map.input;
        let b = &self.map.status_bits;
        let reg = |a: u16| regs.get(a as usize).copied().unwrap_or(0);
        let bit = |n: u8| reg(m.status) & (1 << n) != 0;
        let aisles = |mask: u16| (1..=16u16).filter(|k| mask & (1 << (k - 1)) != 0).collect();
        if reg(m.carriage_count) != self.carriages {
            return Err(DriverError::Protocol(format!(
                "the controller has {} carriages, the room config says {}",
                reg(m.carriage_count),
                self.carriages
            )));
        }
        let state = DeviceState {
            positions_mm: (0..self.carriages)
                .map(|i| reg(m.positions + i) as f64)
                .collect(),
            moving: bit(b.moving),
            stopped_short: bit(b.stopped),
            locked: bit(b.locked),
            estop: bit(b.estop),
            fault: (reg(m.fault_code) != 0).then(|| DeviceFault {
                code: reg(m.fault_code),
                carriage: reg(m.fault_carriage),
            }),
            occupied_aisles: aisles(reg(m.occupied)),
            obstacle_aisles: if bit(b.obstacle) { vec![0] } else { vec![] },
            at: Instant::now(),
        };
        Ok((state, regs))
    }

    async fn command(
        &self,
        ctx: &mut Context,
        command: DeviceCommand,
    ) -> Result<Outcome, DriverError> {
        let c = &self.map.commands;
        let (code, argument) = match command {
            DeviceCommand::OpenAisle(k) => (c.open_aisle, k),
            DeviceCommand::Close => (c.close, 0),
            DeviceCommand::Ventilate => (c.ventilate, 0),
            DeviceCommand::Stop => (c.stop, 0),
            DeviceCommand::Lock => (c.lock, 0),
            DeviceCommand::Unlock => (c.unlock, 0),
            DeviceCommand::ResetFaults => (c.reset_faults, 0),
        };
        let timeout = Duration::from_millis(self.timing.command_timeout_ms);
        let (_, before) = self.read(ctx).await?;
        let counter = |regs: &[u16]| regs.get(self.map.input.command_counter as usize).copied();
        let write = async {
            ctx.write_single_register(self.map.holding.argument, argument)
                .await?
                .map_err(|e| {
                    tokio_modbus::Error::Transport(std::io::Error::other(format!(
                        "exception {e:?}"
                    )))
                })?;
            ctx.write_single_register(self.map.holding.command, code)
                .await?
                .map_err(|e| {
                    tokio_modbus::Error::Transport(std::io::Error::other(format!(
                        "exception {e:?}"
                    )))
                })
        };
        tokio::time::timeout(timeout, write)
            .await
            .map_err(|_| DriverError::Timeout(timeout))?
            .map_err(|e| DriverError::Link(e.to_string()))?;
        let (_, after) = self.read(ctx).await?;
        if counter(&after) == counter(&before) {
            return Err(DriverError::Protocol(
                "the controller did not count the command".into(),
            ));
        }
        Ok(
            match after
                .get(self.map.input.last_result as usize)
                .copied()
                .unwrap_or(0)
            {
                0 => Outcome::Accepted,
                code => Outcome::Refused(refusal(code)),
            },
        )
    }
}

async fn connect(wire: &Wire, unit: u8) -> Result<Context, DriverError> {
    match wire {
        Wire::Rtu { path, baud } => {
            let serial = tokio_serial::SerialStream::open(&tokio_serial::new(path, *baud))
                .map_err(|e| DriverError::Link(format!("{path}: {e}")))?;
            Ok(tokio_modbus::client::rtu::attach_slave(serial, Slave(unit)))
        }
        Wire::Tcp { address } => {
            let addr = tokio::net::lookup_host(address)
                .await
                .map_err(|e| DriverError::Link(format!("{address}: {e}")))?
                .next()
                .ok_or_else(|| DriverError::Link(format!("{address}: no address")))?;
            tokio_modbus::client::tcp::connect_slave(addr, Slave(unit))
                .await
                .map_err(|e| DriverError::Link(format!("{address}: {e}")))
        }
    }
}

/// Runs the driver until the controller drops its handle.
pub async fn run(
    device: String,
    wire: Wire,
    unit: u8,
    map: ModbusShelving,
    timing: Timing,
    carriages: u16,
    mut ports: DriverPorts,
) {
    let driver = Driver {
        map,
        carriages,
        timing,
    };
    let poll = Duration::from_millis(driver.timing.poll_interval_ms.max(20));
    let mut attempt = 0;
    loop {
        let mut ctx = match connect(&wire, unit).await {
            Ok(ctx) => ctx,
            Err(e) => {
                let _ = ports.link.send(Link::Down(e.to_string()));
                tokio::time::sleep(backoff(attempt)).await;
                attempt += 1;
                continue;
            }
        };
        let mut tick = tokio::time::interval(poll);
        let failure = loop {
            tokio::select! {
                _ = tick.tick() => match driver.read(&mut ctx).await {
                    Ok((state, _)) => {
                        attempt = 0;
                        let _ = ports.link.send(Link::Up(state));
                    }
                    Err(e) => break e,
                },
                command = ports.commands.recv() => {
                    let Some((command, reply)) = command else { return };
                    let answer = driver.command(&mut ctx, command).await;
                    let failed = answer.as_ref().err().cloned();
                    let _ = reply.send(answer);
                    if let Some(e) = failed {
                        break e;
                    }
                }
            }
        };
        tracing::warn!(%device, error = %failure, "shelving link lost; reconnecting");
        let _ = ports.link.send(Link::Down(failure.to_string()));
        drop(ctx);
        tokio::time::sleep(backoff(attempt)).await;
        attempt += 1;
    }
}

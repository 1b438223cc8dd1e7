//! A simulated shelving controller on Modbus RTU (a slave framing by silences, see
//! [`crate::modbus_rtu`]) or Modbus TCP (tokio-modbus server).
//!
//! The register map comes from the device profile ([`stackroom_wire::profile::ModbusShelving`]).
//! Input registers mirror the range's state; writing a command code to the command holding
//! register (with its argument, in the same 0x10 write or before it) hands the PLC a
//! command, which it acts on at its next scan. A refused command is not a Modbus
//! exception: the PLC takes the write, records the refusal in `last_result` and counts the
//! command in `command_counter` when it acts, as real controllers do. Writing the heartbeat
//! register feeds the watchdog; the warning register switches the pre-motion warning.

use std::future::{Ready, ready};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use stackroom_wire::profile::ModbusShelving;
use stackroom_wire::shelving::words_from_gaps;
use tokio_modbus::prelude::*;
use tokio_modbus::server::Service;

use crate::shelving::{Command, Moment, Motion, RangeSim};

/// The holding registers the map names.
#[derive(Debug, Clone, Copy, Default)]
struct Held {
    command: u16,
    argument: u16,
    heartbeat: u16,
    warning: u16,
}

/// The Modbus face of one simulated range.
#[derive(Clone)]
pub struct ModbusController {
    range: Arc<Mutex<RangeSim>>,
    map: Arc<ModbusShelving>,
    unit: u8,
    held: Arc<Mutex<Held>>,
    /// Off: the controller answers nothing, as if unplugged.
    online: Option<Arc<AtomicBool>>,
}

impl ModbusController {
    pub fn new(range: Arc<Mutex<RangeSim>>, map: ModbusShelving, unit: u8) -> ModbusController {
        ModbusController {
            range,
            map: Arc::new(map),
            unit,
            held: Arc::new(Mutex::new(Held::default())),
            online: None,
        }
    }

    /// The same controller, answering nothing while `online` is off (unplugged).
    pub fn with_online(self, online: Arc<AtomicBool>) -> ModbusController {
        ModbusController {
            online: Some(online),
            ..self
        }
    }

    /// The input register image.
    fn inputs(&self) -> Vec<u16> {
        let m = &self.map.input;
        let size = [
            m.status,
            m.open_aisle,
            m.occupied + m.occupied_words.max(1) - 1,
            m.fault_code,
            m.fault_carriage,
            m.last_result,
            m.carriage_count,
            m.command_counter,
        ]
        .into_iter()
        .max()
        .unwrap_or(0)
        .max(m.positions + self.map.max_carriages) as usize
            + 1;
        let mut regs = vec![0u16; size];
        let Ok(range) = self.range.lock() else {
            return regs;
        };
        let s = range.state();
        let b = &self.map.status_bits;
        let bit = |on: bool, n: u8| if on { 1u16 << n } else { 0 };
        regs[m.status as usize] = bit(s.motion == Motion::Moving, b.moving)
            | bit(s.estop, b.estop)
            | bit(s.locked, b.locked)
            | bit(s.fault.is_some(), b.fault)
            | bit(s.motion == Motion::Stopped, b.stopped)
            | bit(!s.obstacle_aisles.is_empty(), b.obstacle);
        regs[m.open_aisle as usize] = s.open_aisle.unwrap_or(0);
        // A gap the mask cannot hold sets every bit: someone is somewhere.
        let words = m.occupied_words as usize;
        let mask =
            words_from_gaps(&s.occupied_aisles, words).unwrap_or_else(|_| vec![0xFFFF; words]);
        for (j, w) in mask.into_iter().enumerate() {
            regs[m.occupied as usize + j] = w;
        }
        regs[m.fault_code as usize] = s.fault.map_or(0, |f| f.code());
        regs[m.fault_carriage as usize] = s.fault.map_or(0, |f| f.carriage());
        regs[m.last_result as usize] = s.last_result;
        regs[m.carriage_count as usize] = s.positions_mm.len() as u16;
        regs[m.command_counter as usize] = s.commands as u16;
        for (i, p) in s
            .positions_mm
            .iter()
            .take(self.map.max_carriages as usize)
            .enumerate()
        {
            regs[m.positions as usize + i] = p.round().clamp(0.0, 65535.0) as u16;
        }
        regs
    }

    fn write(&self, address: u16, values: &[u16]) -> Result<(), ExceptionCode> {
        let h = &self.map.holding;
        let (mut command, mut beat, mut warning) = (None, None, None);
        let mut held = *self
            .held
            .lock()
            .map_err(|_| ExceptionCode::ServerDeviceFailure)?;
        for (i, v) in values.iter().enumerate() {
            let a = address
                .checked_add(i as u16)
                .ok_or(ExceptionCode::IllegalDataAddress)?;
            if a == h.command {
                held.command = *v;
                command = Some(*v);
            } else if a == h.argument {
                held.argument = *v;
            } else if Some(a) == h.heartbeat {
                held.heartbeat = *v;
                beat = Some(*v);
            } else if Some(a) == h.warning {
                held.warning = *v;
                warning = Some(*v != 0);
            } else {
                return Err(ExceptionCode::IllegalDataAddress);
            }
        }
        let c = &self.map.commands;
        let command = match command {
            None => None,
            Some(x) if x == c.open_aisle => Some(Command::OpenAisle {
                aisle: held.argument,
            }),
            Some(x) if x == c.close => Some(Command::Close),
            Some(x) if x == c.ventilate => Some(Command::Ventilate),
            Some(x) if x == c.stop => Some(Command::Stop),
            Some(x) if x == c.lock => Some(Command::Lock),
            Some(x) if x == c.unlock => Some(Command::Unlock),
            Some(x) if x == c.reset_faults => Some(Command::ResetFaults),
            Some(_) => return Err(ExceptionCode::IllegalDataValue),
        };
        if let Ok(mut h) = self.held.lock() {
            *h = held;
        }
        let mut range = self
            .range
            .lock()
            .map_err(|_| ExceptionCode::ServerDeviceFailure)?;
        let now = Moment::now();
        let wire = format!("write {address}: {values:?}");
        if let Some(b) = beat {
            range.heartbeat(Some(b as u64), now);
        }
        if let Some(on) = warning {
            range.submit(Command::Warning { on }, wire.clone(), None, now);
        }
        if let Some(command) = command {
            tracing::debug!(range = range.spec().id, ?command, "modbus command");
            range.submit(command, wire, None, now);
        }
        Ok(())
    }

    fn answer(&self, request: Request<'_>) -> Result<Option<Response>, ExceptionCode> {
        let slice = |regs: &[u16], addr: u16, count: u16| -> Result<Vec<u16>, ExceptionCode> {
            let (a, n) = (addr as usize, count as usize);
            if n == 0 || n > 125 || a + n > regs.len() {
                return Err(ExceptionCode::IllegalDataAddress);
            }
            Ok(regs[a..a + n].to_vec())
        };
        Ok(Some(match request {
            Request::ReadInputRegisters(addr, count) => {
                Response::ReadInputRegisters(slice(&self.inputs(), addr, count)?)
            }
            Request::ReadHoldingRegisters(addr, count) => {
                let held = *self
                    .held
                    .lock()
                    .map_err(|_| ExceptionCode::ServerDeviceFailure)?;
                let h = &self.map.holding;
                let named = [
                    (Some(h.command), held.command),
                    (Some(h.argument), held.argument),
                    (h.heartbeat, held.heartbeat),
                    (h.warning, held.warning),
                ];
                let top = named.iter().filter_map(|(a, _)| *a).max().unwrap_or(0);
                let mut regs = vec![0u16; top as usize + 1];
                for (a, v) in named {
                    if let Some(a) = a {
                        regs[a as usize] = v;
                    }
                }
                Response::ReadHoldingRegisters(slice(&regs, addr, count)?)
            }
            Request::WriteSingleRegister(addr, value) => {
                self.write(addr, &[value])?;
                Response::WriteSingleRegister(addr, value)
            }
            Request::WriteMultipleRegisters(addr, values) => {
                self.write(addr, &values)?;
                Response::WriteMultipleRegisters(addr, values.len() as u16)
            }
            _ => return Err(ExceptionCode::IllegalFunction),
        }))
    }
}

impl Service for ModbusController {
    type Request = SlaveRequest<'static>;
    type Response = Option<Response>;
    type Exception = ExceptionCode;
    type Future = Ready<Result<Self::Response, Self::Exception>>;

    fn call(&self, req: Self::Request) -> Self::Future {
        if self
            .online
            .as_ref()
            .is_some_and(|on| !on.load(Ordering::Relaxed))
        {
            return ready(Ok(None));
        }
        // Other units on the bus answer for themselves; broadcasts (0) get no answer.
        if req.slave != self.unit && req.slave != 0 {
            return ready(Ok(None));
        }
        let answer = self.answer(req.request);
        ready(if req.slave == 0 {
            answer.map(|_| None)
        } else {
            answer
        })
    }
}

/// Serves `controller` on the serial device at `path` until the task is dropped, framing
/// requests as a Modbus RTU slave does ([`crate::modbus_rtu`]).
pub async fn serve(path: String, baud: u32, controller: ModbusController, online: Arc<AtomicBool>) {
    let controller = ModbusController {
        online: Some(online.clone()),
        ..controller
    };
    crate::modbus_rtu::serve(path, baud, controller, online).await
}

/// Serves `controller` as a Modbus TCP gateway on `listener` until the task is dropped.
pub async fn serve_tcp(listener: tokio::net::TcpListener, controller: ModbusController) {
    let server = tokio_modbus::server::tcp::Server::new(listener);
    let on_connected = |stream, addr| {
        let controller = controller.clone();
        async move {
            tokio_modbus::server::tcp::accept_tcp_connection(stream, addr, |_| {
                Ok(Some(controller.clone()))
            })
        }
    };
    if let Err(e) = server
        .serve(
            &on_connected,
            |e| tracing::debug!(error = %e, "modbus tcp connection ended"),
        )
        .await
    {
        tracing::warn!(error = %e, "modbus tcp server stopped");
    }
}

//! The framed-bytes serial driver of shelving controllers: frame layout, codes and status
//! offsets all come from the device profile (`stackroom_wire::framed`). The controller
//! answers a command once it has acted on it; an answer that does not come within the
//! profile's `command_timeout_ms` and `scan_ms` leaves the command unconfirmed.

use std::time::Duration;

use tokio::time::Instant;

use stackroom_wire::framed::{Decoder, Frame, FramedProfile};
use stackroom_wire::profile::Timing;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use tokio_serial::SerialStream;

use super::device::{
    Command, CommandError, Connector, DeviceFault, DeviceState, DriverError, Link, Order, Outcome,
    Session,
};

/// How to reach the controller.
pub struct Framed {
    pub path: String,
    pub baud: u32,
    pub profile: FramedProfile,
    pub timing: Timing,
    pub carriages: u16,
}

impl Connector for Framed {
    type Session = FramedSession;

    async fn connect(&mut self) -> Result<FramedSession, DriverError> {
        let mut stream = SerialStream::open(&tokio_serial::new(&self.path, self.baud))
            .map_err(|e| DriverError::Link(format!("{}: {e}", self.path)))?;
        super::device::drain(&mut stream, Duration::from_millis(300)).await;
        let mut poll =
            tokio::time::interval(Duration::from_millis(self.timing.poll_interval_ms.max(20)));
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Ok(FramedSession {
            stream,
            decoder: Decoder::new(self.profile.clone()),
            profile: self.profile.clone(),
            timing: self.timing.clone(),
            carriages: self.carriages,
            poll,
            broken: None,
        })
    }
}

/// An open line to the controller.
pub struct FramedSession {
    stream: SerialStream,
    decoder: Decoder,
    profile: FramedProfile,
    timing: Timing,
    carriages: u16,
    poll: tokio::time::Interval,
    broken: Option<DriverError>,
}

/// How an exchange failed: before or after the request left.
enum Failed {
    NotSent(DriverError),
    NoAnswer(DriverError),
}

impl FramedSession {
    /// Sends a frame and waits (at most `timeout`) for the answer with `function | 0x80`.
    async fn ask(&mut self, request: Frame, timeout: Duration) -> Result<Frame, Failed> {
        let bytes = self
            .profile
            .encode(&request)
            .map_err(|e| Failed::NotSent(DriverError::Protocol(e.to_string())))?;
        // Whatever is left of an earlier exchange is stale now.
        self.decoder.flush_partial();
        while self.decoder.next_frame().is_some() {}
        self.stream
            .write_all(&bytes)
            .await
            .map_err(|e| Failed::NoAnswer(DriverError::Link(e.to_string())))?;
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 256];
        loop {
            while let Some(frame) = self.decoder.next_frame() {
                if frame.function == request.function | 0x80 && frame.address == request.address {
                    return Ok(frame);
                }
            }
            let n = tokio::time::timeout_at(deadline, self.stream.read(&mut buf))
                .await
                .map_err(|_| Failed::NoAnswer(DriverError::Timeout(timeout)))?
                .map_err(|e| Failed::NoAnswer(DriverError::Link(e.to_string())))?;
            if n == 0 {
                return Err(Failed::NoAnswer(DriverError::Link(
                    "the line closed".into(),
                )));
            }
            self.decoder.push(&buf[..n]);
        }
    }

    async fn read(&mut self) -> Result<DeviceState, DriverError> {
        let request = Frame {
            address: self.profile.address,
            function: self.profile.functions.status,
            data: vec![],
        };
        let timeout = Duration::from_millis(self.timing.command_timeout_ms);
        let answer = self.ask(request, timeout).await.map_err(|f| match f {
            Failed::NotSent(e) | Failed::NoAnswer(e) => e,
        })?;
        let s = self
            .profile
            .decode_status(&answer.data)
            .map_err(|e| DriverError::Protocol(e.to_string()))?;
        if s.positions_mm.len() != self.carriages as usize {
            return Err(DriverError::Protocol(format!(
                "the controller has {} carriages, the room config says {}",
                s.positions_mm.len(),
                self.carriages
            )));
        }
        Ok(DeviceState {
            positions_mm: s.positions_mm.iter().map(|p| *p as f64).collect(),
            moving: s.moving,
            stopped_short: s.stopped,
            locked: s.locked,
            estop: s.estop,
            fault: (s.fault || s.fault_code != 0).then_some(DeviceFault {
                code: s.fault_code as u16,
                carriage: s.fault_carriage as u16,
            }),
            occupied: s.occupied,
            obstacle: s.obstacle,
            at: Instant::now(),
        })
    }
}

impl Session for FramedSession {
    type Wake = ();

    async fn wake(&mut self) {
        self.poll.tick().await;
    }

    async fn handle(&mut self, _: ()) -> Result<Option<DeviceState>, DriverError> {
        self.read().await.map(Some)
    }

    async fn execute(
        &mut self,
        order: &Order,
        _heard: &watch::Sender<Link>,
    ) -> Result<Outcome, CommandError> {
        let c = &self.profile.commands;
        let (code, argument) = match order.command {
            Command::OpenAisle { aisle } => (c.open_aisle, aisle),
            Command::Close => (c.close, 0),
            Command::Ventilate => (c.ventilate, 0),
            Command::Stop => (c.stop, 0),
            Command::Lock => (c.lock, 0),
            Command::Unlock => (c.unlock, 0),
            Command::ResetFaults => (c.reset_faults, 0),
            Command::Warning { on } => match c.warning {
                Some(code) => (code, on as u16),
                None => {
                    return Ok(Outcome::Refused(
                        "the profile has no warning command".into(),
                    ));
                }
            },
        };
        let [hi, lo] = argument.to_be_bytes();
        let request = Frame {
            address: self.profile.address,
            function: self.profile.functions.command,
            data: vec![code, hi, lo],
        };
        if !order.may_send() {
            return Err(CommandError::NotSent(
                "its deadline passed before it could be written".into(),
            ));
        }
        let window = Duration::from_millis(self.timing.command_timeout_ms + self.timing.scan_ms);
        match self.ask(request, window).await {
            Ok(frame) => match frame.data.as_slice() {
                [r] => Ok(Outcome::from_code(*r as u16)),
                other => {
                    self.broken = Some(DriverError::Protocol(format!(
                        "command answer {other:02X?}"
                    )));
                    Err(CommandError::Unconfirmed(format!(
                        "the controller answered the command with {other:02X?}"
                    )))
                }
            },
            Err(Failed::NotSent(e)) => Err(CommandError::NotSent(e.to_string())),
            Err(Failed::NoAnswer(e)) => {
                self.broken = Some(e.clone());
                Err(CommandError::Unconfirmed(format!(
                    "the command was sent but not answered: {e}"
                )))
            }
        }
    }

    async fn heartbeat(&mut self, beat: u64) -> Result<(), DriverError> {
        let Some(function) = self.profile.functions.heartbeat else {
            return Ok(());
        };
        let request = Frame {
            address: self.profile.address,
            function,
            data: (beat as u16).to_be_bytes().to_vec(),
        };
        let timeout = Duration::from_millis(self.timing.command_timeout_ms);
        self.ask(request, timeout)
            .await
            .map(|_| ())
            .map_err(|f| match f {
                Failed::NotSent(e) | Failed::NoAnswer(e) => e,
            })
    }

    fn health(&self) -> Result<(), DriverError> {
        self.broken.clone().map_or(Ok(()), Err)
    }
}

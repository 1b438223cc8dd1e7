//! The framed-bytes serial driver of shelving controllers: frame layout, codes and status
//! offsets all come from the device profile (`stackroom_wire::framed`).

use std::time::{Duration, Instant};

use stackroom_wire::framed::{Decoder, Frame, FramedProfile};
use stackroom_wire::profile::Timing;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_serial::SerialStream;

use super::device::{
    DeviceCommand, DeviceFault, DeviceState, DriverError, DriverPorts, Link, Outcome, backoff,
    refusal,
};

struct Line {
    stream: SerialStream,
    decoder: Decoder,
}

impl Line {
    /// Sends a frame and waits for the answer with `function | 0x80`.
    async fn ask(
        &mut self,
        profile: &FramedProfile,
        request: Frame,
        timeout: Duration,
    ) -> Result<Frame, DriverError> {
        let bytes = profile
            .encode(&request)
            .map_err(|e| DriverError::Protocol(e.to_string()))?;
        // Whatever is left of an earlier exchange is stale now.
        self.decoder.flush_partial();
        self.stream
            .write_all(&bytes)
            .await
            .map_err(|e| DriverError::Link(e.to_string()))?;
        let deadline = tokio::time::Instant::now() + timeout;
        let mut buf = [0u8; 256];
        loop {
            while let Some(frame) = self.decoder.next_frame() {
                if frame.function == request.function | 0x80 && frame.address == request.address {
                    return Ok(frame);
                }
            }
            let n = tokio::time::timeout_at(deadline, self.stream.read(&mut buf))
                .await
                .map_err(|_| DriverError::Timeout(timeout))?
                .map_err(|e| DriverError::Link(e.to_string()))?;
            if n == 0 {
                return Err(DriverError::Link("the line closed".into()));
            }
            self.decoder.push(&buf[..n]);
        }
    }
}

/// Runs the driver until the controller drops its handle.
pub async fn run(
    device: String,
    path: String,
    baud: u32,
    profile: FramedProfile,
    timing: Timing,
    carriages: u16,
    mut ports: DriverPorts,
) {
    let timeout = Duration::from_millis(timing.command_timeout_ms);
    let poll = Duration::from_millis(timing.poll_interval_ms.max(20));
    let status_request = Frame {
        address: profile.address,
        function: profile.functions.status,
        data: vec![],
    };
    let mut attempt = 0;
    loop {
        let stream = match SerialStream::open(&tokio_serial::new(&path, baud)) {
            Ok(s) => s,
            Err(e) => {
                let _ = ports.link.send(Link::Down(format!("{path}: {e}")));
                tokio::time::sleep(backoff(attempt)).await;
                attempt += 1;
                continue;
            }
        };
        let mut line = Line {
            stream,
            decoder: Decoder::new(profile.clone()),
        };
        let mut tick = tokio::time::interval(poll);
        let failure = loop {
            tokio::select! {
                _ = tick.tick() => {
                    let answer = line.ask(&profile, status_request.clone(), timeout).await;
                    let status = answer.and_then(|f| profile.decode_status(&f.data).map_err(|e| DriverError::Protocol(e.to_string())));
                    match status {
                        Ok(s) if s.positions_mm.len() != carriages as usize => {
                            break DriverError::Protocol(format!(
                                "the controller has {} carriages, the room config says {carriages}",
                                s.positions_mm.len()
                            ));
                        }
                        Ok(s) => {
                            attempt = 0;
                            let _ = ports.link.send(Link::Up(DeviceState {
                                positions_mm: s.positions_mm.iter().map(|p| *p as f64).collect(),
                                moving: s.moving,
                                stopped_short: s.stopped,
                                locked: s.locked,
                                estop: s.estop,
                                fault: (s.fault || s.fault_code != 0).then_some(DeviceFault {
                                    code: s.fault_code as u16,
                                    carriage: s.fault_carriage as u16,
                                }),
                                occupied_aisles: (1..=16u16).filter(|k| s.occupied & (1 << (k - 1)) != 0).collect(),
                                obstacle_aisles: if s.obstacle { vec![0] } else { vec![] },
                                at: Instant::now(),
                            }));
                        }
                        Err(e) => break e,
                    }
                }
                command = ports.commands.recv() => {
                    let Some((command, reply)) = command else { return };
                    let c = &profile.commands;
                    let (code, argument) = match command {
                        DeviceCommand::OpenAisle(k) => (c.open_aisle, k),
                        DeviceCommand::Close => (c.close, 0),
                        DeviceCommand::Ventilate => (c.ventilate, 0),
                        DeviceCommand::Stop => (c.stop, 0),
                        DeviceCommand::Lock => (c.lock, 0),
                        DeviceCommand::Unlock => (c.unlock, 0),
                        DeviceCommand::ResetFaults => (c.reset_faults, 0),
                    };
                    let [hi, lo] = argument.to_be_bytes();
                    let request = Frame { address: profile.address, function: profile.functions.command, data: vec![code, hi, lo] };
                    let answer = line.ask(&profile, request, timeout).await.and_then(|f| match f.data.as_slice() {
                        [0] => Ok(Outcome::Accepted),
                        [r] => Ok(Outcome::Refused(refusal(*r as u16))),
                        other => Err(DriverError::Protocol(format!("command answer {other:02X?}"))),
                    });
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
        tokio::time::sleep(backoff(attempt)).await;
        attempt += 1;
    }
}

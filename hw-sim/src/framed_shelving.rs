//! A simulated shelving controller speaking a framed-bytes serial protocol, as its device
//! profile describes it (`stackroom_wire::framed`). Frames for other addresses, unknown
//! functions and bad checksums get no answer, as on an RS-485 bus. A command is answered
//! once the PLC has acted on it (at its next scan); a heartbeat frame feeds the watchdog.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use stackroom_wire::framed::{Decoder, Frame, FramedProfile, Status};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::shelving::{Command, Moment, Motion, RangeSim};

/// What a frame asks of the PLC.
enum Asked {
    /// Answer at once with this data.
    Now(Vec<u8>),
    /// Answer once the command with this ticket has acted.
    Command(u64),
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn status(profile: &FramedProfile, sim: &RangeSim) -> Vec<u8> {
    let s = sim.state();
    profile.encode_status(&Status {
        moving: s.motion == Motion::Moving,
        estop: s.estop,
        locked: s.locked,
        fault: s.fault.is_some(),
        stopped: s.motion == Motion::Stopped,
        obstacle: !s.obstacle_aisles.is_empty(),
        open_aisle: s.open_aisle.unwrap_or(0) as u8,
        occupied: s.occupied_aisles.clone(),
        fault_code: s.fault.map_or(0, |f| f.code().min(255) as u8),
        fault_carriage: s.fault.map_or(0, |f| f.carriage() as u8),
        positions_mm: s
            .positions_mm
            .iter()
            .map(|p| p.round().clamp(0.0, 65535.0) as u16)
            .collect(),
    })
}

fn ask(
    profile: &FramedProfile,
    range: &Mutex<RangeSim>,
    frame: &Frame,
    wire: &[u8],
) -> Option<Asked> {
    if frame.address != profile.address {
        return None;
    }
    let mut sim = range.lock().ok()?;
    let f = &profile.functions;
    let now = Moment::now();
    if frame.function == f.status && frame.data.is_empty() {
        return Some(Asked::Now(status(profile, &sim)));
    }
    if Some(frame.function) == f.heartbeat && frame.data.len() == 2 {
        let beat = u16::from_be_bytes([frame.data[0], frame.data[1]]);
        sim.heartbeat(Some(beat as u64), now);
        return Some(Asked::Now(vec![]));
    }
    if frame.function != f.command || frame.data.len() != 3 {
        return None;
    }
    let c = &profile.commands;
    let argument = u16::from_be_bytes([frame.data[1], frame.data[2]]);
    let command = match frame.data[0] {
        x if x == c.open_aisle => Command::OpenAisle { aisle: argument },
        x if x == c.close => Command::Close,
        x if x == c.ventilate => Command::Ventilate,
        x if x == c.stop => Command::Stop,
        x if x == c.lock => Command::Lock,
        x if x == c.unlock => Command::Unlock,
        x if x == c.reset_faults => Command::ResetFaults,
        x if Some(x) == c.warning => Command::Warning { on: argument != 0 },
        _ => return Some(Asked::Now(vec![0xFF])),
    };
    Some(Asked::Command(sim.submit(command, hex(wire), None, now)))
}

/// The answer to one frame, if any, once the PLC has acted on it.
async fn answer(
    profile: &FramedProfile,
    range: &Mutex<RangeSim>,
    frame: &Frame,
    wire: &[u8],
) -> Option<Frame> {
    let data = match ask(profile, range, frame, wire)? {
        Asked::Now(data) => data,
        Asked::Command(ticket) => loop {
            let outcome = range.lock().ok()?.outcome(ticket);
            if let Some(result) = outcome {
                break vec![result.err().map_or(0, |r| r.reason.code() as u8)];
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        },
    };
    Some(Frame {
        address: profile.address,
        function: frame.function | 0x80,
        data,
    })
}

/// Serves the controller on the serial device at `path` until the task is dropped.
pub async fn serve(
    path: String,
    baud: u32,
    profile: FramedProfile,
    range: Arc<Mutex<RangeSim>>,
    online: Arc<AtomicBool>,
) {
    loop {
        let mut line = match tokio_serial::SerialStream::open(&tokio_serial::new(&path, baud)) {
            Ok(line) => line,
            Err(e) => {
                tracing::warn!(error = %e, %path, "cannot open the simulated line");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let mut decoder = Decoder::new(profile.clone());
        let mut buf = [0u8; 256];
        'line: loop {
            let n =
                match tokio::time::timeout(Duration::from_millis(200), line.read(&mut buf)).await {
                    Err(_) => {
                        // Silence: whatever half frame there is will not be finished.
                        decoder.flush_partial();
                        continue;
                    }
                    Ok(Ok(0)) | Ok(Err(_)) => break,
                    Ok(Ok(n)) => n,
                };
            decoder.push(&buf[..n]);
            while let Some(frame) = decoder.next_frame() {
                if !online.load(Ordering::Relaxed) {
                    continue;
                }
                let Ok(wire) = profile.encode(&frame) else {
                    continue;
                };
                let Some(reply) = answer(&profile, &range, &frame, &wire).await else {
                    continue;
                };
                let Ok(bytes) = profile.encode(&reply) else {
                    continue;
                };
                if line.write_all(&bytes).await.is_err() {
                    break 'line;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

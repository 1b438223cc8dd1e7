//! A simulated shelving controller speaking a framed-bytes serial protocol, as its device
//! profile describes it (`stackroom_wire::framed`). Frames for other addresses, unknown
//! functions and bad checksums get no answer, as on an RS-485 bus.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use stackroom_wire::framed::{Decoder, Frame, FramedProfile, Status};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::shelving::{Command, Fault, Motion, RangeSim};

/// The answer to one frame, if any.
pub fn answer(profile: &FramedProfile, range: &Mutex<RangeSim>, frame: &Frame) -> Option<Frame> {
    if frame.address != profile.address {
        return None;
    }
    let mut sim = range.lock().ok()?;
    let f = &profile.functions;
    let data = if frame.function == f.status && frame.data.is_empty() {
        let s = sim.state();
        profile.encode_status(&Status {
            moving: s.motion == Motion::Moving,
            estop: s.estop,
            locked: s.locked,
            fault: s.fault.is_some(),
            stopped: s.motion == Motion::Stopped,
            obstacle: !s.obstacle_aisles.is_empty(),
            open_aisle: s.open_aisle.unwrap_or(0) as u8,
            occupied: s
                .occupied_aisles
                .iter()
                .filter(|&&k| (1..=16).contains(&k))
                .fold(0, |m, k| m | 1 << (k - 1)),
            fault_code: s.fault.map_or(0, |f| f.code().min(255) as u8),
            fault_carriage: match s.fault {
                Some(Fault::Motor { carriage } | Fault::Jam { carriage }) => carriage as u8,
                _ => 0,
            },
            positions_mm: s
                .positions_mm
                .iter()
                .map(|p| p.round().clamp(0.0, 65535.0) as u16)
                .collect(),
        })
    } else if frame.function == f.command && frame.data.len() == 3 {
        let c = &profile.commands;
        let argument = u16::from_be_bytes([frame.data[1], frame.data[2]]);
        let command = match frame.data[0] {
            x if x == c.open_aisle => Command::OpenAisle(argument),
            x if x == c.close => Command::Close,
            x if x == c.ventilate => Command::Ventilate,
            x if x == c.stop => Command::Stop,
            x if x == c.lock => Command::Lock,
            x if x == c.unlock => Command::Unlock,
            x if x == c.reset_faults => Command::ResetFaults,
            _ => {
                return Some(Frame {
                    address: profile.address,
                    function: f.command | 0x80,
                    data: vec![0xFF],
                });
            }
        };
        let result = sim.command(command).err().map_or(0, |r| r.code() as u8);
        vec![result]
    } else {
        return None;
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
                let Some(reply) = answer(&profile, &range, &frame) else {
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

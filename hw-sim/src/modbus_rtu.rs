//! A Modbus RTU slave on a serial line, written from the device's side of the
//! specification ("Modbus over Serial Line", 2.5.1.1): a frame is what comes between two
//! silences of at least 3.5 characters, checked by its CRC-16; a frame whose CRC fails, or
//! the bytes of a frame cut short, are dropped when the line falls silent, so that garbage
//! on the line never leaves the device waiting for the rest of a frame that will not come
//! (a decoder that trusts a garbled byte count would). Answers come from a
//! `tokio_modbus::server::Service`, the same one the Modbus TCP endpoint uses.
//!
//! Functions: 0x03 and 0x04 (read registers), 0x06 (write one register), 0x10 (write
//! registers); a well-formed frame of any other function is answered with exception 01.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use stackroom_wire::framed::Checksum;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_modbus::prelude::*;
use tokio_modbus::server::Service;

/// The silence that ends a frame. The specification's 3.5 characters are 1.75 ms above
/// 19200 baud; a pseudo-terminal's scheduling can pause a frame longer than that, so the
/// simulator waits a little more before it gives up on one.
const GAP: Duration = Duration::from_millis(20);

fn crc(bytes: &[u8]) -> Vec<u8> {
    Checksum::Crc16Modbus.compute(bytes)
}

fn word(b: &[u8], i: usize) -> u16 {
    u16::from_be_bytes([b[i], b[i + 1]])
}

/// A frame's length, as far as its first bytes tell (None: not yet known).
fn frame_len(b: &[u8]) -> Option<usize> {
    match *b.get(1)? {
        0x03 | 0x04 | 0x06 => Some(8),
        0x10 => b.get(6).map(|n| 9 + *n as usize),
        _ => None,
    }
}

/// The request in a frame whose CRC checked.
fn request(b: &[u8]) -> Option<Request<'static>> {
    let pdu = &b[1..b.len() - 2];
    Some(match pdu[0] {
        0x03 if pdu.len() == 5 => Request::ReadHoldingRegisters(word(pdu, 1), word(pdu, 3)),
        0x04 if pdu.len() == 5 => Request::ReadInputRegisters(word(pdu, 1), word(pdu, 3)),
        0x06 if pdu.len() == 5 => Request::WriteSingleRegister(word(pdu, 1), word(pdu, 3)),
        0x10 if pdu.len() >= 6 => {
            let (count, bytes) = (word(pdu, 3) as usize, pdu[5] as usize);
            if bytes != 2 * count || pdu.len() != 6 + bytes {
                return None;
            }
            let values: Vec<u16> = (0..count).map(|i| word(pdu, 6 + 2 * i)).collect();
            Request::WriteMultipleRegisters(word(pdu, 1), values.into())
        }
        _ => return None,
    })
}

fn encode(unit: u8, function: u8, answer: Result<Response, ExceptionCode>) -> Vec<u8> {
    let mut out = vec![unit];
    match answer {
        Err(e) => out.extend([function | 0x80, u8::from(e)]),
        Ok(Response::ReadInputRegisters(regs) | Response::ReadHoldingRegisters(regs)) => {
            out.extend([function, (regs.len() * 2) as u8]);
            regs.iter().for_each(|r| out.extend(r.to_be_bytes()));
        }
        Ok(Response::WriteSingleRegister(a, v)) => {
            out.push(function);
            out.extend(a.to_be_bytes());
            out.extend(v.to_be_bytes());
        }
        Ok(Response::WriteMultipleRegisters(a, n)) => {
            out.push(function);
            out.extend(a.to_be_bytes());
            out.extend(n.to_be_bytes());
        }
        Ok(_) => out.extend([
            function | 0x80,
            u8::from(ExceptionCode::ServerDeviceFailure),
        ]),
    }
    let sum = crc(&out);
    out.extend(sum);
    out
}

/// Answers one frame (CRC checked), if it asks for an answer.
async fn answer<S>(service: &S, frame: &[u8]) -> Option<Vec<u8>>
where
    S: Service<
            Request = SlaveRequest<'static>,
            Response = Option<Response>,
            Exception = ExceptionCode,
        >,
{
    let (unit, function) = (frame[0], frame[1]);
    let Some(request) = request(frame) else {
        // A frame we cannot read as one of our functions: exception 01 or 03.
        let code = if frame_len(frame).is_some() {
            ExceptionCode::IllegalDataValue
        } else {
            ExceptionCode::IllegalFunction
        };
        return (unit != 0).then(|| encode(unit, function, Err(code)));
    };
    match service
        .call(SlaveRequest {
            slave: unit,
            request,
        })
        .await
    {
        Ok(Some(response)) => Some(encode(unit, function, Ok(response))),
        Ok(None) => None,
        Err(e) => Some(encode(unit, function, Err(e))),
    }
}

/// Serves `service` on the serial device at `path` until the task is dropped; while
/// `online` is off it hears nothing.
pub async fn serve<S>(path: String, baud: u32, service: S, online: Arc<AtomicBool>)
where
    S: Service<
            Request = SlaveRequest<'static>,
            Response = Option<Response>,
            Exception = ExceptionCode,
        >,
{
    loop {
        let mut line = match tokio_serial::SerialStream::open(&tokio_serial::new(&path, baud)) {
            Ok(line) => line,
            Err(e) => {
                tracing::warn!(error = %e, %path, "cannot open the simulated line");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let mut frame: Vec<u8> = Vec::new();
        let mut buf = [0u8; 512];
        loop {
            let read = tokio::time::timeout(GAP, line.read(&mut buf)).await;
            match read {
                Err(_) => {
                    // Silence: whatever is in hand is all the frame there is.
                    if frame.len() >= 4
                        && crc(&frame[..frame.len() - 2]) == frame[frame.len() - 2..]
                    {
                        let reply = answer(&service, &frame).await;
                        if let Some(reply) = reply.filter(|_| online.load(Ordering::Relaxed))
                            && line.write_all(&reply).await.is_err()
                        {
                            break;
                        }
                    } else if !frame.is_empty() {
                        tracing::debug!(bytes = frame.len(), "dropped a garbled frame");
                    }
                    frame.clear();
                    continue;
                }
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(n)) => frame.extend_from_slice(&buf[..n]),
            }
            // A frame of a known function is answered as soon as it is whole (the silence
            // after it is the master's wait for the answer).
            if let Some(len) = frame_len(&frame)
                && frame.len() == len
                && crc(&frame[..len - 2]) == frame[len - 2..]
            {
                let reply = answer(&service, &frame).await;
                frame.clear();
                if let Some(reply) = reply.filter(|_| online.load(Ordering::Relaxed))
                    && line.write_all(&reply).await.is_err()
                {
                    break;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_specification_s_frames() {
        // Read 10 holding registers from 0 of unit 1: 01 03 00 00 00 0A C5 CD.
        let f = [0x01, 0x03, 0x00, 0x00, 0x00, 0x0A, 0xC5, 0xCD];
        assert_eq!(crc(&f[..6]), f[6..]);
        assert_eq!(frame_len(&f), Some(8));
        assert_eq!(request(&f), Some(Request::ReadHoldingRegisters(0, 10)));
        // The exception answer to it: 01 83 02 C0 F1.
        assert_eq!(
            encode(1, 0x03, Err(ExceptionCode::IllegalDataAddress)),
            vec![0x01, 0x83, 0x02, 0xC0, 0xF1]
        );
        // Write two registers: the length comes from the byte count.
        let mut w = vec![
            0x01, 0x10, 0x00, 0x00, 0x00, 0x02, 0x04, 0x00, 0x01, 0x00, 0x04,
        ];
        w.extend(crc(&w));
        assert_eq!(frame_len(&w), Some(13));
        assert_eq!(
            request(&w),
            Some(Request::WriteMultipleRegisters(0, vec![1, 4].into()))
        );
    }
}

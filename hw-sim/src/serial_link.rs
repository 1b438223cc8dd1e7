//! A virtual serial cable: two pseudo-terminals joined back to back, with line faults.
//!
//! The simulated device owns one end (a [`SerialStream`]); the controller, or any serial
//! program, opens the other end by its path (`/dev/pts/N`) as it would open `/dev/ttyUSB0`.
//! Between the two ends the link copies bytes and can spoil them on request: inject
//! garbage, drop or delay what one side wrote, or cut the line (a device that vanishes).

use std::os::unix::fs::OpenOptionsExt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio_serial::{SerialPort, SerialStream};

/// What the line does to the bytes it carries.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LineFaults {
    /// Chance that a chunk of bytes gets garbage bytes spliced in front of it.
    pub garbage: f64,
    /// Chance that a chunk of bytes is lost.
    pub drop: f64,
    /// Extra delay of every chunk, milliseconds.
    pub delay_ms: u64,
    /// The line is cut: nothing gets through either way.
    pub cut: bool,
}

/// A running link. Dropping it stops the copying.
pub struct SerialLink {
    /// The path the controller opens.
    pub path: String,
    /// The path the simulated device opens.
    pub device_path: String,
    pub faults: Arc<Mutex<LineFaults>>,
    /// Both ends stay open here (without a lock), so that either side can close and
    /// reopen its end and the copying never sees a closed line.
    _held: [std::fs::File; 2],
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for SerialLink {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl SerialLink {
    /// Makes the cable.
    pub fn open(seed: u64) -> std::io::Result<SerialLink> {
        let (device_master, device_end) = SerialStream::pair().map_err(std::io::Error::other)?;
        let (outer_master, outer_slave) = SerialStream::pair().map_err(std::io::Error::other)?;
        // The pair's slave holds an exclusive flock; keep the line open through a plain
        // file instead, so that whoever opens the path (exclusively, as serial programs
        // do) can.
        let hold = |end: SerialStream| -> std::io::Result<(String, std::fs::File)> {
            let name = end
                .name()
                .ok_or_else(|| std::io::Error::other("the pseudo-terminal has no name"))?;
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(libc::O_NOCTTY)
                .open(&name)?;
            drop(end);
            Ok((name, file))
        };
        let (path, outer_file) = hold(outer_slave)?;
        let (device_path, device_file) = hold(device_end)?;
        let faults = Arc::new(Mutex::new(LineFaults::default()));
        let (dev_r, dev_w) = tokio::io::split(device_master);
        let (out_r, out_w) = tokio::io::split(outer_master);
        let tasks = vec![
            tokio::spawn(pump(out_r, dev_w, faults.clone(), seed)),
            tokio::spawn(pump(dev_r, out_w, faults.clone(), seed ^ 0x5A5A)),
        ];
        Ok(SerialLink {
            path,
            device_path,
            faults,
            _held: [outer_file, device_file],
            tasks,
        })
    }

    pub fn set_faults(&self, faults: LineFaults) {
        if let Ok(mut f) = self.faults.lock() {
            *f = faults;
        }
    }
}

async fn pump(
    mut from: ReadHalf<SerialStream>,
    mut to: WriteHalf<SerialStream>,
    faults: Arc<Mutex<LineFaults>>,
    seed: u64,
) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut buf = vec![0u8; 4096];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) => {
                // The other side has no opener: wait and try again.
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
            Ok(n) => n,
            Err(e) if e.raw_os_error() == Some(libc::EIO) => {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
            Err(e) => {
                tracing::debug!(error = %e, "serial link read ended");
                return;
            }
        };
        let f = faults.lock().map(|f| f.clone()).unwrap_or_default();
        if f.cut || rng.random_bool(f.drop.clamp(0.0, 1.0)) {
            continue;
        }
        if f.delay_ms > 0 {
            tokio::time::sleep(Duration::from_millis(f.delay_ms)).await;
        }
        let mut chunk = Vec::with_capacity(n + 8);
        if rng.random_bool(f.garbage.clamp(0.0, 1.0)) {
            let len = rng.random_range(1..8usize);
            chunk.extend((0..len).map(|_| rng.random::<u8>()));
        }
        chunk.extend_from_slice(&buf[..n]);
        if to.write_all(&chunk).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bytes_cross_the_cable_both_ways_and_faults_apply() {
        let link = SerialLink::open(1).unwrap();
        let open = |path: &str| {
            tokio_serial::SerialStream::open(&tokio_serial::new(path, 115200)).unwrap()
        };
        let mut device = open(&link.device_path);
        let mut controller =
            tokio_serial::SerialStream::open(&tokio_serial::new(&link.path, 115200)).unwrap();
        controller.write_all(b"hello").await.unwrap();
        let mut got = [0u8; 5];
        device.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"hello");
        device.write_all(b"back").await.unwrap();
        let mut got = [0u8; 4];
        controller.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"back");

        link.set_faults(LineFaults {
            cut: true,
            ..LineFaults::default()
        });
        controller.write_all(b"lost").await.unwrap();
        let mut one = [0u8; 1];
        let r = tokio::time::timeout(Duration::from_millis(200), device.read_exact(&mut one)).await;
        assert!(r.is_err(), "nothing crosses a cut line");
    }
}

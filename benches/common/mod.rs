//! What the benchmarks share: the bench room, the real `stackroom` binary run as a child
//! (its import, its server, a token), and the figures (percentiles, peak memory).
#![allow(dead_code)] // each benchmark uses a part

use std::io::{BufRead, BufReader, BufWriter};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use stackroom::config::RoomConfig;
use stackroom::demo;

pub const BIN: &str = env!("CARGO_BIN_EXE_stackroom");

/// The bench room's config file, in the directory given to [`BenchRoom::write`].
pub const ROOM_CONFIG: &str = "bench-room.toml";

pub fn room_config(ranges: usize) -> String {
    let demo = std::fs::read_to_string(demo::config_path()).unwrap();
    let head = demo.split("[[ranges]]").next().unwrap();
    let head = head
        .replace("profiles_dir = \"../device-profiles\"", "")
        .replace("127.0.0.1:1883", "127.0.0.1:0");
    let mut text = head.to_string();
    for id in 1..=ranges {
        text += &format!(
            "[[ranges]]\nid = {id}\ncarriages = 26\nsections = 10\nlevels = 8\nshelf_capacity = {{ boxes = 10 }}\n\n"
        );
    }
    text
}

pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

pub fn stats(mut samples: Vec<Duration>) -> String {
    samples.sort();
    format!(
        "p50 {:.1} µs, p99 {:.1} µs, max {:.1} µs (n = {})",
        percentile(&samples, 0.5).as_secs_f64() * 1e6,
        percentile(&samples, 0.99).as_secs_f64() * 1e6,
        samples.last().unwrap().as_secs_f64() * 1e6,
        samples.len()
    )
}

/// Peak resident memory of a running process, in MiB.
pub fn vm_hwm(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Runs a child to its end, sampling its peak memory; returns (wall time, peak MiB).
pub fn run_measured(mut child: Child) -> (Duration, f64) {
    let start = Instant::now();
    let mut peak: f64 = 0.0;
    loop {
        if let Some(m) = vm_hwm(child.id()) {
            peak = peak.max(m);
        }
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "child failed: {status}");
            return (start.elapsed(), peak);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn percent(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub struct Server {
    pub child: Child,
    pub base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn serve(config: &Path, data: &Path) -> Server {
    serve_with(config, data, &[])
}

pub fn serve_with(config: &Path, data: &Path, env: &[(&str, &str)]) -> Server {
    serve_build(Path::new(BIN), config, data, env)
}

/// `stackroom serve` of the build at `bin` (another commit's, to compare).
pub fn serve_build(bin: &Path, config: &Path, data: &Path, env: &[(&str, &str)]) -> Server {
    let mut command = Command::new(bin);
    command
        .envs(env.iter().copied())
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(config)
        .arg("--data")
        .arg(data);
    Server::spawn(command)
}

impl Server {
    /// Starts a server that prints `api: <base URL>` as its first line.
    pub fn spawn(mut command: Command) -> Server {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let base = line.trim().strip_prefix("api: ").unwrap().to_string();
        Server { child, base }
    }

    /// A line of `/proc/<pid>/status` (`VmRSS`, `VmHWM`, `Threads`), its first number.
    pub fn status(&self, key: &str) -> Option<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let line = status.lines().find(|l| l.starts_with(key))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    /// How many file descriptors the server holds open on `file` (one per SQLite connection).
    pub fn open_files(&self, file: &Path) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
            .map(|dir| {
                dir.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                    .filter(|target| target == file)
                    .count()
            })
            .unwrap_or(0)
    }
}

/// A viewer token for the benchmark's HTTP clients (every route but health needs one).
pub fn viewer_token(config: &Path, data: &Path) -> String {
    let out = Command::new(BIN)
        .args([
            "token", "create", "--role", "viewer", "--name", "bench", "--config",
        ])
        .arg(config)
        .arg("--data")
        .arg(data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A room of `boxes` boxes laid out like the demo's, as a config file and a CSV generated
/// like the demo seed (archive numbers following the demo rule, EPC, barcode, a Chinese
/// and English title, a shelf, a free field).
pub struct BenchRoom {
    pub config_path: PathBuf,
    pub config: RoomConfig,
    pub csv_path: PathBuf,
    pub ranges: usize,
    pub shelves: usize,
}

impl BenchRoom {
    pub fn write(dir: &Path, boxes: usize) -> BenchRoom {
        // 26 carriages x 2 faces - 2 = 50 faces x 80 shelves = 4,000 shelves a range, 10
        // boxes each; the seed puts 9 boxes on a shelf and starts each series of 60 on a
        // new shelf.
        let ranges = (boxes.div_ceil(60) * 7).div_ceil(4_000).max(1);
        let config_path = dir.join(ROOM_CONFIG);
        std::fs::write(&config_path, room_config(ranges)).unwrap();
        let config = RoomConfig::load(&config_path).unwrap();
        let shelves: Vec<_> = config.layout.shelves().collect();
        let csv_path = dir.join("boxes.csv");
        demo::write_seed_csv(
            BufWriter::new(std::fs::File::create(&csv_path).unwrap()),
            &shelves,
            boxes,
        )
        .unwrap();
        BenchRoom {
            config_path,
            config,
            csv_path,
            ranges,
            shelves: shelves.len(),
        }
    }

    /// `stackroom import` of the CSV into `data`: (wall time, peak MiB).
    pub fn import(&self, data: &Path) -> (Duration, f64) {
        self.import_file(&self.csv_path, data)
    }

    /// `stackroom import` of the CSV `csv` into `data`, with this room's config.
    pub fn import_file(&self, csv: &Path, data: &Path) -> (Duration, f64) {
        let import = Command::new(BIN)
            .arg("import")
            .arg(csv)
            .arg("--config")
            .arg(&self.config_path)
            .arg("--data")
            .arg(data)
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        run_measured(import)
    }
}

/// The number `name` in the environment, else `default`.
pub fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `BOXES` from the environment, else a million.
pub fn boxes() -> usize {
    env("BOXES", 1_000_000) as usize
}

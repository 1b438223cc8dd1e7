//! Reader drivers: one task per reader turns "read port P for D" into tag reads, whatever
//! the reader speaks (R2000 or Mercury on a serial line, Impinj IoT events on MQTT).
//!
//! A corrupt or partial frame is counted and skipped; the decoders resynchronise. A reader
//! that does not answer makes the request fail with a clear error, and the driver opens its
//! line again for the next request.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event as MqttEvent, Packet, QoS};
use stackroom_wire::mercury::{self, Command, Direction, Frame, TagRecord};
use stackroom_wire::mqtt_json::ImpinjEvent;
use stackroom_wire::profile::{ImpinjIot, Mercury, R2000};
use stackroom_wire::r2000::{self, Packet as R2000Packet, Reply};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio_serial::SerialStream;

use super::live::Live;
use super::pipeline::TagRead;
use crate::link::Backoff;

/// Why a read did not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReaderError {
    #[error("reader {reader}: cannot open {path}: {message}")]
    Open {
        reader: String,
        path: String,
        message: String,
    },
    #[error("reader {0} did not answer")]
    Silent(String),
    #[error("reader {reader}: {message}")]
    Refused { reader: String, message: String },
    #[error("reader {0}'s driver has stopped")]
    Gone(String),
}

/// Counters of a reader.
#[derive(Debug, Default)]
pub struct ReaderCounters {
    pub reads: AtomicU64,
    pub corrupt_frames: AtomicU64,
    pub failures: AtomicU64,
    /// How long the reader's last inventory round took, µs (0: none yet): a round cannot be
    /// cut short, so a dwell shorter than this still takes this long.
    pub round_us: AtomicU64,
}

/// What a reader read on a group of ports ([`ReaderHandle::inventory_group`]).
#[derive(Debug, Default)]
pub struct GroupRead {
    pub reads: Vec<TagRead>,
    /// Ports of the group the reader could not read, with its reason; the others were read.
    pub refused: Vec<(u16, String)>,
}

impl From<Vec<TagRead>> for GroupRead {
    /// Reads of ports that were all read.
    fn from(reads: Vec<TagRead>) -> GroupRead {
        GroupRead {
            reads,
            refused: Vec::new(),
        }
    }
}

type Reply_ = oneshot::Sender<Result<GroupRead, ReaderError>>;
type Request = (Vec<u16>, Duration, Reply_);

/// Ports one R2000 fast-switch inventory (0x8A) visits.
pub const FAST_SWITCH_SLOTS: usize = 4;

/// How a reader reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// It reads the port it is told to, for as long as it is told (serial readers).
    Commanded,
    /// It cycles through its ports on its own, one `cycle` for all of them, and publishes
    /// what it hears (an Impinj reader with an inventory preset): to read its ports, listen
    /// for a whole cycle, of which each port has `dwell`.
    Autonomous { cycle: Duration, dwell: Duration },
}

/// Port 0 asks an autonomous reader for every port it hears.
pub const ALL_PORTS: u16 = 0;

/// How the controller asks a reader to read.
#[derive(Clone)]
pub struct ReaderHandle {
    pub id: String,
    pub mode: Mode,
    pub counters: Arc<ReaderCounters>,
    /// How many ports the reader reads in one command: more than one where it visits
    /// several antennas itself (the R2000's fast switch).
    pub group: usize,
    requests: mpsc::Sender<Request>,
}

impl ReaderHandle {
    /// Reads antenna `port` for `dwell` ([`ALL_PORTS`] with an autonomous reader: every
    /// port heard during `dwell`).
    pub async fn inventory(&self, port: u16, dwell: Duration) -> Result<Vec<TagRead>, ReaderError> {
        let group = self.inventory_group(&[port], dwell).await?;
        match group.refused.into_iter().next() {
            Some((_, message)) => Err(ReaderError::Refused {
                reader: self.id.clone(),
                message,
            }),
            None => Ok(group.reads),
        }
    }

    /// Reads each of `ports` for `dwell`: a reader with a [`ReaderHandle::group`] above one
    /// takes any number and reads them that many per command; the others read one port
    /// per request and refuse more.
    pub async fn inventory_group(
        &self,
        ports: &[u16],
        dwell: Duration,
    ) -> Result<GroupRead, ReaderError> {
        // A reader that reads one port per command would read the first and drop the rest,
        // which would then pass for read.
        if self.mode == Mode::Commanded && self.group == 1 && ports.len() > 1 {
            return Err(ReaderError::Refused {
                reader: self.id.clone(),
                message: format!(
                    "{} ports asked in one request, this reader reads one per command",
                    ports.len()
                ),
            });
        }
        let (tx, rx) = oneshot::channel();
        self.requests
            .send((ports.to_vec(), dwell, tx))
            .await
            .map_err(|_| ReaderError::Gone(self.id.clone()))?;
        let result = rx.await.map_err(|_| ReaderError::Gone(self.id.clone()))?;
        match &result {
            // An autonomous reader's reads are counted as they arrive.
            Ok(group) if self.mode == Mode::Commanded => {
                self.counters.reads.fetch_add(
                    group.reads.iter().map(|r| u64::from(r.count)).sum(),
                    Ordering::Relaxed,
                );
            }
            Ok(_) => {}
            Err(_) => {
                self.counters.failures.fetch_add(1, Ordering::Relaxed);
            }
        }
        result
    }
}

/// How a reader is reached.
#[derive(Debug, Clone)]
pub enum ReaderWire {
    R2000 {
        path: String,
        baud: u32,
        settings: R2000,
    },
    Mercury {
        path: String,
        baud: u32,
        settings: Mercury,
    },
    Impinj {
        broker: crate::bus::Endpoint,
        prefix: String,
        settings: ImpinjIot,
    },
}

/// Starts the driver of reader `id`; an autonomous reader's reads also go to `tap` as
/// they arrive.
/// Starts a reader's driver loop among `tasks`.
pub fn start(
    id: String,
    wire: ReaderWire,
    tap: Option<Live>,
    tasks: &crate::link::Tasks,
) -> ReaderHandle {
    let (tx, rx) = mpsc::channel(8);
    let counters = Arc::new(ReaderCounters::default());
    let mode = match &wire {
        ReaderWire::Impinj { settings, .. } => {
            let dwell = Duration::from_millis(settings.dwell_ms.max(10));
            Mode::Autonomous {
                cycle: dwell * u32::from(settings.ports.max(1)),
                dwell,
            }
        }
        _ => Mode::Commanded,
    };
    let group = match &wire {
        ReaderWire::R2000 { settings, .. } if settings.fast_switch => FAST_SWITCH_SLOTS,
        _ => 1,
    };
    let handle = ReaderHandle {
        id: id.clone(),
        mode,
        counters: counters.clone(),
        group,
        requests: tx,
    };
    match wire {
        ReaderWire::R2000 {
            path,
            baud,
            settings,
        } => {
            tasks.spawn(serial_loop(
                id,
                path,
                baud,
                counters,
                rx,
                move |line, fresh, ports, dwell, reader, counters| {
                    let settings = settings.clone();
                    Box::pin(async move {
                        if settings.fast_switch {
                            return r2000_fast_switch(
                                line, settings, fresh, ports, dwell, reader, counters,
                            )
                            .await;
                        }
                        let port = ports.first().copied().unwrap_or(ALL_PORTS);
                        r2000_inventory(line, settings, fresh, port, dwell, reader, counters)
                            .await
                            .map(GroupRead::from)
                    })
                },
            ));
        }
        ReaderWire::Mercury {
            path,
            baud,
            settings,
        } => {
            tasks.spawn(serial_loop(
                id,
                path,
                baud,
                counters,
                rx,
                move |line, fresh, ports, dwell, reader, counters| {
                    let settings = settings.clone();
                    Box::pin(async move {
                        let port = ports.first().copied().unwrap_or(ALL_PORTS);
                        mercury_inventory(line, settings, fresh, port, dwell, reader, counters)
                            .await
                            .map(GroupRead::from)
                    })
                },
            ));
        }
        ReaderWire::Impinj {
            broker,
            prefix,
            settings,
        } => {
            tasks.spawn(impinj_loop(id, broker, prefix, settings, counters, tap, rx));
        }
    }
    handle
}

/// Milliseconds on this host's monotonic clock, counted from the process's first read: the
/// time base of every [`TagRead::at_ms`], shared by all readers and requests, so reads of
/// one tag in two requests are never taken for one.
fn host_ms() -> u64 {
    static ORIGIN: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    ORIGIN.get_or_init(Instant::now).elapsed().as_millis() as u64
}

type Inventory<'a> = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<GroupRead, ReaderError>> + Send + 'a>,
>;

#[tracing::instrument(name = "device", skip_all, fields(device = %id))]
async fn serial_loop<F>(
    id: String,
    path: String,
    baud: u32,
    counters: Arc<ReaderCounters>,
    mut requests: mpsc::Receiver<Request>,
    inventory: F,
) where
    F: for<'a> Fn(
            &'a mut SerialStream,
            bool,
            &'a [u16],
            Duration,
            &'a str,
            &'a ReaderCounters,
        ) -> Inventory<'a>
        + Send
        + 'static,
{
    let mut line: Option<SerialStream> = None;
    // Whether the reader still has to be configured (power, session) on this line.
    let mut fresh = true;
    // After a failed open the device is not tried again before `retry_at`; the wait
    // doubles with each failure, so a missing adapter is not hammered.
    let mut backoff = Backoff::default();
    let mut retry_at: Option<(Instant, String)> = None;
    while let Some((ports, dwell, reply)) = requests.recv().await {
        if ports.is_empty() || ports.contains(&ALL_PORTS) {
            let _ = reply.send(Err(ReaderError::Refused {
                reader: id.clone(),
                message: "a commanded reader reads the ports it is told".into(),
            }));
            continue;
        }
        if line.is_none() {
            if let Some((at, why)) = retry_at.as_ref().filter(|(at, _)| Instant::now() < *at) {
                let _ = reply.send(Err(ReaderError::Open {
                    reader: id.clone(),
                    path: path.clone(),
                    message: format!(
                        "{why} (next try in {} ms)",
                        at.saturating_duration_since(Instant::now()).as_millis()
                    ),
                }));
                continue;
            }
            match SerialStream::open(&tokio_serial::new(&path, baud)) {
                Ok(l) => {
                    line = Some(l);
                    fresh = true;
                    backoff.reset();
                    retry_at = None;
                }
                Err(e) => {
                    tracing::warn!(reader = %id, %path, error = %e, "cannot open the reader's line");
                    retry_at = Some((Instant::now() + backoff.next_pause(), e.to_string()));
                    let _ = reply.send(Err(ReaderError::Open {
                        reader: id.clone(),
                        path: path.clone(),
                        message: e.to_string(),
                    }));
                    continue;
                }
            }
        }
        let Some(l) = line.as_mut() else { continue };
        let result = inventory(l, fresh, &ports, dwell, &id, &counters).await;
        match result {
            // Open the line afresh next time: the reader may have been replugged.
            Err(ReaderError::Silent(_)) => line = None,
            Ok(_) => fresh = false,
            Err(_) => {}
        }
        let _ = reply.send(result);
    }
}

/// Reads packets until `until` (a deadline) or `done` says the answer is complete.
async fn r2000_exchange(
    line: &mut SerialStream,
    request: R2000Packet,
    deadline: tokio::time::Instant,
    counters: &ReaderCounters,
    mut done: impl FnMut(Reply) -> bool,
) -> Result<(), ()> {
    line.write_all(&request.encode()).await.map_err(|_| ())?;
    let mut decoder = r2000::Decoder::default();
    let mut buf = [0u8; 512];
    loop {
        while let Some(p) = decoder.next_packet() {
            if p.cmd != request.cmd {
                continue;
            }
            match Reply::parse(&p) {
                Ok(reply) => {
                    if done(reply) {
                        counters
                            .corrupt_frames
                            .fetch_add(decoder.corrupt(), Ordering::Relaxed);
                        return Ok(());
                    }
                }
                Err(_) => {
                    counters.corrupt_frames.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        match tokio::time::timeout_at(deadline, line.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => decoder.push(&buf[..n]),
            _ => {
                counters
                    .corrupt_frames
                    .fetch_add(decoder.corrupt(), Ordering::Relaxed);
                return Err(());
            }
        }
    }
}

/// Sends a command answered by a result code; Err(None) if the reader did not answer.
async fn r2000_command(
    line: &mut SerialStream,
    request: R2000Packet,
    counters: &ReaderCounters,
) -> Result<(), Option<u8>> {
    let mut code = None;
    r2000_exchange(
        line,
        request,
        tokio::time::Instant::now() + Duration::from_secs(1),
        counters,
        |r| {
            if let Reply::Result { code: c, .. } = r {
                code = Some(c);
                true
            } else {
                false
            }
        },
    )
    .await
    .map_err(|_| None)?;
    match code {
        Some(r2000::SUCCESS) => Ok(()),
        other => Err(Some(other.unwrap_or(0))),
    }
}

/// What a reader is told once on a fresh line: its output power.
async fn r2000_setup(
    line: &mut SerialStream,
    settings: &R2000,
    reader: &str,
    counters: &ReaderCounters,
) -> Result<(), ReaderError> {
    let Some(dbm) = settings.power_dbm else {
        return Ok(());
    };
    let power = R2000Packet::new(settings.address, r2000::CMD_SET_OUTPUT_POWER, vec![dbm]);
    match r2000_command(line, power, counters).await {
        Ok(()) => Ok(()),
        Err(None) => Err(ReaderError::Silent(reader.to_string())),
        Err(Some(code)) => Err(ReaderError::Refused {
            reader: reader.to_string(),
            message: format!("set output power {dbm} dBm: error code 0x{code:02X}"),
        }),
    }
}

async fn r2000_inventory(
    line: &mut SerialStream,
    settings: R2000,
    fresh: bool,
    port: u16,
    dwell: Duration,
    reader: &str,
    counters: &ReaderCounters,
) -> Result<Vec<TagRead>, ReaderError> {
    let origin = Instant::now();
    let silent = || ReaderError::Silent(reader.to_string());
    let refused = |message: String| ReaderError::Refused {
        reader: reader.to_string(),
        message,
    };
    if fresh {
        r2000_setup(line, &settings, reader, counters).await?;
    }
    let antenna = u8::try_from(port.saturating_sub(1)).unwrap_or(u8::MAX);
    let set = R2000Packet::new(settings.address, r2000::CMD_SET_WORK_ANTENNA, vec![antenna]);
    match r2000_command(line, set, counters).await {
        Ok(()) => {}
        Err(None) => return Err(silent()),
        Err(Some(code)) => {
            return Err(refused(format!(
                "set work antenna {port}: error code 0x{code:02X}"
            )));
        }
    }
    let mut reads = Vec::new();
    let stop = origin + dwell;
    loop {
        let sent = Instant::now();
        let repeat = settings.repeat.max(1);
        let inventory = match settings.session {
            Some(session) => R2000Packet::new(
                settings.address,
                r2000::CMD_SESSION_INVENTORY,
                vec![session, 0, repeat],
            ),
            None => R2000Packet::new(
                settings.address,
                r2000::CMD_REAL_TIME_INVENTORY,
                vec![repeat],
            ),
        };
        let mut failure = None;
        r2000_exchange(
            line,
            inventory,
            tokio::time::Instant::now() + Duration::from_secs(2),
            counters,
            |r| match r {
                Reply::Tag(t) => {
                    // The packet's antenna field has three bits; behind a multiplexer the
                    // work antenna is the port.
                    reads.push(r2000_read(reader, port, &t));
                    false
                }
                Reply::RoundEnd { .. } => true,
                Reply::Result { code, .. } => {
                    failure = Some(code);
                    true
                }
                Reply::Other(_) | Reply::SwitchEnd { .. } | Reply::AntennaFault { .. } => false,
            },
        )
        .await
        .map_err(|_| silent())?;
        if let Some(code) = failure {
            let message = if code == r2000::ANTENNA_MISSING {
                format!("no antenna on port {port}")
            } else {
                format!("inventory on port {port}: error code 0x{code:02X}")
            };
            return Err(ReaderError::Refused {
                reader: reader.to_string(),
                message,
            });
        }
        // A command's rounds cannot be cut short: another one is sent only if it ends
        // within the dwell, as long as this one took.
        let took = sent.elapsed();
        counters.round_us.store(
            (took / u32::from(repeat)).as_micros() as u64,
            Ordering::Relaxed,
        );
        if Instant::now() + took > stop {
            return Ok(per_tag(reads));
        }
    }
}

/// The reads of one command, one per tag and port with the number of rounds that heard it
/// and its strongest signal, as a Mercury's tag buffer reports them. A round of a few tags
/// is shorter than the pipeline's duplicate window, so round by round they would be taken
/// for one read reported twice.
fn per_tag(reads: Vec<TagRead>) -> Vec<TagRead> {
    let mut index: std::collections::HashMap<(u16, String), usize> = Default::default();
    let mut out: Vec<TagRead> = Vec::new();
    for read in reads {
        match index.entry((read.port, read.epc.clone())) {
            std::collections::hash_map::Entry::Occupied(o) => {
                let kept = &mut out[*o.get()];
                kept.count += read.count;
                kept.rssi_dbm = kept.rssi_dbm.max(read.rssi_dbm);
            }
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(out.len());
                out.push(read);
            }
        }
    }
    out
}

/// A tag packet as a read of `port`.
fn r2000_read(reader: &str, port: u16, t: &r2000::TagPacket) -> TagRead {
    TagRead {
        reader: reader.to_string(),
        port,
        epc: t.epc.iter().map(|b| format!("{b:02X}")).collect(),
        rssi_dbm: t.rssi_dbm as f64,
        at_ms: host_ms(),
        frequency_khz: Some(902_750 + 500 * t.frequency as u32),
        phase_deg: None,
        count: 1,
    }
}

/// Reads `ports` with fast-switch inventories (0x8A), up to four per command: as many
/// rounds on each antenna as fit in `dwell` (by the last round's duration), at least one.
/// Tag packets name the antenna by its low bits only (three, and behind a multiplexer the
/// slot is all there is), so one command takes ports that differ in their two low bits.
async fn r2000_fast_switch(
    line: &mut SerialStream,
    settings: R2000,
    fresh: bool,
    ports: &[u16],
    dwell: Duration,
    reader: &str,
    counters: &ReaderCounters,
) -> Result<GroupRead, ReaderError> {
    let silent = || ReaderError::Silent(reader.to_string());
    if fresh {
        r2000_setup(line, &settings, reader, counters).await?;
    }
    let mut out = GroupRead::default();
    // A slot's antenna byte is the port less one, and 0xFF switches the slot off: a port
    // outside 1 to 255 is refused, never sent as a slot that reads nothing.
    let (mut rest, outside): (Vec<u16>, Vec<u16>) =
        ports.iter().partition(|&&p| (1..=255).contains(&p));
    out.refused.extend(
        outside
            .into_iter()
            .map(|p| (p, format!("no port {p} on an R2000"))),
    );
    while !rest.is_empty() {
        // The next command: ports in order whose slots (low two bits) differ.
        let mut slots: Vec<u16> = Vec::new();
        rest.retain(|&p| {
            let free = slots.len() < FAST_SWITCH_SLOTS
                && !slots.iter().any(|&q| (q - 1) & 3 == (p - 1) & 3);
            if free {
                slots.push(p);
            }
            !free
        });
        let round = Duration::from_micros(counters.round_us.load(Ordering::Relaxed));
        let stay = if round.is_zero() {
            settings.repeat.max(1)
        } else {
            (dwell.as_micros() / round.as_micros().max(1)).clamp(1, 255) as u8
        };
        let command = r2000::FastSwitch {
            slots: slots
                .iter()
                .map(|&p| (u8::try_from(p - 1).unwrap_or(u8::MAX), stay))
                .collect(),
            interval_ms: 0,
            repeat: 1,
        };
        let port_of = |antenna: u8| {
            slots
                .iter()
                .copied()
                .find(|&p| (p - 1) & 3 == u16::from(antenna & 3))
        };
        let mut failure = None;
        let mut rounds_took = None;
        let budget = Duration::from_secs(2) + dwell * (slots.len() as u32) * 2;
        r2000_exchange(
            line,
            command.to_packet(settings.address),
            tokio::time::Instant::now() + budget,
            counters,
            |r| match r {
                Reply::Tag(t) => {
                    if let Some(port) = port_of(t.antenna) {
                        out.reads.push(r2000_read(reader, port, &t));
                    }
                    false
                }
                Reply::AntennaFault { antenna, code } => {
                    if let Some(port) = port_of(antenna) {
                        let why = if code == r2000::ANTENNA_MISSING {
                            format!("no antenna on port {port}")
                        } else {
                            format!("inventory on port {port}: error code 0x{code:02X}")
                        };
                        out.refused.push((port, why));
                    }
                    false
                }
                Reply::SwitchEnd { duration_ms, .. } => {
                    rounds_took = Some(duration_ms);
                    true
                }
                Reply::Result { code, .. } => {
                    failure = Some(code);
                    true
                }
                Reply::RoundEnd { .. } | Reply::Other(_) => false,
            },
        )
        .await
        .map_err(|_| silent())?;
        if let Some(code) = failure {
            return Err(ReaderError::Refused {
                reader: reader.to_string(),
                message: format!(
                    "fast-switch inventory of ports {slots:?}: error code 0x{code:02X}"
                ),
            });
        }
        // The reader says how long its rounds took: the next stay is fitted to it.
        let read_slots = slots.len()
            - out
                .refused
                .iter()
                .filter(|(p, _)| slots.contains(p))
                .count();
        if let Some(ms) = rounds_took
            && read_slots > 0
        {
            let rounds = read_slots as u32 * u32::from(stay);
            counters
                .round_us
                .store(u64::from(ms) * 1000 / u64::from(rounds), Ordering::Relaxed);
        }
    }
    out.reads = per_tag(out.reads);
    Ok(out)
}

async fn mercury_ask(
    line: &mut SerialStream,
    command: Command,
    answers: usize,
    timeout: Duration,
    counters: &ReaderCounters,
) -> Result<Vec<mercury::Response>, ()> {
    line.write_all(&command.encode().map_err(|_| ())?)
        .await
        .map_err(|_| ())?;
    let mut decoder = mercury::Decoder::new(Direction::ReaderToHost);
    let deadline = tokio::time::Instant::now() + timeout;
    let mut out = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        while let Some(Frame::Response(r)) = decoder.next_frame() {
            if r.opcode == command.opcode {
                // A failure status ends the answer whatever was expected.
                let last = r.status != mercury::OK;
                out.push(r);
                if out.len() >= answers || last {
                    counters
                        .corrupt_frames
                        .fetch_add(decoder.corrupt(), Ordering::Relaxed);
                    return Ok(out);
                }
            }
        }
        match tokio::time::timeout_at(deadline, line.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => decoder.push(&buf[..n]),
            _ => {
                counters
                    .corrupt_frames
                    .fetch_add(decoder.corrupt(), Ordering::Relaxed);
                return Err(());
            }
        }
    }
}

async fn mercury_inventory(
    line: &mut SerialStream,
    settings: Mercury,
    fresh: bool,
    port: u16,
    dwell: Duration,
    reader: &str,
    counters: &ReaderCounters,
) -> Result<Vec<TagRead>, ReaderError> {
    let silent = || ReaderError::Silent(reader.to_string());
    let refused = |what: &str, status: u16| ReaderError::Refused {
        reader: reader.to_string(),
        message: format!("{what}: status 0x{status:04X}"),
    };
    let quick = Duration::from_secs(1);
    let mut setup = Vec::new();
    if fresh && let Some(dbm) = settings.power_dbm {
        let centi = (dbm * 100.0).round() as u16;
        setup.push((
            format!("set read TX power {dbm} dBm"),
            Command::new(mercury::OP_SET_READ_TX_POWER, centi.to_be_bytes().to_vec()),
        ));
    }
    if fresh && let Some(session) = settings.session {
        setup.push((
            format!("set Gen2 session S{session}"),
            Command::new(
                mercury::OP_SET_PROTOCOL_PARAM,
                vec![mercury::PROTOCOL_GEN2, mercury::GEN2_SESSION, session],
            ),
        ));
    }
    for (what, command) in setup {
        let r = mercury_ask(line, command, 1, quick, counters)
            .await
            .map_err(|_| silent())?;
        if r[0].status != mercury::OK {
            return Err(refused(&what, r[0].status));
        }
    }
    let p = u8::try_from(port).unwrap_or(u8::MAX);
    let r = mercury_ask(
        line,
        Command::new(mercury::OP_SET_ANTENNA_PORT, vec![p, p]),
        1,
        quick,
        counters,
    )
    .await
    .map_err(|_| silent())?;
    if r[0].status != mercury::OK {
        return Err(refused(&format!("set antenna port {port}"), r[0].status));
    }
    mercury_ask(
        line,
        Command::new(mercury::OP_CLEAR_TAG_BUFFER, vec![]),
        1,
        quick,
        counters,
    )
    .await
    .map_err(|_| silent())?;
    let timeout_ms = dwell.as_millis().clamp(10, u16::MAX as u128) as u16;
    let r = mercury_ask(
        line,
        Command::new(
            mercury::OP_READ_TAG_MULTIPLE,
            timeout_ms.to_be_bytes().to_vec(),
        ),
        1,
        dwell + quick,
        counters,
    )
    .await
    .map_err(|_| silent())?;
    let count = match r[0].status {
        mercury::OK => r[0].data.first().copied().unwrap_or(0) as usize,
        mercury::FAULT_NO_TAGS_FOUND => return Ok(vec![]),
        status => return Err(refused("read tag multiple", status)),
    };
    // Get Tag Buffer answers one response per request, as many records as fit in a frame,
    // from where the last one stopped: ask until every tag the read counted has come (as
    // the vendor's host library does, TMR_SR_getNextTag).
    let flags = settings.metadata_flags.to_be_bytes();
    let mut reads = Vec::new();
    let mut records = 0;
    while records < count {
        let answer = mercury_ask(
            line,
            Command::new(mercury::OP_GET_TAG_BUFFER, vec![flags[0], flags[1], 0x00]),
            1,
            quick,
            counters,
        )
        .await
        .map_err(|_| silent())?;
        let a = &answer[0];
        if a.status != mercury::OK {
            return Err(refused(
                &format!("get tag buffer after {records} of {count} tags"),
                a.status,
            ));
        }
        // A response that does not decode leaves the port unread: its tags are unknown,
        // not absent.
        let (_, batch) = TagRecord::decode_buffer(&a.data).map_err(|e| {
            counters.corrupt_frames.fetch_add(1, Ordering::Relaxed);
            ReaderError::Refused {
                reader: reader.to_string(),
                message: e.to_string(),
            }
        })?;
        if batch.is_empty() {
            return Err(ReaderError::Refused {
                reader: reader.to_string(),
                message: format!("the tag buffer gave {records} of the {count} tags it counted"),
            });
        }
        records += batch.len();
        for t in batch {
            // One record stands for read_count reads of the tag, its best RSSI.
            reads.push(TagRead {
                reader: reader.to_string(),
                // The record's antenna byte names the module's own port; behind a
                // multiplexer the logical port is the one set.
                port,
                epc: t.epc.iter().map(|b| format!("{b:02X}")).collect(),
                rssi_dbm: t.rssi_dbm as f64,
                at_ms: host_ms(),
                frequency_khz: (t.frequency_khz != 0).then_some(t.frequency_khz),
                phase_deg: None,
                count: u32::from(t.read_count).max(1),
            });
        }
    }
    Ok(reads)
}

#[tracing::instrument(name = "device", skip_all, fields(device = %id))]
async fn impinj_loop(
    id: String,
    broker: crate::bus::Endpoint,
    prefix: String,
    settings: ImpinjIot,
    counters: Arc<ReaderCounters>,
    tap: Option<Live>,
    mut requests: mpsc::Receiver<Request>,
) {
    let topic = format!("{prefix}/{}", settings.event_topic);
    let mut options = broker.options(Some(&id));
    options.set_keep_alive(Duration::from_secs(5));
    options.set_max_packet_size(256 * 1024, 256 * 1024);
    let (client, mut events) = AsyncClient::new(options, 64);
    // Every event the reader publishes is a sign of life; tag events also carry a read.
    let (tx, mut incoming) = mpsc::channel::<Option<TagRead>>(4096);
    let reader = id.clone();
    // The broker session lives as long as this loop (aborted or ended).
    let _session = crate::link::AbortOnDrop(tokio::spawn(async move {
        let mut backoff = Backoff::default();
        loop {
            match events.poll().await {
                Ok(MqttEvent::Incoming(Packet::ConnAck(_))) => {
                    backoff.reset();
                    let _ = client.try_subscribe(topic.clone(), QoS::AtMostOnce);
                }
                Ok(MqttEvent::Incoming(Packet::Publish(p))) => {
                    let Ok(event) = serde_json::from_slice::<ImpinjEvent>(&p.payload) else {
                        counters.corrupt_frames.fetch_add(1, Ordering::Relaxed);
                        continue;
                    };
                    let Some(tag) = event.tag_inventory_event else {
                        let _ = tx.try_send(None);
                        continue;
                    };
                    let Some(epc) = tag.epc_hex() else {
                        counters.corrupt_frames.fetch_add(1, Ordering::Relaxed);
                        continue;
                    };
                    let read = TagRead {
                        reader: reader.clone(),
                        port: tag.antenna_port,
                        epc,
                        rssi_dbm: tag.peak_rssi_cdbm.map_or(-70.0, |c| c as f64 / 100.0),
                        at_ms: host_ms(),
                        frequency_khz: tag.frequency,
                        phase_deg: tag.phase_angle.map(|p| p as f32),
                        count: 1,
                    };
                    counters.reads.fetch_add(1, Ordering::Relaxed);
                    if let Some(live) = &tap {
                        live.offer(vec![read.clone()]);
                    }
                    let _ = tx.try_send(Some(read));
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(backoff.next_pause()).await,
            }
        }
    }));
    while let Some((ports, dwell, reply)) = requests.recv().await {
        // Only what arrives during the dwell counts; a reader that published nothing at all
        // in it is not heard from, which is not the same as hearing no tags.
        while incoming.try_recv().is_ok() {}
        let stop = tokio::time::Instant::now() + dwell;
        let mut reads = Vec::new();
        let mut alive = false;
        while let Ok(Some(event)) = tokio::time::timeout_at(stop, incoming.recv()).await {
            alive = true;
            if let Some(read) =
                event.filter(|r| ports.contains(&ALL_PORTS) || ports.contains(&r.port))
            {
                reads.push(read);
            }
        }
        let _ = reply.send(if alive {
            Ok(reads.into())
        } else {
            Err(ReaderError::Silent(id.clone()))
        });
    }
}

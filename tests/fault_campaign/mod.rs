//! A seeded fault campaign against the range controllers, with the simulated PLCs' own
//! interlocks switched off: only the controller stands between a person and a closing
//! aisle. Used by `tests/campaign.rs` (a few hundred scenarios in CI) and
//! `benches/campaign.rs` (ten thousand and more).
//!
//! A room of small ranges on every shelving transport (Modbus RTU, MQTT JSON, framed bytes
//! on a serial line, Modbus TCP) runs in hw-sim; the real `Shelving` drives it. Each range runs
//! scenarios one after the other: a few motion requests (some automatic) at random moments
//! and a few hazards (people stepping into open gaps, mostly the closing one; e-stops and
//! e-stop pulses; unplugged devices; line delay, drops, garbage and cuts; motor faults;
//! obstacles; room alarms; Stop and Lock), with the PLC acting on its next scan 0 to 50 ms
//! late. What reached each PLC (its command log), the world (sampled at 20 Hz) and every
//! operation's states are then judged by an oracle that knows nothing of the controller's
//! code — see [`judge`] for the rules and the slack each is given.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hw_sim::Simulator;
use hw_sim::serial_link::LineFaults;
use hw_sim::shelving::{Command, Fault, LoggedCommand, Motion, PlcSettings, RangeSim};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use stackroom::config::RoomConfig;
use stackroom::mqtt::EmbeddedBroker;
use stackroom::shelving::plan::{Geometry, Goal};
use stackroom::shelving::{Event, OpState, Shelving, Wiring};
use stackroom::sim::{self, SimSettings};

/// How big a campaign.
#[derive(Debug, Clone)]
pub struct Settings {
    pub seed: u64,
    /// Scenarios in all, shared out over the ranges.
    pub scenarios: usize,
    /// Ranges of each transport.
    pub ranges_per_transport: u16,
    pub time_scale: f64,
}

/// One breach of a rule.
#[derive(Debug, Clone)]
pub struct Violation {
    pub kind: &'static str,
    pub range: u16,
    pub scenario: usize,
    pub detail: String,
}

/// What a campaign did and found.
#[derive(Debug, Default)]
pub struct Report {
    pub scenarios: usize,
    pub requests: usize,
    pub hazards: BTreeMap<&'static str, usize>,
    pub motion_commands: usize,
    pub stop_commands: usize,
    pub stops_reported_unconfirmed: usize,
    /// Hazards that came while the carriages were moving.
    pub hazards_in_motion: usize,
    /// Times a range did not come back to rest between scenarios within 10 s.
    pub stuck: usize,
    pub violations: Vec<Violation>,
    pub elapsed: Duration,
}

/// Every rule the oracle checks, in the order of the report.
pub const RULES: [&str; 9] = [
    "command_into_occupied_gap",
    "command_during_hazard",
    "command_without_operation",
    "no_warning_before_motion",
    "unsupervised_motion",
    "no_stop_on_hazard",
    "restart_without_request",
    "stop_done_unsent",
    "stop_neither_confirmed_nor_reported",
];

impl Report {
    pub fn counts(&self) -> BTreeMap<&'static str, usize> {
        let mut out: BTreeMap<&'static str, usize> = RULES.iter().map(|r| (*r, 0)).collect();
        for v in &self.violations {
            *out.entry(v.kind).or_default() += 1;
        }
        out
    }

    pub fn summary(&self) -> String {
        let hazards: usize = self.hazards.values().sum();
        let mut out = format!(
            "{} scenarios, {} motion requests, {hazards} hazards ({}; {} during a motion), {} motion commands and {} stops received by the PLCs, {} stops reported unconfirmed, {} times a range was slow to settle, in {:.0} s\n",
            self.scenarios,
            self.requests,
            self.hazards
                .iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect::<Vec<_>>()
                .join(", "),
            self.hazards_in_motion,
            self.motion_commands,
            self.stop_commands,
            self.stops_reported_unconfirmed,
            self.stuck,
            self.elapsed.as_secs_f64()
        );
        for (rule, n) in self.counts() {
            out += &format!("  {rule}: {n}\n");
        }
        for v in self.violations.iter().take(20) {
            out += &format!(
                "  ! range {} scenario {}: {}: {}\n",
                v.range, v.scenario, v.kind, v.detail
            );
        }
        out
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The transports, one range of each in turn.
const TRANSPORTS: u16 = 4;

/// The transport of range `id` (1-based): Modbus RTU, MQTT JSON, framed bytes, Modbus TCP,
/// in turn.
fn transport(id: u16) -> &'static str {
    match id % TRANSPORTS {
        1 => "modbus",
        2 => "mqtt",
        3 => "framed",
        _ => "modbus_tcp",
    }
}

fn config(ranges: u16) -> RoomConfig {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut text = format!(
        r#"profiles_dir = {:?}
[site]
id = "campaign"
[room]
id = "bench"
[archive_number]
pattern = "{{n}}"
[archive_number.parts]
n = "[0-9]+"
[shelving]
start_delay_ms = 300
automatic_start_delay_ms = 600
automatic_clear_s = 2
queue_expiry_ms = 3000
queue_length = 4
confirm_window_ms = 2000
stop_retry_ms = 200
"#,
        root.join("device-profiles")
    );
    for id in 1..=ranges {
        // Fixed ends both, first, none in turn: the walls' gaps matter in the others.
        let ends = ["both", "first", "none"][(id as usize / TRANSPORTS as usize) % 3];
        text += &format!(
            "[[ranges]]\nid = {id}\ncarriages = 6\nfixed_ends = \"{ends}\"\nsections = 1\nlevels = 1\nshelf_capacity = {{ boxes = 1 }}\n"
        );
        let (profile, wire) = match transport(id) {
            "modbus" => (
                "generic-modbus-shelving",
                "{ serial = { path = \"/dev/null\", baud = 19200, unit = 1 } }".to_string(),
            ),
            "mqtt" => (
                "mqtt-json-shelving",
                format!("{{ mqtt = {{ prefix = \"devices/shelving-{id}\" }} }}"),
            ),
            "modbus_tcp" => (
                "generic-modbus-shelving",
                "{ modbus_tcp = { address = \"127.0.0.1:502\", unit = 1 } }".to_string(),
            ),
            _ => (
                "framed-shelving",
                "{ serial = { path = \"/dev/null\", baud = 9600 } }".to_string(),
            ),
        };
        text += &format!(
            "[[devices]]\nid = \"shelving-{id}\"\nprofile = \"{profile}\"\nrange = {id}\ntransport = {wire}\n"
        );
    }
    RoomConfig::parse(&root.join("config/campaign.toml"), &text).expect("the campaign's room")
}

/// An operation as the campaign saw it go by.
#[derive(Debug, Clone)]
struct OpRecord {
    kind: String,
    created_ms: i64,
    states: Vec<(i64, OpState, Option<String>)>,
}

impl OpRecord {
    fn state_at(&self, t: i64) -> Option<OpState> {
        if t < self.created_ms {
            return None;
        }
        Some(
            self.states
                .iter()
                .take_while(|(at, _, _)| *at <= t)
                .last()
                .map_or(OpState::Queued, |(_, s, _)| *s),
        )
    }

    fn ended_ms(&self) -> Option<i64> {
        self.states
            .iter()
            .find(|(_, s, _)| s.is_final())
            .map(|(t, _, _)| *t)
    }

    fn entered(&self, state: OpState) -> Option<i64> {
        self.states
            .iter()
            .find(|(_, s, _)| *s == state)
            .map(|(t, _, _)| *t)
    }
}

/// What the controller said about one range.
#[derive(Debug, Default)]
struct Timeline {
    ops: HashMap<String, OpRecord>,
    stop_pending: Vec<(i64, bool)>,
}

impl Timeline {
    fn stop_pending_at(&self, t: i64) -> bool {
        self.stop_pending
            .iter()
            .take_while(|(at, _)| *at <= t)
            .last()
            .is_some_and(|(_, p)| *p)
    }
}

/// The world, sampled.
#[derive(Debug, Clone)]
struct Sample {
    t: i64,
    moving: bool,
    estop: bool,
    fault: bool,
    locked: bool,
    occupied: Vec<u16>,
}

/// A hazard the campaign made.
#[derive(Debug, Clone)]
struct Hazard {
    kind: &'static str,
    start: i64,
    end: i64,
    gap: Option<u16>,
}

/// How long the controller may take, by transport: the oracle's slack.
struct Slack {
    /// The oldest state a motion may start on (`max_state_age_ms`), plus the longest an
    /// order may wait for the driver (`command_timeout_ms`) and travel (line delay).
    decide_ms: i64,
    /// From a hazard to the Stop reaching the PLC.
    react_ms: i64,
    /// The watchdog's timeout, plus a scan.
    watchdog_ms: i64,
}

fn slack(transport: &str) -> Slack {
    match transport {
        // State every 250 ms (on change 50), result within 1.6 s, watchdog 1.5 s.
        "mqtt" => Slack {
            decide_ms: 700 + 1500 + 100,
            react_ms: 1200,
            watchdog_ms: 1500 + 400,
        },
        // Polled every 100 ms, answered within 500 + 100 ms, lines delayed up to 300 ms
        // each way, watchdog 1 s.
        _ => Slack {
            decide_ms: 400 + 500 + 300 + 100,
            react_ms: 1500,
            watchdog_ms: 1000 + 400,
        },
    }
}

fn goal(command: Command) -> Option<Goal> {
    match command {
        Command::OpenAisle { aisle } => Some(Goal::OpenAisle(aisle)),
        Command::Close => Some(Goal::Close),
        Command::Ventilate => Some(Goal::Ventilate),
        _ => None,
    }
}

/// Everything one scenario left behind, for the oracle.
struct Evidence<'a> {
    range: u16,
    scenario: usize,
    transport: &'static str,
    geometry: &'a Geometry,
    commands: Vec<LoggedCommand>,
    halts: Vec<i64>,
    samples: Vec<Sample>,
    ops: Vec<OpRecord>,
    timeline: &'a Timeline,
    hazards: Vec<Hazard>,
    start_delay_ms: i64,
    start: i64,
    end: i64,
}

/// The rules, each with the slack the controller cannot do without:
/// - a motion command must not close a gap someone had been in for longer than the oldest
///   state a motion may start on plus the command's travel (`decide_ms`);
/// - nor act during an e-stop, fault, lock or room alarm older than that;
/// - it must come while an operation of the range is under way (not queued, not ended),
///   and after the pre-motion warning;
/// - carriages never move without an operation under way or a stop pending;
/// - a hazard during a motion (someone in a gap it closes, an e-stop, a fault, the lock, a
///   room alarm) is followed by a Stop at the PLC or the motion's end within `react_ms`;
///   a lost link by the watchdog's halt within its timeout;
/// - no motion command of an operation that was asked for before a stop (a halt of the
///   carriages, a Stop or Lock, an e-stop, fault or room alarm the controller could see);
/// - a Stop reported done reached the PLC; one not done by the end said it was not
///   confirmed.
fn judge(e: &Evidence, out: &mut Vec<Violation>) {
    let s = slack(e.transport);
    let mut flag = |kind: &'static str, detail: String| {
        out.push(Violation {
            kind,
            range: e.range,
            scenario: e.scenario,
            detail,
        });
    };
    // The world at time t: the last sample before it.
    let sample_at = |t: i64| e.samples.iter().take_while(|x| x.t <= t).last();
    // Since when a condition held continuously up to t (by samples).
    let since = |t: i64, held: &dyn Fn(&Sample) -> bool| -> Option<i64> {
        let mut start = None;
        for x in e.samples.iter().take_while(|x| x.t <= t) {
            if held(x) {
                start.get_or_insert(x.t);
            } else {
                start = None;
            }
        }
        start
    };
    let motion_op_at = |t: i64| {
        e.ops.iter().find(|op| {
            ["open", "close", "ventilate"].contains(&op.kind.as_str())
                && matches!(
                    op.state_at(t),
                    Some(
                        OpState::Starting
                            | OpState::Moving
                            | OpState::Unconfirmed
                            | OpState::Stopping
                    )
                )
        })
    };
    // Stops: halts of the carriages, the campaign's Stop and Lock, visible protective states.
    let mut stops: Vec<i64> = e.halts.clone();
    for h in &e.hazards {
        let visible = h.end - h.start >= 500;
        match h.kind {
            "stop" | "lock" => stops.push(h.start),
            "estop" | "fault" | "room_alarm" if visible => stops.push(h.start),
            _ => {}
        }
    }

    for c in e.commands.iter().filter(|c| c.command.is_motion()) {
        let r = c.received_ms;
        // A command the PLC refused changes nothing; judge the ones it took.
        let took = c.result.as_deref() == Some("accepted");
        let Some(op) = motion_op_at(r) else {
            flag(
                "command_without_operation",
                format!(
                    "{:?} received at {r} with no operation under way",
                    c.command
                ),
            );
            continue;
        };
        if let Some(start) = op.entered(OpState::Starting)
            && r - start < e.start_delay_ms - 50
        {
            flag(
                "no_warning_before_motion",
                format!("{:?} {} ms after its warning began", c.command, r - start),
            );
        }
        // A stop while the operation waited in the queue cancels it for good; one during
        // its warning, too, unless it came while its command was already on the way.
        if let Some(stop) = stops.iter().find(|t| {
            **t > op.created_ms + 20
                && **t < r - 20
                && (op.state_at(**t) == Some(OpState::Queued) || **t < r - s.decide_ms)
        }) {
            flag(
                "restart_without_request",
                format!(
                    "{:?} at {r} of an operation asked at {}, after a stop at {stop}",
                    c.command, op.created_ms
                ),
            );
        }
        let (Some(world), Some(acted)) = (&c.world, c.acted_ms) else {
            continue;
        };
        if !took {
            continue;
        }
        if let Some(goal) = goal(c.command) {
            let touched = e
                .geometry
                .touched(&world.positions_mm, &e.geometry.target(goal));
            for g in touched.iter().filter(|g| world.occupied.contains(g)) {
                let entered = e
                    .hazards
                    .iter()
                    .filter(|h| h.kind == "person" && h.gap == Some(*g) && h.start <= acted)
                    .map(|h| h.start)
                    .max();
                if entered.is_some_and(|t| t < r - s.decide_ms) {
                    flag(
                        "command_into_occupied_gap",
                        format!(
                            "{:?} at {r} closes gap {g}, occupied since {}",
                            c.command,
                            entered.unwrap_or_default()
                        ),
                    );
                }
            }
        }
        type Held<'a> = &'a dyn Fn(&Sample) -> bool;
        let checks: [(&str, Held); 3] = [
            ("estop", &|x: &Sample| x.estop),
            ("fault", &|x: &Sample| x.fault),
            ("lock", &|x: &Sample| x.locked),
        ];
        for (what, held) in checks {
            if let Some(t) = since(r, held)
                && t < r - s.decide_ms
                && sample_at(r).is_some_and(held)
            {
                flag(
                    "command_during_hazard",
                    format!("{:?} at {r} during {what} since {t}", c.command),
                );
            }
        }
        if let Some(h) = e
            .hazards
            .iter()
            .find(|h| h.kind == "room_alarm" && h.start < r - s.decide_ms && h.end > r)
        {
            flag(
                "command_during_hazard",
                format!(
                    "{:?} at {r} during a room alarm since {}",
                    c.command, h.start
                ),
            );
        }
    }

    // Carriages moving without an operation under way or a stop pending.
    let mut unsupervised = None;
    for x in e.samples.iter().filter(|x| x.moving) {
        let ok = [x.t, x.t - 250].iter().any(|t| {
            e.timeline.stop_pending_at(*t)
                || e.ops.iter().any(|op| {
                    matches!(
                        op.state_at(*t),
                        Some(
                            OpState::Starting
                                | OpState::Moving
                                | OpState::Unconfirmed
                                | OpState::Stopping
                        )
                    )
                })
        });
        if !ok {
            unsupervised.get_or_insert(x.t);
        }
    }
    if let Some(t) = unsupervised {
        flag(
            "unsupervised_motion",
            format!("moving at {t} with nothing under way"),
        );
    }

    // A hazard during a motion: the controller sends Stop within `react_ms` (unless the
    // carriages came to rest at once anyway); a lost link is the watchdog's, which halts
    // them within its timeout.
    for h in &e.hazards {
        if !sample_at(h.start).is_some_and(|x| x.moving) {
            continue;
        }
        let observable = h.end - h.start >= 300;
        let relevant = match h.kind {
            "person" => {
                // The gap must be one the running motion closes.
                let last = e
                    .commands
                    .iter()
                    .rfind(|c| c.command.is_motion() && c.acted_ms.is_some_and(|a| a <= h.start));
                last.and_then(|c| Some((goal(c.command)?, c.world.as_ref()?)))
                    .is_some_and(|(goal, world)| {
                        h.gap.is_some_and(|g| {
                            e.geometry
                                .touched(&world.positions_mm, &e.geometry.target(goal))
                                .contains(&g)
                        })
                    })
            }
            "estop" | "fault" | "room_alarm" | "obstacle" | "lock" => observable,
            "unplug" | "cut" => true,
            _ => false,
        };
        if !relevant {
            continue;
        }
        let at_rest_by = |t: i64| {
            e.samples
                .iter()
                .any(|x| x.t > h.start && x.t <= t && !x.moving)
        };
        if at_rest_by(h.start + 250) {
            continue; // it was ending anyway
        }
        let stop_sent = |from: i64, to: i64| {
            e.commands
                .iter()
                .any(|c| c.command == Command::Stop && c.received_ms >= from && c.received_ms <= to)
        };
        // The motion's operation gave up moving (stopping, stopped, failed…) by `t`.
        let reacted_by = |t: i64| {
            e.ops.iter().any(|op| {
                ["open", "close", "ventilate"].contains(&op.kind.as_str())
                    && op
                        .state_at(h.start)
                        .is_some_and(|s| !s.is_final() && s != OpState::Queued)
                    && op.states.iter().any(|(at, s, _)| {
                        *at <= t
                            && !matches!(s, OpState::Queued | OpState::Starting | OpState::Moving)
                    })
            })
        };
        // With the line cut or spoiled about then, what the controller sends may not
        // arrive: it must react (its operation stops, Stop is being sent) within
        // `react_ms`, and a cut or unplugged line is the watchdog's, which stops the drives
        // within its timeout of the loss.
        let spoiled = e
            .hazards
            .iter()
            .filter(|l| matches!(l.kind, "unplug" | "cut" | "drop" | "garbage" | "delay"))
            .filter(|l| l.start <= h.start + s.react_ms && l.end >= h.start)
            .min_by_key(|l| l.start);
        let (ok, limit) = match spoiled {
            Some(l) if matches!(l.kind, "unplug" | "cut") => {
                let limit = l.start + s.watchdog_ms;
                let halted = e.halts.iter().any(|t| *t >= l.start && *t <= limit);
                let watchdog = halted || stop_sent(h.start, limit) || at_rest_by(limit);
                let react = h.start + s.react_ms;
                (
                    watchdog && (reacted_by(react) || at_rest_by(react)),
                    limit.max(react),
                )
            }
            Some(_) => {
                let limit = h.start + s.react_ms;
                (
                    stop_sent(h.start - 500, limit) || reacted_by(limit) || at_rest_by(limit),
                    limit,
                )
            }
            None => {
                let limit = h.start + s.react_ms;
                (stop_sent(h.start - 500, limit), limit)
            }
        };
        if !ok && limit < e.end {
            flag(
                "no_stop_on_hazard",
                format!(
                    "{} at {} during a motion: no stop within {} ms",
                    h.kind,
                    h.start,
                    limit - h.start
                ),
            );
        }
    }

    // Stops: done only when one reached the PLC; otherwise said to be unconfirmed.
    for op in e
        .ops
        .iter()
        .filter(|op| op.kind == "stop" && op.created_ms >= e.start)
    {
        match op.ended_ms() {
            Some(end) if op.states.iter().any(|(_, s, _)| *s == OpState::Done) => {
                let reached = e.commands.iter().any(|c| {
                    c.command == Command::Stop
                        && c.received_ms >= op.created_ms
                        && c.received_ms <= end
                });
                if !reached {
                    flag(
                        "stop_done_unsent",
                        format!(
                            "stop asked at {} reported done at {end}, no Stop reached the PLC",
                            op.created_ms
                        ),
                    );
                }
            }
            Some(_) => {}
            None => {
                let reported = op.states.iter().any(|(_, s, _)| *s == OpState::Unconfirmed);
                if !reported && e.end - op.created_ms > 3000 {
                    flag(
                        "stop_neither_confirmed_nor_reported",
                        format!(
                            "stop asked at {} still open, never said unconfirmed",
                            op.created_ms
                        ),
                    );
                }
            }
        }
    }
}

/// The hazards a range can get, with their weights.
fn hazard_kinds(transport: &str) -> Vec<(&'static str, u32)> {
    let mut kinds = vec![
        ("person", 36),
        ("estop", 8),
        ("estop_pulse", 5),
        ("unplug", 8),
        ("fault", 6),
        ("obstacle", 5),
        ("room_alarm", 7),
        ("stop", 6),
        ("lock", 5),
    ];
    if transport == "modbus" || transport == "framed" {
        kinds.extend([("delay", 5), ("cut", 5), ("drop", 4), ("garbage", 4)]);
    }
    kinds
}

fn pick(rng: &mut ChaCha8Rng, kinds: &[(&'static str, u32)]) -> &'static str {
    let total: u32 = kinds.iter().map(|(_, w)| w).sum();
    let mut x = rng.random_range(0..total);
    for (k, w) in kinds {
        if x < *w {
            return k;
        }
        x -= w;
    }
    kinds[0].0
}

/// A gap for a person: mostly one the running motion closes, else an open one.
fn person_gap(rng: &mut ChaCha8Rng, sim: &RangeSim, geometry: &Geometry) -> u16 {
    let s = sim.state();
    let last = sim
        .commands_since(0)
        .into_iter()
        .rev()
        .find(|c| c.command.is_motion() && c.result.as_deref() == Some("accepted"));
    if s.motion == Motion::Moving
        && rng.random_bool(0.7)
        && let Some((goal, world)) = last.and_then(|c| Some((goal(c.command)?, c.world?)))
    {
        let touched = geometry.touched(&world.positions_mm, &geometry.target(goal));
        if !touched.is_empty() {
            return touched[rng.random_range(0..touched.len())];
        }
    }
    // Gaps wide enough to step into.
    let n = s.positions_mm.len();
    let widths = sim.spec().carriage_widths_mm.clone();
    let rail: f64 =
        widths.iter().map(|w| *w as f64).sum::<f64>() + sim.spec().aisle_width_mm as f64;
    let open: Vec<u16> = (0..=n as u16)
        .filter(|&g| {
            let g = g as usize;
            let width = match g {
                0 => s.positions_mm[0],
                _ if g == n => rail - (s.positions_mm[n - 1] + widths[n - 1] as f64),
                _ => s.positions_mm[g] - (s.positions_mm[g - 1] + widths[g - 1] as f64),
            };
            width >= 150.0
        })
        .collect();
    if open.is_empty() {
        rng.random_range(0..=n as u16)
    } else {
        open[rng.random_range(0..open.len())]
    }
}

/// The room, running.
struct Room {
    simulator: Simulator,
    shelving: Shelving,
    config: RoomConfig,
    timelines: HashMap<u16, Arc<Mutex<Timeline>>>,
    samples: HashMap<u16, Arc<Mutex<Vec<Sample>>>>,
    _broker: EmbeddedBroker,
    /// The bus's passwords.
    _data: tempfile::TempDir,
}

async fn start(settings: &Settings) -> Room {
    let ranges = settings.ranges_per_transport * TRANSPORTS;
    let mut config = config(ranges);
    let data = tempfile::tempdir().unwrap();
    config.data_dir = data.path().into();
    let broker = EmbeddedBroker::start(SocketAddr::from(([127, 0, 0, 1], 0)), &config).unwrap();
    let sim_settings = SimSettings {
        seed: settings.seed,
        time_scale: settings.time_scale,
        mqtt: Some(broker.for_devices()),
        ..SimSettings::default()
    };
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    let simulator = sim::start(&config, vec![], &sim_settings, any)
        .await
        .unwrap();
    let wiring = Wiring::of(&simulator, Some(broker.endpoint.clone()));
    let shelving = Shelving::start(&config, &wiring).unwrap();
    let mut timelines = HashMap::new();
    let mut samples = HashMap::new();
    for id in 1..=ranges {
        timelines.insert(id, Arc::new(Mutex::new(Timeline::default())));
        let buffer = Arc::new(Mutex::new(Vec::new()));
        samples.insert(id, buffer.clone());
        let range = simulator.range(id).unwrap();
        // The PLC's own interlocks off: only the controller keeps people safe.
        range.lock().unwrap().set_plc(PlcSettings {
            interlocks: false,
            scan_delay_ms: 0,
            watchdog: true,
        });
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(50));
            loop {
                tick.tick().await;
                let s = range.lock().unwrap().state();
                buffer.lock().unwrap().push(Sample {
                    t: now_ms(),
                    moving: s.motion == Motion::Moving,
                    estop: s.estop,
                    fault: s.fault.is_some(),
                    locked: s.locked,
                    occupied: s.occupied_aisles,
                });
            }
        });
    }
    let mut events = shelving.subscribe();
    let recorders = timelines.clone();
    tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(Event::Operation(op)) => {
                    let Some(t) = recorders.get(&op.range) else {
                        continue;
                    };
                    let mut t = t.lock().unwrap();
                    let record = t.ops.entry(op.id.clone()).or_insert_with(|| OpRecord {
                        kind: op.kind.clone(),
                        created_ms: op.started_at.timestamp_millis(),
                        states: vec![],
                    });
                    record.states.push((now_ms(), op.state, op.reason.clone()));
                }
                Ok(Event::Range(view)) => {
                    if let Some(t) = recorders.get(&view.range) {
                        let mut t = t.lock().unwrap();
                        if t.stop_pending
                            .last()
                            .is_none_or(|(_, p)| *p != view.stop_pending)
                        {
                            t.stop_pending.push((now_ms(), view.stop_pending));
                        }
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    panic!("the campaign's recorder fell behind by {n} events");
                }
                Err(_) => return,
            }
        }
    });
    Room {
        simulator,
        shelving,
        config,
        timelines,
        samples,
        _broker: broker,
        _data: data,
    }
}

/// Waits until the range is at rest and idle, its link up (at most `limit`).
async fn settled(shelving: &Shelving, range: u16, limit: Duration) -> bool {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if shelving.range(range).is_some_and(|v| {
            v.link == stackroom::shelving::LinkState::Up
                && v.motion != stackroom::shelving::RangeMotion::Moving
                && v.motion != stackroom::shelving::RangeMotion::Unknown
                && v.operation.is_none()
                && !v.stop_pending
        }) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// Puts the range back to normal between scenarios; false if it did not come to rest.
async fn reset(room: &Room, id: u16, rng: &mut ChaCha8Rng) -> bool {
    let device = format!("shelving-{id}");
    room.simulator.set_online(&device, true);
    room.simulator.set_line(&device, LineFaults::default());
    room.shelving.set_room_alarm(id, "campaign", None);
    let range = room.simulator.range(id).unwrap();
    let locked = {
        let mut r = range.lock().unwrap();
        r.set_estop(false);
        r.set_fault(None);
        for g in 0..r.gap_count() {
            r.set_occupied(g, false);
            r.set_obstacle(g, false);
        }
        let plc = r.plc();
        r.set_plc(PlcSettings {
            scan_delay_ms: [0, 0, 20, 50][rng.random_range(0..4)],
            ..plc
        });
        r.state().locked
    };
    if locked {
        let _ = room.shelving.lock(id, false, "campaign").await;
    }
    // A fault latched by a jam is reset with the device's own command.
    if range.lock().unwrap().state().fault.is_some() {
        let _ = range.lock().unwrap().command(Command::ResetFaults);
    }
    settled(&room.shelving, id, Duration::from_secs(10)).await
}

/// One scenario on one range; returns the evidence's counts into `report`.
async fn scenario(
    room: &Arc<Room>,
    id: u16,
    index: usize,
    rng: &mut ChaCha8Rng,
    report: &Mutex<Report>,
) {
    if !reset(room, id, rng).await {
        report.lock().unwrap().stuck += 1;
        if std::env::var_os("CAMPAIGN_DEBUG").is_some() {
            let plc = room.simulator.range(id).unwrap().lock().unwrap().state();
            let ops: Vec<String> = room.timelines[&id]
                .lock()
                .unwrap()
                .ops
                .iter()
                .filter(|(_, op)| op.ended_ms().is_none())
                .map(|(id, op)| format!("{id} {} {:?}", op.kind, op.states.last()))
                .collect();
            eprintln!(
                "--- range {id} stuck: {:?}\n  plc {plc:?}\n  open ops {ops:?}",
                room.shelving.range(id)
            );
        }
    }
    let range = room.simulator.range(id).unwrap();
    let geometry = Geometry::of(room.config.layout.range(id).unwrap());
    let t0 = now_ms();
    let log_from = range
        .lock()
        .unwrap()
        .commands_since(0)
        .last()
        .map_or(0, |c| c.index + 1);
    let halts_from = range.lock().unwrap().halts().len();
    let transport = transport(id);
    let kinds = hazard_kinds(transport);
    let aisles = geometry.aisles();

    // The plan: requests and hazards at random moments of the first two seconds.
    let mut requests: Vec<(u64, Goal, bool)> = (0..rng.random_range(1..=3))
        .map(|_| {
            let goal = match rng.random_range(0..10) {
                0 => Goal::Close,
                1 => Goal::Ventilate,
                _ => Goal::OpenAisle(rng.random_range(1..=aisles)),
            };
            (rng.random_range(0..2500), goal, rng.random_bool(0.15))
        })
        .collect();
    let mut hazards: Vec<(u64, &'static str, u64)> = (0..rng.random_range(0..=3))
        .map(|_| {
            let kind = pick(rng, &kinds);
            let duration = match kind {
                "estop_pulse" => 50,
                // People stay a while: some are still there when the next request comes.
                "person" => rng.random_range(100..4000),
                _ => rng.random_range(100..1500),
            };
            (rng.random_range(0..2000), kind, duration)
        })
        .collect();
    // One scenario in four starts with someone working in the open aisle when a request
    // comes that would close it.
    if rng.random_bool(0.25)
        && let Some(open) = room.shelving.range(id).and_then(|v| v.open_aisle)
    {
        hazards.push((0, "person_in_open_aisle", rng.random_range(2500..4000)));
        let other = if open == aisles { 1 } else { open + 1 };
        requests.push((
            rng.random_range(1500..2500),
            Goal::OpenAisle(other),
            rng.random_bool(0.2),
        ));
    }
    let made: Arc<Mutex<Vec<Hazard>>> = Arc::default();
    let mut tasks = Vec::new();
    for (at, goal, automatic) in requests.iter().copied() {
        let shelving = room.shelving.clone();
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(at)).await;
            let kind = match goal {
                Goal::OpenAisle(_) => "open",
                Goal::Close => "close",
                Goal::Ventilate => "ventilate",
            };
            let _ = shelving.motion(id, kind, goal, "campaign", automatic).await;
        }));
    }
    for (at, kind, duration) in hazards.iter().copied() {
        let shelving = room.shelving.clone();
        let range = range.clone();
        let made = made.clone();
        let device = format!("shelving-{id}");
        let room = room.clone();
        let geometry = geometry.clone();
        let mut rng = ChaCha8Rng::seed_from_u64(rng.random());
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(at)).await;
            // Most hazards wait for a motion, and come at a random moment of it.
            if kind != "person_in_open_aisle" && rng.random_bool(0.7) {
                let until = Instant::now() + Duration::from_secs(3);
                while Instant::now() < until
                    && range.lock().unwrap().state().motion != Motion::Moving
                {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                tokio::time::sleep(Duration::from_millis(rng.random_range(0..400))).await;
            }
            let start = now_ms();
            let mut gap = None;
            let line = |f: LineFaults| {
                room.simulator.set_line(&device, f);
            };
            match kind {
                "person" => {
                    let g = person_gap(&mut rng, &range.lock().unwrap(), &geometry);
                    gap = Some(g);
                    range.lock().unwrap().set_occupied(g, true);
                }
                "person_in_open_aisle" => {
                    let g = range.lock().unwrap().open_aisle().unwrap_or(1);
                    gap = Some(g);
                    range.lock().unwrap().set_occupied(g, true);
                }
                "estop" | "estop_pulse" => range.lock().unwrap().set_estop(true),
                "unplug" => {
                    room.simulator.set_online(&device, false);
                }
                "fault" => range
                    .lock()
                    .unwrap()
                    .set_fault(Some(Fault::Motor { carriage: 2 })),
                "obstacle" => {
                    let g = person_gap(&mut rng, &range.lock().unwrap(), &geometry);
                    gap = Some(g);
                    range.lock().unwrap().set_obstacle(g, true);
                }
                "room_alarm" => {
                    shelving.set_room_alarm(id, "campaign", Some("campaign smoke alarm".into()))
                }
                "stop" => {
                    let _ = shelving.stop(id, "campaign").await;
                }
                "lock" => {
                    let _ = shelving.lock(id, true, "campaign").await;
                }
                "delay" => line(LineFaults {
                    delay_ms: rng.random_range(50..300),
                    ..LineFaults::default()
                }),
                "cut" => line(LineFaults {
                    cut: true,
                    ..LineFaults::default()
                }),
                "drop" => line(LineFaults {
                    drop: rng.random_range(0.2..0.5),
                    ..LineFaults::default()
                }),
                "garbage" => line(LineFaults {
                    garbage: rng.random_range(0.2..0.5),
                    ..LineFaults::default()
                }),
                _ => {}
            }
            tokio::time::sleep(Duration::from_millis(duration)).await;
            match kind {
                "person" | "person_in_open_aisle" => {
                    range.lock().unwrap().set_occupied(gap.unwrap_or(0), false)
                }
                "estop" | "estop_pulse" => range.lock().unwrap().set_estop(false),
                "unplug" => {
                    room.simulator.set_online(&device, true);
                }
                "fault" => range.lock().unwrap().set_fault(None),
                "obstacle" => range.lock().unwrap().set_obstacle(gap.unwrap_or(0), false),
                "room_alarm" => shelving.set_room_alarm(id, "campaign", None),
                "lock" => {
                    let _ = shelving.lock(id, false, "campaign").await;
                }
                "delay" | "cut" | "drop" | "garbage" => {
                    line(LineFaults::default());
                }
                _ => {}
            }
            made.lock().unwrap().push(Hazard {
                kind: match kind {
                    "estop_pulse" => "estop",
                    "person_in_open_aisle" => "person",
                    k => k,
                },
                start,
                end: now_ms(),
                gap,
            });
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    // Let it come to rest, then let the last stops be confirmed or reported.
    settled(&room.shelving, id, Duration::from_secs(8)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let end = now_ms();

    let commands = range.lock().unwrap().commands_since(log_from);
    let halts = range.lock().unwrap().halts()[halts_from..]
        .iter()
        .map(|h| h.at_ms)
        .collect();
    let samples: Vec<Sample> = {
        let mut buffer = room.samples[&id].lock().unwrap();
        let keep = std::mem::take(&mut *buffer);
        keep.into_iter().filter(|s| s.t >= t0 - 1000).collect()
    };
    let timeline = room.timelines[&id].lock().unwrap();
    let ops: Vec<OpRecord> = timeline
        .ops
        .values()
        .filter(|op| op.ended_ms().is_none_or(|e| e >= t0 - 1000))
        .cloned()
        .collect();
    let hazards = made.lock().unwrap().clone();
    let evidence = Evidence {
        range: id,
        scenario: index,
        transport,
        geometry: &geometry,
        commands,
        halts,
        samples,
        ops,
        timeline: &timeline,
        hazards,
        start_delay_ms: room.config.motion.start_delay.as_millis() as i64,
        start: t0,
        end,
    };
    let mut violations = Vec::new();
    judge(&evidence, &mut violations);
    if !violations.is_empty() && std::env::var_os("CAMPAIGN_DEBUG").is_some() {
        let t = |ms: i64| ms - t0;
        let mut dump = format!("--- range {id} ({transport}) scenario {index}, t0 {t0}\n");
        for c in &evidence.commands {
            dump += &format!(
                "  cmd {:?} received {} acted {:?} {:?} moving {:?}\n",
                c.command,
                t(c.received_ms),
                c.acted_ms.map(t),
                c.result,
                c.world.as_ref().map(|w| w.moving)
            );
        }
        for h in &evidence.hazards {
            dump += &format!(
                "  hazard {} {}..{} gap {:?}\n",
                h.kind,
                t(h.start),
                t(h.end),
                h.gap
            );
        }
        for op in &evidence.ops {
            let states: Vec<String> = op
                .states
                .iter()
                .map(|(at, s, r)| {
                    format!(
                        "{}:{s}{}",
                        t(*at),
                        r.as_deref().map(|r| format!("({r})")).unwrap_or_default()
                    )
                })
                .collect();
            dump += &format!(
                "  op {} created {}: {}\n",
                op.kind,
                t(op.created_ms),
                states.join(" ")
            );
        }
        let moving: Vec<String> = evidence
            .samples
            .windows(2)
            .filter(|w| w[0].moving != w[1].moving)
            .map(|w| {
                format!(
                    "{}:{}",
                    t(w[1].t),
                    if w[1].moving { "moving" } else { "rest" }
                )
            })
            .collect();
        dump += &format!(
            "  motion {}\n  halts {:?}\n",
            moving.join(" "),
            evidence.halts.iter().map(|h| t(*h)).collect::<Vec<_>>()
        );
        eprintln!("{dump}");
    }
    let mut r = report.lock().unwrap();
    r.scenarios += 1;
    r.requests += requests.len();
    for h in &evidence.hazards {
        *r.hazards.entry(h.kind).or_default() += 1;
        if evidence
            .samples
            .iter()
            .take_while(|x| x.t <= h.start)
            .last()
            .is_some_and(|x| x.moving)
        {
            r.hazards_in_motion += 1;
        }
    }
    r.motion_commands += evidence
        .commands
        .iter()
        .filter(|c| c.command.is_motion())
        .count();
    r.stop_commands += evidence
        .commands
        .iter()
        .filter(|c| c.command == Command::Stop)
        .count();
    r.stops_reported_unconfirmed += evidence
        .ops
        .iter()
        .filter(|op| {
            op.kind == "stop"
                && op.created_ms >= t0
                && op.states.iter().any(|(_, s, _)| *s == OpState::Unconfirmed)
        })
        .count();
    r.violations.extend(violations);
    drop(r);
    // Keep what ended long ago out of the next scenario's evidence.
    drop(timeline);
    room.timelines[&id]
        .lock()
        .unwrap()
        .ops
        .retain(|_, op| op.ended_ms().is_none_or(|e| e >= end - 2000));
}

/// Runs a campaign.
pub async fn run(settings: Settings) -> Report {
    let started = Instant::now();
    let room = Arc::new(start(&settings).await);
    let ranges = settings.ranges_per_transport * TRANSPORTS;
    for id in 1..=ranges {
        assert!(
            settled(&room.shelving, id, Duration::from_secs(20)).await,
            "range {id} came up: {:?}",
            room.shelving.range(id)
        );
    }
    let report = Arc::new(Mutex::new(Report::default()));
    let mut tasks = Vec::new();
    for id in 1..=ranges {
        let room = room.clone();
        let report = report.clone();
        let share = (settings.scenarios + (ranges - id) as usize) / ranges as usize;
        let seed = settings.seed ^ (id as u64) << 32;
        tasks.push(tokio::spawn(async move {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            for i in 0..share {
                scenario(&room, id, i, &mut rng, &report).await;
            }
        }));
    }
    for t in tasks {
        t.await.expect("a range's scenarios ran");
    }
    let mut report = std::mem::take(&mut *report.lock().unwrap());
    report.elapsed = started.elapsed();
    report
}

/// The oracle on evidence made by hand: each rule fires on the breach it names, and a clean
/// motion breaks none.
#[cfg(test)]
mod oracle {
    use super::*;
    use hw_sim::shelving::Snapshot;
    use stackroom::layout::{Capacity, Carriage, RangeLayout};

    fn geometry() -> Geometry {
        Geometry::of(&RangeLayout {
            id: 1,
            name: "1".into(),
            carriages: (1..=6)
                .map(|index| Carriage {
                    index,
                    width_mm: 600,
                    fixed: index == 1 || index == 6,
                })
                .collect(),
            aisle_width_mm: 900,
            sections: 1,
            levels: 1,
            capacity: Capacity::Boxes(1),
        })
    }

    /// Open aisle 3 from aisle 1, received at 1000 ms, acted at 1010.
    fn open3(g: &Geometry, occupied: Vec<u16>) -> LoggedCommand {
        LoggedCommand {
            index: 0,
            received_ms: 1000,
            wire: String::new(),
            command: Command::OpenAisle { aisle: 3 },
            acted_ms: Some(1010),
            result: Some("accepted".into()),
            world: Some(Snapshot {
                positions_mm: g.target(Goal::OpenAisle(1)),
                moving: false,
                estop: false,
                locked: false,
                fault: false,
                occupied,
                obstacle: vec![],
                watchdog_tripped: false,
            }),
        }
    }

    fn op(kind: &str, created: i64, states: &[(i64, OpState)]) -> OpRecord {
        OpRecord {
            kind: kind.into(),
            created_ms: created,
            states: states.iter().map(|(t, s)| (*t, *s, None)).collect(),
        }
    }

    fn sample(t: i64, moving: bool) -> Sample {
        Sample {
            t,
            moving,
            estop: false,
            fault: false,
            locked: false,
            occupied: vec![],
        }
    }

    /// A clean opening: asked at 0, warned from 10, command at 1000, moving until 2000.
    fn clean(g: &Geometry) -> (Vec<LoggedCommand>, Vec<OpRecord>, Vec<Sample>) {
        let ops = vec![op(
            "open",
            0,
            &[
                (10, OpState::Starting),
                (1100, OpState::Moving),
                (2050, OpState::Done),
            ],
        )];
        let samples = (-60..60)
            .map(|i| sample(i * 50, (1050..2000).contains(&(i * 50))))
            .collect();
        (vec![open3(g, vec![])], ops, samples)
    }

    fn verdict(
        g: &Geometry,
        commands: Vec<LoggedCommand>,
        ops: Vec<OpRecord>,
        samples: Vec<Sample>,
        hazards: Vec<Hazard>,
        halts: Vec<i64>,
    ) -> Vec<&'static str> {
        let timeline = Timeline::default();
        let e = Evidence {
            range: 1,
            scenario: 0,
            transport: "modbus",
            geometry: g,
            commands,
            halts,
            samples,
            ops,
            timeline: &timeline,
            hazards,
            start_delay_ms: 300,
            start: 0,
            end: 6000,
        };
        let mut out = Vec::new();
        judge(&e, &mut out);
        let mut kinds: Vec<&str> = out.iter().map(|v| v.kind).collect();
        kinds.dedup();
        kinds
    }

    fn person(gap: u16, start: i64, end: i64) -> Hazard {
        Hazard {
            kind: "person",
            start,
            end,
            gap: Some(gap),
        }
    }

    #[test]
    fn a_clean_motion_breaks_no_rule() {
        let g = geometry();
        let (c, o, s) = clean(&g);
        assert_eq!(verdict(&g, c, o, s, vec![], vec![]), Vec::<&str>::new());
    }

    #[test]
    fn each_rule_fires_on_its_breach() {
        let g = geometry();
        // Someone in aisle 1 (which opening 3 closes) since well before the command.
        let (_, o, s) = clean(&g);
        let v = verdict(
            &g,
            vec![open3(&g, vec![1])],
            o,
            s,
            vec![person(1, -2000, 5000)],
            vec![],
        );
        assert!(v.contains(&"command_into_occupied_gap"), "{v:?}");
        // …but one who stepped in as it went out is the controller's to stop, not to foresee.
        let (_, o, s) = clean(&g);
        let v = verdict(
            &g,
            vec![open3(&g, vec![1])],
            o,
            s,
            vec![person(1, 990, 5000)],
            vec![],
        );
        assert!(!v.contains(&"command_into_occupied_gap"), "{v:?}");
        // A command with no operation under way: late.
        let (c, _, s) = clean(&g);
        let late = vec![op(
            "open",
            0,
            &[(10, OpState::Starting), (500, OpState::Failed)],
        )];
        assert!(verdict(&g, c, late, s, vec![], vec![]).contains(&"command_without_operation"));
        // No warning before it.
        let (c, _, s) = clean(&g);
        let hasty = vec![op(
            "open",
            0,
            &[(900, OpState::Starting), (2050, OpState::Done)],
        )];
        assert!(verdict(&g, c, hasty, s, vec![], vec![]).contains(&"no_warning_before_motion"));
        // A halt while the request waited in the queue, and its command after: a restart.
        let (c, _, s) = clean(&g);
        let queued = vec![op(
            "open",
            0,
            &[
                (600, OpState::Starting),
                (1100, OpState::Moving),
                (2050, OpState::Done),
            ],
        )];
        let v = verdict(&g, c.clone(), queued, s.clone(), vec![], vec![500]);
        assert!(v.contains(&"restart_without_request"), "{v:?}");
        // A halt during its warning, just before its command went: the controller could
        // not have known.
        let (c, o, s) = clean(&g);
        let v = verdict(&g, c, o, s, vec![], vec![900]);
        assert!(!v.contains(&"restart_without_request"), "{v:?}");
        // Moving with nothing under way.
        let (c, o, mut s) = clean(&g);
        s.push(sample(4000, true));
        assert!(verdict(&g, c, o, s, vec![], vec![]).contains(&"unsupervised_motion"));
        // An e-stop held since long before the command.
        let (c, o, mut s) = clean(&g);
        s.iter_mut()
            .filter(|x| x.t < 1100)
            .for_each(|x| x.estop = true);
        assert_eq!(s[0].t, -3000);
        assert!(verdict(&g, c, o, s, vec![], vec![]).contains(&"command_during_hazard"));
        // Someone steps into the closing aisle mid-motion and the carriages go on to
        // their places: no Stop came.
        let (c, o, s) = clean(&g);
        let v = verdict(
            &g,
            c.clone(),
            o.clone(),
            s.clone(),
            vec![person(1, 1500, 5000)],
            vec![],
        );
        assert!(v.contains(&"no_stop_on_hazard"), "{v:?}");
        // With a Stop at the PLC in time, it is kept.
        let mut stopped = c.clone();
        stopped.push(LoggedCommand {
            command: Command::Stop,
            received_ms: 1700,
            ..c[0].clone()
        });
        let v = verdict(&g, stopped, o, s, vec![person(1, 1500, 5000)], vec![]);
        assert!(!v.contains(&"no_stop_on_hazard"), "{v:?}");
        // A stop said to be done that never reached the PLC; one left open in silence.
        let (c, mut o, s) = clean(&g);
        o.push(op(
            "stop",
            3000,
            &[(3000, OpState::Stopping), (3100, OpState::Done)],
        ));
        o.push(op("stop", 2500, &[(2500, OpState::Stopping)]));
        let v = verdict(&g, c, o, s, vec![], vec![]);
        assert!(v.contains(&"stop_done_unsent"), "{v:?}");
        assert!(v.contains(&"stop_neither_confirmed_nor_reported"), "{v:?}");
    }
}

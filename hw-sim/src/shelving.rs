//! One simulated range of motorized compact shelving and its controller, the PLC (sans-IO).
//!
//! The range is a row of carriages on rails. The rail is as long as the carriages plus one
//! aisle width, so exactly one aisle's worth of space is free. Carriage 1 stands at the left
//! end (position 0); positions are of each carriage's left edge, in millimetres. Gaps are
//! numbered as in `stackroom_wire::shelving`: 0 the left wall gap, k aisle k, n the right
//! wall gap.
//!
//! The PLC behaves like a real one, written from the device's side:
//! - it takes commands from its wire at once but acts on them on a later scan
//!   ([`PlcSettings::scan_delay_ms`]), in the order they came;
//! - with its interlocks on it refuses unsafe commands on its own (emergency stop, lock,
//!   fault, a person or an obstacle in a gap the motion would narrow) and halts when a
//!   sensor trips mid-motion; with them off ([`PlcSettings::interlocks`], a test bench for
//!   the controller alone) it does neither: only the hardware (the e-stop circuit, a dead
//!   motor, the watchdog) stops the drives;
//! - its communication watchdog stops the drives when the controller's heartbeat has not
//!   changed for the profile's timeout (armed by the first heartbeat) and refuses motion
//!   until it comes back;
//! - it logs every command it receives ([`RangeSim::commands_since`]): when, the wire form,
//!   when it acted, the result and the world at that moment; and every halt.
//!
//! [`RangeSim::scan`] runs the PLC's cycle at a real instant; [`RangeSim::tick`] advances
//! the physics by a span of simulated time.

use std::collections::{BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
pub use stackroom_wire::shelving::{Command, Refusal};

/// How a range is built.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeSpec {
    pub id: u16,
    /// Width of each carriage along the rail, mm.
    pub carriage_widths_mm: Vec<u32>,
    /// Which carriages cannot move (usually the end ones).
    pub fixed: Vec<bool>,
    /// Width of an open aisle, mm.
    pub aisle_width_mm: u32,
    /// Top carriage speed, mm/s of simulated time.
    pub speed_mm_s: f64,
    /// Acceleration and deceleration, mm/s².
    pub accel_mm_s2: f64,
    /// The watchdog timeout of the profile, if the model has one.
    pub watchdog_timeout: Option<Duration>,
}

/// A refusal and the gap it is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Refused {
    pub reason: Refusal,
    pub gap: Option<u16>,
}

impl Refused {
    fn new(reason: Refusal) -> Refused {
        Refused { reason, gap: None }
    }
}

/// A fault of the shelving.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", deny_unknown_fields)]
pub enum Fault {
    /// A drive motor failed.
    Motor { carriage: u16 },
    /// A carriage does not move although driven (set through the control API; the
    /// controller itself raises [`Fault::Jam`] when it notices).
    Jam { carriage: u16 },
    /// Some other fault with a vendor code.
    Other { code: u16 },
}

impl Fault {
    pub fn code(self) -> u16 {
        match self {
            Fault::Motor { .. } => 1,
            Fault::Jam { .. } => 2,
            Fault::Other { code } => code.max(3),
        }
    }

    pub fn carriage(self) -> u16 {
        match self {
            Fault::Motor { carriage } | Fault::Jam { carriage } => carriage,
            Fault::Other { .. } => 0,
        }
    }
}

/// Whether the carriages move.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Motion {
    Idle,
    Moving,
    /// Stopped before reaching the target (stop command, sensor, fault, watchdog).
    Stopped,
}

/// What the PLC does on its own: switchable for testing the controller alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlcSettings {
    /// The PLC's own safety checks: refusals and sensor halts.
    pub interlocks: bool,
    /// Commands act this long after they arrive (the PLC's next scan), ms.
    pub scan_delay_ms: u64,
    /// The communication watchdog (where the profile has one).
    pub watchdog: bool,
}

impl Default for PlcSettings {
    fn default() -> Self {
        PlcSettings {
            interlocks: true,
            scan_delay_ms: 0,
            watchdog: true,
        }
    }
}

/// A moment, in both clocks the PLC keeps: a real instant for its timers and the wall clock
/// for its log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Moment {
    pub at: Instant,
    /// Milliseconds since the Unix epoch.
    pub wall_ms: i64,
}

impl Moment {
    pub fn now() -> Moment {
        Moment {
            at: Instant::now(),
            wall_ms: chrono::Utc::now().timestamp_millis(),
        }
    }
}

/// The world as it was when a command acted.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Snapshot {
    pub positions_mm: Vec<f64>,
    pub moving: bool,
    pub estop: bool,
    pub locked: bool,
    pub fault: bool,
    pub occupied: Vec<u16>,
    pub obstacle: Vec<u16>,
    pub watchdog_tripped: bool,
}

/// One command as the PLC received it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoggedCommand {
    /// Numbered from 0 in the order received.
    pub index: u64,
    pub received_ms: i64,
    /// The command as it came on the wire (frame bytes in hex, the JSON text, the Modbus
    /// write).
    pub wire: String,
    pub command: Command,
    /// When it acted (None: not yet, or never because it expired on arrival).
    pub acted_ms: Option<i64>,
    /// `accepted` or the refusal's name.
    pub result: Option<String>,
    /// The world when it acted.
    pub world: Option<Snapshot>,
}

/// A halt of moving carriages, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Halt {
    pub at_ms: i64,
    pub reason: String,
}

/// What the controller reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RangeState {
    pub range: u16,
    pub positions_mm: Vec<f64>,
    pub open_aisle: Option<u16>,
    pub motion: Motion,
    pub locked: bool,
    pub estop: bool,
    pub fault: Option<Fault>,
    /// Occupied gaps (0 the left wall gap, k aisle k, n the right wall gap).
    pub occupied_aisles: Vec<u16>,
    pub obstacle_aisles: Vec<u16>,
    /// Why the last motion stopped short, if it did.
    pub stop_reason: Option<String>,
    /// Result code of the last command: 0 accepted, else [`Refusal::code`].
    pub last_result: u16,
    /// Commands acted on so far, accepted or not.
    pub commands: u64,
    /// Motion commands accepted so far.
    pub motions: u64,
    pub plc: PlcSettings,
    /// The pre-motion warning output.
    pub warning: bool,
    pub watchdog_tripped: bool,
    /// Heartbeats received (changes of the heartbeat value).
    pub heartbeats: u64,
}

/// A command waiting for its scan.
#[derive(Debug, Clone)]
struct Inbox {
    due: Instant,
    ticket: u64,
    command: Command,
    expires_ms: Option<i64>,
}

/// The simulated range.
#[derive(Debug, Clone)]
pub struct RangeSim {
    spec: RangeSpec,
    plc: PlcSettings,
    pos: Vec<f64>,
    vel: Vec<f64>,
    target: Option<Vec<f64>>,
    motion: Motion,
    locked: bool,
    estop: bool,
    fault: Option<Fault>,
    /// A jam set by the control API: that carriage does not move.
    jammed: Option<u16>,
    /// Simulated seconds a driven carriage has not moved.
    stalled_s: f64,
    occupied: BTreeSet<u16>,
    obstacle: BTreeSet<u16>,
    stop_reason: Option<String>,
    last_result: u16,
    commands: u64,
    motions: u64,
    warning: bool,
    /// The last heartbeat value and when it last changed; None before the first.
    heartbeat: Option<(u64, Instant)>,
    heartbeats: u64,
    watchdog_tripped: bool,
    inbox: VecDeque<Inbox>,
    outcomes: VecDeque<(u64, Result<(), Refused>)>,
    log: VecDeque<LoggedCommand>,
    logged: u64,
    halts: VecDeque<Halt>,
    /// When the last command arrived (for measuring the controller's latency).
    last_command_at: Option<Instant>,
}

/// A carriage closer than this to its target has arrived.
const ARRIVED_MM: f64 = 0.5;
/// An aisle at least this close to full width is open.
const OPEN_TOLERANCE_MM: f64 = 5.0;
/// A driven carriage that has not moved for this long is jammed.
const JAM_AFTER_S: f64 = 2.0;
/// Log entries kept (the oldest go first).
const LOG_KEPT: usize = 50_000;

impl RangeSim {
    /// A range at rest with aisle 1 open.
    pub fn new(spec: RangeSpec) -> RangeSim {
        let n = spec.carriage_widths_mm.len();
        let mut sim = RangeSim {
            plc: PlcSettings::default(),
            pos: vec![0.0; n],
            vel: vec![0.0; n],
            target: None,
            motion: Motion::Idle,
            locked: false,
            estop: false,
            fault: None,
            jammed: None,
            stalled_s: 0.0,
            occupied: BTreeSet::new(),
            obstacle: BTreeSet::new(),
            stop_reason: None,
            last_result: 0,
            commands: 0,
            motions: 0,
            warning: false,
            heartbeat: None,
            heartbeats: 0,
            watchdog_tripped: false,
            inbox: VecDeque::new(),
            outcomes: VecDeque::new(),
            log: VecDeque::new(),
            logged: 0,
            halts: VecDeque::new(),
            last_command_at: None,
            spec,
        };
        sim.pos = sim.packed(1.min(n as u16 - 1));
        sim
    }

    pub fn spec(&self) -> &RangeSpec {
        &self.spec
    }

    pub fn plc(&self) -> PlcSettings {
        self.plc
    }

    pub fn set_plc(&mut self, plc: PlcSettings) {
        self.plc = plc;
        if !plc.watchdog {
            self.watchdog_tripped = false;
        }
    }

    fn n(&self) -> usize {
        self.spec.carriage_widths_mm.len()
    }

    fn width(&self, i: usize) -> f64 {
        self.spec.carriage_widths_mm[i] as f64
    }

    fn rail_mm(&self) -> f64 {
        self.spec
            .carriage_widths_mm
            .iter()
            .map(|w| *w as f64)
            .sum::<f64>()
            + self.spec.aisle_width_mm as f64
    }

    /// Width of gap `g` for positions `pos`.
    fn gap_in(&self, pos: &[f64], g: u16) -> f64 {
        let n = self.n();
        match g as usize {
            0 => pos[0],
            k if k == n => self.rail_mm() - (pos[n - 1] + self.width(n - 1)),
            k => pos[k] - (pos[k - 1] + self.width(k - 1)),
        }
    }

    /// Positions with carriages 1..=k packed left and the rest packed right (k = 0: all right).
    fn packed(&self, k: u16) -> Vec<f64> {
        let n = self.n();
        let mut p = vec![0.0; n];
        let mut x = 0.0;
        for (i, slot) in p.iter_mut().enumerate().take(k as usize) {
            *slot = x;
            x += self.width(i);
        }
        let mut x = self.rail_mm();
        for i in (k as usize..n).rev() {
            x -= self.width(i);
            p[i] = x;
        }
        p
    }

    fn targets_for(&self, command: Command) -> Option<Vec<f64>> {
        let n = self.n();
        let mut target = match command {
            Command::OpenAisle { aisle } => self.packed(aisle),
            Command::Close => self.packed(n as u16),
            Command::Ventilate => {
                let share = self.spec.aisle_width_mm as f64 / (n - 1) as f64;
                let mut p = vec![0.0; n];
                let mut x = 0.0;
                for (i, slot) in p.iter_mut().enumerate() {
                    *slot = x;
                    x += self.width(i) + share;
                }
                p
            }
            _ => return None,
        };
        // Fixed carriages stay; the packing then leaves the space where it can.
        for (i, fixed) in self.spec.fixed.iter().enumerate() {
            if *fixed {
                target[i] = self.pos[i];
            }
        }
        Some(target)
    }

    /// The first gap that `target` narrows while someone or something is in it.
    fn blocked(&self, target: &[f64]) -> Option<Refused> {
        for g in 0..=self.n() as u16 {
            let narrows = self.gap_in(target, g) < self.gap_in(&self.pos, g) - ARRIVED_MM;
            if narrows && self.occupied.contains(&g) {
                return Some(Refused {
                    reason: Refusal::AisleOccupied,
                    gap: Some(g),
                });
            }
            if narrows && self.obstacle.contains(&g) {
                return Some(Refused {
                    reason: Refusal::Obstacle,
                    gap: Some(g),
                });
            }
        }
        None
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot {
            positions_mm: self.pos.iter().map(|p| (p * 10.0).round() / 10.0).collect(),
            moving: self.motion == Motion::Moving,
            estop: self.estop,
            locked: self.locked,
            fault: self.fault.is_some(),
            occupied: self.occupied.iter().copied().collect(),
            obstacle: self.obstacle.iter().copied().collect(),
            watchdog_tripped: self.watchdog_tripped,
        }
    }

    /// Logs a command as it arrived; returns its ticket.
    fn log_received(&mut self, command: Command, wire: String, now: Moment) -> u64 {
        let index = self.logged;
        self.logged += 1;
        self.log.push_back(LoggedCommand {
            index,
            received_ms: now.wall_ms,
            wire,
            command,
            acted_ms: None,
            result: None,
            world: None,
        });
        while self.log.len() > LOG_KEPT {
            self.log.pop_front();
        }
        self.last_command_at = Some(now.at);
        index
    }

    fn log_acted(&mut self, ticket: u64, result: &Result<(), Refused>, now: Moment) {
        let world = self.snapshot();
        let first = self.log.front().map_or(0, |e| e.index);
        if let Some(entry) = ticket
            .checked_sub(first)
            .and_then(|i| self.log.get_mut(i as usize))
        {
            entry.acted_ms = Some(now.wall_ms);
            entry.result = Some(match result {
                Ok(()) => "accepted".into(),
                Err(r) => r.reason.name().into(),
            });
            entry.world = Some(world);
        }
    }

    /// Takes a command from the wire: it acts on the next scan after the PLC's scan delay
    /// (at once when there is none). `expires_ms` is the expiry the command carried, if
    /// any. The outcome is collected with [`RangeSim::outcome`].
    pub fn submit(
        &mut self,
        command: Command,
        wire: String,
        expires_ms: Option<i64>,
        now: Moment,
    ) -> u64 {
        let ticket = self.log_received(command, wire, now);
        let delay = Duration::from_millis(self.plc.scan_delay_ms);
        if delay.is_zero() && self.inbox.is_empty() {
            self.act(ticket, command, expires_ms, now);
        } else {
            self.inbox.push_back(Inbox {
                due: now.at + delay,
                ticket,
                command,
                expires_ms,
            });
        }
        ticket
    }

    /// The outcome of a submitted command, once it has acted (taken once).
    pub fn outcome(&mut self, ticket: u64) -> Option<Result<(), Refused>> {
        let i = self.outcomes.iter().position(|(t, _)| *t == ticket)?;
        self.outcomes.remove(i).map(|(_, r)| r)
    }

    /// Gives the PLC a command and acts on it now, whatever the scan delay (for tests and
    /// the control API).
    pub fn command(&mut self, command: Command) -> Result<(), Refused> {
        let now = Moment::now();
        let ticket = self.log_received(command, format!("{command:?}"), now);
        self.act(ticket, command, None, now);
        self.outcome(ticket).unwrap_or(Ok(()))
    }

    fn act(&mut self, ticket: u64, command: Command, expires_ms: Option<i64>, now: Moment) {
        let result = if expires_ms.is_some_and(|e| now.wall_ms > e) {
            Err(Refused::new(Refusal::Expired))
        } else {
            self.try_command(command, now)
        };
        if !matches!(command, Command::Warning { .. }) {
            self.last_result = result.err().map_or(0, |r| r.reason.code());
            self.commands += 1;
        }
        if result.is_ok() && command.is_motion() {
            self.motions += 1;
        }
        self.log_acted(ticket, &result, now);
        self.outcomes.push_back((ticket, result));
        while self.outcomes.len() > 1000 {
            self.outcomes.pop_front();
        }
    }

    fn try_command(&mut self, command: Command, now: Moment) -> Result<(), Refused> {
        match command {
            Command::Stop => {
                self.halt("stop command", now);
                return Ok(());
            }
            Command::Lock => {
                self.halt("locked", now);
                self.locked = true;
                return Ok(());
            }
            Command::Unlock => {
                self.locked = false;
                return Ok(());
            }
            Command::ResetFaults => {
                // A jam set from outside persists until cleared there.
                if self.jammed.is_none() {
                    self.fault = None;
                }
                return Ok(());
            }
            Command::Warning { on } => {
                self.warning = on;
                return Ok(());
            }
            Command::OpenAisle { aisle } if aisle == 0 || aisle as usize >= self.n() => {
                return Err(Refused {
                    reason: Refusal::NoSuchAisle,
                    gap: Some(aisle),
                });
            }
            _ => {}
        }
        if self.watchdog_tripped {
            return Err(Refused::new(Refusal::Watchdog));
        }
        let target = self.targets_for(command).expect("a motion command");
        if self.plc.interlocks {
            if self.estop {
                return Err(Refused::new(Refusal::Estop));
            }
            if self.locked {
                return Err(Refused::new(Refusal::Locked));
            }
            if self.fault.is_some() {
                return Err(Refused::new(Refusal::Fault));
            }
            if let Some(refusal) = self.blocked(&target) {
                return Err(refusal);
            }
        }
        self.target = Some(target);
        self.motion = Motion::Moving;
        self.stop_reason = None;
        self.stalled_s = 0.0;
        Ok(())
    }

    /// The controller's heartbeat: a new value feeds the watchdog (and arms it); `None` is
    /// the controller's last will, which trips it at once.
    pub fn heartbeat(&mut self, beat: Option<u64>, now: Moment) {
        match beat {
            Some(b) if self.heartbeat.is_none_or(|(last, _)| last != b) => {
                self.heartbeat = Some((b, now.at));
                self.heartbeats += 1;
                self.watchdog_tripped = false;
            }
            Some(_) => {}
            None if self.heartbeat.is_some() => {
                self.trip_watchdog("the controller's last will", now)
            }
            None => {}
        }
    }

    fn trip_watchdog(&mut self, why: &str, now: Moment) {
        if self.plc.watchdog && self.spec.watchdog_timeout.is_some() && !self.watchdog_tripped {
            self.watchdog_tripped = true;
            self.halt(&format!("watchdog: {why}"), now);
        }
    }

    fn halt(&mut self, reason: &str, now: Moment) {
        if self.motion == Motion::Moving {
            self.motion = Motion::Stopped;
            self.stop_reason = Some(reason.to_string());
            self.halts.push_back(Halt {
                at_ms: now.wall_ms,
                reason: reason.to_string(),
            });
            while self.halts.len() > 10_000 {
                self.halts.pop_front();
            }
        }
        self.target = None;
        self.vel.iter_mut().for_each(|v| *v = 0.0);
    }

    /// The e-stop is a hardware circuit: it cuts the drives whatever the PLC's settings.
    pub fn set_estop(&mut self, on: bool) {
        self.estop = on;
        if on {
            self.halt("emergency stop", Moment::now());
        }
    }

    pub fn set_occupied(&mut self, gap: u16, on: bool) {
        if on {
            self.occupied.insert(gap);
        } else {
            self.occupied.remove(&gap);
        }
        self.check_sensors(Moment::now());
    }

    pub fn set_obstacle(&mut self, gap: u16, on: bool) {
        if on {
            self.obstacle.insert(gap);
        } else {
            self.obstacle.remove(&gap);
        }
        self.check_sensors(Moment::now());
    }

    /// Sets or clears a fault from outside. A motor fault stops the drives.
    pub fn set_fault(&mut self, fault: Option<Fault>) {
        self.jammed = match fault {
            Some(Fault::Jam { carriage }) => Some(carriage),
            _ => None,
        };
        match fault {
            Some(Fault::Jam { .. }) => {} // noticed when the carriage fails to move
            Some(f) => {
                self.fault = Some(f);
                self.halt("fault", Moment::now());
            }
            None => self.fault = None,
        }
    }

    /// When the last command arrived, accepted or not.
    pub fn last_command_at(&self) -> Option<Instant> {
        self.last_command_at
    }

    /// Aisles are numbered 1..carriages-1.
    pub fn aisle_count(&self) -> u16 {
        self.n() as u16 - 1
    }

    /// Gaps are numbered 0..=carriages.
    pub fn gap_count(&self) -> u16 {
        self.n() as u16 + 1
    }

    /// The commands received from `index` on (every one while the log keeps it).
    pub fn commands_since(&self, index: u64) -> Vec<LoggedCommand> {
        self.log
            .iter()
            .filter(|e| e.index >= index)
            .cloned()
            .collect()
    }

    /// The halts of moving carriages, oldest first.
    pub fn halts(&self) -> Vec<Halt> {
        self.halts.iter().cloned().collect()
    }

    fn check_sensors(&mut self, now: Moment) {
        if !self.plc.interlocks {
            return;
        }
        if let Some(target) = self.target.clone()
            && let Some(refusal) = self.blocked(&target)
        {
            let gap = refusal.gap.unwrap_or(0);
            let reason = match refusal.reason {
                Refusal::AisleOccupied => format!("person in gap {gap}"),
                Refusal::Obstacle => format!("obstacle in gap {gap}"),
                _ => "sensor".to_string(),
            };
            self.halt(&reason, now);
        }
    }

    /// The PLC's cycle at real instant `now`: commands whose scan has come act, in order,
    /// and the watchdog is checked.
    pub fn scan(&mut self, now: Moment) {
        while self.inbox.front().is_some_and(|c| c.due <= now.at) {
            if let Some(c) = self.inbox.pop_front() {
                self.act(c.ticket, c.command, c.expires_ms, now);
            }
        }
        if let (Some(timeout), Some((_, at))) = (self.spec.watchdog_timeout, self.heartbeat)
            && now.at.saturating_duration_since(at) > timeout
        {
            self.trip_watchdog("no heartbeat", now);
        }
    }

    /// Advances the physics by `dt` seconds of simulated time.
    pub fn tick(&mut self, dt: f64) {
        let now = Moment::now();
        self.check_sensors(now);
        // No drive runs without power: the e-stop circuit, a dead motor, the watchdog.
        let drives_off = self.estop
            || self.watchdog_tripped
            || self
                .fault
                .is_some_and(|f| matches!(f, Fault::Motor { .. } | Fault::Other { .. }));
        if drives_off && self.target.is_some() {
            self.halt("drives off", now);
        }
        let Some(target) = self.target.clone() else {
            return;
        };
        let (vmax, accel) = (self.spec.speed_mm_s, self.spec.accel_mm_s2);
        let n = self.n();
        let mut moved = false;
        let mut driven = false;
        for (i, &goal) in target.iter().enumerate() {
            let d = goal - self.pos[i];
            if d.abs() < ARRIVED_MM {
                self.pos[i] = goal;
                self.vel[i] = 0.0;
                continue;
            }
            driven = true;
            if self.jammed == Some(i as u16 + 1) {
                self.vel[i] = 0.0;
                continue;
            }
            // Trapezoidal profile: no faster than lets it stop at the target.
            let want = d.signum() * vmax.min((2.0 * accel * d.abs()).sqrt());
            let dv = (want - self.vel[i]).clamp(-accel * dt, accel * dt);
            self.vel[i] += dv;
            let mut x = self.pos[i] + self.vel[i] * dt;
            if (goal - x).signum() != d.signum() {
                x = goal;
            }
            // Never into a neighbour or past the rail's ends.
            let lo = if i == 0 {
                0.0
            } else {
                self.pos[i - 1] + self.width(i - 1)
            };
            let hi = if i + 1 == n {
                self.rail_mm() - self.width(i)
            } else {
                self.pos[i + 1] - self.width(i)
            };
            let x = x.clamp(lo, hi.max(lo));
            if (x - self.pos[i]).abs() > 1e-9 {
                moved = true;
            }
            self.pos[i] = x;
        }
        if !driven {
            self.target = None;
            self.motion = Motion::Idle;
            return;
        }
        if moved {
            self.stalled_s = 0.0;
        } else {
            self.stalled_s += dt;
            if self.stalled_s >= JAM_AFTER_S {
                let carriage = self.jammed.unwrap_or(0);
                self.fault = Some(Fault::Jam { carriage });
                self.halt("jam", now);
            }
        }
    }

    /// The aisle at (nearly) full width, if one is.
    pub fn open_aisle(&self) -> Option<u16> {
        (1..self.n() as u16).find(|&k| {
            self.gap_in(&self.pos, k) >= self.spec.aisle_width_mm as f64 - OPEN_TOLERANCE_MM
        })
    }

    pub fn state(&self) -> RangeState {
        RangeState {
            range: self.spec.id,
            positions_mm: self.pos.iter().map(|p| (p * 10.0).round() / 10.0).collect(),
            open_aisle: if self.motion == Motion::Moving {
                None
            } else {
                self.open_aisle()
            },
            motion: self.motion,
            locked: self.locked,
            estop: self.estop,
            fault: self.fault,
            occupied_aisles: self.occupied.iter().copied().collect(),
            obstacle_aisles: self.obstacle.iter().copied().collect(),
            stop_reason: self.stop_reason.clone(),
            last_result: self.last_result,
            commands: self.commands,
            motions: self.motions,
            plc: self.plc,
            warning: self.warning,
            watchdog_tripped: self.watchdog_tripped,
            heartbeats: self.heartbeats,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(n: usize) -> RangeSim {
        RangeSim::new(RangeSpec {
            id: 1,
            carriage_widths_mm: vec![600; n],
            fixed: (0..n).map(|i| i == 0 || i == n - 1).collect(),
            aisle_width_mm: 900,
            speed_mm_s: 100.0,
            accel_mm_s2: 200.0,
            watchdog_timeout: Some(Duration::from_millis(1000)),
        })
    }

    fn run(sim: &mut RangeSim, seconds: f64) -> f64 {
        let mut t = 0.0;
        while t < seconds && sim.state().motion == Motion::Moving {
            sim.tick(0.01);
            t += 0.01;
        }
        t
    }

    fn open(k: u16) -> Command {
        Command::OpenAisle { aisle: k }
    }

    fn refused(reason: Refusal, gap: Option<u16>) -> Result<(), Refused> {
        Err(Refused { reason, gap })
    }

    #[test]
    fn opens_an_aisle_at_the_speed_of_the_carriages() {
        let mut sim = range(10);
        assert_eq!(sim.open_aisle(), Some(1));
        sim.command(open(5)).unwrap();
        let t = run(&mut sim, 600.0);
        assert_eq!(sim.state().open_aisle, Some(5));
        assert_eq!(sim.state().motion, Motion::Idle);
        // 900 mm at 100 mm/s plus ramps of 0.5 s each way.
        assert!((9.0..10.0).contains(&t), "took {t} s");
        let p = sim.state().positions_mm;
        assert_eq!(p[0], 0.0, "fixed carriage stayed");
        assert_eq!(p[9], 6300.0, "fixed carriage stayed at the right end");
    }

    #[test]
    fn carriages_never_overlap_or_leave_the_rail() {
        let mut sim = range(8);
        for k in [7, 1, 4, 2, 6] {
            sim.command(open(k)).unwrap();
            while sim.state().motion == Motion::Moving {
                sim.tick(0.05);
                let p = &sim.pos;
                for i in 1..p.len() {
                    assert!(p[i] >= p[i - 1] + 600.0 - 1e-6, "overlap at {i}: {p:?}");
                }
                assert!(p[0] >= 0.0 && p[7] <= 8.0 * 600.0 + 900.0);
            }
            assert_eq!(sim.open_aisle(), Some(k));
        }
        sim.command(Command::Ventilate).unwrap();
        run(&mut sim, 600.0);
        for k in 1..8 {
            assert!((sim.gap_in(&sim.pos, k) - 900.0 / 7.0).abs() < 1.0);
        }
    }

    #[test]
    fn refuses_to_narrow_an_occupied_aisle() {
        let mut sim = range(6);
        sim.set_occupied(1, true);
        assert_eq!(
            sim.command(open(3)),
            refused(Refusal::AisleOccupied, Some(1))
        );
        assert_eq!(sim.state().last_result, 4);
        assert_eq!(sim.state().motion, Motion::Idle);
        // Someone in another (closed) aisle does not stop aisle 1 from staying open.
        sim.set_occupied(1, false);
        sim.set_occupied(4, true);
        assert_eq!(
            sim.command(Command::Close),
            Ok(()),
            "closing narrows aisle 1 only"
        );
    }

    #[test]
    fn a_wall_gap_beside_a_movable_end_carriage_is_guarded() {
        // Carriage 1 movable: opening aisle 1 from a range packed right leaves gap 0 open;
        // closing it (packing left) narrows it.
        let mut sim = RangeSim::new(RangeSpec {
            fixed: vec![false; 4],
            ..range(4).spec.clone()
        });
        sim.command(Command::OpenAisle { aisle: 3 }).unwrap();
        run(&mut sim, 60.0);
        sim.command(Command::Close).unwrap();
        run(&mut sim, 60.0);
        assert_eq!(sim.gap_in(&sim.pos, 0), 0.0);
        assert_eq!(
            sim.gap_in(&sim.pos, 4),
            900.0,
            "the space is at the right wall"
        );
        sim.set_occupied(4, true);
        assert_eq!(
            sim.command(open(1)),
            refused(Refusal::AisleOccupied, Some(4)),
            "someone against the right wall"
        );
    }

    #[test]
    fn a_person_entering_mid_motion_stops_everything() {
        let mut sim = range(6);
        sim.command(open(4)).unwrap();
        for _ in 0..300 {
            sim.tick(0.01);
        }
        let before = sim.state().positions_mm;
        sim.set_occupied(1, true); // aisle 1 is closing
        let s = sim.state();
        assert_eq!(s.motion, Motion::Stopped);
        assert_eq!(s.stop_reason.as_deref(), Some("person in gap 1"));
        sim.tick(1.0);
        assert_eq!(
            sim.state().positions_mm,
            before,
            "nothing moves after the stop"
        );
        assert_eq!(sim.halts().len(), 1);
    }

    #[test]
    fn with_its_interlocks_off_the_plc_runs_people_over() {
        let mut sim = range(6);
        sim.set_plc(PlcSettings {
            interlocks: false,
            ..PlcSettings::default()
        });
        sim.set_occupied(1, true);
        sim.command(Command::Lock).unwrap();
        assert_eq!(sim.command(open(3)), Ok(()), "no refusal of its own");
        sim.tick(0.5);
        assert_eq!(sim.state().motion, Motion::Moving, "no sensor halt either");
        // The e-stop is hardware: it still cuts the drives, and nothing restarts after.
        sim.set_estop(true);
        assert_eq!(sim.state().motion, Motion::Stopped);
        assert_eq!(sim.command(open(4)), Ok(()));
        sim.tick(0.5);
        sim.set_estop(false);
        let before = sim.state().positions_mm;
        sim.tick(0.5);
        assert_eq!(sim.state().positions_mm, before);
    }

    #[test]
    fn estop_lock_and_faults_refuse_motion() {
        let mut sim = range(5);
        sim.set_estop(true);
        assert_eq!(sim.command(open(2)), refused(Refusal::Estop, None));
        assert_eq!(
            sim.command(Command::Stop),
            Ok(()),
            "stop is always accepted"
        );
        sim.set_estop(false);
        sim.command(Command::Lock).unwrap();
        assert_eq!(sim.command(open(2)), refused(Refusal::Locked, None));
        sim.command(Command::Unlock).unwrap();
        sim.set_fault(Some(Fault::Motor { carriage: 3 }));
        assert_eq!(sim.command(open(2)), refused(Refusal::Fault, None));
        sim.set_fault(None);
        assert_eq!(sim.command(open(9)), refused(Refusal::NoSuchAisle, Some(9)));
        assert_eq!(sim.command(open(2)), Ok(()));
    }

    #[test]
    fn a_jammed_carriage_is_noticed_and_stops_the_range() {
        let mut sim = range(5);
        sim.set_fault(Some(Fault::Jam { carriage: 2 }));
        sim.command(open(4)).unwrap();
        run(&mut sim, 30.0);
        let s = sim.state();
        assert_eq!(s.fault, Some(Fault::Jam { carriage: 2 }));
        assert_eq!(s.motion, Motion::Stopped);
        sim.command(Command::ResetFaults).unwrap();
        assert!(sim.state().fault.is_some(), "the jam is still there");
        sim.set_fault(None);
        sim.command(Command::ResetFaults).unwrap();
        assert_eq!(sim.command(open(4)), Ok(()));
    }

    fn at(start: Moment, ms: u64) -> Moment {
        Moment {
            at: start.at + Duration::from_millis(ms),
            wall_ms: start.wall_ms + ms as i64,
        }
    }

    #[test]
    fn commands_act_on_the_next_scan_in_order_and_are_logged() {
        let mut sim = range(6);
        sim.set_plc(PlcSettings {
            scan_delay_ms: 50,
            ..PlcSettings::default()
        });
        let t0 = Moment::now();
        let a = sim.submit(open(3), "01 10 …".into(), None, t0);
        let b = sim.submit(Command::Stop, "01 06 …".into(), None, at(t0, 10));
        sim.scan(at(t0, 40));
        assert_eq!(sim.outcome(a), None, "not yet");
        assert_eq!(sim.state().motion, Motion::Idle);
        sim.scan(at(t0, 55));
        assert_eq!(sim.outcome(a), Some(Ok(())));
        assert_eq!(
            sim.state().motion,
            Motion::Moving,
            "acted 50 ms after it came"
        );
        sim.scan(at(t0, 70));
        assert_eq!(sim.outcome(b), Some(Ok(())));
        assert_eq!(sim.state().motion, Motion::Stopped);
        let log = sim.commands_since(0);
        assert_eq!(log.len(), 2);
        assert_eq!(log[0].received_ms, t0.wall_ms);
        assert_eq!(log[0].acted_ms, Some(t0.wall_ms + 55));
        assert_eq!(log[0].result.as_deref(), Some("accepted"));
        assert_eq!(log[1].command, Command::Stop);
        // A command carrying an expiry that has passed when it acts is refused.
        let c = sim.submit(open(2), "{…}".into(), Some(t0.wall_ms + 80), at(t0, 60));
        sim.scan(at(t0, 120));
        assert_eq!(sim.outcome(c), Some(refused(Refusal::Expired, None)));
    }

    #[test]
    fn the_watchdog_stops_the_drives_when_the_heartbeat_stops() {
        let mut sim = range(6);
        let t0 = Moment::now();
        // Not armed before the first heartbeat: a plain client can drive it.
        sim.scan(at(t0, 5000));
        assert!(!sim.state().watchdog_tripped);
        sim.heartbeat(Some(1), t0);
        sim.submit(open(4), String::new(), None, t0);
        sim.heartbeat(Some(2), at(t0, 200));
        sim.scan(at(t0, 1100));
        assert_eq!(
            sim.state().motion,
            Motion::Moving,
            "900 ms since the last beat"
        );
        sim.heartbeat(Some(2), at(t0, 1150));
        sim.scan(at(t0, 1250));
        let s = sim.state();
        assert!(s.watchdog_tripped, "the same value is no heartbeat");
        assert_eq!(s.motion, Motion::Stopped);
        assert_eq!(s.stop_reason.as_deref(), Some("watchdog: no heartbeat"));
        let t = sim.submit(open(2), String::new(), None, at(t0, 1300));
        assert_eq!(sim.outcome(t), Some(refused(Refusal::Watchdog, None)));
        sim.heartbeat(Some(3), at(t0, 1400));
        assert!(!sim.state().watchdog_tripped, "back with the heartbeat");
        // The last will trips it at once.
        sim.heartbeat(None, at(t0, 1500));
        assert!(sim.state().watchdog_tripped);
    }
}

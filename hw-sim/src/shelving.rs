//! One simulated range of motorized compact shelving and its controller (sans-IO).
//!
//! The range is a row of carriages on rails. The rail is as long as the carriages plus one
//! aisle width, so exactly one aisle's worth of space is free. Carriage 1 stands at the left
//! end (position 0); positions are of each carriage's left edge, in millimetres.
//!
//! The controller behaves like a real one: it refuses unsafe commands on its own (emergency
//! stop, lock, fault, a person or an obstacle in an aisle the motion would narrow), moves the
//! carriages with limited speed and acceleration, and stops everything at once when a sensor
//! trips mid-motion. [`RangeSim::tick`] advances it by a span of simulated time.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

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
}

/// What a shelving controller can be told to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    OpenAisle(u16),
    /// Pack every movable carriage to the left.
    Close,
    /// Spread the free space evenly over all aisles, for air.
    Ventilate,
    Stop,
    Lock,
    Unlock,
    /// Clear faults whose cause is gone.
    ResetFaults,
}

/// Why the controller refused a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "reason", content = "aisle")]
pub enum Refusal {
    Estop,
    Locked,
    Fault,
    /// A person is in an aisle the motion would narrow.
    AisleOccupied(u16),
    /// The safety sweep sees an obstacle in an aisle the motion would narrow.
    Obstacle(u16),
    NoSuchAisle(u16),
}

impl Refusal {
    /// The code a wire protocol reports for this refusal.
    pub fn code(self) -> u16 {
        match self {
            Refusal::Estop => 1,
            Refusal::Locked => 2,
            Refusal::Fault => 3,
            Refusal::AisleOccupied(_) => 4,
            Refusal::Obstacle(_) => 5,
            Refusal::NoSuchAisle(_) => 6,
        }
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
}

/// Whether the carriages move.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Motion {
    Idle,
    Moving,
    /// Stopped before reaching the target (stop command, sensor, fault).
    Stopped,
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
    pub occupied_aisles: Vec<u16>,
    pub obstacle_aisles: Vec<u16>,
    /// Why the last motion stopped short, if it did.
    pub stop_reason: Option<String>,
    /// Result code of the last command: 0 accepted, else [`Refusal::code`].
    pub last_result: u16,
    /// Commands received so far, accepted or not.
    pub commands: u64,
    /// Motion commands accepted so far.
    pub motions: u64,
}

/// The simulated range.
#[derive(Debug, Clone)]
pub struct RangeSim {
    spec: RangeSpec,
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
    /// When the last command arrived (for measuring the controller's latency).
    last_command_at: Option<std::time::Instant>,
}

/// A carriage closer than this to its target has arrived.
const ARRIVED_MM: f64 = 0.5;
/// An aisle at least this close to full width is open.
const OPEN_TOLERANCE_MM: f64 = 5.0;
/// A driven carriage that has not moved for this long is jammed.
const JAM_AFTER_S: f64 = 2.0;

impl RangeSim {
    /// A range at rest with aisle 1 open.
    pub fn new(spec: RangeSpec) -> RangeSim {
        let n = spec.carriage_widths_mm.len();
        let mut sim = RangeSim {
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
            last_command_at: None,
            spec,
        };
        sim.pos = sim.packed(1.min(n as u16 - 1));
        sim
    }

    pub fn spec(&self) -> &RangeSpec {
        &self.spec
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

    /// Gap of aisle `k` (between carriages k and k+1, 1-based) for positions `pos`.
    fn gap_in(&self, pos: &[f64], k: u16) -> f64 {
        let i = k as usize - 1;
        pos[i + 1] - (pos[i] + self.width(i))
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
            Command::OpenAisle(k) => self.packed(k),
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

    /// The first aisle that `target` narrows while someone or something is in it.
    fn blocked(&self, target: &[f64]) -> Option<Refusal> {
        for k in 1..self.n() as u16 {
            let narrows = self.gap_in(target, k) < self.gap_in(&self.pos, k) - ARRIVED_MM;
            if narrows && self.occupied.contains(&k) {
                return Some(Refusal::AisleOccupied(k));
            }
            if narrows && self.obstacle.contains(&k) {
                return Some(Refusal::Obstacle(k));
            }
        }
        None
    }

    /// Gives the controller a command. Stop is always accepted.
    pub fn command(&mut self, command: Command) -> Result<(), Refusal> {
        self.last_command_at = Some(std::time::Instant::now());
        let result = self.try_command(command);
        self.last_result = result.err().map_or(0, Refusal::code);
        self.commands += 1;
        if result.is_ok()
            && matches!(
                command,
                Command::OpenAisle(_) | Command::Close | Command::Ventilate
            )
        {
            self.motions += 1;
        }
        result
    }

    fn try_command(&mut self, command: Command) -> Result<(), Refusal> {
        match command {
            Command::Stop => {
                self.halt("stop command");
                return Ok(());
            }
            Command::Lock => {
                self.halt("locked");
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
            Command::OpenAisle(k) if k == 0 || k as usize >= self.n() => {
                return Err(Refusal::NoSuchAisle(k));
            }
            _ => {}
        }
        if self.estop {
            return Err(Refusal::Estop);
        }
        if self.locked {
            return Err(Refusal::Locked);
        }
        if self.fault.is_some() {
            return Err(Refusal::Fault);
        }
        let target = self.targets_for(command).expect("motion command");
        if let Some(refusal) = self.blocked(&target) {
            return Err(refusal);
        }
        self.target = Some(target);
        self.motion = Motion::Moving;
        self.stop_reason = None;
        self.stalled_s = 0.0;
        Ok(())
    }

    fn halt(&mut self, reason: &str) {
        if self.motion == Motion::Moving {
            self.motion = Motion::Stopped;
            self.stop_reason = Some(reason.to_string());
        }
        self.target = None;
        self.vel.iter_mut().for_each(|v| *v = 0.0);
    }

    pub fn set_estop(&mut self, on: bool) {
        self.estop = on;
        if on {
            self.halt("emergency stop");
        }
    }

    pub fn set_occupied(&mut self, aisle: u16, on: bool) {
        if on {
            self.occupied.insert(aisle);
        } else {
            self.occupied.remove(&aisle);
        }
        self.check_sensors();
    }

    pub fn set_obstacle(&mut self, aisle: u16, on: bool) {
        if on {
            self.obstacle.insert(aisle);
        } else {
            self.obstacle.remove(&aisle);
        }
        self.check_sensors();
    }

    /// Sets or clears a fault from outside. A motor fault or jam stops motion.
    pub fn set_fault(&mut self, fault: Option<Fault>) {
        self.jammed = match fault {
            Some(Fault::Jam { carriage }) => Some(carriage),
            _ => None,
        };
        match fault {
            Some(Fault::Jam { .. }) => {} // noticed when the carriage fails to move
            Some(f) => {
                self.fault = Some(f);
                self.halt("fault");
            }
            None => self.fault = None,
        }
    }

    /// When the last command arrived, accepted or not.
    pub fn last_command_at(&self) -> Option<std::time::Instant> {
        self.last_command_at
    }

    /// Aisles are numbered 1..carriages-1.
    pub fn aisle_count(&self) -> u16 {
        self.n() as u16 - 1
    }

    fn check_sensors(&mut self) {
        if let Some(target) = self.target.clone()
            && let Some(refusal) = self.blocked(&target)
        {
            let reason = match refusal {
                Refusal::AisleOccupied(k) => format!("person in aisle {k}"),
                Refusal::Obstacle(k) => format!("obstacle in aisle {k}"),
                _ => "sensor".to_string(),
            };
            self.halt(&reason);
        }
    }

    /// Advances the simulation by `dt` seconds of simulated time.
    pub fn tick(&mut self, dt: f64) {
        self.check_sensors();
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
                self.halt("jam");
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

    #[test]
    fn opens_an_aisle_at_the_speed_of_the_carriages() {
        let mut sim = range(10);
        assert_eq!(sim.open_aisle(), Some(1));
        sim.command(Command::OpenAisle(5)).unwrap();
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
            sim.command(Command::OpenAisle(k)).unwrap();
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
            sim.command(Command::OpenAisle(3)),
            Err(Refusal::AisleOccupied(1))
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
    fn a_person_entering_mid_motion_stops_everything() {
        let mut sim = range(6);
        sim.command(Command::OpenAisle(4)).unwrap();
        for _ in 0..300 {
            sim.tick(0.01);
        }
        let before = sim.state().positions_mm;
        sim.set_occupied(1, true); // aisle 1 is closing
        let s = sim.state();
        assert_eq!(s.motion, Motion::Stopped);
        assert_eq!(s.stop_reason.as_deref(), Some("person in aisle 1"));
        sim.tick(1.0);
        assert_eq!(
            sim.state().positions_mm,
            before,
            "nothing moves after the stop"
        );
    }

    #[test]
    fn estop_lock_and_faults_refuse_motion() {
        let mut sim = range(5);
        sim.set_estop(true);
        assert_eq!(sim.command(Command::OpenAisle(2)), Err(Refusal::Estop));
        assert_eq!(
            sim.command(Command::Stop),
            Ok(()),
            "stop is always accepted"
        );
        sim.set_estop(false);
        sim.command(Command::Lock).unwrap();
        assert_eq!(sim.command(Command::OpenAisle(2)), Err(Refusal::Locked));
        sim.command(Command::Unlock).unwrap();
        sim.set_fault(Some(Fault::Motor { carriage: 3 }));
        assert_eq!(sim.command(Command::OpenAisle(2)), Err(Refusal::Fault));
        sim.set_fault(None);
        assert_eq!(
            sim.command(Command::OpenAisle(9)),
            Err(Refusal::NoSuchAisle(9))
        );
        assert_eq!(sim.command(Command::OpenAisle(2)), Ok(()));
    }

    #[test]
    fn a_jammed_carriage_is_noticed_and_stops_the_range() {
        let mut sim = range(5);
        sim.set_fault(Some(Fault::Jam { carriage: 2 }));
        sim.command(Command::OpenAisle(4)).unwrap();
        run(&mut sim, 30.0);
        let s = sim.state();
        assert_eq!(s.fault, Some(Fault::Jam { carriage: 2 }));
        assert_eq!(s.motion, Motion::Stopped);
        sim.command(Command::ResetFaults).unwrap();
        assert!(sim.state().fault.is_some(), "the jam is still there");
        sim.set_fault(None);
        sim.command(Command::ResetFaults).unwrap();
        assert_eq!(sim.command(Command::OpenAisle(4)), Ok(()));
    }
}

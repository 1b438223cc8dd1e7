//! The range controller: one task per range, the only thing that moves its carriages.
//!
//! It owns the range's view and its operations, and never waits on the device: orders go
//! to the driver with a deadline and their answers come back as events of its loop, beside
//! the device's states, requests, the room's alarms and a 100 ms tick. After each event one
//! function, `Controller::step`, decides what to do from what is known. Its rules:
//!
//! - **Fresh state only.** A motion starts only on a device report younger than the
//!   profile's `max_state_age_ms`, heard after the last command whose fate was unknown.
//! - **Every interlock, twice.** A motion request is checked when it is decided, again at
//!   the end of its warning (light and buzzer for `start_delay`, longer for automatic
//!   motions, which also need every gap they close to have been clear for a while), and
//!   watched while it runs: every gap the motion touches (walls included), the e-stop,
//!   faults, the lock, obstacles, the room's smoke and water alarms.
//! - **Fate unknown means moving.** A motion command whose answer was lost is
//!   *unconfirmed* and supervised as moving until the device proves the range at rest;
//!   when the controller cannot tell (no fresh state), it sends Stop.
//! - **Stop first, until confirmed.** Stop goes on the driver's own lane and is sent again
//!   until the device has taken it and a later report shows the range at rest; an
//!   operation whose stop is not confirmed within `confirm_window` says so
//!   (`unconfirmed`) and the controller keeps trying. Lock, an e-stop and every hazard
//!   send Stop too. No motion starts while a stop is pending.
//! - **No restart.** Every stop (person, obstacle, e-stop, fault, the PLC's own halt, Stop,
//!   Lock, lost link, room alarm) ends the running operation and cancels every queued one;
//!   a queued request also expires after `queue_expiry`. Nothing moves again without a new
//!   request.
//! - **Unexpected motion** (the device moving while no operation runs) is stopped.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use utoipa::ToSchema;

use super::device::{Command, CommandError, DeviceState, DriverHandle, Link, Outcome, Pending};
use super::plan::{Geometry, Goal, TOLERANCE_MM};
use super::{Event, OpState, Operations, Refusal};
use crate::config::MotionSettings;

/// A carriage as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct CarriageView {
    pub index: u16,
    pub position_mm: Option<f64>,
    pub fixed: bool,
}

/// What a range's carriages are doing, as far as the controller knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RangeMotion {
    /// At rest where the last motion put them.
    Idle,
    Moving,
    /// At rest short of the last motion's target.
    Stopped,
    /// The state is not known (no fresh report).
    Unknown,
}

/// The link to a range's shelving controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LinkState {
    Up,
    Down,
}

/// The state of a range as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct RangeView {
    pub range: u16,
    pub carriages: Vec<CarriageView>,
    pub open_aisle: Option<u16>,
    pub motion: RangeMotion,
    pub locked: bool,
    pub estop: bool,
    pub faults: Vec<String>,
    /// Occupied gaps: aisles 1 to n-1, and 0 and n for the gaps at the walls.
    pub occupied_aisles: Vec<u16>,
    pub obstacle: bool,
    pub link: LinkState,
    /// Why the link is down.
    pub link_error: Option<String>,
    /// When the device last reported.
    pub updated_at: Option<DateTime<Utc>>,
    /// The operation under way.
    pub operation: Option<String>,
    /// A stop has been sent and the device has not yet confirmed the range at rest.
    pub stop_pending: bool,
    /// The room's alarms that forbid motion here (smoke, water).
    pub interlocks: Vec<String>,
    /// The carriages moved and no operation of the controller asked for it (another client
    /// on the device bus, a local control, a fault): the controller is stopping them and
    /// the room has an `unexpected_motion` alarm.
    pub unexpected_motion: bool,
}

/// A request to the controller.
pub enum Request {
    Motion {
        kind: &'static str,
        goal: Goal,
        actor: String,
        /// Asked by no person (ventilation, a schedule): a longer warning, and every gap it
        /// closes must have been clear for a while.
        automatic: bool,
        reply: oneshot::Sender<Result<String, Refusal>>,
    },
    Lock {
        lock: bool,
        actor: String,
        reply: oneshot::Sender<Result<String, Refusal>>,
    },
    Stop {
        actor: String,
        reply: oneshot::Sender<Result<String, Refusal>>,
    },
}

/// The room's alarms that forbid motion in a range: what raised each, in words.
pub type RoomAlarms = BTreeMap<String, String>;

/// The device's timing, from its profile.
#[derive(Debug, Clone)]
pub struct DeviceTiming {
    pub poll: Duration,
    pub stale_after: Duration,
    pub max_state_age: Duration,
    pub command_timeout: Duration,
    pub scan: Duration,
    pub speed_mm_s: f64,
    /// The device has a pre-motion warning output.
    pub warning_output: bool,
}

impl DeviceTiming {
    pub fn of(profile: &stackroom_wire::profile::Profile) -> DeviceTiming {
        let t = &profile.timing;
        DeviceTiming {
            poll: Duration::from_millis(t.poll_interval_ms),
            stale_after: Duration::from_millis(t.stale_after_ms),
            max_state_age: Duration::from_millis(t.max_state_age_ms),
            command_timeout: Duration::from_millis(t.command_timeout_ms),
            scan: Duration::from_millis(t.scan_ms),
            speed_mm_s: profile.motion.as_ref().map_or(100.0, |m| m.speed_mm_s),
            warning_output: profile.has_warning_output(),
        }
    }
}

/// One range's controller.
pub struct Controller {
    pub range: u16,
    pub geometry: Geometry,
    pub driver: DriverHandle,
    pub timing: DeviceTiming,
    pub settings: MotionSettings,
    pub operations: Operations,
    pub events: broadcast::Sender<Event>,
    pub view: watch::Sender<RangeView>,
    pub alarms: watch::Receiver<RoomAlarms>,
    /// When the last range event went out (ms since the epoch).
    pub last_event_ms: AtomicI64,
}

// ------------------------------------------------------------------------- runtime state

/// Where the running motion is.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    /// The warning sounds until then; nothing has been sent.
    Warning { until: Instant },
    /// The command is with the driver.
    Sending,
    /// The device took it.
    Moving { since: Instant },
    /// Its answer was lost at `since`: the carriages may be moving.
    Unconfirmed { since: Instant },
}

/// The operation in charge of the range's motion.
struct Active {
    id: String,
    goal: Goal,
    automatic: bool,
    phase: Phase,
    target: Vec<f64>,
    touched: Vec<u16>,
    seen_moving: bool,
    deadline: Instant,
}

/// A request waiting to be decided on fresh state.
struct Waiting {
    kind: &'static str,
    goal: Goal,
    actor: String,
    automatic: bool,
    /// Its operation, once it has one (a queued request has).
    op: Option<String>,
    reply: Option<oneshot::Sender<Result<String, Refusal>>>,
    since: Instant,
}

/// A request queued behind the running motion.
struct Queued {
    id: String,
    kind: &'static str,
    goal: Goal,
    actor: String,
    automatic: bool,
    expires: Instant,
}

/// A stop that the device has yet to confirm.
struct StopDuty {
    /// Stop operations that end when it is confirmed.
    ops: Vec<String>,
    /// The motion operations it ends, with their reasons.
    ending: Vec<(String, &'static str, String)>,
    since: Instant,
    /// When the device took the last Stop.
    acked_at: Option<Instant>,
    /// When the last operation joined: only a Stop sent after it counts for it.
    joined: Instant,
    next_try: Instant,
    last_error: Option<String>,
    reported: bool,
}

impl StopDuty {
    /// Another operation waits on it: a Stop is sent for it (even if one was taken just
    /// before), and it is told in its turn if that is not confirmed in time.
    fn join(&mut self) {
        let now = Instant::now();
        self.joined = now;
        self.since = now;
        self.reported = false;
        if self.acked_at.take().is_some() {
            self.next_try = now;
        }
    }
}

/// A lock that the device has yet to confirm.
struct LockDuty {
    ops: Vec<String>,
    since: Instant,
    joined: Instant,
    acked_at: Option<Instant>,
    next_try: Instant,
    last_error: Option<String>,
    reported: bool,
}

impl LockDuty {
    /// Another lock request waits on it (see [`StopDuty::join`]).
    fn join(&mut self) {
        let now = Instant::now();
        self.joined = now;
        self.since = now;
        self.reported = false;
        if self.acked_at.take().is_some() {
            self.next_try = now;
        }
    }
}

/// What a command on the command lane is for.
#[derive(Debug, Clone, PartialEq)]
enum Purpose {
    Motion(String),
    Lock,
    Unlock(String),
    Warning(bool),
}

struct InFlight {
    purpose: Purpose,
    answer: Pending,
    sent_at: Instant,
}

struct Runtime {
    seq: u64,
    active: Option<Active>,
    waiting: Option<Waiting>,
    queue: VecDeque<Queued>,
    stop: Option<StopDuty>,
    lock: Option<LockDuty>,
    inflight: Option<InFlight>,
    stop_inflight: Option<(Pending, Instant)>,
    lane: VecDeque<(Purpose, Command)>,
    /// States heard before this are not trusted (a command's fate was unknown then).
    trust_after: Instant,
    /// When each gap was last seen occupied (at start: now, as nothing is known).
    last_occupied: Vec<Instant>,
    warning_on: bool,
    /// The last switch of the warning failed: not again before this.
    warning_retry: Option<Instant>,
    /// The device was seen moving with no operation of ours.
    unexpected: bool,
    held: Held,
}

/// Occupancy that may not be taken at its word. A person does not vanish from an aisle
/// between two reports unless they walked out, and a forged or garbled report looks just
/// the same; so a gap that was occupied in one report and clear in the next is held
/// occupied until a further report agrees that it is clear.
#[derive(Default)]
struct Held {
    /// When the last report seen was heard, and what it said was occupied.
    report_at: Option<Instant>,
    occupied: Vec<u16>,
    /// Gaps occupied in the report before the last one and clear in the last one.
    vanished: Vec<u16>,
}

impl Held {
    /// `state` with the held gaps counted as occupied.
    fn apply(&self, mut state: DeviceState) -> DeviceState {
        if state.at == self.report_at.unwrap_or(state.at) {
            for &g in &self.vanished {
                if !state.occupied.contains(&g) {
                    state.occupied.push(g);
                }
            }
            state.occupied.sort_unstable();
        }
        state
    }
}

fn wall() -> DateTime<Utc> {
    Utc::now()
}

/// Words for a gap: an aisle, or the gap at a wall.
fn gap_words(gap: u16, right_wall: u16) -> String {
    match gap {
        0 => "the gap at the left wall".into(),
        g if g == right_wall => "the gap at the right wall".into(),
        g => format!("aisle {g}"),
    }
}

impl Controller {
    fn state(&self) -> Option<DeviceState> {
        match &*self.driver.link.borrow() {
            Link::Up(s) => Some(s.clone()),
            Link::Down(_) => None,
        }
    }

    /// The device's state if it is fresh enough to move on and heard after `trust_after`.
    fn fresh(&self, rt: &Runtime) -> Option<DeviceState> {
        self.state()
            .filter(|s| s.at >= rt.trust_after && s.at.elapsed() <= self.timing.max_state_age)
            .map(|s| rt.held.apply(s))
    }

    /// The device's state if it is live at all (for supervision).
    fn live(&self, rt: &Runtime) -> Option<DeviceState> {
        self.state()
            .filter(|s| s.at >= rt.trust_after && s.at.elapsed() <= self.timing.stale_after)
            .map(|s| rt.held.apply(s))
    }

    /// Takes in a new report: which occupants vanished since the one before (see [`Held`]).
    fn observe(&self, rt: &mut Runtime) {
        let Some(state) = self.state() else { return };
        if rt.held.report_at == Some(state.at) {
            return;
        }
        let vanished: Vec<u16> = rt
            .held
            .occupied
            .iter()
            .copied()
            .filter(|g| !state.occupied.contains(g))
            .collect();
        if !vanished.is_empty() {
            let wall = self.geometry.right_wall_gap();
            let gaps = vanished
                .iter()
                .map(|g| gap_words(*g, wall))
                .collect::<Vec<_>>()
                .join(", ");
            if rt.active.is_some() || rt.waiting.is_some() || !rt.queue.is_empty() {
                tracing::warn!(
                    range = self.range,
                    "{gaps} reported clear straight after occupied while a motion is pending: held occupied until the next report agrees"
                );
            } else {
                tracing::debug!(range = self.range, "{gaps} clear: held until confirmed");
            }
        }
        rt.held = Held {
            report_at: Some(state.at),
            occupied: state.occupied,
            vanished,
        };
    }

    fn alarms(&self) -> Vec<String> {
        self.alarms.borrow().values().cloned().collect()
    }

    fn next_seq(rt: &mut Runtime) -> u64 {
        rt.seq += 1;
        rt.seq
    }

    /// Everything that must hold before a motion, on a fresh state; the first failure is
    /// the refusal. Returns the target and the gaps the motion touches.
    pub fn check(
        &self,
        goal: Goal,
        automatic: bool,
        state: &DeviceState,
        last_occupied: &[Instant],
    ) -> Result<(Vec<f64>, Vec<u16>), Refusal> {
        let range = self.range;
        if let Goal::OpenAisle(k) = goal
            && (k == 0 || k > self.geometry.aisles())
        {
            return Err(Refusal::new(
                "no_such_aisle",
                format!("range {range} has aisles 1 to {}", self.geometry.aisles()),
            ));
        }
        if state.positions_mm.len() != self.geometry.carriages() {
            return Err(Refusal::new(
                "state_unknown",
                "the controller reports a different number of carriages",
            ));
        }
        if let Some(alarm) = self.alarms().first() {
            return Err(Refusal::new(
                "room_alarm",
                format!("{alarm}: nothing in range {range} moves until it clears"),
            ));
        }
        if state.estop {
            return Err(Refusal::new(
                "estop",
                format!("the emergency stop of range {range} is pressed"),
            ));
        }
        if let Some(f) = state.fault {
            return Err(Refusal::new(
                "fault",
                format!("range {range} has a fault: {}", f.describe()),
            ));
        }
        if state.locked {
            return Err(Refusal::new("locked", format!("range {range} is locked")));
        }
        if state.moving {
            return Err(Refusal::new(
                "moving",
                format!("range {range} is still moving"),
            ));
        }
        let target = self.geometry.target(goal);
        let touched = self.geometry.touched(&state.positions_mm, &target);
        let wall = self.geometry.right_wall_gap();
        if let Some(g) = touched.iter().find(|g| state.occupied.contains(g)) {
            return Err(Refusal::new(
                "aisle_occupied",
                format!(
                    "someone is in {}, which this motion would close",
                    gap_words(*g, wall)
                ),
            ));
        }
        if !touched.is_empty() && state.obstacle {
            return Err(Refusal::new(
                "obstacle",
                "the safety sweep sees an obstacle in an aisle",
            ));
        }
        if automatic {
            let clear = self.settings.automatic_clear;
            if let Some(g) = touched.iter().find(|g| {
                last_occupied
                    .get(**g as usize)
                    .is_some_and(|t| t.elapsed() < clear)
            }) {
                return Err(Refusal::new(
                    "recently_occupied",
                    format!(
                        "someone was in {} less than {} s ago; an automatic motion waits until it has been clear that long",
                        gap_words(*g, wall),
                        clear.as_secs()
                    ),
                ));
            }
        }
        Ok((target, touched))
    }

    /// What, in a live state, makes a running motion stop.
    fn hazard(&self, state: &DeviceState, touched: &[u16]) -> Option<(&'static str, String)> {
        let range = self.range;
        if let Some(alarm) = self.alarms().first() {
            return Some(("room_alarm", format!("{alarm}: stopped")));
        }
        if state.estop {
            return Some((
                "estop",
                format!("the emergency stop of range {range} was pressed"),
            ));
        }
        if let Some(f) = state.fault {
            return Some((
                "fault",
                format!("range {range} has a fault: {}", f.describe()),
            ));
        }
        if state.locked {
            return Some(("locked", format!("range {range} was locked at its panel")));
        }
        let wall = self.geometry.right_wall_gap();
        if let Some(g) = touched.iter().find(|g| state.occupied.contains(g)) {
            return Some((
                "aisle_occupied",
                format!(
                    "someone entered {}, which the motion was closing",
                    gap_words(*g, wall)
                ),
            ));
        }
        if !touched.is_empty() && state.obstacle {
            return Some(("obstacle", "the safety sweep saw an obstacle".into()));
        }
        None
    }

    fn emit(&self, op: Option<super::OperationView>) {
        if let Some(op) = op {
            let _ = self.events.send(Event::Operation(op));
        }
    }

    fn set(&self, id: &str, state: OpState, reason: Option<(&str, String)>) {
        self.emit(self.operations.update(id, state, reason));
    }

    // --------------------------------------------------------------------- requests

    fn request(&self, rt: &mut Runtime, request: Request) {
        match request {
            Request::Stop { actor, reply } => {
                let id = self.operations.create(self.range, "stop", &actor);
                self.set(&id, OpState::Stopping, None);
                self.halt(rt, "stop", format!("stopped on request by {actor}"), true);
                if let Some(duty) = rt.stop.as_mut() {
                    duty.ops.push(id.clone());
                    duty.join();
                }
                let _ = reply.send(Ok(id));
            }
            Request::Lock {
                lock: true,
                actor,
                reply,
            } => {
                let id = self.operations.create(self.range, "lock", &actor);
                // Stop first; the lock follows on the command lane.
                self.halt(
                    rt,
                    "locked",
                    format!("range {} was locked by {actor}", self.range),
                    true,
                );
                let now = Instant::now();
                match rt.lock.as_mut() {
                    Some(duty) => {
                        duty.ops.push(id.clone());
                        duty.join();
                    }
                    None => {
                        rt.lock = Some(LockDuty {
                            ops: vec![id.clone()],
                            since: now,
                            joined: now,
                            acked_at: None,
                            next_try: now,
                            last_error: None,
                            reported: false,
                        })
                    }
                }
                let _ = reply.send(Ok(id));
            }
            Request::Lock {
                lock: false,
                actor,
                reply,
            } => {
                let id = self.operations.create(self.range, "unlock", &actor);
                if let Some(duty) = rt.lock.take() {
                    for op in duty.ops {
                        self.set(
                            &op,
                            OpState::Failed,
                            Some((
                                "superseded",
                                format!("{actor} unlocked the range before the lock was confirmed"),
                            )),
                        );
                    }
                }
                rt.lane
                    .push_back((Purpose::Unlock(id.clone()), Command::Unlock));
                let _ = reply.send(Ok(id));
            }
            Request::Motion {
                kind,
                goal,
                actor,
                automatic,
                reply,
            } => {
                if rt.stop.is_some() {
                    let _ = reply.send(Err(Refusal::new(
                        "stopping",
                        format!(
                            "range {} is being stopped; ask again once the stop is confirmed",
                            self.range
                        ),
                    )));
                    return;
                }
                if rt.lock.is_some() {
                    let _ = reply.send(Err(Refusal::new(
                        "locked",
                        format!("range {} is being locked", self.range),
                    )));
                    return;
                }
                if rt.active.is_none() && rt.waiting.is_none() {
                    rt.waiting = Some(Waiting {
                        kind,
                        goal,
                        actor,
                        automatic,
                        op: None,
                        reply: Some(reply),
                        since: Instant::now(),
                    });
                    return;
                }
                if rt.queue.len() >= self.settings.queue_length {
                    let _ = reply.send(Err(Refusal::new(
                        "busy",
                        format!(
                            "range {} has {} motions waiting already",
                            self.range,
                            rt.queue.len()
                        ),
                    )));
                    return;
                }
                let id = self.operations.create(self.range, kind, &actor);
                rt.queue.push_back(Queued {
                    id: id.clone(),
                    kind,
                    goal,
                    actor,
                    automatic,
                    expires: Instant::now() + self.settings.queue_expiry,
                });
                let _ = reply.send(Ok(id));
            }
        }
    }

    /// Every stop: ends the running motion (with a Stop sent and confirmed, if anything may
    /// have moved), cancels what waits, refuses what is being decided. `always`: send Stop
    /// even when nothing was sent (Stop and Lock requests, unexpected motion).
    fn halt(&self, rt: &mut Runtime, reason: &'static str, message: String, always: bool) {
        let mut ending = None;
        if let Some(active) = rt.active.take() {
            match active.phase {
                Phase::Warning { .. } => {
                    self.set(
                        &active.id,
                        OpState::Refused,
                        Some((reason, message.clone())),
                    );
                }
                _ => {
                    // A command still with the driver is withdrawn: the driver drops it
                    // unless it is already on the wire, and then Stop follows it.
                    if matches!(rt.inflight.as_ref(), Some(f) if f.purpose == Purpose::Motion(active.id.clone()))
                    {
                        rt.inflight = None;
                    }
                    self.set(
                        &active.id,
                        OpState::Stopping,
                        Some((reason, message.clone())),
                    );
                    ending = Some((active.id, reason, message.clone()));
                }
            }
        }
        if let Some(w) = rt.waiting.take() {
            let refusal = Refusal::new(reason, message.clone());
            match (w.reply, w.op) {
                (Some(reply), _) => {
                    let _ = reply.send(Err(refusal));
                }
                (None, Some(op)) => self.set(
                    &op,
                    OpState::Stopped,
                    Some((reason, format!("cancelled before it began: {message}"))),
                ),
                (None, None) => {}
            }
        }
        for q in rt.queue.drain(..) {
            self.set(
                &q.id,
                OpState::Stopped,
                Some((reason, format!("cancelled before it began: {message}"))),
            );
        }
        if ending.is_none() && !always {
            return;
        }
        let now = Instant::now();
        match rt.stop.as_mut() {
            Some(duty) => {
                if let Some(ending) = ending {
                    // Already stopping for another reason: this one ends with it.
                    duty.ending.push(ending);
                    duty.join();
                }
            }
            None => {
                tracing::info!(range = self.range, reason, %message, "stop");
                rt.stop = Some(StopDuty {
                    ops: Vec::new(),
                    ending: ending.into_iter().collect(),
                    since: now,
                    acked_at: None,
                    joined: now,
                    next_try: now,
                    last_error: None,
                    reported: false,
                });
            }
        }
    }

    // --------------------------------------------------------------------- answers

    fn answered(
        &self,
        rt: &mut Runtime,
        purpose: Purpose,
        sent_at: Instant,
        answer: Result<Outcome, CommandError>,
    ) {
        let span = match &purpose {
            Purpose::Motion(id) => Some(tracing::info_span!("operation", op = %id)),
            _ => None,
        };
        let _in = span.as_ref().map(|s| s.enter());
        let now = Instant::now();
        if matches!(answer, Err(CommandError::Unconfirmed(_)))
            && !matches!(purpose, Purpose::Warning(_))
        {
            // A command that may have changed the range's state makes what the device said
            // before it history.
            rt.trust_after = now;
        }
        match purpose {
            Purpose::Motion(id) => {
                let Some(active) = rt.active.as_mut().filter(|a| a.id == id) else {
                    return;
                };
                match answer {
                    Ok(Outcome::Accepted) => {
                        active.phase = Phase::Moving { since: now };
                        self.set(&id, OpState::Moving, None);
                        tracing::info!(range = self.range, operation = %id, goal = ?active.goal, "motion started");
                    }
                    Ok(Outcome::Refused(why)) => {
                        rt.active = None;
                        let reason = Refusal::known(&why);
                        self.set(
                            &id,
                            OpState::Refused,
                            Some((
                                reason,
                                format!(
                                    "the shelving controller refused: {}",
                                    Refusal::words(&why)
                                ),
                            )),
                        );
                    }
                    Err(CommandError::NotSent(why)) => {
                        rt.active = None;
                        rt.trust_after = now;
                        self.set(
                            &id,
                            OpState::Failed,
                            Some((
                                "not_sent",
                                format!("the command did not go out ({why}); nothing moved"),
                            )),
                        );
                    }
                    Err(CommandError::Unconfirmed(why)) => {
                        active.phase = Phase::Unconfirmed { since: now };
                        self.set(
                            &id,
                            OpState::Unconfirmed,
                            Some((
                                "not_confirmed",
                                format!("the controller lost the reply ({why}); the carriages may be moving: watching them"),
                            )),
                        );
                    }
                }
            }
            Purpose::Lock => {
                let Some(duty) = rt.lock.as_mut() else { return };
                match answer {
                    // Sent before the last lock request joined: send it again for that one.
                    Ok(Outcome::Accepted) if sent_at < duty.joined => duty.next_try = now,
                    Ok(Outcome::Accepted) => duty.acked_at = Some(now),
                    Ok(Outcome::Refused(why)) => {
                        duty.last_error =
                            Some(format!("the controller refused: {}", Refusal::words(&why)));
                        duty.next_try = now + self.settings.stop_retry;
                    }
                    Err(e) => {
                        duty.last_error = Some(e.to_string());
                        duty.next_try = now + self.settings.stop_retry;
                    }
                }
            }
            Purpose::Unlock(id) => match answer {
                Ok(Outcome::Accepted) => self.set(&id, OpState::Done, None),
                Ok(Outcome::Refused(why)) => self.set(
                    &id,
                    OpState::Refused,
                    Some((
                        Refusal::known(&why),
                        format!("the controller refused to unlock: {}", Refusal::words(&why)),
                    )),
                ),
                Err(CommandError::NotSent(why)) => {
                    self.set(&id, OpState::Failed, Some(("not_sent", why)))
                }
                Err(CommandError::Unconfirmed(why)) => {
                    self.set(&id, OpState::Failed, Some(("not_confirmed", why)))
                }
            },
            Purpose::Warning(on) => match answer {
                Ok(_) => rt.warning_retry = None,
                Err(e) => {
                    if rt.warning_retry.is_none() {
                        tracing::warn!(range = self.range, on, error = %e, "the pre-motion warning could not be switched");
                    }
                    // Try again a while later, if it still matters then: not at once,
                    // which with the link down would be a busy loop.
                    rt.warning_on = !on;
                    rt.warning_retry = Some(now + self.settings.stop_retry);
                }
            },
        }
    }

    fn stop_answered(
        &self,
        rt: &mut Runtime,
        sent_at: Instant,
        answer: Result<Outcome, CommandError>,
    ) {
        let now = Instant::now();
        let Some(duty) = rt.stop.as_mut() else { return };
        match answer {
            // Sent before the last Stop request joined: send it again for that one.
            Ok(Outcome::Accepted) if sent_at < duty.joined => duty.next_try = now,
            Ok(Outcome::Accepted) => duty.acked_at = Some(now),
            Ok(Outcome::Refused(why)) => {
                duty.last_error = Some(format!("the controller refused the stop: {why}"));
                duty.next_try = now + self.settings.stop_retry;
            }
            Err(e) => {
                duty.last_error = Some(e.to_string());
                duty.next_try = now + self.settings.stop_retry;
            }
        }
    }

    // --------------------------------------------------------------------- the step

    /// Decides what to do from what is known now.
    fn step(&self, rt: &mut Runtime) {
        let now = Instant::now();
        self.observe(rt);
        let live = self.live(rt);
        if let Some(s) = &live {
            for &g in &s.occupied {
                if let Some(t) = rt.last_occupied.get_mut(g as usize) {
                    *t = now;
                }
            }
        }
        self.supervise(rt, live.as_ref());
        self.unexpected(rt, live.as_ref());
        self.expire_queue(rt);
        self.decide(rt);
        self.stop_duty(rt);
        self.lock_duty(rt);
        self.warning(rt);
        self.send_lane(rt);
    }

    /// Watches the running motion.
    fn supervise(&self, rt: &mut Runtime, live: Option<&DeviceState>) {
        let now = Instant::now();
        let Some(active) = rt.active.as_ref() else {
            return;
        };
        let phase = active.phase;
        if let Phase::Warning { until } = phase {
            // Checked again on every report while the warning sounds, and at its end on a
            // fresh one.
            let link_down = matches!(&*self.driver.link.borrow(), Link::Down(_));
            let Some(state) = self
                .state()
                .filter(|s| s.at >= rt.trust_after)
                .map(|s| rt.held.apply(s))
            else {
                // A command's fate was unknown a moment ago: wait for the next report.
                if link_down || rt.trust_after.elapsed() > self.timing.stale_after {
                    let (reason, message) = self.unknown_reason();
                    self.halt(rt, reason, message, false);
                }
                return;
            };
            if state.at.elapsed() > self.timing.stale_after {
                let (reason, message) = self.unknown_reason();
                return self.halt(rt, reason, message, false);
            }
            if let Err(r) = self.check(active.goal, active.automatic, &state, &rt.last_occupied) {
                return self.halt(rt, r.reason, r.message, false);
            }
            if now < until {
                return;
            }
            let Some(fresh) = self.fresh(rt) else {
                if now > until + self.timing.stale_after {
                    let (reason, message) = self.unknown_reason();
                    self.halt(rt, reason, message, false);
                }
                return;
            };
            match self.check(active.goal, active.automatic, &fresh, &rt.last_occupied) {
                Err(r) => self.halt(rt, r.reason, r.message, false),
                Ok((target, touched)) => {
                    if rt.inflight.is_some() {
                        return; // the warning command is still with the driver
                    }
                    let longest = fresh
                        .positions_mm
                        .iter()
                        .zip(&target)
                        .map(|(a, b)| (a - b).abs())
                        .fold(0.0, f64::max);
                    let secs = longest / self.timing.speed_mm_s.max(1.0) * 2.0 + 10.0;
                    let command = match active.goal {
                        Goal::OpenAisle(k) => Command::OpenAisle { aisle: k },
                        Goal::Close => Command::Close,
                        Goal::Ventilate => Command::Ventilate,
                    };
                    let id = active.id.clone();
                    let seq = Self::next_seq(rt);
                    let answer = self
                        .driver
                        .order(command, seq, now + self.timing.command_timeout);
                    rt.inflight = Some(InFlight {
                        purpose: Purpose::Motion(id),
                        answer,
                        sent_at: now,
                    });
                    if let Some(a) = rt.active.as_mut() {
                        a.phase = Phase::Sending;
                        a.target = target;
                        a.touched = touched;
                        a.deadline = now + Duration::from_secs_f64(secs);
                    }
                }
            }
            return;
        }
        // The command has gone (or may have): supervise as moving.
        let Some(state) = live else {
            let link_down = matches!(&*self.driver.link.borrow(), Link::Down(_));
            if !link_down && rt.trust_after.elapsed() <= self.timing.max_state_age {
                return; // the next report comes within a poll
            }
            let (_, why) = self.unknown_reason();
            return self.halt(
                rt,
                "link_down",
                format!("{why}; the carriages may be moving: stop sent"),
                true,
            );
        };
        if let Some((reason, message)) = self.hazard(state, &active.touched) {
            return self.halt(rt, reason, message, true);
        }
        let active = rt.active.as_mut().expect("checked above");
        let arrived = state.positions_mm.len() == active.target.len()
            && state
                .positions_mm
                .iter()
                .zip(&active.target)
                .all(|(a, b)| (a - b).abs() <= TOLERANCE_MM);
        if state.moving {
            active.seen_moving = true;
            if let Phase::Unconfirmed { .. } = active.phase {
                active.phase = Phase::Moving { since: now };
                let id = active.id.clone();
                self.set(
                    &id,
                    OpState::Moving,
                    Some((
                        "not_confirmed",
                        "the reply was lost but the carriages move: supervised as usual".into(),
                    )),
                );
            }
        }
        let active = rt.active.as_ref().expect("checked above");
        let id = active.id.clone();
        let settle = self.timing.scan
            + self.timing.command_timeout
            + self.timing.max_state_age
            + self.timing.poll;
        match active.phase {
            Phase::Sending => {}
            Phase::Moving { since } | Phase::Unconfirmed { since }
                if state.at > since && !state.moving =>
            {
                if arrived {
                    rt.active = None;
                    tracing::info!(range = self.range, operation = %id, "motion done");
                    self.set(&id, OpState::Done, None);
                } else if active.seen_moving {
                    rt.active = None;
                    let message =
                        "the shelving controller stopped the carriages before their places"
                            .to_string();
                    // No restart: what waits is cancelled.
                    self.halt(rt, "halted", message.clone(), false);
                    self.set(&id, OpState::Stopped, Some(("halted", message)));
                } else if now.duration_since(since) > settle {
                    // At rest and never seen moving: it did not start. Stop anyway, in
                    // case the device acts later than its profile says.
                    let unconfirmed = matches!(active.phase, Phase::Unconfirmed { .. });
                    let (reason, message) = if unconfirmed {
                        ("not_confirmed", "the controller lost the reply and the carriages did not move; stop sent".to_string())
                    } else {
                        ("not_started", "the controller took the command but the carriages did not move; stop sent".to_string())
                    };
                    self.halt(rt, reason, message, true);
                }
            }
            _ => {}
        }
        if let Some(active) = rt.active.as_ref()
            && now > active.deadline
            && !matches!(active.phase, Phase::Sending)
        {
            self.halt(
                rt,
                "timeout",
                "the motion took far longer than it should; stop sent".into(),
                true,
            );
        }
    }

    /// Why the state is not known, for a refusal.
    fn unknown_reason(&self) -> (&'static str, String) {
        match &*self.driver.link.borrow() {
            Link::Down(why) => (
                "link_down",
                format!(
                    "the shelving controller of range {} cannot be reached ({why})",
                    self.range
                ),
            ),
            Link::Up(s) => (
                "state_unknown",
                format!(
                    "the state of range {} is {} ms old; nothing moves until a fresh report",
                    self.range,
                    s.at.elapsed().as_millis()
                ),
            ),
        }
    }

    /// The device moving with no operation of ours: stop it.
    fn unexpected(&self, rt: &mut Runtime, live: Option<&DeviceState>) {
        let moving = live.is_some_and(|s| s.moving);
        if moving && rt.active.is_none() && rt.stop.is_none() {
            if !rt.unexpected {
                tracing::error!(
                    range = self.range,
                    "the carriages move and no operation asked for it; stopping"
                );
            }
            rt.unexpected = true;
            self.halt(
                rt,
                "unexpected_motion",
                "the carriages moved and no operation asked for it".into(),
                true,
            );
        } else if !moving {
            rt.unexpected = false;
        }
    }

    fn expire_queue(&self, rt: &mut Runtime) {
        let now = Instant::now();
        let expiry = self.settings.queue_expiry;
        rt.queue.retain(|q| {
            if now < q.expires {
                return true;
            }
            self.set(
                &q.id,
                OpState::Failed,
                Some((
                    "expired",
                    format!(
                        "it waited longer than {} s and was dropped; ask again",
                        expiry.as_secs()
                    ),
                )),
            );
            false
        });
    }

    /// Starts the next request when the range is free, on fresh state.
    fn decide(&self, rt: &mut Runtime) {
        if rt.active.is_some() || rt.stop.is_some() || rt.lock.is_some() {
            return;
        }
        if rt.waiting.is_none()
            && let Some(q) = rt.queue.pop_front()
        {
            rt.waiting = Some(Waiting {
                kind: q.kind,
                goal: q.goal,
                actor: q.actor,
                automatic: q.automatic,
                op: Some(q.id),
                reply: None,
                since: Instant::now(),
            });
        }
        let Some(w) = rt.waiting.as_ref() else { return };
        let link_down = matches!(&*self.driver.link.borrow(), Link::Down(_));
        let Some(fresh) = self.fresh(rt) else {
            if link_down || w.since.elapsed() > self.timing.stale_after {
                let (reason, message) = self.unknown_reason();
                let w = rt.waiting.take().expect("checked above");
                self.refuse(w, Refusal::new(reason, message));
            }
            return;
        };
        if !rt.held.vanished.is_empty() && w.since.elapsed() <= self.timing.stale_after {
            return; // someone left an aisle a report ago: decide on the next report
        }
        let w = rt.waiting.take().expect("checked above");
        match self.check(w.goal, w.automatic, &fresh, &rt.last_occupied) {
            Err(refusal) => {
                tracing::info!(
                    range = self.range,
                    reason = refusal.reason,
                    "motion refused"
                );
                self.refuse(w, refusal);
            }
            Ok((target, touched)) => {
                let id =
                    w.op.unwrap_or_else(|| self.operations.create(self.range, w.kind, &w.actor));
                if let Some(reply) = w.reply {
                    let _ = reply.send(Ok(id.clone()));
                }
                let delay = if w.automatic {
                    self.settings.automatic_start_delay
                } else {
                    self.settings.start_delay
                };
                self.set(&id, OpState::Starting, None);
                rt.active = Some(Active {
                    id,
                    goal: w.goal,
                    automatic: w.automatic,
                    phase: Phase::Warning {
                        until: Instant::now() + delay,
                    },
                    target,
                    touched,
                    seen_moving: false,
                    deadline: Instant::now() + Duration::from_secs(3600),
                });
                // A warning of zero length starts at once.
                self.supervise(rt, None);
            }
        }
    }

    fn refuse(&self, w: Waiting, refusal: Refusal) {
        match (w.reply, w.op) {
            (Some(reply), _) => {
                let _ = reply.send(Err(refusal));
            }
            (None, Some(op)) => self.set(
                &op,
                OpState::Refused,
                Some((refusal.reason, refusal.message)),
            ),
            (None, None) => {}
        }
    }

    /// Sends Stop until the device took it and a later report shows the range at rest.
    fn stop_duty(&self, rt: &mut Runtime) {
        let now = Instant::now();
        let live = self.live(rt);
        let Some(duty) = rt.stop.as_mut() else { return };
        if let Some(acked) = duty.acked_at
            && let Some(s) = live.as_ref().filter(|s| s.at > acked && !s.moving)
        {
            let _ = s;
            let duty = rt.stop.take().expect("checked above");
            for id in &duty.ops {
                self.set(id, OpState::Done, None);
            }
            for (id, reason, message) in duty.ending {
                self.set(&id, OpState::Stopped, Some((reason, message)));
            }
            tracing::info!(range = self.range, "stop confirmed");
            return;
        }
        // Taken but not yet seen at rest for a while: send it again.
        if let Some(acked) = duty.acked_at
            && now.duration_since(acked) > self.timing.scan + self.timing.max_state_age
            && now >= duty.next_try
        {
            duty.acked_at = None;
        }
        if duty.acked_at.is_none() && rt.stop_inflight.is_none() && now >= duty.next_try {
            rt.seq += 1;
            rt.stop_inflight = Some((
                self.driver
                    .order(Command::Stop, rt.seq, now + self.timing.command_timeout),
                now,
            ));
            duty.next_try = now + self.settings.stop_retry;
        }
        if !duty.reported && now.duration_since(duty.since) > self.settings.confirm_window {
            duty.reported = true;
            let why = duty
                .last_error
                .clone()
                .unwrap_or_else(|| "the range has not been seen at rest".into());
            let message = format!(
                "the stop of range {} is not confirmed ({why}); the carriages may be moving; still trying",
                self.range
            );
            tracing::error!(range = self.range, %message, "stop not confirmed");
            for id in &duty.ops {
                self.set(
                    id,
                    OpState::Unconfirmed,
                    Some(("not_confirmed", message.clone())),
                );
            }
            for (id, reason, _) in &duty.ending {
                self.set(id, OpState::Unconfirmed, Some((reason, message.clone())));
            }
        }
    }

    /// Sends Lock until the device took it and a later report shows the range locked.
    fn lock_duty(&self, rt: &mut Runtime) {
        let now = Instant::now();
        let live = self.live(rt);
        let Some(duty) = rt.lock.as_mut() else { return };
        if let Some(acked) = duty.acked_at
            && live.as_ref().is_some_and(|s| s.at > acked && s.locked)
        {
            let duty = rt.lock.take().expect("checked above");
            for id in &duty.ops {
                self.set(id, OpState::Done, None);
            }
            return;
        }
        if let Some(acked) = duty.acked_at
            && now.duration_since(acked) > self.timing.scan + self.timing.max_state_age
        {
            duty.acked_at = None;
        }
        let queued = rt.lane.iter().any(|(p, _)| *p == Purpose::Lock)
            || rt
                .inflight
                .as_ref()
                .is_some_and(|f| f.purpose == Purpose::Lock);
        if duty.acked_at.is_none() && !queued && now >= duty.next_try {
            rt.lane.push_front((Purpose::Lock, Command::Lock));
            duty.next_try = now + self.settings.stop_retry;
        }
        if !duty.reported && now.duration_since(duty.since) > self.settings.confirm_window {
            duty.reported = true;
            let why = duty
                .last_error
                .clone()
                .unwrap_or_else(|| "the range has not been seen locked".into());
            let message = format!(
                "the lock of range {} is not confirmed ({why}); still trying",
                self.range
            );
            tracing::error!(range = self.range, %message, "lock not confirmed");
            for id in &duty.ops {
                self.set(
                    id,
                    OpState::Unconfirmed,
                    Some(("not_confirmed", message.clone())),
                );
            }
        }
    }

    /// The pre-motion warning sounds from the warning until the motion ends.
    fn warning(&self, rt: &mut Runtime) {
        if !self.timing.warning_output {
            return;
        }
        if rt.warning_retry.is_some_and(|at| Instant::now() < at) {
            return;
        }
        let want = rt.active.is_some();
        if want != rt.warning_on
            && !rt
                .lane
                .iter()
                .any(|(p, _)| matches!(p, Purpose::Warning(_)))
        {
            rt.warning_on = want;
            rt.lane
                .push_back((Purpose::Warning(want), Command::Warning { on: want }));
        }
    }

    fn send_lane(&self, rt: &mut Runtime) {
        if rt.inflight.is_some() {
            return;
        }
        let Some((purpose, command)) = rt.lane.pop_front() else {
            return;
        };
        let seq = Self::next_seq(rt);
        let answer = self
            .driver
            .order(command, seq, Instant::now() + self.timing.command_timeout);
        rt.inflight = Some(InFlight {
            purpose,
            answer,
            sent_at: Instant::now(),
        });
    }

    // --------------------------------------------------------------------- the view

    fn publish_view(&self, rt: &Runtime) {
        let link = self.driver.link.borrow().clone();
        let (state, error) = match link {
            Link::Up(s) => (Some(rt.held.apply(s)), None),
            Link::Down(why) => (None, Some(why)),
        };
        let fresh = state
            .as_ref()
            .filter(|s| s.at.elapsed() <= self.timing.stale_after);
        let view = RangeView {
            range: self.range,
            carriages: (0..self.geometry.carriages())
                .map(|i| CarriageView {
                    index: i as u16 + 1,
                    position_mm: fresh.and_then(|s| s.positions_mm.get(i).copied()),
                    fixed: self.geometry.fixed(i),
                })
                .collect(),
            open_aisle: fresh
                .filter(|s| !s.moving)
                .and_then(|s| self.geometry.open_aisle(&s.positions_mm)),
            motion: match fresh {
                None => RangeMotion::Unknown,
                Some(s) if s.moving => RangeMotion::Moving,
                Some(s) if s.stopped_short => RangeMotion::Stopped,
                Some(_) => RangeMotion::Idle,
            },
            locked: state.as_ref().is_some_and(|s| s.locked),
            estop: state.as_ref().is_some_and(|s| s.estop),
            faults: state
                .as_ref()
                .and_then(|s| s.fault)
                .map(|f| vec![f.describe()])
                .unwrap_or_default(),
            occupied_aisles: state
                .as_ref()
                .map(|s| s.occupied.clone())
                .unwrap_or_default(),
            obstacle: state.as_ref().is_some_and(|s| s.obstacle),
            link: if error.is_none() {
                LinkState::Up
            } else {
                LinkState::Down
            },
            link_error: error,
            updated_at: state
                .as_ref()
                .map(|s| wall() - chrono::Duration::from_std(s.at.elapsed()).unwrap_or_default()),
            operation: rt.active.as_ref().map(|a| a.id.clone()),
            stop_pending: rt.stop.is_some(),
            interlocks: self.alarms(),
            unexpected_motion: rt.unexpected,
        };
        // Every poll refreshes `updated_at`; an event goes out when something else changed,
        // and as a heartbeat every `stale_after`, so listeners can tell the state is live.
        let previous = self.view.send_replace(view.clone());
        let same = RangeView {
            updated_at: view.updated_at,
            ..previous
        } == view;
        let now_ms = wall().timestamp_millis();
        let last = self.last_event_ms.load(Ordering::Relaxed);
        if !same || now_ms - last >= self.timing.stale_after.as_millis() as i64 {
            self.last_event_ms.store(now_ms, Ordering::Relaxed);
            let _ = self.events.send(Event::Range(view));
        }
    }

    /// The controller's loop.
    pub async fn run(self, mut requests: mpsc::Receiver<Request>) {
        let mut link = self.driver.link.clone();
        let mut alarms = self.alarms.clone();
        let start = Instant::now();
        let mut rt = Runtime {
            seq: 0,
            active: None,
            waiting: None,
            queue: VecDeque::new(),
            stop: None,
            lock: None,
            inflight: None,
            stop_inflight: None,
            lane: VecDeque::new(),
            trust_after: start,
            last_occupied: vec![start; self.geometry.right_wall_gap() as usize + 1],
            warning_on: false,
            warning_retry: None,
            unexpected: false,
            held: Held::default(),
        };
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                request = requests.recv() => {
                    let Some(request) = request else { return };
                    self.request(&mut rt, request);
                }
                answer = async { (&mut rt.stop_inflight.as_mut().expect("guarded").0).await }, if rt.stop_inflight.is_some() => {
                    let sent_at = rt.stop_inflight.take().expect("guarded").1;
                    let answer = answer.unwrap_or_else(|_| Err(CommandError::NotSent("the driver has stopped".into())));
                    self.stop_answered(&mut rt, sent_at, answer);
                }
                answer = async { (&mut rt.inflight.as_mut().expect("guarded").answer).await }, if rt.inflight.is_some() => {
                    let InFlight { purpose, sent_at, .. } = rt.inflight.take().expect("guarded");
                    let answer = answer.unwrap_or_else(|_| Err(CommandError::NotSent("the driver has stopped".into())));
                    self.answered(&mut rt, purpose, sent_at, answer);
                }
                changed = link.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
                _ = alarms.changed() => {}
                _ = tick.tick() => self.driver.pulse(),
            }
            // What the step logs belongs to the operation under way, if any.
            let span = rt
                .active
                .as_ref()
                .map(|a| tracing::info_span!("operation", op = %a.id));
            let _in = span.as_ref().map(|s| s.enter());
            self.step(&mut rt);
            self.publish_view(&rt);
        }
    }
}

#[cfg(test)]
mod tests;

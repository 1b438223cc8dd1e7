//! The range controller: one task per range, the only thing that moves its carriages.
//!
//! It owns the range's view (what the device last said, the link, the operation under
//! way), takes requests one at a time, checks every interlock before it sends a motion
//! command, and supervises the motion while it runs: a person or an obstacle entering an
//! aisle that is closing, an emergency stop, a fault or a lost link ends it, with Stop sent
//! at once where the device may still be moving. Stop is always accepted and jumps the queue.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use utoipa::ToSchema;

use super::device::{DeviceCommand, DeviceState, DriverHandle, Link, Outcome};
use super::plan::{Geometry, Goal, TOLERANCE_MM};
use super::{Event, Operations, Refusal};

/// A carriage as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct CarriageView {
    pub index: u16,
    pub position_mm: Option<f64>,
    pub fixed: bool,
}

/// The state of a range as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct RangeView {
    pub range: u16,
    pub carriages: Vec<CarriageView>,
    pub open_aisle: Option<u16>,
    /// `idle`, `moving`, `stopped`, or `unknown` while the state is not known.
    pub motion: String,
    pub locked: bool,
    pub estop: bool,
    pub faults: Vec<String>,
    pub occupied_aisles: Vec<u16>,
    pub obstacle: bool,
    /// `up` or `down`.
    pub link: String,
    /// Why the link is down.
    pub link_error: Option<String>,
    /// When the device last reported.
    pub updated_at: Option<DateTime<Utc>>,
    /// The operation under way.
    pub operation: Option<String>,
}

/// A request to the controller.
pub enum Request {
    Motion {
        kind: &'static str,
        goal: Goal,
        actor: String,
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

struct Running {
    id: String,
    goal: Goal,
    target: Vec<f64>,
    narrowing: Vec<u16>,
    seen_moving: bool,
    started: Instant,
    deadline: Instant,
}

pub struct Controller {
    pub range: u16,
    pub geometry: Geometry,
    pub driver: DriverHandle,
    pub stale_after: Duration,
    pub command_timeout: Duration,
    pub speed_mm_s: f64,
    pub operations: Operations,
    pub events: broadcast::Sender<Event>,
    pub view: watch::Sender<RangeView>,
    /// When the last range event went out (ms since the epoch).
    pub last_event_ms: AtomicI64,
}

fn wall() -> DateTime<Utc> {
    Utc::now()
}

impl Controller {
    fn device(&self) -> Option<DeviceState> {
        match &*self.driver.link.borrow() {
            Link::Up(s) => Some(s.clone()),
            Link::Down(_) => None,
        }
    }

    /// Everything that must hold before any motion; the first failure is the refusal.
    pub fn check(&self, goal: Goal) -> Result<(Vec<f64>, Vec<u16>), Refusal> {
        if let Goal::OpenAisle(k) = goal
            && (k == 0 || k > self.geometry.aisles())
        {
            return Err(Refusal::new(
                "no_such_aisle",
                format!(
                    "range {} has aisles 1 to {}",
                    self.range,
                    self.geometry.aisles()
                ),
            ));
        }
        let state = match &*self.driver.link.borrow() {
            Link::Down(why) => {
                return Err(Refusal::new(
                    "link_down",
                    format!(
                        "the shelving controller of range {} cannot be reached ({why})",
                        self.range
                    ),
                ));
            }
            Link::Up(s) => s.clone(),
        };
        if state.at.elapsed() > self.stale_after {
            return Err(Refusal::new(
                "state_unknown",
                format!(
                    "the state of range {} is {} s old; nothing moves until it is known",
                    self.range,
                    state.at.elapsed().as_secs()
                ),
            ));
        }
        if state.positions_mm.len() != self.geometry.carriages() {
            return Err(Refusal::new(
                "state_unknown",
                "the controller reports a different number of carriages",
            ));
        }
        if state.estop {
            return Err(Refusal::new(
                "estop",
                format!("the emergency stop of range {} is pressed", self.range),
            ));
        }
        if let Some(f) = state.fault {
            return Err(Refusal::new(
                "fault",
                format!("range {} has a fault: {}", self.range, f.describe()),
            ));
        }
        if state.locked {
            return Err(Refusal::new(
                "locked",
                format!("range {} is locked", self.range),
            ));
        }
        if state.moving {
            return Err(Refusal::new(
                "moving",
                format!("range {} is still moving", self.range),
            ));
        }
        let target = self.geometry.target(goal);
        let narrowing = self.geometry.narrowed(&state.positions_mm, &target);
        if let Some(k) = narrowing.iter().find(|k| state.occupied_aisles.contains(k)) {
            return Err(Refusal::new(
                "aisle_occupied",
                format!("someone is in aisle {k}, which this motion would close"),
            ));
        }
        if !narrowing.is_empty() && !state.obstacle_aisles.is_empty() {
            return Err(Refusal::new(
                "obstacle",
                "the safety sweep sees an obstacle in an aisle",
            ));
        }
        Ok((target, narrowing))
    }

    fn publish_view(&self, running: Option<&Running>) {
        let link = self.driver.link.borrow().clone();
        let (state, error) = match link {
            Link::Up(s) => (Some(s), None),
            Link::Down(why) => (None, Some(why)),
        };
        let fresh = state
            .as_ref()
            .filter(|s| s.at.elapsed() <= self.stale_after);
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
                None => "unknown",
                Some(s) if s.moving => "moving",
                Some(s) if s.stopped_short => "stopped",
                Some(_) => "idle",
            }
            .into(),
            locked: state.as_ref().is_some_and(|s| s.locked),
            estop: state.as_ref().is_some_and(|s| s.estop),
            faults: state
                .as_ref()
                .and_then(|s| s.fault)
                .map(|f| vec![f.describe()])
                .unwrap_or_default(),
            occupied_aisles: state
                .as_ref()
                .map(|s| s.occupied_aisles.clone())
                .unwrap_or_default(),
            obstacle: state
                .as_ref()
                .is_some_and(|s| !s.obstacle_aisles.is_empty()),
            link: if error.is_none() { "up" } else { "down" }.into(),
            link_error: error,
            updated_at: state
                .as_ref()
                .map(|s| wall() - chrono::Duration::from_std(s.at.elapsed()).unwrap_or_default()),
            operation: running.map(|r| r.id.clone()),
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
        if !same || now_ms - last >= self.stale_after.as_millis() as i64 {
            self.last_event_ms.store(now_ms, Ordering::Relaxed);
            let _ = self.events.send(Event::Range(view));
        }
    }

    fn finish(&self, id: &str, state: &str, reason: Option<(&str, String)>) {
        if let Some(op) = self.operations.finish(id, state, reason) {
            let _ = self.events.send(Event::Operation(op));
        }
    }

    /// Starts a motion; the operation is created (queued) before this is called.
    async fn start(&self, id: String, goal: Goal) -> Option<Running> {
        let (target, narrowing) = match self.check(goal) {
            Ok(plan) => plan,
            Err(refusal) => {
                tracing::info!(range = self.range, operation = %id, reason = refusal.reason, "motion refused");
                self.finish(&id, "refused", Some((refusal.reason, refusal.message)));
                return None;
            }
        };
        let command = match goal {
            Goal::OpenAisle(k) => DeviceCommand::OpenAisle(k),
            Goal::Close => DeviceCommand::Close,
            Goal::Ventilate => DeviceCommand::Ventilate,
        };
        match self.driver.send(command, self.command_timeout).await {
            Ok(Outcome::Accepted) => {
                let longest = self
                    .device()
                    .map(|s| {
                        s.positions_mm
                            .iter()
                            .zip(&target)
                            .map(|(a, b)| (a - b).abs())
                            .fold(0.0, f64::max)
                    })
                    .unwrap_or(0.0);
                let secs = longest / self.speed_mm_s.max(1.0) * 2.0 + 10.0;
                if let Some(op) = self.operations.set_state(&id, "moving") {
                    let _ = self.events.send(Event::Operation(op));
                }
                tracing::info!(range = self.range, operation = %id, ?goal, "motion started");
                Some(Running {
                    id,
                    goal,
                    target,
                    narrowing,
                    seen_moving: false,
                    started: Instant::now(),
                    deadline: Instant::now() + Duration::from_secs_f64(secs),
                })
            }
            Ok(Outcome::Refused(reason)) => {
                let message = format!("the shelving controller refused: {reason}");
                self.finish(&id, "refused", Some((Refusal::known(&reason), message)));
                None
            }
            Err(e) => {
                self.finish(&id, "failed", Some(("link_down", e.to_string())));
                None
            }
        }
    }

    async fn stop_device(&self) {
        if let Err(e) = self
            .driver
            .send(DeviceCommand::Stop, self.command_timeout)
            .await
        {
            tracing::error!(range = self.range, error = %e, "stop could not be sent");
        }
    }

    /// Watches a running motion; returns it while it goes on.
    async fn supervise(&self, run: Running) -> Option<Running> {
        let link = self.driver.link.borrow().clone();
        let state = match link {
            Link::Down(why) => {
                self.stop_device().await;
                self.finish(
                    &run.id,
                    "failed",
                    Some((
                        "link_down",
                        format!("the link was lost during the motion: {why}"),
                    )),
                );
                return None;
            }
            Link::Up(s) => s,
        };
        if state.estop {
            self.finish(
                &run.id,
                "stopped",
                Some(("estop", "the emergency stop was pressed".into())),
            );
            return None;
        }
        if let Some(f) = state.fault {
            self.stop_device().await;
            self.finish(&run.id, "stopped", Some(("fault", f.describe())));
            return None;
        }
        if let Some(k) = run
            .narrowing
            .iter()
            .find(|k| state.occupied_aisles.contains(k))
        {
            self.stop_device().await;
            self.finish(
                &run.id,
                "stopped",
                Some((
                    "aisle_occupied",
                    format!("someone entered aisle {k} while it was closing"),
                )),
            );
            return None;
        }
        if !run.narrowing.is_empty() && !state.obstacle_aisles.is_empty() {
            self.stop_device().await;
            self.finish(
                &run.id,
                "stopped",
                Some(("obstacle", "the safety sweep saw an obstacle".into())),
            );
            return None;
        }
        let arrived = state.positions_mm.len() == run.target.len()
            && state
                .positions_mm
                .iter()
                .zip(&run.target)
                .all(|(a, b)| (a - b).abs() <= TOLERANCE_MM);
        if !state.moving && arrived {
            tracing::info!(range = self.range, operation = %run.id, goal = ?run.goal, "motion done");
            self.finish(&run.id, "done", None);
            return None;
        }
        // The state read right after the command may still be the old one: judge a halt
        // only once the carriages were seen moving, and give them a while to start.
        if !state.moving && run.seen_moving {
            self.finish(
                &run.id,
                "stopped",
                Some((
                    "stopped",
                    "the carriages stopped before their places".into(),
                )),
            );
            return None;
        }
        if !state.moving
            && !run.seen_moving
            && run.started.elapsed() > self.stale_after + self.command_timeout
        {
            self.finish(
                &run.id,
                "failed",
                Some((
                    "not_started",
                    "the controller took the command but the carriages did not move".into(),
                )),
            );
            return None;
        }
        if Instant::now() > run.deadline {
            self.stop_device().await;
            self.finish(
                &run.id,
                "failed",
                Some((
                    "timeout",
                    "the motion took far longer than it should".into(),
                )),
            );
            return None;
        }
        Some(Running {
            seen_moving: run.seen_moving || state.moving,
            ..run
        })
    }

    /// The controller's loop.
    pub async fn run(self, mut requests: mpsc::Receiver<Request>) {
        let mut link = self.driver.link.clone();
        let mut queue: VecDeque<(String, Goal)> = VecDeque::new();
        let mut running: Option<Running> = None;
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tokio::select! {
                request = requests.recv() => {
                    let Some(request) = request else { return };
                    match request {
                        Request::Stop { actor, reply } => {
                            let id = self.operations.create(self.range, "stop", &actor);
                            self.stop_device().await;
                            if let Some(run) = running.take() {
                                self.finish(&run.id, "stopped", Some(("stop", "stopped on request".into())));
                            }
                            for (queued, _) in queue.drain(..) {
                                self.finish(&queued, "stopped", Some(("stop", "stopped on request before it began".into())));
                            }
                            self.finish(&id, "done", None);
                            let _ = reply.send(Ok(id));
                        }
                        Request::Lock { lock, actor, reply } => {
                            let kind = if lock { "lock" } else { "unlock" };
                            let id = self.operations.create(self.range, kind, &actor);
                            let command = if lock { DeviceCommand::Lock } else { DeviceCommand::Unlock };
                            let answer = match self.driver.send(command, self.command_timeout).await {
                                Ok(Outcome::Accepted) => {
                                    if lock && let Some(run) = running.take() {
                                        self.finish(&run.id, "stopped", Some(("locked", "the range was locked".into())));
                                    }
                                    self.finish(&id, "done", None);
                                    Ok(id)
                                }
                                Ok(Outcome::Refused(r)) => {
                                    let refusal = Refusal::new(Refusal::known(&r), format!("the controller refused to {kind}: {r}"));
                                    self.finish(&id, "refused", Some((refusal.reason, refusal.message.clone())));
                                    Err(refusal)
                                }
                                Err(e) => {
                                    let refusal = Refusal::new("link_down", e.to_string());
                                    self.finish(&id, "failed", Some(("link_down", e.to_string())));
                                    Err(refusal)
                                }
                            };
                            let _ = reply.send(answer);
                        }
                        Request::Motion { kind, goal, actor, reply } => {
                            if running.is_some() || !queue.is_empty() {
                                let id = self.operations.create(self.range, kind, &actor);
                                queue.push_back((id.clone(), goal));
                                let _ = reply.send(Ok(id));
                            } else {
                                // Refused at once when it cannot start now.
                                if let Err(refusal) = self.check(goal) {
                                    let _ = reply.send(Err(refusal));
                                    continue;
                                }
                                let id = self.operations.create(self.range, kind, &actor);
                                let _ = reply.send(Ok(id.clone()));
                                running = self.start(id, goal).await;
                            }
                        }
                    }
                }
                changed = link.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    if let Some(run) = running.take() {
                        running = self.supervise(run).await;
                    }
                }
                _ = tick.tick() => {
                    if let Some(run) = running.take() {
                        running = self.supervise(run).await;
                    }
                }
            }
            if running.is_none()
                && let Some((id, goal)) = queue.pop_front()
            {
                running = self.start(id, goal).await;
            }
            self.publish_view(running.as_ref());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::tests::range;
    use crate::shelving::device::{self, DeviceFault};

    /// A controller whose driver end the test holds: it sets the link by hand.
    fn controller() -> (Controller, device::DriverPorts) {
        let (handle, ports) = device::channel();
        let layout = range(1, 6, 1, 1);
        let (view, _) = watch::channel(RangeView {
            range: 1,
            carriages: vec![],
            open_aisle: None,
            motion: "unknown".into(),
            locked: false,
            estop: false,
            faults: vec![],
            occupied_aisles: vec![],
            obstacle: false,
            link: "down".into(),
            link_error: None,
            updated_at: None,
            operation: None,
        });
        let c = Controller {
            range: 1,
            geometry: Geometry::of(&layout),
            driver: handle,
            stale_after: Duration::from_millis(1500),
            command_timeout: Duration::from_millis(500),
            speed_mm_s: 100.0,
            operations: Operations::default(),
            events: broadcast::channel(16).0,
            view,
            last_event_ms: AtomicI64::new(0),
        };
        (c, ports)
    }

    /// At rest with aisle 1 open.
    fn at_rest(c: &Controller) -> DeviceState {
        DeviceState {
            positions_mm: c.geometry.target(Goal::OpenAisle(1)),
            moving: false,
            stopped_short: false,
            locked: false,
            estop: false,
            fault: None,
            occupied_aisles: vec![],
            obstacle_aisles: vec![],
            at: Instant::now(),
        }
    }

    fn reason(c: &Controller, goal: Goal) -> &'static str {
        c.check(goal).map(|_| "ok").unwrap_or_else(|r| r.reason)
    }

    #[test]
    fn every_interlock_refuses_with_its_reason() {
        let (c, ports) = controller();
        let open3 = Goal::OpenAisle(3);
        assert_eq!(reason(&c, open3), "link_down", "nothing heard yet");
        let set = |s: DeviceState| {
            ports.link.send_replace(Link::Up(s));
        };
        set(at_rest(&c));
        assert_eq!(reason(&c, open3), "ok");
        assert_eq!(reason(&c, Goal::OpenAisle(6)), "no_such_aisle");
        assert_eq!(reason(&c, Goal::OpenAisle(0)), "no_such_aisle");

        let stale = DeviceState {
            at: Instant::now() - Duration::from_secs(5),
            ..at_rest(&c)
        };
        set(stale);
        assert_eq!(reason(&c, open3), "state_unknown");
        set(DeviceState {
            positions_mm: vec![0.0; 3],
            ..at_rest(&c)
        });
        assert_eq!(
            reason(&c, open3),
            "state_unknown",
            "carriage count disagrees"
        );
        set(DeviceState {
            estop: true,
            ..at_rest(&c)
        });
        assert_eq!(reason(&c, open3), "estop");
        set(DeviceState {
            fault: Some(DeviceFault {
                code: 1,
                carriage: 2,
            }),
            ..at_rest(&c)
        });
        assert_eq!(reason(&c, open3), "fault");
        set(DeviceState {
            locked: true,
            ..at_rest(&c)
        });
        assert_eq!(reason(&c, open3), "locked");
        set(DeviceState {
            moving: true,
            ..at_rest(&c)
        });
        assert_eq!(reason(&c, open3), "moving");
        // Aisle 1 is open; opening 3 closes it: someone there forbids it, someone in 4 not.
        set(DeviceState {
            occupied_aisles: vec![1],
            ..at_rest(&c)
        });
        assert_eq!(reason(&c, open3), "aisle_occupied");
        set(DeviceState {
            occupied_aisles: vec![4],
            ..at_rest(&c)
        });
        assert_eq!(reason(&c, open3), "ok");
        set(DeviceState {
            obstacle_aisles: vec![0],
            ..at_rest(&c)
        });
        assert_eq!(reason(&c, open3), "obstacle");
        assert_eq!(
            reason(&c, Goal::OpenAisle(1)),
            "ok",
            "a motion that narrows nothing"
        );
        ports.link.send_replace(Link::Down("cable".into()));
        assert_eq!(reason(&c, open3), "link_down");
    }

    #[tokio::test]
    async fn a_refused_motion_never_reaches_the_driver() {
        let (c, mut ports) = controller();
        ports.link.send_replace(Link::Up(DeviceState {
            occupied_aisles: vec![1],
            ..at_rest(&c)
        }));
        let (tx, rx) = mpsc::channel(4);
        let events = c.events.clone();
        let task = tokio::spawn(c.run(rx));
        let (reply, answer) = oneshot::channel();
        tx.send(Request::Motion {
            kind: "open",
            goal: Goal::OpenAisle(3),
            actor: "test".into(),
            reply,
        })
        .await
        .unwrap();
        let refusal = answer.await.unwrap().unwrap_err();
        assert_eq!(refusal.reason, "aisle_occupied");
        assert!(refusal.message.contains("aisle 1"), "{}", refusal.message);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(ports.commands.try_recv().is_err(), "no command was sent");
        drop(events);
        task.abort();
    }
}

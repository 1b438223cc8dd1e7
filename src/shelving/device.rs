//! What every shelving driver offers the range controller, and the one loop that runs
//! every driver.
//!
//! The controller hears the device's state on a watch channel (or that the link is down)
//! and hands the driver [`Order`]s on two lanes: Stop on its own lane, which the driver
//! always serves first, everything else on the other. An order has a deadline: one not on
//! the wire by then is dropped and answered [`CommandError::NotSent`], as is one whose
//! caller stopped waiting, and every order still waiting when the link goes down. Nothing is
//! sent later and nothing is replayed after a reconnect. An order that left but whose answer
//! did not come back is [`CommandError::Unconfirmed`]: the device may be acting on it.
//!
//! [`run`] is that loop for every protocol: connect (with back-off), then serve the Stop
//! lane, the command lane, the watchdog's heartbeat and the session's own work (a poll due,
//! a message come) one at a time, each exchange to its end. A protocol is a [`Connector`]
//! and its [`Session`]. Drivers only carry commands; deciding whether a motion is safe is
//! the range controller's job.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use crate::link::Backoff;

pub use stackroom_wire::shelving::Command;
use stackroom_wire::shelving::{Refusal, fault_words};
use tokio::sync::{mpsc, oneshot, watch};

/// A fault the controller reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceFault {
    /// 1 motor, 2 jam, 3+ vendor codes.
    pub code: u16,
    /// The carriage at fault, 0 if none is named.
    pub carriage: u16,
}

impl DeviceFault {
    pub fn describe(&self) -> String {
        let what = fault_words(self.code);
        match self.carriage {
            0 => what,
            c => format!("{what} at carriage {c}"),
        }
    }
}

/// The state of a shelving controller as it reported it.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceState {
    pub positions_mm: Vec<f64>,
    pub moving: bool,
    /// The last motion ended before its target.
    pub stopped_short: bool,
    pub locked: bool,
    pub estop: bool,
    pub fault: Option<DeviceFault>,
    /// Occupied gaps: 0 the left wall gap, k aisle k, n the right wall gap.
    pub occupied: Vec<u16>,
    /// The safety sweep sees an obstacle (in a gap it may or may not name).
    pub obstacle: bool,
    /// When this was heard.
    pub at: Instant,
}

/// What the range controller knows of the link.
#[derive(Debug, Clone, PartialEq)]
pub enum Link {
    /// Not (yet) connected, or lost: the reason.
    Down(String),
    Up(DeviceState),
}

/// The controller's answer to a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Accepted,
    /// The device refused on its own, with its reason (`estop`, `aisle_occupied`, …).
    Refused(String),
}

impl Outcome {
    /// The outcome a device's refusal code stands for (0: accepted).
    pub fn from_code(code: u16) -> Outcome {
        match code {
            0 => Outcome::Accepted,
            code => Outcome::Refused(
                Refusal::from_code(code)
                    .map_or_else(|| format!("refusal code {code}"), |r| r.name().into()),
            ),
        }
    }
}

/// Why a command has no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// It never reached the wire: nothing will come of it.
    #[error("{0}")]
    NotSent(String),
    /// It may have reached the device, whose answer was lost: its fate is unknown.
    #[error("{0}")]
    Unconfirmed(String),
}

/// Why a session with the device ended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DriverError {
    #[error("the link to the controller is down: {0}")]
    Link(String),
    #[error("the controller did not answer within {} ms", .0.as_millis())]
    Timeout(Duration),
    #[error("the controller answered wrongly: {0}")]
    Protocol(String),
}

type Reply = oneshot::Sender<Result<Outcome, CommandError>>;

/// A command for the driver: what, its sequence number, the moment after which it must not
/// be put on the wire, and where the answer goes.
pub struct Order {
    pub command: Command,
    pub seq: u64,
    pub deadline: Instant,
    reply: Reply,
}

impl Order {
    /// Whether it may still go on the wire: its caller waits and its deadline has not passed.
    pub fn may_send(&self) -> bool {
        !self.reply.is_closed() && Instant::now() <= self.deadline
    }

    /// Answers it.
    pub fn answer(self, answer: Result<Outcome, CommandError>) {
        let _ = self.reply.send(answer);
    }

    /// Answers that it was not sent, and why.
    pub fn not_sent(self, why: impl Into<String>) {
        self.answer(Err(CommandError::NotSent(why.into())));
    }
}

/// The controller's side of a driver.
#[derive(Clone)]
pub struct DriverHandle {
    pub link: watch::Receiver<Link>,
    stop: mpsc::Sender<Order>,
    commands: mpsc::Sender<Order>,
    /// The controller's pulse: it counts up while the controller's loop runs, and the
    /// driver writes the watchdog's heartbeat only while it changes.
    pub alive: Arc<AtomicU64>,
}

/// The driver's side: where it takes orders from and reports to.
pub struct DriverPorts {
    pub link: watch::Sender<Link>,
    pub stop: mpsc::Receiver<Order>,
    pub commands: mpsc::Receiver<Order>,
    pub alive: Arc<AtomicU64>,
}

/// A pair of ends for a new driver.
pub fn channel() -> (DriverHandle, DriverPorts) {
    let (link_tx, link_rx) = watch::channel(Link::Down("not connected yet".into()));
    let (stop_tx, stop_rx) = mpsc::channel(4);
    let (cmd_tx, cmd_rx) = mpsc::channel(8);
    let alive = Arc::new(AtomicU64::new(0));
    (
        DriverHandle {
            link: link_rx,
            stop: stop_tx,
            commands: cmd_tx,
            alive: alive.clone(),
        },
        DriverPorts {
            link: link_tx,
            stop: stop_rx,
            commands: cmd_rx,
            alive,
        },
    )
}

/// The answer to an order, when it comes.
pub type Pending = oneshot::Receiver<Result<Outcome, CommandError>>;

impl DriverHandle {
    /// Hands the driver a command that must be on the wire by `deadline`; Stop goes on its
    /// own lane. Never waits: a full lane answers at once that it was not sent.
    pub fn order(&self, command: Command, seq: u64, deadline: Instant) -> Pending {
        let (tx, rx) = oneshot::channel();
        let order = Order {
            command,
            seq,
            deadline,
            reply: tx,
        };
        let lane = if command == Command::Stop {
            &self.stop
        } else {
            &self.commands
        };
        if let Err(e) = lane.try_send(order) {
            let (order, why) = match e {
                mpsc::error::TrySendError::Full(o) => (o, "the driver is busy"),
                mpsc::error::TrySendError::Closed(o) => (o, "the driver has stopped"),
            };
            order.not_sent(why);
        }
        rx
    }

    /// Counts one turn of the controller's loop.
    pub fn pulse(&self) {
        self.alive.fetch_add(1, Ordering::Relaxed);
    }
}

/// One connected session with a device.
pub trait Session: Send {
    /// Something the session must do by itself: a poll is due, a message came.
    type Wake: Send;

    /// Waits for it. Must be cancel-safe: the loop waits on the lanes at the same time.
    fn wake(&mut self) -> impl Future<Output = Self::Wake> + Send;

    /// Does it, to the end; a state heard is returned.
    fn handle(
        &mut self,
        wake: Self::Wake,
    ) -> impl Future<Output = Result<Option<DeviceState>, DriverError>> + Send;

    /// Executes an order, to the end, checking [`Order::may_send`] right before its bytes
    /// go out. States heard meanwhile go to `heard`.
    fn execute(
        &mut self,
        order: &Order,
        heard: &watch::Sender<Link>,
    ) -> impl Future<Output = Result<Outcome, CommandError>> + Send;

    /// Writes the watchdog's heartbeat.
    fn heartbeat(&mut self, beat: u64) -> impl Future<Output = Result<(), DriverError>> + Send;

    /// Whether the session can go on: an exchange whose answer was lost leaves a serial line
    /// in an unknown state, a broker connection may have dropped.
    fn health(&self) -> Result<(), DriverError>;
}

/// How to open a session.
pub trait Connector: Send {
    type Session: Session;

    fn connect(&mut self) -> impl Future<Output = Result<Self::Session, DriverError>> + Send;
}

/// What the loop does next.
enum Next<W> {
    Order(Order),
    Beat,
    Wake(W),
}

/// Answers every order that comes while there is no session, until `until` resolves; None
/// when the controller has gone.
async fn refuse_while<T>(
    ports: &mut DriverPorts,
    why: &str,
    until: impl Future<Output = T>,
) -> Option<T> {
    let mut until = std::pin::pin!(until);
    loop {
        tokio::select! {
            biased;
            o = ports.stop.recv() => o?.not_sent(format!("the link is down: {why}")),
            o = ports.commands.recv() => o?.not_sent(format!("the link is down: {why}")),
            t = &mut until => return Some(t),
        }
    }
}

/// Runs a future to its end, turning a panic into an error.
async fn guarded<T>(f: impl Future<Output = T>) -> Result<T, String> {
    use futures_util::FutureExt;
    std::panic::AssertUnwindSafe(f)
        .catch_unwind()
        .await
        .map_err(|panic| {
            let why = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "a panic".into());
            format!("the protocol failed on what came off the wire ({why})")
        })
}

/// Reads and drops what a serial line still carries from an earlier session (a late answer
/// would be taken for the answer to the next request), until it has been quiet for `quiet`
/// (at most one second).
pub async fn drain<R: tokio::io::AsyncRead + Unpin>(line: &mut R, quiet: Duration) {
    use tokio::io::AsyncReadExt;
    let until = Instant::now() + Duration::from_secs(1);
    let mut buf = [0u8; 256];
    while Instant::now() < until {
        match tokio::time::timeout(quiet, line.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => continue,
            _ => return,
        }
    }
}

/// Runs a driver until the controller drops its handle.
pub async fn run<C: Connector>(
    device: String,
    mut connector: C,
    watchdog: Option<Duration>,
    mut ports: DriverPorts,
) {
    // Not longer than a second: a Stop may be waiting for the line.
    let mut backoff = Backoff::capped(Duration::from_secs(1));
    let mut why = "not connected yet".to_string();
    loop {
        let session = refuse_while(&mut ports, &why, connector.connect()).await;
        let mut session = match session {
            None => return,
            Some(Ok(s)) => s,
            Some(Err(e)) => {
                why = e.to_string();
                let _ = ports.link.send(Link::Down(why.clone()));
                let pause = backoff.next_pause();
                refuse_while(&mut ports, &why, tokio::time::sleep(pause)).await;
                continue;
            }
        };
        let mut beat = tokio::time::interval(watchdog.unwrap_or(Duration::from_secs(3600)));
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_beat = None;
        let failure = loop {
            let next = tokio::select! {
                biased;
                o = ports.stop.recv() => match o { Some(o) => Next::Order(o), None => return },
                o = ports.commands.recv() => match o { Some(o) => Next::Order(o), None => return },
                _ = beat.tick(), if watchdog.is_some() => Next::Beat,
                w = session.wake() => Next::Wake(w),
            };
            // A protocol library that panics on what came off the wire ends the session,
            // not the driver.
            match next {
                Next::Order(order) => {
                    if !order.may_send() {
                        order.not_sent("its deadline passed before the line was free");
                        continue;
                    }
                    let answer = guarded(session.execute(&order, &ports.link)).await;
                    let (answer, panicked) = match answer {
                        Ok(answer) => (answer, None),
                        Err(why) => (
                            Err(CommandError::Unconfirmed(format!(
                                "the driver failed mid-command: {why}"
                            ))),
                            Some(DriverError::Protocol(why)),
                        ),
                    };
                    if let Err(e) = &answer {
                        tracing::warn!(%device, command = ?order.command, seq = order.seq, error = %e, "command");
                    }
                    order.answer(answer);
                    if let Some(e) = panicked {
                        break e;
                    }
                }
                Next::Beat => {
                    // Only while the controller's loop turns: a stuck controller lets the
                    // device's watchdog stop the drives.
                    let alive = ports.alive.load(Ordering::Relaxed);
                    if last_beat != Some(alive) {
                        last_beat = Some(alive);
                        match guarded(session.heartbeat(alive)).await {
                            Ok(Ok(())) => {}
                            Ok(Err(e)) => break e,
                            Err(why) => break DriverError::Protocol(why),
                        }
                    }
                }
                Next::Wake(w) => match guarded(session.handle(w)).await {
                    Ok(Ok(Some(state))) => {
                        backoff.reset();
                        let _ = ports.link.send(Link::Up(state));
                    }
                    Ok(Ok(None)) => {}
                    Ok(Err(e)) => break e,
                    Err(why) => break DriverError::Protocol(why),
                },
            }
            if let Err(e) = session.health() {
                break e;
            }
        };
        tracing::warn!(%device, error = %failure, "shelving link lost; reconnecting");
        why = failure.to_string();
        let _ = ports.link.send(Link::Down(why.clone()));
        drop(session);
        // What waits in the lanes was meant for the session that ended: none of it is sent.
        while let Ok(o) = ports.stop.try_recv() {
            o.not_sent(format!("the link is down: {why}"));
        }
        while let Ok(o) = ports.commands.try_recv() {
            o.not_sent(format!("the link is down: {why}"));
        }
        let pause = backoff.next_pause();
        refuse_while(&mut ports, &why, tokio::time::sleep(pause)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A session on a fake device that records what reached its wire.
    struct Fake {
        wire: Arc<std::sync::Mutex<Vec<Command>>>,
        poll: tokio::time::Interval,
        slow: Duration,
    }

    impl Session for Fake {
        type Wake = ();
        async fn wake(&mut self) {
            self.poll.tick().await;
        }
        async fn handle(&mut self, _: ()) -> Result<Option<DeviceState>, DriverError> {
            Ok(None)
        }
        async fn execute(
            &mut self,
            order: &Order,
            _: &watch::Sender<Link>,
        ) -> Result<Outcome, CommandError> {
            tokio::time::sleep(self.slow).await;
            if !order.may_send() {
                return Err(CommandError::NotSent("late".into()));
            }
            self.wire.lock().unwrap().push(order.command);
            Ok(Outcome::Accepted)
        }
        async fn heartbeat(&mut self, _: u64) -> Result<(), DriverError> {
            Ok(())
        }
        fn health(&self) -> Result<(), DriverError> {
            Ok(())
        }
    }

    struct FakeConnector(Arc<std::sync::Mutex<Vec<Command>>>);

    impl Connector for FakeConnector {
        type Session = Fake;
        async fn connect(&mut self) -> Result<Fake, DriverError> {
            Ok(Fake {
                wire: self.0.clone(),
                poll: tokio::time::interval(Duration::from_millis(100)),
                slow: Duration::from_millis(300),
            })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn stop_jumps_the_queue_and_late_orders_never_reach_the_wire() {
        let wire = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (handle, ports) = channel();
        tokio::spawn(run("fake".into(), FakeConnector(wire.clone()), None, ports));
        tokio::time::sleep(Duration::from_millis(10)).await;
        let now = Instant::now();
        let far = now + Duration::from_secs(5);
        // One exchange takes 300 ms: the first order is on the line, the second waits…
        let a = handle.order(Command::Close, 1, far);
        tokio::time::sleep(Duration::from_millis(1)).await;
        let b = handle.order(Command::Ventilate, 2, now + Duration::from_millis(200));
        let stop = handle.order(Command::Stop, 3, far);
        assert_eq!(a.await.unwrap(), Ok(Outcome::Accepted));
        // …Stop goes next, ahead of the ventilate that was waiting before it…
        assert_eq!(stop.await.unwrap(), Ok(Outcome::Accepted));
        // …which by then is past its deadline: dropped, never sent.
        assert!(matches!(b.await.unwrap(), Err(CommandError::NotSent(_))));
        // An order whose caller gave up is not sent either.
        drop(handle.order(Command::Lock, 4, far));
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(*wire.lock().unwrap(), vec![Command::Close, Command::Stop]);
    }

    #[test]
    fn refusal_codes_become_our_reasons() {
        assert_eq!(Outcome::from_code(0), Outcome::Accepted);
        assert_eq!(
            Outcome::from_code(4),
            Outcome::Refused("aisle_occupied".into())
        );
        assert_eq!(
            Outcome::from_code(42),
            Outcome::Refused("refusal code 42".into())
        );
    }
}

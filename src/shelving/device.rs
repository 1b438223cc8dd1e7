//! What every shelving driver offers the range controller: the device's state as it last
//! reported it (or that the link is down), and a way to send it a command.
//!
//! A driver is a task that owns its transport: it connects (with back-off), polls or
//! subscribes, publishes each state on a watch channel, and executes commands one at a
//! time with a timeout. Drivers only carry commands; deciding whether a motion is safe is
//! the range controller's job.

use std::time::{Duration, Instant};

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
        let what = match self.code {
            1 => "motor fault".to_string(),
            2 => "jammed".to_string(),
            code => format!("fault code {code}"),
        };
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
    pub occupied_aisles: Vec<u16>,
    pub obstacle_aisles: Vec<u16>,
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

/// A command for a shelving controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceCommand {
    OpenAisle(u16),
    Close,
    Ventilate,
    Stop,
    Lock,
    Unlock,
    ResetFaults,
}

/// The controller's answer to a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Accepted,
    /// The device refused on its own, with its reason (`estop`, `aisle_occupied`, …).
    Refused(String),
}

/// Why a command did not get an answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DriverError {
    #[error("the link to the controller is down: {0}")]
    Link(String),
    #[error("the controller did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the controller answered wrongly: {0}")]
    Protocol(String),
}

type Reply = oneshot::Sender<Result<Outcome, DriverError>>;

/// The controller's side of a driver.
#[derive(Clone)]
pub struct DriverHandle {
    pub link: watch::Receiver<Link>,
    commands: mpsc::Sender<(DeviceCommand, Reply)>,
}

/// The driver's side: where it takes commands from and reports to.
pub struct DriverPorts {
    pub link: watch::Sender<Link>,
    pub commands: mpsc::Receiver<(DeviceCommand, Reply)>,
}

/// A pair of ends for a new driver.
pub fn channel() -> (DriverHandle, DriverPorts) {
    let (link_tx, link_rx) = watch::channel(Link::Down("not connected yet".into()));
    let (cmd_tx, cmd_rx) = mpsc::channel(16);
    (
        DriverHandle {
            link: link_rx,
            commands: cmd_tx,
        },
        DriverPorts {
            link: link_tx,
            commands: cmd_rx,
        },
    )
}

impl DriverHandle {
    /// Sends a command and waits for the device's answer (at most `timeout`).
    pub async fn send(
        &self,
        command: DeviceCommand,
        timeout: Duration,
    ) -> Result<Outcome, DriverError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send((command, tx))
            .await
            .map_err(|_| DriverError::Link("the driver has stopped".into()))?;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err(DriverError::Link("the driver dropped the command".into())),
            Err(_) => Err(DriverError::Timeout(timeout)),
        }
    }
}

/// Back-off between connection attempts: 100 ms doubling to 5 s.
pub fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(100u64.saturating_mul(1 << attempt.min(6))).min(Duration::from_secs(5))
}

/// The reason for a refusal code, as the reference register map and the framed profiles
/// number them (the simulator's controllers report the same codes).
pub fn refusal(code: u16) -> String {
    match code {
        1 => "estop",
        2 => "locked",
        3 => "fault",
        4 => "aisle_occupied",
        5 => "obstacle",
        6 => "no_such_aisle",
        _ => "refused",
    }
    .to_string()
}

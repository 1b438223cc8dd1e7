//! The range controller against a device the test plays by hand: it sets the link, takes
//! the orders from the driver's lanes and answers them. Time is tokio's, paused, so that
//! every deadline is exact.

use super::*;
use crate::layout::tests::range;
use crate::shelving::device::{self, DeviceFault, DriverPorts, Order};

const POLL: Duration = Duration::from_millis(100);

fn timing() -> DeviceTiming {
    DeviceTiming {
        poll: POLL,
        stale_after: Duration::from_millis(1500),
        max_state_age: Duration::from_millis(400),
        command_timeout: Duration::from_millis(500),
        scan: Duration::from_millis(100),
        speed_mm_s: 100.0,
        warning_output: true,
    }
}

fn settings() -> MotionSettings {
    MotionSettings {
        start_delay: Duration::from_millis(1000),
        automatic_start_delay: Duration::from_millis(3000),
        automatic_clear: Duration::from_secs(30),
        queue_expiry: Duration::from_secs(10),
        queue_length: 4,
        confirm_window: Duration::from_secs(2),
        stop_retry: Duration::from_millis(250),
    }
}

/// The controller of a six-carriage range, running, and the device's end of its driver.
struct Bench {
    requests: mpsc::Sender<Request>,
    device: DriverPorts,
    operations: Operations,
    alarms: watch::Sender<RoomAlarms>,
    geometry: Geometry,
    /// What the device says it is, republished every poll by [`Bench::report`].
    state: DeviceState,
    /// The device answers the warning's orders by itself.
    auto_warning: bool,
    /// What the controller shows of the range.
    view: watch::Receiver<RangeView>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Bench {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn bench_with(settings: MotionSettings) -> Bench {
    let (handle, device) = device::channel();
    let layout = range(1, 6, 1, 1);
    let geometry = Geometry::of(&layout);
    let (view, view_rx) = watch::channel(RangeView {
        range: 1,
        carriages: vec![],
        open_aisle: None,
        motion: RangeMotion::Unknown,
        locked: false,
        estop: false,
        faults: vec![],
        occupied_aisles: vec![],
        obstacle: false,
        link: LinkState::Down,
        link_error: None,
        updated_at: None,
        operation: None,
        stop_pending: false,
        interlocks: vec![],
        unexpected_motion: false,
    });
    let (alarms, alarms_rx) = watch::channel(RoomAlarms::new());
    let operations = Operations::default();
    let controller = Controller {
        range: 1,
        geometry: geometry.clone(),
        driver: handle,
        timing: timing(),
        settings,
        operations: operations.clone(),
        events: broadcast::channel(64).0,
        view,
        alarms: alarms_rx,
        last_event_ms: AtomicI64::new(0),
    };
    let (requests, rx) = mpsc::channel(16);
    let task = tokio::spawn(controller.run(rx));
    Bench {
        requests,
        device,
        operations,
        alarms,
        state: DeviceState {
            positions_mm: geometry.target(Goal::OpenAisle(1)),
            moving: false,
            stopped_short: false,
            locked: false,
            estop: false,
            fault: None,
            occupied: vec![],
            obstacle: false,
            at: Instant::now(),
        },
        geometry,
        task,
        auto_warning: true,
        view: view_rx,
    }
}

fn bench() -> Bench {
    bench_with(settings())
}

/// What the device did with an order.
enum Said {
    Order(Order),
    Nothing,
}

impl Bench {
    /// The device reports its state now.
    fn report(&mut self) {
        self.state.at = Instant::now();
        let _ = self.device.link.send(Link::Up(self.state.clone()));
    }

    /// Lets `d` pass, the device reporting every poll, and returns the first order that
    /// came on either lane (Stop first), if one did; the warning's orders are answered
    /// (accepted) on the way unless `auto_warning` is off.
    async fn run_for(&mut self, d: Duration) -> Said {
        let until = Instant::now() + d;
        loop {
            if let Ok(o) = self.device.stop.try_recv() {
                return Said::Order(o);
            }
            if let Ok(o) = self.device.commands.try_recv() {
                if self.auto_warning && matches!(o.command, Command::Warning { .. }) {
                    o.answer(Ok(Outcome::Accepted));
                    continue;
                }
                return Said::Order(o);
            }
            if Instant::now() >= until {
                return Said::Nothing;
            }
            self.report();
            tokio::time::sleep(POLL.min(until - Instant::now())).await;
        }
    }

    /// The next order within `d` (panics on none).
    async fn next_order(&mut self, d: Duration) -> Order {
        match self.run_for(d).await {
            Said::Order(o) => o,
            Said::Nothing => panic!("no order within {d:?}"),
        }
    }

    /// The next order that is not the warning (answered: accepted).
    async fn next_command(&mut self, d: Duration) -> Order {
        loop {
            let o = self.next_order(d).await;
            if matches!(o.command, Command::Warning { .. }) {
                o.answer(Ok(Outcome::Accepted));
                continue;
            }
            return o;
        }
    }

    async fn ask(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<String, Refusal>>) -> Request,
    ) -> Result<String, Refusal> {
        let (tx, rx) = oneshot::channel();
        self.requests.send(make(tx)).await.unwrap();
        rx.await.unwrap()
    }

    async fn open(&self, aisle: u16, automatic: bool) -> Result<String, Refusal> {
        self.ask(|reply| Request::Motion {
            kind: "open",
            goal: Goal::OpenAisle(aisle),
            actor: "test".into(),
            automatic,
            reply,
        })
        .await
    }

    async fn stop(&self) -> String {
        self.ask(|reply| Request::Stop {
            actor: "test".into(),
            reply,
        })
        .await
        .unwrap()
    }

    fn op(&self, id: &str) -> OperationView {
        self.operations.get(id).unwrap()
    }

    /// Moves the device to `goal` at once (it took the command and got there).
    fn arrive(&mut self, goal: Goal) {
        self.state.positions_mm = self.geometry.target(goal);
        self.state.moving = false;
    }
}

use crate::shelving::OperationView;

#[tokio::test(start_paused = true)]
async fn every_interlock_refuses_with_its_reason() {
    let mut b = bench();
    b.run_for(Duration::from_millis(200)).await;
    type Spoil = Box<dyn Fn(&mut DeviceState)>;
    let cases: Vec<(&str, Spoil)> = vec![
        ("estop", Box::new(|s| s.estop = true)),
        (
            "fault",
            Box::new(|s| {
                s.fault = Some(DeviceFault {
                    code: 1,
                    carriage: 2,
                })
            }),
        ),
        ("locked", Box::new(|s| s.locked = true)),
        // Moving with no operation of ours: it is being stopped.
        ("unexpected_motion", Box::new(|s| s.moving = true)),
        ("aisle_occupied", Box::new(|s| s.occupied = vec![1])),
        ("obstacle", Box::new(|s| s.obstacle = true)),
        ("state_unknown", Box::new(|s| s.positions_mm.truncate(3))),
    ];
    let calm = b.state.clone();
    for (reason, spoil) in cases {
        b.state = calm.clone();
        spoil(&mut b.state);
        b.report();
        let refusal = b.open(3, false).await.unwrap_err();
        assert_eq!(refusal.reason, reason, "{}", refusal.message);
        // The device moving with no operation is stopped: answer that stop. Then calm
        // reports, so that no case follows one that had someone in an aisle.
        if let Said::Order(o) = b.run_for(Duration::from_millis(300)).await {
            assert_eq!(o.command, Command::Stop);
            o.answer(Ok(Outcome::Accepted));
        }
        b.state = calm.clone();
        b.run_for(Duration::from_millis(500)).await;
    }
    b.state = calm.clone();
    b.report();
    assert_eq!(b.open(6, false).await.unwrap_err().reason, "no_such_aisle");
    // Someone in aisle 4 is not in the way of opening aisle 3 from aisle 1.
    b.state.occupied = vec![4];
    b.report();
    assert!(b.open(3, false).await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn a_motion_warns_first_then_moves_then_ends_done() {
    let mut b = bench();
    b.auto_warning = false;
    b.run_for(Duration::from_millis(200)).await;
    let t0 = Instant::now();
    let id = b.open(3, false).await.unwrap();
    assert_eq!(b.op(&id).state, OpState::Starting);
    let warning = b.next_order(Duration::from_secs(1)).await;
    assert_eq!(warning.command, Command::Warning { on: true });
    warning.answer(Ok(Outcome::Accepted));
    let motion = b.next_order(Duration::from_secs(3)).await;
    assert_eq!(motion.command, Command::OpenAisle { aisle: 3 });
    assert!(
        t0.elapsed() >= Duration::from_millis(1000),
        "after the start delay"
    );
    assert!(motion.deadline <= Instant::now() + Duration::from_millis(500));
    motion.answer(Ok(Outcome::Accepted));
    b.state.moving = true;
    b.run_for(Duration::from_millis(300)).await;
    assert_eq!(b.op(&id).state, OpState::Moving);
    b.arrive(Goal::OpenAisle(3));
    let off = b.next_order(Duration::from_secs(1)).await;
    assert_eq!(off.command, Command::Warning { on: false });
    assert_eq!(b.op(&id).state, OpState::Done);
}

#[tokio::test(start_paused = true)]
async fn someone_stepping_in_during_the_warning_means_nothing_is_sent() {
    let mut b = bench();
    b.auto_warning = false;
    b.run_for(Duration::from_millis(200)).await;
    let id = b.open(3, false).await.unwrap();
    b.next_order(Duration::from_secs(1))
        .await
        .answer(Ok(Outcome::Accepted)); // warning on
    b.state.occupied = vec![1];
    let next = b.next_order(Duration::from_secs(3)).await;
    assert_eq!(
        next.command,
        Command::Warning { on: false },
        "no motion, the warning stops"
    );
    let op = b.op(&id);
    assert_eq!(
        (op.state, op.reason.as_deref()),
        (OpState::Refused, Some("aisle_occupied"))
    );
}

#[tokio::test(start_paused = true)]
async fn a_request_queued_before_an_estop_does_not_run_after_its_release() {
    let mut b = bench();
    b.run_for(Duration::from_millis(200)).await;
    let first = b.open(3, false).await.unwrap();
    b.next_command(Duration::from_secs(3))
        .await
        .answer(Ok(Outcome::Accepted));
    b.state.moving = true;
    b.run_for(Duration::from_millis(200)).await;
    let queued = b.open(5, false).await.unwrap();
    assert_eq!(b.op(&queued).state, OpState::Queued);
    // The e-stop: the controller stops too, and cancels what waits.
    b.state.estop = true;
    b.state.moving = false;
    let stop = b.next_order(Duration::from_secs(1)).await;
    assert_eq!(stop.command, Command::Stop);
    stop.answer(Ok(Outcome::Accepted));
    b.run_for(Duration::from_millis(300)).await;
    let op = b.op(&first);
    assert_eq!(
        (op.state, op.reason.as_deref()),
        (OpState::Stopped, Some("estop"))
    );
    let op = b.op(&queued);
    assert_eq!(
        (op.state, op.reason.as_deref()),
        (OpState::Stopped, Some("estop"))
    );
    // Released: nothing moves without a new request.
    b.state.estop = false;
    loop {
        match b.run_for(Duration::from_secs(10)).await {
            Said::Nothing => break,
            Said::Order(o) => {
                assert!(!o.command.is_motion(), "{:?} after the release", o.command);
                o.answer(Ok(Outcome::Accepted));
            }
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_queued_request_expires_and_is_checked_again_when_it_starts() {
    let mut b = bench();
    b.run_for(Duration::from_millis(200)).await;
    let first = b.open(3, false).await.unwrap();
    b.next_command(Duration::from_secs(3))
        .await
        .answer(Ok(Outcome::Accepted));
    b.state.moving = true;
    let expiring = b.open(5, false).await.unwrap();
    // The first motion runs for longer than the queue keeps a request.
    b.run_for(Duration::from_secs(11)).await;
    let op = b.op(&expiring);
    assert_eq!(
        (op.state, op.reason.as_deref()),
        (OpState::Failed, Some("expired"))
    );
    let checked = b.open(2, false).await.unwrap();
    b.arrive(Goal::OpenAisle(3));
    b.state.occupied = vec![3]; // someone walks into the new aisle: opening 2 would close it
    b.run_for(Duration::from_millis(500)).await;
    assert_eq!(b.op(&first).state, OpState::Done);
    let op = b.op(&checked);
    assert_eq!(
        (op.state, op.reason.as_deref()),
        (OpState::Refused, Some("aisle_occupied"))
    );
}

#[tokio::test(start_paused = true)]
async fn a_lost_reply_is_supervised_as_moving_and_a_person_stops_it() {
    let mut b = bench();
    b.run_for(Duration::from_millis(200)).await;
    let id = b.open(3, false).await.unwrap();
    let motion = b.next_command(Duration::from_secs(3)).await;
    motion.answer(Err(CommandError::Unconfirmed("reply lost".into())));
    b.run_for(Duration::from_millis(50)).await;
    assert_eq!(b.op(&id).state, OpState::Unconfirmed);
    // The device did take it.
    b.state.moving = true;
    b.run_for(Duration::from_millis(300)).await;
    assert_eq!(b.op(&id).state, OpState::Moving);
    b.state.occupied = vec![1];
    let stop = b.next_order(Duration::from_millis(300)).await;
    assert_eq!(stop.command, Command::Stop);
    stop.answer(Ok(Outcome::Accepted));
    b.state.moving = false;
    b.run_for(Duration::from_millis(300)).await;
    let op = b.op(&id);
    assert_eq!(
        (op.state, op.reason.as_deref()),
        (OpState::Stopped, Some("aisle_occupied"))
    );
}

#[tokio::test(start_paused = true)]
async fn a_lost_reply_with_nothing_moving_ends_not_confirmed_with_a_stop() {
    let mut b = bench();
    b.run_for(Duration::from_millis(200)).await;
    let id = b.open(3, false).await.unwrap();
    b.next_command(Duration::from_secs(3))
        .await
        .answer(Err(CommandError::Unconfirmed("reply lost".into())));
    let stop = b.next_order(Duration::from_secs(3)).await;
    assert_eq!(
        stop.command,
        Command::Stop,
        "sent in case the device acts late"
    );
    stop.answer(Ok(Outcome::Accepted));
    b.run_for(Duration::from_millis(300)).await;
    let op = b.op(&id);
    assert_eq!(
        (op.state, op.reason.as_deref()),
        (OpState::Stopped, Some("not_confirmed"))
    );
}

#[tokio::test(start_paused = true)]
async fn a_link_lost_mid_motion_sends_stop_until_the_device_confirms() {
    let mut b = bench();
    b.run_for(Duration::from_millis(200)).await;
    let id = b.open(3, false).await.unwrap();
    b.next_command(Duration::from_secs(3))
        .await
        .answer(Ok(Outcome::Accepted));
    b.state.moving = true;
    b.run_for(Duration::from_millis(300)).await;
    let _ = b.device.link.send(Link::Down("cable cut".into()));
    // Stop, again and again, while the link is down…
    let mut tries = 0;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        tokio::select! {
            o = b.device.stop.recv() => {
                let o = o.unwrap();
                assert_eq!(o.command, Command::Stop);
                o.not_sent("the link is down");
                tries += 1;
            }
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
    assert!(tries >= 5, "retried ({tries})");
    let op = b.op(&id);
    assert_eq!(
        (op.state, op.reason.as_deref()),
        (OpState::Unconfirmed, Some("link_down")),
        "{op:?}"
    );
    assert!(
        op.message.as_deref().unwrap().contains("not confirmed"),
        "{op:?}"
    );
    // …until it is back and confirms.
    b.state.moving = false;
    let stop = b.next_order(Duration::from_secs(1)).await;
    stop.answer(Ok(Outcome::Accepted));
    b.run_for(Duration::from_millis(300)).await;
    assert_eq!(b.op(&id).state, OpState::Stopped);
}

#[tokio::test(start_paused = true)]
async fn stop_is_done_only_once_confirmed_and_blocks_motion_meanwhile() {
    let mut b = bench();
    b.run_for(Duration::from_millis(200)).await;
    let stop = b.stop().await;
    assert_eq!(b.op(&stop).state, OpState::Stopping);
    let order = b.next_order(Duration::from_millis(100)).await;
    assert_eq!(order.command, Command::Stop);
    assert_eq!(b.open(3, false).await.unwrap_err().reason, "stopping");
    order.not_sent("line busy");
    let order = b.next_order(Duration::from_secs(1)).await;
    order.answer(Ok(Outcome::Accepted));
    b.run_for(Duration::from_millis(300)).await;
    assert_eq!(b.op(&stop).state, OpState::Done);
    assert!(b.open(3, false).await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn motion_starts_only_on_a_fresh_report() {
    let mut b = bench();
    b.report();
    // The device fell silent 600 ms ago (its link still up): the request waits for a
    // fresh report and is refused when none comes.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let refusal = b.open(3, false).await.unwrap_err();
    assert_eq!(refusal.reason, "state_unknown", "{}", refusal.message);
    // With reports it goes.
    b.report();
    assert!(b.open(3, false).await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn a_room_alarm_forbids_motion_and_stops_one_under_way() {
    let mut b = bench();
    b.run_for(Duration::from_millis(200)).await;
    b.alarms.send_replace(RoomAlarms::from([(
        "smoke:s1".into(),
        "smoke alarm (s1)".into(),
    )]));
    let refusal = b.open(3, false).await.unwrap_err();
    assert_eq!(refusal.reason, "room_alarm");
    assert!(refusal.message.contains("smoke"), "{}", refusal.message);
    b.alarms.send_replace(RoomAlarms::new());
    let id = b.open(3, false).await.unwrap();
    b.next_command(Duration::from_secs(3))
        .await
        .answer(Ok(Outcome::Accepted));
    b.state.moving = true;
    b.run_for(Duration::from_millis(200)).await;
    b.alarms.send_replace(RoomAlarms::from([(
        "water:w1".into(),
        "water alarm (w1)".into(),
    )]));
    let stop = b.next_order(Duration::from_millis(300)).await;
    assert_eq!(stop.command, Command::Stop);
    stop.answer(Ok(Outcome::Accepted));
    b.state.moving = false;
    b.run_for(Duration::from_millis(300)).await;
    assert_eq!(b.op(&id).reason.as_deref(), Some("room_alarm"));
}

#[tokio::test(start_paused = true)]
async fn an_automatic_motion_waits_for_aisles_clear_for_a_while() {
    let mut b = bench();
    b.run_for(Duration::from_millis(200)).await;
    // Nothing is known of the aisles at start: as if someone had just left.
    assert_eq!(
        b.open(3, true).await.unwrap_err().reason,
        "recently_occupied"
    );
    b.run_for(Duration::from_secs(31)).await;
    b.state.occupied = vec![1];
    b.run_for(Duration::from_millis(200)).await;
    b.state.occupied = vec![];
    b.run_for(Duration::from_secs(5)).await;
    let refusal = b.open(3, true).await.unwrap_err();
    assert_eq!(refusal.reason, "recently_occupied");
    assert!(refusal.message.contains("aisle 1"), "{}", refusal.message);
    b.run_for(Duration::from_secs(26)).await;
    let id = b.open(3, true).await.unwrap();
    let t0 = Instant::now();
    let motion = b.next_command(Duration::from_secs(5)).await;
    assert!(
        t0.elapsed() >= Duration::from_millis(3000),
        "the longer warning"
    );
    assert_eq!(motion.command, Command::OpenAisle { aisle: 3 });
    assert_eq!(b.op(&id).state, OpState::Starting);
}

#[tokio::test(start_paused = true)]
async fn motion_no_operation_asked_for_is_stopped() {
    let mut b = bench();
    b.run_for(Duration::from_millis(200)).await;
    b.state.moving = true;
    let stop = b.next_order(Duration::from_millis(300)).await;
    assert_eq!(stop.command, Command::Stop);
}

#[tokio::test(start_paused = true)]
async fn lock_stops_first_and_is_done_once_the_device_shows_it() {
    let mut b = bench();
    b.run_for(Duration::from_millis(200)).await;
    let id = b.open(3, false).await.unwrap();
    b.next_command(Duration::from_secs(3))
        .await
        .answer(Ok(Outcome::Accepted));
    b.state.moving = true;
    b.run_for(Duration::from_millis(200)).await;
    let lock = b
        .ask(|reply| Request::Lock {
            lock: true,
            actor: "test".into(),
            reply,
        })
        .await
        .unwrap();
    let stop = b.next_order(Duration::from_millis(200)).await;
    assert_eq!(stop.command, Command::Stop, "stop first");
    stop.answer(Ok(Outcome::Accepted));
    b.state.moving = false;
    let order = b.next_command(Duration::from_secs(1)).await;
    assert_eq!(order.command, Command::Lock);
    order.answer(Ok(Outcome::Accepted));
    b.run_for(Duration::from_millis(300)).await;
    assert_ne!(
        b.op(&lock).state,
        OpState::Done,
        "not until the device shows it locked"
    );
    b.state.locked = true;
    b.run_for(Duration::from_millis(300)).await;
    assert_eq!(b.op(&lock).state, OpState::Done);
    assert_eq!(b.op(&id).reason.as_deref(), Some("locked"));
}

#[tokio::test(start_paused = true)]
async fn a_stop_asked_while_another_is_unconfirmed_is_sent_and_told_in_its_turn() {
    let mut b = bench();
    b.run_for(Duration::from_millis(200)).await;
    let _ = b.device.link.send(Link::Down("cable cut".into()));
    let first = b.stop().await;
    let answer_all = async |b: &mut Bench, d: Duration| {
        let until = Instant::now() + d;
        while Instant::now() < until {
            tokio::select! {
                o = b.device.stop.recv() => o.unwrap().not_sent("the link is down"),
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
        }
    };
    answer_all(&mut b, Duration::from_secs(3)).await;
    assert_eq!(b.op(&first).state, OpState::Unconfirmed);
    let second = b.stop().await;
    answer_all(&mut b, Duration::from_secs(1)).await;
    assert_eq!(b.op(&second).state, OpState::Stopping, "its own window");
    answer_all(&mut b, Duration::from_secs(2)).await;
    assert_eq!(b.op(&second).state, OpState::Unconfirmed);
    // Back: one Stop taken after both asked, and a report at rest, end both.
    let stop = b.next_order(Duration::from_secs(1)).await;
    stop.answer(Ok(Outcome::Accepted));
    b.run_for(Duration::from_millis(300)).await;
    assert_eq!(b.op(&first).state, OpState::Done);
    assert_eq!(b.op(&second).state, OpState::Done);
}

#[tokio::test(start_paused = true)]
async fn an_occupant_who_vanishes_in_one_report_is_held_until_the_next_agrees() {
    let mut b = bench();
    b.state.occupied = vec![1];
    b.run_for(Duration::from_millis(300)).await;
    let ask = |b: &Bench| {
        let (reply, rx) = oneshot::channel();
        let requests = b.requests.clone();
        tokio::spawn(async move {
            requests
                .send(Request::Motion {
                    kind: "open",
                    goal: Goal::OpenAisle(3),
                    actor: "test".into(),
                    automatic: false,
                    reply,
                })
                .await
        });
        rx
    };

    // One report (forged, garbled, or someone walked out) says aisle 1 is clear: the view
    // still shows it occupied, and a motion that would close it waits for the next report.
    b.state.occupied = vec![];
    b.report();
    let mut answer = ask(&b);
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(b.view.borrow().occupied_aisles, vec![1]);
    let early = answer.try_recv();
    assert!(early.is_err(), "no answer on one report: {early:?}");
    // The next report says someone is there after all: refused.
    b.state.occupied = vec![1];
    b.report();
    let refusal = answer.await.unwrap().unwrap_err();
    assert_eq!(refusal.reason, "aisle_occupied");

    // Clear in two reports in a row: the motion goes ahead.
    tokio::time::sleep(POLL).await;
    b.state.occupied = vec![];
    b.report();
    let mut answer = ask(&b);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let early = answer.try_recv();
    assert!(early.is_err(), "no answer on one report: {early:?}");
    tokio::time::sleep(POLL).await;
    b.report();
    assert!(answer.await.unwrap().is_ok());
    assert_eq!(b.view.borrow().occupied_aisles, Vec::<u16>::new());
    let motion = b.next_command(Duration::from_secs(3)).await;
    assert_eq!(motion.command, Command::OpenAisle { aisle: 3 });
}

#[tokio::test(start_paused = true)]
async fn a_warning_that_cannot_be_switched_is_retried_at_a_pace_not_at_once() {
    let mut b = bench();
    b.run_for(Duration::from_millis(200)).await;
    b.open(3, false).await.unwrap();
    b.next_command(Duration::from_secs(3))
        .await
        .answer(Ok(Outcome::Accepted));
    b.state.moving = true;
    b.run_for(Duration::from_millis(300)).await;
    let _ = b.device.link.send(Link::Down("cable cut".into()));
    // The driver answers every order at once while its link is down; the warning's
    // switches off must not come back as fast as they fail.
    let mut warnings = 0;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(2) && warnings <= 100 {
        tokio::select! {
            o = b.device.stop.recv() => o.unwrap().not_sent("the link is down"),
            o = b.device.commands.recv() => {
                let o = o.unwrap();
                assert_eq!(o.command, Command::Warning { on: false });
                o.not_sent("the link is down");
                warnings += 1;
            }
        }
    }
    // One try per stop_retry (250 ms), give or take the first.
    assert!((4..=10).contains(&warnings), "{warnings} tries in 2 s");
}

/// Log lines, as the fmt subscriber writes them.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

#[tokio::test(start_paused = true)]
async fn an_operation_can_be_followed_through_the_log() {
    let log = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(log.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    // The test's runtime has one thread: the controller's task logs through this too.
    let _default = tracing::subscriber::set_default(subscriber);
    let mut b = bench();
    b.run_for(Duration::from_millis(200)).await;
    let id = b.open(3, false).await.unwrap();
    b.next_command(Duration::from_secs(3))
        .await
        .answer(Ok(Outcome::Accepted));
    b.state.moving = true;
    b.run_for(Duration::from_millis(300)).await;
    b.arrive(Goal::OpenAisle(3));
    b.run_for(Duration::from_millis(500)).await;
    assert_eq!(b.op(&id).state, OpState::Done);
    let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    for event in ["motion started", "motion done"] {
        let line = text
            .lines()
            .find(|l| l.contains(event))
            .unwrap_or_else(|| panic!("no '{event}' in the log:\n{text}"));
        // The event names its operation itself; the span adds it again when the
        // span's callsite was registered under this subscriber (tracing caches
        // interest globally, so a test running beside this one can hide the span).
        let named = line.contains(&format!("operation={id}"))
            || line.contains(&format!("operation{{op={id}}}"));
        assert!(named, "{line}");
    }
}

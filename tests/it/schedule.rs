//! Scheduled sweeps, in process: the cron loop starts sweeps at their times; a run that
//! meets a running sweep is skipped and recorded, or waits and says so.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use stackroom::config::{Apply, Overlap, RoomConfig, Schedule, Scope};
use stackroom::demo;
use stackroom::location::LocationService;
use stackroom::rfid::reader::{self, ReaderHandle, ReaderWire};
use stackroom::rfid::schedule;
use stackroom::rfid::sweep::{SweepRequest, SweepState, SweepView, Sweeps};
use stackroom::store::Store;
use stackroom_wire::profile::ImpinjIot;

fn every_second(name: &str, overlap: Overlap) -> Schedule {
    Schedule {
        name: name.into(),
        cron: "* * * * * *".parse().unwrap(),
        scope: Scope::Shelves(vec!["R2-C1-R-S1-L1".into(), "R2-C1-R-S1-L2".into()]),
        apply: Apply::Report,
        overlap,
    }
}

/// The demo room with this schedule, its sweeps over these readers.
async fn sweeps(
    dir: &tempfile::TempDir,
    schedule: Vec<Schedule>,
    readers: BTreeMap<String, ReaderHandle>,
) -> (Arc<RoomConfig>, Sweeps) {
    let mut config = RoomConfig::load(&demo::config_path()).unwrap();
    config.sweeps.schedule = schedule;
    let config = Arc::new(config);
    let store = Store::open(&dir.path().join("db")).unwrap();
    let locations = LocationService::open(config.clone(), store).await.unwrap();
    let sweeps = Sweeps::new(config.clone(), locations, readers, None)
        .await
        .unwrap();
    (config, sweeps)
}

async fn until(sweeps: &Sweeps, what: impl Fn(&[SweepView]) -> bool) -> Vec<SweepView> {
    for _ in 0..100 {
        let list = sweeps.list(50).await.unwrap();
        if what(&list) {
            return list;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{:#?}", sweeps.list(50).await.unwrap());
}

#[tokio::test]
async fn a_schedule_starts_its_sweeps_at_their_times_and_each_run_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    // No reader runs: the sweeps end at once, every shelf "not read", and say why.
    let schedule = vec![every_second("every-second", Overlap::Skip)];
    let (config, sweeps) = sweeps(&dir, schedule, BTreeMap::new()).await;
    let tasks = stackroom::link::Tasks::default();
    schedule::start(&config, &sweeps, &tasks);
    let list = until(&sweeps, |l| {
        l.iter()
            .filter(|s| s.trigger == "schedule:every-second" && s.state == SweepState::Done)
            .count()
            >= 2
    })
    .await;
    let run = list.iter().find(|s| s.state == SweepState::Done).unwrap();
    assert_eq!(run.progress.antennas, 2);
    assert_eq!(run.progress.read, 0);
    let report = sweeps.report(run.id).await.unwrap();
    assert_eq!(report.unread.len(), 2);
    assert!(
        report.unread[0].reason.contains("reader-3 is not running"),
        "{:?}",
        report.unread
    );
}

#[tokio::test]
async fn a_run_that_meets_a_running_sweep_is_skipped_or_waits_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    // reader-3 (Impinj, MQTT) on a broker nobody runs: a sweep listens to it for two of its
    // cycles (2 x 4 ports x 250 ms), hears nothing, and reports its shelves not read.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = dead.local_addr().unwrap().port();
    drop(dead);
    let tasks = stackroom::link::Tasks::default();
    let handle = reader::start(
        "reader-3".into(),
        ReaderWire::Impinj {
            broker: stackroom::bus::Endpoint::plain("127.0.0.1", port, "stackroom", "unused"),
            prefix: "devices/reader-3".into(),
            settings: ImpinjIot {
                ports: 4,
                event_topic: "events".into(),
                dwell_ms: 250,
            },
        },
        None,
        &tasks,
    );
    let readers = BTreeMap::from([("reader-3".to_string(), handle)]);
    let (_, sweeps) = sweeps(&dir, vec![], readers).await;
    let first = sweeps
        .start(
            SweepRequest {
                scope: Scope::Shelves(vec!["R2-C1-R-S1-L1".into()]),
                apply: Apply::Report,
                dwell_ms: None,
            },
            "api",
        )
        .await
        .unwrap();

    schedule::run_once(&sweeps, &every_second("skipper", Overlap::Skip)).await;
    let list = sweeps.list(10).await.unwrap();
    let skipped = list
        .iter()
        .find(|s| s.trigger == "schedule:skipper")
        .unwrap();
    assert_eq!(skipped.state, SweepState::Skipped);
    assert_eq!(
        skipped.note,
        format!("skipped: sweep {} was running", first.id)
    );

    let waiter = {
        let sweeps = sweeps.clone();
        tokio::spawn(async move {
            schedule::run_once(&sweeps, &every_second("waiter", Overlap::Wait)).await
        })
    };
    let first = sweeps.wait(first.id).await.unwrap();
    assert_eq!(first.state, SweepState::Done);
    let report = sweeps.report(first.id).await.unwrap();
    assert_eq!(report.unread.len(), 1);
    assert!(
        report.unread[0].reason.contains("reader-3 did not answer"),
        "{:?}",
        report.unread
    );
    waiter.await.unwrap();
    let list = until(&sweeps, |l| {
        l.iter().any(|s| s.trigger == "schedule:waiter")
    })
    .await;
    let waited = list
        .iter()
        .find(|s| s.trigger == "schedule:waiter")
        .unwrap();
    assert_eq!(waited.note, format!("waited for sweep {} to end", first.id));
    assert!(waited.id > first.id);
}

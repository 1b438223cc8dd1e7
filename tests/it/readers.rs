//! The controller's reader drivers against the simulated readers of the demo room: R2000
//! and Mercury on pseudo-terminals, the Impinj-style reader through the embedded broker.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use hw_sim::Simulator;
use stackroom::config::{Antenna, RoomConfig};
use stackroom::demo;
use stackroom::mqtt::EmbeddedBroker;
use stackroom::rfid::pipeline::{Pipeline, Settings};
use stackroom::rfid::reader::{self, Mode, ReaderError, ReaderHandle, ReaderWire};
use stackroom::sim::{self, SimSettings};

struct Room {
    config: RoomConfig,
    sim: Simulator,
    broker: EmbeddedBroker,
    /// The bus's passwords.
    _data: tempfile::TempDir,
    /// The reader drivers.
    tasks: stackroom::link::Tasks,
}

async fn room() -> Room {
    let data = tempfile::tempdir().unwrap();
    let mut config = RoomConfig::load(&demo::config_path()).unwrap();
    config.data_dir = data.path().into();
    let broker = EmbeddedBroker::start(SocketAddr::from(([127, 0, 0, 1], 0)), &config).unwrap();
    let shelves: Vec<_> = config.layout.shelves().collect();
    let placement =
        sim::placement_csv(demo::seed_csv(&shelves, demo::SEED_BOXES).as_bytes()).unwrap();
    let settings = SimSettings {
        seed: 9,
        time_scale: 10.0,
        mqtt: Some(broker.for_devices()),
        ..SimSettings::default()
    };
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    let sim = sim::start(&config, placement, &settings, any)
        .await
        .unwrap();
    Room {
        config,
        sim,
        broker,
        _data: data,
        tasks: stackroom::link::Tasks::default(),
    }
}

impl Room {
    /// The antennas of reader `id`, in the config's order.
    fn antennas<'a>(&'a self, id: &'a str) -> impl Iterator<Item = &'a Antenna> + 'a {
        self.config.antennas.iter().filter(move |a| a.reader == id)
    }
}

fn driver(room: &Room, id: &str) -> ReaderHandle {
    let device = room.config.devices.iter().find(|d| d.id == id).unwrap();
    let p = &device.spec;
    let path = || room.sim.path(id).unwrap().to_string();
    let wire = if let Some(settings) = &p.r2000 {
        ReaderWire::R2000 {
            path: path(),
            baud: 115200,
            settings: settings.clone(),
        }
    } else if let Some(settings) = &p.mercury {
        ReaderWire::Mercury {
            path: path(),
            baud: 115200,
            settings: settings.clone(),
        }
    } else {
        ReaderWire::Impinj {
            broker: room.broker.endpoint.clone(),
            prefix: format!("devices/{id}"),
            settings: p.impinj_iot.clone().unwrap(),
        }
    };
    reader::start(id.to_string(), wire, None, &room.tasks)
}

#[tokio::test]
async fn every_reader_kind_reads_its_shelves_and_the_pipeline_places_the_tags() {
    let room = room().await;
    let truth = room.sim.state();
    for id in ["reader-1", "reader-2", "reader-3"] {
        let handle = driver(&room, id);
        // The first section of the reader's first face: six shelves, one above the other.
        let antennas: Vec<_> = room.antennas(id).take(6).collect();
        let mut pipeline = Pipeline::new(
            antennas.iter().map(|a| (a.reader.clone(), a.port, a.shelf)),
            Settings::default(),
        );
        for a in &antennas {
            let port = match handle.mode {
                Mode::Commanded => a.port,
                Mode::Autonomous { .. } => reader::ALL_PORTS,
            };
            let reads = handle
                .inventory(port, Duration::from_millis(400))
                .await
                .unwrap();
            let on_port: Vec<_> = reads.iter().filter(|r| r.port == a.port).collect();
            assert!(!on_port.is_empty(), "{id} port {}", a.port);
            assert!(reads.iter().all(|r| r.reader == id));
            if handle.mode == Mode::Commanded {
                assert_eq!(
                    on_port.len(),
                    reads.len(),
                    "{id} reads only port {}",
                    a.port
                );
            }
            for r in &reads {
                pipeline.push(r);
            }
        }
        // Every tag on a covered shelf was heard and placed right.
        let covered: HashSet<String> = antennas.iter().map(|a| a.shelf.to_string()).collect();
        let mut placed = 0;
        for tag in truth
            .tags
            .iter()
            .filter(|t| t.shelf.as_ref().is_some_and(|s| covered.contains(s)))
        {
            let decision = pipeline
                .decide(&tag.epc, None)
                .unwrap_or_else(|| panic!("{id}: {} unheard", tag.epc));
            assert_eq!(
                Some(decision.shelf.to_string()),
                tag.shelf,
                "{id}: {}",
                tag.epc
            );
            placed += 1;
        }
        assert!(placed > 0, "{id} covers shelves with boxes");
        assert!(
            handle
                .counters
                .reads
                .load(std::sync::atomic::Ordering::Relaxed)
                > 0
        );
    }
}

#[tokio::test]
async fn a_silent_or_refusing_reader_is_an_error_not_an_empty_read() {
    let room = room().await;
    let r2000 = driver(&room, "reader-1");
    // Port 230 is within the multiplexer's 240 but has no antenna.
    let err = r2000
        .inventory(230, Duration::from_millis(100))
        .await
        .unwrap_err();
    assert!(matches!(err, ReaderError::Refused { .. }), "{err}");
    let control = format!("http://{}/sim/readers/reader-1/online", room.sim.control);
    let c = reqwest::Client::new();
    assert_eq!(
        c.put(&control).body("false").send().await.unwrap().status(),
        204
    );
    let err = r2000
        .inventory(1, Duration::from_millis(100))
        .await
        .unwrap_err();
    assert_eq!(err, ReaderError::Silent("reader-1".into()));
    assert_eq!(
        c.put(&control).body("true").send().await.unwrap().status(),
        204
    );
    let reads = r2000
        .inventory(1, Duration::from_millis(100))
        .await
        .unwrap();
    assert!(!reads.is_empty(), "back after being replugged");

    let mercury = driver(&room, "reader-2");
    let err = mercury
        .inventory(225, Duration::from_millis(100))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("0x0105"), "{err}");
    // It reads one port per command: a request for two is refused, not half read.
    let err = mercury
        .inventory_group(&[1, 2], Duration::from_millis(100))
        .await
        .unwrap_err();
    assert!(matches!(err, ReaderError::Refused { .. }), "{err}");
}

#[tokio::test]
async fn a_line_that_will_not_open_is_retried_with_back_off() {
    let settings = stackroom_wire::profile::Profile::load(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("device-profiles/r2000-mux.toml"),
    )
    .unwrap()
    .r2000
    .unwrap();
    let tasks = stackroom::link::Tasks::default();
    let reader = reader::start(
        "reader-x".into(),
        ReaderWire::R2000 {
            path: "/dev/stackroom-no-such-tty".into(),
            baud: 115200,
            settings,
        },
        None,
        &tasks,
    );
    let first = reader
        .inventory(1, Duration::from_millis(50))
        .await
        .unwrap_err();
    assert!(matches!(&first, ReaderError::Open { .. }), "{first}");
    let second = reader
        .inventory(1, Duration::from_millis(50))
        .await
        .unwrap_err();
    assert!(second.to_string().contains("next try in"), "{second}");
    assert_eq!(
        reader
            .counters
            .failures
            .load(std::sync::atomic::Ordering::Relaxed),
        2
    );
}

#[tokio::test]
async fn a_mercury_shelf_of_a_dozen_and_more_tags_is_read_whole_and_an_xpc_is_not_in_the_epc() {
    // The module answers one Get Tag Buffer with as many records as fit in a frame (eleven
    // of EPC-96 with read count, RSSI and antenna); the driver asks again until it has
    // every tag the read counted, as the vendor's host library does.
    let room = room().await;
    let mercury = driver(&room, "reader-2");
    let a = room.antennas("reader-2").next().unwrap();
    let c = reqwest::Client::new();
    let strays: Vec<String> = (0..14)
        .map(|i| format!("E28011700000000000AA{i:04X}"))
        .collect();
    for epc in &strays {
        let body = serde_json::json!({"epc": epc, "shelf": a.shelf.to_string()}).to_string();
        let r = c
            .post(format!("http://{}/sim/tags", room.sim.control))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    // One of them sends an XPC word after its PC (PC bit 0x0200).
    let r = c
        .put(format!(
            "http://{}/sim/tags/{}/xpc",
            room.sim.control, strays[3]
        ))
        .body("[1]")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let on_shelf = room
        .sim
        .state()
        .tags
        .iter()
        .filter(|t| t.shelf.as_deref() == Some(a.shelf.to_string().as_str()))
        .count();
    assert!(on_shelf > 11, "more than one response's worth: {on_shelf}");
    let reads = mercury
        .inventory(a.port, Duration::from_millis(400))
        .await
        .unwrap();
    let heard: HashSet<&str> = reads.iter().map(|r| r.epc.as_str()).collect();
    for epc in &strays {
        assert!(
            heard.contains(epc.as_str()),
            "{epc} unheard of {}",
            heard.len()
        );
    }
    assert!(
        reads.iter().all(|r| r.epc.len() == 24),
        "no EPC carries the XPC word"
    );
}

#[tokio::test]
async fn an_r2000_reads_four_shelves_per_fast_switch_command_and_names_the_missing_antenna() {
    let room = room().await;
    let r2000 = driver(&room, "reader-1");
    assert_eq!(r2000.group, reader::FAST_SWITCH_SLOTS);
    let antennas: Vec<_> = room.antennas("reader-1").take(3).collect();
    // Port 230 has no antenna; it shares its low bits with port 2, so the driver sends it
    // in a command of its own.
    // Port 300 cannot be named in a slot at all (its byte would be past 0xFF, which
    // switches a slot off): refused, not read as an empty shelf.
    let mut ports: Vec<u16> = antennas.iter().map(|a| a.port).collect();
    ports.extend([230, 300]);
    let group = r2000
        .inventory_group(&ports, Duration::from_millis(200))
        .await
        .unwrap();
    let mut refused = group.refused.clone();
    refused.sort();
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert_eq!(refused[0].0, 230);
    assert!(refused[0].1.contains("no antenna"), "{refused:?}");
    assert_eq!(refused[1].0, 300);
    let mut pipeline = Pipeline::new(
        antennas.iter().map(|a| (a.reader.clone(), a.port, a.shelf)),
        Settings::default(),
    );
    for r in &group.reads {
        assert!(ports.contains(&r.port), "{r:?}");
        pipeline.push(r);
    }
    // Each port's reads are its own shelf's: every box there is placed on it.
    let truth = room.sim.state();
    for a in &antennas {
        let own: Vec<_> = truth
            .tags
            .iter()
            .filter(|t| t.shelf.as_deref() == Some(a.shelf.to_string().as_str()))
            .collect();
        assert!(!own.is_empty());
        for t in own {
            let d = pipeline.decide(&t.epc, None).expect("heard");
            assert_eq!(d.shelf, a.shelf, "{}", t.epc);
        }
    }
    // The reader said how long its rounds take; the next stay is fitted to the dwell by it.
    let round = r2000
        .counters
        .round_us
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(round > 0);
}

#[tokio::test]
async fn reads_of_one_tag_in_two_requests_are_two_reads_not_a_duplicate() {
    // Every read is timed on one clock of the host; timed from the start of each request,
    // a tag read early in the second request looked like a repeat of its read in the first,
    // and the second look at a shelf added nothing.
    let room = room().await;
    for id in ["reader-1", "reader-2"] {
        let handle = driver(&room, id);
        let a = room.antennas(id).next().unwrap();
        let mut pipeline =
            Pipeline::new([(a.reader.clone(), a.port, a.shelf)], Settings::default());
        let mut heard = 0;
        for _ in 0..2 {
            // One round each (the dwell is shorter than a round).
            let reads = handle
                .inventory(a.port, Duration::from_millis(5))
                .await
                .unwrap();
            heard += reads.len();
            for r in &reads {
                pipeline.push(r);
            }
            tokio::time::sleep(Duration::from_millis(60)).await;
        }
        assert!(heard > 0, "{id}");
        assert_eq!(pipeline.counters.duplicates, 0, "{id}: {heard} reads");
    }
}

#[tokio::test]
async fn a_fast_switch_stays_on_each_antenna_as_many_rounds_as_fit_in_the_dwell() {
    let room = room().await;
    let r2000 = driver(&room, "reader-1");
    let ports: Vec<u16> = room.antennas("reader-1").take(4).map(|a| a.port).collect();
    let round = || {
        Duration::from_micros(
            r2000
                .counters
                .round_us
                .load(std::sync::atomic::Ordering::Relaxed),
        )
    };
    // The first command learns how long a round takes (the reader reports it).
    r2000
        .inventory_group(&ports, Duration::from_millis(10))
        .await
        .unwrap();
    assert!(!round().is_zero());
    let most_rounds = |reads: &[stackroom::rfid::pipeline::TagRead]| {
        reads.iter().map(|r| r.count).max().unwrap_or(0)
    };
    // A dwell shorter than a round still reads one round: every tag once at most.
    let short = r2000.inventory_group(&ports, round() / 2).await.unwrap();
    assert_eq!(most_rounds(&short.reads), 1);
    // Three rounds and a half (of the round just measured) fit three.
    let round = round();
    let long = r2000.inventory_group(&ports, round * 7 / 2).await.unwrap();
    assert_eq!(most_rounds(&long.reads), 3, "round {round:?}");
}

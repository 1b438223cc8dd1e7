//! The simulator on its wires, driven by clients that are not ours: a plain Modbus RTU
//! client (tokio-modbus) for the shelving, and the byte sequences of the R2000 vendor
//! examples for the reader, over real pseudo-terminals.

use std::net::SocketAddr;
use std::time::Duration;

use hw_sim::rf::RfParams;
use hw_sim::shelving::RangeSpec;
use hw_sim::world::ShelfSpec;
use hw_sim::{Placement, RangeDevice, ReaderDevice, ReaderWire, ShelvingWire, SimSpec, Simulator};
use stackroom_wire::mercury::{
    Command, Decoder as MercuryDecoder, Direction, Frame, Response, TagRecord,
};
use stackroom_wire::profile::Profile;
use stackroom_wire::r2000::{Decoder, Reply};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_modbus::prelude::*;

fn profile(name: &str) -> Profile {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../device-profiles")
        .join(format!("{name}.toml"));
    Profile::load(&path).unwrap()
}

/// Range 1: 6 carriages; one face (carriage 1, right) of 2 sections x 2 levels with tags.
fn spec(seed: u64) -> SimSpec {
    let shelves: Vec<ShelfSpec> = (1..=2)
        .flat_map(|section| {
            (1..=2).map(move |level| ShelfSpec {
                address: format!("R1-C1-R-S{section}-L{level}"),
                range: 1,
                carriage: 1,
                right_face: true,
                section,
                level,
            })
        })
        .collect();
    let placement = shelves
        .iter()
        .enumerate()
        .flat_map(|(i, s)| {
            (0..3).map(move |k| Placement {
                archive_no: format!("B-{i}-{k}"),
                epc: format!("E2801170{:08X}{:08X}", i, k),
                shelf: Some(s.address.clone()),
            })
        })
        .collect();
    SimSpec {
        climate: Default::default(),
        gates: Vec::new(),
        seed,
        time_scale: 20.0,
        rf: RfParams::default(),
        shelves: shelves.clone(),
        ranges: vec![RangeDevice {
            device: "shelving-1".into(),
            range: RangeSpec {
                id: 1,
                carriage_widths_mm: vec![600; 6],
                fixed: vec![true, false, false, false, false, true],
                aisle_width_mm: 900,
                speed_mm_s: 100.0,
                accel_mm_s2: 200.0,
                watchdog_timeout: Some(Duration::from_millis(1000)),
            },
            wire: ShelvingWire::ModbusRtu {
                map: profile("generic-modbus-shelving").modbus.unwrap(),
                unit: 1,
                baud: 19200,
            },
        }],
        readers: vec![
            ReaderDevice {
                device: "reader-1".into(),
                wire: ReaderWire::R2000 {
                    settings: profile("r2000-8port").r2000.unwrap(),
                    baud: 115200,
                },
                antennas: antennas(&shelves),
            },
            ReaderDevice {
                device: "reader-2".into(),
                wire: ReaderWire::Mercury {
                    settings: profile("thingmagic-m6e").mercury.unwrap(),
                    baud: 115200,
                },
                antennas: antennas(&shelves),
            },
        ],
        placement,
        mqtt: None,
    }
}

async fn start(seed: u64) -> Simulator {
    Simulator::start(spec(seed), SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap()
}

fn antennas(shelves: &[ShelfSpec]) -> Vec<(u16, String)> {
    shelves
        .iter()
        .enumerate()
        .map(|(i, s)| (i as u16 + 1, s.address.clone()))
        .collect()
}

fn open(path: &str, baud: u32) -> tokio_serial::SerialStream {
    tokio_serial::SerialStream::open(&tokio_serial::new(path, baud)).unwrap()
}

async fn put(sim: &Simulator, path: &str, body: &str) -> u16 {
    let url = format!("http://{}{path}", sim.control);
    reqwest::Client::new()
        .put(url)
        .body(body.to_string())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_plain_modbus_client_opens_an_aisle_and_is_refused_when_someone_is_in_the_way() {
    let sim = start(1).await;
    let line = open(sim.path("shelving-1").unwrap(), 19200);
    let mut ctx = tokio_modbus::client::rtu::attach_slave(line, Slave(1));
    let read = |regs: &Vec<u16>, i: usize| regs[i];

    let regs = ctx.read_input_registers(0, 22).await.unwrap().unwrap();
    assert_eq!(read(&regs, 5), 6, "carriage count");
    assert_eq!(read(&regs, 1), 1, "aisle 1 open at start");

    // Open aisle 4: command 1 with argument 4, one write of both registers.
    ctx.write_multiple_registers(0, &[1, 4])
        .await
        .unwrap()
        .unwrap();
    let mut open = 0;
    for _ in 0..200 {
        let regs = ctx.read_input_registers(0, 22).await.unwrap().unwrap();
        if regs[0] & 1 == 0 && regs[1] == 4 {
            open = regs[1];
            assert_eq!(regs[4], 0, "accepted");
            assert_eq!(regs[6], 1, "one command counted");
            // Carriages 1-4 packed left, 5-6 right on a 4,500 mm rail: 0, 600, 1200, 1800 |
            // 3300, 3900.
            assert_eq!(&regs[16..22], &[0, 600, 1200, 1800, 3300, 3900]);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(open, 4, "aisle 4 opened");

    // A person in aisle 4: opening aisle 1 would narrow it, so the controller refuses.
    assert_eq!(
        put(&sim, "/sim/ranges/1/aisles/4/occupied", "true").await,
        200
    );
    ctx.write_multiple_registers(0, &[1, 1])
        .await
        .unwrap()
        .unwrap();
    let regs = ctx.read_input_registers(0, 22).await.unwrap().unwrap();
    assert_eq!(regs[4], 4, "refused: aisle occupied");
    assert_eq!(
        &regs[8..10],
        &[1 << 4, 0],
        "gap 4 reported occupied (bit 4 of the mask)"
    );
    assert_eq!(regs[1], 4, "nothing moved");
    // The gap at the right wall (gap 6) is bit 6.
    assert_eq!(
        put(&sim, "/sim/ranges/1/aisles/6/occupied", "true").await,
        200
    );
    assert_eq!(
        put(&sim, "/sim/ranges/1/aisles/7/occupied", "true").await,
        404
    );
    let regs = ctx.read_input_registers(8, 2).await.unwrap().unwrap();
    assert_eq!(regs, vec![1 << 4 | 1 << 6, 0]);

    // Emergency stop is reported in the status bits; an unknown command is an exception.
    assert_eq!(put(&sim, "/sim/ranges/1/estop", "true").await, 200);
    let regs = ctx.read_input_registers(0, 1).await.unwrap().unwrap();
    assert_ne!(regs[0] & (1 << 1), 0);
    let err = ctx.write_single_register(0, 99).await.unwrap();
    assert_eq!(err, Err(ExceptionCode::IllegalDataValue));
    let err = ctx.read_input_registers(200, 2).await.unwrap();
    assert_eq!(err, Err(ExceptionCode::IllegalDataAddress));
    assert_eq!(put(&sim, "/sim/ranges/1/estop", "maybe").await, 422);
    assert_eq!(put(&sim, "/sim/ranges/9/estop", "true").await, 404);

    // Every command is in the PLC's log, with the world when it acted.
    let log: serde_json::Value = get(&sim, "/sim/ranges/1/commands").await;
    let log = log.as_array().unwrap();
    assert_eq!(log.len(), 2, "{log:?}");
    assert_eq!(log[0]["command"]["command"], "open_aisle");
    assert_eq!(log[1]["result"], "aisle_occupied");
    assert_eq!(log[1]["world"]["occupied"], serde_json::json!([4]));
}

#[tokio::test]
async fn the_plc_acts_on_its_next_scan_and_its_watchdog_stops_the_drives() {
    // In real time: the motion outlasts the watchdog's second.
    let sim = Simulator::start(
        SimSpec {
            time_scale: 1.0,
            ..spec(2)
        },
        SocketAddr::from(([127, 0, 0, 1], 0)),
    )
    .await
    .unwrap();
    let line = open(sim.path("shelving-1").unwrap(), 19200);
    let mut ctx = tokio_modbus::client::rtu::attach_slave(line, Slave(1));
    let plc = r#"{"interlocks":true,"scan_delay_ms":300,"watchdog":true}"#;
    assert_eq!(put(&sim, "/sim/ranges/1/plc", plc).await, 200);
    // The heartbeat register (holding 2) arms the watchdog.
    ctx.write_single_register(2, 1).await.unwrap().unwrap();
    ctx.write_multiple_registers(0, &[1, 4])
        .await
        .unwrap()
        .unwrap();
    let regs = ctx.read_input_registers(0, 7).await.unwrap().unwrap();
    assert_eq!(
        regs[6], 0,
        "taken, not yet counted: the PLC acts on its next scan"
    );
    let mut counted = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        ctx.write_single_register(2, 2).await.unwrap().unwrap();
        let regs = ctx.read_input_registers(0, 7).await.unwrap().unwrap();
        if regs[6] == 1 {
            counted = true;
            assert_eq!(regs[0] & 1, 1, "moving");
            break;
        }
    }
    assert!(counted, "counted once it acted");
    // The heartbeat stops changing: the watchdog stops the drives and refuses motion.
    let mut halted = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let regs = ctx.read_input_registers(0, 7).await.unwrap().unwrap();
        if regs[0] & 1 == 0 {
            halted = true;
            assert_ne!(regs[0] & (1 << 4), 0, "stopped short");
            break;
        }
    }
    assert!(halted, "the watchdog stopped the drives");
    let halts: serde_json::Value = get(&sim, "/sim/ranges/1/halts").await;
    assert_eq!(halts[0]["reason"], "watchdog: no heartbeat", "{halts}");
}

async fn get(sim: &Simulator, path: &str) -> serde_json::Value {
    let url = format!("http://{}{path}", sim.control);
    let text = reqwest::Client::new()
        .get(url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Sends vendor-example packets and collects the answers until a round ends.
async fn inventory(line: &mut tokio_serial::SerialStream, antenna: u8) -> (Vec<u8>, Vec<Reply>) {
    let mut set = vec![0xA0, 0x04, 0x01, 0x74, antenna];
    set.push(stackroom_wire::r2000::checksum(&set));
    line.write_all(&set).await.unwrap();
    let mut first = vec![0u8; 6];
    line.read_exact(&mut first).await.unwrap();
    line.write_all(&[0xA0, 0x04, 0x01, 0x89, 0x01, 0xD1])
        .await
        .unwrap();
    let mut d = Decoder::default();
    let mut replies = Vec::new();
    let mut buf = [0u8; 256];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(5), line.read(&mut buf))
            .await
            .expect("the reader answers")
            .unwrap();
        d.push(&buf[..n]);
        while let Some(p) = d.next_packet() {
            let r = Reply::parse(&p).unwrap();
            let end = matches!(r, Reply::RoundEnd { .. } | Reply::Result { .. });
            replies.push(r);
            if end {
                return (first, replies);
            }
        }
    }
}

#[tokio::test]
async fn the_r2000_reader_answers_vendor_frames_and_a_seed_repeats_its_reads() {
    let sim = start(7).await;
    let mut line = open(sim.path("reader-1").unwrap(), 115200);
    let (ack, replies) = inventory(&mut line, 0).await;
    assert_eq!(
        ack,
        [0xA0, 0x04, 0x01, 0x74, 0x10, 0xD7],
        "vendor's success answer"
    );
    let epcs: Vec<String> = replies
        .iter()
        .filter_map(|r| match r {
            Reply::Tag(t) => Some(t.epc.iter().map(|b| format!("{b:02X}")).collect()),
            _ => None,
        })
        .collect();
    // Port 1 faces R1-C1-R-S1-L1, which holds tags of shelf 0; neighbours may be heard too.
    assert!(
        epcs.iter().any(|e| e.starts_with("E280117000000000")),
        "{epcs:?}"
    );
    assert!(matches!(
        replies.last(),
        Some(Reply::RoundEnd { antenna: 0, .. })
    ));

    // A port with no antenna, as a real module says.
    let (_, replies) = inventory(&mut line, 6).await;
    assert_eq!(
        replies,
        [Reply::Result {
            cmd: 0x89,
            code: 0x22
        }]
    );

    // The same seed and the same commands give the same reads.
    let again = start(7).await;
    let mut line2 = open(again.path("reader-1").unwrap(), 115200);
    let first = inventory(&mut line2, 0).await.1;
    let sim3 = start(7).await;
    let mut line3 = open(sim3.path("reader-1").unwrap(), 115200);
    assert_eq!(inventory(&mut line3, 0).await.1, first);

    // Offline: no answer at all.
    assert_eq!(
        put(&sim, "/sim/readers/reader-1/online", "false").await,
        204
    );
    line.write_all(&[0xA0, 0x04, 0x01, 0x89, 0x01, 0xD1])
        .await
        .unwrap();
    let mut one = [0u8; 1];
    let silent = tokio::time::timeout(Duration::from_millis(300), line.read(&mut one)).await;
    assert!(silent.is_err(), "an offline reader says nothing");
}

#[tokio::test]
async fn garbage_on_the_line_is_survived() {
    let sim = start(3).await;
    let url = format!("http://{}/sim/devices/shelving-1/line", sim.control);
    let set = |body: &'static str| {
        let url = url.clone();
        async move {
            reqwest::Client::new()
                .put(url)
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(set(r#"{"garbage":1.0}"#).await, 204);
    let line = open(sim.path("shelving-1").unwrap(), 19200);
    let mut ctx = tokio_modbus::client::rtu::attach_slave(line, Slave(1));
    // With garbage before every chunk some requests fail; none may hang or kill the device.
    for _ in 0..5 {
        let _ =
            tokio::time::timeout(Duration::from_millis(500), ctx.read_input_registers(0, 8)).await;
    }
    assert_eq!(set(r#"{}"#).await, 204);
    drop(ctx); // a driver reconnects after errors
    let line = open(sim.path("shelving-1").unwrap(), 19200);
    let mut ctx = tokio_modbus::client::rtu::attach_slave(line, Slave(1));
    let regs = tokio::time::timeout(Duration::from_secs(2), ctx.read_input_registers(0, 8))
        .await
        .expect("answers again")
        .unwrap()
        .unwrap();
    assert_eq!(regs[5], 6, "carriage count");
}

#[tokio::test]
async fn the_control_api_moves_and_removes_boxes_in_the_truth() {
    let sim = start(1).await;
    let base = format!("http://{}", sim.control);
    let c = reqwest::Client::new();
    let r = c
        .post(format!("{base}/sim/boxes/B-0-0/move"))
        .body(r#"{"shelf":"R1-C1-R-S2-L2"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = c
        .delete(format!("{base}/sim/boxes/B-0-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = c
        .post(format!("{base}/sim/tags"))
        .body(r#"{"epc":"DEADBEEF","shelf":"R1-C1-R-S1-L1"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = c
        .post(format!("{base}/sim/boxes/B-0-2/move"))
        .body(r#"{"shelf":"R9-C1-R-S1-L1"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let state = sim.state();
    let place = |epc: &str| {
        state
            .tags
            .iter()
            .find(|t| t.epc == epc)
            .map(|t| t.shelf.clone())
    };
    assert_eq!(
        place("E28011700000000000000000"),
        Some(Some("R1-C1-R-S2-L2".into()))
    );
    assert_eq!(place("E28011700000000000000001"), None, "removed");
    assert_eq!(place("DEADBEEF"), Some(Some("R1-C1-R-S1-L1".into())));
}

/// Sends a Mercury command and reads responses until `count` have come.
async fn mercury(
    line: &mut tokio_serial::SerialStream,
    opcode: u8,
    data: &[u8],
    count: usize,
) -> Vec<Response> {
    line.write_all(&Command::new(opcode, data.to_vec()).encode().unwrap())
        .await
        .unwrap();
    let mut d = MercuryDecoder::new(Direction::ReaderToHost);
    let mut out = Vec::new();
    let mut buf = [0u8; 512];
    while out.len() < count {
        let n = tokio::time::timeout(Duration::from_secs(5), line.read(&mut buf))
            .await
            .expect("the reader answers")
            .unwrap();
        d.push(&buf[..n]);
        while let Some(Frame::Response(r)) = d.next_frame() {
            out.push(r);
        }
    }
    out
}

#[tokio::test]
async fn the_mercury_reader_reads_into_its_tag_buffer() {
    let sim = start(11).await;
    let mut line = open(sim.path("reader-2").unwrap(), 115200);
    // The published probe, byte for byte.
    line.write_all(&[0xFF, 0x00, 0x03, 0x1D, 0x0C])
        .await
        .unwrap();
    let mut d = MercuryDecoder::new(Direction::ReaderToHost);
    let mut buf = [0u8; 64];
    let version = loop {
        let n = line.read(&mut buf).await.unwrap();
        d.push(&buf[..n]);
        if let Some(Frame::Response(r)) = d.next_frame() {
            break r;
        }
    };
    assert_eq!((version.opcode, version.status), (0x03, 0));
    assert_eq!(
        mercury(&mut line, 0x93, &[0x00, 0x05], 1).await[0].status,
        0
    );
    assert_eq!(
        mercury(&mut line, 0x91, &[9, 9], 1).await[0].status,
        0x0105,
        "port 9 of 4"
    );
    assert_eq!(mercury(&mut line, 0x91, &[1, 1], 1).await[0].status, 0);
    let read = mercury(&mut line, 0x22, &[0x00, 0xFA], 1).await;
    assert_eq!(read[0].status, 0);
    assert!(
        read[0].data[0] >= 3,
        "at least the shelf's three tags: {:?}",
        read[0]
    );
    let count = read[0].data[0] as usize;
    // Get Tag Buffer answers one response per request, as the vendor's host library expects
    // (it asks until it has them all); without arguments it says read and write index.
    let mut records = Vec::new();
    while records.len() < count {
        let r = mercury(&mut line, 0x29, &[0x00, 0x07, 0x00], 1).await;
        assert_eq!((r.len(), r[0].status), (1, 0), "one response per request");
        let batch = TagRecord::decode_buffer(&r[0].data).unwrap().1;
        assert!(!batch.is_empty() && batch.len() <= 11, "{}", batch.len());
        records.extend(batch);
    }
    assert_eq!(records.len(), count);
    let indexes = mercury(&mut line, 0x29, &[], 1).await;
    assert_eq!(
        indexes[0].data,
        [0, count as u8, 0, count as u8],
        "all read"
    );
    let own: Vec<&TagRecord> = records
        .iter()
        .filter(|r| r.epc[..8] == [0xE2, 0x80, 0x11, 0x70, 0, 0, 0, 0])
        .collect();
    assert_eq!(own.len(), 3, "the three tags of the antenna's shelf");
    assert!(
        own.iter()
            .all(|r| r.antenna == 1 && r.read_count > 3 && r.rssi_dbm < 0)
    );
    assert_eq!(mercury(&mut line, 0x2A, &[], 1).await[0].status, 0);
    assert_eq!(
        mercury(&mut line, 0x29, &[0x00, 0x07, 0x00], 1).await[0].status,
        0x0400,
        "buffer cleared"
    );
    assert_eq!(
        mercury(&mut line, 0x77, &[], 1).await[0].status,
        0x0101,
        "unknown opcode"
    );
}

/// Modbus RTU CRC, low byte first (the one stackroom-wire checks against the specification).
fn modbus_crc(bytes: &[u8]) -> Vec<u8> {
    stackroom_wire::framed::Checksum::Crc16Modbus.compute(bytes)
}

#[tokio::test]
async fn raw_modbus_frames_as_the_specification_shows_them() {
    let sim = start(1).await;
    let mut line = open(sim.path("shelving-1").unwrap(), 19200);
    // The specification's classic example, read 10 holding registers from 0 of unit 1:
    // our map has four, so the answer is exception 02 (illegal data address), 01 83 02 C0 F1.
    line.write_all(&[0x01, 0x03, 0x00, 0x00, 0x00, 0x0A, 0xC5, 0xCD])
        .await
        .unwrap();
    let mut answer = [0u8; 5];
    line.read_exact(&mut answer).await.unwrap();
    assert_eq!(answer, [0x01, 0x83, 0x02, 0xC0, 0xF1]);
    // Read 10 input registers: 01 04 14 (20 bytes) CRC.
    line.write_all(&[0x01, 0x04, 0x00, 0x00, 0x00, 0x0A, 0x70, 0x0D])
        .await
        .unwrap();
    let mut answer = [0u8; 25];
    line.read_exact(&mut answer).await.unwrap();
    assert_eq!(&answer[..3], &[0x01, 0x04, 0x14]);
    assert_eq!(modbus_crc(&answer[..23]), answer[23..25].to_vec());
    assert_eq!(
        u16::from_be_bytes([answer[3 + 10], answer[3 + 11]]),
        6,
        "register 5: carriages"
    );
    // A request for another unit on the bus gets no answer.
    let mut other = vec![0x02, 0x04, 0x00, 0x00, 0x00, 0x01];
    other.extend(modbus_crc(&other));
    line.write_all(&other).await.unwrap();
    let mut one = [0u8; 1];
    let silent = tokio::time::timeout(Duration::from_millis(300), line.read(&mut one)).await;
    assert!(silent.is_err(), "unit 2 is not us");
}

#[tokio::test]
async fn output_power_moves_the_rssi_and_a_session_inventory_answers_in_kind() {
    let sim = start(11).await;
    let mut line = open(sim.path("reader-1").unwrap(), 115200);
    let mean_rssi = |replies: &[Reply]| {
        let rssi: Vec<f64> = replies
            .iter()
            .filter_map(|r| match r {
                Reply::Tag(t) => Some(t.rssi_dbm as f64),
                _ => None,
            })
            .collect();
        assert!(!rssi.is_empty());
        rssi.iter().sum::<f64>() / rssi.len() as f64
    };
    let mut full = Vec::new();
    for _ in 0..5 {
        full.extend(inventory(&mut line, 0).await.1);
    }
    let mut power = vec![0xA0, 0x04, 0x01, 0x76, 20];
    power.push(stackroom_wire::r2000::checksum(&power));
    line.write_all(&power).await.unwrap();
    let mut ack = [0u8; 6];
    line.read_exact(&mut ack).await.unwrap();
    assert_eq!(&ack[3..5], [0x76, 0x10], "power set");
    let mut low = Vec::new();
    for _ in 0..5 {
        low.extend(inventory(&mut line, 0).await.1);
    }
    let drop = mean_rssi(&full) - mean_rssi(&low);
    assert!(
        (7.0..13.0).contains(&drop),
        "10 dB less power: {drop:.1} dB weaker"
    );

    // Session S1, target A, one round: tag packets and the round end carry 0x8B.
    let mut session = vec![0xA0, 0x06, 0x01, 0x8B, 0x01, 0x00, 0x01];
    session.push(stackroom_wire::r2000::checksum(&session));
    line.write_all(&session).await.unwrap();
    let mut d = Decoder::default();
    let mut buf = [0u8; 256];
    let mut cmds = Vec::new();
    'read: loop {
        let n = tokio::time::timeout(Duration::from_secs(5), line.read(&mut buf))
            .await
            .expect("the reader answers")
            .unwrap();
        d.push(&buf[..n]);
        while let Some(p) = d.next_packet() {
            cmds.push(p.cmd);
            if matches!(Reply::parse(&p).unwrap(), Reply::RoundEnd { .. }) {
                break 'read;
            }
        }
    }
    assert!(
        cmds.len() > 1 && cmds.iter().all(|c| *c == 0x8B),
        "{cmds:?}"
    );
}

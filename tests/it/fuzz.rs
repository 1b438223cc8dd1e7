//! Bad input, many times over (proptest): the wire codecs, the profile and room config
//! loaders and the CSV import meet random and mutated input with errors, never a panic or
//! a hang, and the stream decoders find the next good frame after any garbage.

use std::path::Path;
use std::sync::{Arc, LazyLock};

use proptest::prelude::*;
use stackroom::config::RoomConfig;
use stackroom::demo;
use stackroom::location::LocationService;
use stackroom::store::Store;
use stackroom_wire::mercury::{self, Command, Direction, TagRecord};
use stackroom_wire::mqtt_json::{ImpinjEvent, ShelvingCommand, ShelvingState};
use stackroom_wire::profile::Profile;
use stackroom_wire::{framed, r2000};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn garbage() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..2048)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn r2000_garbage_then_a_good_packet(junk in garbage(), cut in 0usize..64) {
        let good = r2000::Packet::new(1, r2000::CMD_SET_WORK_ANTENNA, vec![r2000::SUCCESS]).encode();
        let mut d = r2000::Decoder::default();
        // Garbage in pieces, then a good packet, then it must come out.
        let split = cut.min(junk.len());
        d.push(&junk[..split]);
        d.push(&junk[split..]);
        while let Some(p) = d.next_packet() {
            let _ = r2000::Reply::parse(&p);
        }
        // A header byte at the end of the garbage may announce a frame of up to 257
        // bytes and swallow what follows until it fails its checksum: once that many
        // more bytes have come, the stream is in step again.
        for _ in 0..50 {
            d.push(&good);
        }
        let mut seen = false;
        while let Some(p) = d.next_packet() {
            let _ = r2000::Reply::parse(&p);
            seen |= p.encode() == good;
        }
        prop_assert!(seen);
    }

    #[test]
    fn mercury_garbage_then_a_good_frame(junk in garbage(), data in proptest::collection::vec(any::<u8>(), 0..300)) {
        let good = Command::new(mercury::OP_GET_VERSION, vec![]).encode().unwrap();
        let mut d = mercury::Decoder::new(Direction::HostToReader);
        d.push(&junk);
        while d.next_frame().is_some() {}
        // As above: a stray header may announce up to 255 data bytes.
        for _ in 0..60 {
            d.push(&good);
        }
        let mut seen = 0;
        while d.next_frame().is_some() {
            seen += 1;
        }
        prop_assert!(seen >= 1);
        let mut r = mercury::Decoder::new(Direction::ReaderToHost);
        r.push(&junk);
        while r.next_frame().is_some() {}
        let _ = TagRecord::decode_buffer(&data);
    }

    #[test]
    fn framed_garbage_is_survived(junk in garbage()) {
        let profile = Profile::load(&root().join("device-profiles/framed-shelving.toml")).unwrap();
        let mut d = framed::Decoder::new(profile.framed.unwrap());
        d.push(&junk);
        while d.next_frame().is_some() {}
        d.flush_partial();
    }

    #[test]
    fn json_messages_of_any_shape_are_errors_not_panics(text in ".{0,400}", bytes in garbage()) {
        let _ = serde_json::from_str::<ImpinjEvent>(&text);
        let _ = serde_json::from_str::<ShelvingCommand>(&text);
        let _ = serde_json::from_str::<ShelvingState>(&text);
        let _ = serde_json::from_slice::<ImpinjEvent>(&bytes);
    }
}

/// The demo config and a shipped profile, as lines.
static DEMO: LazyLock<Vec<String>> = LazyLock::new(|| {
    std::fs::read_to_string(demo::config_path())
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
});

fn mutate(lines: &[String], edits: &[(usize, u8, String)]) -> String {
    let mut lines = lines.to_vec();
    for (at, how, text) in edits {
        if lines.is_empty() {
            break;
        }
        let i = at % lines.len();
        match how % 4 {
            0 => {
                lines.remove(i);
            }
            1 => lines[i] = text.clone(),
            2 => lines.insert(i, text.clone()),
            _ => {
                let cut = lines[i].len() / 2;
                let keep: String = lines[i].chars().take(cut).collect();
                lines[i] = keep;
            }
        }
    }
    lines.join("\n")
}

fn edit() -> impl Strategy<Value = (usize, u8, String)> {
    (
        any::<usize>(),
        any::<u8>(),
        prop_oneof![
            ".{0,40}",
            Just("carriages = 0".to_string()),
            Just("levels = 70000".to_string()),
            Just("[[ranges]]".to_string()),
            Just("port = 0".to_string()),
            Just("cron = \"61 25 * * *\"".to_string()),
            Just("scope = { shelves = [] }".to_string()),
            Just("carriages = [9, 2]".to_string()),
        ],
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn a_mangled_room_config_is_an_error_that_names_the_file(edits in proptest::collection::vec(edit(), 1..6)) {
        let text = mutate(&DEMO, &edits);
        if let Err(e) = RoomConfig::parse(&demo::config_path(), &text) {
            prop_assert!(e.to_string().contains("demo-room.toml"), "{e}");
        }
    }

    #[test]
    fn a_mangled_profile_is_an_error(edits in proptest::collection::vec(edit(), 1..4), which in 0usize..4) {
        let name = ["generic-modbus-shelving", "framed-shelving", "r2000-mux", "thingmagic-m6e"][which];
        let lines: Vec<String> = std::fs::read_to_string(root().join(format!("device-profiles/{name}.toml")))
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        let _ = Profile::parse(&mutate(&lines, &edits));
    }
}

/// One location service for all the CSV cases.
static SERVICE: LazyLock<(tokio::runtime::Runtime, LocationService, tempfile::TempDir)> =
    LazyLock::new(|| {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let config = Arc::new(RoomConfig::load(&demo::config_path()).unwrap());
        let store = Store::open(&dir.path().join("db")).unwrap();
        let service = rt.block_on(LocationService::open(config, store)).unwrap();
        (rt, service, dir)
    });

fn csv_field() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9A-Za-z,\"\n -]{0,30}",
        Just("0451-H-001-00001".to_string()),
        Just("R1-C1-R-S1-L1".to_string()),
        Just("E28011700000000000000001".to_string()),
        Just("\u{feff}archive_no".to_string()),
        ".{0,20}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn any_csv_is_imported_whole_or_refused_whole(
        header in proptest::collection::vec(prop_oneof![Just("archive_no".to_string()), Just("epc".to_string()), Just("shelf".to_string()), csv_field()], 0..5),
        rows in proptest::collection::vec(proptest::collection::vec(csv_field(), 0..6), 0..20),
        raw in garbage(),
    ) {
        let (rt, service, _) = &*SERVICE;
        let mut text = header.join(",");
        for row in &rows {
            text.push('\n');
            text += &row.join(",");
        }
        let before = rt.block_on(service.box_count()).unwrap();
        let result = rt.block_on(service.import_csv(std::io::Cursor::new(text.into_bytes()), "fuzz", "fuzz"));
        let after = rt.block_on(service.box_count()).unwrap();
        match result {
            Ok(summary) => prop_assert_eq!(after, before + summary.boxes),
            Err(_) => prop_assert_eq!(after, before),
        }
        let before = after;
        let result = rt.block_on(service.import_csv(std::io::Cursor::new(raw), "fuzz", "fuzz"));
        if result.is_err() {
            prop_assert_eq!(rt.block_on(service.box_count()).unwrap(), before);
        }
    }
}

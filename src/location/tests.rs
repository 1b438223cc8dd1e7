use std::path::Path;
use std::sync::Arc;

use super::*;
use crate::config::RoomConfig;

/// Range 1: 3 carriages x 2 sections x 2 levels, 2 boxes a shelf (16 shelves);
/// range 2: 2 carriages x 1 section x 1 level, 150 mm a shelf (2 shelves).
const ROOM: &str = r#"
[site]
id = "s"
[room]
id = "r"
[archive_number]
pattern = "{cat}-{cab}-{seq}"
series = ["cat", "cab"]
[archive_number.parts]
cat = "H|L"
cab = "[0-9]{2}"
seq = "[0-9]{3}"
[boxes]
default_width_mm = 60
[[ranges]]
id = 1
carriages = 3
sections = 2
levels = 2
shelf_capacity = { boxes = 2 }
[[ranges]]
id = 2
carriages = 2
sections = 1
levels = 1
shelf_capacity = { mm = 150 }
"#;

struct Room {
    _dir: tempfile::TempDir,
    svc: LocationService,
}

async fn room() -> Room {
    let dir = tempfile::tempdir().unwrap();
    let svc = open(dir.path(), ROOM).await.unwrap();
    Room { _dir: dir, svc }
}

async fn open(dir: &Path, text: &str) -> Result<LocationService, LocationError> {
    let config = RoomConfig::parse(&dir.join("room.toml"), text).unwrap();
    let store = Store::open(&dir.join("db.sqlite")).unwrap();
    LocationService::open(Arc::new(config), store).await
}

fn new_box(no: &str) -> NewBox {
    NewBox {
        archive_no: no.into(),
        title: format!("合同 contract {no}"),
        ..NewBox::default()
    }
}

fn who() -> Provenance {
    Provenance::manual("tester", "test")
}

#[tokio::test]
async fn bind_move_unbind_are_located_and_kept_in_history() {
    let room = room().await;
    let svc = &room.svc;
    let view = svc
        .register(
            NewBox {
                epc: Some("e2801170000000000000000a".into()),
                barcode: Some("SR1".into()),
                shelf: Some("R1-C1-R-S1-L1".into()),
                ..new_box("H-01-001")
            },
            "tester",
        )
        .await
        .unwrap();
    assert_eq!(view.epc.as_deref(), Some("E2801170000000000000000A"));
    let loc = view.location.unwrap();
    assert_eq!(loc.shelf.address, "R1-C1-R-S1-L1");
    assert_eq!((loc.aisle.range, loc.aisle.aisle), (1, 1));

    let t_first = Utc::now();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let moved = svc.bind("H-01-001", "r1-c2-l-s2-l1", who()).await.unwrap();
    assert_eq!(moved.shelf.address, "R1-C2-L-S2-L1", "stored canonically");
    assert_eq!(
        moved.aisle.aisle, 1,
        "left face of carriage 2 looks into aisle 1"
    );
    let by_epc = svc
        .locate(BoxKey::Epc("E2801170000000000000000A".into()))
        .await
        .unwrap();
    let by_code = svc.locate(BoxKey::Barcode("SR1".into())).await.unwrap();
    assert_eq!(by_epc.shelf.address, moved.shelf.address);
    assert_eq!(by_code.shelf.address, moved.shelf.address);

    // Binding to the shelf it is on records nothing.
    svc.bind("H-01-001", "R1-C2-L-S2-L1", who()).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let t_moved = Utc::now();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    svc.unbind("H-01-001", who()).await.unwrap();
    assert!(matches!(
        svc.locate(BoxKey::ArchiveNo("H-01-001".into())).await,
        Err(LocationError::NotOnShelf(_))
    ));
    assert!(matches!(
        svc.unbind("H-01-001", who()).await,
        Err(LocationError::NotOnShelf(_))
    ));

    let h = svc.history("H-01-001", Some(t_first)).await.unwrap();
    let kinds: Vec<&str> = h.events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["bind", "move", "unbind"]);
    assert_eq!(h.events[1].from.as_deref(), Some("R1-C1-R-S1-L1"));
    assert_eq!(h.events[1].actor, "tester");
    assert_eq!(h.shelf_at.as_deref(), Some("R1-C1-R-S1-L1"));
    let h = svc.history("H-01-001", Some(t_moved)).await.unwrap();
    assert_eq!(h.shelf_at.as_deref(), Some("R1-C2-L-S2-L1"));
    let h = svc.history("H-01-001", Some(Utc::now())).await.unwrap();
    assert_eq!(h.shelf_at, None, "unbound now");
    let before = DateTime::<Utc>::from_timestamp(0, 0).unwrap();
    assert_eq!(
        svc.history("H-01-001", Some(before))
            .await
            .unwrap()
            .shelf_at,
        None
    );
}

#[tokio::test]
async fn unknown_boxes_and_bad_input_are_refused_clearly() {
    let room = room().await;
    let svc = &room.svc;
    assert!(matches!(
        svc.locate(BoxKey::ArchiveNo("H-01-999".into())).await,
        Err(LocationError::UnknownBox(_))
    ));
    assert!(matches!(
        svc.locate(BoxKey::Epc("ABCD".into())).await,
        Err(LocationError::NoMatch { .. })
    ));
    let field = |r: Result<BoxView, LocationError>| match r {
        Err(LocationError::Invalid { field, .. }) => field,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        field(svc.register(new_box("X-01-001"), "t").await),
        "archive_no"
    );
    let bad_epc = NewBox {
        epc: Some("12345".into()),
        ..new_box("H-01-001")
    };
    assert_eq!(field(svc.register(bad_epc, "t").await), "epc");
    let bad_field = NewBox {
        fields: serde_json::json!({"nested": {"a": 1}})
            .as_object()
            .unwrap()
            .clone(),
        ..new_box("H-01-001")
    };
    assert_eq!(field(svc.register(bad_field, "t").await), "fields.nested");
    let wall = NewBox {
        shelf: Some("R1-C1-L-S1-L1".into()),
        ..new_box("H-01-001")
    };
    assert!(matches!(
        svc.register(wall, "t").await,
        Err(LocationError::NoSuchShelf(_))
    ));
    assert_eq!(svc.box_count().await.unwrap(), 0, "nothing half-registered");

    svc.register(new_box("H-01-001"), "t").await.unwrap();
    assert!(matches!(
        svc.register(new_box("H-01-001"), "t").await,
        Err(LocationError::Duplicate {
            field: "archive_no",
            ..
        })
    ));
}

#[tokio::test]
async fn full_shelves_refuse_more_boxes() {
    let room = room().await;
    let svc = &room.svc;
    for no in ["H-01-001", "H-01-002", "H-01-003"] {
        svc.register(new_box(no), "t").await.unwrap();
    }
    svc.bind("H-01-001", "R1-C1-R-S1-L1", who()).await.unwrap();
    svc.bind("H-01-002", "R1-C1-R-S1-L1", who()).await.unwrap();
    let err = svc
        .bind("H-01-003", "R1-C1-R-S1-L1", who())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("full"), "{err}");

    // Range 2 is measured in millimetres: 150 mm take two 60 mm boxes, not a 100 mm one.
    svc.bind("H-01-001", "R2-C1-R-S1-L1", who()).await.unwrap();
    let wide = NewBox {
        width_mm: Some(100),
        ..new_box("H-01-004")
    };
    svc.register(wide, "t").await.unwrap();
    let err = svc
        .bind("H-01-004", "R2-C1-R-S1-L1", who())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("150 mm"), "{err}");
    svc.bind("H-01-003", "R2-C1-R-S1-L1", who()).await.unwrap();
}

#[tokio::test]
async fn search_finds_numbers_tags_codes_and_words() {
    let room = room().await;
    let svc = &room.svc;
    for (no, title, code) in [
        ("H-01-001", "广州供电局 用户合同", "B-1"),
        ("H-01-002", "Contract Müller", "B-2"),
        ("L-02-001", "供应商 电费", "B-3"),
    ] {
        svc.register(
            NewBox {
                title: title.into(),
                barcode: Some(code.into()),
                ..new_box(no)
            },
            "t",
        )
        .await
        .unwrap();
    }
    let nos =
        |items: Vec<BoxView>| -> Vec<String> { items.into_iter().map(|b| b.archive_no).collect() };
    assert_eq!(
        nos(svc.search("H-01-002", 10).await.unwrap())[0],
        "H-01-002"
    );
    assert_eq!(
        nos(svc.search("H-01", 10).await.unwrap()),
        ["H-01-001", "H-01-002"]
    );
    assert_eq!(nos(svc.search("供电", 10).await.unwrap()), ["H-01-001"]);
    assert_eq!(nos(svc.search("muller", 10).await.unwrap()), ["H-01-002"]);
    assert_eq!(nos(svc.search("B-3", 10).await.unwrap())[0], "L-02-001");
    // Typed without dashes, or in lower case: the number the rule writes.
    assert_eq!(nos(svc.search("h01002", 10).await.unwrap()), ["H-01-002"]);
    assert_eq!(nos(svc.search("L 02 001", 10).await.unwrap()), ["L-02-001"]);
    assert!(
        matches!(
            svc.locate(BoxKey::ArchiveNo("h01001".into())).await,
            Err(LocationError::NotOnShelf(no)) if no == "H-01-001"
        ),
        "found, and said to be on no shelf"
    );
    assert_eq!(svc.search("H-", 1).await.unwrap().len(), 1, "limit holds");
    assert!(svc.search("nothing like it", 10).await.unwrap().is_empty());
    assert!(matches!(
        svc.search("  ", 10).await,
        Err(LocationError::Invalid { .. })
    ));
}

#[tokio::test]
async fn search_pages_counts_and_expands_the_word_being_typed() {
    let room = room().await;
    let svc = &room.svc;
    // 2,400 boxes; a third of them about metering, a sixth about meters.
    let mut csv = String::from("archive_no,epc,title\n");
    for i in 0..2_400 {
        let word = match i % 6 {
            0 => "meters",
            2 | 4 => "metering",
            _ => "contract",
        };
        csv += &format!("H-{:02}-{:03},,{word} 客户档案\n", i / 1000, i % 1000);
    }
    svc.import_csv(std::io::Cursor::new(csv.into_bytes()), "t", "test")
        .await
        .unwrap();
    let page = |offset, limit| Page { offset, limit };
    let nos = |found: &Found| -> Vec<String> {
        found.items.iter().map(|b| b.archive_no.clone()).collect()
    };

    let first = svc.find("metering", page(0, 20)).await.unwrap();
    let second = svc.find("metering", page(20, 20)).await.unwrap();
    assert_eq!(first.items.len(), 20);
    assert!(first.items.iter().all(|b| b.title.starts_with("metering")));
    let (a, b) = (nos(&first), nos(&second));
    assert!(
        a.last() < b.first(),
        "the next page goes on in order: {a:?} {b:?}"
    );
    let across = svc.find("metering", page(15, 10)).await.unwrap();
    assert_eq!(nos(&across), [&a[15..], &b[..5]].concat());
    // 800 match: counted; 1,200 with the prefix: estimated from where the 1,000th is.
    assert_eq!((first.total, first.estimated), (800, false));
    let typing = svc.find("mete", page(0, 20)).await.unwrap();
    assert!(typing.estimated, "{} boxes", typing.total);
    assert!((1_050..=1_350).contains(&typing.total), "{}", typing.total);
    // Deep in, past what is counted: the page is there, and the estimate is no less than
    // what the walk to it found. The last page ends the walk: exact again.
    let deep = svc.find("mete", page(1_150, 30)).await.unwrap();
    assert_eq!(deep.items.len(), 30);
    assert!(deep.estimated && deep.total >= 1_180, "{}", deep.total);
    let last = svc.find("mete", page(1_190, 30)).await.unwrap();
    assert_eq!(
        (last.items.len(), last.total, last.estimated),
        (10, 1_200, false)
    );
    // A walk that ends in the broadest title query ("contract ": a whole word, 1,200
    // boxes) knows where its 1,000th match lies, and estimates as the query for it would.
    let (walked, asked) = svc
        .store
        .read(|conn| {
            let sources = search::Sources::of(conn, "contract ", &[])?;
            let mut hits = search::Hits::for_up_to(search::COUNTED + 1);
            let reached = sources.each(conn, |id| hits.add(id) <= search::COUNTED)?;
            assert!(reached.is_some());
            let found = hits.order.len();
            Ok::<_, StoreError>((
                sources.estimate(conn, found, reached)?,
                sources.estimate(conn, found, None)?,
            ))
        })
        .await
        .unwrap();
    assert_eq!(walked, asked);
    assert!(
        walked.1 && (1_050..=1_350).contains(&walked.0),
        "{walked:?}"
    );
    // The word being typed expands into the words it begins: "meteri" is "metering".
    let meteri = svc.find("meteri", page(0, 200)).await.unwrap();
    assert_eq!(
        nos(&meteri),
        nos(&svc.find("metering", page(0, 200)).await.unwrap())
    );
    // A short prefix comes from the prefix index, with the same answer as a long one.
    let met = svc.find("met", page(0, 200)).await.unwrap();
    let mete = svc.find("mete", page(0, 200)).await.unwrap();
    assert_eq!((nos(&met), met.total), (nos(&mete), mete.total));
    // A page past the end is empty and still counts.
    let past = svc.find("meters", page(1_000, 20)).await.unwrap();
    assert!(past.items.is_empty());
    assert_eq!((past.total, past.estimated), (400, false));
    assert!(matches!(
        svc.find("meters", page(Page::MAX_OFFSET + 1, 20)).await,
        Err(LocationError::Invalid { .. })
    ));
}

#[tokio::test]
async fn import_is_all_or_nothing_with_line_numbers() {
    let room = room().await;
    let svc = &room.svc;
    svc.register(new_box("H-01-900"), "t").await.unwrap();
    let bad = "archive_no,epc,title,shelf,owner\n\
               H-01-001,E2801170000000000000000A,ok,R1-C1-R-S1-L1,Wang\n\
               H-01-002,XYZ,bad epc,R1-C1-R-S1-L1,\n\
               Q-01-003,,bad number,,\n\
               H-01-004,,bad shelf,R1-C9-R-S1-L1,\n\
               H-01-001,,again,,\n\
               H-01-900,,already registered,,\n\
               H-01-006,,,R1-C1-R-S1-L1,\n\
               H-01-007,,,R1-C1-R-S1-L1,\n\
               H-01-008,,short row\n";
    let Err(LocationError::Import(rows)) = svc.import_csv(bad.as_bytes(), "t", "test").await else {
        panic!("must be rejected");
    };
    let got: Vec<(u64, Option<&str>)> = rows.iter().map(|r| (r.line, r.field.as_deref())).collect();
    assert_eq!(
        got,
        [
            (3, Some("epc")),
            (4, Some("archive_no")),
            (5, Some("shelf")),
            (6, Some("archive_no")),
            (7, Some("archive_no")),
            (9, Some("shelf")),
            (10, None),
        ],
        "{rows:#?}"
    );
    assert!(rows[3].message.contains("line 2"), "{}", rows[3].message);
    assert!(
        rows[4].message.contains("already registered"),
        "{}",
        rows[4].message
    );
    assert!(rows[5].message.contains("full"), "{}", rows[5].message);
    assert_eq!(
        svc.box_count().await.unwrap(),
        1,
        "nothing of the bad file was kept"
    );

    let good = "archive_no,epc,title,shelf,owner\n\
                H-01-001,E2801170000000000000000A,ok,R1-C1-R-S1-L1,Wang\n\
                H-01-002,,unbound,,\n";
    let summary = svc.import_csv(good.as_bytes(), "t", "test").await.unwrap();
    assert_eq!((summary.boxes, summary.bound), (2, 1));
    // A shelf filled by an earlier import counts what it holds: one box there, room for one.
    let over = "archive_no,shelf\n\
                H-01-010,R1-C1-R-S1-L1\n\
                H-01-011,R1-C1-R-S1-L1\n";
    let Err(LocationError::Import(rows)) = svc.import_csv(over.as_bytes(), "t", "t").await else {
        panic!("the shelf holds two boxes");
    };
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert_eq!(rows[0].line, 3);
    assert!(rows[0].message.contains("full"), "{}", rows[0].message);
    // The title index left bulk mode behind it, after the bad file and the good one.
    let hash: i64 = svc
        .store()
        .read(|c| {
            c.query_row(
                "SELECT v FROM box_words_config WHERE k = 'hashsize'",
                [],
                |r| r.get(0),
            )
            .map_err(StoreError::from)
        })
        .await
        .unwrap();
    assert_eq!(hash, 1 << 20);
    // The words of the good file are in the vocabulary that typed prefixes expand into.
    let terms: i64 = svc
        .store()
        .write(|c| {
            let terms = c.query_row(
                "SELECT count(*) FROM box_terms WHERE term IN ('unbound', 'e2801170000000000000000a')",
                [],
                |r| r.get(0),
            )?;
            Ok::<_, StoreError>(terms)
        })
        .await
        .unwrap();
    assert_eq!(
        terms, 1,
        "the title's word (an EPC is not in the title index)"
    );
    assert_eq!(svc.search("ok", 20).await.unwrap().len(), 1);
    assert_eq!(svc.search("unbo", 20).await.unwrap().len(), 1);
    let b = svc.get_box("H-01-001").await.unwrap();
    assert_eq!(b.fields["owner"], "Wang");
    assert_eq!(b.location.unwrap().source, Source::Import);

    let Err(LocationError::Import(rows)) = svc.import_csv("title\nx\n".as_bytes(), "t", "t").await
    else {
        panic!("needs archive_no");
    };
    assert_eq!(rows[0].line, 1);
}

#[tokio::test]
async fn an_import_numbers_its_boxes_in_the_feed_and_leaves_the_feed_whole() {
    let room = room().await;
    let svc = &room.svc;
    svc.register(new_box("H-01-900"), "t").await.unwrap();
    let numbers = || async {
        let feed = svc.feed(0, 100).await.unwrap();
        let seqs: Vec<(String, i64)> = feed
            .changes
            .iter()
            .map(|e| (e.record.archive_no.clone(), e.seq))
            .collect();
        (seqs, feed.last)
    };
    let before = numbers().await;
    assert_eq!(before, (vec![("H-01-900".to_string(), 1)], 1));
    // A failed import numbers nothing, and the feed's triggers are still there after it.
    let bad = "archive_no,shelf\nH-01-001,R1-C1-R-S1-L1\nQ-bad,\n";
    assert!(svc.import_csv(bad.as_bytes(), "t", "t").await.is_err());
    assert_eq!(numbers().await, before);
    // A good one: its boxes after what was there, in the order of the file, once each
    // though each got a box and a binding.
    let good = "archive_no,shelf\nH-01-002,R1-C1-R-S1-L1\nH-01-001,\nH-01-003,R1-C1-R-S1-L2\n";
    svc.import_csv(good.as_bytes(), "t", "t").await.unwrap();
    let (seqs, last) = numbers().await;
    assert_eq!(
        seqs,
        [
            ("H-01-900", 1),
            ("H-01-002", 2),
            ("H-01-001", 3),
            ("H-01-003", 4)
        ]
        .map(|(no, seq)| (no.to_string(), seq))
    );
    assert_eq!(last, 4);
    // The triggers were made again: a move after the import numbers its box anew.
    svc.bind(
        "H-01-002",
        "R1-C1-R-S1-L2",
        Provenance::manual("t", "moved"),
    )
    .await
    .unwrap();
    let (seqs, last) = numbers().await;
    assert_eq!(seqs.last().unwrap(), &("H-01-002".to_string(), 5));
    assert_eq!(last, 5);
}

#[tokio::test]
async fn an_import_gives_back_the_writers_page_cache_whatever_its_end() {
    let room = room().await;
    let svc = &room.svc;
    let cache = || async {
        svc.store
            .write(|c| {
                Ok::<i64, StoreError>(c.pragma_query_value(None, "cache_size", |r| r.get(0))?)
            })
            .await
            .unwrap()
    };
    let before = cache().await;
    let bad = "archive_no,shelf\nH-01-001,R1-C1-R-S1-L1\nQ-bad,\n";
    assert!(svc.import_csv(bad.as_bytes(), "t", "t").await.is_err());
    assert_eq!(cache().await, before);
    let good = "archive_no,shelf\nH-01-001,R1-C1-R-S1-L1\n";
    svc.import_csv(good.as_bytes(), "t", "t").await.unwrap();
    assert_eq!(cache().await, before);
}

#[tokio::test]
async fn bulk_moves_are_all_or_none_and_judge_capacity_after_all_moves() {
    let room = room().await;
    let svc = &room.svc;
    let csv = "archive_no,shelf\nH-01-001,R1-C1-R-S1-L1\nH-01-002,R1-C1-R-S1-L1\nH-01-003,R1-C1-R-S1-L2\nH-01-004,R1-C1-R-S1-L2\n";
    svc.import_csv(csv.as_bytes(), "t", "t").await.unwrap();
    // A swap between two full shelves works: capacity is judged after all moves.
    let swap = vec![
        Move {
            archive_no: "H-01-001".into(),
            shelf: "R1-C1-R-S1-L2".into(),
        },
        Move {
            archive_no: "H-01-003".into(),
            shelf: "R1-C1-R-S1-L1".into(),
        },
    ];
    svc.move_many(swap, who()).await.unwrap();
    assert_eq!(
        svc.locate(BoxKey::ArchiveNo("H-01-001".into()))
            .await
            .unwrap()
            .shelf
            .address,
        "R1-C1-R-S1-L2"
    );
    let bad = vec![
        Move {
            archive_no: "H-01-002".into(),
            shelf: "R1-C2-L-S1-L1".into(),
        },
        Move {
            archive_no: "H-01-404".into(),
            shelf: "R1-C2-L-S1-L1".into(),
        },
        Move {
            archive_no: "H-01-001".into(),
            shelf: "R1-C1-R-S1-L1".into(),
        },
        Move {
            archive_no: "H-01-004".into(),
            shelf: "R1-C1-R-S1-L1".into(),
        },
    ];
    let Err(LocationError::Moves(errors)) = svc.move_many(bad, who()).await else {
        panic!("must be rejected");
    };
    let indexes: Vec<usize> = errors.iter().map(|e| e.index).collect();
    assert_eq!(indexes, [1, 2], "{errors:#?}");
    assert_eq!(
        svc.locate(BoxKey::ArchiveNo("H-01-002".into()))
            .await
            .unwrap()
            .shelf
            .address,
        "R1-C1-R-S1-L1",
        "the good move was rolled back too"
    );
    let h = svc.history("H-01-002", None).await.unwrap();
    assert_eq!(h.events.len(), 1, "no trace of the rejected moves");
}

#[tokio::test]
async fn suggestions_keep_a_series_together_and_fill_without_holes() {
    let room = room().await;
    let svc = &room.svc;
    // Shelf order of range 1: C1-R S1 L1, S1 L2, S2 L1, S2 L2, C2-L ..., C2-R ..., C3-L ...
    let csv = "archive_no,shelf\nL-05-001,R1-C1-R-S1-L1\nL-05-002,R1-C1-R-S1-L1\nH-01-001,R1-C2-L-S1-L1\n";
    svc.import_csv(csv.as_bytes(), "t", "t").await.unwrap();
    let at =
        |s: &[Suggestion]| -> Vec<String> { s.iter().map(|s| s.shelf.address.clone()).collect() };

    let s = svc.suggest("H-01-002", None, 3).await.unwrap();
    assert_eq!(
        at(&s),
        ["R1-C2-L-S1-L1", "R1-C1-R-S2-L2", "R1-C2-L-S1-L2"],
        "its own shelf, then the empty shelves nearest: {s:#?}"
    );
    assert_eq!(s[0].free, 1);

    let s = svc.suggest("L-09-001", None, 2).await.unwrap();
    assert_eq!(
        at(&s),
        ["R1-C1-R-S1-L2", "R1-C1-R-S2-L1"],
        "a new series takes the first empty shelves"
    );
    assert!(s[0].reason.contains("first empty"), "{}", s[0].reason);
    assert!(svc.suggest("nope", None, 2).await.is_err());
}

#[tokio::test]
async fn a_layout_that_drops_occupied_shelves_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let svc = open(dir.path(), ROOM).await.unwrap();
    svc.import_csv(
        "archive_no,shelf\nH-01-001,R2-C1-R-S1-L1\n".as_bytes(),
        "t",
        "t",
    )
    .await
    .unwrap();
    drop(svc);
    let smaller = ROOM.split("[[ranges]]\nid = 2").next().unwrap();
    let err = open(dir.path(), smaller).await.err().expect("refused");
    assert!(err.to_string().contains("R2-C1-R-S1-L1 (1 boxes)"), "{err}");
    // Putting the range back restores the shelf with its box.
    let svc = open(dir.path(), ROOM).await.unwrap();
    assert_eq!(
        svc.locate(BoxKey::ArchiveNo("H-01-001".into()))
            .await
            .unwrap()
            .shelf
            .address,
        "R2-C1-R-S1-L1"
    );
}

// ---------------------------------------------------------------------------------------
// Records: typed fields, corrections with a trace, lookups by field.

const FIELDS: &str = r#"
[boxes.fields.customer_no]
search = "exact"
[boxes.fields.customer_name]
search = "words"
[boxes.fields.account_closed]
type = "date"
[boxes.fields.voltage]
type = "choice"
choices = ["220V", "10kV"]
[boxes.fields.meters]
type = "number"
[retention]
[retention.classes.y10]
years = 10
from = "account_closed"
"#;

async fn room_with_fields() -> Room {
    let dir = tempfile::tempdir().unwrap();
    let text = ROOM.replace("[boxes]\ndefault_width_mm = 60\n", "") + FIELDS;
    let svc = open(dir.path(), &text).await.unwrap();
    Room { _dir: dir, svc }
}

fn with_fields(no: &str, fields: serde_json::Value) -> NewBox {
    NewBox {
        fields: fields.as_object().unwrap().clone(),
        ..new_box(no)
    }
}

#[tokio::test]
async fn declared_fields_are_checked_by_their_type_and_kept_in_canonical_form() {
    let r = room_with_fields().await;
    let bad = [
        (
            serde_json::json!({"account_closed": "31.12.2019"}),
            "fields.account_closed",
        ),
        (serde_json::json!({"voltage": "380V"}), "fields.voltage"),
        (serde_json::json!({"meters": "three"}), "fields.meters"),
        (serde_json::json!({"retention": "y99"}), "fields.retention"),
        (
            serde_json::json!({"customer_no": ["H1"]}),
            "fields.customer_no",
        ),
    ];
    for (fields, field) in bad {
        match r
            .svc
            .register(with_fields("H-01-001", fields.clone()), "t")
            .await
        {
            Err(LocationError::Invalid { field: f, .. }) => assert_eq!(f, field, "{fields}"),
            other => panic!("{fields}: {other:?}"),
        }
    }
    let view = r
        .svc
        .register(
            with_fields(
                "H-01-001",
                serde_json::json!({"account_closed": "2019/3/7", "meters": "2", "voltage": "10kV",
                    "retention": "y10", "customer_no": "", "note": "free text"}),
            ),
            "t",
        )
        .await
        .unwrap();
    assert_eq!(
        view.fields,
        serde_json::json!({"account_closed": "2019-03-07", "meters": 2.0, "voltage": "10kV",
            "retention": "y10", "note": "free text"}),
        "dates written one way, numbers as numbers, empty values left out"
    );
}

#[tokio::test]
async fn a_box_is_found_by_customer_number_name_and_a_range_of_dates() {
    let r = room_with_fields().await;
    for (no, customer, name, closed) in [
        (
            "H-01-001",
            "H37752077",
            "广州市白云电器有限公司",
            "2012-05-01",
        ),
        ("H-01-002", "H00000001", "天河区王芳", "2019-01-01"),
        ("L-01-001", "L12345678", "越秀区李娜", ""),
    ] {
        r.svc
            .register(
                with_fields(
                    no,
                    serde_json::json!({"customer_no": customer, "customer_name": name, "account_closed": closed}),
                ),
                "t",
            )
            .await
            .unwrap();
    }
    let found = r.svc.search("H37752077", 10).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].archive_no, "H-01-001");
    let found = r.svc.search("白云电器", 10).await.unwrap();
    assert_eq!(
        found[0].archive_no, "H-01-001",
        "by words of a searched field"
    );

    let range = |from: Option<&str>, to: Option<&str>| FieldQuery {
        key: "account_closed".into(),
        value: None,
        from: from.map(Into::into),
        to: to.map(Into::into),
    };
    let page = Page {
        offset: 0,
        limit: 20,
    };
    let found = r
        .svc
        .find_by_field(range(Some("2010-01-01"), Some("2015-12-31")), page)
        .await
        .unwrap();
    let nos: Vec<_> = found.items.iter().map(|b| b.archive_no.as_str()).collect();
    assert_eq!((nos, found.total), (vec!["H-01-001"], 1));
    let found = r
        .svc
        .find_by_field(range(None, Some("2030-01-01")), page)
        .await
        .unwrap();
    assert_eq!(
        found.total, 2,
        "an open end; the box with no date is not in any range"
    );
    let exact = FieldQuery {
        key: "customer_no".into(),
        value: Some("L12345678".into()),
        ..FieldQuery::default()
    };
    assert_eq!(
        r.svc.find_by_field(exact, page).await.unwrap().items[0].archive_no,
        "L-01-001"
    );
    for (q, field) in [
        (range(Some("soon"), None), "from"),
        (
            FieldQuery {
                key: "shoe_size".into(),
                value: Some("9".into()),
                ..FieldQuery::default()
            },
            "field",
        ),
        (
            FieldQuery {
                key: "customer_no".into(),
                ..FieldQuery::default()
            },
            "value",
        ),
    ] {
        match r.svc.find_by_field(q, page).await {
            Err(LocationError::Invalid { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn a_correction_keeps_every_changed_field_with_who_when_and_why() {
    let r = room_with_fields().await;
    r.svc
        .register(
            with_fields("H-01-001", serde_json::json!({"customer_no": "H11111111"})),
            "desk",
        )
        .await
        .unwrap();
    let correction = Correction {
        title: Some("供用电合同 广州市白云电器有限公司".into()),
        fields: serde_json::json!({"customer_no": "H37752077", "voltage": "10kV"})
            .as_object()
            .unwrap()
            .clone(),
        reason: "typed wrong at intake; see the contract".into(),
        ..Correction::default()
    };
    assert_eq!(
        r.svc
            .correct("H-01-001", correction.clone(), "wang")
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        r.svc.correct("H-01-001", correction, "wang").await.unwrap(),
        0,
        "the same correction again changes and records nothing"
    );
    let trail = r.svc.changes("H-01-001").await.unwrap().changes;
    let fields: Vec<(&str, Option<&str>, Option<&str>)> = trail
        .iter()
        .map(|c| (c.field.as_str(), c.before.as_deref(), c.after.as_deref()))
        .collect();
    assert_eq!(
        fields,
        vec![
            (
                "title",
                Some("合同 contract H-01-001"),
                Some("供用电合同 广州市白云电器有限公司")
            ),
            ("fields.customer_no", Some("H11111111"), Some("H37752077")),
            ("fields.voltage", None, Some("10kV")),
        ]
    );
    assert!(
        trail
            .iter()
            .all(|c| c.actor == "wang" && c.reason.starts_with("typed wrong"))
    );
    // The index follows the record: the new number and title are found, the old are not.
    assert_eq!(r.svc.search("H37752077", 5).await.unwrap().len(), 1);
    assert!(r.svc.search("H11111111", 5).await.unwrap().is_empty());
    assert_eq!(r.svc.search("白云", 5).await.unwrap().len(), 1);
    assert!(r.svc.search("contract", 5).await.unwrap().is_empty());

    // Clearing, a bad value, no reason, a clash: each refused or kept with its reason.
    let clear = Correction {
        fields: serde_json::json!({"voltage": null})
            .as_object()
            .unwrap()
            .clone(),
        barcode: Some(Some("SR-1".into())),
        reason: "no voltage on file".into(),
        ..Correction::default()
    };
    assert_eq!(r.svc.correct("H-01-001", clear, "li").await.unwrap(), 2);
    let view = r.svc.get_box("H-01-001").await.unwrap();
    assert!(view.fields.get("voltage").is_none());
    let no_reason = Correction {
        title: Some("x".into()),
        ..Correction::default()
    };
    assert!(matches!(
        r.svc.correct("H-01-001", no_reason, "li").await,
        Err(LocationError::Invalid { field, .. }) if field == "reason"
    ));
    r.svc.register(new_box("H-01-002"), "t").await.unwrap();
    let clash = Correction {
        barcode: Some(Some("SR-1".into())),
        reason: "r".into(),
        ..Correction::default()
    };
    assert!(matches!(
        r.svc.correct("H-01-002", clash, "li").await,
        Err(LocationError::Duplicate {
            field: "barcode",
            ..
        })
    ));
    assert!(matches!(
        r.svc
            .correct(
                "H-09-009",
                Correction {
                    reason: "r".into(),
                    ..Correction::default()
                },
                "li"
            )
            .await,
        Err(LocationError::UnknownBox(_))
    ));
    assert_eq!(
        r.svc.changes("H-01-002").await.unwrap().changes.len(),
        0,
        "nothing half-kept"
    );
    // The trail cannot be rewritten.
    let rewritten = r
        .svc
        .store()
        .write(|conn| {
            conn.execute("UPDATE box_changes SET actor = 'nobody'", [])
                .map_err(LocationError::from)
        })
        .await;
    assert!(rewritten.is_err());
}

#[tokio::test]
async fn a_scanned_label_finds_its_box_by_the_archive_number_it_encodes() {
    let r = room().await;
    let mut b = new_box("H-01-001");
    b.barcode = Some("SR0000000001".into());
    b.shelf = Some("R1-C1-R-S1-L1".into());
    r.svc.register(b, "t").await.unwrap();
    let by_label = r
        .svc
        .locate(BoxKey::Barcode("H-01-001".into()))
        .await
        .unwrap();
    assert_eq!(by_label.archive_no, "H-01-001");
    let by_field = r
        .svc
        .locate(BoxKey::Barcode("SR0000000001".into()))
        .await
        .unwrap();
    assert_eq!(by_field.archive_no, "H-01-001");
    assert!(matches!(
        r.svc.locate(BoxKey::Barcode("H-01-002".into())).await,
        Err(LocationError::NoMatch { key: "barcode", .. })
    ));
}

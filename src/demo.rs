//! The demo room: `config/demo-room.toml` and its seed boxes.
//!
//! On first start the demo registers [`SEED_BOXES`] boxes of a power-supply company's
//! customer archive (numbers `0451-{H|L}-{cabinet}-{sequence}`), each series of one
//! cabinet kept together on consecutive shelves, nine boxes to a shelf so that every series
//! has room to grow. The seed goes through the CSV import, like any real load. It runs only
//! on an empty database, so restarting the demo keeps what was changed.

use std::fmt::Write as _;
use std::path::PathBuf;

use crate::location::{LocationError, LocationService};
use crate::shelf::ShelfAddress;

/// How many boxes the demo seeds.
pub const SEED_BOXES: usize = 5400;
/// Boxes of one series (one cabinet).
const SERIES_LEN: usize = 60;
/// Boxes the seed puts on one shelf.
const PER_SHELF: usize = 9;

/// The demo config: `config/demo-room.toml` under the working directory, else the one in
/// the source tree this binary was built from.
pub fn config_path() -> PathBuf {
    let local = PathBuf::from("config/demo-room.toml");
    if local.exists() {
        local
    } else {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/demo-room.toml")
    }
}

/// A small deterministic generator (SplitMix64), so that every demo has the same boxes.
struct Mix(u64);

impl Mix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

const DOCUMENTS: [(&str, &str); 8] = [
    ("供用电合同", "power supply contract"),
    ("用电申请书", "connection application"),
    ("业扩报装资料", "new connection file"),
    ("电费结算协议", "billing agreement"),
    ("变更用电资料", "change of supply file"),
    ("计量装置档案", "metering equipment file"),
    ("客户身份证明", "customer identity papers"),
    ("停电赔偿记录", "outage compensation record"),
];
const SURNAMES: [&str; 12] = [
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙",
];
const GIVEN: [&str; 12] = [
    "伟", "芳", "娜", "敏", "静", "强", "磊", "军", "洋", "勇", "艳", "杰",
];
const DISTRICTS: [&str; 6] = ["越秀区", "天河区", "海珠区", "荔湾区", "白云区", "番禺区"];
const FIRMS: [&str; 6] = [
    "广州地铁",
    "白云机场",
    "珠江钢铁",
    "南方水泥",
    "华南造纸",
    "广船国际",
];

/// Series one company code holds: categories H and L with cabinets 001 to 999 each.
const SERIES_PER_COMPANY: usize = 2 * 999;

/// The seed as CSV: the archive number, tag, barcode, title, shelf, customer number and,
/// for a customer whose account was closed (销户: about one in thirty), the day it closed.
pub fn seed_csv(shelves: &[ShelfAddress], boxes: usize) -> String {
    let mut out = Vec::new();
    write_seed_csv(&mut out, shelves, boxes).expect("writing to memory");
    String::from_utf8(out).expect("the seed is UTF-8")
}

/// Writes the seed CSV of `boxes` boxes, placed series after series on `shelves` in
/// order. Series beyond what one company code holds get the next company code, so any
/// number of boxes follows the demo's archive-number rule.
pub fn write_seed_csv<W: std::io::Write>(
    out: W,
    shelves: &[ShelfAddress],
    boxes: usize,
) -> std::io::Result<()> {
    write_room_seed_csv(out, shelves, boxes, 1)
}

/// The seed of the site's room number `room` (1 for the demo room `stack-1`): other rooms
/// hold other company codes (`0461`… for room 2, ten codes apart), tags and barcodes, so
/// the rooms of a site demo hold different boxes.
pub fn write_room_seed_csv<W: std::io::Write>(
    mut out: W,
    shelves: &[ShelfAddress],
    boxes: usize,
    room: u32,
) -> std::io::Result<()> {
    let room = u64::from(room.max(1) - 1);
    let mut mix = Mix(0x5EED_0451 + room);
    let first_company = 451 + 10 * room as usize;
    writeln!(
        out,
        "archive_no,epc,barcode,title,shelf,customer_no,account_closed"
    )?;
    let series_count = boxes.div_ceil(SERIES_LEN);
    let shelves_per_series = SERIES_LEN.div_ceil(PER_SHELF);
    let mut line = String::new();
    for i in 0..boxes {
        let series = i / SERIES_LEN;
        let in_series = i % SERIES_LEN;
        let company = first_company + series / SERIES_PER_COMPANY;
        let first = series - series % SERIES_PER_COMPANY;
        let in_company = (series_count - first).min(SERIES_PER_COMPANY);
        let s = series - first;
        // High-voltage (business) customers in the first half of the cabinets.
        let high = s < in_company / 2;
        let category = if high { "H" } else { "L" };
        let cabinet = if high { s + 1 } else { s - in_company / 2 + 1 };
        let (zh, en) = DOCUMENTS[(mix.next() % DOCUMENTS.len() as u64) as usize];
        let customer = if high {
            mix.pick(&FIRMS).to_string()
        } else {
            format!(
                "{}{}{}",
                mix.pick(&DISTRICTS),
                mix.pick(&SURNAMES),
                mix.pick(&GIVEN)
            )
        };
        let year = 2008 + mix.next() % 18;
        let closed = if mix.next().is_multiple_of(30) {
            let day = chrono::NaiveDate::from_ymd_opt(2008, 1, 1).expect("a day")
                + chrono::Days::new(mix.next() % (17 * 365));
            day.to_string()
        } else {
            String::new()
        };
        let shelf_index = series * shelves_per_series + in_series / PER_SHELF;
        let shelf = shelves
            .get(shelf_index)
            .map(|s| s.to_string())
            .unwrap_or_default();
        line.clear();
        let _ = writeln!(
            line,
            "{company:04}-{category}-{cabinet:03}-{:05},E2801170{:016X},SR{:010},{zh} {customer} {year} ({en}),{shelf},{}{:08},{closed}",
            in_series + 1,
            (room << 40) + i as u64 + 1,
            4_510_000_000u64 + room * 100_000_000 + i as u64,
            category,
            mix.next() % 100_000_000
        );
        out.write_all(line.as_bytes())?;
    }
    Ok(())
}

/// Seeds the demo boxes into an empty database; returns how many it registered. A room
/// whose id ends in a number (`stack-2`) gets that room's seed.
pub async fn seed(locations: &LocationService) -> Result<u64, LocationError> {
    if locations.box_count().await? > 0 {
        return Ok(0);
    }
    let shelves: Vec<ShelfAddress> = locations.config().layout.shelves().collect();
    let mut csv = Vec::new();
    write_room_seed_csv(
        &mut csv,
        &shelves,
        SEED_BOXES,
        room_number(&locations.config().room_id),
    )
    .expect("writing to memory");
    let summary = locations
        .import_csv(std::io::Cursor::new(csv), "demo", "demo seed")
        .await?;
    Ok(summary.boxes)
}

/// The number a room's id ends in (`stack-2` → 2), 1 if none.
pub fn room_number(room: &str) -> u32 {
    let digits = room.len() - room.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    room[room.len() - digits..]
        .parse()
        .ok()
        .filter(|n| (1..=99).contains(n))
        .unwrap_or(1)
}

/// The demo config as room `room` of the demo site (`stack-2`): its own id and name.
pub fn as_room(mut config: crate::config::RoomConfig, room: &str) -> crate::config::RoomConfig {
    if config.room_id == room {
        return config;
    }
    let n = room_number(room);
    let zh = ["一", "二", "三", "四", "五", "六", "七", "八", "九"]
        .get(n as usize - 1)
        .map_or_else(|| n.to_string(), |c| c.to_string());
    config.room_id = room.to_string();
    config.room_name = crate::name::Name::Two(crate::name::Bilingual {
        zh: format!("客户档案{zh}号库房"),
        en: format!("Customer archive, stack room {n}"),
    });
    config
}

/// The demo's admin token: the previous one (named `demo`) is revoked and a new one made,
/// so each start of the demo prints a token that works and only that one.
pub async fn admin_token(
    access: &crate::access::Access,
) -> Result<String, crate::access::AccessError> {
    match access.revoke(DEMO_TOKEN, "demo").await {
        Ok(()) | Err(crate::access::AccessError::NoSuchToken(_)) => {}
        Err(e) => return Err(e),
    }
    let (secret, _) = access
        .create(DEMO_TOKEN, crate::access::Role::Admin, "demo", None)
        .await?;
    Ok(secret)
}

/// The name of the demo's admin token.
pub const DEMO_TOKEN: &str = "demo";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_is_deterministic_and_follows_the_rule() {
        let config = crate::config::RoomConfig::load(&config_path()).unwrap();
        let shelves: Vec<ShelfAddress> = config.layout.shelves().collect();
        let a = seed_csv(&shelves, SEED_BOXES);
        assert_eq!(a, seed_csv(&shelves, SEED_BOXES));
        let rows: Vec<&str> = a.lines().skip(1).collect();
        assert_eq!(rows.len(), SEED_BOXES);
        for row in rows {
            let mut cols = row.split(',');
            let no = cols.next().unwrap();
            assert!(config.archive_rule.check(no).is_ok(), "{no}");
            let shelf = cols.nth(3).unwrap();
            assert!(!shelf.is_empty(), "{no} has a shelf");
        }
    }

    #[test]
    fn other_rooms_of_the_demo_site_hold_other_boxes() {
        let config = crate::config::RoomConfig::load(&config_path()).unwrap();
        assert_eq!(room_number("stack-2"), 2);
        assert_eq!(room_number("archive"), 1);
        let same = as_room(config.clone(), "stack-1");
        assert_eq!(same.room_name, config.room_name);
        let second = as_room(config.clone(), "stack-2");
        assert_eq!(second.room_id, "stack-2");
        let shelves: Vec<ShelfAddress> = config.layout.shelves().collect();
        let mut one = Vec::new();
        write_room_seed_csv(&mut one, &shelves, 120, 1).unwrap();
        let mut two = Vec::new();
        write_room_seed_csv(&mut two, &shelves, 120, 2).unwrap();
        let one = String::from_utf8(one).unwrap();
        let two = String::from_utf8(two).unwrap();
        assert_eq!(one, seed_csv(&shelves, 120), "room 1's seed is the demo's");
        let first: std::collections::HashSet<&str> = one
            .lines()
            .skip(1)
            .flat_map(|l| l.split(',').take(3))
            .collect();
        for row in two.lines().skip(1) {
            let cols: Vec<&str> = row.split(',').take(3).collect();
            assert!(cols[0].starts_with("0461-"), "{row}");
            assert!(config.archive_rule.check(cols[0]).is_ok(), "{row}");
            assert!(
                cols.iter().all(|c| !first.contains(c)),
                "number, tag and barcode differ: {row}"
            );
        }
    }

    #[test]
    fn large_seeds_move_on_to_the_next_company_code() {
        let config = crate::config::RoomConfig::load(&config_path()).unwrap();
        let csv = seed_csv(&[], 130_000);
        let mut seen = std::collections::HashSet::new();
        for row in csv.lines().skip(1) {
            let no = row.split(',').next().unwrap();
            assert!(config.archive_rule.check(no).is_ok(), "{no}");
            assert!(seen.insert(no.to_string()), "{no} twice");
        }
        assert!(seen.contains("0452-H-001-00001"));
    }
}

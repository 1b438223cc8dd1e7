//! Intake (移交): a business office hands over a batch of files; the archive checks it item
//! by item against its list, notes what differs, and accepts it.
//!
//! A batch is listed (office, deliverer, the day the business completed, its items by
//! series), received (the receiver checks each listed item: received, missing or damaged,
//! and notes items that came without being listed), and accepted: in one transaction every
//! item that came is registered under the next number of its series and put on the shelf
//! the suggestion ranks first. The files are due at the archive within five working days of
//! the business's completion (Monday to Friday; public holidays are not known to the
//! controller); a batch not received by then is overdue.

use std::sync::Arc;

use chrono::{DateTime, Datelike, NaiveDate, Utc, Weekday};
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::config::records::parse_date;
use crate::location::{LocationError, LocationService, NewBox, Provenance, Source};
use crate::time::{Clock, SystemClock, wall};

/// Working days the business has to hand its files over.
pub const WORKING_DAYS: u32 = 5;

/// The most items in one batch.
pub const MAX_ITEMS: usize = 5000;

/// An item of a batch, as listed or as found extra.
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferItemIn {
    /// The series the box is numbered in (`0451-H-001`).
    pub series: String,
    pub title: String,
    pub epc: Option<String>,
    pub barcode: Option<String>,
    pub width_mm: Option<u32>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub fields: serde_json::Map<String, serde_json::Value>,
    /// For an item found extra: what was noted.
    #[serde(default)]
    pub note: String,
}

/// A batch to list.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTransfer {
    /// The business office handing over.
    pub office: String,
    /// Who delivers (移交人).
    pub deliverer: String,
    /// The day the business was completed, `YYYY-MM-DD`.
    pub completed_on: String,
    pub items: Vec<TransferItemIn>,
    #[serde(default)]
    pub note: String,
}

/// What the archive found of one listed item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Found {
    Received,
    Missing,
    Damaged,
}

impl Found {
    pub fn as_str(self) -> &'static str {
        match self {
            Found::Received => "received",
            Found::Missing => "missing",
            Found::Damaged => "damaged",
        }
    }
}

/// The check of one listed item.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Check {
    pub line: u32,
    pub found: Found,
    #[serde(default)]
    pub note: String,
}

/// The receipt of a batch: every listed item checked, and what came unlisted.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Receipt {
    /// Who receives (接收人).
    pub receiver: String,
    pub checks: Vec<Check>,
    #[serde(default)]
    pub extra: Vec<TransferItemIn>,
}

/// Where a batch stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TransferState {
    Listed,
    Received,
    Accepted,
}

impl TransferState {
    fn parse(s: &str) -> TransferState {
        match s {
            "received" => TransferState::Received,
            "accepted" => TransferState::Accepted,
            _ => TransferState::Listed,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TransferState::Listed => "listed",
            TransferState::Received => "received",
            TransferState::Accepted => "accepted",
        }
    }
}

/// An item of a batch.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TransferItem {
    pub line: u32,
    pub series: String,
    pub title: String,
    pub epc: Option<String>,
    pub barcode: Option<String>,
    #[schema(value_type = Object)]
    pub fields: serde_json::Value,
    /// It came without being listed.
    pub extra: bool,
    pub found: Option<Found>,
    pub note: String,
    /// Its archive number, once accepted.
    pub archive_no: Option<String>,
}

/// A batch.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Transfer {
    pub id: i64,
    pub office: String,
    pub deliverer: String,
    pub completed_on: String,
    /// Five working days after `completed_on`.
    pub deadline: String,
    pub state: TransferState,
    /// Not received by its deadline.
    pub overdue: bool,
    /// Items missing, damaged or extra.
    pub discrepancies: u32,
    pub listed_by: String,
    pub listed_at: DateTime<Utc>,
    pub receiver: Option<String>,
    pub received_at: Option<DateTime<Utc>>,
    pub accepted_by: Option<String>,
    pub accepted_at: Option<DateTime<Utc>>,
    pub note: String,
    pub items: Vec<TransferItem>,
}

/// A box registered by an acceptance.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Accepted {
    pub line: u32,
    pub archive_no: String,
    /// The shelf it was put on (none free: null).
    pub shelf: Option<String>,
}

/// Why a batch step cannot be taken.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error("no transfer {0}")]
    NotFound(i64),
    #[error("transfer {id} is {}; this needs it {}", .state.as_str(), .wanted.as_str())]
    State {
        id: i64,
        state: TransferState,
        wanted: TransferState,
    },
    #[error(transparent)]
    Location(#[from] LocationError),
}

impl From<crate::store::StoreError> for IntakeError {
    fn from(e: crate::store::StoreError) -> Self {
        IntakeError::Location(e.into())
    }
}

impl From<rusqlite::Error> for IntakeError {
    fn from(e: rusqlite::Error) -> Self {
        IntakeError::Location(e.into())
    }
}

fn invalid(field: &str, message: impl Into<String>) -> IntakeError {
    IntakeError::Location(LocationError::invalid(field, message))
}

/// The items of a batch from CSV with a header: `series` (required), `title`, `epc`,
/// `barcode`, `width_mm`; any other column is a field of the box (an empty cell: none).
/// A line that cannot be read is refused with its number (the header is line 1).
pub fn items_from_csv(input: &[u8]) -> Result<Vec<TransferItemIn>, LocationError> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(input);
    let headers = reader
        .headers()
        .map_err(|e| LocationError::invalid("csv", format!("line 1: {e}")))?
        .clone();
    if !headers.iter().any(|h| h == "series") {
        return Err(LocationError::invalid(
            "csv",
            "line 1: the header needs a 'series' column",
        ));
    }
    let mut items = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let line = i + 2;
        let record =
            record.map_err(|e| LocationError::invalid("csv", format!("line {line}: {e}")))?;
        let mut item = TransferItemIn::default();
        for (name, value) in headers.iter().zip(record.iter()) {
            match name {
                "series" => item.series = value.to_string(),
                "title" => item.title = value.to_string(),
                "epc" => item.epc = (!value.is_empty()).then(|| value.to_string()),
                "barcode" => item.barcode = (!value.is_empty()).then(|| value.to_string()),
                "width_mm" if value.is_empty() => {}
                "width_mm" => {
                    item.width_mm = Some(value.parse().map_err(|_| {
                        LocationError::invalid(
                            "csv",
                            format!("line {line}: width_mm '{value}' is not whole millimetres"),
                        )
                    })?);
                }
                _ if value.is_empty() => {}
                field => {
                    item.fields.insert(field.to_string(), value.into());
                }
            }
        }
        items.push(item);
    }
    Ok(items)
}

/// `days` working days (Monday to Friday) after `from`.
pub fn working_days_after(from: NaiveDate, days: u32) -> NaiveDate {
    let mut day = from;
    let mut left = days;
    while left > 0 {
        day = day.succ_opt().unwrap_or(day);
        if !matches!(day.weekday(), Weekday::Sat | Weekday::Sun) {
            left -= 1;
        }
    }
    day
}

fn name(field: &str, text: &str) -> Result<String, IntakeError> {
    let t = text.trim();
    if t.is_empty() || t.chars().count() > 200 || t.chars().any(char::is_control) {
        return Err(invalid(
            field,
            "must be 1 to 200 characters, without control characters",
        ));
    }
    Ok(t.to_string())
}

/// Intake of transfer batches.
#[derive(Clone)]
pub struct Intake {
    locations: LocationService,
    clock: Arc<dyn Clock>,
}

impl Intake {
    pub fn new(locations: LocationService) -> Intake {
        Intake {
            locations,
            clock: Arc::new(SystemClock),
        }
    }

    pub fn with_clock(self, clock: Arc<dyn Clock>) -> Intake {
        Intake { clock, ..self }
    }

    fn today(&self) -> NaiveDate {
        self.clock.now().date_naive()
    }

    /// Checks an item as its box would be checked, numbered first in its series.
    fn check_item(&self, at: &str, item: &TransferItemIn) -> Result<(), IntakeError> {
        let rule = &self.locations.config().archive_rule;
        let series = item.series.trim();
        let first = rule
            .numbered(series, 1)
            .map_err(|m| invalid(&format!("{at}.series"), m))?;
        self.locations
            .check_box(&NewBox {
                archive_no: first,
                epc: item.epc.clone(),
                barcode: item.barcode.clone(),
                title: item.title.clone(),
                width_mm: item.width_mm,
                fields: item.fields.clone(),
                ..NewBox::default()
            })
            .map_err(|e| match e {
                LocationError::Invalid { field, message } => {
                    invalid(&format!("{at}.{field}"), message)
                }
                e => e.into(),
            })?;
        if item.title.trim().is_empty() {
            return Err(invalid(&format!("{at}.title"), "an item has a title"));
        }
        Ok(())
    }

    fn insert_items(
        conn: &Connection,
        id: i64,
        first_line: u32,
        items: &[TransferItemIn],
        extra: bool,
    ) -> Result<(), IntakeError> {
        let mut insert = conn.prepare_cached(
            "INSERT INTO transfer_items (transfer_id, line, series, title, epc, barcode, width_mm, fields, extra, found, note)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )?;
        for (i, item) in items.iter().enumerate() {
            insert.execute(params![
                id,
                first_line + i as u32,
                item.series.trim(),
                item.title.trim(),
                item.epc.as_deref().map(str::trim).filter(|s| !s.is_empty()),
                item.barcode
                    .as_deref()
                    .map(str::trim)
                    .filter(|s| !s.is_empty()),
                item.width_mm,
                serde_json::Value::Object(item.fields.clone()).to_string(),
                extra,
                extra.then_some("received"),
                item.note.trim(),
            ])?;
        }
        Ok(())
    }

    /// Lists a batch to be received.
    pub async fn list(&self, t: NewTransfer, actor: &str) -> Result<Transfer, IntakeError> {
        let office = name("office", &t.office)?;
        let deliverer = name("deliverer", &t.deliverer)?;
        let completed = parse_date(&t.completed_on).ok_or_else(|| {
            invalid(
                "completed_on",
                format!("'{}' is not a day: YYYY-MM-DD", t.completed_on),
            )
        })?;
        if completed > self.today() {
            return Err(invalid("completed_on", "is after today"));
        }
        if t.items.is_empty() || t.items.len() > MAX_ITEMS {
            return Err(invalid("items", format!("list 1 to {MAX_ITEMS} items")));
        }
        for (i, item) in t.items.iter().enumerate() {
            self.check_item(&format!("items[{i}]"), item)?;
        }
        let deadline = working_days_after(completed, WORKING_DAYS);
        let now = self.clock.now_ms();
        let actor = actor.to_string();
        let id = self
            .locations
            .store()
            .write(move |conn| {
                conn.prepare_cached(
                    "INSERT INTO transfers (office, deliverer, completed_on, deadline, state, listed_by, listed_at, note)
                     VALUES (?1, ?2, ?3, ?4, 'listed', ?5, ?6, ?7)",
                )?
                .execute(params![office, deliverer, completed.to_string(), deadline.to_string(), actor, now, t.note.trim()])?;
                let id = conn.last_insert_rowid();
                Self::insert_items(conn, id, 1, &t.items, false)?;
                Ok::<_, IntakeError>(id)
            })
            .await?;
        self.get(id).await
    }

    /// Records the archive's check of a listed batch: every listed item once.
    pub async fn receive(&self, id: i64, r: Receipt) -> Result<Transfer, IntakeError> {
        let receiver = name("receiver", &r.receiver)?;
        for (i, item) in r.extra.iter().enumerate() {
            self.check_item(&format!("extra[{i}]"), item)?;
        }
        let now = self.clock.now_ms();
        self.locations
            .store()
            .write(move |conn| {
                let state = state_of(conn, id)?;
                if state != TransferState::Listed {
                    return Err(IntakeError::State { id, state, wanted: TransferState::Listed });
                }
                let lines: u32 = conn
                    .prepare_cached("SELECT count(*) FROM transfer_items WHERE transfer_id = ?1")?
                    .query_row([id], |row| row.get(0))?;
                let mut seen = vec![false; lines as usize];
                let mut update = conn.prepare_cached(
                    "UPDATE transfer_items SET found = ?3, note = ?4 WHERE transfer_id = ?1 AND line = ?2",
                )?;
                for (i, c) in r.checks.iter().enumerate() {
                    let slot = c.line.checked_sub(1).and_then(|l| seen.get_mut(l as usize));
                    match slot {
                        Some(s) if !*s => *s = true,
                        Some(_) => return Err(invalid(&format!("checks[{i}].line"), format!("line {} is checked twice", c.line))),
                        None => return Err(invalid(&format!("checks[{i}].line"), format!("the batch lists lines 1 to {lines}"))),
                    }
                    update.execute(params![id, c.line, c.found.as_str(), c.note.trim()])?;
                }
                if let Some(l) = seen.iter().position(|s| !s) {
                    return Err(invalid("checks", format!("line {} is not checked: check every listed item", l + 1)));
                }
                Self::insert_items(conn, id, lines + 1, &r.extra, true)?;
                conn.prepare_cached(
                    "UPDATE transfers SET state = 'received', receiver = ?2, received_at = ?3 WHERE id = ?1",
                )?
                .execute(params![id, receiver, now])?;
                Ok(())
            })
            .await?;
        self.get(id).await
    }

    /// Accepts a received batch: each item that came is registered under the next number
    /// of its series and, with `place`, put on the suggested shelf; all in one transaction.
    pub async fn accept(
        &self,
        id: i64,
        place: bool,
        actor: &str,
    ) -> Result<(Transfer, Vec<Accepted>), IntakeError> {
        let now = self.clock.now_ms();
        let actor = actor.to_string();
        let locations = self.locations.clone();
        let accepted = self
            .locations
            .store()
            .write(move |conn| {
                let state = state_of(conn, id)?;
                if state != TransferState::Received {
                    return Err(IntakeError::State { id, state, wanted: TransferState::Received });
                }
                let items = items_of(conn, id)?;
                let provenance = Provenance {
                    actor: actor.clone(),
                    reason: format!("transfer {id}"),
                    source: Source::Manual,
                    confidence: 1.0,
                };
                let mut accepted = Vec::new();
                let mut numbered = conn.prepare_cached(
                    "UPDATE transfer_items SET archive_no = ?3 WHERE transfer_id = ?1 AND line = ?2",
                )?;
                for item in items.iter().filter(|i| i.found != Some(Found::Missing)) {
                    let new = NewBox {
                        epc: item.epc.clone(),
                        barcode: item.barcode.clone(),
                        title: item.title.clone(),
                        fields: item.fields.as_object().cloned().unwrap_or_default(),
                        ..NewBox::default()
                    };
                    let (archive_no, shelf) = locations
                        .register_numbered_in(conn, new, &item.series, &provenance, place)
                        .map_err(|e| match e {
                            LocationError::Invalid { field, message } => {
                                invalid(&format!("line {}.{field}", item.line), message)
                            }
                            e => e.into(),
                        })?;
                    numbered.execute(params![id, item.line, archive_no])?;
                    accepted.push(Accepted { line: item.line, archive_no, shelf });
                }
                conn.prepare_cached(
                    "UPDATE transfers SET state = 'accepted', accepted_by = ?2, accepted_at = ?3 WHERE id = ?1",
                )?
                .execute(params![id, actor, now])?;
                Ok::<_, IntakeError>(accepted)
            })
            .await?;
        Ok((self.get(id).await?, accepted))
    }

    /// One batch with its items.
    pub async fn get(&self, id: i64) -> Result<Transfer, IntakeError> {
        let today = self.today();
        self.locations
            .store()
            .read(move |conn| transfer(conn, id, today)?.ok_or(IntakeError::NotFound(id)))
            .await
    }

    /// Batches, newest first (at most 500); `overdue`: only those not received by their
    /// deadline.
    pub async fn all(
        &self,
        state: Option<TransferState>,
        overdue: bool,
    ) -> Result<Vec<Transfer>, IntakeError> {
        let today = self.today();
        self.locations
            .store()
            .read(move |conn| {
                let ids: Vec<i64> = conn
                    .prepare_cached(
                        "SELECT id FROM transfers WHERE (?1 IS NULL OR state = ?1)
                         AND (?2 = 0 OR (state = 'listed' AND deadline < ?3)) ORDER BY id DESC LIMIT 500",
                    )?
                    .query_map(params![state.map(TransferState::as_str), overdue, today.to_string()], |r| r.get(0))?
                    .collect::<Result<_, _>>()?;
                let mut out = Vec::new();
                for id in ids {
                    out.extend(transfer(conn, id, today)?);
                }
                Ok(out)
            })
            .await
    }
}

fn state_of(conn: &Connection, id: i64) -> Result<TransferState, IntakeError> {
    conn.prepare_cached("SELECT state FROM transfers WHERE id = ?1")?
        .query_row([id], |r| Ok(TransferState::parse(&r.get::<_, String>(0)?)))
        .optional()?
        .ok_or(IntakeError::NotFound(id))
}

fn items_of(conn: &Connection, id: i64) -> rusqlite::Result<Vec<TransferItem>> {
    conn.prepare_cached(
        "SELECT line, series, title, epc, barcode, fields, extra, found, note, archive_no
         FROM transfer_items WHERE transfer_id = ?1 ORDER BY line",
    )?
    .query_map([id], |r| {
        let fields: String = r.get(5)?;
        let found: Option<String> = r.get(7)?;
        Ok(TransferItem {
            line: r.get(0)?,
            series: r.get(1)?,
            title: r.get(2)?,
            epc: r.get(3)?,
            barcode: r.get(4)?,
            fields: serde_json::from_str(&fields).unwrap_or_default(),
            extra: r.get(6)?,
            found: found.map(|f| match f.as_str() {
                "missing" => Found::Missing,
                "damaged" => Found::Damaged,
                _ => Found::Received,
            }),
            note: r.get(8)?,
            archive_no: r.get(9)?,
        })
    })?
    .collect()
}

fn transfer(conn: &Connection, id: i64, today: NaiveDate) -> rusqlite::Result<Option<Transfer>> {
    let Some(mut t) = conn
        .prepare_cached(
            "SELECT office, deliverer, completed_on, deadline, state, listed_by, listed_at, receiver,
                    received_at, accepted_by, accepted_at, note FROM transfers WHERE id = ?1",
        )?
        .query_row([id], |r| {
            let state = TransferState::parse(&r.get::<_, String>(4)?);
            let deadline: String = r.get(3)?;
            Ok(Transfer {
                id,
                office: r.get(0)?,
                deliverer: r.get(1)?,
                completed_on: r.get(2)?,
                overdue: state == TransferState::Listed && deadline < today.to_string(),
                deadline,
                state,
                discrepancies: 0,
                listed_by: r.get(5)?,
                listed_at: wall(r.get(6)?),
                receiver: r.get(7)?,
                received_at: r.get::<_, Option<i64>>(8)?.map(wall),
                accepted_by: r.get(9)?,
                accepted_at: r.get::<_, Option<i64>>(10)?.map(wall),
                note: r.get(11)?,
                items: Vec::new(),
            })
        })
        .optional()?
    else {
        return Ok(None);
    };
    t.items = items_of(conn, id)?;
    t.discrepancies = t
        .items
        .iter()
        .filter(|i| i.extra || matches!(i.found, Some(Found::Missing | Found::Damaged)))
        .count() as u32;
    Ok(Some(t))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::location::BoxKey;
    use crate::time::ManualClock;

    const EXTRA: &str = r#"
[boxes.fields.customer_no]
search = "exact"
"#;

    async fn setup() -> (tempfile::TempDir, LocationService, Intake) {
        let (dir, locations) = crate::location::test_room(EXTRA).await;
        let clock = ManualClock::at(crate::location::TEST_TODAY_MS);
        let intake = Intake::new(locations.clone()).with_clock(Arc::new(clock));
        (dir, locations, intake)
    }

    fn item(series: &str, title: &str, customer: &str) -> TransferItemIn {
        TransferItemIn {
            series: series.into(),
            title: title.into(),
            fields: serde_json::json!({"customer_no": customer})
                .as_object()
                .unwrap()
                .clone(),
            ..TransferItemIn::default()
        }
    }

    #[tokio::test]
    async fn a_batch_is_checked_item_by_item_and_its_boxes_numbered_and_shelved() {
        let (_dir, locations, intake) = setup().await;
        // A box registered by hand before: the series goes on after it.
        locations
            .register(
                NewBox {
                    archive_no: "L-007".into(),
                    ..NewBox::default()
                },
                "t",
            )
            .await
            .unwrap();
        let t = intake
            .list(
                NewTransfer {
                    office: "天河营业厅".into(),
                    deliverer: "王芳".into(),
                    completed_on: "2026-11-20".into(),
                    items: vec![
                        item("L", "销户资料 张三", "L0001"),
                        item("L", "销户资料 李四", "L0002"),
                        item("H", "新装资料 白云电器", "H0001"),
                    ],
                    note: String::new(),
                },
                "desk",
            )
            .await
            .unwrap();
        assert_eq!(
            (t.state, t.deadline.as_str(), t.overdue),
            (TransferState::Listed, "2026-11-27", true)
        );
        assert!(matches!(
            intake.accept(t.id, true, "desk").await,
            Err(IntakeError::State { .. })
        ));
        let missing_line = intake
            .receive(
                t.id,
                Receipt {
                    receiver: "档案室 陈".into(),
                    checks: vec![Check {
                        line: 1,
                        found: Found::Received,
                        note: String::new(),
                    }],
                    extra: vec![],
                },
            )
            .await;
        assert!(
            matches!(missing_line, Err(IntakeError::Location(LocationError::Invalid { field, .. })) if field == "checks")
        );
        let received = intake
            .receive(
                t.id,
                Receipt {
                    receiver: "档案室 陈".into(),
                    checks: vec![
                        Check {
                            line: 1,
                            found: Found::Received,
                            note: String::new(),
                        },
                        Check {
                            line: 2,
                            found: Found::Missing,
                            note: "营业厅未找到".into(),
                        },
                        Check {
                            line: 3,
                            found: Found::Received,
                            note: String::new(),
                        },
                    ],
                    extra: vec![TransferItemIn {
                        note: "清单外".into(),
                        ..item("L", "补充资料 王五", "L0003")
                    }],
                },
            )
            .await
            .unwrap();
        assert_eq!(
            (received.state, received.discrepancies, received.items.len()),
            (TransferState::Received, 2, 4)
        );
        assert!(!received.overdue, "received: no longer overdue");
        let (accepted, boxes) = intake.accept(received.id, true, "chen").await.unwrap();
        assert_eq!(accepted.state, TransferState::Accepted);
        let numbers: Vec<(u32, &str)> = boxes
            .iter()
            .map(|b| (b.line, b.archive_no.as_str()))
            .collect();
        assert_eq!(
            numbers,
            [(1, "L-008"), (3, "H-001"), (4, "L-009")],
            "the missing item gets no number"
        );
        assert!(boxes.iter().all(|b| b.shelf.is_some()));
        let at = locations
            .locate(BoxKey::ArchiveNo("L-009".into()))
            .await
            .unwrap();
        assert_eq!(Some(at.shelf.address), boxes[2].shelf.clone());
        assert_eq!(
            locations.search("L0003", 5).await.unwrap()[0].archive_no,
            "L-009"
        );
        assert!(
            matches!(
                intake.accept(t.id, true, "chen").await,
                Err(IntakeError::State { .. })
            ),
            "once"
        );
        let overdue = intake.all(None, true).await.unwrap();
        assert!(overdue.is_empty());
    }

    #[tokio::test]
    async fn numbers_are_given_without_gaps_or_repeats_under_concurrent_requests() {
        let (_dir, locations, _intake) = setup().await;
        let mut tasks = Vec::new();
        for i in 0..40 {
            let l = locations.clone();
            tasks.push(tokio::spawn(async move {
                l.register(
                    NewBox {
                        series: Some("H".into()),
                        title: format!("box {i}"),
                        ..NewBox::default()
                    },
                    "t",
                )
                .await
                .unwrap()
                .archive_no
            }));
        }
        let mut numbers = Vec::new();
        for t in tasks {
            numbers.push(t.await.unwrap());
        }
        numbers.sort();
        let expected: Vec<String> = (1..=40).map(|n| format!("H-{n:03}")).collect();
        assert_eq!(numbers, expected);
        assert_eq!(locations.next_number("H").await.unwrap(), "H-041");
        // A series the rule cannot number is refused.
        let bad = locations
            .register(
                NewBox {
                    series: Some("X".into()),
                    ..NewBox::default()
                },
                "t",
            )
            .await;
        assert!(matches!(bad, Err(LocationError::Invalid { field, .. }) if field == "series"));
    }

    #[test]
    fn the_deadline_is_five_working_days_on() {
        let day = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        // Tuesday 2026-12-01: the next Tuesday.
        assert_eq!(working_days_after(day("2026-12-01"), 5), day("2026-12-08"));
        // Friday: the Friday after.
        assert_eq!(working_days_after(day("2026-12-04"), 5), day("2026-12-11"));
        // Saturday: the next Friday.
        assert_eq!(working_days_after(day("2026-12-05"), 5), day("2026-12-11"));
    }
}

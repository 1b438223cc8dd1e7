//! The location service: which box is on which shelf, since when, on whose word.
//!
//! It owns the boxes, the bindings (box → shelf) and their history. Every change of a
//! binding writes an event to `binding_events`, which the database keeps append-only, so
//! the archive can say where a box was on any day. Writes go through the store's single
//! writer; reads run on pooled read connections.

mod edit;
mod feed;
mod import;
mod numbering;
mod places;
mod search;
mod words;

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use edit::{Change, Changes, Correction, FieldQuery};
pub use feed::{FEED_PAGE_MAX, Feed, FeedEntry};
pub use places::{PlaceEvent, PlaceRef, placed_epcs};
pub use search::{Found, Narrow, Page, typing_query};
use search::{Hits, Sources};
/// What the title index holds for a box, and the words of it a typed prefix may expand
/// into (for the import benchmark's baseline, which loads the same index).
pub use words::{index_text, match_query, vocabulary};

use crate::config::RoomConfig;
use crate::config::records::{FieldValue, Fields, SearchBy};
use crate::layout::{Capacity, NoSuchShelf};
use crate::loans::LoanRef;
use crate::name::Name;
use crate::shelf::{AddressError, AisleRef, Face, ShelfAddress};
use crate::store::text::{Named, day};
use crate::store::{Store, StoreError};
use crate::time::{now_ms, wall};

pub use import::{ImportSummary, RowError};

/// What the caller asked for cannot be done, and why.
#[derive(Debug, thiserror::Error)]
pub enum LocationError {
    #[error("no box has archive number '{0}'")]
    UnknownBox(String),
    #[error("no box has {key} '{value}'")]
    NoMatch { key: &'static str, value: String },
    #[error("box '{0}' is registered but not on any shelf")]
    NotOnShelf(String),
    #[error("box '{archive_no}' is in {place}, and has no home shelf")]
    InPlace { archive_no: String, place: Name },
    #[error(
        "box '{archive_no}' was destroyed on {on} (disposal {disposal}); its record and history are kept"
    )]
    Disposed {
        archive_no: String,
        disposal: i64,
        on: String,
    },
    #[error(transparent)]
    BadAddress(#[from] AddressError),
    #[error(transparent)]
    NoSuchShelf(#[from] NoSuchShelf),
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    #[error("a box with {field} '{value}' already exists")]
    Duplicate { field: &'static str, value: String },
    #[error("shelf {shelf} is full: it holds {used} of {capacity}")]
    ShelfFull {
        shelf: ShelfAddress,
        used: String,
        capacity: String,
    },
    #[error("the import was rejected whole: {} row(s) have errors", .0.len())]
    Import(Vec<RowError>),
    #[error("the moves were rejected whole: {} move(s) have errors", .0.len())]
    Moves(Vec<MoveError>),
    #[error("the layout in the config drops shelves that hold boxes: {0}")]
    LayoutConflict(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for LocationError {
    fn from(e: rusqlite::Error) -> Self {
        LocationError::Store(StoreError::Sqlite(e))
    }
}

impl LocationError {
    pub(crate) fn invalid(field: &str, message: impl Into<String>) -> Self {
        LocationError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// One item of a bulk move that cannot be done.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MoveError {
    /// Index of the move in the request, from 0.
    pub index: usize,
    pub archive_no: String,
    pub message: String,
}

/// On whose word a binding stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Entered by a person.
    Manual,
    /// Loaded from a CSV import.
    Import,
    /// Decided by an inventory sweep.
    Sweep,
    /// Decided from live reads.
    LiveRead,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Manual => "manual",
            Source::Import => "import",
            Source::Sweep => "sweep",
            Source::LiveRead => "live_read",
        }
    }
}

impl Named for Source {
    const ALL: &'static [Self] = &[
        Source::Manual,
        Source::Import,
        Source::Sweep,
        Source::LiveRead,
    ];
    fn name(self) -> &'static str {
        self.as_str()
    }
}
crate::text_column!(Source);

/// A shelf as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ShelfView {
    /// Canonical address, e.g. `R2-C5-L-S3-L4`.
    pub address: String,
    pub range: u16,
    pub carriage: u16,
    pub face: Face,
    pub section: u16,
    pub level: u16,
    /// The address in words, in the room's language.
    pub words: String,
}

/// Where a box is.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Location {
    pub archive_no: String,
    /// `on_shelf`; `on_loan`: then `shelf` is its home shelf and `loan` says to whom;
    /// `in_place`: in a place off the shelving (`place`), `shelf` its home shelf;
    /// `left_without_loan`: it went out through the door gate with no loan; `lost`: lost on
    /// a loan (settled so by an archivist), `shelf` its home shelf.
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loan: Option<LoanRef>,
    /// `in_place`: the place it is in (a safe, the reading room); `shelf` is its home shelf.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub place: Option<PlaceRef>,
    pub shelf: ShelfView,
    /// The aisle to open to reach the shelf.
    pub aisle: AisleRef,
    pub source: Source,
    /// How sure the source is, 0 to 1.
    pub confidence: f64,
    pub since: DateTime<Utc>,
    pub last_seen: Option<DateTime<Utc>>,
}

/// A registered box.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BoxView {
    pub archive_no: String,
    pub epc: Option<String>,
    pub barcode: Option<String>,
    pub title: String,
    pub width_mm: Option<u32>,
    /// Free descriptive fields.
    #[schema(value_type = Object)]
    pub fields: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub location: Option<Location>,
    /// The place off the shelving it is in, if it is in one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub place: Option<PlaceRef>,
    /// Set once the box was destroyed: its record stays, off every shelf.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disposed: Option<DisposedRef>,
}

/// The disposal that destroyed a box.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DisposedRef {
    pub disposal: i64,
    pub at: DateTime<Utc>,
}

/// A box to register.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewBox {
    /// Empty: the next number of `series` is given.
    #[serde(default)]
    pub archive_no: String,
    /// The series to number the box in (`0451-H-001`), when `archive_no` is not given.
    pub series: Option<String>,
    /// The tag's EPC in hex (4 to 124 hex digits, whole 16-bit words).
    pub epc: Option<String>,
    pub barcode: Option<String>,
    #[serde(default)]
    pub title: String,
    pub width_mm: Option<u32>,
    /// Free descriptive fields: an object of strings, numbers or booleans.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub fields: serde_json::Map<String, serde_json::Value>,
    /// Bind the new box to this shelf at once.
    pub shelf: Option<String>,
    /// Why (recorded with the binding).
    #[serde(default)]
    pub reason: String,
}

/// How to find a box.
#[derive(Debug, Clone)]
pub enum BoxKey {
    ArchiveNo(String),
    Epc(String),
    Barcode(String),
}

/// One change of a box's binding.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HistoryEvent {
    /// `bind`, `move` or `unbind`.
    pub kind: String,
    pub from: Option<String>,
    pub to: Option<String>,
    pub source: Source,
    pub confidence: f64,
    pub actor: String,
    pub reason: String,
    pub at: DateTime<Utc>,
}

/// The binding history of a box.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct History {
    pub archive_no: String,
    pub events: Vec<HistoryEvent>,
    /// Moves into and out of places off the shelving (a safe), oldest first.
    pub places: Vec<PlaceEvent>,
    /// The moment asked about, if any.
    pub at: Option<DateTime<Utc>>,
    /// Where the box was at `at` (null: not on a shelf then).
    pub shelf_at: Option<String>,
}

/// The boxes on one shelf.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OnShelf {
    pub shelf: ShelfView,
    /// The aisle it is reached through.
    pub aisle: AisleRef,
    pub items: Vec<Neighbour>,
}

/// A box on a shelf, as its neighbours see it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Neighbour {
    pub archive_no: String,
    pub title: String,
}

/// A free shelf proposed for a box.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Suggestion {
    pub shelf: ShelfView,
    pub aisle: AisleRef,
    /// Room left: boxes, or millimetres for shelves measured in millimetres.
    pub free: u32,
    pub unit: String,
    pub reason: String,
}

/// A shelf with its fill.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ShelfFill {
    pub shelf: ShelfView,
    pub aisle: AisleRef,
    pub capacity: u32,
    pub unit: String,
    pub used: u32,
    pub boxes: u32,
}

/// One move of a bulk move.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Move {
    pub archive_no: String,
    pub shelf: String,
}

#[derive(Debug, Clone, Copy)]
struct ShelfEntry {
    id: i64,
    ordinal: u32,
    capacity: Capacity,
}

/// The room's shelves, from the config, with their database ids.
struct Shelves {
    by_address: HashMap<ShelfAddress, ShelfEntry>,
    by_id: HashMap<i64, ShelfAddress>,
    /// Shelf addresses in fill order.
    ordered: Vec<ShelfAddress>,
}

/// Actor, reason and source of a change.
#[derive(Debug, Clone)]
pub struct Provenance {
    pub actor: String,
    pub reason: String,
    pub source: Source,
    pub confidence: f64,
}

impl Provenance {
    pub fn manual(actor: &str, reason: &str) -> Provenance {
        Provenance {
            actor: actor.into(),
            reason: reason.into(),
            source: Source::Manual,
            confidence: 1.0,
        }
    }
}

/// The location service; cheap to clone.
#[derive(Clone)]
pub struct LocationService {
    store: Store,
    config: Arc<RoomConfig>,
    shelves: Arc<Shelves>,
}

/// A binding's columns as a query returns them (all null for a box on no shelf).
struct BindingColumns {
    source: Option<Source>,
    confidence: Option<f64>,
    since: Option<i64>,
    last_seen: Option<i64>,
}

/// The joins that give a box's loan while it is out (`ol`, a row of `loans`), its gate
/// flag (`fl`) and the place off the shelving it is in (`bp`). The loan is found through a correlated lookup by the box (the `loan_boxes`
/// index), not a join of the `boxes_out` view: SQLite cannot flatten a view that is a join
/// on the right of a LEFT JOIN, and would build the whole view on every call.
macro_rules! circulation {
    () => {
        "LEFT JOIN loans ol ON ol.id = (SELECT loan_id FROM boxes_out WHERE box_id = x.id)
         LEFT JOIN box_flags fl ON fl.box_id = x.id
         LEFT JOIN box_places bp ON bp.box_id = x.id"
    };
}

/// Where a box is when not simply on its shelf: out on a loan, flagged by the gate, in a
/// place off the shelving.
struct Away {
    loan: Option<LoanRef>,
    flag: Option<String>,
    place: Option<PlaceRef>,
}

/// The open loan in columns `at..at + 4` (id, borrower, due, checked out at), if any.
fn loan_ref(r: &rusqlite::Row, at: usize) -> rusqlite::Result<Option<LoanRef>> {
    let Some(id) = r.get::<_, Option<i64>>(at)? else {
        return Ok(None);
    };
    Ok(Some(LoanRef {
        id,
        borrower: r.get(at + 1)?,
        due: day(r, at + 2)?,
        since: r.get::<_, Option<i64>>(at + 3)?.map(wall),
    }))
}

fn unit(capacity: Capacity) -> (u32, &'static str) {
    match capacity {
        Capacity::Boxes(n) => (n, "boxes"),
        Capacity::Mm(n) => (n, "mm"),
    }
}

/// Checks an EPC and returns it in canonical upper-case hex.
pub fn check_epc(epc: &str) -> Result<String, String> {
    let epc = epc.trim();
    if !epc.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("'{epc}' is not hexadecimal"));
    }
    if epc.len() < 4 || epc.len() > 124 || !epc.len().is_multiple_of(4) {
        return Err(format!(
            "'{epc}' has {} hex digits; an EPC is whole 16-bit words, 4 to 124 digits (96-bit EPCs have 24)",
            epc.len()
        ));
    }
    Ok(epc.to_ascii_uppercase())
}

fn check_barcode(code: &str) -> Result<String, String> {
    let code = code.trim();
    if code.is_empty() || code.len() > 64 || code.chars().any(|c| c.is_control()) {
        return Err(format!("'{code}' must be 1 to 64 printable characters"));
    }
    Ok(code.to_string())
}

/// Descriptive fields as kept, and the declared ones' values.
pub(crate) type FieldsChecked = (
    serde_json::Map<String, serde_json::Value>,
    Vec<(String, FieldValue)>,
);

/// A box to insert, after validation.
pub(crate) struct CheckedBox {
    pub archive_no: String,
    pub series: String,
    pub epc: Option<String>,
    pub barcode: Option<String>,
    pub title: String,
    pub width_mm: Option<u32>,
    pub fields: String,
    /// The declared fields' values, for lookups by value and range.
    pub values: Vec<(String, FieldValue)>,
}

impl CheckedBox {
    /// The text of the title index: title, number, barcode and the fields searched by words.
    fn index_text(&self, fields: &Fields) -> String {
        let searched = self.values.iter().filter_map(|(key, value)| match value {
            FieldValue::Text(t) if fields.get(key).is_some_and(|f| f.search == SearchBy::Words) => {
                Some(t.as_str())
            }
            _ => None,
        });
        words::index_text(
            [
                self.title.as_str(),
                &self.archive_no,
                self.barcode.as_deref().unwrap_or(""),
            ]
            .into_iter()
            .chain(searched),
        )
    }
}

impl LocationService {
    /// Opens the store and brings its shelves in line with the config's layout.
    pub async fn open(
        config: Arc<RoomConfig>,
        store: Store,
    ) -> Result<LocationService, LocationError> {
        let mut rows: Vec<(ShelfAddress, u32, Capacity)> =
            Vec::with_capacity(config.layout.shelf_count());
        for range in &config.layout.ranges {
            for shelf in range.shelves() {
                rows.push((shelf, rows.len() as u32, range.capacity));
            }
        }
        let ordered: Vec<ShelfAddress> = rows.iter().map(|r| r.0).collect();
        let ids: Vec<i64> = store
            .write(move |conn| {
                conn.execute("UPDATE shelves SET in_layout = 0", [])?;
                let mut upsert = conn.prepare(
                    "INSERT INTO shelves (address, range_id, carriage, face, section, level, ordinal, capacity_kind, capacity, in_layout)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 1)
                     ON CONFLICT (address) DO UPDATE SET ordinal = excluded.ordinal,
                        capacity_kind = excluded.capacity_kind, capacity = excluded.capacity, in_layout = 1
                     RETURNING id",
                )?;
                let mut ids = Vec::with_capacity(rows.len());
                for (shelf, ordinal, capacity) in &rows {
                    let (amount, kind) = unit(*capacity);
                    ids.push(upsert.query_row(
                        params![
                            shelf.to_string(),
                            shelf.range,
                            shelf.carriage,
                            shelf.face.as_str(),
                            shelf.section,
                            shelf.level,
                            ordinal,
                            kind,
                            amount
                        ],
                        |r| r.get(0),
                    )?);
                }
                let mut orphans = conn.prepare(
                    "SELECT s.address, COUNT(*) FROM bindings b JOIN shelves s ON s.id = b.shelf_id
                     WHERE s.in_layout = 0 GROUP BY s.address ORDER BY s.address LIMIT 20",
                )?;
                let orphans: Vec<String> = orphans
                    .query_map([], |r| {
                        Ok(format!("{} ({} boxes)", r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
                    })?
                    .collect::<Result<_, _>>()?;
                if !orphans.is_empty() {
                    return Err(LocationError::LayoutConflict(format!(
                        "{}; move those boxes first or restore the shelves",
                        orphans.join(", ")
                    )));
                }
                Ok(ids)
            })
            .await?;
        let mut by_address = HashMap::with_capacity(ids.len());
        let mut by_id = HashMap::with_capacity(ids.len());
        let mut ordinal = 0;
        for range in &config.layout.ranges {
            for shelf in range.shelves() {
                let id = ids[ordinal as usize];
                by_address.insert(
                    shelf,
                    ShelfEntry {
                        id,
                        ordinal,
                        capacity: range.capacity,
                    },
                );
                by_id.insert(id, shelf);
                ordinal += 1;
            }
        }
        Ok(LocationService {
            store,
            config,
            shelves: Arc::new(Shelves {
                by_address,
                by_id,
                ordered,
            }),
        })
    }

    pub fn config(&self) -> &Arc<RoomConfig> {
        &self.config
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    fn shelf_view(config: &RoomConfig, shelf: &ShelfAddress) -> ShelfView {
        ShelfView {
            address: shelf.to_string(),
            range: shelf.range,
            carriage: shelf.carriage,
            face: shelf.face,
            section: shelf.section,
            level: shelf.level,
            words: shelf.human(config.language),
        }
    }

    /// Parses an address and checks that it is a shelf of this room.
    pub fn shelf(&self, text: &str) -> Result<ShelfAddress, LocationError> {
        let shelf: ShelfAddress = text.parse()?;
        self.config.layout.check(&shelf)?;
        Ok(shelf)
    }

    fn entry(&self, shelf: &ShelfAddress) -> Result<ShelfEntry, LocationError> {
        self.config.layout.check(shelf)?;
        self.shelves
            .by_address
            .get(shelf)
            .copied()
            .ok_or_else(|| NoSuchShelf::Range(shelf.range).into())
    }

    pub(crate) fn check_box(&self, new: &NewBox) -> Result<CheckedBox, LocationError> {
        let archive_no = new.archive_no.trim().to_string();
        let series = self
            .config
            .archive_rule
            .check(&archive_no)
            .map_err(|e| LocationError::invalid("archive_no", e.to_string()))?;
        let epc = match new.epc.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(epc) => Some(check_epc(epc).map_err(|m| LocationError::invalid("epc", m))?),
        };
        let barcode = match new.barcode.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(code) => {
                Some(check_barcode(code).map_err(|m| LocationError::invalid("barcode", m))?)
            }
        };
        if new.title.chars().count() > 1000 || new.title.chars().any(char::is_control) {
            return Err(LocationError::invalid(
                "title",
                "must be at most 1000 characters, without control characters",
            ));
        }
        if new.width_mm == Some(0) {
            return Err(LocationError::invalid("width_mm", "must be at least 1"));
        }
        let (fields, values) = self.check_fields(&new.fields)?;
        Ok(CheckedBox {
            archive_no,
            series,
            epc,
            barcode,
            title: new.title.trim().to_string(),
            width_mm: new.width_mm,
            fields: serde_json::Value::Object(fields).to_string(),
            values,
        })
    }

    /// Checks a box's descriptive fields: the declared ones by their type (and kept in
    /// their canonical form), `retention` against the classes, the rest as free fields.
    /// Empty and null values are left out.
    pub(crate) fn check_fields(
        &self,
        given: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<FieldsChecked, LocationError> {
        let mut kept = serde_json::Map::new();
        let mut values = Vec::new();
        for (key, value) in given {
            let field = format!("fields.{key}");
            if key == "retention" {
                match value {
                    serde_json::Value::Null => {}
                    serde_json::Value::String(c) if c.trim().is_empty() => {}
                    serde_json::Value::String(c)
                        if self.config.retention.classes.contains_key(c.trim()) =>
                    {
                        kept.insert(key.clone(), c.trim().into());
                    }
                    other => {
                        let known: Vec<&str> = self
                            .config
                            .retention
                            .classes
                            .keys()
                            .map(String::as_str)
                            .collect();
                        return Err(LocationError::invalid(
                            &field,
                            format!(
                                "{other} is not a retention class of [retention]: {}",
                                known.join(", ")
                            ),
                        ));
                    }
                }
                continue;
            }
            if let Some(def) = self.config.fields.get(key) {
                if let Some(v) = def
                    .check(value)
                    .map_err(|m| LocationError::invalid(&field, m))?
                {
                    kept.insert(key.clone(), v.json());
                    values.push((key.clone(), v));
                }
                continue;
            }
            match value {
                serde_json::Value::Object(_) | serde_json::Value::Array(_) => {
                    return Err(LocationError::invalid(
                        &field,
                        "must be a string, number, boolean or null",
                    ));
                }
                serde_json::Value::Null => {}
                serde_json::Value::String(t) if t.is_empty() => {}
                v => {
                    kept.insert(key.clone(), v.clone());
                }
            }
        }
        Ok((kept, values))
    }

    /// Registers a new box, and binds it if the request names a shelf.
    pub async fn register(&self, new: NewBox, actor: &str) -> Result<BoxView, LocationError> {
        // A box to be numbered is checked with its number, in the transaction that takes it.
        let number = if !new.archive_no.trim().is_empty() {
            Ok(self.check_box(&new)?)
        } else {
            match new.series.as_deref().map(str::trim) {
                Some(series) if !series.is_empty() => Err(series.to_string()),
                _ => {
                    return Err(LocationError::invalid(
                        "archive_no",
                        "give the archive number, or the series to number the box in",
                    ));
                }
            }
        };
        let target = match new.shelf.as_deref() {
            Some(text) => Some(self.shelf(text)?),
            None => None,
        };
        let this = self.clone();
        let provenance = Provenance::manual(
            actor,
            if new.reason.is_empty() {
                "registered"
            } else {
                &new.reason
            },
        );
        let archive_no = self
            .store
            .write(move |conn| {
                let checked = match number {
                    Ok(checked) => checked,
                    Err(series) => this.check_box(&NewBox {
                        archive_no: this.take_number(conn, &series)?,
                        ..new
                    })?,
                };
                let now = now_ms();
                let mut words = Gathered::default();
                insert_box(conn, &this.config.fields, &checked, now, &mut words)?;
                words.write(conn)?;
                if let Some(shelf) = target {
                    this.bind_in(conn, &checked.archive_no, &shelf, &provenance, now, true)?;
                }
                Ok::<_, LocationError>(checked.archive_no)
            })
            .await?;
        self.get_box(&archive_no).await
    }

    /// Binds a box to a shelf (or moves it there). Binding a box to the shelf it is on
    /// changes nothing and records nothing.
    pub async fn bind(
        &self,
        archive_no: &str,
        shelf: &str,
        provenance: Provenance,
    ) -> Result<Location, LocationError> {
        let shelf = self.shelf(shelf)?;
        let this = self.clone();
        let archive_no = archive_no.to_string();
        self.store
            .write(move |conn| this.bind_in(conn, &archive_no, &shelf, &provenance, now_ms(), true))
            .await
    }

    /// Binds within a write transaction; `check_capacity` refuses a full shelf.
    pub(crate) fn bind_in(
        &self,
        conn: &Connection,
        archive_no: &str,
        shelf: &ShelfAddress,
        provenance: &Provenance,
        now: i64,
        check_capacity: bool,
    ) -> Result<Location, LocationError> {
        let entry = self.entry(shelf)?;
        let (box_id, width): (i64, Option<u32>) = conn
            .prepare_cached("SELECT id, width_mm FROM boxes WHERE archive_no = ?1")?
            .query_row([archive_no], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?
            .ok_or_else(|| LocationError::UnknownBox(archive_no.to_string()))?;
        self.refuse_disposed(conn, box_id, archive_no)?;
        let current: Option<i64> = conn
            .prepare_cached("SELECT shelf_id FROM bindings WHERE box_id = ?1")?
            .query_row([box_id], |r| r.get(0))
            .optional()?;
        if current != Some(entry.id) {
            if check_capacity {
                self.check_room(conn, shelf, &entry, width)?;
            }
            conn.prepare_cached(
                "INSERT INTO bindings (box_id, shelf_id, source, confidence, since, last_seen)
                 VALUES (?1, ?2, ?3, ?4, ?5, NULL)
                 ON CONFLICT (box_id) DO UPDATE SET shelf_id = excluded.shelf_id, source = excluded.source,
                    confidence = excluded.confidence, since = excluded.since, last_seen = NULL",
            )?
            .execute(params![
                box_id,
                entry.id,
                provenance.source.as_str(),
                provenance.confidence,
                now
            ])?;
            let from = current
                .and_then(|id| self.shelves.by_id.get(&id))
                .map(|s| s.to_string());
            record_event(
                conn,
                box_id,
                if current.is_some() { "move" } else { "bind" },
                from.as_deref(),
                Some(&shelf.to_string()),
                provenance,
                now,
            )?;
        }
        self.location_of(conn, &BoxKey::ArchiveNo(archive_no.to_string()))
    }

    fn check_room(
        &self,
        conn: &Connection,
        shelf: &ShelfAddress,
        entry: &ShelfEntry,
        width: Option<u32>,
    ) -> Result<(), LocationError> {
        let (count, mm) = self.fill(conn, entry.id)?;
        let (capacity, unit) = unit(entry.capacity);
        let (used, need) = match entry.capacity {
            Capacity::Boxes(_) => (count, 1),
            Capacity::Mm(_) => (mm, width.unwrap_or(self.config.default_box_width_mm)),
        };
        if used + need > capacity {
            return Err(LocationError::ShelfFull {
                shelf: *shelf,
                used: format!("{used} {unit}"),
                capacity: format!("{capacity} {unit}"),
            });
        }
        Ok(())
    }

    /// Boxes on a shelf and the millimetres they take.
    fn fill(&self, conn: &Connection, shelf_id: i64) -> Result<(u32, u32), LocationError> {
        Ok(conn
            .prepare_cached(
                "SELECT COUNT(*), COALESCE(SUM(COALESCE(x.width_mm, ?2)), 0)
                 FROM bindings b JOIN boxes x ON x.id = b.box_id WHERE b.shelf_id = ?1",
            )?
            .query_row(params![shelf_id, self.config.default_box_width_mm], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?)
    }

    /// Takes a box off its shelf (it stays registered).
    pub async fn unbind(
        &self,
        archive_no: &str,
        provenance: Provenance,
    ) -> Result<(), LocationError> {
        let this = self.clone();
        let archive_no = archive_no.to_string();
        self.store
            .write(move |conn| {
                let box_id = box_id(conn, &archive_no)?;
                let shelf_id: i64 = conn
                    .query_row(
                        "DELETE FROM bindings WHERE box_id = ?1 RETURNING shelf_id",
                        [box_id],
                        |r| r.get(0),
                    )
                    .optional()?
                    .ok_or_else(|| LocationError::NotOnShelf(archive_no.clone()))?;
                let from = this.shelves.by_id.get(&shelf_id).map(|s| s.to_string());
                record_event(
                    conn,
                    box_id,
                    "unbind",
                    from.as_deref(),
                    None,
                    &provenance,
                    now_ms(),
                )?;
                Ok(())
            })
            .await
    }

    /// Moves many boxes at once: all or none, each move recorded.
    pub async fn move_many(
        &self,
        moves: Vec<Move>,
        provenance: Provenance,
    ) -> Result<Vec<Location>, LocationError> {
        if moves.is_empty() {
            return Err(LocationError::invalid("moves", "lists no moves"));
        }
        let mut errors = Vec::new();
        let mut targets = Vec::with_capacity(moves.len());
        let mut seen = HashMap::new();
        for (index, m) in moves.iter().enumerate() {
            if let Some(first) = seen.insert(m.archive_no.clone(), index) {
                errors.push(MoveError {
                    index,
                    archive_no: m.archive_no.clone(),
                    message: format!("the box is also moved by move {first}"),
                });
            }
            match self.shelf(&m.shelf) {
                Ok(shelf) => targets.push(shelf),
                Err(e) => errors.push(MoveError {
                    index,
                    archive_no: m.archive_no.clone(),
                    message: e.to_string(),
                }),
            }
        }
        if !errors.is_empty() {
            return Err(LocationError::Moves(errors));
        }
        let this = self.clone();
        self.store
            .write(move |conn| {
                let now = now_ms();
                let mut errors = Vec::new();
                let mut done = Vec::with_capacity(moves.len());
                for (index, (m, shelf)) in moves.iter().zip(&targets).enumerate() {
                    match this.bind_in(conn, &m.archive_no, shelf, &provenance, now, false) {
                        Ok(location) => done.push(location),
                        Err(e) => errors.push(MoveError {
                            index,
                            archive_no: m.archive_no.clone(),
                            message: e.to_string(),
                        }),
                    }
                }
                // Capacity is judged after all moves: boxes leaving a shelf make room.
                let mut checked = std::collections::HashSet::new();
                for (index, (m, shelf)) in moves.iter().zip(&targets).enumerate() {
                    if !checked.insert(*shelf) {
                        continue;
                    }
                    let entry = this.entry(shelf)?;
                    let (count, mm) = this.fill(conn, entry.id)?;
                    let (capacity, unit) = unit(entry.capacity);
                    let used = if unit == "boxes" { count } else { mm };
                    if used > capacity {
                        errors.push(MoveError {
                            index,
                            archive_no: m.archive_no.clone(),
                            message: format!(
                                "shelf {shelf} would hold {used} {unit}, more than its capacity of {capacity} {unit}"
                            ),
                        });
                    }
                }
                if errors.is_empty() {
                    Ok(done)
                } else {
                    Err(LocationError::Moves(errors))
                }
            })
            .await
    }

    /// Where a box is. A few indexed lookups: answered on this thread (`Store::read_now`).
    pub async fn locate(&self, key: BoxKey) -> Result<Location, LocationError> {
        let this = self.clone();
        self.store
            .read_now(move |conn| this.location_of(conn, &key))
            .await
    }

    /// Where a box is, on this thread (benchmarks, tools).
    pub fn locate_blocking(&self, key: &BoxKey) -> Result<Location, LocationError> {
        self.store.read_blocking(|conn| self.location_of(conn, key))
    }

    fn location_of(&self, conn: &Connection, key: &BoxKey) -> Result<Location, LocationError> {
        // The statement for each key, written out once: this runs on every locate.
        macro_rules! by {
            ($column:literal) => {
                concat!(
                    "SELECT x.archive_no, b.shelf_id, b.source, b.confidence, b.since, b.last_seen,
                         ol.id, ol.borrower, ol.due, ol.checked_out_at, fl.state, bp.place, bp.since
                     FROM boxes x LEFT JOIN bindings b ON b.box_id = x.id ",
                    circulation!(),
                    " WHERE x.",
                    $column,
                    " = ?1"
                )
            };
        }
        let (sql, value, name) = match key {
            BoxKey::ArchiveNo(v) => {
                let v = self
                    .config
                    .archive_rule
                    .normalise(v)
                    .unwrap_or_else(|| v.clone());
                (by!("archive_no"), v, "archive number")
            }
            BoxKey::Epc(v) => (by!("epc"), v.trim().to_ascii_uppercase(), "EPC"),
            BoxKey::Barcode(v) => (by!("barcode"), v.clone(), "barcode"),
        };
        type Row = (
            String,
            Option<i64>,
            Option<Source>,
            Option<f64>,
            Option<i64>,
            Option<i64>,
            Away,
        );
        let row: Option<Row> = conn
            .prepare_cached(sql)?
            .query_row([&value], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    Away {
                        loan: loan_ref(r, 6)?,
                        flag: r.get(10)?,
                        place: self.place_ref(r.get(11)?, r.get(12)?),
                    },
                ))
            })
            .optional()?;
        let Some((archive_no, shelf_id, source, confidence, since, last_seen, away)) = row else {
            // A box's own label encodes its archive number (`labels`): a scanned label finds
            // the box whatever its barcode field holds.
            if let BoxKey::Barcode(code) = key
                && self.config.archive_rule.check(code.trim()).is_ok()
            {
                return self
                    .location_of(conn, &BoxKey::ArchiveNo(code.trim().to_string()))
                    .map_err(|e| match e {
                        LocationError::UnknownBox(_) => LocationError::NoMatch {
                            key: "barcode",
                            value: code.clone(),
                        },
                        e => e,
                    });
            }
            return Err(match key {
                BoxKey::ArchiveNo(v) => LocationError::UnknownBox(v.clone()),
                _ => LocationError::NoMatch { key: name, value },
            });
        };
        let Some(shelf) = shelf_id.and_then(|id| self.shelves.by_id.get(&id)) else {
            let id = box_id(conn, &archive_no)?;
            self.refuse_disposed(conn, id, &archive_no)?;
            if let Some(place) = away.place {
                return Err(LocationError::InPlace {
                    archive_no,
                    place: place.name,
                });
            }
            return Err(LocationError::NotOnShelf(archive_no));
        };
        let binding = BindingColumns {
            source,
            confidence,
            since,
            last_seen,
        };
        Ok(self.location(archive_no, shelf, binding, away))
    }

    fn location(
        &self,
        archive_no: String,
        shelf: &ShelfAddress,
        b: BindingColumns,
        away: Away,
    ) -> Location {
        let state = match (&away.loan, &away.place, away.flag) {
            (Some(_), _, _) => "on_loan".to_string(),
            (None, Some(_), _) => "in_place".to_string(),
            (None, None, Some(flag)) => flag,
            (None, None, None) => "on_shelf".to_string(),
        };
        Location {
            state,
            loan: away.loan,
            place: away.place,
            archive_no,
            shelf: Self::shelf_view(&self.config, shelf),
            aisle: self.aisle_of(shelf),
            source: b.source.unwrap_or(Source::Manual),
            confidence: b.confidence.unwrap_or(1.0),
            since: wall(b.since.unwrap_or(0)),
            last_seen: b.last_seen.map(wall),
        }
    }

    const BOX_SELECT: &str = concat!(
        "SELECT x.archive_no, x.epc, x.barcode, x.title, x.width_mm, x.fields, x.created_at,
            b.shelf_id, b.source, b.confidence, b.since, b.last_seen,
            ol.id, ol.borrower, ol.due, ol.checked_out_at, fl.state,
            dx.disposal_id, dx.at, bp.place, bp.since
         FROM boxes x LEFT JOIN bindings b ON b.box_id = x.id
         LEFT JOIN boxes_disposed dx ON dx.box_id = x.id ",
        circulation!()
    );

    fn box_row(&self, r: &rusqlite::Row) -> rusqlite::Result<BoxView> {
        let archive_no: String = r.get(0)?;
        let fields: String = r.get(5)?;
        let shelf_id: Option<i64> = r.get(7)?;
        let place = self.place_ref(r.get(19)?, r.get(20)?);
        let location = match shelf_id.and_then(|id| self.shelves.by_id.get(&id)) {
            Some(shelf) => Some(self.location(
                archive_no.clone(),
                shelf,
                BindingColumns {
                    source: r.get(8)?,
                    confidence: r.get(9)?,
                    since: r.get(10)?,
                    last_seen: r.get(11)?,
                },
                Away {
                    loan: loan_ref(r, 12)?,
                    flag: r.get(16)?,
                    place: place.clone(),
                },
            )),
            None => None,
        };
        Ok(BoxView {
            archive_no,
            epc: r.get(1)?,
            barcode: r.get(2)?,
            title: r.get(3)?,
            width_mm: r.get(4)?,
            fields: serde_json::from_str(&fields).unwrap_or(serde_json::Value::Null),
            created_at: wall(r.get(6)?),
            location,
            place,
            disposed: match r.get::<_, Option<i64>>(17)? {
                Some(disposal) => Some(DisposedRef {
                    disposal,
                    at: wall(r.get(18)?),
                }),
                None => None,
            },
        })
    }

    /// A box with its location.
    pub async fn get_box(&self, archive_no: &str) -> Result<BoxView, LocationError> {
        let this = self.clone();
        let archive_no = archive_no.to_string();
        self.store
            .read(move |conn| {
                conn.prepare_cached(&format!("{} WHERE x.archive_no = ?1", Self::BOX_SELECT))?
                    .query_row([&archive_no], |r| this.box_row(r))
                    .optional()?
                    .ok_or(LocationError::UnknownBox(archive_no))
            })
            .await
    }

    /// Finds boxes by archive number (exact or prefix), EPC, barcode or words of the
    /// title; exact matches first, then archive-number prefixes, then title words.
    pub async fn search(&self, q: &str, limit: usize) -> Result<Vec<BoxView>, LocationError> {
        Ok(self.find(q, Page { offset: 0, limit }).await?.items)
    }

    /// [`Self::search`], one page of it, with how many match in all.
    pub async fn find(&self, q: &str, page: Page) -> Result<Found, LocationError> {
        self.find_narrowed(q, page, Narrow::default()).await
    }

    /// [`Self::find`], keeping only the boxes `narrow` lets through. The count is exact
    /// while fewer than [`search::NARROW_SCAN`] matches were looked at, else "about".
    pub async fn find_narrowed(
        &self,
        q: &str,
        page: Page,
        narrow: Narrow,
    ) -> Result<Found, LocationError> {
        if let Some(r) = narrow.range
            && self.config.layout.range(r).is_none()
        {
            return Err(LocationError::invalid(
                "range",
                format!("the room has no range {r}"),
            ));
        }
        if narrow.year.is_some() && self.config.year_field.is_none() {
            return Err(LocationError::invalid(
                "year",
                "the room names no year field: boxes.year_field in the config",
            ));
        }
        if narrow.category.is_some() && !self.config.archive_rule.parts().any(|p| p == "category") {
            return Err(LocationError::invalid(
                "category",
                "the site's archive number has no part named 'category'",
            ));
        }
        let q = q.trim().to_string();
        if q.is_empty() {
            return Err(LocationError::invalid(
                "q",
                "is empty: type an archive number, barcode, EPC or words of a title",
            ));
        }
        if q.chars().count() > 200 {
            return Err(LocationError::invalid("q", "is longer than 200 characters"));
        }
        if page.offset > Page::MAX_OFFSET {
            return Err(LocationError::invalid(
                "offset",
                format!("is past {}: narrow the search", Page::MAX_OFFSET),
            ));
        }
        let page = Page {
            offset: page.offset,
            limit: page.limit.clamp(1, 200),
        };
        let this = self.clone();
        self.store
            .read(move |conn| {
                if narrow.is_empty() {
                    this.search_in(conn, &q, page)
                } else {
                    this.search_narrowed(conn, &q, page, &narrow)
                }
            })
            .await
    }

    fn search_narrowed(
        &self,
        conn: &Connection,
        q: &str,
        page: Page,
        narrow: &Narrow,
    ) -> Result<Found, LocationError> {
        let sources = self.sources(conn, q)?;
        let mut facts = conn.prepare_cached(
            "SELECT x.archive_no, s.range_id, json_extract(x.fields, ?2) FROM boxes x
             LEFT JOIN bindings b ON b.box_id = x.id LEFT JOIN shelves s ON s.id = b.shelf_id
             WHERE x.id = ?1",
        )?;
        let year_path = format!("$.{}", self.config.year_field.as_deref().unwrap_or("_"));
        let year = narrow.year.map(|y| format!("{y:04}-"));
        let (mut looked, mut kept) = (0usize, Hits::for_up_to(page.offset + page.limit));
        let mut failed = None;
        sources.each(conn, |id| {
            looked += 1;
            let fits = facts
                .query_row(rusqlite::params![id, year_path], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, Option<u16>>(1)?,
                        r.get::<_, Option<String>>(2)?,
                    ))
                })
                .map(|(no, range, day)| {
                    narrow.range.is_none_or(|want| range == Some(want))
                        && year
                            .as_ref()
                            .is_none_or(|y| day.is_some_and(|d| d.starts_with(y)))
                        && narrow.category.as_ref().is_none_or(|want| {
                            self.config.archive_rule.part_of(&no, "category").as_ref() == Some(want)
                        })
                });
            match fits {
                Ok(true) => {
                    kept.add(id);
                }
                Ok(false) => {}
                Err(e) => failed = Some(e),
            }
            failed.is_none() && looked < search::NARROW_SCAN
        })?;
        if let Some(e) = failed {
            return Err(e.into());
        }
        Ok(Found {
            items: self.boxes_by_id(conn, kept.page(page))?,
            total: kept.order.len() as u64,
            estimated: looked >= search::NARROW_SCAN,
        })
    }

    /// [`Self::search`] on this thread.
    pub fn search_blocking(&self, q: &str, limit: usize) -> Result<Vec<BoxView>, LocationError> {
        let page = Page { offset: 0, limit };
        self.store
            .read_blocking(|conn| Ok(self.search_in(conn, q, page)?.items))
    }

    /// Where the matches of `q` come from. An archive number typed without its dashes or
    /// in lower case means that number, if such a box exists (else the text is searched
    /// as typed: it may be a barcode).
    fn sources(&self, conn: &Connection, q: &str) -> Result<Sources, LocationError> {
        let normalised = self
            .config
            .archive_rule
            .normalise(q)
            .filter(|n| box_id(conn, n).is_ok());
        let q = normalised.as_deref().unwrap_or(q);
        let searched: Vec<&str> = self
            .config
            .fields
            .searched()
            .map(|f| f.key.as_str())
            .collect();
        Ok(Sources::of(conn, q, &searched)?)
    }

    fn search_in(&self, conn: &Connection, q: &str, page: Page) -> Result<Found, LocationError> {
        let sources = self.sources(conn, q)?;
        // One walk gives the page and the count: it goes on past the page until the count
        // is more than exact counting covers, or the sources run dry.
        let want = page.offset + page.limit;
        let stop = want.max(search::COUNTED + 1);
        let mut ids = Hits::for_up_to(stop);
        let reached = sources.each(conn, |id| ids.add(id) < stop)?;
        let found = ids.order.len();
        let (total, estimated) = if found < stop {
            (found as u64, false) // every source ran dry: this is all of it
        } else {
            sources.estimate(conn, found, reached)?
        };
        Ok(Found {
            items: self.boxes_by_id(conn, ids.page(page))?,
            total,
            estimated,
        })
    }

    /// The boxes with these ids, in this order.
    fn boxes_by_id(&self, conn: &Connection, ids: &[i64]) -> Result<Vec<BoxView>, LocationError> {
        let mut one = conn.prepare_cached(&format!("{} WHERE x.id = ?1", Self::BOX_SELECT))?;
        let mut items = Vec::with_capacity(ids.len());
        for &id in ids {
            items.push(one.query_row([id], |r| self.box_row(r))?);
        }
        Ok(items)
    }

    /// The binding history of a box, and where it was at `at` if given.
    pub async fn history(
        &self,
        archive_no: &str,
        at: Option<DateTime<Utc>>,
    ) -> Result<History, LocationError> {
        let archive_no = archive_no.to_string();
        self.store
            .read(move |conn| {
                let box_id = box_id(conn, &archive_no)?;
                let mut st = conn.prepare_cached(
                    "SELECT kind, from_shelf, to_shelf, source, confidence, actor, reason, at
                     FROM binding_events WHERE box_id = ?1 ORDER BY id",
                )?;
                let events: Vec<HistoryEvent> = st
                    .query_map([box_id], |r| {
                        Ok(HistoryEvent {
                            kind: r.get(0)?,
                            from: r.get(1)?,
                            to: r.get(2)?,
                            source: r.get(3)?,
                            confidence: r.get(4)?,
                            actor: r.get(5)?,
                            reason: r.get(6)?,
                            at: wall(r.get(7)?),
                        })
                    })?
                    .collect::<Result<_, _>>()?;
                let shelf_at = at.and_then(|t| {
                    events
                        .iter()
                        .take_while(|e| e.at <= t)
                        .last()
                        .and_then(|e| e.to.clone())
                });
                Ok(History {
                    archive_no,
                    events,
                    places: Self::place_events_in(conn, box_id)?,
                    at,
                    shelf_at,
                })
            })
            .await
    }

    /// Free shelves for a new box. First the shelves that already hold its series, then
    /// empty shelves nearest to the series (with no series on the shelves yet: the first
    /// empty shelves in fill order, so the room fills without holes), and only then shelves
    /// shared with other series.
    pub async fn suggest(
        &self,
        archive_no: &str,
        width_mm: Option<u32>,
        count: usize,
    ) -> Result<Vec<Suggestion>, LocationError> {
        let series = self
            .config
            .archive_rule
            .check(archive_no.trim())
            .map_err(|e| LocationError::invalid("archive_no", e.to_string()))?;
        if width_mm == Some(0) {
            return Err(LocationError::invalid("width_mm", "must be at least 1"));
        }
        let count = count.clamp(1, 50);
        let this = self.clone();
        self.store
            .read(move |conn| this.suggest_in(conn, &series, width_mm, count))
            .await
    }

    fn suggest_in(
        &self,
        conn: &Connection,
        series: &str,
        width_mm: Option<u32>,
        count: usize,
    ) -> Result<Vec<Suggestion>, LocationError> {
        let mut st = conn.prepare_cached(
            "SELECT DISTINCT b.shelf_id FROM boxes x JOIN bindings b ON b.box_id = x.id WHERE x.series = ?1",
        )?;
        let mut anchors: Vec<u32> = st
            .query_map([series], |r| r.get::<_, i64>(0))?
            .filter_map(|id| id.ok())
            .filter_map(|id| self.shelves.by_id.get(&id))
            .filter_map(|s| self.shelves.by_address.get(s))
            .map(|e| e.ordinal)
            .collect();
        anchors.sort_unstable();
        let distance = |ordinal: u32| -> u32 {
            let i = anchors.partition_point(|&a| a < ordinal);
            let after = anchors.get(i).map(|a| a - ordinal);
            let before = i.checked_sub(1).map(|j| ordinal - anchors[j]);
            after.into_iter().chain(before).min().unwrap_or(ordinal)
        };
        let mut order: Vec<u32> = (0..self.shelves.ordered.len() as u32).collect();
        order.sort_by_key(|&o| (distance(o), o));
        let width = width_mm.unwrap_or(self.config.default_box_width_mm);
        let mut fill = conn.prepare_cached(
            "SELECT COUNT(*), COALESCE(SUM(COALESCE(x.width_mm, ?2)), 0), COALESCE(SUM(x.series = ?3), 0)
             FROM bindings b JOIN boxes x ON x.id = b.box_id WHERE b.shelf_id = ?1",
        )?;
        let (mut same, mut empty, mut shared) = (Vec::new(), Vec::new(), Vec::new());
        for ordinal in order {
            let d = distance(ordinal);
            if same.len() + empty.len() >= count && (anchors.is_empty() || d > 0) {
                break;
            }
            let shelf = self.shelves.ordered[ordinal as usize];
            let entry = self.shelves.by_address[&shelf];
            let (boxes, mm, of_series): (u32, u32, u32) = fill.query_row(
                params![entry.id, self.config.default_box_width_mm, series],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )?;
            let (capacity, unit) = unit(entry.capacity);
            let (used, need) = if unit == "boxes" {
                (boxes, 1)
            } else {
                (mm, width)
            };
            if used + need > capacity {
                continue;
            }
            let (list, reason) = if of_series > 0 {
                (
                    &mut same,
                    format!("holds {of_series} box(es) of series {series}"),
                )
            } else if boxes == 0 && anchors.is_empty() {
                (
                    &mut empty,
                    format!(
                        "first empty shelf in fill order; no box of series {series} is on a shelf yet"
                    ),
                )
            } else if boxes == 0 {
                (
                    &mut empty,
                    format!("empty, {d} shelf position(s) from series {series}"),
                )
            } else {
                (
                    &mut shared,
                    format!("has room, but holds {boxes} box(es) of other series"),
                )
            };
            list.push(Suggestion {
                shelf: Self::shelf_view(&self.config, &shelf),
                aisle: self.aisle_of(&shelf),
                free: capacity - used,
                unit: unit.into(),
                reason,
            });
        }
        Ok(same
            .into_iter()
            .chain(empty)
            .chain(shared)
            .take(count)
            .collect())
    }

    fn aisle_of(&self, shelf: &ShelfAddress) -> AisleRef {
        // Every shelf of the layout faces an aisle (layout::RangeLayout::contains).
        self.config.layout.aisle_of(shelf).unwrap_or(AisleRef {
            range: shelf.range,
            aisle: 0,
        })
    }

    /// The shelves of the room (or of one range) with their fill.
    pub async fn shelves(&self, range: Option<u16>) -> Result<Vec<ShelfFill>, LocationError> {
        if let Some(r) = range
            && self.config.layout.range(r).is_none()
        {
            return Err(NoSuchShelf::Range(r).into());
        }
        let this = self.clone();
        self.store
            .read(move |conn| {
                let mut st = conn.prepare_cached(
                    "SELECT b.shelf_id, COUNT(*), SUM(COALESCE(x.width_mm, ?1))
                     FROM bindings b JOIN boxes x ON x.id = b.box_id GROUP BY b.shelf_id",
                )?;
                let mut fill: HashMap<i64, (u32, u32)> = HashMap::new();
                for row in st.query_map([this.config.default_box_width_mm], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, u32>(1)?,
                        r.get::<_, u32>(2)?,
                    ))
                })? {
                    let (id, n, mm) = row?;
                    fill.insert(id, (n, mm));
                }
                Ok(this
                    .shelves
                    .ordered
                    .iter()
                    .filter(|s| range.is_none_or(|r| s.range == r))
                    .map(|shelf| {
                        let entry = this.shelves.by_address[shelf];
                        let (boxes, mm) = fill.get(&entry.id).copied().unwrap_or((0, 0));
                        let (capacity, unit) = unit(entry.capacity);
                        ShelfFill {
                            shelf: Self::shelf_view(&this.config, shelf),
                            aisle: this.aisle_of(shelf),
                            capacity,
                            unit: unit.into(),
                            used: if unit == "boxes" { boxes } else { mm },
                            boxes,
                        }
                    })
                    .collect())
            })
            .await
    }

    /// The boxes bound to a shelf, by archive number: a box's neighbours.
    pub async fn on_shelf(&self, shelf: &str) -> Result<OnShelf, LocationError> {
        let address = self.shelf(shelf)?;
        let entry = self.shelves.by_address[&address];
        let view = Self::shelf_view(&self.config, &address);
        let boxes = self
            .store
            .read(move |conn| {
                conn.prepare_cached(
                    "SELECT x.archive_no, x.title FROM bindings b JOIN boxes x ON x.id = b.box_id
                     WHERE b.shelf_id = ?1 ORDER BY x.archive_no",
                )?
                .query_map([entry.id], |r| {
                    Ok(Neighbour {
                        archive_no: r.get(0)?,
                        title: r.get(1)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()
                .map_err(LocationError::from)
            })
            .await?;
        Ok(OnShelf {
            shelf: view,
            aisle: self.aisle_of(&address),
            items: boxes,
        })
    }

    /// Every box that carries a tag: archive number, EPC and the shelf it is bound to.
    pub async fn tagged_boxes(
        &self,
    ) -> Result<Vec<(String, String, Option<String>)>, LocationError> {
        let this = self.clone();
        self.store
            .read(move |conn| {
                let mut st = conn.prepare(
                    "SELECT x.archive_no, x.epc, b.shelf_id FROM boxes x LEFT JOIN bindings b ON b.box_id = x.id
                     WHERE x.epc IS NOT NULL ORDER BY x.id",
                )?;
                let rows = st
                    .query_map([], |r| {
                        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, Option<i64>>(2)?))
                    })?
                    .map(|row| {
                        row.map(|(no, epc, shelf)| {
                            let shelf = shelf.and_then(|id| this.shelves.by_id.get(&id)).map(|s| s.to_string());
                            (no, epc, shelf)
                        })
                    })
                    .collect::<Result<_, _>>()?;
                Ok(rows)
            })
            .await
    }

    /// How many boxes are registered.
    pub async fn box_count(&self) -> Result<u64, LocationError> {
        self.store
            .read(|conn| {
                Ok(
                    conn.query_row("SELECT COUNT(*) FROM boxes", [], |r| r.get::<_, i64>(0))?
                        as u64,
                )
            })
            .await
    }
}

/// New boxes' entries in the title index, and their words not yet in `box_terms`,
/// gathered and written in bulk (when full and at the end, [`Gathered::write`]):
/// - the words, sorted and without repeats, are few appends, where word by word in the
///   order boxes come each was a random insert into a large index;
/// - the index's rows go in batches: a statement that fires a trigger (as every insert of
///   a box or binding does, for the change feed) opens a statement transaction, and FTS5
///   writes out its pending entries at each, so that rows written one by one between such
///   statements made a segment per box and merged them without end (a third of an import
///   took ten times as long).
#[derive(Default)]
pub(crate) struct Gathered {
    terms: std::collections::HashSet<String>,
    rows: Vec<(i64, String)>,
}

impl Gathered {
    /// Words held at most before they are written out: about 20 MB.
    const MAX: usize = 200_000;
    /// Index rows held at most before they are written out: a few MB.
    const MAX_ROWS: usize = 100_000;

    fn add(&mut self, conn: &Connection, id: i64, text: String) -> Result<(), rusqlite::Error> {
        self.terms.extend(words::vocabulary(&text));
        self.rows.push((id, text));
        if self.terms.len() >= Self::MAX || self.rows.len() >= Self::MAX_ROWS {
            self.write(conn)?;
        }
        Ok(())
    }

    /// Writes the rows and words gathered into the title index and `box_terms`, and
    /// forgets them.
    pub(crate) fn write(&mut self, conn: &Connection) -> Result<(), rusqlite::Error> {
        let mut index =
            conn.prepare_cached("INSERT INTO box_words (rowid, words) VALUES (?1, ?2)")?;
        for (id, text) in self.rows.drain(..) {
            index.execute(params![id, text])?;
        }
        add_terms(conn, self.terms.drain())
    }
}

/// Adds `words` to the vocabulary (`box_terms`, the room's or the site replica's), sorted
/// and once each: in the order they come, each would be a random insert into a large index.
pub(crate) fn add_terms(
    conn: &Connection,
    words: impl IntoIterator<Item = String>,
) -> Result<(), rusqlite::Error> {
    let mut words: Vec<String> = words.into_iter().collect();
    words.sort_unstable();
    words.dedup();
    let mut insert = conn.prepare_cached("INSERT OR IGNORE INTO box_terms (term) VALUES (?1)")?;
    for word in words {
        insert.execute([word])?;
    }
    Ok(())
}

pub(crate) fn insert_box(
    conn: &Connection,
    fields: &Fields,
    b: &CheckedBox,
    now: i64,
    vocabulary: &mut Gathered,
) -> Result<i64, LocationError> {
    let result = conn
        .prepare_cached(
            "INSERT INTO boxes (archive_no, epc, barcode, title, series, width_mm, fields, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?
        .execute(params![b.archive_no, b.epc, b.barcode, b.title, b.series, b.width_mm, b.fields, now]);
    if let Err(rusqlite::Error::SqliteFailure(e, Some(message))) = &result
        && e.code == rusqlite::ErrorCode::ConstraintViolation
    {
        let (field, value) = if message.contains("boxes.epc") {
            ("epc", b.epc.clone())
        } else if message.contains("boxes.barcode") {
            ("barcode", b.barcode.clone())
        } else {
            ("archive_no", Some(b.archive_no.clone()))
        };
        return Err(LocationError::Duplicate {
            field,
            value: value.unwrap_or_default(),
        });
    }
    result?;
    let id = conn.last_insert_rowid();
    vocabulary.add(conn, id, b.index_text(fields))?;
    let mut value = conn
        .prepare_cached("INSERT INTO box_field_values (key, value, box_id) VALUES (?1, ?2, ?3)")?;
    for (key, v) in &b.values {
        value.execute(params![key, v, id])?;
    }
    Ok(id)
}

/// The database id of a box.
pub(crate) fn box_id(conn: &Connection, archive_no: &str) -> Result<i64, LocationError> {
    conn.prepare_cached("SELECT id FROM boxes WHERE archive_no = ?1")?
        .query_row([archive_no], |r| r.get(0))
        .optional()?
        .ok_or_else(|| LocationError::UnknownBox(archive_no.to_string()))
}

fn record_event(
    conn: &Connection,
    box_id: i64,
    kind: &str,
    from: Option<&str>,
    to: Option<&str>,
    p: &Provenance,
    now: i64,
) -> Result<(), LocationError> {
    conn.prepare_cached(
        "INSERT INTO binding_events (box_id, kind, from_shelf, to_shelf, source, confidence, actor, reason, at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![box_id, kind, from, to, p.source.as_str(), p.confidence, p.actor, p.reason, now])?;
    Ok(())
}

/// A small room for the tests of the services over boxes: archive numbers `H-001` and
/// `L-001` (series `H`, `L`), one range of 3 carriages x 2 sections x 2 levels, five boxes
/// a shelf, and `extra` (fields, retention, places) in TOML.
#[cfg(test)]
pub(crate) async fn test_room(extra: &str) -> (tempfile::TempDir, LocationService) {
    const ROOM: &str = r#"
[site]
id = "s"
[room]
id = "r"
[archive_number]
pattern = "{cat}-{seq}"
series = ["cat"]
[archive_number.parts]
cat = "H|L"
seq = "[0-9]{3}"
[[ranges]]
id = 1
carriages = 3
sections = 2
levels = 2
shelf_capacity = { boxes = 5 }
"#;
    let dir = tempfile::tempdir().unwrap();
    let text = format!("{ROOM}{extra}");
    let config = RoomConfig::parse(&dir.path().join("room.toml"), &text).unwrap();
    let store = Store::open(&dir.path().join("db.sqlite")).unwrap();
    let locations = LocationService::open(Arc::new(config), store)
        .await
        .unwrap();
    (dir, locations)
}

/// Tuesday 2026-12-01, 00:00 UTC: the tests' today.
#[cfg(test)]
pub(crate) const TEST_TODAY_MS: i64 = 1_796_083_200_000;

#[cfg(test)]
mod tests;

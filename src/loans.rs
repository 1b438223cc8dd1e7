//! Circulation: the ledger of loans. A loan names a borrower, boxes, a purpose, a kind
//! (`reading_room` or `external`) and a due day, and goes
//! `requested → approved | rejected → checked_out → returned | return_refused`
//! (`cancelled` before checkout). Every transition is kept with who, when and a note.
//!
//! A checked-out box keeps its binding (its home shelf) and is *on loan*: locate says to
//! whom and until when instead of sending anyone to the shelf. A return inspects each box:
//! `complete` boxes are back on their shelves; a box found damaged, with pages missing or
//! not the box that was lent keeps the loan open (`return_refused`) until a later
//! inspection accepts it.
//!
//! The rules are configuration (`[loans]`): which kinds need approval and by which role,
//! the longest loan per kind, how many boxes one borrower may hold.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::access::{Identity, Role};
use crate::store::text::{Named, day};
use crate::store::{Store, StoreError};
use crate::time::{Clock, Millis, SystemClock, wall};

/// The kinds of loan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LoanKind {
    /// Read in the room's reading room.
    ReadingRoom,
    /// Taken out of the room.
    External,
}

impl LoanKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LoanKind::ReadingRoom => "reading_room",
            LoanKind::External => "external",
        }
    }
}

impl Named for LoanKind {
    const ALL: &'static [Self] = &[LoanKind::ReadingRoom, LoanKind::External];
    fn name(self) -> &'static str {
        self.as_str()
    }
}
crate::text_column!(LoanKind);

/// Where a loan is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LoanState {
    Requested,
    Approved,
    Rejected,
    CheckedOut,
    Returned,
    /// Back, but a box failed its inspection: the loan stays open.
    ReturnRefused,
    Cancelled,
}

impl LoanState {
    pub fn as_str(self) -> &'static str {
        match self {
            LoanState::Requested => "requested",
            LoanState::Approved => "approved",
            LoanState::Rejected => "rejected",
            LoanState::CheckedOut => "checked_out",
            LoanState::Returned => "returned",
            LoanState::ReturnRefused => "return_refused",
            LoanState::Cancelled => "cancelled",
        }
    }

    /// Its boxes are out of the shelves.
    pub fn is_out(self) -> bool {
        matches!(self, LoanState::CheckedOut | LoanState::ReturnRefused)
    }

    /// Where `action` takes a loan in this state, or the states it may be asked from.
    pub fn after(self, action: Action) -> Result<LoanState, &'static [LoanState]> {
        use LoanState::*;
        let (from, to): (&'static [LoanState], LoanState) = match action {
            Action::Approve => (&[Requested], Approved),
            Action::Reject => (&[Requested], Rejected),
            Action::Cancel => (&[Requested, Approved], Cancelled),
            Action::Checkout => (&[Approved], CheckedOut),
        };
        if from.contains(&self) {
            Ok(to)
        } else {
            Err(from)
        }
    }

    /// Where a return takes a loan in this state: `returned` once every box is back and
    /// accepted, else `return_refused`; only a loan that is out is returned.
    pub fn after_return(self, all_back: bool) -> Option<LoanState> {
        self.is_out().then_some(if all_back {
            LoanState::Returned
        } else {
            LoanState::ReturnRefused
        })
    }
}

impl std::fmt::Display for LoanState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for LoanState {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        Self::from_name(text).ok_or_else(|| {
            let all: Vec<&str> = Self::ALL.iter().map(|s| s.as_str()).collect();
            format!("'{text}': one of {}", all.join(", "))
        })
    }
}

impl Named for LoanState {
    const ALL: &'static [Self] = &[
        LoanState::Requested,
        LoanState::Approved,
        LoanState::Rejected,
        LoanState::CheckedOut,
        LoanState::Returned,
        LoanState::ReturnRefused,
        LoanState::Cancelled,
    ];
    fn name(self) -> &'static str {
        self.as_str()
    }
}
crate::text_column!(LoanState);

/// The rule of one kind of loan (shown to clients in `GET /api/v1/room`, so that they
/// can say it before a request).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, ToSchema)]
pub struct KindRule {
    /// The role that approves it; `None`: no approval, approved when requested.
    pub approval: Option<Role>,
    /// Four eyes: the approver may not be the token that asked for the loan.
    pub four_eyes: bool,
    /// The longest loan, in days from the request.
    pub max_days: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct LoanRules {
    pub reading_room: KindRule,
    pub external: KindRule,
    /// Boxes one borrower may hold (in open loans) at once.
    pub max_boxes_per_borrower: usize,
}

impl Default for LoanRules {
    fn default() -> Self {
        LoanRules {
            reading_room: KindRule {
                approval: None,
                four_eyes: false,
                max_days: 7,
            },
            external: KindRule {
                approval: Some(Role::Approver),
                four_eyes: true,
                max_days: 30,
            },
            max_boxes_per_borrower: 20,
        }
    }
}

impl LoanRules {
    pub fn rule(&self, kind: LoanKind) -> KindRule {
        match kind {
            LoanKind::ReadingRoom => self.reading_room,
            LoanKind::External => self.external,
        }
    }
}

/// `[loans]` as written.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLoans {
    max_boxes_per_borrower: Option<usize>,
    reading_room: Option<RawKind>,
    external: Option<RawKind>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKind {
    /// `none` or a role.
    approval: String,
    /// Default: true where there is an approval.
    four_eyes: Option<bool>,
    max_days: u32,
}

/// Checks `[loans]`; errors are (key, message).
pub(crate) fn rules(raw: RawLoans) -> Result<LoanRules, (String, String)> {
    let defaults = LoanRules::default();
    let kind = |raw: Option<RawKind>,
                default: KindRule,
                key: &str|
     -> Result<KindRule, (String, String)> {
        let Some(raw) = raw else { return Ok(default) };
        let approval = match raw.approval.as_str() {
            "none" => None,
            role => Some(
                role.parse::<Role>()
                    .map_err(|e| (format!("loans.{key}.approval"), format!("{e}, or none")))?,
            ),
        };
        if raw.max_days == 0 || raw.max_days > 3660 {
            return Err((format!("loans.{key}.max_days"), "is 1 to 3660".into()));
        }
        if raw.four_eyes == Some(true) && approval.is_none() {
            return Err((
                format!("loans.{key}.four_eyes"),
                "needs an approval to apply to".into(),
            ));
        }
        Ok(KindRule {
            four_eyes: raw.four_eyes.unwrap_or(approval.is_some()),
            approval,
            max_days: raw.max_days,
        })
    };
    let max = raw
        .max_boxes_per_borrower
        .unwrap_or(defaults.max_boxes_per_borrower);
    if max == 0 {
        return Err((
            "loans.max_boxes_per_borrower".into(),
            "must be at least 1".into(),
        ));
    }
    Ok(LoanRules {
        reading_room: kind(raw.reading_room, defaults.reading_room, "reading_room")?,
        external: kind(raw.external, defaults.external, "external")?,
        max_boxes_per_borrower: max,
    })
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Borrower {
    pub name: String,
    #[serde(default)]
    pub department: String,
}

/// A loan request.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewLoan {
    pub borrower: Borrower,
    /// Archive numbers.
    pub boxes: Vec<String>,
    pub purpose: String,
    pub kind: LoanKind,
    /// The day it is due back, YYYY-MM-DD.
    #[schema(value_type = String)]
    pub due: NaiveDate,
}

/// A box of a loan.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct LoanBox {
    pub archive_no: String,
    /// The last inspection: `complete`, `damaged`, `pages_missing`, `wrong_box`.
    pub inspection: Option<String>,
    pub note: String,
    /// When it came back, accepted (or, settled as lost, when the loan stopped waiting).
    pub returned_at: Option<DateTime<Utc>>,
    /// How a box that failed its inspection was settled.
    pub settled: Option<Settlement>,
}

/// How an archivist settles a box that failed its return inspection; each ends in a state
/// of the box that is physically true.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Settlement {
    /// Taken back as it is, with a note: the box is on its home shelf.
    Accepted,
    /// Sent to the repair room: the box is in the room's place of kind `repair`.
    Repair,
    /// Not coming back: the box is flagged `lost` (its home shelf and record are kept).
    Lost,
}

impl Named for Settlement {
    const ALL: &'static [Self] = &[Settlement::Accepted, Settlement::Repair, Settlement::Lost];
    fn name(self) -> &'static str {
        match self {
            Settlement::Accepted => "accepted",
            Settlement::Repair => "repair",
            Settlement::Lost => "lost",
        }
    }
}
crate::text_column!(Settlement);

/// What settling a box does to where the box is, in the settling transaction: given the
/// box's id (the location service writes it: into the repair place, or flagged lost).
pub type Consequence = Box<dyn FnOnce(&Connection, i64) -> rusqlite::Result<()> + Send>;

/// A transition of a loan.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct LoanEvent {
    pub at: DateTime<Utc>,
    pub actor: String,
    pub from: Option<LoanState>,
    pub to: LoanState,
    pub note: String,
}

/// A loan as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct LoanView {
    pub id: i64,
    pub borrower: Borrower,
    pub boxes: Vec<LoanBox>,
    pub purpose: String,
    pub kind: LoanKind,
    #[schema(value_type = String)]
    pub due: NaiveDate,
    pub state: LoanState,
    pub requested_by: String,
    pub created_at: DateTime<Utc>,
    pub checked_out_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    /// Out past its due day.
    pub overdue: bool,
    pub events: Vec<LoanEvent>,
}

/// A box's loan, for locate.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct LoanRef {
    pub id: i64,
    pub borrower: String,
    #[schema(value_type = String)]
    pub due: NaiveDate,
    pub since: Option<DateTime<Utc>>,
}

/// An inspection of a returned box.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Inspection {
    pub archive_no: String,
    /// `complete`, `damaged`, `pages_missing` or `wrong_box`.
    pub result: String,
    #[serde(default)]
    pub note: String,
}

#[derive(Debug, thiserror::Error)]
pub enum LoanError {
    #[error("no loan {0}")]
    NoLoan(i64),
    #[error("no box '{0}'")]
    UnknownBox(String),
    #[error("{field}: {unfit}")]
    Invalid { field: &'static str, unfit: Unfit },
    #[error("loan {id} is {state}: {message}")]
    WrongState {
        id: i64,
        state: LoanState,
        message: String,
    },
    #[error("token '{who}' is a {role}; {what} needs {need} or above")]
    Forbidden {
        who: String,
        role: Role,
        need: Role,
        what: String,
    },
    #[error("loan {id} was asked for by '{who}', who may not also approve it (four eyes)")]
    FourEyes { id: i64, who: String },
    #[error("box {archive_no} is already in loan {loan} ({state})")]
    BoxTaken {
        archive_no: String,
        loan: i64,
        state: LoanState,
    },
    #[error("{borrower} would hold {would} boxes; at most {max} at once")]
    Limit {
        borrower: String,
        would: usize,
        max: usize,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for LoanError {
    fn from(e: rusqlite::Error) -> LoanError {
        LoanError::Store(StoreError::from(e))
    }
}

/// What in a loan request or return does not fit, with its numbers. The API hands it on
/// as the problem's `params` (`rule` and the fields), so the page can say it in its own
/// words; `Display` is the English.
#[derive(Debug, Clone, PartialEq, Serialize, thiserror::Error)]
#[serde(tag = "rule", rename_all = "snake_case")]
pub enum Unfit {
    #[error("a name of 1 to 200 characters")]
    NameLength,
    #[error("say what the boxes are for (1 to 2,000 characters)")]
    PurposeLength,
    #[error("1 to 500 archive numbers")]
    BoxCount,
    #[error("{due} is in the past")]
    DuePast { due: NaiveDate },
    #[error("a {} loan lasts at most {max_days} days (until {until})", kind.as_str())]
    DueTooFar {
        kind: LoanKind,
        max_days: u32,
        until: NaiveDate,
    },
    #[error("{archive_no} is named twice")]
    NamedTwice { archive_no: String },
    #[error("one inspection per box returned")]
    NoInspections,
    #[error("'{result}': complete, damaged, pages_missing or wrong_box")]
    BadResult { result: String },
    #[error("{archive_no} is not out on loan {loan}")]
    NotOut { archive_no: String, loan: i64 },
    #[error("{archive_no} passed its inspection: there is nothing to settle")]
    NothingToSettle { archive_no: String },
    #[error("say why (1 to 2,000 characters)")]
    NoteLength,
    #[error("{due} is not after the loan's due day {current}")]
    NotLater { due: NaiveDate, current: NaiveDate },
}

impl Unfit {
    /// Every rule's code, as the API writes it in `params.rule`.
    pub const CODES: &[&str] = &[
        "name_length",
        "purpose_length",
        "box_count",
        "due_past",
        "due_too_far",
        "named_twice",
        "no_inspections",
        "bad_result",
        "not_out",
        "nothing_to_settle",
        "note_length",
        "not_later",
    ];
}

fn invalid(field: &'static str, unfit: Unfit) -> LoanError {
    LoanError::Invalid { field, unfit }
}

/// The loan a box is out on, if it is.
pub fn loan_of_box(conn: &Connection, box_id: i64) -> rusqlite::Result<Option<LoanRef>> {
    conn.prepare_cached("SELECT loan_id, borrower, due, out_at FROM boxes_out WHERE box_id = ?1")?
        .query_row([box_id], |r| {
            Ok(LoanRef {
                id: r.get(0)?,
                borrower: r.get(1)?,
                due: day(r, 2)?,
                since: r.get::<_, Option<i64>>(3)?.map(wall),
            })
        })
        .optional()
}

/// The EPCs of the boxes out on loan now.
pub fn on_loan_epcs(conn: &Connection) -> rusqlite::Result<std::collections::HashSet<String>> {
    conn.prepare_cached(
        "SELECT b.epc FROM boxes_out o JOIN boxes b ON b.id = o.box_id WHERE b.epc IS NOT NULL",
    )?
    .query_map([], |r| r.get(0))?
    .collect()
}

/// The ledger.
#[derive(Clone)]
pub struct Loans {
    store: Store,
    rules: LoanRules,
    /// Wall time: the system's, or a test's.
    clock: Arc<dyn Clock>,
    /// Overdue loans, once a day each.
    overdue: tokio::sync::broadcast::Sender<LoanView>,
}

/// Which loans to list.
#[derive(Debug, Default, Clone)]
pub struct LoanFilter {
    pub state: Option<LoanState>,
    /// The borrower's name or a part of it, in any case (the desk's look-up).
    pub borrower: Option<String>,
    /// Loans that hold (or held) this box.
    pub archive_no: Option<String>,
    pub overdue: bool,
    pub limit: usize,
}

/// A transition asked of a loan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Approve,
    Reject,
    Cancel,
    Checkout,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Action::Approve => "approve",
            Action::Reject => "reject",
            Action::Cancel => "cancel",
            Action::Checkout => "check out",
        }
    }
}

fn record(
    conn: &Connection,
    id: i64,
    actor: &str,
    from: Option<LoanState>,
    to: LoanState,
    note: &str,
    now: Millis,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO loan_events (loan_id, at, actor, from_state, to_state, note) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![id, now, actor, from, to, note])?;
    Ok(())
}

fn view(conn: &Connection, id: i64, today: NaiveDate) -> Result<LoanView, LoanError> {
    type Row = (
        String,
        String,
        String,
        LoanKind,
        NaiveDate,
        LoanState,
        String,
        i64,
        Option<i64>,
        Option<i64>,
    );
    let row: Option<Row> = conn
        .prepare_cached(
            "SELECT borrower, department, purpose, kind, due, state, requested_by, created_at, checked_out_at, closed_at
             FROM loans WHERE id = ?1",
        )?
        .query_row([id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, day(r, 4)?, r.get(5)?, r.get(6)?, r.get(7)?, r.get(8)?, r.get(9)?))
        })
        .optional()?;
    let Some((borrower, department, purpose, kind, due, state, requested_by, created, out, closed)) =
        row
    else {
        return Err(LoanError::NoLoan(id));
    };
    let boxes = conn
        .prepare_cached(
            "SELECT b.archive_no, lb.inspection, lb.note, lb.returned_at, lb.settled FROM loan_boxes lb JOIN boxes b ON b.id = lb.box_id
             WHERE lb.loan_id = ?1 ORDER BY b.archive_no",
        )?
        .query_map([id], |r| {
            Ok(LoanBox {
                archive_no: r.get(0)?,
                inspection: r.get(1)?,
                note: r.get(2)?,
                returned_at: r.get::<_, Option<i64>>(3)?.map(wall),
                settled: r.get(4)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let events = conn
        .prepare_cached("SELECT at, actor, from_state, to_state, note FROM loan_events WHERE loan_id = ?1 ORDER BY id")?
        .query_map([id], |r| {
            Ok(LoanEvent {
                at: wall(r.get(0)?),
                actor: r.get(1)?,
                from: r.get(2)?,
                to: r.get(3)?,
                note: r.get(4)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(LoanView {
        id,
        borrower: Borrower {
            name: borrower,
            department,
        },
        boxes,
        purpose,
        kind,
        due,
        overdue: state.is_out() && due < today,
        state,
        requested_by,
        created_at: wall(created),
        checked_out_at: out.map(wall),
        closed_at: closed.map(wall),
        events,
    })
}

fn state_of(conn: &Connection, id: i64) -> Result<LoanState, LoanError> {
    conn.prepare_cached("SELECT state FROM loans WHERE id = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()?
        .ok_or(LoanError::NoLoan(id))
}

impl Loans {
    pub fn new(store: Store, rules: LoanRules) -> Loans {
        Loans {
            store,
            rules,
            clock: Arc::new(SystemClock),
            overdue: tokio::sync::broadcast::channel(256).0,
        }
    }

    /// The same ledger reading wall time from `clock`.
    pub fn with_clock(self, clock: Arc<dyn Clock>) -> Loans {
        Loans { clock, ..self }
    }

    fn today(&self) -> NaiveDate {
        self.clock.now().date_naive()
    }

    /// Loans found overdue: each once a day (event stream, MQTT `…/loans/overdue`).
    pub fn subscribe_overdue(&self) -> tokio::sync::broadcast::Receiver<LoanView> {
        self.overdue.subscribe()
    }

    /// Looks for overdue loans every `every`, and tells of each once a day.
    pub fn watch_overdue(&self, every: std::time::Duration, tasks: &crate::link::Tasks) {
        let this = self.clone();
        tasks.spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                match this.mark_overdue().await {
                    Ok(loans) => {
                        for loan in loans {
                            tracing::warn!(loan = loan.id, borrower = %loan.borrower.name, due = %loan.due, "loan overdue");
                            let _ = this.overdue.send(loan);
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "overdue loans could not be read"),
                }
            }
        });
    }

    /// The overdue loans not told of today, marked as told.
    async fn mark_overdue(&self) -> Result<Vec<LoanView>, LoanError> {
        let today = self.today();
        let ids = self
            .store
            .write(move |conn| {
                let day = today.format("%Y-%m-%d").to_string();
                let ids: Vec<i64> = conn
                    .prepare_cached(
                        "SELECT id FROM loans_out WHERE due < ?1
                         AND (overdue_notified IS NULL OR overdue_notified != ?1)",
                    )?
                    .query_map([&day], |r| r.get(0))?
                    .collect::<Result<_, _>>()?;
                for id in &ids {
                    conn.execute(
                        "UPDATE loans SET overdue_notified = ?2 WHERE id = ?1",
                        params![id, day],
                    )?;
                }
                Ok::<_, LoanError>(ids)
            })
            .await?;
        let mut out = Vec::new();
        for id in ids {
            out.push(self.get(id).await?);
        }
        Ok(out)
    }

    pub fn rules(&self) -> &LoanRules {
        &self.rules
    }

    /// Records a request; a kind that needs no approval is approved at once.
    pub async fn request(&self, new: NewLoan, who: &Identity) -> Result<LoanView, LoanError> {
        let today = self.today();
        if new.borrower.name.trim().is_empty() || new.borrower.name.len() > 200 {
            return Err(invalid("borrower.name", Unfit::NameLength));
        }
        if new.purpose.trim().is_empty() || new.purpose.len() > 2000 {
            return Err(invalid("purpose", Unfit::PurposeLength));
        }
        if new.boxes.is_empty() || new.boxes.len() > 500 {
            return Err(invalid("boxes", Unfit::BoxCount));
        }
        let rule = self.rules.rule(new.kind);
        if new.due < today {
            return Err(invalid("due", Unfit::DuePast { due: new.due }));
        }
        let days = (new.due - today).num_days();
        if days > rule.max_days as i64 {
            return Err(invalid(
                "due",
                Unfit::DueTooFar {
                    kind: new.kind,
                    max_days: rule.max_days,
                    until: today + chrono::Duration::days(rule.max_days as i64),
                },
            ));
        }
        let max = self.rules.max_boxes_per_borrower;
        let actor = who.name.clone();
        let now = self.clock.now_ms();
        let id = self
            .store
            .write(move |conn| {
                let mut ids = Vec::new();
                let mut seen = HashMap::new();
                for a in &new.boxes {
                    let id: i64 = conn
                        .prepare_cached("SELECT id FROM boxes WHERE archive_no = ?1")?
                        .query_row([a], |r| r.get(0))
                        .optional()?
                        .ok_or_else(|| LoanError::UnknownBox(a.clone()))?;
                    if seen.insert(id, ()).is_some() {
                        return Err(invalid("boxes", Unfit::NamedTwice { archive_no: a.clone() }));
                    }
                    let taken: Option<(i64, LoanState)> = conn
                        .prepare_cached("SELECT loan_id, state FROM boxes_held WHERE box_id = ?1")?
                        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
                        .optional()?;
                    if let Some((loan, state)) = taken {
                        return Err(LoanError::BoxTaken {
                            archive_no: a.clone(),
                            loan,
                            state,
                        });
                    }
                    ids.push(id);
                }
                let held: i64 = conn
                    .prepare_cached("SELECT count(*) FROM boxes_held WHERE borrower = ?1")?
                    .query_row([&new.borrower.name], |r| r.get(0))?;
                let would = held as usize + ids.len();
                if would > max {
                    return Err(LoanError::Limit {
                        borrower: new.borrower.name.clone(),
                        would,
                        max,
                    });
                }
                conn.prepare_cached(
                    "INSERT INTO loans (borrower, department, purpose, kind, due, state, requested_by, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?8, ?6, ?7)",
                )?
                .execute(params![
                    new.borrower.name.trim(),
                    new.borrower.department.trim(),
                    new.purpose.trim(),
                    new.kind,
                    new.due.format("%Y-%m-%d").to_string(),
                    actor,
                    now,
                    LoanState::Requested
                ])?;
                let loan = conn.last_insert_rowid();
                for b in ids {
                    conn.prepare_cached("INSERT INTO loan_boxes (loan_id, box_id) VALUES (?1, ?2)")?
                        .execute(params![loan, b])?;
                }
                record(conn, loan, &actor, None, LoanState::Requested, "", now)?;
                if rule.approval.is_none() {
                    conn.execute("UPDATE loans SET state = 'approved' WHERE id = ?1", [loan])?;
                    record(conn, loan, &actor, Some(LoanState::Requested), LoanState::Approved, &format!("{} loans need no approval", new.kind.as_str()), now)?;
                }
                Ok::<_, LoanError>(loan)
            })
            .await?;
        self.get(id).await
    }

    pub async fn get(&self, id: i64) -> Result<LoanView, LoanError> {
        let today = self.today();
        self.store.read(move |conn| view(conn, id, today)).await
    }

    pub async fn list(&self, filter: LoanFilter) -> Result<Vec<LoanView>, LoanError> {
        let today = self.today();
        self.store
            .read(move |conn| {
                let mut sql = "SELECT id FROM loans WHERE 1 = 1".to_string();
                let mut args: Vec<String> = Vec::new();
                if let Some(s) = filter.state {
                    args.push(s.as_str().to_string());
                    sql += &format!(" AND state = ?{}", args.len());
                }
                if let Some(b) = &filter.borrower {
                    let escaped = b.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
                    args.push(format!("%{escaped}%"));
                    sql += &format!(" AND borrower LIKE ?{} ESCAPE '\\'", args.len());
                }
                if let Some(a) = &filter.archive_no {
                    args.push(a.clone());
                    sql += &format!(
                        " AND id IN (SELECT lb.loan_id FROM loan_boxes lb JOIN boxes b ON b.id = lb.box_id
                                     WHERE b.archive_no = ?{})",
                        args.len()
                    );
                }
                if filter.overdue {
                    args.push(today.format("%Y-%m-%d").to_string());
                    sql += &format!(
                        " AND id IN (SELECT id FROM loans_out) AND due < ?{}",
                        args.len()
                    );
                }
                sql += &format!(" ORDER BY id DESC LIMIT {}", filter.limit.clamp(1, 1000));
                let ids: Vec<i64> = conn
                    .prepare(&sql)?
                    .query_map(rusqlite::params_from_iter(args.iter()), |r| r.get(0))?
                    .collect::<Result<_, _>>()?;
                ids.into_iter().map(|id| view(conn, id, today)).collect()
            })
            .await
    }

    /// Approve, reject, cancel or check out; 409 from a state that does not allow it.
    pub async fn act(
        &self,
        id: i64,
        action: Action,
        who: &Identity,
        note: &str,
    ) -> Result<LoanView, LoanError> {
        let rules = self.rules.clone();
        let (who, note) = (who.clone(), note.to_string());
        let now = self.clock.now_ms();
        self.store
            .write(move |conn| {
                let state = state_of(conn, id)?;
                let kind: LoanKind =
                    conn.query_row("SELECT kind FROM loans WHERE id = ?1", [id], |r| r.get(0))?;
                let to = state.after(action).map_err(|allowed| {
                    let allowed: Vec<&str> = allowed.iter().map(|s| s.as_str()).collect();
                    LoanError::WrongState {
                        id,
                        message: format!(
                            "only a loan that is {} can be asked to {}",
                            allowed.join(" or "),
                            action.as_str()
                        ),
                        state,
                    }
                })?;
                if matches!(action, Action::Approve | Action::Reject)
                    && let Some(need) = rules.rule(kind).approval
                    && who.role < need
                {
                    return Err(LoanError::Forbidden {
                        who: who.name.clone(),
                        role: who.role,
                        need,
                        what: format!("to {} a {} loan", action.as_str(), kind.as_str()),
                    });
                }
                if action == Action::Approve && rules.rule(kind).four_eyes {
                    let requester: String = conn.query_row(
                        "SELECT requested_by FROM loans WHERE id = ?1",
                        [id],
                        |r| r.get(0),
                    )?;
                    if requester == who.name {
                        return Err(LoanError::FourEyes {
                            id,
                            who: who.name.clone(),
                        });
                    }
                }
                match action {
                    Action::Checkout => {
                        conn.execute(
                            "UPDATE loans SET state = ?2, checked_out_at = ?3 WHERE id = ?1",
                            params![id, to, now],
                        )?;
                    }
                    Action::Reject | Action::Cancel => {
                        conn.execute(
                            "UPDATE loans SET state = ?2, closed_at = ?3 WHERE id = ?1",
                            params![id, to, now],
                        )?;
                    }
                    Action::Approve => {
                        conn.execute("UPDATE loans SET state = ?2 WHERE id = ?1", params![id, to])?;
                    }
                }
                record(conn, id, &who.name, Some(state), to, &note, now)?;
                Ok::<_, LoanError>(())
            })
            .await?;
        self.get(id).await
    }

    /// Takes boxes back with their inspection: `complete` ones are back on their shelves;
    /// any other result keeps the loan open as `return_refused`.
    pub async fn give_back(
        &self,
        id: i64,
        inspections: Vec<Inspection>,
        who: &Identity,
    ) -> Result<LoanView, LoanError> {
        if inspections.is_empty() {
            return Err(invalid("inspections", Unfit::NoInspections));
        }
        for i in &inspections {
            if !["complete", "damaged", "pages_missing", "wrong_box"].contains(&i.result.as_str()) {
                return Err(invalid(
                    "inspections.result",
                    Unfit::BadResult {
                        result: i.result.clone(),
                    },
                ));
            }
        }
        let who = who.name.clone();
        let now = self.clock.now_ms();
        self.store
            .write(move |conn| {
                let state = state_of(conn, id)?;
                if !state.is_out() {
                    return Err(LoanError::WrongState {
                        id,
                        state,
                        message: "only a checked-out loan is returned".into(),
                    });
                }
                let mut refused = Vec::new();
                for i in &inspections {
                    let box_id: Option<i64> = conn
                        .prepare_cached(
                            "SELECT lb.box_id FROM loan_boxes lb JOIN boxes b ON b.id = lb.box_id
                             WHERE lb.loan_id = ?1 AND b.archive_no = ?2 AND lb.returned_at IS NULL",
                        )?
                        .query_row(params![id, i.archive_no], |r| r.get(0))
                        .optional()?;
                    let Some(box_id) = box_id else {
                        return Err(invalid("inspections.archive_no", Unfit::NotOut { archive_no: i.archive_no.clone(), loan: id }));
                    };
                    let accepted = i.result == "complete";
                    conn.execute(
                        "UPDATE loan_boxes SET inspection = ?3, note = ?4, returned_at = ?5 WHERE loan_id = ?1 AND box_id = ?2",
                        params![id, box_id, i.result, i.note, accepted.then_some(now)],
                    )?;
                    if !accepted {
                        refused.push(format!("{}: {}", i.archive_no, i.result));
                    }
                }
                let out: i64 = conn.query_row(
                    "SELECT count(*) FROM loan_boxes WHERE loan_id = ?1 AND returned_at IS NULL",
                    [id],
                    |r| r.get(0),
                )?;
                let inspected = inspections.iter().map(|i| format!("{} {}", i.archive_no, i.result)).collect::<Vec<_>>().join(", ");
                let to = state.after_return(out == 0).expect("checked above: the loan is out");
                if to == LoanState::Returned {
                    conn.execute("UPDATE loans SET state = ?2, closed_at = ?3 WHERE id = ?1", params![id, to, now])?;
                } else {
                    conn.execute("UPDATE loans SET state = ?2 WHERE id = ?1", params![id, to])?;
                }
                let note = if refused.is_empty() {
                    format!("inspected: {inspected}")
                } else {
                    format!("inspected: {inspected}; not accepted: {}", refused.join(", "))
                };
                record(conn, id, &who, Some(state), to, &note, now)?;
                Ok::<_, LoanError>(())
            })
            .await?;
        self.get(id).await
    }

    /// Extends a loan that is out to `due`: later than it was, within the longest loan of
    /// its kind counted from today.
    pub async fn extend(
        &self,
        id: i64,
        due: NaiveDate,
        note: String,
        who: &Identity,
    ) -> Result<LoanView, LoanError> {
        if note.len() > 2000 {
            return Err(invalid("note", Unfit::NoteLength));
        }
        let today = self.today();
        let rules = self.rules.clone();
        let who = who.name.clone();
        let now = self.clock.now_ms();
        self.store
            .write(move |conn| {
                let state = state_of(conn, id)?;
                if state != LoanState::CheckedOut {
                    return Err(LoanError::WrongState {
                        id,
                        state,
                        message: "only a checked-out loan is extended".into(),
                    });
                }
                let (current, kind): (NaiveDate, LoanKind) = conn
                    .prepare_cached("SELECT due, kind FROM loans WHERE id = ?1")?
                    .query_row([id], |r| Ok((day(r, 0)?, r.get(1)?)))?;
                if due <= current {
                    return Err(invalid("due", Unfit::NotLater { due, current }));
                }
                let max_days = rules.rule(kind).max_days;
                let until = today + chrono::Duration::days(max_days as i64);
                if due > until {
                    return Err(invalid(
                        "due",
                        Unfit::DueTooFar {
                            kind,
                            max_days,
                            until,
                        },
                    ));
                }
                conn.execute(
                    "UPDATE loans SET due = ?2 WHERE id = ?1",
                    params![id, due.format("%Y-%m-%d").to_string()],
                )?;
                let said = if note.trim().is_empty() {
                    format!("extended from {current} to {due}")
                } else {
                    format!("extended from {current} to {due}; {}", note.trim())
                };
                record(conn, id, &who, Some(state), state, &said, now)?;
                Ok::<_, LoanError>(())
            })
            .await?;
        self.get(id).await
    }

    /// Settles a box that failed its return inspection (the loan is `return_refused`):
    /// `consequence` puts the box where it now is, in the same transaction. The loan is
    /// `returned` once no box is left out or unsettled.
    pub async fn settle(
        &self,
        id: i64,
        archive_no: String,
        settlement: Settlement,
        note: String,
        who: &Identity,
        consequence: Consequence,
    ) -> Result<LoanView, LoanError> {
        if note.trim().is_empty() || note.len() > 2000 {
            return Err(invalid("note", Unfit::NoteLength));
        }
        let who = who.name.clone();
        let now = self.clock.now_ms();
        self.store
            .write(move |conn| {
                let state = state_of(conn, id)?;
                if state != LoanState::ReturnRefused {
                    return Err(LoanError::WrongState {
                        id,
                        state,
                        message: "only a box whose return was refused is settled".into(),
                    });
                }
                let row: Option<(i64, Option<String>)> = conn
                    .prepare_cached(
                        "SELECT lb.box_id, lb.inspection FROM loan_boxes lb JOIN boxes b ON b.id = lb.box_id
                         WHERE lb.loan_id = ?1 AND b.archive_no = ?2 AND lb.returned_at IS NULL",
                    )?
                    .query_row(params![id, archive_no], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()?;
                let Some((box_id, inspection)) = row else {
                    return Err(invalid("archive_no", Unfit::NotOut { archive_no, loan: id }));
                };
                let Some(inspection) = inspection.filter(|i| i != "complete") else {
                    return Err(invalid("archive_no", Unfit::NothingToSettle { archive_no }));
                };
                conn.execute(
                    "UPDATE loan_boxes SET settled = ?3, returned_at = ?5,
                            note = CASE WHEN note = '' THEN ?4 ELSE note || ' — ' || ?4 END
                     WHERE loan_id = ?1 AND box_id = ?2",
                    params![id, box_id, settlement, note, now],
                )?;
                consequence(conn, box_id)?;
                let out: i64 = conn.query_row(
                    "SELECT count(*) FROM loan_boxes WHERE loan_id = ?1 AND returned_at IS NULL",
                    [id],
                    |r| r.get(0),
                )?;
                let to = if out == 0 { LoanState::Returned } else { state };
                if to == LoanState::Returned {
                    conn.execute("UPDATE loans SET state = ?2, closed_at = ?3 WHERE id = ?1", params![id, to, now])?;
                }
                let said = format!("{archive_no} ({inspection}) settled: {}; {note}", settlement.name());
                record(conn, id, &who, Some(state), to, &said, now)?;
                Ok::<_, LoanError>(())
            })
            .await?;
        self.get(id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_unfit_rule_is_listed_by_its_code() {
        let day = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
        let all = [
            Unfit::NameLength,
            Unfit::PurposeLength,
            Unfit::BoxCount,
            Unfit::DuePast { due: day },
            Unfit::DueTooFar {
                kind: LoanKind::ReadingRoom,
                max_days: 7,
                until: day,
            },
            Unfit::NamedTwice {
                archive_no: "A".into(),
            },
            Unfit::NoInspections,
            Unfit::BadResult { result: "x".into() },
            Unfit::NotOut {
                archive_no: "A".into(),
                loan: 1,
            },
            Unfit::NothingToSettle {
                archive_no: "A".into(),
            },
            Unfit::NoteLength,
            Unfit::NotLater {
                due: day,
                current: day,
            },
        ];
        assert_eq!(all.len(), Unfit::CODES.len());
        for (unfit, code) in all.iter().zip(Unfit::CODES) {
            assert_eq!(serde_json::to_value(unfit).unwrap()["rule"], *code);
        }
    }

    #[tokio::test]
    async fn a_loan_falls_overdue_when_the_clock_passes_its_due_day_and_is_told_once_a_day() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        store
            .write(|c| {
                c.execute_batch(
                    "INSERT INTO boxes (archive_no, title, series, created_at) VALUES ('B-1', 't', 'B', 0)",
                )
                .map_err(StoreError::from)
            })
            .await
            .unwrap();
        // Noon UTC on 2027-03-01.
        let clock = crate::time::ManualClock::at(1_803_902_400_000);
        let loans = Loans::new(store, LoanRules::default()).with_clock(Arc::new(clock.clone()));
        let clerk = Identity {
            name: "desk".into(),
            role: Role::Admin,
        };
        let loan = loans
            .request(
                NewLoan {
                    borrower: Borrower {
                        name: "Li".into(),
                        department: String::new(),
                    },
                    boxes: vec!["B-1".into()],
                    purpose: "audit".into(),
                    kind: LoanKind::ReadingRoom,
                    due: NaiveDate::from_ymd_opt(2027, 3, 3).unwrap(),
                },
                &clerk,
            )
            .await
            .unwrap();
        assert_eq!(loan.created_at.timestamp_millis(), 1_803_902_400_000);
        loans
            .act(loan.id, Action::Checkout, &clerk, "")
            .await
            .unwrap();
        let day = std::time::Duration::from_secs(86_400);
        clock.advance(2 * day);
        assert!(!loans.get(loan.id).await.unwrap().overdue, "due today");
        assert!(loans.mark_overdue().await.unwrap().is_empty());
        clock.advance(day);
        assert!(loans.get(loan.id).await.unwrap().overdue);
        assert_eq!(loans.mark_overdue().await.unwrap().len(), 1);
        assert!(loans.mark_overdue().await.unwrap().is_empty(), "once a day");
        clock.advance(day);
        assert_eq!(
            loans.mark_overdue().await.unwrap().len(),
            1,
            "and the next day again"
        );
    }

    #[test]
    fn the_life_of_a_loan_is_a_table_of_states() {
        use LoanState::*;
        assert_eq!(Requested.after(Action::Approve), Ok(Approved));
        assert_eq!(Requested.after(Action::Reject), Ok(Rejected));
        assert_eq!(Approved.after(Action::Checkout), Ok(CheckedOut));
        assert_eq!(Approved.after(Action::Cancel), Ok(Cancelled));
        assert_eq!(Requested.after(Action::Checkout), Err(&[Approved][..]));
        assert_eq!(
            CheckedOut.after(Action::Cancel),
            Err(&[Requested, Approved][..])
        );
        for s in [Rejected, Returned, Cancelled] {
            for a in [
                Action::Approve,
                Action::Reject,
                Action::Cancel,
                Action::Checkout,
            ] {
                assert!(s.after(a).is_err(), "{s} may not {a:?}");
            }
            assert_eq!(s.after_return(true), None);
        }
        assert_eq!(CheckedOut.after_return(false), Some(ReturnRefused));
        assert_eq!(ReturnRefused.after_return(true), Some(Returned));
        assert_eq!(Approved.after_return(true), None);
        assert_eq!("return_refused".parse(), Ok(ReturnRefused));
        assert!(
            "lost"
                .parse::<LoanState>()
                .unwrap_err()
                .contains("one of requested")
        );
    }

    #[test]
    fn rules_take_roles_or_none_and_refuse_the_rest() {
        let raw: RawLoans = toml::from_str(
            "max_boxes_per_borrower = 5\nreading_room = { approval = \"none\", max_days = 3 }\nexternal = { approval = \"admin\", max_days = 14 }",
        )
        .unwrap();
        let r = rules(raw).unwrap();
        assert_eq!(r.external.approval, Some(Role::Admin));
        assert_eq!(r.reading_room.approval, None);
        let raw: RawLoans =
            toml::from_str("external = { approval = \"boss\", max_days = 14 }").unwrap();
        let (key, message) = rules(raw).unwrap_err();
        assert_eq!(key, "loans.external.approval");
        assert!(message.contains("approver"), "{message}");
    }
}

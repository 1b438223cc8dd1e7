//! Retention (保管期限) and disposal (鉴定/销毁).
//!
//! A box's retention class comes from the config (`[retention]`: the class its `retention`
//! field names, else its archive number's parts, else the default); the class says how many
//! years it is kept from which day (a date field such as the account's closing, or its
//! registration). The appraisal lists the boxes whose period has ended. Disposal is a
//! four-eyes procedure: proposed (boxes that are due, on no loan, in no other open
//! disposal), approved or rejected by a second person, carried out with the method and a
//! witness. Carrying out takes each box off its shelf and out of search in one transaction;
//! its record, history and the disposal with its certificate are kept for ever.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Months, NaiveDate, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::config::records::{RetentionClass, parse_date};
use crate::documents::{Column, Form};
use crate::location::{LocationError, LocationService, Provenance, Source, box_id};
use crate::time::{Clock, SystemClock, wall};

/// A box's retention class, and when its period ends: the day it runs from (`None`: its
/// registration) and the day it ends. No class: none applies; no end: the class keeps it
/// permanently, or the day its period runs from is not recorded yet (an account still open).
#[allow(clippy::type_complexity)]
pub fn due<'a>(
    config: &'a crate::config::RoomConfig,
    archive_no: &str,
    fields: &serde_json::Map<String, serde_json::Value>,
    created_at: i64,
) -> (
    Option<&'a RetentionClass>,
    Option<(Option<String>, NaiveDate)>,
) {
    let named = fields.get("retention").and_then(|v| v.as_str());
    let class = config
        .retention
        .class_of(named, &|part| config.archive_rule.part_of(archive_no, part));
    let end = class.and_then(|class| {
        let years = class.years?;
        let (from_text, from) = match &class.from {
            Some(field) => {
                let text = fields.get(field)?.as_str()?.to_string();
                let day = parse_date(&text)?;
                (Some(text), day)
            }
            None => (None, wall(created_at).date_naive()),
        };
        Some((from_text, from.checked_add_months(Months::new(years * 12))?))
    });
    (class, end)
}

/// A box whose retention period has ended.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct DueBox {
    pub archive_no: String,
    pub title: String,
    /// The retention class's id and name.
    pub class: String,
    pub class_name: String,
    /// The day the period ran from (null: the box's registration).
    pub from: Option<String>,
    /// The day the period ended.
    pub due: String,
    pub shelf: Option<String>,
}

/// The appraisal list: what is due, as of a day.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Appraisal {
    pub as_of: String,
    pub total: u64,
    pub items: Vec<DueBox>,
}

/// Where a disposal stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DisposalState {
    Proposed,
    Approved,
    Rejected,
    CarriedOut,
}

impl DisposalState {
    pub fn as_str(self) -> &'static str {
        match self {
            DisposalState::Proposed => "proposed",
            DisposalState::Approved => "approved",
            DisposalState::Rejected => "rejected",
            DisposalState::CarriedOut => "carried_out",
        }
    }

    fn parse(text: &str) -> DisposalState {
        match text {
            "approved" => DisposalState::Approved,
            "rejected" => DisposalState::Rejected,
            "carried_out" => DisposalState::CarriedOut,
            _ => DisposalState::Proposed,
        }
    }
}

/// A disposal and its boxes.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Disposal {
    pub id: i64,
    pub state: DisposalState,
    pub reason: String,
    pub proposed_by: String,
    pub proposed_at: DateTime<Utc>,
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    pub decision_note: Option<String>,
    pub carried_out_by: Option<String>,
    pub carried_out_at: Option<DateTime<Utc>>,
    pub method: Option<String>,
    pub witness: Option<String>,
    /// The boxes as they were when proposed.
    pub boxes: Vec<DueBox>,
}

/// Why a disposal step cannot be taken.
#[derive(Debug, thiserror::Error)]
pub enum DisposalError {
    #[error("no disposal {0}")]
    NotFound(i64),
    #[error("disposal {id} is {}; this needs it {}", .state.as_str(), .wanted.as_str())]
    State {
        id: i64,
        state: DisposalState,
        wanted: DisposalState,
    },
    #[error("'{0}' proposed this disposal: a second person decides it (four eyes)")]
    FourEyes(String),
    #[error("box '{archive_no}' is not due: {why}")]
    NotDue { archive_no: String, why: String },
    #[error("box '{archive_no}' is on loan {loan}: it is disposed of once it is back")]
    OnLoan { archive_no: String, loan: i64 },
    #[error("box '{archive_no}' is in disposal {id} already")]
    InDisposal { archive_no: String, id: i64 },
    #[error(transparent)]
    Location(#[from] LocationError),
}

impl From<crate::store::StoreError> for DisposalError {
    fn from(e: crate::store::StoreError) -> Self {
        DisposalError::Location(e.into())
    }
}

impl From<rusqlite::Error> for DisposalError {
    fn from(e: rusqlite::Error) -> Self {
        DisposalError::Location(e.into())
    }
}

fn invalid(field: &str, message: impl Into<String>) -> DisposalError {
    DisposalError::Location(LocationError::invalid(field, message))
}

/// The most boxes one disposal takes.
pub const MAX_BOXES: usize = 5000;

/// Retention and disposal over the boxes of [`LocationService`].
#[derive(Clone)]
pub struct Retention {
    locations: LocationService,
    clock: Arc<dyn Clock>,
}

/// A box as the appraisal reads it.
struct Candidate {
    id: i64,
    archive_no: String,
    title: String,
    fields: serde_json::Map<String, serde_json::Value>,
    created_at: i64,
}

impl Retention {
    pub fn new(locations: LocationService) -> Retention {
        Retention {
            locations,
            clock: Arc::new(SystemClock),
        }
    }

    pub fn with_clock(self, clock: Arc<dyn Clock>) -> Retention {
        Retention { clock, ..self }
    }

    fn classes(&self) -> &BTreeMap<String, RetentionClass> {
        &self.locations.config().retention.classes
    }

    pub fn today(&self) -> NaiveDate {
        self.clock.now().date_naive()
    }

    fn due_of<'a>(
        &'a self,
        b: &Candidate,
    ) -> Option<(&'a RetentionClass, Option<String>, NaiveDate)> {
        let (class, due) = due(
            self.locations.config(),
            &b.archive_no,
            &b.fields,
            b.created_at,
        );
        let (from, due) = due?;
        Some((class?, from, due))
    }

    fn candidate(conn: &Connection, id: i64) -> rusqlite::Result<Candidate> {
        conn.prepare_cached(
            "SELECT archive_no, title, fields, created_at FROM boxes WHERE id = ?1",
        )?
        .query_row([id], |r| {
            let fields: String = r.get(2)?;
            Ok(Candidate {
                id,
                archive_no: r.get(0)?,
                title: r.get(1)?,
                fields: serde_json::from_str(&fields).unwrap_or_default(),
                created_at: r.get(3)?,
            })
        })
    }

    fn shelf_of(conn: &Connection, id: i64) -> rusqlite::Result<Option<String>> {
        conn.prepare_cached(
            "SELECT s.address FROM bindings b JOIN shelves s ON s.id = b.shelf_id WHERE b.box_id = ?1",
        )?
        .query_row([id], |r| r.get(0))
        .optional()
    }

    fn due_box(
        &self,
        conn: &Connection,
        b: &Candidate,
        as_of: NaiveDate,
    ) -> rusqlite::Result<Option<DueBox>> {
        let Some((class, from, due)) = self.due_of(b) else {
            return Ok(None);
        };
        if due > as_of {
            return Ok(None);
        }
        Ok(Some(DueBox {
            archive_no: b.archive_no.clone(),
            title: b.title.clone(),
            class: class.id.clone(),
            class_name: class.name.clone(),
            from,
            due: due.to_string(),
            shelf: Self::shelf_of(conn, b.id)?,
        }))
    }

    /// The boxes due as of `as_of` (default today) that are not destroyed nor in an open
    /// disposal, by due day and archive number; `limit` of them (1 to 5,000) after `offset`,
    /// and the total.
    pub async fn appraisal(
        &self,
        as_of: Option<NaiveDate>,
        offset: usize,
        limit: usize,
    ) -> Result<Appraisal, DisposalError> {
        let as_of = as_of.unwrap_or_else(|| self.today());
        let limit = limit.clamp(1, MAX_BOXES);
        let this = self.clone();
        self.locations
            .store()
            .read(move |conn| {
                let mut ids: Vec<i64> = Vec::new();
                // Only what could be due is read: per class, the boxes whose starting day
                // lies at least its years back.
                for class in this.locations.config().retention.classes.values() {
                    let Some(years) = class.years else { continue };
                    let Some(cutoff) = as_of.checked_sub_months(Months::new(years * 12)) else {
                        continue;
                    };
                    match &class.from {
                        Some(field) => {
                            let mut st = conn.prepare_cached(
                                "SELECT box_id FROM box_field_values WHERE key = ?1 AND value <= ?2",
                            )?;
                            for id in st.query_map(params![field, cutoff.to_string()], |r| r.get(0))? {
                                ids.push(id?);
                            }
                        }
                        None => {
                            let end = cutoff
                                .succ_opt()
                                .and_then(|d| d.and_hms_opt(0, 0, 0))
                                .map_or(i64::MIN, |t| t.and_utc().timestamp_millis());
                            let mut st = conn.prepare_cached("SELECT id FROM boxes WHERE created_at < ?1")?;
                            for id in st.query_map([end], |r| r.get(0))? {
                                ids.push(id?);
                            }
                        }
                    }
                }
                ids.sort_unstable();
                ids.dedup();
                let mut due = Vec::new();
                let mut out = conn.prepare_cached(
                    "SELECT 1 FROM boxes_disposed WHERE box_id = ?1
                     UNION ALL SELECT 1 FROM disposal_boxes db JOIN disposals d ON d.id = db.disposal_id
                       WHERE db.box_id = ?1 AND d.state IN ('proposed', 'approved')",
                )?;
                for id in ids {
                    if out.exists([id])? {
                        continue;
                    }
                    let b = Self::candidate(conn, id)?;
                    if let Some(d) = this.due_box(conn, &b, as_of)? {
                        due.push(d);
                    }
                }
                due.sort_by(|a, b| (&a.due, &a.archive_no).cmp(&(&b.due, &b.archive_no)));
                let total = due.len() as u64;
                let due: Vec<DueBox> = due.into_iter().skip(offset).take(limit).collect();
                Ok(Appraisal {
                    as_of: as_of.to_string(),
                    total,
                    items: due,
                })
            })
            .await
    }

    /// Proposes the disposal of boxes that are due today.
    pub async fn propose(
        &self,
        archive_nos: Vec<String>,
        reason: &str,
        actor: &str,
    ) -> Result<Disposal, DisposalError> {
        let reason = reason.trim().to_string();
        if reason.is_empty() || reason.chars().count() > 1000 {
            return Err(invalid(
                "reason",
                "say why (1 to 1000 characters): the certificate says it",
            ));
        }
        if archive_nos.is_empty() || archive_nos.len() > MAX_BOXES {
            return Err(invalid(
                "boxes",
                format!("list 1 to {MAX_BOXES} archive numbers"),
            ));
        }
        let today = self.today();
        let now = self.clock.now_ms();
        let this = self.clone();
        let actor = actor.to_string();
        let id = self
            .locations
            .store()
            .write(move |conn| {
                let mut seen = HashSet::new();
                let mut rows = Vec::new();
                for no in &archive_nos {
                    let no = no.trim();
                    if !seen.insert(no.to_string()) {
                        return Err(invalid("boxes", format!("'{no}' is listed twice")));
                    }
                    let id = box_id(conn, no)?;
                    this.locations.refuse_disposed(conn, id, no)?;
                    let open: Option<i64> = conn
                        .prepare_cached(
                            "SELECT d.id FROM disposal_boxes db JOIN disposals d ON d.id = db.disposal_id
                             WHERE db.box_id = ?1 AND d.state IN ('proposed', 'approved')",
                        )?
                        .query_row([id], |r| r.get(0))
                        .optional()?;
                    if let Some(open) = open {
                        return Err(DisposalError::InDisposal { archive_no: no.into(), id: open });
                    }
                    let loan: Option<i64> = conn
                        .prepare_cached("SELECT loan_id FROM boxes_held WHERE box_id = ?1")?
                        .query_row([id], |r| r.get(0))
                        .optional()?;
                    if let Some(loan) = loan {
                        return Err(DisposalError::OnLoan { archive_no: no.into(), loan });
                    }
                    let b = Self::candidate(conn, id)?;
                    let Some(due) = this.due_box(conn, &b, today)? else {
                        let why = match this.due_of(&b) {
                            Some((_, _, due)) => format!("its retention ends on {due}"),
                            None => "it is kept permanently, or the day its period runs from is not recorded".into(),
                        };
                        return Err(DisposalError::NotDue { archive_no: no.into(), why });
                    };
                    rows.push((id, due));
                }
                conn.prepare_cached(
                    "INSERT INTO disposals (state, reason, proposed_by, proposed_at) VALUES ('proposed', ?1, ?2, ?3)",
                )?
                .execute(params![reason, actor, now])?;
                let disposal = conn.last_insert_rowid();
                let mut insert = conn.prepare_cached(
                    "INSERT INTO disposal_boxes (disposal_id, box_id, archive_no, title, class, due, shelf)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )?;
                for (id, d) in &rows {
                    insert.execute(params![disposal, id, d.archive_no, d.title, d.class, d.due, d.shelf])?;
                }
                Ok::<_, DisposalError>(disposal)
            })
            .await?;
        self.get(id).await
    }

    /// Approves or rejects a proposed disposal; not by the person who proposed it.
    pub async fn decide(
        &self,
        id: i64,
        approve: bool,
        note: &str,
        actor: &str,
    ) -> Result<Disposal, DisposalError> {
        let note = note.trim().to_string();
        if note.chars().count() > 1000 {
            return Err(invalid("note", "must be at most 1000 characters"));
        }
        let now = self.clock.now_ms();
        let actor = actor.to_string();
        self.locations
            .store()
            .write(move |conn| {
                let (state, proposer) = state_of(conn, id)?;
                if state != DisposalState::Proposed {
                    return Err(DisposalError::State { id, state, wanted: DisposalState::Proposed });
                }
                if proposer == actor {
                    return Err(DisposalError::FourEyes(proposer));
                }
                let to = if approve { DisposalState::Approved } else { DisposalState::Rejected };
                conn.prepare_cached(
                    "UPDATE disposals SET state = ?2, decided_by = ?3, decided_at = ?4, decision_note = ?5 WHERE id = ?1",
                )?
                .execute(params![id, to.as_str(), actor, now, (!note.is_empty()).then_some(note)])?;
                Ok::<_, DisposalError>(())
            })
            .await?;
        self.get(id).await
    }

    /// Carries out an approved disposal: every box off its shelf and out of search, in one
    /// transaction; none if any of them went out on loan since.
    pub async fn carry_out(
        &self,
        id: i64,
        method: &str,
        witness: &str,
        actor: &str,
    ) -> Result<Disposal, DisposalError> {
        let method = method.trim().to_string();
        let witness = witness.trim().to_string();
        if method.is_empty() || method.chars().count() > 200 {
            return Err(invalid(
                "method",
                "say how the boxes were destroyed (1 to 200 characters), e.g. 粉碎 shredded",
            ));
        }
        if witness.is_empty() || witness.chars().count() > 200 {
            return Err(invalid(
                "witness",
                "name who witnessed it (1 to 200 characters)",
            ));
        }
        let now = self.clock.now_ms();
        let this = self.clone();
        let actor = actor.to_string();
        self.locations
            .store()
            .write(move |conn| {
                let (state, _) = state_of(conn, id)?;
                if state != DisposalState::Approved {
                    return Err(DisposalError::State { id, state, wanted: DisposalState::Approved });
                }
                let boxes: Vec<(i64, String)> = conn
                    .prepare_cached("SELECT box_id, archive_no FROM disposal_boxes WHERE disposal_id = ?1")?
                    .query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<Result<_, _>>()?;
                let provenance = Provenance {
                    actor: actor.clone(),
                    reason: format!("destroyed: disposal {id}"),
                    source: Source::Manual,
                    confidence: 1.0,
                };
                for (box_id, archive_no) in &boxes {
                    let loan: Option<i64> = conn
                        .prepare_cached("SELECT loan_id FROM boxes_held WHERE box_id = ?1")?
                        .query_row([box_id], |r| r.get(0))
                        .optional()?;
                    if let Some(loan) = loan {
                        return Err(DisposalError::OnLoan { archive_no: archive_no.clone(), loan });
                    }
                    this.locations.dispose_in(conn, *box_id, id, &provenance, now)?;
                }
                conn.prepare_cached(
                    "UPDATE disposals SET state = 'carried_out', carried_out_by = ?2, carried_out_at = ?3,
                        method = ?4, witness = ?5 WHERE id = ?1",
                )?
                .execute(params![id, actor, now, method, witness])?;
                Ok::<_, DisposalError>(())
            })
            .await?;
        self.get(id).await
    }

    /// One disposal with its boxes.
    pub async fn get(&self, id: i64) -> Result<Disposal, DisposalError> {
        let this = self.clone();
        self.locations
            .store()
            .read(move |conn| {
                disposal(conn, id, this.classes())?.ok_or(DisposalError::NotFound(id))
            })
            .await
    }

    /// Disposals, newest first, optionally in one state.
    pub async fn list(&self, state: Option<DisposalState>) -> Result<Vec<Disposal>, DisposalError> {
        let this = self.clone();
        self.locations
            .store()
            .read(move |conn| {
                let ids: Vec<i64> = conn
                    .prepare_cached("SELECT id FROM disposals WHERE ?1 IS NULL OR state = ?1 ORDER BY id DESC LIMIT 500")?
                    .query_map([state.map(DisposalState::as_str)], |r| r.get(0))?
                    .collect::<Result<_, _>>()?;
                let mut out = Vec::with_capacity(ids.len());
                for id in ids {
                    out.extend(disposal(conn, id, this.classes())?);
                }
                Ok(out)
            })
            .await
    }

    /// The disposal certificate (销毁清册): what was destroyed, why, by whom, approved by
    /// whom, how, witnessed by whom. Only for a disposal carried out.
    pub fn certificate(&self, d: &Disposal) -> Result<Form, DisposalError> {
        if d.state != DisposalState::CarriedOut {
            return Err(DisposalError::State {
                id: d.id,
                state: d.state,
                wanted: DisposalState::CarriedOut,
            });
        }
        let day = |t: Option<DateTime<Utc>>| {
            t.map(|t| t.format("%Y-%m-%d").to_string())
                .unwrap_or_default()
        };
        let config = self.locations.config();
        Ok(Form {
            title: format!("档案销毁清册 Disposal certificate No. {}", d.id),
            particulars: vec![
                (
                    "单位 Archive".into(),
                    format!(
                        "{} · {}",
                        config.site_name.in_language(config.language),
                        config.room_name.in_language(config.language)
                    ),
                ),
                ("销毁理由 Reason".into(), d.reason.clone()),
                (
                    "提出 Proposed".into(),
                    format!("{} {}", d.proposed_by, day(Some(d.proposed_at))),
                ),
                (
                    "批准 Approved".into(),
                    format!(
                        "{} {}",
                        d.decided_by.clone().unwrap_or_default(),
                        day(d.decided_at)
                    ),
                ),
                (
                    "销毁 Destroyed".into(),
                    format!(
                        "{} {} · {}",
                        d.carried_out_by.clone().unwrap_or_default(),
                        day(d.carried_out_at),
                        d.method.clone().unwrap_or_default()
                    ),
                ),
                (
                    "监销人 Witness".into(),
                    d.witness.clone().unwrap_or_default(),
                ),
            ],
            columns: vec![
                Column::new("序号 No.", 12.0),
                Column::new("档号 Archive number", 40.0),
                Column::new("题名 Title", 68.0),
                Column::new("保管期限 Class", 26.0),
                Column::new("到期 Due", 28.0),
            ],
            rows: d
                .boxes
                .iter()
                .enumerate()
                .map(|(i, b)| {
                    vec![
                        (i + 1).to_string(),
                        b.archive_no.clone(),
                        b.title.clone(),
                        b.class_name.clone(),
                        b.due.clone(),
                    ]
                })
                .collect(),
            after: vec![format!("共 {} 盒 ({} boxes)", d.boxes.len(), d.boxes.len())],
            signatures: vec![
                "销毁人 Destroyed by".into(),
                "监销人 Witness".into(),
                "批准人 Approved by".into(),
            ],
            footer: format!("stackroom · {} · disposal {}", config.room_id, d.id),
        })
    }
}

fn state_of(conn: &Connection, id: i64) -> Result<(DisposalState, String), DisposalError> {
    conn.prepare_cached("SELECT state, proposed_by FROM disposals WHERE id = ?1")?
        .query_row([id], |r| {
            Ok((DisposalState::parse(&r.get::<_, String>(0)?), r.get(1)?))
        })
        .optional()?
        .ok_or(DisposalError::NotFound(id))
}

/// A disposal as stored; `classes` names the retention classes of its boxes.
fn disposal(
    conn: &Connection,
    id: i64,
    classes: &BTreeMap<String, RetentionClass>,
) -> rusqlite::Result<Option<Disposal>> {
    let Some(mut d) = conn
        .prepare_cached(
            "SELECT state, reason, proposed_by, proposed_at, decided_by, decided_at, decision_note,
                    carried_out_by, carried_out_at, method, witness FROM disposals WHERE id = ?1",
        )?
        .query_row([id], |r| {
            Ok(Disposal {
                id,
                state: DisposalState::parse(&r.get::<_, String>(0)?),
                reason: r.get(1)?,
                proposed_by: r.get(2)?,
                proposed_at: wall(r.get(3)?),
                decided_by: r.get(4)?,
                decided_at: r.get::<_, Option<i64>>(5)?.map(wall),
                decision_note: r.get(6)?,
                carried_out_by: r.get(7)?,
                carried_out_at: r.get::<_, Option<i64>>(8)?.map(wall),
                method: r.get(9)?,
                witness: r.get(10)?,
                boxes: Vec::new(),
            })
        })
        .optional()?
    else {
        return Ok(None);
    };
    d.boxes = conn
        .prepare_cached(
            "SELECT archive_no, title, class, due, shelf FROM disposal_boxes WHERE disposal_id = ?1 ORDER BY archive_no",
        )?
        .query_map([id], |r| {
            let class: String = r.get(2)?;
            Ok(DueBox {
                archive_no: r.get(0)?,
                title: r.get(1)?,
                class_name: classes.get(&class).map_or_else(|| class.clone(), |c| c.name.clone()),
                class,
                from: None,
                due: r.get(3)?,
                shelf: r.get(4)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(Some(d))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::location::{BoxKey, NewBox};
    use crate::time::ManualClock;

    const EXTRA: &str = r#"
[boxes.fields.closed]
type = "date"
[retention]
default = "p"
[retention.classes.p]
name = "永久"
[retention.classes.y10]
name = "10年"
years = 10
from = "closed"
[retention.classes.y1]
years = 1
[retention.by_part]
cat = { L = "y10" }
"#;

    async fn setup() -> (tempfile::TempDir, LocationService, Retention) {
        let (dir, locations) = crate::location::test_room(EXTRA).await;
        let clock = ManualClock::at(crate::location::TEST_TODAY_MS);
        let retention = Retention::new(locations.clone()).with_clock(Arc::new(clock));
        for (no, closed, retention, shelf) in [
            ("L-001", "2014-05-01", None, "R1-C1-R-S1-L1"),
            ("L-002", "2016-12-02", None, "R1-C1-R-S1-L1"),
            ("L-003", "", None, "R1-C1-R-S1-L2"),
            ("H-001", "2001-01-01", None, "R1-C2-L-S1-L1"),
            ("H-002", "2001-01-01", Some("y10"), "R1-C2-L-S1-L1"),
        ] {
            let mut fields = serde_json::Map::new();
            fields.insert("closed".into(), closed.into());
            if let Some(r) = retention {
                fields.insert("retention".into(), r.into());
            }
            let new = NewBox {
                archive_no: no.into(),
                title: format!("供用电合同 {no}"),
                fields,
                shelf: Some(shelf.into()),
                ..NewBox::default()
            };
            locations.register(new, "intake").await.unwrap();
        }
        (dir, locations, retention)
    }

    #[tokio::test]
    async fn the_appraisal_lists_what_its_class_says_is_due() {
        let (_dir, _locations, retention) = setup().await;
        let list = retention.appraisal(None, 0, 100).await.unwrap();
        assert_eq!(list.as_of, "2026-12-01");
        let due: Vec<(&str, &str, &str)> = list
            .items
            .iter()
            .map(|b| (b.archive_no.as_str(), b.class.as_str(), b.due.as_str()))
            .collect();
        // H-001 is permanent (the default); L-002 ends tomorrow; L-003 is still open; a
        // box names its own class (H-002).
        assert_eq!(
            due,
            [
                ("H-002", "y10", "2011-01-01"),
                ("L-001", "y10", "2024-05-01")
            ]
        );
        assert_eq!(list.items[1].shelf.as_deref(), Some("R1-C1-R-S1-L1"));
        let later = retention
            .appraisal(NaiveDate::from_ymd_opt(2027, 1, 1), 0, 100)
            .await
            .unwrap();
        assert_eq!(later.total, 3, "L-002 is due a month later");
    }

    #[tokio::test]
    async fn a_disposal_needs_a_second_person_and_leaves_the_record_but_not_the_shelf() {
        let (_dir, locations, retention) = setup().await;
        let not_due = retention
            .propose(vec!["L-001".into(), "L-002".into()], "到期", "wang")
            .await;
        assert!(
            matches!(&not_due, Err(DisposalError::NotDue { archive_no, why }) if archive_no == "L-002" && why.contains("2026-12-02")),
            "{not_due:?}"
        );
        let permanent = retention
            .propose(vec!["H-001".into()], "到期", "wang")
            .await;
        assert!(matches!(permanent, Err(DisposalError::NotDue { .. })));
        let d = retention
            .propose(
                vec!["L-001".into(), "H-002".into()],
                "保管期满，经鉴定无保存价值",
                "wang",
            )
            .await
            .unwrap();
        assert_eq!((d.state, d.boxes.len()), (DisposalState::Proposed, 2));
        assert_eq!(d.boxes[0].class_name, "10年");
        let again = retention.propose(vec!["L-001".into()], "again", "li").await;
        assert!(matches!(again, Err(DisposalError::InDisposal { id, .. }) if id == d.id));
        assert!(
            retention
                .appraisal(None, 0, 10)
                .await
                .unwrap()
                .items
                .is_empty(),
            "in a disposal"
        );
        assert!(matches!(
            retention.carry_out(d.id, "粉碎", "zhao", "wang").await,
            Err(DisposalError::State {
                wanted: DisposalState::Approved,
                ..
            })
        ));
        assert!(matches!(
            retention.decide(d.id, true, "", "wang").await,
            Err(DisposalError::FourEyes(who)) if who == "wang"
        ));
        let approved = retention.decide(d.id, true, "同意", "chen").await.unwrap();
        assert_eq!(approved.state, DisposalState::Approved);
        assert!(
            retention.certificate(&approved).is_err(),
            "no certificate before it is done"
        );
        let done = retention
            .carry_out(d.id, "粉碎", "zhao", "wang")
            .await
            .unwrap();
        assert_eq!(done.state, DisposalState::CarriedOut);

        // Off its shelf, out of search, record and history kept.
        assert!(matches!(
            locations.locate(BoxKey::ArchiveNo("L-001".into())).await,
            Err(LocationError::Disposed { disposal, .. }) if disposal == d.id
        ));
        assert!(
            locations
                .search("供用电合同", 10)
                .await
                .unwrap()
                .iter()
                .all(|b| b.archive_no != "L-001")
        );
        assert!(locations.search("L-001", 10).await.unwrap().is_empty());
        let view = locations.get_box("L-001").await.unwrap();
        assert_eq!(view.disposed.as_ref().map(|x| x.disposal), Some(d.id));
        let history = locations.history("L-001", None).await.unwrap();
        let last = history.events.last().unwrap();
        assert_eq!(
            (last.kind.as_str(), last.reason.as_str()),
            ("unbind", format!("destroyed: disposal {}", d.id).as_str())
        );
        let rebind = locations
            .bind("L-001", "R1-C1-R-S1-L1", Provenance::manual("x", "back"))
            .await;
        assert!(
            matches!(rebind, Err(LocationError::Disposed { .. })),
            "a destroyed box is not shelved again"
        );
        let form = retention.certificate(&done).unwrap();
        let listed: Vec<&str> = form.rows.iter().map(|r| r[1].as_str()).collect();
        assert_eq!(listed, ["H-002", "L-001"]);
        assert!(form.particulars.iter().any(|(_, v)| v.contains("chen")));
        assert!(form.pdf().starts_with(b"%PDF-"));
    }
}

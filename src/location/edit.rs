//! Corrections of a box's record, each kept with who, when, before, after and why
//! (修改有痕迹), and boxes found by the value of a declared field (a customer number, a
//! range of account-closing dates).

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

use super::search::{Found, Page};
use super::{Gathered, LocationError, LocationService, NewBox, box_id};
use crate::config::records::{FieldKind, FieldValue, parse_date};
use crate::time::{now_ms, wall};

/// A correction: the fields named change, the others stay. `null` clears a barcode, an
/// EPC, a width or a field.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Correction {
    pub title: Option<String>,
    #[serde(default, deserialize_with = "given")]
    #[schema(value_type = Option<String>)]
    pub barcode: Option<Option<String>>,
    #[serde(default, deserialize_with = "given")]
    #[schema(value_type = Option<String>)]
    pub epc: Option<Option<String>>,
    #[serde(default, deserialize_with = "given")]
    #[schema(value_type = Option<u32>)]
    pub width_mm: Option<Option<u32>>,
    /// Descriptive fields to set (`null`: to clear); the others stay.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub fields: serde_json::Map<String, serde_json::Value>,
    /// Why: kept with every change.
    pub reason: String,
}

/// A key that is present, even as `null`, is `Some`.
fn given<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// One change of one field of a box's record.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Change {
    /// `title`, `barcode`, `epc`, `width_mm` or `fields.KEY`.
    pub field: String,
    pub before: Option<String>,
    pub after: Option<String>,
    pub actor: String,
    pub reason: String,
    pub at: DateTime<Utc>,
}

/// The corrections of a box, oldest first.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Changes {
    pub archive_no: String,
    pub changes: Vec<Change>,
}

/// Which boxes a field search wants: one value, or a range (either end open).
#[derive(Debug, Clone, Default)]
pub struct FieldQuery {
    pub key: String,
    pub value: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
}

/// A JSON value as the trail shows it: text without quotes.
fn shown(v: Option<&serde_json::Value>) -> Option<String> {
    match v? {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// The record as it is in the database.
struct Current {
    id: i64,
    epc: Option<String>,
    barcode: Option<String>,
    title: String,
    width_mm: Option<u32>,
    fields: serde_json::Map<String, serde_json::Value>,
}

impl LocationService {
    /// Corrects a box's record; every field that changes is kept in its trail with
    /// `reason`. A correction that changes nothing records nothing. Answers the box as it
    /// is now and how many fields changed.
    pub async fn correct(
        &self,
        archive_no: &str,
        correction: Correction,
        actor: &str,
    ) -> Result<usize, LocationError> {
        let reason = correction.reason.trim().to_string();
        if reason.is_empty() || reason.chars().count() > 500 {
            return Err(LocationError::invalid(
                "reason",
                "say why (1 to 500 characters): it is kept with the change",
            ));
        }
        let this = self.clone();
        let archive_no = archive_no.to_string();
        let actor = actor.to_string();
        self.store
            .write(move |conn| this.correct_in(conn, &archive_no, &correction, &reason, &actor))
            .await
    }

    fn correct_in(
        &self,
        conn: &Connection,
        archive_no: &str,
        c: &Correction,
        reason: &str,
        actor: &str,
    ) -> Result<usize, LocationError> {
        let id = box_id(conn, archive_no)?;
        self.refuse_disposed(conn, id, archive_no)?;
        let now: Current = conn
            .prepare_cached(
                "SELECT epc, barcode, title, width_mm, fields FROM boxes WHERE id = ?1",
            )?
            .query_row([id], |r| {
                let fields: String = r.get(4)?;
                Ok(Current {
                    id,
                    epc: r.get(0)?,
                    barcode: r.get(1)?,
                    title: r.get(2)?,
                    width_mm: r.get(3)?,
                    fields: serde_json::from_str(&fields).unwrap_or_default(),
                })
            })?;
        let mut fields = now.fields.clone();
        for (key, value) in &c.fields {
            fields.insert(key.clone(), value.clone());
        }
        let wanted = NewBox {
            archive_no: archive_no.to_string(),
            epc: c.epc.clone().unwrap_or_else(|| now.epc.clone()),
            barcode: c.barcode.clone().unwrap_or_else(|| now.barcode.clone()),
            title: c.title.clone().unwrap_or_else(|| now.title.clone()),
            width_mm: c.width_mm.unwrap_or(now.width_mm),
            fields,
            shelf: None,
            reason: String::new(),
            series: None,
        };
        let checked = self.check_box(&wanted)?;
        let after_fields: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&checked.fields).unwrap_or_default();

        let mut diffs: Vec<(String, Option<String>, Option<String>)> = Vec::new();
        let mut differ = |field: &str, before: Option<String>, after: Option<String>| {
            if before != after {
                diffs.push((field.to_string(), before, after));
            }
        };
        differ(
            "title",
            Some(now.title.clone()),
            Some(checked.title.clone()),
        );
        differ("barcode", now.barcode.clone(), checked.barcode.clone());
        differ("epc", now.epc.clone(), checked.epc.clone());
        differ(
            "width_mm",
            now.width_mm.map(|w| w.to_string()),
            checked.width_mm.map(|w| w.to_string()),
        );
        let mut keys: Vec<&String> = now.fields.keys().chain(after_fields.keys()).collect();
        keys.sort();
        keys.dedup();
        for key in keys {
            differ(
                &format!("fields.{key}"),
                shown(now.fields.get(key)),
                shown(after_fields.get(key)),
            );
        }
        if diffs.is_empty() {
            return Ok(0);
        }
        let updated = conn
            .prepare_cached(
                "UPDATE boxes SET epc = ?2, barcode = ?3, title = ?4, width_mm = ?5, fields = ?6
                 WHERE id = ?1",
            )?
            .execute(params![
                now.id,
                checked.epc,
                checked.barcode,
                checked.title,
                checked.width_mm,
                checked.fields
            ]);
        if let Err(rusqlite::Error::SqliteFailure(e, Some(message))) = &updated
            && e.code == rusqlite::ErrorCode::ConstraintViolation
        {
            let (field, value) = if message.contains("boxes.epc") {
                ("epc", checked.epc.clone())
            } else {
                ("barcode", checked.barcode.clone())
            };
            return Err(LocationError::Duplicate {
                field,
                value: value.unwrap_or_default(),
            });
        }
        updated?;
        conn.prepare_cached("DELETE FROM box_words WHERE rowid = ?1")?
            .execute([now.id])?;
        let mut vocabulary = Gathered::default();
        vocabulary.add(conn, now.id, checked.index_text(&self.config.fields))?;
        vocabulary.write(conn)?;
        conn.prepare_cached("DELETE FROM box_field_values WHERE box_id = ?1")?
            .execute([now.id])?;
        let mut value = conn.prepare_cached(
            "INSERT INTO box_field_values (key, value, box_id) VALUES (?1, ?2, ?3)",
        )?;
        for (key, v) in &checked.values {
            value.execute(params![key, v, now.id])?;
        }
        let at = now_ms();
        let mut trail = conn.prepare_cached(
            "INSERT INTO box_changes (box_id, field, before, after, actor, reason, at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        for (field, before, after) in &diffs {
            trail.execute(params![now.id, field, before, after, actor, reason, at])?;
        }
        Ok(diffs.len())
    }

    /// A disposed box's record is closed: it answers why.
    pub(crate) fn refuse_disposed(
        &self,
        conn: &Connection,
        id: i64,
        archive_no: &str,
    ) -> Result<(), LocationError> {
        let disposed: Option<(i64, i64)> = conn
            .prepare_cached("SELECT disposal_id, at FROM boxes_disposed WHERE box_id = ?1")?
            .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        match disposed {
            Some((disposal, at)) => Err(LocationError::Disposed {
                archive_no: archive_no.to_string(),
                disposal,
                on: wall(at).format("%Y-%m-%d").to_string(),
            }),
            None => Ok(()),
        }
    }

    /// Destroys a box's place in the room, in the caller's transaction: off its shelf (the
    /// unbinding in its history) and out of any place off the shelving, out of the title
    /// index and every search, its record and history kept. `reason` names the disposal.
    pub(crate) fn dispose_in(
        &self,
        conn: &Connection,
        id: i64,
        disposal: i64,
        provenance: &super::Provenance,
        now: i64,
    ) -> Result<(), LocationError> {
        let shelf: Option<i64> = conn
            .prepare_cached("DELETE FROM bindings WHERE box_id = ?1 RETURNING shelf_id")?
            .query_row([id], |r| r.get(0))
            .optional()?;
        if let Some(shelf) = shelf {
            let from = self.shelves.by_id.get(&shelf).map(|s| s.to_string());
            super::record_event(conn, id, "unbind", from.as_deref(), None, provenance, now)?;
        }
        let place: Option<String> = conn
            .prepare_cached("DELETE FROM box_places WHERE box_id = ?1 RETURNING place")?
            .query_row([id], |r| r.get(0))
            .optional()?;
        if let Some(place) = place {
            conn.prepare_cached(
                "INSERT INTO place_events (box_id, kind, place, actor, reason, at)
                 VALUES (?1, 'out', ?2, ?3, ?4, ?5)",
            )?
            .execute(params![id, place, provenance.actor, provenance.reason, now])?;
        }
        conn.prepare_cached("DELETE FROM box_words WHERE rowid = ?1")?
            .execute([id])?;
        conn.prepare_cached(
            "INSERT INTO boxes_disposed (box_id, disposal_id, at) VALUES (?1, ?2, ?3)",
        )?
        .execute(params![id, disposal, now])?;
        Ok(())
    }

    /// The corrections of a box, oldest first.
    pub async fn changes(&self, archive_no: &str) -> Result<Changes, LocationError> {
        let archive_no = archive_no.to_string();
        self.store
            .read(move |conn| {
                let id = box_id(conn, &archive_no)?;
                let changes = conn
                    .prepare_cached(
                        "SELECT field, before, after, actor, reason, at FROM box_changes
                         WHERE box_id = ?1 ORDER BY id",
                    )?
                    .query_map([id], |r| {
                        Ok(Change {
                            field: r.get(0)?,
                            before: r.get(1)?,
                            after: r.get(2)?,
                            actor: r.get(3)?,
                            reason: r.get(4)?,
                            at: wall(r.get(5)?),
                        })
                    })?
                    .collect::<Result<_, _>>()?;
                Ok(Changes {
                    archive_no,
                    changes,
                })
            })
            .await
    }

    /// Boxes by the value of a declared field, or by a range of it, in registration order.
    pub async fn find_by_field(&self, q: FieldQuery, page: Page) -> Result<Found, LocationError> {
        let Some(def) = self.config.fields.get(&q.key) else {
            let known: Vec<&str> = self.config.fields.0.keys().map(String::as_str).collect();
            return Err(LocationError::invalid(
                "field",
                format!(
                    "'{}' is not a field of [boxes.fields]: {}",
                    q.key,
                    if known.is_empty() {
                        "the room declares none".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            ));
        };
        let bound = |name: &str, text: &str| -> Result<FieldValue, LocationError> {
            let text = text.trim();
            match def.kind {
                FieldKind::Number => text
                    .parse::<f64>()
                    .ok()
                    .filter(|n| n.is_finite())
                    .map(FieldValue::Number)
                    .ok_or_else(|| {
                        LocationError::invalid(name, format!("'{text}' is not a number"))
                    }),
                FieldKind::Date => parse_date(text)
                    .map(|d| FieldValue::Text(d.to_string()))
                    .ok_or_else(|| {
                        LocationError::invalid(name, format!("'{text}' is not a date: YYYY-MM-DD"))
                    }),
                FieldKind::Text | FieldKind::Choice => Ok(FieldValue::Text(text.to_string())),
            }
        };
        let (low, high) = match (&q.value, &q.from, &q.to) {
            (Some(v), None, None) => {
                let v = bound("value", v)?;
                (Some(v.clone()), Some(v))
            }
            (None, from, to) if from.is_some() || to.is_some() => (
                from.as_deref().map(|t| bound("from", t)).transpose()?,
                to.as_deref().map(|t| bound("to", t)).transpose()?,
            ),
            _ => {
                return Err(LocationError::invalid(
                    "value",
                    "give value, or from and/or to (not both)",
                ));
            }
        };
        let page = Page {
            offset: page.offset.min(Page::MAX_OFFSET),
            limit: page.limit.clamp(1, 200),
        };
        let this = self.clone();
        let key = q.key.clone();
        self.store
            .read(move |conn| {
                // An open end is the whole of that side: numbers sort before text in SQLite.
                const WHERE: &str = "FROM box_field_values v WHERE v.key = ?1
                    AND (?2 IS NULL OR v.value >= ?2) AND (?3 IS NULL OR v.value <= ?3)
                    AND NOT EXISTS (SELECT 1 FROM boxes_disposed d WHERE d.box_id = v.box_id)";
                let total: i64 = conn
                    .prepare_cached(&format!("SELECT count(*) {WHERE}"))?
                    .query_row(params![key, low, high], |r| r.get(0))?;
                let ids: Vec<i64> = conn
                    .prepare_cached(&format!(
                        "SELECT v.box_id {WHERE} ORDER BY v.value, v.box_id LIMIT ?4 OFFSET ?5"
                    ))?
                    .query_map(
                        params![key, low, high, page.limit as i64, page.offset as i64],
                        |r| r.get(0),
                    )?
                    .collect::<Result<_, _>>()?;
                Ok(Found {
                    items: this.boxes_by_id(conn, &ids)?,
                    total: total as u64,
                    estimated: false,
                })
            })
            .await
    }
}

//! Places off the shelving (`[[places]]`): a safe for deeds, a reading room. A box put in a
//! place keeps its home shelf (it goes back there), is located as `in_place` with the
//! place's name, and is not opened for; every move in and out is kept (`place_events`).

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use utoipa::ToSchema;

use super::{BoxView, LocationError, LocationService, Provenance, box_id};
use crate::config::records::{Place, PlaceKind};
use crate::loans::{Consequence, Settlement};
use crate::name::Name;
use crate::time::{now_ms, wall};

/// The place a box is in.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct PlaceRef {
    pub id: String,
    pub kind: PlaceKind,
    pub name: Name,
    pub since: DateTime<Utc>,
}

/// A move into or out of a place.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct PlaceEvent {
    /// `in` or `out`.
    pub kind: String,
    pub place: String,
    pub actor: String,
    pub reason: String,
    pub at: DateTime<Utc>,
}

impl LocationService {
    /// Where a box settled after a refused return goes, as a consequence the loan's
    /// settling transaction runs (`loans::Consequence`): back to its shelf (nothing to
    /// write), into the room's repair place, or flagged lost.
    pub fn settled(
        &self,
        settlement: Settlement,
        provenance: Provenance,
    ) -> Result<Consequence, LocationError> {
        Ok(match settlement {
            Settlement::Accepted => Box::new(|_, _| Ok(())),
            Settlement::Repair => {
                let repair = self
                    .config
                    .places
                    .iter()
                    .find(|p| p.kind == PlaceKind::Repair)
                    .ok_or_else(|| {
                        LocationError::invalid(
                            "settlement",
                            "the room has no place of kind 'repair' in [[places]] to send the box to",
                        )
                    })?
                    .id
                    .clone();
                Box::new(move |conn, id| enter_in(conn, id, &repair, &provenance, now_ms()))
            }
            Settlement::Lost => Box::new(move |conn, id| {
                conn.prepare_cached(
                    "INSERT INTO box_flags (box_id, state, since, note) VALUES (?1, 'lost', ?2, ?3)
                     ON CONFLICT (box_id) DO UPDATE SET state = 'lost', since = excluded.since, note = excluded.note",
                )?
                .execute(params![id, now_ms(), provenance.reason])?;
                Ok(())
            }),
        })
    }

    fn place(&self, id: &str) -> Result<&Place, LocationError> {
        self.config
            .places
            .iter()
            .find(|p| p.id == id)
            .ok_or_else(|| {
                let known: Vec<&str> = self.config.places.iter().map(|p| p.id.as_str()).collect();
                LocationError::invalid(
                    "place",
                    format!(
                        "'{id}' is not a place of [[places]]: {}",
                        if known.is_empty() {
                            "the room has none".into()
                        } else {
                            known.join(", ")
                        }
                    ),
                )
            })
    }

    /// The place a box is in, from its columns (`place`, `since`).
    pub(crate) fn place_ref(&self, place: Option<String>, since: Option<i64>) -> Option<PlaceRef> {
        let id = place?;
        let (kind, name) = match self.config.places.iter().find(|p| p.id == id) {
            Some(p) => (p.kind, p.name.clone()),
            // A place since dropped from the config: still where the box is.
            None => (PlaceKind::Other, id.clone().into()),
        };
        Some(PlaceRef {
            id,
            kind,
            name,
            since: wall(since.unwrap_or(0)),
        })
    }

    /// Puts a box in a place (moving it from another place if it is in one).
    pub async fn put_in_place(
        &self,
        archive_no: &str,
        place: &str,
        provenance: Provenance,
    ) -> Result<BoxView, LocationError> {
        let place = self.place(place.trim())?.id.clone();
        let this = self.clone();
        let no = archive_no.to_string();
        self.store
            .write(move |conn| {
                let id = box_id(conn, &no)?;
                this.refuse_disposed(conn, id, &no)?;
                let now = now_ms();
                Ok::<_, LocationError>(enter_in(conn, id, &place, &provenance, now)?)
            })
            .await?;
        self.get_box(archive_no).await
    }

    /// Takes a box out of the place it is in (back to its home shelf).
    pub async fn take_from_place(
        &self,
        archive_no: &str,
        provenance: Provenance,
    ) -> Result<BoxView, LocationError> {
        let no = archive_no.to_string();
        self.store
            .write(move |conn| {
                let id = box_id(conn, &no)?;
                let Some(from) = current(conn, id)? else {
                    return Err(LocationError::invalid(
                        "place",
                        format!("box '{no}' is in no place"),
                    ));
                };
                conn.prepare_cached("DELETE FROM box_places WHERE box_id = ?1")?
                    .execute([id])?;
                Ok(event(conn, id, "out", &from, &provenance, now_ms())?)
            })
            .await?;
        self.get_box(archive_no).await
    }

    /// The moves of a box into and out of places, oldest first.
    pub(crate) fn place_events_in(
        conn: &Connection,
        id: i64,
    ) -> Result<Vec<PlaceEvent>, LocationError> {
        Ok(conn
            .prepare_cached(
                "SELECT kind, place, actor, reason, at FROM place_events WHERE box_id = ?1 ORDER BY id",
            )?
            .query_map([id], |r| {
                Ok(PlaceEvent {
                    kind: r.get(0)?,
                    place: r.get(1)?,
                    actor: r.get(2)?,
                    reason: r.get(3)?,
                    at: wall(r.get(4)?),
                })
            })?
            .collect::<Result<_, _>>()?)
    }
}

/// Puts box `id` in `place` (out of another it is in), within the caller's transaction.
fn enter_in(
    conn: &Connection,
    id: i64,
    place: &str,
    provenance: &Provenance,
    now: i64,
) -> rusqlite::Result<()> {
    if let Some(from) = current(conn, id)? {
        if from == place {
            return Ok(());
        }
        event(conn, id, "out", &from, provenance, now)?;
    }
    conn.prepare_cached(
        "INSERT INTO box_places (box_id, place, since) VALUES (?1, ?2, ?3)
         ON CONFLICT (box_id) DO UPDATE SET place = excluded.place, since = excluded.since",
    )?
    .execute(params![id, place, now])?;
    event(conn, id, "in", place, provenance, now)
}

fn current(conn: &Connection, id: i64) -> rusqlite::Result<Option<String>> {
    conn.prepare_cached("SELECT place FROM box_places WHERE box_id = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()
}

fn event(
    conn: &Connection,
    id: i64,
    kind: &str,
    place: &str,
    p: &Provenance,
    now: i64,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO place_events (box_id, kind, place, actor, reason, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![id, kind, place, p.actor, p.reason, now])?;
    Ok(())
}

/// The EPCs of boxes in a place: a sweep does not call them missing from their shelf.
pub fn placed_epcs(conn: &Connection) -> rusqlite::Result<HashSet<String>> {
    conn.prepare_cached(
        "SELECT x.epc FROM box_places p JOIN boxes x ON x.id = p.box_id WHERE x.epc IS NOT NULL",
    )?
    .query_map([], |r| r.get(0))?
    .collect()
}

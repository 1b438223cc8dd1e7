//! The room's change feed, for a site's replica of every room: each box numbered by its
//! latest change (`changes`, kept by triggers in the same transaction as the change,
//! migration 0021). A reader holding number N asks for the boxes numbered after N and gets
//! each as it is now; boxes are never deleted (a destroyed box stays, `disposed`), so
//! applying the entries in order, each replacing the box's previous state, converges on
//! the room's state whatever was missed in between.

use rusqlite::{Connection, params};
use serde::Serialize;
use utoipa::ToSchema;

use super::{BoxView, LocationError, LocationService};

/// A box as it is now, and the number of its latest change.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FeedEntry {
    pub seq: i64,
    /// The box's id in the room (stays when its archive number is corrected).
    pub id: i64,
    #[serde(rename = "box")]
    pub record: BoxView,
}

/// Boxes changed after a number, oldest change first.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Feed {
    pub changes: Vec<FeedEntry>,
    /// The feed's newest number when this was read: a reader whose last entry has it is
    /// caught up.
    pub last: i64,
}

/// Entries in one page of the feed at most.
pub const FEED_PAGE_MAX: usize = 5000;

impl LocationService {
    /// The boxes changed after `since`, at most `limit` of them, oldest change first.
    pub async fn feed(&self, since: i64, limit: usize) -> Result<Feed, LocationError> {
        let this = self.clone();
        self.store
            .read(move |conn| this.feed_on(conn, since, limit.min(FEED_PAGE_MAX)))
            .await
    }

    /// The feed's newest number (0 for a room with no boxes).
    pub async fn last_change(&self) -> Result<i64, LocationError> {
        self.store
            .read_now(|conn| {
                Ok(
                    conn.query_row("SELECT coalesce(max(seq), 0) FROM changes", [], |r| {
                        r.get(0)
                    })?,
                )
            })
            .await
    }

    fn feed_on(&self, conn: &Connection, since: i64, limit: usize) -> Result<Feed, LocationError> {
        // One snapshot: the boxes as they were when their numbers were read.
        let snapshot = conn.unchecked_transaction()?;
        let numbered: Vec<(i64, i64)> = snapshot
            .prepare_cached("SELECT box_id, seq FROM changes WHERE seq > ?1 ORDER BY seq LIMIT ?2")?
            .query_map(params![since, limit as i64], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        let mut read = snapshot.prepare_cached(&format!("{} WHERE x.id = ?1", Self::BOX_SELECT))?;
        let mut changes = Vec::with_capacity(numbered.len());
        for (id, seq) in numbered {
            let record = read.query_row([id], |r| self.box_row(r))?;
            changes.push(FeedEntry { seq, id, record });
        }
        drop(read);
        let last = snapshot.query_row("SELECT coalesce(max(seq), 0) FROM changes", [], |r| {
            r.get(0)
        })?;
        Ok(Feed { changes, last })
    }
}

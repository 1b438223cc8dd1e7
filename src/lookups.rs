//! The lookup register (查阅登记): who looked up which box, when, how and why.
//!
//! Every box shown to a token — located, opened, its location or history read, its label
//! made — is one row with the token's name and the purpose the person gave (the
//! `X-Purpose` header, percent-encoded UTF-8; the staff page offers a field for it).
//! The row is on disk before the box is shown, in the register's own file beside the
//! database (see [`crate::store`]).
//! Admins query and export it. Rows older than `lookups.keep_days` are rolled up into counts
//! per day, token and kind of lookup, so the register stays bounded; the roll-up runs at
//! start and then daily.

use rusqlite::params;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::store::{Store, StoreError};

/// How a box was looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum What {
    Locate,
    Box,
    Location,
    History,
    Label,
}

impl What {
    pub fn as_str(self) -> &'static str {
        match self {
            What::Locate => "locate",
            What::Box => "box",
            What::Location => "location",
            What::History => "history",
            What::Label => "label",
        }
    }
}

/// The longest purpose kept, in characters.
pub const PURPOSE_CHARS: usize = 200;

/// One lookup.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct LookupView {
    pub at: chrono::DateTime<chrono::Utc>,
    pub actor: String,
    pub archive_no: String,
    /// `locate`, `box`, `location`, `history` or `label`.
    pub what: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
}

/// Which lookups to list.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub archive_no: Option<String>,
    pub actor: Option<String>,
    /// ms since the epoch.
    pub since: Option<i64>,
    pub limit: usize,
}

/// The register; cheap to clone.
#[derive(Clone)]
pub struct Lookups {
    store: Store,
}

impl Lookups {
    pub fn new(store: Store) -> Lookups {
        Lookups { store }
    }

    /// Records that `actor` was shown `archive_no`; on disk when this returns.
    pub async fn record(
        &self,
        actor: &str,
        what: What,
        archive_no: &str,
        purpose: Option<&str>,
    ) -> Result<(), StoreError> {
        let purpose = purpose
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| p.chars().take(PURPOSE_CHARS).collect::<String>());
        let (actor, archive_no, now) = (
            actor.to_string(),
            archive_no.to_string(),
            chrono::Utc::now().timestamp_millis(),
        );
        self.store
            .append(move |conn| {
                conn.prepare_cached(
                    "INSERT INTO lookups (at, actor, archive_no, what, purpose) VALUES (?1, ?2, ?3, ?4, ?5)",
                )?
                .execute(params![now, actor, archive_no, what.as_str(), purpose])?;
                Ok(())
            })
            .await
    }

    /// Lookups, newest first.
    pub async fn list(&self, filter: Filter) -> Result<Vec<LookupView>, StoreError> {
        self.store
            .read(move |conn| {
                let mut sql =
                    "SELECT at, actor, archive_no, what, purpose FROM lookups WHERE 1 = 1"
                        .to_string();
                let mut args: Vec<rusqlite::types::Value> = Vec::new();
                if let Some(no) = filter.archive_no {
                    args.push(no.into());
                    sql += &format!(" AND archive_no = ?{}", args.len());
                }
                if let Some(actor) = filter.actor {
                    args.push(actor.into());
                    sql += &format!(" AND actor = ?{}", args.len());
                }
                if let Some(since) = filter.since {
                    args.push(since.into());
                    sql += &format!(" AND at >= ?{}", args.len());
                }
                sql += &format!(" ORDER BY id DESC LIMIT {}", filter.limit.clamp(1, 100_000));
                let rows = conn
                    .prepare(&sql)?
                    .query_map(rusqlite::params_from_iter(args), |r| {
                        Ok(LookupView {
                            at: chrono::DateTime::from_timestamp_millis(r.get(0)?)
                                .unwrap_or_default(),
                            actor: r.get(1)?,
                            archive_no: r.get(2)?,
                            what: r.get(3)?,
                            purpose: r.get(4)?,
                        })
                    })?
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(rows)
            })
            .await
    }

    /// Rolls the lookups before `before` (ms since the epoch) up into daily counts and
    /// deletes them; how many were rolled up.
    pub async fn roll_up(&self, before: i64) -> Result<usize, StoreError> {
        self.store
            .write(move |conn| {
                conn.execute(
                    "INSERT INTO lookup_days (day, actor, what, lookups)
                     SELECT date(at / 1000, 'unixepoch'), actor, what, COUNT(*) FROM lookups
                     WHERE at < ?1 GROUP BY 1, 2, 3
                     ON CONFLICT (day, actor, what) DO UPDATE SET lookups = lookups + excluded.lookups",
                    [before],
                )?;
                Ok(conn.execute("DELETE FROM lookups WHERE at < ?1", [before])?)
            })
            .await
    }

    /// The daily counts of rolled-up lookups: (day, actor, what, lookups), oldest first.
    pub async fn days(&self) -> Result<Vec<(String, String, String, i64)>, StoreError> {
        self.store
            .read(|conn| {
                Ok(conn
                    .prepare("SELECT day, actor, what, lookups FROM lookup_days ORDER BY day, actor, what")?
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                    .collect::<Result<Vec<_>, _>>()?)
            })
            .await
    }

    /// Rolls up what is older than `keep` at once and then every day, for ever.
    pub async fn keep_bounded(self, keep: std::time::Duration) {
        let mut day = tokio::time::interval(std::time::Duration::from_secs(24 * 3600));
        loop {
            day.tick().await;
            let before = chrono::Utc::now().timestamp_millis() - keep.as_millis() as i64;
            match self.roll_up(before).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(lookups = n, "old lookups rolled up into daily counts"),
                Err(e) => tracing::error!(error = %e, "the lookup register could not be rolled up"),
            }
        }
    }
}

/// The purpose a request carries: the `X-Purpose` header, percent-decoded UTF-8.
pub fn purpose(headers: &axum::http::HeaderMap) -> Option<String> {
    let raw = headers.get("x-purpose")?.to_str().ok()?;
    percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .ok()
        .map(|p| p.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lookups_are_listed_with_their_purpose_and_old_ones_become_daily_counts() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let lookups = Lookups::new(store);
        lookups
            .record(
                "desk-1",
                What::Locate,
                "0451-H-001-00001",
                Some(" 客户投诉核查 "),
            )
            .await
            .unwrap();
        lookups
            .record("desk-2", What::History, "0451-H-001-00001", None)
            .await
            .unwrap();
        lookups
            .record(
                "desk-1",
                What::Box,
                "0451-H-001-00002",
                Some(&"x".repeat(500)),
            )
            .await
            .unwrap();
        let of_box = lookups
            .list(Filter {
                archive_no: Some("0451-H-001-00001".into()),
                limit: 100,
                ..Filter::default()
            })
            .await
            .unwrap();
        assert_eq!(of_box.len(), 2);
        assert_eq!(of_box[0].actor, "desk-2", "newest first");
        assert_eq!(of_box[1].purpose.as_deref(), Some("客户投诉核查"));
        let by_desk_1 = lookups
            .list(Filter {
                actor: Some("desk-1".into()),
                limit: 100,
                ..Filter::default()
            })
            .await
            .unwrap();
        assert_eq!(by_desk_1.len(), 2);
        assert_eq!(
            by_desk_1[0].purpose.as_ref().map(|p| p.chars().count()),
            Some(PURPOSE_CHARS)
        );

        let later = chrono::Utc::now().timestamp_millis() + 1000;
        assert_eq!(lookups.roll_up(later).await.unwrap(), 3);
        assert!(
            lookups
                .list(Filter {
                    limit: 10,
                    ..Filter::default()
                })
                .await
                .unwrap()
                .is_empty()
        );
        let days = lookups.days().await.unwrap();
        let counts: Vec<(String, String, i64)> =
            days.into_iter().map(|(_, a, w, n)| (a, w, n)).collect();
        assert_eq!(
            counts,
            [
                ("desk-1".to_string(), "box".to_string(), 1),
                ("desk-1".into(), "locate".into(), 1),
                ("desk-2".into(), "history".into(), 1)
            ]
        );
    }

    #[test]
    fn the_purpose_header_is_percent_encoded_utf8() {
        let mut h = axum::http::HeaderMap::new();
        h.insert("x-purpose", "%E5%AE%A2%E6%88%B7%20audit".parse().unwrap());
        assert_eq!(purpose(&h).as_deref(), Some("客户 audit"));
        assert_eq!(purpose(&axum::http::HeaderMap::new()), None);
    }
}

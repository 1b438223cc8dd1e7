//! The audit trail: who did what, when, and how it ended, append-only in SQLite.
//!
//! Recorded: every request that changes something (or is refused for want of a token or a
//! role), with the token's name, the route and the status (and the reason of a refusal);
//! every carriage motion, lock and stop when it ends, with who asked and how it ended;
//! every token made or revoked. Triggers refuse updates and deletes of the table.

use std::io::Write;

use chrono::{DateTime, Utc};
use rusqlite::{ToSql, params_from_iter};
use serde::Serialize;
use utoipa::ToSchema;

use crate::store::{Store, StoreError};
use crate::time::now_ms;

/// An entry to record.
#[derive(Debug, Clone)]
pub struct NewEntry {
    pub actor: String,
    pub kind: &'static str,
    pub action: String,
    pub outcome: String,
    pub detail: String,
}

impl NewEntry {
    pub fn new(
        actor: &str,
        kind: &'static str,
        action: impl Into<String>,
        outcome: impl Into<String>,
    ) -> NewEntry {
        NewEntry {
            actor: actor.to_string(),
            kind,
            action: action.into(),
            outcome: outcome.into(),
            detail: String::new(),
        }
    }

    pub fn detail(mut self, detail: impl Into<String>) -> NewEntry {
        self.detail = detail.into();
        self
    }
}

/// A recorded entry.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Entry {
    pub id: i64,
    pub at: DateTime<Utc>,
    /// The token's name (or `cli`, `scheduler`, `anonymous`).
    pub actor: String,
    /// `request`, `denied`, `motion` or `token`.
    pub kind: String,
    pub action: String,
    /// An HTTP status, or how a motion ended (`done`, `stopped: …`, `refused: …`).
    pub outcome: String,
    pub detail: String,
}

/// Which entries to read.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub since: Option<DateTime<Utc>>,
    pub actor: Option<String>,
    pub kind: Option<String>,
    pub limit: usize,
}

/// The audit trail; cheap to clone.
#[derive(Clone)]
pub struct Audit {
    store: Store,
}

/// Why an export of the audit trail stopped.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("the audit trail could not be read")]
    Store(#[from] StoreError),
    #[error("the CSV could not be written")]
    Csv(#[from] csv::Error),
    #[error("the CSV could not be written")]
    Io(#[from] std::io::Error),
}

impl From<rusqlite::Error> for ExportError {
    fn from(e: rusqlite::Error) -> ExportError {
        ExportError::Store(StoreError::from(e))
    }
}

impl Audit {
    pub fn new(store: Store) -> Audit {
        Audit { store }
    }

    /// Records an entry; it is on disk when this returns. A failure to record is logged as
    /// an error (the request it describes has happened all the same).
    pub async fn record(&self, e: NewEntry) {
        let now = now_ms();
        let result = self
            .store
            .write(move |conn| {
                conn.prepare_cached(
                    "INSERT INTO audit (at, actor, kind, action, outcome, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?
                .execute(rusqlite::params![now, e.actor, e.kind, e.action, e.outcome, e.detail])?;
                Ok::<_, StoreError>(())
            })
            .await;
        if let Err(error) = result {
            tracing::error!(%error, "an audit entry could not be recorded");
        }
    }

    fn select(filter: &Filter) -> (String, Vec<Box<dyn ToSql + Send>>) {
        let mut sql = "SELECT id, at, actor, kind, action, outcome, detail FROM audit WHERE 1 = 1"
            .to_string();
        let mut args: Vec<Box<dyn ToSql + Send>> = Vec::new();
        if let Some(since) = filter.since {
            args.push(Box::new(since.timestamp_millis()));
            sql += &format!(" AND at >= ?{}", args.len());
        }
        if let Some(actor) = &filter.actor {
            args.push(Box::new(actor.clone()));
            sql += &format!(" AND actor = ?{}", args.len());
        }
        if let Some(kind) = &filter.kind {
            args.push(Box::new(kind.clone()));
            sql += &format!(" AND kind = ?{}", args.len());
        }
        sql += " ORDER BY id";
        if filter.limit > 0 {
            sql += &format!(" LIMIT {}", filter.limit);
        }
        (sql, args)
    }

    fn row(r: &rusqlite::Row) -> rusqlite::Result<Entry> {
        Ok(Entry {
            id: r.get(0)?,
            at: DateTime::from_timestamp_millis(r.get(1)?).unwrap_or(DateTime::<Utc>::MIN_UTC),
            actor: r.get(2)?,
            kind: r.get(3)?,
            action: r.get(4)?,
            outcome: r.get(5)?,
            detail: r.get(6)?,
        })
    }

    /// Entries matching `filter`, oldest first.
    pub async fn query(&self, filter: Filter) -> Result<Vec<Entry>, StoreError> {
        self.store
            .read(move |conn| {
                let (sql, args) = Self::select(&filter);
                let rows = conn
                    .prepare(&sql)?
                    .query_map(
                        params_from_iter(args.iter().map(|a| a.as_ref() as &dyn ToSql)),
                        Self::row,
                    )?
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(rows)
            })
            .await
    }

    /// Writes the entries matching `filter` as CSV, streaming; how many.
    pub fn export_csv(&self, filter: &Filter, out: impl Write) -> Result<usize, ExportError> {
        let mut w = csv::Writer::from_writer(out);
        w.write_record(["id", "at", "actor", "kind", "action", "outcome", "detail"])?;
        self.store
            .read_blocking(|conn| {
                let (sql, args) = Self::select(filter);
                let mut st = conn.prepare(&sql)?;
                let mut rows = st.query(params_from_iter(
                    args.iter().map(|a| a.as_ref() as &dyn ToSql),
                ))?;
                let mut n = 0;
                while let Some(r) = rows.next()? {
                    let e = Self::row(r)?;
                    w.write_record([
                        e.id.to_string(),
                        e.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                        e.actor,
                        e.kind,
                        e.action,
                        e.outcome,
                        e.detail,
                    ])?;
                    n += 1;
                }
                Ok::<_, ExportError>(n)
            })
            .and_then(|n| Ok(w.flush().map(|_| n)?))
    }
}

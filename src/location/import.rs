//! CSV import of boxes: all rows or none.
//!
//! Columns (header names, any order): `archive_no` (required), `epc`, `barcode`, `title`,
//! `shelf`, `width_mm`; any other column becomes a free field of the box. The file is read
//! as a stream inside one write transaction; every bad row is reported with its line number
//! and reason, and a single bad row rolls the whole import back.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::io::Read;

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use utoipa::ToSchema;

use super::{
    Gathered, LocationError, LocationService, NewBox, Provenance, Source, insert_box, record_event,
};
use crate::layout::Capacity;
use crate::time::now_ms;

/// Stop collecting errors after this many: the file is rejected anyway.
const MAX_ERRORS: usize = 1000;

/// What an import did.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ImportSummary {
    /// Boxes registered.
    pub boxes: u64,
    /// Of them, bound to a shelf.
    pub bound: u64,
}

/// A row the import rejected.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RowError {
    /// Line in the file, the header being line 1.
    pub line: u64,
    /// The column at fault, if one is.
    pub field: Option<String>,
    pub message: String,
}

/// The title index's (FTS5's) in-memory buffer during an import, and as SQLite sets it.
const BULK_HASH_BYTES: i64 = 64 << 20;
const DEFAULT_HASH_BYTES: i64 = 1 << 20;
/// The writer's page cache during an import, in KiB.
const BULK_CACHE_KIB: i64 = 64 << 10;

/// An import's settings on the writer's connection, and what they were before.
///
/// - FTS5 keeps new entries in memory and writes them out as a segment each time its buffer
///   fills, merging segments as they pile up: row by row that was a third of an import's
///   time. In bulk, the buffer is large, so segments are few and large and merging is rare.
/// - The unique indexes by archive number, EPC and barcode take their keys in no order, so
///   each row touches pages all over them. With SQLite's 2 MiB page cache, a large import
///   wrote those pages out to the WAL again and again before its commit: 1,000,000 boxes took
///   1.40-1.64x the baseline, and 1.06-1.21x with a cache of 64 MiB (the baseline's), for 64 MiB
///   more at the import's peak. The cache is cut back after the import.
struct Bulk {
    cache_size: i64,
}

impl Bulk {
    fn begin(conn: &Connection) -> Result<Bulk, rusqlite::Error> {
        let cache_size = conn.pragma_query_value(None, "cache_size", |r| r.get(0))?;
        fts_buffer(conn, BULK_HASH_BYTES)?;
        conn.pragma_update(None, "cache_size", -BULK_CACHE_KIB)?;
        Ok(Bulk { cache_size })
    }

    fn end(self, conn: &Connection) -> Result<(), rusqlite::Error> {
        fts_buffer(conn, DEFAULT_HASH_BYTES)?;
        conn.pragma_update(None, "cache_size", self.cache_size)
    }
}

fn fts_buffer(conn: &Connection, bytes: i64) -> Result<(), rusqlite::Error> {
    conn.execute(
        "INSERT INTO box_words (box_words, rank) VALUES ('hashsize', ?1)",
        [bytes],
    )?;
    Ok(())
}

/// The change feed's triggers that an import's rows fire: a new box, its binding.
const FEED_TRIGGERS: [&str; 2] = ["changes_boxes_insert", "changes_bindings_insert"];

/// The change feed's triggers that an import would fire, dropped for the import's rows and
/// made again before it ends, inside its transaction: what commits is the same schema, and
/// every box the import added numbered in the feed, in one statement instead of two trigger
/// firings per box (each with its own statement journal: an import took 1.4-2x as long with
/// them). Nothing else writes meanwhile: the import runs on the only writer, inside its
/// savepoint, so a failed import rolls the dropped triggers back with its rows.
struct FeedPaused {
    /// The triggers dropped, as `CREATE TRIGGER` statements.
    triggers: Vec<String>,
    /// The first box id this import gives.
    first_id: i64,
}

impl FeedPaused {
    fn pause(conn: &Connection) -> Result<FeedPaused, rusqlite::Error> {
        let triggers = conn
            .prepare(
                "SELECT name, sql FROM sqlite_schema WHERE type = 'trigger' AND name IN (?1, ?2)",
            )?
            .query_map(FEED_TRIGGERS, |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let first_id = conn.query_row("SELECT COALESCE(MAX(id), 0) + 1 FROM boxes", [], |r| {
            r.get(0)
        })?;
        for (name, _) in &triggers {
            conn.execute_batch(&format!("DROP TRIGGER \"{name}\""))?;
        }
        Ok(FeedPaused {
            triggers: triggers.into_iter().map(|(_, sql)| sql).collect(),
            first_id,
        })
    }

    /// Numbers the boxes the import added, in the order of their ids after the feed's
    /// last number, and makes the triggers again.
    fn number_and_resume(self, conn: &Connection) -> Result<(), rusqlite::Error> {
        let last: i64 = conn.query_row("SELECT coalesce(max(seq), 0) FROM changes", [], |r| {
            r.get(0)
        })?;
        conn.execute(
            "INSERT INTO changes (box_id, seq)
                 SELECT id, ?2 + row_number() OVER (ORDER BY id) FROM boxes WHERE id >= ?1
             ON CONFLICT (box_id) DO UPDATE SET seq = excluded.seq",
            params![self.first_id, last],
        )?;
        self.resume(conn)
    }

    fn resume(self, conn: &Connection) -> Result<(), rusqlite::Error> {
        for sql in &self.triggers {
            conn.execute_batch(sql)?;
        }
        Ok(())
    }
}

const KNOWN: [&str; 6] = ["archive_no", "epc", "barcode", "title", "shelf", "width_mm"];

impl LocationService {
    /// Imports boxes from CSV; see the module docs for the columns.
    pub async fn import_csv<R: Read + Send + 'static>(
        &self,
        input: R,
        actor: &str,
        reason: &str,
    ) -> Result<ImportSummary, LocationError> {
        let this = self.clone();
        let provenance = Provenance {
            actor: actor.into(),
            reason: reason.into(),
            source: Source::Import,
            confidence: 1.0,
        };
        self.store
            .write(move |conn| this.import_in(conn, input, &provenance))
            .await
    }

    /// The import, with the title index in bulk mode and the change feed numbered in one
    /// pass (see [`FeedPaused`]) while it runs.
    fn import_in<R: Read>(
        &self,
        conn: &Connection,
        input: R,
        provenance: &Provenance,
    ) -> Result<ImportSummary, LocationError> {
        // Should either fail, the savepoint's rollback makes the triggers again.
        let paused = FeedPaused::pause(conn)?;
        let bulk = Bulk::begin(conn)?;
        let imported = self.import_rows(conn, input, provenance, paused.first_id);
        let numbered = match &imported {
            Ok(_) => paused.number_and_resume(conn),
            // Back as they were; the failed import's savepoint is rolled back anyway.
            Err(_) => paused.resume(conn),
        };
        // Restored whatever came of the rows (a failed import is rolled back, but this
        // connection keeps the settings it last set).
        let restored = bulk.end(conn);
        let summary = imported?;
        numbered?;
        restored?;
        Ok(summary)
    }

    /// Checks and inserts the rows; the boxes get ids from `first_id` on, in file order.
    fn import_rows<R: Read>(
        &self,
        conn: &Connection,
        input: R,
        provenance: &Provenance,
        first_id: i64,
    ) -> Result<ImportSummary, LocationError> {
        let mut reader = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .from_reader(input);
        let header_error = |message: String| {
            LocationError::Import(vec![RowError {
                line: 1,
                field: None,
                message,
            }])
        };
        let headers = reader
            .headers()
            .map_err(|e| header_error(format!("cannot read the header: {e}")))?
            .clone();
        let mut columns: HashMap<&str, usize> = HashMap::new();
        for (i, name) in headers.iter().enumerate() {
            if name.is_empty() {
                return Err(header_error(format!("column {} has no name", i + 1)));
            }
            if columns.insert(name, i).is_some() {
                return Err(header_error(format!("column '{name}' appears twice")));
            }
        }
        let Some(&archive_col) = columns.get("archive_no") else {
            return Err(header_error(format!(
                "the header needs an 'archive_no' column (has: {})",
                headers.iter().collect::<Vec<_>>().join(", ")
            )));
        };
        let extra: Vec<(usize, &str)> = headers
            .iter()
            .enumerate()
            .filter(|(_, h)| !KNOWN.contains(h))
            .collect();

        let now = now_ms();
        let mut lines: Vec<u32> = Vec::new(); // line of each box inserted, by id - first_id
        let mut fill: HashMap<i64, (u32, u32)> = HashMap::new();
        // Shelves holding boxes already; the others start empty, without a query each.
        let occupied: HashSet<i64> = conn
            .prepare("SELECT DISTINCT shelf_id FROM bindings")?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        let mut errors: Vec<RowError> = Vec::new();
        let mut summary = ImportSummary { boxes: 0, bound: 0 };
        let mut record = csv::StringRecord::new();
        let mut vocabulary = Gathered::default();
        loop {
            if errors.len() >= MAX_ERRORS {
                errors.push(RowError {
                    line: reader.position().line(),
                    field: None,
                    message: format!("stopped reading after {MAX_ERRORS} errors"),
                });
                break;
            }
            match reader.read_record(&mut record) {
                Ok(false) => break,
                Ok(true) => {}
                Err(e) => {
                    let line = e.position().map_or(reader.position().line(), |p| p.line());
                    let fatal = matches!(e.kind(), csv::ErrorKind::Io(_));
                    errors.push(RowError {
                        line,
                        field: None,
                        message: e.to_string(),
                    });
                    if fatal {
                        break;
                    }
                    continue;
                }
            }
            let line = record.position().map_or(0, |p| p.line());
            let get = |name: &str| columns.get(name).and_then(|&i| record.get(i)).unwrap_or("");
            let mut fail = |field: Option<&str>, message: String| {
                errors.push(RowError {
                    line,
                    field: field.map(str::to_string),
                    message,
                });
            };
            let width_mm = match get("width_mm") {
                "" => None,
                text => match text.parse::<u32>() {
                    Ok(w) if w > 0 => Some(w),
                    _ => {
                        fail(
                            Some("width_mm"),
                            format!("'{text}' is not a width in whole millimetres"),
                        );
                        continue;
                    }
                },
            };
            let new = NewBox {
                archive_no: record.get(archive_col).unwrap_or("").to_string(),
                epc: Some(get("epc").to_string()),
                barcode: Some(get("barcode").to_string()),
                title: get("title").to_string(),
                width_mm,
                fields: extra
                    .iter()
                    .filter_map(|&(i, name)| {
                        let value = record.get(i).filter(|v| !v.is_empty())?;
                        Some((
                            name.to_string(),
                            serde_json::Value::String(value.to_string()),
                        ))
                    })
                    .collect(),
                shelf: None,
                reason: String::new(),
                series: None,
            };
            let checked = match self.check_box(&new) {
                Ok(c) => c,
                Err(LocationError::Invalid { field, message }) => {
                    fail(Some(&field), message);
                    continue;
                }
                Err(e) => {
                    fail(None, e.to_string());
                    continue;
                }
            };
            let shelf = match get("shelf") {
                "" => None,
                text => match self.shelf(text) {
                    Ok(s) => Some(s),
                    Err(e) => {
                        fail(Some("shelf"), e.to_string());
                        continue;
                    }
                },
            };
            let box_id = match insert_box(conn, &self.config.fields, &checked, now, &mut vocabulary)
            {
                Ok(id) => id,
                Err(LocationError::Duplicate { field, value }) => {
                    let message = self.duplicate_message(conn, field, &value, first_id, &lines)?;
                    fail(Some(field), message);
                    continue;
                }
                Err(e) => return Err(e),
            };
            lines.push(line as u32);
            summary.boxes += 1;
            let Some(shelf) = shelf else { continue };
            let entry = self.entry(&shelf)?;
            let used = match fill.entry(entry.id) {
                Entry::Occupied(o) => o.into_mut(),
                Entry::Vacant(v) if occupied.contains(&entry.id) => {
                    v.insert(self.fill(conn, entry.id)?)
                }
                Entry::Vacant(v) => v.insert((0, 0)),
            };
            let width = checked.width_mm.unwrap_or(self.config.default_box_width_mm);
            let over = match entry.capacity {
                Capacity::Boxes(n) => (used.0 + 1 > n).then(|| format!("{n} boxes")),
                Capacity::Mm(n) => (used.1 + width > n).then(|| format!("{n} mm")),
            };
            if let Some(capacity) = over {
                fail(
                    Some("shelf"),
                    format!("shelf {shelf} is full: its capacity is {capacity}"),
                );
                continue;
            }
            used.0 += 1;
            used.1 += width;
            conn.prepare_cached(
                "INSERT INTO bindings (box_id, shelf_id, source, confidence, since) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![box_id, entry.id, provenance.source.as_str(), provenance.confidence, now])?;
            record_event(
                conn,
                box_id,
                "bind",
                None,
                Some(&shelf.to_string()),
                provenance,
                now,
            )?;
            summary.bound += 1;
        }
        if !errors.is_empty() {
            return Err(LocationError::Import(errors));
        }
        vocabulary.write(conn)?;
        Ok(summary)
    }

    /// Says whether a duplicate clashes with a box already registered or with an earlier
    /// line of the file being imported.
    fn duplicate_message(
        &self,
        conn: &Connection,
        field: &str,
        value: &str,
        first_id: i64,
        lines: &[u32],
    ) -> Result<String, LocationError> {
        let column = match field {
            "epc" => "epc",
            "barcode" => "barcode",
            _ => "archive_no",
        };
        let other: Option<i64> = conn
            .query_row(
                &format!("SELECT id FROM boxes WHERE {column} = ?1"),
                [value],
                |r| r.get(0),
            )
            .optional()?;
        Ok(match other {
            Some(id) if id >= first_id => match lines.get((id - first_id) as usize) {
                Some(line) => {
                    format!("{field} '{value}' appears again: it is already on line {line}")
                }
                None => format!("{field} '{value}' appears twice in the file"),
            },
            _ => format!("a box with {field} '{value}' is already registered"),
        })
    }
}

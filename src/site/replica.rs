//! The site's SQLite replica: every room's boxes as their feeds gave them, searchable.
//!
//! One writer connection (the follower applies each batch in one transaction) and a few
//! read connections; every call runs on the blocking pool. A box's row is replaced only by
//! an entry of a higher feed number, so applying a page twice, or a message after the page
//! that already held it, changes nothing: the replica converges on each room's state.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, params};
use rusqlite_migration::{M, Migrations};
use serde::{Deserialize, Serialize};
use sha2::Digest;

use crate::access::Role;

/// Why the replica failed.
#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    #[error("the site database {path}: {message}")]
    Open { path: PathBuf, message: String },
    #[error("the site database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("a feed entry of room {room} cannot be read: {why}")]
    Entry { room: String, why: String },
    #[error("no token '{0}'")]
    NoSuchToken(String),
    #[error("a token named '{0}' exists")]
    TokenExists(String),
    #[error("the site database's worker ended")]
    Gone,
}

/// One entry of a room's change feed: the box as it is now and its latest number.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Entry {
    pub seq: i64,
    pub id: i64,
    #[serde(rename = "box")]
    pub record: serde_json::Value,
}

/// How a box is asked for.
#[derive(Debug, Clone)]
pub enum Key {
    ArchiveNo(String),
    Epc(String),
    Barcode(String),
}

impl Key {
    pub fn text(&self) -> &str {
        match self {
            Key::ArchiveNo(t) | Key::Epc(t) | Key::Barcode(t) => t,
        }
    }
}

/// What one batch did to a room's replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    /// Boxes written (an entry older than the box's row changes nothing).
    pub written: usize,
    /// The room's applied number after the batch.
    pub applied: i64,
}

/// Matches are counted up to this many; past it the answer says `more`.
pub const COUNTED: usize = 1000;

/// A box found at the site: its room and the box as the room's feed gave it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SiteBox {
    pub room: String,
    #[serde(rename = "box")]
    #[schema(value_type = Object)]
    pub record: serde_json::Value,
}

/// A page of search results across the site.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SiteFound {
    pub items: Vec<SiteBox>,
    /// How many match in all, counted up to 1,000.
    pub total: usize,
    /// More than `total` match.
    pub more: bool,
}

/// What the replica holds of one room.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RoomReplica {
    pub room: String,
    /// Every change up to this feed number is applied.
    pub applied: i64,
    /// The room's newest feed number as last heard.
    pub heard: i64,
    /// When a change was last applied.
    pub applied_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Boxes by state (`on_shelf`, `on_loan`, `unshelved`, `disposed`, …).
    #[schema(value_type = Object)]
    pub boxes: std::collections::BTreeMap<String, u64>,
}

/// The replica's file, shared by clones.
#[derive(Clone)]
pub struct Replica {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
}

/// The site database's migrations, in order.
fn migrations() -> Migrations<'static> {
    Migrations::new(vec![
        M::up(include_str!("migrations/0001_replica.sql")),
        M::up(include_str!("migrations/0002_terms.sql")),
    ])
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn sha256_hex(secret: &str) -> String {
    let digest = sha2::Sha256::digest(secret.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

impl Replica {
    /// Opens (making and migrating) the site database at `path`.
    pub fn open(path: &Path) -> Result<Replica, ReplicaError> {
        let fail = |message: String| ReplicaError::Open {
            path: path.to_path_buf(),
            message,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
        }
        crate::store::private_file(path).map_err(|e| fail(e.to_string()))?;
        let mut conn = Connection::open(path).map_err(|e| fail(e.to_string()))?;
        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(fail(format!(
                "the file system does not support WAL ({mode})"
            )));
        }
        // A replica can be rebuilt from the rooms: a commit need not wait for the disk.
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "busy_timeout", 5000)?;
        migrations()
            .to_latest(&mut conn)
            .map_err(|e| fail(e.to_string()))?;
        Ok(Replica {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                writer: Mutex::new(conn),
                readers: Mutex::new(Vec::new()),
            }),
        })
    }

    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, ReplicaError> + Send + 'static,
    ) -> Result<T, ReplicaError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = inner.writer.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut conn)
        })
        .await
        .map_err(|_| ReplicaError::Gone)?
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, ReplicaError> + Send + 'static,
    ) -> Result<T, ReplicaError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let pooled = inner
                .readers
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .pop();
            let conn = match pooled {
                Some(c) => c,
                None => {
                    let c = Connection::open_with_flags(
                        &inner.path,
                        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
                            | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
                    )?;
                    c.pragma_update(None, "busy_timeout", 5000)?;
                    c
                }
            };
            let out = f(&conn);
            let mut pool = inner.readers.lock().unwrap_or_else(|p| p.into_inner());
            if pool.len() < READERS {
                pool.push(conn);
            }
            out
        })
        .await
        .map_err(|_| ReplicaError::Gone)?
    }

    /// Makes the rows of the configured rooms (a room no longer configured keeps its rows,
    /// so that a config mistake loses nothing).
    pub async fn ensure_rooms(&self, rooms: Vec<String>) -> Result<(), ReplicaError> {
        self.write(move |conn| {
            for r in rooms {
                conn.execute("INSERT OR IGNORE INTO rooms (room) VALUES (?1)", [r])?;
            }
            Ok(())
        })
        .await
    }

    /// The room's applied number: every change up to it is here.
    pub async fn applied(&self, room: &str) -> Result<i64, ReplicaError> {
        let room = room.to_string();
        self.read(move |conn| {
            Ok(conn
                .query_row("SELECT applied FROM rooms WHERE room = ?1", [room], |r| {
                    r.get(0)
                })
                .optional()?
                .unwrap_or(0))
        })
        .await
    }

    /// Applies entries of `room`'s feed in one transaction. `continues` is the number the
    /// batch continues from (a page's `since`, a message's `after`): when it is at or
    /// below the room's applied number the batch leaves no gap, and the applied number
    /// moves to the batch's `through` (its last entry's number, or the room's newest
    /// number for a page that reached the end). Otherwise the entries are still applied
    /// (each box only forwards), but the applied number stays: the gap is fetched.
    pub async fn apply(
        &self,
        room: &str,
        continues: i64,
        through: i64,
        heard: i64,
        entries: Vec<Entry>,
    ) -> Result<Applied, ReplicaError> {
        let room = room.to_string();
        self.write(move |conn| apply_on(conn, &room, continues, through, heard, &entries))
            .await
    }

    /// Drops everything the replica holds of `room` (its feed went back: the room's
    /// database was restored), so that it is taken again from the start.
    pub async fn forget_room(&self, room: &str) -> Result<(), ReplicaError> {
        let room = room.to_string();
        self.write(move |conn| {
            let tx = conn.transaction()?;
            tx.execute(
                "DELETE FROM box_words WHERE rowid IN (SELECT id FROM boxes WHERE room = ?1)",
                [&room],
            )?;
            tx.execute("DELETE FROM boxes WHERE room = ?1", [&room])?;
            tx.execute(
                "UPDATE rooms SET applied = 0, heard = 0, applied_at = NULL WHERE room = ?1",
                [&room],
            )?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    /// Boxes found by archive number, EPC or barcode, in `room` or any (the same number
    /// may be in two rooms).
    pub async fn locate(
        &self,
        key: &Key,
        room: Option<&str>,
    ) -> Result<Vec<SiteBox>, ReplicaError> {
        let (column, value) = match key {
            Key::ArchiveNo(v) => ("archive_no", v.trim().to_string()),
            Key::Epc(v) => ("epc", v.trim().to_uppercase()),
            Key::Barcode(v) => ("barcode", v.trim().to_string()),
        };
        let room = room.map(str::to_string);
        self.read(move |conn| {
            let mut st = conn.prepare_cached(&format!(
                "SELECT room, record FROM boxes WHERE {column} = ?1
                 AND (?2 IS NULL OR room = ?2) ORDER BY room"
            ))?;
            let rows = st.query_map(params![value, room], site_box)?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    /// Boxes across the site by archive number, EPC or barcode (whole), an archive
    /// number's beginning, or words of a title or field: the whole matches first, then
    /// archive numbers in order, then words in the order the site received the boxes.
    pub async fn search(
        &self,
        q: &str,
        limit: usize,
        offset: usize,
    ) -> Result<SiteFound, ReplicaError> {
        let q = q.trim().to_string();
        self.read(move |conn| search_on(conn, &q, limit, offset))
            .await
    }

    /// What the replica holds of each room, by state.
    pub async fn rooms(&self) -> Result<Vec<RoomReplica>, ReplicaError> {
        self.read(|conn| {
            let mut out: Vec<RoomReplica> = conn
                .prepare_cached("SELECT room, applied, heard, applied_at FROM rooms ORDER BY room")?
                .query_map([], |r| {
                    Ok(RoomReplica {
                        room: r.get(0)?,
                        applied: r.get(1)?,
                        heard: r.get(2)?,
                        applied_at: r
                            .get::<_, Option<i64>>(3)?
                            .and_then(chrono::DateTime::from_timestamp_millis),
                        boxes: Default::default(),
                    })
                })?
                .collect::<Result<_, _>>()?;
            let mut st = conn.prepare_cached(
                "SELECT state, count(*) FROM boxes WHERE room = ?1 GROUP BY state",
            )?;
            for room in &mut out {
                for row in st.query_map([&room.room], |r| Ok((r.get(0)?, r.get(1)?)))? {
                    let (state, n): (String, i64) = row?;
                    room.boxes.insert(state, n.unsigned_abs());
                }
            }
            Ok(out)
        })
        .await
    }

    /// A room's boxes as the replica holds them, in the shape of the room's own feed:
    /// those numbered after `since`, oldest first, at most `limit`.
    pub async fn feed(
        &self,
        room: &str,
        since: i64,
        limit: usize,
    ) -> Result<Vec<Entry>, ReplicaError> {
        let room = room.to_string();
        self.read(move |conn| {
            let mut st = conn.prepare_cached(
                "SELECT seq, room_box, record FROM boxes WHERE room = ?1 AND seq > ?2
                 ORDER BY seq LIMIT ?3",
            )?;
            let rows = st.query_map(params![room, since, limit as i64], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (seq, id, record) = row?;
                let record = serde_json::from_str(&record).map_err(|e| ReplicaError::Entry {
                    room: room.clone(),
                    why: e.to_string(),
                })?;
                out.push(Entry { seq, id, record });
            }
            Ok(out)
        })
        .await
    }

    /// Makes a site API token; returns its secret (shown once).
    pub async fn create_token(&self, name: &str, role: Role) -> Result<String, ReplicaError> {
        self.new_token(name, role, false).await
    }

    /// Makes a site API token in place of any of the same name (the demo's, at each start).
    pub async fn create_token_replacing(
        &self,
        name: &str,
        role: Role,
    ) -> Result<String, ReplicaError> {
        self.new_token(name, role, true).await
    }

    async fn new_token(
        &self,
        name: &str,
        role: Role,
        replace: bool,
    ) -> Result<String, ReplicaError> {
        let secret = format!("sst_{}", crate::bus::random_secret());
        let (name, hash) = (name.to_string(), sha256_hex(&secret));
        self.write(move |conn| {
            if replace {
                conn.execute("DELETE FROM tokens WHERE name = ?1", [&name])?;
            }
            let taken: bool = conn.query_row(
                "SELECT EXISTS (SELECT 1 FROM tokens WHERE name = ?1)",
                [&name],
                |r| r.get(0),
            )?;
            if taken {
                return Err(ReplicaError::TokenExists(name));
            }
            conn.execute(
                "INSERT INTO tokens (name, role, sha256, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![name, role.as_str(), hash, now_ms()],
            )?;
            Ok(())
        })
        .await?;
        Ok(secret)
    }

    pub async fn revoke_token(&self, name: &str) -> Result<(), ReplicaError> {
        let name = name.to_string();
        self.write(move |conn| {
            let n = conn.execute(
                "UPDATE tokens SET revoked_at = ?2 WHERE name = ?1 AND revoked_at IS NULL",
                params![name, now_ms()],
            )?;
            if n == 0 {
                return Err(ReplicaError::NoSuchToken(name));
            }
            Ok(())
        })
        .await
    }

    /// The name and role of a live token.
    pub async fn authenticate(&self, secret: &str) -> Result<Option<(String, Role)>, ReplicaError> {
        let hash = sha256_hex(secret);
        self.read(move |conn| {
            let found: Option<(String, String)> = conn
                .prepare_cached(
                    "SELECT name, role FROM tokens WHERE sha256 = ?1 AND revoked_at IS NULL",
                )?
                .query_row([hash], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            Ok(found.and_then(|(name, role)| role.parse().ok().map(|role| (name, role))))
        })
        .await
    }

    /// Records what the site did for someone.
    pub async fn record(
        &self,
        actor: &str,
        action: &str,
        outcome: &str,
    ) -> Result<(), ReplicaError> {
        let row = (actor.to_string(), action.to_string(), outcome.to_string());
        self.write(move |conn| {
            conn.execute(
                "INSERT INTO audit (at, actor, action, outcome) VALUES (?1, ?2, ?3, ?4)",
                params![now_ms(), row.0, row.1, row.2],
            )?;
            Ok(())
        })
        .await
    }

    /// The audit trail, newest first.
    pub async fn audit(&self, limit: usize) -> Result<Vec<serde_json::Value>, ReplicaError> {
        self.read(move |conn| {
            let mut st = conn.prepare_cached(
                "SELECT at, actor, action, outcome FROM audit ORDER BY id DESC LIMIT ?1",
            )?;
            let rows = st.query_map([limit as i64], |r| {
                Ok(serde_json::json!({
                    "at": chrono::DateTime::from_timestamp_millis(r.get(0)?),
                    "actor": r.get::<_, String>(1)?,
                    "action": r.get::<_, String>(2)?,
                    "outcome": r.get::<_, String>(3)?,
                }))
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }
}

/// Read connections kept at most.
const READERS: usize = 8;

fn site_box(r: &rusqlite::Row<'_>) -> rusqlite::Result<SiteBox> {
    let text: String = r.get(1)?;
    Ok(SiteBox {
        room: r.get(0)?,
        record: serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
    })
}

/// What a box's record says, for the replica's columns and its words.
struct Columns<'a> {
    archive_no: &'a str,
    epc: Option<&'a str>,
    barcode: Option<&'a str>,
    state: &'a str,
    words: String,
}

fn columns<'a>(room: &str, record: &'a serde_json::Value) -> Result<Columns<'a>, ReplicaError> {
    let text = |k: &str| record.get(k).and_then(serde_json::Value::as_str);
    let archive_no = text("archive_no").ok_or_else(|| ReplicaError::Entry {
        room: room.to_string(),
        why: "the box has no archive_no".into(),
    })?;
    let state = if record.get("disposed").is_some_and(|d| !d.is_null()) {
        "disposed"
    } else {
        record
            .get("location")
            .and_then(|l| l.get("state"))
            .and_then(serde_json::Value::as_str)
            .unwrap_or("unshelved")
    };
    let mut parts: Vec<&str> = vec![text("title").unwrap_or(""), archive_no];
    parts.extend(text("barcode"));
    if let Some(fields) = record.get("fields").and_then(serde_json::Value::as_object) {
        parts.extend(fields.values().filter_map(serde_json::Value::as_str));
    }
    Ok(Columns {
        archive_no,
        epc: text("epc"),
        barcode: text("barcode"),
        state,
        words: crate::location::index_text(parts),
    })
}

fn apply_on(
    conn: &mut Connection,
    room: &str,
    continues: i64,
    through: i64,
    heard: i64,
    entries: &[Entry],
) -> Result<Applied, ReplicaError> {
    let tx = conn.transaction()?;
    let mut written = 0;
    {
        let mut held =
            tx.prepare_cached("SELECT id, seq FROM boxes WHERE room = ?1 AND room_box = ?2")?;
        let mut insert = tx.prepare_cached(
            "INSERT INTO boxes (room, room_box, seq, archive_no, epc, barcode, state, record)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?;
        let mut update = tx.prepare_cached(
            "UPDATE boxes SET seq = ?2, archive_no = ?3, epc = ?4, barcode = ?5, state = ?6,
                record = ?7 WHERE id = ?1",
        )?;
        let mut unindex = tx.prepare_cached("DELETE FROM box_words WHERE rowid = ?1")?;
        let mut index =
            tx.prepare_cached("INSERT INTO box_words (rowid, words) VALUES (?1, ?2)")?;
        let mut vocabulary = std::collections::BTreeSet::new();
        for e in entries {
            let before: Option<(i64, i64)> = held
                .query_row(params![room, e.id], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            if before.is_some_and(|(_, seq)| seq >= e.seq) {
                continue; // Already as new, or newer.
            }
            let c = columns(room, &e.record)?;
            let record = e.record.to_string();
            let id = match before {
                Some((id, _)) => {
                    update.execute(params![
                        id,
                        e.seq,
                        c.archive_no,
                        c.epc,
                        c.barcode,
                        c.state,
                        record
                    ])?;
                    unindex.execute([id])?;
                    id
                }
                None => {
                    insert.execute(params![
                        room,
                        e.id,
                        e.seq,
                        c.archive_no,
                        c.epc,
                        c.barcode,
                        c.state,
                        record
                    ])?;
                    tx.last_insert_rowid()
                }
            };
            index.execute(params![id, c.words])?;
            vocabulary.extend(crate::location::vocabulary(&c.words));
            written += 1;
        }
        crate::location::add_terms(&tx, vocabulary)?;
    }
    let applied: i64 = tx
        .query_row("SELECT applied FROM rooms WHERE room = ?1", [room], |r| {
            r.get(0)
        })
        .optional()?
        .unwrap_or(0);
    let applied = if continues <= applied {
        applied.max(through)
    } else {
        applied
    };
    tx.execute(
        "INSERT INTO rooms (room, applied, heard, applied_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (room) DO UPDATE SET applied = excluded.applied,
            heard = max(rooms.heard, excluded.heard),
            applied_at = CASE WHEN ?5 > 0 THEN excluded.applied_at ELSE rooms.applied_at END",
        params![room, applied, heard, now_ms(), written as i64],
    )?;
    tx.commit()?;
    Ok(Applied { written, applied })
}

fn search_on(
    conn: &Connection,
    q: &str,
    limit: usize,
    offset: usize,
) -> Result<SiteFound, ReplicaError> {
    let mut found: Vec<i64> = Vec::new();
    let mut seen: HashSet<i64> = HashSet::new();
    let want = COUNTED + 1;
    // Adds the ids not seen yet; how many there are now.
    let mut take =
        |ids: &mut dyn Iterator<Item = rusqlite::Result<i64>>| -> rusqlite::Result<usize> {
            for id in ids {
                let id = id?;
                if found.len() >= want {
                    break;
                }
                if seen.insert(id) {
                    found.push(id);
                }
            }
            Ok(found.len())
        };
    if !q.is_empty() {
        let mut whole = conn.prepare_cached(
            "SELECT id FROM boxes WHERE archive_no = ?1
             UNION SELECT id FROM boxes WHERE epc = upper(?1)
             UNION SELECT id FROM boxes WHERE barcode = ?1",
        )?;
        // A whole archive number, EPC or barcode that matches is what was asked for: its
        // words (`0451`, `H`, … in millions of titles) are not asked as well.
        let identifier = take(&mut whole.query_map([q], |r| r.get(0))?)? > 0;
        let mut begins = conn.prepare_cached(
            "SELECT id FROM boxes WHERE archive_no > ?1 AND archive_no < ?1 || char(1114111)
             ORDER BY archive_no LIMIT ?2",
        )?;
        take(&mut begins.query_map(params![q, want as i64], |r| r.get(0))?)?;
        if let Some(m) = crate::location::match_query(q).filter(|_| !identifier) {
            let mut words = conn
                .prepare_cached("SELECT rowid FROM box_words WHERE box_words MATCH ?1 LIMIT ?2")?;
            let so_far = take(&mut words.query_map(params![m.exact, want as i64], |r| r.get(0))?)?;
            // The word being typed only for what the whole words did not fill.
            if let Some(typing) = m.typing.filter(|_| so_far < want) {
                let query = crate::location::typing_query(conn, &typing)?;
                take(&mut words.query_map(params![query, want as i64], |r| r.get(0))?)?;
            }
        }
    }
    let more = found.len() > COUNTED;
    let total = found.len().min(COUNTED);
    let mut read = conn.prepare_cached("SELECT room, record FROM boxes WHERE id = ?1")?;
    let items = found
        .iter()
        .skip(offset)
        .take(limit)
        .map(|id| read.query_row([id], site_box))
        .collect::<Result<_, _>>()?;
    Ok(SiteFound { items, total, more })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: i64, id: i64, no: &str, title: &str) -> Entry {
        Entry {
            seq,
            id,
            record: serde_json::json!({"archive_no": no, "title": title, "epc": null,
                "barcode": null, "fields": {}, "location": null}),
        }
    }

    #[tokio::test]
    async fn entries_apply_forward_only_and_gaps_hold_the_applied_number() {
        let dir = tempfile::tempdir().unwrap();
        let r = Replica::open(&dir.path().join("site.db")).unwrap();
        r.ensure_rooms(vec!["a".into(), "b".into()]).await.unwrap();
        let first = vec![
            entry(1, 1, "0451-H-001-00001", "供用电合同 王伟"),
            entry(2, 2, "0451-H-001-00002", "metering file"),
        ];
        let done = r.apply("a", 0, 2, 2, first).await.unwrap();
        assert_eq!(
            done,
            Applied {
                written: 2,
                applied: 2
            }
        );
        // The same page again changes nothing; an older entry of a box neither.
        let again = r
            .apply("a", 0, 2, 2, vec![entry(1, 1, "0451-H-001-00001", "old")])
            .await
            .unwrap();
        assert_eq!(again.written, 0);
        // A message after a gap is applied but the applied number waits for the gap.
        let gap = r
            .apply(
                "a",
                5,
                6,
                6,
                vec![entry(6, 2, "0451-H-001-00002", "metering file, corrected")],
            )
            .await
            .unwrap();
        assert_eq!(
            gap,
            Applied {
                written: 1,
                applied: 2
            }
        );
        // The page that fills it moves it on.
        let fill = r
            .apply(
                "a",
                2,
                6,
                6,
                vec![entry(6, 2, "0451-H-001-00002", "metering file, corrected")],
            )
            .await
            .unwrap();
        assert_eq!(
            fill,
            Applied {
                written: 0,
                applied: 6
            }
        );
        // The same archive number in another room is another box.
        r.apply(
            "b",
            0,
            1,
            1,
            vec![entry(1, 1, "0451-H-001-00001", "另一个库房")],
        )
        .await
        .unwrap();
        let no = Key::ArchiveNo("0451-H-001-00001".into());
        assert_eq!(r.locate(&no, None).await.unwrap().len(), 2);
        assert_eq!(r.locate(&no, Some("b")).await.unwrap().len(), 1);
        let found = r.search("corrected", 20, 0).await.unwrap();
        assert_eq!(found.items.len(), 1);
        assert_eq!(found.items[0].room, "a");
        assert!(
            r.search("metering", 20, 0).await.unwrap().items.len() == 1,
            "the old words are gone"
        );
        assert_eq!(
            r.search("供电", 20, 0).await.unwrap().total,
            0,
            "a phrase matches adjacent"
        );
        assert_eq!(r.search("供用", 20, 0).await.unwrap().total, 1);
        assert_eq!(r.search("0451-H-001", 20, 0).await.unwrap().total, 3);
        assert_eq!(
            r.search("meter", 20, 0).await.unwrap().total,
            1,
            "a word being typed"
        );
        assert_eq!(
            r.search("meteo", 20, 0).await.unwrap().total,
            0,
            "no word begins so"
        );
        // A whole archive number is the answer: not its words as well.
        let whole = r.search("0451-H-001-00001", 20, 0).await.unwrap();
        assert_eq!((whole.total, whole.items.len()), (2, 2));
        let rooms = r.rooms().await.unwrap();
        assert_eq!(rooms[0].boxes.get("unshelved"), Some(&2));
        assert_eq!(r.feed("a", 0, 10).await.unwrap().len(), 2);
        // A room taken again from the start (its database restored) loses nothing of others.
        r.forget_room("a").await.unwrap();
        assert_eq!(r.applied("a").await.unwrap(), 0);
        assert_eq!(r.search("corrected", 20, 0).await.unwrap().total, 0);
        assert_eq!(r.search("0451-H-001", 20, 0).await.unwrap().total, 1);
    }

    #[tokio::test]
    async fn tokens_are_kept_as_hashes_and_revoked() {
        let dir = tempfile::tempdir().unwrap();
        let r = Replica::open(&dir.path().join("site.db")).unwrap();
        let secret = r.create_token("alice", Role::Operator).await.unwrap();
        assert_eq!(
            r.authenticate(&secret).await.unwrap(),
            Some(("alice".into(), Role::Operator))
        );
        assert!(matches!(
            r.create_token("alice", Role::Viewer).await,
            Err(ReplicaError::TokenExists(_))
        ));
        r.revoke_token("alice").await.unwrap();
        assert_eq!(r.authenticate(&secret).await.unwrap(), None);
        assert!(r.authenticate("sst_guess").await.unwrap().is_none());
    }
}

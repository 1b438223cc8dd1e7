//! Backups of the room's database: taken while the room works at its busiest, verified,
//! described by a manifest, kept by a schedule with retention, and restored.
//!
//! - **Take** ([`take`]): the database and its lookup register are copied from one read
//!   snapshot, every page in one step ([`Store::snapshot_to`]), so writes going on
//!   meanwhile neither block the copy nor make it start again; the same snapshot's row
//!   counts, last ids and a digest of every table are the copy's expected contents. The
//!   copy is written to hidden `.partial` files, synced, verified, and only then renamed
//!   into place, with its manifest (`NAME.manifest.json`) beside it. A backup killed
//!   midway leaves no file that looks finished; an existing backup is replaced only when
//!   asked (`force`), and the live database's own files never.
//! - **Verify** ([`verify`]): each file's SHA-256 against the manifest, SQLite's
//!   `integrity_check`, and every table's count, last id and digest against the source's.
//! - **Restore** ([`restore`]): verifies, refuses while anything has the database open
//!   (the lock file every store holds shared), moves the old files aside into
//!   `before-restore-TIME/`, copies the backup in and migrates it to this build's schema.
//! - **Schedule** ([`Backups`]): `[backup]`'s cron takes a backup into its directory,
//!   then prunes to the newest backup of each of the last `keep_daily` days,
//!   `keep_weekly` ISO weeks and `keep_monthly` months. A failure raises the alarm
//!   `backup_failed` (cleared by the next good backup); `/metrics` says how old the last
//!   good backup is.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Datelike, Local, Utc};
use rusqlite::{Connection, OpenFlags, types::ValueRef};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::audit::{Audit, NewEntry};
use crate::config::backup::BackupSettings;
use crate::environment::{AlarmFilter, AlarmKind, Environment};
use crate::store::{self, Store, StoreError, register_path};

/// The manifest's format, so that a later stackroom can tell what it reads.
pub const FORMAT: &str = "stackroom-backup/1";

/// Why a backup or restore did not happen; nothing half-made is left behind.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{}: {message}", path.display())]
    Refused { path: PathBuf, message: String },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{}: the backup does not check out: {message}", path.display())]
    Bad { path: PathBuf, message: String },
}

impl From<rusqlite::Error> for BackupError {
    fn from(e: rusqlite::Error) -> Self {
        BackupError::Store(e.into())
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What a backup holds, written beside it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    /// When the snapshot was taken.
    pub taken_at: DateTime<Utc>,
    /// The stackroom that took it.
    pub stackroom: String,
    /// The schema version of the database copied (see [`store::schema_version`]).
    pub schema_version: usize,
    /// The database copied.
    pub source: PathBuf,
    /// The database file and the register's, by file name.
    pub files: Vec<FileSum>,
    /// Every table of both files, as `main.boxes` or `register.lookups`.
    pub tables: BTreeMap<String, TableSum>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileSum {
    pub name: String,
    pub bytes: u64,
    pub sha256: String,
}

/// A table's rows as the snapshot held them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableSum {
    pub rows: u64,
    /// The largest rowid (the last id of an append-only table); none for a table without
    /// rowids or with no rows.
    pub last_id: Option<i64>,
    /// SHA-256 of every value of every row, in the table's own order.
    pub sha256: String,
}

impl Manifest {
    /// The rows of a table of the main file (0 if it has none).
    pub fn rows(&self, table: &str) -> u64 {
        self.tables
            .get(&format!("main.{table}"))
            .map_or(0, |t| t.rows)
    }
}

/// The manifest beside the backup `db`: `x.db` → `x.manifest.json`.
pub fn manifest_path(db: &Path) -> PathBuf {
    db.with_extension("manifest.json")
}

/// The hidden file a copy is written to before it is renamed into place.
fn partial(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.partial"))
}

/// The name of a backup taken at `at` into a directory.
pub fn file_name(at: DateTime<Utc>) -> String {
    format!("stackroom-{}.db", at.format("%Y%m%dT%H%M%SZ"))
}

/// The files of the live database `db`, none of which a backup may be written over.
fn live_files(db: &Path) -> Vec<PathBuf> {
    let register = register_path(db);
    let mut files = Vec::new();
    for f in [db, register.as_path()] {
        files.push(f.to_path_buf());
        for suffix in ["-wal", "-shm", "-journal"] {
            let mut name = f.as_os_str().to_owned();
            name.push(suffix);
            files.push(name.into());
        }
    }
    files.push(store::lock_path(db));
    files.push(db.with_extension("revoked"));
    files
}

/// `path` with its directory made absolute and links resolved (the file need not exist).
fn resolved(path: &Path) -> Result<PathBuf, BackupError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path.file_name().ok_or_else(|| BackupError::Refused {
        path: path.to_path_buf(),
        message: "names no file".into(),
    })?;
    let dir = dir.canonicalize().map_err(io(dir))?;
    Ok(dir.join(name))
}

/// Where a backup asked for as `dest` goes: into `dest` with a name of its time if it is a
/// directory. Refuses the live database's own files, and an existing backup unless `force`.
fn target(
    live: &Path,
    dest: &Path,
    at: DateTime<Utc>,
    force: bool,
) -> Result<PathBuf, BackupError> {
    let dest = if dest.is_dir() {
        dest.join(file_name(at))
    } else {
        dest.to_path_buf()
    };
    let file = resolved(&dest)?;
    let live = resolved(live)?;
    let forbidden = live_files(&live);
    for f in [file.clone(), register_path(&file), manifest_path(&file)] {
        if forbidden.contains(&f) {
            return Err(BackupError::Refused {
                path: dest,
                message: "is the live database or one of its files: a backup goes elsewhere".into(),
            });
        }
    }
    if !force {
        for f in [&file, &register_path(&file), &manifest_path(&file)] {
            if f.exists() {
                return Err(BackupError::Refused {
                    path: f.clone(),
                    message: "exists already: give --force to replace it".into(),
                });
            }
        }
    }
    Ok(file)
}

/// A backup taken: where, and what it holds.
#[derive(Debug, Clone)]
pub struct Taken {
    pub file: PathBuf,
    pub manifest: Manifest,
    /// Pages copied, both files.
    pub pages: usize,
    /// How long the copy took, and then checking it (the snapshot's sums, the copy's
    /// integrity check and sums, its SHA-256).
    pub copied_in: std::time::Duration,
    pub checked_in: std::time::Duration,
}

/// Takes a backup of `store` to `dest` (a file, or a directory to name one in), verifies
/// it and writes its manifest; see the module's docs.
pub async fn take(store: &Store, dest: &Path, force: bool) -> Result<Taken, BackupError> {
    let taken_at = Utc::now();
    let file = target(store.path(), dest, taken_at, force)?;
    let register = register_path(&file);
    let (tmp, tmp_register) = (partial(&file), partial(&register));
    for f in [&tmp, &tmp_register] {
        remove_if_there(f)?;
    }
    let started = std::time::Instant::now();
    let made = async {
        let (pages, (source, schema_version, copied_in)) = store
            .snapshot_to(&tmp, &tmp_register, move |conn| {
                let copied_in = started.elapsed();
                let version: i64 =
                    conn.pragma_query_value(Some("main"), "user_version", |r| r.get(0))?;
                let version = usize::try_from(version).unwrap_or_default();
                Ok((sums(conn)?, version, copied_in))
            })
            .await?;
        let (tmp, tmp_register) = (tmp.clone(), tmp_register.clone());
        let (done, register) = (file.clone(), register.clone());
        let source_path = store.path().to_path_buf();
        let manifest = blocking(move || {
            let file = done;
            let copied = check_copy(&tmp, &tmp_register)?;
            if let Some(why) = differences(&source, &copied) {
                return Err(BackupError::Bad {
                    path: file.clone(),
                    message: format!("the copy differs from the database it was taken from: {why}"),
                });
            }
            let manifest = Manifest {
                format: FORMAT.into(),
                taken_at,
                stackroom: env!("CARGO_PKG_VERSION").into(),
                schema_version,
                source: source_path,
                files: vec![file_sum(&tmp, &file)?, file_sum(&tmp_register, &register)?],
                tables: source,
            };
            // An old manifest must not describe the new files, even for a moment.
            remove_if_there(&manifest_path(&file))?;
            std::fs::rename(&tmp, &file).map_err(io(&file))?;
            std::fs::rename(&tmp_register, &register).map_err(io(&register))?;
            write_manifest(&file, &manifest)?;
            Ok(manifest)
        })
        .await?;
        Ok::<_, BackupError>(Taken {
            file: file.clone(),
            manifest,
            pages,
            copied_in,
            checked_in: started.elapsed() - copied_in,
        })
    }
    .await;
    if made.is_err() {
        for f in [&tmp, &tmp_register] {
            let _ = std::fs::remove_file(f);
        }
    }
    made
}

/// Reads the manifest beside `db` and checks the backup against it: the files' SHA-256,
/// SQLite's integrity check, every table's rows.
pub fn verify(db: &Path) -> Result<Manifest, BackupError> {
    let bad = |message: String| BackupError::Bad {
        path: db.to_path_buf(),
        message,
    };
    let path = manifest_path(db);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        bad(format!(
            "its manifest {} cannot be read ({e}): not a stackroom backup, or its manifest was lost",
            path.display()
        ))
    })?;
    let manifest: Manifest = serde_json::from_str(&text)
        .map_err(|e| bad(format!("its manifest {} is not one: {e}", path.display())))?;
    if manifest.format != FORMAT {
        return Err(bad(format!(
            "its manifest is of format '{}', this stackroom reads '{FORMAT}'",
            manifest.format
        )));
    }
    let register = register_path(db);
    if manifest.files.len() != 2 {
        return Err(bad(format!(
            "its manifest lists {} files, not the database and its register",
            manifest.files.len()
        )));
    }
    for (file, expected) in [db, register.as_path()].into_iter().zip(&manifest.files) {
        let found = file_sum(file, file)?;
        if found.bytes != expected.bytes || found.sha256 != expected.sha256 {
            return Err(bad(format!(
                "{} has changed since the backup ({} bytes, SHA-256 {}; the manifest says {} bytes, {})",
                file.display(),
                found.bytes,
                found.sha256,
                expected.bytes,
                expected.sha256
            )));
        }
    }
    let copied = check_copy(db, &register)?;
    if let Some(why) = differences(&manifest.tables, &copied) {
        return Err(bad(format!("its tables differ from its manifest: {why}")));
    }
    Ok(manifest)
}

/// Every table of the database `db` and its register, summed as a manifest sums them:
/// what a restored database is compared with.
pub fn contents(db: &Path) -> Result<BTreeMap<String, TableSum>, BackupError> {
    let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    conn.execute(
        "ATTACH DATABASE ?1 AS register",
        [register_path(db).to_string_lossy()],
    )?;
    Ok(sums(&conn)?)
}

/// A database restored.
#[derive(Debug)]
pub struct Restored {
    pub manifest: Manifest,
    /// Where the database that was there before now is.
    pub aside: Option<PathBuf>,
    /// The schema version of the backup, before it was migrated to this build's.
    pub schema_version: usize,
}

/// Restores the backup `backup` as the database `db` (`DATA/stackroom.db`); see the
/// module's docs. Blocking.
pub fn restore(backup: &Path, db: &Path) -> Result<Restored, BackupError> {
    let manifest = verify(backup)?;
    if manifest.schema_version > store::schema_version() {
        return Err(BackupError::Refused {
            path: backup.to_path_buf(),
            message: format!(
                "is of schema version {}, newer than this stackroom's {}: restore it with the stackroom that took it",
                manifest.schema_version,
                store::schema_version()
            ),
        });
    }
    let dir = match db.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let live = resolved(db)?;
    if live_files(&live).contains(&resolved(backup)?) {
        return Err(BackupError::Refused {
            path: backup.to_path_buf(),
            message: "is the database it would replace".into(),
        });
    }
    let _alone = store::try_lock(&store::lock_path(db), true)
        .map_err(io(db))?
        .ok_or_else(|| BackupError::Refused {
            path: db.to_path_buf(),
            message:
                "is open in another stackroom process (a controller serving it?): stop it first"
                    .into(),
        })?;
    let present: Vec<PathBuf> = live_files(db)
        .into_iter()
        .filter(|f| f.exists() && *f != store::lock_path(db))
        .collect();
    let aside = if present.is_empty() {
        None
    } else {
        let aside = dir.join(format!(
            "before-restore-{}",
            Utc::now().format("%Y%m%dT%H%M%S%.3fZ")
        ));
        std::fs::create_dir(&aside).map_err(io(&aside))?;
        for f in &present {
            let to = aside.join(f.file_name().unwrap_or_default());
            std::fs::rename(f, &to).map_err(io(f))?;
        }
        Some(aside)
    };
    for (from, to) in [
        (backup.to_path_buf(), db.to_path_buf()),
        (register_path(backup), register_path(db)),
    ] {
        let tmp = partial(&to);
        store::private_file(&tmp).map_err(io(&tmp))?;
        std::fs::copy(&from, &tmp).map_err(io(&from))?;
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(io(&tmp))?;
        std::fs::rename(&tmp, &to).map_err(io(&to))?;
    }
    sync_dir(&dir)?;
    let schema_version = store::upgrade(db)?;
    Ok(Restored {
        manifest,
        aside,
        schema_version,
    })
}

/// Runs `f` on a blocking thread.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, BackupError> + Send + 'static,
) -> Result<T, BackupError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| BackupError::Store(StoreError::Task(e.to_string())))?
}

fn remove_if_there(path: &Path) -> Result<(), BackupError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(path)(e)),
        _ => Ok(()),
    }
}

fn sync_dir(dir: &Path) -> Result<(), BackupError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))
}

/// Writes the manifest beside `db` (through a file of its own renamed into place).
fn write_manifest(db: &Path, manifest: &Manifest) -> Result<(), BackupError> {
    let path = manifest_path(db);
    let tmp = partial(&path);
    let text = serde_json::to_string_pretty(manifest).map_err(|e| BackupError::Bad {
        path: path.clone(),
        message: e.to_string(),
    })?;
    std::fs::write(&tmp, text + "\n")
        .and_then(|()| std::fs::File::open(&tmp)?.sync_all())
        .map_err(io(&tmp))?;
    std::fs::rename(&tmp, &path).map_err(io(&path))?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// The size and SHA-256 of the file at `path`, named as `name`'s file name.
fn file_sum(path: &Path, name: &Path) -> Result<FileSum, BackupError> {
    let mut file = std::fs::File::open(path).map_err(io(path))?;
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut bytes = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(io(path))?;
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
        bytes += n as u64;
    }
    Ok(FileSum {
        name: name
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        bytes,
        sha256: hex(&hash.finalize()),
    })
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Opens a copy (`db` and its register) read-only and unchanging, as SQLite's
/// `immutable` URI parameter says: no lock, no WAL, nothing written beside it.
fn open_copy(db: &Path, register: &Path) -> Result<Connection, BackupError> {
    let uri = |p: &Path| -> Result<String, BackupError> {
        let p = p.canonicalize().map_err(io(p))?;
        Ok(format!(
            "file:{}?immutable=1",
            percent_encoding::utf8_percent_encode(
                &p.to_string_lossy(),
                percent_encoding::NON_ALPHANUMERIC
            )
            .to_string()
            .replace("%2F", "/")
        ))
    };
    let conn = Connection::open_with_flags(
        uri(db)?,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI,
    )?;
    conn.execute("ATTACH DATABASE ?1 AS register", [uri(register)?])?;
    Ok(conn)
}

/// SQLite's integrity check of a copy, then its tables' sums.
fn check_copy(db: &Path, register: &Path) -> Result<BTreeMap<String, TableSum>, BackupError> {
    let conn = open_copy(db, register)?;
    let problems: Vec<String> = conn
        .prepare("PRAGMA integrity_check")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    if problems != ["ok"] {
        return Err(BackupError::Bad {
            path: db.to_path_buf(),
            message: format!("SQLite's integrity check: {}", problems.join("; ")),
        });
    }
    Ok(sums(&conn)?)
}

/// Every table of both files (the schema tables and FTS5's shadow tables among them): rows,
/// last rowid, and a digest of every value in the table's own order.
fn sums(conn: &Connection) -> Result<BTreeMap<String, TableSum>, rusqlite::Error> {
    let tables: Vec<(String, String, bool)> = conn
        .prepare(
            "SELECT schema, name, wr FROM pragma_table_list
             WHERE schema IN ('main', 'register') AND type IN ('table', 'shadow')
             ORDER BY schema, name",
        )?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    let mut out = BTreeMap::new();
    for (schema, name, without_rowid) in tables {
        let quoted = format!("\"{schema}\".\"{}\"", name.replace('"', "\"\""));
        let mut statement = conn.prepare(&format!("SELECT * FROM {quoted}"))?;
        let columns = statement.column_count();
        let mut rows = statement.query([])?;
        let mut hash = Sha256::new();
        let mut count = 0u64;
        while let Some(row) = rows.next()? {
            count += 1;
            for i in 0..columns {
                match row.get_ref(i)? {
                    ValueRef::Null => hash.update([0]),
                    ValueRef::Integer(v) => {
                        hash.update([1]);
                        hash.update(v.to_le_bytes());
                    }
                    ValueRef::Real(v) => {
                        hash.update([2]);
                        hash.update(v.to_bits().to_le_bytes());
                    }
                    ValueRef::Text(v) | ValueRef::Blob(v) => {
                        hash.update([3]);
                        hash.update((v.len() as u64).to_le_bytes());
                        hash.update(v);
                    }
                }
            }
        }
        let last_id = if without_rowid {
            None
        } else {
            conn.query_row(&format!("SELECT max(rowid) FROM {quoted}"), [], |r| {
                r.get(0)
            })?
        };
        out.insert(
            format!("{schema}.{name}"),
            TableSum {
                rows: count,
                last_id,
                sha256: hex(&hash.finalize()),
            },
        );
    }
    Ok(out)
}

/// How two sets of table sums differ, if they do (the first few differences).
fn differences(
    expected: &BTreeMap<String, TableSum>,
    found: &BTreeMap<String, TableSum>,
) -> Option<String> {
    let names: BTreeSet<&String> = expected.keys().chain(found.keys()).collect();
    let mut out = Vec::new();
    for name in names {
        match (expected.get(name), found.get(name)) {
            (Some(e), Some(f)) if e == f => {}
            (Some(e), Some(f)) => out.push(format!(
                "{name}: {} rows (last id {:?}) where {} (last id {:?}) were expected{}",
                f.rows,
                f.last_id,
                e.rows,
                e.last_id,
                if e.rows == f.rows && e.last_id == f.last_id {
                    ", and other values"
                } else {
                    ""
                }
            )),
            (Some(_), None) => out.push(format!("{name} is missing")),
            (None, Some(_)) => out.push(format!("{name} was not expected")),
            (None, None) => {}
        }
    }
    (!out.is_empty()).then(|| {
        let more = out.len().saturating_sub(5);
        out.truncate(5);
        if more > 0 {
            out.push(format!("and {more} more"));
        }
        out.join("; ")
    })
}

// ---------------------------------------------------------------------------------------
// The schedule.

/// The backups a schedule keeps: of the backups taken at `times` (any order), the newest
/// one, and the newest of each of the `daily` most recent days that have one, likewise of
/// the `weekly` ISO weeks and the `monthly` months (local time). Answers their indexes.
pub fn to_keep(
    times: &[DateTime<Local>],
    daily: u32,
    weekly: u32,
    monthly: u32,
) -> BTreeSet<usize> {
    let mut order: Vec<usize> = (0..times.len()).collect();
    order.sort_by(|a, b| times[*b].cmp(&times[*a]));
    let mut keep: BTreeSet<usize> = order.first().copied().into_iter().collect();
    type Period = fn(&DateTime<Local>) -> (i32, u32);
    let periods: [(u32, Period); 3] = [
        (daily, |t| (t.year(), t.ordinal())),
        (weekly, |t| {
            let w = t.iso_week();
            (w.year(), w.week())
        }),
        (monthly, |t| (t.year(), t.month())),
    ];
    for (n, period) in periods {
        let mut seen = BTreeSet::new();
        for &i in &order {
            if seen.len() as u32 >= n {
                break;
            }
            if seen.insert(period(&times[i])) {
                keep.insert(i);
            }
        }
    }
    keep
}

/// Who the audit trail says took a scheduled backup.
pub const SCHEDULE_ACTOR: &str = "scheduler";

/// The scheduled backups of a room: its directory, the last good backup, the schedule's
/// task. Cheap to clone.
#[derive(Clone)]
pub struct Backups {
    inner: Arc<Inner>,
}

struct Inner {
    settings: BackupSettings,
    dir: PathBuf,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    last_good: Option<DateTime<Utc>>,
    failures: u64,
}

/// What the schedule did at one of its times.
#[derive(Debug)]
pub struct Run {
    pub taken: Taken,
    /// The backups removed by the retention.
    pub removed: Vec<PathBuf>,
}

impl Backups {
    /// The room's scheduled backups into `settings.dir` (inside `data_dir` if relative);
    /// the last good one is the newest manifest there.
    pub fn new(settings: BackupSettings, data_dir: &Path) -> Backups {
        let dir = settings.dir_in(data_dir);
        let last_good = list(&dir).into_iter().map(|(at, _)| at).max();
        Backups {
            inner: Arc::new(Inner {
                settings,
                dir,
                state: Mutex::new(State {
                    last_good,
                    failures: 0,
                }),
            }),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// When the last backup that verified was taken.
    pub fn last_good(&self) -> Option<DateTime<Utc>> {
        self.inner.state.lock().ok().and_then(|s| s.last_good)
    }

    /// Scheduled backups that failed since the start.
    pub fn failures(&self) -> u64 {
        self.inner.state.lock().map_or(0, |s| s.failures)
    }

    /// Starts the schedule: at each time of its cron expression, [`Backups::run_once`].
    pub fn start(
        &self,
        store: &Store,
        environment: &Environment,
        audit: &Audit,
        tasks: &crate::link::Tasks,
    ) {
        let (this, store, environment, audit) = (
            self.clone(),
            store.clone(),
            environment.clone(),
            audit.clone(),
        );
        tasks.spawn(async move {
            loop {
                let now = Local::now();
                let next = match this.inner.settings.cron.find_next_occurrence(&now, false) {
                    Ok(next) => next,
                    Err(e) => {
                        tracing::error!(error = %e, "backup.cron has no next time: no more scheduled backups");
                        return;
                    }
                };
                tokio::time::sleep((next - now).to_std().unwrap_or_default()).await;
                let outcome = match this.run_once(&store, &environment).await {
                    Ok(run) => NewEntry::new(
                        SCHEDULE_ACTOR,
                        "backup",
                        run.taken.file.display().to_string(),
                        "verified",
                    )
                    .detail(format!("{} older backup(s) removed", run.removed.len())),
                    Err(why) => NewEntry::new(
                        SCHEDULE_ACTOR,
                        "backup",
                        this.inner.dir.display().to_string(),
                        "failed",
                    )
                    .detail(why),
                };
                audit.record(outcome).await;
            }
        });
    }

    /// Takes a backup into the directory, prunes it as the retention says, and raises the
    /// alarm `backup_failed` if that fails (cleared when one succeeds).
    pub async fn run_once(&self, store: &Store, environment: &Environment) -> Result<Run, String> {
        let dir = self.inner.dir.clone();
        let result = async {
            std::fs::create_dir_all(&dir).map_err(io(&dir))?;
            let taken = take(store, &dir, false).await?;
            let removed = self.prune(&taken.file)?;
            Ok::<_, BackupError>(Run { taken, removed })
        }
        .await;
        match result {
            Ok(run) => {
                if let Ok(mut s) = self.inner.state.lock() {
                    s.last_good = Some(run.taken.manifest.taken_at);
                }
                tracing::info!(file = %run.taken.file.display(), removed = run.removed.len(), "scheduled backup taken");
                if let Err(e) = environment.clear(AlarmKind::BackupFailed, "backup").await {
                    tracing::error!(error = %e, "the backup alarm could not be cleared");
                }
                Ok(run)
            }
            Err(e) => {
                let message = format!("the scheduled backup failed: {e}");
                tracing::error!(error = %e, "scheduled backup failed");
                if let Ok(mut s) = self.inner.state.lock() {
                    s.failures += 1;
                }
                let open = environment
                    .alarms(Some(AlarmFilter::Open), 1000)
                    .await
                    .map(|a| a.iter().any(|a| a.kind == AlarmKind::BackupFailed))
                    .unwrap_or(false);
                if !open
                    && let Err(e) = environment
                        .raise(
                            AlarmKind::BackupFailed,
                            "",
                            "backup",
                            message.clone(),
                            serde_json::json!({"dir": dir.display().to_string(), "error": e.to_string()}),
                        )
                        .await
                {
                    tracing::error!(error = %e, "the backup alarm could not be recorded");
                }
                Err(message)
            }
        }
    }

    /// Removes the backups the retention does not keep (never `newest`); answers what it
    /// removed.
    fn prune(&self, newest: &Path) -> Result<Vec<PathBuf>, BackupError> {
        let s = &self.inner.settings;
        let found = list(&self.inner.dir);
        let times: Vec<DateTime<Local>> = found
            .iter()
            .map(|(at, _)| at.with_timezone(&Local))
            .collect();
        let keep = to_keep(&times, s.keep_daily, s.keep_weekly, s.keep_monthly);
        let mut removed = Vec::new();
        for (i, (_, file)) in found.iter().enumerate() {
            if keep.contains(&i) || file == newest {
                continue;
            }
            // The manifest first: a backup without one is no backup.
            for f in [manifest_path(file), file.clone(), register_path(file)] {
                remove_if_there(&f)?;
            }
            removed.push(file.clone());
        }
        Ok(removed)
    }
}

/// The backups in `dir` that have a manifest: when each was taken, and its file.
fn list(dir: &Path) -> Vec<(DateTime<Utc>, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some(stem) = name.strip_suffix(".manifest.json") else {
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        let Ok(manifest) = std::fs::read_to_string(&path)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str::<Manifest>(&t).map_err(|e| e.to_string()))
        else {
            continue;
        };
        out.push((manifest.taken_at, dir.join(format!("{stem}.db"))));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<Local> {
        Local.with_ymd_and_hms(y, m, d, h, 30, 0).unwrap()
    }

    #[test]
    fn retention_keeps_the_newest_of_each_day_week_and_month() {
        // Two backups a day (02:30 and 14:30) from 2026-01-01 to 2026-03-31.
        let mut times = Vec::new();
        let mut day = chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
        while day <= chrono::NaiveDate::from_ymd_opt(2026, 3, 31).unwrap() {
            for h in [2, 14] {
                times.push(at(day.year(), day.month(), day.day(), h));
            }
            day = day.succ_opt().unwrap();
        }
        let keep = to_keep(&times, 3, 2, 3);
        let kept: BTreeSet<String> = keep
            .iter()
            .map(|i| times[*i].format("%m-%d %H").to_string())
            .collect();
        let expected: BTreeSet<String> = [
            // The last three days, their newest.
            "03-31 14", "03-30 14", "03-29 14",
            // The last two ISO weeks: week 14 (Mon 03-30) and week 13 (ends Sun 03-29).
            // The last three months.
            "02-28 14", "01-31 14",
        ]
        .into_iter()
        .map(String::from)
        .collect();
        assert_eq!(kept, expected);
        // Nothing kept by day: the newest is kept all the same.
        assert_eq!(to_keep(&times, 0, 0, 0).len(), 1);
        assert!(to_keep(&[], 7, 4, 12).is_empty());
        // Order does not matter.
        let mut reversed = times.clone();
        reversed.reverse();
        assert_eq!(to_keep(&reversed, 3, 2, 3).len(), keep.len());
    }

    #[test]
    fn a_backup_name_sorts_by_its_time() {
        let a = Utc.with_ymd_and_hms(2026, 12, 1, 2, 30, 0).unwrap();
        assert_eq!(file_name(a), "stackroom-20261201T023000Z.db");
        assert_eq!(
            manifest_path(Path::new("/b/stackroom-20261201T023000Z.db")),
            Path::new("/b/stackroom-20261201T023000Z.manifest.json")
        );
    }

    async fn store_with_rows(dir: &Path) -> Store {
        let store = Store::open(&dir.join("live").join("stackroom.db")).unwrap();
        store
            .write(|c: &Connection| -> Result<(), StoreError> {
                for i in 0..100 {
                    c.execute(
                        "INSERT INTO boxes (archive_no, series, created_at) VALUES (?1, 's', 0)",
                        [format!("A-{i}")],
                    )?;
                }
                Ok(())
            })
            .await
            .unwrap();
        store
    }

    #[tokio::test]
    async fn a_backup_verifies_refuses_to_overwrite_and_notices_a_changed_byte() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_rows(dir.path()).await;
        let dest = dir.path().join("b.db");
        let taken = take(&store, &dest, false).await.unwrap();
        assert_eq!(taken.manifest.rows("boxes"), 100);
        assert_eq!(taken.manifest.tables["main.boxes"].last_id, Some(100));
        assert!(taken.manifest.tables.contains_key("register.lookups"));
        assert_eq!(verify(&dest).unwrap(), taken.manifest);
        // No partial file is left, nothing is written beside the copy by checking it.
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["b.db", "b.lookups.db", "b.manifest.json", "live"]);

        let refused = take(&store, &dest, false).await.unwrap_err();
        assert!(refused.to_string().contains("--force"), "{refused}");
        take(&store, &dest, true).await.unwrap();
        // The live database's own files are refused, under any name.
        for live in [
            "live/stackroom.db",
            "live/./stackroom.lookups.db",
            "live/stackroom.db-wal",
        ] {
            let e = take(&store, &dir.path().join(live), true)
                .await
                .unwrap_err();
            assert!(e.to_string().contains("live database"), "{live}: {e}");
        }
        // A directory gets a file named by the time.
        let into = dir.path().join("into");
        std::fs::create_dir(&into).unwrap();
        let named = take(&store, &into, false).await.unwrap();
        assert!(named.file.starts_with(into.canonicalize().unwrap()));

        // One byte changed in the copy: verify says so.
        let mut bytes = std::fs::read(&dest).unwrap();
        let last = bytes.len() - 100;
        bytes[last] ^= 0x55;
        std::fs::write(&dest, bytes).unwrap();
        let e = verify(&dest).unwrap_err();
        assert!(
            e.to_string().contains("has changed since the backup"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn a_restore_refuses_an_open_database_and_keeps_the_old_one_aside() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_rows(dir.path()).await;
        let dest = dir.path().join("b.db");
        take(&store, &dest, false).await.unwrap();
        let live = store.path().to_path_buf();
        let e = restore(&dest, &live).unwrap_err();
        assert!(e.to_string().contains("open in another stackroom"), "{e}");
        store.flush().await.unwrap();
        drop(store);
        // The writer threads let go of the file as their channels close.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let restored = restore(&dest, &live).unwrap();
        assert_eq!(restored.manifest.rows("boxes"), 100);
        let aside = restored.aside.unwrap();
        assert!(aside.join("stackroom.db").exists());
        let reopened = Store::open(&live).unwrap();
        let n: i64 = reopened
            .read(|c| {
                Ok::<_, StoreError>(c.query_row("SELECT count(*) FROM boxes", [], |r| r.get(0))?)
            })
            .await
            .unwrap();
        assert_eq!(n, 100);
    }
}

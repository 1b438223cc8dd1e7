//! SQLite, the room's system of record.
//!
//! - One **writer** thread owns the only write connection. Callers hand it closures; it
//!   runs whatever has queued up in one transaction, each closure inside its own savepoint
//!   (a failing closure rolls back alone), commits once, then answers every caller. Many
//!   small writes thus cost one commit, and a caller hears "done" only once it is durable.
//! - The **lookup register** (`lookups`, `lookup_days`: a row for every box shown) lives in
//!   a file of its own beside the database, attached as `register`, because it is written on
//!   every read: a commit to the main file makes every read connection drop its page cache
//!   (SQLite's WAL mode), and a commit there per locate made every locate read cold. Its
//!   rows are appended by a writer of their own ([`Store::append`]), a thread with its own
//!   connection that commits whatever rows have queued in one plain transaction (no
//!   savepoint per row, no wait behind the main writer's batches), with `synchronous =
//!   FULL` like the rest: a register row is on disk before its box is shown. (Syncing it
//!   later measured slower: commits came more often, each smaller.)
//! - **Readers** never wait for the writer (WAL). [`readers`] threads of their own, each
//!   with its connection, take reads from one queue ([`Store::read`]; more wait their turn
//!   in the queue without holding a thread); the short reads run on the async workers
//!   ([`Store::read_now`]) on connections kept in a small pool. So the threads and
//!   connections are bounded whatever the load: [`readers`] reader threads and connections,
//!   and at most one kept connection per async worker and a few more, each with a small
//!   page cache ([`READER_CACHE_KIB`]). (On tokio's blocking pool, reads under search load
//!   had grown the process to 37 threads, each with its own allocator heap.) Each cache is
//!   the connection's own: SQLite is built without `SQLITE_ENABLE_MEMORY_MANAGEMENT`
//!   (`.cargo/config.toml`), which would put them all in one group behind one mutex.
//! - **Checkpoints** (copying what the WAL files hold into the database files) run on a
//!   thread of their own soon after the writer's batches, not inside its commits. That
//!   thread alone never catches up while writes go on (new frames arrive as it copies), and
//!   a WAL file starts again from its beginning only once all of it is copied; so the
//!   writer also checkpoints when a WAL file passes [`WAL_RESTART_PAGES`]: by then
//!   the thread has copied nearly everything, the writer copies the rest, and its next
//!   commit writes the WAL file from the start again (over pages already on disk).
//! - The schema is versioned by `rusqlite_migration` (SQLite's `user_version`); the
//!   migrations are the SQL files in `src/store/migrations/`, applied in order at open.
//!
//! Settings: `journal_mode = WAL` (readers and the writer do not block each other) and
//! `synchronous = FULL` (a commit is on disk before it is acknowledged, so a power cut loses
//! nothing that was answered "done"), `foreign_keys = ON`.

pub mod text;

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex};

use rusqlite::{Connection, OpenFlags};
use rusqlite_migration::{M, Migrations};
use tokio::sync::{mpsc, oneshot};

/// Errors of the store itself (not of what the caller asked for).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("cannot open the database {path}: {message}")]
    Open { path: PathBuf, message: String },
    #[error("schema migration failed: {0}")]
    Migration(String),
    #[error("the write was not committed: {0}")]
    Commit(String),
    #[error("the database writer has stopped")]
    WriterGone,
    #[error(
        "the write was abandoned by a failure in the writer (see the log); nothing of it was kept"
    )]
    Abandoned,
    #[error("a database task failed: {0}")]
    Task(String),
}

/// The migrations in order, the SQL files in `migrations/`.
const STEPS: &[M<'static>] = &[
    M::up(include_str!("migrations/0001_locations.sql")),
    M::up(include_str!("migrations/0002_sweeps.sql")),
    M::up(include_str!("migrations/0003_access.sql")),
    M::up(include_str!("migrations/0004_environment.sql")),
    M::up(include_str!("migrations/0005_loans.sql")),
    M::up(include_str!("migrations/0006_sweeps_and_loans.sql")),
    M::up(include_str!("migrations/0007_gate.sql")),
    M::up(include_str!("migrations/0008_second_look.sql")),
    M::up(include_str!("migrations/0009_token_expiry.sql")),
    M::up(include_str!("migrations/0010_lookups.sql")),
    M::up(include_str!("migrations/0011_loan_views.sql")),
    M::up(include_str!("migrations/0012_search_prefixes.sql")),
    M::up(include_str!("migrations/0013_register_file.sql")),
    M::up(include_str!("migrations/0014_life_cycle.sql")),
    M::up(include_str!("migrations/0015_intake.sql")),
    M::up(include_str!("migrations/0016_places.sql")),
    M::up(include_str!("migrations/0017_alarm_params.sql")),
    M::up(include_str!("migrations/0018_settled_returns.sql")),
    M::up(include_str!("migrations/0019_box_sightings.sql")),
    M::up(include_str!("migrations/0020_unread_codes.sql")),
    M::up(include_str!("migrations/0021_changes.sql")),
];

static MIGRATIONS: LazyLock<Migrations<'static>> = LazyLock::new(|| Migrations::from_slice(STEPS));

/// Most jobs run in one transaction.
const MAX_BATCH: usize = 256;

/// The bytes of a WAL file kept after a checkpoint has emptied it.
const WAL_KEPT: i64 = 16 << 20;

/// The writer checkpoints (and so lets the WAL file start again) at this many pages in a
/// WAL file; SQLite's own default, about 4 MiB.
const WAL_RESTART_PAGES: i64 = 1000;

/// How long the checkpoint thread lets writes gather before it copies them.
const CHECKPOINT_AFTER: std::time::Duration = std::time::Duration::from_millis(50);

type Reply = Box<dyn FnOnce(Result<(), StoreError>) + Send>;
/// A read for the reader threads: given their connection (or why there is none), it runs
/// and answers its caller itself.
type Read = Box<dyn FnOnce(Result<&Connection, StoreError>) + Send>;
type Job = Box<dyn FnOnce(&Connection) -> (bool, Reply) + Send>;

/// A register row to append (it may run twice: alone, when its batch failed), and who
/// waits for it.
type Append = (
    Box<dyn Fn(&Connection) -> Result<(), rusqlite::Error> + Send>,
    oneshot::Sender<Result<(), StoreError>>,
);

/// The register's tables, made at every open if missing (the file may have been lost).
const REGISTER: &str = include_str!("register.sql");

/// The lookup register's file beside the database `db`: `stackroom.db` → `stackroom.lookups.db`.
pub fn register_path(db: &Path) -> PathBuf {
    db.with_extension("lookups.db")
}

/// The lock file beside the database `db` (`stackroom.lock`): every process with the
/// database open holds it shared, and a restore takes it alone, so a database is never
/// replaced under a running controller.
pub fn lock_path(db: &Path) -> PathBuf {
    db.with_extension("lock")
}

/// The schema version this build migrates databases to (SQLite's `user_version`).
pub fn schema_version() -> usize {
    STEPS.len()
}

/// Migrates the database at `path` to [`schema_version`] and closes it, without starting
/// a store: for a database just restored, under the restore's own lock. Answers the
/// version it was of.
pub fn upgrade(path: &Path) -> Result<usize, StoreError> {
    let (conn, before) = migrated(path)?;
    for schema in ["main", "register"] {
        conn.pragma_update(Some(schema), "wal_checkpoint", "TRUNCATE")?;
    }
    Ok(before)
}

/// Opens the database at `path` as its writer does (WAL, synced, its register attached
/// and made if missing) and migrates it to [`schema_version`]; a database newer than that
/// is refused. The connection, and the version the database was of.
fn migrated(path: &Path) -> Result<(Connection, usize), StoreError> {
    let open_err = |path: &Path, e: &dyn std::fmt::Display| StoreError::Open {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    private_file(path).map_err(|e| open_err(path, &e))?;
    let mut conn = Connection::open(path).map_err(|e| open_err(path, &e))?;
    let register = register_path(path);
    private_file(&register).map_err(|e| open_err(&register, &e))?;
    attach_register(&conn, &register)?;
    for (schema, what) in [("main", ""), ("register", " for the register")] {
        let mode: String =
            conn.pragma_update_and_check(Some(schema), "journal_mode", "WAL", |row| row.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(open_err(
                path,
                &format!("the file system does not support WAL{what} (journal_mode is {mode})"),
            ));
        }
        conn.pragma_update(Some(schema), "synchronous", "FULL")?;
    }
    configure(&conn)?;
    conn.execute_batch(REGISTER)?;
    let before: i64 = conn.pragma_query_value(Some("main"), "user_version", |r| r.get(0))?;
    let before = usize::try_from(before).unwrap_or_default();
    if before > schema_version() {
        return Err(StoreError::Migration(format!(
            "the database is of schema version {before}, newer than this stackroom's {}",
            schema_version()
        )));
    }
    MIGRATIONS
        .to_latest(&mut conn)
        .map_err(|e| StoreError::Migration(e.to_string()))?;
    Ok((conn, before))
}

/// Takes the lock at `path` shared (`exclusive = false`: a process using the database) or
/// alone (a restore); `None` when another process holds it so that this one cannot.
pub fn try_lock(path: &Path, exclusive: bool) -> std::io::Result<Option<std::fs::File>> {
    private_file(path)?;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)?;
    let taken = if exclusive {
        file.try_lock()
    } else {
        file.try_lock_shared()
    };
    match taken {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}

/// A handle on the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    writer: mpsc::Sender<Job>,
    appender: mpsc::Sender<Append>,
    /// The reader threads' queue.
    reads: mpsc::Sender<Read>,
    /// Connections kept for the short reads on the async workers (and other threads).
    readers: Mutex<Vec<Connection>>,
    /// How many of those are kept: one per async worker and a few more.
    idle_readers: usize,
    checkpointer: Arc<Checkpointer>,
    /// Short reads through the reader threads as well (a benchmark's switch).
    hop_short_reads: bool,
    /// Register rows through the main writer, as before it had its own (a benchmark's
    /// switch).
    append_on_writer: bool,
    /// The lock file, held shared while the store is open (see [`lock_path`]).
    _lock: std::fs::File,
}

fn configure(conn: &Connection) -> Result<(), rusqlite::Error> {
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "busy_timeout", 5000)?;
    Ok(())
}

/// Creates `path` readable and writable by its owner only (SQLite gives its WAL and
/// shared-memory files the same mode), or makes an existing file so: the database holds
/// who borrowed which customer's file.
pub fn private_file(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

/// A benchmark's switch: `name=1` in the environment.
fn switched_on(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|v| v == "1")
}

/// Reader threads, each with its connection: reads that scan or rank run there. One more
/// than the cores (at least three, so a few long reads leave room for the rest): more
/// threads on the cores only take turns, and the turns were the tail of search's latency
/// (p99 21–29 ms for four of nine searches with eight readers on two cores, 14–18 ms for
/// all nine with three; BENCHMARKS.md).
pub fn readers() -> usize {
    static READERS: LazyLock<usize> = LazyLock::new(|| {
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        (cores + 1).clamp(3, 16)
    });
    *READERS
}

/// Reads queued for the reader threads before a caller waits to queue its own.
const READ_QUEUE: usize = 256;

impl Store {
    /// Opens (creating if needed) the database at `path`, migrates it to the current schema
    /// and starts the writer thread.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let open_err = |e: &dyn std::fmt::Display| StoreError::Open {
            path: path.to_path_buf(),
            message: e.to_string(),
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| open_err(&e))?;
        }
        let lock = try_lock(&lock_path(path), false)
            .map_err(|e| open_err(&e))?
            .ok_or_else(|| open_err(&"a restore is replacing it (its lock file is taken)"))?;
        let (conn, _) = migrated(path)?;
        let register = register_path(path);

        let (tx, rx) = mpsc::channel::<Job>(1024);
        // Checkpoints run on a thread of their own, and in the writer's commits only past
        // WAL_RESTART_PAGES (see the module's docs); a WAL file grown by a large
        // transaction (an import) is cut back after it.
        conn.pragma_update(None, "wal_autocheckpoint", WAL_RESTART_PAGES)?;
        for schema in ["main", "register"] {
            conn.pragma_update(Some(schema), "journal_size_limit", WAL_KEPT)?;
        }
        let checkpointer = Arc::new(Checkpointer::default());
        let mut checkpoints = Connection::open(path).map_err(|e| open_err(&e))?;
        configure(&checkpoints)?;
        attach_register(&checkpoints, &register)?;
        for schema in ["main", "register"] {
            checkpoints.pragma_update(Some(schema), "journal_size_limit", WAL_KEPT)?;
        }
        let checkpoint_thread = checkpointer.clone();
        std::thread::Builder::new()
            .name("sqlite-checkpoints".into())
            .spawn(move || checkpoint_thread.run(&mut checkpoints))
            .map_err(|e| open_err(&e))?;
        let appends = Connection::open(&register).map_err(|e| open_err(&e))?;
        configure(&appends)?;
        appends.pragma_update(None, "synchronous", "FULL")?;
        appends.pragma_update(None, "wal_autocheckpoint", WAL_RESTART_PAGES)?;
        appends.pragma_update(None, "journal_size_limit", WAL_KEPT)?;
        let (append_tx, append_rx) = mpsc::channel::<Append>(1024);
        let append_checkpointer = checkpointer.clone();
        let writer_checkpointer = checkpointer.clone();
        std::thread::Builder::new()
            .name("sqlite-register".into())
            .spawn(move || append_loop(appends, append_rx, &append_checkpointer))
            .map_err(|e| open_err(&e))?;
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || write_loop(conn, rx, &writer_checkpointer))
            .map_err(|e| open_err(&e))?;
        let (reads, queue) = mpsc::channel::<Read>(READ_QUEUE);
        let queue = Arc::new(Mutex::new(queue));
        for n in 1..=readers() {
            let (queue, path) = (queue.clone(), path.to_path_buf());
            std::thread::Builder::new()
                .name(format!("sqlite-reader-{n}"))
                .spawn(move || read_loop(&path, &queue))
                .map_err(|e| open_err(&e))?;
        }
        let workers = std::thread::available_parallelism().map_or(4, usize::from);
        Ok(Store {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                writer: tx,
                appender: append_tx,
                reads,
                readers: Mutex::new(Vec::new()),
                idle_readers: workers + 4,
                checkpointer,
                hop_short_reads: switched_on("STACKROOM_HOP_SHORT_READS"),
                append_on_writer: switched_on("STACKROOM_REGISTER_ON_WRITER"),
                _lock: lock,
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs `f` on the writer inside a savepoint of the current batch. `Ok` is answered
    /// after the batch has committed (on disk); `Err` rolls back what `f` did, and only
    /// that.
    pub async fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel::<Result<T, E>>();
        let job: Job = Box::new(move |conn| {
            let result = f(conn);
            let ok = result.is_ok();
            let reply: Reply = Box::new(move |committed| {
                let answer = match (result, committed) {
                    (Ok(value), Ok(())) => Ok(value),
                    (Ok(_), Err(e)) => Err(E::from(e)),
                    (Err(e), _) => Err(e),
                };
                let _ = tx.send(answer);
            });
            (ok, reply)
        });
        self.inner
            .writer
            .send(job)
            .await
            .map_err(|_| E::from(StoreError::WriterGone))?;
        rx.await
            .unwrap_or_else(|_| Err(E::from(StoreError::Abandoned)))
    }

    /// Appends to the lookup register: runs `f` on the register's own writer, in one
    /// transaction with the other rows queued there. `Ok` once committed (on disk). For
    /// inserts that fail only when the disk does: should `f` fail, the batch is rolled back
    /// and each of its rows tried alone, so only the failing one is refused.
    /// `STACKROOM_REGISTER_ON_WRITER=1` sends them through the main writer instead, for the
    /// benchmark that measures what the register's own writer buys.
    pub async fn append<F>(&self, f: F) -> Result<(), StoreError>
    where
        F: Fn(&Connection) -> Result<(), rusqlite::Error> + Send + 'static,
    {
        if self.inner.append_on_writer {
            return self.write(move |c| Ok::<_, StoreError>(f(c)?)).await;
        }
        let (tx, rx) = oneshot::channel();
        self.inner
            .appender
            .send((Box::new(f), tx))
            .await
            .map_err(|_| StoreError::WriterGone)?;
        rx.await.unwrap_or(Err(StoreError::Abandoned))
    }

    /// Copies the database to `dest` and its lookup register to `register_dest`, both
    /// from one read snapshot, each in one step of SQLite's backup (every page under the
    /// snapshot's read lock, so writes going on meanwhile neither block it nor make it
    /// start again), then runs `within` on the same snapshot: what the copy must equal.
    /// The files are created readable by their owner only and synced; the number of
    /// pages copied comes back beside what `within` answered.
    pub async fn snapshot_to<T, F>(
        &self,
        dest: &Path,
        register_dest: &Path,
        within: F,
    ) -> Result<(usize, T), StoreError>
    where
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        let targets = [
            ("main", dest.to_path_buf()),
            ("register", register_dest.to_path_buf()),
        ];
        self.read(move |conn| {
            // Rolled back (it wrote nothing) however this ends.
            let snapshot = conn.unchecked_transaction()?;
            // The read transaction starts at its first read, of both files.
            snapshot.query_row(
                "SELECT (SELECT count(*) FROM main.sqlite_schema) + (SELECT count(*) FROM register.sqlite_schema)",
                [],
                |r| r.get::<_, i64>(0),
            )?;
            let mut pages = 0;
            for (schema, dest) in &targets {
                let failed = |e: &dyn std::fmt::Display| StoreError::Open {
                    path: dest.clone(),
                    message: e.to_string(),
                };
                private_file(dest).map_err(|e| failed(&e))?;
                let mut out = Connection::open(dest).map_err(|e| failed(&e))?;
                let backup = rusqlite::backup::Backup::new_with_names(conn, *schema, &mut out, "main")?;
                if backup.step(-1)? != rusqlite::backup::StepResult::Done {
                    return Err(failed(&"the copy did not finish in one step"));
                }
                pages += backup.progress().pagecount as usize;
                drop(backup);
                out.close().map_err(|(_, e)| failed(&e))?;
                std::fs::File::open(dest)
                    .and_then(|f| f.sync_all())
                    .map_err(|e| failed(&e))?;
            }
            let answer = within(conn)?;
            drop(snapshot);
            Ok((pages, answer))
        })
        .await
    }

    /// Waits until every write and append queued before this call is committed (at
    /// shutdown).
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.write(|_| Ok::<_, StoreError>(())).await?;
        self.append(|_| Ok(())).await
    }

    /// Runs `f` on a read connection on this thread, though it is an async worker: only
    /// for reads that take microseconds (one or two indexed lookups: locate, the token
    /// check). It saves the hop to a blocking thread and back, which costs more than such a
    /// read; anything that scans, ranks or may wait goes through [`Store::read`].
    /// `STACKROOM_HOP_SHORT_READS=1` sends these reads through the blocking pool too, for
    /// the benchmark that measures what this buys.
    pub async fn read_now<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        if self.inner.hop_short_reads {
            return self.read(f).await;
        }
        self.read_blocking(f)
    }

    /// Runs `f` on a reader thread's connection, in its turn.
    pub async fn read<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel::<Result<T, E>>();
        let read: Read = Box::new(move |conn| {
            let _ = tx.send(conn.map_err(E::from).and_then(f));
        });
        self.inner
            .reads
            .send(read)
            .await
            .map_err(|_| E::from(StoreError::Task("the reader threads are gone".into())))?;
        rx.await
            .unwrap_or_else(|_| Err(E::from(StoreError::Task("a read panicked".into()))))
    }

    /// Copies both WAL files into their databases and empties them, waiting for readers
    /// to move on: after a large write (an import), so that a program about to end leaves
    /// no WAL file the size of the import behind.
    pub async fn truncate_wal(&self) -> Result<(), StoreError> {
        let checkpointer = self.inner.checkpointer.clone();
        tokio::task::spawn_blocking(move || checkpointer.truncate())
            .await
            .map_err(|e| StoreError::Task(e.to_string()))
    }

    /// Runs `f` on a read connection on this thread.
    pub fn read_blocking<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&Connection) -> Result<T, E>,
        E: From<StoreError>,
    {
        let pooled = self
            .inner
            .readers
            .lock()
            .map(|mut p| p.pop())
            .ok()
            .flatten();
        let conn = match pooled {
            Some(conn) => conn,
            None => open_reader(&self.inner.path).map_err(E::from)?,
        };
        let result = f(&conn);
        if let Ok(mut pool) = self.inner.readers.lock()
            && pool.len() < self.inner.idle_readers
        {
            pool.push(conn);
        }
        result
    }
}

/// The page cache of a read connection, in KiB, for the database and for the register.
/// SQLite's default is 2 MiB for each of the two: up to 48 MiB over the twelve connections
/// a server had with eight readers, which held the same hot pages twelve times over (the
/// kernel's page cache holds them once more). At 1,000,000 boxes, after the HTTP
/// benchmark's loads, a server with 1 MiB caches used 90 MiB against 114 MiB with SQLite's
/// default, and searched as fast; the register is read only by an admin's questions, newest
/// rows first.
const READER_CACHE_KIB: [(&str, i64); 2] = [("main", 1024), ("register", 64)];

fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    configure(&conn)?;
    attach_register(&conn, &register_path(path))?;
    for (schema, kib) in READER_CACHE_KIB {
        // A negative size is in KiB, a positive one in pages.
        conn.pragma_update(Some(schema), "cache_size", -kib)?;
    }
    Ok(conn)
}

/// A reader thread: takes reads from the queue, in turn with the others, until the store
/// is dropped. Its connection is opened at its first read and kept, except after a read
/// that panicked (it may have left a statement mid-way).
fn read_loop(path: &Path, queue: &Mutex<mpsc::Receiver<Read>>) {
    let mut conn: Option<Connection> = None;
    loop {
        let Some(read) = queue.lock().ok().and_then(|mut q| q.blocking_recv()) else {
            return;
        };
        match conn.take().map_or_else(|| open_reader(path), Ok) {
            Ok(c) => {
                if std::panic::catch_unwind(AssertUnwindSafe(|| read(Ok(&c)))).is_ok() {
                    conn = Some(c);
                }
            }
            Err(e) => read(Err(e)),
        }
    }
}

fn attach_register(conn: &Connection, register: &Path) -> Result<(), rusqlite::Error> {
    conn.execute(
        "ATTACH DATABASE ?1 AS register",
        [register.to_string_lossy()],
    )?;
    Ok(())
}

/// The writer; `checkpointer` checkpoints after it.
fn write_loop(mut conn: Connection, mut rx: mpsc::Receiver<Job>, checkpointer: &Checkpointer) {
    while let Some(first) = rx.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        run_batch(&mut conn, batch);
        checkpointer.wanted();
    }
    checkpointer.stop();
}

/// The register's writer: each batch of appends in one transaction; a batch that fails is
/// rolled back and its rows tried one by one, so a row is refused only for itself.
fn append_loop(mut conn: Connection, mut rx: mpsc::Receiver<Append>, checkpointer: &Checkpointer) {
    let commit = |conn: &mut Connection, rows: &mut dyn Iterator<Item = &Append>| {
        let tx = conn.transaction()?;
        for (row, _) in rows {
            std::panic::catch_unwind(AssertUnwindSafe(|| row(&tx)))
                .map_err(|_| StoreError::Task("a register append panicked".into()))??;
        }
        tx.commit()?;
        Ok::<(), StoreError>(())
    };
    while let Some(first) = rx.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(append) => batch.push(append),
                Err(_) => break,
            }
        }
        match commit(&mut conn, &mut batch.iter()) {
            Ok(()) => {
                for (_, reply) in batch {
                    let _ = reply.send(Ok(()));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, rows = batch.len(), "a register batch failed; each row is tried alone");
                for append in batch {
                    let alone = commit(&mut conn, &mut std::iter::once(&append));
                    let _ = append.1.send(alone);
                }
            }
        }
        checkpointer.wanted();
    }
    checkpointer.stop();
}

/// Soon after the writers' batches, off their path: checkpoints both files (copies what
/// their WAL files hold into them, so the WAL files stay small); and, when asked
/// ([`Store::truncate_wal`]), copies everything and cuts the WAL files to nothing.
#[derive(Default)]
struct Checkpointer {
    state: Mutex<CheckpointState>,
    wake: std::sync::Condvar,
    /// Signalled when a truncating checkpoint has run.
    truncated: std::sync::Condvar,
}

#[derive(Default)]
struct CheckpointState {
    /// A checkpoint is wanted.
    wanted: bool,
    /// How many of the two writers have stopped.
    stopped: u8,
    /// Truncating checkpoints asked for, and run.
    truncate_asked: u64,
    truncate_done: u64,
}

impl Checkpointer {
    fn wanted(&self) {
        if let Ok(mut state) = self.state.lock() {
            state.wanted = true;
            self.wake.notify_one();
        }
    }

    fn stop(&self) {
        if let Ok(mut state) = self.state.lock() {
            state.stopped += 1;
            self.wake.notify_one();
        }
    }

    /// Asks for a truncating checkpoint and waits until it has run (or the writers are
    /// gone).
    fn truncate(&self) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        state.truncate_asked += 1;
        let ticket = state.truncate_asked;
        self.wake.notify_one();
        let waited = self
            .truncated
            .wait_while(state, |s| s.truncate_done < ticket && s.stopped < 2);
        drop(waited);
    }

    fn run(&self, conn: &mut Connection) {
        loop {
            let Ok(state) = self.state.lock() else { return };
            let Ok(mut state) = self.wake.wait_while(state, |s| {
                !s.wanted && s.stopped < 2 && s.truncate_done == s.truncate_asked
            }) else {
                return;
            };
            let (wanted, stopped) = (state.wanted, state.stopped >= 2);
            let truncate =
                (state.truncate_done < state.truncate_asked).then_some(state.truncate_asked);
            state.wanted = false;
            drop(state);
            if let Some(ticket) = truncate {
                // TRUNCATE: waits (busy_timeout) for readers to move past the end of the
                // WAL, copies all of it, and leaves the file empty.
                checkpoint(conn, "TRUNCATE");
                if let Ok(mut state) = self.state.lock() {
                    state.truncate_done = ticket;
                }
                self.truncated.notify_all();
            } else if wanted {
                if !stopped {
                    std::thread::sleep(CHECKPOINT_AFTER);
                }
                // PASSIVE: copies what no reader still needs, waits for nobody.
                checkpoint(conn, "PASSIVE");
            }
            if stopped {
                self.truncated.notify_all();
                return;
            }
        }
    }
}

/// A checkpoint of both files in `mode`; a failure is logged and the next one retries.
fn checkpoint(conn: &Connection, mode: &str) {
    for schema in ["main", "register"] {
        let done = conn.query_row(
            &format!("PRAGMA {schema}.wal_checkpoint({mode})"),
            [],
            |_| Ok(()),
        );
        if let Err(e) = done {
            tracing::warn!(error = %e, schema, mode, "a checkpoint failed; the next one retries");
        }
    }
}

fn run_batch(conn: &mut Connection, batch: Vec<Job>) {
    let tx = match conn.transaction() {
        Ok(tx) => tx,
        Err(e) => {
            tracing::error!(error = %e, "cannot begin a write transaction");
            return; // dropping the jobs answers their callers with WriterGone
        }
    };
    let mut replies = Vec::with_capacity(batch.len());
    for job in batch {
        if let Err(e) = tx
            .prepare_cached("SAVEPOINT job")
            .and_then(|mut s| s.execute([]))
        {
            tracing::error!(error = %e, "cannot open a savepoint");
            continue;
        }
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| job(&tx)));
        let keep = matches!(outcome, Ok((true, _)));
        let end = if keep {
            tx.prepare_cached("RELEASE job")
                .and_then(|mut s| s.execute([]))
        } else {
            tx.execute_batch("ROLLBACK TO job; RELEASE job").map(|()| 0)
        };
        if let Err(e) = end {
            tracing::error!(error = %e, "cannot close a savepoint");
        }
        match outcome {
            Ok((_, reply)) => replies.push(reply),
            Err(_) => tracing::error!("a write job panicked; its changes were rolled back"),
        }
    }
    let committed = tx.commit().map_err(|e| e.to_string());
    if let Err(e) = &committed {
        tracing::error!(error = %e, "write transaction failed to commit");
    }
    for reply in replies {
        reply(committed.clone().map_err(StoreError::Commit));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// The migrations before the one that moved the register out of the main file.
    const BEFORE_THE_REGISTER_FILE: usize = 12;

    /// Rows as each schema version's code wrote them, added right after that version's
    /// migration: a database left by version N holds the rows of versions 1 to N.
    const ROWS: &[(usize, &str)] = &[
        (1, include_str!("upgrade_rows/0001.sql")),
        (2, include_str!("upgrade_rows/0002.sql")),
        (3, include_str!("upgrade_rows/0003.sql")),
        (4, include_str!("upgrade_rows/0004.sql")),
        (5, include_str!("upgrade_rows/0005.sql")),
        (6, include_str!("upgrade_rows/0006.sql")),
        (7, include_str!("upgrade_rows/0007.sql")),
        (8, include_str!("upgrade_rows/0008.sql")),
        (9, include_str!("upgrade_rows/0009.sql")),
        (10, include_str!("upgrade_rows/0010.sql")),
        (14, include_str!("upgrade_rows/0014.sql")),
        (15, include_str!("upgrade_rows/0015.sql")),
        (16, include_str!("upgrade_rows/0016.sql")),
        (17, include_str!("upgrade_rows/0017.sql")),
        (18, include_str!("upgrade_rows/0018.sql")),
        (20, include_str!("upgrade_rows/0020.sql")),
    ];

    /// A database as schema version `version` left it, made by that version's migrations
    /// with its rows; the register file attached from version 13 on, as it came then.
    fn fixture(path: &Path, version: usize) {
        let mut conn = Connection::open(path).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        configure(&conn).unwrap();
        for v in 1..=version {
            if v == BEFORE_THE_REGISTER_FILE + 1 {
                attach_register(&conn, &register_path(path)).unwrap();
                conn.execute_batch(REGISTER).unwrap();
            }
            Migrations::from_slice(&STEPS[..v])
                .to_latest(&mut conn)
                .unwrap();
            for (_, rows) in ROWS.iter().filter(|(at, _)| *at == v) {
                conn.execute_batch(rows)
                    .unwrap_or_else(|e| panic!("the rows of version {v}: {e}"));
            }
        }
    }

    /// Every table's rows (a rowid table's with it), by table name whichever file holds
    /// it: its columns and its rows as text, counted.
    type Rows = BTreeMap<String, (Vec<String>, Vec<Vec<rusqlite::types::Value>>)>;

    fn rows_of(conn: &Connection) -> Rows {
        let tables: Vec<(String, String, bool)> = conn
            .prepare(
                "SELECT schema, name, wr FROM pragma_table_list
                 WHERE schema IN ('main', 'register') AND type IN ('table', 'virtual')
                   AND name NOT LIKE 'sqlite_%'",
            )
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let mut out = Rows::new();
        for (schema, name, without_rowid) in tables {
            let select = if without_rowid {
                format!("SELECT * FROM {schema}.{name}")
            } else {
                format!("SELECT rowid AS rowid_, * FROM {schema}.{name}")
            };
            let mut statement = conn.prepare(&select).unwrap();
            let columns: Vec<String> = statement
                .column_names()
                .into_iter()
                .map(String::from)
                .collect();
            let n = columns.len();
            let rows: Vec<Vec<rusqlite::types::Value>> = statement
                .query_map([], |r| (0..n).map(|i| r.get(i)).collect())
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            let entry = out.entry(name).or_insert_with(|| (columns, Vec::new()));
            entry.1.extend(rows);
        }
        out
    }

    #[tokio::test]
    async fn a_database_of_every_earlier_schema_version_migrates_with_nothing_lost() {
        for version in 1..=STEPS.len() {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("stackroom.db");
            fixture(&path, version);
            let before = {
                let conn = Connection::open(&path).unwrap();
                if version > BEFORE_THE_REGISTER_FILE {
                    attach_register(&conn, &register_path(&path)).unwrap();
                }
                rows_of(&conn)
            };
            let store = Store::open(&path)
                .unwrap_or_else(|e| panic!("version {version} does not open: {e}"));
            let after = store
                .read(|c| Ok::<_, StoreError>(rows_of(c)))
                .await
                .unwrap();
            let mut checked = 0;
            for (table, (columns, rows)) in &before {
                let Some((now_columns, now_rows)) = after.get(table) else {
                    panic!("version {version}: the table {table} is gone");
                };
                // Each row of before, in the columns both have, is there after.
                let common: Vec<(usize, usize)> = columns
                    .iter()
                    .enumerate()
                    .filter_map(|(i, c)| now_columns.iter().position(|n| n == c).map(|j| (i, j)))
                    .collect();
                assert_eq!(
                    common.len(),
                    columns.len(),
                    "version {version}: {table} lost a column ({columns:?} -> {now_columns:?})"
                );
                let mut left: BTreeMap<String, usize> = BTreeMap::new();
                for row in now_rows {
                    let key = format!(
                        "{:?}",
                        common.iter().map(|(_, j)| &row[*j]).collect::<Vec<_>>()
                    );
                    *left.entry(key).or_default() += 1;
                }
                for row in rows {
                    let key = format!(
                        "{:?}",
                        common.iter().map(|(i, _)| &row[*i]).collect::<Vec<_>>()
                    );
                    match left.get_mut(&key) {
                        Some(n) if *n > 0 => *n -= 1,
                        _ => {
                            panic!("version {version}: a row of {table} is lost or changed: {key}")
                        }
                    }
                    checked += 1;
                }
            }
            assert!(
                checked >= 3 * version.min(4),
                "version {version}: only {checked} rows checked"
            );
            let now: i64 = store
                .read(|c| {
                    Ok::<_, StoreError>(c.pragma_query_value(None, "user_version", |r| r.get(0))?)
                })
                .await
                .unwrap();
            assert_eq!(now as usize, schema_version());
        }
    }

    #[tokio::test]
    async fn every_change_to_a_box_gives_it_the_next_number_in_the_same_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db")).unwrap();
        let numbers = |store: &Store| {
            store.read_blocking(|c| -> Result<Vec<(i64, i64)>, StoreError> {
                Ok(c.prepare("SELECT box_id, seq FROM changes ORDER BY seq")?
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<Result<_, _>>()?)
            })
        };
        let sql = |text: &'static str| {
            store.write(move |c: &Connection| -> Result<(), StoreError> {
                Ok(c.execute_batch(text)?)
            })
        };
        sql("INSERT INTO boxes (id, archive_no, series, created_at) VALUES (1, 'A', 's', 0), (2, 'B', 's', 0), (3, 'C', 's', 0);
             INSERT INTO shelves (id, address, range_id, carriage, face, section, level, ordinal, capacity_kind, capacity)
                 VALUES (1, 'R1-C1-L-S1-L1', 1, 1, 'left', 1, 1, 1, 'boxes', 10);
             INSERT INTO bindings (box_id, shelf_id, source, confidence, since) VALUES (1, 1, 'manual', 1.0, 0);")
            .await
            .unwrap();
        assert_eq!(numbers(&store).unwrap(), [(2, 2), (3, 3), (1, 4)]);
        // A sweep seeing a box on its shelf is no change of where it is.
        sql("UPDATE bindings SET last_seen = 5 WHERE box_id = 1")
            .await
            .unwrap();
        assert_eq!(numbers(&store).unwrap(), [(2, 2), (3, 3), (1, 4)]);
        // A loan of three boxes checked out: each box numbered anew, one after another.
        sql(
            "INSERT INTO loans (id, borrower, purpose, kind, due, state, requested_by, created_at)
                 VALUES (1, 'L', 'p', 'external', '2030-01-01', 'approved', 't', 0);
             INSERT INTO loan_boxes (loan_id, box_id) VALUES (1, 3), (1, 1), (1, 2);
             UPDATE loans SET state = 'checked_out' WHERE id = 1;",
        )
        .await
        .unwrap();
        assert_eq!(numbers(&store).unwrap(), [(1, 8), (2, 9), (3, 10)]);
        // A change rolled back leaves no number behind.
        let failed = store
            .write(|c: &Connection| -> Result<(), StoreError> {
                c.execute("UPDATE boxes SET title = 'x' WHERE id = 2", [])?;
                Err(StoreError::Commit("no".into()))
            })
            .await;
        assert!(failed.is_err());
        assert_eq!(numbers(&store).unwrap(), [(1, 8), (2, 9), (3, 10)]);
    }

    #[test]
    fn migrations_are_valid() {
        // As `Store::open` runs them: with the register attached.
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("ATTACH DATABASE ':memory:' AS register")
            .unwrap();
        conn.execute_batch(REGISTER).unwrap();
        MIGRATIONS.to_latest(&mut conn).unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reads_run_on_a_bounded_set_of_threads_and_survive_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db")).unwrap();
        // Many reads at once, each holding its thread a moment: they queue for the
        // reader threads instead of growing a pool.
        let reads = (0..64).map(|_| {
            store.read(|c| {
                std::thread::sleep(std::time::Duration::from_millis(2));
                let one: i64 = c.query_row("SELECT 1", [], |r| r.get(0))?;
                Ok::<_, StoreError>((std::thread::current().name().map(String::from), one))
            })
        });
        let ran = futures_util::future::try_join_all(reads).await.unwrap();
        let threads: std::collections::BTreeSet<_> =
            ran.iter().map(|(name, _)| name.clone().unwrap()).collect();
        assert!(ran.iter().all(|(_, one)| *one == 1));
        assert!(threads.len() <= readers(), "{threads:?}");
        assert!(threads.iter().all(|t| t.starts_with("sqlite-reader-")));
        // A read that panics is an error for its caller, and the readers go on.
        let panicked = store
            .read(|_| -> Result<(), StoreError> { panic!("a bug in a read") })
            .await;
        assert!(matches!(panicked, Err(StoreError::Task(_))), "{panicked:?}");
        for _ in 0..2 * readers() {
            let one: i64 = store
                .read(|c| Ok::<_, StoreError>(c.query_row("SELECT 1", [], |r| r.get(0))?))
                .await
                .unwrap();
            assert_eq!(one, 1);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn read_connections_keep_a_small_page_cache() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db")).unwrap();
        let caches = |c: &Connection| -> Result<Vec<i64>, StoreError> {
            Ok(["main", "register"]
                .iter()
                .map(|schema| c.pragma_query_value(Some(*schema), "cache_size", |r| r.get(0)))
                .collect::<Result<_, _>>()?)
        };
        let wanted: Vec<i64> = READER_CACHE_KIB.iter().map(|(_, kib)| -kib).collect();
        // On a reader thread, and on a kept connection of the short reads.
        assert_eq!(store.read(caches).await.unwrap(), wanted);
        assert_eq!(store.read_now(caches).await.unwrap(), wanted);
    }

    #[test]
    fn each_connection_has_a_page_cache_of_its_own() {
        // Built with SQLITE_ENABLE_MEMORY_MANAGEMENT (rusqlite's default), SQLite keeps the
        // pages of every connection in one group behind one mutex, and readers queue for
        // it on every page; `.cargo/config.toml` builds it without.
        let conn = Connection::open_in_memory().unwrap();
        let used: bool = conn
            .query_row(
                "SELECT sqlite_compileoption_used('ENABLE_MEMORY_MANAGEMENT')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(!used, "SQLite was built with ENABLE_MEMORY_MANAGEMENT");
    }

    #[tokio::test]
    async fn the_register_is_a_file_of_its_own_synced_like_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let store = Store::open(&path).unwrap();
        let insert = |no: &'static str| {
            move |c: &Connection| -> Result<(), StoreError> {
                c.execute(
                    "INSERT INTO lookups (at, actor, archive_no, what) VALUES (0, 'a', ?1, 'locate')",
                    [no],
                )?;
                Ok(())
            }
        };
        store.write(insert("A")).await.unwrap();
        let (b, c) = tokio::join!(store.write(insert("B")), store.write(insert("C")));
        b.unwrap();
        c.unwrap();
        // In the register's own file, which another connection (as after a restart) reads.
        let other = Connection::open(register_path(&path)).unwrap();
        let n: i64 = other
            .query_row("SELECT count(*) FROM lookups", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 3);
        let main = Connection::open(&path).unwrap();
        assert!(
            main.query_row("SELECT count(*) FROM lookups", [], |r| r.get::<_, i64>(0))
                .is_err(),
            "no register in the main file"
        );
        // Synchronous FULL (2) everywhere: a register row too is on disk before it is answered.
        let mode = |schema: &'static str| {
            move |c: &Connection| -> Result<i64, StoreError> {
                Ok(c.pragma_query_value(Some(schema), "synchronous", |r| r.get(0))?)
            }
        };
        assert_eq!(store.write(mode("register")).await.unwrap(), 2);
        assert_eq!(store.write(mode("main")).await.unwrap(), 2);
        store
            .append(|c| {
                let full = c.pragma_query_value(None, "synchronous", |r| r.get::<_, i64>(0))? == 2;
                full.then_some(()).ok_or(rusqlite::Error::InvalidQuery)
            })
            .await
            .expect("the register's own writer syncs each commit");
        // A backup takes the register along.
        let copy = dir.path().join("copy.db");
        store
            .snapshot_to(&copy, &register_path(&copy), |_| Ok(()))
            .await
            .unwrap();
        let copy = Connection::open(dir.path().join("copy.lookups.db")).unwrap();
        let n: i64 = copy
            .query_row("SELECT count(*) FROM lookups", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 3);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_registers_wal_file_starts_again_while_writes_never_pause() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let store = Store::open(&path).unwrap();
        // 16 writers without a pause, about 40 MB of register rows in all, half through
        // the register's writer, half through the main one (as the roll-up writes): the
        // checkpoint thread alone never finds the WAL file fully copied.
        let purpose = "p".repeat(2_000);
        let writers = (0..16).map(|w| {
            let (store, purpose) = (store.clone(), purpose.clone());
            tokio::spawn(async move {
                for i in 0..1_250 {
                    let (no, purpose) = (format!("{w}-{i}"), purpose.clone());
                    let insert = move |c: &Connection| {
                        c.execute(
                            "INSERT INTO lookups (at, actor, archive_no, what, purpose) \
                             VALUES (0, 'a', ?1, 'locate', ?2)",
                            [&no, &purpose],
                        )
                        .map(drop)
                    };
                    if w % 2 == 0 {
                        store.append(insert).await.unwrap();
                    } else {
                        store
                            .write(move |c| Ok::<_, StoreError>(insert(c)?))
                            .await
                            .unwrap();
                    }
                }
            })
        });
        for writer in writers.collect::<Vec<_>>() {
            writer.await.unwrap();
        }
        let wal = std::fs::metadata(format!("{}-wal", register_path(&path).display()))
            .unwrap()
            .len();
        // A file once grown past WAL_KEPT is cut back to it when it starts again.
        let bound = WAL_KEPT as u64 + 3 * WAL_RESTART_PAGES as u64 * 4_200;
        assert!(
            wal < bound,
            "the register's WAL file grew to {wal} bytes (bound {bound})"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_large_write_leaves_no_wal_file_behind_once_truncated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let store = Store::open(&path).unwrap();
        // One transaction of ~30 MB, as an import writes: its pages are all in the WAL
        // file until a checkpoint copies them, and the file keeps its size after that.
        store
            .write(|c| {
                c.execute_batch("CREATE TABLE main.big (x TEXT NOT NULL)")?;
                let mut insert = c.prepare("INSERT INTO main.big (x) VALUES (?1)")?;
                for i in 0..15_000 {
                    insert.execute([format!("{i:02000}")])?;
                }
                Ok::<_, StoreError>(())
            })
            .await
            .unwrap();
        let wal = || {
            std::fs::metadata(format!("{}-wal", path.display()))
                .map(|m| m.len())
                .unwrap_or(0)
        };
        assert!(wal() > 20 << 20, "{}", wal());
        store.truncate_wal().await.unwrap();
        assert_eq!(wal(), 0);
        // Still a working database.
        let rows: i64 = store
            .read(|c| {
                Ok::<_, StoreError>(c.query_row("SELECT count(*) FROM big", [], |r| r.get(0))?)
            })
            .await
            .unwrap();
        assert_eq!(rows, 15_000);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn register_rows_do_not_wait_behind_a_long_write() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db")).unwrap();
        // A long job holds the main writer (as an import does) until told to finish.
        let (release, held) = std::sync::mpsc::channel::<()>();
        let long = tokio::spawn({
            let store = store.clone();
            async move {
                store
                    .write(move |_| {
                        held.recv().unwrap();
                        Ok::<_, StoreError>(())
                    })
                    .await
            }
        });
        store
            .append(|c| {
                c.execute(
                    "INSERT INTO lookups (at, actor, archive_no, what) VALUES (0, 'a', 'X', 'locate')",
                    [],
                )
                .map(drop)
            })
            .await
            .unwrap();
        assert!(
            !long.is_finished(),
            "the row was kept while the long write went on"
        );
        release.send(()).unwrap();
        long.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn a_register_row_that_fails_is_refused_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let store = Store::open(&path).unwrap();
        let insert = |what: &'static str| {
            move |c: &Connection| {
                c.execute(
                    "INSERT INTO lookups (at, actor, archive_no, what) VALUES (0, 'a', 'X', ?1)",
                    [what],
                )
                .map(drop)
            }
        };
        // Queued together, so (most likely) one batch: the CHECK on `what` fails one row.
        let (a, bad, b) = tokio::join!(
            store.append(insert("locate")),
            store.append(insert("peeked")),
            store.append(insert("label")),
        );
        a.unwrap();
        b.unwrap();
        assert!(matches!(bad, Err(StoreError::Sqlite(_))), "{bad:?}");
        store.flush().await.unwrap();
        let whats: Vec<String> = store
            .read(|c| {
                let mut q = c.prepare("SELECT what FROM lookups ORDER BY id")?;
                let rows = q.query_map([], |r| r.get(0))?;
                Ok::<_, StoreError>(rows.collect::<Result<_, _>>()?)
            })
            .await
            .unwrap();
        assert_eq!(whats, ["locate", "label"]);
    }

    #[tokio::test]
    async fn lookups_kept_in_the_main_file_move_to_the_register() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        {
            // A database as the release before made it: migrated up to 0012.
            let mut conn = Connection::open(&path).unwrap();
            let before = Migrations::from_slice(&STEPS[..BEFORE_THE_REGISTER_FILE]);
            before.to_latest(&mut conn).unwrap();
            conn.execute(
                "INSERT INTO lookups (at, actor, archive_no, what) VALUES (1, 'a', 'X', 'box')",
                [],
            )
            .unwrap();
        }
        let store = Store::open(&path).unwrap();
        let rows: Vec<String> = store
            .read(|c| -> Result<Vec<String>, StoreError> {
                Ok(c.prepare("SELECT archive_no FROM lookups")?
                    .query_map([], |r| r.get(0))?
                    .collect::<Result<_, _>>()?)
            })
            .await
            .unwrap();
        assert_eq!(rows, ["X"]);
    }

    #[tokio::test]
    async fn the_database_and_its_backups_are_readable_by_their_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let mode = |name: &str| {
            std::fs::metadata(dir.path().join(name))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        let store = Store::open(&dir.path().join("t.db")).unwrap();
        store
            .write(|c: &Connection| -> Result<(), StoreError> {
                c.execute(
                    "INSERT INTO boxes (archive_no, series, created_at) VALUES ('A', 's', 0)",
                    [],
                )?;
                Ok(())
            })
            .await
            .unwrap();
        let copy = dir.path().join("copy.db");
        store
            .snapshot_to(&copy, &register_path(&copy), |_| Ok(()))
            .await
            .unwrap();
        for f in ["t.db", "t.db-wal", "copy.db"] {
            assert_eq!(mode(f), 0o600, "{f}");
        }
    }

    #[tokio::test]
    async fn failed_job_rolls_back_alone_and_history_is_append_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db")).unwrap();
        let insert = |no: &'static str| {
            move |c: &Connection| -> Result<(), StoreError> {
                c.execute(
                    "INSERT INTO boxes (archive_no, series, created_at) VALUES (?1, 's', 0)",
                    [no],
                )?;
                Ok(())
            }
        };
        let (a, b, c) = tokio::join!(
            store.write(insert("A")),
            store.write(insert("A")),
            store.write(insert("B"))
        );
        assert!(a.is_ok() && c.is_ok());
        assert!(b.is_err(), "duplicate must fail");
        let n: i64 = store
            .read(|c| {
                c.query_row("SELECT COUNT(*) FROM boxes", [], |r| r.get(0))
                    .map_err(StoreError::from)
            })
            .await
            .unwrap();
        assert_eq!(n, 2);

        let tamper = store
            .write(|c| -> Result<(), StoreError> {
                c.execute(
                    "INSERT INTO binding_events (box_id, kind, to_shelf, source, confidence, actor, reason, at)
                     VALUES (1, 'bind', 'R1-C1-R-S1-L1', 'manual', 1.0, 't', 'r', 0)",
                    [],
                )?;
                c.execute("UPDATE binding_events SET to_shelf = 'x'", [])?;
                Ok(())
            })
            .await
            .unwrap_err();
        assert!(tamper.to_string().contains("append-only"), "{tamper}");
        let tamper = store
            .write(|c| -> Result<(), StoreError> {
                c.execute(
                    "INSERT INTO binding_events (box_id, kind, to_shelf, source, confidence, actor, reason, at)
                     VALUES (1, 'bind', 'R1-C1-R-S1-L1', 'manual', 1.0, 't', 'r', 0)",
                    [],
                )?;
                c.execute("DELETE FROM binding_events", [])?;
                Ok(())
            })
            .await
            .unwrap_err();
        assert!(tamper.to_string().contains("append-only"), "{tamper}");
    }

    #[tokio::test]
    async fn a_panicking_job_does_not_stop_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db")).unwrap();
        let r: Result<(), StoreError> = store.write(|_| panic!("bug")).await;
        assert!(matches!(r, Err(StoreError::Abandoned)));
        let r: Result<(), StoreError> = store.write(|_| Ok(())).await;
        assert!(r.is_ok());
    }

    #[test]
    fn fts5_is_compiled_in() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE VIRTUAL TABLE t USING fts5 (x)")
            .unwrap();
    }
}

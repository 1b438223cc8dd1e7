//! HTTP benchmark: `stackroom serve` beside peers that do less, in one run.
//!
//! `cargo bench --bench http` (`BOXES=N`, default 1,000,000; `SECONDS=S` per phase, default
//! 5; `CLIENTS=C`, default 32; `RATES=R,R` for the fixed-rate loads, default 20,000 and
//! 10,000 requests a second; `SERVERS=kind,kind` for some of the servers below only;
//! `ROUNDS=N` of the locate loads, default 3, 0 for search alone; `QUERIES=q,q` for some
//! searches only; `BENCH_DIR=dir` keeps the room and its database there, and a later run
//! with the same `BOXES` uses them again instead of importing anew).
//!
//! The servers, each its own process on loopback, on the same database:
//! - `fixed`: axum answering a fixed JSON body: the ceiling of HTTP on this machine;
//! - `locate`: axum and one indexed SELECT of the box and its binding, on a rusqlite
//!   connection kept per worker thread, run inline: the plain-locate peer;
//! - `locate + token`: the same after the token check (SHA-256 of the bearer token, one
//!   lookup by the unique hash), inline;
//! - `register`: the same, and a row in a lookup register of its own (stackroom's register
//!   schema in a file beside the database, WAL, `synchronous = FULL`, one thread committing
//!   whatever rows have queued)
//!   on disk before the answer, as stackroom's register is: what that durability costs;
//! - `stackroom`: the real `stackroom serve`: access control, locate, the lookup register;
//!   also as it was before, one change undone at a time, to show what each buys
//!   (`STACKROOM_NO_TOKEN_CACHE=1`: every token checked in the database;
//!   `STACKROOM_REGISTER_ON_WRITER=1`: register rows through the main writer, a savepoint
//!   each; `STACKROOM_HOP_SHORT_READS=1`: the token check and locate on the blocking pool).
//!
//! The peers are this benchmark's own binary run again with `STACKROOM_PEER=<kind>`.
//!
//! Two loads, each run on every server in turn, in three interleaved rounds (medians):
//! C keep-alive clients as fast as they go (the rate at saturation and its latency), and
//! C clients sending at a fixed total rate, each request's latency counted from the time
//! it was due (a server that falls behind is charged for the wait). Then search on
//! `stackroom serve` at saturation (and on the build at `OTHER_BIN`, query by query in
//! turn), and each one's memory, threads and SQLite connections after all of it.

mod common;

use std::cell::RefCell;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::Path as UrlPath;
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::get;
use bytes::Bytes;
use common::{BenchRoom, Server, env, percent, percentile, serve_with, viewer_token};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use serde::Serialize;
use sha2::{Digest, Sha256};

const LOCATE: &str = "/api/v1/boxes/{no}/location";

/// The searches measured: an archive-number prefix, Chinese words, a whole English word and
/// the same word as it is typed.
const SEARCHES: [&str; 9] = [
    "0451-H-12",
    "合同",
    "天河区",
    "metering",
    "meteri",
    "meter",
    "mete",
    "met",
    "m",
];

fn main() {
    if let Ok(kind) = std::env::var("STACKROOM_PEER") {
        let db = PathBuf::from(std::env::var("PEER_DB").unwrap());
        return peer(&kind, db);
    }
    let boxes = common::boxes();
    let seconds = Duration::from_secs(env("SECONDS", 5));
    let clients = env("CLIENTS", 32) as usize;
    // `RATES=20000,10000`: the fixed rates, requests a second in all.
    let rates: Vec<f64> = std::env::var("RATES")
        .unwrap_or_else(|_| "20000,10000".into())
        .split(',')
        .map(|r| r.trim().parse().expect("RATES: numbers"))
        .collect();
    let temp = tempfile::tempdir().unwrap();
    let dir = std::env::var_os("BENCH_DIR").map_or(temp.path().to_path_buf(), PathBuf::from);
    let (config_path, data, token) = kept_room(&dir, boxes);
    let db = data.join(stackroom::server::DB_FILE);
    let numbers = Arc::new(sample_numbers(&db, 20_000));

    let stackroom = |env: &[(&str, &str)]| serve_with(&config_path, &data, env);
    // Each variant of `stackroom serve` undoes one more change (see BENCHMARKS.md).
    let (hop, on_writer, uncached) = (
        ("STACKROOM_HOP_SHORT_READS", "1"),
        ("STACKROOM_REGISTER_ON_WRITER", "1"),
        ("STACKROOM_NO_TOKEN_CACHE", "1"),
    );
    // `SERVERS=locate,stackroom` runs only those (the first is then "the peer").
    let chosen = std::env::var("SERVERS").ok();
    let wanted = |kind: &str| {
        chosen
            .as_ref()
            .is_none_or(|c| c.split(',').any(|k| k == kind))
    };
    let mut servers: Vec<(&str, Server)> = Vec::new();
    let mut kinds: Vec<&str> = Vec::new();
    for (kind, name) in [
        ("fixed", "fixed JSON body (the ceiling)"),
        ("locate", "plain locate, inline (the peer)"),
        ("token", "plain locate + token check, inline"),
        (
            "register",
            "plain locate + token check + a register row on disk before the answer",
        ),
        (
            "before",
            "`stackroom serve`, reads through the blocking pool, register rows on the main writer",
        ),
        (
            "writer",
            "`stackroom serve`, register rows through the main writer",
        ),
        (
            "uncached",
            "`stackroom serve`, every token checked in the database",
        ),
        ("stackroom", "`stackroom serve`"),
        ("other", "`stackroom serve` of the build at OTHER_BIN"),
    ] {
        if !wanted(kind) {
            continue;
        }
        let server = match kind {
            "before" => stackroom(&[hop, on_writer, uncached]),
            "writer" => stackroom(&[on_writer, uncached]),
            "uncached" => stackroom(&[uncached]),
            "stackroom" => stackroom(&[]),
            // `OTHER_BIN=path`: another build of stackroom beside this one (an experiment).
            "other" => match std::env::var_os("OTHER_BIN") {
                Some(bin) => common::serve_build(Path::new(&bin), &config_path, &data, &[]),
                None => continue,
            },
            peer => spawn_peer(peer, &db),
        };
        servers.push((name, server));
        kinds.push(kind);
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let load = Load {
        token: token.clone(),
        numbers,
        clients,
    };
    let rounds = env("ROUNDS", 3) as usize;
    // [server][0: saturation, 1..: each fixed rate][round]
    let mut outcomes: Vec<Vec<Vec<Outcome>>> = servers
        .iter()
        .map(|_| (0..=rates.len()).map(|_| Vec::new()).collect())
        .collect();
    rt.block_on(async {
        for round in 0..rounds {
            for (i, (name, server)) in servers.iter().enumerate() {
                let addr = address(&server.base);
                let o = load.run(addr, None, seconds).await;
                eprintln!("round {round}: {name}: {:.0} req/s", o.rate);
                outcomes[i][0].push(o);
                for (k, &rate) in rates.iter().enumerate() {
                    outcomes[i][k + 1].push(load.run(addr, Some(rate), seconds).await);
                }
            }
        }
    });

    println!(
        "{boxes} boxes, {clients} clients, {rounds} rounds of {} s per load; medians of the rounds",
        seconds.as_secs()
    );
    if rounds > 0 {
        print_locates(&servers, &outcomes, &rates);
    }

    // Search and memory on `stackroom serve`, and on the build at OTHER_BIN beside it
    // (query by query, in turn), each found by its kind.
    let searched: Vec<(&str, &Server)> = ["stackroom", "other"]
        .into_iter()
        .filter_map(|kind| {
            let i = kinds.iter().position(|k| *k == kind)?;
            Some((servers[i].0, &servers[i].1))
        })
        .collect();
    if searched.is_empty() {
        return;
    }
    println!();
    let mut head = "| search, limit 20 |".to_string();
    let mut rule = "| --- |".to_string();
    for (name, _) in &searched {
        head += &format!(" {name}: req/s | p50 | p99 |");
        rule += " --- | --- | --- |";
    }
    println!("{head}\n{rule}");
    let queries = std::env::var("QUERIES").unwrap_or_else(|_| SEARCHES.join(","));
    for q in queries.split(',') {
        let mut line = format!("| `{q}` |");
        for (_, server) in &searched {
            let o = rt.block_on(load.search(address(&server.base), q, seconds));
            line += &format!(" {:.0} | {} | {} |", o.rate, ms(o.p50), ms(o.p99));
        }
        println!("{line}");
    }
    println!();
    for (name, server) in &searched {
        let mib = |k: &str| server.status(k).unwrap_or(0.0) / 1024.0;
        println!(
            "{name} after the loads: RSS {:.0} MiB (peak {:.0} MiB), {} threads, {} SQLite connections",
            mib("VmRSS:"),
            mib("VmHWM:"),
            server.status("Threads:").unwrap_or(0.0),
            server.open_files(&db.canonicalize().unwrap()),
        );
    }
}

/// The bench room's config file in `dir`, its data directory and a viewer's token: made and
/// imported, or, when `dir` already holds a room of `boxes` boxes (a run with `BENCH_DIR`
/// before), that one as it is.
fn kept_room(dir: &Path, boxes: usize) -> (PathBuf, PathBuf, String) {
    let data = dir.join("data");
    let (marker, token_file) = (dir.join("boxes"), dir.join("token"));
    if std::fs::read_to_string(&marker).is_ok_and(|n| n.trim() == boxes.to_string())
        && let Ok(token) = std::fs::read_to_string(&token_file)
    {
        eprintln!("{boxes} boxes as imported before in {}", dir.display());
        return (
            dir.join(common::ROOM_CONFIG),
            data,
            token.trim().to_string(),
        );
    }
    let _ = std::fs::remove_dir_all(&data);
    let room = BenchRoom::write(dir, boxes);
    let (import, _) = room.import(&data);
    let token = viewer_token(&room.config_path, &data);
    std::fs::write(&token_file, &token).unwrap();
    std::fs::write(&marker, boxes.to_string()).unwrap();
    let db = data.join(stackroom::server::DB_FILE);
    let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len()) as f64 / (1 << 20) as f64;
    eprintln!(
        "{boxes} boxes imported in {:.0} s; database {:.0} MiB, lookup register {:.0} MiB",
        import.as_secs_f64(),
        size(&db),
        size(&stackroom::store::register_path(&db))
    );
    (room.config_path, data, token)
}

/// The locate table: each server at saturation and at each fixed rate, medians of the rounds.
fn print_locates(servers: &[(&str, Server)], outcomes: &[Vec<Vec<Outcome>>], rates: &[f64]) {
    println!();
    let mut head =
        "| locate over HTTP | at saturation: req/s | × the peer | p50 | p99 |".to_string();
    let mut rule = "| --- | --- | --- | --- | --- |".to_string();
    for rate in rates {
        head += &format!(" at {rate:.0} req/s: achieved | p50 | p99 |");
        rule += " --- | --- | --- |";
    }
    println!("{head}\n{rule}");
    let peer = servers
        .iter()
        .position(|(name, _)| name.contains("(the peer)"))
        .unwrap_or(0);
    let peer_rate = median(outcomes[peer][0].iter().map(|o| o.rate));
    for (i, (name, _)) in servers.iter().enumerate() {
        let sat = median(outcomes[i][0].iter().map(|o| o.rate));
        let mut line = format!("| {name} | {sat:.0} | {:.2}× |", sat / peer_rate);
        for (k, load) in outcomes[i].iter().enumerate() {
            if k > 0 {
                line += &format!(" {:.0} |", median(load.iter().map(|o| o.rate)));
            }
            line += &format!(
                " {} | {} |",
                ms(median(load.iter().map(|o| o.p50))),
                ms(median(load.iter().map(|o| o.p99)))
            );
        }
        println!("{line}");
    }
}

fn ms(seconds: f64) -> String {
    format!("{:.2} ms", seconds * 1e3)
}

fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.collect();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn address(base: &str) -> SocketAddr {
    base.strip_prefix("http://").unwrap().parse().unwrap()
}

/// Archive numbers of boxes on shelves, spread over the whole table.
fn sample_numbers(db: &Path, n: usize) -> Vec<String> {
    let conn = Connection::open(db).unwrap();
    let count: i64 = conn
        .query_row("SELECT max(id) FROM boxes", [], |r| r.get(0))
        .unwrap();
    let step = (count / n as i64).max(1);
    let mut st = conn
        .prepare(
            "SELECT x.archive_no FROM boxes x JOIN bindings b ON b.box_id = x.id
             WHERE x.id % ?1 = 0 LIMIT ?2",
        )
        .unwrap();
    st.query_map(rusqlite::params![step, n as i64], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn spawn_peer(kind: &str, db: &Path) -> Server {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command.env("STACKROOM_PEER", kind).env("PEER_DB", db);
    Server::spawn(command)
}

// --- the load generator

struct Load {
    token: String,
    numbers: Arc<Vec<String>>,
    clients: usize,
}

/// One load on one server.
struct Outcome {
    rate: f64,
    /// Seconds.
    p50: f64,
    p99: f64,
}

impl Outcome {
    fn of(mut samples: Vec<Duration>, took: Duration) -> Outcome {
        samples.sort();
        Outcome {
            rate: samples.len() as f64 / took.as_secs_f64(),
            p50: percentile(&samples, 0.5).as_secs_f64(),
            p99: percentile(&samples, 0.99).as_secs_f64(),
        }
    }
}

async fn connect(addr: SocketAddr) -> SendRequest<Empty<Bytes>> {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    send
}

/// One GET on a kept-alive connection; panics on anything but 200, which no load here
/// should cause.
async fn get_ok(send: &mut SendRequest<Empty<Bytes>>, path: &str, auth: &str) {
    send.ready().await.unwrap();
    let request = hyper::Request::get(path)
        .header(header::HOST, "127.0.0.1")
        .header(header::AUTHORIZATION, auth)
        .body(Empty::new())
        .unwrap();
    let response = send.send_request(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&body));
}

impl Load {
    /// Locates at saturation (`rate` None: every client sends its next request when the
    /// last is answered) or at a fixed total rate.
    async fn run(&self, addr: SocketAddr, rate: Option<f64>, length: Duration) -> Outcome {
        let start = Instant::now() + Duration::from_millis(20);
        let end = start + length;
        let tasks: Vec<_> = (0..self.clients)
            .map(|k| {
                let auth = format!("Bearer {}", self.token);
                let numbers = self.numbers.clone();
                let clients = self.clients;
                tokio::spawn(async move {
                    let mut send = connect(addr).await;
                    let mut samples = Vec::new();
                    let interval = rate.map(|r| Duration::from_secs_f64(clients as f64 / r));
                    // Clients start spread over one interval.
                    let mut due =
                        start + interval.map_or(Duration::ZERO, |i| i * k as u32 / clients as u32);
                    let (mut i, mut behind) = (k, false);
                    tokio::time::sleep_until(due.into()).await;
                    while due < end {
                        let path = format!("/api/v1/boxes/{}/location", numbers[i % numbers.len()]);
                        // Sent late because the server was slow: counted from when it was
                        // due. Sent late because the timer woke late (its grain is a
                        // millisecond): counted from when it went.
                        let from = if behind { due } else { Instant::now() };
                        get_ok(&mut send, &path, &auth).await;
                        let done = Instant::now();
                        samples.push(done - from);
                        i += clients;
                        match interval {
                            None => due = done,
                            Some(every) => {
                                due += every;
                                behind = done >= due;
                                if !behind {
                                    tokio::time::sleep_until(due.into()).await;
                                }
                            }
                        }
                    }
                    samples
                })
            })
            .collect();
        let mut all = Vec::new();
        for task in tasks {
            all.extend(task.await.unwrap());
        }
        // A server that fell behind is still answering after the load's end.
        Outcome::of(all, start.elapsed().max(length))
    }

    /// Searches for `q` at saturation.
    async fn search(&self, addr: SocketAddr, q: &str, length: Duration) -> Outcome {
        let path = format!("/api/v1/boxes?q={}&limit=20", percent(q));
        let end = Instant::now() + length;
        let tasks: Vec<_> = (0..self.clients)
            .map(|_| {
                let auth = format!("Bearer {}", self.token);
                let path = path.clone();
                tokio::spawn(async move {
                    let mut send = connect(addr).await;
                    let mut samples = Vec::new();
                    while Instant::now() < end {
                        let s = Instant::now();
                        get_ok(&mut send, &path, &auth).await;
                        samples.push(s.elapsed());
                    }
                    samples
                })
            })
            .collect();
        let mut all = Vec::new();
        for task in tasks {
            all.extend(task.await.unwrap());
        }
        Outcome::of(all, length)
    }
}

// --- the peers

#[derive(Serialize)]
struct PeerLocation {
    archive_no: String,
    shelf_id: Option<i64>,
    source: Option<String>,
    confidence: Option<f64>,
    since: Option<i64>,
    last_seen: Option<i64>,
}

thread_local! {
    static CONN: RefCell<Option<Connection>> = const { RefCell::new(None) };
}

/// `f` on this worker thread's own read connection.
fn with_conn<T>(db: &Path, f: impl FnOnce(&Connection) -> T) -> T {
    CONN.with_borrow_mut(|conn| {
        let conn = conn.get_or_insert_with(|| {
            Connection::open_with_flags(
                db,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .unwrap()
        });
        f(conn)
    })
}

fn plain_locate(db: &Path, no: &str) -> Result<axum::Json<PeerLocation>, StatusCode> {
    with_conn(db, |conn| {
        conn.prepare_cached(
            "SELECT x.archive_no, b.shelf_id, b.source, b.confidence, b.since, b.last_seen
             FROM boxes x LEFT JOIN bindings b ON b.box_id = x.id WHERE x.archive_no = ?1",
        )
        .unwrap()
        .query_row([no], |r| {
            Ok(PeerLocation {
                archive_no: r.get(0)?,
                shelf_id: r.get(1)?,
                source: r.get(2)?,
                confidence: r.get(3)?,
                since: r.get(4)?,
                last_seen: r.get(5)?,
            })
        })
        .optional()
        .unwrap()
        .map(axum::Json)
        .ok_or(StatusCode::NOT_FOUND)
    })
}

/// A lookup register as one would first write it: stackroom's register schema in a file of
/// its own (WAL, `synchronous = FULL`), one thread that commits whatever rows have queued in
/// one transaction and then answers their callers. The peer of what stackroom's register
/// costs.
#[derive(Clone)]
struct PeerRegister {
    rows: tokio::sync::mpsc::UnboundedSender<(String, tokio::sync::oneshot::Sender<()>)>,
}

impl PeerRegister {
    fn start(db: &Path) -> PeerRegister {
        let path = db.with_file_name("peer-register.db");
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
        // stackroom's own register schema, made as stackroom makes it: attached as
        // `register`; then written through a connection of its own, as stackroom's are.
        let setup = Connection::open_in_memory().unwrap();
        setup
            .execute("ATTACH DATABASE ?1 AS register", [path.to_string_lossy()])
            .unwrap();
        setup
            .execute_batch("PRAGMA register.journal_mode = WAL;")
            .unwrap();
        setup
            .execute_batch(include_str!("../src/store/register.sql"))
            .unwrap();
        drop(setup);
        let mut conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "synchronous", "FULL").unwrap();
        let (rows, mut queue) =
            tokio::sync::mpsc::unbounded_channel::<(String, tokio::sync::oneshot::Sender<()>)>();
        std::thread::spawn(move || {
            while let Some(first) = queue.blocking_recv() {
                let mut batch = vec![first];
                while let Ok(row) = queue.try_recv() {
                    batch.push(row);
                }
                let tx = conn.transaction().unwrap();
                let now = chrono::Utc::now().timestamp_millis();
                for (no, _) in &batch {
                    tx.prepare_cached(
                        "INSERT INTO lookups (at, actor, archive_no, what) VALUES (?1, 'bench viewer', ?2, 'locate')",
                    )
                    .unwrap()
                    .execute(rusqlite::params![now, no])
                    .unwrap();
                }
                tx.commit().unwrap();
                for (_, done) in batch {
                    let _ = done.send(());
                }
            }
        });
        PeerRegister { rows }
    }

    /// Appends a row for `archive_no`; returns once it is on disk.
    async fn append(&self, archive_no: String) {
        let (done, on_disk) = tokio::sync::oneshot::channel();
        self.rows.send((archive_no, done)).unwrap();
        on_disk.await.unwrap();
    }
}

/// The token check done well: the hash as hex, one lookup by the unique index.
fn token_ok(db: &Path, headers: &HeaderMap) -> bool {
    let Some(secret) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    let digest = Sha256::digest(secret.as_bytes());
    let mut hex = String::with_capacity(64);
    for b in digest {
        use std::fmt::Write;
        let _ = write!(hex, "{b:02x}");
    }
    let now = chrono::Utc::now().timestamp_millis();
    with_conn(db, |conn| {
        conn.prepare_cached(
            "SELECT name, role FROM tokens WHERE hash = ?1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?2)",
        )
        .unwrap()
        .query_row(rusqlite::params![hex, now], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })
        .optional()
        .unwrap()
        .is_some()
    })
}

fn peer(kind: &str, db: PathBuf) {
    let db: &'static Path = Box::leak(db.into_boxed_path());
    let app = match kind {
        "fixed" => axum::Router::new().route(
            LOCATE,
            get(|| async {
                axum::Json(PeerLocation {
                    archive_no: "0451-H-001-00001".into(),
                    shelf_id: Some(1),
                    source: Some("import".into()),
                    confidence: Some(1.0),
                    since: Some(0),
                    last_seen: None,
                })
            }),
        ),
        "locate" => axum::Router::new().route(
            LOCATE,
            get(move |UrlPath(no): UrlPath<String>| async move { plain_locate(db, &no) }),
        ),
        "token" => axum::Router::new().route(
            LOCATE,
            get(
                move |headers: HeaderMap, UrlPath(no): UrlPath<String>| async move {
                    if !token_ok(db, &headers) {
                        return Err(StatusCode::UNAUTHORIZED);
                    }
                    plain_locate(db, &no)
                },
            ),
        ),
        "register" => {
            let register = PeerRegister::start(db);
            axum::Router::new().route(
                LOCATE,
                get(
                    move |headers: HeaderMap, UrlPath(no): UrlPath<String>| async move {
                        if !token_ok(db, &headers) {
                            return Err(StatusCode::UNAUTHORIZED);
                        }
                        let found = plain_locate(db, &no)?;
                        register.append(no).await;
                        Ok(found)
                    },
                ),
            )
        }
        other => panic!("no peer '{other}'"),
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("api: http://{}", listener.local_addr().unwrap());
        axum::serve(listener, app).await.unwrap();
    });
}

//! Inventory sweeps: read every antenna in a scope, decide where each tag is, compare with
//! the bindings, keep the result.
//!
//! A sweep runs the readers of its scope in parallel, each through its antenna ports in
//! turn (a commanded reader reads a port for the dwell time, or a group of ports in one
//! command where it can, such as an R2000's fast switch; an autonomous reader is listened
//! to for whole cycles of its own). Every read goes through one [`Pipeline`]; when
//! the readers are done, each tag's shelf is decided from all its evidence and
//! [`reconcile`]d with the bindings. A shelf whose antenna could not be read (reader
//! silent, port refused, no antenna) is listed with the reason, and its boxes get no
//! verdict: a shelf nobody read never makes a box "missing".
//!
//! `apply: sync` then re-binds misplaced boxes whose evidence is strong enough
//! (`sweeps.sync_confidence`), with the sweep as the source, and marks present boxes as
//! seen; missing boxes are reported, never unbound. The sweep, its findings and its
//! unread shelves are written in one transaction, with the re-bindings.
//!
//! One sweep runs at a time (the readers are shared): a second is refused with the id of
//! the one running; the scheduler waits or skips as configured and records a skip.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, mpsc, watch};
use tokio::task::JoinSet;
use utoipa::ToSchema;

use super::live::Live;
use super::pipeline::{Pipeline, Settings, TagRead};
use super::reader::{ALL_PORTS, Mode, ReaderError, ReaderHandle};
use super::reconcile::{Bound, Finding, Summary, reconcile};
use crate::config::{Apply, RoomConfig, Scope};
use crate::location::{LocationError, LocationService, Provenance, Source};
use crate::shelf::ShelfAddress;
use crate::store::StoreError;
use crate::time::{now_ms, wall};

/// A sweep to run.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SweepRequest {
    pub scope: Scope,
    #[serde(default)]
    pub apply: Apply,
    /// Time on each antenna, ms (default `sweeps.dwell_ms`).
    pub dwell_ms: Option<u64>,
}

/// Where a sweep is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SweepState {
    Running,
    Done,
    Failed,
    Cancelled,
    /// A scheduled run that did not start (another sweep was running).
    Skipped,
    /// The controller stopped while it ran.
    Interrupted,
}

impl SweepState {
    fn as_str(self) -> &'static str {
        match self {
            SweepState::Running => "running",
            SweepState::Done => "done",
            SweepState::Failed => "failed",
            SweepState::Cancelled => "cancelled",
            SweepState::Skipped => "skipped",
            SweepState::Interrupted => "interrupted",
        }
    }
}

impl crate::store::text::Named for SweepState {
    const ALL: &'static [Self] = &[
        SweepState::Running,
        SweepState::Done,
        SweepState::Failed,
        SweepState::Cancelled,
        SweepState::Skipped,
        SweepState::Interrupted,
    ];
    fn name(self) -> &'static str {
        self.as_str()
    }
}
crate::text_column!(SweepState);

/// How far one reader is.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReaderProgress {
    pub reader: String,
    pub antennas: usize,
    pub done: usize,
    /// Why the reader stopped short, if it did.
    pub error: Option<String>,
}

/// How far a sweep is.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct Progress {
    /// Antennas in the scope.
    pub antennas: usize,
    /// Antennas dealt with (read or given up).
    pub done: usize,
    /// Antennas read.
    pub read: usize,
    /// Tag reads so far.
    pub reads: u64,
    /// `done / antennas`, 0 to 1.
    pub fraction: f64,
    /// Shelves read a second time because a box on them, or bound to them, was in doubt.
    pub second_look: usize,
    /// Per reader, while the sweep runs.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub readers: Vec<ReaderProgress>,
}

/// A sweep as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SweepView {
    pub id: i64,
    pub state: SweepState,
    /// `api`, `cli` or `schedule:<name>`.
    pub trigger: String,
    pub scope: Scope,
    pub apply: Apply,
    pub dwell_ms: u64,
    pub progress: Progress,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Counts of the findings (zero until the sweep is done).
    pub summary: Summary,
    /// Bindings moved by `apply: sync`.
    pub applied: usize,
    /// Why it failed, was cancelled or skipped.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub note: String,
}

/// The evidence of one shelf for a tag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EvidenceRow {
    pub shelf: String,
    pub reads: u32,
    pub max_rssi_dbm: f64,
    pub power_mw: f64,
}

/// One finding of a sweep's report.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct FindingRow {
    /// `present`, `misplaced`, `missing`, `not_read` or `unknown`.
    pub status: String,
    pub archive_no: Option<String>,
    /// The box's title (in a report; a finding being made has none yet).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    pub epc: String,
    /// The shelf the binding says.
    pub bound: Option<String>,
    /// The shelf the reads say (for `not_read`: where it was heard all the same).
    pub found: Option<String>,
    /// The found shelf's share of the power received from the tag.
    pub confidence: Option<f64>,
    pub evidence: Vec<EvidenceRow>,
    /// Whether `apply: sync` re-bound the box.
    pub applied: bool,
}

/// A stocktake's finding about one box that was not simply "present".
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Sighting {
    pub sweep: i64,
    pub at: DateTime<Utc>,
    /// `misplaced`, `missing` or `not_read`.
    pub status: String,
    pub bound: Option<String>,
    pub found: Option<String>,
    pub confidence: Option<f64>,
    /// Whether the sweep re-bound the box.
    pub applied: bool,
}

/// A shelf the sweep could not read.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Unread {
    pub shelf: String,
    /// Why, as a stable code the staff page words: `reader_not_running`, `no_antenna`,
    /// `reader_failed` (the reader did not answer, refused, or its line failed),
    /// `cancelled`.
    pub code: String,
    /// The reader that should have read it, if one.
    pub reader: Option<String>,
    /// Why, in English, with the reader's own words where it failed.
    pub reason: String,
}

/// Why a shelf was not read, as the sweep learns it.
#[derive(Debug, Clone, PartialEq)]
struct NotRead {
    code: &'static str,
    reader: Option<String>,
    reason: String,
}

impl NotRead {
    fn reader_not_running(reader: &str) -> NotRead {
        NotRead {
            code: "reader_not_running",
            reader: Some(reader.to_string()),
            reason: format!("reader {reader} is not running"),
        }
    }

    fn no_antenna() -> NotRead {
        NotRead {
            code: "no_antenna",
            reader: None,
            reason: "no antenna reads this shelf".into(),
        }
    }

    fn failed(reader: &str, e: &ReaderError) -> NotRead {
        NotRead {
            code: "reader_failed",
            reader: Some(reader.to_string()),
            reason: e.to_string(),
        }
    }

    fn cancelled() -> NotRead {
        NotRead {
            code: "cancelled",
            reader: None,
            reason: "sweep cancelled".into(),
        }
    }
}

/// A sweep's full report.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Report {
    pub sweep: SweepView,
    /// A finding whose confidence is below this (`sweeps.sync_confidence`) is uncertain:
    /// a sync would not act on it, and a person should look at its evidence.
    pub sync_confidence: f64,
    pub findings: Vec<FindingRow>,
    pub unread: Vec<Unread>,
}

/// Why a sweep request failed.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("scope: {0}")]
    Scope(String),
    #[error("dwell_ms: {0}")]
    Dwell(String),
    #[error(
        "sweep {0} is running; one sweep runs at a time (cancel it with DELETE /api/v1/sweeps/{0})"
    )]
    Busy(i64),
    #[error("no sweep {0}")]
    NotFound(i64),
    #[error("sweep {id} is {state}, not running")]
    NotRunning { id: i64, state: &'static str },
    #[error(transparent)]
    Location(#[from] LocationError),
}

impl From<StoreError> for SweepError {
    fn from(e: StoreError) -> Self {
        SweepError::Location(e.into())
    }
}

impl From<rusqlite::Error> for SweepError {
    fn from(e: rusqlite::Error) -> Self {
        SweepError::Location(e.into())
    }
}

struct Current {
    id: i64,
    view: Arc<std::sync::Mutex<SweepView>>,
    cancel: watch::Sender<bool>,
}

struct Inner {
    config: Arc<RoomConfig>,
    locations: LocationService,
    readers: BTreeMap<String, ReaderHandle>,
    live: Option<Live>,
    current: Mutex<Option<Current>>,
    /// The id of the running sweep, for those who wait for it to end.
    running: watch::Sender<Option<i64>>,
}

/// The sweeps of the room; cheap to clone.
#[derive(Clone)]
pub struct Sweeps {
    inner: Arc<Inner>,
}

/// Dwell times a request may ask for, ms.
const DWELL_MS: std::ops::RangeInclusive<u64> = 10..=60_000;

/// Who answers a reader's shelves: the reader is asked port by port, or listened to.
struct Plan {
    /// Reader → (port, shelf), by port.
    by_reader: BTreeMap<String, Vec<(u16, ShelfAddress)>>,
    /// Shelves of the scope no running reader can read, and why.
    unreadable: Vec<(ShelfAddress, NotRead)>,
    shelves: Vec<ShelfAddress>,
}

impl Sweeps {
    /// The sweeps service over these readers. Sweeps a previous run of the controller left
    /// "running" are marked interrupted.
    pub async fn new(
        config: Arc<RoomConfig>,
        locations: LocationService,
        readers: BTreeMap<String, ReaderHandle>,
        live: Option<Live>,
    ) -> Result<Sweeps, SweepError> {
        let now = now_ms();
        locations
            .store()
            .write(move |conn| {
                conn.execute(
                    "UPDATE sweeps SET state = 'interrupted', finished_at = ?1,
                        note = 'the controller stopped while the sweep ran'
                     WHERE state = 'running'",
                    [now],
                )?;
                Ok::<_, SweepError>(())
            })
            .await?;
        Ok(Sweeps {
            inner: Arc::new(Inner {
                config,
                locations,
                readers,
                live,
                current: Mutex::new(None),
                running: watch::channel(None).0,
            }),
        })
    }

    /// Readers the sweeps drive.
    pub fn readers(&self) -> &BTreeMap<String, ReaderHandle> {
        &self.inner.readers
    }

    fn plan(&self, scope: &Scope) -> Result<Plan, SweepError> {
        let config = &self.inner.config;
        let shelves = scope.shelves(&config.layout).map_err(SweepError::Scope)?;
        let wanted: HashSet<ShelfAddress> = shelves.iter().copied().collect();
        let mut by_reader: BTreeMap<String, Vec<(u16, ShelfAddress)>> = BTreeMap::new();
        let mut covered = HashSet::new();
        let mut unreadable = Vec::new();
        for a in config.antennas.iter().filter(|a| wanted.contains(&a.shelf)) {
            if self.inner.readers.contains_key(&a.reader) {
                by_reader
                    .entry(a.reader.clone())
                    .or_default()
                    .push((a.port, a.shelf));
                covered.insert(a.shelf);
            } else {
                unreadable.push((a.shelf, NotRead::reader_not_running(&a.reader)));
                covered.insert(a.shelf);
            }
        }
        for s in &shelves {
            if !covered.contains(s) {
                unreadable.push((*s, NotRead::no_antenna()));
            }
        }
        for ports in by_reader.values_mut() {
            ports.sort_unstable();
        }
        Ok(Plan {
            by_reader,
            unreadable,
            shelves,
        })
    }

    /// Starts a sweep; `trigger` says who asked (`api:<token>`, `cli:<token>`,
    /// `schedule:<name>`).
    pub async fn start(
        &self,
        request: SweepRequest,
        trigger: &str,
    ) -> Result<SweepView, SweepError> {
        self.start_noted(request, trigger, "").await
    }

    /// Starts a sweep with a note (a scheduled run that had to wait says so).
    pub async fn start_noted(
        &self,
        request: SweepRequest,
        trigger: &str,
        note: &str,
    ) -> Result<SweepView, SweepError> {
        let dwell_ms = request
            .dwell_ms
            .unwrap_or(self.inner.config.sweeps.dwell.as_millis() as u64);
        if !DWELL_MS.contains(&dwell_ms) {
            return Err(SweepError::Dwell(format!(
                "{dwell_ms} is not within {} to {} ms",
                DWELL_MS.start(),
                DWELL_MS.end()
            )));
        }
        let plan = self.plan(&request.scope)?;
        let mut current = self.inner.current.lock().await;
        if let Some(c) = current.as_ref() {
            return Err(SweepError::Busy(c.id));
        }
        let antennas = plan.by_reader.values().map(Vec::len).sum::<usize>() + plan.unreadable.len();
        let started = now_ms();
        let scope_json = serde_json::to_string(&request.scope).unwrap_or_default();
        let (trigger_, apply, note_) = (trigger.to_string(), request.apply, note.to_string());
        let id = self
            .inner
            .locations
            .store()
            .write(move |conn| {
                conn.execute(
                    "INSERT INTO sweeps (trigger, scope, apply, state, started_at, dwell_ms, antennas, note)
                     VALUES (?1, ?2, ?3, 'running', ?4, ?5, ?6, ?7)",
                    params![trigger_, scope_json, apply.as_str(), started, dwell_ms as i64, antennas as i64, note_],
                )?;
                Ok::<_, SweepError>(conn.last_insert_rowid())
            })
            .await?;
        let view = SweepView {
            id,
            state: SweepState::Running,
            trigger: trigger.to_string(),
            scope: request.scope.clone(),
            apply: request.apply,
            dwell_ms,
            progress: Progress {
                antennas,
                done: plan.unreadable.len(),
                readers: plan
                    .by_reader
                    .iter()
                    .map(|(reader, ports)| ReaderProgress {
                        reader: reader.clone(),
                        antennas: ports.len(),
                        done: 0,
                        error: None,
                    })
                    .collect(),
                ..Progress::default()
            },
            started_at: wall(started),
            finished_at: None,
            summary: Summary::default(),
            applied: 0,
            note: note.to_string(),
        };
        let shared = Arc::new(std::sync::Mutex::new(view.clone()));
        let (cancel, cancelled) = watch::channel(false);
        *current = Some(Current {
            id,
            view: shared.clone(),
            cancel,
        });
        drop(current);
        self.inner.running.send_replace(Some(id));
        tracing::info!(sweep = id, trigger, scope = ?request.scope, antennas, "sweep started");
        let this = self.clone();
        let span = tracing::info_span!("sweep", sweep = id);
        tokio::spawn(tracing::Instrument::instrument(
            async move {
                let dwell = Duration::from_millis(dwell_ms);
                let outcome = this.run(id, plan, dwell, apply, &shared, cancelled).await;
                let (state, note) = match outcome {
                    Ok(state) => (state, String::new()),
                    Err(e) => {
                        tracing::error!(sweep = id, error = %e, "sweep failed");
                        (SweepState::Failed, e.to_string())
                    }
                };
                if state != SweepState::Done {
                    let (note, progress) = {
                        let v = lock(&shared);
                        let note = if note.is_empty() {
                            v.note.clone()
                        } else {
                            note
                        };
                        (note, v.progress.clone())
                    };
                    let finished = now_ms();
                    let note_ = note.clone();
                    let written = this
                        .inner
                        .locations
                        .store()
                        .write(move |conn| {
                            conn.execute(
                                "UPDATE sweeps SET state = ?2, finished_at = ?3, note = ?4,
                                antennas_read = ?5, reads = ?6 WHERE id = ?1",
                                params![
                                    id,
                                    state.as_str(),
                                    finished,
                                    note_,
                                    progress.read as i64,
                                    progress.reads as i64
                                ],
                            )?;
                            Ok::<_, SweepError>(())
                        })
                        .await;
                    if let Err(e) = written {
                        tracing::error!(sweep = id, error = %e, "could not record the end of the sweep");
                    }
                    let mut v = lock(&shared);
                    v.state = state;
                    v.note = note;
                    v.finished_at = Some(wall(finished));
                }
                tracing::info!(sweep = id, state = state.as_str(), "sweep ended");
                *this.inner.current.lock().await = None;
                this.inner.running.send_replace(None);
            },
            span,
        ));
        Ok(view)
    }

    /// Reads, decides, reconciles and records; the state it ended in.
    async fn run(
        &self,
        id: i64,
        plan: Plan,
        dwell: Duration,
        apply: Apply,
        view: &Arc<std::sync::Mutex<SweepView>>,
        cancelled: watch::Receiver<bool>,
    ) -> Result<SweepState, SweepError> {
        let antenna_map = self
            .inner
            .config
            .antennas
            .iter()
            .map(|a| (a.reader.clone(), a.port, a.shelf));
        let mut pipeline = Pipeline::new(antenna_map, Settings::default());
        let (read, mut unread) = self
            .pass(
                &plan.by_reader,
                dwell,
                Pass::First,
                &mut pipeline,
                view,
                &cancelled,
            )
            .await?;
        unread.extend(plan.unreadable);
        if *cancelled.borrow() {
            lock(view).note = "cancelled: no verdicts were reached".into();
            return Ok(SweepState::Cancelled);
        }
        let scope: HashSet<ShelfAddress> = plan.shelves.iter().copied().collect();
        let mut bound = Vec::new();
        let mut known = HashMap::new();
        for (archive_no, epc, shelf) in self.inner.locations.tagged_boxes().await? {
            let shelf: Option<ShelfAddress> = shelf.and_then(|s| s.parse().ok());
            if let Some(s) = shelf.filter(|s| scope.contains(s)) {
                bound.push(Bound {
                    archive_no: archive_no.clone(),
                    epc: epc.clone(),
                    shelf: s,
                });
            }
            known.insert(epc, (archive_no, shelf));
        }
        // Boxes away from their shelf on a loan or in a place off the shelving (a safe):
        // not heard there, and not missing.
        let on_loan = self
            .inner
            .locations
            .store()
            .read(|conn| {
                let mut away = crate::loans::on_loan_epcs(conn)?;
                away.extend(crate::location::placed_epcs(conn)?);
                Ok::<_, StoreError>(away)
            })
            .await
            .map_err(|e| SweepError::Location(LocationError::Store(e)))?;
        let second_look = self.inner.config.sweeps.second_look;
        if !second_look.is_zero() {
            let doubtful = doubtful_shelves(&bound, &read, &on_loan, &pipeline);
            if !doubtful.is_empty() {
                let by_reader: BTreeMap<String, Vec<(u16, ShelfAddress)>> = plan
                    .by_reader
                    .iter()
                    .map(|(reader, ports)| {
                        let ports: Vec<_> = ports
                            .iter()
                            .filter(|(_, shelf)| doubtful.contains(shelf))
                            .copied()
                            .collect();
                        (reader.clone(), ports)
                    })
                    .filter(|(_, ports)| !ports.is_empty())
                    .collect();
                lock(view).progress.second_look = doubtful.len();
                tracing::info!(sweep = id, shelves = doubtful.len(), "second look");
                // A shelf the second look cannot read keeps the first pass's evidence.
                self.pass(
                    &by_reader,
                    second_look,
                    Pass::Second,
                    &mut pipeline,
                    view,
                    &cancelled,
                )
                .await?;
                if *cancelled.borrow() {
                    lock(view).note = "cancelled: no verdicts were reached".into();
                    return Ok(SweepState::Cancelled);
                }
            }
        }
        let decisions: Vec<_> = pipeline
            .tags()
            .filter_map(|epc| pipeline.decide(epc, None))
            .collect();
        let (findings, summary) = reconcile(&bound, &read, &decisions, &known, &on_loan);
        unread.sort_by_key(|(shelf, _)| *shelf);

        let threshold = self.inner.config.sweeps.sync_confidence;
        let locations = self.inner.locations.clone();
        let finished = now_ms();
        let antennas_read = read.len();
        let (reads, second_look) = {
            let v = lock(view);
            (v.progress.reads, v.progress.second_look)
        };
        let applied = self
            .inner
            .locations
            .store()
            .write(move |conn| {
                let outcome = Outcome {
                    findings: &findings,
                    unread: &unread,
                    summary,
                    antennas_read,
                    second_look,
                    reads,
                    finished,
                };
                record(conn, &locations, id, apply, threshold, outcome)
            })
            .await?;
        let mut v = lock(view);
        v.state = SweepState::Done;
        v.summary = summary;
        v.applied = applied;
        v.finished_at = Some(wall(finished));
        v.progress.read = antennas_read;
        Ok(SweepState::Done)
    }

    /// Reads the plan's ports, every reader at once, into `pipeline`; the shelves read and
    /// those that could not be, with the reason.
    async fn pass(
        &self,
        by_reader: &BTreeMap<String, Vec<(u16, ShelfAddress)>>,
        dwell: Duration,
        pass: Pass,
        pipeline: &mut Pipeline,
        view: &Arc<std::sync::Mutex<SweepView>>,
        cancelled: &watch::Receiver<bool>,
    ) -> Result<(HashSet<ShelfAddress>, Vec<(ShelfAddress, NotRead)>), SweepError> {
        let (tx, mut rx) = mpsc::channel::<Heard>(64);
        let mut readers = JoinSet::new();
        for (reader, ports) in by_reader {
            let Some(handle) = self.inner.readers.get(reader).cloned() else {
                continue;
            };
            readers.spawn(read_ports(
                handle,
                ports.clone(),
                dwell,
                pass,
                tx.clone(),
                view.clone(),
                cancelled.clone(),
            ));
        }
        drop(tx);
        while let Some(Heard {
            reader,
            listened,
            reads: batch,
            for_live,
        }) = rx.recv().await
        {
            for (port, time) in listened {
                pipeline.listened(&reader, port, time);
            }
            for read in &batch {
                pipeline.push(read);
            }
            lock(view).progress.reads += batch.iter().map(|r| u64::from(r.count)).sum::<u64>();
            if let Some(live) = self.inner.live.as_ref().filter(|_| for_live) {
                live.offer(batch);
            }
        }
        let mut read = HashSet::new();
        let mut unread = Vec::new();
        while let Some(done) = readers.join_next().await {
            let (ok, failed) = done.map_err(|e| {
                SweepError::Location(LocationError::Store(StoreError::Task(e.to_string())))
            })?;
            read.extend(ok);
            unread.extend(failed);
        }
        Ok((read, unread))
    }

    /// A sweep: the running one as it goes, or a finished one from the database.
    pub async fn get(&self, id: i64) -> Result<SweepView, SweepError> {
        if let Some(c) = self
            .inner
            .current
            .lock()
            .await
            .as_ref()
            .filter(|c| c.id == id)
        {
            return Ok(lock(&c.view).clone());
        }
        self.inner
            .locations
            .store()
            .read(move |conn| load(conn, id)?.ok_or(SweepError::NotFound(id)))
            .await
    }

    /// What stocktakes found amiss with a box (misplaced, missing, not read), newest
    /// first; when it was last seen where it belongs is its binding's `last_seen`.
    pub async fn findings_of(&self, archive_no: &str) -> Result<Vec<Sighting>, SweepError> {
        let archive_no = archive_no.to_string();
        self.inner
            .locations
            .store()
            .read(move |conn| {
                conn.prepare_cached(
                    "SELECT f.sweep_id, COALESCE(s.finished_at, s.started_at), f.status, f.bound, f.found,
                            f.confidence, f.applied
                     FROM sweep_findings f JOIN sweeps s ON s.id = f.sweep_id
                     WHERE f.archive_no = ?1 AND f.status != 'present'
                     ORDER BY f.sweep_id DESC LIMIT 50",
                )?
                .query_map([archive_no], |r| {
                    Ok(Sighting {
                        sweep: r.get(0)?,
                        at: wall(r.get(1)?),
                        status: r.get(2)?,
                        bound: r.get(3)?,
                        found: r.get(4)?,
                        confidence: r.get(5)?,
                        applied: r.get::<_, i64>(6)? != 0,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()
                .map_err(SweepError::from)
            })
            .await
    }

    /// The most recent sweeps, newest first.
    pub async fn list(&self, limit: usize) -> Result<Vec<SweepView>, SweepError> {
        let running = self.running_view().await;
        let mut items: Vec<SweepView> = self
            .inner
            .locations
            .store()
            .read(move |conn| {
                let ids: Vec<i64> = conn
                    .prepare("SELECT id FROM sweeps ORDER BY id DESC LIMIT ?1")?
                    .query_map([limit as i64], |r| r.get(0))?
                    .collect::<Result<_, _>>()?;
                let mut out = Vec::new();
                for id in ids {
                    out.extend(load(conn, id)?);
                }
                Ok::<_, SweepError>(out)
            })
            .await?;
        if let Some(r) = running {
            for item in items.iter_mut().filter(|i| i.id == r.id) {
                *item = r.clone();
            }
        }
        Ok(items)
    }

    async fn running_view(&self) -> Option<SweepView> {
        self.inner
            .current
            .lock()
            .await
            .as_ref()
            .map(|c| lock(&c.view).clone())
    }

    /// The findings of a sweep and the shelves it could not read.
    pub async fn report(&self, id: i64) -> Result<Report, SweepError> {
        let sweep = self.get(id).await?;
        let (findings, unread) = self
            .inner
            .locations
            .store()
            .read(move |conn| {
                let findings = conn
                    .prepare(
                        "SELECT f.status, f.archive_no, f.epc, f.bound, f.found, f.confidence, f.evidence,
                                f.applied, x.title
                         FROM sweep_findings f LEFT JOIN boxes x ON x.archive_no = f.archive_no
                         WHERE f.sweep_id = ?1 ORDER BY f.seq",
                    )?
                    .query_map([id], |r| {
                        let evidence: Option<String> = r.get(6)?;
                        Ok(FindingRow {
                            status: r.get(0)?,
                            archive_no: r.get(1)?,
                            title: r.get(8)?,
                            epc: r.get(2)?,
                            bound: r.get(3)?,
                            found: r.get(4)?,
                            confidence: r.get(5)?,
                            evidence: evidence
                                .and_then(|e| serde_json::from_str(&e).ok())
                                .unwrap_or_default(),
                            applied: r.get::<_, i64>(7)? != 0,
                        })
                    })?
                    .collect::<Result<Vec<_>, _>>()?;
                let unread = conn
                    .prepare(
                        "SELECT shelf, reason, code, reader FROM sweep_unread WHERE sweep_id = ?1 ORDER BY shelf",
                    )?
                    .query_map([id], |r| {
                        Ok(Unread {
                            shelf: r.get(0)?,
                            reason: r.get(1)?,
                            code: r.get(2)?,
                            reader: r.get(3)?,
                        })
                    })?
                    .collect::<Result<Vec<_>, _>>()?;
                Ok::<_, SweepError>((findings, unread))
            })
            .await?;
        Ok(Report {
            sweep,
            sync_confidence: self.inner.config.sweeps.sync_confidence,
            findings,
            unread,
        })
    }

    /// Cancels the running sweep `id`; what it had read is dropped, no verdict is kept.
    pub async fn cancel(&self, id: i64) -> Result<SweepView, SweepError> {
        let running = {
            let current = self.inner.current.lock().await;
            match current.as_ref().filter(|c| c.id == id) {
                Some(c) => {
                    c.cancel.send_replace(true);
                    lock(&c.view).note = "cancelled".into();
                    true
                }
                None => false,
            }
        };
        if !running {
            let view = self.get(id).await?;
            return Err(SweepError::NotRunning {
                id,
                state: view.state.as_str(),
            });
        }
        self.wait(id).await
    }

    /// Waits for sweep `id` to end.
    pub async fn wait(&self, id: i64) -> Result<SweepView, SweepError> {
        let mut running = self.inner.running.subscribe();
        while *running.borrow_and_update() == Some(id) {
            if running.changed().await.is_err() {
                break;
            }
        }
        self.get(id).await
    }

    /// Waits until no sweep runs.
    pub async fn idle(&self) {
        let mut running = self.inner.running.subscribe();
        while running.borrow_and_update().is_some() {
            if running.changed().await.is_err() {
                return;
            }
        }
    }

    /// Records a scheduled run that did not start, and why.
    pub async fn record_skipped(
        &self,
        trigger: &str,
        scope: &Scope,
        apply: Apply,
        note: String,
    ) -> Result<i64, SweepError> {
        let now = now_ms();
        let scope = serde_json::to_string(scope).unwrap_or_default();
        let trigger = trigger.to_string();
        let dwell = self.inner.config.sweeps.dwell.as_millis() as i64;
        self.inner
            .locations
            .store()
            .write(move |conn| {
                conn.execute(
                    "INSERT INTO sweeps (trigger, scope, apply, state, started_at, finished_at, dwell_ms, note)
                     VALUES (?1, ?2, ?3, 'skipped', ?4, ?4, ?5, ?6)",
                    params![trigger, scope, apply.as_str(), now, dwell, note],
                )?;
                Ok::<_, SweepError>(conn.last_insert_rowid())
            })
            .await
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Reads one reader's ports; the shelves read and those not read, with the reason.
/// Which pass of a sweep reads: the first reads every shelf of the scope, the second
/// only the doubtful ones again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pass {
    First,
    Second,
}

/// The shelves that deserve a second look: for every box bound to a shelf the first pass
/// read, but heard nowhere or decided on another shelf, its own shelf and the one it was
/// decided on. One read is a noisy measurement: a tag in a read shadow, or a strong
/// cross-read through the shelf board, is the common cause, and a second look tells it from
/// a box that really moved.
fn doubtful_shelves(
    bound: &[Bound],
    read: &HashSet<ShelfAddress>,
    on_loan: &HashSet<String>,
    pipeline: &Pipeline,
) -> HashSet<ShelfAddress> {
    let mut doubtful = HashSet::new();
    for b in bound
        .iter()
        .filter(|b| read.contains(&b.shelf) && !on_loan.contains(&b.epc))
    {
        match pipeline.decide(&b.epc, None) {
            Some(d) if d.shelf == b.shelf => {}
            Some(d) => {
                doubtful.insert(b.shelf);
                if read.contains(&d.shelf) {
                    doubtful.insert(d.shelf);
                }
            }
            None => {
                doubtful.insert(b.shelf);
            }
        }
    }
    doubtful
}

/// What a reader heard on some of its ports, and how long it listened on each.
struct Heard {
    reader: String,
    listened: Vec<(u16, Duration)>,
    reads: Vec<TagRead>,
    /// Whether the live pipeline has still to see the reads.
    for_live: bool,
}

async fn read_ports(
    handle: ReaderHandle,
    ports: Vec<(u16, ShelfAddress)>,
    dwell: Duration,
    pass: Pass,
    reads: mpsc::Sender<Heard>,
    view: Arc<std::sync::Mutex<SweepView>>,
    mut cancelled: watch::Receiver<bool>,
) -> (Vec<ShelfAddress>, Vec<(ShelfAddress, NotRead)>) {
    let mut read = Vec::new();
    let mut unread = Vec::new();
    let progress = |done: usize, ok: usize, error: Option<String>| {
        if pass == Pass::Second {
            return;
        }
        let mut v = lock(&view);
        let p = &mut v.progress;
        p.done += done;
        p.read += ok;
        p.fraction = if p.antennas == 0 {
            1.0
        } else {
            p.done as f64 / p.antennas as f64
        };
        if let Some(r) = p.readers.iter_mut().find(|r| r.reader == handle.id) {
            r.done += done;
            if error.is_some() {
                r.error = error;
            }
        }
    };
    match handle.mode {
        Mode::Autonomous {
            cycle,
            dwell: port_dwell,
        } => {
            // Two cycles: every port comes round whole at least once, whatever the phase.
            let window = cycle * 2;
            let answer = tokio::select! {
                r = handle.inventory(ALL_PORTS, window) => Some(r),
                _ = cancelled.wait_for(|c| *c) => None,
            };
            match answer {
                Some(Ok(batch)) => {
                    let wanted: HashSet<u16> = ports.iter().map(|(p, _)| *p).collect();
                    let batch: Vec<TagRead> = batch
                        .into_iter()
                        .filter(|r| wanted.contains(&r.port))
                        .collect();
                    // Each port had its dwell in each of the two cycles.
                    let share = port_dwell * 2;
                    let _ = reads
                        .send(Heard {
                            reader: handle.id.clone(),
                            listened: ports.iter().map(|(p, _)| (*p, share)).collect(),
                            reads: batch,
                            // The live pipeline has had these as they arrived.
                            for_live: false,
                        })
                        .await;
                    read.extend(ports.iter().map(|(_, s)| *s));
                    progress(ports.len(), ports.len(), None);
                }
                Some(Err(e)) => {
                    unread.extend(
                        ports
                            .iter()
                            .map(|(_, s)| (*s, NotRead::failed(&handle.id, &e))),
                    );
                    progress(ports.len(), 0, Some(e.to_string()));
                }
                None => unread.extend(ports.iter().map(|(_, s)| (*s, NotRead::cancelled()))),
            }
        }
        Mode::Commanded => {
            // One request per group of ports (one port, or the four of an R2000's
            // fast-switch inventory).
            let mut rest = ports.chunks(handle.group.max(1));
            while let Some(group) = rest.next() {
                if *cancelled.borrow() {
                    unread.extend(group.iter().map(|(_, s)| (*s, NotRead::cancelled())));
                    continue;
                }
                let numbers: Vec<u16> = group.iter().map(|(p, _)| *p).collect();
                // A reader that does not answer is asked once more before it is given up.
                let mut outcome = handle.inventory_group(&numbers, dwell).await;
                if matches!(
                    outcome,
                    Err(ReaderError::Silent(_) | ReaderError::Open { .. })
                ) {
                    outcome = handle.inventory_group(&numbers, dwell).await;
                }
                match outcome {
                    Ok(batch) => {
                        let _ = reads
                            .send(Heard {
                                reader: handle.id.clone(),
                                listened: numbers
                                    .iter()
                                    .filter(|p| batch.refused.iter().all(|(r, _)| r != *p))
                                    .map(|p| (*p, dwell))
                                    .collect(),
                                reads: batch.reads,
                                for_live: true,
                            })
                            .await;
                        for &(port, shelf) in group {
                            match batch.refused.iter().find(|(p, _)| *p == port) {
                                Some((_, why)) => {
                                    let e = ReaderError::Refused {
                                        reader: handle.id.clone(),
                                        message: why.clone(),
                                    };
                                    unread.push((shelf, NotRead::failed(&handle.id, &e)));
                                    progress(1, 0, None);
                                }
                                None => {
                                    read.push(shelf);
                                    progress(1, 1, None);
                                }
                            }
                        }
                    }
                    Err(e @ ReaderError::Refused { .. }) => {
                        unread.extend(
                            group
                                .iter()
                                .map(|(_, s)| (*s, NotRead::failed(&handle.id, &e))),
                        );
                        progress(group.len(), 0, None);
                    }
                    Err(e) => {
                        // Gone: nothing more is read from this reader in this sweep.
                        let why = NotRead::failed(&handle.id, &e);
                        tracing::warn!(reader = %handle.id, error = %why.reason, "reader lost during a sweep");
                        let left: Vec<_> = group
                            .iter()
                            .chain(rest.by_ref().flatten())
                            .map(|(_, s)| (*s, why.clone()))
                            .collect();
                        progress(left.len(), 0, Some(why.reason));
                        unread.extend(left);
                    }
                }
            }
        }
    }
    (read, unread)
}

/// Writes the end of a sweep (and its re-bindings); the number of boxes re-bound.
/// What a finished sweep found, to be recorded.
struct Outcome<'a> {
    findings: &'a [Finding],
    unread: &'a [(ShelfAddress, NotRead)],
    summary: Summary,
    antennas_read: usize,
    /// Shelves read again because their first look was doubtful.
    second_look: usize,
    reads: u64,
    finished: i64,
}

fn record(
    conn: &Connection,
    locations: &LocationService,
    id: i64,
    apply: Apply,
    threshold: f64,
    outcome: Outcome<'_>,
) -> Result<usize, SweepError> {
    let Outcome {
        findings,
        unread,
        summary,
        antennas_read,
        second_look,
        reads,
        finished: now,
    } = outcome;
    let mut applied = 0usize;
    let mut insert = conn.prepare_cached(
        "INSERT INTO sweep_findings (sweep_id, seq, status, archive_no, epc, bound, found, confidence, evidence, applied)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?;
    for (seq, f) in findings.iter().enumerate() {
        let mut row = finding_row(f);
        if apply == Apply::Sync {
            match f {
                Finding::Misplaced {
                    archive_no,
                    found,
                    confidence,
                    ..
                } if *confidence >= threshold => {
                    let provenance = Provenance {
                        actor: format!("sweep {id}"),
                        reason: format!(
                            "inventory sweep {id} found it on {found} ({:.0}% of its signal)",
                            confidence * 100.0
                        ),
                        source: Source::Sweep,
                        confidence: *confidence,
                    };
                    // Each re-binding in its own savepoint: one that fails (the box was
                    // deleted meanwhile) is reported unapplied, and the rest still go in.
                    conn.execute_batch("SAVEPOINT rebind")?;
                    match locations.bind_in(conn, archive_no, found, &provenance, now, false) {
                        Ok(_) => {
                            conn.execute_batch("RELEASE rebind")?;
                            row.applied = true;
                            applied += 1;
                        }
                        Err(e) => {
                            conn.execute_batch("ROLLBACK TO rebind; RELEASE rebind")?;
                            tracing::warn!(sweep = id, box = %archive_no, error = %e, "could not re-bind");
                        }
                    }
                }
                Finding::Present { archive_no, .. } => {
                    conn.prepare_cached(
                        "UPDATE bindings SET last_seen = ?2
                         WHERE box_id = (SELECT id FROM boxes WHERE archive_no = ?1)",
                    )?
                    .execute(params![archive_no, now])?;
                }
                _ => {}
            }
        }
        let evidence = serde_json::to_string(&row.evidence).unwrap_or_default();
        insert.execute(params![
            id,
            seq as i64,
            row.status,
            row.archive_no,
            row.epc,
            row.bound,
            row.found,
            row.confidence,
            evidence,
            row.applied as i64
        ])?;
    }
    let mut insert = conn.prepare_cached(
        "INSERT OR IGNORE INTO sweep_unread (sweep_id, shelf, reason, code, reader) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for (shelf, why) in unread {
        insert.execute(params![
            id,
            shelf.to_string(),
            why.reason,
            why.code,
            why.reader
        ])?;
    }
    conn.execute(
        "UPDATE sweeps SET state = 'done', finished_at = ?2, antennas_read = ?3, reads = ?4,
            present = ?5, misplaced = ?6, missing = ?7, not_read = ?8, unknown = ?9, applied = ?10,
            on_loan = ?11, returned_without_check_in = ?12, second_look = ?13
         WHERE id = ?1",
        params![
            id,
            now,
            antennas_read as i64,
            reads as i64,
            summary.present as i64,
            summary.misplaced as i64,
            summary.missing as i64,
            summary.not_read as i64,
            summary.unknown as i64,
            applied as i64,
            summary.on_loan as i64,
            summary.returned_without_check_in as i64,
            second_look as i64
        ],
    )?;
    Ok(applied)
}

fn finding_row(f: &Finding) -> FindingRow {
    let evidence = |e: &[(ShelfAddress, super::pipeline::Evidence)]| {
        e.iter()
            .map(|(s, e)| EvidenceRow {
                shelf: s.to_string(),
                reads: e.reads,
                max_rssi_dbm: e.max_rssi_dbm,
                power_mw: e.power_mw,
            })
            .collect()
    };
    let row = |status: &str, archive_no: Option<&String>, epc: &str| FindingRow {
        status: status.into(),
        archive_no: archive_no.cloned(),
        title: None,
        epc: epc.into(),
        bound: None,
        found: None,
        confidence: None,
        evidence: Vec::new(),
        applied: false,
    };
    match f {
        Finding::Present {
            archive_no,
            epc,
            shelf,
            confidence,
        } => FindingRow {
            bound: Some(shelf.to_string()),
            found: Some(shelf.to_string()),
            confidence: Some(*confidence),
            ..row("present", Some(archive_no), epc)
        },
        Finding::Misplaced {
            archive_no,
            epc,
            bound,
            found,
            confidence,
            evidence: e,
        } => FindingRow {
            bound: bound.map(|b| b.to_string()),
            found: Some(found.to_string()),
            confidence: Some(*confidence),
            evidence: evidence(e),
            ..row("misplaced", Some(archive_no), epc)
        },
        Finding::Missing {
            archive_no,
            epc,
            bound,
        } => FindingRow {
            bound: Some(bound.to_string()),
            ..row("missing", Some(archive_no), epc)
        },
        Finding::NotRead {
            archive_no,
            epc,
            bound,
            heard_on,
            confidence,
        } => FindingRow {
            bound: Some(bound.to_string()),
            found: heard_on.map(|h| h.to_string()),
            confidence: *confidence,
            ..row("not_read", Some(archive_no), epc)
        },
        Finding::Unknown {
            epc,
            found,
            confidence,
        } => FindingRow {
            found: Some(found.to_string()),
            confidence: Some(*confidence),
            ..row("unknown", None, epc)
        },
        Finding::OnLoan {
            archive_no,
            epc,
            bound,
        } => FindingRow {
            bound: bound.map(|b| b.to_string()),
            ..row("on_loan", Some(archive_no), epc)
        },
        Finding::ReturnedWithoutCheckIn {
            archive_no,
            epc,
            bound,
            found,
            confidence,
        } => FindingRow {
            bound: bound.map(|b| b.to_string()),
            found: Some(found.to_string()),
            confidence: Some(*confidence),
            ..row("returned_without_check_in", Some(archive_no), epc)
        },
    }
}

/// A finished (or interrupted) sweep from its row.
fn load(conn: &Connection, id: i64) -> Result<Option<SweepView>, SweepError> {
    Ok(conn
        .prepare_cached(
            "SELECT trigger, scope, apply, state, started_at, finished_at, dwell_ms, antennas, antennas_read,
                reads, present, misplaced, missing, not_read, unknown, applied, note,
                on_loan, returned_without_check_in, second_look
             FROM sweeps WHERE id = ?1",
        )?
        .query_row([id], |r| {
            // A row this program cannot read is an error, never a guess (the whole room).
            let bad = |idx: usize, text: String, why: &str| {
                rusqlite::Error::FromSqlConversionFailure(
                    idx,
                    rusqlite::types::Type::Text,
                    format!("sweep {id}: '{text}' is no {why}").into(),
                )
            };
            let scope: String = r.get(1)?;
            let scope: Scope =
                serde_json::from_str(&scope).map_err(|_| bad(1, scope, "sweep scope"))?;
            let apply = match r.get::<_, String>(2)?.as_str() {
                "sync" => Apply::Sync,
                "report" => Apply::Report,
                other => return Err(bad(2, other.into(), "sweep apply mode")),
            };
            let state: SweepState = r.get(3)?;
            let antennas = r.get::<_, i64>(7)? as usize;
            let read = r.get::<_, i64>(8)? as usize;
            let finished: Option<i64> = r.get(5)?;
            let done = if finished.is_some() { antennas } else { read };
            Ok(SweepView {
                id,
                state,
                trigger: r.get(0)?,
                scope,
                apply,
                dwell_ms: r.get::<_, i64>(6)? as u64,
                progress: Progress {
                    antennas,
                    done,
                    read,
                    reads: r.get::<_, i64>(9)? as u64,
                    fraction: if antennas == 0 {
                        1.0
                    } else {
                        done as f64 / antennas as f64
                    },
                    readers: Vec::new(),
                    second_look: r.get::<_, i64>(19)? as usize,
                },
                started_at: wall(r.get(4)?),
                finished_at: finished.map(wall),
                summary: Summary {
                    present: r.get::<_, i64>(10)? as usize,
                    misplaced: r.get::<_, i64>(11)? as usize,
                    missing: r.get::<_, i64>(12)? as usize,
                    not_read: r.get::<_, i64>(13)? as usize,
                    unknown: r.get::<_, i64>(14)? as usize,
                    on_loan: r.get::<_, i64>(17)? as usize,
                    returned_without_check_in: r.get::<_, i64>(18)? as usize,
                },
                applied: r.get::<_, i64>(15)? as usize,
                note: r.get(16)?,
            })
        })
        .optional()?)
}

/// A report as CSV: one line per finding, then one per shelf not read.
/// A report as CSV for spreadsheet users: UTF-8 with a byte-order mark (so that a
/// spreadsheet reads the Chinese titles right), a row per finding with the box's title,
/// whether it is uncertain, the evidence in words, then the shelves not read.
pub fn report_csv(report: &Report) -> Result<String, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "status",
        "archive_no",
        "title",
        "epc",
        "bound",
        "found",
        "confidence",
        "uncertain",
        "applied",
        "evidence",
        "note",
    ])?;
    for f in &report.findings {
        let evidence: Vec<String> = f
            .evidence
            .iter()
            .map(|e| {
                format!(
                    "{} {} reads max {:.0} dBm",
                    e.shelf, e.reads, e.max_rssi_dbm
                )
            })
            .collect();
        let uncertain = f.confidence.is_some_and(|c| c < report.sync_confidence);
        w.write_record([
            f.status.as_str(),
            f.archive_no.as_deref().unwrap_or(""),
            f.title.as_deref().unwrap_or(""),
            &f.epc,
            f.bound.as_deref().unwrap_or(""),
            f.found.as_deref().unwrap_or(""),
            &f.confidence.map(|c| format!("{c:.3}")).unwrap_or_default(),
            if uncertain { "yes" } else { "" },
            if f.applied { "yes" } else { "" },
            &evidence.join("; "),
            "",
        ])?;
    }
    for u in &report.unread {
        w.write_record([
            "shelf_not_read",
            "",
            "",
            "",
            &u.shelf,
            "",
            "",
            "",
            "",
            "",
            &u.reason,
        ])?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| csv::Error::from(e.into_error()))?;
    Ok(format!("\u{feff}{}", String::from_utf8_lossy(&bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shelf(s: &str) -> ShelfAddress {
        s.parse().unwrap()
    }

    fn read(port: u16, epc: &str, rssi_dbm: f64, at_ms: u64) -> TagRead {
        TagRead {
            reader: "r".into(),
            port,
            epc: epc.into(),
            rssi_dbm,
            at_ms,
            frequency_khz: None,
            phase_deg: None,
            count: 1,
        }
    }

    #[test]
    fn boxes_heard_elsewhere_or_not_at_all_bring_their_shelves_a_second_look() {
        let shelves = [
            "R1-C1-L-S1-L1",
            "R1-C1-L-S1-L2",
            "R1-C1-L-S1-L3",
            "R1-C1-L-S1-L4",
        ];
        let mut pipeline = Pipeline::new(
            shelves
                .iter()
                .enumerate()
                .map(|(i, s)| ("r".to_string(), i as u16 + 1, shelf(s))),
            Settings::default(),
        );
        // A: at home. B: only a cross-read from the level above. C: heard nowhere.
        // D: on loan and not heard (no doubt: it is out). E: its shelf was not read.
        pipeline.push(&read(1, "A", -52.0, 0));
        pipeline.push(&read(3, "B", -60.0, 0));
        let bound: Vec<Bound> = [
            ("A", "R1-C1-L-S1-L1"),
            ("B", "R1-C1-L-S1-L2"),
            ("C", "R1-C1-L-S1-L1"),
            ("D", "R1-C1-L-S1-L4"),
            ("E", "R1-C2-L-S1-L1"),
        ]
        .iter()
        .map(|(epc, s)| Bound {
            archive_no: format!("box {epc}"),
            epc: epc.to_string(),
            shelf: shelf(s),
        })
        .collect();
        let read_shelves: HashSet<ShelfAddress> = shelves.iter().map(|s| shelf(s)).collect();
        let on_loan = HashSet::from(["D".to_string()]);
        let doubtful = doubtful_shelves(&bound, &read_shelves, &on_loan, &pipeline);
        let expected: HashSet<ShelfAddress> = ["R1-C1-L-S1-L1", "R1-C1-L-S1-L2", "R1-C1-L-S1-L3"]
            .iter()
            .map(|s| shelf(s))
            .collect();
        assert_eq!(doubtful, expected);
    }
}

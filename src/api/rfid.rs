//! Routes of the RFID side: inventory sweeps and their reports, readers and their
//! counters, live tag locations.

use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::Kind;
use super::{ApiJson, ApiPath, ApiQuery, ApiResult, AppState, Problem, Who};
use crate::rfid::Rfid;
use crate::rfid::live::{LiveTag, ReaderStats};
use crate::rfid::reader::Mode;
use crate::rfid::sweep::{self, Report, Sighting, SweepError, SweepRequest, SweepView};

/// The user agent of `stackroom sweep`, which records its sweeps as started from the CLI.
pub const CLI_AGENT: &str = "stackroom-cli";

fn rfid(s: &AppState) -> Result<&Rfid, Problem> {
    s.rfid.as_ref().ok_or_else(|| {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            Kind::NoReaders,
            "this controller runs without its readers",
        )
    })
}

impl From<SweepError> for Problem {
    fn from(e: SweepError) -> Problem {
        let detail = e.to_string();
        match e {
            SweepError::Scope(_) => Problem::invalid("scope", detail),
            SweepError::Dwell(_) => Problem::invalid("dwell_ms", detail),
            SweepError::Busy(id) => Problem {
                reason: Some("sweep_running"),
                ..Problem::new(StatusCode::CONFLICT, Kind::SweepRunning, detail).with("sweep", id)
            },
            SweepError::NotFound(id) => {
                Problem::new(StatusCode::NOT_FOUND, Kind::NoSuchSweep, detail).with("sweep", id)
            }
            SweepError::NotRunning { id, state } => {
                Problem::new(StatusCode::CONFLICT, Kind::SweepNotRunning, detail)
                    .with("sweep", id)
                    .with("state", state)
            }
            SweepError::Location(e) => e.into(),
        }
    }
}

/// Start an inventory sweep: `{"scope": {"range": 1} | {"room": true} | {"shelves": [...]},
/// "apply": "report" | "sync", "dwell_ms": 100}`. One sweep runs at a time.
#[utoipa::path(post, path = "/api/v1/sweeps", tag = "sweeps", request_body = SweepRequest,
    responses((status = 202, body = SweepView), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub(super) async fn start_sweep(
    State(s): State<AppState>,
    Who(who): Who,
    headers: HeaderMap,
    ApiJson(request): ApiJson<SweepRequest>,
) -> Result<Response, Problem> {
    if request.apply == crate::config::Apply::Sync && who.role < super::access::SYNC_ROLE {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            Kind::Forbidden,
            format!(
                "token '{}' is a {}; a sweep that re-binds boxes (apply: sync) needs archivist or above",
                who.name, who.role
            ),
        )
        .with("role", who.role)
        .with("need", crate::access::Role::Archivist));
    }
    let from_cli = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with(CLI_AGENT));
    // Who asked, as staff read it in the list of sweeps: the token's name.
    let trigger = format!("{}:{}", if from_cli { "cli" } else { "api" }, who.name);
    let view = rfid(&s)?.sweeps.start(request, &trigger).await?;
    let location = format!("/api/v1/sweeps/{}", view.id);
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        Json(view),
    )
        .into_response())
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub(super) struct ListQuery {
    /// At most this many (1 to 500, default 50), newest first.
    limit: Option<usize>,
}

#[derive(Serialize, ToSchema)]
pub(super) struct SweepList {
    items: Vec<SweepView>,
}

/// Recent sweeps, newest first (scheduled runs that were skipped included).
#[utoipa::path(get, path = "/api/v1/sweeps", tag = "sweeps", params(ListQuery),
    responses((status = 200, body = SweepList)))]
pub(super) async fn list_sweeps(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<SweepList> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(Problem::invalid("limit", "is 1 to 500"));
    }
    Ok(Json(SweepList {
        items: rfid(&s)?.sweeps.list(limit).await?,
    }))
}

/// A sweep: state, progress, summary.
#[utoipa::path(get, path = "/api/v1/sweeps/{id}", tag = "sweeps",
    params(("id" = i64, Path)),
    responses((status = 200, body = SweepView), (status = 404, body = Problem)))]
pub(super) async fn get_sweep(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<SweepView> {
    Ok(Json(rfid(&s)?.sweeps.get(id).await?))
}

/// Cancel a running sweep; nothing it read is kept as a verdict.
#[utoipa::path(delete, path = "/api/v1/sweeps/{id}", tag = "sweeps",
    params(("id" = i64, Path)),
    responses((status = 200, body = SweepView), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub(super) async fn cancel_sweep(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<SweepView> {
    Ok(Json(rfid(&s)?.sweeps.cancel(id).await?))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub(super) struct ReportQuery {
    /// `json` (default) or `csv`.
    format: Option<String>,
}

/// A sweep's findings (present, misplaced, missing, not_read, unknown, with the evidence)
/// and the shelves it could not read, as JSON or CSV.
#[utoipa::path(get, path = "/api/v1/sweeps/{id}/report", tag = "sweeps",
    params(("id" = i64, Path), ReportQuery),
    responses((status = 200, body = Report), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub(super) async fn sweep_report(
    State(s): State<AppState>,
    Who(who): Who,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(q): ApiQuery<ReportQuery>,
) -> Result<Response, Problem> {
    let csv = super::wants_csv(q.format.as_deref())?;
    let report = rfid(&s)?.sweeps.report(id).await?;
    if report.sweep.state == sweep::SweepState::Running {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            Kind::SweepRunning,
            format!("sweep {id} is still running; its report comes when it is done"),
        )
        .with("sweep", id));
    }
    if !csv {
        return Ok(Json(report).into_response());
    }
    let body = sweep::report_csv(&report).map_err(|e| {
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            Kind::Internal,
            e.to_string(),
        )
    })?;
    // Reports name customers' files: every export is watched.
    s.audit
        .record(
            crate::audit::NewEntry::new(
                &who.name,
                "export",
                format!("sweep {id} report (CSV)"),
                "200",
            )
            .detail(format!("{} findings", report.findings.len())),
        )
        .await;
    Ok(super::file_response(
        body.into_bytes(),
        super::CSV,
        "attachment",
        &format!("sweep-{id}.csv"),
    ))
}

/// A reader with its counters.
#[derive(Serialize, ToSchema)]
pub(super) struct ReaderView {
    id: String,
    /// `commanded` (read port by port) or `autonomous` (cycles on its own, listened to).
    mode: &'static str,
    /// Reads the driver received.
    reads: u64,
    /// Frames (or events) that were corrupt or partial and skipped.
    corrupt_frames: u64,
    /// Requests that failed (reader silent, refused, line not open).
    failures: u64,
    /// What the live pipeline counted: reads, reads per second, dropped, per antenna.
    live: ReaderStats,
}

#[derive(Serialize, ToSchema)]
pub(super) struct ReaderList {
    items: Vec<ReaderView>,
}

/// The readers and their counters, per reader and antenna.
#[utoipa::path(get, path = "/api/v1/readers", tag = "sweeps",
    responses((status = 200, body = ReaderList)))]
pub(super) async fn list_readers(State(s): State<AppState>) -> ApiResult<ReaderList> {
    let rfid = rfid(&s)?;
    let items = rfid
        .readers()
        .values()
        .map(|h| ReaderView {
            id: h.id.clone(),
            mode: match h.mode {
                Mode::Commanded => "commanded",
                Mode::Autonomous { .. } => "autonomous",
            },
            reads: h.counters.reads.load(Ordering::Relaxed),
            corrupt_frames: h.counters.corrupt_frames.load(Ordering::Relaxed),
            failures: h.counters.failures.load(Ordering::Relaxed),
            live: rfid.live.stats(&h.id),
        })
        .collect();
    Ok(Json(ReaderList { items }))
}

/// Where the live reads place a tag, and whose it is.
#[derive(Serialize, ToSchema)]
pub(super) struct TagView {
    #[serde(flatten)]
    tag: LiveTag,
    /// The box that carries the tag; none: an unknown tag.
    archive_no: Option<String>,
    /// The shelf the box is bound to.
    bound: Option<String>,
}

async fn tag_view(s: &AppState, tag: LiveTag) -> Result<TagView, Problem> {
    let found = s.locations.search(&tag.epc, 5).await?;
    let (archive_no, bound) = match found
        .into_iter()
        .find(|b| b.epc.as_deref() == Some(tag.epc.as_str()))
    {
        Some(b) => (Some(b.archive_no), b.location.map(|l| l.shelf.address)),
        None => (None, None),
    };
    Ok(TagView {
        tag,
        archive_no,
        bound,
    })
}

/// Where a tag was last placed by live reads.
#[utoipa::path(get, path = "/api/v1/tags/{epc}", tag = "sweeps",
    params(("epc" = String, Path)),
    responses((status = 200, body = TagView), (status = 404, body = Problem)))]
pub(super) async fn get_tag(
    State(s): State<AppState>,
    ApiPath(epc): ApiPath<String>,
) -> ApiResult<TagView> {
    let epc = epc.to_ascii_uppercase();
    let tag = rfid(&s)?.live.tag(&epc).ok_or_else(|| {
        Problem::new(
            StatusCode::NOT_FOUND,
            Kind::TagNotHeard,
            format!("tag {epc} has not been heard since the controller started"),
        )
        .with("epc", &epc)
    })?;
    Ok(Json(tag_view(&s, tag).await?))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub(super) struct TagQuery {
    /// Only tags that are no box's.
    unknown: Option<bool>,
    /// At most this many (1 to 1000, default 100), most recently heard first.
    limit: Option<usize>,
}

#[derive(Serialize, ToSchema)]
pub(super) struct TagList {
    items: Vec<TagView>,
}

/// Tags placed by live reads, most recently heard first; `?unknown=true`: only tags that
/// are no box's.
#[utoipa::path(get, path = "/api/v1/tags", tag = "sweeps", params(TagQuery),
    responses((status = 200, body = TagList)))]
pub(super) async fn list_tags(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<TagQuery>,
) -> ApiResult<TagList> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(Problem::invalid("limit", "is 1 to 1000"));
    }
    let live = &rfid(&s)?.live;
    let mut items = Vec::new();
    let pool = if q.unknown == Some(true) {
        live.tags(usize::MAX)
    } else {
        live.tags(limit)
    };
    for tag in pool {
        let view = tag_view(&s, tag).await?;
        if q.unknown != Some(true) || view.archive_no.is_none() {
            items.push(view);
        }
        if items.len() >= limit {
            break;
        }
    }
    Ok(Json(TagList { items }))
}

#[derive(Serialize, ToSchema)]
pub(super) struct BoxFindings {
    archive_no: String,
    items: Vec<Sighting>,
}

/// What stocktakes found amiss with a box (misplaced, missing, not read), newest first, at
/// most 50; when it was last seen where it belongs is its location's `last_seen`.
#[utoipa::path(get, path = "/api/v1/boxes/{archive_no}/findings", tag = "sweeps",
    params(("archive_no" = String, Path)),
    responses((status = 200, body = BoxFindings), (status = 404, body = Problem)))]
pub(super) async fn box_findings(
    State(s): State<AppState>,
    ApiPath(archive_no): ApiPath<String>,
) -> ApiResult<BoxFindings> {
    s.locations.get_box(&archive_no).await?;
    let items = rfid(&s)?.sweeps.findings_of(&archive_no).await?;
    Ok(Json(BoxFindings { archive_no, items }))
}

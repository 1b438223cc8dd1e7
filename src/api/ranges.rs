//! Routes of the shelving: range states, motions, operations, retrieve, the event stream.

use std::convert::Infallible;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::stream::{self, Stream, StreamExt};
use serde::Serialize;
use tokio_stream::wrappers::BroadcastStream;
use utoipa::ToSchema;

use super::Kind;
use super::{ApiPath, ApiResult, AppState, Problem, Who};
use crate::access::Identity;
use crate::environment::EnvEvent;
use crate::location::{BoxKey, Location};
use crate::shelving::controller::RangeView;
use crate::shelving::plan::Goal;
use crate::shelving::{Event, OperationView};

#[derive(Serialize, ToSchema)]
pub(super) struct RangeList {
    items: Vec<RangeView>,
}

/// The state of every range.
#[utoipa::path(get, path = "/api/v1/ranges", tag = "ranges",
    responses((status = 200, body = RangeList)))]
pub(super) async fn list_ranges(State(s): State<AppState>) -> ApiResult<RangeList> {
    Ok(Json(RangeList {
        items: s.shelving.ranges(),
    }))
}

/// The state of one range.
#[utoipa::path(get, path = "/api/v1/ranges/{range}", tag = "ranges",
    params(("range" = u16, Path)),
    responses((status = 200, body = RangeView), (status = 404, body = Problem)))]
pub(super) async fn get_range(
    State(s): State<AppState>,
    ApiPath(range): ApiPath<u16>,
) -> ApiResult<RangeView> {
    s.shelving
        .range(range)
        .map(Json)
        .ok_or_else(|| no_range(&s, range))
}

fn no_range(s: &AppState, range: u16) -> Problem {
    let known: Vec<String> = s
        .shelving
        .ranges()
        .iter()
        .map(|r| r.range.to_string())
        .collect();
    let detail = format!(
        "no motorized range {range} (ranges with a shelving controller: {})",
        known.join(", ")
    );
    Problem::new(StatusCode::NOT_FOUND, Kind::NoSuchRange, detail).with("range", range)
}

/// An operation that was started.
#[derive(Serialize, ToSchema)]
pub(super) struct Started {
    operation: String,
}

async fn motion(
    s: &AppState,
    who: &Identity,
    range: u16,
    kind: &'static str,
    goal: Goal,
) -> Result<(StatusCode, Json<Started>), Problem> {
    if s.shelving.range(range).is_none() {
        return Err(no_range(s, range));
    }
    let operation = s
        .shelving
        .motion(range, kind, goal, &who.name, false)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(Started { operation })))
}

/// Open an aisle; 409 with `reason` when an interlock forbids it.
#[utoipa::path(post, path = "/api/v1/ranges/{range}/aisles/{aisle}/open", tag = "ranges",
    params(("range" = u16, Path), ("aisle" = u16, Path)),
    responses((status = 202, body = Started), (status = 404, body = Problem),
        (status = 409, description = "refused: `reason` says why", body = Problem)))]
pub(super) async fn open_aisle(
    State(s): State<AppState>,
    Who(who): Who,
    ApiPath((range, aisle)): ApiPath<(u16, u16)>,
) -> Result<impl IntoResponse, Problem> {
    motion(&s, &who, range, "open", Goal::OpenAisle(aisle)).await
}

/// Close the range (pack the carriages).
#[utoipa::path(post, path = "/api/v1/ranges/{range}/close", tag = "ranges",
    params(("range" = u16, Path)),
    responses((status = 202, body = Started), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub(super) async fn close_range(
    State(s): State<AppState>,
    Who(who): Who,
    ApiPath(range): ApiPath<u16>,
) -> Result<impl IntoResponse, Problem> {
    motion(&s, &who, range, "close", Goal::Close).await
}

/// Ventilate: spread the carriages evenly for air (通风).
#[utoipa::path(post, path = "/api/v1/ranges/{range}/ventilate", tag = "ranges",
    params(("range" = u16, Path)),
    responses((status = 202, body = Started), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub(super) async fn ventilate_range(
    State(s): State<AppState>,
    Who(who): Who,
    ApiPath(range): ApiPath<u16>,
) -> Result<impl IntoResponse, Problem> {
    motion(&s, &who, range, "ventilate", Goal::Ventilate).await
}

async fn lock(
    s: &AppState,
    who: &Identity,
    range: u16,
    on: bool,
) -> Result<(StatusCode, Json<Started>), Problem> {
    let operation = s.shelving.lock(range, on, &who.name).await?;
    Ok((StatusCode::OK, Json(Started { operation })))
}

/// Lock the range: no motion until unlocked.
#[utoipa::path(post, path = "/api/v1/ranges/{range}/lock", tag = "ranges",
    params(("range" = u16, Path)),
    responses((status = 200, body = Started), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub(super) async fn lock_range(
    State(s): State<AppState>,
    Who(who): Who,
    ApiPath(range): ApiPath<u16>,
) -> Result<impl IntoResponse, Problem> {
    lock(&s, &who, range, true).await
}

/// Unlock the range.
#[utoipa::path(post, path = "/api/v1/ranges/{range}/unlock", tag = "ranges",
    params(("range" = u16, Path)),
    responses((status = 200, body = Started), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub(super) async fn unlock_range(
    State(s): State<AppState>,
    Who(who): Who,
    ApiPath(range): ApiPath<u16>,
) -> Result<impl IntoResponse, Problem> {
    lock(&s, &who, range, false).await
}

/// Stop at once; always accepted. Queued motions of the range are dropped.
#[utoipa::path(post, path = "/api/v1/ranges/{range}/stop", tag = "ranges",
    params(("range" = u16, Path)),
    responses((status = 200, body = Started), (status = 404, body = Problem)))]
pub(super) async fn stop_range(
    State(s): State<AppState>,
    Who(who): Who,
    ApiPath(range): ApiPath<u16>,
) -> Result<impl IntoResponse, Problem> {
    let operation = s.shelving.stop(range, &who.name).await?;
    Ok((StatusCode::OK, Json(Started { operation })))
}

/// One operation: `queued`, `moving`, `done`, `refused`, `failed` or `stopped`, and why.
#[utoipa::path(get, path = "/api/v1/operations/{id}", tag = "ranges",
    params(("id" = String, Path)),
    responses((status = 200, body = OperationView), (status = 404, body = Problem)))]
pub(super) async fn get_operation(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<OperationView> {
    s.shelving
        .operations
        .get(&id)
        .map(Json)
        .ok_or_else(|| Problem::not_found(format!("no operation '{id}'")))
}

#[derive(Serialize, ToSchema)]
pub(super) struct Retrieval {
    location: Location,
    operation: String,
}

/// Locate a box and open its aisle in one call.
#[utoipa::path(post, path = "/api/v1/boxes/{archive_no}/retrieve", tag = "ranges",
    params(("archive_no" = String, Path)),
    responses((status = 202, body = Retrieval), (status = 404, body = Problem),
        (status = 409, description = "the aisle cannot be opened now: `reason` says why", body = Problem)))]
pub(super) async fn retrieve_box(
    State(s): State<AppState>,
    Who(who): Who,
    ApiPath(archive_no): ApiPath<String>,
) -> Result<impl IntoResponse, Problem> {
    let location = s.locations.locate(BoxKey::ArchiveNo(archive_no)).await?;
    if let Some(loan) = &location.loan {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            Kind::OnLoan,
            format!(
                "box {} is on loan {} to {}, due {}; its home shelf is {}",
                location.archive_no, loan.id, loan.borrower, loan.due, location.shelf.words
            ),
        )
        .with("box", &location.archive_no)
        .with("loan", loan.id)
        .with("borrower", &loan.borrower)
        .with("due", loan.due));
    }
    if let Some(place) = &location.place {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            Kind::InPlace,
            format!(
                "box {} is in {} since {}; its home shelf is {}",
                location.archive_no,
                place.name,
                place.since.format("%Y-%m-%d"),
                location.shelf.words
            ),
        )
        .with("box", &location.archive_no)
        .with("place", &place.name)
        .with("since", place.since.format("%Y-%m-%d").to_string()));
    }
    if location.state == "lost" {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            Kind::BoxLost,
            format!(
                "box {} was lost on a loan; its home shelf is {}",
                location.archive_no, location.shelf.words
            ),
        )
        .with("box", &location.archive_no));
    }
    let (range, aisle) = (location.aisle.range, location.aisle.aisle);
    let operation = s
        .shelving
        .motion(range, "open", Goal::OpenAisle(aisle), &who.name, false)
        .await
        .map_err(|e| {
            let mut p = Problem::from(e);
            p.detail = format!("{} — the box is at {}", p.detail, location.shelf.words);
            p
        })?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Retrieval {
            location,
            operation,
        }),
    ))
}

fn sse(event: &Event) -> SseEvent {
    let name = match event {
        Event::Range(_) => "range",
        Event::Operation(_) => "operation",
    };
    SseEvent::default()
        .event(name)
        .json_data(event)
        .unwrap_or_else(|_| SseEvent::default().event("error"))
}

/// A ticket for one event stream.
#[derive(Serialize, ToSchema)]
pub(super) struct Ticket {
    /// Pass as `GET /api/v1/events?ticket=…`; valid once.
    ticket: String,
    /// It must be used within this many ms.
    expires_in_ms: u64,
}

/// A ticket that opens one event stream as this token, for a browser's EventSource (which
/// cannot send the Authorization header): used once, within 30 s.
#[utoipa::path(post, path = "/api/v1/events/ticket", tag = "ranges",
    responses((status = 201, body = Ticket)))]
pub(super) async fn ticket(State(s): State<AppState>, Who(who): Who) -> (StatusCode, Json<Ticket>) {
    (
        StatusCode::CREATED,
        Json(Ticket {
            ticket: s.access.ticket(&who),
            expires_in_ms: crate::access::TICKET_LIFETIME.as_millis() as u64,
        }),
    )
}

/// Server-sent events: every range state (first the current ones) and operation change;
/// environment alarms (`alarm`) and sensor changes (`sensor`).
#[utoipa::path(get, path = "/api/v1/events", tag = "ranges",
    responses((status = 200, description = "text/event-stream of `range`, `operation`, `alarm` and `sensor` events", content_type = "text/event-stream")))]
pub(super) async fn events(
    State(s): State<AppState>,
    who: Option<axum::Extension<Identity>>,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    // The stream ends when its token is revoked (here or by `stackroom token revoke`).
    let access = s.access.clone();
    let revoked = async move {
        let Some(axum::Extension(who)) = who else {
            return std::future::pending().await;
        };
        let mut check = tokio::time::interval(REVOCATION_CHECK);
        loop {
            check.tick().await;
            if let Ok(false) = access.is_live(&who.name).await {
                tracing::info!(token = %who.name, "event stream ended: its token was revoked");
                return;
            }
        }
    };
    let current: Vec<Result<SseEvent, Infallible>> = s
        .shelving
        .ranges()
        .into_iter()
        .map(|r| Ok(sse(&Event::Range(r))))
        .collect();
    let live = BroadcastStream::new(s.shelving.subscribe()).filter_map(|e| async move {
        match e {
            Ok(event) => Some(Ok(sse(&event))),
            // A slow reader missed some; it goes on with the next.
            Err(_) => None,
        }
    });
    let environment = BroadcastStream::new(s.environment.subscribe()).filter_map(|e| async move {
        let event = e.ok()?;
        let name = match &event {
            EnvEvent::Alarm(_) => "alarm",
            EnvEvent::Point(_) => "sensor",
        };
        Some(Ok(SseEvent::default()
            .event(name)
            .json_data(&event)
            .unwrap_or_else(|_| SseEvent::default().event("error"))))
    });
    let overdue = BroadcastStream::new(s.loans.subscribe_overdue()).filter_map(|e| async move {
        let loan = e.ok()?;
        Some(Ok(SseEvent::default()
            .event("loan_overdue")
            .json_data(&loan)
            .unwrap_or_else(|_| SseEvent::default().event("error"))))
    });
    Sse::new(
        stream::iter(current)
            .chain(stream::select(live, stream::select(environment, overdue)))
            .take_until(revoked),
    )
    .keep_alive(KeepAlive::default())
}

/// How often an open event stream checks that its token is still live.
const REVOCATION_CHECK: std::time::Duration = std::time::Duration::from_millis(250);

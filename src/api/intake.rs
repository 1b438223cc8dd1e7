//! Routes of intake (移交): transfer batches listed, received item by item, accepted; and
//! the next archive number of a series.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{ApiJson, ApiPath, ApiQuery, ApiResult, AppState, Problem, Who, csv_response};
use crate::intake::{Accepted, NewTransfer, Receipt, Transfer, TransferState};

/// List a transfer batch from a business office (archivist): its items by series, checked
/// as their boxes will be; due five working days after `completed_on`.
#[utoipa::path(post, path = "/api/v1/transfers", tag = "intake", request_body = NewTransfer,
    responses((status = 201, body = Transfer), (status = 422, body = Problem)))]
pub(super) async fn list_transfer(
    State(s): State<AppState>,
    Who(who): Who,
    ApiJson(t): ApiJson<NewTransfer>,
) -> Result<impl IntoResponse, Problem> {
    let t = s.intake.list(t, &who.name).await?;
    Ok((StatusCode::CREATED, Json(t)))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub(super) struct CsvBatch {
    office: String,
    deliverer: String,
    /// `YYYY-MM-DD`.
    completed_on: String,
    #[serde(default)]
    note: String,
}

/// List a transfer batch from its list as CSV (archivist): columns `series` (required),
/// `title`, `epc`, `barcode`, `width_mm`, and the boxes' fields by name; the batch's
/// particulars in the query.
#[utoipa::path(post, path = "/api/v1/transfers/csv", tag = "intake", params(CsvBatch),
    request_body(content = String, content_type = "text/csv"),
    responses((status = 201, body = Transfer), (status = 422, body = Problem)))]
pub(super) async fn list_transfer_csv(
    State(s): State<AppState>,
    Who(who): Who,
    ApiQuery(q): ApiQuery<CsvBatch>,
    body: Bytes,
) -> Result<impl IntoResponse, Problem> {
    let items = crate::intake::items_from_csv(&body)?;
    let t = NewTransfer {
        office: q.office,
        deliverer: q.deliverer,
        completed_on: q.completed_on,
        items,
        note: q.note,
    };
    // An item's problem names its line of the file (the header is line 1).
    let t = s.intake.list(t, &who.name).await.map_err(|e| {
        let mut p = Problem::from(e);
        if let Some(field) = p.field.clone()
            && let Some(rest) = field.strip_prefix("items[")
            && let Some((i, column)) = rest.split_once("].")
            && let Ok(i) = i.parse::<usize>()
        {
            p.detail = format!("line {}: {}", i + 2, p.detail);
            p.field = Some(column.to_string());
        }
        p
    })?;
    Ok((StatusCode::CREATED, Json(t)))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub(super) struct TransfersQuery {
    state: Option<TransferState>,
    /// Only batches not received by their deadline.
    overdue: Option<bool>,
    /// At most this many (1 to 500, default 100).
    limit: Option<usize>,
    /// Skip this many first.
    offset: Option<usize>,
    /// `json` (default) or `csv`: one row per item.
    format: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(super) struct TransferList {
    items: Vec<Transfer>,
    total: usize,
}

/// Transfer batches, newest first (at most the 500 newest); `format=csv`: one row per item.
#[utoipa::path(get, path = "/api/v1/transfers", tag = "intake", params(TransfersQuery),
    responses((status = 200, body = TransferList)))]
pub(super) async fn transfers(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<TransfersQuery>,
) -> Result<Response, Problem> {
    let csv = super::wants_csv(q.format.as_deref())?;
    let all = s.intake.all(q.state, q.overdue.unwrap_or(false)).await?;
    let total = all.len();
    let items: Vec<Transfer> = all
        .into_iter()
        .skip(q.offset.unwrap_or(0))
        .take(q.limit.unwrap_or(100).clamp(1, 500))
        .collect();
    if !csv {
        return Ok(Json(TransferList { items, total }).into_response());
    }
    let mut rows = vec![
        [
            "transfer",
            "office",
            "deliverer",
            "completed_on",
            "deadline",
            "state",
            "overdue",
            "receiver",
            "line",
            "series",
            "title",
            "extra",
            "found",
            "note",
            "archive_no",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for t in &items {
        for i in &t.items {
            rows.push(vec![
                t.id.to_string(),
                t.office.clone(),
                t.deliverer.clone(),
                t.completed_on.clone(),
                t.deadline.clone(),
                t.state.as_str().to_string(),
                t.overdue.to_string(),
                t.receiver.clone().unwrap_or_default(),
                i.line.to_string(),
                i.series.clone(),
                i.title.clone(),
                i.extra.to_string(),
                i.found.map(|f| f.as_str().to_string()).unwrap_or_default(),
                i.note.clone(),
                i.archive_no.clone().unwrap_or_default(),
            ]);
        }
    }
    csv_response(&rows, "transfers.csv")
}

/// One batch with its items and what was found of them.
#[utoipa::path(get, path = "/api/v1/transfers/{id}", tag = "intake", params(("id" = i64, Path)),
    responses((status = 200, body = Transfer), (status = 404, body = Problem)))]
pub(super) async fn get_transfer(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Transfer> {
    Ok(Json(s.intake.get(id).await?))
}

/// Record the check of a listed batch (archivist): every listed line once (`received`,
/// `missing`, `damaged`, with a note), and the items that came unlisted (`extra`).
#[utoipa::path(post, path = "/api/v1/transfers/{id}/receive", tag = "intake",
    params(("id" = i64, Path)), request_body = Receipt,
    responses((status = 200, body = Transfer), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
pub(super) async fn receive_transfer(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(r): ApiJson<Receipt>,
) -> ApiResult<Transfer> {
    Ok(Json(s.intake.receive(id, r).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Acceptance {
    /// Put each box on the shelf the suggestion ranks first (default true).
    place: Option<bool>,
}

#[derive(Serialize, ToSchema)]
pub(super) struct AcceptedBatch {
    transfer: Transfer,
    boxes: Vec<Accepted>,
}

/// Accept a received batch (archivist): every item that came is registered under the next
/// number of its series and put on a suggested shelf, all in one transaction.
#[utoipa::path(post, path = "/api/v1/transfers/{id}/accept", tag = "intake",
    params(("id" = i64, Path)), request_body = Acceptance,
    responses((status = 200, body = AcceptedBatch), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
pub(super) async fn accept_transfer(
    State(s): State<AppState>,
    Who(who): Who,
    ApiPath(id): ApiPath<i64>,
    ApiJson(a): ApiJson<Acceptance>,
) -> ApiResult<AcceptedBatch> {
    let (transfer, boxes) = s
        .intake
        .accept(id, a.place.unwrap_or(true), &who.name)
        .await?;
    Ok(Json(AcceptedBatch { transfer, boxes }))
}

#[derive(Serialize, ToSchema)]
pub(super) struct NextNumber {
    series: String,
    next: String,
}

/// The archive number the next box of a series would be given (nothing is taken: a number
/// is taken only by registering its box, `POST /api/v1/boxes` with `series`).
#[utoipa::path(get, path = "/api/v1/series/{series}/next", tag = "intake",
    params(("series" = String, Path)),
    responses((status = 200, body = NextNumber), (status = 422, body = Problem)))]
pub(super) async fn next_number(
    State(s): State<AppState>,
    ApiPath(series): ApiPath<String>,
) -> ApiResult<NextNumber> {
    let next = s.locations.next_number(&series).await?;
    Ok(Json(NextNumber { series, next }))
}

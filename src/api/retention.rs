//! Routes of retention and disposal: the appraisal list, and a disposal's steps (proposed by
//! an archivist, decided by an approver who is not the proposer, carried out, certified).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::records::pdf_response;
use super::{ApiJson, ApiPath, ApiQuery, ApiResult, AppState, Problem, Who, csv_response};
use crate::config::records::parse_date;
use crate::retention::{Appraisal, Disposal, DisposalState};

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub(super) struct AppraisalQuery {
    /// Due on or before this day (`YYYY-MM-DD`; default today).
    as_of: Option<String>,
    /// At most this many (1 to 5,000; default 200).
    limit: Option<usize>,
    /// `json` (default) or `csv`.
    format: Option<String>,
}

/// The appraisal list (鉴定): boxes whose retention period has ended, not destroyed nor in
/// an open disposal, by due day.
#[utoipa::path(get, path = "/api/v1/appraisal", tag = "retention", params(AppraisalQuery),
    responses((status = 200, body = Appraisal), (status = 422, body = Problem)))]
pub(super) async fn appraisal(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<AppraisalQuery>,
) -> Result<Response, Problem> {
    let as_of =
        match q.as_of.as_deref() {
            Some(t) => Some(parse_date(t).ok_or_else(|| {
                Problem::invalid("as_of", format!("'{t}' is not a day: YYYY-MM-DD"))
            })?),
            None => None,
        };
    let csv = super::wants_csv(q.format.as_deref())?;
    let list = s.retention.appraisal(as_of, q.limit.unwrap_or(200)).await?;
    if !csv {
        return Ok(Json(list).into_response());
    }
    let mut rows = vec![
        [
            "archive_no",
            "title",
            "class",
            "class_name",
            "from",
            "due",
            "shelf",
        ]
        .map(String::from)
        .to_vec(),
    ];
    rows.extend(list.items.into_iter().map(|b| {
        vec![
            b.archive_no,
            b.title,
            b.class,
            b.class_name,
            b.from.unwrap_or_default(),
            b.due,
            b.shelf.unwrap_or_default(),
        ]
    }));
    csv_response(&rows, &format!("appraisal-{}.csv", list.as_of))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Proposal {
    /// Archive numbers of boxes that are due.
    boxes: Vec<String>,
    reason: String,
}

/// Propose the disposal of boxes that are due (archivist): all listed or none; 409
/// `not-due`, `on-loan` or `in-disposal` naming the box.
#[utoipa::path(post, path = "/api/v1/disposals", tag = "retention", request_body = Proposal,
    responses((status = 201, body = Disposal), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
pub(super) async fn propose_disposal(
    State(s): State<AppState>,
    Who(who): Who,
    ApiJson(p): ApiJson<Proposal>,
) -> Result<impl IntoResponse, Problem> {
    let d = s.retention.propose(p.boxes, &p.reason, &who.name).await?;
    Ok((StatusCode::CREATED, Json(d)))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub(super) struct DisposalsQuery {
    /// Only disposals in this state.
    state: Option<DisposalState>,
}

#[derive(Serialize, ToSchema)]
pub(super) struct DisposalList {
    items: Vec<Disposal>,
}

/// Disposals, newest first (at most 500).
#[utoipa::path(get, path = "/api/v1/disposals", tag = "retention", params(DisposalsQuery),
    responses((status = 200, body = DisposalList)))]
pub(super) async fn list_disposals(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<DisposalsQuery>,
) -> ApiResult<DisposalList> {
    Ok(Json(DisposalList {
        items: s.retention.list(q.state).await?,
    }))
}

/// One disposal with its boxes.
#[utoipa::path(get, path = "/api/v1/disposals/{id}", tag = "retention",
    params(("id" = i64, Path)),
    responses((status = 200, body = Disposal), (status = 404, body = Problem)))]
pub(super) async fn get_disposal(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Disposal> {
    Ok(Json(s.retention.get(id).await?))
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct Decision {
    #[serde(default)]
    note: String,
}

/// Approve a proposed disposal (approver; not the person who proposed it: 409 `four-eyes`).
#[utoipa::path(post, path = "/api/v1/disposals/{id}/approve", tag = "retention",
    params(("id" = i64, Path)), request_body = Decision,
    responses((status = 200, body = Disposal), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub(super) async fn approve_disposal(
    State(s): State<AppState>,
    Who(who): Who,
    ApiPath(id): ApiPath<i64>,
    ApiJson(d): ApiJson<Decision>,
) -> ApiResult<Disposal> {
    Ok(Json(
        s.retention.decide(id, true, &d.note, &who.name).await?,
    ))
}

/// Reject a proposed disposal (approver; not the proposer); its boxes are due again.
#[utoipa::path(post, path = "/api/v1/disposals/{id}/reject", tag = "retention",
    params(("id" = i64, Path)), request_body = Decision,
    responses((status = 200, body = Disposal), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub(super) async fn reject_disposal(
    State(s): State<AppState>,
    Who(who): Who,
    ApiPath(id): ApiPath<i64>,
    ApiJson(d): ApiJson<Decision>,
) -> ApiResult<Disposal> {
    Ok(Json(
        s.retention.decide(id, false, &d.note, &who.name).await?,
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CarryOut {
    /// How the boxes were destroyed (e.g. 粉碎 shredded).
    method: String,
    /// Who witnessed it (监销人).
    witness: String,
}

/// Record that an approved disposal was carried out: its boxes leave their shelves and
/// every search, their records and histories stay (archivist).
#[utoipa::path(post, path = "/api/v1/disposals/{id}/carry-out", tag = "retention",
    params(("id" = i64, Path)), request_body = CarryOut,
    responses((status = 200, body = Disposal), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
pub(super) async fn carry_out_disposal(
    State(s): State<AppState>,
    Who(who): Who,
    ApiPath(id): ApiPath<i64>,
    ApiJson(c): ApiJson<CarryOut>,
) -> ApiResult<Disposal> {
    Ok(Json(
        s.retention
            .carry_out(id, &c.method, &c.witness, &who.name)
            .await?,
    ))
}

/// The disposal certificate (销毁清册) as PDF: the boxes, reason, approvals, method,
/// witness and signature lines. Only once carried out (409 before).
#[utoipa::path(get, path = "/api/v1/disposals/{id}/certificate", tag = "retention",
    params(("id" = i64, Path)),
    responses((status = 200, content_type = "application/pdf", body = Vec<u8>),
        (status = 404, body = Problem), (status = 409, body = Problem)))]
pub(super) async fn disposal_certificate(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Response, Problem> {
    let d = s.retention.get(id).await?;
    let form = s.retention.certificate(&d)?;
    Ok(pdf_response(form.pdf(), &format!("disposal-{id}.pdf")))
}

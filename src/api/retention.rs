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
use crate::holdings::{BoxState, RegisterFilter, Stats};
use crate::retention::{Appraisal, Disposal, DisposalState};

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub(super) struct AppraisalQuery {
    /// Due on or before this day (`YYYY-MM-DD`; default today).
    as_of: Option<String>,
    /// At most this many (1 to 5,000; default 200).
    limit: Option<usize>,
    /// Skip this many first.
    offset: Option<usize>,
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
    let list = s
        .retention
        .appraisal(as_of, q.offset.unwrap_or(0), q.limit.unwrap_or(200))
        .await?;
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
    /// At most this many (1 to 500, default 100).
    limit: Option<usize>,
    /// Skip this many first.
    offset: Option<usize>,
    /// `json` (default) or `csv`: one row per box.
    format: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(super) struct DisposalList {
    items: Vec<Disposal>,
    total: usize,
}

/// Disposals, newest first (at most the 500 newest); `format=csv`: one row per box.
#[utoipa::path(get, path = "/api/v1/disposals", tag = "retention", params(DisposalsQuery),
    responses((status = 200, body = DisposalList)))]
pub(super) async fn list_disposals(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<DisposalsQuery>,
) -> Result<Response, Problem> {
    let csv = super::wants_csv(q.format.as_deref())?;
    let all = s.retention.list(q.state).await?;
    let total = all.len();
    let items: Vec<Disposal> = all
        .into_iter()
        .skip(q.offset.unwrap_or(0))
        .take(q.limit.unwrap_or(100).clamp(1, 500))
        .collect();
    if !csv {
        return Ok(Json(DisposalList { items, total }).into_response());
    }
    let day =
        |t: Option<chrono::DateTime<chrono::Utc>>| t.map(|t| t.to_rfc3339()).unwrap_or_default();
    let mut rows = vec![
        [
            "disposal",
            "state",
            "reason",
            "proposed_by",
            "proposed_at",
            "decided_by",
            "decided_at",
            "carried_out_at",
            "method",
            "witness",
            "archive_no",
            "title",
            "class",
            "due",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for d in &items {
        for b in &d.boxes {
            rows.push(vec![
                d.id.to_string(),
                d.state.as_str().to_string(),
                d.reason.clone(),
                d.proposed_by.clone(),
                d.proposed_at.to_rfc3339(),
                d.decided_by.clone().unwrap_or_default(),
                day(d.decided_at),
                day(d.carried_out_at),
                d.method.clone().unwrap_or_default(),
                d.witness.clone().unwrap_or_default(),
                b.archive_no.clone(),
                b.title.clone(),
                b.class.clone(),
                b.due.clone(),
            ]);
        }
    }
    csv_response(&rows, "disposals.csv")
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

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub(super) struct RegisterQuery {
    /// `csv` (default) or `xlsx`.
    format: Option<String>,
    /// The archive number's part `category` (e.g. `H`).
    category: Option<String>,
    /// A series (e.g. `0451-H-001`).
    series: Option<String>,
    range: Option<u16>,
    /// `on_shelf`, `on_loan`, `not_on_shelf`, `left_without_loan` or `disposed`; default
    /// every box not destroyed.
    state: Option<BoxState>,
}

/// The register of the holdings (档案清册): one row a box in archive-number order, with
/// its state, shelf, retention and every declared field; CSV (UTF-8 with a BOM) or XLSX.
/// Every export is in the audit trail (archivist).
#[utoipa::path(get, path = "/api/v1/register", tag = "retention", params(RegisterQuery),
    responses((status = 200, content_type = "text/csv", body = String),
        (status = 422, body = Problem)))]
pub(super) async fn register(
    State(s): State<AppState>,
    Who(who): Who,
    ApiQuery(q): ApiQuery<RegisterQuery>,
) -> Result<Response, Problem> {
    let filter = RegisterFilter {
        category: q.category,
        series: q.series,
        range: q.range,
        state: q.state,
    };
    let described = format!("{filter:?}");
    let (bytes, rows, kind, ext) = match q.format.as_deref() {
        None | Some("csv") => {
            let (b, n) = s.holdings.csv(filter).await?;
            (b, n, super::CSV, "csv")
        }
        Some("xlsx") => {
            let (b, n) = s.holdings.xlsx(filter).await?;
            (
                b,
                n,
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                "xlsx",
            )
        }
        Some(other) => {
            return Err(Problem::invalid(
                "format",
                format!("'{other}' is not a format: csv or xlsx"),
            ));
        }
    };
    s.audit
        .record(
            crate::audit::NewEntry::new(
                &who.name,
                "export",
                format!("register as {ext}"),
                format!("{rows} rows"),
            )
            .detail(described),
        )
        .await;
    Ok(super::file_response(
        bytes,
        kind,
        "attachment",
        &format!("register.{ext}"),
    ))
}

/// The figures of the archive: holdings by category and year, shelf fill by range, loans
/// by month and kind, overdue loans, stocktakes by month, disposals by month, and the
/// warnings (红黄绿灯), red first.
#[utoipa::path(get, path = "/api/v1/stats", tag = "retention",
    responses((status = 200, body = Stats)))]
pub(super) async fn stats(State(s): State<AppState>) -> ApiResult<Stats> {
    Ok(Json(
        s.holdings.stats(chrono::Utc::now().date_naive()).await?,
    ))
}

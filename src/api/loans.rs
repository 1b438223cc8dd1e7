//! Routes of circulation: loan requests, approval, checkout, inspected returns.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::Kind;
use super::{ApiJson, ApiPath, ApiQuery, ApiResult, AppState, Problem, Who};
use crate::loans::{Action, Inspection, LoanError, LoanFilter, LoanView, NewLoan, Settlement};
use crate::location::Provenance;
use crate::store::text::Named;

impl From<LoanError> for Problem {
    fn from(e: LoanError) -> Problem {
        use LoanError as E;
        let detail = e.to_string();
        let problem = |status, kind| Problem::new(status, kind, detail.clone());
        match e {
            E::NoLoan(id) => problem(StatusCode::NOT_FOUND, Kind::NotFound).with("loan", id),
            E::UnknownBox(b) => problem(StatusCode::NOT_FOUND, Kind::UnknownBox).with("box", b),
            E::Invalid { field, unfit } => Problem {
                params: match serde_json::to_value(unfit) {
                    Ok(serde_json::Value::Object(params)) => params,
                    _ => serde_json::Map::new(),
                },
                ..Problem::invalid(field, detail)
            },
            E::WrongState { id, state, .. } => problem(StatusCode::CONFLICT, Kind::LoanState)
                .with("loan", id)
                .with("state", state),
            E::Forbidden { role, need, .. } => problem(StatusCode::FORBIDDEN, Kind::Forbidden)
                .with("role", role)
                .with("need", need),
            E::FourEyes { id, who } => Problem {
                reason: Some("four_eyes"),
                ..problem(StatusCode::FORBIDDEN, Kind::Forbidden)
                    .with("loan", id)
                    .with("who", who)
            },
            E::BoxTaken {
                archive_no,
                loan,
                state,
            } => problem(StatusCode::CONFLICT, Kind::BoxOnLoan)
                .with("box", archive_no)
                .with("loan", loan)
                .with("state", state),
            E::Limit {
                borrower,
                would,
                max,
            } => problem(StatusCode::CONFLICT, Kind::BorrowerLimit)
                .with("borrower", borrower)
                .with("would", would)
                .with("max", max),
            E::Store(e) => Problem::from(e),
        }
    }
}

/// Ask for a loan; a kind that needs no approval is approved at once.
#[utoipa::path(post, path = "/api/v1/loans", tag = "loans", request_body = NewLoan,
    responses((status = 201, body = LoanView), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub(super) async fn request_loan(
    State(s): State<AppState>,
    Who(who): Who,
    ApiJson(new): ApiJson<NewLoan>,
) -> Result<impl IntoResponse, Problem> {
    let loan = s.loans.request(new, &who).await?;
    Ok((StatusCode::CREATED, Json(loan)))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub(super) struct LoanQuery {
    /// `requested`, `approved`, `rejected`, `checked_out`, `returned`, `return_refused`, `cancelled`.
    state: Option<String>,
    /// The borrower's name, or a part of it (any case).
    borrower: Option<String>,
    /// Loans that hold or held this box (its archive number).
    #[serde(rename = "box")]
    archive_no: Option<String>,
    /// Only loans out past their due day.
    overdue: Option<bool>,
    limit: Option<usize>,
}

#[derive(Serialize, ToSchema)]
pub(super) struct LoanList {
    items: Vec<LoanView>,
}

/// Loans, newest first.
#[utoipa::path(get, path = "/api/v1/loans", tag = "loans", params(LoanQuery),
    responses((status = 200, body = LoanList), (status = 422, body = Problem)))]
pub(super) async fn list_loans(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<LoanQuery>,
) -> ApiResult<LoanList> {
    let state = q
        .state
        .as_deref()
        .map(str::parse::<crate::loans::LoanState>)
        .transpose()
        .map_err(|e| Problem::invalid("state", e))?;
    let items = s
        .loans
        .list(LoanFilter {
            state,
            borrower: q.borrower,
            archive_no: q.archive_no,
            overdue: q.overdue.unwrap_or(false),
            limit: q.limit.unwrap_or(100),
        })
        .await?;
    Ok(Json(LoanList { items }))
}

/// One loan with its boxes and every transition.
#[utoipa::path(get, path = "/api/v1/loans/{id}", tag = "loans", params(("id" = i64, Path)),
    responses((status = 200, body = LoanView), (status = 404, body = Problem)))]
pub(super) async fn get_loan(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<LoanView> {
    Ok(Json(s.loans.get(id).await?))
}

/// The loan slip (借阅单) as PDF: borrower, purpose, boxes with their titles, every step
/// with who took it, and signature lines.
#[utoipa::path(get, path = "/api/v1/loans/{id}/slip", tag = "loans", params(("id" = i64, Path)),
    responses((status = 200, content_type = "application/pdf", body = Vec<u8>),
        (status = 404, body = Problem)))]
pub(super) async fn loan_slip(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<axum::response::Response, Problem> {
    let loan = s.loans.get(id).await?;
    let mut titles = std::collections::HashMap::new();
    for b in &loan.boxes {
        let view = s.locations.get_box(&b.archive_no).await?;
        titles.insert(b.archive_no.clone(), view.title);
    }
    let config = s.locations.config();
    let form = crate::documents::loan_slip(
        &loan,
        &titles,
        &format!(
            "{} · {}",
            config.site_name.in_language(config.language),
            config.room_name.in_language(config.language)
        ),
    );
    Ok(super::records::pdf_response(
        form.pdf(),
        &format!("loan-{id}.pdf"),
    ))
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct Note {
    #[serde(default)]
    note: String,
}

async fn act(
    s: &AppState,
    who: &crate::access::Identity,
    id: i64,
    action: Action,
    note: &str,
) -> ApiResult<LoanView> {
    if note.len() > 2000 {
        return Err(Problem::invalid("note", "at most 2,000 characters"));
    }
    Ok(Json(s.loans.act(id, action, who, note).await?))
}

/// Approve a requested loan (the role its kind's rule names, `loans.*.approval`).
#[utoipa::path(post, path = "/api/v1/loans/{id}/approve", tag = "loans", params(("id" = i64, Path)), request_body = Note,
    responses((status = 200, body = LoanView), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub(super) async fn approve_loan(
    State(s): State<AppState>,
    Who(who): Who,
    ApiPath(id): ApiPath<i64>,
    ApiJson(n): ApiJson<Note>,
) -> ApiResult<LoanView> {
    act(&s, &who, id, Action::Approve, &n.note).await
}

/// Reject a requested loan (the same role as approving it).
#[utoipa::path(post, path = "/api/v1/loans/{id}/reject", tag = "loans", params(("id" = i64, Path)), request_body = Note,
    responses((status = 200, body = LoanView), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub(super) async fn reject_loan(
    State(s): State<AppState>,
    Who(who): Who,
    ApiPath(id): ApiPath<i64>,
    ApiJson(n): ApiJson<Note>,
) -> ApiResult<LoanView> {
    act(&s, &who, id, Action::Reject, &n.note).await
}

/// Cancel a loan before its checkout.
#[utoipa::path(post, path = "/api/v1/loans/{id}/cancel", tag = "loans", params(("id" = i64, Path)), request_body = Note,
    responses((status = 200, body = LoanView), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub(super) async fn cancel_loan(
    State(s): State<AppState>,
    Who(who): Who,
    ApiPath(id): ApiPath<i64>,
    ApiJson(n): ApiJson<Note>,
) -> ApiResult<LoanView> {
    act(&s, &who, id, Action::Cancel, &n.note).await
}

/// Hand the boxes of an approved loan out: each is on loan from now.
#[utoipa::path(post, path = "/api/v1/loans/{id}/checkout", tag = "loans", params(("id" = i64, Path)), request_body = Note,
    responses((status = 200, body = LoanView), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub(super) async fn checkout_loan(
    State(s): State<AppState>,
    Who(who): Who,
    ApiPath(id): ApiPath<i64>,
    ApiJson(n): ApiJson<Note>,
) -> ApiResult<LoanView> {
    act(&s, &who, id, Action::Checkout, &n.note).await
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Return {
    inspections: Vec<Inspection>,
}

/// Take boxes back, each inspected: `complete` boxes are back on their home shelves; a
/// box `damaged`, with `pages_missing` or the `wrong_box` keeps the loan open
/// (`return_refused`) until a later inspection accepts it.
#[utoipa::path(post, path = "/api/v1/loans/{id}/return", tag = "loans", params(("id" = i64, Path)), request_body = Return,
    responses((status = 200, body = LoanView), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub(super) async fn return_loan(
    State(s): State<AppState>,
    Who(who): Who,
    ApiPath(id): ApiPath<i64>,
    ApiJson(r): ApiJson<Return>,
) -> ApiResult<LoanView> {
    Ok(Json(s.loans.give_back(id, r.inspections, &who).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Extend {
    /// The new due day: later than the loan's, within its kind's longest loan from today.
    due: chrono::NaiveDate,
    #[serde(default)]
    note: String,
}

/// Extend a checked-out loan to a later due day (the loans desk); the change is in the
/// loan's history.
#[utoipa::path(post, path = "/api/v1/loans/{id}/extend", tag = "loans", params(("id" = i64, Path)), request_body = Extend,
    responses((status = 200, body = LoanView), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub(super) async fn extend_loan(
    State(s): State<AppState>,
    Who(who): Who,
    ApiPath(id): ApiPath<i64>,
    ApiJson(r): ApiJson<Extend>,
) -> ApiResult<LoanView> {
    Ok(Json(s.loans.extend(id, r.due, r.note, &who).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Settle {
    archive_no: String,
    settlement: Settlement,
    /// Why, for the loan's history (1 to 2,000 characters).
    note: String,
}

/// Settle a box whose return was refused (archivist): `accepted` puts it back on its home
/// shelf, `repair` into the room's place of kind `repair`, `lost` flags it lost. The loan
/// is `returned` once no box is left unsettled.
#[utoipa::path(post, path = "/api/v1/loans/{id}/settle", tag = "loans", params(("id" = i64, Path)), request_body = Settle,
    responses((status = 200, body = LoanView), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub(super) async fn settle_loan(
    State(s): State<AppState>,
    Who(who): Who,
    ApiPath(id): ApiPath<i64>,
    ApiJson(r): ApiJson<Settle>,
) -> ApiResult<LoanView> {
    let provenance = Provenance::manual(
        &who.name,
        &format!("loan {id}: {}; {}", r.settlement.name(), r.note.trim()),
    );
    let consequence = s.locations.settled(r.settlement, provenance)?;
    Ok(Json(
        s.loans
            .settle(id, r.archive_no, r.settlement, r.note, &who, consequence)
            .await?,
    ))
}

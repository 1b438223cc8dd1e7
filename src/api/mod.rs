//! The HTTP API (axum): JSON in and out, errors as `application/problem+json`.
//!
//! Every route is declared with `#[utoipa::path]` and registered through utoipa-axum's
//! `OpenApiRouter`, so the router and `GET /api/v1/openapi.json` come from the same code
//! and cannot drift apart.

mod access;
mod admin;
mod environment;
mod intake;
mod labels;
mod loans;
mod problem;
mod ranges;
mod records;
mod retention;
mod rfid;
mod room;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::location::{
    BoxKey, BoxView, FieldQuery, Found, History, ImportSummary, Location, LocationService, Move,
    Narrow, NewBox, OnShelf, Page, Provenance, ShelfFill, Suggestion,
};
use crate::lookups::What;
use crate::shelving::Shelving;
pub use access::{Failures, ON_BEHALF, Who};
pub use problem::{Kind, Problem, ProblemInfo};
pub use rfid::CLI_AGENT;

/// The largest CSV body `POST /api/v1/import/boxes` takes.
pub const IMPORT_BODY_LIMIT: usize = 64 * 1024 * 1024;
/// The largest JSON body of any other route.
pub const JSON_BODY_LIMIT: usize = 2 * 1024 * 1024;

/// What the handlers share: one allocation, so that the clone axum makes for every
/// extractor of every request is one reference count, not one per service.
#[derive(Clone)]
pub struct AppState(Arc<Services>);

impl AppState {
    pub fn new(services: Services) -> AppState {
        AppState(Arc::new(services))
    }
}

impl std::ops::Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}

/// The services behind the API.
pub struct Services {
    pub locations: LocationService,
    pub shelving: Shelving,
    /// Readers, sweeps and live locations (none when started without devices).
    pub rfid: Option<crate::rfid::Rfid>,
    pub access: crate::access::Access,
    pub audit: crate::audit::Audit,
    pub environment: crate::environment::Environment,
    pub loans: crate::loans::Loans,
    /// The scheduled backups, if the config has `[backup]`.
    pub backups: Option<crate::backup::Backups>,
    pub failures: Arc<Failures>,
    pub lookups: crate::lookups::Lookups,
    pub contents: crate::contents::BoxContents,
    pub retention: crate::retention::Retention,
    pub holdings: crate::holdings::Holdings,
    pub intake: crate::intake::Intake,
}

/// A JSON body whose rejection is a problem response.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(Problem))]
pub struct ApiJson<T>(pub T);

/// A query string whose rejection is a problem response.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(Problem))]
pub struct ApiQuery<T>(pub T);

/// A path parameter whose rejection is a problem response.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(Problem))]
pub struct ApiPath<T>(pub T);

type ApiResult<T> = Result<Json<T>, Problem>;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "stackroom",
        description = "Controller of an archive stack room with RFID compact shelving."
    ),
    tags((name = "boxes", description = "Boxes, where they are, and their history"),
         (name = "shelves", description = "Shelves, their fill, and where a new box should go"),
         (name = "ranges", description = "Ranges of motorized shelving: state, opening aisles, operations, events"),
         (name = "environment", description = "Temperature, humidity, smoke, water and doors; history, compliance, alarms"),
         (name = "intake", description = "Intake: transfer batches checked item by item and accepted; numbering"),
         (name = "retention", description = "Retention: the appraisal of boxes due, and their disposal with four eyes and a certificate"),
         (name = "loans", description = "Circulation: loans with approval, checkout and inspected returns"),
         (name = "sweeps", description = "RFID: inventory sweeps and their reports, readers, live tag locations"),
         (name = "system", description = "Health, the API description, tokens and the audit trail"))
)]
struct ApiDoc;

/// The router of the whole API.
pub fn router(state: AppState) -> Router {
    let (router, openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(health))
        .routes(routes!(room::room))
        .routes(routes!(room::me))
        .routes(routes!(room::open_session, room::close_session))
        .routes(routes!(search_boxes, register_box))
        .routes(routes!(get_box, records::correct_box))
        .routes(routes!(records::box_changes))
        .routes(routes!(records::list_fields))
        .routes(routes!(records::box_contents, records::add_contents))
        .routes(routes!(records::find_documents))
        .routes(routes!(records::put_place, records::delete_place))
        .routes(routes!(intake::list_transfer, intake::transfers))
        .routes(routes!(intake::list_transfer_csv))
        .routes(routes!(intake::get_transfer))
        .routes(routes!(intake::receive_transfer))
        .routes(routes!(intake::accept_transfer))
        .routes(routes!(intake::next_number))
        .routes(routes!(retention::appraisal))
        .routes(routes!(
            retention::propose_disposal,
            retention::list_disposals
        ))
        .routes(routes!(retention::get_disposal))
        .routes(routes!(retention::approve_disposal))
        .routes(routes!(retention::reject_disposal))
        .routes(routes!(retention::carry_out_disposal))
        .routes(routes!(retention::disposal_certificate))
        .routes(routes!(retention::register))
        .routes(routes!(retention::stats))
        .routes(routes!(box_location))
        .routes(routes!(put_binding, delete_binding))
        .routes(routes!(box_history))
        .routes(routes!(changes))
        .routes(routes!(locate))
        .routes(routes!(list_shelves))
        .routes(routes!(shelf_boxes))
        .routes(routes!(suggest_shelves))
        .routes(routes!(bulk_moves))
        .routes(routes!(ranges::list_ranges))
        .routes(routes!(ranges::get_range))
        .routes(routes!(ranges::open_aisle))
        .routes(routes!(ranges::close_range))
        .routes(routes!(ranges::ventilate_range))
        .routes(routes!(ranges::lock_range))
        .routes(routes!(ranges::unlock_range))
        .routes(routes!(ranges::stop_range))
        .routes(routes!(ranges::get_operation))
        .routes(routes!(ranges::retrieve_box))
        .routes(routes!(ranges::events))
        .routes(routes!(ranges::ticket))
        .routes(routes!(rfid::start_sweep, rfid::list_sweeps))
        .routes(routes!(rfid::get_sweep, rfid::cancel_sweep))
        .routes(routes!(rfid::sweep_report))
        .routes(routes!(rfid::list_readers))
        .routes(routes!(rfid::list_tags))
        .routes(routes!(rfid::get_tag))
        .routes(routes!(rfid::box_findings))
        .routes(routes!(admin::list_tokens, admin::create_token))
        .routes(routes!(admin::revoke_token))
        .routes(routes!(admin::audit_trail))
        .routes(routes!(admin::lookups))
        .routes(routes!(environment::environment))
        .routes(routes!(environment::history))
        .routes(routes!(environment::compliance))
        .routes(routes!(environment::alarms))
        .routes(routes!(environment::ack_alarm))
        .routes(routes!(environment::metrics))
        .routes(routes!(loans::request_loan, loans::list_loans))
        .routes(routes!(loans::get_loan))
        .routes(routes!(loans::loan_slip))
        .routes(routes!(loans::approve_loan))
        .routes(routes!(loans::reject_loan))
        .routes(routes!(loans::cancel_loan))
        .routes(routes!(loans::checkout_loan))
        .routes(routes!(loans::return_loan))
        .routes(routes!(loans::settle_loan))
        .routes(routes!(loans::extend_loan))
        .routes(routes!(labels::box_label))
        .routes(routes!(labels::print_labels))
        .routes({
            let (schemas, paths, method) = routes!(import_boxes);
            (
                schemas,
                paths,
                method.layer(DefaultBodyLimit::max(IMPORT_BODY_LIMIT)),
            )
        })
        .split_for_parts();
    let openapi = Arc::new(openapi);
    router
        .route(
            "/api/v1/openapi.json",
            get(move || {
                let openapi = openapi.clone();
                async move { Json(openapi.as_ref().clone()) }
            }),
        )
        .fallback(|| async { Problem::not_found("no such route; see /api/v1/openapi.json") })
        .method_not_allowed_fallback(|| async {
            Problem::new(
                StatusCode::METHOD_NOT_ALLOWED,
                Kind::MethodNotAllowed,
                "this route does not take that method; see /api/v1/openapi.json",
            )
        })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            access::guard,
        ))
        .layer(axum::middleware::from_fn(traced))
        .layer(DefaultBodyLimit::max(JSON_BODY_LIMIT))
        // The staff page is outside the API's door: it holds no data and signs in itself.
        .merge(crate::page::router())
        .with_state(state)
}

/// Runs every request in a `request` span (a number, the method, the path, and the
/// token's name once the guard knows it), so what it causes, an operation's start among
/// it, can be followed through the log.
async fn traced(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use tracing::Instrument;
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let span = tracing::info_span!(
        "request",
        n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        method = %req.method(),
        path = %req.uri().path(),
        who = tracing::field::Empty,
    );
    next.run(req).instrument(span).await
}

#[derive(Serialize, ToSchema)]
struct Health {
    status: String,
    site: String,
    room: String,
    version: String,
}

/// Is the controller up?
#[utoipa::path(get, path = "/api/v1/health", tag = "system",
    responses((status = 200, body = Health)))]
async fn health(State(s): State<AppState>) -> ApiResult<Health> {
    let config = s.locations.config();
    Ok(Json(Health {
        status: "ok".into(),
        site: config.site_id.clone(),
        room: config.room_id.clone(),
        version: env!("CARGO_PKG_VERSION").into(),
    }))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
struct SearchQuery {
    /// Archive number (or its beginning), EPC, barcode, words of a title, or the whole
    /// value of a searched field (a customer number).
    q: Option<String>,
    /// Instead of `q`: a declared field (`GET /api/v1/fields`), with `value`, or `from`
    /// and/or `to` (dates as YYYY-MM-DD, numbers).
    field: Option<String>,
    value: Option<String>,
    from: Option<String>,
    to: Option<String>,
    /// At most this many results (1 to 200, default 20).
    limit: Option<usize>,
    /// Skip this many results first (0 to 10,000, default 0): the next page.
    offset: Option<usize>,
    /// With `q`: only boxes of this category (the archive number's part of that name).
    category: Option<String>,
    /// With `q`: only boxes on a shelf of this range.
    range: Option<u16>,
    /// With `q`: only boxes of this year (the year of the room's `boxes.year_field`).
    year: Option<u16>,
}

/// Find boxes by archive number, EPC, barcode, searched field or title words: exact
/// matches first, then archive numbers that begin with `q`, then title words in
/// registration order; or by a declared field's value or range (`field`). `total` says how
/// many match in all (`estimated`: about, past 1,000).
#[utoipa::path(get, path = "/api/v1/boxes", tag = "boxes", params(SearchQuery),
    responses((status = 200, body = Found), (status = 422, body = Problem)))]
async fn search_boxes(
    State(s): State<AppState>,
    ApiQuery(query): ApiQuery<SearchQuery>,
) -> ApiResult<Found> {
    let page = Page {
        offset: query.offset.unwrap_or(0),
        limit: query.limit.unwrap_or(20),
    };
    match (query.q, query.field) {
        (Some(q), None) => {
            let narrow = Narrow {
                category: query.category,
                range: query.range,
                year: query.year,
            };
            Ok(Json(s.locations.find_narrowed(&q, page, narrow).await?))
        }
        (None, Some(_))
            if query.category.is_some() || query.range.is_some() || query.year.is_some() =>
        {
            Err(Problem::invalid(
                "field",
                "category, range and year narrow a search by q, not by field",
            ))
        }
        (None, Some(key)) => {
            let q = FieldQuery {
                key,
                value: query.value,
                from: query.from,
                to: query.to,
            };
            Ok(Json(s.locations.find_by_field(q, page).await?))
        }
        _ => Err(Problem::invalid(
            "q",
            "give q (what to search for) or field with value, from or to: one of the two",
        )),
    }
}

/// Register a box (and bind it, if `shelf` is given).
#[utoipa::path(post, path = "/api/v1/boxes", tag = "boxes", request_body = NewBox,
    responses((status = 201, body = BoxView), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn register_box(
    State(s): State<AppState>,
    Who(who): Who,
    ApiJson(new): ApiJson<NewBox>,
) -> Result<impl IntoResponse, Problem> {
    let view = s.locations.register(new, &who.name).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// One box with its location.
#[utoipa::path(get, path = "/api/v1/boxes/{archive_no}", tag = "boxes",
    params(("archive_no" = String, Path)),
    responses((status = 200, body = BoxView), (status = 404, body = Problem)))]
async fn get_box(
    State(s): State<AppState>,
    Who(who): Who,
    purpose: Purpose,
    ApiPath(archive_no): ApiPath<String>,
) -> ApiResult<BoxView> {
    let view = s.locations.get_box(&archive_no).await?;
    looked_up(&s, &who, What::Box, &view.archive_no, &purpose).await?;
    Ok(Json(view))
}

/// A file as the answer: its bytes and media type, `attachment` (saved) or `inline`
/// (shown) under `name`.
fn file_response(
    bytes: Vec<u8>,
    kind: &str,
    disposition: &str,
    name: &str,
) -> axum::response::Response {
    (
        [
            (header::CONTENT_TYPE, kind.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("{disposition}; filename=\"{name}\""),
            ),
        ],
        bytes,
    )
        .into_response()
}

/// Rows as CSV (the first row is the header).
/// Rows as CSV, UTF-8 with a byte-order mark: without it a spreadsheet opens the Chinese
/// of titles and names as mojibake.
fn csv_bytes(rows: &[Vec<String>]) -> Result<Vec<u8>, Problem> {
    let mut out = csv::Writer::from_writer("\u{feff}".as_bytes().to_vec());
    let failed = |e: String| Problem::new(StatusCode::INTERNAL_SERVER_ERROR, Kind::Internal, e);
    for row in rows {
        out.write_record(row).map_err(|e| failed(e.to_string()))?;
    }
    out.into_inner().map_err(|e| failed(e.to_string()))
}

/// Rows as a CSV file to save as `name` (the first row is the header).
fn csv_response(rows: &[Vec<String>], name: &str) -> Result<axum::response::Response, Problem> {
    Ok(file_response(csv_bytes(rows)?, CSV, "attachment", name))
}

/// The media type of every CSV answer.
const CSV: &str = "text/csv; charset=utf-8";

/// Whether a `format` query asks for CSV (`csv`) rather than JSON (`json`, the default).
fn wants_csv(format: Option<&str>) -> Result<bool, Problem> {
    match format {
        None | Some("json") => Ok(false),
        Some("csv") => Ok(true),
        Some(other) => Err(Problem::invalid(
            "format",
            format!("'{other}' is not a format: json or csv"),
        )),
    }
}

/// The purpose a person gave for a lookup (the `X-Purpose` header), read without copying
/// the request's headers.
pub(crate) struct Purpose(Option<String>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Purpose {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Purpose, Self::Rejection> {
        Ok(Purpose(crate::lookups::purpose(&parts.headers)))
    }
}

/// Records in the lookup register that `who` was shown `archive_no`. If it cannot be
/// recorded the box is not shown: a lookup nobody can account for does not happen.
async fn looked_up(
    s: &AppState,
    who: &crate::access::Identity,
    what: What,
    archive_no: &str,
    purpose: &Purpose,
) -> Result<(), Problem> {
    s.lookups
        .record(&who.name, what, archive_no, purpose.0.as_deref())
        .await
        .map_err(Problem::from)
}

/// Where a box is: shelf, aisle, and on whose word.
#[utoipa::path(get, path = "/api/v1/boxes/{archive_no}/location", tag = "boxes",
    params(("archive_no" = String, Path)),
    responses((status = 200, body = Location),
        (status = 404, description = "unknown box, or a known box on no shelf", body = Problem)))]
async fn box_location(
    State(s): State<AppState>,
    Who(who): Who,
    purpose: Purpose,
    ApiPath(archive_no): ApiPath<String>,
) -> ApiResult<Location> {
    let location = s.locations.locate(BoxKey::ArchiveNo(archive_no)).await?;
    looked_up(&s, &who, What::Location, &location.archive_no, &purpose).await?;
    Ok(Json(location))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct BindingRequest {
    /// Canonical shelf address, e.g. `R1-C2-L-S3-L4`.
    shelf: String,
    #[serde(default)]
    reason: String,
}

/// Put a box on a shelf, or move it there.
#[utoipa::path(put, path = "/api/v1/boxes/{archive_no}/binding", tag = "boxes",
    params(("archive_no" = String, Path)), request_body = BindingRequest,
    responses((status = 200, body = Location), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn put_binding(
    State(s): State<AppState>,
    Who(who): Who,
    ApiPath(archive_no): ApiPath<String>,
    ApiJson(req): ApiJson<BindingRequest>,
) -> ApiResult<Location> {
    let provenance = Provenance::manual(&who.name, &req.reason);
    Ok(Json(
        s.locations
            .bind(&archive_no, &req.shelf, provenance)
            .await?,
    ))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
struct ReasonQuery {
    /// Why the box leaves its shelf.
    reason: Option<String>,
}

/// Take a box off its shelf; it stays registered.
#[utoipa::path(delete, path = "/api/v1/boxes/{archive_no}/binding", tag = "boxes",
    params(("archive_no" = String, Path), ReasonQuery),
    responses((status = 204), (status = 404, body = Problem)))]
async fn delete_binding(
    State(s): State<AppState>,
    Who(who): Who,
    ApiPath(archive_no): ApiPath<String>,
    ApiQuery(q): ApiQuery<ReasonQuery>,
) -> Result<StatusCode, Problem> {
    let provenance = Provenance::manual(&who.name, q.reason.as_deref().unwrap_or(""));
    s.locations.unbind(&archive_no, provenance).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
struct HistoryQuery {
    /// A moment (RFC 3339, e.g. `2026-03-01T12:00:00Z`) or a day (`2026-03-01`, meaning
    /// the end of that day, UTC): `shelf_at` says where the box was then.
    at: Option<String>,
}

/// A moment: RFC 3339, or a day meaning its end (`end_of_day`) or its start, UTC.
fn parse_moment(text: &str, end_of_day: bool) -> Result<DateTime<Utc>, Problem> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| {
            if end_of_day {
                d.and_hms_milli_opt(23, 59, 59, 999)
            } else {
                d.and_hms_milli_opt(0, 0, 0, 0)
            }
        })
        .map(|t| t.and_utc())
        .ok_or_else(|| {
            Problem::invalid(
                "at",
                format!("'{text}' is neither an RFC 3339 time (2026-03-01T12:00:00Z) nor a day (2026-03-01)"),
            )
        })
}

/// Every change of a box's binding; with `at`, where it was then.
#[utoipa::path(get, path = "/api/v1/boxes/{archive_no}/history", tag = "boxes",
    params(("archive_no" = String, Path), HistoryQuery),
    responses((status = 200, body = History), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn box_history(
    State(s): State<AppState>,
    Who(who): Who,
    purpose: Purpose,
    ApiPath(archive_no): ApiPath<String>,
    ApiQuery(q): ApiQuery<HistoryQuery>,
) -> ApiResult<History> {
    let at = q.at.as_deref().map(|t| parse_moment(t, true)).transpose()?;
    let history = s.locations.history(&archive_no, at).await?;
    looked_up(&s, &who, What::History, &archive_no, &purpose).await?;
    Ok(Json(history))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
struct ChangesQuery {
    /// Boxes changed after this number (default 0: every box).
    since: Option<i64>,
    /// At most this many (default 500, at most 5000).
    limit: Option<usize>,
}

/// A page of the room's change feed, with the room it is of.
#[derive(Serialize, ToSchema)]
struct ChangesPage {
    site: String,
    room: String,
    #[serde(flatten)]
    feed: crate::location::Feed,
}

/// The room's change feed, for a site's replica: the boxes changed after `since`, each as
/// it is now with the number of its latest change (a change to its record, binding,
/// place, flags, loans or disposal), oldest first. Ask again from the last entry's `seq`
/// until it is `last`.
#[utoipa::path(get, path = "/api/v1/changes", tag = "boxes", params(ChangesQuery),
    responses((status = 200, body = ChangesPage), (status = 422, body = Problem)))]
async fn changes(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<ChangesQuery>,
) -> ApiResult<ChangesPage> {
    let since = q.since.unwrap_or(0);
    if since < 0 {
        return Err(Problem::invalid("since", "a change number, 0 or more"));
    }
    let limit = q.limit.unwrap_or(500);
    if !(1..=crate::location::FEED_PAGE_MAX).contains(&limit) {
        return Err(Problem::invalid("limit", "1 to 5000"));
    }
    let config = s.locations.config();
    Ok(Json(ChangesPage {
        site: config.site_id.clone(),
        room: config.room_id.clone(),
        feed: s.locations.feed(since, limit).await?,
    }))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
struct LocateQuery {
    /// The tag's EPC (hex).
    epc: Option<String>,
    /// The printed barcode.
    barcode: Option<String>,
    /// The archive number.
    archive_no: Option<String>,
}

/// Where a box is, found by EPC, barcode or archive number (exactly one).
#[utoipa::path(get, path = "/api/v1/locate", tag = "boxes", params(LocateQuery),
    responses((status = 200, body = Location), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn locate(
    State(s): State<AppState>,
    Who(who): Who,
    purpose: Purpose,
    ApiQuery(q): ApiQuery<LocateQuery>,
) -> ApiResult<Location> {
    let key = match (q.epc, q.barcode, q.archive_no) {
        (Some(epc), None, None) => BoxKey::Epc(epc),
        (None, Some(code), None) => BoxKey::Barcode(code),
        (None, None, Some(no)) => BoxKey::ArchiveNo(no),
        _ => {
            return Err(Problem::invalid(
                "epc",
                "give exactly one of epc, barcode or archive_no",
            ));
        }
    };
    let location = s.locations.locate(key).await?;
    looked_up(&s, &who, What::Locate, &location.archive_no, &purpose).await?;
    Ok(Json(location))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
struct ShelvesQuery {
    /// Only the shelves of this range.
    range: Option<u16>,
}

#[derive(Serialize, ToSchema)]
struct ShelfList {
    items: Vec<ShelfFill>,
}

/// The shelves, in fill order, with their capacity and fill.
#[utoipa::path(get, path = "/api/v1/shelves", tag = "shelves", params(ShelvesQuery),
    responses((status = 200, body = ShelfList), (status = 422, body = Problem)))]
async fn list_shelves(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<ShelvesQuery>,
) -> ApiResult<ShelfList> {
    let items = s.locations.shelves(q.range).await.map_err(|e| match e {
        crate::location::LocationError::NoSuchShelf(e) => Problem::invalid("range", e.to_string()),
        e => e.into(),
    })?;
    Ok(Json(ShelfList { items }))
}

/// The boxes on one shelf, by archive number (a box's neighbours).
#[utoipa::path(get, path = "/api/v1/shelves/{address}/boxes", tag = "shelves",
    params(("address" = String, Path)),
    responses((status = 200, body = OnShelf), (status = 422, body = Problem)))]
async fn shelf_boxes(
    State(s): State<AppState>,
    ApiPath(address): ApiPath<String>,
) -> ApiResult<OnShelf> {
    Ok(Json(s.locations.on_shelf(&address).await?))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
struct SuggestQuery {
    /// Archive number of the new box (it need not be registered yet).
    archive_no: String,
    /// Width of the box, for shelves measured in millimetres.
    width_mm: Option<u32>,
    /// How many shelves to propose (1 to 50, default 5).
    count: Option<usize>,
}

#[derive(Serialize, ToSchema)]
struct SuggestionList {
    archive_no: String,
    items: Vec<Suggestion>,
}

/// Free shelves for a new box, nearest first to the boxes of its series.
#[utoipa::path(get, path = "/api/v1/shelves/suggest", tag = "shelves", params(SuggestQuery),
    responses((status = 200, body = SuggestionList), (status = 422, body = Problem)))]
async fn suggest_shelves(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<SuggestQuery>,
) -> ApiResult<SuggestionList> {
    let items = s
        .locations
        .suggest(&q.archive_no, q.width_mm, q.count.unwrap_or(5))
        .await?;
    Ok(Json(SuggestionList {
        archive_no: q.archive_no,
        items,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct MovesRequest {
    moves: Vec<Move>,
    #[serde(default)]
    reason: String,
}

#[derive(Serialize, ToSchema)]
struct MovesDone {
    moved: Vec<Location>,
}

/// Move many boxes at once: all or none.
#[utoipa::path(post, path = "/api/v1/bindings/moves", tag = "shelves", request_body = MovesRequest,
    responses((status = 200, body = MovesDone), (status = 422, body = Problem)))]
async fn bulk_moves(
    State(s): State<AppState>,
    Who(who): Who,
    ApiJson(req): ApiJson<MovesRequest>,
) -> ApiResult<MovesDone> {
    let provenance = Provenance::manual(&who.name, &req.reason);
    let moved = s.locations.move_many(req.moves, provenance).await?;
    Ok(Json(MovesDone { moved }))
}

/// Import boxes from a CSV body (`archive_no,epc,barcode,title,shelf,width_mm`, other
/// columns become free fields): all rows or none, bad rows reported with their line.
#[utoipa::path(post, path = "/api/v1/import/boxes", tag = "boxes",
    request_body(content = String, content_type = "text/csv"),
    responses((status = 201, body = ImportSummary), (status = 413, body = Problem),
        (status = 422, description = "the rows at fault, each with its line", body = Problem)))]
async fn import_boxes(
    State(s): State<AppState>,
    Who(who): Who,
    body: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, Problem> {
    let body = body.map_err(|r| {
        Problem::new(
            r.status(),
            Kind::BadBody,
            format!(
                "{} (the limit is {} MiB)",
                r.body_text(),
                IMPORT_BODY_LIMIT >> 20
            ),
        )
    })?;
    let summary = s
        .locations
        .import_csv(std::io::Cursor::new(body), &who.name, "import over the API")
        .await?;
    Ok((StatusCode::CREATED, Json(summary)))
}

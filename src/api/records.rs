//! Routes of a box's record: corrections with their trail, the declared fields, and the
//! contents of a box.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{ApiJson, ApiPath, ApiQuery, ApiResult, AppState, Problem, Purpose, Who, looked_up};
use crate::config::records::FieldDef;
use crate::contents::{Contents, DocumentRef, NewDocument};
use crate::location::{BoxView, Changes, Correction};
use crate::lookups::What;

/// Correct a box's record: title, barcode, EPC, width, descriptive fields (`null`
/// clears). Every field that changes is kept in the box's trail with `reason`; the
/// declared fields are checked by their type.
#[utoipa::path(patch, path = "/api/v1/boxes/{archive_no}", tag = "boxes",
    params(("archive_no" = String, Path)), request_body = Correction,
    responses((status = 200, body = BoxView), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 410, body = Problem), (status = 422, body = Problem)))]
pub(super) async fn correct_box(
    State(s): State<AppState>,
    Who(who): Who,
    ApiPath(archive_no): ApiPath<String>,
    ApiJson(correction): ApiJson<Correction>,
) -> ApiResult<BoxView> {
    s.locations
        .correct(&archive_no, correction, &who.name)
        .await?;
    Ok(Json(s.locations.get_box(&archive_no).await?))
}

/// The corrections of a box's record, oldest first: who, when, before, after, why.
#[utoipa::path(get, path = "/api/v1/boxes/{archive_no}/changes", tag = "boxes",
    params(("archive_no" = String, Path)),
    responses((status = 200, body = Changes), (status = 404, body = Problem)))]
pub(super) async fn box_changes(
    State(s): State<AppState>,
    Who(who): Who,
    purpose: Purpose,
    ApiPath(archive_no): ApiPath<String>,
) -> ApiResult<Changes> {
    let changes = s.locations.changes(&archive_no).await?;
    looked_up(&s, &who, What::History, &changes.archive_no, &purpose).await?;
    Ok(Json(changes))
}

#[derive(Serialize, ToSchema)]
pub(super) struct FieldList {
    items: Vec<FieldDef>,
}

/// The descriptive fields the room declares (`[boxes.fields]`): their types, choices and
/// whether the search box finds their values.
#[utoipa::path(get, path = "/api/v1/fields", tag = "boxes",
    responses((status = 200, body = FieldList)))]
pub(super) async fn list_fields(State(s): State<AppState>) -> ApiResult<FieldList> {
    Ok(Json(FieldList {
        items: s.locations.config().fields.0.values().cloned().collect(),
    }))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub(super) struct ContentsQuery {
    /// `json` (default) or `pdf`: the printable contents list (卷内目录).
    format: Option<String>,
}

/// A PDF answer, shown inline, saved as `name`.
pub(super) fn pdf_response(bytes: Vec<u8>, name: &str) -> Response {
    super::file_response(bytes, "application/pdf", "inline", name)
}

/// The documents in a box (卷内目录), in item order; `format=pdf` prints them.
#[utoipa::path(get, path = "/api/v1/boxes/{archive_no}/contents", tag = "boxes",
    params(("archive_no" = String, Path), ContentsQuery),
    responses((status = 200, body = Contents), (status = 404, body = Problem)))]
pub(super) async fn box_contents(
    State(s): State<AppState>,
    Who(who): Who,
    purpose: Purpose,
    ApiPath(archive_no): ApiPath<String>,
    ApiQuery(q): ApiQuery<ContentsQuery>,
) -> Result<Response, Problem> {
    let contents = s.contents.list(&archive_no).await?;
    looked_up(&s, &who, What::Box, &contents.archive_no, &purpose).await?;
    match q.format.as_deref() {
        None | Some("json") => Ok(Json(contents).into_response()),
        Some("pdf") => {
            let pdf = s.contents.form(&contents, &who.name).pdf();
            Ok(pdf_response(
                pdf,
                &format!("contents-{}.pdf", contents.archive_no),
            ))
        }
        Some(other) => Err(Problem::invalid(
            "format",
            format!("'{other}' is not a format: json or pdf"),
        )),
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct AddDocuments {
    items: Vec<NewDocument>,
}

/// Add documents to a box's contents (补充而不替换: nothing already there changes); all or
/// none. An `item_no` the box has already is refused (409); without one, after the last.
#[utoipa::path(post, path = "/api/v1/boxes/{archive_no}/contents", tag = "boxes",
    params(("archive_no" = String, Path)), request_body = AddDocuments,
    responses((status = 201, body = Contents), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 410, body = Problem), (status = 422, body = Problem)))]
pub(super) async fn add_contents(
    State(s): State<AppState>,
    Who(who): Who,
    ApiPath(archive_no): ApiPath<String>,
    ApiJson(body): ApiJson<AddDocuments>,
) -> Result<impl IntoResponse, Problem> {
    let contents = s.contents.add(&archive_no, body.items, &who.name).await?;
    Ok((StatusCode::CREATED, Json(contents)))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub(super) struct DocumentsQuery {
    /// The electronic file's identifier in the records system.
    e_file: String,
}

#[derive(Serialize, ToSchema)]
pub(super) struct DocumentList {
    items: Vec<DocumentRef>,
}

/// Which box holds the paper of an electronic file.
#[utoipa::path(get, path = "/api/v1/documents", tag = "boxes", params(DocumentsQuery),
    responses((status = 200, body = DocumentList), (status = 422, body = Problem)))]
pub(super) async fn find_documents(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<DocumentsQuery>,
) -> ApiResult<DocumentList> {
    Ok(Json(DocumentList {
        items: s.contents.by_e_file(&q.e_file).await?,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct PlaceRequest {
    /// A place of `[[places]]` (e.g. `safe-1`).
    place: String,
    #[serde(default)]
    reason: String,
}

/// Put a box in a place off the shelving: a safe, the reading room (archivist). It keeps
/// its home shelf; locate says `in_place` with the place, and its aisle is not opened.
#[utoipa::path(put, path = "/api/v1/boxes/{archive_no}/place", tag = "boxes",
    params(("archive_no" = String, Path)), request_body = PlaceRequest,
    responses((status = 200, body = BoxView), (status = 404, body = Problem),
        (status = 410, body = Problem), (status = 422, body = Problem)))]
pub(super) async fn put_place(
    State(s): State<AppState>,
    Who(who): Who,
    ApiPath(archive_no): ApiPath<String>,
    ApiJson(p): ApiJson<PlaceRequest>,
) -> ApiResult<BoxView> {
    let reason = if p.reason.trim().is_empty() {
        "put in place"
    } else {
        p.reason.trim()
    };
    let provenance = crate::location::Provenance::manual(&who.name, reason);
    Ok(Json(
        s.locations
            .put_in_place(&archive_no, &p.place, provenance)
            .await?,
    ))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub(super) struct ReasonQuery {
    reason: Option<String>,
}

/// Take a box out of its place, back to its home shelf (archivist).
#[utoipa::path(delete, path = "/api/v1/boxes/{archive_no}/place", tag = "boxes",
    params(("archive_no" = String, Path), ReasonQuery),
    responses((status = 200, body = BoxView), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub(super) async fn delete_place(
    State(s): State<AppState>,
    Who(who): Who,
    ApiPath(archive_no): ApiPath<String>,
    ApiQuery(q): ApiQuery<ReasonQuery>,
) -> ApiResult<BoxView> {
    let reason = q
        .reason
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .unwrap_or("back to its shelf");
    let provenance = crate::location::Provenance::manual(&who.name, reason);
    Ok(Json(
        s.locations.take_from_place(&archive_no, provenance).await?,
    ))
}

//! Routes of a box's record: corrections with their trail, the declared fields, and the
//! contents of a box.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use super::{ApiJson, ApiPath, ApiResult, AppState, Problem, Purpose, Who, looked_up};
use crate::config::records::FieldDef;
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

//! Routes of box labels: one box's label, or many (a list, a range, shelves), as PDF or
//! SVG. Every print is recorded in the audit trail: customers' files are confidential.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::Kind;
use super::{ApiJson, ApiPath, ApiQuery, AppState, Problem, Who};
use crate::audit::NewEntry;
use crate::labels::{self, Label};
use crate::location::LocationError;
use crate::shelf::ShelfAddress;

/// The most labels one request prints.
pub const MAX_LABELS: usize = 5000;

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub(super) struct Format {
    /// `pdf` (default) or `svg`.
    format: Option<String>,
}

fn render(
    s: &AppState,
    labels: &[Label],
    format: Option<&str>,
) -> Result<(Vec<u8>, &'static str, &'static str), Problem> {
    let size = s.locations.config().labels;
    let failed = |e: labels::LabelError| {
        Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            Kind::Unprintable,
            crate::logging::chain(&e),
        )
    };
    match format.unwrap_or("pdf") {
        "pdf" => Ok((
            labels::pdf(labels, size).map_err(failed)?,
            "application/pdf",
            "pdf",
        )),
        "svg" => Ok((
            labels::svg(labels, size).map_err(failed)?.into_bytes(),
            "image/svg+xml",
            "svg",
        )),
        other => Err(Problem::invalid(
            "format",
            format!("'{other}' is not a format: pdf or svg"),
        )),
    }
}

async fn printed(
    s: &AppState,
    who: &str,
    what: String,
    labels: &[Label],
    body: Vec<u8>,
    ctype: &'static str,
    ext: &str,
) -> Response {
    let boxes: Vec<&str> = labels
        .iter()
        .map(|l| l.archive_no.as_str())
        .take(50)
        .collect();
    let more = labels.len().saturating_sub(boxes.len());
    let detail = if more > 0 {
        format!("{} and {more} more", boxes.join(" "))
    } else {
        boxes.join(" ")
    };
    s.audit
        .record(
            NewEntry::new(
                who,
                "print",
                what,
                format!("{} label(s), {ext}", labels.len()),
            )
            .detail(detail),
        )
        .await;
    (
        [
            (header::CONTENT_TYPE, ctype.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("inline; filename=\"labels.{ext}\""),
            ),
        ],
        body,
    )
        .into_response()
}

fn label(s: &AppState, archive_no: String, title: String, shelf: Option<String>) -> Label {
    labels::label(s.locations.config().language, archive_no, title, shelf)
}

/// One box's label: archive number, Code 128 barcode, title, home shelf in words.
#[utoipa::path(get, path = "/api/v1/boxes/{archive_no}/label", tag = "boxes",
    params(("archive_no" = String, Path), Format),
    responses((status = 200, description = "the label, application/pdf or image/svg+xml"), (status = 404, body = Problem)))]
pub(super) async fn box_label(
    State(s): State<AppState>,
    Who(who): Who,
    purpose: super::Purpose,
    ApiPath(archive_no): ApiPath<String>,
    ApiQuery(q): ApiQuery<Format>,
) -> Result<Response, Problem> {
    let b = s.locations.get_box(&archive_no).await?;
    super::looked_up(
        &s,
        &who,
        crate::lookups::What::Label,
        &b.archive_no,
        &purpose,
    )
    .await?;
    let shelf = b.location.as_ref().map(|l| l.shelf.address.clone());
    let labels = [label(&s, b.archive_no, b.title, shelf)];
    let (body, ctype, ext) = render(&s, &labels, q.format.as_deref())?;
    Ok(printed(
        &s,
        &who.name,
        format!("label of {archive_no}"),
        &labels,
        body,
        ctype,
        ext,
    )
    .await)
}

/// Which boxes to print labels for: one of the three.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Print {
    /// Archive numbers.
    boxes: Option<Vec<String>>,
    /// Every box bound to a shelf of this range, in shelf order.
    range: Option<u16>,
    /// Every box bound to these shelves, in shelf order.
    shelves: Option<Vec<String>>,
    /// `pdf` (default) or `svg`.
    format: Option<String>,
}

/// Labels for many boxes: a list, a range, or shelves.
#[utoipa::path(post, path = "/api/v1/labels", tag = "boxes", request_body = Print,
    responses((status = 200, description = "the labels, application/pdf or image/svg+xml"), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub(super) async fn print_labels(
    State(s): State<AppState>,
    Who(who): Who,
    ApiJson(p): ApiJson<Print>,
) -> Result<Response, Problem> {
    let (rows, what) = match (p.boxes, p.range, p.shelves) {
        (Some(boxes), None, None) => {
            if boxes.is_empty() || boxes.len() > MAX_LABELS {
                return Err(Problem::invalid(
                    "boxes",
                    format!("1 to {MAX_LABELS} archive numbers"),
                ));
            }
            let mut rows = Vec::new();
            for a in &boxes {
                let b = s.locations.get_box(a).await?;
                rows.push((b.archive_no, b.title, b.location.map(|l| l.shelf.address)));
            }
            (rows, format!("labels of {} box(es)", boxes.len()))
        }
        (None, Some(range), None) => {
            if s.locations.config().layout.range(range).is_none() {
                return Err(Problem::new(
                    StatusCode::NOT_FOUND,
                    Kind::NoSuchRange,
                    format!("the room has no range {range}"),
                ));
            }
            (
                boxes_on(&s, Some(range), Vec::new()).await?,
                format!("labels of range {range}"),
            )
        }
        (None, None, Some(shelves)) => {
            for a in &shelves {
                let shelf: ShelfAddress = a.parse().map_err(|e: crate::shelf::AddressError| {
                    Problem::invalid("shelves", e.to_string())
                })?;
                if s.locations.config().layout.range(shelf.range).is_none() {
                    return Err(Problem::invalid(
                        "shelves",
                        format!("{a} is not a shelf of the room"),
                    ));
                }
            }
            let what = format!("labels of shelves {}", shelves.join(" "));
            (boxes_on(&s, None, shelves).await?, what)
        }
        _ => {
            return Err(Problem::invalid(
                "boxes",
                "name exactly one of boxes, range or shelves",
            ));
        }
    };
    if rows.is_empty() {
        return Err(Problem::new(
            StatusCode::NOT_FOUND,
            Kind::NoBoxes,
            "no boxes there to print labels for",
        ));
    }
    if rows.len() > MAX_LABELS {
        return Err(Problem::invalid(
            "range",
            format!(
                "{} boxes; at most {MAX_LABELS} labels at once: print by shelves",
                rows.len()
            ),
        ));
    }
    let labels: Vec<Label> = rows
        .into_iter()
        .map(|(a, t, sh)| label(&s, a, t, sh))
        .collect();
    let (body, ctype, ext) = render(&s, &labels, p.format.as_deref())?;
    Ok(printed(&s, &who.name, what, &labels, body, ctype, ext).await)
}

async fn boxes_on(
    s: &AppState,
    range: Option<u16>,
    shelves: Vec<String>,
) -> Result<Vec<(String, String, Option<String>)>, Problem> {
    labels::boxes_on(&s.locations, range, shelves)
        .await
        .map_err(|e| Problem::from(LocationError::from(e)))
}

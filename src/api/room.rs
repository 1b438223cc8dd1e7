//! What a client needs to draw the room and its own buttons: the layout, and who the
//! token is with the actions its role allows.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use super::access::{SESSION_COOKIE, SYNC_ROLE, cookie, required};
use super::{ApiResult, AppState, Who};
use crate::access::Role;
use crate::layout::Capacity;
use crate::name::Name;
use crate::shelf::Language;

#[derive(Serialize, ToSchema)]
pub(super) struct CarriageLayout {
    index: u16,
    width_mm: u32,
    fixed: bool,
}

#[derive(Serialize, ToSchema)]
pub(super) struct RangeLayoutView {
    id: u16,
    name: Name,
    carriages: Vec<CarriageLayout>,
    aisle_width_mm: u32,
    sections: u16,
    levels: u16,
    capacity: Capacity,
    /// Whether a shelving controller drives it (its state is at `/api/v1/ranges/{id}`).
    motorized: bool,
}

#[derive(Serialize, ToSchema)]
pub(super) struct RoomView {
    site_id: String,
    site_name: Name,
    room_id: String,
    room_name: Name,
    /// The room's language: `en` or `zh`.
    #[schema(value_type = String)]
    language: Language,
    ranges: Vec<RangeLayoutView>,
    /// The places off the shelving a box can be in (`[[places]]`).
    places: Vec<crate::config::records::Place>,
    /// The date field whose year narrows a search (`boxes.year_field`), if any.
    year_field: Option<String>,
    /// The side of the room plan with the door: `top`, `bottom`, `left`, `right`.
    door: Option<crate::config::DoorSide>,
    /// The loan rules (`[loans]`).
    loans: crate::loans::LoanRules,
}

/// The room's layout: ranges, their carriages, sections and levels.
#[utoipa::path(get, path = "/api/v1/room", tag = "system",
    responses((status = 200, body = RoomView)))]
pub(super) async fn room(State(s): State<AppState>) -> ApiResult<RoomView> {
    let config = s.locations.config();
    let motorized: Vec<u16> = s.shelving.ranges().iter().map(|r| r.range).collect();
    let ranges = config
        .layout
        .ranges
        .iter()
        .map(|r| RangeLayoutView {
            id: r.id,
            name: r.name.clone(),
            carriages: r
                .carriages
                .iter()
                .map(|c| CarriageLayout {
                    index: c.index,
                    width_mm: c.width_mm,
                    fixed: c.fixed,
                })
                .collect(),
            aisle_width_mm: r.aisle_width_mm,
            sections: r.sections,
            levels: r.levels,
            capacity: r.capacity,
            motorized: motorized.contains(&r.id),
        })
        .collect();
    Ok(Json(RoomView {
        site_id: config.site_id.clone(),
        site_name: config.site_name.clone(),
        room_id: config.room_id.clone(),
        room_name: config.room_name.clone(),
        language: config.language,
        ranges,
        places: config.places.clone(),
        year_field: config.year_field.clone(),
        door: config.door,
        loans: s.loans.rules().clone(),
    }))
}

/// The actions a client may offer, each with the route that does it.
const ACTIONS: &[(&str, &str, &str)] = &[
    ("retrieve", "POST", "/api/v1/boxes/{archive_no}/retrieve"),
    ("open", "POST", "/api/v1/ranges/{range}/aisles/{aisle}/open"),
    ("close", "POST", "/api/v1/ranges/{range}/close"),
    ("ventilate", "POST", "/api/v1/ranges/{range}/ventilate"),
    ("stop", "POST", "/api/v1/ranges/{range}/stop"),
    ("lock", "POST", "/api/v1/ranges/{range}/lock"),
    ("unlock", "POST", "/api/v1/ranges/{range}/unlock"),
    ("sweep", "POST", "/api/v1/sweeps"),
    ("cancel_sweep", "DELETE", "/api/v1/sweeps/{id}"),
    ("ack_alarm", "POST", "/api/v1/alarms/{id}/ack"),
    ("loan", "POST", "/api/v1/loans"),
    ("settle_loan", "POST", "/api/v1/loans/{id}/settle"),
    ("labels", "POST", "/api/v1/labels"),
    ("bind", "PUT", "/api/v1/boxes/{archive_no}/binding"),
    ("correct", "PATCH", "/api/v1/boxes/{archive_no}"),
    ("contents", "POST", "/api/v1/boxes/{archive_no}/contents"),
    ("intake", "POST", "/api/v1/transfers"),
    ("dispose", "POST", "/api/v1/disposals"),
    ("approve_disposal", "POST", "/api/v1/disposals/{id}/approve"),
    ("register", "GET", "/api/v1/register"),
    ("tokens", "GET", "/api/v1/tokens"),
    ("audit", "GET", "/api/v1/audit"),
];

#[derive(Serialize, ToSchema)]
pub(super) struct Me {
    name: String,
    role: Role,
    /// What this role may do: `retrieve`, `open`, `close`, `ventilate`, `stop`, `lock`,
    /// `unlock`, `sweep`, `sweep_sync`, `cancel_sweep`, `ack_alarm`, `loan`, `labels`,
    /// `settle_loan`, `approve_reading_room`, `approve_external`, `bind`, `correct`,
    /// `contents`, `intake`, `dispose`, `approve_disposal`, `register`, `tokens`, `audit`.
    may: Vec<&'static str>,
}

/// Who the token is, and what its role may do (for a client to offer only those buttons).
#[utoipa::path(get, path = "/api/v1/me", tag = "system",
    responses((status = 200, body = Me)))]
pub(super) async fn me(State(s): State<AppState>, Who(who): Who) -> ApiResult<Me> {
    let mut may: Vec<&'static str> = ACTIONS
        .iter()
        .filter(|(_, method, path)| {
            let method = Method::from_bytes(method.as_bytes()).expect("a method");
            required(&method, Some(path)).is_none_or(|role| who.role >= role)
        })
        .map(|(action, _, _)| *action)
        .collect();
    // A sweep that re-binds boxes is an archivist's (checked in the handler).
    if may.contains(&"sweep") && who.role >= SYNC_ROLE {
        may.push("sweep_sync");
    }
    // Approving a loan: the role its kind's rule names.
    let rules = s.loans.rules();
    for (action, rule) in [
        ("approve_reading_room", rules.reading_room),
        ("approve_external", rules.external),
    ] {
        if may.contains(&"loan") && rule.approval.is_none_or(|need| who.role >= need) {
            may.push(action);
        }
    }
    Ok(Json(Me {
        name: who.name,
        role: who.role,
        may,
    }))
}

/// A browser's session.
#[derive(Serialize, ToSchema)]
pub(super) struct Session {
    name: String,
    role: Role,
    /// Seconds until it ends (sooner if the token is revoked or expires).
    expires_in_s: u64,
}

/// The session cookie's attributes: sent only to the API, never to scripts, never with a
/// request from another site; `Secure` where the page is served over HTTPS.
fn session_cookie(value: &str, max_age: u64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!(
        "{SESSION_COOKIE}={value}; Path=/api/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    )
}

/// Sign a browser in with its token (Authorization: Bearer): the answer sets a session
/// cookie (HttpOnly, SameSite=Strict, 12 h) that stands for the token in every tab, so
/// the staff page keeps no secret of its own. A change made by cookie carries
/// `X-Requested-With: stackroom`. The session ends with the token, at sign-out, or when
/// the controller restarts.
#[utoipa::path(post, path = "/api/v1/session", tag = "system",
    responses((status = 201, body = Session)))]
pub(super) async fn open_session(
    State(s): State<AppState>,
    Who(who): Who,
    headers: HeaderMap,
) -> Response {
    let session = s.access.open_session(&who);
    let lifetime = crate::access::SESSION_LIFETIME.as_secs();
    let secure = s.locations.config().api_tls.is_some()
        || headers
            .get("x-forwarded-proto")
            .is_some_and(|v| v == "https");
    (
        StatusCode::CREATED,
        [(
            header::SET_COOKIE,
            session_cookie(&session, lifetime, secure),
        )],
        Json(Session {
            name: who.name,
            role: who.role,
            expires_in_s: lifetime,
        }),
    )
        .into_response()
}

/// Sign a browser out: its session ends and its cookie is cleared.
#[utoipa::path(delete, path = "/api/v1/session", tag = "system",
    responses((status = 204)))]
pub(super) async fn close_session(State(s): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(session) = cookie(&headers, SESSION_COOKIE) {
        s.access.end_session(&session);
    }
    (
        StatusCode::NO_CONTENT,
        [(header::SET_COOKIE, session_cookie("", 0, false))],
    )
        .into_response()
}

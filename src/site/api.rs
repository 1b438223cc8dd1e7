//! The site's HTTP API: the room API's shape for search and locate across every room, with
//! the room in each answer; retrieve forwarded to the room's controller.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

use super::Site;
use super::replica::{self, Entry, RoomReplica, SiteBox, SiteFound};
use crate::access::Role;
use crate::api::{ApiPath, ApiQuery, Kind, Problem};

type Answer<T> = Result<Json<T>, Problem>;

pub fn router(site: Site) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/api/v1/health", get(health))
        .route("/api/v1/rooms", get(rooms))
        .route("/api/v1/rooms/{room}/changes", get(room_changes))
        .route("/api/v1/rooms/{room}/map", get(room_map))
        .route("/api/v1/boxes", get(search))
        .route("/api/v1/locate", get(locate))
        .route("/api/v1/boxes/{archive_no}/retrieve", post(retrieve))
        .route("/api/v1/stats", get(stats))
        .route("/api/v1/audit", get(audit))
        .fallback(|| async { Problem::not_found("no such route on the site API") })
        .with_state(site)
}

/// The site's staff page: search across the rooms, the room a box is in and its map,
/// opening the aisle through the room's controller. It holds no data and signs in with a
/// site token (`#token=` or its form).
async fn page() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        include_str!("page.html"),
    )
}

fn internal(e: impl std::fmt::Display) -> Problem {
    tracing::error!(error = %e, "site API");
    Problem::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        Kind::Internal,
        e.to_string(),
    )
}

/// The name of the bearer, if its token is live and its role is `need` or above.
async fn who(site: &Site, headers: &HeaderMap, need: Role) -> Result<String, Problem> {
    let secret = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let Some(secret) = secret else {
        return Err(Problem::new(
            StatusCode::UNAUTHORIZED,
            Kind::Unauthorized,
            "this route needs a token: Authorization: Bearer sst_… (stackroom site token)",
        ));
    };
    let Some((name, role)) = site.replica.authenticate(secret).await.map_err(internal)? else {
        return Err(Problem::new(
            StatusCode::UNAUTHORIZED,
            Kind::Unauthorized,
            "the token is not valid: unknown or revoked",
        ));
    };
    if role < need {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            Kind::Forbidden,
            format!("token '{name}' is a {role}; this needs {need} or above"),
        ));
    }
    Ok(name)
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
    site: String,
    name: crate::name::Name,
    rooms: usize,
    online: usize,
}

async fn health(State(site): State<Site>) -> Json<Health> {
    let links = site.links();
    Json(Health {
        status: "ok",
        site: site.config.site_id.clone(),
        name: site.config.site_name.clone(),
        rooms: site.config.rooms.len(),
        online: links.values().filter(|l| l.online).count(),
    })
}

/// A room as the site sees it: its link and what the replica holds of it.
#[derive(Serialize)]
struct RoomView {
    room: String,
    name: crate::name::Name,
    api: String,
    #[serde(flatten)]
    link: super::follow::RoomLink,
    /// Changes the room has that the site has not applied yet.
    behind: i64,
    replica: Option<RoomReplica>,
}

#[derive(Serialize)]
struct RoomList {
    items: Vec<RoomView>,
}

async fn room_views(site: &Site) -> Result<Vec<RoomView>, Problem> {
    let replicas = site.replica.rooms().await.map_err(internal)?;
    let links = site.links();
    Ok(site
        .config
        .rooms
        .iter()
        .map(|r| {
            let replica = replicas.iter().find(|x| x.room == r.id).cloned();
            RoomView {
                room: r.id.clone(),
                name: r.name.clone(),
                api: r.api.clone(),
                link: links.get(&r.id).cloned().unwrap_or_default(),
                behind: replica.as_ref().map_or(0, |x| (x.heard - x.applied).max(0)),
                replica,
            }
        })
        .collect())
}

async fn rooms(State(site): State<Site>, headers: HeaderMap) -> Answer<RoomList> {
    who(&site, &headers, Role::Viewer).await?;
    Ok(Json(RoomList {
        items: room_views(&site).await?,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SinceQuery {
    since: Option<i64>,
    limit: Option<usize>,
}

#[derive(Serialize)]
struct RoomFeed {
    room: String,
    changes: Vec<Entry>,
}

/// A room's boxes as the site holds them, in the shape of the room's own change feed.
async fn room_changes(
    State(site): State<Site>,
    headers: HeaderMap,
    ApiPath(room): ApiPath<String>,
    ApiQuery(q): ApiQuery<SinceQuery>,
) -> Answer<RoomFeed> {
    who(&site, &headers, Role::Viewer).await?;
    if site.config.room(&room).is_none() {
        return Err(Problem::not_found(format!("no room '{room}' in this site")));
    }
    let limit = q
        .limit
        .unwrap_or(1000)
        .clamp(1, crate::location::FEED_PAGE_MAX);
    let changes = site
        .replica
        .feed(&room, q.since.unwrap_or(0), limit)
        .await
        .map_err(internal)?;
    Ok(Json(RoomFeed { room, changes }))
}

/// A room's plan and its ranges' states, as its controller gives them now.
#[derive(Serialize)]
struct RoomMap {
    room: String,
    /// The ranges as laid out (`GET /api/v1/room` of the room: carriages, sections, levels).
    layout: serde_json::Value,
    /// Each range's state (`GET /api/v1/ranges` of the room: open aisle, motion, locks).
    ranges: serde_json::Value,
}

async fn room_map(
    State(site): State<Site>,
    headers: HeaderMap,
    ApiPath(room): ApiPath<String>,
) -> Answer<RoomMap> {
    who(&site, &headers, Role::Viewer).await?;
    let Some(r) = site.config.room(&room) else {
        return Err(Problem::not_found(format!("no room '{room}' in this site")));
    };
    let token = r.token().map_err(internal)?;
    let unreachable = |e: String| {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            Kind::RoomUnreachable,
            format!("room {}'s controller cannot be reached: {e}", r.id),
        )
        .with("room", &r.id)
    };
    let fetch = |path: &'static str| {
        let request = site
            .http
            .get(format!("{}{path}", r.api))
            .bearer_auth(&token);
        async move {
            let response = request.send().await.map_err(|e| e.to_string())?;
            if !response.status().is_success() {
                return Err(format!("{path}: {}", response.status()));
            }
            response
                .json::<serde_json::Value>()
                .await
                .map_err(|e| e.to_string())
        }
    };
    let (layout, ranges) = tokio::join!(fetch("/api/v1/room"), fetch("/api/v1/ranges"));
    Ok(Json(RoomMap {
        room: r.id.clone(),
        layout: layout.map_err(unreachable)?["ranges"].take(),
        ranges: ranges.map_err(unreachable)?["items"].take(),
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchQuery {
    q: String,
    limit: Option<usize>,
    offset: Option<usize>,
}

async fn search(
    State(site): State<Site>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<SearchQuery>,
) -> Answer<SiteFound> {
    who(&site, &headers, Role::Viewer).await?;
    let limit = q.limit.unwrap_or(20);
    if !(1..=200).contains(&limit) || q.offset.unwrap_or(0) > 10_000 {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            Kind::BadQuery,
            "limit is 1 to 200 and offset 0 to 10,000",
        ));
    }
    Ok(Json(
        site.replica
            .search(&q.q, limit, q.offset.unwrap_or(0))
            .await
            .map_err(internal)?,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoomQuery {
    room: Option<String>,
}

/// Where a box is: its room, and the location its room gave (shelf, aisle, state).
#[derive(Serialize)]
struct SiteLocation {
    room: String,
    /// Whether the room is online now; the location is as the site last heard it.
    room_online: bool,
    #[serde(flatten)]
    location: serde_json::Value,
}

/// The one box of that number, or why not.
async fn the_box(site: &Site, key: replica::Key, room: Option<&str>) -> Result<SiteBox, Problem> {
    let archive_no = key.text().trim().to_string();
    let archive_no = archive_no.as_str();
    let mut found = site.replica.locate(&key, room).await.map_err(internal)?;
    match found.len() {
        0 => Err(Problem::new(
            StatusCode::NOT_FOUND,
            Kind::UnknownBox,
            format!("no box {archive_no} in any room of the site"),
        )
        .with("box", archive_no)),
        1 => Ok(found.remove(0)),
        _ => {
            let rooms: Vec<&str> = found.iter().map(|b| b.room.as_str()).collect();
            Err(Problem::new(
                StatusCode::CONFLICT,
                Kind::Ambiguous,
                format!(
                    "box {archive_no} is in rooms {}: say which with ?room=",
                    rooms.join(", ")
                ),
            )
            .with("box", archive_no)
            .with("rooms", rooms))
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LocateQuery {
    archive_no: Option<String>,
    epc: Option<String>,
    barcode: Option<String>,
    room: Option<String>,
}

/// Where a box is, by archive number, EPC or barcode (exactly one), as the room's
/// `/api/v1/locate` answers, with its room.
async fn locate(
    State(site): State<Site>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<LocateQuery>,
) -> Answer<SiteLocation> {
    who(&site, &headers, Role::Viewer).await?;
    let key = match (q.archive_no, q.epc, q.barcode) {
        (Some(no), None, None) => replica::Key::ArchiveNo(no),
        (None, Some(epc), None) => replica::Key::Epc(epc),
        (None, None, Some(code)) => replica::Key::Barcode(code),
        _ => {
            return Err(Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                Kind::BadQuery,
                "give exactly one of archive_no, epc or barcode",
            ));
        }
    };
    let archive_no = key.text().to_string();
    let found = the_box(&site, key, q.room.as_deref()).await?;
    let Some(location) = found.record.get("location").filter(|l| !l.is_null()) else {
        return Err(Problem::new(
            StatusCode::NOT_FOUND,
            Kind::BoxNotOnShelf,
            format!(
                "box {} is registered in room {} but not on any shelf",
                archive_no.trim(),
                found.room
            ),
        )
        .with("box", archive_no.trim())
        .with("room", &found.room));
    };
    let online = site.links().get(&found.room).is_some_and(|l| l.online);
    Ok(Json(SiteLocation {
        room_online: online,
        room: found.room,
        location: location.clone(),
    }))
}

/// Opens the box's aisle through its room's controller, for the bearer: the room records
/// it as its token for the site, for the bearer's name. The room's answer is handed on,
/// with the room.
async fn retrieve(
    State(site): State<Site>,
    headers: HeaderMap,
    ApiPath(archive_no): ApiPath<String>,
    ApiQuery(q): ApiQuery<RoomQuery>,
) -> Result<Response, Problem> {
    let name = who(&site, &headers, Role::Operator).await?;
    let found = the_box(
        &site,
        replica::Key::ArchiveNo(archive_no.clone()),
        q.room.as_deref(),
    )
    .await?;
    let room = site
        .config
        .room(&found.room)
        .ok_or_else(|| internal(format!("room {} is not configured", found.room)))?;
    let token = room.token().map_err(internal)?;
    let number = found
        .record
        .get("archive_no")
        .and_then(|n| n.as_str())
        .unwrap_or(archive_no.trim())
        .to_string();
    let url = format!(
        "{}/api/v1/boxes/{}/retrieve",
        room.api,
        percent_encoding::utf8_percent_encode(&number, percent_encoding::NON_ALPHANUMERIC)
    );
    let action = format!("retrieve {number} in {}", room.id);
    let sent = site
        .http
        .post(&url)
        .bearer_auth(token)
        .header(crate::api::ON_BEHALF, &name)
        .send()
        .await;
    let response = match sent {
        Ok(r) => r,
        Err(e) => {
            let shelf = found.record["location"]["shelf"]["words"]
                .as_str()
                .unwrap_or("its shelf");
            // Not connected: the request never left. Otherwise it may have reached the
            // room: whatever it started there, the room's controller supervises; the site
            // cannot say it did nothing.
            let (status, outcome, detail) = if e.is_connect() {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "room unreachable: not sent",
                    format!(
                        "room {}'s controller cannot be reached ({e}); nothing was sent and nothing moved. The box is at {shelf}",
                        room.id
                    ),
                )
            } else {
                (
                    StatusCode::GATEWAY_TIMEOUT,
                    "sent, no answer",
                    format!(
                        "room {} did not answer ({e}): the aisle may be opening, under the room controller's supervision; look at the room's ranges before asking again. The box is at {shelf}",
                        room.id
                    ),
                )
            };
            let _ = site.replica.record(&name, &action, outcome).await;
            return Err(Problem::new(status, Kind::RoomUnreachable, detail)
                .with("room", &room.id)
                .with("box", &number)
                .with("sent", !e.is_connect()));
        }
    };
    let status = response.status();
    let body: serde_json::Value = response.json().await.unwrap_or_else(
        |e| serde_json::json!({"detail": format!("the room's answer cannot be read: {e}")}),
    );
    let _ = site.replica.record(&name, &action, status.as_str()).await;
    let mut body = body;
    if let Some(o) = body.as_object_mut() {
        o.insert("room".into(), serde_json::Value::String(room.id.clone()));
    }
    let status = StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    Ok((status, Json(body)).into_response())
}

#[derive(Serialize)]
struct Stats {
    site: String,
    rooms: usize,
    online: usize,
    /// Boxes across the site by state.
    boxes: std::collections::BTreeMap<String, u64>,
    total: u64,
    per_room: Vec<RoomView>,
}

async fn stats(State(site): State<Site>, headers: HeaderMap) -> Answer<Stats> {
    who(&site, &headers, Role::Viewer).await?;
    let per_room = room_views(&site).await?;
    let mut boxes = std::collections::BTreeMap::new();
    for r in per_room.iter().filter_map(|r| r.replica.as_ref()) {
        for (state, n) in &r.boxes {
            *boxes.entry(state.clone()).or_insert(0) += n;
        }
    }
    Ok(Json(Stats {
        site: site.config.site_id.clone(),
        rooms: per_room.len(),
        online: per_room.iter().filter(|r| r.link.online).count(),
        total: boxes.values().sum(),
        boxes,
        per_room,
    }))
}

#[derive(Serialize)]
struct AuditList {
    items: Vec<serde_json::Value>,
}

async fn audit(State(site): State<Site>, headers: HeaderMap) -> Answer<AuditList> {
    who(&site, &headers, Role::Admin).await?;
    Ok(Json(AuditList {
        items: site.replica.audit(500).await.map_err(internal)?,
    }))
}

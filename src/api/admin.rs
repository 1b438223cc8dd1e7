//! Admin routes: tokens and the audit trail.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{ApiJson, ApiPath, ApiQuery, ApiResult, AppState, Problem, Who, parse_moment};
use crate::access::{Role, TokenView};
use crate::audit::{Entry, Filter};

#[derive(Serialize, ToSchema)]
pub(super) struct TokenList {
    items: Vec<TokenView>,
}

/// Every token, live and revoked (never a secret).
#[utoipa::path(get, path = "/api/v1/tokens", tag = "system",
    responses((status = 200, body = TokenList), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub(super) async fn list_tokens(State(s): State<AppState>) -> ApiResult<TokenList> {
    Ok(Json(TokenList {
        items: s.access.list().await?,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewToken {
    /// Letters, digits, `-`, `_`, `.`; recorded as the actor of what the token does.
    name: String,
    role: Role,
    /// Days until the token expires (1 to 3650); none: it does not expire.
    #[serde(default)]
    expires_in_days: Option<u32>,
}

#[derive(Serialize, ToSchema)]
pub(super) struct CreatedToken {
    #[serde(flatten)]
    token: TokenView,
    /// The secret, shown this once: `Authorization: Bearer <token>`.
    secret: String,
}

/// Make a token; its secret is in this answer and nowhere else.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "system", request_body = NewToken,
    responses((status = 201, body = CreatedToken), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub(super) async fn create_token(
    State(s): State<AppState>,
    Who(who): Who,
    ApiJson(new): ApiJson<NewToken>,
) -> Result<impl IntoResponse, Problem> {
    let expires = match new.expires_in_days {
        None => None,
        Some(d @ 1..=3650) => Some(chrono::Duration::days(d.into())),
        Some(_) => return Err(Problem::invalid("expires_in_days", "1 to 3650 days")),
    };
    let (secret, token) = s
        .access
        .create(&new.name, new.role, &who.name, expires)
        .await?;
    Ok((StatusCode::CREATED, Json(CreatedToken { token, secret })))
}

/// Revoke the live token of that name; it opens nothing from now on.
#[utoipa::path(delete, path = "/api/v1/tokens/{name}", tag = "system",
    params(("name" = String, Path)),
    responses((status = 204), (status = 404, body = Problem)))]
pub(super) async fn revoke_token(
    State(s): State<AppState>,
    Who(who): Who,
    ApiPath(name): ApiPath<String>,
) -> Result<StatusCode, Problem> {
    s.access.revoke(&name, &who.name).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub(super) struct AuditQuery {
    /// From this moment (RFC 3339, or a day meaning its start, UTC).
    since: Option<String>,
    /// Only this actor (a token's name, `cli`, `anonymous`, …).
    actor: Option<String>,
    /// Only `request`, `denied`, `motion` or `token`.
    kind: Option<String>,
    /// At most this many (1 to 10000, default 1000), oldest first.
    limit: Option<usize>,
}

#[derive(Serialize, ToSchema)]
pub(super) struct AuditList {
    items: Vec<Entry>,
}

/// The audit trail: changes asked through the API, refusals at the door, motions, tokens.
#[utoipa::path(get, path = "/api/v1/audit", tag = "system", params(AuditQuery),
    responses((status = 200, body = AuditList), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub(super) async fn audit_trail(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> ApiResult<AuditList> {
    let limit = q.limit.unwrap_or(1000);
    if !(1..=10_000).contains(&limit) {
        return Err(Problem::invalid("limit", "is 1 to 10000"));
    }
    if let Some(kind) = q.kind.as_deref()
        && ![
            "request", "denied", "motion", "token", "alarm", "print", "export", "gate",
        ]
        .contains(&kind)
    {
        return Err(Problem::invalid(
            "kind",
            format!(
                "'{kind}' is not a kind: request, denied, motion, token, alarm, print, export or gate"
            ),
        ));
    }
    let since: Option<DateTime<Utc>> = match q.since.as_deref() {
        Some(text) => Some(parse_moment(text, false).map_err(|p| p.field("since"))?),
        None => None,
    };
    let items = s
        .audit
        .query(Filter {
            since,
            actor: q.actor,
            kind: q.kind,
            limit,
        })
        .await
        .map_err(|e| Problem::from(crate::location::LocationError::from(e)))?;
    Ok(Json(AuditList { items }))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub(super) struct LookupQuery {
    /// Only lookups of this box.
    archive_no: Option<String>,
    /// Only lookups by this token.
    actor: Option<String>,
    /// From this moment (RFC 3339, or a day meaning its start, UTC).
    since: Option<String>,
    /// At most this many, newest first (1 to 100000, default 1000).
    limit: Option<usize>,
    /// `json` (default) or `csv`.
    format: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(super) struct LookupList {
    items: Vec<crate::lookups::LookupView>,
}

/// The lookup register (查阅登记): who was shown which box, when, how and why; as JSON or,
/// with `format=csv`, as a file (the export is itself in the audit trail).
#[utoipa::path(get, path = "/api/v1/lookups", tag = "system", params(LookupQuery),
    responses((status = 200, body = LookupList), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub(super) async fn lookups(
    State(s): State<AppState>,
    Who(who): Who,
    ApiQuery(q): ApiQuery<LookupQuery>,
) -> Result<axum::response::Response, Problem> {
    let limit = q.limit.unwrap_or(1000);
    if !(1..=100_000).contains(&limit) {
        return Err(Problem::invalid("limit", "is 1 to 100000"));
    }
    let csv = super::wants_csv(q.format.as_deref())?;
    let since = match q.since.as_deref() {
        Some(text) => Some(
            parse_moment(text, false)
                .map_err(|p| p.field("since"))?
                .timestamp_millis(),
        ),
        None => None,
    };
    let items = s
        .lookups
        .list(crate::lookups::Filter {
            archive_no: q.archive_no,
            actor: q.actor,
            since,
            limit,
        })
        .await?;
    if !csv {
        return Ok(Json(LookupList { items }).into_response());
    }
    let header = ["at", "actor", "archive_no", "what", "purpose"];
    let mut rows = vec![header.map(String::from).to_vec()];
    rows.extend(items.iter().map(|l| {
        vec![
            l.at.to_rfc3339(),
            l.actor.clone(),
            l.archive_no.clone(),
            l.what.clone(),
            l.purpose.clone().unwrap_or_default(),
        ]
    }));
    let body = super::csv_bytes(&rows)?;
    s.audit
        .record(crate::audit::NewEntry::new(
            &who.name,
            "export",
            "lookup register as CSV",
            format!("{} rows", items.len()),
        ))
        .await;
    Ok(super::file_response(
        body,
        super::CSV,
        "attachment",
        "lookups.csv",
    ))
}

//! The API's door: every route but `health` needs a bearer token whose role is high
//! enough; every change asked (and every refusal at the door) goes into the audit trail.
//!
//! `Authorization: Bearer srt_…`. Only the event stream, which a browser's EventSource
//! opens without headers, also takes `?ticket=srk_…` (from `POST /api/v1/events/ticket`:
//! used once, within 30 s) or `?access_token=srt_…`. 401 without a valid token, 403 with too low a role,
//! both as problem+json. An address that keeps failing is slowed down: after five failures
//! each failed answer waits twice as long as the one before, up to five seconds, until ten
//! minutes pass without one, and each valid token from the address halves its count; the
//! failure is counted before the wait (hanging up early does not help) and a valid token is
//! never held, whoever else failed from its address (behind a proxy, everyone shares one). Denied anonymous requests go into the audit trail counted
//! per source and route once a minute, so a flood cannot flood the append-only trail.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::Kind;
use super::{AppState, Problem, ProblemInfo};
use crate::access::{Identity, Role};
use crate::audit::NewEntry;

/// The identity of the request's token, for handlers.
pub struct Who(pub Identity);

impl<S: Send + Sync> FromRequestParts<S> for Who {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Who, Problem> {
        parts
            .extensions
            .get::<Identity>()
            .cloned()
            .map(Who)
            .ok_or_else(|| Problem::new(StatusCode::UNAUTHORIZED, Kind::Unauthorized, "no token"))
    }
}

/// The role a route needs; `None`: open to all (`health`). `path` is the route's template.
pub(super) fn required(method: &Method, path: Option<&str>) -> Option<Role> {
    use Role::*;
    // A route that does not exist needs a token before it is told so.
    let Some(path) = path else {
        return Some(Viewer);
    };
    Some(match (method.as_str(), path) {
        (_, "/api/v1/health") => return None,
        (_, "/api/v1/audit" | "/api/v1/tokens" | "/api/v1/tokens/{name}" | "/api/v1/lookups") => {
            Admin
        }
        // Retention and disposal are an archivist's; deciding a disposal an approver's.
        (
            "GET" | "HEAD",
            "/api/v1/appraisal"
            | "/api/v1/disposals"
            | "/api/v1/disposals/{id}"
            | "/api/v1/disposals/{id}/certificate"
            | "/api/v1/register",
        )
        | ("POST", "/api/v1/disposals" | "/api/v1/disposals/{id}/carry-out")
        | ("POST", "/api/v1/boxes/{archive_no}/contents") => Archivist,
        // Intake: the batches and their checks are an archivist's.
        ("GET" | "HEAD", "/api/v1/transfers" | "/api/v1/transfers/{id}")
        | (
            "POST",
            "/api/v1/transfers"
            | "/api/v1/transfers/csv"
            | "/api/v1/transfers/{id}/receive"
            | "/api/v1/transfers/{id}/accept",
        ) => Archivist,
        ("POST", "/api/v1/disposals/{id}/approve" | "/api/v1/disposals/{id}/reject") => Approver,
        // Printing customers' labels is watched and an archivist's.
        (_, "/api/v1/boxes/{archive_no}/label" | "/api/v1/labels") => Archivist,
        ("GET" | "HEAD", _)
        | ("POST", "/api/v1/events/ticket")
        | ("POST" | "DELETE", "/api/v1/session") => Viewer,
        (
            "POST",
            "/api/v1/ranges/{range}/aisles/{aisle}/open"
            | "/api/v1/ranges/{range}/close"
            | "/api/v1/ranges/{range}/ventilate"
            | "/api/v1/ranges/{range}/stop"
            | "/api/v1/boxes/{archive_no}/retrieve"
            | "/api/v1/sweeps"
            | "/api/v1/alarms/{id}/ack"
            | "/api/v1/loans"
            | "/api/v1/loans/{id}/approve"
            | "/api/v1/loans/{id}/reject"
            | "/api/v1/loans/{id}/cancel"
            | "/api/v1/loans/{id}/checkout"
            | "/api/v1/loans/{id}/return"
            | "/api/v1/loans/{id}/extend",
        )
        | ("DELETE", "/api/v1/sweeps/{id}") => Operator,
        ("PATCH", "/api/v1/boxes/{archive_no}") | ("POST", "/api/v1/loans/{id}/settle") => {
            Archivist
        }
        ("POST", "/api/v1/boxes" | "/api/v1/bindings/moves" | "/api/v1/import/boxes")
        | (
            "PUT" | "DELETE",
            "/api/v1/boxes/{archive_no}/binding" | "/api/v1/boxes/{archive_no}/place",
        ) => Archivist,
        _ => Admin,
    })
}

/// The role a sweep with `apply: sync` needs (it re-binds boxes), checked by its handler.
pub(super) const SYNC_ROLE: Role = Role::Archivist;

/// Failed attempts per client, and the denied anonymous requests not yet in the trail.
#[derive(Default)]
pub struct Failures {
    by_client: Mutex<HashMap<IpAddr, (u32, Instant)>>,
    pub denied: DeniedLog,
}

/// Denied anonymous requests, counted per source and request line until the next
/// [`DeniedLog::write`].
#[derive(Default)]
pub struct DeniedLog {
    counts: Mutex<HashMap<(String, String), u64>>,
}

/// Characters of a request line kept in the trail.
const DENIED_LINE: usize = 120;
/// Sources and lines counted apart at most per minute; beyond, they are counted together.
const DENIED_KEYS: usize = 1000;

impl DeniedLog {
    pub fn note(&self, source: String, line: String) {
        let mut line = line;
        if line.len() > DENIED_LINE {
            let cut = (0..=DENIED_LINE)
                .rev()
                .find(|i| line.is_char_boundary(*i))
                .unwrap_or(0);
            line.truncate(cut);
            line.push('…');
        }
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let key = if counts.len() >= DENIED_KEYS
            && !counts.contains_key(&(source.clone(), line.clone()))
        {
            ("many sources".to_string(), "many requests".to_string())
        } else {
            (source, line)
        };
        *counts.entry(key).or_default() += 1;
    }

    /// What was counted since the last call, emptied.
    pub fn take(&self) -> Vec<(String, String, u64)> {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<_> = counts.drain().map(|((s, l), n)| (s, l, n)).collect();
        out.sort();
        out
    }

    /// Writes one audit row per source and request line counted, every `every`, for ever.
    pub async fn write(self: &DeniedLog, audit: &crate::audit::Audit, every: Duration) {
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tick.tick().await;
            for (source, line, n) in self.take() {
                audit
                    .record(
                        NewEntry::new("anonymous", "denied", &line, format!("401 x{n}")).detail(
                            format!("{n} from {source} in the last {} s", every.as_secs()),
                        ),
                    )
                    .await;
            }
        }
    }
}

/// Failures a client may have before it is slowed down.
const FREE_FAILURES: u32 = 5;
const MAX_DELAY: Duration = Duration::from_secs(5);
const FORGET_AFTER: Duration = Duration::from_secs(600);
/// Clients remembered at most (the oldest are forgotten first).
const MAX_CLIENTS: usize = 10_000;

impl Failures {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, (u32, Instant)>> {
        self.by_client
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How long to hold a client's answer.
    pub fn delay(&self, client: IpAddr) -> Duration {
        match self.lock().get(&client) {
            Some((n, at)) if *n > FREE_FAILURES && at.elapsed() < FORGET_AFTER => {
                let doublings = (*n - FREE_FAILURES - 1).min(16);
                (Duration::from_millis(100) * 2u32.pow(doublings)).min(MAX_DELAY)
            }
            _ => Duration::ZERO,
        }
    }

    /// A valid token came from `client`: someone legitimate is there, so its count halves
    /// (a guesser behind the same proxy keeps most of its count; a user's typo is soon
    /// forgotten).
    pub fn succeed(&self, client: IpAddr) {
        if let Some((n, _)) = self.lock().get_mut(&client) {
            *n /= 2;
        }
    }

    pub fn fail(&self, client: IpAddr) {
        let mut all = self.lock();
        if all.len() >= MAX_CLIENTS && !all.contains_key(&client) {
            all.retain(|_, (_, at)| at.elapsed() < FORGET_AFTER);
            if all.len() >= MAX_CLIENTS
                && let Some(oldest) = all.iter().min_by_key(|(_, (_, at))| *at).map(|(ip, _)| *ip)
            {
                all.remove(&oldest);
            }
        }
        let entry = all.entry(client).or_insert((0, Instant::now()));
        if entry.1.elapsed() >= FORGET_AFTER {
            entry.0 = 0;
        }
        entry.0 += 1;
        entry.1 = Instant::now();
    }
}

/// The route a browser's EventSource opens, which cannot send a header.
const EVENTS: &str = "/api/v1/events";

/// What the request offers as proof: a token in the header, or (the event stream only) a
/// ticket or a token in the query.
enum Credential {
    Token(String),
    Ticket(String),
    /// The staff page's session cookie.
    Session(String),
}

/// The cookie that keeps a browser signed in (`POST /api/v1/session`).
pub(super) const SESSION_COOKIE: &str = "stackroom_session";
/// What a request signed in by the session cookie must carry to change anything: a
/// header no cross-site form can set (the cookie is `SameSite=Strict` as well).
pub(super) const SESSION_HEADER: (&str, &str) = ("x-requested-with", "stackroom");

/// The value of cookie `name`, if the request carries it.
pub(super) fn cookie(headers: &axum::http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

fn credential(req: &Request, template: Option<&str>) -> Option<Credential> {
    if let Some(value) = req.headers().get(header::AUTHORIZATION) {
        let value = value.to_str().ok()?;
        let (scheme, token) = value.split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| Credential::Token(token.trim().to_string()));
    }
    if let Some(session) = cookie(req.headers(), SESSION_COOKIE) {
        return Some(Credential::Session(session));
    }
    if req.method() != Method::GET || template != Some(EVENTS) {
        return None;
    }
    let query = req.uri().query()?;
    let param = |name: &str| {
        query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    };
    param("ticket")
        .map(Credential::Ticket)
        .or_else(|| param("access_token").map(Credential::Token))
}

fn changes(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The middleware: who is it, may they, and what came of it.
pub(super) async fn guard(State(s): State<AppState>, mut req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let template = req.extensions().get::<MatchedPath>().cloned(); // a shared str
    let template = template.as_ref().map(MatchedPath::as_str);
    let Some(need) = required(&method, template) else {
        return next.run(req).await;
    };
    let action = |req: &Request| format!("{method} {}", req.uri().path());
    let client = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let offered = credential(&req, template);
    let checked = match &offered {
        Some(Credential::Token(secret)) => s.access.authenticate(secret).await,
        Some(Credential::Ticket(ticket)) => s.access.redeem(ticket).await,
        Some(Credential::Session(session)) => s.access.resume(session).await,
        None => Ok(None),
    };
    let identity = match checked {
        Ok(found) => found,
        Err(e) => {
            tracing::error!(error = %e, "cannot check a token");
            return Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                Kind::Internal,
                e.to_string(),
            )
            .into_response();
        }
    };
    let Some(identity) = identity else {
        // Only a credential that fails is a guess: the staff page asks without one to learn
        // whether its session cookie is still there.
        if let Some(ip) = client.filter(|_| offered.is_some()) {
            s.failures.fail(ip);
            let wait = s.failures.delay(ip);
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
        }
        let expired = match &offered {
            Some(Credential::Token(secret)) => s.access.expired_at(secret).await.ok().flatten(),
            _ => None,
        };
        let detail = if let Some(at) = expired {
            format!(
                "the token expired at {}; ask for a new one",
                at.format("%Y-%m-%d %H:%M UTC")
            )
        } else if req.headers().contains_key(header::AUTHORIZATION) {
            "the token is not valid: unknown or revoked".into()
        } else if matches!(offered, Some(Credential::Session(_))) {
            "the session has ended (signed out, timed out, the controller restarted or its token revoked): sign in again".into()
        } else if req.uri().query().is_some_and(|q| q.contains("ticket=")) {
            "the ticket is not valid: unknown, used, expired or its token revoked".into()
        } else {
            "this route needs a token: Authorization: Bearer srt_… (stackroom token create)".into()
        };
        let kind = if expired.is_some() {
            Kind::TokenExpired
        } else {
            Kind::Unauthorized
        };
        if changes(&method) {
            let source = client.map_or_else(|| "unknown".to_string(), |ip| ip.to_string());
            s.failures.denied.note(source, action(&req));
        }
        let mut problem = Problem::new(StatusCode::UNAUTHORIZED, kind, detail);
        if let Some(at) = expired {
            problem = problem.with("at", at.to_rfc3339());
        }
        return ([(header::WWW_AUTHENTICATE, "Bearer")], problem).into_response();
    };
    if let Some(ip) = client {
        s.failures.succeed(ip);
    }
    tracing::Span::current().record("who", identity.name.as_str());
    let by_cookie = matches!(offered, Some(Credential::Session(_)));
    let (name, value) = SESSION_HEADER;
    if by_cookie && changes(&method) && req.headers().get(name).is_none_or(|v| v != value) {
        return Problem {
            reason: Some("cross_site"),
            ..Problem::new(
                StatusCode::FORBIDDEN,
                Kind::Forbidden,
                format!(
                    "a change signed in by the session cookie carries the header {name}: {value}"
                ),
            )
        }
        .into_response();
    }
    if identity.role < need {
        s.audit
            .record(
                NewEntry::new(&identity.name, "denied", action(&req), "403")
                    .detail(format!("role {} needs {need}", identity.role)),
            )
            .await;
        return Problem::new(
            StatusCode::FORBIDDEN,
            Kind::Forbidden,
            format!(
                "token '{}' is a {}; this needs {need} or above",
                identity.name, identity.role
            ),
        )
        .with("role", identity.role)
        .with("need", need)
        .into_response();
    }
    // A service acting for a person (the site forwarding a retrieve) names them: what the
    // request does is recorded as the token's, for them.
    let identity = match on_behalf(&req) {
        Ok(None) => identity,
        Ok(Some(person)) => Identity {
            name: format!("{} for {person}", identity.name),
            ..identity
        },
        Err(detail) => {
            return Problem::new(StatusCode::BAD_REQUEST, Kind::BadHeader, detail).into_response();
        }
    };
    // Only what changes something is recorded: a read keeps its path to itself.
    let recorded = changes(&method).then(|| action(&req));
    req.extensions_mut().insert(identity.clone());
    let response = next.run(req).await;
    if let Some(action) = recorded {
        let status = response.status().as_u16().to_string();
        let outcome = match response.extensions().get::<ProblemInfo>() {
            Some(p) => match p.reason {
                Some(reason) => format!("{status} {}: {reason}", p.kind),
                None => format!("{status} {}", p.kind),
            },
            None => status,
        };
        s.audit
            .record(NewEntry::new(&identity.name, "request", &action, outcome))
            .await;
    }
    response
}

/// The header in which a service names the person it acts for.
pub const ON_BEHALF: &str = "stackroom-on-behalf-of";

/// The person a request is made for, if it names one: at most 64 printable characters.
fn on_behalf(req: &Request) -> Result<Option<&str>, String> {
    let Some(value) = req.headers().get(ON_BEHALF) else {
        return Ok(None);
    };
    let bad = || format!("{ON_BEHALF} names a person: 1 to 64 printable characters");
    let person = value.to_str().map_err(|_| bad())?.trim();
    if person.is_empty() || person.chars().count() > 64 || person.chars().any(char::is_control) {
        return Err(bad());
    }
    Ok(Some(person))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_that_keeps_failing_waits_longer_and_longer() {
        let f = Failures::default();
        let ip: IpAddr = [192, 0, 2, 1].into();
        for _ in 0..FREE_FAILURES {
            f.fail(ip);
        }
        assert_eq!(f.delay(ip), Duration::ZERO);
        f.fail(ip);
        assert_eq!(f.delay(ip), Duration::from_millis(100));
        f.fail(ip);
        assert_eq!(f.delay(ip), Duration::from_millis(200));
        for _ in 0..20 {
            f.fail(ip);
        }
        assert_eq!(f.delay(ip), MAX_DELAY);
        assert_eq!(
            f.delay([192, 0, 2, 2].into()),
            Duration::ZERO,
            "keyed by address"
        );
        // 26 failures: halved once it is still at the longest wait; five more halvings
        // bring it under the free failures.
        f.succeed(ip);
        assert_eq!(f.delay(ip), MAX_DELAY, "a guesser keeps most of its count");
        for _ in 0..5 {
            f.succeed(ip);
        }
        assert_eq!(f.delay(ip), Duration::ZERO);
    }

    #[test]
    fn a_flood_of_denied_requests_is_one_row_per_source_and_line() {
        let log = DeniedLog::default();
        for _ in 0..1000 {
            log.note("192.0.2.1".into(), "POST /api/v1/ranges/1/close".into());
        }
        log.note(
            "192.0.2.9".into(),
            format!("POST /api/v1/{}", "x".repeat(5000)),
        );
        let rows = log.take();
        assert_eq!(rows.len(), 2);
        assert_eq!(
            rows[0],
            (
                "192.0.2.1".into(),
                "POST /api/v1/ranges/1/close".into(),
                1000
            )
        );
        assert!(rows[1].1.chars().count() <= DENIED_LINE + 1, "cut");
        assert!(log.take().is_empty(), "taken once");
        for i in 0..(DENIED_KEYS + 50) {
            log.note(format!("10.0.{}.{}", i / 256, i % 256), "GET /".into());
        }
        assert_eq!(log.take().len(), DENIED_KEYS + 1, "bounded");
    }
}

//! Who may do what: API tokens and their roles.
//!
//! A token is 32 random bytes, shown once as `srt_` and 64 hex digits; only its SHA-256
//! is stored (the secret has 256 bits of entropy, so a fast hash is enough: nobody can try
//! their way back to it). Roles are ordered, each with the rights of the one before:
//! `viewer` (locate, search, read states and reports), `operator` (+ open, close and
//! ventilate aisles, stop, retrieve, start and cancel sweeps), `archivist` (+ register,
//! bind, import, sweeps that re-bind), `admin` (+ tokens, lock and unlock, the audit trail).

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use rand::RngExt;
use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::audit::{Audit, NewEntry};
use crate::store::{Store, StoreError};
use crate::time::{Clock, SystemClock, wall};

/// What a token may do; each role has the rights of those before it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Viewer,
    Operator,
    Archivist,
    /// Approves loans that need approval (and may do what an archivist may).
    Approver,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Archivist => "archivist",
            Role::Approver => "approver",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Role, String> {
        match s {
            "viewer" => Ok(Role::Viewer),
            "operator" => Ok(Role::Operator),
            "archivist" => Ok(Role::Archivist),
            "approver" => Ok(Role::Approver),
            "admin" => Ok(Role::Admin),
            other => Err(format!(
                "'{other}' is not a role: viewer, operator, archivist, approver or admin"
            )),
        }
    }
}

/// Who a request comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The token's name; recorded as the actor of what it does.
    pub name: String,
    pub role: Role,
}

/// A token as listed (never its secret).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TokenView {
    pub name: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// Past this the token opens nothing; none: it does not expire.
    pub expires_at: Option<DateTime<Utc>>,
}

/// Why a token operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("a live token is already named '{0}'; revoke it first or choose another name")]
    NameTaken(String),
    #[error("no live token is named '{0}'")]
    NoSuchToken(String),
    #[error("a token name is 1 to 64 letters, digits, '-', '_' or '.'; '{0}' is not")]
    BadName(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for AccessError {
    fn from(e: rusqlite::Error) -> Self {
        AccessError::Store(StoreError::Sqlite(e))
    }
}

/// The SHA-256 of a secret, hex.
fn hash(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()).into())
}

fn hex(digest: &[u8; 32]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(64);
    for &b in digest {
        out.push(HEX[usize::from(b >> 4)] as char);
        out.push(HEX[usize::from(b & 15)] as char);
    }
    out
}

/// The tokens of a room; cheap to clone.
#[derive(Clone)]
pub struct Access {
    store: Store,
    audit: Audit,
    /// Wall time, for expiry: the system's, or a test's.
    clock: std::sync::Arc<dyn Clock>,
    /// Event-stream tickets not yet used: who, and until when.
    tickets: std::sync::Arc<std::sync::Mutex<HashMap<String, (Identity, std::time::Instant)>>>,
    /// Tokens checked lately.
    checked: std::sync::Arc<TokenCache>,
    /// Signed-in browsers (the staff page's session cookie): who, and until when.
    sessions: std::sync::Arc<std::sync::Mutex<HashMap<String, (Identity, std::time::Instant)>>>,
}

/// How long a browser stays signed in: a working day and a bit.
pub const SESSION_LIFETIME: std::time::Duration = std::time::Duration::from_secs(12 * 3600);
/// Sessions kept at most; past it, a new one takes the place of the one nearest its end.
const MAX_SESSIONS: usize = 10_000;

/// `N` random bytes in hex, after a prefix that says what they are.
fn secret<const N: usize>(prefix: &str) -> String {
    let bytes: [u8; N] = rand::rng().random();
    std::iter::once(prefix.to_string())
        .chain(bytes.iter().map(|b| format!("{b:02x}")))
        .collect()
}

/// How long an event-stream ticket may wait to be used.
pub const TICKET_LIFETIME: std::time::Duration = std::time::Duration::from_secs(30);
/// Unused tickets kept at most.
const MAX_TICKETS: usize = 10_000;

impl Access {
    pub fn new(store: Store, audit: Audit) -> Access {
        Access {
            checked: std::sync::Arc::new(TokenCache::beside(store.path())),
            store,
            audit,
            clock: std::sync::Arc::new(SystemClock),
            tickets: Default::default(),
            sessions: Default::default(),
        }
    }

    /// The same tokens, reading wall time from `clock`.
    pub fn with_clock(self, clock: std::sync::Arc<dyn Clock>) -> Access {
        Access { clock, ..self }
    }

    /// A ticket for one event stream of `who` (a browser's EventSource cannot send a
    /// header): used once, within [`TICKET_LIFETIME`], it stands for the token.
    pub fn ticket(&self, who: &Identity) -> String {
        let ticket = secret::<24>("srk_");
        let now = std::time::Instant::now();
        let mut tickets = self.tickets.lock().unwrap_or_else(|p| p.into_inner());
        tickets.retain(|_, (_, until)| *until > now);
        if tickets.len() < MAX_TICKETS {
            tickets.insert(ticket.clone(), (who.clone(), now + TICKET_LIFETIME));
        }
        ticket
    }

    /// Whose ticket this is, if it is unused and in time; it is used up either way.
    pub async fn redeem(&self, ticket: &str) -> Result<Option<Identity>, AccessError> {
        let found = {
            let mut tickets = self.tickets.lock().unwrap_or_else(|p| p.into_inner());
            tickets
                .remove(ticket)
                .filter(|(_, until)| *until > std::time::Instant::now())
        };
        match found {
            // The token may have been revoked since.
            Some((who, _)) if self.is_live(&who.name).await? => Ok(Some(who)),
            _ => Ok(None),
        }
    }

    /// A session for a browser signed in as `who`: it stands for the token for
    /// [`SESSION_LIFETIME`], kept in this process only (a restart signs browsers out),
    /// and ends with the token (revoked or expired) or when ended.
    pub fn open_session(&self, who: &Identity) -> String {
        let session = secret::<32>("srs_");
        let now = std::time::Instant::now();
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        sessions.retain(|_, (_, until)| *until > now);
        if sessions.len() >= MAX_SESSIONS {
            // Full: the session nearest its end makes room, so the new one always works.
            let oldest = sessions
                .iter()
                .min_by_key(|(_, (_, until))| *until)
                .map(|(key, _)| key.clone());
            if let Some(oldest) = oldest {
                sessions.remove(&oldest);
            }
        }
        sessions.insert(session.clone(), (who.clone(), now + SESSION_LIFETIME));
        session
    }

    /// Whose session this is, if it is in time and its token still live.
    pub async fn resume(&self, session: &str) -> Result<Option<Identity>, AccessError> {
        let found = {
            let sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
            sessions
                .get(session)
                .filter(|(_, until)| *until > std::time::Instant::now())
                .map(|(who, _)| who.clone())
        };
        match found {
            Some(who) if self.is_live(&who.name).await? => Ok(Some(who)),
            _ => Ok(None),
        }
    }

    /// Ends a session (signing out).
    pub fn end_session(&self, session: &str) {
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        sessions.remove(session);
    }

    /// Makes a token; the secret is returned this once and never again.
    pub async fn create(
        &self,
        name: &str,
        role: Role,
        by: &str,
        expires_in: Option<chrono::Duration>,
    ) -> Result<(String, TokenView), AccessError> {
        let ok_name = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if !ok_name {
            return Err(AccessError::BadName(name.to_string()));
        }
        let secret = secret::<32>("srt_");
        let (hashed, name_, now) = (hash(&secret), name.to_string(), self.clock.now_ms());
        let expires = expires_in.map(|d| now + d.num_milliseconds());
        let view = self
            .store
            .write(move |conn| {
                // An expired token gives its name back: it is closed as revoked when it
                // expired.
                conn.prepare_cached(
                    "UPDATE tokens SET revoked_at = expires_at WHERE name = ?1 AND revoked_at IS NULL AND expires_at <= ?2",
                )?
                .execute(params![name_, now])?;
                let taken: bool = conn
                    .prepare_cached("SELECT 1 FROM tokens WHERE name = ?1 AND revoked_at IS NULL")?
                    .exists([&name_])?;
                if taken {
                    return Err(AccessError::NameTaken(name_));
                }
                conn.prepare_cached(
                    "INSERT INTO tokens (name, role, hash, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                )?
                .execute(params![name_, role.as_str(), hashed, now, expires])?;
                Ok(TokenView {
                    name: name_,
                    role,
                    created_at: wall(now),
                    revoked_at: None,
                    expires_at: expires.map(wall),
                })
            })
            .await?;
        self.audit
            .record(
                NewEntry::new(by, "token", format!("create token {name}"), "done")
                    .detail(format!("role {role}")),
            )
            .await;
        Ok((secret, view))
    }

    /// Every token, live and revoked, oldest first.
    pub async fn list(&self) -> Result<Vec<TokenView>, AccessError> {
        self.store
            .read(|conn| {
                let rows = conn
                    .prepare("SELECT name, role, created_at, revoked_at, expires_at FROM tokens ORDER BY id")?
                    .query_map([], |r| {
                        let role: String = r.get(1)?;
                        Ok(TokenView {
                            name: r.get(0)?,
                            role: role.parse().unwrap_or(Role::Viewer),
                            created_at: wall(r.get(2)?),
                            revoked_at: r.get::<_, Option<i64>>(3)?.map(wall),
                            expires_at: r.get::<_, Option<i64>>(4)?.map(wall),
                        })
                    })?
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(rows)
            })
            .await
    }

    /// Revokes the live token named `name`: it opens nothing from now on.
    pub async fn revoke(&self, name: &str, by: &str) -> Result<(), AccessError> {
        let (name_, now) = (name.to_string(), self.clock.now_ms());
        self.store
            .write(move |conn| {
                let n = conn.execute(
                    "UPDATE tokens SET revoked_at = ?2 WHERE name = ?1 AND revoked_at IS NULL",
                    params![name_, now],
                )?;
                if n == 0 {
                    return Err(AccessError::NoSuchToken(name_));
                }
                Ok(())
            })
            .await?;
        self.checked.revoked();
        self.audit
            .record(NewEntry::new(
                by,
                "token",
                format!("revoke token {name}"),
                "done",
            ))
            .await;
        Ok(())
    }

    /// Whether the token named `name` is still live (not revoked), as another process may
    /// have revoked it in the database.
    pub async fn is_live(&self, name: &str) -> Result<bool, AccessError> {
        let name = name.to_string();
        let now = self.clock.now_ms();
        self.store
            .read(move |conn| {
                Ok(conn
                    .prepare_cached(
                        "SELECT 1 FROM tokens WHERE name = ?1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?2)",
                    )?
                    .exists(params![name, now])?)
            })
            .await
    }

    /// Whose live token `secret` is. A token checked within [`RECHECK`] is believed
    /// without asking the database again (see [`TokenCache`]): a revocation, here or by
    /// `stackroom token revoke` in another process, is seen by the next request; expiry
    /// is checked against the clock every time.
    pub async fn authenticate(&self, secret: &str) -> Result<Option<Identity>, AccessError> {
        let digest: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
        let now = self.clock.now_ms();
        let stamp = match self.checked.get(&digest, now) {
            Lookup::Known(who) => return Ok(Some(who)),
            Lookup::Unknown(stamp) => stamp,
        };
        let hashed = hex(&digest);
        // One lookup by a unique index: on this thread (see `Store::read_now`).
        let found = self
            .store
            .read_now(move |conn| {
                let row = conn
                    .prepare_cached(
                        "SELECT name, role, expires_at FROM tokens WHERE hash = ?1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?2)",
                    )?
                    .query_row(params![hashed, now], |r| {
                        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, Option<i64>>(2)?))
                    })
                    .optional()?;
                Ok::<_, AccessError>(row.and_then(|(name, role, expires_at)| {
                    role.parse().ok().map(|role| (Identity { name, role }, expires_at))
                }))
            })
            .await?;
        Ok(found.map(|(who, expires_at)| {
            self.checked.keep(digest, &who, expires_at, stamp);
            who
        }))
    }

    /// When the (not revoked) token `secret` expired, if it has: to tell its holder so.
    pub async fn expired_at(&self, secret: &str) -> Result<Option<DateTime<Utc>>, AccessError> {
        let hashed = hash(secret);
        let now = self.clock.now_ms();
        self.store
            .read(move |conn| {
                Ok(conn
                    .prepare_cached(
                        "SELECT expires_at FROM tokens WHERE hash = ?1 AND revoked_at IS NULL AND expires_at <= ?2",
                    )?
                    .query_row(params![hashed, now], |r| r.get::<_, i64>(0))
                    .optional()?
                    .map(wall))
            })
            .await
    }
}

/// How long a checked token is believed before the database is asked again: the bound on
/// seeing a revocation made behind stackroom's back (by hand in SQL); one made through
/// [`Access::revoke`] is seen at once.
pub const RECHECK: std::time::Duration = std::time::Duration::from_secs(1);
/// Tokens kept at most; past it the cache starts again.
const MAX_CHECKED: usize = 10_000;

/// Tokens checked lately, so that a request need not read the database for its token
/// (a read transaction cost a tenth of a locate's throughput, see BENCHMARKS.md).
///
/// Revocations reach every process through the *revocation stamp*, a file beside the
/// database to which [`Access::revoke`] appends a byte after its commit: its length only
/// grows, so one `stat` per request tells whether anything was revoked since (a file's
/// time is too coarse to tell two quick revocations apart). Any growth empties the cache.
/// An answer read from the database is kept only if the stamp did not grow while it was
/// read, so a token revoked meanwhile is not kept as live.
struct TokenCache {
    stamp: std::path::PathBuf,
    state: std::sync::Mutex<CacheState>,
    /// `STACKROOM_NO_TOKEN_CACHE=1` asks the database every time, for the benchmark that
    /// measures what the cache buys.
    off: bool,
}

#[derive(Default)]
struct CacheState {
    /// The stamp's length when `tokens` was last emptied.
    stamp: u64,
    tokens: HashMap<[u8; 32], Checked>,
}

struct Checked {
    who: Identity,
    expires_at: Option<i64>,
    at: std::time::Instant,
}

enum Lookup {
    Known(Identity),
    /// Not in the cache: ask the database, then keep the answer with this stamp.
    Unknown(u64),
}

impl TokenCache {
    fn beside(db: &std::path::Path) -> TokenCache {
        TokenCache {
            stamp: db.with_extension("revoked"),
            state: Default::default(),
            off: std::env::var_os("STACKROOM_NO_TOKEN_CACHE").is_some_and(|v| v == "1"),
        }
    }

    fn stamp_len(&self) -> u64 {
        std::fs::metadata(&self.stamp).map_or(0, |m| m.len())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CacheState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn get(&self, digest: &[u8; 32], now_ms: i64) -> Lookup {
        if self.off {
            return Lookup::Unknown(0);
        }
        let stamp = self.stamp_len();
        let mut state = self.lock();
        if state.stamp != stamp {
            state.tokens.clear();
            state.stamp = stamp;
        }
        match state.tokens.get(digest) {
            Some(c) if c.at.elapsed() < RECHECK && c.expires_at.is_none_or(|e| e > now_ms) => {
                Lookup::Known(c.who.clone())
            }
            _ => Lookup::Unknown(stamp),
        }
    }

    fn keep(&self, digest: [u8; 32], who: &Identity, expires_at: Option<i64>, stamp: u64) {
        if self.off || self.stamp_len() != stamp {
            return;
        }
        let mut state = self.lock();
        if state.stamp != stamp {
            return;
        }
        if state.tokens.len() >= MAX_CHECKED {
            state.tokens.clear();
        }
        state.tokens.insert(
            digest,
            Checked {
                who: who.clone(),
                expires_at,
                at: std::time::Instant::now(),
            },
        );
    }

    /// A token was revoked (and committed): every process forgets what it checked.
    fn revoked(&self) {
        use std::io::Write;
        let appended = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.stamp)
            .and_then(|mut f| f.write_all(b"r"));
        if let Err(e) = appended {
            tracing::error!(stamp = %self.stamp.display(), error = %e,
                "cannot append to the revocation stamp: other processes see the revocation within {RECHECK:?}");
        }
        self.lock().tokens.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_session_table_makes_room_so_a_new_session_always_works() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let access = Access::new(store.clone(), Audit::new(store.clone()));
        access
            .create("desk", Role::Operator, "test", None)
            .await
            .unwrap();
        let who = Identity {
            name: "desk".into(),
            role: Role::Operator,
        };
        let first = access.open_session(&who);
        for _ in 1..MAX_SESSIONS {
            access.open_session(&who);
        }
        let newest = access.open_session(&who);
        assert!(access.resume(&newest).await.unwrap().is_some());
        assert!(
            access.resume(&first).await.unwrap().is_none(),
            "the oldest made room"
        );
        access.end_session(&newest);
        assert!(access.resume(&newest).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_token_opens_until_it_is_revoked_and_only_its_hash_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let access = Access::new(store.clone(), Audit::new(store.clone()));
        let (secret, view) = access
            .create("desk-1", Role::Operator, "test", None)
            .await
            .unwrap();
        assert!(secret.starts_with("srt_") && secret.len() == 68, "{secret}");
        assert_eq!(view.role, Role::Operator);
        let who = access.authenticate(&secret).await.unwrap().unwrap();
        assert_eq!((who.name.as_str(), who.role), ("desk-1", Role::Operator));
        assert!(access.authenticate("srt_guess").await.unwrap().is_none());
        assert!(matches!(
            access.create("desk-1", Role::Admin, "test", None).await,
            Err(AccessError::NameTaken(_))
        ));
        assert!(matches!(
            access.create("no spaces", Role::Admin, "test", None).await,
            Err(AccessError::BadName(_))
        ));
        let stored: String = store
            .read(|c| {
                c.query_row("SELECT hash FROM tokens", [], |r| r.get(0))
                    .map_err(StoreError::from)
            })
            .await
            .unwrap();
        assert!(!stored.contains(&secret[4..]), "the secret is not stored");
        access.revoke("desk-1", "test").await.unwrap();
        assert!(access.authenticate(&secret).await.unwrap().is_none());
        assert!(matches!(
            access.revoke("desk-1", "test").await,
            Err(AccessError::NoSuchToken(_))
        ));
        // The name is free again; the revoked token is still listed.
        access
            .create("desk-1", Role::Viewer, "test", None)
            .await
            .unwrap();
        let list = access.list().await.unwrap();
        assert_eq!(list.len(), 2);
        assert!(list[0].revoked_at.is_some() && list[1].revoked_at.is_none());
        assert!(
            Role::Viewer < Role::Operator
                && Role::Archivist < Role::Approver
                && Role::Approver < Role::Admin
        );
    }

    #[tokio::test]
    async fn a_token_revoked_in_another_process_opens_nothing_at_the_next_request() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        // Two stores on one file: the server, and `stackroom token revoke` beside it.
        let (server_store, cli_store) = (Store::open(&path).unwrap(), Store::open(&path).unwrap());
        let server = Access::new(server_store.clone(), Audit::new(server_store.clone()));
        let cli = Access::new(cli_store.clone(), Audit::new(cli_store));
        let (secret, _) = server
            .create("desk-1", Role::Viewer, "test", None)
            .await
            .unwrap();
        let (other, _) = server
            .create("desk-2", Role::Viewer, "test", None)
            .await
            .unwrap();
        for _ in 0..3 {
            assert!(server.authenticate(&secret).await.unwrap().is_some());
            assert!(server.authenticate(&other).await.unwrap().is_some());
        }
        cli.revoke("desk-1", "test").await.unwrap();
        assert!(
            server.authenticate(&secret).await.unwrap().is_none(),
            "revoked elsewhere"
        );
        assert!(server.authenticate(&other).await.unwrap().is_some());

        // Revoked behind stackroom's back (by hand, in SQL): seen within RECHECK.
        server_store
            .write(|c| {
                c.execute("UPDATE tokens SET revoked_at = 1 WHERE name = 'desk-2'", [])
                    .map_err(StoreError::from)
            })
            .await
            .unwrap();
        tokio::time::sleep(RECHECK + std::time::Duration::from_millis(50)).await;
        assert!(server.authenticate(&other).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn an_expired_token_opens_nothing_says_so_and_gives_its_name_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let access = Access::new(store.clone(), Audit::new(store.clone()));
        let (lasting, view) = access
            .create(
                "night-desk",
                Role::Operator,
                "test",
                Some(chrono::Duration::days(90)),
            )
            .await
            .unwrap();
        assert!(
            view.expires_at
                .is_some_and(|at| at > Utc::now() + chrono::Duration::days(89))
        );
        assert!(access.authenticate(&lasting).await.unwrap().is_some());
        assert_eq!(access.expired_at(&lasting).await.unwrap(), None);
        access.revoke("night-desk", "test").await.unwrap();
        // Already past its time.
        let (gone, _) = access
            .create(
                "night-desk",
                Role::Operator,
                "test",
                Some(chrono::Duration::seconds(-1)),
            )
            .await
            .unwrap();
        assert!(access.authenticate(&gone).await.unwrap().is_none());
        assert!(!access.is_live("night-desk").await.unwrap());
        assert!(access.expired_at(&gone).await.unwrap().is_some());
        // Its name can be given again.
        access
            .create("night-desk", Role::Operator, "test", None)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_token_expires_when_the_clock_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let clock = crate::time::ManualClock::at(1_800_000_000_000);
        let access = Access::new(store.clone(), Audit::new(store))
            .with_clock(std::sync::Arc::new(clock.clone()));
        let (secret, _) = access
            .create(
                "desk",
                Role::Viewer,
                "test",
                Some(chrono::Duration::hours(12)),
            )
            .await
            .unwrap();
        clock.advance(std::time::Duration::from_secs(11 * 3600));
        assert!(access.authenticate(&secret).await.unwrap().is_some());
        clock.advance(std::time::Duration::from_secs(3600));
        assert!(access.authenticate(&secret).await.unwrap().is_none());
        assert_eq!(
            access
                .expired_at(&secret)
                .await
                .unwrap()
                .map(|t| t.timestamp_millis()),
            Some(1_800_000_000_000 + 12 * 3_600_000)
        );
    }
}

//! Who is calling: passwords as Argon2id hashes in the store, sessions (a bearer
//! token or the same token in a cookie) that end after 8 idle hours or 24 hours in
//! all, measured on the engine's clock, and a limit on failed logins per username.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::header::{AUTHORIZATION, COOKIE};
use axum::http::request::Parts;
use blake2::{Blake2b, Digest, digest::consts::U32};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use stagecraft_store::{Commit, IndexValue, Page, RecordId, RecordWrite, Store, StoreError};

use crate::config::PasswordCost;
use crate::error::ServerError;
use crate::problem::Problem;
use crate::state::AppState;
use crate::tokens::{self, TOKEN_PREFIX};

/// The name of the session cookie.
pub(crate) const SESSION_COOKIE: &str = "stagecraft_session";
const HOUR_MS: i64 = 3_600_000;
/// A session nobody used for this long has ended.
pub(crate) const IDLE_TIMEOUT_MS: i64 = 8 * HOUR_MS;
/// A session ends this long after it started, used or not.
pub(crate) const ABSOLUTE_TIMEOUT_MS: i64 = 24 * HOUR_MS;
/// Failed logins allowed per username within [`FAILURE_WINDOW`].
pub(crate) const MAX_FAILURES: usize = 5;
/// The window failed logins are counted in.
pub(crate) const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// The internal form credentials are stored under; not a pack form, so no endpoint
/// serves it.
const CREDENTIAL_FORM: &str = "_credential";

// ----- passwords ------------------------------------------------------------------

fn hasher(cost: PasswordCost) -> Argon2<'static> {
    let params = match cost {
        PasswordCost::Standard => Params::DEFAULT,
        PasswordCost::Low => {
            Params::new(Params::MIN_M_COST, Params::MIN_T_COST, 1, None).unwrap_or(Params::DEFAULT)
        }
    };
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// An Argon2id hash of a password with a random salt, in the PHC string format (which
/// carries the algorithm, its parameters and the salt).
pub(crate) fn hash_password(password: &str, cost: PasswordCost) -> Result<String, ServerError> {
    let salt = SaltString::generate(&mut OsRng);
    hasher(cost)
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|error| ServerError::Password(error.to_string()))
}

/// Whether a password matches a stored hash; the parameters come from the hash.
pub(crate) fn verify_password(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored)
        .is_ok_and(|hash| Argon2::default().verify_password(password.as_bytes(), &hash).is_ok())
}

fn credential_id(user: &str) -> RecordId {
    RecordId::new(format!("{CREDENTIAL_FORM}/{user}"))
}

/// The record that stores a user's password hash.
pub(crate) fn credential_write(user: &str, hash: &str) -> RecordWrite {
    RecordWrite::create(credential_id(user), CREDENTIAL_FORM, json!({"user": user, "hash": hash}))
}

/// A user's stored password hash.
pub(crate) fn stored_hash(store: &dyn Store, user: &str) -> Result<Option<String>, StoreError> {
    Ok(store
        .record(&credential_id(user))?
        .filter(|stored| stored.form == CREDENTIAL_FORM)
        .and_then(|stored| stored.value.get("hash").and_then(Value::as_str).map(str::to_owned)))
}

/// Whether any user has a password yet.
pub(crate) fn has_users(store: &dyn Store) -> Result<bool, StoreError> {
    Ok(!store.records_of_form(CREDENTIAL_FORM, Page::first(1))?.is_empty())
}

/// 32 random bytes from the operating system, as hex.
pub(crate) fn new_token() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section here leaves the map whole, so a poisoned lock is usable.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

// ----- sessions -------------------------------------------------------------------

/// A live session as kept in memory.
#[derive(Debug)]
struct Session {
    user: String,
    started_at: i64,
    last_seen_at: i64,
    /// The version of its record in the store, and the activity time written there.
    version: u64,
    stored_last_seen_at: i64,
}

/// The stored part of a session.
#[derive(Serialize, Deserialize)]
struct StoredSession {
    user: String,
    started_at: i64,
    last_seen_at: i64,
    #[serde(default)]
    ended_at: Option<i64>,
}

/// Why a session ended, as the next request with it is told.
const ENDED_OLD: &str = "the session ended after 24 hours; sign in again";
const ENDED_IDLE: &str = "the session ended after 8 hours without activity; sign in again";

/// Activity is written to the store at most this often per session (from the
/// background round), so that requests do not wait for a disk write; after a restart
/// a session may look up to this much older than it is, which only shortens it.
const ACTIVITY_WRITE_MS: i64 = 5 * 60_000;
/// The internal form sessions are stored under, by a hash of their token.
const SESSION_FORM: &str = "_session";

fn session_id(token: &str) -> RecordId {
    let digest = Blake2b::<U32>::digest(token.as_bytes());
    let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
    RecordId::new(format!("{SESSION_FORM}/{hex}"))
}

fn session_write(token: &str, version: Option<u64>, stored: &StoredSession) -> RecordWrite {
    match version {
        None => RecordWrite::create(session_id(token), SESSION_FORM, session_value(stored))
            .indexed("live", stored.ended_at.is_none()),
        Some(version) => stored_write(session_id(token), version, stored),
    }
}

fn stored_write(id: RecordId, version: u64, stored: &StoredSession) -> RecordWrite {
    // Startup reads the live ones back through the `live` entry.
    RecordWrite::update(id, SESSION_FORM, version, session_value(stored))
        .indexed("live", stored.ended_at.is_none())
}

fn session_value(stored: &StoredSession) -> Value {
    json!({
        "user": stored.user,
        "started_at": stored.started_at,
        "last_seen_at": stored.last_seen_at,
        "ended_at": stored.ended_at,
    })
}

/// Open sessions. They are kept in the store (only a hash of each token), so that a
/// restart signs nobody out; requests read them from memory.
pub(crate) struct Sessions {
    open: Mutex<HashMap<String, Session>>,
    /// Ended sessions (by token hash) remembered for a day, to tell a late request why
    /// its session ended.
    ended: Mutex<HashMap<String, (i64, &'static str)>>,
    store: Arc<dyn Store>,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions").field("open", &lock(&self.open).len()).finish()
    }
}

impl Sessions {
    /// The sessions the store holds that are still live at `now`.
    pub(crate) fn load(store: Arc<dyn Store>) -> Result<Sessions, StoreError> {
        let sessions =
            Sessions { open: Mutex::new(HashMap::new()), ended: Mutex::new(HashMap::new()), store };
        let mut page = Page::first(500);
        let mut open = lock(&sessions.open);
        loop {
            let ids = sessions.store.records_by_index(
                SESSION_FORM,
                "live",
                &IndexValue::from(true),
                page,
            )?;
            let Some(last) = ids.last().cloned() else { break };
            for id in &ids {
                let Some(stored) = sessions.store.record(id)? else { continue };
                let Ok(session) = serde_json::from_value::<StoredSession>(stored.value) else {
                    continue;
                };
                // The token itself is not stored: the map is keyed by its hash.
                open.insert(
                    id.as_str().to_owned(),
                    Session {
                        user: session.user,
                        started_at: session.started_at,
                        last_seen_at: session.last_seen_at,
                        version: stored.version,
                        stored_last_seen_at: session.last_seen_at,
                    },
                );
            }
            if ids.len() < 500 {
                break;
            }
            page = Page::after(last, 500);
        }
        drop(open);
        Ok(sessions)
    }

    /// Starts a session, durably, and returns its token.
    pub(crate) fn start(&self, user: &str, now: i64) -> Result<String, StoreError> {
        let token = new_token();
        let stored = StoredSession {
            user: user.to_owned(),
            started_at: now,
            last_seen_at: now,
            ended_at: None,
        };
        let mut commit = Commit::at(now);
        commit.records.push(session_write(&token, None, &stored));
        self.store.commit(commit)?;
        lock(&self.open).insert(
            session_id(&token).as_str().to_owned(),
            Session {
                user: user.to_owned(),
                started_at: now,
                last_seen_at: now,
                version: 1,
                stored_last_seen_at: now,
            },
        );
        Ok(token)
    }

    /// The user of a live session, which counts as activity; a session past either
    /// timeout ends here.
    pub(crate) fn touch(&self, token: &str, now: i64) -> Result<String, &'static str> {
        let key = session_id(token).as_str().to_owned();
        let mut open = lock(&self.open);
        let Some(session) = open.get_mut(&key) else {
            return Err(lock(&self.ended)
                .get(&key)
                .map_or("the session token is not valid; sign in again", |(_, why)| why));
        };
        let why = if now - session.started_at > ABSOLUTE_TIMEOUT_MS {
            ENDED_OLD
        } else if now - session.last_seen_at > IDLE_TIMEOUT_MS {
            ENDED_IDLE
        } else {
            session.last_seen_at = session.last_seen_at.max(now);
            return Ok(session.user.clone());
        };
        drop(open);
        self.end(token, now, why);
        Err(why)
    }

    /// Ends a session, durably: a signed-out token stays signed out after a restart.
    /// A failure to write is logged; the session is gone from memory regardless.
    pub(crate) fn end(&self, token: &str, now: i64, why: &'static str) {
        let key = session_id(token).as_str().to_owned();
        let Some(session) = lock(&self.open).remove(&key) else { return };
        lock(&self.ended).insert(key, (now, why));
        let stored = StoredSession {
            user: session.user,
            started_at: session.started_at,
            last_seen_at: session.last_seen_at,
            ended_at: Some(now),
        };
        let mut commit = Commit::at(now);
        commit.records.push(session_write(token, Some(session.version), &stored));
        if let Err(error) = self.store.commit(commit) {
            eprintln!("error: ending a session in the store: {error}");
        }
    }

    /// Ends sessions past a timeout, writes recent activity (one commit for all), and
    /// forgets why sessions ended after a day. Blocking: runs in the background round.
    pub(crate) fn prune(&self, now: i64) {
        let mut commit = Commit::at(now);
        {
            let mut open = lock(&self.open);
            let mut ended = lock(&self.ended);
            let mut expired = Vec::new();
            for (key, session) in open.iter_mut() {
                let why = if now - session.started_at > ABSOLUTE_TIMEOUT_MS {
                    Some(ENDED_OLD)
                } else if now - session.last_seen_at > IDLE_TIMEOUT_MS {
                    Some(ENDED_IDLE)
                } else {
                    None
                };
                let timed_out = why.is_some();
                if !timed_out
                    && session.last_seen_at - session.stored_last_seen_at < ACTIVITY_WRITE_MS
                {
                    continue;
                }
                let stored = StoredSession {
                    user: session.user.clone(),
                    started_at: session.started_at,
                    last_seen_at: session.last_seen_at,
                    ended_at: timed_out.then_some(now),
                };
                commit.records.push(stored_write(
                    RecordId::new(key.clone()),
                    session.version,
                    &stored,
                ));
                session.version += 1;
                session.stored_last_seen_at = session.last_seen_at;
                if let Some(why) = why {
                    expired.push((key.clone(), why));
                }
            }
            for (key, why) in expired {
                open.remove(&key);
                ended.insert(key, (now, why));
            }
            ended.retain(|_, (at, _)| now - *at <= ABSOLUTE_TIMEOUT_MS);
        }
        if !commit.records.is_empty() {
            if let Err(error) = self.store.commit(commit) {
                eprintln!("error: writing session activity to the store: {error}");
            }
        }
    }
}

// ----- failed logins ----------------------------------------------------------------

/// Recent failed logins per username. Counted on the monotonic clock of the machine,
/// not the engine's: a manual demo clock must not lift (or freeze) a lockout.
#[derive(Debug, Default)]
pub(crate) struct LoginLimiter {
    failures: Mutex<HashMap<String, Vec<Instant>>>,
}

impl LoginLimiter {
    /// `Err(seconds to wait)` while the username has too many recent failures.
    pub(crate) fn check(&self, user: &str, now: Instant) -> Result<(), u64> {
        let mut failures = lock(&self.failures);
        let Some(times) = failures.get_mut(user) else { return Ok(()) };
        times.retain(|at| now.duration_since(*at) < FAILURE_WINDOW);
        if times.len() < MAX_FAILURES {
            return Ok(());
        }
        let oldest = times.iter().min().copied().unwrap_or(now);
        let wait = FAILURE_WINDOW.saturating_sub(now.duration_since(oldest));
        Err(wait.as_secs().max(1))
    }

    /// Counts a failure.
    pub(crate) fn failed(&self, user: &str, now: Instant) {
        lock(&self.failures).entry(user.to_owned()).or_default().push(now);
    }

    /// A successful login clears the count.
    pub(crate) fn succeeded(&self, user: &str) {
        lock(&self.failures).remove(user);
    }

    /// Forgets failures older than the window.
    pub(crate) fn prune(&self, now: Instant) {
        lock(&self.failures).retain(|_, times| {
            times.retain(|at| now.duration_since(*at) < FAILURE_WINDOW);
            !times.is_empty()
        });
    }
}

// ----- the caller -------------------------------------------------------------------

/// The signed-in user of a request. Extracting it answers 401 when there is no live
/// session.
#[derive(Clone, Debug)]
pub(crate) struct Caller {
    /// The user id.
    pub(crate) user: String,
    /// The session token, or the API token.
    pub(crate) token: String,
    /// Whether the request came with an API token rather than a session.
    pub(crate) api_token: bool,
}

/// The token of a request: `Authorization: Bearer <token>`, else the session cookie.
fn token_of(headers: &HeaderMap) -> Result<Option<String>, Problem> {
    if let Some(value) = headers.get(AUTHORIZATION) {
        let value = value.to_str().unwrap_or_default();
        let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
        if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
            return Err(Problem::unauthorized("the authorization header must be `Bearer <token>`"));
        }
        return Ok(Some(token.trim().to_owned()));
    }
    let cookie = headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, token)| token.to_owned());
    Ok(cookie)
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let token = token_of(&parts.headers)?.ok_or_else(|| {
            Problem::unauthorized(
                "sign in first: POST /api/session, then send `Authorization: Bearer <token>`",
            )
        })?;
        let now = state.engine().now();
        if token.starts_with(TOKEN_PREFIX) {
            let store = state.engine().store().clone();
            let secret = token.clone();
            // One read of the store; off the async threads like every store access.
            let user =
                tokio::task::spawn_blocking(move || tokens::user_of(store.as_ref(), &secret, now))
                    .await
                    .map_err(|error| Problem::failure(&error))?
                    .map_err(|error| Problem::failure(&error))?
                    .map_err(Problem::unauthorized)?;
            if !state.knows_user(&user) {
                return Err(Problem::unauthorized(
                    "the token's user is no longer in the organisation",
                ));
            }
            return Ok(Caller { user, token, api_token: true });
        }
        let user = state.sessions().touch(&token, now).map_err(Problem::unauthorized)?;
        // Someone who left the organisation is signed out at once.
        if !state.knows_user(&user) {
            state.sessions().end(&token, now, "the user is no longer in the organisation");
            return Err(Problem::unauthorized("the user is no longer in the organisation"));
        }
        Ok(Caller { user, token, api_token: false })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_hash_is_argon2id_salted_and_verifies() {
        let first = hash_password("stagecraft", PasswordCost::Low).expect("hash");
        let second = hash_password("stagecraft", PasswordCost::Low).expect("hash");
        assert!(first.starts_with("$argon2id$"), "{first}");
        assert_ne!(first, second, "every hash has its own salt");
        assert!(verify_password("stagecraft", &first));
        assert!(!verify_password("stagecraft ", &first));
        assert!(!verify_password("stagecraft", "not a hash"));
    }

    fn store() -> (tempfile::TempDir, Arc<dyn Store>) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = stagecraft_store::SledStore::open(dir.path().join("data")).expect("store");
        (dir, Arc::new(store))
    }

    #[test]
    fn sessions_end_when_idle_or_old() {
        let (_dir, store) = store();
        let sessions = Sessions::load(store).expect("load");
        let token = sessions.start("rep01", 0).expect("start");
        assert_eq!(token.len(), 64);
        assert_eq!(sessions.touch(&token, IDLE_TIMEOUT_MS).as_deref(), Ok("rep01"));
        // Kept alive every few hours, it still ends after 24 hours.
        let mut now = IDLE_TIMEOUT_MS;
        while now + IDLE_TIMEOUT_MS / 2 <= ABSOLUTE_TIMEOUT_MS {
            now += IDLE_TIMEOUT_MS / 2;
            assert!(sessions.touch(&token, now).is_ok(), "alive at {now}");
        }
        assert!(sessions.touch(&token, ABSOLUTE_TIMEOUT_MS + 1).is_err());
        assert!(sessions.touch(&token, 0).is_err(), "an ended session stays ended");
        let idle = sessions.start("rep02", 0).expect("start");
        assert!(sessions.touch(&idle, IDLE_TIMEOUT_MS + 1).is_err());
        assert!(sessions.touch("unknown", 0).is_err());
        // The background round ends timed-out sessions nobody used again.
        let old = sessions.start("rep03", 0).expect("start");
        sessions.prune(ABSOLUTE_TIMEOUT_MS + 1);
        assert!(lock(&sessions.open).is_empty());
        assert!(sessions.touch(&old, 0).is_err());
    }

    #[test]
    fn sessions_survive_a_restart_and_sign_outs_stay_signed_out() {
        let (_dir, store) = store();
        let sessions = Sessions::load(store.clone()).expect("load");
        let kept = sessions.start("rep01", 0).expect("start");
        let ended = sessions.start("rep02", 0).expect("start");
        sessions.end(&ended, 1_000, "signed out");
        // Activity older than the write interval reaches the store in the round.
        assert!(sessions.touch(&kept, 2 * ACTIVITY_WRITE_MS).is_ok());
        sessions.prune(2 * ACTIVITY_WRITE_MS);
        drop(sessions);

        let restarted = Sessions::load(store).expect("load again");
        assert_eq!(lock(&restarted.open).len(), 1);
        assert!(restarted.touch(&ended, 2_000).is_err());
        // Idle time counts from the stored activity, not from the start.
        let alive_until = 2 * ACTIVITY_WRITE_MS + IDLE_TIMEOUT_MS;
        assert_eq!(restarted.touch(&kept, alive_until).as_deref(), Ok("rep01"));
        assert!(
            !format!("{:?}", restarted.store.record(&session_id(&kept))).contains(&kept),
            "only a hash of the token is stored"
        );
    }

    #[test]
    fn failed_logins_lock_a_username_for_the_window() {
        let limiter = LoginLimiter::default();
        let start = Instant::now();
        for _ in 0..MAX_FAILURES {
            assert_eq!(limiter.check("rep01", start), Ok(()));
            limiter.failed("rep01", start);
        }
        assert_eq!(limiter.check("rep01", start), Err(60));
        assert_eq!(limiter.check("rep02", start), Ok(()), "other users are not locked");
        assert_eq!(limiter.check("rep01", start + FAILURE_WINDOW), Ok(()));
        limiter.prune(start + FAILURE_WINDOW);
        assert!(lock(&limiter.failures).is_empty());
        limiter.failed("rep01", start);
        limiter.succeeded("rep01");
        assert!(lock(&limiter.failures).is_empty());
    }
}

//! Who is calling: passwords as Argon2id hashes in the store, sessions (a bearer
//! token or the same token in a cookie) that end after 8 idle hours or 24 hours in
//! all, measured on the engine's clock, and a limit on failed logins per username.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::header::{AUTHORIZATION, COOKIE};
use axum::http::request::Parts;
use serde_json::{Value, json};
use stagecraft_store::{Page, RecordId, RecordWrite, Store, StoreError};

use crate::config::PasswordCost;
use crate::error::ServerError;
use crate::problem::Problem;
use crate::state::AppState;

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

#[derive(Debug)]
struct Session {
    user: String,
    started_at: i64,
    last_seen_at: i64,
}

/// Open sessions, by token. Kept in memory: a restart signs everyone out.
#[derive(Debug, Default)]
pub(crate) struct Sessions {
    open: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    /// Starts a session and returns its token.
    pub(crate) fn start(&self, user: &str, now: i64) -> String {
        let token = new_token();
        lock(&self.open).insert(
            token.clone(),
            Session { user: user.to_owned(), started_at: now, last_seen_at: now },
        );
        token
    }

    /// The user of a live session, which counts as activity; a session past either
    /// timeout ends here.
    pub(crate) fn touch(&self, token: &str, now: i64) -> Result<String, &'static str> {
        let mut open = lock(&self.open);
        let Some(session) = open.get_mut(token) else {
            return Err("the session token is not valid; sign in again");
        };
        if now - session.started_at > ABSOLUTE_TIMEOUT_MS {
            open.remove(token);
            return Err("the session ended after 24 hours; sign in again");
        }
        if now - session.last_seen_at > IDLE_TIMEOUT_MS {
            open.remove(token);
            return Err("the session ended after 8 hours without activity; sign in again");
        }
        session.last_seen_at = session.last_seen_at.max(now);
        Ok(session.user.clone())
    }

    /// Ends a session.
    pub(crate) fn end(&self, token: &str) {
        lock(&self.open).remove(token);
    }

    /// Forgets sessions that ended more than a day ago; until then, a request with
    /// an ended session is told why it ended.
    pub(crate) fn prune(&self, now: i64) {
        lock(&self.open).retain(|_, session| {
            let ended = (session.started_at + ABSOLUTE_TIMEOUT_MS)
                .min(session.last_seen_at + IDLE_TIMEOUT_MS);
            now <= ended + ABSOLUTE_TIMEOUT_MS
        });
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
    /// The session token.
    pub(crate) token: String,
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
        let user =
            state.sessions().touch(&token, state.engine().now()).map_err(Problem::unauthorized)?;
        // Someone who left the organisation is signed out at once.
        if !state.knows_user(&user) {
            state.sessions().end(&token);
            return Err(Problem::unauthorized("the user is no longer in the organisation"));
        }
        Ok(Caller { user, token })
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

    #[test]
    fn sessions_end_when_idle_or_old() {
        let sessions = Sessions::default();
        let token = sessions.start("rep01", 0);
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
        let idle = sessions.start("rep02", 0);
        assert!(sessions.touch(&idle, IDLE_TIMEOUT_MS + 1).is_err());
        assert!(sessions.touch("unknown", 0).is_err());
        // Ended sessions are forgotten a day later.
        let old = sessions.start("rep03", 0);
        sessions.prune(IDLE_TIMEOUT_MS + ABSOLUTE_TIMEOUT_MS);
        assert_eq!(lock(&sessions.open).len(), 1);
        sessions.prune(IDLE_TIMEOUT_MS + ABSOLUTE_TIMEOUT_MS + 1);
        assert!(lock(&sessions.open).is_empty());
        assert!(sessions.touch(&old, 0).is_err());
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

//! Signing in and out.

use std::time::Instant;

use axum::Json;
use axum::extract::State;
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use stagecraft_runtime::{FieldProblem, Org};

use super::{JsonBody, blocking, field_problem};
use crate::auth::{ABSOLUTE_TIMEOUT_MS, Caller, SESSION_COOKIE, stored_hash, verify_password};
use crate::problem::{Problem, ProblemDetails};
use crate::state::AppState;

/// A sign-in.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Login {
    /// The username (case does not matter).
    username: String,
    /// The password.
    password: String,
}

/// A new session.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct SessionStarted {
    /// Send it as `Authorization: Bearer <token>`; browsers get it as a cookie too.
    token: String,
    /// Who signed in.
    user: SessionUser,
}

/// The person who signed in.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct SessionUser {
    /// The user id.
    id: String,
    /// The name.
    name: String,
    /// The roles they hold.
    roles: Vec<String>,
}

/// A successful sign-in: the new session's token and who signed in.
pub(crate) struct SignedIn {
    /// The new session's token.
    pub(crate) token: String,
    /// The user id (trimmed, lowercase).
    pub(crate) user: String,
    /// The person's name.
    pub(crate) name: String,
    /// Their roles.
    pub(crate) roles: Vec<String>,
}

/// Why a sign-in was refused.
pub(crate) enum LoginRefused {
    /// The username or the password is empty.
    Empty(Vec<FieldProblem>),
    /// Too many recent failures for the username; the seconds to wait.
    TooMany(u64),
    /// The username or the password is wrong.
    Wrong,
    /// The server failed (logged).
    Failed(Problem),
}

impl From<LoginRefused> for Problem {
    fn from(refused: LoginRefused) -> Self {
        match refused {
            LoginRefused::Empty(problems) => Problem::invalid(problems),
            LoginRefused::TooMany(wait) => Problem::too_many_requests(
                format!("too many failed logins for this username; try again in {wait} seconds"),
                wait,
            ),
            LoginRefused::Wrong => Problem::unauthorized("the username or password is wrong"),
            LoginRefused::Failed(problem) => problem,
        }
    }
}

/// Checks a username and password and starts a session: the one sign-in of the JSON
/// API and the pages. Failures are counted per username, whether or not it exists; a
/// wrong username takes as long to refuse as a wrong password.
pub(crate) async fn sign_in(
    state: &AppState,
    username: &str,
    password: String,
) -> Result<SignedIn, LoginRefused> {
    let user = username.trim().to_ascii_lowercase();
    let mut problems = Vec::new();
    if user.is_empty() {
        problems.push(field_problem("/username", "请填写用户名", "the username is empty"));
    }
    if password.is_empty() {
        problems.push(field_problem("/password", "请填写密码", "the password is empty"));
    }
    if !problems.is_empty() {
        return Err(LoginRefused::Empty(problems));
    }
    // Failures are counted per username, whether or not it exists.
    let counted: String = user.chars().take(64).collect();
    if let Err(wait) = state.logins().check(&counted, Instant::now()) {
        return Err(LoginRefused::TooMany(wait));
    }
    let checking = state.clone();
    let name = user.clone();
    let verified = blocking(move || {
        let hash = if checking.knows_user(&name) {
            stored_hash(checking.engine().store().as_ref(), &name)
                .map_err(|error| Problem::failure(&error))?
        } else {
            None
        };
        Ok(match hash {
            Some(hash) => verify_password(&password, &hash),
            None => {
                // As slow as a real check, so that answers do not tell which users exist.
                verify_password(&password, checking.decoy_hash());
                false
            }
        })
    })
    .await
    .map_err(LoginRefused::Failed)?;
    if !verified {
        state.logins().failed(&counted, Instant::now());
        return Err(LoginRefused::Wrong);
    }
    state.logins().succeeded(&counted);
    let starting = state.clone();
    let owner = user.clone();
    let token = blocking(move || {
        starting
            .sessions()
            .start(&owner, starting.engine().now())
            .map_err(|error| Problem::failure(&error))
    })
    .await
    .map_err(LoginRefused::Failed)?;
    let (name, roles) = state.with_org(|org| {
        (org.user(&user).map(|person| person.name.clone()).unwrap_or_default(), org.roles_of(&user))
    });
    Ok(SignedIn { token, user, name, roles })
}

/// The `Set-Cookie` value that carries a session token.
pub(crate) fn session_cookie(token: &str) -> String {
    format!(
        "{SESSION_COOKIE}={token}; HttpOnly; SameSite=Lax; Path=/; Max-Age={}",
        ABSOLUTE_TIMEOUT_MS / 1000
    )
}

/// The `Set-Cookie` value that removes the session cookie.
pub(crate) fn cleared_session_cookie() -> String {
    format!("{SESSION_COOKIE}=; HttpOnly; SameSite=Lax; Path=/; Max-Age=0")
}

/// Signs in: answers a token and sets the session cookie. Five failures for one
/// username within a minute lock it for the rest of that minute.
#[utoipa::path(post, path = "/api/session", tag = "session", security(()), request_body = Login,
    responses(
        (status = 200, description = "Signed in", body = SessionStarted),
        (status = 401, description = "Wrong username or password", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "An empty username or password", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed sign-ins", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub(crate) async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(login): JsonBody<Login>,
) -> Result<Response, Problem> {
    let SignedIn { token, user, name, roles } =
        sign_in(&state, &login.username, login.password).await?;
    // The cookie is rotated: a session the browser came with ends here.
    if let Some(old) = crate::pages::cookie(&headers, SESSION_COOKIE) {
        let ending = state.clone();
        blocking(move || {
            let why = "signed in again; the new session replaces this one";
            ending.sessions().end(&old, ending.engine().now(), why);
            Ok(())
        })
        .await?;
    }
    let cookie = session_cookie(&token);
    let body = SessionStarted { token, user: SessionUser { id: user, name, roles } };
    Ok(([(SET_COOKIE, cookie)], Json(body)).into_response())
}

/// Signs out: ends the session and clears the cookie.
#[utoipa::path(delete, path = "/api/session", tag = "session",
    responses(
        (status = 204, description = "Signed out"),
        (status = 401, description = "No live session", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub(crate) async fn logout(State(state): State<AppState>, caller: Caller) -> Response {
    let ending = state.clone();
    // Ending writes to the store; a failure is logged there and the session is gone.
    let _ = blocking(move || {
        ending.sessions().end(&caller.token, ending.engine().now(), "signed out; sign in again");
        Ok(())
    })
    .await;
    (StatusCode::NO_CONTENT, [(SET_COOKIE, cleared_session_cookie())]).into_response()
}

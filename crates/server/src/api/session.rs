//! Signing in and out.

use std::time::Instant;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::SET_COOKIE;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use stagecraft_runtime::Org;

use super::{JsonBody, blocking, field_problem};
use crate::auth::{ABSOLUTE_TIMEOUT_MS, Caller, SESSION_COOKIE, stored_hash, verify_password};
use crate::problem::Problem;
use crate::state::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Login {
    username: String,
    password: String,
}

pub(crate) async fn login(
    State(state): State<AppState>,
    JsonBody(login): JsonBody<Login>,
) -> Result<Response, Problem> {
    let user = login.username.trim().to_ascii_lowercase();
    let mut problems = Vec::new();
    if user.is_empty() {
        problems.push(field_problem("/username", "请填写用户名", "the username is empty"));
    }
    if login.password.is_empty() {
        problems.push(field_problem("/password", "请填写密码", "the password is empty"));
    }
    if !problems.is_empty() {
        return Err(Problem::invalid(problems));
    }
    // Failures are counted per username, whether or not it exists.
    let counted: String = user.chars().take(64).collect();
    if let Err(wait) = state.logins().check(&counted, Instant::now()) {
        return Err(Problem::too_many_requests(
            format!("too many failed logins for this username; try again in {wait} seconds"),
            wait,
        ));
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
            Some(hash) => verify_password(&login.password, &hash),
            None => {
                // As slow as a real check, so that answers do not tell which users exist.
                verify_password(&login.password, checking.decoy_hash());
                false
            }
        })
    })
    .await?;
    if !verified {
        state.logins().failed(&counted, Instant::now());
        return Err(Problem::unauthorized("the username or password is wrong"));
    }
    state.logins().succeeded(&counted);
    let token = state.sessions().start(&user, state.engine().now());
    let (name, roles) = state.with_org(|org| {
        (org.user(&user).map(|person| person.name.clone()).unwrap_or_default(), org.roles_of(&user))
    });
    let cookie = format!(
        "{SESSION_COOKIE}={token}; HttpOnly; SameSite=Lax; Path=/; Max-Age={}",
        ABSOLUTE_TIMEOUT_MS / 1000
    );
    let body = json!({"token": token, "user": {"id": user, "name": name, "roles": roles}});
    Ok(([(SET_COOKIE, cookie)], Json(body)).into_response())
}

pub(crate) async fn logout(State(state): State<AppState>, caller: Caller) -> Response {
    state.sessions().end(&caller.token);
    let cookie = format!("{SESSION_COOKIE}=; HttpOnly; SameSite=Lax; Path=/; Max-Age=0");
    (StatusCode::NO_CONTENT, [(SET_COOKIE, cookie)]).into_response()
}

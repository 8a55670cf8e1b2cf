//! API tokens for integrators: make, list and revoke your own. Only a signed-in
//! person (a session) may make or revoke tokens, so a leaked token cannot mint more.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::{JsonBody, blocking, field_problem};
use crate::auth::Caller;
use crate::problem::{Problem, ProblemDetails};
use crate::state::AppState;
use crate::tokens::{self, MAX_DAYS, MAX_TOKENS_PER_USER, TokenInfo};

/// The days a token lives when the request does not say.
const DEFAULT_DAYS: u32 = 90;
/// The longest token name accepted, in characters.
const MAX_NAME: usize = 80;

/// A token to make.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewToken {
    /// What the token is for, e.g. `ERP 同步`.
    name: String,
    /// How many days it works: 1 to 366, 90 when left out.
    #[serde(default)]
    days: Option<u32>,
}

/// A new token. The secret is shown this once; only a hash of it is kept.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct TokenMade {
    /// Send it as `Authorization: Bearer <token>`.
    token: String,
    /// What is kept about it.
    info: TokenInfo,
}

/// The caller's tokens.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct TokenList {
    /// Newest first, revoked ones included.
    tokens: Vec<TokenInfo>,
}

fn only_sessions(caller: &Caller) -> Result<(), Problem> {
    if caller.api_token {
        return Err(Problem::forbidden(
            "API tokens are made and revoked by a signed-in person, not with a token",
        ));
    }
    Ok(())
}

/// Makes an API token that acts as the caller.
#[utoipa::path(post, path = "/api/tokens", tag = "tokens", request_body = NewToken,
    responses(
        (status = 201, description = "Made; the secret is in `token`, shown only now", body = TokenMade),
        (status = 401, description = "No live session", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 403, description = "Called with an API token", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 409, description = "The caller already has the most live tokens allowed", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "An empty or too long name, or days out of range", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub(crate) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(new): JsonBody<NewToken>,
) -> Result<Response, Problem> {
    only_sessions(&caller)?;
    let name = new.name.trim().to_owned();
    let days = new.days.unwrap_or(DEFAULT_DAYS);
    let mut problems = Vec::new();
    if name.is_empty() || name.chars().count() > MAX_NAME {
        problems.push(field_problem(
            "/name",
            format!("请填写名称（1 到 {MAX_NAME} 个字符），说明令牌的用途"),
            format!("give a name of 1 to {MAX_NAME} characters that says what the token is for"),
        ));
    }
    if !(1..=MAX_DAYS).contains(&days) {
        problems.push(field_problem(
            "/days",
            format!("有效天数须在 1 到 {MAX_DAYS} 之间"),
            format!("days must be from 1 to {MAX_DAYS}"),
        ));
    }
    if !problems.is_empty() {
        return Err(Problem::invalid(problems));
    }
    blocking(move || {
        let store = state.engine().store();
        let now = state.engine().now();
        let live = tokens::live_count(store.as_ref(), &caller.user, now)
            .map_err(|error| Problem::failure(&error))?;
        if live >= MAX_TOKENS_PER_USER {
            return Err(Problem::not_applicable(format!(
                "you already have {live} live API tokens; revoke one first"
            )));
        }
        let (token, info) = tokens::create(store.as_ref(), &caller.user, &name, days, now)
            .map_err(|error| Problem::failure(&error))?;
        Ok((StatusCode::CREATED, Json(TokenMade { token, info })).into_response())
    })
    .await
}

/// The caller's API tokens (without their secrets).
#[utoipa::path(get, path = "/api/tokens", tag = "tokens",
    responses(
        (status = 200, description = "The tokens", body = TokenList),
        (status = 401, description = "No live session or token", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<TokenList>, Problem> {
    blocking(move || {
        let tokens = tokens::of_user(state.engine().store().as_ref(), &caller.user)
            .map_err(|error| Problem::failure(&error))?;
        Ok(Json(TokenList { tokens }))
    })
    .await
}

/// Revokes one of the caller's API tokens; it stops working at once.
#[utoipa::path(delete, path = "/api/tokens/{id}", tag = "tokens",
    params(("id" = String, Path, description = "The token's public id (not its secret)")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, description = "No live session", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 403, description = "Called with an API token", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "The caller has no live token with this id", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub(crate) async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, Problem> {
    only_sessions(&caller)?;
    blocking(move || {
        let now = state.engine().now();
        let revoked = tokens::revoke(state.engine().store().as_ref(), &caller.user, &id, now)
            .map_err(|error| Problem::failure(&error))?;
        if revoked {
            Ok(StatusCode::NO_CONTENT)
        } else {
            Err(Problem::not_found(format!("you have no live API token {id}")))
        }
    })
    .await
}

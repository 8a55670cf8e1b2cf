//! The JSON API: the router, and what every endpoint shares (JSON bodies, running
//! blocking work). Each group of endpoints has its own module. Every record endpoint
//! reaches its record through [`records::visible`], which applies the rules of
//! `access.rs`; every engine call runs on a blocking thread, since the store writes to
//! disk.

mod clock;
mod definitions;
pub(crate) mod files;
mod list;
mod org;
mod query;
pub(crate) mod records;
pub(crate) mod session;
pub(crate) mod tasks;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Request};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::routing::{get, post};
use axum::{Json, middleware};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use stagecraft_runtime::FieldProblem;

use crate::headers::security_headers;
use crate::problem::Problem;
use crate::state::AppState;

/// The largest request body accepted.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The router of the whole API. The clock endpoint exists only on a manual clock.
pub fn app(state: AppState) -> Router {
    let mut router = Router::new()
        .route("/healthz", get(healthz))
        .route("/api/session", post(session::login).delete(session::logout))
        .route("/api/tasks", get(tasks::tasks))
        .route("/api/records/{form}", get(list::list).post(records::create))
        .route("/api/records/{form}/{id}", get(records::read).patch(records::update))
        .route("/api/records/{form}/{id}/transitions", post(records::transition))
        .route("/api/records/{form}/{id}/approvals/{approval}", post(records::decide))
        .route("/api/records/{form}/{id}/events", get(records::events))
        // Uploads stream to disk with a limit of their own.
        .route(
            "/api/files",
            post(files::upload).layer(DefaultBodyLimit::max(files::MAX_UPLOAD_BYTES)),
        )
        .route("/api/files/{id}", get(files::download))
        .route("/api/files/{id}/info", get(files::info))
        .route("/api/forms", get(definitions::forms))
        .route("/api/forms/{form}", get(definitions::form))
        .route("/api/flows", get(definitions::flows))
        .route("/api/flows/{flow}", get(definitions::flow))
        .route("/api/org/me", get(org::me))
        .route("/api/org/users", get(org::users))
        .route("/api/org/departments", get(org::departments));
    if state.manual_clock().is_some() {
        router = router.route("/api/admin/clock", post(clock::move_clock));
    }
    router
        // The HTML pages: a plain router, outside the OpenAPI document.
        .merge(crate::pages::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn(security_headers))
        .with_state(state)
}

async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

async fn not_found() -> Problem {
    Problem::not_found("there is nothing at this path")
}

async fn method_not_allowed() -> Problem {
    Problem::method_not_allowed()
}

/// Runs blocking work (store, engine, password hashing) off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, Problem> + Send + 'static,
) -> Result<T, Problem> {
    tokio::task::spawn_blocking(work).await.map_err(|error| Problem::failure(&error))?
}

/// A JSON body: `content-type: application/json`, at most [`MAX_BODY_BYTES`], and of
/// the endpoint's shape; anything else is answered with a problem that says which.
pub(crate) struct JsonBody<T>(pub(crate) T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Problem> {
        let is_json = request
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .map(|value| value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase())
            .is_some_and(|essence| essence == "application/json" || essence.ends_with("+json"));
        if !is_json {
            return Err(Problem::unsupported_media_type());
        }
        let bytes = Bytes::from_request(request, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                Problem::too_large(MAX_BODY_BYTES)
            } else {
                Problem::bad_request(rejection.body_text())
            }
        })?;
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|error| Problem::bad_request(format!("the body is not valid: {error}")))
    }
}

pub(crate) fn field_problem(
    pointer: &str,
    zh: impl Into<String>,
    en: impl Into<String>,
) -> FieldProblem {
    FieldProblem { pointer: pointer.to_owned(), message_zh: zh.into(), message_en: en.into() }
}

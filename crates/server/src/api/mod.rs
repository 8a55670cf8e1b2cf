//! The JSON API: the router, and what every endpoint shares (JSON bodies, running
//! blocking work). Each group of endpoints has its own module. Every record endpoint
//! reaches its record through [`records::visible`], which applies the rules of
//! `access.rs`; every engine call runs on a blocking thread, since the store writes to
//! disk.

mod clock;
mod definitions;
mod doc;
pub(crate) mod files;
mod graph;
pub(crate) mod import;
pub(crate) mod insights;
mod list;
mod notifications;
mod org;
pub(crate) mod pool;
mod query;
pub(crate) mod records;
pub(crate) mod session;
pub(crate) mod tasks;
mod tokens;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Request};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::{Json, middleware};
use serde::Serialize;
use serde::de::DeserializeOwned;
use stagecraft_runtime::FieldProblem;
use utoipa::OpenApi;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

use crate::headers::security_headers;
use crate::problem::Problem;
use crate::state::AppState;

/// The largest request body accepted.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The router of the whole API, with its OpenAPI document served at
/// `/api/openapi.json`. Routes and document are built by the same calls, so the
/// document lists exactly the routes there are. The clock endpoint exists only on a
/// manual clock.
pub fn app(state: AppState) -> Router {
    let (router, document) = api_router(&state).split_for_parts();
    let document = std::sync::Arc::new(document);
    router
        .route(
            "/api/openapi.json",
            axum::routing::get(move || {
                let document = document.clone();
                async move { Json(document.as_ref().clone()) }
            }),
        )
        // The HTML pages: a plain router, outside the OpenAPI document.
        .merge(crate::pages::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn(security_headers))
        .with_state(state)
}

/// The documented routes.
fn api_router(state: &AppState) -> OpenApiRouter<AppState> {
    let mut router = OpenApiRouter::with_openapi(doc::ApiDoc::openapi())
        .routes(routes!(healthz))
        .routes(routes!(session::login, session::logout))
        .routes(routes!(tasks::tasks))
        .routes(routes!(tokens::create, tokens::list))
        .routes(routes!(tokens::revoke))
        .routes(routes!(records::create, list::list))
        .routes(routes!(records::read, records::update))
        .routes(routes!(records::transition))
        .routes(routes!(records::decide))
        .routes(routes!(records::resubmit))
        .routes(routes!(records::events))
        // Uploads stream to disk with a limit of their own.
        .routes(routes!(files::upload).layer(DefaultBodyLimit::max(files::MAX_UPLOAD_BYTES)))
        .routes(routes!(files::download))
        .routes(routes!(files::info))
        .routes(routes!(definitions::forms))
        .routes(routes!(definitions::form))
        .routes(routes!(definitions::flows))
        .routes(routes!(definitions::flow))
        .routes(routes!(org::me))
        .routes(routes!(org::users))
        .routes(routes!(org::departments))
        .routes(routes!(notifications::list))
        .routes(routes!(notifications::read))
        .routes(routes!(notifications::preferences, notifications::set_preferences))
        .routes(routes!(notifications::dead_letters))
        .routes(routes!(notifications::retry))
        .routes(routes!(notifications::preview));
    // The workbench's endpoints, one module each.
    router = pool::routes(router);
    router = insights::routes(router);
    router = import::routes(router);
    router = graph::routes(router);
    if state.manual_clock().is_some() {
        router = router.routes(routes!(clock::move_clock));
    }
    router
}

/// The answer of `GET /healthz`.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Health {
    /// Always `ok` while the server answers.
    status: &'static str,
}

/// Whether the server is up; needs no sign-in.
#[utoipa::path(get, path = "/healthz", tag = "server", security(()), responses((status = 200, body = Health)))]
async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
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

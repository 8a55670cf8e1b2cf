//! Notifications over HTTP: the caller's in-app inbox and preferences; for
//! administrators, the dead-letter list, retrying a dead delivery, and previewing a
//! template against a record. The work is done by `stagecraft-notify`.

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use serde::{Deserialize, Serialize};
use stagecraft_model::Channel;
use stagecraft_notify::{DeadLetter, InboxItem, InboxPage, Preferences, Rendered, delivery, inbox};
use stagecraft_runtime::Org;

use super::{JsonBody, blocking, query};
use crate::auth::Caller;
use crate::problem::{Problem, ProblemDetails};
use crate::state::AppState;

const ADMIN_ROLE: &str = "admin";

fn require_admin(state: &AppState, caller: &Caller) -> Result<(), Problem> {
    let is_admin = state.with_org(|org| org.roles_of(&caller.user).iter().any(|r| r == ADMIN_ROLE));
    if is_admin { Ok(()) } else { Err(Problem::forbidden("only an administrator may do this")) }
}

fn store_failure(error: impl std::fmt::Display) -> Problem {
    Problem::failure(&error)
}

/// The caller's notifications, newest first, with the number of unread ones.
/// Query: `limit` (1 to 200, default 50) and `before` (the `next` of the previous
/// page).
#[utoipa::path(get, path = "/api/inbox", tag = "notifications",
    params(
        ("limit" = Option<u32>, Query, description = "Notifications per page, 1 to 200 (default 50)"),
        ("before" = Option<u64>, Query, description = "The `next` of the previous page"),
    ),
    responses(
        (status = 200, description = "The inbox", body = InboxPage),
        (status = 400, description = "A malformed query", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 401, description = "No live session", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> Result<Json<InboxPage>, Problem> {
    let mut limit = 50;
    let mut before = None;
    for (name, value) in query::pairs(raw.as_deref())? {
        let number = value.parse::<u64>().map_err(|_| {
            Problem::bad_request(format!("`{name}` must be a whole number, not `{value}`"))
        })?;
        match name.as_str() {
            "limit" if (1..=200).contains(&number) => limit = number as usize,
            "limit" => return Err(Problem::bad_request("`limit` must be from 1 to 200")),
            "before" => before = Some(number),
            _ => {
                return Err(Problem::bad_request(format!(
                    "unknown parameter `{name}`; use `limit` and `before`"
                )));
            }
        }
    }
    blocking(move || {
        inbox::list(state.engine().store().as_ref(), &caller.user, before, limit)
            .map(Json)
            .map_err(store_failure)
    })
    .await
}

/// Marks one of the caller's notifications read.
#[utoipa::path(post, path = "/api/inbox/{id}/read", tag = "notifications",
    params(("id" = u64, Path, description = "The notification id")),
    responses(
        (status = 200, description = "Read", body = InboxItem),
        (status = 401, description = "No live session", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "The caller has no such notification", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub(crate) async fn read(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<InboxItem>, Problem> {
    let missing = || Problem::not_found("you have no such notification");
    let id: u64 = id.parse().map_err(|_| missing())?;
    blocking(move || {
        let now = state.engine().now();
        inbox::mark_read(state.engine().store().as_ref(), &caller.user, id, now)
            .map_err(store_failure)?
            .map(Json)
            .ok_or_else(missing)
    })
    .await
}

/// The caller's notification preferences.
#[utoipa::path(get, path = "/api/inbox/preferences", tag = "notifications",
    responses(
        (status = 200, description = "The preferences", body = Preferences),
        (status = 401, description = "No live session", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub(crate) async fn preferences(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Preferences>, Problem> {
    blocking(move || {
        inbox::preferences(state.engine().store().as_ref(), &caller.user)
            .map(Json)
            .map_err(store_failure)
    })
    .await
}

/// Sets the caller's notification preferences: channels turned off (`email`,
/// `wecom`, `dingtalk`, `feishu`; the inbox stays on) and quiet hours during which
/// e-mails wait.
#[utoipa::path(put, path = "/api/inbox/preferences", tag = "notifications",
    request_body = Preferences,
    responses(
        (status = 200, description = "Stored", body = Preferences),
        (status = 400, description = "A malformed body", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 401, description = "No live session", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "The inbox turned off, or quiet hours that are not `HH:MM`", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub(crate) async fn set_preferences(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(preferences): JsonBody<Preferences>,
) -> Result<Json<Preferences>, Problem> {
    if preferences.off.contains(&Channel::Inbox) {
        return Err(Problem::invalid(vec![super::field_problem(
            "/off",
            "站内信不能关闭",
            "the in-app inbox cannot be turned off",
        )]));
    }
    if preferences.quiet_hours.as_ref().is_some_and(|quiet| !quiet.is_valid()) {
        return Err(Problem::invalid(vec![super::field_problem(
            "/quiet_hours",
            "免打扰时段请写成 HH:MM，例如 22:00 到 08:00",
            "write quiet hours as HH:MM, e.g. from 22:00 to 08:00",
        )]));
    }
    blocking(move || {
        let now = state.engine().now();
        inbox::set_preferences(state.engine().store().as_ref(), &caller.user, &preferences, now)
            .map_err(store_failure)?;
        Ok(Json(preferences))
    })
    .await
}

/// The dead-letter list.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Deliveries {
    /// Dead deliveries, oldest notification first.
    deliveries: Vec<DeadLetter>,
}

/// Deliveries that failed for good, with their last error. Query: `state=dead` (the
/// only state listed).
#[utoipa::path(get, path = "/api/admin/deliveries", tag = "admin",
    params(("state" = Option<String>, Query, description = "`dead` (the default and only value)")),
    responses(
        (status = 200, description = "The dead-letter list", body = Deliveries),
        (status = 400, description = "A malformed query", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 401, description = "No live session", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 403, description = "Not an administrator", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub(crate) async fn dead_letters(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> Result<Json<Deliveries>, Problem> {
    require_admin(&state, &caller)?;
    for (name, value) in query::pairs(raw.as_deref())? {
        if name != "state" || value != "dead" {
            return Err(Problem::bad_request("only `state=dead` can be listed"));
        }
    }
    blocking(move || {
        let deliveries =
            delivery::dead_letters(state.engine().store().as_ref(), 1000).map_err(store_failure)?;
        Ok(Json(Deliveries { deliveries }))
    })
    .await
}

/// A delivery put back in line.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Retried {
    /// The delivery id.
    id: String,
    /// `pending`.
    state: String,
    /// When it will be attempted (Unix ms).
    next_at: i64,
}

/// Puts a dead delivery back in line for an attempt now.
#[utoipa::path(post, path = "/api/admin/deliveries/{id}/retry", tag = "admin",
    params(("id" = String, Path, description = "The delivery id, `<notification>.<channel>.<recipient>`")),
    responses(
        (status = 200, description = "Back in line", body = Retried),
        (status = 401, description = "No live session", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 403, description = "Not an administrator", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No such delivery", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 409, description = "The delivery is not dead-lettered", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub(crate) async fn retry(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Retried>, Problem> {
    require_admin(&state, &caller)?;
    blocking(move || {
        let now = state.engine().now();
        match delivery::retry(state.engine().store().as_ref(), &id, now) {
            Ok(retried) => Ok(Json(Retried {
                id: retried.id,
                state: "pending".into(),
                next_at: retried.next_at,
            })),
            Err(stagecraft_notify::RetryError::Unknown(_)) => {
                Err(Problem::not_found(format!("there is no delivery `{id}`")))
            }
            Err(stagecraft_notify::RetryError::NotDead(_)) => {
                Err(Problem::not_applicable(format!("delivery `{id}` is not dead-lettered")))
            }
            Err(stagecraft_notify::RetryError::Store(error)) => Err(store_failure(error)),
        }
    })
    .await
}

/// What to preview.
#[derive(Deserialize)]
struct PreviewQuery {
    template: String,
    record: Option<String>,
    locale: String,
    reader: Option<String>,
}

/// Renders a template against a record as the delivery worker would, for a reader.
/// Query: `template`, `record`, `locale` (`zh-CN` or `en`, default `zh-CN`),
/// `reader` (a user id).
#[utoipa::path(get, path = "/api/admin/preview", tag = "admin",
    params(
        ("template" = String, Query, description = "The template id"),
        ("record" = Option<String>, Query, description = "The record to render it against"),
        ("locale" = Option<String>, Query, description = "`zh-CN` (default) or `en`"),
        ("reader" = Option<String>, Query, description = "The user it is rendered for"),
    ),
    responses(
        (status = 200, description = "The rendered message", body = Rendered),
        (status = 400, description = "A malformed query", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 401, description = "No live session", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 403, description = "Not an administrator", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No such template or record", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub(crate) async fn preview(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> Result<Json<Rendered>, Problem> {
    require_admin(&state, &caller)?;
    let mut query = PreviewQuery {
        template: String::new(),
        record: None,
        locale: "zh-CN".into(),
        reader: None,
    };
    for (name, value) in query::pairs(raw.as_deref())? {
        match name.as_str() {
            "template" => query.template = value,
            "record" => query.record = Some(value),
            "locale" if value == "zh-CN" || value == "en" => query.locale = value,
            "locale" => return Err(Problem::bad_request("`locale` is `zh-CN` or `en`")),
            "reader" => query.reader = Some(value),
            _ => return Err(Problem::bad_request(format!("unknown parameter `{name}`"))),
        }
    }
    if query.template.is_empty() {
        return Err(Problem::bad_request("give the `template` to preview"));
    }
    blocking(move || {
        let engine = state.engine();
        if let Some(record) = &query.record
            && engine.record(record).map_err(store_failure)?.is_none()
        {
            return Err(Problem::not_found(format!("there is no record `{record}`")));
        }
        stagecraft_notify::worker::preview(
            engine,
            state.notify_config(),
            &query.template,
            query.record.as_deref(),
            &query.locale,
            query.reader.as_deref(),
        )
        .map(Json)
        .map_err(|error| match error {
            stagecraft_notify::render::RenderError::UnknownTemplate(_) => {
                Problem::not_found(error.to_string())
            }
            other => Problem::bad_request(other.to_string()),
        })
    })
    .await
}

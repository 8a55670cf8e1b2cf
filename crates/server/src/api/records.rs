//! Records: create, read, change, move between stages, decide approvals, history.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::header::LOCATION;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use stagecraft_engine::{EngineError, Target};
use stagecraft_model::{FieldName, Id};
use stagecraft_runtime::{Command, FieldProblem, Record, create_problems};
use stagecraft_store::{RecordId, StoredEvent};

use super::{JsonBody, blocking, field_problem};
use crate::auth::Caller;
use crate::problem::{Problem, ProblemDetails};
use crate::state::AppState;

/// The longest idempotency key accepted.
const MAX_IDEMPOTENCY_KEY: usize = 128;

/// What a handler needs from a record.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    Read,
    Write,
}

/// The form, if the packs define it. Internal forms (`_credential`, …) are not.
pub(crate) fn known_form(state: &AppState, form: &str) -> Result<(), Problem> {
    if state.engine().definitions().forms.contains_key(&Id::from(form)) {
        Ok(())
    } else {
        Err(Problem::not_found(format!("there is no form `{form}`")))
    }
}

/// The record `id` of `form`, if the caller may have it for `access`. A record the
/// caller may not see is answered exactly like one that does not exist.
pub(crate) fn visible(
    state: &AppState,
    user: &str,
    form: &str,
    id: &str,
    access: Access,
) -> Result<Record, Problem> {
    known_form(state, form)?;
    let missing = || Problem::not_found(format!("there is no {form} record {id}"));
    let stored = state
        .engine()
        .store()
        .record(&RecordId::new(id))
        .map_err(|error| Problem::failure(&error))?
        .filter(|stored| stored.form == form)
        .ok_or_else(missing)?;
    let record: Record = serde_json::from_value(stored.value).map_err(|error| {
        Problem::failure(&format!("stored record {id} cannot be read: {error}"))
    })?;
    let (readable, writable) = (state.may_read(user, &record), state.may_write(user, &record));
    if !readable {
        return Err(missing());
    }
    if access == Access::Write && !writable {
        return Err(Problem::forbidden(format!("you may not change {form} record {id}")));
    }
    Ok(record)
}

/// Link fields must name records of the linked form that the caller may see: nobody
/// attaches work to someone else's deal, or learns that an id exists by trying.
pub(crate) fn link_problems(
    state: &AppState,
    user: &str,
    form: &str,
    fields: &Map<String, Value>,
) -> Vec<FieldProblem> {
    let definitions = state.engine().definitions();
    let Some(compiled) = definitions.forms.get(&Id::from(form)) else { return Vec::new() };
    let mut problems = Vec::new();
    for (field, value) in fields {
        let Some(linked_form) =
            compiled.fields.get(&FieldName(field.clone())).and_then(|info| info.link.as_ref())
        else {
            continue;
        };
        let Value::String(linked) = value else { continue };
        if visible(state, user, linked_form.as_str(), linked, Access::Read).is_err() {
            problems.push(field_problem(
                &format!("/{field}"),
                format!("找不到所选的记录（{linked_form}：{linked}）"),
                format!("there is no {linked_form} record {linked}"),
            ));
        }
    }
    // Likewise file fields must name files the caller may see, of a type and size the
    // field takes (`files.rs`).
    problems.extend(super::files::file_problems(state, user, form, fields));
    problems
}

/// What is wrong with a new record before the engine sees it: links to records the
/// caller may not see. When there are such problems, the form's own problems come
/// with them, so that one answer says everything; when there are none, the list is
/// empty and the engine checks the rest.
pub(crate) fn new_record_problems(
    state: &AppState,
    user: &str,
    form: &str,
    fields: &Map<String, Value>,
) -> Vec<FieldProblem> {
    let mut problems = link_problems(state, user, form, fields);
    if !problems.is_empty() {
        let definitions = state.engine().definitions();
        for problem in create_problems(&definitions, &Id::from(form), fields) {
            if !problems.iter().any(|known| known.pointer == problem.pointer) {
                problems.push(problem);
            }
        }
    }
    problems
}

fn record_response(status: StatusCode, record: &Record) -> Response {
    let location = format!("/api/records/{}/{}", record.form, record.id);
    (status, [(LOCATION, location)], Json(json!(record))).into_response()
}

/// A new record.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewRecord {
    /// The form's fields, as its JSON Schema (`GET /api/forms/{form}`) describes them.
    #[schema(value_type = Object)]
    fields: Map<String, Value>,
}

/// The `Idempotency-Key` header, if any: 1 to 128 visible ASCII characters.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, Problem> {
    let Some(value) = headers.get("idempotency-key") else { return Ok(None) };
    match value.to_str() {
        Ok(key)
            if !key.is_empty()
                && key.len() <= MAX_IDEMPOTENCY_KEY
                && key.bytes().all(|byte| byte.is_ascii_graphic()) =>
        {
            Ok(Some(key.to_owned()))
        }
        _ => Err(Problem::bad_request(format!(
            "the idempotency key must be 1 to {MAX_IDEMPOTENCY_KEY} visible ascii characters"
        ))),
    }
}

/// Creates a record of a form (and starts the form's flow). With an `Idempotency-Key`,
/// a repeated request answers the record the first one made (200) instead of making
/// another.
#[utoipa::path(post, path = "/api/records/{form}", tag = "records",
    params(("form" = String, Path, description = "The form id"),
        ("Idempotency-Key" = Option<String>, Header, description = "1 to 128 visible ASCII characters; the same key from the same user makes one record")),
    request_body = NewRecord,
    responses(
        (status = 201, description = "Created; `Location` names it", body = Record),
        (status = 200, description = "Made before by a request with the same idempotency key", body = Record),
        (status = 400, description = "A malformed body or idempotency key", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 401, description = "No live session", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No such form, or no such record that the caller may see", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 415, description = "The body is not JSON", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "Fields the form refuses, one entry per field", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub(crate) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Path(form): Path<String>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<NewRecord>,
) -> Result<Response, Problem> {
    known_form(&state, &form)?;
    // Keys are the caller's own: the same key from someone else is another request.
    let key = idempotency_key(&headers)?.map(|key| format!("create/{}/{form}/{key}", caller.user));
    blocking(move || {
        let engine = state.engine();
        let first = |id: &str| -> Result<Response, Problem> {
            let record = visible(&state, &caller.user, &form, id, Access::Read)?;
            Ok(record_response(StatusCode::OK, &record))
        };
        if let Some(key) = &key {
            if let Some(id) = engine.store().idempotent(key).map_err(|e| Problem::failure(&e))? {
                return first(id.as_str());
            }
        }
        let problems = new_record_problems(&state, &caller.user, &form, &body.fields);
        if !problems.is_empty() {
            return Err(Problem::invalid(problems));
        }
        let command =
            Command::Create { form: Id::from(form.as_str()), fields: body.fields, owner: None };
        match engine.execute(Some(&caller.user), Target::New, command, key.as_deref()) {
            Ok(executed) => Ok(record_response(StatusCode::CREATED, &executed.record)),
            Err(EngineError::Duplicate(id)) => first(&id),
            Err(error) => Err(error.into()),
        }
    })
    .await
}

/// A record: its fields, owner, flow state (stage, key actions done, approvals) and
/// open tasks.
#[utoipa::path(get, path = "/api/records/{form}/{id}", tag = "records",
    params(("form" = String, Path, description = "The form id"), ("id" = String, Path, description = "The record id")),
    responses(
        (status = 200, description = "The record", body = Record),
        (status = 401, description = "No live session", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No such form, or no such record that the caller may see", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub(crate) async fn read(
    State(state): State<AppState>,
    caller: Caller,
    Path((form, id)): Path<(String, String)>,
) -> Result<Json<Record>, Problem> {
    blocking(move || visible(&state, &caller.user, &form, &id, Access::Read).map(Json)).await
}

/// A change of some fields.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Change {
    /// The version the change was made on; an older one is refused (409).
    version: u64,
    /// The fields to set; `null` clears a field.
    #[schema(value_type = Object)]
    fields: Map<String, Value>,
}

/// Changes fields of a record (which may complete key actions).
#[utoipa::path(patch, path = "/api/records/{form}/{id}", tag = "records",
    params(("form" = String, Path, description = "The form id"), ("id" = String, Path, description = "The record id")),
    request_body = Change,
    responses(
        (status = 200, description = "The changed record", body = Record),
        (status = 400, description = "A malformed body", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 401, description = "No live session", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 403, description = "The caller may see the record but not change it", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No such form, or no such record that the caller may see", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 409, description = "The record changed since `version`", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "Fields the form refuses", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub(crate) async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path((form, id)): Path<(String, String)>,
    JsonBody(change): JsonBody<Change>,
) -> Result<Json<Record>, Problem> {
    blocking(move || {
        visible(&state, &caller.user, &form, &id, Access::Write)?;
        let problems = link_problems(&state, &caller.user, &form, &change.fields);
        if !problems.is_empty() {
            return Err(Problem::invalid(problems));
        }
        let command = Command::Update { expected_version: change.version, fields: change.fields };
        run(&state, &caller, (&form, id), command, None)
    })
    .await
}

/// A move to another stage.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Move {
    /// The stage id.
    to: String,
}

/// Moves a record to another stage of its flow. A refusal says why: each closed
/// gate, missing field, key action or approval (`reasons`).
#[utoipa::path(post, path = "/api/records/{form}/{id}/transitions", tag = "records",
    params(("form" = String, Path, description = "The form id"), ("id" = String, Path, description = "The record id"),
        ("Idempotency-Key" = Option<String>, Header, description = "1 to 128 visible ASCII characters; a repeat with the same key from the same user changes nothing more and answers the record as it is")),
    request_body = Move,
    responses(
        (status = 200, description = "Moved", body = Record),
        (status = 400, description = "A malformed body", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 401, description = "No live session", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 403, description = "The caller may not make this move", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No such form, or no such record that the caller may see", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 409, description = "The gates do not allow the move (`reasons`), or the move does not apply", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "Fields the stage requires are missing", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub(crate) async fn transition(
    State(state): State<AppState>,
    caller: Caller,
    Path((form, id)): Path<(String, String)>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<Move>,
) -> Result<Json<Record>, Problem> {
    let key = scoped_key(&headers, "transition", &caller, &form, &id)?;
    blocking(move || {
        visible(&state, &caller.user, &form, &id, Access::Write)?;
        let command = Command::Transition { to: Id::from(body.to.as_str()) };
        run(&state, &caller, (&form, id), command, key)
    })
    .await
}

/// A decision on an approval.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Decision {
    /// Approve (`true`) or reject.
    approve: bool,
    /// Why; required for a rejection.
    #[serde(default)]
    reason: Option<String>,
}

/// Approves or rejects a pending approval of the record's stage.
#[utoipa::path(post, path = "/api/records/{form}/{id}/approvals/{approval}", tag = "records",
    params(("form" = String, Path, description = "The form id"), ("id" = String, Path, description = "The record id"), ("approval" = String, Path, description = "The approval id"),
        ("Idempotency-Key" = Option<String>, Header, description = "1 to 128 visible ASCII characters; a repeat with the same key from the same user changes nothing more and answers the record as it is")),
    request_body = Decision,
    responses(
        (status = 200, description = "Decided", body = Record),
        (status = 400, description = "A malformed body", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 401, description = "No live session", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 403, description = "The caller is not an approver", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No such form, or no such record that the caller may see", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 409, description = "No such pending approval", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "A rejection without a reason", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub(crate) async fn decide(
    State(state): State<AppState>,
    caller: Caller,
    Path((form, id, approval)): Path<(String, String, String)>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<Decision>,
) -> Result<Json<Record>, Problem> {
    let key = scoped_key(&headers, &format!("decide/{approval}"), &caller, &form, &id)?;
    blocking(move || {
        visible(&state, &caller.user, &form, &id, Access::Write)?;
        let command = Command::Decide {
            approval: Id::from(approval.as_str()),
            approve: body.approve,
            reason: body.reason,
        };
        run(&state, &caller, (&form, id), command, key)
    })
    .await
}

/// Asks again for a rejected approval, once what the approver asked for is done.
#[utoipa::path(post, path = "/api/records/{form}/{id}/approvals/{approval}/resubmit", tag = "records",
    params(("form" = String, Path, description = "The form id"), ("id" = String, Path, description = "The record id"), ("approval" = String, Path, description = "The approval id"),
        ("Idempotency-Key" = Option<String>, Header, description = "1 to 128 visible ASCII characters; a repeat with the same key from the same user changes nothing more and answers the record as it is")),
    responses(
        (status = 200, description = "Pending again; the approvers have the task again", body = Record),
        (status = 401, description = "No live session", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 403, description = "The caller may see the record but not change it", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No such form, or no such record that the caller may see", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 409, description = "The approval is not rejected", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub(crate) async fn resubmit(
    State(state): State<AppState>,
    caller: Caller,
    Path((form, id, approval)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Result<Json<Record>, Problem> {
    let key = scoped_key(&headers, &format!("resubmit/{approval}"), &caller, &form, &id)?;
    blocking(move || {
        visible(&state, &caller.user, &form, &id, Access::Write)?;
        let command = Command::Resubmit { approval: Id::from(approval.as_str()) };
        run(&state, &caller, (&form, id), command, key)
    })
    .await
}

/// The caller's `Idempotency-Key` for one kind of request on one record: the same key
/// from someone else, or for another request, is another request.
fn scoped_key(
    headers: &HeaderMap,
    request: &str,
    caller: &Caller,
    form: &str,
    id: &str,
) -> Result<Option<String>, Problem> {
    Ok(idempotency_key(headers)?.map(|key| format!("{request}/{}/{form}/{id}/{key}", caller.user)))
}

/// Runs a command on an existing record as the caller. A repeat of a request with the
/// same idempotency key changes nothing and answers the record as it is now.
fn run(
    state: &AppState,
    caller: &Caller,
    (form, id): (&str, String),
    command: Command,
    key: Option<String>,
) -> Result<Json<Record>, Problem> {
    let target = Target::Existing(id.clone());
    match state.engine().execute(Some(&caller.user), target, command, key.as_deref()) {
        Ok(executed) => Ok(Json(executed.record)),
        Err(EngineError::Duplicate(_)) => {
            visible(state, &caller.user, form, &id, Access::Read).map(Json)
        }
        Err(error) => Err(error.into()),
    }
}

/// The history of a record.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct EventList {
    /// Oldest first.
    events: Vec<StoredEvent>,
}

/// The history of a record: every change, move, decision, breach and escalation.
#[utoipa::path(get, path = "/api/records/{form}/{id}/events", tag = "records",
    params(("form" = String, Path, description = "The form id"), ("id" = String, Path, description = "The record id")),
    responses(
        (status = 200, description = "The events, oldest first", body = EventList),
        (status = 401, description = "No live session", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No such form, or no such record that the caller may see", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub(crate) async fn events(
    State(state): State<AppState>,
    caller: Caller,
    Path((form, id)): Path<(String, String)>,
) -> Result<Json<EventList>, Problem> {
    blocking(move || {
        visible(&state, &caller.user, &form, &id, Access::Read)?;
        let events = state
            .engine()
            .store()
            .events_of(&RecordId::new(id))
            .map_err(|error| Problem::failure(&error))?;
        Ok(Json(EventList { events }))
    })
    .await
}

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
use stagecraft_store::RecordId;

use super::{JsonBody, blocking, field_problem};
use crate::access::{can_read, can_write};
use crate::auth::Caller;
use crate::problem::Problem;
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
    let (readable, writable) =
        state.with_org(|org| (can_read(org, user, &record), can_write(org, user, &record)));
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewRecord {
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

pub(crate) async fn read(
    State(state): State<AppState>,
    caller: Caller,
    Path((form, id)): Path<(String, String)>,
) -> Result<Json<Record>, Problem> {
    blocking(move || visible(&state, &caller.user, &form, &id, Access::Read).map(Json)).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Change {
    version: u64,
    fields: Map<String, Value>,
}

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
        run(&state, &caller, id, command)
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Move {
    to: String,
}

pub(crate) async fn transition(
    State(state): State<AppState>,
    caller: Caller,
    Path((form, id)): Path<(String, String)>,
    JsonBody(body): JsonBody<Move>,
) -> Result<Json<Record>, Problem> {
    blocking(move || {
        visible(&state, &caller.user, &form, &id, Access::Write)?;
        run(&state, &caller, id, Command::Transition { to: Id::from(body.to.as_str()) })
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Decision {
    approve: bool,
    #[serde(default)]
    reason: Option<String>,
}

pub(crate) async fn decide(
    State(state): State<AppState>,
    caller: Caller,
    Path((form, id, approval)): Path<(String, String, String)>,
    JsonBody(body): JsonBody<Decision>,
) -> Result<Json<Record>, Problem> {
    blocking(move || {
        visible(&state, &caller.user, &form, &id, Access::Write)?;
        let command = Command::Decide {
            approval: Id::from(approval.as_str()),
            approve: body.approve,
            reason: body.reason,
        };
        run(&state, &caller, id, command)
    })
    .await
}

/// Runs a command on an existing record as the caller.
fn run(
    state: &AppState,
    caller: &Caller,
    id: String,
    command: Command,
) -> Result<Json<Record>, Problem> {
    let executed =
        state.engine().execute(Some(&caller.user), Target::Existing(id), command, None)?;
    Ok(Json(executed.record))
}

pub(crate) async fn events(
    State(state): State<AppState>,
    caller: Caller,
    Path((form, id)): Path<(String, String)>,
) -> Result<Json<Value>, Problem> {
    blocking(move || {
        visible(&state, &caller.user, &form, &id, Access::Read)?;
        let events = state
            .engine()
            .store()
            .events_of(&RecordId::new(id))
            .map_err(|error| Problem::failure(&error))?;
        Ok(Json(json!({"events": events})))
    })
    .await
}
